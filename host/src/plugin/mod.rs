//! Sandboxed plugins: assignors and reset policies as WebAssembly components behind the
//! host's [`Assignor`](crate::group::Assignor) and [`ResetPolicy`](crate::policy::ResetPolicy)
//! traits.
//!
//! - [`contract`]: read a component's contract version, exports and imports before compiling.
//! - [`runtime`]: one engine, per-call stores with a deadline and a memory cap.
//! - [`failure`]: what can go wrong with a plugin, named for the user.
//! - [`cache`]: compiled plugins on disk, checked before they run, in a private directory.
//! - [`digest`]: SHA-256 digests: pins in the config, cache entry names.
//! - [`assignor`], [`reset`]: the typed handles, one wasmtime `bindgen!` per contract version
//!   (`wit/plugin.wit` is the current one, `wit/since_v*/` the frozen ones), settled at load.
//! - [`log`]: a plugin's `log` import (0.3.0) into the host's log, rate-limited and cut.
//! - [`quarantine`]: a plugin that keeps failing is skipped for a while.
//! - [`stats`]: calls, failures, quarantine skips and call times per plugin (for `/metrics`).
//! - [`hot_swap`]: a changed plugin file is picked up at the next call; a broken new version
//!   is refused and the previous one keeps running.

pub mod assignor;
pub mod cache;
pub mod contract;
pub mod digest;
pub mod failure;
pub mod hot_swap;
pub mod log;
pub mod quarantine;
pub mod reset;
pub mod runtime;
pub mod stats;

pub use assignor::WasmAssignor;
pub use cache::CompileCache;
pub use contract::{
    inspect, ContractError, PluginInfo, PluginKind, CONTRACT_VERSION, CONTRACT_VERSIONS,
};
pub use digest::Sha256Digest;
pub use failure::{PluginError, PluginFailure};
pub use log::{LogLevel, LogLine, LogSink};
pub use reset::WasmResetPolicy;
pub use runtime::{PluginLimits, PluginRuntime};
