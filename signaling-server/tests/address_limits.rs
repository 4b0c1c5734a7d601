//! One client address cannot take what everyone else needs: per-address
//! limits on connections in their HTTP phase, on open WebSockets and on the
//! rate of new connections, applied to the client behind a trusted proxy and
//! never to an address a client merely claims.

// Test code: a failed expectation is a failed test.
#![allow(clippy::expect_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::{Client, ServerExt, TestServer, config};
use signaling_protocol::ErrorCode;
use signaling_server::Config;
use signaling_server::client_address::parse_network;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const PROXY: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));

async fn tcp_from(source: IpAddr, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(source, 0)).expect("bind");
    socket.connect(server).await.expect("connect")
}

/// The counter of refusals for `reason`, from `/metrics`.
async fn refusals(server: &TestServer, reason: &str) -> u64 {
    let metrics = server.get("/metrics").await.text();
    let prefix = format!(r#"signaling_connections_rejected_total{{reason="{reason}"}} "#);
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn an_address_holding_stalled_connections_does_not_lock_out_others() {
    // The server runs in this process: both ends of every connection count.
    let _ = rlimit::increase_nofile_limit(16_384);
    let server = TestServer::start(config());

    // From one address: 1 500 connections that never send a request, then
    // 200 that stop halfway through their headers. Under one server-wide
    // pool (1 024) these alone filled it for the header timeout.
    let mut stalled = Vec::new();
    for _ in 0..1500 {
        stalled.push(tcp_from(ATTACKER, server.addr).await);
    }
    for _ in 0..200 {
        let mut stream = tcp_from(ATTACKER, server.addr).await;
        // The server may already have closed it: that is the point.
        let _ = stream
            .write_all(b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: webso")
            .await;
        stalled.push(stream);
    }

    // A pair from another address meets and signals within a second.
    let start = Instant::now();
    let mut alice = Client::connect_from(server.addr, CLIENT, &[]).await;
    let alice_id = alice.join("lobby").await.peer_id;
    let mut bob = Client::connect_from(server.addr, CLIENT, &[]).await;
    let bob_id = bob.join("lobby").await.peer_id;
    alice.expect_peer_joined(bob_id).await;
    bob.signal(alice_id, r#"{"sdp":"offer"}"#).await;
    assert_eq!(alice.expect_signal(bob_id).await, r#"{"sdp":"offer"}"#);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(1), "the pair took {took:?}");

    // The attacker got its 64 connections in the HTTP phase and no more
    // (the server may still be accepting the last ones).
    let deadline = Instant::now() + common::WAIT;
    let refused = loop {
        let refused =
            refusals(&server, "address_pending").await + refusals(&server, "address_rate").await;
        if refused >= 1700 - 64 || Instant::now() > deadline {
            break refused;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(refused, 1700 - 64);
    assert_eq!(refusals(&server, "pending_full").await, 0);
    drop(stalled);
}

#[tokio::test]
async fn open_websockets_are_bounded_per_address() {
    let server = TestServer::start(Config {
        max_connections_per_address: 2,
        ..config()
    });
    let mut first = Client::connect_from(server.addr, ATTACKER, &[]).await;
    let mut second = Client::connect_from(server.addr, ATTACKER, &[]).await;
    let mut third = Client::connect_from(server.addr, ATTACKER, &[]).await;
    let (message, _) = third.expect_error(ErrorCode::TooManyConnections).await;
    assert!(
        message.contains("127.0.0.2 holds its limit of 2"),
        "{message}"
    );
    let (_, close) = third.expect_closed().await;
    assert_eq!(close.map(|frame| u16::from(frame.code)), Some(1013));
    first.assert_usable().await;
    second.assert_usable().await;
    // Another address is not affected, and a closed WebSocket frees its slot.
    Client::connect_from(server.addr, CLIENT, &[])
        .await
        .assert_usable()
        .await;
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = Client::connect_from(server.addr, ATTACKER, &[]).await;
    again.assert_usable().await;
    assert_eq!(refusals(&server, "address_connections").await, 1);
}

#[tokio::test]
async fn a_client_behind_a_trusted_proxy_is_limited_by_its_own_address() {
    let server = TestServer::start(Config {
        max_connections_per_address: 2,
        trusted_proxies: vec![parse_network("127.0.0.3").expect("network")],
        ..config()
    });
    let forwarded = |client: &'static str| [("x-forwarded-for", client)];
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut client = Client::connect_from(server.addr, PROXY, &forwarded("198.51.100.7")).await;
        client.assert_usable().await;
        held.push(client);
    }
    let mut third = Client::connect_from(server.addr, PROXY, &forwarded("198.51.100.7")).await;
    let (message, _) = third.expect_error(ErrorCode::TooManyConnections).await;
    assert!(message.contains("198.51.100.7"), "{message}");
    // The proxy carries other clients on: each is counted on its own.
    for client in ["198.51.100.8", "198.51.100.9", "203.0.113.1"] {
        let mut other = Client::connect_from(server.addr, PROXY, &forwarded(client)).await;
        other.assert_usable().await;
        held.push(other);
    }
    // An entry the client wrote itself, left of the proxy's, changes nothing.
    let spoofed = [("x-forwarded-for", "192.0.2.55, 198.51.100.7")];
    let mut spoofing = Client::connect_from(server.addr, PROXY, &spoofed).await;
    spoofing.expect_error(ErrorCode::TooManyConnections).await;
    assert_eq!(refusals(&server, "address_connections").await, 2);
}

#[tokio::test]
async fn a_forged_forwarded_for_from_an_untrusted_address_changes_nothing() {
    let server = TestServer::start(Config {
        max_connections_per_address: 2,
        trusted_proxies: vec![parse_network("127.0.0.3").expect("network")],
        ..config()
    });
    let mut held = Vec::new();
    for claimed in ["198.51.100.1", "198.51.100.2"] {
        let mut client =
            Client::connect_from(server.addr, ATTACKER, &[("x-forwarded-for", claimed)]).await;
        client.assert_usable().await;
        held.push(client);
    }
    let mut third = Client::connect_from(
        server.addr,
        ATTACKER,
        &[("x-forwarded-for", "198.51.100.3")],
    )
    .await;
    let (message, _) = third.expect_error(ErrorCode::TooManyConnections).await;
    assert!(message.contains("127.0.0.2"), "{message}");
}

#[tokio::test]
async fn new_connections_are_rate_limited_per_address() {
    let server = TestServer::start(Config {
        connection_rate_per_address: 1,
        connection_burst_per_address: 3,
        ..config()
    });
    // `/metrics` is read from another address so it costs the tested one nothing.
    for _ in 0..3 {
        let mut client = Client::connect_from(server.addr, ATTACKER, &[]).await;
        client.assert_usable().await;
    }
    let mut refused = tcp_from(ATTACKER, server.addr).await;
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(
        common::WAIT,
        tokio::io::AsyncReadExt::read(&mut refused, &mut byte),
    )
    .await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "closed at accept: {read:?}"
    );
    assert_eq!(refusals(&server, "address_rate").await, 1);
    // A second later the address has a token again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    Client::connect_from(server.addr, ATTACKER, &[])
        .await
        .assert_usable()
        .await;
}
