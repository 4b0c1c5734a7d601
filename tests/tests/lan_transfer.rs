//! Two computers on one network, two commands, nothing set up: `peer-client
//! send` serves signaling itself and announces the code's number by mDNS;
//! `peer-client receive CODE` finds it. Hosts are network namespaces on one
//! bridge (`e2e::lan`), with no signaling server anywhere else.
//!
//! Needs root, iproute2; the page test Debian's chromium and `npm ci` in
//! `web/tests`.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use e2e::lan::Lan;
use e2e::{Process, Stream, pseudo_random};

/// Time allowed for a transfer of these few MiB.
const TRANSFER_LIMIT: Duration = Duration::from_secs(60);

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("e2e-lan-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// A folder `name` with two files of `bytes` each; returns its path.
    fn folder(&self, name: &str, bytes: usize, seed: u64) -> PathBuf {
        let folder = self.0.join(name);
        std::fs::create_dir_all(folder.join("inner")).unwrap();
        std::fs::write(folder.join("a.bin"), pseudo_random(bytes, seed)).unwrap();
        std::fs::write(
            folder.join("inner/b.bin"),
            pseudo_random(bytes / 3, seed + 1),
        )
        .unwrap();
        folder
    }

    fn out(&self, name: &str) -> PathBuf {
        let out = self.0.join(name);
        std::fs::create_dir_all(&out).unwrap();
        out
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The string value of `"field":"…"` in a JSON line.
fn field(line: &str, name: &str) -> String {
    let key = format!("\"{name}\":\"");
    let start = line
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {line}"))
        + key.len();
    line[start..].split('"').next().unwrap().to_owned()
}

/// `peer-client send --json PATH` on `host`, with `extra` arguments; returns
/// it and its `code` event line.
fn send(lan: &Lan, host: usize, path: &Path, extra: &[&str]) -> (Process, String) {
    let path = path.display().to_string();
    let mut args = vec!["send", "--json"];
    args.extend_from_slice(extra);
    args.push(&path);
    let sender = lan.host(host).spawn("send", "peer-client", &args);
    let line = sender.wait_for(Stream::Stdout, r#""event":"code""#, 0);
    (sender, line)
}

/// `peer-client receive CODE --out OUT --yes` on `host`.
fn receive(lan: &Lan, host: usize, code: &str, out: &Path) -> Process {
    let out = out.display().to_string();
    lan.host(host).spawn(
        "receive",
        "peer-client",
        &["receive", code, "--out", &out, "--yes"],
    )
}

/// Waits for `process` to exit within `limit`; returns whether it succeeded.
fn exit_ok(process: &mut Process, limit: Duration) -> bool {
    process
        .wait_exit_within(limit)
        .unwrap_or_else(|| panic!("still running after {limit:?}:\n{}", process.log()))
        .success()
}

/// Whether `out/name` holds the same files as `folder`.
fn same_folder(folder: &Path, out: &Path) -> bool {
    let name = folder.file_name().unwrap();
    ["a.bin", "inner/b.bin"].iter().all(|file| {
        std::fs::read(folder.join(file)).ok() == std::fs::read(out.join(name).join(file)).ok()
    })
}

#[test]
fn two_commands_on_one_network_move_a_folder() {
    let lan = Lan::new("lan", 2);
    let scratch = Scratch::new("two");
    let folder = scratch.folder("photos", 3 << 20, 1);
    let out = scratch.out("out");
    let (mut sender, line) = send(&lan, 1, &folder, &[]);
    let code = field(&line, "code");
    // What the sender tells the user to run on the other computer needs no
    // server, and its link is an address that computer reaches.
    assert_eq!(
        field(&line, "receive_command"),
        format!("peer-client receive {code}")
    );
    assert!(
        field(&line, "web_link").starts_with("http://10.78.0.1:"),
        "{line}"
    );
    let mut receiver = receive(&lan, 2, &code, &out);
    assert!(
        exit_ok(&mut receiver, TRANSFER_LIMIT),
        "{}{}",
        receiver.log(),
        sender.log()
    );
    assert!(exit_ok(&mut sender, TRANSFER_LIMIT), "{}", sender.log());
    assert!(same_folder(&folder, &out), "the folder arrived intact");
}

#[test]
fn a_page_on_a_third_host_receives_through_the_printed_link() {
    let modules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/tests/node_modules");
    assert!(
        modules.exists(),
        "{} is missing: run `npm ci` in web/tests first (scripts/test does)",
        modules.display()
    );
    let lan = Lan::new("lanweb", 3);
    let scratch = Scratch::new("web");
    let data = pseudo_random(2 << 20, 5);
    let file = scratch.0.join("data.bin");
    std::fs::write(&file, &data).unwrap();
    let out = scratch.out("out");
    let (mut sender, line) = send(&lan, 1, &file, &[]);
    let code = field(&line, "code");
    let link = field(&line, "web_link");
    let base = link.split('#').next().unwrap().to_owned();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/tests/support/wire-page.js");
    let script = script.display().to_string();
    let out_arg = out.display().to_string();
    let mut page = lan.host(3).spawn_program(
        "page receive",
        "node",
        &[&script, "receive", &base, &code, &out_arg],
    );
    assert!(
        exit_ok(&mut page, TRANSFER_LIMIT),
        "{}{}",
        page.log(),
        sender.log()
    );
    assert!(exit_ok(&mut sender, TRANSFER_LIMIT), "{}", sender.log());
    assert_eq!(std::fs::read(out.join("data.bin")).unwrap(), data);
}

#[test]
fn two_senders_at_once_each_reach_their_receiver() {
    let lan = Lan::new("lantwo", 3);
    let scratch = Scratch::new("pair");
    let first = scratch.folder("first", 1 << 20, 11);
    let second = scratch.folder("second", 1 << 20, 12);
    let (mut sender_1, line_1) = send(&lan, 1, &first, &[]);
    let (mut sender_3, line_3) = send(&lan, 3, &second, &[]);
    let (code_1, code_3) = (field(&line_1, "code"), field(&line_3, "code"));
    assert_ne!(
        code_1.split('-').next(),
        code_3.split('-').next(),
        "a sender draws a number no other sender on the network announces"
    );
    let (out_1, out_3) = (scratch.out("out1"), scratch.out("out3"));
    let mut receiver_3 = receive(&lan, 2, &code_3, &out_3);
    let mut receiver_1 = receive(&lan, 2, &code_1, &out_1);
    for process in [
        &mut receiver_1,
        &mut receiver_3,
        &mut sender_1,
        &mut sender_3,
    ] {
        assert!(exit_ok(process, TRANSFER_LIMIT), "{}", process.log());
    }
    assert!(same_folder(&first, &out_1));
    assert!(same_folder(&second, &out_3));
    assert!(!out_1.join("second").exists() && !out_3.join("first").exists());
}

#[test]
fn a_neighbour_announcing_the_number_with_another_secret_gets_nothing() {
    let lan = Lan::new("lanevil", 2);
    let scratch = Scratch::new("evil");
    let bait = scratch.folder("bait", 64 << 10, 21);
    let out = scratch.out("out");
    // Host 1 answers the discovery for number 21, but does not know the words.
    let (mut neighbour, _) = send(&lan, 1, &bait, &["--code", "21-wrong-guess-words"]);
    let mut receiver = receive(&lan, 2, "21-right-secret-words", &out);
    assert!(
        !exit_ok(&mut receiver, TRANSFER_LIMIT),
        "the receiver must refuse a sender that cannot prove the code:\n{}",
        receiver.log()
    );
    let said = receiver.log();
    assert!(
        said.contains("the sender found at ws://10.78.0.1:"),
        "it found the neighbour and says so:\n{said}"
    );
    assert!(
        std::fs::read_dir(&out).unwrap().next().is_none(),
        "nothing was written"
    );
    let log = neighbour.log();
    assert!(
        !log.contains(r#""event":"done""#),
        "the neighbour sent nothing:\n{log}"
    );
    neighbour.kill();
}

#[test]
fn a_receiver_with_no_sender_on_the_network_says_so_within_seconds() {
    let lan = Lan::new("lannone", 2);
    let scratch = Scratch::new("none");
    let out = scratch.out("out");
    let started = Instant::now();
    let mut receiver = receive(&lan, 2, "31-nobody-sends-this", &out);
    assert!(!exit_ok(&mut receiver, Duration::from_secs(10)));
    let took = started.elapsed();
    let log = receiver.log();
    assert!(
        log.contains("no sender of code number 31 on this network") && log.contains("--server"),
        "{log}"
    );
    println!("no sender: the receiver gave up after {took:.2?}");
    assert!(took < Duration::from_secs(8), "{took:?}");
}

#[test]
fn a_sender_that_stops_is_gone_from_the_network() {
    let lan = Lan::new("lanstop", 2);
    let scratch = Scratch::new("stop");
    let folder = scratch.folder("gone", 64 << 10, 41);
    let out = scratch.out("out");
    let (mut sender, line) = send(&lan, 1, &folder, &[]);
    let code = field(&line, "code");
    sender.terminate();
    assert!(!exit_ok(&mut sender, Duration::from_secs(10)));
    let log = sender.log();
    assert!(log.contains("stopped by SIGTERM"), "{log}");
    // It stopped cleanly (its announcement withdrawn, its server closed), and
    // nobody answers for its number any more: the receiver says so.
    let mut receiver = receive(&lan, 2, &code, &out);
    assert!(!exit_ok(&mut receiver, Duration::from_secs(10)));
    let said = receiver.log();
    assert!(said.contains("no sender of code number"), "{said}");
}
