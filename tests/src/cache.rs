//! What the tests fetch once and keep (the Kafka jars, the Python venv), in the user's cache:
//! `$WASMKAFKA_CACHE`, else `$XDG_CACHE_HOME/wasmkafka`, else `~/.cache/wasmkafka`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The cache folder.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WASMKAFKA_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("wasmkafka")
}

/// Makes `folder` once, across processes: `fill` runs under the lock file `<folder>.lock`
/// unless `<folder>.complete` says an earlier fill finished; the others wait for the lock and
/// reuse what it made. `fill` starts from an empty `folder`; a fill that failed or was
/// interrupted is redone from scratch next time. `what` names the contents in messages.
pub fn fill_once(folder: &Path, what: &str, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let marker = sibling(folder, "complete");
    if marker.exists() {
        return Ok(());
    }
    let parent = folder.parent().context("a cache folder has a parent")?;
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create the cache folder {}", parent.display()))?;
    let lock = File::create(sibling(folder, "lock"))?;
    lock.lock()
        .with_context(|| format!("cannot lock the cache of {what}"))?;
    if marker.exists() {
        return Ok(());
    }
    eprintln!("cache: making {what} in {} (once)", folder.display());
    if folder.exists() {
        std::fs::remove_dir_all(folder)
            .with_context(|| format!("cannot clear {}", folder.display()))?;
    }
    fill(folder)?;
    File::create(&marker)?;
    Ok(())
}

fn sibling(folder: &Path, extension: &str) -> PathBuf {
    let mut name = folder.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(extension);
    folder.with_file_name(name)
}

/// Runs a setup command (pip, a build) to completion; its output goes into the error when it
/// fails. `what` says what it was for ("pip install confluent-kafka").
pub fn run_checked(command: &mut Command, what: &str) -> Result<()> {
    let output = command
        .output()
        .with_context(|| format!("cannot {what}: {command:?}"))?;
    if !output.status.success() {
        bail!(
            "cannot {what} ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
