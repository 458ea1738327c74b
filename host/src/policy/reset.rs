//! Offset-reset policies: where a partition goes when it has no committed offset or its offset
//! is out of range (compacted or deleted data).
//!
//! A policy sees the whole situation ([`ResetContext`]: the reason, the committed offset, the
//! log's bounds, the time) and answers with a [`ResetDecision`]. The fetcher resolves the answer
//! (a timestamp needs a ListOffsets round trip), checks it against the log bounds, and resumes.
//! Policies are pure functions of their context: no I/O, no clock of their own.

use crate::error_chain::Chain;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub use wasmkafka_policy::reset::{
    parse_iso8601_duration, ResetContext, ResetDecision, ResetReason,
};

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
    /// One decision per context, in order (the partitions of one reset). A Wasm policy of
    /// contract 0.2.0 answers them in one call; the default asks one at a time.
    fn decide_all(&self, contexts: &[ResetContext]) -> Vec<Result<ResetDecision, PolicyError>> {
        contexts.iter().map(|c| self.decide(c)).collect()
    }
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

/// A policy whose failures (a plugin trap, a deadline) fall back to another policy's
/// decision, logged and counted. A policy that *decides* to fail (`none`) is not a failure.
#[derive(Debug)]
pub struct FallbackPolicy {
    primary: Arc<dyn ResetPolicy>,
    fallback: Arc<dyn ResetPolicy>,
    failures: std::sync::atomic::AtomicU64,
}

impl FallbackPolicy {
    pub fn new(primary: Arc<dyn ResetPolicy>, fallback: Arc<dyn ResetPolicy>) -> Self {
        FallbackPolicy {
            primary,
            fallback,
            failures: Default::default(),
        }
    }

    /// How many decisions the fallback made.
    pub fn failures(&self) -> u64 {
        self.failures.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl ResetPolicy for FallbackPolicy {
    fn name(&self) -> &str {
        self.primary.name()
    }

    fn decide(&self, context: &ResetContext) -> Result<ResetDecision, PolicyError> {
        self.primary.decide(context).or_else(|error| {
            let failures = self
                .failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1;
            tracing::warn!(
                error = %Chain(&error),
                fallback = self.fallback.name(),
                failures,
                "reset policy failed; using the fallback"
            );
            self.fallback.decide(context)
        })
    }

    fn decide_all(&self, contexts: &[ResetContext]) -> Vec<Result<ResetDecision, PolicyError>> {
        self.primary
            .decide_all(contexts)
            .into_iter()
            .zip(contexts)
            .map(|(decided, context)| {
                decided.or_else(|error| {
                    self.failures
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(error = %Chain(&error), fallback = self.fallback.name(), "reset policy failed; using the fallback");
                    self.fallback.decide(context)
                })
            })
            .collect()
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
        use wasmkafka_policy::reset;
        Ok(match &self.spec {
            ResetPolicySpec::Earliest => reset::earliest(context),
            ResetPolicySpec::Latest => reset::latest(context),
            ResetPolicySpec::None => reset::none(context),
            ResetPolicySpec::ByDuration(age) => reset::by_duration(context, *age),
        })
    }
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
            settings: Default::default(),
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

    #[derive(Debug)]
    struct Broken;

    impl ResetPolicy for Broken {
        fn name(&self) -> &str {
            "broken"
        }
        fn decide(&self, _context: &ResetContext) -> Result<ResetDecision, PolicyError> {
            Err(PolicyError {
                policy: "broken".into(),
                message: "trapped".into(),
            })
        }
    }

    #[test]
    fn a_failing_policy_falls_back_and_is_counted() {
        let policy = FallbackPolicy::new(Arc::new(Broken), ResetPolicySpec::Latest.into_policy());
        let decision = policy
            .decide(&context(ResetReason::NoCommittedOffset))
            .unwrap();
        assert_eq!(decision, ResetDecision::Latest);
        assert_eq!(policy.failures(), 1);
        // `none` deciding to fail is a decision, not a failure: no fallback.
        let none = FallbackPolicy::new(
            ResetPolicySpec::None.into_policy(),
            ResetPolicySpec::Latest.into_policy(),
        );
        let decision = none
            .decide(&context(ResetReason::NoCommittedOffset))
            .unwrap();
        assert!(matches!(decision, ResetDecision::Fail(_)));
        assert_eq!(none.failures(), 0);
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

    #[test]
    fn after_a_truncation_the_builtins_resume_where_the_log_diverged() {
        let truncated = context(ResetReason::LogTruncated {
            offset: 240,
            diverged_at: 180,
        });
        let decide = |spec: ResetPolicySpec| spec.into_policy().decide(&truncated).unwrap();
        for spec in [
            ResetPolicySpec::Earliest,
            ResetPolicySpec::Latest,
            ResetPolicySpec::ByDuration(Duration::from_secs(60)),
        ] {
            assert_eq!(decide(spec.clone()), ResetDecision::Offset(180), "{spec}");
        }
        assert!(matches!(
            decide(ResetPolicySpec::None),
            ResetDecision::Fail(_)
        ));
        assert!(truncated
            .reason
            .to_string()
            .contains("truncated at offset 180"));
    }
}
