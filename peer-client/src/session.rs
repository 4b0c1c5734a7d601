//! A session: one membership in one room, with a link to every other peer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use signaling_protocol::{ErrorCode, IceServer, PeerId};
use tokio::sync::mpsc;

use crate::channel::Channel;
use crate::chat::CHAT_LABEL;
use crate::engine::{DtlsFingerprints, NetStats};
use crate::error::Error;
use crate::event::{Event, SignalingStatus};
use crate::options::{NegotiatedChannel, TransportOptions};
use crate::payload::Payload;
use crate::peer::{ChannelMap, LinkContext, Outbound, PeerLink};
use crate::signal::{PeerSignal, SdpKind};
use crate::signaling::{QUEUE, SignalingClient, SignalingEvent, Welcome};

/// Most links one session keeps; signals from further peers are ignored.
const MAX_PEERS: usize = 64;

/// How to connect.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// WebSocket URL of the signaling server, e.g. `ws://127.0.0.1:8080/ws`.
    pub server: String,
    /// Room to join.
    pub room: String,
    /// STUN/TURN servers to use instead of the ones the server announces.
    pub ice_servers: Option<Vec<IceServer>>,
    /// Transport settings.
    pub transport: TransportOptions,
    /// Channels the offering side opens with its first offer.
    pub initial_channels: Vec<String>,
    /// Channels both sides of every link create with agreed stream ids: the
    /// offering side before its first offer, the answering side when it
    /// answers; they open without a DCEP round trip.
    pub negotiated_channels: Vec<NegotiatedChannel>,
}

impl SessionConfig {
    /// Defaults: the server's ICE servers, a `chat` channel, tuned transport.
    pub fn new(server: impl Into<String>, room: impl Into<String>) -> Self {
        Self {
            server: server.into(),
            room: room.into(),
            ice_servers: None,
            transport: TransportOptions::default(),
            initial_channels: vec![CHAT_LABEL.to_owned()],
            negotiated_channels: Vec::new(),
        }
    }
}

/// A joined room. Read its [`Event`]s with [`Session::next_event`]; send
/// through [`Session::handle`] (or the [`Channel`] handles that events carry).
pub struct Session {
    handle: SessionHandle,
    events: mpsc::Receiver<Event>,
    peers_at_join: Vec<PeerId>,
}

/// A cloneable handle that sends on a session's channels.
#[derive(Clone)]
pub struct SessionHandle {
    shared: Arc<SessionState>,
    commands: mpsc::Sender<Command>,
}

/// Locks `mutex`; a lock poisoned by a panicking holder is used as it is
/// (every value behind these locks stays consistent between statements).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the session's handle and its task share.
struct SessionState {
    room: String,
    id: Mutex<PeerId>,
    channels: ChannelMap,
}

enum Command {
    OpenChannel {
        peer: PeerId,
        label: String,
        reply: tokio::sync::oneshot::Sender<Result<Channel, Error>>,
    },
    NetStats(tokio::sync::oneshot::Sender<HashMap<PeerId, NetStats>>),
    Fingerprints {
        peer: PeerId,
        reply: tokio::sync::oneshot::Sender<Option<DtlsFingerprints>>,
    },
    Close(tokio::sync::oneshot::Sender<()>),
}

impl Session {
    /// Connects to the signaling server and joins the room. Fails with
    /// [`Error::ServerUnreachable`], [`Error::RoomFull`] or
    /// [`Error::JoinRefused`] when that is what happened.
    pub async fn connect(config: SessionConfig) -> Result<Self, Error> {
        let (signaling, welcome, signaling_events) =
            SignalingClient::connect(&config.server, &config.room).await?;
        let (events_tx, events) = mpsc::channel(QUEUE);
        let (outbound_tx, outbound) = mpsc::channel(QUEUE);
        let (commands, commands_rx) = mpsc::channel(16);
        let shared = Arc::new(SessionState {
            room: config.room.clone(),
            id: Mutex::new(welcome.peer_id),
            channels: Arc::default(),
        });
        let ice_servers = config
            .ice_servers
            .clone()
            .unwrap_or_else(|| welcome.ice_servers.clone());
        let ctx = LinkContext {
            local: welcome.peer_id,
            options: config.transport.clone(),
            ice_servers,
            outbound: outbound_tx,
            events: events_tx,
            channels: Arc::clone(&shared.channels),
            initial_channels: config.initial_channels.clone(),
            negotiated_channels: config.negotiated_channels.clone(),
        };
        let mut room = Room {
            shared: Arc::clone(&shared),
            ctx,
            signaling,
            links: HashMap::new(),
            ice_override: config.ice_servers.is_some(),
        };
        tracing::info!(peer_id = %welcome.peer_id, room = %config.room, peers = welcome.peers.len(), "joined");
        let peers_at_join = welcome.peers.clone();
        room.offer_to(&welcome.peers).await;
        tokio::spawn(room.run(signaling_events, outbound, commands_rx));
        Ok(Self {
            handle: SessionHandle { shared, commands },
            events,
            peers_at_join,
        })
    }

    /// Our peer id in the room.
    pub fn id(&self) -> PeerId {
        self.handle.id()
    }

    /// The peers that were in the room when we joined (we offered to each).
    pub fn peers_at_join(&self) -> &[PeerId] {
        &self.peers_at_join
    }

    /// A handle for sending from other tasks.
    pub fn handle(&self) -> SessionHandle {
        self.handle.clone()
    }

    /// The next event; `None` once the session is closed.
    ///
    /// Events wait in a bounded queue. While it is full, incoming messages
    /// stay in the data channels (the senders slow down) and the session's
    /// own work waits too, so keep reading events while awaiting a
    /// [`SessionHandle`] call from the same task.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// Leaves the room and closes every connection.
    pub async fn close(self) {
        self.handle.close().await
    }
}

impl SessionHandle {
    /// Our peer id in the room (it changes only if a resume was refused).
    pub fn id(&self) -> PeerId {
        *lock(&self.shared.id)
    }

    /// The room's name.
    pub fn room(&self) -> &str {
        &self.shared.room
    }

    /// Peers with at least one open channel.
    pub fn connected_peers(&self) -> Vec<PeerId> {
        lock(&self.shared.channels)
            .iter()
            .filter(|(_, c)| !c.is_empty())
            .map(|(p, _)| *p)
            .collect()
    }

    /// The open channel `label` to `peer`, if any.
    pub fn channel(&self, peer: PeerId, label: &str) -> Option<Channel> {
        lock(&self.shared.channels).get(&peer)?.get(label).cloned()
    }

    /// Sends on channel `label` to `peer`.
    pub async fn send(&self, peer: PeerId, label: &str, payload: Payload) -> Result<(), Error> {
        let channel = self.channel(peer, label).ok_or_else(|| {
            if lock(&self.shared.channels)
                .get(&peer)
                .is_some_and(|c| !c.is_empty())
            {
                Error::NoSuchChannel {
                    peer,
                    label: label.to_owned(),
                }
            } else {
                Error::PeerGone(peer)
            }
        })?;
        channel.send(payload).await
    }

    /// Sends on channel `label` to every peer that has it open; returns how
    /// many peers it was sent to. A peer whose channel fails is skipped.
    pub async fn broadcast(&self, label: &str, payload: Payload) -> usize {
        let channels: Vec<Channel> = lock(&self.shared.channels)
            .values()
            .filter_map(|c| c.get(label).cloned())
            .collect();
        let mut sent = 0;
        for channel in channels {
            match channel.send(payload.clone()).await {
                Ok(()) => sent += 1,
                Err(err) => {
                    tracing::debug!(peer = %channel.peer(), %err, "broadcast skipped a peer")
                }
            }
        }
        sent
    }

    /// Opens another reliable, ordered channel to `peer`. It is usable once
    /// [`Event::ChannelOpen`] reports it.
    pub async fn open_channel(&self, peer: PeerId, label: &str) -> Result<Channel, Error> {
        let (reply, wait) = tokio::sync::oneshot::channel();
        self.commands
            .send(Command::OpenChannel {
                peer,
                label: label.to_owned(),
                reply,
            })
            .await
            .map_err(|_| Error::SessionClosed)?;
        wait.await.map_err(|_| Error::SessionClosed)?
    }

    /// The DTLS certificate fingerprints of the link to `peer` (ours and
    /// theirs). A program that shares a secret with the peer (a code phrase)
    /// can prove it over these values on a data channel, so that a signaling
    /// server cannot sit in the middle.
    pub async fn fingerprints(&self, peer: PeerId) -> Result<DtlsFingerprints, Error> {
        let (reply, wait) = tokio::sync::oneshot::channel();
        self.commands
            .send(Command::Fingerprints { peer, reply })
            .await
            .map_err(|_| Error::SessionClosed)?;
        wait.await
            .map_err(|_| Error::SessionClosed)?
            .ok_or(Error::PeerGone(peer))
    }

    /// Datagram counters of every link.
    pub async fn net_stats(&self) -> HashMap<PeerId, NetStats> {
        let (reply, wait) = tokio::sync::oneshot::channel();
        if self.commands.send(Command::NetStats(reply)).await.is_err() {
            return HashMap::new();
        }
        wait.await.unwrap_or_default()
    }

    /// Leaves the room and closes every connection.
    pub async fn close(&self) {
        let (reply, wait) = tokio::sync::oneshot::channel();
        if self.commands.send(Command::Close(reply)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// The session's task: routes signals between the server and the links.
struct Room {
    shared: Arc<SessionState>,
    ctx: LinkContext,
    signaling: SignalingClient,
    links: HashMap<PeerId, PeerLink>,
    ice_override: bool,
}

impl Room {
    async fn run(
        mut self,
        mut signaling_events: mpsc::Receiver<SignalingEvent>,
        mut outbound: mpsc::Receiver<Outbound>,
        mut commands: mpsc::Receiver<Command>,
    ) {
        loop {
            tokio::select! {
                Some(event) = signaling_events.recv() => self.on_signaling(event).await,
                Some(out) = outbound.recv() => {
                    if !self.signaling.signal(out.to, out.signal.to_raw()) {
                        tracing::warn!(peer = %out.to, "signaling queue full; dropped a signal");
                    }
                }
                command = commands.recv() => match command {
                    Some(Command::OpenChannel { peer, label, reply }) => {
                        let result = match self.links.get(&peer) {
                            Some(link) => link.open_channel(label).await,
                            None => Err(Error::PeerGone(peer)),
                        };
                        let _ = reply.send(result);
                    }
                    Some(Command::Fingerprints { peer, reply }) => {
                        let fingerprints = match self.links.get(&peer) {
                            Some(link) => link.fingerprints().await,
                            None => None,
                        };
                        let _ = reply.send(fingerprints);
                    }
                    Some(Command::NetStats(reply)) => {
                        let stats = self.links.iter().map(|(peer, link)| (*peer, link.net_stats())).collect();
                        let _ = reply.send(stats);
                    }
                    Some(Command::Close(reply)) => {
                        self.signaling.leave().await;
                        self.links.clear();
                        let _ = reply.send(());
                        return;
                    }
                    None => {
                        self.signaling.leave().await;
                        return;
                    }
                },
            }
        }
    }

    async fn on_signaling(&mut self, event: SignalingEvent) {
        match event {
            SignalingEvent::PeerJoined(peer) => self.emit(Event::PeerJoined(peer)).await,
            SignalingEvent::PeerLeft(peer) => {
                self.links.remove(&peer);
                self.emit(Event::PeerLeft(peer)).await;
            }
            SignalingEvent::Signal { from, data } => {
                let signal = match PeerSignal::parse(&data) {
                    Ok(signal) => signal,
                    Err(err) => {
                        tracing::warn!(peer = %from, %err, "ignoring a signal");
                        self.emit(Event::PeerError {
                            peer: from,
                            error: err.to_string(),
                        })
                        .await;
                        return;
                    }
                };
                if !self.links.contains_key(&from) {
                    let opens =
                        matches!(&signal, PeerSignal::Description(d) if d.kind == SdpKind::Offer);
                    // A peer's offer precedes its candidates on the one socket the
                    // server relays them over; anything else without a link is left
                    // over from a peer that is gone.
                    if !opens {
                        tracing::debug!(peer = %from, "signal from a peer without a link ignored");
                        return;
                    }
                    if self.links.len() >= MAX_PEERS {
                        tracing::warn!(peer = %from, "too many peers; signal ignored");
                        return;
                    }
                    self.start_link(from, false).await;
                }
                if let Some(link) = self.links.get(&from) {
                    link.deliver(signal);
                }
            }
            SignalingEvent::Refused {
                code,
                message,
                peer_id,
            } => {
                if code == ErrorCode::UnknownPeer {
                    // Candidates still trickling towards a peer that just left.
                    tracing::debug!(%message, peer = ?peer_id, "signal to a peer that is gone");
                } else if let (ErrorCode::Internal, Some(link)) =
                    (code, peer_id.and_then(|peer| self.links.get(&peer)))
                {
                    // The server could not carry a signal to this peer (its room store was
                    // unreachable): the link negotiates again a little later.
                    tracing::info!(%message, peer = ?peer_id, "a signal was lost in the server; the link will negotiate again");
                    link.signal_lost();
                } else {
                    tracing::warn!(%code, %message, peer = ?peer_id, "the signaling server refused a message");
                }
            }
            SignalingEvent::Disconnected(reason) => {
                self.emit(Event::Signaling(SignalingStatus::Reconnecting { reason }))
                    .await;
            }
            SignalingEvent::Rejoined(welcome) => self.on_rejoined(welcome).await,
        }
    }

    async fn on_rejoined(&mut self, welcome: Welcome) {
        if !welcome.resumed {
            // The server forgot us (it restarted, or the grace period ran out): the
            // others know us by the new id only, and drop their links to the old one.
            // Start over like a newcomer, as the web client does.
            *lock(&self.shared.id) = welcome.peer_id;
            self.ctx.local = welcome.peer_id;
            if !self.ice_override {
                self.ctx.ice_servers = welcome.ice_servers.clone();
            }
            let old: Vec<PeerId> = self.links.drain().map(|(peer, _)| peer).collect();
            for peer in old {
                self.emit(Event::PeerLeft(peer)).await;
            }
            self.offer_to(&welcome.peers).await;
        } else {
            for link in self.links.values() {
                link.signaling_resumed();
            }
        }
        self.emit(Event::Signaling(SignalingStatus::Reconnected {
            resumed: welcome.resumed,
            peer_id: welcome.peer_id,
        }))
        .await;
    }

    /// Offers a connection to each of `peers` (we are the newcomer).
    async fn offer_to(&mut self, peers: &[PeerId]) {
        for peer in peers.iter().take(MAX_PEERS) {
            self.start_link(*peer, true).await;
        }
    }

    async fn start_link(&mut self, peer: PeerId, offer: bool) {
        match PeerLink::start(self.ctx.clone(), peer, offer).await {
            Ok(link) => {
                self.links.insert(peer, link);
            }
            Err(err) => {
                tracing::warn!(%peer, %err, "could not set up a connection");
                self.emit(Event::PeerError {
                    peer,
                    error: err.to_string(),
                })
                .await;
            }
        }
    }

    async fn emit(&self, event: Event) {
        let _ = self.ctx.events.send(event).await;
    }
}
