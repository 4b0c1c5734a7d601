//! Joins this instance has sent to Redis and not yet seen answered.
//!
//! A frame can reach an instance for a peer that Redis already places there
//! before the instance has read the reply of the join that put it there (the
//! reply and the frame come over different connections). Handing such a
//! frame on as if the peer were absent would queue it for a peer that is
//! present, where nobody reads it. So a frame for an unknown peer first
//! waits for the joins in flight when it arrived.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

/// The joins in flight, by ticket.
#[derive(Debug, Default)]
pub(super) struct JoinsInFlight {
    next: AtomicU64,
    in_flight: Mutex<BTreeSet<u64>>,
    done: Notify,
}

/// One join in flight; finished when dropped.
#[derive(Debug)]
pub(super) struct JoinTicket<'a> {
    joins: &'a JoinsInFlight,
    ticket: u64,
}

impl JoinsInFlight {
    /// A join begins.
    pub(super) fn start(&self) -> JoinTicket<'_> {
        let ticket = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(ticket);
        JoinTicket {
            joins: self,
            ticket,
        }
    }

    /// Waits (at most `limit`) until every join in flight now has finished.
    /// Returns at once when none is.
    pub(super) async fn settle(&self, limit: Duration) {
        let Some(newest) = self.lock().last().copied() else {
            return;
        };
        let wait = async {
            loop {
                let done = self.done.notified();
                let mut done = std::pin::pin!(done);
                done.as_mut().enable();
                if self.lock().first().is_none_or(|&oldest| oldest > newest) {
                    return;
                }
                done.await;
            }
        };
        let _ = tokio::time::timeout(limit, wait).await;
    }

    fn lock(&self) -> MutexGuard<'_, BTreeSet<u64>> {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for JoinTicket<'_> {
    fn drop(&mut self) {
        self.joins.lock().remove(&self.ticket);
        self.joins.done.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn settling_waits_for_the_joins_in_flight_then_not_for_later_ones() {
        let joins = JoinsInFlight::default();
        // None in flight: at once.
        tokio::time::timeout(
            Duration::from_millis(50),
            joins.settle(Duration::from_secs(5)),
        )
        .await
        .unwrap_or_else(|_| panic!("settled at once"));
        let first = joins.start();
        let settle = joins.settle(Duration::from_secs(5));
        let mut settle = std::pin::pin!(settle);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), settle.as_mut())
                .await
                .is_err(),
            "waits while the join is in flight"
        );
        // A join that began later does not hold it up.
        let _later = joins.start();
        drop(first);
        tokio::time::timeout(Duration::from_millis(50), settle)
            .await
            .unwrap_or_else(|_| panic!("settled once the first join finished"));
    }
}
