//! The server as a library: bind, run until told to stop, shut down cleanly.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::{debug, info, warn};

use crate::address_table::AddressTable;
use crate::broker::{Broker, BrokerSettings, RedisError};
use crate::client_address::TrustedProxies;
use crate::config::{Config, ConfigError};
use crate::ice::{IceConfig, TurnConfig};
use crate::metrics::{self, Metrics, Refusal};
use crate::outbox::OutboxBudget;
use crate::registry::RegistryLimits;
use crate::state::ServerState;
use crate::tls::TlsError;

/// Why the server could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The options contradict each other.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Redis could not be reached.
    #[error(transparent)]
    Redis(#[from] RedisError),
    /// The TLS certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// What the OS said.
        source: io::Error,
    },
}

/// A bound, not yet running server.
///
/// ```no_run
/// # async fn example() -> Result<(), signaling_server::ServerError> {
/// use signaling_server::{Config, Server};
/// let server = Server::bind(Config { listen: "127.0.0.1:0".into(), ..Config::default() }).await?;
/// println!("listening on {}", server.local_addr());
/// server.run(signaling_server::shutdown_signal()).await
/// # }
/// ```
pub struct Server {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    local_addr: SocketAddr,
    shared: Arc<ServerState>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Checks the configuration and binds the listening socket.
    pub async fn bind(config: Config) -> Result<Self, ServerError> {
        config.validate()?;
        let listener = listen(&config.listen)
            .await
            .map_err(|source| ServerError::Bind {
                addr: config.listen.clone(),
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: config.listen.clone(),
            source,
        })?;
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::acceptor(cert, key)?),
            _ => None,
        };
        metrics::prometheus();
        let metrics = Arc::new(Metrics::new());
        let turn = config
            .turn_secret
            .clone()
            .filter(|_| !config.turn.is_empty())
            .map(|secret| TurnConfig {
                urls: config.turn.clone(),
                secret,
                ttl: config.turn_ttl,
            });
        let settings = BrokerSettings {
            registry: RegistryLimits {
                max_peers_per_room: config.max_peers_per_room,
                max_rooms: config.max_rooms,
                resume_grace: config.resume_grace,
                max_queued_signals: config.max_queued_signals,
                max_queued_bytes: config.max_queued_bytes,
                max_absent_queue_bytes: config.max_absent_queue_bytes,
            },
            limits: config.limits(),
            ice: IceConfig::new(config.stun.clone(), turn),
        };
        let broker = match &config.redis {
            Some(url) => {
                Broker::redis(url, config.redis_liveness, settings, metrics.clone()).await?
            }
            None => Broker::memory(settings, metrics.clone()),
        };
        let shared = Arc::new(ServerState {
            broker,
            metrics: metrics.clone(),
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            connections: Arc::new(Semaphore::new(config.max_connections)),
            pending: Arc::new(Semaphore::new(config.max_pending_connections)),
            addresses: AddressTable::new(
                config.address_limits(),
                TrustedProxies::new(config.trusted_proxies.clone()),
                metrics.clone(),
            ),
            outbox_budget: OutboxBudget::new(config.outbound_queue_bytes_total),
            open: Mutex::new(HashMap::new()),
            draining: AtomicBool::new(false),
            config,
        });
        Ok(Self {
            listener,
            tls,
            local_addr,
            shared,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes, then: reports not ready, keeps
    /// serving for `config.drain_delay`, stops accepting, sends every client `shutdown {reconnect_after_ms}` and a close
    /// frame, and waits for connections to end, at most
    /// `config.shutdown_timeout`.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let shared = self.shared.clone();
        let router = crate::http::router(shared.clone());
        let expiry = {
            let shared = shared.clone();
            tokio::spawn(async move { shared.broker.run_expiry(shared.shutdown.clone()).await })
        };
        let heartbeat = {
            let shared = shared.clone();
            tokio::spawn(async move { shared.run_heartbeat().await })
        };
        info!(addr = %self.local_addr, "listening");

        let mut shutdown = std::pin::pin!(shutdown);
        let mut drain_end = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
        let mut draining = false;
        loop {
            let accepted = tokio::select! {
                () = shutdown.as_mut(), if !draining => {
                    // Report not ready first, and keep serving for the drain
                    // delay so load balancers stop sending new clients here.
                    draining = true;
                    shared.draining.store(true, Ordering::Relaxed);
                    let delay = shared.config.drain_delay;
                    info!(?delay, "shutdown requested; /readyz now answers 503");
                    drain_end.as_mut().reset((Instant::now() + delay).into());
                    continue;
                }
                () = drain_end.as_mut(), if draining => break,
                accepted = self.listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, usually: wait for some to free up.
                    warn!(%err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            self.accept(stream, peer, &router);
        }

        drop(self.listener);
        drain(&shared, expiry, heartbeat).await;
        Ok(())
    }

    /// Takes an accepted connection under the per-address and server-wide
    /// limits for its HTTP phase, and serves it (after the TLS handshake,
    /// with `--tls-cert`) in a task of its own.
    fn accept(&self, stream: TcpStream, peer: SocketAddr, router: &axum::Router) {
        let shared = &self.shared;
        // Linux hands the listener's TCP_NODELAY down to accepted sockets.
        #[cfg(not(target_os = "linux"))]
        if let Err(err) = stream.set_nodelay(true) {
            debug!(%err, "cannot set TCP_NODELAY");
        }
        // Per address first: one address over its limits must not take
        // server-wide slots from anyone else. The slots are held until the
        // connection ends or is upgraded (its HTTP future then completes).
        let Ok(address_slot) = shared.addresses.connect(peer.ip()) else {
            return;
        };
        let Ok(pending) = shared.pending.clone().try_acquire_owned() else {
            shared.metrics.refused(Refusal::PendingFull);
            debug!("connection refused: too many connections before the WebSocket upgrade");
            return;
        };
        let slots = (pending, address_slot);
        let router = router.clone();
        let stop = shared.shutdown.clone();
        let timeout = shared.config.header_timeout;
        match &self.tls {
            None => {
                shared.tracker.spawn(async move {
                    serve_http(stream, peer, router, stop, timeout).await;
                    drop(slots);
                });
            }
            Some(acceptor) => {
                let handshake = acceptor.accept(stream);
                let metrics = shared.metrics.clone();
                shared.tracker.spawn(async move {
                    let _slots = slots;
                    match tokio::time::timeout(timeout, handshake).await {
                        Ok(Ok(stream)) => serve_http(stream, peer, router, stop, timeout).await,
                        Ok(Err(err)) => {
                            metrics.refused(Refusal::Tls);
                            info!(%err, "connection refused: TLS handshake failed");
                        }
                        Err(_) => {
                            metrics.refused(Refusal::Tls);
                            info!("connection refused: TLS handshake timed out");
                        }
                    }
                });
            }
        }
    }
}

/// Shutdown after the listener closed: tells every connection, and waits
/// for them and the background tasks, at most `--shutdown-timeout`.
async fn drain(
    shared: &ServerState,
    expiry: tokio::task::JoinHandle<()>,
    heartbeat: tokio::task::JoinHandle<()>,
) {
    shared.begin_shutdown();
    shared.tracker.close();
    let open = shared.tracker.len();
    info!(
        open,
        "shutting down: no new connections; telling clients to reconnect"
    );
    let drain = async {
        shared.tracker.wait().await;
        let _ = expiry.await;
        let _ = heartbeat.await;
    };
    if tokio::time::timeout(shared.config.shutdown_timeout, drain)
        .await
        .is_err()
    {
        warn!(
            open = shared.tracker.len(),
            timeout = ?shared.config.shutdown_timeout,
            "connections still open after the shutdown timeout; exiting anyway"
        );
    }
    info!("stopped");
}

/// Serves HTTP/1.1 (with WebSocket upgrades) on one accepted connection,
/// plain or TLS, until it ends or shutdown finishes the request in progress.
/// Each request carries the TCP peer's address as `ConnectInfo`.
async fn serve_http<IO>(
    io: IO,
    peer: SocketAddr,
    router: axum::Router,
    stop: CancellationToken,
    header_timeout: Duration,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = router.map_request(move |mut request: axum::extract::Request<_>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
        .with_upgrades();
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stop.cancelled() => {
            // Finish the request in progress, then close.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(err) = result {
        debug!(%err, "HTTP connection ended with an error");
    }
}

/// Pending connections the kernel may queue before they are accepted; a
/// burst of new sessions should not overflow it (the kernel caps it at
/// `net.core.somaxconn`).
const ACCEPT_BACKLOG: u32 = 4096;

/// Binds the first address `addr` resolves to, with `SO_REUSEADDR` (so a
/// restart does not wait for old connections in TIME_WAIT) and
/// `TCP_NODELAY` (frames are small and latency matters; batching is done
/// above TCP), and a deep accept queue.
async fn listen(addr: &str) -> io::Result<TcpListener> {
    let mut last_error = None;
    for addr in tokio::net::lookup_host(addr).await? {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.set_nodelay(true)?;
        match socket.bind(addr) {
            Ok(()) => return socket.listen(ACCEPT_BACKLOG),
            Err(err) => last_error = Some(err),
        }
    }
    Err(last_error
        .unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "address resolves to nothing")))
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            warn!(%err, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(err) => {
                warn!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => info!("SIGINT received"),
        () = terminate => info!("SIGTERM received"),
    }
}

/// The Tokio runtime for `worker_threads`: `Some(0)` or `Some(1)` gives a
/// single-threaded runtime (the fastest when the process is pinned to one
/// core), `None` one worker per available core (single-threaded when only
/// one is available).
pub fn runtime(worker_threads: Option<usize>) -> io::Result<tokio::runtime::Runtime> {
    let threads = worker_threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1)
    });
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}
