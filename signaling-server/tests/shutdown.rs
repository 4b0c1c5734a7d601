//! Graceful shutdown: clients are told to reconnect, connections close,
//! and the server stops within its bound.

mod common;

use std::time::Duration;

use common::{ServerExt, TestServer, config};
use signaling_protocol::ServerMessage;

#[tokio::test]
async fn clients_get_shutdown_and_server_stops_in_time() {
    let server = TestServer::start(config());
    let addr = server.addr;
    let mut a = server.connect().await;
    a.join("r").await;
    let mut b = server.connect().await;
    b.assert_usable().await;

    let stopping = tokio::spawn(server.stop());
    for client in [&mut a, &mut b] {
        let (messages, close) = client.expect_closed().await;
        match &messages[..] {
            [ServerMessage::Shutdown { reconnect_after_ms }] => {
                assert!(*reconnect_after_ms <= 500, "{reconnect_after_ms}");
            }
            other => panic!("expected shutdown, got {other:?}"),
        }
        assert_eq!(close.map(|c| u16::from(c.code)), Some(1001));
    }
    let took = stopping.await.unwrap();
    assert!(took < Duration::from_secs(3), "stopped in {took:?}");

    // Nothing listens any more.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn shutdown_is_bounded_even_if_clients_ignore_it() {
    let server = TestServer::start(config());
    // A client that never reads: it neither sees the shutdown message nor
    // answers the close handshake.
    let mut deaf = server.connect().await;
    deaf.join("r").await;
    let took = server.stop().await;
    assert!(took < Duration::from_secs(4), "stopped in {took:?}");
    drop(deaf);
}

#[tokio::test]
async fn readyz_turns_503_during_the_drain_delay_while_clients_still_work() {
    let mut server = TestServer::start(signaling_server::Config {
        drain_delay: Duration::from_millis(800),
        ..config()
    });
    assert_eq!(server.get("/readyz").await.status, 200);
    let mut a = server.connect().await;
    a.join("r").await;
    server.begin_stop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.get("/readyz").await.status, 503);
    assert_eq!(server.get("/healthz").await.status, 200);
    // Still serving during the delay: existing and new clients work.
    a.assert_usable().await;
    server.connect().await.assert_usable().await;
    // Then the shutdown proper.
    let (messages, _) = a.expect_closed().await;
    assert!(
        matches!(messages[..], [ServerMessage::Shutdown { .. }]),
        "{messages:?}"
    );
}
