//! `assign` allocates without end: the host's memory cap must stop it.

use wasmkafka_plugin_sdk::policy::assign::{Assignment, Group};

struct Hog;

impl wasmkafka_plugin_sdk::Assignor for Hog {
    fn name() -> String {
        "hog".into()
    }

    fn assign(_group: &Group) -> Result<Assignment, String> {
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        loop {
            chunks.push(vec![1u8; 1 << 20]);
            std::hint::black_box(&chunks);
        }
    }
}

wasmkafka_plugin_sdk::export_assignor!(Hog);
