//! Consumer groups: coordinator discovery, membership (join, sync, heartbeat, leave), eager
//! and cooperative rebalancing, static membership, commits, and a rebalance listener.
//!
//! - [`GroupConsumer`]: the handle: a [`Consumer`] whose partitions the group decides.
//! - [`membership`]: the background task and its state machine; [`heartbeat`] and
//!   [`commit_queue`], the two tasks beside it.
//! - [`assignor`]: the `Assignor` trait and the built-ins (`range`, `roundrobin`, `sticky`,
//!   `cooperative-sticky`) over the shared algorithms in `wasmkafka-policy`.
//! - [`protocol`]: the consumer protocol inside JoinGroup/SyncGroup.
//! - [`subscription`]: explicit topics and topic patterns; the metadata changes (new
//!   partitions, new matching topics) that make a member rejoin.
//! - [`offsets`], [`coordinator`], [`error`].

pub mod assignor;
pub mod commit_queue;
pub mod coordinator;
pub mod describe;
pub mod error;
pub mod heartbeat;
pub mod membership;
pub mod offsets;
pub mod protocol;
pub mod shared;
pub mod stats;
pub mod subscription;

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::fetch::{
    CommittedOffset, Consumer, ConsumerRecord, FetchOptions, PartitionState, TopicPartition,
};
use crate::net::Backoff;
use crate::policy::ResetPolicy;

pub use assignor::{Assignor, AssignorError, Builtin, RebalanceProtocol};
pub use error::GroupError;
pub use offsets::MemberIdentity;
pub use subscription::TopicPattern;

use commit_queue::CommitQueue;
use membership::Membership;
use shared::GroupShared;

/// Group settings (Kafka's names in parentheses).
#[derive(Debug, Clone)]
pub struct GroupOptions {
    pub group_id: String,
    /// Static membership (`group.instance.id`, KIP-345).
    pub instance_id: Option<String>,
    /// Topics to subscribe to (`subscribe(Collection)`).
    pub topics: Vec<String>,
    /// (`subscribe(Pattern)`) Also subscribe to every non-internal topic whose name matches,
    /// as the metadata lists them: re-evaluated after every metadata refresh (at least every
    /// `net.metadata_max_age_ms`); when the matching set changes the member rejoins.
    pub topic_pattern: Option<TopicPattern>,
    /// (`session.timeout.ms`) No heartbeat for this long: the coordinator drops the member.
    pub session_timeout: Duration,
    /// (`max.poll.interval.ms` for JoinGroup) How long a rebalance may wait for members.
    pub rebalance_timeout: Duration,
    pub heartbeat_interval: Duration,
    /// No poll for this long: the member leaves so its partitions move on.
    pub max_poll_interval: Duration,
    /// `None` turns auto-commit off: nothing is committed unless the application commits
    /// ([`GroupConsumer::commit`]), not even before a revoke or on close.
    pub auto_commit_interval: Option<Duration>,
    /// (`default.api.timeout.ms` for commits) How long a commit retries transient errors.
    pub commit_timeout: Duration,
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
            topic_pattern: None,
            session_timeout: Duration::from_secs(45),
            rebalance_timeout: Duration::from_secs(60),
            heartbeat_interval: Duration::from_secs(3),
            max_poll_interval: Duration::from_secs(300),
            auto_commit_interval: Some(Duration::from_secs(5)),
            commit_timeout: Duration::from_secs(60),
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
    /// Partitions about to be taken away in an orderly way. They are paused already; when
    /// this returns, their finished positions are committed (auto-commit on) or the commits
    /// already queued are waited for (off: an application committing by hand queues its
    /// commit here, with a [`Committer`]), and then they leave the fetcher.
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
///
/// Delivery (at least once): the consumer's own commits (auto-commit, before a revoke, on
/// close) cover only the records the application has finished with: those earlier polls
/// returned, once it polls again or calls [`GroupConsumer::mark_processed`] or
/// [`GroupConsumer::commit`]. See [`crate::fetch::delivery`].
pub struct GroupConsumer {
    consumer: Arc<Consumer>,
    shared: Arc<GroupShared>,
    commits: CommitQueue,
    fatal: watch::Receiver<Option<GroupError>>,
    generations: watch::Receiver<i32>,
    /// `shared.losses` when the last poll returned: a commit after a loss fails.
    losses_seen: AtomicU64,
    auto_commit: bool,
    membership: JoinHandle<()>,
    commit_task: JoinHandle<()>,
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
        let shared = Arc::new(GroupShared::new(&options));
        let (commits, commit_task) = CommitQueue::start(
            client.clone(),
            shared.clone(),
            backoff,
            options.commit_timeout,
        );
        let assignors = if assignors.is_empty() {
            vec![Builtin::Range.into_assignor()]
        } else {
            assignors
        };
        let auto_commit = options.auto_commit_interval.is_some();
        let membership = Membership {
            client,
            consumer: consumer.clone(),
            options,
            assignors,
            listener,
            shared: shared.clone(),
            commits: commits.clone(),
            backoff,
            awaiting_committed: BTreeSet::new(),
            failures: 0,
            owned_generation: -1,
            given_up: BTreeSet::new(),
            followed: Default::default(),
            rebalance_started: None,
            heartbeat: None,
            held_back: Vec::new(),
        };
        GroupConsumer {
            consumer,
            fatal: shared.fatal.subscribe(),
            generations: shared.generations.subscribe(),
            shared,
            commits,
            losses_seen: AtomicU64::new(0),
            auto_commit,
            membership: tokio::spawn(membership.run()),
            commit_task,
        }
    }

    /// The fetcher underneath (positions, pause/resume, stats).
    pub fn consumer(&self) -> &Consumer {
        &self.consumer
    }

    /// Commits, rebalances and partitions moved since the start.
    pub fn stats(&self) -> stats::GroupStats {
        self.shared.stats.lock().expect("group stats lock").clone()
    }

    /// Waits for records (see [`Consumer::poll`]); a fatal group error (fenced, not
    /// authorized, ...) ends the wait with that error. Polling says the application is done
    /// with the records earlier polls returned.
    pub async fn poll(
        &self,
        max_records: usize,
        timeout: Duration,
    ) -> Result<Vec<ConsumerRecord>, GroupError> {
        if let Some(error) = self.fatal.borrow().clone() {
            return Err(error);
        }
        let mut fatal = self.fatal.clone();
        let polled = tokio::select! {
            polled = self.consumer.poll(max_records, timeout) => Ok(polled?),
            _ = fatal.wait_for(Option::is_some) => {
                Err(self.fatal.borrow().clone().unwrap_or(GroupError::Closed))
            }
        };
        self.losses_seen
            .store(self.shared.losses(), Ordering::SeqCst);
        polled
    }

    /// The application is done with every record `poll` returned so far (the CLI says so
    /// once its output is flushed); the consumer's own commits may cover them.
    pub fn mark_processed(&self) {
        self.consumer.mark_processed();
    }

    /// Whether auto-commit is on (`auto_commit_interval` set).
    pub fn auto_commits(&self) -> bool {
        self.auto_commit
    }

    /// The partitions this member owns now.
    pub fn assignment(&self) -> BTreeSet<TopicPartition> {
        self.shared.owned.lock().expect("owned lock").clone()
    }

    /// The member's id and generation.
    pub fn identity(&self) -> MemberIdentity {
        self.shared.identity()
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

    /// Commits everything `poll` returned so far (the application says it is done with it),
    /// through the member's commit queue, and waits for the answer. Fails, committing
    /// nothing, when the member is not in the group or lost its partitions since the last
    /// poll.
    pub async fn commit(&self) -> Result<(), GroupError> {
        self.queue_commit().await
    }

    /// [`GroupConsumer::commit`] without waiting: the commit takes its place in the queue now
    /// (later polls do not change it); the handle tells how it went.
    pub fn commit_async(&self) -> JoinHandle<Result<(), GroupError>> {
        tokio::spawn(self.queue_commit())
    }

    /// [`GroupConsumer::commit`] that nobody waits for (the CLI's commit after each output):
    /// it merges into the queue's next commit, so however long the coordinator takes to
    /// answer, what waits stays one offset per partition. A failure is logged only; the next
    /// commit covers the same records.
    pub fn commit_in_background(&self) {
        let lost = self.shared.losses() != self.losses_seen.load(Ordering::SeqCst);
        self.consumer.mark_processed();
        if !lost {
            self.commits
                .offer(self.consumer.handed_out_positions(&self.shared.owned()));
        }
    }

    /// How many partitions and callers wait for the member's next commit (at most one
    /// offset per partition, however long the coordinator takes).
    pub fn commits_waiting(&self) -> (usize, usize) {
        self.commits.waiting()
    }

    fn queue_commit(&self) -> impl Future<Output = Result<(), GroupError>> + Send + 'static {
        let lost = self.shared.losses() != self.losses_seen.load(Ordering::SeqCst);
        self.consumer.mark_processed();
        let positions = self.consumer.handed_out_positions(&self.shared.owned());
        let queued = (!lost).then(|| self.commits.commit(positions));
        let group = self.shared.group.clone();
        async move {
            match queued {
                Some(queued) => queued.await,
                None => Err(GroupError::Lost { group }),
            }
        }
    }

    /// A handle that commits through this member's queue, for a [`RebalanceListener`] that
    /// commits by hand.
    pub fn committer(&self) -> Committer {
        Committer {
            consumer: self.consumer.clone(),
            commits: self.commits.clone(),
            shared: self.shared.clone(),
        }
    }

    /// Stops fetching, commits the finished positions (auto-commit on), leaves the group (a
    /// static member does not) and stops the tasks. Gives up after `timeout` and returns
    /// false (the session timeout then removes the member).
    pub async fn close_within(mut self, timeout: Duration) -> bool {
        self.shared.close_by(std::time::Instant::now() + timeout);
        let stopped = tokio::time::timeout(timeout, &mut self.membership)
            .await
            .is_ok();
        if !stopped {
            tracing::warn!(
                ?timeout,
                "the group consumer did not stop in time; leaving it to the session timeout"
            );
            self.consumer.shutdown();
        } else {
            self.consumer.close_shared().await;
        }
        stopped
    }

    /// [`GroupConsumer::close_within`] 30 seconds.
    pub async fn close(self) {
        self.close_within(Duration::from_secs(30)).await;
    }
}

/// Commits through a member's queue (see [`GroupConsumer::committer`]).
#[derive(Clone)]
pub struct Committer {
    consumer: Arc<Consumer>,
    commits: CommitQueue,
    shared: Arc<GroupShared>,
}

impl Committer {
    /// Queues a commit of the positions (everything handed out) of `partitions`.
    pub fn commit_positions(
        &self,
        partitions: &[TopicPartition],
    ) -> impl Future<Output = Result<(), GroupError>> + Send + 'static {
        self.commits
            .commit(self.consumer.handed_out_positions(partitions))
    }

    /// Queues a commit of exactly these offsets (the next record to read, per partition).
    pub fn commit_offsets(
        &self,
        offsets: Vec<(TopicPartition, i64)>,
    ) -> impl Future<Output = Result<(), GroupError>> + Send + 'static {
        let offsets = offsets
            .into_iter()
            .map(|(tp, offset)| {
                let committed = CommittedOffset {
                    offset,
                    leader_epoch: None,
                };
                (tp, committed)
            })
            .collect();
        self.commits.commit(offsets)
    }

    /// The partitions the member owns now.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.shared.owned()
    }
}

impl Drop for GroupConsumer {
    fn drop(&mut self) {
        self.membership.abort();
        self.commit_task.abort();
    }
}
