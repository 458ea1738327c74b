//! A Wasm reset policy behind the host's [`ResetPolicy`] trait.

use std::path::Path;
use std::sync::Arc;

use crate::policy::{PolicyError, ResetContext, ResetDecision, ResetPolicy, ResetReason};

use super::contract::PluginKind;
use super::hot_swap::Swappable;
use super::runtime::{CallState, PluginCaller, PluginError, PluginFailure, PluginRuntime};

mod bindings {
    wasmtime::component::bindgen!({
        world: "reset-policy-plugin",
        path: "../wit",
    });
}

use bindings::exports::wasmkafka::plugin::reset_policy as wit;
use bindings::wasmkafka::plugin::types as t;
use bindings::{ResetPolicyPlugin, ResetPolicyPluginPre};

/// A reset-policy plugin, ready to call; a changed file is picked up at the next decision
/// (see [`super::hot_swap`]).
pub struct WasmResetPolicy {
    caller: PluginCaller,
    runtime: Arc<PluginRuntime>,
    pre: Swappable<ResetPolicyPluginPre<CallState>>,
    name: String,
    settings: Vec<(String, String)>,
}

impl std::fmt::Debug for WasmResetPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmResetPolicy")
            .field("plugin", &self.caller.plugin())
            .field("name", &self.name)
            .finish()
    }
}

impl WasmResetPolicy {
    /// Loads, checks and links a reset-policy plugin, then asks its name.
    pub fn load(runtime: &Arc<PluginRuntime>, path: &Path) -> Result<WasmResetPolicy, PluginError> {
        let caller = PluginCaller::new(runtime.clone(), path);
        let pre = link(runtime, &caller, path)?;
        let name = call_on(&caller, &pre, |plugin, store| plugin.call_name(store))?;
        Ok(WasmResetPolicy {
            caller,
            runtime: runtime.clone(),
            pre: Swappable::new(path, pre),
            name,
            settings: Vec::new(),
        })
    }

    /// Settings handed to the plugin with every decision (from the config).
    pub fn with_settings(mut self, settings: Vec<(String, String)>) -> Self {
        self.settings = settings;
        self
    }

    /// Calls the current version (a changed file is loaded first; a new version must keep
    /// the plugin's name).
    fn call<R>(
        &self,
        f: impl FnOnce(&wit::Guest, &mut wasmtime::Store<CallState>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        let (pre, _) = self.pre.current(|path| {
            let pre = link(&self.runtime, &self.caller, path)?;
            let name = call_on(&self.caller, &pre, |plugin, store| plugin.call_name(store))?;
            if name != self.name {
                return Err(self.caller.error(PluginFailure::InvalidAnswer(format!(
                    "its new version is named `{name}`, not `{}`; restart to use it",
                    self.name
                ))));
            }
            Ok(pre)
        });
        call_on(&self.caller, &pre, f)
    }
}

/// Loads, checks and links the file as a reset policy.
fn link(
    runtime: &PluginRuntime,
    caller: &PluginCaller,
    path: &Path,
) -> Result<ResetPolicyPluginPre<CallState>, PluginError> {
    let instance_pre = runtime.prepare(path, PluginKind::ResetPolicy)?;
    ResetPolicyPluginPre::new(instance_pre)
        .map_err(|e| caller.error(PluginFailure::Instantiate(format!("{e:#}"))))
}

fn call_on<R>(
    caller: &PluginCaller,
    pre: &ResetPolicyPluginPre<CallState>,
    f: impl FnOnce(&wit::Guest, &mut wasmtime::Store<CallState>) -> wasmtime::Result<R>,
) -> Result<R, PluginError> {
    caller.call(
        |store| pre.instantiate(store),
        |instance: &ResetPolicyPlugin, store| f(instance.wasmkafka_plugin_reset_policy(), store),
    )
}

impl ResetPolicy for WasmResetPolicy {
    fn name(&self) -> &str {
        &self.name
    }

    fn decide(&self, context: &ResetContext) -> Result<ResetDecision, PolicyError> {
        let input = t::ResetContext {
            topic: context.topic.clone(),
            partition: context.partition,
            reason: match context.reason {
                ResetReason::NoCommittedOffset => t::ResetReason::NoCommittedOffset,
                ResetReason::OutOfRange { offset } => t::ResetReason::OutOfRange(offset),
                // Contract 0.1.0 has no truncation reason: the position is out of the log
                // the plugin can see.
                ResetReason::LogTruncated { offset, .. } => t::ResetReason::OutOfRange(offset),
            },
            committed: context.committed,
            log_start: context.log_start,
            high_watermark: context.high_watermark,
            now_ms: context.now_ms,
            group: context.group.clone(),
            settings: context
                .settings
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .chain(self.settings.iter().cloned())
                .collect(),
        };
        let decision = self
            .call(|plugin, store| plugin.call_decide(store, &input))
            .map_err(|error| PolicyError {
                policy: self.name.clone(),
                message: error.to_string(),
            })?;
        Ok(match decision {
            t::ResetDecision::Earliest => ResetDecision::Earliest,
            t::ResetDecision::Latest => ResetDecision::Latest,
            t::ResetDecision::Offset(offset) => ResetDecision::Offset(offset),
            t::ResetDecision::Timestamp(ms) => ResetDecision::Timestamp(ms),
            t::ResetDecision::Fail(message) => ResetDecision::Fail(message),
        })
    }
}
