//! Invoices, payments, refunds and balances.
//!
//! ```text
//! draft ─update→ draft
//! draft ─issue→ issued            (paid at once when the total is 0)
//! issued ─pay→ issued | paid      (paid when the balance reaches 0)
//! issued|paid ─refund→ issued
//! issued|paid ─credit→ issued | paid   (a credit note; paid only with its refund, see below)
//! issued ─write_off→ issued | paid
//! draft|issued ─void→ void        (an issued invoice's number stays used; not once credited)
//! ```
//!
//! `paid` means nothing is owed: the balance is 0, whether by payments, credit notes or
//! write-offs (the invoice lists each).
//!
//! An invoice holds its [`Quote`] as a value, priced through the same
//! [`crate::pricebook::quote`] as estimates (from lines, from actuals recorded on the job) or
//! taken whole from an approved estimate's option ([`from_estimate`]); a later price change
//! cannot reach it.
//!
//! **Numbering.** [`InvoiceNumber`] only formats and parses (`INV-000123`). The number is
//! allocated by the store when the invoice is issued, from a gapless per-organization sequence,
//! in the same transaction that records the `issued` event: no gaps, no duplicates, under
//! concurrency and across crashes. This module never invents one; [`InvoiceCommand::Issue`]
//! carries it in. A voided invoice keeps its number.
//!
//! **Balances.** `balance = total − credited − written off − payments + refunds`. A payment may
//! be partial but never more than the balance (`PAYMENT_EXCEEDS_BALANCE`); a refund is at most
//! what is left of its payment (`REFUND_EXCEEDS_PAYMENT`); a credit note or a write-off is at most
//! the balance (`CREDIT_EXCEEDS_BALANCE`, `WRITE_OFF_EXCEEDS_BALANCE`), except a credit note that
//! refunds its whole amount, and the credit notes together are at most the total
//! (`CREDIT_EXCEEDS_INVOICE`). So the balance is never negative and never above the total.
//!
//! A refund returns money, so it is owed again; a credit note reduces what is owed. Goodwill on
//! a paid invoice is a credit note with a refund (see [`credit`]): the money goes back and the
//! invoice stays paid.

use std::collections::BTreeMap;

use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Invalid;
use crate::estimate::{Estimate, EstimateStatus};
use crate::ids::{
    CreditNoteId, CustomerId, EstimateId, EstimateOptionId, InvoiceId, JobId, PaymentId, RefundId,
    UserId,
};
use crate::money::{FieldError, Money};
use crate::org::Currency;
use crate::pricebook::Quote;
use crate::text::{Name, Reason};

pub mod credit;

pub use credit::{CreditNote, CreditRefund, CreditRequest, WriteOff};

/// A document number made from a gapless per-organization sequence: a prefix and at least six
/// digits (`INV-000123`, `CN-1234567`).
macro_rules! document_number {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $what:literal, $code:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(u64);

        impl $name {
            /// The prefix.
            pub const PREFIX: &'static str = $prefix;

            #[doc = concat!("The number for sequence value `value` (1 for an organization's first ", $what, ").")]
            pub fn from_sequence(value: u64) -> Result<Self, Invalid> {
                if value == 0 {
                    Err(Invalid::new("out_of_range", "document numbers start at 1"))
                } else {
                    Ok(Self(value))
                }
            }

            #[doc = concat!("Parses `", $prefix, "000123`.")]
            pub fn parse(raw: &str) -> Result<Self, Invalid> {
                let invalid = || {
                    Invalid::new(
                        $code,
                        format!(concat!("{:?} is not ", $what, " number such as ", $prefix, "000123"), raw),
                    )
                };
                let digits = raw.trim().strip_prefix(Self::PREFIX).ok_or_else(invalid)?;
                if digits.len() < 6 || !digits.chars().all(|c| c.is_ascii_digit()) {
                    return Err(invalid());
                }
                let value: u64 = digits.parse().map_err(|_| invalid())?;
                if digits.len() > 6 && digits.starts_with('0') {
                    return Err(invalid());
                }
                Self::from_sequence(value).map_err(|_| invalid())
            }

            /// The sequence value.
            pub fn sequence(&self) -> u64 {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}{:06}", Self::PREFIX, self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_string())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

document_number!(
    /// An invoice number, `INV-` and at least six digits (`INV-000123`, `INV-1234567`), made from
    /// the value of the organization's gapless sequence (see the module docs).
    InvoiceNumber,
    "INV-",
    "an invoice",
    "invalid_invoice_number"
);

document_number!(
    /// A credit note number, `CN-` and at least six digits (`CN-000012`), from the
    /// organization's own gapless credit note sequence, separate from the invoices'.
    CreditNoteNumber,
    "CN-",
    "a credit note",
    "invalid_credit_note_number"
);

/// Payment terms: due `net_days` days after the issue date (0: due on receipt).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "PaymentTermsWire")]
pub struct PaymentTerms {
    net_days: u16,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PaymentTermsWire {
    net_days: u16,
}

impl TryFrom<PaymentTermsWire> for PaymentTerms {
    type Error = Invalid;
    fn try_from(w: PaymentTermsWire) -> Result<Self, Invalid> {
        Self::net(w.net_days)
    }
}

impl PaymentTerms {
    /// Net `days` (0 to 365).
    pub fn net(days: u16) -> Result<Self, Invalid> {
        if days > 365 {
            Err(Invalid::new(
                "out_of_range",
                "payment terms are net 0 to 365 days",
            ))
        } else {
            Ok(Self { net_days: days })
        }
    }

    /// The days.
    pub fn net_days(&self) -> u16 {
        self.net_days
    }

    /// The due date of an invoice issued on `issue_date` (a local date in the organization's
    /// time zone).
    pub fn due_date(&self, issue_date: NaiveDate) -> NaiveDate {
        // Invariant: at most 365 days after a date the store accepted, far from NaiveDate::MAX.
        issue_date
            .checked_add_days(Days::new(u64::from(self.net_days)))
            .unwrap_or(NaiveDate::MAX)
    }
}

/// Where an invoice came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "from",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum InvoiceSource {
    /// Lines given directly.
    Lines,
    /// An approved estimate's option.
    Estimate {
        /// The estimate.
        estimate_id: EstimateId,
        /// Its approved revision.
        revision: u32,
        /// The approved option.
        option_id: EstimateOptionId,
    },
    /// The labour time and materials recorded on the job, priced through the pricebook.
    Actuals,
}

/// Where an invoice is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    /// Being written; no number yet.
    Draft,
    /// Numbered and sent; a balance is owed.
    Issued,
    /// Nothing is owed: the balance is 0 (paid, credited or written off).
    Paid,
    /// Cancelled; its number (if it had one) stays used.
    Void,
}

impl InvoiceStatus {
    /// Every state.
    pub const ALL: [InvoiceStatus; 4] = [Self::Draft, Self::Issued, Self::Paid, Self::Void];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Issued => "issued",
            Self::Paid => "paid",
            Self::Void => "void",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| {
                Invalid::new(
                    "invalid_status",
                    format!("{raw:?} is not an invoice status"),
                )
            })
    }
}

impl std::fmt::Display for InvoiceStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The labels of the transition table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceAction {
    /// Replace the lines or terms of a draft.
    Update,
    /// Number it and send it.
    Issue,
    /// Record a payment.
    Pay,
    /// Refund (part of) a payment.
    Refund,
    /// Issue a credit note against it.
    Credit,
    /// Write (part of) the balance off as bad debt.
    WriteOff,
    /// Cancel it.
    Void,
}

impl InvoiceAction {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Update => "update",
            Self::Issue => "issue",
            Self::Pay => "pay",
            Self::Refund => "refund",
            Self::Credit => "credit",
            Self::WriteOff => "write_off",
            Self::Void => "void",
        }
    }
}

use InvoiceAction as A;
use InvoiceStatus as S;

/// The transition table: `(from, action, to)`. Where an action has two targets the balance
/// decides: `issue` and `pay` lead to paid exactly when the balance is then 0.
pub const TRANSITIONS: &[(InvoiceStatus, InvoiceAction, InvoiceStatus)] = &[
    (S::Draft, A::Update, S::Draft),
    (S::Draft, A::Issue, S::Issued),
    (S::Draft, A::Issue, S::Paid),
    (S::Issued, A::Pay, S::Issued),
    (S::Issued, A::Pay, S::Paid),
    (S::Issued, A::Refund, S::Issued),
    (S::Paid, A::Refund, S::Issued),
    (S::Issued, A::Credit, S::Issued),
    (S::Issued, A::Credit, S::Paid),
    (S::Paid, A::Credit, S::Paid),
    (S::Issued, A::WriteOff, S::Issued),
    (S::Issued, A::WriteOff, S::Paid),
    (S::Draft, A::Void, S::Void),
    (S::Issued, A::Void, S::Void),
];

/// The actions allowed from `status`, in table order, without duplicates.
pub fn allowed_actions(status: InvoiceStatus) -> Vec<InvoiceAction> {
    let mut out = Vec::new();
    for (from, action, _) in TRANSITIONS {
        if *from == status && !out.contains(action) {
            out.push(*action);
        }
    }
    out
}

/// How a payment was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    /// A card, through the payment provider.
    Card,
    /// A bank transfer, through the payment provider.
    Ach,
    /// Cash, recorded by hand.
    Cash,
    /// A cheque, recorded by hand.
    Check,
    /// Anything else, recorded by hand.
    Other,
}

impl PaymentMethod {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Card => "card",
            Self::Ach => "ach",
            Self::Cash => "cash",
            Self::Check => "check",
            Self::Other => "other",
        }
    }
}

/// A payment to record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewPayment {
    /// Its id.
    pub id: PaymentId,
    /// How much: more than 0, in the minor unit, at most the balance.
    pub amount: Money,
    /// How.
    pub method: PaymentMethod,
    /// The provider's charge id, a cheque number.
    pub reference: Option<Name>,
}

/// A payment received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    /// Its id.
    pub id: PaymentId,
    /// How much.
    pub amount: Money,
    /// How.
    pub method: PaymentMethod,
    /// The provider's charge id, a cheque number.
    pub reference: Option<Name>,
    /// When it was recorded.
    pub received_at: DateTime<Utc>,
}

/// A refund to record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewRefund {
    /// Its id.
    pub id: RefundId,
    /// The payment it gives back (part of).
    pub payment_id: PaymentId,
    /// How much: more than 0, in the minor unit, at most what is left of the payment.
    pub amount: Money,
    /// Why.
    pub reason: Reason,
}

/// A refund made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Refund {
    /// Its id.
    pub id: RefundId,
    /// The payment.
    pub payment_id: PaymentId,
    /// How much.
    pub amount: Money,
    /// Why.
    pub reason: Reason,
    /// When it was recorded.
    pub refunded_at: DateTime<Utc>,
}

/// What is needed to create an invoice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewInvoice {
    /// The job it bills.
    pub job_id: Option<JobId>,
    /// Who pays.
    pub customer_id: CustomerId,
    /// Where the lines came from.
    pub source: InvoiceSource,
    /// The priced lines and totals.
    pub quote: Quote,
    /// When it is due.
    pub terms: PaymentTerms,
}

/// An invoice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invoice {
    /// Its id.
    pub id: InvoiceId,
    /// 1 on creation, +1 on each event.
    pub version: i64,
    /// Where it is.
    pub status: InvoiceStatus,
    /// The job it bills.
    pub job_id: Option<JobId>,
    /// Who pays.
    pub customer_id: CustomerId,
    /// Where its lines came from.
    pub source: InvoiceSource,
    /// The priced lines and totals (a snapshot).
    pub quote: Quote,
    /// When it is due.
    pub terms: PaymentTerms,
    /// Its number, once issued.
    pub number: Option<InvoiceNumber>,
    /// The local date it was issued.
    pub issue_date: Option<NaiveDate>,
    /// The local date it is due.
    pub due_date: Option<NaiveDate>,
    /// Payments, in the order received.
    pub payments: Vec<Payment>,
    /// Refunds, in the order made.
    pub refunds: Vec<Refund>,
    /// Its credit notes, oldest first.
    #[serde(default)]
    pub credit_notes: Vec<CreditNote>,
    /// What was written off, oldest first.
    #[serde(default)]
    pub write_offs: Vec<WriteOff>,
    /// Why it was voided.
    pub void_reason: Option<Reason>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Invoice {
    /// The currency of every amount.
    pub fn currency(&self) -> Currency {
        self.quote.currency
    }

    /// The total billed.
    pub fn total(&self) -> Money {
        self.quote.total
    }

    /// The sum of the payments.
    pub fn paid(&self) -> Money {
        sum(self.currency(), self.payments.iter().map(|p| &p.amount))
    }

    /// The sum of the refunds.
    pub fn refunded(&self) -> Money {
        sum(self.currency(), self.refunds.iter().map(|r| &r.amount))
    }

    /// The sum of the credit notes.
    pub fn credited(&self) -> Money {
        sum(self.currency(), self.credit_notes.iter().map(|n| &n.total))
    }

    /// The sum of the write-offs.
    pub fn written_off(&self) -> Money {
        sum(self.currency(), self.write_offs.iter().map(|w| &w.amount))
    }

    /// `total − credited − written off − payments + refunds`; between 0 and the total.
    pub fn balance(&self) -> Money {
        Money::new(
            self.total().amount()
                - self.credited().amount()
                - self.written_off().amount()
                - self.paid().amount()
                + self.refunded().amount(),
            self.currency(),
        )
        .round()
    }

    /// What is left of a payment to refund: its amount less its refunds. `None` if the invoice
    /// has no such payment.
    pub fn refundable(&self, payment_id: PaymentId) -> Option<Money> {
        let payment = self.payments.iter().find(|p| p.id == payment_id)?;
        let refunded = sum(
            self.currency(),
            self.refunds
                .iter()
                .filter(|r| r.payment_id == payment_id)
                .map(|r| &r.amount),
        );
        Some(Money::new(payment.amount.amount() - refunded.amount(), self.currency()).round())
    }

    /// Whether it is issued, has a balance and is past its due date on `today` (a local date).
    pub fn is_overdue(&self, today: NaiveDate) -> bool {
        self.aging(today)
            .is_some_and(|bucket| bucket != AgingBucket::Current)
    }

    /// The aging bucket of an issued invoice with a balance, on `today`; `None` otherwise.
    pub fn aging(&self, today: NaiveDate) -> Option<AgingBucket> {
        if self.status != S::Issued || self.balance().is_zero() {
            return None;
        }
        self.due_date.map(|due| AgingBucket::of(due, today))
    }
}

/// Sums amounts known to be in `currency`: payments and refunds are checked against the
/// invoice's currency when recorded, and are bounded by its total.
fn sum<'a>(currency: Currency, items: impl Iterator<Item = &'a Money>) -> Money {
    Money::new(items.map(|m| m.amount()).sum(), currency).round()
}

/// How overdue an invoice is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgingBucket {
    /// Not yet past its due date.
    Current,
    /// 1 to 30 days past.
    Days1To30,
    /// 31 to 60 days past.
    Days31To60,
    /// 61 to 90 days past.
    Days61To90,
    /// More than 90 days past.
    Over90,
}

impl AgingBucket {
    /// Every bucket, youngest first.
    pub const ALL: [AgingBucket; 5] = [
        Self::Current,
        Self::Days1To30,
        Self::Days31To60,
        Self::Days61To90,
        Self::Over90,
    ];

    /// The bucket of a balance due on `due` as of `today`.
    pub fn of(due: NaiveDate, today: NaiveDate) -> Self {
        match (today - due).num_days() {
            ..=0 => Self::Current,
            1..=30 => Self::Days1To30,
            31..=60 => Self::Days31To60,
            61..=90 => Self::Days61To90,
            _ => Self::Over90,
        }
    }

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Current => "current",
            Self::Days1To30 => "days_1_to_30",
            Self::Days31To60 => "days_31_to_60",
            Self::Days61To90 => "days_61_to_90",
            Self::Over90 => "over_90",
        }
    }
}

/// The open balances of a set of invoices by aging bucket, every bucket present (0 when
/// empty); invoices in another currency than `currency` are left out.
pub fn aging_report<'a>(
    currency: Currency,
    invoices: impl IntoIterator<Item = &'a Invoice>,
    today: NaiveDate,
) -> BTreeMap<AgingBucket, Money> {
    let mut report: BTreeMap<AgingBucket, Money> = AgingBucket::ALL
        .into_iter()
        .map(|b| (b, Money::zero(currency)))
        .collect();
    for invoice in invoices {
        if invoice.currency() != currency {
            continue;
        }
        if let Some(bucket) = invoice.aging(today) {
            let entry = report
                .entry(bucket)
                .or_insert_with(|| Money::zero(currency));
            *entry = Money::new(entry.amount() + invoice.balance().amount(), currency);
        }
    }
    report
}

/// Something asked of an invoice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "command",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum InvoiceCommand {
    /// Replace the lines and terms of a draft.
    Update {
        /// The new lines and totals (boxed: a quote is large).
        quote: Box<Quote>,
        /// The new terms.
        terms: PaymentTerms,
    },
    /// Number it (the store allocates the number) and send it.
    Issue {
        /// The next number of the organization's gapless sequence.
        number: InvoiceNumber,
        /// Today in the organization's time zone.
        issue_date: NaiveDate,
    },
    /// Record a payment.
    Pay {
        /// The payment.
        payment: NewPayment,
    },
    /// Refund (part of) a payment.
    Refund {
        /// The refund.
        refund: NewRefund,
    },
    /// Issue a credit note (the store allocates the number), with or without a refund of it.
    Credit {
        /// The credit note's id.
        id: CreditNoteId,
        /// The next number of the organization's credit note sequence.
        number: CreditNoteNumber,
        /// Today in the organization's time zone.
        issue_date: NaiveDate,
        /// What it credits.
        request: CreditRequest,
        /// Refund its whole amount to a payment of the invoice.
        refund: Option<CreditRefund>,
    },
    /// Write (part of) the balance off.
    WriteOff {
        /// The write-off.
        write_off: WriteOff,
    },
    /// Cancel it.
    Void {
        /// Why.
        reason: Reason,
    },
}

impl InvoiceCommand {
    /// The table action.
    pub fn action(&self) -> InvoiceAction {
        match self {
            Self::Update { .. } => A::Update,
            Self::Issue { .. } => A::Issue,
            Self::Pay { .. } => A::Pay,
            Self::Refund { .. } => A::Refund,
            Self::Credit { .. } => A::Credit,
            Self::WriteOff { .. } => A::WriteOff,
            Self::Void { .. } => A::Void,
        }
    }
}

/// What happened to an invoice: the payload of an [`InvoiceEvent`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum InvoiceChange {
    /// It was created (always the first event).
    Created {
        /// Everything it was created from.
        invoice: NewInvoice,
    },
    /// Its draft was changed.
    Updated {
        /// The new lines and totals.
        quote: Quote,
        /// The new terms.
        terms: PaymentTerms,
    },
    /// It was issued.
    Issued {
        /// Its number.
        number: InvoiceNumber,
        /// The local issue date.
        issue_date: NaiveDate,
        /// The due date from the terms.
        due_date: NaiveDate,
    },
    /// A payment was recorded.
    PaymentRecorded {
        /// The payment.
        payment: NewPayment,
    },
    /// A refund was made.
    Refunded {
        /// The refund.
        refund: NewRefund,
    },
    /// A credit note was issued, and with it the refund of its amount when it carried one.
    Credited {
        /// The credit note.
        credit_note: Box<CreditNote>,
        /// Its refund.
        refund: Option<NewRefund>,
    },
    /// (Part of) the balance was written off.
    WrittenOff {
        /// The write-off.
        write_off: WriteOff,
    },
    /// It was voided.
    Voided {
        /// Why.
        reason: Reason,
    },
}

/// One entry of an invoice's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceEvent {
    /// The invoice's version after this event (1 for creation).
    pub version: i64,
    /// What happened.
    pub change: InvoiceChange,
    /// The state before (`None` for creation).
    pub from: Option<InvoiceStatus>,
    /// The state after.
    pub to: InvoiceStatus,
    /// Who did it, when a person did.
    pub actor: Option<UserId>,
    /// When.
    pub at: DateTime<Utc>,
}

/// Why a command was refused. A refusal never changes the invoice.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvoiceError {
    /// The table has no such action from the current state.
    #[error("an invoice in state {from} cannot {}; allowed: {}", .action.as_str(), list(.allowed))]
    InvalidTransition {
        /// The current state.
        from: InvoiceStatus,
        /// The action asked for.
        action: InvoiceAction,
        /// The actions the table allows from here.
        allowed: Vec<InvoiceAction>,
    },
    /// A payment above the balance.
    #[error("a payment of {amount} exceeds the balance of {balance}")]
    PaymentExceedsBalance {
        /// The payment.
        amount: Money,
        /// The balance.
        balance: Money,
    },
    /// A refund above what is left of its payment.
    #[error("a refund of {amount} exceeds the {refundable} left to refund on payment {payment_id}")]
    RefundExceedsPayment {
        /// The payment.
        payment_id: PaymentId,
        /// The refund.
        amount: Money,
        /// What is left of the payment.
        refundable: Money,
    },
    /// The refund names a payment this invoice does not have.
    #[error("the invoice has no payment {payment_id}")]
    PaymentNotFound {
        /// The payment asked for.
        payment_id: PaymentId,
    },
    /// A payment or refund with this id is already recorded.
    #[error("a payment or refund with id {id} is already recorded")]
    Duplicate {
        /// The id.
        id: uuid::Uuid,
    },
    /// An invoice with money paid and not refunded cannot be voided.
    #[error("an invoice with {paid} paid cannot be voided; refund the payments first")]
    HasPayments {
        /// The net amount paid.
        paid: Money,
    },
    /// An invoice with credit notes or write-offs cannot be voided: they reduce it already.
    #[error(
        "an invoice with credit notes or write-offs cannot be voided; credit what is left instead"
    )]
    HasCredits,
    /// A credit note beyond what is left to credit: a quantity above what is left of a line, or
    /// credits above the total.
    #[error("the credit note credits more than the invoice bills: {message}")]
    CreditExceedsInvoice {
        /// What is over.
        message: String,
    },
    /// A credit note without a refund above the balance: it would leave a negative balance.
    #[error(
        "a credit note of {amount} exceeds the balance of {balance}; refund it to a payment to credit more than is owed"
    )]
    CreditExceedsBalance {
        /// The credit note's total.
        amount: Money,
        /// The balance.
        balance: Money,
    },
    /// A write-off above the balance.
    #[error("a write-off of {amount} exceeds the balance of {balance}")]
    WriteOffExceedsBalance {
        /// The write-off.
        amount: Money,
        /// The balance.
        balance: Money,
    },
    /// The estimate is not approved.
    #[error("only an approved estimate can be invoiced; this one is {status}")]
    EstimateNotApproved {
        /// Its state.
        status: EstimateStatus,
    },
    /// The request has problems, each with its field.
    #[error("the invoice is not valid: {}", problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid {
        /// Every problem.
        problems: Vec<FieldError>,
    },
}

impl InvoiceError {
    /// The stable code reported to clients.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidTransition { .. } => "INVOICE_INVALID_TRANSITION",
            Self::PaymentExceedsBalance { .. } => "PAYMENT_EXCEEDS_BALANCE",
            Self::RefundExceedsPayment { .. } => "REFUND_EXCEEDS_PAYMENT",
            Self::PaymentNotFound { .. } => "PAYMENT_NOT_FOUND",
            Self::Duplicate { .. } => "PAYMENT_DUPLICATE",
            Self::HasPayments { .. } => "INVOICE_HAS_PAYMENTS",
            Self::HasCredits => "INVOICE_HAS_CREDITS",
            Self::CreditExceedsInvoice { .. } => "CREDIT_EXCEEDS_INVOICE",
            Self::CreditExceedsBalance { .. } => "CREDIT_EXCEEDS_BALANCE",
            Self::WriteOffExceedsBalance { .. } => "WRITE_OFF_EXCEEDS_BALANCE",
            Self::EstimateNotApproved { .. } => "ESTIMATE_NOT_APPROVED",
            Self::Invalid { .. } => "VALIDATION_FAILED",
        }
    }

    /// Whether the refusal is a conflict with the invoice's state (409) rather than a rule that
    /// is not met (422) or a malformed request (400).
    pub fn is_state_conflict(&self) -> bool {
        matches!(
            self,
            Self::InvalidTransition { .. }
                | Self::EstimateNotApproved { .. }
                | Self::Duplicate { .. }
                | Self::HasCredits
        )
    }
}

fn list(actions: &[InvoiceAction]) -> String {
    if actions.is_empty() {
        "none".to_owned()
    } else {
        actions
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The source and the lines of an invoice for an approved estimate's option: the option's quote
/// as it was approved, untouched.
pub fn from_estimate(estimate: &Estimate) -> Result<(InvoiceSource, Quote), InvoiceError> {
    let option = estimate
        .approved_option()
        .ok_or(InvoiceError::EstimateNotApproved {
            status: estimate.status,
        })?;
    Ok((
        InvoiceSource::Estimate {
            estimate_id: estimate.id,
            revision: estimate.revision,
            option_id: option.id,
        },
        option.quote.clone(),
    ))
}

fn check_quote(quote: &Quote) -> Vec<FieldError> {
    let mut problems = Vec::new();
    if quote.lines.is_empty() {
        problems.push(FieldError::new(
            "lines",
            "required",
            "an invoice has at least one line",
        ));
    }
    if quote.total.is_negative() {
        problems.push(FieldError::new(
            "total",
            "must_not_be_negative",
            "an invoice total must not be negative",
        ));
    }
    problems
}

/// Creates a draft invoice with its creation event; or every problem with it.
pub fn create(
    id: InvoiceId,
    new_invoice: NewInvoice,
    now: DateTime<Utc>,
    actor: Option<UserId>,
) -> Result<(Invoice, InvoiceEvent), Vec<FieldError>> {
    let problems = check_quote(&new_invoice.quote);
    if !problems.is_empty() {
        return Err(problems);
    }
    let invoice = Invoice {
        id,
        version: 1,
        status: S::Draft,
        job_id: new_invoice.job_id,
        customer_id: new_invoice.customer_id,
        source: new_invoice.source.clone(),
        quote: new_invoice.quote.clone(),
        terms: new_invoice.terms,
        number: None,
        issue_date: None,
        due_date: None,
        payments: Vec::new(),
        refunds: Vec::new(),
        credit_notes: Vec::new(),
        write_offs: Vec::new(),
        void_reason: None,
        created_at: now,
        updated_at: now,
    };
    let event = InvoiceEvent {
        version: 1,
        change: InvoiceChange::Created {
            invoice: new_invoice,
        },
        from: None,
        to: S::Draft,
        actor,
        at: now,
    };
    Ok((invoice, event))
}

/// Builds an invoice from its creation event; `None` if the event is not a creation.
pub fn genesis(id: InvoiceId, event: &InvoiceEvent) -> Option<Invoice> {
    let InvoiceChange::Created { invoice } = &event.change else {
        return None;
    };
    create(id, invoice.clone(), event.at, event.actor)
        .ok()
        .map(|(invoice, _)| invoice)
}

pub(crate) fn check_amount(field: &str, amount: &Money, currency: Currency) -> Vec<FieldError> {
    let mut problems = Vec::new();
    if amount.currency() != currency {
        problems.push(FieldError::new(
            field,
            "currency_mismatch",
            format!("the amount must be in {}", currency.code()),
        ));
    }
    if !amount.is_positive() {
        problems.push(FieldError::new(
            field,
            "must_be_positive",
            "the amount must be greater than 0",
        ));
    }
    if let Err(e) = amount.require_minor_unit() {
        problems.push(FieldError::invalid(field, e.to_invalid()));
    }
    problems
}

/// Checks `command` against `invoice` and returns the change it causes (with the state it leads
/// to), or why it is refused.
pub fn decide(
    invoice: &Invoice,
    command: &InvoiceCommand,
) -> Result<(InvoiceChange, InvoiceStatus), InvoiceError> {
    let action = command.action();
    let allowed = allowed_actions(invoice.status);
    if !allowed.contains(&action) {
        return Err(InvoiceError::InvalidTransition {
            from: invoice.status,
            action,
            allowed,
        });
    }
    let currency = invoice.currency();
    match command {
        InvoiceCommand::Update { quote, terms } => {
            let mut problems = check_quote(quote);
            if quote.currency != currency {
                problems.push(FieldError::new(
                    "lines",
                    "currency_mismatch",
                    format!("the invoice is in {}", currency.code()),
                ));
            }
            if !problems.is_empty() {
                return Err(InvoiceError::Invalid { problems });
            }
            Ok((
                InvoiceChange::Updated {
                    quote: Quote::clone(quote),
                    terms: *terms,
                },
                S::Draft,
            ))
        }
        InvoiceCommand::Issue { number, issue_date } => {
            let to = if invoice.total().is_zero() {
                S::Paid
            } else {
                S::Issued
            };
            Ok((
                InvoiceChange::Issued {
                    number: *number,
                    issue_date: *issue_date,
                    due_date: invoice.terms.due_date(*issue_date),
                },
                to,
            ))
        }
        InvoiceCommand::Pay { payment } => {
            let problems = check_amount("amount", &payment.amount, currency);
            if !problems.is_empty() {
                return Err(InvoiceError::Invalid { problems });
            }
            check_new_id(invoice, payment.id.as_uuid())?;
            let balance = invoice.balance();
            if payment.amount.amount() > balance.amount() {
                return Err(InvoiceError::PaymentExceedsBalance {
                    amount: payment.amount.round(),
                    balance,
                });
            }
            let to = if payment.amount.amount() == balance.amount() {
                S::Paid
            } else {
                S::Issued
            };
            Ok((
                InvoiceChange::PaymentRecorded {
                    payment: NewPayment {
                        amount: payment.amount.round(),
                        ..payment.clone()
                    },
                },
                to,
            ))
        }
        InvoiceCommand::Refund { refund } => {
            let problems = check_amount("amount", &refund.amount, currency);
            if !problems.is_empty() {
                return Err(InvoiceError::Invalid { problems });
            }
            check_new_id(invoice, refund.id.as_uuid())?;
            let Some(refundable) = invoice.refundable(refund.payment_id) else {
                return Err(InvoiceError::PaymentNotFound {
                    payment_id: refund.payment_id,
                });
            };
            if refund.amount.amount() > refundable.amount() {
                return Err(InvoiceError::RefundExceedsPayment {
                    payment_id: refund.payment_id,
                    amount: refund.amount.round(),
                    refundable,
                });
            }
            Ok((
                InvoiceChange::Refunded {
                    refund: NewRefund {
                        amount: refund.amount.round(),
                        ..refund.clone()
                    },
                },
                S::Issued,
            ))
        }
        InvoiceCommand::Credit {
            id,
            number,
            issue_date,
            request,
            refund,
        } => {
            let mut note = credit::price_credit_note(invoice, *id, *number, *issue_date, request)?;
            let balance = invoice.balance();
            let refund = match refund {
                None => {
                    if note.total.amount() > balance.amount() {
                        return Err(InvoiceError::CreditExceedsBalance {
                            amount: note.total,
                            balance,
                        });
                    }
                    None
                }
                Some(r) => {
                    check_new_id(invoice, r.id.as_uuid())?;
                    let Some(refundable) = invoice.refundable(r.payment_id) else {
                        return Err(InvoiceError::PaymentNotFound {
                            payment_id: r.payment_id,
                        });
                    };
                    if note.total.amount() > refundable.amount() {
                        return Err(InvoiceError::RefundExceedsPayment {
                            payment_id: r.payment_id,
                            amount: note.total,
                            refundable,
                        });
                    }
                    note.refund_id = Some(r.id);
                    Some(NewRefund {
                        id: r.id,
                        payment_id: r.payment_id,
                        amount: note.total,
                        reason: request.reason.clone(),
                    })
                }
            };
            let refunded = refund
                .as_ref()
                .map_or(rust_decimal::Decimal::ZERO, |r| r.amount.amount());
            let after = balance.amount() - note.total.amount() + refunded;
            let to = if after.is_zero() { S::Paid } else { S::Issued };
            Ok((
                InvoiceChange::Credited {
                    credit_note: Box::new(note),
                    refund,
                },
                to,
            ))
        }
        InvoiceCommand::WriteOff { write_off } => {
            let problems = check_amount("amount", &write_off.amount, currency);
            if !problems.is_empty() {
                return Err(InvoiceError::Invalid { problems });
            }
            if invoice.write_offs.iter().any(|w| w.id == write_off.id) {
                return Err(InvoiceError::Duplicate {
                    id: write_off.id.as_uuid(),
                });
            }
            let balance = invoice.balance();
            let amount = write_off.amount.round();
            if amount.amount() > balance.amount() {
                return Err(InvoiceError::WriteOffExceedsBalance { amount, balance });
            }
            let to = if amount.amount() == balance.amount() {
                S::Paid
            } else {
                S::Issued
            };
            Ok((
                InvoiceChange::WrittenOff {
                    write_off: WriteOff {
                        amount,
                        ..write_off.clone()
                    },
                },
                to,
            ))
        }
        InvoiceCommand::Void { reason } => {
            if !invoice.credit_notes.is_empty() || !invoice.write_offs.is_empty() {
                return Err(InvoiceError::HasCredits);
            }
            let net_paid = Money::new(
                invoice.paid().amount() - invoice.refunded().amount(),
                currency,
            );
            if !net_paid.is_zero() {
                return Err(InvoiceError::HasPayments { paid: net_paid });
            }
            Ok((
                InvoiceChange::Voided {
                    reason: reason.clone(),
                },
                S::Void,
            ))
        }
    }
}

fn check_new_id(invoice: &Invoice, id: uuid::Uuid) -> Result<(), InvoiceError> {
    let taken = invoice.payments.iter().any(|p| p.id.as_uuid() == id)
        || invoice.refunds.iter().any(|r| r.id.as_uuid() == id);
    if taken {
        Err(InvoiceError::Duplicate { id })
    } else {
        Ok(())
    }
}

/// Applies a recorded event to the invoice it belongs to. Events come from [`decide`] (or the
/// log), so they are valid for the invoice's state; this function does not re-check them.
pub fn evolve(invoice: &Invoice, event: &InvoiceEvent) -> Invoice {
    let mut next = invoice.clone();
    next.version = event.version;
    next.status = event.to;
    next.updated_at = event.at;
    match &event.change {
        InvoiceChange::Created { .. } => {}
        InvoiceChange::Updated { quote, terms } => {
            next.quote = quote.clone();
            next.terms = *terms;
        }
        InvoiceChange::Issued {
            number,
            issue_date,
            due_date,
        } => {
            next.number = Some(*number);
            next.issue_date = Some(*issue_date);
            next.due_date = Some(*due_date);
        }
        InvoiceChange::PaymentRecorded { payment } => next.payments.push(Payment {
            id: payment.id,
            amount: payment.amount,
            method: payment.method,
            reference: payment.reference.clone(),
            received_at: event.at,
        }),
        InvoiceChange::Refunded { refund } => next.refunds.push(Refund {
            id: refund.id,
            payment_id: refund.payment_id,
            amount: refund.amount,
            reason: refund.reason.clone(),
            refunded_at: event.at,
        }),
        InvoiceChange::Credited {
            credit_note,
            refund,
        } => {
            next.credit_notes.push(CreditNote::clone(credit_note));
            if let Some(refund) = refund {
                next.refunds.push(Refund {
                    id: refund.id,
                    payment_id: refund.payment_id,
                    amount: refund.amount,
                    reason: refund.reason.clone(),
                    refunded_at: event.at,
                });
            }
        }
        InvoiceChange::WrittenOff { write_off } => next.write_offs.push(write_off.clone()),
        InvoiceChange::Voided { reason } => next.void_reason = Some(reason.clone()),
    }
    next
}

/// Runs a command: decides, builds the event (version +1, from/to, who, when) and applies it.
pub fn execute(
    invoice: &Invoice,
    command: &InvoiceCommand,
    actor: Option<UserId>,
    now: DateTime<Utc>,
) -> Result<(Invoice, InvoiceEvent), InvoiceError> {
    let (change, to) = decide(invoice, command)?;
    let event = InvoiceEvent {
        version: invoice.version + 1,
        change,
        from: Some(invoice.status),
        to,
        actor,
        at: now,
    };
    Ok((evolve(invoice, &event), event))
}

/// Rebuilds an invoice from its full event log.
pub fn replay(id: InvoiceId, events: &[InvoiceEvent]) -> Option<Invoice> {
    let (first, rest) = events.split_first()?;
    let invoice = genesis(id, first)?;
    Some(rest.iter().fold(invoice, |i, event| evolve(&i, event)))
}

#[cfg(test)]
mod tests;
