//! Record batches from a Fetch answer, decoded into records in two steps: when the answer
//! arrives, [`read_batches`] checks each batch's header and CRC; when the application takes
//! records, [`PendingRecords`] decompresses the batch, checks its record count against the
//! bytes, and decodes the records ([`decode_records`] does both steps at once).
//!
//! Invariant: the next fetch offset after a batch is `base offset + last offset delta + 1`,
//! read from the batch header, never the position plus the number of records: compacted topics
//! have gaps inside and between batches, and control batches (transaction markers) move the
//! position without yielding a record.
//!
//! Within one answer the position only grows: a record below it is never returned, and the
//! next offset is never below the last record + 1. Kafka never sends overlapping batches, but
//! Tansu 0.6 does for compacted topics (each batch of the answer runs to the end of the log);
//! without this guard the consumer would hand out the same records again.
//!
//! A Fetch answer may end with a partial batch (the broker cuts at the byte limit); it is left
//! for the next fetch. Keys and values are slices of the response buffer (`Bytes`), not copies,
//! for uncompressed batches.

use std::sync::Arc;

use bytes::Bytes;

mod codec;
mod pending;
mod records;

pub use pending::PendingRecords;
use records::BatchRecords;

/// One consumed record.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerRecord {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// The leader epoch its batch was written in (KIP-320; -1 when the producer's broker did
    /// not say).
    pub leader_epoch: i32,
}

/// The size of the fixed v2 batch header, up to and including the record count.
const BATCH_HEADER_BYTES: usize = 61;
/// baseOffset (8) + batchLength (4): the bytes before `batchLength` starts counting.
const LOG_OVERHEAD: usize = 12;
const LEADER_EPOCH_OFFSET: usize = 12;
const MAGIC_OFFSET: usize = 16;
const ATTRIBUTES_OFFSET: usize = 21;
const CRC_OFFSET: usize = 17;
const LAST_OFFSET_DELTA_OFFSET: usize = 23;
const BASE_TIMESTAMP_OFFSET: usize = 27;
const MAX_TIMESTAMP_OFFSET: usize = 35;
const PRODUCER_ID_OFFSET: usize = 43;
const RECORD_COUNT_OFFSET: usize = 57;
/// The largest base offset taken for real: far beyond any log, and low enough that adding any
/// 32-bit delta cannot overflow.
const MAX_OFFSET: i64 = 1 << 62;
const COMPRESSION_MASK: i16 = 0b111;
const LOG_APPEND_TIME_FLAG: i16 = 1 << 3;
const TRANSACTIONAL_FLAG: i16 = 1 << 4;
const CONTROL_FLAG: i16 = 1 << 5;

/// What a batch header says, read without decoding the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub last_offset_delta: i32,
    pub control: bool,
    pub transactional: bool,
    pub producer_id: i64,
    /// The leader epoch the batch was written in.
    pub leader_epoch: i32,
    /// The codec of the records section: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub compression: u8,
    /// The first record's timestamp; the others are deltas from it.
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    /// The broker stamped the batch with its append time (the topic's
    /// `message.timestamp.type=LogAppendTime`): `max_timestamp` is every record's timestamp.
    pub log_append_time: bool,
}

impl BatchHeader {
    /// The offset of the batch's last record (as written, before any compaction).
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// The offset right after this batch.
    pub fn next_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta) + 1
    }
}

/// Why a partition's record data could not be decoded.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    #[error("record batch at offset {offset} uses message format v{magic}; only v2 is supported")]
    UnsupportedMagic { offset: i64, magic: i8 },
    #[error("corrupt record batch at offset {offset}: {reason}")]
    Corrupt { offset: i64, reason: String },
}

/// Records decoded from one partition's data, and where to fetch next.
#[derive(Debug, Default)]
pub struct DecodedRecords {
    pub records: Vec<ConsumerRecord>,
    /// The next fetch offset; `None` when no complete batch was present.
    pub next_offset: Option<i64>,
    /// The leader epoch of the last complete batch: the epoch of the record before
    /// `next_offset` (KIP-320's "last fetched epoch").
    pub last_epoch: Option<i32>,
}

/// Decodes every complete batch in `data` at once, keeping records at or after `position`:
/// [`read_batches`], then every record.
pub fn decode_records(
    topic: &Arc<str>,
    partition: i32,
    position: i64,
    data: Bytes,
    skip_batch: impl FnMut(&BatchHeader) -> bool,
) -> Result<DecodedRecords, BatchError> {
    let mut pending = read_batches(topic, partition, position, data, skip_batch)?;
    let mut records = Vec::with_capacity(pending.records_hint());
    pending.decode_into(usize::MAX, &mut records)?;
    Ok(DecodedRecords {
        records,
        next_offset: pending
            .next_offset()
            .map(|next| next.max(pending.decoded_end())),
        last_epoch: pending.last_epoch(),
    })
}

/// Reads every complete batch in `data`: checks its header and CRC; its records are
/// decompressed and decoded later ([`PendingRecords::decode_into`]), each kept only at or after
/// `position`. `skip_batch` sees every complete batch header in order and lets the caller drop
/// whole batches (aborted transactions, see [`super::transactions`]); control batches are
/// dropped anyway.
///
/// A batch that fails its checks ends the reading. When records of earlier batches wait, the
/// error waits behind them (the application gets those records first, as from the Java
/// client); otherwise it is returned here.
pub fn read_batches(
    topic: &Arc<str>,
    partition: i32,
    position: i64,
    mut data: Bytes,
    mut skip_batch: impl FnMut(&BatchHeader) -> bool,
) -> Result<PendingRecords, BatchError> {
    let mut pending = PendingRecords::new(topic, partition, position);
    // Records below this are not kept; it only grows, so overlapping batches (Tansu 0.6 sends
    // them for compacted topics) never yield a record twice.
    let mut position = position;
    loop {
        match read_batch(&mut data, &mut position, &mut skip_batch, &mut pending) {
            Ok(true) => {}
            Ok(false) => return Ok(pending),
            Err(error) if pending.is_empty() => return Err(error),
            Err(error) => {
                pending.damaged(error);
                return Ok(pending);
            }
        }
    }
}

/// Reads the batch at the start of `data` into `pending`; false when no complete batch is
/// left (a partial batch at the end of the answer is left for the next fetch).
fn read_batch(
    data: &mut Bytes,
    position: &mut i64,
    skip_batch: &mut impl FnMut(&BatchHeader) -> bool,
    pending: &mut PendingRecords,
) -> Result<bool, BatchError> {
    if data.len() < LOG_OVERHEAD {
        return Ok(false);
    }
    let base_offset = i64::from_be_bytes(data[0..8].try_into().expect("8 bytes"));
    let corrupt = |reason: String| BatchError::Corrupt {
        offset: base_offset,
        reason,
    };
    let batch_length = i32::from_be_bytes(data[8..12].try_into().expect("4 bytes"));
    if batch_length < 0 {
        return Err(corrupt(format!("negative batch length {batch_length}")));
    }
    let total = LOG_OVERHEAD + batch_length as usize;
    if data.len() < total {
        return Ok(false);
    }
    let batch = data.split_to(total);
    if batch.len() <= MAGIC_OFFSET {
        return Err(corrupt("batch too short for a header".into()));
    }
    let magic = batch[MAGIC_OFFSET] as i8;
    if magic != 2 {
        return Err(BatchError::UnsupportedMagic {
            offset: base_offset,
            magic,
        });
    }
    if batch.len() < BATCH_HEADER_BYTES {
        return Err(corrupt("batch too short for a v2 header".into()));
    }
    let header = read_header(&batch, base_offset);
    // Offsets far beyond any real log (or a negative delta) are garbage; refusing them here
    // also keeps every offset sum below from overflowing.
    if !(0..=MAX_OFFSET).contains(&base_offset) || header.last_offset_delta < 0 {
        return Err(corrupt(format!(
            "impossible offsets: base {base_offset}, last offset delta {}",
            header.last_offset_delta
        )));
    }
    let batch_end = header.next_offset();
    // The hook sees every batch, control batches included (they end aborted transactions).
    let skipped = skip_batch(&header);
    if skipped || header.control || batch_end <= *position {
        *position = (*position).max(batch_end);
        pending.batch_read(batch_end, header.leader_epoch, None);
        return Ok(true);
    }
    let count = i32::from_be_bytes(
        batch[RECORD_COUNT_OFFSET..BATCH_HEADER_BYTES]
            .try_into()
            .expect("4 bytes"),
    );
    let record_count =
        usize::try_from(count).map_err(|_| corrupt(format!("record count {count}")))?;
    let stored_crc = u32::from_be_bytes(
        batch[CRC_OFFSET..CRC_OFFSET + 4]
            .try_into()
            .expect("4 bytes"),
    );
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    if crc != stored_crc {
        return Err(corrupt(format!(
            "CRC mismatch: the batch says {stored_crc:#010x}, its bytes give {crc:#010x}"
        )));
    }
    let records = BatchRecords::new(batch.slice(BATCH_HEADER_BYTES..), record_count, &header);
    pending.batch_read(batch_end, header.leader_epoch, Some((records, *position)));
    *position = (*position).max(batch_end);
    Ok(true)
}

fn read_header(batch: &Bytes, base_offset: i64) -> BatchHeader {
    let i16_at = |at: usize| i16::from_be_bytes([batch[at], batch[at + 1]]);
    let i32_at = |at: usize| i32::from_be_bytes(batch[at..at + 4].try_into().expect("4 bytes"));
    let i64_at = |at: usize| i64::from_be_bytes(batch[at..at + 8].try_into().expect("8 bytes"));
    let attributes = i16_at(ATTRIBUTES_OFFSET);
    BatchHeader {
        base_offset,
        last_offset_delta: i32_at(LAST_OFFSET_DELTA_OFFSET),
        control: attributes & CONTROL_FLAG != 0,
        transactional: attributes & TRANSACTIONAL_FLAG != 0,
        producer_id: i64_at(PRODUCER_ID_OFFSET),
        leader_epoch: i32_at(LEADER_EPOCH_OFFSET),
        compression: (attributes & COMPRESSION_MASK) as u8,
        base_timestamp: i64_at(BASE_TIMESTAMP_OFFSET),
        max_timestamp: i64_at(MAX_TIMESTAMP_OFFSET),
        log_append_time: attributes & LOG_APPEND_TIME_FLAG != 0,
    }
}

/// Record batches as producers write them, for tests here and in the buffer.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use bytes::BytesMut;
    use indexmap::IndexMap;
    use kafka_protocol::records::{Compression, Record, TimestampType};

    pub fn record(offset: i64) -> Record {
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset,
            // The encoder starts a new batch where `offset - sequence` changes.
            sequence: offset as i32,
            timestamp: 1_700_000_000_000 + offset,
            key: Some(Bytes::from(format!("k{offset}"))),
            value: Some(Bytes::from(format!("v{offset}"))),
            headers: IndexMap::new(),
        }
    }

    pub fn batch(offsets: &[i64], compression: Compression) -> BytesMut {
        let records: Vec<Record> = offsets.iter().map(|o| record(*o)).collect();
        BytesMut::from(&crate::produce::encode_records(&records, compression).unwrap()[..])
    }

    /// Rewrites header fields the way compaction or a transaction coordinator would, with a valid CRC.
    pub fn patch(
        mut batch: BytesMut,
        last_offset_delta: Option<i32>,
        attributes_or: i16,
    ) -> BytesMut {
        if let Some(delta) = last_offset_delta {
            batch[LAST_OFFSET_DELTA_OFFSET..LAST_OFFSET_DELTA_OFFSET + 4]
                .copy_from_slice(&delta.to_be_bytes());
        }
        let attributes =
            i16::from_be_bytes([batch[ATTRIBUTES_OFFSET], batch[ATTRIBUTES_OFFSET + 1]])
                | attributes_or;
        batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
        let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        batch
    }

    /// Rewrites `len` bytes at `at` and re-stamps the CRC.
    pub fn rewrite(mut batch: BytesMut, at: usize, bytes: &[u8]) -> BytesMut {
        batch[at..at + bytes.len()].copy_from_slice(bytes);
        patch(batch, None, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{batch, patch, record, rewrite};
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::records::Compression;

    fn decode(position: i64, data: BytesMut) -> DecodedRecords {
        decode_records(&Arc::from("t"), 0, position, data.freeze(), |_| false).unwrap()
    }

    fn offsets(decoded: &DecodedRecords) -> Vec<i64> {
        decoded.records.iter().map(|r| r.offset).collect()
    }

    #[test]
    fn gaps_between_and_inside_batches_are_kept() {
        let mut data = batch(&[0, 1, 2], Compression::None);
        data.extend_from_slice(&batch(&[5, 9], Compression::None));
        let decoded = decode(0, data);
        assert_eq!(offsets(&decoded), [0, 1, 2, 5, 9]);
        assert_eq!(decoded.next_offset, Some(10));
        assert_eq!(decoded.records[3].value.as_deref(), Some(&b"v5"[..]));
    }

    #[test]
    fn next_offset_comes_from_the_last_offset_delta_not_the_record_count() {
        // Compaction removed the batch's last records (10, 11, 12): the header still says 12.
        let data = patch(batch(&[0, 4, 9], Compression::None), Some(12), 0);
        let decoded = decode(0, data);
        assert_eq!(offsets(&decoded), [0, 4, 9]);
        assert_eq!(decoded.next_offset, Some(13));
    }

    #[test]
    fn a_header_that_ends_before_its_records_does_not_move_the_position_back() {
        // A rewritten compacted batch: records 0, 3, 9 but a delta of 2 (count - 1).
        let data = patch(batch(&[0, 3, 9], Compression::None), Some(2), 0);
        let decoded = decode(0, data);
        assert_eq!(offsets(&decoded), [0, 3, 9]);
        assert_eq!(decoded.next_offset, Some(10));
    }

    #[test]
    fn overlapping_batches_yield_each_record_once() {
        let mut data = batch(&[0, 3, 6, 9], Compression::None);
        data.extend_from_slice(&batch(&[6, 9, 12], Compression::None));
        data.extend_from_slice(&batch(&[9], Compression::None));
        let decoded = decode(0, data);
        assert_eq!(offsets(&decoded), [0, 3, 6, 9, 12]);
        assert_eq!(decoded.next_offset, Some(13));
    }

    #[test]
    fn records_before_the_position_are_skipped() {
        let mut data = batch(&[0, 1, 2, 3], Compression::None);
        data.extend_from_slice(&batch(&[4, 5], Compression::None));
        let decoded = decode(3, data);
        assert_eq!(offsets(&decoded), [3, 4, 5]);
        assert_eq!(decoded.next_offset, Some(6));
    }

    #[test]
    fn a_partial_trailing_batch_is_left_for_the_next_fetch() {
        let mut data = batch(&[0, 1], Compression::None);
        let second = batch(&[2, 3], Compression::None);
        data.extend_from_slice(&second[..second.len() - 5]);
        let decoded = decode(0, data);
        assert_eq!(offsets(&decoded), [0, 1]);
        assert_eq!(decoded.next_offset, Some(2));
        let decoded = decode(0, BytesMut::from(&second[..20]));
        assert!(decoded.records.is_empty());
        assert_eq!(decoded.next_offset, None);
    }

    #[test]
    fn control_batches_move_the_position_and_yield_nothing() {
        let mut data = batch(&[0, 1], Compression::None);
        data.extend_from_slice(&patch(batch(&[2], Compression::None), None, CONTROL_FLAG));
        data.extend_from_slice(&batch(&[3], Compression::None));
        let decoded = decode(0, data);
        assert_eq!(offsets(&decoded), [0, 1, 3]);
        assert_eq!(decoded.next_offset, Some(4));
    }

    #[test]
    fn skipped_batches_still_advance() {
        let mut data = batch(&[0, 1], Compression::None);
        data.extend_from_slice(&batch(&[2, 3], Compression::None));
        let decoded =
            decode_records(&Arc::from("t"), 0, 0, data.freeze(), |h| h.base_offset == 0).unwrap();
        assert_eq!(offsets(&decoded), [2, 3]);
        assert_eq!(decoded.next_offset, Some(4));
    }

    #[test]
    fn every_codec_decodes() {
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let decoded = decode(0, batch(&[0, 1, 2, 3, 4], compression));
            assert_eq!(offsets(&decoded), [0, 1, 2, 3, 4], "{compression:?}");
            assert_eq!(
                decoded.records[4].key.as_deref(),
                Some(&b"k4"[..]),
                "{compression:?}"
            );
        }
    }

    #[test]
    fn log_append_time_batches_give_every_record_the_brokers_time() {
        // The broker sets the timestamp type and the max timestamp; the records keep their
        // producer deltas, which the Java client ignores for such batches, as we do.
        let appended: i64 = 1_800_000_000_123;
        let data = patch(
            batch(&[0, 1, 2], Compression::None),
            None,
            LOG_APPEND_TIME_FLAG,
        );
        let data = rewrite(data, MAX_TIMESTAMP_OFFSET, &appended.to_be_bytes());
        let decoded = decode(0, data);
        let stamps: Vec<i64> = decoded.records.iter().map(|r| r.timestamp).collect();
        assert_eq!(stamps, [appended; 3]);
        // Creation time: the first timestamp plus each record's delta.
        let decoded = decode(0, batch(&[0, 1, 2], Compression::None));
        let stamps: Vec<i64> = decoded.records.iter().map(|r| r.timestamp).collect();
        assert_eq!(
            stamps,
            [1_700_000_000_000, 1_700_000_000_001, 1_700_000_000_002]
        );
    }

    #[test]
    fn headers_keep_their_order_and_null_values() {
        let mut record = record(0);
        record
            .headers
            .insert("b".into(), Some(Bytes::from_static(b"1")));
        record.headers.insert("a".into(), None);
        let data = crate::produce::encode_records(&[record], Compression::None).unwrap();
        let decoded = decode(0, BytesMut::from(&data[..]));
        assert_eq!(
            decoded.records[0].headers,
            [
                ("b".to_string(), Some(Bytes::from_static(b"1"))),
                ("a".to_string(), None)
            ]
        );
    }

    #[test]
    fn impossible_record_data_is_a_corrupt_batch_not_a_panic() {
        let corrupt = |data: BytesMut| match decode_records(
            &Arc::from("t"),
            0,
            0,
            data.freeze(),
            |_| false,
        ) {
            Err(BatchError::Corrupt { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        // More records than the bytes could hold.
        let data = rewrite(
            batch(&[0, 1], Compression::None),
            RECORD_COUNT_OFFSET,
            &1_000_000i32.to_be_bytes(),
        );
        assert_eq!(corrupt(data), "1000000 records claimed in 22 bytes");
        // A record's length runs past the batch.
        let data = rewrite(batch(&[0], Compression::None), BATCH_HEADER_BYTES, &[0x7e]);
        assert_eq!(corrupt(data), "record of 63 bytes runs past its batch");
        // A value length past its record.
        let mut data = batch(&[0], Compression::None);
        let value_length_at = BATCH_HEADER_BYTES + 1 + 1 + 1 + 1 + 1 + 2;
        assert_eq!(data[value_length_at], 4, "the value \"v0\" (zigzag 2)");
        data[value_length_at] = 40;
        assert_eq!(
            corrupt(patch(data, None, 0)),
            "value of 20 bytes runs past its record (3 left)"
        );
        // A checksum that does not match.
        let mut data = batch(&[0], Compression::None);
        data[CRC_OFFSET] ^= 1;
        assert!(corrupt(data).starts_with("CRC mismatch"));
    }

    #[test]
    fn corrupt_and_legacy_batches_are_typed_errors() {
        let mut data = batch(&[0], Compression::None);
        data[MAGIC_OFFSET] = 1;
        let error = decode_records(&Arc::from("t"), 0, 0, data.freeze(), |_| false).unwrap_err();
        assert_eq!(
            error,
            BatchError::UnsupportedMagic {
                offset: 0,
                magic: 1
            }
        );
        let mut data = batch(&[0, 1], Compression::None);
        let last = data.len() - 1;
        data[last] ^= 0xff;
        let error = decode_records(&Arc::from("t"), 0, 0, data.freeze(), |_| false).unwrap_err();
        assert!(matches!(error, BatchError::Corrupt { .. }), "{error}");
    }
}
