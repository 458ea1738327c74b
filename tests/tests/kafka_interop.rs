//! wasmkafka beside librdkafka (confluent-kafka from PyPI in a cached venv, scripts in
//! `tests/python/`) on Apache Kafka:
//!
//! - one consumer group with a wasmkafka member and a librdkafka member, with
//!   cooperative-sticky and with range, led by either side: they agree on the protocol, split
//!   the partitions, read every record exactly once and see each other's commits;
//! - read_committed against real transactions (two transactional producers interleaved with
//!   plain records, some transactions committed, some aborted): exactly the committed and
//!   plain records, in order, positions ending at the high watermark; read_uncommitted shows
//!   the aborted records too, never a control record.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;
use wasmkafka::fetch::{
    list_offsets, Consumer, FetchOptions, IsolationLevel, OffsetSpec, TopicPartition,
};
use wasmkafka::group::{
    Assignor, AssignorError, Builtin, GroupConsumer, GroupOptions, LoggingListener,
    RebalanceProtocol,
};
use wasmkafka::policy::ResetPolicySpec;
use wasmkafka::produce::OutgoingRecord;
use wasmkafka_policy::assign::{Assignment, Group, MemberAssignment};
use wasmkafka_tests::kafka::Kafka;
use wasmkafka_tests::librdkafka::{LibrdkafkaMember, Timeline};
use wasmkafka_tests::python::Script;

const WAIT: Duration = Duration::from_secs(90);
const PARTITIONS: i32 = 6;
const PER_PARTITION: i64 = 30;

/// A built-in assignor that counts the times this member ran it as the group's leader and
/// keeps each assignment this member received, by generation.
#[derive(Debug)]
struct Watched {
    inner: Builtin,
    led: AtomicUsize,
    applied: Mutex<Vec<(i32, BTreeSet<i32>)>>,
}

impl Watched {
    fn new(inner: Builtin) -> Arc<Watched> {
        Arc::new(Watched {
            inner,
            led: AtomicUsize::new(0),
            applied: Mutex::new(Vec::new()),
        })
    }

    fn led(&self) -> usize {
        self.led.load(Ordering::SeqCst)
    }

    fn timeline(&self) -> Timeline {
        let applied = self.applied.lock().unwrap();
        applied
            .iter()
            .map(|(g, s)| (i64::from(*g), s.clone()))
            .collect()
    }
}

impl Assignor for Watched {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn protocol(&self) -> RebalanceProtocol {
        Assignor::protocol(&self.inner)
    }
    fn user_data(&self, topics: &[String]) -> Vec<u8> {
        self.inner.user_data(topics)
    }
    fn assign(&self, group: &Group) -> Result<Assignment, AssignorError> {
        self.led.fetch_add(1, Ordering::SeqCst);
        self.inner.assign(group)
    }
    fn on_assignment(&self, assignment: &MemberAssignment, generation: i32) {
        self.inner.on_assignment(assignment, generation);
        let partitions = assignment.iter().map(|(_, p)| p).collect();
        self.applied.lock().unwrap().push((generation, partitions));
    }
}

/// KIP-429 across the members' histories (what each owned once each generation was
/// applied): a partition a member gains in generation g was owned by no other member in
/// generation g - 1 (its owner revoked it one rebalance earlier).
fn check_cooperative(timelines: &[(&str, Timeline)]) {
    let owned_at = |timeline: &[(i64, BTreeSet<i32>)], generation: i64| {
        timeline
            .iter()
            .rev()
            .find(|(g, _)| *g <= generation)
            .map(|(_, owned)| owned.clone())
            .unwrap_or_default()
    };
    for (name, timeline) in timelines {
        let mut previous = BTreeSet::new();
        for (generation, owned) in timeline {
            let gained: BTreeSet<i32> = owned.difference(&previous).copied().collect();
            for (other, other_timeline) in timelines {
                if other == name {
                    continue;
                }
                let still_owned = owned_at(other_timeline, generation - 1);
                assert!(
                    gained.is_disjoint(&still_owned),
                    "{name} gained {gained:?} in generation {generation} while {other} owned \
                     {still_owned:?}: {timelines:?}"
                );
            }
            previous = owned.clone();
        }
    }
}

type Seen = Arc<Mutex<Vec<(i32, i64, String)>>>;

fn keep_polling(member: Arc<GroupConsumer>, seen: Seen) -> tokio::task::JoinHandle<()> {
    wasmkafka_tests::group::keep_polling(member, "wasmkafka member".into(), seen, |r| {
        let value = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
        (r.partition, r.offset, value)
    })
}

fn partition_set(tps: &BTreeSet<TopicPartition>) -> BTreeSet<i32> {
    tps.iter().map(|tp| tp.partition).collect()
}

async fn produce(topic: &str, partition: i32, values: Vec<String>) {
    let kafka = Kafka::shared();
    let client = kafka.client();
    let records: Vec<OutgoingRecord> = values
        .into_iter()
        .map(|value| OutgoingRecord {
            value: Some(Bytes::from(value)),
            ..OutgoingRecord::default()
        })
        .collect();
    kafka
        .produce(&client, topic, partition, &records, 100)
        .await
        .unwrap_or_else(|error| panic!("producing to {topic}/{partition}: {error:#}"));
    client.close();
}

/// Waits until the wasmkafka members and the librdkafka member (if any) hold non-empty,
/// disjoint shares that cover the topic, all in one generation, unchanged for 1.5 s; returns
/// the shares (ours in order, then theirs) and the generation.
async fn settle(
    ours: &[Arc<GroupConsumer>],
    theirs: &mut LibrdkafkaMember,
) -> (Vec<BTreeSet<i32>>, i64) {
    let all: BTreeSet<i32> = (0..PARTITIONS).collect();
    let deadline = Instant::now() + WAIT;
    let mut last = None;
    let mut since = Instant::now();
    loop {
        theirs.pump();
        let mut shares: Vec<BTreeSet<i32>> = ours
            .iter()
            .map(|m| partition_set(&m.assignment()))
            .collect();
        shares.push(theirs.owned.clone());
        let mut generations: BTreeSet<i64> = ours
            .iter()
            .map(|m| i64::from(m.identity().generation))
            .collect();
        generations.insert(theirs.joins.last().map_or(-1, |join| join.0));
        let total: usize = shares.iter().map(BTreeSet::len).sum();
        let union: BTreeSet<i32> = shares.iter().flatten().copied().collect();
        let settled = shares.iter().all(|s| !s.is_empty())
            && total == all.len()
            && union == all
            && generations.len() == 1;
        let state = (shares, generations);
        if !settled || last.as_ref() != Some(&state) {
            last = Some(state);
            since = Instant::now();
        } else if since.elapsed() > Duration::from_millis(1500) {
            let (shares, generations) = last.unwrap();
            return (shares, generations.into_iter().next().unwrap());
        }
        assert!(
            Instant::now() < deadline,
            "no settled split (wasmkafka..., librdkafka; generations): {last:?}\n{}",
            theirs.script.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One group, one topic of 6 partitions: the first member (librdkafka or wasmkafka) owns
/// everything, the other client's member joins (the first leads that rebalance and the next
/// ones), then a second wasmkafka member joins. Records are produced once the group has
/// settled, so each is read exactly once. Then librdkafka leaves and wasmkafka takes its
/// partitions over at its commits.
async fn mixed_group(strategy: Builtin, librdkafka_first: bool) {
    wasmkafka_tests::init_tracing();
    // Before any member starts: creating the venv blocks, and members heartbeat on this
    // test's runtime.
    wasmkafka_tests::python::ready().await.unwrap();
    let kafka = Kafka::shared();
    let first = if librdkafka_first { "rd" } else { "wk" };
    let topic = format!("mixed-{}-{first}", strategy.name());
    let group = format!("g-{topic}");
    kafka.create_topic(&topic, PARTITIONS, &[]).await.unwrap();
    let assignors = [Watched::new(strategy), Watched::new(strategy)];
    let seen: Seen = Arc::default();
    let start_ours = |index: usize| {
        Arc::new(GroupConsumer::start(
            kafka.client(),
            GroupOptions {
                session_timeout: Duration::from_secs(10),
                rebalance_timeout: Duration::from_secs(10),
                heartbeat_interval: Duration::from_millis(300),
                auto_commit_interval: None,
                ..GroupOptions::new(&group, vec![topic.clone()])
            },
            FetchOptions {
                max_wait: Duration::from_millis(100),
                ..FetchOptions::default()
            },
            ResetPolicySpec::Earliest.into_policy(),
            vec![assignors[index].clone() as Arc<dyn Assignor>],
            Arc::new(LoggingListener),
        ))
    };
    let all: BTreeSet<i32> = (0..PARTITIONS).collect();

    // 1. The first member alone owns everything.
    let (first_ours, mut theirs) = if librdkafka_first {
        let mut theirs = LibrdkafkaMember::start(&kafka.addr(), &group, &topic, strategy.name())
            .expect("the librdkafka member starts");
        let deadline = Instant::now() + WAIT;
        while theirs.owned != all {
            theirs.pump();
            assert!(
                Instant::now() < deadline,
                "librdkafka alone: {:?}\n{}",
                theirs.owned,
                theirs.script.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (start_ours(0), theirs)
    } else {
        let ours = start_ours(0);
        let deadline = Instant::now() + WAIT;
        while partition_set(&ours.assignment()) != all {
            assert!(
                Instant::now() < deadline,
                "wasmkafka alone: {:?}",
                ours.assignment()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (
            ours,
            LibrdkafkaMember::start(&kafka.addr(), &group, &topic, strategy.name())
                .expect("the librdkafka member starts"),
        )
    };
    let mut ours = vec![first_ours];
    let mut pollers = vec![keep_polling(ours[0].clone(), seen.clone())];

    // 2. The other client's member joins: both split the topic in one generation.
    let (two_way, generation) = settle(&ours, &mut theirs).await;
    println!(
        "{} ({first} first): wasmkafka {:?} librdkafka {:?} in generation {generation}",
        strategy.name(),
        two_way[0],
        two_way[1]
    );

    // 3. A second wasmkafka member joins, led by the same leader: with cooperative-sticky the
    // leader must read what the other client's member owns (and its generation) to keep it.
    ours.push(start_ours(1));
    pollers.push(keep_polling(ours[1].clone(), seen.clone()));
    let (shares, generation) = settle(&ours, &mut theirs).await;
    println!(
        "then wasmkafka {:?} {:?} librdkafka {:?} in generation {generation}; librdkafka's \
         joins {:?}",
        shares[0], shares[1], shares[2], theirs.joins
    );
    assert!(shares.iter().all(|share| share.len() == 2), "{shares:?}");

    // They agree on the protocol, and the first member led every rebalance.
    assert!(
        theirs.joins.iter().all(|join| join.1 == strategy.name()),
        "{:?}",
        theirs.joins
    );
    for assignor in &assignors {
        assert!(assignor.timeline().iter().any(|(g, _)| *g == generation));
    }
    let they_led = theirs.joins.iter().filter(|join| join.2).count();
    if librdkafka_first {
        assert_eq!(assignors[0].led() + assignors[1].led(), 0, "wasmkafka led");
        assert_eq!(they_led, theirs.joins.len(), "{:?}", theirs.joins);
    } else {
        assert!(assignors[0].led() > 0, "wasmkafka never led");
        assert_eq!(assignors[1].led(), 0, "the newcomer led");
        assert_eq!(they_led, 0, "librdkafka led: {:?}", theirs.joins);
    }
    if strategy == Builtin::CooperativeSticky {
        // Sticky across clients: the two members that were there keep what they keep, and no
        // partition went straight from one owner to another.
        assert!(
            shares[0].is_subset(&two_way[0]),
            "{two_way:?} -> {shares:?}"
        );
        assert!(
            shares[2].is_subset(&two_way[1]),
            "{two_way:?} -> {shares:?}"
        );
        check_cooperative(&[
            ("wasmkafka-1", assignors[0].timeline()),
            ("wasmkafka-2", assignors[1].timeline()),
            ("librdkafka", theirs.timeline.clone()),
        ]);
    }

    // 4. Records arrive only now, with the assignment settled: each is read exactly once, by
    // the member that owns its partition.
    for partition in 0..PARTITIONS {
        let values = (0..PER_PARTITION)
            .map(|i| format!("{partition}-{i}"))
            .collect();
        produce(&topic, partition, values).await;
    }
    let expected: BTreeSet<(i32, i64, String)> = (0..PARTITIONS)
        .flat_map(|p| (0..PER_PARTITION).map(move |i| (p, i, format!("{p}-{i}"))))
        .collect();
    let deadline = Instant::now() + WAIT;
    loop {
        theirs.pump();
        let read = seen.lock().unwrap().len() + theirs.records.len();
        if read >= expected.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "read {read} of {}; librdkafka {:?}\n{}",
            expected.len(),
            theirs.owned,
            theirs.script.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for member in &ours {
        member.commit().await.unwrap();
    }
    let ours_read: Vec<(i32, i64, String)> = seen.lock().unwrap().clone();
    let mut all_read: Vec<(i32, i64, String)> = ours_read.clone();
    all_read.extend(theirs.records.iter().cloned());
    let unique: BTreeSet<(i32, i64, String)> = all_read.iter().cloned().collect();
    assert_eq!(unique.len(), all_read.len(), "a record was read twice");
    assert_eq!(unique, expected);
    let our_partitions: BTreeSet<i32> = shares[0].union(&shares[1]).copied().collect();
    assert!(ours_read.iter().all(|(p, _, _)| our_partitions.contains(p)));
    assert!(theirs.records.iter().all(|(p, _, _)| shares[2].contains(p)));
    assert!(theirs.errors.is_empty(), "{:?}", theirs.errors);

    // 5. librdkafka commits and leaves; the wasmkafka members take its partitions over at its
    // commits and read nothing again.
    theirs.script.send("stop").unwrap();
    let events = theirs.script.finish(WAIT).await.unwrap();
    assert!(
        events.iter().any(|event| event["event"] == "closed"),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .all(|event| event["event"] != "records" && event["event"] != "error"),
        "after the count: {events:?}"
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let union: BTreeSet<i32> = ours
            .iter()
            .flat_map(|m| partition_set(&m.assignment()))
            .collect();
        if union == all {
            break;
        }
        assert!(Instant::now() < deadline, "wasmkafka owns {union:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for member in &ours {
        assert!(member.wait_for_assignment(WAIT).await);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        seen.lock().unwrap().len(),
        ours_read.len(),
        "wasmkafka read again what librdkafka had committed"
    );
    for member in &ours {
        let owned: Vec<TopicPartition> = member.assignment().into_iter().collect();
        let positions = member.consumer().positions(&owned);
        assert!(
            positions
                .iter()
                .all(|(_, position)| *position == PER_PARTITION),
            "{positions:?}"
        );
    }
    for poller in pollers {
        poller.abort();
        let _ = poller.await;
    }
    for member in ours {
        Arc::try_unwrap(member)
            .unwrap_or_else(|_| panic!("the member is still shared"))
            .close()
            .await;
    }

    // 6. Every partition's commit is at its end, read by both clients.
    let client = kafka.client();
    let coordinator = wasmkafka::group::coordinator::find_coordinator(&client, &group)
        .await
        .unwrap();
    let tps: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new(&topic, p))
        .collect();
    let committed = wasmkafka::group::offsets::fetch_committed(&client, coordinator, &group, &tps)
        .await
        .unwrap();
    for tp in &tps {
        assert_eq!(committed[tp], Some(PER_PARTITION), "{tp} (wasmkafka reads)");
    }
    client.close();
    let events = Script::run(
        "committed.py",
        &[&kafka.addr(), &group, &topic, &PARTITIONS.to_string()],
        WAIT,
    )
    .await
    .unwrap();
    let expected: Value = (0..PARTITIONS)
        .map(|p| serde_json::json!([p, PER_PARTITION]))
        .collect();
    assert_eq!(events[0]["committed"], expected, "librdkafka reads");
}

#[tokio::test]
async fn cooperative_sticky_group_led_by_librdkafka() {
    mixed_group(Builtin::CooperativeSticky, true).await;
}

#[tokio::test]
async fn cooperative_sticky_group_led_by_wasmkafka() {
    mixed_group(Builtin::CooperativeSticky, false).await;
}

#[tokio::test]
async fn range_group_led_by_librdkafka() {
    mixed_group(Builtin::Range, true).await;
}

#[tokio::test]
async fn range_group_led_by_wasmkafka() {
    mixed_group(Builtin::Range, false).await;
}

/// A record the transactional script wrote: (offset, value, kind).
type Written = BTreeMap<i32, Vec<(i64, String, String)>>;

/// Reads both partitions of `topic` from the start with `isolation` until every position is
/// at `ends`, and a little longer (nothing more may come); returns (offset, value) per
/// partition.
async fn read_to_the_end(
    topic: &str,
    isolation: IsolationLevel,
    ends: &BTreeMap<i32, i64>,
) -> BTreeMap<i32, Vec<(i64, String)>> {
    let consumer = Consumer::new(
        Kafka::shared().client(),
        FetchOptions {
            max_wait: Duration::from_millis(100),
            isolation,
            ..FetchOptions::default()
        },
        ResetPolicySpec::Earliest.into_policy(),
    );
    consumer.assign_topics(&[topic.to_string()]).await.unwrap();
    let tps: Vec<TopicPartition> = ends
        .keys()
        .map(|p| TopicPartition::new(topic, *p))
        .collect();
    let mut read: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    let deadline = Instant::now() + WAIT;
    let mut at_end_since: Option<Instant> = None;
    loop {
        let records = consumer
            .poll(1000, Duration::from_millis(100))
            .await
            .unwrap();
        for record in records {
            read.entry(record.partition).or_default().push((
                record.offset,
                String::from_utf8_lossy(record.value.as_deref().unwrap_or_default()).into_owned(),
            ));
        }
        let positions: BTreeMap<i32, i64> = consumer
            .positions(&tps)
            .into_iter()
            .map(|(tp, position)| (tp.partition, position))
            .collect();
        if &positions == ends {
            let since = *at_end_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_millis(500) {
                break;
            }
        } else {
            at_end_since = None;
        }
        assert!(
            Instant::now() < deadline,
            "{isolation:?}: positions {positions:?}, ends {ends:?}"
        );
    }
    consumer.close().await;
    read
}

#[tokio::test]
async fn read_committed_shows_exactly_the_committed_records_of_real_transactions() {
    wasmkafka_tests::init_tracing();
    wasmkafka_tests::python::ready().await.unwrap();
    let kafka = Kafka::shared();
    let topic = "transactions";
    kafka.create_topic(topic, 2, &[]).await.unwrap();
    let rounds = 8;
    let events = Script::run(
        "txn_produce.py",
        &[&kafka.addr(), topic, &rounds.to_string()],
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(events.last().unwrap()["event"], "done", "{events:?}");
    let mut written: Written = BTreeMap::new();
    for event in events.iter().filter(|e| e["event"] == "record") {
        written
            .entry(event["partition"].as_i64().unwrap() as i32)
            .or_default()
            .push((
                event["offset"].as_i64().unwrap(),
                event["value"].as_str().unwrap().to_string(),
                event["kind"].as_str().unwrap().to_string(),
            ));
    }
    for records in written.values_mut() {
        records.sort();
    }

    // The high watermarks; every transaction has ended, so they are also the last stable
    // offsets.
    let client = kafka.client();
    let metadata = client.refresh_metadata().await.unwrap();
    let mut ends = BTreeMap::new();
    for (isolation, partition) in [
        (IsolationLevel::ReadUncommitted, 0),
        (IsolationLevel::ReadUncommitted, 1),
        (IsolationLevel::ReadCommitted, 0),
        (IsolationLevel::ReadCommitted, 1),
    ] {
        let tp = TopicPartition::new(topic, partition);
        let leader = metadata.leader(topic, partition).unwrap();
        let answer = list_offsets(
            &client,
            leader,
            isolation,
            &[(tp.clone(), OffsetSpec::Latest)],
        )
        .await
        .unwrap();
        let end = answer[&tp].unwrap();
        assert_eq!(*ends.entry(partition).or_insert(end), end, "LSO == HW");
    }
    client.close();

    for (partition, records) in &written {
        // The log: data records and one control marker per transaction and partition, which
        // end at the high watermark.
        let data: BTreeSet<i64> = records.iter().map(|r| r.0).collect();
        let markers = ends[partition] - data.len() as i64;
        assert_eq!(
            markers,
            2 * rounds,
            "partition {partition}: one marker per transaction"
        );
        assert!(records.iter().all(|r| r.0 < ends[partition]));
        for kind in ["committed", "aborted", "plain"] {
            assert!(records.iter().any(|r| r.2 == kind), "no {kind} record");
        }
    }

    let committed = read_to_the_end(topic, IsolationLevel::ReadCommitted, &ends).await;
    let uncommitted = read_to_the_end(topic, IsolationLevel::ReadUncommitted, &ends).await;
    for (partition, records) in &written {
        let expected: Vec<(i64, String)> = records
            .iter()
            .filter(|r| r.2 != "aborted")
            .map(|r| (r.0, r.1.clone()))
            .collect();
        assert_eq!(
            committed[partition], expected,
            "read_committed, partition {partition}"
        );
        let everything: Vec<(i64, String)> = records.iter().map(|r| (r.0, r.1.clone())).collect();
        assert_eq!(
            uncommitted[partition], everything,
            "read_uncommitted, partition {partition}"
        );
    }
}
