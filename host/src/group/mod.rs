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
//! - [`options`] (the settings), [`listener`] (what the application hears of rebalances),
//!   [`shared`] (what the handle and the tasks share).
//! - [`offsets`], [`coordinator`], [`error`].

pub mod admin;
pub mod assignor;
pub mod commit_queue;
pub mod consumer_protocol;
pub mod coordinator;
pub mod describe;
pub mod error;
pub mod handover;
pub mod heartbeat;
pub mod listener;
pub mod membership;
pub mod offsets;
pub mod options;
pub mod protocol;
pub mod shared;
pub mod stats;
pub mod subscription;
pub mod waits;

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
pub use error::{Fatal, GroupError, NotCommitted, Retry};
pub use listener::{LoggingListener, RebalanceListener};
pub use offsets::MemberIdentity;
pub use options::{GroupOptions, GroupProtocol};
pub use subscription::TopicPattern;

use commit_queue::CommitQueue;
use membership::Membership;
use shared::GroupShared;

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
    /// The membership task: aborted when the member is dropped.
    membership: JoinHandle<()>,
    /// Closes when the membership task ends (returned, panicked or aborted): every close,
    /// the first or one beside it, waits for that.
    membership_ended: watch::Receiver<()>,
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
        let run: std::pin::Pin<Box<dyn Future<Output = ()> + Send>> = match options.protocol {
            GroupProtocol::Classic => Box::pin(
                Membership {
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
                    refused_topics: BTreeSet::new(),
                }
                .run(),
            ),
            GroupProtocol::Consumer => Box::pin(
                consumer_protocol::Member::new(
                    client,
                    consumer.clone(),
                    options,
                    listener,
                    shared.clone(),
                    commits.clone(),
                    backoff,
                )
                .run(),
            ),
        };
        let (ended, membership_ended) = watch::channel(());
        let membership = tokio::spawn(async move {
            // Dropped with the task, however it ends.
            let _ended = ended;
            run.await
        });
        GroupConsumer {
            consumer,
            fatal: shared.fatal.subscribe(),
            generations: shared.generations.subscribe(),
            shared,
            commits,
            losses_seen: AtomicU64::new(0),
            auto_commit,
            membership,
            membership_ended,
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
    /// with the records earlier polls returned. While the member is out of touch with its
    /// coordinator (no heartbeat answered for a session timeout) no records are handed out:
    /// the group may have given its partitions to another member.
    pub async fn poll(
        &self,
        max_records: usize,
        timeout: Duration,
    ) -> Result<Vec<ConsumerRecord>, GroupError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut fatal = self.fatal.clone();
        let mut out_of_touch = self.shared.out_of_touch.subscribe();
        let polled = loop {
            if let Some(error) = self.fatal.borrow().clone() {
                return Err(error);
            }
            if *out_of_touch.borrow_and_update() {
                self.consumer.mark_processed();
                tokio::select! {
                    _ = out_of_touch.changed() => continue,
                    _ = fatal.wait_for(Option::is_some) => continue,
                    _ = tokio::time::sleep_until(deadline) => break Ok(Vec::new()),
                }
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            // A dropped `Consumer::poll` takes no records.
            tokio::select! {
                polled = self.consumer.poll(max_records, left) => break Ok(polled?),
                _ = fatal.wait_for(Option::is_some) => continue,
                _ = out_of_touch.wait_for(|out| *out) => continue,
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
                None => Err(GroupError::NotCommitted(NotCommitted::Lost { group })),
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
    pub async fn close_within(self, timeout: Duration) -> bool {
        self.close_shared_within(timeout).await
    }

    /// [`GroupConsumer::close_within`] for a member that another task may still hold (one
    /// stuck writing to a reader that stopped reading, say).
    pub async fn close_shared_within(&self, timeout: Duration) -> bool {
        self.shared.close_by(std::time::Instant::now() + timeout);
        let mut ended = self.membership_ended.clone();
        // Nothing is ever sent: `changed` fails once the task has dropped the sender.
        let membership_ended = async move { while ended.changed().await.is_ok() {} };
        // Still running after the timeout: it is aborted when the member is dropped.
        let stopped = tokio::time::timeout(timeout, membership_ended)
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
