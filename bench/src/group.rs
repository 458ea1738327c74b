//! A consumer group of `wasmkafka run --group` members on one workload (`wasmkafka-bench
//! group`), once with the eager protocol (range) and once with the cooperative one
//! (cooperative-sticky). Four members start together and read the topic; then a fifth joins.
//! The report gives:
//! - the time from starting the first member to its first record on stdout;
//! - the time until the group has written every record;
//! - the commit latency p50 and p99 while reading, from the members'
//!   `wasmkafka_commit_duration_seconds` buckets (the bucket bound the percentile falls in);
//! - the fifth member's join as each earlier member's `/metrics` timed its rebalance (first
//!   JoinGroup to assignment applied).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use wasmkafka_tests::kafka::{free_port, Kafka};
use wasmkafka_tests::metrics;

use crate::peers::Tools;
use crate::workload::Workload;

const MEMBERS: usize = 4;

struct Member {
    child: Child,
    port: u16,
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `/metrics` of the member listening on `port`.
fn scrape(port: u16) -> Result<String> {
    match metrics::get(port, "/metrics") {
        Some((200, body)) => Ok(body),
        other => bail!("no metrics from 127.0.0.1:{port}: {other:?}"),
    }
}

/// A sample's value; 0 when the exposition does not have it (yet).
fn sample(text: &str, name: &str) -> f64 {
    metrics::sample(text, name).unwrap_or(0.0)
}

/// Cumulative (bound, count) pairs of a histogram in an exposition.
fn buckets(text: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            let (bound, count) = rest.split_once("\"} ")?;
            let bound = if bound == "+Inf" {
                f64::INFINITY
            } else {
                bound.parse().ok()?
            };
            Some((bound, count.parse().ok()?))
        })
        .collect()
}

/// The bucket bound the `q` quantile of the summed histograms falls in.
fn quantile(histograms: &[Vec<(f64, f64)>], q: f64) -> Option<f64> {
    let mut summed: Vec<(f64, f64)> = Vec::new();
    for histogram in histograms {
        for (i, (bound, count)) in histogram.iter().enumerate() {
            match summed.get_mut(i) {
                Some(entry) => entry.1 += count,
                None => summed.push((*bound, *count)),
            }
        }
    }
    let total = summed.last()?.1;
    if total == 0.0 {
        return None;
    }
    summed
        .iter()
        .find(|(_, count)| *count >= q * total)
        .map(|(bound, _)| *bound)
}

fn start_member(
    tools: &Tools,
    brokers: &str,
    workload: &Workload,
    group: &str,
    assignor: &str,
    written: Arc<AtomicU64>,
    first_record: Option<Arc<std::sync::OnceLock<Instant>>>,
) -> Result<Member> {
    let port = free_port()?;
    let mut child = Command::new(&tools.wasmkafka)
        .args(["run", "--brokers", brokers, "--topic", &workload.topic])
        .args(["--group", group, "--from", "earliest", "--format", "raw"])
        .args(["--no-progress", "--metrics", &format!("127.0.0.1:{port}")])
        .args(["-X", &format!("partition.assignment.strategy={assignor}")])
        .env("WASMKAFKA_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start a group member")?;
    let stdout = child.stdout.take().expect("piped");
    std::thread::spawn(move || {
        let mut lines = BufReader::with_capacity(1 << 16, stdout).split(b'\n');
        if let Some(Ok(_)) = lines.next() {
            if let Some(first) = &first_record {
                let _ = first.set(Instant::now());
            }
            written.fetch_add(1, Ordering::Relaxed);
        }
        for line in lines {
            if line.is_err() {
                break;
            }
            written.fetch_add(1, Ordering::Relaxed);
        }
    });
    Ok(Member { child, port })
}

/// Rebalance count and seconds summed, from one member's exposition.
fn rebalances(metrics: &str) -> (f64, f64) {
    (
        sample(metrics, "wasmkafka_rebalance_duration_seconds_count"),
        sample(metrics, "wasmkafka_rebalance_duration_seconds_sum"),
    )
}

/// One protocol's run; a Markdown section.
fn run_protocol(
    tools: &Tools,
    brokers: &str,
    workload: &Workload,
    assignor: &str,
) -> Result<String> {
    let group = format!("bench-group-{assignor}");
    let written = Arc::new(AtomicU64::new(0));
    let first = Arc::new(std::sync::OnceLock::new());
    let start = |first_record| {
        start_member(
            tools,
            brokers,
            workload,
            &group,
            assignor,
            written.clone(),
            first_record,
        )
    };
    // Phase 1: four members start together and read the topic.
    let started = Instant::now();
    let mut members = Vec::new();
    for index in 0..MEMBERS {
        members.push(start((index == 0).then(|| first.clone()))?);
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while written.load(Ordering::Relaxed) < workload.records {
        if Instant::now() > deadline {
            bail!(
                "the group wrote {} of {} records in 300 s",
                written.load(Ordering::Relaxed),
                workload.records
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let all_written = started.elapsed();
    // Let the last commits land, then read the members' histograms.
    std::thread::sleep(Duration::from_secs(3));
    let before: Vec<String> = members
        .iter()
        .map(|m| scrape(m.port))
        .collect::<Result<_>>()?;
    let commits: Vec<Vec<(f64, f64)>> = before
        .iter()
        .map(|metrics| buckets(metrics, "wasmkafka_commit_duration_seconds"))
        .collect();
    let commit_count: f64 = before
        .iter()
        .map(|metrics| sample(metrics, "wasmkafka_commits_total"))
        .sum();

    // Phase 2: a fifth member joins the settled group.
    members.push(start(None)?);
    std::thread::sleep(Duration::from_secs(8));
    let mut join_times = Vec::new();
    for (member, earlier) in members.iter().zip(&before) {
        let (count_before, sum_before) = rebalances(earlier);
        let (count, sum) = rebalances(&scrape(member.port)?);
        if count > count_before {
            join_times.push((sum - sum_before) / (count - count_before) * 1e3);
        }
    }
    drop(members);

    let mut text =
        format!("### {assignor}: {MEMBERS} members started together, then a fifth joins\n\n");
    text.push_str(&format!(
        "- first record from the first member: {:.0} ms after it started\n",
        first
            .get()
            .map_or(f64::NAN, |at| at.duration_since(started).as_secs_f64()
                * 1e3)
    ));
    text.push_str(&format!(
        "- the group wrote all {} records {:.2} s after the members started (the first \
         rebalance included)\n",
        workload.records,
        all_written.as_secs_f64()
    ));
    let ms = |q| quantile(&commits, q).map_or("-".to_string(), |b: f64| format!("{}", b * 1e3));
    text.push_str(&format!(
        "- commits while reading: {commit_count:.0}, latency p50 at most {} ms, p99 at most {} \
         ms (histogram bucket bounds)\n",
        ms(0.5),
        ms(0.99)
    ));
    let joins: Vec<String> = join_times.iter().map(|t| format!("{t:.0}")).collect();
    text.push_str(&format!(
        "- the fifth member's join, as each of the first four measured its rebalance (first \
         JoinGroup to assignment applied): {} ms\n\n",
        joins.join(", ")
    ));
    Ok(text)
}

pub async fn run(tools: &Tools, kafka: &Kafka) -> Result<String> {
    let mut workload = Workload::all()
        .into_iter()
        .find(|w| w.name == "1m-100b")
        .expect("the 1m-100b workload");
    workload.topic = "bench-group-1m-100b".into();
    workload.load(kafka).await?;
    let brokers = kafka.addr();
    let mut text = format!("{}\n\n", workload.describe());
    for assignor in ["range", "cooperative-sticky"] {
        let section =
            tokio::task::block_in_place(|| run_protocol(tools, &brokers, &workload, assignor))?;
        eprint!("{section}");
        text.push_str(&section);
    }
    Ok(text)
}
