//! `job/v2`: jobs with appointments (visits) and crews, workflow `job_lifecycle_v2`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use hestami_core::appointment::{self as core_appointment, Appointment, MAX_HELPERS};
use hestami_core::ids::{AppointmentId, JobId, TechnicianId};
use hestami_core::job::TimeWindow;
use hestami_core::text::{Description, Reason};
use hestami_store::app::PageRequest;
use hestami_store::app::appointment::{
    AddAppointment, AssignTechnician, CancelAppointment, CompleteJob, CrewRole, FieldMove,
    JobHistory, JobSchedule, JobV2Command, MoveAppointment, RescheduleAppointment, ScheduleEvent,
    UnassignTechnician,
};
use hestami_store::app::job::{JobQuery, JobSort};
use hestami_store::app::notes::{NewNote, Note};

use crate::error::ApiError;
use crate::rpc::{Ctx, Name, Procedure, Validator, mutation, mutation_async, query, validate};
use crate::v1::job::{JobDto, JobEventDto, JobIdInput, JobPage, JobStatusDto, WindowDto};

/// An appointment's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AppointmentStatusDto {
    /// Has a window.
    Scheduled,
    /// Sent to its crew.
    Dispatched,
    /// The crew is on the way.
    EnRoute,
    /// The crew is there.
    OnSite,
    /// Over.
    Done,
    /// Paused.
    OnHold,
    /// Called off.
    Cancelled,
}

impl From<AppointmentStatusDto> for core_appointment::AppointmentStatus {
    fn from(s: AppointmentStatusDto) -> Self {
        use AppointmentStatusDto as D;
        match s {
            D::Scheduled => Self::Scheduled,
            D::Dispatched => Self::Dispatched,
            D::EnRoute => Self::EnRoute,
            D::OnSite => Self::OnSite,
            D::Done => Self::Done,
            D::OnHold => Self::OnHold,
            D::Cancelled => Self::Cancelled,
        }
    }
}

/// An appointment (a visit) of a job.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppointmentDto {
    /// Its id.
    pub id: Uuid,
    /// The job.
    pub job_id: Uuid,
    /// 1 on creation, +1 on each change.
    pub version: i64,
    /// scheduled, dispatched, en_route, on_site, done, on_hold or cancelled.
    pub status: String,
    /// While on hold: the state it resumes to.
    pub held_from: Option<String>,
    /// When the crew is expected (UTC; shown in the organization's zone).
    pub window: WindowDto,
    /// Minutes on site, 1 to 1440.
    pub estimated_minutes: u32,
    /// Who leads it.
    pub lead_technician_id: Option<Uuid>,
    /// Who helps, in the order they were added.
    pub helper_ids: Vec<Uuid>,
    /// When the crew is planned to start, inside the window: the visit then takes its crew from
    /// there for its estimated minutes only (unplanned, for the whole window).
    pub planned_start: Option<DateTime<Utc>>,
    /// The moves its state allows next (`dispatch`, `start_travel`, `arrive`, `finish`,
    /// `recall`, `hold`, `resume`, `reschedule`, `cancel`).
    pub allowed_actions: Vec<String>,
}

impl From<&Appointment> for AppointmentDto {
    fn from(a: &Appointment) -> Self {
        let allowed_actions = core_appointment::TRANSITIONS
            .iter()
            .filter(|(from, _, _)| *from == a.status)
            .filter(|(_, action, _)| core_appointment::target_of(a, *action).is_some())
            .map(|(_, action, _)| {
                serde_json::to_value(action)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            })
            .collect();
        Self {
            id: a.id.as_uuid(),
            job_id: a.job_id.as_uuid(),
            version: a.version,
            status: a.status.as_str().to_owned(),
            held_from: a.held_from.map(|s| s.as_str().to_owned()),
            window: WindowDto {
                start: a.window.start(),
                end: a.window.end(),
            },
            estimated_minutes: a.estimated_minutes,
            lead_technician_id: a.lead.map(|t| t.as_uuid()),
            helper_ids: a.helpers.iter().map(|h| h.as_uuid()).collect(),
            planned_start: a.planned_start,
            allowed_actions,
        }
    }
}

/// A job with its appointments.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobScheduleDto {
    /// The job; for a job with appointments, `window` and `technicianId` are its current
    /// visit's window and lead.
    pub job: JobDto,
    /// When an SLA breach was recorded (the deadline passed before anyone reached the job).
    pub sla_breached_at: Option<DateTime<Utc>>,
    /// Its appointments, by window.
    pub appointments: Vec<AppointmentDto>,
}

impl From<JobSchedule> for JobScheduleDto {
    fn from(s: JobSchedule) -> Self {
        Self {
            appointments: s.appointments.iter().map(Into::into).collect(),
            sla_breached_at: s.sla_breached_at,
            job: s.job.into(),
        }
    }
}

/// A crew member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CrewRoleDto {
    /// Leads the visit (replacing the lead).
    Lead,
    /// Helps.
    Helper,
}

/// A field move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldMoveDto {
    /// scheduled → dispatched (needs a lead; every crew member is checked again).
    Dispatch,
    /// dispatched → en_route.
    StartTravel,
    /// en_route → on_site.
    Arrive,
    /// on_site → done.
    Finish,
    /// dispatched or en_route → scheduled.
    Recall,
    /// → on_hold (needs `reason`).
    Hold,
    /// on_hold → the state it was held in.
    Resume,
}

/// `job/v2/addAppointment`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddAppointmentInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which job (requested, scheduled, dispatched, en_route, on_site or in_progress).
    pub job_id: Uuid,
    /// The window opens (RFC 3339).
    #[serde(deserialize_with = "crate::wire::date_time")]
    pub window_start: DateTime<Utc>,
    /// The window closes; after `windowStart`, at most 7 days later.
    #[serde(deserialize_with = "crate::wire::date_time")]
    pub window_end: DateTime<Utc>,
    /// Minutes on site, 1 to 1440 (default: the window's length, at most 1440).
    pub estimated_minutes: Option<i64>,
    /// Who leads it.
    pub lead_technician_id: Option<Uuid>,
    /// Who helps (at most 8, not the lead, no one twice).
    pub helper_ids: Option<Vec<Uuid>>,
    /// Book a first visit that starts after the job's SLA deadline anyway, for this reason
    /// (dispatcher, admin or owner).
    pub sla_override_reason: Option<String>,
    /// When the crew is planned to start, between `windowStart` and `windowEnd`: the visit then
    /// takes its crew from there for `estimatedMinutes` only, so two visits whose windows
    /// overlap can share a technician one after the other.
    #[serde(default, deserialize_with = "crate::wire::option_date_time")]
    pub planned_start: Option<DateTime<Utc>>,
    /// Refuse with `VERSION_CONFLICT` unless the job is at this version.
    pub expected_version: Option<i64>,
}

/// `job/v2/rescheduleAppointment`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RescheduleAppointmentInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which appointment (scheduled).
    pub appointment_id: Uuid,
    /// The window opens (RFC 3339).
    #[serde(deserialize_with = "crate::wire::date_time")]
    pub window_start: DateTime<Utc>,
    /// The window closes; after `windowStart`, at most 7 days later.
    #[serde(deserialize_with = "crate::wire::date_time")]
    pub window_end: DateTime<Utc>,
    /// As for `addAppointment`.
    pub sla_override_reason: Option<String>,
    /// As for `addAppointment`, inside the new window; without it the visit is unplanned.
    #[serde(default, deserialize_with = "crate::wire::option_date_time")]
    pub planned_start: Option<DateTime<Utc>>,
    /// Refuse with `VERSION_CONFLICT` unless the appointment is at this version.
    pub expected_version: Option<i64>,
}

/// `job/v2/cancelAppointment`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CancelAppointmentInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which appointment (not on site, done or cancelled).
    pub appointment_id: Uuid,
    /// Why.
    pub reason: String,
    /// Refuse with `VERSION_CONFLICT` unless the appointment is at this version.
    pub expected_version: Option<i64>,
}

/// `job/v2/assignTechnician`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AssignTechnicianInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which appointment (scheduled or dispatched).
    pub appointment_id: Uuid,
    /// Who: every eligibility rule applies at the appointment's window.
    pub technician_id: Uuid,
    /// As lead or helper.
    pub role: CrewRoleDto,
    /// Refuse with `VERSION_CONFLICT` unless the appointment is at this version.
    pub expected_version: Option<i64>,
}

/// `job/v2/unassignTechnician`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UnassignTechnicianInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which appointment (scheduled or dispatched).
    pub appointment_id: Uuid,
    /// Who.
    pub technician_id: Uuid,
    /// Refuse with `VERSION_CONFLICT` unless the appointment is at this version.
    pub expected_version: Option<i64>,
}

/// `job/v2/moveAppointment`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MoveAppointmentInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which appointment.
    pub appointment_id: Uuid,
    /// The move.
    pub action: FieldMoveDto,
    /// Why (required to hold).
    pub reason: Option<String>,
    /// Refuse with `VERSION_CONFLICT` unless the appointment is at this version.
    pub expected_version: Option<i64>,
    /// When (by the device's clock) and where the technician made the move, for a move made in
    /// the field (recorded with its event; the timeline shows it beside the server's time).
    pub device: Option<crate::v1::technician::DeviceReportDto>,
}

/// `job/v2/complete`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompleteJobInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which job (every appointment done or cancelled, one done).
    pub job_id: Uuid,
    /// Refuse with `VERSION_CONFLICT` unless the job is at this version.
    pub expected_version: Option<i64>,
    /// The customer's signature, taken on completion: attached to the job (kind `signature`)
    /// in the same step, and shown on the job's invoice.
    pub signature: Option<SignatureInput>,
}

/// A customer's signature: an image uploaded to `/api/v1/blobs/{sha256}`, the name they printed,
/// and when and where they signed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignatureInput {
    /// The SHA-256 of the uploaded image (64 hexadecimal digits).
    pub sha256: String,
    /// The name the customer printed beside it.
    pub signed_by: String,
    /// When (by the device's clock) and where they signed.
    pub device: Option<crate::v1::technician::DeviceReportDto>,
}

mutating!(
    AddAppointmentInput,
    RescheduleAppointmentInput,
    CancelAppointmentInput,
    AssignTechnicianInput,
    UnassignTechnicianInput,
    MoveAppointmentInput,
    CompleteJobInput,
    AddNoteInput
);

/// `job/v2/addNote`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddNoteInput {
    /// Makes the call idempotent (a device queuing notes offline gives each its own key, so a
    /// replayed batch adds each once).
    pub idempotency_key: Uuid,
    /// The job.
    pub job_id: Uuid,
    /// One of its appointments, when the note is about a visit.
    pub appointment_id: Option<Uuid>,
    /// What was noted.
    pub body: String,
    /// When (by the device's clock) and where, for a note made in the field.
    pub device: Option<crate::v1::technician::DeviceReportDto>,
}

/// A note on a job. Notes are append-only.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NoteDto {
    /// Its id.
    pub id: Uuid,
    /// The job.
    pub job_id: Uuid,
    /// The appointment, when about a visit.
    pub appointment_id: Option<Uuid>,
    /// What was noted.
    pub body: String,
    /// Who wrote it.
    pub author_user_id: Option<Uuid>,
    /// When the device says it was written.
    pub device_time: Option<DateTime<Utc>>,
    /// Where the device was.
    pub location: Option<crate::v1::technician::FixDto>,
    /// When the server recorded it.
    pub created_at: DateTime<Utc>,
}

impl From<Note> for NoteDto {
    fn from(n: Note) -> Self {
        Self {
            id: n.id.as_uuid(),
            job_id: n.job_id.as_uuid(),
            appointment_id: n.appointment_id.map(|a| a.as_uuid()),
            body: n.body.as_str().to_owned(),
            author_user_id: n.author.map(|a| a.as_uuid()),
            device_time: n.device.map(|d| d.device_time),
            location: n.device.and_then(|d| d.location).map(Into::into),
            created_at: n.created_at,
        }
    }
}

fn convert_add_note(i: AddNoteInput) -> Result<JobV2Command, ApiError> {
    validate(|v| {
        let body = v.check("body", Description::parse(&i.body));
        let device =
            crate::v1::technician::DeviceReportDto::parse_optional(i.device.as_ref(), v, "device");
        Some(JobV2Command::AddNote(NewNote {
            job_id: JobId::from_uuid(i.job_id),
            appointment_id: i.appointment_id.map(AppointmentId::from_uuid),
            body: body?,
            device: device?,
        }))
    })
}

/// `job/v2/notes`'s result.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotesOutput {
    /// The job's notes, oldest first by the server's time.
    pub notes: Vec<NoteDto>,
}

async fn notes(ctx: Ctx, i: JobIdInput) -> Result<NotesOutput, ApiError> {
    let notes = ctx
        .services
        .job_notes(ctx.caller()?, JobId::from_uuid(i.job_id))
        .await?;
    Ok(NotesOutput {
        notes: notes.into_iter().map(NoteDto::from).collect(),
    })
}

/// How `job/v2/list` orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobSortDto {
    /// By creation.
    Created,
    /// By SLA deadline, most urgent first.
    SlaDeadline,
    /// By window start, earliest first (jobs without a window are left out).
    WindowStart,
}

/// `job/v2/list`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListJobsV2Input {
    /// Only jobs in one of these states.
    pub statuses: Option<Vec<JobStatusDto>>,
    /// Only jobs whose current visit this technician leads.
    pub technician_id: Option<Uuid>,
    /// Only jobs whose window ends after this.
    #[serde(default, deserialize_with = "crate::wire::option_date_time")]
    pub from: Option<DateTime<Utc>>,
    /// Only jobs whose window starts before this.
    #[serde(default, deserialize_with = "crate::wire::option_date_time")]
    pub to: Option<DateTime<Utc>>,
    /// Only jobs not yet reached that nobody leads.
    pub unassigned_only: Option<bool>,
    /// Only jobs whose SLA is breached.
    pub breached_only: Option<bool>,
    /// The order (default `created`).
    pub sort: Option<JobSortDto>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// The `nextCursor` of the previous page (with the same filters and sort).
    pub cursor: Option<String>,
}

/// One entry of a job's schedule history.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleEventDto {
    /// `appointment_added`, `appointment_changed`, `job_followed`, `sla_overridden`,
    /// `sla_breached` or `window_missed`.
    pub kind: String,
    /// The appointment, when it is about one.
    pub appointment_id: Option<Uuid>,
    /// What changed.
    pub data: serde_json::Value,
    /// Who, when a person did.
    pub actor_user_id: Option<Uuid>,
    /// Why, when given.
    pub reason: Option<String>,
    /// When the server recorded it.
    pub at: DateTime<Utc>,
    /// When the device says it happened (a move made in the field; an offline one arrives
    /// later, so this may be well before `at`).
    pub device_time: Option<DateTime<Utc>>,
    /// Where the device was, when it said.
    pub location: Option<crate::v1::technician::FixDto>,
}

impl From<ScheduleEvent> for ScheduleEventDto {
    fn from(e: ScheduleEvent) -> Self {
        Self {
            kind: e.kind,
            appointment_id: e.appointment_id.map(|a| a.as_uuid()),
            data: e.data,
            actor_user_id: e.actor.map(|a| a.as_uuid()),
            reason: e.reason.map(|r| r.as_str().to_owned()),
            at: e.at,
            device_time: e.device_time,
            location: e.location.map(Into::into),
        }
    }
}

/// A job's whole history.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobHistoryDto {
    /// The job's own events (as `job/v1/timeline`).
    pub job_events: Vec<JobEventDto>,
    /// Its schedule's events, oldest first.
    pub schedule_events: Vec<ScheduleEventDto>,
}

impl From<JobHistory> for JobHistoryDto {
    fn from(h: JobHistory) -> Self {
        Self {
            job_events: h.job_events.into_iter().map(Into::into).collect(),
            schedule_events: h.schedule_events.into_iter().map(Into::into).collect(),
        }
    }
}

fn window(v: &mut Validator, start: DateTime<Utc>, end: DateTime<Utc>) -> Option<TimeWindow> {
    v.check("windowEnd", TimeWindow::parse(start, end))
}

/// `plannedStart` inside the window, when both are valid.
fn planned(
    v: &mut Validator,
    start: Option<DateTime<Utc>>,
    window: Option<TimeWindow>,
) -> Option<Option<DateTime<Utc>>> {
    match (start, window) {
        (Some(s), Some(w)) if s < w.start() || s > w.end() => {
            v.fail(
                "plannedStart",
                "outside_window",
                "the planned start is between windowStart and windowEnd",
            );
            None
        }
        _ => Some(start),
    }
}

fn minutes(v: &mut Validator, raw: Option<i64>) -> Option<Option<u32>> {
    match raw {
        None => Some(None),
        Some(m) if (1..=1_440).contains(&m) => u32::try_from(m).ok().map(Some),
        Some(_) => {
            v.fail(
                "estimatedMinutes",
                "out_of_range",
                "an appointment lasts 1 to 1440 minutes",
            );
            None
        }
    }
}

fn convert_add(i: AddAppointmentInput) -> Result<JobV2Command, ApiError> {
    validate(|v| {
        let window = window(v, i.window_start, i.window_end);
        let planned_start = planned(v, i.planned_start, window);
        let estimated = minutes(v, i.estimated_minutes);
        let reason = v.optional(
            "slaOverrideReason",
            i.sla_override_reason.as_deref(),
            Reason::parse,
        );
        let helpers = i.helper_ids.unwrap_or_default();
        if helpers.len() > MAX_HELPERS {
            v.fail(
                "helperIds",
                "too_many",
                &format!("an appointment has at most {MAX_HELPERS} helpers"),
            );
        }
        for (k, h) in helpers.iter().enumerate() {
            if helpers[..k].contains(h) || i.lead_technician_id == Some(*h) {
                v.fail(
                    &format!("helperIds[{k}]"),
                    "duplicate",
                    "a technician is on the crew once: not twice, not as lead and helper",
                );
            }
        }
        Some(JobV2Command::AddAppointment(AddAppointment {
            job_id: JobId::from_uuid(i.job_id),
            window: window?,
            estimated_minutes: estimated?,
            lead: i.lead_technician_id.map(TechnicianId::from_uuid),
            helpers: helpers.into_iter().map(TechnicianId::from_uuid).collect(),
            sla_override: reason?,
            planned_start: planned_start?,
            expected_version: i.expected_version,
        }))
    })
}

fn convert_reschedule(i: RescheduleAppointmentInput) -> Result<JobV2Command, ApiError> {
    validate(|v| {
        let window = window(v, i.window_start, i.window_end);
        let planned_start = planned(v, i.planned_start, window);
        let reason = v.optional(
            "slaOverrideReason",
            i.sla_override_reason.as_deref(),
            Reason::parse,
        );
        Some(JobV2Command::RescheduleAppointment(RescheduleAppointment {
            appointment_id: AppointmentId::from_uuid(i.appointment_id),
            window: window?,
            planned_start: planned_start?,
            sla_override: reason?,
            expected_version: i.expected_version,
        }))
    })
}

fn convert_cancel(i: CancelAppointmentInput) -> Result<JobV2Command, ApiError> {
    validate(|v| {
        let reason = v.check("reason", Reason::parse(&i.reason));
        Some(JobV2Command::CancelAppointment(CancelAppointment {
            appointment_id: AppointmentId::from_uuid(i.appointment_id),
            reason: reason?,
            expected_version: i.expected_version,
        }))
    })
}

fn convert_assign(i: AssignTechnicianInput) -> Result<JobV2Command, ApiError> {
    Ok(JobV2Command::AssignTechnician(AssignTechnician {
        appointment_id: AppointmentId::from_uuid(i.appointment_id),
        technician_id: TechnicianId::from_uuid(i.technician_id),
        role: match i.role {
            CrewRoleDto::Lead => CrewRole::Lead,
            CrewRoleDto::Helper => CrewRole::Helper,
        },
        expected_version: i.expected_version,
    }))
}

fn convert_unassign(i: UnassignTechnicianInput) -> Result<JobV2Command, ApiError> {
    Ok(JobV2Command::UnassignTechnician(UnassignTechnician {
        appointment_id: AppointmentId::from_uuid(i.appointment_id),
        technician_id: TechnicianId::from_uuid(i.technician_id),
        expected_version: i.expected_version,
    }))
}

fn convert_move(i: MoveAppointmentInput) -> Result<JobV2Command, ApiError> {
    validate(|v| {
        let reason = v.optional("reason", i.reason.as_deref(), Reason::parse);
        let device =
            crate::v1::technician::DeviceReportDto::parse_optional(i.device.as_ref(), v, "device");
        if i.action == FieldMoveDto::Hold && i.reason.is_none() {
            v.fail(
                "reason",
                "required",
                "a reason is required to hold an appointment",
            );
        }
        Some(JobV2Command::MoveAppointment(MoveAppointment {
            appointment_id: AppointmentId::from_uuid(i.appointment_id),
            action: match i.action {
                FieldMoveDto::Dispatch => FieldMove::Dispatch,
                FieldMoveDto::StartTravel => FieldMove::StartTravel,
                FieldMoveDto::Arrive => FieldMove::Arrive,
                FieldMoveDto::Finish => FieldMove::Finish,
                FieldMoveDto::Recall => FieldMove::Recall,
                FieldMoveDto::Hold => FieldMove::Hold,
                FieldMoveDto::Resume => FieldMove::Resume,
            },
            reason: reason?,
            expected_version: i.expected_version,
            device: device?,
        }))
    })
}

/// Parses the input and, with a signature, checks its blob before the workflow (see
/// `attachment/v1/attach`): a completion queued offline before its signature was uploaded is
/// refused without spending its key.
async fn checked_complete(ctx: Ctx, i: CompleteJobInput) -> Result<JobV2Command, ApiError> {
    let command = convert_complete(i)?;
    if let JobV2Command::Complete(CompleteJob {
        signature: Some(s), ..
    }) = &command
    {
        ctx.services
            .check_attachable(ctx.caller()?, &s.sha256, s.kind)
            .await?;
    }
    Ok(command)
}

fn convert_complete(i: CompleteJobInput) -> Result<JobV2Command, ApiError> {
    validate(|v| {
        let signature = match &i.signature {
            None => Some(None),
            Some(s) => crate::v1::attachment::parse_attachment(
                v,
                "signature.",
                crate::v1::attachment::AttachmentFields {
                    sha256: &s.sha256,
                    attached_to: hestami_core::blob::AttachedTo::Job,
                    subject_id: i.job_id,
                    kind: hestami_core::blob::AttachmentKind::Signature,
                    caption: None,
                    signed_by: Some(&s.signed_by),
                    device: s.device.as_ref(),
                },
            )
            .map(Some),
        };
        Some(JobV2Command::Complete(CompleteJob {
            job_id: JobId::from_uuid(i.job_id),
            expected_version: i.expected_version,
            signature: signature?,
        }))
    })
}

async fn get(ctx: Ctx, i: JobIdInput) -> Result<JobScheduleDto, ApiError> {
    Ok(ctx
        .services
        .job_schedule(ctx.caller()?, JobId::from_uuid(i.job_id))
        .await?
        .into())
}

async fn timeline(ctx: Ctx, i: JobIdInput) -> Result<JobHistoryDto, ApiError> {
    Ok(ctx
        .services
        .job_history(ctx.caller()?, JobId::from_uuid(i.job_id))
        .await?
        .into())
}

async fn list(ctx: Ctx, i: ListJobsV2Input) -> Result<JobPage, ApiError> {
    let page = PageRequest::parse(i.limit, i.cursor.as_deref())?;
    let query = JobQuery {
        statuses: i
            .statuses
            .unwrap_or_default()
            .into_iter()
            .map(Into::into)
            .collect(),
        technician_id: i.technician_id.map(TechnicianId::from_uuid),
        from: i.from,
        to: i.to,
        unassigned_only: i.unassigned_only.unwrap_or(false),
        breached_only: i.breached_only.unwrap_or(false),
        sort: match i.sort {
            None | Some(JobSortDto::Created) => JobSort::Created,
            Some(JobSortDto::SlaDeadline) => JobSort::SlaDeadline,
            Some(JobSortDto::WindowStart) => JobSort::WindowStart,
        },
    };
    let page = ctx.services.job_query(ctx.caller()?, query, page).await?;
    Ok(JobPage {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    })
}

fn name(name: &'static str, summary: &'static str, errors: &'static [&'static str]) -> Name {
    Name {
        namespace: "job",
        version: "v2",
        name,
        summary,
        errors,
    }
}

pub(crate) fn render(s: JobSchedule) -> JobScheduleDto {
    s.into()
}

pub(crate) fn procedures() -> Vec<Procedure> {
    vec![
        mutation(
            name(
                "addAppointment",
                "Add a visit to a job, with its window and crew (every rule applies to every member; a first visit after the SLA deadline needs an override)",
                &[
                    "NOT_FOUND",
                    "VERSION_CONFLICT",
                    "JOB_NOT_SCHEDULABLE",
                    "SLA_WINDOW_EXCEEDED",
                    "SLA_OVERRIDE_NOT_PERMITTED",
                    "COMPLIANCE_REQUIREMENTS_NOT_MET",
                    "TECHNICIAN_INELIGIBLE",
                ],
            ),
            convert_add,
            render,
        ),
        mutation(
            name(
                "rescheduleAppointment",
                "Give a scheduled visit a new window (its crew is checked again)",
                &[
                    "NOT_FOUND",
                    "VERSION_CONFLICT",
                    "JOB_NOT_SCHEDULABLE",
                    "APPOINTMENT_TRANSITION_NOT_ALLOWED",
                    "SLA_WINDOW_EXCEEDED",
                    "SLA_OVERRIDE_NOT_PERMITTED",
                    "COMPLIANCE_REQUIREMENTS_NOT_MET",
                    "TECHNICIAN_INELIGIBLE",
                ],
            ),
            convert_reschedule,
            render,
        ),
        mutation(
            name(
                "cancelAppointment",
                "Call a visit off",
                &[
                    "NOT_FOUND",
                    "VERSION_CONFLICT",
                    "JOB_NOT_SCHEDULABLE",
                    "APPOINTMENT_TRANSITION_NOT_ALLOWED",
                ],
            ),
            convert_cancel,
            render,
        ),
        mutation(
            name(
                "assignTechnician",
                "Put a technician on a visit's crew, as lead or helper",
                &[
                    "NOT_FOUND",
                    "VERSION_CONFLICT",
                    "JOB_NOT_SCHEDULABLE",
                    "APPOINTMENT_CREW_LOCKED",
                    "APPOINTMENT_ALREADY_ON_CREW",
                    "APPOINTMENT_TOO_MANY_HELPERS",
                    "TECHNICIAN_INELIGIBLE",
                ],
            ),
            convert_assign,
            render,
        ),
        mutation(
            name(
                "unassignTechnician",
                "Take a technician off a visit's crew",
                &[
                    "NOT_FOUND",
                    "VERSION_CONFLICT",
                    "JOB_NOT_SCHEDULABLE",
                    "APPOINTMENT_CREW_LOCKED",
                    "APPOINTMENT_NOT_ON_CREW",
                    "APPOINTMENT_LEAD_REQUIRED",
                ],
            ),
            convert_unassign,
            render,
        ),
        mutation(
            name(
                "moveAppointment",
                "Move a visit in the field: dispatch, start travel, arrive, finish, recall, hold, resume",
                &[
                    "NOT_FOUND",
                    "VERSION_CONFLICT",
                    "JOB_NOT_SCHEDULABLE",
                    "APPOINTMENT_TRANSITION_NOT_ALLOWED",
                    "APPOINTMENT_NO_LEAD",
                    "TECHNICIAN_INELIGIBLE",
                ],
            ),
            convert_move,
            render,
        ),
        mutation_async(
            name(
                "complete",
                "Complete a job whose visits are all done or cancelled (one done) and whose required forms are answered, with the customer's signature",
                &[
                    "NOT_FOUND",
                    "VERSION_CONFLICT",
                    "JOB_HAS_NO_APPOINTMENTS",
                    "JOB_APPOINTMENTS_OPEN",
                    "JOB_NO_VISIT_DONE",
                    "JOB_INVALID_TRANSITION",
                    "FORMS_INCOMPLETE",
                    "BLOB_NOT_FOUND",
                    "ATTACHMENT_TYPE_MISMATCH",
                ],
            ),
            checked_complete,
            render,
        ),
        query(
            name("get", "A job with its appointments", &["NOT_FOUND"]),
            get,
        ),
        mutation(
            name(
                "addNote",
                "Add a note to a job or one of its appointments (append-only: notes never conflict)",
                &["NOT_FOUND"],
            ),
            convert_add_note,
            <NoteDto as From<Note>>::from,
        ),
        query(
            name("notes", "A job's notes, oldest first", &["NOT_FOUND"]),
            notes,
        ),
        query(
            name(
                "timeline",
                "A job's events and its schedule's (visits, crews, SLA overrides and breaches, missed windows)",
                &["NOT_FOUND"],
            ),
            timeline,
        ),
        query(
            name(
                "list",
                "Jobs filtered by states, technician, window, unassigned or breached; by creation, SLA deadline or window",
                &[],
            ),
            list,
        ),
    ]
}
