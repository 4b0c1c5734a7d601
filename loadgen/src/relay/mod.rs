//! `relay`: pairs of clients ping-pong signals through the server.
//!
//! Each pair sits alone in its own room. The first client keeps `window`
//! signals in flight to the second, which echoes each one back; every echo
//! that returns releases the next signal. A signal carries its sequence
//! number and the indices of its sender and addressee, so each arrival is
//! checked: right addressee, right `from`, payload intact, in order, not seen
//! before. Signals still outstanding when the run ends are lost.
//!
//! With `--peer-server`, the second client of every pair connects to another
//! instance sharing rooms with the first (through Redis), so every signal
//! and every echo crosses from one instance to the other.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use hdrhistogram::Histogram;
use signaling_protocol::PeerId;
use tokio::time::Instant;

use crate::common::{Common, run_id};
use crate::integrity::Integrity;
use crate::observed::{NamedPid, ObservedSet};
use crate::proc_stats::{CoreTimes, Proc};
use crate::report::Report;
use crate::report::latency_ms;
use crate::ws::Conn;

mod frame;
mod worker;

use worker::worker;

/// Options of the `relay` scenario.
#[derive(clap::Args, Debug, Clone)]
pub struct RelayArgs {
    /// Pairs of clients, each pair alone in its own room.
    #[arg(long, default_value_t = 500)]
    pub pairs: usize,
    /// Signals in flight per pair.
    #[arg(long, default_value_t = 4)]
    pub window: usize,
    /// Size in bytes of each signal frame as a client sends it.
    #[arg(long, default_value_t = 300)]
    pub size: usize,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds allowed for signals still in flight to arrive once the load stops.
    #[arg(long, default_value_t = 5.0)]
    pub drain: f64,
    /// Generator threads, each with its own single-threaded runtime.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Pairs being set up at the same time.
    #[arg(long, default_value_t = 100)]
    pub setup_concurrency: usize,
    /// Address of a second server instance that shares rooms with `--server`
    /// (e.g. both started with the same `--redis`). The first client of every
    /// pair connects to `--server`, the second to this one, so every signal
    /// crosses instances.
    #[arg(long)]
    pub peer_server: Option<SocketAddr>,
    /// Process id of the `--peer-server` instance, to report its CPU time per message.
    #[arg(long, requires = "peer_server")]
    pub peer_server_pid: Option<u32>,
    /// Another process whose CPU time per message to report, as NAME=PID
    /// (e.g. `redis=1234`); may be given several times.
    #[arg(long = "watch-pid", value_name = "NAME=PID")]
    pub watch_pids: Vec<NamedPid>,
}

/// When the phases of a run begin; the same for every worker thread.
#[derive(Debug, Clone, Copy)]
pub(super) struct Plan {
    start: Instant,
    measure_start: Instant,
    measure_end: Instant,
    deadline: Instant,
}

/// State shared by the tasks of one worker thread.
pub(super) struct Shared {
    sending: Cell<bool>,
    measuring: Cell<bool>,
    relayed: Cell<u64>,
    rtt_us: RefCell<Histogram<u64>>,
}

/// What one worker thread measured.
pub(super) struct WorkerResult {
    tally: Integrity,
    relayed: u64,
    rtt_us: Histogram<u64>,
}

/// Two connected clients of one room.
pub(super) struct Pair {
    a: Conn,
    a_id: PeerId,
    b: Conn,
    b_id: PeerId,
    index: u32,
}

/// Runs the scenario and prints its figures; returns whether every signal checked out.
pub fn run(common: &Common, args: &RelayArgs) -> Result<bool> {
    ensure!(
        args.pairs > 0 && args.window > 0,
        "need at least one pair and a window of at least 1"
    );
    ensure!(
        args.warmup >= 0.0 && args.duration > 0.0 && args.drain >= 0.0,
        "durations must be positive"
    );
    let mut report = Report::new("relay", common.json);
    report.line(format!(
        "relay: {} pairs, {} signals of {} bytes in flight per pair, {} s warm-up, {} s measured, {} generator thread(s)",
        args.pairs, args.window, args.size, args.warmup, args.duration, args.threads
    ));
    if let Some(peer) = args.peer_server {
        report.line(format!(
            "  across two instances: first client of each pair on {}, second on {peer}",
            common.server
        ));
        report.set("server", common.server.to_string());
        report.set("peer_server", peer.to_string());
    }
    let threads = args.threads.clamp(1, args.pairs);
    let run = run_id();
    let (ready_tx, ready_rx) = mpsc::channel();
    let mut starts = Vec::new();
    let mut workers = Vec::new();
    for t in 0..threads {
        let first = args.pairs * t / threads;
        let last = args.pairs * (t + 1) / threads;
        let (start_tx, start_rx) = tokio::sync::oneshot::channel();
        starts.push(start_tx);
        let ready = ready_tx.clone();
        let common = common.clone();
        let args = args.clone();
        let worker = std::thread::Builder::new()
            .name(format!("relay-{t}"))
            .spawn(move || worker(common, args, run, first..last, ready, start_rx))
            .context("starting a generator thread")?;
        workers.push(worker);
    }
    drop(ready_tx);
    let setup_began = Instant::now();
    for _ in 0..threads {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => return Err(err.context("setting up the pairs")),
            Err(_) => bail!("a generator thread ended during setup"),
        }
    }
    report.line(format!(
        "  set up {} connections in {:.2} s",
        args.pairs * 2,
        setup_began.elapsed().as_secs_f64()
    ));
    let start = Instant::now() + Duration::from_millis(50);
    let plan = Plan {
        start,
        measure_start: start + Duration::from_secs_f64(args.warmup),
        measure_end: start + Duration::from_secs_f64(args.warmup + args.duration),
        deadline: start + Duration::from_secs_f64(args.warmup + args.duration + args.drain),
    };
    for start_tx in starts {
        // A worker that went away reports its error when joined.
        let _ = start_tx.send(plan);
    }
    let mut observed = ObservedSet::new(common.server_pid, args.peer_server_pid, &args.watch_pids);
    std::thread::sleep(plan.measure_start.saturating_duration_since(Instant::now()));
    observed.start()?;
    let own_before = Proc::Own.cpu_secs()?;
    let cores_before = CoreTimes::read()?;
    let measured_from = Instant::now();
    std::thread::sleep(plan.measure_end.saturating_duration_since(Instant::now()));
    observed.stop()?;
    let own_after = Proc::Own.cpu_secs()?;
    let cores_after = CoreTimes::read()?;
    let measured = measured_from.elapsed().as_secs_f64();

    let mut tally = Integrity::default();
    let mut relayed = 0;
    let mut rtt_us = new_histogram()?;
    for worker in workers {
        let result = worker
            .join()
            .map_err(|_| anyhow!("a generator thread panicked"))??;
        tally.merge(result.tally);
        relayed += result.relayed;
        rtt_us
            .add(&result.rtt_us)
            .context("merging latency histograms")?;
    }

    let rate = relayed as f64 / measured;
    report.line(format!(
        "  relayed: {rate:.0} messages/s ({relayed} in {measured:.2} s)"
    ));
    report.line(format!(
        "  round trip: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        latency_ms(&rtt_us, 50.0),
        latency_ms(&rtt_us, 90.0),
        latency_ms(&rtt_us, 99.0),
        latency_ms(&rtt_us, 99.9),
        rtt_us.max() as f64 / 1000.0
    ));
    report.set("pairs", args.pairs);
    report.set("window", args.window);
    report.set("size_bytes", args.size);
    report.set("seconds", measured);
    report.set("messages_relayed", relayed);
    report.set("messages_per_sec", rate);
    report.set("rtt_p50_ms", latency_ms(&rtt_us, 50.0));
    report.set("rtt_p99_ms", latency_ms(&rtt_us, 99.0));
    report.set("rtt_max_ms", rtt_us.max() as f64 / 1000.0);
    observed.report(&mut report, relayed, measured);
    let own = own_after - own_before;
    report.line(format!(
        "  generator CPU: {:.0} % of a core ({:.2} µs per message)",
        own / measured * 100.0,
        own * 1e6 / relayed.max(1) as f64
    ));
    report.set("generator_cpu_share", own / measured);
    report.cores(
        &cores_before,
        &cores_after,
        observed.total_cpu(),
        own,
        measured,
    );
    let clean = tally.is_clean();
    report.check(&tally, clean);
    report.finish();
    Ok(clean)
}

/// A latency histogram in microseconds, 1 µs to 10 minutes, 3 significant figures.
pub(super) fn new_histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 600_000_000, 3).context("creating a histogram")
}
