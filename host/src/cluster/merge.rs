//! How a Metadata answer becomes the next snapshot.
//!
//! Rules (franz-go's `mergeTopicPartitions`):
//! - brokers, the controller and the cluster id come from the newest answer;
//! - an answer for some topics updates only those topics; one for every topic is the whole
//!   truth, and topics it leaves out are gone;
//! - within a topic the answer is taken partition by partition: a partition whose leader epoch
//!   went down keeps its old entry (the answering broker lags behind the one that answered
//!   before), and a partition the answer leaves out is kept (partition counts never shrink);
//! - a topic-level error, or a new topic id (deleted and created again), replaces the topic
//!   whole.

use std::collections::BTreeMap;
use std::time::Instant;

use super::{Metadata, MetadataScope, PartitionInfo, TopicInfo};

impl Metadata {
    /// The snapshot after `answer` (for `scope`) is merged into this one: one generation on.
    pub fn merge(&self, answer: Metadata, scope: &MetadataScope) -> Metadata {
        let mut topics = match scope {
            MetadataScope::AllTopics => BTreeMap::new(),
            MetadataScope::Topics(asked) => {
                let mut kept = self.topics.clone();
                // The answer speaks for every topic asked about, also those it leaves out.
                kept.retain(|name, _| !asked.contains(name));
                kept
            }
        };
        for (name, fresh) in answer.topics {
            let merged = match self.topics.get(&name) {
                Some(old) => merge_topic(old, fresh),
                None => fresh,
            };
            topics.insert(name, merged);
        }
        let now = answer.fetched_at.unwrap_or_else(Instant::now);
        let generation = self.generation + 1;
        let all_topics = *scope == MetadataScope::AllTopics;
        Metadata {
            cluster_id: answer.cluster_id,
            controller: answer.controller,
            brokers: answer.brokers,
            topics,
            fetched_at: Some(now),
            all_topics_fetched_at: if all_topics {
                Some(now)
            } else {
                self.all_topics_fetched_at
            },
            generation,
            all_topics_generation: if all_topics {
                generation
            } else {
                self.all_topics_generation
            },
        }
    }
}

fn merge_topic(old: &TopicInfo, fresh: TopicInfo) -> TopicInfo {
    let same_topic =
        old.topic_id == fresh.topic_id || old.topic_id == [0; 16] || fresh.topic_id == [0; 16];
    if fresh.error.is_some() || !same_topic {
        return fresh;
    }
    let answered = fresh.partitions.len();
    let mut partitions = old.partitions.clone();
    for (index, partition) in fresh.partitions {
        match partitions.get(&index) {
            Some(known) if went_back(known, &partition) => {
                tracing::debug!(
                    topic = %fresh.name,
                    partition = index,
                    known_epoch = known.leader_epoch,
                    answered_epoch = partition.leader_epoch,
                    "metadata answer has an older leader epoch; keeping the newer entry"
                );
            }
            _ => {
                partitions.insert(index, partition);
            }
        }
    }
    if partitions.len() > answered {
        tracing::debug!(
            topic = %fresh.name,
            answered,
            known = partitions.len(),
            "metadata answer is missing partitions; keeping them"
        );
    }
    TopicInfo {
        partitions,
        ..fresh
    }
}

/// The answer's leader epoch is known and lower than the one we hold.
fn went_back(known: &PartitionInfo, answered: &PartitionInfo) -> bool {
    answered.leader_epoch >= 0 && answered.leader_epoch < known.leader_epoch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::BrokerInfo;
    use kafka_protocol::error::ResponseError;

    fn partition(index: i32, leader: i32, epoch: i32) -> PartitionInfo {
        PartitionInfo {
            partition: index,
            leader,
            leader_epoch: epoch,
            replicas: vec![leader],
            isr: vec![leader],
            error: None,
        }
    }

    fn topic(name: &str, partitions: &[(i32, i32, i32)]) -> TopicInfo {
        TopicInfo {
            name: name.to_string(),
            topic_id: [0; 16],
            is_internal: false,
            error: None,
            partitions: partitions
                .iter()
                .map(|(index, leader, epoch)| (*index, partition(*index, *leader, *epoch)))
                .collect(),
        }
    }

    fn answer(brokers: &[i32], topics: Vec<TopicInfo>) -> Metadata {
        Metadata {
            brokers: brokers
                .iter()
                .map(|id| {
                    let info = BrokerInfo {
                        id: *id,
                        host: "h".into(),
                        port: 9092,
                        rack: None,
                    };
                    (*id, info)
                })
                .collect(),
            topics: topics.into_iter().map(|t| (t.name.clone(), t)).collect(),
            fetched_at: Some(Instant::now()),
            ..Metadata::default()
        }
    }

    fn first(topics: Vec<TopicInfo>) -> Metadata {
        Metadata::default().merge(answer(&[1, 2], topics), &MetadataScope::AllTopics)
    }

    #[test]
    fn an_answer_for_some_topics_keeps_the_others() {
        let before = first(vec![topic("a", &[(0, 1, 3)]), topic("b", &[(0, 2, 5)])]);
        assert_eq!(before.generation, 1);
        let after = before.merge(
            answer(&[1, 2], vec![topic("a", &[(0, 2, 4)])]),
            &MetadataScope::topics(["a"]),
        );
        assert_eq!(after.generation, 2);
        assert_eq!(after.leader("a", 0), Some(2));
        assert_eq!(after.leader("b", 0), Some(2), "topic b was not asked about");
        assert_eq!(after.all_topics_generation, 1);
        assert_eq!(after.all_topics_fetched_at, before.all_topics_fetched_at);
    }

    #[test]
    fn a_lower_leader_epoch_keeps_the_old_entry() {
        let before = first(vec![topic("a", &[(0, 1, 7), (1, 1, 7)])]);
        // A lagging broker answers epoch 6 for partition 0; partition 1 moved on (epoch 8).
        let after = before.merge(
            answer(&[1, 2], vec![topic("a", &[(0, 2, 6), (1, 2, 8)])]),
            &MetadataScope::AllTopics,
        );
        assert_eq!(after.leader("a", 0), Some(1));
        assert_eq!(after.topics["a"].partitions[&0].leader_epoch, 7);
        assert_eq!(after.leader("a", 1), Some(2));
        // An answer without epochs (-1) says nothing about them: it is taken.
        let unknown = after.merge(
            answer(&[1, 2], vec![topic("a", &[(0, 2, -1)])]),
            &MetadataScope::AllTopics,
        );
        assert_eq!(unknown.leader("a", 0), Some(2));
    }

    #[test]
    fn an_answer_for_every_topic_drops_the_topics_it_leaves_out() {
        let before = first(vec![topic("a", &[(0, 1, 0)]), topic("b", &[(0, 1, 0)])]);
        let after = before.merge(
            answer(&[1], vec![topic("a", &[(0, 1, 0)])]),
            &MetadataScope::AllTopics,
        );
        assert!(!after.topics.contains_key("b"));
        assert_eq!(after.brokers.keys().copied().collect::<Vec<_>>(), [1]);
        assert_eq!(after.all_topics_generation, after.generation);
        // A topic asked about and left out of the answer is gone too.
        let gone = after.merge(answer(&[1], vec![]), &MetadataScope::topics(["a"]));
        assert!(gone.topics.is_empty());
    }

    #[test]
    fn partitions_are_added_never_dropped_and_errors_replace_the_topic() {
        let before = first(vec![topic("a", &[(0, 1, 0), (1, 1, 0)])]);
        let grown = before.merge(
            answer(&[1], vec![topic("a", &[(0, 1, 0), (1, 1, 0), (2, 1, 0)])]),
            &MetadataScope::AllTopics,
        );
        assert_eq!(grown.partition_counts([&"a".to_string()])["a"], 3);
        let lagging = grown.merge(
            answer(&[1], vec![topic("a", &[(0, 1, 0), (1, 1, 0)])]),
            &MetadataScope::AllTopics,
        );
        assert_eq!(lagging.topics["a"].partitions.len(), 3);
        let deleted = TopicInfo {
            error: Some(ResponseError::UnknownTopicOrPartition),
            partitions: BTreeMap::new(),
            ..topic("a", &[])
        };
        let gone = lagging.merge(answer(&[1], vec![deleted]), &MetadataScope::AllTopics);
        assert!(gone.topics["a"].partitions.is_empty());
        assert!(gone.partition_counts([&"a".to_string()]).is_empty());
    }
}
