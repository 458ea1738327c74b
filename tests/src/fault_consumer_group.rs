//! A scripted KIP-848 group coordinator (`group.protocol = "consumer"`) for the fault broker:
//! one group whose members heartbeat with ConsumerGroupHeartbeat and commit with OffsetCommit
//! v9, committed offsets in memory, and error codes to answer on cue.
//!
//! What it does, as Apache Kafka 4.0 does it (simplified where a test does not care):
//! - FindCoordinator names node 1.
//! - ConsumerGroupHeartbeat checks the request as Kafka does (a member id from v1 on; a
//!   joining member names its rebalance timeout and subscription and owns nothing), then:
//!   epoch 0 joins (or rejoins under the same member id after a fence) at the next group
//!   epoch; -1 leaves, -2 leaves a static member; a positive epoch must be the member's
//!   current one or the one before it (a bump the member has not heard of yet), else
//!   FENCED_MEMBER_EPOCH; an unknown member gets UNKNOWN_MEMBER_ID. A static member whose
//!   instance id another member still holds gets UNRELEASED_INSTANCE_ID. Every answer that
//!   is not an error carries the member's assignment: every partition of the subscribed
//!   topics the cluster has (by topic id), for each member (the tests run one at a time).
//! - OffsetCommit: a member of the group must use v9 (UNSUPPORTED_VERSION below) and carry
//!   its current epoch: an older one gets STALE_MEMBER_EPOCH, a newer one
//!   FENCED_MEMBER_EPOCH, an unknown member UNKNOWN_MEMBER_ID. A commit with no member id
//!   and epoch -1 (an admin's) is taken.
//! - OffsetFetch answers the committed offsets.
//!
//! On cue: the next answers of an API with an error code (a heartbeat's also with an error
//! message), every heartbeat refused until told otherwise, an epoch bump, and partitions
//! withheld from the assignments (a revoke). Every heartbeat
//! and every commit is recorded with what it carried and what it was answered.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, OffsetCommitRequest,
    OffsetFetchRequest, OffsetFetchResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::fault_broker::{encode, uuid, FaultCluster, RequestContext, TopicId};
use crate::fault_coordinator::{
    find_coordinator_answer, offset_commit_answer, offset_fetch_answer,
};

/// The epoch a member joins (or rejoins) with.
pub const JOIN_EPOCH: i32 = 0;
/// The epoch a member leaves with.
pub const LEAVE_EPOCH: i32 = -1;
/// The epoch a static member leaves with (its partitions wait for it).
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// One ConsumerGroupHeartbeat as the coordinator saw it, and what it answered.
#[derive(Debug, Clone)]
pub struct SeenHeartbeat {
    pub at: Instant,
    pub version: i16,
    pub member_id: String,
    pub epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// What the member says it owns, by topic id (`None`: the field was null).
    pub owned: Option<BTreeMap<TopicId, Vec<i32>>>,
    /// The error answered (`None`: accepted).
    pub error: Option<ResponseError>,
    /// The member epoch answered (0 with an error, as Kafka).
    pub answered_epoch: i32,
}

/// One OffsetCommit as the coordinator saw it, and what it answered.
#[derive(Debug, Clone)]
pub struct SeenCommit {
    pub version: i16,
    pub member_id: String,
    /// `generation_id_or_member_epoch`.
    pub epoch: i32,
    pub instance_id: Option<String>,
    /// (topic, partition, offset) as asked.
    pub offsets: Vec<(String, i32, i64)>,
    /// The error answered for every partition (`None`: committed).
    pub error: Option<ResponseError>,
    /// How many heartbeats the coordinator had seen when the commit arrived (orders commits
    /// against heartbeats).
    pub after_heartbeats: usize,
}

#[derive(Debug, Clone)]
struct Member {
    epoch: i32,
    /// The epoch before the last bump: still accepted from a member that has not heard yet.
    previous_epoch: i32,
    instance_id: Option<String>,
    subscribed: Vec<String>,
}

#[derive(Debug)]
struct GroupState {
    group_epoch: i32,
    heartbeat_interval: Duration,
    members: BTreeMap<String, Member>,
    committed: BTreeMap<(String, i32), i64>,
    /// Answered once each, in order, by the API they are for.
    errors: VecDeque<(ApiKey, ResponseError, Option<String>)>,
    /// Every heartbeat gets this until [`ScriptedConsumerCoordinator::accept_heartbeats`].
    refuse_heartbeats: Option<(ResponseError, Option<String>)>,
    heartbeats: Vec<SeenHeartbeat>,
    commits: Vec<SeenCommit>,
    find_coordinator: u32,
    offset_fetches: u32,
    /// Partitions (by topic name) the assignments leave out, as a rebalance that moves them
    /// to another member does.
    withheld: BTreeMap<String, Vec<i32>>,
}

/// The coordinator; cloning shares it.
#[derive(Clone)]
pub struct ScriptedConsumerCoordinator {
    state: Arc<Mutex<GroupState>>,
}

impl ScriptedConsumerCoordinator {
    /// Answers FindCoordinator, ConsumerGroupHeartbeat, OffsetFetch and OffsetCommit on every
    /// node (node 1 is the coordinator), and announces what a Kafka 4.0 broker does:
    /// ConsumerGroupHeartbeat 0-1 and OffsetCommit up to v9. A test that plays an older
    /// broker withdraws ConsumerGroupHeartbeat after this ([`FaultCluster::withdraw_api`]).
    pub fn install(cluster: &FaultCluster) -> ScriptedConsumerCoordinator {
        let coordinator = ScriptedConsumerCoordinator {
            state: Arc::new(Mutex::new(GroupState {
                group_epoch: 0,
                heartbeat_interval: Duration::from_millis(50),
                members: BTreeMap::new(),
                committed: BTreeMap::new(),
                errors: VecDeque::new(),
                refuse_heartbeats: None,
                heartbeats: Vec::new(),
                commits: Vec::new(),
                find_coordinator: 0,
                offset_fetches: 0,
                withheld: BTreeMap::new(),
            })),
        };
        cluster.announce_api(ApiKey::ConsumerGroupHeartbeat, 0, 1);
        let commit_min = cluster
            .api_versions()
            .iter()
            .find(|(key, _, _)| *key == ApiKey::OffsetCommit as i16)
            .map_or(2, |(_, min, _)| *min);
        cluster.announce_api(ApiKey::OffsetCommit, commit_min, 9);
        let port = cluster.port(1);
        let c = coordinator.clone();
        cluster.respond_with(ApiKey::FindCoordinator, move |ctx| c.find(ctx, port));
        cluster.respond_through(
            &coordinator,
            &[
                (ApiKey::ConsumerGroupHeartbeat, Self::heartbeat),
                (ApiKey::OffsetFetch, Self::offset_fetch),
                (ApiKey::OffsetCommit, Self::offset_commit),
            ],
        );
        coordinator
    }

    /// Answers the next request of `api` (FindCoordinator, ConsumerGroupHeartbeat,
    /// OffsetFetch, OffsetCommit) with `error`. A heartbeat answered UNKNOWN_MEMBER_ID or
    /// FENCED_MEMBER_EPOCH also takes the member out of the group, as Kafka does.
    pub fn fail_next(&self, api: ApiKey, error: ResponseError) {
        self.state
            .lock()
            .unwrap()
            .errors
            .push_back((api, error, None));
    }

    /// Answers the next heartbeat with `error` and `message` (the response's error message).
    pub fn fail_next_heartbeat(&self, error: ResponseError, message: &str) {
        self.state.lock().unwrap().errors.push_back((
            ApiKey::ConsumerGroupHeartbeat,
            error,
            Some(message.to_string()),
        ));
    }

    /// Answers every heartbeat with `error` until [`Self::accept_heartbeats`] (e.g.
    /// UNRELEASED_INSTANCE_ID while an old session of a static member lasts).
    pub fn refuse_heartbeats(&self, error: ResponseError) {
        self.state.lock().unwrap().refuse_heartbeats = Some((error, None));
    }

    /// Stops [`Self::refuse_heartbeats`].
    pub fn accept_heartbeats(&self) {
        self.state.lock().unwrap().refuse_heartbeats = None;
    }

    /// The heartbeat interval answers name (`group.consumer.heartbeat.interval.ms`; 50 ms
    /// unless set).
    pub fn set_heartbeat_interval(&self, interval: Duration) {
        self.state.lock().unwrap().heartbeat_interval = interval;
    }

    /// Moves every member to the next group epoch (as a rebalance elsewhere in the group
    /// does); each hears of it in its next heartbeat answer, and meanwhile commits with the
    /// epoch before are STALE_MEMBER_EPOCH. Returns the new epoch.
    pub fn bump_epoch(&self) -> i32 {
        let mut state = self.state.lock().unwrap();
        state.group_epoch += 1;
        let epoch = state.group_epoch;
        for member in state.members.values_mut() {
            member.previous_epoch = member.epoch;
            member.epoch = epoch;
        }
        epoch
    }

    /// Leaves `partitions` of `topic` out of every assignment from the next heartbeat answer
    /// on, at the same member epoch (as Kafka revokes: the member keeps its epoch until it
    /// has given them up).
    pub fn withhold(&self, topic: &str, partitions: &[i32]) {
        self.state
            .lock()
            .unwrap()
            .withheld
            .insert(topic.to_string(), partitions.to_vec());
    }

    /// A member's epoch as the coordinator has it (`None`: not in the group).
    pub fn member_epoch(&self, member_id: &str) -> Option<i32> {
        self.state
            .lock()
            .unwrap()
            .members
            .get(member_id)
            .map(|m| m.epoch)
    }

    /// The members in the group.
    pub fn members(&self) -> Vec<String> {
        self.state.lock().unwrap().members.keys().cloned().collect()
    }

    /// Pre-commits an offset.
    pub fn set_committed(&self, topic: &str, partition: i32, offset: i64) {
        self.state
            .lock()
            .unwrap()
            .committed
            .insert((topic.to_string(), partition), offset);
    }

    /// The committed offset of a partition.
    pub fn committed(&self, topic: &str, partition: i32) -> Option<i64> {
        self.state
            .lock()
            .unwrap()
            .committed
            .get(&(topic.to_string(), partition))
            .copied()
    }

    /// Every heartbeat, in order.
    pub fn heartbeats(&self) -> Vec<SeenHeartbeat> {
        self.state.lock().unwrap().heartbeats.clone()
    }

    /// How many heartbeats arrived (leaves included).
    pub fn heartbeat_count(&self) -> usize {
        self.state.lock().unwrap().heartbeats.len()
    }

    /// Every OffsetCommit, in order (refused ones included).
    pub fn commits(&self) -> Vec<SeenCommit> {
        self.state.lock().unwrap().commits.clone()
    }

    pub fn find_coordinator_requests(&self) -> u32 {
        self.state.lock().unwrap().find_coordinator
    }

    pub fn offset_fetches(&self) -> u32 {
        self.state.lock().unwrap().offset_fetches
    }

    fn scripted(&self, api: ApiKey) -> Option<(ResponseError, Option<String>)> {
        let mut state = self.state.lock().unwrap();
        let index = state.errors.iter().position(|(a, _, _)| *a == api)?;
        state.errors.remove(index).map(|(_, e, m)| (e, m))
    }

    fn find(&self, ctx: &RequestContext<'_>, port: u16) -> Result<Option<Bytes>> {
        let scripted = self.scripted(ApiKey::FindCoordinator);
        self.state.lock().unwrap().find_coordinator += 1;
        let response = find_coordinator_answer(scripted.map(|(error, _)| error), port);
        Ok(Some(encode(&response, ctx.header.request_api_version)?))
    }

    fn heartbeat(&self, ctx: &RequestContext<'_>) -> Result<Option<Bytes>> {
        let version = ctx.header.request_api_version;
        let request: ConsumerGroupHeartbeatRequest = ctx.decode()?;
        // The cluster's topics first (its own lock), then the group's.
        let topics: BTreeMap<String, (TopicId, Vec<i32>)> = ctx
            .cluster
            .topics()
            .into_iter()
            .filter_map(|t| {
                let id = ctx.cluster.topic_id(&t.name)?;
                let partitions = t.partitions.iter().map(|(p, _, _)| *p).collect();
                Some((t.name, (id, partitions)))
            })
            .collect();
        let scripted = self.scripted(ApiKey::ConsumerGroupHeartbeat);
        let mut state = self.state.lock().unwrap();
        let scripted = scripted.or_else(|| state.refuse_heartbeats.clone());
        let member_id = request.member_id.to_string();
        let answer = match scripted {
            Some((error, message)) => {
                if matches!(
                    error,
                    ResponseError::UnknownMemberId | ResponseError::FencedMemberEpoch
                ) {
                    state.members.remove(&member_id);
                }
                Err((error, message))
            }
            None => state.beat(&request, version, &topics),
        };
        let response = match &answer {
            Ok((epoch, assignment)) => ConsumerGroupHeartbeatResponse::default()
                .with_member_id(Some(request.member_id.clone()))
                .with_member_epoch(*epoch)
                .with_heartbeat_interval_ms(
                    i32::try_from(state.heartbeat_interval.as_millis()).unwrap_or(i32::MAX),
                )
                .with_assignment(assignment.as_ref().map(|assigned| {
                    Assignment::default().with_topic_partitions(
                        assigned
                            .iter()
                            .map(|(id, partitions)| {
                                TopicPartitions::default()
                                    .with_topic_id(uuid(*id))
                                    .with_partitions(partitions.clone())
                            })
                            .collect(),
                    )
                })),
            Err((error, message)) => ConsumerGroupHeartbeatResponse::default()
                .with_error_code(error.code())
                .with_error_message(message.clone().map(StrBytes::from_string)),
        };
        state.heartbeats.push(SeenHeartbeat {
            at: Instant::now(),
            version,
            member_id,
            epoch: request.member_epoch,
            instance_id: request.instance_id.as_ref().map(|i| i.to_string()),
            rack_id: request.rack_id.as_ref().map(|r| r.to_string()),
            rebalance_timeout_ms: request.rebalance_timeout_ms,
            subscribed_topic_names: request
                .subscribed_topic_names
                .as_ref()
                .map(|names| names.iter().map(|n| n.0.to_string()).collect()),
            subscribed_topic_regex: request
                .subscribed_topic_regex
                .as_ref()
                .map(|r| r.to_string()),
            server_assignor: request.server_assignor.as_ref().map(|a| a.to_string()),
            owned: request.topic_partitions.as_ref().map(|owned| {
                owned
                    .iter()
                    .map(|t| (*t.topic_id.as_bytes(), t.partitions.clone()))
                    .collect()
            }),
            error: answer.as_ref().err().map(|(error, _)| *error),
            answered_epoch: response.member_epoch,
        });
        drop(state);
        Ok(Some(encode(&response, version)?))
    }

    fn offset_fetch(&self, ctx: &RequestContext<'_>) -> Result<Option<Bytes>> {
        let request: OffsetFetchRequest = ctx.decode()?;
        let scripted = self.scripted(ApiKey::OffsetFetch);
        let mut state = self.state.lock().unwrap();
        state.offset_fetches += 1;
        if let Some((error, _)) = scripted {
            let response = OffsetFetchResponse::default().with_error_code(error.code());
            return Ok(Some(encode(&response, ctx.header.request_api_version)?));
        }
        let response = offset_fetch_answer(request, &state.committed);
        Ok(Some(encode(&response, ctx.header.request_api_version)?))
    }

    fn offset_commit(&self, ctx: &RequestContext<'_>) -> Result<Option<Bytes>> {
        let version = ctx.header.request_api_version;
        let request: OffsetCommitRequest = ctx.decode()?;
        let scripted = self.scripted(ApiKey::OffsetCommit).map(|(e, _)| e);
        let mut state = self.state.lock().unwrap();
        let member_id = request.member_id.to_string();
        let epoch = request.generation_id_or_member_epoch;
        let error = scripted.or_else(|| {
            if member_id.is_empty() && epoch < 0 {
                // An admin's commit (no member): taken.
                return None;
            }
            let Some(member) = state.members.get(&member_id) else {
                return Some(ResponseError::UnknownMemberId);
            };
            if version < 9 {
                // "OffsetCommit version 9 or above must be used by members using the
                // consumer group protocol".
                return Some(ResponseError::UnsupportedVersion);
            }
            match epoch.cmp(&member.epoch) {
                std::cmp::Ordering::Less => Some(ResponseError::StaleMemberEpoch),
                std::cmp::Ordering::Greater => Some(ResponseError::FencedMemberEpoch),
                std::cmp::Ordering::Equal => None,
            }
        });
        let mut offsets = Vec::new();
        let response = offset_commit_answer(&request.topics, |key, offset| {
            offsets.push((key.0.clone(), key.1, offset));
            if error.is_none() {
                state.committed.insert(key, offset);
            }
            error
        });
        let after_heartbeats = state.heartbeats.len();
        state.commits.push(SeenCommit {
            version,
            member_id,
            epoch,
            instance_id: request.group_instance_id.as_ref().map(|i| i.to_string()),
            offsets,
            error,
            after_heartbeats,
        });
        drop(state);
        Ok(Some(encode(&response, version)?))
    }
}

/// A heartbeat's outcome: the member epoch and the assignment to send, or an error.
type Beat = std::result::Result<
    (i32, Option<BTreeMap<TopicId, Vec<i32>>>),
    (ResponseError, Option<String>),
>;

fn invalid(message: &str) -> Beat {
    Err((ResponseError::InvalidRequest, Some(message.to_string())))
}

impl GroupState {
    /// A heartbeat no script answers: checked, then joined, left or kept (see the module).
    fn beat(
        &mut self,
        request: &ConsumerGroupHeartbeatRequest,
        version: i16,
        topics: &BTreeMap<String, (TopicId, Vec<i32>)>,
    ) -> Beat {
        let member_id = request.member_id.to_string();
        let epoch = request.member_epoch;
        let instance_id = request.instance_id.as_ref().map(|i| i.to_string());
        // Kafka's checks (GroupMetadataManager.throwIfConsumerGroupHeartbeatRequestIsInvalid).
        if request.group_id.0.is_empty() {
            return invalid("GroupId can't be empty.");
        }
        if version >= 1 && member_id.is_empty() {
            return invalid("MemberId can't be empty.");
        }
        if instance_id.as_deref() == Some("") {
            return invalid("InstanceId can't be empty.");
        }
        if request.rack_id.as_ref().is_some_and(|r| r.is_empty()) {
            return invalid("RackId can't be empty.");
        }
        match epoch {
            JOIN_EPOCH => {
                if request.rebalance_timeout_ms == -1 {
                    return invalid("RebalanceTimeoutMs must be provided in first request.");
                }
                if request
                    .topic_partitions
                    .as_ref()
                    .is_some_and(|owned| !owned.is_empty())
                {
                    return invalid("TopicPartitions must be empty when (re-)joining.");
                }
                let names = request
                    .subscribed_topic_names
                    .as_ref()
                    .is_some_and(|n| !n.is_empty());
                if !names && request.subscribed_topic_regex.is_none() {
                    return invalid(
                        "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
                    );
                }
            }
            STATIC_LEAVE_EPOCH if instance_id.is_none() => {
                return invalid("InstanceId can't be null.");
            }
            LEAVE_EPOCH | STATIC_LEAVE_EPOCH => {}
            epoch if epoch < STATIC_LEAVE_EPOCH => {
                return invalid(&format!("MemberEpoch is invalid: {epoch}"));
            }
            _ => {}
        }
        match epoch {
            LEAVE_EPOCH | STATIC_LEAVE_EPOCH => {
                if self.members.remove(&member_id).is_none() {
                    return Err((ResponseError::UnknownMemberId, None));
                }
                return Ok((epoch, None));
            }
            JOIN_EPOCH => {
                let holder = self.members.iter().find(|(id, m)| {
                    **id != member_id && instance_id.is_some() && m.instance_id == instance_id
                });
                if holder.is_some() {
                    return Err((
                        ResponseError::UnreleasedInstanceId,
                        Some(format!(
                            "Static member with instance id {} is not released yet",
                            instance_id.unwrap_or_default()
                        )),
                    ));
                }
                self.group_epoch += 1;
                self.members.insert(
                    member_id.clone(),
                    Member {
                        epoch: self.group_epoch,
                        previous_epoch: JOIN_EPOCH,
                        instance_id,
                        subscribed: Vec::new(),
                    },
                );
            }
            epoch => {
                let Some(member) = self.members.get(&member_id) else {
                    return Err((ResponseError::UnknownMemberId, None));
                };
                if epoch != member.epoch && epoch != member.previous_epoch {
                    let known = member.epoch;
                    self.members.remove(&member_id);
                    return Err((
                        ResponseError::FencedMemberEpoch,
                        Some(format!(
                            "The consumer group member has epoch {epoch}; the coordinator \
                             knows {known}. The member must abandon all its partitions and rejoin."
                        )),
                    ));
                }
            }
        }
        let member = self.members.get_mut(&member_id).expect("joined or known");
        if let Some(names) = &request.subscribed_topic_names {
            member.subscribed = names.iter().map(|n| n.0.to_string()).collect();
        }
        let withheld = &self.withheld;
        let assignment = member
            .subscribed
            .iter()
            .filter_map(|name| {
                let (id, partitions) = topics.get(name)?;
                let left_out = withheld.get(name).map(Vec::as_slice).unwrap_or_default();
                let kept = partitions
                    .iter()
                    .filter(|p| !left_out.contains(p))
                    .copied()
                    .collect();
                Some((*id, kept))
            })
            .collect();
        Ok((member.epoch, Some(assignment)))
    }
}
