//! Joining, announcing, relaying and leaving, over real WebSockets.

mod common;

use std::time::Duration;

use common::{ServerExt, TestServer, config};
use signaling_protocol::{ClientMessage, ErrorCode, PROTOCOL_VERSION, PeerId, ServerMessage};
use signaling_server::Config;

#[tokio::test]
async fn welcome_carries_id_peers_ice_servers_token_and_limits() {
    let server = TestServer::start(Config {
        stun: vec!["stun:127.0.0.1:3478".into()],
        max_peers_per_room: 5,
        ..config()
    });
    let mut a = server.connect().await;
    let wa = a.join("lobby").await;
    assert_eq!(wa.room, "lobby");
    assert!(wa.peers.is_empty());
    assert!(!wa.resumed);
    assert_eq!(wa.resume_token.len(), 32);
    assert_eq!(wa.ice_servers.len(), 1);
    assert_eq!(wa.ice_servers[0].urls, ["stun:127.0.0.1:3478"]);
    assert_eq!(wa.limits.max_peers_per_room, 5);
    assert_eq!(wa.limits.max_frame_bytes, 64 * 1024);
    assert_eq!(wa.limits.resume_grace_secs, 2);
    assert_eq!(wa.limits.idle_timeout_secs, 3);

    let mut b = server.connect().await;
    let wb = b.join("lobby").await;
    assert_eq!(wb.peers, [wa.peer_id]);
    assert_ne!(wb.peer_id, wa.peer_id);
    assert_ne!(wb.resume_token, wa.resume_token);
    a.expect_peer_joined(wb.peer_id).await;
}

#[tokio::test]
async fn join_with_explicit_current_version_works() {
    let server = TestServer::start(config());
    let mut a = server.connect().await;
    a.send(&ClientMessage::Join {
        room: "v".into(),
        resume: None,
        v: Some(PROTOCOL_VERSION),
    })
    .await;
    a.expect_welcome().await;
}

#[tokio::test]
async fn signal_is_relayed_byte_for_byte_and_in_order() {
    let server = TestServer::start(config());
    let ((mut a, wa), (mut b, wb)) = server.pair("r").await;

    // Odd spacing, escapes and non-ASCII survive untouched.
    let data = r#"{ "description" : {"type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}, "note":"é\u00e9\"" }"#;
    b.signal(wa.peer_id, data).await;
    let text = a.next_text().await;
    assert_eq!(
        text,
        format!(
            r#"{{"type":"signal","from":"{}","data":{data}}}"#,
            wb.peer_id
        )
    );

    for i in 0..100 {
        a.signal(wb.peer_id, &format!(r#"{{"seq":{i}}}"#)).await;
    }
    for i in 0..100 {
        assert_eq!(
            b.expect_signal(wa.peer_id).await,
            format!(r#"{{"seq":{i}}}"#)
        );
    }
}

#[tokio::test]
async fn three_peers_signal_each_other_by_id() {
    let server = TestServer::start(config());
    let ((mut a, wa), (mut b, wb)) = server.pair("trio").await;
    let mut c = server.connect().await;
    let wc = c.join("trio").await;
    assert_eq!(wc.peers, [wa.peer_id, wb.peer_id], "oldest first");
    a.expect_peer_joined(wc.peer_id).await;
    b.expect_peer_joined(wc.peer_id).await;

    c.signal(wa.peer_id, r#""to a""#).await;
    c.signal(wb.peer_id, r#""to b""#).await;
    assert_eq!(a.expect_signal(wc.peer_id).await, r#""to a""#);
    assert_eq!(b.expect_signal(wc.peer_id).await, r#""to b""#);
    a.expect_silence(Duration::from_millis(200)).await;
    b.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn rooms_are_isolated() {
    let server = TestServer::start(config());
    let mut a = server.connect().await;
    let wa = a.join("red").await;
    let mut b = server.connect().await;
    let wb = b.join("blue").await;
    assert!(wb.peers.is_empty(), "peers of other rooms are not listed");
    a.expect_silence(Duration::from_millis(200)).await;

    b.signal(wa.peer_id, r#"{"sneaky":true}"#).await;
    let (message, peer) = b.expect_error(ErrorCode::UnknownPeer).await;
    assert_eq!(peer, Some(wa.peer_id));
    assert!(message.contains("blue"), "{message}");
    a.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn signal_to_unknown_peer_or_self_is_unknown_peer() {
    let server = TestServer::start(config());
    let mut a = server.connect().await;
    let wa = a.join("r").await;
    let ghost = PeerId::random();
    a.signal(ghost, "1").await;
    let (message, peer) = a.expect_error(ErrorCode::UnknownPeer).await;
    assert_eq!(peer, Some(ghost));
    assert!(message.contains(&ghost.to_string()), "{message}");
    a.signal(wa.peer_id, "1").await;
    a.expect_error(ErrorCode::UnknownPeer).await;
    a.assert_usable().await;
}

#[tokio::test]
async fn leave_announces_and_allows_a_fresh_join() {
    let server = TestServer::start(config());
    let ((mut a, wa), (mut b, wb)) = server.pair("r").await;

    b.send(&ClientMessage::Leave).await;
    a.expect_peer_left(wb.peer_id).await;
    b.signal(wa.peer_id, "1").await;
    b.expect_error(ErrorCode::NotJoined).await;

    let again = b.join("r").await;
    assert_ne!(again.peer_id, wb.peer_id, "a fresh join gets a fresh id");
    assert_eq!(again.peers, [wa.peer_id]);
    a.expect_peer_joined(again.peer_id).await;

    // The token of a peer that left does not resume.
    let mut c = server.connect().await;
    let wc = c.join_with("r", Some(&wb.resume_token)).await;
    assert!(!wc.resumed);
    assert_ne!(wc.peer_id, wb.peer_id);
}

#[tokio::test]
async fn closing_the_socket_leaves_after_the_grace_period() {
    let server = TestServer::start(Config {
        resume_grace: Duration::from_millis(300),
        ..config()
    });
    let ((mut a, _), (mut b, wb)) = server.pair("r").await;
    b.ws.close(None).await.unwrap();
    drop(b);
    a.expect_peer_left(wb.peer_id).await;
}

#[tokio::test]
async fn ping_gets_pong() {
    let server = TestServer::start(config());
    let mut a = server.connect().await;
    a.assert_usable().await;
    a.join("r").await;
    a.assert_usable().await;
}

#[tokio::test]
async fn full_room_is_refused_with_a_clear_message() {
    let server = TestServer::start(Config {
        max_peers_per_room: 2,
        ..config()
    });
    let mut a = server.connect().await;
    a.join("small").await;
    let mut b = server.connect().await;
    b.join("small").await;
    let mut c = server.connect().await;
    c.send_text(r#"{"type":"join","room":"small"}"#).await;
    let (message, _) = c.expect_error(ErrorCode::RoomFull).await;
    assert_eq!(
        message,
        r#"room "small" is full (2 peers); try another room"#
    );
    // The connection stays usable: another room works.
    let w = c.join("other").await;
    assert!(w.peers.is_empty());
}

#[tokio::test]
async fn too_many_rooms_is_refused() {
    let server = TestServer::start(Config {
        max_rooms: 1,
        ..config()
    });
    let mut a = server.connect().await;
    a.join("one").await;
    let mut b = server.connect().await;
    b.send_text(r#"{"type":"join","room":"two"}"#).await;
    b.expect_error(ErrorCode::TooManyRooms).await;
    b.join("one").await;
}

#[tokio::test]
async fn invalid_room_names_are_refused() {
    let server = TestServer::start(config());
    let mut a = server.connect().await;
    let long = "x".repeat(129);
    for room in ["", "tab\there", long.as_str()] {
        let text = serde_json::json!({"type": "join", "room": room}).to_string();
        a.send_text(text).await;
        a.expect_error(ErrorCode::InvalidRoom).await;
    }
    a.join("fine").await;
}

#[tokio::test]
async fn second_join_is_already_joined() {
    let server = TestServer::start(config());
    let mut a = server.connect().await;
    a.join("r").await;
    a.send_text(r#"{"type":"join","room":"s"}"#).await;
    let (message, _) = a.expect_error(ErrorCode::AlreadyJoined).await;
    assert!(message.contains("leave"), "{message}");
}

#[tokio::test]
async fn unsupported_version_is_refused() {
    let server = TestServer::start(config());
    let mut a = server.connect().await;
    a.send_text(r#"{"type":"join","room":"r","v":99}"#).await;
    let (message, _) = a.expect_error(ErrorCode::UnsupportedVersion).await;
    assert!(message.contains("99"), "{message}");
    a.join("r").await;
}

#[tokio::test]
async fn peer_joined_comes_before_the_newcomers_first_signal() {
    let server = TestServer::start(config());
    let mut a = server.connect().await;
    let wa = a.join("order").await;
    for _ in 0..20 {
        let mut b = server.connect().await;
        // Join and signal back to back, without waiting for welcome.
        b.send_text(r#"{"type":"join","room":"order"}"#).await;
        b.signal(wa.peer_id, r#""hello""#).await;
        let wb = b.expect_welcome().await;
        match a.recv().await {
            ServerMessage::PeerJoined { peer_id } => assert_eq!(peer_id, wb.peer_id),
            other => panic!("expected peer_joined first, got {other:?}"),
        }
        assert_eq!(a.expect_signal(wb.peer_id).await, r#""hello""#);
        b.send(&ClientMessage::Leave).await;
        a.expect_peer_left(wb.peer_id).await;
    }
    a.expect_silence(Duration::from_millis(100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relaying_works_on_a_multi_threaded_runtime() {
    let server = TestServer::start(config());
    let mut pairs = Vec::new();
    for i in 0..8 {
        let room = format!("mt{i}");
        let mut a = server.connect().await;
        let wa = a.join(&room).await;
        let mut b = server.connect().await;
        let wb = b.join(&room).await;
        a.expect_peer_joined(wb.peer_id).await;
        pairs.push((a, wa.peer_id, b, wb.peer_id));
    }
    let tasks: Vec<_> = pairs
        .into_iter()
        .map(|(mut a, ida, mut b, idb)| {
            tokio::spawn(async move {
                for i in 0..50 {
                    a.signal(idb, &i.to_string()).await;
                    assert_eq!(b.expect_signal(ida).await, i.to_string());
                    b.signal(ida, &i.to_string()).await;
                    assert_eq!(a.expect_signal(idb).await, i.to_string());
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}
