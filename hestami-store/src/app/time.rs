//! Time tracking (`technician/v1/punch`, `timesheet`, `submitTimesheet`, `approveTimesheet`,
//! `setOvertimeRule`): the arithmetic is `hestami_core::timesheet`; this keeps the punches, each
//! week's state and what was done to it.
//!
//! A week's timesheet is `open` until the technician (or the office) submits it, then
//! `submitted` until an owner or admin approves it. A punch into a submitted week reopens it; a
//! punch into an approved week needs a reason, reopens it, and the reason is recorded with who
//! and when (`timesheet_events`): an approved timesheet never changes silently.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use hestami_core::field::DeviceReport;
use hestami_core::ids::{TechnicianId, UserId};
use hestami_core::text::Reason;
use hestami_core::timesheet::{
    self as core_time, ClockState, DayTime, OvertimeRule, Punch, PunchKind,
};

use super::{Caller, Command, Services, Subject, check_version};
use crate::db::{Row, args};
use crate::directory::{load_organization, parse_stored};
use crate::engine::WorkflowCtx;
use crate::error::{Failure, FailureKind, StoreError};
use crate::store::{Operation, TenantTx, new_id};

/// The time-tracking commands (workflow `technician_v1`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "procedure", content = "input")]
pub enum TimeCommand {
    /// `technician/v1/punch`.
    #[serde(rename = "technician/v1/punch")]
    Punch {
        /// Whose clock.
        technician_id: TechnicianId,
        /// Which punch.
        kind: PunchKind,
        /// When (by the device's clock) and where; the server's time without it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<DeviceReport>,
        /// Why, for a punch into an approved week (required there).
        reason: Option<Reason>,
    },
    /// `technician/v1/submitTimesheet`.
    #[serde(rename = "technician/v1/submitTimesheet")]
    Submit {
        /// Whose.
        technician_id: TechnicianId,
        /// The week's Monday (any date of the week is taken to its Monday).
        week: NaiveDate,
        /// Refuse with `VERSION_CONFLICT` unless the timesheet is at this version.
        expected_version: Option<i64>,
    },
    /// `technician/v1/approveTimesheet`.
    #[serde(rename = "technician/v1/approveTimesheet")]
    Approve {
        /// Whose.
        technician_id: TechnicianId,
        /// The week.
        week: NaiveDate,
        /// Refuse with `VERSION_CONFLICT` unless the timesheet is at this version.
        expected_version: Option<i64>,
    },
    /// `technician/v1/setOvertimeRule`.
    #[serde(rename = "technician/v1/setOvertimeRule")]
    SetOvertimeRule {
        /// The rule.
        rule: OvertimeRule,
    },
}

impl Command for TimeCommand {
    const WORKFLOW: &'static str = super::technician::WORKFLOW;
    fn procedure(&self) -> &'static str {
        match self {
            Self::Punch { .. } => "technician/v1/punch",
            Self::Submit { .. } => "technician/v1/submitTimesheet",
            Self::Approve { .. } => "technician/v1/approveTimesheet",
            Self::SetOvertimeRule { .. } => "technician/v1/setOvertimeRule",
        }
    }
    fn subject(&self) -> Option<Subject> {
        match self {
            Self::Punch { technician_id, .. }
            | Self::Submit { technician_id, .. }
            | Self::Approve { technician_id, .. } => Some(Subject::Technician(*technician_id)),
            Self::SetOvertimeRule { .. } => None,
        }
    }
}

/// A recorded punch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedPunch {
    /// What.
    pub kind: PunchKind,
    /// When it counts (the device's time, unless that was ahead of the server's).
    pub at: DateTime<Utc>,
    /// What the device said, if it said.
    pub device: Option<DeviceReport>,
    /// When the server received it.
    pub received_at: DateTime<Utc>,
    /// Who recorded it.
    pub actor: Option<UserId>,
    /// Why, for a punch into an approved week.
    pub reason: Option<Reason>,
}

/// Something done to a timesheet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimesheetEvent {
    /// `submitted`, `approved` or `reopened`.
    pub kind: String,
    /// Why (a punch into an approved week).
    pub reason: Option<Reason>,
    /// Who.
    pub actor: Option<UserId>,
    /// When.
    pub at: DateTime<Utc>,
}

/// One day of a timesheet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimesheetDay {
    /// The local date.
    pub date: NaiveDate,
    /// Its minutes.
    #[serde(flatten)]
    pub time: DayTime,
}

/// A technician's week.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Timesheet {
    /// Whose.
    pub technician_id: TechnicianId,
    /// The week's Monday.
    pub week: NaiveDate,
    /// `open`, `submitted` or `approved`.
    pub status: String,
    /// Its version (0 before anything was done to it).
    pub version: i64,
    /// The rule the split follows.
    pub rule: OvertimeRule,
    /// Monday to Sunday.
    pub days: Vec<TimesheetDay>,
    /// The week's sums.
    pub total: DayTime,
    /// Where the clock stands now.
    pub clock: ClockState,
    /// The week's punches in time order.
    pub punches: Vec<RecordedPunch>,
    /// What was done to it.
    pub events: Vec<TimesheetEvent>,
    /// The week's visits (those it first set off to or arrived at in the week), each with its
    /// travel and on-site time, read off the visit's moves. (Absent from outcomes recorded
    /// before it existed.)
    #[serde(default)]
    pub visits: Vec<VisitTime>,
}

/// One visit's time in a timesheet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VisitTime {
    /// The visit.
    pub appointment_id: hestami_core::ids::AppointmentId,
    /// Its job.
    pub job_id: hestami_core::ids::JobId,
    /// The local date it started (its first move to en route or on site).
    pub date: NaiveDate,
    /// Minutes en route and on site.
    #[serde(flatten)]
    pub minutes: core_time::VisitMinutes,
}

/// How long after a move it may reach the server (a phone offline for days); a device time
/// further back than this is taken for a wrong clock.
const OFFLINE_BOUND: chrono::Duration = chrono::Duration::days(7);

/// The visits of `technician`'s crews that started in `[from, to)`, with their travel and
/// on-site minutes. A move's time is the device's when it reported one (and its clock was not
/// ahead), the server's otherwise: a move recorded offline counts when it was made.
async fn visit_times(
    tx: &mut TenantTx,
    technician: TechnicianId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    tz: chrono_tz::Tz,
) -> Result<Vec<VisitTime>, StoreError> {
    use hestami_core::appointment::AppointmentStatus;
    use hestami_core::ids::{AppointmentId, JobId};
    let org = tx.org();
    // The crew's visits with a move recorded around the week (moves reach the server after
    // they were made, offline, by up to `OFFLINE_BOUND`), then every move of each: a visit
    // that spans a week's edge is measured whole, and counted in the week it started.
    let rows = tx
        .fetch_all(
            "SELECT appointment_id, job_id, data, at FROM schedule_events WHERE organization_id = $1 \
             AND kind = 'appointment_changed' AND appointment_id IN \
             (SELECT e.appointment_id FROM schedule_events e JOIN appointment_crew c \
             ON c.organization_id = e.organization_id AND c.appointment_id = e.appointment_id \
             WHERE e.organization_id = $1 AND c.technician_id = $2 \
             AND e.kind = 'appointment_changed' AND e.at >= $3 AND e.at < $4) ORDER BY at, id",
            args![
                org,
                technician.as_uuid(),
                from - chrono::Duration::days(1),
                to + OFFLINE_BOUND
            ],
        )
        .await?;
    // Each visit's moves: (visit, job) → (when, the state entered).
    type Moves = Vec<(DateTime<Utc>, AppointmentStatus)>;
    let mut moves: std::collections::BTreeMap<(uuid::Uuid, uuid::Uuid), Moves> =
        std::collections::BTreeMap::new();
    for row in &rows {
        let data: serde_json::Value = serde_json::from_str(&row.get::<String>("data")?)?;
        if data.get("kind").and_then(|k| k.as_str()) != Some("moved") {
            continue;
        }
        let Some(to_state) = data
            .get("to")
            .cloned()
            .and_then(|t| serde_json::from_value::<AppointmentStatus>(t).ok())
        else {
            continue;
        };
        let at: DateTime<Utc> = row.get("at")?;
        // The device's time, unless its clock was ahead, or behind by more than a device stays
        // offline (a reset clock): then the server's.
        let when = data
            .get("device")
            .cloned()
            .and_then(|d| serde_json::from_value::<hestami_core::field::DeviceReport>(d).ok())
            .map(|d| hestami_core::field::effective_time(d.device_time, at).0)
            .filter(|t| *t >= at - OFFLINE_BOUND)
            .unwrap_or(at);
        let Some(visit) = row.get::<Option<uuid::Uuid>>("appointment_id")? else {
            continue;
        };
        moves
            .entry((visit, row.get("job_id")?))
            .or_default()
            .push((when, to_state));
    }
    let mut visits = Vec::new();
    for ((visit, job), moves) in moves {
        let started = moves
            .iter()
            .filter(|(_, s)| matches!(s, AppointmentStatus::EnRoute | AppointmentStatus::OnSite))
            .map(|(at, _)| *at)
            .min();
        let Some(started) = started.filter(|s| *s >= from && *s < to) else {
            continue;
        };
        visits.push(VisitTime {
            appointment_id: AppointmentId::from_uuid(visit),
            job_id: JobId::from_uuid(job),
            date: started.with_timezone(&tz).date_naive(),
            minutes: core_time::visit_minutes(&moves),
        });
    }
    visits.sort_by_key(|v| (v.date, v.appointment_id));
    Ok(visits)
}

/// What a punch answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Punched {
    /// The punch.
    pub punch: RecordedPunch,
    /// Where the clock stands after it.
    pub clock: ClockState,
    /// The week it counts in.
    pub week: NaiveDate,
    /// That week's timesheet status after it.
    pub timesheet_status: String,
}

fn decode_punch(row: &Row) -> Result<RecordedPunch, StoreError> {
    Ok(RecordedPunch {
        kind: parse_stored(&row.get::<String>("kind")?, PunchKind::parse)?,
        at: row.get("at")?,
        device: row
            .get::<Option<String>>("device")?
            .map(|d| serde_json::from_str(&d))
            .transpose()?,
        received_at: row.get("received_at")?,
        actor: row
            .get::<Option<uuid::Uuid>>("actor_user_id")?
            .map(UserId::from_uuid),
        reason: row
            .get::<Option<String>>("reason")?
            .map(|r| parse_stored(&r, Reason::parse))
            .transpose()?,
    })
}

const PUNCH_COLUMNS: &str = "kind, at, device, received_at, actor_user_id, reason";

async fn last_punch(
    tx: &mut TenantTx,
    technician: TechnicianId,
) -> Result<Option<RecordedPunch>, StoreError> {
    let org = tx.org();
    tx.fetch_optional(
        &format!(
            "SELECT {PUNCH_COLUMNS} FROM time_punches WHERE organization_id = $1 \
             AND technician_id = $2 ORDER BY at DESC, received_at DESC, id DESC LIMIT 1"
        ),
        args![org, technician.as_uuid()],
    )
    .await?
    .as_ref()
    .map(decode_punch)
    .transpose()
}

/// The state the clock is in after `last`.
fn clock_after(last: Option<&RecordedPunch>) -> ClockState {
    match last.map(|p| p.kind) {
        None | Some(PunchKind::ClockOut) => ClockState::Off,
        Some(PunchKind::ClockIn | PunchKind::BreakEnd) => ClockState::On,
        Some(PunchKind::BreakStart) => ClockState::OnBreak,
    }
}

/// The week's status and version (`open`, 0 when nothing was done to it), locked when asked.
async fn sheet_state(
    tx: &mut TenantTx,
    technician: TechnicianId,
    week: NaiveDate,
    lock: bool,
) -> Result<(String, i64), StoreError> {
    let org = tx.org();
    let sql = format!(
        "SELECT status, version FROM timesheets WHERE organization_id = $1 AND technician_id = $2 \
         AND week = $3{}",
        if lock { tx.for_update() } else { "" }
    );
    Ok(
        match tx
            .fetch_optional(&sql, args![org, technician.as_uuid(), week])
            .await?
        {
            Some(row) => (row.get("status")?, row.get("version")?),
            None => ("open".to_owned(), 0),
        },
    )
}

/// Moves a week's timesheet to `status`, recording the event.
async fn set_sheet(
    tx: &mut TenantTx,
    technician: TechnicianId,
    week: NaiveDate,
    status: &str,
    event: &str,
    reason: Option<&Reason>,
) -> Result<i64, StoreError> {
    let (org, now, actor) = (tx.org(), tx.now(), tx.actor());
    let row = tx
        .fetch_one(
            "INSERT INTO timesheets (organization_id, technician_id, week, version, status, updated_at) \
             VALUES ($1, $2, $3, 1, $4, $5) ON CONFLICT (organization_id, technician_id, week) \
             DO UPDATE SET version = timesheets.version + 1, status = excluded.status, \
             updated_at = excluded.updated_at RETURNING version",
            args![org, technician.as_uuid(), week, status, now],
        )
        .await?;
    let version: i64 = row.get("version")?;
    tx.execute(
        "INSERT INTO timesheet_events (organization_id, id, technician_id, week, kind, reason, \
         actor_user_id, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        args![
            org,
            new_id(),
            technician.as_uuid(),
            week,
            event,
            reason.map(Reason::as_str),
            actor.map(|a| a.as_uuid()),
            now
        ],
    )
    .await?;
    // A timesheet has no id of its own: the feed names it by one derived from its key.
    let key = {
        use sha2::Digest as _;
        let digest = sha2::Sha256::new()
            .chain_update(technician.as_uuid().as_bytes())
            .chain_update(week.format("%Y-%m-%d").to_string().as_bytes())
            .finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Uuid::new_v8(bytes)
    };
    tx.record_change("timesheet", key, version, Operation::Updated)
        .await?;
    Ok(version)
}

async fn zone(tx: &mut TenantTx) -> Result<chrono_tz::Tz, StoreError> {
    Ok(load_organization(tx, false).await?.time_zone.tz())
}

async fn punch(
    tx: &mut TenantTx,
    technician: TechnicianId,
    kind: PunchKind,
    device: Option<DeviceReport>,
    reason: Option<Reason>,
) -> Result<Punched, StoreError> {
    let (org, now, actor) = (tx.org(), tx.now(), tx.actor());
    // One technician's punches are serialized on their row.
    super::technician::load(tx, technician, true).await?;
    let at = device.map_or(now, |d| {
        hestami_core::field::effective_time(d.device_time, now).0
    });
    let last = last_punch(tx, technician).await?;
    let state = core_time::next_state(clock_after(last.as_ref()), kind).map_err(|e| {
        Failure::new(FailureKind::Conflict, "PUNCH_NOT_ALLOWED", e.message)
            .with_details(serde_json::json!({ "reason": e.code }))
    })?;
    if let Some(last) = &last
        && at < last.at
    {
        return Err(Failure::new(
            FailureKind::Conflict,
            "PUNCH_OUT_OF_ORDER",
            "a punch cannot be earlier than the technician's last one",
        )
        .with_details(serde_json::json!({ "lastPunchAt": last.at }))
        .into());
    }
    let week = core_time::week_of(at.with_timezone(&zone(tx).await?).date_naive());
    let (status, _) = sheet_state(tx, technician, week, true).await?;
    let status = match status.as_str() {
        "approved" => {
            let Some(reason) = &reason else {
                return Err(Failure::new(
                    FailureKind::Conflict,
                    "TIMESHEET_APPROVED",
                    "the week's timesheet is approved: a punch into it needs a reason",
                )
                .into());
            };
            set_sheet(tx, technician, week, "open", "reopened", Some(reason)).await?;
            "open".to_owned()
        }
        "submitted" => {
            set_sheet(tx, technician, week, "open", "reopened", reason.as_ref()).await?;
            "open".to_owned()
        }
        other => other.to_owned(),
    };
    let recorded = RecordedPunch {
        kind,
        at,
        device,
        received_at: now,
        actor,
        reason,
    };
    tx.execute(
        "INSERT INTO time_punches (organization_id, id, technician_id, kind, at, device, received_at, \
         actor_user_id, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        args![
            org,
            new_id(),
            technician.as_uuid(),
            kind.as_str(),
            at,
            device.map(|d| serde_json::to_string(&d)).transpose()?,
            now,
            actor.map(|a| a.as_uuid()),
            recorded.reason.as_ref().map(Reason::as_str)
        ],
    )
    .await?;
    if let Some(fix) = device.and_then(|d| d.location) {
        super::field::record_position(tx, technician, at, fix, "move").await?;
    }
    Ok(Punched {
        punch: recorded,
        clock: state,
        week,
        timesheet_status: status,
    })
}

async fn rule_of(tx: &mut TenantTx) -> Result<OvertimeRule, StoreError> {
    let org = tx.org();
    Ok(
        match tx
            .fetch_optional(
                "SELECT daily_minutes, weekly_minutes FROM overtime_rules WHERE organization_id = $1",
                args![org],
            )
            .await?
        {
            Some(row) => OvertimeRule {
                daily_minutes: row.get("daily_minutes")?,
                weekly_minutes: row.get("weekly_minutes")?,
            },
            None => OvertimeRule::default(),
        },
    )
}

/// A technician's week as it stands.
pub(crate) async fn timesheet(
    tx: &mut TenantTx,
    technician: TechnicianId,
    week: NaiveDate,
) -> Result<Timesheet, StoreError> {
    let org = tx.org();
    super::technician::load(tx, technician, false).await?;
    let tz = zone(tx).await?;
    let monday = core_time::week_of(week);
    let (from, to) = (
        core_time::day_start(monday, tz),
        core_time::day_start(monday + chrono::Duration::days(7), tz),
    );
    let rule = rule_of(tx).await?;
    // The punch before the week tells whether it starts on the clock.
    let before = tx
        .fetch_optional(
            &format!(
                "SELECT {PUNCH_COLUMNS} FROM time_punches WHERE organization_id = $1 \
                 AND technician_id = $2 AND at < $3 ORDER BY at DESC, received_at DESC, id DESC LIMIT 1"
            ),
            args![org, technician.as_uuid(), from],
        )
        .await?
        .as_ref()
        .map(decode_punch)
        .transpose()?;
    let punches: Vec<RecordedPunch> = tx
        .fetch_all(
            &format!(
                "SELECT {PUNCH_COLUMNS} FROM time_punches WHERE organization_id = $1 \
                 AND technician_id = $2 AND at >= $3 AND at < $4 ORDER BY at, received_at, id"
            ),
            args![org, technician.as_uuid(), from, to],
        )
        .await?
        .iter()
        .map(decode_punch)
        .collect::<Result<_, _>>()?;
    // Carry the clock into the week as if punched at its start.
    let mut timeline: Vec<Punch> = Vec::new();
    let carried = clock_after(before.as_ref());
    if carried != ClockState::Off {
        timeline.push(Punch {
            kind: PunchKind::ClockIn,
            at: from,
        });
    }
    if carried == ClockState::OnBreak {
        timeline.push(Punch {
            kind: PunchKind::BreakStart,
            at: from,
        });
    }
    timeline.extend(punches.iter().map(|p| Punch {
        kind: p.kind,
        at: p.at,
    }));
    let until = tx.now().min(to);
    let split = core_time::split_week(core_time::worked_by_day(&timeline, monday, tz, until), rule);
    let mut total = DayTime::default();
    for d in &split {
        total.worked += d.worked;
        total.breaks += d.breaks;
        total.regular += d.regular;
        total.overtime += d.overtime;
    }
    let (status, version) = sheet_state(tx, technician, monday, false).await?;
    let events = tx
        .fetch_all(
            "SELECT kind, reason, actor_user_id, at FROM timesheet_events WHERE organization_id = $1 \
             AND technician_id = $2 AND week = $3 ORDER BY at, id",
            args![org, technician.as_uuid(), monday],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(TimesheetEvent {
                kind: r.get("kind")?,
                reason: r
                    .get::<Option<String>>("reason")?
                    .map(|x| parse_stored(&x, Reason::parse))
                    .transpose()?,
                actor: r
                    .get::<Option<uuid::Uuid>>("actor_user_id")?
                    .map(UserId::from_uuid),
                at: r.get("at")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let clock = clock_after(last_punch(tx, technician).await?.as_ref());
    let visits = visit_times(tx, technician, from, to, tz).await?;
    Ok(Timesheet {
        technician_id: technician,
        week: monday,
        status,
        version,
        rule,
        days: split
            .iter()
            .enumerate()
            .map(|(n, time)| TimesheetDay {
                date: monday + chrono::Duration::days(n as i64),
                time: *time,
            })
            .collect(),
        total,
        clock,
        punches,
        events,
        visits,
    })
}

pub(crate) async fn run(
    mut ctx: WorkflowCtx,
    command: TimeCommand,
) -> Result<serde_json::Value, StoreError> {
    Ok(match command {
        TimeCommand::Punch {
            technician_id,
            kind,
            device,
            reason,
        } => serde_json::to_value(
            ctx.step("punch", move |tx| {
                Box::pin(punch(tx, technician_id, kind, device, reason))
            })
            .await?,
        )?,
        TimeCommand::Submit {
            technician_id,
            week,
            expected_version,
        } => serde_json::to_value(
            ctx.step("submit_timesheet", move |tx| {
                Box::pin(async move {
                    let monday = core_time::week_of(week);
                    super::technician::load(tx, technician_id, true).await?;
                    let (status, version) = sheet_state(tx, technician_id, monday, true).await?;
                    check_version("timesheet", expected_version, version)?;
                    if status != "open" {
                        return Err(Failure::new(
                            FailureKind::Conflict,
                            "TIMESHEET_NOT_OPEN",
                            format!("the timesheet is {status}"),
                        )
                        .into());
                    }
                    set_sheet(tx, technician_id, monday, "submitted", "submitted", None).await?;
                    timesheet(tx, technician_id, monday).await
                })
            })
            .await?,
        )?,
        TimeCommand::Approve {
            technician_id,
            week,
            expected_version,
        } => serde_json::to_value(
            ctx.step("approve_timesheet", move |tx| {
                Box::pin(async move {
                    let monday = core_time::week_of(week);
                    super::technician::load(tx, technician_id, true).await?;
                    let (status, version) = sheet_state(tx, technician_id, monday, true).await?;
                    check_version("timesheet", expected_version, version)?;
                    if status != "submitted" {
                        return Err(Failure::new(
                            FailureKind::Conflict,
                            "TIMESHEET_NOT_SUBMITTED",
                            format!("only a submitted timesheet is approved; this one is {status}"),
                        )
                        .into());
                    }
                    set_sheet(tx, technician_id, monday, "approved", "approved", None).await?;
                    timesheet(tx, technician_id, monday).await
                })
            })
            .await?,
        )?,
        TimeCommand::SetOvertimeRule { rule } => serde_json::to_value(
            ctx.step("set_overtime_rule", move |tx| {
                Box::pin(async move {
                    let (org, now) = (tx.org(), tx.now());
                    let row = tx
                        .fetch_one(
                            "INSERT INTO overtime_rules (organization_id, version, daily_minutes, \
                             weekly_minutes, updated_at) VALUES ($1, 1, $2, $3, $4) \
                             ON CONFLICT (organization_id) DO UPDATE SET version = overtime_rules.version + 1, \
                             daily_minutes = excluded.daily_minutes, weekly_minutes = excluded.weekly_minutes, \
                             updated_at = excluded.updated_at RETURNING version",
                            args![org, rule.daily_minutes, rule.weekly_minutes, now],
                        )
                        .await?;
                    let version: i64 = row.get("version")?;
                    tx.record_change("overtime_rule", org, version, Operation::Updated)
                        .await?;
                    Ok(rule)
                })
            })
            .await?,
        )?,
    })
}

impl Services {
    /// `technician/v1/timesheet`: a technician's own week, or the one the office names.
    pub async fn technician_timesheet(
        &self,
        caller: &Caller,
        technician_id: Option<TechnicianId>,
        week: Option<NaiveDate>,
    ) -> Result<Timesheet, StoreError> {
        let technician = super::field::whose(caller, technician_id)?;
        self.read(caller, move |tx| {
            Box::pin(async move {
                let week = match week {
                    Some(w) => w,
                    None => tx.now().with_timezone(&zone(tx).await?).date_naive(),
                };
                timesheet(tx, technician, week).await
            })
        })
        .await
    }
}
