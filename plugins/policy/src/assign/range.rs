//! The range assignor: per topic, the members subscribed to it (in order) each get a
//! contiguous range of partitions; the first `partitions % members` get one more.

use super::{empty_assignment, Assignment, Group};

/// Per topic, gives each member subscribed to it (in [`Group::sorted_members`] order) a
/// contiguous range of its partitions; the first `partitions % members` get one more.
pub fn range(group: &Group) -> Assignment {
    let mut assignment = empty_assignment(group);
    let members = group.sorted_members();
    for (topic, partitions) in &group.topics {
        let subscribed: Vec<_> = members.iter().filter(|m| m.subscribes(topic)).collect();
        if subscribed.is_empty() {
            continue;
        }
        let mut ids: Vec<i32> = partitions.iter().map(|p| p.partition).collect();
        ids.sort_unstable();
        let per_member = ids.len() / subscribed.len();
        let extra = ids.len() % subscribed.len();
        let mut next = 0;
        for (index, member) in subscribed.iter().enumerate() {
            let count = per_member + usize::from(index < extra);
            let share = assignment
                .get_mut(&member.member_id)
                .expect("every member has a share");
            for partition in &ids[next..next + count] {
                share.add(topic, *partition);
            }
            next += count;
        }
    }
    assignment
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn contiguous_ranges_with_the_remainder_first() {
        let group = group(
            vec![member("b", &["t", "u"]), member("a", &["t", "u"])],
            &[("t", 5), ("u", 2)],
        );
        let shares = shares(&range(&group));
        assert_eq!(
            shares,
            [
                (
                    "a".to_string(),
                    vec![
                        ("t".to_string(), 0),
                        ("t".to_string(), 1),
                        ("t".to_string(), 2),
                        ("u".to_string(), 0)
                    ]
                ),
                (
                    "b".to_string(),
                    vec![
                        ("t".to_string(), 3),
                        ("t".to_string(), 4),
                        ("u".to_string(), 1)
                    ]
                ),
            ]
        );
    }

    #[test]
    fn only_subscribers_get_a_topic_and_static_ids_order_members() {
        let mut a = member("member-z", &["t"]);
        a.instance_id = Some("instance-a".into());
        let b = member("member-a", &["t", "u"]);
        let assignment = range(&group(vec![a, b], &[("t", 2), ("u", 3)]));
        // instance-a sorts before member-a: it gets t/0.
        assert_eq!(assignment["member-z"].partitions["t"], [0]);
        assert_eq!(assignment["member-a"].partitions["t"], [1]);
        assert_eq!(assignment["member-a"].partitions["u"], [0, 1, 2]);
    }
}
