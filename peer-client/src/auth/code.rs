//! Code phrases such as `7-crossword-banana`: a public nameplate (the number,
//! which picks the room on the signaling server) and secret words (which only
//! the two people know and which feed the PAKE).

use rand::Rng;
use sha2::{Digest, Sha256};

use super::AuthError;
use super::hex;
use super::words::WORDS;

/// Least estimated entropy, in bits, of a code's secret part. With one online
/// guess per code an attacker succeeds with probability 2^-bits per attempt.
pub const MIN_SECRET_BITS: f64 = 16.0;
/// Words in a generated code's secret part (8 bits each).
pub const GENERATED_WORDS: usize = 2;
/// Generated nameplates are drawn from 1..=this.
const MAX_NAMEPLATE: u32 = 999;
/// Longest nameplate, in digits.
const MAX_NAMEPLATE_DIGITS: usize = 6;
/// Longest code accepted, in bytes.
const MAX_CODE_BYTES: usize = 256;
/// Prefix of the room names derived from nameplates.
const ROOM_PREFIX: &str = "transfer-";
/// Domain separation of the room-name hash.
const ROOM_CONTEXT: &[u8] = b"peer-client transfer v1 room\0";
const SWARM_ROOM_PREFIX: &str = "swarm-";
const SWARM_ROOM_CONTEXT: &[u8] = b"peer-client swarm v1 room\0";

/// A normalised code phrase: `NAMEPLATE-SECRET`.
#[derive(Clone, PartialEq, Eq)]
pub struct Code {
    text: String,
    nameplate_len: usize,
}

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret words stay out of logs.
        write!(f, "Code({}-…)", self.nameplate())
    }
}

impl Code {
    /// A fresh code: a random nameplate and [`GENERATED_WORDS`] random words.
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let nameplate = rng.random_range(1..=MAX_NAMEPLATE).to_string();
        let words: Vec<&str> = (0..GENERATED_WORDS)
            .map(|_| WORDS[rng.random_range(0..WORDS.len())])
            .collect();
        Self {
            nameplate_len: nameplate.len(),
            text: format!("{nameplate}-{}", words.join("-")),
        }
    }

    /// Reads a code typed by a person. Case and surrounding spaces do not
    /// matter; spaces between words count as dashes. Refuses codes whose
    /// secret part is estimated below [`MIN_SECRET_BITS`].
    pub fn parse(input: &str) -> Result<Self, AuthError> {
        let text = input
            .split_whitespace()
            .collect::<Vec<_>>()
            .join("-")
            .to_ascii_lowercase();
        if text.len() > MAX_CODE_BYTES {
            return Err(AuthError::MalformedCode(format!(
                "it is longer than {MAX_CODE_BYTES} bytes"
            )));
        }
        let Some((nameplate, secret)) = text.split_once('-') else {
            return Err(AuthError::MalformedCode(
                "it needs a number, a dash, then secret words".into(),
            ));
        };
        if nameplate.is_empty()
            || nameplate.len() > MAX_NAMEPLATE_DIGITS
            || !nameplate.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(AuthError::MalformedCode(format!(
                "it must start with a number of 1 to {MAX_NAMEPLATE_DIGITS} digits"
            )));
        }
        if secret.chars().any(char::is_control) {
            return Err(AuthError::MalformedCode(
                "it contains control characters".into(),
            ));
        }
        let bits = secret_bits(secret);
        if bits < MIN_SECRET_BITS {
            return Err(AuthError::CodeTooWeak { bits });
        }
        Ok(Self {
            nameplate_len: nameplate.len(),
            text,
        })
    }

    /// The whole code (the PAKE password).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The public part: the number the room name is derived from.
    pub fn nameplate(&self) -> &str {
        &self.text[..self.nameplate_len]
    }

    /// Estimated entropy of the secret part, in bits.
    pub fn secret_bits(&self) -> f64 {
        secret_bits(&self.text[self.nameplate_len + 1..])
    }

    /// The room to join on the signaling server: `transfer-` and the first
    /// 32 hex digits of SHA-256(`peer-client transfer v1 room\0` ‖ nameplate).
    /// It depends on the nameplate only; the server never sees the secret.
    pub fn room(&self) -> String {
        self.derived_room(ROOM_PREFIX, ROOM_CONTEXT)
    }

    /// The room of a swarm (one sender, several receivers) with this code:
    /// `swarm-` and the first 32 hex digits of SHA-256(`peer-client swarm
    /// v1 room\0` ‖ nameplate), apart from one-to-one transfers.
    pub fn swarm_room(&self) -> String {
        self.derived_room(SWARM_ROOM_PREFIX, SWARM_ROOM_CONTEXT)
    }

    fn derived_room(&self, prefix: &str, context: &[u8]) -> String {
        let digest = Sha256::new()
            .chain_update(context)
            .chain_update(self.nameplate().as_bytes())
            .finalize();
        format!("{prefix}{}", &hex::encode(&digest)[..32])
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// A conservative estimate of a secret's entropy: a word from the list counts
/// 8 bits, a run of digits log2(10) per digit, any other word 2 bits per
/// character (people pick guessable words).
fn secret_bits(secret: &str) -> f64 {
    let list_bits = (WORDS.len() as f64).log2();
    secret
        .split('-')
        .filter(|word| !word.is_empty())
        .map(|word| {
            if WORDS.contains(&word) {
                list_bits
            } else if word.bytes().all(|b| b.is_ascii_digit()) {
                word.len() as f64 * 10f64.log2()
            } else {
                word.chars().count() as f64 * 2.0
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_parse_back_and_carry_16_bits() {
        for _ in 0..100 {
            let code = Code::generate();
            let parsed = Code::parse(code.as_str()).unwrap();
            assert_eq!(parsed, code);
            assert!((code.secret_bits() - 16.0).abs() < 1e-9);
            let number: u32 = code.nameplate().parse().unwrap();
            assert!((1..=MAX_NAMEPLATE).contains(&number));
        }
    }

    #[test]
    fn codes_are_normalised() {
        let code = Code::parse("  7 Crossword   BANANA ").unwrap();
        assert_eq!(code.as_str(), "7-crossword-banana");
        assert_eq!(code.nameplate(), "7");
        assert_eq!(format!("{code:?}"), "Code(7-…)");
    }

    #[test]
    fn weak_or_malformed_codes_are_refused() {
        assert!(matches!(
            Code::parse("7-banana"),
            Err(AuthError::CodeTooWeak { .. })
        ));
        assert!(matches!(
            Code::parse("7-1234"),
            Err(AuthError::CodeTooWeak { .. })
        ));
        assert!(matches!(
            Code::parse("7-abc"),
            Err(AuthError::CodeTooWeak { .. })
        ));
        for bad in ["banana-apple", "-apple-banana", "1234567-apple-banana", "7"] {
            assert!(
                matches!(Code::parse(bad), Err(AuthError::MalformedCode(_))),
                "{bad}"
            );
        }
        assert!(Code::parse("7-correcthorse").is_ok());
        assert!(Code::parse("7-123456").is_ok());
    }

    #[test]
    fn room_depends_on_the_nameplate_only() {
        let a = Code::parse("7-crossword-banana").unwrap();
        let b = Code::parse("7-apple-tiger").unwrap();
        let c = Code::parse("8-crossword-banana").unwrap();
        assert_eq!(a.room(), b.room());
        assert_ne!(a.room(), c.room());
        assert!(a.room().starts_with("transfer-"));
        assert!(!a.room().contains("banana"));
        assert_eq!(a.room().len(), "transfer-".len() + 32);
    }

    #[test]
    fn word_list_is_distinct_lowercase_ascii() {
        let mut sorted = WORDS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 256);
        assert!(
            WORDS
                .iter()
                .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
        );
    }
}
