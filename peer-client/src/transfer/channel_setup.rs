//! How a transfer's session and channel are set up: the code's room, the
//! transfer channel negotiated on both sides, and the wait for it to open.

use signaling_protocol::PeerId;

use super::TransferError;
use super::wire::{TRANSFER_LABEL, transfer_channel};
use crate::auth::Code;
use crate::channel::Channel;
use crate::event::Event;
use crate::payload::Payload;
use crate::session::{Session, SessionConfig};

/// Most messages kept that arrive before the channel is reported open.
const EARLY_MESSAGES: usize = 8;

/// `config` set up for a transfer with `code`: the code's room, and the
/// transfer channel negotiated on both sides and no other. The receiver joins
/// later, so it offers; the sender creates its side of the channel when it
/// answers.
pub fn transfer_session(mut config: SessionConfig, code: &Code) -> SessionConfig {
    config.room = code.room();
    config.initial_channels = Vec::new();
    config.negotiated_channels = vec![transfer_channel()];
    config
}

/// Waits for the transfer channel; keeps the first few messages that may
/// arrive on it before its open event is reported.
pub(super) async fn wait_channel(
    session: &mut Session,
    early: &mut std::collections::VecDeque<(PeerId, Payload)>,
) -> Result<Channel, TransferError> {
    while let Some(event) = session.next_event().await {
        match event {
            Event::ChannelOpen { channel, .. } if channel.label() == TRANSFER_LABEL => {
                early.retain(|(peer, _)| *peer == channel.peer());
                return Ok(channel);
            }
            Event::Message {
                peer,
                label,
                payload,
            } if label == TRANSFER_LABEL && early.len() < EARLY_MESSAGES => {
                early.push_back((peer, payload));
            }
            _ => {}
        }
    }
    Err(TransferError::Gone("the session ended"))
}
