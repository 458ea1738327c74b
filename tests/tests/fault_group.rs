//! Group membership against a scripted coordinator on the fault broker: the error codes a
//! real broker does not produce on cue, each handled the way the Java client does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ApiKey;
use wasmkafka::client::Client;
use wasmkafka::cluster::MetadataOptions;
use wasmkafka::fetch::{ConsumerError, FetchOptions};
use wasmkafka::group::{
    Assignor, Builtin, Fatal, GroupConsumer, GroupError, GroupOptions, NotCommitted, Retry,
};
use wasmkafka::net::PoolOptions;
use wasmkafka::policy::ResetPolicySpec;
use wasmkafka_tests::fault_broker::{Fault, FaultCluster};
use wasmkafka_tests::fault_group::ScriptedCoordinator;
use wasmkafka_tests::fault_log::ScriptedLog;
use wasmkafka_tests::group::{wait_until, RecordedRebalances};

const WAIT: Duration = Duration::from_secs(10);

struct Harness {
    cluster: FaultCluster,
    coordinator: ScriptedCoordinator,
    log: ScriptedLog,
    events: Arc<RecordedRebalances>,
    member: GroupConsumer,
}

async fn harness(instance_id: Option<&str>, assignors: Vec<Builtin>) -> Harness {
    harness_with(
        instance_id,
        assignors.into_iter().map(Builtin::into_assignor).collect(),
    )
    .await
}

/// Auto-commit on, with an interval no test waits for: only revokes and close commit.
const AUTO_COMMIT_UNSEEN: Option<Duration> = Some(Duration::from_secs(3600));

async fn harness_with(instance_id: Option<&str>, assignors: Vec<Arc<dyn Assignor>>) -> Harness {
    harness_full(instance_id, assignors, AUTO_COMMIT_UNSEEN).await
}

async fn harness_full(
    instance_id: Option<&str>,
    assignors: Vec<Arc<dyn Assignor>>,
    auto_commit_interval: Option<Duration>,
) -> Harness {
    harness_prepared(instance_id, assignors, auto_commit_interval, |_, _| {}).await
}

/// [`harness_full`] with `prepare` run on the cluster and the coordinator before the member
/// starts.
async fn harness_prepared(
    instance_id: Option<&str>,
    assignors: Vec<Arc<dyn Assignor>>,
    auto_commit_interval: Option<Duration>,
    prepare: impl FnOnce(&FaultCluster, &ScriptedCoordinator),
) -> Harness {
    harness_on(
        Tuning::default(),
        instance_id,
        assignors,
        auto_commit_interval,
        prepare,
    )
    .await
}

/// What a test tunes beyond [`harness_prepared`]'s defaults.
#[derive(Default, Clone, Copy)]
struct Tuning {
    /// How the member's client refreshes metadata.
    metadata: MetadataOptions,
    /// The member's session timeout (the default's when `None`).
    session_timeout: Option<Duration>,
}

/// [`harness_prepared`], tuned.
async fn harness_on(
    tuning: Tuning,
    instance_id: Option<&str>,
    assignors: Vec<Arc<dyn Assignor>>,
    auto_commit_interval: Option<Duration>,
    prepare: impl FnOnce(&FaultCluster, &ScriptedCoordinator),
) -> Harness {
    wasmkafka_tests::init_tracing();
    let cluster = FaultCluster::start(1).await.unwrap();
    cluster.add_topic("t", &[1, 1]);
    let log = ScriptedLog::install(&cluster);
    log.append("t", 0, 10, |o| o);
    log.append("t", 1, 10, |o| o);
    let coordinator = ScriptedCoordinator::install(&cluster);
    prepare(&cluster, &coordinator);
    let events = Arc::new(RecordedRebalances::default());
    let client = Client::with_metadata_options(
        vec![cluster.addr(1)],
        PoolOptions {
            reconnect_backoff: Duration::from_millis(10),
            reconnect_backoff_max: Duration::from_millis(50),
            ..PoolOptions::default()
        },
        tuning.metadata,
    );
    let defaults = GroupOptions::new("g", vec!["t".to_string()]);
    let member = GroupConsumer::start(
        client,
        GroupOptions {
            instance_id: instance_id.map(str::to_string),
            heartbeat_interval: Duration::from_millis(50),
            auto_commit_interval,
            session_timeout: tuning.session_timeout.unwrap_or(defaults.session_timeout),
            ..defaults.clone()
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
        cluster,
        coordinator,
        log,
        events,
        member,
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
    // The application is done with all of them (a poll would say the same).
    h.member.mark_processed();
    let generation = h.member.identity().generation;
    h.coordinator
        .fail_next(ApiKey::Heartbeat, ResponseError::RebalanceInProgress);
    assert!(h
        .member
        .wait_for_generation(generation, WAIT)
        .await
        .is_some());
    // Eager: everything was revoked (with a commit of the positions) and assigned again.
    wait_until(
        WAIT,
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

/// A Range member that got its assignment, whose next heartbeat is answered `error`; returns
/// once the member lost its partitions and got them back.
async fn partitions_lost_and_back_after_a_heartbeat_answered(error: ResponseError) -> Harness {
    let h = harness(None, vec![Builtin::Range]).await;
    assert!(h.member.wait_for_assignment(WAIT).await);
    h.coordinator.fail_next(ApiKey::Heartbeat, error);
    wait_until(
        WAIT,
        "the partitions to come back",
        || h.events.list() == ["assigned 2", "lost 2", "assigned 2"],
        || format!("{:?} {:?}", h.events.list(), h.coordinator.joins()),
    )
    .await;
    h
}

#[tokio::test]
async fn unknown_member_id_loses_the_partitions_and_joins_as_a_new_member() {
    let h =
        partitions_lost_and_back_after_a_heartbeat_answered(ResponseError::UnknownMemberId).await;
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
    let h =
        partitions_lost_and_back_after_a_heartbeat_answered(ResponseError::IllegalGeneration).await;
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
    assert!(
        matches!(error, GroupError::Fatal(Fatal::Fenced { .. })),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("host-7") && message.contains("group_instance_id"),
        "{message}"
    );
    wait_until(
        WAIT,
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
    wait_until(
        WAIT,
        "heartbeats",
        || h.coordinator.heartbeats() >= before + 3,
        || h.coordinator.heartbeats().to_string(),
    )
    .await;
    let _ = &h.log;
}

#[tokio::test]
async fn close_commits_what_the_application_finished_and_leaves() {
    let h = harness(None, vec![Builtin::Range]).await;
    assert!(h.member.wait_for_assignment(WAIT).await);
    // Several polls of a few records: all but the last poll's are finished.
    let mut polls: Vec<Vec<(i32, i64)>> = Vec::new();
    let deadline = Instant::now() + WAIT;
    while polls.iter().map(Vec::len).sum::<usize>() < 13 {
        assert!(Instant::now() < deadline);
        let records = h.member.poll(3, Duration::from_millis(50)).await.unwrap();
        if !records.is_empty() {
            polls.push(records.iter().map(|r| (r.partition, r.offset)).collect());
        }
    }
    let (in_hand, finished) = polls.split_last().unwrap();
    let coordinator = h.coordinator.clone();
    h.member.close().await;
    assert_eq!(coordinator.leaves(), 1);
    // Per partition: the first record still in hand, else after the last finished record
    // (a partition nothing was read from commits where it starts, 0, or nothing at all).
    let expected = |partition: i32| {
        let first_in_hand = in_hand
            .iter()
            .filter(|(p, _)| *p == partition)
            .map(|(_, o)| *o)
            .min();
        first_in_hand.unwrap_or_else(|| {
            finished
                .iter()
                .flatten()
                .filter(|(p, _)| *p == partition)
                .map(|(_, o)| o + 1)
                .max()
                .unwrap_or(0)
        })
    };
    let commits = coordinator.commits();
    assert!(!commits.is_empty());
    for (topic, partition, offset) in commits {
        assert_eq!(topic, "t");
        assert_eq!(
            offset,
            expected(partition),
            "partition {partition}: {polls:?}"
        );
    }
}

#[tokio::test]
async fn with_auto_commit_off_only_the_application_commits() {
    let h = harness_full(None, vec![Builtin::Range.into_assignor()], None).await;
    assert!(h.member.wait_for_assignment(WAIT).await);
    let mut read = 0;
    let deadline = Instant::now() + WAIT;
    while read < 20 {
        assert!(Instant::now() < deadline);
        read += h
            .member
            .poll(100, Duration::from_millis(50))
            .await
            .unwrap()
            .len();
    }
    h.member.commit().await.unwrap();
    let mut commits = h.coordinator.commits();
    commits.sort();
    assert_eq!(commits, [("t".into(), 0, 10), ("t".into(), 1, 10)]);
    // A rebalance revokes everything (eager) and a close leaves: neither commits.
    h.coordinator.set_committed("t", 0, 10);
    h.coordinator.set_committed("t", 1, 10);
    let generation = h.member.identity().generation;
    h.coordinator
        .fail_next(ApiKey::Heartbeat, ResponseError::RebalanceInProgress);
    assert!(h
        .member
        .wait_for_generation(generation, WAIT)
        .await
        .is_some());
    let coordinator = h.coordinator.clone();
    h.member.close().await;
    assert_eq!(coordinator.leaves(), 1);
    assert_eq!(
        coordinator.commits().len(),
        2,
        "{:?}",
        coordinator.commits()
    );
}

#[tokio::test]
async fn a_commit_after_the_member_lost_its_partitions_fails() {
    let h = harness_full(None, vec![Builtin::Range.into_assignor()], None).await;
    assert!(h.member.wait_for_assignment(WAIT).await);
    let deadline = Instant::now() + WAIT;
    while h
        .member
        .poll(100, Duration::from_millis(50))
        .await
        .unwrap()
        .is_empty()
    {
        assert!(Instant::now() < deadline);
    }
    h.coordinator
        .fail_next(ApiKey::Heartbeat, ResponseError::UnknownMemberId);
    wait_until(
        WAIT,
        "the partitions to be lost",
        || h.events.list().contains(&"lost 2".to_string()),
        || format!("{:?}", h.events.list()),
    )
    .await;
    let error = h.member.commit().await.unwrap_err();
    assert!(
        matches!(error, GroupError::NotCommitted(NotCommitted::Lost { .. })),
        "{error:?}"
    );
    assert!(error.to_string().contains("delivered again"), "{error}");
    assert!(h.coordinator.commits().is_empty());
}

/// Polls until `count` records came back, `max` per poll.
async fn read(h: &Harness, count: usize, max: usize) -> Vec<(i32, i64)> {
    let mut read = Vec::new();
    let deadline = Instant::now() + WAIT;
    while read.len() < count {
        assert!(
            Instant::now() < deadline,
            "{} of {count} records",
            read.len()
        );
        let records = h.member.poll(max, Duration::from_millis(50)).await.unwrap();
        read.extend(records.iter().map(|r| (r.partition, r.offset)));
    }
    read
}

fn offset_commits_sent(cluster: &FaultCluster) -> usize {
    cluster
        .seen()
        .iter()
        .filter(|r| r.api_key == ApiKey::OffsetCommit as i16)
        .count()
}

#[tokio::test]
async fn transient_commit_errors_are_retried_until_the_commit_lands() {
    let h = harness_full(None, vec![Builtin::Range.into_assignor()], None).await;
    assert!(h.member.wait_for_assignment(WAIT).await);
    read(&h, 20, 100).await;
    for error in [
        ResponseError::CoordinatorLoadInProgress,
        ResponseError::RequestTimedOut,
        ResponseError::NotCoordinator,
    ] {
        h.coordinator.fail_next(ApiKey::OffsetCommit, error);
    }
    let finds = h.coordinator.find_coordinator_requests();
    h.member.commit().await.unwrap();
    let mut commits = h.coordinator.commits();
    commits.sort();
    assert_eq!(commits, [("t".into(), 0, 10), ("t".into(), 1, 10)]);
    assert_eq!(
        offset_commits_sent(&h.cluster),
        4,
        "three failures, then the commit"
    );
    assert!(
        h.coordinator.find_coordinator_requests() > finds,
        "NOT_COORDINATOR looks the coordinator up again"
    );
}

#[tokio::test]
async fn commits_leave_in_order_and_waiting_ones_merge_with_the_newest_winning() {
    let h = harness_full(None, vec![Builtin::Range.into_assignor()], None).await;
    assert!(h.member.wait_for_assignment(WAIT).await);
    // The first commit is held by the broker; the others queue behind it.
    h.cluster.inject(
        None,
        ApiKey::OffsetCommit,
        Fault::Delay(Duration::from_millis(300)),
    );
    let mut pending = Vec::new();
    for _ in 0..20 {
        read(&h, 1, 1).await;
        pending.push(h.member.commit_async());
    }
    for commit in pending {
        commit.await.unwrap().unwrap();
    }
    let commits = h.coordinator.commits();
    for partition in [0, 1] {
        let offsets: Vec<i64> = commits
            .iter()
            .filter(|(_, p, _)| *p == partition)
            .map(|(_, _, o)| *o)
            .collect();
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "partition {partition} committed in order: {offsets:?}"
        );
        assert_eq!(offsets.last(), Some(&10), "partition {partition}");
    }
    let sent = offset_commits_sent(&h.cluster);
    assert!(
        sent < 20,
        "commits waiting together were merged: {sent} sent"
    );
}

#[tokio::test]
async fn a_commit_refused_because_the_member_is_gone_fails_alone() {
    let h = harness_full(None, vec![Builtin::Range.into_assignor()], None).await;
    assert!(h.member.wait_for_assignment(WAIT).await);
    read(&h, 20, 100).await;
    h.coordinator
        .fail_next(ApiKey::OffsetCommit, ResponseError::UnknownMemberId);
    let error = h.member.commit().await.unwrap_err();
    assert!(
        matches!(error, GroupError::Retry(Retry::MemberGone { .. })),
        "{error:?}"
    );
    assert_eq!(offset_commits_sent(&h.cluster), 1, "not retried");
    // The queue goes on: the next commit lands.
    h.member.commit().await.unwrap();
    let mut commits = h.coordinator.commits();
    commits.sort();
    assert_eq!(commits, [("t".into(), 0, 10), ("t".into(), 1, 10)]);
}

#[tokio::test]
async fn a_partition_the_broker_refuses_fails_alone_and_the_others_are_committed() {
    let h = harness_full(None, vec![Builtin::Range.into_assignor()], None).await;
    assert!(h.member.wait_for_assignment(WAIT).await);
    read(&h, 20, 100).await;
    h.coordinator
        .fail_partition_next("t", 1, ResponseError::TopicAuthorizationFailed);
    let error = h.member.commit().await.unwrap_err();
    match &error {
        GroupError::NotCommitted(NotCommitted::PartitionsRefused { partitions }) => {
            assert_eq!(partitions.len(), 1, "{error}");
            assert!(
                partitions[0].0.contains("t") && partitions[0].0.contains('1'),
                "{error}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        error
            .to_string()
            .contains("--operation Describe --operation Read --topic"),
        "{error}"
    );
    // t/0 was committed in the same request; t/1 was not, and is not retried on its own.
    assert_eq!(h.coordinator.commits(), [("t".into(), 0, 10)]);
    assert_eq!(offset_commits_sent(&h.cluster), 1);
    // The member goes on: records still come, and the next commit covers t/1.
    h.log.append("t", 0, 5, |o| o);
    read(&h, 5, 100).await;
    h.member.commit().await.unwrap();
    let mut commits = h.coordinator.commits();
    commits.sort();
    assert_eq!(
        commits,
        [
            ("t".into(), 0, 10),
            ("t".into(), 0, 15),
            ("t".into(), 1, 10)
        ]
    );
}

#[tokio::test]
async fn an_unexpected_error_on_an_auto_commit_is_retried_and_the_member_stays() {
    let h = harness_full(
        None,
        vec![Builtin::Range.into_assignor()],
        Some(Duration::from_millis(100)),
    )
    .await;
    assert!(h.member.wait_for_assignment(WAIT).await);
    for _ in 0..3 {
        h.coordinator
            .fail_next(ApiKey::OffsetCommit, ResponseError::UnknownServerError);
    }
    read(&h, 20, 100).await;
    // A poll says the application is done with what the last one returned.
    let _ = h.member.poll(100, Duration::from_millis(50)).await.unwrap();
    wait_until(
        WAIT,
        "an auto-commit past the failures",
        || h.coordinator.commits().len() == 2,
        || format!("{:?}", h.coordinator.commits()),
    )
    .await;
    assert!(
        offset_commits_sent(&h.cluster) >= 4,
        "three failed, then one landed"
    );
    // Still a member: polling works and no error reached the application.
    h.member.poll(100, Duration::from_millis(50)).await.unwrap();
    assert_eq!(h.member.stats().commit_failures, 3);
}

#[tokio::test]
async fn commits_waiting_behind_a_held_one_stay_one_offset_per_partition() {
    let h = harness_full(None, vec![Builtin::Range.into_assignor()], None).await;
    assert!(h.member.wait_for_assignment(WAIT).await);
    h.cluster.inject(
        None,
        ApiKey::OffsetCommit,
        Fault::Delay(Duration::from_millis(1000)),
    );
    read(&h, 1, 1).await;
    let held = h.member.commit_async();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The CLI commits after every output; while the coordinator holds the first commit,
    // ten thousand of them wait as one offset per partition and no reply.
    read(&h, 19, 1).await;
    for _ in 0..10_000 {
        h.member.commit_in_background();
    }
    assert_eq!(h.member.commits_waiting(), (2, 0));
    held.await.unwrap().unwrap();
    wait_until(
        WAIT,
        "the merged commit",
        || h.coordinator.commits().iter().filter(|c| c.2 == 10).count() == 2,
        || format!("{:?}", h.coordinator.commits()),
    )
    .await;
    assert_eq!(
        offset_commits_sent(&h.cluster),
        2,
        "the held one, then one merged"
    );
}

#[tokio::test]
async fn heartbeats_go_on_while_a_revocation_commits() {
    let h = harness(None, vec![Builtin::Range]).await;
    assert!(h.member.wait_for_assignment(WAIT).await);
    read(&h, 20, 100).await;
    h.member.mark_processed();
    // The rebalance's revoke commits first; the broker holds that commit for a second.
    h.cluster.inject(
        None,
        ApiKey::OffsetCommit,
        Fault::Delay(Duration::from_millis(1000)),
    );
    let generation = h.member.identity().generation;
    h.coordinator
        .fail_next(ApiKey::Heartbeat, ResponseError::RebalanceInProgress);
    wait_until(
        WAIT,
        "the revoke",
        || h.events.list().len() == 2,
        || format!("{:?}", h.events.list()),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = h.coordinator.heartbeats();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        h.coordinator.commits().is_empty(),
        "the commit is still held"
    );
    let during = h.coordinator.heartbeats() - before;
    // A 50 ms interval: about 12 in 600 ms; with the heartbeat stopped at the rebalance,
    // none.
    assert!(
        during >= 4,
        "{during} heartbeats while the revocation committed"
    );
    assert!(h
        .member
        .wait_for_generation(generation, WAIT)
        .await
        .is_some());
    let mut commits = h.coordinator.commits();
    commits.sort();
    assert_eq!(commits, [("t".into(), 0, 10), ("t".into(), 1, 10)]);
}

/// A cooperative leader that holds partitions back for a handover rejoins once its
/// assignment is applied, so the follow-up round happens even when the owner never asks for
/// one (here a member, present only in the coordinator's answers, that claims both
/// partitions at a newer generation and never revokes, rejoins or heartbeats).
#[tokio::test]
async fn a_leader_that_held_partitions_back_rejoins_until_they_are_handed_out() {
    let claims = std::collections::BTreeMap::from([("t".to_string(), vec![0, 1])]);
    let phantom = wasmkafka::group::protocol::encode_subscription(
        &["t".to_string()],
        &[],
        &claims,
        1000,
        None,
    );
    let h = harness_prepared(
        None,
        vec![Builtin::CooperativeSticky.into_assignor()],
        AUTO_COMMIT_UNSEEN,
        |_, coordinator| coordinator.add_phantom("zz-phantom", "cooperative-sticky", phantom),
    )
    .await;
    // Our member leads ("member-1" sorts first). It gets nothing (the phantom keeps one
    // partition, the other is held back for the phantom to revoke) and rejoins, round after
    // round, while the claim stands.
    wait_until(
        WAIT,
        "rounds after a held-back assignment",
        || h.coordinator.joins().len() >= 5,
        || format!("{:?}", h.coordinator.joins()),
    )
    .await;
    assert!(h.member.assignment().is_empty());
    // The claimant goes away: the next round hands both partitions out, and rounds stop.
    h.coordinator.remove_member("zz-phantom");
    assert!(h.member.wait_for_assignment(WAIT).await);
    assert_eq!(h.member.assignment().len(), 2);
    let joins = h.coordinator.joins().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        h.coordinator.joins().len(),
        joins,
        "settled: no more rounds"
    );
}

/// Another member's subscription that does not decode costs that member its share, not the
/// round: the leader assigns the others (before, the round failed and was retried forever).
#[tokio::test]
async fn an_undecodable_subscription_from_another_member_does_not_wedge_the_leader() {
    let garbage = bytes::Bytes::from_static(&[0, 3, 0xff, 0xff, 0xff, 0x7f, 1, 2]);
    let h = harness_prepared(
        None,
        vec![Builtin::Range.into_assignor()],
        AUTO_COMMIT_UNSEEN,
        |_, coordinator| coordinator.add_phantom("zz-garbled", "range", garbage),
    )
    .await;
    assert!(h.member.wait_for_assignment(WAIT).await);
    assert_eq!(
        h.member.assignment().len(),
        2,
        "the leader took every partition"
    );
    // MEMBER_ID_REQUIRED, then one round.
    assert_eq!(h.coordinator.joins().len(), 2);
}

/// What a member does after one error answer.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// Heals by itself: the member ends up with every partition and `poll` sees no error.
    Heals,
    /// Heals after looking the coordinator up again.
    FindsTheCoordinatorAgain,
    /// Stops: `poll` returns the error, whose text names the fix.
    Stops(&'static str),
}

/// The error-code matrix of the group APIs (OffsetCommit has its own tests above): each
/// error answered once, to a member that has not joined yet (FindCoordinator, JoinGroup,
/// SyncGroup) or has (Heartbeat), and what the member does about it, the way the Java
/// client classifies it.
#[tokio::test]
async fn each_group_error_code_heals_or_stops_with_the_fix() {
    use ResponseError::*;
    let matrix: &[(ApiKey, ResponseError, Outcome)] = &[
        (
            ApiKey::FindCoordinator,
            CoordinatorNotAvailable,
            Outcome::FindsTheCoordinatorAgain,
        ),
        (
            ApiKey::FindCoordinator,
            GroupAuthorizationFailed,
            Outcome::Stops("--operation Read --group"),
        ),
        (
            ApiKey::JoinGroup,
            CoordinatorNotAvailable,
            Outcome::FindsTheCoordinatorAgain,
        ),
        (
            ApiKey::JoinGroup,
            NotCoordinator,
            Outcome::FindsTheCoordinatorAgain,
        ),
        (
            ApiKey::JoinGroup,
            CoordinatorLoadInProgress,
            Outcome::FindsTheCoordinatorAgain,
        ),
        (ApiKey::JoinGroup, UnknownMemberId, Outcome::Heals),
        (ApiKey::JoinGroup, RebalanceInProgress, Outcome::Heals),
        (ApiKey::JoinGroup, RequestTimedOut, Outcome::Heals),
        (
            ApiKey::JoinGroup,
            GroupAuthorizationFailed,
            Outcome::Stops("--operation Read --group"),
        ),
        (
            ApiKey::JoinGroup,
            InconsistentGroupProtocol,
            Outcome::Stops("configure a common one"),
        ),
        (
            ApiKey::JoinGroup,
            InvalidSessionTimeout,
            Outcome::Stops("session_timeout_ms"),
        ),
        (
            ApiKey::JoinGroup,
            GroupMaxSizeReached,
            Outcome::Stops("group.max.size"),
        ),
        (ApiKey::SyncGroup, RebalanceInProgress, Outcome::Heals),
        (ApiKey::SyncGroup, UnknownMemberId, Outcome::Heals),
        (ApiKey::SyncGroup, IllegalGeneration, Outcome::Heals),
        (
            ApiKey::SyncGroup,
            NotCoordinator,
            Outcome::FindsTheCoordinatorAgain,
        ),
        (
            ApiKey::SyncGroup,
            GroupAuthorizationFailed,
            Outcome::Stops("--operation Read --group"),
        ),
        (
            ApiKey::Heartbeat,
            CoordinatorNotAvailable,
            Outcome::FindsTheCoordinatorAgain,
        ),
        (ApiKey::Heartbeat, RequestTimedOut, Outcome::Heals),
        (ApiKey::Heartbeat, RebalanceInProgress, Outcome::Heals),
        (ApiKey::Heartbeat, IllegalGeneration, Outcome::Heals),
        (
            ApiKey::Heartbeat,
            GroupAuthorizationFailed,
            Outcome::Stops("--operation Read --group"),
        ),
    ];
    for &(api, error, outcome) in matrix {
        let case = format!("{api:?} answered {error:?}");
        let h = harness_prepared(
            None,
            vec![Builtin::Range.into_assignor()],
            AUTO_COMMIT_UNSEEN,
            |_, coordinator| coordinator.fail_next(api, error),
        )
        .await;
        match outcome {
            Outcome::Heals | Outcome::FindsTheCoordinatorAgain => {
                assert!(h.member.wait_for_assignment(WAIT).await, "{case}");
                // A heartbeat error comes after the first assignment: wait for it to be
                // answered and dealt with.
                wait_until(
                    WAIT,
                    &format!("{case}: the scripted error used"),
                    || h.coordinator.heartbeats() > 2,
                    || format!("{:?}", h.events.list()),
                )
                .await;
                assert!(h.member.wait_for_assignment(WAIT).await, "{case}");
                let polled = h.member.poll(10, Duration::from_millis(50)).await;
                assert!(polled.is_ok(), "{case}: {polled:?}");
                if matches!(outcome, Outcome::FindsTheCoordinatorAgain) {
                    assert!(
                        h.coordinator.find_coordinator_requests() >= 2,
                        "{case}: the coordinator was looked up once"
                    );
                }
            }
            Outcome::Stops(fix) => {
                let deadline = Instant::now() + WAIT;
                let error = loop {
                    assert!(Instant::now() < deadline, "{case}: no error reached poll");
                    if let Err(error) = h.member.poll(10, Duration::from_millis(50)).await {
                        break error;
                    }
                };
                assert!(error.to_string().contains(fix), "{case}: {error}");
            }
        }
    }
}

/// What the member does about each Metadata answer for its subscription.
#[derive(Debug, Clone, Copy)]
enum MetadataOutcome {
    /// Gets every partition once the broker answers as usual, with no error on `poll`.
    Heals,
    /// `poll` returns the topic's refusal once, whose text names the fix, while the member
    /// stays in the group; once the broker answers as usual it gets every partition.
    Reported(&'static str),
}

/// The Metadata matrix for a member's subscription (the Java client's classification): a
/// topic that does not exist yet, one the client may not describe, an invalid name, a
/// partition without a leader, and a request answered by a closed connection. The broker
/// answers that way from the start and as usual after 1.5 s; the member looks its topics up
/// at each join and again at the metadata max age (500 ms here).
#[tokio::test]
async fn each_metadata_error_for_the_subscription_heals_or_is_reported() {
    use MetadataOutcome::*;
    #[derive(Debug, Clone, Copy)]
    enum Answer {
        TopicError(i16),
        LeaderNotAvailable,
        ConnectionClosed,
    }
    let cases = [
        (Answer::TopicError(3), Heals),
        (
            Answer::TopicError(29),
            Reported("--operation Describe --operation Read"),
        ),
        (Answer::TopicError(17), Reported("not a valid topic name")),
        (Answer::LeaderNotAvailable, Heals),
        (Answer::ConnectionClosed, Heals),
    ];
    let metadata = MetadataOptions {
        min_age: Duration::from_millis(50),
        max_age: Duration::from_millis(500),
    };
    for (answer, outcome) in cases {
        let case = format!("{answer:?}");
        let h = harness_on(
            Tuning {
                metadata,
                ..Tuning::default()
            },
            None,
            vec![Builtin::Range.into_assignor()],
            AUTO_COMMIT_UNSEEN,
            |cluster, _| match answer {
                Answer::TopicError(code) => cluster.refuse_topic("t", code),
                Answer::LeaderNotAvailable => cluster.set_partition("t", 0, -1, 5),
                Answer::ConnectionClosed => cluster.inject(None, ApiKey::Metadata, Fault::Close),
            },
        )
        .await;
        let started = Instant::now();
        let mut records = 0;
        let mut errors = Vec::new();
        while started.elapsed() < Duration::from_millis(1500) {
            match h.member.poll(100, Duration::from_millis(50)).await {
                Ok(batch) => records += batch.len(),
                Err(error) => errors.push(error),
            }
        }
        match outcome {
            Heals => assert!(errors.is_empty(), "{case}: {errors:?}"),
            Reported(fix) => {
                assert_eq!(errors.len(), 1, "{case}: reported once: {errors:?}");
                let GroupError::Consumer(ConsumerError::TopicRefused(refused)) = &errors[0] else {
                    panic!("{case}: {:?}", errors[0]);
                };
                assert_eq!(refused.topic, "t");
                assert!(refused.to_string().contains(fix), "{case}: {refused}");
                assert!(
                    h.member.identity().generation >= 1 && h.member.assignment().is_empty(),
                    "{case}: in the group, with nothing to read"
                );
                assert_eq!(records, 0, "{case}");
            }
        }
        h.cluster.accept_topic("t");
        h.cluster.set_partition("t", 0, 1, 0);
        let deadline = Instant::now() + WAIT;
        while records < 20 {
            assert!(
                Instant::now() < deadline,
                "{case}: {records} of 20 records; assignment {:?}; events {:?}",
                h.member.assignment(),
                h.events.list()
            );
            match h.member.poll(100, Duration::from_millis(50)).await {
                Ok(batch) => records += batch.len(),
                Err(error) => panic!("{case}: after the broker answers as usual: {error}"),
            }
        }
        assert_eq!(h.member.assignment().len(), 2, "{case}");
    }
}

/// Reads what `h.member` hands out for `how_long`; returns the (partition, offset) pairs.
async fn read_for(h: &Harness, how_long: Duration) -> Vec<(i32, i64)> {
    let started = Instant::now();
    let mut read = Vec::new();
    while started.elapsed() < how_long {
        let batch = h.member.poll(100, Duration::from_millis(20)).await.unwrap();
        read.extend(batch.iter().map(|r| (r.partition, r.offset)));
    }
    read
}

/// A member with a 1 s session timeout, holding both partitions.
async fn assigned_with_a_short_session() -> Harness {
    let h = harness_on(
        Tuning {
            session_timeout: Some(Duration::from_secs(1)),
            ..Tuning::default()
        },
        None,
        vec![Builtin::Range.into_assignor()],
        AUTO_COMMIT_UNSEEN,
        |_, _| {},
    )
    .await;
    assert!(h.member.wait_for_assignment(WAIT).await);
    h
}

/// A coordinator out of reach for longer than the session timeout (as while it moves to
/// another broker, which restarts every member's session clock when it loads the group):
/// the member hands out nothing from its session timeout on, and carries on where it was
/// once the coordinator answers and still counts it in: same generation, same partitions,
/// nothing read twice.
#[tokio::test]
async fn out_of_touch_past_the_session_the_member_holds_records_and_carries_on_if_still_in() {
    let h = assigned_with_a_short_session().await;
    let mut read = read_for(&h, Duration::from_millis(300)).await;
    assert_eq!(read.len(), 20);
    let generation = h.member.identity().generation;
    h.coordinator.unavailable_for(Duration::from_millis(2500));
    // Records arriving during the outage: handed out until the session timeout, then held.
    h.log.append("t", 0, 10, |o| o);
    let outage = read_for(&h, Duration::from_millis(300)).await;
    assert_eq!(outage.len(), 10, "before the session timeout");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    h.log.append("t", 1, 10, |o| o);
    let held = read_for(&h, Duration::from_millis(800)).await;
    assert!(held.is_empty(), "handed out while out of touch: {held:?}");
    read.extend(outage);
    // The coordinator answers again (2.5 s): the held records come, nothing twice.
    let deadline = Instant::now() + WAIT;
    while read.len() < 40 {
        assert!(Instant::now() < deadline, "{} of 40", read.len());
        read.extend(read_for(&h, Duration::from_millis(100)).await);
    }
    let unique: std::collections::BTreeSet<_> = read.iter().collect();
    assert_eq!(unique.len(), read.len(), "read twice: {read:?}");
    assert_eq!(h.member.identity().generation, generation);
    assert_eq!(h.member.assignment().len(), 2);
    assert!(
        !h.events.list().iter().any(|e| e.starts_with("lost")),
        "{:?}",
        h.events.list()
    );
}

/// The same outage, but the group dropped the member meanwhile (its first answer is
/// UNKNOWN_MEMBER_ID): nothing was handed out past the session timeout, the partitions are
/// lost, and the member rejoins and reads from the committed offsets.
#[tokio::test]
async fn out_of_touch_past_the_session_the_member_learns_it_was_dropped_and_rejoins() {
    let h = assigned_with_a_short_session().await;
    assert_eq!(read_for(&h, Duration::from_millis(300)).await.len(), 20);
    let generation = h.member.identity().generation;
    h.coordinator.unavailable_for(Duration::from_millis(2000));
    h.coordinator
        .fail_next(ApiKey::Heartbeat, ResponseError::UnknownMemberId);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    h.log.append("t", 0, 10, |o| o);
    let held = read_for(&h, Duration::from_millis(500)).await;
    assert!(held.is_empty(), "handed out while out of touch: {held:?}");
    assert!(h
        .member
        .wait_for_generation(generation, Duration::from_secs(10))
        .await
        .is_some());
    assert!(
        h.events.list().iter().any(|e| e.starts_with("lost")),
        "{:?}",
        h.events.list()
    );
}

/// A stop while the coordinator holds the SyncGroup ends in a LeaveGroup at once, not after
/// the SyncGroup's answer (the JoinGroup case runs on Apache Kafka in cli_group_edges.rs).
#[tokio::test]
async fn a_stop_while_the_sync_group_is_held_leaves_at_once() {
    // The first SyncGroup is held for 5 s.
    let h = harness_prepared(
        None,
        vec![Builtin::Range.into_assignor()],
        AUTO_COMMIT_UNSEEN,
        |cluster, _| {
            cluster.inject(
                None,
                ApiKey::SyncGroup,
                Fault::Delay(Duration::from_secs(5)),
            )
        },
    )
    .await;
    wait_until(
        WAIT,
        "the held SyncGroup",
        || {
            h.cluster
                .seen()
                .iter()
                .any(|r| r.api_key == ApiKey::SyncGroup as i16)
        },
        || format!("{:?}", h.coordinator.joins()),
    )
    .await;
    let Harness {
        member,
        coordinator,
        ..
    } = h;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        member.assignment().is_empty(),
        "still waiting for SyncGroup"
    );
    let started = Instant::now();
    assert!(member.close_within(Duration::from_secs(10)).await);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "closed after {:?}",
        started.elapsed()
    );
    assert_eq!(coordinator.leaves(), 1, "a LeaveGroup went out");
}

/// The commit before a revoke waits at most the rebalance timeout (the group waits no longer
/// for this member's JoinGroup): a coordinator that holds it for 4 s does not hold the
/// rejoin (1 s rebalance timeout here). The commit itself stays in the queue.
#[tokio::test]
async fn a_revoke_waits_for_its_commit_at_most_the_rebalance_timeout() {
    wasmkafka_tests::init_tracing();
    let cluster = FaultCluster::start(1).await.unwrap();
    cluster.add_topic("t", &[1, 1]);
    let log = ScriptedLog::install(&cluster);
    log.append("t", 0, 10, |o| o);
    log.append("t", 1, 10, |o| o);
    let coordinator = ScriptedCoordinator::install(&cluster);
    let member = GroupConsumer::start(
        Client::new(vec![cluster.addr(1)], PoolOptions::default()),
        GroupOptions {
            heartbeat_interval: Duration::from_millis(50),
            rebalance_timeout: Duration::from_secs(1),
            auto_commit_interval: AUTO_COMMIT_UNSEEN,
            ..GroupOptions::new("g", vec!["t".to_string()])
        },
        FetchOptions {
            max_wait: Duration::from_millis(50),
            ..FetchOptions::default()
        },
        ResetPolicySpec::Earliest.into_policy(),
        vec![Builtin::Range.into_assignor()],
        Arc::new(RecordedRebalances::default()),
    );
    assert!(member.wait_for_assignment(WAIT).await);
    let deadline = Instant::now() + WAIT;
    let mut read = 0;
    while read < 20 {
        assert!(Instant::now() < deadline);
        read += member
            .poll(100, Duration::from_millis(50))
            .await
            .unwrap()
            .len();
    }
    member.mark_processed();
    cluster.inject(
        None,
        ApiKey::OffsetCommit,
        Fault::Delay(Duration::from_secs(4)),
    );
    let joins = coordinator.joins().len();
    let generation = member.identity().generation;
    coordinator.fail_next(ApiKey::Heartbeat, ResponseError::RebalanceInProgress);
    let started = Instant::now();
    wait_until(
        WAIT,
        "the rejoin",
        || coordinator.joins().len() > joins,
        || format!("{:?}", coordinator.joins()),
    )
    .await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "rejoined after {took:?}"
    );
    // The new round completes too: its OffsetFetch does not queue behind the held commit.
    assert!(member
        .wait_for_generation(generation, Duration::from_secs(2))
        .await
        .is_some());
    assert!(coordinator.commits().is_empty(), "the commit is still held");
}

/// A stop while the coordinator cannot be found (FindCoordinator answers
/// COORDINATOR_NOT_AVAILABLE, again and again) ends at once: nothing to leave, nothing held.
#[tokio::test]
async fn a_stop_while_the_coordinator_cannot_be_found_ends_at_once() {
    let h = harness_prepared(
        None,
        vec![Builtin::Range.into_assignor()],
        AUTO_COMMIT_UNSEEN,
        |_, coordinator| {
            for _ in 0..1000 {
                coordinator.fail_next(
                    ApiKey::FindCoordinator,
                    ResponseError::CoordinatorNotAvailable,
                );
            }
        },
    )
    .await;
    wait_until(
        WAIT,
        "a few lookups",
        || h.coordinator.find_coordinator_requests() >= 3,
        String::new,
    )
    .await;
    let Harness {
        member,
        coordinator,
        ..
    } = h;
    let started = Instant::now();
    assert!(member.close_within(Duration::from_secs(10)).await);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "closed after {:?}",
        started.elapsed()
    );
    assert!(coordinator.joins().is_empty());
}

#[tokio::test]
async fn a_held_commit_does_not_delay_heartbeats() {
    let h = harness_full(None, vec![Builtin::Range.into_assignor()], None).await;
    assert!(h.member.wait_for_assignment(WAIT).await);
    read(&h, 20, 100).await;
    h.cluster.inject(
        None,
        ApiKey::OffsetCommit,
        Fault::Delay(Duration::from_millis(1500)),
    );
    let commit = h.member.commit_async();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = h.coordinator.heartbeats();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!commit.is_finished(), "the commit is still held");
    let during = h.coordinator.heartbeats() - before;
    // A 50 ms interval: about 16 in 800 ms; queued behind the commit there would be none.
    assert!(during >= 4, "{during} heartbeats while the commit was held");
    commit.await.unwrap().unwrap();
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
