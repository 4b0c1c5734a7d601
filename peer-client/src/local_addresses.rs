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

/// What a new look at the host's addresses found against the last one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct AddressChange {
    /// An address seen before is gone: a path the link may use went with it.
    pub(crate) lost: bool,
    /// An address not seen before is there.
    pub(crate) gained: bool,
}

/// The addresses last seen, and what a new look changed.
#[derive(Debug, Default)]
pub(crate) struct AddressWatch {
    known: BTreeSet<IpAddr>,
}

impl AddressWatch {
    /// Starts from `addresses`.
    pub(crate) fn new(addresses: BTreeSet<IpAddr>) -> Self {
        Self { known: addresses }
    }

    /// Takes `addresses` as the new set and says what changed. An empty
    /// look (the system could not say) changes nothing.
    pub(crate) fn look(&mut self, addresses: BTreeSet<IpAddr>) -> AddressChange {
        if addresses.is_empty() {
            return AddressChange::default();
        }
        let change = AddressChange {
            lost: self.known.difference(&addresses).next().is_some(),
            gained: addresses.difference(&self.known).next().is_some(),
        };
        self.known = addresses;
        change
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(addresses: &[&str]) -> BTreeSet<IpAddr> {
        addresses.iter().filter_map(|a| a.parse().ok()).collect()
    }

    #[test]
    fn each_look_says_what_was_lost_and_gained_since_the_last() {
        let mut watch = AddressWatch::new(set(&["10.9.0.1", "192.168.1.5"]));
        let none = AddressChange::default();
        assert_eq!(watch.look(set(&["10.9.0.1", "192.168.1.5"])), none);
        assert_eq!(
            watch.look(set(&["10.9.0.1", "192.168.1.5", "10.8.0.2"])),
            AddressChange {
                lost: false,
                gained: true
            },
            "a VPN came up"
        );
        assert_eq!(
            watch.look(set(&["10.9.0.11", "192.168.1.5", "10.8.0.2"])),
            AddressChange {
                lost: true,
                gained: true
            },
            "moved"
        );
        assert_eq!(
            watch.look(set(&["10.9.0.11", "192.168.1.5", "10.8.0.2"])),
            none,
            "once"
        );
        // A host between networks: the old address goes first, the new one comes later.
        assert_eq!(
            watch.look(set(&["192.168.1.5", "10.8.0.2"])),
            AddressChange {
                lost: true,
                gained: false
            }
        );
        assert_eq!(
            watch.look(set(&["10.9.0.12", "192.168.1.5", "10.8.0.2"])),
            AddressChange {
                lost: false,
                gained: true
            }
        );
    }

    #[test]
    fn a_failed_look_changes_nothing() {
        let mut watch = AddressWatch::new(set(&["10.9.0.1"]));
        assert_eq!(watch.look(BTreeSet::new()), AddressChange::default());
        assert!(watch.look(set(&["10.9.0.11"])).lost);
    }
}
