//! End-to-end authentication of a transfer: a code phrase the signaling
//! server never sees, SPAKE2 to turn it into a shared key (one online guess
//! per code), and key-confirmation MACs that bind both DTLS fingerprints to
//! that key, so a server that put itself in the middle is detected.
//!
//! Both sides run the same steps (SPAKE2 in its symmetric mode): send the
//! [`Pake`] message, turn the peer's into a [`SharedKey`], send
//! [`SharedKey::confirmation`], check the peer's with [`SharedKey::verify`].
//! `docs/security.md` gives the construction byte by byte.

mod code;
pub(crate) mod hex;
mod words;

pub use code::{Code, GENERATED_WORDS, MIN_SECRET_BITS};

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use spake2::{Ed25519Group, Identity, Password, Spake2};

use crate::engine::DtlsFingerprints;

/// SPAKE2 identity (domain separation) of the transfer protocol, version 1.
pub const PAKE_IDENTITY: &[u8] = b"peer-client transfer v1";
/// Size of a SPAKE2 message (one tag byte and an Ed25519 point).
pub const PAKE_MESSAGE_BYTES: usize = 33;
/// Size of a key-confirmation MAC (HMAC-SHA256).
pub const CONFIRMATION_BYTES: usize = 32;

/// What went wrong while authenticating.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The code phrase is not of the form `NUMBER-WORDS`.
    #[error("that is not a valid code ({0}); a code looks like 7-crossword-banana")]
    MalformedCode(String),
    /// The code's secret part is too short to be safe.
    #[error(
        "that code is too short to be safe: its secret part carries about {bits:.0} bits, at least {MIN_SECRET_BITS:.0} are needed (two words from the list, or a longer phrase); leave out --code to get a generated one"
    )]
    CodeTooWeak {
        /// Estimated entropy of the secret part.
        bits: f64,
    },
    /// The peer's PAKE message is malformed.
    #[error("the other side sent a malformed key-exchange message")]
    BadPakeMessage,
    /// Key confirmation failed: a wrong code, or a man in the middle.
    #[error("the code did not match, or someone is interfering with the connection; {consequence}")]
    Mismatch {
        /// What this means for the files ("no file was written", ...).
        consequence: &'static str,
    },
}

/// The two ends of a transfer; each MACs under its own key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Offers files.
    Sender,
    /// Accepts files.
    Receiver,
}

impl Role {
    /// The name used in key derivation and MAC input.
    pub fn label(self) -> &'static str {
        match self {
            Self::Sender => "sender",
            Self::Receiver => "receiver",
        }
    }

    /// The other role.
    pub fn peer(self) -> Self {
        match self {
            Self::Sender => Self::Receiver,
            Self::Receiver => Self::Sender,
        }
    }

    /// What a failed authentication means for this side's files.
    pub fn consequence(self) -> &'static str {
        match self {
            Self::Sender => "nothing was sent",
            Self::Receiver => "no file was written",
        }
    }
}

/// One side's half-finished SPAKE2 exchange.
pub struct Pake {
    state: Spake2<Ed25519Group>,
}

impl Pake {
    /// Starts the exchange; returns the state and the message to send.
    pub fn start(code: &Code) -> (Self, Vec<u8>) {
        let (state, message) = Spake2::<Ed25519Group>::start_symmetric(
            &Password::new(code.as_str().as_bytes()),
            &Identity::new(PAKE_IDENTITY),
        );
        (Self { state }, message)
    }

    /// Finishes with the peer's message. A wrong code is not detected here
    /// (both sides get a key, different ones): key confirmation detects it.
    pub fn finish(self, peer_message: &[u8]) -> Result<SharedKey, AuthError> {
        let key = self
            .state
            .finish(peer_message)
            .map_err(|_| AuthError::BadPakeMessage)?;
        Ok(SharedKey(key))
    }
}

/// The key both sides derived from the code.
pub struct SharedKey(Vec<u8>);

impl SharedKey {
    /// The MAC `role` sends: it covers its own fingerprint and the one it sees
    /// for the peer (`fingerprints` as that side sees them).
    pub fn confirmation(&self, role: Role, fingerprints: &DtlsFingerprints) -> Vec<u8> {
        self.mac(role, &fingerprints.local, &fingerprints.remote)
            .finalize()
            .into_bytes()
            .to_vec()
    }

    /// Checks the MAC the peer (in role `peer_role`) sent, against the
    /// fingerprints as this side sees them (so `remote` must be the peer's own
    /// and `local` the one it saw for us).
    pub fn verify(
        &self,
        peer_role: Role,
        fingerprints: &DtlsFingerprints,
        mac: &[u8],
        consequence: &'static str,
    ) -> Result<(), AuthError> {
        self.mac(peer_role, &fingerprints.remote, &fingerprints.local)
            .verify_slice(mac)
            .map_err(|_| AuthError::Mismatch { consequence })
    }

    /// HMAC-SHA256 under 64 bytes of HKDF-SHA256(key, info = "peer-client transfer v1
    /// confirm " ‖ role) over "peer-client transfer v1\0" ‖ role ‖ "\0" ‖ own
    /// fingerprint ‖ "\0" ‖ peer fingerprint (fingerprints normalised).
    fn mac(&self, role: Role, own: &str, peer: &str) -> Hmac<Sha256> {
        let mut role_key = [0u8; 64];
        let info = format!("peer-client transfer v1 confirm {}", role.label());
        // 64 bytes is far below HKDF-SHA256's limit of 255 * 32: cannot fail.
        let _ = Hkdf::<Sha256>::new(None, &self.0).expand(info.as_bytes(), &mut role_key);
        let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new(&role_key.into());
        mac.update(PAKE_IDENTITY);
        mac.update(b"\0");
        mac.update(role.label().as_bytes());
        mac.update(b"\0");
        mac.update(normalize_fingerprint(own).as_bytes());
        mac.update(b"\0");
        mac.update(normalize_fingerprint(peer).as_bytes());
        mac
    }
}

/// A fingerprint as `algorithm HEX:HEX:...`, algorithm lowercase and hex
/// uppercase, surrounding spaces removed (SDP writers differ in case).
pub fn normalize_fingerprint(fingerprint: &str) -> String {
    let fingerprint = fingerprint.trim();
    match fingerprint.split_once(' ') {
        Some((algorithm, value)) => format!(
            "{} {}",
            algorithm.to_ascii_lowercase(),
            value.trim().to_ascii_uppercase()
        ),
        None => fingerprint.to_ascii_uppercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprints(local: &str, remote: &str) -> DtlsFingerprints {
        DtlsFingerprints {
            local: local.into(),
            remote: remote.into(),
        }
    }

    fn keys(a: &str, b: &str) -> (SharedKey, SharedKey) {
        let (pa, ma) = Pake::start(&Code::parse(a).unwrap());
        let (pb, mb) = Pake::start(&Code::parse(b).unwrap());
        assert_eq!(ma.len(), PAKE_MESSAGE_BYTES);
        (pa.finish(&mb).unwrap(), pb.finish(&ma).unwrap())
    }

    #[test]
    fn same_code_and_fingerprints_confirm() {
        let (sender, receiver) = keys("7-apple-tiger", "7-apple-tiger");
        let at_sender = fingerprints("sha-256 AA:01", "sha-256 BB:02");
        let at_receiver = fingerprints("SHA-256 bb:02", "sha-256 AA:01");
        let mac = sender.confirmation(Role::Sender, &at_sender);
        assert_eq!(mac.len(), CONFIRMATION_BYTES);
        receiver
            .verify(Role::Sender, &at_receiver, &mac, "x")
            .unwrap();
        let mac = receiver.confirmation(Role::Receiver, &at_receiver);
        sender
            .verify(Role::Receiver, &at_sender, &mac, "x")
            .unwrap();
    }

    #[test]
    fn wrong_code_fails_confirmation() {
        let (sender, receiver) = keys("7-apple-tiger", "7-apple-tigers");
        let at_sender = fingerprints("sha-256 AA", "sha-256 BB");
        let at_receiver = fingerprints("sha-256 BB", "sha-256 AA");
        let mac = sender.confirmation(Role::Sender, &at_sender);
        assert!(matches!(
            receiver.verify(Role::Sender, &at_receiver, &mac, "no file was written"),
            Err(AuthError::Mismatch { .. })
        ));
    }

    #[test]
    fn swapped_fingerprints_fail_confirmation() {
        // A relay in the middle: each side sees the relay's certificate.
        let (sender, receiver) = keys("7-apple-tiger", "7-apple-tiger");
        let at_sender = fingerprints("sha-256 AA", "sha-256 M1");
        let at_receiver = fingerprints("sha-256 BB", "sha-256 M2");
        let mac = sender.confirmation(Role::Sender, &at_sender);
        assert!(
            receiver
                .verify(Role::Sender, &at_receiver, &mac, "x")
                .is_err()
        );
        // A reflected MAC (the receiver's own sent back) does not pass either.
        let own = receiver.confirmation(Role::Receiver, &at_receiver);
        assert!(
            receiver
                .verify(Role::Sender, &at_receiver, &own, "x")
                .is_err()
        );
    }

    #[test]
    fn malformed_pake_message_is_an_error() {
        let (pake, _) = Pake::start(&Code::parse("7-apple-tiger").unwrap());
        assert!(matches!(
            pake.finish(&[1, 2, 3]),
            Err(AuthError::BadPakeMessage)
        ));
    }
}
