//! WebSocket signaling server for WebRTC peers.
//!
//! Clients connect to `/ws`, `join` a room, and relay `signal`s (offers,
//! answers, ICE candidates: opaque JSON) to other peers of that room. The
//! wire protocol lives in the `signaling-protocol` crate and is documented in
//! `docs/protocol.md`.
//!
//! The pieces, from the outside in:
//! - [`server`]: [`Server::bind`] and [`Server::run`] — listener, graceful
//!   shutdown, runtime choice.
//! - `http`: routes (`/ws`, `/healthz`, `/readyz`, `/metrics`, the web client).
//! - `connection`: one task per WebSocket — size check, rate limit, parse,
//!   dispatch, batched writes, heartbeat, idle timeout.
//! - [`websocket`]: the RFC 6455 pieces (handshake key, frames, masking) and
//!   the pooled I/O buffers that let idle connections hold none;
//!   [`message_reader`]: frames into messages with the size caps, without I/O.
//! - [`broker`]: what connections talk to: rooms in this process, or with
//!   `--redis` shared by several instances through Redis.
//! - [`auth`]: room tokens (`/ws?token=...`); [`ice`]: STUN and TURN servers
//!   with short-lived TURN credentials; [`tls`]: `wss://` and `https://`.
//! - [`registry`]: rooms, peers, resume tokens and expiry as a synchronous
//!   state machine without sockets or clocks.
//! - [`address_limits`]: connections per client address (HTTP phase, open
//!   WebSockets, rate of new ones) as a state machine; [`client_address`]:
//!   which address a connection counts under, behind trusted proxies too.
//! - [`outbox`]: the bounded per-connection queue that keeps a slow client
//!   from slowing anyone else.
//!
//! ```no_run
//! # async fn example() -> Result<(), signaling_server::ServerError> {
//! use signaling_server::{Config, Server};
//!
//! let config = Config { listen: "127.0.0.1:0".into(), ..Config::default() };
//! let server = Server::bind(config).await?;
//! let addr = server.local_addr();
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let running = tokio::spawn(server.run(async move { let _ = stopped.await; }));
//! // ... talk to ws://{addr}/ws ...
//! let _ = stop.send(());
//! running.await.ok();
//! # Ok(())
//! # }
//! ```

pub mod address_limits;
mod address_table;
pub mod auth;
pub mod broker;
pub mod client_address;
pub mod config;
mod connection;
mod http;
pub mod ice;
pub mod message_reader;
pub mod metrics;
pub mod outbox;
pub mod rate_limit;
pub mod registry;
pub mod secret;
pub mod server;
pub mod shared_text;
mod socket;
mod state;
pub mod tls;
pub mod websocket;

pub use config::Config;
pub use server::{Server, ServerError, runtime, shutdown_signal};
