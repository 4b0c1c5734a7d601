//! `peer-client bench` connects two peers over loopback with no server, in
//! two processes (the default) or in one, moves the bytes it was asked to
//! and reports what it measured.

use e2e::{Process, Stream};

fn bench(label: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "bench",
        "--mib",
        "8",
        "--idle-secs",
        "1",
        "--timeout-secs",
        "60",
    ];
    args.extend_from_slice(extra);
    let mut bench = Process::start(label, "peer-client", &args);
    bench.wait_for(Stream::Stdout, "idle link", 0);
    let status = bench.wait_exit();
    assert!(
        status.success(),
        "{label} failed: {status}\n{}",
        bench.log()
    );
    ["bench (loopback", "connect", "throughput", "sender queue"]
        .iter()
        .map(|needle| bench.wait_for(Stream::Stdout, needle, 0))
        .collect()
}

/// The rate in MB/s of a `throughput` line.
fn rate(line: &str) -> f64 {
    line.split_whitespace()
        .nth(1)
        .and_then(|rate| rate.parse().ok())
        .unwrap_or_else(|| panic!("no rate in {line:?}"))
}

#[test]
fn two_process_bench_moves_every_byte_through_a_child_process() {
    let lines = bench("bench", &[]);
    assert!(lines[0].contains("two processes"), "{}", lines[0]);
    assert!(lines[2].contains("8 MiB in"), "{}", lines[2]);
    assert!(rate(&lines[2]) > 0.0, "{}", lines[2]);
}

#[test]
fn one_process_bench_keeps_both_peers_in_one_process() {
    let lines = bench("bench", &["--one-process"]);
    assert!(lines[0].contains("one process"), "{}", lines[0]);
    assert!(lines[2].contains("8 MiB in"), "{}", lines[2]);
    assert!(rate(&lines[2]) > 0.0, "{}", lines[2]);
}

#[test]
fn a_receiving_bench_process_rejects_lines_that_are_not_signals() {
    let mut child = Process::start(
        "receiver",
        "peer-client",
        &["bench", "--receiver-over-stdio", "--mib", "1"],
    );
    child.write_line("hello there");
    child.wait_for(
        Stream::Stderr,
        "skipped a line from the other bench process",
        0,
    );
    child.write_line(r#"signal {"candidate": 7}"#);
    child.wait_for_count(
        Stream::Stderr,
        "skipped a line from the other bench process",
        0,
        2,
    );
    child.close_stdin();
    child.wait_exit();
}
