//! The connection to one remote peer: negotiation (offer/answer, trickle
//! ICE, perfect-negotiation roles) and its data channels.
//!
//! Each link is a task. It owns the [`RtcConnection`], takes signals from
//! the session, sends its own signals out through a bounded queue, and
//! reports events. Channel readers are tasks of their own, so a slow reader
//! of one channel does not hold up negotiation.
//!
//! A link whose DTLS handshake fails before it ever connected starts over on
//! a new connection (new certificate, fresh ICE): the side that made the first
//! offer rebuilds and offers again, and the other side rebuilds when an offer
//! carries a new DTLS fingerprint. `docs/webrtc-engine.md` explains why.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use signaling_protocol::{IceServer, PeerId};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::engine::{
    ChannelEvent, DtlsFingerprints, NetStats, RtcChannel, RtcConnection, RtcEvent,
    description_fingerprint,
};
use crate::local_addresses::{self, ADDRESS_POLL, AddressWatch};
use crate::options::{NegotiatedChannel, TransportOptions};
use crate::signal::{PeerSignal, SdpKind};
use crate::{Channel, Error, Event, LinkState};

/// Candidates kept while the remote description is not set yet.
const MAX_EARLY_CANDIDATES: usize = 64;
/// Channels a peer may have opened to us that are open at once. More are
/// closed as they arrive: each open channel holds a task and its buffers.
pub const MAX_INCOMING_CHANNELS: usize = 64;
/// Inputs a link may have queued.
const INPUT_QUEUE: usize = 128;
/// ICE restarts tried (after a failure, or when this host lost an address) until
/// the link is connected again.
const MAX_ICE_RESTARTS: u32 = 2;
/// How long after ICE connects the DTLS handshake may take. The DTLS client
/// of `webrtc` 0.21.1 resends a flight every second, seven times, so one
/// flight without an answer fails it after 8 s; the rest of a handshake is
/// two round trips. A handshake not done by then has failed (or will).
const DTLS_HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
/// Extra time the answering side gives the offering side to start over
/// before it reports the link failed.
const DTLS_REBUILD_GRACE: Duration = Duration::from_secs(5);
/// First wait before negotiating again after the server could not carry a
/// signal of this link; it doubles up to [`MAX_RESEND_WAIT`] while signals
/// keep getting lost.
const FIRST_RESEND_WAIT: Duration = Duration::from_secs(1);
/// Longest wait between such attempts.
const MAX_RESEND_WAIT: Duration = Duration::from_secs(8);
/// New connections tried after failed DTLS handshakes before the link gives up.
const MAX_REBUILDS: u32 = 2;

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

/// What became of a connection, as its channels learn it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// It is the link's connection.
    Current,
    /// A new connection replaced it.
    Replaced,
    /// The link gave up on it.
    Failed,
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
            polite: ctx.local > remote,
            initiator: offer,
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
            ignore_offer: false,
            restarts: 0,
            rebuilds: 0,
            connected_once: false,
            handshake_deadline: None,
            resend_at: None,
            resend_wait: FIRST_RESEND_WAIT,
            left_fingerprints: Vec::new(),
            reported_state: None,
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
    /// The polite side yields in an offer collision.
    polite: bool,
    /// This side made the first offer; it starts over after a failed handshake.
    initiator: bool,
    /// Labels of the channels this side created before the link first
    /// connected; a new connection creates them again.
    own_labels: Vec<String>,
    /// The current connection has the context's negotiated channels.
    negotiated_created: bool,
    early_candidates: VecDeque<crate::signal::IceCandidate>,
    /// Set while a colliding offer from the impolite side's view is ignored.
    ignore_offer: bool,
    restarts: u32,
    /// Connections replaced after a failed DTLS handshake.
    rebuilds: u32,
    /// The link has been connected at least once; it is never rebuilt then
    /// (its fingerprints may already authenticate the application's data).
    connected_once: bool,
    /// When the DTLS handshake of the current connection counts as failed.
    handshake_deadline: Option<Instant>,
    /// When to negotiate again because the server lost a signal.
    resend_at: Option<Instant>,
    /// The wait before the next such attempt.
    resend_wait: Duration,
    /// Remote fingerprints of connections this side left; descriptions that
    /// carry them are late and ignored.
    left_fingerprints: Vec<String>,
    reported_state: Option<LinkState>,
    /// Channels the peer opened that are open now.
    incoming_channels: Arc<AtomicUsize>,
    /// The host's addresses: losing one restarts ICE on an established link.
    addresses: AddressWatch,
}

/// Completes at `at`, or never.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl LinkTask {
    async fn run(mut self, mut inputs: mpsc::Receiver<LinkInput>) {
        let mut address_poll = tokio::time::interval(ADDRESS_POLL);
        address_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let handshake_overdue = sleep_until(self.handshake_deadline);
            let resend_due = sleep_until(self.resend_at);
            tokio::select! {
                input = inputs.recv() => match input {
                    Some(LinkInput::Signal(signal)) => {
                        if let Err(err) = self.on_signal(signal).await {
                            tracing::warn!(peer = %self.remote, %err, "negotiation step failed");
                            self.report(Event::PeerError { peer: self.remote, error: err.to_string() }).await;
                        }
                    }
                    Some(LinkInput::SignalingResumed) => {
                        if let Err(err) = self.renegotiate_after_resume().await {
                            tracing::warn!(peer = %self.remote, %err, "renegotiation after a resume failed");
                        }
                    }
                    Some(LinkInput::SignalLost) => {
                        if self.resend_at.is_none() {
                            self.resend_at = Some(Instant::now() + self.resend_wait);
                            self.resend_wait = (self.resend_wait * 2).min(MAX_RESEND_WAIT);
                        }
                    }
                    Some(LinkInput::Fingerprints(reply)) => {
                        let _ = reply.send(self.connection.fingerprints().await);
                    }
                    Some(LinkInput::OpenChannel(label, reply)) => {
                        let result = self.connection.create_channel(&label, None).await.map(|channel| {
                            self.watch_channel(channel.clone(), false);
                            Channel::new(self.remote, channel)
                        });
                        if result.is_ok() && !self.connected_once && !self.own_labels.contains(&label) {
                            self.own_labels.push(label);
                        }
                        let _ = reply.send(result);
                    }
                    None => break,
                },
                event = self.rtc_events.recv() => match event {
                    Some(event) => self.on_rtc_event(event).await,
                    None => break,
                },
                () = handshake_overdue => {
                    self.handshake_deadline = None;
                    self.on_handshake_failed("it did not complete in time").await;
                }
                () = resend_due => {
                    // Signals lost in the server are as good as lost while signaling
                    // was away: the same steps recover.
                    self.resend_at = None;
                    if let Err(err) = self.renegotiate_after_resume().await {
                        tracing::warn!(peer = %self.remote, %err, "renegotiation after a lost signal failed");
                    }
                }
                _ = address_poll.tick(), if self.connected_once => {
                    if self.addresses.lost_any(local_addresses::current()) {
                        // This host left a network: whichever side it is, it offers a new ICE
                        // session over the addresses it has now instead of waiting seconds for
                        // ICE to miss the old path.
                        self.restart_ice("an address of this host went away").await;
                    }
                }
            }
        }
        self.connection.close().await;
        if let Ok(mut channels) = self.ctx.channels.lock() {
            channels.remove(&self.remote);
        }
        tracing::debug!(peer = %self.remote, "link closed");
    }

    async fn on_signal(&mut self, signal: PeerSignal) -> Result<(), Error> {
        match signal {
            PeerSignal::Description(description) => {
                let is_offer = description.kind == SdpKind::Offer;
                let fingerprint = description_fingerprint(&description);
                if fingerprint
                    .as_ref()
                    .is_some_and(|fp| self.left_fingerprints.contains(fp))
                {
                    tracing::debug!(peer = %self.remote, "ignoring a description of a connection this side left");
                    return Ok(());
                }
                if is_offer
                    && let Some(offered) = fingerprint
                    && let Some(current) = self.connection.remote_fingerprint().await
                    && offered != current
                    && !self.start_over_for(&offered).await?
                {
                    return Ok(());
                }
                let collision = is_offer && self.connection.has_pending_offer().await;
                self.ignore_offer = !self.polite && collision;
                if self.ignore_offer {
                    tracing::debug!(peer = %self.remote, "ignoring a colliding offer (impolite side)");
                    return Ok(());
                }
                if collision {
                    tracing::debug!(peer = %self.remote, "offer collision: rolling back ours (polite side)");
                    self.connection.rollback().await?;
                }
                let answer = self.connection.accept_description(description).await?;
                if is_offer {
                    self.create_negotiated_channels().await?;
                }
                while let Some(candidate) = self.early_candidates.pop_front() {
                    if let Err(err) = self.connection.add_candidate(candidate).await {
                        tracing::debug!(%err, "queued candidate refused");
                    }
                }
                if let Some(answer) = answer {
                    self.send(PeerSignal::Description(answer));
                }
                if self.connected_once && self.reported_state == Some(LinkState::Disconnected) {
                    // The peer took part in an ICE restart: the link is being set up again.
                    self.reported_state = Some(LinkState::Connecting);
                    self.report(Event::LinkState {
                        peer: self.remote,
                        state: LinkState::Connecting,
                        path: None,
                    })
                    .await;
                }
                Ok(())
            }
            PeerSignal::Candidate(None) => Ok(()),
            PeerSignal::Candidate(Some(candidate)) => {
                if !self.connection.has_remote_description().await {
                    if self.early_candidates.len() >= MAX_EARLY_CANDIDATES {
                        return Err(Error::BadSignal(format!(
                            "more than {MAX_EARLY_CANDIDATES} candidates before any description"
                        )));
                    }
                    self.early_candidates.push_back(candidate);
                    return Ok(());
                }
                match self.connection.add_candidate(candidate).await {
                    Err(_) if self.ignore_offer => Ok(()),
                    other => other,
                }
            }
        }
    }

    async fn on_rtc_event(&mut self, event: RtcEvent) {
        match event {
            RtcEvent::LocalCandidate(candidate) => self.send(PeerSignal::Candidate(candidate)),
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
            }
            RtcEvent::IceConnected => {
                if !self.connected_once {
                    self.arm_handshake_deadline(Duration::ZERO);
                }
            }
            RtcEvent::Stopped => {
                if self.connected_once {
                    self.give_up("the connection stopped on an error".into())
                        .await;
                } else if self.initiator {
                    self.on_handshake_failed("it ran out of retransmissions")
                        .await;
                } else if self.handshake_deadline.is_none() {
                    // The offering side starts over; wait for its offer.
                    self.arm_handshake_deadline(Duration::ZERO);
                }
            }
            RtcEvent::State(state) => {
                // An established link restarting ICE is not reported as connecting on its own
                // say: only once the peer has answered or offered (`on_signal`), which shows
                // it is alive. A peer that was killed stays disconnected.
                if self.reported_state == Some(state)
                    || (state == LinkState::Connecting && self.connected_once)
                {
                    return;
                }
                self.reported_state = Some(state);
                let path = if state == LinkState::Connected {
                    self.restarts = 0;
                    self.connected_once = true;
                    self.handshake_deadline = None;
                    self.connection.path().await
                } else {
                    None
                };
                self.report(Event::LinkState {
                    peer: self.remote,
                    state,
                    path,
                })
                .await;
                // The impolite side restarts ICE; the other side answers the new offer. (An
                // outage shorter than ICE's failure timeout heals by itself; a restart while
                // the path is still down would only spend its checks.)
                if state == LinkState::Failed && !self.polite {
                    self.restart_ice("ICE failed").await;
                }
            }
        }
    }

    /// Offers a new ICE session (gathering on the host's addresses as they are
    /// now), while restarts remain; perfect negotiation settles an offer that
    /// crosses the peer's.
    async fn restart_ice(&mut self, why: &str) {
        if self.restarts >= MAX_ICE_RESTARTS {
            return;
        }
        self.restarts += 1;
        tracing::info!(peer = %self.remote, attempt = self.restarts, why, "restarting ICE");
        if let Err(err) = self.send_offer(true).await {
            tracing::warn!(peer = %self.remote, %err, "ICE restart failed");
        }
    }

    /// After the signaling server lost signals (it was restarted, and the
    /// session resumed on a shared broker), a link still negotiating may wait
    /// forever for an offer, answer or candidates that are gone. The side
    /// holding an unanswered offer makes a fresh one; if both sides have
    /// answered but the link is not up, the impolite side restarts ICE. Both
    /// offers restart ICE, so the candidates are gathered and sent again.
    async fn renegotiate_after_resume(&mut self) -> Result<(), Error> {
        if self.reported_state == Some(LinkState::Connected) {
            return Ok(());
        }
        if self.connection.has_pending_offer().await {
            tracing::info!(peer = %self.remote, "signaling resumed mid-negotiation; offering again");
            self.connection.rollback().await?;
            self.send_offer(true).await
        } else if !self.polite && self.connection.has_remote_description().await {
            tracing::info!(peer = %self.remote, "signaling resumed before the link came up; restarting ICE");
            self.send_offer(true).await
        } else {
            Ok(())
        }
    }

    /// Starts the DTLS deadline of the current connection, `extra` later
    /// than usual. The answering side waits longer: the offering side is the
    /// one that starts over.
    fn arm_handshake_deadline(&mut self, extra: Duration) {
        let wait = if self.initiator {
            DTLS_HANDSHAKE_DEADLINE
        } else {
            DTLS_HANDSHAKE_DEADLINE + DTLS_REBUILD_GRACE
        };
        self.handshake_deadline = Some(Instant::now() + wait + extra);
    }

    /// The DTLS handshake of the current connection failed (`why`) before the
    /// link ever connected. The offering side builds a new connection and
    /// offers it while attempts remain; the answering side gives up, since the
    /// offering side did not start over in time.
    async fn on_handshake_failed(&mut self, why: &str) {
        if self.connected_once {
            return;
        }
        tracing::warn!(peer = %self.remote, why, attempt = self.rebuilds, "DTLS handshake failed");
        if !self.initiator || self.rebuilds >= MAX_REBUILDS {
            self.give_up(format!(
                "the DTLS handshake failed ({why}) on {} connection(s)",
                self.rebuilds + 1
            ))
            .await;
            return;
        }
        let result = async {
            self.rebuild().await?;
            self.send_offer(false).await
        }
        .await;
        if let Err(err) = result {
            self.give_up(format!("could not start a new connection: {err}"))
                .await;
        }
    }

    /// An offer carries a DTLS fingerprint other than the current remote
    /// description's: the peer started over on a new connection. Returns
    /// whether the offer should be processed (on a new connection of ours).
    async fn start_over_for(&mut self, offered: &str) -> Result<bool, Error> {
        if self.connected_once {
            return Err(Error::BadSignal(
                "the peer changed its DTLS certificate on an established link".into(),
            ));
        }
        if self.rebuilds >= MAX_REBUILDS {
            self.give_up(format!(
                "the peer started over more than {MAX_REBUILDS} times"
            ))
            .await;
            return Ok(false);
        }
        tracing::info!(peer = %self.remote, offered, "the peer started over on a new connection; so does this side");
        self.rebuild().await?;
        Ok(true)
    }

    /// Replaces the connection with a new one (new certificate, fresh ICE)
    /// and creates this side's channels on it again. Sends no offer.
    async fn rebuild(&mut self) -> Result<(), Error> {
        self.rebuilds += 1;
        let (connection, events) =
            RtcConnection::new(&self.ctx.options, &self.ctx.ice_servers).await?;
        if let Some(left) = self.connection.remote_fingerprint().await
            && !self.left_fingerprints.contains(&left)
        {
            self.left_fingerprints.push(left);
        }
        self.fate.send_replace(Fate::Replaced);
        self.fate = watch::Sender::new(Fate::Current);
        let old = std::mem::replace(&mut self.connection, Arc::new(connection));
        if let Ok(mut current) = self.current.lock() {
            *current = Arc::clone(&self.connection);
        }
        self.rtc_events = events;
        self.negotiated_created = false;
        tokio::spawn(async move { old.close().await });
        self.early_candidates.clear();
        self.ignore_offer = false;
        // Bounded even if the new connection never gets as far as ICE (its
        // offer or answer lost, or refused); ICE connecting re-arms it.
        self.arm_handshake_deadline(DTLS_REBUILD_GRACE);
        tracing::info!(peer = %self.remote, attempt = self.rebuilds, "new connection after a failed DTLS handshake");
        self.create_own_channels().await
    }

    /// Creates the channels this side opened before the link connected, and
    /// the negotiated ones.
    async fn create_own_channels(&mut self) -> Result<(), Error> {
        for label in self.own_labels.clone() {
            let channel = self.connection.create_channel(&label, None).await?;
            self.watch_channel(channel, false);
        }
        self.create_negotiated_channels().await
    }

    /// Creates the negotiated channels on the current connection, once: the
    /// offering side before its first offer, the answering side when it
    /// answers one (its channels then exist before the association is up).
    async fn create_negotiated_channels(&mut self) -> Result<(), Error> {
        if self.negotiated_created {
            return Ok(());
        }
        self.negotiated_created = true;
        for negotiated in self.ctx.negotiated_channels.clone() {
            let channel = self
                .connection
                .create_channel(&negotiated.label, Some(negotiated.id))
                .await?;
            self.watch_channel(channel, false);
        }
        Ok(())
    }

    /// Reports the link failed for good, with `why`.
    async fn give_up(&mut self, why: String) {
        self.handshake_deadline = None;
        self.fate.send_replace(Fate::Failed);
        tracing::warn!(peer = %self.remote, %why, "giving up on the link");
        if self.reported_state != Some(LinkState::Failed) {
            self.reported_state = Some(LinkState::Failed);
            self.report(Event::LinkState {
                peer: self.remote,
                state: LinkState::Failed,
                path: None,
            })
            .await;
        }
        self.report(Event::PeerError {
            peer: self.remote,
            error: why,
        })
        .await;
    }

    async fn send_offer(&mut self, ice_restart: bool) -> Result<(), Error> {
        let offer = self.connection.create_offer(ice_restart).await?;
        self.send(PeerSignal::Description(offer));
        Ok(())
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
    fn watch_channel(&self, channel: RtcChannel, incoming: bool) {
        let peer = self.remote;
        let events = self.ctx.events.clone();
        let channels = Arc::clone(&self.ctx.channels);
        let mut fate = self.fate.subscribe();
        let counted = incoming.then(|| {
            self.incoming_channels.fetch_add(1, Ordering::Relaxed);
            Arc::clone(&self.incoming_channels)
        });
        tokio::spawn(async move {
            let label = channel.label().to_owned();
            let mut open = false;
            let announce = |open: &mut bool| {
                if *open {
                    return None;
                }
                *open = true;
                let handle = Channel::new(peer, channel.clone());
                if let Ok(mut map) = channels.lock() {
                    map.entry(peer)
                        .or_default()
                        .insert(label.clone(), handle.clone());
                }
                Some(Event::ChannelOpen {
                    peer,
                    channel: handle,
                })
            };
            if incoming
                && channel.is_open().await
                && let Some(event) = announce(&mut open)
            {
                let _ = events.send(event).await;
            }
            let replaced = loop {
                let event = match channel.next_event().await {
                    ChannelEvent::Open => match announce(&mut open) {
                        Some(event) => event,
                        None => continue,
                    },
                    ChannelEvent::Message(payload) => Event::Message {
                        peer,
                        label: label.clone(),
                        payload,
                    },
                    // A channel that never opened on a connection that stopped
                    // ends silently if a new connection replaces it (its
                    // successor is created there); the link decides which.
                    ChannelEvent::Gone if !open => {
                        break fate
                            .wait_for(|fate| *fate != Fate::Current)
                            .await
                            .is_ok_and(|fate| *fate == Fate::Replaced);
                    }
                    ChannelEvent::Closed | ChannelEvent::Gone => break false,
                };
                if events.send(event).await.is_err() {
                    return;
                }
            };
            if open
                && let Ok(mut map) = channels.lock()
                && let Some(peer_channels) = map.get_mut(&peer)
            {
                peer_channels.remove(&label);
                if peer_channels.is_empty() {
                    map.remove(&peer);
                }
            }
            if let Some(counted) = counted {
                counted.fetch_sub(1, Ordering::Relaxed);
            }
            if !replaced {
                let _ = events.send(Event::ChannelClosed { peer, label }).await;
            }
        });
    }
}

#[cfg(test)]
mod dtls_failure_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Payload;

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
