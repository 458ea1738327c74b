//! Compatibility with Tansu (a secondary target; Apache Kafka is the broker of record): a
//! smoke set of consume, group and restart. Runs only where a `tansu` binary is installed
//! ($TANSU_BIN, PATH or ~/.cargo/bin); elsewhere each test says so on stderr and returns.
//! Tansu 0.6 answers JoinGroup without a join barrier, never sends OFFSET_OUT_OF_RANGE and
//! answers fetch session id 0; these tests assert only what holds on both brokers, with the
//! `tansu-0.6` compatibility switch (`BrokerCompat::Tansu06`: Fetch v11, subscriptions
//! without the generation).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use wasmkafka::fetch::{Consumer, FetchOptions};
use wasmkafka::group::{Builtin, GroupOptions, LoggingListener};
use wasmkafka::net::BrokerCompat;
use wasmkafka::policy::ResetPolicySpec;
use wasmkafka::produce::OutgoingRecord;
use wasmkafka_tests::group::{short_wait_fetch, start_earliest_member};
use wasmkafka_tests::tansu::Tansu;

const WAIT: Duration = Duration::from_secs(60);

async fn tansu() -> Option<Tansu> {
    let broker = Tansu::start_if_installed().await.unwrap();
    if broker.is_none() {
        eprintln!("skipped: no tansu binary (set TANSU_BIN or install tansu 0.6.0)");
    }
    broker
}

async fn produce(broker: &Tansu, topic: &str, partitions: i32, per_partition: usize) {
    let client = broker.client();
    for partition in 0..partitions {
        let records: Vec<OutgoingRecord> = (0..per_partition)
            .map(|i| OutgoingRecord {
                value: Some(Bytes::from(format!("{partition}-{i}"))),
                ..OutgoingRecord::default()
            })
            .collect();
        wasmkafka_tests::kafka::admin::produce(&client, topic, partition, &records, 100)
            .await
            .unwrap();
    }
}

/// Reads from every partition until `expected` (partition, offset) pairs came.
async fn read_all(consumer: &Consumer, expected: usize) -> BTreeSet<(i32, i64)> {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while seen.len() < expected {
        assert!(Instant::now() < deadline, "{} of {expected}", seen.len());
        let records = consumer
            .poll(1000, Duration::from_millis(200))
            .await
            .unwrap();
        seen.extend(records.iter().map(|r| (r.partition, r.offset)));
    }
    let unique: BTreeSet<(i32, i64)> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "a record came twice");
    unique
}

#[tokio::test]
async fn consume_every_record_once() {
    let Some(broker) = tansu().await else { return };
    broker.create_topic("compat-consume", 2, &[]).unwrap();
    produce(&broker, "compat-consume", 2, 500).await;
    let consumer = Consumer::new(
        broker.client(),
        FetchOptions::default(),
        ResetPolicySpec::Earliest.into_policy(),
    );
    consumer
        .assign_topics(&["compat-consume".to_string()])
        .await
        .unwrap();
    let seen = read_all(&consumer, 1000).await;
    let expected: BTreeSet<(i32, i64)> =
        (0..2).flat_map(|p| (0..500).map(move |o| (p, o))).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn two_group_members_split_a_topic() {
    let Some(broker) = tansu().await else { return };
    broker.create_topic("compat-group", 4, &[]).unwrap();
    produce(&broker, "compat-group", 4, 25).await;
    let start = || {
        Arc::new(start_earliest_member(
            broker.client(),
            GroupOptions {
                heartbeat_interval: Duration::from_millis(300),
                // Tansu 0.6 rebalances whenever a member's metadata changes: with the
                // generation inside the subscription (KIP-792) its groups never settle.
                subscription_generation: BrokerCompat::Tansu06.subscription_generation(),
                ..GroupOptions::new("compat-g", vec!["compat-group".to_string()])
            },
            vec![Builtin::Range.into_assignor()],
            Arc::new(LoggingListener),
        ))
    };
    let (a, b) = (start(), start());
    let deadline = Instant::now() + WAIT;
    let mut seen = BTreeSet::new();
    while seen.len() < 100 || a.assignment().len() + b.assignment().len() != 4 {
        assert!(
            Instant::now() < deadline,
            "{} records; a {:?} b {:?}",
            seen.len(),
            a.assignment(),
            b.assignment()
        );
        for member in [&a, &b] {
            let records = member.poll(100, Duration::from_millis(50)).await.unwrap();
            seen.extend(records.iter().map(|r| (r.partition, r.offset)));
        }
    }
    assert!(a.assignment().is_disjoint(&b.assignment()));
    assert!(!a.assignment().is_empty() && !b.assignment().is_empty());
}

#[tokio::test]
async fn reading_goes_on_after_a_broker_restart() {
    let Some(mut broker) = tansu().await else {
        return;
    };
    broker.create_topic("compat-restart", 1, &[]).unwrap();
    produce(&broker, "compat-restart", 1, 10).await;
    let consumer = Consumer::new(
        broker.client(),
        short_wait_fetch(),
        ResetPolicySpec::Earliest.into_policy(),
    );
    consumer
        .assign_topics(&["compat-restart".to_string()])
        .await
        .unwrap();
    read_all(&consumer, 10).await;
    broker.restart().await.unwrap();
    produce(&broker, "compat-restart", 1, 10).await;
    let seen = read_all(&consumer, 10).await;
    assert_eq!(seen, (10..20).map(|o| (0, o)).collect());
}
