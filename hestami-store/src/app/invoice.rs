//! Invoices and payments (`invoice/v1`, workflow `invoice_payment_v1`).
//!
//! **Numbers.** `issue` takes the next value of the organization's row in `invoice_sequences`
//! with one `INSERT … ON CONFLICT DO UPDATE … RETURNING` in the same transaction that records
//! the `issued` event and the step's journal row. Concurrent issuers queue on that row (a row
//! lock on PostgreSQL, the single writer on SQLite); a transaction that does not commit — a
//! refusal, a crash — gives its number back with everything else. So numbers have no gaps and no
//! duplicates, and a voided invoice keeps its number.
//!
//! **Payments.** `collectPayment` is three steps: check the payment against the balance
//! (nothing is charged for a refused payment), charge through the provider as an external step
//! with a key derived from the workflow id (a re-run after a crash asks again with the same key
//! and the provider answers with the original charge), then record it. If the balance changed
//! between the check and the record (another payment came in), the charge is refunded through the
//! provider and the refusal is returned: money is never kept without being recorded.
//!
//! **Credit notes and write-offs.** `creditNote` takes the next number of the organization's
//! own `credit_note_sequences` row the same way, so credit notes are gapless too. With
//! `refundPaymentId` it is the refund's three steps (reserve, call the provider, record), and the
//! record step writes the refund and the credit note in one transaction: the invoice never shows
//! the refunded amount as owed. While such a refund is with the provider, no other credit note of
//! the invoice is taken (`INVOICE_PAYMENT_PENDING`), so the note the refund pays back cannot be
//! out-credited in between. `writeOff` is one step. Neither takes what an unfinished payment has
//! reserved of the balance.
//!
//! **The job.** Issuing an invoice moves a completed job to `invoiced`, and the payment (credit
//! note, write-off) that brings its balance to zero moves it to `paid`, in the same transaction.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use hestami_core::ids::{
    CreditNoteId, CustomerId, EstimateId, InvoiceId, JobId, PaymentId, WriteOffId,
};
use hestami_core::invoice::{
    self as core_invoice, AgingBucket, CreditNote, CreditNoteNumber, CreditRequest, Invoice,
    InvoiceChange, InvoiceCommand, InvoiceError, InvoiceEvent, InvoiceNumber, InvoiceSource,
    InvoiceStatus, NewInvoice, PaymentMethod, PaymentTerms, WriteOff,
};
use hestami_core::job::{JobCommand, JobStatus};
use hestami_core::money::Money;
use hestami_core::pricebook::{QuoteLine, QuoteRequest};
use hestami_core::text::{Name, Reason};

use super::payments::PaymentProvider;
use super::pricebook::{PriceAt, invalid, price};
use super::{
    Caller, Command, Page, PageRequest, Services, check_version, decode_body, insert_event_body,
    load_body,
};
use crate::db::args;
use crate::directory::load_organization;
use crate::engine::WorkflowCtx;
use crate::error::{Failure, FailureKind, FieldError, StoreError};
use crate::store::{Operation, TenantTx, new_id};

pub(crate) mod collect;

/// The workflow of every invoice change and payment.
pub const WORKFLOW: &str = "invoice_payment_v1";
/// The procedure the daily overdue timer starts.
pub const OVERDUE_PROCEDURE: &str = "timer/invoice_overdue_scan";
/// The daily overdue timer's name.
pub const OVERDUE_TIMER: &str = "invoice_overdue_scan";
/// The payment terms when none are given: net 30.
pub const DEFAULT_NET_DAYS: u16 = 30;

/// What an invoice is made from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "from",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum InvoiceFrom {
    /// The job's approved estimate (the latest, or the one named), its option's lines as approved.
    ApprovedEstimate {
        /// A specific estimate of the job.
        estimate_id: Option<EstimateId>,
    },
    /// The labour time and materials recorded on the job, priced at today's pricebook.
    Actuals,
    /// These lines.
    Lines {
        /// The lines and the discount.
        request: QuoteRequest,
    },
}

/// `invoice/v1/create`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateInvoice {
    /// The job billed.
    pub job_id: JobId,
    /// Where the lines come from.
    pub from: InvoiceFrom,
    /// Payment terms (default net 30).
    pub terms: Option<PaymentTerms>,
}

/// `invoice/v1/update`: new lines and/or terms for a draft.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateInvoice {
    /// Which invoice.
    pub invoice_id: InvoiceId,
    /// New lines (priced now); `None` keeps the current ones.
    pub request: Option<QuoteRequest>,
    /// New terms; `None` keeps the current ones.
    pub terms: Option<PaymentTerms>,
    /// Fail with `VERSION_CONFLICT` unless the invoice is at this version.
    pub expected_version: Option<i64>,
}

/// `invoice/v1/issue`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssueInvoice {
    /// Which invoice.
    pub invoice_id: InvoiceId,
    /// Fail with `VERSION_CONFLICT` unless the invoice is at this version.
    pub expected_version: Option<i64>,
}

/// `invoice/v1/void`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VoidInvoice {
    /// Which invoice.
    pub invoice_id: InvoiceId,
    /// Why.
    pub reason: Reason,
    /// Fail with `VERSION_CONFLICT` unless the invoice is at this version.
    pub expected_version: Option<i64>,
}

/// `invoice/v1/collectPayment`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectPayment {
    /// Which invoice.
    pub invoice_id: InvoiceId,
    /// How much (at most the balance).
    pub amount: Money,
    /// How.
    pub method: PaymentMethod,
    /// A card token, a cheque number.
    pub reference: Option<Name>,
}

/// `invoice/v1/refund`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundPayment {
    /// The payment refunded.
    pub payment_id: PaymentId,
    /// How much (at most what is left of the payment).
    pub amount: Money,
    /// Why.
    pub reason: Reason,
}

/// `invoice/v1/creditNote`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreditInvoice {
    /// Which invoice.
    pub invoice_id: InvoiceId,
    /// What it credits, and why.
    pub request: CreditRequest,
    /// Refund the credit note's whole amount to this payment of the invoice (goodwill on a paid
    /// invoice).
    pub refund_payment_id: Option<PaymentId>,
    /// Fail with `VERSION_CONFLICT` unless the invoice is at this version.
    pub expected_version: Option<i64>,
}

/// `invoice/v1/writeOff`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteOffInvoice {
    /// Which invoice.
    pub invoice_id: InvoiceId,
    /// How much (at most the balance).
    pub amount: Money,
    /// Why.
    pub reason: Reason,
    /// Fail with `VERSION_CONFLICT` unless the invoice is at this version.
    pub expected_version: Option<i64>,
}

/// The daily overdue scan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OverdueScan {
    /// The organization's local date scanned.
    pub date: NaiveDate,
}

/// The invoice namespace's mutating procedures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "procedure", content = "input")]
pub enum InvoiceCommandInput {
    /// `invoice/v1/create`.
    #[serde(rename = "invoice/v1/create")]
    Create(CreateInvoice),
    /// `invoice/v1/update`.
    #[serde(rename = "invoice/v1/update")]
    Update(UpdateInvoice),
    /// `invoice/v1/issue`.
    #[serde(rename = "invoice/v1/issue")]
    Issue(IssueInvoice),
    /// `invoice/v1/void`.
    #[serde(rename = "invoice/v1/void")]
    Void(VoidInvoice),
    /// `invoice/v1/collectPayment`.
    #[serde(rename = "invoice/v1/collectPayment")]
    CollectPayment(CollectPayment),
    /// `invoice/v1/refund`.
    #[serde(rename = "invoice/v1/refund")]
    Refund(RefundPayment),
    /// `invoice/v1/creditNote`.
    #[serde(rename = "invoice/v1/creditNote")]
    CreditNote(CreditInvoice),
    /// `invoice/v1/writeOff`.
    #[serde(rename = "invoice/v1/writeOff")]
    WriteOff(WriteOffInvoice),
    /// The daily overdue timer.
    #[serde(rename = "timer/invoice_overdue_scan")]
    OverdueScan(OverdueScan),
}

impl Command for InvoiceCommandInput {
    const WORKFLOW: &'static str = WORKFLOW;
    fn procedure(&self) -> &'static str {
        match self {
            Self::Create(_) => "invoice/v1/create",
            Self::Update(_) => "invoice/v1/update",
            Self::Issue(_) => "invoice/v1/issue",
            Self::Void(_) => "invoice/v1/void",
            Self::CollectPayment(_) => "invoice/v1/collectPayment",
            Self::Refund(_) => "invoice/v1/refund",
            Self::CreditNote(_) => "invoice/v1/creditNote",
            Self::WriteOff(_) => "invoice/v1/writeOff",
            Self::OverdueScan(_) => OVERDUE_PROCEDURE,
        }
    }
    fn subject(&self) -> Option<super::Subject> {
        use super::Subject::{Invoice, Job};
        match self {
            Self::Create(c) => Some(Job(c.job_id)),
            Self::Update(u) => Some(Invoice(u.invoice_id)),
            Self::Issue(i) => Some(Invoice(i.invoice_id)),
            Self::Void(v) => Some(Invoice(v.invoice_id)),
            Self::CollectPayment(c) => Some(Invoice(c.invoice_id)),
            // Refunds, credits, write-offs and the overdue scan are not a technician's (the
            // permission table).
            Self::Refund(_) | Self::CreditNote(_) | Self::WriteOff(_) | Self::OverdueScan(_) => {
                None
            }
        }
    }
}

/// What the overdue scan did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OverdueReport {
    /// The date scanned.
    pub date: NaiveDate,
    /// Invoices newly found overdue (each with an `invoice_overdue` outbox message).
    pub newly_overdue: u32,
}

/// A core refusal as the API reports it.
pub fn invoice_failure(error: &InvoiceError) -> Failure {
    if let InvoiceError::Invalid { problems } = error {
        return invalid("", problems.clone());
    }
    let failure = Failure::refusal(error.is_state_conflict(), error.code(), error.to_string());
    match error {
        InvoiceError::InvalidTransition { from, allowed, .. } => failure
            .with_details(serde_json::json!({ "currentStatus": from, "allowedActions": allowed })),
        InvoiceError::PaymentExceedsBalance { balance, .. } => {
            failure.with_details(serde_json::json!({ "balance": balance.amount().to_string() }))
        }
        InvoiceError::RefundExceedsPayment { refundable, .. } => failure
            .with_details(serde_json::json!({ "refundable": refundable.amount().to_string() })),
        InvoiceError::CreditExceedsBalance { balance, .. }
        | InvoiceError::WriteOffExceedsBalance { balance, .. } => {
            failure.with_details(serde_json::json!({ "balance": balance.amount().to_string() }))
        }
        _ => failure,
    }
}

pub(crate) async fn run(
    mut ctx: WorkflowCtx,
    command: InvoiceCommandInput,
    processor: std::sync::Arc<dyn PaymentProvider>,
) -> Result<serde_json::Value, StoreError> {
    use InvoiceCommandInput as C;
    let value = match command {
        C::Create(c) => serde_json::to_value(
            ctx.step("create_invoice", move |tx| Box::pin(create(tx, c)))
                .await?,
        )?,
        C::Update(u) => serde_json::to_value(
            ctx.step("update_invoice", move |tx| {
                Box::pin(async move {
                    let invoice = lock_for_change(tx, u.invoice_id).await?;
                    check_version("invoice", u.expected_version, invoice.version)?;
                    let quote = match &u.request {
                        Some(request) => {
                            let at = price_at(tx, &invoice).await?;
                            price(tx, Some(at), request, "").await?
                        }
                        None => invoice.quote.clone(),
                    };
                    let command = InvoiceCommand::Update {
                        quote: Box::new(quote),
                        terms: u.terms.unwrap_or(invoice.terms),
                    };
                    apply(tx, &invoice, command).await
                })
            })
            .await?,
        )?,
        C::Issue(i) => serde_json::to_value(
            ctx.step("issue_invoice", move |tx| {
                Box::pin(async move {
                    let invoice = lock_for_change(tx, i.invoice_id).await?;
                    check_version("invoice", i.expected_version, invoice.version)?;
                    if let Some(job_id) = invoice.job_id
                        && super::job::load(tx, job_id, false).await?.status == JobStatus::Cancelled
                    {
                        return Err(cancelled().into());
                    }
                    // Refuse before taking a number (a refused issue must not even try one).
                    core_invoice::decide(
                        &invoice,
                        &InvoiceCommand::Issue {
                            number: InvoiceNumber::from_sequence(1).map_err(|e| {
                                StoreError::Internal(format!("invoice number 1: {}", e.message))
                            })?,
                            issue_date: NaiveDate::MIN,
                        },
                    )
                    .map_err(|e| invoice_failure(&e))?;
                    let number = next_number(tx).await?;
                    let issue_date = local_today(tx).await?;
                    let next =
                        apply(tx, &invoice, InvoiceCommand::Issue { number, issue_date }).await?;
                    sync_job(tx, next.job_id).await?;
                    Ok(next)
                })
            })
            .await?,
        )?,
        C::Void(v) => serde_json::to_value(
            ctx.step("void_invoice", move |tx| {
                Box::pin(async move {
                    let invoice = lock_for_change(tx, v.invoice_id).await?;
                    check_version("invoice", v.expected_version, invoice.version)?;
                    if collect::pending_count(tx, invoice.id).await? > 0 {
                        return Err(Failure::new(
                            FailureKind::Conflict,
                            "INVOICE_PAYMENT_PENDING",
                            "a payment or refund of this invoice is in progress; void it once it is settled",
                        )
                        .into());
                    }
                    apply(tx, &invoice, InvoiceCommand::Void { reason: v.reason }).await
                })
            })
            .await?,
        )?,
        C::CollectPayment(p) => {
            serde_json::to_value(collect::collect(&mut ctx, p, processor).await?)?
        }
        C::Refund(r) => serde_json::to_value(
            collect::refund(&mut ctx, collect::RefundOf::Amount(r), processor).await?,
        )?,
        C::CreditNote(c) => match c.refund_payment_id {
            None => serde_json::to_value(
                ctx.step("credit_invoice", move |tx| Box::pin(credit(tx, c)))
                    .await?,
            )?,
            Some(_) => serde_json::to_value(
                collect::refund(&mut ctx, collect::RefundOf::Credit(c), processor).await?,
            )?,
        },
        C::WriteOff(w) => serde_json::to_value(
            ctx.step("write_off_invoice", move |tx| Box::pin(write_off(tx, w)))
                .await?,
        )?,
        C::OverdueScan(s) => serde_json::to_value(
            ctx.step("scan_overdue", move |tx| Box::pin(scan_overdue(tx, s.date)))
                .await?,
        )?,
    };
    Ok(value)
}

async fn create(tx: &mut TenantTx, c: CreateInvoice) -> Result<Invoice, StoreError> {
    // Locked: two creates for one job queue here, so "once per estimate" and "once for the
    // actuals" hold under concurrency.
    let job = super::job::load(tx, c.job_id, true).await?;
    if job.status == JobStatus::Cancelled {
        return Err(cancelled().into());
    }
    let at = PriceAt::work(job.customer_id, job.property_id);
    let (source, quote) = match c.from {
        InvoiceFrom::ApprovedEstimate { estimate_id } => {
            let estimate = match estimate_id {
                Some(id) => {
                    let estimate = super::estimate::load(tx, id, false).await?;
                    if estimate.job_id != Some(job.id) {
                        return Err(Failure::validation(vec![FieldError {
                            field: "from.estimateId".into(),
                            code: "not_for_this_job".into(),
                            message: "the estimate is not this job's; convert it to this job first"
                                .into(),
                        }])
                        .into());
                    }
                    estimate
                }
                None => super::estimate::approved_for_job(tx, job.id)
                    .await?
                    .ok_or_else(|| {
                        Failure::new(
                            FailureKind::RuleViolation,
                            "ESTIMATE_NOT_APPROVED",
                            "the job has no approved estimate to invoice",
                        )
                    })?,
            };
            let (source, quote) =
                core_invoice::from_estimate(&estimate).map_err(|e| invoice_failure(&e))?;
            // One invoice per approved estimate: a second would bill the work twice. (Void the
            // first to invoice it again.)
            if let Some(existing) = invoices_of_job(tx, job.id)
                .await?
                .into_iter()
                .find(|i| i.status != InvoiceStatus::Void && i.source == source)
            {
                return Err(Failure::new(
                    FailureKind::Conflict,
                    "ESTIMATE_ALREADY_INVOICED",
                    "the approved estimate is already invoiced; void that invoice to invoice it again",
                )
                .with_details(serde_json::json!({ "invoiceId": existing.id }))
                .into());
            }
            (source, quote)
        }
        InvoiceFrom::Actuals => {
            if let Some(existing) = invoices_of_job(tx, job.id)
                .await?
                .into_iter()
                .find(|i| i.status != InvoiceStatus::Void && i.source == InvoiceSource::Actuals)
            {
                return Err(Failure::new(
                    FailureKind::Conflict,
                    "ACTUALS_ALREADY_INVOICED",
                    "the job's recorded work is already invoiced; void that invoice to invoice it again",
                )
                .with_details(serde_json::json!({ "invoiceId": existing.id }))
                .into());
            }
            let lines = actuals_of(tx, job.id).await?;
            if lines.is_empty() {
                return Err(Failure::new(
                    FailureKind::RuleViolation,
                    "JOB_ACTUALS_REQUIRED",
                    "no labour time or materials are recorded on the job (job/v1/recordActuals)",
                )
                .into());
            }
            let request = QuoteRequest {
                lines,
                discount: None,
            };
            (
                InvoiceSource::Actuals,
                price(tx, Some(at), &request, "actuals.").await?,
            )
        }
        InvoiceFrom::Lines { request } => (
            InvoiceSource::Lines,
            price(tx, Some(at), &request, "from.").await?,
        ),
    };
    let terms = match c.terms {
        Some(t) => t,
        None => PaymentTerms::net(DEFAULT_NET_DAYS)
            .map_err(|e| StoreError::Internal(format!("default terms: {}", e.message)))?,
    };
    let new_invoice = NewInvoice {
        job_id: Some(job.id),
        customer_id: job.customer_id,
        source,
        quote,
        terms,
    };
    insert_new(tx, new_invoice).await
}

/// Creates the draft invoice `new` (its row, its first event, its change).
async fn insert_new(tx: &mut TenantTx, new_invoice: NewInvoice) -> Result<Invoice, StoreError> {
    let id = InvoiceId::from_uuid(new_id());
    let (invoice, event) =
        core_invoice::create(id, new_invoice, tx.now(), tx.actor()).map_err(|p| invalid("", p))?;
    let org = tx.org();
    tx.execute(
        "INSERT INTO invoices (organization_id, id, version, status, job_id, customer_id, number, issue_date, \
         due_date, total, balance, body, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, NULL, $7, $8, $9, $10, $10)",
        args![
            org,
            invoice.id.as_uuid(),
            invoice.version,
            invoice.status.as_str(),
            invoice.job_id.map(|j| j.as_uuid()),
            invoice.customer_id.as_uuid(),
            invoice.total().amount().to_string(),
            invoice.balance().amount().to_string(),
            serde_json::to_string(&invoice)?,
            invoice.created_at
        ],
    )
    .await?;
    insert_event(tx, invoice.id, &event).await?;
    tx.record_change(
        "invoice",
        invoice.id.as_uuid(),
        invoice.version,
        Operation::Created,
    )
    .await?;
    Ok(invoice)
}

/// A credit note without a refund: one step.
pub(crate) async fn credit(tx: &mut TenantTx, c: CreditInvoice) -> Result<Invoice, StoreError> {
    let invoice = lock_for_change(tx, c.invoice_id).await?;
    check_version("invoice", c.expected_version, invoice.version)?;
    refuse_while_credit_refund_pending(tx, invoice.id).await?;
    let id = CreditNoteId::from_uuid(new_id());
    let issue_date = local_today(tx).await?;
    let note = price_credit(&invoice, id, issue_date, &c.request, None)?;
    let available = collect::unreserved_balance(tx, &invoice).await?;
    if note.total.amount() > available.amount() {
        return Err(invoice_failure(&InvoiceError::CreditExceedsBalance {
            amount: note.total,
            balance: available,
        })
        .into());
    }
    let number = next_credit_number(tx).await?;
    let command = InvoiceCommand::Credit {
        id,
        number,
        issue_date,
        request: c.request,
        refund: None,
    };
    let next = apply(tx, &invoice, command).await?;
    record_credit_note(tx, &next).await?;
    sync_job(tx, next.job_id).await?;
    Ok(next)
}

/// Prices a credit note against a locked invoice with a placeholder number, so a refused one
/// takes no number (as `issue` does).
pub(crate) fn price_credit(
    invoice: &Invoice,
    id: CreditNoteId,
    issue_date: NaiveDate,
    request: &CreditRequest,
    refund: Option<core_invoice::CreditRefund>,
) -> Result<CreditNote, StoreError> {
    let placeholder = CreditNoteNumber::from_sequence(1)
        .map_err(|e| StoreError::Internal(format!("credit note number 1: {}", e.message)))?;
    let command = InvoiceCommand::Credit {
        id,
        number: placeholder,
        issue_date,
        request: request.clone(),
        refund,
    };
    match core_invoice::decide(invoice, &command).map_err(|e| invoice_failure(&e))? {
        (InvoiceChange::Credited { credit_note, .. }, _) => Ok(*credit_note),
        _ => Err(StoreError::Internal(
            "a credit command decided something else".into(),
        )),
    }
}

/// Refuses a credit note while a refund that pays one back is with the provider.
pub(super) async fn refuse_while_credit_refund_pending(
    tx: &mut TenantTx,
    invoice_id: InvoiceId,
) -> Result<(), StoreError> {
    if collect::pending_credit_refunds(tx, invoice_id).await? > 0 {
        return Err(Failure::new(
            FailureKind::Conflict,
            "INVOICE_PAYMENT_PENDING",
            "a credit note's refund is in progress on this invoice; credit it again once that is settled",
        )
        .into());
    }
    Ok(())
}

/// The organization's today, in its time zone.
pub(super) async fn local_today(tx: &mut TenantTx) -> Result<NaiveDate, StoreError> {
    let org = load_organization(tx, false).await?;
    Ok(tx.now().with_timezone(&org.time_zone.tz()).date_naive())
}

/// Writes the row of the invoice's latest credit note (unique number, invoice, total).
pub(super) async fn record_credit_note(
    tx: &mut TenantTx,
    invoice: &Invoice,
) -> Result<(), StoreError> {
    let note = invoice
        .credit_notes
        .last()
        .ok_or_else(|| StoreError::Internal("a credited invoice without a credit note".into()))?;
    let org = tx.org();
    let now = tx.now();
    tx.execute(
        "INSERT INTO credit_notes (organization_id, id, invoice_id, number, total, issue_date, refund_id, at)          VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        args![
            org,
            note.id.as_uuid(),
            invoice.id.as_uuid(),
            note.number.sequence() as i64,
            note.total.amount().to_string(),
            note.issue_date,
            note.refund_id.map(|r| r.as_uuid()),
            now
        ],
    )
    .await?;
    let payload = serde_json::json!({
        "invoiceId": invoice.id, "number": invoice.number, "customerId": invoice.customer_id,
        "creditNoteId": note.id, "creditNoteNumber": note.number, "total": note.total,
        "refunded": note.refund_id.is_some(), "balance": invoice.balance(),
    });
    tx.enqueue("credit_note_issued", &payload).await
}

async fn write_off(tx: &mut TenantTx, w: WriteOffInvoice) -> Result<Invoice, StoreError> {
    let invoice = lock_for_change(tx, w.invoice_id).await?;
    check_version("invoice", w.expected_version, invoice.version)?;
    let command = InvoiceCommand::WriteOff {
        write_off: WriteOff {
            id: WriteOffId::from_uuid(new_id()),
            amount: w.amount,
            reason: w.reason,
        },
    };
    core_invoice::decide(&invoice, &command).map_err(|e| invoice_failure(&e))?;
    let available = collect::unreserved_balance(tx, &invoice).await?;
    if w.amount.round().amount() > available.amount() {
        return Err(invoice_failure(&InvoiceError::WriteOffExceedsBalance {
            amount: w.amount.round(),
            balance: available,
        })
        .into());
    }
    let next = apply(tx, &invoice, command).await?;
    sync_job(tx, next.job_id).await?;
    Ok(next)
}

fn cancelled() -> Failure {
    Failure::new(
        FailureKind::Conflict,
        "JOB_CANCELLED",
        "a cancelled job is not invoiced",
    )
}

/// Locks the invoice's job, then the invoice, and returns the invoice: the order every step
/// that changes an invoice and may move its job takes them in (the job's own steps lock the
/// job first too), so two such steps never wait on each other in opposite orders.
pub(crate) async fn lock_for_change(
    tx: &mut TenantTx,
    id: InvoiceId,
) -> Result<Invoice, StoreError> {
    let unlocked = load(tx, id, false).await?;
    if let Some(job_id) = unlocked.job_id {
        super::job::load(tx, job_id, true).await?;
    }
    load(tx, id, true).await
}

async fn price_at(tx: &mut TenantTx, invoice: &Invoice) -> Result<PriceAt, StoreError> {
    let Some(job_id) = invoice.job_id else {
        // An agreement's period: priced at the agreement's first property.
        return super::maintenance::price_at_of_invoice(tx, invoice).await;
    };
    let job = super::job::load(tx, job_id, false).await?;
    Ok(PriceAt::work(job.customer_id, job.property_id))
}

/// Creates and issues an invoice without a job (an agreement's billing period), priced at
/// `at`, numbered from the organization's gapless sequence, issued on `issue_date`.
pub(crate) async fn issue_unattached(
    tx: &mut TenantTx,
    at: PriceAt,
    request: &QuoteRequest,
    issue_date: NaiveDate,
) -> Result<Invoice, StoreError> {
    issue_direct(tx, None, at, request, issue_date).await
}

/// Creates and issues an invoice in one go, on `job_id` when given (a maintenance visit billed
/// per visit; the caller moves the job along with [`sync_job`] in a transaction of its own, so
/// that it never holds the agreement's lock and the job's together), priced at `at`.
pub(crate) async fn issue_direct(
    tx: &mut TenantTx,
    job_id: Option<JobId>,
    at: PriceAt,
    request: &QuoteRequest,
    issue_date: NaiveDate,
) -> Result<Invoice, StoreError> {
    let quote = price(tx, Some(at), request, "").await?;
    let terms = PaymentTerms::net(DEFAULT_NET_DAYS)
        .map_err(|e| StoreError::Internal(format!("default terms: {}", e.message)))?;
    let draft = insert_new(
        tx,
        NewInvoice {
            job_id,
            customer_id: at.customer_id,
            source: InvoiceSource::Lines,
            quote,
            terms,
        },
    )
    .await?;
    let number = next_number(tx).await?;
    apply(tx, &draft, InvoiceCommand::Issue { number, issue_date }).await
}

/// The next value of one of the organization's gapless sequences (`invoice_sequences`,
/// `credit_note_sequences`), taken in the caller's transaction.
pub(crate) async fn next_in(tx: &mut TenantTx, table: &'static str) -> Result<u64, StoreError> {
    let org = tx.org();
    let row = tx
        .fetch_one(
            &format!(
                "INSERT INTO {table} (organization_id, last_value) VALUES ($1, 1) \
                 ON CONFLICT (organization_id) DO UPDATE SET last_value = {table}.last_value + 1 \
                 RETURNING last_value"
            ),
            args![org],
        )
        .await?;
    let value: i64 = row.get("last_value")?;
    u64::try_from(value).map_err(|_| StoreError::Internal(format!("{table} at {value}")))
}

/// The next invoice number.
async fn next_number(tx: &mut TenantTx) -> Result<InvoiceNumber, StoreError> {
    let value = next_in(tx, "invoice_sequences").await?;
    InvoiceNumber::from_sequence(value)
        .map_err(|_| StoreError::Internal(format!("invoice sequence at {value}")))
}

/// The next credit note number.
pub(super) async fn next_credit_number(tx: &mut TenantTx) -> Result<CreditNoteNumber, StoreError> {
    let value = next_in(tx, "credit_note_sequences").await?;
    CreditNoteNumber::from_sequence(value)
        .map_err(|_| StoreError::Internal(format!("credit note sequence at {value}")))
}

/// Runs a command on a loaded (and locked) invoice and saves the result with its event.
async fn apply(
    tx: &mut TenantTx,
    invoice: &Invoice,
    command: InvoiceCommand,
) -> Result<Invoice, StoreError> {
    let (next, event) = core_invoice::execute(invoice, &command, tx.actor(), tx.now())
        .map_err(|e| invoice_failure(&e))?;
    save(tx, &next, &event).await?;
    Ok(next)
}

async fn save(tx: &mut TenantTx, next: &Invoice, event: &InvoiceEvent) -> Result<(), StoreError> {
    let org = tx.org();
    tx.execute(
        "UPDATE invoices SET version = $1, status = $2, number = $3, issue_date = $4, due_date = $5, total = $6, \
         balance = $7, body = $8, updated_at = $9 WHERE organization_id = $10 AND id = $11",
        args![
            next.version,
            next.status.as_str(),
            next.number.map(|n| n.sequence() as i64),
            next.issue_date,
            next.due_date,
            next.total().amount().to_string(),
            next.balance().amount().to_string(),
            serde_json::to_string(next)?,
            next.updated_at,
            org,
            next.id.as_uuid()
        ],
    )
    .await?;
    insert_event(tx, next.id, event).await?;
    // The customer hears of an issued invoice and of each payment, from the relay, only if
    // this transaction commits.
    match &event.change {
        InvoiceChange::Issued {
            number, due_date, ..
        } => {
            let payload = serde_json::json!({
                "invoiceId": next.id, "number": number, "customerId": next.customer_id,
                "dueDate": due_date, "total": next.total(),
            });
            tx.enqueue("invoice_issued", &payload).await?;
        }
        InvoiceChange::PaymentRecorded { payment } => {
            let payload = serde_json::json!({
                "invoiceId": next.id, "number": next.number, "customerId": next.customer_id,
                "paymentId": payment.id, "amount": payment.amount, "method": payment.method,
                "balance": next.balance(),
            });
            tx.enqueue("payment_receipt", &payload).await?;
        }
        _ => {}
    }
    tx.record_change(
        "invoice",
        next.id.as_uuid(),
        next.version,
        Operation::Transitioned,
    )
    .await?;
    Ok(())
}

async fn insert_event(
    tx: &mut TenantTx,
    id: InvoiceId,
    event: &InvoiceEvent,
) -> Result<(), StoreError> {
    insert_event_body(
        tx,
        "invoice_events",
        "invoice_id",
        id.as_uuid(),
        event.version,
        event,
        event.at,
    )
    .await
}

/// Moves the job along as far as its invoices allow: completed → invoiced once one is issued,
/// invoiced → paid once every issued one is settled.
pub(crate) async fn sync_job(tx: &mut TenantTx, job_id: Option<JobId>) -> Result<(), StoreError> {
    let Some(job_id) = job_id else {
        return Ok(());
    };
    let mut job = super::job::load(tx, job_id, true).await?;
    for (from, command) in [
        (JobStatus::Completed, JobCommand::Invoice),
        (JobStatus::Invoiced, JobCommand::Settle),
    ] {
        if job.status == from {
            let guards = super::job::guards_for(tx, job_id).await?;
            let ready = match command {
                JobCommand::Invoice => guards.invoice_issued,
                _ => guards.balance_settled,
            };
            if ready {
                job = super::job::apply(tx, &job, command, None).await?;
            }
        }
    }
    Ok(())
}

async fn invoices_of_job(tx: &mut TenantTx, job_id: JobId) -> Result<Vec<Invoice>, StoreError> {
    let org = tx.org();
    let rows = tx
        .fetch_all(
            "SELECT body FROM invoices WHERE organization_id = $1 AND job_id = $2 ORDER BY id",
            args![org, job_id.as_uuid()],
        )
        .await?;
    rows.iter().map(decode_body).collect()
}

/// The lines recorded on a job, oldest first.
pub(crate) async fn actuals_of(
    tx: &mut TenantTx,
    job_id: JobId,
) -> Result<Vec<QuoteLine>, StoreError> {
    let org = tx.org();
    let rows = tx
        .fetch_all(
            "SELECT line FROM job_actuals WHERE organization_id = $1 AND job_id = $2 ORDER BY recorded_at, id",
            args![org, job_id.as_uuid()],
        )
        .await?;
    rows.iter()
        .map(|r| Ok(serde_json::from_str(&r.get::<String>("line")?)?))
        .collect()
}

async fn scan_overdue(tx: &mut TenantTx, date: NaiveDate) -> Result<OverdueReport, StoreError> {
    let org = tx.org();
    let rows = tx
        .fetch_all(
            &format!(
                "SELECT body FROM invoices WHERE organization_id = $1 AND status = 'issued' AND due_date < $2 \
                 AND overdue_notified_on IS NULL ORDER BY number{}",
                tx.for_update()
            ),
            args![org, date],
        )
        .await?;
    let mut report = OverdueReport {
        date,
        newly_overdue: 0,
    };
    for row in rows {
        let invoice: Invoice = decode_body(&row)?;
        let payload = serde_json::json!({
            "invoiceId": invoice.id, "number": invoice.number, "customerId": invoice.customer_id,
            "dueDate": invoice.due_date, "balance": invoice.balance(),
            "agingBucket": invoice.aging(date),
        });
        tx.enqueue("invoice_overdue", &payload).await?;
        tx.execute(
            "UPDATE invoices SET overdue_notified_on = $1 WHERE organization_id = $2 AND id = $3",
            args![date, org, invoice.id.as_uuid()],
        )
        .await?;
        report.newly_overdue += 1;
    }
    Ok(report)
}

/// An invoice of the transaction's organization; `404` otherwise.
pub(crate) async fn load(
    tx: &mut TenantTx,
    id: InvoiceId,
    lock: bool,
) -> Result<Invoice, StoreError> {
    let invoice = load_body(tx, "invoices", id.as_uuid(), lock, "invoice").await?;
    super::scope::ensure_invoice(tx, id).await?;
    Ok(invoice)
}

/// Filters of `invoice/v1/list`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InvoiceFilter {
    /// Only invoices in this state.
    pub status: Option<InvoiceStatus>,
    /// Only this customer's.
    pub customer_id: Option<CustomerId>,
    /// Only this job's.
    pub job_id: Option<JobId>,
    /// Only overdue ones (`true`) or only ones that are not (`false`).
    pub overdue: Option<bool>,
}

/// An invoice with its aging on the organization's today.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgedInvoice {
    /// The invoice.
    pub invoice: Invoice,
    /// Its bucket, when it is issued with a balance.
    pub aging: Option<AgingBucket>,
}

/// A page of invoices and the aging of every open balance of the organization.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceList {
    /// The page.
    pub page: Page<AgedInvoice>,
    /// The organization's today, in its time zone.
    pub today: NaiveDate,
    /// Every issued invoice's balance by aging bucket (not only this page's).
    pub aging: BTreeMap<AgingBucket, Money>,
}

impl Services {
    /// `invoice/v1/get`.
    pub async fn invoice_get(&self, caller: &Caller, id: InvoiceId) -> Result<Invoice, StoreError> {
        self.read(caller, move |tx| Box::pin(load(tx, id, false)))
            .await
    }

    /// `invoice/v1/list`.
    pub async fn invoice_list(
        &self,
        caller: &Caller,
        filter: InvoiceFilter,
        page: PageRequest,
    ) -> Result<InvoiceList, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let org = load_organization(tx, false).await?;
                let today = tx.now().with_timezone(&org.time_zone.tz()).date_naive();
                let org_id = tx.org();
                let overdue_sql = match filter.overdue {
                    None => "",
                    Some(true) => " AND status = 'issued' AND due_date < $6",
                    Some(false) => " AND NOT (status = 'issued' AND due_date < $6)",
                };
                let mut values = args![
                    org_id,
                    page.after,
                    filter.status.map(InvoiceStatus::as_str),
                    filter.customer_id.map(|c| c.as_uuid()),
                    filter.job_id.map(|j| j.as_uuid()),
                    today,
                    i64::from(page.limit) + 1
                ];
                let scope = super::scope::documents_sql(tx, &mut values);
                let rows = tx
                    .fetch_all(
                        &format!(
                            "SELECT body FROM invoices WHERE organization_id = $1 AND ($2 IS NULL OR id > $2) \
                             AND ($3 IS NULL OR status = $3) AND ($4 IS NULL OR customer_id = $4) \
                             AND ($5 IS NULL OR job_id = $5) AND ($6 IS NOT NULL){overdue_sql}{scope} ORDER BY id LIMIT $7"
                        ),
                        values,
                    )
                    .await?;
                let items = rows
                    .iter()
                    .map(|r| {
                        let invoice: Invoice = decode_body(r)?;
                        Ok(AgedInvoice {
                            aging: invoice.aging(today),
                            invoice,
                        })
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?;
                // The aging report covers what the caller may see.
                let mut values = args![org_id];
                let scope = super::scope::documents_sql(tx, &mut values);
                let open = tx
                    .fetch_all(
                        &format!(
                            "SELECT body FROM invoices WHERE organization_id = $1 AND status = 'issued'{scope}"
                        ),
                        values,
                    )
                    .await?
                    .iter()
                    .map(decode_body)
                    .collect::<Result<Vec<_>, _>>()?;
                let aging = core_invoice::aging_report(org.currency, &open, today);
                Ok(InvoiceList {
                    page: page.page(items, |i| i.invoice.id.as_uuid()),
                    today,
                    aging,
                })
            })
        })
        .await
    }
}
