//! The `wasmkafka` command line. The `run` flags are a public contract (see the README); keep
//! them stable.

mod assign_sim;
mod metadata;
mod output;
mod plugin;
mod produce;
mod run;
mod signals;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::client::Client;
use crate::config::{validate_broker_address, Config};
use crate::policy::ResetPolicySpec;

#[derive(Debug, Parser)]
#[command(
    name = "wasmkafka",
    version,
    about = "A Kafka consumer with sandboxed WebAssembly assignors and offset-reset policies",
    long_about = None
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
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
}

/// Flags every subcommand that talks to a cluster shares.
#[derive(Debug, Args, Clone)]
pub struct CommonArgs {
    /// TOML config file (see the README); flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Bootstrap brokers, comma separated.
    #[arg(long, value_name = "HOST:PORT,...", value_delimiter = ',')]
    pub brokers: Vec<String>,
}

impl CommonArgs {
    /// The config file (or defaults) with the flags applied, validated.
    pub fn load_config(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if !self.brokers.is_empty() {
            for broker in &self.brokers {
                validate_broker_address(broker)?;
            }
            config.brokers = self.brokers.clone();
        }
        config.validate()?;
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
    /// earliest, latest, none, or by_duration:<ISO-8601 duration> (e.g. by_duration:PT1H).
    #[arg(long, value_name = "POLICY")]
    pub from: Option<ResetPolicySpec>,
    /// Exit 0 after printing this many records.
    #[arg(long, value_name = "N")]
    pub max_records: Option<u64>,
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
}

/// Runs a parsed command line.
pub async fn execute(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => run::run(args).await,
        Command::Metadata(args) => metadata::metadata(args).await,
        Command::Produce(args) => produce::produce(args).await,
        Command::Plugin(command) => plugin::plugin(command).await,
        Command::AssignSim(args) => assign_sim::assign_sim(args).await,
    }
}

/// A client for the configured brokers, with metadata fetched (so an unreachable cluster is
/// reported here, with the addresses tried).
pub(crate) async fn connect(config: &Config) -> anyhow::Result<Client> {
    let client = Client::with_metadata_options(
        config.brokers.clone(),
        config.pool_options(),
        config.metadata_options(),
    );
    client
        .refresh_metadata()
        .await
        .with_context(|| format!("cannot reach the cluster at {}", config.brokers.join(",")))?;
    Ok(client)
}
