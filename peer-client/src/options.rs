//! Settings of the WebRTC transport. Defaults are tuned for speed (see
//! `docs/webrtc-engine.md`); most programs only change the bind addresses.

/// Whether ICE uses multicast DNS (`.local` host names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MdnsMode {
    /// No multicast at all: `.local` candidates from the other side are
    /// ignored (a browser that hides its address is still reached through the
    /// peer-reflexive candidate its connectivity checks reveal).
    #[default]
    Disabled,
    /// Resolve the other side's `.local` candidates with multicast queries.
    Query,
    /// Resolve `.local` candidates and hide our own addresses behind one.
    QueryAndGather,
}

/// Default size asked of the kernel for each UDP socket's receive and send
/// buffers. The kernel caps it at `net.core.rmem_max` / `wmem_max`.
pub const DEFAULT_SOCKET_BUFFER_BYTES: usize = 4 * 1024 * 1024;
/// Default bound on the bytes a data channel holds unacknowledged on the
/// sending side; a send waits while the channel is above it. It should not
/// be below the peer's receive window (at most 4 MiB), or it caps the rate.
pub const DEFAULT_SEND_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// How peer connections are set up.
#[derive(Debug, Clone)]
pub struct TransportOptions {
    /// Local UDP addresses to bind. `0.0.0.0:0` means one socket per
    /// non-loopback IPv4 interface; `127.0.0.1:0` a loopback socket.
    pub bind_addrs: Vec<String>,
    /// Receive/send buffer size asked for each UDP socket, in bytes.
    pub socket_buffer_bytes: usize,
    /// Per-channel bound on unacknowledged sent bytes.
    pub send_buffer_bytes: usize,
    /// Multicast DNS behaviour.
    pub mdns: MdnsMode,
    /// Use TURN relays only (for testing relayed links).
    pub relay_only: bool,
}

impl Default for TransportOptions {
    fn default() -> Self {
        Self {
            bind_addrs: vec!["0.0.0.0:0".into(), "127.0.0.1:0".into()],
            socket_buffer_bytes: DEFAULT_SOCKET_BUFFER_BYTES,
            send_buffer_bytes: DEFAULT_SEND_BUFFER_BYTES,
            mdns: MdnsMode::Disabled,
            relay_only: false,
        }
    }
}

impl TransportOptions {
    /// Options that bind the loopback interface only (tests, benchmarks).
    pub fn loopback() -> Self {
        Self {
            bind_addrs: vec!["127.0.0.1:0".into()],
            ..Self::default()
        }
    }
}

/// A data channel both sides create themselves under the same stream id
/// (negotiated out of band, RFC 8832 §6 and the W3C `negotiated` attribute):
/// it opens as soon as the SCTP association is up, a round trip before an
/// in-band channel whose opener waits for the peer's DCEP acknowledgement.
/// Both sides must list it, with the same id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedChannel {
    /// The label each side reports it under (not sent on the wire).
    pub label: String,
    /// The SCTP stream id both sides agreed on.
    pub id: u16,
}
