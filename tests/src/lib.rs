//! Helpers for the end-to-end tests in `tests/tests/`: start the real
//! `signaling-server` and `peer-client` binaries as a user would, read their
//! output line by line, wait for lines with a bound, and kill them on drop.
//!
//! The binaries are taken from the target directory the test executable
//! lives in (`target/debug/`); build them first with `cargo build --bins`
//! (`scripts/test` does).

pub mod lan;
pub mod netns;
pub mod wan;
pub mod wire;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use test_support::{Coturn, TurnAuth};

/// Longest wait for any one expected line.
pub const STEP: Duration = Duration::from_secs(20);
/// Lines kept per process.
const MAX_LINES: usize = 10_000;

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

#[derive(Default)]
struct Output {
    lines: Vec<(Stream, String)>,
    closed_streams: usize,
}

/// A running binary whose output is collected; killed when dropped.
pub struct Process {
    label: String,
    child: std::process::Child,
    stdin: Option<ChildStdin>,
    output: Arc<(Mutex<Output>, Condvar)>,
}

/// Path of a binary of this workspace: beside the running program (a binary
/// of this package) or in the directory above it (a test executable, in
/// `target/debug/deps/`).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let beside = exe.parent().map(PathBuf::from).unwrap_or_default();
    let above = beside.parent().map(PathBuf::from).unwrap_or_default();
    let paths = [beside.join(name), above.join(name)];
    paths
        .iter()
        .find(|path| path.exists() && path.as_path() != exe)
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "{} does not exist: build the binaries first with `cargo build --bins`",
                paths[1].display()
            )
        })
}

impl Process {
    /// Starts `binary(name)` with `args`.
    pub fn start(label: &str, name: &str, args: &[&str]) -> Self {
        Self::start_program(label, &binary(name).to_string_lossy(), args)
    }

    /// Starts `program` (a path) with `args`.
    pub fn start_program(label: &str, program: &str, args: &[&str]) -> Self {
        let name = program;
        let mut child = Command::new(program)
            .args(args)
            .env("NO_COLOR", "1")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {name}: {err}"));
        let output: Arc<(Mutex<Output>, Condvar)> = Arc::default();
        if let Some(stdout) = child.stdout.take() {
            collect(stdout, Stream::Stdout, Arc::clone(&output));
        }
        if let Some(stderr) = child.stderr.take() {
            collect(stderr, Stream::Stderr, Arc::clone(&output));
        }
        Self {
            label: label.to_owned(),
            stdin: child.stdin.take(),
            child,
            output,
        }
    }

    /// How many lines were printed so far; pass it as `after` to wait for newer ones.
    pub fn cursor(&self) -> usize {
        self.lock().lines.len()
    }

    /// Waits (at most [`STEP`]) for a line on `stream` containing `needle`,
    /// printed after line number `after`. Panics with the whole output if none comes.
    pub fn wait_for(&self, stream: Stream, needle: &str, after: usize) -> String {
        self.wait_for_count(stream, needle, after, 1).remove(0)
    }

    /// Waits for `count` lines containing `needle`, like [`Process::wait_for`].
    pub fn wait_for_count(
        &self,
        stream: Stream,
        needle: &str,
        after: usize,
        count: usize,
    ) -> Vec<String> {
        self.wait_for_count_within(stream, needle, after, count, STEP)
    }

    /// Waits for `count` lines containing `needle`, at most `limit` (for a
    /// step slower than [`STEP`], such as starting a browser on a busy machine).
    pub fn wait_for_count_within(
        &self,
        stream: Stream,
        needle: &str,
        after: usize,
        count: usize,
        limit: Duration,
    ) -> Vec<String> {
        let deadline = Instant::now() + limit;
        let (lock, ready) = &*self.output;
        let mut output = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let found: Vec<String> = output
                .lines
                .iter()
                .skip(after)
                .filter(|(s, line)| *s == stream && line.contains(needle))
                .map(|(_, line)| line.clone())
                .collect();
            if found.len() >= count {
                return found;
            }
            let now = Instant::now();
            if now >= deadline || output.closed_streams == 2 {
                drop(output);
                panic!(
                    "{} printed {} of {count} lines containing {needle:?} on {stream:?} within {limit:?}\n{}",
                    self.label,
                    found.len(),
                    self.log()
                );
            }
            output = ready
                .wait_timeout(output, deadline - now)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Writes one line to the process's standard input.
    pub fn write_line(&mut self, line: &str) {
        let stdin = self
            .stdin
            .as_mut()
            .unwrap_or_else(|| panic!("{}: stdin closed", self.label));
        writeln!(stdin, "{line}")
            .unwrap_or_else(|err| panic!("{}: cannot write stdin: {err}", self.label));
        let _ = stdin.flush();
    }

    /// Closes the process's standard input (it reads end of file).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits (bounded) for the process to exit on its own.
    pub fn wait_exit(&mut self) -> ExitStatus {
        self.wait_exit_within(STEP).unwrap_or_else(|| {
            panic!(
                "{} did not exit within {STEP:?}\n{}",
                self.label,
                self.log()
            )
        })
    }

    /// Waits up to `limit` for the process to exit on its own; `None` if it
    /// is still running.
    pub fn wait_exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => return None,
            }
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Asks the process to stop (SIGTERM), as a service manager or a
    /// container runtime does.
    pub fn terminate(&self) {
        let pid = i32::try_from(self.child.id()).unwrap_or(i32::MAX);
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Everything printed so far, for failure messages.
    pub fn log(&self) -> String {
        self.lock()
            .lines
            .iter()
            .map(|(stream, line)| format!("  [{} {stream:?}] {line}\n", self.label))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Output> {
        self.output.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

fn collect(
    stream: impl std::io::Read + Send + 'static,
    kind: Stream,
    output: Arc<(Mutex<Output>, Condvar)>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let (lock, ready) = &*output;
            let mut out = lock.lock().unwrap_or_else(|e| e.into_inner());
            if out.lines.len() < MAX_LINES {
                out.lines.push((kind, line));
            }
            ready.notify_all();
        }
        let (lock, ready) = &*output;
        lock.lock()
            .unwrap_or_else(|e| e.into_inner())
            .closed_streams += 1;
        ready.notify_all();
    });
}

/// A running `signaling-server` on a free loopback port.
pub struct Server {
    /// The process.
    pub process: Process,
    /// `ws://127.0.0.1:PORT/ws`.
    pub url: String,
}

impl Server {
    /// Starts the server on port 0 and learns the port from its first line.
    pub fn start(extra: &[&str]) -> Self {
        let mut args = vec!["--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let process = Process::start("signaling-server", "signaling-server", &args);
        let line = process.wait_for(Stream::Stdout, "listening on ", 0);
        let addr = line.trim_start_matches("listening on ").trim().to_owned();
        Self {
            process,
            url: format!("ws://{addr}/ws"),
        }
    }
}

/// Starts `peer-client chat` in `room` as `name`, bound to loopback.
pub fn chat(server_url: &str, room: &str, name: &str) -> Process {
    Process::start(
        &format!("chat {name}"),
        "peer-client",
        &[
            "chat",
            "--server",
            server_url,
            "--room",
            room,
            "--name",
            name,
            "--bind",
            "127.0.0.1:0",
        ],
    )
}

/// The stderr line `peer-client chat` prints when a chat channel opens.
pub const CHAT_OPEN: &str = "channel \"chat\" open";

/// A coturn `turnserver` on loopback with one long-term user.
pub struct TurnServer {
    /// `turn:USER:PASSWORD@127.0.0.1:PORT?transport=udp`, as `--ice-server` takes it.
    pub url: String,
    _coturn: Coturn,
}

impl TurnServer {
    /// Starts `/usr/bin/turnserver` (or `$TURNSERVER_PATH`).
    pub fn start() -> Self {
        let coturn = Coturn::start("e2e", TurnAuth::User("e2e:e2e-secret"), 50_000);
        Self {
            url: format!(
                "turn:e2e:e2e-secret@127.0.0.1:{}?transport=udp",
                coturn.port()
            ),
            _coturn: coturn,
        }
    }
}

/// A number from the environment variable `name` (a test's knob for
/// measurements by hand), or `default` when it is unset or unreadable.
pub fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Deterministic bytes that do not compress or repeat in a chunk-sized way.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
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
