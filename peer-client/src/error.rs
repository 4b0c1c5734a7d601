//! Errors of the library, worded for the person who reads them.

use signaling_protocol::{ErrorCode, PeerId};

/// Everything that can go wrong in a [`crate::Session`] or a [`crate::Channel`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server URL could not be used at all.
    #[error("invalid signaling server URL {url:?}: {reason} (expected ws://HOST:PORT/ws)")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No WebSocket connection could be opened to the signaling server.
    #[error(
        "cannot reach the signaling server at {url}: {reason}; is it running, and is the address right?"
    )]
    ServerUnreachable {
        /// The URL tried.
        url: String,
        /// The underlying failure.
        reason: String,
    },
    /// The room already holds as many peers as the server allows.
    #[error("room {room:?} is full: {message}; try another room")]
    RoomFull {
        /// The room asked for.
        room: String,
        /// The server's explanation.
        message: String,
    },
    /// The server refused the `join` for another reason.
    #[error("the signaling server refused to join room {room:?} ({code}): {message}")]
    JoinRefused {
        /// The room asked for.
        room: String,
        /// The server's error code.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
    },
    /// The server sent something this client does not understand.
    #[error("the signaling server broke the protocol: {0}")]
    Protocol(String),
    /// A peer sent a signal that is not a description or a candidate.
    #[error("malformed signal from a peer: {0}")]
    BadSignal(String),
    /// The peer is not (or no longer) in the room, or its link is down.
    #[error("peer {0} is gone: it left the room or its connection closed")]
    PeerGone(PeerId),
    /// No open channel with this label leads to the peer.
    #[error("no open channel {label:?} to peer {peer}")]
    NoSuchChannel {
        /// The peer.
        peer: PeerId,
        /// The channel label.
        label: String,
    },
    /// The message does not fit in one data-channel message.
    #[error("message of {size} bytes exceeds the {max}-byte data-channel message limit; split it")]
    MessageTooLarge {
        /// Size of the refused message.
        size: usize,
        /// Largest message the link carries.
        max: usize,
    },
    /// The channel closed while sending.
    #[error("data channel {0:?} is closed")]
    ChannelClosed(String),
    /// The WebRTC stack reported a failure.
    #[error("WebRTC: {0}")]
    Rtc(String),
    /// The session was closed.
    #[error("the session is closed")]
    SessionClosed,
}
