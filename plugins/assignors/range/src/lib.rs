//! The built-in `range` assignor, compiled from the same code the host runs natively.

use wasmkafka_plugin_sdk::policy::assign::{self, Assignment, Group};

struct Range;

impl wasmkafka_plugin_sdk::Assignor for Range {
    fn name() -> String {
        "range".into()
    }

    fn assign(group: &Group) -> Result<Assignment, String> {
        Ok(assign::range(group))
    }
}

wasmkafka_plugin_sdk::export_assignor!(Range);
