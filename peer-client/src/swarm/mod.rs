//! Sending to several receivers at once: a swarm. The sender offers files
//! under one code to every receiver that proves it; the files are cut into
//! pieces with a BLAKE3 hash each, and receivers fetch pieces from whichever
//! peer has them (the sender or another receiver), rarest first, so the
//! sender's upload is spent about once whatever the number of receivers.
//! Every piece is checked against the sender's hash before it is written or
//! passed on. The protocol on the wire is in `docs/swarm.md`.
//!
//! ```no_run
//! use peer_client::auth::Code;
//! use peer_client::swarm::{Hashed, NoSwarmProgress, seed};
//! use peer_client::transfer::Source;
//! use peer_client::SessionConfig;
//!
//! # async fn run() -> Result<(), peer_client::transfer::TransferError> {
//! let files = Hashed::new(Source::collect(&["photos".into()])?).await?;
//! let code = Code::generate();
//! println!("code: {code}");
//! let config = SessionConfig::new("ws://127.0.0.1:8080/ws", "");
//! let summary = seed(config, &code, &files, 4, true, &mut NoSwarmProgress).await?;
//! println!("{} bytes uploaded", summary.uploaded_bytes);
//! # Ok(())
//! # }
//! ```

mod bitfield;
mod content;
mod handshake;
mod node;
mod pieces;
mod scheduler;
mod seeding;
mod storage;
mod uploader;

use std::sync::Arc;
use std::time::{Duration, Instant};

use signaling_protocol::PeerId;

pub use content::ReadOffer;
pub use node::Decision;
pub use pieces::{MAX_PIECE_BYTES, MAX_PIECES, MIN_PIECE_BYTES};
pub use scheduler::REQUESTS_PER_PEER;

use content::Content;
use node::{Ending, Node};
use storage::Storage;

use crate::auth::{Code, Role};
use crate::session::{Session, SessionConfig};
use crate::transfer::{Manifest, Message, ReceiveOptions, Source, TransferError, transfer_session};

/// Most peers one swarm peer keeps links to (it serves each of them).
pub const MAX_PEERS: usize = 16;
/// Failed proofs of the code after which a sender stops: each is one
/// guess at the code's secret (1 in 65 536 for a generated one).
pub const MAX_FAILED_PROOFS: usize = 3;

/// What happened to one peer of the swarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerNews {
    /// It proved the code, in this role.
    Joined {
        /// The sender, or a receiver.
        role: Role,
    },
    /// It holds this many pieces.
    Holds {
        /// Pieces held.
        pieces: usize,
        /// Pieces in all.
        of: usize,
    },
    /// It holds every piece.
    Finished,
    /// It declined the offer.
    Declined,
    /// It left.
    Left,
    /// It was dropped for this reason (a wrong code, a corrupted piece, ...).
    Dropped(String),
}

/// What a swarm peer reports as it goes.
pub trait SwarmProgress: Send + Sync {
    /// A receiver accepted `manifest`, of which it already held `held_bytes`.
    fn accepted(&mut self, _manifest: &Manifest, _held_bytes: u64) {}
    /// News of a peer.
    fn peer(&mut self, _peer: PeerId, _news: PeerNews) {}
    /// A receiver verified and wrote `bytes` more.
    fn received(&mut self, _bytes: u64) {}
    /// `bytes` of a piece went out to `peer`.
    fn uploaded(&mut self, _peer: PeerId, _bytes: u64) {}
    /// `pieces` missing pieces are held by no connected peer.
    fn unavailable(&mut self, _pieces: usize) {}
    /// The sender: every piece is now held by some receiver, which can pass
    /// it on; the sender may leave and the receivers still finish.
    fn seeded(&mut self) {}
}

/// Reports nothing.
pub struct NoSwarmProgress;

impl SwarmProgress for NoSwarmProgress {}

/// What a swarm peer did.
#[derive(Debug, Clone, PartialEq)]
pub struct SwarmSummary {
    /// Bytes of all files.
    pub total_bytes: u64,
    /// Bytes this peer received now (a receiver).
    pub received_bytes: u64,
    /// Bytes it held already from an earlier run (a receiver).
    pub held_bytes: u64,
    /// Bytes of pieces it sent to others.
    pub uploaded_bytes: u64,
    /// Time from the start (the sender: from hashing done; a receiver:
    /// from its acceptance) to the end.
    pub elapsed: Duration,
}

/// `config` set up for the swarm of `code`: its own room, the transfer
/// channel negotiated on every link.
pub fn swarm_session(config: SessionConfig, code: &Code) -> SessionConfig {
    let mut config = transfer_session(config, code);
    config.room = code.swarm_room();
    config
}

/// Files ready to be offered to a swarm: every piece hashed.
#[derive(Debug, Clone)]
pub struct Hashed(Arc<Content>);

impl Hashed {
    /// Reads and hashes every piece of `source` (on a blocking thread).
    pub async fn new(source: Source) -> Result<Self, TransferError> {
        let content = tokio::task::spawn_blocking(move || Content::of_source(source))
            .await
            .map_err(|_| TransferError::Gone("the hashing task ended"))??;
        Ok(Self(Arc::new(content)))
    }

    /// What is offered.
    pub fn manifest(&self) -> &Manifest {
        &self.0.manifest
    }

    /// Bytes per piece.
    pub fn piece_bytes(&self) -> u64 {
        self.0.map.piece_bytes()
    }
}

/// Offers `files` to a swarm: joins the code's swarm room and serves every
/// receiver that proves the code until `receivers` of them hold every
/// piece. With `exclusive` (a generated code), a room that is occupied
/// already is [`TransferError::NameplateInUse`]: draw another code.
pub async fn seed(
    config: SessionConfig,
    code: &Code,
    files: &Hashed,
    receivers: usize,
    exclusive: bool,
    progress: &mut dyn SwarmProgress,
) -> Result<SwarmSummary, TransferError> {
    let session = Session::connect(swarm_session(config, code)).await?;
    if exclusive && !session.peers_at_join().is_empty() {
        session.close().await;
        return Err(TransferError::NameplateInUse {
            nameplate: code.nameplate().to_owned(),
        });
    }
    let total_bytes = files.0.manifest.total_bytes();
    let started = Instant::now();
    let mut node = Node::new(
        session,
        code.clone(),
        Role::Sender,
        crate::transfer::DEFAULT_IDLE_TIMEOUT,
        Some(Arc::clone(&files.0)),
        progress,
    );
    let ended = node
        .run(
            receivers,
            |_| Box::pin(std::future::ready(false)),
            |_| std::future::ready(Err(TransferError::Declined)),
        )
        .await;
    finish(node, ended, total_bytes, started).await
}

/// Joins the swarm of `code` as a receiver: reads the sender's offer, asks
/// `decide`, writes under `options.out`, and stays until every connected peer
/// holds every piece (or nobody asked it for anything for `idle`).
pub async fn join(
    config: SessionConfig,
    code: &Code,
    options: ReceiveOptions,
    idle: Duration,
    decide: impl FnMut(&ReadOffer) -> Decision,
    progress: &mut dyn SwarmProgress,
) -> Result<SwarmSummary, TransferError> {
    let session = Session::connect(swarm_session(config, code)).await?;
    if session.peers_at_join().is_empty() {
        session.close().await;
        return Err(TransferError::NoSender {
            nameplate: code.nameplate().to_owned(),
        });
    }
    let mut node = Node::new(session, code.clone(), Role::Receiver, idle, None, progress);
    let started = Instant::now();
    let ended = node
        .run(0, decide, |offer: ReadOffer| {
            let options = options.clone();
            let prepared = tokio::task::spawn_blocking(move || {
                let (storage, have) =
                    Storage::prepare(&offer.manifest, &offer.map, &offer.hashes, &options)?;
                let digest = pieces::swarm_digest(&offer.manifest, &offer.map, &offer.hashes);
                Ok((
                    Content {
                        manifest: offer.manifest,
                        map: offer.map,
                        hashes: offer.hashes,
                        digest,
                        storage,
                    },
                    have,
                ))
            });
            async move {
                prepared
                    .await
                    .map_err(|_| TransferError::Gone("the disk task ended"))?
            }
        })
        .await;
    let total_bytes = node
        .content
        .as_ref()
        .map_or(0, |content| content.manifest.total_bytes());
    finish(node, ended, total_bytes, started).await
}

async fn finish(
    mut node: Node<'_>,
    ended: Result<Ending, TransferError>,
    total_bytes: u64,
    started: Instant,
) -> Result<SwarmSummary, TransferError> {
    let summary = SwarmSummary {
        total_bytes,
        received_bytes: node.received_bytes,
        held_bytes: node.held_bytes,
        uploaded_bytes: node.uploaded_bytes,
        elapsed: started.elapsed(),
    };
    match ended {
        Ok(Ending::Finished) => {
            node.flush().await;
            node.session.close().await;
            Ok(summary)
        }
        Ok(Ending::Declined) => {
            node.tell_all(&Message::Decline).await;
            node.session.close().await;
            Err(TransferError::Declined)
        }
        Err(error) => {
            // What was queued (a key confirmation, say) goes out first.
            node.flush().await;
            if !error.peer_knows() {
                node.tell_all(&Message::Error {
                    message: error.to_string(),
                })
                .await;
            }
            node.session.close().await;
            Err(error)
        }
    }
}
