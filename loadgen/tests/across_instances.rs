//! loadgen relay across two signaling server instances sharing rooms through
//! a real `redis-server` (Debian's redis-server package, or
//! `$REDIS_SERVER_PATH`): every signal is checked, and every one went
//! through Redis.

// Test helpers: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestServer, assert_clean, config, loadgen};
use signaling_server::Config;

/// A `redis-server` on a free loopback port without persistence; killed
/// and its directory removed when dropped.
struct Redis {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Redis {
    fn start() -> Self {
        let program =
            std::env::var("REDIS_SERVER_PATH").unwrap_or_else(|_| "/usr/bin/redis-server".into());
        assert!(
            std::path::Path::new(&program).exists(),
            "{program} not found: install Debian's redis-server package or set REDIS_SERVER_PATH"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("loadgen-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new(&program)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let redis = Self { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        redis
    }

    fn config(&self) -> Config {
        Config {
            redis: Some(format!("redis://127.0.0.1:{}/", self.port)),
            redis_liveness: Duration::from_secs(2),
            ..config()
        }
    }

    /// How many `PUBLISH` commands Redis has run, scripts included (`INFO commandstats`).
    fn publish_calls(&self) -> u64 {
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
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
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn relay_across_two_instances_checks_every_signal_and_goes_through_redis() {
    let redis = Redis::start();
    let first = TestServer::start(redis.config());
    let second = TestServer::start(redis.config());
    let peer = second.addr.to_string();
    // Both instances share this test's process; the pid options are exercised, not measured.
    let pid = std::process::id().to_string();
    let watch = format!("redis={}", redis.child.id());
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
    let published_before = redis.publish_calls();
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
    let published = redis.publish_calls() - published_before;
    assert!(
        published >= sent,
        "{published} PUBLISH for {sent} signals: {figures:#}"
    );
}
