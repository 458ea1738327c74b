//! `wasmkafka assign-sim`: runs assignors (built-in names and plugin files, side by side) over
//! a simulated group through a sequence of events, and reports balance, movement, revocations,
//! rack locality and time per call. Beside them, the broker's assignors of the consumer
//! protocol (`broker-uniform`, `broker-range`: Apache Kafka's `uniform` and `range`,
//! simulated) show what the broker would do to the group after a migration. See
//! [`crate::lab`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;

use crate::group::assignor::{Assignor, Builtin};
use crate::lab::{html, report, simulate, AssignorRun, BrokerAssignor, MakeAssignor, Scenario};
use crate::plugin::{PluginRuntime, WasmAssignor};

#[derive(Debug, Args)]
pub struct AssignSimArgs {
    /// A scenario file (TOML, or JSON by extension): topics, members, racks, steps.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["members", "topics"])]
    pub scenario: Option<PathBuf>,
    /// Members in the group at the start (named m000, m001, ...), subscribed to every topic.
    #[arg(long, value_name = "N")]
    pub members: Option<usize>,
    /// Topics and their partition counts.
    #[arg(long, value_name = "TOPIC:N,...", value_delimiter = ',')]
    pub topics: Vec<String>,
    /// Racks: members and partition replicas are spread over r0, r1, ... round robin.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub racks: usize,
    /// Replicas per partition when racks are given.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub replication: usize,
    /// An event after the start (repeatable, in order): `join N [topics=a,b] [rack=r]`,
    /// `leave ID,...`, `crash ID,...`, `grow TOPIC:N`.
    #[arg(long = "step", value_name = "EVENT")]
    pub steps: Vec<String>,
    /// An assignor to run: a built-in name (range, roundrobin, sticky, cooperative-sticky), a
    /// plugin file (.wasm), or the broker's under group.protocol=consumer, simulated
    /// (broker-uniform, broker-range: Apache Kafka's uniform and range). Repeatable; every
    /// built-in when none is given.
    #[arg(long = "assignor", value_name = "NAME|FILE")]
    pub assignors: Vec<String>,
    /// A setting for plugin assignors (repeatable), e.g. --setting weight=3.
    #[arg(long = "setting", value_name = "KEY=VALUE")]
    pub settings: Vec<String>,
    /// What the leader uses when an assignor fails or answers an invalid assignment.
    #[arg(long, value_name = "NAME", default_value = "range")]
    pub fallback: String,
    /// What to print: a table per assignor, JSON, or the HTML report (as --report writes).
    #[arg(long, value_enum, default_value = "table")]
    pub format: SimFormat,
    /// Also write the report as one self-contained HTML page (grids of members x partitions
    /// per step, charts across steps, the scenario and this command) to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

/// Output of `assign-sim`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SimFormat {
    Table,
    Json,
    Html,
}

pub async fn assign_sim(args: AssignSimArgs) -> anyhow::Result<()> {
    // Plugins and big groups take CPU time: off the async workers.
    let command = super::command_line();
    let output = tokio::task::spawn_blocking(move || run(&args, &command))
        .await
        .context("the simulation stopped")??;
    print!("{output}");
    Ok(())
}

fn run(args: &AssignSimArgs, command: &str) -> anyhow::Result<String> {
    let mut scenario = match (&args.scenario, args.members) {
        (Some(path), _) => Scenario::load(path)?,
        (None, Some(members)) => {
            Scenario::from_flags(members, &args.topics, args.racks, args.replication)?
        }
        (None, None) => {
            bail!("describe the group: --members N --topics T:P,... (or --scenario FILE)")
        }
    };
    scenario.push_events(&args.steps)?;
    for (key, value) in parse_settings(&args.settings)? {
        scenario.settings.insert(key, value);
    }
    let fallback = Builtin::from_name(&args.fallback).with_context(|| {
        format!(
            "--fallback `{}` is not a built-in assignor ({})",
            args.fallback,
            builtin_names()
        )
    })?;
    let names: Vec<String> = if args.assignors.is_empty() {
        Builtin::ALL.iter().map(|b| b.name().to_string()).collect()
    } else {
        args.assignors.clone()
    };
    let mut runtime = None;
    let mut runs: Vec<AssignorRun> = Vec::new();
    for name in &names {
        if let Some(broker) = BrokerAssignor::from_name(name) {
            runs.push(
                simulate::simulate_broker(&scenario, broker)
                    .with_context(|| format!("simulating `{name}`"))?,
            );
            continue;
        }
        let make = assignor_maker(name, &mut runtime)?;
        let source = if Builtin::from_name(name).is_some() {
            "built-in"
        } else {
            name.as_str()
        };
        runs.push(
            simulate(&scenario, &*make, source, fallback)
                .with_context(|| format!("simulating `{name}`"))?,
        );
    }
    let page = (args.report.is_some() || args.format == SimFormat::Html).then(|| {
        let started = std::time::Instant::now();
        let page = html::render(&scenario, &runs, command);
        tracing::info!(
            bytes = page.len(),
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "lab report rendered"
        );
        page
    });
    if let (Some(file), Some(page)) = (&args.report, &page) {
        std::fs::write(file, page)
            .with_context(|| format!("cannot write the report to {}", file.display()))?;
    }
    Ok(match args.format {
        SimFormat::Table => report::table(&runs),
        SimFormat::Json => report::json(&runs) + "\n",
        SimFormat::Html => page.unwrap_or_default(),
    })
}

fn builtin_names() -> String {
    Builtin::ALL.map(Builtin::name).join(", ")
}

fn broker_names() -> String {
    BrokerAssignor::ALL.map(BrokerAssignor::name).join(", ")
}

fn parse_settings(settings: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    settings
        .iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--setting `{s}` is not KEY=VALUE"))
        })
        .collect()
}

/// A built-in by name, or a plugin file loaded once per instance asked for (each member has
/// its own, like each consumer process does).
fn assignor_maker(
    name: &str,
    runtime: &mut Option<Arc<PluginRuntime>>,
) -> anyhow::Result<Box<MakeAssignor>> {
    if let Some(builtin) = Builtin::from_name(name) {
        return Ok(simulate::builtin(builtin));
    }
    let path = Path::new(name);
    if !name.ends_with(".wasm") || !path.exists() {
        if let Some(broker) = BrokerAssignor::ALL
            .into_iter()
            .find(|b| b.kafka_name() == name)
        {
            bail!(
                "--assignor `{name}` is the broker's assignor under group.protocol=consumer; \
                 simulate it as `{}`",
                broker.name()
            );
        }
        bail!(
            "--assignor `{name}` is neither a built-in ({}), the broker's ({}), nor a .wasm \
             file that exists",
            builtin_names(),
            broker_names()
        );
    }
    let runtime = match runtime {
        Some(runtime) => runtime.clone(),
        None => {
            let config = crate::config::Config::default();
            let created = PluginRuntime::new(config.plugins.limits(), config.plugins.cache())
                .map_err(anyhow::Error::msg)?;
            *runtime = Some(created.clone());
            created
        }
    };
    let path = path.to_path_buf();
    // Loaded once up front so a broken plugin is reported before the simulation starts.
    WasmAssignor::load(&runtime, &path).context("cannot load the assignor plugin")?;
    Ok(Box::new(move |settings: &BTreeMap<String, String>| {
        let assignor = WasmAssignor::load(&runtime, &path)
            .context("cannot load the assignor plugin")?
            .with_settings(settings.clone().into_iter().collect());
        Ok(Arc::new(assignor) as Arc<dyn Assignor>)
    }))
}
