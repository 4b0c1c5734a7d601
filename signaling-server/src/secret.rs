//! Secrets from the command line or the environment, kept out of logs.

use std::fmt;
use std::str::FromStr;

/// A shared secret (TURN, auth tokens). Its `Debug` form hides the value, so
/// printing the configuration never leaks it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret's bytes, as keys for HMAC.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<hidden>)")
    }
}

impl FromStr for Secret {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() < 16 {
            return Err("a secret must be at least 16 characters long".into());
        }
        Ok(Self(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_value_and_short_secrets_are_refused() {
        let secret: Secret = "a-long-enough-secret".parse().unwrap();
        assert!(!format!("{secret:?}").contains("long-enough"));
        assert!("short".parse::<Secret>().is_err());
    }
}
