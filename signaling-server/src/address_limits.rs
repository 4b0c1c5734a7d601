//! Per-address limits as a state machine without sockets or clocks: how many
//! connections one client address holds in their HTTP phase, how many
//! WebSockets it holds open, and how fast it opens new connections. The
//! server-wide limits keep the server alive; these keep one address from
//! taking what everyone else needs.
//!
//! Memory stays bounded: an address is tracked while it holds a connection
//! (at most the server-wide limits' worth) or while its rate bucket refills
//! (a few seconds); a sweep forgets the rest, and past [`MAX_IDLE_ADDRESSES`]
//! idle ones it forgets their rate history too.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::client_address::ClientAddress;
use crate::rate_limit::TokenBucket;

/// Addresses without a connection whose rate history is kept at most; more
/// are forgotten at the next sweep (each then starts with a full bucket).
pub const MAX_IDLE_ADDRESSES: usize = 100_000;

/// How often idle addresses are swept.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// The limits; 0 turns one off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressLimitSettings {
    /// Connections still in their HTTP phase (TLS handshake, headers, plain requests).
    pub max_pending: u32,
    /// Open WebSocket connections.
    pub max_open: u32,
    /// New connections per second, sustained.
    pub per_second: u32,
    /// New connections at once above the sustained rate.
    pub burst: u32,
}

/// Which per-address limit refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressLimit {
    /// Too many connections in their HTTP phase.
    Pending,
    /// New connections too fast.
    Rate,
    /// Too many open WebSockets.
    Open,
}

/// A refused connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// The limit it hit.
    pub limit: AddressLimit,
    /// The address's first refusal since it was last admitted: worth a log
    /// line (later ones are only counted, so an attack cannot flood the log).
    pub first: bool,
}

#[derive(Debug)]
struct Entry {
    pending: u32,
    open: u32,
    bucket: Option<TokenBucket>,
    refusing: bool,
}

impl Entry {
    fn idle(&self) -> bool {
        self.pending == 0 && self.open == 0
    }

    fn forgettable(&self, now: Instant) -> bool {
        self.idle() && self.bucket.as_ref().is_none_or(|b| b.is_full(now))
    }
}

/// Connections per client address.
#[derive(Debug)]
pub struct AddressLimits {
    settings: AddressLimitSettings,
    entries: HashMap<ClientAddress, Entry>,
    next_sweep: Instant,
}

impl AddressLimits {
    /// No address tracked yet.
    pub fn new(settings: AddressLimitSettings, now: Instant) -> Self {
        Self {
            settings,
            entries: HashMap::new(),
            next_sweep: now + SWEEP_INTERVAL,
        }
    }

    /// A new TCP connection straight from `addr`: takes one of its HTTP-phase
    /// slots (give it back with [`Self::pending_ended`]) and a token of its
    /// connection rate.
    pub fn connect(&mut self, addr: ClientAddress, now: Instant) -> Result<(), Refused> {
        let max_pending = self.settings.max_pending;
        self.admit(addr, now, |entry| {
            if max_pending != 0 && entry.pending >= max_pending {
                return Err(AddressLimit::Pending);
            }
            take_token(entry, now)?;
            entry.pending += 1;
            Ok(())
        })
    }

    /// A WebSocket opening for `addr`: takes one of its open slots (give it
    /// back with [`Self::closed`]). `new_connection` also takes a token of
    /// its rate: set for clients behind a trusted proxy, whose TCP
    /// connections are the proxy's and were not counted under their address.
    pub fn open(
        &mut self,
        addr: ClientAddress,
        new_connection: bool,
        now: Instant,
    ) -> Result<(), Refused> {
        let max_open = self.settings.max_open;
        self.admit(addr, now, |entry| {
            if max_open != 0 && entry.open >= max_open {
                return Err(AddressLimit::Open);
            }
            if new_connection {
                take_token(entry, now)?;
            }
            entry.open += 1;
            Ok(())
        })
    }

    /// A connection taken with [`Self::connect`] left its HTTP phase (it
    /// closed, or upgraded to a WebSocket).
    pub fn pending_ended(&mut self, addr: ClientAddress) {
        if let Some(entry) = self.entries.get_mut(&addr) {
            entry.pending = entry.pending.saturating_sub(1);
        }
    }

    /// A WebSocket taken with [`Self::open`] closed.
    pub fn closed(&mut self, addr: ClientAddress) {
        if let Some(entry) = self.entries.get_mut(&addr) {
            entry.open = entry.open.saturating_sub(1);
        }
    }

    /// Addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.entries.len()
    }

    /// Connections `addr` holds: (in their HTTP phase, open WebSockets).
    pub fn held(&self, addr: ClientAddress) -> (u32, u32) {
        self.entries
            .get(&addr)
            .map_or((0, 0), |entry| (entry.pending, entry.open))
    }

    fn admit(
        &mut self,
        addr: ClientAddress,
        now: Instant,
        check: impl FnOnce(&mut Entry) -> Result<(), AddressLimit>,
    ) -> Result<(), Refused> {
        self.sweep(now);
        let settings = self.settings;
        let entry = self.entries.entry(addr).or_insert_with(|| Entry {
            pending: 0,
            open: 0,
            bucket: (settings.per_second != 0)
                .then(|| TokenBucket::new(settings.per_second, settings.burst.max(1), now)),
            refusing: false,
        });
        match check(entry) {
            Ok(()) => {
                entry.refusing = false;
                Ok(())
            }
            Err(limit) => {
                let first = !entry.refusing;
                entry.refusing = true;
                Err(Refused { limit, first })
            }
        }
    }

    /// Once a second: forgets addresses that hold nothing and whose rate
    /// bucket is full again; past the cap, every address that holds nothing.
    fn sweep(&mut self, now: Instant) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + SWEEP_INTERVAL;
        self.entries.retain(|_, entry| !entry.forgettable(now));
        let idle = self.entries.values().filter(|e| e.idle()).count();
        if idle > MAX_IDLE_ADDRESSES {
            self.entries.retain(|_, entry| !entry.idle());
        }
    }
}

fn take_token(entry: &mut Entry, now: Instant) -> Result<(), AddressLimit> {
    let taken = entry
        .bucket
        .as_mut()
        .is_none_or(|bucket| bucket.try_take(now));
    if taken {
        Ok(())
    } else {
        Err(AddressLimit::Rate)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    const SETTINGS: AddressLimitSettings = AddressLimitSettings {
        max_pending: 3,
        max_open: 4,
        per_second: 10,
        burst: 5,
    };

    fn addr(last: u8) -> ClientAddress {
        ClientAddress::of(IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)))
    }

    fn refused(limit: AddressLimit, first: bool) -> Result<(), Refused> {
        Err(Refused { limit, first })
    }

    #[test]
    fn pending_connections_are_bounded_per_address() {
        let now = Instant::now();
        let mut limits = AddressLimits::new(SETTINGS, now);
        for _ in 0..3 {
            assert_eq!(limits.connect(addr(1), now), Ok(()));
        }
        assert_eq!(
            limits.connect(addr(1), now),
            refused(AddressLimit::Pending, true)
        );
        assert_eq!(
            limits.connect(addr(1), now),
            refused(AddressLimit::Pending, false)
        );
        // Another address is not affected.
        assert_eq!(limits.connect(addr(2), now), Ok(()));
        // One ends its HTTP phase: its slot serves the next.
        limits.pending_ended(addr(1));
        assert_eq!(limits.connect(addr(1), now), Ok(()));
        assert_eq!(limits.held(addr(1)), (3, 0));
    }

    #[test]
    fn new_connections_are_rate_limited_per_address() {
        let start = Instant::now();
        let mut limits = AddressLimits::new(
            AddressLimitSettings {
                max_pending: 0,
                ..SETTINGS
            },
            start,
        );
        for _ in 0..5 {
            assert_eq!(limits.connect(addr(1), start), Ok(()));
        }
        assert_eq!(
            limits.connect(addr(1), start),
            refused(AddressLimit::Rate, true)
        );
        assert_eq!(limits.connect(addr(2), start), Ok(()));
        // 10 per second: one more after 100 ms, and the next refusal is a
        // first one again.
        let later = start + Duration::from_millis(100);
        assert_eq!(limits.connect(addr(1), later), Ok(()));
        assert_eq!(
            limits.connect(addr(1), later),
            refused(AddressLimit::Rate, true)
        );
    }

    #[test]
    fn open_websockets_are_bounded_per_address() {
        let now = Instant::now();
        let mut limits = AddressLimits::new(SETTINGS, now);
        for _ in 0..4 {
            assert_eq!(limits.connect(addr(1), now), Ok(()));
            limits.pending_ended(addr(1));
            assert_eq!(limits.open(addr(1), false, now), Ok(()));
        }
        assert_eq!(
            limits.open(addr(1), false, now),
            refused(AddressLimit::Open, true)
        );
        limits.closed(addr(1));
        assert_eq!(limits.open(addr(1), false, now), Ok(()));
        assert_eq!(limits.held(addr(1)), (0, 4));
    }

    #[test]
    fn clients_behind_a_proxy_pay_their_rate_when_they_open() {
        let now = Instant::now();
        let mut limits = AddressLimits::new(
            AddressLimitSettings {
                max_open: 0,
                ..SETTINGS
            },
            now,
        );
        for _ in 0..5 {
            assert_eq!(limits.open(addr(1), true, now), Ok(()));
        }
        assert_eq!(
            limits.open(addr(1), true, now),
            refused(AddressLimit::Rate, true)
        );
        assert_eq!(limits.open(addr(1), false, now), Ok(()));
    }

    #[test]
    fn zero_turns_every_limit_off() {
        let now = Instant::now();
        let off = AddressLimitSettings {
            max_pending: 0,
            max_open: 0,
            per_second: 0,
            burst: 0,
        };
        let mut limits = AddressLimits::new(off, now);
        for _ in 0..10_000 {
            assert_eq!(limits.connect(addr(1), now), Ok(()));
            assert_eq!(limits.open(addr(1), true, now), Ok(()));
        }
    }

    #[test]
    fn addresses_that_hold_nothing_are_forgotten_once_their_bucket_refills() {
        let start = Instant::now();
        let mut limits = AddressLimits::new(SETTINGS, start);
        for last in 0..=255 {
            assert_eq!(limits.connect(addr(last), start), Ok(()));
            limits.pending_ended(addr(last));
        }
        assert_eq!(limits.open(addr(7), false, start), Ok(()));
        assert_eq!(limits.tracked(), 256);
        // After a second each bucket has refilled (5 tokens at 10/s); only
        // the address with an open WebSocket (and the one that triggered the
        // sweep) stay.
        let later = start + Duration::from_secs(1);
        assert_eq!(limits.connect(addr(9), later), Ok(()));
        assert_eq!(limits.tracked(), 2);
        assert_eq!(limits.held(addr(7)), (0, 1));
    }

    #[test]
    fn buckets_still_refilling_are_kept() {
        let start = Instant::now();
        let mut limits = AddressLimits::new(
            AddressLimitSettings {
                per_second: 1,
                ..SETTINGS
            },
            start,
        );
        for _ in 0..5 {
            assert_eq!(limits.connect(addr(1), start), Ok(()));
            limits.pending_ended(addr(1));
        }
        // A sweep after one second must not hand the address a full bucket.
        let later = start + Duration::from_secs(1);
        assert_eq!(limits.connect(addr(2), later), Ok(()));
        assert_eq!(limits.connect(addr(1), later), Ok(()));
        assert_eq!(
            limits.connect(addr(1), later),
            refused(AddressLimit::Rate, true)
        );
    }
}
