//! The built-in `roundrobin` assignor, compiled from the same code the host runs natively.

use wasmkafka_plugin_sdk::policy::assign::{self, Assignment, Group};

struct RoundRobin;

impl wasmkafka_plugin_sdk::Assignor for RoundRobin {
    fn name() -> String {
        "roundrobin".into()
    }

    fn assign(group: &Group) -> Result<Assignment, String> {
        Ok(assign::roundrobin(group))
    }
}

wasmkafka_plugin_sdk::export_assignor!(RoundRobin);
