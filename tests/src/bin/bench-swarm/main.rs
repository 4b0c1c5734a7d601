//! One file to several receivers on an impaired wire: a swarm against one
//! receiver alone and against the same receivers one after another.
//!
//! Hosts in network namespaces are joined by the project's impaired wire
//! (`e2e::wire`), every host's uplink a bottleneck of `--rate-mbit` behind a
//! drop-tail queue of one bandwidth-delay product (downlinks are not
//! limited, as on most home and office lines); one more host runs the
//! signaling server on clean links. Each run measures, one after the other:
//!
//! - **one receiver**: `peer-client send` on host 1, `receive` on host 2;
//! - **one after another**: the same for each receiver in turn, a new send
//!   (and code) each time, as a user without swarms would;
//! - **swarm**: `send --receivers N` on host 1, `receive --swarm` on hosts
//!   2..=N+1 started together; the time runs until the last one has every
//!   file verified.
//!
//! Times run from starting the receiver(s) to the last receiving process
//! exiting with the file verified, so they include each link's setup.
//!
//! Needs root (network namespaces) and release builds of `peer-client` and
//! `signaling-server` beside this program: `scripts/bench-swarm` builds all
//! three and passes its arguments on.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Parser;
use e2e::wan::WanLab;
use e2e::{Process, Stream};

/// A swarm against one receiver alone and against one receiver after
/// another, on an impaired wire whose every uplink is a bottleneck.
#[derive(Debug, Parser)]
#[command(name = "bench-swarm")]
struct Cli {
    /// Size of the file, MiB.
    #[arg(long, default_value_t = 256)]
    mib: u64,
    /// Receivers.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(2..=8))]
    receivers: u64,
    /// Rate of every host's uplink, Mbit/s.
    #[arg(long, default_value_t = 50)]
    rate_mbit: u64,
    /// Round trip between any two hosts, milliseconds.
    #[arg(long, default_value_t = 50)]
    rtt_ms: u64,
    /// Loss in each direction, percent.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Runs of each kind (the table shows medians).
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Longest any one transfer may take, seconds.
    #[arg(long, default_value_t = 900)]
    limit_secs: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let receivers = cli.receivers as usize;
    let names: Vec<String> = (0..=receivers).map(|n| format!("sw{n}")).collect();
    let lab = WanLab::new(names.iter().map(String::as_str), "swarm");
    lab.wire.set_delay(Duration::from_micros(cli.rtt_ms * 500));
    lab.wire.set_loss(cli.loss / 100.0);
    let bits = cli.rate_mbit * 1_000_000;
    lab.wire.set_rate(bits, bits / 8 * cli.rtt_ms / 1000);

    let dir = std::env::temp_dir().join(format!("bench-swarm-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("file.bin");
    std::fs::write(&file, e2e::pseudo_random((cli.mib << 20) as usize, 7))?;
    let limit = Duration::from_secs(cli.limit_secs);
    let bench = Bench {
        lab: &lab,
        dir: &dir,
        file: &file,
        limit,
    };

    let (mut alone, mut in_turn, mut swarm, mut shares) = (vec![], vec![], vec![], vec![]);
    for run in 0..cli.runs {
        let one = bench.one_to_one(run * 10, 2)?;
        eprintln!("run {run}: one receiver {one:.1} s");
        alone.push(one);
        let mut total = one;
        for host in 3..=receivers + 1 {
            total += bench.one_to_one(run * 10 + host, host)?;
        }
        eprintln!("run {run}: {receivers} one after another {total:.1} s");
        in_turn.push(total);
        let (took, share) = bench.swarm(run, receivers)?;
        eprintln!("run {run}: swarm {took:.1} s, the sender uploaded {share:.2}× the file");
        swarm.push(took);
        shares.push(share);
    }
    let _ = std::fs::remove_dir_all(&dir);

    let one = median(&mut alone);
    let mb = (cli.mib << 20) as f64 / 1e6;
    println!(
        "{} MiB to {receivers} receivers; every uplink {} Mbit/s, round trip {} ms, loss {} %; median of {}",
        cli.mib, cli.rate_mbit, cli.rtt_ms, cli.loss, cli.runs
    );
    println!();
    println!("| how | time until all hold the file | against one receiver |");
    println!("|---|---|---|");
    for (how, mut times) in [
        ("one receiver".to_owned(), alone.clone()),
        (format!("{receivers} receivers, one after another"), in_turn),
        (format!("{receivers} receivers, one swarm"), swarm),
    ] {
        let time = median(&mut times);
        println!(
            "| {how} | {time:.1} s ({:.2} MB/s each) | {:.2} |",
            mb / time,
            time / one
        );
    }
    println!();
    println!(
        "In the swarm the sender uploaded {:.2}× the file (median); the receivers passed on the rest.",
        median(&mut shares)
    );
    Ok(())
}

struct Bench<'a> {
    lab: &'a WanLab,
    dir: &'a Path,
    file: &'a Path,
    limit: Duration,
}

impl Bench<'_> {
    /// `send` on host 1 to `receive` on host `host`; seconds from starting
    /// the receiver to its exit with the file verified.
    fn one_to_one(&self, number: usize, host: usize) -> anyhow::Result<f64> {
        let code = format!("{}-swarm-bench-single", 100 + number);
        let out = self.dir.join(format!("out{host}"));
        let _ = std::fs::remove_dir_all(&out);
        let path = self.file.display().to_string();
        let mut sender =
            self.lab
                .peer_client(1, "send", "send", &["--json", "--code", &code, &path]);
        sender.wait_for(Stream::Stdout, &code, 0);
        let started = Instant::now();
        let out_arg = out.display().to_string();
        let mut receiver = self.lab.peer_client(
            host,
            "receive",
            "receive",
            &["--json", &code, "--out", &out_arg, "--yes"],
        );
        finish(&mut receiver, self.limit)?;
        let took = started.elapsed().as_secs_f64();
        let _ = sender.wait_exit_within(Duration::from_secs(10));
        self.check(&out)?;
        Ok(took)
    }

    /// `send --receivers N` on host 1, `receive --swarm` on hosts 2..=N+1;
    /// seconds until the last receiver exits, and the sender's upload as a
    /// multiple of the file.
    fn swarm(&self, run: usize, receivers: usize) -> anyhow::Result<(f64, f64)> {
        let code = format!("{}-swarm-bench-many", 200 + run);
        let path = self.file.display().to_string();
        let count = receivers.to_string();
        let mut sender = self.lab.peer_client(
            1,
            "send",
            "send",
            &["--json", "--receivers", &count, "--code", &code, &path],
        );
        sender.wait_for(Stream::Stdout, &code, 0);
        let started = Instant::now();
        let outs: Vec<_> = (2..=receivers + 1)
            .map(|host| self.dir.join(format!("swarm{host}")))
            .collect();
        let mut running: Vec<Process> = outs
            .iter()
            .enumerate()
            .map(|(i, out)| {
                let _ = std::fs::remove_dir_all(out);
                let out_arg = out.display().to_string();
                self.lab.peer_client(
                    i + 2,
                    "receive",
                    "receive",
                    &["--json", "--swarm", &code, "--out", &out_arg, "--yes"],
                )
            })
            .collect();
        for receiver in &mut running {
            finish(receiver, self.limit)?;
        }
        let took = started.elapsed().as_secs_f64();
        finish(&mut sender, Duration::from_secs(30))?;
        let done = sender.wait_for(Stream::Stdout, "\"event\":\"done\"", 0);
        let field = |name: &str| -> f64 {
            done.split(&format!("\"{name}\":"))
                .nth(1)
                .and_then(|rest| rest.split([',', '}']).next())
                .and_then(|value| value.parse().ok())
                .unwrap_or(f64::NAN)
        };
        for out in &outs {
            self.check(out)?;
        }
        Ok((took, field("uploaded_bytes") / field("total_bytes")))
    }

    /// The received copy is the file; removes it.
    fn check(&self, out: &Path) -> anyhow::Result<()> {
        let name = self.file.file_name().unwrap_or_default();
        if std::fs::read(out.join(name))? != std::fs::read(self.file)? {
            bail!("{} differs from the file sent", out.display());
        }
        std::fs::remove_dir_all(out)?;
        Ok(())
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

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}
