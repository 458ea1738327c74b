//! Apache Kafka's broker-side `range` assignor (KIP-848, `group.remote.assignor = "range"`),
//! re-derived from Apache Kafka's group-coordinator `RangeAssignor` (read at commit 1eb7644 of
//! 2024-10-25; Kafka 4.1 has the same). For the policy lab only: the consumer never runs it.
//!
//! Per topic, the members subscribed to it, in order, each get a contiguous range; the first
//! `partitions % subscribers` get one more. The order: static members first, by instance id,
//! then the others by member id. Topics with the same partition count and subscribers are
//! therefore co-partitioned (a member gets the same partition numbers of each).
//!
//! Since KAFKA-16944 (Kafka 3.9) it does not look at the previous assignment at all: the
//! target is recomputed from the order every time. It is sticky only as far as the order is:
//! static members keep their ranges across restarts (the instance id is the key), while a
//! dynamic member joining shifts every range after its place (the broker's member ids are
//! random UUIDs, so that place is random). The partitions are those of the client-side
//! [`super::range`]; only the order of a static and a dynamic member can differ (that one
//! orders by instance id or member id alike), and the broker revokes only what moves, where
//! the client-side `range` is eager.

use std::cmp::Ordering;

use super::{empty_assignment, Assignment, Group, Member};

/// What the broker's `range` assignor would make the group's next target assignment.
pub fn broker_range(group: &Group) -> Assignment {
    let mut assignment = empty_assignment(group);
    let mut members: Vec<&Member> = group.members.iter().collect();
    members.sort_by(|a, b| broker_order(a, b));
    for (topic, infos) in &group.topics {
        let subscribers: Vec<&&Member> = members.iter().filter(|m| m.subscribes(topic)).collect();
        if subscribers.is_empty() {
            continue;
        }
        let mut partitions: Vec<i32> = infos.iter().map(|p| p.partition).collect();
        partitions.sort_unstable();
        partitions.dedup();
        let each = partitions.len() / subscribers.len();
        let mut longer = partitions.len() % subscribers.len();
        let mut rest = partitions.as_slice();
        for member in subscribers {
            let length = if longer > 0 {
                longer -= 1;
                each + 1
            } else {
                each
            };
            let (range, after) = rest.split_at(length.min(rest.len()));
            rest = after;
            let share = assignment
                .get_mut(&member.member_id)
                .expect("every member has a share");
            for partition in range {
                share.add(topic, *partition);
            }
        }
    }
    assignment
}

/// Static members (by instance id) before dynamic ones (by member id).
fn broker_order(a: &Member, b: &Member) -> Ordering {
    match (&a.instance_id, &b.instance_id) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
    .then_with(|| a.member_id.cmp(&b.member_id))
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{range, validate};
    use super::*;

    fn statically(id: &str, instance: &str, topics: &[&str]) -> Member {
        Member {
            instance_id: Some(instance.to_string()),
            ..member(id, topics)
        }
    }

    #[test]
    fn topics_of_equal_size_are_co_partitioned_remainder_first() {
        let group = group(
            vec![
                member("c", &["t", "u"]),
                member("a", &["t", "u"]),
                member("b", &["t", "u"]),
            ],
            &[("t", 7), ("u", 7)],
        );
        let assignment = broker_range(&group);
        validate(&group, &assignment, false).unwrap();
        assert_eq!(assignment["a"].partitions["t"], [0, 1, 2]);
        assert_eq!(assignment["b"].partitions["t"], [3, 4]);
        assert_eq!(assignment["c"].partitions["t"], [5, 6]);
        for share in assignment.values() {
            assert_eq!(share.partitions["t"], share.partitions["u"]);
        }
    }

    #[test]
    fn the_previous_assignment_does_not_count_only_the_order_does() {
        // A dynamic member joining in front of the others (its id sorts first) shifts every
        // range: the broker's range keeps nothing because it was there.
        let before = group(vec![member("b", &["t"]), member("c", &["t"])], &[("t", 6)]);
        let first = broker_range(&before);
        assert_eq!(first["b"].partitions["t"], [0, 1, 2]);
        let mut after = before.clone();
        for m in &mut after.members {
            m.owned = first[&m.member_id].partitions.clone();
            m.generation = 1;
        }
        after.members.push(member("a", &["t"]));
        let next = broker_range(&after);
        assert_eq!(next["a"].partitions["t"], [0, 1]);
        assert_eq!(next["b"].partitions["t"], [2, 3]);
        assert_eq!(next["c"].partitions["t"], [4, 5]);
        // Same answer as if nobody owned anything.
        let mut fresh = after.clone();
        for m in &mut fresh.members {
            m.owned.clear();
        }
        assert_eq!(shares(&broker_range(&fresh)), shares(&next));
    }

    #[test]
    fn static_members_come_first_and_keep_their_ranges_under_new_member_ids() {
        let group = group(
            vec![
                member("a-dynamic", &["t"]),
                statically("z-static", "host-2", &["t"]),
                statically("y-static", "host-1", &["t"]),
            ],
            &[("t", 6)],
        );
        let assignment = broker_range(&group);
        assert_eq!(assignment["y-static"].partitions["t"], [0, 1]);
        assert_eq!(assignment["z-static"].partitions["t"], [2, 3]);
        assert_eq!(assignment["a-dynamic"].partitions["t"], [4, 5]);
        // host-1 restarts and comes back with another member id: the same range.
        let mut restarted = group.clone();
        restarted.members[2].member_id = "0-new-id".to_string();
        let again = broker_range(&restarted);
        assert_eq!(again["0-new-id"].partitions["t"], [0, 1]);
        assert_eq!(again["z-static"].partitions["t"], [2, 3]);
        // The client-side range orders by instance id or member id alike: a-dynamic first.
        assert_eq!(range(&group)["a-dynamic"].partitions["t"], [0, 1]);
    }

    #[test]
    fn only_subscribers_share_a_topic() {
        let group = group(
            vec![member("a", &["t"]), member("b", &["t", "u"])],
            &[("t", 3), ("u", 2)],
        );
        let assignment = broker_range(&group);
        validate(&group, &assignment, false).unwrap();
        assert_eq!(assignment["a"].partitions["t"], [0, 1]);
        assert_eq!(assignment["b"].partitions["t"], [2]);
        assert_eq!(assignment["b"].partitions["u"], [0, 1]);
        assert!(!assignment["a"].partitions.contains_key("u"));
    }
}
