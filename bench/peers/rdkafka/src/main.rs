//! The rdkafka (librdkafka) peer of the benchmark: reads COUNT records from offset 0 of
//! partitions 0..PARTITIONS of TOPIC and writes them to stdout — each value and a newline
//! (`raw`), or one JSON object per record (`json`, the fields `wasmkafka run --format json`
//! writes) — then prints "consumed N" to stderr.
//!
//! Usage: rdkafka-consume BROKERS TOPIC PARTITIONS COUNT [raw|json]
//!
//! With `BENCH_FLUSH_EACH_POLL=1` in the environment it flushes whenever no further record is
//! ready at once (the latency benchmark reads the records as they come). With `BENCH_GROUP=G`
//! it joins consumer group G and subscribes to TOPIC (from the earliest offset, committing
//! nothing) instead of assigning the partitions itself. With `BENCH_LOW_LATENCY=1` it uses
//! librdkafka's documented low-latency consumer settings (`fetch.wait.max.ms=10`,
//! `fetch.error.backoff.ms=10`: the wiki's "How to decrease message latency").

use std::io::{BufWriter, Write};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

#[derive(serde::Serialize)]
struct JsonRecord<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    timestamp: Option<i64>,
    key: Option<std::borrow::Cow<'a, str>>,
    value: Option<std::borrow::Cow<'a, str>>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: rdkafka-consume BROKERS TOPIC PARTITIONS COUNT [raw|json]");
        std::process::exit(2);
    }
    let (brokers, topic) = (&args[1], &args[2]);
    let partitions: i32 = args[3].parse().expect("PARTITIONS");
    let count: u64 = args[4].parse().expect("COUNT");
    let json = args.get(5).is_some_and(|f| f == "json");
    let flush_each_poll = std::env::var("BENCH_FLUSH_EACH_POLL").is_ok_and(|v| v == "1");
    let group = std::env::var("BENCH_GROUP").ok();
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", group.as_deref().unwrap_or("bench-unused"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    if std::env::var("BENCH_LOW_LATENCY").is_ok_and(|v| v == "1") {
        config
            .set("fetch.wait.max.ms", "10")
            .set("fetch.error.backoff.ms", "10");
    }
    let consumer: BaseConsumer = config.create().expect("a consumer");
    if group.is_some() {
        consumer.subscribe(&[topic]).expect("subscribe");
    } else {
        let mut assignment = TopicPartitionList::new();
        for partition in 0..partitions {
            assignment
                .add_partition_offset(topic, partition, Offset::Beginning)
                .expect("a partition");
        }
        consumer.assign(&assignment).expect("assign");
    }
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut n = 0u64;
    let mut unflushed = false;
    while n < count {
        // Waiting only when nothing is ready: flush what was written first.
        let wait = if flush_each_poll && unflushed {
            Duration::ZERO
        } else {
            Duration::from_secs(1)
        };
        let Some(message) = consumer.poll(wait) else {
            if unflushed {
                out.flush().expect("stdout");
                unflushed = false;
            }
            continue;
        };
        unflushed = flush_each_poll;
        let message = message.expect("a record");
        if json {
            let record = JsonRecord {
                topic: message.topic(),
                partition: message.partition(),
                offset: message.offset(),
                timestamp: message.timestamp().to_millis(),
                key: message.key().map(String::from_utf8_lossy),
                value: message.payload().map(String::from_utf8_lossy),
            };
            serde_json::to_writer(&mut out, &record).expect("stdout");
            out.write_all(b"\n").expect("stdout");
        } else {
            if let Some(value) = message.payload() {
                out.write_all(value).expect("stdout");
            }
            out.write_all(b"\n").expect("stdout");
        }
        n += 1;
    }
    out.flush().expect("stdout");
    eprintln!("consumed {n}");
}
