//! DescribeGroups: a group's state and members, with the partitions each one holds (what
//! `wasmkafka offsets describe` shows and what `offsets plan --execute` checks first).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{DescribeGroupsRequest, GroupId};
use kafka_protocol::protocol::StrBytes;

use crate::client::{Client, ClientError};
use crate::fetch::TopicPartition;
use crate::net::Purpose;

use super::error::{classify, GroupError};
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
    /// Kafka's group state: Empty, Stable, PreparingRebalance, CompletingRebalance, Dead.
    pub state: String,
    /// The assignor the group chose.
    pub protocol: String,
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
    let described = response
        .groups
        .into_iter()
        .next()
        .ok_or(GroupError::Transient {
            api: "DescribeGroups",
            error: ResponseError::UnknownServerError,
        })?;
    if let Some(error) = ResponseError::try_from_code(described.error_code) {
        return Err(classify("DescribeGroups", group, None, error));
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
        members,
    })
}
