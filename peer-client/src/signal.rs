//! What peers send each other through the signaling server: session
//! descriptions and ICE candidates, in the browser's own JSON shapes
//! (`RTCSessionDescriptionInit`, `RTCIceCandidateInit`), wrapped as
//! `{"description": ...}` or `{"candidate": ...}`.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::Error;

/// Offer or answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SdpKind {
    Offer,
    Answer,
    Pranswer,
    Rollback,
}

/// A session description: `{"type": "offer", "sdp": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SessionDescription {
    #[serde(rename = "type")]
    pub(crate) kind: SdpKind,
    #[serde(default)]
    pub(crate) sdp: String,
}

/// An ICE candidate as the browser's `candidate.toJSON()` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IceCandidate {
    pub(crate) candidate: String,
    #[serde(default)]
    pub(crate) sdp_mid: Option<String>,
    #[serde(default, rename = "sdpMLineIndex")]
    pub(crate) sdp_m_line_index: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) username_fragment: Option<String>,
}

/// One signal between two peers.
#[derive(Debug, Clone)]
pub(crate) enum PeerSignal {
    /// An offer or an answer.
    Description(SessionDescription),
    /// A trickled candidate; `None` marks the end of candidates.
    Candidate(Option<IceCandidate>),
}

impl PeerSignal {
    /// Reads a signal's `data`.
    pub(crate) fn parse(data: &RawValue) -> Result<Self, Error> {
        let bad = |detail: String| Error::BadSignal(detail);
        let value: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(data.get()).map_err(|err| bad(err.to_string()))?;
        if let Some(description) = value.get("description") {
            let description = SessionDescription::deserialize(description)
                .map_err(|err| bad(format!("description: {err}")))?;
            return Ok(Self::Description(description));
        }
        match value.get("candidate") {
            Some(serde_json::Value::Null) => Ok(Self::Candidate(None)),
            Some(candidate) => IceCandidate::deserialize(candidate)
                .map(|c| Self::Candidate(Some(c)))
                .map_err(|err| bad(format!("candidate: {err}"))),
            None => Err(bad(
                "expected a \"description\" or a \"candidate\" field".into()
            )),
        }
    }

    /// The signal as `data` for the wire.
    pub(crate) fn to_raw(&self) -> Box<RawValue> {
        let json = match self {
            Self::Description(description) => {
                serde_json::json!({ "description": description })
            }
            Self::Candidate(candidate) => serde_json::json!({ "candidate": candidate }),
        };
        // A `serde_json::Value` always serializes; the fallback is never taken.
        serde_json::value::to_raw_value(&json).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn reads_browser_shapes() {
        let offer =
            PeerSignal::parse(&raw(r#"{"description":{"type":"offer","sdp":"v=0\r\n"}}"#)).unwrap();
        assert!(matches!(offer, PeerSignal::Description(d) if d.kind == SdpKind::Offer));
        let candidate = PeerSignal::parse(&raw(
            r#"{"candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abc"}}"#,
        ))
        .unwrap();
        match candidate {
            PeerSignal::Candidate(Some(c)) => {
                assert_eq!(c.sdp_mid.as_deref(), Some("0"));
                assert_eq!(c.sdp_m_line_index, Some(0));
                assert_eq!(c.username_fragment.as_deref(), Some("abc"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            PeerSignal::parse(&raw(r#"{"candidate":null}"#)).unwrap(),
            PeerSignal::Candidate(None)
        ));
    }

    #[test]
    fn rejects_other_shapes_with_a_reason() {
        for bad in [
            r#"[1]"#,
            r#"{}"#,
            r#"{"description":{"type":"dance"}}"#,
            r#"{"candidate":7}"#,
        ] {
            let err = PeerSignal::parse(&raw(bad)).unwrap_err();
            assert!(matches!(err, Error::BadSignal(_)), "{bad}: {err}");
        }
    }

    #[test]
    fn writes_what_it_reads() {
        let signal = PeerSignal::Candidate(Some(IceCandidate {
            candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host".into(),
            sdp_mid: Some("0".into()),
            sdp_m_line_index: Some(0),
            username_fragment: None,
        }));
        let text = signal.to_raw();
        let value: serde_json::Value = serde_json::from_str(text.get()).unwrap();
        assert_eq!(value["candidate"]["sdpMLineIndex"], 0);
        assert_eq!(value["candidate"]["sdpMid"], "0");
        assert!(value["candidate"].get("usernameFragment").is_none());
        match PeerSignal::parse(&text).unwrap() {
            PeerSignal::Candidate(Some(back)) => {
                assert_eq!(back.candidate, "candidate:1 1 udp 1 127.0.0.1 9 typ host")
            }
            other => panic!("{other:?}"),
        }
    }
}
