//! Jobs with appointments and crews (`job/v2`, workflow `job_lifecycle_v2`), and the timers that
//! watch them: the job's SLA deadline and each appointment's window.
//!
//! An appointment's changes are decided by `hestami_core::appointment`; the job then follows its
//! appointments ([`hestami_core::appointment::followed_status`]) in the same transaction. A job
//! becomes a v2 job with its first `job/v2` appointment: a window and technician it had from
//! `job/v1/schedule` and `dispatch/v1/assignTech` become its first appointment, and from then on
//! the v1 moves that an appointment now owns (schedule, assign, the field states, completion)
//! are refused with `409 JOB_USES_APPOINTMENTS`; hold, resume, cancel and everything after
//! completion stay v1's. The job row keeps a summary of its current visit (window, lead) so that
//! v1 readers still see where it stands.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use hestami_core::appointment::{
    self as core_appointment, Appointment, AppointmentChange, AppointmentCommand, AppointmentError,
    AppointmentStatus, CompletionRefusal,
};
use hestami_core::dispatch::board::visit_status_of_v1;
use hestami_core::eligibility::{self, FailedRule};
use hestami_core::ids::{AppointmentId, JobId, TechnicianId};
use hestami_core::job::{Job, JobCommand, JobEvent, JobStatus, TimeWindow};
use hestami_core::org::Role;
use hestami_core::text::Reason;

use super::job::load_full;
use super::{Caller, Command, Services, check_version};
use crate::db::{Row, args};
use crate::directory::parse_stored;
use crate::engine::WorkflowCtx;
use crate::error::{Failure, FailureKind, StoreError};
use crate::store::{Operation, TenantTx, new_id};

/// The workflow of a job with appointments.
pub const WORKFLOW: &str = "job_lifecycle_v2";
/// Timer names for a job's SLA deadline: `job_sla/<job id>`.
pub const SLA_TIMER_PREFIX: &str = "job_sla/";
/// Timer names for an appointment's window end: `appointment_window/<appointment id>`.
pub const WINDOW_TIMER_PREFIX: &str = "appointment_window/";

/// A crew member's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrewRole {
    /// Leads the visit.
    Lead,
    /// Helps.
    Helper,
}

impl CrewRole {
    fn as_str(self) -> &'static str {
        match self {
            Self::Lead => "lead",
            Self::Helper => "helper",
        }
    }
}

/// `job/v2/addAppointment`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddAppointment {
    /// Which job.
    pub job_id: JobId,
    /// When the crew is expected.
    pub window: TimeWindow,
    /// Minutes on site (default: the window's length, at most 1,440).
    pub estimated_minutes: Option<u32>,
    /// Who leads it.
    pub lead: Option<TechnicianId>,
    /// Who helps.
    pub helpers: Vec<TechnicianId>,
    /// Book a first visit after the SLA deadline anyway, for this reason (dispatcher and above).
    pub sla_override: Option<Reason>,
    /// When the crew is planned to start, inside the window.
    #[serde(default)]
    pub planned_start: Option<DateTime<Utc>>,
    /// Fail with `VERSION_CONFLICT` unless the job is at this version.
    pub expected_version: Option<i64>,
}

/// `job/v2/rescheduleAppointment`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RescheduleAppointment {
    /// Which appointment.
    pub appointment_id: AppointmentId,
    /// The new window.
    pub window: TimeWindow,
    /// As for `addAppointment`.
    pub sla_override: Option<Reason>,
    /// When the crew is planned to start, inside the new window (a reschedule clears the plan
    /// otherwise).
    #[serde(default)]
    pub planned_start: Option<DateTime<Utc>>,
    /// Fail with `VERSION_CONFLICT` unless the appointment is at this version.
    pub expected_version: Option<i64>,
}

/// `job/v2/cancelAppointment`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelAppointment {
    /// Which appointment.
    pub appointment_id: AppointmentId,
    /// Why.
    pub reason: Reason,
    /// Fail with `VERSION_CONFLICT` unless the appointment is at this version.
    pub expected_version: Option<i64>,
}

/// `job/v2/assignTechnician`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignTechnician {
    /// Which appointment.
    pub appointment_id: AppointmentId,
    /// Who.
    pub technician_id: TechnicianId,
    /// As lead (replacing the lead) or helper.
    pub role: CrewRole,
    /// Fail with `VERSION_CONFLICT` unless the appointment is at this version.
    pub expected_version: Option<i64>,
}

/// `job/v2/unassignTechnician`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnassignTechnician {
    /// Which appointment.
    pub appointment_id: AppointmentId,
    /// Who.
    pub technician_id: TechnicianId,
    /// Fail with `VERSION_CONFLICT` unless the appointment is at this version.
    pub expected_version: Option<i64>,
}

/// A field move of an appointment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldMove {
    /// scheduled → dispatched (every crew member is checked again).
    Dispatch,
    /// dispatched → en_route.
    StartTravel,
    /// en_route → on_site.
    Arrive,
    /// on_site → done.
    Finish,
    /// dispatched|en_route → scheduled.
    Recall,
    /// → on_hold (needs a reason).
    Hold,
    /// on_hold → the state it was held in.
    Resume,
}

/// `job/v2/moveAppointment`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MoveAppointment {
    /// Which appointment.
    pub appointment_id: AppointmentId,
    /// The move.
    pub action: FieldMove,
    /// Why (required to hold).
    pub reason: Option<Reason>,
    /// Fail with `VERSION_CONFLICT` unless the appointment is at this version.
    pub expected_version: Option<i64>,
    /// When (by the device's clock) and where the technician made the move; recorded with its
    /// event beside the server's time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<hestami_core::field::DeviceReport>,
}

/// `job/v2/complete`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompleteJob {
    /// Which job.
    pub job_id: JobId,
    /// Fail with `VERSION_CONFLICT` unless the job is at this version.
    pub expected_version: Option<i64>,
    /// The customer's signature on completion, attached to the job in the same step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<super::attachments::NewAttachment>,
}

/// The SLA timer's check (not a public procedure).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckSla {
    /// Which job.
    pub job_id: JobId,
}

/// The window timer's check (not a public procedure).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckWindow {
    /// Which appointment.
    pub appointment_id: AppointmentId,
    /// The window end the timer was set for.
    pub window_end: DateTime<Utc>,
}

/// The `job/v2` procedures and the timers' checks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "procedure", content = "input")]
pub enum JobV2Command {
    /// `job/v2/addAppointment`.
    #[serde(rename = "job/v2/addAppointment")]
    AddAppointment(AddAppointment),
    /// `job/v2/rescheduleAppointment`.
    #[serde(rename = "job/v2/rescheduleAppointment")]
    RescheduleAppointment(RescheduleAppointment),
    /// `job/v2/cancelAppointment`.
    #[serde(rename = "job/v2/cancelAppointment")]
    CancelAppointment(CancelAppointment),
    /// `job/v2/assignTechnician`.
    #[serde(rename = "job/v2/assignTechnician")]
    AssignTechnician(AssignTechnician),
    /// `job/v2/unassignTechnician`.
    #[serde(rename = "job/v2/unassignTechnician")]
    UnassignTechnician(UnassignTechnician),
    /// `job/v2/moveAppointment`.
    #[serde(rename = "job/v2/moveAppointment")]
    MoveAppointment(MoveAppointment),
    /// `job/v2/complete`.
    #[serde(rename = "job/v2/complete")]
    Complete(CompleteJob),
    /// The SLA timer.
    #[serde(rename = "job/v2/checkSla")]
    CheckSla(CheckSla),
    /// The window timer.
    #[serde(rename = "job/v2/checkWindow")]
    CheckWindow(CheckWindow),
    /// `job/v2/addNote`.
    #[serde(rename = "job/v2/addNote")]
    AddNote(super::notes::NewNote),
}

impl Command for JobV2Command {
    const WORKFLOW: &'static str = WORKFLOW;
    fn procedure(&self) -> &'static str {
        match self {
            Self::AddAppointment(_) => "job/v2/addAppointment",
            Self::RescheduleAppointment(_) => "job/v2/rescheduleAppointment",
            Self::CancelAppointment(_) => "job/v2/cancelAppointment",
            Self::AssignTechnician(_) => "job/v2/assignTechnician",
            Self::UnassignTechnician(_) => "job/v2/unassignTechnician",
            Self::MoveAppointment(_) => "job/v2/moveAppointment",
            Self::AddNote(_) => "job/v2/addNote",
            Self::Complete(_) => "job/v2/complete",
            Self::CheckSla(_) => "job/v2/checkSla",
            Self::CheckWindow(_) => "job/v2/checkWindow",
        }
    }
    fn subject(&self) -> Option<super::Subject> {
        use super::Subject::{Appointment as A, Job as J};
        Some(match self {
            Self::AddAppointment(a) => J(a.job_id),
            Self::RescheduleAppointment(r) => A(r.appointment_id),
            Self::CancelAppointment(c) => A(c.appointment_id),
            Self::AssignTechnician(a) => A(a.appointment_id),
            Self::UnassignTechnician(u) => A(u.appointment_id),
            Self::MoveAppointment(m) => A(m.appointment_id),
            Self::Complete(c) => J(c.job_id),
            Self::CheckSla(c) => J(c.job_id),
            Self::CheckWindow(c) => A(c.appointment_id),
            Self::AddNote(n) => match n.appointment_id {
                Some(a) => A(a),
                None => J(n.job_id),
            },
        })
    }
}

/// A job with its appointments: what every `job/v2` procedure returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSchedule {
    /// The job.
    pub job: Job,
    /// When an SLA breach was recorded.
    pub sla_breached_at: Option<DateTime<Utc>>,
    /// Its appointments, by window.
    pub appointments: Vec<Appointment>,
}

/// One entry of a job's schedule history (`job/v2/timeline`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleEvent {
    /// `appointment_added`, `appointment_changed`, `job_followed`, `sla_overridden`,
    /// `sla_breached` or `window_missed`.
    pub kind: String,
    /// The appointment, when it is about one.
    pub appointment_id: Option<AppointmentId>,
    /// What changed.
    pub data: serde_json::Value,
    /// Who, when a person did.
    pub actor: Option<hestami_core::ids::UserId>,
    /// Why, when given.
    pub reason: Option<Reason>,
    /// When the server recorded it.
    pub at: DateTime<Utc>,
    /// When the device says it happened (a move made in the field), which may be well before
    /// `at` when the device was offline.
    pub device_time: Option<DateTime<Utc>>,
    /// Where the device was, when it said.
    pub location: Option<hestami_core::field::Fix>,
}

/// A job's whole history: the job's own events and its schedule's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobHistory {
    /// The job's events (as `job/v1/timeline`).
    pub job_events: Vec<JobEvent>,
    /// Its schedule's events, oldest first.
    pub schedule_events: Vec<ScheduleEvent>,
}

/// A core refusal as the API reports it.
pub fn appointment_failure(error: &AppointmentError) -> Failure {
    let conflict = !matches!(
        error,
        AppointmentError::InvalidDuration(_) | AppointmentError::TooManyHelpers
    );
    Failure::refusal(conflict, error.code(), error.to_string())
}

fn uses_appointments() -> Failure {
    Failure::new(
        FailureKind::Conflict,
        "JOB_USES_APPOINTMENTS",
        "the job's visits are appointments: use the job/v2 procedures",
    )
}

/// `409 JOB_USES_APPOINTMENTS` for a v1 move that appointments own, on a v2 job.
pub(crate) fn refuse_v1_move(v2: bool) -> Result<(), StoreError> {
    if v2 {
        Err(uses_appointments().into())
    } else {
        Ok(())
    }
}

pub(crate) async fn run(
    mut ctx: WorkflowCtx,
    command: JobV2Command,
) -> Result<serde_json::Value, StoreError> {
    let out = match command {
        JobV2Command::AddAppointment(a) => {
            ctx.step("add_appointment", move |tx| Box::pin(add(tx, a)))
                .await?
        }
        JobV2Command::RescheduleAppointment(r) => {
            ctx.step("reschedule_appointment", move |tx| {
                Box::pin(async move {
                    let loaded = load_for_change(tx, r.appointment_id, r.expected_version).await?;
                    let mut commands = vec![AppointmentCommand::Reschedule { window: r.window }];
                    if r.planned_start.is_some() {
                        commands.push(AppointmentCommand::Plan {
                            start: r.planned_start,
                        });
                    }
                    // The visit as it will be: the crew is judged where it will take them (the
                    // planned start, if one comes with the new window, or the whole window).
                    let mut moved = loaded.visit.clone();
                    for command in &commands {
                        core_appointment::execute(&mut moved, command)
                            .map_err(|e| appointment_failure(&e))?;
                    }
                    let refs: Vec<&Appointment> = loaded.others.iter().collect();
                    sla_gate(
                        tx,
                        &loaded.job,
                        &r.window,
                        &refs,
                        r.sla_override.as_ref(),
                        moved.id,
                    )
                    .await?;
                    super::eligibility::ensure_compliant(tx, &loaded.job, r.window).await?;
                    check_crew(
                        tx,
                        &loaded.job,
                        moved.id,
                        moved.occupied(),
                        &crew_of(&moved),
                    )
                    .await?;
                    change(tx, loaded, &commands, None, None).await
                })
            })
            .await?
        }
        JobV2Command::CancelAppointment(c) => {
            ctx.step("cancel_appointment", move |tx| {
                Box::pin(async move {
                    let loaded = load_for_change(tx, c.appointment_id, c.expected_version).await?;
                    let command = AppointmentCommand::Cancel {
                        reason: c.reason.clone(),
                    };
                    change(tx, loaded, &[command], Some(c.reason), None).await
                })
            })
            .await?
        }
        JobV2Command::AssignTechnician(a) => {
            ctx.step("assign_technician", move |tx| {
                Box::pin(async move {
                    let loaded = load_for_change(tx, a.appointment_id, a.expected_version).await?;
                    let tech = super::technician::load(tx, a.technician_id, false).await?;
                    let command = match a.role {
                        CrewRole::Lead => AppointmentCommand::AssignLead {
                            technician: tech.id,
                        },
                        CrewRole::Helper => AppointmentCommand::AddHelper {
                            technician: tech.id,
                        },
                    };
                    core_appointment::decide(&loaded.visit, &command)
                        .map_err(|e| appointment_failure(&e))?;
                    let (visit, job) = (&loaded.visit, &loaded.job);
                    check_crew(tx, job, visit.id, visit.occupied(), &[(tech.id, a.role)]).await?;
                    change(tx, loaded, &[command], None, None).await
                })
            })
            .await?
        }
        JobV2Command::UnassignTechnician(u) => {
            ctx.step("unassign_technician", move |tx| {
                Box::pin(async move {
                    let loaded = load_for_change(tx, u.appointment_id, u.expected_version).await?;
                    let command = AppointmentCommand::RemoveFromCrew {
                        technician: u.technician_id,
                    };
                    change(tx, loaded, &[command], None, None).await
                })
            })
            .await?
        }
        JobV2Command::MoveAppointment(m) => {
            ctx.step("move_appointment", move |tx| Box::pin(field_move(tx, m)))
                .await?
        }
        JobV2Command::Complete(c) => {
            ctx.step("complete_job", move |tx| Box::pin(complete(tx, c)))
                .await?
        }
        JobV2Command::CheckSla(c) => {
            let breached = ctx
                .step("check_sla", move |tx| Box::pin(check_sla(tx, c.job_id)))
                .await?;
            return Ok(serde_json::json!({ "breached": breached }));
        }
        JobV2Command::CheckWindow(c) => {
            let missed = ctx
                .step("check_window", move |tx| Box::pin(check_window(tx, c)))
                .await?;
            return Ok(serde_json::json!({ "missed": missed }));
        }
        JobV2Command::AddNote(n) => {
            let note = ctx
                .step("add_note", move |tx| Box::pin(super::notes::add(tx, n)))
                .await?;
            return Ok(serde_json::to_value(note)?);
        }
    };
    Ok(serde_json::to_value(out)?)
}

/// Adds a visit to a job (making it a v2 job if it was not).
async fn add(tx: &mut TenantTx, a: AddAppointment) -> Result<JobSchedule, StoreError> {
    let (mut job, v2, breached) = load_full(tx, a.job_id, true).await?;
    check_version("job", a.expected_version, job.version)?;
    if !core_appointment::VISITS_ADDED_IN.contains(&job.status) {
        return Err(Failure::new(
            FailureKind::Conflict,
            "JOB_NOT_SCHEDULABLE",
            format!("a visit cannot be added to a {} job", job.status),
        )
        .with_details(serde_json::json!({ "currentStatus": job.status }))
        .into());
    }
    let mut appointments = load_of_job(tx, job.id, true).await?;
    // A v1 job's technician, when it has no window yet, leads the new visit unless told otherwise.
    let lead = a.lead.or(if v2 || job.window.is_some() {
        None
    } else {
        job.technician_id
    });
    if !v2 {
        // From here the job's bookings are its appointments (its v1 window must not count twice).
        let org = tx.org();
        tx.execute(
            "UPDATE jobs SET lifecycle = 'v2' WHERE organization_id = $1 AND id = $2",
            args![org, job.id.as_uuid()],
        )
        .await?;
        // The v1 booking becomes the first appointment.
        if let Some(first) = converted(&job) {
            save(tx, &first, true).await?;
            event(
                tx,
                job.id,
                Some(first.id),
                "appointment_added",
                serde_json::json!({ "appointment": first, "from": "job_lifecycle_v1" }),
                None,
            )
            .await?;
            tx.record_change(
                "appointment",
                first.id.as_uuid(),
                first.version,
                Operation::Created,
            )
            .await?;
            arm_window_timer(tx, &first).await?;
            appointments.push(first);
        }
    }
    let minutes = match a.estimated_minutes {
        Some(m) => m,
        None => u32::try_from((a.window.end() - a.window.start()).num_minutes())
            .unwrap_or(1_440)
            .clamp(1, 1_440),
    };
    let id = AppointmentId::from_uuid(new_id());
    let mut visit =
        Appointment::new(id, job.id, a.window, minutes).map_err(|e| appointment_failure(&e))?;
    let mut crew: Vec<(TechnicianId, CrewRole)> = Vec::new();
    if let Some(lead) = lead {
        core_appointment::execute(
            &mut visit,
            &AppointmentCommand::AssignLead { technician: lead },
        )
        .map_err(|e| appointment_failure(&e))?;
        crew.push((lead, CrewRole::Lead));
    }
    for helper in &a.helpers {
        core_appointment::execute(
            &mut visit,
            &AppointmentCommand::AddHelper {
                technician: *helper,
            },
        )
        .map_err(|e| appointment_failure(&e))?;
        crew.push((*helper, CrewRole::Helper));
    }
    if a.planned_start.is_some() {
        core_appointment::execute(
            &mut visit,
            &AppointmentCommand::Plan {
                start: a.planned_start,
            },
        )
        .map_err(|e| appointment_failure(&e))?;
    }
    // A new appointment starts at version 1, whoever is on it.
    visit.version = 1;
    let others: Vec<&Appointment> = appointments.iter().collect();
    sla_gate(tx, &job, &a.window, &others, a.sla_override.as_ref(), id).await?;
    super::eligibility::ensure_compliant(tx, &job, a.window).await?;
    for (tech, _) in &crew {
        super::technician::load(tx, *tech, false).await?;
    }
    check_crew(tx, &job, id, visit.occupied(), &crew).await?;
    save(tx, &visit, true).await?;
    event(
        tx,
        job.id,
        Some(id),
        "appointment_added",
        serde_json::json!({ "appointment": visit }),
        None,
    )
    .await?;
    tx.record_change(
        "appointment",
        id.as_uuid(),
        visit.version,
        Operation::Created,
    )
    .await?;
    arm_window_timer(tx, &visit).await?;
    // The customer hears of the visit and its window (from the relay, once this commits).
    let payload = serde_json::json!({
        "jobId": job.id, "appointmentId": id, "customerId": job.customer_id,
        "windowStart": a.window.start(), "windowEnd": a.window.end(),
    });
    tx.enqueue("appointment_confirmed", &payload).await?;
    appointments.push(visit);
    job = follow(tx, &job, v2, &appointments).await?;
    Ok(schedule_of(job, breached, appointments))
}

/// The first appointment of a v1 job that had a window, in the state its job was in.
fn converted(job: &Job) -> Option<Appointment> {
    let window = job.window?;
    let minutes = u32::try_from((window.end() - window.start()).num_minutes())
        .unwrap_or(60)
        .clamp(1, 1_440);
    let mut first =
        Appointment::new(AppointmentId::from_uuid(new_id()), job.id, window, minutes).ok()?;
    first.lead = job.technician_id;
    first.status = visit_status_of_v1(job.status, job.held_from);
    if job.status == JobStatus::OnHold {
        first.held_from = Some(visit_status_of_v1(
            job.held_from.unwrap_or(JobStatus::Scheduled),
            None,
        ));
        first.status = AppointmentStatus::OnHold;
    }
    Some(first)
}

/// The appointment (locked), its job (locked) and the job's other appointments.
pub(crate) async fn load_for_change(
    tx: &mut TenantTx,
    id: AppointmentId,
    expected_version: Option<i64>,
) -> Result<Loaded, StoreError> {
    let org = tx.org();
    let row = tx
        .fetch_optional(
            "SELECT job_id FROM appointments WHERE organization_id = $1 AND id = $2",
            args![org, id.as_uuid()],
        )
        .await?
        .ok_or_else(|| Failure::not_found("appointment"))?;
    let job_id = JobId::from_uuid(row.get("job_id")?);
    // The job first, then its appointments: every change to a job's visits takes the same locks
    // in the same order.
    let (job, _, breached) = load_full(tx, job_id, true).await?;
    let mut all = load_of_job(tx, job_id, true).await?;
    let k = all
        .iter()
        .position(|a| a.id == id)
        .ok_or_else(|| Failure::not_found("appointment"))?;
    let visit = all.remove(k);
    check_version("appointment", expected_version, visit.version)?;
    if !core_appointment::VISITS_ADDED_IN.contains(&job.status) {
        return Err(Failure::new(
            FailureKind::Conflict,
            "JOB_NOT_SCHEDULABLE",
            format!("the visits of a {} job cannot change", job.status),
        )
        .with_details(serde_json::json!({ "currentStatus": job.status }))
        .into());
    }
    Ok(Loaded {
        job,
        breached,
        visit,
        others: all,
    })
}

/// An appointment loaded for a change (locked), with its job (locked, a v2 job: appointments
/// exist only on those) and the job's other appointments.
pub(crate) struct Loaded {
    pub(crate) job: Job,
    breached: Option<DateTime<Utc>>,
    pub(crate) visit: Appointment,
    others: Vec<Appointment>,
}

/// Applies `commands` to the loaded visit in turn (each with its event and its change-feed
/// row), saves it once with its timer, and makes the job follow.
pub(crate) async fn change(
    tx: &mut TenantTx,
    loaded: Loaded,
    commands: &[AppointmentCommand],
    reason: Option<Reason>,
    device: Option<hestami_core::field::DeviceReport>,
) -> Result<JobSchedule, StoreError> {
    let Loaded {
        job,
        breached,
        mut visit,
        mut others,
    } = loaded;
    for command in commands {
        let change =
            core_appointment::execute(&mut visit, command).map_err(|e| appointment_failure(&e))?;
        let mut data = serde_json::to_value(&change)?;
        if let (Some(device), Some(object)) = (device, data.as_object_mut()) {
            object.insert("device".into(), serde_json::to_value(device)?);
            if !hestami_core::field::effective_time(device.device_time, tx.now()).1 {
                object.insert("deviceClockAhead".into(), serde_json::Value::Bool(true));
            }
        }
        event(
            tx,
            job.id,
            Some(visit.id),
            "appointment_changed",
            data,
            reason.clone(),
        )
        .await?;
        let operation = match change {
            AppointmentChange::Moved { .. } => Operation::Transitioned,
            AppointmentChange::CrewChanged { .. } | AppointmentChange::Planned { .. } => {
                Operation::Updated
            }
        };
        tx.record_change("appointment", visit.id.as_uuid(), visit.version, operation)
            .await?;
    }
    save(tx, &visit, false).await?;
    if core_appointment::before_site(visit.status, visit.held_from) {
        arm_window_timer(tx, &visit).await?;
    } else {
        disarm_window_timer(tx, visit.id).await?;
    }
    others.push(visit);
    others.sort_by_key(|a| (a.window.start(), a.id));
    let job = follow(tx, &job, true, &others).await?;
    Ok(schedule_of(job, breached, others))
}

async fn field_move(tx: &mut TenantTx, m: MoveAppointment) -> Result<JobSchedule, StoreError> {
    let loaded = load_for_change(tx, m.appointment_id, m.expected_version).await?;
    let command = match m.action {
        FieldMove::Dispatch => AppointmentCommand::Dispatch,
        FieldMove::StartTravel => AppointmentCommand::StartTravel,
        FieldMove::Arrive => AppointmentCommand::Arrive,
        FieldMove::Finish => AppointmentCommand::Finish,
        FieldMove::Recall => AppointmentCommand::Recall,
        FieldMove::Resume => AppointmentCommand::Resume,
        FieldMove::Hold => AppointmentCommand::Hold {
            reason: m.reason.clone().ok_or_else(|| {
                Failure::validation(vec![crate::error::FieldError {
                    field: "reason".into(),
                    code: "required".into(),
                    message: "a reason is required to hold an appointment".into(),
                }])
            })?,
        },
    };
    let visit = &loaded.visit;
    let next = core_appointment::decide(visit, &command).map_err(|e| appointment_failure(&e))?;
    // Entering dispatched (by dispatch, or resuming a visit held there) hands it to its crew:
    // every eligibility rule applies again, to every member.
    if let AppointmentChange::Moved {
        to: AppointmentStatus::Dispatched,
        ..
    } = next
    {
        check_crew(tx, &loaded.job, visit.id, visit.occupied(), &crew_of(visit)).await?;
    }
    let on_the_way = matches!(command, AppointmentCommand::StartTravel).then(|| {
        serde_json::json!({
            "jobId": loaded.job.id, "appointmentId": visit.id, "customerId": loaded.job.customer_id,
            "windowStart": visit.window.start(), "windowEnd": visit.window.end(),
        })
    });
    let lead = crew_of(visit)
        .into_iter()
        .find(|(_, role)| *role == CrewRole::Lead)
        .map(|(id, _)| id);
    let schedule = change(tx, loaded, &[command], m.reason, m.device).await?;
    if let Some(mut payload) = on_the_way {
        // "On my way", with the name of whoever leads the visit.
        if let Some(lead) = lead {
            let technician = super::technician::load(tx, lead, false).await?;
            payload["technicianName"] = serde_json::json!(technician.name);
        }
        tx.enqueue("technician_en_route", &payload).await?;
    }
    if let Some(device) = m.device
        && let Some(fix) = device.location
        && let Some(actor) = tx.actor()
        && let Some(technician) = super::technician::linked_to(tx, actor).await?
    {
        super::field::record_position(tx, technician, device.device_time, fix, "move").await?;
    }
    Ok(schedule)
}

async fn complete(tx: &mut TenantTx, c: CompleteJob) -> Result<JobSchedule, StoreError> {
    let (job, v2, breached) = load_full(tx, c.job_id, true).await?;
    check_version("job", c.expected_version, job.version)?;
    if !v2 {
        return Err(Failure::new(
            FailureKind::Conflict,
            "JOB_HAS_NO_APPOINTMENTS",
            "the job has no appointments: complete it with job/v1/updateStatus",
        )
        .into());
    }
    let appointments = load_of_job(tx, job.id, false).await?;
    let refs: Vec<&Appointment> = appointments.iter().collect();
    if let Some(refusal) = core_appointment::completion_refusal(&refs) {
        let details = match &refusal {
            CompletionRefusal::VisitsOpen(open) => serde_json::json!({ "openAppointments": open }),
            CompletionRefusal::NoVisitDone => serde_json::json!({}),
        };
        return Err(
            Failure::new(FailureKind::Conflict, refusal.code(), refusal.to_string())
                .with_details(details)
                .into(),
        );
    }
    let job = super::job::apply(tx, &job, JobCommand::Complete, None).await?;
    if let Some(signature) = c.signature {
        super::attachments::attach(tx, signature).await?;
    }
    Ok(schedule_of(job, breached, appointments))
}

/// `409 APPOINTMENT_ON_SITE` when a v2 job about to be cancelled through v1 has a crew on site
/// (or a visit held after its crew arrived): finish or resume that visit first.
pub(crate) async fn ensure_nobody_on_site(tx: &mut TenantTx, job: &Job) -> Result<(), StoreError> {
    let appointments = load_of_job(tx, job.id, false).await?;
    if let Some(visit) = appointments.iter().find(|a| {
        !a.status.is_final()
            && core_appointment::effective_status(a.status, a.held_from)
                == AppointmentStatus::OnSite
    }) {
        return Err(Failure::new(
            FailureKind::Conflict,
            "APPOINTMENT_ON_SITE",
            "a crew is on site for one of the job's visits: finish that visit before cancelling the job",
        )
        .with_details(serde_json::json!({ "appointmentId": visit.id }))
        .into());
    }
    Ok(())
}

/// Cancelling or holding a v2 job through v1 carries to its visits: a cancelled job's open
/// visits are cancelled; a resumed job follows its visits again.
pub(crate) async fn after_v1_move(tx: &mut TenantTx, job: &Job) -> Result<Job, StoreError> {
    let mut appointments = load_of_job(tx, job.id, true).await?;
    if job.status == JobStatus::Cancelled {
        let reason =
            Reason::parse("the job was cancelled").map_err(|e| StoreError::Internal(e.message))?;
        for visit in appointments.iter_mut() {
            let command = AppointmentCommand::Cancel {
                reason: reason.clone(),
            };
            if let Ok(change) = core_appointment::execute(visit, &command) {
                save(tx, visit, false).await?;
                event(
                    tx,
                    job.id,
                    Some(visit.id),
                    "appointment_changed",
                    serde_json::to_value(&change)?,
                    Some(reason.clone()),
                )
                .await?;
                tx.record_change(
                    "appointment",
                    visit.id.as_uuid(),
                    visit.version,
                    Operation::Transitioned,
                )
                .await?;
                disarm_window_timer(tx, visit.id).await?;
            }
        }
        return Ok(job.clone());
    }
    follow(tx, job, true, &appointments).await
}

/// Makes the job follow its appointments: its state, and its summary of the current visit.
async fn follow(
    tx: &mut TenantTx,
    job: &Job,
    was_v2: bool,
    appointments: &[Appointment],
) -> Result<Job, StoreError> {
    let refs: Vec<&Appointment> = appointments.iter().collect();
    let status = core_appointment::followed_status(job.status, &refs);
    let current = core_appointment::current_visit(&refs);
    let window = current.map(|a| a.window);
    let technician = current.and_then(|a| a.lead);
    let visit_started_at = job.visit_started_at.or_else(|| {
        (status == JobStatus::OnSite
            || appointments
                .iter()
                .any(|a| a.status == AppointmentStatus::Done))
        .then(|| tx.now())
    });
    if was_v2
        && status == job.status
        && window == job.window
        && technician == job.technician_id
        && visit_started_at == job.visit_started_at
    {
        return Ok(job.clone());
    }
    let next = Job {
        version: job.version + 1,
        status,
        window,
        technician_id: technician,
        visit_started_at,
        updated_at: tx.now(),
        ..job.clone()
    };
    tx.execute(
        "UPDATE jobs SET version = $1, status = $2, window_start = $3, window_end = $4, technician_id = $5, \
         visit_started_at = $6, updated_at = $7, lifecycle = 'v2' WHERE organization_id = $8 AND id = $9",
        args![
            next.version,
            next.status.as_str(),
            next.window.map(|w| w.start()),
            next.window.map(|w| w.end()),
            next.technician_id.map(|t| t.as_uuid()),
            next.visit_started_at,
            next.updated_at,
            tx.org(),
            next.id.as_uuid()
        ],
    )
    .await?;
    event(
        tx,
        job.id,
        current.map(|a| a.id),
        "job_followed",
        serde_json::json!({
            "from": job.status, "to": next.status, "jobVersion": next.version,
            "window": next.window, "technicianId": next.technician_id,
        }),
        None,
    )
    .await?;
    let operation = if status == job.status {
        Operation::Updated
    } else {
        Operation::Transitioned
    };
    tx.record_change("job", next.id.as_uuid(), next.version, operation)
        .await?;
    Ok(next)
}

pub(crate) fn crew_of(visit: &Appointment) -> Vec<(TechnicianId, CrewRole)> {
    visit
        .lead
        .map(|l| (l, CrewRole::Lead))
        .into_iter()
        .chain(visit.helpers.iter().map(|h| (*h, CrewRole::Helper)))
        .collect()
}

/// `422 TECHNICIAN_INELIGIBLE` with every failed rule of every member of `crew`, unless each of
/// them may take the job's visit `appointment` in `window`.
pub(crate) async fn check_crew(
    tx: &mut TenantTx,
    job: &Job,
    appointment: AppointmentId,
    window: TimeWindow,
    crew: &[(TechnicianId, CrewRole)],
) -> Result<(), StoreError> {
    if crew.is_empty() {
        return Ok(());
    }
    let members: Vec<TechnicianId> = crew.iter().map(|(t, _)| *t).collect();
    super::eligibility::lock_technicians(tx, &members).await?;
    let mut needs = super::eligibility::needs_for(tx, job, window).await?;
    needs.appointment_id = Some(appointment);
    let org = super::eligibility::org_facts(tx, &needs).await?;
    let tz = org.time_zone.tz();
    let mut refused = Vec::new();
    let mut all: Vec<FailedRule> = Vec::new();
    for (tech, role) in crew {
        let facts = super::eligibility::technician_facts(tx, *tech, window, tz).await?;
        let verdict = eligibility::evaluate(&needs, &facts, &org);
        if !verdict.eligible {
            refused.push(serde_json::json!({
                "technicianId": tech, "role": role.as_str(), "failedRules": verdict.failed,
            }));
            all.extend(verdict.failed);
        }
    }
    if refused.is_empty() {
        return Ok(());
    }
    let message = all
        .iter()
        .map(|f| f.message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    Err(Failure::new(
        FailureKind::RuleViolation,
        "TECHNICIAN_INELIGIBLE",
        format!("the crew cannot take this visit: {message}"),
    )
    .with_details(serde_json::json!({ "failedRules": all, "technicians": refused }))
    .into())
}

/// Refuses a first visit after the job's SLA deadline (`422 SLA_WINDOW_EXCEEDED`, with the
/// deadline and the earliest slot within it that the eligibility data finds), unless overridden
/// with a reason by a dispatcher or above; an override is recorded on the schedule timeline and
/// the change feed.
async fn sla_gate(
    tx: &mut TenantTx,
    job: &Job,
    window: &TimeWindow,
    others: &[&Appointment],
    sla_override: Option<&Reason>,
    appointment: AppointmentId,
) -> Result<(), StoreError> {
    let Some(deadline) = core_appointment::sla_refusal(window, job.sla_deadline, others) else {
        return Ok(());
    };
    let Some(reason) = sla_override else {
        let earliest = super::board::earliest_slot(tx, job, deadline).await?;
        return Err(Failure::new(
            FailureKind::RuleViolation,
            "SLA_WINDOW_EXCEEDED",
            format!(
                "the window starts after the job's SLA deadline ({deadline}); book earlier, or \
                 pass slaOverride with a reason"
            ),
        )
        .with_details(serde_json::json!({
            "slaDeadline": deadline,
            "windowStart": window.start(),
            "earliestSlot": earliest,
        }))
        .into());
    };
    let role = match tx.actor() {
        Some(user) => {
            let org = tx.org();
            tx.fetch_optional(
                "SELECT role FROM memberships WHERE organization_id = $1 AND user_id = $2",
                args![org, user.as_uuid()],
            )
            .await?
            .map(|r| r.get::<String>("role"))
            .transpose()?
            .and_then(|r| Role::parse(&r).ok())
        }
        None => None,
    };
    if !role.is_some_and(hestami_core::org::may_override_sla) {
        return Err(Failure::new(
            FailureKind::Forbidden,
            "SLA_OVERRIDE_NOT_PERMITTED",
            "only a dispatcher, an admin or the owner may book past the SLA deadline",
        )
        .into());
    }
    event(
        tx,
        job.id,
        Some(appointment),
        "sla_overridden",
        serde_json::json!({ "slaDeadline": deadline, "windowStart": window.start() }),
        Some(reason.clone()),
    )
    .await?;
    tx.record_change("sla_override", appointment.as_uuid(), 1, Operation::Created)
        .await
}

/// Whether nobody has reached the job yet: requested, scheduled, dispatched, en route or held
/// before any visit started. Once false it stays false (a visit that started is never
/// unstarted), which lets the timer pass skip the check's workflow for such jobs.
fn waiting(job: &Job) -> bool {
    hestami_core::job::not_yet_reached(job.status, job.visit_started_at.is_some())
}

/// Whether the SLA check of `job_id` could still record a breach (the timer pass asks before it
/// starts the check's workflow: most jobs are reached in time, and need no workflow at all).
pub(crate) async fn sla_may_breach(tx: &mut TenantTx, job_id: JobId) -> Result<bool, StoreError> {
    Ok(match load_full(tx, job_id, false).await {
        Ok((job, _, breached)) => breached.is_none() && waiting(&job),
        Err(StoreError::Failure(_)) => false,
        Err(e) => return Err(e),
    })
}

/// Records an SLA breach if the job's deadline has passed and nobody reached it; once.
async fn check_sla(tx: &mut TenantTx, job_id: JobId) -> Result<bool, StoreError> {
    let (job, _, breached) = match load_full(tx, job_id, true).await {
        Ok(found) => found,
        Err(StoreError::Failure(_)) => return Ok(false),
        Err(e) => return Err(e),
    };
    if breached.is_some() || !waiting(&job) || tx.now() < job.sla_deadline {
        return Ok(false);
    }
    let now = tx.now();
    let org = tx.org();
    tx.execute(
        "UPDATE jobs SET sla_breached_at = $1 WHERE organization_id = $2 AND id = $3 AND sla_breached_at IS NULL",
        args![now, org, job.id.as_uuid()],
    )
    .await?;
    let data = serde_json::json!({
        "jobId": job.id, "slaDeadline": job.sla_deadline, "status": job.status,
        "priority": job.priority,
    });
    event(tx, job.id, None, "sla_breached", data.clone(), None).await?;
    tx.record_change("sla_breach", job.id.as_uuid(), 1, Operation::Created)
        .await?;
    tx.enqueue("sla_breached", &data).await?;
    Ok(true)
}

/// Records a missed window if the appointment's window (still `window_end`) closed with nobody
/// on site; once per window.
async fn check_window(tx: &mut TenantTx, c: CheckWindow) -> Result<bool, StoreError> {
    let Some(open) = open_window(tx, c.appointment_id, true).await? else {
        return Ok(false);
    };
    let (job_id, status, window_end) = (open.job_id, open.status, open.end);
    if window_end != c.window_end || tx.now() < window_end {
        return Ok(false);
    }
    let org = tx.org();
    tx.execute(
        "UPDATE appointments SET missed_window_end = $1 WHERE organization_id = $2 AND id = $3",
        args![window_end, org, c.appointment_id.as_uuid()],
    )
    .await?;
    let data = serde_json::json!({
        "jobId": job_id, "appointmentId": c.appointment_id, "windowEnd": window_end,
        "status": status,
    });
    event(
        tx,
        job_id,
        Some(c.appointment_id),
        "window_missed",
        data.clone(),
        None,
    )
    .await?;
    tx.record_change(
        "window_missed",
        c.appointment_id.as_uuid(),
        1,
        Operation::Created,
    )
    .await?;
    tx.enqueue("appointment_window_missed", &data).await?;
    Ok(true)
}

/// The window end an appointment holds now, if nobody is on site yet and no missed window was
/// recorded for it (`None`: nothing to check).
pub(crate) async fn open_window_end(
    tx: &mut TenantTx,
    id: AppointmentId,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(open_window(tx, id, false).await?.map(|open| open.end))
}

/// A visit whose window may still be missed: nobody on site yet, nothing recorded for it.
struct OpenWindow {
    job_id: JobId,
    status: AppointmentStatus,
    end: DateTime<Utc>,
}

/// The appointment's window if it may still be missed (locked for update when `lock`).
async fn open_window(
    tx: &mut TenantTx,
    id: AppointmentId,
    lock: bool,
) -> Result<Option<OpenWindow>, StoreError> {
    let org = tx.org();
    let sql = format!(
        "SELECT job_id, status, held_from, window_end, missed_window_end FROM appointments \
         WHERE organization_id = $1 AND id = $2{}",
        if lock { tx.for_update() } else { "" }
    );
    let Some(row) = tx.fetch_optional(&sql, args![org, id.as_uuid()]).await? else {
        return Ok(None);
    };
    let (status, held_from) = status_of(&row)?;
    let end: DateTime<Utc> = row.get("window_end")?;
    let recorded: Option<DateTime<Utc>> = row.get("missed_window_end")?;
    if !core_appointment::before_site(status, held_from) || recorded == Some(end) {
        return Ok(None);
    }
    Ok(Some(OpenWindow {
        job_id: JobId::from_uuid(row.get("job_id")?),
        status,
        end,
    }))
}

/// Arms the job's SLA timer (at creation).
pub(crate) async fn arm_sla_timer(tx: &mut TenantTx, job: &Job) -> Result<(), StoreError> {
    tx.arm_timer(&format!("{SLA_TIMER_PREFIX}{}", job.id), job.sla_deadline)
        .await
}

async fn arm_window_timer(tx: &mut TenantTx, visit: &Appointment) -> Result<(), StoreError> {
    tx.arm_timer(
        &format!("{WINDOW_TIMER_PREFIX}{}", visit.id),
        visit.window.end(),
    )
    .await
}

async fn disarm_window_timer(tx: &mut TenantTx, id: AppointmentId) -> Result<(), StoreError> {
    tx.disarm_timer(&format!("{WINDOW_TIMER_PREFIX}{id}")).await
}

async fn event(
    tx: &mut TenantTx,
    job_id: JobId,
    appointment_id: Option<AppointmentId>,
    kind: &str,
    data: serde_json::Value,
    reason: Option<Reason>,
) -> Result<(), StoreError> {
    let (org, now, actor) = (tx.org(), tx.now(), tx.actor());
    tx.execute(
        "INSERT INTO schedule_events (organization_id, id, job_id, appointment_id, kind, data, actor_user_id, \
         reason, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        args![
            org,
            new_id(),
            job_id.as_uuid(),
            appointment_id.map(|a| a.as_uuid()),
            kind,
            data.to_string(),
            actor.map(|a| a.as_uuid()),
            reason.as_ref().map(Reason::as_str),
            now
        ],
    )
    .await?;
    Ok(())
}

/// Inserts or updates an appointment and replaces its crew.
async fn save(tx: &mut TenantTx, a: &Appointment, created: bool) -> Result<(), StoreError> {
    let (org, now) = (tx.org(), tx.now());
    if created {
        tx.execute(
            "INSERT INTO appointments (organization_id, id, job_id, version, status, held_from, window_start, \
             window_end, estimated_minutes, created_at, updated_at, planned_start) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11)",
            args![
                org,
                a.id.as_uuid(),
                a.job_id.as_uuid(),
                a.version,
                a.status.as_str(),
                a.held_from.map(AppointmentStatus::as_str),
                a.window.start(),
                a.window.end(),
                i64::from(a.estimated_minutes),
                now,
                a.planned_start
            ],
        )
        .await?;
    } else {
        tx.execute(
            "UPDATE appointments SET version = $1, status = $2, held_from = $3, window_start = $4, window_end = $5, \
             updated_at = $6, planned_start = $7 WHERE organization_id = $8 AND id = $9",
            args![
                a.version,
                a.status.as_str(),
                a.held_from.map(AppointmentStatus::as_str),
                a.window.start(),
                a.window.end(),
                now,
                a.planned_start,
                org,
                a.id.as_uuid()
            ],
        )
        .await?;
        tx.execute(
            "DELETE FROM appointment_crew WHERE organization_id = $1 AND appointment_id = $2",
            args![org, a.id.as_uuid()],
        )
        .await?;
    }
    for (position, (tech, role)) in crew_of(a).into_iter().enumerate() {
        tx.execute(
            "INSERT INTO appointment_crew (organization_id, appointment_id, technician_id, role, position) \
             VALUES ($1, $2, $3, $4, $5)",
            args![
                org,
                a.id.as_uuid(),
                tech.as_uuid(),
                role.as_str(),
                i64::try_from(position).unwrap_or(i64::MAX)
            ],
        )
        .await?;
    }
    Ok(())
}

/// A row's `status` and `held_from`.
fn status_of(row: &Row) -> Result<(AppointmentStatus, Option<AppointmentStatus>), StoreError> {
    Ok((
        parse_stored(&row.get::<String>("status")?, parse_status)?,
        row.get::<Option<String>>("held_from")?
            .map(|h| parse_stored(&h, parse_status))
            .transpose()?,
    ))
}

fn parse_status(raw: &str) -> Result<AppointmentStatus, hestami_core::Invalid> {
    AppointmentStatus::ALL
        .into_iter()
        .find(|s| s.as_str() == raw)
        .ok_or_else(|| hestami_core::Invalid::new("invalid_status", "not an appointment status"))
}

pub(crate) const APPOINTMENT_COLUMNS: &str = "a.id, a.job_id, a.version, a.status, a.held_from, a.window_start, \
     a.window_end, a.estimated_minutes, a.planned_start, c.technician_id, c.role";

/// Appointments from rows of [`APPOINTMENT_COLUMNS`] (one per crew member, or one with no crew),
/// in row order.
pub(crate) fn decode_rows(rows: &[Row]) -> Result<Vec<Appointment>, StoreError> {
    let mut out: Vec<Appointment> = Vec::new();
    let mut index: BTreeMap<AppointmentId, usize> = BTreeMap::new();
    for row in rows {
        let id = AppointmentId::from_uuid(row.get("id")?);
        let k = match index.get(&id) {
            Some(k) => *k,
            None => {
                let window = TimeWindow::parse(row.get("window_start")?, row.get("window_end")?)
                    .map_err(|_| StoreError::Internal("stored window is invalid".into()))?;
                out.push(Appointment {
                    id,
                    job_id: JobId::from_uuid(row.get("job_id")?),
                    version: row.get("version")?,
                    status: parse_stored(&row.get::<String>("status")?, parse_status)?,
                    held_from: row
                        .get::<Option<String>>("held_from")?
                        .map(|h| parse_stored(&h, parse_status))
                        .transpose()?,
                    window,
                    estimated_minutes: u32::try_from(row.get::<i64>("estimated_minutes")?)
                        .map_err(|_| StoreError::Internal("stored duration is invalid".into()))?,
                    lead: None,
                    helpers: Vec::new(),
                    planned_start: row.get("planned_start")?,
                });
                index.insert(id, out.len() - 1);
                out.len() - 1
            }
        };
        let Some(tech) = row.get::<Option<uuid::Uuid>>("technician_id")? else {
            continue;
        };
        let tech = TechnicianId::from_uuid(tech);
        match row.get::<Option<String>>("role")?.as_deref() {
            Some("lead") => out[k].lead = Some(tech),
            _ => out[k].helpers.push(tech),
        }
    }
    Ok(out)
}

/// A job's appointments with their crews, by window (locked for update when `lock`).
pub(crate) async fn load_of_job(
    tx: &mut TenantTx,
    job_id: JobId,
    lock: bool,
) -> Result<Vec<Appointment>, StoreError> {
    let org = tx.org();
    // PostgreSQL cannot lock the nullable side of an outer join: lock the appointments alone.
    let lock_clause = match (lock, tx.for_update()) {
        (true, clause) if !clause.is_empty() => " FOR UPDATE OF a",
        _ => "",
    };
    let rows = tx
        .fetch_all(
            &format!(
                "SELECT {APPOINTMENT_COLUMNS} FROM appointments a \
                 LEFT JOIN appointment_crew c ON c.organization_id = a.organization_id AND c.appointment_id = a.id \
                 WHERE a.organization_id = $1 AND a.job_id = $2 \
                 ORDER BY a.window_start, a.id, c.position{lock_clause}"
            ),
            args![org, job_id.as_uuid()],
        )
        .await?;
    decode_rows(&rows)
}

fn schedule_of(
    job: Job,
    sla_breached_at: Option<DateTime<Utc>>,
    mut appointments: Vec<Appointment>,
) -> JobSchedule {
    appointments.sort_by_key(|a| (a.window.start(), a.id));
    JobSchedule {
        job,
        sla_breached_at,
        appointments,
    }
}

fn decode_schedule_event(row: &Row) -> Result<ScheduleEvent, StoreError> {
    let data: serde_json::Value = serde_json::from_str(&row.get::<String>("data")?)?;
    let device: Option<hestami_core::field::DeviceReport> = data
        .get("device")
        .map(|d| serde_json::from_value(d.clone()))
        .transpose()?;
    Ok(ScheduleEvent {
        kind: row.get("kind")?,
        appointment_id: row
            .get::<Option<uuid::Uuid>>("appointment_id")?
            .map(AppointmentId::from_uuid),
        device_time: device.map(|d| d.device_time),
        location: device.and_then(|d| d.location),
        data,
        actor: row
            .get::<Option<uuid::Uuid>>("actor_user_id")?
            .map(hestami_core::ids::UserId::from_uuid),
        reason: row
            .get::<Option<String>>("reason")?
            .map(|r| parse_stored(&r, Reason::parse))
            .transpose()?,
        at: row.get("at")?,
    })
}

/// A job with its appointments, as the transaction's scope may see it (`404` otherwise).
pub(crate) async fn schedule(tx: &mut TenantTx, id: JobId) -> Result<JobSchedule, StoreError> {
    let (job, _, breached) = load_full(tx, id, false).await?;
    let appointments = load_of_job(tx, id, false).await?;
    Ok(schedule_of(job, breached, appointments))
}

impl Services {
    /// `job/v2/get`: the job with its appointments.
    pub async fn job_schedule(
        &self,
        caller: &Caller,
        id: JobId,
    ) -> Result<JobSchedule, StoreError> {
        self.read(caller, move |tx| Box::pin(schedule(tx, id)))
            .await
    }

    /// `job/v2/timeline`: the job's events and its schedule's.
    pub async fn job_history(&self, caller: &Caller, id: JobId) -> Result<JobHistory, StoreError> {
        let job_events = self.job_timeline(caller, id).await?;
        let schedule_events = self
            .read(caller, move |tx| {
                Box::pin(async move {
                    let org = tx.org();
                    let rows = tx
                        .fetch_all(
                            "SELECT kind, appointment_id, data, actor_user_id, reason, at FROM schedule_events \
                             WHERE organization_id = $1 AND job_id = $2 ORDER BY at, id",
                            args![org, id.as_uuid()],
                        )
                        .await?;
                    rows.iter().map(decode_schedule_event).collect::<Result<Vec<_>, _>>()
                })
            })
            .await?;
        Ok(JobHistory {
            job_events,
            schedule_events,
        })
    }
}

/// Checks a v1 job command against the v2 rules before it runs (see the module's docs).
pub(crate) fn v1_command_allowed(v2: bool, command: &JobCommand) -> Result<(), StoreError> {
    if !v2 {
        return Ok(());
    }
    match command {
        JobCommand::Hold | JobCommand::Resume | JobCommand::Cancel => Ok(()),
        JobCommand::Invoice
        | JobCommand::Settle
        | JobCommand::Close
        | JobCommand::Callback { .. } => Ok(()),
        _ => Err(uses_appointments().into()),
    }
}
