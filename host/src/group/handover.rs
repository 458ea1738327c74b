//! How partitions come to a member and leave it, the same under both group protocols:
//! taken from their committed offsets, given up in order (pause, listener, commit, drop), or
//! lost without a commit.
//!
//! A [`Handover`] is a handful of shared handles, cheap to clone, so the consumer protocol
//! can give partitions up on a future of its own while its heartbeats go on.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::error_chain::Chain;
use crate::fetch::{Consumer, StartAt, TopicPartition};
use crate::net::Purpose;

use super::commit_queue::CommitQueue;
use super::listener::RebalanceListener;
use super::offsets::fetch_committed_on;
use super::shared::GroupShared;

/// How much of a stop's deadline is kept for leaving the group after the last commit.
pub const LEAVE_ALLOWANCE: Duration = Duration::from_secs(2);

/// What moving partitions in and out of a member touches.
#[derive(Clone)]
pub struct Handover {
    pub client: Client,
    pub consumer: Arc<Consumer>,
    pub shared: Arc<GroupShared>,
    pub commits: CommitQueue,
    pub listener: Arc<dyn RebalanceListener>,
    /// Auto-commit on: finished positions are committed before partitions leave.
    pub auto_commit: bool,
    /// How long a commit before a revoke may take (the group waits no longer).
    pub rebalance_timeout: Duration,
}

impl Handover {
    fn group(&self) -> &str {
        &self.shared.group
    }

    /// Takes partitions away in order: pause, tell the listener, commit their finished
    /// positions (auto-commit) or wait for the commits already queued, then drop them from
    /// the fetcher and from what the member owns.
    ///
    /// The wait for the commit is bounded: by the rebalance timeout, and during a stop by the
    /// stop's deadline less the time kept for leaving. A commit not answered by then is left
    /// to the queue; the next owner starts from the last commit (records are delivered
    /// again, never skipped).
    pub async fn revoke(&self, partitions: &[TopicPartition]) {
        if partitions.is_empty() {
            return;
        }
        self.stats().partitions_revoked += partitions.len() as u64;
        self.consumer.pause(partitions);
        self.listener.on_revoked(partitions);
        let positions = if self.auto_commit {
            self.consumer.finished_positions(partitions)
        } else {
            Vec::new()
        };
        let bound = match self.shared.closing() {
            Some(deadline) => deadline
                .saturating_duration_since(Instant::now())
                .saturating_sub(LEAVE_ALLOWANCE)
                .min(self.rebalance_timeout),
            None => self.rebalance_timeout,
        };
        match tokio::time::timeout(bound, self.commits.commit(positions)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(group = self.group(), error = %Chain(&error), "commit before revoking failed; the next owner starts from the last commit")
            }
            Err(_) => {
                tracing::warn!(group = self.group(), ?bound, "commit before revoking not answered in time; the next owner starts from the last commit")
            }
        }
        self.consumer.revoke(partitions);
        let mut owned = self.shared.owned.lock().expect("owned lock");
        for tp in partitions {
            owned.remove(tp);
        }
    }

    /// Adds partitions: they start at their committed offsets (see [`Handover::fetch_committed`])
    /// and the member owns them from now on. The listener hears of them once their offsets
    /// are asked for, by the caller.
    pub fn take(&self, partitions: &[TopicPartition]) {
        if partitions.is_empty() {
            return;
        }
        self.stats().partitions_assigned += partitions.len() as u64;
        self.consumer
            .assign(partitions.iter().map(|tp| (tp.clone(), StartAt::Committed)));
        self.shared
            .owned
            .lock()
            .expect("owned lock")
            .extend(partitions.iter().cloned());
    }

    /// The member is no longer in the group: every partition it owned is gone, without a
    /// commit (the generation is gone). Returns them.
    pub fn lose_all(&self) -> Vec<TopicPartition> {
        let owned: Vec<TopicPartition> =
            std::mem::take(&mut *self.shared.owned.lock().expect("owned lock"))
                .into_iter()
                .collect();
        if !owned.is_empty() {
            self.stats().partitions_lost += owned.len() as u64;
            self.shared.losses.fetch_add(1, Ordering::SeqCst);
            self.consumer.revoke(&owned);
            self.listener.on_lost(&owned);
        }
        owned
    }

    /// Fetches committed offsets for the partitions in `awaiting` and hands them to the
    /// fetcher; those answered leave `awaiting`. On the coordinator's `Group` connection: not
    /// queued behind a commit the coordinator holds on `Coordination`. A failure is logged
    /// and leaves `awaiting` as it was (the caller tries again).
    pub async fn fetch_committed(&self, awaiting: &mut BTreeSet<TopicPartition>) {
        if awaiting.is_empty() {
            return;
        }
        let partitions: Vec<TopicPartition> = awaiting.iter().cloned().collect();
        let fetched = match self
            .shared
            .coordinator
            .get(&self.client, self.group())
            .await
        {
            Ok(coordinator) => {
                fetch_committed_on(
                    &self.client,
                    coordinator,
                    self.group(),
                    &partitions,
                    Purpose::Group,
                )
                .await
            }
            Err(error) => Err(error),
        };
        match fetched {
            Ok(committed) => {
                for (tp, offset) in &committed {
                    if let Some(offset) = offset {
                        self.shared
                            .committed
                            .lock()
                            .expect("committed lock")
                            .insert(tp.clone(), offset.offset);
                    }
                    awaiting.remove(tp);
                }
                tracing::debug!(group = self.group(), ?committed, "committed offsets");
                self.consumer.committed_offsets(committed);
            }
            Err(error) => {
                if error.coordinator_lost() {
                    self.shared.coordinator.forget();
                }
                tracing::warn!(group = self.group(), error = %Chain(&error), "cannot fetch committed offsets yet; retrying")
            }
        }
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, super::stats::GroupStats> {
        self.shared.stats.lock().expect("group stats lock")
    }
}
