//! Hot swap: a plugin file that changes on disk is picked up at its next call (the next
//! rebalance or reset), without a restart. A new version that does not load (a broken file,
//! another kind of plugin, an assignor that renamed itself) is refused once per file version:
//! the previous version keeps running and the log says why.
//!
//! Invariant: a call always runs one whole version; a swap happens between calls, never
//! inside one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::failure::PluginError;
use crate::error_chain::Chain;

/// Which version of a file: its modification time and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        let metadata = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            modified: metadata.modified().ok(),
            len: metadata.len(),
        })
    }
}

#[derive(Debug)]
struct Versions<L> {
    current: Arc<L>,
    loaded_from: Option<FileStamp>,
    /// The last file version refused (not retried until the file changes again).
    refused: Option<FileStamp>,
}

/// The loaded version of a plugin file, swapped when the file changes.
#[derive(Debug)]
pub struct Swappable<L> {
    path: PathBuf,
    versions: Mutex<Versions<L>>,
}

impl<L> Swappable<L> {
    /// `loaded` came from `path` as it is now.
    pub fn new(path: &Path, loaded: L) -> Swappable<L> {
        Swappable {
            path: path.to_path_buf(),
            versions: Mutex::new(Versions {
                current: Arc::new(loaded),
                loaded_from: FileStamp::of(path),
                refused: None,
            }),
        }
    }

    /// The version to call: a new one when the file changed and `load` accepts it, else the
    /// one already loaded. Returns whether it swapped.
    pub fn current(&self, load: impl FnOnce(&Path) -> Result<L, PluginError>) -> (Arc<L>, bool) {
        let now = FileStamp::of(&self.path);
        let mut versions = self.versions.lock().expect("plugin versions lock");
        let changed = now.is_some() && now != versions.loaded_from && now != versions.refused;
        if !changed {
            return (versions.current.clone(), false);
        }
        match load(&self.path) {
            Ok(loaded) => {
                tracing::info!(plugin = %self.path.display(), "plugin file changed: the new version is in use");
                versions.current = Arc::new(loaded);
                versions.loaded_from = now;
                versions.refused = None;
                (versions.current.clone(), true)
            }
            Err(error) => {
                tracing::error!(plugin = %self.path.display(), error = %Chain(&error), "plugin file changed but the new version is refused; the previous version keeps running");
                versions.refused = now;
                (versions.current.clone(), false)
            }
        }
    }
}
