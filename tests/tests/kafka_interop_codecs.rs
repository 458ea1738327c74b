//! Compressed batches written by other clients on Apache Kafka: librdkafka (confluent-kafka,
//! `tests/python/codec_produce.py`) and the Java client (`tests/java/CodecProducer.java`) each
//! write gzip, snappy, lz4 and zstd batches, one partition per codec; the consumer must read
//! every record exactly as written. Our own producer's batches are not enough: each client
//! frames its codecs its own way (Java's lz4 block stream, librdkafka's LZ4F, zstd-jni).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use wasmkafka::fetch::{Consumer, ConsumerRecord, FetchOptions};
use wasmkafka::policy::ResetPolicySpec;
use wasmkafka_tests::kafka::Kafka;
use wasmkafka_tests::python::Script;

const WAIT: Duration = Duration::from_secs(120);
const CODECS: [&str; 4] = ["gzip", "snappy", "lz4", "zstd"];
const PER_PARTITION: usize = 3000;

async fn read_all(kafka: &Kafka, topic: &str) -> BTreeMap<i32, Vec<ConsumerRecord>> {
    let consumer = Consumer::new(
        kafka.client(),
        FetchOptions::default(),
        ResetPolicySpec::Earliest.into_policy(),
    );
    consumer.assign_topics(&[topic.to_string()]).await.unwrap();
    let deadline = Instant::now() + WAIT;
    let mut read: BTreeMap<i32, Vec<ConsumerRecord>> = BTreeMap::new();
    while read.values().map(Vec::len).sum::<usize>() < CODECS.len() * PER_PARTITION {
        assert!(
            Instant::now() < deadline,
            "timed out: {:?}",
            consumer.stats()
        );
        for record in consumer
            .poll(10_000, Duration::from_millis(500))
            .await
            .unwrap()
        {
            read.entry(record.partition).or_default().push(record);
        }
    }
    consumer.close().await;
    read
}

fn check(read: &BTreeMap<i32, Vec<ConsumerRecord>>) {
    for (partition, codec) in CODECS.iter().enumerate() {
        let records = &read[&(partition as i32)];
        assert_eq!(records.len(), PER_PARTITION, "{codec}");
        for (n, record) in records.iter().enumerate() {
            let text = |bytes: &Option<bytes::Bytes>| {
                String::from_utf8(bytes.as_ref().expect("not null").to_vec()).unwrap()
            };
            assert_eq!(record.offset, n as i64, "{codec}");
            assert_eq!(text(&record.key), format!("k{partition}-{n}"), "{codec}");
            assert_eq!(
                text(&record.value),
                format!("{codec}-{n}-{}", "x".repeat(n % 100)),
                "{codec}"
            );
            assert_eq!(record.headers.len(), 1, "{codec}");
            assert_eq!(record.headers[0].0, "n");
            assert_eq!(text(&record.headers[0].1), n.to_string(), "{codec}");
        }
    }
}

/// Creates `topic` (a partition per codec); returns a producer's arguments: the brokers, the
/// topic and the records per partition.
async fn codec_topic(kafka: &Kafka, topic: &str) -> [String; 3] {
    kafka.create_topic(topic, 4, &[]).await.unwrap();
    [kafka.addr(), topic.to_string(), PER_PARTITION.to_string()]
}

/// Checks that the producer that printed `events` finished, then reads `topic` back and
/// checks every record.
async fn check_written(kafka: &Kafka, topic: &str, events: &[Value]) {
    assert_eq!(events.last().unwrap()["event"], "done", "{events:?}");
    check(&read_all(kafka, topic).await);
}

#[tokio::test]
async fn librdkafka_batches_of_every_codec() {
    wasmkafka_tests::init_tracing();
    wasmkafka_tests::python::ready().await.unwrap();
    let kafka = Kafka::shared();
    let topic = "codecs-librdkafka";
    let args = codec_topic(kafka, topic).await;
    let events = Script::run(
        "codec_produce.py",
        &args.each_ref().map(String::as_str),
        WAIT,
    )
    .await
    .unwrap();
    check_written(kafka, topic, &events).await;
}

#[tokio::test]
async fn java_batches_of_every_codec() {
    wasmkafka_tests::init_tracing();
    let kafka = Kafka::shared();
    let topic = "codecs-java";
    let args = codec_topic(kafka, topic).await;
    let events = wasmkafka_tests::java::run_source(
        "CodecProducer.java",
        &args.each_ref().map(String::as_str),
        WAIT,
    )
    .await
    .unwrap();
    check_written(kafka, topic, &events).await;
}
