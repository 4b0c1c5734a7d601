//! Dead connections are found: a client that answers nothing is closed
//! with `idle_timeout`, and its peer leaves after the grace period. A live
//! client that merely stays quiet is kept by the heartbeat.

mod common;

use std::time::{Duration, Instant};

use common::{ServerExt, TestServer, config};
use signaling_protocol::{ErrorCode, ServerMessage};
use signaling_server::Config;

fn short_idle() -> Config {
    Config {
        heartbeat_interval: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(600),
        resume_grace: Duration::from_millis(500),
        ..config()
    }
}

#[tokio::test]
async fn unresponsive_client_is_closed_and_its_peer_leaves() {
    let server = TestServer::start(short_idle());
    let mut watcher = server.connect().await;
    watcher.join("r").await;
    let mut silent = server.connect().await;
    let ws = silent.join("r").await;
    watcher.expect_peer_joined(ws.peer_id).await;

    // Not polling the socket means no pongs go back: the client is "dead".
    // The watcher keeps reading meanwhile, which answers its pings.
    let started = Instant::now();
    watcher.expect_silence(Duration::from_millis(900)).await;
    let (messages, close) = silent.expect_closed().await;
    assert!(
        matches!(
            &messages[..],
            [ServerMessage::Error {
                code: ErrorCode::IdleTimeout,
                ..
            }]
        ),
        "{messages:?}"
    );
    assert!(close.is_some(), "closed with a close frame");

    // The watcher stays, and sees the silent peer leave once the grace
    // period is over.
    watcher.expect_peer_left(ws.peer_id).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1100),
        "left only after idle timeout plus grace, got {elapsed:?}"
    );
    watcher.assert_usable().await;
}

#[tokio::test]
async fn quiet_but_live_client_stays_connected() {
    let server = TestServer::start(short_idle());
    let mut quiet = server.connect().await;
    quiet.join("r").await;
    // Reading answers the server's pings, which is all a live client needs.
    quiet.expect_silence(Duration::from_millis(1500)).await;
    quiet.assert_usable().await;
}
