//! Three peers in one room form a full mesh: each has a chat channel to both
//! others, and a broadcast reaches everyone.

mod common;

use std::collections::HashSet;

use common::*;
use peer_client::{Event, Payload};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_peers_form_a_full_mesh() {
    let server = TestServer::loopback();
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(join(&server.url(), "mesh").await);
    }
    let ids: Vec<_> = sessions.iter().map(|s| s.id()).collect();
    for (i, session) in sessions.iter_mut().enumerate() {
        let open = chat_open_to(session, 2).await;
        let others: HashSet<_> = ids.iter().copied().filter(|id| *id != ids[i]).collect();
        assert_eq!(open, others, "peer {i} is linked to both others");
    }
    for (i, sender) in ids.iter().enumerate() {
        let text = format!("broadcast from {i}");
        let sent = sessions[i]
            .handle()
            .broadcast("chat", Payload::Text(text.clone()))
            .await;
        assert_eq!(sent, 2);
        for (j, session) in sessions.iter_mut().enumerate() {
            if i == j {
                continue;
            }
            let got = wait_for(session, "the broadcast", |e| match e {
                Event::Message {
                    peer,
                    payload: Payload::Text(t),
                    ..
                } if t == text => Some(peer),
                _ => None,
            })
            .await;
            assert_eq!(got, *sender);
        }
    }
}
