//! The data each benchmark reads: a topic, loaded once per run with wasmkafka's producer.

use anyhow::{Context, Result};
use bytes::Bytes;
use kafka_protocol::records::Compression;
use wasmkafka::client::Client;
use wasmkafka::produce::{produce_batch, OutgoingRecord};

#[derive(Debug, Clone)]
pub struct Workload {
    pub name: &'static str,
    pub topic: String,
    pub partitions: i32,
    pub records: u64,
    pub value_bytes: usize,
    pub compression: Compression,
}

impl Workload {
    /// The workloads, by name.
    pub fn all() -> Vec<Workload> {
        let workload = |name, partitions, records, value_bytes, compression| Workload {
            name,
            topic: format!("bench-{name}"),
            partitions,
            records,
            value_bytes,
            compression,
        };
        vec![
            workload("1m-100b", 4, 1_000_000, 100, Compression::None),
            workload("200k-1kb", 4, 200_000, 1000, Compression::None),
            workload("1m-100b-100p", 100, 1_000_000, 100, Compression::None),
            workload("1m-100b-lz4", 4, 1_000_000, 100, Compression::Lz4),
            workload("1m-100b-zstd", 4, 1_000_000, 100, Compression::Zstd),
        ]
    }

    pub fn describe(&self) -> String {
        let codec = match self.compression {
            Compression::None => "uncompressed".to_string(),
            other => format!("{other:?}").to_lowercase(),
        };
        format!(
            "{} records of {} B, {} partitions, {codec}",
            self.records, self.value_bytes, self.partitions
        )
    }

    /// Creates the topic and fills it: an equal share per partition, in batches of 1,000
    /// records (the size a producer with linger sends), partitions loaded side by side.
    pub async fn load(&self, kafka: &wasmkafka_tests::kafka::Kafka) -> Result<()> {
        kafka
            .create_topic(&self.topic, self.partitions, &[])
            .await
            .with_context(|| format!("cannot create {}", self.topic))?;
        let client = kafka.client();
        let per_partition = self.records / self.partitions as u64;
        let mut tasks = tokio::task::JoinSet::new();
        for partition in 0..self.partitions {
            let (client, workload) = (client.clone(), self.clone());
            tasks.spawn(async move {
                workload
                    .load_partition(&client, partition, per_partition)
                    .await
            });
        }
        while let Some(loaded) = tasks.join_next().await {
            loaded??;
        }
        client.close();
        Ok(())
    }

    async fn load_partition(&self, client: &Client, partition: i32, count: u64) -> Result<()> {
        const BATCH: u64 = 1000;
        let mut next = 0;
        while next < count {
            let records: Vec<OutgoingRecord> = (next..(next + BATCH).min(count))
                .map(|n| OutgoingRecord {
                    key: None,
                    value: Some(value(partition, n, self.value_bytes)),
                    headers: Vec::new(),
                    timestamp: None,
                })
                .collect();
            next += records.len() as u64;
            produce_batch(client, &self.topic, partition, &records, self.compression)
                .await
                .with_context(|| format!("cannot load {}/{partition}", self.topic))?;
        }
        Ok(())
    }
}

/// `len` printable bytes, different per record (a compressor finds the redundancy of text,
/// not of a repeated byte): "P:N:" then pseudo-random lowercase letters.
pub fn value(partition: i32, n: u64, len: usize) -> Bytes {
    let mut value = format!("{partition}:{n}:").into_bytes();
    let mut state = (partition as u64) << 32 ^ n ^ 0x9e37_79b9_7f4a_7c15;
    while value.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        value.push(b'a' + (state % 26) as u8);
    }
    value.truncate(len);
    Bytes::from(value)
}
