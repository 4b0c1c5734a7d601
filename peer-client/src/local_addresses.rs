//! The host's own addresses, watched so that a link notices the host moving
//! to another network (a laptop leaving one Wi-Fi for another) at once,
//! rather than after ICE has missed packets for seconds.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

/// How often a connected link looks at the host's addresses.
pub(crate) const ADDRESS_POLL: Duration = Duration::from_secs(1);

/// The non-loopback addresses of the host's interfaces now; empty if the
/// system cannot say.
pub(crate) fn current() -> BTreeSet<IpAddr> {
    match if_addrs::get_if_addrs() {
        Ok(interfaces) => interfaces
            .iter()
            .filter(|interface| !interface.is_loopback())
            .map(|interface| interface.ip())
            .collect(),
        Err(err) => {
            tracing::debug!(%err, "cannot list the host's addresses");
            BTreeSet::new()
        }
    }
}

/// The addresses last seen, and whether a new look lost any of them.
#[derive(Debug, Default)]
pub(crate) struct AddressWatch {
    known: BTreeSet<IpAddr>,
}

impl AddressWatch {
    /// Starts from `addresses`.
    pub(crate) fn new(addresses: BTreeSet<IpAddr>) -> Self {
        Self { known: addresses }
    }

    /// Takes `addresses` as the new set; true if an address seen before is
    /// gone, the sign that a path the link may use went with it. A new address
    /// alone is no reason to move a working link. An empty look (the system
    /// could not say) changes nothing.
    pub(crate) fn lost_any(&mut self, addresses: BTreeSet<IpAddr>) -> bool {
        if addresses.is_empty() {
            return false;
        }
        let lost = self.known.difference(&addresses).next().is_some();
        self.known = addresses;
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(addresses: &[&str]) -> BTreeSet<IpAddr> {
        addresses.iter().filter_map(|a| a.parse().ok()).collect()
    }

    #[test]
    fn a_removed_address_counts_and_an_added_one_does_not() {
        let mut watch = AddressWatch::new(set(&["10.9.0.1", "192.168.1.5"]));
        assert!(!watch.lost_any(set(&["10.9.0.1", "192.168.1.5"])));
        assert!(
            !watch.lost_any(set(&["10.9.0.1", "192.168.1.5", "10.8.0.2"])),
            "a VPN came up"
        );
        assert!(
            watch.lost_any(set(&["10.9.0.11", "192.168.1.5", "10.8.0.2"])),
            "moved"
        );
        assert!(
            !watch.lost_any(set(&["10.9.0.11", "192.168.1.5", "10.8.0.2"])),
            "once"
        );
    }

    #[test]
    fn a_failed_look_changes_nothing() {
        let mut watch = AddressWatch::new(set(&["10.9.0.1"]));
        assert!(!watch.lost_any(BTreeSet::new()));
        assert!(watch.lost_any(set(&["10.9.0.11"])));
    }
}
