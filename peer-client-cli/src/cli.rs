//! The command line's shape (clap derive) and the dispatch to one module per
//! subcommand. `main.rs` parses it and calls [`run`].

use clap::{Parser, Subcommand};

use crate::args::RoomArgs;
use crate::bench::BenchArgs;
use crate::chat::ChatArgs;
use crate::receive::ReceiveArgs;
use crate::send::SendArgs;
use crate::{bench, bench_peer, chat, echo, receive, send};

/// Peer-to-peer data channels through a signaling server: file transfer,
/// chat, echo, benchmarks.
#[derive(Debug, Parser)]
#[command(name = "peer-client", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Chat with everyone in a room: lines typed on stdin go to every peer,
    /// received lines are printed as `NAME: text`; joins, leaves and link
    /// state go to stderr.
    Chat(ChatArgs),
    /// A bot that sends every text message it receives back to its sender.
    Echo(RoomArgs),
    /// Measure connection setup, throughput and idle traffic between two
    /// peers over loopback, this process and a child process (or both in
    /// this one with --one-process); no server needed.
    Bench(BenchArgs),
    /// Serve throughput tests in a room, so a browser page or another peer
    /// can measure a bare data channel to this machine: it counts what a
    /// peer sends on a `bench-up` channel and sends what a peer asks for
    /// (`{"bytes":N}`) on a `bench-down` channel.
    BenchPeer(RoomArgs),
    /// Send files and directories: prints a code phrase, then waits for the
    /// receiver. Authenticated end to end; resumes if run again.
    Send(SendArgs),
    /// Receive what a sender offers under a code phrase.
    Receive(ReceiveArgs),
}

/// Runs a parsed command line.
///
/// Each command's work runs on a runtime worker, not on the main thread that `block_on` polls: a
/// sender waiting for room in its channel is woken at every pass of the connection's driver, and
/// waking the main thread costs a futex call and a context switch each time. `bench-peer` spawns
/// its senders itself.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Chat(args) => tokio::spawn(chat::run(args)).await?,
        Command::Echo(args) => tokio::spawn(echo::run(args)).await?,
        Command::Bench(args) => tokio::spawn(bench::run(args)).await?,
        Command::BenchPeer(args) => bench_peer::run(args).await,
        Command::Send(args) => tokio::spawn(send::run(args)).await?,
        Command::Receive(args) => tokio::spawn(receive::run(args)).await?,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
