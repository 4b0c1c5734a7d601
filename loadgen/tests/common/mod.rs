//! Helpers shared by the loadgen tests: settings for a real signaling server
//! on a loopback port (started by `test-support`), and running the loadgen
//! binary against it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use signaling_server::Config;

/// The longest one loadgen run may take.
const RUN_LIMIT: Duration = Duration::from_secs(90);

pub use test_support::TestServer;

/// A server on a free loopback port whose rate limits stay out of the way.
pub fn config() -> Config {
    Config {
        listen: "127.0.0.1:0".into(),
        messages_per_second: 10_000_000,
        message_burst: 10_000_000,
        // The load comes from one address.
        max_pending_per_address: 0,
        max_connections_per_address: 0,
        connection_rate_per_address: 0,
        shutdown_timeout: Duration::from_secs(2),
        ..Config::default()
    }
}

/// Runs loadgen with `--json`; returns whether it succeeded, its exit code and its figures.
pub fn loadgen(server: &TestServer, args: &[&str]) -> (Option<i32>, serde_json::Value) {
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

/// Asserts that loadgen exited 0 with every signal accounted for.
pub fn assert_clean(args: &[&str], code: Option<i32>, figures: &serde_json::Value) {
    assert_eq!(code, Some(0), "loadgen {args:?}: {figures:#}");
    assert_eq!(figures["integrity"]["clean"], true, "{figures:#}");
}
