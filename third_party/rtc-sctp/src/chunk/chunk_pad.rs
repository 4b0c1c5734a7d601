use super::{chunk_header::*, chunk_type::*, *};

use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;

/// A PAD chunk (RFC 4820): zeros that make a packet as large as a path MTU probe needs,
/// while the HEARTBEAT beside it, and so its answer, stays small. Its type has the two high
/// bits `10`: a receiver that does not know it skips it and reads on (RFC 9260 3.2).
///
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// | Type = 0x84   |   Flags=0     |             Length            |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// \                         Padding Data                          /
/// /                                                               \
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#[derive(Debug, Clone)]
pub(crate) struct ChunkPad {
    /// Bytes of padding data.
    pub(crate) padding: usize,
}

impl fmt::Display for ChunkPad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.header())
    }
}

impl Chunk for ChunkPad {
    fn header(&self) -> ChunkHeader {
        ChunkHeader {
            typ: CT_PAD,
            flags: 0,
            value_length: self.value_length() as u16,
        }
    }

    fn unmarshal(raw: &Bytes) -> Result<Self> {
        let header = ChunkHeader::unmarshal(raw)?;
        if header.typ != CT_PAD {
            return Err(Error::ErrChunkTypeUnhandled);
        }
        Ok(ChunkPad {
            padding: header.value_length(),
        })
    }

    fn marshal_to(&self, buf: &mut BytesMut) -> Result<usize> {
        self.header().marshal_to(buf)?;
        buf.put_bytes(0, self.padding);
        Ok(buf.len())
    }

    fn check(&self) -> Result<()> {
        Ok(())
    }

    fn value_length(&self) -> usize {
        self.padding
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
