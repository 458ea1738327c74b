//! Heartbeats on their own task, timer and connection.
//!
//! Nothing the membership task waits for (a commit, an OffsetFetch, a
//! revoke, the application's listener) delays a heartbeat, and heartbeats use the
//! coordinator's `Heartbeat` connection, so a commit the broker holds does not either.
//!
//! The membership task starts one [`Heartbeat`] when a SyncGroup answers and drops it when
//! the next JoinGroup goes out, so heartbeats go on through revocations and their commits.
//!
//! After a cooperative round the first beats come sooner ([`Heartbeat::start`]'s `quick`):
//! the members that gave partitions up rejoin at once, and a follow-up round hands those
//! partitions on only when every member has rejoined, which the others learn from a beat.
//!
//! A REBALANCE_IN_PROGRESS answer is reported ([`News::Rebalancing`]) and the
//! beats go on: the member revokes (and commits) before it joins, and the coordinator must
//! keep hearing from it meanwhile. Transient failures (a dropped connection, a moved
//! coordinator, a timeout) are retried here, sooner than the interval.
//!
//! When no beat has been answered for a whole session timeout, the group may have handed this
//! member's partitions to others, or may still count it in: a coordinator that took over
//! from a dead one restarts every member's session clock when it loads the group (measured
//! on Kafka: a member back in touch 10 s after its coordinator died kept its generation).
//! So the member is marked *out of touch* ([`GroupShared::out_of_touch`]): `poll` hands out
//! nothing while the beats go on, and the next answer decides. Answered: the member carries
//! on where it was, nothing re-delivered. UNKNOWN_MEMBER_ID or ILLEGAL_GENERATION: its
//! partitions are lost and it rejoins, having read nothing the group gave someone else.
//! Anything else ends the task with the error, which the membership task routes.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{GroupId, HeartbeatRequest};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::error_chain::Chain;
use crate::net::{Backoff, Purpose};

use super::error::{classify, Fatal, GroupError, Retry};
use super::shared::GroupShared;

/// What a heartbeat tells the membership task.
pub enum News {
    /// The group is rebalancing: the member should revoke and join; beats go on.
    Rebalancing,
    /// The heartbeats ended with this error.
    Ended(GroupError),
}

/// A running heartbeat; dropping it stops the task.
pub struct Heartbeat {
    task: JoinHandle<()>,
    ended: oneshot::Receiver<GroupError>,
    rebalance: Arc<Notify>,
}

/// With `quick`, the first beat after a SyncGroup, waiting for a follow-up round.
const QUICK_FIRST_BEAT: Duration = Duration::from_millis(100);

impl Heartbeat {
    /// Beats every `interval`; with `quick` (after a cooperative round) the first beats
    /// come after 100 ms, then twice as long each time up to `interval`: a follow-up round
    /// starts as soon as the members that gave partitions up have rejoined, instead of at
    /// this member's next regular beat (up to `interval` later, with every moved partition
    /// stopped meanwhile).
    pub fn start(
        client: Client,
        shared: Arc<GroupShared>,
        interval: Duration,
        session_timeout: Duration,
        backoff: Backoff,
        quick: bool,
    ) -> Heartbeat {
        let (end, ended) = oneshot::channel();
        let rebalance = Arc::new(Notify::new());
        let heard_of_rebalance = rebalance.clone();
        let task = tokio::spawn(async move {
            let timing = Timing {
                interval,
                first: if quick {
                    QUICK_FIRST_BEAT.min(interval)
                } else {
                    interval
                },
                session_timeout,
                backoff,
            };
            let events = MemberEvents {
                shared: &shared,
                rebalance: &heard_of_rebalance,
            };
            let error = beat_until_error(|| beat(&client, &shared), &timing, &events).await;
            // A member whose beats ended is back to what the membership task decides.
            shared.out_of_touch.send_replace(false);
            let _ = end.send(error);
        });
        Heartbeat {
            task,
            ended,
            rebalance,
        }
    }

    /// Waits for what the membership task must act on: a REBALANCE_IN_PROGRESS answer (the
    /// heartbeats go on), or the end of the heartbeats with an error only it can handle
    /// (member gone, session expired, fenced, fatal).
    pub async fn news(&mut self) -> News {
        tokio::select! {
            biased;
            error = &mut self.ended => News::Ended(error.unwrap_or(GroupError::Fatal(Fatal::Closed))),
            _ = self.rebalance.notified() => News::Rebalancing,
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the beat loop tells its owner besides the error it ends with.
trait BeatEvents {
    /// A beat failed in a way the next one may not (retried sooner than the interval).
    fn transient(&self, error: &GroupError);
    /// The coordinator answered REBALANCE_IN_PROGRESS (the beats go on).
    fn rebalance(&self);
    /// No beat was answered for a session timeout (`true`), or one was again (`false`).
    fn out_of_touch(&self, out: bool);
}

/// A member's heartbeat events: logs, the coordinator forgotten when it moved, the
/// membership task told of a rebalance, `poll` held while out of touch.
struct MemberEvents<'a> {
    shared: &'a GroupShared,
    rebalance: &'a Notify,
}

impl BeatEvents for MemberEvents<'_> {
    fn transient(&self, error: &GroupError) {
        if error.coordinator_lost() {
            self.shared.coordinator.forget();
        }
        tracing::warn!(group = %self.shared.group, error = %Chain(&error), "heartbeat failed");
    }

    fn rebalance(&self) {
        self.rebalance.notify_one();
    }

    fn out_of_touch(&self, out: bool) {
        self.shared.out_of_touch.send_replace(out);
        if out {
            tracing::warn!(group = %self.shared.group, "no heartbeat answered for the session timeout: the group may have moved this member's partitions, so no records are handed out until the coordinator answers");
        } else {
            tracing::info!(group = %self.shared.group, "the coordinator answers again and still counts this member in: consuming goes on");
        }
    }
}

/// The heartbeat's clock.
struct Timing {
    interval: Duration,
    /// The first beat's delay; each answered beat doubles it, up to `interval`.
    first: Duration,
    session_timeout: Duration,
    backoff: Backoff,
}

/// Beats every `interval` until an error the membership task must handle. When no beat got
/// through for the session timeout (counted from the start: the SyncGroup answer was the
/// last word from the coordinator), the member is out of touch until the next answer; a
/// beat still waiting at that point is given up and the next one sent.
async fn beat_until_error<F, Fut>(
    mut beat: F,
    timing: &Timing,
    events: &impl BeatEvents,
) -> GroupError
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), GroupError>>,
{
    let mut failures = 0;
    // The delay after an answered beat; `delay` is the next one (shorter after a failure).
    let mut regular = timing.first;
    let mut delay = regular;
    let mut last_heard = Instant::now();
    let mut out_of_touch = false;
    loop {
        let expires = last_heard + timing.session_timeout;
        let beaten = async {
            tokio::time::sleep(delay).await;
            beat().await
        };
        let result = if out_of_touch {
            beaten.await
        } else {
            match tokio::time::timeout_at(expires, beaten).await {
                Ok(result) => result,
                Err(_) => {
                    out_of_touch = true;
                    events.out_of_touch(true);
                    continue;
                }
            }
        };
        match result {
            // The coordinator still counts this member in (keep beating while it revokes).
            Ok(()) | Err(GroupError::Retry(Retry::Rebalancing { .. })) => {
                if result.is_err() {
                    events.rebalance();
                }
                if out_of_touch {
                    out_of_touch = false;
                    events.out_of_touch(false);
                }
                failures = 0;
                regular = (regular * 2).min(timing.interval);
                delay = regular;
                last_heard = Instant::now();
            }
            Err(error) if error.is_transient() => {
                events.transient(&error);
                failures += 1;
                delay = timing.backoff.delay(failures).min(regular);
            }
            Err(error) => return error,
        }
    }
}

async fn beat(client: &Client, shared: &GroupShared) -> Result<(), GroupError> {
    let coordinator = shared.coordinator.get(client, &shared.group).await?;
    let identity = shared.identity();
    let request = HeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(identity.group.clone())))
        .with_generation_id(identity.generation)
        .with_member_id(StrBytes::from_string(identity.member_id))
        .with_group_instance_id(identity.instance_id.clone().map(StrBytes::from_string));
    let response = client
        .send(coordinator, Purpose::Heartbeat, &request)
        .await?;
    match ResponseError::try_from_code(response.error_code) {
        None => Ok(()),
        Some(error) => Err(classify(
            "Heartbeat",
            &identity.group,
            identity.instance_id.as_deref(),
            error,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientError;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Mutex;

    fn timing() -> Timing {
        Timing {
            interval: Duration::from_secs(3),
            first: Duration::from_secs(3),
            session_timeout: Duration::from_secs(45),
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(1)),
        }
    }

    fn unreachable() -> GroupError {
        GroupError::Retry(Retry::Client(ClientError::NoBrokerReachable {
            tried: "test".into(),
        }))
    }

    fn gone() -> GroupError {
        GroupError::Retry(Retry::MemberGone {
            api: "Heartbeat",
            error: kafka_protocol::error::ResponseError::UnknownMemberId,
        })
    }

    /// The events, with the (paused) time since the start of each out-of-touch change.
    struct Recorded {
        started: Instant,
        transient: AtomicU32,
        rebalances: AtomicU32,
        touch: Mutex<Vec<(Duration, bool)>>,
    }

    impl Recorded {
        fn new() -> Recorded {
            Recorded {
                started: Instant::now(),
                transient: AtomicU32::new(0),
                rebalances: AtomicU32::new(0),
                touch: Mutex::new(Vec::new()),
            }
        }

        fn touch(&self) -> Vec<(Duration, bool)> {
            self.touch.lock().unwrap().clone()
        }
    }

    impl BeatEvents for Recorded {
        fn transient(&self, _: &GroupError) {
            self.transient.fetch_add(1, Ordering::SeqCst);
        }
        fn rebalance(&self) {
            self.rebalances.fetch_add(1, Ordering::SeqCst);
        }
        fn out_of_touch(&self, out: bool) {
            self.touch
                .lock()
                .unwrap()
                .push((self.started.elapsed(), out));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_coordinator_out_of_reach_for_the_session_timeout_holds_the_member_until_it_answers()
    {
        let events = Recorded::new();
        let beats = AtomicU32::new(0);
        // Unreachable for 60 s, then answered (a new coordinator still counts the member
        // in), then the member is gone.
        let error = beat_until_error(
            || {
                beats.fetch_add(1, Ordering::SeqCst);
                let now = events.started.elapsed();
                async move {
                    if now < Duration::from_secs(60) {
                        Err(unreachable())
                    } else if now < Duration::from_secs(70) {
                        Ok(())
                    } else {
                        Err(gone())
                    }
                }
            },
            &timing(),
            &events,
        )
        .await;
        assert!(
            matches!(error, GroupError::Retry(Retry::MemberGone { .. })),
            "{error}"
        );
        let touch = events.touch();
        assert_eq!(touch.len(), 2, "{touch:?}");
        // Out of touch at the session timeout, not before; back with the first answer.
        assert_eq!(touch[0], (Duration::from_secs(45), true));
        assert!(
            !touch[1].1 && touch[1].0 >= Duration::from_secs(60),
            "{touch:?}"
        );
        assert!(touch[1].0 <= Duration::from_secs(61), "{touch:?}");
        // Retried all along (backoff capped at 1 s, then every second).
        assert!(beats.load(Ordering::SeqCst) > 55, "{beats:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_beat_that_hangs_past_the_session_timeout_is_given_up_for_the_next() {
        let events = Recorded::new();
        let beats = AtomicU32::new(0);
        let error = beat_until_error(
            || {
                let n = beats.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        std::future::pending::<()>().await;
                    }
                    Err(gone())
                }
            },
            &timing(),
            &events,
        )
        .await;
        assert!(
            matches!(error, GroupError::Retry(Retry::MemberGone { .. })),
            "{error}"
        );
        assert_eq!(events.touch(), [(Duration::from_secs(45), true)]);
        assert_eq!(events.started.elapsed(), Duration::from_secs(45 + 3));
    }

    #[tokio::test(start_paused = true)]
    async fn each_beat_that_gets_through_restarts_the_session_clock() {
        let events = Recorded::new();
        let beats = AtomicU32::new(0);
        // Beats 1-10 get through (30 s), then the coordinator is unreachable for good.
        let error = beat_until_error(
            || {
                let n = beats.fetch_add(1, Ordering::SeqCst);
                let now = events.started.elapsed();
                async move {
                    if n < 10 {
                        Ok(())
                    } else if now < Duration::from_secs(100) {
                        Err(unreachable())
                    } else {
                        Err(gone())
                    }
                }
            },
            &timing(),
            &events,
        )
        .await;
        assert!(
            matches!(error, GroupError::Retry(Retry::MemberGone { .. })),
            "{error}"
        );
        assert_eq!(events.touch(), [(Duration::from_secs(30 + 45), true)]);
        assert!(events.transient.load(Ordering::SeqCst) > 40);
    }

    #[tokio::test(start_paused = true)]
    async fn errors_the_membership_must_handle_end_the_task_at_once() {
        let events = Recorded::new();
        let error = beat_until_error(|| async { Err(gone()) }, &timing(), &events).await;
        assert!(
            matches!(error, GroupError::Retry(Retry::MemberGone { .. })),
            "{error}"
        );
        assert_eq!(events.started.elapsed(), Duration::from_secs(3));
        assert_eq!(events.transient.load(Ordering::SeqCst), 0);
        assert_eq!(events.rebalances.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rebalance_is_reported_and_the_beats_go_on() {
        let events = Recorded::new();
        let beats = AtomicU32::new(0);
        // Rebalancing answers for a minute (the member revokes, then joins), then gone.
        let error = beat_until_error(
            || {
                let n = beats.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < 20 {
                        Err(GroupError::Retry(Retry::Rebalancing { api: "Heartbeat" }))
                    } else {
                        Err(gone())
                    }
                }
            },
            &timing(),
            &events,
        )
        .await;
        assert!(
            matches!(error, GroupError::Retry(Retry::MemberGone { .. })),
            "{error}"
        );
        assert_eq!(events.rebalances.load(Ordering::SeqCst), 20);
        // Every interval, past the 45 s session timeout: each answer counts as heard.
        assert_eq!(events.started.elapsed(), Duration::from_secs(21 * 3));
        assert!(events.touch().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_cooperative_round_the_first_beats_come_sooner_then_every_interval() {
        let events = Recorded::new();
        let sent = Mutex::new(Vec::new());
        let quick = Timing {
            first: QUICK_FIRST_BEAT,
            ..timing()
        };
        let error = beat_until_error(
            || {
                let mut sent = sent.lock().unwrap();
                sent.push(events.started.elapsed());
                let n = sent.len();
                async move {
                    if n < 7 {
                        Ok(())
                    } else {
                        Err(gone())
                    }
                }
            },
            &quick,
            &events,
        )
        .await;
        assert!(matches!(error, GroupError::Retry(Retry::MemberGone { .. })));
        let ms: Vec<u128> = sent.lock().unwrap().iter().map(|d| d.as_millis()).collect();
        // 100 ms, then doubling (200, 400, 800, 1600), then the 3 s interval.
        assert_eq!(ms, [100, 300, 700, 1500, 3100, 6100, 9100]);
    }
}
