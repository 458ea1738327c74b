//! Committed offsets: OffsetFetch when partitions arrive, OffsetCommit of positions (the next
//! record to hand out: nothing that was not handed to the user), both on the coordinator's
//! `Coordination` connection.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    ApiKey, GroupId, OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};

use crate::client::Client;
use crate::client::ClientError;
use crate::fetch::{by_topic, CommittedOffset, TopicPartition};
use crate::net::{Purpose, SendOptions};

use super::error::{classify, GroupError};

/// Who commits: the member's id and generation (and instance id, for static members).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberIdentity {
    pub group: String,
    pub member_id: String,
    /// The group generation (classic protocol), or the member epoch (consumer protocol,
    /// KIP-848): what OffsetCommit carries as `generation_id_or_member_epoch`. -1: not in
    /// the group.
    pub generation: i32,
    pub instance_id: Option<String>,
}

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// The group's committed offsets for `partitions` (`None`: nothing committed).
pub async fn fetch_committed(
    client: &Client,
    coordinator: i32,
    group: &str,
    partitions: &[TopicPartition],
) -> Result<BTreeMap<TopicPartition, Option<i64>>, GroupError> {
    let committed = fetch_committed_with_epochs(client, coordinator, group, partitions).await?;
    Ok(committed
        .into_iter()
        .map(|(tp, committed)| (tp, committed.map(|c| c.offset)))
        .collect())
}

/// The group's committed offsets for `partitions` with the leader epochs they were committed
/// under (`None`: nothing committed), on the coordinator's `Coordination` connection.
pub async fn fetch_committed_with_epochs(
    client: &Client,
    coordinator: i32,
    group: &str,
    partitions: &[TopicPartition],
) -> Result<BTreeMap<TopicPartition, Option<CommittedOffset>>, GroupError> {
    fetch_committed_on(
        client,
        coordinator,
        group,
        partitions,
        Purpose::Coordination,
    )
    .await
}

/// [`fetch_committed_with_epochs`] on the connection for `purpose`. A group member asks on
/// its `Group` connection, which its own task uses only between rebalance requests: an
/// OffsetFetch there never waits behind an OffsetCommit the coordinator holds on
/// `Coordination` (Kafka answers one connection in order).
pub async fn fetch_committed_on(
    client: &Client,
    coordinator: i32,
    group: &str,
    partitions: &[TopicPartition],
    purpose: Purpose,
) -> Result<BTreeMap<TopicPartition, Option<CommittedOffset>>, GroupError> {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_require_stable(true)
        .with_topics(Some(
            by_topic(partitions.iter().map(|tp| (tp, tp.partition)))
                .into_iter()
                .map(|(topic, partitions)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(name(topic))
                        .with_partition_indexes(partitions)
                })
                .collect(),
        ));
    let response = client.send(coordinator, purpose, &request).await?;
    if let Some(error) = ResponseError::try_from_code(response.error_code) {
        return Err(classify("OffsetFetch", group, None, error));
    }
    let mut committed = BTreeMap::new();
    for topic in response.topics {
        for p in topic.partitions {
            if let Some(error) = ResponseError::try_from_code(p.error_code) {
                return Err(classify("OffsetFetch", group, None, error));
            }
            committed.insert(
                TopicPartition::new(topic.name.0.as_str(), p.partition_index),
                (p.committed_offset >= 0).then_some(CommittedOffset {
                    offset: p.committed_offset,
                    leader_epoch: (p.committed_leader_epoch >= 0)
                        .then_some(p.committed_leader_epoch),
                }),
            );
        }
    }
    Ok(committed)
}

/// Every partition the group has a committed offset for (OffsetFetch naming no topics), on
/// the coordinator's `Coordination` connection: what an operator's describe shows for a group
/// whose members are gone.
pub async fn fetch_all_committed(
    client: &Client,
    coordinator: i32,
    group: &str,
) -> Result<BTreeMap<TopicPartition, CommittedOffset>, GroupError> {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_topics(None);
    let response = client
        .send(coordinator, Purpose::Coordination, &request)
        .await?;
    if let Some(error) = ResponseError::try_from_code(response.error_code) {
        return Err(classify("OffsetFetch", group, None, error));
    }
    let mut committed = BTreeMap::new();
    for topic in response.topics {
        for p in topic.partitions {
            if p.committed_offset < 0 || ResponseError::try_from_code(p.error_code).is_some() {
                continue;
            }
            committed.insert(
                TopicPartition::new(topic.name.0.as_str(), p.partition_index),
                CommittedOffset {
                    offset: p.committed_offset,
                    leader_epoch: (p.committed_leader_epoch >= 0)
                        .then_some(p.committed_leader_epoch),
                },
            );
        }
    }
    Ok(committed)
}

/// Sends `request` to the group's `coordinator` at exactly `version`: the version it was built
/// for, as the coordinator connection negotiated it.
pub(crate) async fn send_at_version<R: Request>(
    client: &Client,
    coordinator: i32,
    request: &R,
    version: i16,
) -> Result<R::Response, ClientError> {
    let options = SendOptions {
        version: Some(version),
        ..SendOptions::default()
    };
    let (_, response) = client
        .send_with(coordinator, Purpose::Coordination, request, options)
        .await?;
    Ok(response)
}

/// Partitions an OffsetCommit answer refused, each with its (classified) error.
pub type CommitFailures = Vec<(TopicPartition, GroupError)>;

/// Commits `offsets` for the member. An error that concerns the member or the coordinator
/// fails the whole request; errors of single partitions (a topic not authorized, a leader
/// moving) come back in the list, and every other partition was committed.
pub async fn commit(
    client: &Client,
    coordinator: i32,
    member: &MemberIdentity,
    offsets: &[(TopicPartition, CommittedOffset)],
) -> Result<CommitFailures, GroupError> {
    if offsets.is_empty() {
        return Ok(Vec::new());
    }
    let version = client
        .connection(coordinator, Purpose::Coordination)
        .await?
        .version_for::<OffsetCommitRequest>(ApiKey::OffsetCommit)
        .map_err(ClientError::from)?;
    // The committed leader epoch exists from v6; an older request must leave it out.
    let with_epochs = version >= 6;
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(member.group.clone())))
        .with_generation_id_or_member_epoch(member.generation)
        .with_member_id(StrBytes::from_string(member.member_id.clone()))
        .with_group_instance_id(
            member
                .instance_id
                .as_ref()
                .map(|i| StrBytes::from_string(i.clone())),
        )
        .with_retention_time_ms(-1)
        .with_topics(
            by_topic(
                offsets
                    .iter()
                    .map(|(tp, committed)| (tp, (tp.partition, *committed))),
            )
            .into_iter()
            .map(|(topic, partitions)| {
                OffsetCommitRequestTopic::default()
                    .with_name(name(topic))
                    .with_partitions(
                        partitions
                            .into_iter()
                            .map(|(partition, committed)| {
                                OffsetCommitRequestPartition::default()
                                    .with_partition_index(partition)
                                    .with_committed_offset(committed.offset)
                                    .with_committed_leader_epoch(
                                        committed
                                            .leader_epoch
                                            .filter(|_| with_epochs)
                                            .unwrap_or(-1),
                                    )
                                    .with_committed_metadata(Some(StrBytes::from_static_str("")))
                            })
                            .collect(),
                    )
            })
            .collect(),
        );
    let response = send_at_version(client, coordinator, &request, version).await?;
    let mut failed = Vec::new();
    for topic in &response.topics {
        for p in &topic.partitions {
            let Some(error) = ResponseError::try_from_code(p.error_code) else {
                continue;
            };
            let error = classify(
                "OffsetCommit",
                &member.group,
                member.instance_id.as_deref(),
                error,
            );
            // Errors about the member or the coordinator come on every partition: they are
            // the answer to the whole request.
            if error.ends_membership() || error.coordinator_lost() {
                return Err(error);
            }
            failed.push((
                TopicPartition::new(topic.name.0.as_str(), p.partition_index),
                error,
            ));
        }
    }
    Ok(failed)
}
