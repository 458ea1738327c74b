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
use wasmkafka_tests::kafka::process::spawn_tied;

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
    /// The group protocol and its assignor: `range` (eager) or `cooperative-sticky`
    /// (`partition.assignment.strategy` under the classic protocol), or [`CONSUMER_PROTOCOL`]
    /// (`group.protocol=consumer`, KIP-848: the broker assigns with its default assignor).
    pub assignor: &'a str,
    /// Where a partition without a committed offset starts: earliest or latest.
    pub from: &'a str,
    /// `fetch.max.wait.ms`; `None` leaves the default (500 ms).
    pub fetch_max_wait_ms: Option<u64>,
    /// Where each member's stderr goes, with `WASMKAFKA_LOG=info` (or `$WASMKAFKA_BENCH_LOG`):
    /// `DIR/GROUP-INDEX.log`. `None`: nowhere, at `warn`.
    pub logs: Option<&'a Path>,
}

/// The name [`Launcher::assignor`] gives the consumer group protocol (KIP-848).
pub const CONSUMER_PROTOCOL: &str = "consumer";

/// A running member; killed when dropped.
pub struct Member {
    child: Child,
    pub port: u16,
}

impl Member {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How the process ended, if it did.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Starts `command` as member number `index` (its stdout: one record a line, to
    /// `output`), with no `/metrics` (port 0).
    pub fn spawn(command: Command, index: usize, output: Arc<dyn Output>) -> Result<Member> {
        Member::spawn_on(command, index, output, 0)
    }

    fn spawn_on(
        mut command: Command,
        index: usize,
        output: Arc<dyn Output>,
        port: u16,
    ) -> Result<Member> {
        command.stdin(Stdio::null()).stdout(Stdio::piped());
        // Tied: a member dies with the harness, however the harness ends.
        let mut child = spawn_tied(command).context("cannot start a group member")?;
        let stdout = child.stdout.take().expect("piped");
        std::thread::spawn(move || read_records(stdout, index, &*output));
        Ok(Member { child, port })
    }

    /// Asks the process to stop cleanly (SIGTERM: ours commits and leaves the group).
    pub fn terminate(&self) -> Result<()> {
        let pid = libc::pid_t::try_from(self.child.id()).context("a pid")?;
        // SAFETY: kill(2) on our own child's pid, which we have not waited for yet.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            bail!(
                "cannot signal member {pid}: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(())
    }
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
            .args(["--no-progress", "--metrics", &format!("127.0.0.1:{port}")]);
        if self.assignor == CONSUMER_PROTOCOL {
            command.args(["-X", "group.protocol=consumer"]);
        } else {
            command.args([
                "-X",
                &format!("partition.assignment.strategy={}", self.assignor),
            ]);
        }
        if let Some(wait) = self.fetch_max_wait_ms {
            command.args(["-X", &format!("fetch.max.wait.ms={wait}")]);
        }
        let (level, stderr) = match self.logs {
            Some(dir) => {
                let path = dir.join(format!("{}-{index}.log", self.group));
                let file = std::fs::File::create(&path)
                    .with_context(|| format!("cannot create {}", path.display()))?;
                // `WASMKAFKA_BENCH_LOG` (a `WASMKAFKA_LOG` filter) for a closer look.
                let level = std::env::var("WASMKAFKA_BENCH_LOG").unwrap_or_else(|_| "info".into());
                (level, Stdio::from(file))
            }
            None => ("warn".to_string(), Stdio::null()),
        };
        command.env("WASMKAFKA_LOG", level).stderr(stderr);
        Member::spawn_on(command, index, output, port)
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

/// After members joined a group whose earlier members were scraped in `before`: the group
/// [`settled`] again, and under the classic protocol every earlier member completed a
/// rebalance since and every new one at least one. Under the consumer protocol (`assignor`
/// [`CONSUMER_PROTOCOL`]) a member whose partitions stay where they are goes through no
/// rebalance at all; there every member's epoch (its generation) passed every earlier one's.
pub fn rebalanced_since(
    members: &[Member],
    before: &[Exposition],
    partitions: i32,
    assignor: &str,
) -> bool {
    let Some(now) = scrape_ready(members) else {
        return false;
    };
    if assignor == CONSUMER_PROTOCOL {
        let earlier = before
            .iter()
            .filter_map(|e| e.get(GENERATION))
            .fold(f64::NEG_INFINITY, f64::max);
        let moved_on = now
            .iter()
            .all(|e| e.get(GENERATION).is_some_and(|g| g > earlier));
        return moved_on && agree(&now, partitions, 0.0);
    }
    let earlier_rebalanced = now
        .iter()
        .zip(before)
        .all(|(now, before)| now.value(REBALANCES) > before.value(REBALANCES));
    let new_joined = now[before.len()..]
        .iter()
        .all(|e| e.value(REBALANCES) >= 1.0);
    earlier_rebalanced && new_joined && agree(&now, partitions, 0.0)
}
