//! A Python plugin: `app.py` implementing the contract's export, the contract's WIT beside
//! it, recorded cases for `wasmkafka plugin test`, and a README whose commands build the
//! component with componentize-py (CPython compiled to WebAssembly, the module inside it).

use std::path::Path;

use anyhow::Context;

use super::{file_stem, Kind, NewArgs};

/// The componentize-py release the README installs (the one the tests build with).
pub const COMPONENTIZE_PY: &str = "0.25.1";

/// The contract this binary runs, for componentize-py to generate the bindings from.
const CONTRACT_WIT: &str = include_str!("../../../../wit/plugin.wit");

const ASSIGNOR: &str = include_str!("python/assignor.py");
const RESET_POLICY: &str = include_str!("python/reset_policy.py");
const ASSIGNOR_CASES: &str = include_str!("python/assignor_cases.toml");
const RESET_POLICY_CASES: &str = include_str!("python/reset_policy_cases.toml");

/// Writes the project into `dir` (which does not exist yet).
pub fn write_project(dir: &Path, args: &NewArgs) -> anyhow::Result<()> {
    let name = &args.name;
    let file = file_stem(name);
    std::fs::create_dir_all(dir.join("wit"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let write = |path: &str, text: &str| {
        let text = text.replace("@NAME@", name).replace("@FILE@", &file);
        std::fs::write(dir.join(path), text)
            .with_context(|| format!("cannot write {}", dir.join(path).display()))
    };
    let (app, cases) = match args.kind {
        Kind::Assignor => (ASSIGNOR, ASSIGNOR_CASES),
        Kind::ResetPolicy => (RESET_POLICY, RESET_POLICY_CASES),
    };
    write("app.py", app)?;
    write("cases.toml", cases)?;
    write("wit/plugin.wit", CONTRACT_WIT)?;
    write(".gitignore", "/.venv\n*.wasm\n__pycache__/\n")?;
    write("README.md", &readme(name, args.kind))?;
    Ok(())
}

fn readme(name: &str, kind: Kind) -> String {
    let file = file_stem(name);
    let (world, config) = match kind {
        Kind::Assignor => (
            "assignor-plugin",
            format!(
                "[[plugins.assignors]]\npath = \"{file}.wasm\"\n\n[consumer]\nassignors = [\"{name}\", \"range\"]"
            ),
        ),
        Kind::ResetPolicy => (
            "reset-policy-plugin",
            format!("[plugins.reset_policy]\npath = \"{file}.wasm\""),
        ),
    };
    format!(
        r#"# {name}

{what} for wasmkafka, written in Python, as a WebAssembly component (made by `wasmkafka
plugin new --lang python`). `app.py` is the plugin; `wit/plugin.wit` is the contract it
implements; `cases.toml` says what it must answer.

```sh
python3 -m venv .venv && .venv/bin/pip install componentize-py=={COMPONENTIZE_PY}   # once
.venv/bin/componentize-py -d wit -w {world} componentize app -o {file}.wasm
wasmkafka plugin check {file}.wasm
wasmkafka plugin test {file}.wasm --scenario cases.toml
```

Use it from a consumer's config:

```toml
{config}
```

The component carries CPython: about 18 MB, well under `plugins.max_file_bytes` (32 MiB by
default). Its first load compiles it (seconds; cached after that, see `plugins.cache_dir`),
and each call starts a fresh instance under the call's deadline and memory cap (see
BENCHMARKS.md in the wasmkafka repository for what that costs against a Rust plugin). The
plugin gets everything it needs in its arguments (settings from the config come in
`settings`); it has no files or network, and the host checks every answer before it acts on
it.
"#,
        what = kind.described()
    )
}
