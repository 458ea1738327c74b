//! The delivery contract of `wasmkafka run --group`, with real processes, real signals and a
//! real broker: a crash re-delivers and never skips; SIGTERM commits what was printed, leaves
//! the group and exits 0.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiKey;
use wasmkafka::fetch::TopicPartition;
use wasmkafka::group::coordinator::find_coordinator;
use wasmkafka::group::offsets::fetch_committed;
use wasmkafka_tests::cli_commands::produce_with_cli;
use wasmkafka_tests::cli_member::{group_member_args, CliMember, Finished, Printed};
use wasmkafka_tests::fault_broker::{Fault, FaultCluster};
use wasmkafka_tests::fault_group::ScriptedCoordinator;
use wasmkafka_tests::fault_log::ScriptedLog;
use wasmkafka_tests::kafka::Kafka;

/// Records one poll hands over in these tests: "one poll" in the duplicate bounds.
const MAX_POLL_RECORDS: usize = 200;
const PARTITIONS: i32 = 4;
const RECORDS: usize = 20_000;

/// Creates a topic of `PARTITIONS` partitions with `RECORDS` records.
async fn topic_with_records(broker: &Kafka, topic: &str) {
    broker.create_topic(topic, PARTITIONS, &[]).await.unwrap();
    produce_with_cli(
        Path::new(env!("CARGO_BIN_EXE_wasmkafka")),
        &broker.addr(),
        topic,
        &["--count", &RECORDS.to_string(), "--batch", "250"],
    );
}

/// A member's config under `protocol` (`classic` or `consumer`; with `consumer` the broker's
/// settings time sessions and heartbeats: 10 s and 500 ms in tests/kafka/node.properties).
fn config_file(dir: &tempfile::TempDir, protocol: &str, session_timeout_ms: u64) -> String {
    let path = dir.path().join("member.toml");
    std::fs::write(
        &path,
        format!(
            "[consumer]\ngroup_protocol = \"{protocol}\"\nheartbeat_interval_ms = 300\n\
             session_timeout_ms = {session_timeout_ms}\nrebalance_timeout_ms = 5000\n\
             fetch_max_wait_ms = 200\nmax_poll_records = {MAX_POLL_RECORDS}\n\
             auto_commit_interval_ms = 1000\n"
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// A group member whose stdout is read at `pace` (a slow pipe when it pauses).
fn member(
    brokers: &str,
    config: &str,
    topic: &str,
    group: &str,
    pace: (usize, Duration),
) -> CliMember {
    let args = group_member_args(config, brokers, topic, group, &["--from", "earliest"]);
    CliMember::start(
        group,
        Path::new(env!("CARGO_BIN_EXE_wasmkafka")),
        &args,
        pace,
    )
}

/// The highest offset printed, per partition.
fn last_printed(printed: &[Printed]) -> BTreeMap<i32, i64> {
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for (partition, offset) in printed {
        let partition = i32::try_from(*partition).unwrap();
        let entry = last.entry(partition).or_insert(*offset);
        *entry = (*entry).max(*offset);
    }
    last
}

/// The topic's partitions and what `group` has committed for each.
async fn committed_offsets(
    broker: &Kafka,
    topic: &str,
    group: &str,
) -> (Vec<TopicPartition>, BTreeMap<TopicPartition, Option<i64>>) {
    let client = broker.client();
    let coordinator = find_coordinator(&client, group).await.unwrap();
    let partitions: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    let committed = fetch_committed(&client, coordinator, group, &partitions)
        .await
        .unwrap();
    (partitions, committed)
}

/// A small xorshift generator: the kill moments vary from run to run; the seed is printed.
struct Moments(u64);

impl Moments {
    fn between(&mut self, low_ms: u64, high_ms: u64) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_millis(low_ms + self.0 % (high_ms - low_ms))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_sigkilled_at_random_moments_never_skips_a_record() {
    sigkilled_at_random_moments("classic", "delivery-kill", "kill-g").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_protocol_member_sigkilled_at_random_moments_never_skips_a_record() {
    sigkilled_at_random_moments("consumer", "delivery-kill-kip848", "kill-kip848-g").await;
}

async fn sigkilled_at_random_moments(
    protocol: &'static str,
    topic: &'static str,
    group: &'static str,
) {
    let broker = Kafka::shared();
    topic_with_records(broker, topic).await;
    let dir = tempfile::tempdir().unwrap();
    // A dead member stays in the group until its session times out; keep that short.
    let config = config_file(&dir, protocol, 2_000);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut moments = Moments(seed);
    let broker_ref: &'static Kafka = broker;
    let config_ref = config.clone();
    let rounds = tokio::task::spawn_blocking(move || {
        let mut seen: BTreeSet<Printed> = BTreeSet::new();
        let mut duplicates_per_restart = Vec::new();
        let slow = (20, Duration::from_millis(4)); // about 5,000 lines/s at most
        let mut kills = 0;
        for round in 0..5 {
            // A fast consumer may have printed (and committed) everything already: a new
            // member would then have nothing to print before it is killed.
            if seen.len() == RECORDS {
                break;
            }
            kills += 1;
            let mut member = member(&broker_ref.addr(), &config_ref, topic, group, slow);
            member.wait_for_printed(1, Duration::from_secs(60));
            std::thread::sleep(moments.between(200, 1_500));
            let printed = member.kill().printed;
            let duplicates = printed.iter().filter(|p| seen.contains(p)).count();
            if round > 0 {
                duplicates_per_restart.push(duplicates);
            }
            seen.extend(printed);
        }
        assert!(
            kills >= 2,
            "{protocol}, seed {seed}: only {kills} member was killed"
        );
        // The successor reads the rest at full speed, then stops cleanly.
        let mut last = member(
            &broker_ref.addr(),
            &config_ref,
            topic,
            group,
            (0, Duration::ZERO),
        );
        last.wait_for_log("assignment applied", Duration::from_secs(60));
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let printed: BTreeSet<Printed> = last.printed().into_iter().collect();
            if seen.union(&printed).count() == RECORDS {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{protocol}, seed {seed}: the last member stalled"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        last.signal("TERM");
        let Finished {
            status,
            log: stderr,
            printed,
            ..
        } = last.finish(Duration::from_secs(20));
        assert!(
            status.success(),
            "{protocol}, seed {seed}: {status:?}\n{stderr}"
        );
        duplicates_per_restart.push(printed.iter().filter(|p| seen.contains(p)).count());
        seen.extend(printed);
        (seen, duplicates_per_restart)
    });
    let (seen, duplicates) = tokio::time::timeout(Duration::from_secs(240), rounds)
        .await
        .expect("the rounds did not finish in 240 s")
        .unwrap();
    // Every produced record was printed at least once.
    let per_partition = RECORDS as i64 / i64::from(PARTITIONS);
    for partition in 0..i64::from(PARTITIONS) {
        let offsets: Vec<i64> = seen
            .iter()
            .filter(|(p, _)| *p == partition)
            .map(|(_, o)| *o)
            .collect();
        assert_eq!(
            offsets,
            (0..per_partition).collect::<Vec<_>>(),
            "{protocol}, seed {seed}: partition {partition}"
        );
    }
    // Re-delivered after each kill: at most the poll in hand, one flushed poll whose commit
    // was in flight and one waiting behind it.
    eprintln!("{protocol}, seed {seed}: duplicates per restart {duplicates:?}");
    for (restart, count) in duplicates.iter().enumerate() {
        assert!(
            *count <= 3 * MAX_POLL_RECORDS,
            "{protocol}, seed {seed}: restart {restart} re-delivered {count} records: {duplicates:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_commits_what_was_printed_leaves_and_exits_zero() {
    sigterm_commits_and_leaves("classic", "delivery-term", "term-g").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_protocol_member_on_sigterm_commits_what_was_printed_and_leaves() {
    sigterm_commits_and_leaves("consumer", "delivery-term-kip848", "term-kip848-g").await;
}

async fn sigterm_commits_and_leaves(
    protocol: &'static str,
    topic: &'static str,
    group: &'static str,
) {
    let broker = Kafka::shared();
    topic_with_records(broker, topic).await;
    let dir = tempfile::tempdir().unwrap();
    // A long session timeout: a member that did not leave would hold its partitions for it.
    let config = config_file(&dir, protocol, 30_000);
    let broker_ref: &'static Kafka = broker;
    let config_ref = config.clone();
    let first = tokio::task::spawn_blocking(move || {
        let slow = (20, Duration::from_millis(4));
        let mut member = member(&broker_ref.addr(), &config_ref, topic, group, slow);
        member.wait_for_printed(2_000, Duration::from_secs(60));
        member.signal("TERM");
        member.finish(Duration::from_secs(20))
    });
    let Finished {
        status,
        took,
        log: stderr,
        printed,
    } = first.await.unwrap();
    assert!(status.success(), "{status:?}\n{stderr}");
    // Only a consumer-protocol member has a member epoch.
    assert_eq!(
        stderr.contains("member epoch"),
        protocol == "consumer",
        "{protocol}: {stderr}"
    );
    assert!(
        took < Duration::from_secs(10),
        "the clean stop took {took:?}"
    );
    assert!(printed.len() >= 2_000 && printed.len() < RECORDS);

    // What the group committed is exactly the last printed record + 1, per partition.
    let last_printed = last_printed(&printed);
    let (partitions, committed) = committed_offsets(broker, topic, group).await;
    for tp in &partitions {
        let expected = last_printed.get(&tp.partition).map(|o| o + 1);
        let committed = committed.get(tp).copied().flatten();
        assert!(
            committed == expected || (expected.is_none() && committed == Some(0)),
            "{tp}: committed {committed:?}, last printed + 1 = {expected:?}"
        );
    }

    // The next member starts at once (the first one left: no session-timeout wait) and
    // continues exactly where the first stopped.
    let config_ref = config.clone();
    let next = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut member = member(
            &broker_ref.addr(),
            &config_ref,
            topic,
            group,
            (0, Duration::ZERO),
        );
        member.wait_for_printed(1, Duration::from_secs(60));
        let first_record_after = started.elapsed();
        member.wait_for_printed(RECORDS - printed.len(), Duration::from_secs(60));
        member.signal("INT");
        let Finished {
            status,
            log: stderr,
            printed: second,
            ..
        } = member.finish(Duration::from_secs(20));
        (first_record_after, status, stderr, printed, second)
    });
    let (first_record_after, status, stderr, printed, second) = next.await.unwrap();
    assert!(status.success(), "{status:?}\n{stderr}");
    assert!(
        first_record_after < Duration::from_secs(15),
        "the next member waited {first_record_after:?} for its first record"
    );
    let all: BTreeSet<Printed> = printed.iter().chain(&second).copied().collect();
    assert_eq!(all.len(), RECORDS, "every record printed");
    assert_eq!(
        printed.len() + second.len(),
        RECORDS,
        "and none twice: the second member started at the committed offsets"
    );
}

/// A scripted broker (one node, topic `t` with 50 records, a group coordinator) whose
/// LeaveGroup is never answered: a clean stop cannot finish.
async fn broker_that_never_answers_leave_group() -> (FaultCluster, ScriptedCoordinator, ScriptedLog)
{
    let cluster = FaultCluster::start(1).await.unwrap();
    cluster.add_topic("t", &[1]);
    let log = ScriptedLog::install(&cluster);
    log.append("t", 0, 50, |o| o);
    let coordinator = ScriptedCoordinator::install(&cluster);
    cluster.inject(None, ApiKey::LeaveGroup, Fault::Drop);
    (cluster, coordinator, log)
}

fn stuck_stop_config(dir: &tempfile::TempDir, shutdown_timeout_ms: u64) -> String {
    let path = dir.path().join("stuck.toml");
    std::fs::write(
        &path,
        format!(
            "[consumer]\nheartbeat_interval_ms = 300\nfetch_max_wait_ms = 100\n\
             shutdown_timeout_ms = {shutdown_timeout_ms}\n"
        ),
    )
    .unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_signal_during_a_stuck_stop_ends_it_at_once_with_status_1() {
    let (cluster, _coordinator, _log) = broker_that_never_answers_leave_group().await;
    let dir = tempfile::tempdir().unwrap();
    let config = stuck_stop_config(&dir, 60_000);
    let brokers = cluster.addr(1);
    let ended = tokio::task::spawn_blocking(move || {
        let mut member = member(&brokers, &config, "t", "stuck-g", (0, Duration::ZERO));
        member.wait_for_printed(50, Duration::from_secs(30));
        member.signal("TERM");
        std::thread::sleep(Duration::from_millis(800));
        assert!(member.running(), "the stop waits for LeaveGroup");
        member.signal("INT");
        member.finish(Duration::from_secs(5))
    });
    let Finished {
        status,
        took,
        log: stderr,
        printed,
    } = ended.await.unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        took < Duration::from_secs(3),
        "exited {took:?} after the second signal"
    );
    assert!(stderr.contains("SIGINT during the clean stop"), "{stderr}");
    assert_eq!(printed.len(), 50);
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_timeout_ends_a_stuck_stop_with_status_1() {
    let (cluster, _coordinator, _log) = broker_that_never_answers_leave_group().await;
    let dir = tempfile::tempdir().unwrap();
    let config = stuck_stop_config(&dir, 1_000);
    let brokers = cluster.addr(1);
    let ended = tokio::task::spawn_blocking(move || {
        let mut member = member(&brokers, &config, "t", "stuck-g", (0, Duration::ZERO));
        member.wait_for_printed(50, Duration::from_secs(30));
        member.signal("TERM");
        member.finish(Duration::from_secs(10))
    });
    let Finished {
        status,
        took,
        log: stderr,
        ..
    } = ended.await.unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "exited after {took:?}"
    );
    assert!(
        stderr.contains("consumer.shutdown_timeout_ms (1000 ms)"),
        "{stderr}"
    );
}

/// The reader of stdout stops reading for longer than two session timeouts: the member's
/// write to stdout blocks, and its heartbeats go on beside it. It stays in the group (one
/// join, no rejoin), and once the reader reads again every record comes exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_stdout_reader_keeps_the_membership_and_loses_nothing() {
    let broker = Kafka::shared();
    let (topic, group) = ("delivery-stalled-stdout", "stalled-stdout-g");
    topic_with_records(broker, topic).await;
    let dir = tempfile::tempdir().unwrap();
    let session_timeout_ms = 6_000;
    let config = config_file(&dir, "classic", session_timeout_ms);
    let brokers = broker.addr();
    let finished = tokio::task::spawn_blocking(move || {
        // Half the records, then a pause of more than two session timeouts: the pipe fills
        // and the member's write waits for the reader.
        let stall = Duration::from_millis(2 * session_timeout_ms + 1_000);
        let mut member = member(&brokers, &config, topic, group, (RECORDS / 2, stall));
        member.wait_for_printed(RECORDS, Duration::from_secs(90));
        member.stop_cleanly(Duration::from_secs(20))
    })
    .await
    .unwrap();
    let log = &finished.log;
    assert_eq!(log.matches("joined the group").count(), 1, "{log}");
    assert!(!log.contains("rejoining"), "{log}");
    let distinct: BTreeSet<Printed> = finished.printed.iter().copied().collect();
    assert_eq!(distinct.len(), RECORDS, "every record, once");
    assert_eq!(finished.printed.len(), RECORDS, "no record twice");
}

/// SIGTERM while the reader of stdout has stopped reading (a pipeline whose last stage
/// stopped first): the member's write never returns, and the stop goes on without it. It
/// commits only what was written before, leaves the group, and exits 0 within seconds, with
/// the reader still stalled. The next member starts at once and nothing is skipped.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_while_stdout_is_not_read_commits_what_was_written_and_leaves() {
    let broker = Kafka::shared();
    let (topic, group) = ("delivery-term-unread", "term-unread-g");
    topic_with_records(broker, topic).await;
    let dir = tempfile::tempdir().unwrap();
    // A member that did not leave would hold its partitions for the whole session timeout.
    let config = config_file(&dir, "classic", 30_000);
    let read_before_stall = 3_000;
    let (brokers, config_ref) = (broker.addr(), config.clone());
    let first = tokio::task::spawn_blocking(move || {
        let stall = (read_before_stall, Duration::from_secs(25));
        let mut member = member(&brokers, &config_ref, topic, group, stall);
        member.wait_for_printed(read_before_stall, Duration::from_secs(60));
        // The pipe fills and the member's write blocks.
        std::thread::sleep(Duration::from_secs(2));
        member.signal("TERM");
        member.finish(Duration::from_secs(20))
    });
    let Finished {
        status,
        took,
        log,
        printed,
    } = first.await.unwrap();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(
        took < Duration::from_secs(10),
        "the stop took {took:?}\n{log}"
    );
    assert!(log.contains("stdout is not being read"), "{log}");

    // Committed: at least what was read before the stall, never past what was written (the
    // reader read the rest of the pipe after the member exited).
    let last_printed = last_printed(&printed);
    let (partitions, committed) = committed_offsets(broker, topic, group).await;
    let mut committed_records = 0;
    for tp in &partitions {
        let committed = committed.get(tp).copied().flatten().unwrap_or(0);
        let written_end = last_printed.get(&tp.partition).map_or(0, |o| o + 1);
        assert!(
            committed <= written_end,
            "{tp}: committed {committed}, past the last record written + 1 ({written_end})"
        );
        committed_records += committed;
    }
    assert!(
        committed_records >= read_before_stall as i64,
        "committed {committed_records} records, fewer than were read before the stall"
    );

    // The member left: the next one starts at once, at the committed offsets.
    let brokers = broker.addr();
    let next = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut member = member(&brokers, &config, topic, group, (0, Duration::ZERO));
        member.wait_for_printed(1, Duration::from_secs(60));
        let first_record_after = started.elapsed();
        member.wait_for_printed(
            RECORDS - committed_records as usize,
            Duration::from_secs(60),
        );
        (
            first_record_after,
            member.stop_cleanly(Duration::from_secs(20)),
        )
    });
    let (first_record_after, second) = next.await.unwrap();
    assert!(
        first_record_after < Duration::from_secs(15),
        "the next member waited {first_record_after:?} for its first record"
    );
    let all: BTreeSet<Printed> = printed.iter().chain(&second.printed).copied().collect();
    assert_eq!(all.len(), RECORDS, "every record printed");
}
