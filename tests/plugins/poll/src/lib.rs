//! `decide` subscribes to a monotonic-clock pollable an hour away and polls it (wasi:io/poll),
//! then answers: the host's deadline must end it anyway.

use wasmkafka_plugin_sdk::policy::reset::{ResetContext, ResetDecision};

struct Poller;

impl wasmkafka_plugin_sdk::ResetPolicy for Poller {
    fn name() -> String {
        "poller".into()
    }

    fn decide(_context: &ResetContext) -> ResetDecision {
        let hour = 3_600 * 1_000_000_000;
        let pollable = wasi::clocks::monotonic_clock::subscribe_duration(hour);
        let ready = wasi::io::poll::poll(&[&pollable]);
        ResetDecision::Offset(ready.len() as i64)
    }
}

wasmkafka_plugin_sdk::export_reset_policy!(Poller);
