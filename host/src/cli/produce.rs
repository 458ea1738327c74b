//! `wasmkafka produce`: sample records spread round-robin over a topic's partitions, or, with
//! `--stdin`, one record per input line (as `kcat -P`): a key split off at `--key-delimiter`,
//! `--header`s on every record, keyed records placed as Kafka's default partitioner places
//! them.

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Args;
use kafka_protocol::records::Compression;

use crate::client::Client;
use crate::produce::{partition_for_key, produce_batch, OutgoingRecord};

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
    /// Produce one record per line of stdin (the line's bytes, without its newline) instead
    /// of samples.
    #[arg(long, conflicts_with_all = ["count", "value_size", "distinct_keys"])]
    pub stdin: bool,
    /// With --stdin: the text before the first occurrence of D is the key, the rest the
    /// value (a line without D has no key). Keyed records go where Kafka's default
    /// partitioner puts them.
    #[arg(long, value_name = "D", requires = "stdin")]
    pub key_delimiter: Option<String>,
    /// A header on every record, `NAME=VALUE` (repeatable).
    #[arg(
        long = "header",
        short = 'H',
        value_name = "NAME=VALUE",
        requires = "stdin"
    )]
    pub headers: Vec<String>,
    /// Every record to this partition (default: by key; unkeyed batches round-robin).
    #[arg(long, value_name = "P")]
    pub partition: Option<i32>,
    /// Batch compression.
    #[arg(long, value_enum, default_value = "none")]
    pub compression: CompressionArg,
}

/// `--compression`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompressionArg {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl From<CompressionArg> for Compression {
    fn from(arg: CompressionArg) -> Compression {
        match arg {
            CompressionArg::None => Compression::None,
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Snappy => Compression::Snappy,
            CompressionArg::Lz4 => Compression::Lz4,
            CompressionArg::Zstd => Compression::Zstd,
        }
    }
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
    if let Some(partition) = args.partition {
        if !partitions.contains(&partition) {
            bail!(
                "--partition {partition}: topic `{}` has partitions 0..{}",
                args.topic,
                partitions.len()
            );
        }
    }
    if args.stdin {
        let report = produce_lines(&client, &args, &partitions).await?;
        eprintln!("{report}");
        client.close();
        return Ok(());
    }
    let mut produced = 0u64;
    let mut next_partition = 0usize;
    while produced < args.count {
        let n = (args.count - produced).min(args.batch as u64);
        let records: Vec<OutgoingRecord> = (produced..produced + n)
            .map(|i| sample_record(i, args.value_size, args.distinct_keys))
            .collect();
        let partition = args
            .partition
            .unwrap_or(partitions[next_partition % partitions.len()]);
        next_partition += 1;
        produce_batch(
            &client,
            &args.topic,
            partition,
            &records,
            args.compression.into(),
        )
        .await?;
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

/// Bytes of record data gathered for one partition before its batch goes out.
const BATCH_BYTES: usize = 1024 * 1024;

/// What `--stdin` sent, per partition (as kcat's delivery report counts).
struct Report {
    topic: String,
    records: u64,
    bytes: u64,
    per_partition: std::collections::BTreeMap<i32, u64>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "produced {} records ({} bytes) to {}, every one acknowledged by all in-sync replicas:",
            self.records, self.bytes, self.topic
        )?;
        for (partition, count) in &self.per_partition {
            write!(f, " partition {partition}: {count}")?;
        }
        Ok(())
    }
}

/// Reads stdin to its end, one record per line, and produces the records in batches (per
/// partition, up to `--batch` records or 1 MiB); a batch is sent before more input is read,
/// so memory stays bounded whatever the input's size.
async fn produce_lines(
    client: &Client,
    args: &ProduceArgs,
    partitions: &[i32],
) -> anyhow::Result<Report> {
    use tokio::io::AsyncBufReadExt;
    let headers: Vec<(String, Option<Bytes>)> = args
        .headers
        .iter()
        .map(|h| {
            h.split_once('=')
                .map(|(k, v)| (k.to_string(), Some(Bytes::copy_from_slice(v.as_bytes()))))
                .with_context(|| format!("--header `{h}` is not NAME=VALUE"))
        })
        .collect::<anyhow::Result<_>>()?;
    let delimiter = args.key_delimiter.as_deref().map(str::as_bytes);
    if delimiter.is_some_and(<[u8]>::is_empty) {
        bail!("--key-delimiter must not be empty");
    }
    let mut report = Report {
        topic: args.topic.clone(),
        records: 0,
        bytes: 0,
        per_partition: Default::default(),
    };
    let mut pending: std::collections::BTreeMap<i32, (Vec<OutgoingRecord>, usize)> =
        Default::default();
    let mut next_unkeyed = 0usize;
    let mut input = tokio::io::BufReader::with_capacity(256 * 1024, tokio::io::stdin());
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = input
            .read_until(b'\n', &mut line)
            .await
            .context("cannot read stdin")?;
        if read == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        let (key, value) = split_key(&line, delimiter);
        let partition = match (args.partition, &key) {
            (Some(partition), _) => partition,
            (None, Some(key)) => partitions[partition_for_key(key, partitions.len())],
            // Unkeyed: each batch to the next partition in turn (Kafka's sticky partitioner
            // fills one batch per partition the same way).
            (None, None) => partitions[next_unkeyed % partitions.len()],
        };
        let size = key.as_ref().map_or(0, Bytes::len) + value.len();
        let (records, bytes) = pending.entry(partition).or_default();
        records.push(OutgoingRecord {
            key,
            value: Some(value),
            headers: headers.clone(),
            timestamp: None,
        });
        *bytes += size;
        if records.len() >= args.batch || *bytes >= BATCH_BYTES {
            let (records, bytes) = pending.remove(&partition).expect("just filled");
            send(client, args, partition, records, bytes, &mut report).await?;
            if args.partition.is_none() {
                next_unkeyed += 1;
            }
        }
    }
    for (partition, (records, bytes)) in std::mem::take(&mut pending) {
        send(client, args, partition, records, bytes, &mut report).await?;
    }
    Ok(report)
}

/// `line` split at the first `delimiter` into key and value (no key without one).
fn split_key(line: &[u8], delimiter: Option<&[u8]>) -> (Option<Bytes>, Bytes) {
    if let Some(delimiter) = delimiter {
        if let Some(at) = line
            .windows(delimiter.len())
            .position(|window| window == delimiter)
        {
            return (
                Some(Bytes::copy_from_slice(&line[..at])),
                Bytes::copy_from_slice(&line[at + delimiter.len()..]),
            );
        }
    }
    (None, Bytes::copy_from_slice(line))
}

async fn send(
    client: &Client,
    args: &ProduceArgs,
    partition: i32,
    records: Vec<OutgoingRecord>,
    bytes: usize,
    report: &mut Report,
) -> anyhow::Result<()> {
    produce_batch(
        client,
        &args.topic,
        partition,
        &records,
        args.compression.into(),
    )
    .await
    .with_context(|| {
        format!(
            "{} records were acknowledged before this batch failed; the batch's {} records \
             may or may not be written",
            report.records,
            records.len()
        )
    })?;
    report.records += records.len() as u64;
    report.bytes += bytes as u64;
    *report.per_partition.entry(partition).or_default() += records.len() as u64;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_splits_at_the_first_delimiter_only() {
        assert_eq!(
            split_key(b"k::v::w", Some(b"::")),
            (Some(Bytes::from_static(b"k")), Bytes::from_static(b"v::w"))
        );
        assert_eq!(
            split_key(b"no key", Some(b":")),
            (None, Bytes::from_static(b"no key"))
        );
        assert_eq!(
            split_key(b":empty key", Some(b":")),
            (Some(Bytes::new()), Bytes::from_static(b"empty key"))
        );
        assert_eq!(split_key(b"a:b", None), (None, Bytes::from_static(b"a:b")));
    }
}
