//! The cluster metadata: brokers, topics, partitions and their leaders.
//!
//! - [`Metadata`]: one immutable snapshot, numbered by a generation.
//! - [`merge`]: how an answer becomes the next snapshot (per topic, per partition; a lower
//!   leader epoch never replaces a higher one).
//! - [`cache`]: the shared cache: the current snapshot, stale marks stamped with the
//!   generation they were made under, the max age.
//! - [`refreshes`]: when each scope was last asked for and answered: the floor between
//!   requests for the same topics, and when a cached answer is current enough.
//!
//! Invariant: a snapshot is immutable; a refresh merges its answer into a new `Arc<Metadata>`,
//! so readers never see a half-applied refresh.

pub mod cache;
pub mod merge;
pub mod refreshes;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::MetadataResponse;

/// One broker as the cluster advertises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerInfo {
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// One partition's leadership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    /// -1 when the partition has no leader right now.
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub error: Option<ResponseError>,
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub topic_id: [u8; 16],
    pub is_internal: bool,
    pub error: Option<ResponseError>,
    pub partitions: BTreeMap<i32, PartitionInfo>,
}

/// A consistent snapshot of cluster metadata.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    pub cluster_id: Option<String>,
    pub controller: i32,
    pub brokers: BTreeMap<i32, BrokerInfo>,
    pub topics: BTreeMap<String, TopicInfo>,
    /// When the newest answer in this snapshot arrived (`None`: nothing fetched yet).
    pub fetched_at: Option<Instant>,
    /// When the last answer naming every topic arrived; the max age counts from it.
    pub all_topics_fetched_at: Option<Instant>,
    /// Numbers the snapshots of one cache: every merged answer adds one (0: nothing fetched).
    pub generation: u64,
    /// The generation of the last answer naming every topic (0: none yet).
    pub all_topics_generation: u64,
}

/// Which topics a Metadata request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataScope {
    /// Every topic: the answer is the whole truth (topics it leaves out are gone).
    AllTopics,
    /// These topics: the answer updates them only.
    Topics(BTreeSet<String>),
}

impl MetadataScope {
    pub fn topics<I, S>(names: I) -> MetadataScope
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        MetadataScope::Topics(names.into_iter().map(Into::into).collect())
    }

    /// True when an answer for `self` also answers `wanted`.
    pub fn covers(&self, wanted: &MetadataScope) -> bool {
        match (self, wanted) {
            (MetadataScope::AllTopics, _) => true,
            (MetadataScope::Topics(_), MetadataScope::AllTopics) => false,
            (MetadataScope::Topics(asked), MetadataScope::Topics(wanted)) => {
                wanted.is_subset(asked)
            }
        }
    }
}

impl Metadata {
    /// Builds a snapshot from a Metadata response.
    pub fn from_response(response: &MetadataResponse) -> Metadata {
        let brokers = response
            .brokers
            .iter()
            .map(|b| {
                let id = b.node_id.0;
                let info = BrokerInfo {
                    id,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.as_ref().map(|r| r.to_string()),
                };
                (id, info)
            })
            .collect();
        let topics = response
            .topics
            .iter()
            .filter_map(|t| {
                let name = t.name.as_ref()?.0.to_string();
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let info = PartitionInfo {
                            partition: p.partition_index,
                            leader: p.leader_id.0,
                            leader_epoch: p.leader_epoch,
                            replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                            isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                            error: ResponseError::try_from_code(p.error_code),
                        };
                        (p.partition_index, info)
                    })
                    .collect();
                let info = TopicInfo {
                    name: name.clone(),
                    topic_id: *t.topic_id.as_bytes(),
                    is_internal: t.is_internal,
                    error: ResponseError::try_from_code(t.error_code),
                    partitions,
                };
                Some((name, info))
            })
            .collect();
        Metadata {
            cluster_id: response.cluster_id.as_ref().map(|c| c.to_string()),
            controller: response.controller_id.0,
            brokers,
            topics,
            fetched_at: Some(Instant::now()),
            ..Metadata::default()
        }
    }

    /// The leader of a partition, if known and present.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        let leader = self.topics.get(topic)?.partitions.get(&partition)?.leader;
        (leader >= 0).then_some(leader)
    }

    /// The racks of these brokers (replicas of a partition), each once, sorted; brokers
    /// without a rack, or unknown, add nothing.
    pub fn racks_of(&self, brokers: &[i32]) -> Vec<String> {
        let racks: std::collections::BTreeSet<&str> = brokers
            .iter()
            .filter_map(|id| self.brokers.get(id)?.rack.as_deref())
            .collect();
        racks.into_iter().map(str::to_string).collect()
    }

    /// A topic that exists: known, without a topic-level error, with partitions.
    pub fn existing_topic(&self, name: &str) -> Option<&TopicInfo> {
        self.topics
            .get(name)
            .filter(|info| info.error.is_none() && !info.partitions.is_empty())
    }

    /// The topic-level error no retry heals that the last answer naming `name` gave (not
    /// authorized to describe it, an invalid name); `None` when it gave none or another.
    /// An answer for every topic leaves out the topics a client may not describe, so only
    /// an answer that named the topic carries its refusal.
    pub fn refusal(&self, name: &str) -> Option<ResponseError> {
        self.topics
            .get(name)
            .and_then(|info| info.error)
            .filter(|error| {
                matches!(
                    error,
                    ResponseError::TopicAuthorizationFailed | ResponseError::InvalidTopicException
                )
            })
    }

    /// The partition count of each of `topics` that exists (no topic-level error, at least
    /// one partition); topics that do not are left out.
    pub fn partition_counts<'a>(
        &self,
        topics: impl IntoIterator<Item = &'a String>,
    ) -> BTreeMap<String, usize> {
        topics
            .into_iter()
            .filter_map(|name| Some((name.clone(), self.existing_topic(name)?.partitions.len())))
            .collect()
    }
}

/// True for error codes that mean our view of the cluster is out of date.
pub fn means_stale_metadata(error: ResponseError) -> bool {
    matches!(
        error,
        ResponseError::NotLeaderOrFollower
            | ResponseError::UnknownTopicOrPartition
            | ResponseError::LeaderNotAvailable
            | ResponseError::FencedLeaderEpoch
            | ResponseError::UnknownLeaderEpoch
            | ResponseError::NotCoordinator
            | ResponseError::BrokerNotAvailable
            | ResponseError::ReplicaNotAvailable
            | ResponseError::UnknownTopicId
            | ResponseError::InconsistentTopicId
            | ResponseError::OffsetNotAvailable
    )
}

pub use cache::{MetadataCache, MetadataOptions, RefreshReason};
