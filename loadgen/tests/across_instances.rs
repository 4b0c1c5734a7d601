//! loadgen relay across two signaling server instances sharing rooms through
//! a real `redis-server` (Debian's redis-server package, or
//! `$REDIS_SERVER_PATH`): every signal is checked, and every one went
//! through Redis.

// Test helpers: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{TestServer, assert_clean, config, loadgen};
use signaling_server::Config;
use test_support::RedisServer;

/// A server configuration sharing rooms through `redis`.
fn redis_config(redis: &RedisServer) -> Config {
    Config {
        redis: Some(redis.url()),
        redis_liveness: Duration::from_secs(2),
        ..config()
    }
}

/// How many `PUBLISH` commands Redis has run, scripts included (`INFO commandstats`).
fn publish_calls(redis: &RedisServer) -> u64 {
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", redis.port())).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(b"INFO commandstats\r\nQUIT\r\n").unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    reply
        .lines()
        .find_map(|line| line.strip_prefix("cmdstat_publish:calls="))
        .map(|rest| rest.split(',').next().unwrap().parse().unwrap())
        .unwrap_or(0)
}

#[test]
fn relay_across_two_instances_checks_every_signal_and_goes_through_redis() {
    let redis = RedisServer::start();
    let first = TestServer::start(redis_config(&redis));
    let second = TestServer::start(redis_config(&redis));
    let peer = second.addr.to_string();
    // Both instances share this test's process; the pid options are exercised, not measured.
    let pid = std::process::id().to_string();
    let watch = format!("redis={}", redis.pid());
    let relay = [
        "relay",
        "--pairs",
        "20",
        "--warmup",
        "0.2",
        "--duration",
        "1",
        "--drain",
        "3",
        "--peer-server",
        &peer,
        "--peer-server-pid",
        &pid,
        "--watch-pid",
        &watch,
    ];
    let published_before = publish_calls(&redis);
    let (code, figures) = loadgen(&first, &relay);
    assert_clean(&relay, code, &figures);
    let integrity = &figures["integrity"];
    let sent = integrity["sent"].as_u64().unwrap();
    assert!(
        figures["messages_relayed"].as_u64().unwrap() > 0,
        "{figures:#}"
    );
    assert_eq!(integrity["sent"], integrity["received"], "{figures:#}");
    assert_eq!(figures["peer_server"], peer.as_str(), "{figures:#}");
    for key in [
        "server_us_per_message",
        "peer_server_us_per_message",
        "watched_redis_us_per_message",
        "observed_us_per_message",
    ] {
        assert!(figures[key].as_f64().is_some(), "{key}: {figures:#}");
    }
    // Signals between peers on one instance never reach Redis; here each
    // one was published to the other instance.
    let published = publish_calls(&redis) - published_before;
    assert!(
        published >= sent,
        "{published} PUBLISH for {sent} signals: {figures:#}"
    );
}
