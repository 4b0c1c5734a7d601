//! Error codes sent in `error` messages, and parse failures of client frames.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Machine-readable reason carried in an `error {code, message}` message.
///
/// Codes are stable; messages are for people and may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not valid JSON, or not a JSON object.
    MalformedJson,
    /// The frame is valid JSON but has no string `type` field.
    MissingType,
    /// The `type` is not one this server knows.
    UnknownType,
    /// A known `type` with missing or wrongly typed fields.
    InvalidMessage,
    /// A binary frame; the protocol uses text frames only.
    BinaryFrame,
    /// The frame is larger than `limits.max_frame_bytes`.
    FrameTooLarge,
    /// `join.v` names a protocol version the server does not speak.
    UnsupportedVersion,
    /// The room name is empty, too long, or has control characters.
    InvalidRoom,
    /// The message needs a joined room (`signal`, `leave`) and there is none.
    NotJoined,
    /// A second `join` on a connection that is already in a room.
    AlreadyJoined,
    /// The room has `limits.max_peers_per_room` peers already.
    RoomFull,
    /// The server holds as many rooms as it is allowed to.
    TooManyRooms,
    /// The server holds as many connections as it is allowed to.
    ServerFull,
    /// The client's address holds as many connections as one address may, or opens them
    /// too fast; the server closes this one.
    TooManyConnections,
    /// `signal.to` names no peer of the sender's room.
    UnknownPeer,
    /// The connection sent faster than `limits.messages_per_second`; the message was dropped.
    RateLimited,
    /// The client did not read its socket fast enough; the server disconnects it.
    SlowConsumer,
    /// Nothing was received for `limits.idle_timeout_secs`; the server disconnects.
    IdleTimeout,
    /// The connection lacks a valid token for this room.
    Unauthorized,
    /// A fault inside the server.
    Internal,
}

impl ErrorCode {
    /// The code as it appears on the wire, e.g. `"room_full"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedJson => "malformed_json",
            Self::MissingType => "missing_type",
            Self::UnknownType => "unknown_type",
            Self::InvalidMessage => "invalid_message",
            Self::BinaryFrame => "binary_frame",
            Self::FrameTooLarge => "frame_too_large",
            Self::UnsupportedVersion => "unsupported_version",
            Self::InvalidRoom => "invalid_room",
            Self::NotJoined => "not_joined",
            Self::AlreadyJoined => "already_joined",
            Self::RoomFull => "room_full",
            Self::TooManyRooms => "too_many_rooms",
            Self::ServerFull => "server_full",
            Self::TooManyConnections => "too_many_connections",
            Self::UnknownPeer => "unknown_peer",
            Self::RateLimited => "rate_limited",
            Self::SlowConsumer => "slow_consumer",
            Self::IdleTimeout => "idle_timeout",
            Self::Unauthorized => "unauthorized",
            Self::Internal => "internal",
        }
    }

    /// Every code, for documentation and metrics.
    pub const ALL: [ErrorCode; 20] = [
        Self::MalformedJson,
        Self::MissingType,
        Self::UnknownType,
        Self::InvalidMessage,
        Self::BinaryFrame,
        Self::FrameTooLarge,
        Self::UnsupportedVersion,
        Self::InvalidRoom,
        Self::NotJoined,
        Self::AlreadyJoined,
        Self::RoomFull,
        Self::TooManyRooms,
        Self::ServerFull,
        Self::TooManyConnections,
        Self::UnknownPeer,
        Self::RateLimited,
        Self::SlowConsumer,
        Self::IdleTimeout,
        Self::Unauthorized,
        Self::Internal,
    ];
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a client frame could not be read as a [`crate::ClientMessage`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not JSON, or JSON that is not an object.
    #[error("frame is not a JSON object: {0}")]
    MalformedJson(String),
    /// A JSON object without a string `type`.
    #[error("message has no string \"type\" field")]
    MissingType,
    /// A `type` this protocol does not define.
    #[error("unknown message type {0:?}; expected join, signal, leave or ping")]
    UnknownType(String),
    /// A known type whose fields are missing or malformed.
    #[error("invalid {kind:?} message: {detail}")]
    InvalidMessage {
        /// The message's `type`.
        kind: String,
        /// What serde found wrong.
        detail: String,
    },
}

impl ParseError {
    /// The wire error code for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::MalformedJson(_) => ErrorCode::MalformedJson,
            Self::MissingType => ErrorCode::MissingType,
            Self::UnknownType(_) => ErrorCode::UnknownType,
            Self::InvalidMessage { .. } => ErrorCode::InvalidMessage,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_str_matches_serde() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }
}
