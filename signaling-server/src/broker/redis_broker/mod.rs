//! Rooms shared by several instances through Redis, one server or a Redis
//! Cluster.
//!
//! Room state lives in Redis (see `redis_scripts.rs` for the keys) and every
//! change to a room is one Lua script on that room's keys, so concurrent
//! joins cannot overfill a room and a resume cannot race an expiry. What
//! all rooms share (the room count, which instance holds which peer, absent
//! peers' deadlines, liveness) lives under one control tag and changes by
//! separate commands. Each instance keeps only its own connections
//! (`peer → connection`) and routes to the other peers of their rooms
//! (`redis_routes.rs`). A frame for a peer attached elsewhere is published on
//! that instance's channel (`sig:{i:INSTANCE}:ch`), which only that instance
//! reads: directly when the route is known, else after the script that
//! checks it answered where the peer is. Everything a connection asks of
//! Redis goes through one ordered queue sent in pipelines (`redis_pipe.rs`).
//!
//! Liveness: each instance refreshes `sig:{ctl}:alive:INSTANCE` (expiring
//! after `liveness`) several times per period. Every instance also checks
//! the others: peers still attached to an instance whose key expired leave
//! their rooms (the rest of the room gets `peer_left`). Peers that
//! reconnected to another instance before that, with their resume token,
//! keep their id.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use redis::{Cmd, FromRedisValue, PushInfo};
use signaling_protocol::{ErrorCode, PeerId};
use tokio::sync::mpsc;
use tracing::{info, warn};

mod pipe_task;
mod queue_budget;
mod requests;
mod room_reply;
mod upkeep;

use super::joins_in_flight::JoinsInFlight;
use super::redis_keys::{CONTROL, control, instance_channel, room_prefix};
use super::redis_link::{PushSink, RedisLink};
use super::redis_pipe::{CommandPipe, PipeError, Publish, command_pipe};
use super::redis_routes::LocalPeers;
use super::redis_scripts::FORGET_ROOM;
use super::{BrokerSettings, ConnHandle, Rejection};
use crate::metrics::Metrics;
use crate::outbox::{Outbox, OutboxBudget};
use pipe_task::run_pipe;
use room_reply::RoomReply;

/// Why the shared broker could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot use Redis at {url}: {source}")]
pub struct RedisError {
    /// The URL given, without its password.
    url: String,
    /// What the client said.
    source: redis::RedisError,
}

/// Longest wait for one request to Redis; a client's request fails with
/// `internal` after it rather than hanging.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Most expired peers removed by one expiry pass (the next pass continues).
const EXPIRE_BATCH: usize = 256;

/// Most frames read from the instance channel before other tasks run.
const SUBSCRIBER_BATCH: usize = 256;

/// Messages from Redis (the instance channel's frames) waiting to be read;
/// past that they are dropped and counted, so a flood cannot grow memory.
const PUSH_QUEUE: usize = 65_536;

/// Rooms in Redis; frames to other instances through pub/sub.
pub struct RedisBroker {
    redis: RedisLink,
    pushes: tokio::sync::Mutex<Option<mpsc::Receiver<PushInfo>>>,
    instance: String,
    liveness: Duration,
    local: Arc<Mutex<LocalPeers>>,
    joins: JoinsInFlight,
    pipe: CommandPipe,
    settings: BrokerSettings,
    metrics: Arc<Metrics>,
    next_conn: AtomicU64,
    /// Whether Redis answered the last maintenance pass and no pipeline
    /// failed since.
    reachable: Arc<AtomicBool>,
    /// The epoch of Redis' data set seen by the last maintenance pass.
    epoch: Mutex<Option<String>>,
    /// When this instance last put its peers back after Redis lost its data.
    restored_at: Mutex<Option<std::time::Instant>>,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker")
            .field("instance", &self.instance)
            .field("liveness", &self.liveness)
            .finish_non_exhaustive()
    }
}

impl RedisBroker {
    /// Connects to Redis at `url` (one server, or a cluster's seed
    /// addresses separated by commas) and subscribes to this instance's
    /// channel. `liveness` is how long this instance counts as alive after
    /// its last refresh.
    pub async fn connect(
        url: &str,
        liveness: Duration,
        settings: BrokerSettings,
        metrics: Arc<Metrics>,
    ) -> Result<Self, RedisError> {
        let error = |source| RedisError {
            url: redact(url),
            source,
        };
        let (push_sender, push_receiver) = mpsc::channel(PUSH_QUEUE);
        let dropped = metrics.clone();
        let sink: PushSink = Box::new(move |push| {
            if push_sender.try_send(push).is_err() {
                dropped.redis_errors.increment(1);
            }
        });
        let mut redis = RedisLink::connect(url, REQUEST_TIMEOUT, sink)
            .await
            .map_err(error)?;
        let instance = uuid::Uuid::new_v4().simple().to_string();
        redis
            .subscribe(&instance_channel(&instance))
            .await
            .map_err(error)?;
        let local = Arc::new(Mutex::new(LocalPeers::new(
            settings.registry.max_peers_per_room,
        )));
        let (pipe, receiver) = command_pipe();
        let reachable = Arc::new(AtomicBool::new(true));
        tokio::spawn(run_pipe(
            receiver,
            redis.clone(),
            local.clone(),
            settings.registry,
            metrics.clone(),
            reachable.clone(),
        ));
        let broker = Self {
            redis,
            pushes: tokio::sync::Mutex::new(Some(push_receiver)),
            liveness,
            local,
            joins: JoinsInFlight::default(),
            pipe,
            settings,
            metrics,
            next_conn: AtomicU64::new(1),
            reachable,
            epoch: Mutex::new(None),
            restored_at: Mutex::new(None),
            instance,
        };
        // Announce this instance before it takes any connection.
        broker.maintain().await.map_err(error)?;
        info!(
            instance = %broker.instance,
            cluster = broker.redis.is_cluster(),
            "sharing rooms through Redis"
        );
        Ok(broker)
    }

    pub(super) fn open(
        &self,
        max_frames: usize,
        max_bytes: usize,
        budget: &Arc<OutboxBudget>,
    ) -> ConnHandle {
        ConnHandle {
            id: self.next_conn.fetch_add(1, Ordering::Relaxed),
            outbox: Arc::new(Outbox::new(max_frames, max_bytes, budget.clone())),
        }
    }

    /// `EVAL` of the room script `source` on `room`'s keys, with the queue
    /// bounds and the room as its first arguments.
    fn room_script(&self, source: &str, room: &str) -> (Cmd, String) {
        let limits = &self.settings.registry;
        let prefix = room_prefix(room);
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(source)
            .arg(1)
            .arg(&prefix)
            .arg(limits.max_queued_signals)
            .arg(limits.max_queued_bytes)
            .arg(room);
        (cmd, prefix)
    }

    /// Runs a room script (from [`Self::room_script`]) through the ordered
    /// pipe, then publishes its deliveries and drops an emptied room from
    /// the count. Scripts go by their text, not their hash, so a Redis that
    /// restarted empty runs them all the same.
    async fn run_room(&self, room: &str, script: (Cmd, String)) -> Result<RoomReply, PipeError> {
        let mut reply = self.run_room_once(room, script).await?;
        let changes = std::mem::take(&mut reply.queue_changes);
        if !changes.is_empty() {
            let changes = changes
                .into_iter()
                .map(|(entry, delta)| (entry, delta.to_string()))
                .collect();
            self.account_queues(changes).await;
        }
        Ok(reply)
    }

    /// [`Self::run_room`] but for the count of queued bytes, which the caller
    /// keeps (see `queue_budget.rs`).
    async fn run_room_once(
        &self,
        room: &str,
        (cmd, route): (Cmd, String),
    ) -> Result<RoomReply, PipeError> {
        let value = self.pipe.call(cmd, route.into(), REQUEST_TIMEOUT).await?;
        let reply = RoomReply::parse(value)?;
        self.publish_deliveries(room, &reply.deliveries).await;
        if let Some(emptied_at) = reply.emptied {
            self.forget_room(room, emptied_at).await;
        }
        Ok(reply)
    }

    /// Drops an emptied or vanished room from the count of rooms, unless a
    /// join was admitted into it after `unless_admitted_after` (ms since the
    /// epoch).
    async fn forget_room(&self, room: &str, unless_admitted_after: u64) {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(FORGET_ROOM)
            .arg(1)
            .arg(CONTROL)
            .arg(room)
            .arg(unless_admitted_after);
        if let Err(err) = self.call::<i64>(cmd, CONTROL).await {
            self.metrics.redis_errors.increment(1);
            warn!(%err, room, "cannot drop a room from the count");
        }
    }

    /// Publishes a script's deliveries, in order, each on its instance's
    /// channel.
    async fn publish_deliveries(&self, room: &str, deliveries: &[(String, String)]) {
        let room: Arc<str> = Arc::from(room);
        for (instance, payload) in deliveries {
            let publish = Publish {
                channel: Arc::from(instance_channel(instance)),
                payload: payload.clone(),
                room: room.clone(),
            };
            if let Err(err) = self.pipe.publish(publish, REQUEST_TIMEOUT).await {
                self.metrics.redis_errors.increment(1);
                warn!(%err, "cannot publish a frame for another instance; dropped");
            }
        }
    }

    /// Runs `cmd`, which routes by the key `route`, through the ordered
    /// pipe, bounded by [`REQUEST_TIMEOUT`].
    async fn call<T: FromRedisValue>(&self, cmd: Cmd, route: &str) -> Result<T, PipeError> {
        let value = self.pipe.call(cmd, route.into(), REQUEST_TIMEOUT).await?;
        Ok(T::from_redis_value(value).map_err(redis::RedisError::from)?)
    }

    /// Changes a control set: `verb` (`SADD`, `SREM`, `ZREM`) of `member`
    /// in `key`.
    async fn control_set(&self, verb: &str, key: &str, member: &str) {
        self.control_set_many(verb, key, &[member]).await;
    }

    /// [`Self::control_set`] of several members in one command.
    async fn control_set_many(&self, verb: &str, key: &str, members: &[&str]) {
        if members.is_empty() {
            return;
        }
        let mut cmd = redis::cmd(verb);
        cmd.arg(control(key)).arg(members);
        if let Err(err) = self.call::<i64>(cmd, CONTROL).await {
            self.metrics.redis_errors.increment(1);
            warn!(%err, key, "cannot update the shared peer records in Redis");
        }
    }

    fn unavailable(&self, err: &PipeError) -> Rejection {
        self.metrics.redis_errors.increment(1);
        warn!(%err, "Redis request failed");
        Rejection {
            code: ErrorCode::Internal,
            message: "the room store is unreachable; try again shortly".into(),
            peer_id: None,
        }
    }

    /// A signal to `to` that could not be carried: `internal`, naming `to`
    /// so the sender knows which negotiation to repeat.
    fn not_carried(&self, rejection: Rejection, to: PeerId) -> Rejection {
        Rejection {
            peer_id: Some(to),
            ..rejection
        }
    }

    fn bad_reply(&self, reply: &str) -> Rejection {
        self.metrics.redis_errors.increment(1);
        warn!(reply, "unexpected reply from a Redis script");
        Rejection {
            code: ErrorCode::Internal,
            message: "the room store answered unexpectedly; try again".into(),
            peer_id: None,
        }
    }

    fn lock(&self) -> MutexGuard<'_, LocalPeers> {
        lock(&self.local)
    }
}

fn lock(local: &Mutex<LocalPeers>) -> MutexGuard<'_, LocalPeers> {
    local.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `url` without a password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redact("redis://:hunter2@10.0.0.5:6379/0"),
            "redis://***@10.0.0.5:6379/0"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
