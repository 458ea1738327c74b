//! The broker's assignors of the consumer group protocol (KIP-848, `group.protocol =
//! "consumer"`), simulated in the lab beside the client-side ones: Apache Kafka's `uniform`
//! (the broker's default) and `range`, as `broker-uniform` and `broker-range`.
//!
//! They live here and nowhere in [`crate::group`]: under the consumer protocol the broker
//! assigns, so they are no `consumer.assignors` a member could announce; the lab runs them
//! only to show what the broker would do to a group before it migrates. The algorithms are
//! [`assign::broker_uniform`] and [`assign::broker_range`]; `tests/tests/real_broker_lab.rs`
//! holds them against the test broker's own.

use wasmkafka_policy::assign::{self, Assignment, Group};

/// One of the broker's assignors, by its lab name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerAssignor {
    Uniform,
    Range,
}

impl BrokerAssignor {
    pub const ALL: [BrokerAssignor; 2] = [BrokerAssignor::Uniform, BrokerAssignor::Range];

    /// The name in the lab (`--assignor broker-uniform`): never a client-side assignor's.
    pub fn name(self) -> &'static str {
        match self {
            BrokerAssignor::Uniform => "broker-uniform",
            BrokerAssignor::Range => "broker-range",
        }
    }

    /// The broker's own name (`group.remote.assignor`).
    pub fn kafka_name(self) -> &'static str {
        match self {
            BrokerAssignor::Uniform => "uniform",
            BrokerAssignor::Range => "range",
        }
    }

    pub fn from_name(name: &str) -> Option<BrokerAssignor> {
        BrokerAssignor::ALL.into_iter().find(|b| b.name() == name)
    }

    /// The next target assignment; `group`'s members own their previous target.
    pub fn assign(self, group: &Group) -> Assignment {
        match self {
            BrokerAssignor::Uniform => assign::broker_uniform(group),
            BrokerAssignor::Range => assign::broker_range(group),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::group::assignor::{vote_order, Builtin};

    #[test]
    fn the_broker_assignors_are_no_client_side_assignors() {
        for broker in BrokerAssignor::ALL {
            assert_eq!(BrokerAssignor::from_name(broker.name()), Some(broker));
            assert!(Builtin::from_name(broker.name()).is_none());
            // A member cannot announce one: the vote refuses the name, and so does the
            // config.
            let refused = vote_order(&[broker.name().to_string()], &[]).unwrap_err();
            assert_eq!(refused.name, broker.name());
            let mut config = Config::default();
            config.consumer.assignors = vec![broker.name().to_string()];
            let error = config.validate().unwrap_err().to_string();
            assert!(error.contains("consumer.assignors"), "{error}");
        }
        // The broker's own names are not lab names: `range` is the client-side one.
        assert_eq!(BrokerAssignor::from_name("uniform"), None);
        assert_eq!(BrokerAssignor::from_name("range"), None);
    }
}
