//! The async runtime handed to the `webrtc` crate: tokio, plus socket buffers
//! sized for data-channel bursts and per-connection datagram counters.
//!
//! The crate binds its UDP sockets itself and offers no buffer option, but it
//! passes every socket through [`Runtime::wrap_udp_socket`]. That is where the
//! receive and send buffers are enlarged: with the kernel default (≈208 KiB) a
//! burst of SCTP packets overflows the receive buffer, the kernel drops
//! datagrams, and SCTP waits for retransmission timeouts.
//!
//! It also keeps the driver awake while the link may run through a TURN relay
//! (see [`RelayFlush`]), and reports when the driver stops (see
//! [`TunedRuntime::new`]).

use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, RecvMeta, Runtime,
    TokioRuntime, Transmit,
};

/// Datagram counters and the socket buffer sizes the kernel granted, shared
/// between the runtime and the connection that reports them.
#[derive(Debug, Default)]
pub(crate) struct SocketStats {
    pub(crate) datagrams_sent: AtomicU64,
    pub(crate) datagrams_received: AtomicU64,
    /// Smallest receive buffer granted to any socket of the connection, in bytes
    /// as the kernel reports it (Linux doubles the request for its bookkeeping).
    pub(crate) receive_buffer: AtomicUsize,
    /// Smallest send buffer granted, in the same unit.
    pub(crate) send_buffer: AtomicUsize,
}

/// Longest the driver sleeps while [`RelayFlush`] is on.
const RELAY_FLUSH_INTERVAL: Duration = Duration::from_millis(2);

/// Whether the connection's driver must wake at least every
/// [`RELAY_FLUSH_INTERVAL`].
///
/// The `webrtc` 0.21.1 driver hands the TURN client its queued datagrams
/// before it drains the connection's own output, so a packet bound for a
/// relay (a DTLS flight, a SACK, a chat line) leaves only at the driver's next
/// wake, which on a quiet link is the next protocol timer, up to 200 ms later.
/// Each DTLS flight of a relayed handshake paid that wait. On while the path is
/// unknown or relayed; off once it is known to be direct and before the
/// connection closes (closing waits on this runtime's sleep for its TURN
/// releases, and must wait the full time).
#[derive(Debug)]
pub(crate) struct RelayFlush(AtomicBool);

impl RelayFlush {
    pub(crate) fn set(&self, on: bool) {
        self.0.store(on, Ordering::Relaxed);
    }
}

/// Called once when the connection's driver task ends.
pub(crate) type DriverExit = Box<dyn FnOnce() + Send>;

/// Tokio with enlarged UDP socket buffers, datagram counters,
/// [`RelayFlush`] and a report of the driver's end.
pub(crate) struct TunedRuntime {
    tokio: TokioRuntime,
    /// Receive and send buffer size asked of the kernel for each socket.
    requested_buffer: usize,
    stats: Arc<SocketStats>,
    relay_flush: Arc<RelayFlush>,
    /// Taken by the first spawned task, which is the driver.
    driver_exit: Mutex<Option<DriverExit>>,
}

impl std::fmt::Debug for TunedRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunedRuntime")
            .field("requested_buffer", &self.requested_buffer)
            .finish_non_exhaustive()
    }
}

impl TunedRuntime {
    /// A runtime whose [`RelayFlush`] starts on.
    ///
    /// `driver_exit` runs when the connection's driver ends. The `webrtc`
    /// 0.21.1 driver ends on `close()` and on any error it meets, among them
    /// a DTLS handshake that ran out of retransmissions; the crate reports no
    /// state change then, so this is the only sign of it. The runtime is made
    /// for one connection, and the first task the crate spawns through it is
    /// that connection's driver (`PeerConnectionBuilder::build` spawns it
    /// before anything else runs); later tasks (TCP connects) are not watched.
    pub(crate) fn new(
        requested_buffer: usize,
        stats: Arc<SocketStats>,
        driver_exit: DriverExit,
    ) -> Self {
        Self {
            tokio: TokioRuntime,
            requested_buffer,
            stats,
            relay_flush: Arc::new(RelayFlush(AtomicBool::new(true))),
            driver_exit: Mutex::new(Some(driver_exit)),
        }
    }

    /// Wraps the first task spawned so that it reports its end.
    fn watch_driver(
        &self,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let exit = self
            .driver_exit
            .lock()
            .ok()
            .and_then(|mut slot| slot.take());
        match exit {
            Some(exit) => Box::pin(async move {
                future.await;
                exit();
            }),
            None => future,
        }
    }

    pub(crate) fn relay_flush(&self) -> Arc<RelayFlush> {
        Arc::clone(&self.relay_flush)
    }
}

/// Asks for `bytes` of receive and send buffer and returns what the kernel granted.
/// Zero leaves the kernel defaults alone.
pub(crate) fn size_buffers(socket: &std::net::UdpSocket, bytes: usize) -> (usize, usize) {
    let sock = socket2::SockRef::from(socket);
    if bytes == 0 {
        let recv = sock.recv_buffer_size().unwrap_or(0);
        return (recv, sock.send_buffer_size().unwrap_or(0));
    }
    if let Err(err) = sock.set_recv_buffer_size(bytes) {
        tracing::debug!(%err, bytes, "could not set the UDP receive buffer size");
    }
    if let Err(err) = sock.set_send_buffer_size(bytes) {
        tracing::debug!(%err, bytes, "could not set the UDP send buffer size");
    }
    let recv = sock.recv_buffer_size().unwrap_or(0);
    let send = sock.send_buffer_size().unwrap_or(0);
    if let Some(granted) = buffer_shortfall(bytes, recv)
        && !SMALL_BUFFER_NOTED.swap(true, Ordering::Relaxed)
    {
        tracing::warn!(
            "the kernel granted a {} KiB UDP receive buffer where {} KiB was asked for: transfers \
             over fast, long paths lose packets whenever this process is busy for a few \
             milliseconds, and slow down; raise the limit with \
             `sysctl -w net.core.rmem_max={bytes} net.core.wmem_max={bytes}` (see the README)",
            granted / 1024,
            bytes / 1024,
        );
    }
    (recv, send)
}

/// Linux reports twice the buffer asked for (half of it is its own bookkeeping).
const REPORTED_PER_BYTE: usize = if cfg!(target_os = "linux") { 2 } else { 1 };

/// Whether this process said that the kernel granted less than asked for.
static SMALL_BUFFER_NOTED: AtomicBool = AtomicBool::new(false);

/// The buffer the kernel granted, in the bytes asked for, when that is less
/// than `asked`; `reported` is what the kernel reports for the socket.
fn buffer_shortfall(asked: usize, reported: usize) -> Option<usize> {
    let granted = reported / REPORTED_PER_BYTE;
    (asked > 0 && reported > 0 && granted < asked).then_some(granted)
}

fn record_min(slot: &AtomicUsize, value: usize) {
    let _ = slot.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
        (old == 0 || value < old).then_some(value)
    });
}

impl Runtime for TunedRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.tokio.spawn(self.watch_driver(future))
    }

    fn spawn_reactor(
        &self,
        reactor_pool_size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        self.tokio
            .spawn_reactor(reactor_pool_size, self.watch_driver(future))
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        let (recv, send) = size_buffers(&socket, self.requested_buffer);
        record_min(&self.stats.receive_buffer, recv);
        record_min(&self.stats.send_buffer, send);
        tracing::debug!(
            requested = self.requested_buffer,
            receive = recv,
            send,
            "UDP socket buffers"
        );
        let inner = self.tokio.wrap_udp_socket(socket)?;
        Ok(Arc::new(CountingSocket {
            inner,
            stats: Arc::clone(&self.stats),
        }))
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        self.tokio.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        self.tokio.connect_tcp(remote_addr)
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        self.tokio.resolve_host(host)
    }

    fn now(&self) -> Instant {
        self.tokio.now()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        if self.relay_flush.0.load(Ordering::Relaxed) {
            // An early wake only makes the driver check its timers once more.
            return self.tokio.sleep(duration.min(RELAY_FLUSH_INTERVAL));
        }
        self.tokio.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.tokio.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.tokio.block_on(future)
    }

    fn yield_now(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.tokio.yield_now()
    }

    fn name(&self) -> &'static str {
        "tokio (tuned sockets)"
    }
}

/// A UDP socket that counts the datagrams passing through it.
#[derive(Debug)]
struct CountingSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    stats: Arc<SocketStats>,
}

impl AsyncUdpSocket for CountingSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn poll_send(&self, cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        let result = self.inner.poll_send(cx, transmit);
        if let Poll::Ready(Ok(_)) = result {
            let segments = match transmit.segment_size {
                Some(size) if size > 0 => transmit.contents.len().div_ceil(size),
                _ => 1,
            };
            self.stats
                .datagrams_sent
                .fetch_add(segments as u64, Ordering::Relaxed);
        }
        result
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let result = self.inner.poll_recv(cx, bufs, meta);
        if let Poll::Ready(Ok(messages)) = result {
            let datagrams: usize = meta
                .iter()
                .take(messages)
                .map(|m| m.len.div_ceil(m.stride.max(1)).max(1))
                .sum();
            self.stats
                .datagrams_received
                .fetch_add(datagrams as u64, Ordering::Relaxed);
        }
        result
    }

    fn max_gso_segments(&self) -> usize {
        self.inner.max_gso_segments()
    }

    fn max_gro_segments(&self) -> usize {
        self.inner.max_gro_segments()
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::buffer_shortfall;

    #[test]
    fn a_buffer_the_kernel_capped_is_a_shortfall_and_one_granted_in_full_is_not() {
        // A desktop kernel (`rmem_max = 212992`) asked for 4 MiB reports 425 984.
        assert_eq!(buffer_shortfall(4 << 20, 425_984), Some(212_992));
        assert_eq!(buffer_shortfall(4 << 20, 8 << 20), None);
        // The bench's desktop setting asks for what such a kernel grants.
        assert_eq!(buffer_shortfall(212_992, 425_984), None);
        // Nothing asked for (kernel defaults), or nothing reported.
        assert_eq!(buffer_shortfall(0, 425_984), None);
        assert_eq!(buffer_shortfall(4 << 20, 0), None);
    }
}
