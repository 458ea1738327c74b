//! The wire client against Apache Kafka: connections by purpose keep coordination
//! traffic out of the way of long polls; pipelining; recovery after a broker restart; and a
//! produce/fetch round trip through the record batch decoder.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    BrokerId, FetchRequest, GroupId, MetadataRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use wasmkafka::client::Client;
use wasmkafka::fetch::decode_records;
use wasmkafka::net::{Connection, Purpose, SendOptions};
use wasmkafka::produce::OutgoingRecord;
use wasmkafka_tests::kafka::Kafka;

const LONG_POLL: Duration = Duration::from_secs(2);

fn fetch_request(topic: &str, partition: i32, offset: i64, max_wait: Duration) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait.as_millis() as i32)
        .with_min_bytes(1)
        .with_max_bytes(1024 * 1024)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_current_leader_epoch(-1)
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(1024 * 1024)])])
}

/// A coordination request: the committed offsets of a group.
fn offset_fetch(topic: &str) -> OffsetFetchRequest {
    OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("hol-probe")))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_indexes(vec![0])]))
}

/// An empty one-partition topic on `broker`, a client, and the leader's id.
async fn setup_on(broker: &Kafka, topic: &str) -> (Client, i32) {
    wasmkafka_tests::init_tracing();
    broker.create_topic(topic, 1, &[]).await.unwrap();
    let client = broker.client();
    let metadata = client.refresh_metadata().await.unwrap();
    let leader = metadata.leader(topic, 0).expect("the topic has a leader");
    (client, leader)
}

/// The shared broker with an empty one-partition topic, a client, and the leader's id.
async fn setup(topic: &str) -> (&'static Kafka, Client, i32) {
    let broker = Kafka::shared();
    let (client, leader) = setup_on(broker, topic).await;
    (broker, client, leader)
}

/// Starts a long poll on `connection` on an empty partition (so the broker waits the full
/// max wait) and gives it a moment to reach the broker.
async fn start_long_poll(
    connection: &Connection,
    topic: &str,
) -> tokio::task::JoinHandle<Duration> {
    let connection = connection.clone();
    let request = fetch_request(topic, 0, 0, LONG_POLL);
    let handle = tokio::spawn(async move {
        let started = Instant::now();
        let options = SendOptions {
            timeout: Some(LONG_POLL + Duration::from_secs(10)),
            ..SendOptions::default()
        };
        connection
            .send_with(&request, options)
            .await
            .expect("the long poll is answered");
        started.elapsed()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    handle
}

#[tokio::test]
async fn coordination_is_answered_while_a_fetch_long_polls_on_its_own_connection() {
    let (_broker, client, leader) = setup("hol-pooled").await;
    let fetch = client.connection(leader, Purpose::Fetch).await.unwrap();
    let coordination = client
        .connection(leader, Purpose::Coordination)
        .await
        .unwrap();
    assert!(!fetch.same_as(&coordination));

    let long_poll = start_long_poll(&fetch, "hol-pooled").await;
    let started = Instant::now();
    coordination
        .send(&offset_fetch("hol-pooled"))
        .await
        .unwrap();
    let coordination_took = started.elapsed();
    assert!(
        !long_poll.is_finished(),
        "the long poll is still outstanding when the coordination answer arrives"
    );
    let long_poll_took = long_poll.await.unwrap();
    eprintln!(
        "coordination beside a long poll: {coordination_took:?}; long poll: {long_poll_took:?}"
    );
    assert!(
        coordination_took < Duration::from_millis(500),
        "coordination request took {coordination_took:?} beside a long poll"
    );
    assert!(
        long_poll_took >= LONG_POLL - Duration::from_millis(300),
        "the broker answered the empty fetch after {long_poll_took:?}, not after its max wait"
    );
}

#[tokio::test]
async fn the_same_request_queued_behind_a_long_poll_waits_for_it() {
    let (_broker, client, leader) = setup("hol-shared").await;
    let fetch = client.connection(leader, Purpose::Fetch).await.unwrap();

    let long_poll = start_long_poll(&fetch, "hol-shared").await;
    let started = Instant::now();
    fetch.send(&offset_fetch("hol-shared")).await.unwrap();
    let queued_took = started.elapsed();
    long_poll.await.unwrap();
    eprintln!("request queued behind a long poll on one connection: {queued_took:?}");
    assert!(
        queued_took >= Duration::from_millis(1500),
        "a request behind a 2 s long poll on one connection was answered after {queued_took:?}"
    );
}

#[tokio::test]
async fn pipelined_requests_on_one_real_connection() {
    let (_broker, client, leader) = setup("pipelined").await;
    let connection = client.connection(leader, Purpose::Default).await.unwrap();
    let connects = client.pool().stats().connects;
    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let connection = connection.clone();
            tokio::spawn(async move {
                connection
                    .send(&MetadataRequest::default().with_topics(None))
                    .await
            })
        })
        .collect();
    for task in tasks {
        let answer = task.await.unwrap().unwrap();
        assert_eq!(answer.brokers.len(), 1);
    }
    assert_eq!(client.pool().stats().connects, connects);
    assert!(connection.is_open());
}

#[tokio::test]
async fn the_pool_recovers_after_a_broker_restart() {
    // A broker of its own: the others share theirs.
    let mut broker = Kafka::start().await.unwrap();
    let (client, leader) = setup_on(&broker, "restart").await;
    let before = client.connection(leader, Purpose::Default).await.unwrap();
    broker.restart().await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), before.closed())
        .await
        .expect("the old connection notices the restart");
    let metadata = client.refresh_metadata().await.unwrap();
    assert!(
        metadata.topics.contains_key("restart"),
        "topics survive a restart"
    );
    let after = client.connection(leader, Purpose::Default).await.unwrap();
    assert!(!after.same_as(&before) && after.is_open());
}

#[tokio::test]
async fn produced_records_come_back_through_the_batch_decoder() {
    let (broker, client, leader) = setup("roundtrip").await;
    // Timestamps of a minute ago: Kafka's time-based retention (7 days by default, checked
    // every 500 ms on the test broker) would delete records stamped years back at once.
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 60_000;
    let records: Vec<OutgoingRecord> = (0..250)
        .map(|i| OutgoingRecord {
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("v{i}"))),
            headers: vec![("h".into(), Some(Bytes::from_static(b"x")))],
            timestamp: Some(base + i),
        })
        .collect();
    broker
        .produce(&client, "roundtrip", 0, &records, 100)
        .await
        .unwrap();

    let topic: Arc<str> = Arc::from("roundtrip");
    let mut position = 0;
    let mut seen = Vec::new();
    while position < 250 {
        let request = fetch_request("roundtrip", 0, position, Duration::from_millis(100));
        let answer = client.send(leader, Purpose::Fetch, &request).await.unwrap();
        let partition = &answer.responses[0].partitions[0];
        assert_eq!(partition.error_code, 0);
        let data = partition.records.clone().unwrap_or_default();
        let decoded = decode_records(&topic, 0, position, data, |_| false).unwrap();
        seen.extend(decoded.records);
        position = decoded
            .next_offset
            .expect("a fetch below the high watermark returns a batch");
    }
    assert_eq!(seen.len(), 250);
    for (i, record) in seen.iter().enumerate() {
        assert_eq!(record.offset, i as i64);
        assert_eq!(record.key.as_deref(), Some(format!("k{i}").as_bytes()));
        assert_eq!(record.value.as_deref(), Some(format!("v{i}").as_bytes()));
        assert_eq!(record.timestamp, base + i as i64);
        assert_eq!(
            record.headers,
            vec![("h".to_string(), Some(Bytes::from_static(b"x")))]
        );
    }
    // A fetch that starts inside a batch yields the records from that offset on.
    let request = fetch_request("roundtrip", 0, 142, Duration::from_millis(100));
    let answer = client.send(leader, Purpose::Fetch, &request).await.unwrap();
    let data = answer.responses[0].partitions[0]
        .records
        .clone()
        .unwrap_or_default();
    let decoded = decode_records(&topic, 0, 142, data, |_| false).unwrap();
    assert_eq!(decoded.records.first().map(|r| r.offset), Some(142));
}

#[tokio::test]
async fn apache_kafka_gets_the_newest_fetch_version_we_implement() {
    let (_broker, client, leader) = setup("versions").await;
    let connection = client.connection(leader, Purpose::Fetch).await.unwrap();
    // No compatibility switch: Fetch v12 (the last one that names topics); the Tansu 0.6
    // switch would hold it at v11.
    assert_eq!(
        connection
            .version_for::<FetchRequest>(kafka_protocol::messages::ApiKey::Fetch)
            .unwrap(),
        12
    );
}
