//! A fixed-bucket histogram of durations (seconds): what the fetcher, the commit queue, the
//! group membership and the plugin runtime record, and what `/metrics` exposes as Prometheus
//! histograms. Plain data: the owner keeps it under its own lock.

use std::time::Duration;

/// Bucket upper bounds for request latencies (a fetch long poll included).
pub const REQUEST_SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Bucket upper bounds for rebalances (join to assignment).
pub const REBALANCE_SECONDS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Bucket upper bounds for plugin calls (the default deadline is 1 s).
pub const PLUGIN_CALL_SECONDS: &[f64] = &[0.0001, 0.001, 0.005, 0.025, 0.1, 0.5, 2.0];

#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative); the last one is above every bound.
    counts: Vec<u64>,
    sum: f64,
}

/// A request-latency histogram ([`REQUEST_SECONDS`]).
impl Default for Histogram {
    fn default() -> Self {
        Histogram::new(REQUEST_SECONDS)
    }
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
        }
    }

    pub fn observe(&mut self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = self
            .bounds
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(self.bounds.len());
        self.counts[bucket] += 1;
        self.sum += seconds;
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Seconds observed in total.
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// Each bucket's upper bound and its own count (not cumulative); the last bound is
    /// `f64::MAX` (Prometheus' `+Inf`).
    pub fn buckets(&self) -> Vec<(f64, u64)> {
        self.bounds
            .iter()
            .copied()
            .chain([f64::MAX])
            .zip(self.counts.iter().copied())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let mut histogram = Histogram::new(&[0.01, 0.1]);
        histogram.observe(Duration::from_millis(10));
        histogram.observe(Duration::from_millis(50));
        histogram.observe(Duration::from_millis(50));
        histogram.observe(Duration::from_secs(3));
        assert_eq!(histogram.buckets(), [(0.01, 1), (0.1, 2), (f64::MAX, 1)]);
        assert_eq!(histogram.count(), 4);
        assert!((histogram.sum() - 3.11).abs() < 1e-9);
    }
}
