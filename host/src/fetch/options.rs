//! Fetch settings and their defaults.

use std::time::Duration;

use super::size::FetchSize;
use super::IsolationLevel;

/// Fetch settings.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub max_wait: Duration,
    pub min_bytes: i32,
    /// How much one answer may carry: by default it follows the round trip to the leader
    /// (2 MiB near the broker, up to 50 MiB across slow links; see [`super::size`]).
    pub max_bytes: FetchSize,
    /// One partition's part of an answer, at most.
    pub partition_max_bytes: i32,
    /// Fetched batches held for the application, at most (as fetched; a batch a poll has
    /// started on counts decompressed): no fetch starts while the buffer holds this much, and
    /// a fetch asks for no more than what is left (one answer per broker may overshoot by its
    /// first batch, which Kafka always sends).
    pub max_buffered_bytes: usize,
    pub isolation: IsolationLevel,
    /// Backoff for failed fetches, ListOffsets and metadata refreshes.
    pub retry_backoff: Duration,
    pub retry_backoff_max: Duration,
    /// The consumer group, if any (the reset policy sees it).
    pub group: Option<String>,
    /// (`client.rack`, KIP-392) The rack this consumer runs in: a leader whose brokers pick
    /// replicas by rack (`replica.selector.class`) names a replica in it to fetch from.
    pub rack: Option<String>,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            max_wait: Duration::from_millis(500),
            min_bytes: 1,
            max_bytes: FetchSize::FollowsLink,
            partition_max_bytes: 1024 * 1024,
            max_buffered_bytes: 64 * 1024 * 1024,
            isolation: IsolationLevel::ReadUncommitted,
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(1),
            group: None,
            rack: None,
        }
    }
}
