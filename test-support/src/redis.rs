//! A throwaway `redis-server` (Debian's redis-server package, or
//! `$REDIS_SERVER_PATH`) on a free loopback port, or a Redis Cluster of three.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `redis-server` binary to run: `$REDIS_SERVER_PATH` or Debian's.
/// Panics with what to install if it is missing.
pub fn redis_server_program() -> String {
    let program =
        std::env::var("REDIS_SERVER_PATH").unwrap_or_else(|_| "/usr/bin/redis-server".into());
    assert!(
        std::path::Path::new(&program).exists(),
        "{program} not found: install Debian's redis-server package or set REDIS_SERVER_PATH"
    );
    program
}

/// Arguments that keep a test's `redis-server` off the disk.
pub const REDIS_NO_PERSISTENCE: [&str; 4] = ["--save", "", "--appendonly", "no"];

/// A `redis-server` on a free loopback port without persistence; killed and
/// its directory removed when dropped.
pub struct RedisServer {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl RedisServer {
    /// Starts one and waits (at most 10 s) until it accepts connections.
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("test-redis-{}-{port}", std::process::id()));
        let child = spawn(port, &dir);
        Self { child, dir, port }
    }

    /// Starts one in cluster mode, on a port whose cluster bus port (the
    /// port + 10 000) is free too.
    fn start_cluster_node() -> Self {
        let port = loop {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .unwrap()
                .port();
            if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
                break port;
            }
        };
        let dir = std::env::temp_dir().join(format!("test-redis-{}-{port}", std::process::id()));
        let child = spawn_with(
            port,
            &dir,
            &["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"],
        );
        Self { child, dir, port }
    }

    /// Kills it and starts a new, empty one on the same port (as after a
    /// crash without persistence); waits until it accepts connections.
    pub fn restart_empty(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
        self.child = spawn(self.port, &self.dir);
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills it now (it is also killed when dropped).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

/// Starts `redis-server` on `port` with its files in `dir`, and waits (at
/// most 10 s) until it accepts connections.
fn spawn(port: u16, dir: &std::path::Path) -> Child {
    spawn_with(port, dir, &[])
}

/// [`spawn`] with more arguments.
fn spawn_with(port: u16, dir: &std::path::Path, extra: &[&str]) -> Child {
    std::fs::create_dir_all(dir).unwrap();
    let child = Command::new(redis_server_program())
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(REDIS_NO_PERSISTENCE)
        .args(extra)
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of three masters (no replicas) on free loopback ports,
/// without persistence; killed and its directories removed when dropped.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three `redis-server`s in cluster mode, joins them with
    /// `redis-cli --cluster create` (the slots split in three) and waits (at
    /// most 20 s) until every node reports the cluster healthy.
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..3).map(|_| RedisServer::start_cluster_node()).collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        let status = Command::new(redis_cli_program())
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "redis-cli --cluster create failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in &nodes {
            loop {
                let info = Command::new(redis_cli_program())
                    .args(["-p", &node.port.to_string(), "cluster", "info"])
                    .output()
                    .unwrap();
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(Instant::now() < deadline, "the Redis Cluster did not form");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Self { nodes }
    }

    /// The seed addresses, as `--redis` takes them: `redis://…,redis://…`.
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(RedisServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Empties every node (the cluster stays formed).
    pub fn flush_all(&self) {
        for node in &self.nodes {
            let status = Command::new(redis_cli_program())
                .args(["-p", &node.port.to_string(), "FLUSHALL"])
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "FLUSHALL on node {} failed", node.port);
        }
    }

    /// The ports of its nodes.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisServer::port).collect()
    }
}

/// `redis-cli`, beside the `redis-server` that runs.
pub fn redis_cli_program() -> String {
    let server = redis_server_program();
    let cli = std::path::Path::new(&server).with_file_name("redis-cli");
    assert!(
        cli.exists(),
        "{} not found: install Debian's redis-tools package",
        cli.display()
    );
    cli.to_string_lossy().into_owned()
}
