//! Partitions that follow their leaders, on a real three-node Apache Kafka cluster:
//!
//! - `a_partition_without_a_leader_waits_without_spinning`: the only replica of a partition
//!   is SIGKILLed. While the partition has no leader the consumer's CPU stays low and its
//!   metadata refreshes stay bounded by the minimum age; the other partition goes on; when the
//!   node returns, consumption resumes and nothing is lost or repeated.
//! - `an_unclean_election_reaches_the_reset_policy_as_a_truncation`: records are read from a
//!   leader whose follower fell out of sync; the leader dies and the stale follower is elected
//!   uncleanly (ElectLeaders). The consumer's position is past the new leader's log: it finds
//!   out by validating its position with the new leader (OffsetForLeaderEpoch, KIP-320) and
//!   hands the partition to the reset policy as `LogTruncated`, then reads the new leader's
//!   records. A raw Fetch v12 shows Kafka answers a consumer the diverging epoch too. The old
//!   leader then returns and leads again after a preferred election: a clean change, validated,
//!   with no truncation.
//!
//! Each test starts its own cluster (nodes are killed); they run one after the other.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use wasmkafka::cluster::MetadataOptions;
use wasmkafka::fetch::{Consumer, FetchOptions, StartAt, TopicPartition};
use wasmkafka::policy::{ResetPolicySpec, ResetReason};
use wasmkafka::produce::OutgoingRecord;
use wasmkafka_tests::kafka::admin::{create_topic_placed, elect_leaders, Placement};
use wasmkafka_tests::kafka::{Kafka, KafkaOptions};
use wasmkafka_tests::records::{collect_until, partition_offsets, RecordingPolicy};

const WAIT: Duration = Duration::from_secs(120);
/// How long each poll of [`collect_until`] waits.
const POLL_WAIT: Duration = Duration::from_millis(200);

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Three nodes that notice a dead broker within seconds (the controller fences it after the
/// broker session timeout, which shrinks the ISRs it was in).
async fn cluster() -> Kafka {
    Kafka::start_with(KafkaOptions {
        nodes: 3,
        overrides: vec![
            ("broker.heartbeat.interval.ms".into(), "500".into()),
            ("broker.session.timeout.ms".into(), "3000".into()),
        ],
        ..KafkaOptions::default()
    })
    .await
    .expect("a three-node cluster")
}

fn values(prefix: &str, range: std::ops::Range<i64>) -> Vec<OutgoingRecord> {
    range
        .map(|i| OutgoingRecord {
            key: None,
            value: Some(Bytes::from(format!("{prefix}-{i}"))),
            headers: Vec::new(),
            timestamp: None,
        })
        .collect()
}

/// CPU time (user + system) this process has used.
fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()), 0);
        usage.assume_init()
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Asks `client` for fresh metadata until `check` holds (panics after `WAIT`).
async fn wait_for_metadata(
    what: &str,
    client: &wasmkafka::client::Client,
    check: impl Fn(&wasmkafka::cluster::Metadata) -> bool,
) {
    let deadline = Instant::now() + WAIT;
    while !client.refresh_metadata().await.is_ok_and(|m| check(&m)) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_without_a_leader_waits_without_spinning() {
    let _serial = SERIAL.lock().await;
    tokio::time::timeout(Duration::from_secs(400), leaderless())
        .await
        .expect("the test finishes in time");
}

async fn leaderless() {
    let mut kafka = cluster().await;
    let admin = kafka.client();
    // Partition 0 lives on node 1 only; partition 1 on node 2 only.
    create_topic_placed(
        &admin,
        "leaderless",
        Placement::Replicas(&[vec![1], vec![2]]),
        &[],
    )
    .await
    .unwrap();
    for partition in [0, 1] {
        kafka
            .produce(&admin, "leaderless", partition, &values("a", 0..100), 50)
            .await
            .unwrap();
    }
    // The consumer's client refreshes metadata at most once a second (the default floor).
    let client = kafka.client_with(MetadataOptions::default());
    let consumer = Consumer::new(
        client.clone(),
        FetchOptions {
            max_wait: Duration::from_millis(500),
            ..FetchOptions::default()
        },
        ResetPolicySpec::Earliest.into_policy(),
    );
    consumer.assign([0, 1].map(|p| (TopicPartition::new("leaderless", p), StartAt::Offset(0))));
    let mut records = Vec::new();
    collect_until(&consumer, &mut records, WAIT, POLL_WAIT, |r| r.len() >= 200).await;

    kafka.kill_node(1);
    // The other partition goes on while partition 0 has no leader.
    kafka
        .produce(&admin, "leaderless", 1, &values("b", 100..150), 50)
        .await
        .unwrap();
    collect_until(&consumer, &mut records, WAIT, POLL_WAIT, |r| {
        partition_offsets(r, 1).len() >= 150
    })
    .await;
    // Give the consumer time to find out that partition 0 has no leader, then measure.
    wait_for_metadata("partition 0 to lose its leader", &client, |m| {
        m.leader("leaderless", 0).is_none()
    })
    .await;
    let window = Duration::from_secs(10);
    let generation = client.metadata_generation();
    let fetches = consumer.stats().fetch_requests;
    let cpu = cpu_time();
    let started = Instant::now();
    let deadline = started + window;
    while Instant::now() < deadline {
        let batch = consumer
            .poll(1000, Duration::from_millis(200))
            .await
            .expect("poll");
        assert!(batch.is_empty(), "nothing new was produced");
    }
    let elapsed = started.elapsed();
    let cpu = cpu_time() - cpu;
    let refreshes = client.metadata_generation() - generation;
    let fetches = consumer.stats().fetch_requests - fetches;
    let share = cpu.as_secs_f64() / elapsed.as_secs_f64();
    println!(
        "leaderless for {elapsed:?}: CPU {cpu:?} ({:.1}% of a core), {refreshes} metadata \
         refreshes, {fetches} fetches (of the partition that still has a leader)",
        share * 100.0
    );
    assert!(
        share < 0.10,
        "CPU {:.1}% of a core while waiting",
        share * 100.0
    );
    // At most one refresh per second (the floor), plus the one the test asked for.
    assert!(
        refreshes <= 12,
        "{refreshes} metadata refreshes in {elapsed:?}"
    );
    // Partition 1's leader long-polls (500 ms max wait): about 2 fetches a second.
    assert!(fetches <= 40, "{fetches} fetches in {elapsed:?}");

    kafka.start_node(1).await.unwrap();
    kafka
        .produce(&admin, "leaderless", 0, &values("c", 100..150), 50)
        .await
        .unwrap();
    collect_until(&consumer, &mut records, WAIT, POLL_WAIT, |r| {
        partition_offsets(r, 0).len() >= 150
    })
    .await;
    assert_eq!(partition_offsets(&records, 0), (0..150).collect::<Vec<_>>());
    assert_eq!(partition_offsets(&records, 1), (0..150).collect::<Vec<_>>());
    consumer.close().await;
    client.close();
    admin.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unclean_election_reaches_the_reset_policy_as_a_truncation() {
    let _serial = SERIAL.lock().await;
    tokio::time::timeout(Duration::from_secs(400), unclean())
        .await
        .expect("the test finishes in time");
}

async fn unclean() {
    let mut kafka = cluster().await;
    let admin = kafka.client();
    let tp = TopicPartition::new("unclean", 0);
    // Node 1 leads, node 2 follows; node 3 holds no replica (it keeps the quorum company).
    create_topic_placed(
        &admin,
        "unclean",
        Placement::Replicas(&[vec![1, 2]]),
        &[
            // Only an explicit ElectLeaders elects an out-of-sync replica.
            ("unclean.leader.election.enable", "false"),
            ("min.insync.replicas", "1"),
        ],
    )
    .await
    .unwrap();
    kafka
        .produce(&admin, "unclean", 0, &values("both", 0..20), 10)
        .await
        .unwrap();
    // The follower dies; once it is out of the ISR the leader alone takes 30 more.
    kafka.kill_node(2);
    wait_for_metadata("node 2 to leave the ISR", &admin, |m| {
        m.topics["unclean"].partitions[&0].isr == [1]
    })
    .await;
    kafka
        .produce(&admin, "unclean", 0, &values("lost", 20..50), 10)
        .await
        .unwrap();
    let policy = Arc::new(RecordingPolicy::default());
    let client = kafka.client_with(MetadataOptions::default());
    let consumer = Consumer::new(client.clone(), FetchOptions::default(), policy.clone());
    consumer.assign([(tp.clone(), StartAt::Offset(0))]);
    let mut records = Vec::new();
    collect_until(&consumer, &mut records, WAIT, POLL_WAIT, |r| r.len() >= 50).await;
    let epoch_read = records.last().unwrap().leader_epoch;

    // The leader dies too, and the stale follower comes back: only an unclean election gives
    // the partition a leader, whose log ends at 20.
    kafka.kill_node(1);
    kafka.start_node(2).await.unwrap();
    // The topic does not allow unclean elections: ElectLeaders (UNCLEAN) asks for one.
    let elected = Instant::now();
    let mut asked = 0;
    loop {
        let leader = admin
            .refresh_metadata()
            .await
            .ok()
            .and_then(|m| m.leader("unclean", 0));
        if leader == Some(2) {
            break;
        }
        assert!(
            elected.elapsed() < WAIT,
            "no unclean election; leader {leader:?}"
        );
        asked += 1;
        if let Err(error) = elect_leaders(&admin, "unclean", &[0], true).await {
            println!("ElectLeaders: {error:#}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "node 2 leads {:?} after node 2 restarted; ElectLeaders asked {asked} time(s)",
        elected.elapsed()
    );
    kafka
        .produce(&admin, "unclean", 0, &values("new", 20..25), 5)
        .await
        .unwrap();
    collect_until(&consumer, &mut records, WAIT, POLL_WAIT, |r| r.len() >= 55).await;

    assert_eq!(
        policy.reasons(),
        [ResetReason::LogTruncated {
            offset: 50,
            diverged_at: 20
        }]
    );
    let after: Vec<(i64, String)> = records[50..]
        .iter()
        .map(|r| {
            let value = String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap();
            (r.offset, value)
        })
        .collect();
    let expected: Vec<(i64, String)> = (20..25).map(|i| (i, format!("new-{i}"))).collect();
    assert_eq!(
        after, expected,
        "the new leader's records, from where the log diverged"
    );
    assert!(records[50..].iter().all(|r| r.leader_epoch > epoch_read));
    let stats = consumer.stats();
    println!(
        "validations {}, truncations {}",
        stats.validations, stats.truncations
    );
    assert_eq!(stats.truncations, 1);

    // Kafka also answers the diverging epoch to a consumer's Fetch v12 that names the epoch
    // it read last (the consumer found it by validation first, before any fetch).
    let elected_epoch = admin.metadata().topics["unclean"].partitions[&0].leader_epoch;
    let (error, high_watermark, diverging) =
        probe_fetch(&admin, 2, "unclean", 50, elected_epoch, epoch_read).await;
    println!("Fetch v12 at 50 with last fetched epoch {epoch_read}: error {error}, high watermark {high_watermark}, diverging {diverging:?}");
    assert_eq!((error, diverging), (0, (epoch_read, 20)));

    // The old leader comes back, drops what node 2 never had and catches up; a preferred
    // election hands it the partition again. A clean leader change: the consumer validates
    // and keeps its position, no truncation.
    kafka.start_node(1).await.unwrap();
    wait_for_metadata("node 1 back in the ISR", &admin, |m| {
        let mut isr = m.topics["unclean"].partitions[&0].isr.clone();
        isr.sort();
        isr == [1, 2]
    })
    .await;
    let validations = consumer.stats().validations;
    elect_leaders(&admin, "unclean", &[0], false).await.unwrap();
    wait_for_metadata("node 1 to lead again", &admin, |m| {
        m.leader("unclean", 0) == Some(1)
    })
    .await;
    kafka
        .produce(&admin, "unclean", 0, &values("back", 25..30), 5)
        .await
        .unwrap();
    collect_until(&consumer, &mut records, WAIT, POLL_WAIT, |r| r.len() >= 60).await;
    let back: Vec<i64> = records[55..].iter().map(|r| r.offset).collect();
    assert_eq!(back, (25..30).collect::<Vec<_>>());
    let stats = consumer.stats();
    assert!(stats.validations > validations, "the new leader was asked");
    assert_eq!(stats.truncations, 1, "no truncation in a clean change");
    assert_eq!(policy.reasons().len(), 1);
    consumer.close().await;
    client.close();
    admin.close();
}

/// What a consumer's Fetch v12 at `offset` naming `last_fetched_epoch` gets from `leader`:
/// (error code, high watermark, (diverging epoch, its end offset)).
async fn probe_fetch(
    client: &wasmkafka::client::Client,
    leader: i32,
    topic: &str,
    offset: i64,
    current_leader_epoch: i32,
    last_fetched_epoch: i32,
) -> (i16, i64, (i32, i64)) {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_current_leader_epoch(current_leader_epoch)
                .with_last_fetched_epoch(last_fetched_epoch)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(1 << 20)])]);
    let options = wasmkafka::net::SendOptions {
        version: Some(12),
        timeout: None,
    };
    let (_, response) = client
        .send_with(leader, wasmkafka::net::Purpose::Default, &request, options)
        .await
        .expect("a Fetch answer");
    let data = &response.responses[0].partitions[0];
    (
        data.error_code,
        data.high_watermark,
        (data.diverging_epoch.epoch, data.diverging_epoch.end_offset),
    )
}
