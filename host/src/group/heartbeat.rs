//! Heartbeats on their own task, timer and connection.
//!
//! Nothing the membership task waits for (a commit, an OffsetFetch, a
//! revoke, the application's listener) delays a heartbeat, and heartbeats use the
//! coordinator's `Heartbeat` connection, so a commit the broker holds does not either.
//!
//! The membership task starts one [`Heartbeat`] when a SyncGroup answers and drops it when
//! the next JoinGroup goes out, so heartbeats go on through revocations and their commits.
//!
//! A REBALANCE_IN_PROGRESS answer is reported ([`Heartbeat::rebalance_requested`]) and the
//! beats go on: the member revokes (and commits) before it joins, and the coordinator must
//! keep hearing from it meanwhile. Transient failures (a dropped connection, a moved
//! coordinator, a timeout) are retried here, sooner than the interval. When none has got through for a whole session timeout,
//! the coordinator has dropped the member by now: the task ends with
//! [`GroupError::SessionExpired`] and the member treats its partitions as lost instead of
//! consuming what the group has handed to someone else. Anything else ends the task with
//! the error, which the membership task routes.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{GroupId, HeartbeatRequest};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::net::{Backoff, Purpose};

use super::error::{classify, GroupError};
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

impl Heartbeat {
    pub fn start(
        client: Client,
        shared: Arc<GroupShared>,
        interval: Duration,
        session_timeout: Duration,
        backoff: Backoff,
    ) -> Heartbeat {
        let (end, ended) = oneshot::channel();
        let rebalance = Arc::new(Notify::new());
        let heard_of_rebalance = rebalance.clone();
        let task = tokio::spawn(async move {
            let timing = Timing {
                interval,
                session_timeout,
                backoff,
            };
            let error = beat_until_error(
                || beat(&client, &shared),
                &timing,
                |error| {
                    if error.coordinator_lost() {
                        shared.coordinator.forget();
                    }
                    tracing::warn!(group = %shared.group, %error, "heartbeat failed");
                },
                || heard_of_rebalance.notify_one(),
            )
            .await;
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
            error = &mut self.ended => News::Ended(error.unwrap_or(GroupError::Closed)),
            _ = self.rebalance.notified() => News::Rebalancing,
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The heartbeat's clock.
struct Timing {
    interval: Duration,
    session_timeout: Duration,
    backoff: Backoff,
}

/// Beats every `interval` until an error the membership task must handle, or until no beat
/// got through for the session timeout (counted from the start: the SyncGroup answer was
/// the last word from the coordinator). A beat still waiting at that point is given up.
async fn beat_until_error<F, Fut>(
    mut beat: F,
    timing: &Timing,
    on_transient: impl Fn(&GroupError),
    on_rebalance: impl Fn(),
) -> GroupError
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), GroupError>>,
{
    let mut failures = 0;
    let mut delay = timing.interval;
    let mut last_heard = Instant::now();
    loop {
        let expires = last_heard + timing.session_timeout;
        let beaten = async {
            tokio::time::sleep(delay).await;
            beat().await
        };
        let Ok(result) = tokio::time::timeout_at(expires, beaten).await else {
            return GroupError::SessionExpired {
                timeout: timing.session_timeout,
            };
        };
        match result {
            Ok(()) => {
                failures = 0;
                delay = timing.interval;
                last_heard = Instant::now();
            }
            // The coordinator still counts this member in: keep beating while it revokes.
            Err(GroupError::Rebalancing { .. }) => {
                on_rebalance();
                failures = 0;
                delay = timing.interval;
                last_heard = Instant::now();
            }
            Err(error) if error.is_transient() => {
                on_transient(&error);
                failures += 1;
                delay = timing.backoff.delay(failures).min(timing.interval);
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

    fn timing() -> Timing {
        Timing {
            interval: Duration::from_secs(3),
            session_timeout: Duration::from_secs(45),
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(1)),
        }
    }

    fn unreachable() -> GroupError {
        GroupError::Client(ClientError::NoBrokerReachable {
            tried: "test".into(),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_coordinator_out_of_reach_for_the_session_timeout_ends_the_membership() {
        let started = Instant::now();
        let beats = AtomicU32::new(0);
        let error = beat_until_error(
            || {
                beats.fetch_add(1, Ordering::SeqCst);
                async { Err(unreachable()) }
            },
            &timing(),
            |_| {},
            || {},
        )
        .await;
        assert!(
            matches!(error, GroupError::SessionExpired { .. }),
            "{error}"
        );
        // Ended at the session timeout, not before and not a beat later.
        assert_eq!(started.elapsed(), Duration::from_secs(45));
        // Retried all along (backoff capped at 1 s, then every second).
        assert!(beats.load(Ordering::SeqCst) > 40, "{beats:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_beat_that_hangs_past_the_session_timeout_ends_it_too() {
        let started = Instant::now();
        let error = beat_until_error(
            std::future::pending::<Result<(), GroupError>>,
            &timing(),
            |_| {},
            || {},
        )
        .await;
        assert!(
            matches!(error, GroupError::SessionExpired { .. }),
            "{error}"
        );
        assert_eq!(started.elapsed(), Duration::from_secs(45));
    }

    #[tokio::test(start_paused = true)]
    async fn each_beat_that_gets_through_restarts_the_session_clock() {
        let started = Instant::now();
        let beats = AtomicU32::new(0);
        // Beats 1-10 get through (30 s), then the coordinator is gone for good.
        let error = beat_until_error(
            || {
                let n = beats.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < 10 {
                        Ok(())
                    } else {
                        Err(unreachable())
                    }
                }
            },
            &timing(),
            |_| {},
            || {},
        )
        .await;
        assert!(
            matches!(error, GroupError::SessionExpired { .. }),
            "{error}"
        );
        assert_eq!(started.elapsed(), Duration::from_secs(30 + 45));
    }

    #[tokio::test(start_paused = true)]
    async fn errors_the_membership_must_handle_end_the_task_at_once() {
        let started = Instant::now();
        let error = beat_until_error(
            || async { Err(gone()) },
            &timing(),
            |_| panic!("not transient"),
            || panic!("not a rebalance"),
        )
        .await;
        assert!(matches!(error, GroupError::MemberGone { .. }), "{error}");
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }

    fn gone() -> GroupError {
        GroupError::MemberGone {
            api: "Heartbeat",
            error: kafka_protocol::error::ResponseError::UnknownMemberId,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_rebalance_is_reported_and_the_beats_go_on() {
        let started = Instant::now();
        let beats = AtomicU32::new(0);
        let rebalances = AtomicU32::new(0);
        // Rebalancing answers for a minute (the member revokes, then joins), then gone.
        let error = beat_until_error(
            || {
                let n = beats.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < 20 {
                        Err(GroupError::Rebalancing { api: "Heartbeat" })
                    } else {
                        Err(gone())
                    }
                }
            },
            &timing(),
            |_| panic!("not transient"),
            || {
                rebalances.fetch_add(1, Ordering::SeqCst);
            },
        )
        .await;
        assert!(matches!(error, GroupError::MemberGone { .. }), "{error}");
        assert_eq!(rebalances.load(Ordering::SeqCst), 20);
        // Every interval, past the 45 s session timeout: each answer counts as heard.
        assert_eq!(started.elapsed(), Duration::from_secs(21 * 3));
    }
}
