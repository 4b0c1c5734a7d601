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
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use signaling_protocol::{PeerId, ServerMessage};
use tokio::task::LocalSet;
use tokio::time::{Instant, sleep_until, timeout_at};

use crate::client::Sources;
use crate::dialect::Dialect;
use crate::inbound::{IdText, Inbound, clip, id_text};
use crate::integrity::{Integrity, get_digits, put_digits};
use crate::observed::{NamedPid, ObservedSet};
use crate::proc_stats::{CoreTimes, Proc};
use crate::report::Report;
use crate::ws::{Conn, Target, Writer};
use crate::{Common, latency_ms, run_id};

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

// Layout of the payload: {"dst":"<8>","seq":"<12>","src":"<8>","zpad":"xxx..."}.
// The keys are in sorted order, so a server that re-encodes the payload
// through a JSON tree with sorted maps (matchbox does) relays the same bytes.
const DST_AT: usize = 8;
const SEQ_AT: usize = 25;
const SRC_AT: usize = 46;
const PAD_AT: usize = 64;
const SEQ_LEN: usize = 12;
const INDEX_LEN: usize = 8;

/// A pre-encoded signal frame whose sequence number is patched in place.
struct RelayFrame {
    text: Vec<u8>,
    seq_at: usize,
    data_len: usize,
}

impl RelayFrame {
    fn new(dialect: Dialect, to: &PeerId, src: u32, dst: u32, size: usize) -> Self {
        let data = |pad: usize| {
            format!(
                r#"{{"dst":"{:08}","seq":"{:012}","src":"{:08}","zpad":"{}"}}"#,
                dst,
                0,
                src,
                "x".repeat(pad)
            )
        };
        let bare = dialect.signal_frame(to, &data(0)).len();
        let data = data(size.saturating_sub(bare));
        let text = dialect.signal_frame(to, &data).into_bytes();
        let data_at = text
            .windows(data.len())
            .rposition(|w| w == data.as_bytes())
            .unwrap_or_default();
        Self {
            text,
            seq_at: data_at + SEQ_AT,
            data_len: data.len(),
        }
    }

    fn set_seq(&mut self, seq: u64) {
        put_digits(&mut self.text[self.seq_at..self.seq_at + SEQ_LEN], seq);
    }

    fn queue(&mut self, wr: &mut Writer, seq: u64) {
        self.set_seq(seq);
        wr.text(&self.text);
    }

    /// The payload part of the frame, as the addressee receives it.
    #[cfg(test)]
    fn data(&self) -> &[u8] {
        let at = self.seq_at - SEQ_AT;
        &self.text[at..at + self.data_len]
    }
}

/// The checked fields of a payload.
struct Payload {
    seq: u64,
    src: u32,
    dst: u32,
}

/// Reads a payload, or `None` if it is not exactly what a client sends.
fn decode(data: &[u8], data_len: usize) -> Option<Payload> {
    if data.len() != data_len
        || data_len < PAD_AT + 2
        || !data.starts_with(br#"{"dst":""#)
        || &data[DST_AT + INDEX_LEN..SEQ_AT] != br#"","seq":""#
        || &data[SEQ_AT + SEQ_LEN..SRC_AT] != br#"","src":""#
        || &data[SRC_AT + INDEX_LEN..PAD_AT] != br#"","zpad":""#
        || !data.ends_with(br#""}"#)
        || !data[PAD_AT..data.len() - 2].iter().all(|&b| b == b'x')
    {
        return None;
    }
    Some(Payload {
        seq: get_digits(&data[SEQ_AT..SEQ_AT + SEQ_LEN])?,
        src: u32::try_from(get_digits(&data[SRC_AT..SRC_AT + INDEX_LEN])?).ok()?,
        dst: u32::try_from(get_digits(&data[DST_AT..DST_AT + INDEX_LEN])?).ok()?,
    })
}

/// When the phases of a run begin; the same for every worker thread.
#[derive(Debug, Clone, Copy)]
struct Plan {
    start: Instant,
    measure_start: Instant,
    measure_end: Instant,
    deadline: Instant,
}

/// State shared by the tasks of one worker thread.
struct Shared {
    sending: Cell<bool>,
    measuring: Cell<bool>,
    relayed: Cell<u64>,
    rtt_us: RefCell<Histogram<u64>>,
}

/// What one worker thread measured.
struct WorkerResult {
    tally: Integrity,
    relayed: u64,
    rtt_us: Histogram<u64>,
}

/// Two connected clients of one room.
struct Pair {
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
fn new_histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 600_000_000, 3).context("creating a histogram")
}

/// One generator thread: sets up its pairs, waits for the plan, runs them.
fn worker(
    common: Common,
    args: RelayArgs,
    run: u64,
    pairs: std::ops::Range<usize>,
    ready: mpsc::Sender<Result<()>>,
    start: tokio::sync::oneshot::Receiver<Plan>,
) -> Result<WorkerResult> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building a runtime")?;
    let (sources, dialect) = (common.sources(), common.protocol);
    let first = common.target();
    let second = match args.peer_server {
        Some(addr) => Target {
            addr,
            path: common.path.clone(),
            tls: common.tls_ca.clone(),
        },
        None => first.clone(),
    };
    LocalSet::new().block_on(&rt, async move {
        let opened = futures_util::stream::iter(pairs.map(|index| {
            let targets = (&first, &second);
            async move { open_pair(targets, dialect, sources, run, index).await }
        }))
        .buffer_unordered(args.setup_concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<Pair>>>();
        let opened = match opened {
            Ok(opened) => {
                let _ = ready.send(Ok(()));
                opened
            }
            Err(err) => {
                let text = format!("{err:#}");
                let _ = ready.send(Err(err));
                bail!(text);
            }
        };
        let plan = start.await.context("the run was called off")?;
        let shared = Rc::new(Shared {
            sending: Cell::new(true),
            measuring: Cell::new(false),
            relayed: Cell::new(0),
            rtt_us: RefCell::new(new_histogram()?),
        });
        let clock = shared.clone();
        tokio::task::spawn_local(async move {
            sleep_until(plan.measure_start).await;
            clock.measuring.set(true);
            sleep_until(plan.measure_end).await;
            clock.measuring.set(false);
            clock.sending.set(false);
        });
        sleep_until(plan.start).await;
        let mut tasks = Vec::with_capacity(opened.len() * 2);
        for pair in opened {
            let (a, b) = (pair.index * 2, pair.index * 2 + 1);
            let to_b = RelayFrame::new(dialect, &pair.b_id, a, b, args.size);
            let to_a = RelayFrame::new(dialect, &pair.a_id, b, a, args.size);
            tasks.push(tokio::task::spawn_local(pinger(
                pair.a,
                dialect,
                (a, b, id_text(&pair.b_id)),
                to_b,
                args.window,
                shared.clone(),
                plan.deadline,
            )));
            tasks.push(tokio::task::spawn_local(echoer(
                pair.b,
                dialect,
                (b, a, id_text(&pair.a_id)),
                to_a,
                shared.clone(),
                plan.deadline + Duration::from_secs(2),
            )));
        }
        let mut tally = Integrity::default();
        for task in tasks {
            tally.merge(task.await.context("a client task failed")?);
        }
        let rtt_us = shared.rtt_us.borrow().clone();
        Ok(WorkerResult {
            tally,
            relayed: shared.relayed.get(),
            rtt_us,
        })
    })
}

/// Connects two clients into a fresh room, the first to `first` and the second to `second`.
async fn open_pair(
    (first, second): (&Target, &Target),
    dialect: Dialect,
    sources: Sources,
    run: u64,
    index: usize,
) -> Result<Pair> {
    let room = format!("relay-{run}-{index}");
    let mut a = Conn::connect(&dialect.target(first, &room), sources.pick(index * 2)).await?;
    let a_id = dialect.join(&mut a, &room).await?;
    let mut b = Conn::connect(&dialect.target(second, &room), sources.pick(index * 2 + 1)).await?;
    let b_id = dialect.join(&mut b, &room).await?;
    dialect.expect_peer_joined(&mut a, b_id).await?;
    Ok(Pair {
        a,
        a_id,
        b,
        b_id,
        index: u32::try_from(index).context("too many pairs")?,
    })
}

/// Who a client is: (own index, partner index, partner id).
type Roles = (u32, u32, IdText);

/// The client that sends: keeps `window` signals in flight and times each round trip.
async fn pinger(
    mut conn: Conn,
    dialect: Dialect,
    roles: Roles,
    mut frame: RelayFrame,
    window: usize,
    shared: Rc<Shared>,
    deadline: Instant,
) -> Integrity {
    let (me, ..) = roles;
    let mut tally = Integrity::default();
    let mut outstanding: Vec<(u64, Instant)> = Vec::with_capacity(window);
    let mut next_seq = 0u64;
    let result: Result<()> = async {
        let now = Instant::now();
        for _ in 0..window {
            frame.queue(&mut conn.wr, next_seq);
            outstanding.push((next_seq, now));
            next_seq += 1;
            tally.sent += 1;
        }
        conn.flush().await?;
        while shared.sending.get() || !outstanding.is_empty() {
            let Ok(read) = timeout_at(deadline, conn.fill()).await else {
                tally.fault(format!(
                    "client {me}: {} signal(s) never came back",
                    outstanding.len()
                ));
                break;
            };
            if read? == 0 {
                bail!("server closed the connection");
            }
            let now = Instant::now();
            let measuring = shared.measuring.get();
            let sending = shared.sending.get();
            while let Some(text) = conn.next_text(&mut tally)? {
                let (from, data) = match dialect.read(text)? {
                    Inbound::Signal { from, data } => (from, data),
                    Inbound::Other(msg) => {
                        other_message(&mut tally, msg, me);
                        continue;
                    }
                };
                let Some(payload) = accept_signal(&mut tally, &roles, &from, &data, frame.data_len)
                else {
                    continue;
                };
                let Some(at) = outstanding.iter().position(|(seq, _)| *seq == payload.seq) else {
                    if payload.seq < next_seq {
                        tally.duplicated += 1;
                    } else {
                        tally.corrupt += 1;
                    }
                    continue;
                };
                let (_, sent_at) = outstanding.swap_remove(at);
                tally.received += 1;
                if measuring {
                    shared.relayed.set(shared.relayed.get() + 1);
                    let micros = now.saturating_duration_since(sent_at).as_micros();
                    let _ = shared
                        .rtt_us
                        .borrow_mut()
                        .record(u64::try_from(micros).unwrap_or(u64::MAX).max(1));
                }
                if sending {
                    frame.queue(&mut conn.wr, next_seq);
                    outstanding.push((next_seq, now));
                    next_seq += 1;
                    tally.sent += 1;
                }
            }
            conn.flush().await?;
        }
        Ok(())
    }
    .await;
    tally.lost += outstanding.len() as u64;
    if let Err(err) = result {
        tally.fault(format!("client {me}: {err:#}"));
        return tally;
    }
    if let Err(err) = dialect.close(conn).await {
        tally.fault(format!("client {me} closing: {err:#}"));
    }
    tally
}

/// The client that answers: echoes every signal back, checking order, until its partner leaves.
async fn echoer(
    mut conn: Conn,
    dialect: Dialect,
    roles: Roles,
    mut frame: RelayFrame,
    shared: Rc<Shared>,
    deadline: Instant,
) -> Integrity {
    let (me, _, partner_id) = roles;
    let mut tally = Integrity::default();
    let partner_peer: Option<PeerId> = std::str::from_utf8(&partner_id)
        .ok()
        .and_then(|text| text.parse().ok());
    let mut expected = 0u64;
    let result: Result<()> = async {
        loop {
            let Ok(read) = timeout_at(deadline, conn.fill()).await else {
                tally.fault(format!("client {me}: partner never left"));
                return Ok(());
            };
            if read? == 0 {
                bail!("server closed the connection");
            }
            let measuring = shared.measuring.get();
            let mut partner_left = false;
            while let Some(text) = conn.next_text(&mut tally)? {
                let (from, data) = match dialect.read(text)? {
                    Inbound::Signal { from, data } => (from, data),
                    Inbound::Other(ServerMessage::PeerLeft { peer_id })
                        if Some(peer_id) == partner_peer =>
                    {
                        partner_left = true;
                        continue;
                    }
                    Inbound::Other(msg) => {
                        other_message(&mut tally, msg, me);
                        continue;
                    }
                };
                let Some(payload) = accept_signal(&mut tally, &roles, &from, &data, frame.data_len)
                else {
                    continue;
                };
                if payload.seq < expected {
                    tally.duplicated += 1;
                    continue;
                }
                if payload.seq > expected {
                    tally.out_of_order += 1;
                }
                expected = payload.seq + 1;
                tally.received += 1;
                if measuring {
                    shared.relayed.set(shared.relayed.get() + 1);
                }
                frame.queue(&mut conn.wr, payload.seq);
                tally.sent += 1;
            }
            conn.flush().await?;
            if partner_left {
                return Ok(());
            }
        }
    }
    .await;
    if let Err(err) = result {
        tally.fault(format!("client {me}: {err:#}"));
        return tally;
    }
    if let Err(err) = dialect.close(conn).await {
        tally.fault(format!("client {me} closing: {err:#}"));
    }
    tally
}

/// The payload of an intact signal from the partner to this client; `None`
/// once it is counted as corrupt or misrouted.
fn accept_signal(
    tally: &mut Integrity,
    (me, partner, partner_id): &Roles,
    from: &IdText,
    data: &[u8],
    data_len: usize,
) -> Option<Payload> {
    let Some(payload) = decode(data, data_len) else {
        tally.corrupt += 1;
        return None;
    };
    if from != partner_id || payload.src != *partner || payload.dst != *me {
        tally.misrouted += 1;
        return None;
    }
    Some(payload)
}

/// Accounts for a message that is not a signal.
fn other_message(tally: &mut Integrity, msg: ServerMessage, me: u32) {
    match msg {
        ServerMessage::Error { code, .. } => tally.server_error(code),
        other => tally.fault(format!(
            "client {me}: unexpected {}",
            clip(&other.to_json())
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_the_asked_size_and_decode() {
        let to = PeerId::random();
        let mut frame = RelayFrame::new(Dialect::Native, &to, 7, 8, 300);
        assert_eq!(frame.text.len(), 300);
        frame.set_seq(123_456);
        let text = std::str::from_utf8(&frame.text).unwrap();
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(value["to"], to.to_string());
        assert_eq!(value["data"]["seq"], "000000123456");
        let payload = decode(frame.data(), frame.data_len).unwrap();
        assert_eq!((payload.seq, payload.src, payload.dst), (123_456, 7, 8));
    }

    #[test]
    fn altered_payloads_do_not_decode() {
        let frame = RelayFrame::new(Dialect::Native, &PeerId::random(), 1, 2, 300);
        let data = std::str::from_utf8(frame.data()).unwrap();
        assert!(decode(data.as_bytes(), frame.data_len).is_some());
        let flipped = data.replacen("xx", "xy", 1);
        assert!(decode(flipped.as_bytes(), frame.data_len).is_none());
        assert!(decode(&data.as_bytes()[1..], frame.data_len).is_none());
    }
}
