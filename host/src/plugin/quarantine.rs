//! A plugin that keeps failing is skipped for a while (exponential backoff), so a broken
//! plugin costs one fast failure per call instead of a full deadline every time.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::failure::PluginFailure;

/// Failures in a row before the plugin is skipped.
const THRESHOLD: u32 = 3;
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const LONGEST_PAUSE: Duration = Duration::from_secs(300);

#[derive(Debug, Default)]
pub struct Quarantine {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    failures: u32,
    until: Option<Instant>,
}

impl Quarantine {
    /// `Err` while the plugin is being skipped.
    pub fn check(&self) -> Result<(), PluginFailure> {
        let state = self.state.lock().expect("quarantine lock");
        match state.until {
            Some(until) if until > Instant::now() => Err(PluginFailure::Quarantined {
                failures: state.failures,
                remaining: until - Instant::now(),
            }),
            _ => Ok(()),
        }
    }

    pub fn succeeded(&self) {
        let mut state = self.state.lock().expect("quarantine lock");
        state.failures = 0;
        state.until = None;
    }

    /// Counts a failure; returns how many in a row.
    pub fn failed(&self) -> u32 {
        let mut state = self.state.lock().expect("quarantine lock");
        state.failures += 1;
        if state.failures >= THRESHOLD {
            let exponent = (state.failures - THRESHOLD).min(16);
            let pause = FIRST_PAUSE.saturating_mul(1 << exponent).min(LONGEST_PAUSE);
            state.until = Some(Instant::now() + pause);
        }
        state.failures
    }
}
