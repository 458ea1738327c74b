//! The membership task: one per group consumer, an explicit state machine.
//!
//! ```text
//!            ┌──────────── rebalance / coordinator moved / member gone ─────────────┐
//!            ▼                                                                      │
//!   Joining ──JoinGroup──► (leader: assign) ──SyncGroup──► apply ──► Stable ─heartbeat┘
//!      ▲                                        cooperative: revoked ─┘   │ no poll for
//!      └──────────────────── a poll after the member left ◄── Left ◄─────┘ max_poll_interval
//!   Any state: fenced / fatal error ──► Failed (the error reaches `poll`); close ──► leave.
//! ```
//!
//! Three tasks per member: this one (the phases), the [heartbeat](super::heartbeat) (started
//! on entering `Stable`, stopped on leaving it) and the [commit queue](super::commit_queue).
//!
//! While `Stable`, this task also follows the metadata (see [`super::subscription`]): it asks
//! the client for fresh metadata on the max-age cadence (the client's one refresh path, shared
//! with the fetcher) and looks at every new snapshot, whoever refreshed it. A member whose
//! topic pattern matches other topics, and a leader whose group's partition counts changed
//! since its assignment, go back to `Joining`. Heartbeats run on their own task meanwhile.
//!
//! Invariants:
//! - JoinGroup and SyncGroup use the coordinator's `Group` connection (they block for a whole
//!   rebalance), and so does this task's OffsetFetch between them (this task sends all three,
//!   one at a time, so it never waits behind a held commit); OffsetCommit and LeaveGroup use
//!   `Coordination`, heartbeats their own `Heartbeat` connection: a join in progress, a long
//!   poll or a held commit never delays a heartbeat, and nothing this task waits for delays
//!   one either.
//! - One JoinGroup carries every configured assignor, in preference order; each subscription
//!   names the owned partitions and the generation they were assigned in (KIP-792), -1 once
//!   they are lost or given up with the membership.
//! - Every commit this task makes (auto-commit, before a revoke, on leaving) covers finished
//!   positions only (see [`crate::fetch::delivery`]): records the application still has in
//!   hand are delivered again after a crash, never skipped. With auto-commit off this task
//!   commits nothing.
//! - A revoke runs in order: the partitions are paused, the listener hears `on_revoked` (an
//!   application committing by hand does it there), their finished positions are committed
//!   (auto-commit on) or the commits already queued are waited for (off), and only then do
//!   they leave the fetcher (eager: all, before rejoining; cooperative: only those that
//!   move). Lost partitions (the member was dropped from the group) are not committed: the
//!   generation is gone.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity as LeaveMember;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, GroupId, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::StrBytes;
use wasmkafka_policy::assign::{Group, MemberAssignment, PartitionInfo};

use crate::client::{Client, ClientError};
use crate::cluster::Metadata;
use crate::error_chain::Chain;
use crate::fetch::{Consumer, TopicPartition, TopicRefused};
use crate::net::{Backoff, Purpose, SendOptions};

use super::assignor::{assign_group, rebalance_protocol, Assignor, Builtin, RebalanceProtocol};
use super::commit_queue::CommitQueue;
use super::error::{classify, Fatal, GroupError, Retry};
use super::handover::Handover;
use super::heartbeat::{Heartbeat, News as HeartbeatNews};
use super::listener::RebalanceListener;
use super::offsets::{send_at_version, MemberIdentity};
use super::options::GroupOptions;
use super::protocol::{
    decode_assignment, decode_subscription, encode_assignment, encode_subscription,
};
use super::shared::GroupShared;
use super::stats::GroupStats;
use super::subscription::{subscribed_topics, Followed, RejoinReason};
use super::waits::{millis, next_poll, sleep_until_some, unless_closing, wait_some, Pending};

const PROTOCOL_TYPE: &str = "consumer";

/// How often the stable phase looks at the application's polls and at committed offsets
/// still to fetch.
const CHECK_INTERVAL: Duration = Duration::from_millis(200);

/// The auto-commit waiting for its answer.
type PendingCommit = Pending<Result<(), GroupError>>;
/// The max-age metadata refresh waiting for its answer.
type PendingRefresh = Pending<Result<(), ClientError>>;

enum Phase {
    Joining,
    Stable,
    /// Left the group because the user stopped polling; rejoin at the next poll.
    Left,
    Failed(GroupError),
    Closing,
}

pub struct Membership {
    pub client: Client,
    pub consumer: Arc<Consumer>,
    pub options: GroupOptions,
    pub assignors: Vec<Arc<dyn Assignor>>,
    pub listener: Arc<dyn RebalanceListener>,
    pub shared: Arc<GroupShared>,
    pub commits: CommitQueue,
    pub backoff: Backoff,
    /// Partitions whose committed offset could not be fetched yet.
    pub awaiting_committed: BTreeSet<TopicPartition>,
    pub failures: u32,
    /// The generation whose assignment the owned partitions come from (-1: none yet, or
    /// lost); the subscription carries it (KIP-792).
    pub owned_generation: i32,
    /// Partitions an eager join gave up, still named in its subscription until the next
    /// assignment (or a loss).
    pub given_up: BTreeSet<TopicPartition>,
    /// The topics of the last JoinGroup and, when this member led, the partition counts its
    /// assignment saw: what new metadata is compared with.
    pub followed: Followed,
    /// When the rebalance under way started (its first JoinGroup).
    pub rebalance_started: Option<Instant>,
    /// Heartbeats, from the SyncGroup answer until the next JoinGroup goes out: through
    /// the stable phase and through every revocation, so a slow commit before a revoke
    /// never costs the membership.
    pub heartbeat: Option<Heartbeat>,
    /// This member led the last round and held partitions back for a cooperative handover:
    /// it rejoins once its assignment is applied, so the follow-up round happens even when
    /// no owner asks for it.
    pub held_back: Vec<(String, i32)>,
    /// Topics of this member's own list the cluster refused (not authorized, invalid name),
    /// already reported to the user; one granted since is forgotten, so a new refusal is
    /// reported again.
    pub refused_topics: BTreeSet<String>,
}

impl Membership {
    fn protocol(&self) -> RebalanceProtocol {
        rebalance_protocol(&self.assignors)
    }

    fn group(&self) -> &str {
        &self.options.group_id
    }

    fn identity(&self) -> MemberIdentity {
        self.shared.identity()
    }

    fn owned(&self) -> BTreeSet<TopicPartition> {
        self.shared.owned.lock().expect("owned lock").clone()
    }

    /// The topics to join with: the explicit ones and, with a pattern, the matching topics
    /// of an answer for every topic.
    async fn subscription_topics(&self) -> Result<Vec<String>, GroupError> {
        let Some(pattern) = &self.options.topic_pattern else {
            return Ok(self.options.topics.clone());
        };
        let metadata = self.client.fresh_metadata().await?;
        let topics = subscribed_topics(&self.options.topics, Some(pattern), &metadata);
        tracing::debug!(group = self.group(), %pattern, ?topics, "topics matching the pattern");
        Ok(topics)
    }

    /// Tells the user, once each, about topics of this member's own list that the cluster
    /// refuses to it: no leader assigns them, so nothing else would say why their records
    /// never come. `poll` returns each refusal once; the other topics go on. The lookup names
    /// the topics: an answer for every topic leaves out those a client may not describe.
    async fn report_refused_topics(&mut self) {
        let topics = &self.options.topics;
        if topics.is_empty() {
            return;
        }
        let metadata = match self.client.refresh_topics(topics).await {
            Ok(metadata) => metadata,
            Err(error) => {
                tracing::debug!(group = self.group(), error = %Chain(&error), "cannot look the subscribed topics up; the next round tries again");
                return;
            }
        };
        for topic in topics {
            match TopicRefused::in_metadata(&metadata, topic) {
                Some(refused) => {
                    if self.refused_topics.insert(topic.clone()) {
                        tracing::error!(group = self.group(), %refused, "a subscribed topic is refused; the others go on");
                        self.consumer.report_refused_topic(refused);
                    }
                }
                None => {
                    self.refused_topics.remove(topic);
                }
            }
        }
    }

    /// Whether `metadata` means this member must rejoin (see [`super::subscription`]).
    fn rejoin_reason(&self, metadata: &Metadata) -> Option<RejoinReason> {
        self.followed.rejoin_reason(
            &self.options.topics,
            self.options.topic_pattern.as_ref(),
            metadata,
        )
    }

    /// When the stable phase next asks for fresh metadata: when the last answer for every
    /// topic reaches the max age, and never sooner than the min age from now.
    fn next_metadata_check(&self, metadata: &Metadata) -> Instant {
        let ages = self.client.metadata_options();
        let now = Instant::now();
        let due = metadata
            .all_topics_fetched_at
            .map_or(now, |at| at + ages.max_age);
        due.max(now + ages.min_age)
    }

    pub async fn run(mut self) {
        let mut phase = Phase::Joining;
        loop {
            // A stop asked for in any phase ends in the leave, never in another round.
            if self.shared.closing().is_some() && !matches!(phase, Phase::Failed(_)) {
                phase = Phase::Closing;
            }
            phase = match phase {
                Phase::Joining => self.join().await,
                Phase::Stable => self.stable().await,
                Phase::Left => self.wait_for_poll().await,
                Phase::Failed(error) => {
                    tracing::error!(group = self.group(), error = %Chain(&error), "group consumer stopped");
                    self.lose_all();
                    self.shared.fatal.send_replace(Some(error));
                    return;
                }
                Phase::Closing => {
                    self.leave().await;
                    return;
                }
            };
        }
    }

    /// Waits after a failure (exponential, with jitter); returns false if closing.
    async fn pause_after_failure(&mut self) -> bool {
        self.failures += 1;
        let delay = self.backoff.delay(self.failures);
        unless_closing(&self.shared, tokio::time::sleep(delay))
            .await
            .is_some()
    }

    async fn coordinator(&self) -> Result<i32, GroupError> {
        self.shared
            .coordinator
            .get(&self.client, self.group())
            .await
    }

    fn forget_coordinator(&self) {
        self.shared.coordinator.forget();
    }

    /// Decides the next phase after a failed request.
    async fn after_error(&mut self, error: GroupError) -> Phase {
        match error {
            GroupError::Fatal(Fatal::Fenced { .. }) | GroupError::Fatal(Fatal::Refused { .. }) => {
                self.heartbeat = None;
                Phase::Failed(error)
            }
            GroupError::Retry(Retry::MemberGone { .. }) => {
                self.heartbeat = None;
                tracing::warn!(group = self.group(), error = %Chain(&error), "partitions lost");
                self.lose_all();
                let mut identity = self.shared.identity.lock().expect("identity lock");
                if matches!(
                    error,
                    GroupError::Retry(Retry::MemberGone {
                        error: ResponseError::UnknownMemberId,
                        ..
                    })
                ) {
                    identity.member_id.clear();
                }
                identity.generation = -1;
                Phase::Joining
            }
            GroupError::Retry(Retry::Rebalancing { .. }) => Phase::Joining,
            other => {
                if matches!(
                    other,
                    GroupError::Retry(Retry::CoordinatorMoved { .. })
                        | GroupError::Retry(Retry::Client(_))
                ) {
                    self.forget_coordinator();
                }
                tracing::warn!(group = self.group(), error = %other, "group request failed; retrying");
                if self.pause_after_failure().await {
                    Phase::Joining
                } else {
                    Phase::Closing
                }
            }
        }
    }

    /// One round: JoinGroup, (leader) assign, SyncGroup, apply. Every wait for the
    /// coordinator gives way to a stop (the JoinGroup barrier can hold for the longest
    /// rebalance timeout in the group); the leave then goes out on the `Coordination`
    /// connection, never queued behind the JoinGroup the coordinator still holds.
    async fn join(&mut self) -> Phase {
        self.rebalance_started.get_or_insert_with(Instant::now);
        // Only this round's leadership may ask for a follow-up (a round that failed after
        // its assignment leaves nothing behind).
        self.held_back.clear();
        let shared = self.shared.clone();
        let coordinator = match unless_closing(&shared, self.coordinator()).await {
            None => return Phase::Closing,
            Some(Ok(id)) => id,
            Some(Err(error)) => return self.after_error(error).await,
        };
        match unless_closing(&shared, self.subscription_topics()).await {
            None => return Phase::Closing,
            Some(Ok(topics)) => self.followed.joined_with(topics),
            Some(Err(error)) => return self.after_error(error).await,
        }
        if unless_closing(&shared, self.report_refused_topics())
            .await
            .is_none()
        {
            return Phase::Closing;
        }
        if self.protocol() == RebalanceProtocol::Eager {
            // Eager: give everything up (committing it) before the group re-forms; the
            // heartbeat goes on meanwhile.
            let owned = self.owned();
            self.given_up.extend(owned.iter().cloned());
            let owned: Vec<TopicPartition> = owned.into_iter().collect();
            self.revoke(&owned).await;
        }
        if shared.closing().is_some() {
            return Phase::Closing;
        }
        // From here the JoinGroup stands for this member's liveness.
        self.heartbeat = None;
        let response = match unless_closing(&shared, self.send_join(coordinator)).await {
            None => return Phase::Closing,
            Some(Ok(response)) => response,
            Some(Err(error)) => return self.after_error(error).await,
        };
        match ResponseError::try_from_code(response.error_code) {
            None => {}
            Some(ResponseError::MemberIdRequired) => {
                // KIP-394: the broker hands out the id; join again with it.
                self.shared
                    .identity
                    .lock()
                    .expect("identity lock")
                    .member_id = response.member_id.to_string();
                return Phase::Joining;
            }
            Some(error) => {
                let instance = self.options.instance_id.clone();
                return self
                    .after_error(classify(
                        "JoinGroup",
                        self.group(),
                        instance.as_deref(),
                        error,
                    ))
                    .await;
            }
        }
        let member_id = response.member_id.to_string();
        let generation = response.generation_id;
        {
            let mut identity = self.shared.identity.lock().expect("identity lock");
            identity.member_id = member_id.clone();
            identity.generation = generation;
        }
        let protocol_name = response
            .protocol_name
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_default();
        let leader = response.leader.as_str() == member_id;
        tracing::info!(group = self.group(), %member_id, generation, %protocol_name, leader, "joined the group");
        let assignments = if leader {
            match unless_closing(&shared, self.lead(&response, &protocol_name)).await {
                None => return Phase::Closing,
                Some(Ok(assignments)) => assignments,
                Some(Err(error)) => return self.after_error(error).await,
            }
        } else {
            Vec::new()
        };
        let synced = self.send_sync(coordinator, &protocol_name, assignments);
        let assignment = match unless_closing(&shared, synced).await {
            None => return Phase::Closing,
            Some(Ok(assignment)) => assignment,
            Some(Err(error)) => return self.after_error(error).await,
        };
        self.failures = 0;
        self.apply(&protocol_name, assignment, generation).await
    }

    /// JoinGroup and SyncGroup wait for a whole rebalance: they get the rebalance timeout on
    /// top of the request timeout, on the coordinator's `Group` connection.
    async fn send_on_group_connection<R: kafka_protocol::protocol::Request>(
        &self,
        coordinator: i32,
        request: &R,
    ) -> Result<R::Response, GroupError> {
        let timeout = self.options.rebalance_timeout
            + self.client.pool().options().connection.request_timeout;
        let (_, response) = self
            .client
            .send_with(
                coordinator,
                Purpose::Group,
                request,
                SendOptions {
                    timeout: Some(timeout),
                    ..SendOptions::default()
                },
            )
            .await?;
        Ok(response)
    }

    async fn send_join(&mut self, coordinator: i32) -> Result<JoinGroupResponse, GroupError> {
        let identity = self.identity();
        let held = self.owned();
        // Each assignor's user data, off the async workers like every plugin call.
        let assignors = self.assignors.clone();
        let topics = self.followed.topics().to_vec();
        let group = self.group().to_string();
        let user_data: Vec<Vec<u8>> = tokio::task::spawn_blocking(move || {
            assignors
                .iter()
                .map(|a| bounded_user_data(&group, a.name(), a.user_data(&topics)))
                .collect()
        })
        .await
        .unwrap_or_else(|_| vec![Vec::new(); self.assignors.len()]);
        let protocols = self
            .assignors
            .iter()
            .zip(&user_data)
            .map(|(assignor, user_data)| {
                let claimed = claimed_partitions(assignor.protocol(), &held, &self.given_up);
                let generation = if claimed.is_empty() {
                    -1
                } else {
                    self.owned_generation
                };
                JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_string(assignor.name().to_string()))
                    .with_metadata(subscription(
                        &self.options,
                        self.followed.topics(),
                        user_data,
                        &claimed,
                        generation,
                    ))
            })
            .collect();
        let request = JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.group().to_string())))
            .with_session_timeout_ms(millis(self.options.session_timeout))
            .with_rebalance_timeout_ms(millis(self.options.rebalance_timeout))
            .with_member_id(StrBytes::from_string(identity.member_id.clone()))
            .with_group_instance_id(self.options.instance_id.clone().map(StrBytes::from_string))
            .with_protocol_type(StrBytes::from_static_str(PROTOCOL_TYPE))
            .with_protocols(protocols);
        let response = self.send_on_group_connection(coordinator, &request).await?;
        Ok(response)
    }

    /// The leader's part: run the chosen assignor over every member, check its answer, and
    /// fall back to `range` if it fails.
    async fn lead(
        &mut self,
        response: &JoinGroupResponse,
        protocol_name: &str,
    ) -> Result<Vec<SyncGroupRequestAssignment>, GroupError> {
        let mut members = Vec::new();
        for member in &response.members {
            match decode_subscription(
                member.member_id.as_str(),
                member.group_instance_id.as_ref().map(|i| i.as_str()),
                &member.metadata,
            ) {
                Ok(subscription) => members.push(subscription),
                // One member's garbage must not stop the group forming: that member gets
                // nothing this round, the others share its topics.
                Err(error) => tracing::error!(
                    group = self.group(),
                    member = %member.member_id.as_str(),
                    error = %Chain(&error),
                    "cannot read this member's subscription; it gets no partitions this round"
                ),
            }
        }
        let topics: BTreeSet<String> = members.iter().flat_map(|m| m.topics.clone()).collect();
        let topics: Vec<String> = topics.into_iter().collect();
        let metadata = self.client.refresh_topics(&topics).await?;
        let counts = metadata.partition_counts(&topics);
        self.followed
            .assigned(topics.iter().cloned().collect(), counts.clone());
        let mut group = Group {
            members,
            topics: BTreeMap::new(),
            settings: BTreeMap::new(),
        };
        for topic in &topics {
            if let Some(info) = metadata
                .topics
                .get(topic)
                .filter(|_| counts.contains_key(topic))
            {
                group.topics.insert(
                    topic.clone(),
                    info.partitions
                        .values()
                        .map(|p| PartitionInfo {
                            partition: p.partition,
                            racks: metadata.racks_of(&p.replicas),
                        })
                        .collect(),
                );
            } else if let Some(error) = metadata.refusal(topic) {
                tracing::warn!(group = self.group(), %topic, error = %Chain(&error), "a member subscribes to a topic the cluster refuses to this client (the leader); nothing to assign for it");
            } else {
                tracing::warn!(group = self.group(), %topic, "subscribed topic does not exist; nothing to assign for it");
            }
        }
        let chosen = self
            .assignors
            .iter()
            .find(|a| a.name() == protocol_name)
            .cloned()
            .unwrap_or_else(|| Builtin::Range.into_assignor());
        // Off the async workers: a Wasm assignor may take up to its deadline.
        let fallback = self.options.fallback_assignor;
        let running = chosen.clone();
        let assigned =
            tokio::task::spawn_blocking(move || assign_group(running.as_ref(), fallback, &group))
                .await
                .map_err(|failed| {
                    GroupError::Retry(Retry::Assignor(super::assignor::AssignorError {
                        assignor: chosen.name().to_string(),
                        message: format!("the assignor call did not finish: {failed}"),
                    }))
                })?;
        if let Some(error) = &assigned.fell_back {
            let fallback = self.options.fallback_assignor.name();
            tracing::error!(group = self.group(), error = %Chain(&error), fallback, "the assignor failed; using the fallback");
        }
        if !assigned.unassigned.is_empty() {
            tracing::info!(group = self.group(), held_back = ?assigned.unassigned, "partitions held back until their owners revoke them; a follow-up round hands them out");
        }
        self.held_back = assigned.unassigned;
        let assignment = assigned.assignment;
        Ok(assignment
            .iter()
            .map(|(member_id, share)| {
                SyncGroupRequestAssignment::default()
                    .with_member_id(StrBytes::from_string(member_id.clone()))
                    .with_assignment(encode_assignment(share))
            })
            .collect())
    }

    async fn send_sync(
        &mut self,
        coordinator: i32,
        protocol_name: &str,
        assignments: Vec<SyncGroupRequestAssignment>,
    ) -> Result<MemberAssignment, GroupError> {
        let identity = self.identity();
        let request = SyncGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.group().to_string())))
            .with_generation_id(identity.generation)
            .with_member_id(StrBytes::from_string(identity.member_id.clone()))
            .with_group_instance_id(self.options.instance_id.clone().map(StrBytes::from_string))
            .with_protocol_type(Some(StrBytes::from_static_str(PROTOCOL_TYPE)))
            .with_protocol_name(Some(StrBytes::from_string(protocol_name.to_string())))
            .with_assignments(assignments);
        let response = self.send_on_group_connection(coordinator, &request).await?;
        if let Some(error) = ResponseError::try_from_code(response.error_code) {
            return Err(classify(
                "SyncGroup",
                self.group(),
                self.options.instance_id.as_deref(),
                error,
            ));
        }
        Ok(decode_assignment(&response.assignment)?)
    }

    /// Takes in a new assignment: cooperative members revoke what moved away (and rejoin);
    /// new partitions start at their committed offsets.
    async fn apply(
        &mut self,
        protocol_name: &str,
        assignment: MemberAssignment,
        generation: i32,
    ) -> Phase {
        // A member of this generation heartbeats from now on, revocations included.
        self.start_heartbeat();
        let (assigned, unsubscribed) = split_by_subscription(&assignment, self.followed.topics());
        if !unsubscribed.is_empty() {
            tracing::warn!(group = self.group(), ?unsubscribed, "the leader assigned partitions of topics this member does not subscribe to; ignoring them and rejoining");
        }
        let owned = self.owned();
        let revoked: Vec<TopicPartition> = owned.difference(&assigned).cloned().collect();
        let added: Vec<TopicPartition> = assigned.difference(&owned).cloned().collect();
        let held_back = std::mem::take(&mut self.held_back);
        if !held_back.is_empty() {
            tracing::info!(group = self.group(), ?held_back, "rejoining after this round: this leader held partitions back for a cooperative handover");
        }
        let mut rejoin = !unsubscribed.is_empty() || !held_back.is_empty();
        if !revoked.is_empty() {
            // Only cooperative members still own partitions here (eager ones gave all up).
            self.revoke(&revoked).await;
            rejoin = true;
        }
        if !added.is_empty() {
            self.handover().take(&added);
            self.awaiting_committed.extend(added.iter().cloned());
            self.resolve_committed().await;
            self.listener.on_assigned(&added);
        }
        if let Some(assignor) = self.assignors.iter().find(|a| a.name() == protocol_name) {
            // Off the async workers, like `assign`.
            let assignor = assignor.clone();
            let share = assignment.clone();
            let _ = tokio::task::spawn_blocking(move || assignor.on_assignment(&share, generation))
                .await;
        }
        self.owned_generation = generation;
        self.given_up.clear();
        self.shared.generations.send_replace(generation);
        tracing::info!(
            group = self.group(),
            generation,
            assigned = assigned.len(),
            added = added.len(),
            revoked = revoked.len(),
            "assignment applied"
        );
        if rejoin {
            Phase::Joining
        } else {
            if let Some(started) = self.rebalance_started.take() {
                self.stats().rebalanced(started.elapsed());
            }
            Phase::Stable
        }
    }

    /// Starts heartbeating unless it already runs.
    fn start_heartbeat(&mut self) {
        if self.heartbeat.is_none() {
            self.heartbeat = Some(Heartbeat::start(
                self.client.clone(),
                self.shared.clone(),
                self.options.heartbeat_interval,
                self.options.session_timeout,
                self.backoff,
                self.protocol() == RebalanceProtocol::Cooperative,
            ));
        }
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, GroupStats> {
        self.shared.stats.lock().expect("group stats lock")
    }

    /// Fetches committed offsets for partitions still waiting for them.
    async fn resolve_committed(&mut self) {
        let handover = self.handover();
        handover.fetch_committed(&mut self.awaiting_committed).await;
    }

    /// The handles that move partitions in and out.
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

    async fn stable(&mut self) -> Phase {
        let mut metadata_updates = self.client.metadata_updates();
        let snapshot = metadata_updates.borrow_and_update().clone();
        // The metadata may have moved on while the group was forming.
        if let Some(reason) = self.rejoin_reason(&snapshot) {
            tracing::info!(group = self.group(), %reason, "rejoining the group");
            return Phase::Joining;
        }
        let mut refresh_at = Some(self.next_metadata_check(&snapshot));
        let mut refreshing: Option<PendingRefresh> = None;
        self.start_heartbeat();
        let shared = self.shared.clone();
        let auto_commit = self.options.auto_commit_interval;
        let mut next_commit = auto_commit.map(|interval| Instant::now() + interval);
        let mut committing: Option<PendingCommit> = None;
        let mut next_offset_fetch = Instant::now();
        let mut offset_fetch_failures = 0;
        loop {
            // One auto-commit at a time: the next interval starts when it is answered.
            let commit_at = next_commit.filter(|_| committing.is_none());
            tokio::select! {
                _ = shared.closed() => return Phase::Closing,
                news = heartbeat_news(&mut self.heartbeat) => match news {
                    HeartbeatNews::Ended(error) => return self.after_error(error).await,
                    HeartbeatNews::Rebalancing => {
                        tracing::info!(group = self.group(), "the group is rebalancing; rejoining");
                        return Phase::Joining;
                    }
                },
                _ = sleep_until_some(commit_at) => {
                    next_commit = auto_commit.map(|interval| Instant::now() + interval);
                    let positions = self.consumer.finished_positions(&self.shared.owned());
                    committing = Some(Box::pin(self.commits.commit(positions)));
                }
                changed = metadata_updates.changed() => {
                    // The sender lives as long as the client this task holds.
                    debug_assert!(changed.is_ok(), "the metadata cache outlives its client");
                    let snapshot = metadata_updates.borrow_and_update().clone();
                    if let Some(reason) = self.rejoin_reason(&snapshot) {
                        tracing::info!(group = self.group(), %reason, "rejoining the group");
                        return Phase::Joining;
                    }
                    if refreshing.is_none() {
                        refresh_at = Some(self.next_metadata_check(&snapshot));
                    }
                }
                _ = sleep_until_some(refresh_at.filter(|_| refreshing.is_none())) => {
                    let client = self.client.clone();
                    refreshing = Some(Box::pin(async move {
                        client.fresh_metadata().await.map(|_| ())
                    }));
                }
                result = wait_some(&mut refreshing) => {
                    refreshing = None;
                    if let Err(error) = result {
                        tracing::warn!(group = self.group(), error = %Chain(&error), "metadata refresh failed; trying again");
                    }
                    refresh_at = Some(self.next_metadata_check(&self.client.metadata()));
                }
                result = wait_some(&mut committing) => {
                    committing = None;
                    match result {
                        Ok(()) => {}
                        // Only what concerns the membership changes the phase; any other
                        // failure (a partition refused, an unexpected broker error) is
                        // counted, logged and tried again at the next interval.
                        Err(error) if error.ends_membership() => return self.after_error(error).await,
                        Err(error) => {
                            tracing::warn!(group = self.group(), error = %Chain(&error), "auto-commit failed; trying again at the next interval")
                        }
                    }
                }
                _ = tokio::time::sleep(CHECK_INTERVAL) => {
                    if !self.awaiting_committed.is_empty() && Instant::now() >= next_offset_fetch {
                        self.resolve_committed().await;
                        offset_fetch_failures += 1;
                        next_offset_fetch = Instant::now() + self.backoff.delay(offset_fetch_failures);
                    }
                    if let Some(idle) = self.consumer.idle() {
                        if idle > self.options.max_poll_interval {
                            tracing::warn!(
                                group = self.group(),
                                ?idle,
                                "no poll within consumer.max_poll_interval_ms; leaving the group so \
                                 the partitions move to a live member (poll more often or raise it)"
                            );
                            self.leave().await;
                            return Phase::Left;
                        }
                    }
                }
            }
        }
    }

    /// Takes partitions away in order (see [`Handover::revoke`]).
    async fn revoke(&mut self, partitions: &[TopicPartition]) {
        self.handover().revoke(partitions).await;
        for tp in partitions {
            self.awaiting_committed.remove(tp);
        }
    }

    /// The member is no longer in the group: its partitions are gone, without a commit.
    fn lose_all(&mut self) {
        self.handover().lose_all();
        self.awaiting_committed.clear();
        self.owned_generation = -1;
        self.given_up.clear();
    }

    /// Commits, revokes everything and leaves (a static member does not send LeaveGroup: its
    /// partitions wait for it until the session times out).
    ///
    /// A member id is all LeaveGroup needs: a member whose JoinGroup the coordinator still
    /// holds (no generation yet) leaves too, so the round goes on without it.
    async fn leave(&mut self) {
        if self.identity().generation < 0 {
            self.lose_all();
        } else {
            let owned: Vec<TopicPartition> = self.owned().into_iter().collect();
            self.revoke(&owned).await;
        }
        self.heartbeat = None;
        let identity = self.identity();
        if self.options.instance_id.is_none() && !identity.member_id.is_empty() {
            let left = match self.coordinator().await {
                Ok(coordinator) => self.send_leave(coordinator, &identity.member_id).await,
                Err(error) => Err(error),
            };
            match left {
                Ok(()) => {
                    tracing::info!(group = self.group(), member_id = %identity.member_id, "left the group")
                }
                Err(error) => {
                    tracing::warn!(group = self.group(), error = %Chain(&error), "LeaveGroup failed; the session timeout will remove this member")
                }
            }
            let mut identity = self.shared.identity.lock().expect("identity lock");
            identity.member_id.clear();
            identity.generation = -1;
        }
        self.owned_generation = -1;
        self.given_up.clear();
    }

    /// LeaveGroup: v0-2 name the member in `member_id`, v3+ in a `members` list.
    async fn send_leave(&self, coordinator: i32, member_id: &str) -> Result<(), GroupError> {
        let connection = self
            .client
            .connection(coordinator, Purpose::Coordination)
            .await?;
        let version = connection
            .version_for::<LeaveGroupRequest>(ApiKey::LeaveGroup)
            .map_err(ClientError::from)?;
        let request = LeaveGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.group().to_string())));
        let request = if version >= 3 {
            request
                .with_members(vec![LeaveMember::default()
                    .with_member_id(StrBytes::from_string(member_id.to_string()))])
        } else {
            request.with_member_id(StrBytes::from_string(member_id.to_string()))
        };
        let response = send_at_version(&self.client, coordinator, &request, version).await?;
        match ResponseError::try_from_code(response.error_code) {
            None => Ok(()),
            Some(error) => Err(classify("LeaveGroup", self.group(), None, error)),
        }
    }

    async fn wait_for_poll(&mut self) -> Phase {
        if next_poll(&self.consumer, &self.shared).await {
            Phase::Joining
        } else {
            Phase::Closing
        }
    }
}

/// An assignment's partitions of the topics this member subscribes to, and the others.
fn split_by_subscription(
    assignment: &MemberAssignment,
    topics: &[String],
) -> (BTreeSet<TopicPartition>, Vec<TopicPartition>) {
    let mut subscribed = BTreeSet::new();
    let mut others = Vec::new();
    for (topic, partition) in assignment.iter() {
        let tp = TopicPartition::new(topic, partition);
        if topics.iter().any(|t| t == topic) {
            subscribed.insert(tp);
        } else {
            others.push(tp);
        }
    }
    (subscribed, others)
}

/// The heartbeat's news, or never while none runs.
async fn heartbeat_news(heartbeat: &mut Option<Heartbeat>) -> HeartbeatNews {
    match heartbeat {
        Some(heartbeat) => heartbeat.news().await,
        None => std::future::pending().await,
    }
}

/// The partitions one assignor's subscription names as owned.
///
/// A cooperative assignor's leader holds back every partition a member names until that
/// member revokes it and rejoins, so a cooperative subscription names only what the member
/// still holds: an eager member that gave everything up names nothing (as Java's does),
/// or the leader would wait for a follow-up that member never asks for. An eager
/// assignor's leader holds nothing back, so its subscription also names what an eager join
/// just gave up: `sticky` keeps those partitions where they were (Java's eager
/// StickyAssignor carries the same in its user data).
fn claimed_partitions(
    protocol: RebalanceProtocol,
    held: &BTreeSet<TopicPartition>,
    given_up: &BTreeSet<TopicPartition>,
) -> BTreeSet<TopicPartition> {
    match protocol {
        RebalanceProtocol::Cooperative => held.clone(),
        RebalanceProtocol::Eager => held.union(given_up).cloned().collect(),
    }
}

/// The most user data one assignor may put in a subscription: the leader receives every
/// member's, and the coordinator stores them all.
pub const MAX_USER_DATA_BYTES: usize = 64 * 1024;

/// `data`, or nothing (with an error in the log) when it is over [`MAX_USER_DATA_BYTES`].
fn bounded_user_data(group: &str, assignor: &str, data: Vec<u8>) -> Vec<u8> {
    if data.len() <= MAX_USER_DATA_BYTES {
        return data;
    }
    tracing::error!(
        group,
        assignor,
        bytes = data.len(),
        limit = MAX_USER_DATA_BYTES,
        "the assignor's user data is too large; joining without it"
    );
    Vec::new()
}

/// One assignor's subscription for JoinGroup: the topics, the assignor's user data, the
/// owned partitions with the generation they were assigned in (KIP-792; -1 when
/// `subscription_generation` is off) and the rack.
fn subscription(
    options: &GroupOptions,
    topics: &[String],
    user_data: &[u8],
    owned: &BTreeSet<TopicPartition>,
    owned_generation: i32,
) -> Bytes {
    let mut owned_by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for tp in owned {
        owned_by_topic
            .entry(tp.topic.to_string())
            .or_default()
            .push(tp.partition);
    }
    let generation = if options.subscription_generation {
        owned_generation
    } else {
        -1
    };
    encode_subscription(
        topics,
        user_data,
        &owned_by_topic,
        generation,
        options.rack.as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::protocol::decode_subscription;

    #[test]
    fn the_subscription_carries_the_generation_of_the_owned_partitions() {
        let options = GroupOptions {
            rack: Some("r1".into()),
            ..GroupOptions::new("g", vec!["t".into(), "u".into()])
        };
        let owned = BTreeSet::from([
            TopicPartition::new("t", 2),
            TopicPartition::new("t", 0),
            TopicPartition::new("u", 1),
        ]);
        let bytes = subscription(&options, &options.topics, &[], &owned, 7);
        let member = decode_subscription("m", None, &bytes).unwrap();
        assert_eq!(member.topics, ["t", "u"]);
        assert_eq!(member.generation, 7);
        assert_eq!(
            member.owned,
            BTreeMap::from([("t".to_string(), vec![0, 2]), ("u".to_string(), vec![1])])
        );
        assert_eq!(member.rack.as_deref(), Some("r1"));
        // A member that owns nothing yet (or lost everything) says -1.
        let fresh = subscription(&options, &options.topics, &[], &BTreeSet::new(), -1);
        assert_eq!(
            decode_subscription("m", None, &fresh).unwrap().generation,
            -1
        );
    }

    #[test]
    fn the_compatibility_switch_leaves_the_generation_out() {
        let options = GroupOptions {
            subscription_generation: false,
            ..GroupOptions::new("g", vec!["t".into()])
        };
        let owned = BTreeSet::from([TopicPartition::new("t", 0)]);
        // Generations 3 and 4 encode the same bytes: rejoining without a change sends
        // identical metadata.
        let third = subscription(&options, &options.topics, &[], &owned, 3);
        let fourth = subscription(&options, &options.topics, &[], &owned, 4);
        assert_eq!(third, fourth);
        let member = decode_subscription("m", None, &third).unwrap();
        assert_eq!(member.generation, -1);
        assert_eq!(member.owned, BTreeMap::from([("t".to_string(), vec![0])]));
    }
}
