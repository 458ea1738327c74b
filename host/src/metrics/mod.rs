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
use crate::group::stats::GroupStats;
use crate::histogram::Histogram;
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
    /// The group member's counters (`None` without a group).
    pub group: Option<GroupStats>,
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

    /// `records` records from `topic`, with `bytes` key and value bytes in all, were written.
    /// Called once per topic per batch: the label lookup is not free.
    pub fn records_written(&self, topic: &str, records: u64, bytes: u64) {
        let labels = vec![("topic".to_string(), topic.to_string())];
        self.records.get_or_create(&labels).inc_by(records);
        self.bytes.get_or_create(&labels).inc_by(bytes);
    }

    /// The run loop's latest view of the consumer.
    pub fn update(&self, snapshot: Snapshot) {
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
        histograms(
            e,
            "fetch_duration",
            "How long answered Fetch requests took (long-poll wait included)",
            &[(Vec::new(), &fetch.fetch_latency)],
        )?;
        let fetched = ConstCounter::new(fetch.fetch_record_bytes);
        fetched.encode(e.encode_descriptor(
            "fetched",
            "Record bytes in Fetch answers, as on the wire (compressed)",
            Some(&Unit::Bytes),
            fetched.metric_type(),
        )?)?;
        let mut family = e.encode_descriptor(
            "fetched_from_broker",
            "Record bytes in Fetch answers per broker that answered: a leader, or the replica \
             it named for this consumer's rack (client.rack, KIP-392)",
            Some(&Unit::Bytes),
            ConstCounter::new(0u64).metric_type(),
        )?;
        for (broker, bytes) in &fetch.fetch_record_bytes_by_broker {
            let labels = [("broker", broker.to_string())];
            ConstCounter::new(*bytes).encode(family.encode_family(&labels)?)?;
        }
        let mut family = e.encode_descriptor(
            "resets",
            "Partition resets by reason (no_committed_offset, out_of_range, log_truncated, seek), \
             the policy that decided, and outcome (resolved, failed)",
            None,
            ConstCounter::new(0u64).metric_type(),
        )?;
        for (kind, count) in &fetch.resets {
            let labels = [
                ("reason", kind.reason.to_string()),
                ("policy", kind.policy.clone()),
                ("outcome", kind.outcome.to_string()),
            ];
            ConstCounter::new(*count).encode(family.encode_family(&labels)?)?;
        }
        counter(
            e,
            "reset_retries",
            "Partition resets retried after a failure",
            fetch.reset_retries,
        )?;
        gauge(
            e,
            "buffered",
            "Fetched record batch bytes held for the application",
            Some(&Unit::Bytes),
            fetch.buffer_bytes as i64,
        )?;
        gauge(
            e,
            "fetch_max",
            "What the last answered Fetch request asked for at most (max_bytes): sized to the \
             round trip to the leader unless consumer.fetch_max_bytes is set",
            Some(&Unit::Bytes),
            i64::from(fetch.fetch_max_bytes),
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
        if let Some(group) = &snapshot.group {
            encode_group(e, group)?;
        }
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

/// One histogram family of seconds: a series per label set (an empty set: no labels, and
/// then the only series).
fn histograms(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(Vec<(&str, String)>, &Histogram)],
) -> Result<(), fmt::Error> {
    use prometheus_client::encoding::NoLabelSet;
    use prometheus_client::metrics::MetricType;
    let mut family =
        e.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    for (labels, histogram) in series {
        let buckets = histogram.buckets();
        let (sum, count) = (histogram.sum(), histogram.count());
        if labels.is_empty() {
            return family.encode_histogram::<NoLabelSet>(sum, count, &buckets, None);
        }
        family
            .encode_family(&labels.as_slice())?
            .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
    }
    Ok(())
}

/// Commits, rebalances and partitions moved.
fn encode_group(e: &mut DescriptorEncoder, group: &GroupStats) -> Result<(), fmt::Error> {
    counter(
        e,
        "commits",
        "OffsetCommit requests the broker accepted",
        group.commits,
    )?;
    counter(
        e,
        "commit_failures",
        "OffsetCommit attempts that failed (transient ones are retried)",
        group.commit_failures,
    )?;
    histograms(
        e,
        "commit_duration",
        "How long OffsetCommit attempts took (coordinator lookup included)",
        &[(Vec::new(), &group.commit_latency)],
    )?;
    counter(
        e,
        "rebalances",
        "Rebalances this member completed",
        group.rebalances,
    )?;
    histograms(
        e,
        "rebalance_duration",
        "From a rebalance's first JoinGroup to its assignment applied",
        &[(Vec::new(), &group.rebalance_latency)],
    )?;
    counter(
        e,
        "partitions_assigned",
        "Partitions assigned to this member by rebalances",
        group.partitions_assigned,
    )?;
    counter(
        e,
        "partitions_revoked",
        "Partitions this member gave up in rebalances (committed first)",
        group.partitions_revoked,
    )?;
    counter(
        e,
        "partitions_lost",
        "Partitions taken away without a revoke (the member was dropped from the group)",
        group.partitions_lost,
    )
}

/// A per-plugin counter: name, help, and how to read it from a snapshot.
type PluginCounter = (
    &'static str,
    &'static str,
    fn(&crate::plugin::stats::PluginStatsSnapshot) -> u64,
);

/// Calls, failures, quarantine skips and call times per plugin file.
fn encode_plugins(e: &mut DescriptorEncoder, runtime: &PluginRuntime) -> Result<(), fmt::Error> {
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
        "plugin_memory_peak",
        "The most linear memory one call's plugin instance held",
        Some(&Unit::Bytes),
        MetricType::Gauge,
    )?;
    for (plugin, snapshot) in &stats {
        let labels = [("plugin", plugin.clone())];
        let peak = i64::try_from(snapshot.memory_peak_bytes).unwrap_or(i64::MAX);
        ConstGauge::new(peak).encode(family.encode_family(&labels)?)?;
    }
    let series: Vec<(Vec<(&str, String)>, &Histogram)> = stats
        .iter()
        .map(|(plugin, snapshot)| (vec![("plugin", plugin.clone())], &snapshot.time))
        .collect();
    histograms(e, "plugin_call", "How long plugin calls took", &series)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_counters_lags_and_readiness() {
        let metrics = Metrics::new();
        assert!(metrics.ready().is_err());
        metrics.records_written("t", 1, 10);
        metrics.records_written("t", 1, 5);
        let mut lags = BTreeMap::new();
        lags.insert(TopicPartition::new("t", 0), 3);
        lags.insert(TopicPartition::new("t", 1), 7);
        let mut fetch = FetchStats {
            fetch_requests: 4,
            fetch_record_bytes: 1000,
            fetch_record_bytes_by_broker: BTreeMap::from([(1, 400), (2, 600)]),
            fetch_max_bytes: 2_097_152,
            ..FetchStats::default()
        };
        fetch
            .fetch_latency
            .observe(std::time::Duration::from_millis(3));
        fetch.resets.insert(
            crate::fetch::ResetKind {
                reason: "out_of_range",
                policy: "earliest".into(),
                outcome: "resolved",
            },
            2,
        );
        let mut group = GroupStats {
            rebalances: 1,
            partitions_assigned: 2,
            ..GroupStats::default()
        };
        group.commit_attempted(std::time::Duration::from_millis(20), true);
        group
            .rebalance_latency
            .observe(std::time::Duration::from_millis(700));
        metrics.update(Snapshot {
            fetch,
            lags,
            assigned: 2,
            generation: Some(5),
            group: Some(group),
        });
        assert!(metrics.ready().is_ok());
        let text = metrics.encode();
        for line in [
            "wasmkafka_records_consumed_total{topic=\"t\"} 2",
            "wasmkafka_consumed_bytes_total{topic=\"t\"} 15",
            "wasmkafka_fetch_requests_total 4",
            "wasmkafka_fetched_from_broker_bytes_total{broker=\"2\"} 600",
            "wasmkafka_consumer_lag{topic=\"t\",partition=\"1\"} 7",
            "wasmkafka_consumer_lag_max 7",
            "wasmkafka_group_generation 5",
            "wasmkafka_rebalances_total 1",
            "wasmkafka_fetched_bytes_total 1000",
            "wasmkafka_fetch_max_bytes 2097152",
            "wasmkafka_fetch_duration_seconds_bucket{le=\"0.0025\"} 0",
            "wasmkafka_fetch_duration_seconds_bucket{le=\"0.005\"} 1",
            "wasmkafka_fetch_duration_seconds_bucket{le=\"+Inf\"} 1",
            "wasmkafka_fetch_duration_seconds_count 1",
            "wasmkafka_resets_total{reason=\"out_of_range\",policy=\"earliest\",outcome=\"resolved\"} 2",
            "wasmkafka_commits_total 1",
            "wasmkafka_commit_failures_total 0",
            "wasmkafka_commit_duration_seconds_count 1",
            "wasmkafka_rebalance_duration_seconds_bucket{le=\"0.5\"} 0",
            "wasmkafka_rebalance_duration_seconds_bucket{le=\"1.0\"} 1",
            "wasmkafka_partitions_assigned_total 2",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
    }
}
