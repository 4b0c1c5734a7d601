//! Two machines on one network with nothing set up: `send` serves signaling
//! itself (the signaling server, embedded) and announces it by mDNS/DNS-SD;
//! `receive` finds it there.
//!
//! What is announced is no more than the code's number: the service instance
//! `code-N` of type [`SERVICE_TYPE`], a random host name, the addresses and
//! the port. The secret words never leave the two machines, and the key
//! exchange and fingerprint binding are those of any transfer, so a
//! neighbour who answers the discovery learns nothing and cannot get in.

mod discover;
mod host;

pub(crate) use discover::{find_senders, is_announced};
pub(crate) use host::LanHost;

/// The DNS-SD service type of a sender's signaling server.
const SERVICE_TYPE: &str = "_peer-client._tcp.local.";

/// The instance name a sender announces for the code number `nameplate`.
fn instance_name(nameplate: &str) -> String {
    format!("code-{nameplate}")
}

/// The full DNS-SD name of that instance.
fn full_name(nameplate: &str) -> String {
    format!("{}.{SERVICE_TYPE}", instance_name(nameplate))
}
