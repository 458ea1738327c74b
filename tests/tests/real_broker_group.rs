//! Consumer groups against Apache Kafka (one shared broker per test binary; each test has its
//! own topic and group): members share a topic and hand partitions over when one leaves,
//! resume after their commits, keep heartbeating through long polls, leave when they stop
//! polling; a cooperative join revokes exactly the partitions that move and an eager one
//! everything; a static member comes back without a rebalance; a Wasm assignor runs a group.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use wasmkafka::fetch::{FetchOptions, TopicPartition};
use wasmkafka::group::{Builtin, GroupConsumer, GroupOptions, LoggingListener, RebalanceListener};
use wasmkafka::policy::ResetPolicySpec;
use wasmkafka::produce::OutgoingRecord;
use wasmkafka_tests::group::{close_all, start_earliest_member};
use wasmkafka_tests::kafka::Kafka;

const WAIT: Duration = Duration::from_secs(60);

fn options(group: &str, topic: &str) -> GroupOptions {
    GroupOptions {
        session_timeout: Duration::from_secs(10),
        rebalance_timeout: Duration::from_secs(10),
        heartbeat_interval: Duration::from_millis(300),
        auto_commit_interval: Some(Duration::from_millis(200)),
        ..GroupOptions::new(group, vec![topic.to_string()])
    }
}

fn member(
    options: GroupOptions,
    assignor: Builtin,
    listener: Arc<dyn RebalanceListener>,
) -> GroupConsumer {
    start_earliest_member(
        Kafka::shared().client(),
        options,
        vec![assignor.into_assignor()],
        listener,
    )
}

/// A topic of the shared broker.
async fn topic(name: &str, partitions: i32) {
    Kafka::shared()
        .create_topic(name, partitions, &[])
        .await
        .unwrap();
}

async fn produce(topic: &str, partitions: i32, per_partition: usize, tag: &str) {
    Kafka::shared()
        .produce_tagged(topic, partitions, per_partition, tag)
        .await
        .unwrap();
}

/// Produces one batch.
async fn produce_batch(
    client: &wasmkafka::client::Client,
    topic: &str,
    partition: i32,
    records: &[OutgoingRecord],
) {
    wasmkafka::produce::produce_batch(
        client,
        topic,
        partition,
        records,
        kafka_protocol::records::Compression::None,
    )
    .await
    .unwrap_or_else(|error| panic!("producing to {topic}/{partition}: {error}"));
}

type Seen = Arc<Mutex<Vec<(usize, i32, i64)>>>;

/// Polls `member` in a task, recording (member index, partition, offset).
fn keep_polling(
    member: Arc<GroupConsumer>,
    index: usize,
    seen: Seen,
) -> tokio::task::JoinHandle<()> {
    wasmkafka_tests::group::keep_polling(member, format!("member {index}"), seen, move |r| {
        (index, r.partition, r.offset)
    })
}

/// Waits until the members' assignments are disjoint and cover `partitions`.
async fn wait_for_cover(members: &[&GroupConsumer], partitions: i32) {
    let deadline = Instant::now() + WAIT;
    loop {
        let shares: Vec<BTreeSet<TopicPartition>> =
            members.iter().map(|m| m.assignment()).collect();
        let total: usize = shares.iter().map(BTreeSet::len).sum();
        let union: BTreeSet<&TopicPartition> = shares.iter().flatten().collect();
        if total == partitions as usize
            && union.len() == partitions as usize
            && shares.iter().all(|s| !s.is_empty())
        {
            return;
        }
        assert!(Instant::now() < deadline, "no stable cover: {shares:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the members settle over `partitions` (see [`wasmkafka_tests::group::settle`]).
async fn settle(members: &[Arc<GroupConsumer>], partitions: i32) {
    wasmkafka_tests::group::settle(members, partitions as usize, WAIT)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
}

async fn wait_for_records(
    seen: &Seen,
    expected: &BTreeSet<(i32, i64)>,
    members: &[Arc<GroupConsumer>],
) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got: BTreeSet<(i32, i64)> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, p, o)| (*p, *o))
            .collect();
        if expected.is_subset(&got) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "missing {} records; members: {:#?}",
            expected.difference(&got).count(),
            members
                .iter()
                .map(|m| (
                    m.assignment(),
                    m.consumer().assignment(),
                    m.consumer().stats()
                ))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn three_members_share_six_partitions_and_hand_over_when_one_leaves() {
    wasmkafka_tests::init_tracing();
    topic("shared", 6).await;
    produce("shared", 6, 50, "a").await;

    let seen: Seen = Arc::default();
    let members: Vec<Arc<GroupConsumer>> = (0..3)
        .map(|_| {
            Arc::new(member(
                options("g-share", "shared"),
                Builtin::Range,
                Arc::new(LoggingListener),
            ))
        })
        .collect();
    let pollers: Vec<_> = members
        .iter()
        .enumerate()
        .map(|(i, m)| keep_polling(m.clone(), i, seen.clone()))
        .collect();
    wait_for_cover(&members.iter().map(|m| m.as_ref()).collect::<Vec<_>>(), 6).await;
    let expected: BTreeSet<(i32, i64)> =
        (0..6).flat_map(|p| (0..50).map(move |o| (p, o))).collect();
    wait_for_records(&seen, &expected, &members).await;

    // Member 2 leaves while more records arrive: members 0 and 1 take over its partitions.
    let mut pollers = pollers;
    let poller = pollers.pop().unwrap();
    poller.abort();
    let _ = poller.await;
    let mut members = members;
    let leaving_member = Arc::try_unwrap(members.pop().unwrap())
        .unwrap_or_else(|_| panic!("member 2 is still shared"));
    let leaving = leaving_member.assignment();
    leaving_member.close().await;
    produce("shared", 6, 50, "b").await;
    let expected: BTreeSet<(i32, i64)> =
        (0..6).flat_map(|p| (0..100).map(move |o| (p, o))).collect();
    wait_for_records(&seen, &expected, &[]).await;
    let after_leave: BTreeSet<i32> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(m, _, o)| *m != 2 && *o >= 50)
        .map(|(_, p, _)| *p)
        .collect();
    for tp in &leaving {
        assert!(
            after_leave.contains(&tp.partition),
            "{tp} was not taken over"
        );
    }
    // Duplicates come only from the uncommitted window.
    let mut counts: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    for (_, p, o) in seen.lock().unwrap().iter() {
        *counts.entry((*p, *o)).or_default() += 1;
    }
    let duplicates = counts.values().filter(|c| **c > 1).count();
    println!("records seen twice: {duplicates} of {}", counts.len());
    close_all(members, pollers).await;
}

#[tokio::test]
async fn a_restarted_member_resumes_after_its_last_commit() {
    wasmkafka_tests::init_tracing();
    topic("resume", 1).await;
    produce("resume", 1, 100, "r").await;

    let first = member(
        GroupOptions {
            auto_commit_interval: None,
            ..options("g-resume", "resume")
        },
        Builtin::Range,
        Arc::new(LoggingListener),
    );
    assert!(first.wait_for_assignment(WAIT).await);
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    while got.len() < 40 {
        assert!(Instant::now() < deadline);
        got.extend(
            first
                .poll(40 - got.len(), Duration::from_millis(200))
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        got.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (0..40).collect::<Vec<_>>()
    );
    // An async commit, awaited: the positions were read when it started.
    first.commit_async().await.unwrap().unwrap();
    let client = Kafka::shared().client();
    let coordinator = wasmkafka::group::coordinator::find_coordinator(&client, "g-resume")
        .await
        .unwrap();
    let tp = TopicPartition::new("resume", 0);
    let committed = wasmkafka::group::offsets::fetch_committed(
        &client,
        coordinator,
        "g-resume",
        std::slice::from_ref(&tp),
    )
    .await
    .unwrap();
    assert_eq!(committed[&tp], Some(40), "committed before close");
    first.close().await;

    let second = member(
        options("g-resume", "resume"),
        Builtin::Range,
        Arc::new(LoggingListener),
    );
    let mut rest = Vec::new();
    let deadline = Instant::now() + WAIT;
    while rest.len() < 60 {
        assert!(Instant::now() < deadline, "got {} of 60", rest.len());
        rest.extend(second.poll(100, Duration::from_millis(200)).await.unwrap());
    }
    assert_eq!(
        rest.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (40..100).collect::<Vec<_>>()
    );
    second.close().await;
}

/// Records what a member's listener hears.
#[derive(Default)]
struct Recorder {
    assigned: Mutex<Vec<TopicPartition>>,
    revoked: Mutex<Vec<TopicPartition>>,
    lost: Mutex<Vec<TopicPartition>>,
}

impl Recorder {
    fn assigned(&self) -> BTreeSet<TopicPartition> {
        self.assigned.lock().unwrap().iter().cloned().collect()
    }
    fn revoked(&self) -> BTreeSet<TopicPartition> {
        self.revoked.lock().unwrap().iter().cloned().collect()
    }
    fn lost(&self) -> BTreeSet<TopicPartition> {
        self.lost.lock().unwrap().iter().cloned().collect()
    }
    /// Every event so far, for a failure message.
    fn events(&self) -> String {
        format!(
            "assigned {:?} revoked {:?} lost {:?}",
            self.assigned.lock().unwrap(),
            self.revoked.lock().unwrap(),
            self.lost.lock().unwrap()
        )
    }
    fn clear(&self) {
        self.assigned.lock().unwrap().clear();
        self.revoked.lock().unwrap().clear();
        self.lost.lock().unwrap().clear();
    }
}

impl RebalanceListener for Recorder {
    fn on_assigned(&self, partitions: &[TopicPartition]) {
        self.assigned.lock().unwrap().extend_from_slice(partitions);
    }
    fn on_revoked(&self, partitions: &[TopicPartition]) {
        self.revoked.lock().unwrap().extend_from_slice(partitions);
    }
    fn on_lost(&self, partitions: &[TopicPartition]) {
        self.lost.lock().unwrap().extend_from_slice(partitions);
    }
}

/// What one member's listener heard.
#[derive(Debug)]
struct Heard {
    assigned: BTreeSet<TopicPartition>,
    revoked: BTreeSet<TopicPartition>,
    lost: BTreeSet<TopicPartition>,
}

/// What a fourth member's join did to a settled group of three.
struct FourthJoin {
    /// The shares of members 0-2 before the join.
    before: Vec<BTreeSet<TopicPartition>>,
    /// The shares of members 0-3 once the group settled again.
    after: Vec<BTreeSet<TopicPartition>>,
    /// What each member's listener heard from the join until the group settled.
    heard: Vec<Heard>,
    /// How many generations the join took.
    generations: i32,
}

/// Three members settle on an 8-partition topic (3, 3 and 2 partitions), then a fourth joins
/// and the group settles again (2 each); every record is read.
async fn three_members_then_a_fourth(assignor: Builtin, topic_name: &str) -> FourthJoin {
    wasmkafka_tests::init_tracing();
    topic(topic_name, 8).await;
    produce(topic_name, 8, 20, "j").await;
    let group = format!("g-{topic_name}");
    let seen: Seen = Arc::default();
    let recorders: Vec<Arc<Recorder>> = (0..4).map(|_| Arc::default()).collect();
    let start = |i: usize| {
        Arc::new(member(
            options(&group, topic_name),
            assignor,
            recorders[i].clone(),
        ))
    };
    let mut members: Vec<Arc<GroupConsumer>> = (0..3).map(start).collect();
    let mut pollers: Vec<_> = members
        .iter()
        .enumerate()
        .map(|(i, m)| keep_polling(m.clone(), i, seen.clone()))
        .collect();
    settle(&members, 8).await;
    let before: Vec<_> = members.iter().map(|m| m.assignment()).collect();
    let generation = members[0].identity().generation;
    let mut sizes: Vec<usize> = before.iter().map(BTreeSet::len).collect();
    sizes.sort();
    assert_eq!(sizes, [2, 3, 3], "{before:?}");
    for recorder in &recorders {
        recorder.clear();
    }

    members.push(start(3));
    pollers.push(keep_polling(members[3].clone(), 3, seen.clone()));
    settle(&members, 8).await;
    let after: Vec<_> = members.iter().map(|m| m.assignment()).collect();
    let generations = members[0].identity().generation - generation;
    println!("{assignor:?}: before {before:?}\nafter {after:?}\n{generations} generation(s)");
    assert!(after.iter().all(|share| share.len() == 2), "{after:?}");
    let expected: BTreeSet<(i32, i64)> =
        (0..8).flat_map(|p| (0..20).map(move |o| (p, o))).collect();
    wait_for_records(&seen, &expected, &members).await;
    // Taken before closing: a member that closes revokes everything.
    let heard = recorders
        .iter()
        .map(|r| Heard {
            assigned: r.assigned(),
            revoked: r.revoked(),
            lost: r.lost(),
        })
        .collect();
    close_all(members, pollers).await;
    FourthJoin {
        before,
        after,
        heard,
        generations,
    }
}

#[tokio::test]
async fn a_cooperative_join_revokes_exactly_the_partitions_that_move() {
    let FourthJoin {
        before,
        after,
        heard,
        generations,
    } = three_members_then_a_fourth(Builtin::CooperativeSticky, "coop").await;
    for i in 0..3 {
        // Exactly the partitions that moved were revoked; the others never left the fetcher.
        let moved: BTreeSet<_> = before[i].difference(&after[i]).cloned().collect();
        assert_eq!(heard[i].revoked, moved, "member {i}: {:?}", heard[i]);
        assert!(heard[i].revoked.is_disjoint(&after[i]));
        // Sticky: the old members gain nothing, the newcomer takes what moved.
        let gained: BTreeSet<_> = after[i].difference(&before[i]).cloned().collect();
        assert_eq!(heard[i].assigned, gained, "member {i}: {:?}", heard[i]);
        assert!(heard[i].lost.is_empty(), "member {i}: {:?}", heard[i]);
    }
    // The member that had two keeps both and revokes nothing.
    let smallest = (0..3).find(|i| before[*i].len() == 2).unwrap();
    assert!(heard[smallest].revoked.is_empty());
    assert_eq!(after[smallest], before[smallest]);
    assert_eq!(heard[3].assigned, after[3]);
    assert!(heard[3].revoked.is_empty() && heard[3].lost.is_empty());
    // Kafka's join barrier: one rebalance revokes what moves, the next hands it over.
    assert_eq!(generations, 2);
}

#[tokio::test]
async fn an_eager_join_revokes_everything_from_every_member() {
    let FourthJoin {
        before,
        after,
        heard,
        generations,
    } = three_members_then_a_fourth(Builtin::Range, "eager").await;
    for i in 0..3 {
        assert_eq!(heard[i].revoked, before[i], "member {i}: {:?}", heard[i]);
        assert_eq!(heard[i].assigned, after[i], "member {i}: {:?}", heard[i]);
        assert!(heard[i].lost.is_empty(), "member {i}: {:?}", heard[i]);
    }
    assert_eq!(heard[3].assigned, after[3]);
    assert!(heard[3].revoked.is_empty() && heard[3].lost.is_empty());
    // One rebalance: every member rejoined before Kafka answered any of them.
    assert_eq!(generations, 1);
}

#[tokio::test]
async fn heartbeats_keep_a_member_in_the_group_through_long_polls() {
    wasmkafka_tests::init_tracing();
    topic("quiet", 1).await;
    let recorder = Arc::new(Recorder::default());
    // Each fetch long-polls for 5 s, longer than the 3 s session timeout.
    let member = GroupConsumer::start(
        Kafka::shared().client(),
        GroupOptions {
            session_timeout: Duration::from_secs(3),
            heartbeat_interval: Duration::from_millis(500),
            ..options("g-quiet", "quiet")
        },
        FetchOptions {
            max_wait: Duration::from_secs(5),
            ..FetchOptions::default()
        },
        ResetPolicySpec::Earliest.into_policy(),
        vec![Builtin::Range.into_assignor()],
        recorder.clone(),
    );
    assert!(member.wait_for_assignment(WAIT).await);
    let generation = member.identity().generation;
    let deadline = Instant::now() + Duration::from_secs(8);
    while Instant::now() < deadline {
        assert!(member
            .poll(10, Duration::from_millis(500))
            .await
            .unwrap()
            .is_empty());
    }
    assert_eq!(
        member.identity().generation,
        generation,
        "no rebalance happened"
    );
    assert!(recorder.lost.lock().unwrap().is_empty());
    assert!(recorder.revoked.lock().unwrap().is_empty());
    produce("quiet", 1, 1, "late").await;
    let mut records = Vec::new();
    let deadline = Instant::now() + WAIT;
    while records.is_empty() {
        assert!(Instant::now() < deadline);
        records = member.poll(10, Duration::from_millis(500)).await.unwrap();
    }
    assert_eq!(records[0].offset, 0);
    member.close().await;
}

#[tokio::test]
async fn a_member_that_stops_polling_leaves_and_its_partitions_move() {
    wasmkafka_tests::init_tracing();
    topic("stall", 4).await;
    let stalled_options = GroupOptions {
        max_poll_interval: Duration::from_secs(1),
        ..options("g-stall", "stall")
    };
    let stalled = Arc::new(member(
        stalled_options,
        Builtin::Range,
        Arc::new(LoggingListener),
    ));
    let active = Arc::new(member(
        options("g-stall", "stall"),
        Builtin::Range,
        Arc::new(LoggingListener),
    ));
    let seen: Seen = Arc::default();
    let poller = keep_polling(active.clone(), 1, seen.clone());
    // `stalled` polls once, then never again: after a second it leaves the group.
    let _ = stalled.poll(1, Duration::from_millis(10)).await;
    let deadline = Instant::now() + WAIT;
    while active.assignment().len() < 4 {
        assert!(
            Instant::now() < deadline,
            "active {:?} stalled {:?}",
            active.assignment(),
            stalled.assignment()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stalled.assignment().is_empty());
    produce("stall", 4, 5, "s").await;
    let expected: BTreeSet<(i32, i64)> = (0..4).flat_map(|p| (0..5).map(move |o| (p, o))).collect();
    wait_for_records(&seen, &expected, &[]).await;
    close_all(vec![active, stalled], vec![poller]).await;
}

#[tokio::test]
async fn churn_loses_nothing_while_records_are_produced() {
    wasmkafka_tests::init_tracing();
    topic("churn", 6).await;
    let seen: Seen = Arc::default();
    let producer = tokio::spawn(async move {
        let client = Kafka::shared().client();
        for round in 0..30 {
            for partition in 0..6 {
                let records: Vec<OutgoingRecord> = (0..5)
                    .map(|i| OutgoingRecord {
                        value: Some(Bytes::from(format!("{round}-{i}"))),
                        ..OutgoingRecord::default()
                    })
                    .collect();
                produce_batch(&client, "churn", partition, &records).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        client.close();
    });
    // Members come and go while the producer runs: 0 and 1 from the start, 2 joins, 0 leaves,
    // 3 joins, 1 leaves.
    let start = |index: usize| {
        let member = Arc::new(member(
            options("g-churn", "churn"),
            Builtin::Range,
            Arc::new(LoggingListener),
        ));
        let poller = keep_polling(member.clone(), index, seen.clone());
        (member, poller)
    };
    async fn stop((member, poller): (Arc<GroupConsumer>, tokio::task::JoinHandle<()>)) {
        close_all(vec![member], vec![poller]).await;
    }
    let m0 = start(0);
    let m1 = start(1);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let m2 = start(2);
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop(m0).await;
    let m3 = start(3);
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop(m1).await;
    producer.await.unwrap();

    let expected: BTreeSet<(i32, i64)> =
        (0..6).flat_map(|p| (0..150).map(move |o| (p, o))).collect();
    wait_for_records(&seen, &expected, &[m2.0.clone(), m3.0.clone()]).await;
    let mut counts: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    for (_, p, o) in seen.lock().unwrap().iter() {
        *counts.entry((*p, *o)).or_default() += 1;
    }
    let duplicates = counts.values().filter(|c| **c > 1).count();
    println!("churn: {} records, {duplicates} seen twice", counts.len());
    assert_eq!(counts.len(), 900);
    stop(m2).await;
    stop(m3).await;
}

#[tokio::test]
async fn a_static_member_restarting_gets_its_partitions_back_without_a_rebalance() {
    wasmkafka_tests::init_tracing();
    topic("static", 4).await;
    let static_options = |instance: &str| GroupOptions {
        instance_id: Some(instance.to_string()),
        ..options("g-static", "static")
    };
    // a joins first and leads the group; it is the one that restarts.
    let a = member(
        static_options("host-a"),
        Builtin::Range,
        Arc::new(LoggingListener),
    );
    assert!(a.wait_for_assignment(WAIT).await);
    let other_events = Arc::new(Recorder::default());
    let b = Arc::new(member(
        static_options("host-b"),
        Builtin::Range,
        other_events.clone(),
    ));
    let seen: Seen = Arc::default();
    let poller = keep_polling(b.clone(), 1, seen.clone());
    let deadline = Instant::now() + WAIT;
    loop {
        let _ = a.poll(10, Duration::from_millis(50)).await.unwrap();
        if a.assignment().len() == 2
            && b.assignment().len() == 2
            && a.identity().generation == b.identity().generation
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{:?} {:?}",
            a.assignment(),
            b.assignment()
        );
    }
    let generation = b.identity().generation;
    // Both applied that generation (the listener has heard it; `assignment` shows the
    // partitions a moment earlier).
    assert!(a.wait_for_generation(generation - 1, WAIT).await.is_some());
    assert!(b.wait_for_generation(generation - 1, WAIT).await.is_some());
    let before = a.assignment();
    let b_before = b.assignment();
    other_events.clear();
    a.close().await; // static: commits, but no LeaveGroup

    let a = member(
        static_options("host-a"),
        Builtin::Range,
        Arc::new(LoggingListener),
    );
    assert!(
        a.wait_for_assignment(WAIT).await,
        "{:?} {:?} b: {:?}",
        a.assignment(),
        a.consumer().assignment(),
        b.assignment()
    );
    assert_eq!(a.assignment(), before, "the same partitions come back");
    // KIP-345: the returning static member takes its old place in the current generation.
    assert_eq!(a.identity().generation, generation);
    // The other member heard nothing, and still nothing after several heartbeats.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(b.identity().generation, generation, "no rebalance");
    assert_eq!(b.assignment(), b_before);
    assert!(
        other_events.assigned().is_empty()
            && other_events.revoked().is_empty()
            && other_events.lost().is_empty(),
        "b heard {}",
        other_events.events()
    );
    a.close().await;
    close_all(vec![b], vec![poller]).await;
}

#[tokio::test]
async fn a_group_with_a_wasm_assignor_consumes_a_topic_end_to_end() {
    use wasmkafka::plugin::{PluginLimits, PluginRuntime, WasmAssignor};
    wasmkafka_tests::init_tracing();
    topic("weighted", 8).await;
    produce("weighted", 8, 25, "w").await;
    let runtime = PluginRuntime::new(PluginLimits::default(), None).unwrap();
    let plugin = wasmkafka_tests::plugins::plugin("assignor-weighted");
    let start = |weight: &str| {
        let assignor = WasmAssignor::load(&runtime, &plugin)
            .unwrap()
            .with_settings(vec![("weight".into(), weight.into())]);
        Arc::new(start_earliest_member(
            Kafka::shared().client(),
            options("g-wasm", "weighted"),
            vec![Arc::new(assignor)],
            Arc::new(LoggingListener),
        ))
    };
    let heavy = start("3");
    assert!(heavy.wait_for_generation(-1, WAIT).await.is_some());
    let light = start("1");
    let seen: Seen = Arc::default();
    let pollers = vec![
        keep_polling(heavy.clone(), 0, seen.clone()),
        keep_polling(light.clone(), 1, seen.clone()),
    ];
    let deadline = Instant::now() + WAIT;
    while (heavy.assignment().len(), light.assignment().len()) != (6, 2) {
        assert!(
            Instant::now() < deadline,
            "heavy {:?} light {:?}",
            heavy.assignment(),
            light.assignment()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let expected: BTreeSet<(i32, i64)> =
        (0..8).flat_map(|p| (0..25).map(move |o| (p, o))).collect();
    wait_for_records(&seen, &expected, &[]).await;
    close_all(vec![heavy, light], pollers).await;
}
