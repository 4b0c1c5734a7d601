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
use tokio::io::AsyncWriteExt;
use tokio::net::TcpSocket;
use tokio_util::either::Either;

mod codec;

pub use codec::{Frame, Reader, Writer};

use crate::integrity::Integrity;
use crate::stream::{Stream, TlsClient};

/// Largest HTTP upgrade response accepted.
const MAX_HANDSHAKE_BYTES: usize = 8 * 1024;
/// The sample key of RFC 6455 section 1.3 and its accept value. The server
/// only has to answer with the matching accept; reusing the sample key lets
/// the client check the answer without hashing.
const HANDSHAKE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const HANDSHAKE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

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
            let got = rd.unparsed();
            if let Some(at) = find(got, b"\r\n\r\n") {
                break at + 4;
            }
            ensure!(
                rd.unparsed().len() < MAX_HANDSHAKE_BYTES,
                "upgrade response is over {MAX_HANDSHAKE_BYTES} bytes"
            );
        };
        check_upgrade_response(&rd.unparsed()[..head_len])?;
        rd.consume(head_len);
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
        // the loop, which the borrow checker would refuse.
        Ok(Some(self.rd.last_parsed(len)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use test_support::{OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, decode_client_frame};
    use tokio::io::AsyncReadExt;

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
            assert_eq!(
                decode_client_frame(&conn.wr.buf),
                Some((true, OP_PONG, b"p".to_vec()))
            );
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
