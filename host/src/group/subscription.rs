//! What a member subscribes to, and the metadata changes that make it rejoin.
//!
//! - A member subscribes to its explicit topics plus, with a [`TopicPattern`], every topic in
//!   the metadata whose name matches (internal topics never match). The pattern is evaluated
//!   against an answer for every topic, before each JoinGroup and after each metadata refresh.
//! - The leader remembers the partition count of every topic the group subscribes to as its
//!   assignment saw them (Java's `assignmentSnapshot`) and compares each new snapshot with it
//!   (`metadataSnapshot`): partitions added, a topic created or deleted mean the assignment is
//!   out of date, and the leader rejoins so the group is assigned again.
//! - Every member compares the topics it joined with against what its subscription matches
//!   now; a change means it rejoins with the new topics.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::cluster::Metadata;

/// A regular expression over topic names (`consumer.topic_pattern`, `--topic-pattern`).
#[derive(Debug, Clone)]
pub struct TopicPattern(regex::Regex);

impl TopicPattern {
    pub fn new(pattern: &str) -> Result<TopicPattern, regex::Error> {
        regex::Regex::new(pattern).map(TopicPattern)
    }

    /// True when the name matches (anywhere, unless the pattern anchors it with `^`/`$`).
    pub fn matches(&self, topic: &str) -> bool {
        self.0.is_match(topic)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The topics a member subscribes to under `metadata`: `explicit`, and the existing,
/// non-internal topics `pattern` matches; sorted, each once.
pub fn subscribed_topics(
    explicit: &[String],
    pattern: Option<&TopicPattern>,
    metadata: &Metadata,
) -> Vec<String> {
    let mut topics: BTreeSet<String> = explicit.iter().cloned().collect();
    if let Some(pattern) = pattern {
        topics.extend(
            metadata
                .topics
                .values()
                .filter(|t| !t.is_internal && t.error.is_none() && pattern.matches(&t.name))
                .map(|t| t.name.clone()),
        );
    }
    topics.into_iter().collect()
}

/// Why a stable member goes back to JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejoinReason {
    /// The member's pattern matches other topics now.
    SubscriptionChanged {
        added: Vec<String>,
        removed: Vec<String>,
    },
    /// (Leader) partition counts differ from those the assignment was made with: topic ->
    /// (then, now); `None` for a topic that did not exist.
    PartitionsChanged {
        changes: BTreeMap<String, (Option<usize>, Option<usize>)>,
    },
}

impl fmt::Display for RejoinReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejoinReason::SubscriptionChanged { added, removed } => write!(
                f,
                "the topic pattern matches other topics (added {added:?}, removed {removed:?})"
            ),
            RejoinReason::PartitionsChanged { changes } => {
                f.write_str("partition counts changed since the assignment:")?;
                for (topic, (then, now)) in changes {
                    write!(f, " {topic} {then:?} -> {now:?};")?;
                }
                Ok(())
            }
        }
    }
}

/// What a member compares new metadata with.
#[derive(Debug, Clone, Default)]
pub struct Followed {
    /// The topics of the member's last JoinGroup.
    joined_with: Vec<String>,
    /// Leader only: every topic the group subscribes to, with the partition counts the
    /// assignment was made with (topics that did not exist are absent).
    assigned: Option<(BTreeSet<String>, BTreeMap<String, usize>)>,
}

impl Followed {
    /// The member joins with `topics`.
    pub fn joined_with(&mut self, topics: Vec<String>) {
        self.joined_with = topics;
        self.assigned = None;
    }

    pub fn topics(&self) -> &[String] {
        &self.joined_with
    }

    /// This member led the group and assigned `group_topics` seeing `counts`.
    pub fn assigned(&mut self, group_topics: BTreeSet<String>, counts: BTreeMap<String, usize>) {
        self.assigned = Some((group_topics, counts));
    }

    /// Whether `metadata` means the member must rejoin. The pattern is checked only against
    /// snapshots that hold an answer for every topic.
    pub fn rejoin_reason(
        &self,
        explicit: &[String],
        pattern: Option<&TopicPattern>,
        metadata: &Metadata,
    ) -> Option<RejoinReason> {
        if pattern.is_some() && metadata.all_topics_generation > 0 {
            let now = subscribed_topics(explicit, pattern, metadata);
            if now != self.joined_with {
                let before: BTreeSet<&String> = self.joined_with.iter().collect();
                let after: BTreeSet<&String> = now.iter().collect();
                return Some(RejoinReason::SubscriptionChanged {
                    added: after.difference(&before).map(|t| t.to_string()).collect(),
                    removed: before.difference(&after).map(|t| t.to_string()).collect(),
                });
            }
        }
        let (group_topics, then) = self.assigned.as_ref()?;
        let now = metadata.partition_counts(group_topics);
        let changes: BTreeMap<String, (Option<usize>, Option<usize>)> = group_topics
            .iter()
            .map(|topic| {
                let counts = (then.get(topic).copied(), now.get(topic).copied());
                (topic.clone(), counts)
            })
            .filter(|(_, (then, now))| then != now)
            .collect();
        (!changes.is_empty()).then_some(RejoinReason::PartitionsChanged { changes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{PartitionInfo, TopicInfo};
    use kafka_protocol::error::ResponseError;

    fn metadata(topics: &[(&str, usize, bool)]) -> Metadata {
        Metadata {
            topics: topics
                .iter()
                .map(|(name, partitions, internal)| {
                    let info = TopicInfo {
                        name: name.to_string(),
                        topic_id: [0; 16],
                        is_internal: *internal,
                        error: None,
                        partitions: (0..*partitions as i32)
                            .map(|p| {
                                let partition = PartitionInfo {
                                    partition: p,
                                    leader: 1,
                                    leader_epoch: 0,
                                    replicas: vec![1],
                                    isr: vec![1],
                                    error: None,
                                };
                                (p, partition)
                            })
                            .collect(),
                    };
                    (name.to_string(), info)
                })
                .collect(),
            generation: 1,
            all_topics_generation: 1,
            ..Metadata::default()
        }
    }

    #[test]
    fn a_pattern_matches_existing_non_internal_topics_beside_the_explicit_ones() {
        let pattern = TopicPattern::new("^(ev|__).*").unwrap();
        let mut snapshot = metadata(&[
            ("events", 2, false),
            ("evil", 1, false),
            ("__consumer_offsets", 50, true),
            ("other", 1, false),
        ]);
        snapshot.topics.get_mut("evil").unwrap().error =
            Some(ResponseError::UnknownTopicOrPartition);
        assert_eq!(
            subscribed_topics(&["other".into()], Some(&pattern), &snapshot),
            ["events", "other"]
        );
        assert_eq!(
            subscribed_topics(&["b".into(), "a".into()], None, &snapshot),
            ["a", "b"]
        );
    }

    #[test]
    fn a_member_rejoins_when_its_pattern_matches_a_new_topic() {
        let pattern = TopicPattern::new("^follow-").unwrap();
        let before = metadata(&[("follow-a", 1, false)]);
        let mut followed = Followed::default();
        followed.joined_with(subscribed_topics(&[], Some(&pattern), &before));
        assert_eq!(followed.rejoin_reason(&[], Some(&pattern), &before), None);
        let after = metadata(&[("follow-a", 1, false), ("follow-b", 1, false)]);
        assert_eq!(
            followed.rejoin_reason(&[], Some(&pattern), &after),
            Some(RejoinReason::SubscriptionChanged {
                added: vec!["follow-b".into()],
                removed: vec![],
            })
        );
        // A snapshot without an answer for every topic says nothing about the pattern.
        let partial = Metadata {
            all_topics_generation: 0,
            ..after
        };
        assert_eq!(followed.rejoin_reason(&[], Some(&pattern), &partial), None);
    }

    #[test]
    fn the_leader_rejoins_when_partition_counts_change() {
        let explicit = vec!["a".to_string()];
        let before = metadata(&[("a", 2, false)]);
        let mut followed = Followed::default();
        followed.joined_with(explicit.clone());
        // Another member subscribes to `b`, which does not exist yet.
        let group_topics = BTreeSet::from(["a".to_string(), "b".to_string()]);
        followed.assigned(group_topics.clone(), before.partition_counts(&group_topics));
        assert_eq!(followed.rejoin_reason(&explicit, None, &before), None);
        let grown = metadata(&[("a", 4, false), ("b", 1, false)]);
        assert_eq!(
            followed.rejoin_reason(&explicit, None, &grown),
            Some(RejoinReason::PartitionsChanged {
                changes: BTreeMap::from([
                    ("a".to_string(), (Some(2), Some(4))),
                    ("b".to_string(), (None, Some(1))),
                ]),
            })
        );
        // A member that did not lead watches nothing but its own subscription.
        followed.joined_with(explicit.clone());
        assert_eq!(followed.rejoin_reason(&explicit, None, &grown), None);
    }
}
