//! Messages of the transfer protocol (`docs/transfer.md`): UTF-8 JSON text
//! frames on the `transfer` channel, tagged by `"type"`. File data travels
//! as binary frames on the same channel, between a `file` and its `file_end`.

use serde::{Deserialize, Serialize};

use super::TransferError;
use crate::options::NegotiatedChannel;

/// Label of the data channel a transfer runs on.
pub const TRANSFER_LABEL: &str = "transfer";
/// SCTP stream id of the transfer channel, which both sides create
/// (negotiated out of band, so it opens without a DCEP round trip).
const TRANSFER_CHANNEL_ID: u16 = 0;

/// The transfer channel, as both sides configure their sessions.
pub(super) fn transfer_channel() -> NegotiatedChannel {
    NegotiatedChannel {
        label: TRANSFER_LABEL.to_owned(),
        id: TRANSFER_CHANNEL_ID,
    }
}

/// Whether a manifest entry is a file or a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory (sent so that empty ones arrive too).
    Dir,
}

/// A control message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// Both sides, first: the SPAKE2 message, hex.
    Pake {
        /// 33 bytes, hex.
        message: String,
    },
    /// Both sides, second: the key-confirmation MAC, hex.
    Confirm {
        /// 32 bytes, hex.
        mac: String,
    },
    /// Sender: what follows is a manifest of `entries` entries.
    Offer {
        /// Number of `entry` messages that follow.
        entries: u64,
        /// Sum of the file sizes.
        bytes: u64,
    },
    /// Sender: one manifest entry.
    Entry {
        /// Relative `/`-separated path.
        path: String,
        /// File or directory.
        kind: EntryKind,
        /// Size in bytes (0 for a directory).
        size: u64,
    },
    /// Receiver: it already holds the first `offset` bytes of file `index`,
    /// whose BLAKE3 hash is `blake3`.
    Resume {
        /// Manifest index of the file.
        index: u64,
        /// Bytes held.
        offset: u64,
        /// BLAKE3 of those bytes, hex.
        blake3: String,
    },
    /// Receiver: send the files. With `window`, it reports what it took
    /// with `consumed`, and the sender keeps at most `window` bytes of file
    /// data unconsumed (docs/transfer.md, "Receive window").
    Accept {
        /// Bytes of file data the receiver holds at most before it took them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window: Option<u64>,
    },
    /// Receiver: the offer is declined.
    Decline,
    /// Sender: data of file `index` follows, starting at `offset`.
    File {
        /// Manifest index of the file.
        index: u64,
        /// First byte sent (the receiver's resume offset, or 0).
        offset: u64,
    },
    /// Sender: file `index` is complete; `blake3` covers the whole file.
    FileEnd {
        /// Manifest index of the file.
        index: u64,
        /// BLAKE3 of the whole file, hex.
        blake3: String,
    },
    /// Receiver with a window: it took `bytes` bytes of file data in all
    /// (written where the files go).
    Consumed {
        /// File data taken since the transfer began.
        bytes: u64,
    },
    /// Sender to a swarm: a manifest of `entries` entries follows, then
    /// the hash of each of its pieces of `piece_bytes` (docs/swarm.md).
    SwarmOffer {
        /// Number of `entry` messages that follow.
        entries: u64,
        /// Sum of the file sizes.
        bytes: u64,
        /// Bytes per piece (the last piece of each file is shorter).
        piece_bytes: u64,
    },
    /// Sender to a swarm: the BLAKE3 hashes of the next pieces, in order.
    Hashes {
        /// Concatenated 32-byte hashes, hex.
        blake3: String,
    },
    /// Any swarm peer, once it knows the offer: the pieces it has.
    Bitfield {
        /// One bit per piece, the first in the highest bit, hex.
        have: String,
        /// The swarm digest of the offer it holds, hex.
        digest: String,
    },
    /// Any swarm peer: it has one more piece (verified and written).
    Have {
        /// Piece number.
        piece: u32,
    },
    /// Any swarm peer: send this piece.
    Request {
        /// Piece number.
        piece: u32,
    },
    /// Any swarm peer: the data of this piece follows, in binary frames.
    Piece {
        /// Piece number.
        piece: u32,
    },
    /// Sender: every file was sent. Receiver: every file was verified.
    Done,
    /// Either side: the transfer stops, for this reason.
    Error {
        /// A sentence for the person at the other end.
        message: String,
    },
}

impl Message {
    /// Reads a text frame.
    pub fn parse(text: &str) -> Result<Self, TransferError> {
        serde_json::from_str(text)
            .map_err(|err| TransferError::Protocol(format!("unreadable control message: {err}")))
    }

    /// Its `type`, as on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Pake { .. } => "pake",
            Self::Confirm { .. } => "confirm",
            Self::Offer { .. } => "offer",
            Self::Entry { .. } => "entry",
            Self::Resume { .. } => "resume",
            Self::Accept { .. } => "accept",
            Self::Decline => "decline",
            Self::File { .. } => "file",
            Self::FileEnd { .. } => "file_end",
            Self::Consumed { .. } => "consumed",
            Self::SwarmOffer { .. } => "swarm_offer",
            Self::Hashes { .. } => "hashes",
            Self::Bitfield { .. } => "bitfield",
            Self::Have { .. } => "have",
            Self::Request { .. } => "request",
            Self::Piece { .. } => "piece",
            Self::Done => "done",
            Self::Error { .. } => "error",
        }
    }

    /// The JSON text frame.
    pub fn to_json(&self) -> String {
        // Serialising these plain enums cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_the_wire_types() {
        let messages = [
            Message::Pake {
                message: String::new(),
            },
            Message::Confirm { mac: String::new() },
            Message::Offer {
                entries: 0,
                bytes: 0,
            },
            Message::Entry {
                path: String::new(),
                kind: EntryKind::Dir,
                size: 0,
            },
            Message::Resume {
                index: 0,
                offset: 0,
                blake3: String::new(),
            },
            Message::Accept { window: None },
            Message::Decline,
            Message::File {
                index: 0,
                offset: 0,
            },
            Message::FileEnd {
                index: 0,
                blake3: String::new(),
            },
            Message::Consumed { bytes: 0 },
            Message::SwarmOffer {
                entries: 0,
                bytes: 0,
                piece_bytes: 0,
            },
            Message::Hashes {
                blake3: String::new(),
            },
            Message::Bitfield {
                have: String::new(),
                digest: String::new(),
            },
            Message::Have { piece: 0 },
            Message::Request { piece: 0 },
            Message::Piece { piece: 0 },
            Message::Done,
            Message::Error {
                message: String::new(),
            },
        ];
        for message in messages {
            let json: serde_json::Value =
                serde_json::from_str(&message.to_json()).unwrap_or_default();
            assert_eq!(json["type"], message.kind(), "{message:?}");
        }
    }

    #[test]
    fn shapes_match_the_documentation() {
        let entry = Message::Entry {
            path: "dir/a.txt".into(),
            kind: EntryKind::File,
            size: 5,
        };
        assert_eq!(
            entry.to_json(),
            r#"{"type":"entry","path":"dir/a.txt","kind":"file","size":5}"#
        );
        assert_eq!(
            Message::FileEnd {
                index: 2,
                blake3: "ab".into()
            }
            .to_json(),
            r#"{"type":"file_end","index":2,"blake3":"ab"}"#
        );
        assert_eq!(
            Message::Accept { window: None }.to_json(),
            r#"{"type":"accept"}"#
        );
        assert_eq!(
            Message::parse(r#"{"type":"accept","window":16777216}"#).unwrap(),
            Message::Accept {
                window: Some(16 << 20)
            }
        );
        assert_eq!(
            Message::parse(r#"{"type":"consumed","bytes":5}"#).unwrap(),
            Message::Consumed { bytes: 5 }
        );
        assert_eq!(
            Message::parse(r#"{"type":"offer","entries":1,"bytes":5,"extra":true}"#).unwrap(),
            Message::Offer {
                entries: 1,
                bytes: 5
            }
        );
    }

    #[test]
    fn malformed_messages_are_errors() {
        for bad in [
            "",
            "{}",
            r#"{"type":"nope"}"#,
            r#"{"type":"file","index":-1,"offset":0}"#,
            r#"{"type":"entry","path":"a","kind":"socket","size":0}"#,
        ] {
            assert!(matches!(
                Message::parse(bad),
                Err(TransferError::Protocol(_))
            ));
        }
    }
}
