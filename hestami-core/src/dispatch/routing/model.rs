//! The problem and solution types. Plain data: the solver and the checker read them, callers
//! build them, and they serialize as they are.

use serde::{Deserialize, Serialize};

use crate::text::TradeCode;

/// A closed interval of time `[start, end]`, in the problem's time unit.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimeWindow {
    /// The earliest moment.
    pub start: f64,
    /// The latest moment.
    pub end: f64,
}

impl TimeWindow {
    /// A window from `start` to `end`.
    pub fn new(start: f64, end: f64) -> Self {
        Self { start, end }
    }

    /// Whether `t` lies inside the window.
    pub fn contains(&self, t: f64) -> bool {
        self.start <= t && t <= self.end
    }
}

/// A technician's break: it lasts `duration` and starts inside `window`, wherever the
/// technician is at the time (it has no location of its own).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Break {
    /// When the break may start.
    pub window: TimeWindow,
    /// How long it lasts.
    pub duration: f64,
}

/// A technician: one vehicle of the routing problem.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Technician {
    /// Where the day starts (a location index of the travel matrix).
    pub start: usize,
    /// Where the day ends.
    pub end: usize,
    /// Leave the start no earlier than `shift.start`, reach the end no later than `shift.end`.
    pub shift: TimeWindow,
    /// An optional break.
    pub break_: Option<Break>,
    /// The trades the technician works, each with a skill level.
    pub trades: Vec<(TradeCode, u8)>,
    /// The load the technician can carry (the sum of the jobs' demands), if limited.
    pub capacity: Option<u64>,
    /// The number of jobs the technician can take, if limited.
    pub max_jobs: Option<usize>,
    /// Cost per unit of distance travelled.
    pub cost_per_distance: f64,
    /// Cost per unit of time working (travelling and on site; waiting is not charged).
    pub cost_per_time: f64,
    /// Cost of using the technician at all.
    pub fixed_cost: f64,
}

impl Technician {
    /// A technician with no trades, no limits, no break, and a cost of one per unit of distance.
    pub fn new(start: usize, end: usize, shift: TimeWindow) -> Self {
        Self {
            start,
            end,
            shift,
            break_: None,
            trades: Vec::new(),
            capacity: None,
            max_jobs: None,
            cost_per_distance: 1.0,
            cost_per_time: 0.0,
            fixed_cost: 0.0,
        }
    }

    /// The technician's level in `trade`, if they work it.
    pub fn level(&self, trade: &TradeCode) -> Option<u8> {
        self.trades
            .iter()
            .find(|(t, _)| t == trade)
            .map(|(_, l)| *l)
    }
}

/// A job: one visit to be assigned and sequenced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Where the work is (a location index of the travel matrix).
    pub location: usize,
    /// When the work may start: one or more windows, sorted and not overlapping.
    pub windows: Vec<TimeWindow>,
    /// How long the work takes on site.
    pub duration: f64,
    /// The trade required and its minimum level, if any.
    pub trade: Option<(TradeCode, u8)>,
    /// The load the job takes from the technician's capacity.
    pub demand: u64,
    /// The weight of leaving the job unassigned; at least 1. High priorities are left out last.
    pub priority: u32,
    /// The technician (index) the job must go to, if locked.
    pub locked_to: Option<usize>,
    /// Technicians (indices) the job must not go to.
    pub forbidden: Vec<usize>,
    /// The technician (index) the job is with now and the cost of giving it to another one:
    /// re-planning a day keeps what it can where it was.
    #[serde(default)]
    pub stay_with: Option<(usize, f64)>,
}

impl Job {
    /// A job at `location` with one window, no trade, no demand and priority 1.
    pub fn new(location: usize, window: TimeWindow, duration: f64) -> Self {
        Self {
            location,
            windows: vec![window],
            duration,
            trade: None,
            demand: 0,
            priority: 1,
            locked_to: None,
            forbidden: Vec::new(),
            stay_with: None,
        }
    }
}

/// The objective, hierarchical: first the fewest unassigned jobs weighted by priority (always),
/// then, when asked, the fewest technicians used, then the total cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Objective {
    /// Unassigned, then technicians used, then cost (the classic VRPTW objective).
    VehiclesThenCost,
    /// Unassigned, then cost.
    #[default]
    Cost,
}

/// A routing problem: the technicians, the jobs and the objective.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// The technicians (vehicles).
    pub technicians: Vec<Technician>,
    /// The jobs (visits).
    pub jobs: Vec<Job>,
    /// What to minimise.
    pub objective: Objective,
}

/// Why a problem cannot be solved as given.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RoutingError {
    /// A location index is outside the travel matrix.
    #[error("{what} refers to location {location}, but the travel matrix has {size}")]
    UnknownLocation {
        /// Which technician or job.
        what: String,
        /// The index.
        location: usize,
        /// The matrix size.
        size: usize,
    },
    /// A job has no window, or windows that are reversed, unsorted or overlapping.
    #[error("job {job} has invalid time windows")]
    InvalidWindows {
        /// The job index.
        job: usize,
    },
    /// A number is negative or not finite where it must be.
    #[error("{what} is negative or not finite")]
    InvalidNumber {
        /// Which value.
        what: String,
    },
    /// A job is locked to or forbidden for a technician that does not exist.
    #[error("job {job} refers to technician {technician}, which does not exist")]
    UnknownTechnician {
        /// The job index.
        job: usize,
        /// The technician index.
        technician: usize,
    },
}

/// One visit of a route, as scheduled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Visit {
    /// The job (index).
    pub job: usize,
    /// When the technician arrives.
    pub arrival: f64,
    /// When the work starts (at or after the arrival, inside one of the job's windows).
    pub start: f64,
    /// The latest the work could start without making this or a later visit late.
    pub latest_start: f64,
    /// `latest_start - start`: how much delay this visit absorbs.
    pub slack: f64,
}

/// One technician's day.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// The technician (index).
    pub technician: usize,
    /// When the technician leaves the start.
    pub departure: f64,
    /// The visits in order.
    pub visits: Vec<Visit>,
    /// The break, if the technician has one: taken after this many visits, starting at this time.
    pub break_taken: Option<(usize, f64)>,
    /// When the technician reaches the end.
    pub arrival: f64,
    /// Total distance travelled.
    pub distance: f64,
    /// Total travel time.
    pub travel_time: f64,
    /// Total demand served.
    pub load: u64,
    /// The route's cost (distance, working time, the fixed cost, and the cost of the jobs moved
    /// away from the technician they were with).
    pub cost: f64,
}

/// A constraint that kept a job out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Blocker {
    /// No technician has the trade and level, or the lock and forbid lists exclude them all.
    NoEligibleTechnician,
    /// The technician lacks the trade or the level.
    Skill,
    /// The job is locked to another technician, or forbidden for this one.
    LockOrForbid,
    /// The technician's load would exceed the capacity.
    Capacity,
    /// The technician would exceed the number of jobs they can take.
    MaxJobs,
    /// The job would be reached after its last window, or would make a later visit late.
    TimeWindow,
    /// The technician would end after the shift.
    Shift,
    /// The break could no longer be taken inside its window.
    Break,
}

/// The cheapest refused insertion of an unassigned job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InfeasibleInsertion {
    /// The technician (index).
    pub technician: usize,
    /// The job would have gone after this many of the route's visits.
    pub position: usize,
    /// The extra cost it would have added.
    pub extra_cost: f64,
    /// The constraints it breaks.
    pub blockers: Vec<Blocker>,
}

/// A job left out, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Unassigned {
    /// The job (index).
    pub job: usize,
    /// Every constraint that blocked some insertion, at least one.
    pub reasons: Vec<Blocker>,
    /// The cheapest insertion among those refused, when an eligible technician exists.
    pub cheapest_infeasible: Option<InfeasibleInsertion>,
}

/// A feasible place for a job in given routes: [`Inserter`](super::Inserter) ranks them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Insertion {
    /// The technician (index).
    pub technician: usize,
    /// The job goes after this many of the route's visits.
    pub position: usize,
    /// The cost it adds (travel, working time, a first visit's fixed cost, a move's cost).
    pub extra_cost: f64,
    /// The distance it adds.
    pub extra_distance: f64,
    /// The travel time it adds.
    pub extra_travel_time: f64,
    /// When the technician would arrive.
    pub arrival: f64,
    /// When the work would start.
    pub start: f64,
}

/// The value of a solution, part by part.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectiveValue {
    /// The number of unassigned jobs.
    pub unassigned: usize,
    /// Their priorities summed.
    pub unassigned_weight: u64,
    /// Technicians with at least one job.
    pub vehicles: usize,
    /// Total cost of the routes.
    pub cost: f64,
    /// Total distance.
    pub distance: f64,
    /// Total travel time.
    pub travel_time: f64,
}

/// A solved day.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Solution {
    /// One route per technician used, in technician order.
    pub routes: Vec<Route>,
    /// The jobs left out, in job order.
    pub unassigned: Vec<Unassigned>,
    /// The objective, part by part.
    pub objective: ObjectiveValue,
    /// The search iterations run.
    pub iterations: u64,
}
