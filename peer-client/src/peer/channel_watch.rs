//! One data channel's reader: a task that reports the channel opening, its
//! messages and its end, and keeps the session's map of open channels.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use signaling_protocol::PeerId;
use tokio::sync::{mpsc, watch};

use super::ChannelMap;
use crate::channel::Channel;
use crate::engine::{ChannelEvent, RtcChannel};
use crate::event::Event;

/// What became of a connection, as its channels learn it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    /// It is the link's connection.
    Current,
    /// A new connection replaced it.
    Replaced,
    /// The link gave up on it.
    Failed,
}

/// A channel to read, and where its news goes.
pub(super) struct Watch {
    pub(super) peer: PeerId,
    pub(super) channel: RtcChannel,
    /// The peer opened it (it may be open already).
    pub(super) incoming: bool,
    pub(super) events: mpsc::Sender<Event>,
    pub(super) channels: ChannelMap,
    /// The fate of the connection the channel belongs to.
    pub(super) fate: watch::Receiver<Fate>,
    /// The count of the peer's open channels, decremented when this one ends.
    pub(super) counted: Option<Arc<AtomicUsize>>,
}

/// Reads the channel in a task of its own until it ends.
pub(super) fn spawn(watch: Watch) {
    tokio::spawn(run(watch));
}

async fn run(watch: Watch) {
    let Watch {
        peer,
        channel,
        incoming,
        events,
        channels,
        mut fate,
        counted,
    } = watch;
    let label = channel.label().to_owned();
    let mut open = false;
    let announce = |open: &mut bool| {
        if *open {
            return None;
        }
        *open = true;
        let handle = Channel::new(peer, channel.clone());
        if let Ok(mut map) = channels.lock() {
            map.entry(peer)
                .or_default()
                .insert(label.clone(), handle.clone());
        }
        Some(Event::ChannelOpen {
            peer,
            channel: handle,
        })
    };
    if incoming
        && channel.is_open().await
        && let Some(event) = announce(&mut open)
    {
        let _ = events.send(event).await;
    }
    let replaced = loop {
        let event = match channel.next_event().await {
            ChannelEvent::Open => match announce(&mut open) {
                Some(event) => event,
                None => continue,
            },
            ChannelEvent::Message(payload) => Event::Message {
                peer,
                label: label.clone(),
                payload,
            },
            // A channel that never opened on a connection that stopped
            // ends silently if a new connection replaces it (its
            // successor is created there); the link decides which.
            ChannelEvent::Gone if !open => {
                break fate
                    .wait_for(|fate| *fate != Fate::Current)
                    .await
                    .is_ok_and(|fate| *fate == Fate::Replaced);
            }
            ChannelEvent::Closed | ChannelEvent::Gone => break false,
        };
        if events.send(event).await.is_err() {
            return;
        }
    };
    if open
        && let Ok(mut map) = channels.lock()
        && let Some(peer_channels) = map.get_mut(&peer)
    {
        peer_channels.remove(&label);
        if peer_channels.is_empty() {
            map.remove(&peer);
        }
    }
    if let Some(counted) = counted {
        counted.fetch_sub(1, Ordering::Relaxed);
    }
    if !replaced {
        let _ = events.send(Event::ChannelClosed { peer, label }).await;
    }
}
