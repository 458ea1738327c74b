//! The compiled-plugin cache: Cranelift turns a component into machine code once, and later
//! starts load that code from disk in milliseconds instead of compiling again.
//!
//! Loading compiled code is `unsafe` in wasmtime (`Component::deserialize`): the bytes are
//! run as machine code, so whoever can write a cache entry can run code in this process. The
//! cache is therefore held to the same trust as the binary itself:
//!
//! - **Private directory.** The directory is used only when it belongs to the user running
//!   the consumer and no one else may write to it (on Unix: owned by the effective user, no
//!   group or other write bit); it is created with mode 0700 and entries with 0600. Any other
//!   directory is not used: every plugin is compiled in memory, with a warning that says why.
//! - **Checked entries.** An entry is a header, the SHA-256 of the compiled code and the code.
//!   An entry whose digest does not match (a torn write, bit rot, an edit) is never handed to
//!   wasmtime: it is removed and the plugin compiled again.
//! - **Exact keys.** An entry's name is the SHA-256 of the component's bytes and of the
//!   engine's compatibility hash (the wasmtime version and every setting that changes the
//!   code), so a changed plugin, another wasmtime or other settings never load old code.
//! - **Bounded.** After a write, the least recently used entries (a hit refreshes an entry's
//!   modification time) are removed until the directory holds at most `max_bytes`.
//!
//! None of this defends against someone who can already write as the consumer's user (they
//! could replace the binary too); SECURITY.md says so.

use std::hash::Hash;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

use super::digest::Sha256Digest;
use crate::error_chain::Chain;

/// The first bytes of every entry (the format's version is its last byte).
const MAGIC: &[u8; 8] = b"WKCACHE1";
/// Header length: the magic and the SHA-256 of the compiled code.
const HEADER: usize = MAGIC.len() + 32;
/// Default bound on the directory's size.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// Compiled components on disk (see the module docs).
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
    max_bytes: u64,
}

/// Why a cache directory is not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsafeDirectory {
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("{dir} belongs to user {owner}, not to this user ({user})")]
    OtherOwner { dir: PathBuf, owner: u32, user: u32 },
    #[error("others may write to {dir} (mode {mode:o}); run `chmod go-w {dir}` or choose a private plugins.cache_dir")]
    WritableByOthers { dir: PathBuf, mode: u32 },
    #[error("cannot create or read {dir}: {error}")]
    Io { dir: PathBuf, error: String },
}

impl CompileCache {
    /// A cache in `dir`, bounded by [`DEFAULT_MAX_BYTES`].
    pub fn new(dir: impl Into<PathBuf>) -> CompileCache {
        CompileCache {
            dir: dir.into(),
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }

    /// The same cache, bounded by `max_bytes`.
    pub fn with_max_bytes(self, max_bytes: u64) -> CompileCache {
        CompileCache { max_bytes, ..self }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The component compiled from `bytes`: from a checked entry when there is one, else
    /// compiled and stored. A cache that cannot be used only costs the compile.
    pub fn component(&self, engine: &Engine, bytes: &[u8]) -> Result<Component, String> {
        if let Err(reason) = ensure_private(&self.dir) {
            tracing::warn!(%reason, "not using the plugin cache: compiling every plugin in memory");
            return Component::new(engine, bytes).map_err(|e| format!("{e:#}"));
        }
        let path = self.dir.join(format!("{}.cwasm", entry_key(engine, bytes)));
        match read_entry(&path) {
            Ok(Some(code)) => {
                touch(&path);
                // SAFETY: `code` is what this engine's `precompile_component` produced for
                // these bytes under these settings (the key covers both), written by this
                // user into a directory only this user can write, and its digest matches.
                match unsafe { Component::deserialize(engine, &code) } {
                    Ok(component) => return Ok(component),
                    Err(error) => {
                        tracing::warn!(path = %path.display(), error = %format_args!("{error:#}"), "a plugin cache entry does not load; compiling again")
                    }
                }
            }
            Ok(None) => {}
            Err(reason) => {
                tracing::warn!(path = %path.display(), %reason, "refusing a plugin cache entry; compiling again");
                let _ = std::fs::remove_file(&path);
            }
        }
        let code = engine
            .precompile_component(bytes)
            .map_err(|e| format!("{e:#}"))?;
        if let Err(error) = write_entry(&path, &code) {
            tracing::warn!(dir = %self.dir.display(), error = %Chain(&error), "cannot write the plugin cache; compiling every time");
        } else {
            self.evict(&path);
        }
        // SAFETY: `code` was just produced by this engine.
        unsafe { Component::deserialize(engine, &code) }.map_err(|e| format!("{e:#}"))
    }

    /// Removes the least recently used entries other than `keep` (the one just written)
    /// until the directory holds at most `max_bytes`.
    fn evict(&self, keep: &Path) {
        let Ok(listing) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut entries: Vec<(SystemTime, u64, PathBuf)> = listing
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
            .filter_map(|e| {
                let metadata = e.metadata().ok()?;
                Some((metadata.modified().ok()?, metadata.len(), e.path()))
            })
            .collect();
        let mut total: u64 = entries.iter().map(|(_, len, _)| len).sum();
        entries.sort();
        for (_, len, path) in entries {
            if total <= self.max_bytes {
                break;
            }
            if path != keep && std::fs::remove_file(&path).is_ok() {
                tracing::debug!(path = %path.display(), "plugin cache full: removed the least recently used entry");
                total -= len;
            }
        }
    }
}

/// The entry name for `bytes` compiled by `engine`: hex SHA-256 of both.
fn entry_key(engine: &Engine, bytes: &[u8]) -> Sha256Digest {
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let mut sha = hasher.0;
    sha.update(Sha256Digest::of(bytes).0);
    Sha256Digest(sha.finalize().into())
}

/// Feeds a [`Hash`] value into SHA-256 (the compatibility hash is only `Hash`).
struct Sha256Hasher(Sha256);

impl std::hash::Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        unreachable!("only written to")
    }
}

/// The compiled code of a checked entry; `Ok(None)` when there is no entry, `Err` when the
/// entry is not what this cache wrote.
fn read_entry(path: &Path) -> Result<Option<Vec<u8>>, String> {
    let mut data = match std::fs::read(path) {
        Ok(data) => data,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error.to_string()),
    };
    if data.len() < HEADER || &data[..MAGIC.len()] != MAGIC {
        return Err("not a wasmkafka cache entry".into());
    }
    let recorded = &data[MAGIC.len()..HEADER];
    if Sha256Digest::of(&data[HEADER..]).0 != recorded {
        return Err("its compiled code does not match its SHA-256 (damaged or edited)".into());
    }
    Ok(Some(data.split_off(HEADER)))
}

/// Writes an entry beside its final name, then renames it into place (readers never see a
/// half-written entry; two writers each rename a whole one).
fn write_entry(path: &Path, code: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension(format!("{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = private_file(&temporary)?;
        file.write_all(MAGIC)?;
        file.write_all(&Sha256Digest::of(code).0)?;
        file.write_all(code)?;
        file.sync_all()
    })();
    match written.and_then(|()| std::fs::rename(&temporary, path)) {
        Ok(()) => Ok(()),
        Err(error) => {
            let _ = std::fs::remove_file(&temporary);
            Err(error)
        }
    }
}

/// Marks an entry as just used (eviction goes by modification time).
fn touch(path: &Path) {
    if let Ok(file) = std::fs::File::options().append(true).open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::create(path)
}

/// Creates `dir` (mode 0700) if it is missing, then checks that only this user may write it.
#[cfg(unix)]
pub fn ensure_private(dir: &Path) -> Result<(), UnsafeDirectory> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let io = |error: std::io::Error| UnsafeDirectory::Io {
        dir: dir.to_path_buf(),
        error: error.to_string(),
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
    }
    let metadata = std::fs::metadata(dir).map_err(io)?;
    if !metadata.is_dir() {
        return Err(UnsafeDirectory::NotADirectory(dir.to_path_buf()));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let user = unsafe { libc::geteuid() };
    if metadata.uid() != user {
        return Err(UnsafeDirectory::OtherOwner {
            dir: dir.to_path_buf(),
            owner: metadata.uid(),
            user,
        });
    }
    let mode = metadata.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(UnsafeDirectory::WritableByOthers {
            dir: dir.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Creates `dir` if it is missing (no ownership model to check here).
#[cfg(not(unix))]
pub fn ensure_private(dir: &Path) -> Result<(), UnsafeDirectory> {
    std::fs::create_dir_all(dir).map_err(|error| UnsafeDirectory::Io {
        dir: dir.to_path_buf(),
        error: error.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_reads_back_only_while_its_digest_matches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.cwasm");
        assert_eq!(read_entry(&path), Ok(None));
        write_entry(&path, b"machine code").unwrap();
        assert_eq!(read_entry(&path), Ok(Some(b"machine code".to_vec())));
        let mut data = std::fs::read(&path).unwrap();
        *data.last_mut().unwrap() ^= 1;
        std::fs::write(&path, &data).unwrap();
        assert!(read_entry(&path).unwrap_err().contains("does not match"));
        std::fs::write(&path, b"WKCACHE1short").unwrap();
        assert!(read_entry(&path).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn only_a_directory_no_one_else_can_write_is_used() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("made/here");
        ensure_private(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        for open in [0o770, 0o757, 0o777] {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(open)).unwrap();
            let refused = ensure_private(&dir).unwrap_err();
            assert!(
                matches!(refused, UnsafeDirectory::WritableByOthers { .. }),
                "{refused}"
            );
            assert!(refused.to_string().contains("chmod go-w"), "{refused}");
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        ensure_private(&dir).unwrap();
        let file = base.path().join("file");
        std::fs::write(&file, b"").unwrap();
        assert!(matches!(
            ensure_private(&file),
            Err(UnsafeDirectory::NotADirectory(_))
        ));
    }
}
