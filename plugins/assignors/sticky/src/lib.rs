//! The built-in `sticky` assignor, compiled from the same code the host runs natively.

use wasmkafka_plugin_sdk::policy::assign::{self, Assignment, Group};

struct Sticky;

impl wasmkafka_plugin_sdk::Assignor for Sticky {
    fn name() -> String {
        "sticky".into()
    }

    fn assign(group: &Group) -> Result<Assignment, String> {
        Ok(assign::sticky(group))
    }
}

wasmkafka_plugin_sdk::export_assignor!(Sticky);
