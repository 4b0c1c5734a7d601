//! Shared pieces of the library tests: sessions bound to loopback and
//! bounded waits for events; the signaling server comes from `test-support`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::time::Duration;

use peer_client::{Event, Payload, PeerId, Session, SessionConfig, TransportOptions};
pub use test_support::TestServer;

/// Longest wait for any one expected event.
pub const STEP: Duration = Duration::from_secs(15);

/// Session settings for `room` on `url`, bound to loopback.
pub fn config(url: &str, room: &str) -> SessionConfig {
    let mut config = SessionConfig::new(url, room);
    config.transport = TransportOptions::loopback();
    config
}

pub async fn join(url: &str, room: &str) -> Session {
    tokio::time::timeout(STEP, Session::connect(config(url, room)))
        .await
        .expect("join in time")
        .expect("join")
}

/// Waits (bounded) for the first event that `pick` maps to `Some`.
pub async fn wait_for<T>(
    session: &mut Session,
    what: &str,
    mut pick: impl FnMut(Event) -> Option<T>,
) -> T {
    let found = tokio::time::timeout(STEP, async {
        while let Some(event) = session.next_event().await {
            if let Some(found) = pick(event) {
                return Some(found);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(found)) => found,
        Ok(None) => panic!("the session ended while waiting for {what}"),
        Err(_) => panic!("no {what} within {STEP:?}"),
    }
}

/// Waits for the `chat` channel to `peer` (any peer if `None`) to open.
pub async fn chat_open(session: &mut Session, peer: Option<PeerId>) -> PeerId {
    wait_for(session, "an open chat channel", |event| match event {
        Event::ChannelOpen { peer: p, channel }
            if channel.label() == "chat" && peer.is_none_or(|want| want == p) =>
        {
            Some(p)
        }
        _ => None,
    })
    .await
}

/// Waits for a text message on `label` and returns (sender, text).
pub async fn text_on(session: &mut Session, label: &str) -> (PeerId, String) {
    let label = label.to_owned();
    wait_for(session, "a text message", move |event| match event {
        Event::Message {
            peer,
            label: l,
            payload: Payload::Text(text),
        } if l == label => Some((peer, text)),
        _ => None,
    })
    .await
}

/// Runs `future` with the standard bound.
pub async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, future)
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than {STEP:?}"))
}

/// Waits until chat channels to `count` distinct peers are open; returns them.
pub async fn chat_open_to(
    session: &mut Session,
    count: usize,
) -> std::collections::HashSet<PeerId> {
    let mut open = std::collections::HashSet::new();
    while open.len() < count {
        open.insert(chat_open(session, None).await);
    }
    open
}
