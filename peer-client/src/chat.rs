//! The chat message format on the `chat` channel:
//! `{"type":"message","name":"<sender>","text":"..."}`.

use serde::{Deserialize, Serialize};

/// Label of the channel the offering peer creates for chat messages.
pub const CHAT_LABEL: &str = "chat";

/// One chat line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename = "message")]
pub struct ChatMessage {
    /// Display name of the sender.
    pub name: String,
    /// The text.
    pub text: String,
}

impl ChatMessage {
    /// Reads a chat message; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        #[derive(Deserialize)]
        struct Received {
            #[serde(rename = "type")]
            kind: String,
            name: String,
            text: String,
        }
        let received: Received = serde_json::from_str(text).ok()?;
        (received.kind == "message").then_some(Self {
            name: received.name,
            text: received.text,
        })
    }

    /// The message as JSON text.
    pub fn to_json(&self) -> String {
        // A struct of two strings always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_documented_shape() {
        let message = ChatMessage {
            name: "Ada".into(),
            text: "hi \"there\"".into(),
        };
        let json = message.to_json();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["type"], "message");
        assert_eq!(value["name"], "Ada");
        assert_eq!(value["text"], "hi \"there\"");
        assert_eq!(ChatMessage::parse(&json), Some(message));
        assert_eq!(
            ChatMessage::parse(r#"{"type":"other","name":"a","text":"b"}"#),
            None
        );
        assert_eq!(ChatMessage::parse("not json"), None);
    }
}
