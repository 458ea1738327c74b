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
use wasmkafka_tests::cli_member::{group_member_args, CliMember, Printed};
use wasmkafka_tests::java::JavaMember;
use wasmkafka_tests::kafka::admin::offsets_written;
use wasmkafka_tests::kafka::Kafka;
use wasmkafka_tests::librdkafka::LibrdkafkaMember;
use wasmkafka_tests::python;

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
    config_file_for(dir, "classic", session_timeout_ms, rebalance_timeout_ms)
}

/// [`config_file`] under a group protocol (`classic` or `consumer`).
fn config_file_for(
    dir: &tempfile::TempDir,
    protocol: &str,
    session_timeout_ms: u64,
    rebalance_timeout_ms: u64,
) -> String {
    let path = dir
        .path()
        .join(format!("member-{protocol}-{session_timeout_ms}.toml"));
    std::fs::write(
        &path,
        format!(
            "[consumer]\ngroup_protocol = \"{protocol}\"\nheartbeat_interval_ms = 300\n\
             session_timeout_ms = {session_timeout_ms}\n\
             rebalance_timeout_ms = {rebalance_timeout_ms}\nfetch_max_wait_ms = 200\n\
             auto_commit_interval_ms = 500\nshutdown_timeout_ms = 15000\n"
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// Waits until a member's log says it applied an assignment with partitions in it.
fn wait_for_share(member: &mut CliMember) {
    member.wait_until("its share", WAIT, |m| {
        m.log()
            .lines()
            .any(|l| l.contains("assignment applied") && !l.contains("assigned=0"))
    });
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
    let count = per_partition as i64;
    let firsts = broker
        .produce_to_each_partition(topic, partitions, count, 100, |partition, i| {
            OutgoingRecord {
                value: Some(Bytes::from(format!("{partition}-{i}"))),
                ..OutgoingRecord::default()
            }
        })
        .await
        .unwrap();
    offsets_written(&firsts, count).into_iter().collect()
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
    let args = group_member_args(
        &config,
        &addr,
        topic,
        "edges-upgrade-g",
        &[
            "--from",
            "earliest",
            "-X",
            "partition.assignment.strategy=cooperative-sticky, range",
        ],
    );
    let mut first = CliMember::start("first", binary(), &args, NO_PACE);
    wait_until_delivered(&mut [&mut first], &wanted, WAIT);
    let mut second = CliMember::start("second", binary(), &args, NO_PACE);
    wait_for_share(&mut second);
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
        member.stop_cleanly(Duration::from_secs(20));
    }
}

/// A partition stopped by reset policy `none` stays a partition-level outcome through a
/// rebalance: the member ends only when nothing it holds *now* can progress. Before the fix
/// the count of stopped partitions was compared with the new assignment, and a member that
/// still had healthy partitions exited with "every assigned partition stopped".
#[tokio::test(flavor = "multi_thread")]
async fn a_partition_stopped_by_none_does_not_end_a_member_that_a_rebalance_leaves_healthy_partitions(
) {
    none_through_a_rebalance("classic", "edges-none", "edges-none-g").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn under_the_consumer_protocol_none_stops_one_partition_and_the_members_go_on() {
    none_through_a_rebalance("consumer", "edges-none-kip848", "edges-none-kip848-g").await;
}

async fn none_through_a_rebalance(protocol: &str, topic: &str, group: &str) {
    let broker = Kafka::shared();
    broker.create_topic(topic, PARTITIONS, &[]).await.unwrap();
    let before = produce(broker, topic, 50).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_file_for(&dir, protocol, 10_000, 10_000);
    let addr = broker.addr();
    // A first run commits offset 50 on every partition.
    let setup_args = group_member_args(
        &config,
        &addr,
        topic,
        group,
        &["--from", "earliest", "--max-records", "200"],
    );
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

    let args = group_member_args(&config, &addr, topic, group, &["--from", "none"]);
    let mut first = CliMember::start("first", binary(), &args, NO_PACE);
    first.wait_for_log("declined to reset", WAIT);
    wait_until_delivered(&mut [&mut first], &healthy, WAIT);
    let mut second = CliMember::start("second", binary(), &args, NO_PACE);
    wait_for_share(&mut second);
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
        member.stop_cleanly(Duration::from_secs(20));
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
    let args = group_member_args(&config, &addr, topic, group, &["--from", "earliest"]);
    let mut stopping = CliMember::start("stopping", binary(), &args, NO_PACE);
    stopping.wait_for_log("assignment applied", WAIT);
    let mut killed = CliMember::start("killed", binary(), &args, NO_PACE);
    wait_for_share(&mut killed);
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
    let stopped = stopping.stop_cleanly(Duration::from_secs(8));
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
    staying.stop_cleanly(Duration::from_secs(20));
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

/// Kafka's other upgrade path: members move to the KIP-848 `consumer` protocol one at a time
/// (`group.protocol=consumer`) while the others still speak classic. Kafka 4.x runs such a
/// mixed group (the migration policy is bidirectional by default): the broker assigns, and
/// classic members get their share through JoinGroup and SyncGroup. Ours (classic) beside a
/// Java member on the consumer protocol: both hold a share and every record is read.
#[tokio::test(flavor = "multi_thread")]
async fn classic_members_beside_consumer_protocol_members_read_every_record() {
    let broker = Kafka::shared();
    let topic = "edges-kip848-mix";
    let group = "edges-kip848-mix-g";
    broker.create_topic(topic, PARTITIONS, &[]).await.unwrap();
    let mut wanted = produce(broker, topic, 200).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(&dir, 10_000, 10_000);
    let addr = broker.addr();
    // The Java member makes the group a consumer-protocol group.
    let java = JavaMember::start_with_protocol(&addr, group, topic, "range", "consumer").unwrap();
    let deadline = Instant::now() + WAIT;
    while java.assignment().len() < PARTITIONS as usize {
        assert!(Instant::now() < deadline, "java: {:?}", java.assignment());
        std::thread::sleep(Duration::from_millis(100));
    }
    let args = group_member_args(&config, &addr, topic, group, &["--from", "earliest"]);
    let mut ours = CliMember::start("ours-classic", binary(), &args, NO_PACE);
    wait_for_share(&mut ours);
    let deadline = Instant::now() + WAIT;
    loop {
        let (theirs, mine) = (java.assignment(), owned_by(&ours));
        if !theirs.is_empty()
            && !mine.is_empty()
            && theirs.len() + mine.len() == PARTITIONS as usize
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "java {theirs:?}, ours {mine:?}\n{}",
            ours.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    wanted.extend(produce(broker, topic, 200).await);
    let deadline = Instant::now() + WAIT;
    loop {
        let printed: BTreeSet<Printed> = ours
            .printed()
            .into_iter()
            .chain(java.records().into_iter().map(|(p, o)| (i64::from(p), o)))
            .collect();
        let missing = wanted.difference(&printed).count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} records never delivered\n{}",
            ours.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    ours.stop_cleanly(Duration::from_secs(20));
    let mut java = java;
    java.stop(Duration::from_secs(30)).unwrap();
}

/// A plugin assignor takes part in the vote like a built-in: `consumer.assignors` names it
/// (by the name it gives itself) where it belongs among the built-ins, and the group chooses
/// by that order. A name that is neither stops the start with the names that exist. (Before,
/// naming a plugin there was refused as "not an assignor", and plugins always came first.)
#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_assignor_takes_its_place_in_the_vote_by_name() {
    let broker = Kafka::shared();
    let topic = "edges-plugin-vote";
    broker.create_topic(topic, PARTITIONS, &[]).await.unwrap();
    produce(broker, topic, 5).await;
    let weighted = wasmkafka_tests::plugins::plugin("assignor-weighted");
    let dir = tempfile::tempdir().unwrap();
    let addr = broker.addr();
    let run = |name: &str, assignors: &str| {
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!(
                "[consumer]\nassignors = {assignors}\nheartbeat_interval_ms = 300\n\n\
                 [[plugins.assignors]]\npath = \"{}\"\n",
                weighted.display()
            ),
        )
        .unwrap();
        let config = path.display().to_string();
        let group = format!("edges-plugin-vote-{name}");
        let args = group_member_args(
            &config,
            &addr,
            topic,
            &group,
            &["--from", "earliest", "--max-records", "20"],
        );
        CliMember::start(name, binary(), &args, NO_PACE).finish(WAIT)
    };
    // Named after a built-in: the built-in is this member's first choice.
    let after = run("after", r#"["cooperative-sticky", "weighted"]"#);
    assert!(after.status.success(), "{}", after.log);
    assert!(
        after.log.contains("protocol_name=cooperative-sticky"),
        "{}",
        after.log
    );
    // Named first: the plugin is.
    let first = run("first", r#"["weighted", "range"]"#);
    assert!(first.status.success(), "{}", first.log);
    assert!(
        first.log.contains("protocol_name=weighted"),
        "{}",
        first.log
    );
    assert_eq!(first.printed.len(), 20);
    // A misspelt name: the start stops and lists what exists.
    let misspelt = run("misspelt", r#"["wieghted", "range"]"#);
    assert!(!misspelt.status.success());
    assert!(
        misspelt.log.contains("`wieghted`")
            && misspelt
                .log
                .contains("range, roundrobin, sticky, cooperative-sticky, weighted"),
        "{}",
        misspelt.log
    );
}

/// Takes in what the librdkafka member reported; fails the test on an error it reported.
fn drain(librdkafka: &mut LibrdkafkaMember) {
    librdkafka.pump();
    assert!(
        librdkafka.errors.is_empty(),
        "librdkafka member: {:?}",
        librdkafka.errors
    );
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
        let args = group_member_args(
            &config,
            &addr,
            topic,
            group,
            &["--from", "earliest", "-X", &strategy],
        );
        CliMember::start(name, binary(), &args, NO_PACE)
    };
    let mut eager = ours("ours-eager", "cooperative-sticky,range");
    wait_until_delivered(&mut [&mut eager], &wanted, WAIT);
    let java = JavaMember::start(&addr, group, topic, "cooperative-sticky,range").unwrap();
    let mut librdkafka =
        LibrdkafkaMember::start(&addr, group, topic, "cooperative-sticky").unwrap();
    let mut cooperative = ours("ours-cooperative", "cooperative-sticky");

    // Every member holds a share, the shares cover the topic once, for two seconds.
    let deadline = Instant::now() + WAIT;
    let mut stable_since: Option<(Instant, Vec<BTreeSet<i64>>)> = None;
    loop {
        drain(&mut librdkafka);
        let shares = vec![
            owned_by(&eager),
            owned_by(&cooperative),
            java.assignment().into_iter().map(i64::from).collect(),
            librdkafka.owned.iter().map(|&p| i64::from(p)).collect(),
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
        drain(&mut librdkafka);
        let printed: BTreeSet<Printed> = eager
            .printed()
            .into_iter()
            .chain(cooperative.printed())
            .chain(java.records().into_iter().map(|(p, o)| (i64::from(p), o)))
            .chain(librdkafka.printed())
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
        member.stop_cleanly(Duration::from_secs(20));
    }
    let mut java = java;
    java.stop(Duration::from_secs(30)).unwrap();
    librdkafka.script.send("stop").unwrap();
    librdkafka
        .script
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

/// A small xorshift generator: every choice of the chaos test comes from its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A chaos member of any client.
enum ChaosMember {
    Ours(CliMember),
    Java(JavaMember),
    Librdkafka(Box<LibrdkafkaMember>),
}

impl ChaosMember {
    fn name(&self) -> String {
        match self {
            ChaosMember::Ours(member) => member.name().to_string(),
            ChaosMember::Java(_) => "java".into(),
            ChaosMember::Librdkafka(_) => "librdkafka".into(),
        }
    }

    fn printed(&mut self) -> Vec<Printed> {
        match self {
            ChaosMember::Ours(member) => member.printed(),
            ChaosMember::Java(java) => java
                .records()
                .into_iter()
                .map(|(p, o)| (i64::from(p), o))
                .collect(),
            ChaosMember::Librdkafka(member) => {
                drain(member);
                member.printed()
            }
        }
    }

    /// Panics (with `context`) if the member ended without being told to.
    fn assert_running(&mut self, context: &str) {
        let running = match self {
            ChaosMember::Ours(member) => member.running(),
            ChaosMember::Java(java) => !java.has_exited(),
            ChaosMember::Librdkafka(member) => {
                drain(member);
                true
            }
        };
        if !running {
            let log = match self {
                ChaosMember::Ours(member) => member.log(),
                _ => String::new(),
            };
            panic!("{} ended untold; {context}\n{log}", self.name());
        }
    }

    /// A clean stop (SIGTERM for ours); returns what it printed. Ours must exit 0.
    async fn stop(self, context: &str) -> Vec<Printed> {
        match self {
            ChaosMember::Ours(member) => {
                member.signal("TERM");
                let finished = member.finish(Duration::from_secs(20));
                assert!(
                    finished.status.success(),
                    "SIGTERM: {}; {context}\n{}",
                    finished.status,
                    finished.log
                );
                finished.printed
            }
            ChaosMember::Java(mut java) => {
                java.stop(Duration::from_secs(30)).unwrap();
                java.records()
                    .into_iter()
                    .map(|(p, o)| (i64::from(p), o))
                    .collect()
            }
            ChaosMember::Librdkafka(member) => {
                let mut member = *member;
                drain(&mut member);
                let mut printed = member.printed();
                member.script.send("stop").unwrap();
                for event in member.script.finish(Duration::from_secs(30)).await.unwrap() {
                    if event["event"] == "records" {
                        for record in event["records"].as_array().unwrap() {
                            printed
                                .push((record[0].as_i64().unwrap(), record[1].as_i64().unwrap()));
                        }
                    }
                }
                printed
            }
        }
    }
}

/// The group contract under churn: members of three clients with different strategy lists
/// (ours: `range`, `cooperative-sticky,range`, `roundrobin,range`, `sticky,range`; Java:
/// `cooperative-sticky,range`; librdkafka: `range`) join, leave and get SIGTERM (any) or
/// SIGKILL (ours) at random moments while records flow into 8 partitions. At the end every
/// produced record was delivered at least once, and no member ended unless told to (a
/// SIGTERMed one of ours exits 0). Seeded: `WASMKAFKA_CHAOS_SEED=N` replays a run (the seed
/// is printed; the rounds as well); `WASMKAFKA_CHAOS_EVENTS=N` sets how many events (20).
#[tokio::test(flavor = "multi_thread")]
async fn group_chaos_with_mixed_clients_loses_nothing() {
    const CHAOS_PARTITIONS: i32 = 8;
    // About a minute by default; `WASMKAFKA_CHAOS_EVENTS=200` runs for about ten.
    let events: usize = std::env::var("WASMKAFKA_CHAOS_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    python::ready().await.unwrap();
    let seed = std::env::var("WASMKAFKA_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("chaos seed {seed} (WASMKAFKA_CHAOS_SEED={seed} replays the choices)");
    let mut rng = Rng(seed);
    let broker = Kafka::shared();
    let topic = "edges-chaos";
    let group = "edges-chaos-g";
    broker
        .create_topic(topic, CHAOS_PARTITIONS, &[])
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A SIGKILLed member holds each rebalance until its 6 s session expires.
    let config = config_file(&dir, 6_000, 10_000);
    let addr = broker.addr();

    // Records flow all along: 5 per partition every 100 ms.
    let written = std::sync::Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let producing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let producer = {
        let (written, producing) = (written.clone(), producing.clone());
        tokio::spawn(async move {
            while producing.load(std::sync::atomic::Ordering::SeqCst) {
                let batch = produce_to(broker, topic, CHAOS_PARTITIONS, 5).await;
                written.lock().unwrap().extend(batch);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let lists = [
        "range",
        "cooperative-sticky,range",
        "roundrobin,range",
        "sticky,range",
    ];
    let mut started = 0;
    let mut start = |rng: &mut Rng, kinds: u64| -> ChaosMember {
        started += 1;
        match rng.below(kinds) {
            0 => ChaosMember::Java(
                JavaMember::start(&addr, group, topic, "cooperative-sticky,range").unwrap(),
            ),
            1 => ChaosMember::Librdkafka(Box::new(
                LibrdkafkaMember::start(&addr, group, topic, "range").unwrap(),
            )),
            _ => {
                let list = lists[rng.below(lists.len() as u64) as usize];
                let strategy = format!("partition.assignment.strategy={list}");
                let name = format!("ours-{started}-{list}");
                let args = group_member_args(
                    &config,
                    &addr,
                    topic,
                    group,
                    &["--from", "earliest", "-X", &strategy],
                );
                ChaosMember::Ours(CliMember::start(&name, binary(), &args, NO_PACE))
            }
        }
    };
    let mut live: Vec<ChaosMember> = Vec::new();
    let mut delivered: BTreeSet<Printed> = BTreeSet::new();
    let mut rounds: Vec<String> = Vec::new();
    for _ in 0..3 {
        let member = start(&mut rng, 6);
        rounds.push(format!("start {}", member.name()));
        live.push(member);
    }
    for _ in 0..events {
        tokio::time::sleep(Duration::from_millis(1_500 + rng.below(2_000))).await;
        let context = format!("seed {seed}; rounds: {rounds:?}");
        for member in &mut live {
            member.assert_running(&context);
        }
        let action = if live.len() < 3 {
            0
        } else if live.len() >= 5 {
            1 + rng.below(2)
        } else {
            rng.below(3)
        };
        match action {
            0 => {
                let member = start(&mut rng, 6);
                rounds.push(format!("start {}", member.name()));
                live.push(member);
            }
            1 => {
                let member = live.remove(rng.below(live.len() as u64) as usize);
                rounds.push(format!("stop {}", member.name()));
                delivered.extend(member.stop(&context).await);
            }
            _ => {
                // SIGKILL one of ours (the other clients' sessions are long: they stop).
                let ours: Vec<usize> = (0..live.len())
                    .filter(|i| matches!(live[*i], ChaosMember::Ours(_)))
                    .collect();
                if ours.is_empty() {
                    continue;
                }
                let index = ours[rng.below(ours.len() as u64) as usize];
                let ChaosMember::Ours(member) = live.remove(index) else {
                    unreachable!("picked among ours")
                };
                rounds.push(format!("kill {}", member.name()));
                delivered.extend(member.kill().printed);
            }
        }
    }
    producing.store(false, std::sync::atomic::Ordering::SeqCst);
    producer.await.unwrap();
    let written = written.lock().unwrap().clone();
    let context = format!("seed {seed}; rounds: {rounds:?}");
    // Everyone left standing reads on until every record was delivered by someone.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut seen = delivered.clone();
        for member in &mut live {
            member.assert_running(&context);
            seen.extend(member.printed());
        }
        let missing: Vec<&Printed> = written.difference(&seen).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} records never delivered (first {:?}); {context}",
            missing.len(),
            written.len(),
            &missing[..missing.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "chaos: {} records over {CHAOS_PARTITIONS} partitions, every one delivered; {context}",
        written.len()
    );
    for member in live {
        member.stop(&context).await;
    }
}
