//! Group membership against a scripted coordinator on the fault broker: the error codes a
//! real broker does not produce on cue, each handled the way the Java client does.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ApiKey;
use wasmkafka::client::Client;
use wasmkafka::fetch::{FetchOptions, TopicPartition};
use wasmkafka::group::{
    Assignor, Builtin, GroupConsumer, GroupError, GroupOptions, RebalanceListener,
};
use wasmkafka::net::PoolOptions;
use wasmkafka::policy::ResetPolicySpec;
use wasmkafka_tests::fault_broker::FaultCluster;
use wasmkafka_tests::fault_group::ScriptedCoordinator;
use wasmkafka_tests::fault_log::ScriptedLog;

const WAIT: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Events(Mutex<Vec<String>>);

impl RebalanceListener for Events {
    fn on_assigned(&self, partitions: &[TopicPartition]) {
        self.0
            .lock()
            .unwrap()
            .push(format!("assigned {}", partitions.len()));
    }
    fn on_revoked(&self, partitions: &[TopicPartition]) {
        self.0
            .lock()
            .unwrap()
            .push(format!("revoked {}", partitions.len()));
    }
    fn on_lost(&self, partitions: &[TopicPartition]) {
        self.0
            .lock()
            .unwrap()
            .push(format!("lost {}", partitions.len()));
    }
}

impl Events {
    fn list(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

struct Harness {
    _cluster: FaultCluster,
    coordinator: ScriptedCoordinator,
    log: ScriptedLog,
    events: Arc<Events>,
    member: GroupConsumer,
}

async fn harness(instance_id: Option<&str>, assignors: Vec<Builtin>) -> Harness {
    harness_with(
        instance_id,
        assignors.into_iter().map(Builtin::into_assignor).collect(),
    )
    .await
}

async fn harness_with(instance_id: Option<&str>, assignors: Vec<Arc<dyn Assignor>>) -> Harness {
    wasmkafka_tests::init_tracing();
    let cluster = FaultCluster::start(1).await.unwrap();
    cluster.add_topic("t", &[1, 1]);
    let log = ScriptedLog::install(&cluster);
    log.append("t", 0, 10, |o| o);
    log.append("t", 1, 10, |o| o);
    let coordinator = ScriptedCoordinator::install(&cluster);
    let events = Arc::new(Events::default());
    let client = Client::new(
        vec![cluster.addr(1)],
        PoolOptions {
            reconnect_backoff: Duration::from_millis(10),
            reconnect_backoff_max: Duration::from_millis(50),
            ..PoolOptions::default()
        },
    );
    let member = GroupConsumer::start(
        client,
        GroupOptions {
            instance_id: instance_id.map(str::to_string),
            heartbeat_interval: Duration::from_millis(50),
            auto_commit_interval: None,
            ..GroupOptions::new("g", vec!["t".to_string()])
        },
        FetchOptions {
            max_wait: Duration::from_millis(50),
            retry_backoff: Duration::from_millis(10),
            retry_backoff_max: Duration::from_millis(50),
            ..FetchOptions::default()
        },
        ResetPolicySpec::Earliest.into_policy(),
        assignors,
        events.clone(),
    );
    Harness {
        _cluster: cluster,
        coordinator,
        log,
        events,
        member,
    }
}

async fn until(what: &str, condition: impl Fn() -> bool, state: impl Fn() -> String) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {}",
            state()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn one_join_carries_every_assignor_and_member_id_required_is_answered() {
    let h = harness(
        None,
        vec![Builtin::RoundRobin, Builtin::Range, Builtin::Sticky],
    )
    .await;
    assert!(h.member.wait_for_assignment(WAIT).await);
    let joins = h.coordinator.joins();
    assert_eq!(joins.len(), 2, "{joins:?}");
    assert_eq!(joins[0].member_id, "");
    assert_eq!(
        joins[1].member_id, "member-1",
        "rejoined with the id the broker gave"
    );
    for join in &joins {
        assert_eq!(join.protocols, ["roundrobin", "range", "sticky"]);
    }
    assert_eq!(h.member.assignment().len(), 2);
    assert_eq!(h.events.list(), ["assigned 2"]);
}

#[tokio::test]
async fn rebalance_in_progress_rejoins_and_commits_what_was_handed_out() {
    let h = harness(None, vec![Builtin::Range]).await;
    h.coordinator.set_committed("t", 1, 4);
    assert!(h.member.wait_for_assignment(WAIT).await);
    // Read t/0 0..10 and t/1 4..10 (from the committed offset).
    let mut records = Vec::new();
    let deadline = Instant::now() + WAIT;
    while records.len() < 16 {
        assert!(Instant::now() < deadline, "{} records", records.len());
        records.extend(h.member.poll(100, Duration::from_millis(50)).await.unwrap());
    }
    let t1: Vec<i64> = records
        .iter()
        .filter(|r| r.partition == 1)
        .map(|r| r.offset)
        .collect();
    assert_eq!(t1, (4..10).collect::<Vec<_>>());
    let generation = h.member.identity().generation;
    h.coordinator
        .fail_next(ApiKey::Heartbeat, ResponseError::RebalanceInProgress);
    assert!(h
        .member
        .wait_for_generation(generation, WAIT)
        .await
        .is_some());
    // Eager: everything was revoked (with a commit of the positions) and assigned again.
    until(
        "the rejoin",
        || h.events.list() == ["assigned 2", "revoked 2", "assigned 2"],
        || format!("{:?}", h.events.list()),
    )
    .await;
    let mut commits = h.coordinator.commits();
    commits.sort();
    assert_eq!(commits, [("t".into(), 0, 10), ("t".into(), 1, 10)]);
    assert_eq!(h.coordinator.joins().last().unwrap().member_id, "member-1");
}

#[tokio::test]
async fn unknown_member_id_loses_the_partitions_and_joins_as_a_new_member() {
    let h = harness(None, vec![Builtin::Range]).await;
    assert!(h.member.wait_for_assignment(WAIT).await);
    h.coordinator
        .fail_next(ApiKey::Heartbeat, ResponseError::UnknownMemberId);
    until(
        "the partitions to come back",
        || h.events.list() == ["assigned 2", "lost 2", "assigned 2"],
        || format!("{:?} {:?}", h.events.list(), h.coordinator.joins()),
    )
    .await;
    let joins = h.coordinator.joins();
    // member-1 joins, loses its id, joins with an empty id and gets a new one.
    let ids: Vec<&str> = joins.iter().map(|j| j.member_id.as_str()).collect();
    assert_eq!(ids, ["", "member-1", "", "member-2"]);
    assert!(
        h.coordinator.commits().is_empty(),
        "lost partitions are not committed"
    );
}

#[tokio::test]
async fn illegal_generation_loses_the_partitions_and_rejoins_with_the_same_id() {
    let h = harness(None, vec![Builtin::Range]).await;
    assert!(h.member.wait_for_assignment(WAIT).await);
    h.coordinator
        .fail_next(ApiKey::Heartbeat, ResponseError::IllegalGeneration);
    until(
        "the partitions to come back",
        || h.events.list() == ["assigned 2", "lost 2", "assigned 2"],
        || format!("{:?} {:?}", h.events.list(), h.coordinator.joins()),
    )
    .await;
    let ids: Vec<String> = h
        .coordinator
        .joins()
        .iter()
        .map(|j| j.member_id.clone())
        .collect();
    assert_eq!(ids, ["", "member-1", "member-1"]);
}

#[tokio::test]
async fn a_fenced_static_member_stops_with_a_clear_error() {
    let h = harness(Some("host-7"), vec![Builtin::Range]).await;
    assert!(h.member.wait_for_assignment(WAIT).await);
    let joins = h.coordinator.joins();
    assert_eq!(joins[0].instance_id.as_deref(), Some("host-7"));
    assert_eq!(joins.len(), 1, "static members get their id at once");
    h.coordinator
        .fail_next(ApiKey::Heartbeat, ResponseError::FencedInstanceId);
    let deadline = Instant::now() + WAIT;
    let error = loop {
        assert!(Instant::now() < deadline, "no fencing error");
        match h.member.poll(10, Duration::from_millis(50)).await {
            Ok(_) => {}
            Err(error) => break error,
        }
    };
    assert!(matches!(error, GroupError::Fenced { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("host-7") && message.contains("group_instance_id"),
        "{message}"
    );
    until(
        "the partitions to be dropped",
        || h.events.list().last().map(String::as_str) == Some("lost 2"),
        || format!("{:?}", h.events.list()),
    )
    .await;
    // A static member that closes does not send LeaveGroup.
    h.member.close().await;
    assert_eq!(h.coordinator.leaves(), 0);
}

#[tokio::test]
async fn not_coordinator_finds_the_coordinator_again() {
    let h = harness(None, vec![Builtin::Range]).await;
    h.coordinator
        .fail_next(ApiKey::JoinGroup, ResponseError::NotCoordinator);
    assert!(h.member.wait_for_assignment(WAIT).await);
    assert!(h.coordinator.find_coordinator_requests() >= 2);
    // Heartbeats flow once the member is stable.
    let before = h.coordinator.heartbeats();
    until(
        "heartbeats",
        || h.coordinator.heartbeats() >= before + 3,
        || h.coordinator.heartbeats().to_string(),
    )
    .await;
    let _ = &h.log;
}

#[tokio::test]
async fn close_commits_and_leaves() {
    let h = harness(None, vec![Builtin::Range]).await;
    assert!(h.member.wait_for_assignment(WAIT).await);
    let mut records = Vec::new();
    let deadline = Instant::now() + WAIT;
    while records.len() < 5 {
        assert!(Instant::now() < deadline);
        records.extend(
            h.member
                .poll(5 - records.len(), Duration::from_millis(50))
                .await
                .unwrap(),
        );
    }
    let handed: Vec<(i32, i64)> = records
        .iter()
        .map(|r| (r.partition, r.offset + 1))
        .collect();
    let coordinator = h.coordinator.clone();
    h.member.close().await;
    assert_eq!(coordinator.leaves(), 1);
    // What was committed is exactly what was handed out: nothing from the buffer beyond it
    // (a partition nothing was read from commits where it starts, 0).
    let commits = coordinator.commits();
    assert!(!commits.is_empty());
    for (topic, partition, offset) in commits {
        assert_eq!(topic, "t");
        let next_to_hand = handed
            .iter()
            .filter(|(p, _)| *p == partition)
            .map(|(_, o)| *o)
            .max()
            .unwrap_or(0);
        assert_eq!(offset, next_to_hand, "partition {partition}");
    }
}

#[tokio::test]
async fn a_plugin_assignor_with_an_invalid_answer_falls_back() {
    use wasmkafka::plugin::{PluginLimits, PluginRuntime, WasmAssignor};
    let runtime = PluginRuntime::new(PluginLimits::default(), None).unwrap();
    let invalid = WasmAssignor::load(
        &runtime,
        &wasmkafka_tests::plugins::plugin("hostile-invalid"),
    )
    .unwrap()
    .with_settings(vec![("mode".into(), "unknown-member".into())]);
    let h = harness_with(None, vec![Arc::new(invalid)]).await;
    // The leader's plugin answers nonsense; validation refuses it and range assigns instead.
    assert!(h.member.wait_for_assignment(WAIT).await);
    assert_eq!(h.member.assignment().len(), 2);
    assert_eq!(h.coordinator.joins()[0].protocols, ["invalid"]);
}
