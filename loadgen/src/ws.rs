//! A small WebSocket client (RFC 6455) made for load generation.
//!
//! General clients allocate a message per frame and flush per send. This one
//! keeps one read buffer and one write buffer per connection: frames are
//! parsed in place from the read buffer, outgoing frames are masked into the
//! write buffer, and a whole batch of replies goes out with one `write`.
//! That keeps the generator's cost per message low, so it can offer the
//! server more load from one core. It speaks only what the signaling
//! protocol needs: unfragmented text frames, ping/pong and close.

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, Result, bail, ensure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio_util::either::Either;

use crate::integrity::Integrity;
use crate::stream::{Stream, TlsClient};

/// Largest frame accepted from the server; bounds the read buffer.
pub const MAX_FRAME_BYTES: usize = 1 << 20;
/// Initial read buffer size; grows on demand up to one maximal frame.
const INITIAL_READ_BYTES: usize = 8 * 1024;
/// Largest HTTP upgrade response accepted.
const MAX_HANDSHAKE_BYTES: usize = 8 * 1024;
/// The sample key of RFC 6455 section 1.3 and its accept value. The server
/// only has to answer with the matching accept; reusing the sample key lets
/// the client check the answer without hashing.
const HANDSHAKE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const HANDSHAKE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// The server to talk to.
#[derive(Debug, Clone)]
pub struct Target {
    /// TCP address of the server.
    pub addr: SocketAddr,
    /// Path of the WebSocket endpoint, e.g. `/ws`.
    pub path: String,
    /// TLS (`wss://`), when set.
    pub tls: Option<TlsClient>,
}

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

/// An open WebSocket connection.
pub struct Conn {
    stream: Stream,
    /// Incoming bytes not yet parsed.
    pub rd: Reader,
    /// Outgoing frames not yet written.
    pub wr: Writer,
}

impl Conn {
    /// Connects, optionally from a given local address, and upgrades to a WebSocket.
    pub async fn connect(target: &Target, source: Option<IpAddr>) -> Result<Self> {
        let socket = match target.addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .context("creating a socket")?;
        if let Some(ip) = source {
            socket.set_reuseaddr(true).context("setting SO_REUSEADDR")?;
            socket
                .bind(SocketAddr::new(ip, 0))
                .with_context(|| format!("binding the client socket to {ip}"))?;
        }
        let stream = socket
            .connect(target.addr)
            .await
            .with_context(|| format!("connecting to {}", target.addr))?;
        stream.set_nodelay(true).context("setting TCP_NODELAY")?;
        let mut stream = match &target.tls {
            Some(tls) => tls.connect(stream, target.addr.ip()).await?,
            None => Either::Left(stream),
        };
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {HANDSHAKE_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n",
            target.path, target.addr
        );
        stream
            .write_all(request.as_bytes())
            .await
            .context("sending the upgrade request")?;
        // TLS may hold written bytes until flushed.
        stream
            .flush()
            .await
            .context("sending the upgrade request")?;
        let mut rd = Reader::new();
        let head_len = loop {
            if rd.fill_from(&mut stream).await? == 0 {
                bail!("server closed the connection during the WebSocket handshake");
            }
            let got = &rd.buf[..rd.end];
            if let Some(at) = find(got, b"\r\n\r\n") {
                break at + 4;
            }
            ensure!(
                rd.end < MAX_HANDSHAKE_BYTES,
                "upgrade response is over {MAX_HANDSHAKE_BYTES} bytes"
            );
        };
        check_upgrade_response(&rd.buf[..head_len])?;
        rd.start = head_len;
        Ok(Self {
            stream,
            rd,
            wr: Writer::new(),
        })
    }

    /// Reads what the socket has into the read buffer; 0 means the server closed it.
    pub async fn fill(&mut self) -> Result<usize> {
        self.rd.fill_from(&mut self.stream).await
    }

    /// Writes every queued frame.
    pub async fn flush(&mut self) -> Result<()> {
        if !self.wr.buf.is_empty() {
            self.stream
                .write_all(&self.wr.buf)
                .await
                .context("writing to the server")?;
            self.stream.flush().await.context("writing to the server")?;
            self.wr.buf.clear();
        }
        Ok(())
    }

    /// The next text frame already read, or `None` if more bytes are needed.
    ///
    /// Frames before it are handled on the way: a ping is answered (the pong
    /// goes out with the next [`Self::flush`]), a pong is skipped, a binary
    /// frame is counted as a fault in `tally`, and a close frame is an error.
    pub fn next_text(&mut self, tally: &mut Integrity) -> Result<Option<&[u8]>> {
        let len = loop {
            match self.rd.next_frame()? {
                None => return Ok(None),
                Some(Frame::Text(text)) => break text.len(),
                Some(Frame::Ping(payload)) => self.wr.pong(payload),
                Some(Frame::Pong) => {}
                Some(Frame::Binary(_)) => tally.fault("server sent a binary frame"),
                Some(Frame::Close) => bail!("server sent close"),
            }
        };
        // The text is borrowed again here rather than returned from inside
        // the loop, which the borrow checker would refuse; `next_frame`
        // leaves `start` just past the payload it returned.
        let end = self.rd.start;
        Ok(Some(&self.rd.buf[end - len..end]))
    }

    /// Waits for the next text frame and returns what `parse` makes of it.
    ///
    /// Pings on the way are answered; a binary frame, a close frame or the
    /// end of the stream is an error.
    pub async fn receive<T>(&mut self, mut parse: impl FnMut(&[u8]) -> Result<T>) -> Result<T> {
        loop {
            let mut got = None;
            while let Some(frame) = self.rd.next_frame()? {
                match frame {
                    Frame::Text(text) => {
                        got = Some(parse(text)?);
                        break;
                    }
                    Frame::Ping(payload) => self.wr.pong(payload),
                    Frame::Pong => {}
                    Frame::Binary(_) => bail!("server sent a binary frame"),
                    Frame::Close => bail!("server closed the connection"),
                }
            }
            self.flush().await?;
            if let Some(parsed) = got {
                return Ok(parsed);
            }
            if self.fill().await? == 0 {
                bail!("server closed the connection");
            }
        }
    }

    /// Closes politely: sends `leave` (if asked) and a close frame, then
    /// reads until the server closes.
    ///
    /// `leave` first, because a peer that only drops its socket stays in its
    /// room for the resume grace period. Waiting for the server's side
    /// matters: a socket closed with unread input resets the connection, and
    /// a reset may discard frames the server has not read yet.
    pub async fn close(mut self, leave: bool) -> Result<()> {
        if leave {
            self.wr.text(br#"{"type":"leave"}"#);
        }
        self.wr.close();
        self.flush().await?;
        loop {
            while let Some(frame) = self.rd.next_frame()? {
                if frame == Frame::Close {
                    return Ok(());
                }
            }
            if self.fill().await? == 0 {
                return Ok(());
            }
        }
    }
}

/// Checks the status line and the accept header of an upgrade response.
fn check_upgrade_response(head: &[u8]) -> Result<()> {
    let text = String::from_utf8_lossy(head);
    let status = text.lines().next().unwrap_or_default();
    ensure!(
        status.starts_with("HTTP/1.1 101"),
        "server refused the WebSocket upgrade: {status:?}"
    );
    let accepted = text.lines().any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.eq_ignore_ascii_case("sec-websocket-accept") && value.trim() == HANDSHAKE_ACCEPT
        })
    });
    ensure!(
        accepted,
        "upgrade response lacks the expected Sec-WebSocket-Accept"
    );
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Incoming bytes and the frame parser over them.
pub struct Reader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Reader {
    fn new() -> Self {
        Self {
            buf: vec![0; INITIAL_READ_BYTES],
            start: 0,
            end: 0,
        }
    }

    async fn fill_from(&mut self, stream: &mut Stream) -> Result<usize> {
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
    let [b0, b1, rest @ ..] = avail else {
        return Ok(None);
    };
    ensure!(b0 & 0x70 == 0, "server frame has reserved bits set");
    ensure!(
        b0 & 0x80 != 0 && b0 & 0x0f != 0,
        "server sent a fragmented message, which this client does not reassemble"
    );
    ensure!(b1 & 0x80 == 0, "server frame is masked");
    let (header, len) = match b1 & 0x7f {
        126 => {
            let Some(bytes) = rest.get(..2) else {
                return Ok(None);
            };
            (4, usize::from(u16::from_be_bytes([bytes[0], bytes[1]])))
        }
        127 => {
            let Some(bytes) = rest.get(..8) else {
                return Ok(None);
            };
            let mut be = [0u8; 8];
            be.copy_from_slice(bytes);
            (
                10,
                usize::try_from(u64::from_be_bytes(be)).unwrap_or(usize::MAX),
            )
        }
        short => (2, usize::from(short)),
    };
    ensure!(
        len <= MAX_FRAME_BYTES,
        "server frame of {len} bytes is over {MAX_FRAME_BYTES}"
    );
    Ok(Some((header, len, b0 & 0x0f)))
}

/// Outgoing frames, masked as a client must.
pub struct Writer {
    buf: Vec<u8>,
    rng: u64,
}

impl Writer {
    fn new() -> Self {
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
        self.buf.push(0x80 | opcode);
        let len = payload.len();
        if len < 126 {
            self.buf.push(0x80 | len as u8);
        } else if let Ok(short) = u16::try_from(len) {
            self.buf.push(0x80 | 126);
            self.buf.extend_from_slice(&short.to_be_bytes());
        } else {
            self.buf.push(0x80 | 127);
            self.buf.extend_from_slice(&(len as u64).to_be_bytes());
        }
        // xorshift64: a fresh masking key per frame, as RFC 6455 asks.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let key = (self.rng as u32).to_ne_bytes();
        self.buf.extend_from_slice(&key);
        let at = self.buf.len();
        self.buf.extend_from_slice(payload);
        apply_mask(&mut self.buf[at..], key);
    }
}

/// XORs `data` with the repeating 4-byte `key`, eight bytes at a time.
fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= key[i % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unmask(frame: &[u8]) -> (u8, Vec<u8>) {
        let opcode = frame[0] & 0x0f;
        assert_eq!(frame[0] & 0x80, 0x80, "FIN set");
        assert_eq!(frame[1] & 0x80, 0x80, "client frames are masked");
        let (header, len) = match frame[1] & 0x7f {
            126 => (4, u16::from_be_bytes([frame[2], frame[3]]) as usize),
            127 => (
                10,
                u64::from_be_bytes(frame[2..10].try_into().unwrap()) as usize,
            ),
            n => (2, n as usize),
        };
        let key = &frame[header..header + 4];
        let payload = frame[header + 4..header + 4 + len]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect();
        (opcode, payload)
    }

    #[test]
    fn text_frames_are_masked_and_round_trip() {
        for len in [0usize, 1, 7, 125, 126, 300, 65_535, 65_536] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut w = Writer::new();
            w.text(&payload);
            let (opcode, back) = unmask(&w.buf);
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

    /// Unmasked server frames of the given opcodes and payloads.
    fn server_frames(frames: &[(u8, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (opcode, payload) in frames {
            out.push(0x80 | opcode);
            out.push(u8::try_from(payload.len()).unwrap());
            out.extend_from_slice(payload);
        }
        out
    }

    /// A connection to a loopback peer that accepts the upgrade, sends
    /// `frames`, then closes its side once the client has closed its own.
    async fn connection_receiving(frames: Vec<u8>) -> Conn {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            while find(&request, b"\r\n\r\n").is_none() {
                let mut chunk = [0u8; 1024];
                let n = socket.read(&mut chunk).await.unwrap();
                assert!(n > 0, "client closed during the handshake");
                request.extend_from_slice(&chunk[..n]);
            }
            let mut reply = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Accept: {HANDSHAKE_ACCEPT}\r\n\r\n"
            )
            .into_bytes();
            reply.extend_from_slice(&frames);
            socket.write_all(&reply).await.unwrap();
            let mut rest = Vec::new();
            let _ = socket.read_to_end(&mut rest).await;
        });
        let target = Target {
            addr,
            path: "/ws".into(),
            tls: None,
        };
        Conn::connect(&target, None).await.unwrap()
    }

    /// Reads until `next_text` has a text frame, or fails.
    async fn wait_next_text(conn: &mut Conn, tally: &mut Integrity) -> Result<Vec<u8>> {
        loop {
            if let Some(text) = conn.next_text(tally)? {
                return Ok(text.to_vec());
            }
            ensure!(conn.fill().await? > 0, "stream ended");
        }
    }

    const TEST_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

    #[tokio::test]
    async fn next_text_answers_pings_counts_binary_frames_and_stops_at_close() {
        tokio::time::timeout(TEST_LIMIT, async {
            let frames = server_frames(&[
                (OP_PING, b"p"),
                (OP_BINARY, b"b"),
                (OP_PONG, b""),
                (OP_TEXT, b"hello"),
                (OP_TEXT, b"world"),
                (OP_CLOSE, &[0x03, 0xe8]),
            ]);
            let mut conn = connection_receiving(frames).await;
            let mut tally = Integrity::default();
            assert_eq!(
                wait_next_text(&mut conn, &mut tally).await.unwrap(),
                b"hello"
            );
            assert_eq!(tally.faults, 1, "the binary frame is a fault");
            assert_eq!(unmask(&conn.wr.buf), (OP_PONG, b"p".to_vec()));
            assert_eq!(
                wait_next_text(&mut conn, &mut tally).await.unwrap(),
                b"world"
            );
            let closed = wait_next_text(&mut conn, &mut tally).await.unwrap_err();
            assert_eq!(closed.to_string(), "server sent close");
            assert_eq!(tally.faults, 1);
        })
        .await
        .expect("test ran over its time limit");
    }

    #[tokio::test]
    async fn receive_parses_the_next_text_and_refuses_binary_frames() {
        tokio::time::timeout(TEST_LIMIT, async {
            let frames = server_frames(&[
                (OP_PING, b"p"),
                (OP_TEXT, b"42"),
                (OP_TEXT, b"not a number"),
                (OP_BINARY, b"b"),
            ]);
            let mut conn = connection_receiving(frames).await;
            let parse = |text: &[u8]| -> Result<u32> {
                let text = std::str::from_utf8(text)?;
                text.parse()
                    .with_context(|| format!("{text:?} is not a number"))
            };
            assert_eq!(conn.receive(parse).await.unwrap(), 42);
            assert!(conn.wr.buf.is_empty(), "the pong was flushed");
            let unparsed = conn.receive(parse).await.unwrap_err();
            assert_eq!(unparsed.to_string(), r#""not a number" is not a number"#);
            let binary = conn.receive(parse).await.unwrap_err();
            assert_eq!(binary.to_string(), "server sent a binary frame");
        })
        .await
        .expect("test ran over its time limit");
    }

    #[tokio::test]
    async fn receive_fails_when_the_stream_ends() {
        tokio::time::timeout(TEST_LIMIT, async {
            let mut conn = connection_receiving(Vec::new()).await;
            conn.stream.shutdown().await.unwrap();
            let ended = conn.receive(|_| Ok(())).await.unwrap_err();
            assert_eq!(ended.to_string(), "server closed the connection");
        })
        .await
        .expect("test ran over its time limit");
    }

    #[test]
    fn upgrade_response_must_carry_the_accept_value() {
        let ok = format!(
            "HTTP/1.1 101 Switching Protocols\r\nsec-websocket-accept: {HANDSHAKE_ACCEPT}\r\n\r\n"
        );
        assert!(check_upgrade_response(ok.as_bytes()).is_ok());
        let refused = b"HTTP/1.1 404 Not Found\r\n\r\n";
        assert!(check_upgrade_response(refused).is_err());
        let wrong = b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: x\r\n\r\n";
        assert!(check_upgrade_response(wrong).is_err());
    }
}
