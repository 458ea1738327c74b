//! The client: the connection pool plus the cluster metadata cache.
//!
//! Bootstrap addresses get negative broker ids (-1, -2, ...) so they live in the same pool as
//! real brokers without colliding with them. Requests go to a broker id for a [`Purpose`]; a
//! connection failure marks the metadata stale so the next lookup refreshes it.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, TopicName};
use kafka_protocol::protocol::{Request, StrBytes};
use tokio::sync::Mutex as AsyncMutex;

use crate::cluster::{means_stale_metadata, Metadata, MetadataCache};
use crate::net::{ConnKey, Connection, NetError, Pool, PoolOptions, Purpose, SendOptions};

/// Errors of the client layer.
#[derive(Debug, Clone, thiserror::Error)]
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
    bootstrap: Arc<Vec<String>>,
    refresh_lock: Arc<AsyncMutex<()>>,
}

impl Client {
    /// Creates a client for the given bootstrap addresses. Nothing connects until the first
    /// request (see [`Client::refresh_metadata`]).
    pub fn new(bootstrap: Vec<String>, options: PoolOptions) -> Client {
        let pool = Pool::new(options);
        for (index, addr) in bootstrap.iter().enumerate() {
            pool.set_address(bootstrap_id(index), addr.clone());
        }
        Client {
            pool,
            metadata: Arc::new(MetadataCache::default()),
            bootstrap: Arc::new(bootstrap),
            refresh_lock: Arc::new(AsyncMutex::new(())),
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The current metadata snapshot (possibly empty or stale).
    pub fn metadata(&self) -> Arc<Metadata> {
        self.metadata.snapshot()
    }

    /// The connection for (broker, purpose).
    pub async fn connection(
        &self,
        broker: i32,
        purpose: Purpose,
    ) -> Result<Connection, ClientError> {
        self.pool
            .get(ConnKey::new(broker, purpose))
            .await
            .inspect_err(|_| self.metadata.mark_stale())
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
        let connection = self.connection(broker, purpose).await?;
        connection
            .send_with(request, options)
            .await
            .inspect_err(|e| {
                if e.is_retriable() {
                    self.metadata.mark_stale();
                }
            })
            .map_err(ClientError::from)
    }

    /// True when the metadata was marked stale or was never fetched.
    pub fn metadata_is_stale(&self) -> bool {
        self.metadata.is_stale()
    }

    /// Tells the cache about an error code from a response; stale-metadata errors mark it stale.
    pub fn observe_error(&self, error: ResponseError) {
        if means_stale_metadata(error) {
            self.metadata.mark_stale();
        }
    }

    /// The metadata, refreshed first if it is stale.
    pub async fn fresh_metadata(&self) -> Result<Arc<Metadata>, ClientError> {
        if self.metadata.is_stale() {
            self.refresh_metadata().await
        } else {
            Ok(self.metadata.snapshot())
        }
    }

    /// Fetches metadata for all topics from the first broker that answers: known brokers first,
    /// then the bootstrap list. Concurrent callers share one refresh.
    pub async fn refresh_metadata(&self) -> Result<Arc<Metadata>, ClientError> {
        let before = self.metadata.snapshot().fetched_at;
        let _guard = self.refresh_lock.lock().await;
        let current = self.metadata.snapshot();
        if current.fetched_at != before && !self.metadata.is_stale() {
            return Ok(current); // someone refreshed while we waited
        }
        let request = MetadataRequest::default()
            .with_topics(None)
            .with_allow_auto_topic_creation(false);
        self.refresh_with(&request, &current).await
    }

    /// Fetches metadata for the named topics only (all brokers are still returned).
    pub async fn refresh_topics(&self, topics: &[String]) -> Result<Arc<Metadata>, ClientError> {
        let _guard = self.refresh_lock.lock().await;
        let current = self.metadata.snapshot();
        let request = MetadataRequest::default()
            .with_topics(Some(
                topics
                    .iter()
                    .map(|t| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                    })
                    .collect(),
            ))
            .with_allow_auto_topic_creation(false);
        self.refresh_with(&request, &current).await
    }

    async fn refresh_with(
        &self,
        request: &MetadataRequest,
        current: &Metadata,
    ) -> Result<Arc<Metadata>, ClientError> {
        let mut candidates: Vec<i32> = current.brokers.keys().copied().collect();
        candidates.extend((0..self.bootstrap.len()).map(bootstrap_id));
        let mut tried = Vec::new();
        for broker in candidates {
            match self.send(broker, Purpose::Default, request).await {
                Ok(response) => {
                    let fresh = Metadata::from_response(&response);
                    self.apply_brokers(current, &fresh);
                    return Ok(self.metadata.replace(fresh));
                }
                Err(error) => {
                    let addr = self.pool.address(broker).unwrap_or_default();
                    tracing::debug!(broker, %addr, %error, "metadata request failed");
                    tried.push(format!("{addr} ({error})"));
                }
            }
        }
        Err(ClientError::NoBrokerReachable {
            tried: tried.join("; "),
        })
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
