//! Authorization on Apache Kafka: a node with KRaft's `StandardAuthorizer` where the SASL
//! user `alice` may do only what ACLs allow (see `secure::AUTHORIZATION`). A refused topic
//! stays a topic-level outcome: `run` names it and the fix, reads the topics it may read, and
//! exits non-zero only when nothing it subscribes to can be read.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::OnceCell;
use wasmkafka::produce::OutgoingRecord;
use wasmkafka_tests::cli_member::CliMember;
use wasmkafka_tests::kafka::admin::{AclOperation, AclResource};
use wasmkafka_tests::kafka::secure::{SecureKafka, PASSWORD, USER};

const ALICE: &str = "User:alice";
const OPEN: &str = "acl-open";
const CLOSED: &str = "acl-closed";
/// Records produced to each partition of [`OPEN`] and [`CLOSED`].
const PER_PARTITION: i64 = 10;

fn wasmkafka() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_wasmkafka"))
}

/// The authorizing node, with [`OPEN`] (2 partitions, readable by alice) and [`CLOSED`]
/// (1 partition, no ACL for alice), each holding records; started once for this binary.
async fn broker() -> &'static SecureKafka {
    static BROKER: OnceCell<&SecureKafka> = OnceCell::const_new();
    *BROKER
        .get_or_init(|| async {
            let broker = SecureKafka::shared_with_authorization();
            let kafka = &broker.kafka;
            kafka.create_topic(OPEN, 2, &[]).await.unwrap();
            kafka.create_topic(CLOSED, 1, &[]).await.unwrap();
            let client = kafka.client();
            for (topic, partitions) in [(OPEN, 2), (CLOSED, 1)] {
                for partition in 0..partitions {
                    kafka
                        .produce(&client, topic, partition, &records(topic), 50)
                        .await
                        .unwrap();
                }
            }
            client.close();
            kafka
                .allow(
                    ALICE,
                    AclResource::Topic(OPEN),
                    &[AclOperation::Describe, AclOperation::Read],
                )
                .await
                .unwrap();
            broker
        })
        .await
}

fn records(topic: &str) -> Vec<OutgoingRecord> {
    (0..PER_PARTITION)
        .map(|n| OutgoingRecord {
            key: None,
            value: Some(Bytes::from(format!("{topic}-{n}"))),
            headers: Vec::new(),
            timestamp: None,
        })
        .collect()
}

/// `run` arguments for alice over SASL_PLAINTEXT (SCRAM-SHA-256), reading `topics`, then
/// `extra`.
fn alice_args(broker: &SecureKafka, topics: &[&str], extra: &[&str]) -> Vec<String> {
    let mut args = vec!["--brokers".to_string(), broker.sasl_plaintext.clone()];
    for topic in topics {
        args.extend(["--topic".to_string(), topic.to_string()]);
    }
    for setting in [
        "security.protocol=SASL_PLAINTEXT".to_string(),
        "sasl.mechanism=SCRAM-SHA-256".to_string(),
        format!("sasl.username={USER}"),
        format!("sasl.password={PASSWORD}"),
    ] {
        args.extend(["-X".to_string(), setting]);
    }
    args.extend(["--from", "earliest"].map(String::from));
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

/// Runs `run ARGS` to its end within a minute: it must fail, print no record, and its log
/// must say each of `expected`. Returns the log.
fn fails_saying(args: &[String], expected: &[&str]) -> String {
    let member = CliMember::start("alice", wasmkafka(), args, (0, Duration::ZERO));
    let finished = member.finish(Duration::from_secs(60));
    assert!(!finished.status.success(), "{}", finished.log);
    for text in expected {
        assert!(
            finished.log.contains(text),
            "no `{text}` in:\n{}",
            finished.log
        );
    }
    assert!(finished.printed.is_empty());
    finished.log
}

async fn allow_group(broker: &SecureKafka, group: &str) {
    broker
        .kafka
        .allow(ALICE, AclResource::Group(group), &[AclOperation::Read])
        .await
        .unwrap();
}

/// A member of a group that subscribes to a topic it may read and to one it may not: it
/// reads every record of the first, says once which topic is refused and what grants it,
/// keeps running, and stops cleanly.
#[tokio::test]
async fn a_member_reads_its_allowed_topic_and_names_the_refused_one() {
    let broker = broker().await;
    allow_group(broker, "acl-partial").await;
    let args = alice_args(broker, &[OPEN, CLOSED], &["--group", "acl-partial"]);
    let mut member = CliMember::start("alice", wasmkafka(), &args, (0, Duration::ZERO));
    member.wait_for_printed(2 * PER_PARTITION as usize, Duration::from_secs(60));
    member.wait_for_log(
        &format!("error: topic `{CLOSED}`: the cluster refuses it"),
        Duration::from_secs(30),
    );
    // Nothing more arrives, and the member stays: the readable topic can still progress.
    std::thread::sleep(Duration::from_secs(2));
    assert!(member.running(), "{}", member.log());
    let finished = member.stop_cleanly(Duration::from_secs(20));
    let partitions: Vec<i64> = finished.printed.iter().map(|(p, _)| *p).collect();
    assert_eq!(
        finished.printed.len(),
        2 * PER_PARTITION as usize,
        "{partitions:?}"
    );
    assert_eq!(
        finished
            .log
            .matches(&format!("error: topic `{CLOSED}`"))
            .count(),
        1,
        "the refusal is said once:\n{}",
        finished.log
    );
    assert!(
        finished
            .log
            .contains("--operation Describe --operation Read --topic TOPIC"),
        "the fix is named:\n{}",
        finished.log
    );
}

/// A member whose every topic is refused can never read anything: it exits non-zero with
/// each topic's reason instead of waiting for ever.
#[tokio::test]
async fn a_member_whose_every_topic_is_refused_exits_with_the_reasons() {
    let broker = broker().await;
    allow_group(broker, "acl-none").await;
    let args = alice_args(broker, &[CLOSED], &["--group", "acl-none"]);
    fails_saying(
        &args,
        &[
            "the cluster refuses every topic this consumer subscribes to",
            "TopicAuthorizationFailed",
        ],
    );
}

/// Without a group, a refused topic is named as refused (not as missing) before anything is
/// read.
#[tokio::test]
async fn a_run_without_a_group_says_the_topic_is_refused_not_missing() {
    let broker = broker().await;
    let args = alice_args(broker, &[CLOSED], &[]);
    let log = fails_saying(
        &args,
        &[&format!("topic `{CLOSED}`: the cluster refuses it")],
    );
    assert!(!log.contains("does not exist"), "{log}");
}

/// A group the user may not join ends the run with the group's name and the ACL to add.
#[tokio::test]
async fn a_group_the_user_may_not_join_ends_the_run_with_the_fix() {
    let broker = broker().await;
    let args = alice_args(broker, &[OPEN], &["--group", "acl-forbidden"]);
    fails_saying(&args, &["acl-forbidden", "--operation Read --group"]);
}

/// A refused topic granted while the member runs is read without a restart: the next metadata
/// refresh shows it, the group rebalances, and its records arrive.
#[tokio::test]
async fn a_topic_granted_while_the_member_runs_is_read_without_a_restart() {
    let broker = broker().await;
    let topic = "acl-granted-later";
    broker.kafka.create_topic(topic, 1, &[]).await.unwrap();
    let client = broker.kafka.client();
    broker
        .kafka
        .produce(&client, topic, 0, &records(topic), 50)
        .await
        .unwrap();
    client.close();
    allow_group(broker, "acl-later").await;
    let args = alice_args(
        broker,
        &[OPEN, topic],
        &["--group", "acl-later", "-X", "metadata.max.age.ms=1000"],
    );
    let mut member = CliMember::start("alice", wasmkafka(), &args, (0, Duration::ZERO));
    member.wait_for_log(
        &format!("error: topic `{topic}`: the cluster refuses it"),
        Duration::from_secs(60),
    );
    member.wait_for_printed(2 * PER_PARTITION as usize, Duration::from_secs(60));
    broker
        .kafka
        .allow(
            ALICE,
            AclResource::Topic(topic),
            &[AclOperation::Describe, AclOperation::Read],
        )
        .await
        .unwrap();
    member.wait_for_printed(3 * PER_PARTITION as usize, Duration::from_secs(60));
    let finished = member.stop_cleanly(Duration::from_secs(20));
    assert_eq!(finished.printed.len(), 3 * PER_PARTITION as usize);
}
