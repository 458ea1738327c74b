//! The built-in `cooperative-sticky` assignor, compiled from the same code the host runs
//! natively.

use wasmkafka_plugin_sdk::policy::assign::{self, Assignment, Group};
use wasmkafka_plugin_sdk::Protocol;

struct CooperativeSticky;

impl wasmkafka_plugin_sdk::Assignor for CooperativeSticky {
    fn name() -> String {
        "cooperative-sticky".into()
    }

    fn protocol() -> Protocol {
        Protocol::Cooperative
    }

    fn assign(group: &Group) -> Result<Assignment, String> {
        Ok(assign::cooperative_sticky(group))
    }
}

wasmkafka_plugin_sdk::export_assignor!(CooperativeSticky);
