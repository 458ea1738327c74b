//! The consumer: a set of assigned partitions, each with an explicit state, fetched from their
//! leaders on the `Fetch` connections.
//!
//! One `poll` is one round: partitions waiting for a start offset are resolved with one
//! ListOffsets per leader, then every leader gets one Fetch (concurrently) for all partitions it
//! leads, and the answers are decoded in place.
//!
//! Invariants:
//! - A partition's position only moves to a batch's `next_offset` (see [`super::batch`]).
//! - An answer is applied only if the partition still sits at the offset the request asked for:
//!   anything else is a stale answer and is dropped.
//! - OFFSET_OUT_OF_RANGE sends the partition back to `AwaitingReset` with the offending offset;
//!   the reset resolves it with ListOffsets and fetching goes on.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::task::JoinSet;

use crate::client::{Client, ClientError};
use crate::net::{Purpose, SendOptions};

use super::batch::{decode_records, BatchError, ConsumerRecord};
use super::offsets::{list_offsets, OffsetSpec};
use super::TopicPartition;

/// Fetch settings.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub max_wait: Duration,
    pub min_bytes: i32,
    pub max_bytes: i32,
    pub partition_max_bytes: i32,
    /// Where a partition without a position starts, and where an out-of-range one resets to.
    pub reset_to: OffsetSpec,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            max_wait: Duration::from_millis(500),
            min_bytes: 1,
            max_bytes: 50 * 1024 * 1024,
            partition_max_bytes: 1024 * 1024,
            reset_to: OffsetSpec::Earliest,
        }
    }
}

/// Why a partition needs a reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetReason {
    /// It has no position yet.
    NoPosition,
    /// The broker said this offset is out of range (compacted or deleted data).
    OutOfRange { offset: i64 },
}

/// A partition's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionState {
    AwaitingReset { reason: ResetReason },
    Fetching { position: i64 },
}

/// Consumer errors.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("topic `{0}` does not exist (create it, or check the name)")]
    UnknownTopic(String),
    #[error("cannot decode records of {partition}: {error}")]
    Batch {
        partition: TopicPartition,
        error: BatchError,
    },
}

/// A consumer of an explicit set of partitions.
pub struct Consumer {
    client: Client,
    options: FetchOptions,
    partitions: BTreeMap<TopicPartition, PartitionState>,
}

impl Consumer {
    pub fn new(client: Client, options: FetchOptions) -> Consumer {
        Consumer {
            client,
            options,
            partitions: BTreeMap::new(),
        }
    }

    /// Assigns every partition of `topics`, each starting per `reset_to`.
    pub async fn assign_topics(&mut self, topics: &[String]) -> Result<(), ConsumerError> {
        let metadata = self.client.refresh_topics(topics).await?;
        for topic in topics {
            let info = metadata
                .topics
                .get(topic)
                .filter(|t| t.error.is_none() && !t.partitions.is_empty())
                .ok_or_else(|| ConsumerError::UnknownTopic(topic.clone()))?;
            for partition in info.partitions.keys() {
                self.partitions
                    .entry(TopicPartition::new(topic, *partition))
                    .or_insert(PartitionState::AwaitingReset {
                        reason: ResetReason::NoPosition,
                    });
            }
        }
        Ok(())
    }

    /// The assigned partitions and their states.
    pub fn assignment(&self) -> &BTreeMap<TopicPartition, PartitionState> {
        &self.partitions
    }

    /// The next offset to fetch for a partition, if it has one.
    pub fn position(&self, partition: &TopicPartition) -> Option<i64> {
        match self.partitions.get(partition)? {
            PartitionState::Fetching { position } => Some(*position),
            PartitionState::AwaitingReset { .. } => None,
        }
    }

    /// Moves a partition to `offset`; the next fetch starts there.
    pub fn seek(&mut self, partition: &TopicPartition, offset: i64) {
        if let Some(state) = self.partitions.get_mut(partition) {
            *state = PartitionState::Fetching { position: offset };
        }
    }

    /// One round: resolve resets, fetch from every leader, return the records in partition order.
    pub async fn poll(&mut self) -> Result<Vec<ConsumerRecord>, ConsumerError> {
        self.resolve_resets().await?;
        let metadata = self.client.fresh_metadata().await?;
        let mut by_leader: BTreeMap<i32, Vec<(TopicPartition, i64)>> = BTreeMap::new();
        for (tp, state) in &self.partitions {
            if let PartitionState::Fetching { position } = state {
                match metadata.leader(&tp.topic, tp.partition) {
                    Some(leader) => by_leader
                        .entry(leader)
                        .or_default()
                        .push((tp.clone(), *position)),
                    None => self.client.observe_error(ResponseError::LeaderNotAvailable),
                }
            }
        }
        if by_leader.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            return Ok(Vec::new());
        }
        let mut fetches = JoinSet::new();
        for (leader, wanted) in by_leader {
            let request = self.fetch_request(&wanted);
            let client = self.client.clone();
            let options = SendOptions {
                timeout: Some(
                    client.pool().options().connection.request_timeout + self.options.max_wait,
                ),
                ..SendOptions::default()
            };
            fetches.spawn(async move {
                let answer = client
                    .send_with(leader, Purpose::Fetch, &request, options)
                    .await;
                (wanted, answer.map(|(_, response)| response))
            });
        }
        let mut records = Vec::new();
        let mut first_error = None;
        while let Some(joined) = fetches.join_next().await {
            let (wanted, answer) = joined.expect("fetch task panicked");
            match answer {
                Ok(response) => self.apply(&wanted, response, &mut records)?,
                Err(error) => {
                    tracing::warn!(%error, "fetch failed; retrying next round");
                    first_error.get_or_insert(error);
                }
            }
        }
        if records.is_empty() {
            if let Some(error) = first_error {
                if !error_is_transient(&error) {
                    return Err(error.into());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        records.sort_by(|a, b| {
            (&a.topic, a.partition, a.offset).cmp(&(&b.topic, b.partition, b.offset))
        });
        Ok(records)
    }

    fn fetch_request(&self, wanted: &[(TopicPartition, i64)]) -> FetchRequest {
        let mut topics: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
        for (tp, position) in wanted {
            topics.entry(&tp.topic).or_default().push(
                FetchPartition::default()
                    .with_partition(tp.partition)
                    .with_fetch_offset(*position)
                    .with_current_leader_epoch(-1)
                    .with_last_fetched_epoch(-1)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(self.options.partition_max_bytes),
            );
        }
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(self.options.max_wait.as_millis() as i32)
            .with_min_bytes(self.options.min_bytes)
            .with_max_bytes(self.options.max_bytes)
            .with_isolation_level(0)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(topic, partitions)| {
                        FetchTopic::default()
                            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                            .with_partitions(partitions)
                    })
                    .collect(),
            )
    }

    fn apply(
        &mut self,
        wanted: &[(TopicPartition, i64)],
        response: FetchResponse,
        records: &mut Vec<ConsumerRecord>,
    ) -> Result<(), ConsumerError> {
        for topic in response.responses {
            for data in topic.partitions {
                let tp = TopicPartition::new(topic.topic.0.as_str(), data.partition_index);
                let Some(asked) = wanted.iter().find(|(w, _)| *w == tp).map(|(_, p)| *p) else {
                    continue; // not asked for: ignore
                };
                let Some(state) = self.partitions.get_mut(&tp) else {
                    continue;
                };
                if *state != (PartitionState::Fetching { position: asked }) {
                    tracing::debug!(partition = %tp, asked, ?state, "dropping a stale fetch answer");
                    continue;
                }
                match ResponseError::try_from_code(data.error_code) {
                    None => {}
                    Some(ResponseError::OffsetOutOfRange) => {
                        tracing::info!(partition = %tp, offset = asked, "offset out of range; resetting");
                        *state = PartitionState::AwaitingReset {
                            reason: ResetReason::OutOfRange { offset: asked },
                        };
                        continue;
                    }
                    Some(error) => {
                        tracing::debug!(partition = %tp, %error, "fetch error; retrying next round");
                        self.client.observe_error(error);
                        continue;
                    }
                }
                let Some(data_bytes) = data.records else {
                    continue;
                };
                let decoded = decode_records(&tp.topic, tp.partition, asked, data_bytes, |_| false)
                    .map_err(|error| ConsumerError::Batch {
                        partition: tp.clone(),
                        error,
                    })?;
                if let Some(next) = decoded.next_offset {
                    *state = PartitionState::Fetching {
                        position: next.max(asked),
                    };
                }
                records.extend(decoded.records);
            }
        }
        Ok(())
    }

    /// Resolves every partition awaiting a reset, one ListOffsets per leader.
    async fn resolve_resets(&mut self) -> Result<(), ConsumerError> {
        let pending: Vec<TopicPartition> = self
            .partitions
            .iter()
            .filter(|(_, s)| matches!(s, PartitionState::AwaitingReset { .. }))
            .map(|(tp, _)| tp.clone())
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        let metadata = self.client.fresh_metadata().await?;
        let mut by_leader: BTreeMap<i32, Vec<(TopicPartition, OffsetSpec)>> = BTreeMap::new();
        for tp in pending {
            if let Some(leader) = metadata.leader(&tp.topic, tp.partition) {
                by_leader
                    .entry(leader)
                    .or_default()
                    .push((tp, self.options.reset_to));
            }
        }
        for (leader, wanted) in by_leader {
            let answers = match list_offsets(&self.client, leader, &wanted).await {
                Ok(answers) => answers,
                Err(error) if error_is_transient(&error) => {
                    tracing::warn!(%error, leader, "ListOffsets failed; retrying next round");
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            for (tp, answer) in answers {
                match answer {
                    Ok(offset) => {
                        if let Some(state) = self.partitions.get_mut(&tp) {
                            if matches!(state, PartitionState::AwaitingReset { .. }) {
                                tracing::debug!(partition = %tp, offset, "position reset");
                                *state = PartitionState::Fetching { position: offset };
                            }
                        }
                    }
                    Err(error) => {
                        tracing::debug!(partition = %tp, %error, "ListOffsets error; retrying")
                    }
                }
            }
        }
        Ok(())
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}

fn error_is_transient(error: &ClientError) -> bool {
    match error {
        ClientError::Net(net) => net.is_retriable(),
        ClientError::NoBrokerReachable { .. } => true,
        ClientError::Broker { error, .. } => error.is_retriable(),
    }
}
