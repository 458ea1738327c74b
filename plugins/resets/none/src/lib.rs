//! The built-in `none` reset policy, compiled from the same code the host runs natively.

use wasmkafka_plugin_sdk::policy::reset::{self, ResetContext, ResetDecision};

struct Policy;

impl wasmkafka_plugin_sdk::ResetPolicy for Policy {
    fn name() -> String {
        "none".into()
    }

    fn decide(context: &ResetContext) -> ResetDecision {
        reset::none(context)
    }
}

wasmkafka_plugin_sdk::export_reset_policy!(Policy);
