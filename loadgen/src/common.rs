//! What every scenario shares: the server to load and how to reach it.

use std::net::SocketAddr;

use crate::client::Sources;
use crate::dialect::Dialect;
use crate::stream::TlsClient;
use crate::ws::Target;

/// Options every scenario shares.
#[derive(clap::Args, Debug, Clone)]
pub struct Common {
    /// Address of the signaling server.
    #[arg(
        long,
        global = true,
        default_value = "127.0.0.1:8080",
        env = "LOADGEN_SERVER"
    )]
    pub server: SocketAddr,
    /// Path of the WebSocket endpoint.
    #[arg(long, global = true, default_value = "/ws")]
    pub path: String,
    /// Process id of the server, to read its CPU time and memory from /proc.
    #[arg(long, global = true)]
    pub server_pid: Option<u32>,
    /// Number of local addresses (127.0.0.2, 127.0.0.3, ...) to spread
    /// connections over when ephemeral ports run short; 1 lets the kernel choose.
    #[arg(long, global = true, default_value_t = 1)]
    pub source_ips: u8,
    /// Protocol of the server under test; `matchbox` measures matchbox_server
    /// (relay and idle only) for comparison.
    #[arg(long, global = true, value_enum, default_value_t = Dialect::Native)]
    pub protocol: Dialect,
    /// Print the figures as one JSON object on stdout (text goes to stderr).
    #[arg(long, global = true)]
    pub json: bool,
    /// Connect with TLS (`wss://`), trusting the PEM certificate in this
    /// file (the server's own, self-signed, will do).
    #[arg(long, global = true, value_name = "PEM", value_parser = TlsClient::from_arg)]
    pub tls_ca: Option<TlsClient>,
}

impl Common {
    /// The WebSocket endpoint.
    pub fn target(&self) -> Target {
        Target {
            addr: self.server,
            path: self.path.clone(),
            tls: self.tls_ca.clone(),
        }
    }

    /// The local addresses to connect from.
    pub fn sources(&self) -> Sources {
        Sources::new(self.source_ips)
    }
}

/// A number that tells runs apart in room names.
pub fn run_id() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64 % 1_000_000_000_000)
        .unwrap_or(0)
}
