//! The callbacks of the `webrtc` driver, turned into events for the
//! connection's owner.

use std::sync::{Arc, OnceLock};

use tokio::sync::mpsc;
use webrtc::data_channel::DataChannel;
use webrtc::peer_connection::{
    PeerConnectionEventHandler, RTCIceConnectionState, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState,
};

use super::RtcEvent;
use super::channel::RtcChannel;
use crate::link_state::LinkState;
use crate::signal::IceCandidate;

/// Receives the callbacks of the `webrtc` driver. Callbacks run inside the
/// driver's loop, so they only queue an event and never wait on anything.
pub(super) struct Handler {
    pub(super) events: mpsc::Sender<RtcEvent>,
    /// A channel of this connection, used to wake the driver (see `pump_until_open`).
    pub(super) waker: Arc<OnceLock<Arc<dyn DataChannel>>>,
    pub(super) mid: Arc<std::sync::Mutex<String>>,
    pub(super) max_message_bytes: usize,
}

impl Handler {
    /// Wakes the driver so that packets the current event queued (the DTLS
    /// ClientHello on ICE connected, the SCTP INIT on DTLS connected) leave now
    /// rather than at the next 200 ms tick. From a task: the driver is busy
    /// running this callback.
    fn wake_driver(&self) {
        if let Some(dc) = self.waker.get() {
            let dc = Arc::clone(dc);
            tokio::spawn(async move {
                let _ = dc.set_buffered_amount_low_threshold(0).await;
            });
        }
    }

    fn emit(&self, event: RtcEvent) {
        emit(&self.events, event);
    }
}

/// Queues an event for the connection's owner without waiting.
pub(super) fn emit(events: &mpsc::Sender<RtcEvent>, event: RtcEvent) {
    match events.try_send(event) {
        Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
        Err(mpsc::error::TrySendError::Full(event)) => {
            // The owner is behind; hand the event to a task rather than stall the driver.
            let events = events.clone();
            tokio::spawn(async move {
                let _ = events.send(event).await;
            });
        }
    }
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(init) => {
                let mid = self
                    .mid
                    .lock()
                    .map(|m| m.clone())
                    .unwrap_or_else(|_| "0".into());
                self.emit(RtcEvent::LocalCandidate(Some(IceCandidate {
                    candidate: init.candidate,
                    sdp_mid: Some(mid),
                    sdp_m_line_index: Some(0),
                    username_fragment: None,
                })));
            }
            Err(err) => tracing::warn!(%err, "cannot encode a local ICE candidate"),
        }
    }

    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        tracing::debug!(%state, "ICE connection state");
        if state == RTCIceConnectionState::Connected {
            self.wake_driver();
            self.emit(RtcEvent::IceConnected);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        tracing::debug!(%state, "peer connection state");
        if state == RTCPeerConnectionState::Connected {
            self.wake_driver();
        }
        let state = match state {
            RTCPeerConnectionState::Connected => LinkState::Connected,
            RTCPeerConnectionState::Disconnected => LinkState::Disconnected,
            RTCPeerConnectionState::Failed => LinkState::Failed,
            RTCPeerConnectionState::Closed => LinkState::Closed,
            _ => LinkState::Connecting,
        };
        self.emit(RtcEvent::State(state));
    }

    async fn on_data_channel(&self, data_channel: Arc<dyn DataChannel>) {
        // Reading the label is a round trip to the driver that is running this
        // callback: do it in a task.
        let events = self.events.clone();
        let max = self.max_message_bytes;
        tokio::spawn(async move {
            let label = data_channel.label().await.unwrap_or_default();
            let _ = events
                .send(RtcEvent::IncomingChannel(RtcChannel::new(
                    data_channel,
                    label,
                    max,
                )))
                .await;
        });
    }
}
