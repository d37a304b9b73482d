//! Dispatch: who goes where, and when.
//!
//! [`routing`] is the routing engine: given a day's jobs and technicians it assigns and
//! sequences the visits. [`board`] is the dispatch board's day per technician (travel legs,
//! projections, flags) and the booking slots offered to customers. [`plan`] maps a day's
//! appointments and technicians to a routing problem, every eligibility rule a constraint, and
//! the solution back to a plan.

pub mod board;
pub mod plan;
pub mod routing;
