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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::{Cmd, FromRedisValue, PushInfo};
use signaling_protocol::{ErrorCode, PeerId, ServerMessage, SignalData};
use tokio::sync::mpsc;
use tracing::{info, warn};

mod room_reply;
mod upkeep;

use super::joins_in_flight::JoinsInFlight;
use super::redis_keys::{CONTROL, control, instance_channel, peer_entry, room_prefix};
use super::redis_link::{PushSink, RedisLink};
use super::redis_pipe::{CommandPipe, PipeError, PipeReceiver, Publish, command_pipe, within};
use super::redis_routes::{Local, LocalPeers};
use super::redis_scripts::{ADMIT, DISCONNECT, JOIN, LEAVE, REDELIVER, SIGNAL};
use super::{BrokerSettings, ConnHandle, Rejection};
use crate::metrics::Metrics;
use crate::outbox::{CloseReason, Outbox, OutboxBudget, SharedText};
use crate::registry::{RegistryError, new_peer_id, new_token, validate_room};
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
            settings.registry.max_queued_signals,
            settings.registry.max_queued_bytes,
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
    async fn run_room(
        &self,
        room: &str,
        (cmd, route): (Cmd, String),
    ) -> Result<RoomReply, PipeError> {
        let value = self.pipe.call(cmd, route, REQUEST_TIMEOUT).await?;
        let reply = RoomReply::parse(value)?;
        self.publish_deliveries(room, &reply.deliveries).await;
        if reply.emptied {
            let mut cmd = redis::cmd("SREM");
            cmd.arg(control("rooms")).arg(room);
            if let Err(err) = self.call::<i64>(cmd, CONTROL).await {
                self.metrics.redis_errors.increment(1);
                warn!(%err, room, "cannot drop an emptied room from the count");
            }
        }
        Ok(reply)
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
        let value = self
            .pipe
            .call(cmd, route.to_owned(), REQUEST_TIMEOUT)
            .await?;
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

    pub(super) async fn join(
        &self,
        conn: &ConnHandle,
        room: &str,
        resume: Option<&str>,
    ) -> Result<PeerId, Rejection> {
        validate_room(room)?;
        // Held until the peer is attached here (see `joins_in_flight.rs`).
        let _in_flight = self.joins.start();
        let limits = &self.settings.registry;
        let fresh_id = new_peer_id();
        let token = new_token();
        let joined_frame = ServerMessage::PeerJoined { peer_id: fresh_id }.to_json();
        let fresh_entry = peer_entry(&fresh_id.to_string(), room);
        let inst_key = format!("inst:{}", self.instance);
        let mut admit = redis::cmd("EVAL");
        admit
            .arg(ADMIT)
            .arg(1)
            .arg(CONTROL)
            .arg(room)
            .arg(limits.max_rooms)
            .arg(&self.instance)
            .arg(&fresh_entry);
        let admitted: i64 = self
            .call(admit, CONTROL)
            .await
            .map_err(|err| self.unavailable(&err))?;
        if admitted == 0 {
            return Err(RegistryError::TooManyRooms {
                limit: limits.max_rooms,
            }
            .into());
        }
        let mut script = self.room_script(JOIN, room);
        script
            .0
            .arg(resume.unwrap_or(""))
            .arg(fresh_id.to_string())
            .arg(&token)
            .arg(&self.instance)
            .arg(conn.id)
            .arg(limits.max_peers_per_room)
            .arg(joined_frame);
        let reply = match self.run_room(room, script).await {
            Ok(reply) => reply,
            Err(err) => {
                self.control_set("SREM", &inst_key, &fresh_entry).await;
                return Err(self.unavailable(&err));
            }
        };
        let resumed = match reply.status.as_str() {
            "joined" => false,
            "resumed" => true,
            "room_full" => {
                self.control_set("SREM", &inst_key, &fresh_entry).await;
                return Err(RegistryError::RoomFull {
                    room: room.to_owned(),
                    limit: limits.max_peers_per_room,
                }
                .into());
            }
            other => return Err(self.bad_reply(other)),
        };
        let RoomReply {
            detail: peer,
            list: peers,
            backlog,
            ..
        } = reply;
        if resumed {
            self.control_set("SREM", &inst_key, &fresh_entry).await;
            self.control_set("SADD", &inst_key, &peer_entry(&peer, room))
                .await;
        }
        let peer_id: PeerId = peer.parse().map_err(|_| self.bad_reply(&peer))?;
        let peers = peers
            .iter()
            .map(|p| p.parse().map_err(|_| self.bad_reply(p)))
            .collect::<Result<Vec<PeerId>, _>>()?;
        let welcome = ServerMessage::Welcome {
            peer_id,
            room: room.to_owned(),
            peers,
            ice_servers: self.settings.ice.servers_for(peer_id),
            resume_token: token.clone(),
            resumed,
            limits: self.settings.limits,
        };
        conn.outbox.push(SharedText::from(welcome.to_json()));
        for frame in backlog {
            conn.outbox.push(SharedText::from(frame));
        }
        let previous = self.lock().attach(
            peer_id,
            Local {
                conn: conn.clone(),
                room: Arc::from(room),
                token,
            },
        );
        // A resume on this same instance takes over the old connection.
        if let Some(old) = previous.filter(|old| old.conn != *conn) {
            old.conn.outbox.close(CloseReason::Replaced);
        }
        self.metrics.joins.increment(1);
        if resumed {
            self.metrics.resumes.increment(1);
        }
        Ok(peer_id)
    }

    pub(super) async fn signal(
        &self,
        conn: &ConnHandle,
        from: PeerId,
        to: PeerId,
        data: SignalData,
    ) -> Result<(), Rejection> {
        let (room, route, epoch) = {
            let local = self.lock();
            let room = match local.get(&from) {
                Some(entry) if entry.conn == *conn => entry.room.clone(),
                _ => return Err(RegistryError::NotJoined("signal").into()),
            };
            if to == from {
                return Err(RegistryError::SignalToSelf(to).into());
            }
            // Both ends here: deliver without a round trip to Redis.
            if let Some(target) = local.get(&to).filter(|t| t.room == room) {
                let frame = SharedText::from(ServerMessage::Signal { from, data }.to_json());
                target.conn.outbox.push(frame);
                self.metrics.signals_relayed.increment(1);
                return Ok(());
            }
            let (route, epoch) = local.route(&room, &to);
            (room, route, epoch)
        };
        let frame = ServerMessage::Signal { from, data }.to_json();
        if let Some(channel) = route {
            // A known route: one publish, not waited for.
            let payload = format!("S {to} {room}\n{frame}");
            let publish = Publish {
                channel,
                payload,
                room,
            };
            self.pipe
                .publish(publish, REQUEST_TIMEOUT)
                .await
                .map_err(|err| self.not_carried(self.unavailable(&err), to))?;
            self.metrics.signals_relayed.increment(1);
            return Ok(());
        }
        let mut script = self.room_script(SIGNAL, &room);
        script
            .0
            .arg(from.to_string())
            .arg(to.to_string())
            .arg(frame);
        let reply = self
            .run_room(&room, script)
            .await
            .map_err(|err| self.not_carried(self.unavailable(&err), to))?;
        match reply.status.as_str() {
            "ok" => {
                if !reply.detail.is_empty() {
                    let channel = Arc::from(instance_channel(&reply.detail));
                    self.lock().learn(&room, to, channel, epoch);
                }
                self.metrics.signals_relayed.increment(1);
                Ok(())
            }
            "unknown_peer" => Err(RegistryError::UnknownPeer {
                peer: to,
                room: room.to_string(),
            }
            .into()),
            // Attached here but unknown to Redis: Redis lost its data and this
            // instance has not put its peers back yet (or was taken for dead).
            "not_joined" => Err(Rejection {
                code: ErrorCode::Internal,
                message: "the room store is recovering; try again shortly".into(),
                peer_id: Some(to),
            }),
            other => Err(self.bad_reply(other)),
        }
    }

    pub(super) async fn leave(&self, conn: &ConnHandle, peer: PeerId) -> Result<(), Rejection> {
        let Some(local) = self.lock().detach(peer, conn) else {
            return Err(RegistryError::NotJoined("leave").into());
        };
        let mut script = self.room_script(LEAVE, &local.room);
        script
            .0
            .arg(peer.to_string())
            .arg(&self.instance)
            .arg(conn.id);
        let result = self.run_room(&local.room, script).await;
        self.control_set(
            "SREM",
            &format!("inst:{}", self.instance),
            &peer_entry(&peer.to_string(), &local.room),
        )
        .await;
        result.map_err(|err| self.unavailable(&err))?;
        Ok(())
    }

    pub(super) async fn disconnect(&self, conn: &ConnHandle, peer: PeerId) {
        let Some(local) = self.lock().detach(peer, conn) else {
            return;
        };
        let grace = self.settings.registry.resume_grace;
        let entry = peer_entry(&peer.to_string(), &local.room);
        // The deadline is recorded before the peer is marked absent, so
        // every absent peer has one even if this instance stops in between.
        let deadline = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_add(grace)
            .as_millis();
        let mut absent = redis::cmd("ZADD");
        absent
            .arg(control("absent"))
            .arg(u64::try_from(deadline).unwrap_or(u64::MAX))
            .arg(&entry);
        let mut script = self.room_script(DISCONNECT, &local.room);
        script
            .0
            .arg(peer.to_string())
            .arg(&self.instance)
            .arg(conn.id)
            .arg(u64::try_from(grace.as_millis()).unwrap_or(u64::MAX));
        let result = match self.call::<i64>(absent, CONTROL).await {
            Ok(_) => self.run_room(&local.room, script).await.map(drop),
            Err(err) => Err(err),
        };
        if let Err(err) = result {
            self.metrics.redis_errors.increment(1);
            warn!(%err, %peer, "cannot mark a peer absent in Redis; it leaves when this instance is taken for dead");
            return;
        }
        self.control_set("SREM", &format!("inst:{}", self.instance), &entry)
            .await;
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

/// Empties the command queue into Redis until the broker is dropped; a
/// failed pipeline makes the instance not ready (`/readyz` 503). A
/// signal published to an instance nobody listens for any more (it stopped
/// or died) is handed on by the script that redelivers frames: to where its
/// peer is now, or into its queue; and routes through that instance are
/// forgotten.
async fn run_pipe(
    mut receiver: PipeReceiver,
    mut redis: RedisLink,
    local: Arc<Mutex<LocalPeers>>,
    max_queued_signals: usize,
    max_queued_bytes: usize,
    metrics: Arc<Metrics>,
    reachable: Arc<AtomicBool>,
) {
    while let Some(outcome) = receiver.run_batch(&mut redis, REQUEST_TIMEOUT).await {
        let unheard = match outcome {
            Ok(unheard) => unheard,
            Err(err) => {
                // Not ready until a maintenance pass reaches Redis again.
                reachable.store(false, Ordering::Relaxed);
                metrics.redis_errors.increment(1);
                warn!(%err, "a pipeline of requests to Redis failed; its signals are lost");
                continue;
            }
        };
        for publish in unheard {
            lock(&local).forget_channel(&publish.channel);
            let Some((peer, frame)) = publish
                .payload
                .strip_prefix("S ")
                .and_then(|rest| rest.split_once(' '))
                .and_then(|(peer, rest)| Some((peer, rest.split_once('\n')?.1)))
            else {
                continue;
            };
            let instance = super::redis_keys::hash_tag(&publish.channel).trim_start_matches("i:");
            let prefix = room_prefix(&publish.room);
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(REDELIVER)
                .arg(1)
                .arg(&prefix)
                .arg(max_queued_signals)
                .arg(max_queued_bytes)
                .arg(&*publish.room)
                .arg(peer)
                .arg(frame)
                .arg(instance);
            let result = within(REQUEST_TIMEOUT, async {
                let value = cmd.query_async(&mut redis).await?;
                let reply = RoomReply::parse(value)?;
                // Handed on once: a frame that again reaches nobody is dropped.
                for (instance, payload) in &reply.deliveries {
                    let _: i64 = redis
                        .publish(&instance_channel(instance), payload)
                        .query_async(&mut redis)
                        .await?;
                }
                Ok(())
            })
            .await;
            if let Err(err) = result {
                metrics.redis_errors.increment(1);
                warn!(%err, "cannot hand on a signal for a gone instance; dropped");
            }
        }
    }
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
