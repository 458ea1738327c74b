//! The `wasmkafka` command line. The `run` flags are a public contract (see the README); keep
//! them stable.

mod assign_sim;
mod config_show;
mod docs;
mod groups;
mod lookup;
mod metadata;
mod offsets;
pub mod output;
mod plan_report;
mod plugin;
mod plugin_runtime;
mod plugin_test;
mod produce;
mod progress;
mod run;
pub mod scaffold;
mod signals;
mod start;
mod stdout;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::client::Client;
use crate::config::layers::Layers;
use crate::config::{validate_broker_address, Config};
use crate::policy::ResetPolicySpec;

/// `wasmkafka --version`: the build and the plugin contract versions it speaks.
fn version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| {
        format!(
            "{} (plugin contracts wasmkafka:plugin@{})",
            env!("CARGO_PKG_VERSION"),
            crate::plugin::contract::CONTRACT_VERSIONS.join(", @")
        )
    })
}

#[derive(Debug, Parser)]
#[command(
    name = "wasmkafka",
    version = version(),
    about = "A Kafka consumer with sandboxed WebAssembly assignors and offset-reset policies",
    long_about = None
)]
pub struct Cli {
    /// How log lines on stderr look: text for people, json (one object per line) for log
    /// shippers. `WASMKAFKA_LOG` sets the level (default warn).
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Consume records and print them to stdout (one JSON object per line with --format json).
    Run(RunArgs),
    /// Print the cluster's brokers, topics and partitions with their leaders.
    Metadata(CommonArgs),
    /// Produce sample records to a topic (for demos, tests and benchmarks).
    Produce(produce::ProduceArgs),
    /// Work with plugins (Wasm assignors and reset policies).
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Simulate assignors side by side over a group and a sequence of events (members join,
    /// leave, crash; topics grow): balance, movement, revocations, rack locality, time.
    AssignSim(assign_sim::AssignSimArgs),
    /// The cluster's consumer groups: list them, delete groups or their offsets.
    #[command(subcommand)]
    Groups(groups::GroupsCommand),
    /// A group's committed offsets: describe them, plan where they go (`--execute` commits).
    #[command(subcommand)]
    Offsets(offsets::OffsetsCommand),
    /// The config as this command line, its environment and its config file make it.
    #[command(subcommand)]
    Config(config_show::ConfigCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout, e.g.
    /// `wasmkafka completions bash > /etc/bash_completion.d/wasmkafka`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout, e.g. `wasmkafka man | man -l -`, or write one page
    /// per command with --out-dir.
    Man(docs::ManArgs),
}

/// Flags every subcommand that talks to a cluster shares.
#[derive(Debug, Args, Clone)]
pub struct CommonArgs {
    /// Config file: this project's TOML (see the README), or a Java client's .properties file
    /// (`-F` as kcat takes it; Kafka properties this consumer does not use are ignored with a
    /// warning). Default: $WASMKAFKA_CONFIG, else ~/.config/wasmkafka/config.toml if it
    /// exists. WASMKAFKA_* variables (WASMKAFKA_CONSUMER_GROUP=g) and flags override it.
    #[arg(long, short = 'F', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Bootstrap brokers, comma separated.
    #[arg(long, value_name = "HOST:PORT,...", value_delimiter = ',')]
    pub brokers: Vec<String>,
    /// A setting, as kcat takes it (repeatable): a Kafka property name (`-X group.id=g`,
    /// `-X auto.offset.reset=earliest`, `-X enable.auto.commit=false`) or a key of the config
    /// file, dotted (`-X consumer.max_poll_records=500`). Applied over the file.
    #[arg(short = 'X', long = "property", value_name = "KEY=VALUE")]
    pub properties: Vec<String>,
}

impl CommonArgs {
    /// The config's layers (see [`crate::config::layers`]): the file, the environment, then
    /// `-X` and `--brokers`.
    pub fn layers(&self) -> anyhow::Result<Layers> {
        let mut flags = self
            .properties
            .iter()
            .map(|p| {
                p.split_once('=')
                    .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                    .with_context(|| format!("-X `{p}` is not KEY=VALUE"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        if !self.brokers.is_empty() {
            for broker in &self.brokers {
                validate_broker_address(broker)?;
            }
            flags.push(("brokers".to_string(), self.brokers.join(",")));
        }
        Ok(Layers::for_command_line(self.config.clone(), flags))
    }

    /// The config with every layer applied, validated, with brokers to reach.
    pub fn load_config(&self) -> anyhow::Result<Config> {
        let config = self.layers()?.load()?.config;
        config.require_brokers()?;
        Ok(config)
    }
}

/// Output format of `run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per record: topic, partition, offset, timestamp, key, value, headers.
    Json,
    /// The record value as is, one per line.
    Raw,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Topic to consume (repeat for several).
    #[arg(long = "topic", value_name = "T")]
    pub topics: Vec<String>,
    /// With --group: also consume every topic whose name matches this regular expression,
    /// following topics as they are created (internal topics never match).
    #[arg(long, value_name = "REGEX")]
    pub topic_pattern: Option<String>,
    /// Consumer group to join.
    #[arg(long, value_name = "G")]
    pub group: Option<String>,
    /// Where to start without a committed offset, and where an out-of-range offset resets to:
    /// earliest, latest, none, or `by_duration:<ISO-8601 duration>` (e.g. by_duration:PT1H).
    #[arg(long, value_name = "POLICY")]
    pub from: Option<ResetPolicySpec>,
    /// Exit 0 after printing this many records.
    #[arg(long, value_name = "N", visible_alias = "count")]
    pub max_records: Option<u64>,
    /// Exit 0 once every assigned partition has been read to its end (the high watermark, or
    /// the last stable offset under read_committed, as of when it got there).
    #[arg(long)]
    pub exit_at_end: bool,
    /// Where to start (without --group), for every partition or, as P=SPEC, for one
    /// (repeatable): beginning, end, N (an offset), -N (N records before the end), @MS (the
    /// first record at or after MS milliseconds since the epoch). A group member starts at
    /// its group's committed offsets (`stored`) and --from where there are none.
    #[arg(long = "offset", value_name = "[P=]SPEC", allow_hyphen_values = true)]
    pub offsets: Vec<String>,
    /// Only these partitions of the topics (without --group; repeatable or comma separated).
    #[arg(long = "partition", value_name = "P", value_delimiter = ',')]
    pub partitions: Vec<i32>,
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
    /// Write each record with this kcat-style format instead of --format: %t topic,
    /// %p partition, %o offset, %k key, %s value, %T timestamp, %h headers (k=v,...), %K / %S
    /// key / value length, %% a percent sign; \n \t escapes. E.g. '%t %p %o %k %s\n'.
    #[arg(long, value_name = "FMT")]
    pub format_string: Option<String>,
    /// With --format raw: write the key, this delimiter, then the value.
    #[arg(long, value_name = "DELIM")]
    pub key_delimiter: Option<String>,
    /// With --format json: keys and values that are valid JSON are embedded as JSON rather
    /// than as strings.
    #[arg(long)]
    pub json_values: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics, and /healthz and /readyz (e.g.
    /// 127.0.0.1:9464; `metrics.listen` in the config).
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics: Option<String>,
    /// No progress line on stderr (it is drawn only when stderr is a terminal).
    #[arg(long)]
    pub no_progress: bool,
}

/// Runs a parsed command line.
pub async fn execute(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => on_a_worker(run::run(args)).await,
        Command::Metadata(args) => metadata::metadata(args).await,
        Command::Produce(args) => produce::produce(args).await,
        Command::Plugin(command) => plugin::plugin(command).await,
        Command::AssignSim(args) => assign_sim::assign_sim(args).await,
        Command::Offsets(command) => offsets::offsets(command).await,
        Command::Config(command) => config_show::config(command),
        Command::Groups(command) => groups::groups(command).await,
        Command::Completions { shell } => {
            docs::completions(shell);
            Ok(())
        }
        Command::Man(args) => docs::man(args),
    }
}

/// Runs `job` as a task on the runtime's worker threads instead of on the thread that called
/// `block_on`. The tasks that receive a fetch answer then wake the consuming loop on their
/// own thread; on the calling thread every answer waited for that thread to be woken and
/// scheduled (ARCHITECTURE.md, "Data flow").
async fn on_a_worker(
    job: impl std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
) -> anyhow::Result<()> {
    task_ended(tokio::spawn(job).await, "the command's task")
}

/// What a task that returns a result ended with: its result, its panic carried on, or
/// `task` named as cancelled.
pub(crate) fn task_ended<T>(
    joined: Result<anyhow::Result<T>, tokio::task::JoinError>,
    task: &str,
) -> anyhow::Result<T> {
    match joined {
        Ok(result) => result,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => Err(anyhow::anyhow!("{task} was cancelled: {error}")),
    }
}

/// A client for the configured brokers, with metadata fetched (so an unreachable cluster is
/// reported here, with the addresses tried).
pub(crate) async fn connect(config: &Config) -> anyhow::Result<Client> {
    let client = Client::with_metadata_options(
        config.brokers.clone(),
        config.pool_options()?,
        config.metadata_options(),
    );
    client
        .refresh_metadata()
        .await
        .with_context(|| format!("cannot reach the cluster at {}", config.brokers.join(",")))?;
    Ok(client)
}

/// This process's command line, as a shell would take it back (the binary as `wasmkafka`).
pub(crate) fn command_line() -> String {
    std::iter::once("wasmkafka".to_string())
        .chain(std::env::args().skip(1).map(|a| shell_quote(&a)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=:,./@%+".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}
