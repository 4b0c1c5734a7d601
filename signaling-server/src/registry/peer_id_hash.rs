//! A cheap hash for maps keyed by server-made peer ids.

/// Hashing for maps keyed by [`PeerId`]. Peer ids are random (v4) UUIDs
/// made by the server, so their own bits are already a uniform hash; a
/// client can look ids up but cannot choose the ids stored, so there is no
/// collision flooding to defend against, and SipHash's cost is skipped.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct PeerIdHash;

impl std::hash::BuildHasher for PeerIdHash {
    type Hasher = PeerIdHasher;

    fn build_hasher(&self) -> PeerIdHasher {
        PeerIdHasher(0)
    }
}

/// Folds the id's bytes into 64 bits; see [`PeerIdHash`].
#[derive(Debug)]
pub(super) struct PeerIdHasher(u64);

impl std::hash::Hasher for PeerIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(29) ^ u64::from_le_bytes(word);
        }
    }
}
