//! The field: a technician's day (`technician/v1/myDay`: their visits of a local day in order,
//! as the board shows them, with each job's customer, property and planned work) and where
//! technicians are (`technician/v1/reportLocation`, `technician/v1/positions`).
//!
//! Positions are breadcrumbs: each report (and each field move that carries a location) adds
//! one, at most [`MAX_BREADCRUMBS_PER_DAY`] per technician in any 24 hours (one a minute on
//! average; more are not kept, as a phone reporting every second would fill the table), kept
//! [`BREADCRUMB_RETENTION`]. The last known position is kept apart and always follows the
//! newest report by the device's clock, so a report that arrives late (offline) never moves it
//! back in time.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use hestami_core::customer::{Customer, Property};
use hestami_core::field::Fix;
use hestami_core::ids::{JobId, TechnicianId};

use super::board::{BoardQuery, BoardTechnician};
use super::job::JobWork;
use super::{Caller, Command, PageRequest, Services, Subject};
use crate::db::{Row, args};
use crate::directory::load_organization;
use crate::engine::WorkflowCtx;
use crate::error::{Failure, FailureKind, StoreError};
use crate::store::{Scope, TenantTx, new_id};

/// At most this many breadcrumbs per technician in any 24 hours.
pub const MAX_BREADCRUMBS_PER_DAY: i64 = 1440;
/// How long breadcrumbs are kept.
pub const BREADCRUMB_RETENTION: Duration = Duration::days(30);

/// A position a device reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Position {
    /// When, by the device's clock.
    pub device_time: DateTime<Utc>,
    /// When the server received it.
    pub received_at: DateTime<Utc>,
    /// Where.
    pub location: Fix,
}

/// `technician/v1/reportLocation`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "procedure", content = "input")]
pub enum FieldCommand {
    /// `technician/v1/reportLocation`.
    #[serde(rename = "technician/v1/reportLocation")]
    ReportLocation {
        /// Whose device.
        technician_id: TechnicianId,
        /// When, by the device's clock.
        device_time: DateTime<Utc>,
        /// Where.
        location: Fix,
    },
}

impl Command for FieldCommand {
    const WORKFLOW: &'static str = super::technician::WORKFLOW;
    fn procedure(&self) -> &'static str {
        "technician/v1/reportLocation"
    }
    fn subject(&self) -> Option<Subject> {
        match self {
            Self::ReportLocation { technician_id, .. } => Some(Subject::Technician(*technician_id)),
        }
    }
}

/// What `technician/v1/reportLocation` answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocationReported {
    /// Whose.
    pub technician_id: TechnicianId,
    /// Whether the report was kept as a breadcrumb (false past the daily cap).
    pub kept: bool,
    /// The technician's last known position after the report.
    pub last_position: Position,
}

pub(crate) async fn run(
    mut ctx: WorkflowCtx,
    command: FieldCommand,
) -> Result<LocationReported, StoreError> {
    match command {
        FieldCommand::ReportLocation {
            technician_id,
            device_time,
            location,
        } => {
            ctx.step("report_location", move |tx| {
                Box::pin(async move {
                    super::technician::load(tx, technician_id, false).await?;
                    let kept =
                        record_position(tx, technician_id, device_time, location, "report").await?;
                    let last_position = last_position(tx, technician_id)
                        .await?
                        .ok_or_else(|| StoreError::Internal("no last position".into()))?;
                    Ok(LocationReported {
                        technician_id,
                        kept,
                        last_position,
                    })
                })
            })
            .await
        }
    }
}

/// Records a position: the breadcrumb (unless the technician's 24 hours are full) and the last
/// known position (if this one is newer by the device's clock). Returns whether the breadcrumb
/// was kept.
pub(crate) async fn record_position(
    tx: &mut TenantTx,
    technician: TechnicianId,
    device_time: DateTime<Utc>,
    fix: Fix,
    source: &str,
) -> Result<bool, StoreError> {
    let (org, now) = (tx.org(), tx.now());
    // A clock ahead of the server's would pin the last position in the future: the server's
    // time stands in for it.
    let (device_time, _) = hestami_core::field::effective_time(device_time, now);
    tx.execute(
        "INSERT INTO technician_last_positions (organization_id, technician_id, device_time, \
         received_at, lat, lon, accuracy_m) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (organization_id, technician_id) DO UPDATE SET device_time = excluded.device_time, \
         received_at = excluded.received_at, lat = excluded.lat, lon = excluded.lon, \
         accuracy_m = excluded.accuracy_m \
         WHERE technician_last_positions.device_time < excluded.device_time",
        args![
            org,
            technician.as_uuid(),
            device_time,
            now,
            fix.lat(),
            fix.lon(),
            fix.accuracy_m()
        ],
    )
    .await?;
    let row = tx
        .fetch_one(
            "SELECT COUNT(*) AS n FROM technician_positions WHERE organization_id = $1 \
             AND technician_id = $2 AND device_time > $3 AND device_time <= $4",
            args![
                org,
                technician.as_uuid(),
                device_time - Duration::hours(24),
                device_time
            ],
        )
        .await?;
    let kept =
        row.get::<i64>("n")? < MAX_BREADCRUMBS_PER_DAY && device_time >= now - BREADCRUMB_RETENTION;
    if kept {
        tx.execute(
            "INSERT INTO technician_positions (organization_id, technician_id, id, device_time, \
             received_at, lat, lon, accuracy_m, source) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            args![
                org,
                technician.as_uuid(),
                new_id(),
                device_time,
                now,
                fix.lat(),
                fix.lon(),
                fix.accuracy_m(),
                source
            ],
        )
        .await?;
    }
    tx.execute(
        "DELETE FROM technician_positions WHERE organization_id = $1 AND technician_id = $2 \
         AND device_time < $3",
        args![org, technician.as_uuid(), now - BREADCRUMB_RETENTION],
    )
    .await?;
    Ok(kept)
}

fn decode_position(row: &Row) -> Result<Position, StoreError> {
    let location = Fix::parse(row.get("lat")?, row.get("lon")?, row.get("accuracy_m")?)
        .map_err(|(field, e)| StoreError::Internal(format!("stored {field}: {}", e.message)))?;
    Ok(Position {
        device_time: row.get("device_time")?,
        received_at: row.get("received_at")?,
        location,
    })
}

/// The technician's last known position.
pub(crate) async fn last_position(
    tx: &mut TenantTx,
    technician: TechnicianId,
) -> Result<Option<Position>, StoreError> {
    let org = tx.org();
    tx.fetch_optional(
        "SELECT device_time, received_at, lat, lon, accuracy_m FROM technician_last_positions \
         WHERE organization_id = $1 AND technician_id = $2",
        args![org, technician.as_uuid()],
    )
    .await?
    .as_ref()
    .map(decode_position)
    .transpose()
}

/// `technician/v1/positions`: a technician's last known position and breadcrumbs of a local day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Positions {
    /// Whose.
    pub technician_id: TechnicianId,
    /// The last known position, whenever it was.
    pub last_position: Option<Position>,
    /// The day's breadcrumbs, by the device's clock.
    pub breadcrumbs: Vec<Position>,
}

/// The technician a field read is about: a technician's own (another is not found), or the one
/// the office names.
pub(crate) fn whose(
    caller: &Caller,
    asked: Option<TechnicianId>,
) -> Result<TechnicianId, StoreError> {
    match (caller.scope, asked) {
        (Scope::Technician(Some(own)), None) => Ok(own),
        (Scope::Technician(Some(own)), Some(asked)) if asked == own => Ok(own),
        // Another technician's, or none linked: not found, as any id out of scope.
        (Scope::Technician(_), _) => Err(Failure::not_found("technician").into()),
        (Scope::Organization, Some(asked)) => Ok(asked),
        // A caller who is not a technician has no technician of their own.
        (Scope::Organization, None) => Err(Failure::new(
            FailureKind::NotFound,
            "NOT_FOUND",
            "no technician is yours: name one with technicianId",
        )
        .into()),
    }
}

/// `technician/v1/myDay`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MyDayQuery {
    /// The local date (default: today in the organization's zone).
    pub date: Option<NaiveDate>,
    /// Whose day: a technician's own (default), or any technician's for the office.
    pub technician_id: Option<TechnicianId>,
}

/// A job of the day, with what the technician needs on site.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MyDayJob {
    /// The job.
    pub job_id: JobId,
    /// Its customer.
    pub customer: Customer,
    /// Where.
    pub property: Property,
    /// The planned work handed to the job, and what was recorded.
    pub work: JobWork,
    /// The job's notes (gate codes, what the customer said), oldest first.
    pub notes: Vec<super::notes::Note>,
    /// What is attached to the job and its visits (plans, permits, earlier photos), oldest first.
    pub attachments: Vec<super::attachments::Attachment>,
    /// The forms to fill in on the job, with what is answered and what is missing.
    pub forms: Vec<super::forms::JobForm>,
}

/// A technician's local day.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MyDay {
    /// The organization's zone.
    pub time_zone: String,
    /// The day as the board shows it: shifts, time off, the stops in order with legs and
    /// projections, the load.
    pub technician: BoardTechnician,
    /// Each job of the day's stops, once.
    pub jobs: Vec<MyDayJob>,
}

impl Services {
    /// `technician/v1/myDay`.
    pub async fn my_day(&self, caller: &Caller, q: MyDayQuery) -> Result<MyDay, StoreError> {
        let technician = whose(caller, q.technician_id)?;
        let date = match q.date {
            Some(d) => d,
            None => {
                self.read(caller, move |tx| {
                    Box::pin(async move {
                        let tz = load_organization(tx, false).await?.time_zone.tz();
                        Ok(tx.now().with_timezone(&tz).date_naive())
                    })
                })
                .await?
            }
        };
        let board = self
            .dispatch_board(
                caller,
                BoardQuery {
                    date,
                    days: 1,
                    trade: None,
                    technician_ids: vec![technician],
                    statuses: Vec::new(),
                    postal_codes: Vec::new(),
                    page: PageRequest::parse(Some(1), None)
                        .map_err(|_| StoreError::Internal("a page of one".into()))?,
                },
            )
            .await?;
        let Some(day) = board.technicians.into_iter().next() else {
            return Err(Failure::not_found("technician").into());
        };
        let mut job_ids: Vec<JobId> = Vec::new();
        for stop in day.days.iter().flat_map(|d| &d.stops) {
            if !job_ids.contains(&stop.stop.visit.job_id) {
                job_ids.push(stop.stop.visit.job_id);
            }
        }
        let jobs = self
            .read(caller, move |tx| {
                Box::pin(async move {
                    let mut out = Vec::with_capacity(job_ids.len());
                    for id in job_ids {
                        let job = super::job::load(tx, id, false).await?;
                        let forms = super::forms::of_job(tx, &job).await?;
                        let customer = super::customer::load(tx, job.customer_id, false).await?;
                        let property =
                            super::customer::load_property(tx, job.customer_id, job.property_id)
                                .await?;
                        out.push(MyDayJob {
                            job_id: id,
                            customer,
                            property,
                            work: super::job::work_of(tx, id).await?,
                            notes: super::notes::of_job(tx, id).await?,
                            attachments: super::attachments::of_job(tx, id).await?,
                            forms,
                        });
                    }
                    Ok(out)
                })
            })
            .await?;
        Ok(MyDay {
            time_zone: board.time_zone,
            technician: day,
            jobs,
        })
    }

    /// `technician/v1/positions`.
    pub async fn technician_positions(
        &self,
        caller: &Caller,
        technician_id: Option<TechnicianId>,
        date: Option<NaiveDate>,
    ) -> Result<Positions, StoreError> {
        let technician = whose(caller, technician_id)?;
        self.read(caller, move |tx| {
            Box::pin(async move {
                super::technician::load(tx, technician, false).await?;
                let tz = load_organization(tx, false).await?.time_zone.tz();
                let day = date.unwrap_or_else(|| tx.now().with_timezone(&tz).date_naive());
                let (from, to) = super::eligibility::day_bounds(tz, day);
                let org = tx.org();
                let breadcrumbs = tx
                    .fetch_all(
                        "SELECT device_time, received_at, lat, lon, accuracy_m FROM technician_positions \
                         WHERE organization_id = $1 AND technician_id = $2 AND device_time >= $3 \
                         AND device_time < $4 ORDER BY device_time, id",
                        args![org, technician.as_uuid(), from, to],
                    )
                    .await?
                    .iter()
                    .map(decode_position)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Positions {
                    technician_id: technician,
                    last_position: last_position(tx, technician).await?,
                    breadcrumbs,
                })
            })
        })
        .await
    }
}
