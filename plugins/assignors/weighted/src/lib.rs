//! An example assignor no built-in offers: partitions in proportion to each member's weight.
//!
//! Each member announces a weight in its subscription user data (the `weight` setting of the
//! member's own plugin config, default 1): a member on a bigger machine says `weight = "3"`
//! and gets three times the partitions. Partitions of each topic are dealt, in order, to the
//! subscribed member furthest below its weighted share.

use std::collections::BTreeMap;

use wasmkafka_plugin_sdk::policy::assign::{empty_assignment, Assignment, Group};

struct Weighted;

fn weight(user_data: &[u8]) -> u64 {
    std::str::from_utf8(user_data)
        .ok()
        .and_then(|w| w.trim().parse().ok())
        .filter(|w| *w > 0)
        .unwrap_or(1)
}

impl wasmkafka_plugin_sdk::Assignor for Weighted {
    fn name() -> String {
        "weighted".into()
    }

    fn user_data(
        _topics: &[String],
        _state: &[u8],
        settings: &BTreeMap<String, String>,
    ) -> Vec<u8> {
        settings
            .get("weight")
            .map_or(b"1".to_vec(), |w| w.as_bytes().to_vec())
    }

    fn assign(group: &Group) -> Result<Assignment, String> {
        let mut assignment = empty_assignment(group);
        let mut members = group.sorted_members();
        members.retain(|m| !m.topics.is_empty());
        let mut load: Vec<u64> = vec![0; members.len()];
        for (topic, partitions) in &group.topics {
            for partition in partitions {
                let best = members
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| m.subscribes(topic))
                    // The member whose (load + 1) / weight is smallest.
                    .min_by(|(a, ma), (b, mb)| {
                        let left = (load[*a] + 1) * weight(&mb.user_data);
                        let right = (load[*b] + 1) * weight(&ma.user_data);
                        left.cmp(&right).then(a.cmp(b))
                    })
                    .map(|(i, _)| i);
                if let Some(i) = best {
                    load[i] += 1;
                    assignment
                        .get_mut(&members[i].member_id)
                        .expect("every member has a share")
                        .add(topic, partition.partition);
                }
            }
        }
        Ok(assignment)
    }
}

wasmkafka_plugin_sdk::export_assignor!(Weighted);
