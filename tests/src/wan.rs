//! Hosts joined by an impaired [`Wire`] (two, or more for a swarm), and one
//! more host running the signaling server on clean links to each, so only
//! the peer-to-peer paths are impaired. Host `n` (from 1) has address
//! `10.9.0.n` on the wire and reaches the server at `ws://10.201.n.1:8080/ws`.

use crate::netns::{Netns, link};
use crate::wire::Wire;
use crate::{Process, Stream};

/// The hosts, the wire between them and the signaling server; everything is
/// removed when dropped.
pub struct WanLab {
    /// The wire joining the two hosts, already forwarding (unimpaired until set).
    pub wire: Wire,
    /// Host 1, host 2, ….
    pub hosts: Vec<Netns>,
    _server: Process,
    _server_host: Netns,
}

impl WanLab {
    /// Builds the hosts (named after `names`), the wire (interface `ifname`
    /// on each host) and starts the server.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>, ifname: &str) -> Self {
        let server_host = Netns::new("srv");
        let hosts: Vec<Netns> = names.into_iter().map(Netns::new).collect();
        let mut wire = Wire::new();
        for (n, host) in hosts.iter().enumerate() {
            let n = n + 1;
            link(
                &server_host,
                &format!("to{n}"),
                &format!("10.201.{n}.1/24"),
                host,
                "sig",
                &format!("10.201.{n}.2/24"),
            );
            wire.attach(host, ifname, &format!("10.9.0.{n}/24"));
        }
        wire.start();
        let server = server_host.spawn(
            "signaling-server",
            "signaling-server",
            &["--listen", "0.0.0.0:8080"],
        );
        server.wait_for(Stream::Stdout, "listening on ", 0);
        Self {
            wire,
            hosts,
            _server: server,
            _server_host: server_host,
        }
    }

    /// `peer-client COMMAND --server … --bind 10.9.0.n:0 REST…` on host `n`.
    pub fn peer_client(&self, n: usize, label: &str, command: &str, rest: &[&str]) -> Process {
        self.peer_client_bound(n, &format!("10.9.0.{n}:0"), label, command, rest)
    }

    /// `peer-client COMMAND --server … --bind BIND REST…` on host `n`; with
    /// `0.0.0.0:0` it follows the host's addresses as they change.
    pub fn peer_client_bound(
        &self,
        n: usize,
        bind: &str,
        label: &str,
        command: &str,
        rest: &[&str],
    ) -> Process {
        let server = format!("ws://10.201.{n}.1:8080/ws");
        let mut all = vec![command, "--server", &server, "--bind", bind];
        all.extend_from_slice(rest);
        self.hosts[n - 1].spawn(label, "peer-client", &all)
    }
}
