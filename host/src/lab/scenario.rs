//! A group to simulate: topics (partitions and the racks of their replicas), members
//! (subscriptions, racks, owned partitions, plugin settings) and the events that follow.
//!
//! A scenario comes from a file (TOML or JSON, by extension) or from flags
//! (`--members 10 --topics orders:64,audit:8 --racks 3 --step "join 2"`). Events are written
//! the same way in both: `join N [topics=a,b] [rack=r]`, `leave ID[,ID...]`,
//! `crash ID[,ID...]`, `grow TOPIC:PARTITIONS`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use anyhow::{bail, Context};
use serde::Deserialize;

/// One topic: the racks of each partition's replicas (empty lists when racks are not given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: Vec<Vec<String>>,
}

/// One member as it joins.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberSpec {
    pub id: String,
    pub instance_id: Option<String>,
    pub topics: Vec<String>,
    pub rack: Option<String>,
    /// Partitions it owns when the simulation starts (a group already running).
    pub owned: Vec<(String, i32)>,
    /// Its own plugin settings (what it announces in its subscription's user data).
    pub settings: BTreeMap<String, String>,
}

/// Something that happens to the group; each one is a rebalance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The scenario's members form the group.
    Start,
    /// New members join.
    Join(Vec<MemberSpec>),
    /// Members leave cleanly: they give their partitions up (revoked).
    Leave(Vec<String>),
    /// Members vanish (the group notices at the session timeout): their partitions are lost,
    /// nobody revokes them.
    Crash(Vec<String>),
    /// A topic gets more partitions.
    Grow { topic: String, partitions: usize },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Start => f.write_str("start"),
            Event::Join(members) => write!(f, "join {}", members.len()),
            Event::Leave(ids) => write!(f, "leave {}", ids.join(",")),
            Event::Crash(ids) => write!(f, "crash {}", ids.join(",")),
            Event::Grow { topic, partitions } => write!(f, "grow {topic}:{partitions}"),
        }
    }
}

/// The whole simulation input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    pub topics: Vec<TopicSpec>,
    pub members: Vec<MemberSpec>,
    /// The events after the start, in order.
    pub events: Vec<Event>,
    /// Racks replicas are spread over (0: no racks).
    pub racks: usize,
    /// Replicas per partition when racks are generated.
    pub replication: usize,
    /// Settings for the assignor the leader runs.
    pub settings: BTreeMap<String, String>,
}

/// How partitions get replica racks when a scenario does not list them: partition `p` has
/// replicas on racks `p, p+1, ... (mod racks)`.
fn generated_racks(partition: usize, racks: usize, replication: usize) -> Vec<String> {
    if racks == 0 {
        return Vec::new();
    }
    let mut chosen: BTreeSet<String> = BTreeSet::new();
    for replica in 0..replication.clamp(1, racks) {
        chosen.insert(rack_name((partition + replica) % racks));
    }
    chosen.into_iter().collect()
}

fn rack_name(index: usize) -> String {
    format!("r{index}")
}

/// `NAME:PARTITIONS`.
pub fn parse_topic(spec: &str) -> anyhow::Result<(String, usize)> {
    let (name, count) = spec
        .rsplit_once(':')
        .with_context(|| format!("`{spec}` is not TOPIC:PARTITIONS (e.g. orders:64)"))?;
    let count: usize = count
        .parse()
        .ok()
        .filter(|c| *c > 0)
        .with_context(|| format!("`{spec}`: the partition count must be a positive number"))?;
    if name.is_empty() {
        bail!("`{spec}`: the topic name is empty");
    }
    Ok((name.to_string(), count))
}

impl Scenario {
    /// A scenario from flags: `members` members named m000.. subscribed to every topic, racks
    /// handed out round robin.
    pub fn from_flags(
        members: usize,
        topics: &[String],
        racks: usize,
        replication: usize,
    ) -> anyhow::Result<Scenario> {
        if topics.is_empty() {
            bail!("name at least one topic: --topics orders:64,audit:8");
        }
        let mut scenario = Scenario {
            topics: Vec::new(),
            members: Vec::new(),
            events: Vec::new(),
            racks,
            replication,
            settings: BTreeMap::new(),
        };
        for spec in topics {
            let (name, count) = parse_topic(spec)?;
            scenario.add_topic(&name, count)?;
        }
        scenario.members = scenario.new_members(members, None, None, &BTreeSet::new());
        Ok(scenario)
    }

    fn add_topic(&mut self, name: &str, count: usize) -> anyhow::Result<()> {
        if self.topics.iter().any(|t| t.name == name) {
            bail!("topic `{name}` is named twice");
        }
        let partitions = (0..count)
            .map(|p| generated_racks(p, self.racks, self.replication))
            .collect();
        self.topics.push(TopicSpec {
            name: name.to_string(),
            partitions,
        });
        Ok(())
    }

    /// Every topic's name.
    pub fn topic_names(&self) -> Vec<String> {
        self.topics.iter().map(|t| t.name.clone()).collect()
    }

    /// `count` new members with fresh ids (m000, m001, ... never reused), subscribed to
    /// `topics` (all by default), on `rack` (round robin over the racks by default).
    fn new_members(
        &self,
        count: usize,
        topics: Option<Vec<String>>,
        rack: Option<String>,
        taken: &BTreeSet<String>,
    ) -> Vec<MemberSpec> {
        let mut members = Vec::new();
        let mut index = 0;
        while members.len() < count {
            let id = format!("m{index:03}");
            index += 1;
            if taken.contains(&id) || self.members.iter().any(|m| m.id == id) {
                continue;
            }
            let rack = rack
                .clone()
                .or_else(|| (self.racks > 0).then(|| rack_name((index - 1) % self.racks)));
            members.push(MemberSpec {
                id,
                topics: topics.clone().unwrap_or_else(|| self.topic_names()),
                rack,
                ..MemberSpec::default()
            });
        }
        members
    }

    /// Parses events and appends them, checking names as it goes (members must exist when
    /// they leave; topics must exist when they grow, and only grow).
    pub fn push_events<S: AsRef<str>>(&mut self, events: &[S]) -> anyhow::Result<()> {
        let mut live: BTreeSet<String> = self.members.iter().map(|m| m.id.clone()).collect();
        let mut sizes: BTreeMap<String, usize> = self
            .topics
            .iter()
            .map(|t| (t.name.clone(), t.partitions.len()))
            .collect();
        let mut ever: BTreeSet<String> = live.clone();
        for event in &self.events {
            apply_names(event, &mut live, &mut ever, &mut sizes);
        }
        for text in events {
            let event = self
                .parse_event(text.as_ref(), &live, &ever, &sizes)
                .with_context(|| format!("in step `{}`", text.as_ref()))?;
            apply_names(&event, &mut live, &mut ever, &mut sizes);
            self.events.push(event);
        }
        Ok(())
    }

    fn parse_event(
        &self,
        text: &str,
        live: &BTreeSet<String>,
        ever: &BTreeSet<String>,
        sizes: &BTreeMap<String, usize>,
    ) -> anyhow::Result<Event> {
        let mut words = text.split_whitespace();
        let verb = words.next().context("an empty step")?;
        let rest: Vec<&str> = words.collect();
        let ids = |rest: &[&str]| -> anyhow::Result<Vec<String>> {
            let ids: Vec<String> = rest
                .iter()
                .flat_map(|w| w.split(','))
                .filter(|id| !id.is_empty())
                .map(str::to_string)
                .collect();
            if ids.is_empty() {
                bail!("name the members: `{verb} m001,m002`");
            }
            for id in &ids {
                if !live.contains(id) {
                    bail!(
                        "no member `{id}` is in the group then (members: {})",
                        live.iter().cloned().collect::<Vec<_>>().join(",")
                    );
                }
            }
            Ok(ids)
        };
        match verb {
            "join" => {
                let (count, options) = match rest.split_first() {
                    Some((count, options)) => (
                        count
                            .parse::<usize>()
                            .ok()
                            .filter(|c| *c > 0)
                            .with_context(|| format!("`{count}` is not a member count"))?,
                        options,
                    ),
                    None => bail!("say how many: `join 2`"),
                };
                let mut topics = None;
                let mut rack = None;
                for option in options {
                    match option.split_once('=') {
                        Some(("topics", list)) => {
                            let list: Vec<String> = list.split(',').map(str::to_string).collect();
                            for topic in &list {
                                if !sizes.contains_key(topic) {
                                    bail!("no topic `{topic}` in the scenario");
                                }
                            }
                            topics = Some(list);
                        }
                        Some(("rack", name)) => rack = Some(name.to_string()),
                        _ => bail!("`{option}`: join takes topics=a,b and rack=r"),
                    }
                }
                Ok(Event::Join(self.new_members(count, topics, rack, ever)))
            }
            "leave" => Ok(Event::Leave(ids(&rest)?)),
            "crash" => Ok(Event::Crash(ids(&rest)?)),
            "grow" => {
                let [spec] = rest.as_slice() else {
                    bail!("`grow TOPIC:PARTITIONS`, e.g. `grow orders:96`");
                };
                let (topic, partitions) = parse_topic(spec)?;
                let Some(now) = sizes.get(&topic) else {
                    bail!("no topic `{topic}` in the scenario");
                };
                if partitions <= *now {
                    bail!("`{topic}` has {now} partitions then; a topic only grows");
                }
                Ok(Event::Grow { topic, partitions })
            }
            other => bail!("unknown step `{other}`: join, leave, crash or grow"),
        }
    }

    /// Partitions added by a `grow` get racks the way the scenario's racks were generated.
    pub fn grown_partitions(&self, from: usize, to: usize) -> Vec<Vec<String>> {
        (from..to)
            .map(|p| generated_racks(p, self.racks, self.replication))
            .collect()
    }

    /// Reads a scenario file: TOML, or JSON when the name ends in `.json`.
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the scenario {}", path.display()))?;
        let file: ScenarioFile = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a valid scenario", path.display()))?
        } else {
            toml::from_str(&text)
                .with_context(|| format!("{} is not a valid scenario", path.display()))?
        };
        file.into_scenario()
            .with_context(|| format!("in the scenario {}", path.display()))
    }
}

/// Keeps track of which names exist as events are parsed.
fn apply_names(
    event: &Event,
    live: &mut BTreeSet<String>,
    ever: &mut BTreeSet<String>,
    sizes: &mut BTreeMap<String, usize>,
) {
    match event {
        Event::Start => {}
        Event::Join(members) => {
            for member in members {
                live.insert(member.id.clone());
                ever.insert(member.id.clone());
            }
        }
        Event::Leave(ids) | Event::Crash(ids) => {
            for id in ids {
                live.remove(id);
            }
        }
        Event::Grow { topic, partitions } => {
            sizes.insert(topic.clone(), *partitions);
        }
    }
}

/// The file format.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    /// Racks to spread generated replicas over (0: none).
    #[serde(default)]
    racks: usize,
    #[serde(default = "default_replication")]
    replication: usize,
    topics: Vec<TopicFile>,
    #[serde(default)]
    members: Vec<MemberFile>,
    /// Members named m000.. added after the listed ones, subscribed to every topic.
    #[serde(default)]
    generated_members: usize,
    #[serde(default)]
    settings: BTreeMap<String, String>,
    #[serde(default)]
    steps: Vec<String>,
}

fn default_replication() -> usize {
    3
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopicFile {
    name: String,
    partitions: usize,
    /// The racks of each partition's replicas (as many lists as partitions); generated from
    /// `racks` when left out.
    #[serde(default)]
    replica_racks: Option<Vec<Vec<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberFile {
    id: String,
    #[serde(default)]
    instance_id: Option<String>,
    /// Every topic when left out.
    #[serde(default)]
    topics: Option<Vec<String>>,
    #[serde(default)]
    rack: Option<String>,
    /// `TOPIC:PARTITION` entries.
    #[serde(default)]
    owned: Vec<String>,
    #[serde(default)]
    settings: BTreeMap<String, String>,
}

impl ScenarioFile {
    fn into_scenario(self) -> anyhow::Result<Scenario> {
        let mut scenario = Scenario {
            topics: Vec::new(),
            members: Vec::new(),
            events: Vec::new(),
            racks: self.racks,
            replication: self.replication,
            settings: self.settings,
        };
        if self.topics.is_empty() {
            bail!("a scenario needs at least one topic");
        }
        for topic in self.topics {
            if topic.partitions == 0 {
                bail!("topic `{}` needs at least one partition", topic.name);
            }
            scenario.add_topic(&topic.name, topic.partitions)?;
            if let Some(racks) = topic.replica_racks {
                if racks.len() != topic.partitions {
                    bail!(
                        "topic `{}`: replica_racks lists {} partitions, not {}",
                        topic.name,
                        racks.len(),
                        topic.partitions
                    );
                }
                scenario.topics.last_mut().expect("just added").partitions = racks;
            }
        }
        let sizes: BTreeMap<String, usize> = scenario
            .topics
            .iter()
            .map(|t| (t.name.clone(), t.partitions.len()))
            .collect();
        let mut owners: BTreeMap<(String, i32), String> = BTreeMap::new();
        for member in self.members {
            if scenario.members.iter().any(|m| m.id == member.id) {
                bail!("member `{}` is listed twice", member.id);
            }
            let topics = member.topics.unwrap_or_else(|| scenario.topic_names());
            for topic in &topics {
                if !sizes.contains_key(topic) {
                    bail!(
                        "member `{}` subscribes to unknown topic `{topic}`",
                        member.id
                    );
                }
            }
            let mut owned = Vec::new();
            for entry in &member.owned {
                let (topic, partition) = entry
                    .rsplit_once(':')
                    .and_then(|(t, p)| Some((t.to_string(), p.parse::<i32>().ok()?)))
                    .with_context(|| {
                        format!(
                            "member `{}`: owned `{entry}` is not TOPIC:PARTITION",
                            member.id
                        )
                    })?;
                let exists = sizes
                    .get(&topic)
                    .is_some_and(|n| partition >= 0 && (partition as usize) < *n);
                if !exists {
                    bail!(
                        "member `{}` owns `{entry}`, which does not exist",
                        member.id
                    );
                }
                if let Some(other) = owners.insert((topic, partition), member.id.clone()) {
                    bail!("`{entry}` is owned by both `{other}` and `{}`", member.id);
                }
                owned.push(
                    entry
                        .rsplit_once(':')
                        .map(|(t, _)| (t.to_string(), partition))
                        .expect("parsed above"),
                );
            }
            scenario.members.push(MemberSpec {
                id: member.id,
                instance_id: member.instance_id,
                topics,
                rack: member.rack,
                owned,
                settings: member.settings,
            });
        }
        let generated = scenario.new_members(self.generated_members, None, None, &BTreeSet::new());
        scenario.members.extend(generated);
        if scenario.members.is_empty() {
            bail!("a scenario needs members: list them or set generated_members");
        }
        scenario.push_events(&self.steps)?;
        Ok(scenario)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_make_members_topics_and_racks() {
        let mut scenario = Scenario::from_flags(3, &["a:4".into(), "b:2".into()], 2, 2).unwrap();
        assert_eq!(scenario.members.len(), 3);
        assert_eq!(scenario.members[2].id, "m002");
        assert_eq!(scenario.members[2].rack.as_deref(), Some("r0"));
        assert_eq!(scenario.topics[0].partitions[1], ["r0", "r1"]);
        scenario
            .push_events(&["join 2 rack=r9", "leave m000", "grow a:6", "crash m003"])
            .unwrap();
        let Event::Join(joined) = &scenario.events[0] else {
            panic!("a join");
        };
        let ids: Vec<&str> = joined.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["m003", "m004"]);
        assert_eq!(joined[0].rack.as_deref(), Some("r9"));
        assert_eq!(scenario.events[3], Event::Crash(vec!["m003".into()]));
    }

    #[test]
    fn bad_steps_say_what_is_wrong() {
        let mut scenario = Scenario::from_flags(2, &["a:4".into()], 0, 1).unwrap();
        let error =
            |step: &str| format!("{:#}", scenario.clone().push_events(&[step]).unwrap_err());
        assert!(error("leave m009").contains("no member `m009`"));
        assert!(error("grow a:2").contains("only grows"));
        assert!(error("grow b:8").contains("no topic `b`"));
        assert!(error("dance").contains("unknown step"));
        assert!(error("join x").contains("not a member count"));
        scenario.push_events(&["leave m001"]).unwrap();
        assert!(
            format!("{:#}", scenario.push_events(&["leave m001"]).unwrap_err())
                .contains("no member `m001`")
        );
    }

    #[test]
    fn a_file_lists_members_with_owned_partitions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.toml");
        std::fs::write(
            &path,
            r#"
racks = 2
steps = ["join 1", "grow t:4"]
[[topics]]
name = "t"
partitions = 3
[[members]]
id = "a"
rack = "r0"
owned = ["t:0", "t:1"]
[[members]]
id = "b"
owned = ["t:2"]
settings = { weight = "3" }
"#,
        )
        .unwrap();
        let scenario = Scenario::load(&path).unwrap();
        assert_eq!(
            scenario.members[0].owned,
            [("t".into(), 0), ("t".into(), 1)]
        );
        assert_eq!(scenario.members[1].settings["weight"], "3");
        assert_eq!(scenario.events.len(), 2);
        std::fs::write(
            &path,
            "[[topics]]\nname = \"t\"\npartitions = 1\n[[members]]\nid = \"a\"\nowned = [\"t:5\"]\n",
        )
        .unwrap();
        let error = format!("{:#}", Scenario::load(&path).unwrap_err());
        assert!(
            error.contains("owns `t:5`, which does not exist"),
            "{error}"
        );
    }
}
