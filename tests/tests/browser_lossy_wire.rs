//! Headless Chromium and `peer-client` on two hosts joined by an impaired wire
//! (50 ms round trip, 1 % loss each way; see `e2e::wire`), signaling over
//! clean links: a file crosses intact from the page to the native program, from
//! the native program to the page, and, as the anchor for the first two, from
//! page to page. The browser runs inside its host's network namespace
//! (`web/tests/support/wire-page.js`), so its only path to the other host is
//! the wire.
//!
//! Each test prints the time from the receiver's start (the native program's,
//! or the page's opening of the code once Chromium is up) to the verified file.
//! `BROWSER_WIRE_MIB` sets the size (default 4), `BROWSER_WIRE_LOSS_PERCENT`
//! and `BROWSER_WIRE_RTT_MS` the impairment (defaults 1 and 50), and
//! `WIRE_PAGE_ENGINE=firefox` puts Firefox where Chromium is, for
//! measurements by hand: `BROWSER_WIRE_MIB=32 cargo nextest run -p e2e
//! browser_wire --no-capture --test-threads 1`.
//!
//! Needs root, iproute2, Debian's chromium and `npm ci` in `web/tests`.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use e2e::wan::WanLab;
use e2e::{Process, Stream, pseudo_random, setting};

/// Bytes each transfer carries.
fn size() -> usize {
    (setting("BROWSER_WIRE_MIB", 4.0) * 1024.0 * 1024.0) as usize
}

/// The browser the pages run in, as the lines printed name it.
fn browser_name() -> &'static str {
    match std::env::var("WIRE_PAGE_ENGINE").as_deref() {
        Ok("firefox") => "Firefox",
        _ => "Chromium",
    }
}

/// Time allowed for a transfer: generous, at 100 KB/s.
fn allowance() -> Duration {
    Duration::from_secs(60 + (size() / 100_000) as u64)
}

/// Two hosts on the impaired wire and a temp dir with the file to send.
struct Setup {
    lab: WanLab,
    dir: PathBuf,
    data: Vec<u8>,
    file: PathBuf,
}

impl Setup {
    fn new(tag: &str) -> Self {
        let lab = WanLab::new(["snd", "rcv"], "wan");
        lab.wire.set_delay(Duration::from_secs_f64(
            setting("BROWSER_WIRE_RTT_MS", 50.0) / 2000.0,
        ));
        lab.wire
            .set_loss(setting("BROWSER_WIRE_LOSS_PERCENT", 1.0) / 100.0);
        // Chromium gathers candidates on the interface of the default route only (a page
        // without camera or microphone permission); make that the wire, as it would be the
        // uplink of a real host.
        for host in &lab.hosts {
            host.ip(&["route", "add", "default", "dev", "wan"]);
        }
        let dir =
            std::env::temp_dir().join(format!("e2e-browser-wire-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("out")).unwrap();
        let data = pseudo_random(size(), 21);
        let file = dir.join("data.bin");
        std::fs::write(&file, &data).unwrap();
        Self {
            lab,
            dir,
            data,
            file,
        }
    }

    fn out(&self) -> PathBuf {
        self.dir.join("out")
    }

    /// The transfer page in Chromium on host `n` (1 or 2): `wire-page.js ARGS`.
    fn page(&self, n: usize, label: &str, mode: &str, args: &[&str]) -> Process {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/tests/support/wire-page.js");
        let modules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/tests/node_modules");
        assert!(
            modules.exists(),
            "{} is missing: run `npm ci` in web/tests first (scripts/test does)",
            modules.display()
        );
        let script = script.display().to_string();
        let url = format!("http://10.201.{n}.1:8080/");
        let mut all = vec![script.as_str(), mode, url.as_str()];
        all.extend_from_slice(args);
        self.lab.hosts[n - 1].spawn_program(label, "node", &all)
    }

    /// Checks the received file and prints how long the receiver took.
    fn check(&self, what: &str, elapsed: Duration) {
        let got = std::fs::read(self.out().join("data.bin")).unwrap();
        assert!(got == self.data, "{what}: contents differ");
        println!(
            "{what}, {} KiB over {} % loss, {} ms round trip: {elapsed:.2?} from the receiver's start, {:.2} MB/s",
            self.data.len() / 1024,
            setting("BROWSER_WIRE_LOSS_PERCENT", 1.0),
            setting("BROWSER_WIRE_RTT_MS", 50.0),
            self.data.len() as f64 / elapsed.as_secs_f64() / 1e6
        );
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How long Chromium may take to start and show the code: the test command
/// starts it while other end-to-end tests run beside it.
const BROWSER_START: Duration = Duration::from_secs(60);

/// The page's code from its `{"event":"code","code":"…"}` line.
fn code_of(page: &Process) -> String {
    let line = page
        .wait_for_count_within(Stream::Stdout, r#""event":"code""#, 0, 1, BROWSER_START)
        .remove(0);
    line.split(r#""code":""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no code in {line}"))
        .to_owned()
}

/// The seconds in the page's `{"event":"done","seconds":…}` line.
fn page_seconds(page: &Process) -> Duration {
    let line = page.wait_for(Stream::Stdout, r#""event":"done""#, 0);
    line.split(r#""seconds":"#)
        .nth(1)
        .and_then(|rest| rest.split([',', '}']).next())
        .and_then(|seconds| seconds.parse().ok())
        .map(Duration::from_secs_f64)
        .unwrap_or_else(|| panic!("no seconds in {line}"))
}

/// Waits for `process` to exit successfully within the allowance.
fn finished(process: &mut Process, others: &[&Process]) {
    let status = process.wait_exit_within(allowance());
    let logs: String = others.iter().map(|p| p.log()).collect();
    assert!(
        status.is_some_and(|s| s.success()),
        "did not finish\n{}{logs}",
        process.log()
    );
}

#[test]
fn browser_wire_chromium_sends_to_native() {
    let setup = Setup::new("c2n");
    let file = setup.file.display().to_string();
    let page = setup.page(1, "page send", "send", &[&file]);
    let code = code_of(&page);
    let started = Instant::now();
    let out = setup.out().display().to_string();
    let mut receiver =
        setup
            .lab
            .peer_client(2, "receive", "receive", &[&code, "--out", &out, "--yes"]);
    finished(&mut receiver, &[&page]);
    setup.check(&format!("{} → native", browser_name()), started.elapsed());
}

#[test]
fn browser_wire_native_sends_to_chromium() {
    let setup = Setup::new("n2c");
    let code = "54-wire-orchard";
    let file = setup.file.display().to_string();
    let sender = setup
        .lab
        .peer_client(1, "send", "send", &["--code", code, &file]);
    sender.wait_for(Stream::Stdout, code, 0);
    let out = setup.out().display().to_string();
    let mut page = setup.page(2, "page receive", "receive", &[code, &out]);
    finished(&mut page, &[&sender]);
    setup.check(&format!("native → {}", browser_name()), page_seconds(&page));
}

#[test]
fn browser_wire_chromium_sends_to_chromium() {
    let setup = Setup::new("c2c");
    let file = setup.file.display().to_string();
    let sender = setup.page(1, "page send", "send", &[&file]);
    let code = code_of(&sender);
    let out = setup.out().display().to_string();
    let mut receiver = setup.page(2, "page receive", "receive", &[&code, &out]);
    finished(&mut receiver, &[&sender]);
    let name = browser_name();
    setup.check(&format!("{name} → {name}"), page_seconds(&receiver));
}
