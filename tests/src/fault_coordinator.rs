//! What the two scripted group coordinators ([`crate::fault_group`], classic;
//! [`crate::fault_consumer_group`], KIP-848) answer alike: FindCoordinator naming node 1,
//! OffsetFetch from the committed offsets, and OffsetCommit's answer partition by partition.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorResponse, OffsetCommitResponse, OffsetFetchRequest,
    OffsetFetchResponse,
};
use kafka_protocol::protocol::StrBytes;

/// FindCoordinator's answer: `error` (and node -1), else node 1 at `127.0.0.1:port`.
pub fn find_coordinator_answer(error: Option<ResponseError>, port: u16) -> FindCoordinatorResponse {
    match error {
        Some(error) => FindCoordinatorResponse::default()
            .with_error_code(error.code())
            .with_node_id(BrokerId(-1)),
        None => FindCoordinatorResponse::default()
            .with_node_id(BrokerId(1))
            .with_host(StrBytes::from_static_str("127.0.0.1"))
            .with_port(i32::from(port)),
    }
}

/// OffsetFetch's answer: each partition asked for with its offset in `committed` (by topic
/// name and partition), -1 where there is none.
pub fn offset_fetch_answer(
    request: OffsetFetchRequest,
    committed: &BTreeMap<(String, i32), i64>,
) -> OffsetFetchResponse {
    let topics = request
        .topics
        .unwrap_or_default()
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partition_indexes
                .iter()
                .map(|p| {
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(*p)
                        .with_committed_offset(
                            committed
                                .get(&(topic.name.to_string(), *p))
                                .copied()
                                .unwrap_or(-1),
                        )
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

/// OffsetCommit's answer: `commit` takes each partition of the request in order, as
/// ((topic, partition), offset), and returns the error to answer for it (`None`: committed).
pub fn offset_commit_answer(
    topics: &[OffsetCommitRequestTopic],
    mut commit: impl FnMut((String, i32), i64) -> Option<ResponseError>,
) -> OffsetCommitResponse {
    let topics = topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let key = (topic.name.to_string(), p.partition_index);
                    let error = commit(key, p.committed_offset);
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(error.map_or(0, |e| e.code()))
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
