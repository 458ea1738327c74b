//! The plugin components the tests load: every crate under `plugins/` and `tests/plugins/`,
//! built once per test process with `scripts/build-plugins.sh` (cargo skips what is up to
//! date).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The `.wasm` of a plugin crate, built if needed (once per process; cargo skips what is up
/// to date).
pub fn plugin(crate_name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let output = Command::new(workspace_root().join("scripts/build-plugins.sh"))
            .output()
            .map_err(|e| format!("cannot run scripts/build-plugins.sh: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "building the plugins failed (is the wasm32-wasip2 target installed? \
                 scripts/setup.sh adds it):\n{}",
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    });
    if let Err(error) = built {
        panic!("{error}");
    }
    let path = target_dir()
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", crate_name.replace('-', "_")));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// The `.wasm` of a Python plugin (`plugins/python/<name>/`, `tests/python-plugins/<name>/`),
/// built with componentize-py by `scripts/build-python-plugins.sh` if needed (once per
/// process; the script keeps what is up to date).
pub fn python_plugin(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let tool = crate::python::componentize_py().map_err(|e| format!("{e:#}"))?;
        let output = Command::new(workspace_root().join("scripts/build-python-plugins.sh"))
            .env("COMPONENTIZE_PY", tool)
            .env("CARGO_TARGET_DIR", target_dir())
            .output()
            .map_err(|e| format!("cannot run scripts/build-python-plugins.sh: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "building the Python plugins failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    });
    if let Err(error) = built {
        panic!("{error}");
    }
    let path = target_dir()
        .join("python-plugins")
        .join(format!("{name}.wasm"));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// A compile cache for the tests' Python plugins (a CPython component takes a minute to
/// compile in a debug build): `<target>/python-plugins/compiled`, kept between runs.
pub fn python_compile_cache() -> wasmkafka::plugin::CompileCache {
    wasmkafka::plugin::CompileCache::new(target_dir().join("python-plugins/compiled"))
}
