//! With `--tls-cert` and `--tls-key` the server speaks `wss://` and
//! `https://` itself. The test makes a self-signed certificate, trusts it in
//! the client, and runs a room over TLS.

// Test helpers: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::{Client, TestServer, WAIT, config};
use rustls::pki_types::{CertificateDer, ServerName};
use signaling_server::{Config, Server, ServerError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::{Connector, connect_async_tls_with_config};

/// A temporary directory with a self-signed certificate for `localhost` and
/// 127.0.0.1; removed when dropped.
struct Certificate {
    dir: PathBuf,
    der: CertificateDer<'static>,
}

impl Certificate {
    fn new() -> Self {
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let cert = rcgen::generate_simple_self_signed(names).unwrap();
        let dir = std::env::temp_dir().join(format!(
            "signaling-tls-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cert.pem"), cert.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
        Self {
            der: cert.cert.der().clone(),
            dir,
        }
    }

    fn config(&self) -> Config {
        Config {
            tls_cert: Some(self.dir.join("cert.pem")),
            tls_key: Some(self.dir.join("key.pem")),
            ..config()
        }
    }

    fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }
}

impl Drop for Certificate {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        .into()
}

async fn wss_client(server: &TestServer, cert: &Certificate) -> Client {
    let url = format!("wss://localhost:{}/ws", server.addr.port());
    let connector = Connector::Rustls(cert.client_config());
    let (ws, _) = tokio::time::timeout(
        WAIT,
        connect_async_tls_with_config(url, None, false, Some(connector)),
    )
    .await
    .expect("connect in time")
    .expect("TLS and WebSocket handshakes");
    Client { ws }
}

#[tokio::test]
async fn peers_meet_and_signal_over_wss() {
    let cert = Certificate::new();
    let server = TestServer::start(cert.config());
    let mut a = wss_client(&server, &cert).await;
    let mut b = wss_client(&server, &cert).await;
    let wa = a.join("secure").await;
    let wb = b.join("secure").await;
    assert_eq!(wb.peers, [wa.peer_id]);
    a.expect_peer_joined(wb.peer_id).await;
    // A signal larger than a TLS record crosses intact.
    let big = format!(r#"{{"blob":"{}"}}"#, "x".repeat(20_000));
    b.signal(wa.peer_id, &big).await;
    assert_eq!(a.expect_signal(wb.peer_id).await, big);
    a.signal(wb.peer_id, r#"{"candidate":null}"#).await;
    assert_eq!(b.expect_signal(wa.peer_id).await, r#"{"candidate":null}"#);
    // The server's goodbye reaches TLS clients too.
    drop(b);
    a.expect_peer_left(wb.peer_id).await;
    server.stop().await;
}

/// Settings for bursts: no rate limit in the way, room for a backlog.
fn burst_config(cert: &Certificate) -> Config {
    Config {
        messages_per_second: 1_000_000,
        message_burst: 1_000_000,
        outbound_queue: 100_000,
        outbound_queue_bytes: 64 * 1024 * 1024,
        ..cert.config()
    }
}

#[tokio::test]
async fn a_burst_of_records_read_at_once_is_handled_whole() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let cert = Certificate::new();
    let server = TestServer::start(burst_config(&cert));
    let mut a = wss_client(&server, &cert).await;
    let mut b = wss_client(&server, &cert).await;
    let wa = a.join("burst").await;
    let wb = b.join("burst").await;
    a.expect_peer_joined(wb.peer_id).await;
    // Many small frames written together: TLS records that reach the server
    // in one read, whose decrypted bytes rustls hands out a record at a time.
    for n in 0..300 {
        let signal = format!(
            r#"{{"type":"signal","to":"{}","data":{{"n":{n}}}}}"#,
            wa.peer_id
        );
        b.ws.feed(Message::text(signal)).await.unwrap();
    }
    b.ws.flush().await.unwrap();
    for n in 0..300 {
        assert_eq!(a.expect_signal(wb.peer_id).await, format!(r#"{{"n":{n}}}"#));
    }
    server.stop().await;
}

#[tokio::test]
async fn output_for_a_client_that_reads_late_arrives_whole_and_in_order() {
    let cert = Certificate::new();
    let server = TestServer::start(burst_config(&cert));
    let mut a = wss_client(&server, &cert).await;
    let mut b = wss_client(&server, &cert).await;
    let wa = a.join("backlog").await;
    let wb = b.join("backlog").await;
    a.expect_peer_joined(wb.peer_id).await;
    // 8 MB for a, who reads nothing meanwhile: more than the sockets hold,
    // so the server's writes block with encrypted bytes waiting in rustls.
    let blob = "y".repeat(20_000);
    for n in 0..400 {
        b.signal(wa.peer_id, &format!(r#"{{"n":{n},"blob":"{blob}"}}"#))
            .await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for n in 0..400 {
        assert_eq!(
            a.expect_signal(wb.peer_id).await,
            format!(r#"{{"n":{n},"blob":"{blob}"}}"#)
        );
    }
    server.stop().await;
}

/// `GET path` over HTTPS; the whole response.
async fn https_get(server: &TestServer, cert: &Certificate, path: &str) -> String {
    let connector = tokio_rustls::TlsConnector::from(cert.client_config());
    let exchange = async {
        let tcp = TcpStream::connect(server.addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        tls.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        tls.read_to_string(&mut response).await.unwrap();
        response
    };
    tokio::time::timeout(WAIT, exchange).await.unwrap()
}

#[tokio::test]
async fn https_serves_health_and_plain_tcp_clients_are_refused() {
    let cert = Certificate::new();
    let server = TestServer::start(cert.config());
    let response = https_get(&server, &cert, "/healthz").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("ok\n"), "{response}");

    // Plain HTTP on the TLS port fails the handshake and is counted.
    let plain = tokio::time::timeout(WAIT, async {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = tcp.read_to_end(&mut out).await;
        out
    })
    .await
    .unwrap();
    assert!(!plain.starts_with(b"HTTP/1.1 200"));
    let metrics = https_get(&server, &cert, "/metrics").await;
    let refused = metrics
        .lines()
        .find(|l| l.starts_with(r#"signaling_connections_rejected_total{reason="tls"}"#))
        .unwrap_or_else(|| panic!("no TLS refusals counted:\n{metrics}"));
    assert!(!refused.ends_with(" 0"), "{refused}");
    let mut a = wss_client(&server, &cert).await;
    a.join("after").await;
}

#[tokio::test]
async fn unusable_key_files_are_a_clear_start_up_error() {
    let cert = Certificate::new();
    std::fs::write(cert.dir.join("key.pem"), "not a key").unwrap();
    match Server::bind(cert.config()).await {
        Err(ServerError::Tls(err)) => {
            let text = err.to_string();
            assert!(text.contains("private key"), "{text}");
            assert!(text.contains("key.pem"), "{text}");
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
}
