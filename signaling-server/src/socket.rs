//! The byte stream under one WebSocket connection: the accepted TCP socket,
//! or a TLS session over it.
//!
//! The connection code waits for readiness and writes without waiting
//! (`try_write`), so an idle connection holds no buffer of its own. A TLS
//! stream offers neither, so [`TlsSocket`] provides them: readiness is the
//! TCP socket's, or at once while rustls holds decrypted bytes nobody read
//! yet; a write that cannot go out now reports `WouldBlock`, and encrypted
//! bytes rustls still holds count as output pending, which the connection
//! waits to flush as it waits for its own.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// A TCP socket, or a TLS session over one.
#[derive(Debug)]
pub(crate) enum Socket {
    /// The client's TCP connection.
    Tcp(TcpStream),
    /// A TLS session over the client's TCP connection.
    Tls(Box<TlsSocket>),
}

/// A TLS session served on the connection's own task.
#[derive(Debug)]
pub(crate) struct TlsSocket {
    stream: TlsStream<TcpStream>,
    /// Whether the last read filled the buffer it was given, so rustls may
    /// hold decrypted bytes that TCP readiness would not announce.
    more_to_read: bool,
}

impl TlsSocket {
    /// Serves `stream`, whose handshake is done.
    pub(crate) fn new(stream: TlsStream<TcpStream>) -> Self {
        Self {
            stream,
            more_to_read: false,
        }
    }

    /// Polls `op` once without registering for a wake-up: `Pending` becomes
    /// `WouldBlock` (the caller waits for readiness itself).
    fn now<T>(
        &mut self,
        op: impl FnOnce(Pin<&mut TlsStream<TcpStream>>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> io::Result<T> {
        let mut cx = Context::from_waker(Waker::noop());
        match op(Pin::new(&mut self.stream), &mut cx) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Socket {
    /// Waits until the socket may be readable.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        match self {
            Self::Tcp(stream) => stream.readable().await,
            Self::Tls(tls) if tls.more_to_read => Ok(()),
            Self::Tls(tls) => tls.stream.get_ref().0.readable().await,
        }
    }

    /// Waits until the socket may be writable.
    pub(crate) async fn writable(&self) -> io::Result<()> {
        match self {
            Self::Tcp(stream) => stream.writable().await,
            Self::Tls(tls) => tls.stream.get_ref().0.writable().await,
        }
    }

    /// Writes what the socket takes now without waiting. Over TLS, what
    /// rustls still holds goes first; bytes taken may wait in rustls, encrypted
    /// (see [`Socket::has_pending_output`]).
    pub(crate) fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(stream) => stream.try_write(buf),
            Self::Tls(tls) => {
                tls.now(|stream, cx| stream.poll_flush(cx))?;
                tls.now(|stream, cx| stream.poll_write(cx, buf))
            }
        }
    }

    /// Writes out what the socket itself still holds (encrypted bytes over
    /// TLS); `Ok(false)` while some must wait for the socket to be writable.
    pub(crate) fn try_flush(&mut self) -> io::Result<bool> {
        match self {
            Self::Tcp(_) => Ok(true),
            Self::Tls(tls) => match tls.now(|stream, cx| stream.poll_flush(cx)) {
                Ok(()) => Ok(true),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(false),
                Err(err) => Err(err),
            },
        }
    }

    /// Whether the socket holds output not yet written to TCP.
    pub(crate) fn has_pending_output(&self) -> bool {
        match self {
            Self::Tcp(_) => false,
            Self::Tls(tls) => tls.stream.get_ref().1.wants_write(),
        }
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_read(cx, buf),
            // rustls hands out one record's bytes a call: take all it holds,
            // so none waits unannounced by the TCP socket's readiness.
            Self::Tls(tls) => {
                let start = buf.filled().len();
                loop {
                    let before = buf.filled().len();
                    let poll = Pin::new(&mut tls.stream).poll_read(cx, buf);
                    let progress = buf.filled().len() > before;
                    match poll {
                        Poll::Ready(Ok(())) if progress && buf.remaining() > 0 => continue,
                        Poll::Ready(Ok(())) => {
                            tls.more_to_read = buf.remaining() == 0;
                            return Poll::Ready(Ok(()));
                        }
                        Poll::Pending if buf.filled().len() > start => {
                            tls.more_to_read = false;
                            return Poll::Ready(Ok(()));
                        }
                        other => {
                            tls.more_to_read = false;
                            return other;
                        }
                    }
                }
            }
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_write(cx, buf),
            Self::Tls(tls) => Pin::new(&mut tls.stream).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_flush(cx),
            Self::Tls(tls) => Pin::new(&mut tls.stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_shutdown(cx),
            Self::Tls(tls) => Pin::new(&mut tls.stream).poll_shutdown(cx),
        }
    }
}
