//! The policy lab: try assignors (and, with `wasmkafka offsets plan`, reset policies) before
//! they take effect, through the same code the consumer runs.
//!
//! - [`scenario`]: a group to simulate (topics, members, racks, events), from flags or a file.
//! - [`simulate`](mod@simulate): plays each event as the group would (eager or cooperative rounds) with the
//!   leader's own decision path, [`crate::group::assignor::assign_group`]; or, under the
//!   consumer protocol (KIP-848), with the broker's assignors ([`simulate_broker`]), which
//!   move partitions without a group-wide pause.
//! - [`broker`]: the broker's assignors by their lab names (`broker-uniform`, `broker-range`);
//!   lab only, never client-side assignors.
//! - [`report`]: the numbers per assignor and step, as a table or JSON.
//! - [`html`](mod@html): the same runs as one self-contained HTML page (grids and charts).

pub mod broker;
pub mod html;
pub mod report;
pub mod scenario;
pub mod simulate;

pub use broker::BrokerAssignor;
pub use scenario::{Event, MemberSpec, Scenario, TopicSpec};
pub use simulate::{
    simulate, simulate_broker, AssignorRun, MakeAssignor, MemberCells, Moved, Spread, StepCells,
    StepReport,
};
