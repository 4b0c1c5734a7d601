//! What one instance knows locally when rooms live in Redis: its own peers
//! (peer → connection), and for each room it has a peer in, which instance
//! the room's other peers were last seen on. With a known route a signal is
//! one `PUBLISH` to that instance's channel instead of a script that looks
//! the addressee up.
//!
//! A route is learnt from the reply of the script that delivered a signal
//! the slow way, and forgotten when the peer leaves its room (the script
//! that removes it tells every instance of the room, before the room hears
//! `peer_left`), when a `PUBLISH` to its instance reached nobody (the
//! instance is gone), and when the subscription to Redis is renewed. A route
//! that is out of date otherwise (the peer went absent or resumed on another
//! instance) still works: the instance it names hands the frame on.
//!
//! A plain state structure without I/O, tested on its own.

use std::collections::HashMap;
use std::sync::Arc;

use signaling_protocol::PeerId;

use crate::broker::ConnHandle;

/// A peer attached to a connection of this instance.
#[derive(Debug, Clone)]
pub(super) struct Local {
    /// Its connection.
    pub(super) conn: ConnHandle,
    /// Its room.
    pub(super) room: Arc<str>,
    /// Its current resume token (to put it back if Redis loses its data).
    pub(super) token: String,
}

/// A room with at least one peer here.
#[derive(Debug, Default)]
struct RoomView {
    /// Peers of this instance in it.
    local: usize,
    /// Bumped whenever a route is forgotten, so a reply computed before
    /// that cannot bring the route back.
    epoch: u64,
    /// Peer → the channel of the instance it is attached to.
    routes: HashMap<PeerId, Arc<str>>,
}

/// This instance's peers and the routes to the other peers of their rooms.
#[derive(Debug)]
pub(super) struct LocalPeers {
    peers: HashMap<PeerId, Local>,
    rooms: HashMap<Arc<str>, RoomView>,
    /// Most routes kept per room (a room's peers, at most).
    max_routes_per_room: usize,
}

impl LocalPeers {
    /// No peers; at most `max_routes_per_room` routes kept per room.
    pub(super) fn new(max_routes_per_room: usize) -> Self {
        Self {
            peers: HashMap::new(),
            rooms: HashMap::new(),
            max_routes_per_room,
        }
    }

    /// How many peers are attached here.
    pub(super) fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// The local peer `peer`, if attached here.
    pub(super) fn get(&self, peer: &PeerId) -> Option<&Local> {
        self.peers.get(peer)
    }

    /// Attaches `peer`; returns what it replaced.
    pub(super) fn attach(&mut self, peer: PeerId, local: Local) -> Option<Local> {
        self.rooms.entry(local.room.clone()).or_default().local += 1;
        let previous = self.peers.insert(peer, local);
        if let Some(previous) = &previous {
            self.room_lost_one(&previous.room);
        }
        previous
    }

    /// Detaches `peer` if it is attached to `conn`.
    pub(super) fn detach(&mut self, peer: PeerId, conn: &ConnHandle) -> Option<Local> {
        if self
            .peers
            .get(&peer)
            .is_none_or(|local| local.conn != *conn)
        {
            return None;
        }
        let local = self.peers.remove(&peer)?;
        self.room_lost_one(&local.room);
        Some(local)
    }

    /// Detaches `peer` if its connection has the id `conn_id` (it resumed
    /// on another instance).
    pub(super) fn detach_conn_id(&mut self, peer: PeerId, conn_id: &str) -> Option<Local> {
        let matches = self
            .peers
            .get(&peer)
            .is_some_and(|local| local.conn.id.to_string() == conn_id);
        if !matches {
            return None;
        }
        let local = self.peers.remove(&peer)?;
        self.room_lost_one(&local.room);
        Some(local)
    }

    /// The channel `peer` of `room` was last seen on, and the room's epoch
    /// (pass it to [`Self::learn`]).
    pub(super) fn route(&self, room: &str, peer: &PeerId) -> (Option<Arc<str>>, u64) {
        match self.rooms.get(room) {
            Some(view) => (view.routes.get(peer).cloned(), view.epoch),
            None => (None, 0),
        }
    }

    /// Remembers that `peer` of `room` is reached through `channel`, unless
    /// a route of the room was forgotten since `epoch` was read, the room
    /// has no peer here any more, or it has all the routes it may keep.
    pub(super) fn learn(&mut self, room: &str, peer: PeerId, channel: Arc<str>, epoch: u64) {
        let max = self.max_routes_per_room;
        if let Some(view) = self.rooms.get_mut(room)
            && view.epoch == epoch
            && (view.routes.len() < max || view.routes.contains_key(&peer))
        {
            view.routes.insert(peer, channel);
        }
    }

    /// Forgets the route to `peer` of `room` (it left).
    pub(super) fn forget(&mut self, room: &str, peer: &PeerId) {
        if let Some(view) = self.rooms.get_mut(room) {
            view.routes.remove(peer);
            view.epoch += 1;
        }
    }

    /// Forgets every route through `channel` (a `PUBLISH` there reached
    /// nobody).
    pub(super) fn forget_channel(&mut self, channel: &str) {
        for view in self.rooms.values_mut() {
            let before = view.routes.len();
            view.routes.retain(|_, route| &**route != channel);
            if view.routes.len() != before {
                view.epoch += 1;
            }
        }
    }

    /// Forgets every route (the subscription was renewed: notices to
    /// forget may have been missed).
    pub(super) fn forget_all_routes(&mut self) {
        for view in self.rooms.values_mut() {
            view.routes.clear();
            view.epoch += 1;
        }
    }

    /// Every local peer: id, room, token and connection id.
    pub(super) fn snapshot(&self) -> Vec<(PeerId, Arc<str>, String, u64)> {
        self.peers
            .iter()
            .map(|(peer, local)| {
                (
                    *peer,
                    local.room.clone(),
                    local.token.clone(),
                    local.conn.id,
                )
            })
            .collect()
    }

    /// Routes held, in all rooms.
    #[cfg(test)]
    fn routes(&self) -> usize {
        self.rooms.values().map(|view| view.routes.len()).sum()
    }

    fn room_lost_one(&mut self, room: &Arc<str>) {
        if let Some(view) = self.rooms.get_mut(room) {
            view.local -= 1;
            if view.local == 0 {
                self.rooms.remove(room);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;
    use crate::outbox::{Outbox, OutboxBudget};

    fn conn(id: u64) -> ConnHandle {
        ConnHandle {
            id,
            outbox: Arc::new(Outbox::new(8, 1024, OutboxBudget::new(1 << 20))),
        }
    }

    fn local(id: u64, room: &str) -> Local {
        Local {
            conn: conn(id),
            room: Arc::from(room),
            token: String::new(),
        }
    }

    fn peer() -> PeerId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{n:032x}")
            .parse()
            .unwrap_or_else(|_| panic!("peer id {n}"))
    }

    #[test]
    fn routes_are_learnt_used_and_forgotten_when_the_peer_leaves() {
        let mut peers = LocalPeers::new(16);
        let (alice, bob) = (peer(), peer());
        peers.attach(alice, local(1, "lobby"));
        let (route, epoch) = peers.route("lobby", &bob);
        assert_eq!(route, None);
        peers.learn("lobby", bob, Arc::from("sig:ch:b"), epoch);
        assert_eq!(peers.route("lobby", &bob).0.as_deref(), Some("sig:ch:b"));
        peers.forget("lobby", &bob);
        assert_eq!(peers.route("lobby", &bob).0, None);
    }

    #[test]
    fn a_reply_older_than_a_forget_does_not_bring_a_route_back() {
        let mut peers = LocalPeers::new(16);
        let (alice, bob) = (peer(), peer());
        peers.attach(alice, local(1, "lobby"));
        let (_, epoch) = peers.route("lobby", &bob);
        // Bob leaves while the slow delivery's reply is on its way.
        peers.forget("lobby", &bob);
        peers.learn("lobby", bob, Arc::from("sig:ch:b"), epoch);
        assert_eq!(peers.route("lobby", &bob).0, None);
    }

    #[test]
    fn routes_go_with_the_last_local_peer_of_their_room() {
        let mut peers = LocalPeers::new(16);
        let (alice, carol, bob) = (peer(), peer(), peer());
        peers.attach(alice, local(1, "lobby"));
        peers.attach(carol, local(2, "lobby"));
        let (_, epoch) = peers.route("lobby", &bob);
        peers.learn("lobby", bob, Arc::from("sig:ch:b"), epoch);
        assert!(peers.detach(alice, &conn(1)).is_some());
        assert_eq!(peers.routes(), 1);
        // Not carol's connection: nothing happens.
        assert!(peers.detach(carol, &conn(9)).is_none());
        assert!(peers.detach_conn_id(carol, "2").is_some());
        assert_eq!(peers.routes(), 0);
        // No local peer in the room: nothing is learnt for it.
        peers.learn("lobby", bob, Arc::from("sig:ch:b"), 0);
        assert_eq!(peers.routes(), 0);
    }

    #[test]
    fn routes_through_a_gone_instance_are_forgotten() {
        let mut peers = LocalPeers::new(16);
        let (alice, bob, dave) = (peer(), peer(), peer());
        peers.attach(alice, local(1, "lobby"));
        let (_, epoch) = peers.route("lobby", &bob);
        peers.learn("lobby", bob, Arc::from("sig:ch:b"), epoch);
        peers.learn("lobby", dave, Arc::from("sig:ch:d"), epoch);
        peers.forget_channel("sig:ch:b");
        assert_eq!(peers.route("lobby", &bob).0, None);
        assert!(peers.route("lobby", &dave).0.is_some());
        peers.forget_all_routes();
        assert_eq!(peers.routes(), 0);
    }

    #[test]
    fn a_room_keeps_at_most_its_bound_of_routes() {
        let mut peers = LocalPeers::new(2);
        peers.attach(peer(), local(1, "lobby"));
        for _ in 0..5 {
            let other = peer();
            let (_, epoch) = peers.route("lobby", &other);
            peers.learn("lobby", other, Arc::from("sig:ch:x"), epoch);
        }
        assert_eq!(peers.routes(), 2);
    }
}
