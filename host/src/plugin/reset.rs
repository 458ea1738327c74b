//! A Wasm reset policy behind the host's [`ResetPolicy`] trait.

use std::path::Path;
use std::sync::Arc;

use crate::policy::{PolicyError, ResetContext, ResetDecision, ResetPolicy, ResetReason};

use super::contract::PluginKind;
use super::digest::Sha256Digest;
use super::hot_swap::Swappable;
use super::runtime::{CallState, PluginCaller, PluginError, PluginFailure, PluginRuntime};

/// Contract 0.2.0 (`wit/plugin.wit`): the truncation reason and `decide-all`.
mod v0_2_0 {
    wasmtime::component::bindgen!({
        world: "reset-policy-plugin",
        path: "../wit",
    });
}

/// Contract 0.1.0, frozen (`wit/since_v0.1.0/plugin.wit`).
mod v0_1_0 {
    wasmtime::component::bindgen!({
        world: "reset-policy-plugin",
        path: "../wit/since_v0.1.0",
    });
}

/// A plugin linked through the bindings of its contract version (settled once, at load).
enum Linked {
    V0_2_0(v0_2_0::ResetPolicyPluginPre<CallState>),
    V0_1_0(v0_1_0::ResetPolicyPluginPre<CallState>),
}

/// A reset-policy plugin, ready to call; a changed file is picked up at the next decision
/// (see [`super::hot_swap`]).
pub struct WasmResetPolicy {
    caller: PluginCaller,
    runtime: Arc<PluginRuntime>,
    linked: Swappable<Linked>,
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
        WasmResetPolicy::load_pinned(runtime, path, None)
    }

    /// [`WasmResetPolicy::load`], refusing any file (now or swapped in later) whose SHA-256
    /// is not `pin`.
    pub fn load_pinned(
        runtime: &Arc<PluginRuntime>,
        path: &Path,
        pin: Option<Sha256Digest>,
    ) -> Result<WasmResetPolicy, PluginError> {
        let caller = PluginCaller::new(runtime.clone(), path).pinned(pin);
        let linked = link(runtime, &caller, path)?;
        let name = linked.name(&caller)?;
        Ok(WasmResetPolicy {
            caller,
            runtime: runtime.clone(),
            linked: Swappable::new(path, linked),
            name,
            settings: Vec::new(),
        })
    }

    /// Settings handed to the plugin with every decision (from the config).
    pub fn with_settings(mut self, settings: Vec<(String, String)>) -> Self {
        self.settings = settings;
        self
    }

    /// The current version (a changed file is loaded first; a new version must keep the
    /// plugin's name).
    fn current(&self) -> Arc<Linked> {
        self.linked
            .current(|path| {
                let linked = link(&self.runtime, &self.caller, path)?;
                let name = linked.name(&self.caller)?;
                if name != self.name {
                    return Err(self.caller.error(PluginFailure::InvalidAnswer(format!(
                        "its new version is named `{name}`, not `{}`; restart to use it",
                        self.name
                    ))));
                }
                Ok(linked)
            })
            .0
    }

    fn policy_error(&self, error: PluginError) -> PolicyError {
        PolicyError {
            policy: self.name.clone(),
            message: error.to_string(),
        }
    }

    /// The settings the plugin sees: the context's, then the config's.
    fn settings_of(&self, context: &ResetContext) -> Vec<(String, String)> {
        context
            .settings
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain(self.settings.iter().cloned())
            .collect()
    }
}

/// Loads, checks and links the file as a reset policy, with the bindings of its version.
fn link(
    runtime: &PluginRuntime,
    caller: &PluginCaller,
    path: &Path,
) -> Result<Linked, PluginError> {
    let (info, instance_pre) = runtime.prepare(path, caller.pin(), PluginKind::ResetPolicy)?;
    let instantiate =
        |e: wasmtime::Error| caller.error(PluginFailure::Instantiate(format!("{e:#}")));
    Ok(match info.version.as_str() {
        "0.1.0" => {
            Linked::V0_1_0(v0_1_0::ResetPolicyPluginPre::new(instance_pre).map_err(instantiate)?)
        }
        _ => Linked::V0_2_0(v0_2_0::ResetPolicyPluginPre::new(instance_pre).map_err(instantiate)?),
    })
}

/// The same conversions for every contract version's generated types (`t`).
macro_rules! conversions {
    ($t:path) => {
        use $t as t;

        pub(super) fn decision(decision: t::ResetDecision) -> ResetDecision {
            match decision {
                t::ResetDecision::Earliest => ResetDecision::Earliest,
                t::ResetDecision::Latest => ResetDecision::Latest,
                t::ResetDecision::Offset(offset) => ResetDecision::Offset(offset),
                t::ResetDecision::Timestamp(ms) => ResetDecision::Timestamp(ms),
                t::ResetDecision::Fail(message) => ResetDecision::Fail(message),
            }
        }

        pub(super) fn context(
            context: &ResetContext,
            reason: t::ResetReason,
            settings: Vec<(String, String)>,
        ) -> t::ResetContext {
            t::ResetContext {
                topic: context.topic.clone(),
                partition: context.partition,
                reason,
                committed: context.committed,
                log_start: context.log_start,
                high_watermark: context.high_watermark,
                now_ms: context.now_ms,
                group: context.group.clone(),
                settings,
            }
        }
    };
}

mod convert_v0_2_0 {
    use super::{ResetContext, ResetDecision, ResetReason};
    conversions!(super::v0_2_0::wasmkafka::plugin::types);

    pub(super) fn reason(reason: ResetReason) -> t::ResetReason {
        match reason {
            ResetReason::NoCommittedOffset => t::ResetReason::NoCommittedOffset,
            ResetReason::OutOfRange { offset } => t::ResetReason::OutOfRange(offset),
            ResetReason::LogTruncated {
                offset,
                diverged_at,
            } => t::ResetReason::LogTruncated(t::Truncation {
                offset,
                diverged_at,
            }),
        }
    }
}

mod convert_v0_1_0 {
    use super::{ResetContext, ResetDecision, ResetReason};
    conversions!(super::v0_1_0::wasmkafka::plugin::types);

    /// Contract 0.1.0 has no truncation reason: the position is out of the log the plugin
    /// can see.
    pub(super) fn reason(reason: ResetReason) -> t::ResetReason {
        match reason {
            ResetReason::NoCommittedOffset => t::ResetReason::NoCommittedOffset,
            ResetReason::OutOfRange { offset } | ResetReason::LogTruncated { offset, .. } => {
                t::ResetReason::OutOfRange(offset)
            }
        }
    }
}

impl Linked {
    fn name(&self, caller: &PluginCaller) -> Result<String, PluginError> {
        match self {
            Linked::V0_2_0(pre) => caller.call(
                |store| pre.instantiate(store),
                |plugin, store| plugin.wasmkafka_plugin_reset_policy().call_name(store),
            ),
            Linked::V0_1_0(pre) => caller.call(
                |store| pre.instantiate(store),
                |plugin, store| plugin.wasmkafka_plugin_reset_policy().call_name(store),
            ),
        }
    }
}

impl ResetPolicy for WasmResetPolicy {
    fn name(&self) -> &str {
        &self.name
    }

    fn decide(&self, context: &ResetContext) -> Result<ResetDecision, PolicyError> {
        let settings = self.settings_of(context);
        let linked = self.current();
        let answer = match &*linked {
            Linked::V0_2_0(pre) => {
                let input = convert_v0_2_0::context(
                    context,
                    convert_v0_2_0::reason(context.reason),
                    settings,
                );
                self.caller
                    .call(
                        |store| pre.instantiate(store),
                        |plugin, store| {
                            plugin
                                .wasmkafka_plugin_reset_policy()
                                .call_decide(store, &input)
                        },
                    )
                    .map(convert_v0_2_0::decision)
            }
            Linked::V0_1_0(pre) => {
                let input = convert_v0_1_0::context(
                    context,
                    convert_v0_1_0::reason(context.reason),
                    settings,
                );
                self.caller
                    .call(
                        |store| pre.instantiate(store),
                        |plugin, store| {
                            plugin
                                .wasmkafka_plugin_reset_policy()
                                .call_decide(store, &input)
                        },
                    )
                    .map(convert_v0_1_0::decision)
            }
        };
        answer.map_err(|error| self.policy_error(error))
    }

    /// Contract 0.2.0: one call for every context; 0.1.0: one call each.
    fn decide_all(&self, contexts: &[ResetContext]) -> Vec<Result<ResetDecision, PolicyError>> {
        let linked = self.current();
        let Linked::V0_2_0(pre) = &*linked else {
            return contexts.iter().map(|c| self.decide(c)).collect();
        };
        let inputs: Vec<_> = contexts
            .iter()
            .map(|c| {
                convert_v0_2_0::context(c, convert_v0_2_0::reason(c.reason), self.settings_of(c))
            })
            .collect();
        let answer = self.caller.call(
            |store| pre.instantiate(store),
            |plugin, store| {
                plugin
                    .wasmkafka_plugin_reset_policy()
                    .call_decide_all(store, &inputs)
            },
        );
        match answer {
            Ok(decisions) if decisions.len() == contexts.len() => decisions
                .into_iter()
                .map(|d| Ok(convert_v0_2_0::decision(d)))
                .collect(),
            Ok(decisions) => {
                let error = self.caller.error(PluginFailure::InvalidAnswer(format!(
                    "decide-all answered {} decisions for {} partitions",
                    decisions.len(),
                    contexts.len()
                )));
                contexts
                    .iter()
                    .map(|_| Err(self.policy_error(error.clone())))
                    .collect()
            }
            Err(error) => contexts
                .iter()
                .map(|_| Err(self.policy_error(error.clone())))
                .collect(),
        }
    }
}
