//! Resume across a dropped socket: same id, queued signals delivered,
//! nobody else notices; or, after the grace period, a real departure.

mod common;

use std::time::Duration;

use common::{ServerExt, TestServer, config};
use signaling_protocol::{ClientMessage, ServerMessage};
use signaling_server::Config;

#[tokio::test]
async fn resumed_peer_keeps_id_and_gets_signals_sent_while_away() {
    let server = TestServer::start(Config {
        resume_grace: Duration::from_secs(5),
        ..config()
    });
    let ((mut a, wa), (b, wb)) = server.pair("r").await;

    // B's socket drops without a close handshake.
    drop(b);
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..5 {
        a.signal(wb.peer_id, &format!(r#"{{"candidate":{i}}}"#))
            .await;
    }
    a.assert_usable().await;

    let mut b = server.connect().await;
    let back = b.join_with("r", Some(&wb.resume_token)).await;
    assert!(back.resumed);
    assert_eq!(back.peer_id, wb.peer_id, "same id");
    assert_eq!(back.room, "r");
    assert_eq!(back.peers, [wa.peer_id]);
    assert_ne!(back.resume_token, wb.resume_token, "token rotates");
    for i in 0..5 {
        assert_eq!(
            b.expect_signal(wa.peer_id).await,
            format!(r#"{{"candidate":{i}}}"#),
            "queued signals in order"
        );
    }
    // A saw neither a leave nor a join.
    a.expect_silence(Duration::from_millis(300)).await;

    // Both directions work after the resume.
    b.signal(wa.peer_id, r#""back""#).await;
    assert_eq!(a.expect_signal(wb.peer_id).await, r#""back""#);
    a.signal(wb.peer_id, r#""welcome back""#).await;
    assert_eq!(b.expect_signal(wa.peer_id).await, r#""welcome back""#);

    // The spent token no longer resumes.
    let mut c = server.connect().await;
    let wc = c.join_with("r", Some(&wb.resume_token)).await;
    assert!(!wc.resumed);
    assert_ne!(wc.peer_id, wb.peer_id);
}

#[tokio::test]
async fn absent_peer_leaves_when_grace_period_ends() {
    let server = TestServer::start(Config {
        resume_grace: Duration::from_millis(800),
        ..config()
    });
    let ((mut a, _), (b, wb)) = server.pair("r").await;
    drop(b);

    // Still a member during the grace period...
    a.expect_silence(Duration::from_millis(400)).await;
    // ...then gone.
    a.expect_peer_left(wb.peer_id).await;

    let mut b = server.connect().await;
    let late = b.join_with("r", Some(&wb.resume_token)).await;
    assert!(!late.resumed, "too late to resume");
    assert_ne!(late.peer_id, wb.peer_id);
    a.expect_peer_joined(late.peer_id).await;
}

#[tokio::test]
async fn flooding_an_absent_peer_evicts_it() {
    let server = TestServer::start(Config {
        resume_grace: Duration::from_secs(10),
        max_queued_signals: 3,
        ..config()
    });
    let ((mut a, _), (b, wb)) = server.pair("r").await;
    drop(b);
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..3 {
        a.signal(wb.peer_id, &i.to_string()).await;
    }
    a.expect_silence(Duration::from_millis(200)).await;
    a.signal(wb.peer_id, "3").await;
    a.expect_peer_left(wb.peer_id).await;

    let mut b = server.connect().await;
    assert!(!b.join_with("r", Some(&wb.resume_token)).await.resumed);
}

#[tokio::test]
async fn resume_while_old_socket_still_open_takes_over() {
    let server = TestServer::start(config());
    let mut a = server.connect().await;
    let wa = a.join("r").await;
    let mut old = server.connect().await;
    let wb = old.join("r").await;
    a.expect_peer_joined(wb.peer_id).await;

    let mut new = server.connect().await;
    let back = new.join_with("r", Some(&wb.resume_token)).await;
    assert!(back.resumed);
    assert_eq!(back.peer_id, wb.peer_id);

    let (messages, close) = old.expect_closed().await;
    assert!(messages.is_empty(), "{messages:?}");
    assert_eq!(close.map(|c| u16::from(c.code)), Some(1000));

    a.signal(wb.peer_id, r#""hi""#).await;
    assert_eq!(new.expect_signal(wa.peer_id).await, r#""hi""#);
    // The old socket closing does not make the peer absent or gone.
    a.expect_silence(Duration::from_millis(300)).await;
    new.assert_usable().await;
}

#[tokio::test]
async fn token_of_another_room_joins_afresh() {
    let server = TestServer::start(config());
    let mut a = server.connect().await;
    let wa = a.join("one").await;
    drop(a);
    let mut b = server.connect().await;
    let wb = b.join_with("two", Some(&wa.resume_token)).await;
    assert!(!wb.resumed);
    assert_ne!(wb.peer_id, wa.peer_id);
}

#[tokio::test]
async fn explicit_leave_is_final() {
    let server = TestServer::start(config());
    let ((mut a, _), (mut b, wb)) = server.pair("r").await;
    b.send(&ClientMessage::Leave).await;
    a.expect_peer_left(wb.peer_id).await;
    drop(b);
    let mut b = server.connect().await;
    let again = b.join_with("r", Some(&wb.resume_token)).await;
    assert!(!again.resumed);
    match a.recv().await {
        ServerMessage::PeerJoined { peer_id } => assert_eq!(peer_id, again.peer_id),
        other => panic!("{other:?}"),
    }
}
