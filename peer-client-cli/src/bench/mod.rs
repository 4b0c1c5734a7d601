//! `peer-client bench`: two peers connected over loopback through the same
//! negotiation code a session uses, with no server: the signals are handed
//! across directly. By default the receiving peer runs in a child process
//! (signals over its stdin and stdout, see [`stdio`]), as two machines or a
//! `send`/`receive` pair would; `--one-process` keeps both in this process.
//!
//! Prints: time from the offer to an open channel on both sides; one-way
//! throughput of a reliable ordered channel and the most bytes the sender
//! ever had unacknowledged; datagrams per second on the idle link (ICE
//! keepalives).

mod stdio;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::BytesMut;
use clap::Args;
use peer_client::{
    Channel, DEFAULT_SEND_BUFFER_BYTES, DEFAULT_SOCKET_BUFFER_BYTES, DirectConfig, DirectLink,
    DirectSignals, Event, PeerId, TransportOptions,
};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// Label of the measured channel.
const LABEL: &str = "bench";
/// Longest the connection may take before the bench gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Messages built ahead of the sender.
const QUEUED_MESSAGES: usize = 8;

/// Arguments of `bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// MiB to push through the channel.
    #[arg(long, default_value_t = 256)]
    pub mib: usize,

    /// Bytes per message (capped at the channel's largest message).
    #[arg(long, default_value_t = 64 * 1024)]
    pub message_bytes: usize,

    /// Receive/send buffer asked for each UDP socket, in bytes. 212992 gives
    /// what a kernel with `net.core.rmem_max = 212992` (a common desktop
    /// default) grants; 0 leaves the kernel default untouched.
    #[arg(long, default_value_t = DEFAULT_SOCKET_BUFFER_BYTES)]
    pub socket_buffer: usize,

    /// Per-channel bound on unacknowledged sent bytes.
    #[arg(long, default_value_t = DEFAULT_SEND_BUFFER_BYTES)]
    pub send_buffer: usize,

    /// Seconds to count datagrams on the idle link.
    #[arg(long, default_value_t = 10)]
    pub idle_secs: u64,

    /// Give up if the transfer takes longer than this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,

    /// Run the receiving peer in this process too, instead of in a child
    /// process (one runtime drives both ends).
    #[arg(long)]
    pub one_process: bool,

    /// Be the receiving peer of a parent `bench`: signals and progress as
    /// lines on stdin and stdout.
    #[arg(long, hide = true, conflicts_with = "one_process")]
    pub receiver_over_stdio: bool,
}

impl BenchArgs {
    fn options(&self) -> TransportOptions {
        let mut options = TransportOptions::loopback();
        options.socket_buffer_bytes = self.socket_buffer;
        options.send_buffer_bytes = self.send_buffer;
        options
    }

    fn total_bytes(&self) -> u64 {
        (self.mib * 1024 * 1024) as u64
    }
}

/// One peer of the bench: its link and the events it reports.
struct Side {
    link: Arc<DirectLink>,
    events: mpsc::Receiver<Event>,
}

/// The receiving end, in this process or in a child.
enum Receiver {
    InProcess(Side),
    Child(stdio::ChildPeer),
}

impl Receiver {
    async fn wait_open(&mut self) -> anyhow::Result<()> {
        match self {
            Self::InProcess(side) => wait_open(&mut side.events).await.map(drop),
            Self::Child(child) => child.wait_open().await,
        }
    }

    /// Waits until `total` bytes arrived.
    async fn wait_received(&mut self, total: u64) -> anyhow::Result<()> {
        match self {
            Self::InProcess(side) => receive(&mut side.events, total).await,
            Self::Child(child) => child.wait_received().await,
        }
    }

    /// Datagrams this end sent, when it is in this process.
    fn datagrams_sent(&self) -> Option<u64> {
        match self {
            Self::InProcess(side) => Some(side.link.net_stats().datagrams_sent),
            Self::Child(_) => None,
        }
    }
}

pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.receiver_over_stdio {
        return stdio::serve(&args).await;
    }
    let Connected {
        offerer,
        mut receiver,
        sender,
        from_offer_ms,
        open_ms,
    } = connect(&args).await?;

    let stats = offerer.link.net_stats();
    let processes = if args.one_process {
        "one process"
    } else {
        "two processes"
    };
    println!("peer-client bench (loopback, {processes}, release build recommended)");
    println!(
        "  socket buffer     asked {} B, kernel granted {} B; SCTP receive window {} B; largest message {} B",
        args.socket_buffer,
        stats.socket_receive_buffer,
        stats.sctp_receive_window,
        stats.max_message_bytes
    );
    println!(
        "  connect           {from_offer_ms:.1} ms from the offer to the channel open on both sides \
         ({open_ms:.1} ms including building the offering peer connection)"
    );
    measure_throughput(&args, sender, &mut receiver).await?;
    if args.idle_secs > 0 {
        measure_idle(&args, &offerer, &receiver).await;
    }
    Ok(())
}

/// Both peers with their channels open.
struct Connected {
    offerer: Side,
    receiver: Receiver,
    /// The offering side's end of the measured channel.
    sender: Channel,
    /// From the first signal to both channels open.
    from_offer_ms: f64,
    /// From the start, building the offering peer connection included.
    open_ms: f64,
}

/// Starts both peers (the receiving one here or in a child), carries their
/// signals and waits until the channel is open on both sides.
async fn connect(args: &BenchArgs) -> anyhow::Result<Connected> {
    let options = args.options();
    // The offering side gets the smaller id, so the roles match the common
    // case (offerer impolite).
    let (offerer_id, answerer_id) = ordered_ids();

    let started = Instant::now();
    let offer_sent = Arc::new(OnceLock::new());
    let (mut offerer, mut receiver) = if args.one_process {
        let (answerer, answerer_signals) = side(&options, answerer_id, offerer_id, false).await?;
        let (offerer, offerer_signals) = side(&options, offerer_id, answerer_id, true).await?;
        relay(
            offerer_signals,
            Arc::clone(&answerer.link),
            Some(Arc::clone(&offer_sent)),
        );
        relay(answerer_signals, Arc::clone(&offerer.link), None);
        (offerer, Receiver::InProcess(answerer))
    } else {
        let child = stdio::SpawnedChild::start(args)?;
        let (offerer, offerer_signals) = side(&options, offerer_id, answerer_id, true).await?;
        let child = child.relay(
            offerer_signals,
            Arc::clone(&offerer.link),
            Arc::clone(&offer_sent),
        )?;
        (offerer, Receiver::Child(child))
    };

    let (sender, receiver_open) = timeout(CONNECT_TIMEOUT, async {
        let sender = wait_open(&mut offerer.events).await?;
        receiver.wait_open().await?;
        anyhow::Ok((sender, Instant::now()))
    })
    .await
    .context("the two peers did not connect within 20 s")??;
    let open_ms = receiver_open.duration_since(started).as_secs_f64() * 1000.0;
    let from_offer_ms = offer_sent
        .get()
        .map(|sent: &Instant| receiver_open.duration_since(*sent).as_secs_f64() * 1000.0)
        .unwrap_or(open_ms);
    Ok(Connected {
        offerer,
        receiver,
        sender,
        from_offer_ms,
        open_ms,
    })
}

/// Pushes the bench's bytes through the channel and prints the rate, the
/// sender's queue and the peak memory.
async fn measure_throughput(
    args: &BenchArgs,
    sender: Channel,
    receiver: &mut Receiver,
) -> anyhow::Result<()> {
    let message_bytes = args.message_bytes.clamp(1, sender.max_message_bytes());
    let total = args.total_bytes();
    let transfer = transfer(sender, receiver, total, message_bytes);
    let (elapsed, max_queued) = timeout(Duration::from_secs(args.timeout_secs), transfer)
        .await
        .context("the transfer did not finish in time")??;
    let rate = total as f64 / elapsed.as_secs_f64() / 1e6;
    println!(
        "  throughput        {rate:.0} MB/s ({} MiB in {:.2} s, {message_bytes}-byte messages, reliable ordered)",
        args.mib,
        elapsed.as_secs_f64()
    );
    println!(
        "  sender queue      at most {:.2} MiB unacknowledged (bound {:.2} MiB)",
        max_queued as f64 / 1048576.0,
        args.send_buffer as f64 / 1048576.0
    );
    if let Some(peak) = peak_rss_kib() {
        let whose = if args.one_process {
            "whole process: both peers"
        } else {
            "the sending process"
        };
        println!(
            "  peak RSS          {:.1} MiB ({whose})",
            peak as f64 / 1024.0
        );
    }
    Ok(())
}

/// Counts the datagrams the idle link sends (keepalives) and prints the rate.
async fn measure_idle(args: &BenchArgs, offerer: &Side, receiver: &Receiver) {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = datagrams_sent(offerer, receiver);
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    let after = datagrams_sent(offerer, receiver);
    let sent: u64 = after.iter().zip(&before).map(|(a, b)| a - b).sum();
    println!(
        "  idle link         {:.2} datagrams/s per peer (keepalives, measured over {} s)",
        sent as f64 / before.len() as f64 / args.idle_secs as f64,
        args.idle_secs
    );
}

/// Datagrams sent so far by each peer in this process.
fn datagrams_sent(offerer: &Side, receiver: &Receiver) -> Vec<u64> {
    let mut sent = vec![offerer.link.net_stats().datagrams_sent];
    sent.extend(receiver.datagrams_sent());
    sent
}

/// Two fresh ids, the smaller first.
fn ordered_ids() -> (PeerId, PeerId) {
    let (a, b) = (PeerId::random(), PeerId::random());
    if a < b { (a, b) } else { (b, a) }
}

/// Starts one peer of the bench; the offering side sends its offer at once.
async fn side(
    options: &TransportOptions,
    local: PeerId,
    remote: PeerId,
    offer: bool,
) -> anyhow::Result<(Side, DirectSignals)> {
    let started = DirectLink::start(DirectConfig {
        local,
        remote,
        offer,
        channels: vec![LABEL.to_owned()],
        transport: options.clone(),
    })
    .await?;
    let side = Side {
        link: started.link,
        events: started.events,
    };
    Ok((side, started.signals))
}

/// Hands one side's signals to the other, noting when the first one passed.
fn relay(mut signals: DirectSignals, to: Arc<DirectLink>, first: Option<Arc<OnceLock<Instant>>>) {
    tokio::spawn(async move {
        while let Some(signal) = signals.recv().await {
            if let Some(first) = &first {
                first.get_or_init(Instant::now);
            }
            to.deliver(signal);
        }
    });
}

async fn wait_open(events: &mut mpsc::Receiver<Event>) -> anyhow::Result<Channel> {
    while let Some(event) = events.recv().await {
        match event {
            Event::ChannelOpen { channel, .. } if channel.label() == LABEL => return Ok(channel),
            Event::PeerError { error, .. } => bail!("negotiation failed: {error}"),
            _ => {}
        }
    }
    bail!("the link ended before the channel opened")
}

/// Reads messages until `total` bytes arrived.
async fn receive(events: &mut mpsc::Receiver<Event>, total: u64) -> anyhow::Result<()> {
    let mut received = 0u64;
    while received < total {
        match events.recv().await {
            Some(Event::Message { payload, .. }) => received += payload.len() as u64,
            Some(Event::ChannelClosed { .. }) | None => {
                bail!("the channel closed after {received} bytes")
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Pushes `total` bytes and waits until all arrived; returns the time taken
/// and the most bytes the sender had unacknowledged.
async fn transfer(
    sender: Channel,
    receiver: &mut Receiver,
    total: u64,
    message_bytes: usize,
) -> anyhow::Result<(Duration, usize)> {
    let started = Instant::now();
    let mut messages = fill_messages(total, message_bytes);
    let sending = tokio::spawn(async move {
        let mut max_queued = 0usize;
        let mut count = 0u64;
        while let Some(message) = messages.recv().await {
            sender.send_bytes(message).await?;
            count += 1;
            if count.is_multiple_of(8) {
                max_queued = max_queued.max(sender.queued_bytes().await);
            }
        }
        anyhow::Ok(max_queued)
    });
    receiver.wait_received(total).await?;
    let elapsed = started.elapsed();
    let max_queued = sending.await.context("the sending task failed")??;
    Ok((elapsed, max_queued))
}

/// Builds the messages carrying `total` bytes on a blocking thread, as a
/// file transfer reads its chunks: the runtime that drives the connection
/// only sends them.
fn fill_messages(total: u64, message_bytes: usize) -> mpsc::Receiver<BytesMut> {
    let (messages, queue) = mpsc::channel(QUEUED_MESSAGES);
    tokio::task::spawn_blocking(move || {
        let pattern = vec![0x5a_u8; message_bytes];
        let mut filled = 0u64;
        while filled < total {
            let size = usize::try_from(total - filled)
                .map_or(message_bytes, |left| left.min(message_bytes));
            if messages
                .blocking_send(BytesMut::from(&pattern[..size]))
                .is_err()
            {
                break;
            }
            filled += size as u64;
        }
    });
    queue
}

/// Peak resident memory of this process, from /proc (Linux).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
