//! File reads and writes on blocking threads, fed through bounded queues,
//! so a slow disk never stalls the tasks that drive the connection, and
//! hashing overlaps with the network. Each queue holds at most
//! [`QUEUED_CHUNKS`] chunks: memory stays bounded whatever the file size.

use std::fs::File;
use std::io::{Read, Write};

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Chunks queued between the disk thread and the network side.
pub const QUEUED_CHUNKS: usize = 8;

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

/// Writes chunks to `file`, hashing them, on a blocking thread. Send chunks
/// to the returned queue and drop it at the end; the handle gives back the
/// hasher, or the first write error (after which the queue is closed).
pub fn spawn_writer(
    mut file: File,
    mut hasher: blake3::Hasher,
) -> (
    mpsc::Sender<Bytes>,
    JoinHandle<std::io::Result<blake3::Hasher>>,
) {
    let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUED_CHUNKS);
    let handle = tokio::task::spawn_blocking(move || {
        while let Some(data) = rx.blocking_recv() {
            file.write_all(&data)?;
            hasher.update(&data);
        }
        file.flush()?;
        Ok(hasher)
    });
    (tx, handle)
}
