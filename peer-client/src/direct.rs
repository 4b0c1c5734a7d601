//! A link to one peer whose signals the caller carries: no signaling server
//! and no room. Two programs that can pass text to each other some other way
//! (a pipe, a test harness) connect with it; `peer-client bench` does.
//!
//! The negotiation is the one a [`crate::Session`] runs for each peer of its
//! room; only the transport of the signals differs.

use std::sync::Arc;

use serde_json::value::RawValue;
use signaling_protocol::PeerId;
use tokio::sync::mpsc;

use crate::engine::NetStats;
use crate::error::Error;
use crate::event::Event;
use crate::options::TransportOptions;
use crate::peer::{LinkContext, Outbound, PeerLink};
use crate::signal::PeerSignal;

/// Signals a link may have queued for the caller to carry.
const SIGNAL_QUEUE: usize = 256;
/// Events a link may have queued for the caller.
const EVENT_QUEUE: usize = 1024;

/// How a [`DirectLink`] starts.
#[derive(Debug, Clone)]
pub struct DirectConfig {
    /// This side's id; the side with the larger id is the polite one.
    pub local: PeerId,
    /// The other side's id, as it gave it.
    pub remote: PeerId,
    /// This side makes the first offer (exactly one side must).
    pub offer: bool,
    /// Channels the offering side creates in its first offer.
    pub channels: Vec<String>,
    /// Transport settings.
    pub transport: TransportOptions,
}

/// A signal for the other end of a [`DirectLink`].
#[derive(Debug, Clone)]
pub struct DirectSignal(PeerSignal);

impl DirectSignal {
    /// The signal as one line of JSON (what the signaling server would carry
    /// as a signal's `data`).
    pub fn to_json(&self) -> String {
        self.0.to_raw().get().to_owned()
    }

    /// Reads a signal written by [`DirectSignal::to_json`].
    pub fn from_json(json: &str) -> Result<Self, Error> {
        let raw = RawValue::from_string(json.to_owned())
            .map_err(|err| Error::BadSignal(err.to_string()))?;
        PeerSignal::parse(&raw).map(Self)
    }
}

/// The signals a [`DirectLink`] wants carried to the other end.
pub struct DirectSignals(mpsc::Receiver<Outbound>);

impl DirectSignals {
    /// The next signal; `None` once the link is gone.
    pub async fn recv(&mut self) -> Option<DirectSignal> {
        self.0.recv().await.map(|out| DirectSignal(out.signal))
    }
}

/// A running link; dropping it closes the connection.
pub struct DirectLink(PeerLink);

/// A started [`DirectLink`] with its outputs.
pub struct StartedLink {
    /// The link, which takes the other end's signals.
    pub link: Arc<DirectLink>,
    /// Signals to carry to the other end.
    pub signals: DirectSignals,
    /// What happens on the link: channels opening, messages, state.
    pub events: mpsc::Receiver<Event>,
}

impl DirectLink {
    /// Builds the connection; with `config.offer` it sends the first offer
    /// right away (on [`StartedLink::signals`]).
    pub async fn start(config: DirectConfig) -> Result<StartedLink, Error> {
        let (outbound, signals) = mpsc::channel(SIGNAL_QUEUE);
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        let ctx = LinkContext {
            local: config.local,
            options: config.transport,
            ice_servers: Vec::new(),
            outbound,
            events: events_tx,
            channels: Arc::default(),
            initial_channels: config.channels,
            negotiated_channels: Vec::new(),
        };
        let link = PeerLink::start(ctx, config.remote, config.offer).await?;
        Ok(StartedLink {
            link: Arc::new(Self(link)),
            signals: DirectSignals(signals),
            events,
        })
    }

    /// Hands the link a signal from the other end; dropped (and logged) if
    /// the link is not keeping up.
    pub fn deliver(&self, signal: DirectSignal) {
        self.0.deliver(signal.0);
    }

    /// Datagram counters and buffer sizes of the connection.
    pub fn net_stats(&self) -> NetStats {
        self.0.net_stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_survives_its_json() {
        let json = r#"{"description":{"type":"offer","sdp":"v=0\r\n"}}"#;
        let signal = DirectSignal::from_json(json).unwrap();
        let again = DirectSignal::from_json(&signal.to_json()).unwrap();
        assert_eq!(again.to_json(), signal.to_json());
    }

    #[test]
    fn a_line_that_is_no_signal_is_refused() {
        assert!(matches!(
            DirectSignal::from_json("{\"hello\":1}"),
            Err(Error::BadSignal(_))
        ));
        assert!(matches!(
            DirectSignal::from_json("not json"),
            Err(Error::BadSignal(_))
        ));
    }
}
