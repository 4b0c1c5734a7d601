//! The messages themselves.
//!
//! Both directions are flat JSON objects tagged by `"type"`. They are read
//! through a flat "frame" struct rather than a serde-tagged enum so that a
//! signal's `data` stays a [`RawValue`]: the server forwards it byte for byte
//! and never builds a JSON tree of what it relays.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{ErrorCode, ParseError};
use crate::ice::IceServer;
use crate::limits::Limits;
use crate::peer_id::PeerId;

/// Opaque payload of a `signal`: any JSON value, relayed unchanged.
pub type SignalData = Box<RawValue>;

/// A message from a client to the server.
#[derive(Debug)]
pub enum ClientMessage {
    /// Enter `room`; with `resume`, take back a dropped session.
    Join {
        /// Room name: 1–128 bytes of UTF-8 without control characters.
        room: String,
        /// A `resume_token` from an earlier `welcome`.
        resume: Option<String>,
        /// Protocol version; absent means the current one.
        v: Option<u32>,
    },
    /// Relay `data` to peer `to` of the same room.
    Signal {
        /// The receiving peer.
        to: PeerId,
        /// Opaque payload.
        data: SignalData,
    },
    /// Leave the room; the connection stays open and may join again.
    Leave,
    /// Ask for a `pong`; also keeps the connection from idling out.
    Ping,
}

/// A message from the server to a client.
#[derive(Debug)]
pub enum ServerMessage {
    /// The answer to `join`.
    Welcome {
        /// This client's id in the room.
        peer_id: PeerId,
        /// The room joined.
        room: String,
        /// Peers already in the room, oldest first.
        peers: Vec<PeerId>,
        /// STUN/TURN servers for `RTCPeerConnection`.
        ice_servers: Vec<IceServer>,
        /// Secret that lets this client resume after a dropped socket.
        resume_token: String,
        /// True when `join.resume` was honoured and the old id kept.
        resumed: bool,
        /// The limits this server enforces.
        limits: Limits,
    },
    /// Another peer entered the room.
    PeerJoined {
        /// The newcomer.
        peer_id: PeerId,
    },
    /// A peer left the room (or its resume grace period ran out).
    PeerLeft {
        /// The peer that left.
        peer_id: PeerId,
    },
    /// A relayed signal.
    Signal {
        /// The sending peer.
        from: PeerId,
        /// Opaque payload, as sent.
        data: SignalData,
    },
    /// Something the client sent was refused.
    Error {
        /// Stable machine-readable code.
        code: ErrorCode,
        /// Explanation for people.
        message: String,
        /// The peer concerned, for `unknown_peer`.
        peer_id: Option<PeerId>,
    },
    /// The answer to `ping`.
    Pong,
    /// The server is going away; reconnect (with the resume token) after the delay.
    Shutdown {
        /// Milliseconds to wait before reconnecting.
        reconnect_after_ms: u64,
    },
}

/// Every `type` a client may send.
const CLIENT_TYPES: [&str; 4] = ["join", "signal", "leave", "ping"];

#[derive(Deserialize)]
struct ClientFrame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    room: Option<String>,
    resume: Option<String>,
    v: Option<u32>,
    to: Option<PeerId>,
    data: Option<SignalData>,
}

impl ClientMessage {
    /// Reads one text frame.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let frame: ClientFrame<'_> = match serde_json::from_str(text) {
            Ok(frame) => frame,
            Err(err) => return Err(classify(text, err)),
        };
        let missing = |field: &str| ParseError::InvalidMessage {
            kind: frame.kind.to_string(),
            detail: format!("missing field `{field}`"),
        };
        match frame.kind.as_ref() {
            "join" => Ok(Self::Join {
                room: frame.room.clone().ok_or_else(|| missing("room"))?,
                resume: frame.resume,
                v: frame.v,
            }),
            "signal" => {
                let to = frame.to.ok_or_else(|| missing("to"))?;
                let data = frame.data.ok_or_else(|| missing("data"))?;
                Ok(Self::Signal { to, data })
            }
            "leave" => Ok(Self::Leave),
            "ping" => Ok(Self::Ping),
            other => Err(ParseError::UnknownType(clip(other, MAX_QUOTED_TYPE_CHARS))),
        }
    }

    /// The message as one JSON text frame.
    pub fn to_json(&self) -> String {
        let frame = match self {
            Self::Join { room, resume, v } => OutClient {
                kind: "join",
                room: Some(room),
                resume: resume.as_deref(),
                v: *v,
                ..OutClient::default()
            },
            Self::Signal { to, data } => OutClient {
                kind: "signal",
                to: Some(*to),
                data: Some(data),
                ..OutClient::default()
            },
            Self::Leave => OutClient {
                kind: "leave",
                ..OutClient::default()
            },
            Self::Ping => OutClient {
                kind: "ping",
                ..OutClient::default()
            },
        };
        encode(&frame)
    }
}

/// Works out why a frame that failed the fast path is bad.
fn classify(text: &str, err: serde_json::Error) -> ParseError {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(json_err) => return ParseError::MalformedJson(json_err.to_string()),
    };
    let Some(object) = value.as_object() else {
        return ParseError::MalformedJson("expected a JSON object".into());
    };
    match object.get("type").and_then(|t| t.as_str()) {
        None => ParseError::MissingType,
        Some(kind) if !CLIENT_TYPES.contains(&kind) => {
            ParseError::UnknownType(clip(kind, MAX_QUOTED_TYPE_CHARS))
        }
        Some(kind) => ParseError::InvalidMessage {
            kind: kind.to_owned(),
            detail: clip(&strip_position(&err.to_string()), MAX_DETAIL_CHARS),
        },
    }
}

/// Most characters of a client's unknown `type` quoted back in an error.
const MAX_QUOTED_TYPE_CHARS: usize = 64;

/// Most characters of a parser's complaint (which may quote the client's
/// values) passed on in an error.
const MAX_DETAIL_CHARS: usize = 256;

/// `text` cut to `max` characters, with `…` marking a cut, so an error
/// never echoes a large part of a client's frame back to it.
fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// serde_json appends " at line 1 column 42"; the column is noise for a reader.
fn strip_position(detail: &str) -> String {
    match detail.find(" at line ") {
        Some(at) => detail[..at].to_owned(),
        None => detail.to_owned(),
    }
}

#[derive(Serialize, Default)]
struct OutClient<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    room: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resume: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    v: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<PeerId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
}

#[derive(Serialize, Deserialize, Default)]
struct ServerFrame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    peer_id: Option<PeerId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    room: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    peers: Option<Cow<'a, [PeerId]>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ice_servers: Option<Cow<'a, [IceServer]>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resume_token: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resumed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    limits: Option<Limits>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from: Option<PeerId>,
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    data: Option<Cow<'a, RawValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code: Option<ErrorCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reconnect_after_ms: Option<u64>,
}

impl ServerMessage {
    /// An `error` message without a peer.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error {
            code,
            message: message.into(),
            peer_id: None,
        }
    }

    /// The message as one JSON text frame.
    pub fn to_json(&self) -> String {
        let frame = match self {
            Self::Welcome {
                peer_id,
                room,
                peers,
                ice_servers,
                resume_token,
                resumed,
                limits,
            } => ServerFrame {
                kind: "welcome".into(),
                peer_id: Some(*peer_id),
                room: Some(room.as_str().into()),
                peers: Some(peers.as_slice().into()),
                ice_servers: Some(ice_servers.as_slice().into()),
                resume_token: Some(resume_token.as_str().into()),
                resumed: Some(*resumed),
                limits: Some(*limits),
                ..ServerFrame::default()
            },
            Self::PeerJoined { peer_id } => ServerFrame {
                kind: "peer_joined".into(),
                peer_id: Some(*peer_id),
                ..ServerFrame::default()
            },
            Self::PeerLeft { peer_id } => ServerFrame {
                kind: "peer_left".into(),
                peer_id: Some(*peer_id),
                ..ServerFrame::default()
            },
            Self::Signal { from, data } => return signal_json(*from, data),
            Self::Error {
                code,
                message,
                peer_id,
            } => ServerFrame {
                kind: "error".into(),
                code: Some(*code),
                message: Some(message.as_str().into()),
                peer_id: *peer_id,
                ..ServerFrame::default()
            },
            Self::Pong => ServerFrame {
                kind: "pong".into(),
                ..ServerFrame::default()
            },
            Self::Shutdown { reconnect_after_ms } => ServerFrame {
                kind: "shutdown".into(),
                reconnect_after_ms: Some(*reconnect_after_ms),
                ..ServerFrame::default()
            },
        };
        encode(&frame)
    }

    /// Reads one text frame sent by a server.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let frame: ServerFrame<'_> =
            serde_json::from_str(text).map_err(|err| ParseError::MalformedJson(err.to_string()))?;
        let kind = frame.kind.to_string();
        let missing = |field: &str| ParseError::InvalidMessage {
            kind: kind.clone(),
            detail: format!("missing field `{field}`"),
        };
        Ok(match frame.kind.as_ref() {
            "welcome" => Self::Welcome {
                peer_id: frame.peer_id.ok_or_else(|| missing("peer_id"))?,
                room: frame.room.ok_or_else(|| missing("room"))?.into_owned(),
                peers: frame.peers.ok_or_else(|| missing("peers"))?.into_owned(),
                ice_servers: frame.ice_servers.map(Cow::into_owned).unwrap_or_default(),
                resume_token: frame
                    .resume_token
                    .ok_or_else(|| missing("resume_token"))?
                    .into_owned(),
                resumed: frame.resumed.unwrap_or(false),
                limits: frame.limits.ok_or_else(|| missing("limits"))?,
            },
            "peer_joined" => Self::PeerJoined {
                peer_id: frame.peer_id.ok_or_else(|| missing("peer_id"))?,
            },
            "peer_left" => Self::PeerLeft {
                peer_id: frame.peer_id.ok_or_else(|| missing("peer_id"))?,
            },
            "signal" => Self::Signal {
                from: frame.from.ok_or_else(|| missing("from"))?,
                data: frame.data.ok_or_else(|| missing("data"))?.into_owned(),
            },
            "error" => Self::Error {
                code: frame.code.ok_or_else(|| missing("code"))?,
                message: frame.message.map(Cow::into_owned).unwrap_or_default(),
                peer_id: frame.peer_id,
            },
            "pong" => Self::Pong,
            "shutdown" => Self::Shutdown {
                reconnect_after_ms: frame.reconnect_after_ms.unwrap_or(0),
            },
            other => return Err(ParseError::UnknownType(other.to_owned())),
        })
    }
}

/// Encodes a relayed signal by splicing the raw payload in, without a serializer pass over it.
pub(crate) fn signal_json(from: PeerId, data: &RawValue) -> String {
    const HEAD: &str = r#"{"type":"signal","from":""#;
    const MID: &str = r#"","data":"#;
    let data = data.get();
    let mut id = uuid::Uuid::encode_buffer();
    let id = from.as_uuid().hyphenated().encode_lower(&mut id);
    // Exact size, so the frame converts into shared bytes without reallocating.
    let mut out = String::with_capacity(HEAD.len() + id.len() + MID.len() + data.len() + 1);
    out.push_str(HEAD);
    out.push_str(id);
    out.push_str(MID);
    out.push_str(data);
    out.push('}');
    out
}

/// Serializes a frame. The frame types hold only strings, numbers and
/// sequences of them, which always serialize; the fallback is never taken.
fn encode<T: Serialize>(frame: &T) -> String {
    serde_json::to_string(frame).unwrap_or_else(|err| {
        format!(
            r#"{{"type":"error","code":"internal","message":{}}}"#,
            serde_json::Value::String(err.to_string())
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::DEFAULT_MAX_FRAME_BYTES;

    fn raw(json: &str) -> SignalData {
        RawValue::from_string(json.to_owned()).unwrap()
    }

    #[test]
    fn parses_every_client_type() {
        let to = PeerId::random();
        assert!(matches!(
            ClientMessage::parse(r#"{"type":"join","room":"a","resume":"t","v":1}"#),
            Ok(ClientMessage::Join { room, resume: Some(r), v: Some(1) }) if room == "a" && r == "t"
        ));
        let text = format!(r#"{{"type":"signal","to":"{to}","data":{{"sdp":"x"}}}}"#);
        match ClientMessage::parse(&text) {
            Ok(ClientMessage::Signal { to: got, data }) => {
                assert_eq!(got, to);
                assert_eq!(data.get(), r#"{"sdp":"x"}"#);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            ClientMessage::parse(r#"{"type":"leave"}"#),
            Ok(ClientMessage::Leave)
        ));
        assert!(matches!(
            ClientMessage::parse(r#"{"type":"ping","extra":[1,2]}"#),
            Ok(ClientMessage::Ping)
        ));
    }

    #[test]
    fn classifies_bad_frames() {
        let code = |text: &str| ClientMessage::parse(text).unwrap_err().code();
        assert_eq!(code("not json"), ErrorCode::MalformedJson);
        assert_eq!(code("[1,2]"), ErrorCode::MalformedJson);
        assert_eq!(code("{}"), ErrorCode::MissingType);
        assert_eq!(code(r#"{"type":7}"#), ErrorCode::MissingType);
        assert_eq!(code(r#"{"type":"dance"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"type":"join"}"#), ErrorCode::InvalidMessage);
        assert_eq!(
            code(r#"{"type":"join","room":3}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code(r#"{"type":"signal","to":"nope","data":1}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code(&format!(
                r#"{{"type":"signal","to":"{}"}}"#,
                PeerId::random()
            )),
            ErrorCode::InvalidMessage
        );
    }

    #[test]
    fn errors_quote_only_a_clipped_part_of_the_frame() {
        let long = "é".repeat(60_000);
        let text = format!(r#"{{"type":"{long}","room":"a"}}"#);
        match ClientMessage::parse(&text) {
            Err(err @ ParseError::UnknownType(_)) => {
                let message = err.to_string();
                assert!(message.chars().count() < 150, "{message}");
                assert!(
                    message.contains(&format!("{}…", "é".repeat(64))),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        // The fast path (a known field of the wrong type) too.
        let text = format!(r#"{{"type":"{long}","v":"x"}}"#);
        let err = ClientMessage::parse(&text).unwrap_err();
        assert!(matches!(err, ParseError::UnknownType(_)), "{err:?}");
        assert!(err.to_string().chars().count() < 150);
        // A short type is quoted whole.
        let err = ClientMessage::parse(r#"{"type":"hello"}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"unknown message type "hello"; expected join, signal, leave or ping"#
        );
        // Parser complaints that quote a value are clipped as well.
        let text = format!(r#"{{"type":"join","room":"a","resume":{{"x":1}},"v":"{long}"}}"#);
        let err = ClientMessage::parse(&text).unwrap_err();
        assert!(matches!(err, ParseError::InvalidMessage { .. }), "{err:?}");
        assert!(err.to_string().chars().count() < 300, "{err}");
    }

    #[test]
    fn invalid_message_names_the_field() {
        let err = ClientMessage::parse(r#"{"type":"join"}"#).unwrap_err();
        assert!(err.to_string().contains("room"), "{err}");
    }

    #[test]
    fn client_messages_round_trip() {
        let to = PeerId::random();
        let msgs = [
            ClientMessage::Join {
                room: "r".into(),
                resume: None,
                v: None,
            },
            ClientMessage::Signal {
                to,
                data: raw(r#"{"candidate":"c"}"#),
            },
            ClientMessage::Leave,
            ClientMessage::Ping,
        ];
        for msg in msgs {
            let text = msg.to_json();
            let back = ClientMessage::parse(&text).unwrap();
            assert_eq!(back.to_json(), text);
        }
    }

    #[test]
    fn server_messages_round_trip() {
        let id = PeerId::random();
        let limits = Limits {
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_peers_per_room: 8,
            messages_per_second: 100,
            message_burst: 200,
            resume_grace_secs: 30,
            idle_timeout_secs: 60,
        };
        let msgs = [
            ServerMessage::Welcome {
                peer_id: id,
                room: "r".into(),
                peers: vec![PeerId::random()],
                ice_servers: vec![IceServer {
                    urls: vec!["stun:127.0.0.1:3478".into()],
                    username: None,
                    credential: None,
                }],
                resume_token: "tok".into(),
                resumed: false,
                limits,
            },
            ServerMessage::PeerJoined { peer_id: id },
            ServerMessage::PeerLeft { peer_id: id },
            ServerMessage::Signal {
                from: id,
                data: raw(r#"{"type":"offer","sdp":"v=0\r\n"}"#),
            },
            ServerMessage::Error {
                code: ErrorCode::UnknownPeer,
                message: "no such peer".into(),
                peer_id: Some(id),
            },
            ServerMessage::Pong,
            ServerMessage::Shutdown {
                reconnect_after_ms: 500,
            },
        ];
        for msg in msgs {
            let text = msg.to_json();
            let back = ServerMessage::parse(&text).unwrap();
            assert_eq!(back.to_json(), text, "{text}");
        }
    }

    #[test]
    fn signal_splice_is_valid_json() {
        let from = PeerId::random();
        let text = signal_json(from, &raw(r#"{"a":"\"quoted\""}"#));
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["type"], "signal");
        assert_eq!(value["from"], from.to_string());
        assert_eq!(value["data"]["a"], "\"quoted\"");
        assert_eq!(text.len(), text.capacity());
    }

    #[test]
    fn welcome_shape_is_documented_shape() {
        let text = ServerMessage::Pong.to_json();
        assert_eq!(text, r#"{"type":"pong"}"#);
        let err = ServerMessage::error(ErrorCode::RoomFull, "full").to_json();
        assert_eq!(
            err,
            r#"{"type":"error","code":"room_full","message":"full"}"#
        );
    }
}
