//! HTTP routes: the WebSocket endpoint, health, metrics and the web client.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use rust_embed::RustEmbed;
use signaling_protocol::ErrorCode;

use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_rustls::server::TlsStream;
use tower_http::services::ServeDir;
use tracing::{debug, info, warn};

use crate::address_table::{AddressRefused, OpenSlot};
use crate::auth;
use crate::connection;
use crate::metrics::Refusal;
use crate::socket::{Socket, TlsSocket};
use crate::state::ServerState;
use crate::websocket;

/// The web client, built into the binary from `web/` (browser tests and
/// npm modules excluded). Debug builds read the files from disk.
#[derive(RustEmbed)]
#[folder = "../web/"]
#[exclude = "tests/*"]
#[exclude = "node_modules/*"]
#[exclude = "*/node_modules/*"]
#[exclude = "package.json"]
#[exclude = "package-lock.json"]
struct WebAssets;

/// Builds the router.
pub(crate) fn router(shared: Arc<ServerState>) -> Router {
    let router = Router::new()
        .route("/ws", get(upgrade))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics));
    let router = match &shared.config.web_dir {
        Some(dir) => router.fallback_service(ServeDir::new(dir)),
        None => router.fallback(embedded),
    };
    router.with_state(shared)
}

/// `GET /ws`: checks the WebSocket opening handshake (RFC 6455 §4.2),
/// answers `101 Switching Protocols`, and hands the raw TCP stream to a
/// connection task.
async fn upgrade(
    State(shared): State<Arc<ServerState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
) -> Response {
    if shared.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    let accept = match check_handshake(request.headers(), &shared) {
        Ok(accept) => accept,
        Err(refusal) => return *refusal,
    };
    let access = shared.config.auth_secret.as_ref().map(|secret| {
        match auth::token_from_query(request.uri().query()) {
            Some(token) => auth::verify(secret.as_bytes(), token, auth::unix_now()),
            None => Err(auth::TokenError::Missing),
        }
    });
    let Some(on_upgrade) = request.extensions_mut().remove::<OnUpgrade>() else {
        return (
            StatusCode::UPGRADE_REQUIRED,
            "this connection cannot be upgraded (HTTP/1.1 is required)\n",
        )
            .into_response();
    };
    let address = shared.addresses.open(peer.ip(), request.headers());
    let permit = shared.connections.clone().try_acquire_owned().ok();
    let tracker = shared.tracker.clone();
    tracker.spawn(serve_upgraded(on_upgrade, shared, access, address, permit));
    (
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::UPGRADE, HeaderValue::from_static("websocket")),
            (header::CONNECTION, HeaderValue::from_static("Upgrade")),
        ],
        [(header::SEC_WEBSOCKET_ACCEPT, accept)],
    )
        .into_response()
}

/// Checks the WebSocket opening handshake (RFC 6455 §4.2) and the origin;
/// returns the `Sec-WebSocket-Accept` value, or the response refusing it.
fn check_handshake(headers: &HeaderMap, shared: &ServerState) -> Result<String, Box<Response>> {
    if !header_has_token(headers, header::UPGRADE, "websocket")
        || !header_has_token(headers, header::CONNECTION, "upgrade")
    {
        return Err(Box::new(
            (
                StatusCode::UPGRADE_REQUIRED,
                [(header::UPGRADE, HeaderValue::from_static("websocket"))],
                "this endpoint speaks WebSocket only: connect with a WebSocket client\n",
            )
                .into_response(),
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|version| version.as_bytes() != b"13")
    {
        return Err(Box::new(
            (
                StatusCode::UPGRADE_REQUIRED,
                [(
                    header::SEC_WEBSOCKET_VERSION,
                    HeaderValue::from_static("13"),
                )],
                "unsupported WebSocket version; use version 13\n",
            )
                .into_response(),
        ));
    }
    let Some(key) = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .filter(|key| websocket::valid_key(key.as_bytes()))
    else {
        return Err(Box::new(
            (
                StatusCode::BAD_REQUEST,
                "missing or malformed Sec-WebSocket-Key\n",
            )
                .into_response(),
        ));
    };
    if let Some(origin) = headers.get(header::ORIGIN)
        && !origin_allowed(&shared.config.allowed_origins, origin)
    {
        shared.metrics.refused(Refusal::Origin);
        info!(origin = ?origin, "WebSocket upgrade refused: origin not allowed");
        return Err(Box::new(
            (
                StatusCode::FORBIDDEN,
                "this origin may not connect; see the server's --allowed-origin\n",
            )
                .into_response(),
        ));
    }
    Ok(websocket::accept_key(key.as_bytes()))
}

/// Serves an upgraded connection: waits for the upgrade, then refuses it
/// (bad token, over a limit) or runs it.
async fn serve_upgraded(
    on_upgrade: OnUpgrade,
    shared: Arc<ServerState>,
    access: Option<Result<auth::Claims, auth::TokenError>>,
    address: Result<OpenSlot, AddressRefused>,
    permit: Option<OwnedSemaphorePermit>,
) {
    let upgraded = match on_upgrade.await {
        Ok(upgraded) => upgraded,
        Err(err) => {
            debug!(%err, "WebSocket upgrade failed");
            return;
        }
    };
    let Some((socket, leftover)) = unwrap_upgraded(upgraded) else {
        return;
    };
    let (claims, slots) = match (access.transpose(), address, permit) {
        (Err(err), _, _) => {
            shared.metrics.refused(Refusal::Unauthorized);
            info!(reason = err.reason(), "connection refused: token refused");
            let message = format!("{err}; closing");
            return connection::refuse(socket, shared, ErrorCode::Unauthorized, message).await;
        }
        (Ok(_), Err(refused), _) => {
            // Counted and logged by the address table.
            let message = format!("{}; closing", shared.addresses.explain(refused));
            let code = ErrorCode::TooManyConnections;
            return connection::refuse(socket, shared, code, message).await;
        }
        (Ok(_), Ok(_), None) => {
            shared.metrics.refused(Refusal::ServerFull);
            let limit = shared.config.max_connections;
            info!(limit, "connection refused: the server is full");
            let message = format!(
                "the server holds its limit of {limit} connections; try again later or another server"
            );
            return connection::refuse(socket, shared, ErrorCode::ServerFull, message).await;
        }
        (Ok(claims), Ok(address), Some(permit)) => (claims, (permit, address)),
    };
    connection::run(socket, leftover, shared, slots, claims).await;
}

/// The socket under an upgraded connection, and what the HTTP layer read
/// past the handshake (usually nothing).
fn unwrap_upgraded(upgraded: Upgraded) -> Option<(Socket, Vec<u8>)> {
    // Copy the leftover bytes and let go of the HTTP read buffer, which
    // would otherwise stay allocated for the life of the connection.
    let upgraded = match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => {
            let leftover = parts.read_buf.to_vec();
            return Some((Socket::Tcp(parts.io.into_inner()), leftover));
        }
        Err(upgraded) => upgraded,
    };
    let Ok(parts) = upgraded.downcast::<TokioIo<TlsStream<TcpStream>>>() else {
        warn!("upgraded connection is neither TCP nor TLS over TCP; dropping it");
        return None;
    };
    let leftover = parts.read_buf.to_vec();
    let tls = TlsSocket::new(parts.io.into_inner());
    Some((Socket::Tls(Box::new(tls)), leftover))
}

/// Whether `origin` is allowed: any when the list is empty, else an exact
/// (ASCII case-insensitive) match.
fn origin_allowed(allowed: &[String], origin: &HeaderValue) -> bool {
    allowed.is_empty()
        || origin.to_str().is_ok_and(|origin| {
            allowed
                .iter()
                .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin))
        })
}

/// Whether a comma-separated header holds `token` (case-insensitive).
fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value.to_str().is_ok_and(|value| {
            value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        })
    })
}

/// `GET /readyz`: 200 while accepting connections, 503 once shutdown was
/// requested (during the drain delay the server still accepts) and, with
/// `--redis`, while Redis does not answer.
async fn ready(State(shared): State<Arc<ServerState>>) -> Response {
    if shared.draining.load(std::sync::atomic::Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    } else if !shared.broker.ready() {
        (StatusCode::SERVICE_UNAVAILABLE, "Redis unreachable\n").into_response()
    } else {
        "ready\n".into_response()
    }
}

/// `GET /metrics`: Prometheus text format.
async fn metrics() -> Response {
    match crate::metrics::prometheus() {
        Some(handle) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            )],
            handle.render(),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "metrics go to a recorder installed by the embedding program\n",
        )
            .into_response(),
    }
}

/// Serves the embedded web client: `index.html` for `/` and for paths that
/// end in `/`, with its content type and an ETag for cheap revalidation.
async fn embedded(uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path().trim_start_matches('/');
    let path = if path.is_empty() || path.ends_with('/') {
        format!("{path}index.html")
    } else {
        path.to_owned()
    };
    let Some(file) = WebAssets::get(&path) else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let etag = format!(
        "\"{}\"",
        file.metadata.sha256_hash()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|value| value.as_bytes() == etag.as_bytes())
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let content_type = HeaderValue::from_str(file.metadata.mimetype())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::ETAG, etag)
        .body(Body::from(file.data))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
