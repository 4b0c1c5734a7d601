//! The Redis broker's background work, run by [`RedisBroker::run`]: reading
//! this instance's channel (frames, takeovers, routes to forget), and
//! keeping the shared state tidy: liveness, expiry, the peers of dead
//! instances, and putting this instance's peers back after Redis lost its
//! data.

use futures_util::StreamExt;
use redis::aio::PubSub;
use signaling_protocol::PeerId;
use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{EXPIRE_BATCH, REQUEST_TIMEOUT, RedisBroker, SUBSCRIBER_BATCH};
use crate::broker::redis_pipe::within;
use crate::broker::redis_scripts::{REDELIVER, RESTORE};
use crate::outbox::{CloseReason, SharedText};

/// Peers put back into Redis by one script call.
const RESTORE_BATCH: usize = 256;

impl RedisBroker {
    /// Reads this instance's channel and keeps the shared state tidy
    /// (liveness, expiry, dead instances) until `shutdown`.
    pub(in crate::broker) async fn run(&self, shutdown: CancellationToken) {
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
                // Notices to forget routes may have been missed meanwhile.
                self.lock().forget_all_routes();
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
                if self.deliver_here(peer, rest) {
                    return;
                }
                if rest.starts_with(r#"{"type":"signal""#) {
                    // The peer may be joining here right now.
                    self.joins.settle(REQUEST_TIMEOUT).await;
                    if !self.deliver_here(peer, rest) {
                        self.redeliver(peer, rest).await;
                    }
                }
            }
            "R" => {
                if let Some(old) = self.lock().detach_conn_id(peer, rest) {
                    old.conn.outbox.close(CloseReason::Replaced);
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
    async fn redeliver(&self, peer: PeerId, frame: &str) {
        let mut cmd = self.script(REDELIVER);
        cmd.arg(peer.to_string()).arg(frame).arg(&self.instance);
        if let Err(err) = self.call::<i64>(cmd).await {
            self.metrics.redis_errors.increment(1);
            warn!(%err, %peer, "cannot redeliver a signal; dropped");
        }
    }

    /// Whether the last maintenance pass reached Redis.
    pub(in crate::broker) fn ready(&self) -> bool {
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

    pub(super) async fn maintain(&self) -> redis::RedisResult<()> {
        let liveness = u64::try_from(self.liveness.as_millis()).unwrap_or(u64::MAX);
        let limits = &self.settings.registry;
        let mut invocation = self.maintain_script.prepare_invoke();
        invocation
            .arg(limits.max_queued_signals)
            .arg(limits.max_queued_bytes)
            .arg(&self.instance)
            .arg(liveness)
            .arg(EXPIRE_BATCH)
            .arg(uuid::Uuid::new_v4().simple().to_string());
        let mut redis = self.redis.clone();
        let (rooms, peers, expired, orphaned, epoch): (u64, i64, u64, u64, String) =
            within(REQUEST_TIMEOUT, invocation.invoke_async(&mut redis)).await?;
        let previous = self
            .epoch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(epoch.clone());
        if previous.is_some_and(|previous| previous != epoch) {
            self.restore().await;
        }
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
        let mut restored = 0;
        let mut failed = 0;
        // A script a batch: its arguments bound what one call holds.
        for batch in peers.chunks(RESTORE_BATCH) {
            let mut cmd = self.script(RESTORE);
            cmd.arg(&self.instance);
            for (peer, room, token, conn) in batch {
                cmd.arg(&**room).arg(peer.to_string()).arg(token).arg(conn);
            }
            match self.call::<usize>(cmd).await {
                Ok(count) => restored += count,
                Err(_) => failed += batch.len(),
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
}
