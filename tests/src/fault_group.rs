//! A scripted group coordinator for the fault broker: one group, members that join and sync
//! at once (no join barrier: tests that need one member at a time), committed offsets in
//! memory, and a queue of error codes to answer on cue (REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID,
//! ILLEGAL_GENERATION, FENCED_INSTANCE_ID, NOT_COORDINATOR, ...).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{
    ApiKey, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupResponse, OffsetCommitRequest, OffsetFetchRequest, SyncGroupRequest,
    SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::fault_broker::{encode, FaultCluster, RequestContext};
use crate::fault_coordinator::{
    find_coordinator_answer, offset_commit_answer, offset_fetch_answer,
};

/// One JoinGroup as the coordinator saw it.
#[derive(Debug, Clone)]
pub struct SeenJoin {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub protocols: Vec<String>,
}

#[derive(Debug, Default)]
struct GroupState {
    require_member_id: bool,
    next_member: u32,
    generation: i32,
    /// member id -> (protocol name, metadata) of its last join.
    members: BTreeMap<String, (String, Bytes)>,
    assignments: BTreeMap<String, Bytes>,
    committed: BTreeMap<(String, i32), i64>,
    errors: VecDeque<(ApiKey, ResponseError)>,
    /// OffsetCommit errors for single partitions, each answered once.
    partition_errors: BTreeMap<(String, i32), ResponseError>,
    joins: Vec<SeenJoin>,
    heartbeats: u32,
    commits: Vec<(String, i32, i64)>,
    find_coordinator: u32,
    leaves: u32,
    /// Until then every group request is answered COORDINATOR_NOT_AVAILABLE (a coordinator
    /// moving to another broker); the group stays as it was.
    unavailable_until: Option<std::time::Instant>,
}

/// The coordinator; cloning shares it.
#[derive(Clone)]
pub struct ScriptedCoordinator {
    state: Arc<Mutex<GroupState>>,
}

impl ScriptedCoordinator {
    /// Answers the group APIs on every node; node 1 is the coordinator.
    pub fn install(cluster: &FaultCluster) -> ScriptedCoordinator {
        let coordinator = ScriptedCoordinator {
            state: Arc::new(Mutex::new(GroupState {
                require_member_id: true,
                ..GroupState::default()
            })),
        };
        let port = cluster.port(1);
        let c = coordinator.clone();
        cluster.respond_with(ApiKey::FindCoordinator, move |ctx| c.find(ctx, port));
        cluster.respond_through(
            &coordinator,
            &[
                (ApiKey::JoinGroup, Self::join),
                (ApiKey::SyncGroup, Self::sync),
                (ApiKey::Heartbeat, Self::heartbeat),
                (ApiKey::OffsetFetch, Self::offset_fetch),
                (ApiKey::OffsetCommit, Self::offset_commit),
                (ApiKey::LeaveGroup, Self::leave),
            ],
        );
        coordinator
    }

    /// Answers the next request of `api` with `error`.
    pub fn fail_next(&self, api: ApiKey, error: ResponseError) {
        self.state.lock().unwrap().errors.push_back((api, error));
    }

    /// Answers every group request with COORDINATOR_NOT_AVAILABLE for `outage`, as while a
    /// coordinator moves; then answers as before, the group unchanged (the new coordinator
    /// loaded it, members and generation included).
    pub fn unavailable_for(&self, outage: std::time::Duration) {
        self.state.lock().unwrap().unavailable_until = Some(std::time::Instant::now() + outage);
    }

    /// Answers the next OffsetCommit that names `topic`/`partition` with `error` for that
    /// partition only; the request's other partitions are committed.
    pub fn fail_partition_next(&self, topic: &str, partition: i32, error: ResponseError) {
        self.state
            .lock()
            .unwrap()
            .partition_errors
            .insert((topic.to_string(), partition), error);
    }

    /// Puts a member in the group that only exists here: every JoinGroup answer to the
    /// leader lists it with `metadata` under `protocol` (a subscription crafted by the test:
    /// e.g. claims a member would never give up). It never joins, syncs or heartbeats.
    pub fn add_phantom(&self, member_id: &str, protocol: &str, metadata: Bytes) {
        self.state
            .lock()
            .unwrap()
            .members
            .insert(member_id.to_string(), (protocol.to_string(), metadata));
    }

    /// Takes a phantom (or any member) out of the group.
    pub fn remove_member(&self, member_id: &str) {
        self.state.lock().unwrap().members.remove(member_id);
    }

    /// Pre-commits an offset.
    pub fn set_committed(&self, topic: &str, partition: i32, offset: i64) {
        self.state
            .lock()
            .unwrap()
            .committed
            .insert((topic.to_string(), partition), offset);
    }

    pub fn joins(&self) -> Vec<SeenJoin> {
        self.state.lock().unwrap().joins.clone()
    }

    pub fn heartbeats(&self) -> u32 {
        self.state.lock().unwrap().heartbeats
    }

    /// Every (topic, partition, offset) committed, in order.
    pub fn commits(&self) -> Vec<(String, i32, i64)> {
        self.state.lock().unwrap().commits.clone()
    }

    pub fn find_coordinator_requests(&self) -> u32 {
        self.state.lock().unwrap().find_coordinator
    }

    pub fn leaves(&self) -> u32 {
        self.state.lock().unwrap().leaves
    }

    pub fn generation(&self) -> i32 {
        self.state.lock().unwrap().generation
    }

    fn scripted(&self, api: ApiKey) -> Option<ResponseError> {
        let mut state = self.state.lock().unwrap();
        if state
            .unavailable_until
            .is_some_and(|until| std::time::Instant::now() < until)
        {
            return Some(ResponseError::CoordinatorNotAvailable);
        }
        let index = state.errors.iter().position(|(a, _)| *a == api)?;
        state.errors.remove(index).map(|(_, e)| e)
    }

    fn find(&self, ctx: &RequestContext<'_>, port: u16) -> Result<Option<Bytes>> {
        let scripted = self.scripted(ApiKey::FindCoordinator);
        self.state.lock().unwrap().find_coordinator += 1;
        let response = find_coordinator_answer(scripted, port);
        Ok(Some(encode(&response, ctx.header.request_api_version)?))
    }

    fn join(&self, ctx: &RequestContext<'_>) -> Result<Option<Bytes>> {
        let version = ctx.header.request_api_version;
        let request: JoinGroupRequest = ctx.decode()?;
        let scripted = self.scripted(ApiKey::JoinGroup);
        let mut state = self.state.lock().unwrap();
        state.joins.push(SeenJoin {
            member_id: request.member_id.to_string(),
            instance_id: request.group_instance_id.as_ref().map(|i| i.to_string()),
            protocols: request
                .protocols
                .iter()
                .map(|p| p.name.to_string())
                .collect(),
        });
        if let Some(error) = scripted {
            let response = JoinGroupResponse::default()
                .with_error_code(error.code())
                .with_generation_id(-1);
            return Ok(Some(encode(&response, version)?));
        }
        let mut member_id = request.member_id.to_string();
        if member_id.is_empty() {
            state.next_member += 1;
            member_id = format!("member-{}", state.next_member);
            if state.require_member_id && request.group_instance_id.is_none() {
                let response = JoinGroupResponse::default()
                    .with_error_code(ResponseError::MemberIdRequired.code())
                    .with_generation_id(-1)
                    .with_member_id(StrBytes::from_string(member_id));
                return Ok(Some(encode(&response, version)?));
            }
        }
        let protocol = request.protocols.first().expect("a protocol");
        state.members.insert(
            member_id.clone(),
            (protocol.name.to_string(), protocol.metadata.clone()),
        );
        state.generation += 1;
        let leader = state.members.keys().next().cloned().unwrap_or_default();
        let members = if leader == member_id {
            state
                .members
                .iter()
                .map(|(id, (_, metadata))| {
                    JoinGroupResponseMember::default()
                        .with_member_id(StrBytes::from_string(id.clone()))
                        .with_metadata(metadata.clone())
                })
                .collect()
        } else {
            Vec::new()
        };
        let response = JoinGroupResponse::default()
            .with_generation_id(state.generation)
            .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
            .with_protocol_name(Some(StrBytes::from_string(protocol.name.to_string())))
            .with_leader(StrBytes::from_string(leader))
            .with_member_id(StrBytes::from_string(member_id))
            .with_members(members);
        Ok(Some(encode(&response, version)?))
    }

    fn sync(&self, ctx: &RequestContext<'_>) -> Result<Option<Bytes>> {
        let version = ctx.header.request_api_version;
        let request: SyncGroupRequest = ctx.decode()?;
        let scripted = self.scripted(ApiKey::SyncGroup);
        let mut state = self.state.lock().unwrap();
        let mut response = SyncGroupResponse::default();
        if let Some(error) = scripted {
            if error == ResponseError::UnknownMemberId {
                // As on a broker that dropped the member.
                state.members.remove(request.member_id.as_str());
            }
            response.error_code = error.code();
        } else {
            for assignment in &request.assignments {
                state.assignments.insert(
                    assignment.member_id.to_string(),
                    assignment.assignment.clone(),
                );
            }
            response.assignment = state
                .assignments
                .get(request.member_id.as_str())
                .cloned()
                .unwrap_or_default();
        }
        Ok(Some(encode(&response, version)?))
    }

    fn heartbeat(&self, ctx: &RequestContext<'_>) -> Result<Option<Bytes>> {
        let request: HeartbeatRequest = ctx.decode()?;
        let scripted = self.scripted(ApiKey::Heartbeat);
        let mut state = self.state.lock().unwrap();
        state.heartbeats += 1;
        if scripted == Some(ResponseError::UnknownMemberId) {
            // As on a broker that dropped the member.
            state.members.remove(request.member_id.as_str());
            state.assignments.remove(request.member_id.as_str());
        }
        drop(state);
        let response =
            HeartbeatResponse::default().with_error_code(scripted.map_or(0, |e| e.code()));
        Ok(Some(encode(&response, ctx.header.request_api_version)?))
    }

    fn offset_fetch(&self, ctx: &RequestContext<'_>) -> Result<Option<Bytes>> {
        let request: OffsetFetchRequest = ctx.decode()?;
        let state = self.state.lock().unwrap();
        let response = offset_fetch_answer(request, &state.committed);
        Ok(Some(encode(&response, ctx.header.request_api_version)?))
    }

    fn offset_commit(&self, ctx: &RequestContext<'_>) -> Result<Option<Bytes>> {
        let request: OffsetCommitRequest = ctx.decode()?;
        let scripted = self.scripted(ApiKey::OffsetCommit);
        let mut state = self.state.lock().unwrap();
        let response = offset_commit_answer(&request.topics, |key, offset| {
            let error = scripted.or_else(|| state.partition_errors.remove(&key));
            if error.is_none() {
                state.committed.insert(key.clone(), offset);
                state.commits.push((key.0, key.1, offset));
            }
            error
        });
        Ok(Some(encode(&response, ctx.header.request_api_version)?))
    }

    fn leave(&self, ctx: &RequestContext<'_>) -> Result<Option<Bytes>> {
        let mut state = self.state.lock().unwrap();
        state.leaves += 1;
        state.generation += 1;
        Ok(Some(encode(
            &LeaveGroupResponse::default(),
            ctx.header.request_api_version,
        )?))
    }
}
