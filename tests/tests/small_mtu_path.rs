//! Two hosts whose peer-to-peer path drops every IP packet over 1 280 bytes
//! without a word (IPv6's minimum MTU, common on VPN tunnels; see
//! `Wire::set_mtu`), signaling over a clean link: a file transfer and a chat
//! whose lines are longer than one packet both get through, since the data
//! channel starts with packets every path carries and probes for larger ones.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use e2e::wan::WanLab;
use e2e::{CHAT_OPEN, Stream, pseudo_random};

/// The largest IP packet the path carries.
const PATH_MTU: u32 = 1280;

fn lab(name: [&str; 2]) -> WanLab {
    let lab = WanLab::new(name, "tunnel");
    lab.wire.set_delay(Duration::from_millis(10));
    lab.wire.set_mtu(PATH_MTU);
    lab
}

#[test]
fn small_mtu_path_carries_a_file() {
    let lab = lab(["snd", "rcv"]);
    let dir = std::env::temp_dir().join(format!("e2e-small-mtu-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let data = pseudo_random(8 * 1024 * 1024, 12);
    let file = dir.join("data.bin");
    std::fs::write(&file, &data).unwrap();
    let out = dir.join("out");
    let code = "53-tunnel-orchard";
    let path = file.display().to_string();
    let out_arg = out.display().to_string();
    let mut sender = lab.peer_client(1, "send", "send", &["--code", code, &path]);
    sender.wait_for(Stream::Stdout, code, 0);
    let mut receiver =
        lab.peer_client(2, "receive", "receive", &[code, "--out", &out_arg, "--yes"]);
    assert!(
        receiver
            .wait_exit_within(Duration::from_secs(60))
            .is_some_and(|s| s.success()),
        "the transfer did not finish\n{}{}",
        sender.log(),
        receiver.log()
    );
    assert!(sender.wait_exit().success(), "{}", sender.log());
    receiver.wait_for(Stream::Stdout, "every file verified", 0);
    assert!(
        std::fs::read(out.join("data.bin")).unwrap() == data,
        "contents differ"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn small_mtu_path_carries_long_chat_lines() {
    let lab = lab(["ada", "bob"]);
    let chat = |n: usize, name: &str| {
        lab.peer_client(
            n,
            &format!("chat {name}"),
            "chat",
            &["--room", "tunnel", "--name", name],
        )
    };
    let mut ada = chat(1, "Ada");
    ada.wait_for(Stream::Stderr, "joined room", 0);
    let mut bob = chat(2, "Bob");
    ada.wait_for(Stream::Stderr, CHAT_OPEN, 0);
    bob.wait_for(Stream::Stderr, CHAT_OPEN, 0);
    // Several packets' worth each, so most of each line travels in full-size packets.
    let line = |from: &str| format!("{from} {}", "x".repeat(6000));
    ada.write_line(&line("Ada"));
    bob.write_line(&line("Bob"));
    bob.wait_for(Stream::Stdout, &format!("Ada: {}", line("Ada")), 0);
    ada.wait_for(Stream::Stdout, &format!("Bob: {}", line("Bob")), 0);
}
