//! Exponential backoff with jitter, shared by reconnects and request retries.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// `base * 2^(attempt-1)`, capped at `max`, then scaled by a random factor in [0.8, 1.2) so
/// that many clients that failed together do not retry together.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    base: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max: max.max(base),
        }
    }

    /// The delay before attempt number `attempt` (1 = the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        let raw = self.base.saturating_mul(1u32 << exponent).min(self.max);
        raw.mul_f64(0.8 + 0.4 * unit_random())
    }
}

/// A random number in [0, 1) from the standard library's per-process random hash keys.
pub(crate) fn unit_random() -> f64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_within_jitter_and_caps() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        for (attempt, nominal) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (30, 1000),
        ] {
            let delay = backoff.delay(attempt).as_secs_f64() * 1000.0;
            let nominal = nominal as f64;
            assert!(
                delay >= nominal * 0.8 - 1e-6 && delay < nominal * 1.2,
                "attempt {attempt}: {delay} ms not within 20% of {nominal} ms"
            );
        }
    }

    #[test]
    fn jitter_varies() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let delays: std::collections::HashSet<Duration> =
            (0..20).map(|_| backoff.delay(3)).collect();
        assert!(delays.len() > 1, "20 delays were all equal: no jitter");
    }
}
