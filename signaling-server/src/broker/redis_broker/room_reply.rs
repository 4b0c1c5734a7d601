//! What every room script answers (see `redis_scripts.rs`).

use redis::{FromRedisValue, Value};

/// A room script's answer.
#[derive(Debug)]
pub(super) struct RoomReply {
    /// What happened (`joined`, `ok`, `unknown_peer`, …).
    pub(super) status: String,
    /// A peer id, an instance or a count, by script.
    pub(super) detail: String,
    /// The room's other peers (`JOIN`).
    pub(super) list: Vec<String>,
    /// Frames queued while a resumed peer was absent (`JOIN`).
    pub(super) backlog: Vec<String>,
    /// Instance and payload pairs to publish, in order.
    pub(super) deliveries: Vec<(String, String)>,
    /// When (ms since the epoch, Redis's clock) the room's last peer left.
    pub(super) emptied: Option<u64>,
    /// Absent peers' queues that changed: "PEER ROOM" and bytes added
    /// (negative when a queue was delivered or dropped).
    pub(super) queue_changes: Vec<(String, i64)>,
}

impl RoomReply {
    /// Reads a script's answer.
    pub(super) fn parse(value: Value) -> Result<Self, redis::RedisError> {
        type Raw = (
            String,
            String,
            Vec<String>,
            Vec<String>,
            Vec<String>,
            i64,
            Vec<String>,
        );
        let (status, detail, list, backlog, flat, emptied, queued) =
            Raw::from_redis_value(value).map_err(redis::RedisError::from)?;
        let mut queue_changes = Vec::with_capacity(queued.len() / 2);
        let mut queued = queued.into_iter();
        while let (Some(entry), Some(delta)) = (queued.next(), queued.next()) {
            queue_changes.push((entry, delta.parse().unwrap_or(0)));
        }
        let mut deliveries = Vec::with_capacity(flat.len() / 2);
        let mut flat = flat.into_iter();
        while let (Some(instance), Some(payload)) = (flat.next(), flat.next()) {
            deliveries.push((instance, payload));
        }
        Ok(Self {
            status,
            detail,
            list,
            backlog,
            deliveries,
            emptied: u64::try_from(emptied).ok().filter(|&at| at > 0),
            queue_changes,
        })
    }
}
