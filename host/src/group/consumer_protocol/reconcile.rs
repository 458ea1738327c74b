//! What a member of a consumer-protocol group does with the assignment the broker sends:
//! pure functions over sets, unit-tested one rule at a time.
//!
//! The broker names partitions by topic id. A target is *resolved* once every id has a name
//! in the metadata; until then the member keeps what it owns of the unknown topics and asks
//! for fresh metadata (a topic created a moment ago may not be in this client's snapshot).
//! A resolved target becomes a [`Step`]: the partitions to give up first, then the ones to
//! take. The broker never hands a partition to a member before its previous owner has
//! acknowledged giving it up, so taking never waits for anyone else.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use crate::cluster::Metadata;
use crate::fetch::TopicPartition;

/// One reconciliation: give up `revoke` (committing their finished positions first), then
/// take `acquire` (from their committed offsets).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    pub revoke: Vec<TopicPartition>,
    pub acquire: Vec<TopicPartition>,
}

impl Step {
    pub fn is_empty(&self) -> bool {
        self.revoke.is_empty() && self.acquire.is_empty()
    }
}

/// The step from `owned` to `target`.
pub fn step(owned: &BTreeSet<TopicPartition>, target: &BTreeSet<TopicPartition>) -> Step {
    Step {
        revoke: owned.difference(target).cloned().collect(),
        acquire: target.difference(owned).cloned().collect(),
    }
}

/// An assignment as the broker sends it: partitions per topic id.
pub type ById = BTreeMap<Uuid, BTreeSet<i32>>;

/// Topic ids and names both ways, from every snapshot seen (ids never change meaning; a
/// deleted and re-created topic gets a new id).
#[derive(Debug, Clone, Default)]
pub struct TopicIds {
    names: BTreeMap<Uuid, String>,
    ids: BTreeMap<String, Uuid>,
}

impl TopicIds {
    /// Learns the ids a metadata snapshot carries (brokers before Metadata v10 send none).
    pub fn learn(&mut self, metadata: &Metadata) {
        for topic in metadata.topics.values() {
            if topic.topic_id == [0; 16] || topic.error.is_some() {
                continue;
            }
            let id = Uuid::from_bytes(topic.topic_id);
            self.names.insert(id, topic.name.clone());
            self.ids.insert(topic.name.clone(), id);
        }
    }

    pub fn id(&self, topic: &str) -> Option<Uuid> {
        self.ids.get(topic).copied()
    }

    pub fn name(&self, id: &Uuid) -> Option<&str> {
        self.names.get(id).map(String::as_str)
    }
}

/// A target named: its partitions, and the ids no snapshot has named yet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    pub partitions: BTreeSet<TopicPartition>,
    pub unknown: BTreeSet<Uuid>,
}

/// Names the partitions of `target`.
pub fn resolve(target: &ById, ids: &TopicIds) -> Resolved {
    let mut resolved = Resolved::default();
    for (id, partitions) in target {
        match ids.name(id) {
            Some(name) => resolved.partitions.extend(
                partitions
                    .iter()
                    .map(|&partition| TopicPartition::new(name, partition)),
            ),
            None => {
                resolved.unknown.insert(*id);
            }
        }
    }
    resolved
}

/// What the member owns, by topic id, as the heartbeat reports it. A partition whose topic
/// has no known id cannot be named to the broker; it is left out (the broker then treats it
/// as given up, which is what a member that cannot name it should do).
pub fn owned_by_id(owned: &BTreeSet<TopicPartition>, ids: &TopicIds) -> ById {
    let mut by_id = ById::new();
    for tp in owned {
        if let Some(id) = ids.id(&tp.topic) {
            by_id.entry(id).or_default().insert(tp.partition);
        }
    }
    by_id
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::TopicInfo;

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition::new(topic, partition)
    }

    fn set(items: &[(&str, i32)]) -> BTreeSet<TopicPartition> {
        items.iter().map(|&(t, p)| tp(t, p)).collect()
    }

    fn id(n: u8) -> Uuid {
        Uuid::from_bytes([n; 16])
    }

    fn ids(topics: &[(&str, u8)]) -> TopicIds {
        let mut metadata = Metadata::default();
        for &(name, n) in topics {
            metadata.topics.insert(
                name.to_string(),
                TopicInfo {
                    name: name.to_string(),
                    topic_id: [n; 16],
                    is_internal: false,
                    error: None,
                    partitions: BTreeMap::new(),
                },
            );
        }
        let mut ids = TopicIds::default();
        ids.learn(&metadata);
        ids
    }

    fn by_id(items: &[(u8, &[i32])]) -> ById {
        items
            .iter()
            .map(|&(n, partitions)| (id(n), partitions.iter().copied().collect()))
            .collect()
    }

    #[test]
    fn a_step_gives_up_what_left_the_target_and_takes_what_is_new() {
        let owned = set(&[("a", 0), ("a", 1), ("b", 0)]);
        let target = set(&[("a", 1), ("b", 0), ("b", 1)]);
        let step = step(&owned, &target);
        assert_eq!(step.revoke, vec![tp("a", 0)]);
        assert_eq!(step.acquire, vec![tp("b", 1)]);
        assert!(super::step(&target, &target).is_empty());
    }

    #[test]
    fn an_empty_target_gives_everything_up() {
        let owned = set(&[("a", 0), ("a", 1)]);
        let step = step(&owned, &BTreeSet::new());
        assert_eq!(step.revoke.len(), 2);
        assert!(step.acquire.is_empty());
    }

    #[test]
    fn ids_are_named_from_the_metadata_and_unknown_ones_are_kept_aside() {
        let ids = ids(&[("a", 1), ("b", 2)]);
        let resolved = resolve(&by_id(&[(1, &[0, 2]), (3, &[0])]), &ids);
        assert_eq!(resolved.partitions, set(&[("a", 0), ("a", 2)]));
        assert_eq!(resolved.unknown, BTreeSet::from([id(3)]));
    }

    #[test]
    fn the_heartbeat_names_owned_partitions_by_topic_id() {
        let ids = ids(&[("a", 1), ("b", 2)]);
        let owned = set(&[("a", 0), ("a", 3), ("b", 1), ("gone", 0)]);
        assert_eq!(owned_by_id(&owned, &ids), by_id(&[(1, &[0, 3]), (2, &[1])]));
    }
}
