//! `wasmkafka plugin new`: the crates it makes build as they are, pass their own tests and
//! `wasmkafka plugin check`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn wasmkafka(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasmkafka"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs cargo in `dir` with a target folder shared by these tests (dependencies build once).
fn cargo(dir: &Path, args: &[&str]) {
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-new");
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cargo {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn new_plugins_build_test_and_pass_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().to_str().unwrap();
    for (kind, name, expect) in [
        ("reset-policy", "my-policy", "smoke:    no committed offset"),
        ("assignor", "my-assignor", "smoke:    assign over 3 members"),
    ] {
        let output = wasmkafka(&["plugin", "new", kind, name, "--path", base]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let crate_dir = dir.path().join(name);
        for file in ["Cargo.toml", "src/lib.rs", "README.md", ".gitignore"] {
            assert!(crate_dir.join(file).exists(), "{file}");
        }
        cargo(&crate_dir, &["test", "--quiet"]);
        cargo(
            &crate_dir,
            &["build", "--release", "--quiet", "--target", "wasm32-wasip2"],
        );
        let wasm = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("plugin-new/wasm32-wasip2/release")
            .join(format!("{}.wasm", name.replace('-', "_")));
        let output = wasmkafka(&["plugin", "check", wasm.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains(&format!("name:     {name}")), "{stdout}");
        assert!(stdout.contains(expect), "{stdout}");
    }
    // The same name again, and a name cargo would refuse.
    let output = wasmkafka(&["plugin", "new", "assignor", "my-assignor", "--path", base]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("exists already"));
    let output = wasmkafka(&["plugin", "new", "assignor", "My Plugin", "--path", base]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a usable crate name"));
}
