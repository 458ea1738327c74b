//! The consumer group protocol (KIP-848, `group.protocol = "consumer"`) against Apache Kafka
//! (one shared broker per test binary, its heartbeat interval 500 ms and session timeout 10 s:
//! tests/kafka/node.properties): members scale out to five and back with nothing lost and
//! every partition consumed, a member that stops polling hands its partitions on, a static
//! member comes back to its partitions, the group describes itself as a consumer group, a
//! member cut off past the session timeout is fenced, loses its partitions and rejoins under
//! its own name, and a broker-side assignor that does not exist is refused with the fix.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmkafka::fetch::{FetchOptions, TopicPartition};
use wasmkafka::group::coordinator::find_coordinator;
use wasmkafka::group::describe::describe_group;
use wasmkafka::group::{
    Fatal, GroupConsumer, GroupError, GroupOptions, GroupProtocol, LoggingListener,
    RebalanceListener,
};
use wasmkafka::policy::ResetPolicySpec;
use wasmkafka_tests::delay::{kafka_behind, DelayProxy};
use wasmkafka_tests::group::{consumer_protocol_options, start_earliest_member, stop_polling};
use wasmkafka_tests::kafka::Kafka;

const WAIT: Duration = Duration::from_secs(60);

fn member(options: GroupOptions) -> GroupConsumer {
    start_earliest_member(
        Kafka::shared().client(),
        options,
        Vec::new(),
        Arc::new(LoggingListener),
    )
}

async fn topic(name: &str, partitions: i32) {
    Kafka::shared()
        .create_topic(name, partitions, &[])
        .await
        .unwrap();
}

/// Produces `per_partition` records to each partition, values `tag-partition-i`.
async fn produce(topic: &str, partitions: i32, per_partition: usize, tag: &str) -> usize {
    produce_to(Kafka::shared(), topic, partitions, per_partition, tag).await
}

async fn produce_to(
    broker: &Kafka,
    topic: &str,
    partitions: i32,
    per_partition: usize,
    tag: &str,
) -> usize {
    broker
        .produce_tagged(topic, partitions, per_partition, tag)
        .await
        .unwrap();
    per_partition * partitions as usize
}

type Seen = Arc<Mutex<Vec<String>>>;

fn keep_polling(member: Arc<GroupConsumer>, who: &str, seen: Seen) -> tokio::task::JoinHandle<()> {
    wasmkafka_tests::group::keep_polling(member, who.to_string(), seen, |record| {
        String::from_utf8_lossy(record.value.as_deref().unwrap_or_default()).into_owned()
    })
}

/// Waits until `seen` holds `count` distinct values.
async fn wait_for_distinct(seen: &Seen, count: usize, members: &[Arc<GroupConsumer>]) {
    let deadline = Instant::now() + WAIT;
    loop {
        let distinct = seen.lock().unwrap().iter().collect::<BTreeSet<_>>().len();
        if distinct >= count {
            assert_eq!(distinct, count, "values nobody produced");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{distinct} of {count} records; members hold {:?}",
            members.iter().map(|m| m.assignment()).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn settle(members: &[Arc<GroupConsumer>], partitions: usize) {
    wasmkafka_tests::group::settle(members, partitions, WAIT)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
}

async fn stop(poller: tokio::task::JoinHandle<()>, member: Arc<GroupConsumer>) {
    let member = stop_polling(poller, member).await;
    assert!(member.close_within(Duration::from_secs(10)).await);
}

#[tokio::test]
async fn members_scale_out_to_five_and_back_with_nothing_lost() {
    wasmkafka_tests::init_tracing();
    let name = "kip848-scale";
    topic(name, 10).await;
    let mut produced = produce(name, 10, 20, "a").await;
    let seen: Seen = Arc::default();
    let mut members = Vec::new();
    let mut pollers = Vec::new();
    for index in 0..5 {
        let next = Arc::new(member(consumer_protocol_options("g-kip848-scale", name)));
        pollers.push(keep_polling(
            next.clone(),
            &format!("m{index}"),
            seen.clone(),
        ));
        members.push(next);
        settle(&members, 10).await;
        produced += produce(name, 10, 5, &format!("join{index}")).await;
        wait_for_distinct(&seen, produced, &members).await;
    }
    // Every member holds two partitions in one epoch; the broker describes a consumer group.
    for m in &members {
        assert_eq!(m.assignment().len(), 2, "{:?}", m.assignment());
    }
    let client = Kafka::shared().client();
    let coordinator = find_coordinator(&client, "g-kip848-scale").await.unwrap();
    let description = describe_group(&client, coordinator, "g-kip848-scale")
        .await
        .unwrap();
    assert_eq!(description.group_protocol, "consumer", "{description:?}");
    assert_eq!(description.members.len(), 5, "{description:?}");
    let described: BTreeSet<TopicPartition> = description
        .members
        .iter()
        .flat_map(|m| m.partitions.iter().cloned())
        .collect();
    assert_eq!(described.len(), 10, "{description:?}");
    let ids: BTreeSet<String> = members.iter().map(|m| m.identity().member_id).collect();
    let described_ids: BTreeSet<String> = description
        .members
        .iter()
        .map(|m| m.member_id.clone())
        .collect();
    assert_eq!(ids, described_ids);

    // Back to one: each leave commits first, so what was consumed is not read again by
    // the members that take over, and nothing is skipped.
    while members.len() > 1 {
        let leaving = members.pop().unwrap();
        stop(pollers.pop().unwrap(), leaving).await;
        settle(&members, 10).await;
        produced += produce(name, 10, 5, &format!("leave{}", members.len())).await;
        wait_for_distinct(&seen, produced, &members).await;
    }
    assert_eq!(members[0].assignment().len(), 10);
    let total = seen.lock().unwrap().len();
    println!("scale: {produced} records, {total} deliveries");
    stop(pollers.pop().unwrap(), members.pop().unwrap()).await;
    let after = describe_group(&client, coordinator, "g-kip848-scale")
        .await
        .unwrap();
    assert!(after.members.is_empty(), "everyone left: {after:?}");
}

#[tokio::test]
async fn a_member_that_stops_polling_leaves_and_its_partitions_move() {
    wasmkafka_tests::init_tracing();
    let name = "kip848-idle";
    topic(name, 4).await;
    let idle_options = GroupOptions {
        max_poll_interval: Duration::from_secs(2),
        ..consumer_protocol_options("g-kip848-idle", name)
    };
    let idle = Arc::new(member(idle_options));
    assert!(idle.wait_for_assignment(WAIT).await);
    let _ = idle.poll(10, Duration::from_millis(100)).await.unwrap();
    let busy = Arc::new(member(consumer_protocol_options("g-kip848-idle", name)));
    let seen: Seen = Arc::default();
    let poller = keep_polling(busy.clone(), "busy", seen.clone());
    // `idle` stops polling: after max_poll_interval it leaves and `busy` takes everything.
    let deadline = Instant::now() + WAIT;
    while busy.assignment().len() != 4 {
        assert!(
            Instant::now() < deadline,
            "busy holds {:?}",
            busy.assignment()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(idle.assignment().is_empty());
    let produced = produce(name, 4, 10, "after").await;
    wait_for_distinct(&seen, produced, std::slice::from_ref(&busy)).await;
    stop(poller, busy).await;
    let idle = Arc::try_unwrap(idle).unwrap_or_else(|_| panic!("shared"));
    idle.close().await;
}

#[tokio::test]
async fn a_static_member_restarting_gets_its_partitions_back() {
    wasmkafka_tests::init_tracing();
    let name = "kip848-static";
    topic(name, 4).await;
    let static_options = |instance: &str| GroupOptions {
        instance_id: Some(instance.to_string()),
        ..consumer_protocol_options("g-kip848-static", name)
    };
    let a = Arc::new(member(static_options("host-a")));
    let b = Arc::new(member(static_options("host-b")));
    let seen: Seen = Arc::default();
    let pa = keep_polling(a.clone(), "a", seen.clone());
    let pb = keep_polling(b.clone(), "b", seen.clone());
    settle(&[a.clone(), b.clone()], 4).await;
    let before = a.assignment();
    let b_before = b.assignment();
    let b_epoch = b.identity().generation;
    // A static member's stop leaves with epoch -2: its partitions wait for it.
    stop(pa, a).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(b.assignment(), b_before, "b took nothing while a was away");

    let a = Arc::new(member(static_options("host-a")));
    assert!(a.wait_for_assignment(WAIT).await);
    assert_eq!(a.assignment(), before, "the same partitions come back");
    assert_eq!(b.assignment(), b_before);
    assert_eq!(b.identity().generation, b_epoch, "b's epoch did not move");
    let pa = keep_polling(a.clone(), "a2", seen.clone());
    let produced = produce(name, 4, 10, "back").await;
    wait_for_distinct(&seen, produced, &[a.clone(), b.clone()]).await;
    stop(pa, a).await;
    stop(pb, b).await;
}

#[tokio::test]
async fn an_assignor_the_broker_does_not_offer_is_refused_with_the_fix() {
    wasmkafka_tests::init_tracing();
    let name = "kip848-assignor";
    topic(name, 1).await;
    let m = member(GroupOptions {
        remote_assignor: Some("fair".into()),
        ..consumer_protocol_options("g-kip848-assignor", name)
    });
    let error = tokio::time::timeout(WAIT, async {
        loop {
            if let Err(error) = m.poll(10, Duration::from_millis(200)).await {
                return error;
            }
        }
    })
    .await
    .expect("the refusal reaches poll");
    assert!(
        matches!(error, GroupError::Fatal(Fatal::Refused { .. })),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(
        text.contains("group_remote_assignor") && text.contains("uniform"),
        "{text}"
    );
    m.close().await;
}

/// Partitions lost, as the listener hears them.
#[derive(Default)]
struct Losses(Mutex<Vec<TopicPartition>>);

impl RebalanceListener for Losses {
    fn on_lost(&self, partitions: &[TopicPartition]) {
        self.0.lock().unwrap().extend_from_slice(partitions);
    }
}

/// Polls until `count` more records arrive (or fails after `WAIT`), returning their values.
async fn poll_values(member: &GroupConsumer, count: usize) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    let mut values = Vec::new();
    while values.len() < count {
        assert!(
            Instant::now() < deadline,
            "{} of {count} records",
            values.len()
        );
        let records = member.poll(100, Duration::from_millis(200)).await.unwrap();
        values.extend(
            records.iter().map(|r| {
                String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned()
            }),
        );
    }
    values
}

#[tokio::test]
async fn a_member_cut_off_past_the_session_timeout_is_fenced_and_rejoins_under_its_own_name() {
    wasmkafka_tests::init_tracing();
    // Every connection after the first metadata answer crosses the proxy.
    let proxy = DelayProxy::listen().await.unwrap();
    let broker = kafka_behind(&proxy).await.unwrap();
    let name = "kip848-fenced";
    broker.create_topic(name, 2, &[]).await.unwrap();
    let first = produce_to(&broker, name, 2, 50, "before").await;
    let losses = Arc::new(Losses::default());
    let member = start_earliest_member(
        broker.client(),
        consumer_protocol_options("g-kip848-fenced", name),
        Vec::new(),
        losses.clone(),
    );
    assert_eq!(poll_values(&member, first).await.len(), first);
    // Done with them; let an auto-commit (every 200 ms) cover them.
    for _ in 0..10 {
        assert!(member
            .poll(100, Duration::from_millis(100))
            .await
            .unwrap()
            .is_empty());
    }
    let before = member.identity();
    assert!(before.generation > 0, "{before:?}");

    // Cut the member off for longer than the broker's session timeout (10 s): its next beat
    // reaches the broker 12 s after it was sent, when the member is no longer in the group.
    proxy.set_one_way_delay(Duration::from_secs(12));
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.set_one_way_delay(Duration::ZERO);
    let deadline = Instant::now() + WAIT;
    while losses.0.lock().unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "never fenced");
        let records = member.poll(100, Duration::from_millis(200)).await.unwrap();
        assert!(records.is_empty(), "nothing new was produced");
    }
    assert!(member.wait_for_assignment(WAIT).await);
    let after = member.identity();
    assert_eq!(
        after.member_id, before.member_id,
        "the member keeps its name"
    );
    assert!(after.generation > 0);
    assert_eq!(member.assignment().len(), 2);

    // It goes on from the group's commits: what it had finished is not read again, what
    // comes next is read.
    let next = produce_to(&broker, name, 2, 20, "after").await;
    let values = poll_values(&member, next).await;
    assert!(
        values.iter().all(|v| v.starts_with("after-")),
        "read again after the fence: {values:?}"
    );
    member.close().await;
}

#[tokio::test]
async fn a_static_member_that_crashed_is_replaced_once_its_session_ends() {
    wasmkafka_tests::init_tracing();
    let name = "kip848-static-crash";
    topic(name, 2).await;
    let static_options = GroupOptions {
        instance_id: Some("host-crash".to_string()),
        ..consumer_protocol_options("g-kip848-static-crash", name)
    };
    let crashed = member(static_options.clone());
    assert!(crashed.wait_for_assignment(WAIT).await);
    // Dropped without a close: its tasks stop, nothing leaves the group (a kill -9).
    drop(crashed);
    let started = Instant::now();
    let successor = member(static_options);
    // The instance id is still taken (UNRELEASED_INSTANCE_ID, retried) until the crashed
    // member's session (10 s on the test broker) ends; then the successor gets the partitions.
    assert!(successor.wait_for_assignment(WAIT).await);
    let waited = started.elapsed();
    assert!(
        waited > Duration::from_secs(5),
        "took the instance id over after {waited:?}, while the crashed member still had it"
    );
    assert_eq!(successor.assignment().len(), 2);
    let produced = produce(name, 2, 10, "successor").await;
    let successor = Arc::new(successor);
    let seen: Seen = Arc::default();
    let poller = keep_polling(successor.clone(), "successor", seen.clone());
    wait_for_distinct(&seen, produced, std::slice::from_ref(&successor)).await;
    stop(poller, successor).await;
}

#[tokio::test]
async fn a_pattern_is_matched_by_the_broker_and_follows_a_topic_created_later() {
    use wasmkafka::group::TopicPattern;
    wasmkafka_tests::init_tracing();
    topic("kip848-pattern-a", 2).await;
    topic("kip848-patternless", 1).await;
    let mut pattern_options = consumer_protocol_options("g-kip848-pattern", "unused");
    pattern_options.topics.clear();
    // The broker matches whole names (RE2J): no anchors needed.
    pattern_options.topic_pattern = Some(TopicPattern::new("kip848-pattern-.*").unwrap());
    let m = Arc::new(member(pattern_options));
    let seen: Seen = Arc::default();
    let poller = keep_polling(m.clone(), "pattern", seen.clone());
    let mut produced = produce("kip848-pattern-a", 2, 10, "a").await;
    produce("kip848-patternless", 1, 10, "no").await;
    wait_for_distinct(&seen, produced, std::slice::from_ref(&m)).await;
    // A topic created now is matched without a restart.
    topic("kip848-pattern-b", 3).await;
    let deadline = Instant::now() + WAIT;
    while m.assignment().len() != 5 {
        assert!(Instant::now() < deadline, "holds {:?}", m.assignment());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    produced += produce("kip848-pattern-b", 3, 10, "b").await;
    wait_for_distinct(&seen, produced, std::slice::from_ref(&m)).await;
    assert!(
        seen.lock().unwrap().iter().all(|v| !v.starts_with("no-")),
        "a topic the pattern does not match was read"
    );
    stop(poller, m).await;
}

#[tokio::test]
async fn classic_and_consumer_members_share_a_group_while_it_migrates() {
    wasmkafka_tests::init_tracing();
    let name = "kip848-mixed";
    topic(name, 4).await;
    let classic_options = GroupOptions {
        protocol: GroupProtocol::Classic,
        heartbeat_interval: Duration::from_millis(300),
        ..consumer_protocol_options("g-kip848-mixed", name)
    };
    let classic = Arc::new(GroupConsumer::start(
        Kafka::shared().client(),
        classic_options,
        FetchOptions::default(),
        ResetPolicySpec::Earliest.into_policy(),
        vec![
            wasmkafka::group::Builtin::CooperativeSticky.into_assignor(),
            wasmkafka::group::Builtin::Range.into_assignor(),
        ],
        Arc::new(LoggingListener),
    ));
    let seen: Seen = Arc::default();
    let pc = keep_polling(classic.clone(), "classic", seen.clone());
    assert!(classic.wait_for_assignment(WAIT).await);
    let consumer = Arc::new(member(consumer_protocol_options("g-kip848-mixed", name)));
    let pk = keep_polling(consumer.clone(), "consumer", seen.clone());
    let deadline = Instant::now() + WAIT;
    loop {
        let (a, b) = (classic.assignment(), consumer.assignment());
        if a.len() == 2 && b.len() == 2 && a.is_disjoint(&b) {
            break;
        }
        assert!(Instant::now() < deadline, "classic {a:?}, consumer {b:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let produced = produce(name, 4, 20, "mixed").await;
    wait_for_distinct(&seen, produced, &[classic.clone(), consumer.clone()]).await;
    let client = Kafka::shared().client();
    let coordinator = find_coordinator(&client, "g-kip848-mixed").await.unwrap();
    let description = describe_group(&client, coordinator, "g-kip848-mixed")
        .await
        .unwrap();
    assert_eq!(description.group_protocol, "consumer", "{description:?}");
    assert_eq!(description.members.len(), 2, "{description:?}");
    stop(pc, classic).await;
    stop(pk, consumer).await;
}
