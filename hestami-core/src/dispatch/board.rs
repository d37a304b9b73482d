//! The dispatch board and booking slots: pure functions over facts the store gathers.
//!
//! - [`SchedulingSettings`]: an organization's travel model (detour factor, average speed) and
//!   its customer arrival windows (e.g. 08–10, 10–12…), with defaults.
//! - [`TravelModel`]: how far and how long between two places. The shipped model is the great
//!   circle times a detour factor at an average speed ([`TravelSettings`], through the routing
//!   engine's [`Haversine`] matrix); a road-network table service would implement the same trait
//!   without touching the rules here.
//! - [`plan_day`]: one technician's day in order, with the travel leg before each stop, the
//!   projected arrival and the `late`, `at_risk` and `sla_breached` flags.
//! - [`suggest_slots`]: the best (technician, arrival window) options for a job over the next
//!   days, each with why it is offered, and for every technician never offered, why not.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::routing::{Haversine, TravelMatrix};
use crate::Invalid;
use crate::customer::GeoPoint;
use crate::eligibility::{self, JobNeeds, OrgFacts, TechnicianFacts};
use crate::ids::{AppointmentId, JobId, TechnicianId};
use crate::job::{JobStatus, TimeWindow};
use crate::schedule::local_to_utc;

/// How travel is estimated: the great-circle distance times `detour_factor`, at `speed_kmh`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TravelSettings {
    /// Road distance over great-circle distance, 1 to 3 (1.3 by default).
    pub detour_factor: f64,
    /// Average speed door to door, 5 to 130 km/h (40 by default).
    pub speed_kmh: f64,
}

impl Default for TravelSettings {
    fn default() -> Self {
        Self {
            detour_factor: 1.3,
            speed_kmh: 40.0,
        }
    }
}

/// A customer arrival window, local time of day, `[start, end)` in minutes after midnight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArrivalWindow {
    /// Minutes after local midnight it opens.
    pub start_minute: u16,
    /// Minutes after local midnight it closes (at most 1440).
    pub end_minute: u16,
}

/// The most arrival windows an organization may offer a day.
pub const MAX_ARRIVAL_WINDOWS: usize = 24;

/// An organization's scheduling settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchedulingSettings {
    /// The travel model.
    pub travel: TravelSettings,
    /// The windows offered to customers, in order, not overlapping.
    pub arrival_windows: Vec<ArrivalWindow>,
}

impl Default for SchedulingSettings {
    /// 1.3 detour at 40 km/h; two-hour windows 08–10, 10–12, 12–14, 14–16.
    fn default() -> Self {
        Self {
            travel: TravelSettings::default(),
            arrival_windows: (0..4)
                .map(|k| ArrivalWindow {
                    start_minute: 480 + 120 * k,
                    end_minute: 600 + 120 * k,
                })
                .collect(),
        }
    }
}

impl SchedulingSettings {
    /// Checks every field; the problems by JSON path.
    pub fn parse(
        travel: TravelSettings,
        mut arrival_windows: Vec<ArrivalWindow>,
    ) -> Result<Self, Vec<(String, Invalid)>> {
        let mut problems = Vec::new();
        if !(travel.detour_factor.is_finite() && (1.0..=3.0).contains(&travel.detour_factor)) {
            problems.push((
                "travel.detourFactor".to_owned(),
                Invalid::new("out_of_range", "the detour factor is between 1 and 3"),
            ));
        }
        if !(travel.speed_kmh.is_finite() && (5.0..=130.0).contains(&travel.speed_kmh)) {
            problems.push((
                "travel.speedKmh".to_owned(),
                Invalid::new(
                    "out_of_range",
                    "the average speed is between 5 and 130 km/h",
                ),
            ));
        }
        if arrival_windows.is_empty() || arrival_windows.len() > MAX_ARRIVAL_WINDOWS {
            problems.push((
                "arrivalWindows".to_owned(),
                Invalid::new(
                    "out_of_range",
                    format!("give 1 to {MAX_ARRIVAL_WINDOWS} arrival windows"),
                ),
            ));
        }
        for (k, w) in arrival_windows.iter().enumerate() {
            if w.start_minute >= w.end_minute || w.end_minute > 1_440 {
                problems.push((
                    format!("arrivalWindows[{k}]"),
                    Invalid::new(
                        "invalid_window",
                        "a window opens before it closes, within the day (minutes 0 to 1440)",
                    ),
                ));
            }
        }
        arrival_windows.sort();
        if arrival_windows
            .windows(2)
            .any(|p| p[1].start_minute < p[0].end_minute)
        {
            problems.push((
                "arrivalWindows".to_owned(),
                Invalid::new("overlapping_windows", "arrival windows may not overlap"),
            ));
        }
        if problems.is_empty() {
            Ok(Self {
                travel,
                arrival_windows,
            })
        } else {
            Err(problems)
        }
    }

    /// The arrival windows of a local date in `tz`, as UTC windows (a window that a daylight
    /// saving change makes empty is left out).
    pub fn slots_on(&self, date: NaiveDate, tz: chrono_tz::Tz) -> Vec<TimeWindow> {
        let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
        self.arrival_windows
            .iter()
            .filter_map(|w| {
                let start =
                    local_to_utc(tz, midnight + Duration::minutes(i64::from(w.start_minute)));
                let end = local_to_utc(tz, midnight + Duration::minutes(i64::from(w.end_minute)));
                TimeWindow::parse(start, end).ok()
            })
            .collect()
    }
}

/// A leg of travel.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Leg {
    /// Where it starts: `home_base` or `previous_stop`.
    pub from: LegOrigin,
    /// Road kilometres, estimated.
    pub km: f64,
    /// Minutes, estimated (rounded up).
    pub minutes: u32,
}

/// Where a leg starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegOrigin {
    /// The technician's home base.
    HomeBase,
    /// The stop before, that day.
    PreviousStop,
}

/// How far and how long between places; implemented by [`TravelSettings`].
pub trait TravelModel {
    /// A matrix over `points` (latitude, longitude), distances in metres, times in minutes.
    fn matrix(&self, points: Vec<(f64, f64)>) -> Box<dyn TravelMatrix>;
}

impl TravelModel for TravelSettings {
    fn matrix(&self, points: Vec<(f64, f64)>) -> Box<dyn TravelMatrix> {
        // Metres per minute.
        let speed = self.speed_kmh * 1_000.0 / 60.0;
        Box::new(Haversine::new(points, self.detour_factor, speed))
    }
}

/// The leg from `from` to `to` under `model`.
pub fn leg(model: &dyn TravelModel, origin: LegOrigin, from: GeoPoint, to: GeoPoint) -> Leg {
    let m = model.matrix(vec![(from.lat(), from.lon()), (to.lat(), to.lon())]);
    let km = (m.distance(0, 1) / 1_000.0 * 10.0).round() / 10.0;
    let minutes = m.time(0, 1).ceil();
    Leg {
        from: origin,
        km,
        minutes: if minutes.is_finite() && minutes >= 0.0 {
            minutes as u32
        } else {
            0
        },
    }
}

/// A visit on a technician's day, as the board gathers it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Visit {
    /// The appointment (v2), or `None` for a v1 job's own window and technician.
    pub appointment_id: Option<AppointmentId>,
    /// The job.
    pub job_id: JobId,
    /// The visit's state: an appointment state (`scheduled` … `done`); for a v1 job, the
    /// appointment state its job state stands for ([`visit_status_of_v1`]).
    pub status: crate::appointment::AppointmentStatus,
    /// While on hold: the state it was held in.
    #[serde(default)]
    pub held_from: Option<crate::appointment::AppointmentStatus>,
    /// When the crew is expected.
    pub window: TimeWindow,
    /// When the crew is planned to start, inside the window, if planned.
    #[serde(default)]
    pub planned_start: Option<DateTime<Utc>>,
    /// Minutes on site.
    pub estimated_minutes: u32,
    /// Where.
    pub location: Option<GeoPoint>,
    /// The job's state.
    pub job_status: JobStatus,
    /// The job's SLA deadline.
    pub sla_deadline: DateTime<Utc>,
    /// When a breach of the SLA was recorded, if it was.
    pub sla_breached_at: Option<DateTime<Utc>>,
    /// Whether a crew has reached the job already (any visit started).
    #[serde(default)]
    pub job_reached: bool,
}

/// The appointment state a v1 job's state stands for, for showing it beside v2 visits.
pub fn visit_status_of_v1(
    status: JobStatus,
    held_from: Option<JobStatus>,
) -> crate::appointment::AppointmentStatus {
    use crate::appointment::AppointmentStatus as A;
    match status {
        JobStatus::Requested | JobStatus::Scheduled => A::Scheduled,
        JobStatus::Dispatched => A::Dispatched,
        JobStatus::EnRoute => A::EnRoute,
        JobStatus::OnSite | JobStatus::InProgress => A::OnSite,
        JobStatus::Completed | JobStatus::Invoiced | JobStatus::Paid | JobStatus::Closed => A::Done,
        JobStatus::Cancelled => A::Cancelled,
        JobStatus::OnHold => match held_from {
            Some(h) if h != JobStatus::OnHold => visit_status_of_v1(h, None),
            _ => A::Scheduled,
        },
    }
}

/// Flags on a stop of the board.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Flags {
    /// The window has passed and the crew is not on site (nor done).
    pub late: bool,
    /// Projected to arrive after the window closes, or (before the job was first reached)
    /// after its SLA deadline.
    pub at_risk: bool,
    /// The job's SLA deadline passed before anyone reached it (recorded, or past now).
    pub sla_breached: bool,
}

/// A stop of a technician's day.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stop {
    /// The visit.
    pub visit: Visit,
    /// The travel before it (`None` when either end has no coordinates).
    pub leg: Option<Leg>,
    /// When the crew is projected to arrive (`None` once on site, done or cancelled).
    pub projected_arrival: Option<DateTime<Utc>>,
    /// Its flags.
    pub flags: Flags,
}

/// The flags of a visit nobody is projected to (unassigned): late and SLA breach only.
pub fn flags_at(visit: &Visit, projected: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Flags {
    let open_before_site = crate::appointment::before_site(visit.status, visit.held_from);
    let job_reached = !crate::job::not_yet_reached(visit.job_status, visit.job_reached);
    let late = open_before_site && visit.window.end() <= now;
    let at_risk = open_before_site
        && projected.is_some_and(|arrival| {
            arrival > visit.window.end() || (!job_reached && arrival > visit.sla_deadline)
        });
    let sla_breached = visit.sla_breached_at.is_some()
        || (!job_reached && visit.job_status != JobStatus::Cancelled && visit.sla_deadline <= now);
    Flags {
        late,
        at_risk,
        sla_breached,
    }
}

/// One technician's day: `visits` in window order, each with the leg from the stop before (or
/// the home base), the projected arrival and flags. Projection: the crew is free from `start`
/// (their shift's start, or now if later); for each open visit it arrives at the later of the
/// free time plus the leg and the window's opening, and stays its estimated minutes. A visit on
/// site keeps the crew until its window start plus its minutes (or now, if later). A planned
/// visit is not reached before its planned start.
pub fn plan_day(
    home_base: Option<GeoPoint>,
    mut visits: Vec<Visit>,
    model: &dyn TravelModel,
    start: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<Stop> {
    use crate::appointment::AppointmentStatus as A;
    visits.sort_by_key(|v| (v.window.start(), v.window.end(), v.job_id, v.appointment_id));
    let mut free = start.max(now);
    let mut previous: Option<(LegOrigin, Option<GeoPoint>)> =
        home_base.map(|h| (LegOrigin::HomeBase, Some(h)));
    let mut stops = Vec::with_capacity(visits.len());
    for visit in visits {
        let leg = match (previous, visit.location) {
            (Some((origin, Some(from))), Some(to)) => Some(leg(model, origin, from, to)),
            _ => None,
        };
        let projected = match crate::appointment::effective_status(visit.status, visit.held_from) {
            A::Scheduled | A::Dispatched | A::EnRoute | A::OnHold => {
                let travel = Duration::minutes(i64::from(leg.map_or(0, |l| l.minutes)));
                let arrival =
                    (free + travel).max(visit.planned_start.unwrap_or(visit.window.start()));
                free = arrival + Duration::minutes(i64::from(visit.estimated_minutes));
                Some(arrival)
            }
            A::OnSite => {
                let until =
                    visit.window.start() + Duration::minutes(i64::from(visit.estimated_minutes));
                free = free.max(until).max(now);
                None
            }
            A::Done | A::Cancelled => None,
        };
        let flags = flags_at(&visit, projected, now);
        if visit.status != A::Cancelled {
            previous = Some((LegOrigin::PreviousStop, visit.location));
        }
        stops.push(Stop {
            visit,
            leg,
            projected_arrival: projected,
            flags,
        });
    }
    stops
}

/// A booking option offered by [`suggest_slots`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SlotOption {
    /// Who.
    pub technician_id: TechnicianId,
    /// The arrival window.
    pub window: TimeWindow,
    /// The extra travel to reach the job from the stop before it that day (or the home base),
    /// when both ends have coordinates.
    pub added_travel_minutes: Option<u32>,
    /// The technician's bookings that local day, before this one.
    pub load: usize,
    /// Why it is offered, for a person.
    pub reasons: Vec<String>,
}

/// A technician never offered, and the rules that failed across the windows tried.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeftOut {
    /// Who.
    pub technician_id: TechnicianId,
    /// Each failed rule's code, with the number of windows it failed in, by code.
    pub failed_rules: BTreeMap<&'static str, usize>,
}

/// What [`suggest_slots`] found.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Suggestions {
    /// The best options, best first.
    pub options: Vec<SlotOption>,
    /// Technicians eligible in no window, and why.
    pub left_out: Vec<LeftOut>,
}

/// The best `limit` (technician, window) options for `needs` (its `window` is replaced by each
/// candidate window) among `windows` (each with its organization facts: compliance depends on
/// the date), skipping windows that open before `now`. Every option passes
/// [`eligibility::evaluate`]. Ranked by the window's opening (earliest first), then the added
/// travel (least first; unknown last), then the day's load, then the technician id.
pub fn suggest_slots(
    needs: &JobNeeds,
    technicians: &[TechnicianFacts],
    windows: &[(TimeWindow, &OrgFacts)],
    model: &dyn TravelModel,
    now: DateTime<Utc>,
    limit: usize,
) -> Suggestions {
    let mut options = Vec::new();
    let mut failures: BTreeMap<TechnicianId, BTreeMap<&'static str, usize>> = BTreeMap::new();
    let mut offered: std::collections::BTreeSet<TechnicianId> = Default::default();
    for (window, org) in windows.iter().filter(|(w, _)| w.start() >= now) {
        let needs = JobNeeds {
            window: *window,
            ..needs.clone()
        };
        let tz = org.time_zone.tz();
        let day = window.start().with_timezone(&tz).date_naive();
        for tech in technicians {
            let verdict = eligibility::evaluate(&needs, tech, org);
            if !verdict.eligible {
                let codes = failures.entry(tech.technician.id).or_default();
                for f in &verdict.failed {
                    *codes.entry(f.code).or_default() += 1;
                }
                continue;
            }
            offered.insert(tech.technician.id);
            let same_day: Vec<_> = tech
                .appointments
                .iter()
                .filter(|a| a.window.start().with_timezone(&tz).date_naive() == day)
                .collect();
            let before = same_day
                .iter()
                .filter(|a| a.window.end() <= window.start())
                .max_by_key(|a| (a.window.end(), a.job_id));
            let origin = match before {
                Some(a) => a.location.map(|l| (LegOrigin::PreviousStop, l)),
                None => tech.profile.home_base.map(|h| (LegOrigin::HomeBase, h)),
            };
            let travel = match (origin, needs.location) {
                (Some((o, from)), Some(to)) => Some(leg(model, o, from, to)),
                _ => None,
            };
            let mut reasons = vec!["eligible: every rule holds".to_owned()];
            match travel {
                Some(l) => reasons.push(format!(
                    "{} min ({} km) from {}",
                    l.minutes,
                    l.km,
                    match l.from {
                        LegOrigin::HomeBase => "home base",
                        LegOrigin::PreviousStop => "the previous stop",
                    }
                )),
                None => reasons.push("travel unknown (no coordinates)".to_owned()),
            }
            reasons.push(format!(
                "{} booking{} that day",
                same_day.len(),
                if same_day.len() == 1 { "" } else { "s" }
            ));
            options.push(SlotOption {
                technician_id: tech.technician.id,
                window: *window,
                added_travel_minutes: travel.map(|l| l.minutes),
                load: same_day.len(),
                reasons,
            });
        }
    }
    options.sort_by_key(|o| {
        (
            o.window.start(),
            o.added_travel_minutes.unwrap_or(u32::MAX),
            o.load,
            o.technician_id,
        )
    });
    options.truncate(limit);
    let left_out = failures
        .into_iter()
        .filter(|(id, _)| !offered.contains(id))
        .map(|(technician_id, failed_rules)| LeftOut {
            technician_id,
            failed_rules,
        })
        .collect();
    Suggestions { options, left_out }
}

#[cfg(test)]
mod tests;
