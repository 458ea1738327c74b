//! The feed: one record to every partition of the topic every `pace`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use wasmkafka::client::Client;
use wasmkafka::net::Purpose;
use wasmkafka::produce::{encode_batch, OutgoingRecord};

use crate::workload::value;

/// One record to every partition every `pace`, in one Produce request per leader.
pub struct Feed {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Result<u64>>,
    client: Client,
}

impl Feed {
    pub fn start(client: Client, topic: &str, partitions: i32, pace: Duration) -> Feed {
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let (client, topic, stop) = (client.clone(), topic.to_string(), stop.clone());
            async move { feed(&client, &topic, partitions, pace, &stop).await }
        });
        Feed { stop, task, client }
    }

    /// Stops it: the records produced per partition.
    pub fn stop(self, handle: &Handle) -> Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        let produced = handle.block_on(self.task);
        self.client.close();
        produced?
    }
}

async fn feed(
    client: &Client,
    topic: &str,
    partitions: i32,
    pace: Duration,
    stop: &AtomicBool,
) -> Result<u64> {
    let metadata = client.fresh_metadata().await?;
    let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for partition in 0..partitions {
        let leader = metadata
            .leader(topic, partition)
            .with_context(|| format!("{topic}/{partition} has no leader"))?;
        by_leader.entry(leader).or_default().push(partition);
    }
    let mut ticks = tokio::time::interval(pace);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut next = 0;
    while !stop.load(Ordering::Relaxed) {
        ticks.tick().await;
        for (leader, owned) in &by_leader {
            let data = owned
                .iter()
                .map(|&partition| {
                    let record = OutgoingRecord {
                        value: Some(value(partition, next, 100)),
                        ..OutgoingRecord::default()
                    };
                    let batch = encode_batch(&[record], Compression::None)?;
                    Ok(PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(batch)))
                })
                .collect::<Result<Vec<_>>>()?;
            let request = ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(30_000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partition_data(data)]);
            let response = client
                .send(*leader, Purpose::Default, &request)
                .await
                .context("cannot feed the topic")?;
            for answer in response
                .responses
                .iter()
                .flat_map(|t| t.partition_responses.iter())
            {
                if answer.error_code != 0 {
                    bail!(
                        "producing to {topic}/{} failed with error code {}",
                        answer.index,
                        answer.error_code
                    );
                }
            }
        }
        next += 1;
    }
    Ok(next)
}
