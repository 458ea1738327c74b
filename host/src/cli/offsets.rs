//! `wasmkafka offsets describe|plan`: see a group's committed offsets and lag, and plan where
//! they should go (computed by the reset-policy code the consumer runs), committing the plan
//! only with `--execute` and only while the group has no active members. kafka-consumer-groups'
//! `--describe` and `--reset-offsets` are the model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

use crate::client::Client;
use crate::fetch::reset::{decision_target, Target};
use crate::fetch::{list_offsets, CommittedOffset, IsolationLevel, OffsetSpec, TopicPartition};
use crate::group::coordinator::{
    find_coordinator, find_coordinator_patiently, retry_while_healing,
};
use crate::group::describe::{describe_group, GroupDescription};
use crate::group::offsets::{
    commit, fetch_all_committed, fetch_committed_with_epochs, MemberIdentity,
};
use crate::plugin::{PluginRuntime, WasmResetPolicy};
use crate::policy::{
    parse_iso8601_duration, ResetContext, ResetPolicy, ResetPolicySpec, ResetReason,
};

use super::lookup::log_bounds;
use super::plan_report::PlanRow;
use super::CommonArgs;

#[derive(Debug, Subcommand)]
pub enum OffsetsCommand {
    /// A group's committed offset, log start, end and lag per partition, and its members.
    Describe(DescribeArgs),
    /// What the group's committed offsets would become (a dry run unless --execute).
    Plan(PlanArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TableOrJson {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct DescribeArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[arg(long, value_name = "G")]
    pub group: String,
    /// Topics to show (repeatable; default: what its members hold and what it has committed
    /// offsets for).
    #[arg(long = "topic", value_name = "T")]
    pub topics: Vec<String>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: TableOrJson,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[arg(long, value_name = "G")]
    pub group: String,
    /// A topic, or some of its partitions (`T:0,2`); repeatable.
    #[arg(long = "topic", value_name = "T[:P,...]")]
    pub topics: Vec<String>,
    /// Where to: earliest, latest, offset:N, shift:N (from the committed offset; negative goes
    /// back), datetime:ISO-8601 (e.g. 2026-11-24T10:00:00Z), by-duration:ISO-8601-duration
    /// (e.g. PT1H), or policy:NAME-OR-FILE.wasm (a reset policy decides, as in the consumer).
    #[arg(long, value_name = "TARGET", required_unless_present = "from_file")]
    pub to: Option<String>,
    /// Apply a plan written by --export (CSV `topic,partition,offset`, or JSON).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["to", "topics"])]
    pub from_file: Option<PathBuf>,
    /// Write the plan to FILE (JSON when it ends in .json, else CSV).
    #[arg(long, value_name = "FILE")]
    pub export: Option<PathBuf>,
    /// Commit the plan (refused while the group has active members).
    #[arg(long)]
    pub execute: bool,
    #[arg(long, value_enum, default_value = "table")]
    pub format: TableOrJson,
    /// Also write the plan as one self-contained HTML page to FILE: per partition its log
    /// start, committed offset, planned offset and end on one axis, with the records the plan
    /// skips or reads again marked.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

pub async fn offsets(command: OffsetsCommand) -> anyhow::Result<()> {
    match command {
        OffsetsCommand::Describe(args) => describe(args).await,
        OffsetsCommand::Plan(args) => plan(args).await,
    }
}

/// One partition's place in its log and in the group.
#[derive(Debug, Clone, Serialize)]
struct PartitionRow {
    topic: String,
    partition: i32,
    committed: Option<i64>,
    log_start: i64,
    end: i64,
    lag: Option<i64>,
    member: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Described {
    group: String,
    #[serde(flatten)]
    description: GroupDescription,
    partitions: Vec<PartitionRow>,
}

async fn describe(args: DescribeArgs) -> anyhow::Result<()> {
    let config = args.common.load_config()?;
    let client = super::connect(&config).await?;
    let described = describe_one(&client, &args.group, &args.topics).await?;
    match args.format {
        TableOrJson::Json => println!("{}", serde_json::to_string_pretty(&described)?),
        TableOrJson::Table => print_described(&described),
    }
    client.close();
    Ok(())
}

/// A group as `offsets describe` and `groups describe` show it: its state, members, and per
/// partition the committed offset, log start, end, lag and owner. The partitions are those
/// of `topics`; without topics, those its members hold and those it has committed offsets
/// for (a group whose members are gone still shows where it stands).
pub async fn describe_one(
    client: &Client,
    group: &str,
    topics: &[String],
) -> anyhow::Result<Described> {
    // Found again on each try: a coordinator that moved is asked where it is now.
    let (coordinator, description) = retry_while_healing(|| async {
        let coordinator = find_coordinator(client, group).await?;
        Ok((
            coordinator,
            describe_group(client, coordinator, group).await?,
        ))
    })
    .await
    .with_context(|| format!("cannot describe group `{group}`"))?;
    let partitions: Vec<TopicPartition> = if topics.is_empty() {
        let mut partitions: std::collections::BTreeSet<TopicPartition> = description
            .members
            .iter()
            .flat_map(|m| m.partitions.iter().cloned())
            .collect();
        let committed = fetch_all_committed(client, coordinator, group)
            .await
            .with_context(|| format!("cannot read the committed offsets of group `{group}`"))?;
        partitions.extend(committed.into_keys());
        partitions.into_iter().collect()
    } else {
        partitions_of(client, topics, &BTreeMap::new()).await?
    };
    let rows = if partitions.is_empty() {
        Vec::new()
    } else {
        rows(client, coordinator, group, &partitions, &description).await?
    };
    Ok(Described {
        group: group.to_string(),
        description,
        partitions: rows,
    })
}

pub fn print_described(d: &Described) {
    let dash = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
    println!(
        "group {}: {} ({} protocol), assignor {}, {} member(s)",
        d.group,
        d.description.state,
        d.description.group_protocol,
        if d.description.protocol.is_empty() {
            "-"
        } else {
            &d.description.protocol
        },
        d.description.members.len()
    );
    let mut table = vec![[
        "TOPIC",
        "PARTITION",
        "COMMITTED",
        "LOG-START",
        "END",
        "LAG",
        "MEMBER",
    ]
    .map(String::from)
    .to_vec()];
    for r in &d.partitions {
        table.push(vec![
            r.topic.clone(),
            r.partition.to_string(),
            dash(r.committed),
            r.log_start.to_string(),
            r.end.to_string(),
            dash(r.lag),
            r.member.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    print_table(&table);
    for m in &d.description.members {
        println!(
            "member {} (client {}, host {}{}): {} partition(s)",
            m.member_id,
            m.client_id,
            m.host,
            m.instance_id
                .as_ref()
                .map(|i| format!(", instance {i}"))
                .unwrap_or_default(),
            m.partitions.len()
        );
    }
}

fn print_table(rows: &[Vec<String>]) {
    print!("{}", crate::lab::report::columns(rows, ""));
}

/// The partitions of `topics` (only `only[topic]` where given), checked against the metadata.
pub(super) async fn partitions_of(
    client: &Client,
    topics: &[String],
    only: &BTreeMap<String, Vec<i32>>,
) -> anyhow::Result<Vec<TopicPartition>> {
    let metadata = client.refresh_topics(topics).await?;
    let mut partitions = Vec::new();
    for topic in topics {
        let info = metadata
            .existing_topic(topic)
            .with_context(|| format!("topic `{topic}` does not exist"))?;
        match only.get(topic) {
            Some(wanted) => {
                for p in wanted {
                    if !info.partitions.contains_key(p) {
                        bail!(
                            "`{topic}` has partitions 0..{}, not {p}",
                            info.partitions.len()
                        );
                    }
                    partitions.push(TopicPartition::new(topic, *p));
                }
            }
            None => partitions.extend(
                info.partitions
                    .keys()
                    .map(|p| TopicPartition::new(topic, *p)),
            ),
        }
    }
    Ok(partitions)
}

async fn rows(
    client: &Client,
    coordinator: i32,
    group: &str,
    partitions: &[TopicPartition],
    description: &GroupDescription,
) -> anyhow::Result<Vec<PartitionRow>> {
    let committed = fetch_committed_with_epochs(client, coordinator, group, partitions).await?;
    let bounds = log_bounds(client, partitions, IsolationLevel::ReadUncommitted).await?;
    Ok(partitions
        .iter()
        .map(|tp| {
            let committed = committed.get(tp).copied().flatten().map(|c| c.offset);
            let (log_start, end) = bounds[tp];
            PartitionRow {
                topic: tp.topic.to_string(),
                partition: tp.partition,
                committed,
                log_start,
                end,
                lag: committed.map(|c| (end - c).max(0)),
                member: description
                    .members
                    .iter()
                    .find(|m| m.partitions.contains(tp))
                    .map(|m| m.member_id.clone()),
            }
        })
        .collect())
}

/// One line of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Planned {
    topic: String,
    partition: i32,
    offset: i64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    current: Option<i64>,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    how: String,
}

/// What `--to` asks for.
enum To {
    Policy(Arc<dyn ResetPolicy>),
    Offset(i64),
    Shift(i64),
    Time(i64),
}

fn parse_to(text: &str) -> anyhow::Result<To> {
    let bad = || {
        format!(
            "--to `{text}`: use earliest, latest, offset:N, shift:N, datetime:ISO-8601, \
             by-duration:ISO-8601-duration or policy:NAME-OR-FILE.wasm"
        )
    };
    Ok(match text.split_once(':') {
        None if text == "earliest" => To::Policy(ResetPolicySpec::Earliest.into_policy()),
        None if text == "latest" => To::Policy(ResetPolicySpec::Latest.into_policy()),
        Some(("offset", n)) => To::Offset(n.parse().ok().with_context(bad)?),
        Some(("shift", n)) => To::Shift(n.parse().ok().with_context(bad)?),
        Some(("datetime", when)) => {
            let time = humantime::parse_rfc3339_weak(when).ok().with_context(bad)?;
            let ms = time
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            To::Time(ms)
        }
        Some(("by-duration", duration)) => To::Policy(
            ResetPolicySpec::ByDuration(parse_iso8601_duration(duration).ok().with_context(bad)?)
                .into_policy(),
        ),
        Some(("policy", name)) => To::Policy(policy_named(name)?),
        _ => bail!(bad()),
    })
}

/// A built-in policy by name, or a Wasm reset-policy file.
fn policy_named(name: &str) -> anyhow::Result<Arc<dyn ResetPolicy>> {
    if let Ok(spec) = name.parse::<ResetPolicySpec>() {
        return Ok(spec.into_policy());
    }
    let path = Path::new(name);
    if !path.exists() {
        bail!("policy `{name}` is neither a built-in (earliest, latest, none, by_duration:...) nor a file");
    }
    let config = crate::config::Config::default();
    let runtime = PluginRuntime::new(config.plugins.limits(), config.plugins.cache())
        .map_err(anyhow::Error::msg)?;
    Ok(Arc::new(
        WasmResetPolicy::load(&runtime, path).context("cannot load the reset-policy plugin")?,
    ))
}

async fn plan(args: PlanArgs) -> anyhow::Result<()> {
    let config = args.common.load_config()?;
    let client = super::connect(&config).await?;
    let coordinator = find_coordinator_patiently(&client, &args.group)
        .await
        .with_context(|| format!("cannot find the coordinator of group `{}`", args.group))?;
    let planned = match (&args.from_file, &args.to) {
        (Some(file), _) => read_plan(file)?,
        (None, Some(to)) => {
            let to = parse_to(to)?;
            let (topics, only) = parse_topics(&args.topics)?;
            let partitions = partitions_of(&client, &topics, &only).await?;
            compute(&client, coordinator, &args.group, &partitions, &to).await?
        }
        (None, None) => bail!("say where to with --to, or give --from-file"),
    };
    if let Some(file) = &args.export {
        write_plan(file, &planned)?;
    }
    if let Some(file) = &args.report {
        let rows = report_rows(&client, coordinator, &args.group, &planned).await?;
        let page = super::plan_report::render(&args.group, &rows, &super::command_line());
        std::fs::write(file, page)
            .with_context(|| format!("cannot write the report to {}", file.display()))?;
    }
    match args.format {
        TableOrJson::Json => println!("{}", serde_json::to_string_pretty(&planned)?),
        TableOrJson::Table => {
            let mut table = vec![["TOPIC", "PARTITION", "CURRENT", "TARGET", "HOW"]
                .map(String::from)
                .to_vec()];
            for p in &planned {
                table.push(vec![
                    p.topic.clone(),
                    p.partition.to_string(),
                    p.current.map_or("-".into(), |c| c.to_string()),
                    p.offset.to_string(),
                    p.how.clone(),
                ]);
            }
            print_table(&table);
        }
    }
    if !args.execute {
        eprintln!("dry run: nothing was committed; add --execute to commit this plan");
        client.close();
        return Ok(());
    }
    let description =
        retry_while_healing(|| describe_group(&client, coordinator, &args.group)).await?;
    if !description.members.is_empty() {
        let members: Vec<String> = description
            .members
            .iter()
            .map(|m| format!("{} (client {}, host {})", m.member_id, m.client_id, m.host))
            .collect();
        bail!(
            "group `{}` has {} active member(s): {}; stop its consumers first (committed \
             offsets can only be moved while the group is empty)",
            args.group,
            members.len(),
            members.join(", ")
        );
    }
    let identity = MemberIdentity {
        group: args.group.clone(),
        member_id: String::new(),
        generation: -1,
        instance_id: None,
    };
    let offsets: Vec<(TopicPartition, CommittedOffset)> = planned
        .iter()
        .map(|p| {
            (
                TopicPartition::new(&p.topic, p.partition),
                CommittedOffset {
                    offset: p.offset,
                    leader_epoch: None,
                },
            )
        })
        .collect();
    let failed = commit(&client, coordinator, &identity, &offsets)
        .await
        .with_context(|| format!("committing the plan for group `{}`", args.group))?;
    if !failed.is_empty() {
        let refused: Vec<String> = failed
            .iter()
            .map(|(tp, error)| format!("{tp}: {error}"))
            .collect();
        bail!(
            "the broker refused {} of {} offset(s) for group `{}` (the others were committed): {}",
            failed.len(),
            offsets.len(),
            args.group,
            refused.join("; ")
        );
    }
    eprintln!(
        "committed {} offset(s) for group {}",
        offsets.len(),
        args.group
    );
    client.close();
    Ok(())
}

/// `--topic T` or `T:0,2`.
/// The topics named, and for those named with partitions (`T:0,2`), which.
pub(super) type TopicSelection = (Vec<String>, BTreeMap<String, Vec<i32>>);

pub(super) fn parse_topics(specs: &[String]) -> anyhow::Result<TopicSelection> {
    if specs.is_empty() {
        bail!("name the topics: --topic T (or T:0,2 for some partitions)");
    }
    let mut topics = Vec::new();
    let mut only = BTreeMap::new();
    for spec in specs {
        match spec.split_once(':') {
            None => topics.push(spec.clone()),
            Some((topic, list)) => {
                let partitions = list
                    .split(',')
                    .map(|p| p.trim().parse::<i32>())
                    .collect::<Result<Vec<_>, _>>()
                    .ok()
                    .with_context(|| {
                        format!("--topic `{spec}`: partitions are numbers, e.g. T:0,2")
                    })?;
                topics.push(topic.to_string());
                only.insert(topic.to_string(), partitions);
            }
        }
    }
    Ok((topics, only))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

async fn compute(
    client: &Client,
    coordinator: i32,
    group: &str,
    partitions: &[TopicPartition],
    to: &To,
) -> anyhow::Result<Vec<Planned>> {
    let committed = fetch_committed_with_epochs(client, coordinator, group, partitions).await?;
    let bounds = log_bounds(client, partitions, IsolationLevel::ReadUncommitted).await?;
    let mut planned = Vec::new();
    for tp in partitions {
        let current = committed.get(tp).copied().flatten().map(|c| c.offset);
        let (log_start, end) = bounds[tp];
        let clamp = |n: i64| n.clamp(log_start, end);
        let (target, how) = match to {
            To::Offset(n) => (
                Target::Offset(clamp(*n)),
                format!("offset {n}, within {log_start}..{end}"),
            ),
            To::Shift(n) => {
                let from = current.with_context(|| {
                    format!("{tp}: nothing committed to shift from; use another --to")
                })?;
                (
                    Target::Offset(clamp(from.saturating_add(*n))),
                    format!("{from} shifted by {n}, within {log_start}..{end}"),
                )
            }
            To::Time(ms) => (
                Target::Timestamp(*ms),
                format!("first record at or after {ms} ms"),
            ),
            To::Policy(policy) => {
                let context = ResetContext {
                    topic: tp.topic.to_string(),
                    partition: tp.partition,
                    reason: ResetReason::NoCommittedOffset,
                    committed: current,
                    log_start,
                    high_watermark: end,
                    now_ms: now_ms(),
                    group: Some(group.to_string()),
                    settings: Default::default(),
                };
                let deciding = policy.clone();
                let decision = tokio::task::spawn_blocking(move || deciding.decide(&context))
                    .await
                    .context("the policy call did not finish")?
                    .map_err(anyhow::Error::from)?;
                let how = format!("policy {}: {decision:?}", policy.name());
                let target = decision_target(
                    tp.clone(),
                    ResetReason::NoCommittedOffset,
                    policy.name(),
                    decision,
                    log_start,
                    end,
                )?;
                (target, how)
            }
        };
        let offset = match target {
            Target::Offset(offset) => offset,
            Target::Timestamp(ms) => {
                let leader = client
                    .metadata()
                    .leader(&tp.topic, tp.partition)
                    .with_context(|| format!("{tp} has no leader right now; try again"))?;
                let answers = list_offsets(
                    client,
                    leader,
                    IsolationLevel::ReadUncommitted,
                    &[(tp.clone(), OffsetSpec::Timestamp(ms))],
                )
                .await?;
                match answers.get(tp) {
                    Some(Ok(-1)) => end,
                    Some(Ok(offset)) => *offset,
                    Some(Err(error)) => bail!("{tp}: looking up a time: {error}"),
                    None => bail!("{tp}: its leader did not answer for it"),
                }
            }
        };
        planned.push(Planned {
            topic: tp.topic.to_string(),
            partition: tp.partition,
            offset,
            current,
            how,
        });
    }
    Ok(planned)
}

/// Where each planned partition's log and the group's committed offset stand now.
async fn report_rows(
    client: &Client,
    coordinator: i32,
    group: &str,
    planned: &[Planned],
) -> anyhow::Result<Vec<PlanRow>> {
    let partitions: Vec<TopicPartition> = planned
        .iter()
        .map(|p| TopicPartition::new(&p.topic, p.partition))
        .collect();
    let committed = fetch_committed_with_epochs(client, coordinator, group, &partitions).await?;
    let bounds = log_bounds(client, &partitions, IsolationLevel::ReadUncommitted).await?;
    Ok(planned
        .iter()
        .zip(&partitions)
        .map(|(p, tp)| {
            let (log_start, end) = bounds.get(tp).copied().unwrap_or((0, 0));
            PlanRow {
                topic: p.topic.clone(),
                partition: p.partition,
                log_start,
                committed: committed.get(tp).copied().flatten().map(|c| c.offset),
                planned: p.offset,
                end,
            }
        })
        .collect())
}

fn write_plan(file: &Path, planned: &[Planned]) -> anyhow::Result<()> {
    let text = if file.extension().is_some_and(|e| e == "json") {
        serde_json::to_string_pretty(planned)? + "\n"
    } else {
        planned
            .iter()
            .map(|p| format!("{},{},{}\n", p.topic, p.partition, p.offset))
            .collect()
    };
    std::fs::write(file, text).with_context(|| format!("cannot write {}", file.display()))
}

fn read_plan(file: &Path) -> anyhow::Result<Vec<Planned>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    if file.extension().is_some_and(|e| e == "json") {
        return serde_json::from_str(&text)
            .with_context(|| format!("{} is not a plan (JSON)", file.display()));
    }
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let [topic, partition, offset] = fields[..] else {
                bail!(
                    "{} line {}: expected topic,partition,offset",
                    file.display(),
                    n + 1
                );
            };
            Ok(Planned {
                topic: topic.to_string(),
                partition: partition.parse().with_context(|| {
                    format!(
                        "{} line {}: `{partition}` is not a partition",
                        file.display(),
                        n + 1
                    )
                })?,
                offset: offset.parse().with_context(|| {
                    format!(
                        "{} line {}: `{offset}` is not an offset",
                        file.display(),
                        n + 1
                    )
                })?,
                current: None,
                how: format!("from {}", file.display()),
            })
        })
        .collect()
}
