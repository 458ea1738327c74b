//! Fetching: record batch decoding, positions, and the fetch loop.

pub mod batch;

pub use batch::{decode_records, BatchError, BatchHeader, ConsumerRecord, DecodedRecords};
