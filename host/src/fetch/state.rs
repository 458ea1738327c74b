//! What the consumer handle and the driver share: the partitions' states, the record buffer,
//! the errors not yet handed out, the delivery book and the counters, behind one lock, with
//! the two wake-ups between them. Below both, so neither imports the other for it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::histogram::Histogram;

use super::buffer::RecordBuffer;
use super::delivery::Delivery;
use super::error::{ConsumerError, PartitionError};
use super::partition::{Partitions, Stamp};

/// Counters, for tests, logs, metrics and benchmarks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FetchStats {
    pub fetch_requests: u64,
    /// How long answered Fetch requests took, long-poll wait included.
    pub fetch_latency: Histogram,
    /// Record bytes the answers carried (as on the wire, before decompression).
    pub fetch_record_bytes: u64,
    /// The same, per broker that answered (a leader, or a replica it named: KIP-392).
    pub fetch_record_bytes_by_broker: BTreeMap<i32, u64>,
    /// What the last answered Fetch request asked for at most (`max_bytes`).
    pub fetch_max_bytes: i32,
    /// Resets by why and who decided (the policy, or a seek), and how they ended.
    pub resets: BTreeMap<ResetKind, u64>,
    pub incremental_fetches: u64,
    pub failed_fetches: u64,
    /// Answers (per partition) dropped because the partition had moved.
    pub stale_dropped: u64,
    pub out_of_range: u64,
    /// Positions checked against a new leader with OffsetForLeaderEpoch (KIP-320).
    pub validations: u64,
    /// Positions beyond the end of a diverged log (KIP-320 truncation detection), found by a
    /// validation or by a fetch's diverging-epoch answer.
    pub truncations: u64,
    pub resets_resolved: u64,
    pub reset_retries: u64,
    /// The most bytes the record buffer held at once.
    pub buffer_bytes_peak: usize,
    /// The bytes it held when this snapshot was taken.
    pub buffer_bytes: usize,
}

/// One kind of reset, for counting.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ResetKind {
    /// `no_committed_offset`, `out_of_range`, `log_truncated`, or `seek` (the application's).
    pub reason: &'static str,
    /// The reset policy's name; `seek` for the application's.
    pub policy: String,
    /// `resolved` or `failed` (the partition stopped).
    pub outcome: &'static str,
}

/// State shared by the consumer handle and the driver.
#[derive(Debug, Default)]
pub struct FetchState {
    pub partitions: Partitions,
    pub buffer: RecordBuffer,
    /// Partition and topic errors not yet handed to the user.
    pub errors: VecDeque<ConsumerError>,
    pub closed: bool,
    pub stats: FetchStats,
    /// Records in hand and the application's polls (what commits may cover).
    pub delivery: Delivery,
}

#[derive(Debug, Default)]
pub struct Shared {
    state: Mutex<FetchState>,
    /// Something changed that may let the driver send a request (seek, resume, drained buffer).
    pub driver_wake: Notify,
    /// Records or errors arrived, or the consumer closed.
    pub records_ready: Notify,
}

impl FetchState {
    /// Stops the partition `error` names for good and queues `error` for the user, if the
    /// partition is still under `stamp` (an answer for a partition since seeked or revoked
    /// stops nothing). Returns whether it stopped.
    pub fn stop_partition(&mut self, stamp: Stamp, error: PartitionError) -> bool {
        let stopped = self.partitions.fail(error.partition(), stamp);
        if stopped {
            self.errors.push_back(error.into());
        }
        stopped
    }
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, FetchState> {
        self.state.lock().expect("fetch state lock poisoned")
    }
}
