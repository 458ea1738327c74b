//! `wasmkafka-bench group-scale` (and `wasmkafka-bench rebalance`, the same for a group of 4):
//! how long a group of N members (`--members`, default 1, 10 and 50; 4 for `rebalance`)
//! takes to settle after one more member joins, and after one of the N + 1 leaves, and how
//! long each partition stops, for these kinds of member on the same broker in the same run
//! (`--consumer`, repeatable; all by default; see [`kinds`]):
//! - `ours-eager` / `ours-classic` / `ours-consumer`: `wasmkafka run --group` processes, the
//!   classic protocol with range (eager) or cooperative-sticky, or `group.protocol=consumer`
//!   (KIP-848);
//! - `java-eager` / `java-classic` / `java-consumer`: kafka-clients
//!   (`bench/peers/java/GroupScale.java`), one JVM whose threads each run a `KafkaConsumer`
//!   (RangeAssignor, CooperativeStickyAssignor, or `group.protocol=consumer`). The joiner is
//!   one more thread of the warm JVM: it pays for no JVM start, where ours pays for a process
//!   start;
//! - `rdkafka-eager` / `rdkafka-cooperative` / `rdkafka-consumer`: confluent-kafka
//!   (librdkafka; `bench/peers/python/group_member.py`), a Python process per member.
//!
//! The broker runs Kafka's defaults for every group setting (the tests' node config lowers
//! them; [`broker_overrides`] puts them back), so a consumer-protocol member beats every 5 s
//! (`group.consumer.heartbeat.interval.ms`) and a classic one every 3 s (the clients' default
//! `heartbeat.interval.ms`). `--broker-heartbeat-ms` sets the former.
//!
//! One topic of `--partitions` (100) is fed all along, one record per partition every
//! `--pace-ms` (100 ms) in one Produce request. A run, with a fresh group id, times the events
//! of `--event` (`join`, `leave` or `both`, the default) on one group:
//! 1. N members start (N + 1 when only the leave is timed; `from latest`); they formed once
//!    the coordinator's answers show, for [`QUIET`], the same N members in a Stable group,
//!    each partition owned by exactly one, each member at least floor(P / N); then until
//!    every partition had a record since.
//! 2. Before each event, a baseline of [`BASELINE`] and a random wait below the longer
//!    heartbeat interval in play (5 s by default): the longest gap between two records of one
//!    partition (the feed's pace and the fetches' granularity). The members beat in step with
//!    the group's last rebalance, which the harness saw; the random wait puts the event
//!    anywhere in their cycle.
//! 3. The event. **Join**: one more member starts. **Leave**: member 0 (one of the first N,
//!    which owns partitions) stops cleanly: ours and librdkafka's get SIGTERM (`wasmkafka
//!    run` commits and leaves the group; the Python member calls `consumer.close()`), a Java
//!    thread closes its consumer (LeaveGroup). From the event, the harness asks the
//!    coordinator to describe the group every [`POLL`] (DescribeGroups, or
//!    ConsumerGroupDescribe for a consumer-protocol group). The group **settled** at the
//!    first answer after which, for [`QUIET`], every answer is the same and shows every
//!    partition owned by exactly one member and: after a join, N + 1 members, the joiner
//!    holding at least its share, floor(P / (N + 1)); after a leave, the N members that
//!    stayed, each holding at least floor(P / N). What the coordinator calls a member's
//!    partitions: under the classic protocol the assignment the leader made, shown once the
//!    group is Stable (every member has its SyncGroup answer); under the consumer protocol
//!    the partitions the coordinator handed to the member, which it hands over only once
//!    their previous owner said it gave them up.
//! 4. The pause: for each partition, the longest time between two records of it the members
//!    wrote, from the event until every partition wrote a record after the group settled (a
//!    partition that moved: from its last record at its old owner to its first at the new
//!    one, re-read records included). Reported for the partitions that moved (their owner
//!    in the coordinator's answers before the event and once settled differs) and, apart,
//!    the longest of those that did not: an eager rebalance stops them too, a cooperative or
//!    KIP-848 one should not.
//!
//! After a join, a leave runs on the same N + 1 members (step 2 again).

mod feed;
mod gaps;
pub mod kinds;
mod members;
mod table;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use tokio::runtime::Handle;
use wasmkafka::client::Client;
use wasmkafka::group::coordinator::find_coordinator;
use wasmkafka::group::describe::describe_group;
use wasmkafka_tests::kafka::Kafka;

use feed::Feed;
use gaps::{split, Gaps, Window};
pub use kinds::{options, rebalance_options, ScaleOptions};
use kinds::{Event, Kind};
use members::Members;
use table::{load_average, Table};

/// How often the harness asks the coordinator.
const POLL: Duration = Duration::from_millis(20);
/// How long the coordinator's answers must stay the same for the group to count as settled.
const QUIET: Duration = Duration::from_secs(1);
/// The steady output measured before an event.
const BASELINE: Duration = Duration::from_secs(2);
/// The most N members may take to form (KIP-848 members take their partitions from each
/// other a heartbeat at a time) and an event to settle.
const FORM_LIMIT: Duration = Duration::from_secs(240);
const EVENT_LIMIT: Duration = Duration::from_secs(120);
/// The most every partition may take to write again once the group settled.
const RESUME_LIMIT: Duration = Duration::from_secs(30);
/// The clients' default `heartbeat.interval.ms` (classic protocol; ours and Java's).
const CLASSIC_HEARTBEAT_MS: u64 = 3_000;
/// Kafka's default `group.consumer.heartbeat.interval.ms`.
const DEFAULT_CONSUMER_HEARTBEAT_MS: u64 = 5_000;

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
    /// The venv's Python, with confluent-kafka (only when a librdkafka kind runs).
    python: Option<&'a Path>,
    /// `bench/peers`.
    peers_dir: &'a Path,
    brokers: String,
    topic: String,
    partitions: i32,
    /// The members' stderr: ours at `WASMKAFKA_LOG=info`, the JVM's at WARN.
    logs: PathBuf,
    client: Client,
    handle: Handle,
    /// An event comes a random time below this after the baseline.
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

/// Where the members' programs are.
pub struct Programs<'a> {
    pub wasmkafka: &'a Path,
    pub java_classpath: &'a str,
    pub python: Option<&'a Path>,
    pub peers_dir: &'a Path,
}

/// Every round of every size and kind; the report as Markdown.
pub async fn run(
    programs: &Programs<'_>,
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
        wasmkafka: programs.wasmkafka,
        java_classpath: programs.java_classpath,
        python: programs.python,
        peers_dir: programs.peers_dir,
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
                    eprintln!("round {} N = {n}, {}: group {group}", round + 1, kind.id());
                    let mut measures = Measures::new();
                    let outcome = run_once(&ctx, kind, n, &options.events, &group, &mut measures);
                    for (label, decimals, value) in measures {
                        table.add(kind, &label, decimals, value);
                    }
                    if let Err(error) = outcome {
                        let error = format!("{error:#}");
                        eprintln!("  FAILED: {error}");
                        table.failures.push(format!(
                            "round {}, N = {n}, {}: {error}",
                            round + 1,
                            kind.id()
                        ));
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

/// Adds a measure, and shows it.
fn note(measures: &mut Measures, label: String, decimals: usize, value: Option<f64>) {
    let shown = value.map_or("-".into(), |v| format!("{v:.decimals$}"));
    eprintln!("  {label}: {shown}");
    measures.push((label, decimals, value));
}

fn ms(d: Duration) -> Option<f64> {
    Some(d.as_secs_f64() * 1e3)
}

/// One group, then its events (see the module doc); the measures go to `measures` as they
/// come, so a failed leave keeps the join's.
fn run_once(
    ctx: &Ctx,
    kind: Kind,
    n: usize,
    events: &[Event],
    group: &str,
    measures: &mut Measures,
) -> Result<()> {
    let first = if events.first() == Some(&Event::Join) {
        n
    } else {
        n + 1
    };
    let gaps = Arc::new(Gaps::new(ctx.partitions, n + 1));
    let mut members = Members::start(ctx, kind, group, first, gaps.clone())?;
    let mut coordinator = None;
    form(ctx, &mut members, &gaps, group, first, &mut coordinator)?;
    for event in events {
        match event {
            Event::Join => join(
                ctx,
                kind,
                &mut members,
                &gaps,
                group,
                n,
                &mut coordinator,
                measures,
            )?,
            Event::Leave => leave(
                ctx,
                &mut members,
                &gaps,
                group,
                n,
                &mut coordinator,
                measures,
            )?,
        }
    }
    Ok(())
}

/// Waits for `size` members to form a group: balanced, Stable, and the same for [`QUIET`];
/// then for every partition to write again.
fn form(
    ctx: &Ctx,
    members: &mut Members,
    gaps: &Gaps,
    group: &str,
    size: usize,
    coordinator: &mut Option<i32>,
) -> Result<()> {
    let started = Instant::now();
    let mut candidate: Option<(Instant, Owners)> = None;
    let formed = loop {
        let now = Instant::now();
        let described = describe(ctx, group, coordinator);
        if let Ok(described) = &described {
            let done = is_formed(described, size, ctx.partitions);
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
                "the {size} members did not form a group owning every partition within \
                 {FORM_LIMIT:?}; last description: {}",
                summary(&described)
            );
        }
        members.check()?;
        std::thread::sleep(POLL);
    };
    eprintln!(
        "  {size} formed in {:.1} s",
        formed.duration_since(started).as_secs_f64()
    );
    wait_resumed(gaps, formed, "after the group formed")
}

/// The baseline and the random wait before an event; the group as it is then, which must
/// still be the formed group of `size`.
fn before_event(
    ctx: &Ctx,
    gaps: &Gaps,
    group: &str,
    size: usize,
    coordinator: &mut Option<i32>,
) -> Result<Described> {
    gaps.reset();
    gaps.enter(Window::Baseline);
    // The members beat in step with the group's last rebalance, which the harness saw;
    // without the random wait every event would fall at the same point of their cycle.
    std::thread::sleep(BASELINE + random_below(ctx.phase_spread));
    let before = describe(ctx, group, coordinator)?;
    if !is_formed(&before, size, ctx.partitions) {
        bail!(
            "the group moved before the event: {}",
            summary(&Ok(before.clone()))
        );
    }
    Ok(before)
}

/// Asks the coordinator every [`POLL`] until `done` held for [`QUIET`] on the same owners;
/// `seen` sees every answer. Returns the first of those answers and when it came.
fn settle(
    ctx: &Ctx,
    members: &mut Members,
    group: &str,
    coordinator: &mut Option<i32>,
    start: Instant,
    mut seen: impl FnMut(&Described, Instant),
    done: impl Fn(&Described) -> bool,
) -> Result<(Instant, Described)> {
    let mut candidate: Option<(Instant, Described)> = None;
    loop {
        let now = Instant::now();
        let described = describe(ctx, group, coordinator);
        if let Ok(described) = &described {
            seen(described, now);
            let same = candidate
                .as_ref()
                .is_some_and(|(_, seen)| seen.owners == described.owners);
            if !done(described) {
                candidate = None;
            } else if !same {
                candidate = Some((now, described.clone()));
            }
        }
        if candidate
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() >= QUIET)
        {
            return Ok(candidate.take().expect("a candidate"));
        }
        if start.elapsed() > EVENT_LIMIT {
            bail!(
                "the group did not settle within {EVENT_LIMIT:?} of the event; last \
                 description: {}",
                summary(&described)
            );
        }
        members.check()?;
        std::thread::sleep(POLL);
    }
}

/// After an event settled at `settled_at`: waits for every partition to write again, closes
/// the window, and notes the pauses, split by whether the partition moved.
fn pauses(
    ctx: &Ctx,
    gaps: &Gaps,
    prefix: &str,
    before: &Described,
    after: &Described,
    settled_at: Instant,
    measures: &mut Measures,
) {
    let resumed = wait_resumed(gaps, settled_at, "after the group settled");
    gaps.close();
    if let Err(error) = &resumed {
        eprintln!("  {error:#} (the pauses count up to the end of the wait)");
    }
    let moved: BTreeSet<i32> = (0..ctx.partitions)
        .filter(|p| owner(&before.owners, *p) != owner(&after.owners, *p))
        .collect();
    let split = split(&gaps.event_pauses_ms(), &moved);
    let label = |text: &str| format!("{prefix}: {text}");
    note(
        measures,
        label("partitions moved"),
        0,
        Some(moved.len() as f64),
    );
    note(
        measures,
        label("longest pause of one partition (ms)"),
        0,
        split.longest,
    );
    note(
        measures,
        label("pause of a moved partition, median (ms)"),
        0,
        split.moved_median,
    );
    note(
        measures,
        label("pause of a moved partition, longest (ms)"),
        0,
        split.moved_longest,
    );
    note(
        measures,
        label("longest gap of a partition that did not move (ms)"),
        0,
        split.stayed_longest,
    );
    note(
        measures,
        label("longest gap of one partition, before the event (ms)"),
        0,
        Some(gaps.baseline_ms()),
    );
}

/// N members formed; one more joins.
#[allow(clippy::too_many_arguments)]
fn join(
    ctx: &Ctx,
    kind: Kind,
    members: &mut Members,
    gaps: &Arc<Gaps>,
    group: &str,
    n: usize,
    coordinator: &mut Option<i32>,
    measures: &mut Measures,
) -> Result<()> {
    let before = before_event(ctx, gaps, group, n, coordinator)?;
    gaps.enter(Window::Event);
    let start = Instant::now();
    members.join(ctx, kind, group, n, gaps.clone())?;
    let share = ctx.partitions as usize / (n + 1);
    let joiners = |described: &Described| -> Vec<usize> {
        described
            .owners
            .iter()
            .filter(|(id, _)| !before.owners.contains_key(*id))
            .map(|(_, owned)| owned.len())
            .collect()
    };
    let mut listed = None;
    let (settled_at, after) = settle(
        ctx,
        members,
        group,
        coordinator,
        start,
        |described, now| {
            if listed.is_none() && !joiners(described).is_empty() {
                listed = Some(now);
            }
        },
        |described| {
            let joiners = joiners(described);
            described.owners.len() == n + 1
                && joiners.len() == 1
                && joiners[0] >= share
                && complete(&described.owners, ctx.partitions)
        },
    )?;
    let prefix = format!("{n} + 1 joins");
    let label = |text: &str| format!("{prefix}: {text}");
    eprintln!(
        "  settled: state {}, the joiner holds {}",
        after.state,
        joiners(&after).first().copied().unwrap_or(0)
    );
    note(
        measures,
        label("settled, from the joiner's start (ms)"),
        0,
        ms(settled_at.duration_since(start)),
    );
    note(
        measures,
        label("the joiner listed by the coordinator, from its start (ms)"),
        0,
        listed.and_then(|at| ms(at.duration_since(start))),
    );
    pauses(ctx, gaps, &prefix, &before, &after, settled_at, measures);
    note(
        measures,
        label("the joiner's first record, from its start (ms)"),
        0,
        gaps.first_record(n, start).and_then(ms),
    );
    note(
        measures,
        label("memory of the group after the join, RSS (MB)"),
        0,
        Some(members.rss_bytes() as f64 / 1e6),
    );
    Ok(())
}

/// N + 1 members formed; member 0 leaves.
fn leave(
    ctx: &Ctx,
    members: &mut Members,
    gaps: &Gaps,
    group: &str,
    n: usize,
    coordinator: &mut Option<i32>,
    measures: &mut Measures,
) -> Result<()> {
    let before = before_event(ctx, gaps, group, n + 1, coordinator)?;
    gaps.enter(Window::Event);
    let start = Instant::now();
    members.leave(0)?;
    let share = ctx.partitions as usize / n;
    let stayed = |described: &Described| {
        described.owners.len() == n
            && described
                .owners
                .keys()
                .all(|id| before.owners.contains_key(id))
    };
    let mut dropped = None;
    let (settled_at, after) = settle(
        ctx,
        members,
        group,
        coordinator,
        start,
        |described, now| {
            if dropped.is_none() && stayed(described) {
                dropped = Some(now);
            }
        },
        |described| {
            stayed(described)
                && described.owners.values().all(|owned| owned.len() >= share)
                && complete(&described.owners, ctx.partitions)
        },
    )?;
    let prefix = format!("{} - 1 leaves", n + 1);
    let label = |text: &str| format!("{prefix}: {text}");
    note(
        measures,
        label("settled, from the leave (ms)"),
        0,
        ms(settled_at.duration_since(start)),
    );
    note(
        measures,
        label("the leaver gone from the coordinator's answers, from the leave (ms)"),
        0,
        dropped.and_then(|at| ms(at.duration_since(start))),
    );
    note(
        measures,
        label("the leaver's process exited, from SIGTERM (ms)"),
        0,
        members
            .left_exit()
            .and_then(|at| ms(at.duration_since(start))),
    );
    pauses(ctx, gaps, &prefix, &before, &after, settled_at, measures);
    Ok(())
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
