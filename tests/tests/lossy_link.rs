//! Two `peer-client chat` processes whose peer-to-peer link has 5 % loss in
//! each direction and a 100 ms round trip (a userspace hub standing in for
//! `tc netem`, see `e2e::wire`). Signaling goes over a clean link to the
//! server's namespace, so only the WebRTC path is impaired.
//!
//! Needs root and iproute2. The connect time is printed
//! (`cargo nextest run -p e2e lossy_ --no-capture`).

use std::time::{Duration, Instant};

use e2e::netns::{Netns, link};
use e2e::wire::Wire;
use e2e::{CHAT_OPEN, Process, Stream};

/// Lines each side sends once the channel is open.
const LINES: usize = 30;

#[test]
fn lossy_link_chat_works_both_ways() {
    let server_host = Netns::new("srv");
    let hosts = [Netns::new("ada"), Netns::new("bob")];
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
        wire.attach(host, "lossy", &format!("10.9.0.{n}/24"));
    }
    wire.set_delay(Duration::from_millis(50));
    wire.set_loss(0.05);
    wire.start();

    let server = server_host.spawn(
        "signaling-server",
        "signaling-server",
        &["--listen", "0.0.0.0:8080"],
    );
    server.wait_for(Stream::Stdout, "listening on ", 0);
    let chat = |n: usize, name: &str| -> Process {
        hosts[n - 1].spawn(
            &format!("chat {name}"),
            "peer-client",
            &[
                "chat",
                "--server",
                &format!("ws://10.201.{n}.1:8080/ws"),
                "--room",
                "lossy",
                "--name",
                name,
                "--bind",
                &format!("10.9.0.{n}:0"),
            ],
        )
    };
    let mut ada = chat(1, "Ada");
    ada.wait_for(Stream::Stderr, "joined room", 0);
    let started = Instant::now();
    let mut bob = chat(2, "Bob");
    ada.wait_for(Stream::Stderr, CHAT_OPEN, 0);
    bob.wait_for(Stream::Stderr, CHAT_OPEN, 0);
    println!(
        "connect time over 5 % loss, 100 ms round trip: {:?}",
        started.elapsed()
    );
    bob.wait_for(Stream::Stderr, "(direct)", 0);

    let started = Instant::now();
    for i in 0..LINES {
        ada.write_line(&format!("from Ada {i}"));
        bob.write_line(&format!("from Bob {i}"));
    }
    let expect = |name: &str| -> Vec<String> {
        (0..LINES)
            .map(|i| format!("{name}: from {name} {i}"))
            .collect()
    };
    let at_bob = bob.wait_for_count(Stream::Stdout, "Ada: from Ada", 0, LINES);
    let at_ada = ada.wait_for_count(Stream::Stdout, "Bob: from Bob", 0, LINES);
    assert_eq!(at_bob, expect("Ada"), "every line, in order");
    assert_eq!(at_ada, expect("Bob"), "every line, in order");
    println!(
        "{LINES} lines each way delivered in order in {:?}",
        started.elapsed()
    );
}
