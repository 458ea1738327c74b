//! Mixed consumer groups on the consumer group protocol (KIP-848, `group.protocol =
//! consumer`, the broker assigns) on Apache Kafka: a wasmkafka member beside the Java client
//! (`kafka-clients`, tests/java/GroupMember.java) and beside librdkafka (confluent-kafka,
//! tests/python/member.py). In each group the two members split a topic of six partitions
//! between them (as both clients and the broker's ConsumerGroupDescribe see it), every record
//! is read, each member starts a partition it was handed exactly where the other member
//! committed, and when one member leaves the other takes every partition over at the
//! leaver's commits: nothing skipped, (next to) nothing read twice.
//!
//! Records come in rounds of [`ROUND`] per partition, so round `r` is offsets
//! `r * ROUND .. (r + 1) * ROUND` of every partition: round 0 before the second member
//! joins (the first member reads and commits it alone), round 1 once the group has split,
//! round 2 once one member has left.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;
use wasmkafka::fetch::TopicPartition;
use wasmkafka::group::coordinator::find_coordinator;
use wasmkafka::group::describe::{describe_group, GroupDescription};
use wasmkafka::group::{GroupConsumer, LoggingListener};
use wasmkafka::produce::OutgoingRecord;
use wasmkafka_tests::group::{
    consumer_protocol_options, keep_polling_offsets, partitions_held, start_earliest_member,
    stop_polling, PolledOffsets,
};
use wasmkafka_tests::java::JavaMember;
use wasmkafka_tests::kafka::Kafka;
use wasmkafka_tests::librdkafka::LibrdkafkaMember;
use wasmkafka_tests::python::Script;

/// The bound on every single wait.
const WAIT: Duration = Duration::from_secs(30);
const PARTITIONS: i32 = 6;
/// Records per partition and round.
const ROUND: i64 = 20;
/// Records read more than once over a whole test, at most. Every handover here follows a
/// commit of everything read (we commit before giving a partition up and on close, both
/// other clients commit after each batch), so none are expected; the bound is loose.
const DUPLICATES: usize = ROUND as usize;

fn all_partitions() -> BTreeSet<i32> {
    (0..PARTITIONS).collect()
}

/// Every (partition, offset) of rounds `0..rounds`.
fn produced(rounds: i64) -> BTreeSet<(i32, i64)> {
    (0..PARTITIONS)
        .flat_map(|p| (0..rounds * ROUND).map(move |o| (p, o)))
        .collect()
}

fn our_member(kafka: &Kafka, group: &str, topic: &str) -> Arc<GroupConsumer> {
    Arc::new(start_earliest_member(
        kafka.client(),
        consumer_protocol_options(group, topic),
        Vec::new(),
        Arc::new(LoggingListener),
    ))
}

/// Produces round `round`: [`ROUND`] records to every partition, values `round-p-i`.
async fn produce_round(kafka: &Kafka, topic: &str, round: i64) {
    let firsts = kafka
        .produce_to_each_partition(topic, PARTITIONS, ROUND, 100, |partition, i| {
            OutgoingRecord {
                value: Some(Bytes::from(format!("{round}-{partition}-{i}"))),
                ..OutgoingRecord::default()
            }
        })
        .await
        .unwrap();
    for (partition, first) in firsts.into_iter().enumerate() {
        assert_eq!(first, round * ROUND, "{topic}/{partition}: round {round}");
    }
}

/// The group's committed offsets, as wasmkafka's OffsetFetch reads them.
async fn committed(kafka: &Kafka, group: &str, topic: &str) -> BTreeMap<i32, Option<i64>> {
    let client = kafka.client();
    let coordinator = find_coordinator(&client, group).await.unwrap();
    let partitions: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    let committed =
        wasmkafka::group::offsets::fetch_committed(&client, coordinator, group, &partitions)
            .await
            .unwrap()
            .into_iter()
            .map(|(tp, offset)| (tp.partition, offset))
            .collect();
    client.close();
    committed
}

/// Waits until the group's commit of every partition is `offset`.
async fn wait_for_commits(kafka: &Kafka, group: &str, topic: &str, offset: i64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let committed = committed(kafka, group, topic).await;
        if committed.values().all(|c| *c == Some(offset)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "commits not at {offset}: {committed:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn describe(kafka: &Kafka, group: &str) -> GroupDescription {
    let client = kafka.client();
    let coordinator = find_coordinator(&client, group).await.unwrap();
    let description = describe_group(&client, coordinator, group).await.unwrap();
    client.close();
    description
}

/// The lowest offset of each partition among `records`.
fn first_offsets(records: &[(i32, i64)]) -> BTreeMap<i32, i64> {
    let mut first = BTreeMap::new();
    for (partition, offset) in records {
        let lowest = first.entry(*partition).or_insert(*offset);
        *lowest = (*lowest).min(*offset);
    }
    first
}

/// How many of `records` repeat one before them.
fn duplicates(records: &[(i32, i64)]) -> usize {
    records.len() - records.iter().collect::<BTreeSet<_>>().len()
}

/// The other client's member, as the waits see it.
trait Peer {
    /// The partitions it holds now, by its rebalance listener.
    fn owned(&mut self) -> BTreeSet<i32>;
    /// Every (partition, offset) it read, in order.
    fn read(&mut self) -> Vec<(i32, i64)>;
    /// What it said on the side, for a failure's message.
    fn log(&self) -> String {
        String::new()
    }
}

impl Peer for JavaMember {
    fn owned(&mut self) -> BTreeSet<i32> {
        self.assignment()
    }
    fn read(&mut self) -> Vec<(i32, i64)> {
        self.records()
    }
}

/// The librdkafka member (`tests/python/member.py` with `group.protocol=consumer`).
fn librdkafka_member(kafka: &Kafka, group: &str, topic: &str) -> LibrdkafkaMember {
    // "": the broker's default assignor.
    LibrdkafkaMember::start_with_protocol(&kafka.addr(), group, topic, "", "consumer")
        .expect("the librdkafka member starts")
}

impl Peer for LibrdkafkaMember {
    fn owned(&mut self) -> BTreeSet<i32> {
        self.pump();
        self.owned.clone()
    }
    fn read(&mut self) -> Vec<(i32, i64)> {
        self.pump();
        self.records.iter().map(|(p, o, _)| (*p, *o)).collect()
    }
    fn log(&self) -> String {
        let stderr = self.script.stderr();
        let cut = stderr.len().saturating_sub(4000);
        let cut = (cut..stderr.len())
            .find(|i| stderr.is_char_boundary(*i))
            .unwrap_or(0);
        format!(
            "errors {:?}; librdkafka's last log:\n{}",
            self.errors,
            &stderr[cut..]
        )
    }
}

/// Waits until the other member alone holds every partition and has read `rounds` rounds.
async fn wait_until_peer_reads_alone(peer: &mut impl Peer, rounds: i64) {
    let expected = produced(rounds);
    let deadline = Instant::now() + WAIT;
    loop {
        let owned = peer.owned();
        let read: BTreeSet<(i32, i64)> = peer.read().into_iter().collect();
        if owned == all_partitions() && read == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "alone it holds {owned:?} and read {} of {} records\n{}",
            read.len(),
            expected.len(),
            peer.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the two members hold disjoint, non-empty shares of the topic covering it,
/// unchanged for 1.5 s (three of the broker's heartbeat intervals), and the broker's
/// ConsumerGroupDescribe says the same: a consumer-protocol group of these two members with
/// these shares. Returns (ours, theirs).
async fn wait_for_split(
    kafka: &Kafka,
    group: &str,
    member: &GroupConsumer,
    peer: &mut impl Peer,
) -> (BTreeSet<i32>, BTreeSet<i32>) {
    let deadline = Instant::now() + WAIT;
    let mut last = None;
    let mut since = Instant::now();
    let mut described = None;
    loop {
        let state = (partitions_held(member), peer.owned());
        let (mine, theirs) = &state;
        let split = !mine.is_empty()
            && !theirs.is_empty()
            && mine.is_disjoint(theirs)
            && mine.union(theirs).copied().collect::<BTreeSet<i32>>() == all_partitions();
        if !split || last.as_ref() != Some(&state) {
            last = Some(state);
            since = Instant::now();
        } else if since.elapsed() > Duration::from_millis(1500) {
            let description = describe(kafka, group).await;
            let our_id = member.identity().member_id;
            let shares: BTreeMap<bool, BTreeSet<i32>> = description
                .members
                .iter()
                .map(|m| {
                    let share = m.partitions.iter().map(|tp| tp.partition).collect();
                    (m.member_id == our_id, share)
                })
                .collect();
            if description.group_protocol == "consumer"
                && description.members.len() == 2
                && shares.get(&true) == Some(mine)
                && shares.get(&false) == Some(theirs)
            {
                return state;
            }
            described = Some(description);
        }
        assert!(
            Instant::now() < deadline,
            "no split (wasmkafka, other): {last:?}; the broker describes {described:?}\n{}",
            peer.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the two members together have read every record of `rounds` rounds, and
/// nothing else.
async fn wait_for_every_record(seen: &PolledOffsets, peer: &mut impl Peer, rounds: i64) {
    let expected = produced(rounds);
    let deadline = Instant::now() + WAIT;
    loop {
        let mut read: BTreeSet<(i32, i64)> = peer.read().into_iter().collect();
        read.extend(seen.lock().unwrap().iter().copied());
        assert!(
            read.is_subset(&expected),
            "read what nobody produced: {:?}",
            read.difference(&expected).collect::<Vec<_>>()
        );
        if read == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} records read; missing {:?}\n{}",
            read.len(),
            expected.len(),
            expected.difference(&read).take(12).collect::<Vec<_>>(),
            peer.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Each partition of `share` was first read at `offset` (where the other member's commit
/// stood), by `who`.
fn assert_started_at(who: &str, records: &[(i32, i64)], share: &BTreeSet<i32>, offset: i64) {
    let first = first_offsets(records);
    let expected: BTreeMap<i32, i64> = share.iter().map(|p| (*p, offset)).collect();
    let got: BTreeMap<i32, i64> = share
        .iter()
        .filter_map(|p| first.get(p).map(|o| (*p, *o)))
        .collect();
    assert_eq!(
        got, expected,
        "{who}: the first offset read on each partition it was handed (the commit there)"
    );
}

/// Ours and the Java client, both on the consumer protocol. We read round 0 alone and
/// commit it; the Java member joins and starts its share at our commits; round 1 is split
/// between the two; the Java member commits and leaves, and we take its share over at its
/// commits and read round 2 everywhere.
#[tokio::test]
async fn ours_and_the_java_client_share_a_consumer_protocol_group() {
    wasmkafka_tests::init_tracing();
    let started = Instant::now();
    let kafka = Kafka::shared();
    let (topic, group) = ("kip848-interop-java", "g-kip848-interop-java");
    kafka.create_topic(topic, PARTITIONS, &[]).await.unwrap();
    produce_round(kafka, topic, 0).await;

    // We alone: every partition, round 0 read and committed.
    let member = our_member(kafka, group, topic);
    let seen: PolledOffsets = Arc::default();
    let poller = keep_polling_offsets(member.clone(), seen.clone());
    let deadline = Instant::now() + WAIT;
    while seen.lock().unwrap().iter().collect::<BTreeSet<_>>().len() < produced(1).len() {
        assert!(
            Instant::now() < deadline,
            "alone we hold {:?} and read {} records",
            member.assignment(),
            seen.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(partitions_held(&member), all_partitions());
    wait_for_commits(kafka, group, topic, ROUND).await;

    // The Java member joins: the broker gives it half, which we give up first.
    let mut java =
        JavaMember::start_with_protocol(&kafka.addr(), group, topic, "range", "consumer").unwrap();
    let (mine, theirs) = wait_for_split(kafka, group, &member, &mut java).await;
    println!("java: wasmkafka {mine:?} java {theirs:?}");
    assert_eq!((mine.len(), theirs.len()), (3, 3), "the broker balances");

    produce_round(kafka, topic, 1).await;
    wait_for_every_record(&seen, &mut java, 2).await;
    // Java read our commits: its share from where we had read to, nothing of round 0.
    let java_read = java.records();
    assert_started_at("java", &java_read, &theirs, ROUND);
    assert!(java_read.iter().all(|(p, _)| theirs.contains(p)));
    let ours_read = seen.lock().unwrap().clone();
    assert!(
        ours_read
            .iter()
            .filter(|(_, o)| *o >= ROUND)
            .all(|(p, _)| mine.contains(p)),
        "we read round 1 outside our share {mine:?}"
    );
    wait_for_commits(kafka, group, topic, 2 * ROUND).await;

    // The Java member leaves (it commits first); we take its share over at its commits.
    let mark = seen.lock().unwrap().len();
    java.stop(WAIT).unwrap();
    let at_leave = committed(kafka, group, topic).await;
    for p in &theirs {
        assert_eq!(at_leave[p], Some(2 * ROUND), "java's commit of {p}");
    }
    let deadline = Instant::now() + WAIT;
    while partitions_held(&member) != all_partitions() {
        assert!(
            Instant::now() < deadline,
            "after java left we hold {:?}",
            member.assignment()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    produce_round(kafka, topic, 2).await;
    wait_for_every_record(&seen, &mut java, 3).await;
    let after: Vec<(i32, i64)> = seen.lock().unwrap()[mark..].to_vec();
    assert_started_at("wasmkafka", &after, &theirs, 2 * ROUND);
    let mut everything = java.records();
    everything.extend(seen.lock().unwrap().iter().copied());
    let twice = duplicates(&everything);
    assert!(twice <= DUPLICATES, "{twice} records read twice");

    wait_for_commits(kafka, group, topic, 3 * ROUND).await;
    let member = stop_polling(poller, member).await;
    assert!(member.close_within(Duration::from_secs(10)).await);
    let description = describe(kafka, group).await;
    assert!(description.members.is_empty(), "{description:?}");
    println!(
        "java: {} deliveries of {} records, {twice} twice, in {:?}",
        everything.len(),
        produced(3).len(),
        started.elapsed()
    );
}

/// Ours and librdkafka, both on the consumer protocol. librdkafka reads round 0 alone and
/// commits it; we join and start our share at its commits; round 1 is split between the
/// two; we commit and leave, and librdkafka takes our share over at our commits and reads
/// round 2 everywhere; both clients read the final commits.
#[tokio::test]
async fn ours_and_librdkafka_share_a_consumer_protocol_group() {
    wasmkafka_tests::init_tracing();
    let started = Instant::now();
    // Before any member starts: creating the venv blocks, and our member heartbeats on this
    // test's runtime.
    wasmkafka_tests::python::ready().await.unwrap();
    let kafka = Kafka::shared();
    let (topic, group) = ("kip848-interop-rd", "g-kip848-interop-rd");
    kafka.create_topic(topic, PARTITIONS, &[]).await.unwrap();
    produce_round(kafka, topic, 0).await;

    // librdkafka alone: every partition, round 0 read and committed.
    let mut rd = librdkafka_member(kafka, group, topic);
    wait_until_peer_reads_alone(&mut rd, 1).await;
    wait_for_commits(kafka, group, topic, ROUND).await;

    // We join: the broker gives us half, which librdkafka gives up first.
    let member = our_member(kafka, group, topic);
    let seen: PolledOffsets = Arc::default();
    let poller = keep_polling_offsets(member.clone(), seen.clone());
    let (mine, theirs) = wait_for_split(kafka, group, &member, &mut rd).await;
    println!("librdkafka: wasmkafka {mine:?} librdkafka {theirs:?}");
    assert_eq!((mine.len(), theirs.len()), (3, 3), "the broker balances");

    produce_round(kafka, topic, 1).await;
    wait_for_every_record(&seen, &mut rd, 2).await;
    // We read librdkafka's commits: our share from where it had read to.
    let ours_read = seen.lock().unwrap().clone();
    assert_started_at("wasmkafka", &ours_read, &mine, ROUND);
    assert!(ours_read.iter().all(|(p, _)| mine.contains(p)));
    assert!(
        rd.read()
            .iter()
            .filter(|(_, o)| *o >= ROUND)
            .all(|(p, _)| theirs.contains(p)),
        "librdkafka read round 1 outside its share {theirs:?}"
    );
    wait_for_commits(kafka, group, topic, 2 * ROUND).await;

    // We leave (committing first); librdkafka takes our share over at our commits.
    let mark = rd.read().len();
    let closing = stop_polling(poller, member).await;
    assert!(closing.close_within(Duration::from_secs(10)).await);
    let at_leave = committed(kafka, group, topic).await;
    for p in &mine {
        assert_eq!(at_leave[p], Some(2 * ROUND), "our commit of {p}");
    }
    let deadline = Instant::now() + WAIT;
    while rd.owned() != all_partitions() {
        assert!(
            Instant::now() < deadline,
            "after we left librdkafka holds {:?}\n{}",
            rd.owned,
            rd.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    produce_round(kafka, topic, 2).await;
    wait_for_every_record(&seen, &mut rd, 3).await;
    let after: Vec<(i32, i64)> = rd.read()[mark..].to_vec();
    assert_started_at("librdkafka", &after, &mine, 2 * ROUND);
    let mut everything = rd.read();
    everything.extend(seen.lock().unwrap().iter().copied());
    let twice = duplicates(&everything);
    assert!(twice <= DUPLICATES, "{twice} records read twice");
    assert!(rd.errors.is_empty(), "{}", rd.log());

    // librdkafka commits and leaves; both clients read every commit at the end.
    rd.script.send("stop").unwrap();
    let events = rd.script.finish(WAIT).await.unwrap();
    assert!(
        events.iter().any(|event| event["event"] == "closed"),
        "{events:?}"
    );
    assert!(
        events.iter().all(|event| event["event"] != "error"),
        "{events:?}"
    );
    let end: BTreeMap<i32, Option<i64>> = (0..PARTITIONS).map(|p| (p, Some(3 * ROUND))).collect();
    assert_eq!(committed(kafka, group, topic).await, end, "wasmkafka reads");
    let events = Script::run(
        "committed.py",
        &[&kafka.addr(), group, topic, &PARTITIONS.to_string()],
        WAIT,
    )
    .await
    .unwrap();
    let expected: Value = (0..PARTITIONS)
        .map(|p| serde_json::json!([p, 3 * ROUND]))
        .collect();
    assert_eq!(events[0]["committed"], expected, "librdkafka reads");
    let description = describe(kafka, group).await;
    assert!(description.members.is_empty(), "{description:?}");
    println!(
        "librdkafka: {} deliveries of {} records, {twice} twice, in {:?}",
        everything.len(),
        produced(3).len(),
        started.elapsed()
    );
}
