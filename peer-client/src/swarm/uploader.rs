//! The sending side of one swarm link: a task that sends, in order, the
//! control messages it is handed (ahead of anything else) and the pieces the
//! peer asked for, each read from disk and checked against its hash first.

use std::sync::Arc;

use bytes::BytesMut;
use signaling_protocol::PeerId;
use tokio::sync::mpsc;

use super::content::Content;
use super::scheduler::REQUESTS_PER_PEER;
use crate::channel::Channel;
use crate::payload::Payload;
use crate::transfer::{MAX_CHUNK_BYTES, Message, TransferError};

/// Control messages queued for one peer at most: its offer goes as one
/// item, and `have`s are bounded by the pieces, so this is far more than a
/// peer that reads its channel ever leaves queued.
const CONTROL_QUEUE: usize = 4096;

/// What a link's task reports back.
#[derive(Debug)]
pub enum UploadReport {
    /// A piece went out to `peer` (queued on its channel).
    Sent {
        /// To whom.
        peer: PeerId,
        /// Its bytes.
        bytes: u64,
    },
    /// The link cannot go on: the channel closed, or a piece on our disk
    /// no longer matches its hash.
    Failed {
        /// Which link.
        peer: PeerId,
        /// Why.
        error: TransferError,
    },
}

/// Something for the link's task to send.
pub enum Outgoing {
    /// One control message.
    Message(Message),
    /// The whole offer of `content` (the sender to each receiver).
    Offer(Arc<Content>),
}

/// The handle of one link's task.
pub struct Uploader {
    control: mpsc::Sender<Outgoing>,
    pieces: mpsc::Sender<(Arc<Content>, u32)>,
    task: tokio::task::JoinHandle<()>,
}

impl Uploader {
    /// Starts the task for `channel`; it reports on `reports`.
    pub fn start(channel: Channel, reports: mpsc::Sender<UploadReport>) -> Self {
        let (control, control_rx) = mpsc::channel(CONTROL_QUEUE);
        let (pieces, pieces_rx) = mpsc::channel(REQUESTS_PER_PEER);
        let task = tokio::spawn(run(channel, control_rx, pieces_rx, reports));
        Self {
            control,
            pieces,
            task,
        }
    }

    /// Queues `outgoing`; false if the queue is full or the task ended.
    pub fn send(&self, outgoing: Outgoing) -> bool {
        self.control.try_send(outgoing).is_ok()
    }

    /// Queues a piece the peer asked for; false if it asked for more than
    /// [`REQUESTS_PER_PEER`] at once (or the task ended).
    pub fn serve(&self, content: Arc<Content>, piece: u32) -> bool {
        self.pieces.try_send((content, piece)).is_ok()
    }
}

impl Drop for Uploader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    channel: Channel,
    mut control: mpsc::Receiver<Outgoing>,
    mut pieces: mpsc::Receiver<(Arc<Content>, u32)>,
    reports: mpsc::Sender<UploadReport>,
) {
    let peer = channel.peer();
    let chunk = channel.max_message_bytes().clamp(1, MAX_CHUNK_BYTES);
    loop {
        let sent = tokio::select! {
            biased;
            outgoing = control.recv() => match outgoing {
                Some(Outgoing::Message(message)) => send_message(&channel, &message).await,
                Some(Outgoing::Offer(content)) => {
                    let mut sent = Ok(());
                    for message in content.offer_messages() {
                        sent = send_message(&channel, &message).await;
                        if sent.is_err() {
                            break;
                        }
                    }
                    sent
                }
                None => return,
            },
            asked = pieces.recv() => match asked {
                Some((content, piece)) => match send_piece(&channel, &content, piece, chunk).await {
                    Ok(bytes) => {
                        let _ = reports.send(UploadReport::Sent { peer, bytes }).await;
                        Ok(())
                    }
                    Err(error) => Err(error),
                },
                None => return,
            },
        };
        if let Err(error) = sent {
            let _ = reports.send(UploadReport::Failed { peer, error }).await;
            return;
        }
    }
}

async fn send_message(channel: &Channel, message: &Message) -> Result<(), TransferError> {
    channel
        .send(Payload::Text(message.to_json()))
        .await
        .map_err(|_| TransferError::Gone("the channel closed"))
}

/// Reads piece `piece`, checks it, and sends its header and data.
async fn send_piece(
    channel: &Channel,
    content: &Arc<Content>,
    piece: u32,
    chunk: usize,
) -> Result<u64, TransferError> {
    let data = {
        let content = Arc::clone(content);
        tokio::task::spawn_blocking(move || -> Result<Vec<u8>, TransferError> {
            let data = content.storage.read(&content.map, piece)?;
            if !content.hashes.matches(piece, &data) {
                let path = content
                    .map
                    .piece(piece)
                    .and_then(|place| content.manifest.entries().get(place.entry))
                    .map(|entry| entry.path.clone())
                    .unwrap_or_default();
                return Err(TransferError::Source {
                    path,
                    reason: "it changed on disk after it was offered".into(),
                });
            }
            Ok(data)
        })
        .await
        .map_err(|_| TransferError::Gone("the disk task ended"))??
    };
    send_message(channel, &Message::Piece { piece }).await?;
    for part in data.chunks(chunk) {
        channel
            .send_bytes(BytesMut::from(part))
            .await
            .map_err(|_| TransferError::Gone("the channel closed"))?;
    }
    Ok(data.len() as u64)
}
