//! Heartbeats on their own task, timer and connection.
//!
//! The membership task starts one [`Heartbeat`] when it becomes stable and drops it when it
//! leaves that phase. Nothing the membership task waits for (a commit, an OffsetFetch, a
//! revoke, the application's listener) delays a heartbeat, and heartbeats use the
//! coordinator's `Heartbeat` connection, so a commit the broker holds does not either.
//!
//! Transient failures (a dropped connection, a moved coordinator, a timeout) are retried
//! here, sooner than the interval, while the member is still in the group as far as it
//! knows: the coordinator's session timeout is the judge. Anything else ends the task with
//! the error, which the membership task routes.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{GroupId, HeartbeatRequest};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::net::{Backoff, Purpose};

use super::error::{classify, GroupError};
use super::membership::GroupShared;

/// A running heartbeat; dropping it stops the task.
pub struct Heartbeat {
    task: JoinHandle<()>,
    ended: oneshot::Receiver<GroupError>,
}

impl Heartbeat {
    pub fn start(
        client: Client,
        shared: Arc<GroupShared>,
        interval: Duration,
        backoff: Backoff,
    ) -> Heartbeat {
        let (end, ended) = oneshot::channel();
        let task = tokio::spawn(async move {
            let error = beat_until_error(&client, &shared, interval, &backoff).await;
            let _ = end.send(error);
        });
        Heartbeat { task, ended }
    }

    /// Waits until the heartbeat ends with an error only the membership task can handle
    /// (rebalance, member gone, fenced, fatal).
    pub async fn ended(&mut self) -> GroupError {
        (&mut self.ended).await.unwrap_or(GroupError::Closed)
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn beat_until_error(
    client: &Client,
    shared: &GroupShared,
    interval: Duration,
    backoff: &Backoff,
) -> GroupError {
    let mut failures = 0;
    let mut delay = interval;
    loop {
        tokio::time::sleep(delay).await;
        match beat(client, shared).await {
            Ok(()) => {
                failures = 0;
                delay = interval;
            }
            Err(error) if error.is_transient() => {
                if error.coordinator_lost() {
                    shared.coordinator.forget();
                }
                failures += 1;
                delay = backoff.delay(failures).min(interval);
                tracing::warn!(group = %shared.group, %error, retry_in = ?delay, "heartbeat failed");
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
