//! Attacks on a transfer, with the real `peer-client` binary on the victim's
//! side: a signaling server that puts itself in the middle (it terminates
//! both WebRTC connections and relays every message, the code phrase's
//! SPAKE2 messages included) is detected by the fingerprint binding; a
//! sender that knows the code but offers hostile paths gets them refused, a
//! file that fails its hash or overruns its size is not kept, an oversized
//! manifest is refused while it is read, and a sender that goes silent ends
//! the receive within the idle timeout, keeping what arrived.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use peer_client::auth::{Code, Role};
use peer_client::transfer::{
    EntryKind, Incoming, Link, MAX_ENTRIES, MAX_PATH_BYTES_TOTAL, Message, TRANSFER_LABEL,
    TransferError, paths, transfer_session,
};
use peer_client::{Channel, Event, Payload, Session};
use peer_client::{SessionConfig, TransportOptions};
use test_support::TestServer;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Longest wait for any one step.
const STEP: Duration = Duration::from_secs(15);

/// `future`, failing the test if it takes longer than [`STEP`].
async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, future)
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than {STEP:?}"))
}

/// Session settings for `room` on `url`, bound to loopback.
fn config(url: &str, room: &str) -> SessionConfig {
    let mut config = SessionConfig::new(url, room);
    config.transport = TransportOptions::loopback();
    config
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("attack-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `peer-client` whose stderr goes to a file (read after it exits,
/// or when it fails to exit in time).
struct Running {
    child: Child,
    stderr: PathBuf,
}

static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn peer_client(args: &[&str]) -> Running {
    let stderr = std::env::temp_dir().join(format!(
        "attack-stderr-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let child = Command::new(env!("CARGO_BIN_EXE_peer-client"))
        .args(args)
        .env("RUST_LOG", "warn,peer_client=debug")
        .env("NO_COLOR", "1")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("start peer-client (cargo builds it for integration tests)");
    Running { child, stderr }
}

fn receiver(server: &str, code: &str, out: &Path) -> Running {
    receiver_with(server, code, out, &[])
}

fn receiver_with(server: &str, code: &str, out: &Path, extra: &[&str]) -> Running {
    let out = out.display().to_string();
    let mut args = vec![
        "receive",
        code,
        "--server",
        server,
        "--out",
        &out,
        "--bind",
        "127.0.0.1:0",
        "--yes",
    ];
    args.extend_from_slice(extra);
    peer_client(&args)
}

/// A hostile sender that knows `code`, linked to a receiver started with
/// `extra` arguments.
async fn hostile_sender(
    server: &TestServer,
    code: &str,
    out: &Path,
    extra: &[&str],
) -> (Link, Running) {
    let code = Code::parse(code).unwrap();
    let mut session = join_transfer_room(&server.url(), &code).await;
    let receiver = receiver_with(&server.url(), code.as_str(), out, extra);
    let channel = transfer_channel(&mut session).await;
    let link = bounded(
        "the handshake",
        Link::over(session, channel, &code, Role::Sender),
    )
    .await
    .expect("the hostile sender knows the code");
    (link, receiver)
}

/// Joins the room of `code` as a peer-client would: with the transfer channel
/// negotiated, so the other side's channel has its counterpart here.
async fn join_transfer_room(url: &str, code: &Code) -> Session {
    let config = transfer_session(config(url, &code.room()), code);
    bounded("joining", Session::connect(config)).await.unwrap()
}

/// The receiver's `error` message, as the sender's link reports it.
async fn refusal(link: &mut Link) -> String {
    match bounded("the receiver's answer", link.recv()).await {
        Err(TransferError::Peer(message)) => message,
        other => panic!("expected the receiver to stop with an error, got {other:?}"),
    }
}

/// Waits (bounded) for the process to exit; returns success and stderr.
async fn finish(running: Running) -> (bool, String) {
    match try_finish(running).await {
        (Some(ok), stderr) => (ok, stderr),
        (None, stderr) => panic!("peer-client did not exit within {STEP:?}; its stderr:\n{stderr}"),
    }
}

/// Waits (bounded) for the process to exit; `None` if it did not.
async fn try_finish(mut running: Running) -> (Option<bool>, String) {
    let status = tokio::time::timeout(STEP, running.child.wait()).await;
    let stderr = std::fs::read_to_string(&running.stderr).unwrap_or_default();
    let _ = std::fs::remove_file(&running.stderr);
    (status.ok().map(|s| s.unwrap().success()), stderr)
}

async fn transfer_channel(session: &mut Session) -> Channel {
    transfer_channel_and_early(session).await.0
}

/// The transfer channel, and any messages on it reported before it opened.
async fn transfer_channel_and_early(session: &mut Session) -> (Channel, Vec<Payload>) {
    bounded("the transfer channel", async {
        let mut early = Vec::new();
        while let Some(event) = session.next_event().await {
            match event {
                Event::ChannelOpen { channel, .. } if channel.label() == TRANSFER_LABEL => {
                    return (channel, early);
                }
                Event::Message { label, payload, .. } if label == TRANSFER_LABEL => {
                    early.push(payload);
                }
                _ => {}
            }
        }
        panic!("the session ended before the transfer channel opened")
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signaling_server_in_the_middle_is_detected() {
    // The sender uses the honest server; the receiver was pointed at the
    // attacker's, which bridges the two rooms with WebRTC links of its own.
    let honest = TestServer::loopback();
    let rogue = TestServer::loopback();
    let temp = TempDir::new("mitm");
    let file = temp.0.join("secret.txt");
    std::fs::write(&file, b"for the receiver only").unwrap();
    let code = Code::parse("47-apple-tiger").unwrap();

    let mut sender = peer_client(&[
        "send",
        &file.display().to_string(),
        "--server",
        &honest.url(),
        "--code",
        code.as_str(),
        "--bind",
        "127.0.0.1:0",
    ]);
    let mut lines = BufReader::new(sender.child.stdout.take().unwrap()).lines();
    bounded("the sender's code", async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains(code.as_str()) {
                return;
            }
        }
        panic!("the sender exited before printing its code");
    })
    .await;

    // The attacker knows the public nameplate, hence the room; not the secret.
    let mut toward_receiver = join_transfer_room(&rogue.url(), &code).await;
    let mut toward_sender = join_transfer_room(&honest.url(), &code).await;
    let out = temp.0.join("out");
    let receiver = receiver(&rogue.url(), code.as_str(), &out);
    let (sender_side, from_sender) = transfer_channel_and_early(&mut toward_sender).await;
    let (receiver_side, from_receiver) = transfer_channel_and_early(&mut toward_receiver).await;
    for payload in from_sender {
        receiver_side.send(payload).await.unwrap();
    }
    for payload in from_receiver {
        sender_side.send(payload).await.unwrap();
    }

    // Relay every message both ways, unchanged (one task per direction).
    let relay = |mut from: Session, to: Channel| {
        tokio::spawn(async move {
            while let Some(event) = from.next_event().await {
                if let Event::Message { label, payload, .. } = event
                    && label == TRANSFER_LABEL
                {
                    let _ = to.send(payload).await;
                }
            }
        })
    };
    let upstream = relay(toward_receiver, sender_side);
    let downstream = relay(toward_sender, receiver_side);

    let (received, receiver_err) = try_finish(receiver).await;
    let (sent, sender_err) = try_finish(sender).await;
    upstream.abort();
    downstream.abort();
    assert!(
        received == Some(false) && sent == Some(false),
        "receiver {received:?}:\n{receiver_err}\nsender {sent:?}:\n{sender_err}"
    );
    assert!(
        receiver_err.contains(
            "the code did not match, or someone is interfering with the connection; no file was written"
        ),
        "{receiver_err}"
    );
    assert!(
        sender_err.contains("someone is interfering with the connection; nothing was sent"),
        "{sender_err}"
    );
    assert!(!out.exists(), "the receiver created its output directory");
}

/// Runs a hostile sender that knows the code and offers one entry at
/// `path`; returns the receiver's stderr.
async fn offer_hostile_path(
    code: &str,
    path: &str,
    out: &Path,
    prepare: impl FnOnce(&Path),
) -> String {
    let server = TestServer::loopback();
    let code = Code::parse(code).unwrap();
    let mut session = join_transfer_room(&server.url(), &code).await;
    prepare(out);
    let receiver = receiver(&server.url(), code.as_str(), out);
    let channel = transfer_channel(&mut session).await;
    let mut link = bounded(
        "the handshake",
        Link::over(session, channel, &code, Role::Sender),
    )
    .await
    .expect("the hostile sender knows the code");
    link.send(&Message::Offer {
        entries: 1,
        bytes: 4,
    })
    .await
    .unwrap();
    link.send(&Message::Entry {
        path: path.to_owned(),
        kind: EntryKind::File,
        size: 4,
    })
    .await
    .unwrap();
    // The receiver says why it stops.
    let reply = bounded("the receiver's answer", link.recv()).await;
    match reply {
        Err(TransferError::Peer(message)) => {
            assert!(message.contains("refused the path"), "{message}")
        }
        other => panic!("expected the receiver to refuse, got {other:?}"),
    }
    let (ok, stderr) = finish(receiver).await;
    assert!(!ok, "the receiver accepted {path:?}");
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_paths_from_a_sender_with_the_code_are_refused() {
    let temp = TempDir::new("paths");
    let cases = [
        ("../escaped.txt", "it contains . or .."),
        ("/tmp/absolute.txt", "it is absolute"),
        ("inner/../../escaped.txt", "it contains . or .."),
        ("C:/Windows/escaped.txt", "Windows drive prefix"),
        ("inner\\..\\escaped.txt", "backslash"),
        ("name\u{1b}[2J", "control characters"),
    ];
    for (index, (path, reason)) in cases.iter().enumerate() {
        let out = temp.0.join(format!("out{index}"));
        let stderr = offer_hostile_path("48-apple-tiger", path, &out, |_| {}).await;
        assert!(stderr.contains("refused the path"), "{path:?}: {stderr}");
        assert!(stderr.contains(reason), "{path:?}: {stderr}");
        assert!(
            !stderr.contains('\u{1b}'),
            "an escape reached the terminal: {stderr:?}"
        );
        assert!(!out.exists(), "{path:?}: the output directory was created");
    }
    assert!(!temp.0.join("escaped.txt").exists());

    // A symbolic link planted in the output directory does not lead out.
    let out = temp.0.join("out-link");
    let outside = temp.0.join("outside");
    let stderr = offer_hostile_path("49-apple-tiger", "link/escaped.txt", &out, |out| {
        std::fs::create_dir_all(out).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, out.join("link")).unwrap();
    })
    .await;
    assert!(stderr.contains("symbolic link"), "{stderr}");
    assert!(!outside.join("escaped.txt").exists());
}

/// Offers one file, `file.bin` of `size` bytes, waits for the acceptance and
/// starts the file from offset 0.
async fn start_single_file(link: &mut Link, size: u64) {
    for message in [
        Message::Offer {
            entries: 1,
            bytes: size,
        },
        Message::Entry {
            path: "file.bin".into(),
            kind: EntryKind::File,
            size,
        },
    ] {
        link.send(&message).await.unwrap();
    }
    let accepted = bounded("the acceptance", link.recv()).await.unwrap();
    assert!(
        matches!(accepted, Incoming::Message(Message::Accept { .. })),
        "{accepted:?}"
    );
    link.send(&Message::File {
        index: 0,
        offset: 0,
    })
    .await
    .unwrap();
}

/// A hostile sender that offers `file.bin` (4 bytes), then sends `data` and
/// closes the file with `hash`; returns the receiver's stderr.
async fn send_bad_file(code: &str, out: &Path, data: &[u8], hash: &str) -> String {
    let server = TestServer::loopback();
    let code = Code::parse(code).unwrap();
    let mut session = join_transfer_room(&server.url(), &code).await;
    let receiver = receiver(&server.url(), code.as_str(), out);
    let channel = transfer_channel(&mut session).await;
    let mut link = bounded(
        "the handshake",
        Link::over(session, channel, &code, Role::Sender),
    )
    .await
    .unwrap();
    start_single_file(&mut link, 4).await;
    link.send_data(bytes::BytesMut::from(data)).await.unwrap();
    link.send(&Message::FileEnd {
        index: 0,
        blake3: hash.to_owned(),
    })
    .await
    .unwrap();
    let (ok, stderr) = finish(receiver).await;
    assert!(!ok, "the receiver accepted a bad file");
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_fails_its_hash_or_overruns_its_size_is_not_kept() {
    let temp = TempDir::new("badfile");
    let out = temp.0.join("out");
    let wrong_hash = "00".repeat(32);
    let stderr = send_bad_file("50-apple-tiger", &out, b"abcd", &wrong_hash).await;
    assert!(
        stderr.contains("file.bin: the received data does not match the sender's BLAKE3 hash"),
        "{stderr}"
    );
    assert!(!out.join("file.bin").exists());
    assert!(!out.join("file.bin.part").exists());

    let out = temp.0.join("out2");
    let stderr = send_bad_file("51-apple-tiger", &out, b"abcdefgh", &wrong_hash).await;
    assert!(
        stderr.contains("more data than the size offered for \"file.bin\""),
        "{stderr}"
    );
    assert!(!out.join("file.bin").exists());
}

/// A path of exactly `MAX_PATH_BYTES` bytes, unique by `index`.
fn longest_path(index: usize) -> String {
    let mut path = format!("d{index:07}");
    while path.len() < paths::MAX_PATH_BYTES {
        let room = paths::MAX_PATH_BYTES - path.len() - 1;
        path.push('/');
        path.push_str(&"x".repeat(room.min(paths::MAX_COMPONENT_BYTES)));
    }
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_manifest_is_refused_while_it_is_read() {
    let server = TestServer::loopback();
    let temp = TempDir::new("manifest");

    // More entries than allowed: refused on the offer, before any entry.
    let out = temp.0.join("out-entries");
    let (mut link, receiver) = hostile_sender(&server, "56-apple-tiger", &out, &[]).await;
    link.send(&Message::Offer {
        entries: MAX_ENTRIES as u64 + 1,
        bytes: 0,
    })
    .await
    .unwrap();
    let message = refusal(&mut link).await;
    assert!(
        message.contains("the offer has 100001 entries, at most 100000 are accepted"),
        "{message}"
    );
    let (ok, stderr) = finish(receiver).await;
    assert!(!ok && stderr.contains("at most 100000"), "{stderr}");
    assert!(!out.exists());

    // Few enough entries, but paths of 4096 bytes each: refused as soon as
    // they add up to more than MAX_PATH_BYTES_TOTAL.
    let out = temp.0.join("out-paths");
    let (mut link, receiver) = hostile_sender(&server, "57-apple-tiger", &out, &[]).await;
    let fitting = MAX_PATH_BYTES_TOTAL / paths::MAX_PATH_BYTES;
    link.send(&Message::Offer {
        entries: 2 * fitting as u64,
        bytes: 0,
    })
    .await
    .unwrap();
    for index in 0..=fitting {
        link.send(&Message::Entry {
            path: longest_path(index),
            kind: EntryKind::Dir,
            size: 0,
        })
        .await
        .unwrap();
    }
    let message = refusal(&mut link).await;
    assert!(
        message.contains("the manifest's paths take more than 16 MiB together"),
        "{message}"
    );
    let (ok, stderr) = finish(receiver).await;
    assert!(!ok && stderr.contains("more than 16 MiB"), "{stderr}");
    assert!(!out.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_that_goes_silent_ends_the_receive_and_what_arrived_is_kept() {
    let server = TestServer::loopback();
    let temp = TempDir::new("silent");

    // Silent in the middle of a file.
    let out = temp.0.join("out-file");
    let (mut link, receiver) =
        hostile_sender(&server, "58-apple-tiger", &out, &["--idle-timeout", "2"]).await;
    let size = 1024 * 1024;
    start_single_file(&mut link, size).await;
    let sent = vec![7u8; 64 * 1024];
    link.send_data(bytes::BytesMut::from(&sent[..]))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let message = refusal(&mut link).await;
    assert!(
        message.contains("the sender sent nothing for 2 s"),
        "{message}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let (ok, stderr) = finish(receiver).await;
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("the sender sent nothing for 2 s; stopped waiting (files received so far are kept, run the same command again to resume)"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(out.join("file.bin.part")).unwrap(), sent);
    assert!(!out.join("file.bin").exists());

    // Silent in the middle of its manifest.
    let out = temp.0.join("out-manifest");
    let (mut link, receiver) =
        hostile_sender(&server, "59-apple-tiger", &out, &["--idle-timeout", "2"]).await;
    for message in [
        Message::Offer {
            entries: 2,
            bytes: 0,
        },
        Message::Entry {
            path: "first".into(),
            kind: EntryKind::Dir,
            size: 0,
        },
    ] {
        link.send(&message).await.unwrap();
    }
    let message = refusal(&mut link).await;
    assert!(
        message.contains("the sender sent nothing for 2 s"),
        "{message}"
    );
    let (ok, stderr) = finish(receiver).await;
    assert!(!ok && stderr.contains("sent nothing for 2 s"), "{stderr}");
    assert!(!out.exists());
}

/// The next frame of file data within a second, or `None`.
async fn data_within_a_second(link: &mut Link) -> Option<usize> {
    match tokio::time::timeout(Duration::from_secs(1), link.recv()).await {
        Err(_) => None,
        Ok(Ok(Incoming::Data(data))) => Some(data.len()),
        Ok(other) => panic!("expected file data, got {other:?}"),
    }
}

#[tokio::test]
async fn a_sender_keeps_to_the_window_a_receiver_announces_and_refuses_a_false_report() {
    const WINDOW: u64 = 64 * 1024;
    let server = TestServer::loopback();
    let temp = TempDir::new("window");
    let file = temp.0.join("big.bin");
    std::fs::write(&file, vec![3u8; 1024 * 1024]).unwrap();
    let code = Code::parse("61-apple-tiger").unwrap();
    let mut session = join_transfer_room(&server.url(), &code).await;
    let file_arg = file.display().to_string();
    let sender = peer_client(&[
        "send",
        &file_arg,
        "--server",
        &server.url(),
        "--code",
        code.as_str(),
        "--bind",
        "127.0.0.1:0",
    ]);
    let channel = transfer_channel(&mut session).await;
    let mut link = bounded(
        "the handshake",
        Link::over(session, channel, &code, Role::Receiver),
    )
    .await
    .expect("the receiver knows the code");
    for wanted in ["offer", "entry"] {
        let heard = bounded("the manifest", link.recv()).await.unwrap();
        assert!(
            matches!(&heard, Incoming::Message(m) if m.kind() == wanted),
            "{heard:?}"
        );
    }
    link.send(&Message::Accept {
        window: Some(WINDOW),
    })
    .await
    .unwrap();
    let start = bounded("the file", link.recv()).await.unwrap();
    assert!(
        matches!(start, Incoming::Message(Message::File { .. })),
        "{start:?}"
    );

    // A window's worth arrives, then nothing until the receiver reports it took it.
    let mut received = 0;
    while let Some(bytes) = data_within_a_second(&mut link).await {
        received += bytes as u64;
    }
    assert_eq!(received, WINDOW);
    link.send(&Message::Consumed { bytes: WINDOW })
        .await
        .unwrap();
    let more = data_within_a_second(&mut link).await;
    assert_eq!(more, Some(WINDOW as usize));

    // A report of more than was sent ends the transfer as a protocol error.
    link.send(&Message::Consumed { bytes: 10 << 20 })
        .await
        .unwrap();
    let (ok, stderr) = finish(sender).await;
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("the other side broke the transfer protocol: consumed 10485760 bytes"),
        "{stderr}"
    );
}
