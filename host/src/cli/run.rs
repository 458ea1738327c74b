//! `wasmkafka run`: consume and print records.

use std::io::{BufWriter, ErrorKind, Write};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::config::StartFrom;
use crate::fetch::{Consumer, FetchOptions, OffsetSpec};

use super::output::record_json;
use super::{Format, RunArgs};

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut config = args.common.load_config()?;
    if !args.topics.is_empty() {
        config.consumer.topics = args.topics.clone();
    }
    if let Some(from) = args.from {
        config.consumer.from = from;
    }
    if args.group.is_some() || config.consumer.group.is_some() {
        bail!(
            "consumer groups are not available in this build yet; run without --group \
             (and without consumer.group) to read every partition of the topics"
        );
    }
    if config.consumer.topics.is_empty() {
        bail!("no topic given: pass --topic T (repeatable) or set consumer.topics in the config");
    }
    let client = super::connect(&config).await?;
    let options = FetchOptions {
        max_wait: Duration::from_millis(config.consumer.fetch_max_wait_ms),
        min_bytes: config.consumer.fetch_min_bytes,
        max_bytes: config.consumer.fetch_max_bytes,
        partition_max_bytes: config.consumer.max_partition_fetch_bytes,
        reset_to: match config.consumer.from {
            StartFrom::Earliest => OffsetSpec::Earliest,
            StartFrom::Latest => OffsetSpec::Latest,
        },
    };
    let mut consumer = Consumer::new(client.clone(), options);
    consumer.assign_topics(&config.consumer.topics).await?;

    let limit = args.max_records.unwrap_or(u64::MAX);
    let mut printed = 0u64;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    while printed < limit {
        let records = tokio::select! {
            records = consumer.poll() => records?,
            _ = &mut ctrl_c => break,
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
    client.close();
    Ok(())
}

/// A closed stdout (`| head`) ends the run quietly; anything else is an error.
fn stdout_closed(error: std::io::Error) -> anyhow::Result<()> {
    if error.kind() == ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(error).context("cannot write to stdout")
    }
}
