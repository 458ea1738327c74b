//! The client: the connection pool plus the cluster metadata cache.
//!
//! Bootstrap addresses get negative broker ids (-1, -2, ...) so they live in the same pool as
//! real brokers without colliding with them. Requests go to a broker id for a [`Purpose`]; a
//! connection failure marks the metadata stale (stamped with the generation the request was
//! made under) so the next lookup refreshes it.
//!
//! Metadata refreshes have one path, [`Client::refresh`]: one at a time, never two asking for
//! the same topics closer together than `min_age` (callers in between wait and share the next
//! answer; see [`crate::cluster::refreshes`]), each logged with its reason. Answers are merged into the cache, never swapped in whole (see
//! [`crate::cluster::merge`]).
//!
//! Requests any broker can answer (Metadata, FindCoordinator) go through
//! [`Client::ask_any_broker`]: brokers that failed lately go last, the others take turns, and
//! a broker that has not answered within [`HEDGE_AFTER`] does not hold the answer up: the
//! next one is asked beside it and the first answer wins. A broker that accepts connections
//! and never answers (a frozen VM) costs one hedge delay, not a request timeout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, TopicName};
use kafka_protocol::protocol::{Request, StrBytes};
use tokio::sync::{watch, Mutex as AsyncMutex};
use tokio::task::JoinSet;

use crate::cluster::refreshes::Refreshes;
use crate::cluster::{
    means_stale_metadata, Metadata, MetadataCache, MetadataOptions, MetadataScope, RefreshReason,
};
use crate::error_chain::Chain;
use crate::net::{ConnKey, Connection, NetError, Pool, PoolOptions, Purpose, SendOptions};

/// Errors of the client layer.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error(transparent)]
    Net(#[from] NetError),
    /// No broker (known or bootstrap) answered a Metadata request.
    #[error("no broker answered a metadata request; tried: {tried}. Check --brokers / `brokers` in the config and that the brokers are running")]
    NoBrokerReachable { tried: String },
    /// The broker answered with an error for the whole request.
    #[error("{api} failed on broker {broker}: {error}")]
    Broker {
        api: &'static str,
        broker: i32,
        error: ResponseError,
    },
}

/// A Kafka client: pooled connections and cached metadata.
#[derive(Clone)]
pub struct Client {
    pool: Pool,
    metadata: Arc<MetadataCache>,
    metadata_options: MetadataOptions,
    bootstrap: Arc<Vec<String>>,
    refreshes: Arc<AsyncMutex<Refreshes>>,
    /// Which broker answers a request any broker can answer: failures and turns.
    any_broker: Arc<AnyBroker>,
}

/// How long a broker may take with a Metadata or FindCoordinator request before the next
/// candidate is asked too (the first answer wins). Well above a healthy broker's answer time
/// (milliseconds; a TLS + SASL handshake across an ocean, under a second).
pub const HEDGE_AFTER: Duration = Duration::from_secs(1);

/// A broker that failed a request any broker can answer goes last for this long.
const FAILED_BROKER_LAST_FOR: Duration = Duration::from_secs(30);

/// What [`Client::ask_any_broker`] remembers between requests.
#[derive(Debug, Default)]
struct AnyBroker {
    /// When each broker last failed such a request.
    failed_at: Mutex<HashMap<i32, Instant>>,
    /// Turns: where the next request starts among the brokers in good standing.
    turn: AtomicUsize,
}

impl AnyBroker {
    /// `candidates` in the order to ask them: those in good standing first, starting at
    /// the next turn, then those that failed lately, the longest ago first.
    fn order(&self, candidates: &[i32]) -> Vec<i32> {
        let now = Instant::now();
        let failed_at = self.failed_at.lock().expect("broker failures lock");
        let recent = |id: &i32| {
            failed_at
                .get(id)
                .filter(|at| now.duration_since(**at) < FAILED_BROKER_LAST_FOR)
                .copied()
        };
        let mut good: Vec<i32> = candidates
            .iter()
            .copied()
            .filter(|id| recent(id).is_none())
            .collect();
        if !good.is_empty() {
            let turn = self.turn.fetch_add(1, Ordering::Relaxed) % good.len();
            good.rotate_left(turn);
        }
        let mut failed: Vec<(Instant, i32)> = candidates
            .iter()
            .filter_map(|id| recent(id).map(|at| (at, *id)))
            .collect();
        failed.sort();
        good.extend(failed.into_iter().map(|(_, id)| id));
        good
    }

    fn failed(&self, broker: i32) {
        self.failed_at
            .lock()
            .expect("broker failures lock")
            .insert(broker, Instant::now());
    }

    fn answered(&self, broker: i32) {
        self.failed_at
            .lock()
            .expect("broker failures lock")
            .remove(&broker);
    }
}

impl Client {
    /// Creates a client for the given bootstrap addresses with the default metadata ages.
    /// Nothing connects until the first request (see [`Client::refresh_metadata`]).
    pub fn new(bootstrap: Vec<String>, options: PoolOptions) -> Client {
        Client::with_metadata_options(bootstrap, options, MetadataOptions::default())
    }

    /// Like [`Client::new`] with the metadata refresh floor and ceiling given.
    pub fn with_metadata_options(
        bootstrap: Vec<String>,
        options: PoolOptions,
        metadata_options: MetadataOptions,
    ) -> Client {
        let pool = Pool::new(options);
        for (index, addr) in bootstrap.iter().enumerate() {
            pool.set_address(bootstrap_id(index), addr.clone());
        }
        Client {
            pool,
            metadata: Arc::new(MetadataCache::new(metadata_options.max_age)),
            metadata_options,
            bootstrap: Arc::new(bootstrap),
            refreshes: Arc::new(AsyncMutex::new(Refreshes::default())),
            any_broker: Arc::default(),
        }
    }

    pub fn metadata_options(&self) -> MetadataOptions {
        self.metadata_options
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The current metadata snapshot (possibly empty or stale).
    pub fn metadata(&self) -> Arc<Metadata> {
        self.metadata.snapshot()
    }

    /// The current snapshot's generation: stamp a request with it and hand it back with the
    /// request's error ([`Client::observe_error_under`]).
    pub fn metadata_generation(&self) -> u64 {
        self.metadata.generation()
    }

    /// Every new metadata snapshot as it is merged in (whoever refreshed).
    pub fn metadata_updates(&self) -> watch::Receiver<Arc<Metadata>> {
        self.metadata.subscribe()
    }

    /// The connection for (broker, purpose).
    pub async fn connection(
        &self,
        broker: i32,
        purpose: Purpose,
    ) -> Result<Connection, ClientError> {
        let generation = self.metadata.generation();
        self.connection_under(broker, purpose, generation).await
    }

    async fn connection_under(
        &self,
        broker: i32,
        purpose: Purpose,
        generation: u64,
    ) -> Result<Connection, ClientError> {
        self.pool
            .get(ConnKey::new(broker, purpose))
            .await
            .inspect_err(|_| self.metadata.mark_stale_under(generation))
            .map_err(ClientError::from)
    }

    /// Sends a request to a broker on the connection for `purpose`.
    pub async fn send<R: Request>(
        &self,
        broker: i32,
        purpose: Purpose,
        request: &R,
    ) -> Result<R::Response, ClientError> {
        Ok(self
            .send_with(broker, purpose, request, SendOptions::default())
            .await?
            .1)
    }

    /// Like [`Client::send`] with per-request options; returns the version used too.
    pub async fn send_with<R: Request>(
        &self,
        broker: i32,
        purpose: Purpose,
        request: &R,
        options: SendOptions,
    ) -> Result<(i16, R::Response), ClientError> {
        let generation = self.metadata.generation();
        let connection = self.connection_under(broker, purpose, generation).await?;
        connection
            .send_with(request, options)
            .await
            .inspect_err(|e| {
                if e.is_retriable() {
                    self.metadata.mark_stale_under(generation);
                }
            })
            .map_err(ClientError::from)
    }

    /// True when the metadata was never fetched, was marked stale, or its last answer for
    /// every topic is older than `max_age`.
    pub fn metadata_is_stale(&self) -> bool {
        self.metadata.is_stale()
    }

    /// Why the metadata needs a refresh, if it does.
    pub fn metadata_staleness(&self) -> Option<RefreshReason> {
        self.metadata.staleness()
    }

    /// Tells the cache about an error code from a response; stale-metadata errors mark it stale.
    pub fn observe_error(&self, error: ResponseError) {
        self.observe_error_under(error, self.metadata.generation());
    }

    /// Like [`Client::observe_error`] for a request made under metadata `generation`
    /// ([`Client::metadata_generation`] when it was planned): an error from before the last
    /// full refresh marks nothing.
    pub fn observe_error_under(&self, error: ResponseError, generation: u64) {
        if means_stale_metadata(error) {
            self.metadata.mark_stale_under(generation);
        }
    }

    /// The metadata, refreshed first if it is stale (never fetched, marked, or past the max
    /// age).
    pub async fn fresh_metadata(&self) -> Result<Arc<Metadata>, ClientError> {
        match self.metadata.staleness() {
            Some(why) => self.refresh(MetadataScope::AllTopics, why).await,
            None => Ok(self.metadata.snapshot()),
        }
    }

    /// Metadata for every topic answered after this call (see [`Client::refresh`]).
    pub async fn refresh_metadata(&self) -> Result<Arc<Metadata>, ClientError> {
        self.refresh_metadata_because("a refresh was asked for")
            .await
    }

    /// [`Client::refresh_metadata`], logging `why`.
    pub async fn refresh_metadata_because(
        &self,
        why: &'static str,
    ) -> Result<Arc<Metadata>, ClientError> {
        self.refresh(MetadataScope::AllTopics, RefreshReason::Asked(why))
            .await
    }

    /// Metadata for the named topics (all brokers are still returned; other topics stay as
    /// they were). A snapshot that answered every one of them less than `min_age` ago (by
    /// name or in an answer for every topic) is current enough: it is returned without a
    /// request, unless an error marked the cache stale after that answer.
    pub async fn refresh_topics(&self, topics: &[String]) -> Result<Arc<Metadata>, ClientError> {
        let scope = MetadataScope::topics(topics.iter().cloned());
        let current = self.metadata.snapshot();
        let current_enough = topics.iter().all(|t| current.topics.contains_key(t)) && {
            let refreshes = self.refreshes.lock().await;
            let young =
                refreshes.answered_within(&scope, self.metadata_options.min_age, Instant::now());
            // An error marked the cache stale: only answers asked for after it count.
            let after_any_mark = self
                .metadata
                .marked_under()
                .is_none_or(|marked| refreshes.answered_since(&scope, marked));
            young && after_any_mark
        };
        if current_enough {
            return Ok(current);
        }
        self.refresh(scope, RefreshReason::TopicsLookedUp).await
    }

    /// The one refresh path: an answer for `scope` that arrived after this call.
    ///
    /// One refresh runs at a time. A caller that finds an answer covering `scope` merged
    /// since it called (another caller's) takes it. Otherwise it waits until `min_age` has
    /// passed since the topics of `scope` were last asked for (see
    /// [`crate::cluster::refreshes`]), then asks the known brokers and the bootstrap
    /// addresses in turn, and merges the first answer into the cache.
    pub async fn refresh(
        &self,
        scope: MetadataScope,
        why: RefreshReason,
    ) -> Result<Arc<Metadata>, ClientError> {
        let called_under = self.metadata.generation();
        let mut refreshes = self.refreshes.lock().await;
        let current = self.metadata.snapshot();
        if refreshes.answered_since(&scope, called_under) {
            return Ok(current);
        }
        if let Some(floor) = refreshes
            .floor(&scope, self.metadata_options.min_age)
            .filter(|floor| *floor > Instant::now())
        {
            tracing::debug!(%why, wait = ?(floor - Instant::now()), "metadata refresh waits for net.metadata_min_age_ms");
            tokio::time::sleep_until(floor.into()).await;
        }
        tracing::debug!(%why, ?scope, generation = current.generation, "refreshing metadata");
        refreshes.asked(&scope, Instant::now());
        let answer = self.request_metadata(&scope, &current).await?;
        let merged = self.metadata.merge(answer, &scope);
        self.apply_brokers(&current, &merged);
        refreshes.answered(&scope, merged.generation, Instant::now());
        Ok(merged)
    }

    /// Sends one Metadata request for `scope` to the first broker that answers: known brokers
    /// first, then the bootstrap list.
    async fn request_metadata(
        &self,
        scope: &MetadataScope,
        current: &Metadata,
    ) -> Result<Metadata, ClientError> {
        let topics = match scope {
            MetadataScope::AllTopics => None,
            MetadataScope::Topics(topics) => Some(
                topics
                    .iter()
                    .map(|t| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                    })
                    .collect(),
            ),
        };
        let request = MetadataRequest::default()
            .with_topics(topics)
            .with_allow_auto_topic_creation(false);
        let mut candidates: Vec<i32> = current.brokers.keys().copied().collect();
        candidates.extend((0..self.bootstrap.len()).map(bootstrap_id));
        let response = self.ask_any_broker(&candidates, request).await?;
        Ok(Metadata::from_response(&response))
    }

    /// Sends a request any of `candidates` can answer (Metadata, FindCoordinator) on their
    /// `Default` connections and returns the first answer (see the module docs: failed
    /// brokers last, turns, a hedge after [`HEDGE_AFTER`]). A broker that fails sends the
    /// request on to the next at once; a failure no retry heals (credentials, certificates:
    /// the same for every broker) ends the search with its reason.
    pub async fn ask_any_broker<R>(
        &self,
        candidates: &[i32],
        request: R,
    ) -> Result<R::Response, ClientError>
    where
        R: Request + Clone + Send + Sync + 'static,
        R::Response: Send + 'static,
    {
        let mut queue = self.any_broker.order(candidates).into_iter();
        let mut asking = JoinSet::new();
        let mut tried = Vec::new();
        let ask_next = |asking: &mut JoinSet<_>, queue: &mut std::vec::IntoIter<i32>| {
            let Some(broker) = queue.next() else {
                return false;
            };
            let client = self.clone();
            let request = request.clone();
            asking.spawn(async move {
                let answer = client.send(broker, Purpose::Default, &request).await;
                (broker, answer)
            });
            true
        };
        ask_next(&mut asking, &mut queue);
        loop {
            let more_to_ask = queue.len() > 0;
            tokio::select! {
                joined = asking.join_next() => {
                    let Some(joined) = joined else {
                        return Err(ClientError::NoBrokerReachable {
                            tried: if tried.is_empty() { "no broker known".into() } else { tried.join("; ") },
                        });
                    };
                    let (broker, answer) = match joined {
                        Ok(joined) => joined,
                        // Only a panic ends a task early (the set aborts them on drop).
                        Err(failed) => std::panic::resume_unwind(failed.into_panic()),
                    };
                    match answer {
                        Ok(response) => {
                            self.any_broker.answered(broker);
                            return Ok(response);
                        }
                        Err(ClientError::Net(error)) if error.is_fatal() || error.is_local() => {
                            return Err(ClientError::Net(error))
                        }
                        Err(error) => {
                            self.any_broker.failed(broker);
                            let addr = self.pool.address(broker).unwrap_or_default();
                            tracing::debug!(broker, %addr, error = %Chain(&error), api = ?R::KEY, "request to any broker failed");
                            tried.push(format!("{addr} ({})", Chain(&error)));
                            ask_next(&mut asking, &mut queue);
                        }
                    }
                }
                _ = tokio::time::sleep(HEDGE_AFTER), if more_to_ask => {
                    tracing::debug!(api = ?R::KEY, after = ?HEDGE_AFTER, "no answer yet; asking the next broker too");
                    ask_next(&mut asking, &mut queue);
                }
            }
        }
    }

    /// Brings the pool's address book in line with a new snapshot: new and moved brokers get
    /// their address, vanished brokers lose their connections.
    fn apply_brokers(&self, old: &Metadata, new: &Metadata) {
        for broker in new.brokers.values() {
            self.pool.set_address(broker.id, broker.address());
        }
        for id in old.brokers.keys() {
            if !new.brokers.contains_key(id) {
                tracing::info!(broker = id, "broker left the cluster metadata");
                self.pool.remove_broker(*id);
            }
        }
    }

    /// Closes all connections.
    pub fn close(&self) {
        self.pool.close_all();
    }
}

/// The pool id of the `index`-th bootstrap address.
pub fn bootstrap_id(index: usize) -> i32 {
    -(index as i32) - 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn brokers_take_turns_and_those_that_failed_lately_go_last() {
        let any = AnyBroker::default();
        let candidates = [1, 2, 3, -1];
        // Turns: each request starts one further along.
        assert_eq!(any.order(&candidates), [1, 2, 3, -1]);
        assert_eq!(any.order(&candidates), [2, 3, -1, 1]);
        // Failures go last, the longest ago first.
        any.failed(3);
        std::thread::sleep(Duration::from_millis(2));
        any.failed(1);
        let order = any.order(&candidates);
        assert_eq!(&order[2..], [3, 1]);
        assert_eq!(
            order[..2].iter().copied().collect::<BTreeSet<_>>(),
            BTreeSet::from([2, -1])
        );
        // An answer puts a broker back in good standing.
        any.answered(3);
        assert!(any.order(&candidates)[..3].contains(&3));
        assert_eq!(any.order(&candidates).last(), Some(&1));
    }
}
