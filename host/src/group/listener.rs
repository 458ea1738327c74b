//! What an application hears of rebalances: partitions assigned, revoked (orderly, after a
//! commit) and lost.

use crate::fetch::TopicPartition;

/// Hears about rebalances. Called from the membership task; keep it quick.
pub trait RebalanceListener: Send + Sync {
    /// Partitions added to this member (their positions come from the committed offsets).
    fn on_assigned(&self, _partitions: &[TopicPartition]) {}
    /// Partitions about to be taken away in an orderly way. They are paused already; when
    /// this returns, their finished positions are committed (auto-commit on) or the commits
    /// already queued are waited for (off: an application committing by hand queues its
    /// commit here, with a [`super::Committer`]), and then they leave the fetcher.
    fn on_revoked(&self, _partitions: &[TopicPartition]) {}
    /// Partitions lost because the member was dropped from the group (nothing committed).
    fn on_lost(&self, _partitions: &[TopicPartition]) {}
}

/// A listener that only logs.
#[derive(Debug, Default)]
pub struct LoggingListener;

impl RebalanceListener for LoggingListener {
    fn on_assigned(&self, partitions: &[TopicPartition]) {
        tracing::info!(?partitions, "partitions assigned");
    }
    fn on_revoked(&self, partitions: &[TopicPartition]) {
        tracing::info!(?partitions, "partitions revoked");
    }
    fn on_lost(&self, partitions: &[TopicPartition]) {
        tracing::warn!(?partitions, "partitions lost");
    }
}
