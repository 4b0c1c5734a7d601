//! When the signaling server restarts it no longer knows the resume tokens:
//! each session rejoins under a new id, starts over like a newcomer, and the
//! peers connect again.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use peer_client::{Event, Payload, SignalingStatus};
use signaling_server::Config;
use test_support::loopback_config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_start_over_after_a_server_restart() {
    let server = TestServer::loopback();
    let addr = server.addr;
    let mut first = join(&server.url(), "restart").await;
    let mut second = join(&server.url(), "restart").await;
    chat_open(&mut first, None).await;
    chat_open(&mut second, None).await;
    let old = (first.id(), second.id());

    drop(server);
    // The same address again; the old listener may take a moment to go.
    let server = bounded("rebinding the port", async {
        loop {
            let listen = addr.to_string();
            let config = Config {
                listen,
                ..loopback_config()
            };
            if let Ok(server) = TestServer::try_start(config) {
                return server;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(server.addr, addr);

    for session in [&mut first, &mut second] {
        let resumed = wait_for(session, "the rejoin", |e| match e {
            Event::Signaling(SignalingStatus::Reconnected { resumed, .. }) => Some(resumed),
            _ => None,
        })
        .await;
        assert!(!resumed, "a restarted server cannot know the old token");
    }
    assert_ne!(first.id(), old.0);
    assert_ne!(second.id(), old.1);

    // Whoever rejoined later offered; both sides get a fresh chat channel and talk.
    let peer_of_first = chat_open(&mut first, None).await;
    assert_eq!(peer_of_first, second.id());
    chat_open(&mut second, Some(first.id())).await;
    first
        .handle()
        .send(second.id(), "chat", Payload::Text("again".into()))
        .await
        .unwrap();
    assert_eq!(
        text_on(&mut second, "chat").await,
        (first.id(), "again".into())
    );
}
