//! What `wasmkafka run` shows an operator: Prometheus metrics at `/metrics`, and `/healthz`
//! and `/readyz` on the same listener (`--metrics ADDR`, `[metrics] listen`).
//!
//! - [`Metrics`]: the registry. Counters the run loop moves as it writes records (records and
//!   bytes per topic), and a collector that reads, at each scrape, the latest [`Snapshot`] of
//!   the consumer (fetch counters, lag per partition, assignment, group generation) and the
//!   connection pool (connections per broker and purpose).
//! - [`server`]: the HTTP listener (hyper).
//!
//! Invariant: a scrape never takes the consumer's locks; it reads the snapshot the run loop
//! stored after its last poll (at most one poll timeout old) and the pool's list of
//! connections.

pub mod server;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::client::Client;
use crate::fetch::{FetchStats, TopicPartition};
use crate::plugin::PluginRuntime;

/// The consumer as the run loop last saw it.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub fetch: FetchStats,
    /// Lag of each assigned partition that has had a fetch answer.
    pub lags: BTreeMap<TopicPartition, i64>,
    /// Partitions assigned.
    pub assigned: usize,
    /// The group's generation (`None` without a group, or before the first assignment).
    pub generation: Option<i32>,
}

impl Snapshot {
    /// Ready: partitions are assigned and every one of them has been fetched.
    pub fn ready(&self) -> Result<(), String> {
        if self.assigned == 0 {
            return Err("no partitions assigned yet".to_string());
        }
        if self.lags.len() < self.assigned {
            return Err(format!(
                "{} of {} assigned partitions fetched so far",
                self.lags.len(),
                self.assigned
            ));
        }
        Ok(())
    }
}

/// The metrics of one `run`.
pub struct Metrics {
    registry: Registry,
    live: Arc<Live>,
    records: Family<Vec<(String, String)>, Counter>,
    bytes: Family<Vec<(String, String)>, Counter>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// What the collector reads at scrape time.
struct Live {
    snapshot: Mutex<Snapshot>,
    /// Generation changes seen (rebalances that completed).
    rebalances: Mutex<(Option<i32>, u64)>,
    client: Mutex<Option<Client>>,
    plugins: Mutex<Option<Arc<PluginRuntime>>>,
}

impl fmt::Debug for Live {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Live").finish_non_exhaustive()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("wasmkafka");
        let records = Family::<Vec<(String, String)>, Counter>::default();
        registry.register(
            "records_consumed",
            "Records written to the output",
            records.clone(),
        );
        let bytes = Family::<Vec<(String, String)>, Counter>::default();
        registry.register_with_unit(
            "consumed",
            "Key and value bytes of the records written to the output",
            Unit::Bytes,
            bytes.clone(),
        );
        let live = Arc::new(Live {
            snapshot: Mutex::new(Snapshot::default()),
            rebalances: Mutex::new((None, 0)),
            client: Mutex::new(None),
            plugins: Mutex::new(None),
        });
        registry.register_collector(Box::new(LiveCollector(live.clone())));
        Metrics {
            registry,
            live,
            records,
            bytes,
        }
    }

    /// The client whose connections are reported.
    pub fn watch_client(&self, client: Client) {
        *self.live.client.lock().expect("metrics lock") = Some(client);
    }

    /// The plugin runtime whose plugins' calls are reported.
    pub fn watch_plugins(&self, runtime: Arc<PluginRuntime>) {
        *self.live.plugins.lock().expect("metrics lock") = Some(runtime);
    }

    /// A record of `bytes` key and value bytes from `topic` was written.
    pub fn record_written(&self, topic: &str, bytes: usize) {
        let labels = vec![("topic".to_string(), topic.to_string())];
        self.records.get_or_create(&labels).inc();
        self.bytes.get_or_create(&labels).inc_by(bytes as u64);
    }

    /// The run loop's latest view of the consumer.
    pub fn update(&self, snapshot: Snapshot) {
        {
            let mut rebalances = self.live.rebalances.lock().expect("metrics lock");
            if snapshot.generation.is_some() && snapshot.generation != rebalances.0 {
                rebalances.0 = snapshot.generation;
                rebalances.1 += 1;
            }
        }
        *self.live.snapshot.lock().expect("metrics lock") = snapshot;
    }

    /// `Ok` when ready (see [`Snapshot::ready`]), else why not.
    pub fn ready(&self) -> Result<(), String> {
        self.live.snapshot.lock().expect("metrics lock").ready()
    }

    /// The Prometheus (OpenMetrics) text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[derive(Debug)]
struct LiveCollector(Arc<Live>);

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: i64,
) -> Result<(), fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, unit, metric.metric_type())?)
}

impl Collector for LiveCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let snapshot = self.0.snapshot.lock().expect("metrics lock").clone();
        let rebalances = self.0.rebalances.lock().expect("metrics lock").1;
        let fetch = &snapshot.fetch;
        let e = &mut encoder;
        counter(
            e,
            "fetch_requests",
            "Fetch requests sent",
            fetch.fetch_requests,
        )?;
        counter(
            e,
            "fetch_requests_incremental",
            "Fetch requests sent as incremental session updates (KIP-227)",
            fetch.incremental_fetches,
        )?;
        counter(
            e,
            "fetch_failures",
            "Fetch requests that failed (retried with backoff)",
            fetch.failed_fetches,
        )?;
        counter(
            e,
            "offset_out_of_range",
            "Positions the broker said were out of range (sent to the reset policy)",
            fetch.out_of_range,
        )?;
        counter(
            e,
            "log_truncations",
            "Positions past the end of a diverged log (sent to the reset policy)",
            fetch.truncations,
        )?;
        counter(
            e,
            "position_validations",
            "Positions checked against a new leader (OffsetForLeaderEpoch)",
            fetch.validations,
        )?;
        counter(
            e,
            "resets",
            "Partition resets resolved (reset policy or seek)",
            fetch.resets_resolved,
        )?;
        counter(
            e,
            "reset_retries",
            "Partition resets retried after a failure",
            fetch.reset_retries,
        )?;
        gauge(
            e,
            "buffered",
            "Decoded record bytes held for the application",
            Some(&Unit::Bytes),
            fetch.buffer_bytes as i64,
        )?;
        gauge(
            e,
            "assigned_partitions",
            "Partitions assigned to this consumer",
            None,
            snapshot.assigned as i64,
        )?;
        if let Some(generation) = snapshot.generation {
            gauge(
                e,
                "group_generation",
                "The consumer group's generation",
                None,
                i64::from(generation),
            )?;
        }
        counter(
            e,
            "rebalances",
            "Rebalances completed (group generations seen)",
            rebalances,
        )?;
        let lag = ConstGauge::new(0i64);
        let mut family =
            e.encode_descriptor("consumer_lag", "Records between the position and the end of the log (high watermark, or last stable offset under read_committed)", None, lag.metric_type())?;
        for (tp, lag) in &snapshot.lags {
            let labels = [
                ("topic", tp.topic.to_string()),
                ("partition", tp.partition.to_string()),
            ];
            ConstGauge::new(*lag).encode(family.encode_family(&labels)?)?;
        }
        gauge(
            e,
            "consumer_lag_max",
            "The largest lag of any assigned partition",
            None,
            snapshot.lags.values().copied().max().unwrap_or(0),
        )?;
        let plugins = self.0.plugins.lock().expect("metrics lock").clone();
        if let Some(runtime) = plugins {
            encode_plugins(e, &runtime)?;
        }
        let client = self.0.client.lock().expect("metrics lock").clone();
        if let Some(client) = client {
            let mut counts: BTreeMap<(i32, String), i64> = BTreeMap::new();
            for (key, _) in client.pool().open_connections() {
                *counts
                    .entry((key.broker, format!("{:?}", key.purpose).to_lowercase()))
                    .or_default() += 1;
            }
            let mut family = e.encode_descriptor(
                "connections",
                "Open broker connections, by broker and purpose",
                None,
                ConstGauge::new(0i64).metric_type(),
            )?;
            for ((broker, purpose), count) in counts {
                let labels = [("broker", broker.to_string()), ("purpose", purpose)];
                ConstGauge::new(count).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// A per-plugin counter: name, help, and how to read it from a snapshot.
type PluginCounter = (
    &'static str,
    &'static str,
    fn(&crate::plugin::stats::PluginStatsSnapshot) -> u64,
);

/// Calls, failures, quarantine skips and call times per plugin file.
fn encode_plugins(e: &mut DescriptorEncoder, runtime: &PluginRuntime) -> Result<(), fmt::Error> {
    use prometheus_client::encoding::NoLabelSet;
    use prometheus_client::metrics::MetricType;
    let stats = runtime.plugin_stats();
    let counters: [PluginCounter; 3] = [
        ("plugin_calls", "Plugin calls made", |s| s.calls),
        (
            "plugin_failures",
            "Plugin calls that failed (trap, deadline, memory cap, invalid answer)",
            |s| s.failures,
        ),
        (
            "plugin_quarantine_skips",
            "Plugin calls not made because the plugin was in quarantine",
            |s| s.skipped,
        ),
    ];
    for (name, help, value) in counters {
        let mut family = e.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (plugin, snapshot) in &stats {
            let labels = [("plugin", plugin.clone())];
            ConstCounter::new(value(snapshot)).encode(family.encode_family(&labels)?)?;
        }
    }
    let mut family = e.encode_descriptor(
        "plugin_call",
        "How long plugin calls took",
        Some(&Unit::Seconds),
        MetricType::Histogram,
    )?;
    for (plugin, snapshot) in &stats {
        // The snapshot's buckets are cumulative; the encoder wants each bucket's own count.
        let mut buckets = Vec::new();
        let mut below = 0;
        for (bound, cumulative) in &snapshot.buckets {
            buckets.push((*bound, cumulative - below));
            below = *cumulative;
        }
        buckets.push((f64::MAX, snapshot.calls - below));
        let labels = [("plugin", plugin.clone())];
        family
            .encode_family(&labels)?
            .encode_histogram::<NoLabelSet>(snapshot.seconds, snapshot.calls, &buckets, None)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_counters_lags_and_readiness() {
        let metrics = Metrics::new();
        assert!(metrics.ready().is_err());
        metrics.record_written("t", 10);
        metrics.record_written("t", 5);
        let mut lags = BTreeMap::new();
        lags.insert(TopicPartition::new("t", 0), 3);
        lags.insert(TopicPartition::new("t", 1), 7);
        metrics.update(Snapshot {
            fetch: FetchStats {
                fetch_requests: 4,
                ..FetchStats::default()
            },
            lags,
            assigned: 2,
            generation: Some(5),
        });
        assert!(metrics.ready().is_ok());
        let text = metrics.encode();
        for line in [
            "wasmkafka_records_consumed_total{topic=\"t\"} 2",
            "wasmkafka_consumed_bytes_total{topic=\"t\"} 15",
            "wasmkafka_fetch_requests_total 4",
            "wasmkafka_consumer_lag{topic=\"t\",partition=\"1\"} 7",
            "wasmkafka_consumer_lag_max 7",
            "wasmkafka_group_generation 5",
            "wasmkafka_rebalances_total 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
    }
}
