//! The gaps between the records of each partition as the members wrote them, and the pauses
//! of an event split into the partitions that moved and those that did not.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use super::super::member::Output;
use crate::report::median;

/// Which window a gap falls in (by when it ends).
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Window {
    Warmup = 0,
    Baseline = 1,
    Event = 2,
    Closed = 3,
}

/// The gaps between the records of each partition, as the members wrote them.
pub struct Gaps {
    start: Instant,
    window: AtomicU8,
    /// Per partition: when a member last wrote one of its records (µs since `start`, plus 1;
    /// 0 = never).
    last: Vec<AtomicU64>,
    /// The longest gap of any partition in the baseline (µs).
    baseline: AtomicU64,
    /// Per partition: its longest gap in the event's window (µs).
    event: Vec<AtomicU64>,
    /// Per member: when it wrote its first record (same clock; 0 = not yet).
    first_member: Vec<AtomicU64>,
}

impl Gaps {
    pub fn new(partitions: i32, members: usize) -> Gaps {
        let zeros = |n| (0..n).map(|_| AtomicU64::new(0)).collect();
        Gaps {
            start: Instant::now(),
            window: AtomicU8::new(Window::Warmup as u8),
            last: zeros(partitions as usize),
            baseline: AtomicU64::new(0),
            event: zeros(partitions as usize),
            first_member: zeros(members),
        }
    }

    fn now(&self) -> u64 {
        self.micros(Instant::now())
    }

    pub fn micros(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.start).as_micros() as u64 + 1
    }

    pub fn enter(&self, window: Window) {
        self.window.store(window as u8, Ordering::SeqCst);
    }

    /// Forgets the last event's baseline and pauses (for the next event on the same group).
    pub fn reset(&self) {
        self.enter(Window::Warmup);
        self.baseline.store(0, Ordering::SeqCst);
        for longest in &self.event {
            longest.store(0, Ordering::SeqCst);
        }
    }

    pub fn resumed_since(&self, since: u64) -> bool {
        self.last.iter().all(|l| l.load(Ordering::SeqCst) > since)
    }

    pub fn silent_since(&self, since: u64) -> Vec<usize> {
        (0..self.last.len())
            .filter(|p| self.last[*p].load(Ordering::SeqCst) <= since)
            .collect()
    }

    /// Ends the event's window; a gap still open then counts up to now.
    pub fn close(&self) {
        let now = self.now();
        for (last, longest) in self.last.iter().zip(&self.event) {
            let last = last.load(Ordering::SeqCst);
            if last != 0 {
                longest.fetch_max(now.saturating_sub(last), Ordering::SeqCst);
            }
        }
        self.enter(Window::Closed);
    }

    pub fn event_pauses_ms(&self) -> Vec<f64> {
        self.event
            .iter()
            .map(|l| l.load(Ordering::SeqCst) as f64 / 1e3)
            .collect()
    }

    pub fn baseline_ms(&self) -> f64 {
        self.baseline.load(Ordering::SeqCst) as f64 / 1e3
    }

    /// When `member` wrote its first record, from `since`.
    pub fn first_record(&self, member: usize, since: Instant) -> Option<Duration> {
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
                self.event[partition.expect("parsed")].fetch_max(gap, Ordering::SeqCst);
            }
            _ => {}
        }
    }
}

/// An event's pauses (ms, indexed by partition), split by whether the partition moved.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// The longest pause of any partition.
    pub longest: Option<f64>,
    /// The median and longest pause of the partitions that moved (`None`: none moved).
    pub moved_median: Option<f64>,
    pub moved_longest: Option<f64>,
    /// The longest pause of a partition that stayed with its owner (`None`: all moved).
    pub stayed_longest: Option<f64>,
}

/// Splits `pauses` (ms, partition i at index i) by `moved`.
pub fn split(pauses: &[f64], moved: &BTreeSet<i32>) -> Split {
    let is_moved = |p: usize| i32::try_from(p).is_ok_and(|p| moved.contains(&p));
    let (mut went, mut stayed) = (Vec::new(), Vec::new());
    for (partition, pause) in pauses.iter().enumerate() {
        if is_moved(partition) {
            went.push(*pause);
        } else {
            stayed.push(*pause);
        }
    }
    let longest = |v: &[f64]| v.iter().copied().reduce(f64::max);
    Split {
        longest: longest(pauses),
        moved_median: (!went.is_empty()).then(|| median(went.clone())),
        moved_longest: longest(&went),
        stayed_longest: longest(&stayed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_by_moved() {
        let pauses = [100.0, 3000.0, 120.0, 2000.0, 4000.0];
        let moved: BTreeSet<i32> = [1, 3, 4].into();
        assert_eq!(
            split(&pauses, &moved),
            Split {
                longest: Some(4000.0),
                moved_median: Some(3000.0),
                moved_longest: Some(4000.0),
                stayed_longest: Some(120.0),
            }
        );
    }

    #[test]
    fn split_when_none_or_all_moved() {
        let pauses = [100.0, 150.0];
        let none = split(&pauses, &BTreeSet::new());
        assert_eq!(none.moved_median, None);
        assert_eq!(none.moved_longest, None);
        assert_eq!(none.stayed_longest, Some(150.0));
        let all = split(&pauses, &[0, 1].into());
        assert_eq!(all.stayed_longest, None);
        assert_eq!(all.moved_longest, Some(150.0));
        assert_eq!(split(&[], &BTreeSet::new()).longest, None);
    }

    #[test]
    fn gaps_count_by_window_and_reset() {
        let gaps = Gaps::new(2, 1);
        gaps.record(0, b"0:1:x");
        gaps.enter(Window::Event);
        std::thread::sleep(Duration::from_millis(5));
        gaps.record(0, b"0:2:x");
        assert!(gaps.event_pauses_ms()[0] >= 5.0);
        assert_eq!(gaps.event_pauses_ms()[1], 0.0);
        gaps.reset();
        assert_eq!(gaps.event_pauses_ms(), [0.0, 0.0]);
        assert_eq!(gaps.baseline_ms(), 0.0);
    }
}
