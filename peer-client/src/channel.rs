//! Public handle of an open data channel.

use bytes::BytesMut;
use signaling_protocol::PeerId;

use crate::engine::RtcChannel;
use crate::error::Error;
use crate::payload::Payload;

/// A reliable, ordered data channel to one peer. Clones share the channel.
#[derive(Clone, Debug)]
pub struct Channel {
    peer: PeerId,
    inner: RtcChannel,
}

impl Channel {
    pub(crate) fn new(peer: PeerId, inner: RtcChannel) -> Self {
        Self { peer, inner }
    }

    /// The peer at the other end.
    pub fn peer(&self) -> PeerId {
        self.peer
    }

    /// The channel's label.
    pub fn label(&self) -> &str {
        self.inner.label()
    }

    /// Largest message this channel carries, in bytes.
    pub fn max_message_bytes(&self) -> usize {
        self.inner.max_message_bytes()
    }

    /// Sends a message. Waits while the channel holds more unacknowledged
    /// bytes than its bound (`TransportOptions::send_buffer_bytes`), so a fast
    /// sender cannot queue unbounded memory.
    pub async fn send(&self, payload: Payload) -> Result<(), Error> {
        self.inner.send(&payload).await
    }

    /// Sends binary data from a buffer the channel may take over without copying.
    pub async fn send_bytes(&self, data: BytesMut) -> Result<(), Error> {
        self.inner.send_bytes(data).await
    }

    /// Bytes sent on this channel and not yet acknowledged by the peer.
    pub async fn queued_bytes(&self) -> usize {
        self.inner.queued_bytes().await
    }

    /// Closes the channel (the peer sees it close too).
    pub async fn close(&self) {
        self.inner.close().await
    }
}
