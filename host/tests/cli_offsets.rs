//! `wasmkafka offsets describe|plan` against Apache Kafka: exact committed offsets and lag; a
//! dry run changes nothing; `--execute` moves the committed offsets and a consumer starts
//! there; an export round-trips through `--from-file`; active members block `--execute`; a
//! group the broker never saw takes a plan, and a coordinator not elected yet is waited for.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::Value;
use wasmkafka::produce::OutgoingRecord;
use wasmkafka_tests::bounded::BoundedOutput;
use wasmkafka_tests::kafka::Kafka;

const TOPIC: &str = "offsets-t";
const GROUP: &str = "offsets-g";

fn wasmkafka(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasmkafka"))
        .args(args)
        .bounded_output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let output = wasmkafka(args);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Committed offset of each partition, from `offsets describe --format json`.
fn committed(addr: &str) -> Vec<Option<i64>> {
    let described: Value = serde_json::from_str(&ok(&[
        "offsets",
        "describe",
        "--brokers",
        addr,
        "--group",
        GROUP,
        "--topic",
        TOPIC,
        "--format",
        "json",
    ]))
    .unwrap();
    described["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["committed"].as_i64())
        .collect()
}

/// Consumes the group's share to the end and returns the first offset printed per partition.
fn first_offsets_read(addr: &str, expected: usize) -> Vec<(i64, i64)> {
    let count = expected.to_string();
    let out = ok(&[
        "run",
        "--brokers",
        addr,
        "--group",
        GROUP,
        "--topic",
        TOPIC,
        "--max-records",
        &count,
        "--format-string",
        "%p %o\\n",
    ]);
    let mut first = std::collections::BTreeMap::new();
    for line in out.lines() {
        let (p, o) = line.split_once(' ').unwrap();
        first
            .entry(p.parse::<i64>().unwrap())
            .or_insert(o.parse::<i64>().unwrap());
    }
    first.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_plan_execute_export_and_the_active_member_guard() {
    let broker = Kafka::shared();
    let addr = broker.addr();
    broker.create_topic(TOPIC, 2, &[]).await.unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let base = (now - 3_600_000) / 1000 * 1000;
    let client = broker.client();
    for partition in [0, 1] {
        let records: Vec<OutgoingRecord> = (0..20)
            .map(|i| OutgoingRecord {
                key: None,
                value: Some(Bytes::from(format!("{partition}-{i}"))),
                headers: Vec::new(),
                timestamp: Some(base + 1000 * i),
            })
            .collect();
        broker
            .produce(&client, TOPIC, partition, &records, 10)
            .await
            .unwrap();
    }
    client.close();
    // The group reads everything and stops cleanly: committed 20 and 20.
    assert_eq!(first_offsets_read(&addr, 40), [(0, 0), (1, 0)]);
    assert_eq!(committed(&addr), [Some(20), Some(20)]);

    // describe: the table, exactly.
    let table = ok(&[
        "offsets",
        "describe",
        "--brokers",
        &addr,
        "--group",
        GROUP,
        "--topic",
        TOPIC,
    ]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("group offsets-g: Empty"), "{table}");
    let squeeze = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(squeeze(lines[2]), "offsets-t 0 20 0 20 0 -");
    assert_eq!(squeeze(lines[3]), "offsets-t 1 20 0 20 0 -");

    // A dry run changes nothing.
    let plan: Value = serde_json::from_str(&ok(&[
        "offsets",
        "plan",
        "--brokers",
        &addr,
        "--group",
        GROUP,
        "--topic",
        TOPIC,
        "--to",
        "earliest",
        "--format",
        "json",
    ]))
    .unwrap();
    let targets: Vec<i64> = plan
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["offset"].as_i64().unwrap())
        .collect();
    assert_eq!(targets, [0, 0]);
    assert_eq!(committed(&addr), [Some(20), Some(20)]);

    // --execute moves them: back 5 on partition 0 only.
    ok(&[
        "offsets",
        "plan",
        "--brokers",
        &addr,
        "--group",
        GROUP,
        "--topic",
        "offsets-t:0",
        "--to",
        "shift:-5",
        "--execute",
    ]);
    assert_eq!(committed(&addr), [Some(15), Some(20)]);
    // A time: the first record stamped at or after base + 3 s is offset 3.
    let when =
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis((base + 3000) as u64))
            .to_string();
    let plan = ok(&[
        "offsets",
        "plan",
        "--brokers",
        &addr,
        "--group",
        GROUP,
        "--topic",
        TOPIC,
        "--to",
        &format!("datetime:{when}"),
        "--format",
        "json",
    ]);
    let plan: Value = serde_json::from_str(&plan).unwrap();
    assert_eq!(plan[0]["offset"], 3, "{plan}");
    // A built-in policy by name decides the same way the consumer would.
    let plan: Value = serde_json::from_str(&ok(&[
        "offsets",
        "plan",
        "--brokers",
        &addr,
        "--group",
        GROUP,
        "--topic",
        TOPIC,
        "--to",
        "policy:latest",
        "--format",
        "json",
    ]))
    .unwrap();
    assert_eq!(plan[1]["offset"], 20);

    // Export, then apply the file: a consumer then starts exactly there.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plan.csv");
    ok(&[
        "offsets",
        "plan",
        "--brokers",
        &addr,
        "--group",
        GROUP,
        "--topic",
        TOPIC,
        "--to",
        "offset:7",
        "--export",
        file.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "offsets-t,0,7\noffsets-t,1,7\n"
    );
    assert_eq!(
        committed(&addr),
        [Some(15), Some(20)],
        "export alone commits nothing"
    );
    ok(&[
        "offsets",
        "plan",
        "--brokers",
        &addr,
        "--group",
        GROUP,
        "--from-file",
        file.to_str().unwrap(),
        "--execute",
    ]);
    assert_eq!(committed(&addr), [Some(7), Some(7)]);
    assert_eq!(first_offsets_read(&addr, 26), [(0, 7), (1, 7)]);

    // While a member is active, --execute is refused and names it: a member of either group
    // protocol (a consumer-protocol group is invisible to DescribeGroups).
    for protocol in ["classic", "consumer"] {
        let mut member = Command::new(env!("CARGO_BIN_EXE_wasmkafka"))
            .args([
                "run",
                "--brokers",
                &addr,
                "--group",
                GROUP,
                "--topic",
                TOPIC,
                "-X",
                &format!("group.protocol={protocol}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let described: Value = serde_json::from_str(&ok(&[
                "offsets",
                "describe",
                "--brokers",
                &addr,
                "--group",
                GROUP,
                "--topic",
                TOPIC,
                "--format",
                "json",
            ]))
            .unwrap();
            if described["members"]
                .as_array()
                .is_some_and(|m| !m.is_empty())
            {
                assert_eq!(described["group_protocol"], protocol, "{described}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the {protocol} member never joined"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let refused = wasmkafka(&[
            "offsets",
            "plan",
            "--brokers",
            &addr,
            "--group",
            GROUP,
            "--topic",
            TOPIC,
            "--to",
            "earliest",
            "--execute",
        ]);
        assert!(!refused.status.success(), "{protocol}");
        let error = String::from_utf8_lossy(&refused.stderr);
        assert!(
            error.contains("1 active member(s)") && error.contains("client wasmkafka"),
            "{protocol}: {error}"
        );
        assert!(error.contains("stop its consumers first"), "{error}");
        let _ = Command::new("kill")
            .args(["-TERM", &member.id().to_string()])
            .status();
        assert!(member.wait().unwrap().success());
    }

    // Bad input names the fix.
    let bad = wasmkafka(&[
        "offsets",
        "plan",
        "--brokers",
        &addr,
        "--group",
        GROUP,
        "--topic",
        TOPIC,
        "--to",
        "nowhere",
    ]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("use earliest, latest, offset:N"));
    let bad = wasmkafka(&[
        "offsets",
        "plan",
        "--brokers",
        &addr,
        "--group",
        GROUP,
        "--topic",
        "nope",
        "--to",
        "earliest",
    ]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("topic `nope` does not exist"));
}

/// `offsets plan --report`: the page, rendered in headless Chromium, shows each partition's
/// log start, committed, planned offset and end as the broker and the plan have them, with the
/// records skipped (forward) and read again (back) counted; no console message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_report_in_a_browser() {
    use wasmkafka_tests::browser::{self, start_tags};
    const REPORT_TOPIC: &str = "offsets-report-t";
    const REPORT_GROUP: &str = "offsets-report-g";
    let broker = Kafka::shared();
    let addr = broker.addr();
    broker.create_topic(REPORT_TOPIC, 3, &[]).await.unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let client = broker.client();
    for partition in 0..3 {
        let records: Vec<OutgoingRecord> = (0..20)
            .map(|i| OutgoingRecord {
                key: None,
                value: Some(Bytes::from(format!("{partition}-{i}"))),
                headers: Vec::new(),
                timestamp: Some(now + i),
            })
            .collect();
        broker
            .produce(&client, REPORT_TOPIC, partition, &records, 10)
            .await
            .unwrap();
    }
    client.close();
    let dir = tempfile::tempdir().unwrap();
    // The group reads everything and stops (committed 20 each), then is moved to 10.
    ok(&[
        "run",
        "--brokers",
        &addr,
        "--group",
        REPORT_GROUP,
        "--topic",
        REPORT_TOPIC,
        "--max-records",
        "60",
        "--format-string",
        "%p %o\\n",
    ]);
    ok(&[
        "offsets",
        "plan",
        "--brokers",
        &addr,
        "--group",
        REPORT_GROUP,
        "--topic",
        REPORT_TOPIC,
        "--to",
        "offset:10",
        "--execute",
    ]);
    // Then a plan: forward 5, back 6, unchanged.
    let plan = dir.path().join("plan.csv");
    std::fs::write(
        &plan,
        format!("{REPORT_TOPIC},0,15\n{REPORT_TOPIC},1,4\n{REPORT_TOPIC},2,10\n"),
    )
    .unwrap();
    let report = Path::new(env!("CARGO_TARGET_TMPDIR")).join("offsets-plan-report.html");
    let plan_arg = plan.display().to_string();
    let report_arg = report.display().to_string();
    let planned: Value = serde_json::from_str(&ok(&[
        "offsets",
        "plan",
        "--brokers",
        &addr,
        "--group",
        REPORT_GROUP,
        "--from-file",
        &plan_arg,
        "--format",
        "json",
        "--report",
        &report_arg,
    ]))
    .unwrap();
    let rendered = browser::render(&report);
    assert!(rendered.console.is_empty(), "{:?}", rendered.console);
    let tags = start_tags(&rendered.dom);
    let rows: Vec<[String; 8]> = tags
        .iter()
        .filter(|t| t.name == "svg" && t.has_class("partition"))
        .map(|t| {
            [
                "data-topic",
                "data-partition",
                "data-log-start",
                "data-committed",
                "data-planned",
                "data-end",
                "data-skipped",
                "data-read-again",
            ]
            .map(|k| t.get(k).unwrap().to_string())
        })
        .collect();
    let expected = |p: i64, planned: i64, skipped: i64, again: i64| {
        [
            REPORT_TOPIC.to_string(),
            p.to_string(),
            "0".into(),
            "10".into(),
            planned.to_string(),
            "20".into(),
            skipped.to_string(),
            again.to_string(),
        ]
    };
    assert_eq!(
        rows,
        [
            expected(0, 15, 5, 0),
            expected(1, 4, 0, 6),
            expected(2, 10, 0, 0)
        ]
    );
    // The planned offsets are the JSON's.
    let offsets: Vec<String> = planned
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["offset"].to_string())
        .collect();
    assert_eq!(offsets, ["15", "4", "10"]);
    let totals = tags.iter().find(|t| t.get("id") == Some("totals")).unwrap();
    assert_eq!(totals.get("data-skipped"), Some("5"));
    assert_eq!(totals.get("data-read-again"), Some("6"));
    let png = Path::new(env!("CARGO_TARGET_TMPDIR")).join("offsets-plan-report.png");
    let console = browser::screenshot(&report, &png, 900, 700);
    assert!(console.is_empty(), "{console:?}");
}

/// `offsets plan --execute` for a group the broker never saw commits the plan: Kafka 4.x
/// answers DescribeGroups with GROUP_ID_NOT_FOUND for it, which is a group without members
/// (earlier brokers said `Dead`), not a group of another protocol. `groups describe` says the
/// same before the plan and shows the commits after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_for_a_group_the_broker_never_saw_is_executed() {
    let broker = Kafka::shared();
    let addr = broker.addr();
    let (topic, group) = ("offsets-new-t", "offsets-never-seen");
    broker.create_topic(topic, 2, &[]).await.unwrap();
    let client = broker.client();
    for partition in [0, 1] {
        let records: Vec<OutgoingRecord> = (0..5)
            .map(|i| OutgoingRecord {
                key: None,
                value: Some(Bytes::from(format!("{partition}-{i}"))),
                headers: Vec::new(),
                timestamp: None,
            })
            .collect();
        broker
            .produce(&client, topic, partition, &records, 5)
            .await
            .unwrap();
    }
    client.close();
    let before = ok(&["groups", "describe", "--brokers", &addr, "--group", group]);
    assert!(
        before.starts_with(&format!("group {group}: Dead")),
        "{before}"
    );
    ok(&[
        "offsets",
        "plan",
        "--brokers",
        &addr,
        "--group",
        group,
        "--topic",
        topic,
        "--to",
        "latest",
        "--execute",
    ]);
    let table = ok(&[
        "offsets",
        "describe",
        "--brokers",
        &addr,
        "--group",
        group,
        "--topic",
        topic,
    ]);
    let squeeze = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
    let lines: Vec<String> = table.lines().map(squeeze).collect();
    assert!(
        lines[0].starts_with(&format!("group {group}: Empty")),
        "{table}"
    );
    assert_eq!(lines[2], format!("{topic} 0 5 0 5 0 -"), "{table}");
    assert_eq!(lines[3], format!("{topic} 1 5 0 5 0 -"), "{table}");
}
