//! Shared helpers: settings for a real server on a loopback port (started by
//! `test-support`), and a WebSocket client that speaks the protocol. Every
//! wait is bounded.

#![allow(dead_code)] // Each test file uses a different subset.
// Test helpers: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use signaling_protocol::{ClientMessage, ErrorCode, IceServer, Limits, PeerId, ServerMessage};
use signaling_server::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// The longest any single expected event may take.
pub const WAIT: Duration = Duration::from_secs(5);

/// Settings with short timeouts so tests run fast.
pub fn config() -> Config {
    Config {
        listen: "127.0.0.1:0".into(),
        heartbeat_interval: Duration::from_millis(200),
        idle_timeout: Duration::from_secs(3),
        resume_grace: Duration::from_secs(2),
        shutdown_timeout: Duration::from_secs(3),
        reconnect_spread: Duration::from_millis(500),
        ..Config::default()
    }
}

pub use test_support::TestServer;

/// What the tests ask of a running server besides starting and stopping it.
pub(crate) trait ServerExt {
    /// The WebSocket URL.
    fn ws_url(&self) -> String;
    /// A client connected to it.
    async fn connect(&self) -> Client;
    /// Two clients joined to `room`, the second announced to the first.
    async fn pair(&self, room: &str) -> ((Client, Welcome), (Client, Welcome));
    /// An HTTP GET of `path`.
    async fn get(&self, path: &str) -> HttpResponse;
}

impl ServerExt for TestServer {
    fn ws_url(&self) -> String {
        self.url()
    }

    async fn connect(&self) -> Client {
        Client::connect(&self.url()).await
    }

    async fn pair(&self, room: &str) -> ((Client, Welcome), (Client, Welcome)) {
        let mut a = self.connect().await;
        let wa = a.join(room).await;
        let mut b = self.connect().await;
        let wb = b.join(room).await;
        a.expect_peer_joined(wb.peer_id).await;
        ((a, wa), (b, wb))
    }

    async fn get(&self, path: &str) -> HttpResponse {
        http_get(self.addr, path, &[]).await
    }
}

/// What a client learns from `welcome`.
#[derive(Debug, Clone)]
pub struct Welcome {
    pub peer_id: PeerId,
    pub room: String,
    pub peers: Vec<PeerId>,
    pub ice_servers: Vec<IceServer>,
    pub resume_token: String,
    pub resumed: bool,
    pub limits: Limits,
}

/// What a client received: a protocol message, or the end of the socket.
#[derive(Debug)]
pub enum Received {
    Message(ServerMessage),
    Closed(Option<CloseFrame>),
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    pub async fn connect(url: &str) -> Self {
        let (ws, _) = tokio::time::timeout(WAIT, connect_async(url))
            .await
            .expect("connect in time")
            .expect("WebSocket handshake");
        Self { ws }
    }

    /// Connects from a chosen loopback source address (any 127.0.0.0/8
    /// address works without setup), sending extra request headers.
    pub async fn connect_from(
        server: SocketAddr,
        source: std::net::IpAddr,
        headers: &[(&str, &str)],
    ) -> Self {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://{server}/ws").into_client_request().unwrap();
        for (name, value) in headers {
            request.headers_mut().append(
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                    .unwrap(),
                value.parse().unwrap(),
            );
        }
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(source, 0)).unwrap();
        Self::connect_socket(server, socket, request).await
    }

    /// Connects with a socket receive buffer of about `bytes`, so that a
    /// client that does not read stops taking frames after that much rather
    /// than after what the kernel's autotuning allows (`tcp_rmem` may reach
    /// 32 MiB, more than a test sends).
    pub async fn connect_with_receive_buffer(server: SocketAddr, bytes: u32) -> Self {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let request = format!("ws://{server}/ws").into_client_request().unwrap();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(bytes).unwrap();
        Self::connect_socket(server, socket, request).await
    }

    async fn connect_socket(
        server: SocketAddr,
        socket: tokio::net::TcpSocket,
        request: tokio_tungstenite::tungstenite::handshake::client::Request,
    ) -> Self {
        let handshake = async {
            let stream = socket.connect(server).await.expect("TCP connect");
            tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)).await
        };
        let (ws, _) = tokio::time::timeout(WAIT, handshake)
            .await
            .expect("connect in time")
            .expect("WebSocket handshake");
        Self { ws }
    }

    pub async fn send_text(&mut self, text: impl Into<String>) {
        tokio::time::timeout(WAIT, self.ws.send(Message::text(text.into())))
            .await
            .expect("send in time")
            .expect("send");
    }

    pub async fn send(&mut self, message: &ClientMessage) {
        self.send_text(message.to_json()).await;
    }

    /// Next protocol message or close; control frames are skipped.
    pub async fn next(&mut self) -> Received {
        self.next_within(WAIT)
            .await
            .expect("a message arrives in time")
    }

    pub async fn next_within(&mut self, wait: Duration) -> Option<Received> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()?;
            match frame {
                Some(Ok(Message::Text(text))) => {
                    let message = ServerMessage::parse(text.as_str())
                        .unwrap_or_else(|err| panic!("server sent bad frame {text:?}: {err}"));
                    return Some(Received::Message(message));
                }
                Some(Ok(Message::Close(frame))) => return Some(Received::Closed(frame)),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(other)) => panic!("unexpected frame {other:?}"),
                Some(Err(_)) | None => return Some(Received::Closed(None)),
            }
        }
    }

    /// Next text frame exactly as sent.
    pub async fn next_text(&mut self) -> String {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame arrives in time");
            match frame {
                Some(Ok(Message::Text(text))) => return text.as_str().to_owned(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    pub async fn recv(&mut self) -> ServerMessage {
        match self.next().await {
            Received::Message(message) => message,
            Received::Closed(frame) => panic!("connection closed: {frame:?}"),
        }
    }

    pub async fn join(&mut self, room: &str) -> Welcome {
        self.join_with(room, None).await
    }

    pub async fn join_with(&mut self, room: &str, resume: Option<&str>) -> Welcome {
        self.send(&ClientMessage::Join {
            room: room.into(),
            resume: resume.map(str::to_owned),
            v: None,
        })
        .await;
        self.expect_welcome().await
    }

    pub async fn expect_welcome(&mut self) -> Welcome {
        match self.recv().await {
            ServerMessage::Welcome {
                peer_id,
                room,
                peers,
                ice_servers,
                resume_token,
                resumed,
                limits,
            } => Welcome {
                peer_id,
                room,
                peers,
                ice_servers,
                resume_token,
                resumed,
                limits,
            },
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    pub async fn signal(&mut self, to: PeerId, data: &str) {
        self.send_text(format!(r#"{{"type":"signal","to":"{to}","data":{data}}}"#))
            .await;
    }

    /// Expects a signal from `from`; returns its `data` as raw JSON text.
    pub async fn expect_signal(&mut self, from: PeerId) -> String {
        match self.recv().await {
            ServerMessage::Signal { from: got, data } => {
                assert_eq!(got, from, "signal sender");
                data.get().to_owned()
            }
            other => panic!("expected signal from {from}, got {other:?}"),
        }
    }

    pub async fn expect_peer_joined(&mut self, peer: PeerId) {
        match self.recv().await {
            ServerMessage::PeerJoined { peer_id } => assert_eq!(peer_id, peer),
            other => panic!("expected peer_joined {peer}, got {other:?}"),
        }
    }

    pub async fn expect_peer_left(&mut self, peer: PeerId) {
        match self.recv().await {
            ServerMessage::PeerLeft { peer_id } => assert_eq!(peer_id, peer),
            other => panic!("expected peer_left {peer}, got {other:?}"),
        }
    }

    /// Expects `error {code}`; returns the message and peer id.
    pub async fn expect_error(&mut self, code: ErrorCode) -> (String, Option<PeerId>) {
        match self.recv().await {
            ServerMessage::Error {
                code: got,
                message,
                peer_id,
            } => {
                assert_eq!(got, code, "error code (message: {message})");
                assert!(!message.is_empty(), "error has a message");
                (message, peer_id)
            }
            other => panic!("expected error {code}, got {other:?}"),
        }
    }

    /// Sends `ping` and expects `pong`: the connection still works.
    pub async fn assert_usable(&mut self) {
        self.send(&ClientMessage::Ping).await;
        match self.recv().await {
            ServerMessage::Pong => {}
            other => panic!("expected pong, got {other:?}"),
        }
    }

    /// Nothing but control frames arrives for `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Some(received) = self.next_within(wait).await {
            panic!("expected silence, got {received:?}");
        }
    }

    /// The server closes the connection (close frame or end of stream)
    /// within the wait, after any number of protocol messages; returns them.
    /// Reads until the server closes the connection (at most 20 s between
    /// messages): the signals that arrived, and whether `slow_consumer` did.
    pub async fn signals_until_closed(&mut self) -> (usize, bool) {
        let mut signals = 0;
        let mut slow_consumer = false;
        loop {
            match self.next_within(Duration::from_secs(20)).await {
                Some(Received::Message(ServerMessage::Signal { .. })) => signals += 1,
                Some(Received::Message(ServerMessage::Error {
                    code: ErrorCode::SlowConsumer,
                    ..
                })) => slow_consumer = true,
                Some(Received::Message(_)) => {}
                Some(Received::Closed(_)) => return (signals, slow_consumer),
                None => panic!("the server never closed the connection"),
            }
        }
    }

    pub async fn expect_closed(&mut self) -> (Vec<ServerMessage>, Option<CloseFrame>) {
        let mut messages = Vec::new();
        loop {
            match self.next().await {
                Received::Message(message) => messages.push(message),
                Received::Closed(frame) => return (messages, frame),
            }
        }
    }
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A bare-bones `GET` (Connection: close), enough for health, metrics and
/// static files.
pub async fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read");
        raw
    };
    let raw = tokio::time::timeout(WAIT, exchange)
        .await
        .expect("HTTP answer in time");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..line_end]).trim(), 16)
            .expect("chunk size");
        if size == 0 {
            return out;
        }
        let start = line_end + 2;
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
}

/// Resident memory of this process in KiB (Linux).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .expect("VmRSS in /proc/self/status")
}
