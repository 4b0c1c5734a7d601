//! Which pieces a peer has, as sent on the wire: one bit per piece, the
//! first piece in the highest bit of the first byte, as lowercase hex.

use fixedbitset::FixedBitSet;

use crate::auth::hex;
use crate::transfer::TransferError;

/// `have` as hex, for a `bitfield` message.
pub fn encode(have: &FixedBitSet) -> String {
    let mut bytes = vec![0u8; have.len().div_ceil(8)];
    for piece in have.ones() {
        bytes[piece / 8] |= 0x80 >> (piece % 8);
    }
    hex::encode(&bytes)
}

/// Reads a bitfield of exactly `pieces` bits; refuses any other length and
/// bits set past the last piece.
pub fn decode(text: &str, pieces: usize) -> Result<FixedBitSet, TransferError> {
    let bad = || TransferError::Protocol(format!("a bitfield that is not {pieces} pieces long"));
    let bytes = hex::decode(text).ok_or_else(bad)?;
    if bytes.len() != pieces.div_ceil(8) {
        return Err(bad());
    }
    let mut have = FixedBitSet::with_capacity(pieces);
    for (index, byte) in bytes.iter().enumerate() {
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                let piece = index * 8 + bit;
                if piece >= pieces {
                    return Err(bad());
                }
                have.insert(piece);
            }
        }
    }
    Ok(have)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_piece_is_the_highest_bit() {
        let mut have = FixedBitSet::with_capacity(10);
        have.insert(0);
        have.insert(9);
        assert_eq!(encode(&have), "8040");
        assert_eq!(decode("8040", 10).unwrap(), have);
    }

    #[test]
    fn wrong_lengths_and_stray_bits_are_refused() {
        assert!(decode("80", 10).is_err());
        assert!(decode("804000", 10).is_err());
        assert!(decode("8020", 10).is_err());
        assert!(decode("zz00", 10).is_err());
        assert_eq!(decode("", 0).unwrap().len(), 0);
    }
}
