//! Support for consumer-group tests.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmkafka::fetch::{ConsumerRecord, TopicPartition};
use wasmkafka::group::GroupConsumer;

/// Polls `member` on a task of its own until the task is aborted, keeping what `keep` makes
/// of each record in `seen`; a poll error fails the test, naming `who`.
pub fn keep_polling<T: Send + 'static>(
    member: Arc<GroupConsumer>,
    who: String,
    seen: Arc<Mutex<Vec<T>>>,
    keep: impl Fn(&ConsumerRecord) -> T + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match member.poll(500, Duration::from_millis(100)).await {
                Ok(records) => seen.lock().unwrap().extend(records.iter().map(&keep)),
                Err(error) => panic!("{who}: {error}"),
            }
        }
    })
}

/// Waits until `members` hold disjoint, non-empty shares that cover `partitions`, all in one
/// generation, and nothing changes for a second and a half (five heartbeats at 300 ms): the
/// group is settled. On `timeout`, the error names the last state seen.
pub async fn settle(
    members: &[Arc<GroupConsumer>],
    partitions: usize,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    let mut since = Instant::now();
    loop {
        let state: Vec<(BTreeSet<TopicPartition>, i32)> = members
            .iter()
            .map(|m| (m.assignment(), m.identity().generation))
            .collect();
        let union: BTreeSet<&TopicPartition> = state.iter().flat_map(|(a, _)| a).collect();
        let total: usize = state.iter().map(|(a, _)| a.len()).sum();
        let settled = union.len() == partitions
            && total == partitions
            && state.iter().all(|(a, g)| !a.is_empty() && *g == state[0].1);
        if !settled || last.as_ref() != Some(&state) {
            last = Some(state);
            since = Instant::now();
        } else if since.elapsed() > Duration::from_millis(1500) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("the group did not settle: {last:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
