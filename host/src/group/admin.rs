//! Group administration, as `kafka-consumer-groups` does it: list the groups every broker
//! coordinates (ListGroups), delete groups (DeleteGroups) and delete a group's committed
//! offsets for some partitions (OffsetDelete). The group must be empty for a delete, and must
//! not subscribe to the topic for an offset delete; the broker enforces both.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, GroupId, ListGroupsRequest, OffsetDeleteRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::client::{Client, ClientError};
use crate::fetch::TopicPartition;
use crate::net::Purpose;

/// One group as ListGroups names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct ListedGroup {
    pub group: String,
    /// Kafka's state: Empty, Stable, PreparingRebalance, CompletingRebalance, Dead (classic);
    /// Empty, Assigning, Reconciling, Stable (consumer protocol); empty from brokers before 2.6.
    pub state: String,
    /// `classic` or `consumer` (KIP-848); empty from brokers before 4.0.
    #[serde(rename = "type")]
    pub kind: String,
    /// `consumer` for consumer groups; other clients (Connect) use others.
    pub protocol_type: String,
}

/// Why an admin request failed, with what to do.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("broker {broker} answered ListGroups with {error}")]
    List { broker: i32, error: ResponseError },
}

/// Every group of the cluster: each broker lists the groups it coordinates. Sorted by name.
pub async fn list_groups(client: &Client) -> Result<Vec<ListedGroup>, AdminError> {
    let metadata = client.refresh_metadata().await?;
    let mut groups = Vec::new();
    for broker in metadata.brokers.keys().copied() {
        let response = client
            .send(broker, Purpose::Default, &ListGroupsRequest::default())
            .await?;
        if let Some(error) = ResponseError::try_from_code(response.error_code) {
            return Err(AdminError::List { broker, error });
        }
        groups.extend(response.groups.into_iter().map(|g| ListedGroup {
            group: g.group_id.to_string(),
            state: g.group_state.to_string(),
            kind: g.group_type.to_string(),
            protocol_type: g.protocol_type.to_string(),
        }));
    }
    groups.sort();
    groups.dedup();
    Ok(groups)
}

/// What a delete did to one group or partition: `None` when it went, else the broker's error
/// and what it means.
pub type Outcome = Option<(ResponseError, &'static str)>;

/// Deletes `groups`, all coordinated by `coordinator`; one outcome per group, in order.
pub async fn delete_groups(
    client: &Client,
    coordinator: i32,
    groups: &[String],
) -> Result<Vec<(String, Outcome)>, ClientError> {
    let request = DeleteGroupsRequest::default().with_groups_names(
        groups
            .iter()
            .map(|g| GroupId(StrBytes::from_string(g.clone())))
            .collect(),
    );
    let response = client
        .send(coordinator, Purpose::Coordination, &request)
        .await?;
    Ok(response
        .results
        .into_iter()
        .map(|result| {
            let outcome = ResponseError::try_from_code(result.error_code)
                .map(|error| (error, delete_hint(error)));
            (result.group_id.to_string(), outcome)
        })
        .collect())
}

/// Deletes `group`'s committed offsets of `partitions`; one outcome per partition.
pub async fn delete_offsets(
    client: &Client,
    coordinator: i32,
    group: &str,
    partitions: &[TopicPartition],
) -> Result<(Outcome, Vec<(TopicPartition, Outcome)>), ClientError> {
    let mut topics: Vec<OffsetDeleteRequestTopic> = Vec::new();
    for tp in partitions {
        let partition = OffsetDeleteRequestPartition::default().with_partition_index(tp.partition);
        match topics.iter_mut().find(|t| *t.name == *tp.topic) {
            Some(topic) => topic.partitions.push(partition),
            None => topics.push(
                OffsetDeleteRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(tp.topic.to_string())))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    let request = OffsetDeleteRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_topics(topics);
    let response = client
        .send(coordinator, Purpose::Coordination, &request)
        .await?;
    let whole =
        ResponseError::try_from_code(response.error_code).map(|error| (error, delete_hint(error)));
    let each = response
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(move |p| {
                let outcome = ResponseError::try_from_code(p.error_code)
                    .map(|error| (error, delete_hint(error)));
                (TopicPartition::new(&topic.name, p.partition_index), outcome)
            })
        })
        .collect();
    Ok((whole, each))
}

/// What a delete's error means, and what to do.
fn delete_hint(error: ResponseError) -> &'static str {
    match error {
        ResponseError::NonEmptyGroup => {
            "the group still has members: stop them first (wasmkafka offsets describe lists them)"
        }
        ResponseError::GroupSubscribedToTopic => {
            "members of the group still read this topic: stop them, or remove the topic from \
             their subscription, first"
        }
        ResponseError::GroupIdNotFound => "there is no such group",
        ResponseError::GroupAuthorizationFailed => {
            "this client may not administer the group (an ACL: Delete on the group)"
        }
        ResponseError::TopicAuthorizationFailed => {
            "this client may not read the topic (an ACL: Read on the topic)"
        }
        ResponseError::UnknownTopicOrPartition => "the topic or partition does not exist",
        ResponseError::CoordinatorNotAvailable
        | ResponseError::NotCoordinator
        | ResponseError::CoordinatorLoadInProgress => {
            "the group's coordinator is moving or loading: try again in a moment"
        }
        _ => "the broker refused it",
    }
}
