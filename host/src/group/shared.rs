//! What a group member's handle and its three tasks (membership, heartbeat, commit queue)
//! share: who the member is, what it owns, what the broker confirmed, and whether it is
//! stopping. Kept apart from the tasks so each imports it and none imports another.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use tokio::sync::watch;

use crate::fetch::TopicPartition;

use super::coordinator::KnownCoordinator;
use super::error::GroupError;
use super::offsets::MemberIdentity;
use super::options::GroupOptions;
use super::stats::GroupStats;

/// What the handle and the tasks share.
pub struct GroupShared {
    pub group: String,
    pub identity: Mutex<MemberIdentity>,
    pub coordinator: KnownCoordinator,
    /// The partitions this member owns now.
    pub owned: Mutex<BTreeSet<TopicPartition>>,
    /// The last offsets the broker confirmed, to skip commits that change nothing.
    pub committed: Mutex<BTreeMap<TopicPartition, i64>>,
    /// How many times this member lost its partitions (dropped from the group): a commit of
    /// records handed out before a loss must fail.
    pub losses: AtomicU64,
    pub fatal: watch::Sender<Option<GroupError>>,
    /// `Some(deadline)` once the application asked the member to stop: a state, not an
    /// event, so a phase that starts after the request sees it too.
    closing: watch::Sender<Option<Instant>>,
    pub generations: watch::Sender<i32>,
    /// No heartbeat was answered for a session timeout: the group may have handed this
    /// member's partitions to others, so `poll` hands out nothing until the next answer says
    /// whether it still counts the member in (see [`super::heartbeat`]).
    pub out_of_touch: watch::Sender<bool>,
    pub stats: Mutex<GroupStats>,
}

impl GroupShared {
    pub fn new(options: &GroupOptions) -> GroupShared {
        GroupShared {
            group: options.group_id.clone(),
            identity: Mutex::new(MemberIdentity {
                group: options.group_id.clone(),
                member_id: String::new(),
                generation: -1,
                instance_id: options.instance_id.clone(),
            }),
            coordinator: KnownCoordinator::default(),
            owned: Mutex::new(BTreeSet::new()),
            committed: Mutex::new(BTreeMap::new()),
            losses: AtomicU64::new(0),
            stats: Mutex::new(GroupStats::default()),
            fatal: watch::channel(None).0,
            closing: watch::channel(None).0,
            generations: watch::channel(-1).0,
            out_of_touch: watch::channel(false).0,
        }
    }

    pub fn identity(&self) -> MemberIdentity {
        self.identity.lock().expect("identity lock").clone()
    }

    pub fn owned(&self) -> Vec<TopicPartition> {
        self.owned
            .lock()
            .expect("owned lock")
            .iter()
            .cloned()
            .collect()
    }

    pub fn losses(&self) -> u64 {
        self.losses.load(Ordering::SeqCst)
    }

    /// Asks the member to stop by `deadline` (the first request's deadline stands).
    pub fn close_by(&self, deadline: Instant) {
        self.closing.send_if_modified(|closing| {
            let first = closing.is_none();
            closing.get_or_insert(deadline);
            first
        });
    }

    /// The deadline of the stop asked for, if one was.
    pub fn closing(&self) -> Option<Instant> {
        *self.closing.borrow()
    }

    /// Resolves once a stop is asked for (at once if it already was).
    pub async fn closed(&self) {
        let mut closing = self.closing.subscribe();
        // The sender lives in `self`, so the wait ends only with a stop.
        let _ = closing.wait_for(Option::is_some).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_stop_asked_before_anyone_waits_is_still_seen() {
        let shared = GroupShared::new(&GroupOptions::new("g", vec!["t".into()]));
        assert_eq!(shared.closing(), None);
        let deadline = Instant::now() + Duration::from_secs(5);
        shared.close_by(deadline);
        // A second request keeps the first deadline.
        shared.close_by(deadline + Duration::from_secs(60));
        assert_eq!(shared.closing(), Some(deadline));
        // Every wait started afterwards ends at once, however many there are.
        for _ in 0..3 {
            tokio::time::timeout(Duration::from_millis(100), shared.closed())
                .await
                .expect("a later wait sees the stop");
        }
    }
}
