//! `assign` answers an invalid assignment; the `mode` setting picks which: `duplicate` (one
//! partition to two members), `unknown-member`, or `unsubscribed` (a topic the member does not
//! subscribe to).

use wasmkafka_plugin_sdk::policy::assign::{range, Assignment, Group, MemberAssignment};

struct Invalid;

impl wasmkafka_plugin_sdk::Assignor for Invalid {
    fn name() -> String {
        "invalid".into()
    }

    fn assign(group: &Group) -> Result<Assignment, String> {
        let mut assignment = range(group);
        let (topic, partitions) = group.topics.iter().next().ok_or("no topics")?;
        let partition = partitions.first().ok_or("no partitions")?.partition;
        match group.settings.get("mode").map(String::as_str) {
            Some("duplicate") => {
                for share in assignment.values_mut() {
                    share.add(topic, partition);
                }
            }
            Some("unknown-member") => {
                let mut share = MemberAssignment::default();
                share.add(topic, partition);
                assignment.insert("nobody".into(), share);
            }
            Some("unsubscribed") => {
                let share = assignment.values_mut().next().ok_or("no members")?;
                share.add("not-subscribed", 0);
            }
            other => return Err(format!("unknown mode {other:?}")),
        }
        Ok(assignment)
    }
}

wasmkafka_plugin_sdk::export_assignor!(Invalid);
