//! When the socket to the signaling server drops, the session reconnects and
//! resumes its id; the open data channel keeps working throughout, and new
//! peers can still reach the resumed peer.
//!
//! The drop is made real with a TCP relay between the client and the server
//! whose connections the test cuts.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use peer_client::{Event, Payload, SignalingStatus};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Forwards TCP connections to `upstream`; `cut` drops all current ones.
struct Relay {
    url: String,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Relay {
    async fn start(upstream: std::net::SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/ws", listener.local_addr().unwrap());
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let list = Arc::clone(&connections);
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                list.lock().unwrap().push(task);
            }
        });
        Self {
            url,
            connections,
            accept,
        }
    }

    fn cut(&self) {
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_socket_resumes_without_disturbing_the_channel() {
    let server = TestServer::loopback();
    let relay = Relay::start(server.addr).await;
    let mut flaky = join(&relay.url, "resume").await;
    let mut steady = join(&server.url(), "resume").await;
    let flaky_id = flaky.id();
    chat_open(&mut flaky, None).await;
    chat_open(&mut steady, None).await;
    let (to_steady, to_flaky) = (flaky.handle(), steady.handle());

    relay.cut();
    wait_for(&mut flaky, "the drop to be noticed", |e| {
        matches!(e, Event::Signaling(SignalingStatus::Reconnecting { .. })).then_some(())
    })
    .await;
    // Both directions work while the signaling socket is down or coming back.
    to_steady
        .send(
            steady.id(),
            "chat",
            Payload::Text("during the outage".into()),
        )
        .await
        .unwrap();
    assert_eq!(text_on(&mut steady, "chat").await.1, "during the outage");
    to_flaky
        .send(
            flaky_id,
            "chat",
            Payload::Text("reply during the outage".into()),
        )
        .await
        .unwrap();
    // The reply and the reconnection may arrive in either order.
    let (mut reply, mut rejoined) = (None, None);
    while reply.is_none() || rejoined.is_none() {
        wait_for(&mut flaky, "the reply and the reconnection", |e| match e {
            Event::Message {
                payload: Payload::Text(text),
                ..
            } => {
                reply = Some(text);
                Some(())
            }
            Event::Signaling(SignalingStatus::Reconnected { resumed, peer_id }) => {
                rejoined = Some((resumed, peer_id));
                Some(())
            }
            _ => None,
        })
        .await;
    }
    assert_eq!(reply.as_deref(), Some("reply during the outage"));
    let (resumed, id) = rejoined.unwrap();
    assert!(resumed, "the server honoured the resume token");
    assert_eq!(id, flaky_id);
    assert_eq!(flaky.id(), flaky_id);

    // The same channel still carries messages after the reconnection.
    to_steady
        .send(steady.id(), "chat", Payload::Text("after".into()))
        .await
        .unwrap();
    let (from, text) = text_on(&mut steady, "chat").await;
    assert_eq!((from, text.as_str()), (flaky_id, "after"));

    // Signaling works again: a newcomer reaches the resumed peer through it.
    let mut newcomer = join(&server.url(), "resume").await;
    let peers = chat_open_to(&mut newcomer, 2).await;
    assert!(peers.contains(&flaky_id));

    // The steady peer never saw the resumed one leave.
    let left = tokio::time::timeout(std::time::Duration::from_millis(300), async {
        while let Some(event) = steady.next_event().await {
            if matches!(event, Event::PeerLeft(p) if p == flaky_id) {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(!left, "a resumed peer must not be reported as gone");
}
