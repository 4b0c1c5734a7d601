//! One encoded JSON message on its way to clients: shared, not copied,
//! between the outboxes of everyone it is for (a room's announcement), and
//! UTF-8 by construction, since it is sent as a text frame.

use bytes::Bytes;

/// A JSON message as it goes out in a text frame; cloning shares the bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedText(Bytes);

impl SharedText {
    /// A message known at compile time.
    pub const fn from_static(text: &'static str) -> Self {
        Self(Bytes::from_static(text.as_bytes()))
    }

    /// Its bytes (UTF-8).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Its text.
    pub fn as_str(&self) -> &str {
        // Only ever built from `str`s: the check cannot fail.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SharedText {
    fn from(text: String) -> Self {
        Self(Bytes::from(text))
    }
}

impl From<&str> for SharedText {
    fn from(text: &str) -> Self {
        Self(Bytes::copy_from_slice(text.as_bytes()))
    }
}
