//! Records that were fetched but not yet handed to the user.
//!
//! Invariant (back-pressure): a partition has at most one chunk here, and a partition with a
//! chunk is not fetched again until the user has taken all of it. Memory is therefore bounded
//! by one fetch answer per partition (and per request by `fetch_max_bytes`), however slowly
//! the user reads.

use std::collections::VecDeque;

use super::batch::ConsumerRecord;
use super::TopicPartition;

/// One partition's fetched records.
#[derive(Debug)]
pub struct Chunk {
    pub tp: TopicPartition,
    pub epoch: u64,
    pub records: VecDeque<ConsumerRecord>,
    /// The next offset to hand out: after the last record taken, or the fetch offset.
    pub consumed: i64,
    /// Where the partition's fetch continues (the batch-header next offset).
    pub next_offset: i64,
    pub bytes: usize,
}

/// The buffer: chunks in arrival order, at most one per partition.
#[derive(Debug, Default)]
pub struct RecordBuffer {
    chunks: VecDeque<Chunk>,
    bytes: usize,
}

/// The approximate memory a record holds.
pub fn record_bytes(record: &ConsumerRecord) -> usize {
    let payload = record.key.as_ref().map_or(0, |k| k.len())
        + record.value.as_ref().map_or(0, |v| v.len())
        + record
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, |v| v.len()))
            .sum::<usize>();
    payload + std::mem::size_of::<ConsumerRecord>()
}

impl RecordBuffer {
    /// Adds a chunk; the caller guarantees the partition has none (see the module invariant).
    pub fn push(&mut self, chunk: Chunk) {
        debug_assert!(!self.contains(&chunk.tp), "one chunk per partition");
        self.bytes += chunk.bytes;
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
                *bytes -= c.bytes;
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

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Takes up to `max` records from the oldest chunks whose partition `available` allows
    /// (paused partitions keep theirs), telling `handed_out` each partition and the offset of
    /// its first record taken. Drained chunks leave the buffer; their partitions can be
    /// fetched again.
    pub fn take(
        &mut self,
        max: usize,
        available: impl Fn(&TopicPartition) -> bool,
        mut handed_out: impl FnMut(&TopicPartition, i64),
    ) -> Vec<ConsumerRecord> {
        let mut out: Vec<ConsumerRecord> = Vec::new();
        let mut index = 0;
        while index < self.chunks.len() && out.len() < max {
            let chunk = &mut self.chunks[index];
            if !available(&chunk.tp) {
                index += 1;
                continue;
            }
            if let Some(first) = chunk.records.front() {
                handed_out(&chunk.tp, first.offset);
            }
            let count = (max - out.len()).min(chunk.records.len());
            if out.is_empty() && count == chunk.records.len() {
                // The whole chunk: hand its records over without moving them.
                out = Vec::from(std::mem::take(&mut chunk.records));
            } else {
                if out.is_empty() {
                    let waiting: usize = self.chunks.iter().map(|c| c.records.len()).sum();
                    out.reserve(waiting.min(max));
                }
                // Back-pressure needs the bytes only roughly: the taken share of the chunk's.
                let chunk = &mut self.chunks[index];
                let share = chunk.bytes.saturating_mul(count) / chunk.records.len();
                chunk.bytes -= share;
                self.bytes -= share;
                out.extend(chunk.records.drain(..count));
            }
            let chunk = &mut self.chunks[index];
            // The last `count` records out are this chunk's.
            if let Some(last) = out.last().filter(|_| count > 0) {
                chunk.consumed = last.offset + 1;
            }
            if chunk.records.is_empty() {
                self.bytes -= chunk.bytes;
                self.chunks.remove(index);
            } else {
                index += 1;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn record(p: i32, offset: i64) -> ConsumerRecord {
        ConsumerRecord {
            topic: "t".into(),
            partition: p,
            offset,
            timestamp: 0,
            key: None,
            value: Some(Bytes::from_static(b"0123456789")),
            headers: Vec::new(),
            leader_epoch: 0,
        }
    }

    fn chunk(p: i32, offsets: &[i64], next_offset: i64) -> Chunk {
        let records: VecDeque<_> = offsets.iter().map(|o| record(p, *o)).collect();
        Chunk {
            tp: TopicPartition::new("t", p),
            epoch: 1,
            bytes: records.iter().map(record_bytes).sum(),
            consumed: offsets[0],
            records,
            next_offset,
        }
    }

    #[test]
    fn takes_in_arrival_order_and_tracks_consumed_positions() {
        let mut buffer = RecordBuffer::default();
        buffer.push(chunk(0, &[0, 1, 5], 8));
        buffer.push(chunk(1, &[3, 4], 5));
        let full = buffer.bytes();
        let mut firsts = Vec::new();
        let taken = buffer.take(2, |_| true, |tp, o| firsts.push((tp.partition, o)));
        assert_eq!(firsts, [(0, 0)]);
        // Two of the five records left: their share of the first chunk's bytes.
        assert_eq!(buffer.bytes(), full - 2 * record_bytes(&taken[0]));
        assert_eq!(taken.iter().map(|r| r.offset).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(
            buffer.consumed_position(&TopicPartition::new("t", 0)),
            Some(2)
        );
        let taken = buffer.take(10, |_| true, |tp, o| firsts.push((tp.partition, o)));
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
    }

    #[test]
    fn paused_partitions_keep_their_records() {
        let mut buffer = RecordBuffer::default();
        buffer.push(chunk(0, &[0, 1], 2));
        buffer.push(chunk(1, &[0], 1));
        let paused = TopicPartition::new("t", 0);
        let taken = buffer.take(10, |tp| tp != &paused, |_, _| {});
        assert_eq!(taken.len(), 1);
        assert!(buffer.contains(&paused));
        assert!(buffer.bytes() > 0);
        buffer.remove(&paused);
        assert!(buffer.is_empty());
        assert_eq!(buffer.bytes(), 0);
    }
}
