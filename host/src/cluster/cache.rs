//! The shared metadata cache: the current snapshot, stale marks, the max age.
//!
//! Invariants:
//! - A snapshot is immutable; a refresh merges its answer into a new one (see
//!   [`super::merge`]) and swaps it in; readers holding the old `Arc` keep a consistent view.
//! - Every merge adds one to the generation. A stale mark is stamped with the generation the
//!   failed request was made under, and only an answer for every topic from a later
//!   generation clears it: an error from a request made before the last full refresh marks
//!   nothing (rskafka's `BrokerCacheGeneration`), and an answer for a few topics does not
//!   clear a mark that may concern another topic.
//! - The cache is stale when it was never fetched, is marked, or its last answer for every
//!   topic is older than the max age; [`MetadataCache::staleness`] says which, for the log.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{Metadata, MetadataScope};

/// How often metadata may and must be refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataOptions {
    /// (`net.metadata_min_age_ms`) The floor: no two refreshes asking for the same topics
    /// start closer together than this, whoever asks; callers in between wait and share the
    /// next one. A by-name lookup answered less than this ago is served from the cache.
    pub min_age: Duration,
    /// (`net.metadata_max_age_ms`, Kafka's `metadata.max.age.ms`) The ceiling: an answer for
    /// every topic older than this makes the cache stale, so a client in use refreshes at
    /// least this often (new partitions, new topics matching a pattern).
    pub max_age: Duration,
}

impl Default for MetadataOptions {
    fn default() -> Self {
        MetadataOptions {
            min_age: Duration::from_secs(1),
            max_age: Duration::from_secs(300),
        }
    }
}

/// Why a refresh happens (logged with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshReason {
    /// Nothing was fetched yet.
    NeverFetched,
    /// An error meant the metadata is out of date.
    MarkedStale,
    /// The last answer for every topic is older than the max age.
    MaxAge,
    /// Topics were looked up that the cache cannot answer for yet.
    TopicsLookedUp,
    /// A caller asked, for this reason.
    Asked(&'static str),
}

impl fmt::Display for RefreshReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefreshReason::NeverFetched => f.write_str("nothing fetched yet"),
            RefreshReason::MarkedStale => f.write_str("an error marked the metadata stale"),
            RefreshReason::MaxAge => {
                f.write_str("no answer for every topic within net.metadata_max_age_ms")
            }
            RefreshReason::TopicsLookedUp => f.write_str("topics looked up"),
            RefreshReason::Asked(why) => f.write_str(why),
        }
    }
}

/// The shared cache.
#[derive(Debug)]
pub struct MetadataCache {
    current: watch::Sender<Arc<Metadata>>,
    /// One more than the newest generation a stale mark was made under (0: no mark).
    stale_mark: AtomicU64,
    max_age: Duration,
}

impl Default for MetadataCache {
    fn default() -> Self {
        MetadataCache::new(MetadataOptions::default().max_age)
    }
}

impl MetadataCache {
    pub fn new(max_age: Duration) -> MetadataCache {
        MetadataCache {
            current: watch::channel(Arc::new(Metadata::default())).0,
            stale_mark: AtomicU64::new(0),
            max_age,
        }
    }

    pub fn snapshot(&self) -> Arc<Metadata> {
        self.current.borrow().clone()
    }

    /// The current snapshot's generation (0: nothing fetched).
    pub fn generation(&self) -> u64 {
        self.current.borrow().generation
    }

    /// Every new snapshot, as it is swapped in.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Metadata>> {
        self.current.subscribe()
    }

    /// Merges an answer (see [`super::merge`]) and swaps the result in.
    pub fn merge(&self, answer: Metadata, scope: &MetadataScope) -> Arc<Metadata> {
        let mut merged = None;
        self.current.send_modify(|current| {
            *current = Arc::new(current.merge(answer, scope));
            merged = Some(current.clone());
        });
        merged.expect("send_modify runs the closure")
    }

    /// Marks the current snapshot stale.
    pub fn mark_stale(&self) {
        self.mark_stale_under(self.generation());
    }

    /// Marks the metadata stale because a request made under `generation` failed; a full
    /// refresh since then has cleared it already (see the module invariants).
    pub fn mark_stale_under(&self, generation: u64) {
        self.stale_mark
            .fetch_max(generation.saturating_add(1), Ordering::AcqRel);
    }

    /// The newest snapshot generation a stale mark was made under, if a mark was ever made:
    /// an answer merged after that generation was asked for after the error.
    pub fn marked_under(&self) -> Option<u64> {
        self.stale_mark.load(Ordering::Acquire).checked_sub(1)
    }

    /// Why the snapshot needs a refresh, or `None` when it does not.
    pub fn staleness(&self) -> Option<RefreshReason> {
        let current = self.snapshot();
        if current.generation == 0 {
            return Some(RefreshReason::NeverFetched);
        }
        // A mark made under generation g is stored as g + 1: it counts while no answer for
        // every topic came after g.
        if self.stale_mark.load(Ordering::Acquire) > current.all_topics_generation {
            return Some(RefreshReason::MarkedStale);
        }
        let expired = current
            .all_topics_fetched_at
            .is_none_or(|at| at.elapsed() >= self.max_age);
        expired.then_some(RefreshReason::MaxAge)
    }

    /// Stale when never fetched, marked, or older than the max age.
    pub fn is_stale(&self) -> bool {
        self.staleness().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn answer() -> Metadata {
        Metadata {
            fetched_at: Some(Instant::now()),
            ..Metadata::default()
        }
    }

    #[test]
    fn a_mark_from_an_older_generation_does_not_make_a_newer_snapshot_stale() {
        let cache = MetadataCache::new(Duration::from_secs(60));
        assert_eq!(cache.staleness(), Some(RefreshReason::NeverFetched));
        cache.merge(answer(), &MetadataScope::AllTopics);
        let asked_under = cache.generation();
        assert_eq!(cache.staleness(), None);
        // A full refresh lands before the error of a request made under the old snapshot.
        cache.merge(answer(), &MetadataScope::AllTopics);
        cache.mark_stale_under(asked_under);
        assert_eq!(cache.staleness(), None);
        // The same error for a request made under the current snapshot counts.
        cache.mark_stale_under(cache.generation());
        assert_eq!(cache.staleness(), Some(RefreshReason::MarkedStale));
        // An answer for a few topics does not clear it; one for every topic does.
        cache.merge(answer(), &MetadataScope::topics(["a"]));
        assert_eq!(cache.staleness(), Some(RefreshReason::MarkedStale));
        cache.merge(answer(), &MetadataScope::AllTopics);
        assert_eq!(cache.staleness(), None);
    }

    #[test]
    fn the_max_age_makes_the_cache_stale() {
        let cache = MetadataCache::new(Duration::from_millis(30));
        cache.merge(answer(), &MetadataScope::AllTopics);
        assert_eq!(cache.staleness(), None);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(cache.staleness(), Some(RefreshReason::MaxAge));
        // Answers for a few topics do not reset the clock.
        cache.merge(answer(), &MetadataScope::topics(["a"]));
        assert_eq!(cache.staleness(), Some(RefreshReason::MaxAge));
    }
}
