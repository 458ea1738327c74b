//! Groups that follow the cluster, against Apache Kafka (one shared broker per test binary):
//! partitions added to a topic reach the group within the metadata max age, every record once;
//! a member subscribed with a topic pattern picks up a topic created after it started.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use wasmkafka::client::Client;
use wasmkafka::cluster::MetadataOptions;
use wasmkafka::group::{Builtin, GroupConsumer, GroupOptions, LoggingListener, TopicPattern};
use wasmkafka::produce::OutgoingRecord;
use wasmkafka_tests::group::{close_all, start_earliest_member};
use wasmkafka_tests::kafka::Kafka;

/// The members' `net.metadata_max_age_ms`: how long the cluster may change unnoticed.
const MAX_AGE: Duration = Duration::from_secs(2);
/// A metadata change must reach the application within the max age plus a rebalance (the
/// other member hears of it at its next heartbeat, 300 ms), a reset of the new partitions and
/// a fetch; the rest is slack for a loaded machine.
const FOLLOW_WITHIN: Duration = Duration::from_secs(8);
const WAIT: Duration = Duration::from_secs(60);

fn client() -> Client {
    Kafka::shared().client_with(MetadataOptions {
        min_age: Duration::from_millis(200),
        max_age: MAX_AGE,
    })
}

fn options(group: &str, topics: Vec<String>) -> GroupOptions {
    GroupOptions {
        session_timeout: Duration::from_secs(10),
        rebalance_timeout: Duration::from_secs(10),
        heartbeat_interval: Duration::from_millis(300),
        auto_commit_interval: Some(Duration::from_millis(200)),
        ..GroupOptions::new(group, topics)
    }
}

fn member(options: GroupOptions) -> Arc<GroupConsumer> {
    Arc::new(start_earliest_member(
        client(),
        options,
        vec![Builtin::CooperativeSticky.into_assignor()],
        Arc::new(LoggingListener),
    ))
}

/// (topic, partition, offset) of every record any member polled, as often as it was polled.
type Seen = Arc<Mutex<Vec<(String, i32, i64)>>>;

fn keep_polling(member: Arc<GroupConsumer>, seen: Seen) -> tokio::task::JoinHandle<()> {
    wasmkafka_tests::group::keep_polling(member, "a member".into(), seen, |r| {
        (r.topic.to_string(), r.partition, r.offset)
    })
}

/// Produces `count` records to each of `partitions`; returns their (topic, partition, offset).
async fn produce(topic: &str, partitions: &[i32], count: usize) -> BTreeSet<(String, i32, i64)> {
    let client = Kafka::shared().client();
    let mut produced = BTreeSet::new();
    for partition in partitions {
        let records: Vec<OutgoingRecord> = (0..count)
            .map(|i| OutgoingRecord {
                value: Some(Bytes::from(format!("{topic}-{partition}-{i}"))),
                ..OutgoingRecord::default()
            })
            .collect();
        let first = Kafka::shared()
            .produce(&client, topic, *partition, &records, count)
            .await
            .unwrap_or_else(|error| panic!("producing to {topic}/{partition}: {error:#}"));
        produced.extend((0..count as i64).map(|i| (topic.to_string(), *partition, first + i)));
    }
    client.close();
    produced
}

/// Waits until every `expected` record was polled; returns how long that took.
async fn wait_for(
    seen: &Seen,
    expected: &BTreeSet<(String, i32, i64)>,
    members: &[Arc<GroupConsumer>],
) -> Duration {
    let started = Instant::now();
    loop {
        let got: BTreeSet<(String, i32, i64)> = seen.lock().unwrap().iter().cloned().collect();
        if expected.is_subset(&got) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < WAIT,
            "missing {} records; members: {:#?}",
            expected.difference(&got).count(),
            members
                .iter()
                .map(|m| (m.assignment(), m.consumer().assignment()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn assert_each_once(seen: &Seen, expected: &BTreeSet<(String, i32, i64)>) {
    let mut counts: BTreeMap<(String, i32, i64), usize> = BTreeMap::new();
    for record in seen.lock().unwrap().iter() {
        *counts.entry(record.clone()).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "records polled more than once: {twice:?}");
    let polled: BTreeSet<_> = counts.into_keys().collect();
    assert_eq!(&polled, expected, "records polled that were never produced");
}

#[tokio::test]
async fn a_group_follows_partitions_added_to_its_topic() {
    wasmkafka_tests::init_tracing();
    let topic = "follow-grow";
    Kafka::shared().create_topic(topic, 2, &[]).await.unwrap();
    let mut expected = produce(topic, &[0, 1], 20).await;

    let seen: Seen = Arc::default();
    let members: Vec<Arc<GroupConsumer>> = (0..2)
        .map(|_| member(options("g-follow-grow", vec![topic.to_string()])))
        .collect();
    let pollers: Vec<_> = members
        .iter()
        .map(|m| keep_polling(m.clone(), seen.clone()))
        .collect();
    wasmkafka_tests::group::settle(&members, 2, WAIT)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    wait_for(&seen, &expected, &members).await;

    // Two partitions more, with records in them, and more records in the old ones.
    Kafka::shared().create_partitions(topic, 4).await.unwrap();
    let grown_at = Instant::now();
    expected.extend(produce(topic, &[2, 3], 20).await);
    expected.extend(produce(topic, &[0, 1], 5).await);
    wait_for(&seen, &expected, &members).await;
    let followed_after = grown_at.elapsed();
    println!("records in the new partitions consumed {followed_after:?} after they were added");
    assert!(
        followed_after < FOLLOW_WITHIN,
        "the group took {followed_after:?} to consume the new partitions (max age {MAX_AGE:?})"
    );
    wasmkafka_tests::group::settle(&members, 4, WAIT)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    close_all(members, pollers).await;
    assert_each_once(&seen, &expected);
}

#[tokio::test]
async fn a_pattern_subscription_picks_up_a_topic_created_later() {
    wasmkafka_tests::init_tracing();
    Kafka::shared()
        .create_topic("follow-pat-early", 1, &[])
        .await
        .unwrap();
    Kafka::shared()
        .create_topic("follow-other", 1, &[])
        .await
        .unwrap();
    let mut expected = produce("follow-pat-early", &[0], 10).await;
    produce("follow-other", &[0], 10).await;

    let seen: Seen = Arc::default();
    let member = member(GroupOptions {
        topic_pattern: Some(TopicPattern::new("^follow-pat-.*").unwrap()),
        ..options("g-follow-pat", Vec::new())
    });
    let pollers = vec![keep_polling(member.clone(), seen.clone())];
    wait_for(&seen, &expected, std::slice::from_ref(&member)).await;

    Kafka::shared()
        .create_topic("follow-pat-late", 2, &[])
        .await
        .unwrap();
    let created_at = Instant::now();
    expected.extend(produce("follow-pat-late", &[0, 1], 10).await);
    wait_for(&seen, &expected, std::slice::from_ref(&member)).await;
    let followed_after = created_at.elapsed();
    println!("records of the new topic consumed {followed_after:?} after it was created");
    assert!(
        followed_after < FOLLOW_WITHIN,
        "the member took {followed_after:?} to consume the new topic (max age {MAX_AGE:?})"
    );
    let topics: BTreeSet<String> = member
        .assignment()
        .iter()
        .map(|tp| tp.topic.to_string())
        .collect();
    assert_eq!(
        topics,
        BTreeSet::from([
            "follow-pat-early".to_string(),
            "follow-pat-late".to_string()
        ])
    );
    close_all(vec![member], pollers).await;
    assert_each_once(&seen, &expected);
}
