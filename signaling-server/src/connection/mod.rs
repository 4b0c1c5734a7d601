//! One WebSocket connection: read, check, dispatch, write.
//!
//! A single task per connection does everything in one `select!` loop:
//! write what is pending (the outbox's frames, encoded into one buffer and
//! written with one system call), then wait for the first of shutdown, new
//! outbox frames (or a heartbeat or close, which arrive through the outbox
//! too), a readable socket, or a writable socket (only while a write is
//! blocked). One task instead of a reader and a writer
//! halves the tasks and timers per connection, which is most of what an idle
//! connection costs; and an idle connection holds no I/O buffer at all (see
//! `websocket.rs`). A client that does not read only stalls its own writes:
//! frames for it pile up in its bounded outbox, and the first one that does
//! not fit disconnects it.
//!
//! Incoming text frames go through: size check → rate limit → parse →
//! broker. Every refusal is an `error` frame, a log line and a counter.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use futures_util::FutureExt;
use signaling_protocol::{ClientMessage, ErrorCode, PROTOCOL_VERSION, PeerId, ServerMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::OwnedSemaphorePermit;
use tracing::{debug, info};

use crate::address_table::OpenSlot;
use crate::auth::{self, Claims};
use crate::broker::{ConnHandle, Rejection};
use crate::message_reader::{Event, MessageReader, ReadError, Step};
use crate::metrics::Refusal;
use crate::outbox::{CloseReason, SharedText};
use crate::socket::Socket;
use crate::state::ServerState;
use crate::websocket::{self, Opcode};

mod goodbye;
mod rate_gate;

pub(crate) use goodbye::refuse;
use goodbye::{End, GOODBYE_TIMEOUT, close_code};
use rate_gate::{Admission, RateGate};

/// Pongs are only queued while less than this is waiting to be written, so
/// a ping flood against a blocked socket cannot grow the write buffer.
const MAX_PENDING_FOR_PONG: usize = 64 * 1024;

const PONG: SharedText = SharedText::from_static(r#"{"type":"pong"}"#);

/// Serves one upgraded connection until it ends. `leftover` holds bytes the
/// HTTP layer read past the handshake. `_slots` hold the connection's place
/// under the server's connection limit and its address's.
pub(crate) async fn run(
    stream: Socket,
    leftover: Vec<u8>,
    shared: Arc<ServerState>,
    _slots: (OwnedSemaphorePermit, OpenSlot),
    claims: Option<Claims>,
) {
    let config = &shared.config;
    let conn = shared.broker.open(
        config.outbound_queue,
        config.outbound_queue_bytes,
        &shared.outbox_budget,
    );
    shared.metrics.connections.increment(1.0);
    shared.metrics.connections_total.increment(1);
    shared.opened(&conn);
    debug!(conn = conn.id(), "connection opened");
    let mut session = Connection {
        rate: RateGate::new(
            config.messages_per_second,
            config.message_burst,
            Instant::now(),
        ),
        shared: shared.clone(),
        conn,
        peer: None,
        claims,
        last_seen: Instant::now(),
        stream,
        inbuf: leftover,
        outbuf: Vec::new(),
        written: 0,
        write_blocked_since: None,
        reader: MessageReader::new(config.max_frame_bytes),
    };
    let end = session.serve().await;
    shared.closed(&session.conn);
    if let Some(peer) = session.peer {
        shared.broker.disconnect(&session.conn, peer).await;
    }
    // Boxed: the goodbye's timers need space only at the end, not in the
    // task of every open connection.
    Box::pin(session.finish(end)).await;
    shared.metrics.connections.decrement(1.0);
}

/// The state of one connection.
struct Connection {
    shared: Arc<ServerState>,
    conn: ConnHandle,
    /// The peer this connection carries, once joined.
    peer: Option<PeerId>,
    /// What the client's token allows (with `--auth-secret`).
    claims: Option<Claims>,
    /// When the client last sent anything (pongs included).
    last_seen: Instant,
    /// The message rate.
    rate: RateGate,
    stream: Socket,
    /// Bytes of a frame that arrived only in part; empty (no allocation)
    /// between frames.
    inbuf: Vec<u8>,
    /// Encoded frames not yet written; empty (no allocation) when idle.
    outbuf: Vec<u8>,
    /// How much of `outbuf` is written.
    written: usize,
    /// Since when the socket has refused our writes.
    write_blocked_since: Option<Instant>,
    /// Frames into messages, with the size caps.
    reader: MessageReader,
}

impl Connection {
    async fn serve(&mut self) -> End {
        if !self.inbuf.is_empty() {
            let buf = std::mem::take(&mut self.inbuf);
            if let Err(end) = self.process(buf).await {
                return end;
            }
        }
        loop {
            let heartbeat = if self.outbuf.is_empty() {
                let batch = self.conn.outbox().take();
                if !batch.frames.is_empty() {
                    self.outbuf = websocket::take_buffer();
                    for frame in &batch.frames {
                        websocket::encode(&mut self.outbuf, Opcode::Text, frame.as_bytes());
                    }
                }
                if let Some(reason) = batch.closed {
                    return End::Closed(reason);
                }
                batch.heartbeat
            } else {
                let (closed, heartbeat) = self.conn.outbox().take_status();
                if let Some(reason) = closed {
                    return End::Closed(reason);
                }
                heartbeat
            };
            if heartbeat {
                let idle = self.shared.config.idle_timeout;
                if self.last_seen.elapsed() >= idle {
                    return End::IdleTimeout;
                }
                if self
                    .write_blocked_since
                    .is_some_and(|since| since.elapsed() >= idle)
                {
                    return End::Closed(CloseReason::SlowConsumer);
                }
                self.queue_control(Opcode::Ping, &[]);
            }
            if let Err(err) = self.write_pending() {
                return End::Io(err);
            }
            let blocked = !self.outbuf.is_empty() || self.stream.has_pending_output();
            tokio::select! {
                biased;
                () = self.conn.outbox().wanted(!blocked) => {
                    // Let the other connections that are ready run first:
                    // whatever they relay to this one joins the same batch,
                    // written with one system call instead of several.
                    tokio::task::yield_now().await;
                }
                ready = self.stream.writable(), if blocked => {
                    if let Err(err) = ready {
                        return End::Io(err);
                    }
                }
                ready = self.stream.readable() => {
                    if let Err(err) = ready {
                        return End::Io(err);
                    }
                    if let Err(end) = self.read().await {
                        return end;
                    }
                }
            }
        }
    }

    /// Reads what the socket has and handles every complete frame.
    async fn read(&mut self) -> Result<(), End> {
        let mut buf = if self.inbuf.is_empty() {
            websocket::take_buffer()
        } else {
            std::mem::take(&mut self.inbuf)
        };
        if buf.capacity() - buf.len() < websocket::BUFFER_BYTES / 4 {
            buf.reserve(websocket::BUFFER_BYTES);
        }
        // One read per wake-up; a short read tells the runtime the socket
        // is drained, so no extra system call is spent finding that out.
        match self.stream.read_buf(&mut buf).now_or_never() {
            None => {
                self.keep_leftover(buf, 0);
                Ok(())
            }
            Some(Ok(0)) => Err(End::Gone),
            Some(Ok(_)) => {
                let handled = self.process(buf).await;
                // Seen when its frames were handled, not when they were read:
                // frames that waited behind a slow request (Redis away) are
                // a live client, not an idle one.
                self.last_seen = Instant::now();
                handled
            }
            Some(Err(err)) if err.kind() == io::ErrorKind::WouldBlock => {
                self.keep_leftover(buf, 0);
                Ok(())
            }
            Some(Err(err)) => Err(End::Io(err)),
        }
    }

    /// Handles every complete message in `buf`; keeps an incomplete tail.
    async fn process(&mut self, mut buf: Vec<u8>) -> Result<(), End> {
        let mut pos = 0;
        loop {
            match self.reader.next(&mut buf, &mut pos) {
                Ok(Step::Event(event)) => self.on_event(event).await?,
                Ok(Step::NeedMore { frame_len }) => {
                    // Make room for the whole frame, so the next read can
                    // complete it.
                    if let Some(frame_len) = frame_len {
                        buf.reserve(frame_len);
                    }
                    break;
                }
                Err(ReadError::Protocol(err)) => return Err(End::Protocol(err)),
                Err(ReadError::TooLarge(cap)) => return Err(End::TooLarge(cap)),
            }
        }
        self.keep_leftover(buf, pos);
        Ok(())
    }

    /// Keeps `buf[consumed..]` for the next read, in an allocation of its
    /// own when it is small, and returns the buffer to the pool.
    fn keep_leftover(&mut self, mut buf: Vec<u8>, consumed: usize) {
        if consumed == buf.len() {
            websocket::give_buffer(buf);
            self.inbuf = Vec::new();
        } else if buf.len() - consumed <= 1024 && buf.capacity() == websocket::BUFFER_BYTES {
            self.inbuf = buf[consumed..].to_vec();
            websocket::give_buffer(buf);
        } else {
            buf.drain(..consumed);
            self.inbuf = buf;
        }
    }

    /// Handles what the reader made of the frames.
    async fn on_event(&mut self, event: Event<'_>) -> Result<(), End> {
        match event {
            Event::Control {
                opcode: Opcode::Ping,
                payload,
            } => {
                if self.admit() {
                    self.queue_control(Opcode::Pong, payload);
                }
                Ok(())
            }
            Event::Control {
                opcode: Opcode::Close,
                payload,
            } => {
                let code = match payload {
                    [hi, lo, ..] => u16::from_be_bytes([*hi, *lo]),
                    _ => close_code::NORMAL,
                };
                Err(End::ClientClosed(code))
            }
            Event::Control { .. } => {
                // A pong: it only counts against the rate.
                self.admit();
                Ok(())
            }
            Event::Message { opcode, payload } => self.on_message(opcode, payload.bytes()).await,
            Event::Oversized { total, max } => {
                let message = format!(
                    "frame of {total} bytes is over the limit of {max} bytes; send smaller messages"
                );
                self.reject(ErrorCode::FrameTooLarge, message, None);
                Ok(())
            }
        }
    }

    /// Handles one complete text or binary message.
    async fn on_message(&mut self, opcode: Opcode, payload: &[u8]) -> Result<(), End> {
        if !self.admit() {
            return Ok(());
        }
        if opcode == Opcode::Binary {
            self.reject(
                ErrorCode::BinaryFrame,
                "binary frames are not part of the protocol; send each message as a JSON text frame"
                    .into(),
                None,
            );
            return Ok(());
        }
        let Ok(text) = std::str::from_utf8(payload) else {
            return Err(End::NotUtf8);
        };
        match ClientMessage::parse(text) {
            Ok(message) => self.dispatch(message).await,
            Err(err) => self.reject(err.code(), err.to_string(), None),
        }
        Ok(())
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
                if self.shared.config.auth_secret.is_some() {
                    let allowed = match &self.claims {
                        Some(claims) => claims.check_room(&room, auth::unix_now()),
                        None => Err(auth::TokenError::Missing),
                    };
                    if let Err(err) = allowed {
                        self.shared.metrics.refused(Refusal::Unauthorized);
                        return self.reject(ErrorCode::Unauthorized, err.to_string(), None);
                    }
                }
                let broker = &self.shared.broker;
                match broker.join(&self.conn, &room, resume.as_deref()).await {
                    Ok(peer) => {
                        debug!(conn = self.conn.id(), %peer, room, resumed_with_token = resume.is_some(), "joined");
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
                        debug!(conn = self.conn.id(), %peer, "left");
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
        // Messages count as arriving when their bytes were read.
        match self.rate.admit(self.last_seen) {
            Admission::Admit => true,
            Admission::DropQuietly => {
                self.shared.metrics.error(ErrorCode::RateLimited);
                false
            }
            Admission::DropAndTell => {
                let config = &self.shared.config;
                let message = format!(
                    "more than {} messages/s (burst {}); this message was dropped, and further drops in the next second are not reported; slow down",
                    config.messages_per_second, config.message_burst
                );
                self.reject(ErrorCode::RateLimited, message, None);
                false
            }
        }
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
        self.conn.outbox().push(SharedText::from(error.to_json()));
    }

    /// Queues a ping or pong behind whatever is pending.
    fn queue_control(&mut self, opcode: Opcode, payload: &[u8]) {
        if self.outbuf.len() - self.written > MAX_PENDING_FOR_PONG {
            return;
        }
        if self.outbuf.capacity() == 0 {
            self.outbuf = websocket::take_buffer();
        }
        websocket::encode(&mut self.outbuf, opcode, payload);
    }

    /// Writes as much of `outbuf` as the socket takes now. When all of it is
    /// written the buffer goes back to the pool.
    fn write_pending(&mut self) -> io::Result<()> {
        while self.written < self.outbuf.len() {
            match self.stream.try_write(&self.outbuf[self.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    self.write_blocked_since.get_or_insert_with(Instant::now);
                    return Ok(());
                }
                Err(err) => return Err(err),
            }
        }
        if self.outbuf.capacity() > 0 {
            websocket::give_buffer(std::mem::take(&mut self.outbuf));
            // Frames taken from the outbox were encoded into this buffer:
            // written now, they leave the shared budget.
            self.conn.outbox().sent();
        }
        self.written = 0;
        // Over TLS, what the socket took may still wait in it, encrypted.
        if self.stream.try_flush()? {
            self.write_blocked_since = None;
        } else {
            self.write_blocked_since.get_or_insert_with(Instant::now);
        }
        Ok(())
    }

    /// Says goodbye the way `end` calls for (see `goodbye.rs`), bounded in time.
    async fn finish(mut self, end: End) {
        let config = &self.shared.config;
        let Some(farewell) = goodbye::for_end(end, config, self.conn.id(), self.peer) else {
            return;
        };
        if let Some(code) = farewell.error {
            self.shared.metrics.error(code);
        }
        // Whatever is still unwritten goes first, then the goodbye.
        let mut out = std::mem::take(&mut self.outbuf);
        out.drain(..self.written);
        if let Some(text) = &farewell.text {
            websocket::encode(&mut out, Opcode::Text, text.as_bytes());
        }
        websocket::encode_close(&mut out, farewell.code, farewell.reason);
        if farewell.client_closed {
            // The client has finished sending: answer its close frame and
            // close the socket, with no need to wait for anything.
            let _ = tokio::time::timeout(GOODBYE_TIMEOUT, async {
                self.stream.write_all(&out).await?;
                // Over TLS the reply may wait in rustls until flushed.
                self.stream.flush().await
            })
            .await;
            return;
        }
        goodbye::send(&mut self.stream, &out).await;
    }
}
