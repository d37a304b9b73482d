//! The dispatch board (`dispatch/v1/board`), booking slots (`dispatch/v1/suggestSlots`) and the
//! organization's scheduling settings (`dispatch/v1/getSettings`, `updateSettings`). The rules
//! are `hestami_core::dispatch::board` and `hestami_core::eligibility`; this module gathers
//! their facts in one read transaction.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use hestami_core::appointment::AppointmentStatus;
use hestami_core::customer::{GeoPoint, PostalCode};
use hestami_core::dispatch::board::{
    self as core_board, Flags, LeftOut, SchedulingSettings, Stop, Visit, visit_status_of_v1,
};
use hestami_core::eligibility::{JobNeeds, OrgFacts};
use hestami_core::ids::{AppointmentId, CustomerId, JobId, PropertyId, TechnicianId};
use hestami_core::job::{Job, JobStatus, Priority, TimeWindow};
use hestami_core::schedule::{Interval, shift_intervals};
use hestami_core::text::{Name, Summary, TradeCode};
use hestami_core::workforce::SkillLevel;

use super::contractor::property_jurisdiction;
use super::eligibility::{day_bounds, org_facts_by_date, technicians_with_bookings};
use super::workforce::{TechnicianDetail, load_details};
use super::{Caller, PageRequest, Services, check_version};
use crate::db::{Row, args};
use crate::directory::{load_organization, parse_stored};
use crate::error::{Failure, FailureKind, StoreError};
use crate::store::{Operation, TenantTx};

/// The most days one board call covers.
pub const MAX_BOARD_DAYS: u32 = 7;
/// The most days `suggestSlots` looks ahead.
pub const MAX_SLOT_DAYS: u32 = 14;
/// The most options `suggestSlots` returns.
pub const MAX_SLOT_OPTIONS: usize = 50;
/// The most jobs the board's unassigned queue lists (most urgent SLA first).
pub const UNASSIGNED_LIMIT: i64 = 200;

/// The organization's scheduling settings with their version (0: the defaults, never set).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingsView {
    /// Goes up by one with every change; 0 until first set.
    pub version: i64,
    /// The settings.
    pub settings: SchedulingSettings,
}

pub(crate) async fn load_settings(
    tx: &mut TenantTx,
    lock: bool,
) -> Result<SettingsView, StoreError> {
    let org = tx.org();
    let sql = format!(
        "SELECT version, settings FROM scheduling_settings WHERE organization_id = $1{}",
        if lock { tx.for_update() } else { "" }
    );
    Ok(match tx.fetch_optional(&sql, args![org]).await? {
        Some(row) => SettingsView {
            version: row.get("version")?,
            settings: serde_json::from_str(&row.get::<String>("settings")?)?,
        },
        None => SettingsView {
            version: 0,
            settings: SchedulingSettings::default(),
        },
    })
}

pub(crate) async fn update_settings(
    tx: &mut TenantTx,
    settings: SchedulingSettings,
    expected_version: Option<i64>,
) -> Result<SettingsView, StoreError> {
    // Lock the row, creating it first when the organization never set one: two first updates
    // at once are then judged one after the other (the second sees version 1).
    let (org, now) = (tx.org(), tx.now());
    tx.execute(
        "INSERT INTO scheduling_settings (organization_id, version, settings, updated_at) VALUES ($1, 0, $2, $3) \
         ON CONFLICT (organization_id) DO NOTHING",
        args![org, serde_json::to_string(&SchedulingSettings::default())?, now],
    )
    .await?;
    let current = load_settings(tx, true).await?;
    check_version("scheduling settings", expected_version, current.version)?;
    let next = SettingsView {
        version: current.version + 1,
        settings,
    };
    tx.execute(
        "UPDATE scheduling_settings SET version = $1, settings = $2, updated_at = $3 WHERE organization_id = $4",
        args![next.version, serde_json::to_string(&next.settings)?, now, org],
    )
    .await?;
    tx.record_change("scheduling_settings", org, next.version, Operation::Updated)
        .await?;
    Ok(next)
}

/// What to book (`dispatch/v1/suggestSlots`): an existing job, or a draft of one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SlotSubject {
    /// An existing job.
    Job(JobId),
    /// A job not created yet.
    Draft(DraftJob),
}

/// A job not created yet, as a call-taker describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DraftJob {
    /// The customer.
    pub customer_id: CustomerId,
    /// The property.
    pub property_id: PropertyId,
    /// The trade.
    pub trade: TradeCode,
    /// The least skill level.
    pub min_skill_level: SkillLevel,
    /// Certifications the technician must hold.
    pub required_certifications: Vec<Name>,
    /// Its priority (sets the SLA deadline from now).
    pub priority: Priority,
}

/// `dispatch/v1/suggestSlots`'s question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotQuery {
    /// The job or draft.
    pub subject: SlotSubject,
    /// The first local date to look at (default: today in the organization's zone).
    pub from: Option<NaiveDate>,
    /// How many days (1 to [`MAX_SLOT_DAYS`]).
    pub days: u32,
    /// How many options (1 to [`MAX_SLOT_OPTIONS`]).
    pub limit: usize,
}

/// A booking option.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlotView {
    /// Who.
    pub technician_id: TechnicianId,
    /// The arrival window.
    pub window: TimeWindow,
    /// Added travel from the stop before (or the home base), when known.
    pub added_travel_minutes: Option<u32>,
    /// The technician's bookings that day before this one.
    pub load: usize,
    /// Whether the window opens by the SLA deadline (a first visit after it needs an override).
    pub within_sla: bool,
    /// Why it is offered.
    pub reasons: Vec<String>,
}

/// A technician never offered, and the rules that failed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeftOutView {
    /// Who.
    pub technician_id: TechnicianId,
    /// Failed rule code → in how many windows.
    pub failed_rules: BTreeMap<String, usize>,
}

/// `dispatch/v1/suggestSlots`'s answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlotSuggestions {
    /// The SLA deadline the options were judged against (`None` when it does not apply: a
    /// return visit).
    pub sla_deadline: Option<DateTime<Utc>>,
    /// The best options: within the SLA first, then the earliest, the least added travel, the
    /// lightest day.
    pub options: Vec<SlotView>,
    /// Technicians eligible in no window, with every rule that failed.
    pub left_out: Vec<LeftOutView>,
}

/// What a slot search needs: the job's needs (window to be replaced) and its SLA deadline when a
/// first visit is held to it.
async fn subject_needs(
    tx: &mut TenantTx,
    subject: &SlotSubject,
) -> Result<(JobNeeds, Option<DateTime<Utc>>), StoreError> {
    let placeholder = TimeWindow::parse(tx.now(), tx.now() + Duration::hours(1))
        .map_err(|e| StoreError::Internal(e.message))?;
    match subject {
        SlotSubject::Job(id) => {
            let (job, v2, _) = super::job::load_full(tx, *id, false).await?;
            let visits = super::appointment::load_of_job(tx, job.id, false).await?;
            let refs: Vec<_> = visits.iter().collect();
            let first = hestami_core::appointment::is_first_visit(&refs);
            let needs = needs_for_new_visit(tx, &job, v2, placeholder).await?;
            Ok((needs, first.then_some(job.sla_deadline)))
        }
        SlotSubject::Draft(d) => {
            let property = super::customer::load_property(tx, d.customer_id, d.property_id).await?;
            super::trades::ensure_known(tx, vec![("trade".to_owned(), d.trade.clone())]).await?;
            let org = load_organization(tx, false).await?;
            let deadline = tx.now() + d.priority.response_window(&org.sla);
            Ok((
                JobNeeds {
                    job_id: None,
                    appointment_id: None,
                    trade: d.trade.clone(),
                    min_skill_level: d.min_skill_level,
                    required_certifications: d.required_certifications.clone(),
                    location: property.location,
                    postal_code: property.address.postal_code.clone(),
                    jurisdiction: property_jurisdiction(&property.address),
                    window: placeholder,
                },
                Some(deadline),
            ))
        }
    }
}

/// What a new visit of `job` needs. A v2 job's visits all count against the technician, as
/// `job/v2/addAppointment` counts them (a placeholder visit id leaves none of them out); a v1
/// job's own booking does not (it is the one being moved).
async fn needs_for_new_visit(
    tx: &mut TenantTx,
    job: &Job,
    v2: bool,
    window: TimeWindow,
) -> Result<JobNeeds, StoreError> {
    let mut needs = super::eligibility::needs_for(tx, job, window).await?;
    if v2 {
        needs.appointment_id = Some(AppointmentId::from_uuid(uuid::Uuid::nil()));
    }
    Ok(needs)
}

async fn suggest(
    tx: &mut TenantTx,
    needs: &JobNeeds,
    sla_deadline: Option<DateTime<Utc>>,
    first: NaiveDate,
    days: u32,
    limit: usize,
) -> Result<SlotSuggestions, StoreError> {
    let time_zone = load_organization(tx, false).await?.time_zone;
    let tz = time_zone.tz();
    let settings = load_settings(tx, false).await?.settings;
    let dates: Vec<NaiveDate> = (0..days)
        .map(|d| first + Duration::days(i64::from(d)))
        .collect();
    let orgs = org_facts_by_date(tx, needs, time_zone, &dates).await?;
    let (from, _) = day_bounds(tz, first);
    let (_, to) = day_bounds(tz, first + Duration::days(i64::from(days.max(1)) - 1));
    let techs = technicians_with_bookings(tx, from, to).await?;
    let windows: Vec<(TimeWindow, &OrgFacts)> = orgs
        .iter()
        .flat_map(|(date, org)| {
            settings
                .slots_on(*date, tz)
                .into_iter()
                .map(move |w| (w, org))
        })
        .collect();
    let found = core_board::suggest_slots(
        needs,
        &techs,
        &windows,
        &settings.travel,
        tx.now(),
        usize::MAX,
    );
    let mut options: Vec<SlotView> = found
        .options
        .into_iter()
        .map(|o| {
            let within_sla = sla_deadline.is_none_or(|d| o.window.start() <= d);
            let mut reasons = o.reasons;
            if !within_sla {
                reasons.push("opens after the SLA deadline: booking it needs an override".into());
            }
            SlotView {
                technician_id: o.technician_id,
                window: o.window,
                added_travel_minutes: o.added_travel_minutes,
                load: o.load,
                within_sla,
                reasons,
            }
        })
        .collect();
    // Stable: within the SLA first, the core's order otherwise.
    options.sort_by_key(|o| !o.within_sla);
    options.truncate(limit);
    Ok(SlotSuggestions {
        sla_deadline,
        options,
        left_out: found.left_out.into_iter().map(left_out_view).collect(),
    })
}

fn left_out_view(l: LeftOut) -> LeftOutView {
    LeftOutView {
        technician_id: l.technician_id,
        failed_rules: l
            .failed_rules
            .into_iter()
            .map(|(code, n)| (code.to_owned(), n))
            .collect(),
    }
}

/// The earliest arrival window, by the SLA `deadline`, that some technician may take for `job`
/// (for `SLA_WINDOW_EXCEEDED`'s details); `None` when none is found from today to the deadline's
/// date (at most [`MAX_SLOT_DAYS`] days).
pub(crate) async fn earliest_slot(
    tx: &mut TenantTx,
    job: &Job,
    deadline: DateTime<Utc>,
) -> Result<Option<SlotView>, StoreError> {
    let tz = load_organization(tx, false).await?.time_zone.tz();
    let today = tx.now().with_timezone(&tz).date_naive();
    let last = deadline.with_timezone(&tz).date_naive();
    if last < today {
        return Ok(None);
    }
    let days = u32::try_from((last - today).num_days() + 1)
        .unwrap_or(MAX_SLOT_DAYS)
        .min(MAX_SLOT_DAYS);
    let placeholder = TimeWindow::parse(tx.now(), tx.now() + Duration::hours(1))
        .map_err(|e| StoreError::Internal(e.message))?;
    let (_, v2, _) = super::job::load_full(tx, job.id, false).await?;
    let needs = needs_for_new_visit(tx, job, v2, placeholder).await?;
    let found = suggest(tx, &needs, Some(deadline), today, days, 1).await?;
    Ok(found.options.into_iter().find(|o| o.within_sla))
}

/// `dispatch/v1/board`'s question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoardQuery {
    /// The first local date (in the organization's zone).
    pub date: NaiveDate,
    /// How many days (1 to [`MAX_BOARD_DAYS`]).
    pub days: u32,
    /// Only technicians practising this trade, and visits and jobs of it.
    pub trade: Option<TradeCode>,
    /// Only these technicians (empty: all).
    pub technician_ids: Vec<TechnicianId>,
    /// Only visits in these states (empty: all).
    pub statuses: Vec<AppointmentStatus>,
    /// Only visits and jobs at properties with these postal codes (empty: all).
    pub postal_codes: Vec<PostalCode>,
    /// Technicians are paged, by id.
    pub page: PageRequest,
}

/// A stop on the board, with what a dispatcher needs of its job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BoardStop {
    /// The stop: visit, travel leg, projected arrival, flags.
    #[serde(flatten)]
    pub stop: Stop,
    /// The technician's role on it (`lead` or `helper`).
    pub role: String,
    /// The job's summary.
    pub summary: Summary,
    /// The job's trade.
    pub trade: TradeCode,
    /// The job's priority.
    pub priority: Priority,
}

/// A technician's load on a day.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DayLoad {
    /// Visits that day (cancelled ones not counted).
    pub visits: usize,
    /// The technician's daily capacity (jobs).
    pub capacity: u16,
    /// Minutes on site booked.
    pub booked_minutes: u32,
    /// Minutes of travel between the day's stops, where known.
    pub travel_minutes: u32,
}

/// One technician's local day.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BoardDay {
    /// The local date.
    pub date: NaiveDate,
    /// Shift spans that day (UTC).
    pub shifts: Vec<Span>,
    /// Time off overlapping that day (UTC).
    pub time_off: Vec<Span>,
    /// The day's stops in order.
    pub stops: Vec<BoardStop>,
    /// The load against capacity.
    pub load: DayLoad,
}

/// A span of time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    /// From.
    pub start: DateTime<Utc>,
    /// To.
    pub end: DateTime<Utc>,
}

/// A technician's row on the board.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BoardTechnician {
    /// Who.
    pub technician_id: TechnicianId,
    /// Their name.
    pub name: Name,
    /// Each day asked for.
    pub days: Vec<BoardDay>,
}

/// A job waiting for a visit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnassignedJob {
    /// The job.
    pub job_id: JobId,
    /// Its summary.
    pub summary: Summary,
    /// Its trade.
    pub trade: TradeCode,
    /// Its least skill level.
    pub min_skill_level: SkillLevel,
    /// Its priority.
    pub priority: Priority,
    /// Its SLA deadline.
    pub sla_deadline: DateTime<Utc>,
    /// Whether the SLA is breached.
    pub sla_breached: bool,
}

/// A visit in the days asked for with no lead technician.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnassignedVisit {
    /// The visit.
    pub visit: Visit,
    /// Its flags.
    pub flags: Flags,
    /// The job's summary.
    pub summary: Summary,
    /// The job's trade.
    pub trade: TradeCode,
    /// The job's priority.
    pub priority: Priority,
}

/// What waits for a technician.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Unassigned {
    /// Open jobs without a visit (`requested`), most urgent SLA first (at most
    /// [`UNASSIGNED_LIMIT`]).
    pub jobs: Vec<UnassignedJob>,
    /// Visits in the days asked for without a lead, by window.
    pub appointments: Vec<UnassignedVisit>,
}

/// `dispatch/v1/board`'s answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Board {
    /// The organization's zone.
    pub time_zone: String,
    /// The first instant covered.
    pub from: DateTime<Utc>,
    /// The instant after the last.
    pub to: DateTime<Utc>,
    /// The technicians of this page, by id.
    pub technicians: Vec<BoardTechnician>,
    /// What waits (on the first page only; empty on the next ones).
    pub unassigned: Unassigned,
    /// Pass as `cursor` for the next technicians.
    pub next_cursor: Option<String>,
}

/// One row of the board's visits query.
struct VisitRow {
    visit: Visit,
    technician: Option<TechnicianId>,
    role: Option<String>,
    summary: Summary,
    trade: TradeCode,
    priority: Priority,
    postal_code: String,
}

fn decode_visit_row(row: &Row) -> Result<VisitRow, StoreError> {
    let job_status = parse_stored(&row.get::<String>("job_status")?, JobStatus::parse)?;
    let held: Option<String> = row.get("held_from")?;
    let appointment_id = row
        .get::<Option<uuid::Uuid>>("appointment_id")?
        .map(AppointmentId::from_uuid);
    let window = TimeWindow::parse(row.get("window_start")?, row.get("window_end")?)
        .map_err(|_| StoreError::Internal("stored window is invalid".into()))?;
    let appointment_status = |raw: &str| {
        AppointmentStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| StoreError::Internal(format!("stored status {raw:?} is invalid")))
    };
    // A v2 row's held_from is the appointment's; a v1 row's is the job's.
    let (status, held_from) = match appointment_id {
        Some(_) => (
            appointment_status(&row.get::<String>("visit_status")?)?,
            held.as_deref().map(appointment_status).transpose()?,
        ),
        None => {
            let job_held = held
                .as_deref()
                .map(|h| parse_stored(h, JobStatus::parse))
                .transpose()?;
            match job_status {
                JobStatus::OnHold => (
                    AppointmentStatus::OnHold,
                    Some(visit_status_of_v1(
                        job_held.unwrap_or(JobStatus::Scheduled),
                        None,
                    )),
                ),
                _ => (visit_status_of_v1(job_status, None), None),
            }
        }
    };
    let minutes = match row.get::<Option<i64>>("estimated_minutes")? {
        Some(m) => u32::try_from(m).unwrap_or(60),
        None => u32::try_from((window.end() - window.start()).num_minutes())
            .unwrap_or(60)
            .clamp(1, 1_440),
    };
    let location = match (
        row.get::<Option<f64>>("lat")?,
        row.get::<Option<f64>>("lon")?,
    ) {
        (Some(lat), Some(lon)) => GeoPoint::parse(lat, lon).ok(),
        _ => None,
    };
    Ok(VisitRow {
        visit: Visit {
            appointment_id,
            job_id: JobId::from_uuid(row.get("job_id")?),
            status,
            held_from,
            window,
            planned_start: row.get("planned_start")?,
            estimated_minutes: minutes,
            location,
            job_status,
            sla_deadline: row.get("sla_deadline")?,
            sla_breached_at: row.get("sla_breached_at")?,
            job_reached: row
                .get::<Option<DateTime<Utc>>>("visit_started_at")?
                .is_some(),
        },
        technician: row
            .get::<Option<uuid::Uuid>>("technician_id")?
            .map(TechnicianId::from_uuid),
        role: row.get("role")?,
        summary: parse_stored(&row.get::<String>("summary")?, Summary::parse)?,
        trade: parse_stored(&row.get::<String>("trade")?, TradeCode::parse)?,
        priority: parse_stored(&row.get::<String>("priority")?, Priority::parse)?,
        postal_code: row.get("postal_code")?,
    })
}

/// Every visit (v1 bookings and v2 appointments, one row per crew member; v2 appointments with
/// no crew once) whose window meets `[from, to)`.
async fn visits_between(
    tx: &mut TenantTx,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<VisitRow>, StoreError> {
    let org = tx.org();
    let rows = tx
        .fetch_all(
            "SELECT NULL AS appointment_id, j.id AS job_id, j.technician_id, 'lead' AS role, j.status AS visit_status, \
             j.held_from, j.window_start, j.window_end, NULL AS planned_start, NULL AS estimated_minutes, \
             j.status AS job_status, j.trade, \
             j.priority, j.summary, j.sla_deadline, j.sla_breached_at, j.visit_started_at, p.lat, p.lon, p.postal_code \
             FROM jobs j JOIN properties p ON p.organization_id = j.organization_id AND p.id = j.property_id \
             WHERE j.organization_id = $1 AND j.lifecycle = 'v1' AND j.window_start IS NOT NULL \
             AND j.window_start < $3 AND j.window_end > $2 AND j.window_start > $4 \
             UNION ALL \
             SELECT a.id, a.job_id, c.technician_id, c.role, a.status, a.held_from, a.window_start, a.window_end, \
             a.planned_start, a.estimated_minutes, j.status, j.trade, j.priority, j.summary, j.sla_deadline, \
             j.sla_breached_at, \
             j.visit_started_at, p.lat, p.lon, p.postal_code \
             FROM appointments a JOIN jobs j ON j.organization_id = a.organization_id AND j.id = a.job_id \
             JOIN properties p ON p.organization_id = j.organization_id AND p.id = j.property_id \
             LEFT JOIN appointment_crew c ON c.organization_id = a.organization_id AND c.appointment_id = a.id \
             WHERE a.organization_id = $1 AND a.window_start < $3 AND a.window_end > $2 AND a.window_start > $4",
            args![org, from, to, from - Duration::days(7)],
        )
        .await?;
    rows.iter().map(decode_visit_row).collect()
}

impl Services {
    /// `dispatch/v1/getSettings`.
    pub async fn scheduling_settings(&self, caller: &Caller) -> Result<SettingsView, StoreError> {
        self.read(caller, |tx| Box::pin(load_settings(tx, false)))
            .await
    }

    /// `dispatch/v1/suggestSlots`.
    pub async fn suggest_slots(
        &self,
        caller: &Caller,
        query: SlotQuery,
    ) -> Result<SlotSuggestions, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let (needs, deadline) = subject_needs(tx, &query.subject).await?;
                let tz = load_organization(tx, false).await?.time_zone.tz();
                let first = query
                    .from
                    .unwrap_or_else(|| tx.now().with_timezone(&tz).date_naive());
                suggest(tx, &needs, deadline, first, query.days, query.limit).await
            })
        })
        .await
    }

    /// `dispatch/v1/board`.
    pub async fn dispatch_board(
        &self,
        caller: &Caller,
        q: BoardQuery,
    ) -> Result<Board, StoreError> {
        if !(1..=MAX_BOARD_DAYS).contains(&q.days) {
            return Err(Failure::new(
                FailureKind::Validation,
                "VALIDATION_FAILED",
                format!("days is between 1 and {MAX_BOARD_DAYS}"),
            )
            .into());
        }
        self.read(caller, move |tx| Box::pin(board(tx, q))).await
    }
}

async fn board(tx: &mut TenantTx, q: BoardQuery) -> Result<Board, StoreError> {
    let org = load_organization(tx, false).await?;
    let tz = org.time_zone.tz();
    let settings = load_settings(tx, false).await?.settings;
    let dates: Vec<NaiveDate> = (0..q.days)
        .map(|d| q.date + Duration::days(i64::from(d)))
        .collect();
    let (from, _) = day_bounds(tz, q.date);
    let (_, to) = day_bounds(tz, dates[dates.len() - 1]);
    let now = tx.now();
    let postal_ok =
        |code: &str| q.postal_codes.is_empty() || q.postal_codes.iter().any(|p| p.as_str() == code);
    let trade_ok = |trade: &TradeCode| q.trade.as_ref().is_none_or(|t| t == trade);
    let status_ok = |s: AppointmentStatus| q.statuses.is_empty() || q.statuses.contains(&s);

    // Technicians of this page: active, practising the trade, among those asked for, by id.
    let mut techs: Vec<TechnicianDetail> = load_details(tx, None, true)
        .await?
        .into_iter()
        .filter(|d| {
            q.page
                .after
                .is_none_or(|after| d.technician.id.as_uuid() > after)
        })
        .filter(|d| q.technician_ids.is_empty() || q.technician_ids.contains(&d.technician.id))
        .filter(|d| {
            q.trade.as_ref().is_none_or(|t| {
                d.technician.trades.contains(t) || d.profile.skills.iter().any(|s| &s.trade == t)
            })
        })
        .collect();
    let more = techs.len() > q.page.limit as usize;
    techs.truncate(q.page.limit as usize);
    let next_cursor = if more {
        techs
            .last()
            .map(|t| format!("c1.{}", t.technician.id.as_uuid().simple()))
    } else {
        None
    };

    let mut by_tech: HashMap<TechnicianId, Vec<VisitRow>> = HashMap::new();
    let mut unassigned_visits = Vec::new();
    for row in visits_between(tx, from, to).await? {
        if !trade_ok(&row.trade) || !postal_ok(&row.postal_code) || !status_ok(row.visit.status) {
            continue;
        }
        match (row.technician, row.role.as_deref()) {
            (Some(t), _) => by_tech.entry(t).or_default().push(row),
            (None, _) => unassigned_visits.push(row),
        }
    }
    // A v2 appointment with helpers but no lead is unassigned too (it cannot be dispatched).
    let mut leads: std::collections::HashSet<AppointmentId> = Default::default();
    for rows in by_tech.values() {
        for r in rows {
            if r.role.as_deref() == Some("lead")
                && let Some(id) = r.visit.appointment_id
            {
                leads.insert(id);
            }
        }
    }
    let mut lead_less: BTreeMap<AppointmentId, UnassignedVisit> = BTreeMap::new();
    for rows in by_tech.values() {
        for r in rows {
            if let Some(id) = r.visit.appointment_id
                && !leads.contains(&id)
            {
                lead_less
                    .entry(id)
                    .or_insert_with(|| unassigned_visit(r, now));
            }
        }
    }

    let mut technicians = Vec::with_capacity(techs.len());
    for detail in &techs {
        let id = detail.technician.id;
        let mine = by_tech.remove(&id).unwrap_or_default();
        let shifts: Vec<Interval> = shift_intervals(&detail.profile.shifts, tz, from, to);
        let mut days = Vec::with_capacity(dates.len());
        for date in &dates {
            let (day_start, day_end) = day_bounds(tz, *date);
            let day_shifts: Vec<Span> = shifts
                .iter()
                .filter(|(s, e)| *s < day_end && *e > day_start)
                .map(|&(start, end)| Span { start, end })
                .collect();
            let time_off: Vec<Span> = detail
                .profile
                .time_off
                .iter()
                .filter(|t| t.start() < day_end && t.end() > day_start)
                .map(|t| Span {
                    start: t.start(),
                    end: t.end(),
                })
                .collect();
            let todays: Vec<&VisitRow> = mine
                .iter()
                .filter(|r| r.visit.window.start().with_timezone(&tz).date_naive() == *date)
                .collect();
            let start = day_shifts.first().map_or(day_start, |s| s.start);
            let stops = core_board::plan_day(
                detail.profile.home_base,
                todays.iter().map(|r| r.visit.clone()).collect(),
                &settings.travel,
                start,
                now,
            );
            let mut board_stops = Vec::with_capacity(stops.len());
            let mut load = DayLoad {
                visits: 0,
                capacity: detail.profile.daily_capacity.get(),
                booked_minutes: 0,
                travel_minutes: 0,
            };
            for stop in stops {
                let row = todays
                    .iter()
                    .find(|r| {
                        r.visit.job_id == stop.visit.job_id
                            && r.visit.appointment_id == stop.visit.appointment_id
                    })
                    .ok_or_else(|| StoreError::Internal("a stop without its row".into()))?;
                if stop.visit.status != AppointmentStatus::Cancelled {
                    load.visits += 1;
                    load.booked_minutes += stop.visit.estimated_minutes;
                    load.travel_minutes += stop.leg.map_or(0, |l| l.minutes);
                }
                board_stops.push(BoardStop {
                    role: row.role.clone().unwrap_or_else(|| "lead".into()),
                    summary: row.summary.clone(),
                    trade: row.trade.clone(),
                    priority: row.priority,
                    stop,
                });
            }
            days.push(BoardDay {
                date: *date,
                shifts: day_shifts,
                time_off,
                stops: board_stops,
                load,
            });
        }
        technicians.push(BoardTechnician {
            technician_id: id,
            name: detail.technician.name.clone(),
            days,
        });
    }

    // The queue, on the first page only.
    let unassigned = if q.page.after.is_none() {
        let mut appointments: Vec<UnassignedVisit> = unassigned_visits
            .iter()
            .map(|r| unassigned_visit(r, now))
            .chain(lead_less.into_values())
            .filter(|u| !u.visit.status.is_final())
            .collect();
        appointments.sort_by_key(|u| (u.visit.window.start(), u.visit.appointment_id));
        // A lead-less visit with several helpers came once per helper: keep one (v1 rows, with
        // no appointment id, are each their own).
        appointments.dedup_by(|a, b| {
            a.visit.appointment_id.is_some() && a.visit.appointment_id == b.visit.appointment_id
        });
        Unassigned {
            jobs: unassigned_jobs(tx, &q, now).await?,
            appointments,
        }
    } else {
        Unassigned {
            jobs: Vec::new(),
            appointments: Vec::new(),
        }
    };
    Ok(Board {
        time_zone: org.time_zone.name().to_owned(),
        from,
        to,
        technicians,
        unassigned,
        next_cursor,
    })
}

fn unassigned_visit(r: &VisitRow, now: DateTime<Utc>) -> UnassignedVisit {
    UnassignedVisit {
        flags: core_board::flags_at(&r.visit, None, now),
        visit: r.visit.clone(),
        summary: r.summary.clone(),
        trade: r.trade.clone(),
        priority: r.priority,
    }
}

async fn unassigned_jobs(
    tx: &mut TenantTx,
    q: &BoardQuery,
    now: DateTime<Utc>,
) -> Result<Vec<UnassignedJob>, StoreError> {
    let org = tx.org();
    let rows = tx
        .fetch_all(
            "SELECT j.id, j.summary, j.trade, j.min_skill_level, j.priority, j.sla_deadline, j.sla_breached_at, \
             j.visit_started_at, p.postal_code FROM jobs j \
             JOIN properties p ON p.organization_id = j.organization_id AND p.id = j.property_id \
             WHERE j.organization_id = $1 AND j.status = 'requested' AND ($2 IS NULL OR j.trade = $2) \
             ORDER BY j.sla_deadline, j.id LIMIT $3",
            args![
                org,
                q.trade.as_ref().map(|t| t.as_str().to_owned()),
                UNASSIGNED_LIMIT
            ],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let postal: String = r.get("postal_code")?;
        if !q.postal_codes.is_empty() && !q.postal_codes.iter().any(|p| p.as_str() == postal) {
            continue;
        }
        let deadline: DateTime<Utc> = r.get("sla_deadline")?;
        let breached: Option<DateTime<Utc>> = r.get("sla_breached_at")?;
        let reached: Option<DateTime<Utc>> = r.get("visit_started_at")?;
        out.push(UnassignedJob {
            job_id: JobId::from_uuid(r.get("id")?),
            summary: parse_stored(&r.get::<String>("summary")?, Summary::parse)?,
            trade: parse_stored(&r.get::<String>("trade")?, TradeCode::parse)?,
            min_skill_level: u8::try_from(r.get::<i64>("min_skill_level")?)
                .ok()
                .and_then(|l| SkillLevel::parse(l).ok())
                .ok_or_else(|| StoreError::Internal("stored skill level is invalid".into()))?,
            priority: parse_stored(&r.get::<String>("priority")?, Priority::parse)?,
            sla_deadline: deadline,
            sla_breached: breached.is_some() || (reached.is_none() && deadline <= now),
        });
    }
    Ok(out)
}
