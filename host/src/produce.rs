//! A small producer, for sample data, tests and benchmarks (wasmkafka is a consumer; this is
//! its companion for putting records on a topic). One batch per partition per request, sent to
//! the partition leader with `acks = -1`.

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::client::{Client, ClientError};
use crate::net::Purpose;

/// One record to produce.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutgoingRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Milliseconds since the epoch; `None` means now.
    pub timestamp: Option<i64>,
}

/// Why a produce failed.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("topic {topic} partition {partition} is unknown or has no leader")]
    NoLeader { topic: String, partition: i32 },
    #[error("produce to {topic}/{partition} failed: {error}")]
    Broker {
        topic: String,
        partition: i32,
        error: ResponseError,
    },
    #[error("cannot encode records: {0}")]
    Encode(String),
}

/// Produces `records` to one partition as a single batch; returns the base offset.
pub async fn produce_batch(
    client: &Client,
    topic: &str,
    partition: i32,
    records: &[OutgoingRecord],
    compression: Compression,
) -> Result<i64, ProduceError> {
    let metadata = client.fresh_metadata().await?;
    let metadata = match metadata.leader(topic, partition) {
        Some(_) => metadata,
        None => client.refresh_metadata().await?,
    };
    let leader = metadata
        .leader(topic, partition)
        .ok_or_else(|| ProduceError::NoLeader {
            topic: topic.to_string(),
            partition,
        })?;
    let batch = encode_batch(records, compression)?;
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch))])]);
    let response = client.send(leader, Purpose::Default, &request).await?;
    let answer = response
        .responses
        .iter()
        .flat_map(|t| t.partition_responses.iter())
        .find(|p| p.index == partition)
        .ok_or_else(|| {
            ProduceError::Encode("the broker did not answer for the partition".into())
        })?;
    if let Some(error) = ResponseError::try_from_code(answer.error_code) {
        client.observe_error(error);
        return Err(ProduceError::Broker {
            topic: topic.to_string(),
            partition,
            error,
        });
    }
    Ok(answer.base_offset)
}

/// Encodes records as one v2 record batch with offsets 0..n (the broker assigns real ones).
pub fn encode_batch(
    records: &[OutgoingRecord],
    compression: Compression,
) -> Result<Bytes, ProduceError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(index, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: index as i64,
            // kafka-protocol starts a new batch wherever `offset - sequence` changes; keeping
            // them equal yields one batch. Brokers ignore sequences without a producer id.
            sequence: index as i32,
            timestamp: r.timestamp.unwrap_or(now),
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone()))
                .collect::<IndexMap<_, _>>(),
        })
        .collect();
    encode_records(&records, compression).map_err(ProduceError::Encode)
}

/// Encodes kafka-protocol records in the v2 (magic 2) batch format. The encoder starts a new
/// batch wherever `offset - sequence`, the producer or the control/transactional flags change.
pub fn encode_records(records: &[Record], compression: Compression) -> Result<Bytes, String> {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .map_err(|e| format!("{e:#}"))?;
    Ok(buf.freeze())
}

/// The partition Kafka's default partitioner picks for `key` among `partitions` (the Java
/// client's `Utils.toPositive(Utils.murmur2(key)) % partitions`, which librdkafka's
/// `murmur2_random` matches), so records keyed here land where a Java producer's would.
pub fn partition_for_key(key: &[u8], partitions: usize) -> usize {
    (murmur2(key) & 0x7fff_ffff) as usize % partitions.max(1)
}

/// Kafka's 32-bit murmur2 (seed 0x9747b28c), as `org.apache.kafka.common.utils.Utils`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len();
    let mut h: u32 = SEED ^ (length as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

#[cfg(test)]
mod partitioner_tests {
    use super::*;

    /// Kafka's own vectors (clients/src/test/.../utils/UtilsTest.java).
    #[test]
    fn murmur2_matches_kafka() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (data, expected) in cases {
            assert_eq!(murmur2(data), expected, "{}", String::from_utf8_lossy(data));
        }
        assert_eq!(partition_for_key(b"abc", 3), 479_470_107 % 3);
        assert_eq!(
            partition_for_key(b"21", 7),
            (-973_932_308i32 & 0x7fff_ffff) as usize % 7
        );
    }
}
