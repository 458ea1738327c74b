//! `wasmkafka offsets describe|plan` against Apache Kafka: exact committed offsets and lag; a
//! dry run changes nothing; `--execute` moves the committed offsets and a consumer starts
//! there; an export round-trips through `--from-file`; active members block `--execute`; a
//! group the broker never saw takes a plan, and a coordinator not elected yet is waited for.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use wasmkafka_tests::bounded::{assert_succeeded, BoundedOutput};
use wasmkafka_tests::kafka::admin::value_record;
use wasmkafka_tests::kafka::Kafka;

const TOPIC: &str = "offsets-t";
const GROUP: &str = "offsets-g";

fn wasmkafka<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasmkafka"))
        .args(args)
        .bounded_output()
        .unwrap()
}

fn ok<S: AsRef<OsStr> + std::fmt::Debug>(args: &[S]) -> String {
    let output = wasmkafka(args);
    assert_succeeded(&output, &format!("{args:?}"));
    String::from_utf8(output.stdout).unwrap()
}

/// The arguments of `wasmkafka offsets SUBCOMMAND --brokers ADDR --group GROUP REST...`.
fn offsets_args(subcommand: &str, addr: &str, group: &str, rest: &[&str]) -> Vec<String> {
    ["offsets", subcommand, "--brokers", addr, "--group", group]
        .iter()
        .chain(rest)
        .map(|arg| arg.to_string())
        .collect()
}

/// Runs `wasmkafka offsets SUBCOMMAND --brokers ADDR --group GROUP REST...`, asserts that it
/// succeeded and returns its stdout.
fn offsets(subcommand: &str, addr: &str, group: &str, rest: &[&str]) -> String {
    ok(&offsets_args(subcommand, addr, group, rest))
}

/// `offsets describe --format json` of `group` on `topic`.
fn described(addr: &str, group: &str, topic: &str) -> Value {
    serde_json::from_str(&offsets(
        "describe",
        addr,
        group,
        &["--topic", topic, "--format", "json"],
    ))
    .unwrap()
}

/// Committed offset of each partition, from `offsets describe --format json`.
fn committed(addr: &str) -> Vec<Option<i64>> {
    described(addr, GROUP, TOPIC)["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["committed"].as_i64())
        .collect()
}

/// Produces `count` records valued `{partition}-{i}` to each of `partitions` partitions in
/// batches of `batch`, record `i` stamped `timestamp(i)`.
async fn produce_numbered(
    broker: &Kafka,
    topic: &str,
    partitions: i32,
    count: i64,
    batch: usize,
    timestamp: impl Fn(i64) -> Option<i64>,
) {
    broker
        .produce_to_each_partition(topic, partitions, count, batch, |partition, i| {
            value_record(format!("{partition}-{i}"), timestamp(i))
        })
        .await
        .unwrap();
}

/// Reads `count` records of `topic` as `group` with `wasmkafka run`, one `PARTITION OFFSET`
/// line each.
fn read_as_group(addr: &str, group: &str, topic: &str, count: usize) -> String {
    ok(&[
        "run",
        "--brokers",
        addr,
        "--group",
        group,
        "--topic",
        topic,
        "--max-records",
        &count.to_string(),
        "--format-string",
        "%p %o\\n",
    ])
}

/// Consumes the group's share to the end and returns the first offset printed per partition.
fn first_offsets_read(addr: &str, expected: usize) -> Vec<(i64, i64)> {
    let out = read_as_group(addr, GROUP, TOPIC, expected);
    let mut first = std::collections::BTreeMap::new();
    for line in out.lines() {
        let (p, o) = line.split_once(' ').unwrap();
        first
            .entry(p.parse::<i64>().unwrap())
            .or_insert(o.parse::<i64>().unwrap());
    }
    first.into_iter().collect()
}

/// `offsets describe`'s table of `group` on `topic`, each line's columns one space apart.
fn described_table(addr: &str, group: &str, topic: &str) -> (String, Vec<String>) {
    let table = offsets("describe", addr, group, &["--topic", topic]);
    let lines = table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    (table, lines)
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
    produce_numbered(broker, TOPIC, 2, 20, 10, |i| Some(base + 1000 * i)).await;
    // The group reads everything and stops cleanly: committed 20 and 20.
    assert_eq!(first_offsets_read(&addr, 40), [(0, 0), (1, 0)]);
    assert_eq!(committed(&addr), [Some(20), Some(20)]);

    // describe: the table, exactly.
    let (table, lines) = described_table(&addr, GROUP, TOPIC);
    assert!(lines[0].starts_with("group offsets-g: Empty"), "{table}");
    assert_eq!(lines[2], "offsets-t 0 20 0 20 0 -");
    assert_eq!(lines[3], "offsets-t 1 20 0 20 0 -");

    // A dry run changes nothing.
    let plan = |to: &str| -> Value {
        serde_json::from_str(&offsets(
            "plan",
            &addr,
            GROUP,
            &["--topic", TOPIC, "--to", to, "--format", "json"],
        ))
        .unwrap()
    };
    let targets: Vec<i64> = plan("earliest")
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["offset"].as_i64().unwrap())
        .collect();
    assert_eq!(targets, [0, 0]);
    assert_eq!(committed(&addr), [Some(20), Some(20)]);

    // --execute moves them: back 5 on partition 0 only.
    offsets(
        "plan",
        &addr,
        GROUP,
        &["--topic", "offsets-t:0", "--to", "shift:-5", "--execute"],
    );
    assert_eq!(committed(&addr), [Some(15), Some(20)]);
    // A time: the first record stamped at or after base + 3 s is offset 3.
    let when =
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis((base + 3000) as u64))
            .to_string();
    let plan_at = plan(&format!("datetime:{when}"));
    assert_eq!(plan_at[0]["offset"], 3, "{plan_at}");
    // A built-in policy by name decides the same way the consumer would.
    assert_eq!(plan("policy:latest")[1]["offset"], 20);

    // Export, then apply the file: a consumer then starts exactly there.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plan.csv");
    let file_arg = file.to_str().unwrap();
    offsets(
        "plan",
        &addr,
        GROUP,
        &["--topic", TOPIC, "--to", "offset:7", "--export", file_arg],
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "offsets-t,0,7\noffsets-t,1,7\n"
    );
    assert_eq!(
        committed(&addr),
        [Some(15), Some(20)],
        "export alone commits nothing"
    );
    offsets(
        "plan",
        &addr,
        GROUP,
        &["--from-file", file_arg, "--execute"],
    );
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
            let described = described(&addr, GROUP, TOPIC);
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
        let refused = wasmkafka(&offsets_args(
            "plan",
            &addr,
            GROUP,
            &["--topic", TOPIC, "--to", "earliest", "--execute"],
        ));
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
    let bad = wasmkafka(&offsets_args(
        "plan",
        &addr,
        GROUP,
        &["--topic", TOPIC, "--to", "nowhere"],
    ));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("use earliest, latest, offset:N"));
    let bad = wasmkafka(&offsets_args(
        "plan",
        &addr,
        GROUP,
        &["--topic", "nope", "--to", "earliest"],
    ));
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
    produce_numbered(broker, REPORT_TOPIC, 3, 20, 10, |i| Some(now + i)).await;
    let dir = tempfile::tempdir().unwrap();
    // The group reads everything and stops (committed 20 each), then is moved to 10.
    read_as_group(&addr, REPORT_GROUP, REPORT_TOPIC, 60);
    offsets(
        "plan",
        &addr,
        REPORT_GROUP,
        &["--topic", REPORT_TOPIC, "--to", "offset:10", "--execute"],
    );
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
    let planned: Value = serde_json::from_str(&offsets(
        "plan",
        &addr,
        REPORT_GROUP,
        &[
            "--from-file",
            &plan_arg,
            "--format",
            "json",
            "--report",
            &report_arg,
        ],
    ))
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
    produce_numbered(broker, topic, 2, 5, 5, |_| None).await;
    let before = ok(&["groups", "describe", "--brokers", &addr, "--group", group]);
    assert!(
        before.starts_with(&format!("group {group}: Dead")),
        "{before}"
    );
    offsets(
        "plan",
        &addr,
        group,
        &["--topic", topic, "--to", "latest", "--execute"],
    );
    let (table, lines) = described_table(&addr, group, topic);
    assert!(
        lines[0].starts_with(&format!("group {group}: Empty")),
        "{table}"
    );
    assert_eq!(lines[2], format!("{topic} 0 5 0 5 0 -"), "{table}");
    assert_eq!(lines[3], format!("{topic} 1 5 0 5 0 -"), "{table}");
}
