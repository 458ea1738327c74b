//! ListOffsets: resolve "earliest", "latest" or a timestamp to an offset, batched so that all
//! partitions led by one broker go in one request.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::client::{Client, ClientError};
use crate::net::{Purpose, SendOptions};

/// The first ListOffsets version that carries the current leader epoch.
const FIRST_CURRENT_LEADER_EPOCH_VERSION: i16 = 4;

use super::{by_topic, IsolationLevel, TopicPartition};

/// What to look up for a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    /// The first offset whose timestamp is at or after this (ms since the epoch).
    Timestamp(i64),
}

impl OffsetSpec {
    /// The wire encoding: -2 earliest, -1 latest, else a timestamp.
    pub fn wire_timestamp(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(ms) => ms,
        }
    }
}

/// One partition's answer: the offset, or the broker's error for it.
pub type OffsetAnswer = Result<i64, ResponseError>;

/// Sends one ListOffsets to `broker` for all `wanted` partitions. With read_committed,
/// "latest" is the last stable offset. Each partition carries the leader epoch the metadata
/// knows (KIP-320, v4+): a deposed leader answers FENCED_LEADER_EPOCH instead of old offsets.
pub async fn list_offsets(
    client: &Client,
    broker: i32,
    isolation: IsolationLevel,
    wanted: &[(TopicPartition, OffsetSpec)],
) -> Result<BTreeMap<TopicPartition, OffsetAnswer>, ClientError> {
    let version = client
        .connection(broker, Purpose::Default)
        .await?
        .version_for::<ListOffsetsRequest>(ApiKey::ListOffsets)?;
    let metadata = client.metadata();
    let leader_epoch = |tp: &TopicPartition| {
        let known = metadata
            .topics
            .get(&*tp.topic)
            .and_then(|topic| topic.partitions.get(&tp.partition))
            .map_or(-1, |partition| partition.leader_epoch);
        if version >= FIRST_CURRENT_LEADER_EPOCH_VERSION {
            known
        } else {
            -1
        }
    };
    let topics = by_topic(wanted.iter().map(|(tp, spec)| {
        (
            tp,
            ListOffsetsPartition::default()
                .with_partition_index(tp.partition)
                .with_current_leader_epoch(leader_epoch(tp))
                .with_timestamp(spec.wire_timestamp()),
        )
    }));
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation.wire())
        .with_topics(
            topics
                .into_iter()
                .map(|(topic, partitions)| {
                    ListOffsetsTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let (_, response) = client
        .send_with(
            broker,
            Purpose::Default,
            &request,
            SendOptions {
                version: Some(version),
                ..SendOptions::default()
            },
        )
        .await?;
    let mut answers = BTreeMap::new();
    for topic in &response.topics {
        for p in &topic.partitions {
            let tp = TopicPartition::new(topic.name.0.as_str(), p.partition_index);
            let answer = match ResponseError::try_from_code(p.error_code) {
                Some(error) => {
                    client.observe_error(error);
                    Err(error)
                }
                None => Ok(p.offset),
            };
            answers.insert(tp, answer);
        }
    }
    Ok(answers)
}
