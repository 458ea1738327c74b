//! Incremental fetch sessions (KIP-227), one per leader.
//!
//! A full fetch (session id 0, epoch 0) names every partition and asks the broker for a
//! session. If the broker answers with a session id, later fetches are incremental: they name
//! only partitions that are new or whose fetch offset or byte limit changed, and list the
//! partitions to drop as "forgotten"; the broker keeps the rest. A broker that answers with
//! session id 0 (Tansu 0.6, old brokers) keeps getting full fetches.
//!
//! Invariants:
//! - `partitions` is what the broker's session holds after the last request was sent. It is
//!   updated when a request is built; if that request fails, the session is reset and the next
//!   request is a full one (the broker's copy may no longer match ours).
//! - An incremental request leaves out unchanged partitions, but the caller still expects an
//!   answer for them at their position: the stale-answer guard uses the full wanted list.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;

use super::TopicPartition;

/// One partition as the session knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPartition {
    pub fetch_offset: i64,
    pub max_bytes: i32,
    /// The leader epoch the consumer knows (-1: unknown); the broker fences older ones.
    pub current_leader_epoch: i32,
    /// The epoch of the record before `fetch_offset` (-1: unknown); the broker answers a
    /// diverging epoch when its log no longer agrees (KIP-320).
    pub last_fetched_epoch: i32,
}

/// What goes on the wire for one fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRequest {
    pub session_id: i32,
    pub session_epoch: i32,
    /// Partitions to name in the request (all of them in a full fetch).
    pub send: Vec<(TopicPartition, SessionPartition)>,
    /// Partitions the broker should drop from the session.
    pub forget: Vec<TopicPartition>,
}

impl SessionRequest {
    pub fn is_full(&self) -> bool {
        self.session_epoch == 0 || self.session_epoch == -1
    }
}

/// The client side of one broker's fetch session.
#[derive(Debug, Default)]
pub struct FetchSession {
    /// 0 while there is no session.
    id: i32,
    /// The session epoch of the next request (0 = full request that asks for a new session).
    session_epoch: i32,
    partitions: BTreeMap<TopicPartition, SessionPartition>,
    /// How many full and incremental requests were built (for tests and stats).
    pub full_requests: u64,
    pub incremental_requests: u64,
}

impl FetchSession {
    /// Builds the next request for `wanted` and records it as what the broker will hold.
    pub fn next_request(
        &mut self,
        wanted: &BTreeMap<TopicPartition, SessionPartition>,
    ) -> SessionRequest {
        if self.id == 0 || self.session_epoch == 0 {
            self.partitions = wanted.clone();
            self.full_requests += 1;
            return SessionRequest {
                session_id: 0,
                session_epoch: 0,
                send: wanted.iter().map(|(tp, p)| (tp.clone(), *p)).collect(),
                forget: Vec::new(),
            };
        }
        let send = wanted
            .iter()
            .filter(|(tp, p)| self.partitions.get(*tp) != Some(*p))
            .map(|(tp, p)| (tp.clone(), *p))
            .collect();
        let forget = self
            .partitions
            .keys()
            .filter(|tp| !wanted.contains_key(*tp))
            .cloned()
            .collect();
        self.partitions = wanted.clone();
        self.incremental_requests += 1;
        let request = SessionRequest {
            session_id: self.id,
            session_epoch: self.session_epoch,
            send,
            forget,
        };
        self.session_epoch = if self.session_epoch == i32::MAX {
            1
        } else {
            self.session_epoch + 1
        };
        request
    }

    /// Takes in the answer's top-level error and session id. Returns `false` when the answer
    /// carries no partition data to apply (a session error: the next request is a full one).
    pub fn on_response(&mut self, error: Option<ResponseError>, session_id: i32) -> bool {
        match error {
            Some(ResponseError::FetchSessionIdNotFound)
            | Some(ResponseError::InvalidFetchSessionEpoch) => {
                tracing::debug!(
                    session = self.id,
                    ?error,
                    "fetch session lost; next fetch is full"
                );
                self.reset();
                false
            }
            Some(_) => {
                self.reset();
                false
            }
            None => {
                if self.session_epoch == 0 || self.id == 0 {
                    // The answer to a full request: a new session, or none (id 0).
                    self.id = session_id;
                    self.session_epoch = if session_id == 0 { 0 } else { 1 };
                }
                true
            }
        }
    }

    /// The session's id when one is open, forgetting it: the caller closes it on the broker
    /// with [`super::fetch_job::close_session`] (KIP-227's final epoch).
    pub fn take_open(&mut self) -> Option<i32> {
        let id = self.id;
        self.reset();
        (id != 0).then_some(id)
    }

    /// Forgets the session: the next request is a full one.
    pub fn reset(&mut self) {
        self.id = 0;
        self.session_epoch = 0;
        self.partitions.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(items: &[(i32, i64)]) -> BTreeMap<TopicPartition, SessionPartition> {
        items
            .iter()
            .map(|(p, offset)| {
                (
                    TopicPartition::new("t", *p),
                    SessionPartition {
                        fetch_offset: *offset,
                        max_bytes: 1024,
                        current_leader_epoch: -1,
                        last_fetched_epoch: -1,
                    },
                )
            })
            .collect()
    }

    fn names(request: &SessionRequest) -> Vec<(i32, i64)> {
        request
            .send
            .iter()
            .map(|(tp, p)| (tp.partition, p.fetch_offset))
            .collect()
    }

    #[test]
    fn full_then_incremental_with_changes_and_forgotten_partitions() {
        let mut session = FetchSession::default();
        let first = session.next_request(&wanted(&[(0, 10), (1, 20)]));
        assert_eq!((first.session_id, first.session_epoch), (0, 0));
        assert_eq!(names(&first), [(0, 10), (1, 20)]);
        assert!(session.on_response(None, 77));

        // Partition 0 moved, 1 did not, 2 is new.
        let second = session.next_request(&wanted(&[(0, 15), (1, 20), (2, 0)]));
        assert_eq!((second.session_id, second.session_epoch), (77, 1));
        assert_eq!(names(&second), [(0, 15), (2, 0)]);
        assert!(second.forget.is_empty());
        assert!(session.on_response(None, 77));

        // Partition 1 paused (not wanted): forgotten; nothing else changed.
        let third = session.next_request(&wanted(&[(0, 15), (2, 0)]));
        assert_eq!(third.session_epoch, 2);
        assert!(third.send.is_empty());
        assert_eq!(third.forget, [TopicPartition::new("t", 1)]);
    }

    #[test]
    fn a_session_error_starts_over_with_a_full_fetch() {
        let mut session = FetchSession::default();
        session.next_request(&wanted(&[(0, 10)]));
        session.on_response(None, 5);
        session.next_request(&wanted(&[(0, 11)]));
        assert!(!session.on_response(Some(ResponseError::FetchSessionIdNotFound), 0));
        let request = session.next_request(&wanted(&[(0, 11)]));
        assert!(request.is_full());
        assert_eq!(names(&request), [(0, 11)]);
    }

    #[test]
    fn a_broker_without_sessions_gets_full_fetches() {
        let mut session = FetchSession::default();
        for _ in 0..3 {
            let request = session.next_request(&wanted(&[(0, 10), (1, 3)]));
            assert!(request.is_full());
            assert_eq!(request.send.len(), 2);
            assert!(session.on_response(None, 0));
        }
        assert_eq!(session.full_requests, 3);
    }
}
