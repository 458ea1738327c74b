//! `wasmkafka groups list|delete|delete-offsets` against Apache Kafka, checked against Kafka's
//! own `kafka-consumer-groups` (ConsumerGroupCommand) on the same broker.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use wasmkafka_tests::bounded::{assert_succeeded, BoundedOutput};
use wasmkafka_tests::cli_commands::produce_with_cli;
use wasmkafka_tests::cli_member::{group_member_args, CliMember};
use wasmkafka_tests::java::kafka_tool;
use wasmkafka_tests::kafka::Kafka;

const TOPIC: &str = "groups-admin";
const GROUP_TOOL: &str = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand";

fn wasmkafka(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasmkafka"))
        .args(args)
        .bounded_output()
        .unwrap()
}

/// Reads `topic` to its end as a member of `group` and commits; returns what it printed.
fn read_all_as(broker: &Kafka, topic: &str, group: &str) -> usize {
    let output = wasmkafka(&[
        "run",
        "--brokers",
        &broker.addr(),
        "--topic",
        topic,
        "--group",
        group,
        "--from",
        "earliest",
        "--exit-at-end",
        "--format",
        "raw",
        "--no-progress",
    ]);
    assert_succeeded(&output, "");
    String::from_utf8_lossy(&output.stdout).lines().count()
}

/// Starts a member of `group` that reads `topic` from the earliest offset with `consumer` as
/// its `[consumer]` settings, and waits until it printed `count` records. The directory holds
/// its config.
fn start_live_member(
    broker: &Kafka,
    topic: &str,
    group: &str,
    consumer: &str,
    count: usize,
) -> (tempfile::TempDir, CliMember) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("member.toml");
    std::fs::write(&config, format!("[consumer]\n{consumer}\n")).unwrap();
    let args = group_member_args(
        config.to_str().unwrap(),
        &broker.addr(),
        topic,
        group,
        &["--from", "earliest"],
    );
    let mut live = CliMember::start(
        "live",
        Path::new(env!("CARGO_BIN_EXE_wasmkafka")),
        &args,
        (0, Duration::ZERO),
    );
    live.wait_for_printed(count, Duration::from_secs(60));
    (dir, live)
}

/// Our list of the test's groups: name -> (type, state).
fn our_list(broker: &Kafka) -> BTreeMap<String, (String, String)> {
    let output = wasmkafka(&[
        "groups",
        "list",
        "--brokers",
        &broker.addr(),
        "--format",
        "json",
    ]);
    assert_succeeded(&output, "");
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    listed
        .iter()
        .filter(|g| g["group"].as_str().unwrap().starts_with("groups-"))
        .map(|g| {
            (
                g["group"].as_str().unwrap().to_string(),
                (
                    g["type"].as_str().unwrap().to_lowercase(),
                    g["state"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect()
}

/// Kafka's list of the test's groups: `--list --state` rows, name -> state.
fn kafkas_list(broker: &Kafka) -> BTreeMap<String, String> {
    let stdout = kafka_tool(
        GROUP_TOOL,
        &["--bootstrap-server", &broker.addr(), "--list", "--state"],
        Duration::from_secs(60),
    )
    .unwrap();
    stdout
        .lines()
        .filter_map(|line| {
            let mut columns = line.split_whitespace();
            let group = columns.next()?;
            let state = columns.next()?;
            group
                .starts_with("groups-")
                .then(|| (group.to_string(), state.to_string()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn groups_are_listed_and_deleted_as_kafkas_own_tool_sees_them() {
    let broker = Kafka::shared();
    broker.create_topic(TOPIC, 2, &[]).await.unwrap();
    produce_with_cli(
        Path::new(env!("CARGO_BIN_EXE_wasmkafka")),
        &broker.addr(),
        TOPIC,
        &["--count", "10", "--batch", "5"],
    );
    // Two groups that committed and left, one with a live member.
    assert_eq!(read_all_as(broker, TOPIC, "groups-done-a"), 10);
    assert_eq!(read_all_as(broker, TOPIC, "groups-done-b"), 10);
    let (_dir, live) = start_live_member(
        broker,
        TOPIC,
        "groups-live",
        "session_timeout_ms = 10000",
        10,
    );

    // The same groups and states as Kafka's tool; our type column says classic.
    let ours = our_list(broker);
    let kafkas = kafkas_list(broker);
    assert_eq!(
        ours.iter()
            .map(|(g, (_, state))| (g.clone(), state.clone()))
            .collect::<BTreeMap<_, _>>(),
        kafkas
    );
    assert_eq!(ours["groups-done-a"], ("classic".into(), "Empty".into()));
    assert_eq!(ours["groups-live"].1, "Stable");

    // A group with a member is not deleted, and says why; an empty one is.
    let refused = wasmkafka(&[
        "groups",
        "delete",
        "--brokers",
        &broker.addr(),
        "--group",
        "groups-live",
    ]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stdout)
            .contains("NonEmptyGroup: the group still has members"),
        "{}",
        String::from_utf8_lossy(&refused.stdout)
    );
    let deleted = wasmkafka(&[
        "groups",
        "delete",
        "--brokers",
        &broker.addr(),
        "--group",
        "groups-done-a",
    ]);
    assert!(
        deleted.status.success(),
        "{}{}",
        String::from_utf8_lossy(&deleted.stdout),
        String::from_utf8_lossy(&deleted.stderr)
    );
    assert!(!kafkas_list(broker).contains_key("groups-done-a"));
    assert!(!our_list(broker).contains_key("groups-done-a"));

    // Offsets of a topic the live group reads are not deleted; those of a finished group are,
    // and its next member starts partition 0 over from the reset policy.
    let refused = wasmkafka(&[
        "groups",
        "delete-offsets",
        "--brokers",
        &broker.addr(),
        "--group",
        "groups-live",
        "--topic",
        TOPIC,
    ]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stdout);
    assert_eq!(
        said.matches("GroupSubscribedToTopic: members of the group still read this topic")
            .count(),
        2,
        "{said}"
    );
    let deleted = wasmkafka(&[
        "groups",
        "delete-offsets",
        "--brokers",
        &broker.addr(),
        "--group",
        "groups-done-b",
        "--topic",
        &format!("{TOPIC}:0"),
    ]);
    assert!(
        deleted.status.success(),
        "{}{}",
        String::from_utf8_lossy(&deleted.stdout),
        String::from_utf8_lossy(&deleted.stderr)
    );
    assert_eq!(
        read_all_as(broker, TOPIC, "groups-done-b"),
        5,
        "partition 0 again, only"
    );
    live.stop_cleanly(Duration::from_secs(20));
}

/// `groups describe --all` describes both kinds of group, a classic one whose members left
/// (its committed offsets and lag) and a consumer-protocol one with a live member (its
/// member, the partitions it holds), with the same committed offsets and log ends as Kafka's
/// `kafka-consumer-groups --describe --all-groups`.
#[tokio::test(flavor = "multi_thread")]
async fn groups_describe_all_shows_both_kinds_as_kafkas_own_tool_does() {
    const DESCRIBED: &str = "groups-describe";
    let broker = Kafka::shared();
    broker.create_topic(DESCRIBED, 3, &[]).await.unwrap();
    let produce = |count: &str| {
        produce_with_cli(
            Path::new(env!("CARGO_BIN_EXE_wasmkafka")),
            &broker.addr(),
            DESCRIBED,
            &["--count", count],
        );
    };
    produce("30");
    // A classic group reads everything, commits and leaves; then 9 more records: lag 9.
    read_all_as(broker, DESCRIBED, "describe-classic");
    produce("9");
    // A consumer-protocol member stays.
    let (_dir, live) = start_live_member(
        broker,
        DESCRIBED,
        "describe-kip848",
        "group_protocol = \"consumer\"",
        39,
    );

    // Ours, until the live member's commits reach the end.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let (classic, kip848) = loop {
        let output = wasmkafka(&[
            "groups",
            "describe",
            "--all",
            "--brokers",
            &broker.addr(),
            "--format",
            "json",
        ]);
        assert!(output.status.success(), "{output:?}");
        let described: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
        let find = |name: &str| {
            described
                .iter()
                .find(|g| g["group"] == name)
                .cloned()
                .unwrap_or_else(|| panic!("{name} not described: {described:?}"))
        };
        let (classic, kip848) = (find("describe-classic"), find("describe-kip848"));
        let caught_up = kip848["partitions"]
            .as_array()
            .is_some_and(|rows| rows.len() == 3 && rows.iter().all(|r| r["lag"] == 0));
        if caught_up {
            break (classic, kip848);
        }
        assert!(std::time::Instant::now() < deadline, "{kip848}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(classic["group_protocol"], "classic", "{classic}");
    assert_eq!(classic["members"].as_array().unwrap().len(), 0, "{classic}");
    assert_eq!(kip848["group_protocol"], "consumer", "{kip848}");
    assert_eq!(kip848["members"].as_array().unwrap().len(), 1, "{kip848}");
    let member_id = kip848["members"][0]["member_id"]
        .as_str()
        .unwrap()
        .to_string();
    let rows = |group: &serde_json::Value| -> BTreeMap<i64, (i64, i64, Option<String>)> {
        group["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["topic"] == DESCRIBED)
            .map(|r| {
                (
                    r["partition"].as_i64().unwrap(),
                    (
                        r["committed"].as_i64().unwrap(),
                        r["end"].as_i64().unwrap(),
                        r["member"].as_str().map(str::to_string),
                    ),
                )
            })
            .collect()
    };
    let (classic_rows, kip848_rows) = (rows(&classic), rows(&kip848));
    assert_eq!(classic_rows.len(), 3, "{classic}");
    let lag: i64 = classic_rows.values().map(|(c, e, _)| e - c).sum();
    assert_eq!(lag, 9, "the 9 records after its commit: {classic}");
    assert!(classic_rows.values().all(|(_, _, member)| member.is_none()));
    for (committed, end, member) in kip848_rows.values() {
        assert_eq!(committed, end, "{kip848}");
        assert_eq!(member.as_deref(), Some(member_id.as_str()), "{kip848}");
    }

    // Kafka's tool: GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG ... It lists the
    // groups, then describes each: a group the other test in this file deletes in between
    // ends the whole run with GroupIdNotFoundException (printed on stdout, or as a failure),
    // so that one case is asked again.
    let vanished =
        |text: &str| text.contains("GroupIdNotFoundException") && !text.contains("Group describe-");
    let mut attempts = 0;
    let stdout = loop {
        attempts += 1;
        let described = kafka_tool(
            GROUP_TOOL,
            &[
                "--bootstrap-server",
                &broker.addr(),
                "--describe",
                "--all-groups",
            ],
            Duration::from_secs(60),
        )
        .map_err(|error| format!("{error:#}"));
        match described {
            Ok(stdout) | Err(stdout) if attempts < 5 && vanished(&stdout) => {
                std::thread::sleep(Duration::from_millis(500));
            }
            Ok(stdout) => break stdout,
            Err(error) => panic!("{error}"),
        }
    };
    for (group, ours) in [
        ("describe-classic", &classic_rows),
        ("describe-kip848", &kip848_rows),
    ] {
        let theirs: BTreeMap<i64, (i64, i64)> = stdout
            .lines()
            .filter_map(|line| {
                let columns: Vec<&str> = line.split_whitespace().collect();
                (columns.len() >= 5 && columns[0] == group && columns[1] == DESCRIBED).then(|| {
                    (
                        columns[2].parse().unwrap(),
                        (columns[3].parse().unwrap(), columns[4].parse().unwrap()),
                    )
                })
            })
            .collect();
        let ours: BTreeMap<i64, (i64, i64)> = ours
            .iter()
            .map(|(p, (committed, end, _))| (*p, (*committed, *end)))
            .collect();
        assert_eq!(ours, theirs, "{group}:\n{stdout}");
    }
    live.stop_cleanly(Duration::from_secs(20));
}
