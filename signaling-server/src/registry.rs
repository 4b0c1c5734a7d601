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
use std::time::{Duration, Instant};

use signaling_protocol::{ErrorCode, MAX_ROOM_NAME_BYTES, PeerId, ServerMessage, SignalData};

use crate::outbox::SharedText;

/// Bounds the registry enforces.
#[derive(Debug, Clone, Copy)]
pub struct RegistryLimits {
    /// Most peers (present or absent) in one room.
    pub max_peers_per_room: usize,
    /// Most rooms at once.
    pub max_rooms: usize,
    /// How long an absent peer may take to resume.
    pub resume_grace: Duration,
    /// Most signals queued for one absent peer.
    pub max_queued_signals: usize,
    /// Most bytes of signals queued for one absent peer.
    pub max_queued_bytes: usize,
    /// Most bytes of signals queued for all absent peers together.
    pub max_absent_queue_bytes: usize,
}

/// Why the registry refused an operation. The `Display` text is the
/// `message` a client sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The room name breaks the naming rules.
    #[error("invalid room name: {0}")]
    InvalidRoom(&'static str),
    /// The room has reached its peer limit.
    #[error("room {room:?} is full ({limit} peers); try another room")]
    RoomFull {
        /// The room asked for.
        room: String,
        /// The configured limit.
        limit: usize,
    },
    /// A new room would exceed the room limit.
    #[error(
        "the server already holds its limit of {limit} rooms; join an existing room or try again later"
    )]
    TooManyRooms {
        /// The configured limit.
        limit: usize,
    },
    /// The sender is not a present member of any room on this connection.
    #[error("join a room before sending {0}")]
    NotJoined(&'static str),
    /// The addressed peer is not in the sender's room.
    #[error("peer {peer} is not in room {room:?}; it may have left")]
    UnknownPeer {
        /// The addressed peer.
        peer: PeerId,
        /// The sender's room.
        room: String,
    },
    /// A peer addressed a signal to itself.
    #[error("peer {0} is you; signals go to other peers of the room")]
    SignalToSelf(PeerId),
}

impl RegistryError {
    /// The wire error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidRoom(_) => ErrorCode::InvalidRoom,
            Self::RoomFull { .. } => ErrorCode::RoomFull,
            Self::TooManyRooms { .. } => ErrorCode::TooManyRooms,
            Self::NotJoined(_) => ErrorCode::NotJoined,
            Self::UnknownPeer { .. } | Self::SignalToSelf(_) => ErrorCode::UnknownPeer,
        }
    }

    /// The peer the error is about, sent as `error.peer_id`.
    pub fn peer_id(&self) -> Option<PeerId> {
        match self {
            Self::UnknownPeer { peer, .. } | Self::SignalToSelf(peer) => Some(*peer),
            _ => None,
        }
    }
}

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

/// Hashing for maps keyed by [`PeerId`]. Peer ids are random (v4) UUIDs
/// made by the server, so their own bits are already a uniform hash; a
/// client can look ids up but cannot choose the ids stored, so there is no
/// collision flooding to defend against, and SipHash's cost is skipped.
#[derive(Debug, Clone, Copy, Default)]
struct PeerIdHash;

impl std::hash::BuildHasher for PeerIdHash {
    type Hasher = PeerIdHasher;

    fn build_hasher(&self) -> PeerIdHasher {
        PeerIdHasher(0)
    }
}

/// Folds the id's bytes into 64 bits; see [`PeerIdHash`].
#[derive(Debug)]
struct PeerIdHasher(u64);

impl std::hash::Hasher for PeerIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(29) ^ u64::from_le_bytes(word);
        }
    }
}

/// Room names: 1–128 bytes of UTF-8 without control characters.
pub(crate) fn validate_room(room: &str) -> Result<(), RegistryError> {
    if room.is_empty() {
        return Err(RegistryError::InvalidRoom("the name is empty"));
    }
    if room.len() > MAX_ROOM_NAME_BYTES {
        return Err(RegistryError::InvalidRoom(
            "the name is longer than 128 bytes",
        ));
    }
    if room.chars().any(char::is_control) {
        return Err(RegistryError::InvalidRoom(
            "the name contains control characters",
        ));
    }
    Ok(())
}

/// A random (v4) UUID from the thread-local CSPRNG, which costs no system
/// call (unlike asking the OS for every id).
pub(crate) fn new_peer_id() -> PeerId {
    PeerId::from(uuid::Builder::from_random_bytes(rand::random()).into_uuid())
}

/// 128 random bits from the thread-local CSPRNG, as 32 hex digits.
pub(crate) fn new_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;

    use super::*;

    type Conn = u32;

    fn limits() -> RegistryLimits {
        RegistryLimits {
            max_peers_per_room: 3,
            max_rooms: 2,
            resume_grace: Duration::from_secs(30),
            max_queued_signals: 2,
            max_queued_bytes: 10_000,
            max_absent_queue_bytes: 1 << 20,
        }
    }

    fn registry() -> Registry<Conn> {
        Registry::new(limits())
    }

    fn data(text: &str) -> SignalData {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    fn drain(reg: &mut Registry<Conn>) -> Vec<(Conn, ServerMessage)> {
        reg.drain_deliveries()
            .map(|(conn, frame)| (conn, ServerMessage::parse(frame.as_str()).unwrap()))
            .collect()
    }

    fn join(reg: &mut Registry<Conn>, conn: Conn, room: &str) -> Joined<Conn> {
        reg.join(conn, room, None).unwrap()
    }

    #[test]
    fn first_join_sees_empty_room_second_is_announced() {
        let mut reg = registry();
        let a = join(&mut reg, 1, "r");
        assert!(a.peers.is_empty());
        assert!(!a.resumed);
        assert!(drain(&mut reg).is_empty());

        let b = join(&mut reg, 2, "r");
        assert_eq!(b.peers, [a.peer_id]);
        let got = drain(&mut reg);
        assert_eq!(got.len(), 1);
        assert!(
            matches!(got[0], (1, ServerMessage::PeerJoined { peer_id }) if peer_id == b.peer_id)
        );
        assert_eq!(reg.room_count(), 1);
        assert_eq!(reg.peer_count(), 2);
    }

    #[test]
    fn peers_are_listed_oldest_first() {
        let mut reg = registry();
        let a = join(&mut reg, 1, "r");
        let b = join(&mut reg, 2, "r");
        let c = join(&mut reg, 3, "r");
        assert_eq!(c.peers, [a.peer_id, b.peer_id]);
    }

    #[test]
    fn peer_ids_are_version_4_uuids() {
        let id = new_peer_id();
        assert_eq!(id.as_uuid().get_version_num(), 4);
        assert_ne!(id, new_peer_id());
    }

    #[test]
    fn tokens_are_long_random_and_distinct() {
        let mut reg = registry();
        let a = join(&mut reg, 1, "r");
        let b = join(&mut reg, 2, "r");
        assert_eq!(a.resume_token.len(), 32);
        assert!(a.resume_token.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.resume_token, b.resume_token);
    }

    #[test]
    fn signal_reaches_only_the_addressed_peer_verbatim() {
        let mut reg = registry();
        let a = join(&mut reg, 1, "r");
        let b = join(&mut reg, 2, "r");
        let _c = join(&mut reg, 3, "r");
        drain(&mut reg);
        reg.signal(a.peer_id, &1, b.peer_id, data(r#"{"sdp": "x y"}"#))
            .unwrap();
        let frames: Vec<_> = reg.drain_deliveries().collect();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].0, 2);
        assert_eq!(
            frames[0].1.as_str(),
            format!(
                r#"{{"type":"signal","from":"{}","data":{{"sdp": "x y"}}}}"#,
                a.peer_id
            )
        );
    }

    #[test]
    fn signals_keep_their_order() {
        let mut reg = registry();
        let a = join(&mut reg, 1, "r");
        let b = join(&mut reg, 2, "r");
        drain(&mut reg);
        for i in 0..10 {
            reg.signal(a.peer_id, &1, b.peer_id, data(&i.to_string()))
                .unwrap();
        }
        let order: Vec<String> = drain(&mut reg)
            .into_iter()
            .map(|(_, msg)| match msg {
                ServerMessage::Signal { data, .. } => data.get().to_owned(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(order, (0..10).map(|i| i.to_string()).collect::<Vec<_>>());
    }

    #[test]
    fn rooms_are_isolated() {
        let mut reg = registry();
        let a = join(&mut reg, 1, "red");
        let b = join(&mut reg, 2, "blue");
        assert!(b.peers.is_empty(), "a peer of another room is not listed");
        assert!(drain(&mut reg).is_empty(), "no peer_joined across rooms");
        let err = reg.signal(a.peer_id, &1, b.peer_id, data("1")).unwrap_err();
        assert_eq!(err.code(), ErrorCode::UnknownPeer);
        assert_eq!(err.peer_id(), Some(b.peer_id));
        assert!(err.to_string().contains("red"), "{err}");
        assert!(drain(&mut reg).is_empty());
    }

    #[test]
    fn signal_to_unknown_or_self_is_unknown_peer() {
        let mut reg = registry();
        let a = join(&mut reg, 1, "r");
        let ghost = PeerId::random();
        let err = reg.signal(a.peer_id, &1, ghost, data("1")).unwrap_err();
        assert_eq!(
            err,
            RegistryError::UnknownPeer {
                peer: ghost,
                room: "r".into()
            }
        );
        let err = reg.signal(a.peer_id, &1, a.peer_id, data("1")).unwrap_err();
        assert_eq!(err.code(), ErrorCode::UnknownPeer);
    }

    #[test]
    fn signal_from_a_peer_not_on_this_connection_is_not_joined() {
        let mut reg = registry();
        let a = join(&mut reg, 1, "r");
        let b = join(&mut reg, 2, "r");
        let err = reg.signal(a.peer_id, &2, b.peer_id, data("1")).unwrap_err();
        assert_eq!(err.code(), ErrorCode::NotJoined);
        let err = reg
            .signal(PeerId::random(), &9, b.peer_id, data("1"))
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::NotJoined);
    }

    #[test]
    fn leave_announces_and_frees_the_room() {
        let mut reg = registry();
        let a = join(&mut reg, 1, "r");
        let b = join(&mut reg, 2, "r");
        drain(&mut reg);
        reg.leave(b.peer_id, &2).unwrap();
        let got = drain(&mut reg);
        assert!(
            matches!(got[..], [(1, ServerMessage::PeerLeft { peer_id })] if peer_id == b.peer_id)
        );
        reg.leave(a.peer_id, &1).unwrap();
        assert!(drain(&mut reg).is_empty());
        assert_eq!(reg.room_count(), 0);
        assert_eq!(reg.peer_count(), 0);
        assert_eq!(
            reg.leave(a.peer_id, &1).unwrap_err().code(),
            ErrorCode::NotJoined
        );
    }

    #[test]
    fn left_peer_cannot_resume() {
        let mut reg = registry();
        let a = join(&mut reg, 1, "r");
        reg.leave(a.peer_id, &1).unwrap();
        let again = reg.join(1, "r", Some(&a.resume_token)).unwrap();
        assert!(!again.resumed);
        assert_ne!(again.peer_id, a.peer_id);
    }

    #[test]
    fn room_full() {
        let mut reg = registry();
        for conn in 1..=3 {
            join(&mut reg, conn, "r");
        }
        let err = reg.join(4, "r", None).unwrap_err();
        assert_eq!(
            err,
            RegistryError::RoomFull {
                room: "r".into(),
                limit: 3
            }
        );
        assert_eq!(
            err.to_string(),
            r#"room "r" is full (3 peers); try another room"#
        );
        assert_eq!(err.code(), ErrorCode::RoomFull);
    }

    #[test]
    fn too_many_rooms() {
        let mut reg = registry();
        join(&mut reg, 1, "a");
        join(&mut reg, 2, "b");
        let err = reg.join(3, "c", None).unwrap_err();
        assert_eq!(err.code(), ErrorCode::TooManyRooms);
        join(&mut reg, 3, "a");
    }

    #[test]
    fn invalid_room_names() {
        let mut reg = registry();
        for bad in ["", "a\nb", "\u{7f}", &"x".repeat(129)] {
            let err = reg.join(1, bad, None).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidRoom, "{bad:?}");
        }
        join(&mut reg, 1, &"é".repeat(64));
    }

    #[test]
    fn absent_peer_stays_listed_and_resumes_with_queued_signals() {
        let mut reg = registry();
        let now = Instant::now();
        let a = join(&mut reg, 1, "r");
        let b = join(&mut reg, 2, "r");
        drain(&mut reg);
        reg.disconnect(b.peer_id, &2, now);
        assert!(drain(&mut reg).is_empty(), "no peer_left while absent");

        reg.signal(a.peer_id, &1, b.peer_id, data("1")).unwrap();
        reg.signal(a.peer_id, &1, b.peer_id, data("2")).unwrap();
        assert!(drain(&mut reg).is_empty(), "queued, not delivered");

        let c = join(&mut reg, 3, "r");
        assert_eq!(c.peers, [a.peer_id, b.peer_id], "absent peers are members");
        drain(&mut reg);

        let back = reg.join(7, "r", Some(&b.resume_token)).unwrap();
        assert!(back.resumed);
        assert_eq!(back.peer_id, b.peer_id);
        assert_eq!(back.peers, [a.peer_id, c.peer_id]);
        assert_ne!(back.resume_token, b.resume_token, "token rotates");
        assert_eq!(back.replaced, None);
        let backlog: Vec<_> = back.backlog.iter().map(|f| f.as_str().to_owned()).collect();
        assert_eq!(backlog.len(), 2);
        assert!(backlog[0].ends_with(r#""data":1}"#), "{backlog:?}");
        assert!(backlog[1].ends_with(r#""data":2}"#), "{backlog:?}");
        assert!(drain(&mut reg).is_empty(), "others see no join");
        assert_eq!(reg.next_expiry(), None);

        // Signals now go to the new connection.
        reg.signal(a.peer_id, &1, b.peer_id, data("3")).unwrap();
        let got: Vec<_> = reg.drain_deliveries().map(|(conn, _)| conn).collect();
        assert_eq!(got, [7]);
        // The old token is spent: it would join as a newcomer, and the room
        // (a, b, c) has no room for one.
        let again = reg.join(8, "r", Some(&b.resume_token));
        assert_eq!(again.unwrap_err().code(), ErrorCode::RoomFull);
    }

    #[test]
    fn resume_needs_the_same_room() {
        let mut reg = registry();
        let now = Instant::now();
        let a = join(&mut reg, 1, "r");
        reg.disconnect(a.peer_id, &1, now);
        let other = reg.join(2, "s", Some(&a.resume_token)).unwrap();
        assert!(!other.resumed);
        let back = reg.join(3, "r", Some(&a.resume_token)).unwrap();
        assert!(back.resumed, "the token still works in its own room");
    }

    #[test]
    fn resume_takes_over_a_connection_not_yet_noticed_dead() {
        let mut reg = registry();
        let now = Instant::now();
        let a = join(&mut reg, 1, "r");
        let back = reg.join(2, "r", Some(&a.resume_token)).unwrap();
        assert!(back.resumed);
        assert_eq!(back.replaced, Some(1));
        // The stale connection can no longer act for the peer, and its
        // eventual disconnect does not make the peer absent.
        assert_eq!(
            reg.leave(a.peer_id, &1).unwrap_err().code(),
            ErrorCode::NotJoined
        );
        reg.disconnect(a.peer_id, &1, now);
        assert_eq!(reg.next_expiry(), None);
    }

    #[test]
    fn expiry_after_grace_announces_departure() {
        let mut reg = registry();
        let now = Instant::now();
        let a = join(&mut reg, 1, "r");
        let b = join(&mut reg, 2, "r");
        drain(&mut reg);
        reg.disconnect(b.peer_id, &2, now);
        assert_eq!(reg.next_expiry(), Some(now + Duration::from_secs(30)));
        assert_eq!(reg.expire(now + Duration::from_secs(29)), 0);
        assert!(drain(&mut reg).is_empty());
        assert_eq!(reg.expire(now + Duration::from_secs(30)), 1);
        let got = drain(&mut reg);
        assert!(
            matches!(got[..], [(1, ServerMessage::PeerLeft { peer_id })] if peer_id == b.peer_id)
        );
        assert_eq!(reg.next_expiry(), None);
        let late = reg.join(3, "r", Some(&b.resume_token)).unwrap();
        assert!(!late.resumed, "an expired token joins afresh");
        assert_eq!(late.peers, [a.peer_id]);
    }

    #[test]
    fn expiry_of_last_member_frees_the_room() {
        let mut reg = registry();
        let now = Instant::now();
        let a = join(&mut reg, 1, "r");
        reg.disconnect(a.peer_id, &1, now);
        assert_eq!(reg.room_count(), 1);
        reg.expire(now + Duration::from_secs(31));
        assert_eq!(reg.room_count(), 0);
        assert_eq!(reg.peer_count(), 0);
    }

    #[test]
    fn queue_overflow_evicts_the_absent_peer() {
        let mut reg = registry();
        let now = Instant::now();
        let a = join(&mut reg, 1, "r");
        let b = join(&mut reg, 2, "r");
        drain(&mut reg);
        reg.disconnect(b.peer_id, &2, now);
        reg.signal(a.peer_id, &1, b.peer_id, data("1")).unwrap();
        reg.signal(a.peer_id, &1, b.peer_id, data("2")).unwrap();
        assert!(drain(&mut reg).is_empty());
        reg.signal(a.peer_id, &1, b.peer_id, data("3")).unwrap();
        let got = drain(&mut reg);
        assert!(
            matches!(got[..], [(1, ServerMessage::PeerLeft { peer_id })] if peer_id == b.peer_id)
        );
        assert_eq!(reg.next_expiry(), None);
        let err = reg.signal(a.peer_id, &1, b.peer_id, data("4")).unwrap_err();
        assert_eq!(err.code(), ErrorCode::UnknownPeer);
        assert!(!reg.join(2, "r", Some(&b.resume_token)).unwrap().resumed);
    }

    #[test]
    fn queue_overflow_by_bytes_evicts_the_absent_peer() {
        let mut reg = Registry::new(RegistryLimits {
            max_queued_bytes: 200,
            max_queued_signals: 100,
            ..limits()
        });
        let now = Instant::now();
        let a = join(&mut reg, 1, "r");
        let b = join(&mut reg, 2, "r");
        reg.disconnect(b.peer_id, &2, now);
        drain(&mut reg);
        let big = format!("\"{}\"", "x".repeat(150));
        reg.signal(a.peer_id, &1, b.peer_id, data(&big)).unwrap();
        assert_eq!(reg.peer_count(), 1);
    }

    #[test]
    fn server_wide_budget_evicts_the_absent_peer_with_the_largest_queue() {
        let big = format!("\"{}\"", "x".repeat(100));
        let frame_len = ServerMessage::Signal {
            from: PeerId::random(),
            data: data(&big),
        }
        .to_json()
        .len();
        // Room for four queued frames, not five.
        let mut reg = Registry::new(RegistryLimits {
            max_rooms: 3,
            max_queued_signals: 100,
            max_queued_bytes: 10_000,
            max_absent_queue_bytes: 4 * frame_len + frame_len / 2,
            ..limits()
        });
        let now = Instant::now();
        // Room "r": a present, b and c absent. Room "s": d present, e absent.
        let a = join(&mut reg, 1, "r");
        let b = join(&mut reg, 2, "r");
        let c = join(&mut reg, 3, "r");
        let d = join(&mut reg, 4, "s");
        let e = join(&mut reg, 5, "s");
        reg.disconnect(b.peer_id, &2, now);
        reg.disconnect(c.peer_id, &3, now);
        reg.disconnect(e.peer_id, &5, now);
        drain(&mut reg);

        // b gets three frames, e one: four, within budget.
        for _ in 0..3 {
            reg.signal(a.peer_id, &1, b.peer_id, data(&big)).unwrap();
        }
        reg.signal(d.peer_id, &4, e.peer_id, data(&big)).unwrap();
        assert_eq!(reg.absent_queue_bytes(), 4 * frame_len);
        assert!(drain(&mut reg).is_empty());

        // A fifth, for e, does not fit: b, holding the largest queue, goes
        // (from another room than the sender's).
        reg.signal(d.peer_id, &4, e.peer_id, data(&big)).unwrap();
        let got = drain(&mut reg);
        assert!(
            matches!(got[..], [(1, ServerMessage::PeerLeft { peer_id })] if peer_id == b.peer_id),
            "{got:?}"
        );
        assert_eq!(reg.absent_queue_bytes(), 2 * frame_len);
        assert!(!reg.join(2, "r", Some(&b.resume_token)).unwrap().resumed);
        drain(&mut reg);

        // When the addressee holds the largest queue, it is evicted itself
        // and the signal dropped with it.
        reg.signal(d.peer_id, &4, e.peer_id, data(&big)).unwrap();
        reg.signal(a.peer_id, &1, c.peer_id, data(&big)).unwrap();
        assert_eq!(reg.absent_queue_bytes(), 4 * frame_len);
        assert!(drain(&mut reg).is_empty());
        reg.signal(d.peer_id, &4, e.peer_id, data(&big)).unwrap();
        let got = drain(&mut reg);
        assert!(
            matches!(got[..], [(4, ServerMessage::PeerLeft { peer_id })] if peer_id == e.peer_id),
            "{got:?}"
        );
        assert_eq!(reg.absent_queue_bytes(), frame_len, "c's queue is kept");

        // c resumes with its signal; nothing stays counted.
        let back = reg.join(6, "r", Some(&c.resume_token)).unwrap();
        assert!(back.resumed);
        assert_eq!(back.backlog.len(), 1);
        assert_eq!(reg.absent_queue_bytes(), 0);
    }

    #[test]
    fn disconnect_of_a_left_peer_is_ignored() {
        let mut reg = registry();
        let a = join(&mut reg, 1, "r");
        reg.leave(a.peer_id, &1).unwrap();
        reg.disconnect(a.peer_id, &1, Instant::now());
        assert_eq!(reg.next_expiry(), None);
        assert_eq!(reg.peer_count(), 0);
    }
}
