//! Process figures from `/proc`: CPU time and resident memory.

use anyhow::{Context, Result, bail};

/// Clock ticks per second of the `/proc/<pid>/stat` time fields (`USER_HZ`,
/// which Linux fixes at 100 for this interface).
const TICKS_PER_SEC: f64 = 100.0;

/// A process to observe: a pid, or this process.
#[derive(Debug, Clone, Copy)]
pub enum Proc {
    /// Another process.
    Pid(u32),
    /// The load generator itself.
    Own,
}

impl Proc {
    fn path(self, file: &str) -> String {
        match self {
            Self::Pid(pid) => format!("/proc/{pid}/{file}"),
            Self::Own => format!("/proc/self/{file}"),
        }
    }

    /// User plus system CPU time used so far, in seconds (all threads).
    pub fn cpu_secs(self) -> Result<f64> {
        let path = self.path("stat");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        parse_cpu_ticks(&text)
            .map(|ticks| ticks as f64 / TICKS_PER_SEC)
            .with_context(|| format!("parsing {path}"))
    }

    /// Resident set size in KiB.
    pub fn rss_kib(self) -> Result<u64> {
        let path = self.path("status");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        parse_rss_kib(&text).with_context(|| format!("parsing {path}"))
    }
}

/// Busy and total clock ticks of each core, from `/proc/stat`.
#[derive(Debug, Clone)]
pub struct CoreTimes(Vec<(u64, u64)>);

impl CoreTimes {
    /// Reads the counters now.
    pub fn read() -> Result<Self> {
        let text = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        parse_core_times(&text)
            .map(Self)
            .context("parsing /proc/stat")
    }

    /// Share of each core that was busy (with anything) between `earlier` and now.
    pub fn busy_since(&self, earlier: &CoreTimes) -> Vec<f64> {
        self.0
            .iter()
            .zip(&earlier.0)
            .map(|((busy, total), (busy0, total0))| {
                let total = total.saturating_sub(*total0);
                if total == 0 {
                    0.0
                } else {
                    busy.saturating_sub(*busy0) as f64 / total as f64
                }
            })
            .collect()
    }

    /// Busy seconds of all cores together between `earlier` and now.
    pub fn busy_secs_since(&self, earlier: &CoreTimes) -> f64 {
        let ticks: u64 = self
            .0
            .iter()
            .zip(&earlier.0)
            .map(|((busy, _), (busy0, _))| busy.saturating_sub(*busy0))
            .sum();
        ticks as f64 / TICKS_PER_SEC
    }
}

/// (busy, total) ticks per `cpuN` line; idle and iowait count as not busy.
fn parse_core_times(stat: &str) -> Result<Vec<(u64, u64)>> {
    let mut cores = Vec::new();
    for line in stat.lines() {
        let mut fields = line.split_whitespace();
        let Some(name) = fields.next() else { continue };
        if !name.starts_with("cpu") || name == "cpu" {
            continue;
        }
        // user nice system idle iowait irq softirq steal (guest time is already in user).
        let values: Vec<u64> = fields.take(8).map(str::parse).collect::<Result<_, _>>()?;
        let total: u64 = values.iter().sum();
        let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
        cores.push((total - idle, total));
    }
    if cores.is_empty() {
        bail!("no cpuN lines");
    }
    Ok(cores)
}

/// utime + stime: fields 14 and 15 of `stat`, counted after the parenthesised command name.
fn parse_cpu_ticks(stat: &str) -> Result<u64> {
    let Some((_, after_name)) = stat.rsplit_once(')') else {
        bail!("no command name in stat");
    };
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let (Some(utime), Some(stime)) = (fields.get(11), fields.get(12)) else {
        bail!("stat has too few fields");
    };
    Ok(utime.parse::<u64>()? + stime.parse::<u64>()?)
}

fn parse_rss_kib(status: &str) -> Result<u64> {
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .context("no VmRSS line")?;
    let kib = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim();
    Ok(kib.parse()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_the_name() {
        let stat = "42 (a b) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 1 0 5 1000 50";
        assert_eq!(parse_cpu_ticks(stat).unwrap(), 325);
    }

    #[test]
    fn parses_core_times() {
        let stat = "cpu  10 0 10 100 0 0 0 0 0 0\ncpu0 5 0 5 50 2 1 1 0 0 0\ncpu1 5 0 5 50 0 0 0 0 0 0\nintr 1\n";
        let cores = parse_core_times(stat).unwrap();
        assert_eq!(cores, vec![(12, 64), (10, 60)]);
    }

    #[test]
    fn parses_vmrss() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t    1234 kB\n";
        assert_eq!(parse_rss_kib(status).unwrap(), 1234);
    }

    #[test]
    fn reads_own_figures() {
        assert!(Proc::Own.rss_kib().unwrap() > 0);
        assert!(Proc::Own.cpu_secs().unwrap() >= 0.0);
    }
}
