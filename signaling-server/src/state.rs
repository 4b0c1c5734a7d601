//! State the routes and every connection task share: configuration, the broker, metrics, the
//! connection limits and the set of open connections that shutdown closes.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::address_table::AddressTable;
use crate::broker::{Broker, ConnHandle};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::outbox::{CloseReason, OutboxBudget};

/// State shared by the routes and every connection task.
#[derive(Debug)]
pub(crate) struct ServerState {
    pub(crate) config: Config,
    pub(crate) broker: Broker,
    pub(crate) metrics: Arc<Metrics>,
    /// Cancelled when shutdown begins.
    pub(crate) shutdown: CancellationToken,
    /// Tracks connection tasks so shutdown can wait for them.
    pub(crate) tracker: TaskTracker,
    /// One permit per allowed connection.
    pub(crate) connections: Arc<Semaphore>,
    /// One permit per allowed connection not yet upgraded to WebSocket.
    pub(crate) pending: Arc<Semaphore>,
    /// Connections per client address.
    pub(crate) addresses: Arc<AddressTable>,
    /// Bytes queued for all connections together.
    pub(crate) outbox_budget: Arc<OutboxBudget>,
    /// Set when shutdown was requested: `/readyz` answers 503 from then on.
    pub(crate) draining: AtomicBool,
    /// Every open WebSocket connection, so shutdown can close their outboxes
    /// (cheaper than each connection task watching a cancellation token).
    pub(crate) open: Mutex<HashMap<u64, ConnHandle>>,
}

impl ServerState {
    /// Registers an open connection; closes it at once if shutdown began.
    pub(crate) fn opened(&self, conn: &ConnHandle) {
        self.lock_open().insert(conn.id(), conn.clone());
        if self.shutdown.is_cancelled() {
            conn.outbox().close(CloseReason::Shutdown);
        }
    }

    /// Every heartbeat interval, tells each open connection to check for
    /// idleness and ping its client, until shutdown.
    pub(crate) async fn run_heartbeat(&self) {
        let period = self.config.heartbeat_interval;
        let mut ticks = tokio::time::interval_at((Instant::now() + period).into(), period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            for conn in self.lock_open().values() {
                conn.outbox().heartbeat();
            }
        }
    }

    /// Forgets a closed connection.
    pub(crate) fn closed(&self, conn: &ConnHandle) {
        self.lock_open().remove(&conn.id());
    }

    /// Begins shutdown: stops accepting and tells every connection.
    pub(crate) fn begin_shutdown(&self) {
        self.shutdown.cancel();
        for conn in self.lock_open().values() {
            conn.outbox().close(CloseReason::Shutdown);
        }
    }

    fn lock_open(&self) -> MutexGuard<'_, HashMap<u64, ConnHandle>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
