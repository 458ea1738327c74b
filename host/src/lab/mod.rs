//! The policy lab: try assignors (and, with `wasmkafka offsets plan`, reset policies) before
//! they take effect, through the same code the consumer runs.
//!
//! - [`scenario`]: a group to simulate (topics, members, racks, events), from flags or a file.
//! - [`simulate`](mod@simulate): plays each event as the group would (eager or cooperative rounds) with the
//!   leader's own decision path, [`crate::group::assignor::assign_group`].
//! - [`report`]: the numbers per assignor and step, as a table or JSON.

pub mod report;
pub mod scenario;
pub mod simulate;

pub use scenario::{Event, MemberSpec, Scenario, TopicSpec};
pub use simulate::{simulate, AssignorRun, MakeAssignor, Spread, StepReport};
