//! How a swarm's files are cut into pieces: each file on its own, in pieces
//! of one size (the last piece of a file shorter), numbered across the
//! manifest in its order. Each piece has a BLAKE3 hash the sender computed,
//! and every piece is checked against it before it is written or passed on.

use crate::transfer::{EntryKind, Manifest, TransferError};

/// Smallest piece: small enough that four receivers of a 256 MiB file find
/// pieces to trade from the first seconds, large enough that a request per
/// piece costs little.
pub const MIN_PIECE_BYTES: u64 = 1 << 20;
/// Largest piece a receiver accepts (it holds a few per peer in memory).
pub const MAX_PIECE_BYTES: u64 = 16 << 20;
/// Most pieces in one swarm: bounds the hash list a receiver holds
/// (32 bytes each: 8 MiB) and the size of the bitfields peers exchange.
pub const MAX_PIECES: usize = 1 << 18;
/// BLAKE3 output bytes.
pub const HASH_BYTES: usize = 32;

/// The piece size a sender picks for `manifest`: the smallest power of two
/// from [`MIN_PIECE_BYTES`] that keeps the pieces within [`MAX_PIECES`].
pub fn piece_bytes_for(manifest: &Manifest) -> Result<u64, TransferError> {
    let mut piece_bytes = MIN_PIECE_BYTES;
    while piece_bytes <= MAX_PIECE_BYTES {
        if count_pieces(manifest, piece_bytes) <= MAX_PIECES as u64 {
            return Ok(piece_bytes);
        }
        piece_bytes *= 2;
    }
    Err(TransferError::Source {
        path: "the files".into(),
        reason: format!(
            "they make more than {MAX_PIECES} pieces of {} MiB; send fewer or smaller files at once",
            MAX_PIECE_BYTES >> 20
        ),
    })
}

fn count_pieces(manifest: &Manifest, piece_bytes: u64) -> u64 {
    manifest
        .entries()
        .iter()
        .filter(|entry| entry.kind == EntryKind::File)
        .map(|entry| entry.size.div_ceil(piece_bytes))
        .sum()
}

/// Where one piece lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// Manifest index of its file.
    pub entry: usize,
    /// First byte in the file.
    pub offset: u64,
    /// Length in bytes (at most the piece size; never 0).
    pub len: u64,
}

/// The pieces of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PieceMap {
    piece_bytes: u64,
    pieces: Vec<Piece>,
    /// For each manifest entry, the number of its first piece (a directory
    /// or an empty file has none: its range is empty).
    first: Vec<u32>,
}

impl PieceMap {
    /// The pieces of `manifest` at `piece_bytes` each; refuses a size that
    /// is not a power of two within [`MIN_PIECE_BYTES`]..=[`MAX_PIECE_BYTES`]
    /// or more than [`MAX_PIECES`] pieces (what a sender may announce).
    pub fn new(manifest: &Manifest, piece_bytes: u64) -> Result<Self, TransferError> {
        if !piece_bytes.is_power_of_two()
            || !(MIN_PIECE_BYTES..=MAX_PIECE_BYTES).contains(&piece_bytes)
        {
            return Err(TransferError::Protocol(format!(
                "a piece size of {piece_bytes} bytes is not a power of two from {MIN_PIECE_BYTES} to {MAX_PIECE_BYTES}"
            )));
        }
        if count_pieces(manifest, piece_bytes) > MAX_PIECES as u64 {
            return Err(TransferError::Protocol(format!(
                "the offer makes more than {MAX_PIECES} pieces"
            )));
        }
        let mut pieces = Vec::new();
        let mut first = Vec::with_capacity(manifest.entries().len());
        for (entry, item) in manifest.entries().iter().enumerate() {
            first.push(pieces.len() as u32);
            if item.kind != EntryKind::File {
                continue;
            }
            let mut offset = 0;
            while offset < item.size {
                let len = piece_bytes.min(item.size - offset);
                pieces.push(Piece { entry, offset, len });
                offset += len;
            }
        }
        Ok(Self {
            piece_bytes,
            pieces,
            first,
        })
    }

    /// Bytes per piece.
    pub fn piece_bytes(&self) -> u64 {
        self.piece_bytes
    }

    /// Number of pieces.
    pub fn len(&self) -> usize {
        self.pieces.len()
    }

    /// Whether there are no pieces (only directories and empty files).
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// Piece `index`, if there is one.
    pub fn piece(&self, index: u32) -> Option<Piece> {
        self.pieces.get(index as usize).copied()
    }

    /// The numbers of the pieces of manifest entry `entry`.
    pub fn of_entry(&self, entry: usize) -> std::ops::Range<u32> {
        let start = self.first.get(entry).copied().unwrap_or(0);
        let end = self
            .first
            .get(entry + 1)
            .copied()
            .unwrap_or(self.pieces.len() as u32);
        start..end
    }
}

/// The BLAKE3 hash of every piece, in piece order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PieceHashes(Vec<[u8; HASH_BYTES]>);

impl PieceHashes {
    /// Hashes as a sender computed them.
    pub fn new(hashes: Vec<[u8; HASH_BYTES]>) -> Self {
        Self(hashes)
    }

    /// Appends hashes received as concatenated raw bytes; refuses a length
    /// that is not a whole number of hashes or goes past `pieces` in all.
    pub fn extend_from(&mut self, raw: &[u8], pieces: usize) -> Result<(), TransferError> {
        if !raw.len().is_multiple_of(HASH_BYTES) || self.0.len() + raw.len() / HASH_BYTES > pieces {
            return Err(TransferError::Protocol(
                "the piece hashes do not match the offer's pieces".into(),
            ));
        }
        self.0.extend(raw.chunks_exact(HASH_BYTES).map(|hash| {
            let mut out = [0; HASH_BYTES];
            out.copy_from_slice(hash);
            out
        }));
        Ok(())
    }

    /// Number of hashes held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The hash of piece `index`.
    pub fn get(&self, index: u32) -> Option<&[u8; HASH_BYTES]> {
        self.0.get(index as usize)
    }

    /// Whether `data` is piece `index`.
    pub fn matches(&self, index: u32, data: &[u8]) -> bool {
        self.get(index)
            .is_some_and(|hash| blake3::hash(data) == blake3::Hash::from_bytes(*hash))
    }

    /// Raw bytes of hashes `range`, for the wire.
    pub fn raw(&self, range: std::ops::Range<usize>) -> Vec<u8> {
        self.0
            .get(range)
            .unwrap_or_default()
            .iter()
            .flatten()
            .copied()
            .collect()
    }
}

/// What every peer of a swarm must agree on, as one BLAKE3 hash: the piece
/// size, each entry, and each piece's hash. Peers compare it, so a peer
/// offered other files under the same code is found at once.
pub fn swarm_digest(manifest: &Manifest, map: &PieceMap, hashes: &PieceHashes) -> [u8; HASH_BYTES] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"peer-client swarm v1 manifest\0");
    hasher.update(&map.piece_bytes().to_le_bytes());
    for entry in manifest.entries() {
        hasher.update(&(entry.path.len() as u64).to_le_bytes());
        hasher.update(entry.path.as_bytes());
        hasher.update(&[u8::from(entry.kind == EntryKind::File)]);
        hasher.update(&entry.size.to_le_bytes());
    }
    for hash in &hashes.0 {
        hasher.update(hash);
    }
    *hasher.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::Entry;

    fn manifest(sizes: &[u64]) -> Manifest {
        let mut entries = vec![Entry {
            path: "d".into(),
            kind: EntryKind::Dir,
            size: 0,
        }];
        entries.extend(sizes.iter().enumerate().map(|(i, &size)| Entry {
            path: format!("d/{i}"),
            kind: EntryKind::File,
            size,
        }));
        Manifest::new(entries).unwrap()
    }

    #[test]
    fn files_are_cut_on_their_own_with_a_short_last_piece() {
        let m = manifest(&[0, MIN_PIECE_BYTES * 2 + 5, 7]);
        let map = PieceMap::new(&m, MIN_PIECE_BYTES).unwrap();
        assert_eq!(map.len(), 4);
        assert_eq!(map.of_entry(0), 0..0);
        assert_eq!(map.of_entry(1), 0..0);
        assert_eq!(map.of_entry(2), 0..3);
        assert_eq!(map.of_entry(3), 3..4);
        assert_eq!(
            map.piece(2),
            Some(Piece {
                entry: 2,
                offset: MIN_PIECE_BYTES * 2,
                len: 5
            })
        );
        assert_eq!(
            map.piece(3),
            Some(Piece {
                entry: 3,
                offset: 0,
                len: 7
            })
        );
        assert_eq!(map.piece(4), None);
    }

    #[test]
    fn the_piece_size_grows_to_keep_the_count_bounded() {
        let small = manifest(&[256 << 20]);
        assert_eq!(piece_bytes_for(&small).unwrap(), MIN_PIECE_BYTES);
        let large = manifest(&[(MAX_PIECES as u64) * MIN_PIECE_BYTES * 3]);
        let size = piece_bytes_for(&large).unwrap();
        assert_eq!(size, MIN_PIECE_BYTES * 4);
        assert!(PieceMap::new(&large, size).unwrap().len() <= MAX_PIECES);
        let too_large = manifest(&[(MAX_PIECES as u64 + 1) * MAX_PIECE_BYTES]);
        assert!(piece_bytes_for(&too_large).is_err());
    }

    #[test]
    fn an_announced_piece_size_out_of_bounds_is_refused() {
        let m = manifest(&[10]);
        for bad in [
            0,
            3,
            MIN_PIECE_BYTES / 2,
            MIN_PIECE_BYTES + 1,
            MAX_PIECE_BYTES * 2,
        ] {
            assert!(PieceMap::new(&m, bad).is_err(), "{bad}");
        }
        let many = manifest(&[(MAX_PIECES as u64 + 1) * MIN_PIECE_BYTES]);
        assert!(PieceMap::new(&many, MIN_PIECE_BYTES).is_err());
    }

    #[test]
    fn hashes_arrive_in_whole_hashes_and_no_more_than_the_pieces() {
        let mut hashes = PieceHashes::default();
        assert!(hashes.extend_from(&[0; 31], 2).is_err());
        hashes.extend_from(&[1; 64], 2).unwrap();
        assert!(hashes.extend_from(&[2; 32], 2).is_err());
        assert_eq!(hashes.len(), 2);
        assert_eq!(hashes.raw(1..2), vec![1; 32]);
    }

    #[test]
    fn a_piece_matches_only_its_own_hash() {
        let hashes = PieceHashes::new(vec![*blake3::hash(b"abc").as_bytes()]);
        assert!(hashes.matches(0, b"abc"));
        assert!(!hashes.matches(0, b"abd"));
        assert!(!hashes.matches(1, b"abc"));
    }

    #[test]
    fn the_digest_changes_with_any_part_of_the_offer() {
        let m = manifest(&[5]);
        let map = PieceMap::new(&m, MIN_PIECE_BYTES).unwrap();
        let hashes = PieceHashes::new(vec![[1; 32]]);
        let base = swarm_digest(&m, &map, &hashes);
        assert_ne!(
            base,
            swarm_digest(&m, &map, &PieceHashes::new(vec![[2; 32]]))
        );
        let other = manifest(&[6]);
        let other_map = PieceMap::new(&other, MIN_PIECE_BYTES).unwrap();
        assert_ne!(base, swarm_digest(&other, &other_map, &hashes));
        let bigger = PieceMap::new(&m, MIN_PIECE_BYTES * 2).unwrap();
        assert_ne!(base, swarm_digest(&m, &bigger, &hashes));
    }
}
