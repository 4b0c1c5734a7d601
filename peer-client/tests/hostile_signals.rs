//! Signals that are not descriptions or candidates, sent by a raw WebSocket
//! client posing as a peer, are reported and ignored; the session keeps
//! working.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use peer_client::Event;
use signaling_protocol::{ClientMessage, ServerMessage};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_signals_are_reported_and_ignored() {
    let server = TestServer::loopback();
    let mut session = join(&server.url(), "hostile").await;
    let target = session.id();

    let (mut raw, _) = tokio_tungstenite::connect_async(server.url())
        .await
        .unwrap();
    let hello = ClientMessage::Join {
        room: "hostile".into(),
        resume: None,
        v: None,
    };
    raw.send(Message::text(hello.to_json())).await.unwrap();
    let hostile = loop {
        let frame = raw.next().await.unwrap().unwrap();
        if let Ok(ServerMessage::Welcome { peer_id, .. }) =
            ServerMessage::parse(frame.to_text().unwrap())
        {
            break peer_id;
        }
    };
    for data in [
        r#"{"nonsense":true}"#,
        r#"{"description":{"type":"offer","sdp":"this is not SDP"}}"#,
        r#"[1,2,3]"#,
    ] {
        let signal = format!(r#"{{"type":"signal","to":"{target}","data":{data}}}"#);
        raw.send(Message::text(signal)).await.unwrap();
        let error = wait_for(&mut session, "a peer error", |e| match e {
            Event::PeerError { peer, error } if peer == hostile => Some(error),
            _ => None,
        })
        .await;
        assert!(!error.is_empty(), "{data}");
    }

    // The session still works: a real peer connects and talks.
    let mut friend = join(&server.url(), "hostile").await;
    chat_open(&mut friend, Some(target)).await;
}
