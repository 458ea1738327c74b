//! Group members: `wasmkafka run --group` processes whose stdout (one record a line, `--format
//! raw`) a thread of the harness reads and hands to an [`Output`], and whose `/metrics` the
//! harness scrapes to see what the group did.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use wasmkafka_tests::kafka::free_port;

use super::exposition::{Exposition, ASSIGNED, GENERATION, REBALANCES};

/// Where the records the members write go.
pub trait Output: Send + Sync + 'static {
    /// `member` (its index in start order) wrote `line` (a record's value, no newline).
    fn record(&self, member: usize, line: &[u8]);
}

/// Counts the records written and notes when the first one was.
#[derive(Default)]
pub struct Counter {
    pub written: AtomicU64,
    pub first: OnceLock<Instant>,
}

impl Output for Counter {
    fn record(&self, _member: usize, _line: &[u8]) {
        self.first.get_or_init(Instant::now);
        self.written.fetch_add(1, Ordering::Relaxed);
    }
}

/// How every member of one group is started.
pub struct Launcher<'a> {
    pub wasmkafka: &'a Path,
    pub brokers: &'a str,
    pub topic: &'a str,
    pub group: &'a str,
    /// `partition.assignment.strategy`: range (eager) or cooperative-sticky.
    pub assignor: &'a str,
    /// Where a partition without a committed offset starts: earliest or latest.
    pub from: &'a str,
    /// `fetch.max.wait.ms`; `None` leaves the default (500 ms).
    pub fetch_max_wait_ms: Option<u64>,
}

/// A running member; killed when dropped.
pub struct Member {
    child: Child,
    pub port: u16,
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Launcher<'_> {
    /// Starts member number `index`, its records going to `output`.
    pub fn start(&self, index: usize, output: Arc<dyn Output>) -> Result<Member> {
        let port = free_port()?;
        let mut command = Command::new(self.wasmkafka);
        command
            .args(["run", "--brokers", self.brokers, "--topic", self.topic])
            .args([
                "--group", self.group, "--from", self.from, "--format", "raw",
            ])
            .args(["--no-progress", "--metrics", &format!("127.0.0.1:{port}")])
            .args([
                "-X",
                &format!("partition.assignment.strategy={}", self.assignor),
            ]);
        if let Some(wait) = self.fetch_max_wait_ms {
            command.args(["-X", &format!("fetch.max.wait.ms={wait}")]);
        }
        let mut child = command
            .env("WASMKAFKA_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start a group member")?;
        let stdout = child.stdout.take().expect("piped");
        std::thread::spawn(move || read_records(stdout, index, &*output));
        Ok(Member { child, port })
    }

    /// Starts `count` members (indexes 0..count) writing to one output.
    pub fn start_many(&self, count: usize, output: Arc<dyn Output>) -> Result<Vec<Member>> {
        (0..count).map(|i| self.start(i, output.clone())).collect()
    }
}

/// Hands every line of a member's stdout to `output` until the member exits.
fn read_records(stdout: ChildStdout, member: usize, output: &dyn Output) {
    let mut reader = BufReader::with_capacity(1 << 16, stdout);
    let mut line = Vec::new();
    while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
        output.record(member, line.strip_suffix(b"\n").unwrap_or(&line));
        line.clear();
    }
}

/// Every member's `/metrics`, in start order.
pub fn scrape_all(members: &[Member]) -> Result<Vec<Exposition>> {
    members.iter().map(|m| Exposition::scrape(m.port)).collect()
}

/// Every member's `/metrics`, or `None` while one does not answer yet (a member just
/// started).
pub fn scrape_ready(members: &[Member]) -> Option<Vec<Exposition>> {
    members
        .iter()
        .map(|m| Exposition::scrape(m.port).ok())
        .collect()
}

/// Polls `done` every 20 ms until it holds; fails after `limit`. Returns how long it took.
pub fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) -> Result<Duration> {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > limit {
            bail!("{what} did not happen within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(started.elapsed())
}

/// The members agree on a generation and hold all `partitions` between them, each at least
/// `at_least_each`; false while one does not answer.
pub fn settled(members: &[Member], partitions: i32, at_least_each: f64) -> bool {
    scrape_ready(members).is_some_and(|now| agree(&now, partitions, at_least_each))
}

/// [`settled`], from the members' expositions.
fn agree(expositions: &[Exposition], partitions: i32, at_least_each: f64) -> bool {
    let Some(first) = expositions.first().and_then(|e| e.get(GENERATION)) else {
        return false;
    };
    let one_generation = expositions.iter().all(|e| e.get(GENERATION) == Some(first));
    let assigned: Vec<f64> = expositions.iter().map(|e| e.value(ASSIGNED)).collect();
    one_generation
        && assigned.iter().sum::<f64>() == f64::from(partitions)
        && assigned.iter().all(|a| *a >= at_least_each)
}

/// After members joined a group whose earlier members were scraped in `before`: every
/// earlier member completed a rebalance since, every new one at least one, and the group
/// [`settled`].
pub fn rebalanced_since(members: &[Member], before: &[Exposition], partitions: i32) -> bool {
    let Some(now) = scrape_ready(members) else {
        return false;
    };
    let earlier_rebalanced = now
        .iter()
        .zip(before)
        .all(|(now, before)| now.value(REBALANCES) > before.value(REBALANCES));
    let new_joined = now[before.len()..]
        .iter()
        .all(|e| e.value(REBALANCES) >= 1.0);
    earlier_rebalanced && new_joined && agree(&now, partitions, 0.0)
}
