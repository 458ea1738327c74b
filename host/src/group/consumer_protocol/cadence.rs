//! When the next beat goes out: at the interval the broker names, or quickly for a while
//! after the member joins.
//!
//! Why quickly after a join: the broker gives a joiner at once only the partitions nobody
//! owns. Each partition another member must give up reaches the joiner at the first beat
//! of the joiner's after that member's beat acknowledges the revoke. That owner hears of the
//! revoke at its own next beat, anywhere in its interval (5 s by default), and the partition
//! is consumed by nobody from then until the joiner's next beat: with beats at the interval
//! alone, up to a whole interval more. Beating every [`QUICK_BEAT`] for one interval after
//! joining (plus [`QUICK_MARGIN`] for the owners' revokes, which commit first) cuts that
//! stop to a quick beat or less. The cost is bounded: about 24 beats more per join at Kafka's
//! default interval. A member that only gives partitions up needs none of this: it
//! acknowledges its revoke with a beat at once.

use std::time::{Duration, Instant};

/// The pace of a joiner's beats while partitions may still be coming to it.
pub const QUICK_BEAT: Duration = Duration::from_millis(250);
/// How much longer than one interval the quick beats go on: the owners' revokes commit
/// before they acknowledge.
pub const QUICK_MARGIN: Duration = Duration::from_secs(1);

/// The member's beat schedule.
#[derive(Debug)]
pub struct Cadence {
    /// The interval the broker names (`group.consumer.heartbeat.interval.ms`).
    interval: Duration,
    /// Until when beats come every [`QUICK_BEAT`] (set when the member joins).
    quick_until: Option<Instant>,
}

impl Cadence {
    /// Beats at `interval` (the configured one, until the broker names its own).
    pub fn new(interval: Duration) -> Cadence {
        Cadence {
            interval,
            quick_until: None,
        }
    }

    /// The interval the broker named in its last answer.
    pub fn set_interval(&mut self, interval: Duration) {
        self.interval = interval;
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The member joined (epoch 0 answered with a positive epoch) at `now`: beats come
    /// quickly for one interval and the margin.
    pub fn joined(&mut self, now: Instant) {
        self.quick_until = Some(now + self.interval + QUICK_MARGIN);
    }

    /// How long after an answer at `now` the next beat goes out.
    pub fn next(&self, now: Instant) -> Duration {
        match self.quick_until {
            Some(until) if now < until => QUICK_BEAT.min(self.interval),
            _ => self.interval,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(5);

    #[test]
    fn before_joining_beats_come_at_the_interval() {
        let cadence = Cadence::new(INTERVAL);
        assert_eq!(cadence.next(Instant::now()), INTERVAL);
    }

    #[test]
    fn after_joining_beats_are_quick_for_one_interval_and_the_margin_then_regular() {
        let joined = Instant::now();
        let mut cadence = Cadence::new(INTERVAL);
        cadence.joined(joined);
        let mut now = joined;
        let mut quick = 0;
        while cadence.next(now) == QUICK_BEAT {
            quick += 1;
            now += QUICK_BEAT;
            assert!(quick < 1000, "quick beats never end");
        }
        // 5 s + 1 s at 250 ms: 24 quick beats, then the interval again.
        assert_eq!(quick, 24);
        assert_eq!(now, joined + INTERVAL + QUICK_MARGIN);
        assert_eq!(cadence.next(now), INTERVAL);
        assert_eq!(cadence.next(now + INTERVAL * 10), INTERVAL);
    }

    #[test]
    fn the_window_follows_the_interval_the_broker_names() {
        let joined = Instant::now();
        let mut cadence = Cadence::new(Duration::from_secs(3));
        cadence.set_interval(Duration::from_secs(8));
        cadence.joined(joined);
        assert_eq!(
            cadence.next(joined + Duration::from_millis(8_900)),
            QUICK_BEAT
        );
        assert_eq!(
            cadence.next(joined + Duration::from_millis(9_000)),
            Duration::from_secs(8)
        );
    }

    #[test]
    fn an_interval_shorter_than_a_quick_beat_is_kept() {
        let joined = Instant::now();
        let mut cadence = Cadence::new(Duration::from_millis(100));
        cadence.joined(joined);
        assert_eq!(cadence.next(joined), Duration::from_millis(100));
    }

    #[test]
    fn a_second_join_starts_a_new_window() {
        let first = Instant::now();
        let mut cadence = Cadence::new(INTERVAL);
        cadence.joined(first);
        let later = first + Duration::from_secs(60);
        assert_eq!(cadence.next(later), INTERVAL);
        cadence.joined(later);
        assert_eq!(cadence.next(later + Duration::from_secs(1)), QUICK_BEAT);
    }
}
