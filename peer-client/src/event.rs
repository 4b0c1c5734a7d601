//! What a session reports.

use signaling_protocol::PeerId;

use crate::channel::Channel;
use crate::link_state::{LinkPath, LinkState};
use crate::payload::Payload;

/// The state of the connection to the signaling server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalingStatus {
    /// The socket dropped; the session is reconnecting. Open channels keep working.
    Reconnecting {
        /// Why it dropped.
        reason: String,
    },
    /// The socket is back and the room rejoined.
    Reconnected {
        /// True when the server kept our id (resume token honoured).
        resumed: bool,
        /// Our id now (a new one when `resumed` is false).
        peer_id: PeerId,
    },
}

/// Something that happened in the room.
#[derive(Debug)]
pub enum Event {
    /// A peer entered the room (the newcomer will offer a connection).
    PeerJoined(PeerId),
    /// A peer left the room; its connection is closed.
    PeerLeft(PeerId),
    /// The connection to a peer changed state; `path` is known once connected.
    LinkState {
        /// The remote peer.
        peer: PeerId,
        /// The new state.
        state: LinkState,
        /// Direct or relayed, when connected.
        path: Option<LinkPath>,
    },
    /// A data channel to a peer opened; the handle sends on it.
    ChannelOpen {
        /// The remote peer.
        peer: PeerId,
        /// The channel.
        channel: Channel,
    },
    /// A message arrived.
    Message {
        /// The sender.
        peer: PeerId,
        /// Label of the channel it came on.
        label: String,
        /// The message.
        payload: Payload,
    },
    /// A data channel closed.
    ChannelClosed {
        /// The remote peer.
        peer: PeerId,
        /// The channel's label.
        label: String,
    },
    /// The signaling connection dropped or came back.
    Signaling(SignalingStatus),
    /// A peer sent something that could not be used (it is ignored).
    PeerError {
        /// The peer.
        peer: PeerId,
        /// What went wrong.
        error: String,
    },
}
