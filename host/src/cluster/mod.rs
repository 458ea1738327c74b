//! The cluster metadata cache: brokers, topics, partitions and their leaders.
//!
//! Invariant: a snapshot is immutable; a refresh swaps in a new `Arc<Metadata>`, so readers never
//! see a half-applied refresh. The cache is marked stale by errors that mean the metadata is
//! wrong (NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION, a broker that cannot be reached),
//! and the next caller that needs it refreshes it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
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
    pub fetched_at: Option<Instant>,
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
        }
    }

    /// The leader of a partition, if known and present.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        let leader = self.topics.get(topic)?.partitions.get(&partition)?.leader;
        (leader >= 0).then_some(leader)
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

/// The shared cache.
#[derive(Debug, Default)]
pub struct MetadataCache {
    current: RwLock<Arc<Metadata>>,
    stale: AtomicBool,
}

impl MetadataCache {
    pub fn snapshot(&self) -> Arc<Metadata> {
        self.current.read().expect("metadata lock poisoned").clone()
    }

    /// Replaces the snapshot and clears the stale mark.
    pub fn replace(&self, metadata: Metadata) -> Arc<Metadata> {
        let metadata = Arc::new(metadata);
        *self.current.write().expect("metadata lock poisoned") = metadata.clone();
        self.stale.store(false, Ordering::Release);
        metadata
    }

    pub fn mark_stale(&self) {
        self.stale.store(true, Ordering::Release);
    }

    /// Stale when marked, or when no refresh has happened yet.
    pub fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Acquire) || self.snapshot().fetched_at.is_none()
    }
}
