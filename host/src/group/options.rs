//! A group member's settings, with Kafka's names beside ours.

use std::time::Duration;

use super::assignor::Builtin;
use super::subscription::TopicPattern;

/// Which rebalance protocol the member speaks (`group.protocol`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GroupProtocol {
    /// JoinGroup/SyncGroup: the members' leader assigns, with the configured assignors
    /// (built-in or Wasm plugins).
    #[default]
    Classic,
    /// ConsumerGroupHeartbeat (KIP-848, Kafka 4.0+): the broker assigns
    /// (`group.remote.assignor`), each member moves on its own, without a group-wide
    /// barrier.
    Consumer,
}

impl GroupProtocol {
    /// The protocol of a `group.protocol` value (case-insensitive, as the Java client).
    pub fn from_name(name: &str) -> Option<GroupProtocol> {
        match name.to_ascii_lowercase().as_str() {
            "classic" => Some(GroupProtocol::Classic),
            "consumer" => Some(GroupProtocol::Consumer),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            GroupProtocol::Classic => "classic",
            GroupProtocol::Consumer => "consumer",
        }
    }
}

/// Group settings (Kafka's names in parentheses).
#[derive(Debug, Clone)]
pub struct GroupOptions {
    pub group_id: String,
    /// Static membership (`group.instance.id`, KIP-345).
    pub instance_id: Option<String>,
    /// Topics to subscribe to (`subscribe(Collection)`).
    pub topics: Vec<String>,
    /// (`subscribe(Pattern)`) Also subscribe to every non-internal topic whose name matches,
    /// as the metadata lists them: re-evaluated after every metadata refresh (at least every
    /// `net.metadata_max_age_ms`); when the matching set changes the member rejoins.
    pub topic_pattern: Option<TopicPattern>,
    /// (`session.timeout.ms`) No heartbeat for this long: the coordinator drops the member.
    pub session_timeout: Duration,
    /// (`max.poll.interval.ms` for JoinGroup) How long a rebalance may wait for members.
    pub rebalance_timeout: Duration,
    pub heartbeat_interval: Duration,
    /// No poll for this long: the member leaves so its partitions move on.
    pub max_poll_interval: Duration,
    /// `None` turns auto-commit off: nothing is committed unless the application commits
    /// ([`super::GroupConsumer::commit`]), not even before a revoke or on close.
    pub auto_commit_interval: Option<Duration>,
    /// (`default.api.timeout.ms` for commits) How long a commit retries transient errors.
    pub commit_timeout: Duration,
    pub rack: Option<String>,
    /// Used when the chosen assignor fails or answers an invalid assignment.
    pub fallback_assignor: Builtin,
    /// KIP-792: the subscription carries the generation in which the member's owned
    /// partitions were assigned, so a leader can tell a stale claim from a current one (the
    /// cooperative-sticky assignor keeps a partition claimed twice with the newer claim).
    /// `false` sends -1 instead: only for coordinators that rebalance whenever a member's
    /// metadata changes (Tansu 0.6), where a generation inside never lets a group settle.
    pub subscription_generation: bool,
    /// (`group.protocol`) Classic (the default) or the consumer protocol of KIP-848.
    pub protocol: GroupProtocol,
    /// (`group.remote.assignor`) With the consumer protocol: the broker's assignor to use
    /// (`uniform`, `range`); `None` lets the broker choose its default.
    pub remote_assignor: Option<String>,
}

impl GroupOptions {
    pub fn new(group_id: impl Into<String>, topics: Vec<String>) -> Self {
        GroupOptions {
            group_id: group_id.into(),
            instance_id: None,
            topics,
            topic_pattern: None,
            session_timeout: Duration::from_secs(45),
            rebalance_timeout: Duration::from_secs(60),
            heartbeat_interval: Duration::from_secs(3),
            max_poll_interval: Duration::from_secs(300),
            auto_commit_interval: Some(Duration::from_secs(5)),
            commit_timeout: Duration::from_secs(60),
            rack: None,
            fallback_assignor: Builtin::Range,
            subscription_generation: true,
            protocol: GroupProtocol::Classic,
            remote_assignor: None,
        }
    }
}
