//! The registry driven directly: joins, resumes, signals, expiry and the
//! bounds.

use std::time::Duration;

use serde_json::value::RawValue;
use signaling_protocol::ErrorCode;

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
    assert!(matches!(got[0], (1, ServerMessage::PeerJoined { peer_id }) if peer_id == b.peer_id));
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
    assert!(matches!(got[..], [(1, ServerMessage::PeerLeft { peer_id })] if peer_id == b.peer_id));
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
    assert!(matches!(got[..], [(1, ServerMessage::PeerLeft { peer_id })] if peer_id == b.peer_id));
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
    assert!(matches!(got[..], [(1, ServerMessage::PeerLeft { peer_id })] if peer_id == b.peer_id));
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
