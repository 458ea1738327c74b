//! The latency run as Markdown (a table per rate: percentiles, the median over rounds and their
//! range) and as an SVG plot (per rate, each consumer's latency at every percentile, all
//! rounds pooled, on logarithmic axes: the tail is where consumers differ).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;

use super::wire::Split;
use super::{quantile, RateResults};
use crate::peers::Peer;

/// The percentiles in the tables.
const TABLE_QUANTILES: [(f64, &str); 5] = [
    (0.5, "p50"),
    (0.9, "p90"),
    (0.99, "p99"),
    (0.999, "p99.9"),
    (1.0, "max"),
];

/// Samples by rate, then by consumer.
pub type Results = [RateResults];

/// One table per rate.
pub fn markdown(results: &Results, rounds: usize, seconds: u64, partitions: i32) -> String {
    let mut text = String::new();
    for (rate, by_peer) in results {
        let _ = writeln!(
            text,
            "#### {rate} records/s over {partitions} partitions, {seconds} s, {rounds} rounds\n"
        );
        let header: Vec<&str> = TABLE_QUANTILES.iter().map(|(_, name)| *name).collect();
        let _ = writeln!(
            text,
            "| consumer | {} | read of sent |",
            header.join(" ms | ") + " ms"
        );
        let _ = writeln!(text, "|---|{}---:|", "---:|".repeat(TABLE_QUANTILES.len()));
        for (peer, samples) in by_peer {
            let cells: Vec<String> = TABLE_QUANTILES
                .iter()
                .map(|(q, _)| cell(samples.iter().filter_map(|s| s.quantile_ms(*q))))
                .collect();
            let read: usize = samples.iter().map(|s| s.latencies.len()).sum();
            let sent: u64 = samples.iter().map(|s| s.produced).sum();
            let _ = writeln!(
                text,
                "| {} | {} | {read} of {sent} |",
                peer.name(),
                cells.join(" | ")
            );
        }
        text.push('\n');
    }
    text
}

/// With `--capture`, a table per rate of where each consumer's latency went (see
/// [`super::wire`]): each leg's percentiles in microseconds, the median over rounds and their
/// range.
pub fn wire_markdown(results: &Results) -> String {
    let mut text = String::new();
    for (rate, by_peer) in results {
        if !by_peer
            .iter()
            .any(|(_, s)| s.iter().any(|s| s.split.is_some()))
        {
            continue;
        }
        let _ = writeln!(
            text,
            "#### Where the time goes at {rate} records/s
"
        );
        let _ = writeln!(
            text,
            "| consumer | producer p50 µs | fetch waiting at the broker (median) | no fetch waiting p99 µs \
             | broker p50 µs | broker p99 µs | consumer p50 µs | consumer p99 µs | split of read |"
        );
        let _ = writeln!(text, "|---|{}", "---:|".repeat(8));
        for (peer, samples) in by_peer {
            let splits: Vec<&Split> = samples.iter().filter_map(|s| s.split.as_ref()).collect();
            let leg = |pick: fn(&Split) -> &[u64], q: f64| {
                cell(splits.iter().map(|s| Split::us(pick(s), q)))
            };
            // The median round's share of records that found a fetch waiting.
            let mut waiting: Vec<f64> = splits
                .iter()
                .map(|s| 100.0 * s.fetch_waiting as f64 / s.records().max(1) as f64)
                .collect();
            waiting.sort_by(f64::total_cmp);
            let waiting = waiting
                .get(waiting.len().saturating_sub(1) / 2)
                .map_or("-".to_string(), |w| format!("{w:.1}%"));
            let split: usize = splits.iter().map(|s| s.records()).sum();
            let read: usize = samples.iter().map(|s| s.latencies.len()).sum();
            let _ = writeln!(
                text,
                "| {} | {} | {waiting} | {} | {} | {} | {} | {} | {split} of {read} |",
                peer.name(),
                leg(|s| &s.producer, 0.5),
                leg(|s| &s.no_fetch_waiting, 0.99),
                leg(|s| &s.broker, 0.5),
                leg(|s| &s.broker, 0.99),
                leg(|s| &s.consumer, 0.5),
                leg(|s| &s.consumer, 0.99),
            );
        }
        text.push('\n');
    }
    text
}

/// The median of the rounds, and their range when there is more than one.
fn cell(values: impl Iterator<Item = f64>) -> String {
    let mut values: Vec<f64> = values.collect();
    if values.is_empty() {
        return "-".into();
    }
    values.sort_by(f64::total_cmp);
    let median = values[(values.len() - 1) / 2];
    let (low, high) = (values[0], values[values.len() - 1]);
    if values.len() == 1 {
        ms(median)
    } else {
        format!("{} ({}-{})", ms(median), ms(low), ms(high))
    }
}

/// Milliseconds with the precision that matters at their size.
fn ms(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.2}")
    } else if value < 100.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    }
}

/// The percentiles a curve is drawn through: 0 to 99.99 in steps that get finer in the tail.
fn curve_quantiles() -> Vec<f64> {
    let mut quantiles = Vec::new();
    // x = -log10(1 - q): 0 at p0, 1 at p90, 2 at p99, 3 at p99.9, 4 at p99.99.
    let steps = 200;
    for i in 0..=steps {
        let x = 4.0 * i as f64 / steps as f64;
        quantiles.push(1.0 - 10f64.powf(-x));
    }
    quantiles
}

/// Writes the plot: one panel per rate, one line per consumer.
pub fn svg(results: &Results, path: &Path) -> Result<()> {
    let panel = (720u32, 420u32);
    let height = panel.1 * results.len().max(1) as u32;
    let root = SVGBackend::new(path, (panel.0, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((results.len().max(1), 1));
    let colours = [
        RGBColor(0xd6, 0x27, 0x28),
        RGBColor(0x1f, 0x77, 0xb4),
        RGBColor(0x2c, 0xa0, 0x2c),
        RGBColor(0xff, 0x7f, 0x0e),
        RGBColor(0x94, 0x67, 0xbd),
        RGBColor(0x8c, 0x56, 0x4b),
        RGBColor(0x7f, 0x7f, 0x7f),
        RGBColor(0x17, 0xbe, 0xcf),
    ];
    for ((rate, by_peer), area) in results.iter().zip(panels.iter()) {
        let curves: Vec<(Peer, Vec<(f64, f64)>)> = by_peer
            .iter()
            .map(|(peer, samples)| {
                let mut pooled: Vec<u64> = samples
                    .iter()
                    .flat_map(|s| s.latencies.iter().copied())
                    .collect();
                pooled.sort_unstable();
                let points = curve_quantiles()
                    .into_iter()
                    .filter_map(|q| {
                        let ns = quantile(&pooled, q)?;
                        Some((-(1.0 - q).log10(), (ns as f64 / 1e6).max(0.01)))
                    })
                    .collect();
                (*peer, points)
            })
            .collect();
        let highest = curves
            .iter()
            .flat_map(|(_, points)| points.iter().map(|(_, y)| *y))
            .fold(1.0f64, f64::max);
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("end-to-end latency at {rate} records/s"),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..4f64, (0.05f64..highest * 1.5).log_scale())?;
        chart
            .configure_mesh()
            .x_labels(5)
            .x_label_formatter(&|x| match x.round() as i32 {
                0 => "p0".into(),
                1 => "p90".into(),
                2 => "p99".into(),
                3 => "p99.9".into(),
                _ => "p99.99".into(),
            })
            .y_desc("milliseconds")
            .draw()?;
        for (index, (peer, points)) in curves.into_iter().enumerate() {
            let colour = colours[index % colours.len()];
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
                .label(peer.name())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Sample;
    use super::*;

    fn sample(latencies_ms: &[u64]) -> Sample {
        Sample {
            latencies: latencies_ms.iter().map(|ms| ms * 1_000_000).collect(),
            produced: latencies_ms.len() as u64 + 1,
            split: None,
        }
    }

    #[test]
    fn the_wire_table_shows_each_leg_over_the_rounds() {
        let ms = 1_000_000;
        let split = |consumer_ms: u64| Split {
            producer: vec![ms / 50; 4],
            no_fetch_waiting: vec![0, 0, 0, 2 * ms],
            broker: vec![ms, ms, ms, 4 * ms],
            consumer: vec![consumer_ms * ms / 10; 4],
            fetch_waiting: 3,
        };
        let with_split = |consumer_ms| Sample {
            split: Some(split(consumer_ms)),
            ..sample(&[1, 2, 3, 4])
        };
        let results = vec![(
            1000,
            vec![(
                Peer::WasmkafkaRaw,
                vec![with_split(1), with_split(3), with_split(2)],
            )],
        )];
        let text = wire_markdown(&results);
        assert!(
            text.contains("#### Where the time goes at 1000 records/s"),
            "{text}"
        );
        let row = text
            .lines()
            .find(|l| l.starts_with("| wasmkafka raw"))
            .expect(&text);
        assert_eq!(
            row,
            "| wasmkafka raw | 20.0 (20.0-20.0) | 75.0% | 2000 (2000-2000) \
             | 1000 (1000-1000) | 4000 (4000-4000) | 200 (100-300) | 200 (100-300) \
             | 12 of 12 |"
        );
        // Without a capture there is no table.
        let plain = vec![(1000, vec![(Peer::WasmkafkaRaw, vec![sample(&[1, 2])])])];
        assert_eq!(wire_markdown(&plain), "");
    }

    #[test]
    fn a_table_shows_the_median_round_and_the_range() {
        let results = vec![(
            1000,
            vec![(
                Peer::WasmkafkaRaw,
                vec![sample(&[1, 2, 3]), sample(&[5, 6, 7]), sample(&[2, 3, 4])],
            )],
        )];
        let text = markdown(&results, 3, 20, 4);
        assert!(
            text.contains("#### 1000 records/s over 4 partitions"),
            "{text}"
        );
        // Max per round: 3, 7, 4 -> median 4, range 3-7.
        assert!(text.contains("| 4.00 (3.00-7.00) |"), "{text}");
        assert!(text.contains("| 9 of 12 |"), "{text}");
    }

    #[test]
    fn the_plot_is_an_svg_with_a_line_per_consumer() {
        let results = vec![(
            1000,
            vec![
                (Peer::WasmkafkaRaw, vec![sample(&[1, 2, 3, 40])]),
                (Peer::Java, vec![sample(&[2, 3, 5, 90])]),
            ],
        )];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latency.svg");
        svg(&results, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("<svg"), "{}", &text[..100.min(text.len())]);
        assert!(text.contains("wasmkafka raw") && text.contains("Java kafka-clients"));
        // A curve and a legend mark in each consumer's colour.
        for colour in ["#D62728", "#1F77B4"] {
            let lines = text
                .lines()
                .filter(|l| l.contains("<polyline") && l.contains(colour))
                .count();
            assert_eq!(lines, 2, "{colour}");
        }
    }
}
