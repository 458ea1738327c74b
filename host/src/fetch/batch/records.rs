//! The records section of one v2 record batch, decoded straight into [`ConsumerRecord`]s.
//!
//! Kafka's record layout (`DefaultRecord` in the Java client): a zigzag varint length, then
//! attributes (int8), timestamp delta (varlong), offset delta (varint), key length + key,
//! value length + value (length -1 is null), a header count and each header's key and
//! value. Keys and values are slices of `data` (no copy); decompressed batches are their own
//! buffer.
//!
//! Invariant: nothing read from the bytes is trusted for allocation or indexing. Every length is
//! checked against what is left, the record count against the bytes that could hold it, and a
//! malformed record is an error naming what was wrong, never a panic.

use std::sync::Arc;

use bytes::Bytes;

use super::ConsumerRecord;

/// One batch's records section, read one record at a time: the batch header was checked (CRC,
/// offsets) when the answer arrived; the section is decompressed and its records decoded only
/// when the application takes them.
#[derive(Debug)]
pub(super) struct BatchRecords {
    /// The records section: as fetched (a slice of the answer) until `compression` is undone.
    data: Bytes,
    /// The codec still to undo (0 once decompressed).
    compression: u8,
    /// Where the next record starts in `data`.
    at: usize,
    /// Records the header says are still to come.
    remaining: usize,
    base_offset: i64,
    base_timestamp: i64,
    /// Set when the batch carries the broker's append time (timestamp type LogAppendTime):
    /// every record then has the batch's max timestamp, as the Java client reports it.
    log_append_time: Option<i64>,
    leader_epoch: i32,
}

impl BatchRecords {
    /// The records section of a batch whose header says `record_count` records, compressed
    /// with `header.compression`.
    pub fn new(section: Bytes, record_count: usize, header: &super::BatchHeader) -> Self {
        Self {
            data: section,
            compression: header.compression,
            at: 0,
            remaining: record_count,
            base_offset: header.base_offset,
            base_timestamp: header.base_timestamp,
            log_append_time: header.log_append_time.then_some(header.max_timestamp),
            leader_epoch: header.leader_epoch,
        }
    }

    /// Decompresses the section (once) and checks the record count against the bytes: a count
    /// they cannot hold is refused here, so it never sizes an allocation.
    pub fn decompress(&mut self) -> Result<(), String> {
        if self.compression != 0 {
            let compression = std::mem::replace(&mut self.compression, 0);
            self.data = super::codec::decompress(compression, std::mem::take(&mut self.data))
                .inspect_err(|_| self.remaining = 0)?;
        }
        // A record takes at least 7 bytes (length, attributes, two deltas, key and value
        // lengths, header count).
        if self.at == 0 && self.remaining > self.data.len() / 7 {
            let claimed = std::mem::replace(&mut self.remaining, 0);
            return Err(format!(
                "{claimed} records claimed in {} bytes",
                self.data.len()
            ));
        }
        Ok(())
    }

    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// The bytes this batch keeps alive.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// Decodes the next record; `None` when the header's count is reached. Bytes after the
    /// last counted record are ignored. Call [`BatchRecords::decompress`] first.
    #[inline(always)]
    pub fn next_record(
        &mut self,
        topic: &Arc<str>,
        partition: i32,
    ) -> Option<Result<ConsumerRecord, String>> {
        if self.remaining == 0 {
            return None;
        }
        debug_assert_eq!(self.compression, 0, "decompressed first");
        self.remaining -= 1;
        let mut reader = Reader {
            data: &self.data,
            at: self.at,
        };
        let record = reader.record(self, topic, partition);
        self.at = reader.at;
        if record.is_err() {
            self.remaining = 0;
        }
        Some(record)
    }
}

struct Reader<'a> {
    data: &'a Bytes,
    at: usize,
}

impl Reader<'_> {
    #[inline(always)]
    fn record(
        &mut self,
        batch: &BatchRecords,
        topic: &Arc<str>,
        partition: i32,
    ) -> Result<ConsumerRecord, String> {
        let length = self.varint("record length")?;
        let length = usize::try_from(length).map_err(|_| format!("record length {length}"))?;
        let end = self
            .at
            .checked_add(length)
            .filter(|end| *end <= self.data.len())
            .ok_or_else(|| format!("record of {length} bytes runs past its batch"))?;
        // Fields are read within the record's own bytes.
        let mut within = Reader {
            data: self.data,
            at: self.at,
        };
        let _attributes = within.byte(end)?;
        let timestamp_delta = within.varlong(end, "timestamp delta")?;
        let offset_delta = within.varint_within(end, "offset delta")?;
        let key = within.nullable_bytes(end, "key")?;
        let value = within.nullable_bytes(end, "value")?;
        let header_count = within.varint_within(end, "header count")?;
        let header_count = usize::try_from(header_count)
            .map_err(|_| format!("negative header count {header_count}"))?;
        // A header takes at least two bytes (its key and value lengths).
        if header_count > (end - within.at) / 2 {
            return Err(format!(
                "{header_count} headers claimed in {} bytes",
                end - within.at
            ));
        }
        let mut headers = Vec::with_capacity(header_count);
        for _ in 0..header_count {
            let key = within
                .nullable_bytes(end, "header key")?
                .ok_or("a header key of length -1")?;
            let value = within.nullable_bytes(end, "header value")?;
            headers.push((String::from_utf8_lossy(&key).into_owned(), value));
        }
        self.at = end;
        Ok(ConsumerRecord {
            topic: topic.clone(),
            partition,
            offset: batch.base_offset + i64::from(offset_delta),
            timestamp: batch
                .log_append_time
                .unwrap_or_else(|| batch.base_timestamp.wrapping_add(timestamp_delta)),
            key,
            value,
            headers,
            leader_epoch: batch.leader_epoch,
        })
    }

    #[inline(always)]
    fn byte(&mut self, end: usize) -> Result<u8, String> {
        if self.at >= end {
            return Err("record ends inside its attributes".into());
        }
        self.at += 1;
        Ok(self.data[self.at - 1])
    }

    /// A zigzag varint anywhere in the batch (a record's length).
    #[inline(always)]
    fn varint(&mut self, what: &str) -> Result<i32, String> {
        self.varint_within(self.data.len(), what)
    }

    /// A zigzag varint of at most 5 bytes, ending before `end`.
    #[inline(always)]
    fn varint_within(&mut self, end: usize, what: &str) -> Result<i32, String> {
        let raw = self.unsigned(end, 5, what)?;
        let raw = u32::try_from(raw).map_err(|_| format!("{what} overflows 32 bits"))?;
        Ok((raw >> 1) as i32 ^ -((raw & 1) as i32))
    }

    /// A zigzag varlong of at most 10 bytes, ending before `end`.
    #[inline(always)]
    fn varlong(&mut self, end: usize, what: &str) -> Result<i64, String> {
        let raw = self.unsigned(end, 10, what)?;
        Ok((raw >> 1) as i64 ^ -((raw & 1) as i64))
    }

    #[inline(always)]
    fn unsigned(&mut self, end: usize, max_bytes: usize, what: &str) -> Result<u64, String> {
        let mut value = 0u64;
        for index in 0..max_bytes {
            if self.at >= end {
                return Err(format!("record ends inside its {what}"));
            }
            let byte = self.data[self.at];
            self.at += 1;
            value |= u64::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(format!("{what} is longer than {max_bytes} bytes"))
    }

    /// A varint length, then that many bytes; -1 is null.
    fn nullable_bytes(&mut self, end: usize, what: &str) -> Result<Option<Bytes>, String> {
        let length = self.varint_within(end, what)?;
        if length == -1 {
            return Ok(None);
        }
        let length = usize::try_from(length).map_err(|_| format!("{what} length {length}"))?;
        if length > end - self.at {
            return Err(format!(
                "{what} of {length} bytes runs past its record ({} left)",
                end - self.at
            ));
        }
        let bytes = self.data.slice(self.at..self.at + length);
        self.at += length;
        Ok(Some(bytes))
    }
}
