//! Progress reports of a transfer, for progress bars or scripts.

/// Receives progress while files move. Every method has an empty default.
pub trait Progress: Send {
    /// The transfer starts: `total` bytes in all files.
    fn begin(&mut self, _total: u64) {}
    /// Work on the file at `path` begins.
    fn file(&mut self, _path: &str) {}
    /// `bytes` need not move: the receiver already has them.
    fn skipped(&mut self, _bytes: u64) {}
    /// `bytes` more were sent or written.
    fn advance(&mut self, _bytes: u64) {}
    /// Every file is done.
    fn end(&mut self) {}
}

/// Reports nothing.
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
