//! Support for consumer-group tests.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmkafka::client::Client;
use wasmkafka::fetch::{ConsumerRecord, FetchOptions, TopicPartition};
use wasmkafka::group::{Assignor, GroupConsumer, GroupOptions, GroupProtocol, RebalanceListener};
use wasmkafka::policy::ResetPolicySpec;

/// Fetch options for a test member: a fetch waits at most 200 ms for records.
pub fn short_wait_fetch() -> FetchOptions {
    FetchOptions {
        max_wait: Duration::from_millis(200),
        ..FetchOptions::default()
    }
}

/// Options for a consumer-protocol (KIP-848) member of `group` reading `topic`: 10 s session
/// and rebalance timeouts, an auto-commit every 200 ms.
pub fn consumer_protocol_options(group: &str, topic: &str) -> GroupOptions {
    GroupOptions {
        protocol: GroupProtocol::Consumer,
        session_timeout: Duration::from_secs(10),
        rebalance_timeout: Duration::from_secs(10),
        auto_commit_interval: Some(Duration::from_millis(200)),
        ..GroupOptions::new(group, vec![topic.to_string()])
    }
}

/// Starts a member on `client` that fetches with [`short_wait_fetch`] and starts a partition
/// without a committed offset at the earliest one.
pub fn start_earliest_member(
    client: Client,
    options: GroupOptions,
    assignors: Vec<Arc<dyn Assignor>>,
    listener: Arc<dyn RebalanceListener>,
) -> GroupConsumer {
    GroupConsumer::start(
        client,
        options,
        short_wait_fetch(),
        ResetPolicySpec::Earliest.into_policy(),
        assignors,
        listener,
    )
}

/// A rebalance listener that records each call, in order, as `assigned N`, `revoked N` or
/// `lost N` (N: how many partitions).
#[derive(Default)]
pub struct RecordedRebalances(Mutex<Vec<String>>);

impl RebalanceListener for RecordedRebalances {
    fn on_assigned(&self, partitions: &[TopicPartition]) {
        self.push("assigned", partitions);
    }
    fn on_revoked(&self, partitions: &[TopicPartition]) {
        self.push("revoked", partitions);
    }
    fn on_lost(&self, partitions: &[TopicPartition]) {
        self.push("lost", partitions);
    }
}

impl RecordedRebalances {
    fn push(&self, what: &str, partitions: &[TopicPartition]) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{what} {}", partitions.len()));
    }

    /// The calls so far, in order.
    pub fn list(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// Waits until `condition` holds, checking every 10 ms (tokio's clock); after `timeout`
/// fails the test with `what` and `state()`.
pub async fn wait_until(
    timeout: Duration,
    what: &str,
    condition: impl Fn() -> bool,
    state: impl Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {}",
            state()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

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

/// Stops `poller` and returns `member`, to be closed; fails the test if anything else still
/// holds the member.
pub async fn stop_polling(
    poller: tokio::task::JoinHandle<()>,
    member: Arc<GroupConsumer>,
) -> GroupConsumer {
    poller.abort();
    let _ = poller.await;
    Arc::try_unwrap(member).unwrap_or_else(|_| panic!("the member is still shared"))
}

/// Stops the pollers and closes the members (commit, revoke, leave).
pub async fn close_all(
    members: Vec<Arc<GroupConsumer>>,
    pollers: Vec<tokio::task::JoinHandle<()>>,
) {
    for poller in pollers {
        poller.abort();
        let _ = poller.await;
    }
    for member in members {
        if let Ok(member) = Arc::try_unwrap(member) {
            member.close().await;
        }
    }
}

/// (partition, offset) of each record a member polled, as [`keep_polling_offsets`] keeps them.
pub type PolledOffsets = Arc<Mutex<Vec<(i32, i64)>>>;

/// [`keep_polling`] keeping each record's (partition, offset); a poll error names the
/// "wasmkafka member" (beside another client's member).
pub fn keep_polling_offsets(
    member: Arc<GroupConsumer>,
    seen: PolledOffsets,
) -> tokio::task::JoinHandle<()> {
    keep_polling(member, "wasmkafka member".into(), seen, |r| {
        (r.partition, r.offset)
    })
}

/// The partitions `member` holds, by number.
pub fn partitions_held(member: &GroupConsumer) -> BTreeSet<i32> {
    member.assignment().iter().map(|tp| tp.partition).collect()
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
