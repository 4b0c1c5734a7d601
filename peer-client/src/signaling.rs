//! WebSocket client of the signaling protocol: join, relay signals, keep the
//! connection alive, and reconnect with the resume token when it drops.
//!
//! [`SignalingClient::connect`] returns once the server welcomed us (or
//! refused us, as a typed [`Error`]). A task then owns the socket; it
//! forwards server messages as [`SignalingEvent`]s and sends what it is
//! given. When the socket drops it reconnects with exponential backoff and
//! rejoins with the resume token, so peers keep our id and signals sent to
//! us meanwhile are delivered. Data channels never depend on this socket.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use signaling_protocol::{ClientMessage, ErrorCode, IceServer, PeerId, ServerMessage, SignalData};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::Error;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Longest wait for the TCP + WebSocket handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long leaving waits for the socket task to send `leave` and close.
const LEAVE_WAIT: Duration = Duration::from_secs(2);
/// Longest wait for `welcome` after `join`.
const WELCOME_TIMEOUT: Duration = Duration::from_secs(10);
/// How often we ping the server so an idle connection is not dropped.
const PING_INTERVAL: Duration = Duration::from_secs(15);
/// First and largest pause between reconnection attempts.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Largest frame accepted from the server.
const MAX_FRAME_BYTES: usize = 1024 * 1024;
/// Messages queued towards the server, and events towards the session.
pub(crate) const QUEUE: usize = 256;

/// What the server said when it let us in.
#[derive(Debug, Clone)]
pub(crate) struct Welcome {
    pub(crate) peer_id: PeerId,
    pub(crate) peers: Vec<PeerId>,
    pub(crate) ice_servers: Vec<IceServer>,
    pub(crate) resume_token: String,
    pub(crate) resumed: bool,
    /// How often to ping this server: [`PING_INTERVAL`], or a third of the
    /// idle timeout its `welcome.limits` announce when that is shorter.
    pub(crate) ping_every: Duration,
}

/// The ping interval for a server whose idle timeout is `idle_timeout_secs`
/// (0: not announced): often enough that three pings fit in it.
fn ping_interval(idle_timeout_secs: u64) -> Duration {
    if idle_timeout_secs == 0 {
        return PING_INTERVAL;
    }
    (Duration::from_secs(idle_timeout_secs) / 3).clamp(Duration::from_millis(100), PING_INTERVAL)
}

/// What the signaling task reports.
#[derive(Debug)]
pub(crate) enum SignalingEvent {
    PeerJoined(PeerId),
    PeerLeft(PeerId),
    Signal {
        from: PeerId,
        data: SignalData,
    },
    /// The server refused something we sent (kept for logs and the session).
    Refused {
        code: ErrorCode,
        message: String,
        peer_id: Option<PeerId>,
    },
    Disconnected(String),
    Rejoined(Welcome),
}

/// Sends to the signaling server; the socket lives in a task.
pub(crate) struct SignalingClient {
    outbound: mpsc::Sender<ClientMessage>,
}

impl SignalingClient {
    /// Connects, joins `room`, and waits for the welcome.
    pub(crate) async fn connect(
        url: &str,
        room: &str,
    ) -> Result<(Self, Welcome, mpsc::Receiver<SignalingEvent>), Error> {
        let (socket, welcome) = join(url, room, None).await?;
        let (outbound, outbound_rx) = mpsc::channel(QUEUE);
        let (events_tx, events) = mpsc::channel(QUEUE);
        let state = Connection {
            url: url.to_owned(),
            room: room.to_owned(),
            resume_token: welcome.resume_token.clone(),
            ping_every: welcome.ping_every,
            outbound: outbound_rx,
            events: events_tx,
        };
        tokio::spawn(state.run(socket));
        Ok((Self { outbound }, welcome, events))
    }

    /// Queues a signal for `to`; returns false if the queue is full or the task gone.
    pub(crate) fn signal(&self, to: PeerId, data: SignalData) -> bool {
        self.outbound
            .try_send(ClientMessage::Signal { to, data })
            .is_ok()
    }

    /// Leaves the room and closes the socket; returns once the socket task
    /// has sent `leave` and ended (at most [`LEAVE_WAIT`]). Returning at once
    /// let a program exit before `leave` was written: the server then kept
    /// the session for a resume and the peer waited in vain for it to go.
    pub(crate) async fn leave(&self) {
        if self.outbound.send(ClientMessage::Leave).await.is_ok() {
            let _ = timeout(LEAVE_WAIT, self.outbound.closed()).await;
        }
    }
}

/// Opens a socket, sends `join`, and waits for `welcome`.
async fn join(url: &str, room: &str, resume: Option<String>) -> Result<(Socket, Welcome), Error> {
    check_url(url)?;
    let mut socket = open_socket(url).await?;
    let hello = ClientMessage::Join {
        room: room.to_owned(),
        resume,
        v: None,
    };
    socket
        .send(Message::text(hello.to_json()))
        .await
        .map_err(|err| Error::ServerUnreachable {
            url: url.to_owned(),
            reason: err.to_string(),
        })?;
    let deadline = Instant::now() + WELCOME_TIMEOUT;
    loop {
        let text = next_text_before(&mut socket, deadline).await?;
        match ServerMessage::parse(&text) {
            Ok(ServerMessage::Welcome {
                peer_id,
                peers,
                ice_servers,
                resume_token,
                resumed,
                limits,
                ..
            }) => {
                let welcome = Welcome {
                    peer_id,
                    peers,
                    ice_servers,
                    resume_token,
                    resumed,
                    ping_every: ping_interval(limits.idle_timeout_secs),
                };
                return Ok((socket, welcome));
            }
            Ok(ServerMessage::Error { code, message, .. }) => {
                return Err(join_refused(room, code, message));
            }
            Ok(other) => tracing::debug!(?other, "message before welcome ignored"),
            Err(err) => return Err(Error::Protocol(format!("unreadable frame: {err}"))),
        }
    }
}

/// Refuses what is not a `ws://` or `wss://` URL with a host.
fn check_url(url: &str) -> Result<(), Error> {
    let has_host = url.split_once("://").is_some_and(|(scheme, rest)| {
        matches!(scheme, "ws" | "wss") && !rest.is_empty() && !rest.starts_with('/')
    });
    if has_host {
        Ok(())
    } else {
        Err(Error::InvalidUrl {
            url: url.to_owned(),
            reason: "it must start with ws:// or wss:// followed by a host".into(),
        })
    }
}

/// Opens the WebSocket, within [`CONNECT_TIMEOUT`], with frames bounded to
/// [`MAX_FRAME_BYTES`].
async fn open_socket(url: &str) -> Result<Socket, Error> {
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(MAX_FRAME_BYTES);
    config.max_frame_size = Some(MAX_FRAME_BYTES);
    let connecting = tokio_tungstenite::connect_async_with_config(url, Some(config), true);
    let unreachable = |reason: String| Error::ServerUnreachable {
        url: url.to_owned(),
        reason,
    };
    match timeout(CONNECT_TIMEOUT, connecting).await {
        Err(_) => Err(unreachable(format!("no answer within {CONNECT_TIMEOUT:?}"))),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Url(err))) => Err(Error::InvalidUrl {
            url: url.to_owned(),
            reason: err.to_string(),
        }),
        Ok(Err(err)) => Err(unreachable(err.to_string())),
        Ok(Ok((socket, _response))) => Ok(socket),
    }
}

/// The next text frame the server sends after `join`, before `deadline`.
async fn next_text_before(socket: &mut Socket, deadline: Instant) -> Result<Utf8Bytes, Error> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, socket.next()).await {
            Err(_) => {
                return Err(Error::Protocol(format!(
                    "no welcome within {WELCOME_TIMEOUT:?} after join"
                )));
            }
            Ok(None) => {
                return Err(Error::Protocol(
                    "the server closed the connection after join".into(),
                ));
            }
            Ok(Some(Err(err))) => {
                return Err(Error::Protocol(format!(
                    "connection lost after join: {err}"
                )));
            }
            Ok(Some(Ok(Message::Text(text)))) => return Ok(text),
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// The error for a `join` the server refused.
fn join_refused(room: &str, code: ErrorCode, message: String) -> Error {
    if code == ErrorCode::RoomFull {
        Error::RoomFull {
            room: room.to_owned(),
            message,
        }
    } else {
        Error::JoinRefused {
            room: room.to_owned(),
            code,
            message,
        }
    }
}

/// The task that owns the socket.
struct Connection {
    url: String,
    room: String,
    resume_token: String,
    /// From the last welcome.
    ping_every: Duration,
    outbound: mpsc::Receiver<ClientMessage>,
    events: mpsc::Sender<SignalingEvent>,
}

/// Why one socket's life ended.
enum Ended {
    /// We left; stop.
    Left,
    /// The session is gone; stop.
    SessionGone,
    /// Reconnect after the given pause (the server asked for it, or zero).
    Dropped { reason: String, after: Duration },
}

impl Connection {
    async fn run(mut self, mut socket: Socket) {
        loop {
            let (reason, after) = match self.serve(&mut socket).await {
                Ended::Left | Ended::SessionGone => {
                    let _ = socket.close(None).await;
                    return;
                }
                Ended::Dropped { reason, after } => (reason, after),
            };
            tracing::warn!(%reason, "signaling connection lost; reconnecting (open channels are not affected)");
            if self
                .events
                .send(SignalingEvent::Disconnected(reason))
                .await
                .is_err()
            {
                return;
            }
            sleep(after).await;
            match self.reconnect().await {
                Some(next) => socket = next,
                None => return,
            }
        }
    }

    /// Relays between the socket and the session until the socket ends.
    async fn serve(&mut self, socket: &mut Socket) -> Ended {
        let mut ping = tokio::time::interval(self.ping_every);
        ping.tick().await;
        loop {
            tokio::select! {
                frame = socket.next() => {
                    let text = match frame {
                        None => return dropped("the server closed the connection"),
                        Some(Err(err)) => return dropped(&err.to_string()),
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Close(_))) => return dropped("the server closed the connection"),
                        Some(Ok(_)) => continue,
                    };
                    let event = match ServerMessage::parse(&text) {
                        Ok(ServerMessage::PeerJoined { peer_id }) => SignalingEvent::PeerJoined(peer_id),
                        Ok(ServerMessage::PeerLeft { peer_id }) => SignalingEvent::PeerLeft(peer_id),
                        Ok(ServerMessage::Signal { from, data }) => SignalingEvent::Signal { from, data },
                        Ok(ServerMessage::Error { code, message, peer_id }) => {
                            SignalingEvent::Refused { code, message, peer_id }
                        }
                        Ok(ServerMessage::Shutdown { reconnect_after_ms }) => {
                            return Ended::Dropped {
                                reason: "the server is shutting down".into(),
                                after: Duration::from_millis(reconnect_after_ms.min(60_000)),
                            };
                        }
                        Ok(ServerMessage::Pong) => continue,
                        Ok(ServerMessage::Welcome { .. }) => continue,
                        Err(err) => {
                            tracing::warn!(%err, "unreadable frame from the signaling server ignored");
                            continue;
                        }
                    };
                    if self.events.send(event).await.is_err() {
                        return Ended::SessionGone;
                    }
                }
                message = self.outbound.recv() => {
                    let Some(message) = message else { return Ended::SessionGone };
                    let leaving = matches!(message, ClientMessage::Leave);
                    if let Err(err) = socket.send(Message::text(message.to_json())).await {
                        return dropped(&err.to_string());
                    }
                    if leaving {
                        return Ended::Left;
                    }
                }
                _ = ping.tick() => {
                    if let Err(err) = socket.send(Message::text(ClientMessage::Ping.to_json())).await {
                        return dropped(&err.to_string());
                    }
                }
            }
        }
    }

    /// Tries to rejoin until it works or the session goes away.
    async fn reconnect(&mut self) -> Option<Socket> {
        let mut backoff = FIRST_BACKOFF;
        loop {
            match join(&self.url, &self.room, Some(self.resume_token.clone())).await {
                Ok((socket, welcome)) => {
                    tracing::info!(resumed = welcome.resumed, "signaling connection back");
                    self.resume_token = welcome.resume_token.clone();
                    self.ping_every = welcome.ping_every;
                    if self
                        .events
                        .send(SignalingEvent::Rejoined(welcome))
                        .await
                        .is_err()
                    {
                        return None;
                    }
                    return Some(socket);
                }
                Err(err) => {
                    tracing::debug!(%err, retry_in = ?backoff, "reconnecting to the signaling server");
                }
            }
            // Stop if the session went away while we were disconnected.
            tokio::select! {
                _ = sleep(backoff) => {}
                _ = self.events.closed() => return None,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

fn dropped(reason: &str) -> Ended {
    Ended::Dropped {
        reason: reason.to_owned(),
        after: Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_fit_three_times_in_the_announced_idle_timeout() {
        assert_eq!(ping_interval(45), PING_INTERVAL);
        assert_eq!(ping_interval(0), PING_INTERVAL);
        assert_eq!(ping_interval(3), Duration::from_secs(1));
        assert_eq!(ping_interval(30), Duration::from_secs(10));
    }
}
