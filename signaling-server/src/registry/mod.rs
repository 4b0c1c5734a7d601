//! Rooms and peers as a plain state machine.
//!
//! The registry owns no sockets, spawns nothing and reads no clock: callers
//! pass the time in. Each operation updates the state and queues
//! *deliveries* — which connection gets which encoded frame — that the caller
//! drains with [`Registry::drain_deliveries`] and hands to the connections.
//! Tests drive it directly.
//!
//! A peer is either *present* (attached to a connection) or *absent* (its
//! connection dropped less than the resume grace period ago). Absent peers
//! stay members of their room: others see no `peer_left`, signals to them are
//! queued (bounded), and [`Registry::join`] with their resume token brings
//! them back with the same id. [`Registry::expire`] turns absence that
//! outlived the grace period into a real departure.
//!
//! Queued signals are bounded per absent peer (`max_queued_signals`,
//! `max_queued_bytes`) and, summed over all absent peers, by
//! `max_absent_queue_bytes`. When a signal would push the sum past that
//! budget, the absent peer with the largest queue is evicted (it leaves its
//! room, the others get `peer_left`), repeatedly until the signal fits. The
//! largest queue goes first so that peers of one busy room cannot get every
//! other absent peer on the server evicted; if the addressee itself holds the
//! largest queue, it is the one evicted and the signal is dropped with it.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use signaling_protocol::{PeerId, ServerMessage, SignalData};

use crate::outbox::SharedText;
use peer_id_hash::PeerIdHash;

mod limits;
mod names;
mod peer_id_hash;

pub use limits::{RegistryError, RegistryLimits};
pub(crate) use names::{new_peer_id, new_token, validate_room};

/// The outcome of a successful [`Registry::join`].
#[derive(Debug)]
pub struct Joined<C> {
    /// The peer's id (the old one when resumed).
    pub peer_id: PeerId,
    /// The room's name.
    pub room: Arc<str>,
    /// Other members, oldest first, absent ones included.
    pub peers: Vec<PeerId>,
    /// The token for the next resume; the one just used is no longer valid.
    pub resume_token: String,
    /// Whether an existing peer was taken back.
    pub resumed: bool,
    /// Signals queued while the peer was absent, oldest first. The caller
    /// sends them right after the `welcome`.
    pub backlog: VecDeque<SharedText>,
    /// The connection the peer was still attached to, when a resume took it
    /// over before the server noticed the old one drop.
    pub replaced: Option<C>,
}

#[derive(Debug)]
struct Peer<C> {
    room: Arc<str>,
    token: String,
    presence: Presence<C>,
}

#[derive(Debug)]
enum Presence<C> {
    Present(C),
    Absent {
        deadline: Instant,
        backlog: VecDeque<SharedText>,
        bytes: usize,
    },
}

/// Rooms, peers and resume tokens. `C` is the caller's handle for a
/// connection; the registry only clones and compares it.
#[derive(Debug)]
pub struct Registry<C> {
    limits: RegistryLimits,
    rooms: HashMap<Arc<str>, Vec<PeerId>>,
    peers: HashMap<PeerId, Peer<C>, PeerIdHash>,
    tokens: HashMap<String, PeerId>,
    deadlines: BTreeSet<(Instant, PeerId)>,
    /// Queued bytes of every absent peer, so the largest is found at once.
    absent_queues: BTreeSet<(usize, PeerId)>,
    /// Sum of the queued bytes of all absent peers.
    absent_bytes: usize,
    deliveries: Vec<(C, SharedText)>,
}

impl<C: Clone + PartialEq> Registry<C> {
    /// An empty registry.
    pub fn new(limits: RegistryLimits) -> Self {
        Self {
            limits,
            rooms: HashMap::new(),
            peers: HashMap::default(),
            tokens: HashMap::new(),
            deadlines: BTreeSet::new(),
            absent_queues: BTreeSet::new(),
            absent_bytes: 0,
            deliveries: Vec::new(),
        }
    }

    /// Puts connection `conn` into `room`. With a `resume` token of an
    /// existing peer of that room, the peer is taken back (same id, queued
    /// signals returned, nobody told); otherwise a new peer joins and the
    /// others get `peer_joined`. An unknown or expired token is not an error:
    /// the client simply joins afresh (`resumed: false`).
    pub fn join(
        &mut self,
        conn: C,
        room: &str,
        resume: Option<&str>,
    ) -> Result<Joined<C>, RegistryError> {
        validate_room(room)?;
        if let Some(joined) = resume.and_then(|token| self.try_resume(token, room, &conn)) {
            return Ok(joined);
        }
        self.join_fresh(conn, room)
    }

    /// Takes back the peer holding `token` if it is a member of `room`.
    fn try_resume(&mut self, token: &str, room: &str, conn: &C) -> Option<Joined<C>> {
        let peer_id = *self.tokens.get(token)?;
        let peer = self.peers.get_mut(&peer_id)?;
        if &*peer.room != room {
            return None;
        }
        let token = new_token();
        self.tokens.remove(&peer.token);
        self.tokens.insert(token.clone(), peer_id);
        peer.token = token.clone();
        let room = peer.room.clone();
        let previous = std::mem::replace(&mut peer.presence, Presence::Present(conn.clone()));
        let (backlog, replaced) = match previous {
            Presence::Present(old) => (VecDeque::new(), Some(old)),
            Presence::Absent {
                deadline,
                backlog,
                bytes,
            } => {
                self.deadlines.remove(&(deadline, peer_id));
                self.absent_queues.remove(&(bytes, peer_id));
                self.absent_bytes -= bytes;
                (backlog, None)
            }
        };
        Some(Joined {
            peer_id,
            peers: self.others(&room, peer_id),
            room,
            resume_token: token,
            resumed: true,
            backlog,
            replaced,
        })
    }

    fn join_fresh(&mut self, conn: C, room: &str) -> Result<Joined<C>, RegistryError> {
        let room: Arc<str> = match self.rooms.get_key_value(room) {
            Some((_, members)) if members.len() >= self.limits.max_peers_per_room => {
                return Err(RegistryError::RoomFull {
                    room: room.to_owned(),
                    limit: self.limits.max_peers_per_room,
                });
            }
            Some((name, _)) => name.clone(),
            None if self.rooms.len() >= self.limits.max_rooms => {
                return Err(RegistryError::TooManyRooms {
                    limit: self.limits.max_rooms,
                });
            }
            None => Arc::from(room),
        };
        let peer_id = new_peer_id();
        let token = new_token();
        let members = self.rooms.entry(room.clone()).or_default();
        let peers = members.clone();
        members.push(peer_id);
        let frame = SharedText::from(ServerMessage::PeerJoined { peer_id }.to_json());
        self.broadcast(&peers, &frame);
        self.tokens.insert(token.clone(), peer_id);
        self.peers.insert(
            peer_id,
            Peer {
                room: room.clone(),
                token: token.clone(),
                presence: Presence::Present(conn),
            },
        );
        Ok(Joined {
            peer_id,
            room,
            peers,
            resume_token: token,
            resumed: false,
            backlog: VecDeque::new(),
            replaced: None,
        })
    }

    /// Relays `data` from `from` (attached to `conn`) to `to` in the same room.
    /// A signal to an absent peer is queued; one past the queue's bound evicts
    /// that peer (it leaves the room, everyone gets `peer_left`) rather than
    /// leaving a silent gap in what it receives on resume. One past the
    /// server-wide budget evicts the absent peers with the largest queues
    /// until it fits (see the module documentation).
    pub fn signal(
        &mut self,
        from: PeerId,
        conn: &C,
        to: PeerId,
        data: SignalData,
    ) -> Result<(), RegistryError> {
        let room = self.present_room(from, conn, "signal")?;
        if to == from {
            return Err(RegistryError::SignalToSelf(to));
        }
        let unknown = || RegistryError::UnknownPeer {
            peer: to,
            room: room.to_string(),
        };
        let target = self.peers.get_mut(&to).ok_or_else(unknown)?;
        if target.room != room {
            return Err(unknown());
        }
        let frame = SharedText::from(ServerMessage::Signal { from, data }.to_json());
        match &target.presence {
            Presence::Present(conn) => {
                self.deliveries.push((conn.clone(), frame));
                Ok(())
            }
            Presence::Absent { backlog, bytes, .. } => {
                if backlog.len() >= self.limits.max_queued_signals
                    || bytes + frame.len() > self.limits.max_queued_bytes
                {
                    self.remove_peer(to);
                } else {
                    self.queue_for_absent(to, frame);
                }
                Ok(())
            }
        }
    }

    /// Queues `frame` for the absent peer `to`, first evicting the absent
    /// peers with the largest queues while the server-wide budget would be
    /// exceeded. Drops the frame if `to` itself is evicted.
    fn queue_for_absent(&mut self, to: PeerId, frame: SharedText) {
        while self.absent_bytes + frame.len() > self.limits.max_absent_queue_bytes {
            let Some(&(_, largest)) = self.absent_queues.last() else {
                break;
            };
            self.remove_peer(largest);
            if largest == to {
                return;
            }
        }
        if self.absent_bytes + frame.len() > self.limits.max_absent_queue_bytes {
            // Only reached when the frame alone exceeds the budget.
            self.remove_peer(to);
            return;
        }
        let Some(Peer {
            presence: Presence::Absent { backlog, bytes, .. },
            ..
        }) = self.peers.get_mut(&to)
        else {
            return;
        };
        self.absent_queues.remove(&(*bytes, to));
        *bytes += frame.len();
        self.absent_bytes += frame.len();
        self.absent_queues.insert((*bytes, to));
        backlog.push_back(frame);
    }

    /// `peer` leaves its room for good: its token dies and the others get
    /// `peer_left`. The connection stays usable for another `join`.
    pub fn leave(&mut self, peer: PeerId, conn: &C) -> Result<(), RegistryError> {
        self.present_room(peer, conn, "leave")?;
        self.remove_peer(peer);
        Ok(())
    }

    /// `peer`'s connection `conn` dropped: the peer becomes absent until
    /// `now + resume_grace`. Ignored when the peer has meanwhile resumed on
    /// another connection.
    pub fn disconnect(&mut self, peer: PeerId, conn: &C, now: Instant) {
        let Some(entry) = self.peers.get_mut(&peer) else {
            return;
        };
        if !matches!(&entry.presence, Presence::Present(current) if current == conn) {
            return;
        }
        let deadline = now + self.limits.resume_grace;
        entry.presence = Presence::Absent {
            deadline,
            backlog: VecDeque::new(),
            bytes: 0,
        };
        self.deadlines.insert((deadline, peer));
        self.absent_queues.insert((0, peer));
    }

    /// Removes every absent peer whose grace period ended at or before `now`;
    /// their rooms get `peer_left`. Returns how many left.
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut expired = 0;
        while let Some(&(deadline, peer)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.remove_peer(peer);
            expired += 1;
        }
        expired
    }

    /// When the next absent peer's grace period ends, if any peer is absent.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.deadlines.first().map(|&(deadline, _)| deadline)
    }

    /// Takes the frames queued for connections by the operations so far, in
    /// the order they must be sent.
    pub fn drain_deliveries(&mut self) -> std::vec::Drain<'_, (C, SharedText)> {
        self.deliveries.drain(..)
    }

    /// Rooms currently held.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Peers currently held, present and absent.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Bytes of signals queued for all absent peers together.
    pub fn absent_queue_bytes(&self) -> usize {
        self.absent_bytes
    }

    /// The room of `peer` if it is present on `conn`.
    fn present_room(
        &self,
        peer: PeerId,
        conn: &C,
        what: &'static str,
    ) -> Result<Arc<str>, RegistryError> {
        match self.peers.get(&peer) {
            Some(entry) if matches!(&entry.presence, Presence::Present(c) if c == conn) => {
                Ok(entry.room.clone())
            }
            _ => Err(RegistryError::NotJoined(what)),
        }
    }

    /// Members of `room` other than `peer`, oldest first.
    fn others(&self, room: &str, peer: PeerId) -> Vec<PeerId> {
        self.rooms
            .get(room)
            .map(|members| members.iter().copied().filter(|&p| p != peer).collect())
            .unwrap_or_default()
    }

    /// Drops a peer from every index and tells its room.
    fn remove_peer(&mut self, peer_id: PeerId) {
        let Some(peer) = self.peers.remove(&peer_id) else {
            return;
        };
        self.tokens.remove(&peer.token);
        if let Presence::Absent {
            deadline, bytes, ..
        } = peer.presence
        {
            self.deadlines.remove(&(deadline, peer_id));
            self.absent_queues.remove(&(bytes, peer_id));
            self.absent_bytes -= bytes;
        }
        let Some(members) = self.rooms.get_mut(&peer.room) else {
            return;
        };
        members.retain(|&p| p != peer_id);
        if members.is_empty() {
            self.rooms.remove(&peer.room);
            return;
        }
        let members = members.clone();
        let frame = SharedText::from(ServerMessage::PeerLeft { peer_id }.to_json());
        self.broadcast(&members, &frame);
    }

    /// Queues `frame` for every present peer in `members`. Absent peers learn
    /// the room's membership from `welcome.peers` when they resume.
    fn broadcast(&mut self, members: &[PeerId], frame: &SharedText) {
        for member in members {
            if let Some(Peer {
                presence: Presence::Present(conn),
                ..
            }) = self.peers.get(member)
            {
                self.deliveries.push((conn.clone(), frame.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests;
