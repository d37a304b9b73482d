//! Dispatch: who goes where, and when.
//!
//! For now this holds the routing engine ([`routing`]): given a day's jobs and technicians it
//! assigns and sequences the visits. The dispatch board and its procedures build on it later.

pub mod routing;
