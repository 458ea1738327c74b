//! One commit queue per group member: every commit (auto-commit, before a revoke, on close,
//! the application's own) goes through it.
//!
//! Invariants:
//! - One OffsetCommit in flight at a time, in the order the commits were asked for; one in
//!   flight is never cancelled (a retry on a new connection could overtake it). Requests that
//!   wait together are merged as they arrive, the newest offset per partition winning, and
//!   all get the merged commit's answer.
//! - What waits is bounded by the partitions, not by time: offsets are merged on arrival,
//!   and a commit nobody waits for ([`CommitQueue::offer`], the CLI's commit after each
//!   output) leaves no reply behind. A coordinator that answers nothing for minutes costs
//!   one entry per partition.
//! - Only partitions the member owns when the commit is sent are committed; a request naming
//!   others gets [`NotCommitted::NotOwned`], and any request while the member is not in a
//!   generation gets [`NotCommitted::NotMember`]. Neither is ever answered `Ok`.
//! - Transient errors (a dropped connection, a moved or loading coordinator, a timeout) are
//!   retried with backoff until the commit timeout; errors that mean the member is no longer
//!   in the group end the request at once. A partition the broker refuses (a topic not
//!   authorized) fails alone: the others are committed, and the answer names it
//!   ([`NotCommitted::PartitionsRefused`]). A failed commit never stops the queue.
//! - `committed` is updated before the next request is looked at, so "unchanged since the
//!   last commit" is judged against what the broker confirmed.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::Client;
use crate::error_chain::Chain;
use crate::fetch::{CommittedOffset, TopicPartition};
use crate::net::Backoff;

use super::error::{Fatal, GroupError, NotCommitted};
use super::offsets::{commit, CommitFailures, MemberIdentity};
use super::shared::GroupShared;

type Reply = oneshot::Sender<Result<(), GroupError>>;

/// A caller waiting for the next commit: the partitions it asked for (judged against
/// ownership when the commit is sent) and where its answer goes.
struct Waiter {
    partitions: Vec<TopicPartition>,
    reply: Reply,
}

/// What waits for the next OffsetCommit: the newest offset per partition, and the callers
/// waiting for its answer.
#[derive(Default)]
struct Waiting {
    offsets: BTreeMap<TopicPartition, CommittedOffset>,
    waiters: Vec<Waiter>,
    /// The task has stopped (aborted with its member): nothing more is sent.
    closed: bool,
}

struct Queue {
    waiting: Mutex<Waiting>,
    wake: Notify,
}

/// The sending side of a member's commit queue (cheap to clone).
#[derive(Clone)]
pub struct CommitQueue {
    queue: Arc<Queue>,
}

impl CommitQueue {
    /// Starts the queue's task.
    pub fn start(
        client: Client,
        shared: Arc<GroupShared>,
        backoff: Backoff,
        timeout: Duration,
    ) -> (CommitQueue, JoinHandle<()>) {
        let coordinator = GroupCoordinator {
            client,
            shared: shared.clone(),
        };
        CommitQueue::start_with(coordinator, shared, backoff, timeout)
    }

    /// Starts the queue's task, committing through `coordinator`.
    fn start_with(
        coordinator: impl Coordinator,
        shared: Arc<GroupShared>,
        backoff: Backoff,
        timeout: Duration,
    ) -> (CommitQueue, JoinHandle<()>) {
        let queue = Arc::new(Queue {
            waiting: Mutex::new(Waiting::default()),
            wake: Notify::new(),
        });
        let sender = Sender {
            coordinator,
            shared,
            backoff,
            timeout,
        };
        let task = tokio::spawn(sender.run(queue.clone()));
        (CommitQueue { queue }, task)
    }

    /// Queues a commit of `offsets` now (its place in the order is taken at this call); the
    /// future tells how it went. An empty commit is a barrier: it is answered once every
    /// commit queued before it has been.
    pub fn commit(
        &self,
        offsets: Vec<(TopicPartition, CommittedOffset)>,
    ) -> impl Future<Output = Result<(), GroupError>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let partitions = offsets.iter().map(|(tp, _)| tp.clone()).collect();
        let queued = self.enqueue(offsets, Some(Waiter { partitions, reply }));
        async move {
            if !queued {
                return Err(GroupError::Fatal(Fatal::Closed));
            }
            answer
                .await
                .unwrap_or(Err(GroupError::Fatal(Fatal::Closed)))
        }
    }

    /// Queues a commit of `offsets` that nobody waits for: it merges into the next commit
    /// and leaves nothing else behind. A failure is logged by the queue.
    pub fn offer(&self, offsets: Vec<(TopicPartition, CommittedOffset)>) {
        self.enqueue(offsets, None);
    }

    /// Merges `offsets` into what waits; false when the queue has stopped.
    fn enqueue(
        &self,
        offsets: Vec<(TopicPartition, CommittedOffset)>,
        waiter: Option<Waiter>,
    ) -> bool {
        {
            let mut waiting = self.queue.waiting.lock().expect("commit queue lock");
            if waiting.closed {
                return false;
            }
            waiting.offsets.extend(offsets);
            waiting.waiters.extend(waiter);
        }
        self.queue.wake.notify_one();
        true
    }

    /// How many partitions and callers wait for the next commit.
    pub fn waiting(&self) -> (usize, usize) {
        let waiting = self.queue.waiting.lock().expect("commit queue lock");
        (waiting.offsets.len(), waiting.waiters.len())
    }
}

/// Where the queue's OffsetCommits go (a trait so the queue's order, merging and timing are
/// unit-tested against a scripted coordinator on a paused clock).
trait Coordinator: Send + Sync + 'static {
    /// One OffsetCommit for `member`: the partitions refused one by one, or the error that
    /// failed the whole request.
    fn commit(
        &self,
        member: &MemberIdentity,
        offsets: &[(TopicPartition, CommittedOffset)],
    ) -> impl Future<Output = Result<CommitFailures, GroupError>> + Send;
}

/// The group's coordinator, found through the member's shared knowledge of it.
struct GroupCoordinator {
    client: Client,
    shared: Arc<GroupShared>,
}

impl Coordinator for GroupCoordinator {
    async fn commit(
        &self,
        member: &MemberIdentity,
        offsets: &[(TopicPartition, CommittedOffset)],
    ) -> Result<CommitFailures, GroupError> {
        let coordinator = self
            .shared
            .coordinator
            .get(&self.client, &member.group)
            .await?;
        commit(&self.client, coordinator, member, offsets).await
    }
}

struct Sender<C> {
    coordinator: C,
    shared: Arc<GroupShared>,
    backoff: Backoff,
    timeout: Duration,
}

impl<C: Coordinator> Sender<C> {
    async fn run(self, queue: Arc<Queue>) {
        // However the task ends (its member is dropped and aborts it), callers waiting or
        // arriving later get `Closed` instead of waiting forever.
        let _closed = CloseOnDrop(queue.clone());
        loop {
            let (offsets, waiters) = {
                let mut waiting = queue.waiting.lock().expect("commit queue lock");
                (
                    std::mem::take(&mut waiting.offsets),
                    std::mem::take(&mut waiting.waiters),
                )
            };
            if offsets.is_empty() && waiters.is_empty() {
                queue.wake.notified().await;
                continue;
            }
            // Judged before sending: a revoke waits for its commit before the partitions
            // leave `owned`.
            let not_owned: Vec<Option<GroupError>> = waiters
                .iter()
                .map(|waiter| self.not_owned(&waiter.partitions))
                .collect();
            let result = self.send(offsets).await;
            if waiters.is_empty() {
                if let Err(error) = &result {
                    tracing::debug!(group = %self.shared.group, error = %Chain(&error), "commit failed; a later one covers it");
                }
            }
            for (waiter, not_owned) in waiters.into_iter().zip(not_owned) {
                let answer = match not_owned {
                    Some(error) => Err(error),
                    None => result.clone(),
                };
                let _ = waiter.reply.send(answer);
            }
        }
    }

    /// The partitions this member does not own, as an error.
    fn not_owned(&self, partitions: &[TopicPartition]) -> Option<GroupError> {
        let owned = self.shared.owned.lock().expect("owned lock");
        let missing: Vec<String> = partitions
            .iter()
            .filter(|tp| !owned.contains(tp))
            .map(|tp| tp.to_string())
            .collect();
        (!missing.is_empty()).then_some(GroupError::NotCommitted(NotCommitted::NotOwned {
            partitions: missing,
        }))
    }

    /// Commits the owned partitions of `offsets` that changed since the last commit,
    /// retrying transient errors until the timeout; partitions the broker refuses are left
    /// out of the retries and named in the answer.
    async fn send(
        &self,
        offsets: BTreeMap<TopicPartition, CommittedOffset>,
    ) -> Result<(), GroupError> {
        let deadline = Instant::now() + self.timeout;
        let mut failures = 0;
        let mut refused: BTreeMap<TopicPartition, GroupError> = BTreeMap::new();
        loop {
            let identity = self.shared.identity();
            if identity.generation < 0 || identity.member_id.is_empty() {
                return Err(GroupError::NotCommitted(NotCommitted::NotMember {
                    group: identity.group,
                }));
            }
            let changed = self.changed(&offsets, &refused.keys().collect());
            if changed.is_empty() {
                return refusal(refused);
            }
            let started = Instant::now();
            let result = self.coordinator.commit(&identity, &changed).await;
            let partitions_failed = result.as_ref().map_or(true, |failed| !failed.is_empty());
            self.shared
                .stats
                .lock()
                .expect("group stats lock")
                .commit_attempted(started.elapsed(), !partitions_failed);
            let error = match result {
                Ok(failed) => {
                    let failed: BTreeMap<TopicPartition, GroupError> = failed.into_iter().collect();
                    let done: Vec<(TopicPartition, i64)> = changed
                        .iter()
                        .filter(|(tp, _)| !failed.contains_key(tp))
                        .map(|(tp, c)| (tp.clone(), c.offset))
                        .collect();
                    tracing::debug!(group = %identity.group, ?done, "committed");
                    self.shared
                        .committed
                        .lock()
                        .expect("committed lock")
                        .extend(done);
                    let mut transient = None;
                    for (tp, error) in failed {
                        if error.is_transient() {
                            transient.get_or_insert(error);
                        } else {
                            tracing::warn!(group = %identity.group, partition = %tp, error = %Chain(&error), "the broker refused to commit this partition");
                            refused.insert(tp, error);
                        }
                    }
                    match transient {
                        None => return refusal(refused),
                        Some(error) => error,
                    }
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
                return Err(GroupError::NotCommitted(NotCommitted::TimedOut {
                    timeout: self.timeout,
                    last: Box::new(error),
                }));
            }
            tracing::warn!(group = %identity.group, error = %Chain(&error), retry_in = ?delay, "commit failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// The offsets of owned partitions that differ from the last commit the broker
    /// confirmed, leaving out those it refused.
    fn changed(
        &self,
        offsets: &BTreeMap<TopicPartition, CommittedOffset>,
        refused: &BTreeSet<&TopicPartition>,
    ) -> Vec<(TopicPartition, CommittedOffset)> {
        let owned = self.shared.owned.lock().expect("owned lock");
        let committed = self.shared.committed.lock().expect("committed lock");
        offsets
            .iter()
            .filter(|(tp, c)| {
                owned.contains(*tp)
                    && !refused.contains(tp)
                    && committed.get(*tp) != Some(&c.offset)
            })
            .map(|(tp, c)| (tp.clone(), *c))
            .collect()
    }
}

/// `Ok` when the broker refused nothing, else the partitions it refused.
fn refusal(refused: BTreeMap<TopicPartition, GroupError>) -> Result<(), GroupError> {
    if refused.is_empty() {
        return Ok(());
    }
    Err(GroupError::NotCommitted(NotCommitted::PartitionsRefused {
        partitions: refused
            .into_iter()
            .map(|(tp, error)| (tp.to_string(), error.to_string()))
            .collect(),
    }))
}

/// Marks the queue closed and answers every waiter `Closed` (by dropping its reply).
struct CloseOnDrop(Arc<Queue>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        let mut waiting = self.0.waiting.lock().expect("commit queue lock");
        waiting.closed = true;
        waiting.waiters.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use kafka_protocol::error::ResponseError;

    use super::*;
    use crate::group::error::Retry;
    use crate::group::options::GroupOptions;

    /// A coordinator that answers from a script (nothing scripted: every partition
    /// committed) and records each request with the paused clock's time. While `held` has a
    /// gate, the next request waits for it to open.
    /// One request: when (since the start) and the offsets it carried.
    type Asked = (Duration, Vec<(String, i64)>);

    struct Script {
        started: Instant,
        asked: Mutex<Vec<Asked>>,
        answers: Mutex<VecDeque<Result<CommitFailures, GroupError>>>,
        held: Mutex<Option<oneshot::Receiver<()>>>,
    }

    impl Coordinator for Arc<Script> {
        async fn commit(
            &self,
            _: &MemberIdentity,
            offsets: &[(TopicPartition, CommittedOffset)],
        ) -> Result<CommitFailures, GroupError> {
            let asked = offsets
                .iter()
                .map(|(tp, c)| (tp.to_string(), c.offset))
                .collect();
            self.asked
                .lock()
                .unwrap()
                .push((self.started.elapsed(), asked));
            let gate = self.held.lock().unwrap().take();
            if let Some(gate) = gate {
                let _ = gate.await;
            }
            let answer = self.answers.lock().unwrap().pop_front();
            answer.unwrap_or(Ok(Vec::new()))
        }
    }

    struct Fixture {
        script: Arc<Script>,
        shared: Arc<GroupShared>,
        queue: CommitQueue,
        task: JoinHandle<()>,
    }

    const TIMEOUT: Duration = Duration::from_secs(5);

    /// A member in generation 1 owning t-0 and t-1, with a queue that retries for 5 s.
    fn fixture() -> Fixture {
        let script = Arc::new(Script {
            started: Instant::now(),
            asked: Mutex::new(Vec::new()),
            answers: Mutex::new(VecDeque::new()),
            held: Mutex::new(None),
        });
        let shared = Arc::new(GroupShared::new(&GroupOptions::new(
            "g",
            vec!["t".to_string()],
        )));
        {
            let mut identity = shared.identity.lock().unwrap();
            identity.member_id = "member-1".into();
            identity.generation = 1;
        }
        shared.owned.lock().unwrap().extend([tp(0), tp(1)]);
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let (queue, task) =
            CommitQueue::start_with(script.clone(), shared.clone(), backoff, TIMEOUT);
        Fixture {
            script,
            shared,
            queue,
            task,
        }
    }

    fn tp(partition: i32) -> TopicPartition {
        TopicPartition::new("t", partition)
    }

    fn at(partition: i32, offset: i64) -> (TopicPartition, CommittedOffset) {
        let committed = CommittedOffset {
            offset,
            leader_epoch: None,
        };
        (tp(partition), committed)
    }

    fn asked(script: &Script) -> Vec<Vec<(String, i64)>> {
        let asked = script.asked.lock().unwrap();
        asked.iter().map(|(_, offsets)| offsets.clone()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_transient_error_is_retried_with_backoff_until_the_timeout() {
        let fixture = fixture();
        let transient = || {
            Err(GroupError::Retry(Retry::Transient {
                api: "OffsetCommit",
                error: ResponseError::RequestTimedOut,
            }))
        };
        fixture
            .script
            .answers
            .lock()
            .unwrap()
            .extend((0..100).map(|_| transient()));
        let started = Instant::now();
        let error = fixture.queue.commit(vec![at(0, 10)]).await.unwrap_err();
        let took = started.elapsed();
        let GroupError::NotCommitted(NotCommitted::TimedOut { timeout, last }) = &error else {
            panic!("{error:?}");
        };
        assert_eq!(*timeout, TIMEOUT);
        assert!(matches!(**last, GroupError::Retry(Retry::Transient { .. })));
        // It gave up when the next wait would have passed the timeout, not before.
        assert!(
            took <= TIMEOUT && took >= TIMEOUT - Duration::from_millis(1200),
            "{took:?}"
        );
        let times: Vec<Duration> = fixture
            .script
            .asked
            .lock()
            .unwrap()
            .iter()
            .map(|(at, _)| *at)
            .collect();
        assert!(times.len() >= 5, "{times:?}");
        let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps[0] < Duration::from_millis(500), "{gaps:?}");
        assert!(
            gaps.iter().all(|gap| *gap < Duration::from_millis(1200)),
            "the backoff is capped at its max (1 s, jittered by up to 20%): {gaps:?}"
        );
        assert!(gaps.last() > gaps.first(), "the waits grow: {gaps:?}");
        // Nothing was confirmed, so nothing counts as committed.
        assert!(fixture.shared.committed.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn commits_behind_a_held_one_merge_into_one_request_with_the_newest_offsets() {
        let fixture = fixture();
        let (open, gate) = oneshot::channel();
        *fixture.script.held.lock().unwrap() = Some(gate);
        let first = tokio::spawn(fixture.queue.commit(vec![at(0, 1)]));
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(asked(&fixture.script).len(), 1, "the first request is out");
        // While it is held: 999 offers nobody waits for, and one commit that waits.
        for offset in 2..=1000 {
            fixture.queue.offer(vec![at(0, offset)]);
        }
        let second = tokio::spawn(fixture.queue.commit(vec![at(1, 6)]));
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(
            fixture.queue.waiting(),
            (2, 1),
            "one offset per partition waits"
        );
        open.send(()).unwrap();
        first.await.unwrap().unwrap();
        second.await.unwrap().unwrap();
        assert_eq!(
            asked(&fixture.script),
            [
                vec![("t/0".to_string(), 1)],
                vec![("t/0".to_string(), 1000), ("t/1".to_string(), 6)],
            ]
        );
        let committed = fixture.shared.committed.lock().unwrap().clone();
        assert_eq!(committed, BTreeMap::from([(tp(0), 1000), (tp(1), 6)]));
    }

    #[tokio::test(start_paused = true)]
    async fn an_offset_the_broker_confirmed_is_not_sent_again() {
        let fixture = fixture();
        fixture.queue.commit(vec![at(0, 5)]).await.unwrap();
        fixture.queue.commit(vec![at(0, 5)]).await.unwrap();
        fixture
            .queue
            .commit(vec![at(0, 5), at(1, 3)])
            .await
            .unwrap();
        assert_eq!(
            asked(&fixture.script),
            [vec![("t/0".to_string(), 5)], vec![("t/1".to_string(), 3)]]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn no_request_for_a_member_out_of_the_group_or_partitions_it_does_not_own() {
        let fixture = fixture();
        let error = fixture.queue.commit(vec![at(7, 1)]).await.unwrap_err();
        let GroupError::NotCommitted(NotCommitted::NotOwned { partitions }) = &error else {
            panic!("{error:?}");
        };
        assert_eq!(partitions, &["t/7".to_string()]);
        fixture.shared.identity.lock().unwrap().generation = -1;
        let error = fixture.queue.commit(vec![at(0, 1)]).await.unwrap_err();
        assert!(
            matches!(
                error,
                GroupError::NotCommitted(NotCommitted::NotMember { .. })
            ),
            "{error:?}"
        );
        assert!(
            asked(&fixture.script).is_empty(),
            "{:?}",
            asked(&fixture.script)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopped_queue_answers_closed_to_those_waiting_and_those_after() {
        let fixture = fixture();
        let (_open, gate) = oneshot::channel::<()>();
        *fixture.script.held.lock().unwrap() = Some(gate);
        let held = tokio::spawn(fixture.queue.commit(vec![at(0, 1)]));
        tokio::time::sleep(Duration::from_millis(10)).await;
        let waiting = tokio::spawn(fixture.queue.commit(vec![at(0, 2)]));
        tokio::time::sleep(Duration::from_millis(10)).await;
        fixture.task.abort();
        for answer in [held.await.unwrap(), waiting.await.unwrap()] {
            assert!(
                matches!(answer, Err(GroupError::Fatal(Fatal::Closed))),
                "{answer:?}"
            );
        }
        let later = fixture.queue.commit(vec![at(0, 3)]).await;
        assert!(
            matches!(later, Err(GroupError::Fatal(Fatal::Closed))),
            "{later:?}"
        );
    }
}
