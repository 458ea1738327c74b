//! Resolving resets: the partitions one leader leads that wait for a reset, in one pass.
//!
//! 1. One ListOffsets for the log start of every partition and one for its end (a broker
//!    refuses the same partition twice in one request), sent together.
//! 2. Each partition's cause decides: an explicit target (seek to beginning / end / time), or
//!    the reset policy, which sees the reason, the committed offset and the log bounds.
//! 3. Decisions that name a time go in one more ListOffsets; no record that recent means the
//!    end of the log.
//!
//! The outcome per partition is an offset, a failure for the user (the policy declined, or
//! chose an offset outside the log), or "retry later" (the broker or network failed).

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;

use crate::client::{Client, ClientError};
use std::sync::Arc;

use crate::error_chain::Chain;
use crate::policy::{PolicyError, ResetContext, ResetDecision, ResetPolicy, ResetReason};

use super::error::PartitionError;
use super::offsets::{list_offsets, OffsetAnswer, OffsetSpec};
use super::partition::{ResetCause, Stamp};
use super::{IsolationLevel, TopicPartition};

/// One partition to reset, as the fetcher saw it when the job started.
#[derive(Debug, Clone)]
pub struct ResetRequest {
    pub tp: TopicPartition,
    pub stamp: Stamp,
    pub cause: ResetCause,
    pub committed: Option<i64>,
}

/// What became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResetOutcome {
    Resolved(i64),
    Failed(PartitionError),
    Retry(String),
}

/// Everything the job needs besides the partitions.
pub struct ResetJob<'a> {
    pub client: &'a Client,
    pub leader: i32,
    pub isolation: IsolationLevel,
    /// Called off the async workers (a Wasm policy may take up to its deadline).
    pub policy: Arc<dyn ResetPolicy>,
    pub group: Option<&'a str>,
    pub now_ms: i64,
}

/// Where a reset goes: an offset, or the first record at or after a time (ms since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Offset(i64),
    Timestamp(i64),
}

impl ResetJob<'_> {
    pub async fn run(&self, requests: Vec<ResetRequest>) -> Vec<(ResetRequest, ResetOutcome)> {
        let earliest = self.lookup(&requests, |_| OffsetSpec::Earliest);
        let latest = self.lookup(&requests, |_| OffsetSpec::Latest);
        let (earliest, latest) = match tokio::try_join!(earliest, latest) {
            Ok(answers) => answers,
            Err(error) => return retry_all(requests, &error),
        };

        let mut outcomes = Vec::with_capacity(requests.len());
        let mut targets: Vec<(ResetRequest, Result<Target, PartitionError>, i64)> = Vec::new();
        // The partitions the policy decides: all of them in one call.
        let mut asking: Vec<(ResetRequest, ResetContext)> = Vec::new();
        for request in requests {
            let bounds = answer(&earliest, &request.tp)
                .and_then(|start| answer(&latest, &request.tp).map(|end| (start, end)));
            let (log_start, high_watermark) = match bounds {
                Ok(bounds) => bounds,
                Err(error) => {
                    let outcome = ResetOutcome::Retry(Chain(&error).to_string());
                    outcomes.push((request, outcome));
                    continue;
                }
            };
            let target = match request.cause {
                ResetCause::To(OffsetSpec::Earliest) => Target::Offset(log_start),
                ResetCause::To(OffsetSpec::Latest) => Target::Offset(high_watermark),
                ResetCause::To(OffsetSpec::Timestamp(ms)) => Target::Timestamp(ms),
                ResetCause::Policy(reason) => {
                    let context = self.context(&request, reason, log_start, high_watermark);
                    asking.push((request, context));
                    continue;
                }
            };
            targets.push((request, Ok(target), high_watermark));
        }
        targets.extend(self.decide(asking).await);
        let mut by_time: Vec<(ResetRequest, i64, i64)> = Vec::new();
        for (request, target, high_watermark) in targets {
            match target {
                Ok(Target::Offset(offset)) => {
                    outcomes.push((request, ResetOutcome::Resolved(offset)))
                }
                Ok(Target::Timestamp(ms)) => by_time.push((request, ms, high_watermark)),
                Err(error) => outcomes.push((request, ResetOutcome::Failed(error))),
            }
        }
        if by_time.is_empty() {
            return outcomes;
        }

        let wanted: Vec<(TopicPartition, OffsetSpec)> = by_time
            .iter()
            .map(|(request, ms, _)| (request.tp.clone(), OffsetSpec::Timestamp(*ms)))
            .collect();
        match list_offsets(self.client, self.leader, self.isolation, &wanted).await {
            Ok(answers) => {
                for (request, _, high_watermark) in by_time {
                    let outcome = match answer(&answers, &request.tp) {
                        // -1: no record at or after that time; wait for new ones at the end.
                        Ok(-1) => ResetOutcome::Resolved(high_watermark),
                        Ok(offset) => ResetOutcome::Resolved(offset),
                        Err(error) => ResetOutcome::Retry(Chain(&error).to_string()),
                    };
                    outcomes.push((request, outcome));
                }
            }
            Err(error) => {
                let requests = by_time.into_iter().map(|(r, _, _)| r).collect();
                outcomes.extend(retry_all(requests, &error));
            }
        }
        outcomes
    }

    async fn lookup(
        &self,
        requests: &[ResetRequest],
        spec: impl Fn(&ResetRequest) -> OffsetSpec,
    ) -> Result<BTreeMap<TopicPartition, OffsetAnswer>, ClientError> {
        let wanted: Vec<_> = requests.iter().map(|r| (r.tp.clone(), spec(r))).collect();
        list_offsets(self.client, self.leader, self.isolation, &wanted).await
    }

    fn context(
        &self,
        request: &ResetRequest,
        reason: ResetReason,
        log_start: i64,
        high_watermark: i64,
    ) -> ResetContext {
        ResetContext {
            topic: request.tp.topic.to_string(),
            partition: request.tp.partition,
            reason,
            committed: request.committed,
            log_start,
            high_watermark,
            now_ms: self.now_ms,
            group: self.group.map(str::to_string),
            settings: Default::default(),
        }
    }

    /// Asks the policy about every partition in `asking`, in one call off the async
    /// workers, and resolves each decision against its log.
    async fn decide(
        &self,
        asking: Vec<(ResetRequest, ResetContext)>,
    ) -> Vec<(ResetRequest, Result<Target, PartitionError>, i64)> {
        if asking.is_empty() {
            return Vec::new();
        }
        let policy = self.policy.name().to_string();
        let contexts: Vec<ResetContext> = asking.iter().map(|(_, c)| c.clone()).collect();
        let deciding = self.policy.clone();
        let count = contexts.len();
        let decided = tokio::task::spawn_blocking(move || deciding.decide_all(&contexts))
            .await
            .unwrap_or_else(|failed| {
                let error = PolicyError {
                    policy: policy.clone(),
                    message: format!("the policy call did not finish: {failed}"),
                };
                vec![Err(error); count]
            });
        asking
            .into_iter()
            .zip(decided)
            .map(|((request, context), decided)| {
                let partition = request.tp.clone();
                let (reason, log_start, high_watermark) =
                    (context.reason, context.log_start, context.high_watermark);
                let target = decided
                    .map_err(|error| PartitionError::PolicyFailed {
                        partition: partition.clone(),
                        error,
                    })
                    .and_then(|decision| {
                        tracing::info!(%partition, %reason, log_start, high_watermark, %policy, ?decision, "reset policy decided");
                        decision_target(partition, reason, &policy, decision, log_start, high_watermark)
                    });
                (request, target, high_watermark)
            })
            .collect()
    }
}

/// Where a policy's decision points in a log of `log_start..=high_watermark`: an offset, a
/// time still to look up (ListOffsets), or an error for the user (an offset outside the log,
/// or a refusal). The consumer and `wasmkafka offsets plan` both resolve decisions here.
pub fn decision_target(
    partition: TopicPartition,
    reason: crate::policy::ResetReason,
    policy: &str,
    decision: ResetDecision,
    log_start: i64,
    high_watermark: i64,
) -> Result<Target, PartitionError> {
    let policy = policy.to_string();
    match decision {
        ResetDecision::Earliest => Ok(Target::Offset(log_start)),
        ResetDecision::Latest => Ok(Target::Offset(high_watermark)),
        ResetDecision::Offset(offset) if (log_start..=high_watermark).contains(&offset) => {
            Ok(Target::Offset(offset))
        }
        ResetDecision::Offset(offset) => Err(PartitionError::InvalidDecision {
            partition,
            policy,
            offset,
            log_start,
            high_watermark,
        }),
        ResetDecision::Timestamp(ms) => Ok(Target::Timestamp(ms)),
        ResetDecision::Fail(message) => Err(PartitionError::ResetRefused {
            partition,
            reason,
            log_start,
            high_watermark,
            policy,
            message,
        }),
    }
}

fn answer(
    answers: &BTreeMap<TopicPartition, OffsetAnswer>,
    tp: &TopicPartition,
) -> Result<i64, ResponseError> {
    answers
        .get(tp)
        .copied()
        .unwrap_or(Err(ResponseError::UnknownTopicOrPartition))
}

fn retry_all(
    requests: Vec<ResetRequest>,
    error: &ClientError,
) -> Vec<(ResetRequest, ResetOutcome)> {
    requests
        .into_iter()
        .map(|r| (r, ResetOutcome::Retry(Chain(&error).to_string())))
        .collect()
}
