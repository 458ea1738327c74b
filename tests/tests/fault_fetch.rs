//! The fetcher against the scripted fault broker: OFFSET_OUT_OF_RANGE mid-stream under each
//! reset policy, stale answers after a seek or a revoke, fetch sessions, one fetch loop per
//! leader, and ListOffsets retries. The scripted log answers Fetch and ListOffsets from
//! memory and can delete data under the consumer, which the real test broker cannot do on cue.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, FetchRequest};
use kafka_protocol::protocol::Decodable;
use wasmkafka::client::Client;
use wasmkafka::fetch::{
    BatchError, CommittedOffset, Consumer, ConsumerError, ConsumerRecord, FetchOptions,
    IsolationLevel, PartitionError, PartitionState, StartAt, TopicPartition,
};
use wasmkafka::net::{ConnectionOptions, PoolOptions};
use wasmkafka::policy::{ResetPolicy, ResetPolicySpec, ResetReason};
use wasmkafka_tests::fault_broker::{Fault, FaultCluster};
use wasmkafka_tests::fault_log::{Damage, ScriptedLog};
use wasmkafka_tests::records::{partition_offsets, RecordingPolicy};

const WAIT: Duration = Duration::from_secs(10);

struct Harness {
    cluster: FaultCluster,
    log: ScriptedLog,
    consumer: Consumer,
}

fn tp(partition: i32) -> TopicPartition {
    TopicPartition::new("t", partition)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A cluster of `nodes`, topic `t` with one partition per entry of `leaders`, a scripted log,
/// and a consumer with `policy` (nothing assigned yet).
async fn harness(nodes: usize, leaders: &[i32], policy: ResetPolicySpec) -> Harness {
    harness_with(nodes, leaders, policy, FetchOptions::default()).await
}

async fn harness_with(
    nodes: usize,
    leaders: &[i32],
    policy: ResetPolicySpec,
    options: FetchOptions,
) -> Harness {
    harness_with_policy(nodes, leaders, policy.into_policy(), options).await
}

async fn harness_with_policy(
    nodes: usize,
    leaders: &[i32],
    policy: Arc<dyn ResetPolicy>,
    options: FetchOptions,
) -> Harness {
    wasmkafka_tests::init_tracing();
    let cluster = FaultCluster::start(nodes).await.unwrap();
    cluster.add_topic("t", leaders);
    let log = ScriptedLog::install(&cluster);
    for partition in 0..leaders.len() as i32 {
        log.append("t", partition, 0, |_| 0);
    }
    let client = Client::new(
        vec![cluster.addr(1)],
        PoolOptions {
            connection: ConnectionOptions {
                request_timeout: Duration::from_secs(5),
                ..ConnectionOptions::default()
            },
            reconnect_backoff: Duration::from_millis(10),
            reconnect_backoff_max: Duration::from_millis(50),
            ..PoolOptions::default()
        },
    );
    let options = FetchOptions {
        max_wait: Duration::from_millis(100),
        retry_backoff: Duration::from_millis(20),
        retry_backoff_max: Duration::from_millis(200),
        ..options
    };
    let consumer = Consumer::new(client, options, policy);
    Harness {
        cluster,
        log,
        consumer,
    }
}

/// Polls until `done` holds for everything collected (panics after `WAIT`, or on an error).
async fn collect_until(
    consumer: &Consumer,
    records: &mut Vec<ConsumerRecord>,
    done: impl Fn(&[ConsumerRecord]) -> bool,
) {
    let poll_wait = Duration::from_millis(100);
    wasmkafka_tests::records::collect_until(consumer, records, WAIT, poll_wait, done).await;
}

/// Polls, collecting records, until a partition error comes (panics after `WAIT`, or on
/// another error).
async fn collect_until_partition_error(
    consumer: &Consumer,
    records: &mut Vec<ConsumerRecord>,
) -> PartitionError {
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "no partition error");
        match consumer.poll(1000, Duration::from_millis(100)).await {
            Ok(batch) => records.extend(batch),
            Err(ConsumerError::Partition(error)) => return error,
            Err(other) => panic!("unexpected error {other}"),
        }
    }
}

/// Reads t/0 from 0 until at least 30 records were handed out, then deletes everything
/// before 60 and appends 20 records (the log is now 60..120). Returns what was read.
async fn read_then_delete_under_the_consumer(h: &Harness) -> Vec<ConsumerRecord> {
    h.consumer.assign([(tp(0), StartAt::Offset(0))]);
    let mut records = Vec::new();
    collect_until(&h.consumer, &mut records, |r| r.len() >= 30).await;
    h.log.delete_before("t", 0, 60);
    h.log.append("t", 0, 20, |o| o);
    records
}

/// Checks that t/0 was read contiguously from 0, then jumped to `resumed_at`; returns the
/// offset it was out of range at.
fn assert_jump(records: &[ConsumerRecord], resumed_at: i64) -> i64 {
    let seen = partition_offsets(records, 0);
    let jump = seen
        .iter()
        .position(|o| *o >= 60)
        .expect("no record after the reset");
    let before: Vec<i64> = (0..jump as i64).collect();
    assert_eq!(seen[..jump], before[..], "contiguous before the reset");
    assert_eq!(seen[jump], resumed_at, "first record after the reset");
    jump as i64
}

fn list_offsets_for(log: &ScriptedLog, partition: i32) -> Vec<i64> {
    log.list_offsets_seen()
        .into_iter()
        .filter(|(t, p, _)| t == "t" && *p == partition)
        .map(|(_, _, ts)| ts)
        .collect()
}

#[tokio::test]
async fn out_of_range_with_earliest_resumes_at_the_new_log_start() {
    let h = harness(1, &[1], ResetPolicySpec::Earliest).await;
    h.log.append("t", 0, 100, |o| o);
    h.log.set_records_per_fetch(10);
    let mut records = read_then_delete_under_the_consumer(&h).await;
    collect_until(&h.consumer, &mut records, |r| {
        r.iter().any(|r| r.offset >= 70)
    })
    .await;
    let out_of_range_at = assert_jump(&records, 60);
    assert!((30..=40).contains(&out_of_range_at), "{out_of_range_at}");
    let seen = partition_offsets(&records, 0);
    let after: Vec<i64> = seen.iter().copied().filter(|o| *o >= 60).collect();
    assert_eq!(after, (60..60 + after.len() as i64).collect::<Vec<_>>());
    // The reset asked for the log bounds (earliest -2, latest -1) and nothing else.
    let mut asked = list_offsets_for(&h.log, 0);
    asked.sort();
    assert_eq!(asked, [-2, -1]);
    let stats = h.consumer.stats();
    assert_eq!((stats.out_of_range, stats.resets_resolved), (1, 1));
}

#[tokio::test]
async fn out_of_range_with_latest_waits_for_new_records() {
    let h = harness(1, &[1], ResetPolicySpec::Latest).await;
    h.log.append("t", 0, 100, |o| o);
    h.log.set_records_per_fetch(10);
    let mut records = read_then_delete_under_the_consumer(&h).await;
    // Drain what was buffered; the reset lands at the end of the log (120).
    let deadline = Instant::now() + WAIT;
    while h.consumer.position(&tp(0)) != Some(120) {
        assert!(
            Instant::now() < deadline,
            "no reset to 120: {:?}",
            h.consumer.assignment()
        );
        records.extend(
            h.consumer
                .poll(1000, Duration::from_millis(50))
                .await
                .unwrap(),
        );
    }
    h.log.append("t", 0, 5, |o| o);
    collect_until(&h.consumer, &mut records, |r| {
        r.iter().any(|r| r.offset == 124)
    })
    .await;
    let out_of_range_at = {
        let seen = partition_offsets(&records, 0);
        let jump = seen.iter().position(|o| *o >= 60).unwrap();
        assert_eq!(seen[jump..], [120, 121, 122, 123, 124]);
        jump
    };
    assert!((30..=40).contains(&out_of_range_at));
    let mut asked = list_offsets_for(&h.log, 0);
    asked.sort();
    assert_eq!(asked, [-2, -1]);
}

#[tokio::test]
async fn out_of_range_with_by_duration_resolves_a_timestamp() {
    let h = harness(
        1,
        &[1],
        "by_duration:PT100S".parse::<ResetPolicySpec>().unwrap(),
    )
    .await;
    // Record o was written at base + o s: records from 100 on are younger than 100 s (with
    // 0.9 s to spare for the time the test takes).
    let base = now_ms() - 200_000 + 900;
    h.log.append("t", 0, 100, |o| base + o * 1000);
    h.log.set_records_per_fetch(10);
    let before = now_ms();
    h.consumer.assign([(tp(0), StartAt::Offset(0))]);
    let mut records = Vec::new();
    collect_until(&h.consumer, &mut records, |r| r.len() >= 30).await;
    h.log.delete_before("t", 0, 60);
    h.log.append("t", 0, 20, |o| base + o * 1000);
    collect_until(&h.consumer, &mut records, |r| {
        r.iter().any(|r| r.offset >= 105)
    })
    .await;
    let after = now_ms();
    assert_jump(&records, 100);
    let asked = list_offsets_for(&h.log, 0);
    let timestamps: Vec<i64> = asked.iter().copied().filter(|ts| *ts >= 0).collect();
    assert_eq!(timestamps.len(), 1, "one timestamp lookup: {asked:?}");
    assert!(
        (before - 100_000..=after - 100_000).contains(&timestamps[0]),
        "looked up {} (now - 100 s is between {} and {})",
        timestamps[0],
        before - 100_000,
        after - 100_000
    );
}

#[tokio::test]
async fn out_of_range_with_none_stops_that_partition_only() {
    let h = harness(1, &[1, 1], ResetPolicySpec::None).await;
    h.log.append("t", 0, 100, |o| o);
    h.log.append("t", 1, 10, |o| o);
    h.log.set_records_per_fetch(10);
    h.consumer.assign([(tp(1), StartAt::Offset(0))]);
    let mut records = read_then_delete_under_the_consumer(&h).await;

    let error = collect_until_partition_error(&h.consumer, &mut records).await;
    let PartitionError::ResetRefused {
        ref partition,
        reason: ResetReason::OutOfRange { offset },
        log_start,
        high_watermark,
        ref policy,
        ..
    } = error
    else {
        panic!("expected ResetRefused, got {error:?}");
    };
    assert_eq!(partition, &tp(0));
    assert_eq!(
        offset,
        partition_offsets(&records, 0).len() as i64,
        "the offset asked for"
    );
    assert_eq!((log_start, high_watermark), (60, 120));
    assert_eq!(policy, "none");
    let message = error.to_string();
    assert!(
        message.contains("t/0") && message.contains("60..120") && message.contains("seek"),
        "{message}"
    );
    assert_eq!(h.consumer.assignment()[&tp(0)], PartitionState::Failed);

    // The other partition keeps flowing.
    h.log.append("t", 1, 10, |o| o);
    collect_until(&h.consumer, &mut records, |r| {
        partition_offsets(r, 1).len() == 20
    })
    .await;
    assert_eq!(partition_offsets(&records, 1), (0..20).collect::<Vec<_>>());
    // A seek restarts the stopped partition.
    assert!(h.consumer.seek(&tp(0), 60));
    collect_until(&h.consumer, &mut records, |r| {
        r.iter().any(|r| r.offset == 119)
    })
    .await;
}

/// A partition assigned to this consumer whose topic the cluster refuses to describe to it
/// (a leader with other rights assigned it): Metadata names no leader, and only an answer
/// that names the topic says why. The partition stops at once with the refusal and its fix
/// (not as a deleted topic, which it would look like in an answer for every topic); the
/// other topic's partition goes on.
#[tokio::test]
async fn a_partition_whose_topic_is_refused_stops_with_the_reason_and_the_others_go_on() {
    let h = harness(1, &[1], ResetPolicySpec::Earliest).await;
    h.cluster.add_topic("u", &[1]);
    h.cluster.refuse_topic("u", 29);
    h.log.append("t", 0, 10, |o| o);
    let refused_tp = TopicPartition::new("u", 0);
    h.consumer.assign([
        (tp(0), StartAt::Offset(0)),
        (refused_tp.clone(), StartAt::Offset(0)),
    ]);
    let mut records = Vec::new();
    let error = collect_until_partition_error(&h.consumer, &mut records).await;
    let PartitionError::Refused {
        ref partition,
        error: code,
        ..
    } = error
    else {
        panic!("expected Refused, got {error:?}");
    };
    assert_eq!(partition, &refused_tp);
    assert_eq!(code, ResponseError::TopicAuthorizationFailed);
    assert!(
        error
            .to_string()
            .contains("--operation Describe --operation Read"),
        "{error}"
    );
    assert_eq!(h.consumer.assignment()[&refused_tp], PartitionState::Failed);
    collect_until(&h.consumer, &mut records, |r| {
        partition_offsets(r, 0).len() == 10
    })
    .await;
    assert!(records.iter().all(|r| &*r.topic == "t"));
}

/// Damaged record data from the broker: the records before the damage reach the application,
/// then an error naming the partition, the batch and what is wrong; that partition stops at the
/// damage (nothing after it is skipped), the other goes on, and a seek past the damage resumes.
#[tokio::test]
async fn damaged_batches_stop_their_partition_after_the_records_before_them() {
    for damage in [Damage::RecordField, Damage::Checksum] {
        let h = harness(1, &[1, 1], ResetPolicySpec::Earliest).await;
        h.log.append("t", 0, 10, |o| o);
        h.log.append("t", 1, 10, |o| o);
        h.log.damage_from("t", 0, 5, damage);
        h.consumer
            .assign([(tp(0), StartAt::Offset(0)), (tp(1), StartAt::Offset(0))]);
        let mut records = Vec::new();
        let error = collect_until_partition_error(&h.consumer, &mut records).await;
        assert_eq!(
            partition_offsets(&records, 0),
            [0, 1, 2, 3, 4],
            "{damage:?}"
        );
        let PartitionError::Corrupt {
            ref partition,
            error: BatchError::Corrupt { offset, ref reason },
        } = error
        else {
            panic!("expected Corrupt, got {error:?}");
        };
        assert_eq!((partition, offset), (&tp(0), 5));
        let expected = match damage {
            Damage::RecordField => "key of 63 bytes runs past its record",
            Damage::Checksum => "CRC mismatch",
        };
        assert!(reason.starts_with(expected), "{damage:?}: {reason}");
        let message = error.to_string();
        assert!(
            message.starts_with("t/0: cannot decode records: corrupt record batch at offset 5")
                && message.contains("seeked past the bad batch"),
            "{message}"
        );
        assert_eq!(h.consumer.assignment()[&tp(0)], PartitionState::Failed);

        collect_until(&h.consumer, &mut records, |r| {
            partition_offsets(r, 1).len() == 10
        })
        .await;
        assert!(h.consumer.seek(&tp(0), 6));
        collect_until(&h.consumer, &mut records, |r| {
            partition_offsets(r, 0).ends_with(&[9])
        })
        .await;
        assert_eq!(
            partition_offsets(&records, 0),
            [0, 1, 2, 3, 4, 6, 7, 8, 9],
            "{damage:?}"
        );
    }
}

#[tokio::test]
async fn a_stale_out_of_range_answer_after_a_seek_is_ignored() {
    let h = harness(1, &[1], ResetPolicySpec::Earliest).await;
    h.log.append("t", 0, 100, |o| o);
    h.log.set_records_per_fetch(100);
    h.consumer.assign([(tp(0), StartAt::Offset(0))]);
    let mut records = Vec::new();
    collect_until(&h.consumer, &mut records, |r| r.len() == 100).await;

    // The next fetch (at 100) is held for 800 ms and will answer OFFSET_OUT_OF_RANGE; while
    // it is held, the user seeks back to 50.
    h.cluster.inject(
        Some(1),
        ApiKey::Fetch,
        Fault::Delay(Duration::from_millis(800)),
    );
    let deadline = Instant::now() + WAIT;
    while h.cluster.delaying_now() == 0 {
        assert!(Instant::now() < deadline, "the fetch was never held");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    h.log
        .force_error_once("t", 0, ResponseError::OffsetOutOfRange);
    assert!(h.consumer.seek(&tp(0), 50));

    let mut again = Vec::new();
    collect_until(&h.consumer, &mut again, |r| r.len() == 50).await;
    assert_eq!(partition_offsets(&again, 0), (50..100).collect::<Vec<_>>());
    let stats = h.consumer.stats();
    assert_eq!(stats.out_of_range, 0, "the stale answer caused a reset");
    assert!(stats.stale_dropped >= 1, "{stats:?}");
    assert!(
        list_offsets_for(&h.log, 0).is_empty(),
        "no ListOffsets for a stale answer"
    );
}

#[tokio::test]
async fn a_reset_racing_a_revoke_does_nothing() {
    let h = harness(1, &[1], ResetPolicySpec::Earliest).await;
    h.log.append("t", 0, 20, |o| o);
    // Hold the reset's ListOffsets, revoke the partition meanwhile.
    h.cluster.inject(
        Some(1),
        ApiKey::ListOffsets,
        Fault::Delay(Duration::from_millis(600)),
    );
    h.consumer.assign([(tp(0), StartAt::Reset)]);
    let deadline = Instant::now() + WAIT;
    while h.cluster.delaying_now() == 0 {
        assert!(Instant::now() < deadline, "the reset was never held");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    h.consumer.revoke(&[tp(0)]);
    tokio::time::sleep(Duration::from_millis(900)).await;
    let stats = h.consumer.stats();
    assert!(h.consumer.assignment().is_empty());
    assert_eq!(stats.resets_resolved, 0);
    assert!(stats.stale_dropped >= 1, "{stats:?}");
    assert!(h
        .consumer
        .poll(10, Duration::from_millis(200))
        .await
        .unwrap()
        .is_empty());

    // Assigned again at an explicit offset, it starts there.
    h.consumer.assign([(tp(0), StartAt::Offset(5))]);
    let mut records = Vec::new();
    collect_until(&h.consumer, &mut records, |r| r.len() == 15).await;
    assert_eq!(partition_offsets(&records, 0), (5..20).collect::<Vec<_>>());
}

/// A close ends the fetch session on its broker (a Fetch with the session's id and the
/// final epoch, -1), so the broker frees its slot at once instead of when it evicts it.
#[tokio::test]
async fn close_ends_the_fetch_session_on_the_broker() {
    let h = harness(1, &[1], ResetPolicySpec::Earliest).await;
    h.log.enable_sessions();
    h.log.append("t", 0, 20, |o| o);
    h.consumer.assign([(tp(0), StartAt::Offset(0))]);
    let mut records = Vec::new();
    collect_until(&h.consumer, &mut records, |r| r.len() == 20).await;
    let session_id = fetch_requests(&h.cluster)
        .iter()
        .map(|f| f.session_id)
        .find(|id| *id != 0)
        .expect("an incremental fetch in a session");
    let started = Instant::now();
    h.consumer.close().await;
    let last = fetch_requests(&h.cluster).pop().unwrap();
    assert_eq!((last.session_id, last.session_epoch), (session_id, -1));
    assert!(last.topics.is_empty(), "{last:?}");
    // A long poll was in flight (100 ms max wait); the close waits for it, not longer.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn incremental_fetch_sessions_and_a_lost_session() {
    let h = harness(1, &[1, 1, 1], ResetPolicySpec::Earliest).await;
    h.log.enable_sessions();
    h.log.set_records_per_fetch(10);
    for p in 0..3 {
        h.log.append("t", p, 50, |o| o);
    }
    h.consumer
        .assign((0..3).map(|p| (tp(p), StartAt::Offset(0))));
    let mut records = Vec::new();
    collect_until(&h.consumer, &mut records, |r| r.len() == 150).await;
    // Caught up: the idle long polls are incremental and name no partition at all.
    assert!(h
        .consumer
        .poll(100, Duration::from_millis(300))
        .await
        .unwrap()
        .is_empty());
    let idle = fetch_requests(&h.cluster)
        .iter()
        .filter(|f| {
            f.session_epoch > 0 && f.topics.is_empty() && f.forgotten_topics_data.is_empty()
        })
        .count();
    assert!(idle > 0, "{:?}", h.consumer.stats());
    // New records on one partition: the next incremental fetch names only that one.
    h.log.append("t", 1, 5, |o| o);
    collect_until(&h.consumer, &mut records, |r| r.len() == 155).await;
    assert!(h
        .consumer
        .poll(100, Duration::from_millis(100))
        .await
        .unwrap()
        .is_empty());
    let named_one = fetch_requests(&h.cluster)
        .iter()
        .filter(|f| {
            f.session_epoch > 0 && f.topics.iter().map(|t| t.partitions.len()).sum::<usize>() == 1
        })
        .count();
    assert!(named_one > 0);

    // The broker forgets the session: the next incremental fetch fails, a full one follows.
    h.log.drop_sessions();
    for p in 0..3 {
        h.log.append("t", p, 10, |o| o);
    }
    collect_until(&h.consumer, &mut records, |r| r.len() == 185).await;
    for (p, end) in [(0, 60), (1, 65), (2, 60)] {
        assert_eq!(
            partition_offsets(&records, p),
            (0..end).collect::<Vec<_>>(),
            "partition {p}"
        );
    }
    let full = fetch_requests(&h.cluster)
        .iter()
        .filter(|f| f.session_epoch == 0)
        .count();
    assert!(
        full >= 2,
        "a full fetch at the start and after the lost session: {full}"
    );
    assert!(h.consumer.stats().incremental_fetches > 0);
}

fn fetch_requests(cluster: &FaultCluster) -> Vec<FetchRequest> {
    cluster
        .seen()
        .into_iter()
        .filter(|s| s.api_key == ApiKey::Fetch as i16)
        .map(|s| FetchRequest::decode(&mut s.body.clone(), s.version).unwrap())
        .collect()
}

#[tokio::test]
async fn each_leader_has_its_own_fetch_loop() {
    let h = harness(2, &[1, 2], ResetPolicySpec::Earliest).await;
    h.log.append("t", 0, 20, |o| o);
    h.log.append("t", 1, 20, |o| o);
    h.log.set_records_per_fetch(5);
    // Node 1 holds its first fetch for 2 s; node 2's partition must not wait for it.
    h.cluster
        .inject(Some(1), ApiKey::Fetch, Fault::Delay(Duration::from_secs(2)));
    h.consumer
        .assign([(tp(0), StartAt::Offset(0)), (tp(1), StartAt::Offset(0))]);
    let mut records = Vec::new();
    collect_until(&h.consumer, &mut records, |r| {
        partition_offsets(r, 1).len() == 20
    })
    .await;
    assert!(
        partition_offsets(&records, 0).is_empty(),
        "partition 0 answered before node 1's held fetch"
    );
    collect_until(&h.consumer, &mut records, |r| {
        partition_offsets(r, 0).len() == 20
    })
    .await;
    assert_eq!(partition_offsets(&records, 0), (0..20).collect::<Vec<_>>());
}

/// A broker that says it is not a partition's leader while the metadata still names it (an
/// election under way) is asked again with backoff per leader, not at the empty-fetch pace.
#[tokio::test]
async fn a_stale_leader_is_asked_again_with_backoff() {
    let h = harness(1, &[1], ResetPolicySpec::Earliest).await;
    h.log.append("t", 0, 10, |o| o);
    h.log
        .refuse_fetches("t", 0, ResponseError::NotLeaderOrFollower);
    h.consumer.assign([(tp(0), StartAt::Offset(0))]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let fetches = fetch_requests(&h.cluster).len();
    // Backoff 20 ms doubling to 200 ms: about 17 in 3 s. At the 10 ms empty-fetch spacing
    // it was over 100.
    assert!(
        (5..=25).contains(&fetches),
        "{fetches} fetches in 3 s to a stale leader"
    );
    // The leadership settles: records flow, and the backoff is forgotten.
    h.log.stop_refusing("t", 0);
    let mut records = Vec::new();
    collect_until(&h.consumer, &mut records, |r| r.len() == 10).await;
    assert_eq!(partition_offsets(&records, 0), (0..10).collect::<Vec<_>>());
}

#[tokio::test]
async fn list_offsets_failures_are_retried_with_backoff() {
    let h = harness(1, &[1], ResetPolicySpec::Earliest).await;
    h.log.append("t", 0, 10, |o| o);
    h.log.delete_before("t", 0, 3);
    h.cluster.inject(Some(1), ApiKey::ListOffsets, Fault::Close);
    h.cluster.inject(Some(1), ApiKey::ListOffsets, Fault::Close);
    h.consumer.assign([(tp(0), StartAt::Reset)]);
    let mut records = Vec::new();
    collect_until(&h.consumer, &mut records, |r| r.len() == 7).await;
    assert_eq!(partition_offsets(&records, 0), (3..10).collect::<Vec<_>>());
    let stats = h.consumer.stats();
    assert!(stats.reset_retries >= 2, "{stats:?}");
    assert_eq!(stats.resets_resolved, 1);
}

#[tokio::test]
async fn pause_keeps_records_back_until_resume() {
    let h = harness(1, &[1, 1], ResetPolicySpec::Earliest).await;
    h.log.append("t", 0, 10, |o| o);
    h.consumer
        .assign([(tp(0), StartAt::Offset(0)), (tp(1), StartAt::Offset(0))]);
    h.consumer.pause(&[tp(0)]);
    h.log.append("t", 1, 10, |o| o);
    let mut records = Vec::new();
    collect_until(&h.consumer, &mut records, |r| r.len() == 10).await;
    assert_eq!(partition_offsets(&records, 1).len(), 10);
    assert!(h
        .consumer
        .poll(100, Duration::from_millis(300))
        .await
        .unwrap()
        .is_empty());
    h.consumer.resume(&[tp(0)]);
    collect_until(&h.consumer, &mut records, |r| r.len() == 20).await;
    assert_eq!(partition_offsets(&records, 0), (0..10).collect::<Vec<_>>());
    assert_eq!(h.consumer.position(&tp(0)), Some(10));
}

#[tokio::test]
async fn seek_to_beginning_end_and_timestamp() {
    let h = harness(1, &[1], ResetPolicySpec::Latest).await;
    h.log.append("t", 0, 30, |o| 1_000 + o * 10);
    h.log.delete_before("t", 0, 5);
    h.consumer.assign([(tp(0), StartAt::Reset)]);
    let deadline = Instant::now() + WAIT;
    while h.consumer.position(&tp(0)) != Some(30) {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    h.consumer.seek_to_beginning(&[tp(0)]);
    let mut records = Vec::new();
    collect_until(&h.consumer, &mut records, |r| r.len() == 25).await;
    assert_eq!(partition_offsets(&records, 0), (5..30).collect::<Vec<_>>());
    h.consumer.seek_to_timestamp(&[tp(0)], 1_000 + 20 * 10);
    let mut records = Vec::new();
    collect_until(&h.consumer, &mut records, |r| r.len() == 10).await;
    assert_eq!(partition_offsets(&records, 0), (20..30).collect::<Vec<_>>());
    h.consumer.seek_to_end(&[tp(0)]);
    while h.consumer.position(&tp(0)) != Some(30) {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn read_committed_hides_aborted_transactions_and_markers() {
    let h = harness_with(
        1,
        &[1],
        ResetPolicySpec::Earliest,
        FetchOptions {
            isolation: IsolationLevel::ReadCommitted,
            ..FetchOptions::default()
        },
    )
    .await;
    h.log.set_records_per_fetch(100);
    h.log.append("t", 0, 2, |o| o); // 0, 1
    h.log.append_transaction("t", 0, 3, 7, false); // 2..4 aborted, marker 5
    h.log.append_transaction("t", 0, 2, 8, true); // 6, 7 committed, marker 8
    h.log.append("t", 0, 1, |o| o); // 9
    h.consumer.assign([(tp(0), StartAt::Offset(0))]);
    let mut records = Vec::new();
    collect_until(&h.consumer, &mut records, |r| r.len() == 5).await;
    assert_eq!(partition_offsets(&records, 0), [0, 1, 6, 7, 9]);
    assert!(h
        .consumer
        .poll(10, Duration::from_millis(200))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(h.consumer.position(&tp(0)), Some(10));

    // read_uncommitted shows the aborted records too, never the markers.
    let h = harness(1, &[1], ResetPolicySpec::Earliest).await;
    h.log.set_records_per_fetch(100);
    h.log.append_transaction("t", 0, 3, 7, false);
    h.consumer.assign([(tp(0), StartAt::Offset(0))]);
    let mut records = Vec::new();
    collect_until(&h.consumer, &mut records, |r| r.len() == 3).await;
    assert_eq!(partition_offsets(&records, 0), [0, 1, 2]);
}

#[tokio::test]
async fn a_wasm_reset_policy_decides_a_forced_reset() {
    use wasmkafka::plugin::{PluginLimits, PluginRuntime, WasmResetPolicy};
    wasmkafka_tests::init_tracing();
    let cluster = FaultCluster::start(1).await.unwrap();
    cluster.add_topic("t", &[1]);
    let log = ScriptedLog::install(&cluster);
    log.append("t", 0, 100, |o| o);
    log.set_records_per_fetch(10);
    let runtime = PluginRuntime::new(PluginLimits::default(), None).unwrap();
    // "Rewind 20 records, never past the log start": out of range -> 20 before the end.
    let rewind = WasmResetPolicy::load(&runtime, &wasmkafka_tests::plugins::plugin("reset-rewind"))
        .unwrap()
        .with_settings(vec![("records".into(), "20".into())]);
    let consumer = Consumer::new(
        Client::new(vec![cluster.addr(1)], PoolOptions::default()),
        FetchOptions {
            max_wait: Duration::from_millis(100),
            ..FetchOptions::default()
        },
        Arc::new(rewind),
    );
    let h = Harness {
        cluster,
        log,
        consumer,
    };
    let mut records = read_then_delete_under_the_consumer(&h).await;
    collect_until(&h.consumer, &mut records, |r| {
        r.iter().any(|r| r.offset == 119)
    })
    .await;
    assert_jump(&records, 100);
    assert_eq!(h.consumer.stats().out_of_range, 1);
}

#[tokio::test]
async fn a_log_that_diverged_below_the_position_reaches_the_policy_as_a_truncation() {
    let policy = Arc::new(RecordingPolicy::default());
    let h = harness_with_policy(1, &[1], policy.clone(), FetchOptions::default()).await;
    h.log.append("t", 0, 10, |o| o);
    h.consumer.assign([(tp(0), StartAt::Offset(0))]);
    let mut records = Vec::new();
    collect_until(&h.consumer, &mut records, |r| r.len() >= 10).await;
    // The next fetch (at 10) names the epoch of record 9.
    wait_until("a fetch with the last fetched epoch", || {
        h.log.fetch_epochs("t", 0).map(|(_, last)| last) == Some(0)
    })
    .await;
    // An unclean election: the new leader's log ends at 6 and takes new records there.
    h.log.truncate_with_new_leader("t", 0, 6);
    h.log.append("t", 0, 4, |o| o);
    collect_until(&h.consumer, &mut records, |r| r.len() >= 14).await;
    assert_eq!(
        policy.reasons(),
        [ResetReason::LogTruncated {
            offset: 10,
            diverged_at: 6
        }]
    );
    let replaced: Vec<(i64, i32)> = records[10..]
        .iter()
        .map(|r| (r.offset, r.leader_epoch))
        .collect();
    assert_eq!(
        replaced,
        [(6, 1), (7, 1), (8, 1), (9, 1)],
        "the new records of epoch 1"
    );
    assert_eq!(h.consumer.stats().truncations, 1);
}

#[tokio::test]
async fn a_new_leader_is_asked_where_the_positions_epoch_ends_before_fetching() {
    let policy = Arc::new(RecordingPolicy::default());
    let h = harness_with_policy(1, &[1], policy.clone(), FetchOptions::default()).await;
    // A leader that never answers a diverging epoch to a fetch: only validation can tell.
    h.log.disable_diverging_answers();
    h.cluster.set_leader_epoch("t", 0, 0);
    h.log.append("t", 0, 10, |o| o);
    h.consumer.assign([(tp(0), StartAt::Offset(0))]);
    let mut records = Vec::new();
    collect_until(&h.consumer, &mut records, |r| r.len() >= 10).await;
    assert!(
        h.log.validations_seen().is_empty(),
        "a position read from the current leader needs no validation"
    );
    // An unclean election: leader epoch 1, whose log ends at 6, then takes 4 new records.
    h.log.truncate_with_new_leader("t", 0, 6);
    h.log.append("t", 0, 4, |o| o);
    h.cluster.set_leader_epoch("t", 0, 1);
    collect_until(&h.consumer, &mut records, |r| r.len() >= 14).await;
    // The fetch under epoch 0 was fenced; the consumer learned epoch 1 and asked where
    // epoch 0 ends before fetching again.
    assert_eq!(
        h.log.validations_seen(),
        [("t".to_string(), 0, 1, 0)],
        "(topic, partition, current leader epoch, epoch asked about)"
    );
    assert_eq!(
        policy.reasons(),
        [ResetReason::LogTruncated {
            offset: 10,
            diverged_at: 6
        }]
    );
    let replaced: Vec<(i64, i32)> = records[10..]
        .iter()
        .map(|r| (r.offset, r.leader_epoch))
        .collect();
    assert_eq!(replaced, [(6, 1), (7, 1), (8, 1), (9, 1)]);
    let stats = h.consumer.stats();
    assert_eq!((stats.validations, stats.truncations), (1, 1));
}

#[tokio::test]
async fn a_clean_leader_change_keeps_the_position() {
    let policy = Arc::new(RecordingPolicy::default());
    let h = harness_with_policy(1, &[1], policy.clone(), FetchOptions::default()).await;
    h.log.disable_diverging_answers();
    h.cluster.set_leader_epoch("t", 0, 0);
    h.log.append("t", 0, 10, |o| o);
    h.consumer.assign([(tp(0), StartAt::Offset(0))]);
    let mut records = Vec::new();
    collect_until(&h.consumer, &mut records, |r| r.len() >= 10).await;
    // A new leader with the whole log (epoch 0 ends at 10), then new records.
    h.log.truncate_with_new_leader("t", 0, 10);
    h.log.append("t", 0, 5, |o| o);
    h.cluster.set_leader_epoch("t", 0, 1);
    collect_until(&h.consumer, &mut records, |r| r.len() >= 15).await;
    assert_eq!(partition_offsets(&records, 0), (0..15).collect::<Vec<_>>());
    assert_eq!(h.log.validations_seen(), [("t".to_string(), 0, 1, 0)]);
    assert!(policy.reasons().is_empty(), "no reset");
    assert_eq!(h.consumer.stats().truncations, 0);
}

#[tokio::test]
async fn a_committed_offset_with_an_epoch_is_validated_before_the_first_fetch() {
    let policy = Arc::new(RecordingPolicy::default());
    let h = harness_with_policy(1, &[1], policy.clone(), FetchOptions::default()).await;
    h.log.disable_diverging_answers();
    // The group committed 10 under epoch 0; since then the log was truncated at 6.
    h.log.append("t", 0, 10, |o| o);
    h.log.truncate_with_new_leader("t", 0, 6);
    h.log.append("t", 0, 2, |o| o);
    h.cluster.set_leader_epoch("t", 0, 1);
    h.consumer.assign([(tp(0), StartAt::Committed)]);
    h.consumer.committed_offsets([(
        tp(0),
        Some(CommittedOffset {
            offset: 10,
            leader_epoch: Some(0),
        }),
    )]);
    let mut records = Vec::new();
    collect_until(&h.consumer, &mut records, |r| r.len() >= 2).await;
    assert_eq!(partition_offsets(&records, 0), [6, 7]);
    assert_eq!(
        policy.reasons(),
        [ResetReason::LogTruncated {
            offset: 10,
            diverged_at: 6
        }]
    );
    assert_eq!(
        h.log.fetch_offsets_seen("t", 0).first(),
        Some(&6),
        "nothing was fetched at the unchecked position"
    );
}

#[tokio::test]
async fn a_leader_without_offset_for_leader_epoch_is_fetched_unchecked() {
    let policy = Arc::new(RecordingPolicy::default());
    let h = harness_with_policy(1, &[1], policy.clone(), FetchOptions::default()).await;
    let versions = h
        .cluster
        .api_versions()
        .into_iter()
        .filter(|(key, _, _)| *key != ApiKey::OffsetForLeaderEpoch as i16)
        .collect();
    h.cluster.set_api_versions(versions);
    h.cluster.set_leader_epoch("t", 0, 0);
    h.log.append("t", 0, 10, |o| o);
    h.consumer.assign([(tp(0), StartAt::Committed)]);
    h.consumer.committed_offsets([(
        tp(0),
        Some(CommittedOffset {
            offset: 4,
            leader_epoch: Some(0),
        }),
    )]);
    let mut records = Vec::new();
    collect_until(&h.consumer, &mut records, |r| r.len() >= 6).await;
    assert_eq!(partition_offsets(&records, 0), (4..10).collect::<Vec<_>>());
    assert!(h.log.validations_seen().is_empty());
    assert!(policy.reasons().is_empty());
}

/// A reset policy that takes its time (here: a Wasm plugin sleeping until its deadline) runs
/// off the async workers: on this single-threaded runtime, another task keeps ticking while
/// the policy is asked, and the partition then stops with the deadline named.
#[tokio::test]
async fn a_slow_reset_policy_does_not_stall_the_runtime() {
    let runtime = wasmkafka::plugin::PluginRuntime::new(
        wasmkafka::plugin::PluginLimits {
            deadline: Duration::from_millis(500),
            ..wasmkafka::plugin::PluginLimits::default()
        },
        None,
    )
    .unwrap();
    let sleepy = wasmkafka::plugin::WasmResetPolicy::load(
        &runtime,
        &wasmkafka_tests::plugins::plugin("hostile-sleep"),
    )
    .unwrap();
    let h = harness_with_policy(1, &[1], Arc::new(sleepy), FetchOptions::default()).await;
    h.log.append("t", 0, 10, |o| o);
    let ticks = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let ticker = {
        let ticks = ticks.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                ticks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        })
    };
    h.consumer.assign([(tp(0), StartAt::Reset)]);
    let started = Instant::now();
    let error = loop {
        match h.consumer.poll(100, Duration::from_millis(100)).await {
            Err(error) => break error,
            Ok(records) => assert!(records.is_empty()),
        }
        assert!(started.elapsed() < WAIT, "no error from the policy");
    };
    let took = started.elapsed();
    let ticked = ticks.load(std::sync::atomic::Ordering::SeqCst);
    ticker.abort();
    assert!(error.to_string().contains("deadline"), "{error}");
    // About 50 ticks fit in the policy's 500 ms: the runtime's only thread was free.
    assert!(ticked >= 25, "{ticked} ticks in {took:?}");
}

#[tokio::test]
async fn fenced_and_unknown_leader_epochs_are_retried() {
    let h = harness(1, &[1], ResetPolicySpec::Earliest).await;
    h.log.append("t", 0, 10, |o| o);
    h.log
        .force_error_once("t", 0, ResponseError::FencedLeaderEpoch);
    h.consumer.assign([(tp(0), StartAt::Offset(0))]);
    let mut records = Vec::new();
    collect_until(&h.consumer, &mut records, |r| r.len() >= 10).await;
    h.log
        .force_error_once("t", 0, ResponseError::UnknownLeaderEpoch);
    h.log.append("t", 0, 10, |o| o);
    collect_until(&h.consumer, &mut records, |r| r.len() >= 20).await;
    assert_eq!(partition_offsets(&records, 0), (0..20).collect::<Vec<_>>());
    wait_until("FENCED_LEADER_EPOCH to refresh the metadata", || {
        h.cluster
            .seen()
            .iter()
            .filter(|r| r.api_key == ApiKey::Metadata as i16)
            .count()
            >= 2
    })
    .await;
}

async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
