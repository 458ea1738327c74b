//! A Wasm reset policy behind the host's [`ResetPolicy`] trait.

use std::path::Path;
use std::sync::Arc;

use crate::policy::{PolicyError, ResetContext, ResetDecision, ResetPolicy, ResetReason};

use super::contract::PluginKind;
use super::digest::Sha256Digest;
use super::failure::{PluginError, PluginFailure};
use super::hot_swap::Swappable;
use super::runtime::{CallState, PluginCaller, PluginRuntime};

/// One contract version's bindings and the calls through them. `truncation` says how a
/// truncated log reaches the plugin: as itself (0.2.0 on) or as out of range (0.1.0, which
/// has no such reason); `decide_all` whether the version has the batch call.
macro_rules! reset_version {
    ($module:ident, $wit:literal, { $($with:tt)* }, truncation: $truncation:ident, decide_all: $batch:ident) => {
        mod $module {
            wasmtime::component::bindgen!({
                world: "reset-policy-plugin",
                path: $wit,
                with: { $($with)* },
            });

            use super::{CallState, PluginCaller, PluginError, ResetContext, ResetDecision, ResetReason};
            use self::wasmkafka::plugin::types as t;

            pub type Pre = ResetPolicyPluginPre<CallState>;

            fn call<R>(
                caller: &PluginCaller,
                pre: &Pre,
                f: impl FnOnce(
                    &exports::wasmkafka::plugin::reset_policy::Guest,
                    &mut wasmtime::Store<CallState>,
                ) -> wasmtime::Result<R>,
            ) -> Result<R, PluginError> {
                caller.call(
                    |store| pre.instantiate(store),
                    |plugin: &ResetPolicyPlugin, store| f(plugin.wasmkafka_plugin_reset_policy(), store),
                )
            }

            pub fn name(caller: &PluginCaller, pre: &Pre) -> Result<String, PluginError> {
                call(caller, pre, |plugin, store| plugin.call_name(store))
            }

            pub fn decide(
                caller: &PluginCaller,
                pre: &Pre,
                context: &ResetContext,
                settings: Vec<(String, String)>,
            ) -> Result<ResetDecision, PluginError> {
                let input = to_wit(context, settings);
                call(caller, pre, |plugin, store| plugin.call_decide(store, &input)).map(decision)
            }

            reset_version!(@decide_all $batch);

            fn decision(decision: t::ResetDecision) -> ResetDecision {
                match decision {
                    t::ResetDecision::Earliest => ResetDecision::Earliest,
                    t::ResetDecision::Latest => ResetDecision::Latest,
                    t::ResetDecision::Offset(offset) => ResetDecision::Offset(offset),
                    t::ResetDecision::Timestamp(ms) => ResetDecision::Timestamp(ms),
                    t::ResetDecision::Fail(message) => ResetDecision::Fail(message),
                }
            }

            fn to_wit(context: &ResetContext, settings: Vec<(String, String)>) -> t::ResetContext {
                t::ResetContext {
                    topic: context.topic.clone(),
                    partition: context.partition,
                    reason: reset_version!(@reason $truncation, context.reason),
                    committed: context.committed,
                    log_start: context.log_start,
                    high_watermark: context.high_watermark,
                    now_ms: context.now_ms,
                    group: context.group.clone(),
                    settings,
                }
            }
        }
    };
    (@decide_all yes) => {
        /// One call for every context; `Err(n)` when the answer has `n` decisions instead.
        pub fn decide_all(
            caller: &PluginCaller,
            pre: &Pre,
            inputs: Vec<(&ResetContext, Vec<(String, String)>)>,
        ) -> Result<Result<Vec<ResetDecision>, usize>, PluginError> {
            let count = inputs.len();
            let inputs: Vec<t::ResetContext> = inputs
                .into_iter()
                .map(|(context, settings)| to_wit(context, settings))
                .collect();
            let decisions =
                call(caller, pre, |plugin, store| plugin.call_decide_all(store, &inputs))?;
            Ok(if decisions.len() == count {
                Ok(decisions.into_iter().map(decision).collect())
            } else {
                Err(decisions.len())
            })
        }
    };
    (@decide_all no) => {};
    (@reason reported, $reason:expr) => {
        match $reason {
            ResetReason::NoCommittedOffset => t::ResetReason::NoCommittedOffset,
            ResetReason::OutOfRange { offset } => t::ResetReason::OutOfRange(offset),
            ResetReason::LogTruncated { offset, diverged_at } => {
                t::ResetReason::LogTruncated(t::Truncation { offset, diverged_at })
            }
        }
    };
    (@reason as_out_of_range, $reason:expr) => {
        match $reason {
            ResetReason::NoCommittedOffset => t::ResetReason::NoCommittedOffset,
            ResetReason::OutOfRange { offset } | ResetReason::LogTruncated { offset, .. } => {
                t::ResetReason::OutOfRange(offset)
            }
        }
    };
}

// Contract 0.3.0 (`wit/plugin.wit`): 0.2.0 plus the `log` import (linked once, by
// `super::log`).
reset_version!(v0_3_0, "../wit", {
    "wasmkafka:plugin/log": crate::plugin::log::bindings::wasmkafka::plugin::log,
}, truncation: reported, decide_all: yes);
// Contract 0.2.0, frozen (`wit/since_v0.2.0/`): the truncation reason and `decide-all`.
reset_version!(v0_2_0, "../wit/since_v0.2.0", {}, truncation: reported, decide_all: yes);
// Contract 0.1.0, frozen (`wit/since_v0.1.0/`): no truncation reason, no `decide-all`.
reset_version!(v0_1_0, "../wit/since_v0.1.0", {}, truncation: as_out_of_range, decide_all: no);

/// A plugin linked through the bindings of its contract version (settled once, at load).
enum Linked {
    V0_3_0(v0_3_0::Pre),
    V0_2_0(v0_2_0::Pre),
    V0_1_0(v0_1_0::Pre),
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
        caller.log().named(&name);
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
        "0.1.0" => Linked::V0_1_0(v0_1_0::Pre::new(instance_pre).map_err(instantiate)?),
        "0.2.0" => Linked::V0_2_0(v0_2_0::Pre::new(instance_pre).map_err(instantiate)?),
        _ => Linked::V0_3_0(v0_3_0::Pre::new(instance_pre).map_err(instantiate)?),
    })
}

impl Linked {
    fn name(&self, caller: &PluginCaller) -> Result<String, PluginError> {
        match self {
            Linked::V0_3_0(pre) => v0_3_0::name(caller, pre),
            Linked::V0_2_0(pre) => v0_2_0::name(caller, pre),
            Linked::V0_1_0(pre) => v0_1_0::name(caller, pre),
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
        let caller = &self.caller;
        let answer = match &*linked {
            Linked::V0_3_0(pre) => v0_3_0::decide(caller, pre, context, settings),
            Linked::V0_2_0(pre) => v0_2_0::decide(caller, pre, context, settings),
            Linked::V0_1_0(pre) => v0_1_0::decide(caller, pre, context, settings),
        };
        answer.map_err(|error| self.policy_error(error))
    }

    /// Contract 0.2.0 on: one call for every context; 0.1.0: one call each.
    fn decide_all(&self, contexts: &[ResetContext]) -> Vec<Result<ResetDecision, PolicyError>> {
        let linked = self.current();
        let inputs = contexts.iter().map(|c| (c, self.settings_of(c))).collect();
        let answer = match &*linked {
            Linked::V0_3_0(pre) => v0_3_0::decide_all(&self.caller, pre, inputs),
            Linked::V0_2_0(pre) => v0_2_0::decide_all(&self.caller, pre, inputs),
            Linked::V0_1_0(_) => return contexts.iter().map(|c| self.decide(c)).collect(),
        };
        let error = match answer {
            Ok(Ok(decisions)) => return decisions.into_iter().map(Ok).collect(),
            Ok(Err(answered)) => self.caller.error(PluginFailure::InvalidAnswer(format!(
                "decide-all answered {answered} decisions for {} partitions",
                contexts.len()
            ))),
            Err(error) => error,
        };
        contexts
            .iter()
            .map(|_| Err(self.policy_error(error.clone())))
            .collect()
    }
}
