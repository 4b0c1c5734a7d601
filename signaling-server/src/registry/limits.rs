//! What the registry bounds, and why it refuses an operation.

use std::time::Duration;

use signaling_protocol::{ErrorCode, PeerId};

/// Bounds the registry enforces.
#[derive(Debug, Clone, Copy)]
pub struct RegistryLimits {
    /// Most peers (present or absent) in one room.
    pub max_peers_per_room: usize,
    /// Most rooms at once.
    pub max_rooms: usize,
    /// How long an absent peer may take to resume.
    pub resume_grace: Duration,
    /// Most signals queued for one absent peer.
    pub max_queued_signals: usize,
    /// Most bytes of signals queued for one absent peer.
    pub max_queued_bytes: usize,
    /// Most bytes of signals queued for all absent peers together.
    pub max_absent_queue_bytes: usize,
}

/// Why the registry refused an operation. The `Display` text is the
/// `message` a client sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The room name breaks the naming rules.
    #[error("invalid room name: {0}")]
    InvalidRoom(&'static str),
    /// The room has reached its peer limit.
    #[error("room {room:?} is full ({limit} peers); try another room")]
    RoomFull {
        /// The room asked for.
        room: String,
        /// The configured limit.
        limit: usize,
    },
    /// A new room would exceed the room limit.
    #[error(
        "the server already holds its limit of {limit} rooms; join an existing room or try again later"
    )]
    TooManyRooms {
        /// The configured limit.
        limit: usize,
    },
    /// The sender is not a present member of any room on this connection.
    #[error("join a room before sending {0}")]
    NotJoined(&'static str),
    /// The addressed peer is not in the sender's room.
    #[error("peer {peer} is not in room {room:?}; it may have left")]
    UnknownPeer {
        /// The addressed peer.
        peer: PeerId,
        /// The sender's room.
        room: String,
    },
    /// A peer addressed a signal to itself.
    #[error("peer {0} is you; signals go to other peers of the room")]
    SignalToSelf(PeerId),
}

impl RegistryError {
    /// The wire error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidRoom(_) => ErrorCode::InvalidRoom,
            Self::RoomFull { .. } => ErrorCode::RoomFull,
            Self::TooManyRooms { .. } => ErrorCode::TooManyRooms,
            Self::NotJoined(_) => ErrorCode::NotJoined,
            Self::UnknownPeer { .. } | Self::SignalToSelf(_) => ErrorCode::UnknownPeer,
        }
    }

    /// The peer the error is about, sent as `error.peer_id`.
    pub fn peer_id(&self) -> Option<PeerId> {
        match self {
            Self::UnknownPeer { peer, .. } | Self::SignalToSelf(peer) => Some(*peer),
            _ => None,
        }
    }
}
