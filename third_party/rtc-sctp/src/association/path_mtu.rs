//! Packetization-layer path MTU discovery (RFC 8899, the SCTP binding of its section 6.2):
//! DATA starts at a size every path carries, and padded HEARTBEAT probes find how much more
//! this path carries.
//!
//! A configured packet size above what the path carries is lost without a word: a tunnel or
//! an IPv6 path at its 1 280-byte minimum drops the datagram, and nothing comes back that
//! SCTP could read. A fixed small size costs throughput on every path that carries more. So
//! DATA is cut at the base size until a probe of a larger size is acknowledged. A probe is a
//! HEARTBEAT with a PAD chunk (RFC 4820) that fills the packet to the size tried; the peer
//! answers the HEARTBEAT with a small HEARTBEAT ACK and skips the PAD, as RFC 9260 has every
//! endpoint skip a chunk type it does not know whose high bit is set. (A HEARTBEAT padded in
//! its own information was echoed as large, and Chromium, whose packets are smaller, did not
//! answer it at all.) The search tries the largest size first (most paths carry it), then halves the
//! interval between the largest size known to pass and the smallest known to fail. A size
//! fails after [`MAX_PROBES`] probes go unanswered; a probe is never counted as congestion.
//! Once settled, the search starts again from the top after [`RAISE_INTERVAL`].
//!
//! Sans-IO: time comes in as arguments; the association sends what [`PathMtu::poll_probe`]
//! asks for and reports acknowledgements and their identifiers.

use crate::chunk::Chunk;
use crate::chunk::chunk_header::CHUNK_HEADER_SIZE;
use crate::chunk::chunk_heartbeat::ChunkHeartbeat;
use crate::chunk::chunk_pad::ChunkPad;
use crate::config::COMMON_HEADER_SIZE;
use crate::param::param_header::PARAM_HEADER_LENGTH;
use crate::param::param_heartbeat_info::ParamHeartbeatInfo;
use bytes::{BufMut, BytesMut};
use std::time::{Duration, Instant};

/// Unanswered probes after which a size counts as too big for the path (RFC 8899 MAX_PROBES).
pub(crate) const MAX_PROBES: u32 = 3;
/// The search ends when the largest size known to pass is this close below the smallest
/// known to fail: a few bytes more per packet are not worth more lost probes.
pub(crate) const SEARCH_PRECISION: u32 = 16;
/// How long a settled search waits before trying larger sizes again (RFC 8899 PMTU_RAISE_TIMER).
pub(crate) const RAISE_INTERVAL: Duration = Duration::from_secs(600);
/// Probe sizes are whole 4-byte words, as SCTP pads chunks to them.
const WORD: u32 = 4;
/// No packet is searched for above what one UDP datagram carries.
const LARGEST_PACKET: u32 = u16::MAX as u32;

/// A probe to send now: a packet of `size` bytes carrying `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProbeRequest {
    pub(crate) size: u32,
    pub(crate) id: u64,
}

#[derive(Debug, Clone, Copy)]
struct Outstanding {
    size: u32,
    id: u64,
    /// Probes of this size sent so far.
    sent: u32,
    deadline: Instant,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// The association is not established yet.
    Idle,
    /// The next probe of the search goes at this instant.
    Due(Instant),
    /// The search is settled below the ceiling; at this instant it starts again from the top.
    Raise(Instant),
    /// A probe is on its way.
    Probing(Outstanding),
}

/// The packet size DATA may use on this path, and the search for a larger one.
#[derive(Debug)]
pub(crate) struct PathMtu {
    ceiling: u32,
    /// The largest size known to pass; DATA packets are at most this.
    current: u32,
    /// The smallest size known to fail, or `ceiling + WORD` while none is known.
    too_big: u32,
    phase: Phase,
    next_id: u64,
}

impl PathMtu {
    /// A search between `base`, which every path is assumed to carry, and `ceiling`, the
    /// largest packet the association may send. With `ceiling <= base` there is nothing to
    /// search and DATA uses `ceiling` from the start.
    pub(crate) fn new(base: u32, ceiling: u32) -> Self {
        let base = base - base % WORD;
        // An association configured at or below the base uses exactly its configured size.
        let current = base.min(ceiling);
        let ceiling = ceiling.min(LARGEST_PACKET);
        let ceiling = ceiling - ceiling % WORD;
        PathMtu {
            ceiling,
            current,
            too_big: ceiling + WORD,
            phase: Phase::Idle,
            next_id: 1,
        }
    }

    /// The largest packet DATA may use now.
    pub(crate) fn current(&self) -> u32 {
        self.current
    }

    /// The largest packet the search may reach.
    #[cfg(test)]
    pub(crate) fn ceiling(&self) -> u32 {
        self.ceiling
    }

    /// Whether a probe is on its way.
    #[cfg(test)]
    pub(crate) fn is_probing(&self) -> bool {
        matches!(self.phase, Phase::Probing(_))
    }

    /// The association is established: the search may begin.
    pub(crate) fn start(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Idle) {
            self.phase = Phase::Due(now);
            self.settle_if_done(now);
        }
    }

    /// When [`poll_probe`](Self::poll_probe) next has something to do.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Idle => None,
            Phase::Due(at) | Phase::Raise(at) => Some(at),
            Phase::Probing(probe) => Some(probe.deadline),
        }
    }

    /// The probe to send at `now`, if one is due; an unanswered probe is repeated, and after
    /// [`MAX_PROBES`] its size counts as too big. `timeout` is how long to wait for an answer.
    pub(crate) fn poll_probe(&mut self, now: Instant, timeout: Duration) -> Option<ProbeRequest> {
        let size = match self.phase {
            Phase::Idle => return None,
            Phase::Due(at) | Phase::Raise(at) if at > now => return None,
            Phase::Due(_) => self.next_size(),
            Phase::Raise(_) => {
                self.too_big = self.ceiling + WORD;
                self.ceiling
            }
            Phase::Probing(probe) if probe.deadline > now => return None,
            Phase::Probing(probe) if probe.sent < MAX_PROBES => {
                return Some(self.send(probe.size, probe.sent + 1, now, timeout));
            }
            Phase::Probing(probe) => {
                self.too_big = probe.size;
                if self.settle_if_done(now) {
                    return None;
                }
                self.next_size()
            }
        };
        Some(self.send(size, 1, now, timeout))
    }

    /// A HEARTBEAT ACK came back with the probe identifier `id`; returns the new size DATA
    /// may use if the answer raised it.
    pub(crate) fn on_probe_acked(&mut self, id: u64, now: Instant) -> Option<u32> {
        let Phase::Probing(probe) = self.phase else {
            return None;
        };
        if probe.id != id {
            return None;
        }
        self.current = probe.size;
        if !self.settle_if_done(now) {
            self.phase = Phase::Due(now);
        }
        Some(self.current)
    }

    fn send(&mut self, size: u32, sent: u32, now: Instant, timeout: Duration) -> ProbeRequest {
        let id = self.next_id;
        self.next_id += 1;
        self.phase = Phase::Probing(Outstanding {
            size,
            id,
            sent,
            deadline: now + timeout,
        });
        ProbeRequest { size, id }
    }

    /// The ceiling while no size is known to fail, then the middle of what is unknown.
    fn next_size(&self) -> u32 {
        if self.too_big > self.ceiling {
            return self.ceiling;
        }
        let middle = self.current + (self.too_big - self.current) / 2;
        (middle - middle % WORD).max(self.current + WORD)
    }

    /// Ends the search when nothing worth probing is left; true if it ended.
    fn settle_if_done(&mut self, now: Instant) -> bool {
        let done = self.current >= self.ceiling || self.too_big - self.current <= SEARCH_PRECISION;
        if done {
            self.phase = if self.current >= self.ceiling {
                Phase::Idle
            } else {
                Phase::Raise(now + RAISE_INTERVAL)
            };
        }
        done
    }
}

/// Opens a probe's heartbeat information, so its answer is told from any other.
const PROBE_MARKER: &[u8; 4] = b"PMTU";
/// The marker and the probe identifier.
const PROBE_HEADER: usize = PROBE_MARKER.len() + size_of::<u64>();

/// The chunks of `probe`: a HEARTBEAT whose information is the marker and the identifier, and
/// a PAD chunk that makes the packet `probe.size` bytes.
pub(crate) fn probe_chunks(probe: ProbeRequest) -> Vec<Box<dyn Chunk>> {
    let mut information = BytesMut::with_capacity(PROBE_HEADER);
    information.put_slice(PROBE_MARKER);
    information.put_u64(probe.id);
    let heartbeat = ChunkHeartbeat {
        params: vec![Box::new(ParamHeartbeatInfo {
            heartbeat_information: information.freeze(),
        })],
    };
    let used = COMMON_HEADER_SIZE as usize
        + CHUNK_HEADER_SIZE
        + PARAM_HEADER_LENGTH
        + PROBE_HEADER
        + CHUNK_HEADER_SIZE;
    let pad = ChunkPad {
        padding: (probe.size as usize).saturating_sub(used),
    };
    vec![Box::new(heartbeat), Box::new(pad)]
}

/// The probe identifier in a HEARTBEAT ACK's echoed information, if it answers a probe.
pub(crate) fn probe_id(information: &[u8]) -> Option<u64> {
    let rest = information.strip_prefix(PROBE_MARKER)?;
    let id = rest.get(..size_of::<u64>())?;
    Some(u64::from_be_bytes(id.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u32 = 1188;
    const CEILING: u32 = 1400;
    const TIMEOUT: Duration = Duration::from_millis(300);

    /// Runs a search against a path that carries packets up to `path` bytes, answering each
    /// probe that fits at once; returns the sizes probed in order.
    fn search(pmtu: &mut PathMtu, path: u32, now: &mut Instant) -> Vec<u32> {
        let mut probed = vec![];
        pmtu.start(*now);
        for _ in 0..100 {
            match pmtu.poll_probe(*now, TIMEOUT) {
                Some(probe) => {
                    probed.push(probe.size);
                    if probe.size <= path {
                        pmtu.on_probe_acked(probe.id, *now);
                    }
                }
                None => match pmtu.poll_timeout() {
                    Some(at) if at < *now + RAISE_INTERVAL / 2 => *now = at,
                    _ => break,
                },
            }
        }
        probed
    }

    #[test]
    fn a_path_that_carries_the_ceiling_takes_one_probe() {
        let mut now = Instant::now();
        let mut pmtu = PathMtu::new(BASE, CEILING);
        assert_eq!(BASE, pmtu.current());
        assert_eq!(vec![CEILING], search(&mut pmtu, 1500, &mut now));
        assert_eq!(CEILING, pmtu.current());
        assert_eq!(
            None,
            pmtu.poll_timeout(),
            "nothing above the ceiling to raise to"
        );
    }

    #[test]
    fn a_smaller_path_is_found_by_halving() {
        let mut now = Instant::now();
        let start = now;
        let mut pmtu = PathMtu::new(BASE, CEILING);
        let probed = search(&mut pmtu, 1215, &mut now);
        // Each failing size is tried MAX_PROBES times.
        assert_eq!(
            vec![
                1400, 1400, 1400, 1292, 1292, 1292, 1240, 1240, 1240, 1212, 1224, 1224, 1224
            ],
            probed
        );
        assert_eq!(1212, pmtu.current());
        assert_eq!(
            12 * TIMEOUT,
            now - start,
            "each failed probe waited its timeout"
        );
        assert_eq!(Some(now + RAISE_INTERVAL), pmtu.poll_timeout());
    }

    #[test]
    fn a_path_below_every_probe_keeps_the_base() {
        let mut now = Instant::now();
        let mut pmtu = PathMtu::new(BASE, CEILING);
        search(&mut pmtu, 1000, &mut now);
        assert_eq!(BASE, pmtu.current());
    }

    #[test]
    fn the_search_tries_larger_sizes_again_after_the_raise_interval() {
        let mut now = Instant::now();
        let mut pmtu = PathMtu::new(BASE, CEILING);
        search(&mut pmtu, 1215, &mut now);
        now += RAISE_INTERVAL;
        // The path now carries everything: the ceiling is tried first again.
        let probe = pmtu.poll_probe(now, TIMEOUT);
        assert_eq!(Some(CEILING), probe.map(|p| p.size));
        if let Some(probe) = probe {
            assert_eq!(Some(CEILING), pmtu.on_probe_acked(probe.id, now));
        }
    }

    #[test]
    fn a_stale_or_forged_answer_changes_nothing() {
        let now = Instant::now();
        let mut pmtu = PathMtu::new(BASE, CEILING);
        assert_eq!(None, pmtu.on_probe_acked(1, now), "no probe sent yet");
        pmtu.start(now);
        let first = pmtu.poll_probe(now, TIMEOUT);
        let Some(first) = first else {
            panic!("the first probe is due at once");
        };
        let repeat = pmtu.poll_probe(now + TIMEOUT, TIMEOUT);
        assert!(repeat.is_some());
        assert_eq!(None, pmtu.on_probe_acked(first.id, now), "superseded");
        assert_eq!(None, pmtu.on_probe_acked(u64::MAX, now));
        assert_eq!(BASE, pmtu.current());
    }

    #[test]
    fn a_probe_fills_its_packet_and_its_answer_names_it() {
        use crate::chunk::chunk_heartbeat::ChunkHeartbeat;
        use crate::packet::{CommonHeader, Packet};
        use crate::param::param_heartbeat_info::ParamHeartbeatInfo;

        let probe = ProbeRequest { size: 1292, id: 7 };
        let packet = Packet {
            common_header: CommonHeader::default(),
            chunks: probe_chunks(probe),
        };
        let raw = match packet.marshal() {
            Ok(raw) => raw,
            Err(err) => panic!("marshal: {err}"),
        };
        assert_eq!(1292, raw.len());
        // The receiver reads the HEARTBEAT and skips the PAD.
        let parsed = match Packet::unmarshal(&raw) {
            Ok(parsed) => parsed,
            Err(err) => panic!("unmarshal: {err}"),
        };
        assert_eq!(1, parsed.chunks.len());
        let information = parsed.chunks[0]
            .as_any()
            .downcast_ref::<ChunkHeartbeat>()
            .and_then(|heartbeat| heartbeat.params.first())
            .and_then(|param| param.as_any().downcast_ref::<ParamHeartbeatInfo>())
            .map(|info| info.heartbeat_information.clone());
        assert_eq!(Some(7), information.and_then(|info| probe_id(&info)));
        assert_eq!(None, probe_id(b"PMTU\0\0"), "too short");
        assert_eq!(None, probe_id(b"another heartbeat"));
    }

    #[test]
    fn a_ceiling_beyond_a_datagram_is_cut_to_one() {
        let now = Instant::now();
        let mut pmtu = PathMtu::new(BASE, u32::MAX);
        pmtu.start(now);
        let probe = pmtu.poll_probe(now, TIMEOUT).map(|p| p.size);
        assert_eq!(Some(LARGEST_PACKET - LARGEST_PACKET % WORD), probe);
    }

    #[test]
    fn a_ceiling_at_or_below_the_base_never_probes() {
        let now = Instant::now();
        let mut pmtu = PathMtu::new(BASE, 1100);
        pmtu.start(now);
        assert_eq!(1100, pmtu.current());
        assert_eq!(None, pmtu.poll_probe(now, TIMEOUT));
        assert_eq!(None, pmtu.poll_timeout());
    }
}
