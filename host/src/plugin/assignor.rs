//! A Wasm assignor behind the host's [`Assignor`] trait.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use wasmkafka_policy::assign::{Assignment, Group, MemberAssignment};

use crate::group::{Assignor, AssignorError, RebalanceProtocol};

use super::contract::PluginKind;
use super::hot_swap::Swappable;
use super::runtime::{CallState, PluginCaller, PluginError, PluginFailure, PluginRuntime};

mod bindings {
    wasmtime::component::bindgen!({
        world: "assignor-plugin",
        path: "../wit",
    });
}

use bindings::exports::wasmkafka::plugin::assignor as wit;
use bindings::wasmkafka::plugin::types as t;
use bindings::{AssignorPlugin, AssignorPluginPre};

/// An assignor plugin, ready to call; a changed file is picked up at the next call (see
/// [`super::hot_swap`]).
pub struct WasmAssignor {
    caller: PluginCaller,
    runtime: Arc<PluginRuntime>,
    pre: Swappable<AssignorPluginPre<CallState>>,
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

impl WasmAssignor {
    /// Loads, checks and links an assignor plugin, then asks its name and protocol.
    pub fn load(runtime: &Arc<PluginRuntime>, path: &Path) -> Result<WasmAssignor, PluginError> {
        let caller = PluginCaller::new(runtime.clone(), path);
        let pre = link(runtime, &caller, path)?;
        let (name, protocol) = identify(&caller, &pre)?;
        if name.is_empty() || name.len() > 255 {
            return Err(caller.error(PluginFailure::InvalidAnswer(format!(
                "its name `{name}` must be 1 to 255 characters"
            ))));
        }
        Ok(WasmAssignor {
            caller,
            runtime: runtime.clone(),
            pre: Swappable::new(path, pre),
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

    /// Calls the current version (a changed file is loaded first; a new version must keep
    /// the name and protocol the group knows this assignor by).
    fn call<R>(
        &self,
        f: impl FnOnce(&wit::Guest, &mut wasmtime::Store<CallState>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        let (pre, _) = self.pre.current(|path| {
            let pre = link(&self.runtime, &self.caller, path)?;
            let (name, protocol) = identify(&self.caller, &pre)?;
            if name != self.name || protocol != self.protocol {
                return Err(self.caller.error(PluginFailure::InvalidAnswer(format!(
                    "its new version is `{name}` ({protocol:?}), not `{}` ({:?}); restart to \
                     use it",
                    self.name, self.protocol
                ))));
            }
            Ok(pre)
        });
        call_on(&self.caller, &pre, f)
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
        self.call(|plugin, store| plugin.call_user_data(store, topics, &state, &self.settings))
            .unwrap_or_else(|error| {
                tracing::warn!(%error, "no subscription user data from the plugin");
                Vec::new()
            })
    }

    fn assign(&self, group: &Group) -> Result<Assignment, AssignorError> {
        let mut input = to_wit(group);
        input.settings.extend(self.settings.iter().cloned());
        let answer = self
            .call(|plugin, store| plugin.call_assign(store, &input))
            .map_err(|e| self.error(e))?;
        let shares = answer.map_err(|message| AssignorError {
            assignor: self.name.clone(),
            message: format!("the plugin refused: {message}"),
        })?;
        let mut assignment: Assignment = BTreeMap::new();
        for share in shares {
            let entry = assignment.entry(share.member_id.clone()).or_default();
            if !entry.partitions.is_empty() || !entry.user_data.is_empty() {
                return Err(AssignorError {
                    assignor: self.name.clone(),
                    message: format!("member `{}` appears twice in its answer", share.member_id),
                });
            }
            *entry = from_wit_share(share);
        }
        // Members it left out get an empty share (validation checks the rest).
        for member in &group.members {
            assignment.entry(member.member_id.clone()).or_default();
        }
        Ok(assignment)
    }

    fn on_assignment(&self, assignment: &MemberAssignment, generation: i32) {
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
        match self.call(|plugin, store| plugin.call_on_assignment(store, &share, generation)) {
            Ok(state) => *self.state.lock().expect("state lock") = state,
            Err(error) => {
                tracing::warn!(%error, "on-assignment failed; keeping the previous state")
            }
        }
    }
}

/// Loads, checks and links the file as an assignor.
fn link(
    runtime: &PluginRuntime,
    caller: &PluginCaller,
    path: &Path,
) -> Result<AssignorPluginPre<CallState>, PluginError> {
    let instance_pre = runtime.prepare(path, PluginKind::Assignor)?;
    AssignorPluginPre::new(instance_pre)
        .map_err(|e| caller.error(PluginFailure::Instantiate(format!("{e:#}"))))
}

fn call_on<R>(
    caller: &PluginCaller,
    pre: &AssignorPluginPre<CallState>,
    f: impl FnOnce(&wit::Guest, &mut wasmtime::Store<CallState>) -> wasmtime::Result<R>,
) -> Result<R, PluginError> {
    caller.call(
        |store| pre.instantiate(store),
        |instance: &AssignorPlugin, store| f(instance.wasmkafka_plugin_assignor(), store),
    )
}

/// The plugin's name and rebalance protocol.
fn identify(
    caller: &PluginCaller,
    pre: &AssignorPluginPre<CallState>,
) -> Result<(String, RebalanceProtocol), PluginError> {
    let (name, protocol) = call_on(caller, pre, |plugin, store| {
        let name = plugin.call_name(&mut *store)?;
        let protocol = plugin.call_protocol(&mut *store)?;
        Ok((name, protocol))
    })?;
    let protocol = match protocol {
        t::RebalanceProtocol::Eager => RebalanceProtocol::Eager,
        t::RebalanceProtocol::Cooperative => RebalanceProtocol::Cooperative,
    };
    Ok((name, protocol))
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
            // Duplicates inside one share collapse here; validation catches cross-member ones.
            out.add(&topic.topic, partition);
        }
    }
    out
}
