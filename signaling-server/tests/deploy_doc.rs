//! docs/deploy.md lists every option with its variable and default, as
//! `--help` has them. On a mismatch this test prints the table to paste
//! between the `options:begin` and `options:end` markers.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use clap::CommandFactory;
use signaling_server::Config;

/// The options table, built from the same clap definitions as `--help`.
fn options_table() -> String {
    let mut table =
        String::from("| option | environment | default | meaning |\n|---|---|---|---|\n");
    for arg in Config::command().get_arguments() {
        let Some(long) = arg.get_long() else {
            continue;
        };
        if long == "help" || long == "version" {
            continue;
        }
        let value = arg
            .get_value_names()
            .and_then(|names| names.first())
            .map(|name| format!(" {name}"))
            .unwrap_or_default();
        let env = arg
            .get_env()
            .map(|env| env.to_string_lossy().into_owned())
            .unwrap_or_default();
        let default = match arg.get_default_values() {
            [] => "unset".to_owned(),
            values => format!(
                "`{}`",
                values
                    .iter()
                    .map(|v| v.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        };
        let help = arg
            .get_long_help()
            .or(arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default()
            .replace('\n', " ")
            .replace('|', "\\|");
        let mut meaning = help.trim().to_owned();
        if !meaning.ends_with('.') {
            meaning.push('.');
        }
        let values: Vec<String> = arg
            .get_possible_values()
            .iter()
            .map(|v| v.get_name().to_owned())
            .collect();
        if !values.is_empty() {
            meaning.push_str(&format!(" One of: {}.", values.join(", ")));
        }
        table.push_str(&format!(
            "| `--{long}{value}` | `{env}` | {default} | {meaning} |\n"
        ));
    }
    table
}

#[test]
fn deploy_doc_lists_every_option_with_its_default() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/deploy.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let begin = "<!-- options:begin -->\n";
    let end = "<!-- options:end -->";
    let start = doc.find(begin).expect("options:begin marker") + begin.len();
    let stop = doc.find(end).expect("options:end marker");
    let expected = options_table();
    assert!(
        doc[start..stop] == expected,
        "docs/deploy.md's options table is out of date; paste this between the markers:\n\n{expected}"
    );
}
