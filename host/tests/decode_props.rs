//! Property tests: arbitrary and mutated bytes through everything that decodes what a broker
//! (or another group member) sends, and arbitrary text through the config loader. Nothing may
//! panic, and no decode may allocate much more than the bytes it was given justify: a garbage
//! length prefix must be an error, not a multi-gigabyte allocation that aborts the process.
//!
//! Allocation is measured per thread by a counting global allocator around each decode.
//! Cases are bounded so the file runs in well under a minute in the debug profile.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{Compression, Record, TimestampType};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use wasmkafka::config::Config;
use wasmkafka::fetch::decode_records;
use wasmkafka::group::protocol::{decode_assignment, decode_subscription};
use wasmkafka::produce::encode_records;

// ---------------------------------------------------------------------------------------------
// A per-thread count of live heap bytes and their peak.

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn add(bytes: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + bytes;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns how far the live heap of this thread rose above where it started.
fn peak_growth<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(start));
    let result = f();
    let peak = PEAK.with(Cell::get);
    (result, (peak - start).max(0) as usize)
}

/// What a decode of `input` bytes may allocate: generously proportional to the input (decoded
/// structures are bigger than their encoding), never gigabytes.
fn allowed(input: usize) -> usize {
    64 * input + (1 << 20)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("DP_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(2048),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Record batches.

fn records(count: usize) -> Vec<Record> {
    (0..count as i64)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 3,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i,
            sequence: i as i32,
            timestamp: 1_700_000_000_000 + i,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(format!(
                "value-{i}-{}",
                "x".repeat(i as usize % 50)
            ))),
            headers: [(
                StrBytes::from_static_str("h"),
                Some(Bytes::from_static(b"v")),
            )]
            .into_iter()
            .collect(),
        })
        .collect()
}

const COMPRESSIONS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// Two valid batches back to back, compressed with `compression`.
fn valid_batches(compression: Compression, count: usize) -> Vec<u8> {
    let mut data = encode_records(&records(count), compression)
        .unwrap()
        .to_vec();
    let mut second = records(count);
    for record in &mut second {
        record.offset += count as i64;
    }
    data.extend_from_slice(&encode_records(&second, compression).unwrap());
    data
}

/// Re-stamps every complete batch's CRC, so a mutation reaches the decoder's later checks
/// instead of a checksum mismatch (the decoder checks CRCs).
fn fix_crcs(data: &mut [u8]) {
    let mut at = 0;
    while at + 61 <= data.len() {
        let length = i32::from_be_bytes(data[at + 8..at + 12].try_into().unwrap());
        if length < 49 {
            return;
        }
        let end = at + 12 + length as usize;
        if end > data.len() {
            return;
        }
        let crc = crc32c::crc32c(&data[at + 21..end]);
        data[at + 17..at + 21].copy_from_slice(&crc.to_be_bytes());
        at = end;
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip {
        at: usize,
        bits: u8,
    },
    Truncate {
        at: usize,
    },
    /// Writes a big 32-bit number at a position: a length or count gone wild.
    Huge {
        at: usize,
        value: i32,
    },
    Insert {
        at: usize,
        byte: u8,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, bits)| Mutation::Flip { at, bits }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (
            any::<usize>(),
            prop_oneof![Just(i32::MAX), Just(0x7fff_0000), Just(-2), any::<i32>()]
        )
            .prop_map(|(at, value)| Mutation::Huge { at, value }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert { at, byte }),
    ]
}

fn mutate(mut data: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for mutation in mutations {
        if data.is_empty() {
            break;
        }
        let len = data.len();
        match *mutation {
            Mutation::Flip { at, bits } => data[at % len] ^= bits,
            Mutation::Truncate { at } => data.truncate(at % len),
            Mutation::Huge { at, value } => {
                let at = at % len;
                let end = (at + 4).min(len);
                data[at..end].copy_from_slice(&value.to_be_bytes()[..end - at]);
            }
            Mutation::Insert { at, byte } => data.insert(at % (len + 1), byte),
        }
    }
    data
}

fn decode_batches(data: Vec<u8>) -> usize {
    let input = data.len();
    let topic: Arc<str> = Arc::from("t");
    let (_, grew) = peak_growth(move || {
        let _ = decode_records(&topic, 0, 0, Bytes::from(data), |_| false);
    });
    assert!(
        grew <= allowed(input),
        "decoding {input} bytes of record batches allocated {grew} bytes at the peak"
    );
    grew
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_as_record_batches(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        decode_batches(data);
    }

    #[test]
    fn mutated_record_batches(
        compression in 0..COMPRESSIONS.len(),
        count in 1usize..20,
        mutations in prop::collection::vec(mutation(), 1..4),
        restamp in any::<bool>(),
    ) {
        let mut data = mutate(valid_batches(COMPRESSIONS[compression], count), &mutations);
        if restamp {
            fix_crcs(&mut data);
        }
        decode_batches(data);
    }

    #[test]
    fn arbitrary_bytes_as_group_protocol_payloads(data in prop::collection::vec(any::<u8>(), 0..512)) {
        let input = data.len();
        let data = Bytes::from(data);
        let (_, grew) = peak_growth(|| {
            let _ = decode_subscription("m", None, &data);
            let _ = decode_assignment(&data);
        });
        prop_assert!(grew <= allowed(input), "{grew} bytes for {input}");
    }
}

/// Valid batches still decode, compressed or not (the bounds refuse nothing real).
#[test]
fn valid_batches_decode_with_every_compression() {
    let topic: Arc<str> = Arc::from("t");
    for compression in COMPRESSIONS {
        let decoded = decode_records(
            &topic,
            0,
            0,
            Bytes::from(valid_batches(compression, 50)),
            |_| false,
        )
        .unwrap();
        assert_eq!(decoded.records.len(), 100, "{compression:?}");
        assert_eq!(decoded.next_offset, Some(100));
    }
}

/// One record to write: key, value, headers, the gap to the previous offset, a timestamp delta.
type Written = (
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<Option<Vec<u8>>>,
    i64,
    i64,
);

fn written_record() -> impl Strategy<Value = Written> {
    let bytes = |max| prop::option::of(prop::collection::vec(any::<u8>(), 0..max));
    (
        bytes(24),
        bytes(300),
        prop::collection::vec(bytes(8), 0..3),
        1i64..4,
        -5_000i64..5_000,
    )
}

proptest! {
    #![proptest_config(config())]

    /// Whatever kafka-protocol's encoder writes (every codec, gaps between offsets, null and
    /// empty keys and values, headers, timestamps before and after the first), the decoder
    /// returns exactly: the same offsets, timestamps, keys, values and headers in order.
    #[test]
    fn valid_batches_decode_to_exactly_what_was_written(
        compression in 0..COMPRESSIONS.len(),
        written in prop::collection::vec(written_record(), 1..40),
        base in 0i64..1_000_000,
    ) {
        let mut offset = base;
        let records: Vec<Record> = written
            .iter()
            .map(|(key, value, headers, gap, delta)| {
                offset += gap;
                Record {
                    transactional: false,
                    control: false,
                    delete_horizon: false,
                    partition_leader_epoch: 7,
                    producer_id: -1,
                    producer_epoch: -1,
                    timestamp_type: TimestampType::Creation,
                    offset,
                    // One batch: the encoder starts a new one where `offset - sequence` changes.
                    sequence: (offset - base) as i32,
                    timestamp: 1_700_000_000_000 + delta,
                    key: key.clone().map(Bytes::from),
                    value: value.clone().map(Bytes::from),
                    headers: headers
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (StrBytes::from_string(format!("h{i}")), v.clone().map(Bytes::from)))
                        .collect(),
                }
            })
            .collect();
        let data = encode_records(&records, COMPRESSIONS[compression]).unwrap();
        let decoded = decode_records(&Arc::from("t"), 3, 0, data, |_| false).unwrap();
        prop_assert_eq!(decoded.records.len(), records.len());
        for (got, sent) in decoded.records.iter().zip(&records) {
            prop_assert_eq!(got.partition, 3);
            prop_assert_eq!(got.offset, sent.offset);
            prop_assert_eq!(got.timestamp, sent.timestamp);
            prop_assert_eq!(&got.key, &sent.key);
            prop_assert_eq!(&got.value, &sent.value);
            let headers: Vec<(String, Option<Bytes>)> = sent
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            prop_assert_eq!(&got.headers, &headers);
        }
        prop_assert_eq!(decoded.next_offset, Some(offset + 1));
    }
}

/// A batch whose header puts its base offset at the very end of the offset space: an error
/// or records, never an overflow panic.
#[test]
fn a_base_offset_at_the_end_of_the_offset_space() {
    let mut data = valid_batches(Compression::None, 3);
    data[0..8].copy_from_slice(&i64::MAX.to_be_bytes());
    decode_batches(data);
}

/// A zstd batch whose records decompress to far more than the batch: refused as corrupt by the
/// decompression bound, or decoded, but never more than the bound allocated.
#[test]
fn a_highly_compressed_batch_stays_within_the_decompression_bound() {
    let big = Record {
        value: Some(Bytes::from(vec![0u8; 8 << 20])),
        ..records(1).remove(0)
    };
    let data = encode_records(&[big], Compression::Zstd).unwrap();
    assert!(data.len() < 64 << 10, "a small batch: {}", data.len());
    let topic: Arc<str> = Arc::from("t");
    let (decoded, grew) = peak_growth(|| decode_records(&topic, 0, 0, data.clone(), |_| false));
    // 8 MiB is within the 256 MiB bound: it decodes, using about what it holds.
    assert_eq!(decoded.unwrap().records.len(), 1);
    assert!(grew < 64 << 20, "{grew}");
}

// ---------------------------------------------------------------------------------------------
// Responses: the messages this client decodes, at the versions it uses.

/// Decodes `data` as response `R` at `version`, checking the allocation bound.
fn decode_response<R: Decodable>(data: &[u8], version: i16) {
    let input = data.len();
    let mut bytes = Bytes::copy_from_slice(data);
    let (_, grew) = peak_growth(|| {
        let _ = R::decode(&mut bytes, version);
    });
    assert!(
        grew <= allowed(input),
        "decoding {input} bytes as {} v{version} allocated {grew} bytes at the peak",
        std::any::type_name::<R>()
    );
}

fn every_response(data: &[u8]) {
    decode_response::<FetchResponse>(data, 12);
    decode_response::<FetchResponse>(data, 11);
    decode_response::<MetadataResponse>(data, 12);
    decode_response::<ListOffsetsResponse>(data, 7);
    decode_response::<OffsetFetchResponse>(data, 7);
    decode_response::<OffsetCommitResponse>(data, 8);
    decode_response::<JoinGroupResponse>(data, 7);
    decode_response::<SyncGroupResponse>(data, 5);
    decode_response::<HeartbeatResponse>(data, 4);
    decode_response::<LeaveGroupResponse>(data, 4);
    decode_response::<FindCoordinatorResponse>(data, 3);
    decode_response::<ApiVersionsResponse>(data, 3);
    decode_response::<ApiVersionsResponse>(data, 0);
    decode_response::<OffsetForLeaderEpochResponse>(data, 4);
    decode_response::<ProduceResponse>(data, 9);
    decode_response::<ResponseHeader>(data, 1);
}

fn encode<T: Encodable>(message: &T, version: i16) -> Vec<u8> {
    let mut buf = BytesMut::new();
    message.encode(&mut buf, version).unwrap();
    buf.to_vec()
}

/// Valid answers with some content, for mutation.
fn valid_responses() -> Vec<Vec<u8>> {
    let topic = TopicName(StrBytes::from_static_str("events"));
    let records = encode_records(&records(5), Compression::None).unwrap();
    let fetch = FetchResponse::default().with_responses(vec![
        fetch_response::FetchableTopicResponse::default()
            .with_topic(topic.clone())
            .with_partitions(vec![fetch_response::PartitionData::default()
                .with_partition_index(0)
                .with_high_watermark(5)
                .with_records(Some(records))]),
    ]);
    let metadata = MetadataResponse::default()
        .with_brokers(vec![metadata_response::MetadataResponseBroker::default()
            .with_node_id(BrokerId(1))
            .with_host(StrBytes::from_static_str("127.0.0.1"))
            .with_port(9092)])
        .with_topics(vec![metadata_response::MetadataResponseTopic::default()
            .with_name(Some(topic.clone()))
            .with_partitions(vec![
                metadata_response::MetadataResponsePartition::default()
                    .with_leader_id(BrokerId(1))
                    .with_replica_nodes(vec![BrokerId(1)])
                    .with_isr_nodes(vec![BrokerId(1)]);
                3
            ])]);
    let join = JoinGroupResponse::default()
        .with_member_id(StrBytes::from_static_str("m-1"))
        .with_members(vec![
            join_group_response::JoinGroupResponseMember::default()
                .with_member_id(StrBytes::from_static_str("m-1"))
                .with_metadata(Bytes::from_static(&[
                    0, 1, 0, 0, 0, 1, 0, 1, b't'
                ]));
            2
        ]);
    vec![
        encode(&fetch, 12),
        encode(&metadata, 12),
        encode(&join, 7),
        encode(&ApiVersionsResponse::default(), 3),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_as_responses(data in prop::collection::vec(any::<u8>(), 0..512)) {
        every_response(&data);
    }

    #[test]
    fn mutated_responses(
        which in 0usize..4,
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let data = mutate(valid_responses().swap_remove(which), &mutations);
        every_response(&data);
    }
}

/// An array length of i32::MAX in a few bytes: an error, not a reservation for two billion
/// elements (the patched kafka-protocol, see vendor/README.md).
#[test]
fn a_huge_array_length_is_an_error_without_the_allocation() {
    // Metadata v1: throttle... no: v1 starts with the brokers array.
    let mut data = vec![0x7f, 0xff, 0xff, 0xff];
    data.extend_from_slice(&[0; 16]);
    let mut bytes = Bytes::from(data.clone());
    let (result, grew) = peak_growth(|| MetadataResponse::decode(&mut bytes, 1));
    assert!(result.is_err());
    assert!(grew <= allowed(data.len()), "{grew}");
}

// ---------------------------------------------------------------------------------------------
// The config loader.

const VALID_CONFIG: &str = r#"
brokers = ["127.0.0.1:9092"]
client_id = "wasmkafka"

[net]
connect_timeout_ms = 10000
request_timeout_ms = 30000
metadata_min_age_ms = 1000
metadata_max_age_ms = 300000

[consumer]
topics = ["events"]
group = "my-group"
from = "by_duration:P1D"
isolation_level = "read_committed"
max_buffered_bytes = 67108864
assignors = ["range", "cooperative-sticky"]
session_timeout_ms = 45000

[plugins]
deadline_ms = 1000

[[plugins.assignors]]
path = "plugins/weighted.wasm"
settings = { weight = "3" }
"#;

fn load_config(text: &str) {
    let _ = Config::parse(text).and_then(|config| config.validate().map(|()| config));
}

#[test]
fn the_valid_config_loads() {
    let config = Config::parse(VALID_CONFIG).unwrap();
    config.validate().unwrap();
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_text_as_config(text in ".{0,300}") {
        load_config(&text);
    }

    #[test]
    fn mutated_configs(mutations in prop::collection::vec(mutation(), 1..4)) {
        let bytes = mutate(VALID_CONFIG.as_bytes().to_vec(), &mutations);
        load_config(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn config_values_of_every_kind(
        key in prop_oneof![
            Just("net.connect_timeout_ms"), Just("consumer.max_buffered_bytes"),
            Just("consumer.from"), Just("consumer.topic_pattern"), Just("plugins.deadline_ms"),
            Just("consumer.assignors"), Just("brokers"), Just("consumer.max_poll_records")
        ],
        value in prop_oneof![
            Just("-1".to_string()), Just("0".to_string()), Just("18446744073709551615".to_string()),
            Just("\"\"".to_string()), Just("\"by_duration:P99999999999D\"".to_string()),
            Just("\"(unclosed\"".to_string()), Just("[\"\"]".to_string()), Just("1e309".to_string()),
            "\"[^\"\\\\]{0,20}\"".prop_map(|s| s),
        ],
    ) {
        let (table, name) = key.split_once('.').map_or(("", key), |(t, n)| (t, n));
        let text = if table.is_empty() {
            format!("{name} = {value}\n")
        } else {
            format!("[{table}]\n{name} = {value}\n")
        };
        load_config(&text);
    }
}
