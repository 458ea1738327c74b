//! Finding the group coordinator (FindCoordinator on a `Default` connection).

use std::future::Future;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::FindCoordinatorRequest;
use kafka_protocol::protocol::StrBytes;

use crate::client::{bootstrap_id, Client};
use crate::error_chain::Chain;

use super::error::{classify, GroupError, Retry};

/// Asks any reachable broker which broker coordinates `group` (the first to answer, see
/// [`Client::ask_any_broker`]); registers its address in the pool and returns its id.
pub async fn find_coordinator(client: &Client, group: &str) -> Result<i32, GroupError> {
    let metadata = client.fresh_metadata().await?;
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(group.to_string()))
        .with_key_type(0);
    let mut candidates: Vec<i32> = metadata.brokers.keys().copied().collect();
    if candidates.is_empty() {
        candidates.push(bootstrap_id(0));
    }
    let response = client.ask_any_broker(&candidates, request).await?;
    if let Some(error) = ResponseError::try_from_code(response.error_code) {
        return Err(classify("FindCoordinator", group, None, error));
    }
    let id = response.node_id.0;
    client
        .pool()
        .set_address(id, format!("{}:{}", response.host, response.port));
    Ok(id)
}

/// The group's coordinator, looked up once and shared by the membership, heartbeat and commit
/// tasks; whichever task sees it move forgets it, and the next one to need it looks it up.
#[derive(Debug, Default)]
pub struct KnownCoordinator(std::sync::Mutex<Option<i32>>);

impl KnownCoordinator {
    /// The coordinator, found now if it is not known.
    pub async fn get(&self, client: &Client, group: &str) -> Result<i32, GroupError> {
        if let Some(id) = self.known() {
            return Ok(id);
        }
        let id = find_coordinator(client, group).await?;
        tracing::info!(group, coordinator = id, "found the group coordinator");
        *self.0.lock().expect("coordinator lock") = Some(id);
        Ok(id)
    }

    pub fn known(&self) -> Option<i32> {
        *self.0.lock().expect("coordinator lock")
    }

    /// The coordinator moved or cannot be reached: look it up again next time.
    pub fn forget(&self) {
        *self.0.lock().expect("coordinator lock") = None;
    }
}

/// How long a one-shot command (describe, plan, delete) waits for a coordinator that is not
/// there yet.
pub const ADMIN_PATIENCE: Duration = Duration::from_secs(30);

/// Runs `attempt` until it succeeds or fails with something that will not heal by itself: a
/// coordinator the broker has not elected yet (its first group creates `__consumer_offsets`),
/// one that is loading or moved, or a transient broker error is asked again, with backoff from
/// 100 ms to 1 s, for up to [`ADMIN_PATIENCE`]; then the last error is returned. For one-shot
/// commands: the membership tasks have their own retries. A client error (an unreachable
/// broker) is returned at once, as the pool already retried it.
pub async fn retry_while_healing<T, F, Fut>(mut attempt: F) -> Result<T, GroupError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, GroupError>>,
{
    let deadline = Instant::now() + ADMIN_PATIENCE;
    let mut backoff = Duration::from_millis(100);
    loop {
        match attempt().await {
            Err(
                error @ (GroupError::Retry(Retry::CoordinatorMoved { .. })
                | GroupError::Retry(Retry::Transient { .. })),
            ) if Instant::now() + backoff < deadline => {
                tracing::debug!(error = %Chain(&error), ?backoff, "retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            result => return result,
        }
    }
}

/// [`find_coordinator`] with [`retry_while_healing`], for one-shot commands.
pub async fn find_coordinator_patiently(client: &Client, group: &str) -> Result<i32, GroupError> {
    retry_while_healing(|| find_coordinator(client, group)).await
}
