//! One Fetch to one broker (a leader, or a replica a leader named for this consumer's rack,
//! KIP-392): build the request from the session, send it on the broker's `Fetch`
//! connection, decode every asked partition's batches. Runs on its own task; the
//! driver applies the result (or drops it, if the partitions moved meanwhile).

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::client::{Client, ClientError};
use crate::error_chain::Chain;
use crate::net::{Purpose, SendOptions};

use super::batch::{read_batches, BatchError, PendingRecords};
use super::partition::Stamp;
use super::session::{SessionPartition, SessionRequest};
use super::size::FetchSize;
use super::transactions::AbortedTransactions;
use super::{by_topic, IsolationLevel, TopicPartition};

/// The first Fetch version with sessions (KIP-227).
const FIRST_SESSION_VERSION: i16 = 7;
/// The first Fetch version that carries the last fetched epoch (diverging-epoch answers).
const FIRST_LAST_FETCHED_EPOCH_VERSION: i16 = 12;
/// The first Fetch version that carries the current leader epoch (fencing, KIP-320).
const FIRST_CURRENT_LEADER_EPOCH_VERSION: i16 = 9;
/// The first Fetch version that carries the consumer's rack and the leader's preferred read
/// replica (KIP-392).
const FIRST_RACK_VERSION: i16 = 11;

/// The session epoch that closes a session (KIP-227).
const FINAL_EPOCH: i32 = -1;

/// Closes fetch session `session_id` on `leader`: a Fetch with the final epoch and no
/// partitions, so the broker frees the session's slot now instead of when it is evicted.
/// Best effort, within `timeout` (the answer is not looked at).
pub async fn close_session(client: &Client, leader: i32, session_id: i32, timeout: Duration) {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_session_id(session_id)
        .with_session_epoch(FINAL_EPOCH);
    let options = SendOptions {
        timeout: Some(timeout),
        ..SendOptions::default()
    };
    let sent = client
        .send_with(leader, Purpose::Fetch, &request, options)
        .await;
    match sent {
        Ok(_) => tracing::debug!(leader, session_id, "fetch session closed"),
        Err(error) => {
            tracing::debug!(leader, session_id, error = %Chain(&error), "closing the fetch session failed")
        }
    }
}

/// A partition as it was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    pub tp: TopicPartition,
    pub stamp: Stamp,
    pub position: i64,
    /// The leader epoch in the metadata when the fetch was planned (-1: unknown).
    pub leader_epoch: i32,
    /// The leader epoch of the record before `position` (-1: unknown).
    pub position_epoch: i32,
    /// Asked of a replica the leader named (KIP-392), not of the leader.
    pub from_read_replica: bool,
}

/// Request-wide settings.
#[derive(Debug, Clone, Copy)]
pub struct FetchLimits {
    pub max_wait: Duration,
    pub min_bytes: i32,
    /// How much an answer may carry, given the round trip to the leader.
    pub size: FetchSize,
    /// At most this, whatever the size says: the leader's share of the buffer's room.
    pub max_bytes: i32,
    pub isolation: IsolationLevel,
    pub timeout: Duration,
}

/// What to fetch from one broker.
#[derive(Debug)]
pub struct FetchJob {
    /// The broker asked: the partitions' leader, or a replica one named.
    pub leader: i32,
    /// Every partition the answer may carry, at its position (the stale-answer guard).
    pub asked: Vec<Asked>,
    pub session: SessionRequest,
    pub limits: FetchLimits,
    /// `client.rack`: a leader may name a replica in it to fetch from (KIP-392).
    pub rack: Option<std::sync::Arc<str>>,
}

/// One partition's part of the answer.
#[derive(Debug)]
pub enum PartitionOutcome {
    Records {
        /// Checked batches, their records decoded when taken; where fetching goes on and the
        /// leader epoch of the last complete batch (`None` when no complete batch arrived).
        records: PendingRecords,
        /// The end of what this consumer may read: the high watermark, or under
        /// read_committed the last stable offset.
        readable_end: i64,
    },
    /// The leader's log diverged from what was read (KIP-320): its log for `leader_epoch`
    /// ends at `end_offset`.
    Diverged {
        leader_epoch: i32,
        end_offset: i64,
    },
    Error(ResponseError),
    Corrupt(BatchError),
}

/// The decoded answer.
#[derive(Debug)]
pub struct FetchedData {
    pub error: Option<ResponseError>,
    pub session_id: i32,
    /// False when the connection's Fetch version has no sessions (the request went out full).
    pub sessions_supported: bool,
    pub partitions: Vec<(Asked, PartitionOutcome)>,
    /// The record data's size on the wire (how much the answer's records grew when decoded
    /// tells the next request how much to ask for).
    pub wire_bytes: usize,
    /// The request's `max_bytes`.
    pub asked_max_bytes: i32,
    /// Partitions whose leader named a replica to fetch them from instead (KIP-392).
    pub read_replicas: Vec<(Asked, i32)>,
}

impl FetchJob {
    pub async fn run(mut self, client: Client) -> Result<FetchedData, ClientError> {
        let connection = client.connection(self.leader, Purpose::Fetch).await?;
        self.limits.max_bytes = self
            .limits
            .size
            .for_round_trip(connection.handshake_round_trip())
            .min(self.limits.max_bytes);
        let version = connection.version_for::<FetchRequest>(ApiKey::Fetch)?;
        let sessions_supported = version >= FIRST_SESSION_VERSION;
        let request = if sessions_supported {
            self.request(&self.session, version)
        } else {
            self.request(&self.full_session_request(), version)
        };
        let options = SendOptions {
            version: Some(version),
            timeout: Some(self.limits.timeout),
        };
        let (_, response) = client
            .send_with(self.leader, Purpose::Fetch, &request, options)
            .await?;
        Ok(self.decode(response, sessions_supported))
    }

    /// For brokers without sessions: every asked partition, no session.
    fn full_session_request(&self) -> SessionRequest {
        let max_bytes = self.session.send.first().map_or(0, |(_, p)| p.max_bytes);
        SessionRequest {
            session_id: 0,
            session_epoch: -1,
            send: self
                .asked
                .iter()
                .map(|a| {
                    (
                        a.tp.clone(),
                        SessionPartition {
                            fetch_offset: a.position,
                            max_bytes,
                            current_leader_epoch: a.leader_epoch,
                            last_fetched_epoch: a.position_epoch,
                        },
                    )
                })
                .collect(),
            forget: Vec::new(),
        }
    }

    fn request(&self, session: &SessionRequest, version: i16) -> FetchRequest {
        let rack = self
            .rack
            .as_deref()
            .filter(|_| version >= FIRST_RACK_VERSION)
            .unwrap_or_default();
        // Fields a version does not have must stay at their defaults to encode.
        let carries_last_epoch = version >= FIRST_LAST_FETCHED_EPOCH_VERSION;
        let carries_leader_epoch = version >= FIRST_CURRENT_LEADER_EPOCH_VERSION;
        let topics = by_topic(session.send.iter().map(|(tp, partition)| {
            (
                tp,
                FetchPartition::default()
                    .with_partition(tp.partition)
                    .with_fetch_offset(partition.fetch_offset)
                    .with_current_leader_epoch(if carries_leader_epoch {
                        partition.current_leader_epoch
                    } else {
                        -1
                    })
                    .with_last_fetched_epoch(if carries_last_epoch {
                        partition.last_fetched_epoch
                    } else {
                        -1
                    })
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(partition.max_bytes),
            )
        }));
        let forgotten = by_topic(session.forget.iter().map(|tp| (tp, tp.partition)));
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(self.limits.max_wait.as_millis() as i32)
            .with_min_bytes(self.limits.min_bytes)
            .with_max_bytes(self.limits.max_bytes)
            .with_isolation_level(self.limits.isolation.wire())
            .with_rack_id(StrBytes::from_string(rack.to_string()))
            .with_session_id(session.session_id)
            .with_session_epoch(session.session_epoch)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(topic, partitions)| {
                        FetchTopic::default()
                            .with_topic(topic_name(topic))
                            .with_partitions(partitions)
                    })
                    .collect(),
            )
            .with_forgotten_topics_data(
                forgotten
                    .into_iter()
                    .map(|(topic, partitions)| {
                        ForgottenTopic::default()
                            .with_topic(topic_name(topic))
                            .with_partitions(partitions)
                    })
                    .collect(),
            )
    }

    fn decode(&self, response: FetchResponse, sessions_supported: bool) -> FetchedData {
        let mut partitions = Vec::new();
        let mut read_replicas = Vec::new();
        let mut wire_bytes = 0;
        for topic in response.responses {
            for data in topic.partitions {
                let tp = TopicPartition::new(topic.topic.0.as_str(), data.partition_index);
                let Some(asked) = self.asked.iter().find(|a| a.tp == tp) else {
                    tracing::debug!(partition = %tp, "fetch answer for a partition not asked for");
                    continue;
                };
                if data.preferred_read_replica.0 >= 0
                    && data.preferred_read_replica.0 != self.leader
                {
                    read_replicas.push((asked.clone(), data.preferred_read_replica.0));
                }
                let diverging = &data.diverging_epoch;
                let outcome = match ResponseError::try_from_code(data.error_code) {
                    _ if diverging.epoch >= 0 && diverging.end_offset >= 0 => {
                        PartitionOutcome::Diverged {
                            leader_epoch: diverging.epoch,
                            end_offset: diverging.end_offset,
                        }
                    }
                    Some(error) => PartitionOutcome::Error(error),
                    None => {
                        let mut aborted = AbortedTransactions::new(
                            data.aborted_transactions
                                .iter()
                                .flatten()
                                .map(|t| (t.producer_id.0, t.first_offset)),
                        );
                        let read_committed = self.limits.isolation == IsolationLevel::ReadCommitted;
                        let decoded = read_batches(
                            &tp.topic,
                            tp.partition,
                            asked.position,
                            data.records
                                .inspect(|r| wire_bytes += r.len())
                                .unwrap_or_default(),
                            |header| read_committed && aborted.skip(header),
                        );
                        match decoded {
                            Ok(records) => PartitionOutcome::Records {
                                records,
                                readable_end: if read_committed && data.last_stable_offset >= 0 {
                                    data.last_stable_offset
                                } else {
                                    data.high_watermark
                                },
                            },
                            Err(error) => PartitionOutcome::Corrupt(error),
                        }
                    }
                };
                partitions.push((asked.clone(), outcome));
            }
        }
        FetchedData {
            error: ResponseError::try_from_code(response.error_code),
            session_id: response.session_id,
            sessions_supported,
            partitions,
            wire_bytes,
            asked_max_bytes: self.limits.max_bytes,
            read_replicas,
        }
    }
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}
