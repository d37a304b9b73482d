//! A day of appointments as a routing problem, and the routing solution back as a plan.
//!
//! [`to_problem`] maps the facts the store gathers for one local day to a
//! [`routing::Problem`]: technicians become vehicles, the visits to
//! plan become jobs, and every eligibility rule becomes a constraint, so that an ineligible
//! technician-visit pair is never proposed:
//!
//! | rule | constraint |
//! | --- | --- |
//! | `TECHNICIAN_INACTIVE`, `TRADE_MISSING`, `SKILL_LEVEL_TOO_LOW`, `CERTIFICATION_MISSING`, `CERTIFICATION_EXPIRED`, `OUTSIDE_ORGANIZATION_AREA`, `OUTSIDE_TECHNICIAN_AREA`, `ORGANIZATION_NOT_COMPLIANT` | the pair is forbidden (these do not depend on the time of day) |
//! | `TIME_OFF_OVERLAP` | the pair is forbidden when time off meets the arrival window or the work that may follow it (conservative: the router has no time-off blocks) |
//! | `OUTSIDE_SHIFT` | the technician's shift is the vehicle's time window; one gap between shift spans is a break at a fixed time; a second gap ends the day there |
//! | `APPOINTMENT_OVERLAP` | bookings that stay (not planned) are jobs locked to their technician at their own times (one that does not fit the technician's day forbids the visits that could meet it instead); the route never overlaps two visits |
//! | `DAILY_CAPACITY_REACHED` | the vehicle takes at most its daily capacity of visits, the locked ones included |
//!
//! A visit without coordinates, or that no technician may take, is left out before solving,
//! with the reasons. [`to_plan`] turns the solution into routes with times, legs and slack, the
//! visits left out with rule codes, and the plan's figures. Times inside the problem are minutes
//! after the local day's midnight.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::board::TravelSettings;
use super::routing::{
    self, Blocker, Break, DenseMatrix, Haversine, Problem, Solution, TravelMatrix,
};
use crate::compliance::ComplianceVerdict;
use crate::customer::GeoPoint;
use crate::eligibility::{self, JobNeeds, OrgFacts, TechnicianFacts};
use crate::ids::{AppointmentId, JobId, TechnicianId};
use crate::job::{Priority, TimeWindow};
use crate::schedule::{local_to_utc, shift_intervals};

/// The rules the router enforces itself (they depend on when the visit happens).
const TIMED_RULES: [&str; 3] = [
    "OUTSIDE_SHIFT",
    "APPOINTMENT_OVERLAP",
    "DAILY_CAPACITY_REACHED",
];

/// A visit to plan.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanVisit {
    /// The appointment.
    pub appointment_id: AppointmentId,
    /// What it needs; `window` is the customer's arrival window, `appointment_id` is set.
    pub needs: JobNeeds,
    /// Minutes on site.
    pub minutes: u32,
    /// Its job's priority.
    pub priority: Priority,
    /// The technician it must stay with, if pinned.
    pub pinned: Option<TechnicianId>,
    /// The organization's compliance for this visit's trade and jurisdiction on the day (the
    /// organization facts' own verdict is not read: it depends on the visit).
    pub compliance: ComplianceVerdict,
    /// Who leads it now, if anyone: re-planning weighs moving it away ([`Weights::stability`]).
    pub current: Option<TechnicianId>,
    /// When it is planned to start now, if it is.
    pub current_start: Option<DateTime<Utc>>,
    /// The job's SLA deadline, when this visit is the one that must meet it.
    pub sla_deadline: Option<DateTime<Utc>>,
}

impl PlanVisit {
    /// The organization's facts as they apply to this visit.
    pub fn org(&self, org: &OrgFacts) -> OrgFacts {
        OrgFacts {
            compliance: self.compliance.clone(),
            ..org.clone()
        }
    }
}

/// What a plan weighs against what, in cost units: a minute driven, a kilometre driven, a visit
/// given to another technician than the one it is with. Leaving a visit out is never traded
/// against these (the fewest visits left out, weighted by priority, always comes first), and a
/// plan is never late for an arrival window nor past a shift's end: those are constraints, not
/// weights.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Weights {
    /// Per minute driven (default 1).
    pub travel_minutes: f64,
    /// Per kilometre driven (default 0).
    pub travel_km: f64,
    /// Per visit moved to another technician (default 30: a move must save half an hour).
    pub stability: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Self {
            travel_minutes: 1.0,
            travel_km: 0.0,
            stability: 30.0,
        }
    }
}

/// A visit moved by more than this many minutes counts as moved.
pub const MOVE_TOLERANCE_MINUTES: i64 = 30;

/// The facts of one local day.
#[derive(Clone, Debug)]
pub struct DayFacts {
    /// The local date.
    pub day: NaiveDate,
    /// The organization's facts for that date.
    pub org: OrgFacts,
    /// The technicians, each with the bookings that stay as they are (not planned here).
    pub technicians: Vec<TechnicianFacts>,
    /// The visits to plan.
    pub visits: Vec<PlanVisit>,
    /// The travel model.
    pub travel: TravelSettings,
}

/// Why a visit is not in a plan, or why a technician cannot take it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TechnicianRefusal {
    /// Who.
    pub technician_id: TechnicianId,
    /// The eligibility rules they fail for the visit.
    pub codes: Vec<String>,
}

/// The problem and how to read its indices back.
#[derive(Clone, Debug)]
pub struct Mapped {
    /// The routing problem.
    pub problem: Problem,
    /// Distances in km, times in minutes.
    pub matrix: DenseMatrix,
    /// Minute 0: the local day's midnight.
    pub origin: DateTime<Utc>,
    /// Per problem job: the visit it is (`Some(index into DayFacts::visits)`), or a booking that
    /// stays (`None`, with its job).
    pub jobs: Vec<(Option<usize>, JobId)>,
    /// Per visit: the technicians who may not take it, with their rule codes.
    pub refusals: Vec<Vec<TechnicianRefusal>>,
    /// Visits left out before solving, with their reasons.
    pub left_out: Vec<(usize, Vec<String>)>,
    /// Per problem job: for a booking that stays, its technician and its index among their
    /// bookings.
    pub kept: Vec<Option<(usize, usize)>>,
}

fn minutes(origin: DateTime<Utc>, t: DateTime<Utc>) -> f64 {
    (t - origin).num_seconds() as f64 / 60.0
}

/// The weight of leaving a visit out: by priority, ten times more when its job's SLA deadline
/// falls on the day (leaving it out breaches the SLA).
fn weight(visit: &PlanVisit, day_end: DateTime<Utc>) -> u32 {
    let base = match visit.priority {
        Priority::Emergency => 100,
        Priority::Urgent => 10,
        Priority::Routine => 1,
    };
    if visit.sla_deadline.is_some_and(|d| d <= day_end) {
        base * 10
    } else {
        base
    }
}

/// The weight of a booking that stays: never the one left out.
const KEPT: u32 = 100_000;

/// Maps a day to a routing problem (see the module's table).
///
/// A booking that stays is a job locked to its technician at its own time, unless the
/// technician cannot be there on time (it starts at the shift's start far from home, say, or
/// right after another booking across town): the solver's construction, run once without
/// search, leaves such a booking out, and it then blocks its window instead, so that no visit is
/// planned over it.
pub fn to_problem(facts: &DayFacts, weights: &Weights) -> Mapped {
    let mut unreachable = std::collections::BTreeSet::new();
    loop {
        let mapped = map(facts, weights, &unreachable);
        let probe = routing::solve(
            &mapped.problem,
            &mapped.matrix,
            &routing::SolverConfig::default(),
            &mut routing::Iterations::new(0),
        );
        let dropped: Vec<(usize, usize)> = probe
            .map(|s| {
                s.unassigned
                    .iter()
                    .filter_map(|u| mapped.kept[u.job])
                    .collect()
            })
            .unwrap_or_default();
        if dropped.is_empty() {
            return mapped;
        }
        unreachable.extend(dropped);
    }
}

fn map(
    facts: &DayFacts,
    weights: &Weights,
    unreachable: &std::collections::BTreeSet<(usize, usize)>,
) -> Mapped {
    let tz = facts.org.time_zone.tz();
    let origin = local_to_utc(tz, facts.day.and_hms_opt(0, 0, 0).unwrap_or_default());
    let day_end = local_to_utc(
        tz,
        (facts.day + Duration::days(1))
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default(),
    );
    // Locations: each technician's home (or a place 0 from everywhere when unknown), then the
    // visits' and the kept bookings' places.
    let mut points: Vec<Option<GeoPoint>> = facts
        .technicians
        .iter()
        .map(|t| t.profile.home_base)
        .collect();
    let mut technicians = Vec::new();
    for (k, t) in facts.technicians.iter().enumerate() {
        // The day's shift spans, cut to the day.
        let spans: Vec<(DateTime<Utc>, DateTime<Utc>)> =
            shift_intervals(&t.profile.shifts, tz, origin, day_end)
                .into_iter()
                .map(|(s, e)| (s.max(origin), e.min(day_end)))
                .filter(|(s, e)| s < e)
                .collect();
        let (shift, break_) = match spans.as_slice() {
            [] => (routing::TimeWindow::new(0.0, 0.0), None),
            [only] => (
                routing::TimeWindow::new(minutes(origin, only.0), minutes(origin, only.1)),
                None,
            ),
            [first, second, ..] => {
                let gap = minutes(origin, second.0) - minutes(origin, first.1);
                (
                    routing::TimeWindow::new(minutes(origin, first.0), minutes(origin, second.1)),
                    Some(Break {
                        window: routing::TimeWindow::new(
                            minutes(origin, first.1),
                            minutes(origin, first.1),
                        ),
                        duration: gap,
                    }),
                )
            }
        };
        let mut vehicle = routing::Technician::new(k, k, shift);
        vehicle.break_ = break_;
        vehicle.cost_per_distance = weights.travel_km;
        vehicle.cost_per_time = weights.travel_minutes;
        vehicle.max_jobs = Some(usize::from(t.profile.daily_capacity.get()));
        technicians.push(vehicle);
    }
    // Bookings that stay but cannot be placed in their technician's day (outside the shift, or
    // begun before midnight) block their window instead: a visit that could meet it is
    // forbidden to that technician.
    let mut blocked: Vec<(usize, TimeWindow)> = Vec::new();
    let mut kept: Vec<(usize, usize, &crate::schedule::Appointment)> = Vec::new();
    for (k, t) in facts.technicians.iter().enumerate() {
        let shift = technicians[k].shift;
        for (b, booking) in t.appointments.iter().enumerate() {
            if booking.window.end() <= origin || booking.window.start() >= day_end {
                continue;
            }
            let (s, e) = (
                minutes(origin, booking.window.start()),
                minutes(origin, booking.window.end()),
            );
            if s >= shift.start
                && e <= shift.end
                && shift.start < shift.end
                && !unreachable.contains(&(k, b))
            {
                kept.push((k, b, booking));
            } else {
                blocked.push((k, booking.window));
            }
        }
    }
    // Blocked bookings still take their share of the technician's daily capacity.
    for (k, vehicle) in technicians.iter_mut().enumerate() {
        let taken = blocked.iter().filter(|(b, _)| *b == k).count();
        vehicle.max_jobs = vehicle.max_jobs.map(|m| m.saturating_sub(taken));
    }
    let mut jobs = Vec::new();
    let mut index = Vec::new();
    let mut refusals = vec![Vec::new(); facts.visits.len()];
    let mut left_out = Vec::new();
    for (v, visit) in facts.visits.iter().enumerate() {
        let Some(place) = visit.needs.location else {
            left_out.push((v, vec!["LOCATION_UNKNOWN".to_owned()]));
            continue;
        };
        let mut forbidden = Vec::new();
        let reach = reach(visit);
        for (k, t) in facts.technicians.iter().enumerate() {
            let mut codes = untimed_refusals(visit, t, &visit.org(&facts.org));
            if blocked
                .iter()
                .any(|(b, w)| *b == k && w.start() < reach.end() && reach.start() < w.end())
            {
                codes.push("APPOINTMENT_OVERLAP".to_owned());
            }
            if !codes.is_empty() {
                forbidden.push(k);
                refusals[v].push(TechnicianRefusal {
                    technician_id: t.technician.id,
                    codes,
                });
            }
        }
        let pinned = visit
            .pinned
            .and_then(|p| facts.technicians.iter().position(|t| t.technician.id == p));
        let allowed = |k: usize| !forbidden.contains(&k) && pinned.is_none_or(|p| p == k);
        if !(0..facts.technicians.len()).any(allowed) {
            let mut reasons = vec!["NO_ELIGIBLE_TECHNICIAN".to_owned()];
            if visit.pinned.is_some() {
                reasons.push("PINNED_TECHNICIAN_INELIGIBLE".to_owned());
            }
            left_out.push((v, reasons));
            continue;
        }
        points.push(Some(place));
        let window = visit.needs.window;
        let mut job = routing::Job::new(
            points.len() - 1,
            routing::TimeWindow::new(
                minutes(origin, window.start()),
                minutes(origin, window.end()),
            ),
            f64::from(visit.minutes),
        );
        job.priority = weight(visit, day_end);
        job.stay_with = visit
            .current
            .and_then(|c| facts.technicians.iter().position(|t| t.technician.id == c))
            .filter(|&k| allowed(k))
            .map(|k| (k, weights.stability));
        job.forbidden = forbidden;
        job.locked_to = pinned;
        jobs.push(job);
        index.push((
            Some(v),
            visit
                .needs
                .job_id
                .unwrap_or_else(|| JobId::from_uuid(visit.appointment_id.as_uuid())),
        ));
    }
    // Bookings that stay and fit the day: locked to their technician at exactly their window's
    // start, for the whole window.
    let mut origins = vec![None; jobs.len()];
    for (k, b, booking) in kept {
        {
            points.push(booking.location);
            let start = minutes(origin, booking.window.start());
            let mut job = routing::Job::new(
                points.len() - 1,
                routing::TimeWindow::new(start, start),
                minutes(origin, booking.window.end()) - start,
            );
            job.priority = KEPT;
            job.locked_to = Some(k);
            jobs.push(job);
            index.push((None, booking.job_id));
            origins.push(Some((k, b)));
        }
    }
    let matrix = matrix(&points, &facts.travel);
    Mapped {
        problem: Problem {
            technicians,
            jobs,
            objective: routing::Objective::Cost,
        },
        matrix,
        origin,
        jobs: index,
        refusals,
        left_out,
        kept: origins,
    }
}

/// The arrival window and the work that may follow it: when the visit can occupy its crew.
fn reach(visit: &PlanVisit) -> TimeWindow {
    let window = visit.needs.window;
    TimeWindow::parse(
        window.start(),
        window.end() + Duration::minutes(i64::from(visit.minutes)),
    )
    .unwrap_or(window)
}

/// The eligibility rules `tech` fails for `visit` that the router cannot weigh: every rule but
/// the timed ones, with time off judged over the arrival window and the work after it.
fn untimed_refusals(visit: &PlanVisit, tech: &TechnicianFacts, org: &OrgFacts) -> Vec<String> {
    let mut facts = tech.clone();
    facts.appointments.clear();
    let needs = JobNeeds {
        window: reach(visit),
        ..visit.needs.clone()
    };
    eligibility::evaluate(&needs, &facts, org)
        .failed
        .into_iter()
        .filter(|f| !TIMED_RULES.contains(&f.code))
        .map(|f| f.code.to_owned())
        .collect()
}

/// Distances (km) and times (minutes) between the points; an unknown point is 0 from all.
fn matrix(points: &[Option<GeoPoint>], travel: &TravelSettings) -> DenseMatrix {
    let coords: Vec<(f64, f64)> = points
        .iter()
        .map(|p| p.map_or((0.0, 0.0), |p| (p.lat(), p.lon())))
        .collect();
    let speed = travel.speed_kmh * 1_000.0 / 60.0;
    let h = Haversine::new(coords, travel.detour_factor, speed);
    let n = points.len();
    let mut d = Vec::with_capacity(n * n);
    let mut t = Vec::with_capacity(n * n);
    for a in 0..n {
        for b in 0..n {
            let known = points[a].is_some() && points[b].is_some();
            d.push(if known {
                h.distance(a, b) / 1_000.0
            } else {
                0.0
            });
            t.push(if known { h.time(a, b) } else { 0.0 });
        }
    }
    DenseMatrix::new(n, d, t).unwrap_or_else(|| DenseMatrix::from_matrix(&h))
}

/// Why a visit went to its technician: who else could take it, and what the next best would
/// have cost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Why {
    /// How many technicians pass every rule that does not depend on the time of day (this one
    /// included).
    pub eligible_technicians: usize,
    /// The cheapest other technician who could take it with the rest of the plan as it is.
    pub next_best: Option<Alternative>,
}

/// Another technician who could take a visit, and what it would add over the plan's choice.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alternative {
    /// Who.
    pub technician_id: TechnicianId,
    /// The plan's cost more (in the weights' units).
    pub extra_cost: f64,
    /// Kilometres more.
    pub extra_km: f64,
    /// Minutes driven more.
    pub extra_minutes: f64,
}

/// A stop of a planned route.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedStop {
    /// The appointment planned (`None`: a booking that stays as it is).
    pub appointment_id: Option<AppointmentId>,
    /// The job.
    pub job_id: JobId,
    /// When the technician arrives.
    pub arrival: DateTime<Utc>,
    /// When the work starts.
    pub start: DateTime<Utc>,
    /// When it ends.
    pub end: DateTime<Utc>,
    /// How many minutes later the work could start with the rest of the day still feasible.
    pub slack_minutes: f64,
    /// Kilometres from the stop before (or home).
    pub leg_km: f64,
    /// Minutes from the stop before (or home).
    pub leg_minutes: f64,
    /// Whether the plan moves this visit: to another technician than the one it is with, or by
    /// more than [`MOVE_TOLERANCE_MINUTES`] from its planned start.
    pub moved: bool,
    /// Why this technician (for a planned visit).
    pub why: Option<Why>,
}

/// A technician's planned day.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedRoute {
    /// Who.
    pub technician_id: TechnicianId,
    /// The stops in order.
    pub stops: Vec<PlannedStop>,
    /// When the break (the gap between shift spans) starts, if there is one.
    pub break_start: Option<DateTime<Utc>>,
    /// Kilometres driven.
    pub travel_km: f64,
    /// Minutes driven.
    pub travel_minutes: f64,
}

/// A visit the plan leaves out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnplannedVisit {
    /// The appointment.
    pub appointment_id: AppointmentId,
    /// Rule codes: `LOCATION_UNKNOWN`, `NO_ELIGIBLE_TECHNICIAN`, `PINNED_TECHNICIAN_INELIGIBLE`,
    /// `WINDOW_UNREACHABLE`, `OUTSIDE_SHIFT`, `BREAK`, `DAILY_CAPACITY_REACHED`.
    pub reasons: Vec<String>,
    /// The technicians who may not take it, each with their rule codes.
    pub ineligible: Vec<TechnicianRefusal>,
}

/// The figures of a day's routes, measured the same way for a plan, the day as it stands and
/// a greedy dispatcher's day.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Kpis {
    /// Visits to plan.
    pub visits: usize,
    /// Of them, those on a route.
    pub scheduled: usize,
    /// Kilometres driven.
    pub travel_km: f64,
    /// Minutes driven.
    pub travel_minutes: f64,
    /// Visits started after their arrival window closed.
    pub late_visits: usize,
    /// Minutes past the windows' ends, summed.
    pub lateness_minutes: f64,
    /// Minutes past the shifts' ends, summed.
    pub overtime_minutes: f64,
    /// Work and driving over the shift minutes of the technicians with work, from 0 to 1 (more
    /// with overtime).
    pub utilization: f64,
    /// Visits whose job's SLA deadline falls on the day that are not started by it (or not
    /// scheduled).
    pub sla_missed: usize,
}

/// A day's plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DayPlan {
    /// The routes of the technicians with at least one stop.
    pub routes: Vec<PlannedRoute>,
    /// The visits left out.
    pub unplanned: Vec<UnplannedVisit>,
    /// Kilometres driven in all.
    pub travel_km: f64,
    /// Minutes driven in all.
    pub travel_minutes: f64,
    /// The plan's figures.
    pub kpis: Kpis,
    /// The same figures for the day as it stands (who leads each visit now, at its planned
    /// start or as early as its window allows).
    pub before: Kpis,
    /// The same figures for a greedy dispatcher's day ([`greedy_routes`]): the baseline the
    /// optimizer has to beat.
    pub greedy: Kpis,
    /// How many visits the plan moves (see [`PlannedStop::moved`]; a visit with a technician
    /// now that the plan leaves out counts too).
    pub moved: usize,
}

fn blocker_code(b: Blocker) -> &'static str {
    match b {
        Blocker::NoEligibleTechnician | Blocker::Skill | Blocker::LockOrForbid => {
            "NO_ELIGIBLE_TECHNICIAN"
        }
        Blocker::Capacity | Blocker::MaxJobs => "DAILY_CAPACITY_REACHED",
        Blocker::TimeWindow => "WINDOW_UNREACHABLE",
        Blocker::Shift => "OUTSIDE_SHIFT",
        Blocker::Break => "BREAK",
    }
}

impl Mapped {
    /// The instant `m` minutes into the problem (after the local day's midnight).
    pub fn at(&self, m: f64) -> DateTime<Utc> {
        self.origin + Duration::milliseconds((m * 60_000.0).round() as i64)
    }
}

/// Whether a visit placed with `technician` at `start` moves it from where it is.
fn is_moved(
    visit: &PlanVisit,
    technician: Option<TechnicianId>,
    start: Option<DateTime<Utc>>,
) -> bool {
    match visit.current {
        None => false,
        Some(c) if Some(c) != technician => true,
        Some(_) => match (visit.current_start, start) {
            (Some(a), Some(b)) => (a - b).num_minutes().abs() > MOVE_TOLERANCE_MINUTES,
            _ => false,
        },
    }
}

/// Reads a solution of [`to_problem`]'s problem back as a plan.
pub fn to_plan(facts: &DayFacts, mapped: &Mapped, solution: &Solution) -> DayPlan {
    let routes = solution_routes(mapped, solution);
    let inserter = routing::Inserter::new(&mapped.problem, &mapped.matrix).ok();
    let mut plan = DayPlan {
        routes: Vec::new(),
        unplanned: Vec::new(),
        travel_km: 0.0,
        travel_minutes: 0.0,
        kpis: evaluate(facts, mapped, &routes),
        before: evaluate(facts, mapped, &current_routes(facts, mapped)),
        greedy: evaluate(facts, mapped, &greedy_routes(facts, mapped)),
        moved: 0,
    };
    for route in &solution.routes {
        let tech = &facts.technicians[route.technician];
        let vehicle = &mapped.problem.technicians[route.technician];
        let mut here = vehicle.start;
        let mut stops = Vec::with_capacity(route.visits.len());
        for v in &route.visits {
            let job = &mapped.problem.jobs[v.job];
            let (visit, job_id) = mapped.jobs[v.job];
            let start = mapped.at(v.start);
            let moved = visit
                .is_some_and(|k| is_moved(&facts.visits[k], Some(tech.technician.id), Some(start)));
            plan.moved += usize::from(moved);
            let why = match (visit, &inserter) {
                (Some(k), Some(inserter)) => Some(why(
                    facts,
                    mapped,
                    inserter,
                    &routes,
                    v.job,
                    k,
                    route.technician,
                )),
                _ => None,
            };
            stops.push(PlannedStop {
                appointment_id: visit.map(|k| facts.visits[k].appointment_id),
                job_id,
                arrival: mapped.at(v.arrival),
                start,
                end: mapped.at(v.start + job.duration),
                slack_minutes: v.slack,
                leg_km: mapped.matrix.distance(here, job.location),
                leg_minutes: mapped.matrix.time(here, job.location),
                moved,
                why,
            });
            here = job.location;
        }
        plan.travel_km += route.distance;
        plan.travel_minutes += route.travel_time;
        plan.routes.push(PlannedRoute {
            technician_id: tech.technician.id,
            stops,
            break_start: route.break_taken.map(|(_, s)| mapped.at(s)),
            travel_km: route.distance,
            travel_minutes: route.travel_time,
        });
    }
    let out = |k: usize, reasons: Vec<String>, plan: &mut DayPlan| {
        plan.moved += usize::from(is_moved(&facts.visits[k], None, None));
        plan.unplanned.push(UnplannedVisit {
            appointment_id: facts.visits[k].appointment_id,
            reasons,
            ineligible: mapped.refusals[k].clone(),
        });
    };
    for u in &solution.unassigned {
        if let (Some(k), _) = mapped.jobs[u.job] {
            let mut reasons: Vec<String> = u
                .reasons
                .iter()
                .map(|b| blocker_code(*b).to_owned())
                .collect();
            reasons.dedup();
            out(k, reasons, &mut plan);
        }
    }
    for (k, reasons) in &mapped.left_out {
        out(*k, reasons.clone(), &mut plan);
    }
    plan
}

/// Why visit `k` (problem job `job`) went to technician `t` in `routes`.
fn why(
    facts: &DayFacts,
    mapped: &Mapped,
    inserter: &routing::Inserter,
    routes: &[Vec<usize>],
    job: usize,
    k: usize,
    t: usize,
) -> Why {
    let options = inserter.options(routes, job).unwrap_or_default();
    let own = options.iter().find(|o| o.technician == t);
    let next = options.iter().find(|o| o.technician != t);
    let pinned = facts.visits[k].pinned.is_some();
    Why {
        eligible_technicians: if pinned {
            1
        } else {
            facts.technicians.len() - mapped.refusals[k].len()
        },
        next_best: next.map(|n| {
            let (c, d, m) = own.map_or((0.0, 0.0, 0.0), |o| {
                (o.extra_cost, o.extra_distance, o.extra_travel_time)
            });
            Alternative {
                technician_id: facts.technicians[n.technician].technician.id,
                extra_cost: n.extra_cost - c,
                extra_km: n.extra_distance - d,
                extra_minutes: n.extra_travel_time - m,
            }
        }),
    }
}

/// A solution's routes as job sequences, one per technician.
pub fn solution_routes(mapped: &Mapped, solution: &Solution) -> Vec<Vec<usize>> {
    let mut routes = vec![Vec::new(); mapped.problem.technicians.len()];
    for r in &solution.routes {
        routes[r.technician] = r.visits.iter().map(|v| v.job).collect();
    }
    routes
}

/// The day as it stands: each technician's kept bookings and the visits they lead now, in the
/// order of their planned starts (or window starts).
pub fn current_routes(facts: &DayFacts, mapped: &Mapped) -> Vec<Vec<usize>> {
    let mut keyed: Vec<Vec<(f64, usize)>> = vec![Vec::new(); mapped.problem.technicians.len()];
    for (j, (visit, _)) in mapped.jobs.iter().enumerate() {
        let job = &mapped.problem.jobs[j];
        let (tech, at) = match visit {
            None => (job.locked_to, job.windows[0].start),
            Some(k) => {
                let v = &facts.visits[*k];
                let tech = v
                    .current
                    .and_then(|c| facts.technicians.iter().position(|t| t.technician.id == c));
                let at = v
                    .current_start
                    .map_or(job.windows[0].start, |s| minutes(mapped.origin, s));
                (tech, at)
            }
        };
        if let Some(t) = tech {
            keyed[t].push((at, j));
        }
    }
    keyed
        .into_iter()
        .map(|mut r| {
            r.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            r.into_iter().map(|(_, j)| j).collect()
        })
        .collect()
}

/// A dispatcher's greedy day: kept bookings stay; each visit, most urgent first (priority,
/// then SLA deadline, then window), goes to the best-ranked technician (as
/// [`eligibility::rank`] scores them, with what the greedy day has given them so far) who can
/// still fit it, at the cheapest place in their route.
pub fn greedy_routes(facts: &DayFacts, mapped: &Mapped) -> Vec<Vec<usize>> {
    let mut routes: Vec<Vec<usize>> = vec![Vec::new(); mapped.problem.technicians.len()];
    for (j, (visit, _)) in mapped.jobs.iter().enumerate() {
        if visit.is_none()
            && let Some(t) = mapped.problem.jobs[j].locked_to
        {
            routes[t].push(j);
        }
    }
    for r in &mut routes {
        r.sort_by(|a, b| {
            let (wa, wb) = (
                &mapped.problem.jobs[*a].windows[0],
                &mapped.problem.jobs[*b].windows[0],
            );
            wa.start.total_cmp(&wb.start)
        });
    }
    let Ok(inserter) = routing::Inserter::new(&mapped.problem, &mapped.matrix) else {
        return routes;
    };
    let mut order: Vec<usize> = (0..mapped.jobs.len())
        .filter(|&j| mapped.jobs[j].0.is_some())
        .collect();
    let key = |j: usize| {
        let v = &facts.visits[mapped.jobs[j].0.unwrap_or_default()];
        (
            std::cmp::Reverse(weight(v, DateTime::<Utc>::MIN_UTC)),
            v.sla_deadline.unwrap_or(DateTime::<Utc>::MAX_UTC),
            v.needs.window.start(),
            v.appointment_id,
        )
    };
    order.sort_by_key(|&j| key(j));
    let mut techs = facts.technicians.clone();
    for j in order {
        let Some(k) = mapped.jobs[j].0 else { continue };
        let visit = &facts.visits[k];
        let options = inserter.options(&routes, j).unwrap_or_default();
        let ranked = eligibility::rank(&visit.needs, &techs, &visit.org(&facts.org));
        let Some((t, option)) = ranked.iter().find_map(|c| {
            let t = facts
                .technicians
                .iter()
                .position(|t| t.technician.id == c.technician_id)?;
            options.iter().find(|o| o.technician == t).map(|o| (t, o))
        }) else {
            continue;
        };
        routes[t].insert(option.position, j);
        let start = mapped.at(option.start);
        if let Ok(window) =
            TimeWindow::parse(start, start + Duration::minutes(i64::from(visit.minutes)))
        {
            techs[t].appointments.push(crate::schedule::Appointment {
                job_id: visit
                    .needs
                    .job_id
                    .unwrap_or_else(|| JobId::from_uuid(visit.appointment_id.as_uuid())),
                appointment_id: Some(visit.appointment_id),
                window,
                location: visit.needs.location,
            });
        }
    }
    routes
}

/// One technician's day driven as given, late where it must be.
#[derive(Default)]
struct Driven {
    km: f64,
    minutes: f64,
    busy: f64,
    late: usize,
    lateness: f64,
    scheduled: usize,
    sla_missed: usize,
    end: f64,
}

/// Drives technician `t`'s `route`, with the break (if any) before the travel to the visit at
/// this position (or at the end), at the earliest it opens.
fn drive(
    facts: &DayFacts,
    mapped: &Mapped,
    t: usize,
    route: &[usize],
    pause: Option<(usize, Break)>,
) -> Driven {
    let vehicle = &mapped.problem.technicians[t];
    let mut d = Driven::default();
    let mut now = vehicle.shift.start;
    let mut here = vehicle.start;
    let take = |now: &mut f64, i: usize| {
        if let Some((p, b)) = pause
            && p == i
        {
            *now = now.max(b.window.start) + b.duration;
        }
    };
    for (i, &j) in route.iter().enumerate() {
        take(&mut now, i);
        let job = &mapped.problem.jobs[j];
        let leg = mapped.matrix.time(here, job.location);
        d.km += mapped.matrix.distance(here, job.location);
        d.minutes += leg;
        d.busy += leg + job.duration;
        let window = job.windows[0];
        let start = (now + leg).max(window.start);
        if start > window.end + 1e-6 {
            d.late += 1;
            d.lateness += start - window.end;
        }
        if let Some(k) = mapped.jobs[j].0 {
            d.scheduled += 1;
            if facts.visits[k]
                .sla_deadline
                .is_some_and(|deadline| mapped.at(start) > deadline)
            {
                d.sla_missed += 1;
            }
        }
        now = start + job.duration;
        here = job.location;
    }
    take(&mut now, route.len());
    let leg = mapped.matrix.time(here, vehicle.end);
    d.km += mapped.matrix.distance(here, vehicle.end);
    d.minutes += leg;
    d.busy += leg;
    d.end = now + leg;
    d
}

/// The figures of `routes` (job sequences, one per technician): each technician leaves at the
/// start of the shift, starts each visit as early as its window allows (late if it must),
/// takes the break where it makes the day least late, and comes home.
pub fn evaluate(facts: &DayFacts, mapped: &Mapped, routes: &[Vec<usize>]) -> Kpis {
    let mut kpis = Kpis {
        visits: facts.visits.len(),
        ..Kpis::default()
    };
    let (mut busy, mut available) = (0.0, 0.0);
    for (t, route) in routes.iter().enumerate() {
        let Some(vehicle) = mapped.problem.technicians.get(t) else {
            continue;
        };
        if route.is_empty() {
            continue;
        }
        // Where the break goes: the place that makes the day least late, then shortest.
        let places = if vehicle.break_.is_some() {
            route.len() + 1
        } else {
            1
        };
        let day = (0..places)
            .map(|p| drive(facts, mapped, t, route, vehicle.break_.map(|b| (p, b))))
            .min_by(|a, b| {
                a.lateness
                    .total_cmp(&b.lateness)
                    .then(a.end.total_cmp(&b.end))
            })
            .unwrap_or_default();
        kpis.travel_km += day.km;
        kpis.travel_minutes += day.minutes;
        kpis.late_visits += day.late;
        kpis.lateness_minutes += day.lateness;
        kpis.scheduled += day.scheduled;
        kpis.sla_missed += day.sla_missed;
        kpis.overtime_minutes += (day.end - vehicle.shift.end).max(0.0);
        busy += day.busy;
        available +=
            vehicle.shift.end - vehicle.shift.start - vehicle.break_.map_or(0.0, |b| b.duration);
    }
    let day_end = mapped.origin + Duration::days(1);
    kpis.sla_missed += facts
        .visits
        .iter()
        .enumerate()
        .filter(|(k, v)| {
            v.sla_deadline.is_some_and(|d| d <= day_end)
                && !routes
                    .iter()
                    .flatten()
                    .any(|&j| mapped.jobs[j].0 == Some(*k))
        })
        .count();
    kpis.utilization = if available > 0.0 {
        busy / available
    } else {
        0.0
    };
    kpis
}

#[cfg(test)]
mod tests;
