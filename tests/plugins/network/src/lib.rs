//! Opens a TCP connection to `127.0.0.1:<port>` (its `port` setting; 9 by default), so the
//! component imports `wasi:sockets`. The host links sockets with nothing behind them: the
//! connection must fail inside the sandbox, and the decision says why.

use wasmkafka_plugin_sdk::policy::reset::{ResetContext, ResetDecision};

struct Phone;

impl wasmkafka_plugin_sdk::ResetPolicy for Phone {
    fn name() -> String {
        "phone-home".into()
    }

    fn decide(context: &ResetContext) -> ResetDecision {
        let port = context.settings.get("port").map_or("9", String::as_str);
        match std::net::TcpStream::connect(format!("127.0.0.1:{port}")) {
            Ok(_) => ResetDecision::Earliest,
            Err(error) => ResetDecision::Fail(error.to_string()),
        }
    }
}

wasmkafka_plugin_sdk::export_reset_policy!(Phone);
