//! An assignor that logs through the host (contract 0.3.0): one info line per `assign` with
//! the group's size, one debug line per member; with the setting `flood = "N"` it writes N
//! more lines, and with `long = "N"` one line of N bytes. It assigns round-robin.

use wasmkafka_plugin_sdk::log;
use wasmkafka_plugin_sdk::policy::assign::{roundrobin, Assignment, Group};

struct Chatty;

impl wasmkafka_plugin_sdk::Assignor for Chatty {
    fn name() -> String {
        "chatty".into()
    }

    fn assign(group: &Group) -> Result<Assignment, String> {
        let members = group.members.len().to_string();
        let topics = group.topics.len().to_string();
        log::info(
            "assigning",
            &[("members", members.as_str()), ("topics", topics.as_str())],
        );
        for member in &group.members {
            log::debug("member", &[("id", member.member_id.as_str())]);
        }
        let setting = |key: &str| {
            group
                .settings
                .get(key)
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0)
        };
        for n in 0..setting("flood") {
            log::warn("flood", &[("n", n.to_string().as_str())]);
        }
        let long = setting("long");
        if long > 0 {
            log::error(&"x".repeat(long), &[]);
        }
        Ok(roundrobin(group))
    }
}

wasmkafka_plugin_sdk::export_assignor!(Chatty);
