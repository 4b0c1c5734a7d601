//! Two `peer-client chat` processes, each on a private host behind its own
//! NAT router, meet through a signaling server on a "public" host that also
//! runs coturn (STUN and TURN):
//! - behind endpoint-independent NATs, STUN alone is enough: the link is
//!   direct (hole punched through both NATs);
//! - behind symmetric NATs, STUN alone gets nowhere, and the link goes
//!   through the TURN relay, forced (`--relay-only`) or found by ICE among
//!   all candidate types, as a browser does;
//! - behind one symmetric NAT, likewise through the relay;
//! - with TURN on offer, endpoint-independent NATs still connect directly.
//!
//! Needs root, iproute2, nftables and coturn. The connect times are printed
//! (`cargo nextest run -p e2e nat_ --no-capture`).

use std::time::{Duration, Instant};

use e2e::netns::{Coturn, Internet, Nat, PUBLIC_ADDR};
use e2e::{CHAT_OPEN, Process, Stream};

/// How long peers behind symmetric NATs get to (not) find a direct path.
/// Endpoint-independent NATs connect in well under a second.
const NO_DIRECT_PATH_WAIT: Duration = Duration::from_secs(8);

/// The signaling server on the public host and two chats, one per site.
struct Meeting {
    ada: Process,
    bob: Process,
    _server: Process,
    /// From the second chat's start to both channels open (if they open).
    started: Instant,
}

/// Starts the signaling server and `peer-client chat` on both sites' hosts
/// with `extra` arguments (ICE servers, `--relay-only`).
fn meet(internet: &Internet, extra: &[&str]) -> Meeting {
    meet_with_server(internet, &[], extra)
}

/// Like [`meet`], with `server_args` for the signaling server.
fn meet_with_server(internet: &Internet, server_args: &[&str], extra: &[&str]) -> Meeting {
    let listen = format!("{PUBLIC_ADDR}:8080");
    let mut args = vec!["--listen", &listen];
    args.extend_from_slice(server_args);
    let server = internet
        .public
        .spawn("signaling-server", "signaling-server", &args);
    server.wait_for(Stream::Stdout, "listening on ", 0);
    let server_url = format!("ws://{listen}/ws");
    let chat = |site: usize, name: &str| {
        let bind = format!("{}:0", internet.sites[site].host_addr);
        let mut args = vec![
            "chat",
            "--server",
            &server_url,
            "--room",
            "nat",
            "--name",
            name,
            "--bind",
            &bind,
        ];
        args.extend_from_slice(extra);
        internet.sites[site]
            .host
            .spawn(&format!("chat {name}"), "peer-client", &args)
    };
    let ada = chat(0, "Ada");
    ada.wait_for(Stream::Stderr, "joined room", 0);
    let started = Instant::now();
    let bob = chat(1, "Bob");
    Meeting {
        ada,
        bob,
        _server: server,
        started,
    }
}

impl Meeting {
    /// Waits for both channels, checks the reported path and that lines
    /// cross both ways; returns the connect time.
    fn connect_and_talk(mut self, path: &str) -> Duration {
        self.ada.wait_for(Stream::Stderr, CHAT_OPEN, 0);
        self.bob.wait_for(Stream::Stderr, CHAT_OPEN, 0);
        let elapsed = self.started.elapsed();
        for peer in [&self.ada, &self.bob] {
            peer.wait_for(Stream::Stderr, path, 0);
        }
        self.ada.write_line("hello across two NATs");
        self.bob
            .wait_for(Stream::Stdout, "Ada: hello across two NATs", 0);
        self.bob.write_line("hello back");
        self.ada.wait_for(Stream::Stdout, "Bob: hello back", 0);
        elapsed
    }
}

#[test]
fn nat_endpoint_independent_peers_connect_directly_with_stun_only() {
    let internet = Internet::build(&[Nat::EndpointIndependent, Nat::EndpointIndependent]);
    let coturn = Coturn::start(&internet.public, PUBLIC_ADDR);
    let meeting = meet(&internet, &["--ice-server", &coturn.stun_url]);
    let elapsed = meeting.connect_and_talk("(direct)");
    println!("connect time through STUN (endpoint-independent NATs): {elapsed:?}");
}

#[test]
fn nat_symmetric_peers_find_no_direct_path_with_stun_only() {
    let internet = Internet::build(&[Nat::Symmetric, Nat::Symmetric]);
    let coturn = Coturn::start(&internet.public, PUBLIC_ADDR);
    let meeting = meet(&internet, &["--ice-server", &coturn.stun_url]);
    meeting.bob.wait_for(Stream::Stderr, "joined room", 0);
    std::thread::sleep(NO_DIRECT_PATH_WAIT);
    for peer in [&meeting.ada, &meeting.bob] {
        let log = peer.log();
        assert!(
            !log.contains(CHAT_OPEN) && !log.contains("(direct)"),
            "a direct link through two symmetric NATs:\n{log}"
        );
    }
}

#[test]
fn nat_symmetric_peers_connect_through_the_turn_relay() {
    let internet = Internet::build(&[Nat::Symmetric, Nat::Symmetric]);
    let coturn = Coturn::start(&internet.public, PUBLIC_ADDR);
    let meeting = meet(
        &internet,
        &["--ice-server", &coturn.turn_url, "--relay-only"],
    );
    let elapsed = meeting.connect_and_talk("(relayed)");
    println!("connect time through TURN (symmetric NATs): {elapsed:?}");
}

#[test]
fn nat_symmetric_peers_relay_with_the_servers_short_lived_turn_credentials() {
    let internet = Internet::build(&[Nat::Symmetric, Nat::Symmetric]);
    let secret = "e2e-turn-secret-0123456789";
    let _coturn = Coturn::start_with_secret(&internet.public, PUBLIC_ADDR, secret);
    let turn = format!("turn:{PUBLIC_ADDR}:3478?transport=udp");
    // No --ice-server: the peers use what the signaling server announces.
    let meeting = meet_with_server(
        &internet,
        &["--turn", &turn, "--turn-secret", secret],
        &["--relay-only"],
    );
    let elapsed = meeting.connect_and_talk("(relayed)");
    println!("connect time through TURN with the server's credentials: {elapsed:?}");
}

/// What a browser does: every candidate type, and ICE finds that only the
/// relay works.
#[test]
fn nat_symmetric_peers_fall_back_to_turn_without_relay_only() {
    let elapsed = connect_with_stun_and_turn(&[Nat::Symmetric, Nat::Symmetric], "(relayed)");
    println!("connect time through TURN without --relay-only: {elapsed:?}");
}

/// A home router meeting a mobile or corporate network: one side's mapping
/// is useless to the other, so only the relay works.
#[test]
fn nat_mixed_peers_fall_back_to_turn_without_relay_only() {
    let elapsed =
        connect_with_stun_and_turn(&[Nat::EndpointIndependent, Nat::Symmetric], "(relayed)");
    println!("connect time through TURN (one symmetric NAT): {elapsed:?}");
}

/// With a relay on offer, ICE still picks the direct path when there is one.
#[test]
fn nat_endpoint_independent_peers_prefer_the_direct_path_over_turn() {
    let elapsed = connect_with_stun_and_turn(
        &[Nat::EndpointIndependent, Nat::EndpointIndependent],
        "(direct)",
    );
    println!("connect time through STUN with TURN on offer: {elapsed:?}");
}

/// Two chats behind `nats`, given coturn's STUN and TURN servers and every
/// candidate type; checks the link reports `path` and returns the connect time.
fn connect_with_stun_and_turn(nats: &[Nat], path: &str) -> Duration {
    let internet = Internet::build(nats);
    let coturn = Coturn::start(&internet.public, PUBLIC_ADDR);
    let meeting = meet(
        &internet,
        &[
            "--ice-server",
            &coturn.stun_url,
            "--ice-server",
            &coturn.turn_url,
        ],
    );
    meeting.connect_and_talk(path)
}
