//! One-shot `wasmkafka` commands the CLI tests share. The binary's path comes from the caller
//! (`env!("CARGO_BIN_EXE_wasmkafka")` exists only in the host crate's tests).

use std::path::Path;
use std::process::Command;

use crate::bounded::{assert_succeeded, BoundedOutput};

/// Produces sample records to `topic` with `wasmkafka produce --brokers BROKERS --topic TOPIC`
/// and `flags` (count, batch, keys…); asserts that it succeeded.
pub fn produce_with_cli(wasmkafka: &Path, brokers: &str, topic: &str, flags: &[&str]) {
    let output = Command::new(wasmkafka)
        .args(["produce", "--brokers", brokers, "--topic", topic])
        .args(flags)
        .bounded_output()
        .unwrap();
    assert_succeeded(&output, &format!("produce to {topic} {flags:?}"));
}
