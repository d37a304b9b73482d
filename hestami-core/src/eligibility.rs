//! Eligibility: may technician X take job J in window W, and who is the best choice.
//!
//! [`evaluate`] applies the full rule set and returns every rule that fails, each with a stable
//! code, a sentence and the data that failed (an expiry date, the overlapping appointment), so a
//! dispatcher sees "certification expired AND outside the service area" at once. [`rank`] runs it
//! for every active technician and orders the eligible ones by skill level, distance and load,
//! saying why.
//!
//! The caller gathers the facts (the store loads them); the rules here are pure and do not depend
//! on the order the facts are listed in. The tenant boundary ("same organization") is enforced
//! where the facts are loaded: every technician passed here belongs to the job's organization.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use crate::area::{ServiceArea, covers, haversine_km, outside_organization_areas};
use crate::compliance::{ComplianceVerdict, Jurisdiction};
use crate::customer::{GeoPoint, PostalCode};
use crate::ids::{AppointmentId, JobId, TechnicianId};
use crate::job::TimeWindow;
use crate::org::TimeZone;
use crate::schedule::{Appointment, shift_intervals};
use crate::text::{Name, TradeCode};
use crate::workforce::{SkillLevel, Technician, WorkProfile, same_name};

/// What a job needs of the technician who takes it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobNeeds {
    /// The job, when it exists already: its own booking does not count against it (for a v1
    /// job; see `appointment_id` for a v2 visit).
    pub job_id: Option<JobId>,
    /// The appointment (v2 visit) being judged, when there is one: then only that appointment
    /// is left out of the technician's bookings, and the job's other visits count like any.
    pub appointment_id: Option<AppointmentId>,
    /// The trade.
    pub trade: TradeCode,
    /// The least skill level in the trade (1 unless the job says otherwise).
    pub min_skill_level: SkillLevel,
    /// Certifications the technician must hold, valid on the appointment's dates (by name,
    /// ignoring case).
    pub required_certifications: Vec<Name>,
    /// The property's coordinates, when known.
    pub location: Option<GeoPoint>,
    /// The property's postal code.
    pub postal_code: PostalCode,
    /// The property's jurisdiction.
    pub jurisdiction: Jurisdiction,
    /// The appointment window.
    pub window: TimeWindow,
}

/// Everything eligibility needs to know about one technician.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TechnicianFacts {
    /// The technician (active flag, trades; a trade listed here without a [`crate::workforce::Skill`]
    /// counts as level 1).
    pub technician: Technician,
    /// Skills, certifications, shifts, time off, areas, home base and capacity.
    pub profile: WorkProfile,
    /// The technician's booked jobs around the window (at least that local day).
    pub appointments: Vec<Appointment>,
}

impl TechnicianFacts {
    /// The technician's level in `trade`: the highest skill for it, or level 1 when the trade
    /// is only listed on the technician; `None` when the technician does not practise it.
    pub fn skill_level(&self, trade: &TradeCode) -> Option<SkillLevel> {
        let from_skills = self
            .profile
            .skills
            .iter()
            .filter(|s| &s.trade == trade)
            .map(|s| s.level)
            .max();
        from_skills.or_else(|| {
            self.technician
                .trades
                .contains(trade)
                .then_some(SkillLevel::MIN)
        })
    }

    /// The bookings other than the one judged (`job`'s v1 booking, or the appointment
    /// `needs.appointment_id`), once per booking, by start.
    fn other_appointments(&self, needs: &JobNeeds) -> Vec<&Appointment> {
        let judged = |a: &Appointment| match needs.appointment_id {
            Some(id) => a.appointment_id == Some(id),
            None => Some(a.job_id) == needs.job_id,
        };
        let mut by_job: BTreeMap<(JobId, Option<AppointmentId>), &Appointment> = BTreeMap::new();
        for a in self.appointments.iter().filter(|a| !judged(a)) {
            by_job
                .entry((a.job_id, a.appointment_id))
                .and_modify(|kept| {
                    if (a.window.start(), a.window.end()) < (kept.window.start(), kept.window.end())
                    {
                        *kept = a;
                    }
                })
                .or_insert(a);
        }
        let mut out: Vec<&Appointment> = by_job.into_values().collect();
        out.sort_by_key(|a| (a.window.start(), a.job_id));
        out
    }
}

/// What eligibility needs to know about the organization.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrgFacts {
    /// Its service areas. None means it has not said where it works, and so covers nothing.
    pub service_areas: Vec<ServiceArea>,
    /// Its compliance for the job's trade and jurisdiction on the window's date
    /// ([`crate::compliance::check`]); its required certifications apply to the technician.
    pub compliance: ComplianceVerdict,
    /// Its time zone: shifts and "the day" are local to it.
    pub time_zone: TimeZone,
}

/// One failed eligibility rule.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedRule {
    /// A stable code: `TECHNICIAN_INACTIVE`, `TRADE_MISSING`, `SKILL_LEVEL_TOO_LOW`,
    /// `CERTIFICATION_MISSING`, `CERTIFICATION_EXPIRED`, `OUTSIDE_ORGANIZATION_AREA`,
    /// `OUTSIDE_TECHNICIAN_AREA`, `OUTSIDE_SHIFT`, `TIME_OFF_OVERLAP`, `APPOINTMENT_OVERLAP`,
    /// `DAILY_CAPACITY_REACHED` or `ORGANIZATION_NOT_COMPLIANT`.
    pub code: &'static str,
    /// A sentence for the dispatcher.
    pub message: String,
    /// What failed.
    pub data: Value,
}

/// The answer for one technician: eligible, or every rule that failed (in the order of the
/// codes listed on [`FailedRule::code`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    /// Whether no rule failed.
    pub eligible: bool,
    /// The rules that failed.
    pub failed: Vec<FailedRule>,
}

fn fail(code: &'static str, message: String, data: Value) -> FailedRule {
    FailedRule {
        code,
        message,
        data,
    }
}

/// The local dates a window touches: that of its start and that of its last instant.
fn local_dates(window: &TimeWindow, tz: &TimeZone) -> (NaiveDate, NaiveDate) {
    let tz = tz.tz();
    let first = window.start().with_timezone(&tz).date_naive();
    let last = (window.end() - Duration::nanoseconds(1))
        .with_timezone(&tz)
        .date_naive();
    (first, last)
}

fn overlaps(a: (DateTime<Utc>, DateTime<Utc>), b: (DateTime<Utc>, DateTime<Utc>)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// Every rule technician `tech` fails for `job`, given the organization's facts.
pub fn evaluate(job: &JobNeeds, tech: &TechnicianFacts, org: &OrgFacts) -> Verdict {
    let name = &tech.technician.name;
    let trade = &job.trade;
    let window = (job.window.start(), job.window.end());
    let (first_day, last_day) = local_dates(&job.window, &org.time_zone);
    let mut failed = Vec::new();

    if !tech.technician.active {
        failed.push(fail(
            "TECHNICIAN_INACTIVE",
            format!("{name} is deactivated"),
            json!({}),
        ));
    }

    match tech.skill_level(trade) {
        None => failed.push(fail(
            "TRADE_MISSING",
            format!("{name} does not practise {trade}"),
            json!({ "trade": trade }),
        )),
        Some(level) if level < job.min_skill_level => failed.push(fail(
            "SKILL_LEVEL_TOO_LOW",
            format!(
                "{name} is level {} in {trade}; the job needs level {}",
                level.get(),
                job.min_skill_level.get()
            ),
            json!({ "trade": trade, "level": level, "required": job.min_skill_level }),
        )),
        Some(_) => {}
    }

    let mut needed: Vec<&Name> = Vec::new();
    for n in job
        .required_certifications
        .iter()
        .chain(&org.compliance.required_certifications)
    {
        if !needed.iter().any(|m| same_name(m, n)) {
            needed.push(n);
        }
    }
    needed.sort_by_key(|n| n.as_str().to_lowercase());
    for cert_name in needed {
        let held: Vec<_> = tech
            .profile
            .certifications
            .iter()
            .filter(|c| c.is_named(cert_name))
            .collect();
        if held.is_empty() {
            failed.push(fail(
                "CERTIFICATION_MISSING",
                format!("{name} does not hold {cert_name}"),
                json!({ "name": cert_name }),
            ));
        } else if !held
            .iter()
            .any(|c| c.valid_on(first_day) && c.valid_on(last_day))
        {
            // Invariant: a certification without an expiry is valid on every date, so every
            // one held here has an expiry date.
            let latest = held.iter().filter_map(|c| c.expires_on).max();
            failed.push(fail(
                "CERTIFICATION_EXPIRED",
                match latest {
                    Some(d) => format!("{name}'s {cert_name} expired on {d}"),
                    None => format!("{name}'s {cert_name} is not valid on {first_day}"),
                },
                json!({ "name": cert_name, "expiresOn": latest, "on": last_day }),
            ));
        }
    }

    let covered = |areas: &[ServiceArea]| {
        areas
            .iter()
            .any(|a| covers(a, job.location, &job.postal_code, trade))
    };
    let place = json!({ "postalCode": job.postal_code, "location": job.location, "trade": trade });
    if let Some(message) =
        outside_organization_areas(&org.service_areas, job.location, &job.postal_code, trade)
    {
        failed.push(fail("OUTSIDE_ORGANIZATION_AREA", message, place.clone()));
    }
    if !tech.profile.service_areas.is_empty() && !covered(&tech.profile.service_areas) {
        failed.push(fail(
            "OUTSIDE_TECHNICIAN_AREA",
            format!(
                "the property ({}) is outside {name}'s service areas for {trade}",
                job.postal_code.as_str()
            ),
            place,
        ));
    }

    let shifts = shift_intervals(&tech.profile.shifts, org.time_zone.tz(), window.0, window.1);
    if !shifts.iter().any(|&(s, e)| s <= window.0 && window.1 <= e) {
        failed.push(fail(
            "OUTSIDE_SHIFT",
            format!("the window is not inside one of {name}'s shifts"),
            json!({
                "windowStart": window.0,
                "windowEnd": window.1,
                "shifts": shifts
                    .iter()
                    .map(|(s, e)| json!({ "start": s, "end": e }))
                    .collect::<Vec<_>>(),
            }),
        ));
    }

    let mut off: Vec<_> = tech
        .profile
        .time_off
        .iter()
        .filter(|t| overlaps((t.start(), t.end()), window))
        .collect();
    off.sort_by_key(|t| (t.start(), t.id()));
    for t in off {
        failed.push(fail(
            "TIME_OFF_OVERLAP",
            format!("{name} is off from {} to {}", t.start(), t.end()),
            json!({ "timeOffId": t.id(), "start": t.start(), "end": t.end(), "reason": t.reason() }),
        ));
    }

    let others = tech.other_appointments(job);
    for a in others
        .iter()
        .filter(|a| overlaps((a.window.start(), a.window.end()), window))
    {
        failed.push(fail(
            "APPOINTMENT_OVERLAP",
            format!(
                "{name} is booked on job {} from {} to {}",
                a.job_id,
                a.window.start(),
                a.window.end()
            ),
            json!({ "jobId": a.job_id, "start": a.window.start(), "end": a.window.end() }),
        ));
    }

    let capacity = tech.profile.daily_capacity.get();
    let that_day = same_day_count(&others, first_day, &org.time_zone);
    if that_day >= usize::from(capacity) {
        failed.push(fail(
            "DAILY_CAPACITY_REACHED",
            format!(
                "{name} already has {that_day} job{} on {first_day} (capacity {capacity})",
                if that_day == 1 { "" } else { "s" }
            ),
            json!({ "date": first_day, "jobs": that_day, "capacity": capacity }),
        ));
    }

    if !org.compliance.compliant {
        let codes: Vec<_> = org.compliance.reasons.iter().map(|r| r.code).collect();
        failed.push(fail(
            "ORGANIZATION_NOT_COMPLIANT",
            format!(
                "the organization is not compliant for {trade} in {}: {}",
                job.jurisdiction,
                codes.join(", ")
            ),
            json!({ "reasons": org.compliance.reasons }),
        ));
    }

    Verdict {
        eligible: failed.is_empty(),
        failed,
    }
}

/// How many of `appointments` start on local `day`.
fn same_day_count(appointments: &[&Appointment], day: NaiveDate, tz: &TimeZone) -> usize {
    appointments
        .iter()
        .filter(|a| a.window.start().with_timezone(&tz.tz()).date_naive() == day)
        .count()
}

/// A technician's place in the list for a job.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// The technician.
    pub technician_id: TechnicianId,
    /// Whether every rule passes.
    pub eligible: bool,
    /// The rules that failed.
    pub failed: Vec<FailedRule>,
    /// The ranking score (higher is better); see [`rank`].
    pub score: f64,
    /// Why it ranks where it does, such as `level 4 plumbing`, `3.2 km from the previous job`,
    /// `2 jobs that day`.
    pub reasons: Vec<String>,
}

/// Score points per skill level.
pub const POINTS_PER_LEVEL: f64 = 20.0;
/// Score points lost per kilometre of travel.
pub const POINTS_PER_KM: f64 = 1.0;
/// Score points lost per job already booked that day.
pub const POINTS_PER_JOB: f64 = 10.0;
/// The distance assumed when it cannot be measured (no coordinates for the job or the origin).
pub const UNKNOWN_DISTANCE_KM: f64 = 25.0;

/// Every active technician, with their verdict, eligible ones first. Within each group the order
/// is by score, highest first, then by technician id:
/// `score = 20 × level − 1 × km − 10 × jobs that day`, where level is the technician's level in
/// the trade (0 without it), km the distance to the job from the previous appointment that day
/// that has a location and ends by the window's start, else from the home base (25 when it cannot
/// be measured), and jobs that day the appointments other than this job's starting that local
/// day. The score is rounded to two decimals.
pub fn rank(job: &JobNeeds, techs: &[TechnicianFacts], org: &OrgFacts) -> Vec<Candidate> {
    let (day, _) = local_dates(&job.window, &org.time_zone);
    let mut out: Vec<Candidate> = techs
        .iter()
        .filter(|t| t.technician.active)
        .map(|tech| {
            let verdict = evaluate(job, tech, org);
            let mut reasons = Vec::new();
            let level = tech.skill_level(&job.trade);
            match level {
                Some(l) => reasons.push(format!("level {} {}", l.get(), job.trade)),
                None => reasons.push(format!("no {} skill", job.trade)),
            }
            let others = tech.other_appointments(job);
            let previous = others
                .iter()
                .filter(|a| {
                    a.location.is_some()
                        && a.window.end() <= job.window.start()
                        && a.window
                            .start()
                            .with_timezone(&org.time_zone.tz())
                            .date_naive()
                            == day
                })
                .max_by_key(|a| (a.window.end(), a.job_id))
                .and_then(|a| a.location.map(|l| (l, "the previous job")));
            let origin = previous.or(tech.profile.home_base.map(|h| (h, "home base")));
            let km = match (origin, job.location) {
                (Some((from, what)), Some(to)) => {
                    let km = haversine_km(from, to);
                    reasons.push(format!("{km:.1} km from {what}"));
                    km
                }
                _ => {
                    reasons.push("distance unknown".to_owned());
                    UNKNOWN_DISTANCE_KM
                }
            };
            let jobs = same_day_count(&others, day, &org.time_zone);
            reasons.push(match jobs {
                0 => "no other jobs that day".to_owned(),
                1 => "1 job that day".to_owned(),
                n => format!("{n} jobs that day"),
            });
            let level_points = f64::from(level.map_or(0, SkillLevel::get)) * POINTS_PER_LEVEL;
            let raw = level_points - km * POINTS_PER_KM - jobs as f64 * POINTS_PER_JOB;
            Candidate {
                technician_id: tech.technician.id,
                eligible: verdict.eligible,
                failed: verdict.failed,
                score: (raw * 100.0).round() / 100.0,
                reasons,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.eligible
            .cmp(&a.eligible)
            .then(b.score.total_cmp(&a.score))
            .then(a.technician_id.cmp(&b.technician_id))
    });
    out
}

#[cfg(test)]
mod tests;
