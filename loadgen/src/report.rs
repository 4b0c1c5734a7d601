//! Printing figures for people, and as JSON with `--json`.

use hdrhistogram::Histogram;
use serde_json::{Map, Value};

use crate::integrity::Integrity;
use crate::proc_stats::CoreTimes;

/// The word a checked line starts with. `main` points to `CHECK FAILED` lines when a run fails.
pub fn verdict(passed: bool) -> &'static str {
    if passed {
        "check passed"
    } else {
        "CHECK FAILED"
    }
}

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

    /// Reports how busy each core was, and the CPU taken by processes other
    /// than the server and the generator (noise from a shared machine).
    pub fn cores(
        &mut self,
        before: &CoreTimes,
        after: &CoreTimes,
        server_cpu: Option<f64>,
        own_cpu: f64,
        secs: f64,
    ) {
        let busy = after.busy_since(before);
        let shares: Vec<String> = busy
            .iter()
            .enumerate()
            .map(|(core, share)| format!("core {core} {:.0} %", share * 100.0))
            .collect();
        let mut text = format!("  cores busy: {}", shares.join(", "));
        if let Some(server_cpu) = server_cpu {
            // Interrupt and softirq time is charged to no process, so it shows up here too.
            let others = (after.busy_secs_since(before) - server_cpu - own_cpu) / secs;
            text.push_str(&format!(
                "; everything else (other processes, interrupts): {:.0} % of a core",
                others.max(0.0) * 100.0
            ));
            self.set("other_cpu_share", others.max(0.0));
        }
        self.line(text);
        self.set("core_busy_share", busy);
    }

    /// Prints whether the run passed its checks, with the signal counters,
    /// and records the counters as `integrity`.
    pub fn check(&mut self, tally: &Integrity, passed: bool) {
        self.line(format!("  {}: {}", verdict(passed), tally.describe()));
        self.set("integrity", tally.to_json());
    }

    /// Prints the JSON object, if asked for.
    pub fn finish(self) {
        if self.json {
            println!("{}", Value::Object(self.fields));
        }
    }
}

/// A percentile of a microsecond histogram, in milliseconds.
pub fn latency_ms(hist: &Histogram<u64>, percentile: f64) -> f64 {
    hist.value_at_percentile(percentile) as f64 / 1000.0
}
