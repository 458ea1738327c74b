//! A Rust plugin: a standalone crate that builds as is with `cargo build --release --target
//! wasm32-wasip2`, with a test of its own and a README. The SDK is a path dependency (this
//! source tree's `plugins/sdk` by default) or a git one.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::{file_stem, Kind, NewArgs};

/// Where the SDK was when this binary was built.
fn built_in_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/sdk")
}

/// The SDK dependency line the crate gets.
fn sdk_dependency(args: &NewArgs) -> anyhow::Result<String> {
    Ok(match (&args.sdk_git, &args.sdk_path) {
        (Some(url), _) => match &args.sdk_rev {
            Some(rev) => format!("{{ git = \"{url}\", rev = \"{rev}\" }}"),
            None => format!("{{ git = \"{url}\" }}"),
        },
        (None, path) => {
            let path = path.clone().unwrap_or_else(built_in_sdk);
            let path = path.canonicalize().with_context(|| {
                format!(
                    "the SDK is not at {} (give --sdk-path DIR or --sdk-git URL)",
                    path.display()
                )
            })?;
            if !path.join("Cargo.toml").exists() {
                bail!("{} holds no Cargo.toml: not the SDK", path.display());
            }
            format!("{{ path = {:?} }}", path.display().to_string())
        }
    })
}

/// Writes the crate into `dir` (which does not exist yet).
pub fn write_crate(dir: &Path, args: &NewArgs) -> anyhow::Result<()> {
    let name = &args.name;
    let sdk = sdk_dependency(args)?;
    std::fs::create_dir_all(dir.join("src"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let write = |file: &str, text: String| {
        std::fs::write(dir.join(file), text)
            .with_context(|| format!("cannot write {}", dir.join(file).display()))
    };
    write("Cargo.toml", cargo_toml(name, &sdk))?;
    write(".gitignore", "/target\n".into())?;
    let (lib, readme) = match args.kind {
        Kind::Assignor => (assignor_lib(name), readme(name, args.kind, "assignors")),
        Kind::ResetPolicy => (
            reset_policy_lib(name),
            readme(name, args.kind, "reset_policy"),
        ),
    };
    write("src/lib.rs", lib)?;
    write("README.md", readme)?;
    Ok(())
}

fn cargo_toml(name: &str, sdk: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"
publish = false

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
wasmkafka-plugin-sdk = {sdk}

# A crate of its own, not a member of any workspace around it.
[workspace]

[profile.release]
opt-level = "s"
"#
    )
}

fn assignor_lib(name: &str) -> String {
    format!(
        r#"//! `{name}`: a wasmkafka assignor plugin. The leader of a consumer group runs `assign` over
//! every member and every partition of the subscribed topics; the host checks the answer
//! and falls back to a built-in when it is invalid.

use wasmkafka_plugin_sdk::log;
use wasmkafka_plugin_sdk::policy::assign::{{Assignment, Group}};
use wasmkafka_plugin_sdk::Assignor;

pub struct Plugin;

impl Assignor for Plugin {{
    fn name() -> String {{
        "{name}".into()
    }}

    fn assign(group: &Group) -> Result<Assignment, String> {{
        // A line in the consumer's log under this plugin's name (`plugin check` and
        // `plugin test` print it; `WASMKAFKA_LOG=debug` shows it in `run`).
        let members = group.members.len().to_string();
        log::debug("assigning", &[("members", members.as_str())]);
        // Start from a built-in and change what you need: the same code the host runs.
        Ok(wasmkafka_plugin_sdk::policy::assign::roundrobin(group))
    }}
}}

// The component's exports (the Wasm build only: natively, `cargo test` runs the logic).
wasmkafka_plugin_sdk::export_assignor!(Plugin);

#[cfg(test)]
mod tests {{
    use super::*;
    use std::collections::BTreeMap;
    use wasmkafka_plugin_sdk::policy::assign::{{validate, Member, PartitionInfo}};

    #[test]
    fn every_partition_goes_to_one_member() {{
        let member = |id: &str| Member {{
            member_id: id.into(),
            topics: vec!["events".into()],
            generation: -1,
            ..Member::default()
        }};
        let partitions = (0..6)
            .map(|partition| PartitionInfo {{ partition, racks: Vec::new() }})
            .collect();
        let group = Group {{
            members: vec![member("a"), member("b")],
            topics: BTreeMap::from([("events".to_string(), partitions)]),
            settings: BTreeMap::new(),
        }};
        let assignment = Plugin::assign(&group).unwrap();
        let report = validate(&group, &assignment, false).unwrap();
        assert!(report.unassigned.is_empty());
        assert_eq!(assignment["a"].count() + assignment["b"].count(), 6);
    }}
}}
"#
    )
}

fn reset_policy_lib(name: &str) -> String {
    format!(
        r#"//! `{name}`: a wasmkafka reset-policy plugin. The consumer asks it where a partition
//! starts when it has no committed offset, or when its offset is out of range (deleted or
//! compacted data) or past a truncated log; the host checks the answer against the log.

use wasmkafka_plugin_sdk::policy::reset::{{ResetContext, ResetDecision, ResetReason}};
use wasmkafka_plugin_sdk::ResetPolicy;

pub struct Plugin;

impl ResetPolicy for Plugin {{
    fn name() -> String {{
        "{name}".into()
    }}

    fn decide(context: &ResetContext) -> ResetDecision {{
        match context.reason {{
            // Nothing committed yet: only what arrives from now on.
            ResetReason::NoCommittedOffset => ResetDecision::Latest,
            // Data gone (or a log truncated under us): the oldest record still there.
            _ => ResetDecision::Earliest,
        }}
    }}
}}

// The component's exports (the Wasm build only: natively, `cargo test` runs the logic).
wasmkafka_plugin_sdk::export_reset_policy!(Plugin);

#[cfg(test)]
mod tests {{
    use super::*;
    use std::collections::BTreeMap;

    fn context(reason: ResetReason) -> ResetContext {{
        ResetContext {{
            topic: "events".into(),
            partition: 0,
            reason,
            committed: None,
            log_start: 100,
            high_watermark: 1000,
            now_ms: 0,
            group: None,
            settings: BTreeMap::new(),
        }}
    }}

    #[test]
    fn new_partitions_start_at_the_end_and_lost_ones_at_the_start() {{
        assert_eq!(
            Plugin::decide(&context(ResetReason::NoCommittedOffset)),
            ResetDecision::Latest
        );
        assert_eq!(
            Plugin::decide(&context(ResetReason::OutOfRange {{ offset: 5 }})),
            ResetDecision::Earliest
        );
    }}
}}
"#
    )
}

fn readme(name: &str, kind: Kind, config_key: &str) -> String {
    let what = kind.described();
    let config = if config_key == "assignors" {
        format!("[[plugins.assignors]]\npath = \"target/wasm32-wasip2/release/{}.wasm\"\n\n[consumer]\nassignors = [\"{name}\", \"range\"]", file_stem(name))
    } else {
        format!(
            "[plugins.reset_policy]\npath = \"target/wasm32-wasip2/release/{}.wasm\"",
            file_stem(name)
        )
    };
    format!(
        r#"# {name}

{what} for wasmkafka, as a WebAssembly component (made by `wasmkafka plugin new`).

```sh
rustup target add wasm32-wasip2                        # once
cargo test                                             # the logic, natively
cargo build --release --target wasm32-wasip2           # the plugin
wasmkafka plugin check target/wasm32-wasip2/release/{file}.wasm
```

Use it from a consumer's config:

```toml
{config}
```

The plugin gets everything it needs in its arguments (settings from the config come in
`settings`); it has no clock, files or network of its own, runs under a deadline and a memory
cap, and the host checks every answer before it acts on it.
"#,
        file = file_stem(name)
    )
}
