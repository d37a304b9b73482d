//! The rest of the workforce (`technician/v1`, workflow `technician_v1`): skills,
//! certifications, shifts, time off, service areas, home base and availability.
//!
//! These commands share the `technician_v1` workflow with create/update/deactivate: one
//! technician's changes are one workflow family, whatever part of the record they touch.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use hestami_core::area::ServiceArea;
use hestami_core::customer::GeoPoint;
use hestami_core::ids::{CertificationId, TechnicianId, TimeOffId};
use hestami_core::schedule::{self, Appointment, Span};
use hestami_core::text::{Name, Reason, TradeCode};
use hestami_core::workforce::{
    Certification, DailyCapacity, Skill, Technician, TimeOff, WeeklyShifts, WorkProfile,
};

use super::contractor::set_areas;
use super::technician::load;
use super::{Caller, Command, Services};
use crate::db::{Row, args};
use crate::directory::{load_organization, parse_stored};
use crate::engine::WorkflowCtx;
use crate::error::{Failure, StoreError};
use crate::store::{Operation, TenantTx, new_id};

/// A technician with everything eligibility reads about them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TechnicianDetail {
    /// The record.
    pub technician: Technician,
    /// Skills, certifications, shifts, time off, areas, home base, capacity.
    pub profile: WorkProfile,
}

/// A new certification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewCertification {
    /// Its name, as jobs and rules ask for it (compared without regard to case).
    pub name: Name,
    /// Who issued it.
    pub issuer: Name,
    /// Its number.
    pub number: Option<Name>,
    /// Last valid day, if it lapses.
    pub expires_on: Option<NaiveDate>,
    /// The trades it is for.
    pub trades: Vec<TradeCode>,
}

/// The workforce procedures of `technician/v1`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "procedure", content = "input")]
pub enum WorkforceCommand {
    /// `technician/v1/setSkills`: replaces the skills.
    #[serde(rename = "technician/v1/setSkills")]
    SetSkills {
        /// Who.
        technician_id: TechnicianId,
        /// The skills.
        skills: Vec<Skill>,
    },
    /// `technician/v1/addCertification`.
    #[serde(rename = "technician/v1/addCertification")]
    AddCertification {
        /// Who.
        technician_id: TechnicianId,
        /// What.
        certification: NewCertification,
    },
    /// `technician/v1/removeCertification`.
    #[serde(rename = "technician/v1/removeCertification")]
    RemoveCertification {
        /// Who.
        technician_id: TechnicianId,
        /// Which.
        certification_id: CertificationId,
    },
    /// `technician/v1/setShifts`: a weekly pattern from a date on (earlier patterns still apply
    /// before it).
    #[serde(rename = "technician/v1/setShifts")]
    SetShifts {
        /// Who.
        technician_id: TechnicianId,
        /// The pattern.
        shifts: WeeklyShifts,
    },
    /// `technician/v1/addTimeOff`.
    #[serde(rename = "technician/v1/addTimeOff")]
    AddTimeOff {
        /// Who.
        technician_id: TechnicianId,
        /// From.
        start: DateTime<Utc>,
        /// Until.
        end: DateTime<Utc>,
        /// Why.
        reason: Option<Reason>,
    },
    /// `technician/v1/removeTimeOff`.
    #[serde(rename = "technician/v1/removeTimeOff")]
    RemoveTimeOff {
        /// Who.
        technician_id: TechnicianId,
        /// Which.
        time_off_id: TimeOffId,
    },
    /// `technician/v1/setServiceAreas`: the technician's own subset (none: all the
    /// organization's).
    #[serde(rename = "technician/v1/setServiceAreas")]
    SetServiceAreas {
        /// Who.
        technician_id: TechnicianId,
        /// The areas.
        areas: Vec<ServiceArea>,
    },
    /// `technician/v1/setHomeBase`.
    #[serde(rename = "technician/v1/setHomeBase")]
    SetHomeBase {
        /// Who.
        technician_id: TechnicianId,
        /// Where the day starts; `None` clears it.
        home_base: Option<GeoPoint>,
        /// Jobs per local day, when it changes.
        daily_capacity: Option<DailyCapacity>,
    },
}

impl Command for WorkforceCommand {
    const WORKFLOW: &'static str = super::technician::WORKFLOW;
    fn procedure(&self) -> &'static str {
        match self {
            Self::SetSkills { .. } => "technician/v1/setSkills",
            Self::AddCertification { .. } => "technician/v1/addCertification",
            Self::RemoveCertification { .. } => "technician/v1/removeCertification",
            Self::SetShifts { .. } => "technician/v1/setShifts",
            Self::AddTimeOff { .. } => "technician/v1/addTimeOff",
            Self::RemoveTimeOff { .. } => "technician/v1/removeTimeOff",
            Self::SetServiceAreas { .. } => "technician/v1/setServiceAreas",
            Self::SetHomeBase { .. } => "technician/v1/setHomeBase",
        }
    }
}

pub(crate) async fn run(
    mut ctx: WorkflowCtx,
    command: WorkforceCommand,
) -> Result<TechnicianDetail, StoreError> {
    ctx.step("update_work_profile", move |tx| {
        Box::pin(apply(tx, command))
    })
    .await
}

/// Bumps the technician's version and records the change: every workforce change is a change
/// of the technician aggregate (its version guards offline edits of any part).
async fn touch(tx: &mut TenantTx, id: TechnicianId) -> Result<(), StoreError> {
    let org = tx.org();
    let now = tx.now();
    let row = tx
        .fetch_one(
            "UPDATE technicians SET version = version + 1, updated_at = $1 WHERE organization_id = $2 AND id = $3 \
             RETURNING version",
            args![now, org, id.as_uuid()],
        )
        .await?;
    tx.record_change(
        "technician",
        id.as_uuid(),
        row.get("version")?,
        Operation::Updated,
    )
    .await?;
    Ok(())
}

async fn apply(
    tx: &mut TenantTx,
    command: WorkforceCommand,
) -> Result<TechnicianDetail, StoreError> {
    use WorkforceCommand as W;
    let org = tx.org();
    let now = tx.now();
    let id = match &command {
        W::SetSkills { technician_id, .. }
        | W::AddCertification { technician_id, .. }
        | W::RemoveCertification { technician_id, .. }
        | W::SetShifts { technician_id, .. }
        | W::AddTimeOff { technician_id, .. }
        | W::RemoveTimeOff { technician_id, .. }
        | W::SetServiceAreas { technician_id, .. }
        | W::SetHomeBase { technician_id, .. } => *technician_id,
    };
    load(tx, id, true).await?;
    match command {
        W::SetSkills { skills, .. } => {
            super::trades::ensure_known(
                tx,
                skills
                    .iter()
                    .enumerate()
                    .map(|(n, s)| (format!("skills[{n}].trade"), s.trade.clone()))
                    .collect(),
            )
            .await?;
            let mut skills = skills;
            skills.sort();
            skills.dedup_by(|a, b| a.trade == b.trade);
            tx.execute(
                "UPDATE technicians SET skills = $1 WHERE organization_id = $2 AND id = $3",
                args![serde_json::to_string(&skills)?, org, id.as_uuid()],
            )
            .await?;
        }
        W::AddCertification {
            certification: c, ..
        } => {
            super::trades::ensure_known(tx, super::trades::each("trades", &c.trades)).await?;
            tx.execute(
                "INSERT INTO technician_certifications (organization_id, id, technician_id, version, name, issuer, \
                 number, expires_on, trades, created_at, updated_at) VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $8, $9, $9)",
                args![
                    org,
                    new_id(),
                    id.as_uuid(),
                    c.name.as_str(),
                    c.issuer.as_str(),
                    c.number.as_ref().map(Name::as_str),
                    c.expires_on,
                    serde_json::to_string(&hestami_core::workforce::normalize_trades(c.trades))?,
                    now
                ],
            )
            .await?;
        }
        W::RemoveCertification {
            certification_id, ..
        } => {
            let n = tx
                .execute(
                    "UPDATE technician_certifications SET removed_at = $1, version = version + 1, updated_at = $1 \
                     WHERE organization_id = $2 AND technician_id = $3 AND id = $4 AND removed_at IS NULL",
                    args![now, org, id.as_uuid(), certification_id.as_uuid()],
                )
                .await?;
            if n == 0 {
                return Err(Failure::not_found("certification").into());
            }
        }
        W::SetShifts { shifts, .. } => {
            tx.execute(
                "DELETE FROM technician_shifts WHERE organization_id = $1 AND technician_id = $2 AND effective_from = $3",
                args![org, id.as_uuid(), shifts.effective_from()],
            )
            .await?;
            tx.execute(
                "INSERT INTO technician_shifts (organization_id, technician_id, effective_from, spans, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
                args![org, id.as_uuid(), shifts.effective_from(), serde_json::to_string(shifts.spans())?, now],
            )
            .await?;
        }
        W::AddTimeOff {
            start, end, reason, ..
        } => {
            let off = TimeOff::parse(TimeOffId::from_uuid(new_id()), start, end, reason)
                .map_err(|e| Failure::validation(vec![crate::error::FieldError::new("end", &e)]))?;
            tx.execute(
                "INSERT INTO technician_time_off (organization_id, id, technician_id, starts_at, ends_at, reason, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                args![
                    org,
                    off.id().as_uuid(),
                    id.as_uuid(),
                    off.start(),
                    off.end(),
                    off.reason().map(|r| r.as_str().to_owned()),
                    now
                ],
            )
            .await?;
        }
        W::RemoveTimeOff { time_off_id, .. } => {
            let n = tx
                .execute(
                    "UPDATE technician_time_off SET removed_at = $1 WHERE organization_id = $2 AND technician_id = $3 \
                     AND id = $4 AND removed_at IS NULL",
                    args![now, org, id.as_uuid(), time_off_id.as_uuid()],
                )
                .await?;
            if n == 0 {
                return Err(Failure::not_found("time off").into());
            }
        }
        W::SetServiceAreas { areas, .. } => {
            set_areas(tx, Some(id), areas).await?;
        }
        W::SetHomeBase {
            home_base,
            daily_capacity,
            ..
        } => {
            tx.execute(
                "UPDATE technicians SET home_lat = $1, home_lon = $2, daily_capacity = COALESCE($3, daily_capacity) \
                 WHERE organization_id = $4 AND id = $5",
                args![
                    home_base.map(|p| p.lat()),
                    home_base.map(|p| p.lon()),
                    daily_capacity.map(|c| i64::from(c.get())),
                    org,
                    id.as_uuid()
                ],
            )
            .await?;
        }
    }
    touch(tx, id).await?;
    load_detail(tx, id).await
}

/// Certifications of one technician, or of all (`None`), not removed.
pub(crate) async fn load_certifications(
    tx: &mut TenantTx,
    technician: Option<TechnicianId>,
) -> Result<Vec<(TechnicianId, Certification)>, StoreError> {
    let org = tx.org();
    let rows = tx
        .fetch_all(
            "SELECT id, technician_id, name, issuer, number, expires_on, trades, created_at FROM technician_certifications \
             WHERE organization_id = $1 AND ($2 IS NULL OR technician_id = $2) AND removed_at IS NULL ORDER BY id",
            args![org, technician.map(|t| t.as_uuid())],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                TechnicianId::from_uuid(r.get("technician_id")?),
                Certification {
                    id: CertificationId::from_uuid(r.get("id")?),
                    name: parse_stored(&r.get::<String>("name")?, Name::parse)?,
                    issuer: parse_stored(&r.get::<String>("issuer")?, Name::parse)?,
                    number: r
                        .get::<Option<String>>("number")?
                        .map(|n| parse_stored(&n, Name::parse))
                        .transpose()?,
                    expires_on: r.get("expires_on")?,
                    trades: serde_json::from_str(&r.get::<String>("trades")?)?,
                    created_at: r.get("created_at")?,
                },
            ))
        })
        .collect()
}

fn decode_time_off(r: &Row) -> Result<TimeOff, StoreError> {
    TimeOff::parse(
        TimeOffId::from_uuid(r.get("id")?),
        r.get("starts_at")?,
        r.get("ends_at")?,
        r.get::<Option<String>>("reason")?
            .map(|v| parse_stored(&v, Reason::parse))
            .transpose()?,
    )
    .map_err(|e| StoreError::Internal(format!("stored time off is invalid: {e}")))
}

/// A technician's record and work profile.
pub(crate) async fn load_detail(
    tx: &mut TenantTx,
    id: TechnicianId,
) -> Result<TechnicianDetail, StoreError> {
    load_details(tx, Some(id), false)
        .await?
        .pop()
        .ok_or_else(|| Failure::not_found("technician").into())
}

/// The records and work profiles of one technician (`Some`) or of all (`None`, optionally only
/// active ones), by id. One query per kind of fact, whatever the number of technicians: the
/// eligibility of a job is judged against every technician at once.
pub(crate) async fn load_details(
    tx: &mut TenantTx,
    only: Option<TechnicianId>,
    active_only: bool,
) -> Result<Vec<TechnicianDetail>, StoreError> {
    use std::collections::HashMap;
    let org = tx.org();
    let filter = only.map(|t| t.as_uuid());
    let rows = tx
        .fetch_all(
            &format!(
                "SELECT {}, skills, home_lat, home_lon, daily_capacity FROM technicians \
                 WHERE organization_id = $1 AND ($2 IS NULL OR id = $2) AND ($3 = FALSE OR active = TRUE) \
                 ORDER BY id",
                super::technician::COLUMNS
            ),
            args![org, filter, active_only],
        )
        .await?;
    let mut certifications: HashMap<TechnicianId, Vec<Certification>> = HashMap::new();
    for (tech, c) in load_certifications(tx, only).await? {
        certifications.entry(tech).or_default().push(c);
    }
    let mut shifts: HashMap<TechnicianId, Vec<WeeklyShifts>> = HashMap::new();
    let shift_rows = tx
        .fetch_all(
            "SELECT technician_id, effective_from, spans FROM technician_shifts WHERE organization_id = $1 \
             AND ($2 IS NULL OR technician_id = $2) ORDER BY technician_id, effective_from",
            args![org, filter],
        )
        .await?;
    for r in &shift_rows {
        let from: NaiveDate = r.get("effective_from")?;
        let spans = serde_json::from_str(&r.get::<String>("spans")?)?;
        let pattern = WeeklyShifts::parse(from, spans)
            .map_err(|e| StoreError::Internal(format!("stored shifts are invalid: {e}")))?;
        shifts
            .entry(TechnicianId::from_uuid(r.get("technician_id")?))
            .or_default()
            .push(pattern);
    }
    let mut time_off: HashMap<TechnicianId, Vec<TimeOff>> = HashMap::new();
    let off_rows = tx
        .fetch_all(
            "SELECT technician_id, id, starts_at, ends_at, reason FROM technician_time_off WHERE organization_id = $1 \
             AND ($2 IS NULL OR technician_id = $2) AND removed_at IS NULL ORDER BY technician_id, starts_at, id",
            args![org, filter],
        )
        .await?;
    for r in &off_rows {
        time_off
            .entry(TechnicianId::from_uuid(r.get("technician_id")?))
            .or_default()
            .push(decode_time_off(r)?);
    }
    // The current set of each technician's own areas is its highest version.
    let mut areas: HashMap<TechnicianId, Vec<ServiceArea>> = HashMap::new();
    let area_rows = tx
        .fetch_all(
            "SELECT technician_id, areas FROM service_area_sets WHERE organization_id = $1 \
             AND technician_id IS NOT NULL AND ($2 IS NULL OR technician_id = $2) ORDER BY technician_id, version DESC",
            args![org, filter],
        )
        .await?;
    for r in &area_rows {
        let tech = TechnicianId::from_uuid(r.get("technician_id")?);
        if let std::collections::hash_map::Entry::Vacant(slot) = areas.entry(tech) {
            slot.insert(serde_json::from_str(&r.get::<String>("areas")?)?);
        }
    }
    rows.iter()
        .map(|row| {
            let technician = super::technician::decode(row)?;
            let id = technician.id;
            let home_base = match (
                row.get::<Option<f64>>("home_lat")?,
                row.get::<Option<f64>>("home_lon")?,
            ) {
                (Some(lat), Some(lon)) => GeoPoint::parse(lat, lon).ok(),
                _ => None,
            };
            let capacity = u16::try_from(row.get::<i64>("daily_capacity")?).unwrap_or(u16::MAX);
            Ok(TechnicianDetail {
                technician,
                profile: WorkProfile {
                    skills: serde_json::from_str(&row.get::<String>("skills")?)?,
                    certifications: certifications.remove(&id).unwrap_or_default(),
                    shifts: shifts.remove(&id).unwrap_or_default(),
                    time_off: time_off.remove(&id).unwrap_or_default(),
                    service_areas: areas.remove(&id).unwrap_or_default(),
                    home_base,
                    daily_capacity: DailyCapacity::parse(capacity).unwrap_or_default(),
                },
            })
        })
        .collect()
}

/// The appointments (scheduled jobs with a window, not finished) of one technician or of all,
/// overlapping `[from, to)`.
pub(crate) async fn load_appointments(
    tx: &mut TenantTx,
    technician: Option<TechnicianId>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(TechnicianId, Appointment)>, StoreError> {
    let org = tx.org();
    let rows = tx
        .fetch_all(
            // A v1 job's booking is its own window and technician; a v2 job's are its open
            // appointments, one per member of the crew.
            "SELECT j.id, NULL AS appointment_id, j.technician_id, j.window_start, j.window_end, \
             NULL AS planned_start, NULL AS estimated_minutes, p.lat, p.lon \
             FROM jobs j \
             JOIN properties p ON p.organization_id = j.organization_id AND p.id = j.property_id \
             WHERE j.organization_id = $1 AND j.lifecycle = 'v1' AND j.technician_id IS NOT NULL \
             AND ($2 IS NULL OR j.technician_id = $2) \
             AND j.window_start IS NOT NULL AND j.window_end > $3 AND j.window_start < $4 AND j.window_start > $5 \
             AND j.status NOT IN ('completed', 'invoiced', 'paid', 'closed', 'cancelled') \
             UNION ALL \
             SELECT a.job_id AS id, a.id AS appointment_id, c.technician_id, a.window_start, a.window_end, \
             a.planned_start, a.estimated_minutes, p.lat, p.lon \
             FROM appointments a \
             JOIN appointment_crew c ON c.organization_id = a.organization_id AND c.appointment_id = a.id \
             JOIN jobs j ON j.organization_id = a.organization_id AND j.id = a.job_id \
             JOIN properties p ON p.organization_id = j.organization_id AND p.id = j.property_id \
             WHERE a.organization_id = $1 AND ($2 IS NULL OR c.technician_id = $2) \
             AND a.window_end > $3 AND a.window_start < $4 AND a.window_start > $5 \
             AND a.status NOT IN ('done', 'cancelled') AND j.status NOT IN ('cancelled', 'closed') \
             ORDER BY 4, 1",
            // Windows last at most 7 days: the lower bound lets the index skip history.
            args![
                org,
                technician.map(|t| t.as_uuid()),
                from,
                to,
                from - chrono::Duration::days(7)
            ],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let window =
                hestami_core::job::TimeWindow::parse(r.get("window_start")?, r.get("window_end")?)
                    .map_err(|e| StoreError::Internal(format!("stored window is invalid: {e}")))?;
            // A planned visit takes its crew from its planned start for its minutes only.
            let planned: Option<DateTime<Utc>> = r.get("planned_start")?;
            let window = match (planned, r.get::<Option<i64>>("estimated_minutes")?) {
                (Some(start), Some(minutes)) => hestami_core::job::TimeWindow::parse(
                    start,
                    start + chrono::Duration::minutes(minutes),
                )
                .unwrap_or(window),
                _ => window,
            };
            let location = match (r.get::<Option<f64>>("lat")?, r.get::<Option<f64>>("lon")?) {
                (Some(lat), Some(lon)) => GeoPoint::parse(lat, lon).ok(),
                _ => None,
            };
            Ok((
                TechnicianId::from_uuid(r.get("technician_id")?),
                Appointment {
                    job_id: hestami_core::ids::JobId::from_uuid(r.get("id")?),
                    appointment_id: r
                        .get::<Option<uuid::Uuid>>("appointment_id")?
                        .map(hestami_core::ids::AppointmentId::from_uuid),
                    window,
                    location,
                },
            ))
        })
        .collect()
}

impl Services {
    /// The technician with their work profile.
    pub async fn technician_detail(
        &self,
        caller: &Caller,
        id: TechnicianId,
    ) -> Result<TechnicianDetail, StoreError> {
        self.read(caller, move |tx| Box::pin(load_detail(tx, id)))
            .await
    }

    /// `technician/v1/availability`: free and busy spans over `[from, to)`, with what makes them
    /// busy.
    pub async fn technician_availability(
        &self,
        caller: &Caller,
        id: TechnicianId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Span>, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let detail = load_detail(tx, id).await?;
                let tz = load_organization(tx, false).await?.time_zone.tz();
                let shifts = schedule::shift_intervals(&detail.profile.shifts, tz, from, to);
                let appointments: Vec<Appointment> = load_appointments(tx, Some(id), from, to)
                    .await?
                    .into_iter()
                    .map(|(_, a)| a)
                    .collect();
                Ok(schedule::availability(
                    &shifts,
                    &detail.profile.time_off,
                    &appointments,
                    from,
                    to,
                ))
            })
        })
        .await
    }
}
