//! Sending to a swarm with the real `peer-client` binary on loopback: four
//! receivers each get every file and pass pieces on to each other; a
//! receiver that serves corrupted pieces is caught and the others finish;
//! the sender may leave once every piece is held by some receiver; a
//! receiver left with pieces nobody has says so and resumes from what it
//! kept; a peer without the code learns nothing, and a sender that sees the
//! code guessed at too often stops.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use peer_client::auth::{Code, Pake, Role};
use peer_client::swarm::swarm_session;
use peer_client::transfer::{Message, TRANSFER_LABEL};
use peer_client::{Event, Payload, PeerId, Session, SessionConfig, TransportOptions};
use test_support::TestServer;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Longest wait for a whole swarm to finish.
const LIMIT: Duration = Duration::from_secs(90);
const PIECE: usize = 1 << 20;

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("swarm-{name}-{}", std::process::id()));
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

/// A running `peer-client` with `--json`: its stdout lines as they come,
/// its stderr in a file.
struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: PathBuf,
}

static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Running {
    fn start(args: &[&str]) -> Self {
        let stderr = std::env::temp_dir().join(format!(
            "swarm-stderr-{}-{}",
            std::process::id(),
            RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let mut child = Command::new(env!("CARGO_BIN_EXE_peer-client"))
            .args(args)
            .arg("--json")
            .env("RUST_LOG", "warn,peer_client=info")
            .env("NO_COLOR", "1")
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("start peer-client (cargo builds it for integration tests)");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let sink = Arc::clone(&lines);
        tokio::spawn(async move {
            while let Ok(Some(line)) = stdout.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        Self {
            child,
            lines,
            stderr,
        }
    }

    /// Waits until a stdout line contains `needle`; returns it.
    async fn wait_line(&self, needle: &str) -> String {
        self.wait_line_where(needle, |line| line.contains(needle))
            .await
    }

    /// Waits until a stdout line is one `wanted` accepts (`what` names it); returns it.
    async fn wait_line_where(&self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let found = tokio::time::timeout(LIMIT, async {
            loop {
                if let Some(line) = self.lines.lock().unwrap().iter().find(|l| wanted(l)) {
                    return line.clone();
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("no line with {what:?}; stderr:\n{}", self.stderr_text()))
    }

    fn stdout(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits (bounded) for the exit; returns success, stdout and stderr.
    async fn finish(mut self) -> (bool, String, String) {
        let status = tokio::time::timeout(LIMIT, self.child.wait()).await;
        // The last lines may still be on their way from the pipe.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stderr = self.stderr_text();
        let _ = std::fs::remove_file(&self.stderr);
        let Ok(status) = status else {
            panic!("peer-client did not exit within {LIMIT:?}; stderr:\n{stderr}");
        };
        (status.unwrap().success(), self.stdout(), stderr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.stderr);
    }
}

fn sender(server: &str, code: &str, receivers: usize, paths: &[&Path]) -> Running {
    let receivers = receivers.to_string();
    let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let mut args = vec![
        "send",
        "--receivers",
        &receivers,
        "--server",
        server,
        "--code",
        code,
        "--bind",
        "127.0.0.1:0",
    ];
    args.extend(paths.iter().map(String::as_str));
    Running::start(&args)
}

fn receiver(server: &str, code: &str, out: &Path) -> Running {
    receiver_with(server, code, out, &[])
}

fn receiver_with(server: &str, code: &str, out: &Path, extra: &[&str]) -> Running {
    let out = out.display().to_string();
    let mut args = vec![
        "receive",
        "--swarm",
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
    Running::start(&args)
}

/// A file of `len` bytes that differ from piece to piece.
fn write_file(path: &Path, len: usize, seed: u64) {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

/// A field of a JSON line.
fn field(line: &str, name: &str) -> u64 {
    let value: serde_json::Value = serde_json::from_str(line).unwrap();
    value[name]
        .as_u64()
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_receivers_each_get_every_file_and_pass_pieces_on() {
    let server = TestServer::loopback();
    let dir = TempDir::new("four");
    let tree = dir.0.join("tree");
    write_file(&tree.join("big.bin"), 16 * PIECE + 12_345, 1);
    write_file(&tree.join("sub/small.txt"), 100, 2);
    std::fs::write(tree.join("empty.txt"), b"").unwrap();
    std::fs::create_dir_all(tree.join("empty-dir")).unwrap();
    let code = "41-swarm-test-four-receivers";
    let sending = sender(&server.url(), code, 4, &[&tree]);
    sending.wait_line("\"code\"").await;
    let outs: Vec<PathBuf> = (0..4).map(|i| dir.0.join(format!("out{i}"))).collect();
    let mut receiving: Vec<Running> = outs[..3]
        .iter()
        .map(|out| receiver(&server.url(), code, out))
        .collect();
    // The last one runs `receive CODE` without `--swarm`: nobody sends the
    // code to one receiver, so it looks for a swarm.
    let last = outs[3].display().to_string();
    receiving.push(Running::start(&[
        "receive",
        code,
        "--server",
        &server.url(),
        "--out",
        &last,
        "--bind",
        "127.0.0.1:0",
        "--yes",
    ]));

    let mut passed_on = 0;
    for (running, out) in receiving.into_iter().zip(&outs) {
        let (ok, stdout, stderr) = running.finish().await;
        assert!(ok, "a receiver failed:\n{stderr}");
        let done = stdout.lines().find(|l| l.contains("\"done\"")).unwrap();
        passed_on += field(done, "uploaded_bytes");
        for file in ["big.bin", "sub/small.txt", "empty.txt"] {
            assert_eq!(
                std::fs::read(out.join("tree").join(file)).unwrap(),
                std::fs::read(tree.join(file)).unwrap(),
                "{file}"
            );
        }
        assert!(out.join("tree/empty-dir").is_dir());
        assert!(!out.join("tree/big.bin.part").exists());
    }
    let (ok, stdout, stderr) = sending.finish().await;
    assert!(ok, "the sender failed:\n{stderr}");
    let done = stdout.lines().find(|l| l.contains("\"done\"")).unwrap();
    let total = field(done, "total_bytes");
    let uploaded = field(done, "uploaded_bytes");
    assert!(
        uploaded < 4 * total,
        "the sender uploaded {uploaded} bytes of {total} to four receivers"
    );
    assert!(
        passed_on > 0,
        "the receivers passed nothing on to each other"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_serves_corrupted_pieces_is_caught_and_the_others_finish() {
    let server = TestServer::loopback();
    let dir = TempDir::new("corrupt");
    let file = dir.0.join("data.bin");
    write_file(&file, 8 * PIECE, 3);
    let code = "42-swarm-test-corrupted-pieces";
    let sending = sender(&server.url(), code, 2, &[&file]);
    sending.wait_line("\"code\"").await;
    let liar = tokio::spawn(serve_garbage(server.url(), code));
    // The liar is in the room before the honest receivers arrive.
    sending.wait_line("\"joined\"").await;
    let outs: Vec<PathBuf> = (0..2).map(|i| dir.0.join(format!("out{i}"))).collect();
    let receiving: Vec<Running> = outs
        .iter()
        .map(|out| receiver(&server.url(), code, out))
        .collect();

    let mut caught = 0;
    for (running, out) in receiving.into_iter().zip(&outs) {
        let (ok, stdout, stderr) = running.finish().await;
        assert!(ok, "a receiver failed:\n{stderr}");
        assert_eq!(
            std::fs::read(out.join("data.bin")).unwrap(),
            std::fs::read(&file).unwrap()
        );
        if stdout.contains("does not match the sender's hash") {
            caught += 1;
        }
    }
    let served = liar.await.unwrap();
    assert!(served > 0, "nobody asked the liar for a piece");
    assert!(caught > 0, "no receiver reported the corrupted pieces");
    let (ok, _, stderr) = sending.finish().await;
    assert!(ok, "the sender failed:\n{stderr}");
}

/// A peer that knows the code, claims every piece, and answers every
/// request with garbage. Returns how many pieces it served.
async fn serve_garbage(url: String, code: &'static str) -> usize {
    let code = Code::parse(code).unwrap();
    let mut config = swarm_session(SessionConfig::new(&url, ""), &code);
    config.transport = TransportOptions::loopback();
    let mut session = Session::connect(config).await.unwrap();
    let handle = session.handle();
    let mut pakes: HashMap<PeerId, Pake> = HashMap::new();
    let mut proven = Vec::new();
    let mut digest: Option<String> = None;
    let mut served = 0;
    let send = |peer: PeerId, message: Message| {
        let handle = handle.clone();
        async move {
            let _ = handle
                .send(peer, TRANSFER_LABEL, Payload::Text(message.to_json()))
                .await;
        }
    };
    let claim = |digest: &str| Message::Bitfield {
        have: "ff".into(),
        digest: digest.to_owned(),
    };
    let end = tokio::time::Instant::now() + LIMIT;
    while let Ok(Some(event)) = tokio::time::timeout_at(end, session.next_event()).await {
        match event {
            Event::ChannelOpen { peer, channel } if channel.label() == TRANSFER_LABEL => {
                let (pake, message) = Pake::start(&code);
                pakes.insert(peer, pake);
                send(
                    peer,
                    Message::Pake {
                        message: hex(&message),
                    },
                )
                .await;
            }
            Event::Message {
                peer,
                payload: Payload::Text(text),
                ..
            } => match Message::parse(&text).unwrap() {
                Message::Pake { message } => {
                    let key = pakes
                        .remove(&peer)
                        .unwrap()
                        .finish(&unhex(&message))
                        .unwrap();
                    let fingerprints = handle.fingerprints(peer).await.unwrap();
                    let mac = key.confirmation(Role::Receiver, &fingerprints);
                    send(peer, Message::Confirm { mac: hex(&mac) }).await;
                    proven.push(peer);
                    if let Some(digest) = &digest {
                        send(peer, claim(digest)).await;
                    }
                }
                Message::Bitfield { digest: theirs, .. } if digest.is_none() => {
                    for peer in &proven {
                        send(*peer, claim(&theirs)).await;
                    }
                    digest = Some(theirs);
                }
                Message::Request { piece } => {
                    send(peer, Message::Piece { piece }).await;
                    for _ in 0..16 {
                        let _ = handle
                            .send(
                                peer,
                                TRANSFER_LABEL,
                                Payload::Binary(BytesMut::from(&[0x5a; PIECE / 16][..]).freeze()),
                            )
                            .await;
                    }
                    served += 1;
                }
                Message::Error { .. } if served > 0 => break,
                _ => {}
            },
            _ => {}
        }
    }
    session.close().await;
    served
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sender_may_leave_once_every_piece_is_held_by_some_receiver() {
    let server = TestServer::loopback();
    let dir = TempDir::new("seeded");
    let file = dir.0.join("data.bin");
    write_file(&file, 24 * PIECE, 4);
    let code = "43-swarm-test-sender-leaves";
    let mut sending = sender(&server.url(), code, 3, &[&file]);
    sending.wait_line("\"code\"").await;
    let outs: Vec<PathBuf> = (0..3).map(|i| dir.0.join(format!("out{i}"))).collect();
    let receiving: Vec<Running> = outs
        .iter()
        .map(|out| receiver(&server.url(), code, out))
        .collect();
    sending.wait_line("\"seeded\"").await;
    sending.child.kill().await.unwrap();
    for (running, out) in receiving.into_iter().zip(&outs) {
        let (ok, _, stderr) = running.finish().await;
        assert!(ok, "a receiver failed after the sender left:\n{stderr}");
        assert_eq!(
            std::fs::read(out.join("data.bin")).unwrap(),
            std::fs::read(&file).unwrap()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_without_the_code_learns_nothing_and_guessing_stops_the_sender() {
    let server = TestServer::loopback();
    let dir = TempDir::new("guess");
    let file = dir.0.join("secret.bin");
    write_file(&file, PIECE + 1, 5);
    let code = "44-swarm-test-right-words";
    let sending = sender(&server.url(), code, 2, &[&file]);
    sending.wait_line("\"code\"").await;

    // One honest receiver, then guesses until the sender has seen three
    // (a guess that every receiver turned away may leave before its proof
    // reaches the sender; it still learns nothing).
    let honest_out = dir.0.join("honest");
    let honest = receiver(&server.url(), code, &honest_out);
    let mut sending = sending;
    let seen = |sending: &Running| sending.stderr_text().matches("code did not match").count();
    for guess in 0..6 {
        if seen(&sending) >= 3 || sending.child.try_wait().unwrap().is_some() {
            break;
        }
        let out = dir.0.join(format!("guess{guess}"));
        let (ok, _, stderr) = receiver(&server.url(), "44-swarm-test-wrong-words", &out)
            .finish()
            .await;
        assert!(!ok, "a wrong code was accepted");
        let error = stderr
            .lines()
            .skip_while(|l| !l.starts_with("Error"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            error.contains("did not match"),
            "{stderr}\nthe sender's log:\n{}",
            sending.stderr_text()
        );
        assert!(!out.join("secret.bin").exists() && !out.join("secret.bin.part").exists());
        // The sender's verdict on this guess may come a moment after the guess's own.
        for _ in 0..20 {
            if seen(&sending) > guess {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let (ok, _, stderr) = sending.finish().await;
    assert!(!ok, "the sender went on after three wrong codes");
    assert!(stderr.contains("someone may be guessing"), "{stderr}");
    drop(honest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_left_without_a_holder_says_so_keeps_its_pieces_and_resumes_from_them() {
    let server = TestServer::loopback();
    let dir = TempDir::new("resume");
    let file = dir.0.join("data.bin");
    write_file(&file, 96 * PIECE + 3, 6);
    let code = "45-swarm-test-resume-pieces";
    let out = dir.0.join("out");
    let mut sending = sender(&server.url(), code, 2, &[&file]);
    sending.wait_line("\"code\"").await;
    let receiving = receiver_with(&server.url(), code, &out, &["--idle-timeout", "2"]);
    // The sender goes away once the receiver holds a tenth of the pieces.
    sending
        .wait_line_where("a tenth held", |line| {
            let news: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
            let held = news["detail"].as_str().and_then(|d| d.split('/').next());
            news["news"] == "holds" && held.and_then(|n| n.parse::<u32>().ok()) >= Some(10)
        })
        .await;
    sending.child.kill().await.unwrap();

    let (ok, stdout, stderr) = receiving.finish().await;
    assert!(!ok, "the receiver finished without the sender:\n{stdout}");
    let unavailable = stdout
        .lines()
        .find(|l| l.contains("\"unavailable\""))
        .unwrap_or_else(|| panic!("no unavailable event:\n{stdout}\n{stderr}"));
    assert!(field(unavailable, "pieces") > 0, "{unavailable}");
    // Pieces still being checked when the sender went may land after the event.
    let missing: u64 = stderr
        .split("no peer in the room has ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the receiver did not say what is missing:\n{stderr}"));
    assert!(
        missing > 0 && missing < 97 && missing <= field(unavailable, "pieces"),
        "{unavailable}\n{stderr}"
    );
    let part = out.join("data.bin.part");
    assert!(part.exists(), "the pieces that arrived were not kept");
    assert!(!out.join("data.bin").exists());

    // Sent again (with a new code, as a sender draws one), the receiver keeps
    // every piece it held. The sender waits for a second receiver.
    let code = "46-swarm-test-resume-again";
    let mut sending = sender(&server.url(), code, 2, &[&file]);
    sending.wait_line("\"code\"").await;
    let (ok, stdout, stderr) = receiver(&server.url(), code, &out).finish().await;
    assert!(ok, "the resumed receiver failed:\n{stderr}");
    let done = stdout.lines().find(|l| l.contains("\"done\"")).unwrap();
    let held = field(done, "skipped_bytes");
    assert!(
        held >= (97 - missing) * PIECE as u64 - PIECE as u64,
        "{done}"
    );
    assert_eq!(
        field(done, "received_bytes") + held,
        field(done, "total_bytes")
    );
    assert_eq!(
        std::fs::read(out.join("data.bin")).unwrap(),
        std::fs::read(&file).unwrap()
    );
    assert!(!part.exists());
    sending.wait_line("\"finished\"").await;
    sending.child.kill().await.unwrap();
}

/// A peer in the swarm's room that links and then says nothing: no key
/// exchange, no pieces. Holds its session until `until`.
async fn sit_silent(url: String, code: &'static str, until: tokio::time::Instant) {
    let code = Code::parse(code).unwrap();
    let mut config = swarm_session(SessionConfig::new(&url, ""), &code);
    config.transport = TransportOptions::loopback();
    let mut session = Session::connect(config).await.unwrap();
    while let Ok(Some(_)) = tokio::time::timeout_at(until, session.next_event()).await {}
    session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_links_but_meets_no_sender_does_not_blame_the_path() {
    let server = TestServer::loopback();
    let dir = TempDir::new("silent");
    let code = "46-swarm-test-silent-peer";
    let silent = tokio::spawn(sit_silent(
        server.url(),
        code,
        tokio::time::Instant::now() + LIMIT,
    ));
    let out = dir.0.join("out");
    let (ok, _, stderr) = receiver(&server.url(), code, &out).finish().await;
    assert!(!ok, "a receiver without a sender succeeded");
    assert!(stderr.contains("none proved to be the sender"), "{stderr}");
    assert!(!stderr.contains("no direct or relayed path"), "{stderr}");
    silent.abort();
}
