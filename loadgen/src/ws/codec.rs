//! WebSocket frames (RFC 6455) as the load generator reads and writes
//! them: one read buffer parsed in place, one write buffer that masked
//! frames are appended to. The framing itself is the client side's one
//! codec, in `test-support`.

use anyhow::{Context, Result, bail, ensure};
use test_support::{
    OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, encode_client_frame, parse_server_header,
};
use tokio::io::AsyncReadExt;

use crate::stream::Stream;

/// Largest frame accepted from the server; bounds the read buffer.
pub const MAX_FRAME_BYTES: usize = 1 << 20;
/// Initial read buffer size; grows on demand up to one maximal frame.
const INITIAL_READ_BYTES: usize = 8 * 1024;

/// One frame read from the server, borrowing the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A text frame.
    Text(&'a [u8]),
    /// A binary frame (the protocol never sends one).
    Binary(&'a [u8]),
    /// A ping; the caller answers with [`Writer::pong`].
    Ping(&'a [u8]),
    /// A pong.
    Pong,
    /// A close frame.
    Close,
}

/// Incoming bytes and the frame parser over them.
pub struct Reader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Reader {
    pub(super) fn new() -> Self {
        Self {
            buf: vec![0; INITIAL_READ_BYTES],
            start: 0,
            end: 0,
        }
    }

    /// The bytes read and not parsed yet.
    pub(super) fn unparsed(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Drops the first `n` unparsed bytes (the HTTP response before the frames).
    pub(super) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
    }

    /// The last `len` bytes parsed: the payload [`Self::next_frame`] just
    /// returned, borrowed again.
    pub(super) fn last_parsed(&self, len: usize) -> &[u8] {
        &self.buf[self.start - len..self.start]
    }

    /// Reads what `stream` has into the buffer; 0 means it ended.
    pub(super) async fn fill_from(&mut self, stream: &mut Stream) -> Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            // A frame larger than the buffer: grow, within the frame limit.
            let grown = (self.buf.len() * 2).min(MAX_FRAME_BYTES + 14);
            ensure!(grown > self.buf.len(), "server frame over the size limit");
            self.buf.resize(grown, 0);
        }
        let n = stream
            .read(&mut self.buf[self.end..])
            .await
            .context("reading from the server")?;
        self.end += n;
        Ok(n)
    }

    /// The next complete frame in the buffer, or `None` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>> {
        let avail = &self.buf[self.start..self.end];
        let Some((header, len, opcode)) = parse_header(avail)? else {
            return Ok(None);
        };
        if avail.len() < header + len {
            return Ok(None);
        }
        let from = self.start + header;
        self.start = from + len;
        let payload = &self.buf[from..from + len];
        Ok(Some(match opcode {
            OP_TEXT => Frame::Text(payload),
            OP_BINARY => Frame::Binary(payload),
            OP_CLOSE => Frame::Close,
            OP_PING => Frame::Ping(payload),
            OP_PONG => Frame::Pong,
            other => bail!("server sent a frame with unknown opcode {other:#x}"),
        }))
    }
}

/// Parses a frame header: (header length, payload length, opcode), or `None` if incomplete.
fn parse_header(avail: &[u8]) -> Result<Option<(usize, usize, u8)>> {
    let Some(header) = parse_server_header(avail)? else {
        return Ok(None);
    };
    ensure!(
        header.fin && header.opcode != 0,
        "server sent a fragmented message, which this client does not reassemble"
    );
    let len = usize::try_from(header.payload_len).unwrap_or(usize::MAX);
    ensure!(
        len <= MAX_FRAME_BYTES,
        "server frame of {len} bytes is over {MAX_FRAME_BYTES}"
    );
    Ok(Some((header.header_len, len, header.opcode)))
}

/// Outgoing frames, masked as a client must.
pub struct Writer {
    /// Frames not yet written.
    pub(super) buf: Vec<u8>,
    rng: u64,
}

impl Writer {
    pub(super) fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Self {
            buf: Vec::with_capacity(1024),
            rng: seed | 1,
        }
    }

    /// Queues a text frame.
    pub fn text(&mut self, payload: &[u8]) {
        self.frame(OP_TEXT, payload);
    }

    /// Queues the answer to a ping.
    pub fn pong(&mut self, payload: &[u8]) {
        self.frame(OP_PONG, payload);
    }

    /// Queues a close frame with status 1000 (normal closure).
    pub fn close(&mut self) {
        self.frame(OP_CLOSE, &1000u16.to_be_bytes());
    }

    fn frame(&mut self, opcode: u8, payload: &[u8]) {
        // xorshift64: a fresh masking key per frame, as RFC 6455 asks.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let key = (self.rng as u32).to_ne_bytes();
        encode_client_frame(&mut self.buf, true, opcode, payload, key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_frames_are_masked_and_round_trip() {
        for len in [0usize, 1, 7, 125, 126, 300, 65_535, 65_536] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut w = Writer::new();
            w.text(&payload);
            let (fin, opcode, back) = test_support::decode_client_frame(&w.buf).unwrap();
            assert!(fin);
            assert_eq!(opcode, OP_TEXT);
            assert_eq!(back, payload, "length {len}");
        }
    }

    #[test]
    fn masking_keys_differ_between_frames() {
        let mut w = Writer::new();
        w.text(b"a");
        w.text(b"a");
        assert_ne!(w.buf[2..6], w.buf[9..13]);
    }

    fn reader_with(bytes: &[u8]) -> Reader {
        let mut r = Reader::new();
        r.buf[..bytes.len()].copy_from_slice(bytes);
        r.end = bytes.len();
        r
    }

    #[test]
    fn parses_server_frames_and_waits_for_partial_ones() {
        let mut bytes = vec![0x81, 5];
        bytes.extend_from_slice(b"hello");
        bytes.extend_from_slice(&[0x89, 1, b'p', 0x88, 2, 0x03, 0xe8]);
        let mut long = vec![0x81, 126, 0x01, 0x2c];
        long.extend(std::iter::repeat_n(b'x', 300));
        bytes.extend_from_slice(&long[..100]);
        let mut r = reader_with(&bytes);
        assert_eq!(r.next_frame().unwrap(), Some(Frame::Text(b"hello")));
        assert_eq!(r.next_frame().unwrap(), Some(Frame::Ping(b"p")));
        assert_eq!(r.next_frame().unwrap(), Some(Frame::Close));
        assert_eq!(r.next_frame().unwrap(), None, "partial frame waits");
    }

    #[test]
    fn rejects_masked_fragmented_and_oversized_frames() {
        let masked = [0x81, 0x81, 0, 0, 0, 0, b'a'];
        assert!(reader_with(&masked).next_frame().is_err());
        let fragment = [0x01, 1, b'a'];
        assert!(reader_with(&fragment).next_frame().is_err());
        let mut huge = vec![0x81, 127];
        huge.extend_from_slice(&(MAX_FRAME_BYTES as u64 + 1).to_be_bytes());
        assert!(reader_with(&huge).next_frame().is_err());
    }
}
