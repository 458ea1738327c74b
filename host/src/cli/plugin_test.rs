//! `wasmkafka plugin test FILE.wasm --scenario S.toml` (or a folder of them): runs a plugin
//! over recorded cases and compares each answer with the expected one, for a plugin author's
//! CI. Exits non-zero when a case fails, showing what was expected and what came back.
//!
//! ```toml
//! # a reset policy
//! [[case]]
//! name = "nothing committed: the end"
//! reason = "no-committed-offset"      # or "out-of-range:50", "log-truncated:90:40"
//! committed = 30                      # optional
//! log_start = 10
//! high_watermark = 100
//! settings = { records = "5" }        # optional
//! expect = "latest"                   # earliest | latest | offset:N | timestamp:MS | fail
//!
//! # an assignor
//! [[case]]
//! name = "two members share six partitions"
//! topics = ["t:6"]
//! members = [{ id = "a" }, { id = "b", owned = ["t:5"] }]   # topics: every topic by default
//! expect = { a = ["t:0", "t:1", "t:2"], b = ["t:3", "t:4", "t:5"] }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use serde::Deserialize;
use wasmkafka_policy::assign::{validate, Group, Member, PartitionInfo};

use crate::group::Assignor;
use crate::plugin::{inspect, PluginKind, PluginRuntime, WasmAssignor, WasmResetPolicy};
use crate::policy::{ResetContext, ResetDecision, ResetPolicy, ResetReason};

#[derive(Debug, Args)]
pub struct TestArgs {
    /// The plugin component (.wasm).
    pub file: PathBuf,
    /// A scenario file (TOML), or a folder of them.
    #[arg(long, value_name = "FILE|DIR")]
    pub scenario: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    #[serde(rename = "case")]
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default)]
    settings: BTreeMap<String, String>,
    // Reset policies.
    reason: Option<String>,
    committed: Option<i64>,
    log_start: Option<i64>,
    high_watermark: Option<i64>,
    #[serde(default)]
    now_ms: i64,
    // Assignors.
    #[serde(default)]
    topics: Vec<String>,
    #[serde(default)]
    members: Vec<CaseMember>,
    expect: toml::Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseMember {
    id: String,
    topics: Option<Vec<String>>,
    #[serde(default)]
    owned: Vec<String>,
    rack: Option<String>,
}

pub fn test(args: &TestArgs) -> anyhow::Result<()> {
    let files = scenario_files(&args.scenario)?;
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let info = inspect(&bytes)
        .with_context(|| format!("{} is not a usable plugin", args.file.display()))?;
    // The plugin's own log lines are printed before the result of the case that wrote them.
    let runtime = super::plugin_runtime::author_runtime()?;
    let mut failed = 0;
    let mut passed = 0;
    for file in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let scenario: Scenario = toml::from_str(&text)
            .with_context(|| format!("{} is not a valid scenario", file.display()))?;
        for case in scenario.cases {
            let outcome = match info.kind {
                PluginKind::ResetPolicy => reset_case(&runtime, &args.file, &case),
                PluginKind::Assignor => assign_case(&runtime, &args.file, &case),
            };
            match outcome {
                Ok(()) => {
                    passed += 1;
                    println!("pass  {} ({})", case.name, file.display());
                }
                Err(error) => {
                    failed += 1;
                    println!("FAIL  {} ({}): {error:#}", case.name, file.display());
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        bail!("{failed} case(s) failed");
    }
    Ok(())
}

fn scenario_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{} holds no scenario (*.toml)", path.display());
    }
    Ok(files)
}

fn parse_reason(text: &str) -> anyhow::Result<ResetReason> {
    let numbers = |rest: &str| -> anyhow::Result<Vec<i64>> {
        rest.split(':')
            .map(|n| n.parse().with_context(|| format!("`{n}` is not an offset")))
            .collect()
    };
    Ok(match text.split_once(':') {
        None if text == "no-committed-offset" => ResetReason::NoCommittedOffset,
        Some(("out-of-range", rest)) => match numbers(rest)?[..] {
            [offset] => ResetReason::OutOfRange { offset },
            _ => bail!("`{text}`: out-of-range:OFFSET"),
        },
        Some(("log-truncated", rest)) => match numbers(rest)?[..] {
            [offset, diverged_at] => ResetReason::LogTruncated {
                offset,
                diverged_at,
            },
            _ => bail!("`{text}`: log-truncated:OFFSET:DIVERGED_AT"),
        },
        _ => bail!("reason `{text}`: no-committed-offset, out-of-range:N or log-truncated:N:M"),
    })
}

fn parse_decision(text: &str) -> anyhow::Result<ResetDecision> {
    Ok(match text.split_once(':') {
        None if text == "earliest" => ResetDecision::Earliest,
        None if text == "latest" => ResetDecision::Latest,
        None if text == "fail" => ResetDecision::Fail(String::new()),
        Some(("offset", n)) => ResetDecision::Offset(n.parse()?),
        Some(("timestamp", n)) => ResetDecision::Timestamp(n.parse()?),
        _ => bail!("expect `{text}`: earliest, latest, offset:N, timestamp:MS or fail"),
    })
}

fn reset_case(
    runtime: &std::sync::Arc<PluginRuntime>,
    file: &Path,
    case: &Case,
) -> anyhow::Result<()> {
    let policy = WasmResetPolicy::load(runtime, file)?
        .with_settings(case.settings.clone().into_iter().collect());
    let reason = parse_reason(
        case.reason
            .as_deref()
            .context("a reset case needs `reason`")?,
    )?;
    let context = ResetContext {
        topic: "events".into(),
        partition: 0,
        reason,
        committed: case.committed,
        log_start: case.log_start.context("a reset case needs `log_start`")?,
        high_watermark: case
            .high_watermark
            .context("a reset case needs `high_watermark`")?,
        now_ms: case.now_ms,
        group: Some("plugin-test".into()),
        settings: BTreeMap::new(),
    };
    let expected = parse_decision(
        case.expect
            .as_str()
            .context("a reset case's `expect` is a string, e.g. \"latest\"")?,
    )?;
    let decision = policy.decide(&context)?;
    let matches = match (&expected, &decision) {
        (ResetDecision::Fail(_), ResetDecision::Fail(_)) => true,
        (expected, decision) => expected == decision,
    };
    if !matches {
        bail!("expected {expected:?}, got {decision:?}");
    }
    Ok(())
}

fn tp(text: &str) -> anyhow::Result<(String, i32)> {
    let (topic, partition) = text
        .rsplit_once(':')
        .with_context(|| format!("`{text}` is not TOPIC:PARTITION"))?;
    Ok((topic.to_string(), partition.parse()?))
}

fn assign_case(
    runtime: &std::sync::Arc<PluginRuntime>,
    file: &Path,
    case: &Case,
) -> anyhow::Result<()> {
    let assignor = WasmAssignor::load(runtime, file)?
        .with_settings(case.settings.clone().into_iter().collect());
    let mut topics = BTreeMap::new();
    for spec in &case.topics {
        let (name, count) = super::super::lab::scenario::parse_topic(spec)?;
        let partitions = (0..count as i32)
            .map(|partition| PartitionInfo {
                partition,
                racks: Vec::new(),
            })
            .collect();
        topics.insert(name, partitions);
    }
    let mut members = Vec::new();
    for m in &case.members {
        let mut owned: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for entry in &m.owned {
            let (topic, partition) = tp(entry)?;
            owned.entry(topic).or_default().push(partition);
        }
        members.push(Member {
            member_id: m.id.clone(),
            topics: m
                .topics
                .clone()
                .unwrap_or_else(|| topics.keys().cloned().collect()),
            owned,
            generation: if m.owned.is_empty() { -1 } else { 1 },
            rack: m.rack.clone(),
            ..Member::default()
        });
    }
    let group = Group {
        members,
        topics,
        settings: BTreeMap::new(),
    };
    let assignment = assignor.assign(&group)?;
    let cooperative = assignor.protocol() == crate::group::RebalanceProtocol::Cooperative;
    validate(&group, &assignment, cooperative)
        .map_err(|invalid| anyhow::anyhow!("its assignment is invalid: {invalid}"))?;
    let expected = case
        .expect
        .as_table()
        .context("an assignor case's `expect` is a table: member = [\"t:0\", ...]")?;
    let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (member, share) in &assignment {
        got.insert(
            member.clone(),
            share.iter().map(|(t, p)| format!("{t}:{p}")).collect(),
        );
    }
    let mut want: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (member, list) in expected {
        let list = list
            .as_array()
            .with_context(|| format!("expect.{member} is a list of \"t:N\""))?;
        let mut partitions: Vec<String> = list
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect();
        partitions.sort_by_key(|p| tp(p).unwrap_or_default());
        want.insert(member.clone(), partitions);
    }
    for member in got.keys() {
        want.entry(member.clone()).or_default();
    }
    for list in got.values_mut() {
        list.sort_by_key(|p| tp(p).unwrap_or_default());
    }
    if got != want {
        bail!("expected {want:?}, got {got:?}");
    }
    Ok(())
}
