//! The hosts, the wire between them and the server, and one measured run
//! of each kind in a cell.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::bail;
use e2e::wan::WanLab;
use e2e::{Process, Stream};

use crate::Grid;

/// One cell of the grid.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cell {
    pub(crate) rtt_ms: u64,
    pub(crate) loss_percent: f64,
}

/// IPv4 and TCP headers without options: an MSS this much below the MTU fills it.
const TCP_IP_HEADERS: u32 = 40;

/// The hosts, the wire between them and the signaling server, a temp dir.
pub(crate) struct Lab {
    wan: WanLab,
    pub(crate) dir: PathBuf,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Lab {
    pub(crate) fn new() -> anyhow::Result<Self> {
        let wan = WanLab::new(["snd", "rcv"], "wan");
        let dir = std::env::temp_dir().join(format!("bench-wan-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Self { wan, dir })
    }

    pub(crate) fn impair(&self, cell: Cell, grid: &Grid) {
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
    pub(crate) fn tcp(
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
    pub(crate) fn tcp_flow(
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
    pub(crate) fn alongside_tcp<T>(
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
    pub(crate) fn transfer(
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
