//! Random operation sequences against the `Registry` state machine, checked
//! against a simple model after every step: no panic, rooms within their
//! limits, resume works exactly while a token is valid, queued signals stay
//! within their bounds, every delivery goes to a present member of the
//! subject's room (no signal crosses rooms), and at the end every member is
//! routable.
//!
//! Few cases by default; `PROPTEST_CASES=100000 cargo test -p signaling-server
//! --test fuzz_registry --release` for a long run.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use signaling_protocol::{PeerId, ServerMessage, SignalData};
use signaling_server::registry::{Registry, RegistryError, RegistryLimits};

const LIMITS: RegistryLimits = RegistryLimits {
    max_peers_per_room: 3,
    max_rooms: 3,
    resume_grace: Duration::from_secs(10),
    max_queued_signals: 4,
    max_queued_bytes: 600,
    // The server-wide budget is exercised by the registry's unit tests;
    // here it never binds, so the model needs no copy of the eviction order.
    max_absent_queue_bytes: usize::MAX,
};

/// Room names: four valid ones (more than `max_rooms`) and invalid ones.
const ROOMS: [&str; 6] = ["a", "b", "c", "d", "", "bad\nname"];

#[derive(Debug, Clone)]
enum Op {
    /// A new connection joins a room, optionally with the token of a peer
    /// known earlier (maybe stale) or a made-up one.
    Join {
        room: usize,
        token: Option<prop::sample::Index>,
        made_up: bool,
    },
    /// A known peer signals another known peer (mostly a member of its own
    /// room), on its own or a wrong connection.
    Signal {
        from: prop::sample::Index,
        to: prop::sample::Index,
        same_room: bool,
        size: usize,
        wrong_conn: bool,
    },
    /// A known peer leaves.
    Leave {
        peer: prop::sample::Index,
        wrong_conn: bool,
    },
    /// A known peer's connection drops.
    Disconnect { peer: prop::sample::Index },
    /// Time passes, then expiry runs.
    Expire { seconds: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    let index = any::<prop::sample::Index>;
    prop_oneof![
        3 => (0..ROOMS.len(), prop::option::of(index()), any::<bool>())
            .prop_map(|(room, token, made_up)| Op::Join { room, token, made_up }),
        6 => (index(), index(), prop::bool::weighted(0.8), prop_oneof![3 => 0usize..16, 1 => 0usize..200], prop::bool::weighted(0.1))
            .prop_map(|(from, to, same_room, size, wrong_conn)| Op::Signal { from, to, same_room, size, wrong_conn }),
        1 => (index(), prop::bool::weighted(0.1)).prop_map(|(peer, wrong_conn)| Op::Leave { peer, wrong_conn }),
        2 => index().prop_map(|peer| Op::Disconnect { peer }),
        1 => prop_oneof![3 => 0u64..4, 1 => 0u64..15].prop_map(|seconds| Op::Expire { seconds }),
    ]
}

#[derive(Debug, Clone, PartialEq)]
enum Presence {
    Present(u32),
    Absent {
        deadline: Instant,
        queued: usize,
        bytes: usize,
    },
}

#[derive(Debug, Clone)]
struct ModelPeer {
    room: String,
    token: String,
    presence: Presence,
    /// Signals sent to it while absent, in order: they must come back on resume.
    backlog: Vec<String>,
}

/// What the registry should hold.
struct Model {
    peers: BTreeMap<PeerId, ModelPeer>,
    /// Every peer ever seen, so operations can name departed ones too.
    known: Vec<PeerId>,
    /// Every token ever handed out.
    tokens: Vec<String>,
    next_conn: u32,
    now: Instant,
}

impl Model {
    fn room_members(&self, room: &str) -> BTreeSet<PeerId> {
        self.peers
            .iter()
            .filter(|(_, p)| p.room == room)
            .map(|(id, _)| *id)
            .collect()
    }

    fn present_conn(&self, peer: PeerId) -> Option<u32> {
        match self.peers.get(&peer)?.presence {
            Presence::Present(conn) => Some(conn),
            Presence::Absent { .. } => None,
        }
    }

    fn peer_of_conn(&self, conn: u32) -> Option<PeerId> {
        self.peers
            .iter()
            .find(|(_, p)| p.presence == Presence::Present(conn))
            .map(|(id, _)| *id)
    }

    /// Present members of `room` other than `except`, as connections.
    fn present_conns(&self, room: &str, except: PeerId) -> BTreeSet<u32> {
        self.room_members(room)
            .into_iter()
            .filter(|&p| p != except)
            .filter_map(|p| self.present_conn(p))
            .collect()
    }

    fn remove(&mut self, peer: PeerId, expected: &mut Vec<(u32, String)>) {
        let Some(gone) = self.peers.remove(&peer) else {
            return;
        };
        for conn in self.present_conns(&gone.room, peer) {
            expected.push((conn, format!("peer_left {peer}")));
        }
    }
}

fn signal_data(size: usize) -> SignalData {
    serde_json::value::RawValue::from_string(format!("\"{}\"", "x".repeat(size)))
        .expect("a JSON string")
}

/// Reads a delivered frame as `(kind subject)`, checking it is a message the
/// server may send.
fn describe(frame: &str) -> String {
    match ServerMessage::parse(frame) {
        Ok(ServerMessage::PeerJoined { peer_id }) => format!("peer_joined {peer_id}"),
        Ok(ServerMessage::PeerLeft { peer_id }) => format!("peer_left {peer_id}"),
        Ok(ServerMessage::Signal { from, data }) => format!("signal {from} {}", data.get()),
        other => panic!("unexpected delivery {frame:?}: {other:?}"),
    }
}

fn run(ops: Vec<Op>) {
    let start = Instant::now();
    let mut registry: Registry<u32> = Registry::new(LIMITS);
    let mut model = Model {
        peers: BTreeMap::new(),
        known: Vec::new(),
        tokens: Vec::new(),
        next_conn: 0,
        now: start,
    };
    for op in ops {
        let mut expected: Vec<(u32, String)> = Vec::new();
        match op {
            Op::Join {
                room,
                token,
                made_up,
            } => {
                let room = ROOMS[room];
                let token = match (token, made_up) {
                    (Some(_), true) => Some("not-a-token".to_owned()),
                    (Some(index), false) if !model.tokens.is_empty() => {
                        Some(index.get(&model.tokens).clone())
                    }
                    _ => None,
                };
                let conn = model.next_conn;
                model.next_conn += 1;
                let resumable = token.as_deref().and_then(|token| {
                    model
                        .peers
                        .iter()
                        .find(|(_, p)| p.token == token && p.room == room)
                        .map(|(id, _)| *id)
                });
                let result = registry.join(conn, room, token.as_deref());
                match (result, resumable) {
                    (Ok(joined), Some(peer_id)) => {
                        assert!(joined.resumed, "a valid token resumes");
                        assert_eq!(joined.peer_id, peer_id);
                        let peer = model.peers.get_mut(&peer_id).expect("modelled");
                        let replaced = match peer.presence {
                            Presence::Present(old) => Some(old),
                            Presence::Absent { .. } => None,
                        };
                        assert_eq!(joined.replaced, replaced);
                        let backlog: Vec<String> = joined
                            .backlog
                            .iter()
                            .map(|f| describe(f.as_str()))
                            .collect();
                        assert!(backlog.len() <= LIMITS.max_queued_signals);
                        let bytes: usize = joined.backlog.iter().map(|f| f.len()).sum();
                        assert!(bytes <= LIMITS.max_queued_bytes);
                        assert_eq!(backlog, std::mem::take(&mut peer.backlog));
                        peer.presence = Presence::Present(conn);
                        peer.token = joined.resume_token.clone();
                        model.tokens.push(joined.resume_token);
                        let others: BTreeSet<PeerId> = joined.peers.iter().copied().collect();
                        let mut members = model.room_members(room);
                        members.remove(&peer_id);
                        assert_eq!(others, members, "welcome.peers on resume");
                    }
                    (Ok(joined), None) => {
                        assert!(!joined.resumed, "no valid token, no resume");
                        assert!(!model.peers.contains_key(&joined.peer_id), "fresh id");
                        let members = model.room_members(room);
                        assert!(members.len() < LIMITS.max_peers_per_room);
                        let rooms: BTreeSet<&str> =
                            model.peers.values().map(|p| p.room.as_str()).collect();
                        assert!(rooms.contains(room) || rooms.len() < LIMITS.max_rooms);
                        let others: BTreeSet<PeerId> = joined.peers.iter().copied().collect();
                        assert_eq!(others, members, "welcome.peers");
                        for conn in model.present_conns(room, joined.peer_id) {
                            expected.push((conn, format!("peer_joined {}", joined.peer_id)));
                        }
                        model.known.push(joined.peer_id);
                        model.tokens.push(joined.resume_token.clone());
                        model.peers.insert(
                            joined.peer_id,
                            ModelPeer {
                                room: room.to_owned(),
                                token: joined.resume_token,
                                presence: Presence::Present(conn),
                                backlog: Vec::new(),
                            },
                        );
                    }
                    (Err(err), None) => {
                        let rooms: BTreeSet<&str> =
                            model.peers.values().map(|p| p.room.as_str()).collect();
                        match err {
                            RegistryError::InvalidRoom(_) => {
                                assert!(room.is_empty() || room.contains('\n'))
                            }
                            RegistryError::RoomFull { .. } => assert_eq!(
                                model.room_members(room).len(),
                                LIMITS.max_peers_per_room
                            ),
                            RegistryError::TooManyRooms { .. } => {
                                assert!(!rooms.contains(room) && rooms.len() >= LIMITS.max_rooms)
                            }
                            other => panic!("join failed with {other:?}"),
                        }
                    }
                    (Err(err), Some(_)) => panic!("resume with a valid token failed: {err:?}"),
                }
            }
            Op::Signal {
                from,
                to,
                same_room,
                size,
                wrong_conn,
            } => {
                if model.known.is_empty() {
                    continue;
                }
                let present: Vec<PeerId> = model
                    .peers
                    .iter()
                    .filter(|(_, p)| matches!(p.presence, Presence::Present(_)))
                    .map(|(id, _)| *id)
                    .collect();
                let from = if same_room && !present.is_empty() {
                    *from.get(&present)
                } else {
                    *from.get(&model.known)
                };
                let roommates: Vec<PeerId> = model
                    .peers
                    .get(&from)
                    .map(|p| model.room_members(&p.room).into_iter().collect())
                    .unwrap_or_default();
                let to = if same_room && !roommates.is_empty() {
                    *to.get(&roommates)
                } else {
                    *to.get(&model.known)
                };
                let sender = model.present_conn(from);
                let conn = match (sender, wrong_conn) {
                    (Some(conn), false) => conn,
                    _ => u32::MAX,
                };
                let data = signal_data(size);
                let text = format!("signal {from} {}", data.get());
                let frame_len = ServerMessage::Signal {
                    from,
                    data: signal_data(size),
                }
                .to_json()
                .len();
                let result = registry.signal(from, &conn, to, data);
                let Some(sender_room) = sender
                    .filter(|_| !wrong_conn)
                    .and_then(|_| model.peers.get(&from).map(|p| p.room.clone()))
                else {
                    assert!(
                        matches!(result, Err(RegistryError::NotJoined(_))),
                        "{result:?}"
                    );
                    continue;
                };
                if from == to {
                    assert!(matches!(result, Err(RegistryError::SignalToSelf(_))));
                    continue;
                }
                let Some(target) = model.peers.get_mut(&to).filter(|t| t.room == sender_room)
                else {
                    assert!(matches!(result, Err(RegistryError::UnknownPeer { .. })));
                    continue;
                };
                assert_eq!(result, Ok(()));
                match &mut target.presence {
                    Presence::Present(conn) => expected.push((*conn, text)),
                    Presence::Absent { queued, bytes, .. } => {
                        if *queued >= LIMITS.max_queued_signals
                            || *bytes + frame_len > LIMITS.max_queued_bytes
                        {
                            model.remove(to, &mut expected);
                        } else {
                            *queued += 1;
                            *bytes += frame_len;
                            target.backlog.push(text);
                        }
                    }
                }
            }
            Op::Leave { peer, wrong_conn } => {
                if model.known.is_empty() {
                    continue;
                }
                let peer = *peer.get(&model.known);
                let present = model.present_conn(peer);
                let conn = present.filter(|_| !wrong_conn).unwrap_or(u32::MAX);
                let result = registry.leave(peer, &conn);
                if present.is_some() && !wrong_conn {
                    assert_eq!(result, Ok(()));
                    model.remove(peer, &mut expected);
                } else {
                    assert!(matches!(result, Err(RegistryError::NotJoined(_))));
                }
            }
            Op::Disconnect { peer } => {
                if model.known.is_empty() {
                    continue;
                }
                let peer = *peer.get(&model.known);
                let conn = model.present_conn(peer).unwrap_or(u32::MAX);
                registry.disconnect(peer, &conn, model.now);
                if let Some(p) = model.peers.get_mut(&peer)
                    && matches!(p.presence, Presence::Present(_))
                {
                    p.presence = Presence::Absent {
                        deadline: model.now + LIMITS.resume_grace,
                        queued: 0,
                        bytes: 0,
                    };
                }
            }
            Op::Expire { seconds } => {
                model.now += Duration::from_secs(seconds);
                let due: Vec<PeerId> = model
                    .peers
                    .iter()
                    .filter(|(_, p)| {
                        matches!(p.presence, Presence::Absent { deadline, .. } if deadline <= model.now)
                    })
                    .map(|(id, _)| *id)
                    .collect();
                assert_eq!(registry.expire(model.now), due.len());
                for peer in due {
                    model.remove(peer, &mut expected);
                }
            }
        }
        check_deliveries(&mut registry, &model, expected);
        check_counts(&registry, &model);
    }
    every_member_is_routable(&mut registry, &model);
}

/// The registry delivered exactly what the model expects, each to a present
/// peer of the subject's room.
fn check_deliveries(registry: &mut Registry<u32>, model: &Model, expected: Vec<(u32, String)>) {
    let mut got: Vec<(u32, String)> = registry
        .drain_deliveries()
        .map(|(conn, frame)| (conn, describe(frame.as_str())))
        .collect();
    for (conn, what) in &got {
        // Departed peers' notices go to members still there; every other
        // delivery names a subject that shares the receiver's room.
        let receiver = model.peer_of_conn(*conn);
        assert!(receiver.is_some(), "{what} delivered to a stale connection");
        if let Some(subject) = what
            .split(' ')
            .nth(1)
            .and_then(|id| id.parse::<PeerId>().ok())
            .and_then(|id| model.peers.get(&id))
        {
            let room = &model.peers[&receiver.expect("checked")].room;
            assert_eq!(&subject.room, room, "{what} crossed rooms");
        }
    }
    let mut expected = expected;
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
}

fn check_counts(registry: &Registry<u32>, model: &Model) {
    assert_eq!(registry.peer_count(), model.peers.len());
    let rooms: BTreeSet<&str> = model.peers.values().map(|p| p.room.as_str()).collect();
    assert_eq!(registry.room_count(), rooms.len());
    assert!(rooms.len() <= LIMITS.max_rooms);
    for room in rooms {
        assert!(model.room_members(room).len() <= LIMITS.max_peers_per_room);
    }
}

/// Every present peer reaches every other member of its room, and nobody else.
fn every_member_is_routable(registry: &mut Registry<u32>, model: &Model) {
    for (&from, sender) in &model.peers {
        let Presence::Present(conn) = sender.presence else {
            continue;
        };
        for (&to, target) in &model.peers {
            if to == from {
                continue;
            }
            let result = registry.signal(from, &conn, to, signal_data(1));
            if target.room != sender.room {
                assert!(matches!(result, Err(RegistryError::UnknownPeer { .. })));
                continue;
            }
            assert_eq!(result, Ok(()), "{from} cannot reach {to}");
            let delivered: Vec<u32> = registry.drain_deliveries().map(|(c, _)| c).collect();
            match target.presence {
                Presence::Present(target_conn) => assert_eq!(delivered, vec![target_conn]),
                // Queued (or, past the bound, evicted with notices to others):
                // either way the sender got no error and nothing went astray.
                Presence::Absent { .. } => return,
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { max_shrink_iters: 10_000, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_keep_the_registry_consistent(ops in prop::collection::vec(op(), 1..200)) {
        run(ops);
    }
}
