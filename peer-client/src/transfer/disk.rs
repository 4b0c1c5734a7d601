//! File reads and writes on blocking threads, fed through bounded queues,
//! so a slow disk never stalls the tasks that drive the connection, and
//! hashing overlaps with the network. Each queue holds at most
//! [`QUEUED_CHUNKS`] chunks: memory stays bounded whatever the file size.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Chunks queued between the disk thread and the network side.
pub const QUEUED_CHUNKS: usize = 8;

/// A disk operation that failed, with the path it failed on.
#[derive(Debug)]
pub struct DiskError {
    /// The file or directory.
    pub path: PathBuf,
    /// The cause.
    pub source: std::io::Error,
}

/// Runs blocking file work (opening, hashing, renaming) off the async
/// threads and waits for it.
pub async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    join(tokio::task::spawn_blocking(work)).await
}

/// Waits for a blocking thread. A panic there is a bug and continues here,
/// as if the work had run inline.
pub async fn join<T>(handle: JoinHandle<T>) -> T {
    match handle.await {
        Ok(value) => value,
        Err(err) => match err.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(err) => panic!("a disk thread was cancelled: {err}"),
        },
    }
}

/// Reads `remaining` bytes of `file` (from its current position) in chunks
/// of `chunk` bytes, hashing them, on a blocking thread. Yields the chunks;
/// the handle gives back the hasher once every chunk was read.
pub fn spawn_reader(
    mut file: File,
    mut hasher: blake3::Hasher,
    mut remaining: u64,
    chunk: usize,
) -> (
    mpsc::Receiver<std::io::Result<BytesMut>>,
    JoinHandle<blake3::Hasher>,
) {
    let (tx, rx) = mpsc::channel(QUEUED_CHUNKS);
    let handle = tokio::task::spawn_blocking(move || {
        while remaining > 0 {
            let n = usize::try_from(remaining).unwrap_or(usize::MAX).min(chunk);
            let mut buffer = BytesMut::zeroed(n);
            let read = file.read_exact(&mut buffer).map(|()| {
                hasher.update(&buffer);
                buffer
            });
            let failed = read.is_err();
            if tx.blocking_send(read).is_err() || failed {
                break;
            }
            remaining -= n as u64;
        }
        hasher
    });
    (rx, handle)
}

/// Writes a received file's `part` on a blocking thread: creates its
/// directory, opens it to continue at `offset` (re-hashing the bytes already
/// there) or creates it afresh when `offset` is 0, then writes and hashes
/// the chunks sent to the returned queue until the queue is dropped. The
/// handle gives back the hasher, or the first error (after which the queue
/// is closed).
pub fn spawn_writer(
    part: PathBuf,
    offset: u64,
) -> (
    mpsc::Sender<Bytes>,
    JoinHandle<Result<blake3::Hasher, DiskError>>,
) {
    let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUED_CHUNKS);
    let handle = tokio::task::spawn_blocking(move || {
        if let Some(parent) = part.parent() {
            std::fs::create_dir_all(parent).map_err(|source| DiskError {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let failed = |source| DiskError {
            path: part.clone(),
            source,
        };
        let (mut file, mut hasher) = open_part(&part, offset).map_err(failed)?;
        while let Some(data) = rx.blocking_recv() {
            file.write_all(&data).map_err(failed)?;
            hasher.update(&data);
        }
        file.flush().map_err(failed)?;
        Ok(hasher)
    });
    (tx, handle)
}

/// Opens `part` to continue at `offset` (hashing what is there), or creates
/// it afresh when `offset` is 0.
fn open_part(part: &std::path::Path, offset: u64) -> std::io::Result<(File, blake3::Hasher)> {
    let mut hasher = blake3::Hasher::new();
    if offset == 0 {
        return Ok((File::create(part)?, hasher));
    }
    let mut file = OpenOptions::new().read(true).write(true).open(part)?;
    hash_prefix(&mut file, offset, &mut hasher)?;
    file.set_len(offset)?;
    file.seek(SeekFrom::Start(offset))?;
    Ok((file, hasher))
}

/// Feeds the first `len` bytes of `file` to `hasher` (streaming).
pub fn hash_prefix(file: &mut File, len: u64, hasher: &mut blake3::Hasher) -> std::io::Result<()> {
    let copied = std::io::copy(&mut Read::by_ref(file).take(len), hasher)?;
    if copied != len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the file is shorter than expected",
        ));
    }
    Ok(())
}
