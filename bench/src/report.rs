//! Medians, spread and ratios, as Markdown for BENCHMARKS.md.

use std::fmt::Write;

use crate::measure::Measured;
use crate::peers::Peer;
use crate::workload::Workload;

pub struct Run {
    pub workload: Workload,
    pub peer: Peer,
    pub measured: Measured,
}

pub struct Report {
    rounds: usize,
    runs: Vec<Run>,
    /// Runs that failed: workload, consumer, the error's first line.
    failures: Vec<(&'static str, Peer, String)>,
}

/// One consumer on one workload, over the rounds.
struct Summary {
    peer: Peer,
    rate: f64,
    rate_min: f64,
    rate_max: f64,
    cpu_per_million: f64,
    rss_mb: f64,
}

/// The middle value (the mean of the two middle ones for an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

impl Report {
    pub fn new(rounds: usize) -> Report {
        Report {
            rounds,
            runs: Vec::new(),
            failures: Vec::new(),
        }
    }

    pub fn fail(&mut self, workload: &'static str, peer: Peer, error: String) {
        self.failures.push((workload, peer, error));
    }

    pub fn add(&mut self, run: Run) {
        self.runs.push(run);
    }

    fn summaries(&self, workload: &str) -> Vec<Summary> {
        let mut peers: Vec<Peer> = Vec::new();
        for run in self.runs.iter().filter(|r| r.workload.name == workload) {
            if !peers.contains(&run.peer) {
                peers.push(run.peer);
            }
        }
        peers
            .into_iter()
            .map(|peer| {
                let runs: Vec<&Run> = self
                    .runs
                    .iter()
                    .filter(|r| r.workload.name == workload && r.peer == peer)
                    .collect();
                let records = runs[0].workload.records as f64;
                let rates: Vec<f64> = runs
                    .iter()
                    .map(|r| records / r.measured.wall.as_secs_f64())
                    .collect();
                Summary {
                    peer,
                    rate: median(rates.clone()),
                    rate_min: rates.iter().copied().fold(f64::MAX, f64::min),
                    rate_max: rates.iter().copied().fold(0.0, f64::max),
                    cpu_per_million: median(
                        runs.iter()
                            .map(|r| r.measured.cpu.as_secs_f64() * 1e6 / records)
                            .collect(),
                    ),
                    rss_mb: median(
                        runs.iter()
                            .map(|r| r.measured.max_rss_bytes as f64 / 1e6)
                            .collect(),
                    ),
                }
            })
            .collect()
    }

    pub fn markdown(&self, machine: &str) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "Machine: {machine}. Medians of {} rounds; records/s from process start to exit \
             (connecting and start-up included); CPU = user + system time of the consumer \
             process; RSS = its peak resident set. The last three columns divide wasmkafka's \
             median by the peer's (wasmkafka json's for a JSON peer, wasmkafka raw's for the \
             rest): records/s above 1x, CPU and RSS below 1x favour wasmkafka.\n",
            self.rounds
        );
        let mut workloads: Vec<&Workload> = Vec::new();
        for run in &self.runs {
            if !workloads.iter().any(|w| w.name == run.workload.name) {
                workloads.push(&run.workload);
            }
        }
        for workload in workloads {
            let summaries = self.summaries(workload.name);
            let _ = writeln!(text, "### {}: {}\n", workload.name, workload.describe());
            let find = |peer: Peer| summaries.iter().find(|s| s.peer == peer);
            let _ = writeln!(
                text,
                "| consumer | records/s | (min-max) | CPU s per 1M records | peak RSS MB \
                 | wasmkafka ÷ it: records/s | CPU | RSS |"
            );
            let _ = writeln!(text, "|---|---:|---:|---:|---:|---:|---:|---:|");
            for s in &summaries {
                let ours = match s.peer {
                    peer if peer.is_ours() => None,
                    peer if peer.writes_json() => find(Peer::WasmkafkaJson),
                    _ => find(Peer::WasmkafkaRaw),
                };
                let ratios = ours.map_or_else(
                    || "- | - | -".to_string(),
                    |ours| {
                        format!(
                            "{:.2}x | {:.2}x | {:.2}x",
                            ours.rate / s.rate,
                            ours.cpu_per_million / s.cpu_per_million,
                            ours.rss_mb / s.rss_mb
                        )
                    },
                );
                let _ = writeln!(
                    text,
                    "| {} | {:.0} | {:.0}-{:.0} | {:.3} | {:.0} | {ratios} |",
                    s.peer.name(),
                    s.rate,
                    s.rate_min,
                    s.rate_max,
                    s.cpu_per_million,
                    s.rss_mb
                );
            }
            let _ = writeln!(text);
            let best = |pick: fn(&Summary) -> f64, lowest: bool, json: bool| {
                summaries
                    .iter()
                    .filter(|s| {
                        !s.peer.is_ours()
                            && !s.peer.is_our_other_build()
                            && s.peer.writes_json() == json
                    })
                    .min_by(|a, b| {
                        let (a, b) = (pick(a), pick(b));
                        if lowest {
                            a.total_cmp(&b)
                        } else {
                            b.total_cmp(&a)
                        }
                    })
            };
            for (ours, json) in [(Peer::WasmkafkaRaw, false), (Peer::WasmkafkaJson, true)] {
                let Some(ours) = find(ours) else { continue };
                if let Some(peer) = best(|s| s.cpu_per_million, true, json) {
                    let _ = writeln!(
                        text,
                        "- {}: CPU per record {:.2}x the best {} peer's ({}); records/s {:.2}x \
                         the fastest's ({}).",
                        ours.peer.name(),
                        ours.cpu_per_million / peer.cpu_per_million,
                        if json { "JSON" } else { "raw" },
                        peer.peer.name(),
                        ours.rate / best(|s| s.rate, false, json).map_or(1.0, |s| s.rate),
                        best(|s| s.rate, false, json).map_or("-", |s| s.peer.name()),
                    );
                }
            }
            let leanest_native = summaries
                .iter()
                .filter(|s| matches!(s.peer, Peer::RdkafkaRaw | Peer::FranzGo))
                .min_by(|a, b| a.rss_mb.total_cmp(&b.rss_mb));
            if let (Some(ours), Some(lean)) = (find(Peer::WasmkafkaRaw), leanest_native) {
                let _ = writeln!(
                    text,
                    "- wasmkafka raw peak RSS {:.2}x the leanest native peer's ({}).",
                    ours.rss_mb / lean.rss_mb,
                    lean.peer.name()
                );
            }
            let _ = writeln!(text);
        }
        if !self.failures.is_empty() {
            let _ = writeln!(text, "Failed runs (left out of the tables above):\n");
            for (workload, peer, error) in &self.failures {
                let _ = writeln!(text, "- {workload}, {}: {error}", peer.name());
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn run(peer: Peer, wall_s: f64, cpu_s: f64, rss_mb: u64) -> Run {
        Run {
            workload: Workload::all().remove(0),
            peer,
            measured: Measured {
                wall: Duration::from_secs_f64(wall_s),
                cpu: Duration::from_secs_f64(cpu_s),
                max_rss_bytes: rss_mb * 1_000_000,
            },
        }
    }

    #[test]
    fn each_peer_row_divides_the_matching_wasmkafka_median_by_the_peers() {
        let mut report = Report::new(1);
        report.add(run(Peer::WasmkafkaRaw, 1.0, 0.2, 20));
        report.add(run(Peer::WasmkafkaJson, 2.0, 0.3, 30));
        report.add(run(Peer::FranzGo, 4.0, 0.8, 40));
        report.add(run(Peer::RdkafkaJson, 8.0, 1.5, 60));
        let text = report.markdown("test");
        let row = |name: &str| {
            text.lines()
                .find(|line| line.starts_with(&format!("| {name} |")))
                .unwrap_or_else(|| panic!("no row for {name} in:\n{text}"))
                .to_string()
        };
        // Raw peers against wasmkafka raw: 4x the rate, a quarter of the CPU, half the RSS.
        assert!(
            row("franz-go").ends_with("| 4.00x | 0.25x | 0.50x |"),
            "{}",
            row("franz-go")
        );
        // JSON peers against wasmkafka json.
        assert!(
            row("rdkafka crate json").ends_with("| 4.00x | 0.20x | 0.50x |"),
            "{}",
            row("rdkafka crate json")
        );
        // Our own rows have no ratios, and every row has the header's eight cells.
        assert!(
            row("wasmkafka raw").ends_with("| - | - | - |"),
            "{}",
            row("wasmkafka raw")
        );
        let header = text.lines().find(|l| l.starts_with("| consumer")).unwrap();
        for line in text.lines().filter(|l| l.starts_with("| ")) {
            assert_eq!(
                line.matches('|').count(),
                header.matches('|').count(),
                "{line}"
            );
        }
    }
}
