//! Connections pooled by (broker, purpose).
//!
//! Kafka answers the requests on one connection in order, so a request queued behind a long
//! poll waits for it. Giving each kind of traffic its own connection per broker keeps heartbeats
//! and commits away from fetches and rebalances, and heartbeats away from commits (franz-go keeps
//! five such connections per broker, aiokafka two).
//!
//! Invariants:
//! - Connecting is single-flight per key: callers that ask for the same key while a connect is
//!   under way wait for it and share its result (the connection or the failure). Each key has its
//!   own lock, so different keys connect in parallel; the map lock is never held across an await.
//! - A connection with requests in flight is never reaped, however long it has been idle.
//! - After a failed connect, the next attempt for that key waits an exponential backoff with
//!   jitter; a success resets it. A connection that was up and then closed reconnects at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use super::backoff::Backoff;
use super::connection::{Connection, ConnectionOptions};
use super::error::{CloseReason, NetError};
use crate::error_chain::Chain;

/// What a connection is for. Each purpose gets its own connection per broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Purpose {
    /// Metadata, ListOffsets, FindCoordinator, admin requests.
    Default,
    /// Fetch long polls.
    Fetch,
    /// JoinGroup and SyncGroup, which can block for a whole rebalance; between them, the
    /// member's own OffsetFetch (one task sends them all, one at a time).
    Group,
    /// OffsetCommit, LeaveGroup, and OffsetFetch outside a member.
    Coordination,
    /// Heartbeats alone: a commit the broker holds (waiting for the offsets topic's replicas)
    /// would otherwise hold the heartbeat queued behind it.
    Heartbeat,
}

impl Purpose {
    pub const ALL: [Purpose; 5] = [
        Purpose::Default,
        Purpose::Fetch,
        Purpose::Group,
        Purpose::Coordination,
        Purpose::Heartbeat,
    ];
}

/// The pool's key: which broker, and which traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnKey {
    pub broker: i32,
    pub purpose: Purpose,
}

impl ConnKey {
    pub fn new(broker: i32, purpose: Purpose) -> Self {
        Self { broker, purpose }
    }
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub connection: ConnectionOptions,
    /// Close connections that have had no request for this long (and none in flight).
    pub idle_timeout: Duration,
    pub reconnect_backoff: Duration,
    pub reconnect_backoff_max: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            connection: ConnectionOptions::default(),
            idle_timeout: Duration::from_secs(9 * 60),
            reconnect_backoff: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_secs(1),
        }
    }
}

/// Counters for operators and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// TCP connects started.
    pub connect_attempts: u64,
    /// Connects that completed the handshake.
    pub connects: u64,
    /// Idle connections closed by the reaper.
    pub reaped: u64,
}

#[derive(Default)]
struct SlotState {
    connection: Option<Connection>,
    failures: u32,
    /// When the last connect failed, and how; callers that were already waiting get this.
    last_failure: Option<(Instant, NetError)>,
    not_before: Option<Instant>,
}

#[derive(Default)]
struct Slot {
    state: tokio::sync::Mutex<SlotState>,
}

struct PoolInner {
    options: PoolOptions,
    addresses: RwLock<HashMap<i32, String>>,
    slots: Mutex<HashMap<ConnKey, Arc<Slot>>>,
    connect_attempts: AtomicU64,
    connects: AtomicU64,
    reaped: AtomicU64,
    /// The first connect failure that no retry heals (credentials, certificates).
    fatal: Mutex<Option<NetError>>,
}

impl PoolInner {
    /// A snapshot of the slots, taken without holding the map lock afterwards.
    fn slot_list(&self) -> Vec<(ConnKey, Arc<Slot>)> {
        let slots = self.slots.lock().expect("slot map poisoned");
        slots.iter().map(|(k, s)| (*k, s.clone())).collect()
    }
}

/// The connection pool. Cloning shares it.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

impl Pool {
    /// Creates a pool and starts its idle reaper (which stops when the pool is dropped).
    /// Must be called inside a tokio runtime.
    pub fn new(options: PoolOptions) -> Pool {
        let inner = Arc::new(PoolInner {
            options,
            addresses: RwLock::default(),
            slots: Mutex::default(),
            connect_attempts: AtomicU64::new(0),
            connects: AtomicU64::new(0),
            reaped: AtomicU64::new(0),
            fatal: Mutex::default(),
        });
        tokio::spawn(reap_idle(Arc::downgrade(&inner)));
        Pool { inner }
    }

    /// The first connect failure that no retry heals (a refused password after a session
    /// renewal, a certificate no longer trusted), once one happened: the consumer's polls
    /// return it, so the application stops with the reason instead of retrying for ever.
    pub fn fatal_error(&self) -> Option<NetError> {
        self.inner
            .fatal
            .lock()
            .expect("fatal slot poisoned")
            .clone()
    }

    pub fn options(&self) -> &PoolOptions {
        &self.inner.options
    }

    /// Sets the address of a broker. A changed address closes the broker's connections.
    pub fn set_address(&self, broker: i32, addr: String) {
        let previous = self
            .inner
            .addresses
            .write()
            .expect("address book poisoned")
            .insert(broker, addr.clone());
        if previous.is_some_and(|old| old != addr) {
            self.forget_connections(broker);
        }
    }

    /// Removes a broker that left the cluster and closes its connections.
    pub fn remove_broker(&self, broker: i32) {
        self.inner
            .addresses
            .write()
            .expect("address book poisoned")
            .remove(&broker);
        self.forget_connections(broker);
    }

    pub fn address(&self, broker: i32) -> Option<String> {
        self.inner
            .addresses
            .read()
            .expect("address book poisoned")
            .get(&broker)
            .cloned()
    }

    fn forget_connections(&self, broker: i32) {
        let slots: Vec<Arc<Slot>> = {
            let mut slots = self.inner.slots.lock().expect("slot map poisoned");
            let keys: Vec<ConnKey> = slots
                .keys()
                .filter(|k| k.broker == broker)
                .copied()
                .collect();
            keys.iter().filter_map(|k| slots.remove(k)).collect()
        };
        for slot in slots {
            if let Ok(state) = slot.state.try_lock() {
                if let Some(connection) = &state.connection {
                    connection.close(CloseReason::ClosedByClient);
                }
            }
        }
    }

    /// The live connection for a key, connecting (once, shared by all callers) if needed.
    pub async fn get(&self, key: ConnKey) -> Result<Connection, NetError> {
        let arrived = Instant::now();
        let slot = self
            .inner
            .slots
            .lock()
            .expect("slot map poisoned")
            .entry(key)
            .or_default()
            .clone();
        let mut state = slot.state.lock().await;
        if let Some(connection) = &state.connection {
            if connection.is_open() && !connection.session_expiring() {
                return Ok(connection.clone());
            }
            if connection.is_open() {
                // KIP-368: its SASL session is ending. Requests in flight finish on it; the
                // last handle to go closes it.
                tracing::debug!(broker = key.broker, purpose = ?key.purpose, "SASL session ending: opening a new connection");
            }
            state.connection = None;
        }
        if let Some((failed_at, error)) = &state.last_failure {
            if *failed_at >= arrived {
                // We queued behind a connect that failed: share its result, do not retry.
                return Err(error.clone());
            }
        }
        if let Some(not_before) = state.not_before {
            tokio::time::sleep_until(not_before.into()).await;
        }
        let addr = self
            .address(key.broker)
            .ok_or(NetError::UnknownBroker(key.broker))?;
        self.inner.connect_attempts.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(broker = key.broker, purpose = ?key.purpose, %addr, "connecting");
        match Connection::connect(key.broker, &addr, self.inner.options.connection.clone()).await {
            Ok(connection) => {
                tracing::debug!(
                    broker = key.broker,
                    purpose = ?key.purpose,
                    round_trip = ?connection.handshake_round_trip(),
                    "connected"
                );
                self.inner.connects.fetch_add(1, Ordering::Relaxed);
                *state = SlotState {
                    connection: Some(connection.clone()),
                    ..SlotState::default()
                };
                Ok(connection)
            }
            Err(error) => {
                state.failures += 1;
                let delay = Backoff::new(
                    self.inner.options.reconnect_backoff,
                    self.inner.options.reconnect_backoff_max,
                )
                .delay(state.failures);
                tracing::debug!(broker = key.broker, purpose = ?key.purpose, error = %Chain(&error), retry_in = ?delay, "connect failed");
                state.not_before = Some(Instant::now() + delay);
                state.last_failure = Some((Instant::now(), error.clone()));
                if error.is_fatal() {
                    let mut fatal = self.inner.fatal.lock().expect("fatal slot poisoned");
                    fatal.get_or_insert_with(|| error.clone());
                }
                Err(error)
            }
        }
    }

    /// The open connections, by key (for diagnostics and tests). A slot that is connecting at
    /// this moment is not listed.
    pub fn open_connections(&self) -> Vec<(ConnKey, Connection)> {
        let mut open = Vec::new();
        for (key, slot) in self.inner.slot_list() {
            if let Ok(state) = slot.state.try_lock() {
                if let Some(connection) = state.connection.as_ref().filter(|c| c.is_open()) {
                    open.push((key, connection.clone()));
                }
            }
        }
        open.sort_by_key(|(key, _)| *key);
        open
    }

    pub fn stats(&self) -> PoolStats {
        PoolStats {
            connect_attempts: self.inner.connect_attempts.load(Ordering::Relaxed),
            connects: self.inner.connects.load(Ordering::Relaxed),
            reaped: self.inner.reaped.load(Ordering::Relaxed),
        }
    }

    /// Closes every connection.
    pub fn close_all(&self) {
        let slots: Vec<Arc<Slot>> = self
            .inner
            .slots
            .lock()
            .expect("slot map poisoned")
            .drain()
            .map(|(_, slot)| slot)
            .collect();
        for slot in slots {
            if let Ok(state) = slot.state.try_lock() {
                if let Some(connection) = &state.connection {
                    connection.close(CloseReason::ClosedByClient);
                }
            }
        }
    }
}

/// Closes connections idle for longer than the idle timeout, never one with requests in flight.
async fn reap_idle(pool: Weak<PoolInner>) {
    let period = {
        let Some(inner) = pool.upgrade() else { return };
        (inner.options.idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(30))
    };
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(inner) = pool.upgrade() else { return };
        for (key, slot) in inner.slot_list() {
            // A slot that is busy is connecting or handing out a connection: not idle.
            let Ok(mut state) = slot.state.try_lock() else {
                continue;
            };
            let Some(connection) = &state.connection else {
                continue;
            };
            if connection.in_flight() == 0 && connection.idle_for() >= inner.options.idle_timeout {
                tracing::debug!(broker = key.broker, purpose = ?key.purpose, "closing idle connection");
                connection.close(CloseReason::Idle);
                state.connection = None;
                inner.reaped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
