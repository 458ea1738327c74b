//! The `wasmkafka` binary against a real broker: the CLI contract.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use wasmkafka_tests::bounded::{assert_succeeded, BoundedOutput};
use wasmkafka_tests::cli_commands::produce_with_cli;
use wasmkafka_tests::kafka::Kafka;
use wasmkafka_tests::readme::{readme, readme_block, run_shell_script};

fn wasmkafka() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wasmkafka"))
}

/// Produces sample records with `wasmkafka produce` (extra flags: count, batch, keys).
fn produce_sample(broker: &Kafka, topic: &str, flags: &[&str]) {
    produce_with_cli(
        Path::new(env!("CARGO_BIN_EXE_wasmkafka")),
        &broker.addr(),
        topic,
        flags,
    );
}

/// Runs `wasmkafka ARGS`, asserts it failed (exit code 1, or 2 for a command-line usage error
/// reported by the argument parser), and returns its stderr.
fn failing(args: &[&str]) -> String {
    let output = wasmkafka().args(args).bounded_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        matches!(output.status.code(), Some(1 | 2)),
        "{args:?}: {:?} {stderr}",
        output.status
    );
    stderr
}

#[tokio::test]
async fn metadata_prints_brokers_topics_and_partition_leaders() {
    let broker = Kafka::shared();
    broker.create_topic("cli-metadata", 3, &[]).await.unwrap();
    let output = wasmkafka()
        .args(["metadata", "--brokers", &broker.addr()])
        .bounded_output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!("broker 1 at {}", broker.addr())),
        "{stdout}"
    );
    assert!(stdout.contains("cli-metadata (3 partitions)"), "{stdout}");
    for partition in 0..3 {
        assert!(
            stdout.contains(&format!("partition {partition} leader 1")),
            "{stdout}"
        );
    }
}

#[tokio::test]
async fn run_prints_every_record_as_json_and_exits_after_max_records() {
    let broker = Kafka::shared();
    broker.create_topic("cli-run", 4, &[]).await.unwrap();
    produce_sample(
        broker,
        "cli-run",
        &["--count", "2000", "--batch", "50", "--distinct-keys", "7"],
    );
    // Binary key and value, to check the base64 fields. Its timestamp (42) is ancient: it
    // survives time-based retention only because its segment also holds the sample records,
    // stamped now (Kafka deletes a segment by its newest timestamp).
    let client = broker.client();
    let binary = wasmkafka::produce::OutgoingRecord {
        key: Some(bytes::Bytes::from_static(&[0xc3, 0x28])),
        value: Some(bytes::Bytes::from_static(&[0xff, 0xfe, 0x00])),
        headers: vec![],
        timestamp: Some(42),
    };
    broker
        .produce(&client, "cli-run", 3, &[binary], 1)
        .await
        .unwrap();

    let output = wasmkafka()
        .args(["run", "--brokers", &broker.addr(), "--topic", "cli-run"])
        .args([
            "--from",
            "earliest",
            "--max-records",
            "2001",
            "--format",
            "json",
        ])
        .bounded_output()
        .unwrap();
    assert_succeeded(&output, "");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let records: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    assert_eq!(records.len(), 2001);
    let mut per_partition: std::collections::BTreeMap<i64, Vec<i64>> = Default::default();
    for record in &records {
        for field in [
            "topic",
            "partition",
            "offset",
            "timestamp",
            "key",
            "value",
            "headers",
        ] {
            assert!(record.get(field).is_some(), "missing {field}: {record}");
        }
        per_partition
            .entry(record["partition"].as_i64().unwrap())
            .or_default()
            .push(record["offset"].as_i64().unwrap());
    }
    assert_eq!(per_partition.len(), 4, "all partitions consumed");
    for (partition, offsets) in &per_partition {
        let expected: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(
            offsets, &expected,
            "partition {partition}: every offset once, in order"
        );
    }
    let sample = records
        .iter()
        .find(|r| r["offset"] == 0 && r["partition"] == 0)
        .unwrap();
    assert_eq!(sample["topic"], "cli-run");
    assert!(sample["value"].as_str().unwrap().starts_with("record-"));
    assert_eq!(sample["headers"][0]["key"], "seq");
    let binary = records
        .iter()
        .find(|r| r["timestamp"] == 42)
        .expect("the binary record");
    assert_eq!(binary["key"], serde_json::Value::Null);
    assert_eq!(binary["key_base64"], "wyg=");
    assert_eq!(binary["value"], serde_json::Value::Null);
    assert_eq!(binary["value_base64"], "//4A");
}

#[test]
fn bad_input_gets_a_clear_error_and_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "brokers = [\"127.0.0.1:9092\"]\n[net]\nrequest_timout_ms = 5\n",
    )
    .unwrap();
    let config = config.display().to_string();
    let cases: [(&[&str], &str); 8] = [
        (&["metadata", "--config", &config], "request_timout_ms"),
        (&["metadata", "--brokers", "localhost"], "HOST:PORT"),
        (&["metadata"], "--brokers"),
        (
            &["metadata", "--config", "/nonexistent/wasmkafka.toml"],
            "cannot read config file",
        ),
        (
            &[
                "run",
                "--brokers",
                "127.0.0.1:9",
                "--topic",
                "t",
                "--from",
                "oldest",
            ],
            "earliest, latest, none or by_duration",
        ),
        (
            &[
                "run",
                "--brokers",
                "127.0.0.1:9",
                "--topic",
                "t",
                "--from",
                "by_duration:P1M",
            ],
            "no years or months",
        ),
        (
            &["run", "--brokers", "127.0.0.1:9", "--topic-pattern", "^t"],
            "needs --group",
        ),
        (
            &[
                "run",
                "--brokers",
                "127.0.0.1:9",
                "--group",
                "g",
                "--topic-pattern",
                "(t",
            ],
            "consumer.topic_pattern",
        ),
    ];
    for (args, expected) in cases {
        let stderr = failing(args);
        assert!(
            stderr.contains(expected),
            "{args:?}: expected `{expected}` in: {stderr}"
        );
    }
}

#[test]
fn an_unreachable_broker_is_reported_with_the_address_tried() {
    let port = wasmkafka_tests::kafka::free_port().unwrap();
    let addr = format!("127.0.0.1:{port}");
    let stderr = failing(&[
        "run",
        "--brokers",
        &addr,
        "--topic",
        "t",
        "--max-records",
        "1",
    ]);
    assert!(
        stderr.contains(&addr) && stderr.contains("is the broker running"),
        "{stderr}"
    );
}

#[tokio::test]
async fn run_names_a_missing_topic() {
    let broker = Kafka::shared();
    let addr = broker.addr();
    let stderr = failing(&[
        "run",
        "--brokers",
        &addr,
        "--topic",
        "missing",
        "--max-records",
        "1",
    ]);
    assert!(
        stderr.contains("topic `missing` does not exist"),
        "{stderr}"
    );
    // Producing to it: Kafka (auto.create.topics.enable=false on the test broker) does not
    // create it, and the error says how to.
    let stderr = failing(&[
        "produce",
        "--brokers",
        &addr,
        "--topic",
        "missing",
        "--count",
        "1",
    ]);
    assert!(
        stderr.contains("topic `missing` does not exist") && stderr.contains("create it"),
        "{stderr}"
    );
}

#[tokio::test]
async fn three_group_members_in_separate_processes_read_every_record_once() {
    let broker = Kafka::shared();
    broker.create_topic("cli-group", 6, &[]).await.unwrap();
    produce_sample(broker, "cli-group", &["--count", "600", "--batch", "50"]);

    // Each member prints 200 records and leaves (committing what it printed); whoever is
    // left takes over the rest. Together: every record exactly once.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("group.toml");
    std::fs::write(
        &config,
        "[consumer]\nheartbeat_interval_ms = 300\nsession_timeout_ms = 10000\n\
         rebalance_timeout_ms = 10000\nfetch_max_wait_ms = 200\n",
    )
    .unwrap();
    let config = config.display().to_string();
    let members: Vec<_> = (0..3)
        .map(|_| {
            wasmkafka()
                .args(["run", "--config", &config, "--brokers", &broker.addr()])
                .args(["--topic", "cli-group", "--group", "cli-g"])
                .args(["--from", "earliest", "--max-records", "200"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs = tokio::task::spawn_blocking(move || {
        members
            .into_iter()
            .map(|child| child.wait_with_output().unwrap())
            .collect::<Vec<_>>()
    });
    let outputs = tokio::time::timeout(std::time::Duration::from_secs(120), outputs)
        .await
        .expect("the members did not finish in 120 s")
        .unwrap();
    let mut seen = std::collections::BTreeMap::new();
    for (member, output) in outputs.iter().enumerate() {
        assert!(
            output.status.success(),
            "member {member}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(stdout.lines().count(), 200, "member {member}");
        for line in stdout.lines() {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            let key = (
                record["partition"].as_i64().unwrap(),
                record["offset"].as_i64().unwrap(),
            );
            assert!(seen.insert(key, member).is_none(), "{key:?} printed twice");
        }
    }
    assert_eq!(seen.len(), 600);
    for partition in 0..6 {
        assert_eq!(
            seen.keys().filter(|(p, _)| *p == partition).count(),
            100,
            "partition {partition}"
        );
    }
}

#[test]
fn plugin_check_reports_a_good_plugin_and_refuses_a_bad_one() {
    let range = wasmkafka_tests::plugins::plugin("assignor-range");
    let output = wasmkafka()
        .args(["plugin", "check"])
        .arg(&range)
        .bounded_output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The digest to pin, as sha256sum computes it.
    let sha256sum = Command::new("sha256sum")
        .arg(&range)
        .bounded_output()
        .unwrap();
    let digest = String::from_utf8(sha256sum.stdout).unwrap()[..64].to_string();
    let pin_line = format!("sha256:   {digest}");
    for expected in [
        pin_line.as_str(),
        "kind:     assignor",
        "contract: wasmkafka:plugin@0.3.0 (this host runs 0.3.0, 0.2.0, 0.1.0)",
        "exports:  wasmkafka:plugin/assignor@0.3.0",
        "name:     range",
        "valid; 9 assigned",
        "ok",
    ] {
        assert!(
            stdout.contains(expected),
            "missing `{expected}` in:\n{stdout}"
        );
    }
    let policy = wasmkafka_tests::plugins::plugin("reset-by-duration");
    let output = wasmkafka()
        .args(["plugin", "check", "--setting", "duration=PT1H"])
        .arg(&policy)
        .bounded_output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("kind:     reset-policy") && stdout.contains("Timestamp("),
        "{stdout}"
    );

    for (crate_name, expected) in [
        ("hostile-wrong-version", "contract version 9.9.0"),
        ("hostile-panic", "trapped"),
    ] {
        let stderr = failing(&[
            "plugin",
            "check",
            wasmkafka_tests::plugins::plugin(crate_name)
                .to_str()
                .unwrap(),
        ]);
        assert!(stderr.contains(expected), "{crate_name}: {stderr}");
    }
    let stderr = failing(&["plugin", "check", "/nonexistent.wasm"]);
    assert!(stderr.contains("cannot read /nonexistent.wasm"), "{stderr}");
}

#[tokio::test]
async fn run_uses_a_reset_policy_plugin_from_the_config() {
    let broker = Kafka::shared();
    broker.create_topic("cli-rewind", 1, &[]).await.unwrap();
    produce_sample(broker, "cli-rewind", &["--count", "100"]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rewind.toml");
    std::fs::write(
        &config,
        format!(
            "[plugins]\ncache_dir = {:?}\n[plugins.reset_policy]\npath = {:?}\nsettings = {{ records = \"10\" }}\n",
            dir.path().join("cache"),
            wasmkafka_tests::plugins::plugin("reset-rewind")
        ),
    )
    .unwrap();
    let output = wasmkafka()
        .args([
            "run",
            "--config",
            config.to_str().unwrap(),
            "--brokers",
            &broker.addr(),
        ])
        .args(["--topic", "cli-rewind", "--max-records", "10"])
        .bounded_output()
        .unwrap();
    assert_succeeded(&output, "");
    let offsets: Vec<i64> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["offset"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        offsets,
        (90..100).collect::<Vec<_>>(),
        "the plugin started 10 before the end"
    );
    // In a group of either protocol, a new group has no commit: the plugin decides too.
    for protocol in ["classic", "consumer"] {
        let output = wasmkafka()
            .args([
                "run",
                "--config",
                config.to_str().unwrap(),
                "--brokers",
                &broker.addr(),
            ])
            .args(["--topic", "cli-rewind", "--max-records", "10"])
            .args(["--group", &format!("cli-rewind-{protocol}")])
            .args(["-X", &format!("group.protocol={protocol}")])
            .bounded_output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{protocol}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let first: serde_json::Value =
            serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
        assert_eq!(first["offset"], 90, "{protocol}: {stdout}");
    }

    std::fs::write(
        &config,
        "[plugins.reset_policy]\npath = \"/nonexistent.wasm\"\n",
    )
    .unwrap();
    let stderr = failing(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--brokers",
        &broker.addr(),
        "--topic",
        "cli-rewind",
    ]);
    assert!(
        stderr.contains("plugins.reset_policy") && stderr.contains("/nonexistent.wasm"),
        "{stderr}"
    );
}

#[test]
fn version_names_the_plugin_contract_and_completions_are_printed() {
    let output = wasmkafka().arg("--version").bounded_output().unwrap();
    let version = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        version.trim(),
        format!(
            "wasmkafka {} (plugin contracts wasmkafka:plugin@0.3.0, @0.2.0, @0.1.0)",
            env!("CARGO_PKG_VERSION"),
        )
    );
    for shell in ["bash", "zsh", "fish"] {
        let output = wasmkafka()
            .args(["completions", shell])
            .bounded_output()
            .unwrap();
        assert!(output.status.success());
        let script = String::from_utf8(output.stdout).unwrap();
        assert!(
            script.contains("assign-sim") && script.contains("exit-at-end"),
            "{shell}"
        );
    }
}

#[test]
fn log_format_json_writes_one_object_per_line() {
    let output = wasmkafka()
        .args([
            "--log-format",
            "json",
            "metadata",
            "--brokers",
            "127.0.0.1:1",
        ])
        .env("WASMKAFKA_LOG", "debug")
        .bounded_output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let logs: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a JSON log line"))
        .collect();
    assert!(!logs.is_empty(), "{stderr}");
    assert!(logs
        .iter()
        .all(|l| l["level"].is_string() && l["fields"].is_object()));
    // The error for the user stays plain text on the last line.
    assert!(stderr
        .trim_end()
        .lines()
        .last()
        .unwrap()
        .starts_with("error: "));
}

/// A plugin pinned in the config to another build is refused before any broker is reached,
/// with both digests; a pin that is not a digest is a config error.
#[test]
fn a_pinned_plugin_of_another_build_is_refused_with_both_digests() {
    let range = wasmkafka_tests::plugins::plugin("assignor-range");
    let sha256sum = Command::new("sha256sum")
        .arg(&range)
        .bounded_output()
        .unwrap();
    let actual = String::from_utf8(sha256sum.stdout).unwrap()[..64].to_string();
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens there, and nothing should be asked before the plugins load.
    let addr = format!("127.0.0.1:{}", wasmkafka_tests::kafka::free_port().unwrap());
    let run_with_pin = |pin: &str| {
        let config = dir.path().join("pinned.toml");
        std::fs::write(
            &config,
            format!(
                "[[plugins.assignors]]\npath = {:?}\nsha256 = \"{pin}\"\n",
                range.display().to_string()
            ),
        )
        .unwrap();
        wasmkafka()
            .args(["run", "--config"])
            .arg(&config)
            .args(["--brokers", &addr, "--topic", "t", "--group", "g"])
            .bounded_output()
            .unwrap()
    };
    let pinned = "0".repeat(64);
    let output = run_with_pin(&pinned);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "its SHA-256 is {actual}, but the config pins {pinned}"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("not the build you pinned"), "{stderr}");

    // The right pin loads (the run then fails on the broker, which is not there).
    let output = run_with_pin(&actual.to_uppercase());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("SHA-256"), "{stderr}");
    assert!(stderr.contains(&addr), "{stderr}");

    let output = run_with_pin("abc");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("is not a SHA-256 digest"), "{stderr}");
}

/// The README's config block ("Every key and its default") is a config this binary takes as
/// it stands: every key in it exists and every value is valid.
#[test]
fn the_readme_config_block_is_accepted_as_it_stands() {
    let readme = readme();
    let (_, after) = readme
        .split_once("Every key and its default:\n\n```toml\n")
        .expect("the README's config block");
    let (block, _) = after.split_once("```").unwrap();
    let config = wasmkafka::config::Config::parse(block)
        .unwrap_or_else(|error| panic!("the README's config block is refused: {error}"));
    assert_eq!(config.plugins.cache_max_bytes, 268_435_456);
    assert_eq!(config.plugins.assignors.len(), 1);
    // Where the block gives a default, it is the default the code has (one source: the
    // library's option types; the block shows examples for names, paths and credentials).
    let defaults = wasmkafka::config::Config::default();
    let (c, d) = (&config.consumer, &defaults.consumer);
    let shown = [
        (
            "consumer.fetch_max_wait_ms",
            c.fetch_max_wait_ms,
            d.fetch_max_wait_ms,
        ),
        (
            "consumer.fetch_min_bytes",
            c.fetch_min_bytes as u64,
            d.fetch_min_bytes as u64,
        ),
        (
            "consumer.max_partition_fetch_bytes",
            c.max_partition_fetch_bytes as u64,
            d.max_partition_fetch_bytes as u64,
        ),
        (
            "consumer.max_buffered_bytes",
            c.max_buffered_bytes,
            d.max_buffered_bytes,
        ),
        (
            "consumer.retry_backoff_ms",
            c.retry_backoff_ms,
            d.retry_backoff_ms,
        ),
        (
            "consumer.retry_backoff_max_ms",
            c.retry_backoff_max_ms,
            d.retry_backoff_max_ms,
        ),
        (
            "consumer.max_poll_records",
            c.max_poll_records,
            d.max_poll_records,
        ),
        (
            "consumer.session_timeout_ms",
            c.session_timeout_ms,
            d.session_timeout_ms,
        ),
        (
            "consumer.rebalance_timeout_ms",
            c.rebalance_timeout_ms,
            d.rebalance_timeout_ms,
        ),
        (
            "consumer.heartbeat_interval_ms",
            c.heartbeat_interval_ms,
            d.heartbeat_interval_ms,
        ),
        (
            "consumer.max_poll_interval_ms",
            c.max_poll_interval_ms,
            d.max_poll_interval_ms,
        ),
        (
            "consumer.auto_commit_interval_ms",
            c.auto_commit_interval_ms,
            d.auto_commit_interval_ms,
        ),
        (
            "consumer.commit_timeout_ms",
            c.commit_timeout_ms,
            d.commit_timeout_ms,
        ),
        (
            "consumer.shutdown_timeout_ms",
            c.shutdown_timeout_ms,
            d.shutdown_timeout_ms,
        ),
        (
            "net.connect_timeout_ms",
            config.net.connect_timeout_ms,
            defaults.net.connect_timeout_ms,
        ),
        (
            "net.request_timeout_ms",
            config.net.request_timeout_ms,
            defaults.net.request_timeout_ms,
        ),
        (
            "net.idle_timeout_ms",
            config.net.idle_timeout_ms,
            defaults.net.idle_timeout_ms,
        ),
        (
            "net.metadata_min_age_ms",
            config.net.metadata_min_age_ms,
            defaults.net.metadata_min_age_ms,
        ),
        (
            "net.metadata_max_age_ms",
            config.net.metadata_max_age_ms,
            defaults.net.metadata_max_age_ms,
        ),
        (
            "plugins.deadline_ms",
            config.plugins.deadline_ms,
            defaults.plugins.deadline_ms,
        ),
        (
            "plugins.memory_bytes",
            config.plugins.memory_bytes as u64,
            defaults.plugins.memory_bytes as u64,
        ),
    ];
    for (key, readme, default) in shown {
        assert_eq!(readme, default, "README's `{key}` is not the default");
    }
}

/// A plugin's log lines (contract 0.3.0) appear in the host's log with its name, in a real
/// group: the `chatty` assignor says how many members it assigned over.
#[tokio::test]
async fn a_plugins_log_lines_appear_in_the_hosts_log() {
    let broker = Kafka::shared();
    broker.create_topic("cli-plugin-log", 2, &[]).await.unwrap();
    produce_sample(broker, "cli-plugin-log", &["--count", "4"]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("chatty.toml");
    std::fs::write(
        &config,
        format!(
            "[consumer]\nassignors = [\"chatty\"]\n\n[[plugins.assignors]]\npath = {:?}\n",
            wasmkafka_tests::plugins::plugin("test-chatty")
                .display()
                .to_string()
        ),
    )
    .unwrap();
    let output = wasmkafka()
        .args(["run", "--config"])
        .arg(&config)
        .args(["--brokers", &broker.addr(), "--topic", "cli-plugin-log"])
        .args(["--group", "cli-plugin-log-g", "--from", "earliest"])
        .args(["--max-records", "4", "--no-progress"])
        .env("WASMKAFKA_LOG", "info")
        .env("NO_COLOR", "1")
        .bounded_output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("assigning"))
        .unwrap_or_else(|| panic!("no plugin line in:\n{stderr}"));
    assert!(
        line.contains("INFO") && line.contains("plugin=\"chatty\"") && line.contains("members=1"),
        "{line}"
    );
    // Debug lines stay below the info level asked for.
    assert!(!stderr.contains("member id="), "{stderr}");
}

/// `produce --stdin` (as `kcat -P`): 100,000 lines of assorted bytes round-trip byte-exact
/// through a one-partition topic and `run --format raw`.
#[tokio::test]
async fn produce_from_stdin_round_trips_every_line_byte_exact() {
    use std::io::Write;
    let broker = Kafka::shared();
    broker.create_topic("cli-stdin", 1, &[]).await.unwrap();
    let mut input = Vec::new();
    for n in 0..100_000u32 {
        match n % 5 {
            0 => input.extend_from_slice(format!("line {n}").as_bytes()),
            1 => input.extend_from_slice(format!("tab\there, unicode é ✓ {n}").as_bytes()),
            2 => {} // an empty line: an empty value
            3 => input.extend_from_slice(format!("carriage return kept {n}\r").as_bytes()),
            _ => input.extend_from_slice(&[b'x'; 300]),
        }
        input.push(b'\n');
    }
    let mut producer = wasmkafka()
        .args([
            "produce",
            "--brokers",
            &broker.addr(),
            "--topic",
            "cli-stdin",
        ])
        .args(["--stdin", "--batch", "5000", "--compression", "lz4"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    producer.stdin.take().unwrap().write_all(&input).unwrap();
    let produced = producer.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&produced.stderr);
    assert!(produced.status.success(), "{report}");
    assert!(
        report.contains("produced 100000 records") && report.contains("partition 0: 100000"),
        "{report}"
    );
    let output = wasmkafka()
        .args(["run", "--brokers", &broker.addr(), "--topic", "cli-stdin"])
        .args([
            "--from",
            "earliest",
            "--format",
            "raw",
            "--exit-at-end",
            "--no-progress",
        ])
        .bounded_output()
        .unwrap();
    assert_succeeded(&output, "");
    // Compared without printing megabytes.
    assert_eq!(output.stdout.len(), input.len());
    assert!(output.stdout == input, "the bytes differ");
}

/// Keyed lines (`--key-delimiter`) go to the partition Kafka's default partitioner picks for
/// the key, with the `--header`s on every record.
#[tokio::test]
async fn produce_from_stdin_places_keys_as_kafka_does_and_adds_headers() {
    use std::io::Write;
    let broker = Kafka::shared();
    broker.create_topic("cli-stdin-keys", 3, &[]).await.unwrap();
    let input: String = (0..300).map(|n| format!("key-{n}\tvalue-{n}\n")).collect();
    let mut producer = wasmkafka()
        .args([
            "produce",
            "--brokers",
            &broker.addr(),
            "--topic",
            "cli-stdin-keys",
        ])
        .args([
            "--stdin",
            "--key-delimiter",
            "\t",
            "-H",
            "source=stdin",
            "-H",
            "team=ops",
        ])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    producer
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let produced = producer.wait_with_output().unwrap();
    assert_succeeded(&produced, "");
    let output = wasmkafka()
        .args([
            "run",
            "--brokers",
            &broker.addr(),
            "--topic",
            "cli-stdin-keys",
        ])
        .args([
            "--from",
            "earliest",
            "--format",
            "json",
            "--exit-at-end",
            "--no-progress",
        ])
        .bounded_output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let records: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 300);
    for record in &records {
        let key = record["key"].as_str().unwrap();
        let n: u32 = key.strip_prefix("key-").unwrap().parse().unwrap();
        assert_eq!(record["value"], format!("value-{n}"));
        assert_eq!(
            record["partition"].as_u64().unwrap() as usize,
            wasmkafka::produce::partition_for_key(key.as_bytes(), 3),
            "{record}"
        );
        let headers = record["headers"].to_string();
        assert!(
            headers.contains("source") && headers.contains("stdin") && headers.contains("team"),
            "{headers}"
        );
    }
}

/// The README's first ```sh block containing `needle` (what a user copies).
fn readme_sh_block(needle: &str) -> String {
    readme_block("sh", needle)
}

/// The README's `produce --stdin` lines run as written (in bash, with this build's binary
/// first on PATH and the test broker's address in place of 127.0.0.1:9092).
#[tokio::test]
async fn the_readme_stdin_produce_lines_run_as_written() {
    let broker = Kafka::shared();
    let topic = "cli-readme-stdin";
    broker.create_topic(topic, 2, &[]).await.unwrap();
    let script = readme_sh_block("--stdin")
        .replace("127.0.0.1:9092", &broker.addr())
        .replace("--topic events", &format!("--topic {topic}"));
    run_shell_script(&script, Path::new(env!("CARGO_BIN_EXE_wasmkafka")), None);
    let output = wasmkafka()
        .args(["run", "--brokers", &broker.addr(), "--topic", topic])
        .args([
            "--from",
            "earliest",
            "--format",
            "json",
            "--exit-at-end",
            "--no-progress",
        ])
        .bounded_output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut seen: Vec<(String, String)> = stdout
        .lines()
        .map(|l| {
            let record: serde_json::Value = serde_json::from_str(l).unwrap();
            assert!(record["headers"].to_string().contains("shell"), "{record}");
            (
                record["key"].as_str().unwrap().to_string(),
                record["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("user-1".to_string(), "{\"clicks\":3}".to_string()),
            ("user-2".to_string(), "{\"clicks\":5}".to_string()),
        ]
    );
}

/// The README's group-protocol line runs as written (the test broker's address, a topic and
/// group of its own), twice, as a two-member consumer-protocol group that splits the topic.
#[tokio::test(flavor = "multi_thread")]
async fn the_readme_consumer_protocol_line_runs_as_a_two_member_group() {
    use wasmkafka_tests::cli_member::CliMember;
    let broker = Kafka::shared();
    let topic = "cli-readme-kip848";
    broker.create_topic(topic, 4, &[]).await.unwrap();
    let line = readme_sh_block("group.protocol=consumer")
        .trim()
        .replace("127.0.0.1:9092", &broker.addr())
        .replace("--topic events", &format!("--topic {topic}"))
        .replace("--group billing", "--group cli-readme-kip848-g");
    assert!(line.starts_with("wasmkafka run "), "{line}");
    let bin = Path::new(env!("CARGO_BIN_EXE_wasmkafka"));
    let members = tokio::task::spawn_blocking(move || {
        let mut a = CliMember::start("a", bin, &args_of(&line), (0, Duration::ZERO));
        let mut b = CliMember::start("b", bin, &args_of(&line), (0, Duration::ZERO));
        a.wait_for_log("assignment applied", Duration::from_secs(60));
        b.wait_for_log("assignment applied", Duration::from_secs(60));
        produce_sample(broker, topic, &["--count", "2000"]);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let mut all: Vec<_> = a.printed();
            all.extend(b.printed());
            all.sort();
            all.dedup();
            if all.len() == 2_000 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} of 2000 printed\n{}\n{}",
                all.len(),
                a.log(),
                b.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        (
            a.stop_cleanly(Duration::from_secs(20)),
            b.stop_cleanly(Duration::from_secs(20)),
        )
    });
    let (a, b) = tokio::time::timeout(Duration::from_secs(150), members)
        .await
        .expect("the members finished")
        .unwrap();
    for finished in [&a, &b] {
        assert!(finished.status.success(), "{}", finished.log);
        assert!(finished.log.contains("member epoch"), "{}", finished.log);
        assert!(!finished.printed.is_empty(), "each member read its share");
    }
}

/// The arguments after `wasmkafka run`.
fn args_of(line: &str) -> Vec<String> {
    line.split_whitespace()
        .skip(2)
        .map(str::to_string)
        .collect()
}
