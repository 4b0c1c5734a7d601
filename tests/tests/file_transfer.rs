//! `peer-client send` and `receive` as a user runs them, against the real
//! signaling server on loopback: a directory tree arrives intact, a wrong
//! code writes nothing, an interrupted transfer resumes without sending
//! again what arrived, existing files are not overwritten, a full disk is
//! reported with the file's name.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use e2e::{Process, Server, Stream};

/// A temporary directory removed on drop (after unmounting, if asked).
struct TempDir {
    path: PathBuf,
    mounted: Option<PathBuf>,
}

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("e2e-transfer-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self {
            path,
            mounted: None,
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(mount) = &self.mounted {
            let _ = std::process::Command::new("umount").arg(mount).status();
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Deterministic bytes that do not compress or repeat in a chunk-sized way.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn send(server: &Server, code: &str, paths: &[&Path], extra: &[&str]) -> Process {
    let mut args = vec![
        "send",
        "--server",
        &server.url,
        "--code",
        code,
        "--bind",
        "127.0.0.1:0",
    ];
    let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    args.extend(paths.iter().map(String::as_str));
    args.extend_from_slice(extra);
    let sender = Process::start("send", "peer-client", &args);
    sender.wait_for(Stream::Stdout, code, 0);
    sender
}

fn receive(server: &Server, code: &str, out: &Path, extra: &[&str]) -> Process {
    let out = out.display().to_string();
    let mut args = vec![
        "receive",
        code,
        "--server",
        &server.url,
        "--out",
        &out,
        "--bind",
        "127.0.0.1:0",
        "--yes",
    ];
    args.extend_from_slice(extra);
    Process::start("receive", "peer-client", &args)
}

/// Every file under `dir`, relative, with its contents; directories as `None`.
fn tree(dir: &Path) -> Vec<(String, Option<Vec<u8>>)> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            let relative = path.strip_prefix(dir).unwrap().display().to_string();
            if path.is_dir() {
                found.push((relative, None));
                pending.push(path);
            } else {
                found.push((relative, Some(std::fs::read(&path).unwrap())));
            }
        }
    }
    found.sort();
    found
}

#[test]
fn a_directory_tree_arrives_intact() {
    let server = Server::start(&[]);
    let temp = TempDir::new("tree");
    let src = temp.path.join("src/photos");
    std::fs::create_dir_all(src.join("2024/summer")).unwrap();
    std::fs::create_dir_all(src.join("empty-dir")).unwrap();
    std::fs::write(src.join("readme.txt"), b"hello\n").unwrap();
    std::fs::write(src.join("2024/empty-file"), b"").unwrap();
    std::fs::write(
        src.join("2024/summer/big.bin"),
        pseudo_random(5 * 1024 * 1024 + 123, 7),
    )
    .unwrap();
    let single = temp.path.join("src/notes.md");
    std::fs::write(&single, b"# notes\n").unwrap();

    let mut sender = send(&server, "41-apple-tiger", &[&src, &single], &[]);
    let out = temp.path.join("out");
    let mut receiver = receive(&server, "41-apple-tiger", &out, &[]);
    assert!(receiver.wait_exit().success(), "{}", receiver.log());
    assert!(sender.wait_exit().success(), "{}", sender.log());
    receiver.wait_for(Stream::Stdout, "every file verified", 0);
    sender.wait_for(Stream::Stdout, "Sent 4 files and 4 folders", 0);
    assert_eq!(tree(&out), tree(&temp.path.join("src")));
    assert!(
        tree(&out)
            .iter()
            .any(|(p, c)| p == "photos/empty-dir" && c.is_none())
    );
}

#[test]
fn a_wrong_code_writes_nothing_and_says_why() {
    let server = Server::start(&[]);
    let temp = TempDir::new("wrong");
    let file = temp.path.join("secret.txt");
    std::fs::write(&file, b"top secret").unwrap();
    let mut sender = send(&server, "42-apple-tiger", &[&file], &[]);
    let out = temp.path.join("out");
    let mut receiver = receive(&server, "42-apple-tigers", &out, &[]);
    assert!(!receiver.wait_exit().success());
    assert!(!sender.wait_exit().success());
    receiver.wait_for(
        Stream::Stderr,
        "the code did not match, or someone is interfering with the connection; no file was written",
        0,
    );
    sender.wait_for(Stream::Stderr, "the code did not match", 0);
    assert!(!out.exists(), "the output directory was created");
}

#[test]
fn a_code_without_a_sender_and_a_weak_code_are_refused() {
    let server = Server::start(&[]);
    let temp = TempDir::new("nosender");
    let mut receiver = receive(&server, "43-apple-tiger", &temp.path.join("out"), &[]);
    assert!(!receiver.wait_exit().success());
    receiver.wait_for(Stream::Stderr, "nobody is sending with code 43-", 0);

    let file = temp.path.join("f");
    std::fs::write(&file, b"x").unwrap();
    let path = file.display().to_string();
    let mut weak = Process::start(
        "send",
        "peer-client",
        &["send", "--server", &server.url, "--code", "7-banana", &path],
    );
    assert!(!weak.wait_exit().success());
    weak.wait_for(Stream::Stderr, "that code is too short to be safe", 0);
}

#[test]
fn an_interrupted_transfer_resumes_without_resending() {
    let server = Server::start(&[]);
    let temp = TempDir::new("resume");
    let file = temp.path.join("large.bin");
    let data = pseudo_random(96 * 1024 * 1024, 11);
    std::fs::write(&file, &data).unwrap();
    let out = temp.path.join("out");
    let part = out.join("large.bin.part");

    let mut sender = send(&server, "44-apple-tiger", &[&file], &[]);
    let mut receiver = receive(&server, "44-apple-tiger", &out, &[]);
    // Kill the sender once some data has arrived, well before the end.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let len = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        if len >= 2 * 1024 * 1024 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no data arrived\n{}",
            receiver.log()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    sender.kill();
    assert!(!receiver.wait_exit().success());
    receiver.wait_for(Stream::Stderr, "run the same command again to resume", 0);
    let held = std::fs::metadata(&part).unwrap().len();
    assert!(held > 0 && held < data.len() as u64, "{held} bytes held");
    assert!(!out.join("large.bin").exists());

    let mut sender = send(&server, "44-apple-tiger", &[&file], &["--json"]);
    let mut receiver = receive(&server, "44-apple-tiger", &out, &["--json"]);
    assert!(receiver.wait_exit().success(), "{}", receiver.log());
    assert!(sender.wait_exit().success(), "{}", sender.log());
    let done = sender.wait_for(Stream::Stdout, "\"event\":\"done\"", 0);
    let skipped = number_after(&done, "\"skipped_bytes\":");
    let sent = number_after(&done, "\"sent_bytes\":");
    assert!(skipped >= held, "skipped {skipped}, held {held}: {done}");
    assert_eq!(skipped + sent, data.len() as u64, "{done}");
    assert_eq!(std::fs::read(out.join("large.bin")).unwrap(), data);
    assert!(!part.exists());

    // A third run finds everything in place and sends nothing.
    let mut sender = send(&server, "44-apple-tiger", &[&file], &["--json"]);
    let mut receiver = receive(&server, "44-apple-tiger", &out, &["--json"]);
    assert!(receiver.wait_exit().success(), "{}", receiver.log());
    assert!(sender.wait_exit().success(), "{}", sender.log());
    let done = sender.wait_for(Stream::Stdout, "\"event\":\"done\"", 0);
    assert_eq!(number_after(&done, "\"sent_bytes\":"), 0, "{done}");
}

fn number_after(line: &str, key: &str) -> u64 {
    let rest = &line[line.find(key).unwrap_or_else(|| panic!("{key} in {line}")) + key.len()..];
    rest.chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

#[test]
fn existing_files_are_not_overwritten_unless_asked() {
    let server = Server::start(&[]);
    let temp = TempDir::new("exists");
    let file = temp.path.join("report.txt");
    std::fs::write(&file, b"new contents").unwrap();
    let out = temp.path.join("out");
    std::fs::create_dir_all(&out).unwrap();

    // Same size, different bytes: refused when the sender's hash differs.
    std::fs::write(out.join("report.txt"), b"old contents").unwrap();
    let mut sender = send(&server, "45-apple-tiger", &[&file], &[]);
    let mut receiver = receive(&server, "45-apple-tiger", &out, &[]);
    assert!(!receiver.wait_exit().success());
    let _ = sender.wait_exit();
    receiver.wait_for(Stream::Stderr, "report.txt already exists", 0);
    assert_eq!(
        std::fs::read(out.join("report.txt")).unwrap(),
        b"old contents"
    );

    // Another size: refused before anything is sent.
    std::fs::write(out.join("report.txt"), b"old").unwrap();
    let mut sender = send(&server, "45-apple-tiger", &[&file], &[]);
    let mut receiver = receive(&server, "45-apple-tiger", &out, &[]);
    assert!(!receiver.wait_exit().success());
    let _ = sender.wait_exit();
    receiver.wait_for(Stream::Stderr, "pass --overwrite", 0);
    assert_eq!(std::fs::read(out.join("report.txt")).unwrap(), b"old");

    // --overwrite replaces it.
    let mut sender = send(&server, "45-apple-tiger", &[&file], &[]);
    let mut receiver = receive(&server, "45-apple-tiger", &out, &["--overwrite"]);
    assert!(receiver.wait_exit().success(), "{}", receiver.log());
    assert!(sender.wait_exit().success());
    assert_eq!(
        std::fs::read(out.join("report.txt")).unwrap(),
        b"new contents"
    );
}

#[test]
fn a_full_disk_is_reported_and_received_files_are_kept() {
    let temp = TempDir::new("full");
    let mut temp = temp;
    let out = temp.path.join("small-disk");
    std::fs::create_dir_all(&out).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&out)
        .output();
    match mounted {
        Ok(result) if result.status.success() => temp.mounted = Some(out.clone()),
        Ok(result) => {
            eprintln!(
                "skipped: cannot mount a 1 MiB tmpfs ({})",
                String::from_utf8_lossy(&result.stderr).trim()
            );
            return;
        }
        Err(err) => {
            eprintln!("skipped: cannot run mount ({err})");
            return;
        }
    }
    let server = Server::start(&[]);
    let small = temp.path.join("a-small.txt");
    std::fs::write(&small, b"fits").unwrap();
    let large = temp.path.join("b-large.bin");
    std::fs::write(&large, pseudo_random(3 * 1024 * 1024, 5)).unwrap();
    let mut sender = send(&server, "46-apple-tiger", &[&small, &large], &[]);
    let mut receiver = receive(&server, "46-apple-tiger", &out, &[]);
    assert!(!receiver.wait_exit().success());
    let line = receiver.wait_for(Stream::Stderr, "No space left on device", 0);
    assert!(line.contains("b-large.bin.part"), "{line}");
    assert!(line.contains("files received so far are kept"), "{line}");
    assert!(!sender.wait_exit().success());
    sender.wait_for(Stream::Stderr, "No space left on device", 0);
    assert_eq!(std::fs::read(out.join("a-small.txt")).unwrap(), b"fits");
}
