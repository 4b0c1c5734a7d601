//! The impaired wire the lossy-link tests rely on does what it says: UDP
//! between two hosts on it sees the configured loss and delay, and a cut
//! wire carries nothing. Sockets are opened inside the hosts' namespaces
//! from threads that entered them.

// Test code: a failed expectation is a failed test.
#![allow(clippy::expect_used)]

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use e2e::netns::Netns;
use e2e::wire::Wire;

/// Binds a UDP socket to `addr` inside `netns`.
fn socket_in(netns: &Netns, addr: &str) -> UdpSocket {
    let path = netns.path();
    let addr = addr.to_owned();
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("namespace file");
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        UdpSocket::bind(&addr).expect("bind")
    })
    .join()
    .expect("socket thread")
}

fn two_hosts_on(wire: &mut Wire) -> [Netns; 2] {
    let hosts = [Netns::new("a"), Netns::new("b")];
    for (n, host) in hosts.iter().enumerate() {
        wire.attach(host, "eth0", &format!("10.9.0.{}/24", n + 1));
    }
    hosts
}

#[test]
fn wire_delays_drops_and_cuts_udp() {
    let mut wire = Wire::new();
    let hosts = two_hosts_on(&mut wire);
    wire.set_delay(Duration::from_millis(50));
    wire.start();
    let a = socket_in(&hosts[0], "10.9.0.1:4000");
    let b = socket_in(&hosts[1], "10.9.0.2:4000");
    b.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    a.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");

    // Round trip: 2 × 50 ms (the first one also resolves ARP).
    for _ in 0..3 {
        let sent = Instant::now();
        a.send_to(b"ping", "10.9.0.2:4000").expect("send");
        let mut buf = [0u8; 16];
        let (_, from) = b.recv_from(&mut buf).expect("ping arrives");
        b.send_to(b"pong", from).expect("send");
        a.recv_from(&mut buf).expect("pong arrives");
        let rtt = sent.elapsed();
        assert!(rtt >= Duration::from_millis(100), "round trip {rtt:?}");
        assert!(rtt < Duration::from_millis(400), "round trip {rtt:?}");
    }

    // 5 % loss one way: 4000 datagrams, expect 200 ± a wide margin.
    wire.set_delay(Duration::ZERO);
    wire.set_loss(0.05);
    const SENT: usize = 4000;
    b.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let receiver = b.try_clone().expect("clone");
    let counting = std::thread::spawn(move || {
        let mut received = 0;
        let mut buf = [0u8; 16];
        while receiver.recv_from(&mut buf).is_ok() {
            received += 1;
        }
        received
    });
    for i in 0..SENT {
        a.send_to(&(i as u32).to_be_bytes(), "10.9.0.2:4000")
            .expect("send");
        if i % 20 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let received = counting.join().expect("receiver");
    let mut buf = [0u8; 16];
    let lost = SENT - received;
    println!("wire: {lost} of {SENT} datagrams lost at 5 % loss");
    assert!((100..=320).contains(&lost), "{lost} of {SENT} lost");

    // Cut: nothing passes.
    wire.set_loss(1.0);
    for _ in 0..50 {
        a.send_to(b"x", "10.9.0.2:4000").expect("send");
    }
    assert!(
        b.recv_from(&mut buf).is_err(),
        "a cut wire carried a datagram"
    );
}
