//! The ICE servers handed to each client in `welcome.ice_servers`: STUN
//! URLs, and TURN URLs with short-lived credentials.
//!
//! TURN credentials follow the scheme coturn checks with `use-auth-secret`
//! (the "TURN REST API" draft): the username is `EXPIRY:PEER_ID`, with
//! `EXPIRY` in Unix seconds, and the password is
//! `base64(HMAC-SHA1(secret, username))`. The TURN server shares the secret
//! (`static-auth-secret`) and refuses credentials past their expiry, so a
//! leaked password is only good for `ttl`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use signaling_protocol::{IceServer, PeerId};

use crate::secret::Secret;

/// TURN relays and the secret they share with this server.
#[derive(Debug, Clone)]
pub struct TurnConfig {
    /// `turn:` / `turns:` URLs.
    pub urls: Vec<String>,
    /// coturn's `static-auth-secret`.
    pub secret: Secret,
    /// How long minted credentials stay valid.
    pub ttl: Duration,
}

/// STUN and TURN settings. Asked once per `welcome`, so each client gets
/// its own short-lived TURN credentials.
#[derive(Debug, Clone, Default)]
pub struct IceConfig {
    stun: Vec<String>,
    turn: Option<TurnConfig>,
}

impl IceConfig {
    /// STUN servers given as URLs (`stun:host:port`), and optionally TURN.
    pub fn new(stun: Vec<String>, turn: Option<TurnConfig>) -> Self {
        Self { stun, turn }
    }

    /// The list for the `welcome` of `peer`. Empty when none is configured:
    /// peers on one network or loopback connect with host candidates alone.
    pub fn servers_for(&self, peer: PeerId) -> Vec<IceServer> {
        let mut servers = Vec::new();
        if !self.stun.is_empty() {
            servers.push(IceServer {
                urls: self.stun.clone(),
                username: None,
                credential: None,
            });
        }
        if let Some(turn) = &self.turn {
            let expiry = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .saturating_add(turn.ttl)
                .as_secs();
            let (username, credential) =
                turn_credentials(turn.secret.as_bytes(), expiry, &peer.to_string());
            servers.push(IceServer {
                urls: turn.urls.clone(),
                username: Some(username),
                credential: Some(credential),
            });
        }
        servers
    }
}

/// coturn `use-auth-secret` credentials for `user` valid until `expiry`
/// (Unix seconds): `(username, password)`.
pub fn turn_credentials(secret: &[u8], expiry: u64, user: &str) -> (String, String) {
    let username = format!("{expiry}:{user}");
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(username.as_bytes());
    let password = STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        "north-wind-north-wind".parse().unwrap()
    }

    #[test]
    fn stun_urls_share_one_entry() {
        let ice = IceConfig::new(vec!["stun:a:3478".into(), "stun:b:3478".into()], None);
        let servers = ice.servers_for(PeerId::random());
        assert_eq!(servers.len(), 1);
        assert_eq!(servers[0].urls, ["stun:a:3478", "stun:b:3478"]);
        assert!(
            IceConfig::default()
                .servers_for(PeerId::random())
                .is_empty()
        );
    }

    #[test]
    fn credentials_match_a_known_vector() {
        // Computed independently with:
        // printf %s "1700003600:6f1c2a9e-0000-4000-8000-000000000001" \
        //   | openssl dgst -sha1 -hmac north-wind -binary | base64
        let (username, password) = turn_credentials(
            b"north-wind",
            1_700_003_600,
            "6f1c2a9e-0000-4000-8000-000000000001",
        );
        assert_eq!(username, "1700003600:6f1c2a9e-0000-4000-8000-000000000001");
        assert_eq!(password, "2cvzLzI3oLF8HTSuTWjIWeWm2IU=");
    }

    #[test]
    fn each_peer_gets_its_own_expiring_credentials() {
        let turn = TurnConfig {
            urls: vec!["turn:127.0.0.1:3478?transport=udp".into()],
            secret: secret(),
            ttl: Duration::from_secs(3600),
        };
        let ice = IceConfig::new(vec!["stun:127.0.0.1:3478".into()], Some(turn));
        let peer = PeerId::random();
        let servers = ice.servers_for(peer);
        assert_eq!(servers.len(), 2);
        let relay = &servers[1];
        assert_eq!(relay.urls, ["turn:127.0.0.1:3478?transport=udp"]);
        let username = relay.username.clone().unwrap();
        let (expiry, user) = username.split_once(':').unwrap();
        assert_eq!(user, peer.to_string());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let expiry: u64 = expiry.parse().unwrap();
        assert!(
            (now + 3590..=now + 3610).contains(&expiry),
            "{expiry} vs {now}"
        );
        let expected = turn_credentials(secret().as_bytes(), expiry, user).1;
        assert_eq!(relay.credential.as_deref(), Some(expected.as_str()));
        let other = ice.servers_for(PeerId::random());
        assert_ne!(other[1].username, relay.username);
    }
}
