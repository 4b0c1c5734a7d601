//! `idle`: many joined connections that stay quiet; the server's memory per connection.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use futures_util::StreamExt;
use signaling_protocol::ServerMessage;
use tokio::sync::watch;
use tokio::task::LocalSet;
use tokio::time::Instant;

use crate::client::Sources;
use crate::common::{Common, run_id};
use crate::dialect::Dialect;
use crate::inbound::{Inbound, clip};
use crate::integrity::Integrity;
use crate::proc_stats::Proc;
use crate::report::Report;
use crate::ws::{Conn, Frame, Target};

/// Options of the `idle` scenario.
#[derive(clap::Args, Debug, Clone)]
pub struct IdleArgs {
    /// Connections to open and hold.
    #[arg(long, default_value_t = 19_000)]
    pub connections: usize,
    /// Clients per room.
    #[arg(long, default_value_t = 2)]
    pub per_room: usize,
    /// Seconds to hold the connections once all are joined.
    #[arg(long, default_value_t = 10.0)]
    pub hold: f64,
    /// Seconds to let the server settle before each memory reading.
    #[arg(long, default_value_t = 2.0)]
    pub settle: f64,
    /// Rooms being filled at the same time while connecting.
    #[arg(long, default_value_t = 128)]
    pub connect_concurrency: usize,
}

/// Runs the scenario and prints its figures; returns whether every connection behaved.
pub fn run(common: &Common, args: &IdleArgs) -> Result<bool> {
    ensure!(
        args.connections > 0 && args.per_room > 0,
        "need connections"
    );
    let Some(pid) = common.server_pid else {
        bail!("idle measures the server's memory: pass --server-pid");
    };
    let server = Proc::Pid(pid);
    let mut report = Report::new("idle", common.json);
    report.line(format!(
        "idle: {} connections, {} per room, held {} s",
        args.connections, args.per_room, args.hold
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building a runtime")?;
    let target = common.target();
    let sources = common.sources();
    let dialect = common.protocol;
    let clean = LocalSet::new().block_on(&rt, async {
        let settle = Duration::from_secs_f64(args.settle);
        let baseline = server.rss_kib()?;
        report.line(format!("  server RSS before: {baseline} KiB"));
        let began = Instant::now();
        let rooms = args.connections.div_ceil(args.per_room);
        let run = run_id();
        let opened = futures_util::stream::iter((0..rooms).map(|room| {
            let size = args
                .per_room
                .min(args.connections - room * args.per_room);
            open_room(&target, dialect, sources, run, room, size, args.per_room)
        }))
        .buffer_unordered(args.connect_concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<Vec<Conn>>>>()
        .context("opening the connections")?;
        let took = began.elapsed().as_secs_f64();
        report.line(format!(
            "  connected and joined {} clients in {took:.2} s ({:.0}/s)",
            args.connections,
            args.connections as f64 / took
        ));
        let (stop_tx, stop_rx) = watch::channel(false);
        let holders: Vec<_> = opened
            .into_iter()
            .flatten()
            .map(|conn| tokio::task::spawn_local(hold(conn, dialect, stop_rx.clone())))
            .collect();
        tokio::time::sleep(settle).await;
        let held = server.rss_kib()?;
        tokio::time::sleep(Duration::from_secs_f64(args.hold).saturating_sub(settle)).await;
        let held_end = server.rss_kib()?;
        let per_conn = held.saturating_sub(baseline) as f64 / args.connections as f64;
        report.line(format!(
            "  server RSS held: {held} KiB ({held_end} KiB at the end of the hold): {per_conn:.2} KiB per idle connection"
        ));
        let _ = stop_tx.send(true);
        let mut tally = Integrity::default();
        for holder in holders {
            tally.merge(holder.await.context("a connection task failed")?);
        }
        tokio::time::sleep(settle).await;
        let after = server.rss_kib()?;
        report.line(format!(
            "  server RSS after closing all: {after} KiB ({:+} KiB against before, {:.0} % of the growth returned)",
            after as i64 - baseline as i64,
            returned_share(baseline, held.max(held_end), after) * 100.0
        ));
        report.set("connections", args.connections);
        report.set("per_room", args.per_room);
        report.set("connect_seconds", took);
        report.set("rss_before_kib", baseline);
        report.set("rss_held_kib", held);
        report.set("rss_held_end_kib", held_end);
        report.set("rss_after_kib", after);
        report.set("kib_per_connection", per_conn);
        let clean = tally.is_clean();
        report.check(&tally, clean);
        anyhow::Ok(clean)
    })?;
    report.finish();
    Ok(clean)
}

/// The share of a memory growth that was given back: 1 means back at baseline.
pub fn returned_share(baseline: u64, peak: u64, after: u64) -> f64 {
    let grown = peak.saturating_sub(baseline);
    if grown == 0 {
        return 1.0;
    }
    peak.saturating_sub(after) as f64 / grown as f64
}

/// Connects `size` clients into room number `room`.
async fn open_room(
    target: &Target,
    dialect: Dialect,
    sources: Sources,
    run: u64,
    room: usize,
    size: usize,
    per_room: usize,
) -> Result<Vec<Conn>> {
    let name = format!("idle-{run}-{room}");
    let mut conns = Vec::with_capacity(size);
    for i in 0..size {
        let target = dialect.target(target, &name);
        let mut conn = Conn::connect(&target, sources.pick(room * per_room + i)).await?;
        dialect.join(&mut conn, &name).await?;
        conns.push(conn);
    }
    Ok(conns)
}

/// Holds one connection, answering pings, until told to stop; then closes it.
async fn hold(mut conn: Conn, dialect: Dialect, mut stop: watch::Receiver<bool>) -> Integrity {
    let mut tally = Integrity::default();
    let result: Result<()> = async {
        loop {
            tokio::select! {
                read = conn.fill() => {
                    if read? == 0 {
                        bail!("server closed an idle connection");
                    }
                }
                _ = stop.changed() => return Ok(()),
            }
            while let Some(frame) = conn.rd.next_frame()? {
                match frame {
                    Frame::Text(text) => match dialect.read(text)? {
                        Inbound::Other(ServerMessage::PeerJoined { .. }) => {}
                        // Room mates leave once the hold is over.
                        Inbound::Other(ServerMessage::PeerLeft { .. }) if *stop.borrow() => {}
                        Inbound::Other(ServerMessage::Error { code, .. }) => {
                            tally.server_error(code)
                        }
                        Inbound::Other(other) => {
                            tally.fault(format!("unexpected {}", clip(&other.to_json())))
                        }
                        Inbound::Signal { .. } => tally.misrouted += 1,
                    },
                    Frame::Ping(payload) => conn.wr.pong(payload),
                    Frame::Pong => {}
                    Frame::Binary(_) => tally.fault("server sent a binary frame"),
                    Frame::Close => bail!("server closed an idle connection"),
                }
            }
            conn.flush().await?;
        }
    }
    .await;
    if let Err(err) = result {
        tally.fault(format!("{err:#}"));
        return tally;
    }
    match tokio::time::timeout(Duration::from_secs(10), dialect.close(conn)).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tally.fault(format!("closing: {err:#}")),
        Err(_) => tally.fault("the server did not close within 10 s"),
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returned_share_is_relative_to_the_growth() {
        assert_eq!(returned_share(100, 300, 100), 1.0);
        assert_eq!(returned_share(100, 300, 200), 0.5);
        assert_eq!(returned_share(100, 100, 120), 1.0);
    }
}
