//! Every kind of bad input gets a specific error, and the connection stays
//! usable where that makes sense.

mod common;

use std::time::Duration;

use common::{Received, ServerExt, TestServer, config};
use futures_util::SinkExt;
use signaling_protocol::{ErrorCode, PeerId, ServerMessage};
use signaling_server::Config;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn malformed_json() {
    let server = TestServer::start(config());
    let mut a = server.connect().await;
    for text in ["not json", "{\"type\":", "[1,2]", "42", ""] {
        a.send_text(text).await;
        a.expect_error(ErrorCode::MalformedJson).await;
    }
    a.assert_usable().await;
}

#[tokio::test]
async fn missing_or_non_string_type() {
    let server = TestServer::start(config());
    let mut a = server.connect().await;
    for text in ["{}", r#"{"room":"r"}"#, r#"{"type":7}"#] {
        a.send_text(text).await;
        a.expect_error(ErrorCode::MissingType).await;
    }
    a.assert_usable().await;
}

#[tokio::test]
async fn unknown_type() {
    let server = TestServer::start(config());
    let mut a = server.connect().await;
    a.send_text(r#"{"type":"dance"}"#).await;
    let (message, _) = a.expect_error(ErrorCode::UnknownType).await;
    assert!(message.contains("dance"), "{message}");
    a.assert_usable().await;
}

#[tokio::test]
async fn missing_or_wrong_fields() {
    let server = TestServer::start(config());
    let mut a = server.connect().await;
    a.send_text(r#"{"type":"join"}"#).await;
    let (message, _) = a.expect_error(ErrorCode::InvalidMessage).await;
    assert!(message.contains("room"), "{message}");
    a.send_text(r#"{"type":"join","room":5}"#).await;
    a.expect_error(ErrorCode::InvalidMessage).await;

    a.join("r").await;
    let to = PeerId::random();
    a.send_text(format!(r#"{{"type":"signal","to":"{to}"}}"#))
        .await;
    let (message, _) = a.expect_error(ErrorCode::InvalidMessage).await;
    assert!(message.contains("data"), "{message}");
    a.send_text(r#"{"type":"signal","data":{}}"#).await;
    let (message, _) = a.expect_error(ErrorCode::InvalidMessage).await;
    assert!(message.contains("to"), "{message}");
    a.send_text(r#"{"type":"signal","to":"not-a-uuid","data":{}}"#)
        .await;
    a.expect_error(ErrorCode::InvalidMessage).await;
    a.assert_usable().await;
}

#[tokio::test]
async fn binary_frame() {
    let server = TestServer::start(config());
    let mut a = server.connect().await;
    a.ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    let (message, _) = a.expect_error(ErrorCode::BinaryFrame).await;
    assert!(message.contains("text"), "{message}");
    a.assert_usable().await;
}

#[tokio::test]
async fn signal_or_leave_before_join() {
    let server = TestServer::start(config());
    let mut a = server.connect().await;
    a.signal(PeerId::random(), "{}").await;
    let (message, _) = a.expect_error(ErrorCode::NotJoined).await;
    assert!(message.contains("join"), "{message}");
    a.send_text(r#"{"type":"leave"}"#).await;
    a.expect_error(ErrorCode::NotJoined).await;
    a.assert_usable().await;
}

#[tokio::test]
async fn oversized_frame_is_refused_and_connection_stays() {
    let server = TestServer::start(Config {
        max_frame_bytes: 1024,
        ..config()
    });
    let ((mut a, wa), (mut b, wb)) = server.pair("r").await;

    // Just over the limit, and just under the hard cap (twice the limit).
    for size in [1025, 2000] {
        let padding = "x".repeat(size - 80);
        let text = format!(
            r#"{{"type":"signal","to":"{}","data":"{padding}"}}"#,
            wa.peer_id
        );
        let text = format!("{text:<size$}");
        assert_eq!(text.len(), size);
        b.send_text(text).await;
        let (message, _) = b.expect_error(ErrorCode::FrameTooLarge).await;
        assert!(message.contains(&size.to_string()), "{message}");
        assert!(message.contains("1024"), "{message}");
    }
    a.expect_silence(Duration::from_millis(200)).await;
    // A frame exactly at the limit passes.
    let padding = "y".repeat(1024 - 80);
    let text = format!(
        r#"{{"type":"signal","to":"{}","data":"{padding}"}}"#,
        wa.peer_id
    );
    let text = format!("{text:<1024}");
    b.send_text(text).await;
    assert_eq!(a.expect_signal(wb.peer_id).await, format!("\"{padding}\""));
    b.assert_usable().await;
}

#[tokio::test]
async fn frame_over_the_hard_cap_closes_with_an_error() {
    let server = TestServer::start(Config {
        max_frame_bytes: 1024,
        ..config()
    });
    let mut a = server.connect().await;
    let _ = a.ws.send(Message::text("x".repeat(4096))).await;
    let (messages, close) = a.expect_closed().await;
    assert!(
        matches!(
            &messages[..],
            [ServerMessage::Error {
                code: ErrorCode::FrameTooLarge,
                ..
            }]
        ),
        "{messages:?}"
    );
    if let Some(close) = close {
        assert_eq!(u16::from(close.code), 1009);
    }
    // The server itself is fine.
    server.connect().await.assert_usable().await;
}

#[tokio::test]
async fn message_flood_is_rate_limited_and_connection_recovers() {
    let server = TestServer::start(Config {
        messages_per_second: 20,
        message_burst: 10,
        ..config()
    });
    let mut a = server.connect().await;
    for _ in 0..50 {
        a.send_text(r#"{"type":"ping"}"#).await;
    }
    let mut pongs = 0;
    let mut limited = 0;
    while let Some(Received::Message(message)) = a.next_within(Duration::from_millis(300)).await {
        match message {
            ServerMessage::Pong => pongs += 1,
            ServerMessage::Error {
                code: ErrorCode::RateLimited,
                message,
                ..
            } => {
                assert!(message.contains("20 messages/s"), "{message}");
                limited += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        (10..=13).contains(&pongs),
        "burst of ~10 passes, got {pongs}"
    );
    assert_eq!(
        limited, 1,
        "one rate_limited error per second, not one per drop"
    );

    // Another client is not affected.
    server.connect().await.assert_usable().await;
    // After the bucket refills, the flooder is served again.
    tokio::time::sleep(Duration::from_millis(600)).await;
    a.assert_usable().await;
}

#[tokio::test]
async fn bad_input_is_counted_in_metrics() {
    let server = TestServer::start(config());
    let mut a = server.connect().await;
    a.send_text("nope").await;
    a.expect_error(ErrorCode::MalformedJson).await;
    let metrics = server.get("/metrics").await.text();
    let line = metrics
        .lines()
        .find(|line| line.starts_with("signaling_errors_total{code=\"malformed_json\"}"))
        .unwrap_or_else(|| panic!("no malformed_json counter in:\n{metrics}"));
    let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 1.0, "{line}");
}
