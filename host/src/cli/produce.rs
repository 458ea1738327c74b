//! `wasmkafka produce`: sample records, spread round-robin over a topic's partitions.

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Args;
use kafka_protocol::records::Compression;

use crate::produce::{produce_batch, OutgoingRecord};

use super::CommonArgs;

#[derive(Debug, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[arg(long, value_name = "T")]
    pub topic: String,
    /// How many records to produce.
    #[arg(long, default_value_t = 1000)]
    pub count: u64,
    /// Value size in bytes (values are `record-N` padded with dots).
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Records per batch (each batch goes to the next partition in turn).
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Keys cycle through this many distinct values (`key-0` ...); 0 means no keys.
    #[arg(long, default_value_t = 0)]
    pub distinct_keys: u64,
}

pub async fn produce(args: ProduceArgs) -> anyhow::Result<()> {
    let config = args.common.load_config()?;
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let client = super::connect(&config).await?;
    let metadata = client.metadata();
    let topic = metadata.topics.get(&args.topic).with_context(|| {
        format!(
            "topic `{}` does not exist; create it first (kafka-topics.sh --create --topic {} \
             --partitions N --bootstrap-server ...)",
            args.topic, args.topic
        )
    })?;
    let partitions: Vec<i32> = topic.partitions.keys().copied().collect();
    if partitions.is_empty() {
        bail!("topic `{}` has no partitions", args.topic);
    }
    let mut produced = 0u64;
    let mut next_partition = 0usize;
    while produced < args.count {
        let n = (args.count - produced).min(args.batch as u64);
        let records: Vec<OutgoingRecord> = (produced..produced + n)
            .map(|i| sample_record(i, args.value_size, args.distinct_keys))
            .collect();
        let partition = partitions[next_partition % partitions.len()];
        next_partition += 1;
        produce_batch(&client, &args.topic, partition, &records, Compression::None).await?;
        produced += n;
    }
    eprintln!("produced {produced} records to {}", args.topic);
    client.close();
    Ok(())
}

/// Record number `i`: value `record-i` padded to `size` bytes, key `key-(i % keys)`.
pub fn sample_record(i: u64, size: usize, keys: u64) -> OutgoingRecord {
    let mut value = format!("record-{i}");
    if value.len() < size {
        value.push_str(&".".repeat(size - value.len()));
    }
    OutgoingRecord {
        key: (keys > 0).then(|| Bytes::from(format!("key-{}", i % keys))),
        value: Some(Bytes::from(value)),
        headers: vec![("seq".to_string(), Some(Bytes::from(i.to_string())))],
        timestamp: None,
    }
}
