//! Lookups the command line shares: where each partition's log starts and ends.

use std::collections::BTreeMap;

use anyhow::Context;

use crate::client::Client;
use crate::fetch::{list_offsets, IsolationLevel, OffsetSpec, TopicPartition};

/// The log start and end of each partition (the end is the last stable offset under
/// read_committed): one ListOffsets per leader for the starts and one for the ends.
pub async fn log_bounds(
    client: &Client,
    partitions: &[TopicPartition],
    isolation: IsolationLevel,
) -> anyhow::Result<BTreeMap<TopicPartition, (i64, i64)>> {
    let metadata = client.metadata();
    let mut by_leader: BTreeMap<i32, Vec<TopicPartition>> = BTreeMap::new();
    for tp in partitions {
        let leader = metadata
            .leader(&tp.topic, tp.partition)
            .with_context(|| format!("{tp} has no leader right now; try again"))?;
        by_leader.entry(leader).or_default().push(tp.clone());
    }
    let mut bounds = BTreeMap::new();
    for (leader, tps) in by_leader {
        let ask = |spec| tps.iter().map(|tp| (tp.clone(), spec)).collect::<Vec<_>>();
        let starts = list_offsets(client, leader, isolation, &ask(OffsetSpec::Earliest)).await?;
        let ends = list_offsets(client, leader, isolation, &ask(OffsetSpec::Latest)).await?;
        for tp in tps {
            let get = |answers: &BTreeMap<TopicPartition, Result<i64, _>>| match answers.get(&tp) {
                Some(Ok(offset)) => Ok(*offset),
                Some(Err(error)) => Err(anyhow::anyhow!("cannot find the bounds of {tp}: {error}")),
                None => Err(anyhow::anyhow!("the leader of {tp} did not answer for it")),
            };
            bounds.insert(tp.clone(), (get(&starts)?, get(&ends)?));
        }
    }
    Ok(bounds)
}
