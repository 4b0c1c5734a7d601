//! The task that empties the ordered command queue into Redis, and hands on
//! signals that reached no instance.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tracing::warn;

use super::room_reply::RoomReply;
use super::{REQUEST_TIMEOUT, lock};
use crate::broker::redis_keys::{CONTROL, hash_tag, instance_alive, instance_channel, room_prefix};
use crate::broker::redis_link::RedisLink;
use crate::broker::redis_pipe::{PipeReceiver, within};
use crate::broker::redis_routes::LocalPeers;
use crate::broker::redis_scripts::{ACCOUNT, REDELIVER};
use crate::metrics::Metrics;
use crate::registry::RegistryLimits;

/// Empties the command queue into Redis until the broker is dropped; a
/// failed pipeline makes the instance not ready (`/readyz` 503). A
/// signal published to an instance nobody listens for any more (it stopped
/// or died) is handed on by the script that redelivers frames: to where its
/// peer is now, or into its queue; and routes through that instance are
/// forgotten.
pub(super) async fn run_pipe(
    mut receiver: PipeReceiver,
    mut redis: RedisLink,
    local: Arc<Mutex<LocalPeers>>,
    limits: RegistryLimits,
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
            let instance = hash_tag(&publish.channel).trim_start_matches("i:");
            // An instance still alive that heard nothing is between two
            // subscriptions (a reconnect, a failover): a peer it still holds
            // is connected, so the frame is lost like any frame published
            // meanwhile rather than queued as if the peer were absent.
            let mut alive = redis::cmd("EXISTS");
            alive.arg(instance_alive(instance));
            let alive = match within(REQUEST_TIMEOUT, alive.query_async::<i64>(&mut redis)).await {
                Ok(alive) => alive,
                Err(err) => {
                    metrics.redis_errors.increment(1);
                    warn!(%err, "cannot hand on a signal for a gone instance; dropped");
                    continue;
                }
            };
            let prefix = room_prefix(&publish.room);
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(REDELIVER)
                .arg(1)
                .arg(&prefix)
                .arg(limits.max_queued_signals)
                .arg(limits.max_queued_bytes)
                .arg(&*publish.room)
                .arg(peer)
                .arg(frame)
                .arg(instance)
                .arg(alive);
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
                // A frame queued here counts toward the absent peers' budget;
                // evicting over it is left to the next maintenance pass.
                if !reply.queue_changes.is_empty() {
                    let mut account = redis::cmd("EVAL");
                    account
                        .arg(ACCOUNT)
                        .arg(1)
                        .arg(CONTROL)
                        .arg(limits.max_absent_queue_bytes);
                    for (entry, delta) in &reply.queue_changes {
                        account.arg(entry).arg(delta);
                    }
                    let _: Vec<String> = account.query_async(&mut redis).await?;
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
