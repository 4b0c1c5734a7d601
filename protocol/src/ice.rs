//! ICE server settings handed to clients in `welcome`.

use serde::{Deserialize, Serialize};

/// One STUN or TURN server, in the shape of the browser's `RTCIceServer`
/// dictionary so a web client can pass it to `RTCPeerConnection` unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `stun:`, `turn:` or `turns:` URLs.
    pub urls: Vec<String>,
    /// TURN user name (for short-lived credentials: `expiry:id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}
