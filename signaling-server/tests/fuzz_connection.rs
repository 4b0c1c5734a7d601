//! Hostile bytes over raw TCP into a real server on a loopback port: random
//! bytes before or after a valid WebSocket handshake, and random sequences
//! of frames (any opcode, reserved bits, unmasked, lying lengths, fragments,
//! message-shaped and random payloads). Afterwards the server still serves a
//! well-behaved pair of clients, and its connections, peers and rooms all
//! return to zero: nothing a client sent stays behind.
//!
//! Few cases by default; `PROPTEST_CASES=20000 cargo test -p signaling-server
//! --test fuzz_connection --release` for a long run.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{ServerExt, TestServer, config};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use signaling_server::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HANDSHAKE: &str = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// One client frame, possibly malformed.
#[derive(Debug, Clone)]
struct RawFrame {
    fin: bool,
    rsv: u8,
    opcode: u8,
    masked: bool,
    mask: [u8; 4],
    payload: Vec<u8>,
    /// Declared length minus actual length (a lie when not zero).
    length_lie: i8,
}

impl RawFrame {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(self.fin) << 7 | (self.rsv & 7) << 4 | (self.opcode & 0x0F));
        let declared = (self.payload.len() as i64 + i64::from(self.length_lie)).max(0) as u64;
        let mask_bit = if self.masked { 0x80 } else { 0 };
        if declared < 126 {
            out.push(mask_bit | declared as u8);
        } else if declared < 65_536 {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(declared as u16).to_be_bytes());
        } else {
            out.push(mask_bit | 127);
            out.extend_from_slice(&declared.to_be_bytes());
        }
        if self.masked {
            out.extend_from_slice(&self.mask);
        }
        out.extend(self.payload.iter().enumerate().map(|(i, b)| {
            if self.masked {
                b ^ self.mask[i % 4]
            } else {
                *b
            }
        }));
    }
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        Just(br#"{"type":"join","room":"fuzz"}"#.to_vec()),
        Just(br#"{"type":"ping"}"#.to_vec()),
        Just(br#"{"type":"leave"}"#.to_vec()),
        Just(
            br#"{"type":"signal","to":"00000000-0000-0000-0000-000000000000","data":{}}"#.to_vec()
        ),
        any::<String>()
            .prop_map(|text| format!(r#"{{"type":"join","room":{text:?}}}"#).into_bytes()),
        (0usize..140_000).prop_map(|n| vec![b'x'; n]),
    ]
}

fn frame() -> impl Strategy<Value = RawFrame> {
    (
        prop::bool::weighted(0.8),
        prop_oneof![8 => Just(0u8), 1 => 0u8..8],
        prop_oneof![6 => Just(1u8), 1 => Just(0u8), 1 => Just(2u8), 1 => 8u8..11, 1 => 0u8..16],
        prop::bool::weighted(0.95),
        any::<[u8; 4]>(),
        payload(),
        prop_oneof![8 => Just(0i8), 1 => any::<i8>()],
    )
        .prop_map(
            |(fin, rsv, opcode, masked, mask, payload, length_lie)| RawFrame {
                fin,
                rsv,
                opcode,
                masked,
                mask,
                payload,
                length_lie,
            },
        )
}

/// What one hostile connection sends.
#[derive(Debug, Clone)]
enum Attack {
    /// Bytes instead of an HTTP request.
    RawBytes(Vec<u8>),
    /// A handshake, then random bytes.
    BytesAfterHandshake(Vec<u8>),
    /// A handshake, then frames.
    Frames(Vec<RawFrame>),
}

fn attack() -> impl Strategy<Value = Attack> {
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..600).prop_map(Attack::RawBytes),
        1 => prop::collection::vec(any::<u8>(), 0..600).prop_map(Attack::BytesAfterHandshake),
        4 => prop::collection::vec(frame(), 1..12).prop_map(Attack::Frames),
    ]
}

async fn send(addr: std::net::SocketAddr, attack: &Attack) {
    let Ok(Ok(mut stream)) =
        tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await
    else {
        panic!("the server stopped accepting connections");
    };
    let mut bytes = Vec::new();
    match attack {
        Attack::RawBytes(raw) => bytes.extend_from_slice(raw),
        Attack::BytesAfterHandshake(raw) => {
            bytes.extend_from_slice(HANDSHAKE.as_bytes());
            bytes.extend_from_slice(raw);
        }
        Attack::Frames(frames) => {
            bytes.extend_from_slice(HANDSHAKE.as_bytes());
            for frame in frames {
                frame.encode(&mut bytes);
            }
        }
    }
    // The server may close early; a failed write is part of the game.
    let _ = stream.write_all(&bytes).await;
    let mut sink = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_millis(50);
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, stream.read(&mut sink)).await {
        if n == 0 {
            break;
        }
    }
}

/// Reads one gauge from `/metrics`; a gauge that is missing fails the test
/// (an empty page or a renamed gauge must not read as "holds nothing").
async fn gauge(server: &TestServer, name: &str) -> f64 {
    let text = server.get("/metrics").await.text();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("/metrics has no gauge {name}:\n{text}"))
}

/// Two clients meet and exchange a signal: the server still works.
async fn well_behaved_pair(server: &TestServer, room: &str) {
    let mut ada = server.connect().await;
    let ada_welcome = ada.join(room).await;
    let mut bob = server.connect().await;
    let bob_welcome = bob.join(room).await;
    assert_eq!(bob_welcome.peers, vec![ada_welcome.peer_id]);
    ada.expect_peer_joined(bob_welcome.peer_id).await;
    bob.signal(ada_welcome.peer_id, r#"{"hello":1}"#).await;
    assert_eq!(
        ada.expect_signal(bob_welcome.peer_id).await,
        r#"{"hello":1}"#
    );
}

#[test]
fn hostile_connections_leave_the_server_serving_and_holding_nothing() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // Every case is a new connection from 127.0.0.1, hundreds a second: the
    // per-address rate limit would refuse most before they could send anything.
    let server = TestServer::start(Config {
        connection_rate_per_address: 0,
        ..config()
    });
    let addr = server.addr;
    let cases = ProptestConfig::default().cases;
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let done = std::cell::Cell::new(0u32);
    let result = runner.run(&attack(), |attack| {
        runtime.block_on(send(addr, &attack));
        let done = done.replace(done.get() + 1) + 1;
        if done.is_multiple_of(64) {
            runtime.block_on(well_behaved_pair(&server, &format!("check-{done}")));
        }
        Ok(())
    });
    if let Err(err) = result {
        panic!("{err}");
    }
    runtime.block_on(async {
        well_behaved_pair(&server, "after").await;
        // Every connection closed; absent peers expire after the grace period.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let held = [
                gauge(&server, "signaling_connections").await,
                gauge(&server, "signaling_peers").await,
                gauge(&server, "signaling_rooms").await,
            ];
            if held == [0.0; 3] {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the server still holds connections, peers, rooms: {held:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}
