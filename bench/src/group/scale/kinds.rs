//! The kinds of member `group-scale` compares, the events it times, and its options.

use std::time::Duration;

use anyhow::{bail, Context, Result};

/// Which client a member runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// `wasmkafka run --group`, a process per member.
    Ours,
    /// kafka-clients, a thread per member in one JVM (`bench/peers/java/GroupScale.java`).
    Java,
    /// confluent-kafka (librdkafka), a Python process per member
    /// (`bench/peers/python/group_member.py`).
    Rdkafka,
}

/// How a member takes part in the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// The classic protocol with the range assignor: every rebalance revokes everything.
    Eager,
    /// The classic protocol with cooperative-sticky (KIP-429).
    Cooperative,
    /// `group.protocol=consumer` (KIP-848): the broker assigns, with its default assignor.
    Consumer,
}

/// The kinds of member compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    OursEager,
    OursClassic,
    OursConsumer,
    JavaEager,
    JavaClassic,
    JavaConsumer,
    RdkafkaEager,
    RdkafkaCooperative,
    RdkafkaConsumer,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::OursEager,
        Kind::OursClassic,
        Kind::OursConsumer,
        Kind::JavaEager,
        Kind::JavaClassic,
        Kind::JavaConsumer,
        Kind::RdkafkaEager,
        Kind::RdkafkaCooperative,
        Kind::RdkafkaConsumer,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Kind::OursEager => "ours-eager",
            Kind::OursClassic => "ours-classic",
            Kind::OursConsumer => "ours-consumer",
            Kind::JavaEager => "java-eager",
            Kind::JavaClassic => "java-classic",
            Kind::JavaConsumer => "java-consumer",
            Kind::RdkafkaEager => "rdkafka-eager",
            Kind::RdkafkaCooperative => "rdkafka-cooperative",
            Kind::RdkafkaConsumer => "rdkafka-consumer",
        }
    }

    pub fn column(self) -> &'static str {
        match self {
            Kind::OursEager => "wasmkafka eager, range",
            Kind::OursClassic => "wasmkafka classic, cooperative-sticky",
            Kind::OursConsumer => "wasmkafka consumer (KIP-848)",
            Kind::JavaEager => "Java eager, RangeAssignor",
            Kind::JavaClassic => "Java classic, CooperativeStickyAssignor",
            Kind::JavaConsumer => "Java consumer (KIP-848)",
            Kind::RdkafkaEager => "librdkafka eager, range",
            Kind::RdkafkaCooperative => "librdkafka cooperative-sticky",
            Kind::RdkafkaConsumer => "librdkafka consumer (KIP-848)",
        }
    }

    pub fn client(self) -> Client {
        match self {
            Kind::OursEager | Kind::OursClassic | Kind::OursConsumer => Client::Ours,
            Kind::JavaEager | Kind::JavaClassic | Kind::JavaConsumer => Client::Java,
            Kind::RdkafkaEager | Kind::RdkafkaCooperative | Kind::RdkafkaConsumer => {
                Client::Rdkafka
            }
        }
    }

    pub fn protocol(self) -> Protocol {
        match self {
            Kind::OursEager | Kind::JavaEager | Kind::RdkafkaEager => Protocol::Eager,
            Kind::OursClassic | Kind::JavaClassic | Kind::RdkafkaCooperative => {
                Protocol::Cooperative
            }
            Kind::OursConsumer | Kind::JavaConsumer | Kind::RdkafkaConsumer => Protocol::Consumer,
        }
    }

    fn by_id(id: &str) -> Result<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.id() == id)
            .with_context(|| format!("no consumer `{id}`; {USAGE}"))
    }
}

/// What happens to a formed group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// N members formed; one more joins.
    Join,
    /// N + 1 members formed; one of them (one that owns partitions) stops cleanly and leaves.
    Leave,
}

/// `wasmkafka-bench group-scale` arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleOptions {
    pub rounds: usize,
    /// The group sizes N: N members before a join, N + 1 before a leave.
    pub members: Vec<usize>,
    pub partitions: i32,
    pub kinds: Vec<Kind>,
    /// The events timed, in this order on one group (a join, then a leave of the N + 1).
    pub events: Vec<Event>,
    /// The broker's `group.consumer.heartbeat.interval.ms` (`None`: Kafka's default).
    pub heartbeat_ms: Option<u64>,
    /// One record per partition this often.
    pub pace: Duration,
}

pub const USAGE: &str = "usage: wasmkafka-bench group-scale [--rounds N] [--members 1,10,50] \
                         [--partitions P] [--consumer ours-eager|ours-classic|ours-consumer|\
                         java-eager|java-classic|java-consumer|rdkafka-eager|\
                         rdkafka-cooperative|rdkafka-consumer]... [--event join|leave|both] \
                         [--broker-heartbeat-ms MS] [--pace-ms MS]";

/// The arguments after `group-scale`.
pub fn options(args: impl Iterator<Item = String>) -> Result<ScaleOptions> {
    parse(
        args,
        ScaleOptions {
            rounds: 3,
            members: vec![1, 10, 50],
            partitions: 100,
            kinds: Vec::new(),
            events: vec![Event::Join, Event::Leave],
            heartbeat_ms: None,
            pace: Duration::from_millis(100),
        },
    )
}

/// The arguments after `rebalance`: `group-scale --members 4` (a member joins a group of
/// 4, then one of the 5 leaves).
pub fn rebalance_options(args: impl Iterator<Item = String>) -> Result<ScaleOptions> {
    parse(
        args,
        ScaleOptions {
            rounds: 3,
            members: vec![4],
            partitions: 100,
            kinds: Vec::new(),
            events: vec![Event::Join, Event::Leave],
            heartbeat_ms: None,
            pace: Duration::from_millis(100),
        },
    )
}

fn parse(
    mut args: impl Iterator<Item = String>,
    mut options: ScaleOptions,
) -> Result<ScaleOptions> {
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--rounds" => options.rounds = value()?.parse().context("--rounds N")?,
            "--members" => {
                options.members = value()?
                    .split(',')
                    .map(|n| n.trim().parse().context("--members N,N,..."))
                    .collect::<Result<_>>()?
            }
            "--partitions" => options.partitions = value()?.parse().context("--partitions P")?,
            "--consumer" => options.kinds.push(Kind::by_id(&value()?)?),
            "--event" => {
                options.events = match value()?.as_str() {
                    "join" => vec![Event::Join],
                    "leave" => vec![Event::Leave],
                    "both" => vec![Event::Join, Event::Leave],
                    other => bail!("no event `{other}`; {USAGE}"),
                }
            }
            "--broker-heartbeat-ms" => {
                options.heartbeat_ms = Some(value()?.parse().context("--broker-heartbeat-ms MS")?)
            }
            "--pace-ms" => {
                options.pace = Duration::from_millis(value()?.parse().context("--pace-ms MS")?)
            }
            other => bail!("unknown argument `{other}`; {USAGE}"),
        }
    }
    if options.rounds == 0 || options.members.is_empty() || options.members.contains(&0) {
        bail!("--rounds and every size in --members must be at least 1");
    }
    if options.partitions < 1 {
        bail!("--partitions must be at least 1");
    }
    if options.kinds.is_empty() {
        options.kinds = Kind::ALL.to_vec();
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> impl Iterator<Item = String> + '_ {
        text.split_whitespace().map(String::from)
    }

    #[test]
    fn defaults() {
        let options = options(args("")).unwrap();
        assert_eq!(options.members, [1, 10, 50]);
        assert_eq!(options.events, [Event::Join, Event::Leave]);
        assert_eq!(options.kinds, Kind::ALL);
        let rebalance = rebalance_options(args("")).unwrap();
        assert_eq!(rebalance.members, [4]);
        assert_eq!(rebalance.events, [Event::Join, Event::Leave]);
        assert_eq!(rebalance.rounds, 3);
    }

    #[test]
    fn events_and_kinds() {
        let options = options(args(
            "--event leave --consumer ours-eager --consumer rdkafka-consumer --members 4",
        ))
        .unwrap();
        assert_eq!(options.events, [Event::Leave]);
        assert_eq!(options.kinds, [Kind::OursEager, Kind::RdkafkaConsumer]);
        assert_eq!(options.members, [4]);
        let both = rebalance_options(args("--event both --rounds 1")).unwrap();
        assert_eq!(both.events, [Event::Join, Event::Leave]);
        assert_eq!(both.rounds, 1);
        assert_eq!(
            rebalance_options(args("--event join")).unwrap().events,
            [Event::Join]
        );
    }

    #[test]
    fn rejects() {
        assert!(options(args("--event sideways")).is_err());
        assert!(options(args("--consumer java-eagerly")).is_err());
        assert!(options(args("--members 0")).is_err());
        assert!(options(args("--rounds")).is_err());
        assert!(options(args("--partitions 0")).is_err());
    }

    #[test]
    fn every_kind_has_its_id() {
        for kind in Kind::ALL {
            assert_eq!(Kind::by_id(kind.id()).unwrap(), kind);
        }
    }
}
