//! Where `run` starts without a group: `--offset [P=]SPEC` and `--partition P`, as kcat's `-o`
//! and `-p` do.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context};

use crate::client::Client;
use crate::fetch::{IsolationLevel, OffsetSpec, StartAt, TopicPartition, TopicRefused};

use super::lookup::log_bounds;

/// One `--offset` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartSpec {
    Beginning,
    End,
    Offset(i64),
    /// This many records before the end (clamped to the start of the log).
    BeforeEnd(i64),
    /// The first record at or after this time (ms since the epoch).
    Time(i64),
}

impl StartSpec {
    fn parse(text: &str) -> anyhow::Result<StartSpec> {
        let bad = || {
            format!(
                "--offset `{text}`: use beginning, end, N (an offset), -N (N before the end) or \
                 @MS (a time in ms since the epoch); stored needs --group"
            )
        };
        Ok(match text {
            "beginning" => StartSpec::Beginning,
            "end" => StartSpec::End,
            _ if text.starts_with('@') => {
                StartSpec::Time(text[1..].parse().ok().with_context(bad)?)
            }
            _ if text.starts_with('-') => StartSpec::BeforeEnd(
                text[1..]
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .with_context(bad)?,
            ),
            _ => StartSpec::Offset(
                text.parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .with_context(bad)?,
            ),
        })
    }
}

/// Every `--offset`: one for all partitions and one per partition number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartSpecs {
    all: Option<StartSpec>,
    per_partition: BTreeMap<i32, StartSpec>,
}

impl StartSpecs {
    pub fn parse(values: &[String]) -> anyhow::Result<StartSpecs> {
        let mut specs = StartSpecs::default();
        for value in values {
            match value.split_once('=') {
                Some((partition, spec)) => {
                    let partition: i32 =
                        partition
                            .parse()
                            .ok()
                            .filter(|p| *p >= 0)
                            .with_context(|| {
                                format!(
                                    "--offset `{value}`: `{partition}` is not a partition number"
                                )
                            })?;
                    specs
                        .per_partition
                        .insert(partition, StartSpec::parse(spec)?);
                }
                None => {
                    if specs.all.is_some() {
                        bail!("--offset for every partition is given twice; use P=SPEC for one");
                    }
                    specs.all = Some(StartSpec::parse(value)?);
                }
            }
        }
        Ok(specs)
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_none() && self.per_partition.is_empty()
    }

    fn for_partition(&self, partition: i32) -> Option<StartSpec> {
        self.per_partition.get(&partition).copied().or(self.all)
    }
}

/// Each partition to read (every partition of `topics`, or only `only`) and where it starts
/// (the reset policy where no `--offset` says otherwise).
pub async fn start_positions(
    client: &Client,
    topics: &[String],
    only: &[i32],
    specs: &StartSpecs,
    isolation: IsolationLevel,
) -> anyhow::Result<Vec<(TopicPartition, StartAt)>> {
    let metadata = client.refresh_topics(topics).await?;
    let only: BTreeSet<i32> = only.iter().copied().collect();
    let mut partitions = Vec::new();
    for topic in topics {
        if let Some(refused) = TopicRefused::in_metadata(&metadata, topic) {
            return Err(refused.into());
        }
        let info = metadata
            .existing_topic(topic)
            .with_context(|| format!("topic `{topic}` does not exist"))?;
        for partition in &only {
            if !info.partitions.contains_key(partition) {
                bail!(
                    "--partition {partition}: topic `{topic}` has partitions 0..{}",
                    info.partitions.len()
                );
            }
        }
        for partition in specs.per_partition.keys() {
            if !info.partitions.contains_key(partition) {
                bail!(
                    "--offset {partition}=...: topic `{topic}` has partitions 0..{}",
                    info.partitions.len()
                );
            }
        }
        partitions.extend(
            info.partitions
                .keys()
                .filter(|p| only.is_empty() || only.contains(p))
                .map(|p| TopicPartition::new(topic, *p)),
        );
    }
    // "-N" needs each log's bounds: one ListOffsets per leader for the start and one for
    // the end.
    let before_end: Vec<TopicPartition> = partitions
        .iter()
        .filter(|tp| {
            matches!(
                specs.for_partition(tp.partition),
                Some(StartSpec::BeforeEnd(_))
            )
        })
        .cloned()
        .collect();
    let bounds = log_bounds(client, &before_end, isolation).await?;
    Ok(partitions
        .into_iter()
        .map(|tp| {
            let start = match specs.for_partition(tp.partition) {
                None => StartAt::Reset,
                Some(StartSpec::Beginning) => StartAt::At(OffsetSpec::Earliest),
                Some(StartSpec::End) => StartAt::At(OffsetSpec::Latest),
                Some(StartSpec::Time(ms)) => StartAt::At(OffsetSpec::Timestamp(ms)),
                Some(StartSpec::Offset(offset)) => StartAt::Offset(offset),
                Some(StartSpec::BeforeEnd(n)) => {
                    let (start, end) = bounds[&tp];
                    StartAt::Offset((end - n).max(start))
                }
            };
            (tp, start)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_for_all_and_for_one_partition() {
        let specs =
            StartSpecs::parse(&["-10".into(), "2=beginning".into(), "3=@1700".into()]).unwrap();
        assert_eq!(specs.for_partition(0), Some(StartSpec::BeforeEnd(10)));
        assert_eq!(specs.for_partition(2), Some(StartSpec::Beginning));
        assert_eq!(specs.for_partition(3), Some(StartSpec::Time(1700)));
        let one = StartSpecs::parse(&["1=42".into()]).unwrap();
        assert_eq!(one.for_partition(0), None);
        assert_eq!(one.for_partition(1), Some(StartSpec::Offset(42)));
        for bad in ["stored", "-0", "x", "@soon", "a=1", "end"] {
            let values: Vec<String> = if bad == "end" {
                vec!["end".into(), "beginning".into()]
            } else {
                vec![bad.into()]
            };
            assert!(StartSpecs::parse(&values).is_err(), "{bad}");
        }
    }
}
