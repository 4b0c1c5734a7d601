//! Default limits. Servers may configure other values; clients learn the
//! effective ones from `welcome.limits`.

use serde::{Deserialize, Serialize};

/// Largest WebSocket frame the server accepts, in bytes.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 * 1024;
/// Longest room name, in bytes.
pub const MAX_ROOM_NAME_BYTES: usize = 128;
/// Default most peers in one room.
pub const DEFAULT_MAX_PEERS_PER_ROOM: usize = 16;
/// Default sustained messages per second per connection.
pub const DEFAULT_MESSAGES_PER_SECOND: u32 = 200;
/// Default burst of messages above the sustained rate.
pub const DEFAULT_MESSAGE_BURST: u32 = 400;
/// Default seconds a dropped peer may take to resume.
pub const DEFAULT_RESUME_GRACE_SECS: u64 = 30;
/// Default signals held for an absent (resumable) peer.
pub const DEFAULT_MAX_QUEUED_FOR_ABSENT: usize = 256;

/// The limits a server enforces, sent in `welcome` so clients can stay within them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest text frame in bytes.
    pub max_frame_bytes: usize,
    /// Most peers in one room.
    pub max_peers_per_room: usize,
    /// Sustained messages per second per connection.
    pub messages_per_second: u32,
    /// Messages that may arrive in a burst above the sustained rate.
    pub message_burst: u32,
    /// Seconds a dropped peer has to resume before it leaves its room.
    pub resume_grace_secs: u64,
    /// Seconds without any frame from a client before it is dropped.
    pub idle_timeout_secs: u64,
}
