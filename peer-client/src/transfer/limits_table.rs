//! The limits table of docs/transfer.md against the constants of both
//! clients: this crate's and `web/js/transfer-limits.js`'s.

use std::collections::HashMap;
use std::time::Duration;

use super::ack_watch::ACK_CHECK;
use super::link::{CLOSE_WAIT, DISCONNECT_GRACE};
use super::receiver::SLOWEST_HASH_RATE;
use super::{
    DEFAULT_IDLE_TIMEOUT, MAX_CHUNK_BYTES, MAX_ENTRIES, MAX_PATH_BYTES_TOTAL, STEP_TIMEOUT,
};

/// This crate's constants, in milliseconds, bytes or counts.
fn rust_constants() -> HashMap<&'static str, u64> {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    HashMap::from([
        ("STEP_TIMEOUT", ms(STEP_TIMEOUT)),
        ("MAX_CHUNK_BYTES", MAX_CHUNK_BYTES as u64),
        ("MAX_ENTRIES", MAX_ENTRIES as u64),
        ("MAX_PATH_BYTES_TOTAL", MAX_PATH_BYTES_TOTAL as u64),
        ("DEFAULT_IDLE_TIMEOUT", ms(DEFAULT_IDLE_TIMEOUT)),
        ("SLOWEST_HASH_RATE", SLOWEST_HASH_RATE),
        ("ACK_CHECK", ms(ACK_CHECK)),
        ("CLOSE_WAIT", ms(CLOSE_WAIT)),
        ("DISCONNECT_GRACE", ms(DISCONNECT_GRACE)),
    ])
}

/// `const NAME = EXPR;` lines of a JavaScript file whose EXPR is a product
/// of integers (`256 * 1024`, `30_000`).
fn js_constants(source: &str) -> HashMap<String, u64> {
    source
        .lines()
        .filter_map(|line| {
            let line = line.trim().strip_prefix("export ").unwrap_or(line.trim());
            let (name, expr) = line.strip_prefix("const ")?.split_once(" = ")?;
            let expr = expr.strip_suffix(';')?;
            let value = expr
                .split('*')
                .map(|factor| factor.trim().replace('_', "").parse::<u64>().ok())
                .try_fold(1u64, |product, factor| Some(product * factor?))?;
            Some((name.trim().to_owned(), value))
        })
        .collect()
}

/// A table value in milliseconds, bytes or a count: `30 s`, `250 ms`,
/// `64 KiB`, `16 MiB`, `100000`.
fn table_value(text: &str) -> Option<u64> {
    let (number, unit) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
    let number: u64 = number.parse().ok()?;
    let scale = match unit {
        "" | "ms" => 1,
        "s" => 1000,
        "KiB" => 1024,
        "MiB" => 1024 * 1024,
        _ => return None,
    };
    Some(number * scale)
}

#[test]
fn the_limits_table_matches_both_clients() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let doc = std::fs::read_to_string(format!("{root}/docs/transfer.md")).unwrap_or_default();
    let js =
        std::fs::read_to_string(format!("{root}/web/js/transfer-limits.js")).unwrap_or_default();
    let (Some(start), Some(end)) = (
        doc.find("<!-- limits:begin -->"),
        doc.find("<!-- limits:end -->"),
    ) else {
        panic!("docs/transfer.md has no limits table");
    };
    let rust = rust_constants();
    let js = js_constants(&js);
    let mut checked = 0;
    for row in doc[start..end]
        .lines()
        .filter(|line| line.starts_with("| `"))
    {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let names: Vec<&str> = cells[1].split('`').skip(1).step_by(2).collect();
        let [rust_name, js_name] = names[..] else {
            panic!("row without a Rust and a JavaScript constant: {row}");
        };
        let native = table_value(cells[2]).unwrap_or_else(|| panic!("unreadable value in {row}"));
        let web = table_value(cells[3]).unwrap_or_else(|| panic!("unreadable value in {row}"));
        assert_eq!(
            rust.get(rust_name),
            Some(&native),
            "peer-client's {rust_name} ({row})"
        );
        assert_eq!(
            js.get(js_name),
            Some(&web),
            "web/js/transfer-limits.js's {js_name} ({row})"
        );
        checked += 1;
    }
    assert_eq!(
        checked,
        rust.len(),
        "every constant listed here has a row in the table"
    );
}
