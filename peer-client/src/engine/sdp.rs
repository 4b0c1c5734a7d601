//! Descriptions between our types and the crate's, and what we read in
//! their SDP.

use webrtc::peer_connection::{RTCSdpType, RTCSessionDescription};

use crate::error::Error;
use crate::signal::{SdpKind, SessionDescription};

/// The DTLS certificate fingerprint a description carries.
pub(crate) fn description_fingerprint(description: &SessionDescription) -> Option<String> {
    sdp_fingerprint(&description.sdp)
}

/// The first `a=fingerprint:` value of a description.
pub(super) fn sdp_fingerprint(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|line| line.strip_prefix("a=fingerprint:"))
        .map(|value| value.trim().to_owned())
}

/// Ours, from the crate's.
pub(super) fn from_rtc(description: &RTCSessionDescription) -> SessionDescription {
    let kind = match description.sdp_type {
        RTCSdpType::Answer => SdpKind::Answer,
        RTCSdpType::Pranswer => SdpKind::Pranswer,
        RTCSdpType::Rollback => SdpKind::Rollback,
        _ => SdpKind::Offer,
    };
    SessionDescription {
        kind,
        sdp: description.sdp.clone(),
    }
}

/// The crate's, from ours.
pub(super) fn to_rtc(description: SessionDescription) -> Result<RTCSessionDescription, Error> {
    let value =
        serde_json::to_value(&description).map_err(|err| Error::BadSignal(err.to_string()))?;
    serde_json::from_value(value).map_err(|err| Error::BadSignal(format!("description: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fingerprint_line() {
        let sdp =
            "v=0\r\na=group:BUNDLE 0\r\na=fingerprint:sha-256 AB:CD:EF\r\nm=application 9\r\n";
        assert_eq!(sdp_fingerprint(sdp).as_deref(), Some("sha-256 AB:CD:EF"));
        assert_eq!(sdp_fingerprint("v=0\r\n"), None);
    }
}
