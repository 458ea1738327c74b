//! What a group member did, for `/metrics` and tests: commits and their latency, rebalances
//! and how long they took, partitions assigned, revoked and lost.

use std::time::Duration;

use crate::histogram::{Histogram, REBALANCE_SECONDS, REQUEST_SECONDS};

#[derive(Debug, Clone, PartialEq)]
pub struct GroupStats {
    /// OffsetCommit requests the broker accepted.
    pub commits: u64,
    /// OffsetCommit attempts that failed (each retry counts; see the log for why).
    pub commit_failures: u64,
    /// How long each OffsetCommit attempt took (coordinator lookup included).
    pub commit_latency: Histogram,
    /// Rebalances this member completed (a cooperative one counts once, both rounds).
    pub rebalances: u64,
    /// From the first JoinGroup of a rebalance to its assignment applied.
    pub rebalance_latency: Histogram,
    pub partitions_assigned: u64,
    pub partitions_revoked: u64,
    /// Partitions taken away without a revoke (the member was dropped from the group).
    pub partitions_lost: u64,
}

impl Default for GroupStats {
    fn default() -> Self {
        GroupStats {
            commits: 0,
            commit_failures: 0,
            commit_latency: Histogram::new(REQUEST_SECONDS),
            rebalances: 0,
            rebalance_latency: Histogram::new(REBALANCE_SECONDS),
            partitions_assigned: 0,
            partitions_revoked: 0,
            partitions_lost: 0,
        }
    }
}

impl GroupStats {
    pub fn commit_attempted(&mut self, took: Duration, succeeded: bool) {
        self.commit_latency.observe(took);
        if succeeded {
            self.commits += 1;
        } else {
            self.commit_failures += 1;
        }
    }

    pub fn rebalanced(&mut self, took: Duration) {
        self.rebalances += 1;
        self.rebalance_latency.observe(took);
    }
}
