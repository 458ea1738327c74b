//! Built-in policies: the decisions the host delegates, with native implementations behind the
//! traits that Wasm plugins implement too.

pub mod reset;

pub use reset::{
    parse_iso8601_duration, FallbackPolicy, PolicyError, ResetContext, ResetDecision, ResetPolicy,
    ResetPolicySpec, ResetReason,
};
