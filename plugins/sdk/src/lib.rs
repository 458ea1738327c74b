//! Write a wasmkafka plugin in a few lines.
//!
//! ```ignore
//! use wasmkafka_plugin_sdk::{policy::assign::{Assignment, Group}, Assignor};
//!
//! struct Mine;
//! impl Assignor for Mine {
//!     fn name() -> String { "mine".into() }
//!     fn assign(group: &Group) -> Result<Assignment, String> {
//!         Ok(wasmkafka_plugin_sdk::policy::assign::roundrobin(group))
//!     }
//! }
//! wasmkafka_plugin_sdk::export_assignor!(Mine);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`; the `.wasm` in
//! `target/wasm32-wasip2/release/` is the plugin. The SDK turns the WIT types of the contract
//! (`wit/plugin.wit`) into the plain Rust types of `wasmkafka-policy` and back, so a plugin
//! works with the same types (and can call the same algorithms) as the host's built-ins.

pub use wasmkafka_policy as policy;

use std::collections::BTreeMap;
use std::marker::PhantomData;

use policy::assign::{Assignment, Group, Member, MemberAssignment, PartitionInfo};
use policy::reset::{ResetContext, ResetDecision, ResetReason};

/// Bindings of the `assignor-plugin` world.
pub mod assignor_bindings {
    wit_bindgen::generate!({
        world: "assignor-plugin",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export_assignor_world",
        default_bindings_module: "wasmkafka_plugin_sdk::assignor_bindings",
    });
}

/// Bindings of the `reset-policy-plugin` world.
pub mod reset_policy_bindings {
    wit_bindgen::generate!({
        world: "reset-policy-plugin",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export_reset_policy_world",
        default_bindings_module: "wasmkafka_plugin_sdk::reset_policy_bindings",
    });
}

/// Lines into the consumer's log (contract 0.3.0): the host writes them with the plugin's
/// name, at their level, beside its own lines (`WASMKAFKA_LOG=debug` shows debug lines). It
/// cuts a message at 1 KiB and keeps at most 16 fields, and drops lines beyond 50 a second
/// (bursts of 100), saying how many it dropped. In the plugin's own native `cargo test`,
/// lines go to stderr.
///
/// ```ignore
/// use wasmkafka_plugin_sdk::log;
/// log::info("assigned", &[("members", &group.members.len().to_string())]);
/// ```
pub mod log {
    pub use crate::assignor_bindings::wasmkafka::plugin::log::Level;

    /// Writes `message` with `fields` (key-value pairs) at `level`.
    pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
        #[cfg(target_arch = "wasm32")]
        {
            let fields: Vec<(String, String)> = fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            crate::assignor_bindings::wasmkafka::plugin::log::log(level, message, &fields);
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            let fields: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            eprintln!("{level:?} {message} {}", fields.join(" "));
        }
    }

    pub fn trace(message: &str, fields: &[(&str, &str)]) {
        log(Level::Trace, message, fields)
    }

    pub fn debug(message: &str, fields: &[(&str, &str)]) {
        log(Level::Debug, message, fields)
    }

    pub fn info(message: &str, fields: &[(&str, &str)]) {
        log(Level::Info, message, fields)
    }

    pub fn warn(message: &str, fields: &[(&str, &str)]) {
        log(Level::Warn, message, fields)
    }

    pub fn error(message: &str, fields: &[(&str, &str)]) {
        log(Level::Error, message, fields)
    }
}

/// How partitions change hands (see the WIT `rebalance-protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Eager,
    Cooperative,
}

/// An assignor plugin.
pub trait Assignor {
    fn name() -> String;
    fn protocol() -> Protocol {
        Protocol::Eager
    }
    fn user_data(
        _topics: &[String],
        _state: &[u8],
        _settings: &BTreeMap<String, String>,
    ) -> Vec<u8> {
        Vec::new()
    }
    fn assign(group: &Group) -> Result<Assignment, String>;
    fn on_assignment(_assignment: &MemberAssignment, _generation: i32) -> Vec<u8> {
        Vec::new()
    }
}

/// A reset-policy plugin.
pub trait ResetPolicy {
    fn name() -> String;
    fn decide(context: &ResetContext) -> ResetDecision;
}

/// Exports `$t: Assignor` as the plugin's `assignor` interface.
#[macro_export]
macro_rules! export_assignor {
    ($t:ty) => {
        type WasmkafkaAssignorExport = $crate::AssignorExport<$t>;
        $crate::assignor_bindings::export_assignor_world!(
            WasmkafkaAssignorExport with_types_in $crate::assignor_bindings
        );
    };
}

/// Exports `$t: ResetPolicy` as the plugin's `reset-policy` interface.
#[macro_export]
macro_rules! export_reset_policy {
    ($t:ty) => {
        type WasmkafkaResetPolicyExport = $crate::ResetPolicyExport<$t>;
        $crate::reset_policy_bindings::export_reset_policy_world!(
            WasmkafkaResetPolicyExport with_types_in $crate::reset_policy_bindings
        );
    };
}

mod wit_assign {
    pub use crate::assignor_bindings::exports::wasmkafka::plugin::assignor::Guest;
    pub use crate::assignor_bindings::wasmkafka::plugin::types::*;
}

mod wit_reset {
    pub use crate::reset_policy_bindings::exports::wasmkafka::plugin::reset_policy::Guest;
    pub use crate::reset_policy_bindings::wasmkafka::plugin::types::*;
}

/// The glue between [`Assignor`] and the generated bindings.
pub struct AssignorExport<T>(PhantomData<T>);

impl<T: Assignor> wit_assign::Guest for AssignorExport<T> {
    fn name() -> String {
        T::name()
    }

    fn protocol() -> wit_assign::RebalanceProtocol {
        match T::protocol() {
            Protocol::Eager => wit_assign::RebalanceProtocol::Eager,
            Protocol::Cooperative => wit_assign::RebalanceProtocol::Cooperative,
        }
    }

    fn user_data(topics: Vec<String>, state: Vec<u8>, settings: Vec<(String, String)>) -> Vec<u8> {
        T::user_data(&topics, &state, &settings.into_iter().collect())
    }

    fn assign(group: wit_assign::Group) -> Result<Vec<wit_assign::MemberAssignment>, String> {
        let group = Group {
            members: group
                .members
                .into_iter()
                .map(|m| Member {
                    member_id: m.member_id,
                    instance_id: m.instance_id,
                    topics: m.topics,
                    user_data: m.user_data,
                    owned: topic_map(m.owned.into_iter().map(|t| (t.topic, t.partitions))),
                    generation: m.generation,
                    rack: m.rack,
                })
                .collect(),
            topics: group
                .topics
                .into_iter()
                .map(|t| {
                    (
                        t.topic,
                        t.partitions
                            .into_iter()
                            .map(|p| PartitionInfo {
                                partition: p.partition,
                                racks: p.racks,
                            })
                            .collect(),
                    )
                })
                .collect(),
            settings: group.settings.into_iter().collect(),
        };
        let assignment = T::assign(&group)?;
        Ok(assignment
            .into_iter()
            .map(|(member_id, share)| wit_assign::MemberAssignment {
                member_id,
                partitions: share
                    .partitions
                    .into_iter()
                    .map(|(topic, partitions)| wit_assign::TopicPartitions { topic, partitions })
                    .collect(),
                user_data: share.user_data,
            })
            .collect())
    }

    fn on_assignment(assignment: wit_assign::MemberAssignment, generation: i32) -> Vec<u8> {
        let share = MemberAssignment {
            partitions: topic_map(
                assignment
                    .partitions
                    .into_iter()
                    .map(|t| (t.topic, t.partitions)),
            ),
            user_data: assignment.user_data,
        };
        T::on_assignment(&share, generation)
    }
}

fn topic_map(items: impl Iterator<Item = (String, Vec<i32>)>) -> BTreeMap<String, Vec<i32>> {
    let mut map: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (topic, partitions) in items {
        map.entry(topic).or_default().extend(partitions);
    }
    map
}

/// The glue between [`ResetPolicy`] and the generated bindings.
pub struct ResetPolicyExport<T>(PhantomData<T>);

impl<T: ResetPolicy> wit_reset::Guest for ResetPolicyExport<T> {
    fn name() -> String {
        T::name()
    }

    fn decide(context: wit_reset::ResetContext) -> wit_reset::ResetDecision {
        decide_one::<T>(context)
    }

    fn decide_all(contexts: Vec<wit_reset::ResetContext>) -> Vec<wit_reset::ResetDecision> {
        contexts.into_iter().map(decide_one::<T>).collect()
    }
}

/// One decision through `T`, converted both ways.
fn decide_one<T: ResetPolicy>(context: wit_reset::ResetContext) -> wit_reset::ResetDecision {
    let context = ResetContext {
        topic: context.topic,
        partition: context.partition,
        reason: match context.reason {
            wit_reset::ResetReason::NoCommittedOffset => ResetReason::NoCommittedOffset,
            wit_reset::ResetReason::OutOfRange(offset) => ResetReason::OutOfRange { offset },
            wit_reset::ResetReason::LogTruncated(t) => ResetReason::LogTruncated {
                offset: t.offset,
                diverged_at: t.diverged_at,
            },
        },
        committed: context.committed,
        log_start: context.log_start,
        high_watermark: context.high_watermark,
        now_ms: context.now_ms,
        group: context.group,
        settings: context.settings.into_iter().collect(),
    };
    match T::decide(&context) {
        ResetDecision::Earliest => wit_reset::ResetDecision::Earliest,
        ResetDecision::Latest => wit_reset::ResetDecision::Latest,
        ResetDecision::Offset(o) => wit_reset::ResetDecision::Offset(o),
        ResetDecision::Timestamp(t) => wit_reset::ResetDecision::Timestamp(t),
        ResetDecision::Fail(m) => wit_reset::ResetDecision::Fail(m),
    }
}
