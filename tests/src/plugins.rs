//! The plugin components the tests load: every crate under `plugins/` and `tests/plugins/`,
//! built once per test process with `cargo build --release --target wasm32-wasip2`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Every plugin crate of the workspace.
pub const PLUGIN_CRATES: &[&str] = &[
    "assignor-range",
    "assignor-roundrobin",
    "assignor-sticky",
    "assignor-cooperative-sticky",
    "assignor-weighted",
    "reset-earliest",
    "reset-latest",
    "reset-none",
    "reset-by-duration",
    "reset-rewind",
    "hostile-loop",
    "hostile-memory",
    "hostile-panic",
    "hostile-invalid",
    "hostile-filesystem",
    "hostile-network",
    "hostile-wrong-version",
];

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
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut command = Command::new(cargo);
        command.current_dir(workspace_root()).args([
            "build",
            "--release",
            "--locked",
            "--target",
            "wasm32-wasip2",
        ]);
        for name in PLUGIN_CRATES {
            command.args(["-p", name]);
        }
        let output = command
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
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
