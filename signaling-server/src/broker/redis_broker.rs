//! Rooms shared by several instances through Redis.
//!
//! Room state lives in Redis (see `scripts.lua` for the keys) and every
//! change is one Lua script, so concurrent joins cannot overfill a room and
//! a resume cannot race an expiry. Each instance keeps only its own
//! connections: `peer → connection` for peers attached here. A frame for a
//! peer attached elsewhere is published on that instance's channel
//! (`sig:ch:INSTANCE`), which only that instance reads.
//!
//! Liveness: each instance refreshes `sig:alive:INSTANCE` (expiring after
//! `liveness`) several times per period. Every instance also checks the
//! others: peers still attached to an instance whose key expired leave their
//! rooms (the rest of the room gets `peer_left`). Peers that reconnected to
//! another instance before that, with their resume token, keep their id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSub};
use signaling_protocol::{ErrorCode, PeerId, ServerMessage, SignalData};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{BrokerSettings, ConnHandle, Rejection};
use crate::metrics::Metrics;
use crate::outbox::{CloseReason, Frame, Outbox, OutboxBudget};
use crate::registry::{RegistryError, new_peer_id, new_token, validate_room};

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

const JOIN: &str = concat!(
    include_str!("scripts.lua"),
    r#"
local room, resume, pid, tok, inst, conn = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local rk = 'sig:room:' .. room
local function others(me)
  local list = {}
  for _, m in ipairs(redis.call('ZRANGE', rk, 0, -1)) do
    if m ~= me then table.insert(list, m) end
  end
  return list
end
if resume ~= '' then
  local old = redis.call('GET', 'sig:token:' .. resume)
  if old then
    local pk = 'sig:peer:' .. old
    local f = redis.call('HMGET', pk, 'room', 'inst', 'conn')
    if f[1] == room then
      redis.call('DEL', 'sig:token:' .. resume)
      redis.call('SET', 'sig:token:' .. tok, old)
      if f[2] ~= '' then
        redis.call('SREM', 'sig:inst:' .. f[2] .. ':peers', old)
        if f[2] ~= inst then
          redis.call('PUBLISH', 'sig:ch:' .. f[2], 'R ' .. old .. ' ' .. f[3])
        end
      end
      redis.call('HSET', pk, 'token', tok, 'inst', inst, 'conn', conn, 'qbytes', 0)
      redis.call('SADD', 'sig:inst:' .. inst .. ':peers', old)
      redis.call('ZREM', 'sig:absent', old)
      local qk = 'sig:queue:' .. old
      local backlog = redis.call('LRANGE', qk, 0, -1)
      redis.call('DEL', qk)
      return {'resumed', old, others(old), backlog}
    end
  end
end
local n = redis.call('ZCARD', rk)
if n >= tonumber(ARGV[9]) then return {'room_full', '', {}, {}} end
if n == 0 and redis.call('SCARD', 'sig:rooms') >= tonumber(ARGV[10]) then
  return {'too_many_rooms', '', {}, {}}
end
local members = redis.call('ZRANGE', rk, 0, -1)
redis.call('ZADD', rk, redis.call('INCR', 'sig:seq'), pid)
redis.call('SADD', 'sig:rooms', room)
redis.call('HSET', 'sig:peer:' .. pid, 'room', room, 'token', tok, 'inst', inst, 'conn', conn, 'qbytes', 0)
redis.call('SET', 'sig:token:' .. tok, pid)
redis.call('SADD', 'sig:inst:' .. inst .. ':peers', pid)
redis.call('INCR', 'sig:npeers')
for _, m in ipairs(members) do deliver(m, ARGV[11], false) end
return {'joined', pid, members, {}}
"#
);

const SIGNAL: &str = concat!(
    include_str!("scripts.lua"),
    r#"
local from_room = redis.call('HGET', 'sig:peer:' .. ARGV[3], 'room')
if not from_room then return {'not_joined', ''} end
if redis.call('HGET', 'sig:peer:' .. ARGV[4], 'room') ~= from_room then
  return {'unknown_peer', from_room}
end
deliver(ARGV[4], ARGV[5], true)
return {'ok', ''}
"#
);

/// A frame arrived here for a peer this instance no longer holds: forward
/// it to where the peer is now, or queue it when the peer is (about to be)
/// absent.
const REDELIVER: &str = concat!(
    include_str!("scripts.lua"),
    r#"
local inst = redis.call('HGET', 'sig:peer:' .. ARGV[3], 'inst')
if not inst then return 0 end
if inst == ARGV[5] or inst == '' then enqueue(ARGV[3], ARGV[4]) else deliver(ARGV[3], ARGV[4], true) end
return 1
"#
);

const LEAVE: &str = concat!(
    include_str!("scripts.lua"),
    r#"
local f = redis.call('HMGET', 'sig:peer:' .. ARGV[3], 'inst', 'conn')
if f[1] ~= ARGV[4] or f[2] ~= ARGV[5] then return 0 end
remove_peer(ARGV[3])
return 1
"#
);

const DISCONNECT: &str = concat!(
    include_str!("scripts.lua"),
    r#"
local pk = 'sig:peer:' .. ARGV[3]
local f = redis.call('HMGET', pk, 'inst', 'conn')
if f[1] ~= ARGV[4] or f[2] ~= ARGV[5] then return 0 end
redis.call('HSET', pk, 'inst', '', 'conn', '')
redis.call('SREM', 'sig:inst:' .. ARGV[4] .. ':peers', ARGV[3])
redis.call('ZADD', 'sig:absent', now_ms() + tonumber(ARGV[6]), ARGV[3])
return 1
"#
);

/// Refreshes this instance's liveness, removes expired absent peers and the
/// peers of dead instances, and reports the totals for the gauges:
/// `{rooms, peers, expired, orphaned}`.
const MAINTAIN: &str = concat!(
    include_str!("scripts.lua"),
    r#"
local me, liveness, batch = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('SET', 'sig:alive:' .. me, '1', 'PX', liveness)
redis.call('SADD', 'sig:instances', me)
local due = redis.call('ZRANGEBYSCORE', 'sig:absent', '-inf', now_ms(), 'LIMIT', 0, batch)
for _, p in ipairs(due) do remove_peer(p) end
local orphaned = 0
for _, inst in ipairs(redis.call('SMEMBERS', 'sig:instances')) do
  if inst ~= me and redis.call('EXISTS', 'sig:alive:' .. inst) == 0 then
    local sk = 'sig:inst:' .. inst .. ':peers'
    for _, p in ipairs(redis.call('SMEMBERS', sk)) do
      if redis.call('HGET', 'sig:peer:' .. p, 'inst') == inst then
        remove_peer(p)
        orphaned = orphaned + 1
      end
    end
    redis.call('DEL', sk)
    redis.call('SREM', 'sig:instances', inst)
  end
end
return {redis.call('SCARD', 'sig:rooms'), tonumber(redis.call('GET', 'sig:npeers') or '0'), #due, orphaned}
"#
);

/// A peer attached to a connection of this instance.
#[derive(Debug)]
struct Local {
    conn: ConnHandle,
    room: Arc<str>,
}

/// The scripts, loaded once.
#[derive(Debug)]
struct Scripts {
    join: Script,
    signal: Script,
    redeliver: Script,
    leave: Script,
    disconnect: Script,
    maintain: Script,
}

/// Rooms in Redis; frames to other instances through pub/sub.
pub struct RedisBroker {
    redis: ConnectionManager,
    client: redis::Client,
    subscription: tokio::sync::Mutex<Option<PubSub>>,
    instance: String,
    channel: String,
    liveness: Duration,
    local: Mutex<HashMap<PeerId, Local>>,
    scripts: Scripts,
    settings: BrokerSettings,
    metrics: Arc<Metrics>,
    next_conn: AtomicU64,
    /// Whether the last maintenance pass reached Redis.
    reachable: AtomicBool,
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
    /// Connects to Redis at `url` and subscribes to this instance's channel.
    /// `liveness` is how long this instance counts as alive after its last
    /// refresh.
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
        let client = redis::Client::open(url).map_err(error)?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REQUEST_TIMEOUT))
            .set_response_timeout(Some(REQUEST_TIMEOUT))
            .set_max_delay(Duration::from_secs(1));
        let redis = ConnectionManager::new_with_config(client.clone(), manager)
            .await
            .map_err(error)?;
        let instance = uuid::Uuid::new_v4().simple().to_string();
        let channel = format!("sig:ch:{instance}");
        let mut pubsub = client.get_async_pubsub().await.map_err(error)?;
        pubsub.subscribe(&channel).await.map_err(error)?;
        let broker = Self {
            redis,
            client,
            subscription: tokio::sync::Mutex::new(Some(pubsub)),
            channel,
            liveness,
            local: Mutex::new(HashMap::new()),
            scripts: Scripts {
                join: Script::new(JOIN),
                signal: Script::new(SIGNAL),
                redeliver: Script::new(REDELIVER),
                leave: Script::new(LEAVE),
                disconnect: Script::new(DISCONNECT),
                maintain: Script::new(MAINTAIN),
            },
            settings,
            metrics,
            next_conn: AtomicU64::new(1),
            reachable: AtomicBool::new(true),
            instance,
        };
        // Announce this instance before it takes any connection.
        broker.maintain().await.map_err(error)?;
        info!(instance = %broker.instance, "sharing rooms through Redis");
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

    /// A script call with the queue bounds as its first two arguments.
    fn invocation<'a>(&self, script: &'a Script) -> redis::ScriptInvocation<'a> {
        let limits = &self.settings.registry;
        let mut invocation = script.prepare_invoke();
        invocation
            .arg(limits.max_queued_signals)
            .arg(limits.max_queued_bytes);
        invocation
    }

    /// Runs a script, bounded by [`REQUEST_TIMEOUT`].
    async fn call<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> redis::RedisResult<T> {
        let mut redis = self.redis.clone();
        tokio::time::timeout(REQUEST_TIMEOUT, invocation.invoke_async(&mut redis))
            .await
            .unwrap_or_else(|_| {
                Err(redis::RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no answer from Redis in time",
                )))
            })
    }

    fn unavailable(&self, err: &redis::RedisError) -> Rejection {
        self.metrics.redis_errors.increment(1);
        warn!(%err, "Redis request failed");
        Rejection {
            code: ErrorCode::Internal,
            message: "the room store is unreachable; try again shortly".into(),
            peer_id: None,
        }
    }

    pub(super) async fn join(
        &self,
        conn: &ConnHandle,
        room: &str,
        resume: Option<&str>,
    ) -> Result<PeerId, Rejection> {
        validate_room(room)?;
        let limits = &self.settings.registry;
        let fresh_id = new_peer_id();
        let token = new_token();
        let joined_frame = ServerMessage::PeerJoined { peer_id: fresh_id }.to_json();
        let mut invocation = self.invocation(&self.scripts.join);
        invocation
            .arg(room)
            .arg(resume.unwrap_or(""))
            .arg(fresh_id.to_string())
            .arg(&token)
            .arg(&self.instance)
            .arg(conn.id)
            .arg(limits.max_peers_per_room)
            .arg(limits.max_rooms)
            .arg(joined_frame);
        let (status, peer, peers, backlog): (String, String, Vec<String>, Vec<String>) = self
            .call(&invocation)
            .await
            .map_err(|err| self.unavailable(&err))?;
        let resumed = match status.as_str() {
            "joined" => false,
            "resumed" => true,
            "room_full" => {
                return Err(RegistryError::RoomFull {
                    room: room.to_owned(),
                    limit: limits.max_peers_per_room,
                }
                .into());
            }
            "too_many_rooms" => {
                return Err(RegistryError::TooManyRooms {
                    limit: limits.max_rooms,
                }
                .into());
            }
            other => return Err(self.bad_reply(other)),
        };
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
            resume_token: token,
            resumed,
            limits: self.settings.limits,
        };
        conn.outbox.push(Frame::from(welcome.to_json()));
        for frame in backlog {
            conn.outbox.push(Frame::from(frame));
        }
        let previous = self.lock().insert(
            peer_id,
            Local {
                conn: conn.clone(),
                room: Arc::from(room),
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
        let room = {
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
                let frame = Frame::from(ServerMessage::Signal { from, data }.to_json());
                target.conn.outbox.push(frame);
                self.metrics.signals_relayed.increment(1);
                return Ok(());
            }
            room
        };
        let frame = ServerMessage::Signal { from, data }.to_json();
        let mut invocation = self.invocation(&self.scripts.signal);
        invocation
            .arg(from.to_string())
            .arg(to.to_string())
            .arg(frame);
        let (status, _): (String, String) = self
            .call(&invocation)
            .await
            .map_err(|err| self.unavailable(&err))?;
        match status.as_str() {
            "ok" => {
                self.metrics.signals_relayed.increment(1);
                Ok(())
            }
            "unknown_peer" => Err(RegistryError::UnknownPeer {
                peer: to,
                room: room.to_string(),
            }
            .into()),
            // Removed meanwhile (e.g. its instance was taken for dead).
            "not_joined" => Err(RegistryError::NotJoined("signal").into()),
            other => Err(self.bad_reply(other)),
        }
    }

    pub(super) async fn leave(&self, conn: &ConnHandle, peer: PeerId) -> Result<(), Rejection> {
        {
            let mut local = self.lock();
            match local.get(&peer) {
                Some(entry) if entry.conn == *conn => {
                    local.remove(&peer);
                }
                _ => return Err(RegistryError::NotJoined("leave").into()),
            }
        }
        let mut invocation = self.invocation(&self.scripts.leave);
        invocation
            .arg(peer.to_string())
            .arg(&self.instance)
            .arg(conn.id);
        let _: i64 = self
            .call(&invocation)
            .await
            .map_err(|err| self.unavailable(&err))?;
        Ok(())
    }

    pub(super) async fn disconnect(&self, conn: &ConnHandle, peer: PeerId) {
        {
            let mut local = self.lock();
            if local.get(&peer).is_some_and(|entry| entry.conn == *conn) {
                local.remove(&peer);
            }
        }
        let grace =
            u64::try_from(self.settings.registry.resume_grace.as_millis()).unwrap_or(u64::MAX);
        let mut invocation = self.invocation(&self.scripts.disconnect);
        invocation
            .arg(peer.to_string())
            .arg(&self.instance)
            .arg(conn.id)
            .arg(grace);
        if let Err(err) = self.call::<i64>(&invocation).await {
            self.metrics.redis_errors.increment(1);
            warn!(%err, %peer, "cannot mark a peer absent in Redis; it leaves when this instance is taken for dead");
        }
    }

    /// Reads this instance's channel and keeps the shared state tidy
    /// (liveness, expiry, dead instances) until `shutdown`.
    pub(super) async fn run(&self, shutdown: CancellationToken) {
        let period = (self.liveness / 4).min(Duration::from_millis(500));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pubsub = self.subscription.lock().await.take();
        loop {
            let Some(subscription) = pubsub.as_mut() else {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = tick.tick() => self.maintain_logged().await,
                }
                pubsub = self.resubscribe().await;
                continue;
            };
            let mut messages = subscription.on_message().ready_chunks(SUBSCRIBER_BATCH);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = tick.tick() => self.maintain_logged().await,
                    batch = messages.next() => match batch {
                        Some(batch) => {
                            for message in batch {
                                self.on_message(message.get_payload_bytes()).await;
                            }
                        }
                        None => break,
                    },
                }
            }
            drop(messages);
            warn!("lost the Redis subscription; frames from other instances wait until it is back");
            self.metrics.redis_errors.increment(1);
            pubsub = None;
        }
    }

    async fn resubscribe(&self) -> Option<PubSub> {
        let mut pubsub = match self.client.get_async_pubsub().await {
            Ok(pubsub) => pubsub,
            Err(err) => {
                debug!(%err, "cannot reconnect to Redis for pub/sub yet");
                return None;
            }
        };
        match pubsub.subscribe(&self.channel).await {
            Ok(()) => {
                info!("Redis subscription restored");
                Some(pubsub)
            }
            Err(err) => {
                debug!(%err, "cannot subscribe yet");
                None
            }
        }
    }

    /// Handles one message from this instance's channel.
    async fn on_message(&self, payload: &[u8]) {
        let Ok(text) = std::str::from_utf8(payload) else {
            return warn!("non-UTF-8 message on the instance channel; ignored");
        };
        let mut parts = text.splitn(3, ' ');
        let (Some(kind), Some(peer), Some(rest)) = (parts.next(), parts.next(), parts.next())
        else {
            return warn!(text, "malformed message on the instance channel; ignored");
        };
        let Ok(peer) = peer.parse::<PeerId>() else {
            return warn!(text, "malformed peer id on the instance channel; ignored");
        };
        match kind {
            "F" => {
                let delivered = self
                    .lock()
                    .get(&peer)
                    .map(|entry| entry.conn.outbox.push(Frame::from(rest)));
                if delivered.is_none() && rest.starts_with(r#"{"type":"signal""#) {
                    self.redeliver(peer, rest).await;
                }
            }
            "R" => {
                let mut local = self.lock();
                if local
                    .get(&peer)
                    .is_some_and(|entry| entry.conn.id.to_string() == rest)
                    && let Some(old) = local.remove(&peer)
                {
                    old.conn.outbox.close(CloseReason::Replaced);
                }
            }
            _ => warn!(
                kind,
                "unknown message kind on the instance channel; ignored"
            ),
        }
    }

    /// A signal for a peer that left this instance: forward or queue it.
    async fn redeliver(&self, peer: PeerId, frame: &str) {
        let mut invocation = self.invocation(&self.scripts.redeliver);
        invocation
            .arg(peer.to_string())
            .arg(frame)
            .arg(&self.instance);
        if let Err(err) = self.call::<i64>(&invocation).await {
            self.metrics.redis_errors.increment(1);
            warn!(%err, %peer, "cannot redeliver a signal; dropped");
        }
    }

    /// Whether the last maintenance pass reached Redis.
    pub(super) fn ready(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    async fn maintain_logged(&self) {
        let result = self.maintain().await;
        let was = self.reachable.swap(result.is_ok(), Ordering::Relaxed);
        match result {
            Ok(()) if !was => info!("Redis reachable again"),
            Ok(()) => {}
            Err(err) => {
                self.metrics.redis_errors.increment(1);
                warn!(%err, "cannot refresh liveness in Redis; /readyz answers 503");
            }
        }
    }

    async fn maintain(&self) -> redis::RedisResult<()> {
        let liveness = u64::try_from(self.liveness.as_millis()).unwrap_or(u64::MAX);
        let mut invocation = self.invocation(&self.scripts.maintain);
        invocation
            .arg(&self.instance)
            .arg(liveness)
            .arg(EXPIRE_BATCH);
        let (rooms, peers, expired, orphaned): (u64, i64, u64, u64) =
            self.call(&invocation).await?;
        self.metrics.rooms.set(rooms as f64);
        self.metrics.peers.set(peers.max(0) as f64);
        if expired > 0 {
            info!(expired, "resume grace period over; peers left their rooms");
            self.metrics.peers_expired.increment(expired);
        }
        if orphaned > 0 {
            info!(
                orphaned,
                "peers of an instance that stopped refreshing its liveness left their rooms"
            );
        }
        Ok(())
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

    fn lock(&self) -> MutexGuard<'_, HashMap<PeerId, Local>> {
        self.local.lock().unwrap_or_else(PoisonError::into_inner)
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
