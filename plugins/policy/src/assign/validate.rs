//! Checking an assignment before it is used: every assignor's answer, native or plugin.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::{Assignment, Group};

/// Why an assignment cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidAssignment {
    /// Partitions go to a member id that is not in the group.
    UnknownMember {
        /// The member id the group does not have.
        member: String,
    },
    /// A partition that the group's topics do not have goes to a member.
    UnknownPartition {
        /// The member it goes to.
        member: String,
        /// The topic the assignment names.
        topic: String,
        /// The partition number, not among the topic's partitions.
        partition: i32,
    },
    /// A member gets a partition of a topic it does not subscribe to.
    NotSubscribed {
        /// The member that gets the partition.
        member: String,
        /// The topic the member does not subscribe to.
        topic: String,
    },
    /// One partition goes to two members.
    Duplicate {
        /// The topic of the partition given twice.
        topic: String,
        /// The partition given twice.
        partition: i32,
        /// The two members that get it, in member id order.
        members: (String, String),
    },
    /// Cooperative rebalancing: a partition went straight from its owner to another member.
    MovedWhileOwned {
        /// The topic of the moved partition.
        topic: String,
        /// The moved partition.
        partition: i32,
        /// A member that owns the partition now (the first claimant in [`Group::members`]
        /// order).
        owner: String,
        /// The member the assignment gives the partition to.
        member: String,
    },
    /// A subscribed partition nobody got, though no owner holds it for a cooperative
    /// handover: nobody would ever consume it.
    LeftOut {
        /// The topic of the partition nobody got.
        topic: String,
        /// The partition nobody got.
        partition: i32,
    },
}

impl fmt::Display for InvalidAssignment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidAssignment::UnknownMember { member } => {
                write!(
                    f,
                    "assigns partitions to `{member}`, who is not in the group"
                )
            }
            InvalidAssignment::UnknownPartition {
                member,
                topic,
                partition,
            } => {
                write!(
                    f,
                    "assigns {topic}/{partition}, which does not exist, to `{member}`"
                )
            }
            InvalidAssignment::NotSubscribed { member, topic } => {
                write!(
                    f,
                    "assigns topic `{topic}` to `{member}`, who does not subscribe to it"
                )
            }
            InvalidAssignment::Duplicate {
                topic,
                partition,
                members,
            } => write!(
                f,
                "assigns {topic}/{partition} to both `{}` and `{}`",
                members.0, members.1
            ),
            InvalidAssignment::MovedWhileOwned {
                topic,
                partition,
                owner,
                member,
            } => write!(
                f,
                "moves {topic}/{partition} from `{owner}` to `{member}` in one cooperative \
                 rebalance (the owner must revoke it first)"
            ),
            InvalidAssignment::LeftOut { topic, partition } => write!(
                f,
                "gives {topic}/{partition} to nobody, although members subscribe to `{topic}` \
                 and no member holds it (only a partition its owner must revoke first may wait \
                 for the next round)"
            ),
        }
    }
}

/// What a valid assignment leaves out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AssignmentReport {
    /// Subscribed partitions no member got: in cooperative rebalancing, those held back
    /// until their owner revokes them (a follow-up round hands them out). Anything else
    /// left out makes the assignment invalid.
    pub unassigned: Vec<(String, i32)>,
}

/// Checks `assignment` against `group`: only known members, only existing partitions of
/// topics the member subscribes to, each partition at most once, and with `cooperative` no
/// partition handed to a member while another member still owns it. Every subscribed
/// partition must go to someone, except (with `cooperative`) one a member owns: it waits for
/// its owner to revoke it.
pub fn validate(
    group: &Group,
    assignment: &Assignment,
    cooperative: bool,
) -> Result<AssignmentReport, InvalidAssignment> {
    let members: BTreeMap<&str, _> = group
        .members
        .iter()
        .map(|m| (m.member_id.as_str(), m))
        .collect();
    let existing: BTreeSet<(String, i32)> = group.all_partitions().into_iter().collect();
    // Every claimant of each owned partition (two members may claim one, e.g. a stale claim
    // from an older generation).
    let mut owners_of: BTreeMap<(&str, i32), Vec<&str>> = BTreeMap::new();
    for member in &group.members {
        for (topic, partitions) in &member.owned {
            for partition in partitions {
                owners_of
                    .entry((topic.as_str(), *partition))
                    .or_default()
                    .push(&member.member_id);
            }
        }
    }
    let mut taken: BTreeMap<(String, i32), &str> = BTreeMap::new();
    for (member_id, share) in assignment {
        let Some(member) = members.get(member_id.as_str()) else {
            if share.count() == 0 {
                continue;
            }
            return Err(InvalidAssignment::UnknownMember {
                member: member_id.clone(),
            });
        };
        for (topic, partition) in share.iter() {
            if !member.subscribes(topic) {
                return Err(InvalidAssignment::NotSubscribed {
                    member: member_id.clone(),
                    topic: topic.to_string(),
                });
            }
            let key = (topic.to_string(), partition);
            if !existing.contains(&key) {
                return Err(InvalidAssignment::UnknownPartition {
                    member: member_id.clone(),
                    topic: topic.to_string(),
                    partition,
                });
            }
            if let Some(other) = taken.insert(key, member_id) {
                return Err(InvalidAssignment::Duplicate {
                    topic: topic.to_string(),
                    partition,
                    members: (other.to_string(), member_id.clone()),
                });
            }
            if cooperative {
                // A claimant may keep its partition; anyone else must wait for the revoke.
                if let Some(owners) = owners_of.get(&(topic, partition)) {
                    if !owners.contains(&member_id.as_str()) {
                        return Err(InvalidAssignment::MovedWhileOwned {
                            topic: topic.to_string(),
                            partition,
                            owner: owners[0].to_string(),
                            member: member_id.clone(),
                        });
                    }
                }
            }
        }
    }
    let subscribed: BTreeSet<&str> = group
        .members
        .iter()
        .flat_map(|m| m.topics.iter().map(String::as_str))
        .collect();
    let unassigned: Vec<(String, i32)> = existing
        .into_iter()
        .filter(|(topic, _)| subscribed.contains(topic.as_str()))
        .filter(|key| !taken.contains_key(key))
        .collect();
    if let Some((topic, partition)) = unassigned.iter().find(|(topic, partition)| {
        !(cooperative && owners_of.contains_key(&(topic.as_str(), *partition)))
    }) {
        return Err(InvalidAssignment::LeftOut {
            topic: topic.clone(),
            partition: *partition,
        });
    }
    Ok(AssignmentReport { unassigned })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{range, MemberAssignment};
    use super::*;

    #[test]
    fn catches_each_kind_of_bad_assignment() {
        let group = group(
            vec![
                owning(member("a", &["t"]), &[("t", 0)]),
                member("b", &["t"]),
            ],
            &[("t", 2), ("u", 1)],
        );
        let with = |member: &str, partitions: &[(&str, i32)]| {
            let mut assignment = range(&group);
            let mut share = MemberAssignment::default();
            for (t, p) in partitions {
                share.add(t, *p);
            }
            assignment.insert(member.to_string(), share);
            assignment
        };
        assert!(matches!(
            validate(&group, &with("ghost", &[("t", 0)]), false),
            Err(InvalidAssignment::UnknownMember { .. })
        ));
        assert!(matches!(
            validate(&group, &with("b", &[("t", 9)]), false),
            Err(InvalidAssignment::UnknownPartition { .. })
        ));
        assert!(matches!(
            validate(&group, &with("b", &[("u", 0)]), false),
            Err(InvalidAssignment::NotSubscribed { .. })
        ));
        assert!(matches!(
            validate(&group, &with("b", &[("t", 0)]), false),
            Err(InvalidAssignment::Duplicate { .. })
        ));
        let mut moved = Assignment::new();
        let mut share = MemberAssignment::default();
        share.add("t", 0);
        moved.insert("b".into(), share);
        let error = validate(&group, &moved, true).unwrap_err();
        assert!(matches!(error, InvalidAssignment::MovedWhileOwned { .. }));
        assert!(error.to_string().contains("revoke"), "{error}");
        // Eager: t/1 goes to nobody, and nobody holds it.
        assert_eq!(
            validate(&group, &moved, false),
            Err(InvalidAssignment::LeftOut {
                topic: "t".into(),
                partition: 1
            })
        );
    }

    #[test]
    fn only_a_partition_its_owner_must_revoke_may_wait_for_the_next_round() {
        let group = group(
            vec![
                owning(member("a", &["t"]), &[("t", 0), ("t", 1)]),
                member("b", &["t"]),
            ],
            &[("t", 3)],
        );
        let assign = |shares: &[(&str, &[i32])]| {
            let mut assignment = Assignment::new();
            for (member, partitions) in shares {
                let mut share = MemberAssignment::default();
                for p in *partitions {
                    share.add("t", *p);
                }
                assignment.insert(member.to_string(), share);
            }
            assignment
        };
        // Cooperative: t/1 moves from a to b, so it waits while a revokes it.
        let handover = assign(&[("a", &[0]), ("b", &[2])]);
        let report = validate(&group, &handover, true).unwrap();
        assert_eq!(report.unassigned, [("t".to_string(), 1)]);
        // The same answer in eager rebalancing: nobody would consume t/1.
        assert!(matches!(
            validate(&group, &handover, false),
            Err(InvalidAssignment::LeftOut { partition: 1, .. })
        ));
        // t/2 is owned by nobody: leaving it out is never a handover.
        let forgotten = assign(&[("a", &[0, 1])]);
        assert_eq!(
            validate(&group, &forgotten, true),
            Err(InvalidAssignment::LeftOut {
                topic: "t".into(),
                partition: 2
            })
        );
    }

    #[test]
    fn a_partition_claimed_twice_may_stay_with_either_claimant_only() {
        let group = group(
            vec![
                owning(member("a", &["t"]), &[("t", 0)]),
                owning(member("b", &["t"]), &[("t", 0)]),
                member("c", &["t"]),
            ],
            &[("t", 1)],
        );
        let to = |member: &str| {
            let mut share = MemberAssignment::default();
            share.add("t", 0);
            Assignment::from([(member.to_string(), share)])
        };
        validate(&group, &to("a"), true).unwrap();
        validate(&group, &to("b"), true).unwrap();
        assert!(matches!(
            validate(&group, &to("c"), true),
            Err(InvalidAssignment::MovedWhileOwned { .. })
        ));
    }
}
