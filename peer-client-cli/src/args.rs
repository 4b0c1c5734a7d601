//! Options several subcommands share: where to meet and how to connect.

use clap::Args;
use peer_client::{
    DEFAULT_SOCKET_BUFFER_BYTES, IceServer, MdnsMode, SessionConfig, TransportOptions,
};

/// The signaling server `chat`, `echo` and `bench-peer` use without `--server`.
const LOCAL_SERVER: &str = "ws://127.0.0.1:8080/ws";

/// Where to meet and how to connect.
#[derive(Debug, Clone, Args)]
pub struct RoomArgs {
    /// Signaling server and transport settings.
    #[command(flatten)]
    pub net: NetArgs,

    /// Room to join.
    #[arg(long)]
    pub room: String,
}

/// Signaling server and transport settings.
#[derive(Debug, Clone, Args)]
pub struct NetArgs {
    /// WebSocket URL of the signaling server (ws:// or wss://, path /ws).
    /// Without it, `send` serves signaling itself on this machine's network
    /// and `receive` finds that sender on the local network; `chat` and
    /// `echo` and `bench-peer` use ws://127.0.0.1:8080/ws.
    #[arg(long, value_name = "URL", env = "PEER_CLIENT_SERVER")]
    pub server: Option<String>,

    /// Local UDP address to bind (repeat for several). Default: every
    /// non-loopback IPv4 interface plus 127.0.0.1.
    #[arg(long = "bind", value_name = "ADDR")]
    pub bind: Vec<String>,

    /// STUN or TURN URL to use instead of the servers the signaling server
    /// announces (repeat for several; TURN credentials as
    /// `turn:USER:PASSWORD@HOST:PORT`).
    #[arg(long = "ice-server", value_name = "URL")]
    pub ice_servers: Vec<String>,

    /// Connect through a TURN relay only, which keeps your addresses from the
    /// other peer. Without it the relay is used only when no direct path works.
    #[arg(long)]
    pub relay_only: bool,

    /// Resolve other peers' `.local` (mDNS) ICE candidates with multicast
    /// queries. Off by default. (Without --server, `send` and `receive` use
    /// mDNS anyway, to find each other.)
    #[arg(long)]
    pub mdns: bool,

    /// Receive and send buffer to ask the kernel for, per UDP socket, in
    /// bytes (Linux grants at most `net.core.rmem_max` / `wmem_max`; a
    /// warning says when it granted less).
    #[arg(long, value_name = "BYTES", env = "PEER_CLIENT_SOCKET_BUFFER",
          default_value_t = DEFAULT_SOCKET_BUFFER_BYTES)]
    pub socket_buffer: usize,
}

impl RoomArgs {
    /// The session settings these arguments describe.
    pub fn session_config(&self) -> SessionConfig {
        let server = self.net.server.as_deref().unwrap_or(LOCAL_SERVER);
        self.net.session_config(server, &self.room)
    }
}

impl NetArgs {
    /// The session settings for `room` on the signaling server at `server`.
    pub fn session_config(&self, server: &str, room: &str) -> SessionConfig {
        let mut config = SessionConfig::new(server, room);
        let mut transport = TransportOptions::default();
        if !self.bind.is_empty() {
            transport.bind_addrs = self.bind.clone();
        }
        transport.relay_only = self.relay_only;
        transport.socket_buffer_bytes = self.socket_buffer;
        if self.mdns {
            transport.mdns = MdnsMode::Query;
        }
        config.transport = transport;
        if !self.ice_servers.is_empty() {
            config.ice_servers = Some(
                self.ice_servers
                    .iter()
                    .map(|url| parse_ice_server(url))
                    .collect(),
            );
        }
        config
    }
}

/// Reads `turn:USER:PASSWORD@HOST:PORT` (credentials optional).
fn parse_ice_server(url: &str) -> IceServer {
    if let Some((scheme, rest)) = url.split_once(':')
        && let Some((credentials, host)) = rest.rsplit_once('@')
        && let Some((user, password)) = credentials.split_once(':')
    {
        return IceServer {
            urls: vec![format!("{scheme}:{host}")],
            username: Some(user.to_owned()),
            credential: Some(password.to_owned()),
        };
    }
    IceServer {
        urls: vec![url.to_owned()],
        username: None,
        credential: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_credentials_come_out_of_the_url() {
        let server = parse_ice_server("turn:alice:secret@127.0.0.1:3478");
        assert_eq!(server.urls, vec!["turn:127.0.0.1:3478".to_owned()]);
        assert_eq!(server.username.as_deref(), Some("alice"));
        assert_eq!(server.credential.as_deref(), Some("secret"));
        let stun = parse_ice_server("stun:127.0.0.1:3478");
        assert_eq!(stun.urls, vec!["stun:127.0.0.1:3478".to_owned()]);
        assert!(stun.username.is_none());
    }
}
