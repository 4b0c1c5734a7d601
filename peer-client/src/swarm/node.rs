//! One peer of a swarm, sender or receiver: the loop that reads the
//! session's events, runs each link's handshake, keeps every peer told what
//! it has, serves what peers ask for and, as a receiver, asks for what it
//! lacks (the decisions are the [`Scheduler`]'s) and checks every piece
//! before it is written.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use fixedbitset::FixedBitSet;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use signaling_protocol::PeerId;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::content::{Content, OfferReader, ReadOffer};
use super::handshake::Handshake;
use super::scheduler::{Arrival, Scheduler};
use super::seeding::{Advert, Seeding};
use super::uploader::{Outgoing, UploadReport, Uploader};
use super::{MAX_FAILED_PROOFS, MAX_PEERS, PeerNews, SwarmProgress, bitfield};
use crate::auth::{AuthError, Code, Role};
use crate::event::Event;
use crate::link_state::LinkState;
use crate::payload::Payload;
use crate::session::Session;
use crate::transfer::{Message, TRANSFER_LABEL, TransferError};

/// Messages kept from a peer whose channel's open event is not seen yet.
const EARLY_MESSAGES: usize = 8;
/// Longest wait for what was sent to be acknowledged before leaving.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// How often the node looks for stalled peers and missing pieces.
const TICK: Duration = Duration::from_millis(500);

/// A receiver's decision on an offer, as a future (the user may be asked).
pub type Decision = Pin<Box<dyn Future<Output = bool> + Send>>;

/// A piece checked (and, if good, written) on a blocking thread.
struct Checked {
    peer: PeerId,
    piece: u32,
    outcome: Result<bool, TransferError>,
}

/// A piece arriving from a peer.
struct Arriving {
    piece: u32,
    data: BytesMut,
    len: usize,
}

struct Link {
    uploader: Uploader,
    handshake: Option<Handshake>,
    /// The role the peer proved.
    role: Option<Role>,
    arriving: Option<Arriving>,
    /// A bitfield that came before this side knew the offer.
    pending_bitfield: Option<(String, String)>,
    /// Pieces it announced after that bitfield, before this side knew the
    /// offer (at most [`MAX_PIECES`](super::MAX_PIECES)).
    pending_haves: Vec<u32>,
    /// What the peer has, as the sender tracks it (receivers use the scheduler).
    has: Option<FixedBitSet>,
}

/// How a node ended.
pub enum Ending {
    /// A sender: the receivers asked for finished. A receiver: every file is
    /// verified and no connected peer needs anything more.
    Finished,
    /// A receiver declined the offer.
    Declined,
}

/// One peer of a swarm.
pub struct Node<'a> {
    pub(super) session: Session,
    code: Code,
    role: Role,
    idle: Duration,
    started: Instant,
    links: BTreeMap<PeerId, Link>,
    /// Whether any peer's transfer channel opened: a receiver that then
    /// finds no sender was not let down by the path.
    linked: bool,
    early: HashMap<PeerId, VecDeque<Payload>>,
    pub(super) content: Option<Arc<Content>>,
    scheduler: Option<Scheduler<PeerId>>,
    /// The sender's advertising.
    seeding: Option<Seeding<PeerId>>,
    /// Pieces still missing of each manifest entry (a receiver's).
    missing_of_entry: Vec<u32>,
    checking: FuturesUnordered<JoinHandle<Checked>>,
    /// Tasks of dropped links still sending their last words.
    retiring: Vec<JoinHandle<()>>,
    reports: mpsc::Receiver<UploadReport>,
    reports_tx: mpsc::Sender<UploadReport>,
    progress: &'a mut dyn SwarmProgress,
    failed_proofs: usize,
    /// A receiver's sender, once it proved itself.
    sender: Option<PeerId>,
    /// The other peers in the room, as the server reports them.
    room: BTreeSet<PeerId>,
    /// Peers dropped for an error, and the first such error: a receiver
    /// that every peer of the room turned away (a wrong code) stops with it.
    refused: BTreeSet<PeerId>,
    first_refusal: Option<TransferError>,
    offer: OfferReader,
    /// A receiver's offer awaiting the decision.
    pending_offer: Option<ReadOffer>,
    /// Receivers that hold every piece.
    finished: BTreeSet<PeerId>,
    /// The sender's count of receivers that hold each piece.
    holders: Vec<u16>,
    /// Pieces some receiver holds, and whether the sender said so once all did.
    held_somewhere: usize,
    told_seeded: bool,
    /// When a receiver last had work (served or received a piece).
    last_work: Instant,
    /// Since when pieces are missing that no peer has.
    unavailable_since: Option<Instant>,
    pub(super) received_bytes: u64,
    pub(super) uploaded_bytes: u64,
    pub(super) held_bytes: u64,
}

impl<'a> Node<'a> {
    /// A node in `session` (already in the code's swarm room).
    pub fn new(
        session: Session,
        code: Code,
        role: Role,
        idle: Duration,
        content: Option<Arc<Content>>,
        progress: &'a mut dyn SwarmProgress,
    ) -> Self {
        let (reports_tx, reports) = mpsc::channel(64);
        let now = Instant::now();
        let room = session.peers_at_join().iter().copied().collect();
        let seeding = content
            .as_ref()
            .filter(|_| role == Role::Sender)
            .map(|content| Seeding::new(content.map.len()));
        Self {
            session,
            code,
            role,
            idle,
            started: now,
            links: BTreeMap::new(),
            linked: false,
            early: HashMap::new(),
            content,
            seeding,
            scheduler: None,
            missing_of_entry: Vec::new(),
            checking: FuturesUnordered::new(),
            retiring: Vec::new(),
            reports,
            reports_tx,
            progress,
            failed_proofs: 0,
            sender: None,
            room,
            refused: BTreeSet::new(),
            first_refusal: None,
            offer: OfferReader::Start,
            pending_offer: None,
            finished: BTreeSet::new(),
            holders: Vec::new(),
            held_somewhere: 0,
            told_seeded: false,
            last_work: now,
            unavailable_since: None,
            received_bytes: 0,
            uploaded_bytes: 0,
            held_bytes: 0,
        }
    }

    /// Runs until the swarm is done for this node. A receiver calls
    /// `decide` once the sender's offer is complete, and `accept` with the
    /// offer if the decision is yes (to prepare its disk).
    pub async fn run<A>(
        &mut self,
        wanted_receivers: usize,
        mut decide: impl FnMut(&ReadOffer) -> Decision,
        mut accept: impl FnMut(ReadOffer) -> A,
    ) -> Result<Ending, TransferError>
    where
        // A plain closure returning a future rather than an async closure: the compiler cannot
        // yet prove a future that holds an async closure `Send` for every lifetime it borrows.
        A: Future<Output = Result<(Content, FixedBitSet), TransferError>>,
    {
        let mut tick = tokio::time::interval(TICK);
        let mut decision: Option<Decision> = None;
        loop {
            if self.is_done(wanted_receivers) {
                return Ok(Ending::Finished);
            }
            tokio::select! {
                event = self.session.next_event() => match event {
                    Some(event) => self.on_event(event).await?,
                    None => return Err(TransferError::Gone("the session ended")),
                },
                Some(checked) = self.checking.next(), if !self.checking.is_empty() => {
                    let checked = checked.map_err(|_| TransferError::Gone("a disk task ended"))?;
                    self.on_checked(checked).await?;
                }
                Some(report) = self.reports.recv() => self.on_report(report)?,
                yes = async {
                    match decision.as_mut() {
                        Some(decision) => decision.await,
                        None => std::future::pending().await,
                    }
                }, if decision.is_some() => {
                    decision = None;
                    let Some(offer) = self.pending_offer.take() else { continue };
                    if !yes {
                        return Ok(Ending::Declined);
                    }
                    let (content, have) = accept(offer).await?;
                    self.start_receiving(content, have);
                }
                _ = tick.tick() => self.on_tick()?,
            }
            if decision.is_none()
                && let Some(offer) = &self.pending_offer
            {
                decision = Some(decide(offer));
            }
        }
    }

    fn is_done(&self, wanted_receivers: usize) -> bool {
        match self.role {
            // A receiver's claim to hold everything cannot be checked, so
            // the sender also stays while a connected receiver is short.
            Role::Sender => {
                self.finished.len() >= wanted_receivers
                    && self
                        .links
                        .iter()
                        .all(|(peer, link)| link.role.is_none() || self.finished.contains(peer))
            }
            Role::Receiver => {
                let Some(scheduler) = &self.scheduler else {
                    return false;
                };
                scheduler.is_complete()
                    && self.checking.is_empty()
                    && (self.idle_for() >= self.idle
                        || self.links.iter().all(|(peer, link)| {
                            link.role.is_some() && scheduler.peer_is_complete(*peer)
                        }))
            }
        }
    }

    fn idle_for(&self) -> Duration {
        self.last_work.elapsed()
    }

    async fn on_event(&mut self, event: Event) -> Result<(), TransferError> {
        match event {
            Event::ChannelOpen { peer, channel } if channel.label() == TRANSFER_LABEL => {
                if self.links.len() >= MAX_PEERS {
                    let _ = channel
                        .send(Payload::Text(
                            Message::Error {
                                message: format!("this swarm is full ({MAX_PEERS} peers)"),
                            }
                            .to_json(),
                        ))
                        .await;
                    return Ok(());
                }
                self.linked = true;
                let uploader = Uploader::start(channel, self.reports_tx.clone());
                let (handshake, pake) = Handshake::start(&self.code);
                uploader.send(Outgoing::Message(pake));
                self.links.insert(
                    peer,
                    Link {
                        uploader,
                        handshake: Some(handshake),
                        role: None,
                        arriving: None,
                        pending_bitfield: None,
                        pending_haves: Vec::new(),
                        has: None,
                    },
                );
                for payload in self.early.remove(&peer).unwrap_or_default() {
                    self.on_message(peer, payload).await?;
                }
            }
            Event::Message {
                peer,
                label,
                payload,
            } if label == TRANSFER_LABEL => {
                if self.links.contains_key(&peer) {
                    self.on_message(peer, payload).await?;
                } else if self.early.len() < MAX_PEERS {
                    let early = self.early.entry(peer).or_default();
                    if early.len() < EARLY_MESSAGES {
                        early.push_back(payload);
                    }
                }
            }
            Event::PeerJoined(peer) => {
                self.room.insert(peer);
            }
            Event::PeerLeft(peer) => {
                self.room.remove(&peer);
                self.early.remove(&peer);
                self.drop_peer(peer, None)?;
                self.check_turned_away()?;
            }
            Event::ChannelClosed { peer, .. }
            | Event::LinkState {
                peer,
                state: LinkState::Failed | LinkState::Closed,
                ..
            } => {
                self.early.remove(&peer);
                self.drop_peer(peer, None)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// A message from `peer`: what it breaks drops that peer only, unless
    /// this node cannot go on without it.
    async fn on_message(&mut self, peer: PeerId, payload: Payload) -> Result<(), TransferError> {
        match self.handle(peer, payload).await {
            Ok(()) => Ok(()),
            Err(err @ TransferError::Write { .. } | err @ TransferError::NotPermitted { .. }) => {
                Err(err)
            }
            Err(err) => {
                // A wrong code found by either side: the peer's own verdict
                // may arrive first, as its `error`, before it proved anything.
                let unproven = self
                    .links
                    .get(&peer)
                    .is_some_and(|link| link.role.is_none());
                let guessed = match &err {
                    TransferError::Auth(AuthError::Mismatch { .. }) => true,
                    TransferError::Peer(_) => unproven,
                    _ => false,
                };
                if guessed {
                    self.failed_proofs += 1;
                    if self.role == Role::Sender && self.failed_proofs >= MAX_FAILED_PROOFS {
                        self.drop_peer(peer, Some(err))?;
                        return Err(TransferError::Guessing {
                            failures: self.failed_proofs,
                        });
                    }
                }
                self.drop_peer(peer, Some(err))
            }
        }
    }

    async fn handle(&mut self, peer: PeerId, payload: Payload) -> Result<(), TransferError> {
        let message = match payload {
            Payload::Binary(data) => return self.piece_data(peer, data),
            Payload::Text(text) => Message::parse(&text)?,
        };
        let Some(link) = self.links.get_mut(&peer) else {
            return Ok(());
        };
        if link.role.is_none() {
            return match message {
                Message::Pake { message } => {
                    let handshake = link.handshake.take().ok_or_else(|| {
                        TransferError::Protocol("a second key-exchange message".into())
                    })?;
                    let fingerprints = self.session.handle().fingerprints(peer).await?;
                    let (handshake, confirm) =
                        handshake.on_pake(&message, self.role, fingerprints)?;
                    if let Some(link) = self.links.get_mut(&peer) {
                        link.handshake = Some(handshake);
                        link.uploader.send(Outgoing::Message(confirm));
                    }
                    Ok(())
                }
                Message::Confirm { mac } => {
                    let handshake = link.handshake.take().ok_or_else(|| {
                        TransferError::Protocol("a key confirmation out of turn".into())
                    })?;
                    let role = handshake.on_confirm(&mac, self.role.consequence())?;
                    self.proven(peer, role)
                }
                Message::Error { message } => Err(TransferError::Peer(crate::printable(&message))),
                other => Err(TransferError::Protocol(format!(
                    "a message of type {:?} before the code was proved",
                    other.kind()
                ))),
            };
        }
        match message {
            Message::Error { message } => Err(TransferError::Peer(crate::printable(&message))),
            Message::Decline if self.role == Role::Sender => {
                self.progress.peer(peer, PeerNews::Declined);
                self.drop_peer(peer, None)
            }
            offer @ (Message::SwarmOffer { .. }
            | Message::Entry { .. }
            | Message::Hashes { .. })
                if self.sender == Some(peer)
                    && self.content.is_none()
                    && self.pending_offer.is_none() =>
            {
                self.pending_offer = self.offer.push(offer)?;
                Ok(())
            }
            Message::Bitfield { have, digest } => {
                if self.content.is_some() {
                    self.apply_bitfield(peer, &have, &digest)
                } else {
                    // A later one (the sender telling more) covers the first.
                    link.pending_bitfield = Some((have, digest));
                    Ok(())
                }
            }
            Message::Have { piece } if self.content.is_none() => {
                if link.pending_bitfield.is_none() || link.pending_haves.len() >= super::MAX_PIECES
                {
                    return Err(TransferError::Protocol(
                        "pieces announced out of turn".into(),
                    ));
                }
                link.pending_haves.push(piece);
                Ok(())
            }
            Message::Have { piece } => self.peer_has(peer, piece),
            Message::Request { piece } => self.requested(peer, piece),
            Message::Piece { piece } => {
                let asked = self
                    .scheduler
                    .as_ref()
                    .is_some_and(|scheduler| scheduler.is_asked_of(peer, piece));
                let len = self
                    .content
                    .as_ref()
                    .and_then(|content| content.map.piece(piece))
                    .map_or(0, |place| place.len as usize);
                if !asked || link.arriving.is_some() {
                    return Err(TransferError::Protocol(format!(
                        "piece {piece} was sent without being asked for"
                    )));
                }
                link.arriving = Some(Arriving {
                    piece,
                    data: BytesMut::with_capacity(len),
                    len,
                });
                Ok(())
            }
            other => Err(TransferError::Protocol(format!(
                "an unexpected message of type {:?}",
                other.kind()
            ))),
        }
    }

    /// `peer` proved the code, in `role`.
    fn proven(&mut self, peer: PeerId, role: Role) -> Result<(), TransferError> {
        match (self.role, role) {
            (Role::Sender, Role::Sender) => {
                return Err(TransferError::Protocol(
                    "another peer sends with this code".into(),
                ));
            }
            (Role::Receiver, Role::Sender) if self.sender.is_some() => {
                return Err(TransferError::Protocol(
                    "a second peer claims to be the sender".into(),
                ));
            }
            (Role::Receiver, Role::Sender) => self.sender = Some(peer),
            _ => {}
        }
        let Some(link) = self.links.get_mut(&peer) else {
            return Ok(());
        };
        link.role = Some(role);
        tracing::info!(%peer, ?role, "a peer proved it knows the code");
        self.progress.peer(peer, PeerNews::Joined { role });
        if let Some(content) = &self.content {
            if let Some(seeding) = &mut self.seeding {
                link.uploader.send(Outgoing::Offer(Arc::clone(content)));
                let told = seeding.join(peer);
                link.uploader.send(Outgoing::Message(Message::Bitfield {
                    have: bitfield::encode(&told),
                    digest: content.digest_hex(),
                }));
                return Ok(());
            }
            let have = self.have_bitfield();
            if let Some(link) = self.links.get_mut(&peer) {
                link.uploader.send(Outgoing::Message(have));
            }
        }
        Ok(())
    }

    /// This node's `bitfield` message.
    fn have_bitfield(&self) -> Message {
        let Some(content) = &self.content else {
            return Message::Bitfield {
                have: String::new(),
                digest: String::new(),
            };
        };
        let have = match &self.scheduler {
            Some(scheduler) => scheduler.have().clone(),
            None => {
                let mut all = FixedBitSet::with_capacity(content.map.len());
                all.insert_range(..);
                all
            }
        };
        Message::Bitfield {
            have: bitfield::encode(&have),
            digest: content.digest_hex(),
        }
    }

    fn apply_bitfield(
        &mut self,
        peer: PeerId,
        have: &str,
        digest: &str,
    ) -> Result<(), TransferError> {
        let Some(content) = &self.content else {
            return Ok(());
        };
        if !digest.eq_ignore_ascii_case(&content.digest_hex()) {
            return Err(TransferError::Protocol(
                "it holds a different offer under this code".into(),
            ));
        }
        let has = bitfield::decode(have, content.map.len())?;
        let (held, of) = (has.count_ones(..), has.len());
        match &mut self.scheduler {
            Some(scheduler) => scheduler.add_peer(peer, has, Instant::now())?,
            None => {
                for piece in has.ones() {
                    self.count_holder(piece, true);
                }
                if let Some(link) = self.links.get_mut(&peer) {
                    link.has = Some(has);
                }
            }
        }
        self.progress
            .peer(peer, PeerNews::Holds { pieces: held, of });
        if held == of
            && self
                .links
                .get(&peer)
                .is_some_and(|l| l.role == Some(Role::Receiver))
        {
            self.finished.insert(peer);
        }
        self.request_more();
        Ok(())
    }

    fn peer_has(&mut self, peer: PeerId, piece: u32) -> Result<(), TransferError> {
        let Some(content) = &self.content else {
            return Err(TransferError::Protocol(
                "a piece announced before the offer".into(),
            ));
        };
        let pieces = content.map.len();
        let (held, full) = match &mut self.scheduler {
            Some(scheduler) => {
                scheduler.peer_has(peer, piece)?;
                (None, scheduler.peer_is_complete(peer))
            }
            None => {
                let has = self
                    .links
                    .get_mut(&peer)
                    .and_then(|link| link.has.as_mut())
                    .ok_or_else(|| {
                        TransferError::Protocol("a piece announced before the bitfield".into())
                    })?;
                if piece as usize >= pieces {
                    return Err(TransferError::Protocol(format!(
                        "piece {piece} does not exist"
                    )));
                }
                let known = has.put(piece as usize);
                let counts = (Some(has.count_ones(..)), has.is_full());
                if !known {
                    self.count_holder(piece as usize, true);
                }
                counts
            }
        };
        if let Some(held) = held {
            self.progress.peer(
                peer,
                PeerNews::Holds {
                    pieces: held,
                    of: pieces,
                },
            );
        }
        if full && self.finished.insert(peer) {
            self.progress.peer(peer, PeerNews::Finished);
        }
        self.request_more();
        Ok(())
    }

    /// Sends what the sender's advertising decided.
    fn advertise(&mut self, adverts: Vec<(PeerId, Advert)>) {
        let Some(content) = &self.content else {
            return;
        };
        for (peer, advert) in adverts {
            let Some(link) = self.links.get(&peer) else {
                continue;
            };
            let message = match advert {
                Advert::Have(piece) => Message::Have { piece },
                Advert::Bitfield(told) => Message::Bitfield {
                    have: bitfield::encode(&told),
                    digest: content.digest_hex(),
                },
            };
            link.uploader.send(Outgoing::Message(message));
        }
    }

    /// The sender's count of the receivers holding `piece` goes up or down;
    /// once every piece is held by some receiver, the sender may leave.
    fn count_holder(&mut self, piece: usize, up: bool) {
        let pieces = self.content.as_ref().map_or(0, |content| content.map.len());
        self.holders.resize(pieces, 0);
        let Some(holders) = self.holders.get_mut(piece) else {
            return;
        };
        let mut lost = false;
        let mut first = false;
        match (up, *holders) {
            (true, 0) => {
                self.held_somewhere += 1;
                first = true;
            }
            (false, 1) => {
                self.held_somewhere -= 1;
                lost = true;
            }
            _ => {}
        }
        *holders = if up {
            holders.saturating_add(1)
        } else {
            holders.saturating_sub(1)
        };
        if self.held_somewhere == pieces && !self.told_seeded {
            self.told_seeded = true;
            self.progress.seeded();
        }
        let adverts = match &mut self.seeding {
            Some(seeding) if lost => seeding.lost(piece as u32),
            // A receiver holds it (from an earlier run, say): not fresh any more.
            Some(seeding) if first => seeding.held(piece as u32, Instant::now()),
            _ => Vec::new(),
        };
        self.advertise(adverts);
    }

    fn requested(&mut self, peer: PeerId, piece: u32) -> Result<(), TransferError> {
        let Some(content) = &self.content else {
            return Err(TransferError::Protocol("a request before the offer".into()));
        };
        let held = match &self.scheduler {
            Some(scheduler) => scheduler.have().contains(piece as usize),
            None => (piece as usize) < content.map.len(),
        };
        if !held {
            return Err(TransferError::Protocol(format!(
                "it asked for piece {piece}, which this side does not have"
            )));
        }
        let content = Arc::clone(content);
        let served = self
            .links
            .get(&peer)
            .is_some_and(|link| link.uploader.serve(content, piece));
        if !served {
            return Err(TransferError::Protocol(
                "it asked for more pieces at once than allowed".into(),
            ));
        }
        self.last_work = Instant::now();
        Ok(())
    }

    fn piece_data(&mut self, peer: PeerId, data: Bytes) -> Result<(), TransferError> {
        let Some(link) = self.links.get_mut(&peer) else {
            return Ok(());
        };
        let Some(arriving) = link.arriving.as_mut() else {
            return Err(TransferError::Protocol(format!(
                "{} bytes of data outside a piece",
                data.len()
            )));
        };
        if arriving.data.len() + data.len() > arriving.len {
            return Err(TransferError::Protocol(format!(
                "more data than piece {} holds",
                arriving.piece
            )));
        }
        arriving.data.extend_from_slice(&data);
        if arriving.data.len() < arriving.len {
            return Ok(());
        }
        let Some(Arriving { piece, data, .. }) = link.arriving.take() else {
            return Ok(());
        };
        let Some(content) = self.content.clone() else {
            return Ok(());
        };
        self.checking.push(tokio::task::spawn_blocking(move || {
            let outcome = if content.hashes.matches(piece, &data) {
                content
                    .storage
                    .write(&content.map, piece, &data)
                    .map(|()| true)
            } else {
                Ok(false)
            };
            Checked {
                peer,
                piece,
                outcome,
            }
        }));
        Ok(())
    }

    async fn on_checked(&mut self, checked: Checked) -> Result<(), TransferError> {
        let Checked {
            peer,
            piece,
            outcome,
        } = checked;
        if !outcome? {
            return self.drop_peer(
                peer,
                Some(TransferError::Protocol(format!(
                    "it sent piece {piece}, which does not match the sender's hash"
                ))),
            );
        }
        let (Some(scheduler), Some(content)) = (&mut self.scheduler, &self.content) else {
            return Ok(());
        };
        let arrival = scheduler.arrived(peer, piece, Instant::now());
        tracing::debug!(%peer, piece, ?arrival, "a piece arrived");
        let Ok(Arrival::New) = arrival else {
            return Ok(());
        };
        let Some(place) = content.map.piece(piece) else {
            return Ok(());
        };
        self.last_work = Instant::now();
        self.received_bytes += place.len;
        self.progress.received(place.len);
        for link in self.links.values().filter(|link| link.role.is_some()) {
            link.uploader
                .send(Outgoing::Message(Message::Have { piece }));
        }
        let missing = &mut self.missing_of_entry[place.entry];
        *missing -= 1;
        if *missing == 0 {
            let content = Arc::clone(content);
            tokio::task::spawn_blocking(move || content.storage.finish(place.entry))
                .await
                .map_err(|_| TransferError::Gone("a disk task ended"))??;
        }
        self.request_more();
        Ok(())
    }

    fn on_report(&mut self, report: UploadReport) -> Result<(), TransferError> {
        match report {
            UploadReport::Sent { peer, piece, bytes } => {
                self.uploaded_bytes += bytes;
                self.last_work = Instant::now();
                self.progress.uploaded(peer, bytes);
                let adverts = self
                    .seeding
                    .as_mut()
                    .map(|seeding| seeding.sent(peer, piece, Instant::now()))
                    .unwrap_or_default();
                self.advertise(adverts);
                Ok(())
            }
            UploadReport::Failed {
                error: error @ TransferError::Source { .. },
                ..
            } => Err(error),
            UploadReport::Failed { peer, error } => self.drop_peer(peer, Some(error)),
        }
    }

    fn on_tick(&mut self) -> Result<(), TransferError> {
        let now = Instant::now();
        let adverts = self
            .seeding
            .as_mut()
            .map(|seeding| seeding.tick(now))
            .unwrap_or_default();
        self.advertise(adverts);
        let Some(scheduler) = &self.scheduler else {
            if self.role == Role::Receiver
                && self.sender.is_none()
                && now.duration_since(self.started) > crate::transfer::STEP_TIMEOUT
            {
                return Err(TransferError::Timeout(if self.linked {
                    "finding the sender (a peer linked, but none proved to be the sender: it may have left, or be out of reach)"
                } else {
                    "connecting to the sender (no direct or relayed path was found)"
                }));
            }
            return Ok(());
        };
        for peer in scheduler.stalled(now, self.idle) {
            self.drop_peer(
                peer,
                Some(TransferError::Stalled {
                    seconds: self.idle.as_secs(),
                }),
            )?;
        }
        // The endgame may ask again for pieces that have waited long.
        self.request_more();
        let Some(scheduler) = &self.scheduler else {
            return Ok(());
        };
        // The sender holds every piece, whatever it has told of so far.
        let unavailable = if self.sender.is_some() {
            0
        } else {
            scheduler.unavailable()
        };
        if unavailable == 0 {
            self.unavailable_since = None;
            return Ok(());
        }
        let since = *self.unavailable_since.get_or_insert_with(|| {
            self.progress.unavailable(unavailable);
            now
        });
        if now.duration_since(since) >= self.idle {
            return Err(TransferError::Unavailable {
                pieces: unavailable,
            });
        }
        Ok(())
    }

    /// Asks peers for pieces, as the scheduler decides.
    fn request_more(&mut self) {
        let Some(scheduler) = &mut self.scheduler else {
            return;
        };
        for (peer, piece) in scheduler.next_requests(Instant::now()) {
            tracing::debug!(%peer, piece, "asking for a piece");
            if let Some(link) = self.links.get(&peer) {
                link.uploader
                    .send(Outgoing::Message(Message::Request { piece }));
            }
        }
    }

    /// A receiver accepted: its content is known, peers learn what it has.
    fn start_receiving(&mut self, content: Content, have: FixedBitSet) {
        self.missing_of_entry = (0..content.manifest.entries().len())
            .map(|entry| {
                content
                    .map
                    .of_entry(entry)
                    .filter(|&piece| !have.contains(piece as usize))
                    .count() as u32
            })
            .collect();
        self.held_bytes = have
            .ones()
            .filter_map(|piece| content.map.piece(piece as u32))
            .map(|place| place.len)
            .sum();
        self.progress.accepted(&content.manifest, self.held_bytes);
        self.scheduler = Some(Scheduler::new(have, &mut rand::rng()));
        self.content = Some(Arc::new(content));
        let have = self.have_bitfield();
        let peers: Vec<PeerId> = self.links.keys().copied().collect();
        for peer in peers {
            let Some(link) = self.links.get_mut(&peer) else {
                continue;
            };
            if link.role.is_none() {
                continue;
            }
            link.uploader.send(Outgoing::Message(have.clone()));
            let haves = std::mem::take(&mut link.pending_haves);
            if let Some((bits, digest)) = link.pending_bitfield.take() {
                let applied = self.apply_bitfield(peer, &bits, &digest).and_then(|()| {
                    haves
                        .into_iter()
                        .try_for_each(|piece| self.peer_has(peer, piece))
                });
                if let Err(err) = applied {
                    let _ = self.drop_peer(peer, Some(err));
                }
            }
        }
        self.last_work = Instant::now();
        self.request_more();
    }

    /// Forgets `peer`; tells it why when `why` is ours to tell.
    fn drop_peer(&mut self, peer: PeerId, why: Option<TransferError>) -> Result<(), TransferError> {
        let Some(link) = self.links.remove(&peer) else {
            return Ok(());
        };
        for piece in link.has.iter().flat_map(FixedBitSet::ones) {
            self.count_holder(piece, false);
        }
        if let Some(scheduler) = &mut self.scheduler {
            scheduler.remove_peer(peer);
        }
        let adverts = self
            .seeding
            .as_mut()
            .map(|seeding| seeding.left(peer))
            .unwrap_or_default();
        self.advertise(adverts);
        match why {
            Some(error) => {
                tracing::warn!(%peer, %error, "dropped a peer");
                let last = (!error.peer_knows()).then(|| Message::Error {
                    message: error.to_string(),
                });
                self.retiring.retain(|task| !task.is_finished());
                self.retiring.push(link.uploader.retire(last));
                self.progress
                    .peer(peer, PeerNews::Dropped(error.to_string()));
                self.refused.insert(peer);
                // A failed proof says more than a link that closed meanwhile.
                let proof = |e: &TransferError| matches!(e, TransferError::Auth(_));
                if self
                    .first_refusal
                    .as_ref()
                    .is_none_or(|first| proof(&error) && !proof(first))
                {
                    self.first_refusal = Some(error);
                }
                self.check_turned_away()?;
            }
            None => self.progress.peer(peer, PeerNews::Left),
        }
        if self.sender == Some(peer) {
            self.sender = None;
            if self.content.is_none() {
                return Err(TransferError::Gone(
                    "the sender left before its offer arrived",
                ));
            }
        }
        Ok(())
    }

    /// A receiver without an offer that every peer still in the room
    /// turned away (a wrong code: each failed the proof) stops with the
    /// first reason; one hostile peer alone cannot stop it.
    fn check_turned_away(&mut self) -> Result<(), TransferError> {
        if self.role == Role::Receiver
            && self.content.is_none()
            && self.sender.is_none()
            && self.room.iter().all(|peer| self.refused.contains(peer))
            && let Some(error) = self.first_refusal.take()
        {
            return Err(error);
        }
        Ok(())
    }

    /// Waits (at most [`CLOSE_WAIT`]) until what every link was handed is
    /// sent and acknowledged: a finished receiver's last `have` must reach
    /// the sender, which counts who finished.
    pub async fn flush(&mut self) {
        self.retiring.retain(|task| !task.is_finished());
        let retiring = futures_util::future::join_all(self.retiring.drain(..));
        let links = futures_util::future::join_all(self.links.values().map(|l| l.uploader.flush()));
        let _ = tokio::time::timeout(CLOSE_WAIT, futures_util::future::join(links, retiring)).await;
    }

    /// Tells every peer why this node stops (best effort, bounded).
    pub async fn tell_all(&self, message: &Message) {
        let message = Payload::Text(message.to_json());
        let handle = self.session.handle();
        let sends = self
            .links
            .keys()
            .map(|peer| handle.send(*peer, TRANSFER_LABEL, message.clone()));
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            futures_util::future::join_all(sends),
        )
        .await;
    }
}
