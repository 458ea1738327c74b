//! Fetching from the nearest replica (KIP-392) on a three-node Apache Kafka cluster whose
//! nodes sit in racks `rack-1`..`rack-3` and pick read replicas with Kafka's
//! `RackAwareReplicaSelector`: a consumer with `client.rack = rack-2` reads a topic led by
//! node 1 from node 2; when node 2 dies it goes back to the leader; when the leader dies it
//! follows the new one; nothing is lost. The bytes per answering broker (what the metrics
//! export) show where the records came from.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use wasmkafka::client::Client;
use wasmkafka::fetch::{Consumer, FetchOptions};
use wasmkafka::policy::ResetPolicySpec;
use wasmkafka::produce::OutgoingRecord;
use wasmkafka_tests::kafka::admin::{create_topic_placed, Placement};
use wasmkafka_tests::kafka::{Kafka, KafkaOptions};

const WAIT: Duration = Duration::from_secs(90);
const TOPIC: &str = "rack-fetch";
const PARTITIONS: i32 = 2;

/// Produces `count` records to each partition (acks from every in-sync replica), retrying
/// while the cluster settles after a node died.
async fn produce(client: &Client, count: usize, tag: &str) {
    for partition in 0..PARTITIONS {
        let records: Vec<OutgoingRecord> = (0..count)
            .map(|i| OutgoingRecord {
                value: Some(Bytes::from(format!("{tag}-{partition}-{i}"))),
                ..OutgoingRecord::default()
            })
            .collect();
        let deadline = Instant::now() + WAIT;
        loop {
            let sent = wasmkafka::produce::produce_batch(
                client,
                TOPIC,
                partition,
                &records,
                kafka_protocol::records::Compression::None,
            )
            .await;
            match sent {
                Ok(_) => break,
                Err(error) => {
                    assert!(Instant::now() < deadline, "producing: {error}");
                    let _ = client.refresh_metadata().await;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        }
    }
}

/// Polls until every partition has been read up to `per_partition` records (offsets
/// 0..per_partition, each at least once); returns the offsets seen.
async fn read_up_to(
    consumer: &Consumer,
    seen: &mut BTreeMap<i32, BTreeSet<i64>>,
    per_partition: i64,
) {
    let deadline = Instant::now() + WAIT;
    loop {
        let complete = (0..PARTITIONS).all(|p| {
            seen.get(&p)
                .is_some_and(|offsets| offsets.len() as i64 >= per_partition)
        });
        if complete {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "read {:?} of {per_partition} per partition; stats {:?}",
            seen.iter().map(|(p, o)| (p, o.len())).collect::<Vec<_>>(),
            consumer.stats()
        );
        for record in consumer
            .poll(500, Duration::from_millis(200))
            .await
            .unwrap()
        {
            seen.entry(record.partition)
                .or_default()
                .insert(record.offset);
        }
    }
}

fn bytes_from(consumer: &Consumer, broker: i32) -> u64 {
    consumer
        .stats()
        .fetch_record_bytes_by_broker
        .get(&broker)
        .copied()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_reads_from_the_replica_in_its_rack_and_falls_back_to_the_leader() {
    wasmkafka_tests::init_tracing();
    let mut kafka = Kafka::start_with(KafkaOptions {
        nodes: 3,
        overrides: vec![
            ("broker.rack".into(), "rack-@NODE_ID@".into()),
            (
                "replica.selector.class".into(),
                "org.apache.kafka.common.replica.RackAwareReplicaSelector".into(),
            ),
        ],
        ..KafkaOptions::default()
    })
    .await
    .unwrap();
    let admin = kafka.client();
    // Node 1 leads both partitions; every node holds a replica.
    let replicas = [vec![1, 2, 3], vec![1, 3, 2]];
    create_topic_placed(&admin, TOPIC, Placement::Replicas(&replicas), &[])
        .await
        .unwrap();
    produce(&admin, 300, "first").await;

    let consumer = Consumer::new(
        kafka.client(),
        FetchOptions {
            max_wait: Duration::from_millis(200),
            rack: Some("rack-2".into()),
            ..FetchOptions::default()
        },
        ResetPolicySpec::Earliest.into_policy(),
    );
    consumer.assign_topics(&[TOPIC.to_string()]).await.unwrap();
    let mut seen = BTreeMap::new();
    read_up_to(&consumer, &mut seen, 300).await;
    // The leader named node 2 (rack-2) and carried no records itself.
    assert!(bytes_from(&consumer, 2) > 0, "{:?}", consumer.stats());
    assert_eq!(bytes_from(&consumer, 1), 0, "{:?}", consumer.stats());

    // The read replica dies: the leader serves again.
    kafka.kill_node(2);
    produce(&admin, 200, "second").await;
    read_up_to(&consumer, &mut seen, 500).await;
    assert!(bytes_from(&consumer, 1) > 0, "{:?}", consumer.stats());

    // Node 2 comes back; then the leader dies: the consumer follows the new leader (and the
    // replica it names, if node 2 is in sync by then).
    kafka.start_node(2).await.unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let metadata = admin.refresh_metadata().await.unwrap();
        let in_sync = metadata.topics[TOPIC]
            .partitions
            .values()
            .all(|p| p.isr.len() == 3);
        if in_sync {
            break;
        }
        assert!(Instant::now() < deadline, "node 2 never caught up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    kafka.kill_node(1);
    produce(&admin, 200, "third").await;
    read_up_to(&consumer, &mut seen, 700).await;
    for (partition, offsets) in &seen {
        assert_eq!(
            offsets.iter().copied().collect::<Vec<_>>(),
            (0..700).collect::<Vec<i64>>(),
            "partition {partition}: every offset read"
        );
    }
    println!(
        "bytes per broker: {:?}",
        consumer.stats().fetch_record_bytes_by_broker
    );
    consumer.close().await;
}
