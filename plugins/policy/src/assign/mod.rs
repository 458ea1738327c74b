//! Partition assignment over a whole consumer group.
//!
//! The group leader gathers every member's subscription (topics, owned partitions, generation,
//! rack, user data) and the partitions of the subscribed topics, and an assignor maps
//! partitions to members. The built-ins follow Kafka's: [`range`], [`roundrobin`], [`sticky`]
//! and its cooperative variant. [`validate`] checks any assignment (a plugin's included)
//! before it is used.
//!
//! [`broker_uniform`] and [`broker_range`] re-derive Apache Kafka's broker-side assignors of
//! the consumer group protocol (KIP-848) for the policy lab, which compares them with the
//! client-side ones; they are not client-side assignors (the broker assigns under that
//! protocol), and [`Member::owned`] means the member's previous target assignment for them.

mod broker_range;
mod broker_uniform;
mod range;
mod roundrobin;
mod sticky;
mod validate;

use std::collections::BTreeMap;

pub use broker_range::broker_range;
pub use broker_uniform::broker_uniform;
pub use range::range;
pub use roundrobin::roundrobin;
pub use sticky::{cooperative_sticky, hold_back_owned_by_others, sticky};
pub use validate::{validate, AssignmentReport, InvalidAssignment};

/// One member's subscription, as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Member {
    /// The id the group coordinator gave the member: its key in an [`Assignment`], and the
    /// tie-break between equal [`Member::sort_key`]s.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    /// The topics the member subscribes to.
    pub topics: Vec<String>,
    /// What the member's assignor put in its subscription.
    pub user_data: Vec<u8>,
    /// Partitions the member owns now (cooperative and sticky assignors use them).
    pub owned: BTreeMap<String, Vec<i32>>,
    /// The generation in which the member last got an assignment (-1 if never).
    pub generation: i32,
    /// The member's rack (its `client.rack`), `None` if it gave none. For rack-aware
    /// assignors: the built-ins ignore it.
    pub rack: Option<String>,
}

impl Member {
    /// The key members are ordered by: the instance id of a static member (stable across
    /// restarts), else the member id.
    pub fn sort_key(&self) -> &str {
        self.instance_id.as_deref().unwrap_or(&self.member_id)
    }

    /// Whether the member subscribes to `topic`.
    pub fn subscribes(&self, topic: &str) -> bool {
        self.topics.iter().any(|t| t == topic)
    }
}

/// One partition of a topic, with the racks of its replicas.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartitionInfo {
    /// The partition's number within its topic.
    pub partition: i32,
    /// The racks of the brokers that hold the partition's replicas (empty when unknown).
    pub racks: Vec<String>,
}

/// Everything an assignor sees.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Group {
    /// Every member of the group, in no particular order (see [`Group::sorted_members`]).
    pub members: Vec<Member>,
    /// The partitions of every topic some member subscribes to.
    pub topics: BTreeMap<String, Vec<PartitionInfo>>,
    /// The operator's settings for the assignor (plugins get them from the config).
    pub settings: BTreeMap<String, String>,
}

impl Group {
    /// Members ordered by [`Member::sort_key`].
    pub fn sorted_members(&self) -> Vec<&Member> {
        let mut members: Vec<&Member> = self.members.iter().collect();
        members.sort_by(|a, b| {
            a.sort_key()
                .cmp(b.sort_key())
                .then(a.member_id.cmp(&b.member_id))
        });
        members
    }

    /// Every partition of every topic (sorted by topic, then partition).
    pub fn all_partitions(&self) -> Vec<(String, i32)> {
        let mut all: Vec<(String, i32)> = self
            .topics
            .iter()
            .flat_map(|(topic, partitions)| partitions.iter().map(|p| (topic.clone(), p.partition)))
            .collect();
        all.sort();
        all
    }
}

/// One member's share.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberAssignment {
    /// topic -> partitions (sorted).
    pub partitions: BTreeMap<String, Vec<i32>>,
    /// Bytes the assignor sends to the member along with its share (empty: none; the
    /// built-ins send none).
    pub user_data: Vec<u8>,
}

impl MemberAssignment {
    /// Adds `partition` of `topic`, keeping the topic's list sorted; a partition already in
    /// the share is not added twice.
    pub fn add(&mut self, topic: &str, partition: i32) {
        let partitions = self.partitions.entry(topic.to_string()).or_default();
        if let Err(at) = partitions.binary_search(&partition) {
            partitions.insert(at, partition);
        }
    }

    /// How many partitions the share holds, over all topics.
    pub fn count(&self) -> usize {
        self.partitions.values().map(Vec::len).sum()
    }

    /// Every (topic, partition) of the share, sorted by topic, then partition.
    pub fn iter(&self) -> impl Iterator<Item = (&str, i32)> {
        self.partitions
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |p| (t.as_str(), *p)))
    }
}

/// member id -> its share. Every member of the group has an entry (possibly empty).
pub type Assignment = BTreeMap<String, MemberAssignment>;

/// An empty share for every member.
pub fn empty_assignment(group: &Group) -> Assignment {
    group
        .members
        .iter()
        .map(|m| (m.member_id.clone(), MemberAssignment::default()))
        .collect()
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub fn member(id: &str, topics: &[&str]) -> Member {
        Member {
            member_id: id.to_string(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            generation: -1,
            ..Member::default()
        }
    }

    pub fn owning(mut member: Member, owned: &[(&str, i32)]) -> Member {
        for (topic, partition) in owned {
            member
                .owned
                .entry(topic.to_string())
                .or_default()
                .push(*partition);
        }
        member.generation = 1;
        member
    }

    pub fn group(members: Vec<Member>, topics: &[(&str, i32)]) -> Group {
        Group {
            members,
            topics: topics
                .iter()
                .map(|(t, n)| {
                    (
                        t.to_string(),
                        (0..*n)
                            .map(|p| PartitionInfo {
                                partition: p,
                                racks: Vec::new(),
                            })
                            .collect(),
                    )
                })
                .collect(),
            settings: BTreeMap::new(),
        }
    }

    pub fn shares(assignment: &Assignment) -> Vec<(String, Vec<(String, i32)>)> {
        assignment
            .iter()
            .map(|(m, a)| {
                (
                    m.clone(),
                    a.iter().map(|(t, p)| (t.to_string(), p)).collect(),
                )
            })
            .collect()
    }
}
