//! Who a connection comes from: the address per-address limits count it
//! under, read from the TCP peer or, for a configured proxy, from the
//! `X-Forwarded-For` header that proxy appends.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The unit per-address limits count: an IPv4 address, or the /64 prefix of
/// an IPv6 address (one subscriber usually holds a whole /64, so counting
/// single IPv6 addresses would let one host pose as 2^64 clients).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddress(IpAddr);

impl ClientAddress {
    /// The counting unit `ip` belongs to. IPv4-mapped IPv6 addresses (a
    /// dual-stack listener's view of IPv4 clients) count as IPv4.
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !(u128::MAX >> 64);
                Self(IpAddr::V6(Ipv6Addr::from(prefix)))
            }
        }
    }
}

impl fmt::Display for ClientAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => v4.fmt(f),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// Proxies whose `X-Forwarded-For` is believed (`--trusted-proxy`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Proxies in these networks.
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self(networks)
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client behind a connection from `peer`: `peer` itself unless it
    /// is a trusted proxy; then the right-most `X-Forwarded-For` entry that
    /// is not a trusted proxy (entries further left were written by the
    /// client or by proxies nobody vouches for). A missing or unreadable
    /// entry leaves the last trusted hop as the client.
    pub fn client_of(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.contains(client) {
            return client;
        }
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|value| value.to_str().unwrap_or(""))
            .collect::<Vec<_>>();
        for hop in hops.iter().rev().flat_map(|value| value.rsplit(',')) {
            let Some(ip) = parse_hop(hop) else {
                return client;
            };
            client = ip;
            if !self.contains(ip) {
                return ip;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, perhaps with a port
/// (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    IpAddr::from_str(hop)
        .or_else(|_| SocketAddr::from_str(hop).map(|addr| addr.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

/// Parses a `--trusted-proxy` value: a network (`10.0.0.0/8`) or a single
/// address (`192.0.2.7`).
pub fn parse_network(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    IpNet::from_str(text)
        .map(|net| net.trunc())
        .or_else(|_| IpAddr::from_str(text).map(IpNet::from))
        .map_err(|_| format!("{text:?} is neither an address nor a network like 10.0.0.0/8"))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        IpAddr::from_str(text).unwrap_or_else(|_| panic!("{text} is an address"))
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                "x-forwarded-for",
                HeaderValue::from_str(value).unwrap_or_else(|_| panic!("{value}")),
            );
        }
        headers
    }

    fn proxies(networks: &[&str]) -> TrustedProxies {
        TrustedProxies::new(
            networks
                .iter()
                .map(|n| parse_network(n).unwrap_or_else(|e| panic!("{e}")))
                .collect(),
        )
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            ClientAddress::of(ip("2001:db8:1:2:aaaa::1")),
            ClientAddress::of(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            ClientAddress::of(ip("2001:db8:1:2::1")),
            ClientAddress::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            ClientAddress::of(ip("::ffff:192.0.2.1")),
            ClientAddress::of(ip("192.0.2.1"))
        );
        assert_eq!(
            ClientAddress::of(ip("2001:db8::1")).to_string(),
            "2001:db8::/64"
        );
        assert_eq!(ClientAddress::of(ip("192.0.2.1")).to_string(), "192.0.2.1");
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        let trusted = proxies(&["10.0.0.1"]);
        let headers = forwarded(&["198.51.100.7"]);
        assert_eq!(
            trusted.client_of(ip("192.0.2.1"), &headers),
            ip("192.0.2.1")
        );
        assert_eq!(
            TrustedProxies::default().client_of(ip("10.0.0.1"), &headers),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8"]);
        // A client forging an entry cannot hide behind it: the proxy appends
        // the address it saw, which is read first.
        let headers = forwarded(&["203.0.113.9, 198.51.100.7, 10.1.2.3"]);
        assert_eq!(
            trusted.client_of(ip("10.0.0.1"), &headers),
            ip("198.51.100.7")
        );
        // Entries spread over several header lines read as one list.
        let headers = forwarded(&["203.0.113.9", "198.51.100.7:4711"]);
        assert_eq!(
            trusted.client_of(ip("10.0.0.1"), &headers),
            ip("198.51.100.7")
        );
        let headers = forwarded(&["[2001:db8::5]:443"]);
        assert_eq!(
            trusted.client_of(ip("10.0.0.1"), &headers),
            ip("2001:db8::5")
        );
    }

    #[test]
    fn without_a_readable_entry_the_last_trusted_hop_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            trusted.client_of(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
        let headers = forwarded(&["unknown, 10.0.0.2"]);
        assert_eq!(trusted.client_of(ip("10.0.0.1"), &headers), ip("10.0.0.2"));
        let headers = forwarded(&["10.0.0.3"]);
        assert_eq!(trusted.client_of(ip("10.0.0.1"), &headers), ip("10.0.0.3"));
    }

    #[test]
    fn networks_and_single_addresses_parse() {
        assert_eq!(parse_network("10.1.2.3/8"), parse_network("10.0.0.0/8"));
        assert!(parse_network("192.0.2.7").is_ok_and(|net| net.prefix_len() == 32));
        assert!(parse_network("2001:db8::/32").is_ok());
        assert!(parse_network("proxy.example").is_err());
        assert!(parse_network("10.0.0.0/33").is_err());
    }
}
