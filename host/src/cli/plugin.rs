//! `wasmkafka plugin check FILE.wasm`: what a plugin is, what it exports and imports, and a
//! smoke call; a non-zero exit with the reason when it is not usable.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use wasmkafka_policy::assign::{validate, Group, Member, PartitionInfo};

use crate::group::Assignor;
use crate::plugin::{
    inspect, PluginKind, Sha256Digest, WasmAssignor, WasmResetPolicy, CONTRACT_VERSIONS,
};
use crate::policy::{ResetContext, ResetDecision, ResetPolicy, ResetReason};

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Check a plugin: kind, contract version, exports, imports, and a smoke call.
    Check(CheckArgs),
    /// Start a plugin of your own (standalone, with a test and a README): a Rust crate that
    /// builds with `cargo build --release --target wasm32-wasip2`, or (`--lang python`) a
    /// Python module that componentize-py builds.
    New(super::scaffold::NewArgs),
    /// Run a plugin over recorded cases (a scenario file or a folder of them) and compare each
    /// answer with the expected one; non-zero exit when one differs.
    Test(super::plugin_test::TestArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The plugin component (a .wasm built for wasm32-wasip2).
    pub file: PathBuf,
    /// A setting handed to the plugin (repeatable), e.g. --setting weight=3.
    #[arg(long = "setting", value_name = "KEY=VALUE")]
    pub settings: Vec<String>,
}

pub async fn plugin(command: PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::Check(args) => tokio::task::spawn_blocking(move || check(args))
            .await
            .context("the check stopped")?,
        PluginCommand::Test(args) => {
            tokio::task::spawn_blocking(move || super::plugin_test::test(&args))
                .await
                .context("the test stopped")?
        }
        PluginCommand::New(args) => {
            let (dir, next) = super::scaffold::new_plugin(&args)?;
            println!("created {}", dir.display());
            println!("next: {next}");
            Ok(())
        }
    }
}

fn check(args: CheckArgs) -> anyhow::Result<()> {
    let settings: Vec<(String, String)> = args
        .settings
        .iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--setting `{s}` is not KEY=VALUE"))
        })
        .collect::<anyhow::Result<_>>()?;
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let info = inspect(&bytes)
        .with_context(|| format!("{} is not a usable plugin", args.file.display()))?;
    println!("file:     {} ({} bytes)", args.file.display(), bytes.len());
    println!(
        "sha256:   {} (pin it: sha256 = \"...\")",
        Sha256Digest::of(&bytes)
    );
    println!("kind:     {}", info.kind);
    println!(
        "contract: wasmkafka:plugin@{} (this host runs {})",
        info.version,
        CONTRACT_VERSIONS.join(", ")
    );
    println!("exports:  {}", info.exports.join(", "));
    println!(
        "imports:  {}",
        if info.imports.is_empty() {
            "none".to_string()
        } else {
            info.imports.join(", ")
        }
    );
    let runtime = super::plugin_runtime::author_runtime()?;
    match info.kind {
        PluginKind::Assignor => {
            let assignor = WasmAssignor::load(&runtime, &args.file)?.with_settings(settings);
            println!("name:     {}", assignor.name());
            println!("protocol: {:?}", assignor.protocol());
            let group = sample_group();
            let started = Instant::now();
            let assignment = assignor.assign(&group)?;
            let took = started.elapsed();
            let report = validate(&group, &assignment, false)
                .map_err(|invalid| anyhow::anyhow!("its assignment is invalid: {invalid}"))?;
            let assigned: usize = assignment.values().map(|a| a.count()).sum();
            println!(
                "smoke:    assign over 3 members, 2 topics, 9 partitions: valid; {assigned} assigned, {} unassigned ({took:?})",
                report.unassigned.len()
            );
            for (member, share) in &assignment {
                let list: Vec<String> = share.iter().map(|(t, p)| format!("{t}/{p}")).collect();
                println!("          {member}: {}", list.join(" "));
            }
        }
        PluginKind::ResetPolicy => {
            let policy = WasmResetPolicy::load(&runtime, &args.file)?.with_settings(settings);
            println!("name:     {}", policy.name());
            for reason in [
                ResetReason::NoCommittedOffset,
                ResetReason::OutOfRange { offset: 50 },
            ] {
                let context = ResetContext {
                    topic: "events".into(),
                    partition: 0,
                    reason,
                    committed: None,
                    log_start: 100,
                    high_watermark: 1_000,
                    now_ms: 1_700_000_000_000,
                    group: Some("check".into()),
                    settings: BTreeMap::new(),
                };
                let started = Instant::now();
                let decision = policy.decide(&context)?;
                if let ResetDecision::Offset(offset) = decision {
                    if !(100..=1_000).contains(&offset) {
                        bail!(
                            "for `{reason}` it chose offset {offset}, outside the log (100..1000)"
                        );
                    }
                }
                println!(
                    "smoke:    {reason} (log 100..1000) -> {decision:?} ({:?})",
                    started.elapsed()
                );
            }
        }
    }
    println!("ok");
    Ok(())
}

fn sample_group() -> Group {
    let member = |id: &str, topics: &[&str]| Member {
        member_id: id.into(),
        topics: topics.iter().map(|t| t.to_string()).collect(),
        generation: -1,
        ..Member::default()
    };
    let partitions = |n: i32| {
        (0..n)
            .map(|p| PartitionInfo {
                partition: p,
                racks: Vec::new(),
            })
            .collect()
    };
    Group {
        members: vec![
            member("member-a", &["events", "audit"]),
            member("member-b", &["events"]),
            member("member-c", &["events", "audit"]),
        ],
        topics: BTreeMap::from([
            ("events".into(), partitions(6)),
            ("audit".into(), partitions(3)),
        ]),
        settings: BTreeMap::new(),
    }
}
