//! `wasmkafka run`: consume and print records.

use std::io::{BufWriter, ErrorKind, Write};
use std::time::Duration;

use anyhow::{bail, Context};

use std::sync::Arc;

use crate::config::Config;
use crate::fetch::{Consumer, ConsumerError, ConsumerRecord};
use crate::group::{Assignor, GroupConsumer, GroupError, LoggingListener};
use crate::plugin::{PluginRuntime, WasmAssignor, WasmResetPolicy};
use crate::policy::{FallbackPolicy, ResetPolicy};

use super::output::record_json;
use super::{Format, RunArgs};

/// The most records one poll hands over.
const POLL_MAX_RECORDS: usize = 10_000;
/// How long one poll waits for records before the loop looks at ctrl-c again.
const POLL_TIMEOUT: Duration = Duration::from_secs(1);

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut config = args.common.load_config()?;
    if !args.topics.is_empty() {
        config.consumer.topics = args.topics.clone();
    }
    if let Some(from) = args.from {
        config.consumer.from = from;
    }
    if let Some(group) = &args.group {
        config.consumer.group = Some(group.clone());
    }
    if config.consumer.topics.is_empty() {
        bail!("no topic given: pass --topic T (repeatable) or set consumer.topics in the config");
    }
    let client = super::connect(&config).await?;
    let (assignors, policy) = load_plugins(&config)?;
    let source = match config.group_options() {
        Some(group) => {
            tracing::info!(group = %group.group_id, assignors = ?config.consumer.assignors, "joining the group");
            Source::Group(GroupConsumer::start(
                client.clone(),
                group,
                config.fetch_options(),
                policy,
                assignors,
                Arc::new(LoggingListener),
            ))
        }
        None => {
            let consumer = Consumer::new(client.clone(), config.fetch_options(), policy);
            consumer.assign_topics(&config.consumer.topics).await?;
            Source::Partitions(consumer)
        }
    };
    let mut stopped = 0;

    let limit = args.max_records.unwrap_or(u64::MAX);
    let mut printed = 0u64;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    while printed < limit {
        let wanted = usize::try_from(limit - printed)
            .unwrap_or(usize::MAX)
            .min(POLL_MAX_RECORDS);
        let polled = tokio::select! {
            polled = source.poll(wanted, POLL_TIMEOUT) => polled,
            _ = &mut ctrl_c => break,
        };
        let records = match polled {
            Ok(records) => records,
            // One partition stopped (e.g. reset policy `none`): say so, keep the others going.
            Err(GroupError::Consumer(ConsumerError::Partition(error))) => {
                tracing::error!("{error}");
                eprintln!("error: {error}");
                stopped += 1;
                if stopped >= source.assigned() {
                    out.flush().or_else(stdout_closed)?;
                    bail!("every assigned partition stopped with an error (see above)");
                }
                continue;
            }
            Err(GroupError::Consumer(error)) => return Err(error.into()),
            Err(error) => return Err(error.into()),
        };
        for record in records {
            if printed >= limit {
                break;
            }
            let written = match args.format {
                Format::Json => serde_json::to_writer(&mut out, &record_json(&record))
                    .map_err(std::io::Error::from)
                    .and_then(|()| out.write_all(b"\n")),
                Format::Raw => out
                    .write_all(record.value.as_deref().unwrap_or_default())
                    .and_then(|()| out.write_all(b"\n")),
            };
            if let Err(error) = written {
                return stdout_closed(error);
            }
            printed += 1;
        }
        if let Err(error) = out.flush() {
            return stdout_closed(error);
        }
    }
    out.flush().or_else(stdout_closed)?;
    source.close().await;
    client.close();
    Ok(())
}

/// The assignors in preference order, and the reset policy.
type Policies = (Vec<Arc<dyn Assignor>>, Arc<dyn ResetPolicy>);

/// The assignors (plugins first, then the built-ins) and the reset policy (a plugin falling
/// back to `consumer.from`, or `consumer.from` itself).
fn load_plugins(config: &Config) -> anyhow::Result<Policies> {
    let builtin_policy = config.consumer.from.clone().into_policy();
    if config.plugins.is_empty() {
        return Ok((config.assignors(), builtin_policy));
    }
    let runtime = PluginRuntime::new(config.plugins.limits(), config.plugins.cache_dir())
        .map_err(anyhow::Error::msg)?;
    let mut assignors: Vec<Arc<dyn Assignor>> = Vec::new();
    for plugin in &config.plugins.assignors {
        let assignor = WasmAssignor::load(&runtime, &plugin.path)
            .context("cannot load an assignor plugin (plugins.assignors)")?
            .with_settings(plugin.settings.clone().into_iter().collect());
        tracing::info!(name = assignor.name(), path = %plugin.path.display(), "assignor plugin loaded");
        assignors.push(Arc::new(assignor));
    }
    assignors.extend(config.assignors());
    let policy: Arc<dyn ResetPolicy> = match &config.plugins.reset_policy {
        Some(plugin) => {
            let policy = WasmResetPolicy::load(&runtime, &plugin.path)
                .context("cannot load the reset-policy plugin (plugins.reset_policy)")?
                .with_settings(plugin.settings.clone().into_iter().collect());
            tracing::info!(name = policy.name(), path = %plugin.path.display(), fallback = %config.consumer.from, "reset-policy plugin loaded");
            Arc::new(FallbackPolicy::new(Arc::new(policy), builtin_policy))
        }
        None => builtin_policy,
    };
    Ok((assignors, policy))
}

/// Where records come from: every partition of the topics, or a group's share of them.
enum Source {
    Partitions(Consumer),
    Group(GroupConsumer),
}

impl Source {
    async fn poll(&self, max: usize, timeout: Duration) -> Result<Vec<ConsumerRecord>, GroupError> {
        match self {
            Source::Partitions(consumer) => Ok(consumer.poll(max, timeout).await?),
            Source::Group(group) => group.poll(max, timeout).await,
        }
    }

    fn assigned(&self) -> usize {
        match self {
            Source::Partitions(consumer) => consumer.assignment().len(),
            Source::Group(group) => group.assignment().len(),
        }
    }

    /// A group member commits what it printed and leaves the group.
    async fn close(self) {
        match self {
            Source::Partitions(consumer) => consumer.close().await,
            Source::Group(group) => group.close().await,
        }
    }
}

/// A closed stdout (`| head`) ends the run quietly; anything else is an error.
fn stdout_closed(error: std::io::Error) -> anyhow::Result<()> {
    if error.kind() == ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(error).context("cannot write to stdout")
    }
}
