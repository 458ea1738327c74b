//! A scripted partition log for the fault broker: answers Fetch, ListOffsets and
//! OffsetForLeaderEpoch from records kept in memory, with the behaviour the real test broker
//! lacks: a log start that moves (deleted data) and OFFSET_OUT_OF_RANGE for offsets outside
//! the log, an unclean leader election on cue (a truncated log under a new leader epoch), plus
//! broker-side fetch sessions (KIP-227) that can be switched on and dropped on cue.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset as LeaderEpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, TimestampType};

use wasmkafka::produce::encode_records;

use crate::fault_broker::{encode, FaultCluster, RequestContext};

/// One stored record.
#[derive(Debug, Clone)]
pub struct LogRecord {
    pub offset: i64,
    pub timestamp: i64,
    pub value: Bytes,
    /// -1 for records outside transactions.
    pub producer_id: i64,
    pub transactional: bool,
    /// A transaction marker (COMMIT or ABORT).
    pub control: bool,
    /// The leader epoch it was written in.
    pub leader_epoch: i32,
}

#[derive(Debug, Default)]
struct PartitionLog {
    records: Vec<LogRecord>,
    log_start: i64,
    next_offset: i64,
    /// Aborted transactions: (producer id, first offset, marker offset).
    aborted: Vec<(i64, i64, i64)>,
    /// The current leader epoch (new records get it).
    leader_epoch: i32,
}

impl PartitionLog {
    /// Kafka's OffsetsForLeaderEpoch answer: the largest epoch at or below `epoch` and the
    /// offset where it ends (the first offset of a later epoch, or the log end).
    fn end_of_epoch(&self, epoch: i32) -> (i32, i64) {
        let found = self
            .records
            .iter()
            .map(|r| r.leader_epoch)
            .filter(|e| *e <= epoch)
            .max()
            .unwrap_or(-1);
        let end = self
            .records
            .iter()
            .find(|r| r.leader_epoch > found)
            .map_or(self.next_offset, |r| r.offset);
        (found, end)
    }
}

#[derive(Debug, Default)]
struct Session {
    epoch: i32,
    /// (topic, partition) -> fetch offset
    partitions: BTreeMap<(String, i32), i64>,
}

#[derive(Debug, Default)]
struct LogState {
    partitions: HashMap<(String, i32), PartitionLog>,
    records_per_fetch: usize,
    sessions_enabled: bool,
    sessions: HashMap<i32, Session>,
    last_session_id: i32,
    /// Errors to answer once for the next fetch of a partition.
    forced_errors: HashMap<(String, i32), i16>,
    /// Partitions whose every fetch gets this error code.
    refusals: HashMap<(String, i32), i16>,
    /// Per partition, an offset whose batch every fetch answer damages, and how.
    damage: HashMap<(String, i32), (i64, Damage)>,
    /// (topic, partition, wire timestamp) of every ListOffsets entry received.
    list_offsets_seen: Vec<(String, i32, i64)>,
    /// Per partition, the (current leader epoch, last fetched epoch) of the last fetch that
    /// named it.
    fetch_epochs: HashMap<(String, i32), (i32, i32)>,
    /// A leader that ignores the last fetched epoch of a fetch (never answers a diverging
    /// epoch): only OffsetForLeaderEpoch finds a truncation then.
    no_diverging_answers: bool,
    /// Every OffsetForLeaderEpoch entry received: (topic, partition, current leader epoch,
    /// leader epoch asked about).
    validations_seen: Vec<(String, i32, i32, i32)>,
    /// Every fetch offset asked for, in order: (topic, partition, offset).
    fetch_offsets_seen: Vec<(String, i32, i64)>,
}

/// The log; cloning shares it.
#[derive(Clone)]
pub struct ScriptedLog {
    state: Arc<Mutex<LogState>>,
}

impl ScriptedLog {
    /// Answers Fetch and ListOffsets on every node of `cluster` from this log.
    pub fn install(cluster: &FaultCluster) -> ScriptedLog {
        let log = ScriptedLog {
            state: Arc::new(Mutex::new(LogState {
                records_per_fetch: 10,
                ..LogState::default()
            })),
        };
        cluster.respond_through(
            &log,
            &[
                (ApiKey::Fetch, Self::fetch),
                (ApiKey::ListOffsets, Self::list_offsets),
                (ApiKey::OffsetForLeaderEpoch, Self::offset_for_leader_epoch),
            ],
        );
        log
    }

    /// Appends `count` records; `timestamp(offset)` gives each one's time.
    pub fn append(&self, topic: &str, partition: i32, count: i64, timestamp: impl Fn(i64) -> i64) {
        let mut state = self.state.lock().unwrap();
        let log = state
            .partitions
            .entry((topic.to_string(), partition))
            .or_default();
        for _ in 0..count {
            let offset = log.next_offset;
            log.records.push(LogRecord {
                offset,
                timestamp: timestamp(offset),
                value: Bytes::from(format!("{topic}/{partition}/{offset}")),
                producer_id: -1,
                transactional: false,
                control: false,
                leader_epoch: log.leader_epoch,
            });
            log.next_offset += 1;
        }
    }

    /// Appends a transaction of `count` records by `producer_id` and its marker: COMMIT when
    /// `commit`, else ABORT (listed as aborted in read_committed answers).
    pub fn append_transaction(
        &self,
        topic: &str,
        partition: i32,
        count: i64,
        producer_id: i64,
        commit: bool,
    ) {
        let mut state = self.state.lock().unwrap();
        let log = state
            .partitions
            .entry((topic.to_string(), partition))
            .or_default();
        let first = log.next_offset;
        for i in 0..=count {
            let offset = log.next_offset;
            let control = i == count;
            // A control record's value: version 0, then the marker type (0 abort, 1 commit).
            let value = if control {
                Bytes::from(vec![0, 0, 0, u8::from(commit)])
            } else {
                Bytes::from(format!("{topic}/{partition}/{offset}"))
            };
            log.records.push(LogRecord {
                offset,
                timestamp: offset,
                value,
                producer_id,
                transactional: true,
                control,
                leader_epoch: log.leader_epoch,
            });
            log.next_offset += 1;
        }
        if !commit {
            log.aborted.push((producer_id, first, log.next_offset - 1));
        }
    }

    /// Deletes every record before `offset` (retention): the log start moves there.
    pub fn delete_before(&self, topic: &str, partition: i32, offset: i64) {
        let mut state = self.state.lock().unwrap();
        let log = state
            .partitions
            .entry((topic.to_string(), partition))
            .or_default();
        log.records.retain(|r| r.offset >= offset);
        log.log_start = log.log_start.max(offset);
    }

    /// How many records one fetch answer carries per partition at most.
    pub fn set_records_per_fetch(&self, count: usize) {
        self.state.lock().unwrap().records_per_fetch = count;
    }

    /// Damages every fetch answer of a partition that reaches `offset`: the records before it
    /// come in one good batch, the rest in a batch damaged as `damage` says.
    pub fn damage_from(&self, topic: &str, partition: i32, offset: i64, damage: Damage) {
        self.state
            .lock()
            .unwrap()
            .damage
            .insert((topic.to_string(), partition), (offset, damage));
    }

    /// Answers every fetch of a partition with this error code until
    /// [`ScriptedLog::stop_refusing`] (a broker that lost the leadership while the metadata
    /// still names it).
    pub fn refuse_fetches(&self, topic: &str, partition: i32, error: ResponseError) {
        self.state
            .lock()
            .unwrap()
            .refusals
            .insert((topic.to_string(), partition), error.code());
    }

    /// Ends [`ScriptedLog::refuse_fetches`] for a partition.
    pub fn stop_refusing(&self, topic: &str, partition: i32) {
        self.state
            .lock()
            .unwrap()
            .refusals
            .remove(&(topic.to_string(), partition));
    }

    /// Answers the next fetch of a partition with this error code, once.
    pub fn force_error_once(&self, topic: &str, partition: i32, error: ResponseError) {
        self.state
            .lock()
            .unwrap()
            .forced_errors
            .insert((topic.to_string(), partition), error.code());
    }

    /// An unclean leader election: a new leader (the next epoch) whose log ends at
    /// `keep_below`; the records from there on are gone, new appends get the new epoch.
    pub fn truncate_with_new_leader(&self, topic: &str, partition: i32, keep_below: i64) {
        let mut state = self.state.lock().unwrap();
        let log = state
            .partitions
            .get_mut(&(topic.to_string(), partition))
            .expect("a known partition");
        log.records.retain(|r| r.offset < keep_below);
        log.next_offset = keep_below;
        log.leader_epoch += 1;
    }

    /// The leader stops answering diverging epochs to fetches (as a leader that does not check
    /// a fetch's last fetched epoch).
    pub fn disable_diverging_answers(&self) {
        self.state.lock().unwrap().no_diverging_answers = true;
    }

    /// Every OffsetForLeaderEpoch entry received: (topic, partition, current leader epoch,
    /// leader epoch asked about).
    pub fn validations_seen(&self) -> Vec<(String, i32, i32, i32)> {
        self.state.lock().unwrap().validations_seen.clone()
    }

    /// The offsets fetches asked for a partition, in order.
    pub fn fetch_offsets_seen(&self, topic: &str, partition: i32) -> Vec<i64> {
        self.state
            .lock()
            .unwrap()
            .fetch_offsets_seen
            .iter()
            .filter(|(t, p, _)| t == topic && *p == partition)
            .map(|(_, _, offset)| *offset)
            .collect()
    }

    /// The (current leader epoch, last fetched epoch) the last fetch of a partition carried.
    pub fn fetch_epochs(&self, topic: &str, partition: i32) -> Option<(i32, i32)> {
        self.state
            .lock()
            .unwrap()
            .fetch_epochs
            .get(&(topic.to_string(), partition))
            .copied()
    }

    /// Turns broker-side fetch sessions on (off by default, like Tansu).
    pub fn enable_sessions(&self) {
        self.state.lock().unwrap().sessions_enabled = true;
    }

    /// Forgets every session (a broker restart, an evicted session).
    pub fn drop_sessions(&self) {
        self.state.lock().unwrap().sessions.clear();
    }

    /// Every ListOffsets entry received: (topic, partition, wire timestamp: -2 earliest,
    /// -1 latest, else a time).
    pub fn list_offsets_seen(&self) -> Vec<(String, i32, i64)> {
        self.state.lock().unwrap().list_offsets_seen.clone()
    }

    fn fetch(&self, context: &RequestContext<'_>) -> Result<Option<Bytes>> {
        let version = context.header.request_api_version;
        let request: FetchRequest = context.decode()?;
        let mut state = self.state.lock().unwrap();
        let mut response = FetchResponse::default();
        for topic in &request.topics {
            for p in &topic.partitions {
                state.fetch_epochs.insert(
                    (topic.topic.0.to_string(), p.partition),
                    (p.current_leader_epoch, p.last_fetched_epoch),
                );
                state.fetch_offsets_seen.push((
                    topic.topic.0.to_string(),
                    p.partition,
                    p.fetch_offset,
                ));
            }
        }

        // Which partitions to answer for, at which offsets; incremental answers leave out
        // partitions without news.
        let requested: Vec<((String, i32), i64)> = request
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| ((t.topic.0.to_string(), p.partition), p.fetch_offset))
            })
            .collect();
        let (wanted, incremental) = if state.sessions_enabled && request.session_epoch >= 0 {
            match self.session_wanted(&mut state, &request, requested) {
                Ok((session_id, wanted, incremental)) => {
                    response.session_id = session_id;
                    (wanted, incremental)
                }
                Err(error) => {
                    response.error_code = error.code();
                    return Ok(Some(encode(&response, version)?));
                }
            }
        } else {
            (requested, false)
        };

        let mut topics: IndexMap<String, Vec<PartitionData>> = IndexMap::new();
        for ((topic, partition), offset) in wanted {
            let data = Self::partition_data(
                &mut state,
                &topic,
                partition,
                offset,
                request.isolation_level == 1,
            );
            if incremental && data.error_code == 0 && data.records.is_none() {
                continue;
            }
            topics.entry(topic).or_default().push(data);
        }
        response.responses = topics
            .into_iter()
            .map(|(topic, partitions)| {
                FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_string(topic)))
                    .with_partitions(partitions)
            })
            .collect();
        Ok(Some(encode(&response, version)?))
    }

    /// Applies a request to its session; returns (session id, partitions to answer for,
    /// whether the answer is incremental).
    #[allow(clippy::type_complexity)]
    fn session_wanted(
        &self,
        state: &mut LogState,
        request: &FetchRequest,
        requested: Vec<((String, i32), i64)>,
    ) -> Result<(i32, Vec<((String, i32), i64)>, bool), ResponseError> {
        if request.session_id == 0 {
            state.last_session_id += 1;
            let id = state.last_session_id;
            state.sessions.insert(
                id,
                Session {
                    epoch: 1,
                    partitions: requested.iter().cloned().collect(),
                },
            );
            return Ok((id, requested, false));
        }
        let session = state
            .sessions
            .get_mut(&request.session_id)
            .ok_or(ResponseError::FetchSessionIdNotFound)?;
        if session.epoch != request.session_epoch {
            return Err(ResponseError::InvalidFetchSessionEpoch);
        }
        session.epoch += 1;
        for (key, offset) in requested {
            session.partitions.insert(key, offset);
        }
        for topic in &request.forgotten_topics_data {
            for partition in &topic.partitions {
                session
                    .partitions
                    .remove(&(topic.topic.0.to_string(), *partition));
            }
        }
        let wanted = session
            .partitions
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        Ok((request.session_id, wanted, true))
    }

    fn partition_data(
        state: &mut LogState,
        topic: &str,
        partition: i32,
        offset: i64,
        read_committed: bool,
    ) -> PartitionData {
        let key = (topic.to_string(), partition);
        let base = PartitionData::default()
            .with_partition_index(partition)
            .with_preferred_read_replica(BrokerId(-1));
        if let Some(code) = state.forced_errors.remove(&key) {
            return base.with_error_code(code).with_high_watermark(-1);
        }
        if let Some(code) = state.refusals.get(&key) {
            return base.with_error_code(*code).with_high_watermark(-1);
        }
        let limit = state.records_per_fetch;
        let (current_leader_epoch, last_fetched_epoch) =
            state.fetch_epochs.get(&key).copied().unwrap_or((-1, -1));
        let Some(log) = state.partitions.get(&key) else {
            return base.with_error_code(ResponseError::UnknownTopicOrPartition.code());
        };
        if let Some(error) = epoch_error(log, current_leader_epoch) {
            return base.with_error_code(error.code()).with_high_watermark(-1);
        }
        if last_fetched_epoch >= 0 && !state.no_diverging_answers {
            // Kafka's check: the log must agree with the epoch of the record before `offset`.
            let (epoch, end_offset) = log.end_of_epoch(last_fetched_epoch);
            if epoch < last_fetched_epoch || end_offset < offset {
                return base
                    .with_high_watermark(log.next_offset)
                    .with_diverging_epoch(
                        EpochEndOffset::default()
                            .with_epoch(epoch)
                            .with_end_offset(end_offset),
                    );
            }
        }
        let base = base
            .with_high_watermark(log.next_offset)
            .with_last_stable_offset(log.next_offset)
            .with_log_start_offset(log.log_start);
        if offset < log.log_start || offset > log.next_offset {
            return base
                .with_error_code(ResponseError::OffsetOutOfRange.code())
                .with_high_watermark(-1);
        }
        let records: Vec<Record> = log
            .records
            .iter()
            .filter(|r| r.offset >= offset)
            .take(limit)
            // One batch has one leader epoch.
            .take_while(|r| {
                let first = log.records.iter().find(|r| r.offset >= offset);
                first.is_some_and(|first| first.leader_epoch == r.leader_epoch)
            })
            .map(|r| Record {
                transactional: r.transactional,
                control: r.control,
                delete_horizon: false,
                partition_leader_epoch: r.leader_epoch,
                producer_id: r.producer_id,
                producer_epoch: if r.producer_id < 0 { -1 } else { 0 },
                timestamp_type: TimestampType::Creation,
                offset: r.offset,
                sequence: r.offset as i32,
                timestamp: r.timestamp,
                key: None,
                value: Some(r.value.clone()),
                headers: IndexMap::new(),
            })
            .collect();
        if records.is_empty() {
            return base;
        }
        let last = records.last().map_or(offset, |r| r.offset);
        let base = if read_committed {
            base.with_aborted_transactions(Some(
                log.aborted
                    .iter()
                    .filter(|(_, first, marker)| *first <= last && *marker >= offset)
                    .map(|(producer, first, _)| {
                        AbortedTransaction::default()
                            .with_producer_id(ProducerId(*producer))
                            .with_first_offset(*first)
                    })
                    .collect(),
            ))
        } else {
            base
        };
        // Where the damaged batch starts, when this answer reaches it.
        let damage = state.damage.get(&key).and_then(|(from, damage)| {
            let at = records.iter().position(|r| r.offset == *from)?;
            Some((at, damage))
        });
        let encoded = match damage {
            None => encode_records(&records, Compression::None).expect("encoding a record batch"),
            Some((at, damage)) => {
                let (good, bad) = records.split_at(at);
                let mut encoded =
                    BytesMut::from(&encode_records(good, Compression::None).expect("encoding")[..]);
                encoded.extend_from_slice(
                    &damage.apply(encode_records(bad, Compression::None).expect("encoding")),
                );
                encoded.freeze()
            }
        };
        base.with_records(Some(encoded))
    }

    fn offset_for_leader_epoch(&self, context: &RequestContext<'_>) -> Result<Option<Bytes>> {
        let version = context.header.request_api_version;
        let request: OffsetForLeaderEpochRequest = context.decode()?;
        let mut state = self.state.lock().unwrap();
        let mut topics = Vec::new();
        for topic in &request.topics {
            let name = topic.topic.0.to_string();
            let mut partitions = Vec::new();
            for p in &topic.partitions {
                state.validations_seen.push((
                    name.clone(),
                    p.partition,
                    p.current_leader_epoch,
                    p.leader_epoch,
                ));
                let answer = LeaderEpochEndOffset::default().with_partition(p.partition);
                let answer = match state.partitions.get(&(name.clone(), p.partition)) {
                    None => answer.with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                    Some(log) => match epoch_error(log, p.current_leader_epoch) {
                        Some(error) => answer.with_error_code(error.code()),
                        None => {
                            let (epoch, end) = log.end_of_epoch(p.leader_epoch);
                            let end = if epoch < 0 { -1 } else { end };
                            answer.with_leader_epoch(epoch).with_end_offset(end)
                        }
                    },
                };
                partitions.push(answer);
            }
            topics.push(
                OffsetForLeaderTopicResult::default()
                    .with_topic(topic.topic.clone())
                    .with_partitions(partitions),
            );
        }
        let response = OffsetForLeaderEpochResponse::default().with_topics(topics);
        Ok(Some(encode(&response, version)?))
    }

    fn list_offsets(&self, context: &RequestContext<'_>) -> Result<Option<Bytes>> {
        let version = context.header.request_api_version;
        let request: ListOffsetsRequest = context.decode()?;
        let mut state = self.state.lock().unwrap();
        let mut topics = Vec::new();
        for topic in &request.topics {
            let name = topic.name.0.to_string();
            let mut partitions = Vec::new();
            for p in &topic.partitions {
                state
                    .list_offsets_seen
                    .push((name.clone(), p.partition_index, p.timestamp));
                let answer = ListOffsetsPartitionResponse::default()
                    .with_partition_index(p.partition_index)
                    .with_timestamp(-1);
                let answer = match state.partitions.get(&(name.clone(), p.partition_index)) {
                    None => answer.with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                    Some(log) => answer.with_offset(match p.timestamp {
                        -2 => log.log_start,
                        -1 => log.next_offset,
                        ms => log
                            .records
                            .iter()
                            .find(|r| r.timestamp >= ms)
                            .map_or(-1, |r| r.offset),
                    }),
                };
                partitions.push(answer);
            }
            topics.push(
                ListOffsetsTopicResponse::default()
                    .with_name(topic.name.clone())
                    .with_partitions(partitions),
            );
        }
        let response = ListOffsetsResponse::default().with_topics(topics);
        Ok(Some(encode(&response, version)?))
    }
}

/// Kafka's check of a request's current leader epoch (-1: none given): older than the
/// leader's is FENCED_LEADER_EPOCH, newer is UNKNOWN_LEADER_EPOCH.
fn epoch_error(log: &PartitionLog, current_leader_epoch: i32) -> Option<ResponseError> {
    match current_leader_epoch {
        e if e < 0 => None,
        e if e < log.leader_epoch => Some(ResponseError::FencedLeaderEpoch),
        e if e > log.leader_epoch => Some(ResponseError::UnknownLeaderEpoch),
        _ => None,
    }
}

/// How [`ScriptedLog::damage_from`] damages a record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// The last byte changes and the CRC no longer matches.
    Checksum,
    /// The first record's key claims 63 bytes its record does not have, under a correct CRC
    /// (what a faulty producer could write).
    RecordField,
}

/// Where a v2 batch's records start, and the first record's key length in them: the record
/// length, attributes, timestamp delta and offset delta take a byte each for small records.
const RECORDS_AT: usize = 61;
const FIRST_KEY_LENGTH_AT: usize = RECORDS_AT + 4;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;

impl Damage {
    fn apply(self, batch: Bytes) -> Bytes {
        let mut batch = BytesMut::from(&batch[..]);
        match self {
            Damage::Checksum => {
                let last = batch.len() - 1;
                batch[last] ^= 0xff;
            }
            Damage::RecordField => {
                assert_eq!(batch[FIRST_KEY_LENGTH_AT], 1, "a null key (zigzag -1)");
                batch[FIRST_KEY_LENGTH_AT] = 0x7e;
                let crc = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
                batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
            }
        }
        batch.freeze()
    }
}
