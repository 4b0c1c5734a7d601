//! Protocol steps outside the measured hot paths: joining, waiting for a message.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use signaling_protocol::{ClientMessage, PeerId, ServerMessage};

use crate::inbound::clip;
use crate::ws::Conn;

/// How long a setup step may wait for the server.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads a text frame as a protocol message.
fn parse_message(text: &[u8]) -> Result<ServerMessage> {
    let text = std::str::from_utf8(text).context("text frame is not UTF-8")?;
    ServerMessage::parse(text)
        .with_context(|| format!("server sent an unreadable message: {}", clip(text)))
}

/// What `welcome` told a client.
pub struct Joined {
    /// Its own id.
    pub id: PeerId,
    /// Peers already in the room, oldest first.
    pub peers: Vec<PeerId>,
}

/// Joins `room` and waits for `welcome`.
pub async fn join(conn: &mut Conn, room: &str) -> Result<Joined> {
    let join = ClientMessage::Join {
        room: room.to_owned(),
        resume: None,
        v: None,
    };
    conn.wr.text(join.to_json().as_bytes());
    conn.flush().await?;
    let msg = tokio::time::timeout(SETUP_TIMEOUT, conn.receive(parse_message))
        .await
        .with_context(|| format!("no welcome within {SETUP_TIMEOUT:?} after joining {room}"))??;
    match msg {
        ServerMessage::Welcome { peer_id, peers, .. } => Ok(Joined { id: peer_id, peers }),
        ServerMessage::Error { code, message, .. } => {
            bail!("joining {room} was refused: {code}: {message}")
        }
        other => bail!(
            "expected welcome after join, got {}",
            clip(&other.to_json())
        ),
    }
}

/// Waits for `peer_joined` of `peer`.
pub async fn expect_peer_joined(conn: &mut Conn, peer: PeerId) -> Result<()> {
    let msg = tokio::time::timeout(SETUP_TIMEOUT, conn.receive(parse_message))
        .await
        .context("no peer_joined in time")??;
    match msg {
        ServerMessage::PeerJoined { peer_id } if peer_id == peer => Ok(()),
        other => bail!(
            "expected peer_joined {peer}, got {}",
            clip(&other.to_json())
        ),
    }
}

/// The text of a `signal` frame to `to` carrying `data` (already JSON).
pub fn signal_frame(to: &PeerId, data: &str) -> String {
    let mut out = String::with_capacity(data.len() + 64);
    out.push_str(r#"{"type":"signal","to":""#);
    out.push_str(&to.to_string());
    out.push_str(r#"","data":"#);
    out.push_str(data);
    out.push('}');
    out
}

/// Local addresses to connect from, so many connections do not run out of ephemeral ports.
#[derive(Debug, Clone, Copy)]
pub struct Sources {
    count: u8,
}

impl Sources {
    /// `count` addresses 127.0.0.2, 127.0.0.3, ...; 0 or 1 means let the kernel choose.
    pub fn new(count: u8) -> Self {
        Self { count }
    }

    /// The source address for connection number `n`.
    pub fn pick(self, n: usize) -> Option<IpAddr> {
        (self.count > 1).then(|| {
            let last = 2 + (n % usize::from(self.count)) as u8;
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_frame_parses_as_a_client_signal() {
        let to = PeerId::random();
        let text = signal_frame(&to, r#"{"seq":"1"}"#);
        match ClientMessage::parse(&text).unwrap() {
            ClientMessage::Signal { to: got, data } => {
                assert_eq!(got, to);
                assert_eq!(data.get(), r#"{"seq":"1"}"#);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sources_cycle_from_127_0_0_2() {
        assert_eq!(Sources::new(1).pick(5), None);
        let s = Sources::new(3);
        assert_eq!(s.pick(0), Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))));
        assert_eq!(s.pick(4), Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3))));
    }
}
