//! Room tokens: signed, expiring permissions to join one room.
//!
//! A token is `base64url(claims).base64url(HMAC-SHA256(secret, base64url(claims)))`
//! with `claims = {"room": "...", "exp": UNIX_SECONDS}` (base64url without
//! padding). Browsers cannot set headers on a WebSocket, so clients pass it
//! in the URL: `/ws?token=...`. The signature is checked in constant time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Longest token accepted, in bytes (a room name is at most a few hundred).
pub const MAX_TOKEN_BYTES: usize = 2048;

/// What a token grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The one room the bearer may join.
    pub room: String,
    /// When the token stops working, in Unix seconds.
    pub exp: u64,
}

/// Why a token was refused. The messages go to the client as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No `token` in the URL although the server requires one.
    #[error("this server requires a token: connect to /ws?token=TOKEN")]
    Missing,
    /// Not two base64url parts, or claims that are not the expected JSON.
    #[error("the token is malformed (expected base64url(claims).base64url(signature))")]
    Malformed,
    /// The signature does not match: made with another secret, or altered.
    #[error("the token's signature is invalid (forged, altered, or signed with another secret)")]
    BadSignature,
    /// Past its expiry.
    #[error("the token expired {ago_secs} s ago; ask for a new one")]
    Expired {
        /// Seconds since expiry.
        ago_secs: u64,
    },
    /// Valid, but for another room.
    #[error("the token is for room {token_room:?}, not {room:?}")]
    WrongRoom {
        /// The room the token names.
        token_room: String,
        /// The room asked for.
        room: String,
    },
}

impl TokenError {
    /// A short label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::BadSignature => "forged",
            Self::Expired { .. } => "expired",
            Self::WrongRoom { .. } => "wrong_room",
        }
    }
}

/// Mints a token for `room` valid for `ttl` from now.
pub fn mint(secret: &[u8], room: &str, ttl: Duration) -> String {
    let exp = unix_now().saturating_add(ttl.as_secs());
    mint_claims(
        secret,
        &Claims {
            room: room.to_owned(),
            exp,
        },
    )
}

/// Mints a token carrying `claims`.
pub fn mint_claims(secret: &[u8], claims: &Claims) -> String {
    // Serialising a struct of a string and a number cannot fail.
    let json = serde_json::to_vec(claims).unwrap_or_default();
    let body = URL_SAFE_NO_PAD.encode(json);
    let signature = URL_SAFE_NO_PAD.encode(mac(secret, &body).finalize().into_bytes());
    format!("{body}.{signature}")
}

/// Checks a token's signature and expiry and returns its claims. The room
/// is checked at `join` with [`Claims::check_room`].
pub fn verify(secret: &[u8], token: &str, now_unix: u64) -> Result<Claims, TokenError> {
    if token.is_empty() {
        return Err(TokenError::Missing);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed);
    }
    let (body, signature) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| TokenError::Malformed)?;
    // `verify_slice` compares in constant time.
    mac(secret, body)
        .verify_slice(&signature)
        .map_err(|_| TokenError::BadSignature)?;
    let json = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| TokenError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
    if claims.exp <= now_unix {
        return Err(TokenError::Expired {
            ago_secs: now_unix - claims.exp,
        });
    }
    Ok(claims)
}

impl Claims {
    /// Whether these claims allow joining `room` at `now_unix`.
    pub fn check_room(&self, room: &str, now_unix: u64) -> Result<(), TokenError> {
        if self.exp <= now_unix {
            return Err(TokenError::Expired {
                ago_secs: now_unix - self.exp,
            });
        }
        if self.room != room {
            return Err(TokenError::WrongRoom {
                token_room: self.room.clone(),
                room: room.to_owned(),
            });
        }
        Ok(())
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// The value of `token` in a URL query string (`a=1&token=...`), if any.
pub fn token_from_query(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
}

fn mac(secret: &[u8], body: &str) -> HmacSha256 {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body.as_bytes());
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a secret of sixteen or more bytes";

    #[test]
    fn a_minted_token_verifies_and_names_its_room() {
        let token = mint(SECRET, "lobby", Duration::from_secs(60));
        let claims = verify(SECRET, &token, unix_now()).unwrap();
        assert_eq!(claims.room, "lobby");
        assert!(claims.check_room("lobby", unix_now()).is_ok());
        assert_eq!(
            claims.check_room("other", unix_now()),
            Err(TokenError::WrongRoom {
                token_room: "lobby".into(),
                room: "other".into()
            })
        );
        // URL-safe: no characters that need escaping in a query string.
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        );
    }

    #[test]
    fn refusals_say_why() {
        let now = unix_now();
        assert_eq!(verify(SECRET, "", now), Err(TokenError::Missing));
        assert_eq!(verify(SECRET, "nodot", now), Err(TokenError::Malformed));
        assert_eq!(verify(SECRET, "a.!!!", now), Err(TokenError::Malformed));
        let long = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(verify(SECRET, &long, now), Err(TokenError::Malformed));

        let other = mint(
            b"another secret, also long enough",
            "lobby",
            Duration::from_secs(60),
        );
        assert_eq!(verify(SECRET, &other, now), Err(TokenError::BadSignature));

        // Changing the claims breaks the signature.
        let token = mint(SECRET, "lobby", Duration::from_secs(60));
        let (_, signature) = token.split_once('.').unwrap();
        let forged_body = URL_SAFE_NO_PAD.encode(br#"{"room":"vault","exp":99999999999}"#);
        assert_eq!(
            verify(SECRET, &format!("{forged_body}.{signature}"), now),
            Err(TokenError::BadSignature)
        );

        let expired = mint_claims(
            SECRET,
            &Claims {
                room: "lobby".into(),
                exp: now - 10,
            },
        );
        assert_eq!(
            verify(SECRET, &expired, now),
            Err(TokenError::Expired { ago_secs: 10 })
        );

        // A correctly signed body that is not the claims JSON.
        let body = URL_SAFE_NO_PAD.encode(b"[1,2]");
        let signature = URL_SAFE_NO_PAD.encode(mac(SECRET, &body).finalize().into_bytes());
        assert_eq!(
            verify(SECRET, &format!("{body}.{signature}"), now),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn finds_the_token_in_a_query_string() {
        assert_eq!(token_from_query(Some("token=abc.def")), Some("abc.def"));
        assert_eq!(token_from_query(Some("x=1&token=abc")), Some("abc"));
        assert_eq!(token_from_query(Some("x=1")), None);
        assert_eq!(token_from_query(None), None);
    }
}
