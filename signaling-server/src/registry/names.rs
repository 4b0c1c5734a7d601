//! Room names a client may use, and the ids and tokens the server makes.

use signaling_protocol::{MAX_ROOM_NAME_BYTES, PeerId};

use super::RegistryError;

/// Room names: 1–128 bytes of UTF-8 without control characters.
pub(crate) fn validate_room(room: &str) -> Result<(), RegistryError> {
    if room.is_empty() {
        return Err(RegistryError::InvalidRoom("the name is empty"));
    }
    if room.len() > MAX_ROOM_NAME_BYTES {
        return Err(RegistryError::InvalidRoom(
            "the name is longer than 128 bytes",
        ));
    }
    if room.chars().any(char::is_control) {
        return Err(RegistryError::InvalidRoom(
            "the name contains control characters",
        ));
    }
    Ok(())
}

/// A random (v4) UUID from the thread-local CSPRNG, which costs no system
/// call (unlike asking the OS for every id).
pub(crate) fn new_peer_id() -> PeerId {
    PeerId::from(uuid::Builder::from_random_bytes(rand::random()).into_uuid())
}

/// 128 random bits from the thread-local CSPRNG, as 32 hex digits.
pub(crate) fn new_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}
