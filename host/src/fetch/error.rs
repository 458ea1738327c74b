//! Consumer errors. A [`PartitionError`] stops one partition (until the user seeks it) and is
//! handed to the user once; the other partitions keep flowing.

use kafka_protocol::error::ResponseError;

use crate::client::ClientError;
use crate::cluster::Metadata;
use crate::policy::{PolicyError, ResetReason};

use super::batch::BatchError;
use super::TopicPartition;

/// An error that stopped one partition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PartitionError {
    /// The reset policy declined to reset (`none`, or a policy that answered "fail").
    #[error(
        "{partition}: {reason}; the log holds offsets {log_start}..{high_watermark} and reset \
         policy `{policy}` declined to reset: {message}. The partition stops: seek it to an \
         offset in that range, or choose another policy (--from / consumer.from: earliest, \
         latest, by_duration:PT1H)"
    )]
    ResetRefused {
        partition: TopicPartition,
        reason: ResetReason,
        log_start: i64,
        high_watermark: i64,
        policy: String,
        message: String,
    },
    /// The policy itself failed (a plugin trap, a deadline).
    #[error("{partition}: {error}. The partition stops until it is seeked")]
    PolicyFailed {
        partition: TopicPartition,
        error: PolicyError,
    },
    /// The policy chose an offset outside the log.
    #[error(
        "{partition}: reset policy `{policy}` chose offset {offset}, outside the log \
         ({log_start}..{high_watermark}). The partition stops until it is seeked"
    )]
    InvalidDecision {
        partition: TopicPartition,
        policy: String,
        offset: i64,
        log_start: i64,
        high_watermark: i64,
    },
    /// The broker refused the partition for a reason no retry fixes.
    #[error("{partition}: the broker refused to serve it: {error}. {hint}. The partition stops")]
    Refused {
        partition: TopicPartition,
        error: ResponseError,
        hint: &'static str,
    },
    /// The partition's topic is gone from the cluster's metadata (deleted).
    #[error(
        "{partition}: the topic no longer exists in the cluster's metadata (deleted?). The \
         partition stops; a group reassigns what is left"
    )]
    TopicGone { partition: TopicPartition },
    /// The broker sent record data that cannot be decoded.
    #[error("{partition}: cannot decode records: {error}. The partition stops until it is seeked past the bad batch")]
    Corrupt {
        partition: TopicPartition,
        error: BatchError,
    },
}

impl PartitionError {
    pub fn partition(&self) -> &TopicPartition {
        match self {
            PartitionError::ResetRefused { partition, .. }
            | PartitionError::PolicyFailed { partition, .. }
            | PartitionError::InvalidDecision { partition, .. }
            | PartitionError::Refused { partition, .. }
            | PartitionError::TopicGone { partition }
            | PartitionError::Corrupt { partition, .. } => partition,
        }
    }
}

/// A topic this consumer was asked to read that the cluster refuses to describe to it (an
/// ACL, an invalid name): none of its partitions is read; the other topics go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("topic `{topic}`: the cluster refuses it: {error}. {hint}")]
pub struct TopicRefused {
    pub topic: String,
    pub error: ResponseError,
    pub hint: &'static str,
}

impl TopicRefused {
    /// The refusal `metadata` holds for `topic` (see [`Metadata::refusal`]).
    pub fn in_metadata(metadata: &Metadata, topic: &str) -> Option<TopicRefused> {
        let error = metadata.refusal(topic)?;
        Some(TopicRefused {
            topic: topic.to_string(),
            error,
            hint: topic_refusal_hint(error),
        })
    }
}

/// What to do about a topic-level refusal (in a Metadata or a Fetch answer).
pub(crate) fn topic_refusal_hint(error: ResponseError) -> &'static str {
    match error {
        ResponseError::TopicAuthorizationFailed => {
            "Grant this client's principal Describe and Read on the topic (kafka-acls.sh \
             --add --allow-principal User:NAME --operation Describe --operation Read --topic \
             TOPIC), or leave the topic out"
        }
        ResponseError::InvalidTopicException => {
            "The name is not a valid topic name: check it (letters, digits, '.', '_', '-'; \
             at most 249 characters)"
        }
        _ => "No retry heals this",
    }
}

/// Consumer errors.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumerError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("topic `{0}` does not exist (create it, or check the name)")]
    UnknownTopic(String),
    /// Handed out once by `poll`, like a partition error; the other topics go on.
    #[error(transparent)]
    TopicRefused(#[from] TopicRefused),
    #[error(transparent)]
    Partition(#[from] PartitionError),
    #[error("the consumer is closed")]
    Closed,
}
