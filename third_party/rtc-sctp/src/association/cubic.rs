//! CUBIC congestion avoidance (RFC 9438) for the association's congestion window.
//!
//! RFC 9260's congestion avoidance grows cwnd by one MTU per round trip, Reno's rule: after a
//! loss halves the window of a 100 ms path carrying 17 MB/s, regaining it takes 700 round trips
//! (70 s). CUBIC grows the window along a cubic function of the time since the loss, which
//! regains the previous window within seconds whatever the RTT, and cuts the window to 0.7
//! rather than 0.5 of itself. A Reno estimate keeps it at least as fast as Reno where the path
//! is short (the "Reno-friendly region", RFC 9438 4.3).
//!
//! Sans-IO: time comes in as an argument; windows are in bytes.

use std::time::{Duration, Instant};

/// Multiplicative decrease factor (RFC 9438 4.6).
const BETA: f64 = 0.7;
/// Scaling constant of the cubic function, in segments per second cubed (RFC 9438 4.2).
const C: f64 = 0.4;

/// CUBIC's state between congestion events.
#[derive(Debug, Default)]
pub(crate) struct Cubic {
    /// The window, in segments, before the last reduction (W_max).
    w_max: f64,
    /// W_max before the last reduction, for fast convergence.
    last_w_max: f64,
    /// When the current congestion avoidance epoch started.
    epoch_start: Option<Instant>,
    /// Time from the epoch's start at which the cubic function reaches W_max.
    k: f64,
    /// The window Reno would have, in segments (W_est).
    w_est: f64,
}

impl Cubic {
    /// A congestion event with the window at `cwnd` bytes: returns the new slow-start
    /// threshold, at least four MTUs.
    pub(crate) fn on_congestion(&mut self, cwnd: u32, mtu: u32) -> u32 {
        let segments = f64::from(cwnd) / f64::from(mtu.max(1));
        // Fast convergence (RFC 9438 4.7): a window below the last maximum releases bandwidth.
        self.w_max = if segments < self.last_w_max {
            segments * (1.0 + BETA) / 2.0
        } else {
            segments
        };
        self.last_w_max = segments;
        self.epoch_start = None;
        ((f64::from(cwnd) * BETA) as u32).max(4 * mtu)
    }

    /// `acked` bytes newly acknowledged in congestion avoidance with the window at `cwnd`
    /// bytes and the smoothed RTT `srtt`: returns the new window.
    pub(crate) fn on_ack(
        &mut self,
        cwnd: u32,
        acked: u32,
        mtu: u32,
        srtt: Duration,
        now: Instant,
    ) -> u32 {
        let mtu_f = f64::from(mtu.max(1));
        let segments = f64::from(cwnd) / mtu_f;
        let start = *self.epoch_start.get_or_insert_with(|| {
            // A new epoch (RFC 9438 4.2): K is when the cubic function is back at W_max.
            self.k = if self.w_max > segments {
                ((self.w_max - segments) / C).cbrt()
            } else {
                self.w_max = segments;
                0.0
            };
            self.w_est = segments;
            now
        });
        let t = now.saturating_duration_since(start) + srtt;
        let w_cubic = C * (t.as_secs_f64() - self.k).powi(3) + self.w_max;
        // Reno's additive increase at CUBIC's rate (RFC 9438 4.3).
        let alpha = 3.0 * (1.0 - BETA) / (1.0 + BETA);
        self.w_est += alpha * f64::from(acked) / f64::from(cwnd.max(1));
        let target = if w_cubic < self.w_est {
            self.w_est
        } else {
            // Concave and convex regions: at most 1.5 times the window per round trip.
            w_cubic.clamp(segments, 1.5 * segments)
        };
        let growth = (target - segments).max(0.0) * f64::from(acked) / f64::from(cwnd.max(1));
        cwnd.saturating_add((growth * mtu_f) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MTU: u32 = 1200;
    const RTT: Duration = Duration::from_millis(100);

    /// Acknowledges a full window every round trip for `rtts` round trips from `start`.
    fn grow(cubic: &mut Cubic, mut cwnd: u32, start: Instant, rtts: u32) -> u32 {
        for n in 0..rtts {
            let now = start + RTT * n;
            let mut acked = 0;
            while acked < cwnd {
                cwnd = cubic.on_ack(cwnd, 2 * MTU, MTU, RTT, now);
                acked += 2 * MTU;
            }
        }
        cwnd
    }

    #[test]
    fn a_loss_cuts_the_window_to_seven_tenths() {
        let mut cubic = Cubic::default();
        assert_eq!(700 * MTU, cubic.on_congestion(1000 * MTU, MTU));
        assert_eq!(
            4 * MTU,
            cubic.on_congestion(2 * MTU, MTU),
            "never below four MTUs"
        );
    }

    #[test]
    fn the_window_is_regained_within_seconds_on_a_long_path() {
        // 1000 packets on a 100 ms path is 12 MB/s; Reno would need 300 round trips (30 s)
        // and 6 s after the loss would be at 760.
        let mut cubic = Cubic::default();
        let cwnd = cubic.on_congestion(1000 * MTU, MTU);
        let start = Instant::now();
        let after = grow(&mut cubic, cwnd, start, 60);
        assert!(
            after >= 950 * MTU,
            "6 s after the loss the window is {} packets",
            after / MTU
        );
    }

    #[test]
    fn growth_flattens_near_the_last_maximum_and_probes_beyond_it() {
        let mut cubic = Cubic::default();
        let cwnd = cubic.on_congestion(1000 * MTU, MTU);
        let start = Instant::now();
        // K = cbrt(300 / 0.4) ≈ 9.1 s: around it the window stays close to W_max.
        let at_k = grow(&mut cubic, cwnd, start, 88);
        let later = grow(&mut cubic, at_k, start + RTT * 88, 8);
        assert!(
            (at_k / MTU).abs_diff(1000) < 30,
            "{} packets at K",
            at_k / MTU
        );
        assert!(
            later - at_k < 20 * MTU,
            "plateau: {} -> {}",
            at_k / MTU,
            later / MTU
        );
        let beyond = grow(&mut cubic, later, start + RTT * 96, 60);
        assert!(
            beyond > 1100 * MTU,
            "no probing past W_max: {} packets",
            beyond / MTU
        );
    }

    #[test]
    fn a_short_path_grows_at_least_as_fast_as_reno() {
        // At 1 ms the cubic function barely moves per round trip; the Reno estimate leads.
        let mut cubic = Cubic::default();
        let mut cwnd = cubic.on_congestion(100 * MTU, MTU);
        let start = Instant::now();
        let rtt = Duration::from_millis(1);
        for n in 0..100 {
            let mut acked = 0;
            while acked < cwnd {
                cwnd = cubic.on_ack(cwnd, MTU, MTU, rtt, start + rtt * n);
                acked += MTU;
            }
        }
        // Reno with CUBIC's alpha (0.53 per round trip) from 70 packets: about 123.
        assert!(
            cwnd >= 115 * MTU,
            "{} packets after 100 round trips",
            cwnd / MTU
        );
    }
}
