//! `assign` panics (a trap for the host).

use wasmkafka_plugin_sdk::policy::assign::{Assignment, Group};

struct Panics;

impl wasmkafka_plugin_sdk::Assignor for Panics {
    fn name() -> String {
        "panics".into()
    }

    fn assign(group: &Group) -> Result<Assignment, String> {
        panic!("no assignment for {} members", group.members.len())
    }
}

wasmkafka_plugin_sdk::export_assignor!(Panics);
