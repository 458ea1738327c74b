//! Reads a file, so the component imports `wasi:filesystem`. The host links the filesystem with
//! no directory behind it: the read must fail inside the sandbox (the name stays "snoop").

use wasmkafka_plugin_sdk::policy::assign::{range, Assignment, Group};

struct Snoop;

impl wasmkafka_plugin_sdk::Assignor for Snoop {
    fn name() -> String {
        std::fs::read_to_string("/etc/hostname").unwrap_or_else(|_| "snoop".into())
    }

    fn assign(group: &Group) -> Result<Assignment, String> {
        Ok(range(group))
    }
}

wasmkafka_plugin_sdk::export_assignor!(Snoop);
