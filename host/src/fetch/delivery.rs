//! What the application has finished with: the at-least-once bookkeeping behind every commit
//! the consumer makes on its own.
//!
//! The rule (the Java consumer's): records a `poll` returned are *in hand* until the
//! application comes back to `poll`, or says it is done with them
//! ([`Consumer::mark_processed`](super::Consumer::mark_processed), an explicit commit). A
//! partition's *finished position* is the offset of its first record in hand, or its position
//! when none is in hand. Auto-commit, the commit before a revoke, the commit on close and on a
//! max-poll-interval leave commit finished positions, so a crash at any moment re-delivers the
//! records in hand and never skips one.
//!
//! Invariants:
//! - A finished position is never above the position (a seek backwards lowers it).
//! - At most one entry per partition: the records of one poll come from at most one buffered
//!   chunk per partition, and the entries are cleared when the next poll starts.
//! - A poll that is still waiting counts as a live application for the max poll interval.

use std::time::{Duration, Instant};

use super::TopicPartition;

/// The records in hand, and when the application last polled.
#[derive(Debug, Default)]
pub struct Delivery {
    /// Per partition that got records in the last poll: the offset of the first of them.
    in_hand: Vec<(TopicPartition, i64)>,
    /// Polls in progress (a cancelled poll future leaves through its guard).
    polls_waiting: usize,
    last_poll: Option<Instant>,
}

impl Delivery {
    /// A poll starts: everything the previous polls returned is finished.
    pub fn poll_started(&mut self) {
        self.in_hand.clear();
        self.polls_waiting += 1;
        self.last_poll = Some(Instant::now());
    }

    /// A poll returned or was dropped.
    pub fn poll_ended(&mut self) {
        self.polls_waiting = self.polls_waiting.saturating_sub(1);
        self.last_poll = Some(Instant::now());
    }

    /// `poll` hands out records of `tp` starting at `first_offset`.
    pub fn handed_out(&mut self, tp: &TopicPartition, first_offset: i64) {
        if !self.in_hand.iter().any(|(held, _)| held == tp) {
            self.in_hand.push((tp.clone(), first_offset));
        }
    }

    /// The application is done with everything handed out so far.
    pub fn all_processed(&mut self) {
        self.in_hand.clear();
    }

    /// The partition left, or starts over: what was in hand no longer counts.
    pub fn forget(&mut self, tp: &TopicPartition) {
        self.in_hand.retain(|(held, _)| held != tp);
    }

    /// The finished position of a partition whose position is `position`.
    pub fn finished(&self, tp: &TopicPartition, position: i64) -> i64 {
        self.in_hand
            .iter()
            .find(|(held, _)| held == tp)
            .map_or(position, |(_, first)| (*first).min(position))
    }

    /// How long the application has not been polling (zero while a poll waits; `None`
    /// before the first poll).
    pub fn idle(&self) -> Option<Duration> {
        if self.polls_waiting > 0 {
            return Some(Duration::ZERO);
        }
        self.last_poll.map(|at| at.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("t", p)
    }

    #[test]
    fn records_are_finished_when_the_next_poll_starts() {
        let mut delivery = Delivery::default();
        delivery.poll_started();
        delivery.handed_out(&tp(0), 10);
        delivery.handed_out(&tp(0), 15);
        delivery.poll_ended();
        // Position 20 after handing out 10..20: only 10 is finished.
        assert_eq!(delivery.finished(&tp(0), 20), 10);
        assert_eq!(delivery.finished(&tp(1), 7), 7, "nothing in hand");
        delivery.poll_started();
        assert_eq!(delivery.finished(&tp(0), 20), 20);
    }

    #[test]
    fn processed_records_and_forgotten_partitions_are_not_in_hand() {
        let mut delivery = Delivery::default();
        delivery.poll_started();
        delivery.handed_out(&tp(0), 10);
        delivery.handed_out(&tp(1), 3);
        delivery.forget(&tp(1));
        assert_eq!(delivery.finished(&tp(1), 9), 9);
        assert_eq!(delivery.finished(&tp(0), 12), 10);
        delivery.all_processed();
        assert_eq!(delivery.finished(&tp(0), 12), 12);
    }

    #[test]
    fn a_seek_backwards_lowers_the_finished_position() {
        let mut delivery = Delivery::default();
        delivery.poll_started();
        delivery.handed_out(&tp(0), 10);
        assert_eq!(delivery.finished(&tp(0), 4), 4);
    }

    #[test]
    fn a_waiting_poll_is_not_idle() {
        let mut delivery = Delivery::default();
        assert_eq!(delivery.idle(), None);
        delivery.poll_started();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(delivery.idle(), Some(Duration::ZERO));
        delivery.poll_ended();
        std::thread::sleep(Duration::from_millis(5));
        assert!(delivery.idle().unwrap() >= Duration::from_millis(5));
    }
}
