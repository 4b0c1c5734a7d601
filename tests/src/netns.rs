//! Separate hosts on one machine: network namespaces joined by veth pairs,
//! NAT routers made with nftables, and processes started inside a namespace.
//!
//! Every namespace is named `e2e-<pid>-<n>-<tag>` so parallel tests never
//! clash, and is deleted when its [`Netns`] is dropped (drop the processes
//! running in it first: declare them after the namespace). Addresses are
//! private (10.x, 192.168.x) and exist only inside these namespaces; no
//! namespace has a route to anything outside the ones a test creates.
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use test_support::TurnAuth;

use crate::{Process, binary};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A network namespace, deleted when dropped.
pub struct Netns {
    name: String,
}

/// Runs a command and panics with its output if it fails.
fn run(program: &str, args: &[&str], stdin: Option<&str>) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run {program}: {err}"));
    if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
        input
            .write_all(text.as_bytes())
            .unwrap_or_else(|err| panic!("cannot feed {program}: {err}"));
    }
    let output = child
        .wait_with_output()
        .unwrap_or_else(|err| panic!("{program} did not finish: {err}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Removes namespaces left by test processes that no longer exist (killed
/// before their destructors ran, e.g. by the test runner's timeout): kills
/// what still runs inside them, then deletes them.
fn sweep_stale_namespaces() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("e2e-")
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if std::path::Path::new("/proc").join(pid).exists() {
            continue;
        }
        if let Ok(output) = Command::new("ip").args(["netns", "pids", &name]).output() {
            for pid in String::from_utf8_lossy(&output.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
    }
}

impl Netns {
    /// Creates an empty namespace with its loopback interface up.
    pub fn new(tag: &str) -> Self {
        static SWEEP: std::sync::Once = std::sync::Once::new();
        SWEEP.call_once(sweep_stale_namespaces);
        let name = format!(
            "e2e-{}-{}-{tag}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run("ip", &["netns", "add", &name], None);
        let netns = Self { name };
        // IPv4 only. An IPv6 link-local address would finish its duplicate
        // address detection a second or two after a link comes up, and
        // Chromium aborts every request in flight when the host's addresses
        // change (net::ERR_NETWORK_CHANGED): a page started in that window
        // failed to load its scripts.
        netns.sysctl("net.ipv6.conf.default.disable_ipv6", "1");
        netns.sysctl("net.ipv6.conf.all.disable_ipv6", "1");
        netns.ip(&["link", "set", "lo", "up"]);
        netns
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file that refers to the namespace (for `setns`).
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Runs `ip -n <ns> args...`.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        run("ip", &all, None);
    }

    /// Runs `program args...` inside the namespace and waits for it.
    pub fn exec(&self, program: &str, args: &[&str]) {
        let mut all = vec!["netns", "exec", &self.name, program];
        all.extend_from_slice(args);
        run("ip", &all, None);
    }

    /// Loads an nftables ruleset into the namespace.
    pub fn nft(&self, ruleset: &str) {
        run(
            "ip",
            &["netns", "exec", &self.name, "nft", "-f", "-"],
            Some(ruleset),
        );
    }

    /// Sets a sysctl of the namespace, e.g. `net.ipv4.ip_forward`.
    pub fn sysctl(&self, key: &str, value: &str) {
        self.exec("sysctl", &["-q", "-w", &format!("{key}={value}")]);
    }

    /// Starts `program` (a path) inside the namespace.
    pub fn spawn_program(&self, label: &str, program: &str, args: &[&str]) -> Process {
        let mut all = vec!["netns", "exec", &self.name, program];
        all.extend_from_slice(args);
        Process::start_program(label, "ip", &all)
    }

    /// Starts this workspace's binary `name` inside the namespace.
    pub fn spawn(&self, label: &str, name: &str, args: &[&str]) -> Process {
        self.spawn_program(label, &binary(name).to_string_lossy(), args)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace also deletes the veth ends inside it.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Joins `a` and `b` with a veth pair: interface `a_if` with address
/// `a_addr` (CIDR) in `a`, `b_if` with `b_addr` in `b`, both up.
pub fn link(a: &Netns, a_if: &str, a_addr: &str, b: &Netns, b_if: &str, b_addr: &str) {
    a.ip(&[
        "link",
        "add",
        a_if,
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ]);
    a.ip(&["addr", "add", a_addr, "dev", a_if]);
    b.ip(&["addr", "add", b_addr, "dev", b_if]);
    a.ip(&["link", "set", a_if, "up"]);
    b.ip(&["link", "set", b_if, "up"]);
}

/// How a NAT router maps a private host's UDP flows to its public address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nat {
    /// One public port per private socket, whatever the destination
    /// (masquerade keeps the source port): STUN's server-reflexive candidate
    /// is what other peers must use, and hole punching works.
    EndpointIndependent,
    /// A new random public port for every destination (masquerade
    /// `fully-random`): the port STUN saw is useless to anyone else, so only
    /// a relay connects two such hosts.
    Symmetric,
}

/// The address of the "public" host's services (signaling server, coturn).
pub const PUBLIC_ADDR: &str = "10.200.0.1";

/// A private host behind its own NAT router.
pub struct Site {
    /// The private host (where a peer runs).
    pub host: Netns,
    /// The NAT router between the host and the public segment.
    pub router: Netns,
    /// The host's private address.
    pub host_addr: String,
    /// The router's public address.
    pub public_addr: String,
}

/// A "public" host with the services at [`PUBLIC_ADDR`] and one NAT'd site
/// per entry of `nats`:
///
/// ```text
/// host N 192.168.N.2 ── 192.168.N.1 router N 10.200.N.2 ── 10.200.N.1 public (10.200.0.1)
/// ```
///
/// The routers filter unsolicited inbound packets (no conntrack entry: drop),
/// like home routers; the public host routes between the routers' public
/// addresses, and sends anything else (the private networks included) to
/// [`Internet::elsewhere`], which drops it.
pub struct Internet {
    /// The public host.
    pub public: Netns,
    /// The NAT'd sites, in the order of `nats`.
    pub sites: Vec<Site>,
    /// The rest of the Internet: the public host's default route leads here
    /// and every packet is dropped without an answer, so sending to an
    /// address no test host owns (a peer's private address, say) succeeds and
    /// goes nowhere, as on the real Internet, instead of failing with
    /// `ENETUNREACH` (which makes coturn close the allocation that sent it).
    pub elsewhere: Netns,
}

impl Internet {
    /// Builds the namespaces, links, routes and NAT rules.
    pub fn build(nats: &[Nat]) -> Self {
        let public = Netns::new("pub");
        public.ip(&["addr", "add", &format!("{PUBLIC_ADDR}/32"), "dev", "lo"]);
        public.sysctl("net.ipv4.ip_forward", "1");
        let elsewhere = Netns::new("elsewhere");
        link(
            &public,
            "elsewhere",
            "10.200.255.1/30",
            &elsewhere,
            "eth0",
            "10.200.255.2/30",
        );
        public.ip(&["route", "add", "default", "via", "10.200.255.2"]);
        elsewhere.nft(
            "table ip elsewhere {
                chain prerouting {
                    type filter hook prerouting priority raw; policy drop;
                }
            }",
        );
        let sites = nats
            .iter()
            .enumerate()
            .map(|(i, &nat)| {
                let n = i + 1;
                let router = Netns::new(&format!("nat{n}"));
                let host = Netns::new(&format!("host{n}"));
                let public_addr = format!("10.200.{n}.2");
                let host_addr = format!("192.168.{n}.2");
                link(
                    &public,
                    &format!("site{n}"),
                    &format!("10.200.{n}.1/24"),
                    &router,
                    "wan",
                    &format!("{public_addr}/24"),
                );
                link(
                    &router,
                    "lan",
                    &format!("192.168.{n}.1/24"),
                    &host,
                    "eth0",
                    &format!("{host_addr}/24"),
                );
                router.ip(&["route", "add", "default", "via", &format!("10.200.{n}.1")]);
                host.ip(&["route", "add", "default", "via", &format!("192.168.{n}.1")]);
                router.sysctl("net.ipv4.ip_forward", "1");
                let masquerade = match nat {
                    Nat::EndpointIndependent => "masquerade",
                    Nat::Symmetric => "masquerade fully-random",
                };
                router.nft(&format!(
                    "table ip nat {{
                        chain postrouting {{
                            type nat hook postrouting priority srcnat; policy accept;
                            oifname \"wan\" {masquerade}
                        }}
                    }}
                    table ip filter {{
                        chain input {{
                            type filter hook input priority filter; policy accept;
                            iifname \"wan\" ct state new drop
                        }}
                        chain forward {{
                            type filter hook forward priority filter; policy accept;
                            iifname \"wan\" ct state new drop
                        }}
                    }}"
                ));
                Site {
                    host,
                    router,
                    host_addr,
                    public_addr,
                }
            })
            .collect();
        Self {
            public,
            elsewhere,
            sites,
        }
    }
}

/// The long-term TURN user [`Coturn`] accepts.
pub const TURN_USER: &str = "e2e:e2e-secret";

/// coturn's `turnserver` inside a namespace, serving STUN and TURN (UDP) on
/// `ADDR:3478` and relaying from the same address; its state directory is
/// removed when dropped.
pub struct Coturn {
    /// The process.
    pub process: Process,
    /// `stun:ADDR:3478`.
    pub stun_url: String,
    /// `turn:USER:PASSWORD@ADDR:3478?transport=udp`, as `--ice-server` takes it.
    pub turn_url: String,
    dir: PathBuf,
}

impl Coturn {
    /// Starts `/usr/bin/turnserver` (or `$TURNSERVER_PATH`) in `netns` on
    /// `addr`, accepting the long-term user [`TURN_USER`].
    pub fn start(netns: &Netns, addr: &str) -> Self {
        Self::start_with(netns, addr, TurnAuth::User(TURN_USER))
    }

    /// Like [`Coturn::start`], but accepting only short-lived credentials
    /// minted from `secret` (coturn's `use-auth-secret` mode, what the
    /// signaling server's `--turn-secret` hands out).
    pub fn start_with_secret(netns: &Netns, addr: &str, secret: &str) -> Self {
        Self::start_with(netns, addr, TurnAuth::Secret(secret))
    }

    fn start_with(netns: &Netns, addr: &str, auth: TurnAuth<'_>) -> Self {
        let program = test_support::turnserver_program();
        let dir = std::env::temp_dir().join(format!("e2e-coturn-{}", netns.name()));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|err| panic!("cannot create {}: {err}", dir.display()));
        let args = test_support::coturn_args(addr, 3478, 50_000..=50_100, auth, &dir);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let process = netns.spawn_program("turnserver", &program, &args);
        process.wait_for(crate::Stream::Stdout, "Total General servers", 0);
        Self {
            process,
            stun_url: format!("stun:{addr}:3478"),
            turn_url: format!("turn:{TURN_USER}@{addr}:3478?transport=udp"),
            dir,
        }
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("coturn's log:\n{}", self.process.log());
        }
        self.process.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
