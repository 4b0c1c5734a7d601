//! One WebSocket connection: read, check, dispatch, write.
//!
//! A single task per connection does everything in one `select!` loop:
//! write whatever the outbox holds (one batch, one flush), then wait for the
//! first of shutdown, new outbox frames, an incoming frame, or the heartbeat.
//! One task instead of a reader and a writer halves the per-connection tasks
//! and timers, which is most of what an idle connection costs. A client that
//! does not read only stalls its own task: frames for it pile up in its
//! bounded outbox, and the first one that does not fit disconnects it.
//!
//! Incoming text frames go through: size check → rate limit → parse →
//! broker. Every refusal is an `error` frame, a log line and a counter.

use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use bytes::Bytes;
use futures_util::{FutureExt, SinkExt};
use signaling_protocol::{ClientMessage, ErrorCode, PROTOCOL_VERSION, PeerId, ServerMessage};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::MissedTickBehavior;
use tracing::{debug, info};

use crate::broker::{ConnHandle, Rejection};
use crate::outbox::{CloseReason, Frame};
use crate::rate_limit::TokenBucket;
use crate::server::Shared;

/// How long the goodbye (error, close frame) may take to write, and how long
/// the server then waits for the client's close reply, before dropping the
/// socket. Waiting for the reply keeps the goodbye from being lost to a TCP
/// reset when the client still had data in flight.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(1);

/// At most one `rate_limited` error per this interval; further drops are
/// only counted.
const RATE_NOTICE_INTERVAL: Duration = Duration::from_secs(1);

const PONG: Frame = Frame::from_static(r#"{"type":"pong"}"#);

/// Why the main loop ended.
#[derive(Debug)]
enum End {
    /// The client sent a close frame.
    ClientClosed,
    /// The socket ended without a close frame.
    Gone,
    /// A frame above the hard cap; the stream cannot continue.
    TooLarge(usize),
    /// Reading failed (protocol violation, reset).
    ReadFailed(axum::Error),
    /// Writing failed (reset, broken pipe).
    WriteFailed(axum::Error),
    /// The outbox was closed (slow consumer, or resumed elsewhere).
    Closed(CloseReason),
    /// Nothing heard from the client for the idle timeout.
    IdleTimeout,
    /// The server is shutting down.
    Shutdown,
}

/// Serves one upgraded WebSocket until it ends. `_permit` holds the
/// connection's slot under the connection limit.
pub(crate) async fn run(mut ws: WebSocket, shared: Arc<Shared>, _permit: OwnedSemaphorePermit) {
    let config = &shared.config;
    let conn = shared
        .broker
        .open(config.outbound_queue, config.outbound_queue_bytes);
    shared.metrics.connections.increment(1.0);
    shared.metrics.connections_total.increment(1);
    debug!(conn = conn.id(), "connection opened");
    let mut session = Session {
        bucket: TokenBucket::new(
            config.messages_per_second,
            config.message_burst,
            Instant::now(),
        ),
        shared: shared.clone(),
        conn,
        peer: None,
        last_seen: Instant::now(),
        rate_notice: None,
    };
    let end = session.serve(&mut ws).await;
    if let Some(peer) = session.peer {
        shared.broker.disconnect(&session.conn, peer).await;
    }
    // Boxed: the goodbye's timers and frames need space only at the end,
    // not in the task of every open connection.
    Box::pin(session.finish(&mut ws, end)).await;
    shared.metrics.connections.decrement(1.0);
}

/// Answers a connection over the connection limit with `server_full` and
/// closes it.
pub(crate) async fn refuse(mut ws: WebSocket, shared: Arc<Shared>) {
    let limit = shared.config.max_connections;
    let message = format!(
        "the server holds its limit of {limit} connections; try again later or another server"
    );
    shared.metrics.connections_rejected.increment(1);
    shared.metrics.error(ErrorCode::ServerFull);
    info!(code = %ErrorCode::ServerFull, "{message}");
    let error = ServerMessage::error(ErrorCode::ServerFull, message).to_json();
    goodbye(&mut ws, Some(error), close_code::AGAIN, "server full").await;
}

/// The state of one connection.
struct Session {
    shared: Arc<Shared>,
    conn: ConnHandle,
    /// The peer this connection carries, once joined.
    peer: Option<PeerId>,
    /// When the client last sent anything (pongs included).
    last_seen: Instant,
    bucket: TokenBucket,
    /// When the last `rate_limited` error was sent.
    rate_notice: Option<Instant>,
}

impl Session {
    async fn serve(&mut self, ws: &mut WebSocket) -> End {
        let period = self.shared.config.heartbeat_interval;
        let mut heartbeat = tokio::time::interval_at((Instant::now() + period).into(), period);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let batch = self.conn.outbox().take();
            if !batch.frames.is_empty()
                && let Err(end) = self
                    .write(ws, batch.frames.into_iter().map(Message::Text))
                    .await
            {
                return end;
            }
            if let Some(reason) = batch.closed {
                return End::Closed(reason);
            }
            tokio::select! {
                biased;
                () = self.shared.shutdown.cancelled() => return End::Shutdown,
                () = self.conn.outbox().changed() => {}
                incoming = ws.recv() => match incoming {
                    Some(Ok(message)) => {
                        self.last_seen = Instant::now();
                        if let Some(end) = self.on_message(message).await {
                            return end;
                        }
                    }
                    Some(Err(err)) => return read_failure(err),
                    None => return End::Gone,
                },
                _ = heartbeat.tick() => {
                    if self.last_seen.elapsed() >= self.shared.config.idle_timeout {
                        return End::IdleTimeout;
                    }
                    if let Err(end) = self.write(ws, [Message::Ping(Bytes::new())]).await {
                        return end;
                    }
                }
            }
        }
    }

    /// Handles one incoming message; `Some` ends the connection.
    async fn on_message(&mut self, message: Message) -> Option<End> {
        match message {
            Message::Text(text) => {
                let max = self.shared.config.max_frame_bytes;
                if text.len() > max {
                    let message = format!(
                        "frame of {} bytes is over the limit of {max} bytes; send smaller messages",
                        text.len()
                    );
                    self.reject(ErrorCode::FrameTooLarge, message, None);
                } else if self.admit() {
                    match ClientMessage::parse(text.as_str()) {
                        Ok(message) => self.dispatch(message).await,
                        Err(err) => self.reject(err.code(), err.to_string(), None),
                    }
                }
            }
            Message::Binary(_) => {
                if self.admit() {
                    self.reject(
                        ErrorCode::BinaryFrame,
                        "binary frames are not part of the protocol; send each message as a JSON text frame".into(),
                        None,
                    );
                }
            }
            // The WebSocket library answers pings itself; both count against
            // the rate so a ping flood is bounded like any other.
            Message::Ping(_) | Message::Pong(_) => {
                self.admit();
            }
            Message::Close(_) => return Some(End::ClientClosed),
        }
        None
    }

    async fn dispatch(&mut self, message: ClientMessage) {
        match message {
            ClientMessage::Join { room, resume, v } => {
                if let Some(v) = v.filter(|&v| v != PROTOCOL_VERSION) {
                    let message = format!(
                        "protocol version {v} is not supported; this server speaks version {PROTOCOL_VERSION}"
                    );
                    return self.reject(ErrorCode::UnsupportedVersion, message, None);
                }
                if self.peer.is_some() {
                    let message =
                        "this connection is already in a room; send leave before joining another"
                            .to_owned();
                    return self.reject(ErrorCode::AlreadyJoined, message, None);
                }
                let broker = &self.shared.broker;
                match broker.join(&self.conn, &room, resume.as_deref()).await {
                    Ok(peer) => {
                        info!(conn = self.conn.id(), %peer, room, resumed_with_token = resume.is_some(), "joined");
                        self.peer = Some(peer);
                    }
                    Err(rejection) => self.refused(rejection),
                }
            }
            ClientMessage::Signal { to, data } => {
                let Some(from) = self.peer else {
                    return self.not_joined("signal");
                };
                let broker = &self.shared.broker;
                if let Err(rejection) = broker.signal(&self.conn, from, to, data).await {
                    self.refused(rejection);
                }
            }
            ClientMessage::Leave => {
                let Some(peer) = self.peer else {
                    return self.not_joined("leave");
                };
                match self.shared.broker.leave(&self.conn, peer).await {
                    Ok(()) => {
                        info!(conn = self.conn.id(), %peer, "left");
                        self.peer = None;
                    }
                    Err(rejection) => self.refused(rejection),
                }
            }
            ClientMessage::Ping => {
                self.conn.outbox().push(PONG);
            }
        }
    }

    /// Takes a token from the rate limiter; on refusal counts it and, at
    /// most once per second, tells the client.
    fn admit(&mut self) -> bool {
        let now = Instant::now();
        if self.bucket.try_take(now) {
            return true;
        }
        if self
            .rate_notice
            .is_some_and(|at| now.duration_since(at) < RATE_NOTICE_INTERVAL)
        {
            self.shared.metrics.error(ErrorCode::RateLimited);
            return false;
        }
        self.rate_notice = Some(now);
        let config = &self.shared.config;
        let message = format!(
            "more than {} messages/s (burst {}); this message was dropped, and further drops in the next second are not reported; slow down",
            config.messages_per_second, config.message_burst
        );
        self.reject(ErrorCode::RateLimited, message, None);
        false
    }

    fn not_joined(&mut self, what: &str) {
        let message = format!("join a room before sending {what}");
        self.reject(ErrorCode::NotJoined, message, None);
    }

    fn refused(&mut self, rejection: Rejection) {
        self.reject(rejection.code, rejection.message, rejection.peer_id);
    }

    /// Sends `error {code, message}`, logs it and counts it.
    fn reject(&mut self, code: ErrorCode, message: String, peer_id: Option<PeerId>) {
        self.shared.metrics.error(code);
        info!(conn = self.conn.id(), peer = ?self.peer, %code, "refused: {message}");
        let error = ServerMessage::Error {
            code,
            message,
            peer_id,
        };
        self.conn.outbox().push(Frame::from(error.to_json()));
    }

    /// Writes `messages` and flushes once. A write that cannot finish within
    /// the idle timeout, or an outbox closed meanwhile, ends the connection.
    async fn write(
        &self,
        ws: &mut WebSocket,
        messages: impl IntoIterator<Item = Message>,
    ) -> Result<(), End> {
        let mut write = pin!(async {
            for message in messages {
                ws.feed(message).await?;
            }
            ws.flush().await
        });
        // Most batches go out at once; only a blocked socket needs a timer.
        if let Some(result) = write.as_mut().now_or_never() {
            return result.map_err(End::WriteFailed);
        }
        // Boxed: the timer lives on the heap only while a write is blocked,
        // instead of in every idle connection's task.
        let outbox = self.conn.outbox();
        let mut deadline = Box::pin(tokio::time::sleep(self.shared.config.idle_timeout));
        loop {
            tokio::select! {
                result = write.as_mut() => return result.map_err(End::WriteFailed),
                () = outbox.changed() => {
                    if let Some(reason) = outbox.closed() {
                        return Err(End::Closed(reason));
                    }
                }
                () = deadline.as_mut() => return Err(End::Closed(CloseReason::SlowConsumer)),
            }
        }
    }

    /// Says goodbye the way `end` calls for, bounded in time.
    async fn finish(&mut self, ws: &mut WebSocket, end: End) {
        let id = self.conn.id();
        let peer = self.peer;
        let (error, code, reason) = match end {
            End::ClientClosed | End::Gone => {
                debug!(conn = id, ?peer, "connection closed by client");
                return;
            }
            End::ReadFailed(err) | End::WriteFailed(err) => {
                debug!(conn = id, ?peer, %err, "connection failed");
                return;
            }
            End::Shutdown => {
                let spread = self.shared.config.reconnect_spread.as_millis();
                let delay = rand::random_range(0..=u64::try_from(spread).unwrap_or(u64::MAX));
                let message = ServerMessage::Shutdown {
                    reconnect_after_ms: delay,
                };
                (
                    Some(message.to_json()),
                    close_code::AWAY,
                    "server shutting down",
                )
            }
            End::IdleTimeout => {
                let secs = self.shared.config.idle_timeout.as_secs_f64();
                let message = format!(
                    "nothing received for {secs} s; closing. Answer pings or send ping messages to stay connected"
                );
                (
                    self.goodbye_error(ErrorCode::IdleTimeout, message),
                    close_code::NORMAL,
                    "idle timeout",
                )
            }
            End::Closed(CloseReason::SlowConsumer) => {
                let message =
                    "messages for this client piled up faster than it read them; disconnecting"
                        .to_owned();
                (
                    self.goodbye_error(ErrorCode::SlowConsumer, message),
                    close_code::POLICY,
                    "slow consumer",
                )
            }
            End::Closed(CloseReason::Replaced) => {
                info!(
                    conn = id,
                    ?peer,
                    "session resumed on another connection; closing this one"
                );
                (
                    None,
                    close_code::NORMAL,
                    "session resumed on another connection",
                )
            }
            End::TooLarge(max) => {
                let message = format!(
                    "frame over {max} bytes; closing, because a frame this large cannot be skipped"
                );
                let error = self.goodbye_error(ErrorCode::FrameTooLarge, message);
                // The rest of the oversized frame is still unread: do not
                // linger reading it.
                let close = close_frame(close_code::SIZE, "frame too large");
                let send = async {
                    if let Some(error) = error {
                        ws.feed(Message::Text(error.into())).await?;
                    }
                    ws.send(close).await
                };
                let _ = tokio::time::timeout(GOODBYE_TIMEOUT, send).await;
                return;
            }
        };
        goodbye(ws, error, code, reason).await;
    }

    /// Logs and counts an error that ends the connection, and encodes it.
    fn goodbye_error(&self, code: ErrorCode, message: String) -> Option<String> {
        self.shared.metrics.error(code);
        info!(conn = self.conn.id(), peer = ?self.peer, %code, "disconnecting: {message}");
        Some(ServerMessage::error(code, message).to_json())
    }
}

/// Sends an optional last text frame and a close frame, then waits briefly
/// for the client's close reply.
async fn goodbye(ws: &mut WebSocket, last: Option<String>, code: u16, reason: &'static str) {
    let exchange = async {
        if let Some(text) = last {
            ws.feed(Message::Text(text.into())).await?;
        }
        ws.send(close_frame(code, reason)).await?;
        while let Some(Ok(_)) = ws.recv().await {}
        Ok::<(), axum::Error>(())
    };
    let _ = tokio::time::timeout(GOODBYE_TIMEOUT, exchange).await;
}

fn close_frame(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// Tells a frame over the WebSocket library's hard cap from other failures.
fn read_failure(err: axum::Error) -> End {
    let inner = err.into_inner();
    match inner.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(tungstenite::error::CapacityError::MessageTooLong {
            max_size,
            ..
        })) => End::TooLarge(*max_size),
        _ => End::ReadFailed(axum::Error::new(inner)),
    }
}
