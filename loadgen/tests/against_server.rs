//! loadgen against a real signaling server on a loopback port: every scenario
//! passes its checks, and signals the server refuses make loadgen fail.

// Test helpers: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestServer, assert_clean, config, loadgen};
use signaling_server::Config;

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
