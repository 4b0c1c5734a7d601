//! Finding, on the local network, the sender announcing a code number.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::Context;
use mdns_sd::{ServiceDaemon, ServiceEvent};

use super::{SERVICE_TYPE, full_name};

/// After the first sender answers, how long others may still answer.
const STRAGGLERS: Duration = Duration::from_millis(300);

/// A sender found on the network: the signaling server's addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sender {
    /// Where its server listens, loopback last (it is reached only from the
    /// same machine).
    pub(crate) addresses: Vec<SocketAddr>,
}

impl Sender {
    /// The WebSocket URLs of its server.
    pub(crate) fn urls(&self) -> Vec<String> {
        self.addresses
            .iter()
            .map(|address| format!("ws://{address}/ws"))
            .collect()
    }
}

/// The senders that announce the code number `nameplate`, looking for at
/// most `wait` (less once one answered). Blocks: run it off the runtime.
pub(crate) fn find_senders(nameplate: &str, wait: Duration) -> anyhow::Result<Vec<Sender>> {
    let mdns = ServiceDaemon::new().context("starting mDNS to look for the sender")?;
    let events = mdns
        .browse(SERVICE_TYPE)
        .context("looking for senders on the local network")?;
    let wanted = full_name(nameplate);
    let mut deadline = Instant::now() + wait;
    let mut found: HashMap<String, Sender> = HashMap::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Ok(event) = events.recv_timeout(left) else {
            break;
        };
        let ServiceEvent::ServiceResolved(service) = event else {
            continue;
        };
        if !service.fullname.eq_ignore_ascii_case(&wanted) {
            continue;
        }
        let mut addresses: Vec<SocketAddr> = service
            .addresses
            .iter()
            .map(|address| SocketAddr::new(address.to_ip_addr(), service.port))
            .filter(|address| matches!(address.ip(), IpAddr::V4(_)))
            .collect();
        addresses.sort_by_key(|address| address.ip().is_loopback());
        if addresses.is_empty() {
            continue;
        }
        if found.is_empty() {
            deadline = deadline.min(Instant::now() + STRAGGLERS);
        }
        // One entry per announcing host (its random host name).
        found.insert(service.host.clone(), Sender { addresses });
    }
    let _ = mdns.stop_browse(SERVICE_TYPE);
    let _ = mdns.shutdown();
    Ok(found.into_values().collect())
}

/// Whether some sender on the network already announces `nameplate`.
pub(crate) fn is_announced(nameplate: &str, wait: Duration) -> anyhow::Result<bool> {
    Ok(!find_senders(nameplate, wait)?.is_empty())
}
