//! Connections that have not (yet) upgraded to WebSocket are bounded too:
//! past --max-pending-connections, new ones are closed at accept; upgraded
//! connections do not hold a pending slot.

mod common;

use std::time::Duration;

use common::{ServerExt, TestServer, WAIT, config};
use signaling_server::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Whether the server closes `stream` (end of stream or reset) within `wait`.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(wait, stream.read(&mut byte)).await {
        Ok(Ok(0) | Err(_)) => true,
        Ok(Ok(_)) => panic!("the server sent bytes to a client that sent nothing"),
        Err(_) => false,
    }
}

#[tokio::test]
async fn connections_before_the_upgrade_are_bounded() {
    let server = TestServer::start(Config {
        max_pending_connections: 2,
        ..config()
    });

    // Upgraded connections do not count: three WebSockets, limit 2.
    let mut sockets = Vec::new();
    for _ in 0..3 {
        let mut client = server.connect().await;
        client.assert_usable().await;
        sockets.push(client);
    }

    // Two connections that send nothing take both slots; a third is closed
    // at once, long before the header timeout.
    let mut idle_a = TcpStream::connect(server.addr).await.unwrap();
    let mut idle_b = TcpStream::connect(server.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    assert!(
        closed_within(&mut third, WAIT).await,
        "third connection closed"
    );
    assert!(
        !closed_within(&mut idle_a, Duration::from_millis(200)).await,
        "the pending ones are still served"
    );

    // One idle connection goes: its slot serves a WebSocket upgrade, which
    // then frees the slot again.
    let _ = idle_b.shutdown().await;
    drop(idle_b);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut late = server.connect().await;
    late.assert_usable().await;
    let metrics = server.get("/metrics").await.text();
    assert!(
        metrics.contains(r#"signaling_connections_rejected_total{reason="pending_full"} 1"#),
        "{metrics}"
    );
    for client in &mut sockets {
        client.assert_usable().await;
    }
    drop(idle_a);
}
