//! The server side of RFC 6455, kept small: the opening handshake's key,
//! frame headers, unmasking and encoding. No I/O here; `connection.rs`
//! reads and writes the socket.
//!
//! The server speaks WebSocket itself rather than through a library so that
//! an idle connection holds no buffers at all: bytes are read into a pooled
//! buffer only while a connection is being served, and a connection keeps
//! its own buffer only for a frame that arrived in pieces. General-purpose
//! libraries keep a read buffer (and a write buffer) per connection for its
//! whole life, which is most of the memory of an idle connection.

use std::cell::RefCell;

use base64::Engine;
use sha1::{Digest, Sha1};

/// The `Sec-WebSocket-Accept` value for a client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &[u8]) -> String {
    const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(sha1.finalize())
}

/// Whether a `Sec-WebSocket-Key` is well-formed: base64 of 16 bytes.
pub fn valid_key(key: &[u8]) -> bool {
    base64::engine::general_purpose::STANDARD
        .decode(key)
        .is_ok_and(|raw| raw.len() == 16)
}

/// Frame opcodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// A further fragment of a text or binary message.
    Continuation,
    /// UTF-8 text.
    Text,
    /// Binary data.
    Binary,
    /// Close handshake.
    Close,
    /// Ping; answered with a pong.
    Ping,
    /// Pong.
    Pong,
}

impl Opcode {
    fn from_bits(bits: u8) -> Option<Self> {
        Some(match bits {
            0 => Self::Continuation,
            1 => Self::Text,
            2 => Self::Binary,
            8 => Self::Close,
            9 => Self::Ping,
            10 => Self::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            Self::Continuation => 0,
            Self::Text => 1,
            Self::Binary => 2,
            Self::Close => 8,
            Self::Ping => 9,
            Self::Pong => 10,
        }
    }

    /// Control frames (close, ping, pong) may not be fragmented or exceed
    /// 125 bytes, and may arrive between the fragments of a message.
    pub fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// A violation of RFC 6455 by the client. The connection is closed with
/// close code 1002 (protocol error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// RSV bits set without a negotiated extension.
    #[error("reserved bits set")]
    ReservedBits,
    /// An opcode RFC 6455 does not define.
    #[error("unknown opcode {0}")]
    UnknownOpcode(u8),
    /// Client frames must be masked.
    #[error("client frame is not masked")]
    Unmasked,
    /// Control frames must be final and at most 125 bytes.
    #[error("fragmented or oversized control frame")]
    BadControlFrame,
    /// A 64-bit length with the top bit set.
    #[error("invalid frame length")]
    BadLength,
    /// A new text or binary frame while a fragmented message is unfinished.
    #[error("new message before the fragmented one was finished")]
    Interleaved,
    /// A continuation frame with no fragmented message to continue.
    #[error("continuation frame without a message to continue")]
    StrayContinuation,
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Last fragment of its message.
    pub fin: bool,
    /// What the frame carries.
    pub opcode: Opcode,
    /// The client's masking key.
    pub mask: [u8; 4],
    /// Payload length in bytes.
    pub len: u64,
    /// Bytes the header itself takes.
    pub header_len: usize,
}

/// Parses a client frame header from the start of `buf`; `Ok(None)` when
/// more bytes are needed.
pub fn parse_header(buf: &[u8]) -> Result<Option<Header>, FrameError> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(FrameError::ReservedBits);
    }
    let fin = b0 & 0x80 != 0;
    let opcode = Opcode::from_bits(b0 & 0x0F).ok_or(FrameError::UnknownOpcode(b0 & 0x0F))?;
    if b1 & 0x80 == 0 {
        return Err(FrameError::Unmasked);
    }
    let (len, at) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(bytes) => (u64::from(u16::from_be_bytes([bytes[0], bytes[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(bytes) => {
                let mut raw = [0u8; 8];
                raw.copy_from_slice(bytes);
                let len = u64::from_be_bytes(raw);
                if len >> 63 != 0 {
                    return Err(FrameError::BadLength);
                }
                (len, 10)
            }
            None => return Ok(None),
        },
        short => (u64::from(short), 2),
    };
    if opcode.is_control() && (!fin || len > 125) {
        return Err(FrameError::BadControlFrame);
    }
    let Some(mask) = buf.get(at..at + 4) else {
        return Ok(None);
    };
    Ok(Some(Header {
        fin,
        opcode,
        mask: [mask[0], mask[1], mask[2], mask[3]],
        len,
        header_len: at + 4,
    }))
}

/// Unmasks (or masks) `payload` in place; `offset` is the position of
/// `payload[0]` within the frame's payload, for frames handled in pieces.
pub fn unmask(payload: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut mask = mask;
    mask.rotate_left(offset % 4);
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_ne_bytes(word) ^ wide;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
}

/// Appends an unmasked, final server frame.
pub fn encode(out: &mut Vec<u8>, opcode: Opcode, payload: &[u8]) {
    out.reserve(payload.len() + 10);
    out.push(0x80 | opcode.bits());
    match payload.len() {
        len @ 0..=125 => out.push(len as u8),
        len @ 126..=0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
}

/// Appends a close frame with `code` and `reason` (at most 123 bytes).
pub fn encode_close(out: &mut Vec<u8>, code: u16, reason: &str) {
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.to_be_bytes());
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    encode(out, Opcode::Close, &payload);
}

/// Size of the pooled I/O buffers: one read takes up to this many bytes.
pub const BUFFER_BYTES: usize = 16 * 1024;

/// Pooled buffers kept per thread at most.
const POOL_SIZE: usize = 32;

thread_local! {
    static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer of at least [`BUFFER_BYTES`] capacity, reused when possible.
pub fn take_buffer() -> Vec<u8> {
    POOL.with(|pool| pool.borrow_mut().pop())
        .unwrap_or_else(|| Vec::with_capacity(BUFFER_BYTES))
}

/// Gives a buffer back for reuse (an oversized one is freed instead, so a
/// single large frame does not pin memory).
pub fn give_buffer(mut buffer: Vec<u8>) {
    if buffer.capacity() != BUFFER_BYTES {
        return;
    }
    buffer.clear();
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < POOL_SIZE {
            pool.push(buffer);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_example() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert!(valid_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!valid_key(b"short"));
        assert!(!valid_key(b"not base64 at all!!!!!!!"));
    }

    #[test]
    fn parses_rfc_masked_hello() {
        let mut frame = vec![
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let header = parse_header(&frame).unwrap().unwrap();
        assert!(header.fin);
        assert_eq!(header.opcode, Opcode::Text);
        assert_eq!(header.len, 5);
        assert_eq!(header.header_len, 6);
        let payload = &mut frame[6..];
        unmask(payload, header.mask, 0);
        assert_eq!(payload, b"Hello");
    }

    #[test]
    fn unmask_in_pieces_equals_whole() {
        let mask = [1, 2, 3, 4];
        let original: Vec<u8> = (0..=255).collect();
        let mut whole = original.clone();
        unmask(&mut whole, mask, 0);
        let mut pieces = original.clone();
        let (a, rest) = pieces.split_at_mut(7);
        let (b, c) = rest.split_at_mut(30);
        unmask(a, mask, 0);
        unmask(b, mask, 7);
        unmask(c, mask, 37);
        assert_eq!(whole, pieces);
        unmask(&mut whole, mask, 0);
        assert_eq!(whole, original);
    }

    #[test]
    fn incomplete_headers_need_more() {
        assert_eq!(parse_header(&[]), Ok(None));
        assert_eq!(parse_header(&[0x81]), Ok(None));
        assert_eq!(parse_header(&[0x81, 0x85, 1, 2]), Ok(None));
        assert_eq!(parse_header(&[0x81, 0xFE, 1]), Ok(None));
        assert_eq!(parse_header(&[0x81, 0xFF, 0, 0, 0]), Ok(None));
    }

    #[test]
    fn extended_lengths() {
        let header = parse_header(&[0x82, 0xFE, 0x01, 0x00, 9, 9, 9, 9])
            .unwrap()
            .unwrap();
        assert_eq!((header.len, header.header_len), (256, 8));
        let header = parse_header(&[0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 9, 9, 9, 9])
            .unwrap()
            .unwrap();
        assert_eq!((header.len, header.header_len), (65536, 14));
        assert_eq!(
            parse_header(&[0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 9, 9, 9, 9]),
            Err(FrameError::BadLength)
        );
    }

    #[test]
    fn protocol_violations() {
        assert_eq!(
            parse_header(&[0xC1, 0x80, 0, 0, 0, 0]),
            Err(FrameError::ReservedBits)
        );
        assert_eq!(
            parse_header(&[0x83, 0x80, 0, 0, 0, 0]),
            Err(FrameError::UnknownOpcode(3))
        );
        assert_eq!(parse_header(&[0x81, 0x05]), Err(FrameError::Unmasked));
        assert_eq!(
            parse_header(&[0x09, 0x80, 0, 0, 0, 0]),
            Err(FrameError::BadControlFrame),
            "fragmented ping"
        );
        assert_eq!(
            parse_header(&[0x89, 0xFE, 0, 126, 0, 0, 0, 0]),
            Err(FrameError::BadControlFrame),
            "ping over 125 bytes"
        );
    }

    #[test]
    fn encodes_each_length_form() {
        for (len, header_len) in [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            let mut out = Vec::new();
            encode(&mut out, Opcode::Text, &vec![b'a'; len]);
            assert_eq!(out.len(), header_len + len, "{len}");
            assert_eq!(out[0], 0x81);
        }
        let mut out = Vec::new();
        encode_close(&mut out, 1001, "bye");
        assert_eq!(out, [0x88, 5, 0x03, 0xE9, b'b', b'y', b'e']);
    }

    #[test]
    fn pool_reuses_standard_buffers_only() {
        let buffer = take_buffer();
        assert!(buffer.capacity() >= BUFFER_BYTES);
        give_buffer(buffer);
        let again = take_buffer();
        assert_eq!(again.capacity(), BUFFER_BYTES);
        give_buffer(Vec::with_capacity(10 * BUFFER_BYTES));
        assert_eq!(take_buffer().capacity(), BUFFER_BYTES);
    }
}
