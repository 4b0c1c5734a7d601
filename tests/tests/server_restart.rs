//! The signaling server is killed while two `peer-client chat` processes are
//! negotiating, and started again on the same address: both reconnect and
//! finish connecting, and lines cross both ways. In memory the new server
//! knows nothing, so they join afresh; on Redis (a real `redis-server` beside
//! it) they resume their ids and rooms. And Redis itself, under two server
//! instances with one peer each, killed mid-negotiation and started again
//! empty: the instances put their peers back and the peers finish.
//!
//! Every host sits on an impaired wire (150 ms each way, see `e2e::wire`) so
//! that the kill lands while the newcomer's offer is still on its way to
//! the server.

use std::time::{Duration, Instant};

use e2e::netns::Netns;
use e2e::wire::Wire;
use e2e::{CHAT_OPEN, Process, Stream};

const SERVER: &str = "10.9.0.3:8080";

const REDIS_URL: &str = "redis://127.0.0.1:6379/0";

/// A second instance on the server's host, for peers on different instances.
const SECOND_SERVER: &str = "10.9.0.3:8081";

fn start_server(host: &Netns, redis: bool) -> Process {
    start_server_on(host, SERVER, redis)
}

fn start_server_on(host: &Netns, listen: &str, redis: bool) -> Process {
    let mut args = vec!["--listen", listen];
    if redis {
        args.extend_from_slice(&["--redis", REDIS_URL]);
    }
    let server = host.spawn("signaling-server", "signaling-server", &args);
    server.wait_for(Stream::Stdout, "listening on ", 0);
    server
}

/// `redis-server` on the server's host, loopback only, nothing saved to disk.
fn start_redis(host: &Netns) -> Process {
    let mut args = vec!["--port", "6379", "--bind", "127.0.0.1"];
    args.extend_from_slice(&test_support::REDIS_NO_PERSISTENCE);
    let redis = host.spawn_program("redis-server", &test_support::redis_server_program(), &args);
    redis.wait_for(Stream::Stdout, "Ready to accept connections", 0);
    redis
}

/// Ada (10.9.0.1), Bob (10.9.0.2) and the server's host (10.9.0.3) on a
/// wire with 150 ms each way.
fn hosts_on_a_slow_wire() -> ([Netns; 3], Wire) {
    let hosts = [Netns::new("ada"), Netns::new("bob"), Netns::new("srv")];
    let mut wire = Wire::new();
    for (n, host) in hosts.iter().enumerate() {
        wire.attach(host, "eth0", &format!("10.9.0.{}/24", n + 1));
    }
    wire.set_delay(Duration::from_millis(150));
    wire.start();
    (hosts, wire)
}

#[test]
fn server_killed_mid_negotiation_and_restarted_peers_finish_connecting() {
    restart_mid_negotiation(false);
}

#[test]
fn server_on_redis_killed_mid_negotiation_and_restarted_peers_resume_and_connect() {
    restart_mid_negotiation(true);
}

/// Kills the server the moment the second peer has joined, starts it again,
/// and checks both peers come back (`resumed` on Redis) and connect.
fn restart_mid_negotiation(redis: bool) {
    let (hosts, _wire) = hosts_on_a_slow_wire();

    let _redis = redis.then(|| start_redis(&hosts[2]));
    let mut server = start_server(&hosts[2], redis);
    let chat = |n: usize, name: &str| -> Process {
        hosts[n - 1].spawn(
            &format!("chat {name}"),
            "peer-client",
            &[
                "chat",
                "--server",
                &format!("ws://{SERVER}/ws"),
                "--room",
                "restart",
                "--name",
                name,
                "--bind",
                &format!("10.9.0.{n}:0"),
            ],
        )
    };
    let mut ada = chat(1, "Ada");
    ada.wait_for(Stream::Stderr, "joined room", 0);
    let mut bob = chat(2, "Bob");
    bob.wait_for(Stream::Stderr, "joined room", 0);
    // Bob's offer left when its welcome arrived; it reaches the server 150 ms later.
    server.kill();
    let killed = Instant::now();
    let opened_before_restart = ada.log().contains(CHAT_OPEN) || bob.log().contains(CHAT_OPEN);
    assert!(!opened_before_restart, "the channel opened before the kill");
    drop(server);
    let _server = start_server(&hosts[2], redis);

    let back = if redis {
        "signaling server back (resumed)"
    } else {
        "signaling server back (new id)"
    };
    for peer in [&ada, &bob] {
        peer.wait_for(Stream::Stderr, "lost the signaling server", 0);
        peer.wait_for(Stream::Stderr, back, 0);
    }
    ada.wait_for(Stream::Stderr, CHAT_OPEN, 0);
    bob.wait_for(Stream::Stderr, CHAT_OPEN, 0);
    println!(
        "channel open {:?} after the server{} was killed mid-negotiation",
        killed.elapsed(),
        if redis { " (on Redis)" } else { "" }
    );
    ada.write_line("after the restart");
    bob.wait_for(Stream::Stdout, "Ada: after the restart", 0);
    bob.write_line("all good");
    ada.wait_for(Stream::Stdout, "Bob: all good", 0);
}

#[test]
fn redis_restarted_empty_mid_negotiation_peers_on_two_instances_finish_connecting() {
    let (hosts, _wire) = hosts_on_a_slow_wire();

    let mut redis = start_redis(&hosts[2]);
    let _first = start_server_on(&hosts[2], SERVER, true);
    let _second = start_server_on(&hosts[2], SECOND_SERVER, true);
    let chat = |n: usize, name: &str, server: &str| -> Process {
        hosts[n - 1].spawn(
            &format!("chat {name}"),
            "peer-client",
            &[
                "chat",
                "--server",
                &format!("ws://{server}/ws"),
                "--room",
                "outage",
                "--name",
                name,
                "--bind",
                &format!("10.9.0.{n}:0"),
            ],
        )
    };
    let ada = chat(1, "Ada", SERVER);
    ada.wait_for(Stream::Stderr, "joined room", 0);
    let mut bob = chat(2, "Bob", SECOND_SERVER);
    bob.wait_for(Stream::Stderr, "joined room", 0);
    // Bob's offer is on its way to its instance, which must pass it through
    // Redis to Ada's.
    redis.kill();
    let killed = Instant::now();
    drop(redis);
    std::thread::sleep(Duration::from_secs(1));
    let _redis = start_redis(&hosts[2]);

    ada.wait_for(Stream::Stderr, CHAT_OPEN, 0);
    bob.wait_for(Stream::Stderr, CHAT_OPEN, 0);
    println!(
        "channel open {:?} after Redis was killed mid-negotiation (back, empty, 1 s later)",
        killed.elapsed()
    );
    assert!(
        !ada.log().contains("lost the signaling server"),
        "the WebSocket should have stayed open\n{}",
        ada.log()
    );
    bob.write_line("through the outage");
    ada.wait_for(Stream::Stdout, "Bob: through the outage", 0);
}
