//! `run`'s progress line on stderr: records written, the rate, the lag and the partitions,
//! redrawn in place at most once a second and once more at the end. Only when stderr is a
//! terminal (and not turned off with `--no-progress`): piped or redirected stderr gets logs
//! only.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::metrics::Snapshot;

const REDRAW_EVERY: Duration = Duration::from_secs(1);

/// The line's state. Dropping it draws the last line and ends it with a newline.
pub struct Progress {
    enabled: bool,
    started: Instant,
    drawn_at: Instant,
    drawn_records: u64,
    records: u64,
    last: Option<Line>,
}

/// What one line shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub records: u64,
    pub per_second: f64,
    /// Summed over the partitions with a known lag.
    pub lag: i64,
    pub partitions: usize,
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} records  {} records/s  lag {}  {} partition{}",
            grouped(self.records as i64),
            grouped(self.per_second.round() as i64),
            grouped(self.lag),
            self.partitions,
            if self.partitions == 1 { "" } else { "s" }
        )
    }
}

impl Progress {
    /// On when stderr is a terminal, unless `off`.
    pub fn for_stderr(off: bool) -> Progress {
        Progress::new(!off && std::io::stderr().is_terminal())
    }

    pub fn new(enabled: bool) -> Progress {
        let now = Instant::now();
        Progress {
            enabled,
            started: now,
            drawn_at: now,
            drawn_records: 0,
            records: 0,
            last: None,
        }
    }

    /// `records` written so far; the consumer as the last poll left it. Redraws when a
    /// second has passed since the last drawing.
    pub fn update(&mut self, records: u64, snapshot: &Snapshot) {
        if !self.enabled {
            return;
        }
        self.records = records;
        let now = Instant::now();
        let since = now - self.drawn_at;
        let line = Line {
            records,
            per_second: (records - self.drawn_records) as f64 / since.as_secs_f64().max(1e-3),
            lag: snapshot.lags.values().sum(),
            partitions: snapshot.assigned,
        };
        if since >= REDRAW_EVERY {
            draw(&line, false);
            self.drawn_at = now;
            self.drawn_records = records;
        }
        self.last = Some(line);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        let Some(mut line) = self.last.take() else {
            return;
        };
        // The last line gives the average over the whole run.
        line.records = self.records;
        line.per_second = self.records as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        draw(&line, true);
    }
}

/// `\r` and erase-line redraw in place; the last drawing ends the line.
fn draw(line: &Line, last: bool) {
    let mut stderr = std::io::stderr().lock();
    let _ = write!(stderr, "\r\x1b[2K{line}{}", if last { "\n" } else { "" });
    let _ = stderr.flush();
}

/// 1234567 -> "1,234,567".
fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_reads_like_a_sentence() {
        let line = Line {
            records: 1_234_567,
            per_second: 48_210.4,
            lag: 3_001,
            partitions: 12,
        };
        assert_eq!(
            line.to_string(),
            "1,234,567 records  48,210 records/s  lag 3,001  12 partitions"
        );
        let line = Line {
            records: 0,
            per_second: 0.0,
            lag: 0,
            partitions: 1,
        };
        assert_eq!(
            line.to_string(),
            "0 records  0 records/s  lag 0  1 partition"
        );
        assert_eq!(grouped(-1000), "-1,000");
        assert_eq!(grouped(999), "999");
    }

    #[test]
    fn nothing_is_kept_when_off() {
        let mut progress = Progress::new(false);
        progress.update(10, &Snapshot::default());
        assert!(progress.last.is_none());
    }
}
