//! The connection to one remote peer and its data channels.
//!
//! Each link is a task. It owns the [`RtcConnection`], takes signals from
//! the session, sends its own signals out through a bounded queue, and
//! reports events. What to do (perfect negotiation, ICE restarts, starting
//! over after a failed DTLS handshake, deadlines) is decided by the
//! [`Negotiator`], which sees no engine; the task carries its actions out.
//! Channel readers are tasks of their own ([`channel_watch`]), so a slow
//! reader of one channel does not hold up negotiation.

mod actions;
mod channel_watch;
mod negotiator;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use signaling_protocol::{IceServer, PeerId};
use tokio::sync::{mpsc, oneshot, watch};

use crate::channel::Channel;
use crate::engine::{DtlsFingerprints, NetStats, RtcConnection, RtcEvent, description_fingerprint};
use crate::error::Error;
use crate::event::Event;
use crate::local_addresses::{self, ADDRESS_POLL, AddressWatch};
use crate::options::{NegotiatedChannel, TransportOptions};
use crate::signal::{PeerSignal, SdpKind};
use channel_watch::Fate;
use negotiator::{Action, CandidateStep, Description, Facts, Negotiator};

/// Candidates kept while the remote description is not set yet.
const MAX_EARLY_CANDIDATES: usize = 64;
/// Channels a peer may have opened to us that are open at once. More are
/// closed as they arrive: each open channel holds a task and its buffers.
pub const MAX_INCOMING_CHANNELS: usize = 64;
/// Inputs a link may have queued.
const INPUT_QUEUE: usize = 128;
/// Open channels, by peer and label, shared by the session and its links.
pub(crate) type ChannelMap = Arc<Mutex<HashMap<PeerId, HashMap<String, Channel>>>>;

/// A signal a link wants delivered to its peer.
#[derive(Debug)]
pub(crate) struct Outbound {
    pub(crate) to: PeerId,
    pub(crate) signal: PeerSignal,
}

/// What a link is told to do.
pub(crate) enum LinkInput {
    Signal(PeerSignal),
    /// The signaling connection came back with the same id: signals sent
    /// while it was down may be lost.
    SignalingResumed,
    /// The server could not carry a signal of this link (its room store was
    /// unreachable): the link negotiates again a little later.
    SignalLost,
    Fingerprints(oneshot::Sender<Option<DtlsFingerprints>>),
    OpenChannel(String, oneshot::Sender<Result<Channel, Error>>),
}

/// Everything a link needs from its session.
#[derive(Clone)]
pub(crate) struct LinkContext {
    pub(crate) local: PeerId,
    pub(crate) options: TransportOptions,
    pub(crate) ice_servers: Vec<IceServer>,
    pub(crate) outbound: mpsc::Sender<Outbound>,
    pub(crate) events: mpsc::Sender<Event>,
    pub(crate) channels: ChannelMap,
    /// Channels the offering side creates in its first offer.
    pub(crate) initial_channels: Vec<String>,
    /// Channels both sides create under agreed stream ids.
    pub(crate) negotiated_channels: Vec<NegotiatedChannel>,
}

/// Handle of a running link; dropping it closes the connection.
pub(crate) struct PeerLink {
    input: mpsc::Sender<LinkInput>,
    stats: Arc<dyn Fn() -> NetStats + Send + Sync>,
}

impl PeerLink {
    /// Builds the connection to `remote` and starts its task; with `offer`
    /// it creates the initial channels and sends the first offer.
    pub(crate) async fn start(
        ctx: LinkContext,
        remote: PeerId,
        offer: bool,
    ) -> Result<Self, Error> {
        let (connection, rtc_events) = RtcConnection::new(&ctx.options, &ctx.ice_servers).await?;
        let connection = Arc::new(connection);
        let (input, inputs) = mpsc::channel(INPUT_QUEUE);
        let current = Arc::new(Mutex::new(Arc::clone(&connection)));
        let stats_source = Arc::clone(&current);
        let stats = Arc::new(move || match stats_source.lock() {
            Ok(connection) => connection.net_stats(),
            Err(_) => NetStats::default(),
        });
        let mut link = LinkTask {
            negotiator: Negotiator::new(ctx.local > remote, offer),
            own_labels: if offer {
                ctx.initial_channels.clone()
            } else {
                Vec::new()
            },
            negotiated_created: false,
            ctx,
            remote,
            connection,
            current,
            rtc_events,
            fate: watch::Sender::new(Fate::Current),
            early_candidates: VecDeque::new(),
            incoming_channels: Arc::default(),
            addresses: AddressWatch::new(local_addresses::current()),
        };
        if offer {
            link.create_own_channels().await?;
            link.send_offer(false).await?;
        }
        // The task ends, closing the connection, when this handle (the only
        // sender of its inputs) is dropped.
        tokio::spawn(link.run(inputs));
        Ok(Self { input, stats })
    }

    /// Passes a signal from the peer to the link; drops it if the link is swamped.
    pub(crate) fn deliver(&self, signal: PeerSignal) {
        if self.input.try_send(LinkInput::Signal(signal)).is_err() {
            tracing::warn!("a peer link is not keeping up; dropped a signal");
        }
    }

    /// Tells the link the signaling connection was resumed (see
    /// [`LinkInput::SignalingResumed`]).
    pub(crate) fn signaling_resumed(&self) {
        if self.input.try_send(LinkInput::SignalingResumed).is_err() {
            tracing::warn!("a peer link is not keeping up; it was not told of the resume");
        }
    }

    /// Tells the link the server could not carry one of its signals (see
    /// [`LinkInput::SignalLost`]).
    pub(crate) fn signal_lost(&self) {
        if self.input.try_send(LinkInput::SignalLost).is_err() {
            tracing::warn!("a peer link is not keeping up; it was not told of a lost signal");
        }
    }

    /// Opens another data channel; resolves once it is created (it opens later).
    pub(crate) async fn open_channel(&self, label: String) -> Result<Channel, Error> {
        let (reply, wait) = oneshot::channel();
        self.input
            .send(LinkInput::OpenChannel(label, reply))
            .await
            .map_err(|_| Error::SessionClosed)?;
        wait.await.map_err(|_| Error::SessionClosed)?
    }

    /// Both sides' DTLS fingerprints, once negotiated.
    pub(crate) async fn fingerprints(&self) -> Option<DtlsFingerprints> {
        let (reply, wait) = oneshot::channel();
        self.input.send(LinkInput::Fingerprints(reply)).await.ok()?;
        wait.await.ok()?
    }

    /// Datagram counters of the connection.
    pub(crate) fn net_stats(&self) -> NetStats {
        (self.stats)()
    }
}

struct LinkTask {
    ctx: LinkContext,
    remote: PeerId,
    connection: Arc<RtcConnection>,
    /// The connection the link's handle reads statistics from.
    current: Arc<Mutex<Arc<RtcConnection>>>,
    rtc_events: mpsc::Receiver<RtcEvent>,
    /// Tells the current connection's channels whether it was replaced: a
    /// channel that never opened then ends silently. Dropped with the link.
    fate: watch::Sender<Fate>,
    /// What to do, decided without the engine.
    negotiator: Negotiator,
    /// Labels of the channels this side created before the link first
    /// connected; a new connection creates them again.
    own_labels: Vec<String>,
    /// The current connection has the context's negotiated channels.
    negotiated_created: bool,
    /// Candidates that arrived before the peer's description.
    early_candidates: VecDeque<crate::signal::IceCandidate>,
    /// Channels the peer opened that are open now.
    incoming_channels: Arc<AtomicUsize>,
    /// The host's addresses: losing one restarts ICE on an established link.
    addresses: AddressWatch,
}

/// Completes at `at`, or never.
async fn sleep_until(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// The time the negotiator is given: tokio's clock, so a paused test clock
/// holds for it too.
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

impl LinkTask {
    async fn run(mut self, mut inputs: mpsc::Receiver<LinkInput>) {
        let mut address_poll = tokio::time::interval(ADDRESS_POLL);
        address_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = sleep_until(self.negotiator.next_deadline());
            tokio::select! {
                input = inputs.recv() => match input {
                    Some(input) => self.on_input(input).await,
                    None => break,
                },
                event = self.rtc_events.recv() => match event {
                    Some(event) => self.on_rtc_event(event).await,
                    None => break,
                },
                () = deadline => {
                    let facts = self.facts().await;
                    let actions = self.negotiator.on_deadline(now(), &facts);
                    self.carry_out(actions, "a deadline").await;
                }
                _ = address_poll.tick(), if self.negotiator.connected_once() => {
                    let change = self.addresses.look(local_addresses::current());
                    let actions = self.negotiator.on_addresses_changed(change);
                    self.carry_out(actions, "an address change").await;
                }
            }
        }
        self.connection.close().await;
        if let Ok(mut channels) = self.ctx.channels.lock() {
            channels.remove(&self.remote);
        }
        tracing::debug!(peer = %self.remote, "link closed");
    }

    async fn on_input(&mut self, input: LinkInput) {
        match input {
            LinkInput::Signal(signal) => {
                if let Err(err) = self.on_signal(signal).await {
                    tracing::warn!(peer = %self.remote, %err, "negotiation step failed");
                    self.report(Event::PeerError {
                        peer: self.remote,
                        error: err.to_string(),
                    })
                    .await;
                }
            }
            LinkInput::SignalingResumed => {
                let facts = self.facts().await;
                let actions = self.negotiator.on_signaling_resumed(&facts);
                self.carry_out(actions, "renegotiation after a resume")
                    .await;
            }
            LinkInput::SignalLost => self.negotiator.on_signal_lost(now()),
            LinkInput::Fingerprints(reply) => {
                let _ = reply.send(self.connection.fingerprints().await);
            }
            LinkInput::OpenChannel(label, reply) => {
                let result = self
                    .connection
                    .create_channel(&label, None)
                    .await
                    .map(|channel| {
                        self.watch_channel(channel.clone(), false);
                        Channel::new(self.remote, channel)
                    });
                if result.is_ok()
                    && !self.negotiator.connected_once()
                    && !self.own_labels.contains(&label)
                {
                    self.own_labels.push(label);
                }
                let _ = reply.send(result);
            }
        }
    }

    /// What the engine says of the current connection.
    async fn facts(&self) -> Facts {
        Facts {
            pending_offer: self.connection.has_pending_offer().await,
            has_remote_description: self.connection.has_remote_description().await,
            remote_fingerprint: self.connection.remote_fingerprint().await,
        }
    }

    async fn on_signal(&mut self, signal: PeerSignal) -> Result<(), Error> {
        match signal {
            PeerSignal::Description(description) => {
                let seen = Description {
                    offer: description.kind == SdpKind::Offer,
                    fingerprint: description_fingerprint(&description),
                };
                let facts = self.facts().await;
                let actions = self.negotiator.on_description(now(), &seen, &facts);
                self.execute(actions, Some(description)).await
            }
            PeerSignal::Candidate(None) => Ok(()),
            PeerSignal::Candidate(Some(candidate)) => {
                let facts = Facts {
                    has_remote_description: self.connection.has_remote_description().await,
                    ..Facts::default()
                };
                match self.negotiator.on_candidate(&facts) {
                    CandidateStep::Hold => {
                        if self.early_candidates.len() >= MAX_EARLY_CANDIDATES {
                            return Err(Error::BadSignal(format!(
                                "more than {MAX_EARLY_CANDIDATES} candidates before any description"
                            )));
                        }
                        self.early_candidates.push_back(candidate);
                        Ok(())
                    }
                    CandidateStep::Add { refusal_expected } => {
                        match self.connection.add_candidate(candidate).await {
                            Err(_) if refusal_expected => Ok(()),
                            other => other,
                        }
                    }
                }
            }
        }
    }

    async fn on_rtc_event(&mut self, event: RtcEvent) {
        let actions = match event {
            RtcEvent::LocalCandidate(candidate) => {
                self.send(PeerSignal::Candidate(candidate));
                return;
            }
            RtcEvent::IncomingChannel(channel) => {
                if self.incoming_channels.load(Ordering::Relaxed) >= MAX_INCOMING_CHANNELS {
                    let label = channel.label().to_owned();
                    tracing::warn!(peer = %self.remote, %label, "the peer has too many channels open; closing the new one");
                    channel.close().await;
                    self.report(Event::PeerError {
                        peer: self.remote,
                        error: format!(
                            "it opened more than {MAX_INCOMING_CHANNELS} channels at once; closed {label:?}"
                        ),
                    })
                    .await;
                } else {
                    self.watch_channel(channel, true);
                }
                return;
            }
            RtcEvent::IceConnected => {
                self.negotiator.on_ice_connected(now());
                return;
            }
            RtcEvent::Stopped => {
                let facts = self.facts().await;
                self.negotiator.on_stopped(now(), &facts)
            }
            RtcEvent::State(state) => self.negotiator.on_state(state),
        };
        self.carry_out(actions, "an engine event").await;
    }

    /// Carries out actions that come from no signal: a failure is logged
    /// (a failed rebuild gives the link up).
    async fn carry_out(&mut self, actions: Vec<Action>, after: &str) {
        if let Err(err) = self.execute(actions, None).await {
            tracing::warn!(peer = %self.remote, %err, after, "a negotiation step failed");
        }
    }

    fn send(&self, signal: PeerSignal) {
        let outbound = Outbound {
            to: self.remote,
            signal,
        };
        if self.ctx.outbound.try_send(outbound).is_err() {
            tracing::warn!(peer = %self.remote, "signaling queue full; dropped a signal");
        }
    }

    async fn report(&self, event: Event) {
        let _ = self.ctx.events.send(event).await;
    }

    /// Reads a channel in a task of its own and reports what happens on it.
    fn watch_channel(&self, channel: crate::engine::RtcChannel, incoming: bool) {
        let counted = incoming.then(|| {
            self.incoming_channels.fetch_add(1, Ordering::Relaxed);
            Arc::clone(&self.incoming_channels)
        });
        channel_watch::spawn(channel_watch::Watch {
            peer: self.remote,
            channel,
            incoming,
            events: self.ctx.events.clone(),
            channels: Arc::clone(&self.ctx.channels),
            fate: self.fate.subscribe(),
            counted,
        });
    }
}

#[cfg(test)]
mod dtls_failure_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::Payload;

    /// Starts a link from `local` to `remote` whose signals go out on the returned receiver.
    pub(super) async fn link(
        local: PeerId,
        remote: PeerId,
        offer: bool,
    ) -> (
        Arc<PeerLink>,
        mpsc::Receiver<Outbound>,
        mpsc::Receiver<Event>,
    ) {
        let (outbound, signals) = mpsc::channel(256);
        let (events_tx, events) = mpsc::channel(256);
        let ctx = LinkContext {
            local,
            options: TransportOptions::loopback(),
            ice_servers: Vec::new(),
            outbound,
            events: events_tx,
            channels: Arc::default(),
            initial_channels: vec!["chat".into()],
            negotiated_channels: Vec::new(),
        };
        let link = PeerLink::start(ctx, remote, offer).await.unwrap();
        (Arc::new(link), signals, events)
    }

    fn relay(mut signals: mpsc::Receiver<Outbound>, to: Arc<PeerLink>) {
        tokio::spawn(async move {
            while let Some(out) = signals.recv().await {
                to.deliver(out.signal);
            }
        });
    }

    async fn open_chat(events: &mut mpsc::Receiver<Event>) -> Channel {
        let wait = async {
            while let Some(event) = events.recv().await {
                if let Event::ChannelOpen { channel, .. } = event {
                    return channel;
                }
            }
            panic!("link ended before a channel opened");
        };
        tokio::time::timeout(std::time::Duration::from_secs(15), wait)
            .await
            .expect("a channel opens within 15 s")
    }

    /// Both sides offer at once (glare): perfect negotiation settles it — the
    /// polite side rolls its offer back and answers — and channels open.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn simultaneous_offers_settle() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let (link_a, out_a, mut events_a) = link(a, b, true).await;
        let (link_b, out_b, mut events_b) = link(b, a, true).await;
        relay(out_a, Arc::clone(&link_b));
        relay(out_b, Arc::clone(&link_a));
        let chat_a = open_chat(&mut events_a).await;
        let chat_b = open_chat(&mut events_b).await;
        chat_both_ways(&chat_a, &chat_b, &mut events_a, &mut events_b).await;
    }

    /// Sends a text each way over two ends of a chat channel and checks both arrive.
    pub(super) async fn chat_both_ways(
        chat_a: &Channel,
        chat_b: &Channel,
        events_a: &mut mpsc::Receiver<Event>,
        events_b: &mut mpsc::Receiver<Event>,
    ) {
        chat_a.send(Payload::Text("from a".into())).await.unwrap();
        chat_b.send(Payload::Text("from b".into())).await.unwrap();
        for (events, want) in [(events_b, "from a"), (events_a, "from b")] {
            let got = tokio::time::timeout(std::time::Duration::from_secs(15), async {
                while let Some(event) = events.recv().await {
                    if let Event::Message {
                        payload: Payload::Text(text),
                        ..
                    } = event
                    {
                        return text;
                    }
                }
                String::new()
            })
            .await
            .unwrap();
            assert_eq!(got, want);
        }
    }
}
