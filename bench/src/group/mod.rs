//! A consumer group of `wasmkafka run --group` members (`wasmkafka-bench group [--rounds N]`),
//! with three protocols: the classic protocol's eager assignor (range) and cooperative one
//! (cooperative-sticky), and the consumer group protocol (KIP-848, `group.protocol=consumer`:
//! the broker assigns, with its default assignor, uniform). Every round runs each protocol's
//! phases with fresh group ids, rotating which protocol goes first; the report gives each
//! measure's median and min-max over the rounds, per protocol. The broker is the tests' node
//! (`tests/kafka/node.properties`), group settings included (see BENCHMARKS.md).
//!
//! Under the consumer protocol a member whose partitions stay put goes through no rebalance:
//! the rebalance measures of the earlier members cover only those that gave partitions up
//! (none in the idle join, where nothing moves).
//!
//! The phases of a round:
//! 1. [`reading`]: four members start together on the loaded 1m-100b topic (4 partitions):
//!    the time from starting them to the group's first record on stdout, the time until the
//!    group wrote every record, and the commits made while reading. Then a fifth member joins
//!    the idle group (it gets no partition: there are 4) and each earlier member's `/metrics`
//!    times the rebalance.
//! 2. [`flow`]: a fifth member joins four that read an 8-partition topic while a producer
//!    writes to it, and takes partitions from them: rebalance times, gaps in the output,
//!    records lost and duplicated.
//! 3. [`commits`]: commit latency while fetches long-poll on an idle topic fed a trickle.
//!
//! Durations come from the harness's clock (records as it reads them off the members'
//! stdout) and from the members' `/metrics` histograms, compared between two scrapes. Where a
//! histogram gives a percentile it is the bound of the bucket it falls in (an upper bound);
//! means come from `_sum` and `_count`, which are exact.

mod commits;
mod exposition;
mod flow;
mod member;
mod producer;
pub mod scale;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use wasmkafka_tests::kafka::Kafka;

use crate::report::median;
use crate::workload::Workload;
use exposition::{Exposition, Histogram, COMMIT_SECONDS, REBALANCE_SECONDS};
use member::{rebalanced_since, scrape_all, wait_until, Counter, Launcher};

/// Members that start together in each phase.
const MEMBERS: usize = 4;
/// The most a group may take to form or to absorb a join (the classic protocol waits for every
/// member's heartbeat, 3 s apart, before it rebalances).
const SETTLE_LIMIT: Duration = Duration::from_secs(60);
const PROTOCOLS: [&str; 3] = ["range", "cooperative-sticky", member::CONSUMER_PROTOCOL];

/// What every phase shares.
struct Setup<'a> {
    wasmkafka: &'a Path,
    kafka: &'a Kafka,
    brokers: String,
    /// The loaded topic of phase 1.
    reading: Workload,
    /// The idle topic of phase 3.
    trickle_topic: String,
}

/// `--rounds N` (default 3), the arguments after `group`.
pub fn rounds_option(mut args: impl Iterator<Item = String>) -> Result<usize> {
    let mut rounds = 3;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rounds" => {
                rounds = args
                    .next()
                    .context("--rounds needs a value")?
                    .parse()
                    .context("--rounds N")?
            }
            other => bail!("unknown argument `{other}`; usage: wasmkafka-bench group [--rounds N]"),
        }
    }
    if rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    Ok(rounds)
}

/// Every round of every protocol; the report as Markdown.
pub async fn run(wasmkafka: &Path, kafka: &Kafka, rounds: usize) -> Result<String> {
    let mut reading = Workload::all()
        .into_iter()
        .find(|w| w.name == "1m-100b")
        .expect("the 1m-100b workload");
    reading.topic = "bench-group-1m-100b".into();
    eprintln!("loading {}: {}", reading.topic, reading.describe());
    reading.load(kafka).await?;
    let trickle_topic = "bench-group-trickle".to_string();
    kafka
        .create_topic(&trickle_topic, commits::PARTITIONS, &[])
        .await?;
    let setup = Setup {
        wasmkafka,
        kafka,
        brokers: kafka.addr(),
        reading,
        trickle_topic,
    };
    let mut results = Results::default();
    for round in 0..rounds {
        let mut order = PROTOCOLS;
        order.rotate_left(round % PROTOCOLS.len());
        for assignor in order {
            let mut record = Recorder {
                results: &mut results,
                assignor,
                round,
            };
            tokio::task::block_in_place(|| run_round(&setup, assignor, round, &mut record))?;
        }
    }
    Ok(results.markdown(rounds, &setup.reading))
}

/// One protocol's phases in one round.
fn run_round(setup: &Setup, assignor: &str, round: usize, record: &mut Recorder) -> Result<()> {
    reading(setup, assignor, round, record)?;
    flow::run(setup, assignor, round, record)?;
    for wait in commits::FETCH_WAITS_MS {
        commits::run(setup, assignor, round, wait, record)?;
    }
    Ok(())
}

/// Phase 1 (see the module doc).
fn reading(setup: &Setup, assignor: &str, round: usize, record: &mut Recorder) -> Result<()> {
    let group = format!("bench-group-{assignor}-{round}");
    let launcher = Launcher {
        wasmkafka: setup.wasmkafka,
        brokers: &setup.brokers,
        topic: &setup.reading.topic,
        group: &group,
        assignor,
        from: "earliest",
        fetch_max_wait_ms: None,
        logs: None,
    };
    let output = Arc::new(Counter::default());
    let started = Instant::now();
    let mut members = launcher.start_many(MEMBERS, output.clone())?;
    let records = setup.reading.records;
    wait_until(
        Duration::from_secs(300),
        "the group writing every record",
        || output.written.load(Ordering::Relaxed) >= records,
    )?;
    let all_written = started.elapsed();
    // Let the last commits land.
    std::thread::sleep(Duration::from_secs(2));
    let before = scrape_all(&members)?;

    members.push(launcher.start(MEMBERS, output.clone())?);
    wait_until(SETTLE_LIMIT, "the fifth member's join", || {
        rebalanced_since(&members, &before, setup.reading.partitions, assignor)
    })?;
    let after = scrape_all(&members)?;
    drop(members);

    let first = output.first.get().map(|at| at.duration_since(started));
    record.ms(
        "reading: first record, from starting the members",
        first.map(|d| d.as_secs_f64()),
    );
    record.seconds(
        "reading: all records written, from starting the members",
        all_written,
    );
    let commits = Histogram::merged(
        &before
            .iter()
            .map(|e| e.histogram(COMMIT_SECONDS))
            .collect::<Vec<_>>(),
    );
    record.count("reading: commits", commits.count());
    record.ms(
        "reading: commit p50, bucket bound",
        commits.quantile_bound(0.5),
    );
    record.ms(
        "reading: commit p99, bucket bound",
        commits.quantile_bound(0.99),
    );
    record.ms("reading: commit mean", commits.mean());
    let rebalance = join_rebalance(&before, &after);
    record.ms(
        "idle join: rebalance, mean of the four members",
        rebalance.mean,
    );
    record.ms("idle join: rebalance, slowest member", rebalance.slowest);
    Ok(())
}

/// How long one join's rebalance took for the members that were already in the group, in
/// seconds: each member's mean over the rebalances it completed between the two scrapes
/// (`_sum` and `_count` deltas of `wasmkafka_rebalance_duration_seconds`: exact, where a
/// bucket would only bound it), then the mean over the members and the slowest member.
struct JoinRebalance {
    mean: Option<f64>,
    slowest: Option<f64>,
}

fn join_rebalance(before: &[Exposition], after: &[Exposition]) -> JoinRebalance {
    let means: Vec<f64> = after
        .iter()
        .zip(before)
        .filter_map(|(after, before)| {
            let name = REBALANCE_SECONDS;
            after.histogram(name).since(&before.histogram(name)).mean()
        })
        .collect();
    JoinRebalance {
        mean: (!means.is_empty()).then(|| means.iter().sum::<f64>() / means.len() as f64),
        slowest: means.iter().copied().reduce(f64::max),
    }
}

/// Records one protocol's measures of one round into the results (and says them on stderr).
struct Recorder<'a> {
    results: &'a mut Results,
    assignor: &'static str,
    round: usize,
}

impl Recorder<'_> {
    /// A duration given in seconds, reported in ms.
    fn ms(&mut self, label: &str, seconds: impl Into<Option<f64>>) {
        self.add(&format!("{label} (ms)"), 0, seconds.into().map(|s| s * 1e3));
    }

    fn seconds(&mut self, label: &str, duration: Duration) {
        self.add(&format!("{label} (s)"), 2, Some(duration.as_secs_f64()));
    }

    fn count(&mut self, label: &str, count: f64) {
        self.add(label, 0, Some(count));
    }

    fn add(&mut self, label: &str, decimals: usize, value: Option<f64>) {
        let shown = value.map_or("-".into(), |v| format!("{v:.decimals$}"));
        eprintln!(
            "  round {} {:<18} {label}: {shown}",
            self.round + 1,
            self.assignor
        );
        self.results.add(self.assignor, label, decimals, value);
    }
}

/// Each measure's values over the rounds, per protocol, in the order first recorded.
#[derive(Default)]
struct Results {
    measures: Vec<Measure>,
}

struct Measure {
    label: String,
    decimals: usize,
    values: BTreeMap<&'static str, Vec<f64>>,
}

impl Results {
    fn add(&mut self, assignor: &'static str, label: &str, decimals: usize, value: Option<f64>) {
        let index = match self.measures.iter().position(|m| m.label == label) {
            Some(index) => index,
            None => {
                self.measures.push(Measure {
                    label: label.to_string(),
                    decimals,
                    values: BTreeMap::new(),
                });
                self.measures.len() - 1
            }
        };
        let values = self.measures[index].values.entry(assignor).or_default();
        values.extend(value);
    }

    /// A table: a row per measure, a column per protocol with "median (min-max)".
    fn markdown(&self, rounds: usize, reading: &Workload) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "{rounds} rounds; each cell is the median over the rounds (min-max). Phase 1 reads \
             {} ({}); the join phase reads an 8-partition topic fed {} records/s; the commit \
             phase's topic gets one record per partition per second.\n",
            reading.topic,
            reading.describe(),
            flow::RECORDS_PER_SECOND,
        );
        let _ = writeln!(text, "| measure | {} |", PROTOCOLS.join(" | "));
        let _ = writeln!(text, "|---|{}", "---:|".repeat(PROTOCOLS.len()));
        for measure in &self.measures {
            let cells: Vec<String> = PROTOCOLS
                .iter()
                .map(|p| measure.cell(measure.values.get(p).map_or(&[][..], Vec::as_slice)))
                .collect();
            let _ = writeln!(text, "| {} | {} |", measure.label, cells.join(" | "));
        }
        text
    }
}

impl Measure {
    fn cell(&self, values: &[f64]) -> String {
        if values.is_empty() {
            return "-".into();
        }
        let decimals = self.decimals;
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!(
            "{:.decimals$} ({min:.decimals$}-{max:.decimals$})",
            median(values.to_vec())
        )
    }
}
