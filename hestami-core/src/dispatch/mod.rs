//! Dispatch: who goes where, and when.
//!
//! [`routing`] is the routing engine: given a day's jobs and technicians it assigns and
//! sequences the visits. [`board`] is the dispatch board's day per technician (travel legs,
//! projections, flags) and the booking slots offered to customers.

pub mod board;
pub mod routing;
