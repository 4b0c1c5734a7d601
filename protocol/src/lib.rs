//! Wire protocol of the signaling server.
//!
//! Clients talk to the server over one WebSocket at `/ws`. Every frame is a
//! JSON text frame holding exactly one message, tagged by its `"type"` field
//! in `snake_case`. This crate holds the message types, the error codes and
//! the default limits, and nothing that does I/O, so the server, the native
//! client and tests share one definition. `docs/protocol.md` is the
//! human-readable contract.
//!
//! ```
//! use signaling_protocol::{ClientMessage, ServerMessage, PeerId};
//!
//! let msg = ClientMessage::parse(r#"{"type":"join","room":"lobby"}"#).unwrap();
//! assert!(matches!(msg, ClientMessage::Join { ref room, .. } if room == "lobby"));
//!
//! let pong = ServerMessage::Pong.to_json();
//! assert_eq!(pong, r#"{"type":"pong"}"#);
//! # let _ = PeerId::random();
//! ```

mod error;
mod ice;
mod limits;
mod message;
mod peer_id;

pub use error::{ErrorCode, ParseError};
pub use ice::IceServer;
pub use limits::*;
pub use message::{ClientMessage, ServerMessage, SignalData};
pub use peer_id::PeerId;

/// The protocol version this crate speaks. A `join` without `v` means this one.
pub const PROTOCOL_VERSION: u32 = 1;
