//! `offsets plan --report FILE`: the plan as one self-contained HTML page. Per partition, one
//! axis with the log (log start to end), the committed offset and the planned one; the
//! records the plan skips (committed to planned, forward) or reads again (planned to
//! committed, back) are shaded. Each partition's `<svg class="partition">` carries its numbers
//! in `data-` attributes (`data-log-start`, `data-committed`, `data-planned`, `data-end`,
//! `data-skipped`, `data-read-again`).

use std::fmt::Write;

use crate::html::{self, escape};

/// One partition of the plan, where its log and the group stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRow {
    pub topic: String,
    pub partition: i32,
    pub log_start: i64,
    pub committed: Option<i64>,
    pub planned: i64,
    pub end: i64,
}

impl PlanRow {
    /// Records still in the log that the plan jumps over (committed < planned).
    pub fn skipped(&self) -> i64 {
        self.committed.map_or(0, |c| {
            (self.planned.min(self.end) - c.max(self.log_start)).max(0)
        })
    }

    /// Records still in the log the group will read a second time (planned < committed).
    pub fn read_again(&self) -> i64 {
        self.committed.map_or(0, |c| {
            (c.min(self.end) - self.planned.max(self.log_start)).max(0)
        })
    }
}

const W: f64 = 760.0;
const H: f64 = 54.0;
const LEFT: f64 = 20.0;
const RIGHT: f64 = 20.0;

/// The page for `rows` of `group`'s plan; `command` reproduces it.
pub fn render(group: &str, rows: &[PlanRow], command: &str) -> String {
    let skipped: i64 = rows.iter().map(PlanRow::skipped).sum();
    let again: i64 = rows.iter().map(PlanRow::read_again).sum();
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>Offsets plan for group {}</h1>\n<p>Reproduce with:</p><pre id=\"command\">{}</pre>\n\
         <p id=\"totals\" data-skipped=\"{skipped}\" data-read-again=\"{again}\">{} partition(s): \
         {skipped} record(s) skipped <span class=\"key\" style=\"background:#e15759\"></span>, \
         {again} read again <span class=\"key\" style=\"background:#f28e2b\"></span>. \
         L log start, C committed, P planned, E end (the next offset to be written).</p>\n",
        escape(group),
        escape(command),
        rows.len()
    );
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.topic.clone(),
                r.partition.to_string(),
                r.log_start.to_string(),
                r.committed.map_or("-".into(), |c| c.to_string()),
                r.planned.to_string(),
                r.end.to_string(),
                r.skipped().to_string(),
                r.read_again().to_string(),
            ]
        })
        .collect();
    body.push_str(&html::table(
        &[
            "topic",
            "partition",
            "log start",
            "committed",
            "planned",
            "end",
            "skipped",
            "read again",
        ],
        &table,
    ));
    for row in rows {
        body.push_str(&axis(row));
        body.push('\n');
    }
    html::page(&format!("wasmkafka offsets plan: {group}"), &body)
}

/// One partition on its own axis.
fn axis(row: &PlanRow) -> String {
    let committed = row.committed.unwrap_or(row.log_start);
    let lo = row.log_start.min(committed).min(row.planned);
    let hi = row.end.max(committed).max(row.planned).max(lo + 1);
    let x = |offset: i64| LEFT + (W - LEFT - RIGHT) * (offset - lo) as f64 / (hi - lo) as f64;
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg class=\"partition\" data-topic=\"{}\" data-partition=\"{}\" data-log-start=\"{}\" \
         data-committed=\"{}\" data-planned=\"{}\" data-end=\"{}\" data-skipped=\"{}\" \
         data-read-again=\"{}\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\"><title>{}</title>\
         <text x=\"{LEFT}\" y=\"11\">{}</text>\
         <rect class=\"log\" x=\"{:.1}\" y=\"18\" width=\"{:.1}\" height=\"14\"/>",
        escape(&row.topic),
        row.partition,
        row.log_start,
        row.committed.map_or("none".into(), |c| c.to_string()),
        row.planned,
        row.end,
        row.skipped(),
        row.read_again(),
        escape(&format!(
            "{}:{}: log {}..{}, committed {}, planned {}: {} skipped, {} read again",
            row.topic,
            row.partition,
            row.log_start,
            row.end,
            row.committed.map_or("nothing".into(), |c| c.to_string()),
            row.planned,
            row.skipped(),
            row.read_again()
        )),
        escape(&format!("{}:{}", row.topic, row.partition)),
        x(row.log_start),
        x(row.end) - x(row.log_start),
    );
    if let Some(c) = row.committed {
        let span = |class: &str, from: i64, to: i64| {
            let (from, to) = (from.max(row.log_start), to.min(row.end));
            if to <= from {
                return String::new();
            }
            format!(
                "<rect class=\"{class}\" x=\"{:.1}\" y=\"18\" width=\"{:.1}\" height=\"14\"/>",
                x(from),
                x(to) - x(from)
            )
        };
        out.push_str(&span("span-skip", c, row.planned));
        out.push_str(&span("span-again", row.planned, c));
    }
    let mut marks = vec![("L", row.log_start, 44.0), ("E", row.end, 44.0)];
    match row.committed {
        Some(c) if c == row.planned => marks.push(("C=P", c, 14.0)),
        Some(c) => {
            marks.push(("C", c, 14.0));
            marks.push(("P", row.planned, 14.0));
        }
        None => marks.push(("P", row.planned, 14.0)),
    }
    for (label, offset, y) in marks {
        let _ = write!(
            out,
            "<line class=\"axis\" x1=\"{0:.1}\" y1=\"16\" x2=\"{0:.1}\" y2=\"34\"/>\
             <text x=\"{0:.1}\" y=\"{y}\" text-anchor=\"middle\">{label} {offset}</text>",
            x(offset)
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(committed: Option<i64>, planned: i64) -> PlanRow {
        PlanRow {
            topic: "t<1>".into(),
            partition: 0,
            log_start: 10,
            committed,
            planned,
            end: 100,
        }
    }

    #[test]
    fn skipped_and_read_again_count_records_still_in_the_log() {
        assert_eq!(
            (row(Some(20), 50).skipped(), row(Some(20), 50).read_again()),
            (30, 0)
        );
        assert_eq!(
            (row(Some(50), 10).skipped(), row(Some(50), 10).read_again()),
            (0, 40)
        );
        assert_eq!(row(Some(0), 100).skipped(), 90);
        assert_eq!(row(None, 100).skipped(), 0);
    }

    #[test]
    fn the_page_escapes_and_carries_the_numbers() {
        let page = render("g&h", &[row(Some(20), 50)], "wasmkafka offsets plan");
        assert!(page.contains("g&amp;h"));
        assert!(!page.contains("t<1>"));
        assert!(page.contains(
            "data-committed=\"20\" data-planned=\"50\" data-end=\"100\" data-skipped=\"30\""
        ));
    }
}
