//! The server's configuration: every setting, its default, and the checks
//! between settings. The `signaling-server` binary maps its command line and
//! environment onto it.

use std::path::PathBuf;
use std::time::Duration;

use crate::address_limits::AddressLimitSettings;
use crate::secret::Secret;
use signaling_protocol::{
    DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_PEERS_PER_ROOM, DEFAULT_MAX_QUEUED_FOR_ABSENT,
    DEFAULT_MESSAGE_BURST, DEFAULT_MESSAGES_PER_SECOND, Limits,
};

/// Everything the server can be told at start-up; [`Config::default`] holds the
/// defaults (the `signaling-server` binary's options start from them).
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on, HOST:PORT. Port 0 picks a free port.
    pub listen: String,

    /// Largest text frame a client may send, in bytes. Frames up to twice this size are
    /// refused with `frame_too_large` and the connection stays open; larger ones close it.
    pub max_frame_bytes: usize,

    /// Sustained messages per second one connection may send.
    pub messages_per_second: u32,

    /// Messages a connection may send at once above the sustained rate (token-bucket size).
    pub message_burst: u32,

    /// Most peers in one room (absent peers that may still resume count).
    pub max_peers_per_room: usize,

    /// Most rooms the server holds at once.
    pub max_rooms: usize,

    /// Most WebSocket connections at once; further ones get `server_full` and are closed.
    /// Keep it below the open-file limit (`ulimit -n`).
    pub max_connections: usize,

    /// Most connections at once still in their HTTP phase (TLS handshake, request headers,
    /// plain HTTP requests) before a WebSocket upgrade; further ones are closed as soon as
    /// they are accepted. Upgraded connections count against --max-connections instead.
    pub max_pending_connections: usize,

    /// Most connections one client address may hold in their HTTP phase (see
    /// --max-pending-connections); further ones from it are closed as soon as they are
    /// accepted. An IPv6 client counts by its /64 prefix. 0: no limit.
    pub max_pending_per_address: u32,

    /// Most WebSocket connections one client address may hold open; further ones get
    /// `too_many_connections` and are closed. An IPv6 client counts by its /64 prefix.
    /// 0: no limit.
    pub max_connections_per_address: u32,

    /// New connections per second one client address may open, sustained; faster ones are
    /// closed as soon as they are accepted (behind a trusted proxy: refused with
    /// `too_many_connections` when they ask for a WebSocket). 0: no limit.
    pub connection_rate_per_address: u32,

    /// New connections one client address may open at once above its sustained rate.
    pub connection_burst_per_address: u32,

    /// A reverse proxy or load balancer in front of the server, as an address or a network
    /// (10.0.0.0/8). Connections from it are counted under the client its X-Forwarded-For
    /// header names (the right-most entry that is not itself a trusted proxy);
    /// X-Forwarded-For from anyone else is ignored. Repeat for several (comma-separated in
    /// the variable).
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// How long a new connection may take to finish its TLS handshake and send its request
    /// headers (and an idle keep-alive connection may wait for its next request).
    pub header_timeout: Duration,

    /// A connection that sends nothing (not even a pong to the server's pings) for this long
    /// gets `idle_timeout` and is closed; its peer becomes absent and may resume.
    pub idle_timeout: Duration,

    /// How often the server pings each connection (WebSocket ping frames). Must be
    /// shorter than the idle timeout.
    pub heartbeat_interval: Duration,

    /// How long a dropped peer keeps its id and room and may resume with its token.
    pub resume_grace: Duration,

    /// Most signals held for an absent peer. One more evicts the peer: it leaves its room.
    pub max_queued_signals: usize,

    /// Most bytes of signals held for an absent peer. More evicts the peer: it leaves its room.
    pub max_queued_bytes: usize,

    /// Most bytes of signals held for all absent peers together. A signal that would
    /// exceed it evicts the absent peers with the largest queues until it fits (they
    /// leave their rooms).
    pub max_absent_queue_bytes: usize,

    /// Most frames waiting to be written to one connection. A client that lets more pile up
    /// is disconnected with `slow_consumer`. Must exceed --max-queued-signals, so a resumed
    /// peer's backlog fits.
    pub outbound_queue: usize,

    /// Most bytes waiting to be written to one connection before it is disconnected with
    /// `slow_consumer`. Must be at least --max-queued-bytes plus twice --max-frame-bytes.
    pub outbound_queue_bytes: usize,

    /// Most bytes waiting to be written to all connections together. A frame that would
    /// exceed it disconnects its addressee with `slow_consumer` if frames are already
    /// waiting for it; while more than half is in use, connections whose frames have not
    /// been written for a whole heartbeat interval are disconnected the same way.
    pub outbound_queue_bytes_total: usize,

    /// STUN server URL handed to clients in `welcome.ice_servers`, e.g.
    /// stun:stun.example.org:3478. Repeat for several (comma-separated in the variable).
    pub stun: Vec<String>,

    /// TURN server URL handed to clients with short-lived credentials minted from
    /// --turn-secret, e.g. turn:turn.example.org:3478?transport=udp. Repeat for several
    /// (comma-separated in the variable).
    pub turn: Vec<String>,

    /// Secret shared with the TURN server (coturn's static-auth-secret, use-auth-secret
    /// mode); at least 16 characters. Prefer the environment variable over the flag.
    pub turn_secret: Option<Secret>,

    /// How long the TURN credentials in each welcome stay valid.
    pub turn_ttl: Duration,

    /// Require a room token (`/ws?token=...`, minted by `signaling-server token`) signed
    /// with this secret; at least 16 characters. Prefer the environment variable.
    pub auth_secret: Option<Secret>,

    /// Accept WebSocket upgrades only from pages of this origin, e.g.
    /// https://chat.example.org (exact match). Repeat for several (comma-separated in the
    /// variable). Unset: any origin. Requests without an Origin header (non-browser
    /// clients) are not affected.
    pub allowed_origins: Vec<String>,

    /// Serve https:// and wss:// with this PEM certificate chain (needs --tls-key).
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    pub tls_key: Option<PathBuf>,

    /// Share rooms with other instances through this Redis server, e.g.
    /// redis://127.0.0.1:6379/0. Unset: rooms live in this process only.
    pub redis: Option<String>,

    /// With --redis: an instance that has not refreshed its liveness key for this long is
    /// taken for dead, and its peers leave their rooms.
    pub redis_liveness: Duration,

    /// Serve the web client from this directory instead of the copy built into the binary.
    pub web_dir: Option<PathBuf>,

    /// On SIGTERM/SIGINT, how long to keep accepting connections while /readyz already
    /// answers 503, so a load balancer can take the instance out of rotation first.
    pub drain_delay: Duration,

    /// On SIGTERM/SIGINT, how long to wait for connections to close before exiting.
    pub shutdown_timeout: Duration,

    /// On shutdown clients are told to reconnect after a random delay up to this long,
    /// so they do not all come back at the same instant.
    pub reconnect_spread: Duration,
}

impl Default for Config {
    /// The defaults: what `signaling-server` runs with when given no options.
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            messages_per_second: DEFAULT_MESSAGES_PER_SECOND,
            message_burst: DEFAULT_MESSAGE_BURST,
            max_peers_per_room: DEFAULT_MAX_PEERS_PER_ROOM,
            max_rooms: 20_000,
            max_connections: 20_000,
            max_pending_connections: 1024,
            max_pending_per_address: 64,
            max_connections_per_address: 1000,
            connection_rate_per_address: 20,
            connection_burst_per_address: 100,
            trusted_proxies: Vec::new(),
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(45),
            heartbeat_interval: Duration::from_secs(15),
            resume_grace: Duration::from_secs(signaling_protocol::DEFAULT_RESUME_GRACE_SECS),
            max_queued_signals: DEFAULT_MAX_QUEUED_FOR_ABSENT,
            max_queued_bytes: 512 * 1024,
            max_absent_queue_bytes: 64 * 1024 * 1024,
            outbound_queue: 1024,
            outbound_queue_bytes: 2 * 1024 * 1024,
            outbound_queue_bytes_total: 256 * 1024 * 1024,
            stun: Vec::new(),
            turn: Vec::new(),
            turn_secret: None,
            turn_ttl: Duration::from_secs(3600),
            auth_secret: None,
            allowed_origins: Vec::new(),
            tls_cert: None,
            tls_key: None,
            redis: None,
            redis_liveness: Duration::from_secs(6),
            web_dir: None,
            drain_delay: Duration::ZERO,
            shutdown_timeout: Duration::from_secs(5),
            reconnect_spread: Duration::from_secs(2),
        }
    }
}

impl Config {
    /// The limits as announced to clients in `welcome.limits` (durations rounded up to
    /// whole seconds).
    pub fn limits(&self) -> Limits {
        Limits {
            max_frame_bytes: self.max_frame_bytes,
            max_peers_per_room: self.max_peers_per_room,
            messages_per_second: self.messages_per_second,
            message_burst: self.message_burst,
            resume_grace_secs: ceil_secs(self.resume_grace),
            idle_timeout_secs: ceil_secs(self.idle_timeout),
        }
    }

    /// The per-address limits.
    pub fn address_limits(&self) -> AddressLimitSettings {
        AddressLimitSettings {
            max_pending: self.max_pending_per_address,
            max_open: self.max_connections_per_address,
            per_second: self.connection_rate_per_address,
            burst: self.connection_burst_per_address,
        }
    }

    /// Checks relations between options that clap cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.heartbeat_interval.is_zero() || self.heartbeat_interval >= self.idle_timeout {
            return Err(ConfigError::Heartbeat {
                heartbeat: self.heartbeat_interval,
                idle: self.idle_timeout,
            });
        }
        if self.outbound_queue <= self.max_queued_signals {
            return Err(ConfigError::OutboundFrames {
                queue: self.outbound_queue,
                queued: self.max_queued_signals,
            });
        }
        let needed = self
            .max_queued_bytes
            .saturating_add(self.max_frame_bytes.saturating_mul(2));
        if self.outbound_queue_bytes < needed {
            return Err(ConfigError::OutboundBytes {
                queue: self.outbound_queue_bytes,
                needed,
            });
        }
        if !self.turn.is_empty() && self.turn_secret.is_none() {
            return Err(ConfigError::TurnSecret);
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError::TlsPair);
        }
        if self.header_timeout.is_zero() {
            return Err(ConfigError::HeaderTimeout);
        }
        if self.redis.is_some() && self.redis_liveness < Duration::from_secs(1) {
            return Err(ConfigError::Liveness(self.redis_liveness));
        }
        Ok(())
    }
}

/// A combination of options that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Pings must come more often than the idle timeout, or live clients time out.
    #[error(
        "--heartbeat-interval ({heartbeat:?}) must be non-zero and shorter than --idle-timeout ({idle:?})"
    )]
    Heartbeat {
        /// The configured heartbeat interval.
        heartbeat: Duration,
        /// The configured idle timeout.
        idle: Duration,
    },
    /// A resumed peer's backlog plus its `welcome` must fit in its outbox.
    #[error(
        "--outbound-queue ({queue}) must be larger than --max-queued-signals ({queued}), so a resumed peer's backlog fits"
    )]
    OutboundFrames {
        /// The configured queue length.
        queue: usize,
        /// The configured backlog length.
        queued: usize,
    },
    /// A resumed peer's backlog plus its `welcome` must fit in its outbox.
    #[error(
        "--outbound-queue-bytes ({queue}) must be at least {needed} (--max-queued-bytes plus twice --max-frame-bytes)"
    )]
    OutboundBytes {
        /// The configured queue size in bytes.
        queue: usize,
        /// The least that works with the other options.
        needed: usize,
    },
    /// TURN URLs are useless without credentials.
    #[error("--turn needs --turn-secret (the TURN server's static-auth-secret)")]
    TurnSecret,
    /// A certificate without its key, or the reverse.
    #[error("--tls-cert and --tls-key go together")]
    TlsPair,
    /// No client could send its headers in no time.
    #[error("--header-timeout must be longer than zero")]
    HeaderTimeout,
    /// Liveness is refreshed a few times per period; below a second that is busy work.
    #[error("--redis-liveness ({0:?}) must be at least 1s")]
    Liveness(Duration),
}

fn ceil_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_consistent() {
        assert!(Config::default().validate().is_ok());
    }

    #[test]
    fn turn_needs_a_secret_and_tls_needs_both_files() {
        let turn = Config {
            turn: vec!["turn:127.0.0.1:3478".into()],
            ..Config::default()
        };
        assert!(matches!(turn.validate(), Err(ConfigError::TurnSecret)));
        let tls = Config {
            tls_cert: Some("cert.pem".into()),
            ..Config::default()
        };
        assert!(matches!(tls.validate(), Err(ConfigError::TlsPair)));
    }

    #[test]
    fn rejects_heartbeat_not_below_idle_timeout() {
        let config = Config {
            heartbeat_interval: Duration::from_secs(60),
            ..Config::default()
        };
        assert!(matches!(
            config.validate(),
            Err(ConfigError::Heartbeat { .. })
        ));
    }

    #[test]
    fn limits_round_up_to_seconds() {
        let config = Config {
            idle_timeout: Duration::from_millis(1500),
            ..Config::default()
        };
        assert_eq!(config.limits().idle_timeout_secs, 2);
    }
}
