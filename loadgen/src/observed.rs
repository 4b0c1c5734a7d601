//! Processes whose CPU time a run charges to the messages it relayed: the
//! server, a second server instance, and any others named with `--watch-pid`
//! (e.g. the Redis server the instances share).

use anyhow::Result;

use crate::proc_stats::Proc;
use crate::report::Report;

/// A process named on the command line as `NAME=PID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedPid {
    /// What to call it in the figures (letters, digits, `-` and `_`).
    pub name: String,
    /// Its process id.
    pub pid: u32,
}

impl std::str::FromStr for NamedPid {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let Some((name, pid)) = text.split_once('=') else {
            return Err(format!("expected NAME=PID (e.g. redis=1234), got '{text}'"));
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "the name in '{text}' must be letters, digits, '-' or '_'"
            ));
        }
        let pid = pid
            .parse()
            .map_err(|_| format!("the pid in '{text}' is not a process id"))?;
        Ok(Self {
            name: name.to_owned(),
            pid,
        })
    }
}

/// One observed process and the figures it is reported under.
struct Observed {
    /// Name in the text lines (`<label> CPU: ...`).
    label: String,
    /// Prefix of its JSON keys (`<key>_cpu_share`, `<key>_us_per_message`).
    key: String,
    proc: Proc,
}

/// The observed processes of a run, with their CPU time at the start of the measured window.
pub struct ObservedSet {
    procs: Vec<Observed>,
    before: Vec<f64>,
    after: Vec<f64>,
}

impl ObservedSet {
    /// The server (`server`), an optional second instance (`peer server`) and the watched processes.
    pub fn new(server: Option<u32>, peer_server: Option<u32>, watched: &[NamedPid]) -> Self {
        let mut procs = Vec::new();
        let mut add = |label: &str, key: String, pid: u32| {
            procs.push(Observed {
                label: label.to_owned(),
                key,
                proc: Proc::Pid(pid),
            })
        };
        if let Some(pid) = server {
            add("server", "server".into(), pid);
        }
        if let Some(pid) = peer_server {
            add("peer server", "peer_server".into(), pid);
        }
        for watched in watched {
            let key = format!("watched_{}", watched.name.replace('-', "_"));
            add(&watched.name, key, watched.pid);
        }
        Self {
            procs,
            before: Vec::new(),
            after: Vec::new(),
        }
    }

    /// Reads their CPU time at the start of the measured window.
    pub fn start(&mut self) -> Result<()> {
        self.before = self.read()?;
        Ok(())
    }

    /// Reads their CPU time at the end of the measured window.
    pub fn stop(&mut self) -> Result<()> {
        self.after = self.read()?;
        Ok(())
    }

    fn read(&self) -> Result<Vec<f64>> {
        self.procs.iter().map(|o| o.proc.cpu_secs()).collect()
    }

    /// CPU seconds of all of them in the window, or `None` if none is observed.
    pub fn total_cpu(&self) -> Option<f64> {
        (!self.procs.is_empty()).then(|| self.cpu().sum())
    }

    fn cpu(&self) -> impl Iterator<Item = f64> + '_ {
        self.after.iter().zip(&self.before).map(|(a, b)| a - b)
    }

    /// Prints each one's share of a core and CPU per relayed message, and
    /// their sum when there are several.
    pub fn report(&self, report: &mut Report, relayed: u64, secs: f64) {
        if self.procs.is_empty() {
            report.line("  server CPU: not measured (pass --server-pid)");
            return;
        }
        let per_msg = |cpu: f64| cpu * 1e6 / relayed.max(1) as f64;
        for (observed, cpu) in self.procs.iter().zip(self.cpu()) {
            report.line(format!(
                "  {} CPU: {:.0} % of a core, {:.2} µs per relayed message",
                observed.label,
                cpu / secs * 100.0,
                per_msg(cpu)
            ));
            report.set(&format!("{}_cpu_share", observed.key), cpu / secs);
            report.set(&format!("{}_us_per_message", observed.key), per_msg(cpu));
        }
        if self.procs.len() > 1 {
            let total = self.cpu().sum::<f64>();
            report.line(format!(
                "  these {} processes together: {:.0} % of a core, {:.2} µs per relayed message",
                self.procs.len(),
                total / secs * 100.0,
                per_msg(total)
            ));
            report.set("observed_cpu_share", total / secs);
            report.set("observed_us_per_message", per_msg(total));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_named_pids() {
        let parsed: NamedPid = "redis=1234".parse().unwrap();
        assert_eq!(
            parsed,
            NamedPid {
                name: "redis".into(),
                pid: 1234
            }
        );
    }

    #[test]
    fn refuses_malformed_named_pids() {
        for bad in [
            "1234",
            "=1234",
            "redis=",
            "redis=abc",
            "re dis=1",
            "redis=-1",
        ] {
            let err = bad.parse::<NamedPid>().unwrap_err();
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn keys_name_the_processes() {
        let watched = [NamedPid {
            name: "redis-server".into(),
            pid: 3,
        }];
        let set = ObservedSet::new(Some(1), Some(2), &watched);
        let keys: Vec<&str> = set.procs.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["server", "peer_server", "watched_redis_server"]);
        assert_eq!(set.procs[2].label, "redis-server");
    }
}
