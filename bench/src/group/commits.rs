//! Commit latency while fetches long-poll on an idle topic.
//!
//! `wasmkafka run --group` commits (in the background) after every batch it wrote, and the
//! auto-commit every `auto.commit.interval.ms` (5 s); the commit queue skips partitions whose
//! offset did not change since the last confirmed commit, so a group on a topic where nothing
//! arrives commits nothing at all. So the topic gets a trickle: one record per partition every
//! [`TRICKLE_EVERY`]. Each record ends the long poll waiting for it; the member writes it,
//! commits it, and its next fetch waits at the broker again, for `fetch.max.wait.ms` or until
//! the next record. A commit therefore goes out while the member's fetch is parked at the
//! broker. If commits shared the fetch's connection they would queue behind it (a broker
//! answers one connection's requests in order); wasmkafka sends them on the coordinator's
//! own pooled connection.
//!
//! Four fresh members (`--from latest`) on the trickle topic (4 partitions, one each) settle,
//! then the trickle runs for [`TRICKLE_RECORDS`] records per partition; the measure is the
//! members' `wasmkafka_commit_duration_seconds` and `wasmkafka_fetch_duration_seconds`
//! observations in that time (scrape after minus scrape before). Run once with the default
//! `fetch.max.wait.ms` (500 ms, shorter than the trickle's period: most fetches run to the
//! limit) and once with 5,000 ms (longer: every fetch waits for the next record).

use std::time::Duration;

use anyhow::Result;
use tokio::runtime::Handle;

use super::exposition::{Histogram, COMMIT_SECONDS, FETCH_SECONDS};
use super::member::{scrape_all, settled, wait_until, Counter, Launcher};
use super::producer::{Pace, Producer};
use super::{Recorder, Setup, MEMBERS, SETTLE_LIMIT};

pub const PARTITIONS: i32 = 4;
const TRICKLE_EVERY: Duration = Duration::from_secs(1);
const TRICKLE_RECORDS: u64 = 12;
/// The fetch waits measured: Kafka's default, and ten times it.
pub const FETCH_WAITS_MS: [u64; 2] = [500, 5_000];

/// The phase (see the module doc) with fetches waiting up to `fetch_wait_ms`.
pub fn run(
    setup: &Setup,
    assignor: &str,
    round: usize,
    fetch_wait_ms: u64,
    record: &mut Recorder,
) -> Result<()> {
    let handle = Handle::current();
    let group = format!("bench-commit-{assignor}-{round}-{fetch_wait_ms}");
    let launcher = Launcher {
        wasmkafka: setup.wasmkafka,
        brokers: &setup.brokers,
        topic: &setup.trickle_topic,
        group: &group,
        assignor,
        from: "latest",
        fetch_max_wait_ms: Some(fetch_wait_ms),
        logs: None,
    };
    let members = launcher.start_many(MEMBERS, std::sync::Arc::new(Counter::default()))?;
    wait_until(SETTLE_LIMIT, "the commit group settling", || {
        settled(&members, PARTITIONS, 1.0)
    })?;
    // The members look up where `latest` is before the first record arrives.
    std::thread::sleep(Duration::from_millis(500));
    let before = scrape_all(&members)?;
    let trickle = Pace {
        batch: 1,
        every: TRICKLE_EVERY,
        limit: TRICKLE_RECORDS,
        value_bytes: 100,
    };
    Producer::start(
        &handle,
        setup.kafka.client(),
        &setup.trickle_topic,
        PARTITIONS,
        trickle,
    )
    .finish(&handle)?;
    // The last record's commit.
    std::thread::sleep(Duration::from_secs(1));
    let after = scrape_all(&members)?;
    drop(members);

    let delta = |name| {
        let deltas: Vec<Histogram> = after
            .iter()
            .zip(&before)
            .map(|(after, before)| after.histogram(name).since(&before.histogram(name)))
            .collect();
        Histogram::merged(&deltas)
    };
    let (commits, fetches) = (delta(COMMIT_SECONDS), delta(FETCH_SECONDS));
    let at = format!("long polls of {fetch_wait_ms} ms");
    record.count(&format!("{at}: commits"), commits.count());
    record.ms(
        &format!("{at}: commit p50, bucket bound"),
        commits.quantile_bound(0.5),
    );
    record.ms(
        &format!("{at}: commit p99, bucket bound"),
        commits.quantile_bound(0.99),
    );
    record.ms(&format!("{at}: commit mean"), commits.mean());
    record.ms(&format!("{at}: fetch mean"), fetches.mean());
    Ok(())
}
