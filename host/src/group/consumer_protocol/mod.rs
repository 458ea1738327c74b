//! The consumer group protocol (KIP-848, `group.protocol = "consumer"`, Kafka 4.0+): the
//! broker assigns, and one request, ConsumerGroupHeartbeat, carries the member's whole state.
//! No JoinGroup barrier: each member moves from its assignment to the next on its own.
//!
//! ```text
//!          ┌──────── fenced (UNKNOWN_MEMBER_ID, FENCED_MEMBER_EPOCH): partitions lost ───────┐
//!          ▼         (no commit: the epoch is gone), same member id, epoch 0 again           │
//!   Joining (epoch 0) ──answer──► Stable (epoch N) ──a target ≠ owned──► Reconciling ───────┤
//!                                    ▲   └── a beat every interval         revoke (commit     │
//!                                    └──── the next beat acknowledges ◄──  first), then take ┘
//!   No poll for max_poll_interval: revoke all, leave (epoch -1) ──► Left ──a poll──► Joining
//!   Stop: revoke all (commit), leave (epoch -1; a static member -2) · fatal error ──► Failed
//! ```
//!
//! Invariants:
//! - One beat in flight at a time, on the coordinator's `Heartbeat` connection (never behind
//!   a commit the coordinator holds). The next goes out after the interval the broker names,
//!   or at once when a reconciliation is done: the broker hands what this member gave up to
//!   its next owner only once a beat says it is given up. For one interval after joining,
//!   every 250 ms: what other members give up reaches a joiner at its next beat
//!   ([`cadence`]).
//! - Every beat carries the full state (subscription, rebalance timeout, assignor, what the
//!   member owns): the broker ignores what did not change, and a lost answer can never leave
//!   it with a view of the member that is older than the member's.
//! - The member names itself (a UUID, v1 of the API) and keeps the name for its life, through
//!   fences. The epoch of the last answer goes into every beat and every commit
//!   (OffsetCommit v9 carries it where the classic protocol puts the generation).
//! - One reconciliation at a time, on a future of its own beside the beats (a commit before a
//!   revoke may take long); a newer target waits for it. Revoke before take, commit before
//!   revoke ([`Handover::revoke`]); lost partitions are never committed. A stop (or leaving
//!   for want of polls) lets the reconciliation under way end first, within the stop's
//!   deadline, so the listener hears of each revoked partition once.
//! - Out of touch (no answer for `session_timeout`): `poll` hands out nothing until an answer
//!   says whether the member still counts (see [`super::heartbeat`] for why).
//!
//! Wasm assignors do not exist here: the broker assigns. `config` refuses the combination
//! with the reason.

pub mod cadence;
pub mod reconcile;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::client::{Client, ClientError};
use crate::cluster::Metadata;
use crate::error_chain::Chain;
use crate::fetch::{Consumer, TopicPartition};
use crate::net::{Backoff, NetError, Purpose, SendOptions};

use super::commit_queue::CommitQueue;
use super::error::{classify, Fatal, GroupError, Retry};
use super::handover::{Handover, LEAVE_ALLOWANCE};
use super::listener::RebalanceListener;
use super::options::GroupOptions;
use super::shared::GroupShared;
use super::waits::{millis, next_poll, sleep_until_some, wait_some, Pending};
use cadence::Cadence;
use reconcile::{owned_by_id, resolve, step, ById, Step, TopicIds};

/// The member epoch that asks to join (or rejoin after a fence).
const JOIN_EPOCH: i32 = 0;
/// The member epoch that leaves the group.
const LEAVE_EPOCH: i32 = -1;
/// The member epoch a static member leaves with: its partitions wait for it (KIP-345's promise).
const STATIC_LEAVE_EPOCH: i32 = -2;

/// How often the member looks at the application's polls and at committed offsets still to
/// fetch.
const CHECK_INTERVAL: Duration = Duration::from_millis(200);

enum Phase {
    /// In the group or joining it: beats, reconciliations, auto-commits.
    Active,
    /// Left because the application stopped polling; rejoins at the next poll.
    Left,
    Failed(GroupError),
    Closing,
}

/// What a finished reconciliation brought: the partitions taken, and those of them whose
/// committed offsets are still to fetch.
struct Reconciled {
    taken: Vec<TopicPartition>,
    awaiting: BTreeSet<TopicPartition>,
}

/// One member of a consumer-protocol group: the task behind a [`super::GroupConsumer`].
pub struct Member {
    client: Client,
    consumer: Arc<Consumer>,
    options: GroupOptions,
    listener: Arc<dyn RebalanceListener>,
    shared: Arc<GroupShared>,
    commits: CommitQueue,
    backoff: Backoff,
    member_id: String,
    member_epoch: i32,
    /// When the next beat goes out (the broker's interval; quicker just after a join).
    cadence: Cadence,
    ids: TopicIds,
    /// The last assignment the broker sent, by topic id.
    target: Option<ById>,
    awaiting_committed: BTreeSet<TopicPartition>,
    failures: u32,
    last_answer: Instant,
    rebalance_started: Option<Instant>,
}

impl Member {
    pub fn new(
        client: Client,
        consumer: Arc<Consumer>,
        options: GroupOptions,
        listener: Arc<dyn RebalanceListener>,
        shared: Arc<GroupShared>,
        commits: CommitQueue,
        backoff: Backoff,
    ) -> Member {
        Member {
            client,
            consumer,
            cadence: Cadence::new(options.heartbeat_interval),
            options,
            listener,
            shared,
            commits,
            backoff,
            member_id: uuid::Uuid::new_v4().to_string(),
            member_epoch: JOIN_EPOCH,
            ids: TopicIds::default(),
            target: None,
            awaiting_committed: BTreeSet::new(),
            failures: 0,
            last_answer: Instant::now(),
            rebalance_started: None,
        }
    }

    fn group(&self) -> &str {
        &self.options.group_id
    }

    fn handover(&self) -> Handover {
        Handover {
            client: self.client.clone(),
            consumer: self.consumer.clone(),
            shared: self.shared.clone(),
            commits: self.commits.clone(),
            listener: self.listener.clone(),
            auto_commit: self.options.auto_commit_interval.is_some(),
            rebalance_timeout: self.options.rebalance_timeout,
        }
    }

    fn owned(&self) -> BTreeSet<TopicPartition> {
        self.shared.owned.lock().expect("owned lock").clone()
    }

    pub async fn run(mut self) {
        let mut phase = Phase::Active;
        loop {
            if self.shared.closing().is_some() && !matches!(phase, Phase::Failed(_)) {
                phase = Phase::Closing;
            }
            phase = match phase {
                Phase::Active => self.active().await,
                Phase::Left => self.wait_for_poll().await,
                Phase::Failed(error) => {
                    tracing::error!(group = self.group(), error = %Chain(&error), "group consumer stopped");
                    self.lose_all();
                    self.shared.fatal.send_replace(Some(error));
                    return;
                }
                Phase::Closing => {
                    self.leave(true).await;
                    return;
                }
            };
        }
    }

    /// The member's life in the group: beats, reconciliations, auto-commits, the checks.
    async fn active(&mut self) -> Phase {
        let shared = self.shared.clone();
        let mut beat: Option<Pending<Result<ConsumerGroupHeartbeatResponse, GroupError>>> = None;
        let mut next_beat = Some(Instant::now());
        let mut reconciling: Option<Pending<Reconciled>> = None;
        let mut refreshing: Option<Pending<Result<Arc<Metadata>, ClientError>>> = None;
        let auto_commit = self.options.auto_commit_interval;
        let mut next_commit = auto_commit.map(|interval| Instant::now() + interval);
        let mut committing: Option<Pending<Result<(), GroupError>>> = None;
        let mut next_offset_fetch = Instant::now();
        loop {
            if reconciling.is_none() && self.member_epoch > 0 {
                let (step, unknown) = self.next_step();
                if unknown && refreshing.is_none() {
                    let client = self.client.clone();
                    refreshing = Some(Box::pin(async move {
                        client
                            .refresh_metadata_because(
                                "the group assigned topics this client has no name for yet",
                            )
                            .await
                    }));
                }
                if !step.is_empty() {
                    self.rebalance_started.get_or_insert_with(Instant::now);
                    tracing::info!(group = self.group(), member_epoch = self.member_epoch, revoke = ?step.revoke, take = ?step.acquire, "reconciling with the assignment");
                    reconciling = Some(self.reconcile(step));
                }
            }
            // Auto-commits while the member is in the group only (it owns nothing before).
            let commit_at = next_commit.filter(|_| committing.is_none() && self.member_epoch > 0);
            tokio::select! {
                _ = shared.closed() => {
                    if let Some(under_way) = reconciling.take() {
                        self.finish_before_leaving(under_way).await;
                    }
                    return Phase::Closing;
                }
                _ = sleep_until_some(next_beat.filter(|_| beat.is_none())) => {
                    next_beat = None;
                    beat = Some(self.send_beat(self.beat_request()));
                }
                answer = wait_some(&mut beat) => {
                    beat = None;
                    match self.on_answer(answer).await {
                        Answer::Next(delay) => next_beat = Some(Instant::now() + delay),
                        Answer::Fenced => {
                            // A revoke under way is abandoned: the partitions are lost.
                            reconciling = None;
                            next_beat = Some(Instant::now() + self.backoff.delay(self.failures));
                        }
                        Answer::End(phase) => return phase,
                    }
                }
                done = wait_some(&mut reconciling) => {
                    reconciling = None;
                    self.reconciliation_done(done);
                    // Acknowledge at once: the broker waits for it to move partitions on.
                    next_beat = Some(Instant::now());
                    if self.reconciled() {
                        if let Some(started) = self.rebalance_started.take() {
                            self.shared.stats.lock().expect("group stats lock").rebalanced(started.elapsed());
                        }
                        self.shared.generations.send_replace(self.member_epoch);
                        tracing::info!(group = self.group(), member_epoch = self.member_epoch, assigned = self.owned().len(), "assignment applied");
                    }
                }
                refreshed = wait_some(&mut refreshing) => {
                    refreshing = None;
                    match refreshed {
                        Ok(metadata) => self.ids.learn(&metadata),
                        Err(error) => tracing::warn!(group = self.group(), error = %Chain(&error), "metadata refresh failed; trying again"),
                    }
                }
                _ = sleep_until_some(commit_at) => {
                    next_commit = auto_commit.map(|interval| Instant::now() + interval);
                    let positions = self.consumer.finished_positions(&self.shared.owned());
                    committing = Some(Box::pin(self.commits.commit(positions)));
                }
                result = wait_some(&mut committing) => {
                    committing = None;
                    if let Err(error) = result {
                        // The beats find out whether the member is still in the group.
                        tracing::warn!(group = self.group(), error = %Chain(&error), "auto-commit failed; trying again at the next interval");
                    }
                }
                _ = tokio::time::sleep(CHECK_INTERVAL) => {
                    if self.last_answer.elapsed() > self.options.session_timeout && self.member_epoch > 0 {
                        shared.out_of_touch.send_if_modified(|out| !std::mem::replace(out, true));
                    }
                    if !self.awaiting_committed.is_empty() && Instant::now() >= next_offset_fetch {
                        let handover = self.handover();
                        handover.fetch_committed(&mut self.awaiting_committed).await;
                        next_offset_fetch = Instant::now() + self.backoff.delay(1);
                    }
                    if let Some(idle) = self.consumer.idle() {
                        if idle > self.options.max_poll_interval && self.member_epoch > 0 {
                            tracing::warn!(
                                group = self.group(),
                                ?idle,
                                "no poll within consumer.max_poll_interval_ms; leaving the group so \
                                 the partitions move to a live member (poll more often or raise it)"
                            );
                            if let Some(under_way) = reconciling.take() {
                                self.finish_before_leaving(under_way).await;
                            }
                            self.leave(false).await;
                            return Phase::Left;
                        }
                    }
                }
            }
        }
    }

    /// Books a finished reconciliation: the partitions it took are the application's now.
    fn reconciliation_done(&mut self, done: Reconciled) {
        self.awaiting_committed.extend(done.awaiting);
        if !done.taken.is_empty() {
            self.listener.on_assigned(&done.taken);
        }
    }

    /// Lets a reconciliation under way end before the member leaves, so a revoke the
    /// listener has heard of finishes (its commit is bounded by the stop's deadline) and
    /// leaving revokes only what is still owned: the listener hears of each partition once.
    /// Bounded by the stop's deadline less the time kept for leaving; past it, the
    /// reconciliation is dropped.
    async fn finish_before_leaving(&mut self, under_way: Pending<Reconciled>) {
        let bound = match self.shared.closing() {
            Some(deadline) => deadline
                .saturating_duration_since(Instant::now())
                .saturating_sub(LEAVE_ALLOWANCE),
            None => self.options.rebalance_timeout,
        };
        match tokio::time::timeout(bound, under_way).await {
            Ok(done) => self.reconciliation_done(done),
            Err(_) => tracing::warn!(
                group = self.group(),
                ?bound,
                "the reconciliation under way did not end in time; leaving without it"
            ),
        }
    }

    /// What to do next toward the broker's target, and whether it names topics this client
    /// has no name for yet.
    fn next_step(&mut self) -> (Step, bool) {
        let Some(target) = &self.target else {
            return (Step::default(), false);
        };
        let mut resolved = resolve(target, &self.ids);
        if !resolved.unknown.is_empty() {
            self.ids.learn(&self.client.metadata());
            resolved = resolve(target, &self.ids);
        }
        (
            step(&self.owned(), &resolved.partitions),
            !resolved.unknown.is_empty(),
        )
    }

    /// Whether the member owns exactly what the broker assigned it.
    fn reconciled(&self) -> bool {
        let Some(target) = &self.target else {
            return false;
        };
        let resolved = resolve(target, &self.ids);
        resolved.unknown.is_empty() && resolved.partitions == self.owned()
    }

    /// Gives up, then takes, on a future of its own (the beats go on meanwhile).
    fn reconcile(&self, step: Step) -> Pending<Reconciled> {
        let handover = self.handover();
        Box::pin(async move {
            handover.revoke(&step.revoke).await;
            handover.take(&step.acquire);
            let mut awaiting: BTreeSet<TopicPartition> = step.acquire.iter().cloned().collect();
            handover.fetch_committed(&mut awaiting).await;
            Reconciled {
                taken: step.acquire,
                awaiting,
            }
        })
    }

    /// A beat with the member's full state (see the module invariants).
    fn beat_request(&self) -> ConsumerGroupHeartbeatRequest {
        let joining = self.member_epoch == JOIN_EPOCH;
        let owned: Vec<TopicPartitions> = if joining {
            Vec::new()
        } else {
            owned_by_id(&self.owned(), &self.ids)
                .into_iter()
                .map(|(id, partitions)| {
                    TopicPartitions::default()
                        .with_topic_id(id)
                        .with_partitions(partitions.into_iter().collect())
                })
                .collect()
        };
        let topics = &self.options.topics;
        self.base_request(self.member_epoch)
            .with_rebalance_timeout_ms(millis(self.options.rebalance_timeout))
            .with_rack_id(self.options.rack.as_deref().map(str_bytes))
            .with_subscribed_topic_names((!topics.is_empty()).then(|| {
                topics
                    .iter()
                    .map(|topic| TopicName(str_bytes(topic)))
                    .collect()
            }))
            .with_subscribed_topic_regex(
                self.options
                    .topic_pattern
                    .as_ref()
                    .map(|pattern| str_bytes(pattern.as_str())),
            )
            .with_server_assignor(self.options.remote_assignor.as_deref().map(str_bytes))
            .with_topic_partitions(Some(owned))
    }

    /// The fields every beat and the leave carry.
    fn base_request(&self, member_epoch: i32) -> ConsumerGroupHeartbeatRequest {
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(str_bytes(self.group())))
            .with_member_id(str_bytes(&self.member_id))
            .with_member_epoch(member_epoch)
            .with_instance_id(self.options.instance_id.as_deref().map(str_bytes))
    }

    fn send_beat(
        &self,
        request: ConsumerGroupHeartbeatRequest,
    ) -> Pending<Result<ConsumerGroupHeartbeatResponse, GroupError>> {
        let client = self.client.clone();
        let shared = self.shared.clone();
        Box::pin(async move {
            let coordinator = shared.coordinator.get(&client, &shared.group).await?;
            // v0 was 3.7's preview, where the broker names the member: this member names
            // itself, which Kafka 4.0's v1 requires, so a broker without v1 is refused.
            let version = client
                .connection(coordinator, Purpose::Heartbeat)
                .await?
                .version_for::<ConsumerGroupHeartbeatRequest>(ApiKey::ConsumerGroupHeartbeat)
                .map_err(ClientError::from)?;
            if version < FIRST_CLIENT_NAMED_VERSION {
                return Err(no_consumer_protocol(&shared.group));
            }
            let options = SendOptions {
                version: Some(version),
                ..SendOptions::default()
            };
            let (_, response) = client
                .send_with(coordinator, Purpose::Heartbeat, &request, options)
                .await?;
            Ok(response)
        })
    }

    /// Takes in an answer (or a failure to get one).
    async fn on_answer(
        &mut self,
        answer: Result<ConsumerGroupHeartbeatResponse, GroupError>,
    ) -> Answer {
        let response = match answer {
            Ok(response) => response,
            Err(GroupError::Retry(Retry::Client(ClientError::Net(
                NetError::UnsupportedVersion { .. },
            )))) => {
                return Answer::End(Phase::Failed(no_consumer_protocol(self.group())));
            }
            Err(
                error @ GroupError::Fatal(Fatal::Refused {
                    error: ResponseError::UnsupportedVersion,
                    ..
                }),
            ) => return Answer::End(Phase::Failed(error)),
            Err(error) => return self.retry_after(error),
        };
        if let Some(error) = ResponseError::try_from_code(response.error_code) {
            let message = response
                .error_message
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default();
            return self.on_refusal(error, &message);
        }
        self.failures = 0;
        self.last_answer = Instant::now();
        self.shared
            .out_of_touch
            .send_if_modified(|out| std::mem::replace(out, false));
        if let Some(member_id) = &response.member_id {
            self.member_id = member_id.to_string();
        }
        if self.member_epoch != response.member_epoch {
            tracing::info!(group = self.group(), member_id = %self.member_id, member_epoch = response.member_epoch, "member epoch");
        }
        if response.heartbeat_interval_ms > 0 {
            self.cadence
                .set_interval(Duration::from_millis(response.heartbeat_interval_ms as u64));
        }
        if self.member_epoch == JOIN_EPOCH && response.member_epoch > 0 {
            self.cadence.joined(Instant::now());
        }
        self.member_epoch = response.member_epoch;
        {
            let mut identity = self.shared.identity.lock().expect("identity lock");
            identity.member_id = self.member_id.clone();
            identity.generation = self.member_epoch;
        }
        if let Some(assignment) = response.assignment {
            let target: ById = assignment
                .topic_partitions
                .into_iter()
                .map(|t| (t.topic_id, t.partitions.into_iter().collect()))
                .collect();
            self.target = Some(target);
        }
        Answer::Next(self.cadence.next(Instant::now()))
    }

    /// A beat the broker refused.
    fn on_refusal(&mut self, error: ResponseError, message: &str) -> Answer {
        let instance = self.options.instance_id.clone();
        match classify(
            "ConsumerGroupHeartbeat",
            self.group(),
            instance.as_deref(),
            error,
        ) {
            GroupError::Retry(Retry::MemberGone { .. }) => {
                tracing::warn!(group = self.group(), error = %Chain(&error), message, "fenced: partitions lost; joining again");
                self.failures += 1;
                self.lose_all();
                self.member_epoch = JOIN_EPOCH;
                Answer::Fenced
            }
            GroupError::Fatal(Fatal::Refused {
                api,
                group,
                error,
                hint,
                ..
            }) => {
                // The broker's words go to the user with ours: they say which field was
                // invalid, which assignors exist.
                let detail = (!message.is_empty()).then(|| message.to_string());
                Answer::End(Phase::Failed(GroupError::Fatal(Fatal::Refused {
                    api,
                    group,
                    error,
                    hint,
                    detail,
                })))
            }
            fenced @ GroupError::Fatal(Fatal::Fenced { .. }) => Answer::End(Phase::Failed(fenced)),
            other => {
                if !message.is_empty() {
                    tracing::debug!(group = self.group(), broker_says = message);
                }
                self.retry_after(other)
            }
        }
    }

    /// A beat that failed in a way that heals: the next one after a backoff. The first
    /// failure in a row is a warning, the rest are debug lines (a coordinator moving or an
    /// instance id waiting for its old session can take many tries).
    fn retry_after(&mut self, error: GroupError) -> Answer {
        if error.coordinator_lost() {
            self.shared.coordinator.forget();
        }
        self.failures += 1;
        let delay = self
            .backoff
            .delay(self.failures)
            .min(self.cadence.interval());
        let unreleased = matches!(
            error,
            GroupError::Retry(Retry::Transient {
                error: ResponseError::UnreleasedInstanceId,
                ..
            })
        );
        if self.failures > 1 {
            tracing::debug!(group = self.group(), error = %Chain(&error), retry_in = ?delay, "heartbeat failed again; retrying");
        } else if unreleased {
            tracing::warn!(
                group = self.group(),
                instance_id = self.options.instance_id.as_deref().unwrap_or_default(),
                "the group still counts a member with this group_instance_id (a process that \
                 stopped without leaving, or another one running with the same id); retrying \
                 until its session ends"
            );
        } else {
            tracing::warn!(group = self.group(), error = %Chain(&error), retry_in = ?delay, "heartbeat failed; retrying");
        }
        Answer::Next(delay)
    }

    /// Every partition is gone, without a commit (fenced, failed).
    fn lose_all(&mut self) {
        self.handover().lose_all();
        self.awaiting_committed.clear();
        self.target = None;
        let mut identity = self.shared.identity.lock().expect("identity lock");
        identity.generation = -1;
    }

    /// Revokes everything (committing), then leaves: epoch -1, or -2 for a static member
    /// that stops (`stopping`), whose partitions then wait for it until the session
    /// timeout. Bounded by the stop's deadline.
    async fn leave(&mut self, stopping: bool) {
        if self.member_epoch > 0 {
            let owned: Vec<TopicPartition> = self.owned().into_iter().collect();
            self.handover().revoke(&owned).await;
        } else {
            self.lose_all();
        }
        self.awaiting_committed.clear();
        self.target = None;
        let leave_epoch = if stopping && self.options.instance_id.is_some() {
            STATIC_LEAVE_EPOCH
        } else {
            LEAVE_EPOCH
        };
        let bound = match self.shared.closing() {
            Some(deadline) => deadline
                .saturating_duration_since(Instant::now())
                .max(LEAVE_ALLOWANCE / 2),
            None => self.client.pool().options().connection.request_timeout,
        };
        let left =
            tokio::time::timeout(bound, self.send_beat(self.base_request(leave_epoch))).await;
        match left {
            Ok(Ok(response)) if response.error_code == 0 => {
                tracing::info!(group = self.group(), member_id = %self.member_id, member_epoch = leave_epoch, "left the group")
            }
            Ok(Ok(response)) => {
                let error = ResponseError::try_from_code(response.error_code);
                tracing::warn!(
                    group = self.group(),
                    ?error,
                    "leaving was refused; the session timeout will remove this member"
                )
            }
            Ok(Err(error)) => {
                tracing::warn!(group = self.group(), error = %Chain(&error), "leaving failed; the session timeout will remove this member")
            }
            Err(_) => {
                tracing::warn!(
                    group = self.group(),
                    ?bound,
                    "leaving not answered in time; the session timeout will remove this member"
                )
            }
        }
        self.member_epoch = JOIN_EPOCH;
        let mut identity = self.shared.identity.lock().expect("identity lock");
        identity.generation = -1;
    }

    async fn wait_for_poll(&mut self) -> Phase {
        if next_poll(&self.consumer, &self.shared).await {
            Phase::Active
        } else {
            Phase::Closing
        }
    }
}

/// What an answer means for the loop.
enum Answer {
    /// The next beat after this long.
    Next(Duration),
    /// The member was fenced and lost its partitions; it joins again.
    Fenced,
    End(Phase),
}

/// The first ConsumerGroupHeartbeat version where the member names itself (Kafka 4.0).
const FIRST_CLIENT_NAMED_VERSION: i16 = 1;

/// The refusal of a broker that does not speak the consumer protocol this member needs.
fn no_consumer_protocol(group: &str) -> GroupError {
    GroupError::Fatal(Fatal::Refused {
        api: "ConsumerGroupHeartbeat",
        group: group.to_string(),
        error: ResponseError::UnsupportedVersion,
        hint: NO_CONSUMER_PROTOCOL,
        detail: None,
    })
}

const NO_CONSUMER_PROTOCOL: &str = "The broker does not speak the consumer group protocol \
    (KIP-848: Apache Kafka 4.0 or later, with `consumer` in group.coordinator.rebalance.protocols). \
    Set consumer.group_protocol = \"classic\" (group.protocol=classic), or upgrade the brokers";

fn str_bytes(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}
