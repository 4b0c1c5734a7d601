//! The Redis broker's background work, run by [`RedisBroker::run`]: reading
//! this instance's channel (frames, takeovers, routes to forget), and
//! keeping the shared state tidy: liveness, expiry, the peers of dead
//! instances, and putting this instance's peers back after Redis lost its
//! data.

use std::collections::HashMap;
use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::future::join_all;
use redis::{PushInfo, PushKind, Value};
use signaling_protocol::PeerId;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{EXPIRE_BATCH, REQUEST_TIMEOUT, RedisBroker, SUBSCRIBER_BATCH};
use crate::broker::redis_keys::{
    CONTROL, instance_alive, instance_peers, peer_entry, room_prefix, split_peer_entry,
};
use crate::broker::redis_pipe::within;
use crate::broker::redis_scripts::{
    EXPIRE, FORGET_DEADLINE, MAINTAIN, ORPHAN, REDELIVER, RESTORE, RESTORE_ROOMS,
};
use crate::outbox::{CloseReason, SharedText};

/// A room found vanished stays counted if a join was admitted into it this
/// recently: that join may still be on its way to the room (the count and
/// the room live on different shards, and a request may take up to
/// `REQUEST_TIMEOUT`).
const ROOM_FORGET_GRACE: Duration = Duration::from_secs(4);

/// Peers put back into Redis by one script call, and members added to a
/// control set by one command.
const RESTORE_BATCH: usize = 256;

/// Room scripts of one maintenance step waiting for Redis at once: they go
/// out together in the ordered pipe's pipelines rather than one round trip
/// each.
const CONCURRENT_CALLS: usize = 64;

impl RedisBroker {
    /// Reads this instance's channel and keeps the shared state tidy
    /// (liveness, expiry, dead instances) until `shutdown`. The three go on
    /// side by side: a long maintenance pass (putting peers back, say) must
    /// neither hold up frames from other instances nor let this instance's
    /// liveness lapse.
    pub(in crate::broker) async fn run(&self, shutdown: CancellationToken) {
        let period = (self.liveness / 4).min(Duration::from_millis(500));
        let Some(mut pushes) = self.pushes.lock().await.take() else {
            return warn!("the Redis broker runs only once");
        };
        let read = async {
            let mut batch = Vec::with_capacity(SUBSCRIBER_BATCH);
            while pushes.recv_many(&mut batch, SUBSCRIBER_BATCH).await > 0 {
                for push in batch.drain(..) {
                    self.on_push(push).await;
                }
            }
        };
        let upkeep = async {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                self.maintain_logged().await;
            }
        };
        let liveness = async {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                self.refresh_liveness().await;
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = read => {}
            () = upkeep => {}
            () = liveness => {}
        }
    }

    /// Renews this instance's liveness key, outside the maintenance pass.
    async fn refresh_liveness(&self) {
        let liveness = u64::try_from(self.liveness.as_millis()).unwrap_or(u64::MAX);
        let mut cmd = redis::cmd("SET");
        cmd.arg(instance_alive(&self.instance))
            .arg(1)
            .arg("PX")
            .arg(liveness);
        let mut redis = self.redis.clone();
        if let Err(err) = within(REQUEST_TIMEOUT, cmd.query_async::<()>(&mut redis)).await {
            debug!(%err, "cannot renew this instance's liveness");
        }
    }

    /// Handles one push from Redis: a message on this instance's channel,
    /// or news of the subscription.
    async fn on_push(&self, push: PushInfo) {
        match push.kind {
            PushKind::Message | PushKind::SMessage => {
                if let Some(Value::BulkString(payload)) = push.data.get(1) {
                    self.on_message(payload).await;
                }
            }
            PushKind::Subscribe | PushKind::SSubscribe => {
                // A renewed subscription: notices to forget routes may have
                // been missed meanwhile.
                self.lock().forget_all_routes();
            }
            PushKind::Disconnection => {
                self.metrics.redis_errors.increment(1);
                warn!(
                    "lost a connection to Redis; frames from other instances wait until it is back"
                );
            }
            _ => {}
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
            "S" | "F" => {
                let Some((room, frame)) = rest.split_once('\n') else {
                    return warn!(text, "malformed frame on the instance channel; ignored");
                };
                if self.deliver_here(peer, frame) || kind == "F" {
                    return;
                }
                // A signal: the peer may be joining here right now.
                self.joins.settle(REQUEST_TIMEOUT).await;
                if !self.deliver_here(peer, frame) {
                    self.redeliver(peer, room, frame).await;
                }
            }
            "R" => {
                let old = self.lock().detach_conn_id(peer, rest);
                if let Some(old) = old {
                    old.conn.outbox.close(CloseReason::Replaced);
                    let entry = peer_entry(&peer.to_string(), &old.room);
                    self.control_set("SREM", &instance_peers(&self.instance), &entry)
                        .await;
                }
            }
            "L" => self.lock().forget(rest, &peer),
            _ => warn!(
                kind,
                "unknown message kind on the instance channel; ignored"
            ),
        }
    }

    /// Queues `frame` for `peer` if it is attached here.
    fn deliver_here(&self, peer: PeerId, frame: &str) -> bool {
        self.lock()
            .get(&peer)
            .map(|entry| entry.conn.outbox.push(SharedText::from(frame)))
            .is_some()
    }

    /// A signal for a peer that left this instance: forward or queue it.
    async fn redeliver(&self, peer: PeerId, room: &str, frame: &str) {
        let mut script = self.room_script(REDELIVER, room);
        script
            .0
            .arg(peer.to_string())
            .arg(frame)
            .arg(&self.instance)
            // This instance does not hold the peer (its disconnect is on its way).
            .arg(0);
        if let Err(err) = self.run_room(room, script).await {
            self.metrics.redis_errors.increment(1);
            warn!(%err, %peer, "cannot redeliver a signal; dropped");
        }
    }

    /// Whether the last maintenance pass reached Redis.
    pub(in crate::broker) fn ready(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    async fn maintain_logged(&self) {
        if let Err(err) = self.maintain().await {
            self.reachable.store(false, Ordering::Relaxed);
            self.metrics.redis_errors.increment(1);
            warn!(%err, "cannot refresh liveness in Redis; /readyz answers 503");
        }
    }

    pub(super) async fn maintain(&self) -> redis::RedisResult<()> {
        let liveness = u64::try_from(self.liveness.as_millis()).unwrap_or(u64::MAX);
        let attached = self.lock().peer_count();
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(MAINTAIN)
            .arg(1)
            .arg(CONTROL)
            .arg(&self.instance)
            .arg(liveness)
            .arg(EXPIRE_BATCH)
            .arg(uuid::Uuid::new_v4().simple().to_string())
            .arg(attached);
        let mut redis = self.redis.clone();
        type Answer = (u64, i64, String, Vec<String>, Vec<String>, Vec<String>, u64);
        let (rooms, peers, epoch, due, orphans, sample, queued): Answer =
            within(REQUEST_TIMEOUT, cmd.query_async(&mut redis)).await?;
        // Reachable from this answer on, though the work below (putting
        // peers back, expiry) may still take a while.
        if !self.reachable.swap(true, Ordering::Relaxed) {
            info!("Redis reachable again");
        }
        let previous = self
            .epoch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(epoch.clone());
        if previous.is_some_and(|previous| previous != epoch) {
            // From the moment the loss is seen: while this instance puts its
            // peers back, one of them may already signal a peer of an
            // instance that has not (yet) done the same.
            self.mark_restored();
            self.restore().await;
            self.mark_restored();
        }
        self.metrics.rooms.set(rooms as f64);
        self.metrics.peers.set(peers.max(0) as f64);
        let expired = self.expire(&due).await;
        if expired > 0 {
            info!(expired, "resume grace period over; peers left their rooms");
            self.metrics.peers_expired.increment(expired);
        }
        let orphaned = self.remove_orphans(&orphans).await;
        if orphaned > 0 {
            info!(
                orphaned,
                "peers of an instance that stopped refreshing its liveness left their rooms"
            );
        }
        self.forget_vanished_rooms(&sample).await;
        if usize::try_from(queued).unwrap_or(usize::MAX)
            > self.settings.registry.max_absent_queue_bytes
        {
            self.account_queues(Vec::new()).await;
        }
        Ok(())
    }

    /// Removes the absent peers whose deadline passed (pairs of entry and
    /// deadline); answers how many left.
    async fn expire(&self, due: &[String]) -> u64 {
        let pairs: Vec<&[String]> = due.chunks_exact(2).collect();
        let mut expired = 0;
        for chunk in pairs.chunks(CONCURRENT_CALLS) {
            expired += join_all(chunk.iter().map(|pair| self.expire_one(&pair[0], &pair[1])))
                .await
                .into_iter()
                .sum::<u64>();
        }
        expired
    }

    /// Removes one absent peer (`PEER ROOM`) if its deadline passed;
    /// answers 1 if it left.
    async fn expire_one(&self, entry: &str, deadline: &str) -> u64 {
        let Some((peer, room)) = split_peer_entry(entry) else {
            return 0;
        };
        let mut script = self.room_script(EXPIRE, room);
        script.0.arg(peer);
        match self.run_room(room, script).await {
            Ok(reply) if reply.status == "later" => 0,
            Ok(reply) => {
                let mut forget = redis::cmd("EVAL");
                forget
                    .arg(FORGET_DEADLINE)
                    .arg(1)
                    .arg(CONTROL)
                    .arg(entry)
                    .arg(deadline);
                if let Err(err) = self.call::<i64>(forget, CONTROL).await {
                    self.metrics.redis_errors.increment(1);
                    warn!(%err, "cannot forget a resume deadline; the next pass tries again");
                }
                u64::from(reply.status == "expired")
            }
            Err(err) => {
                self.metrics.redis_errors.increment(1);
                warn!(%err, "cannot expire an absent peer yet");
                0
            }
        }
    }

    /// Removes peers of dead instances (pairs of instance and entry) unless
    /// they resumed elsewhere; answers how many left.
    async fn remove_orphans(&self, orphans: &[String]) -> u64 {
        let pairs: Vec<&[String]> = orphans.chunks_exact(2).collect();
        let mut removed = 0;
        for chunk in pairs.chunks(CONCURRENT_CALLS) {
            removed += join_all(
                chunk
                    .iter()
                    .map(|pair| self.remove_orphan(&pair[0], &pair[1])),
            )
            .await
            .into_iter()
            .sum::<u64>();
        }
        removed
    }

    /// Removes one peer (`PEER ROOM`) of the dead instance `dead` unless it
    /// resumed elsewhere; answers 1 if it left.
    async fn remove_orphan(&self, dead: &str, entry: &str) -> u64 {
        let Some((peer, room)) = split_peer_entry(entry) else {
            return 0;
        };
        let mut script = self.room_script(ORPHAN, room);
        script.0.arg(peer).arg(dead);
        match self.run_room(room, script).await {
            Ok(reply) => {
                self.control_set("SREM", &instance_peers(dead), entry).await;
                u64::from(reply.status == "removed")
            }
            Err(err) => {
                self.metrics.redis_errors.increment(1);
                warn!(%err, "cannot remove a dead instance's peer yet");
                0
            }
        }
    }

    /// Drops rooms that no longer exist from the count: a sample each pass
    /// repairs what an instance that stopped between a room's last leave
    /// and the count's update left behind.
    async fn forget_vanished_rooms(&self, sample: &[String]) {
        join_all(sample.iter().map(|room| self.forget_if_vanished(room))).await;
    }

    /// Drops `room` from the count if it no longer exists.
    async fn forget_if_vanished(&self, room: &str) {
        let prefix = room_prefix(room);
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(format!("{prefix}r:{room}"));
        match self.call::<i64>(cmd, &prefix).await {
            Ok(0) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                let cutoff = now.saturating_sub(ROOM_FORGET_GRACE);
                self.forget_room(room, cutoff.as_millis() as u64).await;
            }
            Ok(_) => {}
            Err(err) => {
                self.metrics.redis_errors.increment(1);
                warn!(%err, "cannot check that a room still exists");
            }
        }
    }

    /// Redis lost its data (it restarted empty): puts this instance's peers
    /// back, so their rooms work again without anyone rejoining. Absent
    /// peers, which no instance holds, and what was queued for them are
    /// lost.
    async fn restore(&self) {
        let peers = self.lock().snapshot();
        warn!(
            peers = peers.len(),
            "Redis lost its data; putting this instance's peers back"
        );
        let mut rooms: HashMap<_, Vec<_>> = HashMap::new();
        for (peer, room, token, conn) in peers {
            rooms.entry(room).or_default().push((peer, token, conn));
        }
        // The shared records first, many to a command.
        let names: Vec<&str> = rooms.keys().map(|room| &**room).collect();
        let entries: Vec<String> = rooms
            .iter()
            .flat_map(|(room, peers)| {
                peers
                    .iter()
                    .map(|(peer, _, _)| peer_entry(&peer.to_string(), room))
            })
            .collect();
        let inst_key = instance_peers(&self.instance);
        for batch in names.chunks(RESTORE_BATCH) {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(RESTORE_ROOMS).arg(1).arg(CONTROL).arg(batch);
            if let Err(err) = self.call::<i64>(cmd, CONTROL).await {
                self.metrics.redis_errors.increment(1);
                warn!(%err, "cannot count the restored rooms in Redis");
            }
        }
        for batch in entries.chunks(RESTORE_BATCH) {
            let batch: Vec<&str> = batch.iter().map(String::as_str).collect();
            self.control_set_many("SADD", &inst_key, &batch).await;
        }
        // Then each room's peers, rooms side by side; a script a batch of
        // peers, so its arguments bound what one call holds.
        let calls: Vec<_> = rooms
            .iter()
            .flat_map(|(room, peers)| peers.chunks(RESTORE_BATCH).map(move |batch| (room, batch)))
            .collect();
        let (mut restored, mut failed) = (0, 0);
        for chunk in calls.chunks(CONCURRENT_CALLS) {
            let outcomes = join_all(
                chunk
                    .iter()
                    .map(|(room, batch)| self.restore_room(room, batch)),
            )
            .await;
            for outcome in outcomes {
                match outcome {
                    Ok(count) => restored += count,
                    Err(count) => failed += count,
                }
            }
        }
        if failed > 0 {
            self.metrics.redis_errors.increment(1);
            warn!(
                failed,
                restored, "some peers could not be put back into Redis"
            );
        } else {
            info!(restored, "peers put back into Redis");
        }
    }

    /// Puts `peers` of `room` back; answers how many were, or how many
    /// could not be.
    async fn restore_room(
        &self,
        room: &str,
        peers: &[(PeerId, String, u64)],
    ) -> Result<usize, usize> {
        let mut script = self.room_script(RESTORE, room);
        script.0.arg(&self.instance);
        for (peer, token, conn) in peers {
            script.0.arg(peer.to_string()).arg(token).arg(conn);
        }
        match self.run_room(room, script).await {
            Ok(reply) => Ok(reply.detail.parse::<usize>().unwrap_or(0)),
            Err(_) => Err(peers.len()),
        }
    }
}
