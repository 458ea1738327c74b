//! What the tests need of an admin client, sent with wasmkafka's own wire client: create
//! topics (with configs), add partitions, delete records (move the log start), wait for
//! partition leaders.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{
    BrokerId, CreatePartitionsRequest, CreateTopicsRequest, DeleteRecordsRequest,
    ElectLeadersRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use wasmkafka::client::Client;
use wasmkafka::fetch::{list_offsets, IsolationLevel, OffsetSpec, TopicPartition};
use wasmkafka::net::Purpose;
use wasmkafka::produce::{produce_batch, OutgoingRecord};

use super::Kafka;

/// Topic settings, as `(name, value)` pairs of Kafka topic configs.
pub type TopicConfig<'a> = &'a [(&'a str, &'a str)];

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// A per-resource result of an admin request: its error code and the broker's message.
trait AdminResult {
    fn error(&self) -> (i16, Option<&StrBytes>);
}

macro_rules! admin_results {
    ($($result:ty),*) => {
        $(impl AdminResult for $result {
            fn error(&self) -> (i16, Option<&StrBytes>) {
                (self.error_code, self.error_message.as_ref())
            }
        })*
    };
}

admin_results!(
    CreatableTopicResult,
    CreatePartitionsTopicResult,
    AclCreationResult
);

/// Fails, naming `what` and the broker's message, at the first of `results` with an error.
fn check_results(what: &str, results: &[impl AdminResult]) -> Result<()> {
    for result in results {
        let (code, message) = result.error();
        if let Some(error) = code.err() {
            bail!(
                "{what} failed: {error:?} {}",
                message.map_or("", |m| m.as_str())
            );
        }
    }
    Ok(())
}

/// A broker of the cluster (the lowest id), for requests any broker answers or forwards.
async fn any_broker(client: &Client) -> Result<i32> {
    let metadata = client.refresh_metadata().await?;
    metadata
        .brokers
        .keys()
        .next()
        .copied()
        .context("the cluster lists no broker")
}

/// Creates a topic (the broker's default replication factor) and waits until every partition's
/// leader serves it.
pub async fn create_topic(
    client: &Client,
    name: &str,
    partitions: i32,
    configs: TopicConfig<'_>,
) -> Result<()> {
    create_topic_placed(client, name, Placement::Count(partitions), configs).await
}

/// Where a new topic's partitions go.
pub enum Placement<'a> {
    /// This many partitions, replicas placed by the broker.
    Count(i32),
    /// Partition `i` on the brokers of `replicas[i]` (the first one leads).
    Replicas(&'a [Vec<i32>]),
}

/// Creates a topic with its partitions placed as said and waits until every leader serves it.
pub async fn create_topic_placed(
    client: &Client,
    name: &str,
    placement: Placement<'_>,
    configs: TopicConfig<'_>,
) -> Result<()> {
    let broker = any_broker(client).await?;
    let topic = match placement {
        Placement::Count(partitions) => CreatableTopic::default()
            .with_num_partitions(partitions)
            .with_replication_factor(-1),
        Placement::Replicas(replicas) => CreatableTopic::default()
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(
                replicas
                    .iter()
                    .enumerate()
                    .map(|(partition, brokers)| {
                        CreatableReplicaAssignment::default()
                            .with_partition_index(partition as i32)
                            .with_broker_ids(brokers.iter().map(|b| BrokerId(*b)).collect())
                    })
                    .collect(),
            ),
    };
    let topic = topic.with_name(topic_name(name)).with_configs(
        configs
            .iter()
            .map(|(key, value)| {
                CreatableTopicConfig::default()
                    .with_name(StrBytes::from_string(key.to_string()))
                    .with_value(Some(StrBytes::from_string(value.to_string())))
            })
            .collect(),
    );
    let request = CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(30_000);
    let response = client.send(broker, Purpose::Default, &request).await?;
    check_results(&format!("creating topic {name}"), &response.topics)?;
    wait_until_served(client, name, Duration::from_secs(60)).await
}

/// Grows `topic` to `count` partitions (CreatePartitions, the broker's replica placement) and
/// waits until the metadata lists them all and every leader serves its partition.
pub async fn create_partitions(client: &Client, topic: &str, count: i32) -> Result<()> {
    let broker = any_broker(client).await?;
    let request = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(topic_name(topic))
            .with_count(count)
            .with_assignments(None)])
        .with_timeout_ms(30_000)
        .with_validate_only(false);
    let response = client.send(broker, Purpose::Default, &request).await?;
    check_results(
        &format!("growing {topic} to {count} partitions"),
        &response.results,
    )?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = client
            .refresh_metadata()
            .await?
            .topics
            .get(topic)
            .map_or(0, |info| info.partitions.len());
        if listed == count as usize {
            break;
        }
        if Instant::now() > deadline {
            bail!("{topic} lists {listed} partitions, not {count}, 60 s after CreatePartitions");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_until_served(client, topic, Duration::from_secs(60)).await
}

/// Asks the cluster to elect leaders for these partitions of `topic`: unclean (any live
/// replica, even one that is not in sync: records may be lost) or preferred.
pub async fn elect_leaders(
    client: &Client,
    topic: &str,
    partitions: &[i32],
    unclean: bool,
) -> Result<()> {
    let metadata = client.refresh_metadata().await?;
    let request = ElectLeadersRequest::default()
        .with_election_type(i8::from(unclean))
        .with_topic_partitions(Some(vec![TopicPartitions::default()
            .with_topic(topic_name(topic))
            .with_partitions(partitions.to_vec())]))
        .with_timeout_ms(30_000);
    // Any live broker forwards it to the controller.
    let mut answer = None;
    for broker in metadata.brokers.keys() {
        match client.send(*broker, Purpose::Default, &request).await {
            Ok(response) => {
                answer = Some(response);
                break;
            }
            Err(error) => tracing::debug!(broker, %error, "ElectLeaders: trying another broker"),
        }
    }
    let response = answer.context("no broker answered ElectLeaders")?;
    if let Some(error) = response.error_code.err() {
        bail!("electing leaders for {topic} failed: {error:?}");
    }
    for result in &response.replica_election_results {
        for partition in &result.partition_result {
            if let Some(error) = partition.error_code.err() {
                bail!(
                    "electing a leader for {topic}/{} failed: {error:?} {}",
                    partition.partition_id,
                    partition.error_message.as_deref().unwrap_or("")
                );
            }
        }
    }
    Ok(())
}

/// Waits until every partition of `topic` has a leader that answers ListOffsets for it.
/// Metadata names a leader a moment before that leader accepts requests: a produce right
/// after CreateTopics can still get NOT_LEADER_OR_FOLLOWER.
pub async fn wait_until_served(client: &Client, topic: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let problem = match served(client, topic).await {
            Ok(()) => return Ok(()),
            Err(problem) => problem,
        };
        if Instant::now() > deadline {
            bail!("{topic} is not served after {timeout:?}: {problem:#}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn served(client: &Client, topic: &str) -> Result<()> {
    let metadata = client.refresh_metadata().await?;
    let info = metadata
        .topics
        .get(topic)
        .filter(|info| !info.partitions.is_empty())
        .with_context(|| format!("metadata does not list {topic}"))?;
    let mut by_leader: BTreeMap<i32, Vec<(TopicPartition, OffsetSpec)>> = BTreeMap::new();
    for partition in info.partitions.values() {
        if partition.leader < 0 {
            bail!("{topic}/{} has no leader", partition.partition);
        }
        by_leader.entry(partition.leader).or_default().push((
            TopicPartition::new(topic, partition.partition),
            OffsetSpec::Latest,
        ));
    }
    for (leader, wanted) in by_leader {
        let answers =
            list_offsets(client, leader, IsolationLevel::ReadUncommitted, &wanted).await?;
        for (tp, answer) in answers {
            if let Err(error) = answer {
                bail!("{tp}: {error:?} from its leader {leader}");
            }
        }
    }
    Ok(())
}

/// Deletes the records of `topic`/`partition` below `offset` (DeleteRecords to the leader);
/// returns the partition's new log start offset.
pub async fn delete_records(
    client: &Client,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<i64> {
    let metadata = client.refresh_metadata().await?;
    let leader = metadata
        .leader(topic, partition)
        .with_context(|| format!("{topic}/{partition} has no leader"))?;
    let request = DeleteRecordsRequest::default()
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(partition)
                .with_offset(offset)])])
        .with_timeout_ms(30_000);
    let response = client.send(leader, Purpose::Default, &request).await?;
    let answer = response
        .topics
        .iter()
        .flat_map(|topic| topic.partitions.iter())
        .find(|p| p.partition_index == partition)
        .context("DeleteRecords answered without the partition")?;
    if let Some(error) = answer.error_code.err() {
        bail!("DeleteRecords {topic}/{partition} below {offset} failed: {error:?}");
    }
    Ok(answer.low_watermark)
}

/// Produces records to one partition in batches of `batch` (uncompressed); returns the first
/// offset. A batch refused because the leader just changed (an election, a restart: the
/// client's metadata is a moment behind) is sent again for up to 10 s; the broker appended
/// nothing of it.
pub async fn produce(
    client: &Client,
    topic: &str,
    partition: i32,
    records: &[OutgoingRecord],
    batch: usize,
) -> Result<i64> {
    let mut first = None;
    for chunk in records.chunks(batch.max(1)) {
        let started = Instant::now();
        let base = loop {
            match produce_batch(client, topic, partition, chunk, Compression::None).await {
                Ok(base) => break base,
                Err(error)
                    if started.elapsed() < Duration::from_secs(10)
                        && ["NotLeaderOrFollower", "LeaderNotAvailable"]
                            .iter()
                            .any(|code| error.to_string().contains(code)) =>
                {
                    let _ = client.refresh_metadata().await;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => return Err(error.into()),
            }
        };
        first.get_or_insert(base);
    }
    first.context("no records to produce")
}

/// Waits until every partition of `topic` (or of every topic) has a leader.
pub async fn wait_for_leaders(
    client: &Client,
    topic: Option<&str>,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(metadata) = client.refresh_metadata().await {
            let ready = match topic {
                Some(name) => metadata.topics.get(name).is_some_and(|info| {
                    !info.partitions.is_empty() && info.partitions.values().all(|p| p.leader >= 0)
                }),
                None => metadata
                    .topics
                    .values()
                    .all(|info| info.partitions.values().all(|p| p.leader >= 0)),
            };
            if ready {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!(
                "partitions of {} have no leader after {timeout:?}",
                topic.unwrap_or("every topic")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Kafka {
    /// Creates a topic with Kafka topic configs (e.g. `("cleanup.policy", "compact")`).
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: TopicConfig<'_>,
    ) -> Result<()> {
        let client = self.client();
        let created = create_topic(&client, name, partitions, configs).await;
        client.close();
        created
    }

    /// Grows `topic` to `count` partitions; returns once every one is served.
    pub async fn create_partitions(&self, topic: &str, count: i32) -> Result<()> {
        let client = self.client();
        let grown = create_partitions(&client, topic, count).await;
        client.close();
        grown
    }

    /// Allows `principal` `operations` on `resource` (see [`allow`]).
    pub async fn allow(
        &self,
        principal: &str,
        resource: AclResource<'_>,
        operations: &[AclOperation],
    ) -> Result<()> {
        let client = self.client();
        let allowed = allow(&client, principal, resource, operations).await;
        client.close();
        allowed
    }

    /// Moves the log start of `topic`/`partition` to `offset`; returns the new log start.
    pub async fn delete_records(&self, topic: &str, partition: i32, offset: i64) -> Result<i64> {
        let client = self.client();
        let deleted = delete_records(&client, topic, partition, offset).await;
        client.close();
        deleted
    }

    /// Produces records to one partition in batches of `batch`; returns the first offset.
    pub async fn produce(
        &self,
        client: &Client,
        topic: &str,
        partition: i32,
        records: &[OutgoingRecord],
        batch: usize,
    ) -> Result<i64> {
        produce(client, topic, partition, records, batch).await
    }

    /// [`Kafka::produce`] through a client of its own, closed after.
    pub async fn produce_on_own_client(
        &self,
        topic: &str,
        partition: i32,
        records: &[OutgoingRecord],
        batch: usize,
    ) -> Result<i64> {
        let client = self.client();
        let produced = produce(&client, topic, partition, records, batch).await;
        client.close();
        produced
    }
}

impl Kafka {
    /// Produces `count` records to each partition `0..partitions` of `topic` through one client
    /// of its own (closed after), in batches of `batch`; record `i` of partition `p` is
    /// `record(p, i)`. Returns each partition's first offset, in partition order.
    pub async fn produce_to_each_partition(
        &self,
        topic: &str,
        partitions: i32,
        count: i64,
        batch: usize,
        record: impl Fn(i32, i64) -> OutgoingRecord,
    ) -> Result<Vec<i64>> {
        let client = self.client();
        let mut firsts = Vec::new();
        for partition in 0..partitions {
            let records: Vec<OutgoingRecord> = (0..count).map(|i| record(partition, i)).collect();
            match produce(&client, topic, partition, &records, batch).await {
                Ok(first) => firsts.push(first),
                Err(error) => {
                    client.close();
                    return Err(error);
                }
            }
        }
        client.close();
        Ok(firsts)
    }

    /// Produces `per_partition` records to each partition `0..partitions` of `topic`, one
    /// batch a partition, with the values `{tag}-{partition}-{i}`.
    pub async fn produce_tagged(
        &self,
        topic: &str,
        partitions: i32,
        per_partition: usize,
        tag: &str,
    ) -> Result<Vec<i64>> {
        self.produce_to_each_partition(
            topic,
            partitions,
            per_partition as i64,
            per_partition,
            |partition, i| value_record(format!("{tag}-{partition}-{i}"), None),
        )
        .await
    }
}

/// The (partition, offset) of every record [`Kafka::produce_to_each_partition`] wrote, from the
/// first offsets it returned and the `count` per partition.
pub fn offsets_written(firsts: &[i64], count: i64) -> Vec<(i64, i64)> {
    (0i64..)
        .zip(firsts)
        .flat_map(|(partition, &first)| {
            (first..first + count).map(move |offset| (partition, offset))
        })
        .collect()
}

/// A record of only a value (no key, no headers) stamped `timestamp` (`None`: when produced).
pub fn value_record(value: impl Into<Bytes>, timestamp: Option<i64>) -> OutgoingRecord {
    OutgoingRecord {
        key: None,
        value: Some(value.into()),
        headers: Vec::new(),
        timestamp,
    }
}

/// The records `v{n}` for each `n` of `numbers`, stamped when produced: what the secure-listener
/// tests write and expect back.
pub fn numbered_values(numbers: std::ops::Range<i64>) -> Vec<OutgoingRecord> {
    numbers
        .map(|n| value_record(format!("v{n}"), None))
        .collect()
}

/// A resource an ACL names (Kafka's resource type codes, literal names).
#[derive(Debug, Clone, Copy)]
pub enum AclResource<'a> {
    Topic(&'a str),
    Group(&'a str),
}

impl AclResource<'_> {
    fn parts(&self) -> (i8, &str) {
        match self {
            AclResource::Topic(name) => (2, name),
            AclResource::Group(name) => (3, name),
        }
    }
}

/// An operation an ACL allows (Kafka's operation codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclOperation {
    Read = 3,
    Describe = 8,
}

/// Kafka's LITERAL pattern type, ALLOW permission and ANY filter codes.
const LITERAL: i8 = 3;
const ALLOW: i8 = 3;
const ANY: i8 = 1;

/// Allows `principal` (`User:alice`) `operations` on `resource` from any host, and waits
/// until the broker's authorizer lists them (they apply a few tens of ms after the answer).
pub async fn allow(
    client: &Client,
    principal: &str,
    resource: AclResource<'_>,
    operations: &[AclOperation],
) -> Result<()> {
    use kafka_protocol::messages::create_acls_request::AclCreation;
    use kafka_protocol::messages::{CreateAclsRequest, DescribeAclsRequest};
    let broker = any_broker(client).await?;
    let (resource_type, name) = resource.parts();
    let request = CreateAclsRequest::default().with_creations(
        operations
            .iter()
            .map(|operation| {
                AclCreation::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(StrBytes::from_string(name.to_string()))
                    .with_resource_pattern_type(LITERAL)
                    .with_principal(StrBytes::from_string(principal.to_string()))
                    .with_host(StrBytes::from_static_str("*"))
                    .with_operation(*operation as i8)
                    .with_permission_type(ALLOW)
            })
            .collect(),
    );
    let response = client.send(broker, Purpose::Default, &request).await?;
    check_results(
        &format!("allowing {principal} {operations:?} on {resource:?}"),
        &response.results,
    )?;
    let describe = DescribeAclsRequest::default()
        .with_resource_type_filter(resource_type)
        .with_resource_name_filter(Some(StrBytes::from_string(name.to_string())))
        .with_pattern_type_filter(LITERAL)
        .with_principal_filter(Some(StrBytes::from_string(principal.to_string())))
        .with_host_filter(None)
        .with_operation(ANY)
        .with_permission_type(ANY);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed = client.send(broker, Purpose::Default, &describe).await?;
        let granted: Vec<i8> = listed
            .resources
            .iter()
            .flat_map(|r| r.acls.iter().map(|acl| acl.operation))
            .collect();
        if operations.iter().all(|op| granted.contains(&(*op as i8))) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the broker lists {granted:?} for {principal} on {resource:?} 30 s after CreateAcls");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
