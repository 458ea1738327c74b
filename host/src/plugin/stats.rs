//! What each plugin's calls did: counts, failures, calls skipped while quarantined, and how
//! long calls took. Kept per plugin file in the runtime; `/metrics` reports them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::histogram::{Histogram, PLUGIN_CALL_SECONDS};

/// One plugin's counters.
#[derive(Debug)]
pub struct PluginStats {
    calls: AtomicU64,
    failures: AtomicU64,
    skipped: AtomicU64,
    time: Mutex<Histogram>,
    memory_peak: AtomicU64,
}

impl Default for PluginStats {
    fn default() -> Self {
        PluginStats {
            calls: AtomicU64::default(),
            failures: AtomicU64::default(),
            skipped: AtomicU64::default(),
            time: Mutex::new(Histogram::new(PLUGIN_CALL_SECONDS)),
            memory_peak: AtomicU64::default(),
        }
    }
}

/// A copy of one plugin's counters.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginStatsSnapshot {
    pub calls: u64,
    pub failures: u64,
    /// Calls not made because the plugin was in quarantine.
    pub skipped: u64,
    /// How long the calls took.
    pub time: Histogram,
    /// The most linear memory one call's instance held (every memory of it together).
    pub memory_peak_bytes: u64,
}

impl PluginStats {
    /// One call: how long it took, whether it failed, and the memory its instance held.
    pub fn called(&self, took: Duration, failed: bool, memory_bytes: usize) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.memory_peak
            .fetch_max(memory_bytes as u64, Ordering::Relaxed);
        if failed {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        self.time.lock().expect("plugin stats lock").observe(took);
    }

    pub fn skipped(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> PluginStatsSnapshot {
        PluginStatsSnapshot {
            calls: self.calls.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            time: self.time.lock().expect("plugin stats lock").clone(),
            memory_peak_bytes: self.memory_peak.load(Ordering::Relaxed),
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
