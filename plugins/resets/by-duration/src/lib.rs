//! The built-in `by_duration` reset policy: the first record no older than the `duration`
//! setting (ISO-8601, e.g. `PT1H`; default `P1D`), from the same code the host runs natively.

use wasmkafka_plugin_sdk::policy::reset::{self, ResetContext, ResetDecision};

struct ByDuration;

impl wasmkafka_plugin_sdk::ResetPolicy for ByDuration {
    fn name() -> String {
        "by-duration".into()
    }

    fn decide(context: &ResetContext) -> ResetDecision {
        let setting = context
            .settings
            .get("duration")
            .map_or("P1D", String::as_str);
        match reset::parse_iso8601_duration(setting) {
            Ok(age) => reset::by_duration(context, age),
            Err(problem) => ResetDecision::Fail(format!("setting `duration`: {problem}")),
        }
    }
}

wasmkafka_plugin_sdk::export_reset_policy!(ByDuration);
