//! The `Assignor` trait: what the group leader runs over the whole group. The built-ins wrap
//! the algorithms in `wasmkafka-policy` (the same code the Wasm plugins compile); a Wasm
//! plugin implements the same trait.

use std::fmt;
use std::sync::Arc;

use wasmkafka_policy::assign::{self, Assignment, Group, MemberAssignment};

/// How partitions change hands in a rebalance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebalanceProtocol {
    /// Every member gives up everything before the group re-forms.
    Eager,
    /// KIP-429: members keep what they keep; only moving partitions are revoked, and a second
    /// rebalance hands them over.
    Cooperative,
}

/// Why an assignor produced no assignment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("assignor `{assignor}` failed: {message}")]
pub struct AssignorError {
    pub assignor: String,
    pub message: String,
}

/// A partition assignor.
pub trait Assignor: Send + Sync + fmt::Debug {
    /// The protocol name announced in JoinGroup (e.g. `range`).
    fn name(&self) -> &str;
    fn protocol(&self) -> RebalanceProtocol;
    /// Extra data for this member's subscription.
    fn user_data(&self, _topics: &[String]) -> Vec<u8> {
        Vec::new()
    }
    /// Maps the group's partitions to its members (run by the leader only).
    fn assign(&self, group: &Group) -> Result<Assignment, AssignorError>;
    /// Sees this member's assignment once a rebalance completes.
    fn on_assignment(&self, _assignment: &MemberAssignment, _generation: i32) {}
}

/// The built-in assignors, by their Kafka names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    Range,
    RoundRobin,
    Sticky,
    CooperativeSticky,
}

impl Builtin {
    pub const ALL: [Builtin; 4] = [
        Builtin::Range,
        Builtin::RoundRobin,
        Builtin::Sticky,
        Builtin::CooperativeSticky,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Builtin::Range => "range",
            Builtin::RoundRobin => "roundrobin",
            Builtin::Sticky => "sticky",
            Builtin::CooperativeSticky => "cooperative-sticky",
        }
    }

    pub fn from_name(name: &str) -> Option<Builtin> {
        Builtin::ALL.into_iter().find(|b| b.name() == name)
    }

    pub fn into_assignor(self) -> Arc<dyn Assignor> {
        Arc::new(self)
    }
}

impl Assignor for Builtin {
    fn name(&self) -> &str {
        Builtin::name(*self)
    }

    fn protocol(&self) -> RebalanceProtocol {
        match self {
            Builtin::CooperativeSticky => RebalanceProtocol::Cooperative,
            _ => RebalanceProtocol::Eager,
        }
    }

    fn assign(&self, group: &Group) -> Result<Assignment, AssignorError> {
        Ok(match self {
            Builtin::Range => assign::range(group),
            Builtin::RoundRobin => assign::roundrobin(group),
            Builtin::Sticky => assign::sticky(group),
            Builtin::CooperativeSticky => assign::cooperative_sticky(group),
        })
    }
}

/// The leader's decision, and how it came about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assigned {
    pub assignment: Assignment,
    /// Subscribed partitions nobody got (normal in a cooperative first round).
    pub unassigned: Vec<(String, i32)>,
    /// The chosen assignor failed or answered an invalid assignment: why. The fallback's
    /// answer was used instead.
    pub fell_back: Option<AssignorError>,
}

/// The group leader's whole decision, one path for the consumer and the policy lab: run
/// `chosen` over `group`, check its answer ([`assign::validate`]: known members, subscribed
/// and existing partitions, each once, and in cooperative mode nothing handed over while
/// another member owns it), and if it fails use `fallback` (holding back, in cooperative
/// mode, what other members own).
pub fn assign_group(chosen: &dyn Assignor, fallback: Builtin, group: &Group) -> Assigned {
    let cooperative = chosen.protocol() == RebalanceProtocol::Cooperative;
    let checked = chosen.assign(group).and_then(|assignment| {
        assign::validate(group, &assignment, cooperative)
            .map(|report| (assignment, report))
            .map_err(|invalid| AssignorError {
                assignor: chosen.name().to_string(),
                message: format!("invalid assignment: {invalid}"),
            })
    });
    match checked {
        Ok((assignment, report)) => Assigned {
            assignment,
            unassigned: report.unassigned,
            fell_back: None,
        },
        Err(error) => {
            let mut assignment = fallback.assign(group).unwrap_or_default();
            if cooperative {
                assign::hold_back_owned_by_others(group, &mut assignment);
            }
            let unassigned = assign::validate(group, &assignment, cooperative)
                .map(|report| report.unassigned)
                .unwrap_or_default();
            Assigned {
                assignment,
                unassigned,
                fell_back: Some(error),
            }
        }
    }
}

/// A name in `consumer.assignors` that is neither a built-in nor a loaded plugin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{name}` in consumer.assignors is neither a built-in assignor nor a loaded plugin; the \
     names that exist: {}",
    .known.join(", ")
)]
pub struct UnknownAssignor {
    pub name: String,
    pub known: Vec<String>,
}

/// The assignors a member announces, in vote order: `named` (`consumer.assignors`) resolves
/// each name to the plugin of that name if one is loaded, else to the built-in; plugins not
/// named go first, in their `[[plugins.assignors]]` order (as before names could be given to
/// them). Each name appears once: a plugin named like a built-in stands in for it.
pub fn vote_order(
    named: &[String],
    plugins: &[Arc<dyn Assignor>],
) -> Result<Vec<Arc<dyn Assignor>>, UnknownAssignor> {
    let mut order: Vec<Arc<dyn Assignor>> = plugins
        .iter()
        .filter(|plugin| !named.iter().any(|name| name == plugin.name()))
        .cloned()
        .collect();
    for name in named {
        if order.iter().any(|a| a.name() == name) {
            continue;
        }
        let plugin = plugins.iter().find(|p| p.name() == name).cloned();
        let chosen = plugin.or_else(|| Builtin::from_name(name).map(Builtin::into_assignor));
        match chosen {
            Some(assignor) => order.push(assignor),
            None => {
                let mut known: Vec<String> =
                    Builtin::ALL.iter().map(|b| b.name().to_string()).collect();
                known.extend(plugins.iter().map(|p| p.name().to_string()));
                return Err(UnknownAssignor {
                    name: name.clone(),
                    known,
                });
            }
        }
    }
    Ok(order)
}

/// The protocol a member uses: cooperative only if every configured assignor is.
pub fn rebalance_protocol(assignors: &[Arc<dyn Assignor>]) -> RebalanceProtocol {
    if !assignors.is_empty()
        && assignors
            .iter()
            .all(|a| a.protocol() == RebalanceProtocol::Cooperative)
    {
        RebalanceProtocol::Cooperative
    } else {
        RebalanceProtocol::Eager
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plugin stand-in: only its name and protocol matter here.
    #[derive(Debug)]
    struct Named(&'static str);

    impl Assignor for Named {
        fn name(&self) -> &str {
            self.0
        }
        fn protocol(&self) -> RebalanceProtocol {
            RebalanceProtocol::Cooperative
        }
        fn assign(&self, _group: &Group) -> Result<Assignment, AssignorError> {
            Ok(Assignment::new())
        }
    }

    fn names(order: &[Arc<dyn Assignor>]) -> Vec<&str> {
        order.iter().map(|a| a.name()).collect()
    }

    fn named(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn plugins_take_their_place_in_the_vote_where_they_are_named() {
        let fair: Arc<dyn Assignor> = Arc::new(Named("fair"));
        let weighted: Arc<dyn Assignor> = Arc::new(Named("weighted"));
        let plugins = [fair.clone(), weighted.clone()];
        // Named between built-ins: exactly that order.
        let order = vote_order(&named(&["cooperative-sticky", "fair", "range"]), &plugins).unwrap();
        assert_eq!(
            names(&order),
            ["weighted", "cooperative-sticky", "fair", "range"]
        );
        assert!(
            Arc::ptr_eq(&order[2], &fair),
            "the plugin, not a look-alike"
        );
        // Not named: plugins first, as before.
        let order = vote_order(&named(&["range"]), &plugins).unwrap();
        assert_eq!(names(&order), ["fair", "weighted", "range"]);
        // A plugin named like a built-in stands in for it; no name twice.
        let range_plugin: Arc<dyn Assignor> = Arc::new(Named("range"));
        let order = vote_order(
            &named(&["range", "sticky"]),
            std::slice::from_ref(&range_plugin),
        )
        .unwrap();
        assert_eq!(names(&order), ["range", "sticky"]);
        assert!(Arc::ptr_eq(&order[0], &range_plugin));
    }

    #[test]
    fn a_name_that_is_neither_is_refused_with_the_names_that_exist() {
        let fair: Arc<dyn Assignor> = Arc::new(Named("fair"));
        let error = vote_order(&named(&["range", "fiar"]), &[fair]).unwrap_err();
        assert_eq!(error.name, "fiar");
        let text = error.to_string();
        assert!(
            text.contains("`fiar`")
                && text.contains("range, roundrobin, sticky, cooperative-sticky, fair"),
            "{text}"
        );
    }
}
