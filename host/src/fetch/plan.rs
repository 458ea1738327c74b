//! What the fetcher sends next, decided from a snapshot: a pure function of the partitions'
//! states, what the buffer holds, the metadata, the leaders' readiness and the time. The
//! driver ([`super::driver`]) takes the snapshot under its lock, calls [`plan`], and starts
//! what it says; the rules are unit-tested here one by one, and property-tested over random
//! snapshots (never a paused or buffered partition, never past the budget, none waits forever).
//!
//! The rules:
//! - A partition is fetched when it is `Fetching`, not paused, holds nothing in the buffer,
//!   and the buffer has room (chunks of paused partitions do not count against it).
//! - One fetch per broker at a time; a broker still fetching, or backing off, waits (the plan
//!   wakes when its backoff ends).
//! - A partition is fetched from its leader, or from the replica the leader named for this
//!   consumer's rack (KIP-392) while that choice is fresh and the replica is in the metadata.
//!   Resets and validations always ask the leader.
//! - A position the current leader has not vouched for is validated first (KIP-320).
//! - A fetch whose partitions are all at their readable end is not sent while another
//!   partition of that leader waits in the buffer: it could only long-poll, holding the
//!   leader's one fetch slot, and the waiting partition could not be fetched until it ends.
//! - A partition without a leader asks for a metadata refresh naming its topic; if the
//!   metadata refuses the topic (an ACL), the partition stops with that refusal; if the topic
//!   stays missing through [`GONE_AFTER_REFRESHES`] refreshes, it stops as gone.
//! - Leaders fetching at once share what is left of the buffer's budget.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::cluster::Metadata;

use super::error::{PartitionError, TopicRefused};
use super::fetch_job::Asked;
use super::partition::{Partition, PartitionState, Partitions, Stamp};
use super::reset::ResetRequest;
use super::validate::ValidateRequest;
use super::TopicPartition;

/// A partition whose topic is missing from this many refreshes in a row stops with
/// [`PartitionError::TopicGone`]. Refreshes are at least `net.metadata_min_age_ms` apart
/// (1 s by default) and back off beyond it, so that is 6 s or more.
pub const GONE_AFTER_REFRESHES: u32 = 6;
/// How long the plan sleeps when nothing else wakes it.
pub const IDLE_TICK: Duration = Duration::from_secs(1);

/// A leader's fetch slot, as the plan sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeaderSlot {
    /// A fetch to it is in flight.
    pub fetching: bool,
    /// It failed, or answered as not the leader: no fetch before then.
    pub retry_at: Option<Instant>,
    /// Its last fetch failed (it could not be reached): a replica in this state is not read
    /// from while it backs off; the leaders serve its partitions meanwhile.
    pub failed: bool,
}

impl LeaderSlot {
    fn ready(&self, now: Instant) -> bool {
        !self.fetching && self.retry_at.is_none_or(|at| at <= now)
    }
}

/// The snapshot a plan is made from.
pub struct Inputs<'a> {
    pub now: Instant,
    pub partitions: &'a Partitions,
    /// Whether the buffer holds a chunk of the partition.
    pub buffered: &'a dyn Fn(&TopicPartition) -> bool,
    /// Bytes a new fetch may still bring ([`fetch_budget`]).
    pub budget: usize,
    pub metadata: &'a Metadata,
    /// Leaders with a slot state; one not listed is ready.
    pub leaders: &'a BTreeMap<i32, LeaderSlot>,
    /// Partitions with a validation or a reset in flight.
    pub validating: &'a HashSet<TopicPartition>,
    pub resetting: &'a HashSet<TopicPartition>,
    /// Refreshes in a row that left some partition without a leader.
    pub leaderless_refreshes: u32,
    /// The most one answer may carry (`fetch_max_bytes`, or its ceiling).
    pub max_bytes_ceiling: i32,
}

/// What to start now.
#[derive(Debug, Default)]
pub struct Plan {
    /// Per leader, the partitions of its next fetch.
    pub fetches: BTreeMap<i32, Vec<Asked>>,
    /// What each of those fetches may carry at most.
    pub max_bytes: i32,
    pub resets: BTreeMap<i32, Vec<ResetRequest>>,
    pub validations: BTreeMap<i32, Vec<ValidateRequest>>,
    /// Partitions to stop, with the error their user gets (and the stamp they were under).
    pub stops: Vec<(Stamp, PartitionError)>,
    /// Topics of partitions without a leader (a metadata refresh names them).
    pub leaderless_topics: BTreeSet<String>,
    /// When to plan again at the latest.
    pub wake_at: Option<Instant>,
}

/// The bytes new fetches may bring: what `max_buffered` leaves beside the buffer's chunks,
/// those of paused partitions not counted (they wait for a resume, and pausing some
/// partitions must not stop the others; each holds at most one chunk).
pub fn fetch_budget(max_buffered: usize, buffered: usize, paused: usize) -> usize {
    max_buffered.saturating_sub(buffered.saturating_sub(paused))
}

/// Decides what to start (see the module's rules).
pub fn plan(inputs: &Inputs<'_>) -> Plan {
    let now = inputs.now;
    let metadata = inputs.metadata;
    let mut plan = Plan {
        wake_at: Some(now + IDLE_TICK),
        ..Plan::default()
    };
    let mut wake = |at: Instant| {
        plan.wake_at = plan.wake_at.map(|w| w.min(at)).or(Some(at));
    };
    let mut fetches: BTreeMap<i32, Vec<Asked>> = BTreeMap::new();
    // Leaders with a partition whose records wait in the buffer for the application, and
    // leaders whose every partition to fetch is at its readable end.
    let mut awaiting_delivery: HashSet<i32> = HashSet::new();
    let mut only_caught_up: HashMap<i32, bool> = HashMap::new();
    for (tp, partition) in inputs.partitions.iter() {
        let fetching = matches!(partition.state, PartitionState::Fetching { .. });
        let buffered = (inputs.buffered)(tp);
        if fetching && !partition.paused && buffered {
            if let Some(leader) = metadata.leader(&tp.topic, tp.partition) {
                awaiting_delivery.insert(fetch_source(
                    partition,
                    leader,
                    metadata,
                    now,
                    inputs.leaders,
                ));
            }
        }
        let wants_fetch = fetching && !partition.paused && inputs.budget > 0 && !buffered;
        let wants_reset = matches!(partition.state, PartitionState::AwaitingReset { .. })
            && !inputs.resetting.contains(tp);
        if !wants_fetch && !wants_reset {
            continue;
        }
        let Some(leader) = metadata.leader(&tp.topic, tp.partition) else {
            plan.leaderless_topics.insert(tp.topic.to_string());
            if let Some(refused) = TopicRefused::in_metadata(metadata, &tp.topic) {
                let refused = PartitionError::Refused {
                    partition: tp.clone(),
                    error: refused.error,
                    hint: refused.hint,
                };
                plan.stops.push((partition.stamp, refused));
            } else if inputs.leaderless_refreshes >= GONE_AFTER_REFRESHES
                && topic_missing(metadata, &tp.topic)
            {
                let gone = PartitionError::TopicGone {
                    partition: tp.clone(),
                };
                plan.stops.push((partition.stamp, gone));
            }
            continue;
        };
        let current_leader_epoch = leader_epoch(metadata, tp);
        match partition.state {
            PartitionState::Fetching { position }
                if partition.needs_validation(current_leader_epoch) =>
            {
                match partition.retry_at {
                    _ if inputs.validating.contains(tp) => {}
                    Some(at) if at > now => wake(at),
                    _ => plan
                        .validations
                        .entry(leader)
                        .or_default()
                        .push(ValidateRequest {
                            tp: tp.clone(),
                            stamp: partition.stamp,
                            position,
                            position_epoch: partition.position_epoch.unwrap_or(-1),
                            leader_epoch: current_leader_epoch,
                        }),
                }
            }
            PartitionState::Fetching { position } => {
                let source = fetch_source(partition, leader, metadata, now, inputs.leaders);
                let slot = inputs.leaders.get(&source).copied().unwrap_or_default();
                if slot.ready(now) {
                    let caught_up = partition.readable_end.is_some_and(|end| position >= end);
                    let all = only_caught_up.entry(source).or_insert(true);
                    *all = *all && caught_up;
                    fetches.entry(source).or_default().push(Asked {
                        tp: tp.clone(),
                        stamp: partition.stamp,
                        position,
                        leader_epoch: current_leader_epoch,
                        position_epoch: partition.position_epoch.unwrap_or(-1),
                        from_read_replica: source != leader,
                    });
                } else if let Some(at) = slot.retry_at.filter(|at| *at > now) {
                    wake(at);
                }
            }
            PartitionState::AwaitingReset { cause } => match partition.retry_at {
                Some(at) if at > now => wake(at),
                _ => plan.resets.entry(leader).or_default().push(ResetRequest {
                    tp: tp.clone(),
                    stamp: partition.stamp,
                    cause,
                    committed: partition.committed,
                }),
            },
            _ => {}
        }
    }
    fetches.retain(|leader, _| {
        !(awaiting_delivery.contains(leader) && only_caught_up.get(leader) == Some(&true))
    });
    let per_leader = inputs.budget / fetches.len().max(1);
    plan.max_bytes = i32::try_from(per_leader)
        .unwrap_or(i32::MAX)
        .clamp(1, inputs.max_bytes_ceiling);
    plan.fetches = fetches;
    plan
}

/// The broker to fetch a partition from: the replica its leader named, while that choice is
/// fresh, the metadata still lists the broker and it is not backing off after a failure
/// (a dead replica stays named by its leader until the controller fences it, seconds later);
/// else the leader.
fn fetch_source(
    partition: &Partition,
    leader: i32,
    metadata: &Metadata,
    now: Instant,
    slots: &BTreeMap<i32, LeaderSlot>,
) -> i32 {
    let failing = |broker: i32| {
        slots
            .get(&broker)
            .is_some_and(|s| s.failed && s.retry_at.is_some_and(|at| at > now))
    };
    partition
        .read_replica
        .filter(|r| r.until > now && metadata.brokers.contains_key(&r.broker))
        .filter(|r| !failing(r.broker))
        .map_or(leader, |r| r.broker)
}

/// The topic is absent from the metadata, or the cluster says it does not exist.
fn topic_missing(metadata: &Metadata, topic: &str) -> bool {
    match metadata.topics.get(topic) {
        None => metadata.fetched_at.is_some(),
        Some(info) => matches!(
            info.error,
            Some(
                kafka_protocol::error::ResponseError::UnknownTopicOrPartition
                    | kafka_protocol::error::ResponseError::UnknownTopicId
            )
        ),
    }
}

/// The leader epoch the metadata gives a partition (-1: unknown).
pub fn leader_epoch(metadata: &Metadata, tp: &TopicPartition) -> i32 {
    metadata
        .topics
        .get(&*tp.topic)
        .and_then(|topic| topic.partitions.get(&tp.partition))
        .map_or(-1, |partition| partition.leader_epoch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{PartitionInfo, TopicInfo};
    use crate::fetch::partition::{ResetCause, StartAt};
    use crate::fetch::OffsetSpec;
    use kafka_protocol::error::ResponseError;

    fn tp(partition: i32) -> TopicPartition {
        TopicPartition::new("t", partition)
    }

    /// Topic `t` with these leaders (-1: none).
    fn metadata(leaders: &[i32]) -> Metadata {
        let partitions = leaders
            .iter()
            .enumerate()
            .map(|(p, leader)| {
                (
                    p as i32,
                    PartitionInfo {
                        partition: p as i32,
                        leader: *leader,
                        leader_epoch: 0,
                        replicas: vec![*leader],
                        isr: vec![*leader],
                        error: None,
                    },
                )
            })
            .collect();
        let topic = TopicInfo {
            name: "t".into(),
            topic_id: [0; 16],
            is_internal: false,
            error: None,
            partitions,
        };
        Metadata {
            topics: BTreeMap::from([("t".to_string(), topic)]),
            fetched_at: Some(Instant::now()),
            generation: 1,
            ..Metadata::default()
        }
    }

    /// Partitions 0..n of `t`, each fetching at offset 10.
    fn fetching(n: i32) -> Partitions {
        let mut partitions = Partitions::default();
        for p in 0..n {
            partitions.assign(tp(p), StartAt::Offset(10));
        }
        partitions
    }

    struct Fixture {
        now: Instant,
        partitions: Partitions,
        buffered: BTreeSet<TopicPartition>,
        budget: usize,
        metadata: Metadata,
        leaders: BTreeMap<i32, LeaderSlot>,
        leaderless_refreshes: u32,
    }

    impl Fixture {
        fn new(partitions: Partitions, metadata: Metadata) -> Fixture {
            Fixture {
                now: Instant::now(),
                partitions,
                buffered: BTreeSet::new(),
                budget: 64 << 20,
                metadata,
                leaders: BTreeMap::new(),
                leaderless_refreshes: 0,
            }
        }

        fn plan(&self) -> Plan {
            let buffered = |tp: &TopicPartition| self.buffered.contains(tp);
            let none = HashSet::new();
            plan(&Inputs {
                now: self.now,
                partitions: &self.partitions,
                buffered: &buffered,
                budget: self.budget,
                metadata: &self.metadata,
                leaders: &self.leaders,
                validating: &none,
                resetting: &none,
                leaderless_refreshes: self.leaderless_refreshes,
                max_bytes_ceiling: 50 << 20,
            })
        }
    }

    fn fetched(plan: &Plan) -> BTreeMap<i32, Vec<i32>> {
        plan.fetches
            .iter()
            .map(|(leader, asked)| (*leader, asked.iter().map(|a| a.tp.partition).collect()))
            .collect()
    }

    #[test]
    fn one_fetch_per_leader_with_its_partitions_sharing_the_budget() {
        let fixture = Fixture::new(fetching(4), metadata(&[1, 2, 1, 2]));
        let plan = fixture.plan();
        assert_eq!(
            fetched(&plan),
            BTreeMap::from([(1, vec![0, 2]), (2, vec![1, 3])])
        );
        assert_eq!(plan.max_bytes, 32 << 20, "two leaders share 64 MiB");
        assert!(plan.stops.is_empty() && plan.leaderless_topics.is_empty());
    }

    #[test]
    fn a_partition_goes_to_the_replica_its_leader_named_while_that_is_fresh_and_known() {
        use crate::cluster::BrokerInfo;
        use crate::fetch::partition::ReadReplica;
        let mut metadata = metadata(&[1, 1]);
        for id in [1, 2] {
            metadata.brokers.insert(
                id,
                BrokerInfo {
                    id,
                    host: "127.0.0.1".into(),
                    port: 9090 + id,
                    rack: None,
                },
            );
        }
        let mut fixture = Fixture::new(fetching(2), metadata);
        let until = fixture.now + Duration::from_secs(300);
        let stamp = fixture.partitions.get(&tp(0)).unwrap().stamp;
        fixture
            .partitions
            .set_read_replica(&tp(0), stamp, ReadReplica { broker: 2, until });
        let plan = fixture.plan();
        assert_eq!(fetched(&plan), BTreeMap::from([(1, vec![1]), (2, vec![0])]));
        assert!(plan.fetches[&2][0].from_read_replica);
        assert!(!plan.fetches[&1][0].from_read_replica);
        // Expired: back to the leader.
        fixture.now = until;
        assert_eq!(fetched(&fixture.plan()), BTreeMap::from([(1, vec![0, 1])]));
        // A replica backing off after a failure: the leader serves meanwhile.
        fixture.now = until - Duration::from_secs(2);
        let failed = LeaderSlot {
            fetching: false,
            retry_at: Some(fixture.now + Duration::from_millis(500)),
            failed: true,
        };
        fixture.leaders.insert(2, failed);
        assert_eq!(fetched(&fixture.plan()), BTreeMap::from([(1, vec![0, 1])]));
        fixture.now += Duration::from_millis(500);
        assert_eq!(
            fetched(&fixture.plan()),
            BTreeMap::from([(1, vec![1]), (2, vec![0])])
        );
        // A replica the metadata no longer lists: back to the leader.
        fixture.metadata.brokers.remove(&2);
        assert_eq!(fetched(&fixture.plan()), BTreeMap::from([(1, vec![0, 1])]));
    }

    #[test]
    fn paused_and_buffered_partitions_wait_and_a_full_buffer_stops_fetching() {
        let mut fixture = Fixture::new(fetching(3), metadata(&[1, 1, 1]));
        fixture.partitions.set_paused(&tp(0), true);
        fixture.buffered.insert(tp(1));
        assert_eq!(fetched(&fixture.plan()), BTreeMap::from([(1, vec![2])]));
        fixture.budget = 0;
        assert!(fixture.plan().fetches.is_empty());
        // Chunks of paused partitions do not count against the budget.
        assert_eq!(fetch_budget(100, 100, 40), 40);
        assert_eq!(fetch_budget(100, 150, 0), 0);
    }

    #[test]
    fn a_busy_or_backing_off_leader_waits_and_the_plan_wakes_when_it_may_go() {
        let mut fixture = Fixture::new(fetching(2), metadata(&[1, 2]));
        let later = fixture.now + Duration::from_millis(300);
        fixture.leaders.insert(
            1,
            LeaderSlot {
                fetching: true,
                retry_at: None,
                failed: false,
            },
        );
        fixture.leaders.insert(
            2,
            LeaderSlot {
                fetching: false,
                retry_at: Some(later),
                failed: false,
            },
        );
        let plan = fixture.plan();
        assert!(plan.fetches.is_empty());
        assert_eq!(plan.wake_at, Some(later));
        fixture.now = later;
        assert_eq!(fetched(&fixture.plan()), BTreeMap::from([(2, vec![1])]));
    }

    #[test]
    fn a_caught_up_fetch_waits_while_a_partition_of_its_leader_is_in_the_buffer() {
        let mut fixture = Fixture::new(fetching(2), metadata(&[1, 1]));
        let stamp = fixture.partitions.get(&tp(0)).unwrap().stamp;
        fixture.partitions.set_readable_end(&tp(0), stamp, 10);
        fixture.buffered.insert(tp(1));
        // Partition 0 is at its end: its fetch could only long-poll beside partition 1.
        assert!(fixture.plan().fetches.is_empty());
        // With records to read, it goes.
        fixture.partitions.set_readable_end(&tp(0), stamp, 20);
        assert_eq!(fetched(&fixture.plan()), BTreeMap::from([(1, vec![0])]));
    }

    #[test]
    fn a_partition_awaiting_a_reset_goes_to_its_leader_unless_one_is_in_flight() {
        let mut fixture = Fixture::new(fetching(2), metadata(&[1, 2]));
        fixture
            .partitions
            .reset(&tp(1), ResetCause::To(OffsetSpec::Earliest));
        let plan = fixture.plan();
        assert_eq!(fetched(&plan), BTreeMap::from([(1, vec![0])]));
        let resets: Vec<(i32, i32)> = plan
            .resets
            .iter()
            .flat_map(|(leader, r)| r.iter().map(move |r| (*leader, r.tp.partition)))
            .collect();
        assert_eq!(resets, [(2, 1)]);
        let in_flight = HashSet::from([tp(1)]);
        let buffered = |_: &TopicPartition| false;
        let again = super::plan(&Inputs {
            now: fixture.now,
            partitions: &fixture.partitions,
            buffered: &buffered,
            budget: fixture.budget,
            metadata: &fixture.metadata,
            leaders: &fixture.leaders,
            validating: &HashSet::new(),
            resetting: &in_flight,
            leaderless_refreshes: 0,
            max_bytes_ceiling: 50 << 20,
        });
        assert!(again.resets.is_empty(), "one reset in flight at a time");
    }

    #[test]
    fn a_leaderless_partition_asks_for_metadata_and_stops_when_refused_or_gone() {
        let mut fixture = Fixture::new(fetching(2), metadata(&[1, -1]));
        let plan = fixture.plan();
        assert_eq!(fetched(&plan), BTreeMap::from([(1, vec![0])]));
        assert_eq!(plan.leaderless_topics, BTreeSet::from(["t".to_string()]));
        assert!(
            plan.stops.is_empty(),
            "no leader for a while is not an error"
        );

        // The metadata refuses the topic: stop with the refusal, at once.
        fixture.metadata.topics.get_mut("t").unwrap().error =
            Some(ResponseError::TopicAuthorizationFailed);
        fixture
            .metadata
            .topics
            .get_mut("t")
            .unwrap()
            .partitions
            .clear();
        let plan = fixture.plan();
        assert_eq!(plan.stops.len(), 2);
        assert!(matches!(
            plan.stops[0].1,
            PartitionError::Refused {
                error: ResponseError::TopicAuthorizationFailed,
                ..
            }
        ));

        // Missing: only after enough refreshes in a row.
        fixture.metadata.topics.clear();
        fixture.leaderless_refreshes = GONE_AFTER_REFRESHES - 1;
        assert!(fixture.plan().stops.is_empty());
        fixture.leaderless_refreshes = GONE_AFTER_REFRESHES;
        let plan = fixture.plan();
        assert_eq!(plan.stops.len(), 2);
        assert!(matches!(plan.stops[0].1, PartitionError::TopicGone { .. }));
    }

    /// Property tests over random snapshots: partitions on up to 4 leaders (or none), some
    /// paused, some in the buffer, some at their end, leaders busy or backing off, a budget.
    mod properties {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        struct Snapshot {
            /// Per partition: leader (-1: none), paused, buffered, at its end.
            partitions: Vec<(i32, bool, bool, bool)>,
            /// Per leader 1..=4: fetching, backing off.
            slots: Vec<(bool, bool)>,
            budget: usize,
        }

        fn snapshot() -> impl Strategy<Value = Snapshot> {
            (
                prop::collection::vec(
                    (-1i32..=4, any::<bool>(), any::<bool>(), any::<bool>()),
                    1..24,
                ),
                prop::collection::vec((any::<bool>(), any::<bool>()), 4),
                prop_oneof![Just(0usize), 1usize..16, 1usize..(64 << 20)],
            )
                .prop_map(|(partitions, slots, budget)| Snapshot {
                    partitions,
                    slots,
                    budget,
                })
        }

        impl Snapshot {
            fn fixture(&self, ready_leaders: bool) -> Fixture {
                let leaders: Vec<i32> = self.partitions.iter().map(|p| p.0).collect();
                let mut fixture =
                    Fixture::new(fetching(self.partitions.len() as i32), metadata(&leaders));
                for (p, &(_, paused, buffered, at_end)) in self.partitions.iter().enumerate() {
                    let tp = tp(p as i32);
                    fixture.partitions.set_paused(&tp, paused);
                    if buffered {
                        fixture.buffered.insert(tp.clone());
                    }
                    let stamp = fixture.partitions.get(&tp).unwrap().stamp;
                    fixture
                        .partitions
                        .set_readable_end(&tp, stamp, if at_end { 10 } else { 20 });
                }
                if !ready_leaders {
                    for (index, &(busy, backing_off)) in self.slots.iter().enumerate() {
                        let slot = LeaderSlot {
                            fetching: busy,
                            retry_at: backing_off.then(|| fixture.now + Duration::from_secs(1)),
                            failed: false,
                        };
                        fixture.leaders.insert(index as i32 + 1, slot);
                    }
                }
                fixture.budget = self.budget;
                fixture
            }
        }

        proptest! {
            /// What is fetched is fetchable: not paused, not in the buffer, with a leader
            /// whose slot is free, once per leader and once per partition; nothing without
            /// budget; the fetches together stay within the budget (each answer may carry at
            /// least a byte).
            #[test]
            fn never_a_paused_or_buffered_partition_nor_past_the_budget(snapshot in snapshot()) {
                let fixture = snapshot.fixture(false);
                let plan = fixture.plan();
                let mut seen = BTreeSet::new();
                for (leader, asked) in &plan.fetches {
                    let slot = fixture.leaders.get(leader).copied().unwrap_or_default();
                    prop_assert!(slot.ready(fixture.now), "leader {leader} is busy: {slot:?}");
                    for a in asked {
                        let (want_leader, paused, buffered, _) =
                            snapshot.partitions[a.tp.partition as usize];
                        prop_assert!(!paused && !buffered, "{:?} fetched", a.tp);
                        prop_assert_eq!(want_leader, *leader);
                        prop_assert!(seen.insert(a.tp.clone()), "{:?} twice", a.tp);
                    }
                }
                if snapshot.budget == 0 {
                    prop_assert!(plan.fetches.is_empty());
                }
                if !plan.fetches.is_empty() {
                    let total = plan.max_bytes as usize * plan.fetches.len();
                    prop_assert!(total <= snapshot.budget.max(plan.fetches.len()));
                }
            }

            /// With free leaders and room in the buffer, a partition that is not fetched has a
            /// reason the rules name: paused, in the buffer, no leader, or its leader's fetch
            /// would only long-poll beside records waiting in the buffer. Once the application
            /// took what the buffer held, every partition with a leader that is not paused is
            /// fetched: none waits forever.
            #[test]
            fn every_fetchable_partition_is_fetched_once_the_buffer_is_taken(
                snapshot in snapshot(),
            ) {
                prop_assume!(snapshot.budget > 0);
                let fixture = snapshot.fixture(true);
                let plan = fixture.plan();
                let fetched: BTreeSet<i32> = plan
                    .fetches
                    .values()
                    .flatten()
                    .map(|a| a.tp.partition)
                    .collect();
                let waits_on_delivery = |leader: i32| {
                    let mine = || snapshot.partitions.iter().filter(|p| p.0 == leader && !p.1);
                    mine().any(|p| p.2) && mine().filter(|p| !p.2).all(|p| p.3)
                };
                for (p, &(leader, paused, buffered, _)) in snapshot.partitions.iter().enumerate() {
                    let excused = paused || buffered || leader < 0 || waits_on_delivery(leader);
                    prop_assert!(
                        fetched.contains(&(p as i32)) || excused,
                        "partition {p} (leader {leader}) not fetched: {snapshot:?}"
                    );
                }
                // The application takes the buffer: everything not paused goes.
                let mut taken = snapshot.clone();
                for partition in &mut taken.partitions {
                    partition.2 = false;
                }
                let plan = taken.fixture(true).plan();
                let fetched: BTreeSet<i32> = plan
                    .fetches
                    .values()
                    .flatten()
                    .map(|a| a.tp.partition)
                    .collect();
                for (p, &(leader, paused, _, _)) in taken.partitions.iter().enumerate() {
                    if leader >= 0 && !paused {
                        prop_assert!(fetched.contains(&(p as i32)), "partition {p} waits");
                    }
                }
            }
        }
    }
}
