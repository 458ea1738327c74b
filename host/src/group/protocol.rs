//! The consumer protocol embedded in JoinGroup and SyncGroup: a member's subscription (topics,
//! user data, owned partitions, generation, rack) and its assignment. Both are a 2-byte version
//! followed by the message at that version; a newer version than we know is read as the newest
//! we know (the format only ever adds fields at the end).

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedTopic;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use wasmkafka_policy::assign::{Member, MemberAssignment};

/// The version we write, and the newest we read.
const VERSION: i16 = 3;

/// Why a subscription or assignment could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read the consumer protocol {what}: {reason}")]
pub struct ProtocolError {
    pub what: &'static str,
    pub reason: String,
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// Encodes our subscription.
pub fn encode_subscription(
    topics: &[String],
    user_data: &[u8],
    owned: &BTreeMap<String, Vec<i32>>,
    generation: i32,
    rack: Option<&str>,
) -> Bytes {
    let message = ConsumerProtocolSubscription::default()
        .with_topics(
            topics
                .iter()
                .map(|t| StrBytes::from_string(t.clone()))
                .collect(),
        )
        .with_user_data((!user_data.is_empty()).then(|| Bytes::copy_from_slice(user_data)))
        .with_owned_partitions(
            owned
                .iter()
                .map(|(topic, partitions)| {
                    OwnedTopic::default()
                        .with_topic(topic_name(topic))
                        .with_partitions(partitions.clone())
                })
                .collect(),
        )
        .with_generation_id(generation)
        .with_rack_id(rack.map(|r| StrBytes::from_string(r.to_string())));
    encode(&message)
}

/// Reads a member's subscription from its JoinGroup metadata.
pub fn decode_subscription(
    member_id: &str,
    instance_id: Option<&str>,
    metadata: &Bytes,
) -> Result<Member, ProtocolError> {
    let message: ConsumerProtocolSubscription = decode(metadata, "subscription")?;
    Ok(Member {
        member_id: member_id.to_string(),
        instance_id: instance_id.map(str::to_string),
        topics: message.topics.iter().map(|t| t.to_string()).collect(),
        user_data: message.user_data.map(|d| d.to_vec()).unwrap_or_default(),
        owned: message
            .owned_partitions
            .into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions))
            .collect(),
        generation: message.generation_id,
        rack: message.rack_id.map(|r| r.to_string()),
    })
}

/// Encodes one member's assignment for SyncGroup.
pub fn encode_assignment(assignment: &MemberAssignment) -> Bytes {
    let message = ConsumerProtocolAssignment::default()
        .with_assigned_partitions(
            assignment
                .partitions
                .iter()
                .map(|(topic, partitions)| {
                    AssignedTopic::default()
                        .with_topic(topic_name(topic))
                        .with_partitions(partitions.clone())
                })
                .collect(),
        )
        .with_user_data(
            (!assignment.user_data.is_empty())
                .then(|| Bytes::copy_from_slice(&assignment.user_data)),
        );
    encode(&message)
}

/// Reads our assignment from SyncGroup (empty bytes: no partitions).
pub fn decode_assignment(data: &Bytes) -> Result<MemberAssignment, ProtocolError> {
    if data.is_empty() {
        return Ok(MemberAssignment::default());
    }
    let message: ConsumerProtocolAssignment = decode(data, "assignment")?;
    let mut assignment = MemberAssignment {
        user_data: message.user_data.map(|d| d.to_vec()).unwrap_or_default(),
        ..MemberAssignment::default()
    };
    for topic in message.assigned_partitions {
        for partition in topic.partitions {
            assignment.add(topic.topic.0.as_str(), partition);
        }
    }
    Ok(assignment)
}

fn encode<M: Encodable>(message: &M) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(VERSION);
    message
        .encode(&mut buf, VERSION)
        .expect("consumer protocol messages encode at their own version");
    buf.freeze()
}

fn decode<M: Decodable>(data: &Bytes, what: &'static str) -> Result<M, ProtocolError> {
    let mut buf = data.clone();
    if buf.remaining() < 2 {
        return Err(ProtocolError {
            what,
            reason: "shorter than its version".into(),
        });
    }
    let version = buf.get_i16();
    if version < 0 {
        return Err(ProtocolError {
            what,
            reason: format!("negative version {version}"),
        });
    }
    M::decode(&mut buf, version.min(VERSION)).map_err(|e| ProtocolError {
        what,
        reason: format!("{e:#}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_round_trip() {
        let owned = BTreeMap::from([("t".to_string(), vec![0, 2])]);
        let bytes = encode_subscription(&["t".into(), "u".into()], b"ud", &owned, 7, Some("r1"));
        let member = decode_subscription("m-1", Some("i-1"), &bytes).unwrap();
        assert_eq!(member.topics, ["t", "u"]);
        assert_eq!(member.user_data, b"ud");
        assert_eq!(member.owned, owned);
        assert_eq!(member.generation, 7);
        assert_eq!(member.rack.as_deref(), Some("r1"));
        assert_eq!(member.instance_id.as_deref(), Some("i-1"));
    }

    #[test]
    fn an_old_subscription_without_a_generation_reads_as_minus_one() {
        // v1 (owned partitions, no generation), as old clients send it.
        let message = ConsumerProtocolSubscription::default()
            .with_topics(vec![StrBytes::from_static_str("t")])
            .with_owned_partitions(vec![OwnedTopic::default()
                .with_topic(topic_name("t"))
                .with_partitions(vec![1])]);
        let mut buf = BytesMut::new();
        buf.put_i16(1);
        message.encode(&mut buf, 1).unwrap();
        let member = decode_subscription("m", None, &buf.freeze()).unwrap();
        assert_eq!(member.generation, -1);
        assert_eq!(member.owned, BTreeMap::from([("t".to_string(), vec![1])]));
    }

    #[test]
    fn assignment_round_trip_and_garbage() {
        let mut share = MemberAssignment::default();
        share.add("t", 3);
        share.add("t", 1);
        share.add("u", 0);
        let decoded = decode_assignment(&encode_assignment(&share)).unwrap();
        assert_eq!(decoded, share);
        assert_eq!(
            decode_assignment(&Bytes::new()).unwrap(),
            MemberAssignment::default()
        );
        assert!(decode_assignment(&Bytes::from_static(&[0, 3, 0xff])).is_err());
    }
}
