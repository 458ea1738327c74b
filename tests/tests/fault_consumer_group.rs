//! The consumer group protocol (KIP-848, `group.protocol = "consumer"`) against a scripted
//! coordinator on the fault broker: the ConsumerGroupHeartbeat error-code matrix a real broker
//! does not produce on cue, what the heartbeats carry, a clean close, a broker without the
//! protocol, and an OffsetCommit behind the member epoch. Each error is handled the way the
//! Java client's consumer-protocol heartbeat manager handles it: fenced members lose their
//! partitions and rejoin under their own name; coordinator and transient errors are retried
//! with the partitions kept; the rest stop the member with an error that names the fix.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ApiKey;
use wasmkafka::client::Client;
use wasmkafka::fetch::FetchOptions;
use wasmkafka::group::{
    Fatal, GroupConsumer, GroupError, GroupOptions, GroupProtocol, NotCommitted,
};
use wasmkafka::net::PoolOptions;
use wasmkafka::policy::ResetPolicySpec;
use wasmkafka_tests::fault_broker::{default_topic_id, Fault, FaultCluster, TopicId};
use wasmkafka_tests::fault_consumer_group::{
    ScriptedConsumerCoordinator, SeenHeartbeat, JOIN_EPOCH, LEAVE_EPOCH, STATIC_LEAVE_EPOCH,
};
use wasmkafka_tests::fault_log::ScriptedLog;
use wasmkafka_tests::group::{wait_until, RecordedRebalances};

const WAIT: Duration = Duration::from_secs(10);
/// Records per partition of `t` (two partitions).
const RECORDS: i64 = 10;

/// What a test sets up beyond the defaults.
#[derive(Clone)]
struct Setup {
    instance_id: Option<&'static str>,
    /// The member's heartbeat interval until the broker names one (the coordinator names
    /// 50 ms unless a test sets another).
    heartbeat_interval: Duration,
    /// The member's backoff (base, max): `retry.backoff.ms`, `retry.backoff.max.ms`.
    retry_backoff: (Duration, Duration),
    auto_commit_interval: Option<Duration>,
    rebalance_timeout: Duration,
    remote_assignor: Option<&'static str>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            instance_id: None,
            heartbeat_interval: Duration::from_millis(50),
            retry_backoff: (Duration::from_millis(10), Duration::from_millis(50)),
            // Auto-commit on, with an interval no test waits for: only revokes, close and
            // the application's commits commit.
            auto_commit_interval: Some(Duration::from_secs(3600)),
            rebalance_timeout: Duration::from_secs(7),
            remote_assignor: None,
        }
    }
}

struct Harness {
    cluster: FaultCluster,
    coordinator: ScriptedConsumerCoordinator,
    log: ScriptedLog,
    events: Arc<RecordedRebalances>,
    member: GroupConsumer,
}

/// A fault cluster with topic `t` (two partitions of [`RECORDS`] records each), the scripted
/// consumer-protocol coordinator, and one member of group `g` subscribed to `t`; `prepare`
/// runs before the member starts.
async fn start(
    setup: Setup,
    prepare: impl FnOnce(&FaultCluster, &ScriptedConsumerCoordinator),
) -> Harness {
    wasmkafka_tests::init_tracing();
    let cluster = FaultCluster::start(1).await.unwrap();
    cluster.add_topic("t", &[1, 1]);
    let log = ScriptedLog::install(&cluster);
    log.append("t", 0, RECORDS, |o| o);
    log.append("t", 1, RECORDS, |o| o);
    let coordinator = ScriptedConsumerCoordinator::install(&cluster);
    prepare(&cluster, &coordinator);
    let events = Arc::new(RecordedRebalances::default());
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
            protocol: GroupProtocol::Consumer,
            instance_id: setup.instance_id.map(str::to_string),
            heartbeat_interval: setup.heartbeat_interval,
            auto_commit_interval: setup.auto_commit_interval,
            rebalance_timeout: setup.rebalance_timeout,
            remote_assignor: setup.remote_assignor.map(str::to_string),
            ..GroupOptions::new("g", vec!["t".to_string()])
        },
        FetchOptions {
            max_wait: Duration::from_millis(50),
            retry_backoff: setup.retry_backoff.0,
            retry_backoff_max: setup.retry_backoff.1,
            ..FetchOptions::default()
        },
        ResetPolicySpec::Earliest.into_policy(),
        Vec::new(),
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

/// Polls until `poll` fails; the error.
async fn fatal_error(member: &GroupConsumer) -> GroupError {
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "poll never failed");
        if let Err(error) = member.poll(10, Duration::from_millis(50)).await {
            return error;
        }
    }
}

/// The application's commit, bounded by [`WAIT`].
async fn commit(member: &GroupConsumer) -> Result<(), GroupError> {
    tokio::time::timeout(WAIT, member.commit())
        .await
        .expect("the commit was answered in time")
}

/// Polls until at least `count` records came; their (partition, offset).
async fn poll_records(member: &GroupConsumer, count: usize, max: usize) -> Vec<(i32, i64)> {
    let deadline = Instant::now() + WAIT;
    let mut records = Vec::new();
    while records.len() < count {
        assert!(
            Instant::now() < deadline,
            "{} of {count} records: {records:?}",
            records.len()
        );
        let polled = member.poll(max, Duration::from_millis(50)).await.unwrap();
        records.extend(polled.iter().map(|r| (r.partition, r.offset)));
    }
    records
}

fn t_id() -> TopicId {
    default_topic_id("t")
}

/// Both partitions of `t`, by topic id, as a heartbeat names what the member owns.
fn owns_all() -> Option<BTreeMap<TopicId, Vec<i32>>> {
    Some(BTreeMap::from([(t_id(), vec![0, 1])]))
}

fn owns_nothing() -> Option<BTreeMap<TopicId, Vec<i32>>> {
    Some(BTreeMap::new())
}

fn describe(beats: &[SeenHeartbeat]) -> String {
    beats
        .iter()
        .map(|b| {
            format!(
                "[{} epoch {} -> {} {:?} owned {:?}]",
                &b.member_id[..b.member_id.len().min(8)],
                b.epoch,
                b.answered_epoch,
                b.error,
                b.owned
                    .as_ref()
                    .map(|o| o.values().cloned().collect::<Vec<_>>())
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `id` is written as a UUID (8-4-4-4-12 hex digits).
fn is_uuid(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Waits until the member is in the group, owns both partitions, and has told the broker so
/// (a beat that names them was accepted); the member's epoch.
async fn stable(h: &Harness) -> i32 {
    assert!(h.member.wait_for_assignment(WAIT).await, "no assignment");
    wait_until(
        WAIT,
        "a beat that acknowledges the assignment",
        || {
            h.coordinator
                .heartbeats()
                .iter()
                .any(|b| b.error.is_none() && b.epoch > 0 && b.owned == owns_all())
        },
        || describe(&h.coordinator.heartbeats()),
    )
    .await;
    let epoch = h.member.identity().generation;
    assert!(epoch > 0, "member epoch {epoch}");
    epoch
}

/// The member sends no more heartbeats (none for six of the broker's intervals).
async fn assert_stopped_heartbeating(h: &Harness) {
    let count = h.coordinator.heartbeat_count();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        h.coordinator.heartbeat_count(),
        count,
        "the member kept heartbeating: {}",
        describe(&h.coordinator.heartbeats())
    );
}

#[tokio::test]
async fn the_first_heartbeat_joins_with_a_uuid_and_the_subscription_and_later_ones_name_what_is_owned_by_topic_id(
) {
    let h = start(
        Setup {
            remote_assignor: Some("uniform"),
            ..Setup::default()
        },
        |_, _| {},
    )
    .await;
    let epoch = stable(&h).await;
    let beats = h.coordinator.heartbeats();
    let first = &beats[0];
    assert_eq!(first.version, 1, "v1: the member names itself");
    assert_eq!(first.epoch, JOIN_EPOCH);
    assert!(
        is_uuid(&first.member_id),
        "the member id is a UUID: {:?}",
        first.member_id
    );
    assert_eq!(first.rebalance_timeout_ms, 7000);
    assert_eq!(first.subscribed_topic_names, Some(vec!["t".to_string()]));
    assert_eq!(first.subscribed_topic_regex, None);
    assert_eq!(first.server_assignor.as_deref(), Some("uniform"));
    assert_eq!(first.instance_id, None);
    assert_eq!(first.owned, owns_nothing(), "a joining member owns nothing");
    assert_eq!(first.error, None, "{}", describe(&beats));
    assert_eq!(first.answered_epoch, epoch);
    // Later beats: the same name, the epoch of the last answer, the whole state again, and
    // what the member owns by topic id (the id Metadata gave `t`).
    assert_eq!(h.cluster.topic_id("t"), Some(t_id()));
    for beat in &beats[1..] {
        assert_eq!(beat.member_id, first.member_id, "{}", describe(&beats));
        assert_eq!(beat.epoch, epoch, "{}", describe(&beats));
        assert_eq!(beat.rebalance_timeout_ms, 7000);
        assert_eq!(beat.subscribed_topic_names, Some(vec!["t".to_string()]));
        assert_eq!(beat.server_assignor.as_deref(), Some("uniform"));
        assert!(
            beat.owned == owns_nothing() || beat.owned == owns_all(),
            "{}",
            describe(&beats)
        );
    }
    assert_eq!(beats.last().unwrap().owned, owns_all());
    let identity = h.member.identity();
    assert_eq!(identity.member_id, first.member_id);
    assert_eq!(identity.generation, epoch);
    // Beats go on at the interval the broker names.
    let count = h.coordinator.heartbeat_count();
    wait_until(
        WAIT,
        "more heartbeats",
        || h.coordinator.heartbeat_count() >= count + 3,
        || describe(&h.coordinator.heartbeats()),
    )
    .await;
    assert_eq!(h.events.list(), ["assigned 2"]);
}

#[tokio::test]
async fn the_member_beats_at_the_interval_the_broker_names() {
    let h = start(Setup::default(), |_, coordinator| {
        coordinator.set_heartbeat_interval(Duration::from_millis(200));
    })
    .await;
    stable(&h).await;
    let count = h.coordinator.heartbeat_count();
    wait_until(
        WAIT,
        "four more beats",
        || h.coordinator.heartbeat_count() >= count + 4,
        || describe(&h.coordinator.heartbeats()),
    )
    .await;
    // Once stable, every 200 ms (the member's own setting says 50 ms).
    let beats = h.coordinator.heartbeats().split_off(count);
    let gaps: Vec<Duration> = beats.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(
        gaps.iter()
            .all(|gap| *gap >= Duration::from_millis(190) && *gap < Duration::from_secs(1)),
        "{gaps:?}"
    );
}

#[tokio::test]
async fn after_joining_the_member_beats_every_250_ms_for_an_interval_and_a_second_then_at_the_interval(
) {
    let h = start(Setup::default(), |_, coordinator| {
        coordinator.set_heartbeat_interval(Duration::from_secs(1));
    })
    .await;
    stable(&h).await;
    let joined_at = |beats: &[SeenHeartbeat]| {
        beats
            .iter()
            .find(|b| b.epoch == JOIN_EPOCH && b.answered_epoch > 0)
            .map(|b| b.at)
    };
    // The quick window is the broker's interval (1 s) and a second; two regular beats after.
    wait_until(
        WAIT,
        "two beats after the quick window",
        || {
            let beats = h.coordinator.heartbeats();
            joined_at(&beats).is_some_and(|joined| {
                beats
                    .iter()
                    .filter(|b| b.at > joined + Duration::from_millis(2_300))
                    .count()
                    >= 2
            })
        },
        || describe(&h.coordinator.heartbeats()),
    )
    .await;
    let beats = h.coordinator.heartbeats();
    let joined = joined_at(&beats).unwrap();
    let gaps_between = |from: Duration, to: Duration| -> Vec<Duration> {
        let inside: Vec<Instant> = beats
            .iter()
            .map(|b| b.at)
            .filter(|at| *at >= joined + from && *at <= joined + to)
            .collect();
        inside.windows(2).map(|w| w[1] - w[0]).collect()
    };
    let quick = gaps_between(Duration::ZERO, Duration::from_millis(1_900));
    assert!(quick.len() >= 5, "{quick:?}: {}", describe(&beats));
    assert!(
        quick.iter().all(|gap| *gap < Duration::from_millis(600)),
        "{quick:?}: {}",
        describe(&beats)
    );
    let regular = gaps_between(Duration::from_millis(2_200), Duration::from_secs(60));
    assert!(!regular.is_empty(), "{}", describe(&beats));
    assert!(
        regular.iter().all(|gap| *gap >= Duration::from_millis(900)),
        "{regular:?}: {}",
        describe(&beats)
    );
}

#[tokio::test]
async fn a_close_beside_another_returns_only_once_the_member_has_left() {
    let h = start(Setup::default(), |_, _| {}).await;
    stable(&h).await;
    let left = || {
        h.coordinator
            .heartbeats()
            .iter()
            .any(|b| b.epoch == LEAVE_EPOCH)
    };
    // The first close starts the leave; the second comes while it is under way (a stop
    // signal beside a consuming loop that is closing too).
    let (first, (second, left_when_second_returned)) =
        tokio::join!(h.member.close_shared_within(WAIT), async {
            let stopped = h.member.close_shared_within(WAIT).await;
            (stopped, left())
        });
    assert!(first && second, "both closes end in time");
    assert!(
        left_when_second_returned,
        "the second close returned before the member left: {}",
        describe(&h.coordinator.heartbeats())
    );
}

#[tokio::test]
async fn a_clean_close_commits_with_the_member_epoch_then_leaves_with_epoch_minus_one() {
    let h = start(Setup::default(), |_, _| {}).await;
    let epoch = stable(&h).await;
    let member_id = h.member.identity().member_id;
    let records = poll_records(&h.member, 20, 100).await;
    h.member.mark_processed();
    let coordinator = h.coordinator.clone();
    assert!(h.member.close_within(WAIT).await, "closed in time");
    let beats = coordinator.heartbeats();
    let leave = beats.last().unwrap();
    assert_eq!(leave.epoch, LEAVE_EPOCH, "{}", describe(&beats));
    assert_eq!(leave.member_id, member_id);
    assert_eq!(leave.error, None);
    assert!(coordinator.members().is_empty(), "the member left");
    // The finished positions were committed first, under the member's epoch, with v9.
    let commits = coordinator.commits();
    assert!(!commits.is_empty(), "close commits what was finished");
    for commit in &commits {
        assert_eq!(commit.version, 9, "{commit:?}");
        assert_eq!(commit.member_id, member_id, "{commit:?}");
        assert_eq!(commit.epoch, epoch, "{commit:?}");
        assert_eq!(commit.error, None, "{commit:?}");
        assert!(
            commit.after_heartbeats < beats.len(),
            "committed before leaving: {commit:?}"
        );
    }
    let read: BTreeSet<(i32, i64)> = records.into_iter().collect();
    assert_eq!(read.len(), 2 * RECORDS as usize);
    assert_eq!(coordinator.committed("t", 0), Some(RECORDS));
    assert_eq!(coordinator.committed("t", 1), Some(RECORDS));
    assert_eq!(h.events.list(), ["assigned 2", "revoked 2"]);
}

/// SIGTERM in the middle of a reconciliation: the broker takes a partition away, the member's
/// commit before giving it up is held at the broker, and the member is closed meanwhile. The
/// revoke under way ends first; the close commits exactly what the application finished
/// (never the records it was handed and did not finish), leaves with epoch -1, and ends
/// within its time.
#[tokio::test]
async fn a_close_during_a_revoke_commits_only_the_finished_records_and_leaves() {
    let h = start(Setup::default(), |_, _| {}).await;
    stable(&h).await;
    let finished = poll_records(&h.member, 2 * RECORDS as usize, 100).await;
    h.member.mark_processed();
    // Handed out, never finished.
    h.log.append("t", 0, 5, |o| o);
    h.log.append("t", 1, 5, |o| o);
    let unfinished = poll_records(&h.member, 10, 100).await;
    assert!(unfinished.iter().all(|(_, offset)| *offset >= RECORDS));

    h.cluster.inject(
        Some(1),
        ApiKey::OffsetCommit,
        Fault::Delay(Duration::from_secs(3)),
    );
    h.coordinator.withhold("t", &[1]);
    wait_until(
        WAIT,
        "the revoke's commit is held at the broker",
        || h.cluster.delaying_now() > 0,
        || describe(&h.coordinator.heartbeats()),
    )
    .await;
    let coordinator = h.coordinator.clone();
    let events = h.events.clone();
    let started = Instant::now();
    assert!(h.member.close_within(WAIT).await, "closed in time");
    let took = started.elapsed();

    let beats = coordinator.heartbeats();
    assert_eq!(
        beats.last().unwrap().epoch,
        LEAVE_EPOCH,
        "{}",
        describe(&beats)
    );
    assert!(coordinator.members().is_empty(), "the member left");
    let commits = coordinator.commits();
    assert!(!commits.is_empty(), "the finished positions were committed");
    for commit in &commits {
        assert_eq!(commit.error, None, "{commit:?}");
        for (_, _, offset) in &commit.offsets {
            assert_eq!(*offset, RECORDS, "only finished records: {commit:?}");
        }
    }
    assert_eq!(finished.len(), 2 * RECORDS as usize);
    assert_eq!(coordinator.committed("t", 0), Some(RECORDS));
    assert_eq!(coordinator.committed("t", 1), Some(RECORDS));
    // The revoke under way ended (the listener hears of each partition once), then leaving
    // revoked the partition still owned; none was lost.
    let events = events.list();
    assert_eq!(events, ["assigned 2", "revoked 1", "revoked 1"]);
    eprintln!("closed in {took:?} with the revoke's commit held 3 s; events {events:?}");
}

#[tokio::test]
async fn a_static_member_closes_with_epoch_minus_two() {
    let h = start(
        Setup {
            instance_id: Some("host-3"),
            ..Setup::default()
        },
        |_, _| {},
    )
    .await;
    stable(&h).await;
    let member_id = h.member.identity().member_id;
    let coordinator = h.coordinator.clone();
    assert!(h.member.close_within(WAIT).await, "closed in time");
    let beats = coordinator.heartbeats();
    assert_eq!(beats[0].instance_id.as_deref(), Some("host-3"));
    let leave = beats.last().unwrap();
    assert_eq!(leave.epoch, STATIC_LEAVE_EPOCH, "{}", describe(&beats));
    assert_eq!(leave.member_id, member_id);
    assert_eq!(leave.instance_id.as_deref(), Some("host-3"));
    assert_eq!(leave.error, None);
}

/// A fence (FENCED_MEMBER_EPOCH, UNKNOWN_MEMBER_ID): the partitions are lost (no commit for
/// them from then on; the application's commit of records it had is refused), the member
/// rejoins at epoch 0 under the same member id owning nothing, gets the partitions again,
/// consumes and commits under its new epoch.
async fn fenced_then_rejoined(error: ResponseError) {
    let h = start(
        Setup {
            // Auto-commits going on: none of them may carry the fenced epoch.
            auto_commit_interval: Some(Duration::from_millis(100)),
            ..Setup::default()
        },
        |_, _| {},
    )
    .await;
    let old_epoch = stable(&h).await;
    let member_id = h.member.identity().member_id;
    poll_records(&h.member, 5, 5).await;
    h.coordinator
        .fail_next_heartbeat(error, "fenced by the test");
    wait_until(
        WAIT,
        "the partitions to be lost",
        || h.events.list().contains(&"lost 2".to_string()),
        || {
            format!(
                "{:?} {}",
                h.events.list(),
                describe(&h.coordinator.heartbeats())
            )
        },
    )
    .await;
    // A commit sent just before the fence may still be on the wire; none may start after.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let commits_at_loss = h.coordinator.commits().len();
    match commit(&h.member).await {
        Err(GroupError::NotCommitted(NotCommitted::Lost { .. })) => {}
        other => panic!("a commit of records from lost partitions must fail: {other:?}"),
    }
    wait_until(
        WAIT,
        "the partitions to come back",
        || h.events.list() == ["assigned 2", "lost 2", "assigned 2"],
        || {
            format!(
                "{:?} {}",
                h.events.list(),
                describe(&h.coordinator.heartbeats())
            )
        },
    )
    .await;
    assert!(h.member.wait_for_assignment(WAIT).await);
    let beats = h.coordinator.heartbeats();
    let fenced = beats
        .iter()
        .position(|b| b.error == Some(error))
        .expect("the fenced beat");
    let rejoin = &beats[fenced + 1];
    assert_eq!(rejoin.epoch, JOIN_EPOCH, "{}", describe(&beats));
    assert_eq!(rejoin.member_id, member_id, "the same member id");
    assert_eq!(rejoin.owned, owns_nothing(), "{}", describe(&beats));
    assert_eq!(rejoin.subscribed_topic_names, Some(vec!["t".to_string()]));
    assert_eq!(rejoin.error, None);
    let new_epoch = rejoin.answered_epoch;
    assert!(new_epoch > old_epoch, "{}", describe(&beats));
    wait_until(
        WAIT,
        "the member to take its new epoch",
        || h.member.identity().generation == new_epoch,
        || format!("{:?}", h.member.identity()),
    )
    .await;
    // The member consumes again (from the last commit: the records in hand when the
    // partitions were lost are delivered again) and commits under its new epoch.
    let records = poll_records(&h.member, 1, 100).await;
    assert!(!records.is_empty());
    commit(&h.member).await.expect("commit after the rejoin");
    let commits = h.coordinator.commits();
    let last = commits.last().expect("the commit");
    assert_eq!(last.epoch, new_epoch, "{last:?}");
    assert_eq!(last.member_id, member_id);
    assert_eq!(last.error, None, "{last:?}");
    for commit in &commits[commits_at_loss..] {
        assert_ne!(
            commit.epoch, old_epoch,
            "a commit under the fenced epoch after the loss: {commit:?}"
        );
        assert_eq!(commit.epoch, new_epoch, "{commit:?}");
    }
}

#[tokio::test]
async fn fenced_member_epoch_loses_the_partitions_and_rejoins_under_the_same_member_id() {
    fenced_then_rejoined(ResponseError::FencedMemberEpoch).await;
}

#[tokio::test]
async fn unknown_member_id_loses_the_partitions_and_rejoins_under_the_same_member_id() {
    fenced_then_rejoined(ResponseError::UnknownMemberId).await;
}

#[tokio::test]
async fn unreleased_instance_id_is_retried_with_backoff_then_the_member_joins() {
    let h = start(
        Setup {
            instance_id: Some("host-1"),
            heartbeat_interval: Duration::from_secs(1),
            retry_backoff: (Duration::from_millis(20), Duration::from_millis(200)),
            ..Setup::default()
        },
        |_, coordinator| coordinator.refuse_heartbeats(ResponseError::UnreleasedInstanceId),
    )
    .await;
    let refused = |h: &Harness| {
        h.coordinator
            .heartbeats()
            .into_iter()
            .filter(|b| b.error == Some(ResponseError::UnreleasedInstanceId))
            .collect::<Vec<_>>()
    };
    wait_until(
        WAIT,
        "six refused heartbeats",
        || refused(&h).len() >= 6,
        || describe(&h.coordinator.heartbeats()),
    )
    .await;
    // Not an error for the application: it waits.
    assert!(h
        .member
        .poll(10, Duration::from_millis(20))
        .await
        .unwrap()
        .is_empty());
    let beats = refused(&h);
    let member_id = beats[0].member_id.clone();
    for beat in &beats {
        assert_eq!(beat.epoch, JOIN_EPOCH, "{}", describe(&beats));
        assert_eq!(beat.member_id, member_id, "the same member id throughout");
        assert_eq!(beat.instance_id.as_deref(), Some("host-1"));
        assert_eq!(beat.owned, owns_nothing());
    }
    // Backoff 20 ms doubling (±20%) up to 200 ms: 16+, 32+, 64+, 128+, 160+ ms apart.
    let gaps: Vec<Duration> = beats.windows(2).map(|w| w[1].at - w[0].at).collect();
    let floors = [15, 30, 60, 120, 150];
    for (gap, floor) in gaps.iter().zip(floors) {
        assert!(
            *gap >= Duration::from_millis(floor),
            "retried too soon: gaps {gaps:?}"
        );
    }
    assert!(
        gaps.iter().all(|gap| *gap < Duration::from_secs(1)),
        "retried no later than the backoff's cap: {gaps:?}"
    );
    assert!(h.events.list().is_empty());
    assert!(h.member.assignment().is_empty());
    // The old session ends: the next try joins.
    h.coordinator.accept_heartbeats();
    assert!(h.member.wait_for_assignment(WAIT).await, "joined");
    let all = h.coordinator.heartbeats();
    let joined = all
        .iter()
        .find(|b| b.error.is_none())
        .expect("an accepted beat");
    assert_eq!(joined.epoch, JOIN_EPOCH);
    assert_eq!(joined.member_id, member_id);
    assert_eq!(joined.instance_id.as_deref(), Some("host-1"));
    assert_eq!(h.events.list(), ["assigned 2"]);
}

/// A coordinator error three beats in a row: retried (with FindCoordinator asked again when
/// `finds_again`), then the beats go on under the same epoch; the member keeps its partitions
/// and its positions throughout.
async fn retried_keeping_the_partitions(error: ResponseError, finds_again: bool) {
    let h = start(Setup::default(), |_, _| {}).await;
    let epoch = stable(&h).await;
    let member_id = h.member.identity().member_id;
    let mut records = poll_records(&h.member, 5, 5).await;
    let finds = h.coordinator.find_coordinator_requests();
    let before = h.coordinator.heartbeat_count();
    for _ in 0..3 {
        h.coordinator
            .fail_next_heartbeat(error, "refused by the test");
    }
    let after = |h: &Harness| h.coordinator.heartbeats().split_off(before);
    wait_until(
        WAIT,
        "three refused beats, then three accepted",
        || {
            let beats = after(&h);
            beats.iter().filter(|b| b.error == Some(error)).count() == 3
                && beats
                    .iter()
                    .skip_while(|b| b.error.is_none())
                    .filter(|b| b.error.is_none())
                    .count()
                    >= 3
        },
        || describe(&after(&h)),
    )
    .await;
    if finds_again {
        assert!(
            h.coordinator.find_coordinator_requests() >= finds + 3,
            "FindCoordinator after each of the three: {} before, {} after",
            finds,
            h.coordinator.find_coordinator_requests()
        );
    }
    let beats = after(&h);
    for beat in &beats {
        assert_eq!(beat.epoch, epoch, "no rejoin: {}", describe(&beats));
        assert_eq!(beat.member_id, member_id);
        assert_eq!(beat.owned, owns_all(), "{}", describe(&beats));
    }
    assert_eq!(h.events.list(), ["assigned 2"], "no partition lost");
    assert_eq!(h.member.assignment().len(), 2);
    // Consumption goes on where it was: every record once.
    let rest = poll_records(&h.member, 2 * RECORDS as usize - records.len(), 100).await;
    records.extend(rest);
    let distinct: BTreeSet<&(i32, i64)> = records.iter().collect();
    assert_eq!(
        distinct.len(),
        records.len(),
        "delivered twice: {records:?}"
    );
    assert_eq!(records.len(), 2 * RECORDS as usize);
}

#[tokio::test]
async fn coordinator_not_available_finds_the_coordinator_again_and_keeps_the_partitions() {
    retried_keeping_the_partitions(ResponseError::CoordinatorNotAvailable, true).await;
}

#[tokio::test]
async fn not_coordinator_finds_the_coordinator_again_and_keeps_the_partitions() {
    retried_keeping_the_partitions(ResponseError::NotCoordinator, true).await;
}

#[tokio::test]
async fn coordinator_load_in_progress_is_retried_keeping_the_partitions() {
    retried_keeping_the_partitions(ResponseError::CoordinatorLoadInProgress, false).await;
}

#[tokio::test]
async fn request_timed_out_is_retried_keeping_the_partitions() {
    retried_keeping_the_partitions(ResponseError::RequestTimedOut, false).await;
}

/// `error` answers the member's first heartbeat: `poll` fails with [`Fatal::Refused`]
/// naming the error and `words` (the fix), the member sends nothing more (not even on close).
async fn refused_at_join(error: ResponseError, words: &[&str]) {
    let h = start(Setup::default(), |_, coordinator| {
        coordinator.fail_next_heartbeat(error, "the broker's own words");
    })
    .await;
    let failure = fatal_error(&h.member).await;
    match &failure {
        GroupError::Fatal(Fatal::Refused {
            api, error: code, ..
        }) => {
            assert_eq!(*api, "ConsumerGroupHeartbeat");
            assert_eq!(*code, error);
        }
        other => panic!("not a fatal error: {other:?}"),
    }
    let message = failure.to_string();
    assert!(message.contains("`g`"), "names the group: {message}");
    assert!(
        message.contains("(the broker says: the broker's own words)"),
        "the broker's message reaches the user: {message}"
    );
    for word in words {
        assert!(message.contains(word), "{word:?} missing from: {message}");
    }
    assert_eq!(h.coordinator.heartbeat_count(), 1);
    assert_stopped_heartbeating(&h).await;
    // The error stays.
    assert_eq!(
        fatal_error(&h.member).await.to_string(),
        message,
        "the same error at the next poll"
    );
    assert!(h.events.list().is_empty());
    let coordinator = h.coordinator.clone();
    h.member.close_within(WAIT).await;
    assert_eq!(
        coordinator.heartbeat_count(),
        1,
        "{}",
        describe(&coordinator.heartbeats())
    );
}

#[tokio::test]
async fn group_authorization_failed_stops_the_member_with_the_acl_to_grant() {
    refused_at_join(
        ResponseError::GroupAuthorizationFailed,
        &["kafka-acls.sh", "--operation Read", "--group"],
    )
    .await;
}

#[tokio::test]
async fn unsupported_assignor_stops_the_member_naming_the_setting() {
    refused_at_join(
        ResponseError::UnsupportedAssignor,
        &["consumer.group_remote_assignor", "group.consumer.assignors"],
    )
    .await;
}

#[tokio::test]
async fn group_max_size_reached_stops_the_member_naming_the_limit() {
    refused_at_join(ResponseError::GroupMaxSizeReached, &["group.max.size"]).await;
}

#[tokio::test]
async fn invalid_request_stops_the_member() {
    refused_at_join(ResponseError::InvalidRequest, &["not retried"]).await;
}

#[tokio::test]
async fn group_id_not_found_stops_the_member_naming_the_protocol_setting() {
    refused_at_join(
        ResponseError::GroupIdNotFound,
        &["consumer.group_protocol", "group.consumer.migration.policy"],
    )
    .await;
}

/// A fatal error while the member owns partitions: they are lost (not committed), `poll`
/// fails with `check`'s error, and the member sends nothing more (not even on close).
async fn refused_while_stable(
    instance_id: Option<&'static str>,
    error: ResponseError,
    check: impl Fn(&GroupError),
) {
    let h = start(
        Setup {
            instance_id,
            ..Setup::default()
        },
        |_, _| {},
    )
    .await;
    stable(&h).await;
    poll_records(&h.member, 5, 5).await;
    h.coordinator
        .fail_next_heartbeat(error, "refused by the test");
    let failure = fatal_error(&h.member).await;
    check(&failure);
    wait_until(
        WAIT,
        "the partitions to be lost",
        || h.events.list() == ["assigned 2", "lost 2"],
        || format!("{:?}", h.events.list()),
    )
    .await;
    assert!(h.member.assignment().is_empty());
    assert_stopped_heartbeating(&h).await;
    let coordinator = h.coordinator.clone();
    let count = coordinator.heartbeat_count();
    h.member.close_within(WAIT).await;
    assert_eq!(
        coordinator.heartbeat_count(),
        count,
        "no leave after a fatal error"
    );
    assert!(
        coordinator.commits().is_empty(),
        "lost partitions are not committed: {:?}",
        coordinator.commits()
    );
}

#[tokio::test]
async fn fenced_instance_id_stops_the_static_member_naming_the_instance_id() {
    refused_while_stable(Some("host-7"), ResponseError::FencedInstanceId, |failure| {
        assert!(
            matches!(failure, GroupError::Fatal(Fatal::Fenced { instance_id, .. }) if instance_id == "host-7"),
            "{failure:?}"
        );
        let message = failure.to_string();
        assert!(
            message.contains("host-7") && message.contains("consumer.group_instance_id"),
            "{message}"
        );
    })
    .await;
}

#[tokio::test]
async fn group_authorization_failed_while_in_the_group_stops_the_member() {
    refused_while_stable(None, ResponseError::GroupAuthorizationFailed, |failure| {
        assert!(
            matches!(
                failure,
                GroupError::Fatal(Fatal::Refused {
                    error: ResponseError::GroupAuthorizationFailed,
                    ..
                })
            ),
            "{failure:?}"
        );
        assert!(failure.to_string().contains("kafka-acls.sh"), "{failure}");
    })
    .await;
}

#[tokio::test]
async fn a_broker_without_the_consumer_protocol_is_refused_with_the_fix() {
    let h = start(Setup::default(), |cluster, _| {
        cluster.withdraw_api(ApiKey::ConsumerGroupHeartbeat);
    })
    .await;
    let failure = fatal_error(&h.member).await;
    assert!(
        matches!(
            failure,
            GroupError::Fatal(Fatal::Refused {
                error: ResponseError::UnsupportedVersion,
                ..
            })
        ),
        "{failure:?}"
    );
    let message = failure.to_string();
    for word in ["KIP-848", "group.protocol=classic", "upgrade"] {
        assert!(message.contains(word), "{word:?} missing from: {message}");
    }
    assert_eq!(
        h.coordinator.heartbeat_count(),
        0,
        "nothing to send it with"
    );
    assert!(h.events.list().is_empty());
}

/// A broker that offers only v0 (Kafka 3.7's preview, where the broker names the member) is
/// refused as not speaking the protocol: this member names itself, as v1 (Kafka 4.0) has it.
#[tokio::test]
async fn a_broker_with_only_the_preview_version_is_refused_with_the_fix() {
    let h = start(Setup::default(), |cluster, _| {
        cluster.announce_api(ApiKey::ConsumerGroupHeartbeat, 0, 0);
    })
    .await;
    let failure = fatal_error(&h.member).await;
    let message = failure.to_string();
    for word in ["KIP-848", "4.0", "group.protocol=classic"] {
        assert!(message.contains(word), "{word:?} missing from: {message}");
    }
    assert_eq!(h.coordinator.heartbeat_count(), 0, "no v0 beat was sent");
    h.member.close_within(WAIT).await;
}

#[tokio::test]
async fn a_commit_answered_stale_member_epoch_once_is_retried_and_succeeds() {
    let h = start(Setup::default(), |_, _| {}).await;
    let epoch = stable(&h).await;
    let member_id = h.member.identity().member_id;
    let records = poll_records(&h.member, 3, 3).await;
    h.coordinator
        .fail_next(ApiKey::OffsetCommit, ResponseError::StaleMemberEpoch);
    commit(&h.member).await.expect("retried until committed");
    let commits = h.coordinator.commits();
    assert_eq!(commits.len(), 2, "{commits:?}");
    assert_eq!(commits[0].error, Some(ResponseError::StaleMemberEpoch));
    assert_eq!(commits[1].error, None);
    assert_eq!(commits[1].offsets, commits[0].offsets, "the same offsets");
    for commit in &commits {
        assert_eq!(commit.version, 9);
        assert_eq!(commit.member_id, member_id);
        assert_eq!(commit.epoch, epoch, "{commit:?}");
    }
    assert_eq!(h.coordinator.member_epoch(&member_id), Some(epoch));
    let (partition, offset) = *records.last().unwrap();
    assert_eq!(h.coordinator.committed("t", partition), Some(offset + 1));
}

#[tokio::test]
async fn a_commit_behind_an_epoch_bump_is_retried_with_the_epoch_the_next_heartbeat_brings() {
    let h = start(Setup::default(), |_, coordinator| {
        // Beats a second apart: the bump below stays unknown to the member for a while.
        coordinator.set_heartbeat_interval(Duration::from_secs(1));
    })
    .await;
    let old_epoch = stable(&h).await;
    let member_id = h.member.identity().member_id;
    let records = poll_records(&h.member, 3, 3).await;
    // Past the quick beats that follow a join: from here beats are a second apart.
    wait_until(
        WAIT,
        "two beats a second apart",
        || {
            let beats = h.coordinator.heartbeats();
            beats
                .windows(2)
                .last()
                .is_some_and(|w| w[1].at - w[0].at >= Duration::from_millis(900))
        },
        || describe(&h.coordinator.heartbeats()),
    )
    .await;
    // Right after a beat was answered: the next one is a second away.
    let count = h.coordinator.heartbeat_count();
    wait_until(
        WAIT,
        "a beat",
        || h.coordinator.heartbeat_count() > count,
        || describe(&h.coordinator.heartbeats()),
    )
    .await;
    let new_epoch = h.coordinator.bump_epoch();
    commit(&h.member).await.expect("retried until committed");
    let commits = h.coordinator.commits();
    let (last, refused) = commits.split_last().unwrap();
    assert!(
        !refused.is_empty(),
        "the first try carried the old epoch: {commits:?}"
    );
    for commit in refused {
        assert_eq!(commit.epoch, old_epoch, "{commit:?}");
        assert_eq!(commit.error, Some(ResponseError::StaleMemberEpoch));
    }
    assert_eq!(last.epoch, new_epoch, "{last:?}");
    assert_eq!(last.member_id, member_id);
    assert_eq!(last.error, None);
    let beats = h.coordinator.heartbeats();
    let told = beats
        .iter()
        .position(|b| b.answered_epoch == new_epoch)
        .expect("a beat answered the new epoch");
    assert!(
        last.after_heartbeats > told,
        "committed once a beat brought the new epoch"
    );
    assert_eq!(h.member.identity().generation, new_epoch);
    let (partition, offset) = *records.last().unwrap();
    assert_eq!(h.coordinator.committed("t", partition), Some(offset + 1));
    assert_eq!(h.events.list(), ["assigned 2"]);
}
