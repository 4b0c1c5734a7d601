//! What a swarm moves: the manifest, its pieces and their hashes, and the
//! files behind them. A sender builds it from its files (hashing every
//! piece once); a receiver reads it from the sender's offer.

use std::sync::Arc;

use super::pieces::{HASH_BYTES, PieceHashes, PieceMap, piece_bytes_for, swarm_digest};
use super::storage::Storage;
use crate::auth::hex;
use crate::transfer::{Entry, Manifest, ManifestReader, Message, Source, TransferError};

/// Hashes per `hashes` message: 64 KiB of hex.
pub const HASHES_PER_MESSAGE: usize = 1024;

/// The offer every peer of a swarm agrees on, and where its bytes are here.
#[derive(Debug)]
pub struct Content {
    /// What is offered.
    pub manifest: Manifest,
    /// Its pieces.
    pub map: PieceMap,
    /// Their hashes.
    pub hashes: PieceHashes,
    /// [`swarm_digest`] of all three.
    pub digest: [u8; HASH_BYTES],
    /// The files on this side.
    pub storage: Storage,
}

impl Content {
    /// A sender's content: reads and hashes every piece of `source` (blocking).
    pub fn of_source(source: Source) -> Result<Self, TransferError> {
        let piece_bytes = piece_bytes_for(&source.manifest)?;
        let map = PieceMap::new(&source.manifest, piece_bytes)?;
        let storage = Storage::of_source(source.local);
        let mut hashes = Vec::with_capacity(map.len());
        for piece in 0..map.len() as u32 {
            hashes.push(*blake3::hash(&storage.read(&map, piece)?).as_bytes());
        }
        let hashes = PieceHashes::new(hashes);
        Ok(Self {
            digest: swarm_digest(&source.manifest, &map, &hashes),
            manifest: source.manifest,
            map,
            hashes,
            storage,
        })
    }

    /// The messages of the offer, in order: `swarm_offer`, every `entry`,
    /// then the `hashes`.
    pub fn offer_messages(self: &Arc<Self>) -> impl Iterator<Item = Message> + Send + use<> {
        let content = Arc::clone(self);
        let head = Message::SwarmOffer {
            entries: content.manifest.entries().len() as u64,
            bytes: content.manifest.total_bytes(),
            piece_bytes: content.map.piece_bytes(),
        };
        let entries = (0..content.manifest.entries().len()).map({
            let content = Arc::clone(&content);
            move |index| {
                let entry = &content.manifest.entries()[index];
                Message::Entry {
                    path: entry.path.clone(),
                    kind: entry.kind,
                    size: entry.size,
                }
            }
        });
        let batches = content.map.len().div_ceil(HASHES_PER_MESSAGE);
        let hashes = (0..batches).map(move |batch| {
            let start = batch * HASHES_PER_MESSAGE;
            let end = (start + HASHES_PER_MESSAGE).min(content.map.len());
            Message::Hashes {
                blake3: hex::encode(&content.hashes.raw(start..end)),
            }
        });
        std::iter::once(head).chain(entries).chain(hashes)
    }

    /// This content's digest, hex (as `bitfield` messages carry it).
    pub fn digest_hex(&self) -> String {
        hex::encode(&self.digest)
    }
}

/// An offer as a receiver reads it, message by message.
#[derive(Debug)]
pub enum OfferReader {
    /// Nothing read yet.
    Start,
    /// Entries being read.
    Entries {
        /// The manifest so far.
        reader: ManifestReader,
        /// Announced piece size.
        piece_bytes: u64,
    },
    /// Hashes being read.
    Hashes {
        /// The manifest.
        manifest: Manifest,
        /// Its pieces.
        map: PieceMap,
        /// The hashes so far.
        hashes: PieceHashes,
    },
}

/// A complete offer, waiting for the receiver's decision.
#[derive(Debug)]
pub struct ReadOffer {
    /// What is offered.
    pub manifest: Manifest,
    /// Its pieces.
    pub map: PieceMap,
    /// Their hashes.
    pub hashes: PieceHashes,
}

impl OfferReader {
    /// Takes the next message; returns the offer once it is complete.
    pub fn push(&mut self, message: Message) -> Result<Option<ReadOffer>, TransferError> {
        let state = std::mem::replace(self, Self::Start);
        let next = match (state, message) {
            (
                Self::Start,
                Message::SwarmOffer {
                    entries,
                    bytes,
                    piece_bytes,
                },
            ) => Self::Entries {
                reader: ManifestReader::new(entries, bytes)?,
                piece_bytes,
            },
            (
                Self::Entries {
                    mut reader,
                    piece_bytes,
                },
                Message::Entry { path, kind, size },
            ) => {
                reader.push(Entry { path, kind, size })?;
                Self::Entries {
                    reader,
                    piece_bytes,
                }
            }
            (
                Self::Hashes {
                    manifest,
                    map,
                    mut hashes,
                },
                Message::Hashes { blake3 },
            ) => {
                let raw = hex::decode(&blake3).ok_or_else(|| {
                    TransferError::Protocol("piece hashes that are not hex".into())
                })?;
                hashes.extend_from(&raw, map.len())?;
                Self::Hashes {
                    manifest,
                    map,
                    hashes,
                }
            }
            (_, other) => {
                return Err(TransferError::Protocol(format!(
                    "expected the swarm's offer, got a message of type {:?}",
                    other.kind()
                )));
            }
        };
        *self = match next {
            Self::Entries {
                reader,
                piece_bytes,
            } if reader.is_full() => {
                let manifest = reader.finish()?;
                let map = PieceMap::new(&manifest, piece_bytes)?;
                Self::Hashes {
                    manifest,
                    map,
                    hashes: PieceHashes::default(),
                }
            }
            other => other,
        };
        match std::mem::replace(self, Self::Start) {
            Self::Hashes {
                manifest,
                map,
                hashes,
            } if hashes.len() == map.len() => Ok(Some(ReadOffer {
                manifest,
                map,
                hashes,
            })),
            other => {
                *self = other;
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::EntryKind;

    fn content(sizes: &[usize]) -> (Arc<Content>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "swarm-content-{}-{}",
            std::process::id(),
            sizes.len()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, size) in sizes.iter().enumerate() {
            std::fs::write(dir.join(format!("f{i}")), vec![i as u8; *size]).unwrap();
        }
        let source = Source::collect(std::slice::from_ref(&dir)).unwrap();
        (Arc::new(Content::of_source(source).unwrap()), dir)
    }

    #[test]
    fn an_offer_read_back_is_the_same_offer() {
        let (content, _dir) = content(&[0, 5, (1 << 20) + 1]);
        let mut reader = OfferReader::Start;
        let mut read = None;
        for message in content.offer_messages() {
            assert!(read.is_none(), "the offer ended early");
            read = reader.push(message).unwrap();
        }
        let read = read.expect("the offer is complete");
        assert_eq!(read.manifest, content.manifest);
        assert_eq!(read.map, content.map);
        assert_eq!(read.hashes, content.hashes);
        assert_eq!(read.map.len(), 3);
        assert!(read.hashes.matches(2, &[2]));
        assert_eq!(content.manifest.entries()[0].kind, EntryKind::Dir);
    }

    #[test]
    fn an_offer_out_of_order_or_too_long_is_refused() {
        let mut reader = OfferReader::Start;
        assert!(
            reader
                .push(Message::Hashes {
                    blake3: String::new()
                })
                .is_err()
        );
        let mut reader = OfferReader::Start;
        reader
            .push(Message::SwarmOffer {
                entries: 1,
                bytes: 1,
                piece_bytes: 1 << 20,
            })
            .unwrap();
        reader
            .push(Message::Entry {
                path: "a".into(),
                kind: EntryKind::File,
                size: 1,
            })
            .unwrap();
        assert!(
            reader
                .push(Message::Hashes {
                    blake3: "00".repeat(64)
                })
                .is_err()
        );
        let mut reader = OfferReader::Start;
        assert!(
            reader
                .push(Message::SwarmOffer {
                    entries: 1,
                    bytes: 1,
                    piece_bytes: 3,
                })
                .is_ok()
        );
        assert!(
            reader
                .push(Message::Entry {
                    path: "a".into(),
                    kind: EntryKind::File,
                    size: 1,
                })
                .is_err()
        );
    }
}
