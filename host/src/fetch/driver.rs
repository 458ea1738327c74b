//! The fetcher's background task.
//!
//! One task owns the plan: which leader gets a Fetch, which partitions get a reset, when
//! metadata is refreshed. The requests themselves run as jobs on their own tasks (a long poll
//! never blocks the plan) and come back here to be applied under the state lock.
//!
//! Invariants:
//! - At most one Fetch in flight per leader, on that leader's `Fetch` connection: each leader
//!   is one fetch loop, and the loops run side by side.
//! - A partition is fetched only when it is `Fetching`, not paused, and has no records waiting
//!   in the buffer (back-pressure: see [`super::buffer`]).
//! - Answers are applied only if the partition's stamp and position still match what was asked
//!   (see [`super::partition`]); anything else is counted and dropped.
//! - A partition waiting for a reset is not fetched; the resets of one leader's partitions go
//!   out together; failures are retried with backoff, per partition.
//! - A position not yet checked against its current leader (KIP-320: a new leader, a
//!   committed offset with an epoch) is validated before it is fetched; the validations of one
//!   leader's partitions go out together (see [`super::validate`]).
//! - Nothing here waits without a bound: every job has a timeout, every retry a deadline.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kafka_protocol::error::ResponseError;
use tokio::task::JoinSet;

use crate::client::{Client, ClientError};
use crate::cluster::{means_stale_metadata, MetadataScope, RefreshReason};
use crate::error_chain::Chain;
use crate::net::Backoff;
use crate::policy::{ResetPolicy, ResetReason};

use super::buffer::Chunk;
use super::error::{topic_refusal_hint, PartitionError};
use super::fetch_job::{self, Asked, FetchJob, FetchLimits, FetchedData, PartitionOutcome};
use super::options::FetchOptions;
use super::partition::{ReadReplica, ResetCause};
use super::plan::{self, LeaderSlot};
use super::reset::{ResetJob, ResetOutcome, ResetRequest};
use super::session::{FetchSession, SessionPartition};
use super::state::{ResetKind, Shared};
use super::validate::{validate, ValidateOutcome, ValidateRequest};
use super::TopicPartition;

/// How long closing a fetch session may take beyond the max wait of a fetch in flight.
const SESSION_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// A broker that answers an empty fetch at once (instead of waiting up to max wait) is not
/// asked again sooner than this.
const EMPTY_FETCH_SPACING: Duration = Duration::from_millis(10);

#[derive(Debug, Default)]
struct LeaderState {
    fetching: bool,
    failures: u32,
    /// Answers in a row that said this broker is not (or no longer) a partition's leader
    /// while the metadata still names it: each waits longer (retry backoff, doubling).
    stale_answers: u32,
    retry_at: Option<Instant>,
    session: FetchSession,
}

enum JobDone {
    Fetch {
        leader: i32,
        started: Instant,
        /// The metadata generation the fetch was planned under (errors mark it stale only
        /// if no newer answer arrived since).
        generation: u64,
        result: Result<FetchedData, ClientError>,
    },
    Reset {
        outcomes: Vec<(ResetRequest, ResetOutcome)>,
    },
    Validate {
        generation: u64,
        outcomes: Vec<(ValidateRequest, ValidateOutcome)>,
    },
    /// A metadata refresh; `for_leaders` when it was asked because partitions had no leader.
    Metadata {
        result: Result<(), ClientError>,
        for_leaders: bool,
    },
}

pub struct Driver {
    client: Client,
    options: FetchOptions,
    policy: Arc<dyn ResetPolicy>,
    shared: Arc<Shared>,
    leaders: HashMap<i32, LeaderState>,
    /// Partitions with a reset job in flight.
    resetting: HashSet<TopicPartition>,
    /// Partitions with a validation in flight.
    validating: HashSet<TopicPartition>,
    metadata_refreshing: bool,
    metadata_failures: u32,
    /// Refreshes in a row that were asked because partitions had no leader (an election in
    /// progress, a topic being created): they back off like failures, so nothing spins.
    leaderless_refreshes: u32,
    metadata_retry_at: Option<Instant>,
    backoff: Backoff,
    jobs: JoinSet<JobDone>,
    /// `client.rack`, sent with every fetch (KIP-392).
    rack: Option<Arc<str>>,
}

impl Driver {
    pub fn new(
        client: Client,
        options: FetchOptions,
        policy: Arc<dyn ResetPolicy>,
        shared: Arc<Shared>,
    ) -> Driver {
        let backoff = Backoff::new(options.retry_backoff, options.retry_backoff_max);
        let rack = options.rack.as_deref().map(Arc::from);
        Driver {
            client,
            options,
            policy,
            shared,
            leaders: HashMap::new(),
            resetting: HashSet::new(),
            validating: HashSet::new(),
            metadata_refreshing: false,
            metadata_failures: 0,
            leaderless_refreshes: 0,
            metadata_retry_at: None,
            backoff,
            jobs: JoinSet::new(),
            rack,
        }
    }

    pub async fn run(mut self) {
        // Whoever refreshes the metadata (this task, the group, the user), a new leader is
        // acted on at once.
        let mut metadata_updates = self.client.metadata_updates();
        loop {
            if self.shared.lock().closed {
                self.jobs.abort_all();
                self.close_sessions().await;
                return;
            }
            let wake_at = self.plan();
            tokio::select! {
                Some(done) = self.jobs.join_next(), if !self.jobs.is_empty() => match done {
                    Ok(done) => self.apply(done),
                    Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                    Err(_) => {}
                },
                _ = self.shared.driver_wake.notified() => {}
                _ = metadata_updates.changed() => {}
                _ = tokio::time::sleep_until(wake_at.into()) => {}
            }
        }
    }

    /// Closes every open fetch session on its broker, side by side (see
    /// [`fetch_job::close_session`]); a Fetch still in flight on the connection is answered
    /// first, so each gets the max wait on top of a second.
    async fn close_sessions(&mut self) {
        let timeout = self.options.max_wait + SESSION_CLOSE_TIMEOUT;
        let mut closing = JoinSet::new();
        for (leader, state) in self.leaders.iter_mut() {
            if let Some(session_id) = state.session.take_open() {
                let client = self.client.clone();
                let leader = *leader;
                closing.spawn(async move {
                    fetch_job::close_session(&client, leader, session_id, timeout).await
                });
            }
        }
        while closing.join_next().await.is_some() {}
    }

    /// Starts every request that can start now (what [`plan::plan`] decides from a snapshot);
    /// returns when to look again at the latest.
    fn plan(&mut self) -> Instant {
        let now = Instant::now();
        let metadata = self.client.metadata();
        let need_metadata = self.client.metadata_is_stale();
        let slots: BTreeMap<i32, LeaderSlot> = self
            .leaders
            .iter()
            .map(|(id, state)| {
                let slot = LeaderSlot {
                    fetching: state.fetching,
                    retry_at: state.retry_at,
                    failed: state.failures > 0,
                };
                (*id, slot)
            })
            .collect();
        let plan = {
            let state = self.shared.lock();
            let paused = state
                .buffer
                .bytes_of(|tp| state.partitions.get(tp).is_some_and(|p| p.paused));
            let buffered = |tp: &TopicPartition| state.buffer.contains(tp);
            plan::plan(&plan::Inputs {
                now,
                partitions: &state.partitions,
                buffered: &buffered,
                budget: plan::fetch_budget(
                    self.options.max_buffered_bytes,
                    state.buffer.bytes(),
                    paused,
                ),
                metadata: &metadata,
                leaders: &slots,
                validating: &self.validating,
                resetting: &self.resetting,
                leaderless_refreshes: self.leaderless_refreshes,
                max_bytes_ceiling: self.options.max_bytes.ceiling(),
            })
        };
        let mut wake_at = plan.wake_at.unwrap_or(now + plan::IDLE_TICK);
        if !plan.stops.is_empty() {
            let mut state = self.shared.lock();
            for (stamp, error) in plan.stops {
                let tp = error.partition().clone();
                if state.stop_partition(stamp, error) {
                    tracing::error!(partition = %tp, "the metadata refuses the partition's topic, or it is gone; the partition stops");
                }
            }
            drop(state);
            self.shared.records_ready.notify_waiters();
        }
        for (leader, asked) in plan.fetches {
            self.start_fetch(leader, asked, plan.max_bytes);
        }
        for (leader, requests) in plan.resets {
            self.start_reset(leader, requests);
        }
        for (leader, requests) in plan.validations {
            self.start_validation(leader, requests);
        }
        let leaderless = !plan.leaderless_topics.is_empty();
        let leaderless_topics = plan.leaderless_topics;
        if !leaderless {
            self.leaderless_refreshes = 0;
        }
        if (need_metadata || leaderless) && !self.metadata_refreshing {
            match self.metadata_retry_at {
                Some(at) if at > now => wake_at = wake_at.min(at),
                _ => {
                    self.metadata_refreshing = true;
                    let client = self.client.clone();
                    self.jobs.spawn(async move {
                        // A missing leader is not "stale" to the cache: ask the cluster, naming
                        // the topics. An answer for every topic leaves out the topics this
                        // client may not describe, where an answer that names them says so
                        // (a refusal stops their partitions, where an absence would look like
                        // a deleted topic). A stale cache gets its answer for every topic.
                        let result = if leaderless && !need_metadata {
                            let scope = MetadataScope::Topics(leaderless_topics);
                            let why = RefreshReason::Asked("partitions have no leader");
                            client.refresh(scope, why).await
                        } else if leaderless {
                            client
                                .refresh_metadata_because("partitions have no leader")
                                .await
                        } else {
                            client.fresh_metadata().await
                        };
                        JobDone::Metadata {
                            result: result.map(|_| ()),
                            for_leaders: leaderless,
                        }
                    });
                }
            }
        }
        wake_at
    }

    fn start_fetch(&mut self, leader: i32, asked: Vec<Asked>, max_bytes: i32) {
        let wanted: BTreeMap<TopicPartition, SessionPartition> = asked
            .iter()
            .map(|a| {
                (
                    a.tp.clone(),
                    SessionPartition {
                        fetch_offset: a.position,
                        max_bytes: self.options.partition_max_bytes,
                        current_leader_epoch: a.leader_epoch,
                        last_fetched_epoch: a.position_epoch,
                    },
                )
            })
            .collect();
        let leader_state = self.leaders.entry(leader).or_default();
        leader_state.fetching = true;
        let session = leader_state.session.next_request(&wanted);
        {
            let mut state = self.shared.lock();
            state.stats.fetch_requests += 1;
            if !session.is_full() {
                state.stats.incremental_fetches += 1;
            }
        }
        let job = FetchJob {
            leader,
            asked,
            session,
            rack: self.rack.clone(),
            limits: FetchLimits {
                max_wait: self.options.max_wait,
                min_bytes: self.options.min_bytes,
                size: self.options.max_bytes,
                max_bytes,
                isolation: self.options.isolation,
                timeout: self.client.pool().options().connection.request_timeout
                    + self.options.max_wait,
            },
        };
        let client = self.client.clone();
        let generation = self.client.metadata_generation();
        self.jobs.spawn(async move {
            let started = Instant::now();
            let result = job.run(client).await;
            JobDone::Fetch {
                leader,
                started,
                generation,
                result,
            }
        });
    }

    fn start_reset(&mut self, leader: i32, requests: Vec<ResetRequest>) {
        self.resetting.extend(requests.iter().map(|r| r.tp.clone()));
        let client = self.client.clone();
        let policy = self.policy.clone();
        let group = self.options.group.clone();
        let isolation = self.options.isolation;
        self.jobs.spawn(async move {
            let job = ResetJob {
                client: &client,
                leader,
                isolation,
                policy,
                group: group.as_deref(),
                now_ms: now_ms(),
            };
            JobDone::Reset {
                outcomes: job.run(requests).await,
            }
        });
    }

    fn start_validation(&mut self, leader: i32, requests: Vec<ValidateRequest>) {
        self.validating
            .extend(requests.iter().map(|r| r.tp.clone()));
        self.shared.lock().stats.validations += requests.len() as u64;
        let client = self.client.clone();
        let generation = self.client.metadata_generation();
        self.jobs.spawn(async move {
            JobDone::Validate {
                generation,
                outcomes: validate(&client, leader, requests).await,
            }
        });
    }

    fn apply(&mut self, done: JobDone) {
        match done {
            JobDone::Fetch {
                leader,
                started,
                generation,
                result,
            } => self.apply_fetch(leader, started, generation, result),
            JobDone::Reset { outcomes } => self.apply_resets(outcomes),
            JobDone::Validate {
                generation,
                outcomes,
            } => self.apply_validations(generation, outcomes),
            JobDone::Metadata {
                result,
                for_leaders,
            } => {
                self.metadata_refreshing = false;
                match result {
                    Ok(()) => {
                        self.metadata_failures = 0;
                        // The next refresh waits at least the minimum backoff, longer while
                        // leaders stay missing.
                        let delay = if for_leaders {
                            self.leaderless_refreshes += 1;
                            self.backoff.delay(self.leaderless_refreshes)
                        } else {
                            self.options.retry_backoff
                        };
                        self.metadata_retry_at = Some(Instant::now() + delay);
                    }
                    Err(error) => {
                        self.metadata_failures += 1;
                        let delay = self.backoff.delay(self.metadata_failures);
                        tracing::warn!(error = %Chain(&error), attempt = self.metadata_failures, ?delay, "metadata refresh failed; retrying");
                        self.metadata_retry_at = Some(Instant::now() + delay);
                    }
                }
            }
        }
    }

    fn apply_fetch(
        &mut self,
        leader: i32,
        started: Instant,
        generation: u64,
        result: Result<FetchedData, ClientError>,
    ) {
        let now = Instant::now();
        let backoff = self.backoff;
        let leader_state = self.leaders.entry(leader).or_default();
        leader_state.fetching = false;
        let data = match result {
            Ok(data) => {
                let mut state = self.shared.lock();
                state.stats.fetch_latency.observe(now - started);
                state.stats.fetch_record_bytes += data.wire_bytes as u64;
                *state
                    .stats
                    .fetch_record_bytes_by_broker
                    .entry(leader)
                    .or_default() += data.wire_bytes as u64;
                state.stats.fetch_max_bytes = data.asked_max_bytes;
                data
            }
            Err(error) => {
                leader_state.session.reset();
                leader_state.failures += 1;
                let delay = backoff.delay(leader_state.failures);
                leader_state.retry_at = Some(now + delay);
                tracing::warn!(leader, error = %Chain(&error), attempt = leader_state.failures, ?delay, "fetch failed; retrying");
                let first_failure = leader_state.failures == 1;
                let mut state = self.shared.lock();
                state.stats.failed_fetches += 1;
                // A replica a leader named that cannot be reached: back to the leaders (which
                // may name it again until the controller fences it; the plan skips it while
                // it backs off).
                let back = state.partitions.clear_read_replicas_on(leader);
                if back > 0 && first_failure {
                    tracing::info!(
                        replica = leader,
                        partitions = back,
                        "a read replica cannot be reached; fetching from the leaders again"
                    );
                }
                return;
            }
        };
        if !data.sessions_supported {
            leader_state.session.reset();
        } else if !leader_state
            .session
            .on_response(data.error, data.session_id)
        {
            if let Some(error) = data.error.filter(|e| !is_session_error(*e)) {
                self.client.observe_error_under(error, generation);
                leader_state.failures += 1;
                leader_state.retry_at = Some(now + backoff.delay(leader_state.failures));
                tracing::warn!(leader, error = %Chain(&error), "fetch refused; retrying");
            }
            return;
        }
        leader_state.failures = 0;
        leader_state.retry_at = None;

        let mut records_arrived = false;
        let mut partition_errors = false;
        let mut stale_leader = false;
        let mut state = self.shared.lock();
        let state = &mut *state;
        for (asked, outcome) in data.partitions {
            let Asked {
                tp,
                stamp,
                position,
                leader_epoch: asked_leader_epoch,
                from_read_replica,
                ..
            } = asked;
            if !state.partitions.is_current_fetch(&tp, stamp, position) {
                tracing::debug!(partition = %tp, position, "dropping a stale fetch answer");
                state.stats.stale_dropped += 1;
                continue;
            }
            match outcome {
                PartitionOutcome::Records {
                    records,
                    readable_end,
                } => {
                    state.partitions.set_readable_end(&tp, stamp, readable_end);
                    let Some(next_offset) = records.next_offset() else {
                        continue;
                    };
                    tracing::trace!(partition = %tp, position, next_offset, readable_end, bytes = records.bytes(), "fetched");
                    state.partitions.advance(
                        &tp,
                        stamp,
                        position,
                        next_offset,
                        records.last_epoch(),
                        asked_leader_epoch,
                    );
                    if !records.is_empty() {
                        records_arrived = true;
                        state.buffer.push(Chunk {
                            tp,
                            stamp,
                            records,
                            consumed: position,
                            next_offset,
                        });
                    }
                }
                PartitionOutcome::Diverged {
                    leader_epoch,
                    end_offset,
                } => {
                    if state
                        .partitions
                        .truncated(&tp, stamp, position, leader_epoch, end_offset)
                    {
                        tracing::warn!(partition = %tp, position, diverged_at = end_offset, leader_epoch, "the leader's log diverged below the position (truncation); asking the reset policy");
                        state.stats.truncations += 1;
                    }
                }
                PartitionOutcome::Error(error) if from_read_replica => {
                    // The replica is behind, gone from the ISR, or no longer one (KIP-392):
                    // the leader is asked next, and an out-of-range position is judged there
                    // (a follower's log may simply not have it yet), never reset here.
                    state.partitions.clear_read_replica(&tp);
                    tracing::info!(partition = %tp, replica = leader, error = %Chain(&error), "the read replica refused; fetching from the leader again");
                    if error != ResponseError::OffsetOutOfRange {
                        self.client.observe_error_under(error, generation);
                    }
                }
                PartitionOutcome::Error(ResponseError::OffsetOutOfRange) => {
                    tracing::info!(partition = %tp, offset = position, "offset out of range; asking the reset policy");
                    state.stats.out_of_range += 1;
                    state.partitions.out_of_range(&tp, stamp, position);
                }
                PartitionOutcome::Error(error) if refusal_hint(error).is_some() => {
                    let refused = PartitionError::Refused {
                        partition: tp.clone(),
                        error,
                        hint: refusal_hint(error).expect("checked by the guard"),
                    };
                    if state.stop_partition(stamp, refused) {
                        tracing::error!(partition = %tp, error = %Chain(&error), "the broker refuses the partition; it stops");
                        records_arrived = true;
                    }
                }
                PartitionOutcome::Error(error) => {
                    tracing::debug!(partition = %tp, error = %Chain(&error), "fetch error for a partition; retrying");
                    self.client.observe_error_under(error, generation);
                    if means_stale_metadata(error) {
                        stale_leader = true;
                    } else {
                        partition_errors = true;
                    }
                }
                PartitionOutcome::Corrupt(error) => {
                    let corrupt = PartitionError::Corrupt {
                        partition: tp,
                        error,
                    };
                    if state.stop_partition(stamp, corrupt) {
                        records_arrived = true;
                    }
                }
            }
        }
        let until = now + self.client.metadata_options().max_age;
        for (asked, replica) in data.read_replicas {
            if !state
                .partitions
                .is_current_fetch(&asked.tp, asked.stamp, asked.position)
            {
                continue;
            }
            tracing::debug!(partition = %asked.tp, leader, replica, "the leader names a replica in this rack to fetch from");
            let read_replica = ReadReplica {
                broker: replica,
                until,
            };
            state
                .partitions
                .set_read_replica(&asked.tp, asked.stamp, read_replica);
        }
        state.stats.buffer_bytes_peak = state.stats.buffer_bytes_peak.max(state.buffer.bytes());
        let leader_state = self.leaders.entry(leader).or_default();
        // A leader being elected: until the metadata names the new one, this broker answers
        // every fetch at once with the same error; ask it again with backoff, not at the
        // empty-fetch pace (about 100 times a second).
        leader_state.stale_answers = if stale_leader {
            leader_state.stale_answers + 1
        } else {
            0
        };
        if stale_leader {
            leader_state.retry_at = Some(now + backoff.delay(leader_state.stale_answers));
        } else if partition_errors {
            leader_state.retry_at = Some(now + backoff.delay(1));
        } else if !records_arrived && now.duration_since(started) < EMPTY_FETCH_SPACING {
            leader_state.retry_at = Some(started + EMPTY_FETCH_SPACING);
        }
        if records_arrived {
            self.shared.records_ready.notify_waiters();
        }
    }

    fn apply_validations(
        &mut self,
        generation: u64,
        outcomes: Vec<(ValidateRequest, ValidateOutcome)>,
    ) {
        let now = Instant::now();
        let mut state = self.shared.lock();
        let state = &mut *state;
        for (request, outcome) in outcomes {
            self.validating.remove(&request.tp);
            let ValidateRequest {
                tp,
                stamp,
                position,
                position_epoch,
                leader_epoch,
            } = request;
            if !state.partitions.is_current_fetch(&tp, stamp, position) {
                tracing::debug!(partition = %tp, ?outcome, "dropping a stale validation answer");
                state.stats.stale_dropped += 1;
                continue;
            }
            match outcome {
                ValidateOutcome::EpochEndsAt(end_offset) => {
                    if state
                        .partitions
                        .validated(&tp, stamp, position, leader_epoch, end_offset)
                    {
                        tracing::warn!(partition = %tp, position, position_epoch, leader_epoch, diverged_at = end_offset, "the new leader's log ends the position's stamp below the position (truncation); asking the reset policy");
                        state.stats.truncations += 1;
                    } else {
                        tracing::debug!(partition = %tp, position, position_epoch, leader_epoch, ?end_offset, "position validated");
                    }
                }
                ValidateOutcome::Unsupported => {
                    tracing::debug!(partition = %tp, "the leader cannot validate positions (OffsetForLeaderEpoch v3+); fetching unchecked");
                    state
                        .partitions
                        .validated(&tp, stamp, position, leader_epoch, None);
                }
                ValidateOutcome::Retry { error, reason } => {
                    if let Some(error) = error {
                        self.client.observe_error_under(error, generation);
                    }
                    let attempts = state.partitions.get(&tp).map_or(0, |p| p.attempts) + 1;
                    let delay = self.backoff.delay(attempts);
                    state
                        .partitions
                        .validation_retry(&tp, stamp, position, now + delay);
                    tracing::debug!(partition = %tp, %reason, attempts, ?delay, "validation failed; retrying");
                }
            }
        }
    }

    fn apply_resets(&mut self, outcomes: Vec<(ResetRequest, ResetOutcome)>) {
        let now = Instant::now();
        let mut errors_arrived = false;
        let mut state = self.shared.lock();
        let state = &mut *state;
        for (request, outcome) in outcomes {
            self.resetting.remove(&request.tp);
            let ResetRequest {
                tp, stamp, cause, ..
            } = request;
            if !state.partitions.is_current_reset(&tp, stamp) {
                tracing::debug!(partition = %tp, ?outcome, "dropping a stale reset answer");
                state.stats.stale_dropped += 1;
                continue;
            }
            // A retry is not an outcome yet: it is counted when it ends.
            let counted = match outcome {
                ResetOutcome::Resolved(_) => Some("resolved"),
                ResetOutcome::Failed(_) => Some("failed"),
                ResetOutcome::Retry(_) => None,
            };
            if let Some(outcome) = counted {
                let kind = ResetKind {
                    reason: match cause {
                        ResetCause::Policy(ResetReason::NoCommittedOffset) => "no_committed_offset",
                        ResetCause::Policy(ResetReason::OutOfRange { .. }) => "out_of_range",
                        ResetCause::Policy(ResetReason::LogTruncated { .. }) => "log_truncated",
                        ResetCause::To(_) => "seek",
                    },
                    policy: match cause {
                        ResetCause::Policy(_) => self.policy.name().to_string(),
                        ResetCause::To(_) => "seek".to_string(),
                    },
                    outcome,
                };
                *state.stats.resets.entry(kind).or_default() += 1;
            }
            match outcome {
                ResetOutcome::Resolved(offset) => {
                    tracing::info!(partition = %tp, offset, "position reset");
                    state.partitions.reset_resolved(&tp, stamp, offset);
                    state.stats.resets_resolved += 1;
                }
                ResetOutcome::Failed(error) => {
                    tracing::warn!(error = %Chain(&error), "partition stopped");
                    state.partitions.fail(&tp, stamp);
                    state.errors.push_back(error.into());
                    errors_arrived = true;
                }
                ResetOutcome::Retry(reason) => {
                    let attempts = state.partitions.get(&tp).map_or(0, |p| p.attempts) + 1;
                    let delay = self.backoff.delay(attempts);
                    state.partitions.reset_retry(&tp, stamp, now + delay);
                    state.stats.reset_retries += 1;
                    tracing::warn!(partition = %tp, %reason, attempts, ?delay, "reset failed; retrying");
                }
            }
        }
        if errors_arrived {
            self.shared.records_ready.notify_waiters();
        }
    }
}

/// What to do about a fetch error no retry fixes (`None`: a retry may).
fn refusal_hint(error: ResponseError) -> Option<&'static str> {
    match error {
        ResponseError::TopicAuthorizationFailed => Some(topic_refusal_hint(error)),
        ResponseError::ClusterAuthorizationFailed => {
            Some("Grant this client access to the cluster")
        }
        ResponseError::UnsupportedCompressionType => {
            Some("The topic uses a compression codec this consumer does not decode")
        }
        _ => None,
    }
}

fn is_session_error(error: ResponseError) -> bool {
    matches!(
        error,
        ResponseError::FetchSessionIdNotFound | ResponseError::InvalidFetchSessionEpoch
    )
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
