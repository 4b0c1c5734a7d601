//! `peer-client bench-peer`: serves throughput tests to the peers of a room,
//! so a browser page (or any peer) can measure a bare data channel to this
//! machine, with nothing but the channel in the way.
//!
//! - A peer opens a channel labelled [`UP`], sends binary messages, then the
//!   text `end`; this peer answers `{"bytes":N}` with the bytes it counted.
//! - A peer opens a channel labelled [`DOWN`] and sends `{"bytes":N}`; this
//!   peer sends N bytes in messages of at most [`MESSAGE_BYTES`], then the
//!   text `end`.

use std::collections::HashMap;

use bytes::BytesMut;
use peer_client::{Channel, Event, LinkState, Payload, PeerId, SessionHandle};
use tokio::task::JoinHandle;

use crate::args::RoomArgs;
use crate::room_bot;

/// Label of the channel a peer sends on.
const UP: &str = "bench-up";
/// Label of the channel a peer asks to be sent bytes on.
const DOWN: &str = "bench-down";
/// Bytes per message sent on [`DOWN`] (the largest message every browser takes).
const MESSAGE_BYTES: usize = 64 * 1024;
/// Most bytes one request on [`DOWN`] may ask for.
const MAX_REQUEST_BYTES: u64 = 64 << 30;

pub(crate) async fn run(args: RoomArgs) -> anyhow::Result<()> {
    let mut counted: HashMap<PeerId, u64> = HashMap::new();
    let mut sending: HashMap<PeerId, JoinHandle<()>> = HashMap::new();
    let served = room_bot::serve(&args, "bench peer", async |handle: &SessionHandle, event| {
        match event {
            Event::Message {
                peer,
                label,
                payload,
            } => match (label.as_str(), payload) {
                (UP, Payload::Binary(data)) => {
                    *counted.entry(peer).or_default() += data.len() as u64;
                }
                (UP, Payload::Text(text)) if text == "end" => {
                    let bytes = counted.remove(&peer).unwrap_or(0);
                    eprintln!("{peer} sent {bytes} bytes");
                    let answer = serde_json::json!({ "bytes": bytes }).to_string();
                    if let Err(err) = handle.send(peer, UP, Payload::Text(answer)).await {
                        eprintln!("cannot answer {peer}: {err}");
                    }
                }
                (DOWN, Payload::Text(text)) => match requested_bytes(&text) {
                    Some(bytes) => match handle.channel(peer, DOWN) {
                        Some(channel) => {
                            if let Some(earlier) = sending.insert(peer, send_down(channel, bytes)) {
                                earlier.abort();
                            }
                        }
                        None => eprintln!("{peer} asked for bytes on a channel that closed"),
                    },
                    None => eprintln!(
                        "{peer} sent a malformed request on {DOWN} (want {{\"bytes\":N}}, N ≤ {MAX_REQUEST_BYTES})"
                    ),
                },
                (label, _) => eprintln!("{peer} sent an unexpected message on {label:?}; ignored"),
            },
            Event::LinkState {
                peer,
                state: LinkState::Connected,
                ..
            } => eprintln!("connected to {peer}"),
            Event::PeerLeft(peer) => {
                counted.remove(&peer);
                if let Some(task) = sending.remove(&peer) {
                    task.abort();
                }
                eprintln!("{peer} left");
            }
            _ => {}
        }
    })
    .await;
    for task in sending.into_values() {
        task.abort();
    }
    served
}

/// The byte count of a `{"bytes":N}` request, if it is one within bounds.
fn requested_bytes(text: &str) -> Option<u64> {
    let request: serde_json::Value = serde_json::from_str(text).ok()?;
    request
        .get("bytes")?
        .as_u64()
        .filter(|&bytes| bytes <= MAX_REQUEST_BYTES)
}

/// Sends `bytes` bytes on `channel` as fast as it takes them, then `end`.
fn send_down(channel: Channel, bytes: u64) -> JoinHandle<()> {
    tokio::spawn(async move {
        let message = MESSAGE_BYTES.min(channel.max_message_bytes());
        let mut left = bytes;
        while left > 0 {
            let size = message.min(usize::try_from(left).unwrap_or(message));
            if let Err(err) = channel.send_bytes(BytesMut::zeroed(size)).await {
                eprintln!("sending to {} stopped: {err}", channel.peer());
                return;
            }
            left -= size as u64;
        }
        match channel.send(Payload::Text("end".into())).await {
            Ok(()) => eprintln!("sent {bytes} bytes to {}", channel.peer()),
            Err(err) => eprintln!("cannot end the bytes sent to {}: {err}", channel.peer()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_names_a_byte_count_within_bounds() {
        assert_eq!(requested_bytes(r#"{"bytes":1048576}"#), Some(1 << 20));
        assert_eq!(requested_bytes(r#"{"bytes":0}"#), Some(0));
        assert_eq!(requested_bytes(r#"{"bytes":-1}"#), None);
        assert_eq!(requested_bytes(r#"{"bytes":"12"}"#), None);
        assert_eq!(requested_bytes(r#"{"bytes":68719476737}"#), None);
        assert_eq!(requested_bytes("12"), None);
        assert_eq!(requested_bytes("not json"), None);
    }
}
