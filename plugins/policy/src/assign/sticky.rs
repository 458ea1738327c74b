//! The sticky assignor: as balanced as the subscriptions allow, moving as few partitions as
//! possible away from their current owners. The cooperative variant (KIP-429) additionally
//! holds back, for one rebalance, every partition that would move from one member to another:
//! the old owner revokes it first, and the next rebalance hands it over.
//!
//! The plan, deterministic for a given group:
//! 1. Owned partitions that still exist and are still subscribed stay with their owner; a
//!    partition claimed by two members stays with the newer generation (ties: member order).
//! 2. Partitions nobody keeps go, in order, to the eligible member with the fewest.
//! 3. While some member has two or more partitions more than an eligible member, one moves.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};

use super::{empty_assignment, Assignment, Group, Member};

/// Spreads the partitions as evenly as the subscriptions allow, leaving as many as balance
/// permits with their current owner. Eager: a partition may go straight to a new owner.
pub fn sticky(group: &Group) -> Assignment {
    plan(group)
}

/// [`sticky`], then [`hold_back_owned_by_others`]: a partition that would change owner goes to
/// nobody this rebalance, so its owner revokes it first.
pub fn cooperative_sticky(group: &Group) -> Assignment {
    let mut assignment = plan(group);
    hold_back_owned_by_others(group, &mut assignment);
    assignment
}

/// The cooperative rule (KIP-429): takes out of each share every partition that another
/// member still owns (the owner must revoke it first); the next rebalance hands it over. A
/// partition claimed by several members stays only with a claimant whose claim is from a
/// newer generation than every other (KIP-792: the others' claims are stale); claims from the
/// same generation are held back from everyone, so every claimant revokes it first.
pub fn hold_back_owned_by_others(group: &Group, assignment: &mut Assignment) {
    let mut owners: BTreeMap<(&str, i32), Vec<&Member>> = BTreeMap::new();
    for member in &group.members {
        for (topic, partitions) in &member.owned {
            for partition in partitions {
                owners
                    .entry((topic.as_str(), *partition))
                    .or_default()
                    .push(member);
            }
        }
    }
    for (member_id, share) in assignment.iter_mut() {
        for (topic, partitions) in share.partitions.iter_mut() {
            partitions.retain(|partition| {
                let Some(claimants) = owners.get(&(topic.as_str(), *partition)) else {
                    return true;
                };
                let Some(own) = claimants.iter().find(|m| &m.member_id == member_id) else {
                    return false;
                };
                claimants
                    .iter()
                    .filter(|m| &m.member_id != member_id)
                    .all(|other| other.generation < own.generation)
            });
        }
        share.partitions.retain(|_, ps| !ps.is_empty());
    }
}

fn plan(group: &Group) -> Assignment {
    // Members by index in sort order: the index is also the tie-break.
    let members = group.sorted_members();
    let subscribes: Vec<HashSet<&str>> = members
        .iter()
        .map(|m| m.topics.iter().map(String::as_str).collect())
        .collect();
    let existing: BTreeSet<(String, i32)> = group.all_partitions().into_iter().collect();

    // 1. Keep valid owned partitions; newest generation wins a conflict.
    let mut keeper: BTreeMap<(String, i32), usize> = BTreeMap::new();
    for (i, member) in members.iter().enumerate() {
        for (topic, partitions) in &member.owned {
            if !subscribes[i].contains(topic.as_str()) {
                continue;
            }
            for partition in partitions {
                let key = (topic.clone(), *partition);
                if !existing.contains(&key) {
                    continue;
                }
                match keeper.get(&key) {
                    Some(current) if members[*current].generation >= member.generation => {}
                    _ => {
                        keeper.insert(key, i);
                    }
                }
            }
        }
    }
    let mut held: Vec<BTreeSet<(String, i32)>> = vec![BTreeSet::new(); members.len()];
    for (partition, member) in keeper.iter() {
        held[*member].insert(partition.clone());
    }

    // 2. Everything else, in order, to the least loaded eligible member (ties: member
    // order). Members eligible for the same topics share one min-heap of (count, index);
    // counts only grow, so an entry whose count went stale is pushed back with the current
    // one when it comes up.
    let mut eligible: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, topics) in subscribes.iter().enumerate() {
        for topic in topics {
            eligible.entry(topic).or_default().push(i);
        }
    }
    let mut classes: BTreeMap<&[usize], usize> = BTreeMap::new();
    let mut heaps: Vec<BinaryHeap<Reverse<(usize, usize)>>> = Vec::new();
    let mut class_of: HashMap<&str, usize> = HashMap::new();
    for (topic, class_members) in &eligible {
        let class = *classes.entry(class_members.as_slice()).or_insert_with(|| {
            heaps.push(
                class_members
                    .iter()
                    .map(|i| Reverse((held[*i].len(), *i)))
                    .collect(),
            );
            heaps.len() - 1
        });
        class_of.insert(topic, class);
    }
    for partition in &existing {
        if keeper.contains_key(partition) {
            continue;
        }
        let Some(heap) = class_of
            .get(partition.0.as_str())
            .map(|class| &mut heaps[*class])
        else {
            continue; // nobody subscribes
        };
        while let Some(Reverse((count, i))) = heap.pop() {
            if count != held[i].len() {
                heap.push(Reverse((held[i].len(), i)));
                continue;
            }
            held[i].insert(partition.clone());
            heap.push(Reverse((held[i].len(), i)));
            break;
        }
    }

    // 3. Balance: move one partition at a time from a fuller member to an emptier eligible
    // one while their counts differ by two or more. Every move lowers the sum of squared
    // counts, so this ends.
    let mut by_load: Vec<usize> = (0..members.len()).collect();
    loop {
        by_load.sort_by_key(|i| (held[*i].len(), *i));
        let mut moved = None;
        'search: for from in by_load.iter().rev() {
            let from_count = held[*from].len();
            for to in &by_load {
                if held[*to].len() + 1 >= from_count {
                    break;
                }
                if let Some(partition) = held[*from]
                    .iter()
                    .rev()
                    .find(|(topic, _)| subscribes[*to].contains(topic.as_str()))
                {
                    moved = Some((*from, *to, partition.clone()));
                    break 'search;
                }
            }
        }
        let Some((from, to, partition)) = moved else {
            break;
        };
        held[from].remove(&partition);
        held[to].insert(partition);
    }

    let mut assignment = empty_assignment(group);
    for (i, partitions) in held.into_iter().enumerate() {
        let share = assignment
            .get_mut(&members[i].member_id)
            .expect("member known");
        for (topic, partition) in partitions {
            share.add(&topic, partition);
        }
    }
    assignment
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::validate;
    use super::*;

    fn counts(assignment: &Assignment) -> Vec<usize> {
        assignment.values().map(|a| a.count()).collect()
    }

    #[test]
    fn balanced_from_scratch() {
        let group = group(
            vec![
                member("a", &["t"]),
                member("b", &["t"]),
                member("c", &["t"]),
            ],
            &[("t", 7)],
        );
        let assignment = sticky(&group);
        assert_eq!(counts(&assignment), [3, 2, 2]);
        validate(&group, &assignment, false).unwrap();
    }

    /// a and b own three partitions each of a 6-partition topic; c has just joined.
    fn two_owners_and_a_newcomer() -> Group {
        group(
            vec![
                owning(member("a", &["t"]), &[("t", 0), ("t", 1), ("t", 2)]),
                owning(member("b", &["t"]), &[("t", 3), ("t", 4), ("t", 5)]),
                member("c", &["t"]),
            ],
            &[("t", 6)],
        )
    }

    #[test]
    fn a_joining_member_takes_only_what_balance_needs() {
        // a and b own 3 each; c joins: each gives up one, nothing else moves.
        let group = two_owners_and_a_newcomer();
        let assignment = sticky(&group);
        assert_eq!(counts(&assignment), [2, 2, 2]);
        let kept_a = assignment["a"].partitions["t"]
            .iter()
            .filter(|p| **p <= 2)
            .count();
        let kept_b = assignment["b"].partitions["t"]
            .iter()
            .filter(|p| **p >= 3)
            .count();
        assert_eq!((kept_a, kept_b), (2, 2));
    }

    #[test]
    fn a_leaving_member_s_partitions_are_spread() {
        let group = group(
            vec![
                owning(member("a", &["t"]), &[("t", 0), ("t", 1)]),
                owning(member("b", &["t"]), &[("t", 2), ("t", 3)]),
            ],
            &[("t", 6)],
        );
        let assignment = sticky(&group);
        assert_eq!(counts(&assignment), [3, 3]);
        assert!(assignment["a"].partitions["t"].starts_with(&[0, 1]));
        assert!(assignment["b"].partitions["t"].starts_with(&[2, 3]));
    }

    /// xorshift: a reproducible stream of numbers without a dependency.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn random_groups_get_valid_balanced_assignments() {
        let mut seed = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..500 {
            let members = 1 + next(&mut seed) % 6;
            let partitions = 1 + next(&mut seed) % 20;
            let mut owned_by: Vec<Vec<(&str, i32)>> = vec![Vec::new(); members as usize];
            for p in 0..partitions as i32 {
                // Some partitions already have an owner (maybe one that is gone).
                let owner = next(&mut seed) % (members + 2);
                if let Some(list) = owned_by.get_mut(owner as usize) {
                    list.push(("t", p));
                }
            }
            let group = group(
                (0..members as usize)
                    .map(|i| owning(member(&format!("m{i}"), &["t"]), &owned_by[i]))
                    .collect(),
                &[("t", partitions as i32)],
            );
            let assignment = sticky(&group);
            let report = validate(&group, &assignment, false).unwrap();
            assert!(report.unassigned.is_empty());
            let counts = counts(&assignment);
            let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            assert!(max - min <= 1, "{counts:?}");
            validate(&group, &cooperative_sticky(&group), true).unwrap();
        }
    }

    #[test]
    fn cooperative_holds_back_partitions_that_change_owner() {
        let group = two_owners_and_a_newcomer();
        let assignment = cooperative_sticky(&group);
        // c gets nothing this round: both partitions meant for it are still owned.
        assert_eq!(assignment["c"].count(), 0);
        assert_eq!(counts(&assignment), [2, 2, 0]);
        let report = validate(&group, &assignment, true).unwrap();
        assert_eq!(report.unassigned.len(), 2);
        // Next round: a and b revoked them, so c gets them.
        let next = super::super::testing::group(
            vec![
                owning(
                    member("a", &["t"]),
                    &assignment["a"].iter().collect::<Vec<_>>(),
                ),
                owning(
                    member("b", &["t"]),
                    &assignment["b"].iter().collect::<Vec<_>>(),
                ),
                member("c", &["t"]),
            ],
            &[("t", 6)],
        );
        let second = cooperative_sticky(&next);
        assert_eq!(counts(&second), [2, 2, 2]);
        validate(&next, &second, true).unwrap();
    }

    /// a claims t/0 from generation `a_generation`, b from `b_generation` (b also owns t/1).
    fn two_claimants(a_generation: i32, b_generation: i32) -> Group {
        let mut a = owning(member("a", &["t"]), &[("t", 0)]);
        a.generation = a_generation;
        let mut b = owning(member("b", &["t"]), &[("t", 0), ("t", 1)]);
        b.generation = b_generation;
        group(vec![a, b], &[("t", 2)])
    }

    #[test]
    fn a_partition_claimed_twice_stays_with_the_newer_generation() {
        // b's claim is from generation 5, a's (stale) from 3: b keeps t/0 in both variants,
        // even though a comes first in member order; balance moves t/1 to a (the cooperative
        // variant only once b has revoked it).
        let group = two_claimants(3, 5);
        let assignment = sticky(&group);
        assert_eq!(assignment["b"].partitions["t"], [0], "{assignment:?}");
        assert_eq!(assignment["a"].partitions["t"], [1]);
        let assignment = cooperative_sticky(&group);
        assert_eq!(assignment["b"].partitions["t"], [0], "{assignment:?}");
        assert_eq!(assignment["a"].count(), 0);
        let report = validate(&group, &assignment, true).unwrap();
        assert_eq!(report.unassigned, [("t".to_string(), 1)]);
        // The other way round: a's claim is newer, so a keeps it and b keeps t/1.
        let group = two_claimants(5, 3);
        let assignment = cooperative_sticky(&group);
        assert_eq!(assignment["a"].partitions["t"], [0]);
        assert_eq!(assignment["b"].partitions["t"], [1]);
        validate(&group, &assignment, true).unwrap();
    }

    #[test]
    fn a_partition_claimed_twice_in_one_generation_is_revoked_by_both() {
        // Nobody can tell which claim is current: sticky picks one by member order, the
        // cooperative variant holds it back until both have revoked it.
        let group = two_claimants(4, 4);
        assert_eq!(sticky(&group)["a"].partitions["t"], [0]);
        let assignment = cooperative_sticky(&group);
        assert_eq!(assignment["a"].count(), 0, "{assignment:?}");
        assert_eq!(assignment["b"].partitions["t"], [1]);
        let report = validate(&group, &assignment, true).unwrap();
        assert_eq!(report.unassigned, [("t".to_string(), 0)]);
    }
}
