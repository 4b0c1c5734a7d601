//! One generator thread of the relay scenario: its pairs, the pinging and
//! echoing clients, and the check of every signal that arrives.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use signaling_protocol::{PeerId, ServerMessage};
use tokio::task::LocalSet;
use tokio::time::{Instant, sleep_until, timeout_at};

use super::frame::{Payload, RelayFrame, decode};
use super::{Pair, Plan, RelayArgs, Shared, WorkerResult, new_histogram};
use crate::client::Sources;
use crate::common::Common;
use crate::dialect::Dialect;
use crate::inbound::{IdText, Inbound, clip, id_text};
use crate::integrity::Integrity;
use crate::ws::{Conn, Target};

/// One generator thread: sets up its pairs, waits for the plan, runs them.
pub(super) fn worker(
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
