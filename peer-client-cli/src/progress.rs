//! Progress bars (indicatif, on stderr) and the figures printed at the end.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use peer_client::printable;
use peer_client::transfer::Progress;

/// A progress bar with bytes, rate and ETA; hidden when asked or when
/// stderr is not a terminal.
pub(crate) struct Bar {
    bar: ProgressBar,
}

impl Bar {
    pub(crate) fn new(hidden: bool) -> Self {
        let bar = if hidden {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(0)
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self { bar }
    }
}

impl Progress for Bar {
    fn begin(&mut self, total: u64) {
        self.bar.set_length(total);
        self.bar.reset_eta();
    }

    fn file(&mut self, path: &str) {
        self.bar.set_message(printable(path));
    }

    fn skipped(&mut self, bytes: u64) {
        if bytes > 0 {
            self.bar.inc(bytes);
            self.bar.reset_eta();
        }
    }

    fn advance(&mut self, bytes: u64) {
        self.bar.inc(bytes);
    }

    fn end(&mut self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if !self.bar.is_finished() {
            self.bar.abandon();
        }
    }
}

/// `bytes` in binary units (`12.3 MiB`).
pub(crate) fn human_bytes(bytes: u64) -> String {
    indicatif::BinaryBytes(bytes).to_string()
}

/// Decimal megabytes per second of `bytes` moved in `elapsed`.
pub(crate) fn megabytes_per_second(bytes: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        bytes as f64 / seconds / 1e6
    } else {
        0.0
    }
}

/// "3 files and 2 folders".
pub(crate) fn counts(files: usize, dirs: usize) -> String {
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    if dirs == 0 {
        plural(files, "file", "files")
    } else {
        format!(
            "{} and {}",
            plural(files, "file", "files"),
            plural(dirs, "folder", "folders")
        )
    }
}
