//! Self-contained HTML reports (`assign-sim --report`, `offsets plan --report`): escaping, the
//! page around a body (inline CSS; no script, nothing fetched), and small SVG pieces.
//!
//! Numbers a reader or a test may check sit in `data-` attributes, written with Rust's
//! shortest round-trip formatting ([`number`]), the same digits `serde_json` writes.

use std::fmt::Write;

/// Colours for topics and chart series, in order (then again from the first).
pub const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

/// `text` safe inside HTML text and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A number as a `data-` attribute holds it: integers without a fraction, others in the
/// shortest form that reads back the same.
pub fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// A whole page: `title` (escaped) and `body` (HTML already escaped by its maker).
pub fn page(title: &str, body: &str) -> String {
    let mut css = String::from(CSS);
    for (i, colour) in PALETTE.iter().enumerate() {
        let _ = writeln!(
            css,
            ".t{i}{{fill:{colour}}} .s{i}{{stroke:{colour}}} .k{i}{{background:{colour}}}"
        );
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>\n{css}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        escape(title)
    )
}

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;max-width:1400px}
h1{font-size:1.5em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ccc}
h3{font-size:1.05em;margin:1.2em 0 .3em}
pre{background:#f4f4f4;padding:.6em;overflow-x:auto;white-space:pre-wrap}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:2px 8px;text-align:left}
.charts{display:flex;flex-wrap:wrap;gap:1em}
.scroll{overflow-x:auto;max-width:100%}
figure{margin:.5em 0 1.2em}figcaption{font-size:.9em;color:#444}
.key{display:inline-block;width:.9em;height:.9em;vertical-align:middle;margin:0 .3em 0 .8em}
svg text{font:11px system-ui,sans-serif;fill:#333}
.axis{stroke:#999;stroke-width:1}
.line{fill:none;stroke-width:2}
.mv{fill:none;stroke:#000;stroke-width:1.5}
.rv{stroke:#c00;stroke-width:1.2}
.lo{stroke:#555;stroke-width:1.2;stroke-dasharray:2 1}
.gone{fill:#f3e0e0}
.span-skip{fill:#e15759;fill-opacity:.55}.span-again{fill:#f28e2b;fill-opacity:.55}
.log{fill:#dde6f0}
";

/// One line of a chart: a value per step (`None`: nothing to show there).
pub struct Series {
    pub name: String,
    pub values: Vec<Option<f64>>,
}

/// A line chart over steps `0..n`, one line per series. The `<svg>` carries `data-chart=id`;
/// each point is a `<circle>` with `data-series`, `data-step` and `data-value`, and a
/// `<title>` saying the same in words.
pub fn line_chart(id: &str, title: &str, unit: &str, series: &[Series]) -> String {
    const W: f64 = 420.0;
    const H: f64 = 220.0;
    const LEFT: f64 = 48.0;
    const RIGHT: f64 = 12.0;
    const TOP: f64 = 24.0;
    const BOTTOM: f64 = 40.0;
    let steps = series.iter().map(|s| s.values.len()).max().unwrap_or(0);
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(0.0f64, |a, &b| a.max(b));
    let top = if max > 0.0 { max } else { 1.0 };
    let x = |step: usize| LEFT + (W - LEFT - RIGHT) * (step as f64 + 0.5) / steps.max(1) as f64;
    let y = |value: f64| TOP + (H - TOP - BOTTOM) * (1.0 - value / top);
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg class=\"chart\" data-chart=\"{}\" width=\"{W}\" height=\"{H}\" \
         viewBox=\"0 0 {W} {H}\" role=\"img\"><title>{}</title>\
         <text x=\"4\" y=\"14\">{}</text>\
         <line class=\"axis\" x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{}\"/>\
         <line class=\"axis\" x1=\"{LEFT}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text>",
        escape(id),
        escape(title),
        escape(&format!("{title} ({unit})")),
        H - BOTTOM,
        H - BOTTOM,
        W - RIGHT,
        H - BOTTOM,
        LEFT - 4.0,
        TOP + 4.0,
        short(top),
        LEFT - 4.0,
        H - BOTTOM + 4.0,
    );
    for step in 0..steps {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{step}</text>",
            x(step),
            H - BOTTOM + 16.0
        );
    }
    let _ = write!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">step</text>",
        (LEFT + W - RIGHT) / 2.0,
        H - 6.0
    );
    for (i, line) in series.iter().enumerate() {
        let class = i % PALETTE.len();
        let points: Vec<String> = line
            .values
            .iter()
            .enumerate()
            .filter_map(|(step, v)| v.map(|v| format!("{:.1},{:.1}", x(step), y(v))))
            .collect();
        let _ = write!(
            out,
            "<polyline class=\"line s{class}\" points=\"{}\"/>",
            points.join(" ")
        );
        for (step, value) in line.values.iter().enumerate() {
            let Some(value) = value else { continue };
            let _ = write!(
                out,
                "<circle class=\"t{class}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" \
                 data-series=\"{}\" data-step=\"{step}\" data-value=\"{}\">\
                 <title>{}</title></circle>",
                x(step),
                y(*value),
                escape(&line.name),
                number(*value),
                escape(&format!(
                    "{}, step {step}: {} {unit}",
                    line.name,
                    number(*value)
                )),
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// A legend: a coloured key and a name per series (or topic).
pub fn legend<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::from("<p class=\"legend\">");
    for (i, name) in names.into_iter().enumerate() {
        let _ = write!(
            out,
            "<span class=\"key k{}\"></span>{}",
            i % PALETTE.len(),
            escape(name)
        );
    }
    out.push_str("</p>");
    out
}

/// A table: a header row and rows of cells (all escaped here).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::from("<table><tr>");
    for h in header {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", escape(cell));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
    out
}

/// A value for an axis label: a few significant digits.
fn short(value: f64) -> String {
    if value >= 100.0 || value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn numbers_read_back_the_same() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(number(0.000123), "0.000123");
    }

    #[test]
    fn a_chart_names_every_point() {
        let chart = line_chart(
            "moved",
            "moved <partitions>",
            "partitions",
            &[Series {
                name: "a&b".into(),
                values: vec![Some(0.0), None, Some(4.0)],
            }],
        );
        assert_eq!(chart.matches("<circle").count(), 2);
        assert!(chart.contains("data-series=\"a&amp;b\" data-step=\"2\" data-value=\"4\""));
        assert!(chart.contains("moved &lt;partitions&gt;"));
    }
}
