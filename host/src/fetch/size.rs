//! How much one Fetch answer may carry.
//!
//! One fetch is in flight per broker, so a broker's rate is at most one answer per round
//! trip. Near the broker (a round trip of a few milliseconds at most) small answers cost little
//! and keep the consumer lean: it holds about two at its peak. Across a slow link they set the
//! pace: at 20 ms round trips, 2 MiB answers read at 0.39-0.78x franz-go's rate, where 4 MiB
//! matched it on 4 partitions and 50 MiB beat it on 100 (BENCHMARKS.md, "Across a slow link").
//! So unless `fetch_max_bytes` is set, an answer may carry [`FOLLOWS_LINK_MIN`], plus what the
//! consumer takes at [`LINK_RATE`] in the part of the round trip to its leader beyond [`NEAR`],
//! up to [`FOLLOWS_LINK_MAX`]. The round trip is the fetch connection's ApiVersions handshake:
//! a small request the broker answers at once. A JVM broker on loopback answered it in 1-7 ms
//! here (1.1-1.9 ms on fetch connections), which is why growth starts at [`NEAR`]: near the
//! broker the consumer stays as lean as with a fixed 2 MiB.

use std::time::Duration;

/// The least an answer may carry when its size follows the link (the fixed default before):
/// near the broker, every answer asks for this.
pub const FOLLOWS_LINK_MIN: i32 = 2 * 1024 * 1024;
/// The most an answer may carry when its size follows the link: what Kafka's own clients ask
/// for (`fetch.max.bytes`).
pub const FOLLOWS_LINK_MAX: i32 = 50 * 1024 * 1024;
/// Bytes per second the consumer takes records at, about: 1 GiB/s (1.2 GB/s on 1 KB records
/// in BENCHMARKS.md). Answers grow by this rate times the round trip beyond [`NEAR`], so
/// that one keeps the consumer busy while the next travels.
pub const LINK_RATE: f64 = 1024.0 * 1024.0 * 1024.0;
/// Round trips up to this are near the broker: answers stay at [`FOLLOWS_LINK_MIN`].
pub const NEAR: Duration = Duration::from_millis(5);

/// How much one Fetch answer may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchSize {
    /// Always this much (`consumer.fetch_max_bytes`, Kafka's `fetch.max.bytes`).
    Fixed(i32),
    /// [`FOLLOWS_LINK_MIN`] plus [`LINK_RATE`] times the round trip beyond [`NEAR`], at most
    /// [`FOLLOWS_LINK_MAX`].
    FollowsLink,
}

impl FetchSize {
    /// The most any answer may carry.
    pub fn ceiling(self) -> i32 {
        match self {
            FetchSize::Fixed(bytes) => bytes,
            FetchSize::FollowsLink => FOLLOWS_LINK_MAX,
        }
    }

    /// What to ask for across a link with this round trip.
    pub fn for_round_trip(self, round_trip: Duration) -> i32 {
        match self {
            FetchSize::Fixed(bytes) => bytes,
            FetchSize::FollowsLink => {
                let beyond = round_trip.saturating_sub(NEAR).as_secs_f64();
                let bytes = f64::from(FOLLOWS_LINK_MIN) + LINK_RATE * beyond;
                bytes.min(f64::from(FOLLOWS_LINK_MAX)) as i32
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: i32 = 1024 * 1024;

    #[test]
    fn near_the_broker_answers_stay_at_the_least() {
        for micros in [0, 100, 1_000, 1_900, 4_000, 5_000] {
            let round_trip = Duration::from_micros(micros);
            assert_eq!(
                FetchSize::FollowsLink.for_round_trip(round_trip),
                FOLLOWS_LINK_MIN,
                "{round_trip:?}"
            );
        }
    }

    #[test]
    fn across_slower_links_answers_grow_with_the_round_trip_up_to_the_most() {
        let size = |ms| FetchSize::FollowsLink.for_round_trip(Duration::from_millis(ms));
        assert_eq!(size(10), 2_097_152 + 5_368_709, "2 MiB + 5 ms at 1 GiB/s");
        assert_eq!(size(20), 2_097_152 + 16_106_127, "2 MiB + 15 ms at 1 GiB/s");
        assert!(size(6) > FOLLOWS_LINK_MIN && size(20) > size(10));
        assert_eq!(size(55), FOLLOWS_LINK_MAX);
        assert_eq!(size(100), FOLLOWS_LINK_MAX);
        assert_eq!(size(5_000), FOLLOWS_LINK_MAX);
        assert_eq!(FetchSize::FollowsLink.ceiling(), FOLLOWS_LINK_MAX);
    }

    #[test]
    fn a_fixed_size_ignores_the_link() {
        let fixed = FetchSize::Fixed(3 * MIB);
        assert_eq!(fixed.for_round_trip(Duration::ZERO), 3 * MIB);
        assert_eq!(fixed.for_round_trip(Duration::from_millis(80)), 3 * MIB);
        assert_eq!(fixed.ceiling(), 3 * MIB);
    }
}
