//! Load generator for the signaling server.
//!
//! Scenarios: `relay` (throughput and round-trip latency of relayed signals),
//! `idle` (memory per idle connection), `sessions` (complete offer/answer
//! exchanges per second) and `soak` (many concurrent sessions, then memory
//! back to baseline). Every signal carries a sequence number and the
//! indices of its sender and addressee, and every arrival is checked; any
//! loss, duplicate or misrouted signal is reported and the exit status is 1.
//! See docs/benchmarks.md for the method and the figures.

mod client;
mod dialect;
mod idle;
mod inbound;
mod integrity;
mod mesh;
mod observed;
mod proc_stats;
mod relay;
mod report;
mod sessions;
mod soak;
mod stream;
mod ws;

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;

use crate::client::Sources;
use crate::dialect::Dialect;
use crate::stream::TlsClient;
use crate::ws::Target;

/// Load generator for the signaling server: relay throughput and latency,
/// memory per idle connection, sessions per second, and a soak test.
/// Every signal is checked; lost, duplicated or misrouted signals make it exit with status 1.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    scenario: Scenario,
}

/// Options every scenario shares.
#[derive(clap::Args, Debug, Clone)]
pub struct Common {
    /// Address of the signaling server.
    #[arg(
        long,
        global = true,
        default_value = "127.0.0.1:8080",
        env = "LOADGEN_SERVER"
    )]
    pub server: SocketAddr,
    /// Path of the WebSocket endpoint.
    #[arg(long, global = true, default_value = "/ws")]
    pub path: String,
    /// Process id of the server, to read its CPU time and memory from /proc.
    #[arg(long, global = true)]
    pub server_pid: Option<u32>,
    /// Number of local addresses (127.0.0.2, 127.0.0.3, ...) to spread
    /// connections over when ephemeral ports run short; 1 lets the kernel choose.
    #[arg(long, global = true, default_value_t = 1)]
    pub source_ips: u8,
    /// Protocol of the server under test; `matchbox` measures matchbox_server
    /// (relay and idle only) for comparison.
    #[arg(long, global = true, value_enum, default_value_t = Dialect::Native)]
    pub protocol: Dialect,
    /// Print the figures as one JSON object on stdout (text goes to stderr).
    #[arg(long, global = true)]
    pub json: bool,
    /// Connect with TLS (`wss://`), trusting the PEM certificate in this
    /// file (the server's own, self-signed, will do).
    #[arg(long, global = true, value_name = "PEM", value_parser = TlsClient::from_arg)]
    pub tls_ca: Option<TlsClient>,
}

impl Common {
    /// The WebSocket endpoint.
    pub fn target(&self) -> Target {
        Target {
            addr: self.server,
            path: self.path.clone(),
            tls: self.tls_ca.clone(),
        }
    }

    /// The local addresses to connect from.
    pub fn sources(&self) -> Sources {
        Sources::new(self.source_ips)
    }
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// Pairs ping-pong signals through the server: messages/s, round-trip latency, server CPU per message.
    Relay(relay::RelayArgs),
    /// Holds many joined, idle connections: server memory per connection, and after they close.
    Idle(idle::IdleArgs),
    /// Clients meet, exchange offer, answer and candidates, and leave, over and over: sessions/s.
    Sessions(sessions::SessionsArgs),
    /// Many sessions negotiating at once, every signal checked; then server memory against its baseline.
    Soak(soak::SoakArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    raise_open_file_limit();
    let outcome = match &cli.scenario {
        Scenario::Relay(args) => relay::run(&cli.common, args),
        Scenario::Idle(args) => idle::run(&cli.common, args),
        Scenario::Sessions(args) => sessions::run(&cli.common, args),
        Scenario::Soak(args) => soak::run(&cli.common, args),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("loadgen: FAILED: see the lines marked CHECK FAILED or MEMORY above");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("loadgen: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Raises the soft limit on open files to the hard limit; many connections need it.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < 1024 => eprintln!("loadgen: open-file limit is only {limit}"),
        Ok(_) => {}
        Err(err) => eprintln!("loadgen: could not raise the open-file limit: {err}"),
    }
}

/// A number that tells runs apart in room names.
pub fn run_id() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64 % 1_000_000_000_000)
        .unwrap_or(0)
}

/// A percentile of a microsecond histogram, in milliseconds.
pub fn latency_ms(hist: &Histogram<u64>, percentile: f64) -> f64 {
    hist.value_at_percentile(percentile) as f64 / 1000.0
}
