//! `assign-sim --report`: the HTML report rendered in a real headless browser (Chromium,
//! `wasmkafka_tests::browser`). One grid per assignor and step, moved partitions marked
//! exactly where `--format json` of the same run says, chart points equal to its numbers, no
//! console message; a large group banded and small; the README's `--report` line as written.
//! Screenshots are kept under the target directory (`CARGO_TARGET_TMPDIR`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use wasmkafka_tests::bounded::{assert_succeeded, BoundedOutput};
use wasmkafka_tests::browser::{self, start_tags, Tag};
use wasmkafka_tests::readme::run_shell_script;

fn artifact(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// Runs `assign-sim` with `--format json --report FILE`: both from the same runs.
fn json_and_report(args: &[&str], report: &Path) -> Vec<Value> {
    let output = Command::new(env!("CARGO_BIN_EXE_wasmkafka"))
        .arg("assign-sim")
        .args(args)
        .args(["--format", "json", "--report"])
        .arg(report)
        .bounded_output()
        .unwrap();
    assert_succeeded(&output, &format!("{args:?}"));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The grids of the DOM: (assignor, step) -> the grid's tag and the tags inside it.
fn grids(tags: &[Tag]) -> BTreeMap<(String, u64), (Tag, Vec<Tag>)> {
    let mut grids: BTreeMap<(String, u64), (Tag, Vec<Tag>)> = BTreeMap::new();
    let mut current = None;
    for tag in tags {
        if tag.name == "svg" {
            current = None;
            if tag.has_class("grid") {
                let key = (
                    tag.get("data-assignor").unwrap().to_string(),
                    tag.get("data-step").unwrap().parse().unwrap(),
                );
                assert!(
                    grids
                        .insert(key.clone(), (tag.clone(), Vec::new()))
                        .is_none(),
                    "two grids for {key:?}"
                );
                current = Some(key);
            }
            continue;
        }
        if let Some(key) = &current {
            grids.get_mut(key).unwrap().1.push(tag.clone());
        }
    }
    grids
}

/// The chart points: (chart, series, step) -> value.
fn chart_points(tags: &[Tag]) -> BTreeMap<(String, String, u64), f64> {
    let mut points = BTreeMap::new();
    let mut chart = None;
    for tag in tags {
        if tag.name == "svg" {
            chart = tag.get("data-chart").map(str::to_string);
        } else if let (Some(chart), "circle") = (&chart, tag.name.as_str()) {
            let key = (
                chart.clone(),
                tag.get("data-series").unwrap().to_string(),
                tag.get("data-step").unwrap().parse().unwrap(),
            );
            points.insert(key, tag.get("data-value").unwrap().parse().unwrap());
        }
    }
    points
}

fn u(value: &Value) -> u64 {
    value.as_u64().unwrap()
}

/// Checks the rendered DOM against the JSON of the same run.
fn check_against_json(dom: &str, runs: &[Value], banded: bool) {
    let tags = start_tags(dom);
    let grids = grids(&tags);
    let steps: usize = runs
        .iter()
        .map(|r| r["steps"].as_array().unwrap().len())
        .sum();
    assert_eq!(grids.len(), steps, "one grid per assignor and step");
    let points = chart_points(&tags);
    for run in runs {
        let assignor = run["assignor"].as_str().unwrap().to_string();
        for step in run["steps"].as_array().unwrap() {
            let index = u(&step["step"]);
            let (grid, inside) = &grids[&(assignor.clone(), index)];
            let at = format!("{assignor} step {index}");
            assert_eq!(grid.get("data-banded"), Some(&*banded.to_string()), "{at}");
            for key in ["moved", "revoked", "lost"] {
                let shown: u64 = grid.get(&format!("data-{key}")).unwrap().parse().unwrap();
                assert_eq!(shown, u(&step[key]), "{at}: {key}");
            }
            let moved: BTreeSet<String> = step["moved_partitions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| format!("{}:{}", m["topic"].as_str().unwrap(), u(&m["partition"])))
                .collect();
            assert_eq!(moved.len() as u64, u(&step["moved"]), "{at}");
            let marked: BTreeSet<String> = inside
                .iter()
                .filter(|t| t.name == "rect" && t.has_class("mv"))
                .map(|t| t.get("data-tp").unwrap().to_string())
                .collect();
            if !banded {
                assert_eq!(marked, moved, "{at}: moved cells");
            }
            let balance = &step["balance"];
            let expected = [
                (
                    "spread",
                    Some((u(&balance["max"]) - u(&balance["min"])) as f64),
                ),
                ("moved", Some(u(&step["moved"]) as f64)),
                ("rack-local", step["rack_local"].as_f64()),
                (
                    "assign-ms",
                    Some(
                        step["assign_seconds"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|s| s.as_f64().unwrap())
                            .sum::<f64>()
                            * 1000.0,
                    ),
                ),
            ];
            for (chart, value) in expected {
                let key = (chart.to_string(), assignor.clone(), index);
                assert_eq!(points.get(&key).copied(), value, "{at}: chart {chart}");
            }
        }
    }
}

#[test]
fn the_report_in_a_browser_matches_the_json_of_the_same_run() {
    let report = artifact("lab-report-test.html");
    let runs = json_and_report(
        &[
            "--members",
            "6",
            "--topics",
            "orders:24,audit:6",
            "--racks",
            "3",
            "--step",
            "join 2",
            "--step",
            "crash m003",
            "--step",
            "leave m001",
            "--step",
            "grow orders:30",
            "--assignor",
            "range",
            "--assignor",
            "cooperative-sticky",
            "--assignor",
            "broker-uniform",
        ],
        &report,
    );
    assert_eq!(runs.len(), 3);
    let rendered = browser::render(&report);
    assert!(rendered.console.is_empty(), "{:?}", rendered.console);
    check_against_json(&rendered.dom, &runs, false);
    // Something moved and something was revoked, so the marks were checked on real data.
    let moved: u64 = runs
        .iter()
        .flat_map(|r| r["steps"].as_array().unwrap())
        .map(|s| u(&s["moved"]))
        .sum();
    assert!(moved > 10, "{moved}");
    // The scenario and the command that reproduces it.
    let tags = start_tags(&rendered.dom);
    assert!(tags.iter().any(|t| t.get("id") == Some("command")));
    assert!(rendered.dom.contains("crash m003"));
    assert!(rendered.dom.contains("--assignor broker-uniform"));
    let png = artifact("lab-report-test.png");
    let console = browser::screenshot(&report, &png, 1280, 2000);
    assert!(console.is_empty(), "{console:?}");
}

/// Above 200 members or 2,000 partitions the grids are bands: the moved counts still add up
/// to the JSON's, and the page stays small.
#[test]
fn a_large_group_is_drawn_in_bands() {
    let report = artifact("lab-report-large.html");
    let runs = json_and_report(
        &[
            "--members",
            "300",
            "--topics",
            "big:4000,small:200",
            "--step",
            "join 20",
            "--assignor",
            "range",
            "--assignor",
            "cooperative-sticky",
        ],
        &report,
    );
    let size = std::fs::metadata(&report).unwrap().len();
    assert!(size < 2_000_000, "{size} bytes");
    let rendered = browser::render(&report);
    assert!(rendered.console.is_empty(), "{:?}", rendered.console);
    check_against_json(&rendered.dom, &runs, true);
    let console = browser::screenshot(&report, &artifact("lab-report-large.png"), 1280, 1600);
    assert!(console.is_empty(), "{console:?}");
}

/// The console check works: a page that logs an error is caught.
#[test]
fn a_console_error_is_caught() {
    let page = artifact("console-error.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><body><script>console.error('boom')</script></body></html>",
    )
    .unwrap();
    let rendered = browser::render(&page);
    assert!(
        rendered.console.iter().any(|l| l.contains("boom")),
        "{:?}",
        rendered.console
    );
}

/// `--format html` prints the page `--report` writes (same scenario, same grids).
#[test]
fn format_html_prints_the_page() {
    let output = Command::new(env!("CARGO_BIN_EXE_wasmkafka"))
        .args(["assign-sim", "--members", "2", "--topics", "t<&>:4"])
        .args(["--assignor", "range", "--format", "html"])
        .bounded_output()
        .unwrap();
    assert!(output.status.success());
    let page = String::from_utf8(output.stdout).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    assert!(page.contains("t&lt;&amp;&gt;"));
    assert!(!page.contains("<script"));
    assert_eq!(page.matches("<svg class=\"grid\"").count(), 1);
}

/// The README's `--report` line runs as written (in bash, this build's binary first on
/// PATH, in a directory of its own) and its page renders without a console message.
#[test]
fn the_readme_report_line_runs_as_written() {
    let line = wasmkafka_tests::readme::readme_block("sh", "--report lab.html")
        .trim()
        .to_string();
    assert!(line.starts_with("wasmkafka assign-sim "), "{line}");
    let dir = tempfile::tempdir().unwrap();
    run_shell_script(
        &line,
        Path::new(env!("CARGO_BIN_EXE_wasmkafka")),
        Some(dir.path()),
    );
    let rendered = browser::render(&dir.path().join("lab.html"));
    assert!(rendered.console.is_empty(), "{:?}", rendered.console);
    let grids = start_tags(&rendered.dom)
        .iter()
        .filter(|t| t.has_class("grid"))
        .count();
    assert_eq!(grids, 2 * 4, "two assignors, four steps");
}

/// `scripts/lab-screenshot.sh` (the README's picture) runs the README's line word for word
/// and writes a PNG.
#[test]
fn the_screenshot_script_renders_the_readme_line() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let script = std::fs::read_to_string(format!("{root}/scripts/lab-screenshot.sh")).unwrap();
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let line = readme
        .split("```sh\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .find(|b| b.contains("--report lab.html"))
        .unwrap()
        .trim()
        .replacen("wasmkafka ", "\"$bin\" ", 1);
    assert!(
        script.contains(&line),
        "the script runs another line than\n{line}"
    );
    let png = artifact("lab-report-script.png");
    let _ = std::fs::remove_file(&png);
    let output = Command::new("bash")
        .arg(format!("{root}/scripts/lab-screenshot.sh"))
        .arg(&png)
        .env("WASMKAFKA", env!("CARGO_BIN_EXE_wasmkafka"))
        .bounded_output()
        .unwrap();
    assert_succeeded(&output, "");
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
}
