//! The bytes waiting to be written to all connections together are bounded:
//! with a budget far below one connection's own bound, a client that never
//! reads is disconnected as a slow consumer once frames for it pile up, and
//! clients that read are not affected.

mod common;

use std::time::Duration;

use common::{Client, ServerExt, TestServer, config};
use futures_util::{SinkExt, StreamExt};
use signaling_protocol::ServerMessage;
use signaling_server::Config;
use tokio_tungstenite::tungstenite::Message;

const MESSAGES: usize = 200;
const PAYLOAD: usize = 48 * 1024;

#[tokio::test]
async fn non_reading_client_is_dropped_by_the_shared_budget() {
    let server = TestServer::start(Config {
        messages_per_second: 1_000_000,
        message_burst: 1_000_000,
        // One connection alone may queue 16 MiB, more than is sent; all
        // together only 1 MiB.
        outbound_queue: 100_000,
        outbound_queue_bytes: 16 * 1024 * 1024,
        outbound_queue_bytes_total: 1024 * 1024,
        ..config()
    });

    // A small receive buffer: the kernel must not take the whole flood on
    // the client's behalf.
    let mut slow = Client::connect_with_receive_buffer(server.addr, 64 * 1024).await;
    let slow_id = slow.join("flood").await.peer_id;
    let mut flooder = server.connect().await;
    flooder.join("flood").await;

    // Two clients of another room that read what they are sent.
    let mut left = server.connect().await;
    let left_id = left.join("calm").await.peer_id;
    let mut right = server.connect().await;
    let right_id = right.join("calm").await.peer_id;
    left.expect_peer_joined(right_id).await;

    let payload = format!("\"{}\"", "z".repeat(PAYLOAD));
    let (mut sink, mut stream) = flooder.ws.split();
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(Ok(frame)) = stream.next().await {
            if let Message::Text(text) = frame {
                let message = ServerMessage::parse(text.as_str()).unwrap();
                // The slow peer's departure may come after the answer to a
                // ping sent once the flood is over: the two are separate
                // connections' work.
                let stop =
                    matches!(message, ServerMessage::PeerLeft { peer_id } if peer_id == slow_id);
                seen.push(message);
                if stop {
                    break;
                }
            }
        }
        seen
    });
    let flood = async {
        for i in 0..MESSAGES {
            let text = format!(r#"{{"type":"signal","to":"{slow_id}","data":{payload}}}"#);
            sink.send(Message::text(text)).await.unwrap();
            if i % 100 == 0 {
                // The other room keeps working while the flood goes on.
                left.signal(right_id, &format!("{{\"n\":{i}}}")).await;
                assert_eq!(right.expect_signal(left_id).await, format!("{{\"n\":{i}}}"));
            }
        }
        reader.await.unwrap()
    };
    let seen = tokio::time::timeout(Duration::from_secs(60), flood)
        .await
        .expect("the sender is never held up by the client that does not read");
    assert!(
        seen.iter()
            .any(|m| matches!(m, ServerMessage::PeerLeft { peer_id } if *peer_id == slow_id)),
        "the sender saw the slow peer leave"
    );

    // The client that did not read finds a fraction of the signals, then
    // `slow_consumer` and the end of its connection.
    let (received, saw_slow_consumer) = slow.signals_until_closed().await;
    eprintln!("the client that did not read got {received} of {MESSAGES} signals");
    assert!(saw_slow_consumer, "it was told why");
    assert!(received < MESSAGES / 2, "{received}");

    // Readers are unaffected.
    left.assert_usable().await;
    right.assert_usable().await;
    server.connect().await.assert_usable().await;
}
