//! Health, readiness, metrics and plain HTTP on the WebSocket path.

mod common;

use common::{ServerExt, TestServer, config};
use signaling_protocol::{ClientMessage, ErrorCode};

#[tokio::test]
async fn healthz_and_readyz_answer_200() {
    let server = TestServer::start(config());
    let health = server.get("/healthz").await;
    assert_eq!(health.status, 200);
    let ready = server.get("/readyz").await;
    assert_eq!(ready.status, 200);
}

#[tokio::test]
async fn metrics_count_connections_joins_and_signals() {
    let server = TestServer::start(config());
    let ((mut a, wa), (mut b, wb)) = server.pair("m").await;
    b.signal(wa.peer_id, "1").await;
    a.expect_signal(wb.peer_id).await;
    b.send(&ClientMessage::Join {
        room: "m".into(),
        resume: None,
        v: None,
    })
    .await;
    b.expect_error(ErrorCode::AlreadyJoined).await;

    let response = server.get("/metrics").await;
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{:?}",
        response.headers
    );
    let text = response.text();
    for name in [
        "signaling_connections ",
        "signaling_connections_total ",
        "signaling_rooms ",
        "signaling_peers ",
        "signaling_signals_relayed_total ",
        "signaling_joins_total ",
        "signaling_errors_total{code=\"already_joined\"} ",
    ] {
        let value = text
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {name:?} in\n{text}"));
        assert!(value >= 1.0, "{name} = {value}");
    }
}

#[tokio::test]
async fn plain_get_on_ws_path_is_a_client_error() {
    let server = TestServer::start(config());
    let response = server.get("/ws").await;
    assert!(
        (400..500).contains(&response.status),
        "status {}",
        response.status
    );
}
