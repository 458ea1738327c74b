//! Fetched records waiting for the user.
//!
//! Invariant (back-pressure): a partition has at most one chunk here, and a partition with a
//! chunk is not fetched again until the user has taken all of it. Memory is therefore bounded
//! by one fetch answer per partition (and per request by `fetch_max_bytes`), however slowly
//! the user reads. A chunk keeps its batches' bytes; records are decoded as they are taken
//! (see [`PendingRecords`]), so at most one poll's worth of them exists.

use std::collections::VecDeque;

use super::batch::{BatchError, ConsumerRecord, PendingRecords};
use super::partition::Stamp;
use super::TopicPartition;

/// One partition's fetched records.
#[derive(Debug)]
pub struct Chunk {
    pub tp: TopicPartition,
    pub stamp: Stamp,
    pub records: PendingRecords,
    /// The next offset to hand out: after the last record taken, or the fetch offset.
    pub consumed: i64,
    /// Where the partition's fetch continues (the batch-header next offset).
    pub next_offset: i64,
}

/// The buffer: chunks in arrival order, at most one per partition.
#[derive(Debug, Default)]
pub struct RecordBuffer {
    chunks: VecDeque<Chunk>,
    bytes: usize,
}

/// What a take found beside the records; the caller applies it to the partitions under the
/// same lock.
#[derive(Debug, Default)]
pub struct TakeOutcome {
    /// Drained partitions whose records ran past their batch headers' end (`from`, where the
    /// fetch was to go on): fetching must go on at `to`, after the last record.
    pub ran_past_header: Vec<(TopicPartition, Stamp, i64, i64)>,
    /// Partitions whose records could not be decoded; their chunks are gone.
    pub corrupt: Vec<(TopicPartition, Stamp, BatchError)>,
}

impl RecordBuffer {
    /// Adds a chunk; the caller guarantees the partition has none (see the module invariant).
    pub fn push(&mut self, chunk: Chunk) {
        debug_assert!(!self.contains(&chunk.tp), "one chunk per partition");
        self.bytes += chunk.records.bytes();
        self.chunks.push_back(chunk);
    }

    pub fn contains(&self, tp: &TopicPartition) -> bool {
        self.chunks.iter().any(|c| &c.tp == tp)
    }

    /// Drops a partition's chunk (seek, reset, revoke).
    pub fn remove(&mut self, tp: &TopicPartition) {
        let bytes = &mut self.bytes;
        self.chunks.retain(|c| {
            if &c.tp == tp {
                *bytes -= c.records.bytes();
                false
            } else {
                true
            }
        });
    }

    /// The next offset to hand out for a partition with a chunk.
    pub fn consumed_position(&self, tp: &TopicPartition) -> Option<i64> {
        self.chunks.iter().find(|c| &c.tp == tp).map(|c| c.consumed)
    }

    /// The bytes the waiting batches keep alive.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The bytes of the chunks of partitions `of` picks.
    pub fn bytes_of(&self, of: impl Fn(&TopicPartition) -> bool) -> usize {
        self.chunks
            .iter()
            .filter(|c| of(&c.tp))
            .map(|c| c.records.bytes())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Takes up to `max` records from the oldest chunks whose partition `available` allows
    /// (paused partitions keep theirs), telling `handed_out` each partition and the offset of
    /// its first record taken. Drained chunks leave the buffer; their partitions can be
    /// fetched again. What else the take found goes into `outcome`.
    pub fn take(
        &mut self,
        max: usize,
        available: impl Fn(&TopicPartition) -> bool,
        mut handed_out: impl FnMut(&TopicPartition, i64),
        outcome: &mut TakeOutcome,
    ) -> Vec<ConsumerRecord> {
        let mut out: Vec<ConsumerRecord> = Vec::new();
        let mut index = 0;
        while index < self.chunks.len() && out.len() < max {
            let chunk = &mut self.chunks[index];
            if !available(&chunk.tp) {
                index += 1;
                continue;
            }
            if out.capacity() == 0 {
                let waiting: usize = self.chunks.iter().map(|c| c.records.records_hint()).sum();
                out.reserve(waiting.min(max));
            }
            let chunk = &mut self.chunks[index];
            let first = out.len();
            let bytes_before = chunk.records.bytes();
            let decoded = chunk.records.decode_into(max, &mut out);
            // Decompressing a batch may grow the chunk; decoding records may shrink it.
            self.bytes = self.bytes + chunk.records.bytes() - bytes_before;
            if let Some(record) = out.get(first) {
                handed_out(&chunk.tp, record.offset);
                chunk.consumed = out.last().expect("one at least").offset + 1;
            }
            let corrupt = decoded.err();
            if corrupt.is_none() && !chunk.records.is_empty() {
                index += 1;
                continue;
            }
            let chunk = self.chunks.remove(index).expect("the chunk at index");
            let decoded_end = chunk.records.decoded_end();
            match corrupt {
                Some(error) => outcome.corrupt.push((chunk.tp, chunk.stamp, error)),
                None if decoded_end > chunk.next_offset => {
                    tracing::debug!(
                        partition = %chunk.tp,
                        next_offset = chunk.next_offset,
                        decoded_end,
                        "batch header ends before its last record; fetching goes on after the record"
                    );
                    outcome.ran_past_header.push((
                        chunk.tp,
                        chunk.stamp,
                        chunk.next_offset,
                        decoded_end,
                    ));
                }
                None => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::BytesMut;
    use kafka_protocol::records::Compression;

    use super::*;
    use crate::fetch::batch::read_batches;
    use crate::fetch::batch::testing::{batch, patch, rewrite};

    /// A chunk of partition `p` from `batches` of offsets, fetched at the first offset.
    fn chunk_of(p: i32, data: BytesMut, position: i64) -> Chunk {
        let records = read_batches(&Arc::from("t"), p, position, data.freeze(), |_| false).unwrap();
        Chunk {
            tp: TopicPartition::new("t", p),
            stamp: Stamp(1),
            consumed: position,
            next_offset: records.next_offset().unwrap(),
            records,
        }
    }

    fn chunk(p: i32, batches: &[&[i64]]) -> Chunk {
        let mut data = BytesMut::new();
        for offsets in batches {
            data.extend_from_slice(&batch(offsets, Compression::None));
        }
        chunk_of(p, data, batches[0][0])
    }

    fn take(buffer: &mut RecordBuffer, max: usize) -> (Vec<(i32, i64)>, TakeOutcome) {
        let mut outcome = TakeOutcome::default();
        let taken = buffer.take(max, |_| true, |_, _| {}, &mut outcome);
        let taken = taken.iter().map(|r| (r.partition, r.offset)).collect();
        (taken, outcome)
    }

    /// The one partition a take found corrupt: (partition, stamp, the error in words).
    fn only_corrupt(outcome: &TakeOutcome) -> (i32, Stamp, String) {
        let [(tp, stamp, error)] = &outcome.corrupt[..] else {
            panic!("{outcome:?}");
        };
        (tp.partition, *stamp, error.to_string())
    }

    #[test]
    fn takes_in_arrival_order_and_tracks_consumed_positions() {
        let mut buffer = RecordBuffer::default();
        buffer.push(chunk(0, &[&[0, 1], &[5]]));
        buffer.push(chunk(1, &[&[3, 4]]));
        let full = buffer.bytes();
        let mut firsts = Vec::new();
        let mut outcome = TakeOutcome::default();
        let taken = buffer.take(
            2,
            |_| true,
            |tp, o| firsts.push((tp.partition, o)),
            &mut outcome,
        );
        assert_eq!(firsts, [(0, 0)]);
        assert_eq!(taken.iter().map(|r| r.offset).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(taken[1].value.as_deref(), Some(&b"v1"[..]));
        // The first batch is done with: its bytes leave the buffer.
        assert!(buffer.bytes() < full && buffer.bytes() > 0);
        assert_eq!(
            buffer.consumed_position(&TopicPartition::new("t", 0)),
            Some(2)
        );
        let taken = buffer.take(
            10,
            |_| true,
            |tp, o| firsts.push((tp.partition, o)),
            &mut outcome,
        );
        assert_eq!(firsts, [(0, 0), (0, 5), (1, 3)]);
        assert_eq!(
            taken
                .iter()
                .map(|r| (r.partition, r.offset))
                .collect::<Vec<_>>(),
            [(0, 5), (1, 3), (1, 4)]
        );
        assert!(buffer.is_empty());
        assert_eq!(buffer.bytes(), 0);
        assert!(outcome.corrupt.is_empty() && outcome.ran_past_header.is_empty());
    }

    #[test]
    fn paused_partitions_keep_their_records() {
        let mut buffer = RecordBuffer::default();
        buffer.push(chunk(0, &[&[0, 1]]));
        buffer.push(chunk(1, &[&[0]]));
        let paused = TopicPartition::new("t", 0);
        let mut outcome = TakeOutcome::default();
        let taken = buffer.take(10, |tp| tp != &paused, |_, _| {}, &mut outcome);
        assert_eq!(taken.len(), 1);
        assert!(buffer.contains(&paused));
        assert!(buffer.bytes() > 0);
        buffer.remove(&paused);
        assert!(buffer.is_empty());
        assert_eq!(buffer.bytes(), 0);
    }

    #[test]
    fn a_record_that_cannot_be_decoded_ends_its_partition_after_the_records_before_it() {
        let mut data = batch(&[0, 1], Compression::None);
        // A CRC-valid batch whose record claims 63 bytes it does not have.
        let bad = rewrite(batch(&[2, 3], Compression::None), 61, &[0x7e]);
        data.extend_from_slice(&bad);
        let mut buffer = RecordBuffer::default();
        buffer.push(chunk_of(0, data, 0));
        buffer.push(chunk(1, &[&[7]]));
        let (taken, outcome) = take(&mut buffer, 10);
        assert_eq!(taken, [(0, 0), (0, 1), (1, 7)]);
        assert_eq!(
            only_corrupt(&outcome),
            (
                0,
                Stamp(1),
                "corrupt record batch at offset 2: record of 63 bytes runs past its batch".into()
            )
        );
        assert!(buffer.is_empty());
        assert_eq!(buffer.bytes(), 0);
    }

    #[test]
    fn a_batch_failing_its_checksum_waits_behind_the_batches_before_it() {
        let mut data = batch(&[0, 1], Compression::None);
        let mut bad = batch(&[2, 3], Compression::Lz4);
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        data.extend_from_slice(&bad);
        data.extend_from_slice(&batch(&[4], Compression::None));
        let mut buffer = RecordBuffer::default();
        let chunk = chunk_of(0, data, 0);
        assert_eq!(chunk.next_offset, 2, "fetching stops at the damaged batch");
        buffer.push(chunk);
        let (taken, outcome) = take(&mut buffer, 1);
        assert_eq!(taken, [(0, 0)]);
        assert!(outcome.corrupt.is_empty());
        let (taken, outcome) = take(&mut buffer, 10);
        assert_eq!(taken, [(0, 1)]);
        let (_, _, error) = only_corrupt(&outcome);
        assert!(
            error.starts_with("corrupt record batch at offset 2: CRC mismatch"),
            "{error}"
        );
        assert!(buffer.is_empty());
        assert_eq!(buffer.bytes(), 0);
    }

    #[test]
    fn a_section_that_does_not_decompress_is_found_when_its_records_are_taken() {
        let mut data = batch(&[0, 1], Compression::None);
        // The CRC is right; the lz4 frame inside is not.
        data.extend_from_slice(&rewrite(batch(&[2, 3], Compression::Lz4), 61, &[0; 4]));
        let mut buffer = RecordBuffer::default();
        let chunk = chunk_of(0, data, 0);
        assert_eq!(chunk.next_offset, 4, "the header checks passed");
        buffer.push(chunk);
        let (taken, outcome) = take(&mut buffer, 10);
        assert_eq!(taken, [(0, 0), (0, 1)]);
        assert_eq!(
            only_corrupt(&outcome).2,
            "corrupt record batch at offset 2: lz4 frame: no frame header"
        );
        assert_eq!(buffer.bytes(), 0);
    }

    #[test]
    fn a_compressed_batch_counts_compressed_until_a_take_decompresses_it() {
        let offsets: Vec<i64> = (0..400).collect();
        let mut buffer = RecordBuffer::default();
        buffer.push(chunk_of(0, batch(&offsets, Compression::Lz4), 0));
        let fetched = buffer.bytes();
        let (taken, _) = take(&mut buffer, 1);
        assert_eq!(taken, [(0, 0)]);
        assert!(
            buffer.bytes() > fetched,
            "decompressed {} bytes, fetched {fetched}",
            buffer.bytes()
        );
        let (taken, _) = take(&mut buffer, 1000);
        assert_eq!(taken.len(), 399);
        assert_eq!(buffer.bytes(), 0);
    }

    #[test]
    fn records_past_their_headers_end_move_the_fetch_on_when_drained() {
        // A rewritten compacted batch: records 0, 3, 9 but a header saying it ends at 2.
        let data = patch(batch(&[0, 3, 9], Compression::None), Some(2), 0);
        let mut buffer = RecordBuffer::default();
        buffer.push(chunk_of(0, data, 0));
        let (taken, outcome) = take(&mut buffer, 2);
        assert_eq!(taken, [(0, 0), (0, 3)]);
        assert!(outcome.ran_past_header.is_empty(), "not drained yet");
        let (taken, outcome) = take(&mut buffer, 2);
        assert_eq!(taken, [(0, 9)]);
        let [(tp, _, from, to)] = &outcome.ran_past_header[..] else {
            panic!("{outcome:?}");
        };
        assert_eq!((tp.partition, *from, *to), (0, 3, 10));
    }

    #[test]
    fn a_chunk_whose_records_are_all_below_the_position_drains_empty() {
        // Overlapping batches (Tansu): the second repeats what the first handed out.
        let mut data = batch(&[0, 1, 2], Compression::None);
        data.extend_from_slice(&batch(&[1, 2, 3], Compression::None));
        let mut buffer = RecordBuffer::default();
        buffer.push(chunk_of(0, data, 0));
        let (taken, _) = take(&mut buffer, 10);
        assert_eq!(taken, [(0, 0), (0, 1), (0, 2), (0, 3)]);
        assert!(buffer.is_empty());
    }
}
