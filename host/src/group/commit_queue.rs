//! One commit queue per group member: every commit (auto-commit, before a revoke, on close,
//! the application's own) goes through it.
//!
//! Invariants:
//! - One OffsetCommit in flight at a time, in the order the commits were asked for; one in
//!   flight is never cancelled (a retry on a new connection could overtake it). Requests that
//!   wait together are merged, the newest offset per partition winning, and all get the
//!   merged commit's answer.
//! - Only partitions the member owns when the commit is sent are committed; a request naming
//!   others gets [`GroupError::NotOwned`], and any request while the member is not in a
//!   generation gets [`GroupError::NotMember`]. Neither is ever answered `Ok`.
//! - Transient errors (a dropped connection, a moved or loading coordinator, a timeout) are
//!   retried with backoff until the commit timeout; errors that mean the member is no longer
//!   in the group end the request at once. A failed commit never stops the queue.
//! - `committed` is updated before the next request is looked at, so "unchanged since the
//!   last commit" is judged against what the broker confirmed.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::fetch::{CommittedOffset, TopicPartition};
use crate::net::Backoff;

use super::error::GroupError;
use super::membership::GroupShared;
use super::offsets::commit;

type Reply = oneshot::Sender<Result<(), GroupError>>;

struct CommitRequest {
    offsets: Vec<(TopicPartition, CommittedOffset)>,
    reply: Reply,
}

/// The sending side of a member's commit queue (cheap to clone).
#[derive(Clone)]
pub struct CommitQueue {
    requests: mpsc::UnboundedSender<CommitRequest>,
}

impl CommitQueue {
    /// Starts the queue's task.
    pub fn start(
        client: Client,
        shared: Arc<GroupShared>,
        backoff: Backoff,
        timeout: Duration,
    ) -> (CommitQueue, JoinHandle<()>) {
        let (requests, receiver) = mpsc::unbounded_channel();
        let sender = Sender {
            client,
            shared,
            backoff,
            timeout,
        };
        (CommitQueue { requests }, tokio::spawn(sender.run(receiver)))
    }

    /// Queues a commit of `offsets` now (its place in the order is taken at this call); the
    /// future tells how it went. An empty commit is a barrier: it is answered once every
    /// commit queued before it has been.
    pub fn commit(
        &self,
        offsets: Vec<(TopicPartition, CommittedOffset)>,
    ) -> impl Future<Output = Result<(), GroupError>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let queued = self.requests.send(CommitRequest { offsets, reply });
        async move {
            queued.map_err(|_| GroupError::Closed)?;
            answer.await.unwrap_or(Err(GroupError::Closed))
        }
    }
}

struct Sender {
    client: Client,
    shared: Arc<GroupShared>,
    backoff: Backoff,
    timeout: Duration,
}

impl Sender {
    async fn run(self, mut receiver: mpsc::UnboundedReceiver<CommitRequest>) {
        while let Some(first) = receiver.recv().await {
            let mut batch = vec![first];
            while let Ok(next) = receiver.try_recv() {
                batch.push(next);
            }
            // Judged before sending: a revoke waits for its commit before the partitions
            // leave `owned`.
            let not_owned: Vec<Option<GroupError>> = batch
                .iter()
                .map(|request| self.not_owned(&request.offsets))
                .collect();
            let merged_result = self.send(&batch).await;
            for (request, not_owned) in batch.into_iter().zip(not_owned) {
                let result = match not_owned {
                    Some(error) => Err(error),
                    None => merged_result.clone(),
                };
                let _ = request.reply.send(result);
            }
        }
    }

    /// The request's partitions this member does not own, as an error.
    fn not_owned(&self, offsets: &[(TopicPartition, CommittedOffset)]) -> Option<GroupError> {
        let owned = self.shared.owned.lock().expect("owned lock");
        let missing: Vec<String> = offsets
            .iter()
            .filter(|(tp, _)| !owned.contains(tp))
            .map(|(tp, _)| tp.to_string())
            .collect();
        (!missing.is_empty()).then_some(GroupError::NotOwned {
            partitions: missing,
        })
    }

    /// Commits the batch's owned partitions (newest offset each) that changed since the last
    /// commit, retrying transient errors until the timeout.
    async fn send(&self, batch: &[CommitRequest]) -> Result<(), GroupError> {
        let deadline = Instant::now() + self.timeout;
        let mut failures = 0;
        loop {
            let identity = self.shared.identity();
            if identity.generation < 0 || identity.member_id.is_empty() {
                return Err(GroupError::NotMember {
                    group: identity.group,
                });
            }
            let offsets = self.changed(batch);
            if offsets.is_empty() {
                return Ok(());
            }
            let attempt = async {
                let coordinator = self
                    .shared
                    .coordinator
                    .get(&self.client, &identity.group)
                    .await?;
                commit(&self.client, coordinator, &identity, &offsets).await
            };
            let started = Instant::now();
            let result = attempt.await;
            self.shared
                .stats
                .lock()
                .expect("group stats lock")
                .commit_attempted(started.elapsed(), result.is_ok());
            let error = match result {
                Ok(()) => {
                    tracing::debug!(group = %identity.group, ?offsets, "committed");
                    self.shared
                        .committed
                        .lock()
                        .expect("committed lock")
                        .extend(offsets.into_iter().map(|(tp, c)| (tp, c.offset)));
                    return Ok(());
                }
                Err(error) if error.is_transient() => error,
                Err(error) => return Err(error),
            };
            if error.coordinator_lost() {
                self.shared.coordinator.forget();
            }
            failures += 1;
            let delay = self.backoff.delay(failures);
            if Instant::now() + delay > deadline {
                return Err(GroupError::CommitTimedOut {
                    timeout: self.timeout,
                    last: Box::new(error),
                });
            }
            tracing::warn!(group = %identity.group, %error, retry_in = ?delay, "commit failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// The newest offset per owned partition in the batch, where it differs from the last
    /// commit the broker confirmed.
    fn changed(&self, batch: &[CommitRequest]) -> Vec<(TopicPartition, CommittedOffset)> {
        let mut newest: BTreeMap<&TopicPartition, CommittedOffset> = BTreeMap::new();
        for request in batch {
            for (tp, offset) in &request.offsets {
                newest.insert(tp, *offset);
            }
        }
        let owned = self.shared.owned.lock().expect("owned lock");
        let committed = self.shared.committed.lock().expect("committed lock");
        newest
            .into_iter()
            .filter(|(tp, c)| owned.contains(*tp) && committed.get(*tp) != Some(&c.offset))
            .map(|(tp, c)| (tp.clone(), c))
            .collect()
    }
}
