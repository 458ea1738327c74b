//! The per-partition state machine.
//!
//! ```text
//!              assign                       committed offset known
//!   (none) ───────────► AwaitingCommitted ─────────────────────────► Fetching { position }
//!     │                        │ no committed offset                   ▲   │ OFFSET_OUT_OF_RANGE
//!     │ assign with a reset    ▼                                       │   ▼
//!     └──────────────────► AwaitingReset { cause } ──── resolved ──────┘ AwaitingReset
//!                                  │ policy refuses / fails
//!                                  ▼
//!                               Failed ──── seek ────► Fetching
//! ```
//! Any state: `seek` -> `Fetching`, `seek_to_*` -> `AwaitingReset`, revoke -> removed.
//! Pausing is a flag beside the state: a paused partition keeps its state and is not fetched.
//!
//! Invariant: every move that does not come from the partition's own fetch progress (assign,
//! seek, reset, out of range, truncation, resolved reset) gives the partition a new [`Stamp`]
//! from one counter that only grows.
//!
//! KIP-320: beside its position a partition keeps the leader epoch of the record before it
//! (`position_epoch`: from fetched batches, or the committed offset's epoch) and the leader
//! epoch its position was last checked against (`validated_leader_epoch`: the leader whose
//! answer moved it, or that answered a validation).
//! - A `Fetching` partition whose position has an epoch but was not checked against the
//!   current leader (a new leader, or a committed offset just loaded) is validated before it
//!   is fetched again ([`Partition::needs_validation`]): OffsetForLeaderEpoch asks the leader
//!   where the position's epoch ends in its log ([`Partitions::validated`]).
//! - Every fetch also carries the position's epoch as its last fetched epoch; a leader that
//!   checks it answers with the end of that epoch instead of records ([`Partitions::truncated`]).
//!
//! Either way, an epoch that ends below the position means the log was truncated under us
//! (an unclean election): the partition goes to the reset policy with its own reason. A seek
//! or a reset forgets both epochs.
//!
//! A fetch, validation or reset answer carries the stamp it was asked under and is applied
//! only if the stamp (and for fetches and validations the position) still match; a revoked
//! and re-assigned partition never matches an answer from before the revoke.
//!
//! Three other counters are called epochs and keep that word: the leader epoch (KIP-320, an
//! `i32` from the broker: `leader_epoch`, `position_epoch`), the fetch session's epoch
//! (`session_epoch`, KIP-227) and the consumer protocol's member epoch (`member_epoch`,
//! KIP-848; the classic protocol's `generation`). A stamp is ours alone and never sent.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::policy::ResetReason;

use super::offsets::OffsetSpec;
use super::TopicPartition;

/// Which life of a partition an answer belongs to: the partition takes a new stamp on every
/// move from outside its own fetch progress, and an answer asked under an older stamp is
/// stale (see the module's invariant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp(pub(super) u64);

/// Why a partition is waiting for a reset: a policy decision, or an explicit target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetCause {
    /// Ask the reset policy.
    Policy(ResetReason),
    /// The user asked for this (seek to beginning / end / a timestamp).
    To(OffsetSpec),
}

/// A group's committed offset for a partition, with the leader epoch it was committed under
/// when the committer said (KIP-320).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: Option<i32>,
}

/// Where a newly assigned partition starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// This offset.
    Offset(i64),
    /// Wait for the group's committed offset ([`Partitions::committed_offset`]).
    Committed,
    /// Ask the reset policy (no committed offset).
    Reset,
    /// The start, the end, or the first record at or after a time.
    At(OffsetSpec),
}

/// A partition's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionState {
    AwaitingCommitted,
    AwaitingReset {
        cause: ResetCause,
    },
    /// Fetching; `position` is the next offset to fetch.
    Fetching {
        position: i64,
    },
    /// Stopped by an error that was handed to the user; a seek restarts it.
    Failed,
}

/// One assigned partition.
#[derive(Debug, Clone)]
pub struct Partition {
    pub state: PartitionState,
    pub stamp: Stamp,
    pub paused: bool,
    /// The committed offset the group reported, for the reset policy's context.
    pub committed: Option<i64>,
    /// The leader epoch of the record before the position, when known (KIP-320).
    pub position_epoch: Option<i32>,
    /// The leader epoch whose leader last answered for this position (a fetch that moved it,
    /// or a validation); `None` after any other move.
    pub validated_leader_epoch: Option<i32>,
    /// The end of what the consumer may read (high watermark, or last stable offset under
    /// read_committed) as of the last fetch answer; `None` before the first.
    pub readable_end: Option<i64>,
    /// Failed reset or validation attempts in a row, and when the next may start.
    pub attempts: u32,
    pub retry_at: Option<Instant>,
    /// The replica the leader asked this consumer to fetch from (KIP-392), until when.
    pub read_replica: Option<ReadReplica>,
}

/// A replica a leader named for fetching (`preferred_read_replica`): used until `until`
/// (the metadata max age, as the Java client), or until it answers with any error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadReplica {
    pub broker: i32,
    pub until: Instant,
}

impl Partition {
    /// True when the position must be checked against the leader of `current_leader_epoch`
    /// (from the metadata; -1: unknown) before the next fetch: it has an epoch, and no leader
    /// that recent has answered for it yet.
    pub fn needs_validation(&self, current_leader_epoch: i32) -> bool {
        matches!(self.state, PartitionState::Fetching { .. })
            && self.position_epoch.is_some()
            && current_leader_epoch >= 0
            && self
                .validated_leader_epoch
                .is_none_or(|validated| validated < current_leader_epoch)
    }
}

/// The assigned partitions.
#[derive(Debug, Default)]
pub struct Partitions {
    map: BTreeMap<TopicPartition, Partition>,
    last_stamp: u64,
}

impl Partitions {
    fn next_stamp(&mut self) -> Stamp {
        self.last_stamp += 1;
        Stamp(self.last_stamp)
    }

    /// Adds a partition (replacing any earlier entry, with a new stamp).
    pub fn assign(&mut self, tp: TopicPartition, start: StartAt) {
        let state = match start {
            StartAt::Offset(position) => PartitionState::Fetching { position },
            StartAt::Committed => PartitionState::AwaitingCommitted,
            StartAt::Reset => PartitionState::AwaitingReset {
                cause: ResetCause::Policy(ResetReason::NoCommittedOffset),
            },
            StartAt::At(spec) => PartitionState::AwaitingReset {
                cause: ResetCause::To(spec),
            },
        };
        let stamp = self.next_stamp();
        self.map.insert(
            tp,
            Partition {
                state,
                stamp,
                paused: false,
                committed: None,
                position_epoch: None,
                validated_leader_epoch: None,
                readable_end: None,
                attempts: 0,
                retry_at: None,
                read_replica: None,
            },
        );
    }

    /// Removes a partition; answers still in flight for it find nothing to apply to.
    pub fn revoke(&mut self, tp: &TopicPartition) -> bool {
        self.map.remove(tp).is_some()
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<&Partition> {
        self.map.get(tp)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&TopicPartition, &Partition)> {
        self.map.iter()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Moves an external transition: new state, new stamp, reset bookkeeping cleared.
    fn moved(&mut self, tp: &TopicPartition, state: PartitionState) -> bool {
        let stamp = self.next_stamp();
        match self.map.get_mut(tp) {
            Some(partition) => {
                partition.state = state;
                partition.stamp = stamp;
                partition.position_epoch = None;
                partition.validated_leader_epoch = None;
                partition.attempts = 0;
                partition.retry_at = None;
                true
            }
            None => false,
        }
    }

    /// The user moves the partition to `offset`.
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) -> bool {
        self.moved(tp, PartitionState::Fetching { position: offset })
    }

    /// The partition is to be reset (seek to beginning/end/timestamp, or a policy decision).
    pub fn reset(&mut self, tp: &TopicPartition, cause: ResetCause) -> bool {
        self.moved(tp, PartitionState::AwaitingReset { cause })
    }

    /// The group's committed offset arrived (with the leader epoch it was committed under,
    /// when the committer said): fetch from it, or reset if there is none.
    pub fn committed_offset(
        &mut self,
        tp: &TopicPartition,
        committed: Option<CommittedOffset>,
    ) -> bool {
        let leader_epoch = committed.and_then(|c| c.leader_epoch);
        let committed = committed.map(|c| c.offset);
        if !matches!(self.state(tp), Some(PartitionState::AwaitingCommitted)) {
            return false;
        }
        let state = match committed {
            Some(position) => PartitionState::Fetching { position },
            None => PartitionState::AwaitingReset {
                cause: ResetCause::Policy(ResetReason::NoCommittedOffset),
            },
        };
        let moved = self.moved(tp, state);
        if let Some(partition) = self.map.get_mut(tp) {
            partition.committed = committed;
            partition.position_epoch = leader_epoch;
        }
        moved
    }

    pub fn set_paused(&mut self, tp: &TopicPartition, paused: bool) -> bool {
        match self.map.get_mut(tp) {
            Some(partition) => {
                partition.paused = paused;
                true
            }
            None => false,
        }
    }

    pub fn state(&self, tp: &TopicPartition) -> Option<PartitionState> {
        self.map.get(tp).map(|p| p.state)
    }

    /// Is `tp` still fetching at `position` under `stamp`? (The stale-answer guard.)
    pub fn is_current_fetch(&self, tp: &TopicPartition, stamp: Stamp, position: i64) -> bool {
        self.map
            .get(tp)
            .is_some_and(|p| p.stamp == stamp && p.state == PartitionState::Fetching { position })
    }

    /// Is `tp` still waiting for the reset asked under `stamp`?
    pub fn is_current_reset(&self, tp: &TopicPartition, stamp: Stamp) -> bool {
        self.map.get(tp).is_some_and(|p| {
            p.stamp == stamp && matches!(p.state, PartitionState::AwaitingReset { .. })
        })
    }

    /// The fetch loop's own progress: from `from` to `to` under the same stamp, answered by
    /// the leader of `leader_epoch` (-1: unknown); `to_epoch` is the leader epoch of the record
    /// before `to`.
    pub fn advance(
        &mut self,
        tp: &TopicPartition,
        stamp: Stamp,
        from: i64,
        to: i64,
        to_epoch: Option<i32>,
        leader_epoch: i32,
    ) -> bool {
        if !self.is_current_fetch(tp, stamp, from) {
            return false;
        }
        let partition = self.map.get_mut(tp).expect("checked above");
        partition.state = PartitionState::Fetching {
            position: to.max(from),
        };
        if to > from {
            partition.position_epoch = to_epoch.or(partition.position_epoch);
        }
        if leader_epoch >= 0 {
            partition.validated_leader_epoch = Some(leader_epoch);
        }
        true
    }

    /// The leader of `leader_epoch` answered OffsetForLeaderEpoch for the position's epoch
    /// (asked at `position` under `stamp`): that epoch ends at `end_offset` in its log
    /// (`None`: the leader knows no epoch that old, so it cannot say; the position stands and a
    /// fetch finds out whether it is still in the log). Below the position, the log was
    /// truncated: the partition goes to the reset policy. Returns true for a truncation.
    pub fn validated(
        &mut self,
        tp: &TopicPartition,
        stamp: Stamp,
        position: i64,
        leader_epoch: i32,
        end_offset: Option<i64>,
    ) -> bool {
        if !self.is_current_fetch(tp, stamp, position) {
            return false;
        }
        if let Some(diverged_at) = end_offset.filter(|end| *end < position) {
            return self.reset(
                tp,
                ResetCause::Policy(ResetReason::LogTruncated {
                    offset: position,
                    diverged_at,
                }),
            );
        }
        let partition = self.map.get_mut(tp).expect("checked above");
        partition.validated_leader_epoch = Some(leader_epoch);
        partition.attempts = 0;
        partition.retry_at = None;
        false
    }

    /// A validation asked at `position` under `stamp` failed for a reason worth retrying: try
    /// again at `retry_at`. Returns the attempts so far.
    pub fn validation_retry(
        &mut self,
        tp: &TopicPartition,
        stamp: Stamp,
        position: i64,
        retry_at: Instant,
    ) -> Option<u32> {
        if !self.is_current_fetch(tp, stamp, position) {
            return None;
        }
        let partition = self.map.get_mut(tp).expect("checked above");
        partition.attempts += 1;
        partition.retry_at = Some(retry_at);
        Some(partition.attempts)
    }

    /// The leader's log for the position's epoch ends at `end_offset` (a diverging-epoch
    /// answer to the fetch at `position` under `stamp`). Below the position, the log was
    /// truncated: the partition goes to the reset policy. At or above it, nothing read was
    /// lost: the position stays and takes `leader_epoch` as its epoch. Returns true for a
    /// truncation.
    pub fn truncated(
        &mut self,
        tp: &TopicPartition,
        stamp: Stamp,
        position: i64,
        leader_epoch: i32,
        end_offset: i64,
    ) -> bool {
        if !self.is_current_fetch(tp, stamp, position) {
            return false;
        }
        if end_offset >= position {
            let partition = self.map.get_mut(tp).expect("checked above");
            partition.position_epoch = Some(leader_epoch);
            return false;
        }
        self.reset(
            tp,
            ResetCause::Policy(ResetReason::LogTruncated {
                offset: position,
                diverged_at: end_offset,
            }),
        )
    }

    /// A fetch asked under `stamp` reported where the readable log ends (the log's end does
    /// not depend on the position, so any answer under the current stamp counts).
    pub fn set_readable_end(&mut self, tp: &TopicPartition, stamp: Stamp, end: i64) {
        if let Some(partition) = self.map.get_mut(tp).filter(|p| p.stamp == stamp) {
            partition.readable_end = Some(end);
        }
    }

    /// The leader named a replica to fetch this partition from.
    pub fn set_read_replica(&mut self, tp: &TopicPartition, stamp: Stamp, replica: ReadReplica) {
        if let Some(partition) = self.map.get_mut(tp).filter(|p| p.stamp == stamp) {
            partition.read_replica = Some(replica);
        }
    }

    /// Every partition fetched from `broker` goes back to its leader (the replica failed).
    pub fn clear_read_replicas_on(&mut self, broker: i32) -> usize {
        let mut cleared = 0;
        for partition in self.map.values_mut() {
            if partition.read_replica.is_some_and(|r| r.broker == broker) {
                partition.read_replica = None;
                cleared += 1;
            }
        }
        cleared
    }

    /// Back to the leader; returns the replica it was fetching from, if any.
    pub fn clear_read_replica(&mut self, tp: &TopicPartition) -> Option<i32> {
        self.map
            .get_mut(tp)
            .and_then(|p| p.read_replica.take())
            .map(|r| r.broker)
    }

    /// The broker said `position` is out of range.
    pub fn out_of_range(&mut self, tp: &TopicPartition, stamp: Stamp, position: i64) -> bool {
        self.is_current_fetch(tp, stamp, position)
            && self.reset(
                tp,
                ResetCause::Policy(ResetReason::OutOfRange { offset: position }),
            )
    }

    /// A reset asked under `stamp` resolved to `offset`.
    pub fn reset_resolved(&mut self, tp: &TopicPartition, stamp: Stamp, offset: i64) -> bool {
        self.is_current_reset(tp, stamp)
            && self.moved(tp, PartitionState::Fetching { position: offset })
    }

    /// A reset asked under `stamp` failed for a reason worth retrying: try again at `retry_at`.
    pub fn reset_retry(
        &mut self,
        tp: &TopicPartition,
        stamp: Stamp,
        retry_at: Instant,
    ) -> Option<u32> {
        if !self.is_current_reset(tp, stamp) {
            return None;
        }
        let partition = self.map.get_mut(tp).expect("checked above");
        partition.attempts += 1;
        partition.retry_at = Some(retry_at);
        Some(partition.attempts)
    }

    /// The partition stops with an error (handed to the user); applied only under `stamp`.
    pub fn fail(&mut self, tp: &TopicPartition, stamp: Stamp) -> bool {
        match self.map.get_mut(tp) {
            Some(partition) if partition.stamp == stamp => {
                partition.state = PartitionState::Failed;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("t", p)
    }

    #[test]
    fn a_seek_makes_an_earlier_fetch_answer_stale() {
        let mut partitions = Partitions::default();
        partitions.assign(tp(0), StartAt::Offset(10));
        let stamp = partitions.get(&tp(0)).unwrap().stamp;
        assert!(partitions.is_current_fetch(&tp(0), stamp, 10));
        // The user seeks back to the same offset: same position, new stamp.
        partitions.seek(&tp(0), 10);
        assert!(!partitions.is_current_fetch(&tp(0), stamp, 10));
        assert!(
            !partitions.out_of_range(&tp(0), stamp, 10),
            "a stale OOR does nothing"
        );
        assert_eq!(
            partitions.state(&tp(0)),
            Some(PartitionState::Fetching { position: 10 })
        );
    }

    #[test]
    fn out_of_range_then_reset_then_fetching() {
        let mut partitions = Partitions::default();
        partitions.assign(tp(0), StartAt::Offset(5));
        let stamp = partitions.get(&tp(0)).unwrap().stamp;
        assert!(partitions.advance(&tp(0), stamp, 5, 9, Some(2), 2));
        assert!(
            !partitions.advance(&tp(0), stamp, 5, 12, Some(2), 2),
            "second answer for 5 is stale"
        );
        assert!(partitions.out_of_range(&tp(0), stamp, 9));
        let reset_stamp = partitions.get(&tp(0)).unwrap().stamp;
        assert!(reset_stamp > stamp);
        assert_eq!(
            partitions.state(&tp(0)),
            Some(PartitionState::AwaitingReset {
                cause: ResetCause::Policy(ResetReason::OutOfRange { offset: 9 })
            })
        );
        assert!(partitions
            .reset_retry(&tp(0), reset_stamp, Instant::now())
            .is_some());
        assert!(partitions.reset_resolved(&tp(0), reset_stamp, 100));
        assert_eq!(
            partitions.state(&tp(0)),
            Some(PartitionState::Fetching { position: 100 })
        );
        assert!(
            !partitions.reset_resolved(&tp(0), reset_stamp, 200),
            "applied once"
        );
    }

    #[test]
    fn a_reset_racing_a_revoke_does_nothing() {
        let mut partitions = Partitions::default();
        partitions.assign(tp(0), StartAt::Reset);
        let stamp = partitions.get(&tp(0)).unwrap().stamp;
        partitions.revoke(&tp(0));
        assert!(!partitions.reset_resolved(&tp(0), stamp, 7));
        // Re-assigned before the old answer arrives: still a different stamp.
        partitions.assign(tp(0), StartAt::Reset);
        assert!(!partitions.reset_resolved(&tp(0), stamp, 7));
        assert!(matches!(
            partitions.state(&tp(0)),
            Some(PartitionState::AwaitingReset { .. })
        ));
    }

    #[test]
    fn committed_offsets_start_fetching_or_ask_the_policy() {
        let mut partitions = Partitions::default();
        partitions.assign(tp(0), StartAt::Committed);
        partitions.assign(tp(1), StartAt::Committed);
        let at = |offset| {
            Some(CommittedOffset {
                offset,
                leader_epoch: Some(3),
            })
        };
        assert!(partitions.committed_offset(&tp(0), at(42)));
        assert!(partitions.committed_offset(&tp(1), None));
        assert_eq!(partitions.get(&tp(0)).unwrap().position_epoch, Some(3));
        assert_eq!(
            partitions.state(&tp(0)),
            Some(PartitionState::Fetching { position: 42 })
        );
        assert_eq!(
            partitions.state(&tp(1)),
            Some(PartitionState::AwaitingReset {
                cause: ResetCause::Policy(ResetReason::NoCommittedOffset)
            })
        );
        assert!(
            !partitions.committed_offset(&tp(0), at(1)),
            "only while awaiting it"
        );
    }

    #[test]
    fn a_position_with_an_epoch_is_validated_once_per_new_leader() {
        let mut partitions = Partitions::default();
        partitions.assign(tp(0), StartAt::Committed);
        partitions.committed_offset(
            &tp(0),
            Some(CommittedOffset {
                offset: 200,
                leader_epoch: Some(4),
            }),
        );
        let stamp = partitions.get(&tp(0)).unwrap().stamp;
        // A committed offset with an epoch is checked before the first fetch.
        assert!(partitions.get(&tp(0)).unwrap().needs_validation(4));
        assert!(!partitions.validated(&tp(0), stamp, 200, 4, Some(250)));
        assert!(!partitions.get(&tp(0)).unwrap().needs_validation(4));
        // A newer leader checks it again; an older metadata epoch does not.
        assert!(partitions.get(&tp(0)).unwrap().needs_validation(5));
        assert!(!partitions.get(&tp(0)).unwrap().needs_validation(3));
        // A fetch answered by the leader of epoch 5 is as good as a validation.
        assert!(partitions.advance(&tp(0), stamp, 200, 210, Some(5), 5));
        assert!(!partitions.get(&tp(0)).unwrap().needs_validation(5));
        // The leader of epoch 6 says epoch 5 ended at 205: the log was truncated below us.
        assert!(partitions.validated(&tp(0), stamp, 210, 6, Some(205)));
        assert_eq!(
            partitions.state(&tp(0)),
            Some(PartitionState::AwaitingReset {
                cause: ResetCause::Policy(ResetReason::LogTruncated {
                    offset: 210,
                    diverged_at: 205
                })
            })
        );
        // A position without an epoch (a seek) is never validated.
        partitions.seek(&tp(0), 7);
        assert!(!partitions.get(&tp(0)).unwrap().needs_validation(9));
    }

    #[test]
    fn a_leader_that_knows_no_such_epoch_leaves_the_position() {
        let mut partitions = Partitions::default();
        partitions.assign(tp(0), StartAt::Offset(0));
        let stamp = partitions.get(&tp(0)).unwrap().stamp;
        assert!(partitions.advance(&tp(0), stamp, 0, 50, Some(1), 1));
        assert!(!partitions.validated(&tp(0), stamp, 50, 2, None));
        assert_eq!(
            partitions.state(&tp(0)),
            Some(PartitionState::Fetching { position: 50 })
        );
        assert!(
            !partitions.validated(&tp(0), stamp, 40, 2, Some(10)),
            "an answer for another position is stale"
        );
    }

    #[test]
    fn a_diverged_log_below_the_position_is_a_truncation_for_the_policy() {
        let mut partitions = Partitions::default();
        partitions.assign(tp(0), StartAt::Offset(0));
        let stamp = partitions.get(&tp(0)).unwrap().stamp;
        assert!(partitions.advance(&tp(0), stamp, 0, 200, Some(4), 4));
        assert_eq!(partitions.get(&tp(0)).unwrap().position_epoch, Some(4));
        // The new leader's log for epoch 4 ends at 250: nothing read was lost.
        assert!(!partitions.truncated(&tp(0), stamp, 200, 4, 250));
        assert_eq!(
            partitions.state(&tp(0)),
            Some(PartitionState::Fetching { position: 200 })
        );
        // It ends at 120: records 120..200 were replaced.
        assert!(partitions.truncated(&tp(0), stamp, 200, 4, 120));
        assert_eq!(
            partitions.state(&tp(0)),
            Some(PartitionState::AwaitingReset {
                cause: ResetCause::Policy(ResetReason::LogTruncated {
                    offset: 200,
                    diverged_at: 120
                })
            })
        );
        assert_eq!(partitions.get(&tp(0)).unwrap().position_epoch, None);
        assert!(
            !partitions.truncated(&tp(0), stamp, 200, 4, 120),
            "a stale answer does nothing"
        );
    }
}
