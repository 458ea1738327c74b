//! `wasmkafka-bench group-scale`: how long a group of N members (`--members`, default 1, 10
//! and 50) takes to settle after one more member joins, and how long the partitions that
//! move stop, for four kinds of member on the same broker in the same run:
//! - `ours-classic`: `wasmkafka run --group` processes, classic protocol, cooperative-sticky;
//! - `ours-consumer`: the same with `group.protocol=consumer` (KIP-848);
//! - `java-classic` / `java-consumer`: kafka-clients (`bench/peers/java/GroupScale.java`),
//!   one JVM whose threads each run a `KafkaConsumer` (CooperativeStickyAssignor, or
//!   `group.protocol=consumer`). The joiner is one more thread of the warm JVM: it pays for no
//!   JVM start, where ours pays for a process start.
//!
//! The broker runs Kafka's defaults for every group setting (the tests' node config lowers
//! them; [`broker_overrides`] puts them back), so a consumer-protocol member beats every 5 s
//! (`group.consumer.heartbeat.interval.ms`) and a classic one every 3 s (the clients' default
//! `heartbeat.interval.ms`). `--broker-heartbeat-ms` sets the former.
//!
//! One topic of `--partitions` (100) is fed all along, one record per partition every
//! `--pace-ms` (100 ms) in one Produce request. A run, with a fresh group id:
//! 1. N members start (`from latest`); they formed once the coordinator's answers show, for
//!    [`QUIET`], the same N members in a Stable group, each partition owned by exactly one,
//!    each member at least floor(P / N); then until every partition had a record since.
//! 2. A baseline of [`BASELINE`] and a random wait below the longer heartbeat interval in play
//!    (5 s by default): the longest gap between two records of one partition (the feed's pace
//!    and the fetches' granularity). The members beat in step with the group's last
//!    rebalance, which the harness saw; the random wait puts the join anywhere in their cycle.
//! 3. One more member starts. From its start, the harness asks the coordinator to describe
//!    the group every [`POLL`] (DescribeGroups, or ConsumerGroupDescribe for a
//!    consumer-protocol group). The group **settled** at the first answer after which, for
//!    [`QUIET`], every answer is the same and shows N + 1 members, every partition owned by
//!    exactly one member, and the joiner holding at least its share, floor(P / (N + 1)).
//!    What the coordinator calls a member's partitions: under the classic protocol the
//!    assignment the leader made, shown once the group is Stable (every member has its
//!    SyncGroup answer); under the consumer protocol the partitions the coordinator handed to
//!    the member, which it hands over only once their previous owner said it gave them up.
//! 4. The pause: for each partition, the longest time between two records of it the members
//!    wrote, from the joiner's start until every partition wrote a record after the group
//!    settled (a partition that moved: from its last record at its old owner to its first at
//!    the new one, re-read records included).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use wasmkafka::client::Client;
use wasmkafka::group::coordinator::find_coordinator;
use wasmkafka::group::describe::describe_group;
use wasmkafka::net::Purpose;
use wasmkafka::produce::{encode_batch, OutgoingRecord};
use wasmkafka_tests::kafka::jars::{java, kafka_files};
use wasmkafka_tests::kafka::process::spawn_tied;
use wasmkafka_tests::kafka::Kafka;

use super::member::{Launcher, Member, Output, CONSUMER_PROTOCOL};
use crate::report::median;
use crate::workload::value;

/// How often the harness asks the coordinator.
const POLL: Duration = Duration::from_millis(20);
/// How long the coordinator's answers must stay the same for the group to count as settled.
const QUIET: Duration = Duration::from_secs(1);
/// The steady output measured before the join.
const BASELINE: Duration = Duration::from_secs(2);
/// The most N members may take to form (KIP-848 members take their partitions from each
/// other a heartbeat at a time) and a join to settle.
const FORM_LIMIT: Duration = Duration::from_secs(240);
const JOIN_LIMIT: Duration = Duration::from_secs(120);
/// The most every partition may take to write again once the group settled.
const RESUME_LIMIT: Duration = Duration::from_secs(30);
/// The clients' default `heartbeat.interval.ms` (classic protocol; ours and Java's).
const CLASSIC_HEARTBEAT_MS: u64 = 3_000;
/// Kafka's default `group.consumer.heartbeat.interval.ms`.
const DEFAULT_CONSUMER_HEARTBEAT_MS: u64 = 5_000;

/// The kinds of member compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    OursClassic,
    OursConsumer,
    JavaClassic,
    JavaConsumer,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::OursClassic,
        Kind::OursConsumer,
        Kind::JavaClassic,
        Kind::JavaConsumer,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Kind::OursClassic => "ours-classic",
            Kind::OursConsumer => "ours-consumer",
            Kind::JavaClassic => "java-classic",
            Kind::JavaConsumer => "java-consumer",
        }
    }

    fn column(self) -> &'static str {
        match self {
            Kind::OursClassic => "wasmkafka classic, cooperative-sticky",
            Kind::OursConsumer => "wasmkafka consumer (KIP-848)",
            Kind::JavaClassic => "Java classic, CooperativeStickyAssignor",
            Kind::JavaConsumer => "Java consumer (KIP-848)",
        }
    }

    fn is_java(self) -> bool {
        matches!(self, Kind::JavaClassic | Kind::JavaConsumer)
    }
}

/// `wasmkafka-bench group-scale` arguments.
#[derive(Debug, Clone)]
pub struct ScaleOptions {
    pub rounds: usize,
    /// The group sizes before the join.
    pub members: Vec<usize>,
    pub partitions: i32,
    pub kinds: Vec<Kind>,
    /// The broker's `group.consumer.heartbeat.interval.ms` (`None`: Kafka's default).
    pub heartbeat_ms: Option<u64>,
    /// One record per partition this often.
    pub pace: Duration,
}

const USAGE: &str = "usage: wasmkafka-bench group-scale [--rounds N] [--members 1,10,50] \
                     [--partitions P] [--consumer ours-classic|ours-consumer|java-classic|\
                     java-consumer]... [--broker-heartbeat-ms MS] [--pace-ms MS]";

/// The arguments after `group-scale`.
pub fn options(mut args: impl Iterator<Item = String>) -> Result<ScaleOptions> {
    let mut options = ScaleOptions {
        rounds: 3,
        members: vec![1, 10, 50],
        partitions: 100,
        kinds: Vec::new(),
        heartbeat_ms: None,
        pace: Duration::from_millis(100),
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--rounds" => options.rounds = value()?.parse().context("--rounds N")?,
            "--members" => {
                options.members = value()?
                    .split(',')
                    .map(|n| n.trim().parse().context("--members N,N,..."))
                    .collect::<Result<_>>()?
            }
            "--partitions" => options.partitions = value()?.parse().context("--partitions P")?,
            "--consumer" => {
                let id = value()?;
                let kind = Kind::ALL
                    .into_iter()
                    .find(|k| k.id() == id)
                    .with_context(|| format!("no consumer `{id}`; {USAGE}"))?;
                options.kinds.push(kind);
            }
            "--broker-heartbeat-ms" => {
                options.heartbeat_ms = Some(value()?.parse().context("--broker-heartbeat-ms MS")?)
            }
            "--pace-ms" => {
                options.pace = Duration::from_millis(value()?.parse().context("--pace-ms MS")?)
            }
            other => bail!("unknown argument `{other}`; {USAGE}"),
        }
    }
    if options.rounds == 0 || options.members.is_empty() || options.members.contains(&0) {
        bail!("--rounds and every size in --members must be at least 1");
    }
    if options.partitions < 1 {
        bail!("--partitions must be at least 1");
    }
    if options.kinds.is_empty() {
        options.kinds = Kind::ALL.to_vec();
    }
    Ok(options)
}

/// What the broker runs with: the tests' node config (`tests/kafka/node.properties`) with
/// every group setting it lowers put back to Kafka's default, and the consumer protocol's
/// heartbeat interval as asked.
pub fn broker_overrides(options: &ScaleOptions) -> Vec<(String, String)> {
    let heartbeat = options
        .heartbeat_ms
        .unwrap_or(DEFAULT_CONSUMER_HEARTBEAT_MS);
    [
        ("group.initial.rebalance.delay.ms", 3_000),
        ("group.min.session.timeout.ms", 6_000),
        ("group.consumer.session.timeout.ms", 45_000),
        ("group.consumer.min.session.timeout.ms", 45_000),
        ("group.consumer.heartbeat.interval.ms", heartbeat),
        (
            "group.consumer.min.heartbeat.interval.ms",
            heartbeat.min(DEFAULT_CONSUMER_HEARTBEAT_MS),
        ),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_string(), value.to_string()))
    .collect()
}

/// What every run shares.
struct Ctx<'a> {
    wasmkafka: &'a Path,
    java_classpath: &'a str,
    brokers: String,
    topic: String,
    partitions: i32,
    /// The members' stderr: ours at `WASMKAFKA_LOG=info`, the JVM's at WARN.
    logs: PathBuf,
    client: Client,
    handle: Handle,
    /// The join comes a random time below this after the baseline.
    phase_spread: Duration,
}

/// A pseudo-random duration in [0, below), from the clock's nanoseconds (xorshift).
fn random_below(below: Duration) -> Duration {
    let mut state = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
        | 1;
    for _ in 0..4 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
    }
    let nanos = below.as_nanos() as u64;
    Duration::from_nanos(if nanos == 0 { 0 } else { state % nanos })
}

/// Every round of every size and kind; the report as Markdown.
pub async fn run(
    wasmkafka: &Path,
    java_classpath: &str,
    kafka: &Kafka,
    options: &ScaleOptions,
    out_dir: &Path,
) -> Result<String> {
    let load_before = load_average();
    let topic = format!("bench-scale-{}p", options.partitions);
    kafka.create_topic(&topic, options.partitions, &[]).await?;
    let logs = out_dir.join("group-scale");
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs)?;
    let ctx = Ctx {
        wasmkafka,
        java_classpath,
        brokers: kafka.addr(),
        topic: topic.clone(),
        partitions: options.partitions,
        logs,
        client: kafka.client(),
        handle: Handle::current(),
        // The longer heartbeat interval in play: the classic clients' 3 s or the broker's.
        phase_spread: Duration::from_millis(
            CLASSIC_HEARTBEAT_MS.max(
                options
                    .heartbeat_ms
                    .unwrap_or(DEFAULT_CONSUMER_HEARTBEAT_MS),
            ),
        ),
    };
    let feed = Feed::start(kafka.client(), &topic, options.partitions, options.pace);
    let mut table = Table::default();
    let result = tokio::task::block_in_place(|| {
        for round in 0..options.rounds {
            for &n in &options.members {
                let mut order = options.kinds.clone();
                let kinds = order.len();
                order.rotate_left(round % kinds);
                for kind in order {
                    let group = format!("bench-scale-{}-{n}-{round}", kind.id());
                    eprintln!("round {} {n} + 1 {}: group {group}", round + 1, kind.id());
                    match run_once(&ctx, kind, n, &group) {
                        Ok(measures) => {
                            for (label, decimals, value) in measures {
                                let shown = value.map_or("-".into(), |v| format!("{v:.decimals$}"));
                                eprintln!("  {label}: {shown}");
                                table.add(kind, &format!("{n} + 1: {label}"), decimals, value);
                            }
                        }
                        Err(error) => {
                            let error = format!("{error:#}");
                            eprintln!("  FAILED: {error}");
                            table.failures.push(format!(
                                "round {}, {n} + 1, {}: {error}",
                                round + 1,
                                kind.id()
                            ));
                        }
                    }
                }
            }
        }
        feed.stop(&ctx.handle)
    });
    let produced = result?;
    ctx.client.close();
    let load_after = load_average();
    Ok(table.markdown(options, &topic, produced, &load_before, &load_after))
}

/// The measures of one run: (label, decimals, value).
type Measures = Vec<(String, usize, Option<f64>)>;

/// One group of N, then the join (see the module doc).
fn run_once(ctx: &Ctx, kind: Kind, n: usize, group: &str) -> Result<Measures> {
    let gaps = Arc::new(Gaps::new(ctx.partitions, n + 1));
    let mut members = Members::start(ctx, kind, group, n, gaps.clone())?;
    let mut coordinator = None;

    // 1. The group forms: balanced, Stable, and the same for [`QUIET`].
    let started = Instant::now();
    let mut candidate: Option<(Instant, Owners)> = None;
    let formed = loop {
        let now = Instant::now();
        let described = describe(ctx, group, &mut coordinator);
        if let Ok(described) = &described {
            let done = is_formed(described, n, ctx.partitions);
            let same = candidate
                .as_ref()
                .is_some_and(|(_, seen)| *seen == described.owners);
            if !done {
                candidate = None;
            } else if !same {
                candidate = Some((now, described.owners.clone()));
            }
        }
        if let Some((at, _)) = candidate.as_ref().filter(|(at, _)| at.elapsed() >= QUIET) {
            break *at;
        }
        if started.elapsed() > FORM_LIMIT {
            bail!(
                "the {n} members did not form a group owning every partition within \
                 {FORM_LIMIT:?}; last description: {}",
                summary(&described)
            );
        }
        members.check()?;
        std::thread::sleep(POLL);
    };
    eprintln!(
        "  formed in {:.1} s",
        formed.duration_since(started).as_secs_f64()
    );
    wait_resumed(&gaps, formed, "after the group formed")?;

    // 2. The baseline, then a random wait: the join falls anywhere in the members'
    // heartbeat cycles (they beat in step with the group's last rebalance, which the harness
    // saw; without it every join would fall at the same point of the cycle).
    gaps.enter(Window::Baseline);
    std::thread::sleep(BASELINE + random_below(ctx.phase_spread));
    let before = describe(ctx, group, &mut coordinator)?;
    if !is_formed(&before, n, ctx.partitions) {
        bail!(
            "the group moved before the join: {}",
            summary(&Ok(before.clone()))
        );
    }

    // 3. The join.
    gaps.enter(Window::Join);
    let join_start = Instant::now();
    members.join(ctx, kind, group, n, gaps.clone())?;
    let share = ctx.partitions as usize / (n + 1);
    let mut listed = None;
    let mut candidate: Option<(Instant, Described)> = None;
    let settled = loop {
        let now = Instant::now();
        let described = describe(ctx, group, &mut coordinator);
        if let Ok(described) = &described {
            let joiners: Vec<&BTreeSet<i32>> = described
                .owners
                .iter()
                .filter(|(id, _)| !before.owners.contains_key(*id))
                .map(|(_, owned)| owned)
                .collect();
            if listed.is_none() && !joiners.is_empty() {
                listed = Some(now);
            }
            let done = described.owners.len() == n + 1
                && joiners.len() == 1
                && joiners[0].len() >= share
                && complete(&described.owners, ctx.partitions);
            let same = candidate
                .as_ref()
                .is_some_and(|(_, seen)| seen.owners == described.owners);
            if !done {
                candidate = None;
            } else if !same {
                candidate = Some((now, described.clone()));
            }
        }
        let quiet = candidate
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() >= QUIET);
        if quiet {
            break candidate.take().expect("a candidate");
        }
        if join_start.elapsed() > JOIN_LIMIT {
            bail!(
                "the group of {n} did not settle within {JOIN_LIMIT:?} of the join; last \
                 description: {}",
                summary(&described)
            );
        }
        members.check()?;
        std::thread::sleep(POLL);
    };
    let (settled_at, after) = settled;
    let resumed = wait_resumed(&gaps, settled_at, "after the join settled");
    gaps.close();
    let rss = members.rss_bytes();
    drop(members);
    if let Err(error) = &resumed {
        eprintln!("  {error:#} (the pauses count up to the end of the wait)");
    }

    let ms = |d: Duration| Some(d.as_secs_f64() * 1e3);
    let moved: Vec<i32> = (0..ctx.partitions)
        .filter(|p| owner(&before.owners, *p) != owner(&after.owners, *p))
        .collect();
    let pauses = gaps.join_pauses_ms();
    let first = gaps.first_record(n, join_start);
    eprintln!(
        "  settled: state {}, the joiner holds {}, {} partitions moved",
        after.state,
        after
            .owners
            .iter()
            .find(|(id, _)| !before.owners.contains_key(*id))
            .map_or(0, |(_, owned)| owned.len()),
        moved.len()
    );
    Ok(vec![
        (
            "settled, from the joiner's start (ms)".into(),
            0,
            ms(settled_at.duration_since(join_start)),
        ),
        (
            "the joiner listed by the coordinator, from its start (ms)".into(),
            0,
            listed.and_then(|at| ms(at.duration_since(join_start))),
        ),
        (
            "the joiner's first record, from its start (ms)".into(),
            0,
            first.and_then(ms),
        ),
        ("partitions moved".into(), 0, Some(moved.len() as f64)),
        (
            "longest pause of one partition, during the join (ms)".into(),
            0,
            pauses.iter().copied().reduce(f64::max),
        ),
        (
            "pause of a moved partition, median (ms)".into(),
            0,
            (!moved.is_empty())
                .then(|| median(moved.iter().map(|p| pauses[*p as usize]).collect())),
        ),
        (
            "longest gap of one partition, before the join (ms)".into(),
            0,
            Some(gaps.baseline_ms()),
        ),
        (
            "memory of the group after the join, RSS (MB)".into(),
            0,
            Some(rss as f64 / 1e6),
        ),
    ])
}

/// Waits until every partition wrote a record after `since` (bounded by [`RESUME_LIMIT`]).
fn wait_resumed(gaps: &Gaps, since: Instant, when: &str) -> Result<()> {
    let since = gaps.micros(since);
    let started = Instant::now();
    while !gaps.resumed_since(since) {
        if started.elapsed() > RESUME_LIMIT {
            bail!(
                "partitions {:?} wrote no record within {RESUME_LIMIT:?} {when}",
                gaps.silent_since(since)
            );
        }
        std::thread::sleep(POLL);
    }
    Ok(())
}

/// Which member owns `partition` (`None`: none).
fn owner(owners: &Owners, partition: i32) -> Option<&str> {
    owners
        .iter()
        .find(|(_, owned)| owned.contains(&partition))
        .map(|(id, _)| id.as_str())
}

/// `n` members, Stable (under the consumer protocol: every member reached the target
/// assignment), every partition owned by exactly one of them, each at least its share.
fn is_formed(described: &Described, n: usize, partitions: i32) -> bool {
    let share = partitions as usize / n;
    described.state == "Stable"
        && described.owners.len() == n
        && described.owners.values().all(|owned| owned.len() >= share)
        && complete(&described.owners, partitions)
}

/// Every partition 0..partitions owned by exactly one member.
fn complete(owners: &Owners, partitions: i32) -> bool {
    let mut seen = BTreeSet::new();
    for owned in owners.values() {
        for partition in owned {
            if !seen.insert(*partition) {
                return false;
            }
        }
    }
    seen.len() == partitions as usize && seen.iter().all(|p| (0..partitions).contains(p))
}

/// Member id -> the partitions of the topic it owns.
type Owners = BTreeMap<String, BTreeSet<i32>>;

/// What the coordinator said of the group.
#[derive(Debug, Clone)]
struct Described {
    state: String,
    owners: Owners,
}

/// Asks the group's coordinator (found once, again after a failure).
fn describe(ctx: &Ctx, group: &str, coordinator: &mut Option<i32>) -> Result<Described> {
    ctx.handle.block_on(async {
        let id = match *coordinator {
            Some(id) => id,
            None => {
                let id = find_coordinator(&ctx.client, group).await?;
                *coordinator = Some(id);
                id
            }
        };
        let description = match describe_group(&ctx.client, id, group).await {
            Ok(description) => description,
            Err(error) => {
                *coordinator = None;
                return Err(error.into());
            }
        };
        let owners = description
            .members
            .into_iter()
            .map(|member| {
                let owned = member
                    .partitions
                    .iter()
                    .filter(|tp| *tp.topic == *ctx.topic)
                    .map(|tp| tp.partition)
                    .collect();
                (member.member_id, owned)
            })
            .collect();
        Ok(Described {
            state: description.state,
            owners,
        })
    })
}

/// A description in one line, for errors.
fn summary(described: &Result<Described>) -> String {
    match described {
        Ok(described) => {
            let counts: Vec<usize> = described.owners.values().map(BTreeSet::len).collect();
            format!(
                "state {}, {} members holding {:?} partitions",
                described.state,
                counts.len(),
                counts
            )
        }
        Err(error) => format!("{error:#}"),
    }
}

/// The members of one group.
enum Members {
    Ours(Vec<Member>),
    Java(JavaGroup),
}

impl Members {
    /// Starts members 0..count.
    fn start(
        ctx: &Ctx,
        kind: Kind,
        group: &str,
        count: usize,
        output: Arc<dyn Output>,
    ) -> Result<Members> {
        if kind.is_java() {
            let mut java = JavaGroup::start(ctx, kind, group, output)?;
            java.send(&format!("start {count}"))?;
            Ok(Members::Java(java))
        } else {
            Ok(Members::Ours(
                launcher(ctx, kind, group).start_many(count, output)?,
            ))
        }
    }

    /// Starts member number `index`.
    fn join(
        &mut self,
        ctx: &Ctx,
        kind: Kind,
        group: &str,
        index: usize,
        output: Arc<dyn Output>,
    ) -> Result<()> {
        match self {
            Members::Ours(members) => {
                members.push(launcher(ctx, kind, group).start(index, output)?)
            }
            Members::Java(java) => java.send("join")?,
        }
        Ok(())
    }

    /// Fails when a member's process exited.
    fn check(&mut self) -> Result<()> {
        match self {
            Members::Ours(members) => {
                for (index, member) in members.iter_mut().enumerate() {
                    if let Some(status) = member.exited() {
                        bail!("member {index} exited ({status}); see its log");
                    }
                }
            }
            Members::Java(java) => {
                if let Some(status) = java.child.try_wait()? {
                    bail!("the Java members' JVM exited ({status}); see its log");
                }
            }
        }
        Ok(())
    }

    /// The resident memory of every member's process.
    fn rss_bytes(&self) -> u64 {
        match self {
            Members::Ours(members) => members.iter().map(|m| rss_of(m.pid())).sum(),
            Members::Java(java) => rss_of(java.child.id()),
        }
    }
}

fn launcher<'a>(ctx: &'a Ctx, kind: Kind, group: &'a str) -> Launcher<'a> {
    Launcher {
        wasmkafka: ctx.wasmkafka,
        brokers: &ctx.brokers,
        topic: &ctx.topic,
        group,
        assignor: if kind == Kind::OursConsumer {
            CONSUMER_PROTOCOL
        } else {
            "cooperative-sticky"
        },
        from: "latest",
        fetch_max_wait_ms: None,
        logs: Some(&ctx.logs),
    }
}

/// A process's resident set (VmRSS), 0 when it cannot be read.
fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(0)
}

/// The JVM of `GroupScale.java`, its members as threads. Killed on drop.
struct JavaGroup {
    child: Child,
    stdin: ChildStdin,
}

impl JavaGroup {
    fn start(ctx: &Ctx, kind: Kind, group: &str, output: Arc<dyn Output>) -> Result<JavaGroup> {
        let log = ctx.logs.join(format!("{group}.log"));
        let mut command = Command::new(java());
        command
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                kafka_files().join("tools-log4j2.properties").display()
            ))
            .arg("-cp")
            .arg(ctx.java_classpath)
            .arg("GroupScale")
            .args([ctx.brokers.as_str(), ctx.topic.as_str(), group])
            .arg(if kind == Kind::JavaConsumer {
                "consumer"
            } else {
                "classic"
            })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?);
        let mut child = spawn_tied(command).context("cannot start the Java members (java 17)")?;
        let stdout = child.stdout.take().expect("piped");
        let stdin = child.stdin.take().expect("piped");
        std::thread::spawn(move || {
            let mut reader = BufReader::with_capacity(1 << 16, stdout);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                let text = line.strip_suffix(b"\n").unwrap_or(&line);
                if let Some(space) = text.iter().position(|b| *b == b' ') {
                    let member = std::str::from_utf8(&text[..space])
                        .ok()
                        .and_then(|m| m.parse().ok());
                    if let Some(member) = member {
                        output.record(member, &text[space + 1..]);
                    }
                }
                line.clear();
            }
        });
        Ok(JavaGroup { child, stdin })
    }

    fn send(&mut self, command: &str) -> Result<()> {
        writeln!(self.stdin, "{command}")?;
        self.stdin.flush()?;
        Ok(())
    }
}

impl Drop for JavaGroup {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which window a gap falls in (by when it ends).
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Window {
    Warmup = 0,
    Baseline = 1,
    Join = 2,
    Closed = 3,
}

/// The gaps between the records of each partition, as the members wrote them.
struct Gaps {
    start: Instant,
    window: AtomicU8,
    /// Per partition: when a member last wrote one of its records (µs since `start`, plus 1;
    /// 0 = never).
    last: Vec<AtomicU64>,
    /// The longest gap of any partition in the baseline (µs).
    baseline: AtomicU64,
    /// Per partition: its longest gap in the join window (µs).
    join: Vec<AtomicU64>,
    /// Per member: when it wrote its first record (same clock; 0 = not yet).
    first_member: Vec<AtomicU64>,
}

impl Gaps {
    fn new(partitions: i32, members: usize) -> Gaps {
        let zeros = |n| (0..n).map(|_| AtomicU64::new(0)).collect();
        Gaps {
            start: Instant::now(),
            window: AtomicU8::new(Window::Warmup as u8),
            last: zeros(partitions as usize),
            baseline: AtomicU64::new(0),
            join: zeros(partitions as usize),
            first_member: zeros(members),
        }
    }

    fn now(&self) -> u64 {
        self.micros(Instant::now())
    }

    fn micros(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.start).as_micros() as u64 + 1
    }

    fn enter(&self, window: Window) {
        self.window.store(window as u8, Ordering::SeqCst);
    }

    fn resumed_since(&self, since: u64) -> bool {
        self.last.iter().all(|l| l.load(Ordering::SeqCst) > since)
    }

    fn silent_since(&self, since: u64) -> Vec<usize> {
        (0..self.last.len())
            .filter(|p| self.last[*p].load(Ordering::SeqCst) <= since)
            .collect()
    }

    /// Ends the join window; a gap still open then counts up to now.
    fn close(&self) {
        let now = self.now();
        for (last, longest) in self.last.iter().zip(&self.join) {
            let last = last.load(Ordering::SeqCst);
            if last != 0 {
                longest.fetch_max(now.saturating_sub(last), Ordering::SeqCst);
            }
        }
        self.enter(Window::Closed);
    }

    fn join_pauses_ms(&self) -> Vec<f64> {
        self.join
            .iter()
            .map(|l| l.load(Ordering::SeqCst) as f64 / 1e3)
            .collect()
    }

    fn baseline_ms(&self) -> f64 {
        self.baseline.load(Ordering::SeqCst) as f64 / 1e3
    }

    /// When `member` wrote its first record, from `since`.
    fn first_record(&self, member: usize, since: Instant) -> Option<Duration> {
        let first = self.first_member.get(member)?.load(Ordering::SeqCst);
        (first != 0).then(|| Duration::from_micros(first.saturating_sub(self.micros(since))))
    }
}

impl Output for Gaps {
    fn record(&self, member: usize, line: &[u8]) {
        let now = self.now();
        if let Some(first) = self.first_member.get(member) {
            let _ = first.compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst);
        }
        // "P:N:..." (see `workload::value`).
        let partition: Option<usize> = line
            .split(|b| *b == b':')
            .next()
            .and_then(|p| std::str::from_utf8(p).ok())
            .and_then(|p| p.parse().ok());
        let Some(last) = partition.and_then(|p| self.last.get(p)) else {
            return;
        };
        let previous = last.fetch_max(now, Ordering::SeqCst);
        if previous == 0 || previous >= now {
            return;
        }
        let gap = now - previous;
        match self.window.load(Ordering::SeqCst) {
            1 => {
                self.baseline.fetch_max(gap, Ordering::SeqCst);
            }
            2 => {
                self.join[partition.expect("parsed")].fetch_max(gap, Ordering::SeqCst);
            }
            _ => {}
        }
    }
}

/// One record to every partition every `pace`, in one Produce request per leader.
struct Feed {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Result<u64>>,
    client: Client,
}

impl Feed {
    fn start(client: Client, topic: &str, partitions: i32, pace: Duration) -> Feed {
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let (client, topic, stop) = (client.clone(), topic.to_string(), stop.clone());
            async move { feed(&client, &topic, partitions, pace, &stop).await }
        });
        Feed { stop, task, client }
    }

    /// Stops it: the records produced per partition.
    fn stop(self, handle: &Handle) -> Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        let produced = handle.block_on(self.task);
        self.client.close();
        produced?
    }
}

async fn feed(
    client: &Client,
    topic: &str,
    partitions: i32,
    pace: Duration,
    stop: &AtomicBool,
) -> Result<u64> {
    let metadata = client.fresh_metadata().await?;
    let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for partition in 0..partitions {
        let leader = metadata
            .leader(topic, partition)
            .with_context(|| format!("{topic}/{partition} has no leader"))?;
        by_leader.entry(leader).or_default().push(partition);
    }
    let mut ticks = tokio::time::interval(pace);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut next = 0;
    while !stop.load(Ordering::Relaxed) {
        ticks.tick().await;
        for (leader, owned) in &by_leader {
            let data = owned
                .iter()
                .map(|&partition| {
                    let record = OutgoingRecord {
                        value: Some(value(partition, next, 100)),
                        ..OutgoingRecord::default()
                    };
                    let batch = encode_batch(&[record], Compression::None)?;
                    Ok(PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(batch)))
                })
                .collect::<Result<Vec<_>>>()?;
            let request = ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(30_000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partition_data(data)]);
            let response = client
                .send(*leader, Purpose::Default, &request)
                .await
                .context("cannot feed the topic")?;
            for answer in response
                .responses
                .iter()
                .flat_map(|t| t.partition_responses.iter())
            {
                if answer.error_code != 0 {
                    bail!(
                        "producing to {topic}/{} failed with error code {}",
                        answer.index,
                        answer.error_code
                    );
                }
            }
        }
        next += 1;
    }
    Ok(next)
}

/// `/proc/loadavg`'s three load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".into())
}

/// Each measure's values over the rounds, per kind, in the order first recorded.
#[derive(Default)]
struct Table {
    rows: Vec<Row>,
    failures: Vec<String>,
}

struct Row {
    label: String,
    decimals: usize,
    values: BTreeMap<Kind, Vec<f64>>,
}

impl Table {
    fn add(&mut self, kind: Kind, label: &str, decimals: usize, value: Option<f64>) {
        let index = match self.rows.iter().position(|r| r.label == label) {
            Some(index) => index,
            None => {
                self.rows.push(Row {
                    label: label.to_string(),
                    decimals,
                    values: BTreeMap::new(),
                });
                self.rows.len() - 1
            }
        };
        self.rows[index]
            .values
            .entry(kind)
            .or_default()
            .extend(value);
    }

    fn markdown(
        &self,
        options: &ScaleOptions,
        topic: &str,
        produced: u64,
        load_before: &str,
        load_after: &str,
    ) -> String {
        let mut text = String::new();
        let heartbeat = match options.heartbeat_ms {
            Some(ms) => format!("{ms} ms (set)"),
            None => format!("{DEFAULT_CONSUMER_HEARTBEAT_MS} ms (Kafka's default)"),
        };
        let _ = writeln!(
            text,
            "{} rounds; each cell is the median over the rounds (min-max), with [k/{}] where \
             only k rounds gave a value. One topic, {topic} ({} partitions), fed one record \
             per partition every {} ms ({produced} per partition in all). Broker: Kafka's \
             group defaults, group.consumer.heartbeat.interval.ms {heartbeat}. Load average \
             (1, 5, 15 min) before: {load_before}; after: {load_after}.\n",
            options.rounds,
            options.rounds,
            options.partitions,
            options.pace.as_millis(),
        );
        let columns: Vec<&str> = options.kinds.iter().map(|k| k.column()).collect();
        let _ = writeln!(text, "| N + 1 joins: measure | {} |", columns.join(" | "));
        let _ = writeln!(text, "|---|{}", "---:|".repeat(columns.len()));
        for row in &self.rows {
            let cells: Vec<String> = options
                .kinds
                .iter()
                .map(|kind| {
                    row.cell(
                        row.values.get(kind).map_or(&[][..], Vec::as_slice),
                        options.rounds,
                    )
                })
                .collect();
            let _ = writeln!(text, "| {} | {} |", row.label, cells.join(" | "));
        }
        if !self.failures.is_empty() {
            let _ = writeln!(text, "\nFailed runs:");
            for failure in &self.failures {
                let _ = writeln!(text, "- {failure}");
            }
        }
        text
    }
}

impl Row {
    fn cell(&self, values: &[f64], rounds: usize) -> String {
        if values.is_empty() {
            return "-".into();
        }
        let decimals = self.decimals;
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut cell = format!(
            "{:.decimals$} ({min:.decimals$}-{max:.decimals$})",
            median(values.to_vec())
        );
        if values.len() < rounds {
            let _ = write!(cell, " [{}/{rounds}]", values.len());
        }
        cell
    }
}
