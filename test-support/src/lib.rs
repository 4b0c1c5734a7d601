//! Real services the workspace's tests start and stop: a signaling server
//! on a loopback port (feature `server`), a `redis-server` on a
//! free loopback port (Debian's redis-server package, or `$REDIS_SERVER_PATH`)
//! or a Redis Cluster of three of them,
//! coturn on a free loopback port, or its command line for other hosts; and
//! the client's side of WebSocket framing, for tests that speak raw frames
//! and for the load generator.

// Test support: a service that cannot start is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[cfg(feature = "server")]
mod server;
#[cfg(feature = "server")]
pub use server::{TestServer, loopback_config};

mod coturn;
mod redis;
mod websocket_frame;

pub use coturn::{Coturn, TurnAuth, coturn_args, turnserver_program};
pub use redis::{
    REDIS_NO_PERSISTENCE, RedisCluster, RedisServer, redis_cli_program, redis_server_program,
};
pub use websocket_frame::{
    OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT, ServerFrameError,
    ServerHeader, client_frame, decode_client_frame, encode_client_frame, parse_server_header,
};
