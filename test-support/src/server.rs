//! A real signaling server for a test, on a loopback port, running on a
//! thread and runtime of its own: a test's runtime (current-thread or busy)
//! cannot starve it, and a test without a runtime can use it too.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use signaling_server::{Config, Server, ServerError};
use tokio::sync::oneshot;

/// Longest a server may take to bind, or to stop once asked.
const STEP: Duration = Duration::from_secs(10);

/// Settings for a server on a free loopback port, defaults otherwise.
pub fn loopback_config() -> Config {
    Config {
        listen: "127.0.0.1:0".into(),
        ..Config::default()
    }
}

/// A running server; asked to stop when dropped.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    ended: Option<oneshot::Receiver<Result<(), ServerError>>>,
}

impl TestServer {
    /// Starts a server with `config` and waits until it listens.
    pub fn start(config: Config) -> Self {
        Self::try_start(config).unwrap_or_else(|err| panic!("the test server did not start: {err}"))
    }

    /// Starts a server on a free loopback port with the defaults.
    pub fn loopback() -> Self {
        Self::start(loopback_config())
    }

    /// Starts a server with `config`; says why if it cannot bind.
    pub fn try_start(config: Config) -> Result<Self, String> {
        let (bound_tx, bound) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let (ended_tx, ended) = oneshot::channel();
        std::thread::Builder::new()
            .name("test-server".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("a runtime for the test server");
                runtime.block_on(async move {
                    let server = match Server::bind(config).await {
                        Ok(server) => server,
                        Err(err) => {
                            let _ = bound_tx.send(Err(err.to_string()));
                            return;
                        }
                    };
                    let _ = bound_tx.send(Ok(server.local_addr()));
                    let result = server
                        .run(async move {
                            let _ = stopped.await;
                        })
                        .await;
                    let _ = ended_tx.send(result);
                });
            })
            .expect("a thread for the test server");
        let addr = bound
            .recv_timeout(STEP)
            .map_err(|_| "it did not bind in time".to_owned())??;
        Ok(Self {
            addr,
            stop: Some(stop),
            ended: Some(ended),
        })
    }

    /// Starts a server on a free loopback port with defaults changed by `tweak`.
    pub fn loopback_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = loopback_config();
        tweak(&mut config);
        Self::start(config)
    }

    /// The WebSocket URL clients join at.
    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Starts a graceful shutdown without waiting for it.
    pub fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shuts the server down gracefully and waits (bounded) until it has;
    /// returns how long that took. Panics if it failed or took too long.
    pub async fn stop(mut self) -> Duration {
        let started = Instant::now();
        self.begin_stop();
        if let Some(ended) = self.ended.take() {
            tokio::time::timeout(STEP, ended)
                .await
                .expect("the server stops in time")
                .expect("the server's thread did not panic")
                .expect("the server ran without error");
        }
        started.elapsed()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.begin_stop();
    }
}
