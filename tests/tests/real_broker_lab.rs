//! The policy lab's simulation of the broker's assignors (`assign-sim --assignor
//! broker-uniform`, `broker-range`) against Apache Kafka's own (one shared broker per test
//! binary): our members form a consumer-protocol group (KIP-848) on the test broker with
//! `group.remote.assignor` set, go through the scenario the lab simulated, and what the
//! simulation predicts for a member joining — partitions per member, partitions moved,
//! partitions revoked — is what the broker does.
//!
//! What is comparable: the broker walks its members in the order of their ids (random
//! UUIDs) where the simulation has m000, m001, ...; so under `uniform` which member keeps
//! which partitions can differ, and the test compares counts and movement (which the rules fix
//! whatever the order). Under `range` static members are ordered by instance id on both sides
//! (and before dynamic ones), so with at most one dynamic member the partitions themselves
//! are compared.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmkafka::fetch::TopicPartition;
use wasmkafka::group::{GroupConsumer, GroupOptions, GroupProtocol, RebalanceListener};
use wasmkafka::lab::{simulate_broker, BrokerAssignor, Event, MemberSpec, Scenario, Spread};
use wasmkafka_policy::assign::{self, Group, Member, PartitionInfo};
use wasmkafka_tests::group::{start_earliest_member, stop_polling};
use wasmkafka_tests::kafka::Kafka;

const WAIT: Duration = Duration::from_secs(60);

/// Partitions revoked and lost, as one member's listener hears them.
#[derive(Default)]
struct Heard {
    revoked: AtomicUsize,
    lost: AtomicUsize,
}

impl RebalanceListener for Heard {
    fn on_revoked(&self, partitions: &[TopicPartition]) {
        self.revoked.fetch_add(partitions.len(), Ordering::SeqCst);
    }
    fn on_lost(&self, partitions: &[TopicPartition]) {
        self.lost.fetch_add(partitions.len(), Ordering::SeqCst);
    }
}

/// One of our consumer-protocol members, polling on a task of its own.
struct Running {
    consumer: Arc<GroupConsumer>,
    poller: tokio::task::JoinHandle<()>,
    heard: Arc<Heard>,
}

impl Running {
    fn start(group: &str, topics: &[String], assignor: &str, instance: Option<&str>) -> Running {
        let options = GroupOptions {
            protocol: GroupProtocol::Consumer,
            remote_assignor: Some(assignor.to_string()),
            instance_id: instance.map(str::to_string),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(10),
            ..GroupOptions::new(group, topics.to_vec())
        };
        let heard = Arc::new(Heard::default());
        let consumer = Arc::new(start_earliest_member(
            Kafka::shared().client(),
            options,
            Vec::new(),
            heard.clone(),
        ));
        let seen: Arc<Mutex<Vec<()>>> = Arc::default();
        let poller = wasmkafka_tests::group::keep_polling(
            consumer.clone(),
            format!("{group}/{}", instance.unwrap_or("dynamic")),
            seen,
            |_| (),
        );
        Running {
            consumer,
            poller,
            heard,
        }
    }

    fn partitions(&self) -> BTreeSet<(String, i32)> {
        self.consumer
            .assignment()
            .into_iter()
            .map(|tp| (tp.topic.to_string(), tp.partition))
            .collect()
    }

    async fn stop(self) {
        let consumer = stop_polling(self.poller, self.consumer).await;
        assert!(consumer.close_within(Duration::from_secs(10)).await);
    }
}

async fn settle(members: &[Running], partitions: usize) {
    let consumers: Vec<Arc<GroupConsumer>> = members.iter().map(|m| m.consumer.clone()).collect();
    wasmkafka_tests::group::settle(&consumers, partitions, WAIT)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
}

fn spread(members: &[Running]) -> Spread {
    let counts: Vec<usize> = members.iter().map(|m| m.partitions().len()).collect();
    Spread {
        min: *counts.iter().min().unwrap(),
        max: *counts.iter().max().unwrap(),
    }
}

/// What the first `before.len()` members had and no longer have.
fn moved(before: &[BTreeSet<(String, i32)>], members: &[Running]) -> usize {
    before
        .iter()
        .zip(members)
        .map(|(had, member)| had.difference(&member.partitions()).count())
        .sum()
}

fn heard(members: &[Running]) -> (usize, usize) {
    members.iter().fold((0, 0), |(r, l), m| {
        (
            r + m.heard.revoked.swap(0, Ordering::SeqCst),
            l + m.heard.lost.swap(0, Ordering::SeqCst),
        )
    })
}

async fn topics(names: &[&str], partitions: usize) -> Vec<String> {
    for name in names {
        Kafka::shared()
            .create_topic(name, partitions as i32, &[])
            .await
            .unwrap();
    }
    names.iter().map(|n| format!("{n}:{partitions}")).collect()
}

/// 3 members on 2 topics x 6 partitions under the broker's `uniform`, then a fourth joins: the
/// simulation says 4 each, then 3 each with 3 partitions moved and revoked (one per old
/// member), in one round; the broker does exactly that.
#[tokio::test]
async fn broker_uniform_on_the_broker_does_what_the_lab_predicts() {
    wasmkafka_tests::init_tracing();
    let names = ["lab-uniform-a", "lab-uniform-b"];
    let specs = topics(&names, 6).await;
    let mut scenario = Scenario::from_flags(3, &specs, 0, 1).unwrap();
    scenario.push_events(&["join 1"]).unwrap();
    let simulated = simulate_broker(&scenario, BrokerAssignor::Uniform).unwrap();
    let (start, join) = (&simulated.steps[0], &simulated.steps[1]);
    // What the simulation says, so a change there is seen here too.
    assert_eq!(start.balance, Spread { min: 4, max: 4 });
    assert_eq!(
        (join.balance, join.moved, join.revoked, join.rounds),
        (Spread { min: 3, max: 3 }, 3, 3, 1)
    );

    let topics: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let group = "g-lab-uniform";
    let mut members: Vec<Running> = (0..3)
        .map(|_| Running::start(group, &topics, "uniform", None))
        .collect();
    settle(&members, 12).await;
    assert_eq!(spread(&members), start.balance);
    let before: Vec<_> = members.iter().map(Running::partitions).collect();
    heard(&members);

    members.push(Running::start(group, &topics, "uniform", None));
    settle(&members, 12).await;
    assert_eq!(spread(&members), join.balance, "after the join");
    assert_eq!(moved(&before, &members), join.moved, "partitions moved");
    let (revoked, lost) = heard(&members);
    assert_eq!((revoked, lost), (join.revoked, join.lost), "revoked, lost");
    // Each old member kept all but what balance took: it gave up exactly one.
    for (had, member) in before.iter().zip(&members) {
        assert_eq!(had.difference(&member.partitions()).count(), 1);
    }
    for member in members {
        member.stop().await;
    }
}

/// The range assignor with two static members and a dynamic one, then a third static member
/// joining: static members come first by instance id (the dynamic member is last, whatever
/// its id), so the broker's ranges are predictable partition for partition. The lab's
/// simulation says 2 moved and revoked (the dynamic member's 4 of each topic); the broker
/// agrees, and every member holds exactly what `broker_range` computed.
#[tokio::test]
async fn broker_range_with_static_members_matches_partition_for_partition() {
    wasmkafka_tests::init_tracing();
    let names = ["lab-range-a", "lab-range-b"];
    let specs = topics(&names, 6).await;
    let topics: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    // The lab's scenario: m000 = host-0, m001 = host-1 (static), m002 dynamic; m003 = host-2
    // joins.
    let mut scenario = Scenario::from_flags(3, &specs, 0, 1).unwrap();
    scenario.members[0].instance_id = Some("host-0".into());
    scenario.members[1].instance_id = Some("host-1".into());
    scenario.events.push(Event::Join(vec![MemberSpec {
        id: "m003".into(),
        instance_id: Some("host-2".into()),
        topics: topics.clone(),
        ..MemberSpec::default()
    }]));
    let simulated = simulate_broker(&scenario, BrokerAssignor::Range).unwrap();
    let join = &simulated.steps[1];
    // Per topic 2, 2, 1, 1, the longer ranges to the first members of both: 4, 4, 2, 2.
    assert_eq!(
        (join.balance, join.moved, join.revoked),
        (Spread { min: 2, max: 4 }, 2, 2)
    );
    let predicted = |instances: &[Option<&str>]| {
        let group = Group {
            members: instances
                .iter()
                .enumerate()
                .map(|(i, instance)| Member {
                    member_id: format!("m{i:03}"),
                    instance_id: instance.map(str::to_string),
                    topics: topics.clone(),
                    ..Member::default()
                })
                .collect(),
            topics: topics
                .iter()
                .map(|t| {
                    let partitions = (0..6)
                        .map(|partition| PartitionInfo {
                            partition,
                            racks: Vec::new(),
                        })
                        .collect();
                    (t.clone(), partitions)
                })
                .collect(),
            settings: BTreeMap::new(),
        };
        let assignment = assign::broker_range(&group);
        (0..instances.len())
            .map(|i| {
                assignment[&format!("m{i:03}")]
                    .iter()
                    .map(|(t, p)| (t.to_string(), p))
                    .collect::<BTreeSet<_>>()
            })
            .collect::<Vec<_>>()
    };

    let group = "g-lab-range";
    let mut members = vec![
        Running::start(group, &topics, "range", Some("host-0")),
        Running::start(group, &topics, "range", Some("host-1")),
        Running::start(group, &topics, "range", None),
    ];
    settle(&members, 12).await;
    let before: Vec<_> = members.iter().map(Running::partitions).collect();
    assert_eq!(before, predicted(&[Some("host-0"), Some("host-1"), None]));
    heard(&members);

    members.push(Running::start(group, &topics, "range", Some("host-2")));
    settle(&members, 12).await;
    let after: Vec<_> = members.iter().map(Running::partitions).collect();
    assert_eq!(
        after,
        predicted(&[Some("host-0"), Some("host-1"), None, Some("host-2")])
    );
    assert_eq!(spread(&members), join.balance);
    assert_eq!(moved(&before, &members), join.moved);
    let (revoked, lost) = heard(&members);
    assert_eq!((revoked, lost), (join.revoked, join.lost));
    for member in members {
        member.stop().await;
    }
}
