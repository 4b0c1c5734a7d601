//! The sending side: offer the manifest, learn what the receiver already
//! holds, stream the rest in chunks with a BLAKE3 hash per file.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};

use super::TransferError;
use super::ack_watch::{ACK_CHECK, ACK_TIMEOUT, AckWatch};
use super::disk;
use super::link::{Incoming, Link, unexpected};
use super::manifest::{Manifest, Source};
use super::progress::Progress;
use super::wire::{EntryKind, Message};
use crate::auth::hex;

/// What a finished send did.
#[derive(Debug, Clone, PartialEq)]
pub struct SendSummary {
    /// Files offered.
    pub files: usize,
    /// Directories offered.
    pub dirs: usize,
    /// Bytes in all files.
    pub total_bytes: u64,
    /// Bytes sent now.
    pub sent_bytes: u64,
    /// Bytes the receiver already had (not sent again).
    pub skipped_bytes: u64,
    /// Time from the receiver's acceptance to its confirmation.
    pub elapsed: Duration,
}

/// Sends `source` over an authenticated link. If the receiver declines,
/// fails or goes away the error says so; on a local error the receiver is
/// told why.
pub async fn send(
    link: &mut Link,
    source: &Source,
    progress: &mut dyn Progress,
) -> Result<SendSummary, TransferError> {
    let result = run(link, source, progress).await;
    if let Err(err) = &result
        && !err.peer_knows()
    {
        link.fail(err).await;
    }
    result
}

async fn run(
    link: &mut Link,
    source: &Source,
    progress: &mut dyn Progress,
) -> Result<SendSummary, TransferError> {
    let manifest = &source.manifest;
    offer(link, manifest).await?;
    let resume = await_decision(link, manifest).await?;

    let started = Instant::now();
    progress.begin(manifest.total_bytes());
    let (mut sent_bytes, mut skipped_bytes) = (0u64, 0u64);
    for (index, entry) in manifest.entries().iter().enumerate() {
        if entry.kind != EntryKind::File {
            continue;
        }
        progress.file(&entry.path);
        let claim = resume.get(&index).cloned();
        let (sent, skipped) = send_file(link, source, index, claim, progress).await?;
        sent_bytes += sent;
        skipped_bytes += skipped;
    }
    link.send_listening(&Message::Done).await?;
    wait_confirmation(link).await?;
    progress.end();
    Ok(SendSummary {
        files: manifest.files(),
        dirs: manifest.dirs(),
        total_bytes: manifest.total_bytes(),
        sent_bytes,
        skipped_bytes,
        elapsed: started.elapsed(),
    })
}

/// Sends the manifest: the offer, then one message per entry.
async fn offer(link: &mut Link, manifest: &Manifest) -> Result<(), TransferError> {
    link.send_listening(&Message::Offer {
        entries: manifest.entries().len() as u64,
        bytes: manifest.total_bytes(),
    })
    .await?;
    for entry in manifest.entries() {
        link.send_listening(&Message::Entry {
            path: entry.path.clone(),
            kind: entry.kind,
            size: entry.size,
        })
        .await?;
    }
    Ok(())
}

/// Waits for the receiver to accept (a person may be asked, so without a
/// deadline); returns what it holds of each file: offset and hash, by index.
async fn await_decision(
    link: &mut Link,
    manifest: &Manifest,
) -> Result<HashMap<usize, (u64, String)>, TransferError> {
    let mut resume = HashMap::new();
    loop {
        match link.recv().await? {
            Incoming::Message(Message::Resume {
                index,
                offset,
                blake3,
            }) => {
                let index = usize::try_from(index).unwrap_or(usize::MAX);
                match manifest.entries().get(index) {
                    Some(entry) if entry.kind == EntryKind::File && offset <= entry.size => {
                        resume.insert(index, (offset, blake3));
                    }
                    _ => {
                        return Err(TransferError::Protocol(format!(
                            "resume offset {offset} for entry {index} does not fit the manifest"
                        )));
                    }
                }
            }
            Incoming::Message(Message::Accept { window }) => {
                link.set_window(window);
                return Ok(resume);
            }
            Incoming::Message(Message::Decline) => return Err(TransferError::Declined),
            other => return Err(unexpected("accept or decline", &other)),
        }
    }
}

/// Sends file `index` from where the receiver's verified copy ends (its
/// `claim`, if the hash matches) and its hash; returns the bytes sent and
/// the bytes skipped.
async fn send_file(
    link: &mut Link,
    source: &Source,
    index: usize,
    claim: Option<(u64, String)>,
    progress: &mut dyn Progress,
) -> Result<(u64, u64), TransferError> {
    let shown = source.local[index].display().to_string();
    let read_error = |source| TransferError::Read {
        path: shown.clone(),
        source,
    };
    let (local, size) = (
        source.local[index].clone(),
        source.manifest.entries()[index].size,
    );
    let (file, hasher, offset) = disk::blocking(move || open_source(&local, size, claim)).await?;
    link.send_listening(&Message::File {
        index: index as u64,
        offset,
    })
    .await?;
    progress.skipped(offset);
    let (mut chunks, reader) = disk::spawn_reader(file, hasher, size - offset, link.chunk_bytes());
    let mut sent = 0u64;
    while let Some(read) = chunks.recv().await {
        let buffer = read.map_err(read_error)?;
        let n = buffer.len() as u64;
        // The receiver may stop (disk full, ...) or vanish: this hears it.
        link.send_data(buffer).await?;
        sent += n;
        progress.advance(n);
    }
    let hasher = disk::join(reader).await;
    link.send_listening(&Message::FileEnd {
        index: index as u64,
        blake3: hex::encode(hasher.finalize().as_bytes()),
    })
    .await?;
    Ok((sent, offset))
}

/// Waits for the receiver's `done`. Up to the channel's send bound (4 MiB)
/// may still be on its way when the last chunk is queued, which takes
/// minutes on a slow lossy link, so the wait is bounded by
/// [`ACK_TIMEOUT`] from the last acknowledgement, not from the last send.
async fn wait_confirmation(link: &mut Link) -> Result<(), TransferError> {
    let mut watch = AckWatch::new(tokio::time::Instant::now(), ACK_TIMEOUT);
    loop {
        tokio::select! {
            heard = link.recv() => {
                return match heard? {
                    Incoming::Message(Message::Done) => Ok(()),
                    other => Err(unexpected("the receiver's done", &other)),
                };
            }
            () = tokio::time::sleep(ACK_CHECK) => {
                if !watch.observe(link.queued_bytes().await, tokio::time::Instant::now()) {
                    return Err(TransferError::Timeout(
                        "waiting for the receiver to confirm the files",
                    ));
                }
            }
        }
    }
}

/// Opens a file to send and checks it still has the offered `size`. With
/// the receiver's `claim` (bytes held, their BLAKE3) it hashes its own first
/// bytes: equal → it continues after them, else it starts over at 0.
/// Returns the file positioned at the start offset, the hasher of what lies
/// before it, and the offset.
fn open_source(
    local: &Path,
    size: u64,
    claim: Option<(u64, String)>,
) -> Result<(File, blake3::Hasher, u64), TransferError> {
    let shown = local.display().to_string();
    let read_error = |source| TransferError::Read {
        path: shown.clone(),
        source,
    };
    let mut file = File::open(local).map_err(read_error)?;
    let now = file.metadata().map_err(read_error)?.len();
    if now != size {
        return Err(TransferError::Source {
            path: shown,
            reason: format!("it changed size while being sent ({size} bytes offered, {now} now)"),
        });
    }
    let mut hasher = blake3::Hasher::new();
    if let Some((claimed, claimed_hash)) = claim {
        disk::hash_prefix(&mut file, claimed, &mut hasher).map_err(read_error)?;
        if hex::encode(hasher.finalize().as_bytes()) == claimed_hash {
            return Ok((file, hasher, claimed));
        }
        tracing::info!(path = %shown, "the receiver's partial copy differs; sending it whole");
        hasher.reset();
        file.seek(SeekFrom::Start(0)).map_err(read_error)?;
    }
    Ok((file, hasher, 0))
}
