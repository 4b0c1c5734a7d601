//! The ICE servers handed to each client in `welcome.ice_servers`.

use signaling_protocol::{IceServer, PeerId};

/// STUN (and later TURN) settings. Asked once per `welcome`, so per-client
/// short-lived TURN credentials can be minted here without touching the
/// connection code.
#[derive(Debug, Clone, Default)]
pub struct IceConfig {
    stun: Vec<String>,
}

impl IceConfig {
    /// STUN servers given as URLs (`stun:host:port`).
    pub fn new(stun: Vec<String>) -> Self {
        Self { stun }
    }

    /// The list for the `welcome` of `peer`. Empty when none is configured:
    /// peers on one network or loopback connect with host candidates alone.
    pub fn servers_for(&self, _peer: PeerId) -> Vec<IceServer> {
        if self.stun.is_empty() {
            return Vec::new();
        }
        vec![IceServer {
            urls: self.stun.clone(),
            username: None,
            credential: None,
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stun_urls_share_one_entry() {
        let ice = IceConfig::new(vec!["stun:a:3478".into(), "stun:b:3478".into()]);
        let servers = ice.servers_for(PeerId::random());
        assert_eq!(servers.len(), 1);
        assert_eq!(servers[0].urls, ["stun:a:3478", "stun:b:3478"]);
        assert!(
            IceConfig::default()
                .servers_for(PeerId::random())
                .is_empty()
        );
    }
}
