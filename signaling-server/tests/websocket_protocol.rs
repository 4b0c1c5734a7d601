//! The WebSocket layer itself (RFC 6455), spoken byte by byte over a raw
//! TCP socket: handshake checks, fragmentation, control frames, and the
//! violations that close the connection.

// Test helpers: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{ServerExt, TestServer, WAIT, config};
use signaling_protocol::ServerMessage;
use test_support::client_frame as frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

async fn handshake(server: &TestServer, extra: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n{extra}\r\n",
        server.addr
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, stream.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            n,
            1,
            "connection closed during handshake: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    (stream, String::from_utf8(head).unwrap())
}

async fn open(server: &TestServer) -> TcpStream {
    let (stream, head) = handshake(
        server,
        &format!("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n"),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    stream
}

/// Reads one server frame: (fin, opcode, payload).
async fn read_frame(stream: &mut TcpStream) -> Option<(bool, u8, Vec<u8>)> {
    let read = async {
        let mut head = [0u8; 2];
        stream.read_exact(&mut head).await.ok()?;
        assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
        let len = match head[1] & 0x7F {
            126 => {
                let mut ext = [0u8; 2];
                stream.read_exact(&mut ext).await.ok()?;
                usize::from(u16::from_be_bytes(ext))
            }
            127 => {
                let mut ext = [0u8; 8];
                stream.read_exact(&mut ext).await.ok()?;
                usize::try_from(u64::from_be_bytes(ext)).unwrap()
            }
            len => usize::from(len),
        };
        let mut payload = vec![0u8; len];
        stream.read_exact(&mut payload).await.ok()?;
        Some((head[0] & 0x80 != 0, head[0] & 0x0F, payload))
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("a frame in time")
}

async fn read_message(stream: &mut TcpStream) -> ServerMessage {
    loop {
        let (fin, opcode, payload) = read_frame(stream).await.expect("a frame");
        match opcode {
            1 => {
                assert!(fin);
                return ServerMessage::parse(std::str::from_utf8(&payload).unwrap()).unwrap();
            }
            9 | 10 => continue,
            other => panic!("expected a text frame, got opcode {other}"),
        }
    }
}

/// Expects a close frame with `code`, then the end of the stream.
async fn expect_close(stream: &mut TcpStream, code: u16) {
    loop {
        match read_frame(stream).await {
            Some((_, 8, payload)) => {
                assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), code);
                break;
            }
            Some((_, 9 | 10, _)) => continue,
            Some(other) => panic!("expected close, got {other:?}"),
            None => panic!("stream ended without a close frame"),
        }
    }
    let mut rest = Vec::new();
    let end = tokio::time::timeout(WAIT, stream.read_to_end(&mut rest)).await;
    assert!(
        end.is_ok(),
        "server closes the TCP connection after its close frame"
    );
}

#[tokio::test]
async fn handshake_without_key_or_with_wrong_version_is_refused() {
    let server = TestServer::start(config());
    let (_, head) = handshake(&server, "Sec-WebSocket-Version: 13\r\n").await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let (_, head) = handshake(
        &server,
        &format!("Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: {KEY}\r\n"),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 426"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-version: 13"),
        "{head}"
    );
}

#[tokio::test]
async fn frame_split_across_writes_and_several_in_one_write() {
    let server = TestServer::start(config());
    let mut stream = open(&server).await;
    let ping = frame(true, 1, br#"{"type":"ping"}"#);
    for byte in &ping {
        stream.write_all(&[*byte]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(matches!(
        read_message(&mut stream).await,
        ServerMessage::Pong
    ));
    let mut three = Vec::new();
    for _ in 0..3 {
        three.extend_from_slice(&ping);
    }
    stream.write_all(&three).await.unwrap();
    for _ in 0..3 {
        assert!(matches!(
            read_message(&mut stream).await,
            ServerMessage::Pong
        ));
    }
}

#[tokio::test]
async fn fragmented_message_with_a_ping_in_between() {
    let server = TestServer::start(config());
    let mut stream = open(&server).await;
    let mut bytes = frame(false, 1, br#"{"type":"#);
    bytes.extend(frame(true, 9, b"hb"));
    bytes.extend(frame(false, 0, br#""pi"#));
    bytes.extend(frame(true, 0, br#"ng"}"#));
    stream.write_all(&bytes).await.unwrap();
    let (fin, opcode, payload) = read_frame(&mut stream).await.unwrap();
    assert_eq!(
        (fin, opcode, payload.as_slice()),
        (true, 10, &b"hb"[..]),
        "pong echoes the ping"
    );
    assert!(matches!(
        read_message(&mut stream).await,
        ServerMessage::Pong
    ));
}

#[tokio::test]
async fn large_frame_with_64_bit_length_is_read() {
    let server = TestServer::start(config());
    let mut stream = open(&server).await;
    let join = r#"{"type":"join","room":"big"}"#;
    stream
        .write_all(&frame(true, 1, join.as_bytes()))
        .await
        .unwrap();
    let ServerMessage::Welcome { peer_id, .. } = read_message(&mut stream).await else {
        panic!("welcome expected");
    };
    let mut other = server.connect().await;
    let w = other.join("big").await;
    assert!(matches!(
        read_message(&mut stream).await,
        ServerMessage::PeerJoined { .. }
    ));
    // 64 KiB exactly needs the 64-bit length form.
    let head = format!(r#"{{"type":"signal","to":"{}","data":""#, w.peer_id);
    let padding = "p".repeat(65536 - head.len() - 2);
    let text = format!(r#"{head}{padding}"}}"#);
    assert_eq!(text.len(), 65536);
    stream
        .write_all(&frame(true, 1, text.as_bytes()))
        .await
        .unwrap();
    assert_eq!(other.expect_signal(peer_id).await, format!("\"{padding}\""));
}

#[tokio::test]
async fn close_frame_is_answered_with_the_same_code() {
    let server = TestServer::start(config());
    let mut stream = open(&server).await;
    stream
        .write_all(&frame(true, 8, &[0x0F, 0xA0, b'b', b'y', b'e']))
        .await
        .unwrap();
    expect_close(&mut stream, 4000).await;
}

#[tokio::test]
async fn unmasked_frame_closes_with_protocol_error() {
    let server = TestServer::start(config());
    let mut stream = open(&server).await;
    stream.write_all(&[0x81, 0x02, b'{', b'}']).await.unwrap();
    expect_close(&mut stream, 1002).await;
}

#[tokio::test]
async fn continuation_without_a_message_closes_with_protocol_error() {
    let server = TestServer::start(config());
    let mut stream = open(&server).await;
    stream.write_all(&frame(true, 0, b"x")).await.unwrap();
    expect_close(&mut stream, 1002).await;
}

#[tokio::test]
async fn invalid_utf8_text_closes_with_1007() {
    let server = TestServer::start(config());
    let mut stream = open(&server).await;
    stream
        .write_all(&frame(true, 1, &[0xFF, 0xFE]))
        .await
        .unwrap();
    expect_close(&mut stream, 1007).await;
}

#[tokio::test]
async fn server_pings_carry_on_while_client_answers() {
    let server = TestServer::start(signaling_server::Config {
        heartbeat_interval: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(500),
        ..config()
    });
    let mut stream = open(&server).await;
    for _ in 0..8 {
        let (_, opcode, payload) = read_frame(&mut stream).await.unwrap();
        assert_eq!(opcode, 9, "a ping");
        stream.write_all(&frame(true, 10, &payload)).await.unwrap();
    }
    stream
        .write_all(&frame(true, 1, br#"{"type":"ping"}"#))
        .await
        .unwrap();
    assert!(matches!(
        read_message(&mut stream).await,
        ServerMessage::Pong
    ));
}

#[tokio::test]
async fn fragmented_message_over_the_limit_is_refused_once_and_connection_stays() {
    let server = TestServer::start(signaling_server::Config {
        max_frame_bytes: 1024,
        ..config()
    });
    let mut stream = open(&server).await;
    // Three fragments of 600 bytes: the second takes the message over 1024.
    let mut bytes = frame(false, 1, &[b' '; 600]);
    bytes.extend(frame(false, 0, &[b' '; 600]));
    bytes.extend(frame(true, 0, &[b' '; 600]));
    bytes.extend(frame(true, 1, br#"{"type":"ping"}"#));
    stream.write_all(&bytes).await.unwrap();
    match read_message(&mut stream).await {
        ServerMessage::Error { code, message, .. } => {
            assert_eq!(code, signaling_protocol::ErrorCode::FrameTooLarge);
            assert!(message.contains("1200"), "{message}");
        }
        other => panic!("expected frame_too_large, got {other:?}"),
    }
    assert!(
        matches!(read_message(&mut stream).await, ServerMessage::Pong),
        "one error for the whole message, then the next message is served"
    );
}
