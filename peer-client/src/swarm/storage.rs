//! Where a swarm peer's pieces live on disk, and the blocking work on them:
//! a receiver's look at what it already holds, piece reads and writes at
//! their offsets, and the rename of a file whose every piece is in.
//! Call these from blocking threads.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use fixedbitset::FixedBitSet;

use super::pieces::{PieceHashes, PieceMap};
use crate::transfer::paths::part_path;
use crate::transfer::{EntryKind, Manifest, ReceiveOptions, TransferError, targets, write_error};

/// The file behind each manifest entry.
#[derive(Debug)]
pub struct Storage {
    /// Path of each entry: the sender's own files, or a receiver's targets.
    paths: Vec<PathBuf>,
    /// Whether each entry is complete at its path; a receiver's incomplete
    /// files live at their `.part` names.
    complete: Vec<AtomicBool>,
}

impl Storage {
    /// A sender's files, complete.
    pub fn of_source(local: Vec<PathBuf>) -> Self {
        let complete = local.iter().map(|_| AtomicBool::new(true)).collect();
        Self {
            paths: local,
            complete,
        }
    }

    /// Prepares a receiver's output under `options.out`: refuses unsafe
    /// paths and existing files that differ (unless `overwrite`), creates the
    /// directories, keeps every verified piece of earlier `.part` files and
    /// sizes each `.part`. Returns the storage and the pieces held.
    pub fn prepare(
        manifest: &Manifest,
        map: &PieceMap,
        hashes: &PieceHashes,
        options: &ReceiveOptions,
    ) -> Result<(Self, FixedBitSet), TransferError> {
        let out = &options.out;
        let targets = targets(manifest, out)?;
        std::fs::create_dir_all(out).map_err(|source| write_error(out, source))?;
        let mut have = FixedBitSet::with_capacity(map.len());
        let mut complete = Vec::with_capacity(targets.len());
        for (index, (entry, target)) in manifest.entries().iter().zip(&targets).enumerate() {
            let existing = std::fs::symlink_metadata(target).ok();
            let exists = || TransferError::Exists {
                path: entry.path.clone(),
            };
            if entry.kind == EntryKind::Dir {
                match existing {
                    Some(meta) if !meta.is_dir() => return Err(exists()),
                    Some(_) => {}
                    None => std::fs::create_dir_all(target)
                        .map_err(|source| write_error(target, source))?,
                }
                complete.push(AtomicBool::new(true));
                continue;
            }
            let pieces = map.of_entry(index);
            if let Some(meta) = existing {
                if meta.is_dir() {
                    return Err(exists());
                }
                let held = if meta.len() == entry.size {
                    verified_pieces(target, map, hashes, pieces.clone())?
                } else {
                    Vec::new()
                };
                if held.len() == pieces.len() {
                    have.extend(held.into_iter().map(|piece| piece as usize));
                    complete.push(AtomicBool::new(true));
                    continue;
                }
                if !options.overwrite {
                    return Err(exists());
                }
            }
            let part = part_path(target);
            let mut held = 0;
            let file = if std::fs::symlink_metadata(&part).is_ok_and(|meta| meta.is_file()) {
                let verified = verified_pieces(&part, map, hashes, pieces.clone())?;
                held = verified.len();
                have.extend(verified.into_iter().map(|piece| piece as usize));
                OpenOptions::new().write(true).open(&part)
            } else {
                File::create(&part)
            }
            .map_err(|source| write_error(&part, source))?;
            file.set_len(entry.size)
                .map_err(|source| write_error(&part, source))?;
            // An empty file, or one an earlier run got every piece of.
            let done = held == pieces.len();
            if done {
                std::fs::rename(&part, target).map_err(|source| write_error(target, source))?;
            }
            complete.push(AtomicBool::new(done));
        }
        Ok((
            Self {
                paths: targets,
                complete,
            },
            have,
        ))
    }

    /// Where entry `entry`'s bytes are now.
    fn current_path(&self, entry: usize) -> Option<PathBuf> {
        let path = self.paths.get(entry)?;
        Some(if self.complete[entry].load(Ordering::Acquire) {
            path.clone()
        } else {
            part_path(path)
        })
    }

    /// Reads piece `piece`.
    pub fn read(&self, map: &PieceMap, piece: u32) -> Result<Vec<u8>, TransferError> {
        let place = map
            .piece(piece)
            .ok_or_else(|| TransferError::Protocol(format!("piece {piece} does not exist")))?;
        let read = |path: &PathBuf| -> std::io::Result<Vec<u8>> {
            let mut data = vec![0; place.len as usize];
            File::open(path)?.read_exact_at(&mut data, place.offset)?;
            Ok(data)
        };
        let path = self.current_path(place.entry).unwrap_or_default();
        match read(&path) {
            // Renamed into place meanwhile.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                read(&self.paths[place.entry])
            }
            other => other,
        }
        .map_err(|source| TransferError::Read {
            path: path.display().to_string(),
            source,
        })
    }

    /// Writes piece `piece` (already verified) into its `.part` file.
    pub fn write(&self, map: &PieceMap, piece: u32, data: &[u8]) -> Result<(), TransferError> {
        let place = map
            .piece(piece)
            .ok_or_else(|| TransferError::Protocol(format!("piece {piece} does not exist")))?;
        let part = part_path(&self.paths[place.entry]);
        match OpenOptions::new()
            .write(true)
            .open(&part)
            .and_then(|file| file.write_all_at(data, place.offset))
        {
            // A second copy of a piece (the endgame) after its file was complete.
            Err(err)
                if err.kind() == std::io::ErrorKind::NotFound
                    && self.complete[place.entry].load(Ordering::Acquire) =>
            {
                Ok(())
            }
            other => other.map_err(|source| write_error(&part, source)),
        }
    }

    /// Moves entry `entry`'s `.part` file into place (every piece is in).
    pub fn finish(&self, entry: usize) -> Result<(), TransferError> {
        let target = &self.paths[entry];
        if self.complete[entry].load(Ordering::Acquire) {
            return Ok(());
        }
        std::fs::rename(part_path(target), target).map_err(|source| write_error(target, source))?;
        self.complete[entry].store(true, Ordering::Release);
        Ok(())
    }
}

/// The pieces of `range` that `path` holds intact.
fn verified_pieces(
    path: &std::path::Path,
    map: &PieceMap,
    hashes: &PieceHashes,
    range: std::ops::Range<u32>,
) -> Result<Vec<u32>, TransferError> {
    let file = File::open(path).map_err(|source| TransferError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let len = file.metadata().map(|meta| meta.len()).unwrap_or(0);
    let mut buffer = Vec::new();
    let mut held = Vec::new();
    for piece in range {
        let Some(place) = map.piece(piece) else { break };
        if place.offset + place.len > len {
            break;
        }
        buffer.resize(place.len as usize, 0);
        if file.read_exact_at(&mut buffer, place.offset).is_ok() && hashes.matches(piece, &buffer) {
            held.push(piece);
        }
    }
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::swarm::pieces::MIN_PIECE_BYTES;
    use crate::transfer::Entry;

    fn offer(data: &[u8]) -> (Manifest, PieceMap, PieceHashes) {
        let manifest = Manifest::new(vec![
            Entry {
                path: "d".into(),
                kind: EntryKind::Dir,
                size: 0,
            },
            Entry {
                path: "d/f".into(),
                kind: EntryKind::File,
                size: data.len() as u64,
            },
        ])
        .unwrap();
        let map = PieceMap::new(&manifest, MIN_PIECE_BYTES).unwrap();
        let hashes = PieceHashes::new(
            data.chunks(MIN_PIECE_BYTES as usize)
                .map(|piece| *blake3::hash(piece).as_bytes())
                .collect(),
        );
        (manifest, map, hashes)
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn options(out: &std::path::Path, overwrite: bool) -> ReceiveOptions {
        ReceiveOptions {
            out: out.to_owned(),
            overwrite,
        }
    }

    #[test]
    fn pieces_written_survive_a_restart_and_the_file_lands_when_complete() {
        let dir = temp_dir("swarm-storage");
        let data: Vec<u8> = (0..MIN_PIECE_BYTES * 2 + 3)
            .map(|i| (i % 251) as u8)
            .collect();
        let (manifest, map, hashes) = offer(&data);
        let (storage, have) =
            Storage::prepare(&manifest, &map, &hashes, &options(&dir, false)).unwrap();
        assert_eq!(have.count_ones(..), 0);
        let second = &data[MIN_PIECE_BYTES as usize..2 * MIN_PIECE_BYTES as usize];
        storage.write(&map, 1, second).unwrap();
        assert_eq!(storage.read(&map, 1).unwrap(), second);
        drop(storage);

        let (storage, have) =
            Storage::prepare(&manifest, &map, &hashes, &options(&dir, false)).unwrap();
        assert_eq!(have.ones().collect::<Vec<_>>(), [1]);
        storage
            .write(&map, 0, &data[..MIN_PIECE_BYTES as usize])
            .unwrap();
        storage
            .write(&map, 2, &data[2 * MIN_PIECE_BYTES as usize..])
            .unwrap();
        storage.finish(1).unwrap();
        assert_eq!(std::fs::read(dir.join("d/f")).unwrap(), data);
        assert!(!dir.join("d/f.part").exists());
        assert_eq!(
            storage.read(&map, 2).unwrap(),
            &data[2 * MIN_PIECE_BYTES as usize..]
        );

        let (_, have) = Storage::prepare(&manifest, &map, &hashes, &options(&dir, false)).unwrap();
        assert_eq!(have.count_ones(..), 3);
    }

    #[test]
    fn a_different_existing_file_is_kept_unless_overwrite() {
        let dir = temp_dir("swarm-storage-exists");
        let (manifest, map, hashes) = offer(b"new content");
        std::fs::create_dir_all(dir.join("d")).unwrap();
        std::fs::write(dir.join("d/f"), b"old content").unwrap();
        let err = Storage::prepare(&manifest, &map, &hashes, &options(&dir, false)).unwrap_err();
        assert!(matches!(err, TransferError::Exists { .. }), "{err}");
        assert_eq!(std::fs::read(dir.join("d/f")).unwrap(), b"old content");
        let (_, have) = Storage::prepare(&manifest, &map, &hashes, &options(&dir, true)).unwrap();
        assert_eq!(have.count_ones(..), 0);
    }

    #[test]
    fn an_unsafe_path_is_refused_before_anything_is_created() {
        let dir = temp_dir("swarm-storage-unsafe");
        let manifest = Manifest::new(vec![Entry {
            path: "a".into(),
            kind: EntryKind::File,
            size: 1,
        }])
        .unwrap();
        let map = PieceMap::new(&manifest, MIN_PIECE_BYTES).unwrap();
        let hashes = PieceHashes::new(vec![[0; 32]]);
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink("/tmp", dir.join("a")).unwrap();
        assert!(Storage::prepare(&manifest, &map, &hashes, &options(&dir, true)).is_err());
    }
}
