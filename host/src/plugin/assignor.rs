//! A Wasm assignor behind the host's [`Assignor`] trait, for every contract version the host
//! runs: one generated binding per version (the `assignor` interface is the same in every
//! version; only the package version in its names differs, and 0.3.0 imports `log`), chosen
//! once, at load.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use wasmkafka_policy::assign::{Assignment, Group, MemberAssignment};

use crate::error_chain::Chain;
use crate::group::{Assignor, AssignorError, RebalanceProtocol};

use super::contract::PluginKind;
use super::digest::Sha256Digest;
use super::failure::{PluginError, PluginFailure};
use super::hot_swap::Swappable;
use super::runtime::{CallState, PluginCaller, PluginRuntime};

/// A member's share as the plugin answered it.
type Shares = Result<Vec<(String, MemberAssignment)>, String>;

/// One contract version's bindings and the calls through them.
macro_rules! assignor_version {
    ($module:ident, $wit:literal, { $($with:tt)* }) => {
        mod $module {
            wasmtime::component::bindgen!({
                world: "assignor-plugin",
                path: $wit,
                with: { $($with)* },
            });

            use super::{CallState, MemberAssignment, PluginCaller, PluginError, Shares};
            use crate::group::RebalanceProtocol;
            use wasmkafka_policy::assign::Group;
            use self::wasmkafka::plugin::types as t;

            pub type Pre = AssignorPluginPre<CallState>;

            fn call<R>(
                caller: &PluginCaller,
                pre: &Pre,
                f: impl FnOnce(
                    &exports::wasmkafka::plugin::assignor::Guest,
                    &mut wasmtime::Store<CallState>,
                ) -> wasmtime::Result<R>,
            ) -> Result<R, PluginError> {
                caller.call(
                    |store| pre.instantiate(store),
                    |instance: &AssignorPlugin, store| f(instance.wasmkafka_plugin_assignor(), store),
                )
            }

            pub fn identify(
                caller: &PluginCaller,
                pre: &Pre,
            ) -> Result<(String, RebalanceProtocol), PluginError> {
                call(caller, pre, |plugin, store| {
                    let name = plugin.call_name(&mut *store)?;
                    let protocol = match plugin.call_protocol(&mut *store)? {
                        t::RebalanceProtocol::Eager => RebalanceProtocol::Eager,
                        t::RebalanceProtocol::Cooperative => RebalanceProtocol::Cooperative,
                    };
                    Ok((name, protocol))
                })
            }

            pub fn user_data(
                caller: &PluginCaller,
                pre: &Pre,
                topics: &[String],
                state: &[u8],
                settings: &[(String, String)],
            ) -> Result<Vec<u8>, PluginError> {
                let settings = settings.to_vec();
                call(caller, pre, |plugin, store| {
                    plugin.call_user_data(store, topics, state, &settings)
                })
            }

            pub fn assign(
                caller: &PluginCaller,
                pre: &Pre,
                group: &Group,
                settings: &[(String, String)],
            ) -> Result<Shares, PluginError> {
                let mut input = to_wit(group);
                input.settings.extend(settings.iter().cloned());
                let answer = call(caller, pre, |plugin, store| plugin.call_assign(store, &input))?;
                Ok(answer.map(|shares| {
                    shares
                        .into_iter()
                        .map(|share| (share.member_id.clone(), from_wit_share(share)))
                        .collect()
                }))
            }

            pub fn on_assignment(
                caller: &PluginCaller,
                pre: &Pre,
                assignment: &MemberAssignment,
                generation: i32,
            ) -> Result<Vec<u8>, PluginError> {
                let share = t::MemberAssignment {
                    member_id: String::new(),
                    partitions: assignment
                        .partitions
                        .iter()
                        .map(|(topic, partitions)| t::TopicPartitions {
                            topic: topic.clone(),
                            partitions: partitions.clone(),
                        })
                        .collect(),
                    user_data: assignment.user_data.clone(),
                };
                call(caller, pre, |plugin, store| {
                    plugin.call_on_assignment(store, &share, generation)
                })
            }

            fn to_wit(group: &Group) -> t::Group {
                t::Group {
                    members: group
                        .members
                        .iter()
                        .map(|m| t::Member {
                            member_id: m.member_id.clone(),
                            instance_id: m.instance_id.clone(),
                            topics: m.topics.clone(),
                            user_data: m.user_data.clone(),
                            owned: m
                                .owned
                                .iter()
                                .map(|(topic, partitions)| t::TopicPartitions {
                                    topic: topic.clone(),
                                    partitions: partitions.clone(),
                                })
                                .collect(),
                            generation: m.generation,
                            rack: m.rack.clone(),
                        })
                        .collect(),
                    topics: group
                        .topics
                        .iter()
                        .map(|(topic, partitions)| t::TopicInfo {
                            topic: topic.clone(),
                            partitions: partitions
                                .iter()
                                .map(|p| t::PartitionInfo {
                                    partition: p.partition,
                                    racks: p.racks.clone(),
                                })
                                .collect(),
                        })
                        .collect(),
                    settings: group
                        .settings
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                }
            }

            fn from_wit_share(share: t::MemberAssignment) -> MemberAssignment {
                let mut out = MemberAssignment {
                    user_data: share.user_data,
                    ..MemberAssignment::default()
                };
                for topic in share.partitions {
                    for partition in topic.partitions {
                        // Duplicates inside one share collapse here; validation catches
                        // cross-member ones.
                        out.add(&topic.topic, partition);
                    }
                }
                out
            }
        }
    };
}

// Contract 0.3.0 (`wit/plugin.wit`): the `log` import (linked once, by `super::log`).
assignor_version!(v0_3_0, "../wit", {
    "wasmkafka:plugin/log": crate::plugin::log::bindings::wasmkafka::plugin::log,
});
assignor_version!(v0_2_0, "../wit/since_v0.2.0", {});
assignor_version!(v0_1_0, "../wit/since_v0.1.0", {});

/// A plugin linked through the bindings of its contract version (settled once, at load).
enum Linked {
    V0_3_0(v0_3_0::Pre),
    V0_2_0(v0_2_0::Pre),
    V0_1_0(v0_1_0::Pre),
}

/// An assignor plugin, ready to call; a changed file is picked up at the next call (see
/// [`super::hot_swap`]).
pub struct WasmAssignor {
    caller: PluginCaller,
    runtime: Arc<PluginRuntime>,
    linked: Swappable<Linked>,
    name: String,
    protocol: RebalanceProtocol,
    /// What `on-assignment` returned last, handed to the next `user-data` call.
    state: Mutex<Vec<u8>>,
    /// The operator's settings, passed with every group.
    settings: Vec<(String, String)>,
}

impl std::fmt::Debug for WasmAssignor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmAssignor")
            .field("plugin", &self.caller.plugin())
            .field("name", &self.name)
            .finish()
    }
}

/// Loads, checks and links the file as an assignor, with the bindings of its version.
fn link(
    runtime: &PluginRuntime,
    caller: &PluginCaller,
    path: &Path,
) -> Result<Linked, PluginError> {
    let (info, instance_pre) = runtime.prepare(path, caller.pin(), PluginKind::Assignor)?;
    let instantiate =
        |e: wasmtime::Error| caller.error(PluginFailure::Instantiate(format!("{e:#}")));
    Ok(match info.version.as_str() {
        "0.1.0" => Linked::V0_1_0(v0_1_0::Pre::new(instance_pre).map_err(instantiate)?),
        "0.2.0" => Linked::V0_2_0(v0_2_0::Pre::new(instance_pre).map_err(instantiate)?),
        _ => Linked::V0_3_0(v0_3_0::Pre::new(instance_pre).map_err(instantiate)?),
    })
}

fn identify(
    caller: &PluginCaller,
    linked: &Linked,
) -> Result<(String, RebalanceProtocol), PluginError> {
    match linked {
        Linked::V0_3_0(pre) => v0_3_0::identify(caller, pre),
        Linked::V0_2_0(pre) => v0_2_0::identify(caller, pre),
        Linked::V0_1_0(pre) => v0_1_0::identify(caller, pre),
    }
}

impl WasmAssignor {
    /// Loads, checks and links an assignor plugin, then asks its name and protocol.
    pub fn load(runtime: &Arc<PluginRuntime>, path: &Path) -> Result<WasmAssignor, PluginError> {
        WasmAssignor::load_pinned(runtime, path, None)
    }

    /// [`WasmAssignor::load`], refusing any file (now or swapped in later) whose SHA-256 is
    /// not `pin`.
    pub fn load_pinned(
        runtime: &Arc<PluginRuntime>,
        path: &Path,
        pin: Option<Sha256Digest>,
    ) -> Result<WasmAssignor, PluginError> {
        let caller = PluginCaller::new(runtime.clone(), path).pinned(pin);
        let linked = link(runtime, &caller, path)?;
        let (name, protocol) = identify(&caller, &linked)?;
        if name.is_empty() || name.len() > 255 {
            return Err(caller.error(PluginFailure::InvalidAnswer(format!(
                "its name `{name}` must be 1 to 255 characters"
            ))));
        }
        caller.log().named(&name);
        Ok(WasmAssignor {
            caller,
            runtime: runtime.clone(),
            linked: Swappable::new(path, linked),
            name,
            protocol,
            state: Mutex::new(Vec::new()),
            settings: Vec::new(),
        })
    }

    /// Settings handed to the plugin with every group (from the config).
    pub fn with_settings(mut self, settings: Vec<(String, String)>) -> Self {
        self.settings = settings;
        self
    }

    /// The current version (a changed file is loaded first; a new version must keep the name
    /// and protocol the group knows this assignor by).
    fn current(&self) -> Arc<Linked> {
        self.linked
            .current(|path| {
                let linked = link(&self.runtime, &self.caller, path)?;
                let (name, protocol) = identify(&self.caller, &linked)?;
                if name != self.name || protocol != self.protocol {
                    return Err(self.caller.error(PluginFailure::InvalidAnswer(format!(
                        "its new version is `{name}` ({protocol:?}), not `{}` ({:?}); restart \
                         to use it",
                        self.name, self.protocol
                    ))));
                }
                Ok(linked)
            })
            .0
    }

    fn error(&self, error: PluginError) -> AssignorError {
        AssignorError {
            assignor: self.name.clone(),
            message: error.to_string(),
        }
    }
}

impl Assignor for WasmAssignor {
    fn name(&self) -> &str {
        &self.name
    }

    fn protocol(&self) -> RebalanceProtocol {
        self.protocol
    }

    fn user_data(&self, topics: &[String]) -> Vec<u8> {
        let state = self.state.lock().expect("state lock").clone();
        let linked = self.current();
        let answer = match &*linked {
            Linked::V0_3_0(pre) => {
                v0_3_0::user_data(&self.caller, pre, topics, &state, &self.settings)
            }
            Linked::V0_2_0(pre) => {
                v0_2_0::user_data(&self.caller, pre, topics, &state, &self.settings)
            }
            Linked::V0_1_0(pre) => {
                v0_1_0::user_data(&self.caller, pre, topics, &state, &self.settings)
            }
        };
        answer.unwrap_or_else(|error| {
            tracing::warn!(error = %Chain(&error), "no subscription user data from the plugin");
            Vec::new()
        })
    }

    fn assign(&self, group: &Group) -> Result<Assignment, AssignorError> {
        let linked = self.current();
        let answer = match &*linked {
            Linked::V0_3_0(pre) => v0_3_0::assign(&self.caller, pre, group, &self.settings),
            Linked::V0_2_0(pre) => v0_2_0::assign(&self.caller, pre, group, &self.settings),
            Linked::V0_1_0(pre) => v0_1_0::assign(&self.caller, pre, group, &self.settings),
        };
        let shares = answer
            .map_err(|e| self.error(e))?
            .map_err(|message| AssignorError {
                assignor: self.name.clone(),
                message: format!("the plugin refused: {message}"),
            })?;
        let mut assignment: Assignment = BTreeMap::new();
        for (member_id, share) in shares {
            let entry = assignment.entry(member_id.clone()).or_default();
            if !entry.partitions.is_empty() || !entry.user_data.is_empty() {
                return Err(AssignorError {
                    assignor: self.name.clone(),
                    message: format!("member `{member_id}` appears twice in its answer"),
                });
            }
            *entry = share;
        }
        // Members it left out get an empty share (validation checks the rest).
        for member in &group.members {
            assignment.entry(member.member_id.clone()).or_default();
        }
        Ok(assignment)
    }

    fn on_assignment(&self, assignment: &MemberAssignment, generation: i32) {
        let linked = self.current();
        let answer = match &*linked {
            Linked::V0_3_0(pre) => v0_3_0::on_assignment(&self.caller, pre, assignment, generation),
            Linked::V0_2_0(pre) => v0_2_0::on_assignment(&self.caller, pre, assignment, generation),
            Linked::V0_1_0(pre) => v0_1_0::on_assignment(&self.caller, pre, assignment, generation),
        };
        match answer {
            Ok(state) => *self.state.lock().expect("state lock") = state,
            Err(error) => {
                tracing::warn!(error = %Chain(&error), "on-assignment failed; keeping the previous state")
            }
        }
    }
}
