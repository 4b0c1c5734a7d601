//! The server-wide budget of bytes queued for absent peers
//! (`--max-absent-queue-bytes`), across every instance: room scripts report
//! how each absent peer's queue changed, the `ACCOUNT` script adds that to
//! the count under the control tag and names the peers with the largest
//! queues while the count is over the budget, and those are evicted (they
//! leave their rooms, the others get `peer_left`), as the in-memory broker
//! does. A queue may pass the budget for as long as that round takes.

use tracing::{info, warn};

use super::RedisBroker;
use crate::broker::redis_keys::{CONTROL, split_peer_entry};
use crate::broker::redis_scripts::{ACCOUNT, EVICT};

/// Rounds of eviction after one change; each round's evictions may leave
/// the count over the budget still, when peers resumed meanwhile. A last
/// round counts what the evictions of the one before changed.
const MAX_ROUNDS: usize = 4;

impl RedisBroker {
    /// Adds `changes` (entry and bytes) to the count and evicts absent
    /// peers while it is over the budget. With no changes it only checks
    /// the budget (each maintenance pass does, for changes counted by the
    /// task that hands frames on).
    pub(super) async fn account_queues(&self, mut changes: Vec<(String, String)>) {
        let budget = self.settings.registry.max_absent_queue_bytes;
        for round in 0..=MAX_ROUNDS {
            if round > 0 && changes.is_empty() {
                return;
            }
            // The last round only counts what the evictions before it changed.
            let limit = if round == MAX_ROUNDS {
                usize::MAX
            } else {
                budget
            };
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(ACCOUNT).arg(1).arg(CONTROL).arg(limit);
            for (entry, change) in &changes {
                cmd.arg(entry).arg(change);
            }
            let evict: Vec<String> = match self.call(cmd, CONTROL).await {
                Ok(evict) => evict,
                Err(err) => {
                    self.metrics.redis_errors.increment(1);
                    warn!(%err, "cannot count the bytes queued for absent peers");
                    return;
                }
            };
            changes = Vec::new();
            for entry in evict {
                let Some((peer, room)) = split_peer_entry(&entry) else {
                    continue;
                };
                let mut script = self.room_script(EVICT, room);
                script.0.arg(peer);
                match self.run_room_once(room, script).await {
                    Ok(reply) if reply.status == "evicted" => {
                        info!(
                            peer,
                            room,
                            "absent peer evicted: the queues of absent peers are over their budget"
                        );
                        changes.extend(
                            reply
                                .queue_changes
                                .into_iter()
                                .map(|(entry, delta)| (entry, delta.to_string())),
                        );
                    }
                    // No longer absent, or gone: its count becomes what it holds.
                    Ok(reply) => changes.push((entry.clone(), format!("={}", reply.detail))),
                    Err(err) => {
                        self.metrics.redis_errors.increment(1);
                        warn!(%err, "cannot evict an absent peer");
                    }
                }
            }
        }
    }
}
