//! Validating positions against a new leader (KIP-320): one OffsetForLeaderEpoch request for
//! the partitions one leader leads whose positions it has not answered for yet.
//!
//! For each position the request names the epoch of the record before it; the leader answers
//! the largest epoch it has at or below that one and where that epoch ends in its log. An end
//! below the position means the records the consumer read past it are gone (an unclean leader
//! election truncated the log): the partition goes to the reset policy
//! ([`super::partition::Partitions::validated`]).
//!
//! Consumers need v3+ (which names the replica id: -1 for a consumer). A broker that does not
//! speak it cannot validate; the position then stands, and the fetch's last fetched epoch is
//! the only check.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{ApiKey, BrokerId, OffsetForLeaderEpochRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::client::Client;
use crate::error_chain::Chain;
use crate::net::{NetError, Purpose, SendOptions};

use super::partition::Stamp;
use super::{by_topic, TopicPartition};

/// The first version a consumer may send (it carries the replica id).
const FIRST_CONSUMER_VERSION: i16 = 3;
/// "No such epoch" in an answer.
const UNDEFINED_EPOCH: i32 = -1;
const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// One position to check, as the driver saw it when the job started.
#[derive(Debug, Clone)]
pub struct ValidateRequest {
    pub tp: TopicPartition,
    /// The partition's stamp (the stale-answer guard).
    pub stamp: Stamp,
    pub position: i64,
    /// The leader epoch of the record before `position`.
    pub position_epoch: i32,
    /// The leader epoch the metadata gives the partition.
    pub leader_epoch: i32,
}

/// What became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValidateOutcome {
    /// The leader's log has the position's epoch end at this offset (`None`: it knows no
    /// epoch that old).
    EpochEndsAt(Option<i64>),
    /// The broker cannot validate (too old a protocol): the position stands unchecked.
    Unsupported,
    /// A partition error (a stale leader epoch, a moved leader) or a failed request: retry.
    Retry {
        error: Option<ResponseError>,
        reason: String,
    },
}

/// Sends one OffsetForLeaderEpoch to `leader` for `requests`.
pub async fn validate(
    client: &Client,
    leader: i32,
    requests: Vec<ValidateRequest>,
) -> Vec<(ValidateRequest, ValidateOutcome)> {
    let retry_all = |requests: Vec<ValidateRequest>, reason: String| {
        requests
            .into_iter()
            .map(|r| {
                let outcome = ValidateOutcome::Retry {
                    error: None,
                    reason: reason.clone(),
                };
                (r, outcome)
            })
            .collect()
    };
    let version = match client.connection(leader, Purpose::Default).await {
        Ok(connection) => match connection
            .version_for::<OffsetForLeaderEpochRequest>(ApiKey::OffsetForLeaderEpoch)
        {
            Ok(version) if version >= FIRST_CONSUMER_VERSION => version,
            Ok(_) | Err(NetError::UnsupportedVersion { .. }) => {
                return requests
                    .into_iter()
                    .map(|r| (r, ValidateOutcome::Unsupported))
                    .collect();
            }
            Err(error) => return retry_all(requests, Chain(&error).to_string()),
        },
        Err(error) => return retry_all(requests, Chain(&error).to_string()),
    };
    let topics = by_topic(requests.iter().map(|r| {
        (
            &r.tp,
            OffsetForLeaderPartition::default()
                .with_partition(r.tp.partition)
                .with_current_leader_epoch(r.leader_epoch)
                .with_leader_epoch(r.position_epoch),
        )
    }));
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(
            topics
                .into_iter()
                .map(|(topic, partitions)| {
                    OffsetForLeaderTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let options = SendOptions {
        version: Some(version),
        ..SendOptions::default()
    };
    let response = match client
        .send_with(leader, Purpose::Default, &request, options)
        .await
    {
        Ok((_, response)) => response,
        Err(error) => return retry_all(requests, Chain(&error).to_string()),
    };
    let mut answers: BTreeMap<TopicPartition, ValidateOutcome> = BTreeMap::new();
    for topic in &response.topics {
        for p in &topic.partitions {
            let tp = TopicPartition::new(topic.topic.0.as_str(), p.partition);
            let outcome = match ResponseError::try_from_code(p.error_code) {
                Some(error) => ValidateOutcome::Retry {
                    error: Some(error),
                    reason: format!("the leader answered {error}"),
                },
                None if p.leader_epoch == UNDEFINED_EPOCH
                    || p.end_offset == UNDEFINED_EPOCH_OFFSET =>
                {
                    ValidateOutcome::EpochEndsAt(None)
                }
                None => ValidateOutcome::EpochEndsAt(Some(p.end_offset)),
            };
            answers.insert(tp, outcome);
        }
    }
    requests
        .into_iter()
        .map(|r| {
            let outcome = answers
                .remove(&r.tp)
                .unwrap_or_else(|| ValidateOutcome::Retry {
                    error: None,
                    reason: "the leader left the partition out of its answer".to_string(),
                });
            (r, outcome)
        })
        .collect()
}
