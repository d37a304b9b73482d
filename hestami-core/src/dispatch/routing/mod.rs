//! The routing problem of a field-service day and its solver.
//!
//! A day is a vehicle routing problem with time windows: [`Technician`]s (the vehicles) with a
//! start and end location, a shift, an optional break, trades with levels, a capacity and costs;
//! [`Job`]s (the visits) with a location, one or more time windows, a service duration, a required
//! trade and level, a demand, a priority, and optionally a technician they are locked to or
//! forbidden for. Travel comes from a [`TravelMatrix`] supplied by the caller, so a road-network
//! engine can be plugged in later; [`Euclidean`] and [`Haversine`] are provided.
//!
//! The same [`Problem`] carries the benchmark form: [`solomon`] parses the Solomon text layout and
//! converts an instance into identical technicians at the depot.
//!
//! [`solve`] runs a slack-induction-by-string-removals search (SISR, Christiaens & Vanden Berghe
//! 2020) with a fleet-minimisation phase driven by absence counters. It is deterministic for a
//! seed and an iteration [`Budget`], and it never reads the clock: a deadline is a [`Budget`] the
//! caller implements. The returned [`Solution`] is data all the way down: per visit the arrival,
//! the start and the slack; per unassigned job every constraint that blocked it and the cheapest
//! insertion that was refused. [`check`] verifies a solution independently of the solver's own
//! bookkeeping.
//!
//! Times and durations are plain `f64` in one unit the caller chooses (minutes since midnight of
//! the board's day, say); locations are indices into the travel matrix; technicians and jobs are
//! referred to by their index in the problem. The dispatch board maps its ids to these indices.

mod check;
mod model;
mod rng;
pub mod solomon;
mod solver;
mod travel;

#[cfg(test)]
mod tests;

pub use check::{Violation, check};
pub use model::{
    Blocker, Break, InfeasibleInsertion, Insertion, Job, Objective, ObjectiveValue, Problem, Route,
    RoutingError, Solution, Technician, TimeWindow, Unassigned, Visit,
};
pub use solver::{Budget, Inserter, Iterations, SolverConfig, solve};
pub use travel::{DenseMatrix, Euclidean, Haversine, Rounding, TravelMatrix};
