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

    const LIMIT: Duration = Duration::from_secs(60);

    #[test]
    fn falling_queue_is_progress() {
        let start = Instant::now();
        let mut watch = AckWatch::new(start, LIMIT);
        for (second, queued) in [(0, 4_000_000), (50, 3_000_000), (100, 2_000_000)] {
            assert!(watch.observe(queued, start + Duration::from_secs(second)));
        }
    }

    #[test]
    fn flat_queue_fails_after_the_limit() {
        let start = Instant::now();
        let mut watch = AckWatch::new(start, LIMIT);
        assert!(watch.observe(4_000_000, start));
        assert!(watch.observe(4_000_000, start + LIMIT));
        assert!(!watch.observe(4_000_000, start + LIMIT + Duration::from_millis(1)));
    }

    #[test]
    fn a_growing_queue_is_not_progress() {
        let start = Instant::now();
        let mut watch = AckWatch::new(start, LIMIT);
        assert!(watch.observe(1_000, start));
        assert!(watch.observe(2_000, start + Duration::from_secs(30)));
        assert!(!watch.observe(2_000, start + Duration::from_secs(61)));
    }

    #[test]
    fn the_limit_runs_from_the_last_acknowledgement() {
        let start = Instant::now();
        let mut watch = AckWatch::new(start, LIMIT);
        assert!(watch.observe(1_000, start));
        assert!(watch.observe(0, start + Duration::from_secs(30)));
        assert!(watch.observe(0, start + Duration::from_secs(90)));
        assert!(!watch.observe(0, start + Duration::from_secs(91)));
    }
}
