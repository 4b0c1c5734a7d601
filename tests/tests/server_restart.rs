//! The signaling server is killed while two `peer-client chat` processes are
//! negotiating, and started again on the same address: both reconnect, join
//! again and finish connecting, and lines cross both ways.
//!
//! Every host sits on an impaired wire (150 ms each way, see `e2e::wire`) so
//! that the kill lands while the newcomer's offer is still on its way to
//! the server.

use std::time::{Duration, Instant};

use e2e::netns::Netns;
use e2e::wire::Wire;
use e2e::{CHAT_OPEN, Process, Stream};

const SERVER: &str = "10.9.0.3:8080";

fn start_server(host: &Netns) -> Process {
    let server = host.spawn(
        "signaling-server",
        "signaling-server",
        &["--listen", SERVER],
    );
    server.wait_for(Stream::Stdout, "listening on ", 0);
    server
}

#[test]
fn server_killed_mid_negotiation_and_restarted_peers_finish_connecting() {
    let hosts = [Netns::new("ada"), Netns::new("bob"), Netns::new("srv")];
    let mut wire = Wire::new();
    for (n, host) in hosts.iter().enumerate() {
        wire.attach(host, "eth0", &format!("10.9.0.{}/24", n + 1));
    }
    wire.set_delay(Duration::from_millis(150));
    wire.start();

    let mut server = start_server(&hosts[2]);
    let chat = |n: usize, name: &str| -> Process {
        hosts[n - 1].spawn(
            &format!("chat {name}"),
            "peer-client",
            &[
                "chat",
                "--server",
                &format!("ws://{SERVER}/ws"),
                "--room",
                "restart",
                "--name",
                name,
                "--bind",
                &format!("10.9.0.{n}:0"),
            ],
        )
    };
    let mut ada = chat(1, "Ada");
    ada.wait_for(Stream::Stderr, "joined room", 0);
    let mut bob = chat(2, "Bob");
    bob.wait_for(Stream::Stderr, "joined room", 0);
    // Bob's offer left when its welcome arrived; it reaches the server 150 ms later.
    server.kill();
    let killed = Instant::now();
    let opened_before_restart = ada.log().contains(CHAT_OPEN) || bob.log().contains(CHAT_OPEN);
    assert!(!opened_before_restart, "the channel opened before the kill");
    drop(server);
    let _server = start_server(&hosts[2]);

    for peer in [&ada, &bob] {
        peer.wait_for(Stream::Stderr, "lost the signaling server", 0);
        peer.wait_for(Stream::Stderr, "signaling server back", 0);
    }
    ada.wait_for(Stream::Stderr, CHAT_OPEN, 0);
    bob.wait_for(Stream::Stderr, CHAT_OPEN, 0);
    println!(
        "channel open {:?} after the server was killed mid-negotiation",
        killed.elapsed()
    );
    ada.write_line("after the restart");
    bob.wait_for(Stream::Stdout, "Ada: after the restart", 0);
    bob.write_line("all good");
    ada.wait_for(Stream::Stdout, "Bob: all good", 0);
}
