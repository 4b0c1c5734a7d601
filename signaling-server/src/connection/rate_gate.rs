//! A connection's message rate, decided without I/O: each message takes a
//! token; a message over the rate is dropped, and the client is told so at
//! most once per [`NOTICE_INTERVAL`] (further drops are only counted).

use std::time::{Duration, Instant};

use crate::rate_limit::TokenBucket;

/// At most one `rate_limited` error per this interval.
pub(super) const NOTICE_INTERVAL: Duration = Duration::from_secs(1);

/// What happens to one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admission {
    /// Within the rate: handle it.
    Admit,
    /// Over the rate: drop it and send `rate_limited`.
    DropAndTell,
    /// Over the rate, and the client was told within the interval: drop it.
    DropQuietly,
}

/// The bucket and when the client was last told.
#[derive(Debug)]
pub(super) struct RateGate {
    bucket: TokenBucket,
    told_at: Option<Instant>,
}

impl RateGate {
    /// `per_second` messages, bursts of `burst`, starting full at `now`.
    pub(super) fn new(per_second: u32, burst: u32, now: Instant) -> Self {
        Self {
            bucket: TokenBucket::new(per_second, burst, now),
            told_at: None,
        }
    }

    /// Decides about a message that arrived at `now`.
    pub(super) fn admit(&mut self, now: Instant) -> Admission {
        if self.bucket.try_take(now) {
            return Admission::Admit;
        }
        if self
            .told_at
            .is_some_and(|at| now.duration_since(at) < NOTICE_INTERVAL)
        {
            return Admission::DropQuietly;
        }
        self.told_at = Some(now);
        Admission::DropAndTell
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_the_rate_the_client_is_told_once_a_second() {
        let start = Instant::now();
        let mut gate = RateGate::new(1, 2, start);
        assert_eq!(gate.admit(start), Admission::Admit);
        assert_eq!(gate.admit(start), Admission::Admit);
        assert_eq!(gate.admit(start), Admission::DropAndTell);
        // Half a token back: still over, and told less than a second ago.
        let soon = start + Duration::from_millis(500);
        assert_eq!(gate.admit(soon), Admission::DropQuietly);
        // A whole token back a second later; the next one over is told again.
        let later = start + NOTICE_INTERVAL;
        assert_eq!(gate.admit(later), Admission::Admit);
        assert_eq!(gate.admit(later), Admission::DropAndTell);
    }
}
