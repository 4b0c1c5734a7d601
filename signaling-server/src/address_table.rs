//! The shared shell around [`AddressLimits`]: one lock, slots that give
//! themselves back when dropped, and the counter and log line of every
//! refusal.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use axum::http::HeaderMap;
use tracing::{debug, info};

use crate::address_limits::{AddressLimit, AddressLimitSettings, AddressLimits, Refused};
use crate::client_address::{ClientAddress, TrustedProxies};
use crate::metrics::{Metrics, Refusal};

/// Per-address limits shared by the listener and the WebSocket route.
#[derive(Debug)]
pub(crate) struct AddressTable {
    limits: Mutex<AddressLimits>,
    trusted: TrustedProxies,
    settings: AddressLimitSettings,
    metrics: Arc<Metrics>,
}

/// A connection's place among its address's connections in their HTTP
/// phase; given back when dropped. Connections from a trusted proxy hold
/// none (their clients are counted when they open a WebSocket).
#[derive(Debug)]
pub(crate) struct PendingSlot {
    table: Arc<AddressTable>,
    addr: Option<ClientAddress>,
}

/// A WebSocket's place among its address's open ones; given back when
/// dropped.
#[derive(Debug)]
pub(crate) struct OpenSlot {
    table: Arc<AddressTable>,
    addr: ClientAddress,
}

/// A connection refused by a per-address limit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AddressRefused {
    /// The client's address.
    pub(crate) addr: ClientAddress,
    /// The limit it hit.
    pub(crate) limit: AddressLimit,
}

impl AddressTable {
    pub(crate) fn new(
        settings: AddressLimitSettings,
        trusted: TrustedProxies,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            limits: Mutex::new(AddressLimits::new(settings, Instant::now())),
            trusted,
            settings,
            metrics,
        })
    }

    /// Admits a TCP connection from `peer`, or counts and (the first time)
    /// logs its refusal.
    pub(crate) fn connect(self: &Arc<Self>, peer: IpAddr) -> Result<PendingSlot, AddressLimit> {
        if self.trusted.contains(peer) {
            return Ok(PendingSlot {
                table: self.clone(),
                addr: None,
            });
        }
        let addr = ClientAddress::of(peer);
        match self.lock().connect(addr, Instant::now()) {
            Ok(()) => Ok(PendingSlot {
                table: self.clone(),
                addr: Some(addr),
            }),
            Err(refused) => Err(self.report(addr, refused)),
        }
    }

    /// Admits a WebSocket from the client behind `peer` (itself, or for a
    /// trusted proxy the client its `X-Forwarded-For` names), or counts and
    /// (the first time) logs its refusal.
    pub(crate) fn open(
        self: &Arc<Self>,
        peer: IpAddr,
        headers: &HeaderMap,
    ) -> Result<OpenSlot, AddressRefused> {
        let forwarded = self.trusted.contains(peer);
        let addr = ClientAddress::of(self.trusted.client_of(peer, headers));
        match self.lock().open(addr, forwarded, Instant::now()) {
            Ok(()) => Ok(OpenSlot {
                table: self.clone(),
                addr,
            }),
            Err(refused) => Err(AddressRefused {
                addr,
                limit: self.report(addr, refused),
            }),
        }
    }

    /// The limit a refusal hit, as a sentence for the client and the log.
    pub(crate) fn explain(&self, refused: AddressRefused) -> String {
        let (s, addr) = (self.settings, refused.addr);
        match refused.limit {
            AddressLimit::Pending => format!(
                "{addr} holds its limit of {} connections before the WebSocket upgrade",
                s.max_pending
            ),
            AddressLimit::Rate => format!(
                "{addr} opens connections faster than {} a second (bursts of {}); try again later",
                s.per_second, s.burst
            ),
            AddressLimit::Open => format!(
                "{addr} holds its limit of {} WebSocket connections; close one or try again later",
                s.max_open
            ),
        }
    }

    fn report(&self, addr: ClientAddress, refused: Refused) -> AddressLimit {
        self.metrics.refused(match refused.limit {
            AddressLimit::Pending => Refusal::AddressPending,
            AddressLimit::Rate => Refusal::AddressRate,
            AddressLimit::Open => Refusal::AddressConnections,
        });
        // Under attack this runs for every connection: the sentence is only
        // written when a log line takes it.
        let explain = || {
            self.explain(AddressRefused {
                addr,
                limit: refused.limit,
            })
        };
        if refused.first {
            info!(
                "connection refused: {} (further refusals of this address are only counted until it is admitted again)",
                explain()
            );
        } else {
            debug!("connection refused: {}", explain());
        }
        refused.limit
    }

    fn lock(&self) -> MutexGuard<'_, AddressLimits> {
        self.limits.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        if let Some(addr) = self.addr {
            self.table.lock().pending_ended(addr);
        }
    }
}

impl Drop for OpenSlot {
    fn drop(&mut self) {
        self.table.lock().closed(self.addr);
    }
}
