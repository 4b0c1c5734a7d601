//! A WebRTC peer that meets others through the signaling server, then talks
//! to them directly over data channels.
//!
//! [`Session::connect`] opens a WebSocket to the signaling server and joins a
//! room. For every other peer of the room the session negotiates one peer
//! connection (the peer that joins later offers; trickle ICE; "perfect
//! negotiation" roles settle collisions) and reports what happens as
//! [`Event`]s. Once a channel is open, messages flow peer to peer: the
//! signaling server may restart or vanish without disturbing them, and the
//! session reconnects to it in the background with its resume token.
//!
//! ```no_run
//! use peer_client::{Event, Payload, Session, SessionConfig};
//!
//! # async fn run() -> Result<(), peer_client::Error> {
//! let mut session = Session::connect(SessionConfig::new("ws://127.0.0.1:8080/ws", "lobby")).await?;
//! println!("joined as {}", session.id());
//! let handle = session.handle();
//! while let Some(event) = session.next_event().await {
//!     match event {
//!         Event::ChannelOpen { peer, channel } => {
//!             println!("channel {:?} to {peer} is open", channel.label());
//!             channel.send(Payload::Text("hello".into())).await?;
//!         }
//!         Event::Message { peer, label, payload } => {
//!             println!("{peer} on {label}: {payload:?}");
//!             // Reply on the same channel; a send waits while the channel's
//!             // unacknowledged bytes are above its bound.
//!             handle.send(peer, &label, payload).await?;
//!         }
//!         Event::PeerLeft(peer) => println!("{peer} left"),
//!         _ => {}
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Channels are reliable and ordered; each carries text or binary messages up
//! to [`Channel::max_message_bytes`]. [`SessionHandle::open_channel`] opens
//! more of them (a file transfer, say) next to the `chat` channel the offerer
//! creates.
//!
//! [`transfer`] sends files and directories between two peers that share a
//! code phrase, authenticated end to end ([`auth`]): the signaling server
//! can neither read nor redirect them. [`swarm`] sends them to several
//! receivers at once, which pass on to each other the pieces they have.

pub mod auth;
mod channel;
pub mod chat;
mod direct;
mod engine;
mod error;
mod event;
mod link_state;
mod local_addresses;
mod options;
mod payload;
mod peer;
mod printable;
mod session;
mod signal;
mod signaling;
pub mod swarm;
pub mod transfer;

pub use channel::Channel;
pub use chat::CHAT_LABEL;
pub use direct::{DirectConfig, DirectLink, DirectSignal, DirectSignals, StartedLink};
pub use engine::{DtlsFingerprints, NetStats};
pub use error::Error;
pub use event::{Event, SignalingStatus};
pub use link_state::{LinkPath, LinkState};
pub use options::{
    DEFAULT_SEND_BUFFER_BYTES, DEFAULT_SOCKET_BUFFER_BYTES, MdnsMode, NegotiatedChannel,
    TransportOptions,
};
pub use payload::Payload;
pub use peer::MAX_INCOMING_CHANNELS;
pub use printable::printable;
pub use session::{Session, SessionConfig, SessionHandle};
pub use signaling_protocol::{IceServer, PeerId};
