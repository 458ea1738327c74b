//! Group errors, classified the way the Java client handles them: retry after rediscovering
//! the coordinator, rejoin, rejoin as a new member, or stop with an error the user must act on.

use kafka_protocol::error::ResponseError;

use crate::client::ClientError;
use crate::fetch::ConsumerError;

use super::assignor::AssignorError;
use super::protocol::ProtocolError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum GroupError {
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
    /// Another consumer with the same `group.instance.id` took over (KIP-345).
    #[error(
        "another consumer joined group `{group}` with the same group instance id `{instance_id}`; \
         this one is fenced and stops. Give each consumer its own consumer.group_instance_id"
    )]
    Fenced { group: String, instance_id: String },
    /// An error no retry fixes.
    #[error("{api} failed for group `{group}`: {error}{}. {hint}", broker_says(.detail))]
    Fatal {
        api: &'static str,
        group: String,
        error: ResponseError,
        hint: &'static str,
        /// What the broker said about it, when it said something (ConsumerGroupHeartbeat
        /// answers carry a message: which field was invalid, which assignors exist).
        detail: Option<String>,
    },
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error(transparent)]
    Assignor(#[from] AssignorError),
    #[error(transparent)]
    Consumer(#[from] ConsumerError),
    #[error("the group consumer is closed")]
    Closed,
    /// A commit while this consumer is not in the group (it left, or was removed and has not
    /// rejoined yet): nothing was committed.
    #[error(
        "not committed: this consumer is not a member of group `{group}` right now (it left or \
         was removed from the group); the records will be delivered again"
    )]
    NotMember { group: String },
    /// A commit of records handed out before the member lost its partitions.
    #[error(
        "not committed: this consumer lost its partitions in group `{group}` since the last \
         poll (it was removed from the group); their records will be delivered again"
    )]
    Lost { group: String },
    /// A commit for partitions this member does not own (any more).
    #[error(
        "not committed: partitions {partitions:?} are no longer assigned to this member; \
         their records will be delivered again to their new owner"
    )]
    NotOwned { partitions: Vec<String> },
    /// The broker refused to commit some partitions (the others were committed).
    #[error("not committed: the broker refused {}; the other partitions were committed and these will be delivered again", describe_refusals(.partitions))]
    PartitionsRefused { partitions: Vec<(String, String)> },
    /// The commit did not get through before its deadline.
    #[error("commit not confirmed within {timeout:?}: {last}")]
    CommitTimedOut {
        timeout: std::time::Duration,
        last: Box<GroupError>,
    },
}

impl GroupError {
    /// Heals by itself: retry the same request (after finding the coordinator again when
    /// [`GroupError::coordinator_lost`] says so).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            GroupError::Client(_)
                | GroupError::CoordinatorMoved { .. }
                | GroupError::Transient { .. }
        )
    }

    /// The error is about the membership, not the request: the member must rejoin or stop
    /// (rebalancing, gone, fenced, session expired, not authorized for the group). Any
    /// other failure of a commit or an OffsetFetch leaves the member as it is.
    pub fn ends_membership(&self) -> bool {
        match self {
            GroupError::Rebalancing { .. }
            | GroupError::MemberGone { .. }
            | GroupError::Fenced { .. } => true,
            GroupError::Fatal { error, .. } => *error == ResponseError::GroupAuthorizationFailed,
            _ => false,
        }
    }

    /// The coordinator may have moved: look it up again before the next try.
    pub fn coordinator_lost(&self) -> bool {
        matches!(
            self,
            GroupError::Client(_) | GroupError::CoordinatorMoved { .. }
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
    let fatal = |error: ResponseError, hint: &'static str| GroupError::Fatal {
        api,
        group: group.to_string(),
        error,
        hint,
        detail: None,
    };
    match error {
        NotCoordinator | CoordinatorNotAvailable | CoordinatorLoadInProgress => {
            GroupError::CoordinatorMoved { api, error }
        }
        RebalanceInProgress => GroupError::Rebalancing { api },
        UnknownMemberId | IllegalGeneration | FencedMemberEpoch => {
            GroupError::MemberGone { api, error }
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
        | ThrottlingQuotaExceeded => GroupError::Transient { api, error },
        FencedInstanceId => GroupError::Fenced {
            group: group.to_string(),
            instance_id: instance_id.unwrap_or_default().to_string(),
        },
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
