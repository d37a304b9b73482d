//! The job lifecycle (`job/v1`, workflow `job_lifecycle_v1`) and technician assignment
//! (`dispatch/v1/assignTech`, workflow `dispatch_assignment_v1`).
//!
//! Every change is decided by `hestami_core::job` and saved with its event and its change-feed
//! row in the same transaction; a refusal changes nothing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use hestami_core::estimate::PlannedWork;
use hestami_core::ids::{JobId, TechnicianId, UserId};
use hestami_core::job::{
    self as core_job, Guards, Job, JobAction, JobChange, JobCommand, JobEdit, JobError, JobEvent,
    JobStatus, NewJob, Priority, TimeWindow,
};
use hestami_core::pricebook::{MAX_LINES, Quote, QuoteLine, QuoteRequest};
use hestami_core::text::{Description, Reason, Summary, TradeCode};
use hestami_core::workforce::assignment_refusals;

use super::{Caller, Command, Page, PageRequest, Services, check_version};
use crate::db::{Row, args};
use crate::directory::{ORGANIZATION_COLUMNS, decode_organization, parse_stored};
use crate::engine::WorkflowCtx;
use crate::error::{Failure, FailureKind, StoreError};
use crate::store::{Operation, TenantTx, new_id};

/// The workflow of a job's life.
pub const WORKFLOW: &str = "job_lifecycle_v1";
/// The workflow that assigns technicians.
pub const DISPATCH_WORKFLOW: &str = "dispatch_assignment_v1";

/// `job/v1/schedule`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleJob {
    /// Which job.
    pub job_id: JobId,
    /// The appointment window.
    pub window: TimeWindow,
    /// Fail with `VERSION_CONFLICT` unless the job is at this version.
    pub expected_version: Option<i64>,
}

/// `job/v1/updateStatus`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateStatus {
    /// Which job.
    pub job_id: JobId,
    /// The state to move to.
    pub status: JobStatus,
    /// Why.
    pub reason: Option<Reason>,
    /// Fail with `VERSION_CONFLICT` unless the job is at this version.
    pub expected_version: Option<i64>,
}

/// `job/v1/callback`: a new job linked to a finished one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RaiseCallback {
    /// The finished job.
    pub job_id: JobId,
    /// The new job's summary; by default `Callback: <original summary>`.
    pub summary: Option<Summary>,
    /// Details.
    pub description: Option<Description>,
    /// The new job's priority; by default the original's.
    pub priority: Option<Priority>,
    /// Why the customer called back.
    pub reason: Option<Reason>,
}

/// `job/v1/recordActuals`: labour time and materials used on the job, for an invoice
/// `from: actuals`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordActuals {
    /// Which job.
    pub job_id: JobId,
    /// What was used, as lines to price (pricebook items, or custom lines).
    pub lines: Vec<QuoteLine>,
}

/// `job/v1/update`: correct what a job is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateJob {
    /// Which job.
    pub job_id: JobId,
    /// What changes.
    pub edit: JobEdit,
    /// Fail with `VERSION_CONFLICT` unless the job is at this version.
    pub expected_version: Option<i64>,
}

/// Who recorded a line of a job's actuals, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActualRecord {
    /// The line's id.
    pub id: uuid::Uuid,
    /// Who recorded it (unknown for lines recorded before this was kept).
    pub recorded_by: Option<UserId>,
    /// When.
    pub recorded_at: DateTime<Utc>,
}

/// The work of a job: what its approved estimate planned and what was recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobWork {
    /// The job.
    pub job_id: JobId,
    /// The approved option handed to it by `estimate/v1/convertToJob`.
    pub planned: Option<PlannedWork>,
    /// The labour time and materials recorded, oldest first.
    pub actuals: Vec<QuoteLine>,
    /// Who recorded each line of `actuals` and when, in the same order. (Absent from answers
    /// journalled before it was kept.)
    #[serde(default)]
    pub recorded: Vec<ActualRecord>,
    /// For `recordActuals`: the lines just recorded, priced at today's pricebook.
    #[serde(default)]
    pub priced: Option<Quote>,
    /// For `recordActuals`: the job's version after it (recording is on its timeline).
    #[serde(default)]
    pub job_version: Option<i64>,
}

/// `dispatch/v1/assignTech`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignTech {
    /// Which job.
    pub job_id: JobId,
    /// Who.
    pub technician_id: TechnicianId,
    /// Fail with `VERSION_CONFLICT` unless the job is at this version.
    pub expected_version: Option<i64>,
}

/// The job namespace's mutating procedures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "procedure", content = "input")]
pub enum JobLifecycleCommand {
    /// `job/v1/create`.
    #[serde(rename = "job/v1/create")]
    Create(NewJob),
    /// `job/v1/schedule`.
    #[serde(rename = "job/v1/schedule")]
    Schedule(ScheduleJob),
    /// `job/v1/updateStatus`.
    #[serde(rename = "job/v1/updateStatus")]
    UpdateStatus(UpdateStatus),
    /// `job/v1/callback`.
    #[serde(rename = "job/v1/callback")]
    Callback(RaiseCallback),
    /// `job/v1/recordActuals`.
    #[serde(rename = "job/v1/recordActuals")]
    RecordActuals(RecordActuals),
    /// `job/v1/update`.
    #[serde(rename = "job/v1/update")]
    Update(UpdateJob),
}

impl Command for JobLifecycleCommand {
    const WORKFLOW: &'static str = WORKFLOW;
    fn procedure(&self) -> &'static str {
        match self {
            Self::Create(_) => "job/v1/create",
            Self::Schedule(_) => "job/v1/schedule",
            Self::UpdateStatus(_) => "job/v1/updateStatus",
            Self::Callback(_) => "job/v1/callback",
            Self::RecordActuals(_) => "job/v1/recordActuals",
            Self::Update(_) => "job/v1/update",
        }
    }
    fn subject(&self) -> Option<super::Subject> {
        match self {
            Self::Create(_) => None,
            Self::Schedule(s) => Some(super::Subject::Job(s.job_id)),
            Self::UpdateStatus(u) => Some(super::Subject::Job(u.job_id)),
            Self::Callback(c) => Some(super::Subject::Job(c.job_id)),
            Self::RecordActuals(r) => Some(super::Subject::Job(r.job_id)),
            Self::Update(u) => Some(super::Subject::Job(u.job_id)),
        }
    }
}

/// The dispatch namespace's mutating procedures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "procedure", content = "input")]
pub enum DispatchCommand {
    /// `dispatch/v1/assignTech`.
    #[serde(rename = "dispatch/v1/assignTech")]
    AssignTech(AssignTech),
    /// `dispatch/v1/updateSettings`.
    #[serde(rename = "dispatch/v1/updateSettings")]
    UpdateSettings(UpdateSchedulingSettings),
}

/// `dispatch/v1/updateSettings`: the organization's travel model and arrival windows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateSchedulingSettings {
    /// The new settings (checked by `SchedulingSettings::parse`).
    pub settings: hestami_core::dispatch::board::SchedulingSettings,
    /// Fail with `VERSION_CONFLICT` unless the settings are at this version (0: never set).
    pub expected_version: Option<i64>,
}

impl Command for DispatchCommand {
    const WORKFLOW: &'static str = DISPATCH_WORKFLOW;
    fn procedure(&self) -> &'static str {
        match self {
            Self::AssignTech(_) => "dispatch/v1/assignTech",
            Self::UpdateSettings(_) => "dispatch/v1/updateSettings",
        }
    }
}

/// A core refusal as the API reports it.
pub fn job_failure(error: &JobError) -> Failure {
    let failure = Failure::refusal(error.is_state_conflict(), error.code(), error.to_string());
    match error {
        JobError::InvalidTransition { from, allowed, .. }
        | JobError::ActionNotAllowed { from, allowed, .. } => {
            failure.with_details(serde_json::json!({ "currentStatus": from, "allowed": allowed }))
        }
        _ => failure,
    }
}

pub(crate) async fn run(
    mut ctx: WorkflowCtx,
    command: JobLifecycleCommand,
) -> Result<serde_json::Value, StoreError> {
    if let JobLifecycleCommand::RecordActuals(r) = command {
        let work = ctx
            .step("record_actuals", move |tx| Box::pin(record_actuals(tx, r)))
            .await?;
        return Ok(serde_json::to_value(work)?);
    }
    Ok(serde_json::to_value(run_lifecycle(ctx, command).await?)?)
}

async fn run_lifecycle(
    mut ctx: WorkflowCtx,
    command: JobLifecycleCommand,
) -> Result<Job, StoreError> {
    match command {
        JobLifecycleCommand::RecordActuals(_) => Err(StoreError::Internal(
            "recordActuals is not a lifecycle change".into(),
        )),
        JobLifecycleCommand::Create(new) => {
            ctx.step("insert_job", move |tx| Box::pin(create(tx, new)))
                .await
        }
        JobLifecycleCommand::Update(u) => {
            ctx.step("update_job", move |tx| Box::pin(update(tx, u)))
                .await
        }
        JobLifecycleCommand::Schedule(s) => {
            ctx.step("schedule_job", move |tx| {
                Box::pin(async move {
                    let (job, v2, _) = load_full(tx, s.job_id, true).await?;
                    check_version("job", s.expected_version, job.version)?;
                    super::appointment::refuse_v1_move(v2)?;
                    let command = JobCommand::Schedule { window: s.window };
                    // The state machine first (a closed job's refusal is about its state), then
                    // whether the organization may do this trade there on that date.
                    core_job::decide(&job, &command, &Guards::default())
                        .map_err(|e| job_failure(&e))?;
                    super::eligibility::ensure_compliant(tx, &job, s.window).await?;
                    // A new window for a job that has its technician: they must fit it too.
                    if let Some(technician) = job.technician_id {
                        super::eligibility::ensure_eligible(tx, &job, technician, s.window).await?;
                    }
                    apply(tx, &job, command, None).await
                })
            })
            .await
        }
        JobLifecycleCommand::UpdateStatus(u) => {
            ctx.step("update_job_status", move |tx| {
                Box::pin(async move {
                    let (job, v2, _) = load_full(tx, u.job_id, true).await?;
                    check_version("job", u.expected_version, job.version)?;
                    let command = command_for_target(&job, u.status)?;
                    super::appointment::v1_command_allowed(v2, &command)?;
                    if v2 && matches!(command, JobCommand::Cancel) {
                        super::appointment::ensure_nobody_on_site(tx, &job).await?;
                    }
                    // Entering dispatched, whether by dispatch or by resuming a job held there,
                    // hands the job to its technician: every eligibility rule applies again. (A
                    // v2 job's visits were each checked for their whole crew when dispatched;
                    // resuming the job hands nobody anything new.)
                    if u.status == JobStatus::Dispatched
                        && !v2
                        && let (Some(technician), Some(window)) = (job.technician_id, job.window)
                    {
                        core_job::decide(&job, &command, &Guards::default())
                            .map_err(|e| job_failure(&e))?;
                        super::eligibility::ensure_eligible(tx, &job, technician, window).await?;
                    }
                    let next = apply(tx, &job, command, u.reason).await?;
                    if v2 {
                        // A cancelled job's visits are cancelled; a resumed one follows them.
                        return super::appointment::after_v1_move(tx, &next).await;
                    }
                    Ok(next)
                })
            })
            .await
        }
        JobLifecycleCommand::Callback(c) => {
            let original_id = c.job_id;
            let reason = c.reason.clone();
            // Two aggregates, two steps: the new job, then the link on the original. A crash in
            // between resumes at the second step and never creates a second callback job.
            let callback = ctx
                .step("insert_callback_job", move |tx| {
                    Box::pin(async move {
                        let original = load(tx, c.job_id, false).await?;
                        let probe = JobCommand::Callback {
                            callback_job_id: original.id,
                        };
                        core_job::decide(&original, &probe, &Guards::default())
                            .map_err(|e| job_failure(&e))?;
                        let summary = match c.summary {
                            Some(s) => s,
                            None => callback_summary(&original.summary),
                        };
                        create(
                            tx,
                            NewJob {
                                customer_id: original.customer_id,
                                property_id: original.property_id,
                                trade: original.trade.clone(),
                                priority: c.priority.unwrap_or(original.priority),
                                summary,
                                description: c.description,
                                callback_of: Some(original.id),
                                min_skill_level: original.min_skill_level,
                                required_certifications: original.required_certifications.clone(),
                            },
                        )
                        .await
                    })
                })
                .await?;
            let callback_job_id = callback.id;
            ctx.step("link_callback", move |tx| {
                Box::pin(async move {
                    let original = load(tx, original_id, true).await?;
                    apply(
                        tx,
                        &original,
                        JobCommand::Callback { callback_job_id },
                        reason,
                    )
                    .await
                })
            })
            .await?;
            Ok(callback)
        }
    }
}

/// `job/v1/update`: the state machine first (a closed job's refusal is about its state), then
/// what the change affects: a new trade must be in the catalogue and the organization compliant
/// for it at the property on the window; new requirements must be met by whoever is already
/// assigned (the v1 technician, or the crew of every visit not yet over); a new priority moves
/// the SLA deadline and its timer while the job is not reached.
async fn update(tx: &mut TenantTx, u: UpdateJob) -> Result<Job, StoreError> {
    let (job, v2, breached_at) = load_full(tx, u.job_id, true).await?;
    check_version("job", u.expected_version, job.version)?;
    if u.edit.fields().is_empty() {
        // Nothing to change: the job as it is, without an event.
        return Ok(job);
    }
    let org = crate::directory::load_organization(tx, false).await?;
    // A new priority's window, capped as at creation for a member.
    let sla = match u.edit.priority {
        Some(_) => match super::maintenance::membership(tx, job.customer_id)
            .await?
            .priority
        {
            Some(member) => org.sla.for_member(member),
            None => org.sla,
        },
        None => org.sla,
    };
    let command = JobCommand::Update {
        edit: u.edit.clone(),
        sla,
    };
    let (after, _) = core_job::execute(
        &job,
        &command,
        &Guards::default(),
        tx.actor(),
        None,
        tx.now(),
    )
    .map_err(|e| job_failure(&e))?;
    if let Some(trade) = &u.edit.trade {
        super::trades::ensure_known(tx, vec![("trade".to_owned(), trade.clone())]).await?;
    }
    if u.edit.changes_requirements() {
        if v2 {
            use hestami_core::appointment::AppointmentStatus as V;
            let visits = super::appointment::load_of_job(tx, job.id, false).await?;
            for visit in visits
                .iter()
                .filter(|v| !matches!(v.status, V::Done | V::Cancelled))
            {
                super::eligibility::ensure_compliant(tx, &after, visit.window).await?;
                let crew = super::appointment::crew_of(visit);
                if !crew.is_empty() {
                    super::appointment::check_crew(tx, &after, visit.id, visit.occupied(), &crew)
                        .await?;
                }
            }
        } else if let Some(window) = job.window {
            super::eligibility::ensure_compliant(tx, &after, window).await?;
            if let Some(technician) = job.technician_id {
                super::eligibility::ensure_eligible(tx, &after, technician, window).await?;
            }
        }
    }
    let next = apply(tx, &job, command, None).await?;
    if next.sla_deadline != job.sla_deadline && breached_at.is_none() {
        super::appointment::arm_sla_timer(tx, &next).await?;
    }
    Ok(next)
}

pub(crate) async fn record_actuals(
    tx: &mut TenantTx,
    r: RecordActuals,
) -> Result<JobWork, StoreError> {
    let job = load(tx, r.job_id, true).await?;
    // Refused for a closed or cancelled job before anything is priced.
    let lines = u32::try_from(r.lines.len()).unwrap_or(u32::MAX);
    core_job::decide(
        &job,
        &JobCommand::RecordActuals { lines },
        &Guards::default(),
    )
    .map_err(|e| job_failure(&e))?;
    // Price the lines now, so that only lines an invoice can price are recorded (every problem
    // reported at `lines[i]…`); the invoice prices them again when it is made.
    let request = QuoteRequest {
        lines: r.lines.clone(),
        discount: None,
    };
    let at = super::pricebook::PriceAt::work(job.customer_id, job.property_id);
    let priced = super::pricebook::price(tx, Some(at), &request, "").await?;
    let recorded = super::invoice::actuals_of(tx, job.id).await?.len();
    if recorded + r.lines.len() > MAX_LINES {
        return Err(Failure::new(
            FailureKind::RuleViolation,
            "JOB_ACTUALS_LIMIT",
            format!(
                "a job holds at most {MAX_LINES} recorded lines (an invoice prices at most that many); it has {recorded}"
            ),
        )
        .into());
    }
    let org = tx.org();
    let now = tx.now();
    let actor = tx.actor().map(|a| a.as_uuid());
    let mut changes = Vec::with_capacity(r.lines.len());
    for line in &r.lines {
        let id = new_id();
        tx.execute(
            "INSERT INTO job_actuals (organization_id, id, job_id, line, recorded_at, recorded_by) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            args![
                org,
                id,
                job.id.as_uuid(),
                serde_json::to_string(line)?,
                now,
                actor
            ],
        )
        .await?;
        changes.push((id, 1, Operation::Created));
    }
    tx.record_changes("job_actual", &changes).await?;
    // On the job's timeline, with who and when (nothing recorded, no event).
    let version = if lines == 0 {
        job.version
    } else {
        apply(tx, &job, JobCommand::RecordActuals { lines }, None)
            .await?
            .version
    };
    let mut work = work_of(tx, job.id).await?;
    work.priced = Some(priced);
    work.job_version = Some(version);
    Ok(work)
}

/// What was planned for a job and what was recorded on it, with who recorded each line.
pub(crate) async fn work_of(tx: &mut TenantTx, job_id: JobId) -> Result<JobWork, StoreError> {
    let org = tx.org();
    let rows = tx
        .fetch_all(
            "SELECT id, line, recorded_at, recorded_by FROM job_actuals \
             WHERE organization_id = $1 AND job_id = $2 ORDER BY recorded_at, id",
            args![org, job_id.as_uuid()],
        )
        .await?;
    let mut actuals = Vec::with_capacity(rows.len());
    let mut recorded = Vec::with_capacity(rows.len());
    for row in &rows {
        actuals.push(serde_json::from_str(&row.get::<String>("line")?)?);
        recorded.push(ActualRecord {
            id: row.get("id")?,
            recorded_by: row
                .get::<Option<uuid::Uuid>>("recorded_by")?
                .map(UserId::from_uuid),
            recorded_at: row.get("recorded_at")?,
        });
    }
    Ok(JobWork {
        job_id,
        planned: super::estimate::planned_work_of(tx, job_id).await?,
        actuals,
        recorded,
        priced: None,
        job_version: None,
    })
}

fn callback_summary(original: &Summary) -> Summary {
    let text: String = format!("Callback: {original}")
        .chars()
        .take(Summary::MAX_CHARS)
        .collect();
    Summary::parse(&text).unwrap_or_else(|_| original.clone())
}

pub(crate) async fn run_dispatch(
    mut ctx: WorkflowCtx,
    command: DispatchCommand,
) -> Result<serde_json::Value, StoreError> {
    let a = match command {
        DispatchCommand::AssignTech(a) => a,
        DispatchCommand::UpdateSettings(u) => {
            let view = ctx
                .step("update_scheduling_settings", move |tx| {
                    Box::pin(super::board::update_settings(
                        tx,
                        u.settings,
                        u.expected_version,
                    ))
                })
                .await?;
            return Ok(serde_json::to_value(view)?);
        }
    };
    assign(ctx, a)
        .await
        .and_then(|job| Ok(serde_json::to_value(job)?))
}

async fn assign(mut ctx: WorkflowCtx, a: AssignTech) -> Result<Job, StoreError> {
    ctx.step("assign_technician", move |tx| {
        Box::pin(async move {
            let (job, v2, _) = load_full(tx, a.job_id, true).await?;
            check_version("job", a.expected_version, job.version)?;
            super::appointment::refuse_v1_move(v2)?;
            let tech = super::technician::load(tx, a.technician_id, false).await?;
            let command = JobCommand::Assign {
                technician_id: tech.id,
            };
            core_job::decide(&job, &command, &Guards::default()).map_err(|e| job_failure(&e))?;
            let refusals = match job.window {
                // Scheduled: every eligibility rule at the appointment time.
                Some(window) => {
                    super::eligibility::ensure_eligible(tx, &job, tech.id, window).await?;
                    Vec::new()
                }
                // Not yet scheduled: the rules that hold at any time.
                None => assignment_refusals(&tech, &job.trade),
            };
            if !refusals.is_empty() {
                let message = refusals
                    .iter()
                    .map(|r| r.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(Failure::new(
                    FailureKind::RuleViolation,
                    "TECHNICIAN_INELIGIBLE",
                    format!("the technician cannot take this job: {message}"),
                )
                .with_details(serde_json::json!({ "failedRules": refusals }))
                .into());
            }
            apply(
                tx,
                &job,
                JobCommand::Assign {
                    technician_id: tech.id,
                },
                None,
            )
            .await
        })
    })
    .await
}

/// The command that moves `job` to `target` for `job/v1/updateStatus`.
fn command_for_target(job: &Job, target: JobStatus) -> Result<JobCommand, StoreError> {
    match core_job::action_for_target(job, target) {
        None => Err(job_failure(&JobError::InvalidTransition {
            from: job.status,
            to: target,
            allowed: core_job::allowed_targets(job),
        })
        .into()),
        Some(JobAction::Schedule) => Err(Failure::new(
            FailureKind::RuleViolation,
            "JOB_WINDOW_REQUIRED",
            "scheduling needs an appointment window: use job/v1/schedule",
        )
        .into()),
        Some(action) => JobCommand::for_action(action).ok_or_else(|| {
            StoreError::Internal(format!("no command for action {}", action.as_str()))
        }),
    }
}

pub(crate) async fn create(tx: &mut TenantTx, new: NewJob) -> Result<Job, StoreError> {
    create_due(tx, new, None).await
}

/// Creates a job; with `deadline`, due then instead of by its priority's response window.
pub(crate) async fn create_due(
    tx: &mut TenantTx,
    new: NewJob,
    deadline: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<Job, StoreError> {
    // What the job needs, in one query: the trade catalogue (no row: the default one), the
    // organization (its SLA windows), whether the property is the customer's and the most
    // urgent priority the customer's active maintenance agreements promise.
    let catalogue = super::trades::CATALOGUE;
    let row = tx
        .fetch_optional(
            &format!(
                "SELECT {ORGANIZATION_COLUMNS}, \
                 (SELECT c.version FROM {table} c WHERE c.organization_id = $1) AS catalogue_version, \
                 (SELECT c.{column} FROM {table} c WHERE c.organization_id = $1) AS body, \
                 EXISTS (SELECT 1 FROM properties p WHERE p.organization_id = $1 \
                 AND p.customer_id = $2 AND p.id = $3) AS property_found, \
                 (SELECT {urgency} FROM maintenance_agreements a \
                 JOIN maintenance_plans mp ON mp.organization_id = a.organization_id AND mp.id = a.plan_id \
                 WHERE {members}) AS member_urgency \
                 FROM organizations WHERE id = $1",
                table = catalogue.table,
                column = catalogue.column,
                members = super::maintenance::MEMBER_AGREEMENTS,
                urgency = super::maintenance::member_urgency("mp", ""),
            ),
            args![tx.org(), new.customer_id.as_uuid(), new.property_id.as_uuid()],
        )
        .await?
        .ok_or_else(|| Failure::not_found("organization"))?;
    let trades = match row.get::<Option<i64>>("catalogue_version")? {
        Some(_) => super::decode_body(&row)?,
        None => hestami_core::trade::TradeCatalogue::default_catalogue(),
    };
    super::trades::ensure_known_in(&trades, &[("trade".to_owned(), new.trade.clone())])?;
    let org = decode_organization(&row)?;
    if !row.get::<bool>("property_found")? {
        return Err(Failure::not_found("property").into());
    }
    // A member's job is answered within their plan's priority's window when that is shorter.
    let sla = match row.get::<Option<i64>>("member_urgency")? {
        Some(urgency) => org
            .sla
            .for_member(super::maintenance::priority_of_urgency(urgency)?),
        None => org.sla,
    };
    let id = JobId::from_uuid(new_id());
    let (job, event) = match deadline {
        Some(deadline) => core_job::create_due(id, new, deadline, tx.now(), tx.actor()),
        None => core_job::create(id, new, &sla, tx.now(), tx.actor()),
    };
    tx.execute(
        "INSERT INTO jobs (organization_id, id, version, status, held_from, customer_id, property_id, trade, \
         priority, summary, description, window_start, window_end, technician_id, sla_deadline, \
         visit_started_at, completed_at, callback_of, created_at, updated_at, min_skill_level, \
         required_certifications) \
         VALUES ($1, $2, $3, $4, NULL, $5, $6, $7, $8, $9, $10, NULL, NULL, NULL, $11, NULL, NULL, $12, $13, $13, \
         $14, $15)",
        args![
            tx.org(),
            job.id.as_uuid(),
            job.version,
            job.status.as_str(),
            job.customer_id.as_uuid(),
            job.property_id.as_uuid(),
            job.trade.as_str(),
            job.priority.as_str(),
            job.summary.as_str(),
            job.description.as_ref().map(Description::as_str),
            job.sla_deadline,
            job.callback_of.map(|j| j.as_uuid()),
            job.created_at,
            i64::from(job.min_skill_level.get()),
            serde_json::to_string(&job.required_certifications)?
        ],
    )
    .await?;
    insert_event(tx, job.id, &event).await?;
    super::appointment::arm_sla_timer(tx, &job).await?;
    tx.record_change("job", job.id.as_uuid(), job.version, Operation::Created)
        .await?;
    Ok(job)
}

/// The facts the `invoice` and `settle` guards need, from the job's invoices: one is issued
/// (or paid), and none issued has a balance left. Void and draft invoices do not count.
pub(crate) async fn guards_for(tx: &mut TenantTx, job_id: JobId) -> Result<Guards, StoreError> {
    let org = tx.org();
    let rows = tx
        .fetch_all(
            "SELECT status FROM invoices WHERE organization_id = $1 AND job_id = $2 \
             AND status IN ('issued', 'paid')",
            args![org, job_id.as_uuid()],
        )
        .await?;
    let statuses = rows
        .iter()
        .map(|r| r.get::<String>("status"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Guards {
        invoice_issued: !statuses.is_empty(),
        balance_settled: !statuses.is_empty() && statuses.iter().all(|s| s == "paid"),
    })
}

/// Runs a command on a loaded (and locked) job and saves the result with its event.
pub(crate) async fn apply(
    tx: &mut TenantTx,
    job: &Job,
    command: JobCommand,
    reason: Option<Reason>,
) -> Result<Job, StoreError> {
    // The invoice and settle guards read the job's invoices; the other moves need no facts.
    let guards = if matches!(
        command,
        JobCommand::Invoice | JobCommand::Settle | JobCommand::Close
    ) {
        guards_for(tx, job.id).await?
    } else {
        Guards::default()
    };
    // A refund after the job was paid leaves a balance (the job stays `paid`: the table has no
    // way back); closing waits until it is settled again. A job never invoiced (cancelled work
    // closed by hand) has nothing to settle.
    // (Invoices all voided, or fully refunded and voided: nothing is owed, and it may close.)
    if matches!(command, JobCommand::Close)
        && job.status == JobStatus::Paid
        && guards.invoice_issued
        && !guards.balance_settled
    {
        return Err(job_failure(&JobError::BalanceOutstanding).into());
    }
    let (next, event) = core_job::execute(job, &command, &guards, tx.actor(), reason, tx.now())
        .map_err(|e| job_failure(&e))?;
    // Work is done only with the organization's required forms filled in (checked once the
    // state machine allows the move, so a wrong move is still reported as one).
    if matches!(command, JobCommand::Complete) {
        super::forms::ensure_complete(tx, job).await?;
    }
    tx.execute(
        "UPDATE jobs SET version = $1, status = $2, held_from = $3, window_start = $4, window_end = $5, \
         technician_id = $6, visit_started_at = $7, completed_at = $8, updated_at = $9, trade = $10, \
         priority = $11, summary = $12, description = $13, min_skill_level = $14, \
         required_certifications = $15, sla_deadline = $16 \
         WHERE organization_id = $17 AND id = $18",
        args![
            next.version,
            next.status.as_str(),
            next.held_from.map(JobStatus::as_str),
            next.window.map(|w| w.start()),
            next.window.map(|w| w.end()),
            next.technician_id.map(|t| t.as_uuid()),
            next.visit_started_at,
            next.completed_at,
            next.updated_at,
            next.trade.as_str(),
            next.priority.as_str(),
            next.summary.as_str(),
            next.description.as_ref().map(Description::as_str),
            i64::from(next.min_skill_level.get()),
            serde_json::to_string(&next.required_certifications)?,
            next.sla_deadline,
            tx.org(),
            next.id.as_uuid()
        ],
    )
    .await?;
    insert_event(tx, next.id, &event).await?;
    if matches!(command, JobCommand::Complete) {
        // A maintenance visit billed per visit is billed by its agreement's next tick.
        super::maintenance::visit_completed(tx, next.id).await?;
    }
    let operation = if event.from == Some(event.to)
        && !matches!(event.change, JobChange::Transitioned { .. })
    {
        Operation::Updated
    } else {
        Operation::Transitioned
    };
    tx.record_change("job", next.id.as_uuid(), next.version, operation)
        .await?;
    Ok(next)
}

async fn insert_event(
    tx: &mut TenantTx,
    job_id: JobId,
    event: &JobEvent,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO job_events (organization_id, job_id, version, change, from_status, to_status, actor_user_id, \
         reason, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        args![
            tx.org(),
            job_id.as_uuid(),
            event.version,
            serde_json::to_string(&event.change)?,
            event.from.map(JobStatus::as_str),
            event.to.as_str(),
            event.actor.map(|a| a.as_uuid()),
            event.reason.as_ref().map(Reason::as_str),
            event.at
        ],
    )
    .await?;
    Ok(())
}

const COLUMNS: &str = "id, version, status, held_from, customer_id, property_id, trade, priority, summary, \
                       description, window_start, window_end, technician_id, sla_deadline, visit_started_at, \
                       completed_at, callback_of, created_at, updated_at, min_skill_level, \
                       required_certifications";

/// Loads a job of the transaction's organization; `404` otherwise.
pub(crate) async fn load(tx: &mut TenantTx, id: JobId, lock: bool) -> Result<Job, StoreError> {
    load_full(tx, id, lock).await.map(|(job, _, _)| job)
}

/// Loads a job with whether it is a v2 job (its visits are appointments) and when an SLA
/// breach was recorded; `404` otherwise.
pub(crate) async fn load_full(
    tx: &mut TenantTx,
    id: JobId,
    lock: bool,
) -> Result<(Job, bool, Option<DateTime<Utc>>), StoreError> {
    let sql = format!(
        "SELECT {COLUMNS}, lifecycle, sla_breached_at FROM jobs WHERE organization_id = $1 AND id = $2{}",
        if lock { tx.for_update() } else { "" }
    );
    let org = tx.org();
    let row = tx
        .fetch_optional(&sql, args![org, id.as_uuid()])
        .await?
        .ok_or_else(|| Failure::not_found("job"))?;
    ensure_visible(tx, id).await?;
    Ok((
        decode(&row)?,
        row.get::<String>("lifecycle")? == "v2",
        row.get("sla_breached_at")?,
    ))
}

/// The SQL condition (on `jobs`, aliased as the table itself or `j`) that keeps the jobs a
/// technician is on: their own v1 job, or a job with an appointment whose crew they are on.
/// `$1` is the organization, `tech` the technician's placeholder.
fn on_job_sql(alias: &str, tech: &str) -> String {
    format!(
        "({alias}.technician_id = {tech} OR {alias}.id IN (SELECT a.job_id FROM appointments a \
         JOIN appointment_crew c ON c.organization_id = a.organization_id AND c.appointment_id = a.id \
         WHERE a.organization_id = $1 AND c.technician_id = {tech}))"
    )
}

/// The condition that confines a job query to what the transaction's scope may see (empty for
/// the whole organization); binds the technician into `values` when needed.
///
/// The condition is on the row itself (its technician, or its id among the few jobs of the
/// technician's crew appointments), not `id IN (the visible jobs)`: that form made PostgreSQL
/// read every job of the organization to build the set, 13 s for a first sync among a million
/// jobs (`benches/sync.rs`).
pub(crate) fn scope_sql(tx: &TenantTx, alias: &str, values: &mut Vec<crate::db::Value>) -> String {
    match tx.scope() {
        crate::store::Scope::Organization => String::new(),
        crate::store::Scope::Technician(None) => " AND 1 = 0".to_owned(),
        crate::store::Scope::Technician(Some(t)) => {
            values.push(t.as_uuid().into());
            format!(" AND {}", on_job_sql(alias, &format!("${}", values.len())))
        }
    }
}

/// The condition on a job row `alias` that keeps what the transaction's scope may see (`None`:
/// the whole organization); binds the technician into `values` when needed. An index range
/// (the technician's jobs, or the few of their crew appointments), never a scan of every job.
pub(crate) fn visible_job_condition(
    tx: &TenantTx,
    alias: &str,
    values: &mut Vec<crate::db::Value>,
) -> Option<String> {
    match tx.scope() {
        crate::store::Scope::Organization => None,
        crate::store::Scope::Technician(None) => Some("1 = 0".to_owned()),
        crate::store::Scope::Technician(Some(t)) => {
            values.push(t.as_uuid().into());
            Some(on_job_sql(alias, &format!("${}", values.len())))
        }
    }
}

/// `404` unless the transaction's scope may see the job (a technician sees the jobs they are
/// on, exactly as another organization's ids are not found).
pub(crate) async fn ensure_visible(tx: &mut TenantTx, id: JobId) -> Result<(), StoreError> {
    let mut values = args![tx.org(), id.as_uuid()];
    let scope = scope_sql(tx, "jobs", &mut values);
    if scope.is_empty() {
        return Ok(());
    }
    let sql = format!("SELECT 1 AS seen FROM jobs WHERE organization_id = $1 AND id = $2{scope}");
    match tx.fetch_optional(&sql, values).await? {
        Some(_) => Ok(()),
        None => Err(Failure::not_found("job").into()),
    }
}

fn status(raw: &str) -> Result<JobStatus, StoreError> {
    parse_stored(raw, JobStatus::parse)
}

fn decode(row: &Row) -> Result<Job, StoreError> {
    let window = match (
        row.get::<Option<DateTime<Utc>>>("window_start")?,
        row.get::<Option<DateTime<Utc>>>("window_end")?,
    ) {
        (Some(start), Some(end)) => Some(
            TimeWindow::parse(start, end)
                .map_err(|_| StoreError::Internal("stored window is invalid".into()))?,
        ),
        _ => None,
    };
    Ok(Job {
        id: JobId::from_uuid(row.get("id")?),
        version: row.get("version")?,
        status: status(&row.get::<String>("status")?)?,
        held_from: row
            .get::<Option<String>>("held_from")?
            .as_deref()
            .map(status)
            .transpose()?,
        customer_id: hestami_core::ids::CustomerId::from_uuid(row.get("customer_id")?),
        property_id: hestami_core::ids::PropertyId::from_uuid(row.get("property_id")?),
        trade: parse_stored(&row.get::<String>("trade")?, TradeCode::parse)?,
        priority: parse_stored(&row.get::<String>("priority")?, Priority::parse)?,
        summary: parse_stored(&row.get::<String>("summary")?, Summary::parse)?,
        description: row
            .get::<Option<String>>("description")?
            .map(|d| parse_stored(&d, Description::parse))
            .transpose()?,
        window,
        technician_id: row
            .get::<Option<uuid::Uuid>>("technician_id")?
            .map(TechnicianId::from_uuid),
        sla_deadline: row.get("sla_deadline")?,
        visit_started_at: row.get("visit_started_at")?,
        completed_at: row.get("completed_at")?,
        callback_of: row
            .get::<Option<uuid::Uuid>>("callback_of")?
            .map(JobId::from_uuid),
        min_skill_level: u8::try_from(row.get::<i64>("min_skill_level")?)
            .ok()
            .and_then(|l| hestami_core::workforce::SkillLevel::parse(l).ok())
            .ok_or_else(|| StoreError::Internal("stored skill level is invalid".into()))?,
        required_certifications: serde_json::from_str(
            &row.get::<String>("required_certifications")?,
        )?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

fn decode_event(row: &Row) -> Result<JobEvent, StoreError> {
    Ok(JobEvent {
        version: row.get("version")?,
        change: serde_json::from_str(&row.get::<String>("change")?)?,
        from: row
            .get::<Option<String>>("from_status")?
            .as_deref()
            .map(status)
            .transpose()?,
        to: status(&row.get::<String>("to_status")?)?,
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

/// Filters of `job/v1/list`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only jobs in this state.
    pub status: Option<JobStatus>,
    /// Only jobs assigned to this technician.
    pub technician_id: Option<TechnicianId>,
    /// Only jobs whose window ends after this.
    pub from: Option<DateTime<Utc>>,
    /// Only jobs whose window starts before this.
    pub to: Option<DateTime<Utc>>,
    /// Only this customer's jobs.
    pub customer_id: Option<hestami_core::ids::CustomerId>,
    /// Only the jobs at this property.
    pub property_id: Option<hestami_core::ids::PropertyId>,
}

impl Services {
    /// `job/v1/get`.
    pub async fn job_get(&self, caller: &Caller, id: JobId) -> Result<Job, StoreError> {
        self.read(caller, move |tx| Box::pin(load(tx, id, false)))
            .await
    }

    /// `job/v1/list`.
    pub async fn job_list(
        &self,
        caller: &Caller,
        filter: JobFilter,
        page: PageRequest,
    ) -> Result<Page<Job>, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let org = tx.org();
                let mut values = args![
                    org,
                    page.after,
                    filter.status.map(JobStatus::as_str),
                    filter.technician_id.map(|t| t.as_uuid()),
                    filter.from,
                    filter.to,
                    i64::from(page.limit) + 1,
                    filter.customer_id.map(|c| c.as_uuid()),
                    filter.property_id.map(|p| p.as_uuid())
                ];
                let scope = scope_sql(tx, "jobs", &mut values);
                let rows = tx
                    .fetch_all(
                        &format!(
                            "SELECT {COLUMNS} FROM jobs WHERE organization_id = $1 \
                             AND ($2 IS NULL OR id > $2) AND ($3 IS NULL OR status = $3) \
                             AND ($4 IS NULL OR technician_id = $4) AND ($5 IS NULL OR window_end > $5) \
                             AND ($6 IS NULL OR window_start < $6) AND ($8 IS NULL OR customer_id = $8) \
                             AND ($9 IS NULL OR property_id = $9){scope} ORDER BY id LIMIT $7"
                        ),
                        values,
                    )
                    .await?;
                let items = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
                Ok(page.page(items, |j| j.id.as_uuid()))
            })
        })
        .await
    }

    /// `job/v1/work`: the job's planned work and recorded actuals.
    pub async fn job_work(&self, caller: &Caller, id: JobId) -> Result<JobWork, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                load(tx, id, false).await?;
                work_of(tx, id).await
            })
        })
        .await
    }

    /// `job/v1/timeline`: every event of the job, oldest first.
    pub async fn job_timeline(
        &self,
        caller: &Caller,
        id: JobId,
    ) -> Result<Vec<JobEvent>, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                load(tx, id, false).await?;
                let org = tx.org();
                let rows = tx
                    .fetch_all(
                        "SELECT version, change, from_status, to_status, actor_user_id, reason, at FROM job_events \
                         WHERE organization_id = $1 AND job_id = $2 ORDER BY version",
                        args![org, id.as_uuid()],
                    )
                    .await?;
                rows.iter().map(decode_event).collect()
            })
        })
        .await
    }
}

/// How `job/v2/list` orders jobs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JobSort {
    /// By creation (id).
    #[default]
    Created,
    /// By SLA deadline, the most urgent first.
    SlaDeadline,
    /// By window start, the earliest first (jobs without a window are left out).
    WindowStart,
}

/// Filters and order of `job/v2/list`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobQuery {
    /// Only jobs in one of these states (empty: any).
    pub statuses: Vec<JobStatus>,
    /// Only jobs whose current visit this technician leads.
    pub technician_id: Option<TechnicianId>,
    /// Only jobs whose window ends after this.
    pub from: Option<DateTime<Utc>>,
    /// Only jobs whose window starts before this.
    pub to: Option<DateTime<Utc>>,
    /// Only open jobs nobody leads yet (no technician on the current visit).
    pub unassigned_only: bool,
    /// Only jobs whose SLA is breached (recorded, or the deadline passed before anyone reached
    /// them).
    pub breached_only: bool,
    /// The order.
    pub sort: JobSort,
}

/// Job states before anyone reached the property, as an SQL list:
/// `('requested', 'scheduled', …)` from [`core_job::NOT_YET_REACHED`].
pub(crate) fn not_yet_reached_sql() -> String {
    let states: Vec<String> = core_job::NOT_YET_REACHED
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    format!("({})", states.join(", "))
}

impl Services {
    /// `job/v2/list`: filtered and sorted; the cursor is the last job's id, and the next page
    /// starts after its sort key.
    pub async fn job_query(
        &self,
        caller: &Caller,
        query: JobQuery,
        page: PageRequest,
    ) -> Result<Page<Job>, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let mut values = args![tx.org(), tx.now()];
                let scope = scope_sql(tx, "jobs", &mut values);
                let mut sql =
                    format!("SELECT {COLUMNS} FROM jobs WHERE organization_id = $1{scope}");
                let bind = |values: &mut Vec<crate::db::Value>, v: crate::db::Value| {
                    values.push(v);
                    format!("${}", values.len())
                };
                if !query.statuses.is_empty() {
                    let list: Vec<String> = query
                        .statuses
                        .iter()
                        .map(|s| bind(&mut values, s.as_str().into()))
                        .collect();
                    sql.push_str(&format!(" AND status IN ({})", list.join(", ")));
                }
                if let Some(t) = query.technician_id {
                    let p = bind(&mut values, t.as_uuid().into());
                    sql.push_str(&format!(" AND technician_id = {p}"));
                }
                if let Some(from) = query.from {
                    let p = bind(&mut values, from.into());
                    sql.push_str(&format!(" AND window_end > {p}"));
                }
                if let Some(to) = query.to {
                    let p = bind(&mut values, to.into());
                    sql.push_str(&format!(" AND window_start < {p}"));
                }
                let waiting = not_yet_reached_sql();
                if query.unassigned_only {
                    sql.push_str(&format!(
                        " AND technician_id IS NULL AND status IN {waiting}"
                    ));
                }
                if query.breached_only {
                    sql.push_str(&format!(
                        " AND (sla_breached_at IS NOT NULL OR (sla_deadline <= $2 \
                         AND status IN {waiting} AND visit_started_at IS NULL))"
                    ));
                }
                let key = match query.sort {
                    JobSort::Created => None,
                    JobSort::SlaDeadline => Some("sla_deadline"),
                    JobSort::WindowStart => {
                        sql.push_str(" AND window_start IS NOT NULL");
                        Some("window_start")
                    }
                };
                if let Some(after) = page.after {
                    let p = bind(&mut values, after.into());
                    match key {
                        None => sql.push_str(&format!(" AND id > {p}")),
                        Some(k) => sql.push_str(&format!(
                            " AND ({k} > (SELECT {k} FROM jobs WHERE organization_id = $1 AND id = {p}) \
                             OR ({k} = (SELECT {k} FROM jobs WHERE organization_id = $1 AND id = {p}) AND id > {p}))"
                        )),
                    }
                }
                let limit = bind(&mut values, (i64::from(page.limit) + 1).into());
                match key {
                    None => sql.push_str(&format!(" ORDER BY id LIMIT {limit}")),
                    Some(k) => sql.push_str(&format!(" ORDER BY {k}, id LIMIT {limit}")),
                }
                let rows = tx.fetch_all(&sql, values).await?;
                let items = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
                Ok(page.page(items, |j| j.id.as_uuid()))
            })
        })
        .await
    }
}
