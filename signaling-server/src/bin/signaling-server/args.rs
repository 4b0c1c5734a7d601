//! The command line and environment of `signaling-server`, mapped onto the
//! library's [`Config`].

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use clap::{Parser, ValueEnum};
use signaling_server::Config;
use signaling_server::client_address::parse_network;
use signaling_server::secret::Secret;

/// [`Config::default`], where the options' defaults come from.
fn defaults() -> Config {
    Config::default()
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "signaling-server",
    version,
    about = "WebSocket signaling server for WebRTC peers: rooms, resume, limits.",
    long_about = "WebSocket signaling server for WebRTC peers.\n\n\
        Clients connect to ws://HOST:PORT/ws, join a room and relay offers, answers and ICE \
        candidates to each other. The web client is served at /, health at /healthz and \
        /readyz, Prometheus metrics at /metrics. See docs/protocol.md for the wire protocol.\n\n\
        Durations accept a unit: 500ms, 30s, 2m, 1h (a bare number means seconds).",
    args_conflicts_with_subcommands = true
)]
pub struct Args {
    /// Something to do instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address to listen on, HOST:PORT. Port 0 picks a free port.
    #[arg(long, env = "SIGNALING_LISTEN", default_value_t = defaults().listen)]
    pub listen: String,

    /// Largest text frame a client may send, in bytes. Frames up to twice this size are
    /// refused with `frame_too_large` and the connection stays open; larger ones close it.
    #[arg(long, env = "SIGNALING_MAX_FRAME_BYTES", default_value_t = defaults().max_frame_bytes,
          value_parser = RangedU64ValueParser::<usize>::new().range(256..=16 * 1024 * 1024))]
    pub max_frame_bytes: usize,

    /// Sustained messages per second one connection may send.
    #[arg(long, env = "SIGNALING_MESSAGES_PER_SECOND", default_value_t = defaults().messages_per_second,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub messages_per_second: u32,

    /// Messages a connection may send at once above the sustained rate (token-bucket size).
    #[arg(long, env = "SIGNALING_MESSAGE_BURST", default_value_t = defaults().message_burst,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub message_burst: u32,

    /// Most peers in one room (absent peers that may still resume count).
    #[arg(long, env = "SIGNALING_MAX_PEERS_PER_ROOM", default_value_t = defaults().max_peers_per_room,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_peers_per_room: usize,

    /// Most rooms the server holds at once.
    #[arg(long, env = "SIGNALING_MAX_ROOMS", default_value_t = defaults().max_rooms,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_rooms: usize,

    /// Most WebSocket connections at once; further ones get `server_full` and are closed.
    /// Keep it below the open-file limit (`ulimit -n`).
    #[arg(long, env = "SIGNALING_MAX_CONNECTIONS", default_value_t = defaults().max_connections,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_connections: usize,

    /// Most connections at once still in their HTTP phase (TLS handshake, request headers,
    /// plain HTTP requests) before a WebSocket upgrade; further ones are closed as soon as
    /// they are accepted. Upgraded connections count against --max-connections instead.
    #[arg(long, env = "SIGNALING_MAX_PENDING_CONNECTIONS", default_value_t = defaults().max_pending_connections,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_pending_connections: usize,

    /// Most connections one client address may hold in their HTTP phase (see
    /// --max-pending-connections); further ones from it are closed as soon as they are
    /// accepted. An IPv6 client counts by its /64 prefix. 0: no limit.
    #[arg(long, env = "SIGNALING_MAX_PENDING_PER_ADDRESS", default_value_t = defaults().max_pending_per_address)]
    pub max_pending_per_address: u32,

    /// Most WebSocket connections one client address may hold open; further ones get
    /// `too_many_connections` and are closed. An IPv6 client counts by its /64 prefix.
    /// 0: no limit.
    #[arg(
        long,
        env = "SIGNALING_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = defaults().max_connections_per_address
    )]
    pub max_connections_per_address: u32,

    /// New connections per second one client address may open, sustained; faster ones are
    /// closed as soon as they are accepted (behind a trusted proxy: refused with
    /// `too_many_connections` when they ask for a WebSocket). 0: no limit.
    #[arg(
        long,
        env = "SIGNALING_CONNECTION_RATE_PER_ADDRESS",
        default_value_t = defaults().connection_rate_per_address
    )]
    pub connection_rate_per_address: u32,

    /// New connections one client address may open at once above its sustained rate.
    #[arg(long, env = "SIGNALING_CONNECTION_BURST_PER_ADDRESS", default_value_t = defaults().connection_burst_per_address,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub connection_burst_per_address: u32,

    /// A reverse proxy or load balancer in front of the server, as an address or a network
    /// (10.0.0.0/8). Connections from it are counted under the client its X-Forwarded-For
    /// header names (the right-most entry that is not itself a trusted proxy);
    /// X-Forwarded-For from anyone else is ignored. Repeat for several (comma-separated in
    /// the variable).
    #[arg(
        long = "trusted-proxy",
        env = "SIGNALING_TRUSTED_PROXY",
        value_name = "CIDR",
        value_delimiter = ',',
        value_parser = parse_network
    )]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// How long a new connection may take to finish its TLS handshake and send its request
    /// headers (and an idle keep-alive connection may wait for its next request).
    #[arg(long, env = "SIGNALING_HEADER_TIMEOUT", default_value_t = HumanDuration(defaults().header_timeout))]
    pub header_timeout: HumanDuration,

    /// A connection that sends nothing (not even a pong to the server's pings) for this long
    /// gets `idle_timeout` and is closed; its peer becomes absent and may resume.
    #[arg(long, env = "SIGNALING_IDLE_TIMEOUT", default_value_t = HumanDuration(defaults().idle_timeout))]
    pub idle_timeout: HumanDuration,

    /// How often the server pings each connection (WebSocket ping frames). Must be
    /// shorter than the idle timeout.
    #[arg(long, env = "SIGNALING_HEARTBEAT_INTERVAL", default_value_t = HumanDuration(defaults().heartbeat_interval))]
    pub heartbeat_interval: HumanDuration,

    /// How long a dropped peer keeps its id and room and may resume with its token.
    #[arg(long, env = "SIGNALING_RESUME_GRACE", default_value_t = HumanDuration(defaults().resume_grace))]
    pub resume_grace: HumanDuration,

    /// Most signals held for an absent peer. One more evicts the peer: it leaves its room.
    #[arg(long, env = "SIGNALING_MAX_QUEUED_SIGNALS", default_value_t = defaults().max_queued_signals,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_queued_signals: usize,

    /// Most bytes of signals held for an absent peer. More evicts the peer: it leaves its room.
    #[arg(long, env = "SIGNALING_MAX_QUEUED_BYTES", default_value_t = defaults().max_queued_bytes,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_queued_bytes: usize,

    /// Most bytes of signals held for all absent peers together. A signal that would
    /// exceed it evicts the absent peers with the largest queues until it fits (they
    /// leave their rooms).
    #[arg(long, env = "SIGNALING_MAX_ABSENT_QUEUE_BYTES", default_value_t = defaults().max_absent_queue_bytes,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_absent_queue_bytes: usize,

    /// Most frames waiting to be written to one connection. A client that lets more pile up
    /// is disconnected with `slow_consumer`. Must exceed --max-queued-signals, so a resumed
    /// peer's backlog fits.
    #[arg(long, env = "SIGNALING_OUTBOUND_QUEUE", default_value_t = defaults().outbound_queue,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub outbound_queue: usize,

    /// Most bytes waiting to be written to one connection before it is disconnected with
    /// `slow_consumer`. Must be at least --max-queued-bytes plus twice --max-frame-bytes.
    #[arg(long, env = "SIGNALING_OUTBOUND_QUEUE_BYTES", default_value_t = defaults().outbound_queue_bytes,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub outbound_queue_bytes: usize,

    /// Most bytes waiting to be written to all connections together. A frame that would
    /// exceed it disconnects its addressee with `slow_consumer` if frames are already
    /// waiting for it; while more than half is in use, connections whose frames have not
    /// been written for a whole heartbeat interval are disconnected the same way.
    #[arg(long, env = "SIGNALING_OUTBOUND_QUEUE_BYTES_TOTAL", default_value_t = defaults().outbound_queue_bytes_total,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub outbound_queue_bytes_total: usize,

    /// STUN server URL handed to clients in `welcome.ice_servers`, e.g.
    /// stun:stun.example.org:3478. Repeat for several (comma-separated in the variable).
    #[arg(
        long = "stun",
        env = "SIGNALING_STUN",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub stun: Vec<String>,

    /// TURN server URL handed to clients with short-lived credentials minted from
    /// --turn-secret, e.g. turn:turn.example.org:3478?transport=udp. Repeat for several
    /// (comma-separated in the variable).
    #[arg(
        long = "turn",
        env = "SIGNALING_TURN",
        value_name = "URL",
        value_delimiter = ',',
        requires = "turn_secret"
    )]
    pub turn: Vec<String>,

    /// Secret shared with the TURN server (coturn's static-auth-secret, use-auth-secret
    /// mode); at least 16 characters. Prefer the environment variable over the flag.
    #[arg(
        long,
        env = "SIGNALING_TURN_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub turn_secret: Option<Secret>,

    /// How long the TURN credentials in each welcome stay valid.
    #[arg(long, env = "SIGNALING_TURN_TTL", default_value_t = HumanDuration(defaults().turn_ttl))]
    pub turn_ttl: HumanDuration,

    /// Require a room token (`/ws?token=...`, minted by `signaling-server token`) signed
    /// with this secret; at least 16 characters. Prefer the environment variable.
    #[arg(
        long,
        env = "SIGNALING_AUTH_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub auth_secret: Option<Secret>,

    /// Accept WebSocket upgrades only from pages of this origin, e.g.
    /// https://chat.example.org (exact match). Repeat for several (comma-separated in the
    /// variable). Unset: any origin. Requests without an Origin header (non-browser
    /// clients) are not affected.
    #[arg(
        long = "allowed-origin",
        env = "SIGNALING_ALLOWED_ORIGIN",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,

    /// Serve https:// and wss:// with this PEM certificate chain (needs --tls-key).
    #[arg(
        long,
        env = "SIGNALING_TLS_CERT",
        value_name = "PEM",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(
        long,
        env = "SIGNALING_TLS_KEY",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// Share rooms with other instances through this Redis server, e.g.
    /// redis://127.0.0.1:6379/0, or through a Redis Cluster (Redis 7 or later):
    /// its seed addresses separated by commas, or one node's address. Unset:
    /// rooms live in this process only.
    #[arg(long, env = "SIGNALING_REDIS", value_name = "URL[,URL...]")]
    pub redis: Option<String>,

    /// With --redis: an instance that has not refreshed its liveness key for this long is
    /// taken for dead, and its peers leave their rooms.
    #[arg(long, env = "SIGNALING_REDIS_LIVENESS", default_value_t = HumanDuration(defaults().redis_liveness))]
    pub redis_liveness: HumanDuration,

    /// Serve the web client from this directory instead of the copy built into the binary.
    #[arg(long, env = "SIGNALING_WEB_DIR", value_name = "PATH")]
    pub web_dir: Option<PathBuf>,

    /// Log line format.
    #[arg(long, env = "SIGNALING_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Runtime worker threads. 0 or 1 runs everything on one thread (fastest when the
    /// server is pinned to one core); unset uses one per available core.
    #[arg(long, env = "SIGNALING_WORKER_THREADS")]
    pub worker_threads: Option<usize>,

    /// On SIGTERM/SIGINT, how long to keep accepting connections while /readyz already
    /// answers 503, so a load balancer can take the instance out of rotation first.
    #[arg(long, env = "SIGNALING_DRAIN_DELAY", default_value_t = HumanDuration(defaults().drain_delay))]
    pub drain_delay: HumanDuration,

    /// On SIGTERM/SIGINT, how long to wait for connections to close before exiting.
    #[arg(long, env = "SIGNALING_SHUTDOWN_TIMEOUT", default_value_t = HumanDuration(defaults().shutdown_timeout))]
    pub shutdown_timeout: HumanDuration,

    /// On shutdown clients are told to reconnect after a random delay up to this long,
    /// so they do not all come back at the same instant.
    #[arg(long, env = "SIGNALING_RECONNECT_SPREAD", default_value_t = HumanDuration(defaults().reconnect_spread))]
    pub reconnect_spread: HumanDuration,
}

impl Args {
    /// The server's configuration.
    pub fn config(self) -> Config {
        Config {
            listen: self.listen,
            max_frame_bytes: self.max_frame_bytes,
            messages_per_second: self.messages_per_second,
            message_burst: self.message_burst,
            max_peers_per_room: self.max_peers_per_room,
            max_rooms: self.max_rooms,
            max_connections: self.max_connections,
            max_pending_connections: self.max_pending_connections,
            max_pending_per_address: self.max_pending_per_address,
            max_connections_per_address: self.max_connections_per_address,
            connection_rate_per_address: self.connection_rate_per_address,
            connection_burst_per_address: self.connection_burst_per_address,
            trusted_proxies: self.trusted_proxies,
            header_timeout: self.header_timeout.0,
            idle_timeout: self.idle_timeout.0,
            heartbeat_interval: self.heartbeat_interval.0,
            resume_grace: self.resume_grace.0,
            max_queued_signals: self.max_queued_signals,
            max_queued_bytes: self.max_queued_bytes,
            max_absent_queue_bytes: self.max_absent_queue_bytes,
            outbound_queue: self.outbound_queue,
            outbound_queue_bytes: self.outbound_queue_bytes,
            outbound_queue_bytes_total: self.outbound_queue_bytes_total,
            stun: self.stun,
            turn: self.turn,
            turn_secret: self.turn_secret,
            turn_ttl: self.turn_ttl.0,
            auth_secret: self.auth_secret,
            allowed_origins: self.allowed_origins,
            tls_cert: self.tls_cert,
            tls_key: self.tls_key,
            redis: self.redis,
            redis_liveness: self.redis_liveness.0,
            web_dir: self.web_dir,
            drain_delay: self.drain_delay.0,
            shutdown_timeout: self.shutdown_timeout.0,
            reconnect_spread: self.reconnect_spread.0,
        }
    }
}

/// Subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Print a room token for clients of a server started with --auth-secret
    /// (they connect to /ws?token=TOKEN).
    Token(TokenArgs),
    /// Exit 0 if the server started with the same environment answers `GET /healthz` on
    /// loopback, 1 if not: the container image's HEALTHCHECK.
    Healthcheck(HealthcheckArgs),
}

/// Options of `signaling-server healthcheck`.
#[derive(Debug, Clone, clap::Args)]
pub struct HealthcheckArgs {
    /// The server's --listen; its port is asked on loopback.
    #[arg(long, env = "SIGNALING_LISTEN", default_value_t = defaults().listen)]
    pub listen: String,

    /// The server's --tls-cert. When set, the check only opens a TCP connection (it does
    /// not speak TLS).
    #[arg(long, env = "SIGNALING_TLS_CERT", value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,

    /// Longest wait for the answer.
    #[arg(long, default_value_t = HumanDuration(Duration::from_secs(3)))]
    pub timeout: HumanDuration,
}

/// Options of `signaling-server token`.
#[derive(Debug, Clone, clap::Args)]
pub struct TokenArgs {
    /// The room the token allows joining.
    #[arg(long)]
    pub room: String,

    /// How long the token stays valid.
    #[arg(long, default_value_t = HumanDuration(Duration::from_secs(3600)))]
    pub ttl: HumanDuration,

    /// The server's --auth-secret. Prefer the environment variable over the flag.
    #[arg(
        long,
        env = "SIGNALING_AUTH_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub auth_secret: Secret,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// A duration on the command line: `500ms`, `30s`, `2m`, `1h`, or a bare
/// number of seconds; shown in `--help` the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.as_millis();
        match millis {
            0 => f.write_str("0s"),
            _ if millis.is_multiple_of(3_600_000) => write!(f, "{}h", millis / 3_600_000),
            _ if millis.is_multiple_of(60_000) => write!(f, "{}m", millis / 60_000),
            _ if millis.is_multiple_of(1_000) => write!(f, "{}s", millis / 1_000),
            _ => write!(f, "{millis}ms"),
        }
    }
}

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_duration(text).map(Self)
    }
}

/// Parses `500ms`, `30s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration; write e.g. 500ms, 30s, 2m or 1h"))?;
    let millis = match unit.trim() {
        "ms" => Some(value),
        "" | "s" => value.checked_mul(1_000),
        "m" => value.checked_mul(60_000),
        "h" => value.checked_mul(3_600_000),
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}; use ms, s, m or h"
            ));
        }
    };
    millis
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{text:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn durations_show_as_they_are_written() {
        for text in ["0s", "500ms", "1500ms", "30s", "2m", "1h", "90s"] {
            let parsed: HumanDuration = text.parse().unwrap();
            assert_eq!(parsed.to_string(), text);
        }
    }

    #[test]
    fn command_is_well_formed() {
        Args::command().debug_assert();
    }

    #[test]
    fn no_options_give_the_library_defaults() {
        let parsed = Args::try_parse_from(["signaling-server"]).unwrap();
        assert_eq!(parsed.log_format, LogFormat::Text);
        assert_eq!(parsed.worker_threads, None);
        assert_eq!(
            format!("{:?}", parsed.config()),
            format!("{:?}", Config::default())
        );
    }

    #[test]
    fn every_option_reaches_the_config() {
        let parsed = Args::try_parse_from([
            "signaling-server",
            "--max-connections-per-address",
            "7",
            "--trusted-proxy",
            "10.0.0.0/8,192.0.2.1",
            "--header-timeout",
            "750ms",
        ])
        .unwrap()
        .config();
        assert_eq!(parsed.max_connections_per_address, 7);
        assert_eq!(parsed.trusted_proxies.len(), 2);
        assert_eq!(parsed.header_timeout, Duration::from_millis(750));
    }

    #[test]
    fn every_option_has_help_and_env() {
        let command = Args::command();
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            assert!(arg.get_help().is_some(), "--{id} has no help");
            assert!(
                arg.get_env().is_some(),
                "--{id} has no environment variable"
            );
        }
    }

    #[test]
    fn token_subcommand_takes_room_ttl_and_secret() {
        let parsed = Args::try_parse_from([
            "signaling-server",
            "token",
            "--room",
            "lobby",
            "--ttl",
            "10m",
            "--auth-secret",
            "0123456789abcdef",
        ])
        .unwrap();
        let Some(Command::Token(args)) = parsed.command else {
            panic!("no token command");
        };
        assert_eq!(args.room, "lobby");
        assert_eq!(args.ttl.0, Duration::from_secs(600));
        assert!(Args::try_parse_from(["signaling-server", "token"]).is_err());
    }

    #[test]
    fn turn_needs_a_secret_and_tls_needs_both_files() {
        assert!(Args::try_parse_from(["signaling-server", "--turn", "turn:x:3478"]).is_err());
        assert!(Args::try_parse_from(["signaling-server", "--tls-key", "k.pem"]).is_err());
    }

    /// The options table, built from the same clap definitions as `--help`.
    fn options_table() -> String {
        let mut table =
            String::from("| option | environment | default | meaning |\n|---|---|---|---|\n");
        for arg in Args::command().get_arguments() {
            let Some(long) = arg.get_long() else {
                continue;
            };
            if long == "help" || long == "version" {
                continue;
            }
            let value = arg
                .get_value_names()
                .and_then(|names| names.first())
                .map(|name| format!(" {name}"))
                .unwrap_or_default();
            let env = arg
                .get_env()
                .map(|env| env.to_string_lossy().into_owned())
                .unwrap_or_default();
            let default = match arg.get_default_values() {
                [] => "unset".to_owned(),
                values => format!(
                    "`{}`",
                    values
                        .iter()
                        .map(|v| v.to_string_lossy())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            };
            let help = arg
                .get_long_help()
                .or(arg.get_help())
                .map(|h| h.to_string())
                .unwrap_or_default()
                .replace('\n', " ")
                .replace('|', "\\|");
            let mut meaning = help.trim().to_owned();
            if !meaning.ends_with('.') {
                meaning.push('.');
            }
            let values: Vec<String> = arg
                .get_possible_values()
                .iter()
                .map(|v| v.get_name().to_owned())
                .collect();
            if !values.is_empty() {
                meaning.push_str(&format!(" One of: {}.", values.join(", ")));
            }
            table.push_str(&format!(
                "| `--{long}{value}` | `{env}` | {default} | {meaning} |\n"
            ));
        }
        table
    }

    /// docs/deploy.md lists every option with its variable and default, as
    /// `--help` has them. On a mismatch this prints the table to paste
    /// between the `options:begin` and `options:end` markers.
    #[test]
    fn deploy_doc_lists_every_option_with_its_default() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/deploy.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let begin = "<!-- options:begin -->\n";
        let end = "<!-- options:end -->";
        let start = doc.find(begin).expect("options:begin marker") + begin.len();
        let stop = doc.find(end).expect("options:end marker");
        let expected = options_table();
        assert!(
            doc[start..stop] == expected,
            "docs/deploy.md's options table is out of date; paste this between the markers:\n\n{expected}"
        );
    }
}
