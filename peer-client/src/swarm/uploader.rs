//! The sending side of one swarm link: a task that sends, in order, the
//! control messages it is handed (ahead of anything else) and the pieces the
//! peer asked for, each read from disk and checked against its hash first.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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
/// Longest a dropped link's task may take to send its last messages.
const RETIRE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// How often a flush looks whether the peer has acknowledged everything.
const FLUSH_POLL: std::time::Duration = std::time::Duration::from_millis(10);

/// What a link's task reports back.
#[derive(Debug)]
pub enum UploadReport {
    /// A piece went out to `peer` (queued on its channel).
    Sent {
        /// To whom.
        peer: PeerId,
        /// Which.
        piece: u32,
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
    channel: Channel,
    control: mpsc::Sender<Outgoing>,
    pieces: mpsc::Sender<(Arc<Content>, u32)>,
    /// Items handed over and not yet written to the channel.
    pending: Arc<AtomicUsize>,
    /// The task; aborted on drop unless [`Uploader::retire`] let it finish.
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Uploader {
    /// Starts the task for `channel`; it reports on `reports`.
    pub fn start(channel: Channel, reports: mpsc::Sender<UploadReport>) -> Self {
        let (control, control_rx) = mpsc::channel(CONTROL_QUEUE);
        let (pieces, pieces_rx) = mpsc::channel(REQUESTS_PER_PEER);
        let pending = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(run(
            channel.clone(),
            control_rx,
            pieces_rx,
            Arc::clone(&pending),
            reports,
        ));
        Self {
            channel,
            control,
            pieces,
            pending,
            task: Some(task),
        }
    }

    /// Queues `outgoing`; false if the queue is full or the task ended.
    pub fn send(&self, outgoing: Outgoing) -> bool {
        self.pending.fetch_add(1, Ordering::AcqRel);
        let queued = self.control.try_send(outgoing).is_ok();
        if !queued {
            self.pending.fetch_sub(1, Ordering::AcqRel);
        }
        queued
    }

    /// Queues a piece the peer asked for; false if it asked for more than
    /// [`REQUESTS_PER_PEER`] at once (or the task ended).
    pub fn serve(&self, content: Arc<Content>, piece: u32) -> bool {
        self.pending.fetch_add(1, Ordering::AcqRel);
        let queued = self.pieces.try_send((content, piece)).is_ok();
        if !queued {
            self.pending.fetch_sub(1, Ordering::AcqRel);
        }
        queued
    }

    /// Waits until everything handed over is written and acknowledged by
    /// the peer (or the task ended).
    pub async fn flush(&self) {
        while self.task.as_ref().is_some_and(|task| !task.is_finished())
            && (self.pending.load(Ordering::Acquire) > 0 || self.channel.queued_bytes().await > 0)
        {
            tokio::time::sleep(FLUSH_POLL).await;
        }
    }
}

impl Uploader {
    /// Ends the link's task once it has sent what is queued and `last`
    /// (a key confirmation in flight, then why the link ends), and the peer
    /// has acknowledged them, at most [`RETIRE_WAIT`] from now; pieces
    /// still queued are not sent.
    pub fn retire(mut self, last: Option<Message>) -> tokio::task::JoinHandle<()> {
        if let Some(last) = last {
            self.send(Outgoing::Message(last));
        }
        let Some(mut task) = self.task.take() else {
            return tokio::spawn(async {});
        };
        let channel = self.channel.clone();
        // Dropping the handle's queues ends the task after what they hold.
        drop(self);
        tokio::spawn(async move {
            let delivered = async {
                let _ = (&mut task).await;
                // Written is not yet sent: a node that stops right after
                // (a sender that saw one guess too many) closes the
                // connection, and what the channel still held was lost.
                while channel.queued_bytes().await > 0 {
                    tokio::time::sleep(FLUSH_POLL).await;
                }
            };
            if tokio::time::timeout(RETIRE_WAIT, delivered).await.is_err() {
                task.abort();
            }
        })
    }
}

impl Drop for Uploader {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

async fn run(
    channel: Channel,
    mut control: mpsc::Receiver<Outgoing>,
    mut pieces: mpsc::Receiver<(Arc<Content>, u32)>,
    pending: Arc<AtomicUsize>,
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
                        let _ = reports
                            .send(UploadReport::Sent { peer, piece, bytes })
                            .await;
                        Ok(())
                    }
                    Err(error) => Err(error),
                },
                None => return,
            },
        };
        pending.fetch_sub(1, Ordering::AcqRel);
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use test_support::TestServer;

    use super::*;
    use crate::{Event, Session, SessionConfig, TransportOptions};

    const STEP: Duration = Duration::from_secs(15);

    async fn chat_channel(session: &mut Session) -> Channel {
        tokio::time::timeout(STEP, async {
            loop {
                match session.next_event().await.expect("the session ended") {
                    Event::ChannelOpen { channel, .. } if channel.label() == "chat" => {
                        return channel;
                    }
                    _ => {}
                }
            }
        })
        .await
        .expect("no chat channel in time")
    }

    async fn join(url: &str) -> Session {
        let mut config = SessionConfig::new(url, "retire");
        config.transport = TransportOptions::loopback();
        Session::connect(config).await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_retired_link_ends_once_the_peer_has_its_last_messages() {
        let server = TestServer::loopback();
        let mut receiver = join(&server.url()).await;
        let mut sender = join(&server.url()).await;
        let channel = chat_channel(&mut sender).await;
        chat_channel(&mut receiver).await;
        let (reports, _reports_rx) = mpsc::channel(8);
        let uploader = Uploader::start(channel.clone(), reports);
        // More than the loopback link acknowledges the moment it is written.
        for _ in 0..8 {
            let message = "x".repeat(200_000);
            assert!(uploader.send(Outgoing::Message(Message::Error { message })));
        }
        let last = Message::Error {
            message: "the last word".into(),
        };
        tokio::time::timeout(STEP, uploader.retire(Some(last)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(0, channel.queued_bytes().await, "retired before delivery");
        sender.close().await;
        receiver.close().await;
    }
}
