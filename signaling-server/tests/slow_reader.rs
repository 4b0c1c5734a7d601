//! A client that never reads while others flood it is disconnected; the
//! server's memory stays bounded and the senders are not held up.

mod common;

use std::time::Duration;

use common::{ServerExt, TestServer, config, rss_kib};
use futures_util::{SinkExt, StreamExt};
use signaling_protocol::{ErrorCode, ServerMessage};
use signaling_server::Config;
use tokio_tungstenite::tungstenite::Message;

const FLOODERS: usize = 2;
const MESSAGES_EACH: usize = 600;
const PAYLOAD: usize = 48 * 1024;

#[tokio::test]
async fn slow_reader_is_dropped_and_memory_stays_bounded() {
    let server = TestServer::start(Config {
        messages_per_second: 1_000_000,
        message_burst: 1_000_000,
        // The byte bound is what stops the slow reader (48 KiB frames); the
        // frame bound is high so the senders' own stream of small errors
        // (once the slow peer is gone) never trips it.
        outbound_queue: 5_000,
        outbound_queue_bytes: 512 * 1024,
        max_queued_signals: 50,
        max_queued_bytes: 256 * 1024,
        ..config()
    });

    let mut slow = server.connect().await;
    let ws = slow.join("flood").await;

    let mut flooders = Vec::new();
    for _ in 0..FLOODERS {
        let mut client = server.connect().await;
        let welcome = client.join("flood").await;
        flooders.push((client, welcome.peer_id));
    }
    // Let the peer_joined frames for the flooders settle in the slow
    // client's buffers; it never reads them.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let rss_before = rss_kib();

    let payload = format!("\"{}\"", "z".repeat(PAYLOAD));
    let mut tasks = Vec::new();
    for (client, _) in flooders {
        let payload = payload.clone();
        let target = ws.peer_id;
        tasks.push(tokio::spawn(async move {
            let (mut sink, mut stream) = client.ws.split();
            // Read concurrently, as a well-behaved client does.
            // It reads until the slow peer has left: that follows the
            // peer's bounded goodbye, and may come after the flood is sent.
            let reader = tokio::spawn(async move {
                let mut seen = Vec::new();
                while let Some(Ok(frame)) = stream.next().await {
                    if let Message::Text(text) = frame {
                        let message = ServerMessage::parse(text.as_str()).unwrap();
                        let stop = matches!(&message, ServerMessage::PeerLeft { peer_id } if *peer_id == target);
                        seen.push(message);
                        if stop {
                            break;
                        }
                    }
                }
                (stream, seen)
            });
            let signal = format!(r#"{{"type":"signal","to":"{target}","data":{payload}}}"#);
            for _ in 0..MESSAGES_EACH {
                sink.send(Message::text(signal.clone())).await.unwrap();
            }
            let (mut stream, mut seen) = reader.await.unwrap();
            // Once it is gone, a signal to it is refused.
            sink.send(Message::text(signal)).await.unwrap();
            while let Some(Ok(frame)) = stream.next().await {
                if let Message::Text(text) = frame {
                    let message = ServerMessage::parse(text.as_str()).unwrap();
                    let stop = matches!(message, ServerMessage::Error { .. });
                    seen.push(message);
                    if stop {
                        break;
                    }
                }
            }
            seen
        }));
    }
    let flood = async {
        let mut all = Vec::new();
        for task in tasks {
            all.push(task.await.unwrap());
        }
        all
    };
    let seen = tokio::time::timeout(Duration::from_secs(60), flood)
        .await
        .expect("senders are never held up by the slow reader");
    let rss_after = rss_kib();
    let sent_mib = (FLOODERS * MESSAGES_EACH * PAYLOAD) / (1024 * 1024);
    let grown_mib = rss_after.saturating_sub(rss_before) / 1024;
    eprintln!("flooded {sent_mib} MiB; RSS {rss_before} KiB -> {rss_after} KiB");
    assert!(
        grown_mib < 24,
        "memory grew by {grown_mib} MiB while {sent_mib} MiB were sent to a client that does not read"
    );

    // Each sender learnt that the slow peer is gone (disconnected, then
    // evicted when signals for it overflowed its resume queue).
    for messages in &seen {
        assert!(
            messages.iter().any(
                |m| matches!(m, ServerMessage::PeerLeft { peer_id } if *peer_id == ws.peer_id)
            ),
            "sender saw the slow peer leave"
        );
        assert!(
            messages.iter().any(|m| matches!(
                m,
                ServerMessage::Error {
                    code: ErrorCode::UnknownPeer,
                    ..
                }
            )),
            "later signals to it were refused"
        );
    }

    // The slow client, reading at last, finds far fewer signals than were
    // sent, then the end of its connection.
    let (received, saw_slow_consumer) = slow.signals_until_closed().await;
    eprintln!(
        "slow client got {received} of {} signals; slow_consumer error seen: {saw_slow_consumer}",
        FLOODERS * MESSAGES_EACH
    );
    assert!(received < FLOODERS * MESSAGES_EACH / 2, "{received}");

    // The server still serves everyone else.
    server.connect().await.assert_usable().await;
}
