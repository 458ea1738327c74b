//! Offset-reset policies: where a partition goes when it has no committed offset or its offset
//! is out of range (compacted or deleted data).
//!
//! A policy sees the whole situation ([`ResetContext`]: the reason, the committed offset, the
//! log's bounds, the time) and answers with a [`ResetDecision`]. The fetcher resolves the answer
//! (a timestamp needs a ListOffsets round trip), checks it against the log bounds, and resumes.
//! Policies are pure functions of their context: no I/O, no clock of their own.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Why a partition needs a reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetReason {
    /// The partition has no committed offset (or no group: a plain start).
    NoCommittedOffset,
    /// The broker said the partition's offset is out of range: the data there was compacted
    /// or deleted, or the offset is beyond the end of the log.
    OutOfRange { offset: i64 },
}

impl fmt::Display for ResetReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResetReason::NoCommittedOffset => f.write_str("no committed offset"),
            ResetReason::OutOfRange { offset } => write!(f, "offset {offset} is out of range"),
        }
    }
}

/// What a policy is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetContext {
    pub topic: String,
    pub partition: i32,
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

/// A policy that could not decide (a trap in a plugin, an invalid answer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("reset policy `{policy}` failed: {message}")]
pub struct PolicyError {
    pub policy: String,
    pub message: String,
}

/// An offset-reset policy. Implementations must be quick and bounded: the fetcher calls
/// `decide` on its own task (a Wasm policy runs under a deadline).
pub trait ResetPolicy: Send + Sync + fmt::Debug {
    /// The name used in logs and errors.
    fn name(&self) -> &str;
    fn decide(&self, context: &ResetContext) -> Result<ResetDecision, PolicyError>;
}

/// The built-in policies, by the names Kafka uses for `auto.offset.reset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResetPolicySpec {
    Earliest,
    Latest,
    /// Never reset: the partition stops with an error naming the offset and the valid range.
    None,
    /// The first record no older than this (Kafka 4's `by_duration:<ISO-8601 duration>`).
    ByDuration(Duration),
}

impl ResetPolicySpec {
    pub fn into_policy(self) -> Arc<dyn ResetPolicy> {
        Arc::new(BuiltinPolicy {
            name: self.to_string(),
            spec: self,
        })
    }
}

impl fmt::Display for ResetPolicySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResetPolicySpec::Earliest => f.write_str("earliest"),
            ResetPolicySpec::Latest => f.write_str("latest"),
            ResetPolicySpec::None => f.write_str("none"),
            ResetPolicySpec::ByDuration(d) => write!(f, "by_duration:PT{}S", d.as_secs_f64()),
        }
    }
}

impl FromStr for ResetPolicySpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "earliest" => Ok(ResetPolicySpec::Earliest),
            "latest" => Ok(ResetPolicySpec::Latest),
            "none" => Ok(ResetPolicySpec::None),
            _ => match text.strip_prefix("by_duration:") {
                Some(duration) => parse_iso8601_duration(duration)
                    .map(ResetPolicySpec::ByDuration)
                    .map_err(|problem| format!("`{text}`: {problem}")),
                None => Err(format!(
                    "`{text}` is not a reset policy; use earliest, latest, none or \
                     by_duration:<ISO-8601 duration> (e.g. by_duration:PT1H, by_duration:P1D)"
                )),
            },
        }
    }
}

impl<'de> serde::Deserialize<'de> for ResetPolicySpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug)]
struct BuiltinPolicy {
    name: String,
    spec: ResetPolicySpec,
}

impl ResetPolicy for BuiltinPolicy {
    fn name(&self) -> &str {
        &self.name
    }

    fn decide(&self, context: &ResetContext) -> Result<ResetDecision, PolicyError> {
        Ok(match &self.spec {
            ResetPolicySpec::Earliest => ResetDecision::Earliest,
            ResetPolicySpec::Latest => ResetDecision::Latest,
            ResetPolicySpec::None => ResetDecision::Fail("`none` never resets".into()),
            ResetPolicySpec::ByDuration(duration) => {
                let back = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
                ResetDecision::Timestamp(context.now_ms.saturating_sub(back).max(0))
            }
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn context(reason: ResetReason) -> ResetContext {
        ResetContext {
            topic: "t".into(),
            partition: 3,
            reason,
            committed: None,
            log_start: 100,
            high_watermark: 250,
            now_ms: 1_700_000_000_000,
            group: None,
        }
    }

    #[test]
    fn parses_policy_names() {
        assert_eq!("earliest".parse(), Ok(ResetPolicySpec::Earliest));
        assert_eq!("latest".parse(), Ok(ResetPolicySpec::Latest));
        assert_eq!("none".parse(), Ok(ResetPolicySpec::None));
        assert_eq!(
            "by_duration:P1D".parse(),
            Ok(ResetPolicySpec::ByDuration(Duration::from_secs(86_400)))
        );
        let error = "newest".parse::<ResetPolicySpec>().unwrap_err();
        assert!(error.contains("by_duration:PT1H"), "{error}");
        let error = "by_duration:1D".parse::<ResetPolicySpec>().unwrap_err();
        assert!(error.contains("starts with P"), "{error}");
    }

    #[test]
    fn parses_iso8601_durations() {
        let secs = |t: &str| parse_iso8601_duration(t).map(|d| d.as_secs_f64());
        assert_eq!(secs("PT1H"), Ok(3600.0));
        assert_eq!(secs("P1DT2H3M4.5S"), Ok(86_400.0 + 7_200.0 + 180.0 + 4.5));
        assert_eq!(secs("P2W"), Ok(2.0 * 604_800.0));
        assert_eq!(secs("PT90M"), Ok(5_400.0));
        assert!(parse_iso8601_duration("P1M").is_err(), "months are refused");
        assert!(parse_iso8601_duration("P1Y").is_err());
        assert!(parse_iso8601_duration("P").is_err());
        assert!(parse_iso8601_duration("PT").is_err());
        assert!(parse_iso8601_duration("PT1S1H").is_err(), "order matters");
        assert!(parse_iso8601_duration("PT5").is_err());
    }

    #[test]
    fn builtin_decisions() {
        let out_of_range = context(ResetReason::OutOfRange { offset: 42 });
        let decide = |spec: ResetPolicySpec| spec.into_policy().decide(&out_of_range).unwrap();
        assert_eq!(decide(ResetPolicySpec::Earliest), ResetDecision::Earliest);
        assert_eq!(decide(ResetPolicySpec::Latest), ResetDecision::Latest);
        assert_eq!(
            decide(ResetPolicySpec::ByDuration(Duration::from_secs(60))),
            ResetDecision::Timestamp(1_700_000_000_000 - 60_000)
        );
        assert!(matches!(
            decide(ResetPolicySpec::None),
            ResetDecision::Fail(_)
        ));
    }
}
