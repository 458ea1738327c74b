//! The waiting both membership tasks do (classic and consumer protocol): a request pending
//! beside the others in one `select!`, a stop that ends any wait, and the wait for the
//! application's next poll after leaving for want of one.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use crate::fetch::Consumer;

use super::shared::GroupShared;

/// A request a task waits for beside everything else.
pub type Pending<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Runs `step` unless a stop is asked for first (then `None`; `step` is dropped: a request
/// in flight is abandoned, its answer read and discarded by the connection).
pub async fn unless_closing<T>(shared: &GroupShared, step: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        biased;
        _ = shared.closed() => None,
        output = step => Some(output),
    }
}

/// Sleeps until `at`, or forever without one.
pub async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// The pending request's answer, or never without one.
pub async fn wait_some<T>(pending: &mut Option<Pending<T>>) -> T {
    match pending {
        Some(pending) => pending.await,
        None => std::future::pending().await,
    }
}

/// A duration in whole milliseconds, as the group APIs carry them.
pub fn millis(duration: Duration) -> i32 {
    i32::try_from(duration.as_millis()).unwrap_or(i32::MAX)
}

/// After the member left because the application stopped polling: waits for its next poll
/// (true) or a stop (false).
pub async fn next_poll(consumer: &Consumer, shared: &GroupShared) -> bool {
    let left_at = Instant::now();
    loop {
        if consumer.idle().is_some_and(|idle| idle < left_at.elapsed()) {
            return true;
        }
        if unless_closing(shared, tokio::time::sleep(Duration::from_millis(100)))
            .await
            .is_none()
        {
            return false;
        }
    }
}
