//! A plugin's `log` import (contract 0.3.0): its lines go into the host's log, under its
//! name, within bounds it cannot exceed.
//!
//! Invariants:
//! - A message is cut at [`MAX_MESSAGE_BYTES`]; at most [`MAX_FIELDS`] fields are kept, each
//!   key and value cut at [`MAX_FIELD_BYTES`] (cuts fall on character boundaries). Control
//!   characters are escaped, so a plugin cannot forge a line of the host's log.
//! - Each plugin file has one token bucket across all its calls: [`LINES_PER_SECOND`] with
//!   bursts of [`BURST_LINES`]. Lines beyond it are dropped and counted; the next line that
//!   gets through says how many went before it.
//! - Logging never fails a call and never blocks: a sink writes and returns.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// Bindings of the `plugin-imports` world: the `log` interface every 0.3.0 plugin may import.
/// The contract's other bindings reuse them (`with`), so the linker defines it once.
pub mod bindings {
    wasmtime::component::bindgen!({
        world: "plugin-imports",
        path: "../wit",
    });
}

use bindings::wasmkafka::plugin::log::Level;

/// Longest message kept, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 1024;
/// Most fields kept per line.
pub const MAX_FIELDS: usize = 16;
/// Longest field key or value kept, in bytes.
pub const MAX_FIELD_BYTES: usize = 256;
/// Lines per second a plugin may write, over time.
pub const LINES_PER_SECOND: f64 = 50.0;
/// Lines a plugin may write at once.
pub const BURST_LINES: f64 = 100.0;

/// How important a line is (the WIT `level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        })
    }
}

impl From<Level> for LogLevel {
    fn from(level: Level) -> LogLevel {
        match level {
            Level::Trace => LogLevel::Trace,
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        }
    }
}

/// One line, bounded, as a sink receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The plugin's name (or its file, before the name is known).
    pub plugin: String,
    pub level: LogLevel,
    pub message: String,
    pub fields: Vec<(String, String)>,
    /// Lines of this plugin dropped by the rate limit since the last one written.
    pub dropped_before: u64,
}

/// Where plugin lines go.
pub trait LogSink: Send + Sync {
    fn write(&self, line: &LogLine);
}

/// The default sink: the host's own log (tracing), at the line's level, with `plugin` and
/// the fields as `key=value` pairs.
#[derive(Debug, Default)]
pub struct TracingSink;

impl LogSink for TracingSink {
    fn write(&self, line: &LogLine) {
        let fields = line
            .fields
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        let plugin = line.plugin.as_str();
        let message = line.message.as_str();
        let dropped = line.dropped_before;
        macro_rules! emit {
            ($level:expr) => {
                if dropped > 0 {
                    tracing::event!(
                        $level,
                        plugin,
                        fields,
                        dropped_before = dropped,
                        "{message}"
                    )
                } else if fields.is_empty() {
                    tracing::event!($level, plugin, "{message}")
                } else {
                    tracing::event!($level, plugin, fields, "{message}")
                }
            };
        }
        match line.level {
            LogLevel::Trace => emit!(tracing::Level::TRACE),
            LogLevel::Debug => emit!(tracing::Level::DEBUG),
            LogLevel::Info => emit!(tracing::Level::INFO),
            LogLevel::Warn => emit!(tracing::Level::WARN),
            LogLevel::Error => emit!(tracing::Level::ERROR),
        }
    }
}

/// The token bucket of one plugin file.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
    dropped: u64,
}

/// One plugin file's log: its name, its rate limit, the sink. Cloned into every call's
/// store; the clones share the bucket.
#[derive(Clone)]
pub struct PluginLog {
    file: String,
    name: Arc<OnceLock<String>>,
    bucket: Arc<Mutex<Bucket>>,
    sink: Arc<dyn LogSink>,
}

impl std::fmt::Debug for PluginLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginLog")
            .field("file", &self.file)
            .field("name", &self.name.get())
            .finish()
    }
}

impl PluginLog {
    pub fn new(file: &str, sink: Arc<dyn LogSink>) -> PluginLog {
        PluginLog {
            file: file.to_string(),
            name: Arc::new(OnceLock::new()),
            bucket: Arc::new(Mutex::new(Bucket {
                tokens: BURST_LINES,
                refilled: Instant::now(),
                dropped: 0,
            })),
            sink,
        }
    }

    /// From now on lines carry the plugin's own name (known after its first call).
    pub fn named(&self, name: &str) {
        let _ = self.name.set(name.to_string());
    }

    /// Writes a line within the bounds (see the module invariants).
    pub fn write(&self, level: LogLevel, message: &str, fields: &[(String, String)]) {
        let dropped_before = {
            let mut bucket = self.bucket.lock().expect("plugin log bucket");
            let now = Instant::now();
            let refill = now.duration_since(bucket.refilled).as_secs_f64() * LINES_PER_SECOND;
            bucket.tokens = (bucket.tokens + refill).min(BURST_LINES);
            bucket.refilled = now;
            if bucket.tokens < 1.0 {
                bucket.dropped += 1;
                return;
            }
            bucket.tokens -= 1.0;
            std::mem::take(&mut bucket.dropped)
        };
        let line = LogLine {
            plugin: self
                .name
                .get()
                .cloned()
                .unwrap_or_else(|| self.file.clone()),
            level,
            message: cut(message, MAX_MESSAGE_BYTES),
            fields: fields
                .iter()
                .take(MAX_FIELDS)
                .map(|(k, v)| (cut(k, MAX_FIELD_BYTES), cut(v, MAX_FIELD_BYTES)))
                .collect(),
            dropped_before,
        };
        self.sink.write(&line);
    }
}

/// `text` cut to at most `max` bytes at a character boundary, with "…" when cut, and its
/// control characters escaped (`\n`, `\u{1b}`): a plugin cannot start a line of its own in
/// the host's log or send terminal escapes.
fn cut(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end + 3);
    for c in text[..end].chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if end < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect(Mutex<Vec<LogLine>>);

    impl LogSink for Collect {
        fn write(&self, line: &LogLine) {
            self.0.lock().unwrap().push(line.clone());
        }
    }

    #[test]
    fn lines_are_cut_to_their_bounds() {
        let sink = Arc::new(Collect::default());
        let log = PluginLog::new("p.wasm", sink.clone());
        let long = "é".repeat(MAX_MESSAGE_BYTES);
        let fields: Vec<(String, String)> = (0..40)
            .map(|i| (format!("k{i}"), "v".repeat(1000)))
            .collect();
        log.write(LogLevel::Info, &long, &fields);
        log.named("mine");
        log.write(LogLevel::Warn, "short", &[]);
        log.write(
            LogLevel::Error,
            "two\nlines \u{1b}[31mred",
            &[("k\r".into(), "v\n".into())],
        );
        let lines = sink.0.lock().unwrap();
        assert_eq!(lines[0].plugin, "p.wasm");
        assert!(lines[0].message.len() <= MAX_MESSAGE_BYTES + "…".len());
        assert!(lines[0].message.ends_with('…'));
        assert_eq!(lines[0].fields.len(), MAX_FIELDS);
        assert!(lines[0].fields[0].1.len() <= MAX_FIELD_BYTES + "…".len());
        assert_eq!(lines[1].plugin, "mine");
        assert_eq!(lines[1].message, "short");
        assert_eq!(lines[2].message, "two\\nlines \\u{1b}[31mred");
        assert_eq!(lines[2].fields, [("k\\r".to_string(), "v\\n".to_string())]);
    }

    #[test]
    fn a_flood_is_cut_to_the_burst_and_the_drops_are_counted() {
        let sink = Arc::new(Collect::default());
        let log = PluginLog::new("p.wasm", sink.clone());
        let clone = log.clone();
        for n in 0..10_000 {
            clone.write(LogLevel::Debug, &format!("line {n}"), &[]);
        }
        let written = sink.0.lock().unwrap().len();
        // The burst, and the few refilled while the loop ran.
        assert!((100..110).contains(&written), "{written}");
        std::thread::sleep(std::time::Duration::from_millis(100));
        log.write(LogLevel::Info, "after", &[]);
        let lines = sink.0.lock().unwrap();
        let after = lines.last().unwrap();
        assert_eq!(after.message, "after");
        assert_eq!(after.dropped_before, 10_000 - written as u64);
    }
}
