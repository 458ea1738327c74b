//! One partition's fetched batches, checked when the answer arrived and decoded into records
//! only when the application takes them.
//!
//! A `ConsumerRecord` takes 128 bytes beside its key and value: more than a 100-byte record
//! itself. Decoding a whole answer up front kept up to `partition_max_bytes` of such structs
//! per partition waiting in the buffer; decoding at take time keeps only the batches' bytes,
//! and at most one poll's worth of structs exists at a time.
//!
//! Invariant: the records handed out rise strictly. A record is dropped when its offset is
//! below the fetch position, below the end of an earlier batch of the same answer (overlapping
//! batches, see the parent module), or not above a record handed out or read before it.

use std::collections::VecDeque;
use std::sync::Arc;

use super::records::BatchRecords;
use super::{BatchError, ConsumerRecord};

/// A partition's fetched batches whose records wait to be decoded.
#[derive(Debug)]
pub struct PendingRecords {
    topic: Arc<str>,
    partition: i32,
    batches: VecDeque<PendingBatch>,
    /// Where fetching goes on: the end of the last complete batch, from its header (`None`
    /// when the answer held no complete batch).
    next_offset: Option<i64>,
    /// The leader epoch of the last complete batch (KIP-320's "last fetched epoch").
    last_epoch: Option<i32>,
    /// One past the highest record offset read so far.
    read_past: i64,
    bytes: usize,
    /// A batch after the waiting ones failed its checks: the error for after their records.
    damaged: Option<BatchError>,
}

#[derive(Debug)]
struct PendingBatch {
    records: BatchRecords,
    /// Records below this are not handed out: the fetch position, or the end of an earlier
    /// batch of the answer.
    floor: i64,
}

impl PendingRecords {
    pub(super) fn new(topic: &Arc<str>, partition: i32, position: i64) -> Self {
        Self {
            topic: topic.clone(),
            partition,
            batches: VecDeque::new(),
            next_offset: None,
            last_epoch: None,
            read_past: position,
            bytes: 0,
            damaged: None,
        }
    }

    /// A complete batch was read: fetching goes on after `end`; `records` (if any) wait to be
    /// decoded, each kept only at or above `floor`.
    pub(super) fn batch_read(
        &mut self,
        end: i64,
        leader_epoch: i32,
        records: Option<(BatchRecords, i64)>,
    ) {
        self.next_offset = Some(self.next_offset.map_or(end, |next| next.max(end)));
        self.last_epoch = Some(leader_epoch);
        if let Some((records, floor)) = records.filter(|(records, _)| records.remaining() > 0) {
            self.bytes += records.bytes();
            self.batches.push_back(PendingBatch { records, floor });
        }
    }

    /// The batch after the waiting ones failed its checks: `error` is returned once their
    /// records are taken.
    pub(super) fn damaged(&mut self, error: BatchError) {
        self.damaged = Some(error);
    }

    /// Where fetching goes on after this answer, from the batch headers alone (`None`: no
    /// complete batch). See [`PendingRecords::decoded_end`] for records past a header's end.
    pub fn next_offset(&self) -> Option<i64> {
        self.next_offset
    }

    pub fn last_epoch(&self) -> Option<i32> {
        self.last_epoch
    }

    /// One past the highest record offset decoded so far (the fetch position when none was).
    /// Above [`PendingRecords::next_offset`] only when a batch header ends before its own last
    /// record; fetching must then go on after the record.
    pub fn decoded_end(&self) -> i64 {
        self.read_past
    }

    /// True when no record (and no error) is left to hand out.
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty() && self.damaged.is_none()
    }

    /// The bytes the waiting batches keep alive.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// About how many records are left, to size a vector: the headers' counts, each capped by
    /// what its bytes could hold (7 bytes a record; compressed bytes hold more, and the vector
    /// then grows as usual). A header's count alone is never trusted for an allocation.
    pub fn records_hint(&self) -> usize {
        self.batches
            .iter()
            .map(|b| b.records.remaining().min(b.records.bytes() / 7 + 1))
            .sum()
    }

    /// Decodes records into `out` until it holds `max` or none are left. A record that cannot be
    /// decoded, or a damaged batch once the records before it are out, is an error: the records
    /// before it stay in `out`, and the rest of this data is dropped.
    pub fn decode_into(
        &mut self,
        max: usize,
        out: &mut Vec<ConsumerRecord>,
    ) -> Result<(), BatchError> {
        while out.len() < max {
            let Some(batch) = self.batches.front_mut() else {
                return self.damaged.take().map_or(Ok(()), Err);
            };
            let held = batch.records.bytes();
            let decompressed = batch.records.decompress();
            // The decompressed section replaces the fetched one.
            self.bytes = self.bytes - held + batch.records.bytes();
            if let Err(reason) = decompressed {
                return Err(self.drop_all(reason));
            }
            while out.len() < max {
                match batch.records.next_record(&self.topic, self.partition) {
                    Some(Ok(record)) => {
                        let offset = record.offset;
                        if offset >= batch.floor && offset >= self.read_past {
                            out.push(record);
                        }
                        self.read_past = self.read_past.max(offset + 1);
                    }
                    Some(Err(reason)) => return Err(self.drop_all(reason)),
                    None => break,
                }
            }
            if batch.records.remaining() == 0 {
                self.bytes -= batch.records.bytes();
                self.batches.pop_front();
            }
        }
        Ok(())
    }

    /// The front batch failed: nothing more of this data is handed out.
    fn drop_all(&mut self, reason: String) -> BatchError {
        let offset = self.batches.front().map_or(-1, |b| b.records.base_offset());
        self.batches.clear();
        self.bytes = 0;
        BatchError::Corrupt { offset, reason }
    }
}
