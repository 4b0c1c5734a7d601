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
mod common;
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

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::common::Common;

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
