//! An example policy no built-in offers: "rewind N records, but never past the log start".
//!
//! With a committed offset, go back `records` (setting, default 1000) before it; when the
//! offset was out of range, go back from the end of the log. A consumer that lost its place
//! re-reads a bounded, recent window instead of the whole log (earliest) or nothing (latest).

use wasmkafka_plugin_sdk::policy::reset::{ResetContext, ResetDecision, ResetReason};

struct Rewind;

impl wasmkafka_plugin_sdk::ResetPolicy for Rewind {
    fn name() -> String {
        "rewind".into()
    }

    fn decide(context: &ResetContext) -> ResetDecision {
        let records: i64 = match context.settings.get("records").map(|r| r.parse()) {
            None => 1000,
            Some(Ok(n)) if n >= 0 => n,
            Some(_) => return ResetDecision::Fail("setting `records` must be a count".into()),
        };
        let from = match (context.reason, context.committed) {
            (ResetReason::NoCommittedOffset, Some(committed)) => committed,
            _ => context.high_watermark,
        };
        let target = from.saturating_sub(records).max(context.log_start);
        ResetDecision::Offset(target.min(context.high_watermark))
    }
}

wasmkafka_plugin_sdk::export_reset_policy!(Rewind);
