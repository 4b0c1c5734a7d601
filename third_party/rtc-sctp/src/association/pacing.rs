//! Pacing of new DATA: the congestion window spread over the round trip instead of sent in
//! bursts.
//!
//! Without it, an acknowledgement that releases much of the window (the end of a recovery, a
//! delayed SACK, a window that just grew) sends all of it back to back. A receiver whose
//! socket holds less than that burst drops the rest: with a desktop kernel's 425 KiB socket
//! buffer on a 100 ms path, the bursts themselves caused the losses that held the window near
//! the buffer's size (3.3 MB/s where TCP moved 14). A token bucket filled at a multiple of
//! cwnd / SRTT (twice in slow start so the window can still double, 1.25 times in congestion
//! avoidance, as Linux TCP paces) sends the same window evenly.
//!
//! Sans-IO: time comes in as an argument.

use std::time::{Duration, Instant};

/// How much the bucket holds beyond one chunk: a few packets, or what the rate sends in
/// [`BURST_TIME`] if that is more (timers wake a sender about once a millisecond, and on a
/// short path the window is small next to what that lets through).
const BURST_PACKETS: u32 = 10;
const BURST_TIME: Duration = Duration::from_millis(2);
/// Pacing rate over cwnd / SRTT in slow start and in congestion avoidance.
const SLOW_START_GAIN: f64 = 2.0;
const CONGESTION_AVOIDANCE_GAIN: f64 = 1.25;

/// A token bucket of bytes.
#[derive(Debug, Default)]
pub(crate) struct Pacer {
    /// Bytes that may be sent now.
    tokens: f64,
    /// When the tokens were last topped up.
    last: Option<Instant>,
    /// Bytes per second, 0 while no RTT is known (no pacing).
    rate: f64,
}

impl Pacer {
    /// Tops the bucket up to `now` and sets the rate for a window of `cwnd` bytes, `srtt`
    /// and whether the window is in slow start.
    pub(crate) fn refill(
        &mut self,
        now: Instant,
        cwnd: u32,
        mtu: u32,
        srtt: Duration,
        slow_start: bool,
    ) {
        let gain = if slow_start {
            SLOW_START_GAIN
        } else {
            CONGESTION_AVOIDANCE_GAIN
        };
        self.rate = if srtt.is_zero() {
            0.0
        } else {
            gain * f64::from(cwnd) / srtt.as_secs_f64()
        };
        let elapsed = self
            .last
            .map_or(Duration::ZERO, |last| now.saturating_duration_since(last));
        let burst = f64::from(BURST_PACKETS * mtu).max(self.rate * BURST_TIME.as_secs_f64());
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.rate).min(burst);
        self.last = Some(now);
    }

    /// Whether `bytes` may be sent now; if so they are counted.
    pub(crate) fn try_send(&mut self, bytes: usize) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        // A chunk larger than the bucket goes once the bucket is full.
        if self.tokens < 0.0 {
            return false;
        }
        self.tokens -= bytes as f64;
        true
    }

    /// When the bucket allows a send again, if pacing holds sends back now.
    pub(crate) fn next_send(&self) -> Option<Instant> {
        if self.rate == 0.0 || self.tokens >= 0.0 {
            return None;
        }
        // At least a microsecond, so a clock that advances to this instant finds a token even
        // after rounding.
        let wait = Duration::from_secs_f64(-self.tokens / self.rate).max(Duration::from_micros(1));
        self.last.map(|last| last + wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MTU: u32 = 1200;

    #[test]
    fn a_window_is_spread_over_the_round_trip() {
        let mut pacer = Pacer::default();
        let start = Instant::now();
        let srtt = Duration::from_millis(100);
        let cwnd = 1000 * MTU;
        // Congestion avoidance: 1.25 windows per round trip.
        let mut sent = 0;
        let mut now = start;
        while now < start + srtt {
            pacer.refill(now, cwnd, MTU, srtt, false);
            while pacer.try_send(MTU as usize) {
                sent += 1;
            }
            now = pacer.next_send().unwrap_or(now + Duration::from_millis(1));
        }
        assert!(
            (1240..=1262).contains(&sent),
            "{sent} packets in one round trip"
        );
    }

    #[test]
    fn no_more_than_a_burst_leaves_at_once() {
        let mut pacer = Pacer::default();
        let start = Instant::now();
        let srtt = Duration::from_millis(100);
        pacer.refill(start, 20 * MTU, MTU, srtt, true);
        // A long quiet spell fills the bucket only to its burst size.
        pacer.refill(start + Duration::from_secs(1), 20 * MTU, MTU, srtt, true);
        let mut sent = 0;
        while pacer.try_send(MTU as usize) {
            sent += 1;
        }
        assert_eq!(BURST_PACKETS + 1, sent);
        assert!(pacer.next_send().is_some());
    }

    #[test]
    fn nothing_is_held_back_before_an_rtt_is_known() {
        let mut pacer = Pacer::default();
        pacer.refill(Instant::now(), 10 * MTU, MTU, Duration::ZERO, true);
        for _ in 0..100 {
            assert!(pacer.try_send(MTU as usize));
        }
        assert_eq!(None, pacer.next_send());
    }
}
