//! `invoice/v1`: invoices (from an approved estimate, from the work recorded on a job, or from
//! lines), their numbers, payments and refunds, and the aging of what is owed.
//!
//! An invoice's number is taken when it is issued, from the organization's gapless sequence.
//! Card and ACH payments go through the payment processor as a durable workflow step: a
//! `PAYMENT_PROVIDER_UNAVAILABLE` answer is safe to retry with the same idempotency key, which
//! finishes the payment without charging twice.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use hestami_core::ids::{CustomerId, EstimateId, InvoiceId, JobId, PaymentId};
use hestami_core::invoice::credit::{Adjustment, CreditLineRequest, MAX_ADJUSTMENTS};
use hestami_core::invoice::{
    AgingBucket, CreditRequest, Invoice, InvoiceStatus, PaymentMethod, PaymentTerms,
};
use hestami_core::money::Money;
use hestami_core::org::Currency;
use hestami_core::pricebook::QuoteRequest;
use hestami_core::text::{Name as Label, Reason};
use hestami_store::app::PageRequest;
use hestami_store::app::invoice::{
    CollectPayment, CreateInvoice, CreditInvoice, InvoiceCommandInput, InvoiceFilter, InvoiceFrom,
    IssueInvoice, RefundPayment, UpdateInvoice, VoidInvoice, WriteOffInvoice,
};

use super::money::{DiscountInput, InvoiceDto, QuoteLineInput, money, quote_request, refuse_if};
use crate::error::ApiError;
use crate::rpc::{Ctx, Name, Procedure, Validator, mutation, mutation_in, query, validate};

/// An invoice's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatusDto {
    /// Being written; no number yet.
    Draft,
    /// Numbered and sent; a balance is owed.
    Issued,
    /// The balance is 0.
    Paid,
    /// Cancelled; its number (if it had one) stays used.
    Void,
}

impl From<InvoiceStatusDto> for InvoiceStatus {
    fn from(s: InvoiceStatusDto) -> Self {
        match s {
            InvoiceStatusDto::Draft => Self::Draft,
            InvoiceStatusDto::Issued => Self::Issued,
            InvoiceStatusDto::Paid => Self::Paid,
            InvoiceStatusDto::Void => Self::Void,
        }
    }
}

/// How a payment was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethodDto {
    /// A card, through the payment processor.
    Card,
    /// A bank transfer, through the payment processor.
    Ach,
    /// Cash, recorded by hand.
    Cash,
    /// A cheque, recorded by hand.
    Check,
    /// Anything else, recorded by hand.
    Other,
}

impl From<PaymentMethodDto> for PaymentMethod {
    fn from(m: PaymentMethodDto) -> Self {
        match m {
            PaymentMethodDto::Card => Self::Card,
            PaymentMethodDto::Ach => Self::Ach,
            PaymentMethodDto::Cash => Self::Cash,
            PaymentMethodDto::Check => Self::Check,
            PaymentMethodDto::Other => Self::Other,
        }
    }
}

/// approved_estimate, actuals or lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceFromKindDto {
    /// The job's approved estimate: the approved option's lines, as approved.
    ApprovedEstimate,
    /// The labour time and materials recorded on the job (`job/v1/recordActuals`), priced now.
    Actuals,
    /// The lines given here, priced now.
    Lines,
}

// ---------------------------------------------------------------------------------------------
// Inputs.
// ---------------------------------------------------------------------------------------------

/// Where a new invoice's lines come from; give only the fields of its `from`:
/// `{"from": "approved_estimate"}` (optionally with `estimateId`), `{"from": "actuals"}`, or
/// `{"from": "lines", "lines": [...], "discount": {...}}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InvoiceFromInput {
    /// approved_estimate, actuals or lines.
    pub from: InvoiceFromKindDto,
    /// approved_estimate: one of the job's estimates (default: its latest approved one).
    #[serde(default)]
    pub estimate_id: Option<Uuid>,
    /// lines: the lines to price (required).
    #[serde(default)]
    pub lines: Option<Vec<QuoteLineInput>>,
    /// lines: a discount taken before tax.
    #[serde(default)]
    pub discount: Option<DiscountInput>,
}

/// `invoice/v1/create`: a draft invoice for a job (a job may have several).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateInvoiceInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The job billed.
    pub job_id: Uuid,
    /// Where the lines come from.
    pub from: InvoiceFromInput,
    /// Due this many days after issue, 0 to 365 (default 30).
    #[serde(default)]
    pub net_days: Option<i64>,
}

/// `invoice/v1/update`: new lines (priced now) and/or terms for a draft.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateInvoiceInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which invoice.
    pub invoice_id: Uuid,
    /// The new lines, replacing the current lines and discount; absent keeps them.
    #[serde(default)]
    pub lines: Option<Vec<QuoteLineInput>>,
    /// With `lines`: the new discount (absent: none).
    #[serde(default)]
    pub discount: Option<DiscountInput>,
    /// New terms, 0 to 365 days; absent keeps them.
    #[serde(default)]
    pub net_days: Option<i64>,
    /// Refuse with `VERSION_CONFLICT` unless the invoice is at this version.
    #[serde(default)]
    pub expected_version: Option<i64>,
}

/// `invoice/v1/issue`: number a draft and send it (a completed job moves to `invoiced`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssueInvoiceInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which invoice.
    pub invoice_id: Uuid,
    /// Refuse with `VERSION_CONFLICT` unless the invoice is at this version.
    #[serde(default)]
    pub expected_version: Option<i64>,
}

/// `invoice/v1/void`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VoidInvoiceInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which invoice.
    pub invoice_id: Uuid,
    /// Why.
    pub reason: String,
    /// Refuse with `VERSION_CONFLICT` unless the invoice is at this version.
    #[serde(default)]
    pub expected_version: Option<i64>,
}

/// `invoice/v1/collectPayment`: cash, cheque and other are recorded by hand; card and ACH are
/// charged through the payment processor.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CollectPaymentInput {
    /// Makes the call idempotent (and the charge: a retry never charges twice).
    pub idempotency_key: Uuid,
    /// Which invoice (issued).
    pub invoice_id: Uuid,
    /// How much, a decimal string: more than 0, at most the balance.
    pub amount: String,
    /// How.
    pub method: PaymentMethodDto,
    /// A cheque number, a card token.
    #[serde(default)]
    pub reference: Option<String>,
}

/// `invoice/v1/refund`: give back (part of) a payment, through the provider that took it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefundPaymentInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The payment refunded.
    pub payment_id: Uuid,
    /// How much, a decimal string: more than 0, at most what is left of the payment.
    pub amount: String,
    /// Why.
    pub reason: String,
}

/// One line of the invoice to credit.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreditLineInput {
    /// The line's position on the invoice (`quote.lines`), from 0.
    pub line: u32,
    /// How many of its units, a decimal string: more than 0, at most 4 decimals, at most what
    /// is left to credit of the line. Absent: all that is left.
    #[serde(default)]
    pub quantity: Option<String>,
}

/// An amount credited without a line: untaxed (goodwill, a concession).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdjustmentInput {
    /// What the customer reads.
    pub description: String,
    /// How much, a decimal string: more than 0, in the currency's minor unit.
    pub amount: String,
}

/// `invoice/v1/creditNote`: reduce what an issued (or, with a refund, a paid) invoice bills.
/// Give at least one of `lines` and `adjustments`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreditNoteInput {
    /// Makes the call idempotent (and the refund: a retry never refunds twice).
    pub idempotency_key: Uuid,
    /// Which invoice.
    pub invoice_id: Uuid,
    /// Invoice lines to credit, each at most once, at the invoice's prices, discount and taxes.
    #[serde(default)]
    pub lines: Vec<CreditLineInput>,
    /// Amounts credited without a line, untaxed.
    #[serde(default)]
    pub adjustments: Vec<AdjustmentInput>,
    /// Why.
    pub reason: String,
    /// Refund the credit note's whole amount to this payment of the invoice, through the
    /// provider that took it: goodwill on a paid invoice, which stays paid. Without it the credit
    /// note is at most the balance.
    #[serde(default)]
    pub refund_payment_id: Option<Uuid>,
    /// Refuse with `VERSION_CONFLICT` unless the invoice is at this version.
    #[serde(default)]
    pub expected_version: Option<i64>,
}

/// `invoice/v1/writeOff`: give up (part of) an issued invoice's balance as bad debt.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WriteOffInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which invoice.
    pub invoice_id: Uuid,
    /// How much, a decimal string: more than 0, at most the balance.
    pub amount: String,
    /// Why.
    pub reason: String,
    /// Refuse with `VERSION_CONFLICT` unless the invoice is at this version.
    #[serde(default)]
    pub expected_version: Option<i64>,
}

/// `invoice/v1/get`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InvoiceIdInput {
    /// Which invoice.
    pub invoice_id: Uuid,
}

/// `invoice/v1/list`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListInvoicesInput {
    /// Only invoices in this state.
    #[serde(default)]
    pub status: Option<InvoiceStatusDto>,
    /// Only this customer's.
    #[serde(default)]
    pub customer_id: Option<Uuid>,
    /// Only this job's.
    #[serde(default)]
    pub job_id: Option<Uuid>,
    /// Only overdue invoices (issued, past their due date), or only the others.
    #[serde(default)]
    pub overdue: Option<bool>,
    /// Page size, 1 to 200 (default 50).
    #[serde(default)]
    pub limit: Option<u32>,
    /// The `nextCursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

mutating!(
    CreateInvoiceInput,
    UpdateInvoiceInput,
    IssueInvoiceInput,
    VoidInvoiceInput,
    CollectPaymentInput,
    RefundPaymentInput,
    CreditNoteInput,
    WriteOffInput
);

// ---------------------------------------------------------------------------------------------
// Outputs.
// ---------------------------------------------------------------------------------------------

/// An invoice with its aging bucket on the organization's today.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgedInvoiceDto {
    /// The invoice.
    #[serde(flatten)]
    pub invoice: InvoiceDto,
    /// current, days_1_to_30, days_31_to_60, days_61_to_90 or over_90, while it is issued with a
    /// balance; otherwise null.
    pub aging_bucket: Option<String>,
}

/// Every issued invoice's balance by how far past due it is; decimal strings.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgingDto {
    /// Not yet due.
    pub current: String,
    /// 1 to 30 days past due.
    pub days_1_to_30: String,
    /// 31 to 60 days past due.
    pub days_31_to_60: String,
    /// 61 to 90 days past due.
    pub days_61_to_90: String,
    /// More than 90 days past due.
    pub over_90: String,
}

/// A page of invoices, and the aging of every open balance of the organization.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvoicePage {
    /// The invoices, in creation order.
    pub items: Vec<AgedInvoiceDto>,
    /// The cursor of the next page, or null on the last.
    pub next_cursor: Option<String>,
    /// The organization's today, in its time zone, which the aging is counted from.
    pub today: NaiveDate,
    /// Every issued invoice's balance by bucket (not only this page's).
    pub aging: AgingDto,
    /// The currency of the aging amounts (ISO 4217).
    pub currency: String,
}

// ---------------------------------------------------------------------------------------------
// Conversions.
// ---------------------------------------------------------------------------------------------

/// Payment terms at `field`: net 0 to 365 days.
fn terms(v: &mut Validator, field: &str, days: Option<i64>) -> Option<Option<PaymentTerms>> {
    match days {
        None => Some(None),
        Some(days) => {
            let parsed = u16::try_from(days)
                .map_err(|_| {
                    hestami_core::Invalid::new(
                        "out_of_range",
                        "payment terms are net 0 to 365 days",
                    )
                })
                .and_then(PaymentTerms::net);
            v.check(field, parsed).map(Some)
        }
    }
}

/// Converts an invoice's source; paths are `from.estimateId`, `from.lines[0].quantity`, ….
fn invoice_from(v: &mut Validator, i: InvoiceFromInput, currency: Currency) -> Option<InvoiceFrom> {
    let kind = i.from;
    let refuse = |v: &mut Validator, field: &str, given: bool, takes: bool| {
        refuse_if(
            v,
            &format!("from.{field}"),
            given && !takes,
            &format!("an invoice from {} takes no {field}", from_name(kind)),
        )
    };
    let refused = [
        refuse(
            v,
            "estimateId",
            i.estimate_id.is_some(),
            kind == InvoiceFromKindDto::ApprovedEstimate,
        ),
        refuse(
            v,
            "lines",
            i.lines.is_some(),
            kind == InvoiceFromKindDto::Lines,
        ),
        refuse(
            v,
            "discount",
            i.discount.is_some(),
            kind == InvoiceFromKindDto::Lines,
        ),
    ]
    .contains(&true);
    let from = match kind {
        InvoiceFromKindDto::ApprovedEstimate => Some(InvoiceFrom::ApprovedEstimate {
            estimate_id: i.estimate_id.map(EstimateId::from_uuid),
        }),
        InvoiceFromKindDto::Actuals => Some(InvoiceFrom::Actuals),
        InvoiceFromKindDto::Lines => match i.lines {
            Some(lines) => quote_request(v, "from.", lines, i.discount.as_ref(), currency)
                .map(|request| InvoiceFrom::Lines { request }),
            None => {
                v.fail(
                    "from.lines",
                    "required",
                    "an invoice from lines needs the lines",
                );
                None
            }
        },
    };
    from.filter(|_| !refused)
}

fn from_name(kind: InvoiceFromKindDto) -> &'static str {
    match kind {
        InvoiceFromKindDto::ApprovedEstimate => "approved_estimate",
        InvoiceFromKindDto::Actuals => "actuals",
        InvoiceFromKindDto::Lines => "lines",
    }
}

fn convert_create(
    i: CreateInvoiceInput,
    currency: Currency,
) -> Result<InvoiceCommandInput, ApiError> {
    validate(|v| {
        let from = invoice_from(v, i.from, currency);
        let terms = terms(v, "netDays", i.net_days);
        Some(InvoiceCommandInput::Create(CreateInvoice {
            job_id: JobId::from_uuid(i.job_id),
            from: from?,
            terms: terms?,
        }))
    })
}

fn convert_update(
    i: UpdateInvoiceInput,
    currency: Currency,
) -> Result<InvoiceCommandInput, ApiError> {
    validate(|v| {
        let request: Option<Option<QuoteRequest>> = match i.lines {
            Some(lines) => quote_request(v, "", lines, i.discount.as_ref(), currency).map(Some),
            None if i.discount.is_some() => {
                v.fail(
                    "lines",
                    "required",
                    "a new discount replaces the lines too; give the lines with it",
                );
                None
            }
            None => Some(None),
        };
        let terms = terms(v, "netDays", i.net_days);
        Some(InvoiceCommandInput::Update(UpdateInvoice {
            invoice_id: InvoiceId::from_uuid(i.invoice_id),
            request: request?,
            terms: terms?,
            expected_version: i.expected_version,
        }))
    })
}

fn convert_issue(i: IssueInvoiceInput) -> Result<InvoiceCommandInput, ApiError> {
    Ok(InvoiceCommandInput::Issue(IssueInvoice {
        invoice_id: InvoiceId::from_uuid(i.invoice_id),
        expected_version: i.expected_version,
    }))
}

fn convert_void(i: VoidInvoiceInput) -> Result<InvoiceCommandInput, ApiError> {
    validate(|v| {
        let reason = v.check("reason", Reason::parse(&i.reason));
        Some(InvoiceCommandInput::Void(VoidInvoice {
            invoice_id: InvoiceId::from_uuid(i.invoice_id),
            reason: reason?,
            expected_version: i.expected_version,
        }))
    })
}

fn convert_collect(
    i: CollectPaymentInput,
    currency: Currency,
) -> Result<InvoiceCommandInput, ApiError> {
    validate(|v| {
        let amount = money(v, "amount", &i.amount, currency);
        let reference = v.optional("reference", i.reference.as_deref(), Label::parse);
        Some(InvoiceCommandInput::CollectPayment(CollectPayment {
            invoice_id: InvoiceId::from_uuid(i.invoice_id),
            amount: amount?,
            method: i.method.into(),
            reference: reference?,
        }))
    })
}

fn convert_refund(
    i: RefundPaymentInput,
    currency: Currency,
) -> Result<InvoiceCommandInput, ApiError> {
    validate(|v| {
        let amount = money(v, "amount", &i.amount, currency);
        let reason = v.check("reason", Reason::parse(&i.reason));
        Some(InvoiceCommandInput::Refund(RefundPayment {
            payment_id: PaymentId::from_uuid(i.payment_id),
            amount: amount?,
            reason: reason?,
        }))
    })
}

fn convert_credit(i: CreditNoteInput, currency: Currency) -> Result<InvoiceCommandInput, ApiError> {
    validate(|v| {
        if i.lines.is_empty() && i.adjustments.is_empty() {
            v.fail(
                "lines",
                "required",
                "a credit note credits at least one line or adjustment",
            );
        }
        if i.lines.len() > hestami_core::pricebook::MAX_LINES {
            v.fail(
                "lines",
                "too_many",
                &format!("at most {} lines", hestami_core::pricebook::MAX_LINES),
            );
        }
        if i.adjustments.len() > MAX_ADJUSTMENTS {
            v.fail(
                "adjustments",
                "too_many",
                &format!("at most {MAX_ADJUSTMENTS} adjustments"),
            );
        }
        let lines: Vec<Option<CreditLineRequest>> = i
            .lines
            .iter()
            .enumerate()
            .map(|(n, l)| {
                let quantity = match &l.quantity {
                    None => Some(None),
                    Some(raw) => v
                        .check(
                            &format!("lines[{n}].quantity"),
                            super::money::positive_quantity(raw),
                        )
                        .map(Some),
                };
                quantity.map(|quantity| CreditLineRequest {
                    line: l.line,
                    quantity,
                })
            })
            .collect();
        let adjustments: Vec<Option<Adjustment>> = i
            .adjustments
            .iter()
            .enumerate()
            .map(|(n, a)| {
                let description = v.check(
                    &format!("adjustments[{n}].description"),
                    Label::parse(&a.description),
                );
                let amount = money(v, &format!("adjustments[{n}].amount"), &a.amount, currency);
                Some(Adjustment {
                    description: description?,
                    amount: amount?,
                })
            })
            .collect();
        let reason = v.check("reason", Reason::parse(&i.reason));
        Some(InvoiceCommandInput::CreditNote(CreditInvoice {
            invoice_id: InvoiceId::from_uuid(i.invoice_id),
            request: CreditRequest {
                lines: lines.into_iter().collect::<Option<_>>()?,
                adjustments: adjustments.into_iter().collect::<Option<_>>()?,
                reason: reason?,
            },
            refund_payment_id: i.refund_payment_id.map(PaymentId::from_uuid),
            expected_version: i.expected_version,
        }))
    })
}

fn convert_write_off(
    i: WriteOffInput,
    currency: Currency,
) -> Result<InvoiceCommandInput, ApiError> {
    validate(|v| {
        let amount = money(v, "amount", &i.amount, currency);
        let reason = v.check("reason", Reason::parse(&i.reason));
        Some(InvoiceCommandInput::WriteOff(WriteOffInvoice {
            invoice_id: InvoiceId::from_uuid(i.invoice_id),
            amount: amount?,
            reason: reason?,
            expected_version: i.expected_version,
        }))
    })
}

// ---------------------------------------------------------------------------------------------
// Reads.
// ---------------------------------------------------------------------------------------------

async fn get(ctx: Ctx, i: InvoiceIdInput) -> Result<InvoiceDto, ApiError> {
    let id = InvoiceId::from_uuid(i.invoice_id);
    let mut invoice: InvoiceDto = ctx.services.invoice_get(ctx.caller()?, id).await?.into();
    invoice.signature = ctx
        .services
        .invoice_signature(ctx.caller()?, id)
        .await?
        .map(Into::into);
    Ok(invoice)
}

async fn list(ctx: Ctx, i: ListInvoicesInput) -> Result<InvoicePage, ApiError> {
    let page = PageRequest::parse(i.limit, i.cursor.as_deref())?;
    let filter = InvoiceFilter {
        status: i.status.map(Into::into),
        customer_id: i.customer_id.map(CustomerId::from_uuid),
        job_id: i.job_id.map(JobId::from_uuid),
        overdue: i.overdue,
    };
    let currency = ctx.services.org_get(ctx.caller()?).await?.currency;
    let list = ctx
        .services
        .invoice_list(ctx.caller()?, filter, page)
        .await?;
    let bucket = |b: AgingBucket| {
        list.aging
            .get(&b)
            .copied()
            .unwrap_or_else(|| Money::zero(currency))
            .round()
            .amount()
            .to_string()
    };
    let aging = AgingDto {
        current: bucket(AgingBucket::Current),
        days_1_to_30: bucket(AgingBucket::Days1To30),
        days_31_to_60: bucket(AgingBucket::Days31To60),
        days_61_to_90: bucket(AgingBucket::Days61To90),
        over_90: bucket(AgingBucket::Over90),
    };
    Ok(InvoicePage {
        items: list
            .page
            .items
            .into_iter()
            .map(|aged| AgedInvoiceDto {
                invoice: aged.invoice.into(),
                aging_bucket: aged.aging.map(|b| b.as_str().to_owned()),
            })
            .collect(),
        next_cursor: list.page.next_cursor,
        today: list.today,
        aging,
        currency: currency.code().to_owned(),
    })
}

fn name(name: &'static str, summary: &'static str, errors: &'static [&'static str]) -> Name {
    Name {
        namespace: "invoice",
        version: "v1",
        name,
        summary,
        errors,
    }
}

const CHANGE_ERRORS: &[&str] = &[
    "NOT_FOUND",
    "VERSION_CONFLICT",
    "INVOICE_INVALID_TRANSITION",
];

pub(crate) fn procedures() -> Vec<Procedure> {
    vec![
        mutation_in(
            name(
                "create",
                "Draft an invoice for a job from its approved estimate, its recorded work, or lines",
                &[
                    "NOT_FOUND",
                    "ESTIMATE_NOT_APPROVED",
                    "ESTIMATE_ALREADY_INVOICED",
                    "ACTUALS_ALREADY_INVOICED",
                    "JOB_ACTUALS_REQUIRED",
                    "JOB_CANCELLED",
                ],
            ),
            convert_create,
            <InvoiceDto as From<Invoice>>::from,
        ),
        mutation_in(
            name(
                "update",
                "Change a draft's lines (priced now) or terms",
                CHANGE_ERRORS,
            ),
            convert_update,
            <InvoiceDto as From<Invoice>>::from,
        ),
        mutation(
            name(
                "issue",
                "Number a draft from the gapless sequence and issue it (its job moves to invoiced)",
                &[
                    "NOT_FOUND",
                    "VERSION_CONFLICT",
                    "INVOICE_INVALID_TRANSITION",
                    "JOB_CANCELLED",
                ],
            ),
            convert_issue,
            <InvoiceDto as From<Invoice>>::from,
        ),
        mutation(
            name(
                "void",
                "Cancel an invoice that has no payments (its number stays used)",
                &[
                    "NOT_FOUND",
                    "VERSION_CONFLICT",
                    "INVOICE_INVALID_TRANSITION",
                    "INVOICE_HAS_PAYMENTS",
                    "INVOICE_HAS_CREDITS",
                    "INVOICE_PAYMENT_PENDING",
                ],
            ),
            convert_void,
            <InvoiceDto as From<Invoice>>::from,
        ),
        mutation_in(
            name(
                "collectPayment",
                "Take a payment against an issued invoice (the job moves to paid when settled)",
                &[
                    "NOT_FOUND",
                    "INVOICE_INVALID_TRANSITION",
                    "PAYMENT_EXCEEDS_BALANCE",
                    "PAYMENT_DUPLICATE",
                    "PAYMENT_DECLINED",
                    "PAYMENT_PROVIDER_UNAVAILABLE",
                ],
            ),
            convert_collect,
            <InvoiceDto as From<Invoice>>::from,
        ),
        mutation_in(
            name(
                "refund",
                "Give back (part of) a payment through the provider that took it",
                &[
                    "NOT_FOUND",
                    "INVOICE_INVALID_TRANSITION",
                    "PAYMENT_NOT_FOUND",
                    "PAYMENT_DUPLICATE",
                    "REFUND_EXCEEDS_PAYMENT",
                    "REFUND_DECLINED",
                    "PAYMENT_PROVIDER_NOT_CONFIGURED",
                    "PAYMENT_PROVIDER_UNAVAILABLE",
                ],
            ),
            convert_refund,
            <InvoiceDto as From<Invoice>>::from,
        ),
        mutation_in(
            name(
                "creditNote",
                "Credit lines (at the invoice's prices and taxes) or amounts against an invoice, numbered from the credit note sequence; with refundPaymentId, refund it too (goodwill on a paid invoice)",
                &[
                    "NOT_FOUND",
                    "VERSION_CONFLICT",
                    "INVOICE_INVALID_TRANSITION",
                    "CREDIT_EXCEEDS_INVOICE",
                    "CREDIT_EXCEEDS_BALANCE",
                    "INVOICE_PAYMENT_PENDING",
                    "PAYMENT_NOT_FOUND",
                    "PAYMENT_DUPLICATE",
                    "REFUND_EXCEEDS_PAYMENT",
                    "REFUND_DECLINED",
                    "PAYMENT_PROVIDER_NOT_CONFIGURED",
                    "PAYMENT_PROVIDER_UNAVAILABLE",
                ],
            ),
            convert_credit,
            <InvoiceDto as From<Invoice>>::from,
        ),
        mutation_in(
            name(
                "writeOff",
                "Write (part of) an issued invoice's balance off as bad debt, with a reason",
                &[
                    "NOT_FOUND",
                    "VERSION_CONFLICT",
                    "INVOICE_INVALID_TRANSITION",
                    "WRITE_OFF_EXCEEDS_BALANCE",
                ],
            ),
            convert_write_off,
            <InvoiceDto as From<Invoice>>::from,
        ),
        query(name("get", "An invoice", &["NOT_FOUND"]), get),
        query(
            name(
                "list",
                "Invoices, by creation, with their aging and the organization's aging totals",
                &[],
            ),
            list,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn usd() -> Currency {
        Currency::parse("USD").expect("listed")
    }

    fn fields(e: &ApiError) -> Vec<(&str, &str)> {
        e.field_errors
            .iter()
            .map(|f| (f.field.as_str(), f.code.as_str()))
            .collect()
    }

    fn create(
        from: serde_json::Value,
        net_days: Option<i64>,
    ) -> Result<InvoiceCommandInput, ApiError> {
        let input: CreateInvoiceInput = serde_json::from_value(json!({
            "idempotencyKey": Uuid::nil(), "jobId": Uuid::nil(), "from": from, "netDays": net_days,
        }))
        .expect("well-formed");
        convert_create(input, usd())
    }

    #[test]
    fn an_invoice_source_takes_only_its_own_fields() {
        let ok = create(json!({ "from": "approved_estimate" }), Some(0)).expect("valid");
        assert!(matches!(
            ok,
            InvoiceCommandInput::Create(CreateInvoice {
                from: InvoiceFrom::ApprovedEstimate { estimate_id: None },
                terms: Some(t),
                ..
            }) if t.net_days() == 0
        ));
        let err = create(
            json!({ "from": "actuals", "estimateId": Uuid::nil(), "lines": [] }),
            Some(400),
        )
        .expect_err("refused");
        assert_eq!(
            fields(&err),
            vec![
                ("from.estimateId", "not_applicable"),
                ("from.lines", "not_applicable"),
                ("netDays", "out_of_range"),
            ]
        );
        let err = create(json!({ "from": "lines" }), None).expect_err("refused");
        assert_eq!(fields(&err), vec![("from.lines", "required")]);
        let err = create(
            json!({ "from": "lines", "lines": [{ "description": "Trip", "kind": "service",
                                                 "unitPrice": "x", "quantity": "1" }] }),
            None,
        )
        .expect_err("refused");
        assert_eq!(
            fields(&err),
            vec![("from.lines[0].unitPrice", "invalid_amount")]
        );
    }

    #[test]
    fn an_update_needs_the_lines_with_a_new_discount() {
        let input: UpdateInvoiceInput = serde_json::from_value(json!({
            "idempotencyKey": Uuid::nil(), "invoiceId": Uuid::nil(),
            "discount": { "type": "percent", "percent": "10" },
        }))
        .expect("well-formed");
        let err = convert_update(input, usd()).expect_err("refused");
        assert_eq!(fields(&err), vec![("lines", "required")]);
    }
}
