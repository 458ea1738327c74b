//! Opens a TCP connection, so the component imports `wasi:sockets`: the host must refuse it.

use wasmkafka_plugin_sdk::policy::reset::{ResetContext, ResetDecision};

struct Phone;

impl wasmkafka_plugin_sdk::ResetPolicy for Phone {
    fn name() -> String {
        "phone-home".into()
    }

    fn decide(_context: &ResetContext) -> ResetDecision {
        match std::net::TcpStream::connect("127.0.0.1:9") {
            Ok(_) => ResetDecision::Earliest,
            Err(error) => ResetDecision::Fail(error.to_string()),
        }
    }
}

wasmkafka_plugin_sdk::export_reset_policy!(Phone);
