//! Relay throughput across two instances sharing rooms through Redis.
//!
//! Starts a `redis-server` on a free loopback port and release builds of
//! `signaling-server` as separate processes, then runs pairs of clients that
//! ping-pong signals: each pair's first client keeps `--window` signals in
//! flight to the second, which echoes each back. Two setups, same load:
//! `memory` (one instance, no Redis: the baseline) and `redis` (two
//! instances on one Redis, every pair split across them, so every signal
//! crosses Redis: the first to a peer through a Lua script, the rest by a
//! publish on the route it learnt). Prints messages/s and round-trip
//! percentiles for each.
//!
//! ```text
//! cargo build --release -p signaling-server --bin signaling-server --example redis_relay
//! target/release/examples/redis_relay --pairs 200 --seconds 10
//! ```

// A benchmark command: failures end the run with a message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use signaling_protocol::{PeerId, ServerMessage};
use tokio::sync::Mutex;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

/// Relay throughput across two Redis-backed instances against one instance in memory.
#[derive(Debug, Parser)]
struct Args {
    /// Pairs of clients, each pair alone in its room.
    #[arg(long, default_value_t = 200)]
    pairs: usize,
    /// Signals in flight per pair.
    #[arg(long, default_value_t = 4)]
    window: usize,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Seconds measured.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// The signaling-server binary (default: next to this program, or in the
    /// directory above, where cargo puts it).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// The redis-server binary.
    #[arg(long, default_value = "/usr/bin/redis-server")]
    redis_server: PathBuf,
}

/// A child process killed when dropped (and its directory removed).
struct Proc {
    child: Child,
    dir: Option<PathBuf>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start_redis(program: &PathBuf) -> anyhow::Result<(Proc, String)> {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("redis-relay-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let child = Command::new(program)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", program.display()))?;
    let proc = Proc {
        child,
        dir: Some(dir),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("redis-server did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((proc, format!("redis://127.0.0.1:{port}/")))
}

fn start_server(program: &PathBuf, redis: Option<&str>) -> anyhow::Result<(Proc, String)> {
    let mut command = Command::new(program);
    command
        .args(["--listen", "127.0.0.1:0", "--worker-threads", "1"])
        .args([
            "--messages-per-second",
            "10000000",
            "--message-burst",
            "10000000",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(url) = redis {
        command.args(["--redis", url]);
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start {}", program.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .with_context(|| format!("unexpected first line {line:?}"))?
        .to_owned();
    Ok((Proc { child, dir: None }, format!("ws://{addr}/ws")))
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn join(url: &str, room: &str) -> anyhow::Result<(Ws, PeerId, Vec<PeerId>)> {
    let (mut ws, _) = connect_async(url).await?;
    ws.send(Message::text(format!(
        r#"{{"type":"join","room":"{room}"}}"#
    )))
    .await?;
    loop {
        let Some(frame) = ws.next().await else {
            bail!("closed before welcome");
        };
        if let Message::Text(text) = frame? {
            match ServerMessage::parse(text.as_str())? {
                ServerMessage::Welcome { peer_id, peers, .. } => return Ok((ws, peer_id, peers)),
                other => bail!("expected welcome, got {other:?}"),
            }
        }
    }
}

/// Figures shared by every pair.
#[derive(Default)]
struct Tally {
    measuring: AtomicBool,
    relayed: AtomicU64,
    rtts_us: Mutex<Vec<u32>>,
}

/// One pair: `a` keeps `window` signals in flight to `b`, which echoes them.
async fn run_pair(
    urls: (String, String),
    index: usize,
    window: usize,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let room = format!("bench-{index}-{}", std::process::id());
    let (mut a, a_id, _) = join(&urls.0, &room).await?;
    let (b, b_id, peers) = join(&urls.1, &room).await?;
    if peers != [a_id] {
        bail!("pair {index}: b sees {peers:?}, not a");
    }
    // b echoes every signal back to a.
    let echo = tokio::spawn(async move {
        let (mut tx, mut rx) = b.split();
        while let Some(Ok(frame)) = rx.next().await {
            if let Message::Text(text) = frame
                && let Ok(ServerMessage::Signal { data, .. }) = ServerMessage::parse(text.as_str())
            {
                let reply = format!(r#"{{"type":"signal","to":"{a_id}","data":{}}}"#, data.get());
                if tx.send(Message::text(reply)).await.is_err() {
                    break;
                }
            }
        }
    });
    let epoch = Instant::now();
    let signal = |at: Instant| {
        let sent = at.duration_since(epoch).as_micros();
        Message::text(format!(
            r#"{{"type":"signal","to":"{b_id}","data":{{"sent":{sent},"pad":"{}"}}}}"#,
            "x".repeat(200)
        ))
    };
    for _ in 0..window {
        a.send(signal(Instant::now())).await?;
    }
    let mut rtts = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let Ok(Some(frame)) = tokio::time::timeout(Duration::from_secs(5), a.next()).await else {
            bail!("pair {index}: no echo for 5 s");
        };
        let Message::Text(text) = frame? else {
            continue;
        };
        let ServerMessage::Signal { data, .. } = ServerMessage::parse(text.as_str())? else {
            continue;
        };
        let now = Instant::now();
        let sent: serde_json::Value = serde_json::from_str(data.get())?;
        let sent = sent["sent"].as_u64().unwrap_or(0);
        let rtt = (now.duration_since(epoch).as_micros() as u64).saturating_sub(sent);
        if tally.measuring.load(Ordering::Relaxed) {
            tally.relayed.fetch_add(2, Ordering::Relaxed);
            rtts.push(u32::try_from(rtt).unwrap_or(u32::MAX));
        }
        a.send(signal(now)).await?;
    }
    tally.rtts_us.lock().await.extend(rtts);
    echo.abort();
    Ok(())
}

/// CPU seconds (user + system) a process has used, from `/proc/PID/stat`.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after ')'.
    (ticks(11) + ticks(12)) / 100.0
}

async fn measure(
    label: &str,
    urls: (String, String),
    processes: &[(&str, u32)],
    args: &Args,
) -> anyhow::Result<()> {
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut pairs = Vec::new();
    for index in 0..args.pairs {
        pairs.push(tokio::spawn(run_pair(
            urls.clone(),
            index,
            args.window,
            tally.clone(),
            stop.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let cpu_before: Vec<f64> = processes.iter().map(|&(_, pid)| cpu_secs(pid)).collect();
    tally.measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    tally.measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_after: Vec<f64> = processes.iter().map(|&(_, pid)| cpu_secs(pid)).collect();
    stop.store(true, Ordering::Relaxed);
    for pair in pairs {
        pair.await??;
    }
    let mut rtts = std::mem::take(&mut *tally.rtts_us.lock().await);
    rtts.sort_unstable();
    let pct = |p: f64| {
        rtts.get(((rtts.len() as f64 * p) as usize).min(rtts.len().saturating_sub(1)))
            .map_or(0.0, |&us| f64::from(us) / 1000.0)
    };
    let relayed = tally.relayed.load(Ordering::Relaxed) as f64;
    println!(
        "{label:>6}: {:>8.0} messages/s relayed, round trip p50 {:.1} ms, p99 {:.1} ms ({} pairs, window {})",
        relayed / elapsed,
        pct(0.50),
        pct(0.99),
        args.pairs,
        args.window
    );
    for (i, (name, _)) in processes.iter().enumerate() {
        let cpu = cpu_after[i] - cpu_before[i];
        println!(
            "        {name}: {:.0} % of a core, {:.2} µs per relayed message",
            100.0 * cpu / elapsed,
            1e6 * cpu / relayed.max(1.0)
        );
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server_bin = match &args.server_bin {
        Some(path) => path.clone(),
        None => {
            let exe = std::env::current_exe()?;
            exe.ancestors()
                .skip(1)
                .take(2)
                .map(|dir| dir.join("signaling-server"))
                .find(|path| path.exists())
                .context("no signaling-server binary found; pass --server-bin")?
        }
    };
    {
        let (server, url) = start_server(&server_bin, None)?;
        let processes = [("instance", server.child.id())];
        measure("memory", (url.clone(), url), &processes, &args).await?;
    }
    let (redis, redis_url) = start_redis(&args.redis_server)?;
    let (one, url_one) = start_server(&server_bin, Some(&redis_url))?;
    let (two, url_two) = start_server(&server_bin, Some(&redis_url))?;
    let processes = [
        ("instance 1", one.child.id()),
        ("instance 2", two.child.id()),
        ("redis-server", redis.child.id()),
    ];
    measure("redis", (url_one, url_two), &processes, &args).await?;
    Ok(())
}
