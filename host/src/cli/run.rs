//! `wasmkafka run`: consume and print records.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::time::Duration;

use anyhow::{bail, Context};

use std::sync::Arc;

use crate::config::Config;
use crate::fetch::{Consumer, ConsumerError, ConsumerRecord, PartitionState, TopicPartition};
use crate::metrics::server::MetricsServer;
use crate::metrics::{Metrics, Snapshot};

use super::start::{start_positions, StartSpecs};
use crate::group::assignor::vote_order;
use crate::group::{Assignor, GroupConsumer, GroupError, GroupProtocol, LoggingListener};
use crate::plugin::{PluginRuntime, WasmAssignor, WasmResetPolicy};
use crate::policy::{FallbackPolicy, ResetPolicy};

use super::output::RecordWriter;
use super::progress::Progress;
use super::signals::StopSignals;
use super::stdout::{StdoutWriter, ATOMIC_WRITE};
use super::{Format, RunArgs};

/// How long one poll waits for records before the loop polls again.
const POLL_TIMEOUT: Duration = Duration::from_secs(1);

/// Why the consuming loop ended without an error.
#[derive(Debug)]
enum Ended {
    /// `--max-records` reached.
    Limit,
    /// `--exit-at-end`: every partition was read to its end.
    AtEnd,
    /// SIGTERM or SIGINT.
    Signal(&'static str),
    /// The reader of stdout went away (`| head`).
    OutputClosed,
}

/// Consumes until a limit, a signal, a closed stdout or an error; every one of them ends in
/// the same clean stop: what was written and flushed is committed, the group is left.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut config = args.common.load_config()?;
    if !args.topics.is_empty() {
        config.consumer.topics = args.topics.clone();
    }
    if let Some(from) = args.from.clone() {
        config.consumer.from = from;
    }
    if let Some(group) = &args.group {
        config.consumer.group = Some(group.clone());
    }
    if let Some(pattern) = &args.topic_pattern {
        config.consumer.topic_pattern = Some(pattern.clone());
        config.validate()?;
    }
    if config.consumer.topics.is_empty() && config.consumer.topic_pattern.is_none() {
        bail!(
            "no topic given: pass --topic T (repeatable) or --topic-pattern REGEX, or set \
             consumer.topics or consumer.topic_pattern in the config"
        );
    }
    let starts = StartSpecs::parse(&args.offsets)?;
    if config.consumer.group.is_some() && (!starts.is_empty() || !args.partitions.is_empty()) {
        bail!(
            "--offset and --partition apply without --group: a group member reads the \
             partitions the group gives it from the group's committed offsets (and --from \
             where there are none)"
        );
    }
    let writer = record_writer(&args)?;
    if config.consumer.topic_pattern.is_some() && config.consumer.group.is_none() {
        bail!(
            "a topic pattern needs --group (or consumer.group): without a group the consumer \
             reads a fixed list of topics (--topic)"
        );
    }
    // Two listeners for the same signals: the consuming loop's, and the stop's (see below).
    let mut signals = StopSignals::install()?;
    let mut stop_signals = StopSignals::install()?;
    if let Some(listen) = &args.metrics {
        config.metrics.listen = Some(listen.clone());
    }
    // Up before the cluster is reached: /healthz answers and /readyz says why not yet.
    let metrics = Arc::new(Metrics::new());
    let _server = match &config.metrics.listen {
        Some(listen) => Some(MetricsServer::start(listen, metrics.clone()).await?),
        None => None,
    };
    // Plugins first: a plugin that does not load (a wrong pin, a broken file) is a config
    // error, said before any broker is reached.
    let (assignors, policy) = load_plugins(&config, &metrics)?;
    let client = super::connect(&config).await?;
    metrics.watch_client(client.clone());
    let source = match config.group_options() {
        Some(group) => {
            match group.protocol {
                GroupProtocol::Classic => {
                    tracing::info!(group = %group.group_id, protocol = "classic", assignors = ?config.consumer.assignors, "joining the group")
                }
                GroupProtocol::Consumer => {
                    let assignor = group
                        .remote_assignor
                        .as_deref()
                        .unwrap_or("the broker's default");
                    tracing::info!(group = %group.group_id, protocol = "consumer", assignor, "joining the group")
                }
            }
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
            let positions = start_positions(
                &client,
                &config.consumer.topics,
                &args.partitions,
                &starts,
                config.consumer.isolation_level,
            )
            .await?;
            consumer.assign(positions);
            Source::Partitions(consumer)
        }
    };
    let max_poll_records = usize::try_from(config.consumer.max_poll_records).unwrap_or(usize::MAX);
    // With a pattern, other topics may always match; without one, a refusal of every topic
    // named leaves nothing to read.
    let named_topics = match config.consumer.topic_pattern {
        Some(_) => Vec::new(),
        None => config.consumer.topics.clone(),
    };
    let source = Arc::new(source);
    let mut consuming = tokio::spawn({
        let (source, metrics) = (source.clone(), metrics.clone());
        async move {
            consume(
                &source,
                &named_topics,
                &args,
                &writer,
                &metrics,
                max_poll_records,
                &mut signals,
            )
            .await
        }
    });
    // The loop stops at a signal between two polls. A write to a reader of stdout that
    // stopped reading never returns to that point, so the stop goes on without the loop.
    let ended = tokio::select! {
        biased;
        signal = stop_signals.next() => {
            match tokio::time::timeout(STUCK_WRITE_GRACE, &mut consuming).await {
                Ok(joined) => super::task_ended(joined, "the consuming loop"),
                Err(_) => {
                    consuming.abort();
                    tracing::warn!(signal, "stdout is not being read: stopping without the write in progress; its records are not committed and will be delivered again");
                    Ok(Ended::Signal(signal))
                }
            }
        }
        joined = &mut consuming => super::task_ended(joined, "the consuming loop"),
    };
    match &ended {
        Ok(Ended::Signal(signal)) => {
            tracing::info!(signal, "stopping: committing what was written and leaving")
        }
        Ok(reason) => tracing::debug!(?reason, "stopping"),
        Err(error) => {
            tracing::debug!(error = %format_args!("{error:#}"), "stopping after an error")
        }
    }
    let timeout = Duration::from_millis(config.consumer.shutdown_timeout_ms);
    let stopped = tokio::select! {
        stopped = source.close(timeout) => stopped,
        signal = stop_signals.next() => bail!(
            "{signal} during the clean stop: stopped at once; records printed since the last \
             commit will be delivered again"
        ),
    };
    client.close();
    ended?;
    if !stopped {
        bail!(
            "the clean stop did not finish within consumer.shutdown_timeout_ms ({} ms); records \
             printed since the last commit will be delivered again",
            config.consumer.shutdown_timeout_ms
        );
    }
    Ok(())
}

/// How long a stop waits for the consuming loop to reach the signal before it goes on
/// without it (the loop is then stuck in a write to stdout).
const STUCK_WRITE_GRACE: Duration = Duration::from_secs(2);

/// What `run` gathers before a write to stdout. Every poll's records are flushed anyway before
/// they count as processed; a larger buffer means fewer system calls for large batches
/// (the default 8 KiB made one write per 8 KiB: 25,000 writes for 200 MB of 1 KB records).
const OUTPUT_BUFFER_BYTES: usize = 256 * 1024;

/// The consuming loop: poll, write, flush, and only then tell the source the records are
/// processed and commit them in the background (what its commits may cover).
async fn consume(
    source: &Source,
    named_topics: &[String],
    args: &RunArgs,
    writer: &RecordWriter,
    metrics: &Metrics,
    max_poll_records: usize,
    signals: &mut StopSignals,
) -> anyhow::Result<Ended> {
    let limit = args.max_records.unwrap_or(u64::MAX);
    let mut printed = 0u64;
    // Why each partition stopped, as `poll` said it.
    let mut stopped: BTreeMap<TopicPartition, String> = BTreeMap::new();
    // Why each refused topic is refused, as `poll` said it.
    let mut refused_topics: BTreeMap<String, String> = BTreeMap::new();
    let mut out = StdoutWriter::new(OUTPUT_BUFFER_BYTES);
    let mut progress = Progress::for_stderr(args.no_progress);
    while printed < limit {
        let wanted = usize::try_from(limit - printed)
            .unwrap_or(usize::MAX)
            .min(max_poll_records);
        // A signal that came while the last batch was being written wins over new records.
        let polled = tokio::select! {
            biased;
            signal = signals.next() => return Ok(Ended::Signal(signal)),
            polled = source.poll(wanted, POLL_TIMEOUT) => polled,
        };
        let records = match polled {
            Ok(records) => records,
            // One partition stopped (e.g. reset policy `none`): say so, keep the others going.
            // The run ends only when nothing it holds now can progress; a rebalance may
            // have taken the stopped partitions away or brought healthy ones.
            Err(GroupError::Consumer(ConsumerError::Partition(error))) => {
                tracing::error!("{error}");
                eprintln!("error: {error}");
                stopped.insert(error.partition().clone(), error.to_string());
                if let Some(stuck) = source.nothing_can_progress() {
                    let reasons: Vec<String> = stuck
                        .iter()
                        .map(|tp| match stopped.get(tp) {
                            Some(reason) => format!("\n  {reason}"),
                            None => format!("\n  {tp}: stopped"),
                        })
                        .collect();
                    bail!(
                        "every partition assigned to this consumer stopped with an error, so \
                         nothing can progress:{}",
                        reasons.concat()
                    );
                }
                continue;
            }
            // A topic of the member's list is refused (an ACL): its partitions are never
            // assigned; the run ends only when that is true of every topic it names.
            Err(GroupError::Consumer(ConsumerError::TopicRefused(refused))) => {
                tracing::error!("{refused}");
                eprintln!("error: {refused}");
                refused_topics.insert(refused.topic.clone(), refused.to_string());
                if !named_topics.is_empty()
                    && named_topics.iter().all(|t| refused_topics.contains_key(t))
                {
                    bail!(
                        "the cluster refuses every topic this consumer subscribes to, so \
                         nothing can progress:{}",
                        refused_topics
                            .values()
                            .map(|reason| format!("\n  {reason}"))
                            .collect::<String>()
                    );
                }
                continue;
            }
            Err(GroupError::Consumer(error)) => return Err(error.into()),
            Err(error) => return Err(error.into()),
        };
        // The records go out before anything else is done with this poll: the metrics and
        // the progress line wait, the records do not.
        let written = match write_out(&mut out, writer, &records) {
            Ok(written) => written,
            Err(error) => return output_failed(error),
        };
        written.report(metrics);
        source.mark_processed();
        source.commit_in_background();
        printed += records.len() as u64;
        let snapshot = source.snapshot();
        progress.update(printed, &snapshot);
        metrics.update(snapshot);
        if args.exit_at_end && source.at_end() {
            return Ok(Ended::AtEnd);
        }
    }
    Ok(Ended::Limit)
}

/// Records and payload bytes written, per run of records of one topic, counted while they
/// are written (a second pass over a poll's records cost 2% of the CPU) and reported once
/// they are flushed.
#[derive(Default)]
struct WrittenTally<'a> {
    runs: Vec<(&'a Arc<str>, u64, u64)>,
}

impl<'a> WrittenTally<'a> {
    fn add(&mut self, record: &'a ConsumerRecord) {
        let bytes = (record.key.as_ref().map_or(0, |k| k.len())
            + record.value.as_ref().map_or(0, |v| v.len())) as u64;
        match self.runs.last_mut() {
            Some((topic, count, total)) if Arc::ptr_eq(topic, &record.topic) => {
                *count += 1;
                *total += bytes;
            }
            _ => self.runs.push((&record.topic, 1, bytes)),
        }
    }

    fn report(self, metrics: &Metrics) {
        for (topic, count, total) in self.runs {
            metrics.records_written(topic, count, total);
        }
    }
}

/// The assignors in preference order, and the reset policy.
type Policies = (Vec<Arc<dyn Assignor>>, Arc<dyn ResetPolicy>);

/// The assignors in vote order (`consumer.assignors`, where plugins may be named; plugins
/// not named first: see [`vote_order`]) and the reset policy (a plugin falling back to
/// `consumer.from`, or `consumer.from` itself).
fn load_plugins(config: &Config, metrics: &Metrics) -> anyhow::Result<Policies> {
    let builtin_policy = config.consumer.from.clone().into_policy();
    if config.plugins.is_empty() {
        return Ok((config.assignors(), builtin_policy));
    }
    let runtime = PluginRuntime::new(config.plugins.limits(), config.plugins.cache())
        .map_err(anyhow::Error::msg)?;
    metrics.watch_plugins(runtime.clone());
    let mut plugins: Vec<Arc<dyn Assignor>> = Vec::new();
    for plugin in &config.plugins.assignors {
        let assignor = WasmAssignor::load_pinned(&runtime, &plugin.path, plugin.sha256)
            .context("cannot load an assignor plugin (plugins.assignors)")?
            .with_settings(plugin.settings.clone().into_iter().collect());
        tracing::info!(name = assignor.name(), path = %plugin.path.display(), "assignor plugin loaded");
        plugins.push(Arc::new(assignor));
    }
    let assignors = vote_order(&config.consumer.assignors, &plugins)?;
    let policy: Arc<dyn ResetPolicy> = match &config.plugins.reset_policy {
        Some(plugin) => {
            let policy = WasmResetPolicy::load_pinned(&runtime, &plugin.path, plugin.sha256)
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

    /// What the metrics report of the consumer now.
    fn snapshot(&self) -> Snapshot {
        let (consumer, generation, group) = match self {
            Source::Partitions(consumer) => (consumer, None, None),
            Source::Group(group) => (
                group.consumer(),
                Some(group.identity().generation).filter(|g| *g >= 0),
                Some(group.stats()),
            ),
        };
        Snapshot {
            fetch: consumer.stats(),
            lags: consumer.lags(),
            assigned: consumer.assignment().len(),
            generation,
            group,
        }
    }

    /// Every assigned partition was handed out to its end (see [`Consumer::at_end`]).
    fn at_end(&self) -> bool {
        match self {
            Source::Partitions(consumer) => consumer.at_end(),
            Source::Group(group) => group.consumer().at_end(),
        }
    }

    /// The partitions this consumer holds now, when every one of them has stopped with an
    /// error (a seek would be needed); `None` while any can progress or none is held.
    fn nothing_can_progress(&self) -> Option<Vec<TopicPartition>> {
        let consumer = match self {
            Source::Partitions(consumer) => consumer,
            Source::Group(group) => group.consumer(),
        };
        stuck_partitions(&consumer.assignment())
    }

    /// Everything polled so far was written and flushed.
    fn mark_processed(&self) {
        match self {
            Source::Partitions(consumer) => consumer.mark_processed(),
            Source::Group(group) => group.mark_processed(),
        }
    }

    /// A group member with auto-commit on commits what was flushed, without waiting: its
    /// commit queue sends one commit at a time and merges those that wait, so a crash
    /// re-delivers about one batch. A failure is only logged (the next batch, the periodic
    /// auto-commit and the close commit again).
    fn commit_in_background(&self) {
        let Source::Group(group) = self else { return };
        if group.auto_commits() {
            group.commit_in_background();
        }
    }

    /// A group member commits what was processed and leaves the group; false if that did
    /// not finish within `timeout`. The consuming loop may still hold the source (stuck in a
    /// write).
    async fn close(&self, timeout: Duration) -> bool {
        match self {
            Source::Partitions(consumer) => {
                consumer.close_shared().await;
                true
            }
            Source::Group(group) => group.close_shared_within(timeout).await,
        }
    }
}

/// Every partition of `assignment` when all have failed; `None` when any can progress or
/// there are none.
fn stuck_partitions(
    assignment: &BTreeMap<TopicPartition, PartitionState>,
) -> Option<Vec<TopicPartition>> {
    let all_failed = !assignment.is_empty()
        && assignment
            .values()
            .all(|state| *state == PartitionState::Failed);
    all_failed.then(|| assignment.keys().cloned().collect())
}

/// The output format the flags ask for.
fn record_writer(args: &RunArgs) -> anyhow::Result<RecordWriter> {
    if let Some(format) = &args.format_string {
        return RecordWriter::template(format);
    }
    Ok(match args.format {
        Format::Json => RecordWriter::Json {
            json_values: args.json_values,
        },
        Format::Raw => RecordWriter::Raw {
            key_delimiter: args.key_delimiter.as_ref().map(|d| d.as_bytes().to_vec()),
        },
    })
}

/// Writes a poll's records and flushes them (how a write that may block stays off the
/// runtime's workers: [`super::stdout`]).
fn write_out<'a>(
    out: &mut StdoutWriter,
    writer: &RecordWriter,
    records: &'a [ConsumerRecord],
) -> std::io::Result<WrittenTally<'a>> {
    let size = lines_size_up_to(records, ATOMIC_WRITE);
    if out.is_small(size) {
        let mut lines = Vec::with_capacity(size);
        let written = format_records(&mut lines, writer, records)?;
        out.write_small(&lines)?;
        Ok(written)
    } else {
        out.write_large(|out| format_records(out, writer, records))
    }
}

fn format_records<'a>(
    out: &mut impl std::io::Write,
    writer: &RecordWriter,
    records: &'a [ConsumerRecord],
) -> std::io::Result<WrittenTally<'a>> {
    let mut written = WrittenTally::default();
    for record in records {
        writer.write(out, record)?;
        written.add(record);
    }
    Ok(written)
}

/// About the bytes of `records`' lines, counted until they pass `limit`: a large poll is
/// told from a small one without a pass over all its records.
fn lines_size_up_to(records: &[ConsumerRecord], limit: usize) -> usize {
    let mut size = 0;
    for record in records {
        size += line_size(record);
        if size > limit {
            break;
        }
    }
    size
}

/// About the bytes of a record's line: its topic, key, value and headers, and what a JSON
/// line adds to them (a template may write more; this only sorts small polls from large).
fn line_size(record: &ConsumerRecord) -> usize {
    const JSON_FIELDS: usize = 128;
    let bytes = |b: &Option<bytes::Bytes>| b.as_ref().map_or(0, |b| b.len());
    JSON_FIELDS
        + record.topic.len()
        + bytes(&record.key)
        + bytes(&record.value)
        + record
            .headers
            .iter()
            .map(|(key, value)| key.len() + bytes(value))
            .sum::<usize>()
}

/// A closed stdout (`| head`) ends the run like a limit; anything else is an error. The
/// records of the failed write are not marked processed.
fn output_failed(error: std::io::Error) -> anyhow::Result<Ended> {
    if error.kind() == ErrorKind::BrokenPipe {
        Ok(Ended::OutputClosed)
    } else {
        Err(error).context("cannot write to stdout")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::ResetCause;

    #[test]
    fn a_run_ends_only_when_every_partition_it_holds_now_has_stopped() {
        let tp = |p| TopicPartition::new("t", p);
        // Nothing held (between an eager revoke and the next assignment): go on.
        assert_eq!(stuck_partitions(&BTreeMap::new()), None);
        // One of two stopped: the other still progresses.
        let mut assignment = BTreeMap::from([
            (tp(0), PartitionState::Failed),
            (tp(1), PartitionState::Fetching { position: 5 }),
        ]);
        assert_eq!(stuck_partitions(&assignment), None);
        // A partition waiting for its committed offset or a reset can still progress.
        assignment.insert(tp(1), PartitionState::AwaitingCommitted);
        assert_eq!(stuck_partitions(&assignment), None);
        assignment.insert(
            tp(1),
            PartitionState::AwaitingReset {
                cause: ResetCause::Policy(crate::policy::ResetReason::NoCommittedOffset),
            },
        );
        assert_eq!(stuck_partitions(&assignment), None);
        // After a rebalance only the stopped one is left: now nothing can progress.
        assignment.remove(&tp(1));
        assert_eq!(stuck_partitions(&assignment), Some(vec![tp(0)]));
    }
}
