//! loadgen against a real signaling server on a loopback port: every scenario
//! passes its checks, and signals the server refuses make loadgen fail.

// Test helpers: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use signaling_server::{Config, Server};
use tokio::sync::oneshot;

/// The longest one loadgen run may take.
const RUN_LIMIT: Duration = Duration::from_secs(90);

/// A server running on its own thread until dropped.
struct TestServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    fn start(config: Config) -> Self {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let server = Server::bind(config).await.unwrap();
                addr_tx.send(server.local_addr()).unwrap();
                server
                    .run(async move {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn config() -> Config {
    Config {
        listen: "127.0.0.1:0".into(),
        messages_per_second: 10_000_000,
        message_burst: 10_000_000,
        shutdown_timeout: Duration::from_secs(2),
        ..Config::default()
    }
}

/// Runs loadgen with `--json`; returns whether it succeeded, its exit code and its figures.
fn loadgen(server: &TestServer, args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let pid = std::process::id().to_string();
    let addr = server.addr.to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--server", &addr, "--server-pid", &pid, "--json"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let began = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if began.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            panic!("loadgen {args:?} did not finish within {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let figures = serde_json::from_str(stdout.trim()).unwrap_or_else(|err| {
        panic!("loadgen {args:?} printed no JSON ({err}); stderr:\n{stderr}")
    });
    (output.status.code(), figures)
}

fn assert_clean(args: &[&str], code: Option<i32>, figures: &serde_json::Value) {
    assert_eq!(code, Some(0), "loadgen {args:?}: {figures:#}");
    assert_eq!(figures["integrity"]["clean"], true, "{figures:#}");
}

#[test]
fn every_scenario_passes_against_the_server() {
    let server = TestServer::start(config());

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
    ];
    let (code, figures) = loadgen(&server, &relay);
    assert_clean(&relay, code, &figures);
    assert!(
        figures["messages_relayed"].as_u64().unwrap() > 0,
        "{figures:#}"
    );
    let integrity = &figures["integrity"];
    assert_eq!(integrity["sent"], integrity["received"], "{figures:#}");

    let sessions = ["sessions", "--concurrency", "4", "--duration", "1"];
    let (code, figures) = loadgen(&server, &sessions);
    assert_clean(&sessions, code, &figures);
    assert!(figures["sessions"].as_u64().unwrap() > 0, "{figures:#}");

    // The server shares this test's process, so its memory is not the
    // server's alone: the memory verdict is switched off here.
    let soak = [
        "soak",
        "--sessions",
        "150",
        "--rounds",
        "1",
        "--hold",
        "0.1",
        "--settle",
        "0.1",
        "--rss-tolerance-pct",
        "100",
    ];
    let (code, figures) = loadgen(&server, &soak);
    assert_clean(&soak, code, &figures);
    assert_eq!(figures["sessions"], 150, "{figures:#}");
    assert_eq!(figures["rounds"][0]["sessions"], 150, "{figures:#}");

    let idle = [
        "idle",
        "--connections",
        "100",
        "--hold",
        "0.3",
        "--settle",
        "0.1",
    ];
    let (code, figures) = loadgen(&server, &idle);
    assert_clean(&idle, code, &figures);
    assert_eq!(figures["connections"], 100, "{figures:#}");
}

#[test]
fn refused_signals_fail_the_run() {
    // The server's rate limit refuses most of the load: loadgen must notice and fail.
    let server = TestServer::start(Config {
        messages_per_second: 20,
        message_burst: 5,
        ..config()
    });
    let relay = [
        "relay",
        "--pairs",
        "2",
        "--warmup",
        "0",
        "--duration",
        "1",
        "--drain",
        "1",
    ];
    let (code, figures) = loadgen(&server, &relay);
    assert_eq!(code, Some(1), "{figures:#}");
    assert_eq!(figures["integrity"]["clean"], false, "{figures:#}");
    assert!(
        figures["integrity"]["server_errors"]["rate_limited"]
            .as_u64()
            .unwrap()
            > 0,
        "{figures:#}"
    );
}
