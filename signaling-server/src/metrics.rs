//! Prometheus metrics: the recorder, and handles for the hot paths.
//!
//! Handles are looked up once, at start-up, so counting a relayed signal is
//! one atomic add rather than a registry lookup per message.

use std::sync::OnceLock;

use metrics::{Counter, Gauge, counter, gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use signaling_protocol::ErrorCode;

/// Installs the process-wide Prometheus recorder on first use and returns
/// its handle, or `None` when the embedding program installed another
/// recorder first (then `/metrics` says so, and counting goes there).
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(handle) => Some(handle),
            Err(err) => {
                tracing::warn!(%err, "metrics recorder not installed; /metrics will be empty");
                None
            }
        })
        .as_ref()
}

/// The server's metric handles.
#[derive(Debug)]
pub struct Metrics {
    /// Open WebSocket connections.
    pub connections: Gauge,
    /// WebSocket connections accepted since start.
    pub connections_total: Counter,
    rejected: Vec<Counter>,
    /// Rooms held.
    pub rooms: Gauge,
    /// Peers held (present and absent).
    pub peers: Gauge,
    /// Signals routed to a peer (delivered or queued for an absent one).
    pub signals_relayed: Counter,
    /// Successful joins, fresh and resumed.
    pub joins: Counter,
    /// Joins that took back an existing peer.
    pub resumes: Counter,
    /// Absent peers whose grace period ran out.
    pub peers_expired: Counter,
    /// Failed requests to Redis (with `--redis`).
    pub redis_errors: Counter,
    errors: Vec<Counter>,
}

impl Metrics {
    /// Registers every metric with the current recorder.
    pub fn new() -> Self {
        describe();
        Self {
            connections: gauge!("signaling_connections"),
            connections_total: counter!("signaling_connections_total"),
            rejected: Refusal::ALL
                .iter()
                .map(|reason| {
                    counter!("signaling_connections_rejected_total", "reason" => reason.as_str())
                })
                .collect(),
            rooms: gauge!("signaling_rooms"),
            peers: gauge!("signaling_peers"),
            signals_relayed: counter!("signaling_signals_relayed_total"),
            joins: counter!("signaling_joins_total"),
            resumes: counter!("signaling_resumes_total"),
            peers_expired: counter!("signaling_peers_expired_total"),
            redis_errors: counter!("signaling_redis_errors_total"),
            errors: ErrorCode::ALL
                .iter()
                .map(|code| counter!("signaling_errors_total", "code" => code.as_str()))
                .collect(),
        }
    }

    /// Counts one `error` sent to a client.
    pub fn error(&self, code: ErrorCode) {
        if let Some(index) = ErrorCode::ALL.iter().position(|&c| c == code) {
            self.errors[index].increment(1);
        }
    }

    /// Counts one connection refused before it could join.
    pub fn refused(&self, reason: Refusal) {
        if let Some(index) = Refusal::ALL.iter().position(|&r| r == reason) {
            self.rejected[index].increment(1);
        }
    }
}

/// Why a connection was refused before it could join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The connection limit was reached.
    ServerFull,
    /// No valid token (with `--auth-secret`).
    Unauthorized,
    /// An `Origin` not in `--allowed-origin`.
    Origin,
    /// The TLS handshake failed or timed out.
    Tls,
    /// Too many connections were still in their HTTP phase
    /// (`--max-pending-connections`).
    PendingFull,
    /// One address held `--max-pending-per-address` connections in their HTTP phase.
    AddressPending,
    /// One address opened connections faster than `--connection-rate-per-address`.
    AddressRate,
    /// One address held `--max-connections-per-address` WebSockets.
    AddressConnections,
}

impl Refusal {
    /// Every reason, in label order.
    pub const ALL: [Self; 8] = [
        Self::ServerFull,
        Self::Unauthorized,
        Self::Origin,
        Self::Tls,
        Self::PendingFull,
        Self::AddressPending,
        Self::AddressRate,
        Self::AddressConnections,
    ];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ServerFull => "server_full",
            Self::Unauthorized => "unauthorized",
            Self::Origin => "origin",
            Self::Tls => "tls",
            Self::PendingFull => "pending_full",
            Self::AddressPending => "address_pending",
            Self::AddressRate => "address_rate",
            Self::AddressConnections => "address_connections",
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge};
    describe_gauge!("signaling_connections", "Open WebSocket connections");
    describe_counter!(
        "signaling_connections_total",
        "WebSocket connections accepted"
    );
    describe_counter!(
        "signaling_connections_rejected_total",
        "Connections refused before joining, by reason (server_full, unauthorized, origin, tls)"
    );
    describe_gauge!(
        "signaling_rooms",
        "Rooms held (with --redis: by all instances together)"
    );
    describe_gauge!(
        "signaling_peers",
        "Peers held, present and absent (with --redis: by all instances together)"
    );
    describe_counter!(
        "signaling_signals_relayed_total",
        "Signals routed to a peer"
    );
    describe_counter!(
        "signaling_joins_total",
        "Successful joins, fresh and resumed"
    );
    describe_counter!(
        "signaling_resumes_total",
        "Joins that resumed an existing peer"
    );
    describe_counter!(
        "signaling_peers_expired_total",
        "Absent peers removed after the resume grace period"
    );
    describe_counter!(
        "signaling_redis_errors_total",
        "Failed requests to Redis (with --redis)"
    );
    describe_counter!(
        "signaling_errors_total",
        "Error messages sent to clients, by code"
    );
}
