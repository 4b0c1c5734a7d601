//! Two `peer-client chat` processes whose peer-to-peer link has 5 % loss in
//! each direction and a 100 ms round trip (a userspace hub standing in for
//! `tc netem`, see `e2e::wire`). Signaling goes over a clean link to the
//! server's namespace, so only the WebRTC path is impaired.
//!
//! Needs root and iproute2. The connect time is printed
//! (`cargo nextest run -p e2e lossy_ --no-capture`).

use std::time::{Duration, Instant};

use e2e::wan::WanLab;
use e2e::{CHAT_OPEN, Process, Stream};

/// Lines each side sends once the channel is open.
const LINES: usize = 30;

#[test]
fn lossy_link_chat_works_both_ways() {
    let lab = WanLab::new(["ada", "bob"], "lossy");
    lab.wire.set_delay(Duration::from_millis(50));
    lab.wire.set_loss(0.05);
    let chat = |n: usize, name: &str| -> Process {
        lab.peer_client(
            n,
            &format!("chat {name}"),
            "chat",
            &["--room", "lossy", "--name", name],
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
