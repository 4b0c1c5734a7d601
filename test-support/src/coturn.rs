//! coturn for a test: its command line, and a `turnserver` on a free
//! loopback port.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The coturn `turnserver` binary to run: `$TURNSERVER_PATH` or Debian's.
/// Panics with what to install if it is missing.
pub fn turnserver_program() -> String {
    let program = std::env::var("TURNSERVER_PATH").unwrap_or_else(|_| "/usr/bin/turnserver".into());
    assert!(
        std::path::Path::new(&program).exists(),
        "{program} not found: install Debian's coturn package or set TURNSERVER_PATH"
    );
    program
}

/// How a test's coturn lets clients in.
#[derive(Debug, Clone, Copy)]
pub enum TurnAuth<'a> {
    /// One long-term user, `NAME:PASSWORD`.
    User(&'a str),
    /// Short-lived credentials minted from this secret (`use-auth-secret`,
    /// what the signaling server's `--turn-secret` hands out).
    Secret(&'a str),
}

/// The arguments of a test's coturn: STUN and TURN over UDP only, on
/// `ip:port`, relaying from `ip` on ports `relays`, its state in `dir`, its
/// log on standard output (ready once it prints "Total General servers").
/// On a loopback address it relays between loopback peers too.
pub fn coturn_args(
    ip: &str,
    port: u16,
    relays: std::ops::RangeInclusive<u16>,
    auth: TurnAuth<'_>,
    dir: &std::path::Path,
) -> Vec<String> {
    let mut args = vec![
        "-n".to_owned(),
        format!("--listening-ip={ip}"),
        format!("--relay-ip={ip}"),
        format!("--listening-port={port}"),
        format!("--min-port={}", relays.start()),
        format!("--max-port={}", relays.end()),
        "--realm=signaling.test".into(),
        "--no-tls".into(),
        "--no-dtls".into(),
        "--no-tcp".into(),
        "--no-cli".into(),
        format!("--userdb={}", dir.join("turndb").display()),
        format!("--pidfile={}", dir.join("turnserver.pid").display()),
        "--log-file=stdout".into(),
        "--simple-log".into(),
        "--verbose".into(),
    ];
    match auth {
        TurnAuth::User(user) => {
            args.push("--lt-cred-mech".into());
            args.push(format!("--user={user}"));
        }
        TurnAuth::Secret(secret) => {
            args.push("--use-auth-secret".into());
            args.push(format!("--static-auth-secret={secret}"));
        }
    }
    if ip
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
    {
        args.push("--allow-loopback-peers".into());
    }
    args
}

/// A coturn `turnserver` on a free loopback port, its log in its state
/// directory; killed and the directory removed when dropped.
pub struct Coturn {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Coturn {
    /// Starts it with `auth`, relaying on loopback from ports above
    /// `relay_base` (tests that run side by side pick different bases), and
    /// waits (at most 10 s) until it serves.
    pub fn start(name: &str, auth: TurnAuth<'_>, relay_base: u16) -> Self {
        let program = turnserver_program();
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|socket| socket.local_addr())
            .expect("a free UDP port")
            .port();
        let dir = std::env::temp_dir().join(format!("{name}-turn-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("coturn's directory");
        let relay_base = relay_base + (port % 10_000);
        let args = coturn_args("127.0.0.1", port, relay_base..=relay_base + 100, auth, &dir);
        let log = std::fs::File::create(dir.join("turnserver.log")).expect("coturn's log file");
        let child = Command::new(&program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("starting {program}: {err}"));
        let mut coturn = Self { child, port, dir };
        coturn.wait_ready();
        coturn
    }

    /// The UDP port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("turnserver.log")).unwrap_or_default()
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.log().contains("Total General servers") {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("turnserver exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "turnserver not ready:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
