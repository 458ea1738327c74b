//! The fetcher against Apache Kafka: a large topic read exactly once, a slow reader
//! that keeps memory bounded, a compacted topic with offset gaps, and fetch sizes that follow
//! the round trip (through a delaying proxy).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use wasmkafka::fetch::{Consumer, ConsumerRecord, FetchOptions, FetchSize, TopicPartition};
use wasmkafka::net::Purpose;
use wasmkafka::policy::ResetPolicySpec;
use wasmkafka::produce::OutgoingRecord;
use wasmkafka_tests::delay::{kafka_behind, DelayProxy};
use wasmkafka_tests::kafka::Kafka;

const WAIT: Duration = Duration::from_secs(120);

fn values(count: usize, partition: i32) -> Vec<OutgoingRecord> {
    (0..count)
        .map(|i| OutgoingRecord {
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(format!("{partition}:{i}:{}", "x".repeat(64)))),
            ..OutgoingRecord::default()
        })
        .collect()
}

async fn produce_all(broker: &Kafka, topic: &str, partitions: i32, per_partition: usize) {
    let client = broker.client();
    let mut tasks = Vec::new();
    for partition in 0..partitions {
        let records = values(per_partition, partition);
        let client = client.clone();
        let topic = topic.to_string();
        tasks.push(tokio::spawn(async move {
            for chunk in records.chunks(500) {
                wasmkafka::produce::produce_batch(
                    &client,
                    &topic,
                    partition,
                    chunk,
                    kafka_protocol::records::Compression::None,
                )
                .await
                .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// Polls (`max_records` at a time, sleeping `pause` between polls) until `total` records came.
async fn consume(
    consumer: &Consumer,
    total: usize,
    max_records: usize,
    pause: Duration,
) -> Vec<ConsumerRecord> {
    let deadline = Instant::now() + WAIT;
    let mut records = Vec::with_capacity(total);
    while records.len() < total {
        assert!(
            Instant::now() < deadline,
            "timed out after {} of {total} records",
            records.len()
        );
        records.extend(
            consumer
                .poll(max_records, Duration::from_millis(200))
                .await
                .unwrap(),
        );
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    records
}

fn by_partition(records: &[ConsumerRecord]) -> BTreeMap<i32, Vec<i64>> {
    let mut map: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for record in records {
        map.entry(record.partition).or_default().push(record.offset);
    }
    map
}

#[tokio::test]
async fn hundred_thousand_records_over_four_partitions_exactly_once() {
    wasmkafka_tests::init_tracing();
    let broker = Kafka::shared();
    broker.create_topic("big", 4, &[]).await.unwrap();
    produce_all(broker, "big", 4, 25_000).await;

    let consumer = Consumer::new(
        broker.client(),
        FetchOptions::default(),
        ResetPolicySpec::Earliest.into_policy(),
    );
    consumer.assign_topics(&["big".to_string()]).await.unwrap();
    let started = Instant::now();
    let records = consume(&consumer, 100_000, 10_000, Duration::ZERO).await;
    let elapsed = started.elapsed();
    println!(
        "consumed 100000 records in {elapsed:?} ({:.0} records/s); {:?}",
        100_000.0 / elapsed.as_secs_f64(),
        consumer.stats()
    );
    assert_eq!(records.len(), 100_000);
    // Kafka keeps a KIP-227 session: after the first full fetch, requests are incremental.
    let stats = consumer.stats();
    assert!(stats.incremental_fetches > 0, "{stats:?}");
    // Kafka honours partition_max_bytes (1 MiB): a partition's ~2.3 MB of records cannot
    // come in fewer than three answers.
    assert!(stats.fetch_requests >= 3, "{stats:?}");
    let expected: Vec<i64> = (0..25_000).collect();
    for (partition, offsets) in by_partition(&records) {
        assert_eq!(offsets, expected, "partition {partition}");
    }
    for record in records.iter().step_by(997) {
        let value = String::from_utf8(record.value.as_ref().unwrap().to_vec()).unwrap();
        assert!(
            value.starts_with(&format!("{}:{}:", record.partition, record.offset)),
            "{value}"
        );
    }
    // Nothing more arrives, and every position sits at the end.
    assert!(consumer
        .poll(100, Duration::from_millis(700))
        .await
        .unwrap()
        .is_empty());
    for partition in 0..4 {
        assert_eq!(
            consumer.position(&TopicPartition::new("big", partition)),
            Some(25_000)
        );
    }
}

#[tokio::test]
async fn a_stalled_reader_stops_the_fetching() {
    wasmkafka_tests::init_tracing();
    let broker = Kafka::shared();
    broker.create_topic("slow", 4, &[]).await.unwrap();
    produce_all(broker, "slow", 4, 5_000).await;

    let consumer = Consumer::new(
        broker.client(),
        FetchOptions::default(),
        ResetPolicySpec::Earliest.into_policy(),
    );
    consumer.assign_topics(&["slow".to_string()]).await.unwrap();
    let mut records = consume(&consumer, 100, 100, Duration::ZERO).await;
    // The reader stalls while 20 000 more records arrive: with every partition's records
    // waiting in the buffer, nothing more is fetched and the buffer does not grow.
    let before = consumer.stats();
    produce_all(broker, "slow", 4, 5_000).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stalled = consumer.stats();
    println!("before the stall: {before:?}\nafter it: {stalled:?}");
    assert_eq!(stalled.fetch_requests, before.fetch_requests);
    assert_eq!(stalled.buffer_bytes, before.buffer_bytes);
    assert_eq!(stalled.buffer_bytes_peak, before.buffer_bytes_peak);

    // Reading again drains the buffer and fetching resumes: everything exactly once.
    records.extend(consume(&consumer, 40_000 - 100, 10_000, Duration::ZERO).await);
    for (partition, offsets) in by_partition(&records) {
        assert_eq!(
            offsets,
            (0..10_000).collect::<Vec<_>>(),
            "partition {partition}"
        );
    }
    assert!(consumer.stats().fetch_requests > stalled.fetch_requests);
}

#[tokio::test]
async fn the_buffer_stays_within_max_buffered_bytes() {
    wasmkafka_tests::init_tracing();
    let broker = Kafka::shared();
    broker.create_topic("bounded", 8, &[]).await.unwrap();
    produce_all(broker, "bounded", 8, 5_000).await;
    // 40 000 records of about 100 bytes as fetched: about 4 MB if nothing held fetching back.
    let cap = 256 * 1024;
    let consumer = Consumer::new(
        broker.client(),
        FetchOptions {
            max_buffered_bytes: cap,
            ..FetchOptions::default()
        },
        ResetPolicySpec::Earliest.into_policy(),
    );
    consumer
        .assign_topics(&["bounded".to_string()])
        .await
        .unwrap();
    let records = consume(&consumer, 40_000, 500, Duration::from_millis(2)).await;
    let peak = consumer.stats().buffer_bytes_peak;
    println!("buffer peak {peak} bytes with a {cap}-byte cap");
    // A fetch asks for what is left of the budget; Kafka may still send a whole first batch
    // of 500 records (about 50 kB) beyond it.
    let one_batch = 160 * 1024;
    assert!(
        peak <= cap + one_batch,
        "buffer peak {peak} bytes, cap {cap}"
    );
    for (partition, offsets) in by_partition(&records) {
        assert_eq!(
            offsets,
            (0..5_000).collect::<Vec<_>>(),
            "partition {partition}"
        );
    }
}

/// A paused partition's buffered answer does not count against `max_buffered_bytes`: it
/// waits for a resume, and the other partitions are fetched meanwhile. Before, one paused
/// partition whose answer filled the budget stopped fetching for all of them.
#[tokio::test]
async fn a_paused_partition_holding_the_whole_budget_does_not_stop_the_others() {
    wasmkafka_tests::init_tracing();
    let broker = Kafka::shared();
    broker.create_topic("paused-budget", 2, &[]).await.unwrap();
    // One batch of 1,000 records (about 90 kB) on partition 0: Kafka sends a first batch
    // whole, so the answer alone is over the 64 KiB budget.
    let client = broker.client();
    wasmkafka::produce::produce_batch(
        &client,
        "paused-budget",
        0,
        &values(1_000, 0),
        kafka_protocol::records::Compression::None,
    )
    .await
    .unwrap();
    let cap = 64 * 1024;
    let consumer = Consumer::new(
        broker.client(),
        FetchOptions {
            max_buffered_bytes: cap,
            max_wait: Duration::from_millis(100),
            ..FetchOptions::default()
        },
        ResetPolicySpec::Earliest.into_policy(),
    );
    consumer
        .assign_topics(&["paused-budget".to_string()])
        .await
        .unwrap();
    let first = consume(&consumer, 1, 1, Duration::ZERO).await;
    assert_eq!(first[0].partition, 0);
    let p0 = TopicPartition::new("paused-budget", 0);
    consumer.pause(std::slice::from_ref(&p0));
    assert!(
        consumer.stats().buffer_bytes_peak > cap,
        "partition 0's answer fills the budget: {:?}",
        consumer.stats()
    );
    wasmkafka::produce::produce_batch(
        &client,
        "paused-budget",
        1,
        &values(10, 1),
        kafka_protocol::records::Compression::None,
    )
    .await
    .unwrap();
    // Partition 1's records come while partition 0's answer waits, paused.
    let records = consume(&consumer, 10, 100, Duration::ZERO).await;
    assert_eq!(
        by_partition(&records),
        BTreeMap::from([(1, (0..10).collect::<Vec<_>>())])
    );
    // Resumed, partition 0 goes on from its buffered answer.
    consumer.resume(std::slice::from_ref(&p0));
    let rest = consume(&consumer, 999, 500, Duration::ZERO).await;
    assert_eq!(
        by_partition(&rest),
        BTreeMap::from([(0, (1..1_000).collect::<Vec<_>>())])
    );
    client.close();
}

#[tokio::test]
async fn a_compacted_topic_yields_exactly_the_surviving_records() {
    wasmkafka_tests::init_tracing();
    let broker = Kafka::shared();
    // The log cleaner compacts a closed segment within a second or so with these settings
    // (and the broker's log.cleaner.backoff.ms=200).
    broker
        .create_topic(
            "compacted",
            1,
            &[
                ("cleanup.policy", "compact"),
                ("segment.ms", "100"),
                ("min.cleanable.dirty.ratio", "0.01"),
                ("min.compaction.lag.ms", "0"),
            ],
        )
        .await
        .unwrap();
    // Every third record has a key of its own; the others share 7 keys, so only the last
    // record of each of those survives compaction.
    let key_of = |i: usize| {
        if i.is_multiple_of(3) {
            format!("u{i}")
        } else {
            format!("k{}", i % 7)
        }
    };
    let records: Vec<OutgoingRecord> = (0..200)
        .map(|i| OutgoingRecord {
            key: Some(Bytes::from(key_of(i))),
            value: Some(Bytes::from(format!("v{i}"))),
            ..OutgoingRecord::default()
        })
        .collect();
    let client = broker.client();
    broker
        .produce(&client, "compacted", 0, &records, 20)
        .await
        .unwrap();
    // The active segment is never cleaned: one more record after segment.ms rolls it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let roll = OutgoingRecord {
        key: Some(Bytes::from("roll")),
        value: Some(Bytes::from("v200")),
        ..OutgoingRecord::default()
    };
    broker
        .produce(&client, "compacted", 0, &[roll], 1)
        .await
        .unwrap();
    let mut last_of_key: BTreeMap<String, i64> = BTreeMap::new();
    for i in 0..200 {
        last_of_key.insert(key_of(i), i as i64);
    }
    let mut survivors: Vec<i64> = last_of_key.values().copied().collect();
    survivors.push(200);
    survivors.sort_unstable();
    assert!(survivors.len() < 200);

    // Read the whole log until the cleaner has run: then exactly the survivors come back.
    let tp = TopicPartition::new("compacted", 0);
    let deadline = Instant::now() + WAIT;
    let (consumer, read) = loop {
        let consumer = Consumer::new(
            broker.client(),
            FetchOptions {
                max_wait: Duration::from_millis(100),
                ..FetchOptions::default()
            },
            ResetPolicySpec::Earliest.into_policy(),
        );
        consumer
            .assign_topics(&["compacted".to_string()])
            .await
            .unwrap();
        let mut read = Vec::new();
        while consumer.position(&tp) != Some(201) {
            assert!(Instant::now() < deadline, "the log end was not reached");
            read.extend(
                consumer
                    .poll(1000, Duration::from_millis(200))
                    .await
                    .unwrap(),
            );
        }
        if read.len() == survivors.len() {
            break (consumer, read);
        }
        assert!(
            Instant::now() < deadline,
            "the log cleaner did not compact the topic: {} records",
            read.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let offsets: Vec<i64> = read.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, survivors, "exactly the surviving records");
    for record in &read {
        assert_eq!(
            record.value.as_deref(),
            Some(format!("v{}", record.offset).as_bytes())
        );
    }
    assert!(consumer
        .poll(100, Duration::from_millis(700))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(consumer.position(&tp), Some(201), "ends at the log end");

    // A seek into a gap continues at the next surviving record.
    let gap = (0..200)
        .find(|o| !survivors.contains(o) && !survivors.contains(&(o + 1)))
        .expect("a gap of two offsets or more");
    let next = *survivors.iter().find(|s| **s > gap).unwrap();
    assert!(consumer.seek(&tp, gap));
    let again = consume(&consumer, 1, 1, Duration::ZERO).await;
    assert_eq!(again[0].offset, next, "after seeking to {gap}");
}

/// A partition at the end of its log must not hold the leader's one fetch slot in a long poll
/// while another partition of the same leader has records waiting for the application: once
/// those are taken, that partition must be fetched again at once, not after `max_wait`.
/// Partition 0 is empty; partition 1 holds 4 batches, which arrive one per answer
/// (partition_max_bytes of 1 byte: Kafka sends one whole batch). With a 10 s max wait, every
/// batch after the first would wait 10 s for the empty partition's long poll to end.
#[tokio::test]
async fn a_caught_up_partition_never_holds_back_one_with_data() {
    let broker = Kafka::shared();
    broker.create_topic("no-holdback", 2, &[]).await.unwrap();
    let client = broker.client();
    for batch in values(40, 1).chunks(10) {
        broker
            .produce(&client, "no-holdback", 1, batch, 10)
            .await
            .unwrap();
    }
    client.close();

    let consumer = Consumer::new(
        broker.client(),
        FetchOptions {
            max_wait: Duration::from_secs(10),
            partition_max_bytes: 1,
            ..FetchOptions::default()
        },
        ResetPolicySpec::Earliest.into_policy(),
    );
    consumer
        .assign_topics(&["no-holdback".to_string()])
        .await
        .unwrap();
    let started = Instant::now();
    let mut records = Vec::new();
    while records.len() < 40 && started.elapsed() < Duration::from_secs(60) {
        // One record per poll: the batch's other records stay buffered for a while.
        records.extend(consumer.poll(1, Duration::from_secs(1)).await.unwrap());
    }
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (0..40).collect::<Vec<_>>());
    // Three long polls of the empty partition would take 30 s; none may happen before the
    // last batch is in.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}, {:?}",
        started.elapsed(),
        consumer.stats()
    );
}

/// A topic with `message.timestamp.type=LogAppendTime`: Kafka stamps each batch with its
/// append time (the batch's max timestamp and a flag) and leaves the producer's deltas in the
/// records. Every record then carries the broker's time, as the Java consumer reports it, not
/// the time the producer set.
#[tokio::test]
async fn log_append_time_topics_give_the_brokers_timestamps() {
    wasmkafka_tests::init_tracing();
    let broker = Kafka::shared();
    broker
        .create_topic(
            "append-time",
            1,
            &[("message.timestamp.type", "LogAppendTime")],
        )
        .await
        .unwrap();
    let produced: Vec<OutgoingRecord> = (0..3)
        .map(|i| OutgoingRecord {
            value: Some(Bytes::from(format!("v{i}"))),
            // Producer times a year apart and long past.
            timestamp: Some(1_000_000_000_000 + i * 31_536_000_000),
            ..OutgoingRecord::default()
        })
        .collect();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    wasmkafka::produce::produce_batch(
        &broker.client(),
        "append-time",
        0,
        &produced,
        kafka_protocol::records::Compression::None,
    )
    .await
    .unwrap();
    let after = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let consumer = Consumer::new(
        broker.client(),
        FetchOptions::default(),
        ResetPolicySpec::Earliest.into_policy(),
    );
    consumer
        .assign_topics(&["append-time".to_string()])
        .await
        .unwrap();
    let records = consume(&consumer, 3, 100, Duration::ZERO).await;
    let stamps: Vec<i64> = records.iter().map(|r| r.timestamp).collect();
    assert!(
        stamps.iter().all(|t| (before..=after).contains(t)),
        "append times {stamps:?} outside [{before}, {after}]"
    );
    assert!(
        stamps.windows(2).all(|w| w[0] == w[1]),
        "one batch, one time: {stamps:?}"
    );
}

/// Reads `count` records of `topic` with a consumer of its own (a new client: new connections,
/// new handshakes) and returns what its last Fetch asked for at most, and the fetch
/// connection's handshake round trip.
async fn asked_max_bytes(
    broker: &Kafka,
    topic: &str,
    count: usize,
    size: FetchSize,
) -> (i32, Duration) {
    let client = broker.client();
    let consumer = Consumer::new(
        client.clone(),
        FetchOptions {
            max_bytes: size,
            ..FetchOptions::default()
        },
        ResetPolicySpec::Earliest.into_policy(),
    );
    consumer.assign_topics(&[topic.to_string()]).await.unwrap();
    assert_eq!(
        consume(&consumer, count, 1_000, Duration::ZERO).await.len(),
        count
    );
    let connection = client.connection(1, Purpose::Fetch).await.unwrap();
    (
        consumer.stats().fetch_max_bytes,
        connection.handshake_round_trip(),
    )
}

#[tokio::test]
async fn fetch_answers_follow_the_round_trip_unless_their_size_is_set() {
    wasmkafka_tests::init_tracing();
    // Every connection goes through a proxy that delays each direction: the broker advertises
    // the proxy's port.
    let proxy = DelayProxy::listen().await.unwrap();
    let broker = kafka_behind(&proxy).await.unwrap();
    broker.create_topic("link", 2, &[]).await.unwrap();
    produce_all(&broker, "link", 2, 500).await;

    // Near the broker: the size the handshake's round trip gives (2 MiB up to 5 ms).
    let (near, near_round_trip) =
        asked_max_bytes(&broker, "link", 1_000, FetchSize::FollowsLink).await;
    assert_eq!(
        near,
        FetchSize::FollowsLink.for_round_trip(near_round_trip),
        "handshake took {near_round_trip:?}"
    );

    // Across 30 ms round trips: at least 2 MiB + 1 GiB/s x 25 ms, far above 2 MiB.
    proxy.set_one_way_delay(Duration::from_millis(15));
    let (far, far_round_trip) =
        asked_max_bytes(&broker, "link", 1_000, FetchSize::FollowsLink).await;
    assert!(
        far_round_trip >= Duration::from_millis(30),
        "{far_round_trip:?}"
    );
    let least = FetchSize::FollowsLink.for_round_trip(Duration::from_millis(30));
    assert!(
        far >= least && far > 2 * 1024 * 1024,
        "asked for {far} bytes after a {far_round_trip:?} handshake"
    );
    assert_eq!(far, FetchSize::FollowsLink.for_round_trip(far_round_trip));

    // A size that is set stays what it is, across the same link.
    let (fixed, _) = asked_max_bytes(&broker, "link", 1_000, FetchSize::Fixed(1024 * 1024)).await;
    assert_eq!(fixed, 1024 * 1024);
}
