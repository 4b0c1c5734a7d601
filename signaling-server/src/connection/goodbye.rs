//! How a connection ends: why (`End`), and the goodbye each reason gets (an
//! error or shutdown notice, a close code and reason, a log line), as one
//! table; and the bounded write of that goodbye.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use signaling_protocol::{ErrorCode, PeerId, ServerMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, info};

use crate::config::Config;
use crate::outbox::CloseReason;
use crate::socket::Socket;
use crate::state::ServerState;
use crate::websocket::{self, FrameError, Opcode};

/// How long the goodbye (last frames, close frame) may take to write, and
/// how long the server then waits for the client to close its side, before
/// dropping the socket. Waiting keeps the goodbye from being lost to a TCP
/// reset when the client still had data in flight.
pub(super) const GOODBYE_TIMEOUT: Duration = Duration::from_secs(1);

/// WebSocket close codes used here.
pub(super) mod close_code {
    pub(crate) const NORMAL: u16 = 1000;
    pub(crate) const AWAY: u16 = 1001;
    pub(crate) const PROTOCOL: u16 = 1002;
    pub(crate) const INVALID_DATA: u16 = 1007;
    pub(crate) const POLICY: u16 = 1008;
    pub(crate) const TOO_BIG: u16 = 1009;
    pub(crate) const AGAIN: u16 = 1013;
}

/// Why the main loop ended (shutdown arrives as a closed outbox).
#[derive(Debug)]
pub(super) enum End {
    /// The client sent a close frame.
    ClientClosed(u16),
    /// The socket ended without a close frame.
    Gone,
    /// A frame above the hard cap; the stream cannot continue.
    TooLarge(usize),
    /// The client broke RFC 6455.
    Protocol(FrameError),
    /// A text message that is not UTF-8.
    NotUtf8,
    /// Reading or writing failed (reset, broken pipe).
    Io(io::Error),
    /// The outbox was closed (slow consumer, or resumed elsewhere).
    Closed(CloseReason),
    /// Nothing heard from the client for the idle timeout.
    IdleTimeout,
}

/// The last frames a connection gets.
#[derive(Debug)]
pub(super) struct Goodbye {
    /// A text frame before the close frame: an error or a shutdown notice.
    pub(super) text: Option<String>,
    /// The error code `text` carries, to count.
    pub(super) error: Option<ErrorCode>,
    /// Close code.
    pub(super) code: u16,
    /// Close reason.
    pub(super) reason: &'static str,
    /// The client sent a close frame: answer it, nothing to wait for.
    pub(super) client_closed: bool,
}

impl Goodbye {
    fn close(code: u16, reason: &'static str) -> Self {
        Self {
            text: None,
            error: None,
            code,
            reason,
            client_closed: false,
        }
    }

    fn error(code: ErrorCode, message: String, close: u16, reason: &'static str) -> Self {
        Self {
            text: Some(ServerMessage::error(code, message).to_json()),
            error: Some(code),
            ..Self::close(close, reason)
        }
    }
}

/// The goodbye for a connection that ended for `end`, logged; `None` when
/// the socket is gone and nothing can be sent.
pub(super) fn for_end(
    end: End,
    config: &Config,
    conn: u64,
    peer: Option<PeerId>,
) -> Option<Goodbye> {
    let disconnecting = |code: ErrorCode, message: &str| {
        info!(conn, ?peer, %code, "disconnecting: {message}");
    };
    Some(match end {
        End::ClientClosed(code) => {
            debug!(conn, ?peer, code, "connection closed by client");
            // Codes that must not be sent on the wire become 1000.
            let code = if matches!(code, 1004..=1006 | 1015) || !(1000..5000).contains(&code) {
                close_code::NORMAL
            } else {
                code
            };
            Goodbye {
                client_closed: true,
                ..Goodbye::close(code, "")
            }
        }
        End::Gone => {
            debug!(conn, ?peer, "connection dropped by client");
            return None;
        }
        End::Io(err) => {
            debug!(conn, ?peer, %err, "connection failed");
            return None;
        }
        End::Protocol(err) => {
            info!(conn, ?peer, %err, "WebSocket protocol error; closing");
            Goodbye::close(close_code::PROTOCOL, "protocol error")
        }
        End::NotUtf8 => {
            info!(conn, ?peer, "text frame is not UTF-8; closing");
            Goodbye::close(close_code::INVALID_DATA, "text is not UTF-8")
        }
        End::Closed(CloseReason::Shutdown) => {
            let spread = config.reconnect_spread.as_millis();
            let delay = rand::random_range(0..=u64::try_from(spread).unwrap_or(u64::MAX));
            let notice = ServerMessage::Shutdown {
                reconnect_after_ms: delay,
            };
            Goodbye {
                text: Some(notice.to_json()),
                ..Goodbye::close(close_code::AWAY, "server shutting down")
            }
        }
        End::IdleTimeout => {
            let secs = config.idle_timeout.as_secs_f64();
            let message = format!(
                "nothing received for {secs} s; closing. Answer pings or send ping messages to stay connected"
            );
            disconnecting(ErrorCode::IdleTimeout, &message);
            Goodbye::error(
                ErrorCode::IdleTimeout,
                message,
                close_code::NORMAL,
                "idle timeout",
            )
        }
        End::Closed(CloseReason::SlowConsumer) => {
            let message =
                "messages for this client piled up faster than it read them; disconnecting"
                    .to_owned();
            disconnecting(ErrorCode::SlowConsumer, &message);
            Goodbye::error(
                ErrorCode::SlowConsumer,
                message,
                close_code::POLICY,
                "slow consumer",
            )
        }
        End::Closed(CloseReason::Replaced) => {
            info!(
                conn,
                ?peer,
                "session resumed on another connection; closing this one"
            );
            Goodbye::close(close_code::NORMAL, "session resumed on another connection")
        }
        End::TooLarge(max) => {
            let message = format!(
                "frame over {max} bytes; closing, because a frame this large is not worth reading"
            );
            disconnecting(ErrorCode::FrameTooLarge, &message);
            Goodbye::error(
                ErrorCode::FrameTooLarge,
                message,
                close_code::TOO_BIG,
                "frame too large",
            )
        }
    })
}

/// Answers a connection that may not stay (over a connection limit, no
/// valid token) with `error {code, message}` and a close frame. The caller
/// counts and logs the refusal.
pub(crate) async fn refuse(
    mut stream: Socket,
    shared: Arc<ServerState>,
    code: ErrorCode,
    message: String,
) {
    shared.metrics.error(code);
    let (close, reason) = match code {
        ErrorCode::ServerFull | ErrorCode::TooManyConnections => {
            (close_code::AGAIN, "try again later")
        }
        _ => (close_code::POLICY, "unauthorized"),
    };
    let mut out = Vec::new();
    let error = ServerMessage::error(code, message).to_json();
    websocket::encode(&mut out, Opcode::Text, error.as_bytes());
    websocket::encode_close(&mut out, close, reason);
    send(&mut stream, &out).await;
}

/// Writes `out` (ending in a close frame), half-closes, and waits briefly
/// for the client to close its side, discarding what it still sends.
pub(super) async fn send(stream: &mut Socket, out: &[u8]) {
    let exchange = async {
        stream.write_all(out).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        io::Result::Ok(())
    };
    let _ = tokio::time::timeout(GOODBYE_TIMEOUT, exchange).await;
}
