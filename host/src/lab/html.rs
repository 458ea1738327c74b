//! The lab's report as one self-contained HTML page (`assign-sim --report FILE`, `--format
//! html`): the scenario and the command that reproduces it, line charts across steps (spread,
//! moved, rack-local share, time per assignor), and per assignor and step a grid of members x
//! partitions (colour per topic) with moved partitions outlined and revocations crossed.
//!
//! Fed by the same [`AssignorRun`]s as [`super::report::json`], so the numbers are the same.
//! Checkable: each grid is an `<svg class="grid">` with `data-assignor`, `data-step`,
//! `data-moved`, `data-revoked` and `data-lost`; in a grid of one cell per partition each
//! moved partition is a `<rect class="mv">` with `data-tp="TOPIC:P"`.
//!
//! Large groups (more than [`MAX_ROWS`] members or [`MAX_COLUMNS`] partitions) are drawn in
//! bands: a cell is a band of members x a band of one topic's partitions, its opacity the
//! share of the band's partitions the members own.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::html::{self, escape, legend, line_chart, Series};

use super::scenario::{Event, Scenario};
use super::simulate::{AssignorRun, StepCells, StepReport};

/// Members drawn one row each up to this many.
pub const MAX_ROWS: usize = 200;
/// Partitions drawn one column each up to this many.
pub const MAX_COLUMNS: usize = 2_000;
/// Bands of members in a banded grid, at most.
const ROW_BANDS: usize = 40;
/// Bands of partitions in a banded grid, at most (plus one per topic, rounding).
const COLUMN_BANDS: usize = 80;
/// Members listed in the scenario's table (the rest counted).
const LISTED_MEMBERS: usize = 20;

/// The report for `runs` of `scenario`; `command` is the line that reproduces it.
pub fn render(scenario: &Scenario, runs: &[AssignorRun], command: &str) -> String {
    let steps = runs.first().map_or(0, |r| r.steps.len());
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>Policy lab: {} assignor(s), {} step(s)</h1>\n<p>Reproduce with:</p><pre id=\"command\">{}</pre>\n",
        runs.len(),
        steps,
        escape(command)
    );
    body.push_str(&scenario_section(scenario));
    body.push_str(&charts(runs));
    for (index, run) in runs.iter().enumerate() {
        body.push_str(&assignor_section(index, run));
    }
    html::page("wasmkafka policy lab", &body)
}

fn scenario_section(scenario: &Scenario) -> String {
    let mut out = String::from("<h2>Scenario</h2>\n");
    let topics: Vec<Vec<String>> = scenario
        .topics
        .iter()
        .map(|t| {
            let racks = t
                .partitions
                .first()
                .map_or("-".to_string(), |r| r.join(" "));
            vec![t.name.clone(), t.partitions.len().to_string(), racks]
        })
        .collect();
    out.push_str(&html::table(
        &["topic", "partitions", "replica racks of partition 0"],
        &topics,
    ));
    // Colours go by topic name in order, as in the grids.
    let names: std::collections::BTreeSet<&str> =
        scenario.topics.iter().map(|t| t.name.as_str()).collect();
    out.push_str(&legend(names));
    let listed: Vec<Vec<String>> = scenario
        .members
        .iter()
        .take(LISTED_MEMBERS)
        .map(|m| {
            vec![
                m.id.clone(),
                m.rack.clone().unwrap_or_else(|| "-".into()),
                m.topics.join(", "),
                m.owned.len().to_string(),
            ]
        })
        .collect();
    let _ = write!(
        out,
        "<h3>{} member(s) at the start, {} rack(s), replication {}</h3>",
        scenario.members.len(),
        scenario.racks,
        scenario.replication
    );
    out.push_str(&html::table(
        &["member", "rack", "topics", "owned"],
        &listed,
    ));
    if scenario.members.len() > LISTED_MEMBERS {
        let _ = write!(
            out,
            "<p>... and {} more.</p>",
            scenario.members.len() - LISTED_MEMBERS
        );
    }
    out.push_str("<h3>Steps</h3><ol start=\"0\" id=\"steps\">");
    for event in std::iter::once(&Event::Start).chain(&scenario.events) {
        let _ = write!(out, "<li>{}</li>", escape(&event.to_string()));
    }
    out.push_str("</ol>\n");
    out
}

/// The four line charts: one line per assignor.
fn charts(runs: &[AssignorRun]) -> String {
    let series = |value: &dyn Fn(&StepReport) -> Option<f64>| -> Vec<Series> {
        runs.iter()
            .map(|run| Series {
                name: run.assignor.clone(),
                values: run.steps.iter().map(value).collect(),
            })
            .collect()
    };
    let mut out = String::from("<h2>Across steps</h2>\n");
    out.push_str(&legend(runs.iter().map(|r| r.assignor.as_str())));
    out.push_str("<div class=\"charts\">");
    out.push_str(&line_chart(
        "spread",
        "spread: most minus least loaded member",
        "partitions",
        &series(&|s| Some((s.balance.max - s.balance.min) as f64)),
    ));
    out.push_str(&line_chart(
        "moved",
        "partitions moved",
        "partitions",
        &series(&|s| Some(s.moved as f64)),
    ));
    out.push_str(&line_chart(
        "rack-local",
        "rack-local share",
        "fraction",
        &series(&|s| s.rack_local),
    ));
    out.push_str(&line_chart(
        "assign-ms",
        "time in the assignor (all rounds)",
        "ms",
        &series(&|s| Some(s.assign_seconds.iter().sum::<f64>() * 1000.0)),
    ));
    out.push_str("</div>\n");
    out
}

fn assignor_section(index: usize, run: &AssignorRun) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<h2 id=\"assignor-{index}\">{} <small>({}, {})</small></h2>",
        escape(&run.assignor),
        escape(run.protocol),
        escape(&run.source)
    );
    for step in &run.steps {
        let _ = writeln!(
            out,
            "<figure><figcaption>step {}: {} &mdash; {} member(s), {} partition(s), {} \
             round(s), per member {}-{}, moved {}, revoked {}, lost {}, unassigned {}</figcaption>\
             <div class=\"scroll\">{}</div></figure>",
            step.step,
            escape(&step.event),
            step.members,
            step.partitions,
            step.rounds,
            step.balance.min,
            step.balance.max,
            step.moved,
            step.revoked,
            step.lost,
            step.unassigned,
            grid(index, run, step)
        );
    }
    out
}

/// Where a topic's columns start, and how many partitions a column holds.
struct Columns {
    band: usize,
    first: BTreeMap<String, (usize, usize)>,
    count: usize,
}

impl Columns {
    fn new(cells: &StepCells) -> Columns {
        let total: usize = cells.topics.iter().map(|(_, n)| n).sum();
        let band = if total > MAX_COLUMNS {
            total.div_ceil(COLUMN_BANDS)
        } else {
            1
        };
        let mut first = BTreeMap::new();
        let mut count = 0;
        for (topic_index, (topic, partitions)) in cells.topics.iter().enumerate() {
            first.insert(topic.clone(), (count, topic_index));
            count += partitions.div_ceil(band);
        }
        Columns { band, first, count }
    }

    /// The column and the topic's index of a partition.
    fn of(&self, topic: &str, partition: i32) -> Option<(usize, usize)> {
        let (start, topic_index) = self.first.get(topic)?;
        Some((start + partition as usize / self.band, *topic_index))
    }
}

/// What one cell of a grid holds.
#[derive(Default, Clone, Copy)]
struct Cell {
    topic: usize,
    owned: u32,
    moved: u32,
    revoked: u32,
    lost: u32,
}

/// One step's grid as an `<svg>`.
fn grid(index: usize, run: &AssignorRun, step: &StepReport) -> String {
    let cells = &step.cells;
    let columns = Columns::new(cells);
    let rows = cells.members.len();
    let row_band = if rows > MAX_ROWS {
        rows.div_ceil(ROW_BANDS)
    } else {
        1
    };
    let row_count = rows.div_ceil(row_band).max(1);
    let banded = row_band > 1 || columns.band > 1;
    let row_of: BTreeMap<&str, usize> = cells
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id.as_str(), i / row_band))
        .collect();
    let mut grid: BTreeMap<(usize, usize), Cell> = BTreeMap::new();
    let mut place = |row: usize, topic: &str, partition: i32, what: &dyn Fn(&mut Cell)| {
        if let Some((column, topic_index)) = columns.of(topic, partition) {
            let cell = grid.entry((row, column)).or_default();
            cell.topic = topic_index;
            what(cell);
        }
    };
    for (i, member) in cells.members.iter().enumerate() {
        let row = i / row_band;
        for (topic, partition) in &member.owned {
            place(row, topic, *partition, &|c| c.owned += 1);
        }
        for (topic, partition) in &member.revoked {
            place(row, topic, *partition, &|c| c.revoked += 1);
        }
        for (topic, partition) in &member.lost {
            place(row, topic, *partition, &|c| c.lost += 1);
        }
    }
    let mut moved_marks = String::new();
    for moved in &step.moved_partitions {
        let owner = moved.to.as_deref().unwrap_or(&moved.from);
        let Some(&row) = row_of.get(owner) else {
            continue;
        };
        place(row, &moved.topic, moved.partition, &|c| c.moved += 1);
        if !banded {
            if let Some((column, _)) = columns.of(&moved.topic, moved.partition) {
                let (x, y, w, h) = geometry(row, column, columns.count, row_count);
                let _ = write!(
                    moved_marks,
                    "<rect class=\"mv\" x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" \
                     data-tp=\"{}:{}\"><title>{}</title></rect>",
                    escape(&moved.topic),
                    moved.partition,
                    escape(&format!(
                        "{}:{} moved from {} to {}",
                        moved.topic,
                        moved.partition,
                        moved.from,
                        moved.to.as_deref().unwrap_or("nobody")
                    ))
                );
            }
        }
    }
    let width = LABELS + columns.count * cell_width(columns.count);
    let height = TOP + row_count * cell_height(row_count);
    let total = |f: fn(&Cell) -> u32| grid.values().map(f).sum::<u32>();
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg class=\"grid\" id=\"grid-{index}-{}\" data-assignor=\"{}\" data-step=\"{}\" \
         data-moved=\"{}\" data-revoked=\"{}\" data-lost=\"{}\" data-banded=\"{banded}\" \
         data-member-band=\"{row_band}\" data-partition-band=\"{}\" width=\"{width}\" \
         height=\"{height}\" viewBox=\"0 0 {width} {height}\">",
        step.step,
        escape(&run.assignor),
        step.step,
        total(|c| c.moved),
        total(|c| c.revoked),
        total(|c| c.lost),
        columns.band,
    );
    let _ = write!(
        out,
        "<title>{}</title>",
        escape(&format!(
            "{}, step {}: members (rows{}) x partitions (columns{})",
            run.assignor,
            step.step,
            if row_band > 1 {
                format!(", {row_band} a row")
            } else {
                String::new()
            },
            if columns.band > 1 {
                format!(", {} a column", columns.band)
            } else {
                String::new()
            }
        ))
    );
    out.push_str(&row_labels(cells, row_band, row_count));
    out.push_str(&topic_labels(&columns, cells));
    // Owned cells: one path per topic and opacity level.
    let mut paths: BTreeMap<(usize, u32), String> = BTreeMap::new();
    let mut revoked = String::new();
    let mut lost = String::new();
    for (&(row, column), cell) in &grid {
        let (x, y, w, h) = geometry(row, column, columns.count, row_count);
        if cell.owned > 0 {
            let capacity = columns.band as f64;
            let level = ((cell.owned as f64 / capacity) * 4.0)
                .ceil()
                .clamp(1.0, 4.0) as u32;
            let _ = write!(
                paths.entry((cell.topic, level)).or_default(),
                "M{x} {y}h{w}v{h}h-{w}z"
            );
        }
        if cell.revoked > 0 {
            let _ = write!(revoked, "M{x} {y}l{w} {h}M{} {y}l-{w} {h}", x + w);
        }
        if cell.lost > 0 {
            let _ = write!(lost, "M{x} {}h{w}", y + h / 2);
        }
    }
    for ((topic, level), d) in &paths {
        let _ = write!(
            out,
            "<path class=\"t{}\" fill-opacity=\"{}\" d=\"{d}\"/>",
            topic % html::PALETTE.len(),
            f64::from(*level) / 4.0
        );
    }
    if !revoked.is_empty() {
        let _ = write!(out, "<path class=\"rv\" d=\"{revoked}\"/>");
    }
    if !lost.is_empty() {
        let _ = write!(out, "<path class=\"lo\" d=\"{lost}\"/>");
    }
    if banded {
        let mut d = String::new();
        for (&(row, column), cell) in &grid {
            if cell.moved > 0 {
                let (x, y, w, h) = geometry(row, column, columns.count, row_count);
                let _ = write!(d, "M{x} {y}h{w}v{h}h-{w}z");
            }
        }
        if !d.is_empty() {
            let _ = write!(out, "<path class=\"mv\" d=\"{d}\"/>");
        }
    } else {
        out.push_str(&moved_marks);
    }
    out.push_str("</svg>");
    out
}

/// Room for member labels on the left and topic labels on top.
const LABELS: usize = 90;
const TOP: usize = 16;

fn cell_width(columns: usize) -> usize {
    (1000 / columns.max(1)).clamp(3, 14)
}

fn cell_height(rows: usize) -> usize {
    (600 / rows.max(1)).clamp(4, 14)
}

/// A cell's x, y, width and height.
fn geometry(
    row: usize,
    column: usize,
    columns: usize,
    rows: usize,
) -> (usize, usize, usize, usize) {
    let (w, h) = (cell_width(columns), cell_height(rows));
    (LABELS + column * w, TOP + row * h, w, h)
}

fn row_labels(cells: &StepCells, row_band: usize, rows: usize) -> String {
    let h = cell_height(rows);
    let mut out = String::new();
    // Label every row while they are tall enough to read, else every few.
    let every = (11 / h).max(1);
    for (row, members) in cells.members.chunks(row_band.max(1)).enumerate() {
        let gone = members.iter().all(|m| m.gone);
        if gone {
            let _ = write!(
                out,
                "<rect class=\"gone\" x=\"0\" y=\"{}\" width=\"{LABELS}\" height=\"{h}\"/>",
                TOP + row * h
            );
        }
        if row % every != 0 {
            continue;
        }
        let first = &members[0];
        let label = match members.last() {
            Some(last) if members.len() > 1 => format!("{}..{}", first.id, last.id),
            _ => match &first.rack {
                Some(rack) => format!("{} {rack}", first.id),
                None => first.id.clone(),
            },
        };
        let _ = write!(
            out,
            "<text x=\"2\" y=\"{}\">{}{}</text>",
            TOP + row * h + h.min(11) - 1,
            escape(&label),
            if gone { " (gone)" } else { "" }
        );
    }
    out
}

fn topic_labels(columns: &Columns, cells: &StepCells) -> String {
    let w = cell_width(columns.count);
    let mut out = String::new();
    for (topic, _) in &cells.topics {
        if let Some((start, _)) = columns.first.get(topic) {
            let _ = write!(
                out,
                "<text x=\"{}\" y=\"12\">{}</text>",
                LABELS + start * w,
                escape(topic)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::assignor::Builtin;
    use crate::lab::simulate::{builtin, simulate};

    fn runs(scenario: &Scenario) -> Vec<AssignorRun> {
        [Builtin::Range, Builtin::CooperativeSticky]
            .into_iter()
            .map(|b| simulate(scenario, &*builtin(b), "built-in", Builtin::Range).unwrap())
            .collect()
    }

    #[test]
    fn one_grid_per_assignor_and_step_with_every_moved_partition() {
        let mut scenario = Scenario::from_flags(3, &["a<b>:6".into(), "c:4".into()], 2, 2).unwrap();
        scenario.push_events(&["join 1", "leave m000"]).unwrap();
        let runs = runs(&scenario);
        let page = render(&scenario, &runs, "wasmkafka assign-sim --topics 'a<b>:6'");
        assert_eq!(page.matches("<svg class=\"grid\"").count(), 6);
        assert!(!page.contains("a<b>"), "unescaped topic name");
        for run in &runs {
            for step in &run.steps {
                let marks = page
                    .split(&format!(
                        "data-assignor=\"{}\" data-step=\"{}\"",
                        run.assignor, step.step
                    ))
                    .nth(1)
                    .unwrap()
                    .split("</svg>")
                    .next()
                    .unwrap()
                    .matches("<rect class=\"mv\"")
                    .count();
                assert_eq!(marks, step.moved, "{} step {}", run.assignor, step.step);
            }
        }
    }

    #[test]
    fn large_groups_are_banded() {
        let scenario = Scenario::from_flags(300, &["t:3000".into()], 0, 1).unwrap();
        let runs = runs(&scenario);
        let page = render(&scenario, &runs, "x");
        assert!(page.contains("data-banded=\"true\""));
        assert!(page.len() < 1_000_000, "{} bytes", page.len());
    }
}
