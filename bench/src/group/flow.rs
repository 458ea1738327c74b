//! A join that moves partitions while records flow. A fresh 8-partition topic gets
//! [`PACE`] per partition from a background [`Producer`] for the whole phase. Four members
//! read it from the start; once they settled (2 partitions each) and output ran for
//! [`BASELINE`], a fifth member joins and takes partitions from them. The harness tracks, from
//! the records it reads off the members' stdout:
//! - the longest gap between two records written by any member (the group's output stopped),
//!   by one partition (that partition's records stopped: a moved partition pauses from its
//!   revoke until its new owner fetches it) and by one member (that member's output stopped);
//!   each for the baseline before the join (the producer's pace and the pipes' granularity)
//!   and for the window from the joiner's start until [`AFTER_SETTLED`] after the group
//!   settled again;
//! - every record's copies: once the producer stops and the group wrote every record at
//!   least once, records never written (lost) and extra copies (duplicates);
//! - the joiner's own view: its rebalances and their total time (its `/metrics`), and its
//!   first record from its start.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::runtime::Handle;

use super::exposition::{Exposition, REBALANCE_SECONDS, REVOKED};
use super::member::{rebalanced_since, scrape_all, settled, wait_until, Launcher, Output};
use super::producer::{Pace, Producer};
use super::{join_rebalance, Recorder, Setup, MEMBERS, SETTLE_LIMIT};

pub const PARTITIONS: i32 = 8;
/// 10 records of 100 B every 10 ms per partition: 8,000 records/s for the group.
const PACE: Pace = Pace {
    batch: 10,
    every: Duration::from_millis(10),
    limit: 120_000,
    value_bytes: 100,
};
/// The producer's pace for the whole group.
pub const RECORDS_PER_SECOND: u64 =
    PARTITIONS as u64 * PACE.batch * 1000 / PACE.every.as_millis() as u64;
/// Steady output measured before the join.
const BASELINE: Duration = Duration::from_secs(2);
/// The window after the join ends this long after the group settled again.
const AFTER_SETTLED: Duration = Duration::from_secs(1);

/// Which window a gap falls in (by when it ends).
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Window {
    /// The first rebalance and start-up: not measured.
    Warmup = 0,
    Baseline = 1,
    Join = 2,
    Closed = 3,
}

/// The longest gaps of one window, in µs.
#[derive(Default)]
struct Longest {
    group: AtomicU64,
    partition: AtomicU64,
    member: AtomicU64,
}

/// What the members wrote: copies of every record and the gaps between records.
pub struct Tally {
    start: Instant,
    window: AtomicU8,
    /// Per partition, per record number: how many times a member wrote it.
    copies: Vec<Vec<AtomicU8>>,
    /// When a record was last written (µs since `start`, plus 1; 0 = never): by any member,
    /// per partition, per member.
    last_group: AtomicU64,
    last_partition: Vec<AtomicU64>,
    last_member: Vec<AtomicU64>,
    /// When each member wrote its first record (same clock; 0 = not yet).
    first_member: Vec<AtomicU64>,
    baseline: Longest,
    join: Longest,
}

impl Tally {
    fn new(partitions: i32, per_partition: u64, members: usize) -> Tally {
        let zeros = |n| (0..n).map(|_| AtomicU64::new(0)).collect();
        Tally {
            start: Instant::now(),
            window: AtomicU8::new(Window::Warmup as u8),
            copies: (0..partitions)
                .map(|_| (0..per_partition).map(|_| AtomicU8::new(0)).collect())
                .collect(),
            last_group: AtomicU64::new(0),
            last_partition: zeros(partitions as usize),
            last_member: zeros(members),
            first_member: zeros(members),
            baseline: Longest::default(),
            join: Longest::default(),
        }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_micros() as u64 + 1
    }

    fn window(&self) -> Window {
        match self.window.load(Ordering::SeqCst) {
            0 => Window::Warmup,
            1 => Window::Baseline,
            2 => Window::Join,
            _ => Window::Closed,
        }
    }

    fn enter(&self, window: Window) {
        self.window.store(window as u8, Ordering::SeqCst);
    }

    fn longest(&self) -> Option<&Longest> {
        match self.window() {
            Window::Baseline => Some(&self.baseline),
            Window::Join => Some(&self.join),
            Window::Warmup | Window::Closed => None,
        }
    }

    /// Ends the join window; gaps still open then (nothing written since) count up to now.
    fn close(&self) {
        let now = self.now();
        let open = |last: &AtomicU64, longest: &AtomicU64| {
            let last = last.load(Ordering::SeqCst);
            if last != 0 {
                longest.fetch_max(now.saturating_sub(last), Ordering::SeqCst);
            }
        };
        open(&self.last_group, &self.join.group);
        for last in &self.last_partition {
            open(last, &self.join.partition);
        }
        for last in &self.last_member {
            open(last, &self.join.member);
        }
        self.enter(Window::Closed);
    }

    /// Every record of `produced` (per partition) was written at least once.
    fn all_written(&self, produced: &[u64]) -> bool {
        self.copies.iter().zip(produced).all(|(copies, n)| {
            copies[..*n as usize]
                .iter()
                .all(|c| c.load(Ordering::Relaxed) > 0)
        })
    }

    /// Records never written, and extra copies written.
    fn delivery(&self, produced: &[u64]) -> (u64, u64) {
        let (mut lost, mut duplicates) = (0, 0);
        for (copies, n) in self.copies.iter().zip(produced) {
            for copy in &copies[..*n as usize] {
                match copy.load(Ordering::Relaxed) {
                    0 => lost += 1,
                    c => duplicates += u64::from(c) - 1,
                }
            }
        }
        (lost, duplicates)
    }
}

/// Notes a record written at `now` against the time of the one before (`last`).
fn gap(last: &AtomicU64, now: u64, longest: Option<&AtomicU64>) {
    let previous = last.fetch_max(now, Ordering::SeqCst);
    if let Some(longest) = longest {
        if previous != 0 && previous < now {
            longest.fetch_max(now - previous, Ordering::SeqCst);
        }
    }
}

/// "P:N:..." -> (P, N).
fn record_id(line: &[u8]) -> Option<(usize, usize)> {
    let mut fields = line.splitn(3, |b| *b == b':');
    let number = |field: Option<&[u8]>| std::str::from_utf8(field?).ok()?.parse().ok();
    Some((number(fields.next())?, number(fields.next())?))
}

impl Output for Tally {
    fn record(&self, member: usize, line: &[u8]) {
        let now = self.now();
        let longest = self.longest();
        gap(&self.last_group, now, longest.map(|l| &l.group));
        gap(&self.last_member[member], now, longest.map(|l| &l.member));
        let _ =
            self.first_member[member].compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst);
        if let Some((partition, n)) = record_id(line) {
            gap(
                &self.last_partition[partition],
                now,
                longest.map(|l| &l.partition),
            );
            self.copies[partition][n].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The phase (see the module doc), recording its measures.
pub fn run(setup: &Setup, assignor: &str, round: usize, record: &mut Recorder) -> Result<()> {
    let handle = Handle::current();
    let topic = format!("bench-group-flow-{assignor}-{round}");
    handle.block_on(setup.kafka.create_topic(&topic, PARTITIONS, &[]))?;
    let group = format!("bench-flow-{assignor}-{round}");
    let launcher = Launcher {
        wasmkafka: setup.wasmkafka,
        brokers: &setup.brokers,
        topic: &topic,
        group: &group,
        assignor,
        from: "earliest",
        fetch_max_wait_ms: None,
        logs: None,
    };
    let tally = Arc::new(Tally::new(PARTITIONS, PACE.limit, MEMBERS + 1));
    let producer = Producer::start(&handle, setup.kafka.client(), &topic, PARTITIONS, PACE);
    let mut members = launcher.start_many(MEMBERS, tally.clone())?;
    wait_until(SETTLE_LIMIT, "the four members settling", || {
        settled(&members, PARTITIONS, 1.0)
    })?;
    // Let the first owners catch up with what was produced while the group formed.
    std::thread::sleep(Duration::from_secs(1));
    tally.enter(Window::Baseline);
    std::thread::sleep(BASELINE);

    let before = scrape_all(&members)?;
    tally.enter(Window::Join);
    let joiner_started = tally.now();
    members.push(launcher.start(MEMBERS, tally.clone())?);
    wait_until(SETTLE_LIMIT, "the fifth member's join", || {
        rebalanced_since(&members, &before, PARTITIONS, assignor)
    })?;
    std::thread::sleep(AFTER_SETTLED);
    tally.close();
    let after: Vec<Exposition> = scrape_all(&members)?;
    let produced = producer.stop(&handle)?;
    wait_until(SETTLE_LIMIT, "the group writing every record", || {
        tally.all_written(&produced)
    })?;
    // Copies still on their way (a moved partition re-read from its last commit).
    std::thread::sleep(Duration::from_millis(500));
    drop(members);

    let rebalance = join_rebalance(&before, &after);
    record.ms(
        "join while flowing: rebalance, mean of the four members",
        rebalance.mean,
    );
    record.ms(
        "join while flowing: rebalance, slowest member",
        rebalance.slowest,
    );
    let revoked: f64 = after
        .iter()
        .zip(&before)
        .map(|(after, before)| after.value(REVOKED) - before.value(REVOKED))
        .sum();
    record.count("join while flowing: partitions revoked", revoked);
    // The joiner's own view: its rebalances since it started (it joins once; a cooperative
    // join may take it through two rounds), and its first record.
    let joiner = after[MEMBERS].histogram(REBALANCE_SECONDS);
    record.count(
        "join while flowing: the joiner's rebalances",
        joiner.count(),
    );
    record.ms(
        "join while flowing: the joiner's time in rebalances, total",
        joiner.sum(),
    );
    let first = tally.first_member[MEMBERS].load(Ordering::SeqCst);
    record.ms(
        "join while flowing: the joiner's first record, from its start",
        (first != 0).then(|| first.saturating_sub(joiner_started) as f64 / 1e6),
    );
    let micros = |longest: &AtomicU64| longest.load(Ordering::SeqCst) as f64 / 1e6;
    for (window, longest) in [("before", &tally.baseline), ("after", &tally.join)] {
        let at = format!("{window} the join");
        let prefix = "join while flowing: longest gap";
        record.ms(
            &format!("{prefix}, whole group, {at}"),
            micros(&longest.group),
        );
        record.ms(
            &format!("{prefix}, one partition, {at}"),
            micros(&longest.partition),
        );
        record.ms(
            &format!("{prefix}, one member, {at}"),
            micros(&longest.member),
        );
    }
    let (lost, duplicates) = tally.delivery(&produced);
    record.count(
        "join while flowing: records produced",
        produced.iter().sum::<u64>() as f64,
    );
    record.count("join while flowing: records lost", lost as f64);
    record.count("join while flowing: duplicates written", duplicates as f64);
    Ok(())
}
