//! The authenticated link a transfer runs over: a session in the code's
//! room, the `transfer` channel to the one peer, and the PAKE handshake with
//! fingerprint binding that must succeed before anything else is sent.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use signaling_protocol::PeerId;

use super::TransferError;
use super::ack_watch::{ACK_CHECK, ACK_TIMEOUT, AckWatch};
use super::channel_setup::{transfer_session, wait_channel};
use super::send_window::SendWindow;
use super::wire::{Message, TRANSFER_LABEL};
use crate::auth::{AuthError, CONFIRMATION_BYTES, Code, Pake, Role, hex};
use crate::channel::Channel;
use crate::event::Event;
use crate::link_state::LinkState;
use crate::payload::Payload;
use crate::session::{Session, SessionConfig};

/// Longest wait for the receiver's channel to open once it has joined, and
/// for each handshake message.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a finished side waits for the other to close first.
pub(super) const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// How long a link may stay disconnected (ICE found no packets for 5 s)
/// before the transfer gives up on it, unless the peer takes part in an ICE
/// restart meanwhile: a peer that was killed is reported within seconds.
pub(super) const DISCONNECT_GRACE: Duration = Duration::from_secs(3);
/// How long a disconnected link may take to come back once the peer has
/// answered or offered an ICE restart (it is alive, and a new path is being
/// looked for, as when a host moved to another network); short of ICE's own
/// 25 s before it declares the link failed.
const RESTART_GRACE: Duration = Duration::from_secs(20);
/// How long messages already on their way are still read after the
/// signaling server reports that the peer left (its last words, such as an
/// `error`, may arrive after that news).
const LEFT_GRACE: Duration = Duration::from_secs(1);
/// Largest file-data frame sent. Larger frames move a little faster, but
/// the session queues up to 256 received messages while the disk catches up,
/// so the frame size bounds that memory (256 × 64 KiB = 16 MiB).
pub const MAX_CHUNK_BYTES: usize = 64 * 1024;

/// What arrives on the transfer channel.
#[derive(Debug)]
pub enum Incoming {
    /// A control message.
    Message(Message),
    /// File data.
    Data(Bytes),
}

/// An authenticated transfer channel to one peer.
pub struct Link {
    session: Session,
    channel: Channel,
    peer: PeerId,
    role: Role,
    /// While the link is disconnected: when the transfer gives up on it.
    lost_until: Option<tokio::time::Instant>,
    left: Option<tokio::time::Instant>,
    /// Messages that arrived before the channel's open event (at most
    /// `EARLY_MESSAGES` of `channel_setup`); read first.
    early: std::collections::VecDeque<Payload>,
    /// File data the receiver has not taken yet, against its window.
    window: SendWindow,
}

impl Link {
    /// Joins the code's room and waits for the other side: as the sender,
    /// for a receiver to arrive and open the channel (however long that
    /// takes); as the receiver, for the channel to the waiting sender (at
    /// most [`STEP_TIMEOUT`]). Then runs the handshake; a wrong code or a
    /// tampering server ends here with [`AuthError::Mismatch`].
    ///
    /// A sender that finds the room occupied fails with
    /// [`TransferError::NameplateInUse`] when `exclusive` (a generated code:
    /// pick another); otherwise it waits there too (the occupant may be its
    /// own earlier run, which the server keeps for a grace period).
    pub async fn open(
        config: SessionConfig,
        code: &Code,
        role: Role,
        exclusive: bool,
    ) -> Result<Self, TransferError> {
        let mut session = Session::connect(transfer_session(config, code)).await?;
        match role {
            Role::Receiver if session.peers_at_join().is_empty() => {
                session.close().await;
                return Err(TransferError::NoSender {
                    nameplate: code.nameplate().to_owned(),
                });
            }
            Role::Sender if exclusive && !session.peers_at_join().is_empty() => {
                session.close().await;
                return Err(TransferError::NameplateInUse {
                    nameplate: code.nameplate().to_owned(),
                });
            }
            _ => {}
        }
        let mut early = std::collections::VecDeque::new();
        let channel = match role {
            Role::Sender => wait_channel(&mut session, &mut early).await,
            Role::Receiver => {
                tokio::time::timeout(STEP_TIMEOUT, wait_channel(&mut session, &mut early))
                    .await
                    .unwrap_or(Err(TransferError::Timeout(
                        "connecting to the sender (no direct or relayed path was found)",
                    )))
            }
        };
        let channel = match channel {
            Ok(channel) => channel,
            Err(err) => {
                session.close().await;
                return Err(err);
            }
        };
        tracing::debug!(peer = %channel.peer(), early = early.len(), "transfer channel open");
        let mut link = Self {
            peer: channel.peer(),
            session,
            channel,
            role,
            lost_until: None,
            left: None,
            early: early.into_iter().map(|(_, payload)| payload).collect(),
            window: SendWindow::default(),
        };
        match link.handshake(code).await {
            Ok(()) => Ok(link),
            Err(err) => {
                // Lets our confirmation and error reach a peer that is still there.
                link.stop(&err).await;
                Err(err)
            }
        }
    }

    /// Establishes the link over an open channel of a session the caller
    /// set up (for programs that join rooms themselves), and authenticates.
    pub async fn over(
        session: Session,
        channel: Channel,
        code: &Code,
        role: Role,
    ) -> Result<Self, TransferError> {
        let mut link = Self {
            peer: channel.peer(),
            session,
            channel,
            role,
            lost_until: None,
            left: None,
            early: std::collections::VecDeque::new(),
            window: SendWindow::default(),
        };
        link.handshake(code).await?;
        Ok(link)
    }

    /// SPAKE2, then key confirmation over both DTLS fingerprints.
    async fn handshake(&mut self, code: &Code) -> Result<(), TransferError> {
        let (pake, message) = Pake::start(code);
        self.send(&Message::Pake {
            message: hex::encode(&message),
        })
        .await?;
        let peer_message = match self.recv_step().await? {
            Incoming::Message(Message::Pake { message }) => {
                hex::decode(&message).ok_or(AuthError::BadPakeMessage)?
            }
            other => return Err(unexpected("a key-exchange message", &other)),
        };
        let key = pake.finish(&peer_message)?;
        tracing::debug!("key exchange done; confirming");
        let fingerprints = self.session.handle().fingerprints(self.peer).await?;
        self.send(&Message::Confirm {
            mac: hex::encode(&key.confirmation(self.role, &fingerprints)),
        })
        .await?;
        let mac = match self.recv_step().await? {
            Incoming::Message(Message::Confirm { mac }) => hex::decode(&mac)
                .filter(|mac| mac.len() == CONFIRMATION_BYTES)
                .unwrap_or_default(),
            other => return Err(unexpected("a key confirmation", &other)),
        };
        key.verify(
            self.role.peer(),
            &fingerprints,
            &mac,
            self.role.consequence(),
        )?;
        tracing::info!(peer = %self.peer, "the other side proved it knows the code");
        Ok(())
    }

    async fn recv_step(&mut self) -> Result<Incoming, TransferError> {
        tokio::time::timeout(STEP_TIMEOUT, self.recv())
            .await
            .unwrap_or(Err(TransferError::Timeout(
                "waiting for the other side's key exchange",
            )))
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Largest file-data frame to send: the channel's largest message,
    /// at most [`MAX_CHUNK_BYTES`].
    pub fn chunk_bytes(&self) -> usize {
        self.channel.max_message_bytes().clamp(1, MAX_CHUNK_BYTES)
    }

    /// Bytes sent and not yet acknowledged by the peer.
    pub async fn queued_bytes(&self) -> usize {
        self.channel.queued_bytes().await
    }

    /// Sends a control message.
    pub async fn send(&self, message: &Message) -> Result<(), TransferError> {
        self.channel
            .send(Payload::Text(message.to_json()))
            .await
            .map_err(|_| TransferError::Gone("the channel closed"))
    }

    /// Sends file data (waits while the channel's send bound is
    /// unacknowledged), listening to the peer meanwhile like
    /// [`Link::send_listening`].
    pub async fn send_data(&mut self, data: BytesMut) -> Result<(), TransferError> {
        let bytes = data.len() as u64;
        self.wait_for_room(bytes).await?;
        self.window.sent(bytes);
        let channel = self.channel.clone();
        self.while_listening(async move { channel.send_bytes(data).await })
            .await
    }

    /// Sends a control message while the peer is not expected to say
    /// anything: the wait for room in the channel (a dead peer never frees
    /// it) ends with the peer's `error`, its leaving, or the lost
    /// connection, as [`Link::recv`] reports them, or with
    /// [`TransferError::Unacknowledged`] once nothing was acknowledged for
    /// [`ACK_TIMEOUT`].
    pub async fn send_listening(&mut self, message: &Message) -> Result<(), TransferError> {
        let (channel, text) = (self.channel.clone(), message.to_json());
        self.while_listening(async move { channel.send(Payload::Text(text)).await })
            .await
    }

    async fn while_listening(
        &mut self,
        sending: impl Future<Output = Result<(), crate::error::Error>>,
    ) -> Result<(), TransferError> {
        let channel = self.channel.clone();
        // A receiver that stops acknowledging would keep the channel full forever.
        let acknowledgements_stop = async move {
            let mut watch = AckWatch::new(tokio::time::Instant::now(), ACK_TIMEOUT);
            loop {
                tokio::time::sleep(ACK_CHECK).await;
                let queued = channel.queued_bytes().await;
                if !watch.observe(queued, tokio::time::Instant::now()) {
                    tracing::warn!(
                        queued,
                        "the receiver acknowledged nothing for {:?}",
                        watch.limit()
                    );
                    return watch.limit();
                }
            }
        };
        let sent = tokio::select! {
            // The peer first: an error it sent explains a failed send.
            biased;
            heard = self.recv() => {
                return Err(match heard {
                    Err(err) => err,
                    Ok(other) => unexpected("nothing while data flows", &other),
                });
            }
            sent = sending => sent,
            limit = acknowledgements_stop => {
                return Err(TransferError::Unacknowledged { seconds: limit.as_secs() });
            }
        };
        if sent.is_ok() {
            return Ok(());
        }
        // The channel closed: the peer's last words may still be on their way.
        match tokio::time::timeout(LEFT_GRACE, self.recv()).await {
            Ok(Err(err @ TransferError::Peer(_))) => Err(err),
            _ => Err(TransferError::Gone("the channel closed")),
        }
    }

    /// The next frame from the peer. A peer's `error` message becomes
    /// [`TransferError::Peer`]; the peer leaving becomes
    /// [`TransferError::Gone`].
    pub async fn recv(&mut self) -> Result<Incoming, TransferError> {
        loop {
            match self.recv_frame().await? {
                Incoming::Message(Message::Consumed { bytes }) => self.window.consumed(bytes)?,
                other => return Ok(other),
            }
        }
    }

    /// Sets the receiver's window from its `accept` (none: as fast as the
    /// channel takes the data).
    pub fn set_window(&mut self, window: Option<u64>) {
        self.window = SendWindow::new(window);
    }

    /// Waits until the receiver's window has room for `bytes`, hearing its
    /// `consumed` reports; anything else it says while data flows ends the
    /// wait, as does a receiver that takes nothing for [`ACK_TIMEOUT`].
    async fn wait_for_room(&mut self, bytes: u64) -> Result<(), TransferError> {
        while !self.window.has_room(bytes) {
            let heard = tokio::time::timeout(ACK_TIMEOUT, self.recv_frame())
                .await
                .map_err(|_| TransferError::Unacknowledged {
                    seconds: ACK_TIMEOUT.as_secs(),
                })?;
            match heard? {
                Incoming::Message(Message::Consumed { bytes }) => self.window.consumed(bytes)?,
                other => return Err(unexpected("nothing while data flows", &other)),
            }
        }
        Ok(())
    }

    /// The next frame, `consumed` reports included.
    async fn recv_frame(&mut self) -> Result<Incoming, TransferError> {
        if let Some(payload) = self.early.pop_front() {
            return incoming(payload);
        }
        loop {
            let deadline = [
                self.lost_until
                    .map(|until| (until, "the connection was lost")),
                self.left.map(|since| (since + LEFT_GRACE, "it left")),
            ]
            .into_iter()
            .flatten()
            .min_by_key(|(at, _)| *at);
            let event = match deadline {
                Some((at, why)) => tokio::time::timeout_at(at, self.session.next_event())
                    .await
                    .map_err(|_| TransferError::Gone(why))?,
                None => self.session.next_event().await,
            };
            let Some(event) = event else {
                return Err(TransferError::Gone("the session ended"));
            };
            match event {
                Event::LinkState {
                    peer,
                    state: LinkState::Disconnected,
                    ..
                } if peer == self.peer => {
                    self.lost_until
                        .get_or_insert_with(|| tokio::time::Instant::now() + DISCONNECT_GRACE);
                }
                Event::LinkState {
                    peer,
                    state: LinkState::Connecting,
                    ..
                } if peer == self.peer && self.lost_until.is_some() => {
                    self.lost_until = Some(tokio::time::Instant::now() + RESTART_GRACE);
                }
                Event::LinkState {
                    peer,
                    state: LinkState::Connected,
                    ..
                } if peer == self.peer => self.lost_until = None,
                Event::Message {
                    peer,
                    label,
                    payload,
                } if peer == self.peer && label == TRANSFER_LABEL => {
                    return incoming(payload);
                }
                Event::ChannelClosed { peer, label }
                    if peer == self.peer && label == TRANSFER_LABEL =>
                {
                    return Err(TransferError::Gone("the channel closed"));
                }
                Event::PeerLeft(peer) if peer == self.peer => {
                    self.left.get_or_insert_with(tokio::time::Instant::now);
                }
                Event::LinkState {
                    peer,
                    state: LinkState::Failed | LinkState::Closed,
                    ..
                } if peer == self.peer => {
                    return Err(TransferError::Gone("the connection failed"));
                }
                _ => {}
            }
        }
    }

    /// Tells the peer why we stop (best effort).
    pub async fn fail(&self, error: &TransferError) {
        let message = Message::Error {
            message: match error {
                TransferError::Auth(AuthError::Mismatch { .. }) => {
                    "the code did not match, or someone is interfering with the connection".into()
                }
                other => other.to_string(),
            },
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), self.send(&message)).await;
    }

    /// Waits (bounded) until the peer closes the channel or leaves, then
    /// leaves the room.
    pub async fn close_after_peer(mut self) {
        let _ =
            tokio::time::timeout(CLOSE_WAIT, async { while self.recv().await.is_ok() {} }).await;
        self.session.close().await;
    }

    /// Ends the link after `error`. A peer that does not know yet is told
    /// why, and the link waits (bounded) for that to be acknowledged; a peer
    /// that stopped or went away acknowledges nothing more, so the link
    /// leaves at once.
    pub async fn stop(self, error: &TransferError) {
        if error.peer_knows() {
            self.leave().await;
        } else {
            self.fail(error).await;
            self.close().await;
        }
    }

    /// Leaves the room at once, without waiting for what was sent to be
    /// acknowledged: for a peer that is gone or has stopped by itself.
    pub async fn leave(self) {
        self.session.close().await;
    }

    /// Leaves the room once what was sent is acknowledged (bounded wait).
    pub async fn close(self) {
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            while self.channel.queued_bytes().await > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        self.session.close().await;
    }
}

/// A frame as the transfer sees it; an `error` message becomes
/// [`TransferError::Peer`].
fn incoming(payload: Payload) -> Result<Incoming, TransferError> {
    match payload {
        Payload::Binary(data) => Ok(Incoming::Data(data)),
        Payload::Text(text) => match Message::parse(&text)? {
            Message::Error { message } => Err(TransferError::Peer(crate::printable(&message))),
            message => Ok(Incoming::Message(message)),
        },
    }
}

pub(super) fn unexpected(wanted: &str, got: &Incoming) -> TransferError {
    let got = match got {
        Incoming::Data(data) => format!("{} bytes of file data", data.len()),
        Incoming::Message(message) => format!("a message of type {:?}", message.kind()),
    };
    TransferError::Protocol(format!("expected {wanted}, got {got}"))
}
