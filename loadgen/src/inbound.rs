//! Reading server frames, with a fast path for relayed signals.
//!
//! The server relays `signal` frames as `{"type":"signal","from":"<id>","data":<data>}`.
//! Frames in exactly that shape are split without a JSON pass (the payload
//! is then checked field by field by the scenario); anything else goes
//! through [`ServerMessage::parse`], so other field orders still work, only slower.

use std::borrow::Cow;

use anyhow::{Context, Result};
use signaling_protocol::{PeerId, ServerMessage};

/// Length of a hyphenated UUID, the wire form of a peer id.
pub const ID_LEN: usize = 36;
/// A peer id as it appears on the wire.
pub type IdText = [u8; ID_LEN];

const SIGNAL_PREFIX: &[u8] = br#"{"type":"signal","from":""#;
const DATA_INFIX: &[u8] = br#"","data":"#;

/// One message from the server.
pub enum Inbound<'a> {
    /// A relayed signal.
    Signal {
        /// The sender's id, as text.
        from: IdText,
        /// The payload, byte for byte as relayed.
        data: Cow<'a, [u8]>,
    },
    /// Any other message.
    Other(ServerMessage),
}

/// The wire text of a peer id.
pub fn id_text(id: &PeerId) -> IdText {
    let mut out = [0u8; ID_LEN];
    out.copy_from_slice(id.to_string().as_bytes());
    out
}

/// Reads one text frame sent by the server.
pub fn read(text: &[u8]) -> Result<Inbound<'_>> {
    if let Some(rest) = text.strip_prefix(SIGNAL_PREFIX)
        && rest.len() > ID_LEN + DATA_INFIX.len()
        && rest[ID_LEN..].starts_with(DATA_INFIX)
        && text.last() == Some(&b'}')
    {
        let mut from = [0u8; ID_LEN];
        from.copy_from_slice(&rest[..ID_LEN]);
        let data = &rest[ID_LEN + DATA_INFIX.len()..rest.len() - 1];
        return Ok(Inbound::Signal {
            from,
            data: Cow::Borrowed(data),
        });
    }
    let text = std::str::from_utf8(text).context("server sent a text frame that is not UTF-8")?;
    let msg = ServerMessage::parse(text)
        .with_context(|| format!("server sent an unreadable message: {}", clip(text)))?;
    Ok(match msg {
        ServerMessage::Signal { from, data } => Inbound::Signal {
            from: id_text(&from),
            data: Cow::Owned(data.get().as_bytes().to_vec()),
        },
        other => Inbound::Other(other),
    })
}

/// The start of a long text, for error messages.
pub fn clip(text: &str) -> &str {
    match text.char_indices().nth(200) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    #[test]
    fn fast_path_matches_the_protocol_encoding() {
        let from = PeerId::random();
        let data = RawValue::from_string(r#"{"seq":"1","x":[1,2]}"#.into()).unwrap();
        let text = ServerMessage::Signal {
            from,
            data: data.clone(),
        }
        .to_json();
        match read(text.as_bytes()).unwrap() {
            Inbound::Signal {
                from: got,
                data: Cow::Borrowed(bytes),
            } => {
                assert_eq!(got, id_text(&from));
                assert_eq!(bytes, data.get().as_bytes());
            }
            _ => panic!("fast path not taken for {text}"),
        }
    }

    #[test]
    fn other_field_orders_fall_back_to_the_parser() {
        let from = PeerId::random();
        let text = format!(r#"{{"data":{{"a":1}},"from":"{from}","type":"signal"}}"#);
        match read(text.as_bytes()).unwrap() {
            Inbound::Signal { from: got, data } => {
                assert_eq!(got, id_text(&from));
                assert_eq!(&*data, br#"{"a":1}"#);
            }
            _ => panic!("not read as a signal"),
        }
        assert!(matches!(
            read(br#"{"type":"pong"}"#).unwrap(),
            Inbound::Other(ServerMessage::Pong)
        ));
        assert!(read(b"{nonsense").is_err());
    }
}
