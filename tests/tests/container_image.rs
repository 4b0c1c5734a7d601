//! The container image is complete: its file system, as `scripts/image-rootfs`
//! assembles it for the Dockerfile from the release binary, runs the server as
//! the image's unprivileged user with nothing from the host but what a
//! container runtime adds (`/etc/hosts`): health check, Redis found by name,
//! the web client, two peers meeting, and a graceful stop on SIGTERM.
//!
//! A container engine does not run on every test machine, so the image's
//! file system is run with `chroot` (needs root, as the other end-to-end
//! tests do for network namespaces).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use e2e::{CHAT_OPEN, Process, Stream, binary, chat};
use test_support::RedisServer;

/// The image's user (`USER` in the Dockerfile).
const IMAGE_USER: &str = "65532:65532";

/// The release binary, which the image ships (a debug build reads the web
/// client from the source tree instead of carrying it).
fn release_binary() -> PathBuf {
    let debug = binary("signaling-server");
    let target = debug
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("{} has no target directory", debug.display()));
    let release = target.join("release").join("signaling-server");
    assert!(
        release.exists(),
        "{} does not exist: build it with `cargo build --release -p signaling-server` (scripts/test does)",
        release.display()
    );
    release
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `GET path` over HTTP/1.1; the status code and the body.
fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|err| panic!("connect {addr}: {err}"));
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .unwrap_or_else(|err| panic!("send request: {err}"));
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Every file under `root`, relative to it.
fn files_under(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries =
            std::fs::read_dir(&dir).unwrap_or_else(|err| panic!("{}: {err}", dir.display()));
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if let Ok(relative) = path.strip_prefix(root) {
                files.push(format!("/{}", relative.display()));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn the_image_file_system_serves_as_its_own_user() {
    let root = TempDir(std::env::temp_dir().join(format!("e2e-image-{}", std::process::id())));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/image-rootfs");
    let assembled = Command::new(&script)
        .arg(release_binary())
        .arg(&root.0)
        .status()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", script.display()));
    assert!(assembled.success(), "image-rootfs failed: {assembled}");

    // The binary, its libraries and the user: no shell, nothing else.
    let files = files_under(&root.0);
    assert!(
        files.contains(&"/usr/local/bin/signaling-server".to_owned()),
        "{files:?}"
    );
    assert!(
        !root.0.join("bin/sh").exists(),
        "the image holds a shell: {files:?}"
    );
    for file in &files {
        assert!(
            file.starts_with("/usr/local/bin/")
                || file.starts_with("/lib")
                || file.starts_with("/usr/lib")
                || ["/etc/passwd", "/etc/group", "/etc/nsswitch.conf"].contains(&file.as_str()),
            "unexpected file in the image: {file}"
        );
    }
    // What a container runtime puts into every container.
    std::fs::copy("/etc/hosts", root.0.join("etc/hosts"))
        .unwrap_or_else(|err| panic!("copy /etc/hosts: {err}"));

    let redis = RedisServer::start();
    let root_arg = root.0.to_string_lossy().into_owned();
    let redis_url = format!("redis://localhost:{}/0", redis.port());
    let mut server = Process::start_program(
        "image",
        "chroot",
        &[
            &format!("--userspec={IMAGE_USER}"),
            &root_arg,
            "/usr/local/bin/signaling-server",
            "--listen",
            "127.0.0.1:0",
            "--redis",
            &redis_url,
        ],
    );
    let line = server.wait_for(Stream::Stdout, "listening on ", 0);
    let addr = line.trim_start_matches("listening on ").trim().to_owned();

    // It runs as the image's user, not as root.
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid()))
        .unwrap_or_else(|err| panic!("read the server's status: {err}"));
    let uid_line = status
        .lines()
        .find(|line| line.starts_with("Uid:"))
        .unwrap_or_default();
    assert!(
        uid_line
            .split_whitespace()
            .skip(1)
            .all(|uid| uid == "65532"),
        "the server runs as {uid_line:?}"
    );

    // The image's HEALTHCHECK command, run inside the image.
    let health = Command::new("chroot")
        .args([&format!("--userspec={IMAGE_USER}"), &root_arg])
        .args(["/usr/local/bin/signaling-server", "healthcheck"])
        .env("SIGNALING_LISTEN", &addr)
        .status()
        .unwrap_or_else(|err| panic!("cannot run the health check: {err}"));
    assert!(health.success(), "the health check failed: {health}");

    // The web client, carried by the binary.
    let (status, page) = http_get(&addr, "/");
    assert_eq!(status, 200, "GET /: {page}");
    assert!(
        page.contains("<html"),
        "GET / is not the web client: {page}"
    );
    let (status, _) = http_get(&addr, "/js/room.js");
    assert_eq!(status, 200, "GET /js/room.js");
    let (status, ready) = http_get(&addr, "/readyz");
    assert_eq!(status, 200, "GET /readyz (Redis found by name): {ready}");

    // Two peers meet through it and open their channel.
    let url = format!("ws://{addr}/ws");
    let alice = chat(&url, "image", "alice");
    let bob = chat(&url, "image", "bob");
    alice.wait_for(Stream::Stderr, CHAT_OPEN, 0);
    bob.wait_for(Stream::Stderr, CHAT_OPEN, 0);

    // SIGTERM, as `docker stop` sends: a clean exit.
    let before = server.cursor();
    server.terminate();
    let exit = server.wait_exit();
    assert!(
        exit.success(),
        "the server exited with {exit}\n{}",
        server.log()
    );
    server.wait_for(Stream::Stderr, "stopped", before);
}
