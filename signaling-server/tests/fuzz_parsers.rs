//! Property tests for the two parsers that read untrusted bytes: the
//! protocol's `ClientMessage::parse` and the server's WebSocket frame header
//! parser. Arbitrary input must never panic, and what parses must be
//! consistent with what was sent.
//!
//! Few cases by default; `PROPTEST_CASES=100000 cargo test -p signaling-server
//! --test fuzz_parsers --release` for a long run.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use signaling_protocol::{ClientMessage, PeerId};
use signaling_server::websocket::{FrameError, Opcode, parse_header, unmask};

/// Any JSON value, nested a few levels, with awkward strings and numbers.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::String),
        "[a-z_]{0,12}".prop_map(serde_json::Value::String),
        Just(serde_json::Value::String(PeerId::random().to_string())),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(field_name(), inner, 0..8)
                .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Field names a client message has, plus arbitrary ones.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("type".to_owned()),
        Just("room".to_owned()),
        Just("resume".to_owned()),
        Just("v".to_owned()),
        Just("to".to_owned()),
        Just("data".to_owned()),
        any::<String>(),
    ]
}

/// Objects that look like client messages: a known or unknown `type` and a
/// random mix of the known fields with values of any type.
fn message_like() -> impl Strategy<Value = String> {
    let kind = prop_oneof![
        Just("join".to_owned()),
        Just("signal".to_owned()),
        Just("leave".to_owned()),
        Just("ping".to_owned()),
        any::<String>(),
    ];
    (
        kind,
        prop::collection::btree_map(field_name(), json_value(), 0..6),
    )
        .prop_map(|(kind, mut fields)| {
            fields.insert("type".to_owned(), serde_json::Value::String(kind));
            serde_json::Value::Object(fields.into_iter().collect()).to_string()
        })
}

/// Checks what `ClientMessage::parse` made of `text`.
fn check_parse(text: &str) {
    let Ok(message) = ClientMessage::parse(text) else {
        return;
    };
    // What parsed must encode and parse again to the same message.
    let again = ClientMessage::parse(&message.to_json())
        .unwrap_or_else(|err| panic!("re-encoded {message:?} does not parse: {err}"));
    assert_eq!(
        format!("{message:?}"),
        format!("{again:?}"),
        "from {text:?}"
    );
    if let ClientMessage::Signal { data, .. } = &message {
        // `data` is opaque but must be one valid JSON value.
        serde_json::from_str::<serde_json::Value>(data.get())
            .unwrap_or_else(|err| panic!("relayed data {:?} is not JSON: {err}", data.get()));
    }
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics_the_message_parser(text in any::<String>()) {
        check_parse(&text);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_message_parser(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_parse(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn message_shaped_json_parses_consistently(text in message_like()) {
        check_parse(&text);
    }

    #[test]
    fn truncated_messages_never_panic(text in message_like(), cut in any::<prop::sample::Index>()) {
        let mut end = cut.index(text.len() + 1);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        check_parse(&text[..end]);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_frame_header_parser(bytes in prop::collection::vec(any::<u8>(), 0..32)) {
        match parse_header(&bytes) {
            Ok(Some(header)) => {
                prop_assert!(header.header_len <= bytes.len());
                let expected_len = match bytes[1] & 0x7F {
                    126 => 8,
                    127 => 14,
                    _ => 6,
                };
                prop_assert_eq!(header.header_len, expected_len);
                prop_assert!(header.len >> 63 == 0);
                prop_assert_eq!(header.fin, bytes[0] & 0x80 != 0);
                if header.opcode.is_control() {
                    prop_assert!(header.fin && header.len <= 125);
                }
                // Every prefix is "need more bytes", never a different header.
                for end in 0..header.header_len {
                    prop_assert_eq!(parse_header(&bytes[..end]), Ok(None));
                }
            }
            Ok(None) => prop_assert!(bytes.len() < 14),
            Err(FrameError::Unmasked) => prop_assert!(bytes[1] & 0x80 == 0),
            Err(FrameError::ReservedBits) => prop_assert!(bytes[0] & 0x70 != 0),
            Err(_) => {}
        }
    }

    #[test]
    fn well_formed_client_headers_parse_back(
        fin in any::<bool>(),
        opcode in prop::sample::select(vec![0u8, 1, 2, 8, 9, 10]),
        len in prop_oneof![0u64..126, 126u64..65_536, 65_536u64..(1 << 63)],
        mask in any::<[u8; 4]>(),
    ) {
        let mut bytes = vec![u8::from(fin) << 7 | opcode];
        match len {
            0..126 => bytes.push(0x80 | len as u8),
            126..65_536 => {
                bytes.push(0x80 | 126);
                bytes.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                bytes.push(0x80 | 127);
                bytes.extend_from_slice(&len.to_be_bytes());
            }
        }
        bytes.extend_from_slice(&mask);
        let control = opcode >= 8;
        match parse_header(&bytes) {
            Ok(Some(header)) => {
                prop_assert!(!control || (fin && len <= 125));
                prop_assert_eq!(header.len, len);
                prop_assert_eq!(header.mask, mask);
                prop_assert_eq!(header.header_len, bytes.len());
                prop_assert_eq!(header.opcode.is_control(), control);
                prop_assert_eq!(header.opcode == Opcode::Text, opcode == 1);
            }
            Ok(None) => prop_assert!(false, "a complete header asked for more bytes"),
            Err(err) => {
                prop_assert!(control && (!fin || len > 125), "{err}");
                prop_assert_eq!(err, FrameError::BadControlFrame);
            }
        }
    }

    #[test]
    fn unmasking_in_pieces_equals_unmasking_at_once(
        payload in prop::collection::vec(any::<u8>(), 0..300),
        mask in any::<[u8; 4]>(),
        split in any::<prop::sample::Index>(),
    ) {
        let mut whole = payload.clone();
        unmask(&mut whole, mask, 0);
        let at = split.index(payload.len() + 1);
        let mut pieces = payload.clone();
        let (head, tail) = pieces.split_at_mut(at);
        unmask(head, mask, 0);
        unmask(tail, mask, at);
        prop_assert_eq!(&whole, &pieces);
        unmask(&mut whole, mask, 0);
        prop_assert_eq!(whole, payload);
    }
}
