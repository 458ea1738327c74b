//! The built-in `latest` reset policy, compiled from the same code the host runs natively.

use wasmkafka_plugin_sdk::policy::reset::{self, ResetContext, ResetDecision};

struct Policy;

impl wasmkafka_plugin_sdk::ResetPolicy for Policy {
    fn name() -> String {
        "latest".into()
    }

    fn decide(context: &ResetContext) -> ResetDecision {
        reset::latest(context)
    }
}

wasmkafka_plugin_sdk::export_reset_policy!(Policy);
