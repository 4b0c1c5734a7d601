//! Names of the Redis broker's keys and channels. A room's keys share one
//! hash tag, a digest of its name, so on a Redis Cluster each room lives on
//! one shard and its scripts run there; what all rooms share lives under the
//! control tag; each instance's channel has a tag of its own.

use sha2::{Digest, Sha256};

/// Prefix of the keys all rooms share (see `redis_scripts.rs`).
pub(super) const CONTROL: &str = "sig:{ctl}:";

/// The prefix of a room's keys: `sig:{TAG}:`, TAG being the first 8 bytes of
/// the SHA-256 of the name in hex. A digest rather than the name, because a
/// name may hold braces, which would cut a hash tag short.
pub(super) fn room_prefix(room: &str) -> String {
    let digest = Sha256::digest(room.as_bytes());
    let mut prefix = String::with_capacity(24);
    prefix.push_str("sig:{");
    for byte in &digest[..8] {
        prefix.push_str(&format!("{byte:02x}"));
    }
    prefix.push_str("}:");
    prefix
}

/// The sharded channel an instance reads.
pub(super) fn instance_channel(instance: &str) -> String {
    format!("sig:{{i:{instance}}}:ch")
}

/// A control key.
pub(super) fn control(name: &str) -> String {
    format!("{CONTROL}{name}")
}

/// The control set of the peers `instance` attached (a name under
/// [`CONTROL`], as the broker's control commands take it).
pub(super) fn instance_peers(instance: &str) -> String {
    format!("inst:{instance}")
}

/// The key whose presence says `instance` is alive.
pub(super) fn instance_alive(instance: &str) -> String {
    control(&format!("alive:{instance}"))
}

/// How a peer is named in the control sets: `PEER ROOM`.
pub(super) fn peer_entry(peer: &str, room: &str) -> String {
    format!("{peer} {room}")
}

/// The peer and room of a control entry.
pub(super) fn split_peer_entry(entry: &str) -> Option<(&str, &str)> {
    entry.split_once(' ')
}

/// The hash tag a key or channel routes by: what lies between its first
/// `{` and the next `}`.
pub(super) fn hash_tag(key: &str) -> &str {
    key.find('{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.find('}').map(|close| &rest[..close])
        })
        .unwrap_or(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rooms_keys_share_one_tag_whatever_its_name_holds() {
        let prefix = room_prefix("a }{ room");
        assert_eq!(prefix.len(), "sig:{}:".len() + 16);
        assert_eq!(
            hash_tag(&format!("{prefix}r:a }}{{ room")),
            hash_tag(&prefix)
        );
        assert_ne!(room_prefix("a"), room_prefix("b"));
        assert_eq!(room_prefix("a"), room_prefix("a"));
    }

    #[test]
    fn channels_and_control_keys_have_their_own_tags() {
        assert_eq!(hash_tag(&instance_channel("abc")), "i:abc");
        assert_eq!(hash_tag(&control("rooms")), "ctl");
    }

    #[test]
    fn entries_split_at_the_first_space() {
        let entry = peer_entry("p1", "a room");
        assert_eq!(split_peer_entry(&entry), Some(("p1", "a room")));
    }
}
