//! A reset policy built against the frozen contract 0.1.0 (`wit/since_v0.1.0`), as a plugin
//! compiled before 0.2.0 would be: the host must still run it, and it must see a truncated
//! log as `out-of-range`.

wit_bindgen::generate!({
    world: "reset-policy-plugin",
    path: "../../../wit/since_v0.1.0",
});

use exports::wasmkafka::plugin::reset_policy::Guest;
use wasmkafka::plugin::types::{ResetContext, ResetDecision, ResetReason};

struct Frozen;

impl Guest for Frozen {
    fn name() -> String {
        "frozen".into()
    }

    /// Nothing committed: the end. Out of range: one past the log start (an answer only this
    /// plugin gives, so the test knows which branch ran).
    fn decide(context: ResetContext) -> ResetDecision {
        match context.reason {
            ResetReason::NoCommittedOffset => ResetDecision::Latest,
            ResetReason::OutOfRange(_) => ResetDecision::Offset(context.log_start + 1),
        }
    }
}

export!(Frozen);
