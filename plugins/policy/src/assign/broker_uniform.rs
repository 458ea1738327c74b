//! Apache Kafka's broker-side `uniform` assignor (KIP-848, `group.protocol = "consumer"`, the
//! broker's default `group.remote.assignor`), re-derived from Apache Kafka's
//! `UniformAssignor` and its two builders (group-coordinator, read at commit 1eb7644 of
//! 2024-10-25, with KAFKA-18688 of 2025 that Kafka 4.1 ships: a member keeps an extra
//! partition it already has). It is here for the policy lab, which compares what the broker
//! would do to a group with what the client-side assignors do; the consumer never runs it.
//!
//! What the broker feeds it, and so what callers must put in a [`Group`]:
//! - [`Member::owned`] is the member's previous *target* assignment (what the broker last
//!   assigned it; empty for a new member), not what it holds mid-reconciliation.
//! - Members are taken in member id order. The broker walks a hash map of member ids (random
//!   UUIDs), so where the rules leave a choice (which member keeps an extra partition, which
//!   partitions fill which member) the broker's pick can differ; counts and the number of
//!   partitions moved do not, for the homogeneous case (see the tests).
//! - Topics are taken in name order where the broker orders topic ids.
//! - Racks and user data are ignored, as the broker's `uniform` does (Kafka 4.1).
//!
//! Two plans, by subscription:
//! - **Homogeneous** (every member subscribes to the same topics): each member gets
//!   `total / members` partitions, `total % members` of them one more. A member keeps what it
//!   had up to its quota; it claims one of the extra slots only if it had enough to fill it,
//!   unless the members still to come could not all take one otherwise. What nobody keeps is
//!   handed out, in order, to the members below their quota. Counts differ by at most one and
//!   only what balance needs moves.
//! - **Heterogeneous**: every member keeps all it had of the topics it still subscribes to;
//!   the rest goes, topic by topic (most partitions per subscriber first), to the topic's
//!   least loaded subscribers; then, up to 16 passes over the topics, partitions move from a
//!   topic's most loaded subscribers to its least loaded ones while their totals differ by
//!   two or more.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use super::{empty_assignment, Assignment, Group, Member};

/// What the broker's `uniform` assignor would make the group's next target assignment (see
/// the module documentation for the input it expects).
pub fn broker_uniform(group: &Group) -> Assignment {
    let mut members: Vec<&Member> = group.members.iter().collect();
    members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    let subscriptions: Vec<BTreeSet<&str>> = members
        .iter()
        .map(|m| m.topics.iter().map(String::as_str).collect())
        .collect();
    if subscriptions.windows(2).all(|pair| pair[0] == pair[1]) {
        homogeneous(group, &members)
    } else {
        heterogeneous(group, &members, &subscriptions)
    }
}

/// A topic's partition numbers, ascending.
fn partitions_of(group: &Group, topic: &str) -> Option<Vec<i32>> {
    let mut partitions: Vec<i32> = group
        .topics
        .get(topic)?
        .iter()
        .map(|p| p.partition)
        .collect();
    partitions.sort_unstable();
    partitions.dedup();
    Some(partitions)
}

/// The topics `member` subscribes to that exist, by name, with their partitions.
fn subscribed_topics<'g>(group: &'g Group, member: &'g Member) -> BTreeMap<&'g str, Vec<i32>> {
    member
        .topics
        .iter()
        .filter_map(|t| Some((t.as_str(), partitions_of(group, t)?)))
        .collect()
}

/// Every member gets `total / n`, the first members that already hold one more (or must take
/// one) `total / n + 1`; each keeps what it had up to that, the rest is handed out in order.
fn homogeneous(group: &Group, members: &[&Member]) -> Assignment {
    let mut assignment = empty_assignment(group);
    let Some(first) = members.first() else {
        return assignment;
    };
    let topics = subscribed_topics(group, first);
    let all: Vec<(&str, i32)> = topics
        .iter()
        .flat_map(|(topic, partitions)| partitions.iter().map(move |p| (*topic, *p)))
        .collect();
    if all.is_empty() {
        return assignment;
    }
    let valid: BTreeSet<(&str, i32)> = all.iter().copied().collect();
    // What each member had that still counts: a partition two members claim stays with the
    // first of them.
    let mut claimed: BTreeSet<(&str, i32)> = BTreeSet::new();
    let previous: Vec<Vec<(&str, i32)>> = members
        .iter()
        .map(|member| {
            let mut had: Vec<(&str, i32)> = member
                .owned
                .iter()
                .flat_map(|(topic, partitions)| {
                    partitions.iter().map(move |p| (topic.as_str(), *p))
                })
                .filter(|tp| valid.contains(tp))
                .collect();
            had.sort_unstable();
            had.dedup();
            had.retain(|tp| claimed.insert(*tp));
            had
        })
        .collect();
    // First what nobody had, then (below) what members give up.
    let mut to_hand_out: Vec<(&str, i32)> = all
        .iter()
        .copied()
        .filter(|tp| !claimed.contains(tp))
        .collect();
    let count = members.len();
    let minimum = all.len() / count;
    let mut extra_slots = all.len() % count;
    let mut short: Vec<(&str, usize)> = Vec::new();
    for (index, (member, had)) in members.iter().zip(&previous).enumerate() {
        let mut room = minimum;
        let mut extra = extra_slots > 0;
        if extra {
            room += 1;
        }
        let share = assignment
            .get_mut(&member.member_id)
            .expect("every member has a share");
        for &(topic, partition) in had {
            if room > 0 {
                share.add(topic, partition);
                room -= 1;
            } else {
                to_hand_out.push((topic, partition));
            }
        }
        // A member that could not fill the extra slot from what it had leaves it to a later
        // member that can, unless every member still to come must take one anyway.
        if room > 0 && extra && count - index > extra_slots {
            room -= 1;
            extra = false;
        }
        if extra {
            extra_slots -= 1;
        }
        if room > 0 {
            short.push((member.member_id.as_str(), room));
        }
    }
    let mut next = to_hand_out.into_iter();
    for (member_id, room) in short {
        let share = assignment
            .get_mut(member_id)
            .expect("every member has a share");
        for (topic, partition) in next.by_ref().take(room) {
            share.add(topic, partition);
        }
    }
    assignment
}

/// One subscribed topic during the heterogeneous plan.
struct TopicPlan<'g> {
    name: &'g str,
    partitions: Vec<i32>,
    /// Indexes into the member list, ascending.
    subscribers: Vec<usize>,
    /// The member each partition (by position in `partitions`) goes to.
    owner: Vec<Option<usize>>,
}

impl TopicPlan<'_> {
    /// Most partitions per subscriber first, then fewer subscribers, then name.
    fn order(&self, other: &TopicPlan) -> Ordering {
        let (mine, theirs) = (self.partitions.len(), other.partitions.len());
        let (my_subs, their_subs) = (self.subscribers.len(), other.subscribers.len());
        (theirs * my_subs)
            .cmp(&(mine * their_subs))
            .then(my_subs.cmp(&their_subs))
            .then(self.name.cmp(other.name))
    }
}

/// The passes over the topics the balancing phase makes at most (Kafka's limit: mixed
/// overlapping subscriptions converge slowly; each pass roughly halves the imbalance).
const BALANCING_PASSES: usize = 16;

fn heterogeneous(
    group: &Group,
    members: &[&Member],
    subscriptions: &[BTreeSet<&str>],
) -> Assignment {
    let mut topics: Vec<TopicPlan> = Vec::new();
    let names: BTreeSet<&str> = subscriptions.iter().flatten().copied().collect();
    for name in names {
        let Some(partitions) = partitions_of(group, name) else {
            continue;
        };
        let subscribers = (0..members.len())
            .filter(|m| subscriptions[*m].contains(name))
            .collect();
        topics.push(TopicPlan {
            name,
            owner: vec![None; partitions.len()],
            partitions,
            subscribers,
        });
    }
    let mut load = vec![0usize; members.len()];
    // 1. Everyone keeps what it had of the topics it still subscribes to.
    for (index, member) in members.iter().enumerate() {
        for (topic, partitions) in &member.owned {
            let Some(plan) = topics.iter_mut().find(|t| t.name == topic) else {
                continue;
            };
            if !plan.subscribers.contains(&index) {
                continue;
            }
            for partition in partitions {
                if let Ok(at) = plan.partitions.binary_search(partition) {
                    if plan.owner[at].is_none() {
                        plan.owner[at] = Some(index);
                        load[index] += 1;
                    }
                }
            }
        }
    }
    topics.sort_by(|a, b| a.order(b));
    // 2. The rest, topic by topic, to the least loaded subscribers.
    for plan in &mut topics {
        if plan.owner.iter().all(Option::is_some) || plan.subscribers.is_empty() {
            continue;
        }
        let mut loads = Loads::new(&plan.subscribers, &load);
        for at in 0..plan.partitions.len() {
            if plan.owner[at].is_none() {
                let member = loads.next_least(&load);
                plan.owner[at] = Some(member);
                load[member] += 1;
            }
        }
    }
    // 3. Even out the topics two or more members share, until a whole pass moves nothing.
    let shared: Vec<usize> = (0..topics.len())
        .filter(|t| topics[*t].subscribers.len() >= 2)
        .collect();
    let mut last_changed: Option<usize> = None;
    'passes: for _ in 0..BALANCING_PASSES {
        for (position, &t) in shared.iter().enumerate() {
            if last_changed == Some(position) {
                break 'passes;
            }
            let moved = balance_topic(&mut topics[t], &mut load);
            if moved > 0 || last_changed.is_none() {
                last_changed = Some(position);
            }
        }
    }
    let mut assignment = empty_assignment(group);
    for plan in &topics {
        for (at, owner) in plan.owner.iter().enumerate() {
            if let Some(member) = owner {
                assignment
                    .get_mut(&members[*member].member_id)
                    .expect("every member has a share")
                    .add(plan.name, plan.partitions[at]);
            }
        }
    }
    assignment
}

/// Moves partitions of one topic from its most loaded subscribers (by total load) to its least
/// loaded ones while that narrows the gap; returns how many moved.
fn balance_topic(plan: &mut TopicPlan, load: &mut [usize]) -> usize {
    let mut loads = Loads::new(&plan.subscribers, load);
    if loads.spread <= 1 {
        return 0;
    }
    // What each subscriber has of this topic now, ascending: it gives from the top.
    let mut givable: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (at, owner) in plan.owner.iter().enumerate() {
        if let Some(member) = owner {
            givable.entry(*member).or_default().push(at);
        }
    }
    let mut moved = 0;
    while !loads.balanced() {
        let (giver, at) = loop {
            let Some(giver) = loads.next_most(load) else {
                return moved;
            };
            match givable.get_mut(&giver).and_then(Vec::pop) {
                Some(at) => break (giver, at),
                None => loads.exclude_last_most(),
            }
        };
        let taker = loads.next_least(load);
        if loads.balanced() {
            break;
        }
        plan.owner[at] = Some(taker);
        load[giver] -= 1;
        load[taker] += 1;
        moved += 1;
    }
    moved
}

/// A topic's subscribers ordered by load (ties: member order), walked from both ends: the
/// least loaded level fills up one member at a time, widening to the next members as they are
/// reached; the most loaded level gives up one partition per member, widening downwards the
/// same way.
struct Loads {
    order: Vec<usize>,
    /// Members `order[..low_end]` were at `low_level` before this pass over them.
    low_end: usize,
    low_level: isize,
    low_next: usize,
    /// Members `order[high_start..high_end]` were at `high_level` before this pass over them;
    /// `order[high_end..]` have nothing of the topic left to give.
    high_start: usize,
    high_end: usize,
    high_level: isize,
    high_next: isize,
    /// The most loaded member's load minus the least loaded one's, at the start.
    spread: usize,
}

impl Loads {
    fn new(members: &[usize], load: &[usize]) -> Loads {
        let mut order = members.to_vec();
        order.sort_by_key(|m| (load[*m], *m));
        let (least, most) = (load[order[0]], load[order[order.len() - 1]]);
        Loads {
            low_end: 0,
            low_level: least as isize - 1,
            low_next: 0,
            high_start: order.len(),
            high_end: order.len(),
            high_level: most as isize + 1,
            high_next: order.len() as isize - 1,
            spread: most - least,
            order,
        }
    }

    /// The next member to receive a partition.
    fn next_least(&mut self, load: &[usize]) -> usize {
        if self.low_next >= self.low_end {
            // Everyone at this level got one: one level up, joined by those already there.
            self.low_level += 1;
            while self.low_end < self.order.len()
                && load[self.order[self.low_end]] as isize == self.low_level
            {
                self.low_end += 1;
            }
            self.low_next = 0;
        }
        let member = self.order[self.low_next];
        self.low_next += 1;
        member
    }

    /// The next member to give a partition up, if any can.
    fn next_most(&mut self, load: &[usize]) -> Option<usize> {
        if self.high_next < self.high_start as isize {
            // Everyone at this level gave one: one level down, joined by those already there.
            if self.high_end <= self.high_start && self.high_start > 0 {
                // Everyone left was excluded: start again from the next member down.
                self.high_level = load[self.order[self.high_start - 1]] as isize;
            } else {
                self.high_level -= 1;
            }
            while self.high_start > 0
                && load[self.order[self.high_start - 1]] as isize == self.high_level
            {
                self.high_start -= 1;
            }
            self.high_next = self.high_end as isize - 1;
        }
        if self.high_next < 0 {
            return None;
        }
        let member = self.order[self.high_next as usize];
        self.high_next -= 1;
        Some(member)
    }

    /// The member [`Loads::next_most`] just named has nothing of the topic to give: out of
    /// the giving range for good.
    fn exclude_last_most(&mut self) {
        let at = (self.high_next + 1) as usize;
        self.order.swap(at, self.high_end - 1);
        self.high_end -= 1;
    }

    /// Moving one more partition would not narrow the gap.
    fn balanced(&self) -> bool {
        self.high_level - self.low_level <= 1
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::validate;
    use super::*;

    fn counts(assignment: &Assignment) -> Vec<usize> {
        assignment.values().map(|a| a.count()).collect()
    }

    /// The group with every member owning its share of `assignment` (a settled target).
    fn settled(mut group: Group, assignment: &Assignment) -> Group {
        for member in &mut group.members {
            member.owned = assignment[&member.member_id].partitions.clone();
            member.generation = 1;
        }
        group
    }

    /// Partitions that a member had in `before` and does not have in `after`.
    fn moved(before: &Assignment, after: &Assignment) -> usize {
        before
            .iter()
            .map(|(id, had)| {
                had.iter()
                    .filter(|(t, p)| {
                        after.get(id).is_none_or(|now| {
                            !now.partitions.get(*t).is_some_and(|ps| ps.contains(p))
                        })
                    })
                    .count()
            })
            .sum()
    }

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("m{i:02}")).collect()
    }

    fn homogeneous_group(members: &[String], topics: &[(&str, i32)]) -> Group {
        let names: Vec<&str> = topics.iter().map(|(t, _)| *t).collect();
        group(
            members.iter().map(|id| member(id, &names)).collect(),
            topics,
        )
    }

    #[test]
    fn homogeneous_counts_differ_by_at_most_one_and_everything_is_assigned() {
        for members in 1..=7 {
            for (t, u) in [(1, 0), (5, 7), (6, 6), (13, 2), (0, 3)] {
                let topics = [("t", t), ("u", u)];
                let group = homogeneous_group(&ids(members), &topics);
                let assignment = broker_uniform(&group);
                let report = validate(&group, &assignment, false).unwrap();
                assert!(
                    report.unassigned.is_empty(),
                    "{members} members, {topics:?}"
                );
                let start = counts(&assignment);
                let (min, max) = (start.iter().min().unwrap(), start.iter().max().unwrap());
                assert!(max - min <= 1, "{members} members, {topics:?}: {start:?}");
                // And again from that settled target, with one member more: still balanced.
                let mut joined = settled(group, &assignment);
                joined.members.push(member("zz", &["t", "u"]));
                let next = broker_uniform(&joined);
                validate(&joined, &next, false).unwrap();
                let after = counts(&next);
                let (min, max) = (after.iter().min().unwrap(), after.iter().max().unwrap());
                assert!(max - min <= 1, "{members}+1 members, {topics:?}: {after:?}");
            }
        }
    }

    #[test]
    fn a_member_joining_takes_only_what_balance_needs() {
        // 3 members, 2 topics x 6: 4 each. A fourth: 3 each, so each gives up exactly one.
        let group = homogeneous_group(&ids(3), &[("t", 6), ("u", 6)]);
        let start = broker_uniform(&group);
        assert_eq!(counts(&start), [4, 4, 4]);
        let mut joined = settled(group, &start);
        joined.members.push(member("m03", &["t", "u"]));
        let next = broker_uniform(&joined);
        assert_eq!(counts(&next), [3, 3, 3, 3]);
        assert_eq!(moved(&start, &next), 3);
        // Everything a member still has, it had before.
        for id in ids(3) {
            for (t, p) in next[&id].iter() {
                assert!(start[&id].partitions[t].contains(&p), "{id} got {t}/{p}");
            }
        }
        // 10 partitions: 4, 3, 3; a fourth member: 3, 3, 2, 2, two moved (the least balance
        // allows: 4 -> 3 and one 3 -> 2).
        let group = homogeneous_group(&ids(3), &[("t", 5), ("u", 5)]);
        let start = broker_uniform(&group);
        let mut joined = settled(group, &start);
        joined.members.push(member("m03", &["t", "u"]));
        let next = broker_uniform(&joined);
        let mut sorted = counts(&next);
        sorted.sort_unstable();
        assert_eq!(sorted, [2, 2, 3, 3]);
        assert_eq!(moved(&start, &next), 2);
    }

    #[test]
    fn a_balanced_target_stays_as_it_is_whoever_holds_the_extra_partitions() {
        // 8 over 3: 3, 3, 2 — with the member holding 2 first in member order. Before Kafka's
        // KAFKA-18688 the first members in order took the extra slots, and m00 would have
        // taken a partition from m02 here.
        let mut group = homogeneous_group(&ids(3), &[("t", 8)]);
        group.members[0] = owning(member("m00", &["t"]), &[("t", 0), ("t", 1)]);
        group.members[1] = owning(member("m01", &["t"]), &[("t", 2), ("t", 3), ("t", 4)]);
        group.members[2] = owning(member("m02", &["t"]), &[("t", 5), ("t", 6), ("t", 7)]);
        let assignment = broker_uniform(&group);
        assert_eq!(
            shares(&assignment),
            shares(&broker_uniform(&settled(group.clone(), &assignment)))
        );
        assert_eq!(assignment["m00"].partitions["t"], [0, 1]);
        assert_eq!(assignment["m01"].partitions["t"], [2, 3, 4]);
        assert_eq!(assignment["m02"].partitions["t"], [5, 6, 7]);
    }

    #[test]
    fn a_member_leaving_spreads_its_partitions_and_nobody_else_loses_any() {
        let group = homogeneous_group(&ids(4), &[("t", 7), ("u", 6)]);
        let start = broker_uniform(&group);
        let mut left = settled(group, &start);
        left.members.remove(1);
        let next = broker_uniform(&left);
        let mut before = start.clone();
        before.remove("m01");
        assert_eq!(moved(&before, &next), 0);
        let after = counts(&next);
        assert_eq!(after.iter().sum::<usize>(), 13);
        assert!(after.iter().max().unwrap() - after.iter().min().unwrap() <= 1);
    }

    #[test]
    fn heterogeneous_subscriptions_worked_out_by_hand() {
        // a subscribes to t, b to u, 4 partitions each: from scratch each gets its topic.
        let group = group(
            vec![member("a", &["t"]), member("b", &["u"])],
            &[("t", 4), ("u", 4)],
        );
        let start = broker_uniform(&group);
        assert_eq!(start["a"].partitions["t"], [0, 1, 2, 3]);
        assert_eq!(start["b"].partitions["u"], [0, 1, 2, 3]);
        // c joins for both topics. Both have 2 partitions per subscriber; t comes first (by
        // name). t: a (4) gives its highest to c (0) until a 2, c 2. u: b (4) gives u3 to c
        // (2 -> 3); then b 3 and c 3 are even. Totals 2, 3, 3; three partitions moved.
        let mut joined = settled(group, &start);
        joined.members.push(member("c", &["t", "u"]));
        let next = broker_uniform(&joined);
        validate(&joined, &next, false).unwrap();
        assert_eq!(next["a"].partitions["t"], [0, 1]);
        assert_eq!(next["b"].partitions["u"], [0, 1, 2]);
        assert_eq!(next["c"].partitions["t"], [2, 3]);
        assert_eq!(next["c"].partitions["u"], [3]);
        assert_eq!(moved(&start, &next), 3);
        // Settled, it stays.
        assert_eq!(
            shares(&broker_uniform(&settled(joined, &next))),
            shares(&next)
        );
    }

    #[test]
    fn heterogeneous_groups_end_balanced_among_each_topics_subscribers() {
        // Overlapping subscriptions: every topic's subscribers end within one of each other in
        // total, and a member dropping a topic gives up only that topic.
        let group = group(
            vec![
                member("a", &["t"]),
                member("b", &["t", "u"]),
                member("c", &["u", "v"]),
                member("d", &["v"]),
            ],
            &[("t", 9), ("u", 5), ("v", 7)],
        );
        let assignment = broker_uniform(&group);
        validate(&group, &assignment, false).unwrap();
        let total: usize = counts(&assignment).iter().sum();
        assert_eq!(total, 21);
        for topic in ["t", "u", "v"] {
            let loads: Vec<usize> = group
                .members
                .iter()
                .filter(|m| m.subscribes(topic))
                .map(|m| assignment[&m.member_id].count())
                .collect();
            assert!(
                loads.iter().max().unwrap() - loads.iter().min().unwrap() <= 1,
                "{topic}: {loads:?} in {:?}",
                shares(&assignment)
            );
        }
        let mut changed = settled(group, &assignment);
        changed.members[1].topics = vec!["t".to_string()];
        let next = broker_uniform(&changed);
        validate(&changed, &next, false).unwrap();
        assert!(!next["b"].partitions.contains_key("u"));
        for (t, p) in assignment["b"].iter().filter(|(t, _)| *t == "t") {
            assert!(next["b"].partitions[t].contains(&p), "b kept t/{p}");
        }
    }

    #[test]
    fn partitions_of_topics_no_longer_subscribed_or_gone_are_dropped() {
        let mut a = owning(member("a", &["t"]), &[("t", 0), ("gone", 0), ("t", 9)]);
        a.owned.insert("u".to_string(), vec![0]);
        let group = group(vec![a, member("b", &["t"])], &[("t", 2), ("u", 1)]);
        let assignment = broker_uniform(&group);
        validate(&group, &assignment, false).unwrap();
        assert_eq!(assignment["a"].partitions["t"], [0]);
        assert_eq!(assignment["b"].partitions["t"], [1]);
        assert!(broker_uniform(&Group::default()).is_empty());
    }
}
