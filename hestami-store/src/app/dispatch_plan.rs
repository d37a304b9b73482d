//! Route optimization over the API: `dispatch/v1/optimize` plans a local day and stores the
//! plan, `dispatch/v1/applyPlan` schedules and assigns it through the same gates as a manual
//! assignment, `dispatch/v1/getPlan` reads it back, and `dispatch/v1/placeVisit` ranks the
//! places for one visit in the day as it stands (the emergency call).
//!
//! The rules are `hestami_core::dispatch::plan` (facts → routing problem → plan) and the
//! solver `hestami_core::dispatch::routing`; this module gathers the facts in one read
//! transaction, runs the solver off the async runtime within the caller's time budget, and
//! records the plan with the version of everything it read.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use hestami_core::appointment::{self as core_appointment, AppointmentCommand};
use hestami_core::dispatch::plan::{self as core_plan, DayFacts, DayPlan, PlanVisit, Weights};
use hestami_core::dispatch::routing::{self, SolverConfig};
use hestami_core::eligibility::TechnicianFacts;
use hestami_core::ids::{AppointmentId, JobId, PlanId, TechnicianId};
use hestami_core::job::{JobStatus, TimeWindow};

use super::appointment::{CrewRole, change, check_crew, load_for_change};
use super::board::load_settings;
use super::eligibility::{OrgRules, day_bounds, needs_for, technicians_with_bookings};
use super::{Caller, Command, Services};
use crate::db::{Row, args};
use crate::directory::load_organization;
use crate::engine::WorkflowCtx;
use crate::error::{Failure, FailureKind, StoreError};
use crate::store::{Operation, TenantTx, new_id};

/// The versioned workflow of `optimize` and `applyPlan`.
pub const WORKFLOW: &str = "dispatch_optimization_v1";
/// The longest time budget a caller may give the solver, in milliseconds.
pub const MAX_BUDGET_MS: u32 = 60_000;
/// The time budget when the caller gives none, in milliseconds.
pub const DEFAULT_BUDGET_MS: u32 = 3_000;
/// The most visits one plan takes.
pub const MAX_PLAN_VISITS: usize = 1_000;
/// The most options `placeVisit` returns.
pub const MAX_PLACE_OPTIONS: usize = super::board::MAX_SLOT_OPTIONS;

/// "This visit stays with this technician."
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pin {
    /// The visit.
    pub appointment_id: AppointmentId,
    /// Who it stays with.
    pub technician_id: TechnicianId,
}

/// `dispatch/v1/optimize`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Optimize {
    /// The local day (in the organization's zone).
    pub date: NaiveDate,
    /// The technicians to plan for (default: every active technician).
    #[serde(default)]
    pub technician_ids: Vec<TechnicianId>,
    /// The visits to plan (default: every appointment of the day not yet dispatched and without
    /// helpers). Visits not planned stay as they are and the plan works around them.
    #[serde(default)]
    pub appointment_ids: Vec<AppointmentId>,
    /// Visits that must stay with a technician.
    #[serde(default)]
    pub pins: Vec<Pin>,
    /// What the plan weighs (see `Weights`).
    #[serde(default)]
    pub weights: Weights,
    /// How long the solver may search, in milliseconds (default 3,000, at most 60,000).
    pub time_budget_ms: Option<u32>,
    /// The solver's seed (default 1): the same facts, seed and iterations give the same plan.
    pub seed: Option<u64>,
}

/// `dispatch/v1/applyPlan`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyPlan {
    /// The plan.
    pub plan_id: PlanId,
    /// Apply what is still valid when something the plan read has changed, and report the rest
    /// (default: refuse the whole plan with `PLAN_STALE`).
    #[serde(default)]
    pub partial: bool,
}

/// The procedures of the optimization workflow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "procedure", content = "input")]
pub enum PlanCommand {
    /// `dispatch/v1/optimize`.
    #[serde(rename = "dispatch/v1/optimize")]
    Optimize(Optimize),
    /// `dispatch/v1/applyPlan`.
    #[serde(rename = "dispatch/v1/applyPlan")]
    ApplyPlan(ApplyPlan),
}

impl Command for PlanCommand {
    const WORKFLOW: &'static str = WORKFLOW;
    fn procedure(&self) -> &'static str {
        match self {
            Self::Optimize(_) => "dispatch/v1/optimize",
            Self::ApplyPlan(_) => "dispatch/v1/applyPlan",
        }
    }
}

/// One thing a plan read, at the version it read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Read {
    /// `job`, `appointment` or `technician`.
    pub kind: String,
    /// Which.
    pub id: uuid::Uuid,
    /// Its version then.
    pub version: i64,
}

/// Something a plan read that has changed since.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Changed {
    /// `job`, `appointment` or `technician`.
    pub kind: String,
    /// Which.
    pub id: uuid::Uuid,
    /// The version the plan read.
    pub read_version: i64,
    /// The version now (`None`: it is gone, or no longer an active technician).
    pub current_version: Option<i64>,
}

/// A stored plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredPlan {
    /// The plan's id.
    pub plan_id: PlanId,
    /// The local day.
    pub date: NaiveDate,
    /// `proposed` or `applied`.
    pub status: String,
    /// The weights it was made with.
    pub weights: Weights,
    /// The seed.
    pub seed: u64,
    /// The time budget, in milliseconds.
    pub time_budget_ms: u32,
    /// The solver's iterations.
    pub iterations: u64,
    /// The plan: routes, visits left out, figures.
    pub plan: DayPlan,
    /// The version of every job, appointment and technician it read.
    pub reads: Vec<Read>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was applied.
    pub applied_at: Option<DateTime<Utc>>,
}

/// A visit `applyPlan` did not apply, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    /// The visit.
    pub appointment_id: AppointmentId,
    /// `PLAN_STALE`: something it depends on changed since the plan.
    pub reason: String,
}

/// What `applyPlan` did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedPlan {
    /// The plan.
    pub plan_id: PlanId,
    /// Visits now led by the plan's technician at the plan's start.
    pub scheduled: Vec<AppointmentId>,
    /// Visits the plan leaves out that lost their technician (back to the queue).
    pub unassigned: Vec<AppointmentId>,
    /// Visits not applied (partial application only).
    pub skipped: Vec<Skipped>,
    /// What had changed since the plan (partial application only).
    pub changed: Vec<Changed>,
}

/// `dispatch/v1/placeVisit`: where one visit fits into the day as it stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlaceQuery {
    /// The visit.
    pub appointment_id: AppointmentId,
    /// How many options (default 5, at most 50).
    pub limit: Option<u32>,
}

/// One place for a visit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlaceOption {
    /// Who.
    pub technician_id: TechnicianId,
    /// The visit goes after this many of the technician's visits that day.
    pub position: usize,
    /// When the technician would arrive.
    pub arrival: DateTime<Utc>,
    /// When the work would start (pass as `plannedStart`).
    pub start: DateTime<Utc>,
    /// When it would end.
    pub end: DateTime<Utc>,
    /// Kilometres added to the technician's day.
    pub extra_km: f64,
    /// Minutes of driving added.
    pub extra_minutes: f64,
}

/// The places for a visit, cheapest first, and who cannot take it at all.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// The visit.
    pub appointment_id: AppointmentId,
    /// The options, cheapest first (driving added, then technician).
    pub options: Vec<PlaceOption>,
    /// Why there is none, when there is none.
    pub reasons: Vec<String>,
    /// The technicians who may not take it, with their rule codes.
    pub ineligible: Vec<core_plan::TechnicianRefusal>,
}

pub(crate) async fn run(
    mut ctx: WorkflowCtx,
    command: PlanCommand,
) -> Result<serde_json::Value, StoreError> {
    match command {
        PlanCommand::Optimize(o) => {
            let checked = o.clone();
            // The ids are checked in a step of their own: a refusal there does not use up the
            // request's key (see the engine), and the solver only starts on a valid request.
            ctx.step("check_request", move |tx| {
                Box::pin(async move {
                    gather(tx, &checked, Scope::Plan).await?;
                    Ok(())
                })
            })
            .await?;
            let store = ctx.store();
            let org = ctx.organization_id();
            let request = o.clone();
            // The facts are read and solved outside any write transaction; the answer (not the
            // clock) is journalled, so a replay returns the same plan byte for byte.
            let solved: Solved = ctx
                .external("solve", move |_key| async move {
                    let mut tx = store.tenant(org, false).await?;
                    let (facts, reads) = gather(&mut tx, &request, Scope::Plan).await?;
                    tx.commit().await?;
                    solve_day(facts, reads, &request).await
                })
                .await?;
            let stored = ctx
                .step("store_plan", move |tx| Box::pin(store_plan(tx, o, solved)))
                .await?;
            Ok(serde_json::to_value(stored)?)
        }
        PlanCommand::ApplyPlan(a) => {
            let applied = ctx
                .step("apply_plan", move |tx| Box::pin(apply(tx, a)))
                .await?;
            Ok(serde_json::to_value(applied)?)
        }
    }
}

/// What the solve step journals.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Solved {
    plan: DayPlan,
    reads: Vec<Read>,
    iterations: u64,
}

/// Which visits a gathering takes as the ones to plan.
#[derive(Clone, Copy, PartialEq)]
enum Scope {
    /// Those asked for, or every plannable visit of the day.
    Plan,
    /// Exactly the one asked for (placing it; the others stay as they are).
    Place,
}

/// One appointment row of the day.
struct DayVisit {
    id: AppointmentId,
    job_id: JobId,
    version: i64,
    status: String,
    window: TimeWindow,
    planned_start: Option<DateTime<Utc>>,
    minutes: u32,
    lead: Option<TechnicianId>,
    helpers: usize,
}

fn decode_day_visit(row: &Row) -> Result<DayVisit, StoreError> {
    Ok(DayVisit {
        id: AppointmentId::from_uuid(row.get("id")?),
        job_id: JobId::from_uuid(row.get("job_id")?),
        version: row.get("version")?,
        status: row.get("status")?,
        window: TimeWindow::parse(row.get("window_start")?, row.get("window_end")?)
            .map_err(|_| StoreError::Internal("stored window is invalid".into()))?,
        planned_start: row.get("planned_start")?,
        minutes: u32::try_from(row.get::<i64>("estimated_minutes")?).unwrap_or(60),
        lead: row
            .get::<Option<uuid::Uuid>>("lead")?
            .map(TechnicianId::from_uuid),
        helpers: usize::try_from(row.get::<i64>("helpers")?).unwrap_or(0),
    })
}

fn invalid(field: &str, code: &'static str, message: String) -> StoreError {
    Failure::validation(vec![crate::error::FieldError::new(
        field,
        &hestami_core::Invalid::new(code, message),
    )])
    .into()
}

/// Whether a visit in this state can be planned: scheduled, nobody helping (a crew visit
/// keeps its crew and its time), its job still open.
fn plannable(v: &DayVisit) -> bool {
    v.status == "scheduled" && v.helpers == 0
}

/// The facts of the day for `o` and the version of everything read.
async fn gather(
    tx: &mut TenantTx,
    o: &Optimize,
    scope: Scope,
) -> Result<(DayFacts, Vec<Read>), StoreError> {
    let organization = load_organization(tx, false).await?;
    let time_zone = organization.time_zone;
    let tz = time_zone.tz();
    let travel = load_settings(tx, false).await?.settings.travel;
    let (from, to) = day_bounds(tz, o.date);
    let org = tx.org();

    // The day's appointments (by the local date their window starts on), with their lead and
    // how many help.
    let rows = tx
        .fetch_all(
            "SELECT a.id, a.job_id, a.version, a.status, a.window_start, a.window_end, a.planned_start, \
             a.estimated_minutes, \
             (SELECT c.technician_id FROM appointment_crew c WHERE c.organization_id = a.organization_id \
              AND c.appointment_id = a.id AND c.role = 'lead') AS lead, \
             (SELECT COUNT(*) FROM appointment_crew c WHERE c.organization_id = a.organization_id \
              AND c.appointment_id = a.id AND c.role = 'helper') AS helpers \
             FROM appointments a JOIN jobs j ON j.organization_id = a.organization_id AND j.id = a.job_id \
             WHERE a.organization_id = $1 AND a.window_start >= $2 AND a.window_start < $3 \
             AND a.status NOT IN ('done', 'cancelled') AND j.status NOT IN ('cancelled', 'closed') \
             ORDER BY a.window_start, a.id",
            args![org, from, to],
        )
        .await?;
    let day: Vec<DayVisit> = rows
        .iter()
        .map(decode_day_visit)
        .collect::<Result<_, _>>()?;

    // Which of them to plan.
    let chosen: Vec<&DayVisit> = if o.appointment_ids.is_empty() {
        day.iter().filter(|v| plannable(v)).collect()
    } else {
        let mut chosen = Vec::with_capacity(o.appointment_ids.len());
        for id in &o.appointment_ids {
            let Some(v) = day.iter().find(|v| v.id == *id) else {
                // Another day's, another organization's or no appointment at all: a 404 for
                // an id this organization does not hold on that day, as for any other id.
                return Err(Failure::not_found("appointment").into());
            };
            if !plannable(v) {
                return Err(Failure::new(
                    FailureKind::Conflict,
                    "APPOINTMENT_NOT_PLANNABLE",
                    format!(
                        "appointment {} is {} with {} helper(s): only scheduled visits without helpers are planned",
                        id.as_uuid(),
                        v.status,
                        v.helpers
                    ),
                )
                .with_details(serde_json::json!({ "appointmentId": id, "currentStatus": v.status }))
                .into());
            }
            chosen.push(v);
        }
        chosen
    };
    if scope == Scope::Plan && chosen.len() > MAX_PLAN_VISITS {
        return Err(Failure::new(
            FailureKind::RuleViolation,
            "PLAN_TOO_LARGE",
            format!(
                "a plan takes at most {MAX_PLAN_VISITS} visits; the day has {}: plan it in parts with appointmentIds or technicianIds",
                chosen.len()
            ),
        )
        .with_details(serde_json::json!({ "visits": chosen.len(), "max": MAX_PLAN_VISITS }))
        .into());
    }
    let planned: HashSet<AppointmentId> = chosen.iter().map(|v| v.id).collect();

    // The technicians, each with the bookings that stay.
    let mut technicians: Vec<TechnicianFacts> = technicians_with_bookings(tx, from, to).await?;
    if !o.technician_ids.is_empty() {
        for id in &o.technician_ids {
            if !technicians.iter().any(|t| t.technician.id == *id) {
                return Err(Failure::not_found("technician").into());
            }
        }
        technicians.retain(|t| o.technician_ids.contains(&t.technician.id));
    }
    for t in &mut technicians {
        t.appointments
            .retain(|a| a.appointment_id.is_none_or(|id| !planned.contains(&id)));
    }
    // Pins name ids like any other input: one this organization does not hold that day is not
    // found; a visit it holds but does not plan cannot be pinned.
    for pin in &o.pins {
        if !day.iter().any(|v| v.id == pin.appointment_id) {
            return Err(Failure::not_found("appointment").into());
        }
        if !planned.contains(&pin.appointment_id) {
            return Err(Failure::new(
                FailureKind::Conflict,
                "APPOINTMENT_NOT_PLANNABLE",
                format!(
                    "pinned appointment {} is not among the visits to plan",
                    pin.appointment_id.as_uuid()
                ),
            )
            .with_details(serde_json::json!({ "appointmentId": pin.appointment_id }))
            .into());
        }
        if !technicians
            .iter()
            .any(|t| t.technician.id == pin.technician_id)
        {
            return Err(Failure::not_found("technician").into());
        }
    }

    // Each visit's needs, and the organization's compliance for its trade and place.
    let org_rules = OrgRules::load(tx, time_zone).await?;
    let mut jobs = HashMap::new();
    let mut visits = Vec::with_capacity(chosen.len());
    let mut reads = Vec::new();
    for v in &chosen {
        if let std::collections::hash_map::Entry::Vacant(slot) = jobs.entry(v.job_id) {
            slot.insert(super::job::load(tx, v.job_id, false).await?);
        }
        let job = &jobs[&v.job_id];
        let mut needs = needs_for(tx, job, v.window).await?;
        needs.appointment_id = Some(v.id);
        // A led visit at a property without coordinates cannot be routed: it stays as it is,
        // with its lead, and the plan works around it (it is not taken off its technician).
        if needs.location.is_none()
            && let Some(lead) = v.lead
        {
            if o.pins.iter().any(|p| p.appointment_id == v.id) {
                return Err(Failure::new(
                    FailureKind::Conflict,
                    "APPOINTMENT_NOT_PLANNABLE",
                    format!(
                        "pinned appointment {} is at a property without coordinates",
                        v.id.as_uuid()
                    ),
                )
                .with_details(serde_json::json!({ "appointmentId": v.id }))
                .into());
            }
            let occupied = v
                .planned_start
                .and_then(|s| {
                    TimeWindow::parse(s, s + chrono::Duration::minutes(i64::from(v.minutes))).ok()
                })
                .unwrap_or(v.window);
            if let Some(t) = technicians.iter_mut().find(|t| t.technician.id == lead) {
                t.appointments.push(hestami_core::schedule::Appointment {
                    job_id: v.job_id,
                    appointment_id: Some(v.id),
                    window: occupied,
                    location: None,
                });
            }
            continue;
        }
        let compliance = org_rules.facts(&needs, o.date).compliance;
        let sla_open = job.visit_started_at.is_none() && job.status != JobStatus::Completed;
        visits.push(PlanVisit {
            appointment_id: v.id,
            minutes: v.minutes,
            priority: job.priority,
            pinned: o
                .pins
                .iter()
                .find(|p| p.appointment_id == v.id)
                .map(|p| p.technician_id),
            compliance,
            current: v.lead,
            current_start: v.planned_start,
            sla_deadline: sla_open.then_some(job.sla_deadline),
            needs,
        });
    }
    for (id, job) in &jobs {
        reads.push(read("job", id.as_uuid(), job.version));
    }
    // Every appointment of the day: the ones planned and the ones the plan works around.
    for v in &day {
        reads.push(read("appointment", v.id.as_uuid(), v.version));
    }
    for t in &technicians {
        reads.push(read(
            "technician",
            t.technician.id.as_uuid(),
            t.technician.version,
        ));
    }
    reads.sort_by(|a, b| (&a.kind, a.id).cmp(&(&b.kind, b.id)));
    let facts = DayFacts {
        day: o.date,
        org: org_rules.base(),
        technicians,
        visits,
        travel,
    };
    Ok((facts, reads))
}

fn read(kind: &str, id: uuid::Uuid, version: i64) -> Read {
    Read {
        kind: kind.to_owned(),
        id,
        version,
    }
}

/// Solves the day on a blocking thread within the request's time budget.
async fn solve_day(facts: DayFacts, reads: Vec<Read>, o: &Optimize) -> Result<Solved, StoreError> {
    let weights = o.weights;
    let seed = o.seed.unwrap_or(1);
    let budget = StdDuration::from_millis(u64::from(o.time_budget_ms.unwrap_or(DEFAULT_BUDGET_MS)));
    tokio::task::spawn_blocking(move || {
        let mapped = core_plan::to_problem(&facts, &weights);
        let started = Instant::now();
        let mut clock = |_iterations: u64| {
            let spent = started.elapsed();
            (spent < budget).then(|| spent.as_secs_f64() / budget.as_secs_f64())
        };
        let solution = routing::solve(
            &mapped.problem,
            &mapped.matrix,
            &SolverConfig {
                seed,
                ..SolverConfig::default()
            },
            &mut clock,
        )
        .map_err(|e| StoreError::Internal(format!("the day's routing problem is invalid: {e}")))?;
        let plan = core_plan::to_plan(&facts, &mapped, &solution);
        Ok(Solved {
            plan,
            reads,
            iterations: solution.iterations,
        })
    })
    .await
    .map_err(|e| StoreError::Internal(format!("the solver stopped: {e}")))?
}

async fn store_plan(
    tx: &mut TenantTx,
    o: Optimize,
    solved: Solved,
) -> Result<StoredPlan, StoreError> {
    let (org, now) = (tx.org(), tx.now());
    let id = PlanId::from_uuid(new_id());
    let stored = StoredPlan {
        plan_id: id,
        date: o.date,
        status: "proposed".into(),
        weights: o.weights,
        seed: o.seed.unwrap_or(1),
        time_budget_ms: o.time_budget_ms.unwrap_or(DEFAULT_BUDGET_MS),
        iterations: solved.iterations,
        plan: solved.plan,
        reads: solved.reads,
        created_at: now,
        applied_at: None,
    };
    tx.execute(
        "INSERT INTO dispatch_plans (organization_id, id, day, status, plan, reads, created_at, applied_at) \
         VALUES ($1, $2, $3, 'proposed', $4, $5, $6, NULL)",
        args![
            org,
            id.as_uuid(),
            o.date,
            serde_json::to_string(&stored)?,
            serde_json::to_string(&stored.reads)?,
            now
        ],
    )
    .await?;
    tx.record_change("dispatch_plan", id.as_uuid(), 1, Operation::Created)
        .await?;
    Ok(stored)
}

async fn load_plan(tx: &mut TenantTx, id: PlanId, lock: bool) -> Result<StoredPlan, StoreError> {
    let org = tx.org();
    let sql = format!(
        "SELECT plan, status, applied_at FROM dispatch_plans WHERE organization_id = $1 AND id = $2{}",
        if lock { tx.for_update() } else { "" }
    );
    let row = tx
        .fetch_optional(&sql, args![org, id.as_uuid()])
        .await?
        .ok_or_else(|| Failure::not_found("plan"))?;
    let mut plan: StoredPlan = serde_json::from_str(&row.get::<String>("plan")?)?;
    plan.status = row.get("status")?;
    plan.applied_at = row.get("applied_at")?;
    Ok(plan)
}

/// What the plan read that is different now.
async fn changed_since(tx: &mut TenantTx, reads: &[Read]) -> Result<Vec<Changed>, StoreError> {
    let org = tx.org();
    let mut out = Vec::new();
    for r in reads {
        let sql = match r.kind.as_str() {
            "job" => "SELECT version FROM jobs WHERE organization_id = $1 AND id = $2",
            "appointment" => {
                "SELECT version FROM appointments WHERE organization_id = $1 AND id = $2"
            }
            _ => {
                "SELECT version FROM technicians WHERE organization_id = $1 AND id = $2 AND active"
            }
        };
        let now: Option<i64> = tx
            .fetch_optional(sql, args![org, r.id])
            .await?
            .map(|row| row.get("version"))
            .transpose()?;
        if now != Some(r.version) {
            out.push(Changed {
                kind: r.kind.clone(),
                id: r.id,
                read_version: r.version,
                current_version: now,
            });
        }
    }
    Ok(out)
}

/// What applying a plan does to one visit.
struct Step {
    appointment: AppointmentId,
    job: JobId,
    lead_now: Option<TechnicianId>,
    lead: Option<TechnicianId>,
    start: Option<DateTime<Utc>>,
}

async fn apply(tx: &mut TenantTx, a: ApplyPlan) -> Result<AppliedPlan, StoreError> {
    let stored = load_plan(tx, a.plan_id, true).await?;
    if stored.status == "applied" {
        return Err(Failure::new(
            FailureKind::Conflict,
            "PLAN_ALREADY_APPLIED",
            "this plan was applied already; optimize again for a new one",
        )
        .with_details(serde_json::json!({ "appliedAt": stored.applied_at }))
        .into());
    }
    let changed = changed_since(tx, &stored.reads).await?;
    if !changed.is_empty() && !a.partial {
        return Err(Failure::new(
            FailureKind::Conflict,
            "PLAN_STALE",
            format!(
                "{} thing(s) the plan read changed since it was made; optimize again or apply with partial",
                changed.len()
            ),
        )
        .with_details(serde_json::json!({ "changed": changed }))
        .into());
    }

    // The visits and what the plan makes of them.
    let mut steps: Vec<Step> = Vec::new();
    for route in &stored.plan.routes {
        for stop in &route.stops {
            if let Some(id) = stop.appointment_id {
                steps.push(Step {
                    appointment: id,
                    job: stop.job_id,
                    lead_now: None,
                    lead: Some(route.technician_id),
                    start: Some(stop.start),
                });
            }
        }
    }
    let org = tx.org();
    for u in &stored.plan.unplanned {
        let job = tx
            .fetch_optional(
                "SELECT job_id FROM appointments WHERE organization_id = $1 AND id = $2",
                args![org, u.appointment_id.as_uuid()],
            )
            .await?
            .map(|r| r.get::<uuid::Uuid>("job_id"))
            .transpose()?
            .map(JobId::from_uuid)
            .ok_or_else(|| Failure::not_found("appointment"))?;
        steps.push(Step {
            appointment: u.appointment_id,
            job,
            lead_now: None,
            lead: None,
            start: None,
        });
    }

    // With partial application, a visit is skipped when it, its job, its planned technician or
    // a booking that technician keeps that day changed.
    let stale: HashSet<uuid::Uuid> = changed.iter().map(|c| c.id).collect();
    let mut skipped = Vec::new();
    if !changed.is_empty() {
        let mut touched = touched_technicians(tx, &stored, &changed).await?;
        // A visit skipped stays with the technician who leads it now, where the plan did not
        // expect it: that technician's planned visits are skipped too, and so on.
        let mut leads_now: HashMap<AppointmentId, TechnicianId> = HashMap::new();
        for s in &steps {
            if let Some(row) = tx
                .fetch_optional(
                    "SELECT technician_id FROM appointment_crew WHERE organization_id = $1 \
                     AND appointment_id = $2 AND role = 'lead'",
                    args![org, s.appointment.as_uuid()],
                )
                .await?
            {
                leads_now.insert(
                    s.appointment,
                    TechnicianId::from_uuid(row.get("technician_id")?),
                );
            }
        }
        let bad = |s: &Step, touched: &HashSet<TechnicianId>| {
            stale.contains(&s.appointment.as_uuid())
                || stale.contains(&s.job.as_uuid())
                || s.lead.is_some_and(|t| touched.contains(&t))
        };
        loop {
            let more: Vec<TechnicianId> = steps
                .iter()
                .filter(|s| bad(s, &touched))
                .filter_map(|s| leads_now.get(&s.appointment).copied())
                .filter(|t| !touched.contains(t))
                .collect();
            if more.is_empty() {
                break;
            }
            touched.extend(more);
        }
        steps.retain(|s| {
            let skip = bad(s, &touched);
            if skip {
                skipped.push(Skipped {
                    appointment_id: s.appointment,
                    reason: "PLAN_STALE".into(),
                });
            }
            !skip
        });
    }

    // First every visit that changes hands leaves its technician and takes its planned start,
    // then the new leads are assigned, each through the same eligibility gate as a manual
    // assignment: visits swapping technicians never meet a booking that is about to move.
    let versions: BTreeMap<uuid::Uuid, i64> = stored
        .reads
        .iter()
        .filter(|r| r.kind == "appointment")
        .map(|r| (r.id, r.version))
        .collect();
    let mut scheduled = Vec::new();
    let mut unassigned = Vec::new();
    for s in &mut steps {
        let loaded = load_for_change(
            tx,
            s.appointment,
            versions.get(&s.appointment.as_uuid()).copied(),
        )
        .await?;
        s.lead_now = loaded.visit.lead;
        let mut commands = Vec::new();
        if let Some(now) = s.lead_now
            && Some(now) != s.lead
        {
            commands.push(AppointmentCommand::RemoveFromCrew { technician: now });
        }
        if s.lead.is_some() && loaded.visit.planned_start != s.start {
            commands.push(AppointmentCommand::Plan { start: s.start });
        }
        if commands.is_empty() {
            continue;
        }
        for command in &commands {
            core_appointment::decide(&loaded.visit, command)
                .map_err(|e| super::appointment::appointment_failure(&e))?;
        }
        change(tx, loaded, &commands, None, None).await?;
    }
    for s in &steps {
        match s.lead {
            Some(lead) => {
                // Every planned visit is judged again where the plan puts it, the ones that
                // keep their technician too: a booking the plan could not see (a v1 job
                // assigned since) must not be overlapped.
                let loaded = load_for_change(tx, s.appointment, None).await?;
                let (visit, job) = (&loaded.visit, &loaded.job);
                check_crew(
                    tx,
                    job,
                    visit.id,
                    visit.occupied(),
                    &[(lead, CrewRole::Lead)],
                )
                .await?;
                if s.lead_now != Some(lead) {
                    change(
                        tx,
                        loaded,
                        &[AppointmentCommand::AssignLead { technician: lead }],
                        None,
                        None,
                    )
                    .await?;
                }
                scheduled.push(s.appointment);
            }
            None => {
                if s.lead_now.is_some() {
                    unassigned.push(s.appointment);
                }
            }
        }
    }
    let now = tx.now();
    tx.execute(
        "UPDATE dispatch_plans SET status = 'applied', applied_at = $3 WHERE organization_id = $1 AND id = $2",
        args![org, a.plan_id.as_uuid(), now],
    )
    .await?;
    tx.record_change(
        "dispatch_plan",
        a.plan_id.as_uuid(),
        2,
        Operation::Transitioned,
    )
    .await?;
    Ok(AppliedPlan {
        plan_id: a.plan_id,
        scheduled,
        unassigned,
        skipped,
        changed,
    })
}

/// The planned technicians whose own record changed, or one of whose bookings kept by the plan
/// (stops that were not planned) changed.
async fn touched_technicians(
    tx: &mut TenantTx,
    stored: &StoredPlan,
    changed: &[Changed],
) -> Result<HashSet<TechnicianId>, StoreError> {
    let org = tx.org();
    let mut jobs: HashSet<uuid::Uuid> = HashSet::new();
    for c in changed.iter().filter(|c| c.kind != "technician") {
        if c.kind == "job" {
            jobs.insert(c.id);
            continue;
        }
        if let Some(row) = tx
            .fetch_optional(
                "SELECT job_id FROM appointments WHERE organization_id = $1 AND id = $2",
                args![org, c.id],
            )
            .await?
        {
            jobs.insert(row.get("job_id")?);
        }
    }
    Ok(stored
        .plan
        .routes
        .iter()
        .filter(|r| {
            changed
                .iter()
                .any(|c| c.kind == "technician" && c.id == r.technician_id.as_uuid())
                || r.stops
                    .iter()
                    .any(|s| s.appointment_id.is_none() && jobs.contains(&s.job_id.as_uuid()))
        })
        .map(|r| r.technician_id)
        .collect())
}

impl Services {
    /// `dispatch/v1/getPlan`.
    pub async fn dispatch_plan(
        &self,
        caller: &Caller,
        id: PlanId,
    ) -> Result<StoredPlan, StoreError> {
        self.read(caller, move |tx| Box::pin(load_plan(tx, id, false)))
            .await
    }

    /// `dispatch/v1/placeVisit`.
    pub async fn place_visit(
        &self,
        caller: &Caller,
        q: PlaceQuery,
    ) -> Result<Placement, StoreError> {
        let limit = q.limit.unwrap_or(5) as usize;
        if !(1..=MAX_PLACE_OPTIONS).contains(&limit) {
            return Err(invalid(
                "count",
                "out_of_range",
                format!("count is between 1 and {MAX_PLACE_OPTIONS}"),
            ));
        }
        let appointment_id = q.appointment_id;
        let nowhere = |reason: &str| Placement {
            appointment_id,
            options: Vec::new(),
            reasons: vec![reason.to_owned()],
            ineligible: Vec::new(),
        };
        let gathered = self
            .read(caller, move |tx| {
                Box::pin(async move {
                    let org = tx.org();
                    let row = tx
                        .fetch_optional(
                            "SELECT window_start FROM appointments WHERE organization_id = $1 AND id = $2",
                            args![org, q.appointment_id.as_uuid()],
                        )
                        .await?
                        .ok_or_else(|| Failure::not_found("appointment"))?;
                    let start: DateTime<Utc> = row.get("window_start")?;
                    let tz = load_organization(tx, false).await?.time_zone.tz();
                    let o = Optimize {
                        date: start.with_timezone(&tz).date_naive(),
                        technician_ids: Vec::new(),
                        appointment_ids: vec![q.appointment_id],
                        pins: Vec::new(),
                        weights: Weights::default(),
                        time_budget_ms: None,
                        seed: None,
                    };
                    gather(tx, &o, Scope::Place).await
                })
            })
            .await;
        // A read answers about the visit rather than refusing: one that cannot be placed (under
        // way, with helpers, or led and without coordinates) has no options, and says why.
        let facts = match gathered {
            Ok((facts, _)) => facts,
            Err(StoreError::Failure(f)) if f.code == "APPOINTMENT_NOT_PLANNABLE" => {
                return Ok(nowhere("APPOINTMENT_NOT_PLANNABLE"));
            }
            Err(e) => return Err(e),
        };
        if facts.visits.is_empty() {
            return Ok(nowhere("LOCATION_UNKNOWN"));
        }
        tokio::task::spawn_blocking(move || place(&facts, limit))
            .await
            .map_err(|e| StoreError::Internal(format!("placing stopped: {e}")))
    }
}

/// The cheapest places for the one visit of `facts` in the day as it stands.
fn place(facts: &DayFacts, limit: usize) -> Placement {
    let weights = Weights::default();
    let mapped = core_plan::to_problem(facts, &weights);
    let visit = &facts.visits[0];
    let mut out = Placement {
        appointment_id: visit.appointment_id,
        options: Vec::new(),
        reasons: Vec::new(),
        ineligible: mapped.refusals[0].clone(),
    };
    if let Some((_, reasons)) = mapped.left_out.first() {
        out.reasons.clone_from(reasons);
        return out;
    }
    let Some(job) = mapped.jobs.iter().position(|(v, _)| *v == Some(0)) else {
        return out;
    };
    // Today's routes without the visit: every booking that stays, in time order.
    let mut current = core_plan::current_routes(facts, &mapped);
    for r in &mut current {
        r.retain(|&j| j != job);
    }
    let options = routing::Inserter::new(&mapped.problem, &mapped.matrix)
        .and_then(|i| i.options(&current, job))
        .unwrap_or_default();
    out.options = options
        .iter()
        .take(limit)
        .map(|o| PlaceOption {
            technician_id: facts.technicians[o.technician].technician.id,
            position: o.position,
            arrival: mapped.at(o.arrival),
            start: mapped.at(o.start),
            end: mapped.at(o.start + f64::from(visit.minutes)),
            extra_km: o.extra_distance,
            extra_minutes: o.extra_travel_time,
        })
        .collect();
    if out.options.is_empty() {
        out.reasons.push("NO_FEASIBLE_PLACE".into());
    }
    out
}
