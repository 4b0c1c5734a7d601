//! `peer-client send` and `receive` as a user runs them, against the real
//! signaling server on loopback: a directory tree arrives intact, a wrong
//! code writes nothing, an interrupted transfer resumes without sending
//! again what arrived, existing files are not overwritten, a full disk and
//! a directory the receiver may not write to are reported with the path and
//! the cause, and what arrived before stays for the next run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use e2e::{Process, Server, Stream, pseudo_random};

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
    let args = receive_args(server, code, out, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Process::start("receive", "peer-client", &args)
}

fn receive_args(server: &Server, code: &str, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "receive",
        code,
        "--server",
        &server.url,
        "--out",
        &out.display().to_string(),
        "--bind",
        "127.0.0.1:0",
        "--yes",
    ]
    .map(str::to_owned)
    .into();
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    args
}

/// util-linux `setpriv`, with the arguments that drop the capabilities that
/// let root ignore file permissions (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH)
/// from the program it starts; the tests run as root.
const SETPRIV: &str = "/usr/bin/setpriv";
const WITHOUT_DAC: [&str; 3] = [
    "--inh-caps=-dac_override,-dac_read_search",
    "--bounding-set=-dac_override,-dac_read_search",
    "--",
];

/// `receive` as a user to whom file permissions apply.
fn receive_unprivileged(server: &Server, code: &str, out: &Path, extra: &[&str]) -> Process {
    let program = e2e::binary("peer-client").display().to_string();
    let receive = receive_args(server, code, out, extra);
    let mut args: Vec<&str> = WITHOUT_DAC.to_vec();
    args.push(&program);
    args.extend(receive.iter().map(String::as_str));
    Process::start_program("receive", SETPRIV, &args)
}

/// Makes `dir` read-only (0555) and checks that a program started like
/// [`receive_unprivileged`] indeed cannot create a file in it, so the
/// tests below test permissions and not root's bypass of them.
fn make_read_only(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    let run = |program: &str| {
        std::process::Command::new(SETPRIV)
            .args(WITHOUT_DAC)
            .arg(program)
            .arg(dir.join("probe"))
            .status()
            .unwrap_or_else(|err| panic!("cannot run {SETPRIV}: {err}"))
    };
    assert!(
        run("/usr/bin/true").success(),
        "{SETPRIV} cannot start programs here"
    );
    assert!(
        !run("/usr/bin/touch").success(),
        "{} is read-only, yet a program without CAP_DAC_OVERRIDE could write to it",
        dir.display()
    );
    assert!(!dir.join("probe").exists());
}

fn make_writable(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
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
    let killed = Instant::now();
    assert!(!receiver.wait_exit().success());
    let waited = killed.elapsed();
    receiver.wait_for(Stream::Stderr, "the other side went away", 0);
    receiver.wait_for(Stream::Stderr, "run the same command again to resume", 0);
    assert!(
        waited < Duration::from_secs(10),
        "the receiver took {waited:?}\n{}",
        receiver.log()
    );
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
    // A test that cannot set itself up fails: it must not pass without having run.
    match mounted {
        Ok(result) if result.status.success() => temp.mounted = Some(out.clone()),
        Ok(result) => panic!(
            "cannot mount a 1 MiB tmpfs for the full disk (the test runs as root, as scripts/test does): {}",
            String::from_utf8_lossy(&result.stderr).trim()
        ),
        Err(err) => panic!("cannot run mount for the full disk (util-linux): {err}"),
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

#[test]
fn an_output_directory_without_write_permission_is_named_and_nothing_is_written() {
    let server = Server::start(&[]);
    let temp = TempDir::new("denied-out");
    let file = temp.path.join("notes.txt");
    std::fs::write(&file, b"some notes\n").unwrap();
    let folder = temp.path.join("photos");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("a.jpg"), b"jpeg").unwrap();

    // --out exists but is read-only: a single file, then a folder.
    let out = temp.path.join("out");
    std::fs::create_dir_all(&out).unwrap();
    make_read_only(&out);
    for (code, offered, created) in [
        ("52-apple-tiger", &file, "notes.txt.part"),
        ("53-apple-tiger", &folder, "photos"),
    ] {
        let mut sender = send(&server, code, &[offered], &[]);
        let mut receiver = receive_unprivileged(&server, code, &out, &[]);
        assert!(!receiver.wait_exit().success(), "{}", receiver.log());
        let line = receiver.wait_for(Stream::Stderr, "Permission denied", 0);
        let expected = format!(
            "cannot write {}: Permission denied (os error 13); make sure {} is writable",
            out.join(created).display(),
            out.display()
        );
        assert!(line.contains(&expected), "{line}\nwanted: {expected}");
        assert!(!sender.wait_exit().success());
        sender.wait_for(Stream::Stderr, "Permission denied", 0);
        assert_eq!(tree(&out), vec![], "something was written");
    }

    // --out does not exist and its parent is read-only.
    let parent = temp.path.join("locked");
    std::fs::create_dir_all(&parent).unwrap();
    make_read_only(&parent);
    let out = parent.join("out");
    let mut sender = send(&server, "54-apple-tiger", &[&file], &[]);
    let mut receiver = receive_unprivileged(&server, "54-apple-tiger", &out, &[]);
    assert!(!receiver.wait_exit().success(), "{}", receiver.log());
    let line = receiver.wait_for(Stream::Stderr, "Permission denied", 0);
    let expected = format!(
        "cannot write {}: Permission denied (os error 13); make sure {} is writable",
        out.display(),
        parent.display()
    );
    assert!(line.contains(&expected), "{line}\nwanted: {expected}");
    let _ = sender.wait_exit();
    assert!(!out.exists());
    make_writable(&parent, 0o755);
}

#[test]
fn a_permission_error_mid_tree_keeps_what_arrived_and_a_rerun_sends_only_the_rest() {
    let server = Server::start(&[]);
    let temp = TempDir::new("denied-tree");
    let src = temp.path.join("src/tree");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    let first = pseudo_random(2 * 1024 * 1024 + 17, 21);
    let second = pseudo_random(3 * 1024 * 1024 + 5, 22);
    std::fs::write(src.join("a-first.bin"), &first).unwrap();
    std::fs::write(src.join("sub/b-second.bin"), &second).unwrap();

    // The receiver's copy of `tree/sub` exists and is read-only: the first
    // file arrives, the second cannot be created.
    let out = temp.path.join("out");
    let sub = out.join("tree/sub");
    std::fs::create_dir_all(&sub).unwrap();
    make_read_only(&sub);
    let mut sender = send(&server, "55-apple-tiger", &[&src], &[]);
    let mut receiver = receive_unprivileged(&server, "55-apple-tiger", &out, &[]);
    assert!(!receiver.wait_exit().success(), "{}", receiver.log());
    let line = receiver.wait_for(Stream::Stderr, "Permission denied", 0);
    let expected = format!(
        "cannot write {}: Permission denied (os error 13); make sure {} is writable, then run the same command again (files received so far are kept)",
        sub.join("b-second.bin.part").display(),
        sub.display()
    );
    assert!(line.contains(&expected), "{line}\nwanted: {expected}");
    assert!(!sender.wait_exit().success());
    sender.wait_for(Stream::Stderr, "Permission denied", 0);
    // Renamed into place only after its BLAKE3 hash matched.
    assert_eq!(std::fs::read(out.join("tree/a-first.bin")).unwrap(), first);
    assert!(!sub.join("b-second.bin").exists());
    assert!(!out.join("tree/a-first.bin.part").exists());

    // The directory is fixed, but half of the second file is held in a
    // read-only `.part` (as an earlier interrupted run with other
    // permissions would leave it): the resume is refused without touching it.
    make_writable(&sub, 0o755);
    let half = second.len() / 2;
    let part = sub.join("b-second.bin.part");
    std::fs::write(&part, &second[..half]).unwrap();
    make_writable(&part, 0o444);
    let mut sender = send(&server, "55-apple-tiger", &[&src], &[]);
    let mut receiver = receive_unprivileged(&server, "55-apple-tiger", &out, &[]);
    assert!(!receiver.wait_exit().success(), "{}", receiver.log());
    let line = receiver.wait_for(Stream::Stderr, "Permission denied", 0);
    let expected = format!(
        "cannot write {}: Permission denied (os error 13); make sure {} is writable",
        part.display(),
        part.display()
    );
    assert!(line.contains(&expected), "{line}\nwanted: {expected}");
    let _ = sender.wait_exit();
    assert_eq!(std::fs::read(&part).unwrap(), &second[..half]);

    // Fixed: the rerun sends only the second half of the second file.
    make_writable(&part, 0o644);
    let mut sender = send(&server, "55-apple-tiger", &[&src], &["--json"]);
    let mut receiver = receive_unprivileged(&server, "55-apple-tiger", &out, &["--json"]);
    assert!(receiver.wait_exit().success(), "{}", receiver.log());
    assert!(sender.wait_exit().success(), "{}", sender.log());
    let done = sender.wait_for(Stream::Stdout, "\"event\":\"done\"", 0);
    assert_eq!(
        number_after(&done, "\"skipped_bytes\":"),
        (first.len() + half) as u64,
        "{done}"
    );
    assert_eq!(
        number_after(&done, "\"sent_bytes\":"),
        (second.len() - half) as u64,
        "{done}"
    );
    assert_eq!(tree(&out), tree(&temp.path.join("src")));
}

#[test]
fn a_killed_receiver_is_reported_by_the_sender_within_seconds() {
    let server = Server::start(&[]);
    let temp = TempDir::new("killed-receiver");
    let file = temp.path.join("large.bin");
    std::fs::write(&file, pseudo_random(96 * 1024 * 1024, 13)).unwrap();
    let out = temp.path.join("out");
    let part = out.join("large.bin.part");

    let mut sender = send(&server, "60-apple-tiger", &[&file], &[]);
    let mut receiver = receive(&server, "60-apple-tiger", &out, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0) < 2 * 1024 * 1024 {
        assert!(
            Instant::now() < deadline,
            "no data arrived\n{}",
            receiver.log()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    receiver.kill();
    let killed = Instant::now();
    assert!(!sender.wait_exit().success(), "{}", sender.log());
    let waited = killed.elapsed();
    sender.wait_for(Stream::Stderr, "the other side went away", 0);
    assert!(
        waited < Duration::from_secs(10),
        "the sender took {waited:?}"
    );
    assert!(part.exists(), "the receiver's partial file was removed");
}
