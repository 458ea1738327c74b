//! The consumer handle: assign partitions, poll records, move positions.
//!
//! The handle and the background [`driver`](super::driver) share the partition states and the
//! record buffer under one lock that is never held across an await. Every call that changes
//! what may be fetched wakes the driver.
//!
//! Positions: [`Consumer::position`] is the offset of the next record the user will get
//! (after the last one handed out, or where fetching continues when nothing is buffered). It
//! never counts records that were fetched but not handed out. What a group commits on its own
//! is less: the [finished position](super::delivery), which leaves out the records the
//! application still has in hand.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::client::{Client, ClientError};
use crate::policy::ResetPolicy;

use super::batch::ConsumerRecord;
use super::buffer::TakeOutcome;
use super::driver::Driver;
use super::error::{ConsumerError, PartitionError, TopicRefused};
use super::offsets::OffsetSpec;
use super::options::FetchOptions;
use super::partition::{CommittedOffset, PartitionState, ResetCause, StartAt};
use super::state::{FetchState, FetchStats, Shared};
use super::TopicPartition;

/// A consumer of an explicit set of partitions (the group layer drives `assign`/`revoke`).
pub struct Consumer {
    client: Client,
    shared: Arc<Shared>,
    /// The driver task, until a close takes it.
    driver: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// How long a close waits for the driver to close the fetch sessions.
    close_bound: Duration,
}

/// A close waits for the fetch sessions to close at most this beyond the max wait (a fetch
/// in flight is answered first on its connection).
const CLOSE_BOUND: Duration = Duration::from_secs(2);

impl Consumer {
    /// Starts the fetcher's background task on the current tokio runtime.
    pub fn new(client: Client, options: FetchOptions, policy: Arc<dyn ResetPolicy>) -> Consumer {
        let shared = Arc::new(Shared::default());
        let close_bound = options.max_wait + CLOSE_BOUND;
        let driver = Driver::new(client.clone(), options, policy, shared.clone());
        Consumer {
            client,
            shared,
            driver: std::sync::Mutex::new(Some(tokio::spawn(driver.run()))),
            close_bound,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Assigns every partition of `topics`; each starts where the reset policy says. A topic
    /// that does not exist, or that the cluster refuses, is an error and nothing is assigned.
    pub async fn assign_topics(&self, topics: &[String]) -> Result<(), ConsumerError> {
        let metadata = self.client.refresh_topics(topics).await?;
        let mut partitions = Vec::new();
        for topic in topics {
            if let Some(refused) = TopicRefused::in_metadata(&metadata, topic) {
                return Err(refused.into());
            }
            let info = metadata
                .existing_topic(topic)
                .ok_or_else(|| ConsumerError::UnknownTopic(topic.clone()))?;
            partitions.extend(
                info.partitions
                    .keys()
                    .map(|p| (TopicPartition::new(topic, *p), StartAt::Reset)),
            );
        }
        self.assign(partitions);
        Ok(())
    }

    /// Hands `refused` to the user: the next `poll` returns it, once, like a partition
    /// error (a group member whose subscription names a topic it may not read).
    pub fn report_refused_topic(&self, refused: TopicRefused) {
        self.shared.lock().errors.push_back(refused.into());
        self.shared.records_ready.notify_waiters();
    }

    /// Adds partitions (an already assigned one starts over with a new stamp).
    pub fn assign(&self, partitions: impl IntoIterator<Item = (TopicPartition, StartAt)>) {
        self.change(|state| {
            for (tp, start) in partitions {
                state.buffer.remove(&tp);
                state.delivery.forget(&tp);
                state.partitions.assign(tp, start);
            }
        });
    }

    /// Removes partitions: their buffered records are dropped, answers in flight are ignored.
    pub fn revoke(&self, partitions: &[TopicPartition]) {
        self.change(|state| {
            for tp in partitions {
                state.buffer.remove(tp);
                state.delivery.forget(tp);
                state.partitions.revoke(tp);
            }
        });
    }

    /// The positions of those `partitions` that have one (everything handed out counts).
    pub fn positions(&self, partitions: &[TopicPartition]) -> Vec<(TopicPartition, i64)> {
        let state = self.shared.lock();
        partitions
            .iter()
            .filter_map(|tp| position_in(&state, tp).map(|p| (tp.clone(), p)))
            .collect()
    }

    /// What the consumer's own commits cover: the finished positions of those `partitions`
    /// that have a position (records the application still has in hand do not count, see
    /// [`super::delivery`]), with their leader epochs.
    pub fn finished_positions(
        &self,
        partitions: &[TopicPartition],
    ) -> Vec<(TopicPartition, CommittedOffset)> {
        self.offsets_to_commit(partitions, true)
    }

    /// What an explicit commit covers: the positions of those `partitions` that have one
    /// (everything handed out), with their leader epochs.
    pub fn handed_out_positions(
        &self,
        partitions: &[TopicPartition],
    ) -> Vec<(TopicPartition, CommittedOffset)> {
        self.offsets_to_commit(partitions, false)
    }

    /// The leader epoch committed with an offset is the epoch of the partition's last fetched
    /// batch: no record before the offset is newer (KIP-320 validates a resumed position
    /// against it).
    fn offsets_to_commit(
        &self,
        partitions: &[TopicPartition],
        finished_only: bool,
    ) -> Vec<(TopicPartition, CommittedOffset)> {
        let state = self.shared.lock();
        partitions
            .iter()
            .filter_map(|tp| {
                let position = position_in(&state, tp)?;
                let offset = if finished_only {
                    state.delivery.finished(tp, position)
                } else {
                    position
                };
                let leader_epoch = state.partitions.get(tp).and_then(|p| p.position_epoch);
                Some((
                    tp.clone(),
                    CommittedOffset {
                        offset,
                        leader_epoch,
                    },
                ))
            })
            .collect()
    }

    /// The application is done with every record `poll` returned so far: finished positions
    /// include them (the next `poll` says the same).
    pub fn mark_processed(&self) {
        self.shared.lock().delivery.all_processed();
    }

    /// How long the application has not been polling: zero while a poll waits, `None` before
    /// the first poll.
    pub fn idle(&self) -> Option<Duration> {
        self.shared.lock().delivery.idle()
    }

    /// The group's committed offsets for partitions assigned with [`StartAt::Committed`].
    pub fn committed_offsets(
        &self,
        offsets: impl IntoIterator<Item = (TopicPartition, Option<CommittedOffset>)>,
    ) {
        self.change(|state| {
            for (tp, offset) in offsets {
                state.partitions.committed_offset(&tp, offset);
            }
        });
    }

    /// The assigned partitions and their states.
    pub fn assignment(&self) -> BTreeMap<TopicPartition, PartitionState> {
        let state = self.shared.lock();
        state
            .partitions
            .iter()
            .map(|(tp, p)| (tp.clone(), p.state))
            .collect()
    }

    /// The offset of the next record the user will get, once the partition has a position.
    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        position_in(&self.shared.lock(), tp)
    }

    /// How far the partition's next record is from the end of what it may read (the high
    /// watermark, or the last stable offset under read_committed), as of the last fetch
    /// answer: 0 once everything was handed out. `None` before the first answer or while the
    /// partition has no position.
    pub fn lag(&self, tp: &TopicPartition) -> Option<i64> {
        let state = self.shared.lock();
        lag_in(&state, tp)
    }

    /// True when partitions are assigned and each one was handed out up to the end of what
    /// it may read, as of its last fetch answer (or stopped with an error).
    pub fn at_end(&self) -> bool {
        let state = self.shared.lock();
        !state.partitions.is_empty()
            && state.partitions.iter().all(|(tp, partition)| {
                partition.state == PartitionState::Failed || lag_in(&state, tp) == Some(0)
            })
    }

    /// [`Consumer::lag`] of every assigned partition that has one.
    pub fn lags(&self) -> BTreeMap<TopicPartition, i64> {
        let state = self.shared.lock();
        state
            .partitions
            .iter()
            .filter_map(|(tp, _)| Some((tp.clone(), lag_in(&state, tp)?)))
            .collect()
    }

    /// Moves a partition to `offset`: buffered records are dropped, answers in flight for the
    /// old position are ignored. Returns false if the partition is not assigned.
    pub fn seek(&self, tp: &TopicPartition, offset: i64) -> bool {
        self.change(|state| {
            state.buffer.remove(tp);
            state.partitions.seek(tp, offset)
        })
    }

    /// Moves partitions to the start of their logs.
    pub fn seek_to_beginning(&self, partitions: &[TopicPartition]) {
        self.reset_to(partitions, OffsetSpec::Earliest);
    }

    /// Moves partitions to the end of their logs (only new records).
    pub fn seek_to_end(&self, partitions: &[TopicPartition]) {
        self.reset_to(partitions, OffsetSpec::Latest);
    }

    /// Moves partitions to their first record at or after `ms` (ms since the epoch).
    pub fn seek_to_timestamp(&self, partitions: &[TopicPartition], ms: i64) {
        self.reset_to(partitions, OffsetSpec::Timestamp(ms));
    }

    fn reset_to(&self, partitions: &[TopicPartition], spec: OffsetSpec) {
        self.change(|state| {
            for tp in partitions {
                state.buffer.remove(tp);
                state.partitions.reset(tp, ResetCause::To(spec));
            }
        });
    }

    /// Stops fetching and returning records for partitions (their state is kept).
    pub fn pause(&self, partitions: &[TopicPartition]) {
        self.change(|state| {
            for tp in partitions {
                state.partitions.set_paused(tp, true);
            }
        });
    }

    pub fn resume(&self, partitions: &[TopicPartition]) {
        self.change(|state| {
            for tp in partitions {
                state.partitions.set_paused(tp, false);
            }
        });
        self.shared.records_ready.notify_waiters();
    }

    /// Waits up to `timeout` for records and returns at most `max_records` (an empty vector
    /// when none arrived). A partition error is returned once, before further records; the
    /// failed partition stops, the others go on. A connect failure no retry heals (see
    /// [`crate::net::Pool::fatal_error`]) is returned by every poll from then on.
    ///
    /// Calling `poll` says the application is done with the records earlier polls returned
    /// (see [`super::delivery`]). Cancel-safe: a dropped poll takes no records.
    pub async fn poll(
        &self,
        max_records: usize,
        timeout: Duration,
    ) -> Result<Vec<ConsumerRecord>, ConsumerError> {
        let deadline = tokio::time::Instant::now() + timeout;
        self.shared.lock().delivery.poll_started();
        let _waiting = PollGuard(&self.shared);
        loop {
            let ready = self.shared.records_ready.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            {
                let mut state = self.shared.lock();
                if state.closed {
                    return Err(ConsumerError::Closed);
                }
                if let Some(error) = self.client.pool().fatal_error() {
                    return Err(ClientError::Net(error).into());
                }
                if let Some(error) = state.errors.pop_front() {
                    return Err(error);
                }
                let state = &mut *state;
                let partitions = &state.partitions;
                let delivery = &mut state.delivery;
                let mut outcome = TakeOutcome::default();
                let buffered = state.buffer.bytes();
                let records = state.buffer.take(
                    max_records,
                    |tp| partitions.get(tp).is_some_and(|p| !p.paused),
                    |tp, first| delivery.handed_out(tp, first),
                    &mut outcome,
                );
                apply_take_outcome(state, outcome);
                if !records.is_empty() || state.buffer.bytes() != buffered {
                    // Drained partitions can be fetched again.
                    self.shared.driver_wake.notify_one();
                }
                if !records.is_empty() {
                    return Ok(records);
                }
                if let Some(error) = state.errors.pop_front() {
                    return Err(error);
                }
            }
            if tokio::time::timeout_at(deadline, ready).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    /// Counters since the start, and the bytes buffered right now.
    pub fn stats(&self) -> FetchStats {
        let state = self.shared.lock();
        FetchStats {
            buffer_bytes: state.buffer.bytes(),
            ..state.stats.clone()
        }
    }

    /// Stops the background task; later polls fail with [`ConsumerError::Closed`].
    pub async fn close(self) {
        self.close_shared().await;
    }

    /// [`Consumer::close`] for a shared consumer: stops fetching, closes the fetch sessions
    /// on their brokers (KIP-227) and waits for that, at most the max wait plus two seconds.
    pub async fn close_shared(&self) {
        self.stop_driver();
        let Some(mut driver) = self.take_driver() else {
            return;
        };
        if tokio::time::timeout(self.close_bound, &mut driver)
            .await
            .is_err()
        {
            tracing::debug!("fetch sessions not closed in time; stopping");
            driver.abort();
        }
    }

    /// Stops at once, leaving fetch sessions to expire on their brokers.
    pub fn shutdown(&self) {
        self.stop_driver();
        if let Some(driver) = self.take_driver() {
            driver.abort();
        }
    }

    fn take_driver(&self) -> Option<JoinHandle<()>> {
        self.driver.lock().expect("driver lock").take()
    }

    fn stop_driver(&self) {
        self.shared.lock().closed = true;
        self.shared.driver_wake.notify_one();
        self.shared.records_ready.notify_waiters();
    }

    fn change<T>(&self, f: impl FnOnce(&mut FetchState) -> T) -> T {
        let result = f(&mut self.shared.lock());
        self.shared.driver_wake.notify_one();
        result
    }
}

/// Ends a poll in the delivery bookkeeping, however the poll ends (returned or dropped).
struct PollGuard<'a>(&'a Shared);

impl Drop for PollGuard<'_> {
    fn drop(&mut self) {
        self.0.lock().delivery.poll_ended();
    }
}

/// Applies what a take found to the partitions: a partition whose records could not be decoded
/// stops with an error for the user (after the records before the bad one), and one whose
/// records ran past their batch headers fetches on after its last record.
fn apply_take_outcome(state: &mut FetchState, outcome: TakeOutcome) {
    for (tp, stamp, from, to) in outcome.ran_past_header {
        state.partitions.advance(&tp, stamp, from, to, None, -1);
    }
    for (tp, stamp, error) in outcome.corrupt {
        let corrupt = PartitionError::Corrupt {
            partition: tp,
            error,
        };
        state.stop_partition(stamp, corrupt);
    }
}

/// The next offset to hand out: after the last record taken from the buffer, or where
/// fetching continues when nothing is buffered.
fn position_in(state: &FetchState, tp: &TopicPartition) -> Option<i64> {
    if let Some(consumed) = state.buffer.consumed_position(tp) {
        return Some(consumed);
    }
    match state.partitions.state(tp)? {
        PartitionState::Fetching { position } => Some(position),
        _ => None,
    }
}

fn lag_in(state: &FetchState, tp: &TopicPartition) -> Option<i64> {
    let end = state.partitions.get(tp)?.readable_end?;
    Some((end - position_in(state, tp)?).max(0))
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if let Some(driver) = self.take_driver() {
            driver.abort();
        }
    }
}
