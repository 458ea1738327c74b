//! Fetching: record batch decoding, start offsets, and the consumer that fetches from every
//! partition leader.

pub mod batch;
pub mod consumer;
pub mod offsets;

use std::fmt;
use std::sync::Arc;

pub use batch::{decode_records, BatchError, BatchHeader, ConsumerRecord, DecodedRecords};
pub use consumer::{Consumer, ConsumerError, FetchOptions};
pub use offsets::{list_offsets, OffsetSpec};

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
