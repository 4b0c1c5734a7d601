//! What the sender tells each receiver it has: at first only a few pieces
//! that nobody has been sent yet, different ones to each receiver, and one
//! more each time one of them has gone out (BitTorrent's "super-seeding").
//! Receivers can only ask the sender for what it advertised, so each piece
//! leaves the sender about once and the receivers trade the rest. Once every
//! piece has gone out, or every piece is told of and [`OPEN_AFTER`] passed
//! (a receiver may sit on what it was told), the sender advertises
//! everything, so the last pieces and any piece whose only holder left can
//! be fetched from it again. Decisions only: no sockets; time is passed in.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use fixedbitset::FixedBitSet;

use super::scheduler::REQUESTS_PER_PEER;

/// Pieces advertised to one receiver and not yet sent to it: twice what it
/// may ask for at once, so it always has a choice.
pub const ADVERTISED_PER_PEER: usize = 2 * REQUESTS_PER_PEER;
/// How long the last pieces told of may wait to be asked for before the
/// sender tells everyone of everything.
pub const OPEN_AFTER: Duration = Duration::from_secs(5);

/// A message the sender owes a receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Advert {
    /// The pieces it has, as far as this receiver is told (first, or when
    /// the sender opens up: a superset of what it was told before).
    Bitfield(FixedBitSet),
    /// One more piece.
    Have(u32),
}

/// The sender's advertising.
#[derive(Debug)]
pub struct Seeding<P> {
    pieces: usize,
    /// Pieces not yet sent to anyone and not advertised to anyone.
    fresh: BTreeSet<u32>,
    /// Pieces advertised to one receiver and not yet sent.
    assigned: HashMap<u32, P>,
    /// What each receiver was told.
    told: BTreeMap<P, FixedBitSet>,
    /// Whether everything is advertised to everyone now.
    open: bool,
    /// Since when every piece is told of (none fresh).
    all_told_since: Option<Instant>,
}

impl<P: Copy + Ord + std::hash::Hash> Seeding<P> {
    /// The sender of `pieces` pieces, nothing sent yet.
    pub fn new(pieces: usize) -> Self {
        Self {
            pieces,
            fresh: (0..pieces as u32).collect(),
            assigned: HashMap::new(),
            told: BTreeMap::new(),
            open: pieces == 0,
            all_told_since: None,
        }
    }

    /// A receiver proved the code: its first bitfield.
    pub fn join(&mut self, peer: P) -> FixedBitSet {
        let mut told = FixedBitSet::with_capacity(self.pieces);
        if self.open {
            told.insert_range(..);
        }
        self.told.insert(peer, told);
        if !self.open {
            for _ in 0..ADVERTISED_PER_PEER {
                if self.tell_fresh(peer).is_none() {
                    break;
                }
            }
        }
        self.told.get(&peer).cloned().unwrap_or_default()
    }

    /// `piece` went out to `peer` at `now`: what to tell whom now.
    pub fn sent(&mut self, peer: P, piece: u32, now: Instant) -> Vec<(P, Advert)> {
        self.assigned.remove(&piece);
        self.spent(piece, Some(peer), now)
    }

    /// A receiver holds `piece` (from an earlier run, or from another
    /// receiver): it is no longer fresh, and the receiver it was told of,
    /// if any, is told of another piece instead.
    pub fn held(&mut self, piece: u32, now: Instant) -> Vec<(P, Advert)> {
        let told = self.assigned.remove(&piece);
        self.spent(piece, told, now)
    }

    /// `piece` is no longer fresh: `peer`, if any, is told of one more
    /// fresh piece; with none left, the sender opens up once nothing told
    /// of waits (or the last pieces waited [`OPEN_AFTER`]).
    fn spent(&mut self, piece: u32, peer: Option<P>, now: Instant) -> Vec<(P, Advert)> {
        if self.open {
            return Vec::new();
        }
        self.fresh.remove(&piece);
        if let Some(advert) = peer.and_then(|peer| self.tell_fresh(peer)) {
            return vec![advert];
        }
        if self.fresh.is_empty() && self.assigned.is_empty() {
            return self.open_up();
        }
        self.tick(now)
    }

    /// Tells `peer` of the next fresh piece, if one is left.
    fn tell_fresh(&mut self, peer: P) -> Option<(P, Advert)> {
        let piece = self.fresh.pop_first()?;
        self.assigned.insert(piece, peer);
        if let Some(told) = self.told.get_mut(&peer) {
            told.insert(piece as usize);
        }
        Some((peer, Advert::Have(piece)))
    }

    /// Time passed: opens up once the last pieces told of waited
    /// [`OPEN_AFTER`] to be asked for.
    pub fn tick(&mut self, now: Instant) -> Vec<(P, Advert)> {
        if self.fresh.is_empty() && !self.open {
            self.all_told_since.get_or_insert(now);
        }
        match self.all_told_since {
            Some(since) if !self.open && now.saturating_duration_since(since) >= OPEN_AFTER => {
                self.open_up()
            }
            _ => Vec::new(),
        }
    }

    /// `peer` left: the pieces advertised to it alone go to others.
    pub fn left(&mut self, peer: P) -> Vec<(P, Advert)> {
        self.told.remove(&peer);
        if self.open {
            return Vec::new();
        }
        let back: Vec<u32> = self
            .assigned
            .iter()
            .filter(|(_, holder)| **holder == peer)
            .map(|(piece, _)| *piece)
            .collect();
        for piece in back {
            self.assigned.remove(&piece);
            self.fresh.insert(piece);
            self.all_told_since = None;
        }
        self.refill()
    }

    /// No receiver holds `piece` any more (its holders left): it must go
    /// out again.
    pub fn lost(&mut self, piece: u32) -> Vec<(P, Advert)> {
        if self.open || self.assigned.contains_key(&piece) || piece as usize >= self.pieces {
            return Vec::new();
        }
        self.fresh.insert(piece);
        self.all_told_since = None;
        self.refill()
    }

    /// Tops up every receiver told fewer than [`ADVERTISED_PER_PEER`]
    /// pieces not yet sent.
    fn refill(&mut self) -> Vec<(P, Advert)> {
        let mut adverts = Vec::new();
        let peers: Vec<P> = self.told.keys().copied().collect();
        for peer in peers {
            let waiting = self
                .assigned
                .values()
                .filter(|holder| **holder == peer)
                .count();
            for _ in waiting..ADVERTISED_PER_PEER {
                let Some(advert) = self.tell_fresh(peer) else {
                    return adverts;
                };
                adverts.push(advert);
            }
        }
        adverts
    }

    /// Every piece went out or is on its way: advertise everything.
    fn open_up(&mut self) -> Vec<(P, Advert)> {
        self.open = true;
        let mut all = FixedBitSet::with_capacity(self.pieces);
        all.insert_range(..);
        self.told
            .iter_mut()
            .map(|(peer, told)| {
                told.insert_range(..);
                (*peer, Advert::Bitfield(all.clone()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ones(bits: &FixedBitSet) -> Vec<usize> {
        bits.ones().collect()
    }

    #[test]
    fn each_receiver_is_told_of_different_pieces() {
        let mut s = Seeding::new(40);
        let a = s.join('a');
        let b = s.join('b');
        assert_eq!(a.count_ones(..), ADVERTISED_PER_PEER);
        assert_eq!(b.count_ones(..), ADVERTISED_PER_PEER);
        assert!(a.is_disjoint(&b));
    }

    #[test]
    fn a_piece_sent_makes_room_for_one_more_and_the_end_opens_everything() {
        let mut s = Seeding::new(ADVERTISED_PER_PEER + 1);
        let told = s.join('a');
        let first = ones(&told)[0] as u32;
        let now = Instant::now();
        let next = s.sent('a', first, now);
        assert_eq!(next, vec![('a', Advert::Have(ADVERTISED_PER_PEER as u32))]);
        // Nothing fresh is left, but pieces told of are not sent yet: the
        // sender waits for them, then tells everyone of everything.
        assert!(s.sent('a', 1, now).is_empty());
        assert!(s.tick(now + OPEN_AFTER / 2).is_empty());
        let opened = s.tick(now + OPEN_AFTER);
        let mut all = FixedBitSet::with_capacity(ADVERTISED_PER_PEER + 1);
        all.insert_range(..);
        assert_eq!(opened, vec![('a', Advert::Bitfield(all.clone()))]);
        assert_eq!(s.join('b'), all);
        assert!(s.sent('b', 3, now).is_empty());
    }

    #[test]
    fn once_every_piece_went_out_everything_is_told_at_once() {
        let mut s = Seeding::new(2);
        let now = Instant::now();
        s.join('a');
        assert!(s.sent('a', 0, now).is_empty());
        let mut all = FixedBitSet::with_capacity(2);
        all.insert_range(..);
        assert_eq!(s.sent('a', 1, now), vec![('a', Advert::Bitfield(all))]);
    }

    #[test]
    fn pieces_told_to_a_receiver_that_left_go_to_another() {
        let mut s = Seeding::new(2 * ADVERTISED_PER_PEER);
        let a = s.join('a');
        let b = s.join('b');
        assert_eq!(a.count_ones(..) + b.count_ones(..), 2 * ADVERTISED_PER_PEER);
        let c = s.join('c');
        assert_eq!(c.count_ones(..), 0);
        let adverts = s.left('a');
        assert_eq!(adverts.len(), ADVERTISED_PER_PEER);
        assert!(adverts.iter().all(|(peer, advert)| *peer == 'c'
            && matches!(advert, Advert::Have(piece) if a.contains(*piece as usize))));
    }

    #[test]
    fn a_piece_whose_holders_left_goes_out_again() {
        let mut s = Seeding::new(ADVERTISED_PER_PEER + 2);
        let a = s.join('a');
        let piece = ones(&a)[0] as u32;
        s.sent('a', piece, Instant::now());
        s.left('a');
        let b = s.join('b');
        assert!(s.lost(piece).is_empty(), "b is told of all it may ask for");
        assert!(s.lost(999).is_empty());
        // As b's pieces go out, the lost piece is told of again.
        let told: Vec<Advert> = ones(&b)
            .into_iter()
            .flat_map(|sent| s.sent('b', sent as u32, Instant::now()))
            .map(|(_, advert)| advert)
            .collect();
        assert!(told.iter().any(|advert| match advert {
            Advert::Have(again) => *again == piece,
            Advert::Bitfield(all) => all.contains(piece as usize),
        }));
    }

    #[test]
    fn pieces_a_receiver_holds_already_are_not_fresh() {
        let pieces = ADVERTISED_PER_PEER + 4;
        let mut s = Seeding::new(pieces);
        let told = s.join('a');
        let now = Instant::now();
        // A receiver resuming holds everything but the last two pieces; the
        // sender learns it after telling it of eight of them.
        let mut adverts = Vec::new();
        for piece in 0..pieces - 2 {
            adverts.extend(s.held(piece as u32, now));
        }
        // The pieces it lacks are told of at once, then everything.
        let had = |piece: usize| {
            adverts.iter().any(|(_, advert)| match advert {
                Advert::Have(p) => *p as usize == piece,
                Advert::Bitfield(all) => all.contains(piece),
            })
        };
        assert!(!told.contains(pieces - 1));
        assert!(had(pieces - 1) && had(pieces - 2), "{adverts:?}");
        // Once both went out, everything is told of.
        assert!(s.sent('a', (pieces - 2) as u32, now).is_empty());
        let opened = s.sent('a', (pieces - 1) as u32, now);
        assert!(
            matches!(opened[..], [('a', Advert::Bitfield(_))]),
            "{opened:?}"
        );
    }

    #[test]
    fn nothing_to_send_is_open_from_the_start() {
        let mut s: Seeding<char> = Seeding::new(0);
        assert_eq!(s.join('a').len(), 0);
        assert!(s.sent('a', 0, Instant::now()).is_empty());
    }
}
