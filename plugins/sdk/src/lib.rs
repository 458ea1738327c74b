//! Write a wasmkafka plugin in a few lines: an assignor or a reset policy as a WebAssembly
//! component, against the contract in `wit/plugin.wit` (`wasmkafka:plugin@0.3.0`).
//!
//! Implement [`Assignor`] or [`ResetPolicy`] on a type and export it with
//! [`export_assignor!`] or [`export_reset_policy!`]. The SDK turns the contract's WIT types
//! into the plain Rust types of [`policy`] (`wasmkafka-policy`) and back, so a plugin works
//! with the same types, and can call the same algorithms, as the host's built-ins.
//!
//! ```
//! use wasmkafka_plugin_sdk::policy::assign::{roundrobin, Assignment, Group};
//! use wasmkafka_plugin_sdk::{log, Assignor};
//!
//! struct Mine;
//!
//! impl Assignor for Mine {
//!     fn name() -> String {
//!         "mine".into()
//!     }
//!
//!     fn assign(group: &Group) -> Result<Assignment, String> {
//!         let members = group.members.len().to_string();
//!         log::debug("assigning", &[("members", members.as_str())]);
//!         Ok(roundrobin(group))
//!     }
//! }
//!
//! wasmkafka_plugin_sdk::export_assignor!(Mine);
//!
//! // The logic runs natively too (the export exists only in the Wasm build).
//! let assignment = Mine::assign(&Group::default()).unwrap();
//! assert!(assignment.is_empty());
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`; the `.wasm` in
//! `target/wasm32-wasip2/release/` is the plugin. `cargo test` runs the plugin's logic
//! natively, where [`log`] lines go to stderr. `wasmkafka plugin check FILE.wasm` loads it as
//! the consumer would and makes a smoke call; `wasmkafka plugin new` starts a crate like this.

#![warn(missing_docs)]

/// The decision logic and its types (`wasmkafka-policy`): groups, assignments, reset
/// contexts, and the built-in algorithms a plugin may start from.
pub use wasmkafka_policy as policy;

use std::collections::BTreeMap;
use std::marker::PhantomData;

use policy::assign::{Assignment, Group, Member, MemberAssignment, PartitionInfo};
use policy::reset::{ResetContext, ResetDecision, ResetReason};

/// Bindings of the `assignor-plugin` world (generated; [`Assignor`] is the way in).
#[doc(hidden)]
pub mod assignor_bindings {
    wit_bindgen::generate!({
        world: "assignor-plugin",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "export_assignor_world",
        default_bindings_module: "wasmkafka_plugin_sdk::assignor_bindings",
    });
}

/// Bindings of the `reset-policy-plugin` world (generated; [`ResetPolicy`] is the way in).
#[doc(hidden)]
pub mod reset_policy_bindings {
    wit_bindgen::generate!({
        world: "reset-policy-plugin",
        path: "wit",
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
/// ```
/// use wasmkafka_plugin_sdk::log;
/// log::info("assigned", &[("members", "3"), ("topics", "2")]);
/// ```
pub mod log {
    /// How important a line is: trace, debug, info, warn, error.
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

    /// Writes a line at level `trace` (see [`log()`]).
    pub fn trace(message: &str, fields: &[(&str, &str)]) {
        log(Level::Trace, message, fields)
    }

    /// Writes a line at level `debug` (see [`log()`]).
    pub fn debug(message: &str, fields: &[(&str, &str)]) {
        log(Level::Debug, message, fields)
    }

    /// Writes a line at level `info` (see [`log()`]).
    pub fn info(message: &str, fields: &[(&str, &str)]) {
        log(Level::Info, message, fields)
    }

    /// Writes a line at level `warn` (see [`log()`]).
    pub fn warn(message: &str, fields: &[(&str, &str)]) {
        log(Level::Warn, message, fields)
    }

    /// Writes a line at level `error` (see [`log()`]).
    pub fn error(message: &str, fields: &[(&str, &str)]) {
        log(Level::Error, message, fields)
    }
}

/// How partitions change hands (the WIT `rebalance-protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Every member gives up all its partitions before the group re-forms.
    Eager,
    /// KIP-429: only partitions that move are revoked, and handed over one rebalance later.
    /// An assignor that says so must never move a partition straight from one owner to
    /// another (the host refuses such an answer).
    Cooperative,
}

/// An assignor plugin: the group leader runs [`Assignor::assign`] over every member and
/// every partition of the subscribed topics. The host checks the answer (known members,
/// existing subscribed partitions, each at most once) and falls back to a built-in when it
/// is invalid, traps or runs past its deadline.
///
/// ```
/// use std::collections::BTreeMap;
/// use wasmkafka_plugin_sdk::policy::assign::{empty_assignment, Assignment, Group, Member, PartitionInfo};
/// use wasmkafka_plugin_sdk::Assignor;
///
/// /// Every partition to the first member in id order.
/// struct AllToOne;
///
/// impl Assignor for AllToOne {
///     fn name() -> String {
///         "all-to-one".into()
///     }
///
///     fn assign(group: &Group) -> Result<Assignment, String> {
///         let mut assignment = empty_assignment(group);
///         let first = group.sorted_members().first().map(|m| m.member_id.clone());
///         let first = first.ok_or("no members")?;
///         let share = assignment.get_mut(&first).expect("every member has a share");
///         for (topic, partitions) in &group.topics {
///             for partition in partitions {
///                 share.add(topic, partition.partition);
///             }
///         }
///         Ok(assignment)
///     }
/// }
///
/// wasmkafka_plugin_sdk::export_assignor!(AllToOne);
///
/// let member = |id: &str| Member {
///     member_id: id.into(),
///     topics: vec!["t".into()],
///     ..Member::default()
/// };
/// let group = Group {
///     members: vec![member("b"), member("a")],
///     topics: BTreeMap::from([(
///         "t".to_string(),
///         (0..3).map(|partition| PartitionInfo { partition, racks: vec![] }).collect(),
///     )]),
///     settings: BTreeMap::new(),
/// };
/// let assignment = AllToOne::assign(&group).unwrap();
/// assert_eq!(assignment["a"].count(), 3);
/// assert_eq!(assignment["b"].count(), 0);
/// ```
pub trait Assignor {
    /// The protocol name announced in JoinGroup, and how `consumer.assignors` names it.
    fn name() -> String;

    /// Eager (the default) or cooperative.
    fn protocol() -> Protocol {
        Protocol::Eager
    }

    /// Extra bytes for this member's subscription, which every member's `assign` sees in
    /// `Member::user_data` (e.g. a weight). `state` is what [`Assignor::on_assignment`]
    /// returned last (empty at first): instances do not live between calls, the host keeps
    /// it. `settings` are this member's own plugin settings from its config.
    fn user_data(
        _topics: &[String],
        _state: &[u8],
        _settings: &BTreeMap<String, String>,
    ) -> Vec<u8> {
        Vec::new()
    }

    /// Maps every partition of the group's topics to its members; `Err` names what went
    /// wrong (the host then uses its fallback assignor). The operator's settings are in
    /// `group.settings`.
    fn assign(group: &Group) -> Result<Assignment, String>;

    /// Sees this member's share once a rebalance completes, with the generation; returns the
    /// state to hand to the next [`Assignor::user_data`] (e.g. the share, for stickiness).
    fn on_assignment(_assignment: &MemberAssignment, _generation: i32) -> Vec<u8> {
        Vec::new()
    }
}

/// A reset-policy plugin: decides where a partition starts when its position is unknown or
/// invalid (nothing committed, out of range, truncated). The host checks that an offset
/// answer lies within the log; a trap, a deadline or an invalid answer falls back to the
/// consumer's `from` policy.
///
/// ```
/// use std::collections::BTreeMap;
/// use wasmkafka_plugin_sdk::policy::reset::{ResetContext, ResetDecision, ResetReason};
/// use wasmkafka_plugin_sdk::ResetPolicy;
///
/// /// `records` back from the end, never before the log start.
/// struct Tail;
///
/// impl ResetPolicy for Tail {
///     fn name() -> String {
///         "tail".into()
///     }
///
///     fn decide(context: &ResetContext) -> ResetDecision {
///         let records = context
///             .settings
///             .get("records")
///             .and_then(|v| v.parse::<i64>().ok())
///             .unwrap_or(100);
///         ResetDecision::Offset((context.high_watermark - records).max(context.log_start))
///     }
/// }
///
/// wasmkafka_plugin_sdk::export_reset_policy!(Tail);
///
/// let context = ResetContext {
///     topic: "t".into(),
///     partition: 0,
///     reason: ResetReason::NoCommittedOffset,
///     committed: None,
///     log_start: 950,
///     high_watermark: 1_000,
///     now_ms: 0,
///     group: None,
///     settings: BTreeMap::from([("records".to_string(), "10".to_string())]),
/// };
/// assert_eq!(Tail::decide(&context), ResetDecision::Offset(990));
/// ```
pub trait ResetPolicy {
    /// The policy's name, for logs and metrics.
    fn name() -> String;

    /// Where the partition in `context` starts. The operator's settings are in
    /// `context.settings`.
    fn decide(context: &ResetContext) -> ResetDecision;
}

/// Exports `$t: Assignor` as the plugin's `assignor` interface (in the Wasm build; natively
/// it expands to nothing, so `cargo test` runs the logic).
#[macro_export]
macro_rules! export_assignor {
    ($t:ty) => {
        #[cfg(target_arch = "wasm32")]
        type WasmkafkaAssignorExport = $crate::AssignorExport<$t>;
        #[cfg(target_arch = "wasm32")]
        $crate::assignor_bindings::export_assignor_world!(
            WasmkafkaAssignorExport with_types_in $crate::assignor_bindings
        );
    };
}

/// Exports `$t: ResetPolicy` as the plugin's `reset-policy` interface (in the Wasm build;
/// natively it expands to nothing, so `cargo test` runs the logic).
#[macro_export]
macro_rules! export_reset_policy {
    ($t:ty) => {
        #[cfg(target_arch = "wasm32")]
        type WasmkafkaResetPolicyExport = $crate::ResetPolicyExport<$t>;
        #[cfg(target_arch = "wasm32")]
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

/// The glue between [`Assignor`] and the generated bindings ([`export_assignor!`] uses it).
#[doc(hidden)]
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

/// The glue between [`ResetPolicy`] and the generated bindings ([`export_reset_policy!`]
/// uses it).
#[doc(hidden)]
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
