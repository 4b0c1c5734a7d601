//! Joining fails with errors a person understands.

mod common;

use common::*;
use peer_client::{Error, Session};

#[tokio::test]
async fn an_unreachable_server_is_named() {
    // A port nothing listens on: bind one, note it, close it.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("ws://{addr}/ws");
    let err = match Session::connect(config(&url, "r")).await {
        Err(err) => err,
        Ok(_) => panic!("connected to nothing"),
    };
    assert!(matches!(err, Error::ServerUnreachable { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("cannot reach the signaling server") && text.contains(&addr.to_string()),
        "{text}"
    );
}

#[tokio::test]
async fn a_malformed_url_is_an_invalid_url() {
    let err = match Session::connect(config("http//nope", "r")).await {
        Err(err) => err,
        Ok(_) => panic!("connected to nothing"),
    };
    assert!(matches!(err, Error::InvalidUrl { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_room_says_so_with_the_servers_message() {
    let server = TestServer::loopback_with(|c| c.max_peers_per_room = 1);
    let _first = join(&server.url(), "tiny").await;
    let err = match Session::connect(config(&server.url(), "tiny")).await {
        Err(err) => err,
        Ok(_) => panic!("joined a full room"),
    };
    match &err {
        Error::RoomFull { room, message } => {
            assert_eq!(room, "tiny");
            assert!(!message.is_empty());
        }
        other => panic!("expected RoomFull, got {other:?}"),
    }
    assert!(err.to_string().contains("is full"), "{err}");
}
