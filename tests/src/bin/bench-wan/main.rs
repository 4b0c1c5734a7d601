//! The data channel against Linux TCP on an impaired wire, cell by cell.
//!
//! Two hosts (network namespaces) are joined by the project's impaired wire
//! (`e2e::wire`); a third host runs the signaling server on clean links. For
//! each round trip × loss cell, each run moves the same bytes twice, one right
//! after the other: a plain TCP connection (the kernel's default congestion
//! control and buffers) and a `peer-client send` / `receive`. Both times run
//! from starting the receiving side (TCP: the connecting sender) to the
//! receiving process exiting with every byte, so the data channel's time
//! includes its ICE, DTLS, SCTP and key exchange. Prints a Markdown table of
//! medians and their ratio.
//!
//! Needs root (network namespaces) and release builds of `peer-client` and
//! `signaling-server` beside this program: `scripts/bench-wan` builds all
//! three and passes its arguments on.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

mod grid;
mod lab;
mod tcp;

use grid::run_grid;
use tcp::{tcp_receive, tcp_send};

/// The data channel (`peer-client send` / `receive`) against Linux TCP on
/// an impaired wire: delay, loss, and optionally a bottleneck rate and a
/// small MTU. Prints a table of median rates and their ratio.
#[derive(Debug, Parser)]
#[command(name = "bench-wan")]
struct Cli {
    #[command(subcommand)]
    helper: Option<Helper>,
    #[command(flatten)]
    grid: Grid,
}

/// Which cells to run and how.
#[derive(Debug, Args)]
struct Grid {
    /// Round trips to try, in milliseconds.
    #[arg(
        long,
        value_name = "MS",
        value_delimiter = ',',
        default_value = "20,50,100,200"
    )]
    rtt_ms: Vec<u64>,
    /// Loss in each direction to try with every round trip, in percent.
    #[arg(
        long,
        value_name = "PERCENT",
        value_delimiter = ',',
        default_value = "0,0.1,1,2"
    )]
    loss: Vec<f64>,
    /// Further cells as RTT_MS:LOSS_PERCENT.
    #[arg(
        long,
        value_name = "CELL",
        value_delimiter = ',',
        default_value = "100:5"
    )]
    also: Vec<String>,
    /// Runs per cell; the table shows medians.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Bytes per transfer, in MiB, the same in every cell. Default: what TCP
    /// moves in --seconds in that cell, measured by a TCP flow of half that
    /// time before the cell's runs.
    #[arg(long)]
    mib: Option<u64>,
    /// How long each cell's transfers should take TCP, so that its slow start
    /// is a small part of the time (see --mib).
    #[arg(long, value_name = "SECS", default_value_t = 20)]
    seconds: u64,
    /// Upper bound on the bytes per transfer, in MiB.
    #[arg(long, default_value_t = 512)]
    max_mib: u64,
    /// Socket buffer `peer-client` asks for (e.g. 212992, what a desktop
    /// kernel's `net.core.rmem_max` grants); default: its own.
    #[arg(long, value_name = "BYTES")]
    socket_buffer: Option<usize>,
    /// Bottleneck rate of the wire in Mbit/s (a drop-tail queue in front).
    #[arg(long, value_name = "MBIT")]
    rate_mbit: Option<u64>,
    /// Bottleneck queue, in bandwidth-delay products of each cell.
    #[arg(long, value_name = "BDP", default_value_t = 1.0)]
    queue_bdp: f64,
    /// Largest IP packet the wire carries; larger ones are lost without an ICMP
    /// error (a black hole). TCP is given the matching MSS, as a tunnel that
    /// clamps it would, so it does not stall on the same path.
    #[arg(long, value_name = "BYTES")]
    mtu: Option<u32>,
    /// TCP congestion control of both hosts (`net.ipv4.tcp_congestion_control`).
    #[arg(long, value_name = "NAME", default_value = "cubic")]
    tcp_congestion_control: String,
    /// A transfer still running after this long counts as failed.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    timeout_secs: u64,
    /// Run each transfer alongside a TCP flow started with it (with
    /// --rate-mbit: how the two share a bottleneck), and carry half of what
    /// TCP alone moves in --seconds. Each run then also puts a second TCP flow
    /// in the transfer's place, the anchor for what a fair share looks like.
    #[arg(long)]
    share_with_tcp: bool,
    /// Print both programs' logs when a transfer spent longer than this
    /// outside its data phase (setting up, and closing after it), in seconds.
    #[arg(long, value_name = "SECS")]
    show_overhead: Option<f64>,
}

/// Parts this program runs inside the hosts' namespaces.
#[derive(Debug, Subcommand)]
enum Helper {
    /// Accept one TCP connection on ADDR, read it to its end, print the byte
    /// count, and every 100 ms the count so far.
    /// With MSS, announce that segment size, so the sender's packets are at
    /// most MSS + 40 bytes.
    #[command(hide = true)]
    TcpReceive {
        addr: String,
        #[arg(long)]
        mss: Option<u32>,
    },
    /// Connect to ADDR with congestion control CC and send BYTES (0: as much
    /// as it can for SECS seconds), then wait for the receiver to close.
    #[command(hide = true)]
    TcpSend {
        addr: String,
        bytes: u64,
        cc: String,
        secs: u64,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.helper {
        Some(Helper::TcpReceive { addr, mss }) => tcp_receive(&addr, mss),
        Some(Helper::TcpSend {
            addr,
            bytes,
            cc,
            secs,
        }) => tcp_send(&addr, bytes, &cc, Duration::from_secs(secs)),
        None => run_grid(&cli.grid),
    }
}
