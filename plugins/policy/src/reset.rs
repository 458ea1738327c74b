//! Offset-reset decisions: where a partition goes when it has no committed offset or its
//! offset is out of range. The built-in policies are functions of the context alone.

use std::fmt;
use std::time::Duration;

/// Why a partition needs a reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetReason {
    /// The partition has no committed offset (or no group: a plain start).
    NoCommittedOffset,
    /// The broker said the partition's offset is out of range: the data there was compacted
    /// or deleted, or the offset is beyond the end of the log.
    OutOfRange {
        /// The position the broker refused.
        offset: i64,
    },
    /// The log diverged from what the consumer read (truncation after an unclean leader
    /// election, KIP-320): the records from `diverged_at` on are not the ones the consumer
    /// saw before `offset`, its position.
    LogTruncated {
        /// The consumer's position when the truncation was found.
        offset: i64,
        /// Where the leader's log diverged from what was read: the end offset, in the
        /// leader's log, of the position's leader epoch (below `offset`).
        diverged_at: i64,
    },
}

impl fmt::Display for ResetReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResetReason::NoCommittedOffset => f.write_str("no committed offset"),
            ResetReason::OutOfRange { offset } => write!(f, "offset {offset} is out of range"),
            ResetReason::LogTruncated {
                offset,
                diverged_at,
            } => write!(
                f,
                "the log was truncated at offset {diverged_at} below position {offset} \
                 (an unclean leader election replaced records already read)"
            ),
        }
    }
}

/// What a policy is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetContext {
    /// The topic of the partition to reset.
    pub topic: String,
    /// The partition to reset, by its number within `topic`.
    pub partition: i32,
    /// Why the partition needs a reset.
    pub reason: ResetReason,
    /// The group's committed offset, if there is one.
    pub committed: Option<i64>,
    /// The first offset still in the log.
    pub log_start: i64,
    /// The offset the next produced record will get (the end of the readable log).
    pub high_watermark: i64,
    /// Now, in milliseconds since the Unix epoch.
    pub now_ms: i64,
    /// The consumer group, if the consumer is in one.
    pub group: Option<String>,
    /// The operator's settings for the policy (plugins get them from the config).
    pub settings: std::collections::BTreeMap<String, String>,
}

/// What a policy answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResetDecision {
    /// The first offset still in the log.
    Earliest,
    /// The end of the log: only records produced from now on.
    Latest,
    /// This exact offset (must lie within the log's bounds).
    Offset(i64),
    /// The first record at or after this time (ms since the epoch); the end of the log when
    /// no record is that recent.
    Timestamp(i64),
    /// Do not reset: surface an error for this partition, with this message.
    Fail(String),
}

/// After a truncation the built-in policies (but `none`) resume where the log diverged: the
/// records from there on are new to the consumer, and everything before it was read.
fn after_truncation(context: &ResetContext) -> Option<ResetDecision> {
    match context.reason {
        ResetReason::LogTruncated { diverged_at, .. } => Some(ResetDecision::Offset(
            diverged_at.clamp(context.log_start, context.high_watermark),
        )),
        _ => None,
    }
}

/// Starts from the first offset still in the log; after a truncation, from where the log
/// diverged (clamped to the log's bounds).
pub fn earliest(context: &ResetContext) -> ResetDecision {
    after_truncation(context).unwrap_or(ResetDecision::Earliest)
}

/// Starts at the end of the log (only records produced from now on); after a truncation, from
/// where the log diverged (clamped to the log's bounds).
pub fn latest(context: &ResetContext) -> ResetDecision {
    after_truncation(context).unwrap_or(ResetDecision::Latest)
}

/// Never resets: the partition stops with an error naming the offset and the valid range.
pub fn none(_context: &ResetContext) -> ResetDecision {
    ResetDecision::Fail("`none` never resets".into())
}

/// The first record no older than `age` (Kafka 4's `by_duration:<ISO-8601 duration>`).
pub fn by_duration(context: &ResetContext, age: Duration) -> ResetDecision {
    if let Some(decision) = after_truncation(context) {
        return decision;
    }
    let back = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
    ResetDecision::Timestamp(context.now_ms.saturating_sub(back).max(0))
}

/// Parses the ISO-8601 durations Kafka accepts for `by_duration`: `PnDTnHnMn.nS` (days, hours,
/// minutes, seconds with an optional fraction; weeks as `nW`). Years and months are refused:
/// their length is not fixed.
pub fn parse_iso8601_duration(text: &str) -> Result<Duration, String> {
    let body = text
        .strip_prefix('P')
        .ok_or_else(|| format!("`{text}` is not an ISO-8601 duration (it starts with P)"))?;
    let (date, time) = match body.split_once('T') {
        Some((date, time)) => {
            if time.is_empty() {
                return Err(format!("`{text}`: nothing after T"));
            }
            (date, Some(time))
        }
        None => (body, None),
    };
    if date.is_empty() && time.is_none() {
        return Err(format!("`{text}` names no amount of time"));
    }
    let mut seconds = 0f64;
    for (part, units) in [(date, &[('W', 604_800.0), ('D', 86_400.0)][..])]
        .into_iter()
        .chain(time.map(|t| (t, &[('H', 3_600.0), ('M', 60.0), ('S', 1.0)][..])))
    {
        seconds += parse_components(text, part, units)?;
    }
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("`{text}` is not a usable duration"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Sums `<number><unit>` pairs of one part, units in the given order, each at most once.
fn parse_components(text: &str, mut part: &str, units: &[(char, f64)]) -> Result<f64, String> {
    let mut total = 0.0;
    let mut next_unit = 0;
    while !part.is_empty() {
        let end = part
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("`{text}`: a number without a unit"))?;
        let (number, rest) = part.split_at(end);
        let unit = rest.chars().next().expect("find stopped at a char");
        let position = units[next_unit..]
            .iter()
            .position(|(u, _)| *u == unit)
            .ok_or_else(|| {
                let allowed: String = units.iter().map(|(u, _)| *u).collect();
                format!("`{text}`: unit `{unit}` is not allowed here (use {allowed}, in order; no years or months)")
            })?;
        let value: f64 = number
            .parse()
            .map_err(|_| format!("`{text}`: `{number}` is not a number"))?;
        total += value * units[next_unit + position].1;
        next_unit += position + 1;
        part = &rest[unit.len_utf8()..];
    }
    Ok(total)
}
