//! `estimate/v1`: proposals of one or more priced options to a customer, their lifecycle (draft,
//! sent, approved, declined, expired) and their conversion into a job's planned work.
//!
//! Each option is priced when the estimate is generated or revised and kept as priced, so a
//! later pricebook change never reaches an estimate already made. Expiry is the store's durable
//! timer; it has no procedure.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use hestami_core::estimate::{Estimate, EstimateStatus};
use hestami_core::ids::{CustomerId, EstimateId, EstimateOptionId, JobId, PropertyId};
use hestami_core::org::Currency;
use hestami_core::text::{Description, Name as Label, Reason, Summary, TradeCode};
use hestami_store::app::PageRequest;
use hestami_store::app::estimate::{
    ApproveEstimate, ConvertToJob, Converted, DeclineEstimate, EstimateCommandInput,
    EstimateFilter, GenerateEstimate, OptionInput, ReviseEstimate, SendEstimate,
};

use super::job::{JobDto, PriorityDto};
use super::money::{
    DiscountInput, EstimateDto, PlannedWorkDto, QuoteLineInput, money, quote_request,
};
use crate::error::ApiError;
use crate::rpc::{Ctx, Name, Procedure, Validator, mutation, mutation_in, query, validate};

/// An estimate's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EstimateStatusDto {
    /// Being written.
    Draft,
    /// Delivered to the customer.
    Sent,
    /// The customer approved one option.
    Approved,
    /// The customer declined.
    Declined,
    /// Not answered before `validUntil`.
    Expired,
}

impl From<EstimateStatusDto> for EstimateStatus {
    fn from(s: EstimateStatusDto) -> Self {
        match s {
            EstimateStatusDto::Draft => Self::Draft,
            EstimateStatusDto::Sent => Self::Sent,
            EstimateStatusDto::Approved => Self::Approved,
            EstimateStatusDto::Declined => Self::Declined,
            EstimateStatusDto::Expired => Self::Expired,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Inputs.
// ---------------------------------------------------------------------------------------------

/// One option to offer: a name and the lines to price.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EstimateOptionInput {
    /// Its name, such as `Good`, `Better` or `Best` (distinct within the estimate).
    pub name: String,
    /// The lines to price (at least one).
    pub lines: Vec<QuoteLineInput>,
    /// A discount taken before tax.
    #[serde(default)]
    pub discount: Option<DiscountInput>,
}

/// `estimate/v1/generate`: for a job (its customer and property), or for a customer and one of
/// its properties.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GenerateEstimateInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The job it is for.
    #[serde(default)]
    pub job_id: Option<Uuid>,
    /// Without a job: the customer (with a job: absent, or the job's).
    #[serde(default)]
    pub customer_id: Option<Uuid>,
    /// Without a job: one of the customer's properties, whose taxes apply.
    #[serde(default)]
    pub property_id: Option<Uuid>,
    /// 1 to 10 options.
    pub options: Vec<EstimateOptionInput>,
    /// The offer lapses then (in the future).
    #[serde(deserialize_with = "crate::wire::date_time")]
    pub valid_until: DateTime<Utc>,
    /// Notes for the customer.
    #[serde(default)]
    pub notes: Option<String>,
}

/// `estimate/v1/revise`: replace the offer with a new revision, in draft (from draft, sent,
/// declined or expired; the previous revision stays readable).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReviseEstimateInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which estimate.
    pub estimate_id: Uuid,
    /// 1 to 10 options, priced now.
    pub options: Vec<EstimateOptionInput>,
    /// The offer lapses then (in the future).
    #[serde(deserialize_with = "crate::wire::date_time")]
    pub valid_until: DateTime<Utc>,
    /// Notes for the customer.
    #[serde(default)]
    pub notes: Option<String>,
    /// Refuse with `VERSION_CONFLICT` unless the estimate is at this version.
    #[serde(default)]
    pub expected_version: Option<i64>,
}

/// `estimate/v1/send`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendEstimateInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which estimate.
    pub estimate_id: Uuid,
    /// Refuse with `VERSION_CONFLICT` unless the estimate is at this version.
    #[serde(default)]
    pub expected_version: Option<i64>,
}

/// `estimate/v1/approve`: the customer approves one option and signs.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApproveEstimateInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which estimate.
    pub estimate_id: Uuid,
    /// The option approved.
    pub option_id: Uuid,
    /// Who signed.
    pub signed_by: String,
    /// The signature as captured (a typed name, or a reference to a stored image).
    #[serde(default)]
    pub signature: Option<String>,
    /// A deposit to collect before work starts, a decimal string, at most the option's total.
    #[serde(default)]
    pub deposit_required: Option<String>,
    /// Refuse with `VERSION_CONFLICT` unless the estimate is at this version.
    #[serde(default)]
    pub expected_version: Option<i64>,
}

/// `estimate/v1/decline`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeclineEstimateInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which estimate.
    pub estimate_id: Uuid,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
    /// Refuse with `VERSION_CONFLICT` unless the estimate is at this version.
    #[serde(default)]
    pub expected_version: Option<i64>,
}

/// `estimate/v1/convertToJob`: hand the approved option to the estimate's job, or to a new job
/// (the other fields are for the new job only).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConvertToJobInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The approved estimate.
    pub estimate_id: Uuid,
    /// A new job's trade (default: the trade of the option's first labour line).
    #[serde(default)]
    pub trade: Option<String>,
    /// A new job's summary (default `Estimate: <option name>`).
    #[serde(default)]
    pub summary: Option<String>,
    /// A new job's priority (default routine).
    #[serde(default)]
    pub priority: Option<PriorityDto>,
}

/// `estimate/v1/get`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetEstimateInput {
    /// Which estimate.
    pub estimate_id: Uuid,
    /// An earlier revision; absent for the current one.
    #[serde(default)]
    pub revision: Option<u32>,
}

/// `estimate/v1/list`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListEstimatesInput {
    /// Only estimates in this state.
    #[serde(default)]
    pub status: Option<EstimateStatusDto>,
    /// Only this customer's.
    #[serde(default)]
    pub customer_id: Option<Uuid>,
    /// Only this job's.
    #[serde(default)]
    pub job_id: Option<Uuid>,
    /// Page size, 1 to 200 (default 50).
    #[serde(default)]
    pub limit: Option<u32>,
    /// The `nextCursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

mutating!(
    GenerateEstimateInput,
    ReviseEstimateInput,
    SendEstimateInput,
    ApproveEstimateInput,
    DeclineEstimateInput,
    ConvertToJobInput
);

// ---------------------------------------------------------------------------------------------
// Outputs.
// ---------------------------------------------------------------------------------------------

/// A page of estimates (their current revisions).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EstimatePage {
    /// The estimates, in creation order.
    pub items: Vec<EstimateDto>,
    /// The cursor of the next page, or null on the last.
    pub next_cursor: Option<String>,
}

/// What `convertToJob` did: the job (new, or the estimate's own) and the work handed to it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConvertedDto {
    /// The job.
    pub job: JobDto,
    /// The approved option's lines, now the job's planned work.
    pub planned_work: PlannedWorkDto,
}

impl From<Converted> for ConvertedDto {
    fn from(c: Converted) -> Self {
        Self {
            job: c.job.into(),
            planned_work: (&c.planned_work).into(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Conversions.
// ---------------------------------------------------------------------------------------------

/// Converts the options; paths are `options[i].name`, `options[i].lines[j].quantity`, ….
fn options(
    v: &mut Validator,
    inputs: Vec<EstimateOptionInput>,
    currency: Currency,
) -> Option<Vec<OptionInput>> {
    let converted: Vec<Option<OptionInput>> = inputs
        .into_iter()
        .enumerate()
        .map(|(i, o)| {
            let prefix = format!("options[{i}].");
            let name = v.check(&format!("{prefix}name"), Label::parse(&o.name));
            let request = quote_request(v, &prefix, o.lines, o.discount.as_ref(), currency);
            Some(OptionInput {
                name: name?,
                request: request?,
            })
        })
        .collect();
    converted.into_iter().collect()
}

fn convert_generate(
    i: GenerateEstimateInput,
    currency: Currency,
) -> Result<EstimateCommandInput, ApiError> {
    validate(|v| {
        let options = options(v, i.options, currency);
        let notes = v.optional("notes", i.notes.as_deref(), Description::parse);
        Some(EstimateCommandInput::Generate(GenerateEstimate {
            job_id: i.job_id.map(JobId::from_uuid),
            customer_id: i.customer_id.map(CustomerId::from_uuid),
            property_id: i.property_id.map(PropertyId::from_uuid),
            options: options?,
            valid_until: i.valid_until,
            notes: notes?,
        }))
    })
}

fn convert_revise(
    i: ReviseEstimateInput,
    currency: Currency,
) -> Result<EstimateCommandInput, ApiError> {
    validate(|v| {
        let options = options(v, i.options, currency);
        let notes = v.optional("notes", i.notes.as_deref(), Description::parse);
        Some(EstimateCommandInput::Revise(ReviseEstimate {
            estimate_id: EstimateId::from_uuid(i.estimate_id),
            options: options?,
            valid_until: i.valid_until,
            notes: notes?,
            expected_version: i.expected_version,
        }))
    })
}

fn convert_send(i: SendEstimateInput) -> Result<EstimateCommandInput, ApiError> {
    Ok(EstimateCommandInput::Send(SendEstimate {
        estimate_id: EstimateId::from_uuid(i.estimate_id),
        expected_version: i.expected_version,
    }))
}

fn convert_approve(
    i: ApproveEstimateInput,
    currency: Currency,
) -> Result<EstimateCommandInput, ApiError> {
    validate(|v| {
        let signed_by = v.check("signedBy", Label::parse(&i.signed_by));
        let signature = v.optional("signature", i.signature.as_deref(), Description::parse);
        let deposit = match i.deposit_required.as_deref() {
            None => Some(None),
            Some(raw) => money(v, "depositRequired", raw, currency).map(Some),
        };
        Some(EstimateCommandInput::Approve(ApproveEstimate {
            estimate_id: EstimateId::from_uuid(i.estimate_id),
            option_id: EstimateOptionId::from_uuid(i.option_id),
            signed_by: signed_by?,
            signature: signature?,
            deposit_required: deposit?,
            expected_version: i.expected_version,
        }))
    })
}

fn convert_decline(i: DeclineEstimateInput) -> Result<EstimateCommandInput, ApiError> {
    validate(|v| {
        let reason = v.optional("reason", i.reason.as_deref(), Reason::parse);
        Some(EstimateCommandInput::Decline(DeclineEstimate {
            estimate_id: EstimateId::from_uuid(i.estimate_id),
            reason: reason?,
            expected_version: i.expected_version,
        }))
    })
}

fn convert_to_job(i: ConvertToJobInput) -> Result<EstimateCommandInput, ApiError> {
    validate(|v| {
        let trade = v.optional("trade", i.trade.as_deref(), TradeCode::parse);
        let summary = v.optional("summary", i.summary.as_deref(), Summary::parse);
        Some(EstimateCommandInput::ConvertToJob(ConvertToJob {
            estimate_id: EstimateId::from_uuid(i.estimate_id),
            trade: trade?,
            summary: summary?,
            priority: i.priority.map(Into::into),
        }))
    })
}

// ---------------------------------------------------------------------------------------------
// Reads.
// ---------------------------------------------------------------------------------------------

async fn get(ctx: Ctx, i: GetEstimateInput) -> Result<EstimateDto, ApiError> {
    Ok(ctx
        .services
        .estimate_get(
            ctx.caller()?,
            EstimateId::from_uuid(i.estimate_id),
            i.revision,
        )
        .await?
        .into())
}

async fn list(ctx: Ctx, i: ListEstimatesInput) -> Result<EstimatePage, ApiError> {
    let page = PageRequest::parse(i.limit, i.cursor.as_deref())?;
    let filter = EstimateFilter {
        status: i.status.map(Into::into),
        customer_id: i.customer_id.map(CustomerId::from_uuid),
        job_id: i.job_id.map(JobId::from_uuid),
    };
    let page = ctx
        .services
        .estimate_list(ctx.caller()?, filter, page)
        .await?;
    Ok(EstimatePage {
        items: page.items.iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    })
}

fn name(name: &'static str, summary: &'static str, errors: &'static [&'static str]) -> Name {
    Name {
        namespace: "estimate",
        version: "v1",
        name,
        summary,
        errors,
    }
}

pub(crate) fn procedures() -> Vec<Procedure> {
    vec![
        mutation_in(
            name(
                "generate",
                "Price 1 to 10 options for a job or a customer's property into a draft estimate",
                &["NOT_FOUND"],
            ),
            convert_generate,
            <EstimateDto as From<Estimate>>::from,
        ),
        mutation_in(
            name(
                "revise",
                "Replace the options with a new revision, back in draft",
                &[
                    "NOT_FOUND",
                    "VERSION_CONFLICT",
                    "ESTIMATE_INVALID_TRANSITION",
                ],
            ),
            convert_revise,
            <EstimateDto as From<Estimate>>::from,
        ),
        mutation(
            name(
                "send",
                "Deliver a draft to the customer (it expires at validUntil unless answered)",
                &[
                    "NOT_FOUND",
                    "VERSION_CONFLICT",
                    "ESTIMATE_INVALID_TRANSITION",
                    "ESTIMATE_EXPIRED",
                ],
            ),
            convert_send,
            <EstimateDto as From<Estimate>>::from,
        ),
        mutation_in(
            name(
                "approve",
                "The customer approves one option of a sent estimate, with a signature",
                &[
                    "NOT_FOUND",
                    "VERSION_CONFLICT",
                    "ESTIMATE_INVALID_TRANSITION",
                    "ESTIMATE_EXPIRED",
                    "ESTIMATE_OPTION_NOT_FOUND",
                ],
            ),
            convert_approve,
            <EstimateDto as From<Estimate>>::from,
        ),
        mutation(
            name(
                "decline",
                "The customer declines a sent estimate",
                &[
                    "NOT_FOUND",
                    "VERSION_CONFLICT",
                    "ESTIMATE_INVALID_TRANSITION",
                ],
            ),
            convert_decline,
            <EstimateDto as From<Estimate>>::from,
        ),
        mutation(
            name(
                "convertToJob",
                "Hand an approved estimate's option to its job (or a new job) as planned work",
                &["NOT_FOUND", "ESTIMATE_NOT_APPROVED", "TRADE_UNKNOWN"],
            ),
            convert_to_job,
            <ConvertedDto as From<Converted>>::from,
        ),
        query(
            name(
                "get",
                "An estimate's current revision, or an earlier one",
                &["NOT_FOUND"],
            ),
            get,
        ),
        query(
            name(
                "list",
                "Estimates, by creation, filtered by state, customer or job",
                &[],
            ),
            list,
        ),
    ]
}
