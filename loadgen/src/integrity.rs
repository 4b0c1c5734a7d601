//! Counting every message: lost, duplicated, misrouted, corrupt.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use signaling_protocol::ErrorCode;

/// How many failure descriptions are kept verbatim.
const KEPT_FAILURES: usize = 10;

/// Per-message accounting of a run. Every counter except `sent` and
/// `received` must end at zero for the run to pass.
#[derive(Debug, Default, Clone)]
pub struct Integrity {
    /// Signals sent.
    pub sent: u64,
    /// Signals received and accepted.
    pub received: u64,
    /// Signals sent that never arrived.
    pub lost: u64,
    /// Signals that arrived more than once.
    pub duplicated: u64,
    /// Signals delivered to a peer that was not the addressee, or with the wrong `from`.
    pub misrouted: u64,
    /// Signals that arrived after a later one from the same sender.
    pub out_of_order: u64,
    /// Signals whose payload was not the one sent.
    pub corrupt: u64,
    /// `error` messages from the server, by code.
    pub server_errors: BTreeMap<&'static str, u64>,
    /// Other faults (connection errors, timeouts, unexpected messages).
    pub faults: u64,
    /// The first few faults, described.
    pub fault_notes: Vec<String>,
}

impl Integrity {
    /// Records a fault with its description.
    pub fn fault(&mut self, note: impl Into<String>) {
        self.faults += 1;
        if self.fault_notes.len() < KEPT_FAILURES {
            self.fault_notes.push(note.into());
        }
    }

    /// Records an `error` from the server.
    pub fn server_error(&mut self, code: ErrorCode) {
        *self.server_errors.entry(code.as_str()).or_default() += 1;
    }

    /// Adds another tally to this one.
    pub fn merge(&mut self, other: Integrity) {
        self.sent += other.sent;
        self.received += other.received;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.misrouted += other.misrouted;
        self.out_of_order += other.out_of_order;
        self.corrupt += other.corrupt;
        for (code, n) in other.server_errors {
            *self.server_errors.entry(code).or_default() += n;
        }
        self.faults += other.faults;
        for note in other.fault_notes {
            if self.fault_notes.len() < KEPT_FAILURES {
                self.fault_notes.push(note);
            }
        }
    }

    /// True when nothing was lost, duplicated, misrouted, reordered, corrupted or refused.
    pub fn is_clean(&self) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.misrouted == 0
            && self.out_of_order == 0
            && self.corrupt == 0
            && self.server_errors.is_empty()
            && self.faults == 0
    }

    /// One line of counters, and the problems spelled out when there are any.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "signals sent {}, received {}, lost {}, duplicated {}, misrouted {}, out of order {}, corrupt {}",
            self.sent,
            self.received,
            self.lost,
            self.duplicated,
            self.misrouted,
            self.out_of_order,
            self.corrupt
        );
        if !self.server_errors.is_empty() {
            let _ = write!(out, "\n  server errors:");
            for (code, n) in &self.server_errors {
                let _ = write!(out, " {code} ×{n}");
            }
        }
        if self.faults > 0 {
            let _ = write!(out, "\n  faults: {}", self.faults);
            for note in &self.fault_notes {
                let _ = write!(out, "\n    - {note}");
            }
        }
        out
    }

    /// The counters as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let errors: serde_json::Map<String, serde_json::Value> = self
            .server_errors
            .iter()
            .map(|(code, n)| ((*code).to_owned(), (*n).into()))
            .collect();
        serde_json::json!({
            "sent": self.sent,
            "received": self.received,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "misrouted": self.misrouted,
            "out_of_order": self.out_of_order,
            "corrupt": self.corrupt,
            "server_errors": errors,
            "faults": self.faults,
            "fault_notes": self.fault_notes,
            "clean": self.is_clean(),
        })
    }
}

/// Writes a fixed-width decimal into `out` (zero padded; the value must fit).
pub fn put_digits(out: &mut [u8], mut value: u64) {
    for byte in out.iter_mut().rev() {
        *byte = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Reads a fixed-width decimal; `None` if a byte is not a digit.
pub fn get_digits(text: &[u8]) -> Option<u64> {
    text.iter().try_fold(0u64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_round_trip() {
        let mut buf = [0u8; 6];
        put_digits(&mut buf, 4217);
        assert_eq!(&buf, b"004217");
        assert_eq!(get_digits(&buf), Some(4217));
        assert_eq!(get_digits(b"12a"), None);
    }

    #[test]
    fn any_problem_makes_a_run_unclean() {
        let mut tally = Integrity {
            sent: 5,
            received: 5,
            ..Integrity::default()
        };
        assert!(tally.is_clean());
        let mut other = Integrity::default();
        other.server_error(ErrorCode::RateLimited);
        tally.merge(other);
        assert!(!tally.is_clean());
        assert!(tally.describe().contains("rate_limited ×1"));
    }
}
