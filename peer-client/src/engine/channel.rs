//! One data channel of the engine.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelState};

use crate::error::Error;
use crate::payload::Payload;

/// What happens on a data channel.
#[derive(Debug)]
pub(crate) enum ChannelEvent {
    /// The channel can carry messages.
    Open,
    /// A message arrived.
    Message(Payload),
    /// The channel closed; no more events follow.
    Closed,
    /// The connection under the channel stopped or was closed; no more
    /// events follow.
    Gone,
}

/// A data channel handle; clones share the channel.
#[derive(Clone)]
pub(crate) struct RtcChannel {
    dc: Arc<dyn DataChannel>,
    label: Arc<str>,
    max_message_bytes: usize,
}

impl std::fmt::Debug for RtcChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtcChannel")
            .field("label", &self.label)
            .finish()
    }
}

impl RtcChannel {
    pub(crate) fn new(dc: Arc<dyn DataChannel>, label: String, max_message_bytes: usize) -> Self {
        Self {
            dc,
            label: label.into(),
            max_message_bytes,
        }
    }

    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    pub(crate) fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// Whether the channel is open right now.
    pub(crate) async fn is_open(&self) -> bool {
        matches!(self.dc.ready_state().await, Ok(RTCDataChannelState::Open))
    }

    /// The next event; `Closed` or `Gone` ends them.
    pub(crate) async fn next_event(&self) -> ChannelEvent {
        loop {
            match self.dc.poll().await {
                None => return ChannelEvent::Gone,
                Some(DataChannelEvent::OnClose) => return ChannelEvent::Closed,
                Some(DataChannelEvent::OnOpen) => return ChannelEvent::Open,
                Some(DataChannelEvent::OnMessage(message)) => {
                    let data = message.data.freeze();
                    let payload = if message.is_string {
                        match String::from_utf8(data.to_vec()) {
                            Ok(text) => Payload::Text(text),
                            Err(_) => Payload::Binary(data),
                        }
                    } else {
                        Payload::Binary(data)
                    };
                    return ChannelEvent::Message(payload);
                }
                Some(_) => {}
            }
        }
    }

    /// Sends a message, waiting while the channel holds too many unacknowledged bytes.
    pub(crate) async fn send(&self, payload: &Payload) -> Result<(), Error> {
        let size = payload.len();
        if size > self.max_message_bytes {
            return Err(Error::MessageTooLarge {
                size,
                max: self.max_message_bytes,
            });
        }
        let result = match payload {
            Payload::Text(text) => self.dc.send_text(text).await,
            Payload::Binary(data) => self.dc.send(BytesMut::from(data.as_ref())).await,
        };
        result.map_err(|err| match err {
            webrtc::error::Error::ErrDataChannelClosed => {
                Error::ChannelClosed(self.label.to_string())
            }
            other => Error::Rtc(other.to_string()),
        })
    }

    /// Sends binary data without copying it into a new buffer first.
    pub(crate) async fn send_bytes(&self, data: BytesMut) -> Result<(), Error> {
        if data.len() > self.max_message_bytes {
            return Err(Error::MessageTooLarge {
                size: data.len(),
                max: self.max_message_bytes,
            });
        }
        self.dc.send(data).await.map_err(|err| match err {
            webrtc::error::Error::ErrDataChannelClosed => {
                Error::ChannelClosed(self.label.to_string())
            }
            other => Error::Rtc(other.to_string()),
        })
    }

    /// Bytes handed to the channel and not yet acknowledged by the other side.
    pub(crate) async fn queued_bytes(&self) -> usize {
        self.dc.outstanding_bytes().await.unwrap_or(0)
    }

    /// Closes the channel.
    pub(crate) async fn close(&self) {
        if let Err(err) = self.dc.close().await {
            tracing::debug!(%err, label = %self.label, "closing a data channel");
        }
    }
}

impl From<Bytes> for Payload {
    fn from(data: Bytes) -> Self {
        Payload::Binary(data)
    }
}
