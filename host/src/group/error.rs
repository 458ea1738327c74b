//! Group errors, classified the way the Java client handles them: retry after rediscovering
//! the coordinator, rejoin, rejoin as a new member, or stop with an error the user must act on.

use kafka_protocol::error::ResponseError;

use crate::client::ClientError;
use crate::fetch::ConsumerError;

use super::assignor::AssignorError;
use super::protocol::ProtocolError;

/// What went wrong in a group, sorted by who acts on it: the member itself ([`Retry`]), the
/// application, which goes on ([`NotCommitted`], [`GroupError::Consumer`]), or the operator,
/// since the member stops ([`Fatal`]).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// Heals by itself: the member retries, finds the coordinator again or rejoins. A caller
    /// sees one from a one-shot command, or as the last cause of a commit that timed out.
    #[error(transparent)]
    Retry(#[from] Retry),
    /// A commit that did not happen; the member goes on and the records come again.
    #[error(transparent)]
    NotCommitted(#[from] NotCommitted),
    /// From the fetcher under the member: a partition or topic that stopped (handed out once
    /// by `poll`; the others go on), or the fetcher's own failure.
    #[error(transparent)]
    Consumer(#[from] ConsumerError),
    /// The member stops: no retry fixes it, and the message names the fix.
    #[error(transparent)]
    Fatal(#[from] Fatal),
}

/// Errors the member heals by itself.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Retry {
    /// The request did not get an answer (a connection failed, no broker answered): the
    /// member backs off, finds the coordinator again and retries. Authentication and TLS
    /// failures come this way too and are retried the same.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The coordinator moved or is loading: find it again and retry.
    #[error("{api}: the group coordinator is not available ({error}); finding it again")]
    CoordinatorMoved {
        api: &'static str,
        error: ResponseError,
    },
    /// A transient broker error (a timeout, a replica not yet in sync): retry with backoff.
    #[error("{api}: {error} (transient; retrying)")]
    Transient {
        api: &'static str,
        error: ResponseError,
    },
    /// The group is rebalancing: rejoin.
    #[error("{api}: the group is rebalancing")]
    Rebalancing { api: &'static str },
    /// This member's id or generation is no longer valid: its partitions are lost; rejoin.
    #[error("{api}: this member is no longer in the group ({error}); rejoining")]
    MemberGone {
        api: &'static str,
        error: ResponseError,
    },
    /// An assignment or subscription this member cannot read: rejoin (the next round may
    /// have another leader).
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The assignor call did not finish (its fallback covers an assignor that fails or
    /// answers nonsense): rejoin.
    #[error(transparent)]
    Assignor(#[from] AssignorError),
}

/// A commit that did not happen. Nothing is lost: the records it named are delivered again.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum NotCommitted {
    /// This consumer is not in the group right now (it left, or was removed and has not
    /// rejoined yet).
    #[error(
        "not committed: this consumer is not a member of group `{group}` right now (it left or \
         was removed from the group); the records will be delivered again"
    )]
    NotMember { group: String },
    /// Records handed out before the member lost its partitions.
    #[error(
        "not committed: this consumer lost its partitions in group `{group}` since the last \
         poll (it was removed from the group); their records will be delivered again"
    )]
    Lost { group: String },
    /// Partitions this member does not own (any more).
    #[error(
        "not committed: partitions {partitions:?} are no longer assigned to this member; \
         their records will be delivered again to their new owner"
    )]
    NotOwned { partitions: Vec<String> },
    /// The broker refused some partitions (the others were committed).
    #[error("not committed: the broker refused {}; the other partitions were committed and these will be delivered again", describe_refusals(.partitions))]
    PartitionsRefused { partitions: Vec<(String, String)> },
    /// The commit did not get through before its deadline.
    #[error("commit not confirmed within {timeout:?}")]
    TimedOut {
        timeout: std::time::Duration,
        /// The error of the last try.
        #[source]
        last: Box<GroupError>,
    },
}

/// Errors that stop the member.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Fatal {
    /// Another consumer with the same `group.instance.id` took over (KIP-345).
    #[error(
        "another consumer joined group `{group}` with the same group instance id `{instance_id}`; \
         this one is fenced and stops. Give each consumer its own consumer.group_instance_id"
    )]
    Fenced { group: String, instance_id: String },
    /// The broker refused the member with an error no retry fixes.
    #[error("{api} failed for group `{group}`: {error}{}. {hint}", broker_says(.detail))]
    Refused {
        api: &'static str,
        group: String,
        error: ResponseError,
        hint: &'static str,
        /// What the broker said about it, when it said something (ConsumerGroupHeartbeat
        /// answers carry a message: which field was invalid, which assignors exist).
        detail: Option<String>,
    },
    /// The group consumer was closed.
    #[error("the group consumer is closed")]
    Closed,
}

impl From<ClientError> for GroupError {
    fn from(error: ClientError) -> Self {
        GroupError::Retry(Retry::Client(error))
    }
}

impl From<ProtocolError> for GroupError {
    fn from(error: ProtocolError) -> Self {
        GroupError::Retry(Retry::Protocol(error))
    }
}

impl From<AssignorError> for GroupError {
    fn from(error: AssignorError) -> Self {
        GroupError::Retry(Retry::Assignor(error))
    }
}

impl GroupError {
    /// Heals by itself: retry the same request (after finding the coordinator again when
    /// [`GroupError::coordinator_lost`] says so).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            GroupError::Retry(
                Retry::Client(_) | Retry::CoordinatorMoved { .. } | Retry::Transient { .. }
            )
        )
    }

    /// The error is about the membership, not the request: the member must rejoin or stop
    /// (rebalancing, gone, fenced, session expired, not authorized for the group). Any
    /// other failure of a commit or an OffsetFetch leaves the member as it is.
    pub fn ends_membership(&self) -> bool {
        match self {
            GroupError::Retry(Retry::Rebalancing { .. } | Retry::MemberGone { .. })
            | GroupError::Fatal(Fatal::Fenced { .. }) => true,
            GroupError::Fatal(Fatal::Refused { error, .. }) => {
                *error == ResponseError::GroupAuthorizationFailed
            }
            _ => false,
        }
    }

    /// The coordinator may have moved: look it up again before the next try.
    pub fn coordinator_lost(&self) -> bool {
        matches!(
            self,
            GroupError::Retry(Retry::Client(_) | Retry::CoordinatorMoved { .. })
        )
    }
}

/// ` (the broker says: ...)`, or nothing.
fn broker_says(detail: &Option<String>) -> String {
    match detail {
        Some(detail) if !detail.is_empty() => format!(" (the broker says: {detail})"),
        _ => String::new(),
    }
}

fn describe_refusals(partitions: &[(String, String)]) -> String {
    partitions
        .iter()
        .map(|(partition, error)| format!("{partition} ({error})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Sorts a broker error code from a group API into what to do about it.
pub fn classify(
    api: &'static str,
    group: &str,
    instance_id: Option<&str>,
    error: ResponseError,
) -> GroupError {
    use ResponseError::*;
    let fatal = |error: ResponseError, hint: &'static str| {
        GroupError::Fatal(Fatal::Refused {
            api,
            group: group.to_string(),
            error,
            hint,
            detail: None,
        })
    };
    match error {
        NotCoordinator | CoordinatorNotAvailable | CoordinatorLoadInProgress => {
            Retry::CoordinatorMoved { api, error }.into()
        }
        RebalanceInProgress => Retry::Rebalancing { api }.into(),
        UnknownMemberId | IllegalGeneration | FencedMemberEpoch => {
            Retry::MemberGone { api, error }.into()
        }
        // A commit with a member epoch the broker has moved past (consumer protocol): the
        // next try carries the member's current epoch. UNRELEASED_INSTANCE_ID: the previous
        // holder of a static member's instance id has not left yet (a process that crashed
        // and came back before its session timed out).
        StaleMemberEpoch
        | UnreleasedInstanceId
        | RequestTimedOut
        | NetworkException
        | NotEnoughReplicas
        | NotEnoughReplicasAfterAppend
        | UnstableOffsetCommit
        | UnknownTopicOrPartition
        | ThrottlingQuotaExceeded => Retry::Transient { api, error }.into(),
        FencedInstanceId => Fatal::Fenced {
            group: group.to_string(),
            instance_id: instance_id.unwrap_or_default().to_string(),
        }
        .into(),
        InconsistentGroupProtocol => fatal(
            error, "Other members of this group use assignors this consumer does not: configure a common one in consumer.assignors",
        ),
        GroupMaxSizeReached => fatal(
            error, "The group is full (group.max.size on the broker)",
        ),
        InvalidSessionTimeout => fatal(
            error, "consumer.session_timeout_ms is outside the broker's group.min/max.session.timeout.ms",
        ),
        GroupAuthorizationFailed => fatal(
            error, "Grant this client's principal Read on the group (kafka-acls.sh --add \
                   --allow-principal User:NAME --operation Read --group GROUP)",
        ),
        TopicAuthorizationFailed => fatal(
            error, "Grant this client's principal Describe and Read on the group's topics \
                   (kafka-acls.sh --add --allow-principal User:NAME --operation Describe \
                   --operation Read --topic TOPIC)",
        ),
        UnsupportedAssignor => fatal(
            error, "consumer.group_remote_assignor names an assignor the broker does not offer \
                   (its group.consumer.assignors; Kafka's are `uniform` and `range`)",
        ),
        GroupIdNotFound => fatal(
            error, "The group exists under another protocol and the broker will not convert it \
                   (group.consumer.migration.policy): use the protocol its members use \
                   (consumer.group_protocol) or another group id",
        ),
        UnsupportedVersion => fatal(
            error, "The broker does not speak this version of the group protocol",
        ),
        other => fatal(
            other, "This error is not retried",
        ),
    }
}
