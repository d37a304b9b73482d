//! Credit notes and write-offs: the two ways what a customer owes goes down without a payment.
//!
//! **A credit note** reduces what the invoice bills. It credits some of the invoice's lines (a
//! quantity of each, at the invoice's own unit prices, discount and tax rates) and/or untaxed
//! adjustments (a goodwill amount, a price concession not tied to a line), and is numbered from
//! the organization's own gapless credit note sequence (`CN-000001`), allocated by the store as
//! invoice numbers are.
//!
//! Credited lines are priced as the *difference* between two quotes of the invoice's lines: the
//! quantities credited so far including this note, and excluding it. Each quote goes through the
//! same [`pricebook::summarize`] as the invoice (the same rounding points, recorded in
//! [`CreditNote::roundings`]), and the quote of every quantity is the invoice's own quote. So a
//! set of credit notes that credits every line in full reverses the invoice's lines, discount and
//! each tax exactly, to the cent, however the quantities were split between the notes.
//!
//! **A write-off** gives up (part of) the balance as bad debt, with a reason.
//!
//! **The balance** is `total − credited − written off − paid + refunded`, and never negative:
//! a credit note is at most the balance unless it carries a refund of its whole amount to one of
//! the invoice's payments (goodwill on a paid invoice: the money goes back and the invoice stays
//! settled), a write-off is at most the balance, and all credit notes together are at most the
//! total. Nothing here creates a customer credit balance; there is no such ledger to hold one.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{CreditNoteNumber, Invoice, InvoiceError};
use crate::ids::{CreditNoteId, PaymentId, RefundId, WriteOffId};
use crate::money::{FieldError, Money, Percent, Rounding};
use crate::pricebook::{self, Discount, PricedLine, Quote, TaxBasis};
use crate::text::{Name, Reason};

/// The most adjustments one credit note has.
pub const MAX_ADJUSTMENTS: usize = 100;

/// One line of the invoice to credit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreditLineRequest {
    /// The line's position on the invoice, from 0.
    pub line: u32,
    /// How many of its units; `None` for all that are not credited yet.
    #[serde(default, with = "crate::money::decimal_str_option")]
    pub quantity: Option<Decimal>,
}

/// An amount credited without a line, untaxed (goodwill, a concession).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Adjustment {
    /// What the customer reads.
    pub description: Name,
    /// How much, more than 0, in the minor unit.
    pub amount: Money,
}

/// What a credit note credits, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreditRequest {
    /// Lines of the invoice, each at most once.
    pub lines: Vec<CreditLineRequest>,
    /// Amounts not tied to a line.
    pub adjustments: Vec<Adjustment>,
    /// Why.
    pub reason: Reason,
}

/// One credited line: part (or all) of an invoice line, at its unit price.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreditedLine {
    /// The line's position on the invoice.
    pub invoice_line: u32,
    /// What the customer read on the invoice.
    pub description: Name,
    /// How many units are credited.
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: Decimal,
    /// The invoice's exact unit price.
    pub unit_price: Money,
    /// The amount credited for the line (see the module docs).
    pub line_total: Money,
}

/// The tax a credit note gives back at one of the invoice's rates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreditedTax {
    /// The rate's name.
    pub name: Name,
    /// The rate.
    pub percent: Percent,
    /// The taxable amount credited.
    pub taxable_base: Money,
    /// The tax credited.
    pub tax: Money,
}

/// A credit note: what it credits and its totals, all positive amounts that reduce the invoice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreditNote {
    /// Its id.
    pub id: CreditNoteId,
    /// Its number in the organization's credit note sequence.
    pub number: CreditNoteNumber,
    /// The local date it was issued.
    pub issue_date: chrono::NaiveDate,
    /// Why.
    pub reason: Reason,
    /// The credited lines.
    pub lines: Vec<CreditedLine>,
    /// The sum of the credited line totals.
    pub subtotal: Money,
    /// The part of the invoice's discount that went with the credited lines.
    pub discount: Money,
    /// The part of the invoice's member discount that went with them, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_discount: Option<Money>,
    /// The tax credited per rate of the invoice, in the invoice's order.
    pub tax_lines: Vec<CreditedTax>,
    /// The amounts credited without a line (untaxed).
    pub adjustments: Vec<Adjustment>,
    /// `subtotal − discount − member discount + Σ tax + Σ adjustments`.
    pub total: Money,
    /// The roundings performed pricing the credited quantities (the invoice's rounding points).
    pub roundings: Vec<Rounding>,
    /// The refund that paid it back, when it carried one.
    pub refund_id: Option<RefundId>,
}

/// Bad debt given up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteOff {
    /// Its id.
    pub id: WriteOffId,
    /// How much, at most the balance.
    pub amount: Money,
    /// Why.
    pub reason: Reason,
}

/// A refund that goes with a credit note: its whole amount, back to this payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreditRefund {
    /// The refund's id.
    pub id: RefundId,
    /// The payment refunded.
    pub payment_id: PaymentId,
}

/// How many units of each of the invoice's lines its credit notes have credited.
pub fn credited_quantities(invoice: &Invoice) -> Vec<Decimal> {
    let mut credited = vec![Decimal::ZERO; invoice.quote.lines.len()];
    for line in invoice.credit_notes.iter().flat_map(|n| &n.lines) {
        if let Some(q) = credited.get_mut(line.invoice_line as usize) {
            *q += line.quantity;
        }
    }
    credited
}

/// The invoice's lines at `quantities` (0 leaves a line out), priced by the invoice's unit
/// prices, discount rule and tax rates through [`pricebook::summarize`].
fn quote_at(invoice: &Invoice, quantities: &[Decimal]) -> Result<Quote, InvoiceError> {
    let currency = invoice.currency();
    let mut roundings = Vec::new();
    let mut lines = Vec::new();
    for (i, (line, q)) in invoice.quote.lines.iter().zip(quantities).enumerate() {
        if q.is_zero() {
            continue;
        }
        let exact = line
            .unit_price
            .checked_mul(*q)
            .map_err(|e| invalid(format!("lines[{i}]"), e.to_invalid().message))?;
        lines.push(PricedLine {
            quantity: *q,
            line_total: exact.round_logged(format!("lines[{i}].lineTotal"), &mut roundings),
            ..line.clone()
        });
    }
    let subtotal: Decimal = lines.iter().map(|l| l.line_total.amount()).sum();
    let discount = match &invoice.quote.discount_rule {
        None => None,
        Some(Discount::Percent { percent }) => Some(Discount::Percent { percent: *percent }),
        // The invoice's amount shared in proportion to the credited subtotal: all of it once
        // every line is credited in full.
        Some(Discount::Amount { .. }) => {
            let whole = invoice.quote.subtotal.amount();
            let share = if whole.is_zero() {
                Decimal::ZERO
            } else {
                invoice.quote.discount.amount() * subtotal / whole
            };
            Some(Discount::Amount {
                amount: Money::new(share, currency).round_logged("discount", &mut roundings),
            })
        }
    };
    let taxes: Vec<TaxBasis> = invoice
        .quote
        .tax_lines
        .iter()
        .map(|t| TaxBasis {
            name: t.name.clone(),
            percent: t.percent,
            taxable: t.taxable,
        })
        .collect();
    // A member's discount is a percentage: the credited lines carry it as the invoice did.
    let member = invoice.quote.member_discount.map(|m| m.rule);
    pricebook::summarize(
        currency,
        lines,
        discount.as_ref(),
        member.as_ref(),
        &taxes,
        roundings,
    )
    .map_err(|problems| InvoiceError::Invalid { problems })
}

fn invalid(field: String, message: String) -> InvoiceError {
    InvoiceError::Invalid {
        problems: vec![FieldError::new(field, "invalid", message)],
    }
}

/// The total of invoice line `index` in a quote made by [`quote_at`] at `quantities`, which
/// keeps the invoice's order and leaves out the lines at 0.
fn line_total_at(quote: &Quote, quantities: &[Decimal], index: usize) -> Decimal {
    if quantities[index].is_zero() {
        return Decimal::ZERO;
    }
    let position = quantities[..index].iter().filter(|q| !q.is_zero()).count();
    quote
        .lines
        .get(position)
        .map_or(Decimal::ZERO, |l| l.line_total.amount())
}

/// Prices a credit note against `invoice` (which it does not change), or says why it cannot be
/// issued: a field problem, a quantity beyond what is left to credit, or credits beyond the
/// invoice's total.
pub fn price_credit_note(
    invoice: &Invoice,
    id: CreditNoteId,
    number: CreditNoteNumber,
    issue_date: chrono::NaiveDate,
    request: &CreditRequest,
) -> Result<CreditNote, InvoiceError> {
    let currency = invoice.currency();
    let mut problems = Vec::new();
    if request.lines.is_empty() && request.adjustments.is_empty() {
        problems.push(FieldError::new(
            "lines",
            "required",
            "a credit note credits at least one line or adjustment",
        ));
    }
    if request.lines.len() > pricebook::MAX_LINES {
        problems.push(FieldError::new(
            "lines",
            "too_many",
            format!("at most {} lines", pricebook::MAX_LINES),
        ));
    }
    if request.adjustments.len() > MAX_ADJUSTMENTS {
        problems.push(FieldError::new(
            "adjustments",
            "too_many",
            format!("at most {MAX_ADJUSTMENTS} adjustments"),
        ));
    }
    if !problems.is_empty() {
        return Err(InvoiceError::Invalid { problems });
    }
    let credited = credited_quantities(invoice);
    let mut after = credited.clone();
    let mut seen = std::collections::BTreeSet::new();
    let mut over = Vec::new();
    for (i, line) in request.lines.iter().enumerate() {
        let index = line.line as usize;
        let Some(original) = invoice.quote.lines.get(index) else {
            problems.push(FieldError::new(
                format!("lines[{i}].line"),
                "not_found",
                format!(
                    "the invoice has {} lines, numbered from 0",
                    invoice.quote.lines.len()
                ),
            ));
            continue;
        };
        if !seen.insert(index) {
            problems.push(FieldError::new(
                format!("lines[{i}].line"),
                "duplicate",
                "each invoice line is credited at most once per credit note",
            ));
            continue;
        }
        let remaining = original.quantity - credited[index];
        let quantity = match line.quantity {
            Some(q) if q <= Decimal::ZERO => {
                problems.push(FieldError::new(
                    format!("lines[{i}].quantity"),
                    "must_be_positive",
                    "quantity must be greater than 0",
                ));
                continue;
            }
            Some(q) if q.normalize().scale() > 4 => {
                problems.push(FieldError::new(
                    format!("lines[{i}].quantity"),
                    "too_many_decimals",
                    "quantity has at most 4 decimal places",
                ));
                continue;
            }
            Some(q) => q,
            None => remaining,
        };
        if quantity > remaining || remaining.is_zero() {
            over.push(format!(
                "line {index} has {} left to credit, not {quantity}",
                remaining.normalize()
            ));
            continue;
        }
        after[index] += quantity;
    }
    for (i, adjustment) in request.adjustments.iter().enumerate() {
        problems.extend(super::check_amount(
            &format!("adjustments[{i}].amount"),
            &adjustment.amount,
            currency,
        ));
    }
    if !problems.is_empty() {
        return Err(InvoiceError::Invalid { problems });
    }
    if !over.is_empty() {
        return Err(InvoiceError::CreditExceedsInvoice {
            message: over.join("; "),
        });
    }
    let before_quote = quote_at(invoice, &credited)?;
    let after_quote = quote_at(invoice, &after)?;
    let diff = |a: &Money, b: &Money| Money::new(a.amount() - b.amount(), currency);
    let mut lines = Vec::with_capacity(request.lines.len());
    let mut indexes: Vec<usize> = seen.into_iter().collect();
    indexes.sort_unstable();
    for index in indexes {
        let original = &invoice.quote.lines[index];
        let total_after = line_total_at(&after_quote, &after, index);
        let total_before = line_total_at(&before_quote, &credited, index);
        lines.push(CreditedLine {
            invoice_line: index as u32,
            description: original.description.clone(),
            quantity: after[index] - credited[index],
            unit_price: original.unit_price,
            line_total: Money::new(total_after - total_before, currency),
        });
    }
    let tax_lines = after_quote
        .tax_lines
        .iter()
        .zip(&before_quote.tax_lines)
        .map(|(a, b)| CreditedTax {
            name: a.name.clone(),
            percent: a.percent,
            taxable_base: diff(&a.taxable_base, &b.taxable_base),
            tax: diff(&a.tax, &b.tax),
        })
        .collect();
    let adjusted: Decimal = request.adjustments.iter().map(|a| a.amount.amount()).sum();
    let total = Money::new(
        after_quote.total.amount() - before_quote.total.amount() + adjusted,
        currency,
    )
    .round();
    let credited_total = invoice.credited();
    if credited_total.amount() + total.amount() > invoice.total().amount() {
        return Err(InvoiceError::CreditExceedsInvoice {
            message: format!(
                "{total} more would credit more than the invoice's total of {} ({credited_total} is already credited)",
                invoice.total()
            ),
        });
    }
    Ok(CreditNote {
        id,
        number,
        issue_date,
        reason: request.reason.clone(),
        lines,
        subtotal: diff(&after_quote.subtotal, &before_quote.subtotal),
        discount: diff(&after_quote.discount, &before_quote.discount),
        member_discount: after_quote.member_discount.map(|after| {
            let before = before_quote
                .member_discount
                .map_or(Decimal::ZERO, |m| m.amount.amount());
            Money::new(after.amount.amount() - before, currency)
        }),
        tax_lines,
        adjustments: request.adjustments.clone(),
        total,
        roundings: after_quote.roundings,
        refund_id: None,
    })
}
