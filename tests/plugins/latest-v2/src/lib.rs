//! Calls itself `latest` like the built-in plugin but answers one past the log start: the
//! hot-swap test replaces the `latest` plugin's file with this one and sees the new answers.

use wasmkafka_plugin_sdk::policy::reset::{ResetContext, ResetDecision};

struct LatestV2;

impl wasmkafka_plugin_sdk::ResetPolicy for LatestV2 {
    fn name() -> String {
        "latest".into()
    }

    fn decide(context: &ResetContext) -> ResetDecision {
        ResetDecision::Offset(context.log_start + 1)
    }
}

wasmkafka_plugin_sdk::export_reset_policy!(LatestV2);
