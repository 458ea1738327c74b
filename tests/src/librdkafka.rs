//! A librdkafka group member: `tests/python/member.py` (confluent-kafka) in a [`Script`], and
//! what it reported so far.

use std::collections::BTreeSet;

use anyhow::Result;
use serde_json::Value;

use crate::python::Script;

/// What a member owned once each generation was applied: (generation, partitions).
pub type Timeline = Vec<(i64, BTreeSet<i32>)>;

/// The librdkafka member and what it reported so far (events taken in by [`Self::pump`]).
pub struct LibrdkafkaMember {
    pub script: Script,
    /// The partitions it owns, as of its last assigned, revoked or lost event.
    pub owned: BTreeSet<i32>,
    /// (generation, protocol, leader) of each JoinGroup answer.
    pub joins: Vec<(i64, String, bool)>,
    /// What it owned once each generation's changes were applied.
    pub timeline: Timeline,
    /// (partition, offset, value) of each record it read.
    pub records: Vec<(i32, i64, String)>,
    /// Each error it reported.
    pub errors: Vec<String>,
}

impl LibrdkafkaMember {
    /// Starts `member.py` in `group` on `topic` through `brokers` with the assignment
    /// `strategy` (librdkafka's `partition.assignment.strategy`).
    pub fn start(brokers: &str, group: &str, topic: &str, strategy: &str) -> Result<Self> {
        LibrdkafkaMember::start_with_protocol(brokers, group, topic, strategy, "classic")
    }

    /// [`LibrdkafkaMember::start`] with `group.protocol` set: `classic` or `consumer` (KIP-848,
    /// where the broker assigns; `strategy` "" for the broker's default assignor).
    pub fn start_with_protocol(
        brokers: &str,
        group: &str,
        topic: &str,
        strategy: &str,
        protocol: &str,
    ) -> Result<Self> {
        let script = Script::spawn("member.py", &[brokers, group, topic, strategy, protocol])?;
        Ok(LibrdkafkaMember {
            script,
            owned: BTreeSet::new(),
            joins: Vec::new(),
            timeline: Vec::new(),
            records: Vec::new(),
            errors: Vec::new(),
        })
    }

    /// Takes in the events that have arrived.
    pub fn pump(&mut self) {
        while let Some(event) = self.script.try_next() {
            self.take(&event);
        }
    }

    /// Takes in one event of the script.
    pub fn take(&mut self, event: &Value) {
        match event["event"].as_str() {
            Some("assigned" | "revoked" | "lost") => {
                self.owned = event["owned"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_i64().unwrap() as i32)
                    .collect();
                if let Some(last) = self.timeline.last_mut() {
                    last.1 = self.owned.clone();
                }
            }
            Some("joined") => {
                let generation = event["generation"].as_i64().unwrap();
                self.joins.push((
                    generation,
                    event["protocol"].as_str().unwrap().to_string(),
                    event["leader"].as_bool().unwrap(),
                ));
                self.timeline.push((generation, self.owned.clone()));
            }
            Some("records") => {
                for record in event["records"].as_array().unwrap() {
                    self.records.push((
                        record[0].as_i64().unwrap() as i32,
                        record[1].as_i64().unwrap(),
                        record[2].as_str().unwrap().to_string(),
                    ));
                }
            }
            Some("error") => self.errors.push(event["error"].to_string()),
            _ => {}
        }
    }

    /// The (partition, offset) of each record it read.
    pub fn printed(&self) -> Vec<(i64, i64)> {
        self.records
            .iter()
            .map(|(partition, offset, _)| (i64::from(*partition), *offset))
            .collect()
    }
}
