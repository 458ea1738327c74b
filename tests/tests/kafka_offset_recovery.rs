//! Offset recovery against Apache Kafka, with nothing scripted: the broker itself moves the log
//! start (DeleteRecords, time-based retention) or removes records (the log cleaner), and the
//! consumer must land exactly where its reset policy says.
//!
//! - A group's committed offset falls below the log start: each policy (earliest, latest,
//!   by_duration, none, the rewind Wasm plugin) decides where the restarted member resumes.
//! - Records deleted ahead of a slow reader while it runs: it resets and goes on.
//! - Time-based retention removes the segments a slow reader has not reached.
//! - Compaction: exactly the surviving records, tombstones with a null value, then gone.
//!
//! Every test uses the shared broker with topics and groups of its own.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use wasmkafka::fetch::{
    list_offsets, Consumer, ConsumerError, ConsumerRecord, FetchOptions, IsolationLevel,
    OffsetSpec, PartitionError, PartitionState, StartAt, TopicPartition,
};
use wasmkafka::group::{Builtin, GroupConsumer, GroupError, GroupOptions, LoggingListener};
use wasmkafka::plugin::{PluginLimits, PluginRuntime, WasmResetPolicy};
use wasmkafka::policy::{ResetPolicy, ResetPolicySpec, ResetReason};
use wasmkafka::produce::OutgoingRecord;
use wasmkafka_tests::kafka::Kafka;

/// The bound on every wait.
const WAIT: Duration = Duration::from_secs(90);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

/// Produces the records that will get `offsets` on `topic`/`partition` (value `p:offset`),
/// `batch` per request, each stamped by `stamp(offset)` (`None`: now). Checks the offsets.
async fn produce(
    topic: &str,
    partition: i32,
    offsets: Range<i64>,
    batch: usize,
    stamp: impl Fn(i64) -> Option<i64>,
) {
    let records: Vec<OutgoingRecord> = offsets
        .clone()
        .map(|offset| OutgoingRecord {
            key: Some(Bytes::from(format!("key-{offset}"))),
            value: Some(Bytes::from(format!("{partition}:{offset}"))),
            timestamp: stamp(offset),
            ..OutgoingRecord::default()
        })
        .collect();
    let kafka = Kafka::shared();
    let client = kafka.client();
    let first = kafka
        .produce(&client, topic, partition, &records, batch)
        .await
        .unwrap_or_else(|error| panic!("producing to {topic}/{partition}: {error:#}"));
    client.close();
    assert_eq!(first, offsets.start, "{topic}/{partition}");
}

/// The offsets of `partition`'s records, in the order they came.
fn offsets_of(records: &[ConsumerRecord], partition: i32) -> Vec<i64> {
    records
        .iter()
        .filter(|r| r.partition == partition)
        .map(|r| r.offset)
        .collect()
}

/// Every value is `p:offset`: the record is the one produced at that offset.
fn assert_values(records: &[ConsumerRecord]) {
    for r in records {
        assert_eq!(
            r.value.as_deref(),
            Some(format!("{}:{}", r.partition, r.offset).as_bytes()),
            "{}/{} at {}",
            r.topic,
            r.partition,
            r.offset
        );
    }
}

/// The log start offset of `topic`/`partition`, from its leader (ListOffsets earliest).
async fn log_start(topic: &str, partition: i32) -> i64 {
    let client = Kafka::shared().client();
    let metadata = client.refresh_metadata().await.unwrap();
    let leader = metadata.leader(topic, partition).expect("a leader");
    let tp = tp(topic, partition);
    let answers = list_offsets(
        &client,
        leader,
        IsolationLevel::ReadUncommitted,
        &[(tp.clone(), OffsetSpec::Earliest)],
    )
    .await
    .unwrap();
    client.close();
    answers[&tp].unwrap()
}

// ---------------------------------------------------------------------------------------------
// A group's committed offset below the log start.

const PARTITIONS: i32 = 2;

fn group_options(group: &str, topic: &str) -> GroupOptions {
    GroupOptions {
        session_timeout: Duration::from_secs(10),
        rebalance_timeout: Duration::from_secs(10),
        heartbeat_interval: Duration::from_millis(300),
        auto_commit_interval: None,
        ..GroupOptions::new(group, vec![topic.to_string()])
    }
}

fn group_member(group: &str, topic: &str, policy: Arc<dyn ResetPolicy>) -> GroupConsumer {
    GroupConsumer::start(
        Kafka::shared().client(),
        group_options(group, topic),
        FetchOptions {
            max_wait: Duration::from_millis(200),
            ..FetchOptions::default()
        },
        policy,
        vec![Builtin::Range.into_assignor()],
        Arc::new(LoggingListener),
    )
}

/// What a member polled: records, and the partition errors `poll` returned.
#[derive(Debug, Default)]
struct Polled {
    records: Vec<ConsumerRecord>,
    errors: Vec<PartitionError>,
}

/// Polls `member` until `done` (or fails after [`WAIT`]).
async fn poll_member(member: &GroupConsumer, polled: &mut Polled, done: impl Fn(&Polled) -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done(polled) {
        assert!(
            Instant::now() < deadline,
            "timed out: {} records, errors {:?}; partitions {:?}; {:?}",
            polled.records.len(),
            polled.errors,
            member.consumer().assignment(),
            member.consumer().stats()
        );
        match member.poll(500, Duration::from_millis(200)).await {
            Ok(records) => polled.records.extend(records),
            Err(GroupError::Consumer(ConsumerError::Partition(error))) => polled.errors.push(error),
            Err(error) => panic!("poll failed: {error}"),
        }
    }
}

/// `topic` (two partitions, 100 records each, stamped by `stamp`) whose group `group`
/// committed offset 30 on both partitions: a member read offsets 0..30 of each, committed and
/// left. Then DeleteRecords moved the log start of the `deleted` partitions to 60, past the
/// committed offset.
async fn committed_then_deleted(
    topic: &str,
    group: &str,
    deleted: &[i32],
    stamp: impl Fn(i64) -> Option<i64> + Copy,
) {
    wasmkafka_tests::init_tracing();
    let kafka = Kafka::shared();
    kafka.create_topic(topic, PARTITIONS, &[]).await.unwrap();
    for partition in 0..PARTITIONS {
        produce(topic, partition, 0..30, 10, stamp).await;
    }

    let first = group_member(group, topic, ResetPolicySpec::Earliest.into_policy());
    let mut polled = Polled::default();
    poll_member(&first, &mut polled, |p| p.records.len() >= 60).await;
    assert!(polled.errors.is_empty(), "{:?}", polled.errors);
    for partition in 0..PARTITIONS {
        assert_eq!(
            offsets_of(&polled.records, partition),
            (0..30).collect::<Vec<_>>()
        );
    }
    first.commit().await.unwrap();
    first.close().await;
    let client = kafka.client();
    let coordinator = wasmkafka::group::coordinator::find_coordinator(&client, group)
        .await
        .unwrap();
    let partitions: Vec<TopicPartition> = (0..PARTITIONS).map(|p| tp(topic, p)).collect();
    let committed =
        wasmkafka::group::offsets::fetch_committed(&client, coordinator, group, &partitions)
            .await
            .unwrap();
    client.close();
    for tp in &partitions {
        assert_eq!(committed[tp], Some(30), "{tp} committed");
    }

    for partition in 0..PARTITIONS {
        produce(topic, partition, 30..100, 10, stamp).await;
    }
    for partition in deleted {
        let start = kafka.delete_records(topic, *partition, 60).await.unwrap();
        assert_eq!(start, 60, "{topic}/{partition} log start");
    }
}

/// The member restarted with `policy`, polled until `done`: its records and errors.
async fn restart_member(
    topic: &str,
    group: &str,
    policy: Arc<dyn ResetPolicy>,
    done: impl Fn(&Polled) -> bool,
) -> (GroupConsumer, Polled) {
    let member = group_member(group, topic, policy);
    let mut polled = Polled::default();
    poll_member(&member, &mut polled, done).await;
    (member, polled)
}

/// Nothing more arrives for a while, and every partition sits at `position`.
async fn assert_quiet_at(member: &GroupConsumer, topic: &str, position: i64) {
    let more = member.poll(100, Duration::from_millis(700)).await.unwrap();
    assert!(more.is_empty(), "more records: {more:?}");
    for partition in 0..PARTITIONS {
        assert_eq!(
            member.consumer().position(&tp(topic, partition)),
            Some(position),
            "{topic}/{partition}"
        );
    }
}

#[tokio::test]
async fn committed_offset_deleted_earliest_resumes_at_the_new_log_start() {
    let (topic, group) = ("recover-earliest", "g-recover-earliest");
    committed_then_deleted(topic, group, &[0, 1], |_| None).await;
    let (member, polled) =
        restart_member(topic, group, ResetPolicySpec::Earliest.into_policy(), |p| {
            p.records.len() >= 80 || !p.errors.is_empty()
        })
        .await;
    assert!(polled.errors.is_empty(), "{:?}", polled.errors);
    for partition in 0..PARTITIONS {
        assert_eq!(
            offsets_of(&polled.records, partition),
            (60..100).collect::<Vec<_>>(),
            "partition {partition}: the first record is the new log start"
        );
    }
    assert_values(&polled.records);
    assert_quiet_at(&member, topic, 100).await;
    // The committed offset 30 was fetched once per partition and refused as out of range.
    assert_eq!(member.consumer().stats().out_of_range, 2);
    member.close().await;
}

#[tokio::test]
async fn committed_offset_deleted_latest_waits_for_new_records() {
    let (topic, group) = ("recover-latest", "g-recover-latest");
    committed_then_deleted(topic, group, &[0, 1], |_| None).await;
    // Until both partitions sit at the end (100), no record may arrive.
    let positions_at_end = |member: &GroupConsumer| {
        (0..PARTITIONS).all(|p| member.consumer().position(&tp(topic, p)) == Some(100))
    };
    let member = group_member(group, topic, ResetPolicySpec::Latest.into_policy());
    let mut polled = Polled::default();
    poll_member(&member, &mut polled, |_| positions_at_end(&member)).await;
    assert!(
        polled.records.is_empty() && polled.errors.is_empty(),
        "nothing old: {polled:?}"
    );
    for partition in 0..PARTITIONS {
        produce(topic, partition, 100..105, 5, |_| None).await;
    }
    poll_member(&member, &mut polled, |p| p.records.len() >= 10).await;
    for partition in 0..PARTITIONS {
        assert_eq!(
            offsets_of(&polled.records, partition),
            (100..105).collect::<Vec<_>>(),
            "partition {partition}: only the records produced after the reset"
        );
    }
    assert_values(&polled.records);
    assert_quiet_at(&member, topic, 105).await;
    member.close().await;
}

#[tokio::test]
async fn committed_offset_deleted_by_duration_resumes_at_the_first_recent_record() {
    let (topic, group) = ("recover-by-duration", "g-recover-by-duration");
    // Offsets below 80 are three hours old, the rest ten minutes: by_duration:PT1H resolves
    // (ListOffsets by timestamp) to offset 80 exactly.
    let now = now_ms();
    let stamp = move |offset: i64| {
        Some(if offset < 80 {
            now - 3 * 3_600_000
        } else {
            now - 600_000
        })
    };
    committed_then_deleted(topic, group, &[0, 1], stamp).await;
    let policy: ResetPolicySpec = "by_duration:PT1H".parse().unwrap();
    let (member, polled) = restart_member(topic, group, policy.into_policy(), |p| {
        p.records.len() >= 40 || !p.errors.is_empty()
    })
    .await;
    assert!(polled.errors.is_empty(), "{:?}", polled.errors);
    for partition in 0..PARTITIONS {
        assert_eq!(
            offsets_of(&polled.records, partition),
            (80..100).collect::<Vec<_>>(),
            "partition {partition}: the first record of the last hour"
        );
    }
    for record in &polled.records {
        assert_eq!(record.timestamp, now - 600_000);
    }
    assert_values(&polled.records);
    assert_quiet_at(&member, topic, 100).await;
    member.close().await;
}

#[tokio::test]
async fn committed_offset_deleted_none_stops_that_partition_and_the_other_goes_on() {
    let (topic, group) = ("recover-none", "g-recover-none");
    // Only partition 0 loses its committed offset; partition 1 still has offset 30.
    committed_then_deleted(topic, group, &[0], |_| None).await;
    let (member, polled) = restart_member(topic, group, ResetPolicySpec::None.into_policy(), |p| {
        p.records.len() >= 70 && !p.errors.is_empty()
    })
    .await;
    assert_eq!(polled.errors.len(), 1, "{:?}", polled.errors);
    let error = polled.errors[0].clone();
    match &error {
        PartitionError::ResetRefused {
            partition,
            reason,
            log_start,
            high_watermark,
            policy,
            ..
        } => {
            assert_eq!(partition, &tp(topic, 0));
            assert_eq!(*reason, ResetReason::OutOfRange { offset: 30 });
            assert_eq!((*log_start, *high_watermark), (60, 100));
            assert_eq!(policy, "none");
        }
        other => panic!("expected ResetRefused, got {other:?}"),
    }
    let message = error.to_string();
    for expected in ["recover-none/0", "offset 30 is out of range", "60..100"] {
        assert!(message.contains(expected), "`{expected}` in: {message}");
    }
    assert!(offsets_of(&polled.records, 0).is_empty());
    assert_eq!(
        offsets_of(&polled.records, 1),
        (30..100).collect::<Vec<_>>(),
        "partition 1 goes on from its commit"
    );
    assert_values(&polled.records);
    // The error came once; partition 0 stays stopped, partition 1 at the end.
    let more = member.poll(100, Duration::from_millis(700)).await.unwrap();
    assert!(more.is_empty(), "{more:?}");
    assert_eq!(polled.errors.len(), 1);
    assert_eq!(
        member.consumer().assignment().get(&tp(topic, 0)),
        Some(&PartitionState::Failed)
    );
    assert_eq!(member.consumer().position(&tp(topic, 1)), Some(100));
    member.close().await;
}

#[tokio::test]
async fn committed_offset_deleted_the_rewind_plugin_starts_where_it_says() {
    let (topic, group) = ("recover-rewind", "g-recover-rewind");
    committed_then_deleted(topic, group, &[0, 1], |_| None).await;
    let runtime = PluginRuntime::new(PluginLimits::default(), None).unwrap();
    // Out of range: "5 records before the end of the log, never before its start".
    let rewind = WasmResetPolicy::load(&runtime, &wasmkafka_tests::plugins::plugin("reset-rewind"))
        .unwrap()
        .with_settings(vec![("records".into(), "5".into())]);
    let (member, polled) = restart_member(topic, group, Arc::new(rewind), |p| {
        p.records.len() >= 10 || !p.errors.is_empty()
    })
    .await;
    assert!(polled.errors.is_empty(), "{:?}", polled.errors);
    for partition in 0..PARTITIONS {
        assert_eq!(
            offsets_of(&polled.records, partition),
            (95..100).collect::<Vec<_>>(),
            "partition {partition}: 5 before the high watermark"
        );
    }
    assert_values(&polled.records);
    assert_quiet_at(&member, topic, 100).await;
    member.close().await;
}

// ---------------------------------------------------------------------------------------------
// Records deleted ahead of a running, slow reader.

/// A consumer that gets one batch (10 records) per fetch: Kafka returns the first batch even
/// when it is larger than the partition's max bytes, and nothing more.
fn batch_at_a_time(policy: Arc<dyn ResetPolicy>) -> Consumer {
    Consumer::new(
        Kafka::shared().client(),
        FetchOptions {
            max_wait: Duration::from_millis(100),
            partition_max_bytes: 1,
            ..FetchOptions::default()
        },
        policy,
    )
}

/// Polls until `done`, `max_records` at a time with `pause` between polls; partition errors
/// are collected.
async fn read(
    consumer: &Consumer,
    polled: &mut Polled,
    max_records: usize,
    pause: Duration,
    done: impl Fn(&Polled) -> bool,
) {
    let deadline = Instant::now() + WAIT;
    while !done(polled) {
        assert!(
            Instant::now() < deadline,
            "timed out: offsets {:?}, errors {:?}, {:?}, {:?}",
            polled.records.iter().map(|r| r.offset).collect::<Vec<_>>(),
            polled.errors,
            consumer.assignment(),
            consumer.stats()
        );
        match consumer.poll(max_records, Duration::from_millis(200)).await {
            Ok(records) => polled.records.extend(records),
            Err(ConsumerError::Partition(error)) => polled.errors.push(error),
            Err(error) => panic!("poll failed: {error}"),
        }
        tokio::time::sleep(pause).await;
    }
}

/// 1000 records (batches of 10) on a one-partition `topic`; a consumer with `policy` reads the
/// first 50 slowly from offset 0, then DeleteRecords moves the log start to 500, far ahead of
/// where it is. Returns the consumer and what it read.
async fn deleted_ahead_of_a_slow_reader(
    topic: &str,
    policy: Arc<dyn ResetPolicy>,
) -> (Consumer, Polled) {
    wasmkafka_tests::init_tracing();
    let kafka = Kafka::shared();
    kafka.create_topic(topic, 1, &[]).await.unwrap();
    produce(topic, 0, 0..1000, 10, |_| None).await;
    let consumer = batch_at_a_time(policy);
    consumer.assign([(tp(topic, 0), StartAt::Offset(0))]);
    let mut polled = Polled::default();
    read(&consumer, &mut polled, 5, Duration::from_millis(20), |p| {
        p.records.len() >= 50
    })
    .await;
    assert_eq!(kafka.delete_records(topic, 0, 500).await.unwrap(), 500);
    (consumer, polled)
}

/// The offsets read are `0..k` and then `rest`, where `k` (where the consumer was fetching
/// when the deletion hit it) is 50 or 60: it had read 50 and fetches one batch ahead.
fn assert_prefix_then(polled: &Polled, rest: Range<i64>) -> i64 {
    let offsets: Vec<i64> = polled.records.iter().map(|r| r.offset).collect();
    let k = offsets
        .iter()
        .position(|o| *o >= rest.start)
        .unwrap_or(offsets.len()) as i64;
    assert!(k == 50 || k == 60, "read {k} before the jump: {offsets:?}");
    println!("read {k} records before the jump to {}", rest.start);
    let expected: Vec<i64> = (0..k).chain(rest).collect();
    assert_eq!(offsets, expected);
    assert_values(&polled.records);
    k
}

#[tokio::test]
async fn records_deleted_under_a_slow_reader_earliest_jumps_to_the_new_start() {
    let topic = "midstream-earliest";
    let (consumer, mut polled) =
        deleted_ahead_of_a_slow_reader(topic, ResetPolicySpec::Earliest.into_policy()).await;
    read(&consumer, &mut polled, 50, Duration::ZERO, |p| {
        p.records.last().is_some_and(|r| r.offset == 999) || !p.errors.is_empty()
    })
    .await;
    assert!(polled.errors.is_empty(), "{:?}", polled.errors);
    assert_prefix_then(&polled, 500..1000);
    assert_eq!(consumer.stats().out_of_range, 1);
    assert_eq!(consumer.position(&tp(topic, 0)), Some(1000));
}

#[tokio::test]
async fn records_deleted_under_a_slow_reader_latest_goes_on_with_new_records() {
    let topic = "midstream-latest";
    let (consumer, mut polled) =
        deleted_ahead_of_a_slow_reader(topic, ResetPolicySpec::Latest.into_policy()).await;
    let partition = tp(topic, 0);
    read(&consumer, &mut polled, 50, Duration::ZERO, |p| {
        consumer.position(&partition) == Some(1000) || !p.errors.is_empty()
    })
    .await;
    produce(topic, 0, 1000..1010, 10, |_| None).await;
    read(&consumer, &mut polled, 50, Duration::ZERO, |p| {
        p.records.last().is_some_and(|r| r.offset == 1009) || !p.errors.is_empty()
    })
    .await;
    assert!(polled.errors.is_empty(), "{:?}", polled.errors);
    assert_prefix_then(&polled, 1000..1010);
    assert_eq!(consumer.stats().out_of_range, 1);
    assert_eq!(consumer.position(&partition), Some(1010));
}

#[tokio::test]
async fn records_deleted_under_a_slow_reader_none_stops_until_a_seek() {
    let topic = "midstream-none";
    let (consumer, mut polled) =
        deleted_ahead_of_a_slow_reader(topic, ResetPolicySpec::None.into_policy()).await;
    let partition = tp(topic, 0);
    read(&consumer, &mut polled, 50, Duration::ZERO, |p| {
        !p.errors.is_empty()
    })
    .await;
    let k = assert_prefix_then(&polled, 500..500);
    assert_eq!(polled.errors.len(), 1);
    match &polled.errors[0] {
        PartitionError::ResetRefused {
            partition: failed,
            reason,
            log_start,
            high_watermark,
            ..
        } => {
            assert_eq!(failed, &partition);
            assert_eq!(*reason, ResetReason::OutOfRange { offset: k });
            assert_eq!((*log_start, *high_watermark), (500, 1000));
        }
        other => panic!("expected ResetRefused, got {other:?}"),
    }
    // No hang and no repeat: polls come back empty, the partition stays stopped.
    let more = consumer
        .poll(100, Duration::from_millis(500))
        .await
        .unwrap();
    assert!(more.is_empty(), "{more:?}");
    assert_eq!(consumer.assignment()[&partition], PartitionState::Failed);
    // A seek into the log restarts it.
    assert!(consumer.seek(&partition, 500));
    read(&consumer, &mut polled, 100, Duration::ZERO, |p| {
        p.records.last().is_some_and(|r| r.offset == 999) || p.errors.len() > 1
    })
    .await;
    assert_eq!(polled.errors.len(), 1, "{:?}", polled.errors);
    assert_prefix_then(&polled, 500..1000);
    assert_eq!(consumer.position(&partition), Some(1000));
}

// ---------------------------------------------------------------------------------------------
// Time-based retention.

#[tokio::test]
async fn time_based_retention_under_a_slow_reader_earliest_goes_on_at_the_new_start() {
    wasmkafka_tests::init_tracing();
    let topic = "retention-slow";
    let kafka = Kafka::shared();
    // Records older than a second are deleted (the broker checks every 500 ms); a record
    // more than 100 ms newer than a segment's first one starts a new segment.
    kafka
        .create_topic(topic, 1, &[("retention.ms", "1000"), ("segment.ms", "100")])
        .await
        .unwrap();
    let partition = tp(topic, 0);
    let consumer = batch_at_a_time(ResetPolicySpec::Earliest.into_policy());
    consumer.assign([(partition.clone(), StartAt::Offset(0))]);
    // 100 records stamped now, all alike (so that no batch rolls the segment): they expire
    // a second from now.
    let now = now_ms();
    produce(topic, 0, 0..100, 10, |_| Some(now)).await;
    let mut polled = Polled::default();
    read(&consumer, &mut polled, 10, Duration::ZERO, |p| {
        !p.records.is_empty() || !p.errors.is_empty()
    })
    .await;
    // The reader stops here. 100 more records, stamped ten minutes ahead (Kafka accepts up to
    // an hour, log.message.timestamp.after.max.ms): they outlive the test, and they roll the
    // segment at offset 100 (if the deletion has not rolled it already).
    let later = now_ms() + 600_000;
    produce(topic, 0, 100..200, 10, |_| Some(later)).await;
    let deadline = Instant::now() + WAIT;
    let started = Instant::now();
    loop {
        let start = log_start(topic, 0).await;
        if start == 100 {
            break;
        }
        assert_eq!(start, 0, "one segment goes at once");
        assert!(
            Instant::now() < deadline,
            "retention did not delete the expired segment"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "the log start moved to 100 after {:?}; the reader had {} records, {:?}",
        started.elapsed(),
        polled.records.len(),
        consumer.stats()
    );
    // The reader goes on: what it had fetched, then out of range, then the new log start.
    read(&consumer, &mut polled, 50, Duration::ZERO, |p| {
        p.records.last().is_some_and(|r| r.offset == 199) || !p.errors.is_empty()
    })
    .await;
    assert!(polled.errors.is_empty(), "{:?}", polled.errors);
    let offsets: Vec<i64> = polled.records.iter().map(|r| r.offset).collect();
    let k = offsets.iter().position(|o| *o >= 100).unwrap() as i64;
    // It read one batch (0..10) and had at most one more fetched when retention struck.
    assert!(k == 10 || k == 20, "{offsets:?}");
    assert_eq!(offsets, (0..k).chain(100..200).collect::<Vec<_>>());
    assert_values(&polled.records);
    assert_eq!(consumer.stats().out_of_range, 1);
    assert_eq!(consumer.position(&partition), Some(200));
}

// ---------------------------------------------------------------------------------------------
// Compaction by the log cleaner.

/// Reads `topic`/0 from the start to `end` with a fresh consumer: the records and the final
/// position.
async fn read_whole_log(topic: &str, end: i64) -> (Vec<ConsumerRecord>, Option<i64>) {
    let consumer = Consumer::new(
        Kafka::shared().client(),
        FetchOptions {
            max_wait: Duration::from_millis(100),
            ..FetchOptions::default()
        },
        ResetPolicySpec::Earliest.into_policy(),
    );
    consumer.assign_topics(&[topic.to_string()]).await.unwrap();
    let partition = tp(topic, 0);
    let mut polled = Polled::default();
    read(&consumer, &mut polled, 1000, Duration::ZERO, |_| {
        consumer.position(&partition) == Some(end)
    })
    .await;
    assert!(polled.errors.is_empty(), "{:?}", polled.errors);
    // Nothing past the end.
    let more = consumer
        .poll(100, Duration::from_millis(300))
        .await
        .unwrap();
    assert!(more.is_empty(), "{more:?}");
    let position = consumer.position(&partition);
    consumer.close().await;
    (polled.records, position)
}

/// Re-reads the whole log until the cleaner has left exactly `expected` (offset -> key,
/// value); returns the records and the final position.
async fn read_until_compacted(
    topic: &str,
    end: i64,
    expected: &Survivors,
) -> (Vec<ConsumerRecord>, Option<i64>) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (records, position) = read_whole_log(topic, end).await;
        let got: Survivors = records
            .iter()
            .map(|r| (r.offset, (text(&r.key).unwrap(), text(&r.value))))
            .collect();
        if &got == expected {
            assert_eq!(records.len(), expected.len(), "each record once");
            return (records, position);
        }
        assert!(
            Instant::now() < deadline,
            "the log cleaner did not leave the expected records:\n got {got:?}\n want {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// What compaction leaves: offset -> (key, value; `None` for a tombstone).
type Survivors = BTreeMap<i64, (String, Option<String>)>;

fn text(bytes: &Option<Bytes>) -> Option<String> {
    bytes
        .as_ref()
        .map(|b| String::from_utf8(b.to_vec()).unwrap())
}

/// `records` will get offsets from `first`: each replaces the earlier records of its key in
/// `survivors`. Returns the records, to produce.
fn survive(
    survivors: &mut Survivors,
    records: Vec<OutgoingRecord>,
    first: i64,
) -> Vec<OutgoingRecord> {
    for (i, record) in records.iter().enumerate() {
        let key = text(&record.key).unwrap();
        survivors.retain(|_, (k, _)| *k != key);
        survivors.insert(first + i as i64, (key, text(&record.value)));
    }
    records
}

fn keyed(key: &str, value: Option<&str>) -> OutgoingRecord {
    OutgoingRecord {
        key: Some(Bytes::from(key.to_string())),
        value: value.map(|v| Bytes::from(v.to_string())),
        ..OutgoingRecord::default()
    }
}

#[tokio::test]
async fn compaction_leaves_the_latest_per_key_and_tombstones_until_delete_retention() {
    wasmkafka_tests::init_tracing();
    let topic = "compact-tombstones";
    let kafka = Kafka::shared();
    kafka
        .create_topic(
            topic,
            1,
            &[
                ("cleanup.policy", "compact"),
                ("segment.ms", "100"),
                ("min.cleanable.dirty.ratio", "0.01"),
                ("min.compaction.lag.ms", "0"),
                ("delete.retention.ms", "1000"),
            ],
        )
        .await
        .unwrap();
    let client = kafka.client();
    let mut expected = Survivors::new();

    // 0..50: ten keys, five values each; 50, 51: tombstones for k3 and k7.
    let mut phase_one: Vec<OutgoingRecord> = (0..50)
        .map(|i| keyed(&format!("k{}", i % 10), Some(&format!("a{i}"))))
        .collect();
    phase_one.push(keyed("k3", None));
    phase_one.push(keyed("k7", None));
    let phase_one = survive(&mut expected, phase_one, 0);
    assert_eq!(
        kafka
            .produce(&client, topic, 0, &phase_one, 100)
            .await
            .unwrap(),
        0
    );
    // The active segment is never cleaned: a record after segment.ms rolls it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let roll = survive(&mut expected, vec![keyed("roll1", Some("r1"))], 52);
    assert_eq!(
        kafka.produce(&client, topic, 0, &roll, 1).await.unwrap(),
        52
    );
    assert_eq!(
        expected.keys().copied().collect::<Vec<_>>(),
        [40, 41, 42, 44, 45, 46, 48, 49, 50, 51, 52]
    );

    let (records, position) = read_until_compacted(topic, 53, &expected).await;
    let cleaned_at = Instant::now();
    assert_eq!(position, Some(53), "ends at the high watermark");
    let tombstones: Vec<(i64, Option<&[u8]>)> = records
        .iter()
        .filter(|r| r.value.is_none())
        .map(|r| (r.offset, r.key.as_deref()))
        .collect();
    assert_eq!(
        tombstones,
        [(50, Some(&b"k3"[..])), (51, Some(&b"k7"[..]))],
        "tombstones come as records with a null value"
    );

    // Seeks into the gaps continue at the next survivor.
    let consumer = Consumer::new(
        kafka.client(),
        FetchOptions {
            max_wait: Duration::from_millis(100),
            ..FetchOptions::default()
        },
        ResetPolicySpec::Earliest.into_policy(),
    );
    let partition = tp(topic, 0);
    for (seek, next) in [(0, 40), (43, 44), (47, 48)] {
        consumer.assign([(partition.clone(), StartAt::Offset(seek))]);
        let mut polled = Polled::default();
        read(&consumer, &mut polled, 1, Duration::ZERO, |p| {
            !p.records.is_empty()
        })
        .await;
        assert_eq!(polled.records[0].offset, next, "after a seek to {seek}");
    }
    consumer.close().await;

    // Past delete.retention.ms, the next cleaning drops the tombstones. The cleaner runs
    // only on a dirty log: a new k0 and a record that rolls its segment.
    let waited = cleaned_at.elapsed();
    tokio::time::sleep(Duration::from_millis(1500).saturating_sub(waited)).await;
    let k0 = survive(&mut expected, vec![keyed("k0", Some("b53"))], 53);
    assert_eq!(kafka.produce(&client, topic, 0, &k0, 1).await.unwrap(), 53);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let roll = survive(&mut expected, vec![keyed("roll2", Some("r2"))], 54);
    assert_eq!(
        kafka.produce(&client, topic, 0, &roll, 1).await.unwrap(),
        54
    );
    expected.retain(|_, (_, value)| value.is_some());
    assert_eq!(
        expected.keys().copied().collect::<Vec<_>>(),
        [41, 42, 44, 45, 46, 48, 49, 52, 53, 54]
    );
    let (records, position) = read_until_compacted(topic, 55, &expected).await;
    assert!(records.iter().all(|r| r.value.is_some()));
    assert_eq!(position, Some(55), "ends at the high watermark");
    client.close();
}
