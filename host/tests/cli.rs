//! The `wasmkafka` binary against a real broker: the CLI contract.

use std::process::Command;

use wasmkafka_tests::tansu::Tansu;

fn wasmkafka() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wasmkafka"))
}

#[tokio::test]
async fn metadata_prints_brokers_topics_and_partition_leaders() {
    let broker = Tansu::start().await.unwrap();
    broker.create_topic("cli-metadata", 3, &[]).unwrap();
    let output = wasmkafka()
        .args(["metadata", "--brokers", &broker.addr()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!("broker 111 at {}", broker.addr())),
        "{stdout}"
    );
    assert!(stdout.contains("cli-metadata (3 partitions)"), "{stdout}");
    for partition in 0..3 {
        assert!(
            stdout.contains(&format!("partition {partition} leader 111")),
            "{stdout}"
        );
    }
}
