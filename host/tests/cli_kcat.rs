//! kcat-grade consuming with `wasmkafka run` against Apache Kafka: `--exit-at-end`,
//! `--offset` (for every partition and per partition), `--partition`, format strings, a key
//! delimiter, JSON values. Each test checks the exact output.

use std::process::{Command, Output};

use bytes::Bytes;
use wasmkafka::produce::OutgoingRecord;
use wasmkafka_tests::bounded::{assert_succeeded, BoundedOutput};
use wasmkafka_tests::kafka::Kafka;

fn wasmkafka(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_wasmkafka"))
        .args(args)
        .bounded_output()
        .unwrap();
    output
}

/// Runs `wasmkafka run` against the shared broker; asserts success and returns stdout.
fn run(broker: &Kafka, topic: &str, flags: &[&str]) -> String {
    let addr = broker.addr();
    let mut args = vec!["run", "--brokers", &addr, "--topic", topic];
    args.extend(flags);
    let output = wasmkafka(&args);
    assert_succeeded(&output, &format!("{args:?}"));
    String::from_utf8(output.stdout).unwrap()
}

/// An hour ago, rounded to the second: timestamps relative to it stay within any retention.
fn base() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    (now - 3_600_000) / 1000 * 1000
}

fn record(key: Option<&str>, value: &str, timestamp: i64) -> OutgoingRecord {
    OutgoingRecord {
        key: key.map(|k| Bytes::from(k.to_string())),
        value: Some(Bytes::from(value.to_string())),
        headers: Vec::new(),
        timestamp: Some(timestamp),
    }
}

/// A topic with 3 partitions holding 5, 2 and 0 records: values `p<P>-<N>`, stamped
/// `base + 1000 * (N + 1)`.
async fn topic_with_uneven_partitions(broker: &Kafka, topic: &str, base: i64) {
    broker.create_topic(topic, 3, &[]).await.unwrap();
    let client = broker.client();
    for (partition, count) in [(0, 5), (1, 2)] {
        let records: Vec<OutgoingRecord> = (0..count)
            .map(|n| record(None, &format!("p{partition}-{n}"), base + 1000 * (n + 1)))
            .collect();
        broker
            .produce(&client, topic, partition, &records, 10)
            .await
            .unwrap();
    }
    client.close();
}

/// Lines sorted (partitions are printed interleaved; each one's own order is checked by
/// the caller where it matters).
fn sorted(output: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = output.lines().collect();
    lines.sort();
    lines
}

#[tokio::test]
async fn exit_at_end_stops_once_every_partition_is_read_even_an_empty_one() {
    let broker = Kafka::shared();
    topic_with_uneven_partitions(broker, "kcat-end", base()).await;
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        run(
            broker,
            "kcat-end",
            &[
                "--offset",
                "beginning",
                "--exit-at-end",
                "--format-string",
                "%p %o %s\\n",
            ],
        )
    })
    .await
    .expect("exits at the end");
    assert_eq!(
        sorted(&output),
        ["0 0 p0-0", "0 1 p0-1", "0 2 p0-2", "0 3 p0-3", "0 4 p0-4", "1 0 p1-0", "1 1 p1-1"]
    );
    let partition0: Vec<&str> = output.lines().filter(|l| l.starts_with("0 ")).collect();
    assert_eq!(
        partition0,
        ["0 0 p0-0", "0 1 p0-1", "0 2 p0-2", "0 3 p0-3", "0 4 p0-4"]
    );
}

#[tokio::test]
async fn offset_minus_n_reads_the_last_n_of_each_partition() {
    let broker = Kafka::shared();
    let base = base();
    topic_with_uneven_partitions(broker, "kcat-tail", base).await;
    let output = run(
        broker,
        "kcat-tail",
        &[
            "--offset",
            "-3",
            "--exit-at-end",
            "--format-string",
            "%p:%s\\n",
        ],
    );
    // Partition 0: the last 3 of 5; partition 1 has only 2 (clamped to its start).
    assert_eq!(
        sorted(&output),
        ["0:p0-2", "0:p0-3", "0:p0-4", "1:p1-0", "1:p1-1"]
    );
    // Per partition, and only some partitions.
    let output = run(
        broker,
        "kcat-tail",
        &[
            "--partition",
            "0,1",
            "--offset",
            "0=4",
            "--offset",
            "1=end",
            "--exit-at-end",
            "--format-string",
            "%p:%o\\n",
        ],
    );
    assert_eq!(output, "0:4\n");
    // A time: the first record stamped at or after base + 3000 (N = 2 in partition 0; none
    // in 1).
    let at = format!("@{}", base + 3000);
    let output = run(
        broker,
        "kcat-tail",
        &[
            "--offset",
            &at,
            "--exit-at-end",
            "--format-string",
            "%p:%o:%T\\n",
        ],
    );
    let expected: Vec<String> = (2..5)
        .map(|n| format!("0:{n}:{}", base + 1000 * (n + 1)))
        .collect();
    assert_eq!(sorted(&output), expected);
}

#[tokio::test]
async fn format_string_key_delimiter_and_json_values_give_exact_lines() {
    let broker = Kafka::shared();
    broker.create_topic("kcat-format", 1, &[]).await.unwrap();
    let client = broker.client();
    let base = base();
    let mut with_headers = record(Some("k1"), "{\"n\": 1}", base + 7000);
    with_headers.headers = vec![
        ("h1".into(), Some(Bytes::from_static(b"a"))),
        ("h2".into(), None),
    ];
    let records = [with_headers, record(None, "plain", base + 8000)];
    broker
        .produce(&client, "kcat-format", 0, &records, 10)
        .await
        .unwrap();
    client.close();
    // The whole topic, printed with `format` flags.
    let read_all = |format: &[&str]| {
        let args = [&["--offset", "beginning", "--exit-at-end"], format].concat();
        run(broker, "kcat-format", &args)
    };
    let output = read_all(&["--format-string", "%t|%p|%o|%k|%s|%T|%h|%K|%S\\n"]);
    assert_eq!(
        output,
        format!(
            "kcat-format|0|0|k1|{{\"n\": 1}}|{}|h1=a,h2=|2|8\nkcat-format|0|1||plain|{}||-1|5\n",
            base + 7000,
            base + 8000
        )
    );
    let output = read_all(&["--format", "raw", "--key-delimiter", "=>"]);
    assert_eq!(output, "k1=>{\"n\": 1}\n=>plain\n");
    let output = read_all(&["--json-values"]);
    let lines: Vec<serde_json::Value> = output
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["value"], serde_json::json!({"n": 1}));
    assert_eq!(lines[0]["key"], "k1");
    assert_eq!(lines[1]["value"], "plain");
    assert_eq!(lines[1]["key"], serde_json::Value::Null);
}

#[tokio::test]
async fn start_flags_that_do_not_fit_are_refused_with_the_fix() {
    let broker = Kafka::shared();
    topic_with_uneven_partitions(broker, "kcat-bad", base()).await;
    let addr = broker.addr();
    let failing = |flags: &[&str]| {
        let mut args = vec!["run", "--brokers", &addr, "--topic", "kcat-bad"];
        args.extend(flags);
        let output = wasmkafka(&args);
        assert!(!output.status.success(), "{flags:?} succeeded");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let error = failing(&["--offset", "stored"]);
    assert!(error.contains("stored needs --group"), "{error}");
    let error = failing(&["--offset", "-3", "--group", "g"]);
    assert!(error.contains("apply without --group"), "{error}");
    let error = failing(&["--partition", "9"]);
    assert!(error.contains("has partitions 0..3"), "{error}");
    let error = failing(&["--format-string", "%x"]);
    assert!(error.contains("%t %p %o"), "{error}");
}

#[tokio::test]
async fn kafka_property_names_work_in_the_file_and_as_dash_x() {
    let broker = Kafka::shared();
    topic_with_uneven_partitions(broker, "kcat-props", base()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("consumer.toml");
    std::fs::write(
        &config,
        format!(
            "\"bootstrap.servers\" = \"{}\"\n\"auto.offset.reset\" = \"smallest\"\n",
            broker.addr()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let output = wasmkafka(&[
        "run",
        "--config",
        config,
        "--topic",
        "kcat-props",
        "--partition",
        "1",
        "-X",
        "max.poll.records=1",
        "-X",
        "consumer.fetch_max_wait_ms=100",
        "--exit-at-end",
        "--format-string",
        "%p:%o:%s\\n",
    ]);
    assert_succeeded(&output, "");
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "1:0:p1-0\n1:1:p1-1\n"
    );

    let failing = |args: &[&str]| {
        let output = wasmkafka(args);
        assert!(!output.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let error = failing(&["metadata", "--config", config, "-X", "group.idd=g"]);
    assert!(error.contains("did you mean `group.id`?"), "{error}");
    let error = failing(&[
        "metadata",
        "--config",
        config,
        "-X",
        "max.poll.records=lots",
    ]);
    assert!(error.contains("`lots` is not a whole number"), "{error}");
    let error = failing(&["metadata", "--config", config, "-X", "consumer.grop=g"]);
    assert!(error.contains("did you mean `group`?"), "{error}");
    let error = failing(&["metadata", "-X", "security.protocol=SASL_SSL"]);
    assert!(
        error.contains(
            "invalid value for `security.sasl_mechanism`: security.protocol SASL_SSL needs a \
             mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER (sasl.mechanism)"
        ),
        "{error}"
    );
}

/// On a terminal, `run` draws a progress line on stderr and ends it with the totals; with
/// stderr piped there is none. (`script` gives the process a terminal; stdout goes to a file.)
#[tokio::test]
async fn a_progress_line_only_on_a_terminal() {
    let broker = Kafka::shared();
    broker.create_topic("kcat-progress", 1, &[]).await.unwrap();
    let client = broker.client();
    let records: Vec<OutgoingRecord> = (0..1500)
        .map(|n| record(None, &format!("v{n}"), base() + n))
        .collect();
    broker
        .produce(&client, "kcat-progress", 0, &records, 500)
        .await
        .unwrap();
    client.close();
    let addr = broker.addr();
    let args = [
        "run",
        "--brokers",
        &addr,
        "--topic",
        "kcat-progress",
        "--exit-at-end",
        "--format",
        "raw",
    ];

    let piped = wasmkafka(&args);
    assert!(piped.status.success());
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(!stderr.contains("records/s"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let stdout_file = dir.path().join("stdout");
    let command = format!(
        "{} {} > {}",
        env!("CARGO_BIN_EXE_wasmkafka"),
        args.join(" "),
        stdout_file.display()
    );
    let on_terminal = Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .bounded_output()
        .expect("`script` (util-linux) runs a command on a terminal");
    assert!(on_terminal.status.success(), "{on_terminal:?}");
    let terminal = String::from_utf8_lossy(&on_terminal.stdout);
    let last_line = terminal
        .split(['\r', '\n'])
        .map(|line| line.trim_start_matches("\x1b[2K"))
        .rfind(|line| line.contains("records/s"))
        .unwrap_or_else(|| panic!("no progress line in {terminal:?}"));
    assert!(
        last_line.starts_with("1,500 records  ") && last_line.ends_with("  lag 0  1 partition"),
        "{last_line:?}"
    );
    let written = std::fs::read_to_string(&stdout_file).unwrap();
    assert_eq!(written.lines().count(), 1500);
}
