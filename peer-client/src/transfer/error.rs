//! Errors of a file transfer.

use crate::auth::AuthError;

use super::paths::PathError;

/// What stopped a transfer. Messages name the file and the cause.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// Authentication failed (wrong code, tampering, bad code).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The session failed (server unreachable, channel gone, ...).
    #[error(transparent)]
    Session(#[from] crate::error::Error),
    /// The sender offered a path that is not safe to write.
    #[error(transparent)]
    Path(#[from] PathError),
    /// Reading a local file failed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Writing a received file failed (disk full, permissions, ...).
    #[error(
        "cannot write {path}: {source}; files received so far are kept, run the same command again to resume"
    )]
    Write {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The receiver may not create or change a file or directory
    /// (permissions, read-only file system).
    #[error(
        "cannot write {path}: {source}; make sure {check} is writable, then run the same command again (files received so far are kept)"
    )]
    NotPermitted {
        /// What could not be created or written.
        path: String,
        /// The nearest existing path on the way: the file itself, or the
        /// directory that refused a new entry.
        check: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The sender sent nothing for too long while the receiver waited for it.
    #[error(
        "the sender sent nothing for {seconds} s; stopped waiting (files received so far are kept, run the same command again to resume)"
    )]
    Stalled {
        /// How long it was silent.
        seconds: u64,
    },
    /// The receiver acknowledged none of the data sent for too long.
    #[error(
        "the receiver acknowledged nothing for {seconds} s; stopped (run the same command again to resume)"
    )]
    Unacknowledged {
        /// How long nothing was acknowledged.
        seconds: u64,
    },
    /// A file to send cannot be sent (not UTF-8, vanished, changed, ...).
    #[error("cannot send {path}: {reason}")]
    Source {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The target exists and `--overwrite` was not given.
    #[error(
        "{path} already exists and differs from the offered file; nothing was changed (pass --overwrite to replace it)"
    )]
    Exists {
        /// The file.
        path: String,
    },
    /// A received file's hash does not match the sender's.
    #[error(
        "{path}: the received data does not match the sender's BLAKE3 hash; the partial file was removed"
    )]
    HashMismatch {
        /// The file.
        path: String,
    },
    /// The other side sent something the protocol does not allow.
    #[error("the other side broke the transfer protocol: {0}")]
    Protocol(String),
    /// The other side stopped with an error message.
    #[error("the other side stopped the transfer: {0}")]
    Peer(String),
    /// The other side disappeared.
    #[error("the other side went away ({0}); run the same command again to resume")]
    Gone(&'static str),
    /// The receiver said no.
    #[error("the receiver declined the transfer")]
    Declined,
    /// Nobody waits in the code's room.
    #[error(
        "nobody is sending with code {nameplate}-…; check the code and that the sender is still waiting"
    )]
    NoSender {
        /// The code's number.
        nameplate: String,
    },
    /// Someone else already waits in the code's room.
    #[error("the code number {nameplate} is in use on this server; choose another code")]
    NameplateInUse {
        /// The code's number.
        nameplate: String,
    },
    /// A step took too long.
    #[error("timed out {0}")]
    Timeout(&'static str),
    /// No peer of a swarm holds pieces this receiver still needs.
    #[error(
        "no peer in the room has {pieces} of the pieces still missing (the sender left before anyone got them); pieces received so far are kept: run the same command again once the sender sends again"
    )]
    Unavailable {
        /// Pieces nobody has.
        pieces: usize,
    },
    /// Too many peers failed to prove the code to a swarm's sender.
    #[error(
        "{failures} peers failed to prove the code; someone may be guessing it, so sending stopped (send again: a new code is drawn)"
    )]
    Guessing {
        /// Failed proofs.
        failures: usize,
    },
}

impl TransferError {
    /// Whether the other side already knows (it sent the error, or is gone):
    /// then [`super::Link::leave`] ends the link without waiting for it.
    pub fn peer_knows(&self) -> bool {
        matches!(self, Self::Peer(_) | Self::Gone(_) | Self::Declined)
    }
}
