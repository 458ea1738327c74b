//! `read_committed`: hiding the batches of aborted transactions.
//!
//! With isolation level read_committed the broker returns data only up to the last stable
//! offset, plus the list of transactions that were aborted in the returned range: (producer id,
//! first offset). Walking the batches in order, a producer becomes "aborted" once the walk
//! reaches its transaction's first offset; its transactional batches are skipped until its
//! control batch (the ABORT marker) ends the transaction. Control batches are never shown; they
//! and the skipped batches still move the position (the decoder takes the next offset from
//! every batch header).

use std::collections::{BTreeSet, VecDeque};

use super::batch::BatchHeader;

/// The aborted transactions of one partition's fetch answer.
#[derive(Debug, Default)]
pub struct AbortedTransactions {
    /// (first offset, producer id), by first offset.
    upcoming: VecDeque<(i64, i64)>,
    /// Producers whose aborted transaction the walk is inside of.
    open: BTreeSet<i64>,
}

impl AbortedTransactions {
    /// `aborted` lists (producer id, first offset) in any order.
    pub fn new(aborted: impl IntoIterator<Item = (i64, i64)>) -> Self {
        let mut upcoming: Vec<(i64, i64)> = aborted
            .into_iter()
            .map(|(producer, first)| (first, producer))
            .collect();
        upcoming.sort_unstable();
        Self {
            upcoming: upcoming.into(),
            open: BTreeSet::new(),
        }
    }

    /// Called for every batch in order; `true` means the batch belongs to an aborted
    /// transaction (or is a control batch) and must not be shown.
    pub fn skip(&mut self, batch: &BatchHeader) -> bool {
        while let Some(&(first, producer)) = self.upcoming.front() {
            if first > batch.last_offset() {
                break;
            }
            self.open.insert(producer);
            self.upcoming.pop_front();
        }
        if batch.control {
            // The marker that ends the producer's transaction (ABORT for an open one).
            self.open.remove(&batch.producer_id);
            return true;
        }
        batch.transactional && self.open.contains(&batch.producer_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(
        base: i64,
        count: i32,
        producer: i64,
        transactional: bool,
        control: bool,
    ) -> BatchHeader {
        BatchHeader {
            base_offset: base,
            last_offset_delta: count - 1,
            control,
            transactional,
            producer_id: producer,
            leader_epoch: 0,
            compression: 0,
            base_timestamp: 0,
            max_timestamp: 0,
            log_append_time: false,
        }
    }

    #[test]
    fn aborted_batches_are_skipped_until_their_marker() {
        // Producer 7 writes 0..2 and aborts (marker at 3); producer 8 commits 4..5 (marker 6);
        // producer 7 then writes 7..8 in a new transaction that commits (marker 9).
        let mut aborted = AbortedTransactions::new([(7, 0)]);
        let walk = [
            (header(0, 3, 7, true, false), true),
            (header(3, 1, 7, true, true), true),
            (header(4, 2, 8, true, false), false),
            (header(6, 1, 8, true, true), true),
            (header(7, 2, 7, true, false), false),
            (header(9, 1, 7, true, true), true),
        ];
        for (batch, skipped) in walk {
            assert_eq!(aborted.skip(&batch), skipped, "{batch:?}");
        }
    }

    #[test]
    fn interleaved_producers_only_hide_the_aborted_one() {
        let mut aborted = AbortedTransactions::new([(2, 5), (1, 1)]);
        assert!(
            !aborted.skip(&header(0, 1, 1, true, false)),
            "before its first offset"
        );
        assert!(aborted.skip(&header(1, 2, 1, true, false)));
        assert!(
            !aborted.skip(&header(3, 2, 3, true, false)),
            "another producer"
        );
        assert!(
            !aborted.skip(&header(5, 1, 9, false, false)),
            "not transactional"
        );
        assert!(
            aborted.skip(&header(6, 1, 2, true, false)),
            "producer 2 from offset 5"
        );
        assert!(aborted.skip(&header(7, 1, 1, true, true)), "marker for 1");
        assert!(
            !aborted.skip(&header(8, 1, 1, true, false)),
            "1's next transaction"
        );
        assert!(aborted.skip(&header(9, 1, 2, true, false)));
    }
}
