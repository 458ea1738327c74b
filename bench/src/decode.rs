//! The ceiling of our own code: record batches as a Fetch answer carries them, decoded
//! ([`decode_records`]) and written the way `run` writes them ([`RecordWriter`]) into a sink,
//! on one thread, with no network and no broker. `wasmkafka-bench decode`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::{Bytes, BytesMut};
use kafka_protocol::records::Compression;
use wasmkafka::cli::output::RecordWriter;
use wasmkafka::fetch::batch::decode_records;
use wasmkafka::produce::{encode_batch, OutgoingRecord};

const RECORDS_PER_BATCH: usize = 1000;
const BATCHES: usize = 100;
const MEASURE_FOR: Duration = Duration::from_secs(3);

/// `BATCHES` batches of `RECORDS_PER_BATCH` 100-byte records, concatenated as one
/// partition's record data, with real offsets.
fn partition_data(compression: Compression) -> Result<Bytes> {
    let mut data = BytesMut::new();
    for batch in 0..BATCHES {
        let records: Vec<OutgoingRecord> = (0..RECORDS_PER_BATCH)
            .map(|n| {
                let mut value = format!("0:{}:", batch * RECORDS_PER_BATCH + n).into_bytes();
                value.resize(100, b'a' + (n % 26) as u8);
                OutgoingRecord {
                    key: None,
                    value: Some(Bytes::from(value)),
                    headers: Vec::new(),
                    timestamp: Some(1_700_000_000_000 + n as i64),
                }
            })
            .collect();
        let mut encoded = BytesMut::from(&encode_batch(&records, compression)?[..]);
        // Give the batch its place in the log (encode_batch starts every batch at 0).
        let base = (batch * RECORDS_PER_BATCH) as i64;
        encoded[0..8].copy_from_slice(&base.to_be_bytes());
        data.extend_from_slice(&encoded);
    }
    Ok(data.freeze())
}

/// Decodes and writes the data over and over for [`MEASURE_FOR`]; records per second.
fn rate(data: &Bytes, writer: &RecordWriter) -> Result<f64> {
    let topic: Arc<str> = Arc::from("bench");
    let mut sink = std::io::sink();
    let started = Instant::now();
    let mut records = 0u64;
    while started.elapsed() < MEASURE_FOR {
        let decoded = decode_records(&topic, 0, 0, data.clone(), |_| false)?;
        for record in &decoded.records {
            writer.write(&mut sink, record)?;
        }
        records += decoded.records.len() as u64;
    }
    Ok(records as f64 / started.elapsed().as_secs_f64())
}

pub fn run() -> Result<String> {
    let mut text = String::from("| batches | output | records/s (one thread) |\n|---|---|---:|\n");
    for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
        let data = partition_data(compression)?;
        for (output, writer) in [
            (
                "raw",
                RecordWriter::Raw {
                    key_delimiter: None,
                },
            ),
            ("json", RecordWriter::Json { json_values: false }),
            ("decode only", RecordWriter::Template(Vec::new())),
        ] {
            let rate = rate(&data, &writer)?;
            eprintln!("{compression:?} {output}: {rate:.0} records/s");
            text.push_str(&format!(
                "| {} | {output} | {rate:.0} |\n",
                format!("{compression:?}").to_lowercase()
            ));
        }
    }
    Ok(text)
}
