//! HyStart++ (RFC 9406): leaves slow start when the round trip starts to grow, before the
//! window overshoots the path and a queue overflows.
//!
//! Slow start doubles the window every round trip until a loss. By the time the loss is seen
//! the window is twice what the path and its queue hold, and a drop-tail bottleneck loses up
//! to half a window at once. HyStart++ watches the smallest RTT of each round: once it rises
//! by an eighth (4 to 16 ms), a queue is forming, so the window grows at a quarter of the
//! rate for a few rounds ("conservative slow start") and then congestion avoidance takes
//! over. A rise that goes away again was jitter, and slow start resumes.
//!
//! Sans-IO: RTT samples, TSNs and bytes come in as arguments.

use crate::util::sna32gte;
use std::time::Duration;

const MIN_RTT_THRESH: Duration = Duration::from_millis(4);
const MAX_RTT_THRESH: Duration = Duration::from_millis(16);
const MIN_RTT_DIVISOR: u32 = 8;
/// RTT samples a round needs before its minimum counts.
const N_RTT_SAMPLE: u32 = 8;
const CSS_GROWTH_DIVISOR: u32 = 4;
const CSS_ROUNDS: u32 = 5;

/// What slow start should do with an acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlowStartStep {
    /// Grow the window by the bytes acknowledged divided by this.
    Grow(u32),
    /// Slow start is over: congestion avoidance from the current window.
    Leave,
}

#[derive(Debug, Default)]
pub(crate) struct HyStart {
    /// The highest TSN sent when the current round began; its acknowledgement ends the round.
    window_end: Option<u32>,
    last_round_min: Option<Duration>,
    current_round_min: Option<Duration>,
    samples: u32,
    /// In conservative slow start: the RTT that started it and the rounds spent in it.
    conservative: Option<(Duration, u32)>,
}

impl HyStart {
    /// An acknowledgement in slow start that moved the cumulative TSN to `cumulative_tsn`,
    /// with `highest_sent` the highest TSN sent so far and `rtt` the round trip it measured,
    /// if any.
    pub(crate) fn on_ack(
        &mut self,
        cumulative_tsn: u32,
        highest_sent: u32,
        rtt: Option<Duration>,
    ) -> SlowStartStep {
        if let Some(rtt) = rtt {
            self.current_round_min = Some(self.current_round_min.map_or(rtt, |m| m.min(rtt)));
            self.samples += 1;
        }
        let Some(end) = self.window_end else {
            self.window_end = Some(highest_sent);
            return self.growth();
        };
        let round_over = sna32gte(cumulative_tsn, end);
        let step = self.judge();
        if round_over {
            self.window_end = Some(highest_sent);
            if self.current_round_min.is_some() {
                self.last_round_min = self.current_round_min;
            }
            self.current_round_min = None;
            self.samples = 0;
            if let Some((_, rounds)) = self.conservative.as_mut() {
                *rounds += 1;
                if *rounds >= CSS_ROUNDS {
                    return SlowStartStep::Leave;
                }
            }
        }
        step
    }

    /// A congestion event ends slow start; a later one begins afresh.
    pub(crate) fn reset(&mut self) {
        *self = HyStart::default();
    }

    fn judge(&mut self) -> SlowStartStep {
        let (Some(current), Some(last)) = (self.current_round_min, self.last_round_min) else {
            return self.growth();
        };
        if self.samples < N_RTT_SAMPLE {
            return self.growth();
        }
        match self.conservative {
            None => {
                let threshold = (last / MIN_RTT_DIVISOR).clamp(MIN_RTT_THRESH, MAX_RTT_THRESH);
                if current >= last + threshold {
                    self.conservative = Some((current, 0));
                }
            }
            // The rise went away: it was jitter, not a queue.
            Some((baseline, _)) if current < baseline => self.conservative = None,
            Some(_) => {}
        }
        self.growth()
    }

    fn growth(&self) -> SlowStartStep {
        SlowStartStep::Grow(if self.conservative.is_some() {
            CSS_GROWTH_DIVISOR
        } else {
            1
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Acknowledges TSNs `start + 1 ..= start + acks` one by one, each measuring `rtt` and
    /// releasing one new chunk, and returns the last step.
    fn round(h: &mut HyStart, start: u32, acks: u32, rtt: Duration) -> SlowStartStep {
        let mut step = SlowStartStep::Grow(1);
        for i in 1..=acks {
            step = h.on_ack(start + i, start + acks + i, Some(rtt));
            if step == SlowStartStep::Leave {
                break;
            }
        }
        step
    }

    #[test]
    fn a_steady_round_trip_keeps_slow_start() {
        let mut h = HyStart::default();
        let mut tsn = 0;
        for acks in [10, 20, 40, 80] {
            assert_eq!(SlowStartStep::Grow(1), round(&mut h, tsn, acks, 50 * MS));
            tsn += acks;
        }
    }

    #[test]
    fn a_growing_round_trip_slows_then_ends_slow_start() {
        let mut h = HyStart::default();
        assert_eq!(SlowStartStep::Grow(1), round(&mut h, 0, 20, 50 * MS));
        // 50 ms / 8 = 6.25 ms: a rise of 7 ms is a queue.
        assert_eq!(SlowStartStep::Grow(4), round(&mut h, 20, 20, 57 * MS));
        let mut tsn = 40;
        let mut leave_after = None;
        for r in 0..CSS_ROUNDS {
            if round(&mut h, tsn, 20, 58 * MS) == SlowStartStep::Leave {
                leave_after = Some(r);
                break;
            }
            tsn += 20;
        }
        assert!(leave_after.is_some(), "slow start did not end");
    }

    #[test]
    fn a_rise_smaller_than_the_threshold_is_not_a_queue() {
        let mut h = HyStart::default();
        round(&mut h, 0, 20, 50 * MS);
        assert_eq!(SlowStartStep::Grow(1), round(&mut h, 20, 20, 55 * MS));
    }

    #[test]
    fn a_rise_that_goes_away_resumes_slow_start() {
        let mut h = HyStart::default();
        round(&mut h, 0, 20, 50 * MS);
        assert_eq!(SlowStartStep::Grow(4), round(&mut h, 20, 20, 60 * MS));
        assert_eq!(SlowStartStep::Grow(1), round(&mut h, 40, 20, 52 * MS));
    }

    #[test]
    fn few_samples_decide_nothing() {
        let mut h = HyStart::default();
        round(&mut h, 0, 20, 50 * MS);
        assert_eq!(
            SlowStartStep::Grow(1),
            round(&mut h, 20, N_RTT_SAMPLE - 1, 80 * MS)
        );
    }
}
