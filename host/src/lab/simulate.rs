//! Runs an assignor through a scenario with the consumer's own rebalance logic.
//!
//! Each event is one rebalance, played the way the group plays it:
//! - **Eager:** every member gives up everything it owns (revoked), then the leader assigns
//!   over the whole group once; subscriptions still name what each member had.
//! - **Cooperative (KIP-429):** members join with what they own; the leader's assignment may
//!   not hand a partition to anyone while another member owns it, so members revoke only what
//!   moves away, and a second rebalance hands those partitions out.
//! - **Consumer protocol (KIP-848),** [`simulate_broker`]: the broker computes the next target
//!   assignment from the previous one ([`BrokerAssignor`]); each member revokes what it loses
//!   and takes what it gains on its own heartbeats, without a group-wide pause. One target per
//!   event (one round); revoked counts what changed hands, as in a cooperative round.
//!
//! The leader's decision is [`assign_group`], the very function the consumer's group leader
//! runs (the assignor, the same validation, the same fallback). Each member has an assignor
//! instance of its own for what members do themselves: the user data in its subscription, and
//! the `on_assignment` hook after each round. The broker's assignors have no client side:
//! nothing runs in the members, and their answer is only checked (a failed check is a bug in
//! the simulation, reported as an error).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use wasmkafka_policy::assign::{self, Group, Member, PartitionInfo};

use crate::group::assignor::{assign_group, Assignor, Builtin, RebalanceProtocol};

use super::broker::BrokerAssignor;
use super::scenario::{Event, MemberSpec, Scenario};

/// Makes an assignor instance with these settings (the leader's, or one member's).
pub type MakeAssignor = dyn Fn(&BTreeMap<String, String>) -> anyhow::Result<Arc<dyn Assignor>>;

/// One partition.
pub type Tp = (String, i32);

/// What each member gave up in one round.
type Revoked = Vec<(String, Vec<Tp>)>;

/// Partitions per member (or per topic): the fewest and the most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Spread {
    pub min: usize,
    pub max: usize,
}

/// What one event did under one assignor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepReport {
    pub step: usize,
    pub event: String,
    pub members: usize,
    pub partitions: usize,
    /// Rebalances it took (2 when a cooperative round revoked something; always 1 under the
    /// broker's assignors: one new target, no group-wide rebalance).
    pub rounds: usize,
    /// Partitions per member, over all topics.
    pub balance: Spread,
    /// Per topic, partitions per member subscribed to it.
    pub balance_per_topic: BTreeMap<String, Spread>,
    /// Partitions a member kept through the event but lost to another (or to nobody).
    pub moved: usize,
    /// The `moved` partitions by name, with the member they left and the one they went to.
    pub moved_partitions: Vec<Moved>,
    /// Partitions members gave up (their listeners heard `on_revoked`).
    pub revoked: usize,
    /// Partitions of crashed members (nobody revoked them).
    pub lost: usize,
    /// Subscribed partitions nobody owns after the event.
    pub unassigned: usize,
    /// Assigned partitions with a replica on their member's rack, of those where both racks
    /// are known (`None`: no racks in the scenario).
    pub rack_local: Option<f64>,
    /// Time in the leader's decision per round.
    pub assign_seconds: Vec<f64>,
    /// Why the assignor's answer was replaced by the fallback's, per round where it was.
    pub fell_back: Vec<String>,
    /// Who owns what after the step and who gave up what in it (the HTML report's grids).
    #[serde(skip)]
    pub cells: StepCells,
}

/// A partition that moved in a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Moved {
    pub topic: String,
    pub partition: i32,
    pub from: String,
    /// `None`: nobody owns it after the step.
    pub to: Option<String>,
}

/// One member's row of a step's grid.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberCells {
    pub id: String,
    pub rack: Option<String>,
    /// It left (or crashed) in this step: it owns nothing after it.
    pub gone: bool,
    pub owned: Vec<Tp>,
    /// What it gave up in the step (its listener heard `on_revoked`), round by round.
    pub revoked: Vec<Tp>,
    /// What it held when it crashed.
    pub lost: Vec<Tp>,
}

/// The group after one step, member by member (members in the group, then those gone in it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StepCells {
    /// Topics and their partition counts after the step.
    pub topics: Vec<(String, usize)>,
    pub members: Vec<MemberCells>,
}

/// One assignor's run through the scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AssignorRun {
    pub assignor: String,
    /// Where it comes from: `built-in`, the plugin file, or `broker-side (Apache Kafka's
    /// NAME, simulated)`.
    pub source: String,
    /// `eager` or `cooperative` (classic protocol, the group leader assigns), or `consumer`
    /// (KIP-848, the broker assigns).
    pub protocol: &'static str,
    pub steps: Vec<StepReport>,
}

struct LiveMember {
    spec: MemberSpec,
    owned: BTreeSet<Tp>,
    generation: i32,
    /// The member's own assignor instance (classic protocol; none under the broker's).
    assignor: Option<Arc<dyn Assignor>>,
}

/// Who decides each rebalance.
enum Decider<'a> {
    /// Classic protocol: the group leader runs `leader` through [`assign_group`]; `make`
    /// gives each member its own instance.
    Leader {
        make: &'a MakeAssignor,
        leader: Arc<dyn Assignor>,
        fallback: Builtin,
    },
    /// Consumer protocol (KIP-848): the broker computes the target.
    Broker(BrokerAssignor),
}

/// The group as it evolves.
struct Simulation<'a> {
    scenario: &'a Scenario,
    decider: Decider<'a>,
    topics: BTreeMap<String, Vec<Vec<String>>>,
    members: BTreeMap<String, LiveMember>,
    generation: i32,
}

/// Runs the scenario's start and every event under the assignor `make` builds (`source` says
/// where it comes from, for the report).
pub fn simulate(
    scenario: &Scenario,
    make: &MakeAssignor,
    source: &str,
    fallback: Builtin,
) -> anyhow::Result<AssignorRun> {
    let leader = make(&scenario.settings)?;
    let name = leader.name().to_string();
    let protocol = match leader.protocol() {
        RebalanceProtocol::Eager => "eager",
        RebalanceProtocol::Cooperative => "cooperative",
    };
    let decider = Decider::Leader {
        make,
        leader,
        fallback,
    };
    run(scenario, decider, name, source.to_string(), protocol)
}

/// Runs the scenario's start and every event as a consumer-protocol group (KIP-848) whose
/// broker assigns with `assignor`.
pub fn simulate_broker(
    scenario: &Scenario,
    assignor: BrokerAssignor,
) -> anyhow::Result<AssignorRun> {
    let source = format!(
        "broker-side: Apache Kafka's `{}`, simulated",
        assignor.kafka_name()
    );
    run(
        scenario,
        Decider::Broker(assignor),
        assignor.name().to_string(),
        source,
        "consumer",
    )
}

fn run(
    scenario: &Scenario,
    decider: Decider,
    assignor: String,
    source: String,
    protocol: &'static str,
) -> anyhow::Result<AssignorRun> {
    let mut simulation = Simulation {
        scenario,
        decider,
        topics: scenario
            .topics
            .iter()
            .map(|t| (t.name.clone(), t.partitions.clone()))
            .collect(),
        members: BTreeMap::new(),
        generation: 0,
    };
    let mut steps = Vec::new();
    let events = std::iter::once(Event::Start).chain(scenario.events.iter().cloned());
    for (step, event) in events.enumerate() {
        steps.push(simulation.step(step, &event)?);
    }
    Ok(AssignorRun {
        assignor,
        source,
        protocol,
        steps,
    })
}

impl Simulation<'_> {
    fn join(&mut self, spec: &MemberSpec) -> anyhow::Result<()> {
        let assignor = match &self.decider {
            Decider::Leader { make, .. } => Some(make(&spec.settings)?),
            Decider::Broker(_) => None,
        };
        self.members.insert(
            spec.id.clone(),
            LiveMember {
                spec: spec.clone(),
                owned: spec.owned.iter().cloned().collect(),
                generation: if spec.owned.is_empty() { -1 } else { 0 },
                assignor,
            },
        );
        Ok(())
    }

    fn owners(&self) -> BTreeMap<Tp, String> {
        self.members
            .iter()
            .flat_map(|(id, m)| m.owned.iter().map(move |tp| (tp.clone(), id.clone())))
            .collect()
    }

    fn step(&mut self, step: usize, event: &Event) -> anyhow::Result<StepReport> {
        let mut revoked = 0;
        let mut lost = 0;
        // Rows of members gone in this step, and what each member gave up.
        let mut gone: Vec<MemberCells> = Vec::new();
        let mut revoked_by: BTreeMap<String, Vec<Tp>> = BTreeMap::new();
        match event {
            Event::Start => {
                for spec in &self.scenario.members {
                    self.join(spec)?;
                }
            }
            Event::Join(specs) => {
                for spec in specs {
                    self.join(spec)?;
                }
            }
            Event::Leave(ids) => {
                for id in ids {
                    if let Some(member) = self.members.remove(id) {
                        revoked += member.owned.len();
                        gone.push(MemberCells {
                            id: id.clone(),
                            rack: member.spec.rack.clone(),
                            gone: true,
                            revoked: member.owned.into_iter().collect(),
                            ..MemberCells::default()
                        });
                    }
                }
            }
            Event::Crash(ids) => {
                for id in ids {
                    if let Some(member) = self.members.remove(id) {
                        lost += member.owned.len();
                        gone.push(MemberCells {
                            id: id.clone(),
                            rack: member.spec.rack.clone(),
                            gone: true,
                            lost: member.owned.into_iter().collect(),
                            ..MemberCells::default()
                        });
                    }
                }
            }
            Event::Grow { topic, partitions } => {
                let now = self.topics.get(topic).map_or(0, Vec::len);
                let grown = self.scenario.grown_partitions(now, *partitions);
                self.topics.entry(topic.clone()).or_default().extend(grown);
            }
        }
        let kept_before = self.owners();
        // Who revokes only what moves: cooperative members, and every member under the broker.
        let (cooperative, second_round) = match &self.decider {
            Decider::Leader { leader, .. } => {
                let cooperative = leader.protocol() == RebalanceProtocol::Cooperative;
                (cooperative, cooperative)
            }
            Decider::Broker(_) => (true, false),
        };
        if !cooperative {
            // Eager: every member gives up everything first; its subscription still names
            // what it had (what a sticky assignor keeps where it was).
            revoked += self.members.values().map(|m| m.owned.len()).sum::<usize>();
            for (id, member) in &self.members {
                revoked_by.insert(id.clone(), member.owned.iter().cloned().collect());
            }
        }
        let mut assign_seconds = Vec::new();
        let mut fell_back = Vec::new();
        let mut rounds = 0;
        loop {
            rounds += 1;
            let (took, failure, revoked_now) = self.round()?;
            assign_seconds.push(took.as_secs_f64());
            fell_back.extend(failure);
            let revoked_now: usize = if cooperative {
                revoked_now
                    .into_iter()
                    .map(|(id, tps)| {
                        let count = tps.len();
                        revoked_by.entry(id).or_default().extend(tps);
                        count
                    })
                    .sum()
            } else {
                0
            };
            if cooperative {
                revoked += revoked_now;
            }
            // A cooperative round that revoked something is followed by one that hands it out;
            // the broker's target hands it out in the same round.
            if !(second_round && revoked_now > 0) || rounds == 2 {
                break;
            }
        }
        let owners = self.owners();
        let moved_partitions: Vec<Moved> = kept_before
            .iter()
            .filter(|(tp, owner)| owners.get(*tp) != Some(*owner))
            .map(|((topic, partition), from)| Moved {
                topic: topic.clone(),
                partition: *partition,
                from: from.clone(),
                to: owners.get(&(topic.clone(), *partition)).cloned(),
            })
            .collect();
        let moved = moved_partitions.len();
        let cells = self.cells(gone, revoked_by);
        Ok(StepReport {
            step,
            event: event.to_string(),
            members: self.members.len(),
            partitions: self.topics.values().map(Vec::len).sum(),
            rounds,
            balance: self.balance(None),
            balance_per_topic: self
                .topics
                .keys()
                .map(|topic| (topic.clone(), self.balance(Some(topic))))
                .collect(),
            moved,
            moved_partitions,
            revoked,
            lost,
            unassigned: self
                .subscribed_partitions()
                .filter(|tp| !owners.contains_key(tp))
                .count(),
            rack_local: self.rack_locality(),
            assign_seconds,
            fell_back,
            cells,
        })
    }

    /// The grid rows after a step: members in the group, then `gone`.
    fn cells(
        &self,
        gone: Vec<MemberCells>,
        mut revoked_by: BTreeMap<String, Vec<Tp>>,
    ) -> StepCells {
        let mut members: Vec<MemberCells> = self
            .members
            .iter()
            .map(|(id, m)| MemberCells {
                id: id.clone(),
                rack: m.spec.rack.clone(),
                gone: false,
                owned: m.owned.iter().cloned().collect(),
                revoked: revoked_by.remove(id).unwrap_or_default(),
                lost: Vec::new(),
            })
            .collect();
        members.extend(gone);
        StepCells {
            topics: self
                .topics
                .iter()
                .map(|(name, partitions)| (name.clone(), partitions.len()))
                .collect(),
            members,
        }
    }

    /// One rebalance: subscriptions in, the leader's decision (or the broker's target), each
    /// member takes its share. Returns the time the decision took, why it fell back if it
    /// did, and what each member revoked.
    fn round(&mut self) -> anyhow::Result<(Duration, Option<String>, Revoked)> {
        let group = self.group();
        let started = Instant::now();
        let (assignment, failure) = match &self.decider {
            Decider::Leader {
                leader, fallback, ..
            } => {
                let assigned = assign_group(leader.as_ref(), *fallback, &group);
                let failure = assigned.fell_back.map(|error| error.to_string());
                (assigned.assignment, failure)
            }
            Decider::Broker(broker) => {
                let assignment = broker.assign(&group);
                // The broker's answer may move owned partitions (members revoke them first),
                // but must leave nothing out.
                assign::validate(&group, &assignment, false)
                    .map_err(|invalid| anyhow::anyhow!("{invalid}"))
                    .with_context(|| format!("{} (simulated) answered", broker.name()))?;
                (assignment, None)
            }
        };
        let took = started.elapsed();
        self.generation += 1;
        let mut revoked = Vec::new();
        for (id, member) in self.members.iter_mut() {
            let share = assignment.get(id).cloned().unwrap_or_default();
            let new: BTreeSet<Tp> = share.iter().map(|(t, p)| (t.to_string(), p)).collect();
            let gave_up: Vec<Tp> = member.owned.difference(&new).cloned().collect();
            if !gave_up.is_empty() {
                revoked.push((id.clone(), gave_up));
            }
            member.owned = new;
            member.generation = self.generation;
            if let Some(assignor) = &member.assignor {
                assignor.on_assignment(&share, self.generation);
            }
        }
        Ok((took, failure, revoked))
    }

    /// The group as the leader sees it in JoinGroup.
    fn group(&self) -> Group {
        let members = self
            .members
            .values()
            .map(|m| {
                let mut owned: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                for (topic, partition) in &m.owned {
                    owned.entry(topic.clone()).or_default().push(*partition);
                }
                Member {
                    member_id: m.spec.id.clone(),
                    instance_id: m.spec.instance_id.clone(),
                    topics: m.spec.topics.clone(),
                    user_data: m
                        .assignor
                        .as_ref()
                        .map(|a| a.user_data(&m.spec.topics))
                        .unwrap_or_default(),
                    owned,
                    generation: if m.owned.is_empty() { -1 } else { m.generation },
                    rack: m.spec.rack.clone(),
                }
            })
            .collect();
        let subscribed: BTreeSet<&str> = self
            .members
            .values()
            .flat_map(|m| m.spec.topics.iter().map(String::as_str))
            .collect();
        let topics = self
            .topics
            .iter()
            .filter(|(name, _)| subscribed.contains(name.as_str()))
            .map(|(name, partitions)| {
                let infos = partitions
                    .iter()
                    .enumerate()
                    .map(|(p, racks)| PartitionInfo {
                        partition: p as i32,
                        racks: racks.clone(),
                    })
                    .collect();
                (name.clone(), infos)
            })
            .collect();
        Group {
            members,
            topics,
            settings: BTreeMap::new(),
        }
    }

    fn subscribed_partitions(&self) -> impl Iterator<Item = Tp> + '_ {
        let subscribed: BTreeSet<&String> =
            self.members.values().flat_map(|m| &m.spec.topics).collect();
        self.topics
            .iter()
            .filter(move |(name, _)| subscribed.contains(name))
            .flat_map(|(name, partitions)| (0..partitions.len()).map(|p| (name.clone(), p as i32)))
    }

    /// Partitions per member (of `topic`, among the members subscribed to it).
    fn balance(&self, topic: Option<&String>) -> Spread {
        let counts: Vec<usize> = self
            .members
            .values()
            .filter(|m| topic.is_none_or(|t| m.spec.topics.contains(t)))
            .map(|m| {
                m.owned
                    .iter()
                    .filter(|(t, _)| topic.is_none_or(|topic| t == topic))
                    .count()
            })
            .collect();
        Spread {
            min: counts.iter().copied().min().unwrap_or(0),
            max: counts.iter().copied().max().unwrap_or(0),
        }
    }

    fn rack_locality(&self) -> Option<f64> {
        let mut known = 0usize;
        let mut local = 0usize;
        for member in self.members.values() {
            let Some(rack) = &member.spec.rack else {
                continue;
            };
            for (topic, partition) in &member.owned {
                let Some(racks) = self
                    .topics
                    .get(topic)
                    .and_then(|t| t.get(*partition as usize))
                else {
                    continue;
                };
                if racks.is_empty() {
                    continue;
                }
                known += 1;
                local += usize::from(racks.contains(rack));
            }
        }
        (known > 0).then(|| local as f64 / known as f64)
    }
}

/// The built-in assignors as instance makers (settings do not matter to them).
pub fn builtin(builtin: Builtin) -> Box<MakeAssignor> {
    Box::new(move |_| Ok(builtin.into_assignor()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_none(scenario: &Scenario) -> AssignorRun {
        run(scenario, Builtin::Range)
    }

    fn run(scenario: &Scenario, builtin_assignor: Builtin) -> AssignorRun {
        simulate(
            scenario,
            &*builtin(builtin_assignor),
            "built-in",
            Builtin::Range,
        )
        .unwrap()
    }

    /// Three members on one topic of 6, then a fourth joins, then one crashes: numbers worked
    /// out by hand below.
    fn scenario() -> Scenario {
        let mut scenario = Scenario::from_flags(3, &["t:6".into()], 0, 1).unwrap();
        scenario.push_events(&["join 1", "crash m001"]).unwrap();
        scenario
    }

    #[test]
    fn range_is_eager_every_member_revokes_everything() {
        let run = run(&scenario(), Builtin::Range);
        assert_eq!(run.protocol, "eager");
        let start = &run.steps[0];
        // 6 over 3: 2 each; nothing owned before, so nothing revoked or moved.
        assert_eq!(
            (start.balance, start.moved, start.revoked, start.unassigned),
            (Spread { min: 2, max: 2 }, 0, 0, 0)
        );
        // A fourth member: range gives m000 0-1, m001 2-3, m002 4, m003 5. Everyone revokes
        // all 6 first; m001 keeps 2-3, m002 had 4-5 (keeps 4, loses 5): 1 moved.
        let join = &run.steps[1];
        assert_eq!(join.rounds, 1);
        assert_eq!(join.revoked, 6);
        assert_eq!(join.moved, 1);
        assert_eq!(join.balance, Spread { min: 1, max: 2 });
        // m001 crashes with 2-3: lost 2. Range over m000, m002, m003: 0-1, 2-3, 4-5. Each
        // revokes its own (2 + 1 + 1 = 4 revoked); m002 had 4 (now m003's), m003 had 5 (keeps
        // 5? no: m003 gets 4-5, keeps 5); so m002's 4 moved: 1.
        let crash = &run.steps[2];
        assert_eq!((crash.lost, crash.revoked), (2, 4));
        assert_eq!(crash.moved, 1);
        assert_eq!(crash.balance, Spread { min: 2, max: 2 });
    }

    #[test]
    fn cooperative_sticky_revokes_only_what_moves_in_two_rounds() {
        let run = run(&scenario(), Builtin::CooperativeSticky);
        assert_eq!(run.protocol, "cooperative");
        let join = &run.steps[1];
        // 6 over 4 members is 2, 2, 1, 1: one member gives one partition to the newcomer
        // (two rounds: revoke, then hand over), nothing else moves.
        assert_eq!(join.rounds, 2);
        assert_eq!(join.revoked, 1);
        assert_eq!(join.moved, 1);
        assert_eq!(join.unassigned, 0);
        assert_eq!(join.balance, Spread { min: 1, max: 2 });
        // The crash: m001 had 2 or 1, and the others end at 2 each without revoking.
        let crash = &run.steps[2];
        assert_eq!((crash.revoked, crash.moved), (0, 0));
        assert!(crash.lost == 1 || crash.lost == 2, "lost {}", crash.lost);
        assert_eq!(crash.rounds, 1);
        assert_eq!(crash.unassigned, 0);
        assert_eq!(crash.balance, Spread { min: 2, max: 2 });
    }

    #[test]
    fn an_eager_sticky_assignor_keeps_partitions_where_they_were() {
        let run = run(&scenario(), Builtin::Sticky);
        let join = &run.steps[1];
        // Everyone revokes all 6, but only the one partition the newcomer needs moves.
        assert_eq!((join.revoked, join.moved), (6, 1));
        // m001's partitions are lost; the survivors keep theirs (revoking them all first).
        let crash = &run.steps[2];
        assert_eq!(crash.moved, 0);
        assert_eq!(crash.revoked, 6 - crash.lost);
    }

    #[test]
    fn broker_uniform_moves_only_what_balance_needs_in_one_round() {
        let run = simulate_broker(&scenario(), BrokerAssignor::Uniform).unwrap();
        assert_eq!(run.assignor, "broker-uniform");
        assert_eq!(run.protocol, "consumer");
        let start = &run.steps[0];
        assert_eq!(
            (start.balance, start.moved, start.revoked, start.rounds),
            (Spread { min: 2, max: 2 }, 0, 0, 1)
        );
        // m000 0-1, m001 2-3, m002 4-5. A fourth member: 6 over 4 is 2, 2, 1, 1; m000 and
        // m001 keep their extra partition, m002 gives 5 to m003. One partition revoked (not
        // all six, as eager members would), handed over in the same round.
        let join = &run.steps[1];
        assert_eq!(
            (join.rounds, join.revoked, join.moved, join.unassigned),
            (1, 1, 1, 0)
        );
        assert_eq!(join.balance, Spread { min: 1, max: 2 });
        // m001 crashes with 2-3 (lost); m002 and m003 take one each, nobody revokes.
        let crash = &run.steps[2];
        assert_eq!(
            (crash.lost, crash.revoked, crash.moved, crash.rounds),
            (2, 0, 0, 1)
        );
        assert_eq!(crash.balance, Spread { min: 2, max: 2 });
        assert!(run.steps.iter().all(|s| s.fell_back.is_empty()));
    }

    #[test]
    fn broker_range_makes_the_ranges_of_range_but_revokes_only_what_moves() {
        let broker = simulate_broker(&scenario(), BrokerAssignor::Range).unwrap();
        let classic = run(&scenario(), Builtin::Range);
        for (b, c) in broker.steps.iter().zip(&classic.steps) {
            assert_eq!((b.balance, b.moved, b.lost), (c.balance, c.moved, c.lost));
            // Nobody gives up what it keeps: revoked is what moved (and, on a crash, the
            // lost partitions are nobody's to revoke).
            assert_eq!(b.revoked, b.moved, "step {}", b.step);
        }
        // The join: eager range revokes all 6 for 1 that moves; the broker revokes the 1.
        assert_eq!((classic.steps[1].revoked, broker.steps[1].revoked), (6, 1));
        // The crash of m001 (2-3): range over m000, m002, m003 gives 0-1, 2-3, 4-5, so m002's
        // 4 goes to m003.
        assert_eq!((classic.steps[2].revoked, broker.steps[2].revoked), (4, 1));
    }

    #[test]
    fn broker_uniform_balances_totals_when_subscriptions_differ() {
        // Start (homogeneous, 8 over 2, topics in name order): m000 t0-3, m001 u0-3. m002
        // joins for u only: the heterogeneous plan. u: m001 gives u3, u2 to m002 (4, 0 -> 2,
        // 2; m000 has no u to give). Then t: m000 (4) gives t3 to m001 (2). Totals 3, 3, 2;
        // three partitions moved, each revoked by its old owner in the same round.
        let mut scenario = Scenario::from_flags(2, &["t:4".into(), "u:4".into()], 0, 1).unwrap();
        scenario.push_events(&["join 1 topics=u"]).unwrap();
        let run = simulate_broker(&scenario, BrokerAssignor::Uniform).unwrap();
        let join = &run.steps[1];
        assert_eq!(
            (join.rounds, join.moved, join.revoked, join.unassigned),
            (1, 3, 3, 0)
        );
        assert_eq!(join.balance, Spread { min: 2, max: 3 });
        // Totals are what it balances: m000 subscribes to u and holds none of it.
        assert_eq!(join.balance_per_topic["u"], Spread { min: 0, max: 2 });
    }

    #[test]
    fn rack_locality_counts_members_on_a_replica_rack() {
        // Two racks, one replica per partition: partition p on rack p % 2; members m000 (r0),
        // m001 (r1). Range gives m000 0-1 (one local), m001 2-3 (one local): 50%.
        let scenario = Scenario::from_flags(2, &["t:4".into()], 2, 1).unwrap();
        let run = run(&scenario, Builtin::Range);
        assert_eq!(run.steps[0].rack_local, Some(0.5));
        let none = Scenario::from_flags(2, &["t:4".into()], 0, 1).unwrap();
        assert_eq!(run_none(&none).steps[0].rack_local, None);
    }

    #[test]
    fn a_topic_that_grows_is_spread_over_the_members() {
        let mut scenario = Scenario::from_flags(2, &["t:2".into()], 0, 1).unwrap();
        scenario.push_events(&["grow t:6"]).unwrap();
        let run = run(&scenario, Builtin::CooperativeSticky);
        let grow = &run.steps[1];
        assert_eq!(grow.partitions, 6);
        assert_eq!((grow.moved, grow.revoked, grow.unassigned), (0, 0, 0));
        assert_eq!(grow.balance, Spread { min: 3, max: 3 });
    }
}
