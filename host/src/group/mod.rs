//! Consumer groups: coordinator discovery, membership (join, sync, heartbeat, leave), eager
//! and cooperative rebalancing, static membership, commits, and a rebalance listener.
//!
//! - [`GroupConsumer`]: the handle: a [`Consumer`] whose partitions the group decides.
//! - [`membership`]: the background task and its state machine.
//! - [`assignor`]: the `Assignor` trait and the built-ins (`range`, `roundrobin`, `sticky`,
//!   `cooperative-sticky`) over the shared algorithms in `wasmkafka-policy`.
//! - [`protocol`]: the consumer protocol inside JoinGroup/SyncGroup.
//! - [`offsets`], [`coordinator`], [`error`].

pub mod assignor;
pub mod coordinator;
pub mod error;
pub mod membership;
pub mod offsets;
pub mod protocol;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::fetch::{Consumer, ConsumerRecord, FetchOptions, PartitionState, TopicPartition};
use crate::net::Backoff;
use crate::policy::ResetPolicy;

pub use assignor::{Assignor, AssignorError, Builtin, RebalanceProtocol};
pub use error::GroupError;
pub use offsets::MemberIdentity;

use membership::{commit_changed, GroupShared, Membership};

/// Group settings (Kafka's names in parentheses).
#[derive(Debug, Clone)]
pub struct GroupOptions {
    pub group_id: String,
    /// Static membership (`group.instance.id`, KIP-345).
    pub instance_id: Option<String>,
    pub topics: Vec<String>,
    /// (`session.timeout.ms`) No heartbeat for this long: the coordinator drops the member.
    pub session_timeout: Duration,
    /// (`max.poll.interval.ms` for JoinGroup) How long a rebalance may wait for members.
    pub rebalance_timeout: Duration,
    pub heartbeat_interval: Duration,
    /// No poll for this long: the member leaves so its partitions move on.
    pub max_poll_interval: Duration,
    /// `None` turns auto-commit off (commit with [`GroupConsumer::commit`]).
    pub auto_commit_interval: Option<Duration>,
    pub rack: Option<String>,
    /// Used when the chosen assignor fails or answers an invalid assignment.
    pub fallback_assignor: Builtin,
    /// KIP-792: the subscription carries the generation in which the member's owned
    /// partitions were assigned, so a leader can tell a stale claim from a current one (the
    /// cooperative-sticky assignor keeps a partition claimed twice with the newer claim).
    /// `false` sends -1 instead: only for coordinators that rebalance whenever a member's
    /// metadata changes (Tansu 0.6), where a generation inside never lets a group settle.
    pub subscription_generation: bool,
}

impl GroupOptions {
    pub fn new(group_id: impl Into<String>, topics: Vec<String>) -> Self {
        GroupOptions {
            group_id: group_id.into(),
            instance_id: None,
            topics,
            session_timeout: Duration::from_secs(45),
            rebalance_timeout: Duration::from_secs(60),
            heartbeat_interval: Duration::from_secs(3),
            max_poll_interval: Duration::from_secs(300),
            auto_commit_interval: Some(Duration::from_secs(5)),
            rack: None,
            fallback_assignor: Builtin::Range,
            subscription_generation: true,
        }
    }
}

/// Hears about rebalances. Called from the membership task; keep it quick.
pub trait RebalanceListener: Send + Sync {
    /// Partitions added to this member (their positions come from the committed offsets).
    fn on_assigned(&self, _partitions: &[TopicPartition]) {}
    /// Partitions taken away in an orderly way (their positions were committed first).
    fn on_revoked(&self, _partitions: &[TopicPartition]) {}
    /// Partitions lost because the member was dropped from the group (nothing committed).
    fn on_lost(&self, _partitions: &[TopicPartition]) {}
}

/// A listener that only logs.
#[derive(Debug, Default)]
pub struct LoggingListener;

impl RebalanceListener for LoggingListener {
    fn on_assigned(&self, partitions: &[TopicPartition]) {
        tracing::info!(?partitions, "partitions assigned");
    }
    fn on_revoked(&self, partitions: &[TopicPartition]) {
        tracing::info!(?partitions, "partitions revoked");
    }
    fn on_lost(&self, partitions: &[TopicPartition]) {
        tracing::warn!(?partitions, "partitions lost");
    }
}

/// A consumer in a group.
pub struct GroupConsumer {
    client: Client,
    consumer: Arc<Consumer>,
    shared: Arc<GroupShared>,
    fatal: watch::Receiver<Option<GroupError>>,
    generations: watch::Receiver<i32>,
    membership: JoinHandle<()>,
}

impl GroupConsumer {
    /// Starts the fetcher and the membership task; the first rebalance runs in the background
    /// (see [`GroupConsumer::wait_for_assignment`]).
    pub fn start(
        client: Client,
        options: GroupOptions,
        fetch: FetchOptions,
        reset_policy: Arc<dyn ResetPolicy>,
        assignors: Vec<Arc<dyn Assignor>>,
        listener: Arc<dyn RebalanceListener>,
    ) -> GroupConsumer {
        let fetch = FetchOptions {
            group: Some(options.group_id.clone()),
            ..fetch
        };
        let backoff = Backoff::new(fetch.retry_backoff, fetch.retry_backoff_max);
        let consumer = Arc::new(Consumer::new(client.clone(), fetch, reset_policy));
        let (fatal_tx, fatal) = watch::channel(None);
        let (generations_tx, generations) = watch::channel(-1);
        let shared = Arc::new(GroupShared {
            identity: Mutex::new(MemberIdentity {
                group: options.group_id.clone(),
                member_id: String::new(),
                generation: -1,
                instance_id: options.instance_id.clone(),
            }),
            coordinator: Mutex::new(None),
            owned: Mutex::new(BTreeSet::new()),
            committed: Mutex::new(BTreeMap::new()),
            fatal: fatal_tx,
            closing: Notify::new(),
            generations: generations_tx,
        });
        let assignors = if assignors.is_empty() {
            vec![Builtin::Range.into_assignor()]
        } else {
            assignors
        };
        let membership = Membership {
            client: client.clone(),
            consumer: consumer.clone(),
            options,
            assignors,
            listener,
            shared: shared.clone(),
            backoff,
            awaiting_committed: BTreeSet::new(),
            failures: 0,
            owned_generation: -1,
        };
        GroupConsumer {
            client,
            consumer,
            shared,
            fatal,
            generations,
            membership: tokio::spawn(membership.run()),
        }
    }

    /// The fetcher underneath (positions, pause/resume, stats).
    pub fn consumer(&self) -> &Consumer {
        &self.consumer
    }

    /// Waits for records (see [`Consumer::poll`]); a fatal group error (fenced, not
    /// authorized, ...) ends the wait with that error.
    pub async fn poll(
        &self,
        max_records: usize,
        timeout: Duration,
    ) -> Result<Vec<ConsumerRecord>, GroupError> {
        if let Some(error) = self.fatal.borrow().clone() {
            return Err(error);
        }
        let mut fatal = self.fatal.clone();
        tokio::select! {
            polled = self.consumer.poll(max_records, timeout) => Ok(polled?),
            _ = fatal.wait_for(Option::is_some) => {
                Err(self.fatal.borrow().clone().unwrap_or(GroupError::Closed))
            }
        }
    }

    /// The partitions this member owns now.
    pub fn assignment(&self) -> BTreeSet<TopicPartition> {
        self.shared.owned.lock().expect("owned lock").clone()
    }

    /// The member's id and generation.
    pub fn identity(&self) -> MemberIdentity {
        self.shared.identity.lock().expect("identity lock").clone()
    }

    /// Waits until a rebalance completes with a generation above `after` (or `timeout`).
    pub async fn wait_for_generation(&self, after: i32, timeout: Duration) -> Option<i32> {
        let mut generations = self.generations.clone();
        let reached = tokio::time::timeout(timeout, generations.wait_for(|g| *g > after)).await;
        match reached {
            Ok(Ok(generation)) => Some(*generation),
            _ => None,
        }
    }

    /// Waits until this member owns partitions that all have a position (or `timeout`).
    pub async fn wait_for_assignment(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let owned = self.assignment();
            let states = self.consumer.assignment();
            if !owned.is_empty()
                && owned
                    .iter()
                    .all(|tp| matches!(states.get(tp), Some(PartitionState::Fetching { .. })))
            {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Commits the position of every owned partition (the next record to hand out).
    pub async fn commit(&self) -> Result<(), GroupError> {
        self.commit_async().await.map_err(|_| GroupError::Closed)?
    }

    /// Starts a commit of the current positions in the background; the handle tells how it
    /// went. Positions are read now, so later polls do not change what is committed.
    pub fn commit_async(&self) -> JoinHandle<Result<(), GroupError>> {
        let client = self.client.clone();
        let shared = self.shared.clone();
        let owned: Vec<TopicPartition> = self.assignment().into_iter().collect();
        let positions = self.consumer.positions(&owned);
        let identity = self.identity();
        tokio::spawn(async move {
            let known = *shared.coordinator.lock().expect("coordinator lock");
            let coordinator = match known {
                Some(id) => id,
                None => coordinator::find_coordinator(&client, &identity.group).await?,
            };
            commit_changed(&client, coordinator, &shared, &identity, positions).await
        })
    }

    /// Commits, gives the partitions up, leaves the group and stops.
    pub async fn close(mut self) {
        self.shared.closing.notify_one();
        if tokio::time::timeout(Duration::from_secs(30), &mut self.membership)
            .await
            .is_err()
        {
            tracing::warn!("the membership task did not stop in time");
        }
        self.consumer.shutdown();
    }
}

impl Drop for GroupConsumer {
    fn drop(&mut self) {
        self.membership.abort();
    }
}
