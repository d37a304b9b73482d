//! `dispatch/v1` route optimization: `optimize` (plan a local day and store the plan),
//! `applyPlan`, `getPlan` and `placeVisit` (where one visit fits into the day as it stands).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use hestami_core::dispatch::plan::{
    Alternative, DayPlan, Kpis, PlannedRoute, PlannedStop, TechnicianRefusal, UnplannedVisit,
    Weights, Why,
};
use hestami_core::ids::{AppointmentId, PlanId, TechnicianId};
use hestami_store::app::dispatch_plan::{
    AppliedPlan, ApplyPlan, Changed, MAX_BUDGET_MS, MAX_PLAN_VISITS, Optimize, Pin, PlaceOption,
    PlaceQuery, Placement, PlanCommand, Read, Skipped, StoredPlan,
};

use crate::error::ApiError;
use crate::rpc::{Ctx, Name, Procedure, mutation, query, validate};

/// The least time budget, in milliseconds.
pub const MIN_BUDGET_MS: u32 = 100;
/// The largest weight.
pub const MAX_WEIGHT: f64 = 1_000.0;

/// What a plan weighs against what (each 0 to 1,000).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WeightsDto {
    /// Per minute driven (default 1).
    pub travel_minutes: Option<f64>,
    /// Per kilometre driven (default 0).
    pub travel_km: Option<f64>,
    /// Per visit moved to another technician than the one it is with (default 30: a move must
    /// save half an hour of driving).
    pub stability: Option<f64>,
}

/// `dispatch/v1/optimize`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OptimizeInput {
    /// Makes the call idempotent: the same key returns the same plan, byte for byte.
    pub idempotency_key: Uuid,
    /// The local date to plan, in the organization's zone (`YYYY-MM-DD`).
    #[serde(deserialize_with = "crate::wire::date")]
    pub date: NaiveDate,
    /// Plan for these technicians only (default: every active technician).
    pub technician_ids: Option<Vec<Uuid>>,
    /// Plan these visits only (default: every appointment of the day that is scheduled, not yet
    /// dispatched, without helpers). The others stay as they are and the plan works around them.
    pub appointment_ids: Option<Vec<Uuid>>,
    /// Visits that must stay with a technician: each planned visit's id to the id of the
    /// technician it stays with (one per visit, by construction).
    pub pins: Option<std::collections::BTreeMap<Uuid, Uuid>>,
    /// What the plan weighs.
    pub weights: Option<WeightsDto>,
    /// How long the solver may search, 100 to 60,000 ms (default 3,000).
    pub time_budget_ms: Option<u32>,
    /// The solver's seed (default 1).
    pub seed: Option<u64>,
}

mutating!(OptimizeInput, ApplyPlanInput);

/// `dispatch/v1/applyPlan`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplyPlanInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The plan (`optimize`'s `planId`).
    pub plan_id: Uuid,
    /// When something the plan read has changed: apply what is still valid and report the rest
    /// (default false: refuse with `PLAN_STALE`).
    pub partial: Option<bool>,
}

/// `dispatch/v1/getPlan`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetPlanInput {
    /// The plan.
    pub plan_id: Uuid,
}

/// `dispatch/v1/placeVisit`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlaceVisitInput {
    /// The visit to place (an appointment of the organization; one under way or with helpers has
    /// no options).
    pub appointment_id: Uuid,
    /// How many options, 1 to 50 (default 5).
    pub count: Option<u32>,
}

/// Who else could take a visit, and what it would add.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlternativeDto {
    /// Who.
    pub technician_id: Uuid,
    /// The plan's cost more, in the weights' units.
    pub extra_cost: f64,
    /// Kilometres more.
    pub extra_km: f64,
    /// Minutes driven more.
    pub extra_minutes: f64,
}

/// Why a visit went to its technician.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhyDto {
    /// Technicians who pass every rule that does not depend on the time of day (this one
    /// included; 1 for a pinned visit).
    pub eligible_technicians: usize,
    /// The cheapest other technician who could take it with the rest of the plan as it is.
    pub next_best: Option<AlternativeDto>,
}

/// A stop of a planned route.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlannedStopDto {
    /// The visit planned; absent for a booking that stays as it is (dispatched, under way, a
    /// crew visit, a v1 job, or not among the visits planned).
    pub appointment_id: Option<Uuid>,
    /// The job.
    pub job_id: Uuid,
    /// When the technician arrives.
    pub arrival: DateTime<Utc>,
    /// When the work starts (the visit's planned start once applied).
    pub start: DateTime<Utc>,
    /// When it ends.
    pub end: DateTime<Utc>,
    /// How many minutes later the work could start with the rest of the day still on time.
    pub slack_minutes: f64,
    /// Kilometres from the stop before (or home).
    pub leg_km: f64,
    /// Minutes from the stop before (or home).
    pub leg_minutes: f64,
    /// Whether the plan moves the visit: to another technician than the one it is with, or by
    /// more than 30 minutes from its planned start.
    pub moved: bool,
    /// Why this technician (planned visits).
    pub why: Option<WhyDto>,
}

/// A technician's planned day.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlannedRouteDto {
    /// Who.
    pub technician_id: Uuid,
    /// The stops in order.
    pub stops: Vec<PlannedStopDto>,
    /// When the break (the gap between two shift spans) starts, if there is one.
    pub break_start: Option<DateTime<Utc>>,
    /// Kilometres driven, home to home.
    pub travel_km: f64,
    /// Minutes driven.
    pub travel_minutes: f64,
}

/// A technician who may not take a visit, and the rules they fail.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefusalDto {
    /// Who.
    pub technician_id: Uuid,
    /// The eligibility rule codes (`TRADE_MISSING`, `TIME_OFF_OVERLAP`…).
    pub codes: Vec<String>,
}

/// A visit the plan leaves out.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnplannedDto {
    /// The visit.
    pub appointment_id: Uuid,
    /// Why: `LOCATION_UNKNOWN`, `NO_ELIGIBLE_TECHNICIAN`, `PINNED_TECHNICIAN_INELIGIBLE`,
    /// `WINDOW_UNREACHABLE`, `OUTSIDE_SHIFT`, `BREAK`, `DAILY_CAPACITY_REACHED`.
    pub reasons: Vec<String>,
    /// The technicians who may not take it at all, with their rule codes.
    pub ineligible: Vec<RefusalDto>,
}

/// The figures of a day.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KpisDto {
    /// Visits to plan.
    pub visits: usize,
    /// Of them, those on a route.
    pub scheduled: usize,
    /// Kilometres driven.
    pub travel_km: f64,
    /// Minutes driven.
    pub travel_minutes: f64,
    /// Visits started after their arrival window closed.
    pub late_visits: usize,
    /// Minutes past the windows' ends, summed.
    pub lateness_minutes: f64,
    /// Minutes past the shifts' ends, summed.
    pub overtime_minutes: f64,
    /// Work and driving over the shift minutes of the technicians with work.
    pub utilization: f64,
    /// Visits whose job's SLA deadline is missed (or falls on the day and the visit is not
    /// scheduled).
    pub sla_missed: usize,
}

/// Something a plan read, at the version it read.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadDto {
    /// `job`, `appointment` or `technician`.
    pub kind: String,
    /// Which.
    pub id: Uuid,
    /// Its version then.
    pub version: i64,
}

/// A plan for a local day.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanDto {
    /// The plan (pass to `applyPlan`).
    pub plan_id: Uuid,
    /// The local day.
    pub date: NaiveDate,
    /// `proposed` or `applied`.
    pub status: String,
    /// The weights it was made with.
    pub weights: WeightsDto,
    /// The seed.
    pub seed: u64,
    /// The time budget, in milliseconds.
    pub time_budget_ms: u32,
    /// The solver's iterations.
    pub iterations: u64,
    /// Per technician with work: the route with times, legs and slack.
    pub routes: Vec<PlannedRouteDto>,
    /// The visits left out, each with why.
    pub unplanned: Vec<UnplannedDto>,
    /// The plan's figures.
    pub kpis: KpisDto,
    /// The same figures for the day as it stands.
    pub before: KpisDto,
    /// The same figures for a greedy dispatcher's day: each visit, most urgent first, to the
    /// best-ranked technician (as `eligibleTechs` ranks them) who can still fit it.
    pub greedy: KpisDto,
    /// How many visits the plan moves.
    pub moved: usize,
    /// The version of every job, appointment and technician the plan read.
    pub reads: Vec<ReadDto>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was applied.
    pub applied_at: Option<DateTime<Utc>>,
}

/// A visit `applyPlan` did not apply.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SkippedDto {
    /// The visit.
    pub appointment_id: Uuid,
    /// `PLAN_STALE`.
    pub reason: String,
}

/// Something the plan read that changed since.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangedDto {
    /// `job`, `appointment` or `technician`.
    pub kind: String,
    /// Which.
    pub id: Uuid,
    /// The version the plan read.
    pub read_version: i64,
    /// The version now (absent: gone, or no longer an active technician).
    pub current_version: Option<i64>,
}

/// What `applyPlan` did.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppliedPlanDto {
    /// The plan.
    pub plan_id: Uuid,
    /// Visits now led by the plan's technician at the plan's start.
    pub scheduled: Vec<Uuid>,
    /// Visits the plan leaves out that lost their technician (back to the queue).
    pub unassigned: Vec<Uuid>,
    /// Visits not applied (partial application only).
    pub skipped: Vec<SkippedDto>,
    /// What had changed since the plan (partial application only).
    pub changed: Vec<ChangedDto>,
}

/// A place for a visit.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlaceOptionDto {
    /// Who.
    pub technician_id: Uuid,
    /// After this many of the technician's visits that day.
    pub position: usize,
    /// When the technician would arrive.
    pub arrival: DateTime<Utc>,
    /// When the work would start (pass as `plannedStart` with `assignTechnician`).
    pub start: DateTime<Utc>,
    /// When it would end.
    pub end: DateTime<Utc>,
    /// Kilometres added to the technician's day.
    pub extra_km: f64,
    /// Minutes of driving added.
    pub extra_minutes: f64,
}

/// Where a visit fits.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlacementDto {
    /// The visit.
    pub appointment_id: Uuid,
    /// The options, least driving added first.
    pub options: Vec<PlaceOptionDto>,
    /// Why there is none (`APPOINTMENT_NOT_PLANNABLE`: under way or with helpers;
    /// `LOCATION_UNKNOWN`; `NO_ELIGIBLE_TECHNICIAN`; `NO_FEASIBLE_PLACE`).
    pub reasons: Vec<String>,
    /// The technicians who may not take it at all, with their rule codes.
    pub ineligible: Vec<RefusalDto>,
}

fn refusals(list: Vec<TechnicianRefusal>) -> Vec<RefusalDto> {
    list.into_iter()
        .map(|r| RefusalDto {
            technician_id: r.technician_id.as_uuid(),
            codes: r.codes,
        })
        .collect()
}

impl From<Kpis> for KpisDto {
    fn from(k: Kpis) -> Self {
        Self {
            visits: k.visits,
            scheduled: k.scheduled,
            travel_km: k.travel_km,
            travel_minutes: k.travel_minutes,
            late_visits: k.late_visits,
            lateness_minutes: k.lateness_minutes,
            overtime_minutes: k.overtime_minutes,
            utilization: k.utilization,
            sla_missed: k.sla_missed,
        }
    }
}

impl From<Why> for WhyDto {
    fn from(w: Why) -> Self {
        Self {
            eligible_technicians: w.eligible_technicians,
            next_best: w.next_best.map(|a: Alternative| AlternativeDto {
                technician_id: a.technician_id.as_uuid(),
                extra_cost: a.extra_cost,
                extra_km: a.extra_km,
                extra_minutes: a.extra_minutes,
            }),
        }
    }
}

impl From<PlannedStop> for PlannedStopDto {
    fn from(s: PlannedStop) -> Self {
        Self {
            appointment_id: s.appointment_id.map(|a| a.as_uuid()),
            job_id: s.job_id.as_uuid(),
            arrival: s.arrival,
            start: s.start,
            end: s.end,
            slack_minutes: s.slack_minutes,
            leg_km: s.leg_km,
            leg_minutes: s.leg_minutes,
            moved: s.moved,
            why: s.why.map(Into::into),
        }
    }
}

impl From<PlannedRoute> for PlannedRouteDto {
    fn from(r: PlannedRoute) -> Self {
        Self {
            technician_id: r.technician_id.as_uuid(),
            stops: r.stops.into_iter().map(Into::into).collect(),
            break_start: r.break_start,
            travel_km: r.travel_km,
            travel_minutes: r.travel_minutes,
        }
    }
}

impl From<UnplannedVisit> for UnplannedDto {
    fn from(u: UnplannedVisit) -> Self {
        Self {
            appointment_id: u.appointment_id.as_uuid(),
            reasons: u.reasons,
            ineligible: refusals(u.ineligible),
        }
    }
}

impl From<StoredPlan> for PlanDto {
    fn from(p: StoredPlan) -> Self {
        let DayPlan {
            routes,
            unplanned,
            kpis,
            before,
            greedy,
            moved,
            ..
        } = p.plan;
        Self {
            plan_id: p.plan_id.as_uuid(),
            date: p.date,
            status: p.status,
            weights: WeightsDto {
                travel_minutes: Some(p.weights.travel_minutes),
                travel_km: Some(p.weights.travel_km),
                stability: Some(p.weights.stability),
            },
            seed: p.seed,
            time_budget_ms: p.time_budget_ms,
            iterations: p.iterations,
            routes: routes.into_iter().map(Into::into).collect(),
            unplanned: unplanned.into_iter().map(Into::into).collect(),
            kpis: kpis.into(),
            before: before.into(),
            greedy: greedy.into(),
            moved,
            reads: p
                .reads
                .into_iter()
                .map(|r: Read| ReadDto {
                    kind: r.kind,
                    id: r.id,
                    version: r.version,
                })
                .collect(),
            created_at: p.created_at,
            applied_at: p.applied_at,
        }
    }
}

impl From<AppliedPlan> for AppliedPlanDto {
    fn from(a: AppliedPlan) -> Self {
        Self {
            plan_id: a.plan_id.as_uuid(),
            scheduled: a.scheduled.iter().map(|i| i.as_uuid()).collect(),
            unassigned: a.unassigned.iter().map(|i| i.as_uuid()).collect(),
            skipped: a
                .skipped
                .into_iter()
                .map(|s: Skipped| SkippedDto {
                    appointment_id: s.appointment_id.as_uuid(),
                    reason: s.reason,
                })
                .collect(),
            changed: a
                .changed
                .into_iter()
                .map(|c: Changed| ChangedDto {
                    kind: c.kind,
                    id: c.id,
                    read_version: c.read_version,
                    current_version: c.current_version,
                })
                .collect(),
        }
    }
}

impl From<Placement> for PlacementDto {
    fn from(p: Placement) -> Self {
        Self {
            appointment_id: p.appointment_id.as_uuid(),
            options: p
                .options
                .into_iter()
                .map(|o: PlaceOption| PlaceOptionDto {
                    technician_id: o.technician_id.as_uuid(),
                    position: o.position,
                    arrival: o.arrival,
                    start: o.start,
                    end: o.end,
                    extra_km: o.extra_km,
                    extra_minutes: o.extra_minutes,
                })
                .collect(),
            reasons: p.reasons,
            ineligible: refusals(p.ineligible),
        }
    }
}

fn convert_optimize(i: OptimizeInput) -> Result<PlanCommand, ApiError> {
    validate(|v| {
        let budget = i.time_budget_ms;
        if budget.is_some_and(|b| !(MIN_BUDGET_MS..=MAX_BUDGET_MS).contains(&b)) {
            v.fail(
                "timeBudgetMs",
                "out_of_range",
                &format!("timeBudgetMs is between {MIN_BUDGET_MS} and {MAX_BUDGET_MS}"),
            );
        }
        let defaults = Weights::default();
        let mut weight = |field: &str, value: Option<f64>, default: f64| {
            let w = value.unwrap_or(default);
            if !(0.0..=MAX_WEIGHT).contains(&w) {
                v.fail(
                    &format!("weights.{field}"),
                    "out_of_range",
                    &format!("a weight is between 0 and {MAX_WEIGHT}"),
                );
            }
            w
        };
        let given = i.weights.as_ref();
        let weights = Weights {
            travel_minutes: weight(
                "travelMinutes",
                given.and_then(|w| w.travel_minutes),
                defaults.travel_minutes,
            ),
            travel_km: weight(
                "travelKm",
                given.and_then(|w| w.travel_km),
                defaults.travel_km,
            ),
            stability: weight(
                "stability",
                given.and_then(|w| w.stability),
                defaults.stability,
            ),
        };
        let appointments = i.appointment_ids.unwrap_or_default();
        if appointments.len() > MAX_PLAN_VISITS {
            v.fail(
                "appointmentIds",
                "too_many",
                &format!("at most {MAX_PLAN_VISITS} visits"),
            );
        }
        let mut seen = std::collections::HashSet::new();
        if !appointments.iter().all(|a| seen.insert(*a)) {
            v.fail("appointmentIds", "duplicate", "each visit once");
        }
        let pins = i.pins.unwrap_or_default();
        if pins.len() > MAX_PLAN_VISITS {
            v.fail(
                "pins",
                "too_many",
                &format!("at most {MAX_PLAN_VISITS} pins"),
            );
        }
        Some(PlanCommand::Optimize(Optimize {
            date: i.date,
            technician_ids: i
                .technician_ids
                .unwrap_or_default()
                .into_iter()
                .map(TechnicianId::from_uuid)
                .collect(),
            appointment_ids: appointments
                .into_iter()
                .map(AppointmentId::from_uuid)
                .collect(),
            pins: pins
                .into_iter()
                .map(|(appointment, technician)| Pin {
                    appointment_id: AppointmentId::from_uuid(appointment),
                    technician_id: TechnicianId::from_uuid(technician),
                })
                .collect(),
            weights,
            time_budget_ms: budget,
            seed: i.seed,
        }))
    })
}

fn convert_apply(i: ApplyPlanInput) -> Result<PlanCommand, ApiError> {
    Ok(PlanCommand::ApplyPlan(ApplyPlan {
        plan_id: PlanId::from_uuid(i.plan_id),
        partial: i.partial.unwrap_or(false),
    }))
}

async fn get_plan(ctx: Ctx, i: GetPlanInput) -> Result<PlanDto, ApiError> {
    Ok(ctx
        .services
        .dispatch_plan(ctx.caller()?, PlanId::from_uuid(i.plan_id))
        .await?
        .into())
}

async fn place_visit(ctx: Ctx, i: PlaceVisitInput) -> Result<PlacementDto, ApiError> {
    let max = hestami_store::app::board::MAX_SLOT_OPTIONS as u32;
    let count = validate(|v| {
        let count = i.count.unwrap_or(5);
        if !(1..=max).contains(&count) {
            v.fail(
                "count",
                "out_of_range",
                &format!("count is between 1 and {max}"),
            );
        }
        Some(count)
    })?;
    Ok(ctx
        .services
        .place_visit(
            ctx.caller()?,
            PlaceQuery {
                appointment_id: AppointmentId::from_uuid(i.appointment_id),
                limit: Some(count),
            },
        )
        .await?
        .into())
}

fn name(name: &'static str, summary: &'static str, errors: &'static [&'static str]) -> Name {
    Name {
        namespace: "dispatch",
        version: "v1",
        name,
        summary,
        errors,
    }
}

pub(crate) fn procedures() -> Vec<Procedure> {
    vec![
        mutation(
            name(
                "optimize",
                "Plan a local day: assign and sequence its visits under every eligibility rule within a time budget; store and return the plan with routes, ETAs, legs, slack, why each technician, what is left out and why, and its figures against the day as it stands",
                &["NOT_FOUND", "APPOINTMENT_NOT_PLANNABLE", "PLAN_TOO_LARGE"],
            ),
            convert_optimize,
            <PlanDto as From<StoredPlan>>::from,
        ),
        mutation(
            name(
                "applyPlan",
                "Schedule and assign a plan through the same gates as a manual assignment, or refuse it if anything it read has changed (or apply what is still valid, with partial)",
                &[
                    "NOT_FOUND",
                    "PLAN_STALE",
                    "PLAN_ALREADY_APPLIED",
                    "TECHNICIAN_INELIGIBLE",
                ],
            ),
            convert_apply,
            <AppliedPlanDto as From<AppliedPlan>>::from,
        ),
        query(name("getPlan", "A stored plan", &["NOT_FOUND"]), get_plan),
        query(
            name(
                "placeVisit",
                "Where one visit fits into the day as it stands: every technician's cheapest feasible place, least driving added first, with arrival and start; who cannot take it and why",
                &["NOT_FOUND"],
            ),
            place_visit,
        ),
    ]
}
