//! A host that moves to another network mid-link, as a laptop does: on the
//! impaired wire (20 ms round trip) the sending host's address is removed and
//! another one added while a transfer runs, and while two chats are open. ICE
//! restarts over the new address, and the same programs carry on: the file
//! arrives whole without starting over, and chat lines get through. Each test
//! prints how long nothing arrived. A host that is given its new address
//! only seconds after losing the old one links again over it.
//!
//! The moving peer binds the wildcard address (`--bind 0.0.0.0:0`), as users
//! run it, so that the restart can gather on the new address.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use e2e::netns::Netns;
use e2e::wan::WanLab;
use e2e::{CHAT_OPEN, Stream, pseudo_random};

/// Longest time the move may interrupt the link (5 s until ICE calls it
/// disconnected, then the restart), with room for a loaded machine.
const GAP_LIMIT: Duration = Duration::from_secs(30);

fn lab(names: [&str; 2]) -> WanLab {
    let lab = WanLab::new(names, "wan");
    lab.wire.set_delay(Duration::from_millis(10));
    lab
}

/// Longest time a host that got an address again may take to link over it:
/// a look at its addresses (once a second), then an ICE restart. Without
/// that restart, ICE's own failure and the restart after it take ~30 s.
const BACK_LIMIT: Duration = Duration::from_secs(12);

/// Moves host 1 from 10.9.0.1 to 10.9.0.11 on the wire.
fn move_host(host: &Netns) {
    host.ip(&["addr", "del", "10.9.0.1/24", "dev", "wan"]);
    host.ip(&["addr", "add", "10.9.0.11/24", "dev", "wan"]);
}

/// Host 1 leaves the wire's network (10.9.0.1 goes), and is given
/// 10.9.0.11 only after `between`: a laptop between two networks.
fn move_host_slowly(host: &Netns, between: Duration) {
    host.ip(&["addr", "del", "10.9.0.1/24", "dev", "wan"]);
    std::thread::sleep(between);
    host.ip(&["addr", "add", "10.9.0.11/24", "dev", "wan"]);
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn path_change_mid_transfer_carries_on() {
    let lab = lab(["snd", "rcv"]);
    // 20 Mbit/s: the 16 MiB take about 7 s, so the move lands mid-transfer.
    lab.wire.set_rate(20_000_000, 50_000);
    let dir = TempDir(std::env::temp_dir().join(format!("e2e-path-change-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let data = pseudo_random(16 * 1024 * 1024, 31);
    let file = dir.0.join("data.bin");
    std::fs::write(&file, &data).unwrap();
    let out = dir.0.join("out");
    let (done, part) = (out.join("data.bin"), out.join("data.bin.part"));
    let code = "55-moving-orchard";
    let path = file.display().to_string();
    let out_arg = out.display().to_string();
    let mut sender =
        lab.peer_client_bound(1, "0.0.0.0:0", "send", "send", &["--code", code, &path]);
    sender.wait_for(Stream::Stdout, code, 0);
    let mut receiver =
        lab.peer_client(2, "receive", "receive", &[code, "--out", &out_arg, "--yes"]);

    // Move once a quarter of the file is there.
    let deadline = Instant::now() + Duration::from_secs(60);
    while file_len(&part) < data.len() as u64 / 4 {
        assert!(!done.exists(), "the transfer finished before the move");
        assert!(
            Instant::now() < deadline,
            "no data arrived\n{}",
            receiver.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    move_host(&lab.hosts[0]);
    let moved_at = Instant::now();
    let moved_len = file_len(&part);

    // The gap: the longest time the file did not grow after the move (data
    // already on its way still lands just after it).
    let (mut last, mut grew_at, mut gap) = (moved_len, moved_at, Duration::ZERO);
    while !done.exists() {
        let len = file_len(&part);
        if len != last {
            (last, grew_at) = (len, Instant::now());
        }
        gap = gap.max(grew_at.elapsed());
        assert!(
            gap < GAP_LIMIT,
            "nothing arrived for {GAP_LIMIT:?} after the move\n{}{}",
            sender.log(),
            receiver.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        receiver.wait_exit().success(),
        "{}{}",
        sender.log(),
        receiver.log()
    );
    assert!(sender.wait_exit().success(), "{}", sender.log());
    receiver.wait_for(Stream::Stdout, "every file verified", 0);
    assert!(std::fs::read(&done).unwrap() == data, "contents differ");
    println!(
        "moved at {moved_len} of {} bytes; the file stopped growing for {gap:.2?}",
        data.len()
    );
}

/// Ada (host 1, wildcard-bound: the host that moves) and Bob chat in
/// `room` on `lab`; a first line has gone from Ada to Bob.
fn chatting(lab: &WanLab, room: &str) -> (e2e::Process, e2e::Process) {
    let mut ada = lab.peer_client_bound(
        1,
        "0.0.0.0:0",
        "chat Ada",
        "chat",
        &["--room", room, "--name", "Ada"],
    );
    ada.wait_for(Stream::Stderr, "joined room", 0);
    let bob = lab.peer_client(2, "chat Bob", "chat", &["--room", room, "--name", "Bob"]);
    ada.wait_for(Stream::Stderr, CHAT_OPEN, 0);
    bob.wait_for(Stream::Stderr, CHAT_OPEN, 0);
    ada.write_line("before the move");
    bob.wait_for(Stream::Stdout, "Ada: before the move", 0);
    (ada, bob)
}

/// Ada and Bob each write a line; returns how long after `since` each
/// arrived (at Bob, at Ada), failing after `limit`.
fn lines_cross(
    ada: &mut e2e::Process,
    bob: &mut e2e::Process,
    since: Instant,
    limit: Duration,
) -> (Duration, Duration) {
    ada.write_line("from the new network");
    bob.write_line("to the new network");
    let wait = |process: &e2e::Process, needle: &str| {
        while !process.log().contains(needle) {
            assert!(
                since.elapsed() < limit,
                "{needle:?} did not arrive within {limit:?}\n{}{}",
                ada.log(),
                bob.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        since.elapsed()
    };
    (
        wait(bob, "Ada: from the new network"),
        wait(ada, "Bob: to the new network"),
    )
}

#[test]
fn path_change_keeps_the_chat() {
    let lab = lab(["ada", "bob"]);
    let (mut ada, mut bob) = chatting(&lab, "moving");
    move_host(&lab.hosts[0]);
    let (at_bob, at_ada) = lines_cross(&mut ada, &mut bob, Instant::now(), GAP_LIMIT);
    println!(
        "lines written just after the move arrived after {at_bob:.2?} (at Bob) and {at_ada:.2?} (at Ada)"
    );
}

#[test]
fn a_host_between_networks_chats_again_once_it_has_an_address() {
    let lab = lab(["ada", "bob"]);
    let (mut ada, mut bob) = chatting(&lab, "between");
    // Two looks at the addresses pass with none on the wire: Ada's restart
    // then can only offer the signaling network's address, which Bob cannot
    // reach.
    move_host_slowly(&lab.hosts[0], Duration::from_millis(2_500));
    let (at_bob, at_ada) = lines_cross(&mut ada, &mut bob, Instant::now(), BACK_LIMIT);
    println!(
        "lines written once Ada had an address again arrived after {at_bob:.2?} (at Bob) and {at_ada:.2?} (at Ada)"
    );
}
