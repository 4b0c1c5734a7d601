//! File transfer between two peers that share a code phrase: an
//! authenticated [`Link`] (see [`crate::auth`]), a [`Manifest`] offered by the
//! sender, files streamed in chunks with a BLAKE3 hash each, resumable.
//! The protocol on the wire is in `docs/transfer.md`.
//!
//! ```no_run
//! use peer_client::auth::{Code, Role};
//! use peer_client::transfer::{Link, NoProgress, Source, send};
//! use peer_client::SessionConfig;
//!
//! # async fn run() -> Result<(), peer_client::transfer::TransferError> {
//! let source = Source::collect(&["photos".into()])?;
//! let code = Code::generate();
//! println!("code: {code}");
//! let config = SessionConfig::new("ws://127.0.0.1:8080/ws", "");
//! let mut link = Link::open(config, &code, Role::Sender, true).await?;
//! let summary = send(&mut link, &source, &mut NoProgress).await?;
//! println!("{} bytes sent", summary.sent_bytes);
//! # Ok(())
//! # }
//! ```

mod ack_watch;
mod channel_setup;
mod disk;
mod error;
#[cfg(test)]
mod limits_table;
mod link;
mod manifest;
pub mod paths;
mod progress;
mod receiver;
mod send_window;
mod sender;
mod wire;

pub use ack_watch::ACK_TIMEOUT;
pub use channel_setup::transfer_session;
pub use error::TransferError;
pub use link::{Incoming, Link, MAX_CHUNK_BYTES, STEP_TIMEOUT};
pub(crate) use manifest::ManifestReader;
pub use manifest::{Entry, MAX_ENTRIES, MAX_PATH_BYTES_TOTAL, Manifest, Source};
pub use progress::{NoProgress, Progress};
pub use receiver::{DEFAULT_IDLE_TIMEOUT, Offer, ReceiveOptions, ReceiveSummary};
pub(crate) use receiver::{targets, write_error};
pub use sender::{SendSummary, send};
pub use wire::{EntryKind, Message, TRANSFER_LABEL};
