//! Hosts on one local network, as two computers at home or in an office
//! are: a bridge (the switch) in a namespace of its own, and each host a
//! namespace with one interface on it, `10.78.0.N/24`, its default route
//! there. Multicast (mDNS) reaches every host; nothing else is reachable.

use crate::netns::Netns;

/// The switch and the hosts; removed when dropped.
pub struct Lan {
    /// Host `n` has address `10.78.0.n` (hosts[0] is host 1).
    pub hosts: Vec<Netns>,
    _switch: Netns,
}

impl Lan {
    /// A switch and `count` hosts named after `tag`.
    pub fn new(tag: &str, count: usize) -> Self {
        let switch = Netns::new(&format!("{tag}sw"));
        switch.ip(&["link", "add", "br0", "type", "bridge"]);
        // Flood multicast to every port, as a home switch without IGMP does.
        switch.ip(&[
            "link",
            "set",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        switch.ip(&["link", "set", "br0", "up"]);
        let hosts = (1..=count)
            .map(|n| {
                let host = Netns::new(&format!("{tag}{n}"));
                let port = format!("port{n}");
                switch.ip(&[
                    "link",
                    "add",
                    &port,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "eth0",
                    "netns",
                    host.name(),
                ]);
                switch.ip(&["link", "set", &port, "master", "br0"]);
                switch.ip(&["link", "set", &port, "up"]);
                host.ip(&["addr", "add", &format!("10.78.0.{n}/24"), "dev", "eth0"]);
                host.ip(&["link", "set", "eth0", "up"]);
                // Chromium gathers candidates on the default route's interface.
                host.ip(&["route", "add", "default", "dev", "eth0"]);
                host
            })
            .collect();
        Self {
            hosts,
            _switch: switch,
        }
    }

    /// Host `n` (from 1).
    pub fn host(&self, n: usize) -> &Netns {
        &self.hosts[n - 1]
    }
}
