//! Renders simulation results: a table per assignor for people, JSON for scripts.

use std::fmt::Write;

use super::simulate::{AssignorRun, Spread};

fn spread(s: Spread) -> String {
    format!("{}-{}", s.min, s.max)
}

fn millis(seconds: &[f64]) -> String {
    let parts: Vec<String> = seconds
        .iter()
        .map(|s| format!("{:.1}", s * 1000.0))
        .collect();
    format!("{} ms", parts.join("+"))
}

/// One table per assignor: a row per step.
pub fn table(runs: &[AssignorRun]) -> String {
    let mut out = String::new();
    for run in runs {
        let _ = writeln!(
            out,
            "assignor {} ({}, {})",
            run.assignor, run.protocol, run.source
        );
        let header = [
            "step",
            "event",
            "members",
            "parts",
            "rounds",
            "per-member",
            "moved",
            "revoked",
            "lost",
            "unassigned",
            "rack-local",
            "assign",
        ];
        let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
        for step in &run.steps {
            rows.push(vec![
                step.step.to_string(),
                step.event.clone(),
                step.members.to_string(),
                step.partitions.to_string(),
                step.rounds.to_string(),
                spread(step.balance),
                step.moved.to_string(),
                step.revoked.to_string(),
                step.lost.to_string(),
                step.unassigned.to_string(),
                step.rack_local
                    .map_or("-".to_string(), |f| format!("{:.0}%", f * 100.0)),
                millis(&step.assign_seconds),
            ]);
        }
        out.push_str(&columns(&rows, "  "));
        for step in &run.steps {
            if step.balance_per_topic.len() > 1 {
                let topics: Vec<String> = step
                    .balance_per_topic
                    .iter()
                    .map(|(topic, s)| format!("{topic} {}", spread(*s)))
                    .collect();
                let _ = writeln!(out, "  step {} per topic: {}", step.step, topics.join(", "));
            }
            for reason in &step.fell_back {
                let _ = writeln!(out, "  step {}: fell back: {reason}", step.step);
            }
        }
        if run.protocol == "consumer" {
            out.push_str(
                "  the broker assigns (KIP-848): members revoke only what moves and take it \
                 over member by member, without a group-wide pause\n",
            );
        }
        out.push('\n');
    }
    out
}

/// Rows as left-aligned columns two spaces apart, each line after `indent`.
pub fn columns(rows: &[Vec<String>], indent: &str) -> String {
    let count = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..count)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        let _ = writeln!(out, "{indent}{}", line.join("  ").trim_end());
    }
    out
}

/// Every run as one JSON document.
pub fn json(runs: &[AssignorRun]) -> String {
    serde_json::to_string_pretty(runs).expect("reports serialize")
}
