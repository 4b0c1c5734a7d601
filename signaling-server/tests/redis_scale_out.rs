//! Several instances share rooms through a real `redis-server` (Debian's
//! redis-server package, or `$REDIS_SERVER_PATH`): membership, signals,
//! resume on another instance with the signals queued meanwhile, expiry,
//! atomic room limits, and the peers of a killed instance leaving. Each
//! scenario runs against one server and against a Redis Cluster of three
//! masters (`redis-cli --cluster create`).

// Test helpers: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Client, Received, ServerExt, TestServer, config};
use signaling_protocol::{ErrorCode, PeerId, ServerMessage};
use signaling_server::Config;
use test_support::RedisServer;

/// Runs each scenario, a function of the Redis address, against one
/// `redis-server` and against a three-master Redis Cluster.
macro_rules! on_one_server_and_a_cluster {
    ($($scenario:ident),* $(,)?) => {
        mod one_server {
            $(
                #[tokio::test]
                async fn $scenario() {
                    let redis = test_support::RedisServer::start();
                    super::$scenario(&redis.url()).await;
                }
            )*
        }
        mod cluster {
            $(
                #[tokio::test]
                async fn $scenario() {
                    let redis = test_support::RedisCluster::start();
                    super::$scenario(&redis.url()).await;
                }
            )*
        }
    };
}

on_one_server_and_a_cluster!(
    peers_on_different_instances_meet_signal_and_leave,
    a_peer_resumes_on_another_instance_and_gets_what_was_queued,
    a_resume_elsewhere_takes_over_a_connection_still_open,
    an_absent_peer_expires_for_everyone,
    concurrent_joins_across_instances_never_overfill_a_room,
    peers_of_a_killed_instance_leave_within_the_liveness_bound,
    clients_of_a_stopping_instance_resume_on_another,
    known_routes_follow_a_peer_that_goes_absent_resumes_elsewhere_or_leaves,
    signals_by_a_route_through_a_stopped_instance_reach_the_peer_where_it_resumed,
    absent_peers_queues_stay_within_the_server_wide_budget,
);

/// A server configuration sharing rooms through `redis` (liveness 2 s, so
/// a dead instance's peers leave quickly).
fn redis_config(redis: &str) -> Config {
    Config {
        redis: Some(redis.to_owned()),
        redis_liveness: Duration::from_secs(2),
        ..config()
    }
}

async fn two_instances(redis: &str) -> (TestServer, TestServer) {
    (
        TestServer::start(redis_config(redis)),
        TestServer::start(redis_config(redis)),
    )
}

async fn peers_on_different_instances_meet_signal_and_leave(redis: &str) {
    let (one, two) = two_instances(redis).await;
    let mut a = one.connect().await;
    let mut b = two.connect().await;
    let wa = a.join("shared").await;
    let wb = b.join("shared").await;
    assert_eq!(wb.peers, [wa.peer_id]);
    assert!(!wb.resumed);
    a.expect_peer_joined(wb.peer_id).await;

    // Signals cross instances verbatim and in order.
    for i in 0..20 {
        b.signal(wa.peer_id, &format!(r#"{{"n":{i}}}"#)).await;
    }
    for i in 0..20 {
        assert_eq!(a.expect_signal(wb.peer_id).await, format!(r#"{{"n":{i}}}"#));
    }
    a.signal(wb.peer_id, r#"{"candidate":null}"#).await;
    assert_eq!(b.expect_signal(wa.peer_id).await, r#"{"candidate":null}"#);

    // A third peer on the first instance sees both, oldest first.
    let mut c = one.connect().await;
    let wc = c.join("shared").await;
    assert_eq!(wc.peers, [wa.peer_id, wb.peer_id]);
    a.expect_peer_joined(wc.peer_id).await;
    b.expect_peer_joined(wc.peer_id).await;

    // Rooms are separate across instances too.
    let mut d = two.connect().await;
    let wd = d.join("elsewhere").await;
    assert!(wd.peers.is_empty());
    d.signal(wa.peer_id, "{}").await;
    let (_, peer) = d.expect_error(ErrorCode::UnknownPeer).await;
    assert_eq!(peer, Some(wa.peer_id));

    // Leaving is seen on the other instance.
    b.send_text(r#"{"type":"leave"}"#).await;
    a.expect_peer_left(wb.peer_id).await;
    c.expect_peer_left(wb.peer_id).await;
    // Both instances report the shared totals.
    let metrics = one.get("/metrics").await.text();
    assert!(metrics.contains("signaling_rooms "), "{metrics}");
}

async fn a_peer_resumes_on_another_instance_and_gets_what_was_queued(redis: &str) {
    let (one, two) = two_instances(redis).await;
    let mut a = one.connect().await;
    let mut b = two.connect().await;
    let wa = a.join("resume").await;
    let wb = b.join("resume").await;
    a.expect_peer_joined(wb.peer_id).await;

    // b's connection drops without a goodbye; its instance marks it absent.
    drop(b);
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.signal(wb.peer_id, r#"{"queued":1}"#).await;
    a.signal(wb.peer_id, r#"{"queued":2}"#).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // It comes back through the other instance with its token.
    let mut b = one.connect().await;
    let back = b.join_with("resume", Some(&wb.resume_token)).await;
    assert!(back.resumed);
    assert_eq!(back.peer_id, wb.peer_id);
    assert_eq!(back.peers, [wa.peer_id]);
    assert_ne!(back.resume_token, wb.resume_token);
    assert_eq!(b.expect_signal(wa.peer_id).await, r#"{"queued":1}"#);
    assert_eq!(b.expect_signal(wa.peer_id).await, r#"{"queued":2}"#);
    // Nobody saw it leave, and it talks again.
    b.signal(wa.peer_id, r#"{"back":true}"#).await;
    assert_eq!(a.expect_signal(wb.peer_id).await, r#"{"back":true}"#);

    // The used token is spent: a second resume with it joins afresh.
    let mut again = two.connect().await;
    let fresh = again.join_with("resume", Some(&wb.resume_token)).await;
    assert!(!fresh.resumed);
    assert_ne!(fresh.peer_id, wb.peer_id);
}

async fn a_resume_elsewhere_takes_over_a_connection_still_open(redis: &str) {
    let (one, two) = two_instances(redis).await;
    let mut a = one.connect().await;
    let wa = a.join("takeover").await;
    let mut b = two.connect().await;
    let wb = b.join("takeover").await;
    a.expect_peer_joined(wb.peer_id).await;

    let mut b2 = one.connect().await;
    let back = b2.join_with("takeover", Some(&wb.resume_token)).await;
    assert!(back.resumed);
    // The old connection on the other instance is closed.
    let (_, close) = b.expect_closed().await;
    assert_eq!(close.map(|c| u16::from(c.code)), Some(1000));
    a.signal(wb.peer_id, r#"{"to":"new"}"#).await;
    assert_eq!(b2.expect_signal(wa.peer_id).await, r#"{"to":"new"}"#);
    a.expect_silence(Duration::from_millis(300)).await;
}

async fn an_absent_peer_expires_for_everyone(redis: &str) {
    let (one, two) = two_instances(redis).await;
    let mut a = one.connect().await;
    let mut b = two.connect().await;
    a.join("expiry").await;
    let wb = b.join("expiry").await;
    a.expect_peer_joined(wb.peer_id).await;
    drop(b);
    // Grace 2 s (test config) plus at most one maintenance period.
    let started = Instant::now();
    a.expect_peer_left(wb.peer_id).await;
    assert!(started.elapsed() >= Duration::from_millis(1500));
    let mut late = one.connect().await;
    let welcome = late.join_with("expiry", Some(&wb.resume_token)).await;
    assert!(!welcome.resumed);
}

async fn concurrent_joins_across_instances_never_overfill_a_room(redis: &str) {
    let limited = Config {
        max_peers_per_room: 3,
        ..redis_config(redis)
    };
    let one = TestServer::start(limited.clone());
    let two = TestServer::start(limited);
    let mut clients = Vec::new();
    for i in 0..12 {
        let server = if i % 2 == 0 { &one } else { &two };
        clients.push(server.connect().await);
    }
    for client in &mut clients {
        client
            .send_text(r#"{"type":"join","room":"crowded"}"#)
            .await;
    }
    let (mut welcomed, mut full) = (0, 0);
    for client in &mut clients {
        match client.recv().await {
            ServerMessage::Welcome { .. } => welcomed += 1,
            ServerMessage::Error {
                code: ErrorCode::RoomFull,
                ..
            } => full += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((welcomed, full), (3, 9));
}

/// A `signaling-server` process; killed when dropped.
struct Process {
    child: Child,
    url: String,
}

impl Process {
    fn start(redis: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_signaling-server"))
            .args(["--listen", "127.0.0.1:0", "--redis", redis])
            .args(["--redis-liveness", "2s"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the server prints its address");
        Self {
            child,
            url: format!("ws://{addr}/ws"),
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn peers_of_a_killed_instance_leave_within_the_liveness_bound(redis: &str) {
    let survivor = TestServer::start(redis_config(redis));
    let mut doomed = Process::start(redis);
    let mut a = survivor.connect().await;
    let wa = a.join("fragile").await;
    let mut x = Client::connect(&doomed.url).await;
    let wx = x.join("fragile").await;
    assert_eq!(wx.peers, [wa.peer_id]);
    a.expect_peer_joined(wx.peer_id).await;
    // The same path works from the process to this one.
    x.signal(wa.peer_id, r#"{"from":"process"}"#).await;
    assert_eq!(a.expect_signal(wx.peer_id).await, r#"{"from":"process"}"#);

    // SIGKILL: no goodbye, no cleanup. Liveness is 2 s.
    doomed.child.kill().unwrap();
    let killed = Instant::now();
    match a.next_within(Duration::from_secs(6)).await {
        Some(common::Received::Message(ServerMessage::PeerLeft { peer_id })) => {
            assert_eq!(peer_id, wx.peer_id);
        }
        other => panic!("expected peer_left within 6 s, got {other:?}"),
    }
    let took = killed.elapsed();
    assert!(took <= Duration::from_secs(4), "took {took:?}");
    // The room is usable and the dead peer is gone from it.
    let mut c = survivor.connect().await;
    let wc = c.join("fragile").await;
    assert_eq!(wc.peers, [wa.peer_id]);
}

async fn clients_of_a_stopping_instance_resume_on_another(redis: &str) {
    let (one, two) = two_instances(redis).await;
    let mut a = two.connect().await;
    let wa = a.join("moving").await;
    let mut b = one.connect().await;
    let wb = b.join("moving").await;
    a.expect_peer_joined(wb.peer_id).await;

    // The instance stops gracefully: its client is told to reconnect.
    let stopping = tokio::spawn(one.stop());
    let (messages, _) = b.expect_closed().await;
    assert!(
        messages
            .iter()
            .any(|m| matches!(m, ServerMessage::Shutdown { .. })),
        "{messages:?}"
    );
    stopping.await.unwrap();
    a.signal(wb.peer_id, r#"{"while":"moving"}"#).await;

    // It resumes on the instance still running, keeping its id and the
    // signal sent meanwhile; the other peer never sees it leave.
    let mut b = two.connect().await;
    let back = b.join_with("moving", Some(&wb.resume_token)).await;
    assert!(back.resumed);
    assert_eq!(back.peer_id, wb.peer_id);
    assert_eq!(b.expect_signal(wa.peer_id).await, r#"{"while":"moving"}"#);
    a.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn readiness_follows_redis() {
    let mut redis = RedisServer::start();
    let server = TestServer::start(redis_config(&redis.url()));
    assert_eq!(server.get("/readyz").await.status, 200);
    redis.kill();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let response = server.get("/readyz").await;
        if response.status == 503 {
            assert!(response.text().contains("Redis"), "{}", response.text());
            break;
        }
        assert!(Instant::now() < deadline, "/readyz still 200 without Redis");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Joins fail with a clear error rather than hanging.
    let mut client = server.connect().await;
    client.send_text(r#"{"type":"join","room":"r"}"#).await;
    let (message, _) = client.expect_error(ErrorCode::Internal).await;
    assert!(message.contains("unreachable"), "{message}");
}

/// Sends `count` numbered signals from `from` to `to` and checks they arrive
/// in order.
async fn exchange(
    from: &mut Client,
    to: &mut Client,
    to_id: PeerId,
    from_id: PeerId,
    count: u32,
    tag: &str,
) {
    for i in 0..count {
        from.signal(to_id, &format!(r#"{{"{tag}":{i}}}"#)).await;
    }
    for i in 0..count {
        assert_eq!(
            to.expect_signal(from_id).await,
            format!(r#"{{"{tag}":{i}}}"#)
        );
    }
}

async fn known_routes_follow_a_peer_that_goes_absent_resumes_elsewhere_or_leaves(redis: &str) {
    let (one, two) = two_instances(redis).await;
    let mut a = one.connect().await;
    let wa = a.join("routes").await;
    let mut b = two.connect().await;
    let wb = b.join("routes").await;
    a.expect_peer_joined(wb.peer_id).await;
    // The first signal finds b through the script; the rest go by route.
    exchange(&mut a, &mut b, wb.peer_id, wa.peer_id, 10, "known").await;

    // b drops: the route still names its old instance, which queues for it.
    drop(b);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..3 {
        a.signal(wb.peer_id, &format!(r#"{{"absent":{i}}}"#)).await;
    }
    // b resumes on a's instance and gets them in order; later signals by
    // the old route are handed on to it, still in order.
    let mut b = one.connect().await;
    assert!(b.join_with("routes", Some(&wb.resume_token)).await.resumed);
    for i in 0..3 {
        assert_eq!(
            b.expect_signal(wa.peer_id).await,
            format!(r#"{{"absent":{i}}}"#)
        );
    }
    exchange(&mut a, &mut b, wb.peer_id, wa.peer_id, 10, "moved").await;

    // b leaves: signals to it are refused again, not sent by a stale route.
    b.send_text(r#"{"type":"leave"}"#).await;
    a.expect_peer_left(wb.peer_id).await;
    a.signal(wb.peer_id, r#"{"after":"leave"}"#).await;
    let (_, peer) = a.expect_error(ErrorCode::UnknownPeer).await;
    assert_eq!(peer, Some(wb.peer_id));
}

async fn signals_by_a_route_through_a_stopped_instance_reach_the_peer_where_it_resumed(
    redis: &str,
) {
    let (one, two) = two_instances(redis).await;
    let mut a = one.connect().await;
    let wa = a.join("gone").await;
    let mut c = two.connect().await;
    let wc = c.join("gone").await;
    a.expect_peer_joined(wc.peer_id).await;
    exchange(&mut a, &mut c, wc.peer_id, wa.peer_id, 5, "before").await;

    // c's instance stops; c resumes on a's. a's route still names the
    // stopped instance, whose channel nobody reads any more.
    let stopping = tokio::spawn(two.stop());
    c.expect_closed().await;
    stopping.await.unwrap();
    let mut c = one.connect().await;
    assert!(c.join_with("gone", Some(&wc.resume_token)).await.resumed);
    exchange(&mut a, &mut c, wc.peer_id, wa.peer_id, 5, "after").await;
    a.expect_silence(Duration::from_millis(300)).await;
}

/// Waits (at most 10 s) until `/readyz` answers `status`.
async fn readiness_becomes(server: &TestServer, status: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.get("/readyz").await.status != status {
        assert!(Instant::now() < deadline, "/readyz never answered {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads and drops whatever arrives until `client` has been quiet for `quiet`.
async fn drain(client: &mut Client, quiet: Duration) {
    while let Some(received) = client.next_within(quiet).await {
        assert!(
            !matches!(received, Received::Closed(_)),
            "the connection closed"
        );
    }
}

#[tokio::test]
async fn rooms_work_again_after_redis_restarts_empty() {
    let mut redis = RedisServer::start();
    let (one, two) = two_instances(&redis.url()).await;
    let mut a = one.connect().await;
    let wa = a.join("outage").await;
    let mut b = two.connect().await;
    let wb = b.join("outage").await;
    a.expect_peer_joined(wb.peer_id).await;
    exchange(&mut a, &mut b, wb.peer_id, wa.peer_id, 3, "before").await;

    // Redis goes away: both instances say they are not ready, and keep
    // their clients connected.
    redis.kill();
    readiness_becomes(&one, 503).await;
    readiness_becomes(&two, 503).await;
    a.assert_usable().await;
    b.assert_usable().await;

    // It comes back empty. a probes b until a signal gets through.
    let restarted = Instant::now();
    redis.restart_empty();
    let recovery = loop {
        a.signal(wb.peer_id, r#"{"probe":true}"#).await;
        let got = b.next_within(Duration::from_millis(100)).await;
        if matches!(got, Some(Received::Message(ServerMessage::Signal { .. }))) {
            break restarted.elapsed();
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(15),
            "no signal got through within 15 s"
        );
    };
    eprintln!("signals cross instances again {recovery:?} after Redis restarted empty");
    readiness_becomes(&one, 200).await;
    readiness_becomes(&two, 200).await;
    drain(&mut a, Duration::from_millis(300)).await;
    drain(&mut b, Duration::from_millis(300)).await;

    // Signals flow both ways, in order; a newcomer finds both peers; b's
    // token still resumes it.
    exchange(&mut b, &mut a, wa.peer_id, wb.peer_id, 5, "after").await;
    exchange(&mut a, &mut b, wb.peer_id, wa.peer_id, 5, "after").await;
    let mut c = one.connect().await;
    let mut peers = c.join("outage").await.peers;
    peers.sort_by_key(|peer| peer.to_string());
    let mut expected = vec![wa.peer_id, wb.peer_id];
    expected.sort_by_key(|peer| peer.to_string());
    assert_eq!(peers, expected);
    drop(b);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut b = one.connect().await;
    assert!(b.join_with("outage", Some(&wb.resume_token)).await.resumed);
}

/// As the in-memory broker does, across instances: when the bytes queued
/// for all absent peers pass `max_absent_queue_bytes`, the absent peer with
/// the largest queue is evicted (its room gets `peer_left`).
async fn absent_peers_queues_stay_within_the_server_wide_budget(redis: &str) {
    let data = format!(r#"{{"blob":"{}"}}"#, "q".repeat(2000));
    let frame_len = ServerMessage::Signal {
        from: PeerId::random(),
        data: serde_json::value::RawValue::from_string(data.clone()).unwrap(),
    }
    .to_json()
    .len();
    // Room for four queued frames, not five.
    let limited = Config {
        max_queued_signals: 100,
        max_queued_bytes: 10_000,
        max_absent_queue_bytes: 4 * frame_len + frame_len / 2,
        resume_grace: Duration::from_secs(30),
        ..redis_config(redis)
    };
    let one = TestServer::start(limited.clone());
    let two = TestServer::start(limited);
    // Room "r": a present on one instance, b and c absent from the other.
    // Room "s": d present, e absent.
    let mut a = one.connect().await;
    let wa = a.join("r").await;
    let mut b = two.connect().await;
    let wb = b.join("r").await;
    let mut c = two.connect().await;
    let wc = c.join("r").await;
    let mut d = one.connect().await;
    d.join("s").await;
    let mut e = two.connect().await;
    let we = e.join("s").await;
    drop((b, c, e));
    tokio::time::sleep(Duration::from_millis(500)).await;
    drain(&mut a, Duration::from_millis(100)).await;
    drain(&mut d, Duration::from_millis(100)).await;

    // b gets three frames, e one: four, within the budget.
    for _ in 0..3 {
        a.signal(wb.peer_id, &data).await;
    }
    d.signal(we.peer_id, &data).await;
    a.expect_silence(Duration::from_millis(500)).await;

    // A fifth, for e, does not fit: b, holding the largest queue, goes.
    d.signal(we.peer_id, &data).await;
    a.expect_peer_left(wb.peer_id).await;
    d.expect_silence(Duration::from_millis(300)).await;
    let mut b = two.connect().await;
    assert!(!b.join_with("r", Some(&wb.resume_token)).await.resumed);
    // c, whose queue is empty, still resumes.
    let mut c = one.connect().await;
    let back = c.join_with("r", Some(&wc.resume_token)).await;
    assert!(back.resumed);
    assert!(back.peers.contains(&wa.peer_id));
}

/// `redis-cli -p PORT ARGS…`, its output.
fn redis_cli(port: u16, args: &[&str]) -> String {
    let output = Command::new(test_support::redis_cli_program())
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn on_a_cluster_rooms_spread_over_the_shards_and_frames_use_sharded_channels() {
    let cluster = test_support::RedisCluster::start();
    let (one, two) = two_instances(&cluster.url()).await;
    let mut pairs = Vec::new();
    for room in 0..24 {
        let mut a = one.connect().await;
        let mut b = two.connect().await;
        let name = format!("room {room}");
        let wa = a.join(&name).await;
        let wb = b.join(&name).await;
        a.expect_peer_joined(wb.peer_id).await;
        b.signal(wa.peer_id, r#"{"n":1}"#).await;
        assert_eq!(a.expect_signal(wb.peer_id).await, r#"{"n":1}"#);
        pairs.push((a, b));
    }
    let ports = cluster.ports();
    // Every master holds rooms (24 rooms over three shards).
    for &port in &ports {
        let keys: u64 = redis_cli(port, &["dbsize"]).trim().parse().unwrap();
        assert!(keys > 0, "the node on port {port} holds no keys");
    }
    // Each instance reads one sharded channel; no node has a classic one,
    // which a cluster would broadcast to every node.
    let mut sharded = Vec::new();
    for &port in &ports {
        assert_eq!(redis_cli(port, &["pubsub", "channels"]).trim(), "");
        sharded.extend(
            redis_cli(port, &["pubsub", "shardchannels"])
                .lines()
                .map(str::to_owned)
                .filter(|line| !line.is_empty()),
        );
    }
    sharded.sort();
    assert_eq!(sharded.len(), 2, "{sharded:?}");
    assert!(
        sharded.iter().all(|c| c.starts_with("sig:{i:")),
        "{sharded:?}"
    );
}

/// What the pairs of an outage test share.
#[derive(Default)]
struct Outage {
    /// When Redis restarted.
    restarted: std::sync::OnceLock<Instant>,
    /// Pairs whose signals crossed since.
    recovered: std::sync::atomic::AtomicUsize,
    /// Set to end the test.
    stop: std::sync::atomic::AtomicBool,
}

/// One pair's view of an outage: a on one instance signals b on the other
/// without pause until told to stop; answers when b first heard a signal
/// after Redis restarted, and how many of a's signals were refused.
async fn signal_through_an_outage(
    mut a: Client,
    mut b: Client,
    to: PeerId,
    outage: std::sync::Arc<Outage>,
) -> (Option<Instant>, usize) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut recovered = None;
    let mut refused = 0;
    let mut n = 0u64;
    while !outage.stop.load(Relaxed) {
        n += 1;
        a.signal(to, &format!(r#"{{"n":{n}}}"#)).await;
        while let Some(received) = a.next_within(Duration::from_millis(1)).await {
            match received {
                Received::Message(ServerMessage::Error {
                    code: ErrorCode::Internal,
                    ..
                }) => refused += 1,
                Received::Closed(close) => panic!("a's connection closed: {close:?}"),
                other => panic!("a got {other:?}"),
            }
        }
        match b.next_within(Duration::from_millis(20)).await {
            Some(Received::Message(ServerMessage::Signal { .. }))
                if outage.restarted.get().is_some() && recovered.is_none() =>
            {
                recovered = Some(Instant::now());
                outage.recovered.fetch_add(1, Relaxed);
            }
            Some(Received::Message(ServerMessage::Signal { .. })) => {}
            Some(Received::Closed(close)) => panic!("b's connection closed: {close:?}"),
            Some(other) => panic!("b got {other:?}"),
            None => {}
        }
    }
    (recovered, refused)
}

#[tokio::test]
async fn under_load_rooms_work_again_after_redis_restarts_empty() {
    const PAIRS: usize = 100;
    let mut redis = RedisServer::start();
    let (one, two) = two_instances(&redis.url()).await;
    let outage = std::sync::Arc::new(Outage::default());
    let mut pairs = Vec::new();
    for pair in 0..PAIRS {
        let mut a = one.connect().await;
        let mut b = two.connect().await;
        let room = format!("load {pair}");
        a.join(&room).await;
        let wb = b.join(&room).await;
        a.expect_peer_joined(wb.peer_id).await;
        pairs.push(tokio::spawn(signal_through_an_outage(
            a,
            b,
            wb.peer_id,
            outage.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Redis dies under load; both instances say so and keep every client.
    redis.kill();
    readiness_becomes(&one, 503).await;
    readiness_becomes(&two, 503).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // It comes back empty; every pair's signals must cross again.
    let since = Instant::now();
    outage.restarted.set(since).unwrap();
    redis.restart_empty();
    while outage.recovered.load(std::sync::atomic::Ordering::Relaxed) < PAIRS
        && since.elapsed() < Duration::from_secs(15)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    outage
        .stop
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let mut recoveries = Vec::new();
    let mut refused = 0;
    for pair in pairs {
        let (recovered, pair_refused) = pair.await.unwrap();
        let recovered = recovered.expect("a pair's signals never crossed again");
        recoveries.push(recovered - since);
        refused += pair_refused;
    }
    recoveries.sort();
    eprintln!(
        "{PAIRS} pairs signalling: every pair's signals crossed instances again within {:?} \
         of Redis restarting empty (median {:?}); {refused} signals refused with `internal` meanwhile",
        recoveries[PAIRS - 1],
        recoveries[PAIRS / 2]
    );
    readiness_becomes(&one, 200).await;
    readiness_becomes(&two, 200).await;
}
