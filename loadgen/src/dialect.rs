//! The wire dialects loadgen speaks: this project's protocol, and
//! matchbox_server's, so both servers can be measured the same way.
//!
//! matchbox_server (0.15) puts the room in the URL path (`/<room>`), greets a
//! client with `{"IdAssigned":"<id>"}`, tells the peers already in the room
//! `{"NewPeer":"<id>"}` and `{"PeerLeft":"<id>"}`, and relays
//! `{"Signal":{"receiver":"<id>","data":...}}` as
//! `{"Signal":{"sender":"<id>","data":...}}`. It has no `leave`: a client leaves by closing.

use std::borrow::Cow;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use signaling_protocol::{PeerId, ServerMessage};

use crate::client::{self, SETUP_TIMEOUT};
use crate::inbound::{self, ID_LEN, Inbound, clip};
use crate::ws::{Conn, Target};

const MATCHBOX_SIGNAL_PREFIX: &[u8] = br#"{"Signal":{"sender":""#;
const MATCHBOX_DATA_INFIX: &[u8] = br#"","data":"#;

/// Which server protocol to speak.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Dialect {
    /// This project's protocol (docs/protocol.md).
    #[default]
    Native,
    /// matchbox_server's protocol, for comparison (relay and idle only).
    Matchbox,
}

impl Dialect {
    /// Where a client of `room` connects.
    pub fn target(self, target: &Target, room: &str) -> Target {
        match self {
            Self::Native => target.clone(),
            Self::Matchbox => Target {
                addr: target.addr,
                path: format!("/{room}"),
                tls: target.tls.clone(),
            },
        }
    }

    /// Enters `room` on a connection made to [`Self::target`]; returns the client's id.
    pub async fn join(self, conn: &mut Conn, room: &str) -> Result<PeerId> {
        match self {
            Self::Native => Ok(client::join(conn, room).await?.id),
            Self::Matchbox => {
                let event = tokio::time::timeout(SETUP_TIMEOUT, conn.receive(parse_matchbox_event))
                    .await
                    .context("no IdAssigned in time")??;
                match event {
                    ("IdAssigned", id) => Ok(id),
                    (kind, _) => bail!("expected IdAssigned, got {kind}"),
                }
            }
        }
    }

    /// Waits until the server announces `peer` to this client.
    pub async fn expect_peer_joined(self, conn: &mut Conn, peer: PeerId) -> Result<()> {
        match self {
            Self::Native => client::expect_peer_joined(conn, peer).await,
            Self::Matchbox => {
                let event = tokio::time::timeout(SETUP_TIMEOUT, conn.receive(parse_matchbox_event))
                    .await
                    .context("no NewPeer in time")??;
                match event {
                    ("NewPeer", id) if id == peer => Ok(()),
                    (kind, id) => bail!("expected NewPeer {peer}, got {kind} {id}"),
                }
            }
        }
    }

    /// The text of a signal to `to` carrying `data` (already JSON).
    pub fn signal_frame(self, to: &PeerId, data: &str) -> String {
        match self {
            Self::Native => client::signal_frame(to, data),
            Self::Matchbox => format!(r#"{{"Signal":{{"receiver":"{to}","data":{data}}}}}"#),
        }
    }

    /// Reads one text frame from the server.
    pub fn read(self, text: &[u8]) -> Result<Inbound<'_>> {
        match self {
            Self::Native => inbound::read(text),
            Self::Matchbox => read_matchbox(text),
        }
    }

    /// Leaves and closes the connection politely.
    pub async fn close(self, conn: Conn) -> Result<()> {
        conn.close(self == Self::Native).await
    }
}

/// Reads a matchbox event: signals on a fast path, `NewPeer` and `PeerLeft`
/// as their counterparts of this project's protocol.
fn read_matchbox(text: &[u8]) -> Result<Inbound<'_>> {
    if let Some(rest) = text.strip_prefix(MATCHBOX_SIGNAL_PREFIX)
        && rest.len() > ID_LEN + MATCHBOX_DATA_INFIX.len() + 2
        && rest[ID_LEN..].starts_with(MATCHBOX_DATA_INFIX)
        && text.ends_with(b"}}")
    {
        let mut from = [0u8; ID_LEN];
        from.copy_from_slice(&rest[..ID_LEN]);
        let data = &rest[ID_LEN + MATCHBOX_DATA_INFIX.len()..rest.len() - 2];
        return Ok(Inbound::Signal {
            from,
            data: Cow::Borrowed(data),
        });
    }
    let (kind, id) = parse_matchbox_event(text)?;
    Ok(Inbound::Other(match kind {
        "NewPeer" => ServerMessage::PeerJoined { peer_id: id },
        "PeerLeft" => ServerMessage::PeerLeft { peer_id: id },
        other => bail!("unexpected matchbox event {other}"),
    }))
}

/// Reads `{"<Kind>":"<id>"}`.
fn parse_matchbox_event(text: &[u8]) -> Result<(&'static str, PeerId)> {
    let shown = String::from_utf8_lossy(text);
    let value: Value = serde_json::from_slice(text)
        .with_context(|| format!("unreadable matchbox event: {}", clip(&shown)))?;
    let Some((kind, id)) = value.as_object().and_then(|o| o.iter().next()) else {
        bail!("unexpected matchbox event: {}", clip(&shown));
    };
    let kind = match kind.as_str() {
        "IdAssigned" => "IdAssigned",
        "NewPeer" => "NewPeer",
        "PeerLeft" => "PeerLeft",
        _ => bail!("unexpected matchbox event: {}", clip(&shown)),
    };
    let id: PeerId = id
        .as_str()
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("matchbox event without a peer id: {}", clip(&shown)))?;
    Ok((kind, id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::id_text;

    #[test]
    fn matchbox_signals_and_events_are_read() {
        let from = PeerId::random();
        let text = format!(r#"{{"Signal":{{"sender":"{from}","data":{{"a":"b"}}}}}}"#);
        match read_matchbox(text.as_bytes()).unwrap() {
            Inbound::Signal { from: got, data } => {
                assert_eq!(got, id_text(&from));
                assert_eq!(&*data, br#"{"a":"b"}"#);
            }
            Inbound::Other(_) => panic!("not a signal"),
        }
        let left = format!(r#"{{"PeerLeft":"{from}"}}"#);
        assert!(matches!(
            read_matchbox(left.as_bytes()).unwrap(),
            Inbound::Other(ServerMessage::PeerLeft { peer_id }) if peer_id == from
        ));
        assert!(read_matchbox(br#"{"Dance":"x"}"#).is_err());
    }

    #[test]
    fn matchbox_signal_frame_is_a_peer_request() {
        let to = PeerId::random();
        let text = Dialect::Matchbox.signal_frame(&to, r#"{"x":1}"#);
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["Signal"]["receiver"], to.to_string());
        assert_eq!(value["Signal"]["data"]["x"], 1);
    }
}
