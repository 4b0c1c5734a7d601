//! `soak`: many sessions negotiating at once, then the server's memory against its baseline.

use std::rc::Rc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use futures_util::StreamExt;
use tokio::task::LocalSet;
use tokio::time::Instant;

use crate::common::{Common, run_id};
use crate::dialect::Dialect;
use crate::idle::returned_share;
use crate::integrity::Integrity;
use crate::mesh::{Payloads, Room, close_room, negotiate, open_room};
use crate::proc_stats::Proc;
use crate::report::{Report, verdict};

/// Options of the `soak` scenario.
#[derive(clap::Args, Debug, Clone)]
pub struct SoakArgs {
    /// Sessions (pairs of clients negotiating) at the same time.
    #[arg(long, default_value_t = 10_000)]
    pub sessions: usize,
    /// Clients per room. Every pair in a room is a session, so rooms of 3 carry
    /// 10 000 sessions on about 10 000 connections, within the open-file limit.
    #[arg(long, default_value_t = 3)]
    pub room_size: usize,
    /// Rounds of connect, negotiate, hold, close; memory must not creep up between them.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Seconds to hold the connections open after negotiating.
    #[arg(long, default_value_t = 3.0)]
    pub hold: f64,
    /// Seconds to let the server settle before reading its memory after closing
    /// (longer than the allocator's decay: jemalloc returns pages within 10 s).
    #[arg(long, default_value_t = 15.0)]
    pub settle: f64,
    /// Rooms being filled at the same time while connecting.
    #[arg(long, default_value_t = 128)]
    pub connect_concurrency: usize,
    /// Seconds the negotiation of all sessions may take.
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,
    /// Size of the offer and of the answer SDP, in bytes.
    #[arg(long, default_value_t = 2000)]
    pub sdp_bytes: usize,
    /// Candidates each way per session.
    #[arg(long, default_value_t = 8)]
    pub candidates: usize,
    /// Largest share (percent) of the memory grown during a round that may stay after it.
    #[arg(long, default_value_t = 25.0)]
    pub rss_tolerance_pct: f64,
}

/// Runs the scenario and prints its figures; returns whether it passed.
pub fn run(common: &Common, args: &SoakArgs) -> Result<bool> {
    ensure!(
        args.room_size >= 2 && args.sessions > 0,
        "need rooms of ≥ 2 and sessions"
    );
    let Some(pid) = common.server_pid else {
        bail!("soak compares the server's memory with its baseline: pass --server-pid");
    };
    let server = Proc::Pid(pid);
    let per_room = args.room_size * (args.room_size - 1) / 2;
    let rooms = args.sessions.div_ceil(per_room);
    ensure!(
        common.protocol == Dialect::Native,
        "soak speaks only this project's protocol"
    );
    let mut report = Report::new("soak", common.json);
    report.line(format!(
        "soak: {} sessions at once ({rooms} rooms of {}, {} connections), {} round(s)",
        rooms * per_room,
        args.room_size,
        rooms * args.room_size,
        args.rounds
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building a runtime")?;
    let target = common.target();
    let sources = common.sources();
    let payloads = Rc::new(Payloads::new(args.sdp_bytes, args.candidates));
    let run = run_id();
    let passed = LocalSet::new().block_on(&rt, async {
        let settle = Duration::from_secs_f64(args.settle);
        let baseline = server.rss_kib()?;
        report.line(format!("  server RSS baseline: {baseline} KiB"));
        let mut tally = Integrity::default();
        let mut all_complete = true;
        let mut peak_all = baseline;
        let mut rounds_json = Vec::new();
        let mut after = baseline;
        for round in 0..args.rounds {
            let began = Instant::now();
            let opened = futures_util::stream::iter((0..rooms).map(|n| {
                let number = (round * rooms + n) as u64;
                open_room(&target, sources, run, number, args.room_size)
            }))
            .buffer_unordered(args.connect_concurrency.max(1))
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<Room>>>()
            .context("connecting the clients")?;
            let connect_secs = began.elapsed().as_secs_f64();
            let connected = server.rss_kib()?;

            let began = Instant::now();
            let deadline = began + Duration::from_secs_f64(args.timeout);
            let tasks: Vec<_> = opened
                .into_iter()
                .map(|mut room| {
                    let payloads = payloads.clone();
                    tokio::task::spawn_local(async move {
                        let outcome = negotiate(&mut room, &payloads, deadline).await;
                        (room, outcome)
                    })
                })
                .collect();
            let mut held = Vec::with_capacity(rooms);
            let mut sessions = 0;
            let mut round_tally = Integrity::default();
            for task in tasks {
                let (room, outcome) = task.await.context("a room task failed")?;
                sessions += outcome.sessions;
                round_tally.merge(outcome.tally);
                held.push(room);
            }
            let negotiate_secs = began.elapsed().as_secs_f64();
            let peak = server.rss_kib()?;
            tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
            let peak = peak.max(server.rss_kib()?);
            peak_all = peak_all.max(peak);

            let closes: Vec<_> = held
                .into_iter()
                .map(|room| tokio::task::spawn_local(close_room(room)))
                .collect();
            for close in closes {
                round_tally.merge(close.await.context("a close task failed")?);
            }
            tokio::time::sleep(settle).await;
            after = server.rss_kib()?;
            let complete = sessions as usize == rooms * per_room;
            all_complete &= complete;
            report.line(format!(
                "  round {}: connected in {connect_secs:.2} s; {sessions} sessions negotiated in {negotiate_secs:.2} s \
                 ({} signals); server RSS connected {connected} KiB, peak {peak} KiB, after close {after} KiB",
                round + 1,
                round_tally.received
            ));
            report.line(format!(
                "    {}: {}",
                verdict(round_tally.is_clean() && complete),
                round_tally.describe()
            ));
            rounds_json.push(serde_json::json!({
                "connect_seconds": connect_secs,
                "negotiate_seconds": negotiate_secs,
                "sessions": sessions,
                "rss_connected_kib": connected,
                "rss_peak_kib": peak,
                "rss_after_kib": after,
                "integrity": round_tally.to_json(),
            }));
            tally.merge(round_tally);
        }
        let share = returned_share(baseline, peak_all, after);
        let memory_ok = share * 100.0 >= 100.0 - args.rss_tolerance_pct;
        report.line(format!(
            "  server RSS: baseline {baseline} KiB, peak {peak_all} KiB, after {after} KiB: \
             {:.0} % of the growth returned ({})",
            share * 100.0,
            if memory_ok { "ok" } else { "MEMORY DID NOT RETURN TO BASELINE" }
        ));
        report.set("sessions", rooms * per_room);
        report.set("room_size", args.room_size);
        report.set("connections", rooms * args.room_size);
        report.set("rss_baseline_kib", baseline);
        report.set("rss_peak_kib", peak_all);
        report.set("rss_after_kib", after);
        report.set("rss_returned_share", share);
        report.set("rounds", rounds_json);
        let clean = tally.is_clean() && all_complete;
        report.check(&tally, clean);
        anyhow::Ok(clean && memory_ok)
    })?;
    report.finish();
    Ok(passed)
}
