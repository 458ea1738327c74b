//! Built against `wasmkafka:plugin@9.9.0`: the host must refuse it before compiling it.

wit_bindgen::generate!({ world: "reset-policy-plugin", path: "wit" });

use exports::wasmkafka::plugin::reset_policy::Guest;
use wasmkafka::plugin::types::{ResetContext, ResetDecision};

struct Future;

impl Guest for Future {
    fn name() -> String {
        "from-the-future".into()
    }

    fn decide(_context: ResetContext) -> ResetDecision {
        ResetDecision::Earliest
    }
}

export!(Future);
