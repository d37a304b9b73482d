//! `job/v1`: the job lifecycle.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use hestami_core::ids::{CustomerId, JobId, PropertyId, TechnicianId};
use hestami_core::job::{
    Job, JobChange, JobEdit, JobEvent, JobStatus, NewJob, Priority, TimeWindow,
};
use hestami_core::org::Currency;
use hestami_core::text::{Description, Reason, Summary, TradeCode};
use hestami_core::workforce::SkillLevel;
use hestami_store::app::PageRequest;
use hestami_store::app::job::{
    JobFilter, JobLifecycleCommand, JobWork, RaiseCallback, RecordActuals, ScheduleJob, UpdateJob,
    UpdateStatus,
};

use super::contractor::name_list;
use super::money::{PlannedWorkDto, QuoteDto, QuoteLineDto, QuoteLineInput, quote_lines};
use super::technician::skill_level;
use crate::error::ApiError;
use crate::rpc::{Ctx, Name, Procedure, mutation, mutation_in, query, validate};

/// A job's state (DESIGN §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatusDto {
    /// Asked for.
    Requested,
    /// Given a window.
    Scheduled,
    /// Sent to its technician.
    Dispatched,
    /// Technician travelling.
    EnRoute,
    /// Technician arrived.
    OnSite,
    /// Work started.
    InProgress,
    /// Work done.
    Completed,
    /// Invoice issued.
    Invoiced,
    /// Invoice paid.
    Paid,
    /// Finished.
    Closed,
    /// Paused.
    OnHold,
    /// Called off.
    Cancelled,
}

impl From<JobStatusDto> for JobStatus {
    fn from(s: JobStatusDto) -> Self {
        use JobStatusDto as D;
        match s {
            D::Requested => Self::Requested,
            D::Scheduled => Self::Scheduled,
            D::Dispatched => Self::Dispatched,
            D::EnRoute => Self::EnRoute,
            D::OnSite => Self::OnSite,
            D::InProgress => Self::InProgress,
            D::Completed => Self::Completed,
            D::Invoiced => Self::Invoiced,
            D::Paid => Self::Paid,
            D::Closed => Self::Closed,
            D::OnHold => Self::OnHold,
            D::Cancelled => Self::Cancelled,
        }
    }
}

/// How urgent a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PriorityDto {
    /// Respond within the emergency window.
    Emergency,
    /// Respond within the urgent window.
    Urgent,
    /// Respond within the routine window.
    Routine,
}

impl From<PriorityDto> for Priority {
    fn from(p: PriorityDto) -> Self {
        match p {
            PriorityDto::Emergency => Self::Emergency,
            PriorityDto::Urgent => Self::Urgent,
            PriorityDto::Routine => Self::Routine,
        }
    }
}

/// An appointment window.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct WindowDto {
    /// Opens.
    pub start: DateTime<Utc>,
    /// Closes.
    pub end: DateTime<Utc>,
}

/// A job.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobDto {
    /// Its id.
    pub id: Uuid,
    /// 1 on creation, +1 on each event.
    pub version: i64,
    /// requested, scheduled, dispatched, en_route, on_site, in_progress, completed, invoiced,
    /// paid, closed, on_hold or cancelled.
    pub status: String,
    /// While on hold: the state it resumes to.
    pub held_from: Option<String>,
    /// Whose job.
    pub customer_id: Uuid,
    /// Where.
    pub property_id: Uuid,
    /// The trade it needs.
    pub trade: String,
    /// emergency, urgent or routine.
    pub priority: String,
    /// One line.
    pub summary: String,
    /// Details.
    pub description: Option<String>,
    /// The appointment window, once scheduled.
    pub window: Option<WindowDto>,
    /// The assigned technician.
    pub technician_id: Option<Uuid>,
    /// Respond by then (from the organization's SLA windows).
    pub sla_deadline: DateTime<Utc>,
    /// When the technician arrived.
    pub visit_started_at: Option<DateTime<Utc>>,
    /// When work was completed.
    pub completed_at: Option<DateTime<Utc>>,
    /// The job this one is a callback for.
    pub callback_of: Option<Uuid>,
    /// The lowest skill level (1 to 5) in the trade a technician needs.
    pub min_skill_level: u8,
    /// Certifications the technician must hold, valid on the appointment date.
    pub required_certifications: Vec<String>,
    /// The states it may move to next.
    pub allowed_next: Vec<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<Job> for JobDto {
    fn from(j: Job) -> Self {
        let allowed_next = hestami_core::job::allowed_targets(&j)
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect();
        Self {
            id: j.id.as_uuid(),
            version: j.version,
            status: j.status.as_str().to_owned(),
            held_from: j.held_from.map(|s| s.as_str().to_owned()),
            customer_id: j.customer_id.as_uuid(),
            property_id: j.property_id.as_uuid(),
            trade: j.trade.as_str().to_owned(),
            priority: j.priority.as_str().to_owned(),
            summary: j.summary.as_str().to_owned(),
            description: j.description.map(|d| d.as_str().to_owned()),
            window: j.window.map(|w| WindowDto {
                start: w.start(),
                end: w.end(),
            }),
            technician_id: j.technician_id.map(|t| t.as_uuid()),
            sla_deadline: j.sla_deadline,
            visit_started_at: j.visit_started_at,
            completed_at: j.completed_at,
            callback_of: j.callback_of.map(|c| c.as_uuid()),
            min_skill_level: j.min_skill_level.get(),
            required_certifications: j
                .required_certifications
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect(),
            allowed_next,
            created_at: j.created_at,
            updated_at: j.updated_at,
        }
    }
}

/// One entry of a job's timeline.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobEventDto {
    /// The job's version after the event.
    pub version: i64,
    /// created, transitioned, assigned, callback_raised, updated or actuals_recorded.
    pub kind: String,
    /// For transitions: schedule, dispatch, start_travel, arrive, start_work, complete, invoice,
    /// settle, close, hold, resume, cancel or unassign.
    pub action: Option<String>,
    /// The state before (null for creation).
    pub from: Option<String>,
    /// The state after.
    pub to: String,
    /// The window set by a schedule.
    pub window: Option<WindowDto>,
    /// The technician assigned.
    pub technician_id: Option<Uuid>,
    /// The callback job raised.
    pub callback_job_id: Option<Uuid>,
    /// For `updated`: the fields it changed (summary, description, priority, trade,
    /// minSkillLevel, requiredCertifications).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed: Option<Vec<String>>,
    /// For `actuals_recorded`: how many lines were recorded (`job/v1/work` lists them with who
    /// and when).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lines: Option<u32>,
    /// Who.
    pub actor_user_id: Option<Uuid>,
    /// Why.
    pub reason: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

impl From<JobEvent> for JobEventDto {
    fn from(e: JobEvent) -> Self {
        let (kind, action, window, technician_id, callback_job_id) = match &e.change {
            JobChange::Created { .. } => ("created", None, None, None, None),
            JobChange::Transitioned { action, window } => (
                "transitioned",
                Some(action.as_str().to_owned()),
                window.map(|w| WindowDto {
                    start: w.start(),
                    end: w.end(),
                }),
                None,
                None,
            ),
            JobChange::Assigned { technician_id } => {
                ("assigned", None, None, Some(technician_id.as_uuid()), None)
            }
            JobChange::CallbackRaised { callback_job_id } => (
                "callback_raised",
                None,
                None,
                None,
                Some(callback_job_id.as_uuid()),
            ),
            JobChange::Updated { .. } => ("updated", None, None, None, None),
            JobChange::ActualsRecorded { .. } => ("actuals_recorded", None, None, None, None),
        };
        let changed = match &e.change {
            JobChange::Updated { edit, .. } => {
                Some(edit.fields().into_iter().map(str::to_owned).collect())
            }
            _ => None,
        };
        let lines = match &e.change {
            JobChange::ActualsRecorded { lines } => Some(*lines),
            _ => None,
        };
        Self {
            version: e.version,
            kind: kind.to_owned(),
            action,
            from: e.from.map(|s| s.as_str().to_owned()),
            to: e.to.as_str().to_owned(),
            window,
            technician_id,
            callback_job_id,
            changed,
            lines,
            actor_user_id: e.actor.map(|a| a.as_uuid()),
            reason: e.reason.map(|r| r.as_str().to_owned()),
            at: e.at,
        }
    }
}

/// `job/v1/create`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateJobInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Whose job.
    pub customer_id: Uuid,
    /// Where: one of the customer's properties.
    pub property_id: Uuid,
    /// The trade it needs, such as `plumbing`.
    pub trade: String,
    /// How urgent.
    pub priority: PriorityDto,
    /// One line.
    pub summary: String,
    /// Details.
    pub description: Option<String>,
    /// The lowest skill level in the trade a technician needs, 1 to 5 (default 1).
    pub min_skill_level: Option<i64>,
    /// Certifications the technician must hold, valid on the appointment date (compared
    /// without regard to case).
    pub required_certifications: Option<Vec<String>>,
}

/// `job/v1/schedule`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleJobInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which job.
    pub job_id: Uuid,
    /// The window opens (RFC 3339).
    #[serde(deserialize_with = "crate::wire::date_time")]
    pub window_start: DateTime<Utc>,
    /// The window closes; after `windowStart`, at most 7 days later.
    #[serde(deserialize_with = "crate::wire::date_time")]
    pub window_end: DateTime<Utc>,
    /// Refuse with `VERSION_CONFLICT` unless the job is at this version.
    pub expected_version: Option<i64>,
}

/// `job/v1/updateStatus`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateStatusInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which job.
    pub job_id: Uuid,
    /// The state to move to: `on_hold` holds, and from `on_hold` the state it was held in
    /// resumes; `scheduled` from `dispatched` or `en_route` unassigns.
    pub status: JobStatusDto,
    /// Why (recorded in the timeline).
    pub reason: Option<String>,
    /// Refuse with `VERSION_CONFLICT` unless the job is at this version.
    pub expected_version: Option<i64>,
}

/// `job/v1/callback`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CallbackInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The finished job the customer called back about.
    pub job_id: Uuid,
    /// The new job's summary (default `Callback: <original summary>`).
    pub summary: Option<String>,
    /// Details.
    pub description: Option<String>,
    /// The new job's priority (default: the original's).
    pub priority: Option<PriorityDto>,
    /// Why.
    pub reason: Option<String>,
}

/// `job/v1/recordActuals`: labour time and materials used on the job, added to what is
/// recorded, for an invoice `from: actuals`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordActualsInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which job (not closed or cancelled).
    pub job_id: Uuid,
    /// What was used, as lines to price (pricebook items, or custom lines); each must price.
    pub lines: Vec<QuoteLineInput>,
}

/// `job/v1/update`: correct what a job is. Absent fields are kept. A new trade, skill level or
/// certifications are checked against the technician or crew already assigned (and the
/// organization's compliance for the trade), and cannot change once the visit started; a new
/// priority moves the SLA deadline of a job not yet reached.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateJobInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which job (not closed or cancelled).
    pub job_id: Uuid,
    /// A new summary.
    #[serde(default)]
    pub summary: Option<String>,
    /// New details.
    #[serde(default)]
    pub description: Option<String>,
    /// Remove the details (a `description` given too replaces them).
    #[serde(default)]
    pub clear_description: Option<bool>,
    /// A new priority.
    #[serde(default)]
    pub priority: Option<PriorityDto>,
    /// A new trade, in the organization's trade catalogue.
    #[serde(default)]
    pub trade: Option<String>,
    /// A new lowest skill level, 1 to 5.
    #[serde(default)]
    pub min_skill_level: Option<i64>,
    /// New required certifications (replacing the old ones).
    #[serde(default)]
    pub required_certifications: Option<Vec<String>>,
    /// Refuse with `VERSION_CONFLICT` unless the job is at this version.
    #[serde(default)]
    pub expected_version: Option<i64>,
}

/// `job/v1/get`, `job/v1/timeline` and `job/v1/work`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobIdInput {
    /// Which job.
    pub job_id: Uuid,
}

/// `job/v1/list`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListJobsInput {
    /// Only jobs in this state.
    pub status: Option<JobStatusDto>,
    /// Only jobs assigned to this technician.
    pub technician_id: Option<Uuid>,
    /// Only jobs whose window ends after this.
    #[serde(default, deserialize_with = "crate::wire::option_date_time")]
    pub from: Option<DateTime<Utc>>,
    /// Only jobs whose window starts before this.
    #[serde(default, deserialize_with = "crate::wire::option_date_time")]
    pub to: Option<DateTime<Utc>>,
    /// Only this customer's jobs.
    pub customer_id: Option<Uuid>,
    /// Only the jobs at this property.
    pub property_id: Option<Uuid>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of jobs.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobPage {
    /// The jobs, in creation order.
    pub items: Vec<JobDto>,
    /// The cursor of the next page, or null on the last.
    pub next_cursor: Option<String>,
}

/// A job's history.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimelineOutput {
    /// Every event, oldest first.
    pub events: Vec<JobEventDto>,
}

/// A job's work: what its approved estimate planned and what was recorded.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobWorkDto {
    /// The job.
    pub job_id: Uuid,
    /// The approved option handed to it by `estimate/v1/convertToJob`, as priced then.
    pub planned: Option<PlannedWorkDto>,
    /// The lines recorded by `job/v1/recordActuals`, oldest first, as given (priced when
    /// invoiced).
    pub actuals: Vec<QuoteLineDto>,
    /// Who recorded each line of `actuals` and when, in the same order.
    pub recorded: Vec<RecordedDto>,
    /// From `job/v1/recordActuals`: the lines just recorded, priced at today's pricebook (an
    /// invoice from actuals prices them again when it is made).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priced: Option<QuoteDto>,
    /// From `job/v1/recordActuals`: the job's version after it (recording is on the timeline).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_version: Option<i64>,
}

/// Who recorded a line of a job's actuals, and when.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordedDto {
    /// The line's id.
    pub id: Uuid,
    /// The user who recorded it (null for lines recorded before this was kept, and for
    /// timers).
    pub recorded_by: Option<Uuid>,
    /// When.
    pub recorded_at: DateTime<Utc>,
}

impl From<JobWork> for JobWorkDto {
    fn from(w: JobWork) -> Self {
        Self {
            job_id: w.job_id.as_uuid(),
            planned: w.planned.as_ref().map(Into::into),
            actuals: w.actuals.iter().map(Into::into).collect(),
            recorded: w
                .recorded
                .iter()
                .map(|r| RecordedDto {
                    id: r.id,
                    recorded_by: r.recorded_by.map(|u| u.as_uuid()),
                    recorded_at: r.recorded_at,
                })
                .collect(),
            priced: w.priced.as_ref().map(Into::into),
            job_version: w.job_version,
        }
    }
}

mutating!(
    CreateJobInput,
    ScheduleJobInput,
    UpdateStatusInput,
    CallbackInput,
    RecordActualsInput,
    UpdateJobInput
);

fn convert_create(i: CreateJobInput) -> Result<JobLifecycleCommand, ApiError> {
    validate(|v| {
        let trade = v.check("trade", TradeCode::parse(&i.trade));
        let summary = v.check("summary", Summary::parse(&i.summary));
        let description = v.optional("description", i.description.as_deref(), Description::parse);
        let min_skill_level = match i.min_skill_level {
            None => Some(SkillLevel::default()),
            Some(level) => v.check("minSkillLevel", skill_level(level)),
        };
        let required_certifications = name_list(
            v,
            "requiredCertifications",
            i.required_certifications.as_deref().unwrap_or_default(),
        );
        Some(JobLifecycleCommand::Create(NewJob {
            customer_id: CustomerId::from_uuid(i.customer_id),
            property_id: PropertyId::from_uuid(i.property_id),
            trade: trade?,
            priority: i.priority.into(),
            summary: summary?,
            description: description?,
            callback_of: None,
            min_skill_level: min_skill_level?,
            required_certifications: required_certifications?,
        }))
    })
}

fn convert_update(i: UpdateJobInput) -> Result<JobLifecycleCommand, ApiError> {
    validate(|v| {
        let summary = v.optional("summary", i.summary.as_deref(), Summary::parse);
        let description = v.optional("description", i.description.as_deref(), Description::parse);
        let trade = v.optional("trade", i.trade.as_deref(), TradeCode::parse);
        let min_skill_level = match i.min_skill_level {
            None => Some(None),
            Some(level) => v.check("minSkillLevel", skill_level(level)).map(Some),
        };
        let required_certifications = match &i.required_certifications {
            None => Some(None),
            Some(list) => name_list(v, "requiredCertifications", list).map(Some),
        };
        Some(JobLifecycleCommand::Update(UpdateJob {
            job_id: JobId::from_uuid(i.job_id),
            edit: JobEdit {
                summary: summary?,
                description: description?,
                clear_description: i.clear_description.unwrap_or(false),
                priority: i.priority.map(Into::into),
                trade: trade?,
                min_skill_level: min_skill_level?,
                required_certifications: required_certifications?,
            },
            expected_version: i.expected_version,
        }))
    })
}

fn convert_schedule(i: ScheduleJobInput) -> Result<JobLifecycleCommand, ApiError> {
    validate(|v| {
        let window = v.check("windowEnd", TimeWindow::parse(i.window_start, i.window_end));
        Some(JobLifecycleCommand::Schedule(ScheduleJob {
            job_id: JobId::from_uuid(i.job_id),
            window: window?,
            expected_version: i.expected_version,
        }))
    })
}

fn convert_update_status(i: UpdateStatusInput) -> Result<JobLifecycleCommand, ApiError> {
    validate(|v| {
        let reason = v.optional("reason", i.reason.as_deref(), Reason::parse);
        Some(JobLifecycleCommand::UpdateStatus(UpdateStatus {
            job_id: JobId::from_uuid(i.job_id),
            status: i.status.into(),
            reason: reason?,
            expected_version: i.expected_version,
        }))
    })
}

fn convert_callback(i: CallbackInput) -> Result<JobLifecycleCommand, ApiError> {
    validate(|v| {
        let summary = v.optional("summary", i.summary.as_deref(), Summary::parse);
        let description = v.optional("description", i.description.as_deref(), Description::parse);
        let reason = v.optional("reason", i.reason.as_deref(), Reason::parse);
        Some(JobLifecycleCommand::Callback(RaiseCallback {
            job_id: JobId::from_uuid(i.job_id),
            summary: summary?,
            description: description?,
            priority: i.priority.map(Into::into),
            reason: reason?,
        }))
    })
}

fn convert_record_actuals(
    i: RecordActualsInput,
    currency: Currency,
) -> Result<JobLifecycleCommand, ApiError> {
    validate(|v| {
        let lines = quote_lines(v, "", i.lines, currency);
        Some(JobLifecycleCommand::RecordActuals(RecordActuals {
            job_id: JobId::from_uuid(i.job_id),
            lines: lines?,
        }))
    })
}

async fn work(ctx: Ctx, i: JobIdInput) -> Result<JobWorkDto, ApiError> {
    Ok(ctx
        .services
        .job_work(ctx.caller()?, JobId::from_uuid(i.job_id))
        .await?
        .into())
}

async fn get(ctx: Ctx, i: JobIdInput) -> Result<JobDto, ApiError> {
    Ok(ctx
        .services
        .job_get(ctx.caller()?, JobId::from_uuid(i.job_id))
        .await?
        .into())
}

async fn list(ctx: Ctx, i: ListJobsInput) -> Result<JobPage, ApiError> {
    let page = PageRequest::parse(i.limit, i.cursor.as_deref())?;
    let filter = JobFilter {
        status: i.status.map(Into::into),
        technician_id: i.technician_id.map(TechnicianId::from_uuid),
        from: i.from,
        to: i.to,
        customer_id: i.customer_id.map(hestami_core::ids::CustomerId::from_uuid),
        property_id: i.property_id.map(hestami_core::ids::PropertyId::from_uuid),
    };
    let page = ctx.services.job_list(ctx.caller()?, filter, page).await?;
    Ok(JobPage {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    })
}

async fn timeline(ctx: Ctx, i: JobIdInput) -> Result<TimelineOutput, ApiError> {
    let events = ctx
        .services
        .job_timeline(ctx.caller()?, JobId::from_uuid(i.job_id))
        .await?;
    Ok(TimelineOutput {
        events: events.into_iter().map(Into::into).collect(),
    })
}

fn name(name: &'static str, summary: &'static str, errors: &'static [&'static str]) -> Name {
    Name {
        namespace: "job",
        version: "v1",
        name,
        summary,
        errors,
    }
}

const TRANSITION_ERRORS: &[&str] = &[
    "NOT_FOUND",
    "VERSION_CONFLICT",
    "JOB_INVALID_TRANSITION",
    "JOB_TECHNICIAN_REQUIRED",
    "JOB_VISIT_NOT_STARTED",
    "JOB_INVOICE_REQUIRED",
    "JOB_BALANCE_OUTSTANDING",
    "JOB_WINDOW_REQUIRED",
    "TECHNICIAN_INELIGIBLE",
    "JOB_USES_APPOINTMENTS",
    "APPOINTMENT_ON_SITE",
    "FORMS_INCOMPLETE",
];

pub(crate) fn procedures() -> Vec<Procedure> {
    vec![
        mutation(
            name(
                "create",
                "Create a job in requested, with its SLA response deadline",
                &["NOT_FOUND", "TRADE_UNKNOWN"],
            ),
            convert_create,
            <JobDto as From<Job>>::from,
        ),
        mutation(
            name(
                "schedule",
                "Give a job an appointment window (requested → scheduled, or a new window)",
                &[
                    "NOT_FOUND",
                    "VERSION_CONFLICT",
                    "JOB_INVALID_TRANSITION",
                    "COMPLIANCE_REQUIREMENTS_NOT_MET",
                    // A new window the assigned technician cannot take (rescheduling an
                    // assigned job checks the technician again).
                    "TECHNICIAN_INELIGIBLE",
                    "JOB_USES_APPOINTMENTS",
                ],
            ),
            convert_schedule,
            <JobDto as From<Job>>::from,
        ),
        mutation(
            name(
                "updateStatus",
                "Move a job to another state of its lifecycle",
                TRANSITION_ERRORS,
            ),
            convert_update_status,
            <JobDto as From<Job>>::from,
        ),
        mutation(
            name(
                "callback",
                "Raise a new job linked to a finished one",
                &["NOT_FOUND", "JOB_CALLBACK_NOT_ALLOWED"],
            ),
            convert_callback,
            <JobDto as From<Job>>::from,
        ),
        mutation(
            name(
                "update",
                "Correct a job's summary, description, priority, trade, skill level or certifications",
                &[
                    "NOT_FOUND",
                    "VERSION_CONFLICT",
                    "JOB_CLOSED",
                    "JOB_VISIT_STARTED",
                    "TRADE_UNKNOWN",
                    "COMPLIANCE_REQUIREMENTS_NOT_MET",
                    "TECHNICIAN_INELIGIBLE",
                ],
            ),
            convert_update,
            <JobDto as From<Job>>::from,
        ),
        query(name("get", "A job", &["NOT_FOUND"]), get),
        query(
            name(
                "list",
                "Jobs, by creation, filtered by state, technician or window",
                &[],
            ),
            list,
        ),
        query(
            name("timeline", "A job's history, oldest first", &["NOT_FOUND"]),
            timeline,
        ),
        mutation_in(
            name(
                "recordActuals",
                "Record labour time and materials used on a job, for an invoice from actuals",
                &["NOT_FOUND", "JOB_CLOSED", "JOB_ACTUALS_LIMIT"],
            ),
            convert_record_actuals,
            <JobWorkDto as From<JobWork>>::from,
        ),
        query(
            name(
                "work",
                "A job's planned work (from its approved estimate) and recorded actuals",
                &["NOT_FOUND"],
            ),
            work,
        ),
    ]
}
