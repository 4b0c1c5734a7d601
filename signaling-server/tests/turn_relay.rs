//! TURN credentials from `welcome` work against a real coturn running in
//! `use-auth-secret` mode: two peers allowed to use relays only connect
//! through it and exchange a message. Needs `/usr/bin/turnserver` (Debian's
//! coturn package) or `$TURNSERVER_PATH`.

// Test helpers: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{ServerExt, TestServer, config};
use peer_client::{
    Event, LinkPath, LinkState, Payload, PeerId, Session, SessionConfig, TransportOptions,
};
use signaling_server::Config;
use test_support::{Coturn, TurnAuth};

const SECRET: &str = "turn secret shared with coturn";
const STEP: Duration = Duration::from_secs(20);

/// coturn on a free loopback port with `use-auth-secret`.
fn coturn() -> Coturn {
    Coturn::start("signaling", TurnAuth::Secret(SECRET), 40_000)
}

async fn relay_only_session(url: &str) -> Session {
    let mut config = SessionConfig::new(url, "relayed");
    config.transport = TransportOptions {
        relay_only: true,
        ..TransportOptions::loopback()
    };
    tokio::time::timeout(STEP, Session::connect(config))
        .await
        .expect("join in time")
        .expect("join")
}

/// Waits for the link to `peer`'s side to be connected; returns its path.
async fn connected_path(session: &mut Session) -> LinkPath {
    tokio::time::timeout(STEP, async {
        loop {
            match session.next_event().await.expect("session ended") {
                Event::LinkState {
                    state: LinkState::Connected,
                    path: Some(path),
                    ..
                } => return path,
                Event::LinkState {
                    state: LinkState::Failed,
                    ..
                } => panic!("the link failed"),
                _ => {}
            }
        }
    })
    .await
    .expect("the link connects in time")
}

async fn next_text(session: &mut Session) -> String {
    tokio::time::timeout(STEP, async {
        loop {
            if let Event::Message {
                payload: Payload::Text(text),
                ..
            } = session.next_event().await.expect("session ended")
            {
                return text;
            }
        }
    })
    .await
    .expect("a message in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_peers_connect_through_coturn_with_welcome_credentials() {
    let coturn = coturn();
    let server = TestServer::start(Config {
        turn: vec![format!("turn:127.0.0.1:{}?transport=udp", coturn.port())],
        turn_secret: Some(SECRET.parse().unwrap()),
        turn_ttl: Duration::from_secs(600),
        ..config()
    });

    let mut first = relay_only_session(&server.ws_url()).await;
    let mut second = relay_only_session(&server.ws_url()).await;
    assert_eq!(connected_path(&mut second).await, LinkPath::Relayed);
    assert_eq!(connected_path(&mut first).await, LinkPath::Relayed);

    let handle = second.handle();
    let deadline = Instant::now() + STEP;
    // The chat channel opens just after the link connects.
    while handle.channel(first.id(), "chat").is_none() {
        assert!(Instant::now() < deadline, "chat channel did not open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    handle
        .send(first.id(), "chat", Payload::Text("via coturn".into()))
        .await
        .unwrap();
    assert_eq!(next_text(&mut first).await, "via coturn");

    // coturn saw our credentials: an allocation for a `EXPIRY:PEER_ID` user.
    let log = coturn.log();
    assert!(
        log.contains(&format!(":{}", first.id())) || log.contains(&format!(":{}", second.id())),
        "coturn log does not show the minted usernames:\n{log}"
    );
    first.close().await;
    second.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_signed_with_another_secret_do_not_relay() {
    let coturn = coturn();
    let turn = vec![format!("turn:127.0.0.1:{}?transport=udp", coturn.port())];
    let server = TestServer::start(Config {
        turn: turn.clone(),
        turn_secret: Some("a different secret than coturn's".parse().unwrap()),
        ..config()
    });
    let first = relay_only_session(&server.ws_url()).await;
    let mut second = relay_only_session(&server.ws_url()).await;
    // Without a relay allocation there is no candidate pair: no link within
    // the time a working relay takes. A session that ends is not a refusal.
    let connected = tokio::time::timeout(Duration::from_secs(8), async {
        loop {
            if let Event::LinkState {
                state: LinkState::Connected,
                ..
            } = second.next_event().await.expect("the session ended")
            {
                return;
            }
        }
    })
    .await;
    assert!(
        connected.is_err(),
        "connected although coturn refuses the credentials"
    );
    // coturn challenges every first request with a 401 (`user <>`); a refusal
    // is the 401 for our minted `EXPIRY:PEER_ID` user, whose integrity it
    // could not verify, and no allocation.
    let log = coturn.log();
    let refused = |id: &PeerId| {
        let user = format!(":{id}>");
        log.lines().any(|line| {
            line.contains("Cannot find credentials of user <") && line.trim_end().ends_with(&user)
        }) && log.lines().any(|line| {
            line.contains(&format!("{user}: incoming packet")) && line.contains("error 401")
        })
    };
    assert!(
        refused(&first.id()) || refused(&second.id()),
        "coturn did not refuse the minted credentials:\n{log}"
    );
    assert!(
        !log.contains("ALLOCATE processed, success"),
        "coturn allocated a relay:\n{log}"
    );
    first.close().await;
    second.close().await;

    // The same coturn relays for a server that signs with its secret.
    let server = TestServer::start(Config {
        turn,
        turn_secret: Some(SECRET.parse().unwrap()),
        ..config()
    });
    let first = relay_only_session(&server.ws_url()).await;
    let mut second = relay_only_session(&server.ws_url()).await;
    assert_eq!(connected_path(&mut second).await, LinkPath::Relayed);
    first.close().await;
    second.close().await;
}
