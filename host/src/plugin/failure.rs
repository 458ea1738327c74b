//! What can go wrong with a plugin, named for the user: below the runtime that produces the
//! failures and the quarantine that counts them.

use std::time::Duration;

use super::contract::ContractError;
use super::digest::Sha256Digest;
use crate::error_chain::IoFailure;

/// What went wrong with a plugin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginFailure {
    #[error("cannot read it: {0}")]
    Read(IoFailure),
    #[error("the file is {size} bytes, over the {limit}-byte limit (plugins.max_file_bytes)")]
    TooLarge { size: usize, limit: usize },
    /// The file is not the build the config pins.
    #[error(
        "its SHA-256 is {actual}, but the config pins {pinned}: it is not the build you \
         pinned. Put the intended file back, or pin the new one (sha256 = \"{actual}\")"
    )]
    PinMismatch {
        pinned: Sha256Digest,
        actual: Sha256Digest,
    },
    #[error(transparent)]
    Contract(#[from] ContractError),
    #[error("cannot compile it: {0}")]
    Compile(String),
    #[error("cannot instantiate it: {0}")]
    Instantiate(String),
    #[error("it ran past its {0:?} deadline and was stopped (plugins.deadline_ms)")]
    Deadline(Duration),
    #[error(
        "it tried to use more than {0} bytes of memory and was stopped (plugins.memory_bytes)"
    )]
    MemoryLimit(usize),
    #[error("it trapped: {0}")]
    Trap(String),
    #[error("its answer is not valid: {0}")]
    InvalidAnswer(String),
    #[error("it failed {failures} times in a row and is skipped for {remaining:?}")]
    Quarantined { failures: u32, remaining: Duration },
}

/// A plugin failure, naming the plugin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugin {plugin}: {failure}")]
pub struct PluginError {
    pub plugin: String,
    pub failure: PluginFailure,
}
