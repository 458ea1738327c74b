//! `[plugins]`: the Wasm assignors and reset policy, and the limits every call runs under.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::plugin::{CompileCache, PluginLimits, Sha256Digest};

/// `[plugins]`: Wasm assignors and a Wasm reset policy, and the limits every call runs under.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// Where compiled plugins are cached (default: $XDG_CACHE_HOME or ~/.cache, /wasmkafka/plugins).
    pub cache_dir: Option<PathBuf>,
    /// The cache's size bound; the least recently used entries go beyond it.
    pub cache_max_bytes: u64,
    pub deadline_ms: u64,
    pub memory_bytes: usize,
    pub max_file_bytes: usize,
    /// Assignor plugins: each takes its place in the vote where `consumer.assignors` names it
    /// (by the name the plugin gives itself), or before the named ones when it is not named.
    pub assignors: Vec<PluginRef>,
    /// A reset-policy plugin; when it fails, `consumer.from` decides.
    pub reset_policy: Option<PluginRef>,
    /// The built-in assignor used when the chosen one fails or answers an invalid assignment.
    pub assignor_fallback: String,
}

/// One plugin file and the settings handed to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginRef {
    pub path: PathBuf,
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// The SHA-256 the file must have (`sha256sum`, `wasmkafka plugin check`): any other
    /// build is refused, at start and when the file changes while running.
    #[serde(default)]
    pub sha256: Option<Sha256Digest>,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        let limits = PluginLimits::default();
        PluginsConfig {
            cache_dir: None,
            cache_max_bytes: crate::plugin::cache::DEFAULT_MAX_BYTES,
            deadline_ms: limits.deadline.as_millis() as u64,
            memory_bytes: limits.memory_bytes,
            max_file_bytes: limits.max_file_bytes,
            assignors: Vec::new(),
            reset_policy: None,
            assignor_fallback: "range".into(),
        }
    }
}

impl PluginsConfig {
    pub fn limits(&self) -> PluginLimits {
        PluginLimits {
            deadline: Duration::from_millis(self.deadline_ms),
            memory_bytes: self.memory_bytes,
            max_file_bytes: self.max_file_bytes,
        }
    }

    /// The compile cache: `cache_dir` (or the default place), bounded by `cache_max_bytes`.
    pub fn cache(&self) -> Option<CompileCache> {
        self.cache_dir()
            .map(|dir| CompileCache::new(dir).with_max_bytes(self.cache_max_bytes))
    }

    pub fn cache_dir(&self) -> Option<PathBuf> {
        self.cache_dir.clone().or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .map(|base| base.join("wasmkafka/plugins"))
        })
    }

    pub fn is_empty(&self) -> bool {
        self.assignors.is_empty() && self.reset_policy.is_none()
    }
}
