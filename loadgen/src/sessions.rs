//! `sessions`: clients meet in a fresh room, negotiate and leave, over and over.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use hdrhistogram::Histogram;
use tokio::task::LocalSet;
use tokio::time::Instant;

use crate::common::{Common, run_id};
use crate::dialect::Dialect;
use crate::integrity::Integrity;
use crate::mesh::{Payloads, close_room, negotiate, open_room};
use crate::proc_stats::{CoreTimes, Proc};
use crate::report::Report;
use crate::report::latency_ms;

/// Options of the `sessions` scenario.
#[derive(clap::Args, Debug, Clone)]
pub struct SessionsArgs {
    /// Rooms negotiating at the same time.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seconds measured.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Clients per room (2: one session per room).
    #[arg(long, default_value_t = 2)]
    pub room_size: usize,
    /// Size of the offer and of the answer SDP, in bytes.
    #[arg(long, default_value_t = 2000)]
    pub sdp_bytes: usize,
    /// Candidates each way per session.
    #[arg(long, default_value_t = 8)]
    pub candidates: usize,
}

/// Runs the scenario and prints its figures; returns whether every signal checked out.
pub fn run(common: &Common, args: &SessionsArgs) -> Result<bool> {
    ensure!(
        args.concurrency > 0 && args.room_size >= 2,
        "need concurrency ≥ 1 and rooms of ≥ 2"
    );
    ensure!(args.duration > 0.0, "duration must be positive");
    ensure!(
        common.protocol == Dialect::Native,
        "sessions speaks only this project's protocol"
    );
    let mut report = Report::new("sessions", common.json);
    report.line(format!(
        "sessions: {} rooms of {} at a time for {} s; offer/answer of {} bytes, {} candidates each way",
        args.concurrency, args.room_size, args.duration, args.sdp_bytes, args.candidates
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building a runtime")?;
    let server = common.server_pid.map(crate::proc_stats::Proc::Pid);
    let target = common.target();
    let sources = common.sources();
    let payloads = Rc::new(Payloads::new(args.sdp_bytes, args.candidates));
    let run = run_id();
    let next_room = Rc::new(Cell::new(0u64));
    let session_ms = Rc::new(RefCell::new(
        Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).context("creating a histogram")?,
    ));
    let (sessions, tally, server_cpu, own_cpu, elapsed, (cores_before, cores_after)) =
        LocalSet::new().block_on(&rt, async {
            let server_before = server.map(|p| p.cpu_secs()).transpose()?;
            let own_before = Proc::Own.cpu_secs()?;
            let cores_before = CoreTimes::read()?;
            let began = Instant::now();
            let end = began + Duration::from_secs_f64(args.duration);
            let mut slots = Vec::new();
            for _ in 0..args.concurrency {
                let (target, payloads, next_room, session_ms) = (
                    target.clone(),
                    payloads.clone(),
                    next_room.clone(),
                    session_ms.clone(),
                );
                let room_size = args.room_size;
                slots.push(tokio::task::spawn_local(async move {
                    let mut tally = Integrity::default();
                    let mut sessions = 0u64;
                    while Instant::now() < end {
                        let number = next_room.get();
                        next_room.set(number + 1);
                        let started = Instant::now();
                        let mut room =
                            match open_room(&target, sources, run, number, room_size).await {
                                Ok(room) => room,
                                Err(err) => {
                                    tally.fault(format!("opening room {number}: {err:#}"));
                                    break;
                                }
                            };
                        let deadline = Instant::now() + Duration::from_secs(30);
                        let outcome = negotiate(&mut room, &payloads, deadline).await;
                        tally.merge(outcome.tally);
                        tally.merge(close_room(room).await);
                        let finished = Instant::now();
                        if finished <= end {
                            sessions += outcome.sessions;
                            let micros = finished.duration_since(started).as_micros();
                            let _ = session_ms
                                .borrow_mut()
                                .record(u64::try_from(micros).unwrap_or(u64::MAX).max(1));
                        }
                    }
                    (sessions, tally)
                }));
            }
            // Sample CPU when the time is up, not when the last session has drained.
            tokio::time::sleep_until(end).await;
            let server_after = server.map(|p| p.cpu_secs()).transpose()?;
            let own_after = Proc::Own.cpu_secs()?;
            let cores_after = CoreTimes::read()?;
            let elapsed = began.elapsed().as_secs_f64();
            let mut sessions = 0;
            let mut tally = Integrity::default();
            for slot in slots {
                let (n, t) = slot.await.context("a session task failed")?;
                sessions += n;
                tally.merge(t);
            }
            let server_cpu = server_before.zip(server_after).map(|(b, a)| a - b);
            anyhow::Ok((
                sessions,
                tally,
                server_cpu,
                own_after - own_before,
                elapsed,
                (cores_before, cores_after),
            ))
        })?;
    let rate = sessions as f64 / elapsed;
    let hist = session_ms.borrow();
    report.line(format!(
        "  completed: {rate:.0} sessions/s ({sessions} in {elapsed:.2} s)"
    ));
    report.line(format!(
        "  time per room (connect, join, negotiate, close): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latency_ms(&hist, 50.0),
        latency_ms(&hist, 99.0),
        hist.max() as f64 / 1000.0
    ));
    report.set("concurrency", args.concurrency);
    report.set("room_size", args.room_size);
    report.set("seconds", elapsed);
    report.set("sessions", sessions);
    report.set("sessions_per_sec", rate);
    report.set("room_p50_ms", latency_ms(&hist, 50.0));
    report.set("room_p99_ms", latency_ms(&hist, 99.0));
    if let Some(cpu) = server_cpu {
        let per = cpu * 1e6 / sessions.max(1) as f64;
        report.line(format!(
            "  server CPU: {:.0} % of a core, {per:.1} µs per session",
            cpu / elapsed * 100.0
        ));
        report.set("server_cpu_share", cpu / elapsed);
        report.set("server_us_per_session", per);
    } else {
        report.line("  server CPU: not measured (pass --server-pid)");
    }
    report.line(format!(
        "  generator CPU: {:.0} % of a core",
        own_cpu / elapsed * 100.0
    ));
    report.set("generator_cpu_share", own_cpu / elapsed);
    report.cores(&cores_before, &cores_after, server_cpu, own_cpu, elapsed);
    let clean = tally.is_clean();
    report.check(&tally, clean);
    report.finish();
    Ok(clean)
}
