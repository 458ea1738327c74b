//! The signals that ask for a clean stop: SIGTERM (systemd, Kubernetes) and SIGINT (ctrl-c).
//! The first one starts the stop; a second one during it ends the process at once.

use anyhow::Context;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// SIGTERM and SIGINT, listened to from the start of the run (a signal that arrives before
/// anyone waits is kept, not lost).
pub struct StopSignals {
    terminate: Signal,
    interrupt: Signal,
}

impl StopSignals {
    pub fn install() -> anyhow::Result<StopSignals> {
        Ok(StopSignals {
            terminate: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            interrupt: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
        })
    }

    /// Waits for the next SIGTERM or SIGINT and names it.
    pub async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}
