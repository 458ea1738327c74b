//! Fetching: per-partition state machines, a background fetch loop per leader with incremental
//! sessions, record decoding, offset resets through a policy, and the consumer handle.
//!
//! - [`consumer`]: the public handle (`assign`, `poll`, `seek`, `pause`, ...).
//! - [`driver`]: the background task that starts what the plan says and applies the answers.
//! - [`plan`]: what to send next, a pure function of a snapshot (unit-tested rule by rule).
//! - [`state`]: what the handle and the driver share (one lock, two wake-ups); [`options`]:
//!   the fetch settings.
//! - [`partition`]: the per-partition state machine and its epochs (the stale-answer guard).
//! - [`fetch_job`], [`session`]: one Fetch request to one leader; KIP-227 sessions.
//! - [`size`]: how much one answer may carry (fixed, or following the round trip).
//! - [`batch`], [`transactions`]: record batches to records; read_committed filtering.
//! - [`reset`], [`offsets`]: resolving resets with the policy and ListOffsets.
//! - [`validate`]: checking positions against a new leader (KIP-320 OffsetForLeaderEpoch).
//! - [`buffer`]: fetched records waiting for the user (bounded: back-pressure).
//! - [`delivery`]: the records the application still has in hand (what commits may cover).

pub mod batch;
pub mod buffer;
pub mod consumer;
pub mod delivery;
pub mod driver;
pub mod error;
pub mod fetch_job;
pub mod offsets;
pub mod options;
pub mod partition;
pub mod plan;
pub mod reset;
pub mod session;
pub mod size;
pub mod state;
pub mod transactions;
pub mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

pub use batch::{decode_records, BatchError, BatchHeader, ConsumerRecord, DecodedRecords};
pub use consumer::Consumer;
pub use error::{ConsumerError, PartitionError, TopicRefused};
pub use offsets::{list_offsets, OffsetSpec};
pub use options::FetchOptions;
pub use partition::{CommittedOffset, PartitionState, ResetCause, StartAt};
pub use size::FetchSize;
pub use state::{FetchStats, ResetKind};

/// A topic and a partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: Arc<str>,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: &str, partition: i32) -> Self {
        Self {
            topic: Arc::from(topic),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// Groups per-partition items by topic, topics in order: requests name partitions per topic.
pub fn by_topic<'a, T>(
    items: impl IntoIterator<Item = (&'a TopicPartition, T)>,
) -> BTreeMap<&'a str, Vec<T>> {
    let mut topics: BTreeMap<&'a str, Vec<T>> = BTreeMap::new();
    for (tp, item) in items {
        topics.entry(&tp.topic).or_default().push(item);
    }
    topics
}

/// Which records a fetch may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IsolationLevel {
    /// Everything up to the high watermark, aborted transactions included.
    #[default]
    ReadUncommitted,
    /// Only committed transactions, up to the last stable offset.
    ReadCommitted,
}

impl IsolationLevel {
    pub fn wire(self) -> i8 {
        match self {
            IsolationLevel::ReadUncommitted => 0,
            IsolationLevel::ReadCommitted => 1,
        }
    }
}
