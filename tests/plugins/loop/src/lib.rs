//! `assign` never returns: the host's deadline must stop it.

use wasmkafka_plugin_sdk::policy::assign::{Assignment, Group};

struct Spin;

impl wasmkafka_plugin_sdk::Assignor for Spin {
    fn name() -> String {
        "spin".into()
    }

    fn assign(group: &Group) -> Result<Assignment, String> {
        let mut n = group.members.len() as u64;
        loop {
            n = std::hint::black_box(n.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

wasmkafka_plugin_sdk::export_assignor!(Spin);
