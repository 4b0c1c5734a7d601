//! The signals of the relay scenario: a pre-encoded frame whose sequence
//! number is patched in place, and the check of what arrives.

use signaling_protocol::PeerId;

use crate::dialect::Dialect;
use crate::integrity::{get_digits, put_digits};
use crate::ws::Writer;

// Layout of the payload: {"dst":"<8>","seq":"<12>","src":"<8>","zpad":"xxx..."}.
// The keys are in sorted order, so a server that re-encodes the payload
// through a JSON tree with sorted maps (matchbox does) relays the same bytes.
const DST_AT: usize = 8;
const SEQ_AT: usize = 25;
const SRC_AT: usize = 46;
const PAD_AT: usize = 64;
const SEQ_LEN: usize = 12;
const INDEX_LEN: usize = 8;

/// A pre-encoded signal frame whose sequence number is patched in place.
pub(super) struct RelayFrame {
    text: Vec<u8>,
    seq_at: usize,
    /// Length of the signal's data, as it arrives in the `signal` frame.
    pub(super) data_len: usize,
}

impl RelayFrame {
    pub(super) fn new(dialect: Dialect, to: &PeerId, src: u32, dst: u32, size: usize) -> Self {
        let data = |pad: usize| {
            format!(
                r#"{{"dst":"{:08}","seq":"{:012}","src":"{:08}","zpad":"{}"}}"#,
                dst,
                0,
                src,
                "x".repeat(pad)
            )
        };
        let bare = dialect.signal_frame(to, &data(0)).len();
        let data = data(size.saturating_sub(bare));
        let text = dialect.signal_frame(to, &data).into_bytes();
        let data_at = text
            .windows(data.len())
            .rposition(|w| w == data.as_bytes())
            .unwrap_or_default();
        Self {
            text,
            seq_at: data_at + SEQ_AT,
            data_len: data.len(),
        }
    }

    pub(super) fn set_seq(&mut self, seq: u64) {
        put_digits(&mut self.text[self.seq_at..self.seq_at + SEQ_LEN], seq);
    }

    pub(super) fn queue(&mut self, wr: &mut Writer, seq: u64) {
        self.set_seq(seq);
        wr.text(&self.text);
    }

    /// The payload part of the frame, as the addressee receives it.
    #[cfg(test)]
    pub(super) fn data(&self) -> &[u8] {
        let at = self.seq_at - SEQ_AT;
        &self.text[at..at + self.data_len]
    }
}

/// The checked fields of a payload.
pub(super) struct Payload {
    pub(super) seq: u64,
    pub(super) src: u32,
    pub(super) dst: u32,
}

/// Reads a payload, or `None` if it is not exactly what a client sends.
pub(super) fn decode(data: &[u8], data_len: usize) -> Option<Payload> {
    if data.len() != data_len
        || data_len < PAD_AT + 2
        || !data.starts_with(br#"{"dst":""#)
        || &data[DST_AT + INDEX_LEN..SEQ_AT] != br#"","seq":""#
        || &data[SEQ_AT + SEQ_LEN..SRC_AT] != br#"","src":""#
        || &data[SRC_AT + INDEX_LEN..PAD_AT] != br#"","zpad":""#
        || !data.ends_with(br#""}"#)
        || !data[PAD_AT..data.len() - 2].iter().all(|&b| b == b'x')
    {
        return None;
    }
    Some(Payload {
        seq: get_digits(&data[SEQ_AT..SEQ_AT + SEQ_LEN])?,
        src: u32::try_from(get_digits(&data[SRC_AT..SRC_AT + INDEX_LEN])?).ok()?,
        dst: u32::try_from(get_digits(&data[DST_AT..DST_AT + INDEX_LEN])?).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_the_asked_size_and_decode() {
        let to = PeerId::random();
        let mut frame = RelayFrame::new(Dialect::Native, &to, 7, 8, 300);
        assert_eq!(frame.text.len(), 300);
        frame.set_seq(123_456);
        let text = std::str::from_utf8(&frame.text).unwrap();
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(value["to"], to.to_string());
        assert_eq!(value["data"]["seq"], "000000123456");
        let payload = decode(frame.data(), frame.data_len).unwrap();
        assert_eq!((payload.seq, payload.src, payload.dst), (123_456, 7, 8));
    }

    #[test]
    fn altered_payloads_do_not_decode() {
        let frame = RelayFrame::new(Dialect::Native, &PeerId::random(), 1, 2, 300);
        let data = std::str::from_utf8(frame.data()).unwrap();
        assert!(decode(data.as_bytes(), frame.data_len).is_some());
        let flipped = data.replacen("xx", "xy", 1);
        assert!(decode(flipped.as_bytes(), frame.data_len).is_none());
        assert!(decode(&data.as_bytes()[1..], frame.data_len).is_none());
    }
}
