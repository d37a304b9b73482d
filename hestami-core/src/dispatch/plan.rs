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
}

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
}

fn minutes(origin: DateTime<Utc>, t: DateTime<Utc>) -> f64 {
    (t - origin).num_seconds() as f64 / 60.0
}

fn weight(priority: Priority) -> u32 {
    match priority {
        Priority::Emergency => 100,
        Priority::Urgent => 10,
        Priority::Routine => 1,
    }
}

/// The weight of a booking that stays: never the one left out.
const KEPT: u32 = 100_000;

/// Maps a day to a routing problem (see the module's table).
pub fn to_problem(facts: &DayFacts) -> Mapped {
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
        vehicle.max_jobs = Some(usize::from(t.profile.daily_capacity.get()));
        technicians.push(vehicle);
    }
    // Bookings that stay but cannot be placed in their technician's day (outside the shift, or
    // begun before midnight) block their window instead: a visit that could meet it is
    // forbidden to that technician.
    let mut blocked: Vec<(usize, TimeWindow)> = Vec::new();
    let mut kept: Vec<(usize, &crate::schedule::Appointment)> = Vec::new();
    for (k, t) in facts.technicians.iter().enumerate() {
        let shift = technicians[k].shift;
        for booking in &t.appointments {
            if booking.window.end() <= origin || booking.window.start() >= day_end {
                continue;
            }
            let (s, e) = (
                minutes(origin, booking.window.start()),
                minutes(origin, booking.window.end()),
            );
            if s >= shift.start && e <= shift.end && shift.start < shift.end {
                kept.push((k, booking));
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
            let mut codes = untimed_refusals(visit, t, &facts.org);
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
        job.priority = weight(visit.priority);
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
    for (k, booking) in kept {
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

/// Reads a solution of [`to_problem`]'s problem back as a plan.
pub fn to_plan(facts: &DayFacts, mapped: &Mapped, solution: &Solution) -> DayPlan {
    let at = |m: f64| mapped.origin + Duration::milliseconds((m * 60_000.0).round() as i64);
    let mut plan = DayPlan {
        routes: Vec::new(),
        unplanned: Vec::new(),
        travel_km: 0.0,
        travel_minutes: 0.0,
    };
    for route in &solution.routes {
        let tech = &facts.technicians[route.technician];
        let vehicle = &mapped.problem.technicians[route.technician];
        let mut here = vehicle.start;
        let mut stops = Vec::with_capacity(route.visits.len());
        for v in &route.visits {
            let job = &mapped.problem.jobs[v.job];
            let (visit, job_id) = mapped.jobs[v.job];
            stops.push(PlannedStop {
                appointment_id: visit.map(|k| facts.visits[k].appointment_id),
                job_id,
                arrival: at(v.arrival),
                start: at(v.start),
                end: at(v.start + job.duration),
                slack_minutes: v.slack,
                leg_km: mapped.matrix.distance(here, job.location),
                leg_minutes: mapped.matrix.time(here, job.location),
            });
            here = job.location;
        }
        plan.travel_km += route.distance;
        plan.travel_minutes += route.travel_time;
        plan.routes.push(PlannedRoute {
            technician_id: tech.technician.id,
            stops,
            break_start: route.break_taken.map(|(_, s)| at(s)),
            travel_km: route.distance,
            travel_minutes: route.travel_time,
        });
    }
    for u in &solution.unassigned {
        if let (Some(k), _) = mapped.jobs[u.job] {
            let mut reasons: Vec<String> = u
                .reasons
                .iter()
                .map(|b| blocker_code(*b).to_owned())
                .collect();
            reasons.dedup();
            plan.unplanned.push(UnplannedVisit {
                appointment_id: facts.visits[k].appointment_id,
                reasons,
                ineligible: mapped.refusals[k].clone(),
            });
        }
    }
    for (k, reasons) in &mapped.left_out {
        plan.unplanned.push(UnplannedVisit {
            appointment_id: facts.visits[*k].appointment_id,
            reasons: reasons.clone(),
            ineligible: mapped.refusals[*k].clone(),
        });
    }
    plan
}

#[cfg(test)]
mod tests;
