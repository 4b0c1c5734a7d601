//! A fast sender cannot queue unbounded memory: a send waits while the
//! channel holds more unacknowledged bytes than its bound, and every byte
//! still arrives, in order.

#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::*;
use peer_client::{DEFAULT_SEND_BUFFER_BYTES, Event, Payload};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_senders_queue_stays_bounded_and_nothing_is_lost() {
    let server = TestServer::loopback();
    let mut receiver = join(&server.url(), "bulk").await;
    let mut sender = join(&server.url(), "bulk").await;
    chat_open(&mut receiver, None).await;
    let channel = wait_for(&mut sender, "the chat channel", |e| match e {
        Event::ChannelOpen { channel, .. } => Some(channel),
        _ => None,
    })
    .await;

    const MESSAGES: usize = 256;
    let size = channel.max_message_bytes().min(64 * 1024);
    let bound = DEFAULT_SEND_BUFFER_BYTES + size;
    let sending = tokio::spawn(async move {
        let mut most = 0;
        for i in 0..MESSAGES {
            let message = Bytes::from(vec![(i % 251) as u8; size]);
            channel.send(Payload::Binary(message)).await.unwrap();
            most = most.max(channel.queued_bytes().await);
        }
        most
    });
    for i in 0..MESSAGES {
        let data = wait_for(&mut receiver, "the next message", |e| match e {
            Event::Message {
                payload: Payload::Binary(data),
                ..
            } => Some(data),
            _ => None,
        })
        .await;
        assert_eq!(data.len(), size);
        assert!(
            data.iter().all(|b| *b == (i % 251) as u8),
            "message {i} out of order or damaged"
        );
    }
    let most = bounded("the sender", sending).await.unwrap();
    assert!(most <= bound, "{most} bytes queued, bound {bound}");
}
