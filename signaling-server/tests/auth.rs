//! With `--auth-secret`, a client needs a signed, unexpired token for the
//! room it joins; missing, expired, forged and wrong-room tokens are refused
//! with `unauthorized` and a message that says which. `--allowed-origin`
//! refuses WebSocket upgrades from other pages with 403.

// Test helpers: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Client, ServerExt, TestServer, config, http_get};
use signaling_protocol::{ErrorCode, ServerMessage};
use signaling_server::Config;
use signaling_server::auth::{self, Claims};

const SECRET: &str = "a test secret that is long enough";

async fn server() -> TestServer {
    TestServer::start(Config {
        auth_secret: Some(SECRET.parse().unwrap()),
        allowed_origins: vec!["https://chat.example.org".into()],
        ..config()
    })
}

fn token(room: &str) -> String {
    auth::mint(SECRET.as_bytes(), room, Duration::from_secs(60))
}

/// Connects with `query` and expects the connection to be refused with
/// `unauthorized`; returns the message.
async fn refused(server: &TestServer, query: &str) -> String {
    let mut client = Client::connect(&format!("{}{query}", server.ws_url())).await;
    let (messages, close) = client.expect_closed().await;
    let message = match &messages[..] {
        [
            ServerMessage::Error {
                code: ErrorCode::Unauthorized,
                message,
                ..
            },
        ] => message.clone(),
        other => panic!("expected unauthorized, got {other:?}"),
    };
    assert_eq!(close.map(|c| u16::from(c.code)), Some(1008));
    message
}

#[tokio::test]
async fn a_valid_token_joins_its_room_only() {
    let server = server().await;
    let url = format!("{}?token={}", server.ws_url(), token("lobby"));
    let mut a = Client::connect(&url).await;
    let welcome = a.join("lobby").await;
    assert_eq!(welcome.room, "lobby");

    // The same token does not open another room; the connection stays usable.
    let mut b = Client::connect(&url).await;
    b.send_text(r#"{"type":"join","room":"vault"}"#).await;
    let (message, _) = b.expect_error(ErrorCode::Unauthorized).await;
    assert!(
        message.contains(r#"for room "lobby", not "vault""#),
        "{message}"
    );
    let welcome_b = b.join("lobby").await;
    a.expect_peer_joined(welcome_b.peer_id).await;
}

#[tokio::test]
async fn missing_expired_forged_and_malformed_tokens_are_refused_with_reasons() {
    let server = server().await;

    let missing = refused(&server, "").await;
    assert!(missing.contains("requires a token"), "{missing}");
    let empty = refused(&server, "?token=").await;
    assert!(empty.contains("requires a token"), "{empty}");

    let expired = auth::mint_claims(
        SECRET.as_bytes(),
        &Claims {
            room: "lobby".into(),
            exp: auth::unix_now() - 30,
        },
    );
    let expired = refused(&server, &format!("?token={expired}")).await;
    assert!(expired.contains("expired"), "{expired}");

    let forged = auth::mint(
        b"not the server's secret at all",
        "lobby",
        Duration::from_secs(60),
    );
    let forged = refused(&server, &format!("?token={forged}")).await;
    assert!(forged.contains("signature is invalid"), "{forged}");

    let malformed = refused(&server, "?token=garbage").await;
    assert!(malformed.contains("malformed"), "{malformed}");

    let metrics = server.get("/metrics").await.text();
    let line = metrics
        .lines()
        .find(|l| l.starts_with(r#"signaling_connections_rejected_total{reason="unauthorized"}"#))
        .unwrap_or_else(|| panic!("no unauthorized refusals counted:\n{metrics}"));
    let count: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 5, "{line}");
}

#[tokio::test]
async fn a_token_that_expires_before_join_is_refused_at_join() {
    let server = server().await;
    let soon = auth::mint_claims(
        SECRET.as_bytes(),
        &Claims {
            room: "lobby".into(),
            exp: auth::unix_now() + 1,
        },
    );
    let mut client = Client::connect(&format!("{}?token={soon}", server.ws_url())).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    client.send_text(r#"{"type":"join","room":"lobby"}"#).await;
    let (message, _) = client.expect_error(ErrorCode::Unauthorized).await;
    assert!(message.contains("expired"), "{message}");
}

#[tokio::test]
async fn upgrades_from_other_origins_are_forbidden() {
    let server = server().await;
    let path = format!("/ws?token={}", token("lobby"));
    let upgrade = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    let mut headers = upgrade.to_vec();
    headers.push(("Origin", "https://evil.example.net"));
    let response = http_get(server.addr, &path, &headers).await;
    assert_eq!(response.status, 403, "{}", response.text());

    let mut headers = upgrade.to_vec();
    headers.push(("Origin", "https://chat.example.org"));
    let response = http_get(server.addr, &path, &headers).await;
    assert_eq!(response.status, 101);

    let metrics = server.get("/metrics").await.text();
    assert!(
        metrics.lines().any(|l| l
            .starts_with(r#"signaling_connections_rejected_total{reason="origin"}"#)
            && !l.ends_with(" 0")),
        "{metrics}"
    );
}

#[tokio::test]
async fn without_a_secret_no_token_is_needed() {
    let server = TestServer::start(config());
    let mut client = server.connect().await;
    client.join("open").await;
}

#[tokio::test]
async fn the_token_subcommand_mints_tokens_the_server_accepts() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_signaling-server"))
        .args(["token", "--room", "minted", "--ttl", "5m"])
        .env("SIGNALING_AUTH_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout).unwrap();
    let token = token.trim();
    let claims = auth::verify(SECRET.as_bytes(), token, auth::unix_now()).unwrap();
    assert_eq!(claims.room, "minted");
    assert!(claims.exp <= auth::unix_now() + 300);

    let server = server().await;
    let mut client = Client::connect(&format!("{}?token={token}", server.ws_url())).await;
    assert_eq!(client.join("minted").await.room, "minted");

    // Without a secret the subcommand says what is missing.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_signaling-server"))
        .args(["token", "--room", "minted"])
        .env_remove("SIGNALING_AUTH_SECRET")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--auth-secret"));
}
