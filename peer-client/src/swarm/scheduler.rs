//! Which piece to ask which peer for: a receiver's decisions, without
//! sockets or disks (time is passed in).
//!
//! - **Rarest first.** A peer with a free request slot is asked for the
//!   missing piece, among those it has, that the fewest connected peers
//!   have; ties go by a random order of this receiver's own, so receivers
//!   ask the sender for different pieces and its upload is spent once.
//! - **Bounded.** At most [`REQUESTS_PER_PEER`] pieces are asked of one
//!   peer at a time, so what arrives is bounded by what was asked for.
//! - **Endgame.** Once every missing piece is asked for and at most
//!   four are missing, a peer with a free slot may be asked for a piece
//!   already asked of another (at most
//!   [`MAX_ASKED_PER_PIECE`] at once) once that piece has taken twice as
//!   long as pieces usually take, so one slow peer does not hold up the end
//!   and a quick swarm does not fetch its last pieces twice.
//! - **Leaving is normal.** A peer that leaves, stalls, or sends a piece
//!   that fails its hash gives back what was asked of it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use fixedbitset::FixedBitSet;
use rand::seq::SliceRandom;

use crate::transfer::TransferError;

/// Pieces asked of one peer at a time (1 MiB each: 4 MiB in flight, enough
/// for ~80 MB/s from one peer at a 50 ms round trip).
pub const REQUESTS_PER_PEER: usize = 4;
/// Missing pieces at most for the endgame to begin: only the very last
/// ones, since a second copy that arrives is upload wasted.
const ENDGAME_PIECES: usize = REQUESTS_PER_PEER;
/// Peers one piece is asked of at once, in the endgame.
pub const MAX_ASKED_PER_PIECE: u8 = 2;
/// How long a piece is waited for before the endgame asks a second peer,
/// until arrivals tell how long pieces take.
const FIRST_ENDGAME_WAIT: Duration = Duration::from_secs(2);
/// Added to twice the usual time of a piece before the endgame asks again.
const ENDGAME_SLACK: Duration = Duration::from_millis(500);

/// What happened to a piece that arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// New and verified: write it, and tell the peers.
    New,
    /// Verified, but another peer's copy came first (the endgame).
    Duplicate,
}

#[derive(Debug)]
struct PeerView {
    has: FixedBitSet,
    /// Pieces asked of this peer and not yet arrived, oldest first, with
    /// when each was asked.
    asked: Vec<(u32, Instant)>,
    /// When something last arrived from it (or it was first asked).
    heard: Instant,
}

/// A receiver's view of a swarm: what it has, what each peer has, what is
/// asked of whom.
#[derive(Debug)]
pub struct Scheduler<P> {
    have: FixedBitSet,
    missing: usize,
    /// Connected peers that have each piece.
    availability: Vec<u16>,
    /// Peers each piece is asked of right now.
    asked: Vec<u8>,
    /// Random tie-break order of each piece.
    rank: Vec<u32>,
    /// Missing pieces asked of nobody, rarest first: (availability, rank, piece).
    waiting: BTreeSet<(u16, u32, u32)>,
    /// Missing pieces asked of someone (the endgame looks here).
    in_flight: BTreeSet<u32>,
    /// When each piece in flight was first asked for.
    since: Vec<Option<Instant>>,
    /// How long a piece usually takes from request to arrival (a moving
    /// average).
    piece_time: Option<Duration>,
    peers: BTreeMap<P, PeerView>,
}

impl<P: Copy + Ord + std::fmt::Debug> Scheduler<P> {
    /// A receiver that has the pieces of `have` (from a resume) out of
    /// `have.len()`, with its tie-break order drawn from `rng`.
    pub fn new(have: FixedBitSet, rng: &mut impl rand::Rng) -> Self {
        let pieces = have.len();
        let mut rank: Vec<u32> = (0..pieces as u32).collect();
        rank.shuffle(rng);
        let waiting = (0..pieces as u32)
            .filter(|&piece| !have.contains(piece as usize))
            .map(|piece| (0, rank[piece as usize], piece))
            .collect();
        Self {
            missing: pieces - have.count_ones(..),
            have,
            availability: vec![0; pieces],
            asked: vec![0; pieces],
            rank,
            waiting,
            in_flight: BTreeSet::new(),
            since: vec![None; pieces],
            piece_time: None,
            peers: BTreeMap::new(),
        }
    }

    /// The pieces this receiver has.
    pub fn have(&self) -> &FixedBitSet {
        &self.have
    }

    /// Whether every piece is here.
    pub fn is_complete(&self) -> bool {
        self.missing == 0
    }

    /// Missing pieces that no connected peer has.
    pub fn unavailable(&self) -> usize {
        self.have
            .zeroes()
            .filter(|&piece| self.availability[piece] == 0)
            .count()
    }

    /// Whether `peer` has every piece.
    pub fn peer_is_complete(&self, peer: P) -> bool {
        self.peers.get(&peer).is_some_and(|view| view.has.is_full())
    }

    /// A peer announced the pieces it has (again: what it adds).
    pub fn add_peer(
        &mut self,
        peer: P,
        has: FixedBitSet,
        now: Instant,
    ) -> Result<(), TransferError> {
        if has.len() != self.have.len() {
            return Err(TransferError::Protocol(format!(
                "a bitfield of {} pieces for an offer of {}",
                has.len(),
                self.have.len()
            )));
        }
        if self.peers.contains_key(&peer) {
            // A later bitfield (a sender telling more) adds to what it has.
            for piece in has.ones() {
                self.peer_has(peer, piece as u32)?;
            }
            return Ok(());
        }
        for piece in has.ones() {
            self.change_availability(piece as u32, true);
        }
        self.peers.insert(
            peer,
            PeerView {
                has,
                asked: Vec::new(),
                heard: now,
            },
        );
        Ok(())
    }

    /// A peer announced one more piece.
    pub fn peer_has(&mut self, peer: P, piece: u32) -> Result<(), TransferError> {
        if piece as usize >= self.have.len() {
            return Err(TransferError::Protocol(format!(
                "piece {piece} does not exist"
            )));
        }
        let Some(view) = self.peers.get_mut(&peer) else {
            return Err(TransferError::Protocol(
                "a piece announced before the peer's bitfield".into(),
            ));
        };
        if !view.has.put(piece as usize) {
            self.change_availability(piece, true);
        }
        Ok(())
    }

    /// A peer left (or is dropped): what was asked of it is asked of others.
    pub fn remove_peer(&mut self, peer: P) {
        let Some(view) = self.peers.remove(&peer) else {
            return;
        };
        for piece in view.has.ones() {
            self.change_availability(piece as u32, false);
        }
        for (piece, _) in view.asked {
            self.unask(piece);
        }
    }

    /// Requests to send now: fills each peer's free slots, rarest first.
    pub fn next_requests(&mut self, now: Instant) -> Vec<(P, u32)> {
        let mut requests = Vec::new();
        let peers: Vec<P> = self.peers.keys().copied().collect();
        for peer in peers {
            while self.peers[&peer].asked.len() < REQUESTS_PER_PEER {
                let Some(piece) = self.pick(peer, now) else {
                    break;
                };
                self.ask(peer, piece, now);
                requests.push((peer, piece));
            }
        }
        requests
    }

    /// The rarest waiting piece `peer` has, or in the endgame a piece
    /// already in flight elsewhere.
    fn pick(&self, peer: P, now: Instant) -> Option<u32> {
        let view = &self.peers[&peer];
        // A peer with few pieces: look through its pieces, not all waiting ones.
        let rarest = if view.has.count_ones(..) * 4 < self.waiting.len() {
            view.has
                .ones()
                .filter(|&piece| !self.have.contains(piece) && self.asked[piece] == 0)
                .map(|piece| (self.availability[piece], self.rank[piece], piece as u32))
                .min()
        } else {
            self.waiting
                .iter()
                .find(|(_, _, piece)| view.has.contains(*piece as usize))
                .copied()
        };
        if let Some((_, _, piece)) = rarest {
            return Some(piece);
        }
        if !self.waiting.is_empty() || self.missing > ENDGAME_PIECES {
            return None;
        }
        let wait = self
            .piece_time
            .map_or(FIRST_ENDGAME_WAIT, |usual| usual * 2 + ENDGAME_SLACK);
        self.in_flight.iter().copied().find(|&piece| {
            let index = piece as usize;
            view.has.contains(index)
                && self.asked[index] < MAX_ASKED_PER_PIECE
                && self.since[index]
                    .is_some_and(|since| now.saturating_duration_since(since) >= wait)
                && !view.asked.iter().any(|(asked, _)| *asked == piece)
        })
    }

    fn ask(&mut self, peer: P, piece: u32, now: Instant) {
        let index = piece as usize;
        if self.asked[index] == 0 {
            self.waiting
                .remove(&(self.availability[index], self.rank[index], piece));
            self.in_flight.insert(piece);
            self.since[index] = Some(now);
        }
        self.asked[index] += 1;
        if let Some(view) = self.peers.get_mut(&peer) {
            if view.asked.is_empty() {
                view.heard = now;
            }
            view.asked.push((piece, now));
        }
    }

    fn unask(&mut self, piece: u32) {
        let index = piece as usize;
        self.asked[index] = self.asked[index].saturating_sub(1);
        if self.asked[index] == 0 {
            self.in_flight.remove(&piece);
            self.since[index] = None;
            if !self.have.contains(index) {
                self.waiting
                    .insert((self.availability[index], self.rank[index], piece));
            }
        }
    }

    fn change_availability(&mut self, piece: u32, up: bool) {
        let index = piece as usize;
        let queued = !self.have.contains(index) && self.asked[index] == 0;
        if queued {
            self.waiting
                .remove(&(self.availability[index], self.rank[index], piece));
        }
        self.availability[index] = if up {
            self.availability[index].saturating_add(1)
        } else {
            self.availability[index].saturating_sub(1)
        };
        if queued {
            self.waiting
                .insert((self.availability[index], self.rank[index], piece));
        }
    }

    /// Whether `piece` is one asked of `peer` and not arrived yet: the next
    /// piece it sends must be (anything else is a protocol error).
    pub fn is_asked_of(&self, peer: P, piece: u32) -> bool {
        self.peers
            .get(&peer)
            .is_some_and(|view| view.asked.iter().any(|(asked, _)| *asked == piece))
    }

    /// Piece `piece` arrived from `peer` and matched its hash.
    pub fn arrived(&mut self, peer: P, piece: u32, now: Instant) -> Result<Arrival, TransferError> {
        let Some(view) = self.peers.get_mut(&peer) else {
            return Err(TransferError::Protocol(format!(
                "piece {piece} from a peer that was not asked"
            )));
        };
        let Some(at) = view.asked.iter().position(|(asked, _)| *asked == piece) else {
            return Err(TransferError::Protocol(format!(
                "piece {piece} was sent without being asked for"
            )));
        };
        let (_, asked_at) = view.asked.remove(at);
        view.heard = now;
        let took = now.saturating_duration_since(asked_at);
        self.piece_time = Some(match self.piece_time {
            Some(usual) => (usual * 3 + took) / 4,
            None => took,
        });
        let index = piece as usize;
        if self.have.put(index) {
            self.unask(piece);
            return Ok(Arrival::Duplicate);
        }
        self.missing -= 1;
        self.unask(piece);
        Ok(Arrival::New)
    }

    /// Peers that have had requests outstanding with nothing arriving for
    /// `limit`: the caller drops them, which gives their pieces back.
    pub fn stalled(&self, now: Instant, limit: Duration) -> Vec<P> {
        self.peers
            .iter()
            .filter(|(_, view)| {
                !view.asked.is_empty() && now.saturating_duration_since(view.heard) >= limit
            })
            .map(|(peer, _)| *peer)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng(seed: u64) -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(seed)
    }

    fn bits(pieces: usize, set: &[usize]) -> FixedBitSet {
        let mut out = FixedBitSet::with_capacity(pieces);
        for &piece in set {
            out.insert(piece);
        }
        out
    }

    fn all(pieces: usize) -> FixedBitSet {
        let mut out = FixedBitSet::with_capacity(pieces);
        out.insert_range(..);
        out
    }

    #[test]
    fn the_rarest_piece_a_peer_has_is_asked_first() {
        let now = Instant::now();
        let mut s = Scheduler::new(FixedBitSet::with_capacity(6), &mut rng(1));
        s.add_peer('a', all(6), now).unwrap();
        s.add_peer('b', bits(6, &[0, 1, 2, 3, 4]), now).unwrap();
        s.add_peer('c', bits(6, &[0, 1, 2, 3]), now).unwrap();
        let requests = s.next_requests(now);
        // Piece 5 is only at a; piece 4 at a and b: each goes where it is rarest first.
        let of_a: Vec<u32> = requests
            .iter()
            .filter(|r| r.0 == 'a')
            .map(|r| r.1)
            .collect();
        let of_b: Vec<u32> = requests
            .iter()
            .filter(|r| r.0 == 'b')
            .map(|r| r.1)
            .collect();
        assert_eq!(of_a[..2], [5, 4]);
        assert_eq!(of_a.len(), REQUESTS_PER_PEER);
        // b gets the rest; c nothing: every piece is asked of someone, and
        // none has waited long enough for the endgame.
        assert_eq!(of_b.len(), 2);
        assert!(!of_b.contains(&4) && !of_b.contains(&5));
        assert!(requests.iter().all(|r| r.0 != 'c'));
        let mut asked: Vec<u32> = requests.iter().map(|r| r.1).collect();
        asked.sort_unstable();
        asked.dedup();
        assert_eq!(asked, [0, 1, 2, 3, 4, 5]);
        for piece in 0..6 {
            let times = requests.iter().filter(|r| r.1 == piece).count();
            assert!(
                times <= usize::from(MAX_ASKED_PER_PIECE),
                "{piece}: {times}"
            );
        }
    }

    #[test]
    fn receivers_ask_the_sender_for_different_pieces() {
        let now = Instant::now();
        let first: Vec<u32> = {
            let mut s = Scheduler::new(FixedBitSet::with_capacity(64), &mut rng(1));
            s.add_peer(0, all(64), now).unwrap();
            s.next_requests(now).into_iter().map(|r| r.1).collect()
        };
        let second: Vec<u32> = {
            let mut s = Scheduler::new(FixedBitSet::with_capacity(64), &mut rng(2));
            s.add_peer(0, all(64), now).unwrap();
            s.next_requests(now).into_iter().map(|r| r.1).collect()
        };
        assert_eq!(first.len(), REQUESTS_PER_PEER);
        assert_ne!(first, second);
    }

    #[test]
    fn slots_free_as_pieces_arrive_and_the_download_completes() {
        let now = Instant::now();
        let mut s = Scheduler::new(FixedBitSet::with_capacity(10), &mut rng(3));
        s.add_peer(7, all(10), now).unwrap();
        let mut got = 0;
        loop {
            let requests = s.next_requests(now);
            assert!(requests.len() <= REQUESTS_PER_PEER);
            if requests.is_empty() {
                break;
            }
            for (peer, piece) in requests {
                assert_eq!(s.arrived(peer, piece, now).unwrap(), Arrival::New);
                got += 1;
            }
        }
        assert_eq!(got, 10);
        assert!(s.is_complete());
    }

    #[test]
    fn a_resumed_receiver_asks_only_for_what_it_lacks() {
        let now = Instant::now();
        let mut s = Scheduler::new(bits(3, &[0, 2]), &mut rng(4));
        s.add_peer(1, all(3), now).unwrap();
        assert_eq!(s.next_requests(now), vec![(1, 1)]);
    }

    #[test]
    fn a_peer_that_leaves_gives_its_pieces_back() {
        let now = Instant::now();
        let mut s = Scheduler::new(FixedBitSet::with_capacity(2), &mut rng(5));
        s.add_peer('a', all(2), now).unwrap();
        let first = s.next_requests(now);
        assert_eq!(first.len(), 2);
        assert_eq!(s.unavailable(), 0);
        s.remove_peer('a');
        assert_eq!(s.unavailable(), 2);
        assert!(s.next_requests(now).is_empty());
        s.add_peer('b', all(2), now).unwrap();
        assert_eq!(s.next_requests(now).len(), 2);
        // A late piece from the peer that left is not accepted.
        assert!(s.arrived('a', first[0].1, now).is_err());
    }

    #[test]
    fn unasked_pieces_are_refused() {
        let now = Instant::now();
        let mut s = Scheduler::new(FixedBitSet::with_capacity(2), &mut rng(6));
        s.add_peer('a', bits(2, &[0]), now).unwrap();
        assert!(s.arrived('a', 1, now).is_err());
        assert!(s.arrived('z', 0, now).is_err());
        assert!(s.peer_has('a', 2).is_err());
        assert!(s.peer_has('z', 0).is_err());
        assert!(s.add_peer('b', FixedBitSet::with_capacity(3), now).is_err());
    }

    #[test]
    fn the_endgame_asks_a_second_peer_and_no_more() {
        let now = Instant::now();
        let mut s = Scheduler::new(FixedBitSet::with_capacity(1), &mut rng(7));
        s.add_peer('a', all(1), now).unwrap();
        assert_eq!(s.next_requests(now), vec![('a', 0)]);
        s.add_peer('b', all(1), now).unwrap();
        s.add_peer('c', all(1), now).unwrap();
        // Not at once: the piece may well be on its way.
        assert!(s.next_requests(now + Duration::from_secs(1)).is_empty());
        let later = now + FIRST_ENDGAME_WAIT;
        assert_eq!(s.next_requests(later), vec![('b', 0)]);
        assert!(s.next_requests(later).is_empty());
        assert_eq!(s.arrived('b', 0, later).unwrap(), Arrival::New);
        assert_eq!(s.arrived('a', 0, later).unwrap(), Arrival::Duplicate);
        assert!(s.is_complete());
        assert!(s.next_requests(now).is_empty());
    }

    #[test]
    fn a_silent_peer_with_requests_is_stalled() {
        let start = Instant::now();
        let limit = Duration::from_secs(60);
        let mut s = Scheduler::new(FixedBitSet::with_capacity(8), &mut rng(8));
        s.add_peer('a', all(8), start).unwrap();
        s.add_peer('b', bits(8, &[]), start).unwrap();
        assert!(s.stalled(start + limit * 2, limit).is_empty());
        let asked = s.next_requests(start);
        let later = start + Duration::from_secs(50);
        s.arrived('a', asked[0].1, later).unwrap();
        assert!(s.stalled(start + limit, limit).is_empty());
        assert_eq!(s.stalled(later + limit, limit), vec!['a']);
    }

    #[test]
    fn announced_pieces_count_towards_availability() {
        let now = Instant::now();
        let mut s = Scheduler::new(FixedBitSet::with_capacity(3), &mut rng(9));
        s.add_peer('a', bits(3, &[0]), now).unwrap();
        assert_eq!(s.unavailable(), 2);
        s.peer_has('a', 1).unwrap();
        s.peer_has('a', 1).unwrap();
        assert_eq!(s.unavailable(), 1);
        assert!(!s.peer_is_complete('a'));
        s.peer_has('a', 2).unwrap();
        assert!(s.peer_is_complete('a'));
    }
}
