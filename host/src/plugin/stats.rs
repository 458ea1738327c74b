//! What each plugin's calls did: counts, failures, calls skipped while quarantined, and how
//! long calls took. Kept per plugin file in the runtime; `/metrics` reports them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds (seconds) of the call-time histogram buckets.
pub const CALL_SECONDS_BUCKETS: [f64; 6] = [0.001, 0.005, 0.025, 0.1, 0.5, 2.0];

/// One plugin's counters.
#[derive(Debug, Default)]
pub struct PluginStats {
    calls: AtomicU64,
    failures: AtomicU64,
    skipped: AtomicU64,
    micros: AtomicU64,
    buckets: [AtomicU64; CALL_SECONDS_BUCKETS.len()],
}

/// A copy of one plugin's counters.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginStatsSnapshot {
    pub calls: u64,
    pub failures: u64,
    /// Calls not made because the plugin was in quarantine.
    pub skipped: u64,
    pub seconds: f64,
    /// Calls at or under each bound of [`CALL_SECONDS_BUCKETS`] (cumulative).
    pub buckets: Vec<(f64, u64)>,
}

impl PluginStats {
    pub fn called(&self, took: Duration, failed: bool) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        self.micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        let seconds = took.as_secs_f64();
        for (bound, count) in CALL_SECONDS_BUCKETS.iter().zip(&self.buckets) {
            if seconds <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn skipped(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> PluginStatsSnapshot {
        PluginStatsSnapshot {
            calls: self.calls.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            seconds: self.micros.load(Ordering::Relaxed) as f64 / 1e6,
            buckets: CALL_SECONDS_BUCKETS
                .iter()
                .zip(&self.buckets)
                .map(|(bound, count)| (*bound, count.load(Ordering::Relaxed)))
                .collect(),
        }
    }
}

/// Every plugin file's counters (shared by every handle that loads the same file).
#[derive(Debug, Default)]
pub struct PluginStatsRegistry {
    plugins: Mutex<BTreeMap<String, Arc<PluginStats>>>,
}

impl PluginStatsRegistry {
    pub fn for_plugin(&self, plugin: &str) -> Arc<PluginStats> {
        self.plugins
            .lock()
            .expect("plugin stats lock")
            .entry(plugin.to_string())
            .or_default()
            .clone()
    }

    pub fn snapshot(&self) -> BTreeMap<String, PluginStatsSnapshot> {
        self.plugins
            .lock()
            .expect("plugin stats lock")
            .iter()
            .map(|(plugin, stats)| (plugin.clone(), stats.snapshot()))
            .collect()
    }
}
