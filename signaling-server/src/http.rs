//! HTTP routes: the WebSocket endpoint, health, metrics and the web client.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::RustEmbed;
use tower_http::services::ServeDir;

use crate::connection;
use crate::server::Shared;

/// Bytes the WebSocket library reads per call, and the buffer each
/// connection keeps for it. Small, because every idle connection holds one
/// (the library's default of 128 KiB is what makes idle connections
/// expensive elsewhere); it grows on demand for a larger frame.
const READ_BUFFER_BYTES: usize = 1024;

/// Bytes of encoded frames the WebSocket library collects before writing
/// during a batch. Every batch ends with a flush anyway.
const WRITE_BUFFER_BYTES: usize = 16 * 1024;

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
pub(crate) fn router(shared: Arc<Shared>) -> Router {
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

/// `GET /ws`: upgrades to a WebSocket and hands it to a connection task.
async fn upgrade(State(shared): State<Arc<Shared>>, ws: WebSocketUpgrade) -> Response {
    if shared.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    // Frames up to twice the protocol limit are read whole and refused with
    // `frame_too_large`, keeping the connection; larger ones break the
    // stream, and the connection is closed.
    let hard_cap = shared.config.max_frame_bytes.saturating_mul(2);
    let ws = ws
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(WRITE_BUFFER_BYTES + 2 * hard_cap)
        .max_message_size(hard_cap)
        .max_frame_size(hard_cap);
    let permit = shared.connections.clone().try_acquire_owned().ok();
    let tracker = shared.tracker.clone();
    ws.on_upgrade(move |socket| {
        let fut = async move {
            match permit {
                Some(permit) => connection::run(socket, shared, permit).await,
                None => connection::refuse(socket, shared).await,
            }
        };
        tracker.track_future(fut)
    })
}

/// `GET /readyz`: 200 while accepting connections, 503 once shutting down.
async fn ready(State(shared): State<Arc<Shared>>) -> Response {
    if shared.shutdown.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
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
