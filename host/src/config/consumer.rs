//! `[consumer]`: topics, group, reset policy and fetch and group tuning.

use std::time::Duration;

use serde::Deserialize;

use crate::fetch::{FetchOptions, FetchSize, IsolationLevel};
use crate::group::GroupOptions;
use crate::policy::ResetPolicySpec;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsumerConfig {
    pub topics: Vec<String>,
    /// A regex: with a group, the member also subscribes to every matching topic.
    pub topic_pattern: Option<String>,
    pub group: Option<String>,
    pub from: ResetPolicySpec,
    pub isolation_level: IsolationLevel,
    pub fetch_max_wait_ms: u64,
    pub fetch_min_bytes: i32,
    /// Unset: the answer's size follows the round trip to the leader (`fetch::size`).
    pub fetch_max_bytes: Option<i32>,
    pub max_partition_fetch_bytes: i32,
    pub max_buffered_bytes: u64,
    pub retry_backoff_ms: u64,
    pub retry_backoff_max_ms: u64,
    pub max_poll_records: u64,
    pub assignors: Vec<String>,
    pub group_instance_id: Option<String>,
    pub session_timeout_ms: u64,
    pub rebalance_timeout_ms: u64,
    pub heartbeat_interval_ms: u64,
    pub max_poll_interval_ms: u64,
    pub auto_commit_interval_ms: u64,
    pub commit_timeout_ms: u64,
    pub shutdown_timeout_ms: u64,
    pub rack: Option<String>,
    /// `classic` or `consumer` (KIP-848); checked by `validate`.
    pub group_protocol: String,
    pub group_remote_assignor: Option<String>,
}

impl Default for ConsumerConfig {
    /// One source for each default: the fetch and group settings come from the library's
    /// own option types ([`FetchOptions::default`], [`GroupOptions::new`]), so a default
    /// changed there is the config's default too (the README's list is checked by a test).
    fn default() -> Self {
        let fetch = FetchOptions::default();
        let group = GroupOptions::new("", Vec::new());
        let ms = |duration: Duration| duration.as_millis() as u64;
        Self {
            topics: Vec::new(),
            topic_pattern: None,
            group: None,
            from: ResetPolicySpec::Earliest,
            isolation_level: fetch.isolation,
            fetch_max_wait_ms: ms(fetch.max_wait),
            fetch_min_bytes: fetch.min_bytes,
            fetch_max_bytes: match fetch.max_bytes {
                FetchSize::Fixed(bytes) => Some(bytes),
                FetchSize::FollowsLink => None,
            },
            max_partition_fetch_bytes: fetch.partition_max_bytes,
            max_buffered_bytes: fetch.max_buffered_bytes as u64,
            retry_backoff_ms: ms(fetch.retry_backoff),
            retry_backoff_max_ms: ms(fetch.retry_backoff_max),
            max_poll_records: 10_000,
            assignors: vec!["range".into(), "cooperative-sticky".into()],
            group_instance_id: group.instance_id,
            session_timeout_ms: ms(group.session_timeout),
            rebalance_timeout_ms: ms(group.rebalance_timeout),
            heartbeat_interval_ms: ms(group.heartbeat_interval),
            max_poll_interval_ms: ms(group.max_poll_interval),
            auto_commit_interval_ms: group.auto_commit_interval.map_or(0, ms),
            commit_timeout_ms: ms(group.commit_timeout),
            shutdown_timeout_ms: 30_000,
            rack: group.rack,
            group_protocol: group.protocol.name().to_string(),
            group_remote_assignor: group.remote_assignor,
        }
    }
}
