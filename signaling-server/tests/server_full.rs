//! Connections over the limit get `server_full` and are closed; freed
//! slots are reusable.

mod common;

use std::time::Duration;

use common::{ServerExt, TestServer, config};
use signaling_protocol::{ErrorCode, ServerMessage};
use signaling_server::Config;

#[tokio::test]
async fn connection_over_the_limit_is_refused_then_slot_is_reused() {
    let server = TestServer::start(Config {
        max_connections: 2,
        ..config()
    });
    let mut a = server.connect().await;
    a.assert_usable().await;
    let mut b = server.connect().await;
    b.assert_usable().await;

    let mut c = server.connect().await;
    let (messages, close) = c.expect_closed().await;
    match &messages[..] {
        [
            ServerMessage::Error {
                code: ErrorCode::ServerFull,
                message,
                ..
            },
        ] => {
            assert!(message.contains("limit of 2 connections"), "{message}");
        }
        other => panic!("expected server_full, got {other:?}"),
    }
    assert_eq!(close.map(|c| u16::from(c.code)), Some(1013));

    // A leaves; its slot can be taken.
    a.ws.close(None).await.unwrap();
    drop(a);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut d = server.connect().await;
    d.assert_usable().await;

    let metrics = server.get("/metrics").await.text();
    assert!(
        metrics.contains(r#"signaling_connections_rejected_total{reason="server_full"} 1"#),
        "{metrics}"
    );
}
