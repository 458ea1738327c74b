//! API version negotiation: the broker's ranges (from ApiVersions, once per connection) meet
//! the codec's ranges and the highest version whose semantics this client implements.

use std::collections::HashMap;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::VersionRange;

/// The highest version of an API whose behaviour this client implements. The codec may know
/// newer versions, but a newer version can change semantics (Fetch v13 names topics by id, for
/// example), so we only move these forward together with the code that uses them.
pub fn client_max_version(api: ApiKey) -> Option<i16> {
    match api {
        ApiKey::ApiVersions => Some(3),
        ApiKey::Metadata => Some(12),
        // v12 is the last version that names topics (v13+ use topic ids); sessions (KIP-227),
        // rack ids, isolation levels; its answers may carry KIP-320's diverging epoch.
        // `BrokerCompat::Tansu06` holds it at v11.
        ApiKey::Fetch => Some(12),
        ApiKey::ListOffsets => Some(7),
        // v3+ for consumers (replica id -1); v4 is v3 in the flexible encoding.
        ApiKey::OffsetForLeaderEpoch => Some(4),
        ApiKey::Produce => Some(9),
        ApiKey::FindCoordinator => Some(3),
        ApiKey::OffsetFetch => Some(7),
        // v9 is v8 for classic groups; members of a consumer-protocol group (KIP-848) need it
        // (the generation field carries the member epoch).
        ApiKey::OffsetCommit => Some(9),
        // Group membership: static members (v5+ of JoinGroup) and MEMBER_ID_REQUIRED (v4+);
        // LeaveGroup v3+ names members in a list.
        ApiKey::JoinGroup => Some(7),
        ApiKey::SyncGroup => Some(5),
        ApiKey::Heartbeat => Some(4),
        ApiKey::LeaveGroup => Some(4),
        // KIP-848's membership: v1 (Kafka 4.0+) has the client name itself and takes a
        // regular expression the broker resolves; v0 (3.7's preview) is not used.
        ApiKey::ConsumerGroupHeartbeat => Some(1),
        ApiKey::ConsumerGroupDescribe => Some(1),
        // v1 wraps the SASL tokens in SaslAuthenticate (v0 sent them raw); v1+ of
        // SaslAuthenticate carries the session lifetime (KIP-368).
        ApiKey::SaslHandshake => Some(1),
        ApiKey::SaslAuthenticate => Some(2),
        _ => None,
    }
}

/// A named compatibility switch for a broker that departs from Apache Kafka's protocol. The
/// default, `Kafka`, is what Apache Kafka (and brokers that follow it) need; the others hold
/// the client back where that broker's quirks require it, and only there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
pub enum BrokerCompat {
    #[default]
    #[serde(rename = "kafka")]
    Kafka,
    /// Tansu 0.6: its v12 Fetch answers carry the NodeEndpoints tag (defined from v16), which
    /// kafka-protocol refuses, so Fetch stays at v11; it rebalances whenever a member's
    /// metadata changes, so subscriptions leave the generation out (-1).
    #[serde(rename = "tansu-0.6")]
    Tansu06,
}

impl BrokerCompat {
    /// The highest version of `api` to use with such a broker (`None`: the codec's).
    pub fn max_version(self, api: ApiKey) -> Option<i16> {
        match (self, api) {
            (BrokerCompat::Tansu06, ApiKey::Fetch) => Some(11),
            _ => client_max_version(api),
        }
    }

    /// Whether a member's subscription may carry its generation (KIP-792).
    pub fn subscription_generation(self) -> bool {
        self != BrokerCompat::Tansu06
    }
}

/// The broker's supported range per API key, as announced in ApiVersions.
#[derive(Debug, Clone, Default)]
pub struct BrokerVersions {
    ranges: HashMap<i16, VersionRange>,
}

impl BrokerVersions {
    pub fn new(ranges: impl IntoIterator<Item = (i16, VersionRange)>) -> Self {
        Self {
            ranges: ranges.into_iter().collect(),
        }
    }

    /// The broker's range for an API, if it announced one.
    pub fn range(&self, api_key: i16) -> Option<VersionRange> {
        self.ranges.get(&api_key).copied()
    }

    /// The highest version both sides support for `api`, further capped by `cap`.
    /// `Err` carries the broker's range (or "none") for the error message.
    pub fn pick(&self, api: ApiKey, codec: VersionRange, cap: Option<i16>) -> Result<i16, String> {
        let ours = VersionRange {
            min: codec.min,
            max: cap.map_or(codec.max, |cap| cap.min(codec.max)),
        };
        let Some(theirs) = self.range(api as i16) else {
            return Err("none".to_string());
        };
        let both = ours.intersect(&theirs);
        if both.is_empty() {
            Err(theirs.to_string())
        } else {
            Ok(both.max)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tansu_switch_holds_fetch_at_v11_and_nothing_else() {
        let broker = BrokerVersions::new([
            (ApiKey::Fetch as i16, VersionRange { min: 4, max: 17 }),
            (ApiKey::Metadata as i16, VersionRange { min: 0, max: 13 }),
        ]);
        let codec = VersionRange { min: 0, max: 17 };
        let pick = |compat: BrokerCompat, api| broker.pick(api, codec, compat.max_version(api));
        assert_eq!(pick(BrokerCompat::Kafka, ApiKey::Fetch), Ok(12));
        assert_eq!(pick(BrokerCompat::Tansu06, ApiKey::Fetch), Ok(11));
        assert_eq!(pick(BrokerCompat::Kafka, ApiKey::Metadata), Ok(12));
        assert_eq!(pick(BrokerCompat::Tansu06, ApiKey::Metadata), Ok(12));
        assert!(BrokerCompat::Kafka.subscription_generation());
        assert!(!BrokerCompat::Tansu06.subscription_generation());
    }

    #[test]
    fn picks_the_highest_common_version() {
        let broker =
            BrokerVersions::new([(ApiKey::Metadata as i16, VersionRange { min: 0, max: 9 })]);
        let codec = VersionRange { min: 0, max: 13 };
        assert_eq!(broker.pick(ApiKey::Metadata, codec, None), Ok(9));
        assert_eq!(broker.pick(ApiKey::Metadata, codec, Some(4)), Ok(4));
        assert_eq!(broker.pick(ApiKey::Fetch, codec, None), Err("none".into()));
        let too_new = VersionRange { min: 10, max: 13 };
        assert_eq!(
            broker.pick(ApiKey::Metadata, too_new, None),
            Err("0..9".into())
        );
    }
}
