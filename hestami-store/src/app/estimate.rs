//! Estimates and proposals (`estimate/v1`, workflow `estimate_generation_v1`).
//!
//! Every option is priced once, through `pricebook::price` (the store's one pricing path), and
//! kept as a value: a later change to the pricebook cannot reach it. The current revision lives in `estimates`; a revise
//! moves the previous one, as it was, to `estimate_revisions`. Sending an estimate sets a durable
//! timer at its `validUntil` (a row in `timers`), which expires it if it is still unanswered
//! then; answering or revising it removes the timer.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use hestami_core::estimate::{
    self as core_estimate, Estimate, EstimateCommand, EstimateContent, EstimateError,
    EstimateEvent, EstimateOption, EstimateStatus, NewEstimate, PlannedWork,
};
use hestami_core::ids::{CustomerId, EstimateId, EstimateOptionId, JobId, PropertyId};
use hestami_core::job::{Job, NewJob, Priority};
use hestami_core::money::Money;
use hestami_core::pricebook::{PricingRule, QuoteRequest};
use hestami_core::text::{Description, Name, Reason, Summary, TradeCode};

use super::pricebook::{PriceAt, invalid, price};
use super::{
    Caller, Command, Page, PageRequest, Services, check_version, decode_body, insert_event_body,
    load_body,
};
use crate::db::args;
use crate::directory::load_organization;
use crate::engine::WorkflowCtx;
use crate::error::{Failure, FailureKind, FieldError, StoreError};
use crate::store::{Operation, TenantTx, new_id, truncate_micros};

/// The workflow of every estimate change.
pub const WORKFLOW: &str = "estimate_generation_v1";
/// The procedure the expiry timer starts.
pub const EXPIRY_PROCEDURE: &str = "timer/estimate_expiry";
/// The prefix of an estimate's expiry timer's name (`estimate_expiry/<id>`).
pub const EXPIRY_TIMER_PREFIX: &str = "estimate_expiry/";

/// One option to price: a name and its lines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OptionInput {
    /// Its name, such as `Good`.
    pub name: Name,
    /// The lines and the discount.
    pub request: QuoteRequest,
}

/// `estimate/v1/generate`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateEstimate {
    /// The job it is for (its customer and property are the estimate's).
    pub job_id: Option<JobId>,
    /// The customer, without a job.
    pub customer_id: Option<CustomerId>,
    /// The property, without a job.
    pub property_id: Option<PropertyId>,
    /// The options.
    pub options: Vec<OptionInput>,
    /// The offer lapses then.
    pub valid_until: DateTime<Utc>,
    /// Notes for the customer.
    pub notes: Option<Description>,
}

/// `estimate/v1/revise`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviseEstimate {
    /// Which estimate.
    pub estimate_id: EstimateId,
    /// The new options.
    pub options: Vec<OptionInput>,
    /// The new validity.
    pub valid_until: DateTime<Utc>,
    /// Notes.
    pub notes: Option<Description>,
    /// Fail with `VERSION_CONFLICT` unless the estimate is at this version.
    pub expected_version: Option<i64>,
}

/// `estimate/v1/send`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendEstimate {
    /// Which estimate.
    pub estimate_id: EstimateId,
    /// Fail with `VERSION_CONFLICT` unless the estimate is at this version.
    pub expected_version: Option<i64>,
}

/// `estimate/v1/approve`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApproveEstimate {
    /// Which estimate.
    pub estimate_id: EstimateId,
    /// The option approved.
    pub option_id: EstimateOptionId,
    /// Who signed.
    pub signed_by: Name,
    /// The signature as captured.
    pub signature: Option<Description>,
    /// A deposit to collect before work starts.
    pub deposit_required: Option<Money>,
    /// Fail with `VERSION_CONFLICT` unless the estimate is at this version.
    pub expected_version: Option<i64>,
}

/// `estimate/v1/decline`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeclineEstimate {
    /// Which estimate.
    pub estimate_id: EstimateId,
    /// Why.
    pub reason: Option<Reason>,
    /// Fail with `VERSION_CONFLICT` unless the estimate is at this version.
    pub expected_version: Option<i64>,
}

/// `estimate/v1/convertToJob`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConvertToJob {
    /// The approved estimate.
    pub estimate_id: EstimateId,
    /// For a new job: its trade (by default the trade of the first labour line).
    pub trade: Option<TradeCode>,
    /// For a new job: its summary (by default `Estimate: <option name>`).
    pub summary: Option<Summary>,
    /// For a new job: its priority (by default routine).
    pub priority: Option<Priority>,
}

/// The timer's command: expire the estimate if it is still unanswered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpireEstimate {
    /// Which estimate.
    pub estimate_id: EstimateId,
}

/// The estimate namespace's mutating procedures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "procedure", content = "input")]
pub enum EstimateCommandInput {
    /// `estimate/v1/generate`.
    #[serde(rename = "estimate/v1/generate")]
    Generate(GenerateEstimate),
    /// `estimate/v1/revise`.
    #[serde(rename = "estimate/v1/revise")]
    Revise(ReviseEstimate),
    /// `estimate/v1/send`.
    #[serde(rename = "estimate/v1/send")]
    Send(SendEstimate),
    /// `estimate/v1/approve`.
    #[serde(rename = "estimate/v1/approve")]
    Approve(ApproveEstimate),
    /// `estimate/v1/decline`.
    #[serde(rename = "estimate/v1/decline")]
    Decline(DeclineEstimate),
    /// `estimate/v1/convertToJob`.
    #[serde(rename = "estimate/v1/convertToJob")]
    ConvertToJob(ConvertToJob),
    /// The expiry timer.
    #[serde(rename = "timer/estimate_expiry")]
    Expire(ExpireEstimate),
}

impl Command for EstimateCommandInput {
    const WORKFLOW: &'static str = WORKFLOW;
    fn procedure(&self) -> &'static str {
        match self {
            Self::Generate(_) => "estimate/v1/generate",
            Self::Revise(_) => "estimate/v1/revise",
            Self::Send(_) => "estimate/v1/send",
            Self::Approve(_) => "estimate/v1/approve",
            Self::Decline(_) => "estimate/v1/decline",
            Self::ConvertToJob(_) => "estimate/v1/convertToJob",
            Self::Expire(_) => EXPIRY_PROCEDURE,
        }
    }
    fn subject(&self) -> Option<super::Subject> {
        use super::Subject::{Customer, Estimate, Job};
        Some(match self {
            Self::Generate(g) => match (g.job_id, g.customer_id) {
                (Some(job), _) => Job(job),
                (None, Some(customer)) => Customer(customer),
                (None, None) => return None,
            },
            Self::Revise(r) => Estimate(r.estimate_id),
            Self::Send(s) => Estimate(s.estimate_id),
            Self::Approve(a) => Estimate(a.estimate_id),
            Self::Decline(d) => Estimate(d.estimate_id),
            Self::ConvertToJob(c) => Estimate(c.estimate_id),
            Self::Expire(e) => Estimate(e.estimate_id),
        })
    }
}

/// What `convertToJob` returns: the job and the work it was handed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Converted {
    /// The job (created, or the estimate's own).
    pub job: Job,
    /// The approved option's lines, now the job's planned work.
    pub planned_work: PlannedWork,
}

/// A core refusal as the API reports it.
pub fn estimate_failure(error: &EstimateError) -> Failure {
    if let EstimateError::Invalid { problems } = error {
        return invalid("", problems.clone());
    }
    let failure = Failure::refusal(error.is_state_conflict(), error.code(), error.to_string());
    match error {
        EstimateError::InvalidTransition { from, allowed, .. } => {
            failure.with_details(serde_json::json!({ "currentStatus": from, "allowed": allowed }))
        }
        _ => failure,
    }
}

pub(crate) async fn run(
    mut ctx: WorkflowCtx,
    command: EstimateCommandInput,
) -> Result<serde_json::Value, StoreError> {
    use EstimateCommandInput as C;
    let value = match command {
        C::Generate(g) => serde_json::to_value(
            ctx.step("generate_estimate", move |tx| Box::pin(generate(tx, g)))
                .await?,
        )?,
        C::Revise(r) => serde_json::to_value(
            ctx.step("revise_estimate", move |tx| {
                Box::pin(async move {
                    let estimate = load(tx, r.estimate_id, true).await?;
                    check_version("estimate", r.expected_version, estimate.version)?;
                    let at = PriceAt::work(estimate.customer_id, estimate.property_id);
                    let options = price_options(tx, at, r.options).await?;
                    let content = EstimateContent {
                        options,
                        valid_until: truncate_micros(r.valid_until),
                        notes: r.notes,
                    };
                    apply(tx, &estimate, EstimateCommand::Revise { content }).await
                })
            })
            .await?,
        )?,
        C::Send(s) => serde_json::to_value(
            ctx.step("send_estimate", move |tx| {
                Box::pin(async move {
                    let estimate = load(tx, s.estimate_id, true).await?;
                    check_version("estimate", s.expected_version, estimate.version)?;
                    apply(tx, &estimate, EstimateCommand::Send).await
                })
            })
            .await?,
        )?,
        C::Approve(a) => serde_json::to_value(
            ctx.step("approve_estimate", move |tx| {
                Box::pin(async move {
                    let estimate = load(tx, a.estimate_id, true).await?;
                    check_version("estimate", a.expected_version, estimate.version)?;
                    let command = EstimateCommand::Approve {
                        option_id: a.option_id,
                        signed_by: a.signed_by,
                        signature: a.signature,
                        deposit_required: a.deposit_required,
                    };
                    apply(tx, &estimate, command).await
                })
            })
            .await?,
        )?,
        C::Decline(d) => serde_json::to_value(
            ctx.step("decline_estimate", move |tx| {
                Box::pin(async move {
                    let estimate = load(tx, d.estimate_id, true).await?;
                    check_version("estimate", d.expected_version, estimate.version)?;
                    apply(tx, &estimate, EstimateCommand::Decline { reason: d.reason }).await
                })
            })
            .await?,
        )?,
        C::ConvertToJob(c) => serde_json::to_value(
            ctx.step("convert_to_job", move |tx| Box::pin(convert(tx, c)))
                .await?,
        )?,
        C::Expire(e) => serde_json::to_value(
            ctx.step("expire_estimate", move |tx| {
                Box::pin(async move {
                    let estimate = load(tx, e.estimate_id, true).await?;
                    apply(tx, &estimate, EstimateCommand::Expire).await
                })
            })
            .await?,
        )?,
    };
    Ok(value)
}

/// Prices every option, reporting the problems of all of them at once (`options[1].lines[0]…`).
async fn price_options(
    tx: &mut TenantTx,
    at: PriceAt,
    options: Vec<OptionInput>,
) -> Result<Vec<EstimateOption>, StoreError> {
    let mut priced = Vec::with_capacity(options.len());
    let mut problems: Vec<FieldError> = Vec::new();
    for (i, option) in options.into_iter().enumerate() {
        match price(tx, Some(at), &option.request, &format!("options[{i}].")).await {
            Ok(quote) => priced.push(EstimateOption {
                id: EstimateOptionId::from_uuid(new_id()),
                name: option.name,
                quote,
            }),
            Err(StoreError::Failure(f)) if f.kind == FailureKind::Validation => {
                problems.extend(f.field_errors)
            }
            Err(e) => return Err(e),
        }
    }
    if problems.is_empty() {
        Ok(priced)
    } else {
        Err(Failure::validation(problems).into())
    }
}

async fn generate(tx: &mut TenantTx, g: GenerateEstimate) -> Result<Estimate, StoreError> {
    let org = load_organization(tx, false).await?;
    let (job_id, at) = match g.job_id {
        Some(job_id) => {
            let job = super::job::load(tx, job_id, false).await?;
            let mut problems = Vec::new();
            for (field, given, of_job) in [
                (
                    "customerId",
                    g.customer_id.map(|c| c.as_uuid()),
                    job.customer_id.as_uuid(),
                ),
                (
                    "propertyId",
                    g.property_id.map(|p| p.as_uuid()),
                    job.property_id.as_uuid(),
                ),
            ] {
                if given.is_some_and(|given| given != of_job) {
                    problems.push(FieldError {
                        field: field.into(),
                        code: "does_not_match_job".into(),
                        message: format!(
                            "the job's {field} is {of_job}; leave it out or give that one"
                        ),
                    });
                }
            }
            if !problems.is_empty() {
                return Err(Failure::validation(problems).into());
            }
            (
                Some(job.id),
                PriceAt::work(job.customer_id, job.property_id),
            )
        }
        None => {
            match (g.customer_id, g.property_id) {
                (Some(customer_id), Some(property_id)) => {
                    super::customer::load_property(tx, customer_id, property_id).await?;
                    (None, PriceAt::work(customer_id, property_id))
                }
                (customer_id, property_id) => {
                    let mut problems = Vec::new();
                    for (field, missing) in [
                        ("customerId", customer_id.is_none()),
                        ("propertyId", property_id.is_none()),
                    ] {
                        if missing {
                            problems.push(FieldError {
                            field: field.into(),
                            code: "required".into(),
                            message: "an estimate names a job, or a customer and one of its properties".into(),
                        });
                        }
                    }
                    return Err(Failure::validation(problems).into());
                }
            }
        }
    };
    let options = price_options(tx, at, g.options).await?;
    let id = EstimateId::from_uuid(new_id());
    let new_estimate = NewEstimate {
        job_id,
        customer_id: at.customer_id,
        property_id: at.property_id,
        currency: org.currency,
        content: EstimateContent {
            options,
            valid_until: truncate_micros(g.valid_until),
            notes: g.notes,
        },
    };
    let (estimate, event) = core_estimate::create(id, new_estimate, tx.now(), tx.actor())
        .map_err(|p| invalid("", p))?;
    let org_id = tx.org();
    tx.execute(
        "INSERT INTO estimates (organization_id, id, version, revision, status, job_id, customer_id, property_id, \
         valid_until, body, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
        args![
            org_id,
            estimate.id.as_uuid(),
            estimate.version,
            i64::from(estimate.revision),
            estimate.status.as_str(),
            estimate.job_id.map(|j| j.as_uuid()),
            estimate.customer_id.as_uuid(),
            estimate.property_id.as_uuid(),
            estimate.valid_until,
            serde_json::to_string(&estimate)?,
            estimate.created_at
        ],
    )
    .await?;
    insert_event(tx, estimate.id, &event).await?;
    tx.record_change(
        "estimate",
        estimate.id.as_uuid(),
        estimate.version,
        Operation::Created,
    )
    .await?;
    Ok(estimate)
}

/// Runs a command on a loaded (and locked) estimate and saves the result, its event, its
/// outbox message and its timer.
async fn apply(
    tx: &mut TenantTx,
    estimate: &Estimate,
    command: EstimateCommand,
) -> Result<Estimate, StoreError> {
    let (next, event) = core_estimate::execute(estimate, &command, tx.actor(), tx.now())
        .map_err(|e| estimate_failure(&e))?;
    let org = tx.org();
    if next.revision != estimate.revision {
        tx.execute(
            "INSERT INTO estimate_revisions (organization_id, estimate_id, revision, body) VALUES ($1, $2, $3, $4)",
            args![
                org,
                estimate.id.as_uuid(),
                i64::from(estimate.revision),
                serde_json::to_string(estimate)?
            ],
        )
        .await?;
    }
    save(tx, &next).await?;
    insert_event(tx, next.id, &event).await?;
    tx.record_change(
        "estimate",
        next.id.as_uuid(),
        next.version,
        Operation::Transitioned,
    )
    .await?;
    let timer = format!("{EXPIRY_TIMER_PREFIX}{}", next.id);
    match next.status {
        EstimateStatus::Sent => {
            let totals: Vec<_> = next
                .options
                .iter()
                .map(|o| serde_json::json!({ "optionId": o.id, "name": o.name, "total": o.quote.total }))
                .collect();
            let payload = serde_json::json!({
                "estimateId": next.id, "revision": next.revision, "customerId": next.customer_id,
                "propertyId": next.property_id, "validUntil": next.valid_until, "options": totals,
            });
            tx.enqueue("estimate_sent", &payload).await?;
            tx.arm_timer(&timer, next.valid_until).await?;
        }
        _ => tx.disarm_timer(&timer).await?,
    }
    Ok(next)
}

async fn save(tx: &mut TenantTx, next: &Estimate) -> Result<(), StoreError> {
    let org = tx.org();
    tx.execute(
        "UPDATE estimates SET version = $1, revision = $2, status = $3, job_id = $4, valid_until = $5, body = $6, \
         updated_at = $7 WHERE organization_id = $8 AND id = $9",
        args![
            next.version,
            i64::from(next.revision),
            next.status.as_str(),
            next.job_id.map(|j| j.as_uuid()),
            next.valid_until,
            serde_json::to_string(next)?,
            next.updated_at,
            org,
            next.id.as_uuid()
        ],
    )
    .await?;
    Ok(())
}

async fn insert_event(
    tx: &mut TenantTx,
    id: EstimateId,
    event: &EstimateEvent,
) -> Result<(), StoreError> {
    insert_event_body(
        tx,
        "estimate_events",
        "estimate_id",
        id.as_uuid(),
        event.version,
        event,
        event.at,
    )
    .await
}

async fn convert(tx: &mut TenantTx, c: ConvertToJob) -> Result<Converted, StoreError> {
    let estimate = load(tx, c.estimate_id, true).await?;
    let mut work = core_estimate::planned_work(&estimate).map_err(|e| estimate_failure(&e))?;
    let org = tx.org();
    let job = match estimate.job_id {
        Some(job_id) => super::job::load(tx, job_id, false).await?,
        None => {
            let trade = c.trade.or_else(|| {
                work.lines.iter().find_map(|l| match &l.rule {
                    PricingRule::LaborRate { trade, .. } => Some(trade.clone()),
                    _ => None,
                })
            });
            let Some(trade) = trade else {
                return Err(Failure::validation(vec![FieldError {
                    field: "trade".into(),
                    code: "required".into(),
                    message: "the estimate has no job and no labour line to take the trade from; give the new job's trade".into(),
                }])
                .into());
            };
            let summary = match c.summary {
                Some(s) => s,
                None => {
                    let text: String = format!("Estimate: {}", work.option_name)
                        .chars()
                        .take(Summary::MAX_CHARS)
                        .collect();
                    Summary::parse(&text)
                        .map_err(|e| Failure::validation(vec![FieldError::new("summary", &e)]))?
                }
            };
            let job = super::job::create(
                tx,
                NewJob {
                    customer_id: estimate.customer_id,
                    property_id: estimate.property_id,
                    trade,
                    priority: c.priority.unwrap_or(Priority::Routine),
                    summary,
                    description: estimate.notes.clone(),
                    callback_of: None,
                    min_skill_level: Default::default(),
                    required_certifications: Vec::new(),
                },
            )
            .await?;
            let (linked, event) = core_estimate::link_job(&estimate, job.id, tx.actor(), tx.now())
                .map_err(|e| estimate_failure(&e))?;
            save(tx, &linked).await?;
            insert_event(tx, linked.id, &event).await?;
            tx.record_change(
                "estimate",
                linked.id.as_uuid(),
                linked.version,
                Operation::Updated,
            )
            .await?;
            job
        }
    };
    work.job_id = Some(job.id);
    let now = tx.now();
    tx.execute(
        "INSERT INTO job_planned_work (organization_id, job_id, estimate_id, body, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (organization_id, job_id) DO UPDATE SET \
         estimate_id = excluded.estimate_id, body = excluded.body, created_at = excluded.created_at",
        args![
            org,
            job.id.as_uuid(),
            estimate.id.as_uuid(),
            serde_json::to_string(&work)?,
            now
        ],
    )
    .await?;
    Ok(Converted {
        job,
        planned_work: work,
    })
}

/// The current revision of an estimate of the transaction's organization; `404` otherwise.
pub(crate) async fn load(
    tx: &mut TenantTx,
    id: EstimateId,
    lock: bool,
) -> Result<Estimate, StoreError> {
    let estimate = load_body(tx, "estimates", id.as_uuid(), lock, "estimate").await?;
    super::scope::ensure_estimate(tx, id).await?;
    Ok(estimate)
}

/// The latest approved estimate for a job, if any.
pub(crate) async fn approved_for_job(
    tx: &mut TenantTx,
    job_id: JobId,
) -> Result<Option<Estimate>, StoreError> {
    let org = tx.org();
    let row = tx
        .fetch_optional(
            "SELECT body FROM estimates WHERE organization_id = $1 AND job_id = $2 AND status = 'approved' \
             ORDER BY updated_at DESC, id DESC LIMIT 1",
            args![org, job_id.as_uuid()],
        )
        .await?;
    row.map(|r| decode_body(&r)).transpose()
}

/// The planned work handed to a job, if any.
pub(crate) async fn planned_work_of(
    tx: &mut TenantTx,
    job_id: JobId,
) -> Result<Option<PlannedWork>, StoreError> {
    let org = tx.org();
    let row = tx
        .fetch_optional(
            "SELECT body FROM job_planned_work WHERE organization_id = $1 AND job_id = $2",
            args![org, job_id.as_uuid()],
        )
        .await?;
    row.map(|r| Ok(serde_json::from_str(&r.get::<String>("body")?)?))
        .transpose()
}

/// Filters of `estimate/v1/list`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EstimateFilter {
    /// Only estimates in this state.
    pub status: Option<EstimateStatus>,
    /// Only this customer's.
    pub customer_id: Option<CustomerId>,
    /// Only this job's.
    pub job_id: Option<JobId>,
}

impl Services {
    /// `estimate/v1/get`: the current revision, or an earlier one.
    pub async fn estimate_get(
        &self,
        caller: &Caller,
        id: EstimateId,
        revision: Option<u32>,
    ) -> Result<Estimate, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let current = load(tx, id, false).await?;
                match revision {
                    None => Ok(current),
                    Some(r) if r == current.revision => Ok(current),
                    Some(r) => {
                        let org = tx.org();
                        let row = tx
                            .fetch_optional(
                                "SELECT body FROM estimate_revisions WHERE organization_id = $1 AND estimate_id = $2 \
                                 AND revision = $3",
                                args![org, id.as_uuid(), i64::from(r)],
                            )
                            .await?;
                        row.map(|r| decode_body(&r)).transpose()?.ok_or_else(|| {
                            Failure::not_found(&format!("revision {r} of the estimate")).into()
                        })
                    }
                }
            })
        })
        .await
    }

    /// `estimate/v1/list`.
    pub async fn estimate_list(
        &self,
        caller: &Caller,
        filter: EstimateFilter,
        page: PageRequest,
    ) -> Result<Page<Estimate>, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let org = tx.org();
                let mut values = args![
                    org,
                    page.after,
                    filter.status.map(EstimateStatus::as_str),
                    filter.customer_id.map(|c| c.as_uuid()),
                    filter.job_id.map(|j| j.as_uuid()),
                    i64::from(page.limit) + 1
                ];
                let scope = super::scope::documents_sql(tx, &mut values);
                let rows = tx
                    .fetch_all(
                        &format!(
                            "SELECT body FROM estimates WHERE organization_id = $1 AND ($2 IS NULL OR id > $2) \
                             AND ($3 IS NULL OR status = $3) AND ($4 IS NULL OR customer_id = $4) \
                             AND ($5 IS NULL OR job_id = $5){scope} ORDER BY id LIMIT $6"
                        ),
                        values,
                    )
                    .await?;
                let items = rows.iter().map(decode_body).collect::<Result<Vec<Estimate>, _>>()?;
                Ok(page.page(items, |e| e.id.as_uuid()))
            })
        })
        .await
    }
}
