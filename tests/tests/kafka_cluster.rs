//! A three-node Apache Kafka cluster (KRaft, replication factor 3) loses a node, by SIGKILL,
//! under a consuming group of two wasmkafka members (auto-commit on) while a producer writes
//! with `acks = -1`:
//!
//! - `killing_a_partition_leader_moves_fetching_to_the_new_leaders`: the node that leads some
//!   of the partitions (not the group coordinator) dies. Consumption continues on the new
//!   leaders, the group survives, every acked record is delivered, re-delivery stays within one
//!   commit window, each member's Fetch connections follow the new leaders and nothing stays
//!   open to the dead node. Then the node comes back and the cluster is whole again.
//! - `killing_the_group_coordinator_moves_the_group_to_the_new_coordinator`: the coordinator
//!   of the group dies. The members find the new one, committed offsets advance again, nothing
//!   acked is lost.
//!
//! Each test starts its own cluster (a node is killed); they run one after the other (three
//! JVMs at a time are enough for two cores). Every wait has a deadline.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use wasmkafka::client::Client;
use wasmkafka::fetch::TopicPartition;
use wasmkafka::group::coordinator::find_coordinator;
use wasmkafka::group::offsets::fetch_committed;
use wasmkafka::group::{Builtin, GroupConsumer, GroupOptions, LoggingListener};
use wasmkafka::net::Purpose;
use wasmkafka::produce::{OutgoingRecord, ProduceError};
use wasmkafka_tests::group::start_earliest_member;
use wasmkafka_tests::kafka::Kafka;

/// Deadline of every wait for the cluster or the group.
const WAIT: Duration = Duration::from_secs(90);
const PARTITIONS: i32 = 6;
const MEMBERS: usize = 2;
const AUTO_COMMIT: Duration = Duration::from_millis(200);
/// Records per produced batch, and the pause between one partition's batches.
const BATCH: usize = 10;
const PRODUCE_PAUSE: Duration = Duration::from_millis(100);
/// How long after a successful commit a member may have handed out records the next owner
/// gets again: one auto-commit interval plus the time the commit itself takes (generous: two
/// cores shared with three JVMs and other builds).
const COMMIT_WINDOW: Duration = Duration::from_secs(2);

/// One cluster at a time: both tests kill and restart nodes of their own cluster.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A record handed out by a member's `poll`.
#[derive(Debug, Clone)]
struct Delivery {
    member: usize,
    partition: i32,
    offset: i64,
    value: String,
    at: Instant,
}

/// What the pollers and producers saw.
#[derive(Default)]
struct Log {
    seen: Mutex<Vec<Delivery>>,
    /// (partition, offset) -> (value, when the ack came).
    acked: Mutex<BTreeMap<(i32, i64), (String, Instant)>>,
    poll_errors: Mutex<Vec<String>>,
    /// Produce failures by kind, with the time of the first and the last.
    produce_errors: Mutex<BTreeMap<String, (usize, Instant, Instant)>>,
}

impl Log {
    /// The highest acked offset per partition.
    fn acked_high(&self) -> BTreeMap<i32, i64> {
        let mut high = BTreeMap::new();
        for (partition, offset) in self.acked.lock().unwrap().keys() {
            high.insert(*partition, *offset);
        }
        high
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.seen.lock().unwrap().clone()
    }
}

/// The group under test, its producer and an observer client (metadata, committed offsets).
struct Scenario {
    kafka: Kafka,
    topic: String,
    group: String,
    /// Each member's client (shared with its `GroupConsumer`): its pool is inspected.
    clients: Vec<Client>,
    members: Vec<Arc<GroupConsumer>>,
    pollers: Vec<tokio::task::JoinHandle<()>>,
    producers: Vec<tokio::task::JoinHandle<()>>,
    stop_producing: Arc<AtomicBool>,
    stop_polling: Arc<AtomicBool>,
    log: Arc<Log>,
    producer_client: Client,
    observer: Client,
}

impl Scenario {
    /// Starts a cluster, a topic, the producers and two members; returns once the group is
    /// settled and records flow on every partition.
    async fn start(name: &str) -> Scenario {
        let started = Instant::now();
        let kafka = Kafka::cluster().await.expect("a three-node cluster");
        let startup = started.elapsed();
        println!(
            "cluster start-up: {startup:?}; JVM RSS: {}",
            rss_report(&kafka)
        );
        let topic = format!("{name}-topic");
        let group = format!("{name}-group");
        kafka.create_topic(&topic, PARTITIONS, &[]).await.unwrap();
        let log = Arc::new(Log::default());
        let stop_producing = Arc::new(AtomicBool::new(false));
        let stop_polling = Arc::new(AtomicBool::new(false));
        let producer_client = kafka.client();
        let producers = (0..PARTITIONS)
            .map(|partition| {
                tokio::spawn(produce_forever(
                    producer_client.clone(),
                    topic.clone(),
                    partition,
                    log.clone(),
                    stop_producing.clone(),
                ))
            })
            .collect();
        let clients: Vec<Client> = (0..MEMBERS).map(|_| kafka.client()).collect();
        let members: Vec<Arc<GroupConsumer>> = clients
            .iter()
            .map(|client| {
                Arc::new(start_earliest_member(
                    client.clone(),
                    GroupOptions {
                        session_timeout: Duration::from_secs(10),
                        rebalance_timeout: Duration::from_secs(10),
                        heartbeat_interval: Duration::from_millis(300),
                        auto_commit_interval: Some(AUTO_COMMIT),
                        ..GroupOptions::new(group.clone(), vec![topic.clone()])
                    },
                    vec![Builtin::Range.into_assignor()],
                    Arc::new(LoggingListener),
                ))
            })
            .collect();
        let pollers = members
            .iter()
            .enumerate()
            .map(|(index, member)| {
                keep_polling(member.clone(), index, log.clone(), stop_polling.clone())
            })
            .collect();
        let scenario = Scenario {
            observer: kafka.client(),
            kafka,
            topic,
            group,
            clients,
            members,
            pollers,
            producers,
            stop_producing,
            stop_polling,
            log,
            producer_client,
        };
        scenario.settle().await;
        // Records flow on every partition before anything is killed.
        let now = scenario.delivered_high();
        scenario
            .wait_for_progress(&now, &scenario.all_partitions(), "before the kill")
            .await;
        scenario
    }

    fn all_partitions(&self) -> BTreeSet<i32> {
        (0..PARTITIONS).collect()
    }

    fn tp(&self, partition: i32) -> TopicPartition {
        TopicPartition::new(&self.topic, partition)
    }

    /// Waits until the members settle (see [`wasmkafka_tests::group::settle`]).
    async fn settle(&self) {
        wasmkafka_tests::group::settle(&self.members, PARTITIONS as usize, WAIT)
            .await
            .unwrap_or_else(|error| panic!("{error}\n{}", self.kafka.logs()));
    }

    /// The highest offset delivered so far, per partition.
    fn delivered_high(&self) -> BTreeMap<i32, i64> {
        let mut high = BTreeMap::new();
        for delivery in self.log.seen.lock().unwrap().iter() {
            let entry = high.entry(delivery.partition).or_insert(-1);
            *entry = (*entry).max(delivery.offset);
        }
        high
    }

    /// Waits until every partition of `partitions` has delivered an offset above `above`
    /// (records written after that point were consumed); returns how long it took.
    async fn wait_for_progress(
        &self,
        above: &BTreeMap<i32, i64>,
        partitions: &BTreeSet<i32>,
        what: &str,
    ) -> Duration {
        let started = Instant::now();
        let deadline = started + WAIT;
        loop {
            let high = self.delivered_high();
            let behind: Vec<i32> = partitions
                .iter()
                .copied()
                .filter(|p| {
                    high.get(p).copied().unwrap_or(-1) <= above.get(p).copied().unwrap_or(-1)
                })
                .collect();
            if behind.is_empty() {
                return started.elapsed();
            }
            assert!(
                Instant::now() < deadline,
                "{what}: no new records from partitions {behind:?} within {WAIT:?}; delivered up to \
                 {high:?}, acked up to {:?}; poll errors {:?}; members: {:#?}\n{}",
                self.log.acked_high(),
                self.log.poll_errors.lock().unwrap(),
                self.member_report(),
                self.kafka.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn member_report(&self) -> Vec<String> {
        self.members
            .iter()
            .zip(&self.clients)
            .map(|(member, client)| {
                format!(
                    "assignment {:?} generation {} states {:?} stats {:?} pool {:?} open {:?}",
                    member
                        .assignment()
                        .iter()
                        .map(|tp| tp.partition)
                        .collect::<Vec<_>>(),
                    member.identity().generation,
                    member.consumer().assignment(),
                    member.consumer().stats(),
                    client.pool().stats(),
                    open_keys(client)
                )
            })
            .collect()
    }

    /// Waits until the metadata names a live leader (not `dead`) for each partition of the
    /// topic; returns the leaders and how long it took.
    async fn wait_for_new_leaders(&self, dead: i32) -> (BTreeMap<i32, i32>, Duration) {
        let started = Instant::now();
        let deadline = started + WAIT;
        loop {
            let last = match self.observer.refresh_metadata().await {
                Ok(metadata) => {
                    let leaders: BTreeMap<i32, i32> = (0..PARTITIONS)
                        .filter_map(|p| metadata.leader(&self.topic, p).map(|l| (p, l)))
                        .collect();
                    if leaders.len() == PARTITIONS as usize && leaders.values().all(|l| *l != dead)
                    {
                        return (leaders, started.elapsed());
                    }
                    format!(
                        "leaders {leaders:?}, brokers {:?}",
                        metadata.brokers.keys().collect::<Vec<_>>()
                    )
                }
                Err(error) => error.to_string(),
            };
            assert!(
                Instant::now() < deadline,
                "no leaders without node {dead} after {WAIT:?}: {last}\n{}",
                self.kafka.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The group's committed offsets, asked of its current coordinator.
    async fn committed(&self) -> Result<BTreeMap<i32, i64>, String> {
        let coordinator = find_coordinator(&self.observer, &self.group)
            .await
            .map_err(|e| e.to_string())?;
        let partitions: Vec<TopicPartition> = (0..PARTITIONS).map(|p| self.tp(p)).collect();
        let committed = tokio::time::timeout(
            Duration::from_secs(5),
            fetch_committed(&self.observer, coordinator, &self.group, &partitions),
        )
        .await
        .map_err(|_| "OffsetFetch timed out".to_string())?
        .map_err(|e| e.to_string())?;
        Ok(committed
            .into_iter()
            .map(|(tp, offset)| (tp.partition, offset.unwrap_or(-1)))
            .collect())
    }

    /// Stops the producers, then waits until every acked record was delivered (with the value
    /// that was produced); stops the pollers.
    async fn drain(&mut self) {
        self.stop_producing.store(true, Ordering::Relaxed);
        for producer in self.producers.drain(..) {
            tokio::time::timeout(WAIT, producer)
                .await
                .expect("a producer did not stop")
                .unwrap();
        }
        let acked = self.log.acked.lock().unwrap().clone();
        let deadline = Instant::now() + WAIT;
        loop {
            let seen: BTreeMap<(i32, i64), String> = self
                .log
                .deliveries()
                .into_iter()
                .map(|d| ((d.partition, d.offset), d.value))
                .collect();
            let missing: Vec<&(i32, i64)> =
                acked.keys().filter(|k| !seen.contains_key(k)).collect();
            if missing.is_empty() {
                for (key, (value, _)) in &acked {
                    assert_eq!(&seen[key], value, "record {key:?} changed");
                }
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} acked records were never delivered, e.g. {:?}; poll errors {:?}; members {:#?}",
                missing.len(),
                &missing[..missing.len().min(10)],
                self.log.poll_errors.lock().unwrap(),
                self.member_report()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.stop_polling.store(true, Ordering::Relaxed);
        for poller in self.pollers.drain(..) {
            tokio::time::timeout(WAIT, poller)
                .await
                .expect("a poller did not stop")
                .unwrap();
        }
        let errors = self.log.poll_errors.lock().unwrap().clone();
        assert!(errors.is_empty(), "poll failed: {errors:?}");
        println!(
            "acked {} records; delivered {} (with re-deliveries); produce errors: {}",
            acked.len(),
            self.log.seen.lock().unwrap().len(),
            self.produce_error_report()
        );
    }

    fn produce_error_report(&self) -> String {
        let errors = self.log.produce_errors.lock().unwrap();
        let Some(first) = errors.values().map(|(_, first, _)| *first).min() else {
            return "none".into();
        };
        errors
            .iter()
            .map(|(kind, (count, from, to))| {
                format!(
                    "{kind} x{count} (from +{:?} to +{:?})",
                    from.duration_since(first),
                    to.duration_since(first)
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Closes the members (commit, leave) and the clients.
    async fn close(mut self) {
        for member in self.members.drain(..) {
            if let Ok(member) = Arc::try_unwrap(member) {
                tokio::time::timeout(WAIT, member.close())
                    .await
                    .expect("a member did not close");
            }
        }
        for client in &self.clients {
            client.close();
        }
        self.producer_client.close();
        self.observer.close();
    }
}

/// Produces batches to one partition until told to stop; every ack is recorded with the
/// values it covers. A failed produce is counted and retried after a short sleep with new
/// values (it may or may not have been written: nothing of it counts as acked).
async fn produce_forever(
    client: Client,
    topic: String,
    partition: i32,
    log: Arc<Log>,
    stop: Arc<AtomicBool>,
) {
    let mut attempt = 0u64;
    while !stop.load(Ordering::Relaxed) {
        attempt += 1;
        let values: Vec<String> = (0..BATCH)
            .map(|i| format!("{partition}-{attempt}-{i}"))
            .collect();
        let records: Vec<OutgoingRecord> = values
            .iter()
            .map(|v| OutgoingRecord {
                value: Some(Bytes::from(v.clone())),
                ..OutgoingRecord::default()
            })
            .collect();
        let produced = tokio::time::timeout(
            Duration::from_secs(45),
            wasmkafka::produce::produce_batch(
                &client,
                &topic,
                partition,
                &records,
                kafka_protocol::records::Compression::None,
            ),
        )
        .await;
        let failure = match produced {
            Ok(Ok(base)) => {
                let now = Instant::now();
                {
                    let mut acked = log.acked.lock().unwrap();
                    for (i, value) in values.into_iter().enumerate() {
                        acked.insert((partition, base + i as i64), (value, now));
                    }
                }
                tokio::time::sleep(PRODUCE_PAUSE).await;
                continue;
            }
            Ok(Err(ProduceError::Broker { error, .. })) => format!("{error:?}"),
            Ok(Err(ProduceError::Client(error))) => format!("client: {}", error_kind(&error)),
            Ok(Err(other)) => format!("{other}"),
            Err(_) => "no answer within 45 s".to_string(),
        };
        let now = Instant::now();
        log.produce_errors
            .lock()
            .unwrap()
            .entry(failure)
            .and_modify(|(count, _, last)| {
                *count += 1;
                *last = now;
            })
            .or_insert((1, now, now));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A short name for a client error (without addresses and ports).
fn error_kind(error: &wasmkafka::client::ClientError) -> String {
    let text = format!("{error:?}");
    text.split(['(', '{', ' '])
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Polls `member` until told to stop, recording every record it hands out.
fn keep_polling(
    member: Arc<GroupConsumer>,
    index: usize,
    log: Arc<Log>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            match member.poll(500, Duration::from_millis(100)).await {
                Ok(records) => {
                    let at = Instant::now();
                    log.seen.lock().unwrap().extend(records.iter().map(|r| {
                        Delivery {
                            member: index,
                            partition: r.partition,
                            offset: r.offset,
                            value: String::from_utf8_lossy(r.value.as_deref().unwrap_or_default())
                                .into_owned(),
                            at,
                        }
                    }));
                }
                Err(error) => {
                    log.poll_errors
                        .lock()
                        .unwrap()
                        .push(format!("member {index}: {error}"));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    })
}

/// The open connections of a client: (broker, purpose, address).
fn open_keys(client: &Client) -> Vec<(i32, Purpose, String)> {
    client
        .pool()
        .open_connections()
        .into_iter()
        .map(|(key, connection)| (key.broker, key.purpose, connection.addr().to_string()))
        .collect()
}

/// `node id: VmRSS` of each running JVM.
fn rss_report(kafka: &Kafka) -> String {
    kafka
        .pids()
        .iter()
        .map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let rss = status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(|l| l.trim_start_matches("VmRSS:").trim().to_string())
                .unwrap_or_else(|| "?".into());
            format!("pid {pid} {rss}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Re-deliveries: a partition's record handed out again (by any member) after a higher
/// offset of it was handed out. Kafka re-delivers from the last committed offset when a
/// partition changes hands without a commit of where it stood, so the records a run of
/// re-deliveries repeats were first handed out after the last commit the previous owner made:
/// within `window` of each other (the first and the last of them). Returns how many records
/// were delivered more than once, the longest such span and a line per run, or the first run
/// that breaks the bound.
fn check_redelivery(
    deliveries: &[Delivery],
    window: Duration,
) -> Result<(usize, Duration, Vec<String>), String> {
    let mut first_at: BTreeMap<(i32, i64), Instant> = BTreeMap::new();
    let mut high: BTreeMap<i32, i64> = BTreeMap::new();
    let mut counts: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    let mut longest = Duration::ZERO;
    // Per partition: the re-delivery run in progress (its member and last offset), if any.
    let mut run: BTreeMap<i32, (usize, i64)> = BTreeMap::new();
    let mut runs = Vec::new();
    for delivery in deliveries {
        let key = (delivery.partition, delivery.offset);
        *counts.entry(key).or_default() += 1;
        let top = high.get(&delivery.partition).copied().unwrap_or(-1);
        if delivery.offset > top {
            first_at.insert(key, delivery.at);
            high.insert(delivery.partition, delivery.offset);
            run.remove(&delivery.partition);
            continue;
        }
        let continues = run
            .get(&delivery.partition)
            .is_some_and(|(member, last)| *member == delivery.member && delivery.offset > *last);
        run.insert(delivery.partition, (delivery.member, delivery.offset));
        if continues {
            continue;
        }
        // A run starts: it repeats `offset..=top`, first handed out between these two times.
        let span = first_at[&(delivery.partition, top)].duration_since(first_at[&key]);
        longest = longest.max(span);
        runs.push(format!(
            "partition {} re-delivered from offset {} (up to {top}) by member {}: first handed \
             out within {span:?}",
            delivery.partition, delivery.offset, delivery.member
        ));
        if span > window {
            return Err(format!(
                "partition {}: offsets {}..={top} were handed out again, but they were first \
                 handed out over {span:?}, more than one commit window ({window:?}): a commit \
                 was missing",
                delivery.partition, delivery.offset
            ));
        }
    }
    let duplicates = counts.values().filter(|c| **c > 1).count();
    Ok((duplicates, longest, runs))
}

/// Asserts the members' pools follow the leaders: each member has an open Fetch connection
/// to the current leader of each partition it owns, and no open connection to `dead` (by id
/// or by address: bootstrap entries have ids of their own).
async fn assert_connections_follow_leaders(scenario: &Scenario, dead: i32) {
    let dead_addr = scenario.kafka.node_addr(dead);
    let deadline = Instant::now() + WAIT;
    loop {
        let metadata = scenario.observer.refresh_metadata().await.ok();
        let mut problems = Vec::new();
        for (index, (member, client)) in scenario.members.iter().zip(&scenario.clients).enumerate()
        {
            let open = open_keys(client);
            for tp in member.assignment() {
                let leader = metadata
                    .as_ref()
                    .and_then(|m| m.leader(&tp.topic, tp.partition));
                let has_fetch = leader.is_some_and(|leader| {
                    open.iter()
                        .any(|(broker, purpose, _)| *broker == leader && *purpose == Purpose::Fetch)
                });
                if !has_fetch {
                    problems.push(format!(
                        "member {index}: no Fetch connection to {leader:?}, the leader of {tp}"
                    ));
                }
            }
            for (broker, purpose, addr) in &open {
                if *broker == dead || *addr == dead_addr {
                    problems.push(format!(
                        "member {index}: a {purpose:?} connection to the dead node {dead} ({broker}, {addr}) is open"
                    ));
                }
            }
        }
        if problems.is_empty() {
            for (index, client) in scenario.clients.iter().enumerate() {
                println!(
                    "member {index}: open connections {:?}; pool {:?}",
                    open_keys(client),
                    client.pool().stats()
                );
            }
            return;
        }
        assert!(
            Instant::now() < deadline,
            "connections do not follow the leaders: {problems:#?}\nmembers: {:#?}",
            scenario.member_report()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Failed connects of each member's pool (attempts that did not complete a handshake).
fn failed_connects(scenario: &Scenario) -> Vec<u64> {
    scenario
        .clients
        .iter()
        .map(|c| {
            let stats = c.pool().stats();
            stats.connect_attempts - stats.connects
        })
        .collect()
}

fn generations(scenario: &Scenario) -> Vec<i32> {
    scenario
        .members
        .iter()
        .map(|m| m.identity().generation)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_partition_leader_moves_fetching_to_the_new_leaders() {
    let _serial = SERIAL.lock().await;
    wasmkafka_tests::init_tracing();
    let mut scenario = Scenario::start("leader-kill").await;
    let metadata = scenario.observer.refresh_metadata().await.unwrap();
    let leaders: BTreeMap<i32, i32> = (0..PARTITIONS)
        .map(|p| (p, metadata.leader(&scenario.topic, p).expect("a leader")))
        .collect();
    let coordinator = find_coordinator(&scenario.observer, &scenario.group)
        .await
        .unwrap();
    // The node to kill leads partitions of the topic and is not the group coordinator (the
    // other test kills that one): the group itself stays reachable.
    let mut led: BTreeMap<i32, BTreeSet<i32>> = BTreeMap::new();
    for (partition, leader) in &leaders {
        led.entry(*leader).or_default().insert(*partition);
    }
    let (victim, affected) = led
        .iter()
        .filter(|(node, _)| **node != coordinator)
        .max_by_key(|(_, partitions)| partitions.len())
        .map(|(node, partitions)| (*node, partitions.clone()))
        .unwrap_or_else(|| panic!("every partition is led by the coordinator: {leaders:?}"));
    println!(
        "leaders {leaders:?}; coordinator {coordinator}; killing node {victim}, the leader of \
         partitions {affected:?}"
    );
    let generations_before = generations(&scenario);
    let failed_before = failed_connects(&scenario);
    let stats_before: Vec<_> = scenario
        .members
        .iter()
        .map(|m| m.consumer().stats().failed_fetches)
        .collect();

    let acked_at_kill = scenario.log.acked_high();
    let killed_at = Instant::now();
    println!("killing node {victim} at {} UTC", wall_clock());
    scenario.kafka.kill_node(victim);

    let (new_leaders, election) = scenario.wait_for_new_leaders(victim).await;
    println!("new leaders {new_leaders:?}: the metadata named them {election:?} after the kill");
    print_broker_log(&scenario.kafka, victim);
    // Consumption continues on every partition, the dead node's included, past what was
    // acked when it died: records written to (and read from) the new leaders.
    scenario
        .wait_for_progress(&acked_at_kill, &scenario.all_partitions(), "after the kill")
        .await;
    println!(
        "every partition delivered records written after the kill {:?} after it",
        killed_at.elapsed()
    );
    assert_connections_follow_leaders(&scenario, victim).await;
    let failed_after = failed_connects(&scenario);
    let failed_fetches: Vec<u64> = scenario
        .members
        .iter()
        .zip(&stats_before)
        .map(|(m, before)| m.consumer().stats().failed_fetches - before)
        .collect();
    let outage = killed_at.elapsed();
    println!(
        "over {outage:?}: failed connects per member {:?}, failed fetches per member {failed_fetches:?}",
        failed_after
            .iter()
            .zip(&failed_before)
            .map(|(a, b)| a - b)
            .collect::<Vec<_>>()
    );
    // No busy loop: failed connects back off per (broker, purpose) and failed fetches per
    // leader, exponentially up to about a second (the pool's and the fetcher's maximum, with
    // 20 % jitter). A few keys can fail side by side (Fetch and Default to the dead node); a
    // loop without backoff would make thousands of attempts in this time.
    let budget = outage.as_secs() * 4 + 20;
    for (after, before) in failed_after.iter().zip(&failed_before) {
        assert!(
            after - before <= budget,
            "{} failed connects in {outage:?}",
            after - before
        );
    }
    for failed in &failed_fetches {
        assert!(*failed <= budget, "{failed} failed fetches in {outage:?}");
    }

    // The node comes back: the cluster is whole again (three brokers, every replica in sync).
    let restarted = Instant::now();
    scenario.kafka.start_node(victim).await.unwrap();
    wait_for_full_isr(&scenario).await;
    println!(
        "node {victim} restarted; every replica in sync {:?} later; JVM RSS: {}",
        restarted.elapsed(),
        rss_report(&scenario.kafka)
    );
    let after_restart = scenario.log.acked_high();
    scenario
        .wait_for_progress(
            &after_restart,
            &scenario.all_partitions(),
            "after the restart",
        )
        .await;

    scenario.drain().await;
    assert_redelivery_bounded(&scenario, COMMIT_WINDOW, &generations_before);
    scenario.close().await;
}

/// Checks that re-delivered records were first handed out within `window` of each other (see
/// `check_redelivery`), and that there were none when no member's generation changed: a member
/// keeps its position across a leader change.
fn assert_redelivery_bounded(scenario: &Scenario, window: Duration, generations_before: &[i32]) {
    let (duplicates, longest, runs) =
        check_redelivery(&scenario.log.deliveries(), window).unwrap_or_else(|e| panic!("{e}"));
    for run in runs {
        println!("{run}");
    }
    let generations_after = generations(scenario);
    println!(
        "generations {generations_before:?} -> {generations_after:?}; records delivered twice: \
         {duplicates} (longest re-delivered span {longest:?})"
    );
    if generations_after == generations_before {
        assert_eq!(duplicates, 0, "re-deliveries without a rebalance");
    }
}

/// Waits until the metadata lists three brokers and every partition (the topic's and the
/// internal topics') has all three replicas in sync.
async fn wait_for_full_isr(scenario: &Scenario) {
    let deadline = Instant::now() + WAIT;
    let mut last = String::new();
    loop {
        if let Ok(metadata) = scenario.observer.refresh_metadata().await {
            let short: Vec<String> = metadata
                .topics
                .values()
                .flat_map(|t| {
                    t.partitions
                        .values()
                        .filter(|p| p.isr.len() < 3 || p.leader < 0)
                        .map(move |p| format!("{}/{} isr {:?}", t.name, p.partition, p.isr))
                })
                .collect();
            if metadata.brokers.len() == 3 && short.is_empty() {
                return;
            }
            last = format!(
                "brokers {:?}; not in sync: {short:?}",
                metadata.brokers.keys().collect::<Vec<_>>()
            );
        }
        assert!(
            Instant::now() < deadline,
            "the cluster is not whole again after {WAIT:?}: {last}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_group_coordinator_moves_the_group_to_the_new_coordinator() {
    let _serial = SERIAL.lock().await;
    wasmkafka_tests::init_tracing();
    let mut scenario = Scenario::start("coordinator-kill").await;
    let coordinator = find_coordinator(&scenario.observer, &scenario.group)
        .await
        .unwrap();
    // Commits are flowing: wait for one that covers records delivered now.
    let delivered = scenario.delivered_high();
    let committed_before = wait_for_commits_above(&scenario, &delivered, "before the kill").await;
    println!("coordinator {coordinator}; committed {committed_before:?}");
    let generations_before = generations(&scenario);

    let acked_at_kill = scenario.log.acked_high();
    let delivered_at_kill = scenario.delivered_high();
    let killed_at = Instant::now();
    println!("killing node {coordinator} at {} UTC", wall_clock());
    scenario.kafka.kill_node(coordinator);

    // The group moves: FindCoordinator names another node, and commits advance past what was
    // delivered at the kill (commits go to the new coordinator).
    let deadline = Instant::now() + WAIT;
    let new_coordinator = loop {
        match find_coordinator(&scenario.observer, &scenario.group).await {
            Ok(id) if id != coordinator => break id,
            other => assert!(
                Instant::now() < deadline,
                "no new coordinator after {WAIT:?}: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let moved = killed_at.elapsed();
    println!("new coordinator {new_coordinator}, named {moved:?} after the kill");
    print_broker_log(&scenario.kafka, coordinator);
    // Above what was committed or handed out before the kill: these commits went to the new
    // coordinator.
    let threshold: BTreeMap<i32, i64> = (0..PARTITIONS)
        .map(|p| {
            let committed = committed_before.get(&p).copied().unwrap_or(-1);
            let delivered = delivered_at_kill.get(&p).copied().unwrap_or(-1);
            (p, committed.max(delivered))
        })
        .collect();
    let committed_after = wait_for_commits_above(&scenario, &threshold, "after the kill").await;
    let commits_resumed = killed_at.elapsed();
    println!("committed {committed_after:?} {commits_resumed:?} after the kill");
    for (partition, offset) in &committed_after {
        assert!(
            *offset > committed_before[partition],
            "partition {partition}: the committed offset did not advance"
        );
    }
    // Consumption continues (the coordinator led some partitions of the topic, too).
    scenario
        .wait_for_progress(&acked_at_kill, &scenario.all_partitions(), "after the kill")
        .await;
    assert_connections_follow_leaders(&scenario, coordinator).await;
    // Each member heartbeats and commits to the new coordinator.
    for (index, client) in scenario.clients.iter().enumerate() {
        let open = open_keys(client);
        assert!(
            open.iter()
                .any(|(broker, purpose, _)| *broker == new_coordinator
                    && *purpose == Purpose::Coordination),
            "member {index} has no Coordination connection to the new coordinator \
             {new_coordinator}: {open:?}"
        );
    }

    scenario.drain().await;
    println!("JVM RSS: {}", rss_report(&scenario.kafka));
    // While the coordinator was gone no commit could succeed: a partition that changed hands
    // before the first commit to the new one may repeat what was handed out since the last
    // commit to the old one.
    let window = commits_resumed + COMMIT_WINDOW;
    assert_redelivery_bounded(&scenario, window, &generations_before);
    scenario.close().await;
}

/// Waits until the group's committed offset of every partition is above `delivered` (the
/// highest offsets handed out at some moment); returns the committed offsets.
async fn wait_for_commits_above(
    scenario: &Scenario,
    delivered: &BTreeMap<i32, i64>,
    what: &str,
) -> BTreeMap<i32, i64> {
    let deadline = Instant::now() + WAIT;
    loop {
        let last = match scenario.committed().await {
            Ok(committed) => {
                if (0..PARTITIONS).all(|p| {
                    committed.get(&p).copied().unwrap_or(-1)
                        > delivered.get(&p).copied().unwrap_or(-1)
                }) {
                    return committed;
                }
                format!("committed {committed:?}, delivered {delivered:?}")
            }
            Err(error) => error,
        };
        assert!(
            Instant::now() < deadline,
            "{what}: commits did not pass {delivered:?} within {WAIT:?}: {last}; poll errors \
             {:?}; members {:#?}",
            scenario.log.poll_errors.lock().unwrap(),
            scenario.member_report()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Prints what the surviving nodes logged about the dead one (fencing, ISR shrinks, leader
/// elections): the broker side of the timings.
fn print_broker_log(kafka: &Kafka, dead: i32) {
    for node in kafka.node_ids().into_iter().filter(|id| *id != dead) {
        let log = kafka.server_log(node);
        let lines: Vec<&str> = log
            .lines()
            .filter(|line| {
                line.contains(&format!("Fencing broker {dead} "))
                    || line.contains("Shrinking ISR")
                    || line.contains("elected")
                    || line.contains("Loading group metadata")
                    || line.contains("Finished loading offsets")
            })
            .take(6)
            .collect();
        for line in lines {
            println!("node {node} log: {}", &line[..line.len().min(300)]);
        }
    }
}

/// The re-delivery check itself, on made-up deliveries: a run repeated right after its first
/// delivery passes, one whose records were first handed out over a longer span than the
/// window fails.
#[test]
fn the_redelivery_check_measures_the_span_since_the_last_commit() {
    let start = Instant::now();
    let at = |ms: u64| start + Duration::from_millis(ms);
    let delivery = |member: usize, offset: i64, ms: u64| Delivery {
        member,
        partition: 0,
        offset,
        value: String::new(),
        at: at(ms),
    };
    // Member 0 hands out 0..=9 over 900 ms; member 1 takes over from offset 7 (committed at
    // 700 ms): 7, 8, 9 again (first handed out over 200 ms), then goes on.
    let mut deliveries: Vec<Delivery> = (0..10).map(|o| delivery(0, o, o as u64 * 100)).collect();
    deliveries.extend((7..12).map(|o| delivery(1, o, 2000 + o as u64)));
    let (duplicates, longest, runs) =
        check_redelivery(&deliveries, Duration::from_millis(500)).unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(duplicates, 3);
    assert_eq!(longest, Duration::from_millis(200));
    // From offset 2: 2..=9 were first handed out over 700 ms, more than a 500 ms window.
    deliveries.extend((2..10).map(|o| delivery(0, o, 3000 + o as u64)));
    let failed = check_redelivery(&deliveries, Duration::from_millis(500)).unwrap_err();
    assert!(failed.contains("offsets 2..=11"), "{failed}");
}

/// The time of day, UTC, as the brokers' logs print it (`HH:MM:SS,mmm`).
fn wall_clock() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = now.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02},{:03}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60,
        now.subsec_millis()
    )
}
