//! A real headless browser for the HTML reports' tests: Debian's Chromium, which
//! `scripts/setup.sh` installs. Without it these tests fail (they do not skip) and say so.
//!
//! - [`render`]: the DOM after rendering (`--dump-dom`) and every console message the page
//!   logged (`--enable-logging=stderr`: Chromium writes them as `CONSOLE` lines; the reports
//!   run no script, so any such line is an error).
//! - [`screenshot`]: a PNG of the page, kept as a test artifact.
//! - [`start_tags`]: the DOM's start tags in order with their attributes, to check `data-`
//!   attributes without an HTML parser (Chromium writes every attribute double-quoted).
//!
//! Every run is bounded ([`crate::bounded`]) and has a profile directory of its own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::bounded::BoundedOutput;

/// The longest one browser run may take.
const BROWSER_BOUND: Duration = Duration::from_secs(90);

/// The Chromium binary: `WASMKAFKA_CHROMIUM`, else `chromium` or `chromium-browser` on PATH.
/// Panics, naming `scripts/setup.sh`, when there is none.
pub fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("WASMKAFKA_CHROMIUM") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "chromium not found on PATH (nor WASMKAFKA_CHROMIUM): the HTML report tests need a real \
         headless browser; scripts/setup.sh installs it (Debian: apt-get install chromium)"
    );
}

/// What a page became in the browser.
pub struct Rendered {
    /// The DOM after rendering, serialized.
    pub dom: String,
    /// The console messages the page logged (none is expected).
    pub console: Vec<String>,
}

fn run(args: &[String]) -> Output {
    let profile = tempfile::tempdir().expect("a profile directory");
    let output = Command::new(chromium())
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .output_within(BROWSER_BOUND)
        .expect("chromium starts");
    assert!(
        output.status.success(),
        "chromium {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn url(page: &Path) -> String {
    let page = page.canonicalize().expect("the page exists");
    format!("file://{}", page.display())
}

/// The console lines of Chromium's log (`...:CONSOLE:N] "message", source: ...`).
fn console_lines(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|line| line.contains(":CONSOLE"))
        .map(str::to_string)
        .collect()
}

/// Loads `page` and returns its DOM and console messages.
pub fn render(page: &Path) -> Rendered {
    let output = run(&["--dump-dom".to_string(), url(page)]);
    Rendered {
        dom: String::from_utf8(output.stdout).expect("the DOM is UTF-8"),
        console: console_lines(&output.stderr),
    }
}

/// A screenshot of `page` at `width` x `height` to `png`; returns the console messages.
pub fn screenshot(page: &Path, png: &Path, width: u32, height: u32) -> Vec<String> {
    let output = run(&[
        "--hide-scrollbars".to_string(),
        format!("--screenshot={}", png.display()),
        format!("--window-size={width},{height}"),
        url(page),
    ]);
    let written = std::fs::metadata(png).map(|m| m.len()).unwrap_or(0);
    assert!(
        written > 0,
        "chromium wrote no screenshot to {}",
        png.display()
    );
    console_lines(&output.stderr)
}

/// One start tag of the DOM.
#[derive(Debug, Clone)]
pub struct Tag {
    pub name: String,
    pub attributes: BTreeMap<String, String>,
}

impl Tag {
    /// An attribute's value (entities decoded).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }

    pub fn has_class(&self, class: &str) -> bool {
        self.get("class")
            .is_some_and(|c| c.split_whitespace().any(|c| c == class))
    }
}

/// The start tags of a serialized DOM, in document order.
pub fn start_tags(dom: &str) -> Vec<Tag> {
    let mut tags = Vec::new();
    let mut rest = dom;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        if !rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
            continue;
        }
        let name_end = rest
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .unwrap_or(rest.len());
        let name = rest[..name_end].to_ascii_lowercase();
        rest = &rest[name_end..];
        let mut attributes = BTreeMap::new();
        loop {
            rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
            if rest.is_empty() || rest.starts_with('>') {
                break;
            }
            let key_end = rest
                .find(|c: char| c == '=' || c.is_whitespace() || c == '>')
                .unwrap_or(rest.len());
            let key = rest[..key_end].to_ascii_lowercase();
            rest = &rest[key_end..];
            let mut value = String::new();
            if let Some(after) = rest.strip_prefix("=\"") {
                let end = after.find('"').unwrap_or(after.len());
                value = decode(&after[..end]);
                rest = &after[(end + 1).min(after.len())..];
            }
            attributes.insert(key, value);
        }
        // Text inside <script>/<style> may hold '<': skip to the element's end.
        if name == "style" || name == "script" {
            if let Some(end) = rest.find(&format!("</{name}")) {
                rest = &rest[end..];
            }
        }
        tags.push(Tag { name, attributes });
    }
    tags
}

fn decode(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_tags_read_attributes() {
        let tags = start_tags(
            "<!DOCTYPE html><html><style>a<b{}</style><svg class=\"grid x\" data-a=\"m&amp;&quot;1\"><rect class=\"mv\" data-tp=\"t:1\"/></svg>",
        );
        let names: Vec<&str> = tags.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["html", "style", "svg", "rect"]);
        assert!(tags[2].has_class("grid"));
        assert_eq!(tags[2].get("data-a"), Some("m&\"1"));
        assert_eq!(tags[3].get("data-tp"), Some("t:1"));
    }
}
