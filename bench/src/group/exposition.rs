//! What a member's `/metrics` says, read the way the group benchmark needs it: single samples
//! and histograms, compared between two scrapes.

use anyhow::{bail, Result};
use wasmkafka_tests::metrics;

pub const REBALANCES: &str = "wasmkafka_rebalances_total";
pub const REBALANCE_SECONDS: &str = "wasmkafka_rebalance_duration_seconds";
pub const COMMIT_SECONDS: &str = "wasmkafka_commit_duration_seconds";
pub const FETCH_SECONDS: &str = "wasmkafka_fetch_duration_seconds";
pub const ASSIGNED: &str = "wasmkafka_assigned_partitions";
pub const GENERATION: &str = "wasmkafka_group_generation";
pub const REVOKED: &str = "wasmkafka_partitions_revoked_total";

/// One scrape of a member's `/metrics`.
pub struct Exposition(String);

impl Exposition {
    /// `/metrics` of the member listening on `port`.
    pub fn scrape(port: u16) -> Result<Exposition> {
        match metrics::get(port, "/metrics") {
            Some((200, body)) => Ok(Exposition(body)),
            other => bail!("no metrics from 127.0.0.1:{port}: {other:?}"),
        }
    }

    /// A sample's value, if the exposition has it.
    pub fn get(&self, name: &str) -> Option<f64> {
        metrics::sample(&self.0, name)
    }

    /// A sample's value; 0 when the exposition does not have it (yet).
    pub fn value(&self, name: &str) -> f64 {
        self.get(name).unwrap_or(0.0)
    }

    /// The histogram `name` (its `_bucket`, `_sum` and `_count` lines).
    pub fn histogram(&self, name: &str) -> Histogram {
        let prefix = format!("{name}_bucket{{le=\"");
        let cumulative = self
            .0
            .lines()
            .filter_map(|line| {
                let (bound, count) = line.strip_prefix(&prefix)?.split_once("\"} ")?;
                let bound = match bound {
                    "+Inf" => f64::INFINITY,
                    bound => bound.parse().ok()?,
                };
                Some((bound, count.parse().ok()?))
            })
            .collect();
        Histogram {
            cumulative,
            sum: self.value(&format!("{name}_sum")),
            count: self.value(&format!("{name}_count")),
        }
    }
}

/// A Prometheus histogram: cumulative (bound, count) buckets, the sum and the count of the
/// observations.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    cumulative: Vec<(f64, f64)>,
    sum: f64,
    count: f64,
}

impl Histogram {
    /// The observations made after `earlier` (a scrape of the same member).
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let mut delta = self.clone();
        for ((_, count), (_, before)) in delta.cumulative.iter_mut().zip(&earlier.cumulative) {
            *count -= before;
        }
        delta.sum -= earlier.sum;
        delta.count -= earlier.count;
        delta
    }

    /// Several members' observations as one histogram (they share the bucket layout).
    pub fn merged<'a>(histograms: impl IntoIterator<Item = &'a Histogram>) -> Histogram {
        let mut total = Histogram::default();
        for histogram in histograms {
            if total.cumulative.is_empty() {
                total.cumulative = histogram.cumulative.clone();
            } else {
                for ((_, count), (_, more)) in
                    total.cumulative.iter_mut().zip(&histogram.cumulative)
                {
                    *count += more;
                }
            }
            total.sum += histogram.sum;
            total.count += histogram.count;
        }
        total
    }

    pub fn count(&self) -> f64 {
        self.count
    }

    /// The observations' total, in seconds.
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// The exact mean of the observations (from `_sum` and `_count`), in seconds.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count)
    }

    /// The upper bound of the bucket the `q` quantile falls in, in seconds: the quantile is
    /// at most this (and above the bucket below).
    pub fn quantile_bound(&self, q: f64) -> Option<f64> {
        let total = self.cumulative.last()?.1;
        if total <= 0.0 {
            return None;
        }
        self.cumulative
            .iter()
            .find(|(_, count)| *count >= q * total)
            .map(|(bound, _)| *bound)
    }
}
