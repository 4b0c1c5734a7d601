//! What connections talk to: join, signal, leave, disconnect.
//!
//! The connection code sees only [`Broker`] and its own [`ConnHandle`]. The
//! broker decides where room state lives and how frames reach other peers'
//! connections: [`MemoryBroker`] keeps the [`Registry`] behind a mutex, in
//! this process; [`RedisBroker`] keeps rooms in Redis and sends frames for
//! peers on other instances through pub/sub, so several instances share
//! rooms. The operations are `async` so a backend can wait on the network;
//! the connection code does not know which one it talks to.

mod joins_in_flight;
mod redis_broker;
mod redis_keys;
mod redis_link;
mod redis_pipe;
mod redis_routes;
mod redis_scripts;

pub use redis_broker::{RedisBroker, RedisError};

use std::future::pending;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use signaling_protocol::{ErrorCode, Limits, PeerId, ServerMessage, SignalData};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::ice::IceConfig;
use crate::metrics::Metrics;
use crate::outbox::{CloseReason, Outbox, OutboxBudget, SharedText};
use crate::registry::{Registry, RegistryError, RegistryLimits};

/// One connection as the broker knows it: an id, and the outbox frames for
/// it go to.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    id: u64,
    outbox: Arc<Outbox>,
}

impl ConnHandle {
    /// The connection's id, unique within this process (for logs).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Where frames for this connection are queued.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }
}

impl PartialEq for ConnHandle {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

/// A refused request, as sent back in `error {code, message, peer_id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// What happened and what to do, for people.
    pub message: String,
    /// The peer concerned, if any.
    pub peer_id: Option<PeerId>,
}

impl From<RegistryError> for Rejection {
    fn from(err: RegistryError) -> Self {
        Self {
            code: err.code(),
            peer_id: err.peer_id(),
            message: err.to_string(),
        }
    }
}

/// The settings a broker needs.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    /// Registry bounds.
    pub registry: RegistryLimits,
    /// Limits announced in `welcome`.
    pub limits: Limits,
    /// ICE servers for `welcome`.
    pub ice: IceConfig,
}

/// The backend that holds rooms and routes frames.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one broker per server, held in an Arc: its size does not matter"
)]
pub enum Broker {
    /// Everything in this process.
    Memory(MemoryBroker),
    /// Rooms shared with other instances through Redis.
    Redis(RedisBroker),
}

impl Broker {
    /// An in-memory broker.
    pub fn memory(settings: BrokerSettings, metrics: Arc<Metrics>) -> Self {
        Self::Memory(MemoryBroker::new(settings, metrics))
    }

    /// A broker sharing rooms through the Redis server at `url`; this
    /// instance counts as alive for `liveness` after each refresh.
    pub async fn redis(
        url: &str,
        liveness: std::time::Duration,
        settings: BrokerSettings,
        metrics: Arc<Metrics>,
    ) -> Result<Self, RedisError> {
        Ok(Self::Redis(
            RedisBroker::connect(url, liveness, settings, metrics).await?,
        ))
    }

    /// Registers a new connection whose outbox holds at most `max_frames`
    /// frames and `max_bytes` bytes, counted against the shared `budget`.
    pub fn open(
        &self,
        max_frames: usize,
        max_bytes: usize,
        budget: &Arc<OutboxBudget>,
    ) -> ConnHandle {
        match self {
            Self::Memory(broker) => broker.open(max_frames, max_bytes, budget),
            Self::Redis(broker) => broker.open(max_frames, max_bytes, budget),
        }
    }

    /// Joins (or resumes into) `room`. On success the `welcome`, any signals
    /// queued during absence and nothing else are already in `conn`'s
    /// outbox, in that order.
    pub async fn join(
        &self,
        conn: &ConnHandle,
        room: &str,
        resume: Option<&str>,
    ) -> Result<PeerId, Rejection> {
        match self {
            Self::Memory(broker) => broker.join(conn, room, resume),
            Self::Redis(broker) => broker.join(conn, room, resume).await,
        }
    }

    /// Relays a signal from `from` (on `conn`) to `to`.
    pub async fn signal(
        &self,
        conn: &ConnHandle,
        from: PeerId,
        to: PeerId,
        data: SignalData,
    ) -> Result<(), Rejection> {
        match self {
            Self::Memory(broker) => broker.signal(conn, from, to, data),
            Self::Redis(broker) => broker.signal(conn, from, to, data).await,
        }
    }

    /// `peer` leaves its room for good.
    pub async fn leave(&self, conn: &ConnHandle, peer: PeerId) -> Result<(), Rejection> {
        match self {
            Self::Memory(broker) => broker.leave(conn, peer),
            Self::Redis(broker) => broker.leave(conn, peer).await,
        }
    }

    /// `conn`, which carried `peer`, is gone: the peer becomes absent and
    /// may resume within the grace period.
    pub async fn disconnect(&self, conn: &ConnHandle, peer: PeerId) {
        match self {
            Self::Memory(broker) => broker.disconnect(conn, peer),
            Self::Redis(broker) => broker.disconnect(conn, peer).await,
        }
    }

    /// Whether the broker can serve: always in memory; with Redis, whether
    /// its last request to Redis went through.
    pub fn ready(&self) -> bool {
        match self {
            Self::Memory(_) => true,
            Self::Redis(broker) => broker.ready(),
        }
    }

    /// Removes absent peers as their grace periods end, until `shutdown`
    /// (with Redis also: reads frames from other instances, refreshes this
    /// instance's liveness, removes the peers of dead instances).
    pub async fn run_expiry(&self, shutdown: CancellationToken) {
        match self {
            Self::Memory(broker) => broker.run_expiry(shutdown).await,
            Self::Redis(broker) => broker.run(shutdown).await,
        }
    }
}

/// Rooms in this process: a [`Registry`] behind a mutex that is held only
/// for the synchronous registry call and the pushes into outboxes (which
/// never wait), never across an `.await`.
#[derive(Debug)]
pub struct MemoryBroker {
    registry: Mutex<Registry<ConnHandle>>,
    expiry_changed: Notify,
    settings: BrokerSettings,
    metrics: Arc<Metrics>,
    next_conn: AtomicU64,
}

impl MemoryBroker {
    /// An empty broker.
    pub fn new(settings: BrokerSettings, metrics: Arc<Metrics>) -> Self {
        Self {
            registry: Mutex::new(Registry::new(settings.registry)),
            expiry_changed: Notify::new(),
            settings,
            metrics,
            next_conn: AtomicU64::new(1),
        }
    }

    fn open(&self, max_frames: usize, max_bytes: usize, budget: &Arc<OutboxBudget>) -> ConnHandle {
        ConnHandle {
            id: self.next_conn.fetch_add(1, Ordering::Relaxed),
            outbox: Arc::new(Outbox::new(max_frames, max_bytes, budget.clone())),
        }
    }

    fn join(
        &self,
        conn: &ConnHandle,
        room: &str,
        resume: Option<&str>,
    ) -> Result<PeerId, Rejection> {
        let mut registry = self.lock();
        let joined = registry.join(conn.clone(), room, resume)?;
        let peer_id = joined.peer_id;
        let welcome = ServerMessage::Welcome {
            peer_id,
            room: joined.room.to_string(),
            peers: joined.peers,
            ice_servers: self.settings.ice.servers_for(peer_id),
            resume_token: joined.resume_token,
            resumed: joined.resumed,
            limits: self.settings.limits,
        };
        conn.outbox.push(SharedText::from(welcome.to_json()));
        for frame in joined.backlog {
            conn.outbox.push(frame);
        }
        if let Some(old) = joined.replaced {
            old.outbox.close(CloseReason::Replaced);
        }
        self.settle(&mut registry);
        drop(registry);
        self.metrics.joins.increment(1);
        if joined.resumed {
            self.metrics.resumes.increment(1);
        }
        Ok(peer_id)
    }

    fn signal(
        &self,
        conn: &ConnHandle,
        from: PeerId,
        to: PeerId,
        data: SignalData,
    ) -> Result<(), Rejection> {
        let mut registry = self.lock();
        let peers = registry.peer_count();
        registry.signal(from, conn, to, data)?;
        if registry.peer_count() == peers {
            // The common case: nobody was evicted, so only deliver.
            for (conn, frame) in registry.drain_deliveries() {
                conn.outbox.push(frame);
            }
        } else {
            self.settle(&mut registry);
        }
        drop(registry);
        self.metrics.signals_relayed.increment(1);
        Ok(())
    }

    fn leave(&self, conn: &ConnHandle, peer: PeerId) -> Result<(), Rejection> {
        let mut registry = self.lock();
        registry.leave(peer, conn)?;
        self.settle(&mut registry);
        Ok(())
    }

    fn disconnect(&self, conn: &ConnHandle, peer: PeerId) {
        let mut registry = self.lock();
        registry.disconnect(peer, conn, Instant::now());
        self.settle(&mut registry);
        drop(registry);
        self.expiry_changed.notify_one();
    }

    async fn run_expiry(&self, shutdown: CancellationToken) {
        loop {
            let next = self.lock().next_expiry();
            let until_next = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => pending().await,
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.expiry_changed.notified() => continue,
                () = until_next => {}
            }
            let mut registry = self.lock();
            let expired = registry.expire(Instant::now());
            self.settle(&mut registry);
            drop(registry);
            if expired > 0 {
                tracing::info!(expired, "resume grace period over; peers left their rooms");
                self.metrics.peers_expired.increment(expired as u64);
            }
        }
    }

    /// Hands queued deliveries to their outboxes and updates the gauges.
    /// A full outbox closes itself (slow consumer); its connection ends and
    /// nobody else waits.
    fn settle(&self, registry: &mut Registry<ConnHandle>) {
        for (conn, frame) in registry.drain_deliveries() {
            conn.outbox.push(frame);
        }
        self.metrics.rooms.set(registry.room_count() as f64);
        self.metrics.peers.set(registry.peer_count() as f64);
    }

    fn lock(&self) -> MutexGuard<'_, Registry<ConnHandle>> {
        // Registry operations leave it consistent between calls, so a panic
        // elsewhere while holding the lock does not corrupt it.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
