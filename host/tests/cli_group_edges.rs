//! Groups at the edges a real deployment reaches, with real `wasmkafka run --group`
//! processes on Apache Kafka: Kafka's documented eager -> cooperative upgrade (step one: every
//! member lists `cooperative-sticky,range`), a partition stopped by reset policy `none`
//! through a rebalance, SIGTERM while the coordinator holds a JoinGroup, and a broker first in
//! the bootstrap list that accepts connections and never answers.
//!
//! Every test checks delivery too: what was produced is printed by some member, at least once.
//! One test mixes clients: ours beside the Java consumer and librdkafka mid-way through the
//! upgrade.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use wasmkafka::produce::OutgoingRecord;
use wasmkafka_tests::cli_member::{CliMember, Printed};
use wasmkafka_tests::java::JavaMember;
use wasmkafka_tests::kafka::Kafka;
use wasmkafka_tests::python::{self, Script};

const PARTITIONS: i32 = 4;
const WAIT: Duration = Duration::from_secs(60);
const NO_PACE: (usize, Duration) = (0, Duration::ZERO);

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_wasmkafka"))
}

/// A member config with quick heartbeats; the session and rebalance timeouts as given.
fn config_file(
    dir: &tempfile::TempDir,
    session_timeout_ms: u64,
    rebalance_timeout_ms: u64,
) -> String {
    let path = dir.path().join(format!("member-{session_timeout_ms}.toml"));
    std::fs::write(
        &path,
        format!(
            "[consumer]\nheartbeat_interval_ms = 300\nsession_timeout_ms = {session_timeout_ms}\n\
             rebalance_timeout_ms = {rebalance_timeout_ms}\nfetch_max_wait_ms = 200\n\
             auto_commit_interval_ms = 500\nshutdown_timeout_ms = 15000\n"
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// Produces `per_partition` records to each of the `PARTITIONS`; returns the offsets written.
async fn produce(broker: &Kafka, topic: &str, per_partition: usize) -> BTreeSet<Printed> {
    produce_to(broker, topic, PARTITIONS, per_partition).await
}

/// Produces `per_partition` records to each of `partitions`; returns the offsets written.
async fn produce_to(
    broker: &Kafka,
    topic: &str,
    partitions: i32,
    per_partition: usize,
) -> BTreeSet<Printed> {
    let client = broker.client();
    let mut written = BTreeSet::new();
    for partition in 0..partitions {
        let records: Vec<OutgoingRecord> = (0..per_partition)
            .map(|i| OutgoingRecord {
                value: Some(Bytes::from(format!("{partition}-{i}"))),
                ..OutgoingRecord::default()
            })
            .collect();
        let first = broker
            .produce(&client, topic, partition, &records, 100)
            .await
            .unwrap();
        written.extend((first..first + per_partition as i64).map(|o| (partition as i64, o)));
    }
    client.close();
    written
}

/// Waits until the members together printed every record of `wanted`.
fn wait_until_delivered(
    members: &mut [&mut CliMember],
    wanted: &BTreeSet<Printed>,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let printed: BTreeSet<Printed> = members.iter().flat_map(|m| m.printed()).collect();
        let missing: Vec<&Printed> = wanted.difference(&printed).collect();
        if missing.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = members
                .iter()
                .map(|m| {
                    format!(
                        "--- {} printed {}:\n{}",
                        m.name(),
                        m.printed_count(),
                        m.log()
                    )
                })
                .collect();
            panic!(
                "{} of {} records never delivered (first: {:?});\n{}",
                missing.len(),
                wanted.len(),
                &missing[..missing.len().min(5)],
                logs.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kafka's upgrade, step one: every member lists `cooperative-sticky,range`, so the group
/// chooses cooperative-sticky while each member still rebalances eagerly (range is eager).
/// Before the fix a member named the partitions its eager join had given up as owned; the
/// cooperative-sticky leader held back those that moved and waited for a follow-up round no
/// eager member asks for: the joiner got nothing and half the partitions went unread.
#[tokio::test(flavor = "multi_thread")]
async fn upgrade_step_one_a_joiner_gets_its_share_and_every_record_is_read() {
    let broker = Kafka::shared();
    let topic = "edges-upgrade";
    broker.create_topic(topic, PARTITIONS, &[]).await.unwrap();
    let mut wanted = produce(broker, topic, 500).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(&dir, 10_000, 10_000);
    let addr = broker.addr();
    let args = [
        "--config",
        &config,
        "--brokers",
        &addr,
        "--topic",
        topic,
        "--group",
        "edges-upgrade-g",
        "--from",
        "earliest",
        "-X",
        "partition.assignment.strategy=cooperative-sticky,range",
    ];
    let mut first = CliMember::start("first", binary(), &args, NO_PACE);
    wait_until_delivered(&mut [&mut first], &wanted, WAIT);
    let mut second = CliMember::start("second", binary(), &args, NO_PACE);
    second.wait_until("its share", WAIT, |m| {
        m.log()
            .lines()
            .any(|l| l.contains("assignment applied") && !l.contains("assigned=0"))
    });
    // The group chose cooperative-sticky (both list it first).
    assert!(
        second.log().contains("protocol_name=cooperative-sticky"),
        "{}",
        second.log()
    );
    // In the round it joined: the eager first member claimed nothing it had given up, so
    // the leader held nothing back and no follow-up round was needed.
    let first_assignment = second
        .log()
        .lines()
        .find(|l| l.contains("assignment applied"))
        .unwrap()
        .to_string();
    assert!(first_assignment.contains("assigned=2"), "{}", second.log());
    assert_eq!(
        first.log_count("held back") + second.log_count("held back"),
        0,
        "{}\n{}",
        first.log(),
        second.log()
    );
    wanted.extend(produce(broker, topic, 500).await);
    wait_until_delivered(&mut [&mut first, &mut second], &wanted, WAIT);
    assert!(
        second.printed_count() > 0,
        "the joiner printed nothing:\n{}",
        second.log()
    );
    assert!(first.running() && second.running());
    for member in [first, second] {
        member.signal("TERM");
        let finished = member.finish(Duration::from_secs(20));
        assert!(finished.status.success(), "{}", finished.log);
    }
}

/// A partition stopped by reset policy `none` stays a partition-level outcome through a
/// rebalance: the member ends only when nothing it holds *now* can progress. Before the fix
/// the count of stopped partitions was compared with the new assignment, and a member that
/// still had healthy partitions exited with "every assigned partition stopped".
#[tokio::test(flavor = "multi_thread")]
async fn a_partition_stopped_by_none_does_not_end_a_member_that_a_rebalance_leaves_healthy_partitions(
) {
    let broker = Kafka::shared();
    let topic = "edges-none";
    let group = "edges-none-g";
    broker.create_topic(topic, PARTITIONS, &[]).await.unwrap();
    let before = produce(broker, topic, 50).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(&dir, 10_000, 10_000);
    let addr = broker.addr();
    // A first run commits offset 50 on every partition.
    let setup_args = [
        "--config",
        &config,
        "--brokers",
        &addr,
        "--topic",
        topic,
        "--group",
        group,
        "--from",
        "earliest",
        "--max-records",
        "200",
    ];
    let setup = CliMember::start("setup", binary(), &setup_args, NO_PACE).finish(WAIT);
    assert!(setup.status.success(), "{}", setup.log);
    assert_eq!(
        setup.printed.iter().copied().collect::<BTreeSet<_>>(),
        before
    );
    let after = produce(broker, topic, 50).await;
    // Partition 0's commit (50) falls below its new log start: out of range, and `none`.
    broker.delete_records(topic, 0, 80).await.unwrap();
    let healthy: BTreeSet<Printed> = after.iter().filter(|(p, _)| *p != 0).copied().collect();

    let args = [
        "--config",
        &config,
        "--brokers",
        &addr,
        "--topic",
        topic,
        "--group",
        group,
        "--from",
        "none",
    ];
    let mut first = CliMember::start("first", binary(), &args, NO_PACE);
    first.wait_for_log("declined to reset", WAIT);
    wait_until_delivered(&mut [&mut first], &healthy, WAIT);
    let mut second = CliMember::start("second", binary(), &args, NO_PACE);
    second.wait_until("its share", WAIT, |m| {
        m.log()
            .lines()
            .any(|l| l.contains("assignment applied") && !l.contains("assigned=0"))
    });
    // Whoever holds partition 0 now stops it again; both go on with the rest.
    let settled = Instant::now() + Duration::from_secs(5);
    while Instant::now() < settled {
        assert!(first.running(), "the first member ended:\n{}", first.log());
        assert!(
            second.running(),
            "the second member ended:\n{}",
            second.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let later = produce(broker, topic, 20).await;
    let later_healthy: BTreeSet<Printed> = later.into_iter().filter(|(p, _)| *p != 0).collect();
    wait_until_delivered(&mut [&mut first, &mut second], &later_healthy, WAIT);
    let printed: Vec<Printed> = first
        .printed()
        .into_iter()
        .chain(second.printed())
        .collect();
    assert!(
        printed.iter().all(|(p, o)| *p != 0 || *o < 50),
        "partition 0 was read past its refused reset: {printed:?}"
    );
    for member in [first, second] {
        member.signal("TERM");
        let finished = member.finish(Duration::from_secs(20));
        assert!(finished.status.success(), "{}", finished.log);
    }
}

/// SIGTERM while the coordinator holds this member's JoinGroup (a rolling deploy: a killed
/// member's session has not expired, so the join barrier waits for it) ends in a LeaveGroup
/// and exit 0 within seconds, never in another round. Before the fix the stop was seen only
/// once the barrier released the join: the member synced, rejoined and ran out its shutdown
/// timeout. Nothing is skipped: the member left standing prints the rest.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_while_the_join_barrier_holds_leaves_within_seconds() {
    let broker = Kafka::shared();
    let topic = "edges-stop-joining";
    let group = "edges-stop-joining-g";
    broker.create_topic(topic, PARTITIONS, &[]).await.unwrap();
    let mut wanted = produce(broker, topic, 300).await;
    let dir = tempfile::tempdir().unwrap();
    // A dead member holds the barrier until its 20 s session (or the rebalance) times out.
    let config = config_file(&dir, 20_000, 20_000);
    let addr = broker.addr();
    let args = [
        "--config",
        &config,
        "--brokers",
        &addr,
        "--topic",
        topic,
        "--group",
        group,
        "--from",
        "earliest",
    ];
    let mut stopping = CliMember::start("stopping", binary(), &args, NO_PACE);
    stopping.wait_for_log("assignment applied", WAIT);
    let mut killed = CliMember::start("killed", binary(), &args, NO_PACE);
    killed.wait_until("its share", WAIT, |m| {
        m.log()
            .lines()
            .any(|l| l.contains("assignment applied") && !l.contains("assigned=0"))
    });
    let killed = killed.kill();
    // A third member's join starts a round the dead one never answers.
    let mut staying = CliMember::start("staying", binary(), &args, NO_PACE);
    let rounds_before = stopping.log_count("joined the group");
    staying.wait_for_log("joining the group", WAIT);
    // The stopping member's heartbeat hears of the round and it sends its JoinGroup, which
    // the coordinator now holds.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        stopping.log_count("joined the group"),
        rounds_before,
        "the round completed before the stop; the test needs it held:\n{}",
        stopping.log()
    );
    stopping.signal("TERM");
    let stopped = stopping.finish(Duration::from_secs(8));
    assert!(stopped.status.success(), "{}", stopped.log);
    assert!(stopped.log.contains("left the group"), "{}", stopped.log);
    assert_eq!(
        stopped.log.matches("joined the group").count(),
        rounds_before,
        "it joined another round after the stop:\n{}",
        stopped.log
    );
    // The member left standing gets every partition once the dead one is out, and prints
    // whatever was not printed (and committed) before.
    wanted.extend(produce(broker, topic, 100).await);
    let printed_before: BTreeSet<Printed> = stopped
        .printed
        .iter()
        .chain(&killed.printed)
        .copied()
        .collect();
    let rest: BTreeSet<Printed> = wanted.difference(&printed_before).copied().collect();
    wait_until_delivered(&mut [&mut staying], &rest, WAIT);
    staying.signal("TERM");
    let finished = staying.finish(Duration::from_secs(20));
    assert!(finished.status.success(), "{}", finished.log);
}

/// A broker first in the bootstrap list that accepts connections and never answers (a
/// frozen VM) costs one hedge delay, not a request timeout: Metadata goes to the next
/// address beside it. Before the fix the start waited out the 30 s request timeout.
#[tokio::test(flavor = "multi_thread")]
async fn a_hung_broker_first_in_the_bootstrap_list_does_not_stall_the_start() {
    let broker = Kafka::shared();
    let topic = "edges-hung-bootstrap";
    broker.create_topic(topic, PARTITIONS, &[]).await.unwrap();
    let wanted = produce(broker, topic, 25).await;
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hung_addr = hung.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for socket in hung.incoming() {
            held.push(socket);
        }
    });
    let brokers = format!("{hung_addr},{}", broker.addr());
    let args = [
        "--brokers",
        &brokers,
        "--topic",
        topic,
        "--group",
        "edges-hung-g",
        "--from",
        "earliest",
        "--max-records",
        "100",
    ];
    let started = Instant::now();
    let finished = CliMember::start("hung-first", binary(), &args, NO_PACE).finish(WAIT);
    let took = started.elapsed();
    assert!(finished.status.success(), "{}", finished.log);
    assert_eq!(
        finished.printed.iter().copied().collect::<BTreeSet<_>>(),
        wanted
    );
    // Far below the 30 s request timeout the start used to wait out.
    assert!(
        took < Duration::from_secs(15),
        "took {took:?}:\n{}",
        finished.log
    );
    eprintln!("with a hung first bootstrap broker: 100 records and a clean stop in {took:?}");
}

/// What a librdkafka member (tests/python/member.py) said so far.
#[derive(Default)]
struct Librdkafka {
    owned: BTreeSet<i64>,
    printed: Vec<Printed>,
}

impl Librdkafka {
    fn drain(&mut self, script: &mut Script) {
        while let Some(event) = script.try_next() {
            match event["event"].as_str() {
                Some("assigned" | "revoked" | "lost") => {
                    self.owned = event["owned"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| p.as_i64().unwrap())
                        .collect();
                }
                Some("records") => {
                    for record in event["records"].as_array().unwrap() {
                        self.printed
                            .push((record[0].as_i64().unwrap(), record[1].as_i64().unwrap()));
                    }
                }
                Some("error") => panic!("librdkafka member: {event}"),
                _ => {}
            }
        }
    }
}

/// Kafka's upgrade mid-way through its second rolling bounce, with three clients in one
/// classic group: ours and the Java consumer still list `cooperative-sticky,range` (eager),
/// ours and librdkafka already list `cooperative-sticky` alone (cooperative). The group
/// chooses cooperative-sticky; eager members give everything up each round and claim
/// nothing, cooperative ones keep what they keep. Every member ends up with a share of the
/// 8 partitions and every record is read.
#[tokio::test(flavor = "multi_thread")]
async fn upgrade_mid_bounce_with_java_and_librdkafka_members_reads_every_record() {
    const MIXED_PARTITIONS: i32 = 8;
    python::ready().await.unwrap();
    let broker = Kafka::shared();
    let topic = "edges-mixed-upgrade";
    let group = "edges-mixed-upgrade-g";
    broker
        .create_topic(topic, MIXED_PARTITIONS, &[])
        .await
        .unwrap();
    let mut wanted = produce_to(broker, topic, MIXED_PARTITIONS, 200).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(&dir, 10_000, 10_000);
    let addr = broker.addr();
    let ours = |name: &str, strategy: &str| {
        let strategy = format!("partition.assignment.strategy={strategy}");
        let args = [
            "--config",
            &config,
            "--brokers",
            &addr,
            "--topic",
            topic,
            "--group",
            group,
            "--from",
            "earliest",
            "-X",
            &strategy,
        ];
        CliMember::start(name, binary(), &args, NO_PACE)
    };
    let mut eager = ours("ours-eager", "cooperative-sticky,range");
    wait_until_delivered(&mut [&mut eager], &wanted, WAIT);
    let java = JavaMember::start(&addr, group, topic, "cooperative-sticky,range").unwrap();
    let mut librdkafka_script =
        Script::spawn("member.py", &[&addr, group, topic, "cooperative-sticky"]).unwrap();
    let mut librdkafka = Librdkafka::default();
    let mut cooperative = ours("ours-cooperative", "cooperative-sticky");

    // Every member holds a share, the shares cover the topic once, for two seconds.
    let deadline = Instant::now() + WAIT;
    let mut stable_since: Option<(Instant, Vec<BTreeSet<i64>>)> = None;
    loop {
        librdkafka.drain(&mut librdkafka_script);
        let shares = vec![
            owned_by(&eager),
            owned_by(&cooperative),
            java.assignment().into_iter().map(i64::from).collect(),
            librdkafka.owned.clone(),
        ];
        let total: usize = shares.iter().map(BTreeSet::len).sum();
        let union: BTreeSet<i64> = shares.iter().flatten().copied().collect();
        let split = total == MIXED_PARTITIONS as usize
            && union.len() == MIXED_PARTITIONS as usize
            && shares.iter().all(|s| !s.is_empty());
        match &stable_since {
            Some((since, last)) if split && *last == shares => {
                if since.elapsed() > Duration::from_secs(2) {
                    break;
                }
            }
            _ => stable_since = split.then(|| (Instant::now(), shares.clone())),
        }
        assert!(
            Instant::now() < deadline,
            "no stable split: ours-eager {:?}, ours-cooperative {:?}, java {:?}, librdkafka {:?}\n{}\n{}",
            shares[0], shares[1], shares[2], shares[3], eager.log(), cooperative.log()
        );
        assert!(eager.running() && cooperative.running());
        std::thread::sleep(Duration::from_millis(100));
    }
    wanted.extend(produce_to(broker, topic, MIXED_PARTITIONS, 200).await);
    let deadline = Instant::now() + WAIT;
    loop {
        librdkafka.drain(&mut librdkafka_script);
        let printed: BTreeSet<Printed> = eager
            .printed()
            .into_iter()
            .chain(cooperative.printed())
            .chain(java.records().into_iter().map(|(p, o)| (i64::from(p), o)))
            .chain(librdkafka.printed.iter().copied())
            .collect();
        let missing = wanted.difference(&printed).count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} records never delivered\n{}\n{}",
            eager.log(),
            cooperative.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for member in [eager, cooperative] {
        member.signal("TERM");
        let finished = member.finish(Duration::from_secs(20));
        assert!(finished.status.success(), "{}", finished.log);
    }
    let mut java = java;
    java.stop(Duration::from_secs(30)).unwrap();
    librdkafka_script.send("stop").unwrap();
    librdkafka_script
        .finish(Duration::from_secs(30))
        .await
        .unwrap();
}

/// The partitions a member's log says it holds now (its last "assignment applied" and the
/// "partitions assigned/revoked/lost" lines since).
fn owned_by(member: &CliMember) -> BTreeSet<i64> {
    let mut owned = BTreeSet::new();
    for line in member.log().lines() {
        let change = if line.contains("partitions assigned") {
            Some(true)
        } else if line.contains("partitions revoked") || line.contains("partitions lost") {
            Some(false)
        } else {
            None
        };
        let Some(added) = change else { continue };
        for piece in line.split("partition: ").skip(1) {
            let number: String = piece.chars().take_while(char::is_ascii_digit).collect();
            let partition: i64 = number.parse().unwrap();
            if added {
                owned.insert(partition);
            } else {
                owned.remove(&partition);
            }
        }
    }
    owned
}
