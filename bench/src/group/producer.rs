//! Records produced at a steady pace while the group reads, with wasmkafka's producer API
//! (`wasmkafka::produce`, as the workload loader): one task per partition sends a batch every
//! `every` and waits for its acknowledgement before the next, so a partition's records are
//! written in order and record N of a partition is its offset N (the value says "P:N:...").

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use kafka_protocol::records::Compression;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use wasmkafka::client::Client;
use wasmkafka::produce::{produce_batch, OutgoingRecord};

use crate::workload::value;

/// How fast, and how much, each partition gets.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub batch: u64,
    pub every: Duration,
    /// Records per partition after which its task stops by itself.
    pub limit: u64,
    pub value_bytes: usize,
}

/// Tasks producing to every partition of a topic until stopped or at the pace's limit.
pub struct Producer {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<Result<u64>>>,
    client: Client,
    limit: u64,
}

impl Producer {
    /// Starts producing to partitions 0..partitions of `topic` on the runtime `handle`.
    pub fn start(
        handle: &Handle,
        client: Client,
        topic: &str,
        partitions: i32,
        pace: Pace,
    ) -> Producer {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..partitions)
            .map(|partition| {
                let (client, topic, stop) = (client.clone(), topic.to_string(), stop.clone());
                handle.spawn(
                    async move { produce_paced(&client, &topic, partition, pace, &stop).await },
                )
            })
            .collect();
        Producer {
            stop,
            tasks,
            client,
            limit: pace.limit,
        }
    }

    /// Waits for every task to reach its limit: the records produced per partition.
    pub fn finish(self, handle: &Handle) -> Result<Vec<u64>> {
        let produced = handle.block_on(async {
            let mut produced = Vec::new();
            for task in self.tasks {
                produced.push(task.await??);
            }
            anyhow::Ok(produced)
        });
        self.client.close();
        produced
    }

    /// Stops producing: the records produced per partition. Fails if a partition reached the
    /// limit first (it stopped before the measurement ended).
    pub fn stop(self, handle: &Handle) -> Result<Vec<u64>> {
        self.stop.store(true, Ordering::Relaxed);
        let limit = self.limit;
        let produced = self.finish(handle)?;
        if produced.iter().any(|n| *n >= limit) {
            bail!("a partition reached the producer's limit of {limit} records before the stop");
        }
        Ok(produced)
    }
}

/// Produces `pace.batch` records every `pace.every` until `stop` or `pace.limit`; returns
/// how many were produced.
async fn produce_paced(
    client: &Client,
    topic: &str,
    partition: i32,
    pace: Pace,
    stop: &AtomicBool,
) -> Result<u64> {
    let mut ticks = tokio::time::interval(pace.every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut next = 0;
    while next < pace.limit && !stop.load(Ordering::Relaxed) {
        ticks.tick().await;
        let records: Vec<OutgoingRecord> = (next..(next + pace.batch).min(pace.limit))
            .map(|n| OutgoingRecord {
                key: None,
                value: Some(value(partition, n, pace.value_bytes)),
                headers: Vec::new(),
                timestamp: None,
            })
            .collect();
        produce_batch(client, topic, partition, &records, Compression::None)
            .await
            .with_context(|| format!("cannot produce to {topic}/{partition}"))?;
        next += records.len() as u64;
    }
    Ok(next)
}
