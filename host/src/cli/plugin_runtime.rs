//! The runtime `plugin check` and `plugin test` run a plugin in: the default limits, the
//! compile cache `run` uses, and the plugin's log lines printed as they come.

use std::sync::Arc;

use crate::plugin::{LogLine, LogSink, PluginLimits, PluginRuntime};

/// A runtime for a plugin author's commands. The compile cache is `run`'s default
/// (`plugins.cache_dir`): a plugin checked or tested once loads without compiling again, here
/// and in `run` (a Python plugin takes seconds to compile).
pub fn author_runtime() -> anyhow::Result<Arc<PluginRuntime>> {
    let cache = crate::config::PluginsConfig::default().cache();
    let runtime = PluginRuntime::new(PluginLimits::default(), cache).map_err(anyhow::Error::msg)?;
    runtime.set_log_sink(Arc::new(PrintedLog));
    Ok(runtime)
}

/// Prints a plugin's log lines on stdout as they come, every level: its author sees them
/// beside the call or case that wrote them.
struct PrintedLog;

impl LogSink for PrintedLog {
    fn write(&self, line: &LogLine) {
        let mut text = format!("          log {} {}", line.level, line.message);
        for (key, value) in &line.fields {
            text.push_str(&format!(" {key}={value}"));
        }
        if line.dropped_before > 0 {
            text.push_str(&format!(
                " ({} lines dropped before this one: over the rate limit)",
                line.dropped_before
            ));
        }
        println!("{text}");
    }
}
