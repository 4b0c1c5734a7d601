//! Each link of a swarm proves, as a one-to-one transfer does, that both
//! ends know the code and see the same DTLS fingerprints (SPAKE2, then a
//! confirmation MAC). A peer's confirmation also tells its role: the sender,
//! or a receiver like us.

use crate::DtlsFingerprints;
use crate::auth::{AuthError, CONFIRMATION_BYTES, Code, Pake, Role, SharedKey, hex};
use crate::transfer::{Message, TransferError};

/// Where one link's handshake stands.
pub enum Handshake {
    /// Our SPAKE2 message went out; the peer's is awaited.
    AwaitingPake(Pake),
    /// Our confirmation went out; the peer's is awaited.
    AwaitingConfirm(SharedKey, DtlsFingerprints),
}

impl Handshake {
    /// Starts: the state and the `pake` message to send.
    pub fn start(code: &Code) -> (Self, Message) {
        let (pake, message) = Pake::start(code);
        (
            Self::AwaitingPake(pake),
            Message::Pake {
                message: hex::encode(&message),
            },
        )
    }

    /// The peer's `pake` arrived: the next state and our `confirm` (as
    /// `role`, over `fingerprints` as this side sees them).
    pub fn on_pake(
        self,
        message: &str,
        role: Role,
        fingerprints: DtlsFingerprints,
    ) -> Result<(Self, Message), TransferError> {
        let Self::AwaitingPake(pake) = self else {
            return Err(TransferError::Protocol(
                "a second key-exchange message".into(),
            ));
        };
        let peer_message = hex::decode(message).ok_or(AuthError::BadPakeMessage)?;
        let key = pake.finish(&peer_message)?;
        let confirm = Message::Confirm {
            mac: hex::encode(&key.confirmation(role, &fingerprints)),
        };
        Ok((Self::AwaitingConfirm(key, fingerprints), confirm))
    }

    /// The peer's `confirm` arrived: the role it proved, or
    /// [`AuthError::Mismatch`] (a wrong code, or someone in the middle).
    pub fn on_confirm(self, mac: &str, consequence: &'static str) -> Result<Role, TransferError> {
        let Self::AwaitingConfirm(key, fingerprints) = self else {
            return Err(TransferError::Protocol(
                "a key confirmation before the key exchange".into(),
            ));
        };
        let mac = hex::decode(mac)
            .filter(|mac| mac.len() == CONFIRMATION_BYTES)
            .unwrap_or_default();
        for role in [Role::Sender, Role::Receiver] {
            if key.verify(role, &fingerprints, &mac, consequence).is_ok() {
                return Ok(role);
            }
        }
        Err(AuthError::Mismatch { consequence }.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(local: &str, remote: &str) -> DtlsFingerprints {
        DtlsFingerprints {
            local: format!("sha-256 {local}"),
            remote: format!("sha-256 {remote}"),
        }
    }

    fn run(
        code_a: &str,
        code_b: &str,
        role_a: Role,
        role_b: Role,
    ) -> (Result<Role, TransferError>, Result<Role, TransferError>) {
        let (a, pake_a) = Handshake::start(&Code::parse(code_a).unwrap());
        let (b, pake_b) = Handshake::start(&Code::parse(code_b).unwrap());
        let text = |m: &Message| match m {
            Message::Pake { message } => message.clone(),
            Message::Confirm { mac } => mac.clone(),
            _ => String::new(),
        };
        let (a, confirm_a) = a.on_pake(&text(&pake_b), role_a, seen("AA", "BB")).unwrap();
        let (b, confirm_b) = b.on_pake(&text(&pake_a), role_b, seen("BB", "AA")).unwrap();
        (
            a.on_confirm(&text(&confirm_b), "x"),
            b.on_confirm(&text(&confirm_a), "x"),
        )
    }

    #[test]
    fn each_side_learns_the_role_the_other_proved() {
        let (at_a, at_b) = run(
            "7-correct-horse-battery",
            "7-correct-horse-battery",
            Role::Sender,
            Role::Receiver,
        );
        assert_eq!(at_a.unwrap(), Role::Receiver);
        assert_eq!(at_b.unwrap(), Role::Sender);
        let (at_a, at_b) = run(
            "7-correct-horse-battery",
            "7-correct-horse-battery",
            Role::Receiver,
            Role::Receiver,
        );
        assert_eq!(at_a.unwrap(), Role::Receiver);
        assert_eq!(at_b.unwrap(), Role::Receiver);
    }

    #[test]
    fn a_wrong_code_proves_nothing() {
        let (at_a, at_b) = run(
            "7-correct-horse-battery",
            "7-correct-horse-batterz",
            Role::Sender,
            Role::Receiver,
        );
        assert!(at_a.is_err());
        assert!(at_b.is_err());
    }

    #[test]
    fn messages_out_of_order_are_refused() {
        let (start, _) = Handshake::start(&Code::parse("7-correct-horse-battery").unwrap());
        assert!(start.on_confirm("00", "x").is_err());
    }
}
