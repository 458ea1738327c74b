//! A group's state and members, with the partitions each one holds (what `wasmkafka offsets
//! describe` shows and what `offsets plan --execute` checks first): DescribeGroups for
//! classic groups, ConsumerGroupDescribe for consumer-protocol groups (KIP-848).
//!
//! Kafka answers DescribeGroups for a consumer-protocol group as if it did not exist (state
//! `Dead`, no members; GROUP_ID_NOT_FOUND from v6), so such an answer is asked again with
//! ConsumerGroupDescribe: a group with live members must never look empty to `offsets plan
//! --execute`.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ConsumerGroupDescribeRequest, DescribeGroupsRequest, GroupId};
use kafka_protocol::protocol::StrBytes;

use crate::client::{Client, ClientError};
use crate::fetch::TopicPartition;
use crate::net::Purpose;

use super::error::{classify, GroupError, Retry};
use super::protocol::decode_assignment;

/// One member, as the coordinator describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub host: String,
    /// Its partitions (empty when its assignment is not the consumer protocol's).
    pub partitions: Vec<TopicPartition>,
}

/// A group, as the coordinator describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupDescription {
    /// Kafka's group state: Empty, Stable, PreparingRebalance, CompletingRebalance, Dead
    /// (classic); Empty, Assigning, Reconciling, Stable, Dead (consumer).
    pub state: String,
    /// The assignor the group chose (classic: the members' vote; consumer: the broker's).
    pub protocol: String,
    /// `classic` or `consumer` (KIP-848).
    pub group_protocol: String,
    pub members: Vec<MemberDescription>,
}

impl serde::Serialize for TopicPartition {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

/// Asks the group's coordinator to describe it.
pub async fn describe_group(
    client: &Client,
    coordinator: i32,
    group: &str,
) -> Result<GroupDescription, GroupError> {
    let request = DescribeGroupsRequest::default()
        .with_groups(vec![GroupId(StrBytes::from_string(group.to_string()))]);
    let response = client
        .send(coordinator, Purpose::Coordination, &request)
        .await
        .map_err(|e: ClientError| GroupError::from(e))?;
    let described =
        response
            .groups
            .into_iter()
            .next()
            .ok_or(GroupError::Retry(Retry::Transient {
                api: "DescribeGroups",
                error: ResponseError::UnknownServerError,
            }))?;
    let not_classic = described.group_state.as_str() == "Dead"
        || described.error_code == ResponseError::GroupIdNotFound.code();
    if not_classic {
        if let Some(description) = describe_consumer_group(client, coordinator, group).await? {
            return Ok(description);
        }
    }
    match ResponseError::try_from_code(described.error_code) {
        None => {}
        // A group the coordinator never saw (Kafka 4.x says so; earlier brokers answered
        // `Dead` with no members, and that is what it is to the callers).
        Some(ResponseError::GroupIdNotFound) => {
            return Ok(GroupDescription {
                state: "Dead".to_string(),
                protocol: String::new(),
                group_protocol: "classic".to_string(),
                members: Vec::new(),
            })
        }
        Some(error) => return Err(classify("DescribeGroups", group, None, error)),
    }
    let members = described
        .members
        .into_iter()
        .map(|m| MemberDescription {
            member_id: m.member_id.to_string(),
            instance_id: m.group_instance_id.map(|i| i.to_string()),
            client_id: m.client_id.to_string(),
            host: m.client_host.to_string(),
            partitions: decode_assignment(&m.member_assignment)
                .map(|a| {
                    a.iter()
                        .map(|(topic, partition)| TopicPartition::new(topic, partition))
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect();
    Ok(GroupDescription {
        state: described.group_state.to_string(),
        protocol: described.protocol_data.to_string(),
        group_protocol: "classic".to_string(),
        members,
    })
}

/// ConsumerGroupDescribe; `None` when the group is not a consumer-protocol group or the
/// broker does not know the API (a broker before KIP-848 has no such groups).
async fn describe_consumer_group(
    client: &Client,
    coordinator: i32,
    group: &str,
) -> Result<Option<GroupDescription>, GroupError> {
    let request = ConsumerGroupDescribeRequest::default()
        .with_group_ids(vec![GroupId(StrBytes::from_string(group.to_string()))]);
    let response = match client
        .send(coordinator, Purpose::Coordination, &request)
        .await
    {
        Ok(response) => response,
        Err(ClientError::Net(crate::net::NetError::UnsupportedVersion { .. })) => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let Some(described) = response.groups.into_iter().next() else {
        return Ok(None);
    };
    match ResponseError::try_from_code(described.error_code) {
        None => {}
        Some(ResponseError::GroupIdNotFound) => return Ok(None),
        Some(error) => return Err(classify("ConsumerGroupDescribe", group, None, error)),
    }
    let members = described
        .members
        .into_iter()
        .map(|m| MemberDescription {
            member_id: m.member_id.to_string(),
            instance_id: m.instance_id.map(|i| i.to_string()),
            client_id: m.client_id.to_string(),
            host: m.client_host.to_string(),
            partitions: m
                .assignment
                .topic_partitions
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(|&p| TopicPartition::new(t.topic_name.0.as_str(), p))
                })
                .collect(),
        })
        .collect();
    Ok(Some(GroupDescription {
        state: described.group_state.to_string(),
        protocol: described.assignor_name.to_string(),
        group_protocol: "consumer".to_string(),
        members,
    }))
}
