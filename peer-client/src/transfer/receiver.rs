//! The receiving side: read and check the offer, let the user decide, claim
//! what is already on disk, then write each file to `NAME.part`, verify its
//! BLAKE3 hash and rename it into place.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::TransferError;
use super::disk;
use super::link::{Incoming, Link, unexpected};
use super::manifest::{Entry, Manifest, ManifestReader};
use super::paths::{self, part_path};
use super::progress::Progress;
use super::wire::{EntryKind, Message};
use crate::auth::hex;

/// Where and how to write.
#[derive(Debug, Clone)]
pub struct ReceiveOptions {
    /// Output directory (created if missing).
    pub out: PathBuf,
    /// Replace existing files that differ from the offered ones.
    pub overwrite: bool,
}

/// What a finished receive did.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiveSummary {
    /// Files in the offer.
    pub files: usize,
    /// Directories in the offer.
    pub dirs: usize,
    /// Bytes in all files.
    pub total_bytes: u64,
    /// Bytes received now.
    pub received_bytes: u64,
    /// Bytes already held from an earlier run (not sent again).
    pub skipped_bytes: u64,
    /// Time from acceptance to the last file verified.
    pub elapsed: Duration,
}

/// How long the sender may stay silent while the receiver waits for it,
/// unless told otherwise.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes per second even a slow disk hashes: before it starts a file the
/// receiver holds part of, the sender hashes that part, and may stay silent
/// that much longer.
pub(super) const SLOWEST_HASH_RATE: u64 = 25_000_000;

/// An offer read from the sender, waiting for a decision.
pub struct Offer {
    link: Link,
    manifest: Manifest,
    idle: Duration,
}

/// What is on disk for one offered file before the transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Held {
    Nothing,
    /// `NAME.part` with this many bytes of this hash.
    Partial {
        offset: u64,
        hash: String,
    },
    /// The final file exists with the offered size and this hash.
    Complete {
        hash: String,
    },
}

impl Offer {
    /// Reads the sender's manifest; every path is checked before the offer
    /// is shown to anyone. From here on, a sender that sends nothing for
    /// `idle` while it should ends the transfer with
    /// [`TransferError::Stalled`].
    pub async fn read(mut link: Link, idle: Duration) -> Result<Self, TransferError> {
        match Self::read_manifest(&mut link, idle).await {
            Ok(manifest) => Ok(Self {
                link,
                manifest,
                idle,
            }),
            Err(err) => {
                link.stop(&err).await;
                Err(err)
            }
        }
    }

    async fn read_manifest(link: &mut Link, idle: Duration) -> Result<Manifest, TransferError> {
        let mut reader = match recv_within(link, idle).await? {
            Incoming::Message(Message::Offer { entries, bytes }) => {
                ManifestReader::new(entries, bytes)?
            }
            other => return Err(unexpected("an offer", &other)),
        };
        while !reader.is_full() {
            match recv_within(link, idle).await? {
                Incoming::Message(Message::Entry { path, kind, size }) => {
                    reader.push(Entry { path, kind, size })?;
                }
                other => return Err(unexpected("a manifest entry", &other)),
            }
        }
        reader.finish()
    }

    /// What is offered.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Says no; nothing is written.
    pub async fn decline(self) {
        let _ = self.link.send(&Message::Decline).await;
        self.link.close_after_peer().await;
    }

    /// Accepts and receives every file into `options.out`.
    pub async fn accept(
        mut self,
        options: &ReceiveOptions,
        progress: &mut dyn Progress,
    ) -> Result<ReceiveSummary, TransferError> {
        let result = receive(&mut self.link, &self.manifest, options, self.idle, progress).await;
        match &result {
            Ok(_) => self.link.close_after_peer().await,
            Err(err) => self.link.stop(err).await,
        }
        result
    }
}

/// The next frame from the sender, if it comes within `wait`.
async fn recv_within(link: &mut Link, wait: Duration) -> Result<Incoming, TransferError> {
    tokio::time::timeout(wait, link.recv())
        .await
        .unwrap_or(Err(TransferError::Stalled {
            seconds: wait.as_secs(),
        }))
}

async fn receive(
    link: &mut Link,
    manifest: &Manifest,
    options: &ReceiveOptions,
    idle: Duration,
    progress: &mut dyn Progress,
) -> Result<ReceiveSummary, TransferError> {
    let (targets, held) = {
        let (manifest, options) = (manifest.clone(), options.clone());
        disk::blocking(move || prepare(&manifest, &options)).await?
    };
    claim_and_accept(link, manifest, &held).await?;

    let started = Instant::now();
    progress.begin(manifest.total_bytes());
    let (mut received_bytes, mut skipped_bytes) = (0u64, 0u64);
    for (index, entry) in manifest.entries().iter().enumerate() {
        if entry.kind != EntryKind::File {
            continue;
        }
        progress.file(&entry.path);
        let file = IncomingFile {
            index,
            entry,
            target: &targets[index],
            held: &held[index],
        };
        let (received, skipped) = file.receive(link, idle, progress).await?;
        received_bytes += received;
        skipped_bytes += skipped;
    }
    match recv_within(link, idle).await? {
        Incoming::Message(Message::Done) => {}
        other => return Err(unexpected("done", &other)),
    }
    link.send(&Message::Done).await?;
    progress.end();
    Ok(ReceiveSummary {
        files: manifest.files(),
        dirs: manifest.dirs(),
        total_bytes: manifest.total_bytes(),
        received_bytes,
        skipped_bytes,
        elapsed: started.elapsed(),
    })
}

/// Tells the sender what is held of each file (so it sends only the rest),
/// then accepts.
async fn claim_and_accept(
    link: &mut Link,
    manifest: &Manifest,
    held: &[Held],
) -> Result<(), TransferError> {
    for (index, state) in held.iter().enumerate() {
        let (offset, hash) = match state {
            Held::Nothing => continue,
            Held::Partial { offset, hash } => (*offset, hash.clone()),
            Held::Complete { hash } => (manifest.entries()[index].size, hash.clone()),
        };
        link.send(&Message::Resume {
            index: index as u64,
            offset,
            blake3: hash,
        })
        .await?;
    }
    link.send(&Message::Accept { window: None }).await
}

/// One offered file on its way in.
struct IncomingFile<'a> {
    index: usize,
    entry: &'a Entry,
    target: &'a PathBuf,
    held: &'a Held,
}

impl IncomingFile<'_> {
    /// Receives the file (or confirms the copy held), verifies it and puts
    /// it in place; returns the bytes received and the bytes already held.
    async fn receive(
        &self,
        link: &mut Link,
        idle: Duration,
        progress: &mut dyn Progress,
    ) -> Result<(u64, u64), TransferError> {
        let offset = self.start(link, idle).await?;
        progress.skipped(offset);
        if let Held::Complete { hash } = self.held
            && offset == self.entry.size
        {
            // Already here and identical: only the final hash is checked.
            if expect_end(link, self.index, idle).await? != *hash {
                return Err(self.hash_mismatch());
            }
            return Ok((0, offset));
        }
        let part = part_path(self.target);
        let hasher = self.write_from(link, &part, offset, idle, progress).await?;
        let expected = expect_end(link, self.index, idle).await?;
        if hex::encode(hasher.finalize().as_bytes()) != expected {
            let _ = disk::blocking(move || std::fs::remove_file(part)).await;
            return Err(self.hash_mismatch());
        }
        let to = self.target.clone();
        disk::blocking(move || std::fs::rename(part, to))
            .await
            .map_err(|source| write_error(self.target, source))?;
        Ok((self.entry.size - offset, offset))
    }

    /// Reads the sender's start of this file: where it starts sending,
    /// which is 0 or the bytes held.
    async fn start(&self, link: &mut Link, idle: Duration) -> Result<u64, TransferError> {
        let claimed = match self.held {
            Held::Nothing => 0,
            Held::Partial { offset, .. } => *offset,
            Held::Complete { .. } => self.entry.size,
        };
        // The sender hashes its copy of the claimed bytes before it answers.
        let hashing = Duration::from_secs(claimed / SLOWEST_HASH_RATE);
        let index = self.index;
        let offset = match recv_within(link, idle + hashing).await? {
            Incoming::Message(Message::File { index: i, offset }) if i == index as u64 => offset,
            other => return Err(unexpected(&format!("the start of file {index}"), &other)),
        };
        if offset != 0 && offset != claimed {
            return Err(TransferError::Protocol(format!(
                "file {index} starts at {offset}, but {claimed} bytes were held"
            )));
        }
        if offset == 0 && matches!(self.held, Held::Complete { .. }) && self.entry.size > 0 {
            return Err(TransferError::Exists {
                path: self.entry.path.clone(),
            });
        }
        Ok(offset)
    }

    /// Writes the file's data from `offset` on into `part`; returns the hash
    /// of the whole part file.
    async fn write_from(
        &self,
        link: &mut Link,
        part: &Path,
        offset: u64,
        idle: Duration,
        progress: &mut dyn Progress,
    ) -> Result<blake3::Hasher, TransferError> {
        let (chunks, writer) = disk::spawn_writer(part.to_path_buf(), offset);
        let mut remaining = self.entry.size - offset;
        while remaining > 0 {
            let data = match recv_within(link, idle).await? {
                Incoming::Data(data) => data,
                other => return Err(unexpected("file data", &other)),
            };
            let n = data.len() as u64;
            if n > remaining {
                return Err(TransferError::Protocol(format!(
                    "more data than the size offered for {:?}",
                    self.entry.path
                )));
            }
            if chunks.send(data).await.is_err() {
                // The writer stopped on an error; its result says which.
                break;
            }
            remaining -= n;
            progress.advance(n);
        }
        drop(chunks);
        disk::join(writer)
            .await
            .map_err(|err| write_error(&err.path, err.source))
    }

    fn hash_mismatch(&self) -> TransferError {
        TransferError::HashMismatch {
            path: self.entry.path.clone(),
        }
    }
}

/// Where each entry of `manifest` goes under `out`; refuses any unsafe path
/// before anything is written.
pub(crate) fn targets(manifest: &Manifest, out: &Path) -> Result<Vec<PathBuf>, TransferError> {
    Ok(manifest
        .entries()
        .iter()
        .map(|entry| paths::resolve(out, &entry.path))
        .collect::<Result<Vec<_>, _>>()?)
}

/// Resolves every path (refusing any before anything is written), looks at
/// what is on disk for each, then creates the output directory and every
/// offered directory. Returns the targets and what is held of each.
fn prepare(
    manifest: &Manifest,
    options: &ReceiveOptions,
) -> Result<(Vec<PathBuf>, Vec<Held>), TransferError> {
    let out = &options.out;
    let targets = targets(manifest, out)?;
    let mut held = Vec::with_capacity(targets.len());
    for (entry, target) in manifest.entries().iter().zip(&targets) {
        held.push(inspect(entry, target, options.overwrite)?);
    }
    std::fs::create_dir_all(out).map_err(|source| write_error(out, source))?;
    for (entry, target) in manifest.entries().iter().zip(&targets) {
        if entry.kind == EntryKind::Dir {
            std::fs::create_dir_all(target).map_err(|source| write_error(target, source))?;
        }
    }
    Ok((targets, held))
}

/// What is on disk for `entry` at `target`; refuses what must not be touched.
fn inspect(entry: &Entry, target: &Path, overwrite: bool) -> Result<Held, TransferError> {
    let existing = std::fs::symlink_metadata(target).ok();
    if entry.kind == EntryKind::Dir {
        return match existing {
            Some(meta) if !meta.is_dir() => Err(TransferError::Exists {
                path: entry.path.clone(),
            }),
            _ => Ok(Held::Nothing),
        };
    }
    if let Some(meta) = existing {
        if meta.is_dir() {
            return Err(TransferError::Exists {
                path: entry.path.clone(),
            });
        }
        if !overwrite {
            if meta.len() != entry.size {
                return Err(TransferError::Exists {
                    path: entry.path.clone(),
                });
            }
            let hash = hash_file(target, entry.size)?;
            return Ok(Held::Complete { hash });
        }
    }
    let part = part_path(target);
    match std::fs::symlink_metadata(&part) {
        Ok(meta) if meta.is_file() && meta.len() > 0 && meta.len() <= entry.size => {
            let offset = meta.len();
            Ok(Held::Partial {
                offset,
                hash: hash_file(&part, offset)?,
            })
        }
        _ => Ok(Held::Nothing),
    }
}

fn hash_file(path: &Path, len: u64) -> Result<String, TransferError> {
    let read_error = |source| TransferError::Read {
        path: path.display().to_string(),
        source,
    };
    let mut file = File::open(path).map_err(read_error)?;
    let mut hasher = blake3::Hasher::new();
    disk::hash_prefix(&mut file, len, &mut hasher).map_err(read_error)?;
    Ok(hex::encode(hasher.finalize().as_bytes()))
}

async fn expect_end(
    link: &mut Link,
    index: usize,
    idle: Duration,
) -> Result<String, TransferError> {
    match recv_within(link, idle).await? {
        Incoming::Message(Message::FileEnd { index: i, blake3 }) if i == index as u64 => Ok(blake3),
        other => Err(unexpected(&format!("the end of file {index}"), &other)),
    }
}

/// A failed write as the user should see it: a permission problem names
/// what to make writable (the file, or the directory that refused it).
pub(crate) fn write_error(path: &Path, source: std::io::Error) -> TransferError {
    use std::io::ErrorKind::{PermissionDenied, ReadOnlyFilesystem};
    if matches!(source.kind(), PermissionDenied | ReadOnlyFilesystem) {
        let check = path
            .ancestors()
            .find(|p| std::fs::symlink_metadata(p).is_ok())
            .unwrap_or(path);
        return TransferError::NotPermitted {
            path: path.display().to_string(),
            check: check.display().to_string(),
            source,
        };
    }
    TransferError::Write {
        path: path.display().to_string(),
        source,
    }
}
