//! Printing figures for people, and as JSON with `--json`.

use serde_json::{Map, Value};

/// The figures of one run.
pub struct Report {
    json: bool,
    fields: Map<String, Value>,
}

impl Report {
    /// A report for `scenario`; with `json`, text goes to stderr and JSON to stdout at the end.
    pub fn new(scenario: &str, json: bool) -> Self {
        let mut fields = Map::new();
        fields.insert("scenario".into(), scenario.into());
        Self { json, fields }
    }

    /// Prints a line of text for people.
    pub fn line(&self, text: impl AsRef<str>) {
        if self.json {
            eprintln!("{}", text.as_ref());
        } else {
            println!("{}", text.as_ref());
        }
    }

    /// Records a figure for the JSON output.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.fields.insert(key.into(), value.into());
    }

    /// Prints the JSON object, if asked for.
    pub fn finish(self) {
        if self.json {
            println!("{}", Value::Object(self.fields));
        }
    }
}
