//! Tells a sender whose data is still being acknowledged from one whose
//! receiver stopped taking it: the bound that keeps a send from waiting
//! forever for room in the channel or for the receiver's `done`.

use std::time::Duration;

use tokio::time::Instant;

/// Longest a sender waits while nothing it sent is acknowledged, the same
/// bound the receiver puts on a silent sender
/// ([`super::DEFAULT_IDLE_TIMEOUT`]).
pub const ACK_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the bytes still unacknowledged are looked at.
pub(crate) const ACK_CHECK: Duration = Duration::from_millis(250);

/// Watches the bytes a channel holds unacknowledged; time is passed in.
#[derive(Debug, Clone)]
pub(crate) struct AckWatch {
    limit: Duration,
    queued: Option<usize>,
    progressed: Instant,
}

impl AckWatch {
    /// Starts watching at `now`; `limit` is the longest wait without an
    /// acknowledgement.
    pub(crate) fn new(now: Instant, limit: Duration) -> Self {
        Self {
            limit,
            queued: None,
            progressed: now,
        }
    }

    /// Records `queued` bytes unacknowledged at `now`. False once the count
    /// has not fallen for longer than the limit (a count that stays at 0
    /// means nothing more arrives from the other side either).
    pub(crate) fn observe(&mut self, queued: usize, now: Instant) -> bool {
        let acknowledged = self.queued.is_none_or(|before| queued < before);
        if acknowledged {
            self.progressed = now;
        }
        self.queued = Some(queued);
        now.duration_since(self.progressed) <= self.limit
    }

    /// The limit, for messages.
    pub(crate) fn limit(&self) -> Duration {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `(seconds after start, bytes queued, expected answer)` in order.
    fn check(case: &str, steps: &[(u64, usize, bool)]) {
        let start = Instant::now();
        let mut watch = AckWatch::new(start, Duration::from_secs(60));
        for &(seconds, queued, expected) in steps {
            let at = start + Duration::from_secs(seconds);
            assert_eq!(
                expected,
                watch.observe(queued, at),
                "{case}: at {seconds} s"
            );
        }
    }

    #[test]
    fn stalls_only_when_nothing_was_acknowledged_for_the_limit() {
        check(
            "a falling queue is progress",
            &[
                (0, 4_000_000, true),
                (50, 3_000_000, true),
                (100, 2_000_000, true),
            ],
        );
        check(
            "a flat queue fails after the limit",
            &[
                (0, 4_000_000, true),
                (60, 4_000_000, true),
                (61, 4_000_000, false),
            ],
        );
        check(
            "a growing queue is not progress",
            &[(0, 1_000, true), (30, 2_000, true), (61, 2_000, false)],
        );
        check(
            "the limit runs from the last acknowledgement",
            &[
                (0, 1_000, true),
                (30, 0, true),
                (90, 0, true),
                (91, 0, false),
            ],
        );
    }
}
