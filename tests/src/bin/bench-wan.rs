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

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use e2e::wan::WanLab;
use e2e::{Process, Stream, binary, pseudo_random};
use nix::sys::socket::sockopt;

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

fn tcp_receive(addr: &str, mss: Option<u32>) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    if let Some(mss) = mss {
        nix::sys::socket::setsockopt(&listener, sockopt::TcpMaxSeg, &mss)
            .with_context(|| format!("cannot set the MSS to {mss}"))?;
    }
    println!("listening");
    std::io::stdout().flush()?;
    let (mut stream, _) = listener.accept()?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    let mut reported = Instant::now();
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if reported.elapsed() >= PROGRESS_EVERY {
            println!("at {total}");
            std::io::stdout().flush()?;
            reported = Instant::now();
        }
    }
    println!("received {total}");
    Ok(())
}

fn tcp_send(addr: &str, bytes: u64, cc: &str, limit: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).with_context(|| format!("cannot reach {addr}"))?;
    nix::sys::socket::setsockopt(&stream, sockopt::TcpCongestion, &cc.into())
        .with_context(|| format!("cannot use congestion control {cc}"))?;
    let chunk = pseudo_random(256 * 1024, 7);
    let mut left = if bytes == 0 { u64::MAX } else { bytes };
    while left > 0 && (bytes != 0 || started.elapsed() < limit) {
        let n = left.min(chunk.len() as u64) as usize;
        stream.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    stream.shutdown(Shutdown::Write)?;
    let mut rest = [0u8; 16];
    while stream.read(&mut rest)? > 0 {}
    Ok(())
}

/// One cell of the grid.
#[derive(Debug, Clone, Copy)]
struct Cell {
    rtt_ms: u64,
    loss_percent: f64,
}

/// IPv4 and TCP headers without options: an MSS this much below the MTU fills it.
const TCP_IP_HEADERS: u32 = 40;

/// How often `tcp-receive` prints the bytes it has so far.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// The hosts, the wire between them and the signaling server, a temp dir.
struct Lab {
    wan: WanLab,
    dir: PathBuf,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Lab {
    fn new() -> anyhow::Result<Self> {
        let wan = WanLab::new(["snd", "rcv"], "wan");
        let dir = std::env::temp_dir().join(format!("bench-wan-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Self { wan, dir })
    }

    fn impair(&self, cell: Cell, grid: &Grid) {
        self.wan
            .wire
            .set_delay(Duration::from_micros(cell.rtt_ms * 500));
        self.wan.wire.set_loss(cell.loss_percent / 100.0);
        if let Some(mbit) = grid.rate_mbit {
            let bits = mbit * 1_000_000;
            let bdp = bits / 8 * cell.rtt_ms / 1000;
            self.wan
                .wire
                .set_rate(bits, (bdp as f64 * grid.queue_bdp) as u64);
        }
        if let Some(mtu) = grid.mtu {
            self.wan.wire.set_mtu(mtu);
        }
    }

    /// Moves `bytes` over TCP from host 1 to host 2 (0: as many as it can in
    /// `calibrate`); the bytes moved and the seconds taken.
    fn tcp(
        &self,
        bytes: u64,
        calibrate: Duration,
        port: u16,
        grid: &Grid,
        limit: Duration,
    ) -> anyhow::Result<(u64, f64)> {
        let (mut receiver, _sender) = self.tcp_flow(port, bytes, calibrate, grid)?;
        let started = Instant::now();
        finish(&mut receiver, limit)?;
        let took = started.elapsed().as_secs_f64();
        let line = receiver.wait_for(Stream::Stdout, "received ", 0);
        let received: u64 = line.trim_start_matches("received ").trim().parse()?;
        if bytes != 0 && received != bytes {
            bail!("TCP fell short:\n{}", receiver.log());
        }
        Ok((received, took))
    }

    /// Starts a TCP flow from host 1 to host 2 on `port` carrying `bytes` (0:
    /// as many as it can for `secs`); its receiver, listening before the
    /// sender starts, and its sender.
    fn tcp_flow(
        &self,
        port: u16,
        bytes: u64,
        secs: Duration,
        grid: &Grid,
    ) -> anyhow::Result<(Process, Process)> {
        let me = std::env::current_exe()?.display().to_string();
        let addr = format!("10.9.0.2:{port}");
        let mss = grid.mtu.map(|mtu| (mtu - TCP_IP_HEADERS).to_string());
        let mut args = vec!["tcp-receive", &addr];
        if let Some(mss) = &mss {
            args.extend(["--mss", mss]);
        }
        let receiver = self.wan.hosts[1].spawn_program("tcp-receive", &me, &args);
        receiver.wait_for(Stream::Stdout, "listening", 0);
        let sender = self.wan.hosts[0].spawn_program(
            "tcp-send",
            &me,
            &[
                "tcp-send",
                &addr,
                &bytes.to_string(),
                &grid.tcp_congestion_control,
                &secs.as_secs().to_string(),
            ],
        );
        Ok((receiver, sender))
    }

    /// Runs `second` alongside a TCP flow from host 1 to host 2 that starts
    /// just before it; TCP's rate while `second` ran, and what `second` gave.
    fn alongside_tcp<T>(
        &self,
        port: u16,
        grid: &Grid,
        limit: Duration,
        second: impl FnOnce() -> anyhow::Result<T>,
    ) -> anyhow::Result<(f64, T)> {
        let (receiver, _sender) = self.tcp_flow(port, 0, limit, grid)?;
        let received_now = || -> anyhow::Result<(u64, Instant)> {
            let line = receiver.wait_for(Stream::Stdout, "at ", receiver.cursor());
            Ok((
                line.trim_start_matches("at ").trim().parse()?,
                Instant::now(),
            ))
        };
        let (before, started) = received_now()?;
        let result = second()?;
        let (after, ended) = received_now()?;
        let tcp_rate = (after - before) as f64 / 1e6 / (ended - started).as_secs_f64();
        Ok((tcp_rate, result))
    }

    /// Sends `file` with `peer-client` from host 1 to host 2; seconds taken
    /// and the rate the receiver reported for its data phase.
    fn transfer(
        &self,
        file: &Path,
        run: usize,
        grid: &Grid,
        limit: Duration,
    ) -> anyhow::Result<(f64, f64)> {
        let code = format!("{}-wan-bench-orchard", 10 + run);
        let out = self.dir.join("out");
        let _ = std::fs::remove_dir_all(&out);
        let buffer = grid.socket_buffer.map(|b| b.to_string());
        let client = |n: usize, label: &str, args: &[&str]| {
            let mut rest = vec!["--json"];
            if let Some(buffer) = &buffer {
                rest.extend(["--socket-buffer", buffer]);
            }
            rest.extend_from_slice(&args[1..]);
            self.wan.peer_client(n, label, args[0], &rest)
        };
        let path = file.display().to_string();
        let mut sender = client(1, "send", &["send", "--code", &code, &path]);
        sender.wait_for(Stream::Stdout, &code, 0);
        let started = Instant::now();
        let out_arg = out.display().to_string();
        let mut receiver = client(
            2,
            "receive",
            &["receive", &code, "--out", &out_arg, "--yes"],
        );
        finish(&mut receiver, limit)?;
        let took = started.elapsed().as_secs_f64();
        let done = receiver.wait_for(Stream::Stdout, "\"event\":\"done\"", 0);
        let reported = done
            .split("\"mb_per_s\":")
            .nth(1)
            .and_then(|rest| rest.split([',', '}']).next())
            .and_then(|rate| rate.parse().ok())
            .unwrap_or(f64::NAN);
        let _ = sender.wait_exit_within(Duration::from_secs(10));
        let overhead = took - std::fs::metadata(file)?.len() as f64 / 1e6 / reported;
        if grid.show_overhead.is_some_and(|limit| overhead > limit) {
            eprintln!(
                "{overhead:.1} s outside the data phase:\n{}{}",
                sender.log(),
                receiver.log()
            );
        }
        let _ = std::fs::remove_dir_all(&out);
        Ok((took, reported))
    }
}

/// Waits for `process` to exit successfully within `limit`.
fn finish(process: &mut Process, limit: Duration) -> anyhow::Result<()> {
    match process.wait_exit_within(limit) {
        Some(status) if status.success() => Ok(()),
        Some(status) => bail!("exited with {status}:\n{}", process.log()),
        None => bail!("still running after {limit:?}:\n{}", process.log()),
    }
}

fn cells(grid: &Grid) -> anyhow::Result<Vec<Cell>> {
    let mut cells = Vec::new();
    for &rtt_ms in &grid.rtt_ms {
        for &loss_percent in &grid.loss {
            cells.push(Cell {
                rtt_ms,
                loss_percent,
            });
        }
    }
    for extra in grid.also.iter().filter(|extra| !extra.is_empty()) {
        let Some((rtt, loss)) = extra.split_once(':') else {
            bail!("--also takes RTT_MS:LOSS_PERCENT, not {extra:?}");
        };
        cells.push(Cell {
            rtt_ms: rtt.parse().context("round trip")?,
            loss_percent: loss.parse().context("loss")?,
        });
    }
    Ok(cells)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn run_grid(grid: &Grid) -> anyhow::Result<()> {
    // Fail early, before any namespace exists, if a build is missing.
    binary("peer-client");
    binary("signaling-server");
    let cells = cells(grid)?;
    let lab = Lab::new()?;
    let limit = Duration::from_secs(grid.timeout_secs);
    let file = lab.dir.join("payload.bin");
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let mut port = 5000;
    for cell in cells {
        lab.impair(cell, grid);
        let bytes = match grid.mib {
            Some(mib) => mib * 1024 * 1024,
            None => {
                port += 1;
                let half = Duration::from_secs(grid.seconds.div_ceil(2));
                let (moved, took) = lab.tcp(0, half, port, grid, limit)?;
                let mut wanted = moved as f64 / took * grid.seconds as f64;
                if grid.share_with_tcp {
                    wanted /= 2.0;
                }
                (wanted as u64).clamp(1024 * 1024, grid.max_mib * 1024 * 1024)
            }
        };
        std::fs::write(&file, pseudo_random(bytes as usize, 11))?;
        let mb = bytes as f64 / 1e6;
        let (mut tcp, mut ours, mut reported) = (Vec::new(), Vec::new(), Vec::new());
        let mut anchors = Vec::new();
        for run in 0..grid.runs {
            port += 1;
            let (tcp_rate, result) = if grid.share_with_tcp {
                match lab.alongside_tcp(port, grid, limit, || lab.transfer(&file, run, grid, limit))
                {
                    Ok((tcp_rate, result)) => (tcp_rate, Ok(result)),
                    Err(err) => (f64::NAN, Err(err)),
                }
            } else {
                let (_, tcp_took) = lab.tcp(bytes, Duration::ZERO, port, grid, limit)?;
                (mb / tcp_took, lab.transfer(&file, run, grid, limit))
            };
            let (took, data_rate) = match result {
                Ok(result) => result,
                Err(err) => {
                    eprintln!(
                        "{} ms, {} %: the transfer failed: {err:#}",
                        cell.rtt_ms, cell.loss_percent
                    );
                    (f64::INFINITY, 0.0)
                }
            };
            let rate = mb / took;
            eprintln!(
                "{} ms, {} %, {:.1} MB, run {}: TCP {tcp_rate:.2} MB/s, transfer {rate:.2} MB/s ({data_rate:.2} MB/s after setup)",
                cell.rtt_ms,
                cell.loss_percent,
                mb,
                run + 1
            );
            if grid.share_with_tcp && data_rate > 0.0 {
                // The anchor: a second TCP flow in the transfer's place, starting as
                // late as the transfer's data did.
                let setup = Duration::from_secs_f64((took - mb / data_rate).max(0.0));
                port += 2;
                let (first, (_, second_took)) = lab.alongside_tcp(port, grid, limit, || {
                    std::thread::sleep(setup);
                    lab.tcp(bytes, Duration::ZERO, port + 1, grid, limit)
                })?;
                let second = mb / second_took;
                eprintln!(
                    "  anchor, a second TCP flow in its place (after {:.1} s): {second:.2} MB/s against the first's {first:.2} MB/s",
                    setup.as_secs_f64()
                );
                anchors.push(second / first);
            }
            tcp.push(tcp_rate);
            ours.push(rate);
            reported.push(data_rate);
        }
        let (tcp, ours, reported) = (median(&mut tcp), median(&mut ours), median(&mut reported));
        if grid.share_with_tcp {
            notes.push(format!(
                "{} ms, {} %: a second TCP flow in the transfer's place got {:.2} times the first's rate (median)",
                cell.rtt_ms,
                cell.loss_percent,
                median(&mut anchors)
            ));
        }
        rows.push(format!(
            "| {} ms | {} % | {mb:.1} MB | {tcp:.2} MB/s | {ours:.2} MB/s | {reported:.2} MB/s | {:.2} |",
            cell.rtt_ms,
            cell.loss_percent,
            ours / tcp
        ));
    }
    let mut shape = vec![
        match grid.mib {
            Some(mib) => format!("{mib} MiB per transfer"),
            None => format!("what TCP moves in about {} s per transfer", grid.seconds),
        },
        format!("median of {}", grid.runs),
        format!("TCP {}", grid.tcp_congestion_control),
    ];
    if let Some(buffer) = grid.socket_buffer {
        shape.push(format!("socket buffer {buffer} B"));
    }
    if let Some(mbit) = grid.rate_mbit {
        shape.push(format!(
            "{mbit} Mbit/s bottleneck, queue {} BDP",
            grid.queue_bdp
        ));
    }
    if let Some(mtu) = grid.mtu {
        shape.push(format!("MTU {mtu}"));
    }
    if grid.share_with_tcp {
        shape.push(
            "each transfer alongside a TCP flow; TCP's rate is while the transfer ran".into(),
        );
    }
    println!("{}", shape.join(", "));
    println!();
    println!("| round trip | loss | size | TCP | peer-client transfer | after setup | ratio |");
    println!("|---|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    if !notes.is_empty() {
        println!();
    }
    for note in notes {
        println!("{note}");
    }
    Ok(())
}
