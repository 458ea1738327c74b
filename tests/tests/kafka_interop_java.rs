//! Mixed consumer groups with the Java client (`kafka-clients` 4.1, classic protocol) on
//! Apache Kafka: the Java member leads and runs its assignor over our subscription, or we lead
//! and run ours over its subscription; the two split the partitions, read every record once,
//! and read each other's commits.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use wasmkafka::fetch::TopicPartition;
use wasmkafka::group::{Builtin, GroupConsumer, GroupOptions, RebalanceListener};
use wasmkafka::produce::OutgoingRecord;
use wasmkafka_tests::group::{
    keep_polling_offsets, partitions_held, start_earliest_member, stop_polling, PolledOffsets,
};
use wasmkafka_tests::java::JavaMember;
use wasmkafka_tests::kafka::Kafka;

const WAIT: Duration = Duration::from_secs(90);
const PARTITIONS: i32 = 6;
const PER_PARTITION: i64 = 40;

/// Records what our member's listener hears.
#[derive(Default)]
struct Revocations(Mutex<Vec<TopicPartition>>);

impl RebalanceListener for Revocations {
    fn on_revoked(&self, partitions: &[TopicPartition]) {
        self.0.lock().unwrap().extend_from_slice(partitions);
    }
    fn on_lost(&self, partitions: &[TopicPartition]) {
        self.0.lock().unwrap().extend_from_slice(partitions);
    }
}

fn our_member(
    kafka: &Kafka,
    group: &str,
    topic: &str,
    assignor: Builtin,
    listener: Arc<Revocations>,
) -> Arc<GroupConsumer> {
    Arc::new(start_earliest_member(
        kafka.client(),
        GroupOptions {
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(20),
            heartbeat_interval: Duration::from_millis(300),
            auto_commit_interval: Some(Duration::from_millis(200)),
            ..GroupOptions::new(group, vec![topic.to_string()])
        },
        vec![assignor.into_assignor()],
        listener,
    ))
}

/// Waits until the two members hold disjoint, non-empty shares covering every partition.
async fn wait_for_split(java: &JavaMember, member: &GroupConsumer) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (theirs, ours) = (java.assignment(), partitions_held(member));
        let all: BTreeSet<i32> = theirs.union(&ours).copied().collect();
        if !theirs.is_empty()
            && !ours.is_empty()
            && theirs.is_disjoint(&ours)
            && all.len() == PARTITIONS as usize
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no split: java {theirs:?} wasmkafka {ours:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_until_java_owns_every_partition(java: &JavaMember) {
    let deadline = Instant::now() + WAIT;
    while java.assignment().len() != PARTITIONS as usize {
        assert!(Instant::now() < deadline, "java: {:?}", java.assignment());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn produce(kafka: &Kafka, topic: &str) {
    kafka
        .produce_to_each_partition(topic, PARTITIONS, PER_PARTITION, 100, |partition, i| {
            OutgoingRecord {
                value: Some(Bytes::from(format!("{partition}-{i}"))),
                ..OutgoingRecord::default()
            }
        })
        .await
        .unwrap();
}

/// Waits until every record was read, then checks none was read twice.
async fn wait_for_every_record_once(java: &JavaMember, seen: &PolledOffsets) {
    let expected: BTreeSet<(i32, i64)> = (0..PARTITIONS)
        .flat_map(|p| (0..PER_PARTITION).map(move |o| (p, o)))
        .collect();
    let deadline = Instant::now() + WAIT;
    loop {
        let mut all = java.records();
        all.extend(seen.lock().unwrap().iter().copied());
        let distinct: BTreeSet<(i32, i64)> = all.iter().copied().collect();
        if distinct == expected {
            assert_eq!(all.len(), expected.len(), "a record was read twice");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} records read",
            distinct.len(),
            expected.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn committed_by_us(kafka: &Kafka, group: &str, topic: &str) -> BTreeMap<i32, Option<i64>> {
    let client = kafka.client();
    let coordinator = wasmkafka::group::coordinator::find_coordinator(&client, group)
        .await
        .unwrap();
    let partitions: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    wasmkafka::group::offsets::fetch_committed(&client, coordinator, group, &partitions)
        .await
        .unwrap()
        .into_iter()
        .map(|(tp, offset)| (tp.partition, offset))
        .collect()
}

/// Waits until what the group committed reaches the end of every partition, as read by
/// wasmkafka's OffsetFetch.
async fn wait_for_commits_at_end(kafka: &Kafka, group: &str, topic: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let committed = committed_by_us(kafka, group, topic).await;
        if committed
            .values()
            .all(|offset| *offset == Some(PER_PARTITION))
        {
            return;
        }
        assert!(Instant::now() < deadline, "committed: {committed:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The shared broker with `topic` created ([`PARTITIONS`] partitions); tracing on.
async fn kafka_with_topic(topic: &str) -> &'static Kafka {
    wasmkafka_tests::init_tracing();
    let kafka = Kafka::shared();
    kafka.create_topic(topic, PARTITIONS, &[]).await.unwrap();
    kafka
}

#[tokio::test]
async fn a_java_leader_assigns_cooperatively_to_a_wasmkafka_member() {
    let (topic, group) = ("interop-java-coop", "interop-java-coop-g");
    let kafka = kafka_with_topic(topic).await;

    // The Java member joins first: it leads every generation and runs its
    // CooperativeStickyAssignor over our subscription.
    let mut java = JavaMember::start(&kafka.addr(), group, topic, "cooperative-sticky").unwrap();
    wait_until_java_owns_every_partition(&java).await;
    let revoked = Arc::new(Revocations::default());
    let member = our_member(
        kafka,
        group,
        topic,
        Builtin::CooperativeSticky,
        revoked.clone(),
    );
    let seen: PolledOffsets = Arc::default();
    let poller = keep_polling_offsets(member.clone(), seen.clone());
    wait_for_split(&java, &member).await;
    let (theirs, ours) = (java.assignment(), partitions_held(&member));
    assert_eq!((theirs.len(), ours.len()), (3, 3), "a balanced split");
    // Cooperative: the Java member gave up exactly the partitions that moved to us, and only
    // those; we gave up nothing.
    let java_revoked: BTreeSet<i32> = java.revocations().into_iter().flatten().collect();
    assert_eq!(java_revoked, ours);
    assert!(revoked.0.lock().unwrap().is_empty());

    produce(kafka, topic).await;
    wait_for_every_record_once(&java, &seen).await;
    wait_for_commits_at_end(kafka, group, topic).await;

    // We leave: the Java member takes our partitions over and reads our commits.
    stop_polling(poller, member).await.close().await;
    wait_until_java_owns_every_partition(&java).await;
    let committed = java.committed(Duration::from_secs(30)).unwrap();
    assert_eq!(
        committed,
        (0..PARTITIONS)
            .map(|p| (p, PER_PARTITION))
            .collect::<Vec<_>>()
    );
    // Nothing is read again after the handover.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        java.records().len() + seen.lock().unwrap().len(),
        (PARTITIONS as i64 * PER_PARTITION) as usize
    );
    java.stop(Duration::from_secs(30)).unwrap();
}

#[tokio::test]
async fn a_wasmkafka_leader_assigns_range_to_a_java_member() {
    let (topic, group) = ("interop-java-range", "interop-java-range-g");
    let kafka = kafka_with_topic(topic).await;

    // We join first and lead: our range assignor reads the Java member's subscription.
    let revoked = Arc::new(Revocations::default());
    let member = our_member(kafka, group, topic, Builtin::Range, revoked.clone());
    assert!(member.wait_for_assignment(WAIT).await);
    assert_eq!(partitions_held(&member).len(), PARTITIONS as usize);
    let seen: PolledOffsets = Arc::default();
    let poller = keep_polling_offsets(member.clone(), seen.clone());
    let mut java = JavaMember::start(&kafka.addr(), group, topic, "range").unwrap();
    wait_for_split(&java, &member).await;
    assert_eq!(
        (java.assignment().len(), partitions_held(&member).len()),
        (3, 3)
    );
    // Eager: we gave every partition up before the new assignment.
    let given_up: BTreeSet<i32> = revoked
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|tp| tp.partition)
        .collect();
    assert_eq!(given_up, (0..PARTITIONS).collect());

    produce(kafka, topic).await;
    wait_for_every_record_once(&java, &seen).await;
    wait_for_commits_at_end(kafka, group, topic).await;
    let theirs = java.assignment();
    let committed = java.committed(Duration::from_secs(30)).unwrap();
    assert_eq!(
        committed,
        theirs
            .iter()
            .map(|p| (*p, PER_PARTITION))
            .collect::<Vec<_>>()
    );
    java.stop(Duration::from_secs(30)).unwrap();
    stop_polling(poller, member).await.close().await;
}
