//! A data-channel message.

use bytes::Bytes;

/// A data-channel message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// A text message (UTF-8).
    Text(String),
    /// A binary message.
    Binary(Bytes),
}

impl Payload {
    /// Size in bytes.
    pub fn len(&self) -> usize {
        match self {
            Self::Text(text) => text.len(),
            Self::Binary(data) => data.len(),
        }
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
