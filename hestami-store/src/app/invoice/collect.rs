//! `collectPayment` and `refund`: a reservation, one external call, and the record.
//!
//! Each is the same three steps. **Reserve**: under the invoice's row lock, decide the payment
//! (or refund) against the invoice *less what other unfinished ones have reserved*, and write
//! its ledger row `pending`; so two payments at once cannot both pass against one balance, and
//! two refunds cannot both take what is left of a payment. **Call** the provider the row names,
//! as an external step with a key derived from the workflow. **Record** it on the invoice
//! (`applied`), or mark the row `declined`. If the invoice refuses a payment anyway (it was
//! voided meanwhile), the charge is refunded (`returned`); money that moved and could not be
//! recorded or given back is `unapplied` and announced in the outbox (`payment_unreconciled`).

use std::sync::Arc;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use hestami_core::ids::{CreditNoteId, InvoiceId, PaymentId, RefundId};
use hestami_core::invoice::{
    self as core_invoice, CreditRefund, Invoice, InvoiceCommand, InvoiceError, NewPayment,
    NewRefund, PaymentMethod,
};
use hestami_core::money::Money;
use hestami_core::text::{Name, Reason};

use super::{
    CollectPayment, CreditInvoice, RefundPayment, check_version, invoice_failure, load,
    local_today, lock_for_change, next_credit_number, price_credit, record_credit_note,
    refuse_while_credit_refund_pending, save, sync_job,
};
use crate::app::payments::{
    ChargeOutcome, ChargeRequest, ManualProvider, PaymentProvider, ProviderError, is_manual,
};
use crate::db::args;
use crate::engine::WorkflowCtx;
use crate::error::{Failure, FailureKind, StoreError};
use crate::store::{TenantTx, new_id};

/// What the reservation hands to the call and the record.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Reserved {
    /// The ledger row: the payment's (or the refund's) id.
    id: uuid::Uuid,
    invoice_id: InvoiceId,
    method: PaymentMethod,
    /// The provider that takes (or took) the money, by name.
    provider: String,
    /// For a refund: the provider's id of the charge.
    original: Option<String>,
    /// For a credit note's refund: its amount (the note's total) and the note's id. (Absent
    /// from reservations journalled before credit notes existed.)
    #[serde(default)]
    amount: Option<Money>,
    #[serde(default)]
    credit_note_id: Option<CreditNoteId>,
}

/// What a refund gives back.
#[derive(Clone, Debug)]
pub(crate) enum RefundOf {
    /// An amount of a payment (`invoice/v1/refund`): owed again.
    Amount(RefundPayment),
    /// A credit note's whole amount (`invoice/v1/creditNote` with `refundPaymentId`).
    Credit(CreditInvoice),
}

impl RefundOf {
    /// The payment it refunds.
    fn payment_id(&self) -> Result<PaymentId, StoreError> {
        match self {
            Self::Amount(r) => Ok(r.payment_id),
            Self::Credit(c) => c.refund_payment_id.ok_or_else(|| {
                StoreError::Internal("a credit note's refund without a payment".into())
            }),
        }
    }

    /// Why, as the office wrote it.
    fn reason(&self) -> Reason {
        match self {
            Self::Amount(r) => r.reason.clone(),
            Self::Credit(c) => c.request.reason.clone(),
        }
    }
}

/// A record step's answer, journalled even when the invoice refused it (money has moved).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
enum Recorded {
    Recorded { invoice: Box<Invoice> },
    Refused { failure: Failure },
}

fn provider_error(e: ProviderError) -> StoreError {
    match e {
        ProviderError::Crashed => StoreError::InjectedCrash,
        ProviderError::Timeout => StoreError::Unavailable {
            code: "PAYMENT_PROVIDER_UNAVAILABLE",
            message: "the payment provider did not answer in time".into(),
        },
    }
}

/// The provider that handles `method` in this process.
fn provider_for(
    method: PaymentMethod,
    processor: &Arc<dyn PaymentProvider>,
) -> Arc<dyn PaymentProvider> {
    if is_manual(method) {
        Arc::new(ManualProvider)
    } else {
        processor.clone()
    }
}

/// The provider named by a reservation. A payment started with one processor is never sent to
/// another: if this process is configured differently, the workflow waits (`503`) until one
/// that is picks it up.
fn provider_named(
    name: &str,
    processor: &Arc<dyn PaymentProvider>,
) -> Result<Arc<dyn PaymentProvider>, StoreError> {
    if name == ManualProvider.name() {
        Ok(Arc::new(ManualProvider))
    } else if name == processor.name() {
        Ok(processor.clone())
    } else {
        Err(StoreError::Unavailable {
            code: "PAYMENT_PROVIDER_UNAVAILABLE",
            message: format!("the payment provider {name} is not configured in this process"),
        })
    }
}

/// The amount other unfinished (pending) rows of `kind` hold against `invoice_id`, or against
/// one payment (`of_payment`) for refunds.
async fn reserved(
    tx: &mut TenantTx,
    invoice_id: InvoiceId,
    kind: &str,
    of_payment: Option<PaymentId>,
) -> Result<Decimal, StoreError> {
    let org = tx.org();
    let rows = tx
        .fetch_all(
            "SELECT amount FROM payments WHERE organization_id = $1 AND invoice_id = $2 AND kind = $3 \
             AND state = 'pending' AND ($4 IS NULL OR payment_id = $4)",
            args![org, invoice_id.as_uuid(), kind, of_payment.map(|p| p.as_uuid())],
        )
        .await?;
    rows.iter()
        .map(|r| {
            r.get::<String>("amount")?
                .parse::<Decimal>()
                .map_err(|e| StoreError::Internal(format!("stored amount: {e}")))
        })
        .sum()
}

/// The balance less what unfinished payments have reserved of it: what a credit note or a
/// write-off may take without failing a payment that is with the provider.
pub(crate) async fn unreserved_balance(
    tx: &mut TenantTx,
    invoice: &Invoice,
) -> Result<Money, StoreError> {
    let held = reserved(tx, invoice.id, "payment", None).await?;
    Ok(Money::new(
        invoice.balance().amount() - held,
        invoice.currency(),
    ))
}

/// How many unfinished refunds of an invoice pay back a credit note.
pub(crate) async fn pending_credit_refunds(
    tx: &mut TenantTx,
    invoice_id: InvoiceId,
) -> Result<i64, StoreError> {
    let org = tx.org();
    let row = tx
        .fetch_one(
            "SELECT COUNT(*) AS n FROM payments WHERE organization_id = $1 AND invoice_id = $2 \
             AND state = 'pending' AND credit IS NOT NULL",
            args![org, invoice_id.as_uuid()],
        )
        .await?;
    row.get("n")
}

/// How many unfinished payments or refunds an invoice has.
pub(super) async fn pending_count(
    tx: &mut TenantTx,
    invoice_id: InvoiceId,
) -> Result<i64, StoreError> {
    let org = tx.org();
    let row = tx
        .fetch_one(
            "SELECT COUNT(*) AS n FROM payments WHERE organization_id = $1 AND invoice_id = $2 AND state = 'pending'",
            args![org, invoice_id.as_uuid()],
        )
        .await?;
    row.get("n")
}

#[allow(clippy::too_many_arguments)]
async fn insert_pending(
    tx: &mut TenantTx,
    id: uuid::Uuid,
    invoice_id: InvoiceId,
    refunds: Option<PaymentId>,
    amount: Money,
    method: PaymentMethod,
    reference: Option<&str>,
    provider: &str,
    credit: Option<&str>,
) -> Result<(), StoreError> {
    let org = tx.org();
    let now = tx.now();
    tx.execute(
        "INSERT INTO payments (organization_id, id, invoice_id, kind, payment_id, state, amount, method, \
         reference, provider, provider_ref, at, credit) \
         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8, $9, NULL, $10, $11)",
        args![
            org,
            id,
            invoice_id.as_uuid(),
            if refunds.is_some() { "refund" } else { "payment" },
            refunds.map(|p| p.as_uuid()),
            amount.round().amount().to_string(),
            method.as_str(),
            reference,
            provider,
            now,
            credit
        ],
    )
    .await?;
    Ok(())
}

async fn set_state(
    tx: &mut TenantTx,
    id: uuid::Uuid,
    state: &str,
    provider_ref: Option<&str>,
) -> Result<(), StoreError> {
    let org = tx.org();
    let now = tx.now();
    tx.execute(
        "UPDATE payments SET state = $1, provider_ref = COALESCE($2, provider_ref), at = $3 \
         WHERE organization_id = $4 AND id = $5",
        args![state, provider_ref, now, org, id],
    )
    .await?;
    Ok(())
}

/// Marks a reservation declined (a step of its own: the decline is an answer to record).
async fn decline(ctx: &mut WorkflowCtx, id: uuid::Uuid) -> Result<(), StoreError> {
    ctx.step("release_reservation", move |tx| {
        Box::pin(async move { set_state(tx, id, "declined", None).await })
    })
    .await
}

pub(crate) async fn collect(
    ctx: &mut WorkflowCtx,
    p: CollectPayment,
    processor: Arc<dyn PaymentProvider>,
) -> Result<Invoice, StoreError> {
    let CollectPayment {
        invoice_id,
        amount,
        method,
        reference,
    } = p;
    let provider_name = provider_for(method, &processor).name().to_owned();
    let check_reference = reference.clone();
    // 1. Reserve: nothing is charged for a payment the invoice would refuse.
    let reserved_payment: Reserved = ctx
        .step("reserve_payment", move |tx| {
            Box::pin(async move {
                let invoice = load(tx, invoice_id, true).await?;
                let id = new_id();
                let payment = NewPayment {
                    id: PaymentId::from_uuid(id),
                    amount,
                    method,
                    reference: check_reference.clone(),
                };
                core_invoice::decide(&invoice, &InvoiceCommand::Pay { payment })
                    .map_err(|e| invoice_failure(&e))?;
                let available = unreserved_balance(tx, &invoice).await?;
                if amount.round().amount() > available.amount() {
                    return Err(invoice_failure(&InvoiceError::PaymentExceedsBalance {
                        amount: amount.round(),
                        balance: available,
                    })
                    .into());
                }
                insert_pending(
                    tx,
                    id,
                    invoice_id,
                    None,
                    amount,
                    method,
                    check_reference.as_ref().map(|r| r.as_str()),
                    &provider_name,
                    None,
                )
                .await?;
                Ok(Reserved {
                    id,
                    invoice_id,
                    method,
                    provider: provider_name,
                    original: None,
                    amount: None,
                    credit_note_id: None,
                })
            })
        })
        .await?;
    // 2. Charge, with a key the provider deduplicates on.
    let provider = provider_named(&reserved_payment.provider, &processor)?;
    let organization_id = ctx.organization_id();
    let charge_reference = reference.as_ref().map(|r| r.as_str().to_owned());
    let charge_provider = provider.clone();
    let outcome: ChargeOutcome = ctx
        .external("charge", move |key| async move {
            charge_provider
                .charge(ChargeRequest {
                    idempotency_key: key,
                    organization_id,
                    invoice_id,
                    amount,
                    method,
                    reference: charge_reference,
                    original: None,
                })
                .await
                .map_err(provider_error)
        })
        .await?;
    let provider_ref = match outcome {
        ChargeOutcome::Approved { provider_ref } => provider_ref,
        ChargeOutcome::Declined { code, message } => {
            decline(ctx, reserved_payment.id).await?;
            return Err(
                Failure::new(FailureKind::RuleViolation, "PAYMENT_DECLINED", message)
                    .with_details(serde_json::json!({ "providerCode": code }))
                    .into(),
            );
        }
    };
    // 3. Record, and move the job if the invoice is now paid.
    let record_ref = provider_ref.clone();
    let id = reserved_payment.id;
    let recorded: Recorded = ctx
        .step("record_payment", move |tx| {
            Box::pin(async move {
                let invoice = lock_for_change(tx, invoice_id).await?;
                let payment = NewPayment {
                    id: PaymentId::from_uuid(id),
                    amount,
                    method,
                    // By hand: the caller's reference (a cheque number); through a processor:
                    // its charge id.
                    reference: if is_manual(method) {
                        reference.clone()
                    } else {
                        Name::parse(&record_ref).ok().or_else(|| reference.clone())
                    },
                };
                let command = InvoiceCommand::Pay { payment };
                match core_invoice::execute(&invoice, &command, tx.actor(), tx.now()) {
                    Ok((next, event)) => {
                        save(tx, &next, &event).await?;
                        set_state(tx, id, "applied", Some(&record_ref)).await?;
                        sync_job(tx, next.job_id).await?;
                        Ok(Recorded::Recorded {
                            invoice: Box::new(next),
                        })
                    }
                    Err(e) => {
                        set_state(tx, id, "unapplied", Some(&record_ref)).await?;
                        Ok(Recorded::Refused {
                            failure: invoice_failure(&e),
                        })
                    }
                }
            })
        })
        .await?;
    let failure = match recorded {
        Recorded::Recorded { invoice } => return Ok(*invoice),
        Recorded::Refused { failure } => failure,
    };
    // The invoice changed between the reservation and the record (it was voided): give the
    // money back, and say so if it cannot be.
    let back_provider = provider.clone();
    let answer: ChargeOutcome = ctx
        .external("refund_unapplied_charge", move |key| async move {
            back_provider
                .refund(ChargeRequest {
                    idempotency_key: key,
                    organization_id,
                    invoice_id,
                    amount,
                    method,
                    reference: None,
                    original: Some(provider_ref),
                })
                .await
                .map_err(provider_error)
        })
        .await?;
    settle_unapplied(ctx, id, invoice_id, amount, answer).await?;
    Err(failure.into())
}

/// A refund that moved money the invoice cannot record: the ledger row `unapplied` and a
/// `payment_unreconciled` message for the office. Answers the refusal to journal.
async fn unreconciled(
    tx: &mut TenantTx,
    id: uuid::Uuid,
    invoice_id: InvoiceId,
    amount: Money,
    provider_ref: &str,
    message: &str,
) -> Result<Recorded, StoreError> {
    set_state(tx, id, "unapplied", Some(provider_ref)).await?;
    tx.enqueue(
        "payment_unreconciled",
        &serde_json::json!({
            "ledgerId": id, "invoiceId": invoice_id, "amount": amount, "message": message,
        }),
    )
    .await?;
    Ok(Recorded::Refused {
        failure: Failure::new(
            FailureKind::Conflict,
            "INVOICE_PAYMENT_PENDING",
            format!("the refund went back to the customer but could not be recorded: {message}"),
        ),
    })
}

/// After money moved that the invoice could not take: `returned` if the provider gave it
/// back, otherwise left `unapplied` with a `payment_unreconciled` outbox message.
async fn settle_unapplied(
    ctx: &mut WorkflowCtx,
    id: uuid::Uuid,
    invoice_id: InvoiceId,
    amount: Money,
    answer: ChargeOutcome,
) -> Result<(), StoreError> {
    ctx.step("settle_unapplied", move |tx| {
        Box::pin(async move {
            match answer {
                ChargeOutcome::Approved { provider_ref } => {
                    set_state(tx, id, "returned", Some(&provider_ref)).await
                }
                ChargeOutcome::Declined { code, message } => {
                    tracing::error!(invoice.id = %invoice_id, code = %code, "money moved that could not be recorded or returned");
                    tx.enqueue(
                        "payment_unreconciled",
                        &serde_json::json!({
                            "ledgerId": id, "invoiceId": invoice_id, "amount": amount,
                            "providerCode": code, "message": message,
                        }),
                    )
                    .await
                }
            }
        })
    })
    .await
}

/// What a refund of `payment_id` would reserve, or why it is refused: every check of the
/// reserve step, which writes nothing until they pass (so [`refund_refused`] can ask first).
struct RefundPlan {
    id: uuid::Uuid,
    invoice_id: InvoiceId,
    method: PaymentMethod,
    provider: String,
    original: Option<String>,
    amount: Money,
    credit_note_id: Option<CreditNoteId>,
    credit: Option<String>,
}

async fn plan_refund(
    tx: &mut TenantTx,
    reserve_what: &RefundOf,
    payment_id: PaymentId,
    configured: &str,
) -> Result<RefundPlan, StoreError> {
    let org = tx.org();
    let row = tx
        .fetch_optional(
            "SELECT invoice_id, method, provider, provider_ref FROM payments \
                 WHERE organization_id = $1 AND id = $2 AND kind = 'payment' AND state = 'applied'",
            args![org, payment_id.as_uuid()],
        )
        .await?
        .ok_or_else(|| Failure::not_found("payment"))?;
    let invoice_id = InvoiceId::from_uuid(row.get("invoice_id")?);
    let method: PaymentMethod =
        serde_json::from_value(serde_json::Value::String(row.get("method")?))?;
    let provider: String = row.get("provider")?;
    let original: Option<String> = row.get("provider_ref")?;
    if let RefundOf::Credit(c) = &reserve_what
        && c.invoice_id != invoice_id
    {
        return Err(Failure::validation(vec![crate::error::FieldError {
            field: "refundPaymentId".into(),
            code: "not_for_this_invoice".into(),
            message: "the payment was not made to this invoice".into(),
        }])
        .into());
    }
    // Refused here, before anything is reserved, rather than waiting for a
    // provider this process will never have.
    if provider != ManualProvider.name() && provider != configured {
        return Err(Failure::new(
                FailureKind::RuleViolation,
                "PAYMENT_PROVIDER_NOT_CONFIGURED",
                format!(
                    "the payment was taken by the {provider} processor, which this server is not configured with"
                ),
            )
            .into());
    }
    let id = new_id();
    let (invoice, amount, credit_note_id, credit) = match &reserve_what {
        RefundOf::Amount(r) => {
            let invoice = load(tx, invoice_id, true).await?;
            let refund = NewRefund {
                id: RefundId::from_uuid(id),
                payment_id,
                amount: r.amount,
                reason: r.reason.clone(),
            };
            core_invoice::decide(&invoice, &InvoiceCommand::Refund { refund })
                .map_err(|e| invoice_failure(&e))?;
            (invoice, r.amount.round(), None, None)
        }
        RefundOf::Credit(c) => {
            let invoice = lock_for_change(tx, invoice_id).await?;
            check_version("invoice", c.expected_version, invoice.version)?;
            refuse_while_credit_refund_pending(tx, invoice_id).await?;
            let note_id = CreditNoteId::from_uuid(new_id());
            let today = local_today(tx).await?;
            let refund = CreditRefund {
                id: RefundId::from_uuid(id),
                payment_id,
            };
            let note = price_credit(&invoice, note_id, today, &c.request, Some(refund))?;
            let credit = serde_json::to_string(&c.request)?;
            (invoice, note.total, Some(note_id), Some(credit))
        }
    };
    let held = reserved(tx, invoice_id, "refund", Some(payment_id)).await?;
    let left = invoice
        .refundable(payment_id)
        .map_or(Decimal::ZERO, |m| m.amount())
        - held;
    if amount.amount() > left {
        return Err(invoice_failure(&InvoiceError::RefundExceedsPayment {
            payment_id,
            amount,
            refundable: Money::new(left, invoice.currency()),
        })
        .into());
    }
    Ok(RefundPlan {
        id,
        invoice_id,
        method,
        provider,
        original,
        amount,
        credit_note_id,
        credit,
    })
}

/// Why a refund would be refused now, if it would: the reserve step's checks, read only (a
/// workflow that must not fail on a refusal asks this in a step of its own first, so that the
/// answer is journalled).
pub(crate) async fn refund_refused(
    tx: &mut TenantTx,
    what: &RefundOf,
    processor: &str,
) -> Result<Option<Failure>, StoreError> {
    let payment_id = what.payment_id()?;
    match plan_refund(tx, what, payment_id, processor).await {
        Ok(_) => Ok(None),
        Err(StoreError::Failure(failure)) => Ok(Some(failure)),
        Err(e) => Err(e),
    }
}

pub(crate) async fn refund(
    ctx: &mut WorkflowCtx,
    what: RefundOf,
    processor: Arc<dyn PaymentProvider>,
) -> Result<Invoice, StoreError> {
    let (payment_id, reason) = (what.payment_id()?, what.reason());
    let configured = processor.name().to_owned();
    let reserve_what = what.clone();
    let reserved_refund: Reserved = ctx
        .step("reserve_refund", move |tx| {
            Box::pin(async move {
                let plan = plan_refund(tx, &reserve_what, payment_id, &configured).await?;
                let RefundPlan {
                    id,
                    invoice_id,
                    method,
                    provider,
                    original,
                    amount,
                    credit_note_id,
                    credit,
                } = plan;
                insert_pending(
                    tx,
                    id,
                    invoice_id,
                    Some(payment_id),
                    amount,
                    method,
                    None,
                    &provider,
                    credit.as_deref(),
                )
                .await?;
                Ok(Reserved {
                    id,
                    invoice_id,
                    method,
                    provider,
                    original,
                    amount: Some(amount),
                    credit_note_id,
                })
            })
        })
        .await?;
    let amount = match (&what, reserved_refund.amount) {
        (_, Some(amount)) => amount,
        (RefundOf::Amount(r), None) => r.amount,
        (RefundOf::Credit(_), None) => {
            return Err(StoreError::Internal(
                "a credit note's refund reserved without its amount".into(),
            ));
        }
    };
    // Back the way the payment came: the provider that took it.
    let provider = provider_named(&reserved_refund.provider, &processor)?;
    let organization_id = ctx.organization_id();
    let (id, invoice_id, method) = (
        reserved_refund.id,
        reserved_refund.invoice_id,
        reserved_refund.method,
    );
    let original = reserved_refund.original.clone();
    let outcome: ChargeOutcome = ctx
        .external("refund", move |key| async move {
            provider
                .refund(ChargeRequest {
                    idempotency_key: key,
                    organization_id,
                    invoice_id,
                    amount,
                    method,
                    reference: None,
                    original,
                })
                .await
                .map_err(provider_error)
        })
        .await?;
    let provider_ref = match outcome {
        ChargeOutcome::Approved { provider_ref } => provider_ref,
        ChargeOutcome::Declined { code, message } => {
            decline(ctx, id).await?;
            return Err(
                Failure::new(FailureKind::RuleViolation, "REFUND_DECLINED", message)
                    .with_details(serde_json::json!({ "providerCode": code }))
                    .into(),
            );
        }
    };
    let credit_note_id = reserved_refund.credit_note_id;
    let recorded: Recorded = ctx
        .step("record_refund", move |tx| {
            Box::pin(async move {
                let invoice = lock_for_change(tx, invoice_id).await?;
                let command = match (what, credit_note_id) {
                    (RefundOf::Credit(c), Some(note_id)) => {
                        let issue_date = local_today(tx).await?;
                        let refund = Some(CreditRefund {
                            id: RefundId::from_uuid(id),
                            payment_id,
                        });
                        // Decided before a number is taken (a refused note takes none), and
                        // for exactly the amount the provider gave back; anything else is
                        // money to reconcile, not a credit note of another size.
                        let fits = price_credit(&invoice, note_id, issue_date, &c.request, refund)
                            .map(|note| note.total == amount);
                        match fits {
                            Ok(true) => InvoiceCommand::Credit {
                                id: note_id,
                                number: next_credit_number(tx).await?,
                                issue_date,
                                request: c.request,
                                refund,
                            },
                            Ok(false) => {
                                return unreconciled(
                                    tx,
                                    id,
                                    invoice_id,
                                    amount,
                                    &provider_ref,
                                    "the credit note no longer comes to the amount refunded",
                                )
                                .await;
                            }
                            Err(StoreError::Failure(failure)) => {
                                return unreconciled(
                                    tx,
                                    id,
                                    invoice_id,
                                    amount,
                                    &provider_ref,
                                    &failure.message,
                                )
                                .await
                                .map(|_| Recorded::Refused { failure });
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    _ => InvoiceCommand::Refund {
                        refund: NewRefund {
                            id: RefundId::from_uuid(id),
                            payment_id,
                            amount,
                            reason,
                        },
                    },
                };
                let credits = matches!(command, InvoiceCommand::Credit { .. });
                match core_invoice::execute(&invoice, &command, tx.actor(), tx.now()) {
                    Ok((next, event)) => {
                        save(tx, &next, &event).await?;
                        set_state(tx, id, "applied", Some(&provider_ref)).await?;
                        if credits {
                            record_credit_note(tx, &next).await?;
                            sync_job(tx, next.job_id).await?;
                        }
                        Ok(Recorded::Recorded {
                            invoice: Box::new(next),
                        })
                    }
                    Err(e) => {
                        // The reservation makes this unreachable; if it happens, the money went
                        // back to the customer and the books must say so.
                        unreconciled(tx, id, invoice_id, amount, &provider_ref, &e.to_string())
                            .await?;
                        Ok(Recorded::Refused {
                            failure: invoice_failure(&e),
                        })
                    }
                }
            })
        })
        .await?;
    match recorded {
        Recorded::Recorded { invoice } => Ok(*invoice),
        Recorded::Refused { failure } => Err(failure.into()),
    }
}
