//! Tells a loss that signals congestion from a loss on a path that is not congested.
//!
//! Loss-based congestion control (Reno, CUBIC) cuts the window at every loss. A bottleneck
//! that drops because its queue is full also delays packets first: the round trip rises above
//! the smallest one seen. A path that loses a packet now and then with no queue (radio, a
//! lossy tunnel, the test wire's random loss) shows no such rise, and cutting the window there
//! only throws away throughput: at 0.1 % loss CUBIC settles near 40 packets a round trip,
//! 0.5 MB/s on a 100 ms path whatever its capacity. So a loss counts as congestion when the
//! recent round trip stands above the minimum by more than a jitter allowance, or when losses
//! are frequent (a policer or a queue too shallow to delay anything); otherwise the sender
//! repairs it without cutting the window.
//!
//! The minimum RTT never expires: after a route change to a longer path every loss counts as
//! congestion, which is what TCP does anyway.
//!
//! Sans-IO: time, RTT samples and chunk counts come in as arguments.

use std::time::{Duration, Instant};

/// The smallest rise over the minimum RTT that counts as a queue.
const MIN_QUEUE_DELAY: Duration = Duration::from_micros(2_500);
/// The largest: CoDel's target delay, so an AQM dropping at its target is seen.
const MAX_QUEUE_DELAY: Duration = Duration::from_millis(5);
/// The rise that counts as a queue as a share of the minimum RTT, within the bounds above.
const QUEUE_DELAY_DIVISOR: u32 = 8;
/// Share of the chunks of the last round trip or two lost, in percent, above which losses
/// count as congestion whatever the delay says.
const MAX_RANDOM_LOSS_PERCENT: u64 = 10;
/// Chunks that share must be measured over. Fewer say little: at 5 % random loss, 70 chunks
/// lose more than a tenth often enough that every few round trips cut the window, which made
/// the window smaller and the share noisier still (100 ms, 5 %: cwnd 20-60 packets).
const MIN_LOSS_SAMPLE: u64 = 200;

/// Chunks delivered and lost over one period of about a round trip, and its smallest RTT.
#[derive(Debug, Default, Clone, Copy)]
struct Period {
    delivered: u64,
    lost: u64,
    min_rtt: Option<Duration>,
}

#[derive(Debug, Default)]
pub(crate) struct LossSignal {
    min_rtt: Option<Duration>,
    started: Option<Instant>,
    current: Period,
    previous: Period,
}

impl LossSignal {
    /// An RTT measured at `now` on a chunk sent once; `srtt` sets the length of a period.
    pub(crate) fn on_rtt_sample(&mut self, now: Instant, rtt: Duration, srtt: Duration) {
        self.rotate(now, srtt);
        self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
        self.current.min_rtt = Some(self.current.min_rtt.map_or(rtt, |m| m.min(rtt)));
    }

    /// `chunks` newly acknowledged.
    pub(crate) fn on_delivered(&mut self, chunks: u64) {
        self.current.delivered += chunks;
    }

    /// `chunks` newly declared lost.
    pub(crate) fn on_lost(&mut self, chunks: u64) {
        self.current.lost += chunks;
    }

    /// Whether losses seen now mean the path is congested.
    pub(crate) fn is_congestion(&self) -> bool {
        let (Some(min), Some(recent)) = (self.min_rtt, self.recent_min_rtt()) else {
            return true;
        };
        let allowance = (min / QUEUE_DELAY_DIVISOR).clamp(MIN_QUEUE_DELAY, MAX_QUEUE_DELAY);
        if recent > min + allowance {
            return true;
        }
        let lost = self.current.lost + self.previous.lost;
        let sent = lost + self.current.delivered + self.previous.delivered;
        sent >= MIN_LOSS_SAMPLE && lost * 100 > sent * MAX_RANDOM_LOSS_PERCENT
    }

    /// The smallest RTT of the last period or two: a standing queue raises it, jitter
    /// rarely does.
    fn recent_min_rtt(&self) -> Option<Duration> {
        match (self.current.min_rtt, self.previous.min_rtt) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn rotate(&mut self, now: Instant, srtt: Duration) {
        let started = *self.started.get_or_insert(now);
        if now.saturating_duration_since(started) >= srtt {
            self.previous = std::mem::take(&mut self.current);
            self.started = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A round trip of samples, each `rtt`, with `delivered` and `lost` chunks.
    fn period(s: &mut LossSignal, at: &mut Instant, rtt: Duration, delivered: u64, lost: u64) {
        for _ in 0..10 {
            s.on_rtt_sample(*at, rtt, rtt);
            *at += rtt / 10;
        }
        s.on_delivered(delivered);
        s.on_lost(lost);
    }

    #[test]
    fn a_loss_without_a_queue_is_not_congestion() {
        let (mut s, mut at) = (LossSignal::default(), Instant::now());
        period(&mut s, &mut at, 100 * MS, 100, 0);
        period(&mut s, &mut at, 102 * MS, 100, 1);
        assert!(!s.is_congestion());
    }

    #[test]
    fn a_loss_behind_a_queue_is_congestion() {
        let (mut s, mut at) = (LossSignal::default(), Instant::now());
        period(&mut s, &mut at, 50 * MS, 100, 0);
        for _ in 0..3 {
            period(&mut s, &mut at, 58 * MS, 100, 1);
        }
        assert!(s.is_congestion());
    }

    #[test]
    fn frequent_losses_are_congestion_whatever_the_delay() {
        let (mut s, mut at) = (LossSignal::default(), Instant::now());
        period(&mut s, &mut at, 20 * MS, 100, 0);
        period(&mut s, &mut at, 20 * MS, 160, 40);
        period(&mut s, &mut at, 20 * MS, 160, 40);
        assert!(s.is_congestion());
    }

    #[test]
    fn a_few_chunks_do_not_make_a_loss_rate() {
        let (mut s, mut at) = (LossSignal::default(), Instant::now());
        period(&mut s, &mut at, 100 * MS, 30, 0);
        period(&mut s, &mut at, 100 * MS, 31, 4);
        period(&mut s, &mut at, 100 * MS, 31, 4);
        assert!(!s.is_congestion());
    }

    #[test]
    fn with_nothing_measured_a_loss_is_congestion() {
        assert!(LossSignal::default().is_congestion());
    }
}
