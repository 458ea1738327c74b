//! A reset policy built against the frozen contract 0.2.0 (`wit/since_v0.2.0`), as a plugin
//! compiled before 0.3.0 would be: the host must still run it, with the truncation reason and
//! `decide-all` it has (and no `log` import, which 0.2.0 does not know).

wit_bindgen::generate!({
    world: "reset-policy-plugin",
    path: "../../../wit/since_v0.2.0",
});

use exports::wasmkafka::plugin::reset_policy::Guest;
use wasmkafka::plugin::types::{ResetContext, ResetDecision, ResetReason};

struct FrozenV2;

impl Guest for FrozenV2 {
    fn name() -> String {
        "frozen-v2".into()
    }

    /// Nothing committed: the end. Out of range: two past the log start. Truncated: where
    /// the log diverged (answers only this plugin gives, so the test knows what it saw).
    fn decide(context: ResetContext) -> ResetDecision {
        match context.reason {
            ResetReason::NoCommittedOffset => ResetDecision::Latest,
            ResetReason::OutOfRange(_) => ResetDecision::Offset(context.log_start + 2),
            ResetReason::LogTruncated(truncation) => ResetDecision::Offset(truncation.diverged_at),
        }
    }

    fn decide_all(contexts: Vec<ResetContext>) -> Vec<ResetDecision> {
        contexts.into_iter().map(Self::decide).collect()
    }
}

export!(FrozenV2);
