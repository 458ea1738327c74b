//! The README's code blocks, for the tests that run what a user would copy from it.

use std::path::Path;
use std::process::Command;

use crate::bounded::{assert_succeeded, BoundedOutput};

/// The repository's README.md.
pub fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md")
}

/// The README's first block fenced as ```` ```lang ```` that contains `needle`, without its
/// fences.
pub fn readme_block(lang: &str, needle: &str) -> String {
    readme()
        .split(&format!("```{lang}\n"))
        .skip(1)
        .map(|block| block.split("```").next().unwrap_or_default())
        .find(|block| block.contains(needle))
        .unwrap_or_else(|| panic!("no ```{lang} block of the README contains `{needle}`"))
        .to_string()
}

/// Runs `script` as a user runs lines copied from the README: `bash -euo pipefail -c`, in
/// `dir` (`None`: the test's own), with the directory of `wasmkafka` (the binary under test)
/// first on PATH. Asserts that it succeeded (the failure shows the script, the exit status and
/// its stderr) and returns its stdout.
pub fn run_shell_script(script: &str, wasmkafka: &Path, dir: Option<&Path>) -> Vec<u8> {
    let bin = wasmkafka.parent().expect("the binary's directory");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let mut command = Command::new("bash");
    command
        .args(["-euo", "pipefail", "-c", script])
        .env("PATH", path);
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let output = command.bounded_output().unwrap();
    assert_succeeded(&output, script);
    output.stdout
}
