//! `decide` sleeps for a minute (std::thread::sleep: a blocking WASI clock wait, where epoch
//! interruption does not reach), then answers: the host's deadline must end it anyway.

use wasmkafka_plugin_sdk::policy::reset::{ResetContext, ResetDecision};

struct Sleepy;

impl wasmkafka_plugin_sdk::ResetPolicy for Sleepy {
    fn name() -> String {
        "sleepy".into()
    }

    fn decide(_context: &ResetContext) -> ResetDecision {
        std::thread::sleep(std::time::Duration::from_secs(60));
        ResetDecision::Earliest
    }
}

wasmkafka_plugin_sdk::export_reset_policy!(Sleepy);
