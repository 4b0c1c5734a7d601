//! The state of the connection to one remote peer, and the way its packets
//! travel.

/// State of the peer connection to one remote peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// ICE and DTLS are being set up.
    Connecting,
    /// Packets flow.
    Connected,
    /// Packets stopped for a while; it may come back.
    Disconnected,
    /// The connection failed.
    Failed,
    /// The connection was closed.
    Closed,
}

/// How packets travel between the two peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPath {
    /// Straight between the peers (host, server- or peer-reflexive candidates).
    Direct,
    /// Through a TURN relay.
    Relayed,
}

impl std::fmt::Display for LinkPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Direct => "direct",
            Self::Relayed => "relayed",
        })
    }
}
