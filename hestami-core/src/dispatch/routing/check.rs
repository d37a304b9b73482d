//! An independent feasibility checker: it recomputes every route from the problem and the
//! travel matrix alone and never looks at the solver's bookkeeping, so tests can trust it.

use serde::{Deserialize, Serialize};

use super::model::{Problem, Solution};
use super::travel::TravelMatrix;

/// One broken rule in a solution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Violation {
    /// A job appears in no route and is not reported unassigned.
    Missing {
        /// The job.
        job: usize,
    },
    /// A job appears more than once (in routes or unassigned).
    Duplicate {
        /// The job.
        job: usize,
    },
    /// A job or technician index does not exist.
    UnknownIndex {
        /// What the index was for.
        what: &'static str,
        /// The index.
        index: usize,
    },
    /// A technician has more than one route.
    TechnicianTwice {
        /// The technician.
        technician: usize,
    },
    /// A job is on a technician without the trade or level, or against its lock or forbid list.
    Ineligible {
        /// The job.
        job: usize,
        /// The technician.
        technician: usize,
    },
    /// Work starts before the technician can be there.
    TooEarly {
        /// The job.
        job: usize,
    },
    /// Work starts outside every window of the job.
    OutsideWindow {
        /// The job.
        job: usize,
        /// The reported start.
        start: f64,
    },
    /// The technician leaves before the shift or comes back after it.
    Shift {
        /// The technician.
        technician: usize,
    },
    /// The break is missing, outside its window, or overlaps work or travel.
    Break {
        /// The technician.
        technician: usize,
    },
    /// The load exceeds the capacity.
    Capacity {
        /// The technician.
        technician: usize,
    },
    /// More jobs than the technician can take.
    MaxJobs {
        /// The technician.
        technician: usize,
    },
    /// An unassigned job carries no reason.
    NoReason {
        /// The job.
        job: usize,
    },
    /// A reported total disagrees with the recomputed one.
    Totals {
        /// Which total.
        what: &'static str,
    },
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
}

/// Every violation in `solution`; empty when it is feasible and complete.
pub fn check(problem: &Problem, travel: &dyn TravelMatrix, solution: &Solution) -> Vec<Violation> {
    const EPS: f64 = 1e-9;
    let mut out = Vec::new();
    let n = problem.jobs.len();
    let mut seen = vec![0u32; n];
    let mut techs_seen = vec![false; problem.technicians.len()];
    let (mut total_d, mut vehicles) = (0.0, 0);
    for route in &solution.routes {
        let t = route.technician;
        let Some(tech) = problem.technicians.get(t) else {
            out.push(Violation::UnknownIndex {
                what: "technician",
                index: t,
            });
            continue;
        };
        if std::mem::replace(&mut techs_seen[t], true) {
            out.push(Violation::TechnicianTwice { technician: t });
        }
        if route.departure < tech.shift.start - EPS {
            out.push(Violation::Shift { technician: t });
        }
        let mut now = route.departure;
        let mut here = tech.start;
        let (mut dist, mut load) = (0.0, 0u64);
        let break_at = |i: usize| route.break_taken.filter(|b| b.0 == i).map(|b| b.1);
        let take_break = |now: &mut f64, bs: f64, out: &mut Vec<Violation>| match tech.break_ {
            Some(b) if bs >= *now - EPS && b.window.contains(bs) => *now = bs + b.duration,
            _ => out.push(Violation::Break { technician: t }),
        };
        match (tech.break_, route.break_taken) {
            (Some(_), None) => out.push(Violation::Break { technician: t }),
            (_, Some((i, _))) if i > route.visits.len() => {
                out.push(Violation::Break { technician: t })
            }
            _ => {}
        }
        for (i, v) in route.visits.iter().enumerate() {
            if let Some(bs) = break_at(i) {
                take_break(&mut now, bs, &mut out);
            }
            let Some(job) = problem.jobs.get(v.job) else {
                out.push(Violation::UnknownIndex {
                    what: "job",
                    index: v.job,
                });
                continue;
            };
            seen[v.job] += 1;
            let skilled = match &job.trade {
                None => true,
                Some((trade, level)) => tech.trades.iter().any(|(tr, l)| tr == trade && l >= level),
            };
            if !skilled || job.locked_to.is_some_and(|l| l != t) || job.forbidden.contains(&t) {
                out.push(Violation::Ineligible {
                    job: v.job,
                    technician: t,
                });
            }
            let arrival = now + travel.time(here, job.location);
            dist += travel.distance(here, job.location);
            if v.start < arrival - EPS * arrival.abs().max(1.0) {
                out.push(Violation::TooEarly { job: v.job });
            }
            let tol = EPS * v.start.abs().max(1.0);
            if !job
                .windows
                .iter()
                .any(|w| w.start - tol <= v.start && v.start <= w.end + tol)
            {
                out.push(Violation::OutsideWindow {
                    job: v.job,
                    start: v.start,
                });
            }
            now = v.start.max(arrival) + job.duration;
            here = job.location;
            load += job.demand;
        }
        if let Some(bs) = break_at(route.visits.len()) {
            take_break(&mut now, bs, &mut out);
        }
        if !route.visits.is_empty() {
            vehicles += 1;
            dist += travel.distance(here, tech.end);
            let end = now + travel.time(here, tech.end);
            if end > tech.shift.end + EPS * end.abs().max(1.0) {
                out.push(Violation::Shift { technician: t });
            }
        }
        if tech.capacity.is_some_and(|c| load > c) {
            out.push(Violation::Capacity { technician: t });
        }
        if tech.max_jobs.is_some_and(|m| route.visits.len() > m) {
            out.push(Violation::MaxJobs { technician: t });
        }
        if !close(dist, route.distance) {
            out.push(Violation::Totals {
                what: "route distance",
            });
        }
        total_d += dist;
    }
    for u in &solution.unassigned {
        match seen.get_mut(u.job) {
            Some(c) => *c += 1,
            None => out.push(Violation::UnknownIndex {
                what: "job",
                index: u.job,
            }),
        }
        if u.reasons.is_empty() {
            out.push(Violation::NoReason { job: u.job });
        }
    }
    for (job, &c) in seen.iter().enumerate() {
        match c {
            0 => out.push(Violation::Missing { job }),
            1 => {}
            _ => out.push(Violation::Duplicate { job }),
        }
    }
    let o = &solution.objective;
    if !close(total_d, o.distance) {
        out.push(Violation::Totals { what: "distance" });
    }
    if o.vehicles != vehicles {
        out.push(Violation::Totals { what: "vehicles" });
    }
    if o.unassigned != solution.unassigned.len() {
        out.push(Violation::Totals { what: "unassigned" });
    }
    out
}
