//! The round-robin assignor: all partitions (sorted by topic, then partition) dealt to the
//! members in turn, skipping members that do not subscribe to the partition's topic.

use super::{empty_assignment, Assignment, Group};

/// Deals every partition (sorted by topic, then partition) to the members in turn, in
/// [`Group::sorted_members`] order, skipping a member that does not subscribe to the
/// partition's topic.
pub fn roundrobin(group: &Group) -> Assignment {
    let mut assignment = empty_assignment(group);
    let members = group.sorted_members();
    if members.is_empty() {
        return assignment;
    }
    let mut turn = 0;
    for (topic, partition) in group.all_partitions() {
        for step in 0..members.len() {
            let member = members[(turn + step) % members.len()];
            if member.subscribes(&topic) {
                assignment
                    .get_mut(&member.member_id)
                    .expect("every member has a share")
                    .add(&topic, partition);
                turn = (turn + step + 1) % members.len();
                break;
            }
        }
    }
    assignment
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn deals_partitions_in_turn() {
        let group = group(
            vec![
                member("a", &["t", "u"]),
                member("b", &["t", "u"]),
                member("c", &["u"]),
            ],
            &[("t", 3), ("u", 3)],
        );
        let assignment = roundrobin(&group);
        assert_eq!(assignment["a"].partitions["t"], [0, 2]);
        assert_eq!(assignment["b"].partitions["t"], [1]);
        // u/0 goes to b (a had t/2), u/1 to c, u/2 to a.
        assert_eq!(assignment["b"].partitions["u"], [0]);
        assert_eq!(assignment["c"].partitions["u"], [1]);
        assert_eq!(assignment["a"].partitions["u"], [2]);
    }
}
