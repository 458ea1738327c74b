//! The codec of a batch's records section. Decompression is kafka-protocol's (vendored and
//! patched: output bounded by `MAX_DECOMPRESSED_BATCH_BYTES`, Kafka's xerial snappy framing);
//! the records are then decoded by [`super::records`] from the decompressed buffer.

use bytes::Bytes;
use kafka_protocol::compression::{Decompressor, Gzip, Lz4, Snappy, Zstd};

/// Runs `decode` on the records section, decompressed when the codec says so.
pub(super) fn with_records<T>(
    compression: u8,
    mut section: Bytes,
    decode: impl FnOnce(&Bytes) -> Result<T, String>,
) -> Result<T, String> {
    // The closure's error is carried out past kafka-protocol's anyhow error unchanged.
    let mut failure = None;
    let run = |records: &mut Bytes| -> anyhow::Result<Option<T>> {
        match decode(records) {
            Ok(value) => Ok(Some(value)),
            Err(reason) => {
                failure = Some(reason);
                Ok(None)
            }
        }
    };
    let decoded = match compression {
        0 => run(&mut section),
        1 => Gzip::decompress(&mut section, run),
        2 => Snappy::decompress(&mut section, run),
        3 => Lz4::decompress(&mut section, run),
        4 => Zstd::decompress(&mut section, run),
        other => return Err(format!("unknown compression codec {other}")),
    };
    match decoded {
        Ok(Some(value)) => Ok(value),
        Ok(None) => Err(failure.unwrap_or_default()),
        Err(error) => Err(format!("{error:#}")),
    }
}
