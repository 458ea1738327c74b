//! The report: each measure's values over the rounds, per kind, as Markdown.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::kinds::{Kind, ScaleOptions};
use super::DEFAULT_CONSUMER_HEARTBEAT_MS;
use crate::report::median;

/// `/proc/loadavg`'s three load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".into())
}

/// Each measure's values over the rounds, per kind, in the order first recorded.
#[derive(Default)]
pub struct Table {
    rows: Vec<Row>,
    pub failures: Vec<String>,
}

struct Row {
    label: String,
    decimals: usize,
    values: BTreeMap<Kind, Vec<f64>>,
}

impl Table {
    pub fn add(&mut self, kind: Kind, label: &str, decimals: usize, value: Option<f64>) {
        let index = match self.rows.iter().position(|r| r.label == label) {
            Some(index) => index,
            None => {
                self.rows.push(Row {
                    label: label.to_string(),
                    decimals,
                    values: BTreeMap::new(),
                });
                self.rows.len() - 1
            }
        };
        self.rows[index]
            .values
            .entry(kind)
            .or_default()
            .extend(value);
    }

    pub fn markdown(
        &self,
        options: &ScaleOptions,
        topic: &str,
        produced: u64,
        load_before: &str,
        load_after: &str,
    ) -> String {
        let mut text = String::new();
        let heartbeat = match options.heartbeat_ms {
            Some(ms) => format!("{ms} ms (set)"),
            None => format!("{DEFAULT_CONSUMER_HEARTBEAT_MS} ms (Kafka's default)"),
        };
        let _ = writeln!(
            text,
            "{} rounds; each cell is the median over the rounds (min-max), with [k/{}] where \
             only k rounds gave a value. One topic, {topic} ({} partitions), fed one record \
             per partition every {} ms ({produced} per partition in all). Broker: Kafka's \
             group defaults, group.consumer.heartbeat.interval.ms {heartbeat}. Load average \
             (1, 5, 15 min) before: {load_before}; after: {load_after}.\n",
            options.rounds,
            options.rounds,
            options.partitions,
            options.pace.as_millis(),
        );
        let columns: Vec<&str> = options.kinds.iter().map(|k| k.column()).collect();
        let _ = writeln!(text, "| event: measure | {} |", columns.join(" | "));
        let _ = writeln!(text, "|---|{}", "---:|".repeat(columns.len()));
        for row in &self.rows {
            let cells: Vec<String> = options
                .kinds
                .iter()
                .map(|kind| {
                    row.cell(
                        row.values.get(kind).map_or(&[][..], Vec::as_slice),
                        options.rounds,
                    )
                })
                .collect();
            let _ = writeln!(text, "| {} | {} |", row.label, cells.join(" | "));
        }
        if !self.failures.is_empty() {
            let _ = writeln!(text, "\nFailed runs:");
            for failure in &self.failures {
                let _ = writeln!(text, "- {failure}");
            }
        }
        text
    }
}

impl Row {
    fn cell(&self, values: &[f64], rounds: usize) -> String {
        if values.is_empty() {
            return "-".into();
        }
        let decimals = self.decimals;
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut cell = format!(
            "{:.decimals$} ({min:.decimals$}-{max:.decimals$})",
            median(values.to_vec())
        );
        if values.len() < rounds {
            let _ = write!(cell, " [{}/{rounds}]", values.len());
        }
        cell
    }
}
