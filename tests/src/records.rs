//! Records written and read back by the tests: the values `v0`, `v1`, … produced to
//! partition 0 (the secure-listener tests), read with a consumer assigned the topic from the
//! earliest offset and compared as text; and a consumer polled until what it collected is
//! enough.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use wasmkafka::client::Client;
use wasmkafka::fetch::{Consumer, ConsumerRecord};
use wasmkafka::policy::{
    PolicyError, ResetContext, ResetDecision, ResetPolicy, ResetPolicySpec, ResetReason,
};

use crate::kafka::admin::numbered_values;
use crate::kafka::Kafka;

/// Produces the records `v{n}` for each `n` of `numbers` to partition 0 of `topic` (batches of
/// 50, a client of its own).
pub async fn produce_numbered(kafka: &Kafka, topic: &str, numbers: std::ops::Range<i64>) {
    kafka
        .produce_on_own_client(topic, 0, &numbered_values(numbers), 50)
        .await
        .unwrap();
}

/// A consumer on `client` with default options that starts a partition without a committed
/// offset at the earliest one.
pub fn earliest_consumer(client: Client) -> Consumer {
    Consumer::new(
        client,
        Default::default(),
        ResetPolicySpec::Earliest.into_policy(),
    )
}

/// Assigns `topic` to an [`earliest_consumer`] and polls until `count` records are read;
/// fails the test after 30 s.
pub async fn read_from_earliest(client: Client, topic: &str, count: usize) -> Vec<ConsumerRecord> {
    let consumer = earliest_consumer(client);
    consumer.assign_topics(&[topic.to_string()]).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut records = Vec::new();
    while records.len() < count {
        assert!(Instant::now() < deadline, "{} of {count}", records.len());
        records.extend(
            consumer
                .poll(count, Duration::from_millis(200))
                .await
                .unwrap(),
        );
    }
    records
}

/// Produces five records at a time (`v0` on, see [`produce_numbered`]) to `topic` while
/// `consumer` polls (each poll waiting up to `poll_wait`), until `run_for` has passed; then
/// polls until every record produced is read or 20 s have passed. Returns the records read and
/// how many were produced.
pub async fn produce_while_reading(
    kafka: &Kafka,
    consumer: &Consumer,
    topic: &str,
    run_for: Duration,
    poll_wait: Duration,
) -> (Vec<ConsumerRecord>, i64) {
    let started = Instant::now();
    let mut next = 0;
    let mut received = Vec::new();
    while started.elapsed() < run_for {
        produce_numbered(kafka, topic, next..next + 5).await;
        next += 5;
        received.extend(consumer.poll(1000, poll_wait).await.unwrap());
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while received.len() < next as usize && Instant::now() < deadline {
        received.extend(
            consumer
                .poll(1000, Duration::from_millis(200))
                .await
                .unwrap(),
        );
    }
    (received, next)
}

/// Each record's value as UTF-8 text.
pub fn values(records: &[ConsumerRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8(r.value.as_ref().unwrap().to_vec()).unwrap())
        .collect()
}

/// The values `v0` … `v{count - 1}`, as [`produce_numbered`] writes them.
pub fn numbered_texts(count: i64) -> Vec<String> {
    (0..count).map(|n| format!("v{n}")).collect()
}

/// Polls `consumer` (each poll waiting up to `poll_wait`) into `records` until `done` holds for
/// everything collected; fails the test after `timeout` (naming the partition and offset of
/// each record collected) or on a poll error.
pub async fn collect_until(
    consumer: &Consumer,
    records: &mut Vec<ConsumerRecord>,
    timeout: Duration,
    poll_wait: Duration,
    done: impl Fn(&[ConsumerRecord]) -> bool,
) {
    let deadline = Instant::now() + timeout;
    while !done(records) {
        assert!(
            Instant::now() < deadline,
            "timed out; collected offsets {:?}",
            records
                .iter()
                .map(|r| (r.partition, r.offset))
                .collect::<Vec<_>>()
        );
        match consumer.poll(1000, poll_wait).await {
            Ok(batch) => records.extend(batch),
            Err(error) => panic!("poll failed: {error}"),
        }
    }
}

/// The offsets of the `records` of `partition`, in the order they were read.
pub fn partition_offsets(records: &[ConsumerRecord], partition: i32) -> Vec<i64> {
    records
        .iter()
        .filter(|r| r.partition == partition)
        .map(|r| r.offset)
        .collect()
}

/// A reset policy that records the reasons it is asked about, then decides like `earliest`
/// (after a truncation: where the log diverged).
#[derive(Debug, Default)]
pub struct RecordingPolicy(Mutex<Vec<ResetReason>>);

impl RecordingPolicy {
    /// The reasons asked about so far, in order.
    pub fn reasons(&self) -> Vec<ResetReason> {
        self.0.lock().unwrap().clone()
    }
}

impl ResetPolicy for RecordingPolicy {
    fn name(&self) -> &str {
        "recording-earliest"
    }
    fn decide(&self, context: &ResetContext) -> Result<ResetDecision, PolicyError> {
        self.0.lock().unwrap().push(context.reason);
        ResetPolicySpec::Earliest.into_policy().decide(context)
    }
}
