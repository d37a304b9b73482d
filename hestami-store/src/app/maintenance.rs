//! Maintenance agreements (`maintenance/v1`, workflow `maintenance_contract_v1`): plans, the
//! agreements customers sign on them, the visits their schedules generate as jobs ahead of
//! time, and the invoices of their billing periods. The rules — recurrence, calendar billing
//! periods, proration, the agreement's life — are `hestami_core::maintenance`.
//!
//! **One timer per agreement** (`maintenance/<id>`), due at 05:00 local time on the first
//! date the agreement needs attention: a visit entering its lead time, a billing period
//! starting, the term ending. Each firing runs a *tick* for the organization's local date, a
//! workflow of three steps, each its own transaction with the agreement's row locked:
//!
//! 1. **generate visits**: every occurrence dated up to `date + leadDays` (and before the
//!    term's end) that is not yet generated becomes a `requested` job per property, its SLA
//!    deadline the end of the visit's preferred window; the occurrence's identity (agreement,
//!    plan visit, schedule revision, index, property) is the primary key of
//!    `maintenance_visits`, and the schedule's cursor moves past it in the same transaction;
//! 2. **bill periods**: every billing period that has started and is not yet billed gets its
//!    invoice, issued through the invoice path (gapless numbers, the period on the line); the
//!    period's first day is the key of `agreement_invoices`;
//! 3. **close the term**: at its end an auto-renewing agreement renews (a new term at the
//!    plan's current price), another expires; the timer is armed for the next attention date,
//!    or removed.
//!
//! Exactly once does not rest on the tick's idempotency key: two processes firing the same
//! timer, a retry after a crash, a tick of a later date all lock the same row and read the same
//! cursors, so an occurrence is generated and a period billed once however the ticks overlap.
//! **A server that was down catches up**: the tick generates every occurrence whose lead time
//! has passed, marks those it generated after their intended day as `late`, and reports how
//! many it caught up.

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use hestami_core::ids::{
    AgreementId, CreditNoteId, CustomerId, FormTemplateId, InvoiceId, JobId, MaintenancePlanId,
    PaymentId, PricebookItemId, PropertyId,
};
use hestami_core::invoice::credit::{
    CreditLineRequest, CreditRequest, credited_quantities, price_credit_note,
};
use hestami_core::invoice::{CreditNoteNumber, InvoiceStatus, PaymentMethod};
use hestami_core::job::{JobStatus, NewJob, Priority};
use hestami_core::maintenance::agreement::{self as rules, BillingPeriod, Cursor};
use hestami_core::maintenance::{
    AgreementAction, AgreementStatus, BillingFrequency, DayWindow, Recurrence, Schedule,
};
use hestami_core::money::{Money, Percent};
use hestami_core::pricebook::{ItemKind, LineSource, MemberDiscount, QuoteLine, QuoteRequest};
use hestami_core::text::{Description, Name, Reason, Summary, TradeCode};
use hestami_core::workforce::SkillLevel;

use super::payments::PaymentProvider;
use super::pricebook::PriceAt;
use super::{Caller, Command, Page, PageRequest, Services, check_version, load_body};
use crate::db::args;
use crate::directory::load_organization;
use crate::engine::WorkflowCtx;
use crate::error::{Failure, FailureKind, StoreError};
use crate::store::{Operation, TenantTx, new_id};

/// The workflow behind every agreement change and tick.
pub const WORKFLOW: &str = "maintenance_contract_v1";
/// An agreement's timer: `maintenance/<agreement id>`.
pub const TIMER_PREFIX: &str = "maintenance/";
const TICK_PROCEDURE: &str = "timer/maintenance";
/// The most visits a plan includes.
pub const MAX_PLAN_VISITS: usize = 12;
/// The most services a plan's visit lists.
pub const MAX_VISIT_SERVICES: usize = 20;
/// The most forms a plan's visit requires.
pub const MAX_VISIT_FORMS: usize = 5;
/// The most properties an agreement covers.
pub const MAX_PROPERTIES: usize = 20;
/// The lead time when none is given.
pub const DEFAULT_LEAD_DAYS: u32 = 30;
/// Days before the term's end an auto-renewing agreement renews (half the term, if shorter).
pub const RENEWAL_NOTICE_DAYS: i64 = 30;
/// How many declined charges in a row suspend an agreement.
pub const CHARGE_ATTEMPTS: u32 = 3;
/// Days between a declined charge and the next attempt.
pub const RETRY_DAYS: u32 = 3;
/// The local time an agreement's timer fires on its attention date.
const TICK_AT: NaiveTime = match NaiveTime::from_hms_opt(5, 0, 0) {
    Some(t) => t,
    None => NaiveTime::MIN,
};

/// A service a plan's visit performs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanService {
    /// A service of the pricebook.
    pub item_id: PricebookItemId,
    /// How many.
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: Decimal,
}

/// A visit a plan includes: what is done, by whom, and when it recurs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanVisit {
    /// Its name ("Spring tune-up").
    pub name: Name,
    /// The trade it needs.
    pub trade: TradeCode,
    /// How it recurs.
    pub rule: Recurrence,
    /// For monthly rules: the month (1–12) the cycle is aligned to ("every 6 months starting
    /// April").
    pub start_month: Option<u8>,
    /// The preferred local time of day.
    pub window: DayWindow,
    /// How long it takes, in minutes.
    pub duration_minutes: u16,
    /// The lowest skill level it needs.
    #[serde(default)]
    pub min_skill_level: SkillLevel,
    /// The pricebook services it performs.
    pub services: Vec<PlanService>,
    /// The forms (checklists) its job requires before it is completed, at most
    /// [`MAX_VISIT_FORMS`].
    #[serde(default)]
    pub forms: Vec<FormTemplateId>,
}

/// What members get.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Benefits {
    /// A discount on other work.
    pub discount: Option<Percent>,
    /// The priority their visits (and calls) get.
    pub priority: Option<Priority>,
    /// Whether the trip fee is waived.
    pub waive_trip_fee: bool,
}

/// A plan's price per billing period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanPrice {
    /// The billing frequency.
    pub frequency: BillingFrequency,
    /// The price of one whole period.
    pub amount: Money,
}

/// `maintenance/v1/createPlan`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewPlan {
    /// Its name, unique in the organization.
    pub name: Name,
    /// What it offers, for people.
    pub description: Option<Description>,
    /// The visits it includes, 1 to [`MAX_PLAN_VISITS`].
    pub visits: Vec<PlanVisit>,
    /// What members get.
    pub benefits: Benefits,
    /// Its prices, one per billing frequency offered.
    pub prices: Vec<PlanPrice>,
}

/// A plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Its id.
    pub id: MaintenancePlanId,
    /// 1 on creation.
    pub version: i64,
    /// Its name.
    pub name: Name,
    /// What it offers.
    pub description: Option<Description>,
    /// The visits it includes.
    pub visits: Vec<PlanVisit>,
    /// What members get.
    pub benefits: Benefits,
    /// Its prices.
    pub prices: Vec<PlanPrice>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl Plan {
    fn price(&self, frequency: BillingFrequency) -> Option<Money> {
        self.prices
            .iter()
            .find(|p| p.frequency == frequency)
            .map(|p| p.amount)
    }
}

/// `maintenance/v1/createContract`: a draft agreement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewAgreement {
    /// The customer.
    pub customer_id: CustomerId,
    /// Their properties it covers, 1 to [`MAX_PROPERTIES`].
    pub property_ids: Vec<PropertyId>,
    /// The plan.
    pub plan_id: MaintenancePlanId,
    /// Its first day.
    pub start_date: NaiveDate,
    /// Its term in months.
    pub term_months: u32,
    /// How it is billed (the plan must have a price for it).
    pub billing: BillingFrequency,
    /// Whether it renews at the term's end.
    pub auto_renew: bool,
    /// Days before a visit its job is generated.
    pub lead_days: u32,
    /// A card to charge each period's invoice to when it is issued (a processor's token).
    #[serde(default)]
    pub card_token: Option<Name>,
}

/// The customer's signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Signature {
    /// Who signed.
    pub signed_by: Name,
    /// The signature as captured (a typed name, or a reference to a stored image).
    pub signature: Option<Description>,
    /// When.
    pub signed_at: DateTime<Utc>,
}

/// One schedule of an agreement: a plan visit's recurrence from a date, and how far its visits
/// are generated. Re-planning ends one revision and starts the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgreementSchedule {
    /// The plan visit (its index in the plan).
    pub slot: u32,
    /// 0 for the schedule the agreement started with, +1 on each change.
    pub revision: u32,
    /// When its visits fall.
    pub schedule: Schedule,
    /// The first occurrence not yet generated.
    pub next: u32,
    /// Set when a change replaced it: no more visits are generated from it.
    pub replaced: bool,
    /// The day a change (a re-plan, a change of plan) made it: a visit whose lead time began
    /// before is generated on the next tick without being late.
    #[serde(default)]
    pub planned_on: Option<NaiveDate>,
}

/// A price an agreement had before a renewal changed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EarlierPrice {
    /// It applied to periods starting before this day (the renewed term's first).
    pub until: NaiveDate,
    /// The price of a whole period.
    pub price: Money,
}

/// An agreement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Agreement {
    /// Its id.
    pub id: AgreementId,
    /// 1 on creation, +1 on each change.
    pub version: i64,
    /// The plan.
    pub plan_id: MaintenancePlanId,
    /// The plan's name.
    pub plan_name: Name,
    /// The customer.
    pub customer_id: CustomerId,
    /// The properties it covers.
    pub property_ids: Vec<PropertyId>,
    /// Where it is in its life.
    pub status: AgreementStatus,
    /// Its first day.
    pub start_date: NaiveDate,
    /// The term's length.
    pub term_months: u32,
    /// The day after the current term's last day.
    pub term_end: NaiveDate,
    /// How it is billed.
    pub billing: BillingFrequency,
    /// The price of a whole period (the current term's).
    pub price: Money,
    /// The prices of earlier terms, when a renewal changed it.
    #[serde(default)]
    pub earlier_prices: Vec<EarlierPrice>,
    /// Whether it renews.
    pub auto_renew: bool,
    /// Days before a visit its job is generated.
    pub lead_days: u32,
    /// Its schedules.
    pub schedules: Vec<AgreementSchedule>,
    /// The day after the last billed period (`None`: nothing billed yet).
    pub billed_until: Option<NaiveDate>,
    /// How many times it renewed.
    pub renewals: u32,
    /// The card each period's invoice is charged to, if any.
    #[serde(default)]
    pub autopay: Option<Name>,
    /// Declined charges in a row (reset by an approved one).
    #[serde(default)]
    pub failed_charges: u32,
    /// When a declined charge is tried again.
    #[serde(default)]
    pub retry_on: Option<NaiveDate>,
    /// The customer's signature, once activated.
    pub signature: Option<Signature>,
    /// Why it was suspended or cancelled.
    pub reason: Option<Reason>,
    /// The first local date it needs its timer (`None` when it is not in force).
    pub next_attention: Option<NaiveDate>,
    /// What cancelling it credited, once cancelled.
    #[serde(default)]
    pub cancellation: Option<Cancellation>,
    /// Its changes of plan, oldest first.
    #[serde(default)]
    pub plan_changes: Vec<PlanChange>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// What a cancellation credited: the unused days of every billed period (see
/// [`rules::unused_share`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cancellation {
    /// The local date it was cancelled on; it took effect at the end of that day.
    pub on: NaiveDate,
    /// One per billed period with days left.
    pub credits: Vec<UnusedCredit>,
}

/// The unused days of one billed period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnusedCredit {
    /// The period's invoice.
    pub invoice_id: InvoiceId,
    /// The first day the invoice billed.
    pub period_start: NaiveDate,
    /// The day after the last.
    pub period_end: NaiveDate,
    /// The billed days after the cancellation.
    pub unused_days: u32,
    /// Their share of the days billed, the quantity of each line credited.
    #[serde(with = "rust_decimal::serde::str")]
    pub share: Decimal,
    /// The credit note's total.
    pub amount: Money,
    /// How it is settled.
    pub settlement: Settlement,
}

/// How a cancellation's credit is settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Settlement {
    /// Taken off what the invoice still owes: a credit note.
    Credited,
    /// The invoice was paid: a credit note refunded to this payment, through the provider that
    /// took it.
    Refunded {
        /// The payment.
        payment_id: PaymentId,
    },
    /// Neither fits (partly paid, or no one payment covers it): left to the office, which
    /// settles it with `invoice/v1/creditNote`.
    ByHand,
}

impl UnusedCredit {
    /// The credit note that settles it, unless it is left to the office; `why` and `on` say
    /// what made the days unused.
    fn command(
        &self,
        why: &str,
        on: NaiveDate,
    ) -> Result<Option<super::invoice::CreditInvoice>, StoreError> {
        let refund_payment_id = match self.settlement {
            Settlement::Credited => None,
            Settlement::Refunded { payment_id } => Some(payment_id),
            Settlement::ByHand => return Ok(None),
        };
        Ok(Some(super::invoice::CreditInvoice {
            invoice_id: self.invoice_id,
            request: unused_request(self, why, on)?,
            refund_payment_id,
            expected_version: None,
        }))
    }
}

/// The credit request of an unused stretch: every line of the period's invoice at `share`.
fn unused_request(
    credit: &UnusedCredit,
    why: &str,
    on: NaiveDate,
) -> Result<CreditRequest, StoreError> {
    let last = credit.period_end.pred_opt().unwrap_or(credit.period_end);
    let reason = Reason::parse(&format!(
        "{why} on {on}: {} unused days of {} to {last}",
        credit.unused_days, credit.period_start
    ))
    .map_err(|e| StoreError::Internal(format!("a cancellation's reason: {}", e.message)))?;
    Ok(CreditRequest {
        lines: vec![CreditLineRequest {
            line: 0,
            quantity: Some(credit.share),
        }],
        adjustments: Vec::new(),
        reason,
    })
}

/// Decides what cancelling `agreement` on `today` credits: each billed period with days after
/// today, at its unused share of the period's invoice less what the invoice has credited,
/// settled against what the invoice owes, else refunded to one payment that covers it, else
/// left to the office.
async fn unused_credits(
    tx: &mut TenantTx,
    agreement: &Agreement,
    why: &str,
    today: NaiveDate,
) -> Result<Vec<UnusedCredit>, StoreError> {
    let rows = tx
        .fetch_all(
            "SELECT period_start, period_end, invoice_id FROM agreement_invoices \
             WHERE organization_id = $1 AND agreement_id = $2 AND period_end > $3 ORDER BY period_start",
            args![tx.org(), agreement.id.as_uuid(), today],
        )
        .await?;
    let mut credits = Vec::new();
    for row in rows {
        let (start, end): (NaiveDate, NaiveDate) =
            (row.get("period_start")?, row.get("period_end")?);
        let Some((share, unused_days)) = rules::unused_share(start, end, today) else {
            continue;
        };
        let invoice_id = InvoiceId::from_uuid(row.get("invoice_id")?);
        let invoice = super::invoice::load(tx, invoice_id, false).await?;
        if !matches!(invoice.status, InvoiceStatus::Issued | InvoiceStatus::Paid) {
            continue;
        }
        // What is credited already counts against the share: a change of plan credits the same
        // tail of the period, and what it decided counts even before its credit note is
        // recorded (a refund still with the provider, a settlement left to the office).
        let decided: Decimal = agreement
            .plan_changes
            .iter()
            .flat_map(|c| &c.credits)
            .filter(|c| c.invoice_id == invoice_id)
            .map(|c| c.share)
            .sum();
        let credited = credited_quantities(&invoice)
            .first()
            .copied()
            .unwrap_or_default();
        let share = share - credited.max(decided);
        if share <= Decimal::ZERO {
            continue;
        }
        let mut credit = UnusedCredit {
            invoice_id,
            period_start: start,
            period_end: end,
            unused_days,
            share,
            amount: Money::zero(invoice.currency()),
            settlement: Settlement::ByHand,
        };
        // Priced as the credit note will be, whatever the invoice owes (that decides below how
        // it is settled).
        let placeholder = CreditNoteNumber::from_sequence(1)
            .map_err(|e| StoreError::Internal(format!("credit note number 1: {}", e.message)))?;
        let priced = price_credit_note(
            &invoice,
            CreditNoteId::from_uuid(new_id()),
            placeholder,
            today,
            &unused_request(&credit, why, today)?,
        );
        let Ok(note) = priced else {
            // The invoice cannot take it (credits by hand beyond its total): the office
            // decides, told what the days were worth.
            credit.amount = Money::new(
                invoice
                    .quote
                    .lines
                    .first()
                    .map_or(Decimal::ZERO, |l| l.line_total.amount())
                    * credit.share,
                invoice.currency(),
            )
            .round();
            credits.push(credit);
            continue;
        };
        credit.amount = note.total;
        if credit.amount.is_zero() {
            continue;
        }
        let owed = super::invoice::collect::unreserved_balance(tx, &invoice).await?;
        credit.settlement = if credit.amount.amount() <= owed.amount() {
            Settlement::Credited
        } else if owed.is_zero()
            && let Some(payment) = invoice.payments.iter().rev().find(|p| {
                invoice
                    .refundable(p.id)
                    .is_some_and(|r| r.amount() >= credit.amount.amount())
            })
        {
            Settlement::Refunded {
                payment_id: payment.id,
            }
        } else {
            Settlement::ByHand
        };
        credits.push(credit);
    }
    Ok(credits)
}

impl Agreement {
    fn cursors(&self) -> Vec<Cursor> {
        self.schedules
            .iter()
            .filter(|s| !s.replaced)
            .map(|s| Cursor {
                schedule: s.schedule,
                next: s.next,
            })
            .collect()
    }

    /// What is not yet billed up to the term's end: whole periods, and the rest of a period a
    /// renewal extended after its first part was billed (`billed_until` inside it), prorated.
    fn unbilled(&self) -> Vec<BillingPeriod> {
        let from = self.billed_until.unwrap_or(self.start_date);
        rules::billing_periods(self.start_date, self.term_end, self.billing)
            .into_iter()
            .filter(|p| p.end > from)
            .map(|p| BillingPeriod {
                start: p.start.max(from),
                ..p
            })
            .collect()
    }

    fn attention(&self) -> Option<NaiveDate> {
        if !self.status.is_in_force() {
            return None;
        }
        let retry = self.retry_on.filter(|_| self.autopay.is_some());
        let renewal = self.renewal_on();
        let earliest = rules::next_attention(
            &self.cursors(),
            self.lead_days,
            self.unbilled().first().copied(),
            retry,
            self.term_end,
        );
        earliest.into_iter().chain(renewal).min()
    }

    /// The price of a whole period starting on `date`.
    pub fn price_on(&self, date: NaiveDate) -> Money {
        // The nearest boundary after `date`: a change of plan's comes after a renewal's.
        self.earlier_prices
            .iter()
            .filter(|p| date < p.until)
            .min_by_key(|p| p.until)
            .map_or(self.price, |p| p.price)
    }

    /// When an auto-renewing agreement renews: [`RENEWAL_NOTICE_DAYS`] before its term ends,
    /// or halfway through a shorter term.
    pub fn renewal_on(&self) -> Option<NaiveDate> {
        if !self.auto_renew {
            return None;
        }
        let term_start = self
            .term_end
            .checked_sub_months(chrono::Months::new(self.term_months))
            .unwrap_or(self.start_date);
        let notice = RENEWAL_NOTICE_DAYS.min((self.term_end - term_start).num_days() / 2);
        self.term_end.checked_sub_signed(Duration::days(notice))
    }
}

/// `maintenance/v1/activate`: the customer signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivateAgreement {
    /// Which agreement.
    pub agreement_id: AgreementId,
    /// Who signed.
    pub signed_by: Name,
    /// The signature as captured.
    pub signature: Option<Description>,
    /// Fail with `VERSION_CONFLICT` unless the agreement is at this version.
    pub expected_version: Option<i64>,
}

/// `maintenance/v1/suspend`, `resume` and `cancel`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeStatus {
    /// Which agreement.
    pub agreement_id: AgreementId,
    /// Why (required to suspend or cancel).
    pub reason: Option<Reason>,
    /// Fail with `VERSION_CONFLICT` unless the agreement is at this version.
    pub expected_version: Option<i64>,
}

/// `maintenance/v1/changeSchedule`: a plan visit recurs differently from now on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeSchedule {
    /// Which agreement.
    pub agreement_id: AgreementId,
    /// Which plan visit.
    pub slot: u32,
    /// How it recurs now.
    pub rule: Recurrence,
    /// The month a monthly cycle is aligned to.
    pub start_month: Option<u8>,
    /// The preferred local time of day.
    pub window: DayWindow,
    /// Fail with `VERSION_CONFLICT` unless the agreement is at this version.
    pub expected_version: Option<i64>,
}

/// `maintenance/v1/changePlan`: the agreement moves to another plan from tomorrow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangePlan {
    /// Which agreement.
    pub agreement_id: AgreementId,
    /// The plan it moves to.
    pub plan_id: MaintenancePlanId,
    /// Fail with `VERSION_CONFLICT` unless the agreement is at this version.
    pub expected_version: Option<i64>,
}

/// A change of plan: what the rest of each billed period was credited at the old price and
/// billed at the new one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanChange {
    /// The local date it was made; the new plan applies from the next day.
    pub on: NaiveDate,
    /// The plan it left.
    pub from_plan_id: MaintenancePlanId,
    /// That plan's price of a whole period.
    pub from_price: Money,
    /// The rest of each billed period, credited at the old price.
    pub credits: Vec<UnusedCredit>,
    /// The same days billed at the new price.
    pub invoices: Vec<PeriodInvoice>,
}

/// `maintenance/v1/setPlanPrices`: a plan's prices from now on. Agreements keep theirs until
/// they renew.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetPlanPrices {
    /// Which plan.
    pub plan_id: MaintenancePlanId,
    /// Its prices, one per billing frequency offered.
    pub prices: Vec<PlanPrice>,
    /// Fail with `VERSION_CONFLICT` unless the plan is at this version.
    pub expected_version: Option<i64>,
}

/// `maintenance/v1/setAutopay`: charge each period's invoice to a card, or stop.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetAutopay {
    /// Which agreement.
    pub agreement_id: AgreementId,
    /// The processor's card token; `None` stops charging.
    pub card_token: Option<Name>,
    /// Fail with `VERSION_CONFLICT` unless the agreement is at this version.
    pub expected_version: Option<i64>,
}

/// What an agreement's timer runs for the organization's local `date`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tick {
    /// Which agreement.
    pub agreement_id: AgreementId,
    /// The local date it runs for.
    pub date: NaiveDate,
}

/// A command of `maintenance_contract_v1`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "procedure", content = "input")]
pub enum MaintenanceCommand {
    /// `maintenance/v1/createPlan`.
    #[serde(rename = "maintenance/v1/createPlan")]
    CreatePlan(NewPlan),
    /// `maintenance/v1/setPlanPrices`.
    #[serde(rename = "maintenance/v1/setPlanPrices")]
    SetPlanPrices(SetPlanPrices),
    /// `maintenance/v1/createContract`.
    #[serde(rename = "maintenance/v1/createContract")]
    CreateContract(NewAgreement),
    /// `maintenance/v1/activate`.
    #[serde(rename = "maintenance/v1/activate")]
    Activate(ActivateAgreement),
    /// `maintenance/v1/suspend`.
    #[serde(rename = "maintenance/v1/suspend")]
    Suspend(ChangeStatus),
    /// `maintenance/v1/resume`.
    #[serde(rename = "maintenance/v1/resume")]
    Resume(ChangeStatus),
    /// `maintenance/v1/cancel`.
    #[serde(rename = "maintenance/v1/cancel")]
    Cancel(ChangeStatus),
    /// `maintenance/v1/changeSchedule`.
    #[serde(rename = "maintenance/v1/changeSchedule")]
    ChangeSchedule(ChangeSchedule),
    /// `maintenance/v1/changePlan`.
    #[serde(rename = "maintenance/v1/changePlan")]
    ChangePlan(ChangePlan),
    /// `maintenance/v1/setAutopay`.
    #[serde(rename = "maintenance/v1/setAutopay")]
    SetAutopay(SetAutopay),
    /// The agreement's timer.
    #[serde(rename = "timer/maintenance")]
    Tick(Tick),
}

impl Command for MaintenanceCommand {
    const WORKFLOW: &'static str = WORKFLOW;
    fn procedure(&self) -> &'static str {
        match self {
            Self::CreatePlan(_) => "maintenance/v1/createPlan",
            Self::SetPlanPrices(_) => "maintenance/v1/setPlanPrices",
            Self::CreateContract(_) => "maintenance/v1/createContract",
            Self::Activate(_) => "maintenance/v1/activate",
            Self::Suspend(_) => "maintenance/v1/suspend",
            Self::Resume(_) => "maintenance/v1/resume",
            Self::Cancel(_) => "maintenance/v1/cancel",
            Self::ChangeSchedule(_) => "maintenance/v1/changeSchedule",
            Self::ChangePlan(_) => "maintenance/v1/changePlan",
            Self::SetAutopay(_) => "maintenance/v1/setAutopay",
            Self::Tick(_) => TICK_PROCEDURE,
        }
    }
    fn wakes_timers(&self) -> bool {
        matches!(
            self,
            Self::Activate(_)
                | Self::Resume(_)
                | Self::ChangeSchedule(_)
                | Self::ChangePlan(_)
                | Self::SetAutopay(_)
        )
    }
}

/// A visit an agreement generated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Visit {
    /// The plan visit.
    pub slot: u32,
    /// The schedule's revision.
    pub revision: u32,
    /// The occurrence's index in it.
    pub occurrence: u32,
    /// Where.
    pub property_id: PropertyId,
    /// The local date it falls on.
    pub due_on: NaiveDate,
    /// Its job.
    pub job_id: JobId,
    /// The local date it was generated.
    pub generated_on: NaiveDate,
    /// Generated after the day its lead time began (the server was down): caught up.
    pub late: bool,
}

/// An invoice of a billing period (or of a visit's day, billed per visit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeriodInvoice {
    /// The period's first day.
    pub period_start: NaiveDate,
    /// The day after its last.
    pub period_end: NaiveDate,
    /// The invoice.
    pub invoice_id: InvoiceId,
    /// The visit's job it is on, when billed per visit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<JobId>,
}

/// A charge of a period's invoice to the agreement's card.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChargeAttempt {
    /// The invoice.
    pub invoice_id: InvoiceId,
    /// How much.
    pub amount: Money,
    /// Whether the processor approved it.
    pub approved: bool,
    /// The processor's code when it declined.
    pub code: Option<String>,
}

/// What a tick did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TickReport {
    /// The agreement.
    pub agreement_id: AgreementId,
    /// The date it ran for.
    pub date: NaiveDate,
    /// The visits it generated.
    pub visits: Vec<Visit>,
    /// How many of them were caught up (their lead time began before `date`).
    pub caught_up: u32,
    /// The periods it billed.
    pub invoices: Vec<PeriodInvoice>,
    /// The charges it tried.
    pub charges: Vec<ChargeAttempt>,
    /// The agreement's status after it.
    pub status: AgreementStatus,
}

pub(crate) async fn run(
    mut ctx: WorkflowCtx,
    command: MaintenanceCommand,
    processor: Arc<dyn PaymentProvider>,
) -> Result<serde_json::Value, StoreError> {
    use MaintenanceCommand as C;
    Ok(match command {
        C::CreatePlan(p) => serde_json::to_value(
            ctx.step("create_plan", move |tx| Box::pin(create_plan(tx, p)))
                .await?,
        )?,
        C::SetPlanPrices(p) => serde_json::to_value(
            ctx.step("set_plan_prices", move |tx| {
                Box::pin(set_plan_prices(tx, p))
            })
            .await?,
        )?,
        C::CreateContract(a) => serde_json::to_value(
            ctx.step("create_agreement", move |tx| {
                Box::pin(create_agreement(tx, a))
            })
            .await?,
        )?,
        C::Activate(a) => serde_json::to_value(
            ctx.step("activate_agreement", move |tx| Box::pin(activate(tx, a)))
                .await?,
        )?,
        C::Suspend(c) => serde_json::to_value(
            ctx.step("suspend_agreement", move |tx| {
                Box::pin(change_status(tx, c, AgreementAction::Suspend))
            })
            .await?,
        )?,
        C::Resume(c) => serde_json::to_value(
            ctx.step("resume_agreement", move |tx| {
                Box::pin(change_status(tx, c, AgreementAction::Resume))
            })
            .await?,
        )?,
        C::Cancel(c) => {
            // The credits are decided with the cancellation (its step records them); each is
            // then settled through the invoice path, a credit note or a refunded one.
            let agreement = ctx
                .step("cancel_agreement", move |tx| {
                    Box::pin(change_status(tx, c, AgreementAction::Cancel))
                })
                .await?;
            serde_json::to_value(
                settle(&mut ctx, agreement, Settling::Cancellation, &processor).await?,
            )?
        }
        C::ChangePlan(c) => {
            let agreement = ctx
                .step("change_plan", move |tx| Box::pin(change_plan(tx, c)))
                .await?;
            serde_json::to_value(
                settle(&mut ctx, agreement, Settling::PlanChange, &processor).await?,
            )?
        }
        C::ChangeSchedule(c) => serde_json::to_value(
            ctx.step("change_schedule", move |tx| {
                Box::pin(change_schedule(tx, c))
            })
            .await?,
        )?,
        C::SetAutopay(a) => serde_json::to_value(
            ctx.step("set_autopay", move |tx| Box::pin(set_autopay(tx, a)))
                .await?,
        )?,
        C::Tick(t) => {
            let visits = ctx
                .step("generate_visits", move |tx| {
                    Box::pin(generate_visits(tx, t))
                })
                .await?;
            let invoices: Vec<PeriodInvoice> = ctx
                .step("bill_periods", move |tx| Box::pin(bill_periods(tx, t)))
                .await?;

            let charges = charge(&mut ctx, t, processor).await?;
            let status = ctx
                .step("close_term", move |tx| Box::pin(close_term(tx, t)))
                .await?;
            // Last, so that a tick journalled before this step existed replays unchanged.
            if invoices.iter().any(|i| i.job_id.is_some()) {
                let on_jobs = invoices.clone();
                ctx.step("invoice_visit_jobs", move |tx| {
                    Box::pin(invoice_visit_jobs(tx, on_jobs))
                })
                .await?;
            }
            let caught_up = u32::try_from(visits.iter().filter(|v: &&Visit| v.late).count())
                .unwrap_or(u32::MAX);
            serde_json::to_value(TickReport {
                agreement_id: t.agreement_id,
                date: t.date,
                visits,
                caught_up,
                invoices,
                charges,
                status,
            })?
        }
    })
}

/// What made billed days unused, in a credit note's reason.
const CANCELLED: &str = "Agreement cancelled";
const PLAN_CHANGED: &str = "Plan changed";

/// Settles each credit decided on `on` through the invoice path, as steps of this workflow: a
/// credit note, or one refunded through the provider (its reserve, refund and record steps).
/// The agreement has already changed, so a refusal (a payment arrived meanwhile, the provider
/// declined the refund) does not fail the workflow: the credit is left to the office, recorded
/// on the agreement, which the workflow then answers with.
async fn settle(
    ctx: &mut WorkflowCtx,
    agreement: Agreement,
    which: Settling,
    processor: &Arc<dyn PaymentProvider>,
) -> Result<Agreement, StoreError> {
    let (why, on, credits) = match which {
        Settling::Cancellation => match &agreement.cancellation {
            Some(c) => (CANCELLED, c.on, c.credits.clone()),
            None => return Ok(agreement),
        },
        Settling::PlanChange => match agreement.plan_changes.last() {
            Some(c) => (PLAN_CHANGED, c.on, c.credits.clone()),
            None => return Ok(agreement),
        },
    };
    let mut refused = Vec::new();
    for (n, credit) in credits.iter().enumerate() {
        let Some(command) = credit.command(why, on)? else {
            continue;
        };
        let settled = if command.refund_payment_id.is_some() {
            use super::invoice::collect::{RefundOf, refund, refund_refused};
            // Asked in a step first, so that a refusal is journalled (the refund's own reserve
            // step journals only what it reserves).
            let what = RefundOf::Credit(command);
            let (check, configured) = (what.clone(), processor.name().to_owned());
            let refused: Option<Failure> = ctx
                .step("check_refund", move |tx| {
                    Box::pin(async move { refund_refused(tx, &check, &configured).await })
                })
                .await?;
            let outcome = match refused {
                Some(failure) => Err(StoreError::Failure(failure)),
                None => refund(ctx, what, processor.clone()).await.map(|_| ()),
            };
            match outcome {
                Ok(()) => true,
                Err(StoreError::Failure(failure)) => {
                    tracing::warn!(agreement.id = %agreement.id, code = %failure.code, "an unused-days refund was refused; left to the office");
                    false
                }
                Err(e) => return Err(e),
            }
        } else {
            // A refusal comes before the credit writes anything, so the step may answer it.
            ctx.step("credit_unused_days", move |tx| {
                Box::pin(async move {
                    match super::invoice::credit(tx, command).await {
                        Ok(_) => Ok(true),
                        Err(StoreError::Failure(_)) => Ok(false),
                        Err(e) => Err(e),
                    }
                })
            })
            .await?
        };
        if !settled {
            refused.push(n);
        }
    }
    if refused.is_empty() {
        return Ok(agreement);
    }
    let id = agreement.id;
    ctx.step("left_to_the_office", move |tx| {
        Box::pin(leave_to_the_office(tx, id, which, refused))
    })
    .await
}

/// Which decided credits [`settle`] settles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Settling {
    Cancellation,
    PlanChange,
}

/// Records the credits at `refused` as left to the office.
async fn leave_to_the_office(
    tx: &mut TenantTx,
    id: AgreementId,
    which: Settling,
    refused: Vec<usize>,
) -> Result<Agreement, StoreError> {
    let mut agreement = load_agreement(tx, id, true).await?;
    let mut credits = match which {
        Settling::Cancellation => agreement.cancellation.as_mut().map(|c| &mut c.credits),
        Settling::PlanChange => agreement.plan_changes.last_mut().map(|c| &mut c.credits),
    };
    for n in refused {
        if let Some(credit) = credits.as_deref_mut().and_then(|c| c.get_mut(n)) {
            credit.settlement = Settlement::ByHand;
        }
    }
    save(tx, agreement).await
}

async fn create_plan(tx: &mut TenantTx, p: NewPlan) -> Result<Plan, StoreError> {
    check_currency(&p.prices, load_organization(tx, false).await?.currency)?;
    // Each visit's services are services of the pricebook.
    let wanted: Vec<Uuid> = p
        .visits
        .iter()
        .flat_map(|v| v.services.iter().map(|s| s.item_id.as_uuid()))
        .collect();
    let services = services_in(tx, &wanted).await?;
    for (n, visit) in p.visits.iter().enumerate() {
        for (k, service) in visit.services.iter().enumerate() {
            if !services.contains(&service.item_id.as_uuid()) {
                return Err(Failure::invalid_field(
                    format!("visits[{n}].services[{k}].itemId"),
                    "not_a_service",
                    "no service of the pricebook has this id",
                )
                .into());
            }
        }
    }
    // Each visit's forms are the organization's templates.
    let wanted: Vec<Uuid> = p
        .visits
        .iter()
        .flat_map(|v| v.forms.iter().map(|f| f.as_uuid()))
        .collect();
    let templates = ids_in(
        tx,
        "SELECT DISTINCT id FROM form_templates WHERE organization_id = $1 AND id IN",
        &wanted,
    )
    .await?;
    for (n, visit) in p.visits.iter().enumerate() {
        for (k, form) in visit.forms.iter().enumerate() {
            if !templates.contains(&form.as_uuid()) {
                return Err(Failure::invalid_field(
                    format!("visits[{n}].formTemplateIds[{k}]"),
                    "not_found",
                    "no form template of the organization has this id",
                )
                .into());
            }
        }
    }
    super::trades::ensure_known(
        tx,
        p.visits
            .iter()
            .enumerate()
            .map(|(n, v)| (format!("visits[{n}].trade"), v.trade.clone()))
            .collect::<Vec<_>>(),
    )
    .await?;
    let orgid = tx.org();
    let taken = tx
        .fetch_optional(
            "SELECT id FROM maintenance_plans WHERE organization_id = $1 AND name = $2",
            args![orgid, p.name.as_str()],
        )
        .await?;
    if taken.is_some() {
        return Err(Failure::new(
            FailureKind::Conflict,
            "PLAN_EXISTS",
            "a plan with this name exists",
        )
        .into());
    }
    let plan = Plan {
        id: MaintenancePlanId::from_uuid(new_id()),
        version: 1,
        name: p.name,
        description: p.description,
        visits: p.visits,
        benefits: p.benefits,
        prices: p.prices,
        created_at: tx.now(),
    };
    tx.execute(
        "INSERT INTO maintenance_plans (organization_id, id, version, name, active, body, created_at, updated_at, \
         member_discount, member_priority, member_waives_trip_fee) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10)",
        args![
            orgid,
            plan.id.as_uuid(),
            plan.version,
            plan.name.as_str(),
            true,
            serde_json::to_string(&plan)?,
            plan.created_at,
            plan.benefits.discount.map(|d| d.value().to_string()),
            plan.benefits.priority.map(Priority::as_str),
            plan.benefits.waive_trip_fee
        ],
    )
    .await?;
    tx.record_change(
        "maintenance_plan",
        plan.id.as_uuid(),
        plan.version,
        Operation::Created,
    )
    .await?;
    Ok(plan)
}

/// Where an agreement's period invoices are priced: its first property, without member
/// benefits (the plan's price is the member's price).
fn price_at(agreement: &Agreement) -> Result<PriceAt, StoreError> {
    Ok(PriceAt::agreement(
        agreement.customer_id,
        *agreement
            .property_ids
            .first()
            .ok_or_else(|| StoreError::Internal("an agreement without a property".into()))?,
    ))
}

/// What a customer gets as a member: the largest discount of their active agreements' plans
/// and the most urgent priority. Suspended agreements give nothing until paid.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Membership {
    /// The discount on other work, and the agreement that gives it.
    pub discount: Option<MemberDiscount>,
    /// The priority whose response window caps the customer's jobs'.
    pub priority: Option<Priority>,
    /// The agreement whose plan waives the customer's trip fees, if one does.
    pub trip_fee_waived_by: Option<AgreementId>,
}

/// The forms a job generated for a maintenance visit requires (none for other jobs).
pub(crate) async fn visit_forms(
    tx: &mut TenantTx,
    job_id: JobId,
) -> Result<Vec<FormTemplateId>, StoreError> {
    let row = tx
        .fetch_optional(
            "SELECT form_template_ids FROM maintenance_visits WHERE organization_id = $1 AND job_id = $2",
            args![tx.org(), job_id.as_uuid()],
        )
        .await?;
    match row {
        Some(row) => Ok(serde_json::from_str(
            &row.get::<String>("form_template_ids")?,
        )?),
        None => Ok(Vec::new()),
    }
}

/// The customer's membership (nothing when they have no active agreement).
pub(crate) async fn membership(
    tx: &mut TenantTx,
    customer_id: CustomerId,
) -> Result<Membership, StoreError> {
    let rows = tx
        .fetch_all(
            &format!(
                "SELECT a.id, p.member_discount, p.member_waives_trip_fee, {} AS member_urgency \
                 FROM maintenance_agreements a \
                 JOIN maintenance_plans p ON p.organization_id = a.organization_id AND p.id = a.plan_id \
                 WHERE {} ORDER BY a.id",
                member_urgency("p", "OVER ()"),
                MEMBER_AGREEMENTS
            ),
            args![tx.org(), customer_id.as_uuid()],
        )
        .await?;
    let mut best = Membership::default();
    for row in rows {
        if let Some(raw) = row.get::<Option<String>>("member_discount")? {
            let percent = Percent::parse_str(&raw)
                .map_err(|_| StoreError::Internal("stored member discount".into()))?;
            if best.discount.is_none_or(|d| percent > d.percent) {
                best.discount = Some(MemberDiscount {
                    agreement_id: AgreementId::from_uuid(row.get("id")?),
                    percent,
                });
            }
        }
        if best.trip_fee_waived_by.is_none() && row.get::<bool>("member_waives_trip_fee")? {
            best.trip_fee_waived_by = Some(AgreementId::from_uuid(row.get("id")?));
        }
        if let Some(urgency) = row.get::<Option<i64>>("member_urgency")? {
            best.priority = Some(priority_of_urgency(urgency)?);
        }
    }
    Ok(best)
}

/// The condition on `maintenance_agreements a` (`$1` the organization, `$2` the customer) that
/// makes the customer a member.
pub(crate) const MEMBER_AGREEMENTS: &str =
    "a.organization_id = $1 AND a.customer_id = $2 AND a.status = 'active'";

/// Priorities by urgency, the most urgent first: a priority's index is its urgency.
const BY_URGENCY: [Priority; 3] = [Priority::Emergency, Priority::Urgent, Priority::Routine];

/// The most urgent priority promised by the member plans joined as `plans`, in SQL: an
/// aggregate (a window function when `over` is given) whose value is an index in
/// [`BY_URGENCY`], NULL when no plan promises one. Job creation and [`membership`] both read
/// it, so they cannot disagree on which plan wins.
pub(crate) fn member_urgency(plans: &str, over: &str) -> String {
    let arms: String = BY_URGENCY
        .iter()
        .enumerate()
        .map(|(i, p)| format!(" WHEN '{}' THEN {i}", p.as_str()))
        .collect();
    format!("CAST(MIN(CASE {plans}.member_priority{arms} END) {over} AS BIGINT)")
}

/// The priority of an urgency computed by [`member_urgency`].
pub(crate) fn priority_of_urgency(urgency: i64) -> Result<Priority, StoreError> {
    usize::try_from(urgency)
        .ok()
        .and_then(|u| BY_URGENCY.get(u).copied())
        .ok_or_else(|| StoreError::Internal(format!("a member urgency of {urgency}")))
}

fn check_currency(
    prices: &[PlanPrice],
    currency: hestami_core::org::Currency,
) -> Result<(), StoreError> {
    match prices.iter().position(|p| p.amount.currency() != currency) {
        Some(n) => Err(Failure::invalid_field(
            format!("prices[{n}].amount"),
            "currency_mismatch",
            "a plan is priced in the organization's currency",
        )
        .into()),
        None => Ok(()),
    }
}

async fn set_plan_prices(tx: &mut TenantTx, p: SetPlanPrices) -> Result<Plan, StoreError> {
    let plan: Plan = load_body(
        tx,
        "maintenance_plans",
        p.plan_id.as_uuid(),
        true,
        "maintenance plan",
    )
    .await?;
    check_version("maintenance plan", p.expected_version, plan.version)?;
    check_currency(&p.prices, load_organization(tx, false).await?.currency)?;
    let next = Plan {
        version: plan.version + 1,
        prices: p.prices,
        ..plan
    };
    let org = tx.org();
    tx.execute(
        "UPDATE maintenance_plans SET version = $1, body = $2, updated_at = $3 \
         WHERE organization_id = $4 AND id = $5",
        args![
            next.version,
            serde_json::to_string(&next)?,
            tx.now(),
            org,
            next.id.as_uuid()
        ],
    )
    .await?;
    tx.record_change(
        "maintenance_plan",
        next.id.as_uuid(),
        next.version,
        Operation::Updated,
    )
    .await?;
    Ok(next)
}

/// Which of `ids` are services of the pricebook.
async fn services_in(tx: &mut TenantTx, ids: &[Uuid]) -> Result<Vec<Uuid>, StoreError> {
    ids_in(
        tx,
        "SELECT id FROM pricebook_items WHERE organization_id = $1 AND kind = 'service' AND id IN",
        ids,
    )
    .await
}

/// The ids among `ids` that `select` (up to its `IN`, `$1` the organization) finds.
async fn ids_in(tx: &mut TenantTx, select: &str, ids: &[Uuid]) -> Result<Vec<Uuid>, StoreError> {
    tx.fetch_by_ids(select, ids)
        .await?
        .iter()
        .map(|row| row.get("id"))
        .collect()
}

async fn load_plan(tx: &mut TenantTx, id: MaintenancePlanId) -> Result<Plan, StoreError> {
    load_body(
        tx,
        "maintenance_plans",
        id.as_uuid(),
        false,
        "maintenance plan",
    )
    .await
}

async fn load_agreement(
    tx: &mut TenantTx,
    id: AgreementId,
    lock: bool,
) -> Result<Agreement, StoreError> {
    load_body(
        tx,
        "maintenance_agreements",
        id.as_uuid(),
        lock,
        "agreement",
    )
    .await
}

async fn create_agreement(tx: &mut TenantTx, a: NewAgreement) -> Result<Agreement, StoreError> {
    let plan = load_plan(tx, a.plan_id).await?;
    let price = plan.price(a.billing).ok_or_else(|| {
        Failure::invalid_field(
            "billing",
            "no_price",
            "the plan has no price for this billing frequency",
        )
    })?;
    let org = tx.org();
    let customer = tx
        .fetch_optional(
            "SELECT id FROM customers WHERE organization_id = $1 AND id = $2",
            args![org, a.customer_id.as_uuid()],
        )
        .await?;
    if customer.is_none() {
        return Err(Failure::not_found("customer").into());
    }
    for (n, property) in a.property_ids.iter().enumerate() {
        let found = tx
            .fetch_optional(
                "SELECT id FROM properties WHERE organization_id = $1 AND customer_id = $2 AND id = $3",
                args![org, a.customer_id.as_uuid(), property.as_uuid()],
            )
            .await?;
        if found.is_none() {
            return Err(Failure::invalid_field(
                format!("propertyIds[{n}]"),
                "not_the_customers",
                "no property of this customer has this id",
            )
            .into());
        }
    }
    let term_end = rules::term_end(a.start_date, a.term_months).ok_or_else(|| {
        Failure::invalid_field("termMonths", "out_of_range", "the term is too long")
    })?;
    let schedules = plan
        .visits
        .iter()
        .enumerate()
        .map(|(slot, visit)| AgreementSchedule {
            slot: u32::try_from(slot).unwrap_or(u32::MAX),
            revision: 0,
            schedule: rules::schedule_from(
                a.start_date,
                visit.rule,
                visit.start_month,
                visit.window,
            ),
            next: 0,
            replaced: false,
            planned_on: None,
        })
        .collect();
    let now = tx.now();
    let agreement = Agreement {
        id: AgreementId::from_uuid(new_id()),
        version: 1,
        plan_id: plan.id,
        plan_name: plan.name,
        customer_id: a.customer_id,
        property_ids: a.property_ids,
        status: AgreementStatus::Draft,
        start_date: a.start_date,
        term_months: a.term_months,
        term_end,
        billing: a.billing,
        price,
        earlier_prices: Vec::new(),
        auto_renew: a.auto_renew,
        lead_days: a.lead_days,
        schedules,
        billed_until: None,
        renewals: 0,
        autopay: a.card_token,
        failed_charges: 0,
        retry_on: None,
        signature: None,
        reason: None,
        next_attention: None,
        cancellation: None,
        plan_changes: Vec::new(),
        created_at: now,
        updated_at: now,
    };
    tx.execute(
        "INSERT INTO maintenance_agreements (organization_id, id, version, plan_id, customer_id, status, \
         start_date, term_end, next_attention, body, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, $10, $10)",
        args![
            org,
            agreement.id.as_uuid(),
            agreement.version,
            agreement.plan_id.as_uuid(),
            agreement.customer_id.as_uuid(),
            status_str(agreement.status),
            agreement.start_date,
            agreement.term_end,
            serde_json::to_string(&agreement)?,
            now
        ],
    )
    .await?;
    tx.record_change(
        "agreement",
        agreement.id.as_uuid(),
        agreement.version,
        Operation::Created,
    )
    .await?;
    Ok(agreement)
}

fn status_str(status: AgreementStatus) -> &'static str {
    match status {
        AgreementStatus::Draft => "draft",
        AgreementStatus::Active => "active",
        AgreementStatus::Suspended => "suspended",
        AgreementStatus::Expired => "expired",
        AgreementStatus::Cancelled => "cancelled",
    }
}

/// Saves a changed agreement (its version bumped here), arms or removes its timer, and records
/// the change.
async fn save(tx: &mut TenantTx, mut next: Agreement) -> Result<Agreement, StoreError> {
    next.version += 1;
    next.updated_at = tx.now();
    let org = load_organization(tx, false).await?;
    // Something already due is due today: a completed visit of a per-visit agreement not yet
    // billed too (read with the agreement locked, so a completion committed before is seen,
    // and one after arms the timer itself).
    let today = tx.now().with_timezone(&org.time_zone.tz()).date_naive();
    next.next_attention = next.attention().map(|date| date.max(today));
    if next.billing == BillingFrequency::PerVisit
        && next.status.is_in_force()
        && !unbilled_visits(tx, next.id).await?.is_empty()
    {
        next.next_attention = Some(today);
    }
    let orgid = tx.org();
    tx.execute(
        "UPDATE maintenance_agreements SET version = $1, status = $2, term_end = $3, next_attention = $4, \
         body = $5, updated_at = $6 WHERE organization_id = $7 AND id = $8",
        args![
            next.version,
            status_str(next.status),
            next.term_end,
            next.next_attention,
            serde_json::to_string(&next)?,
            next.updated_at,
            orgid,
            next.id.as_uuid()
        ],
    )
    .await?;
    let name = format!("{TIMER_PREFIX}{}", next.id);
    match next.next_attention {
        Some(date) => {
            tx.arm_timer(&name, due_at(org.time_zone.tz(), date))
                .await?
        }
        None => tx.disarm_timer(&name).await?,
    }
    tx.record_change(
        "agreement",
        next.id.as_uuid(),
        next.version,
        Operation::Updated,
    )
    .await?;
    Ok(next)
}

/// When an agreement's timer fires for its attention `date`.
fn due_at(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    hestami_core::schedule::local_to_utc(tz, date.and_time(TICK_AT))
}

fn transition(
    agreement: &Agreement,
    action: AgreementAction,
) -> Result<AgreementStatus, StoreError> {
    agreement.status.decide(action).map_err(|e| {
        Failure::new(FailureKind::Conflict, "AGREEMENT_STATE", e.to_string())
            .with_details(serde_json::json!({ "status": status_str(agreement.status) }))
            .into()
    })
}

/// Moves each current schedule's cursor past the occurrences dated before `today`.
fn skip_past_visits(schedules: &mut [AgreementSchedule], today: NaiveDate) {
    for s in schedules.iter_mut().filter(|s| !s.replaced) {
        while s.next < hestami_core::maintenance::MAX_OCCURRENCES
            && s.schedule.occurrence(s.next).is_some_and(|d| d < today)
        {
            s.next += 1;
        }
    }
}

async fn activate(tx: &mut TenantTx, a: ActivateAgreement) -> Result<Agreement, StoreError> {
    let agreement = load_agreement(tx, a.agreement_id, true).await?;
    check_version("agreement", a.expected_version, agreement.version)?;
    let status = transition(&agreement, AgreementAction::Activate)?;
    let signed_at = tx.now();
    // An agreement signed after its start date has no visits in the past: each schedule starts
    // at its first occurrence from today. (Its periods from the start date are billed.)
    let today = super::invoice::local_today(tx).await?;
    let mut schedules = agreement.schedules.clone();
    skip_past_visits(&mut schedules, today);
    save(
        tx,
        Agreement {
            schedules,
            status,
            signature: Some(Signature {
                signed_by: a.signed_by,
                signature: a.signature,
                signed_at,
            }),
            ..agreement
        },
    )
    .await
}

async fn change_status(
    tx: &mut TenantTx,
    c: ChangeStatus,
    action: AgreementAction,
) -> Result<Agreement, StoreError> {
    let mut agreement = load_agreement(tx, c.agreement_id, true).await?;
    check_version("agreement", c.expected_version, agreement.version)?;
    let status = transition(&agreement, action)?;
    if action == AgreementAction::Cancel && agreement.status.is_in_force() {
        // Every period that has started is billed first (the morning's tick may not have run):
        // its days up to today are owed, the rest credited below.
        let today = super::invoice::local_today(tx).await?;
        let tick = Tick {
            agreement_id: agreement.id,
            date: today,
        };
        if !bill_periods(tx, tick).await?.is_empty() {
            agreement = load_agreement(tx, c.agreement_id, true).await?;
        }
    }
    let mut next = Agreement {
        status,
        reason: c.reason,
        ..agreement
    };
    if action == AgreementAction::Cancel {
        let today = super::invoice::local_today(tx).await?;
        next.cancellation = Some(Cancellation {
            on: today,
            credits: unused_credits(tx, &next, CANCELLED, today).await?,
        });
    }
    if action == AgreementAction::Resume {
        // A suspension pauses the service: visits that fell during it are not generated
        // afterwards, and the days it lasted are not billed. What falls from today on is: the
        // visits whose lead time began meanwhile (marked late), and the current period from
        // today, prorated.
        let today = super::invoice::local_today(tx).await?;
        skip_past_visits(&mut next.schedules, today);
        next.billed_until = Some(next.billed_until.unwrap_or(next.start_date).max(today));
        next.reason = None;
        next.failed_charges = 0;
        next.retry_on = None;
    }
    save(tx, next).await
}

/// Refuses a change to an agreement that has expired or was cancelled: it `still` does what it
/// did.
fn refuse_if_ended(agreement: &Agreement, still: &str) -> Result<(), StoreError> {
    if matches!(
        agreement.status,
        AgreementStatus::Expired | AgreementStatus::Cancelled
    ) {
        return Err(Failure::new(
            FailureKind::Conflict,
            "AGREEMENT_STATE",
            format!("an agreement that has ended {still}"),
        )
        .into());
    }
    Ok(())
}

async fn change_schedule(tx: &mut TenantTx, c: ChangeSchedule) -> Result<Agreement, StoreError> {
    let mut agreement = load_agreement(tx, c.agreement_id, true).await?;
    check_version("agreement", c.expected_version, agreement.version)?;
    refuse_if_ended(&agreement, "keeps its schedules")?;
    let Some(current) = agreement
        .schedules
        .iter_mut()
        .find(|s| s.slot == c.slot && !s.replaced)
    else {
        return Err(Failure::invalid_field(
            "slot",
            "no_such_visit",
            "the agreement's plan has no visit at this index",
        )
        .into());
    };
    // The new rule counts from the day after the last visit generated (or the old schedule's
    // start if none was), and never from before today: what is generated stays, what is not
    // is planned by the new rule.
    let today = super::invoice::local_today(tx).await?;
    let last_generated = current
        .next
        .checked_sub(1)
        .and_then(|i| current.schedule.occurrence(i));
    let from = last_generated
        .and_then(|d| d.succ_opt())
        .unwrap_or(current.schedule.start)
        .max(today);
    current.replaced = true;
    let revision = current.revision + 1;
    agreement.schedules.push(AgreementSchedule {
        slot: c.slot,
        revision,
        schedule: rules::schedule_from(from, c.rule, c.start_month, c.window),
        next: 0,
        replaced: false,
        planned_on: Some(today),
    });
    save(tx, agreement).await
}

/// `maintenance/v1/changePlan`: from tomorrow the agreement follows another plan — its visits
/// (every current schedule is replaced by the new plan's, counted from tomorrow; what is
/// generated stays) and its price. Each billed period with days after today is credited for
/// them at the old price (as a cancellation credits them) and billed for them at the new one.
async fn change_plan(tx: &mut TenantTx, c: ChangePlan) -> Result<Agreement, StoreError> {
    let agreement = load_agreement(tx, c.agreement_id, true).await?;
    check_version("agreement", c.expected_version, agreement.version)?;
    if agreement.status != AgreementStatus::Active {
        return Err(Failure::new(
            FailureKind::Conflict,
            "AGREEMENT_STATE",
            format!(
                "only an active agreement changes plan; this one is {}",
                status_str(agreement.status)
            ),
        )
        .into());
    }
    let today = super::invoice::local_today(tx).await?;
    if agreement.plan_changes.last().is_some_and(|p| p.on == today) {
        return Err(Failure::new(
            FailureKind::Conflict,
            "AGREEMENT_STATE",
            "the agreement changed plan today; change it again tomorrow",
        )
        .into());
    }
    let plan = load_plan(tx, c.plan_id).await?;
    if plan.id == agreement.plan_id {
        return Err(
            Failure::invalid_field("planId", "same_plan", "the agreement is on this plan").into(),
        );
    }
    let price = plan.price(agreement.billing).ok_or_else(|| {
        Failure::invalid_field(
            "planId",
            "no_price",
            "the plan has no price for the agreement's billing frequency",
        )
    })?;
    let tomorrow = today
        .succ_opt()
        .ok_or_else(|| StoreError::Internal("a date past the calendar".into()))?;
    // Every period that has started is billed first, at the old price, so that the change
    // prorates each of them the same way.
    bill_periods(
        tx,
        Tick {
            agreement_id: agreement.id,
            date: today,
        },
    )
    .await?;
    let mut agreement = load_agreement(tx, c.agreement_id, true).await?;
    let credits = unused_credits(tx, &agreement, PLAN_CHANGED, today).await?;
    let periods =
        rules::billing_periods(agreement.start_date, agreement.term_end, agreement.billing);
    let at = price_at(&agreement)?;
    // The rest of the period is billed under the new plan's name.
    let renamed = Agreement {
        plan_name: plan.name.clone(),
        ..agreement.clone()
    };
    let mut invoices = Vec::with_capacity(credits.len());
    for credit in &credits {
        let Some(full) = periods
            .iter()
            .find(|p| p.full_start < credit.period_end && credit.period_end <= p.full_end)
        else {
            continue;
        };
        let rest = BillingPeriod {
            start: tomorrow.max(credit.period_start),
            end: credit.period_end,
            ..*full
        };
        invoices.push(issue_period(tx, &renamed, at, rest, price, today).await?);
    }
    let from_plan_id = agreement.plan_id;
    let from_price = agreement.price_on(today);
    for schedule in agreement.schedules.iter_mut() {
        schedule.replaced = true;
    }
    for (slot, visit) in plan.visits.iter().enumerate() {
        let slot = u32::try_from(slot).unwrap_or(u32::MAX);
        let revision = agreement
            .schedules
            .iter()
            .filter(|s| s.slot == slot)
            .map(|s| s.revision + 1)
            .max()
            .unwrap_or(0);
        agreement.schedules.push(AgreementSchedule {
            slot,
            revision,
            schedule: rules::schedule_from(
                tomorrow.max(agreement.start_date),
                visit.rule,
                visit.start_month,
                visit.window,
            ),
            next: 0,
            replaced: false,
            planned_on: Some(tomorrow),
        });
    }
    // The new plan's price applies from tomorrow, whatever a renewal had set for later.
    for earlier in &mut agreement.earlier_prices {
        earlier.until = earlier.until.min(tomorrow);
    }
    agreement.earlier_prices.push(EarlierPrice {
        until: tomorrow,
        price: from_price,
    });
    agreement.plan_changes.push(PlanChange {
        on: today,
        from_plan_id,
        from_price,
        credits,
        invoices,
    });
    save(
        tx,
        Agreement {
            plan_id: plan.id,
            plan_name: plan.name,
            price,
            ..agreement
        },
    )
    .await
}

async fn set_autopay(tx: &mut TenantTx, a: SetAutopay) -> Result<Agreement, StoreError> {
    let agreement = load_agreement(tx, a.agreement_id, true).await?;
    check_version("agreement", a.expected_version, agreement.version)?;
    refuse_if_ended(&agreement, "charges nothing")?;
    // A new card starts afresh: what is unpaid is tried on the next tick.
    let retry_on = match a.card_token {
        Some(_) => Some(super::invoice::local_today(tx).await?),
        None => None,
    };
    save(
        tx,
        Agreement {
            autopay: a.card_token,
            failed_charges: 0,
            retry_on,
            ..agreement
        },
    )
    .await
}

/// Charges the agreement's card for its issued, unpaid period invoices (each through the
/// invoice path's `collectPayment` steps: reserve, charge with the processor's idempotency
/// key, record). A decline counts: the next attempt is [`RETRY_DAYS`] later, and the
/// [`CHARGE_ATTEMPTS`]th in a row suspends the agreement; the office hears of each through the
/// outbox (`agreement_payment_failed`). What to charge is decided by a step of its own, so a
/// replay after a crash charges the same invoices in the same order.
async fn charge(
    ctx: &mut WorkflowCtx,
    t: Tick,
    processor: Arc<dyn PaymentProvider>,
) -> Result<Vec<ChargeAttempt>, StoreError> {
    let due: Option<(Name, Vec<(InvoiceId, Money)>)> = ctx
        .step("due_charges", move |tx| Box::pin(due_charges(tx, t)))
        .await?;
    let Some((token, due)) = due else {
        return Ok(Vec::new());
    };
    let mut attempts = Vec::with_capacity(due.len());
    for (invoice_id, amount) in due {
        let payment = super::invoice::CollectPayment {
            invoice_id,
            amount,
            method: PaymentMethod::Card,
            reference: Some(token.clone()),
        };
        match super::invoice::collect::collect(ctx, payment, processor.clone()).await {
            Ok(_) => attempts.push(ChargeAttempt {
                invoice_id,
                amount,
                approved: true,
                code: None,
            }),
            Err(StoreError::Failure(f)) if f.code == "PAYMENT_DECLINED" => {
                let code = f
                    .details
                    .as_ref()
                    .and_then(|d| d["providerCode"].as_str())
                    .map(str::to_owned);
                let reported = code.clone();
                ctx.step("charge_declined", move |tx| {
                    Box::pin(charge_declined(tx, t, invoice_id, amount, reported))
                })
                .await?;
                attempts.push(ChargeAttempt {
                    invoice_id,
                    amount,
                    approved: false,
                    code,
                });
                // One decline is enough for today: the rest wait for the retry.
                break;
            }
            Err(e) => return Err(e),
        }
    }
    if attempts.iter().all(|a| a.approved) {
        ctx.step("charges_approved", move |tx| {
            Box::pin(async move {
                let agreement = load_agreement(tx, t.agreement_id, true).await?;
                if agreement.failed_charges > 0 || agreement.retry_on.is_some() {
                    save(
                        tx,
                        Agreement {
                            failed_charges: 0,
                            retry_on: None,
                            ..agreement
                        },
                    )
                    .await?;
                }
                Ok(())
            })
        })
        .await?;
    }
    Ok(attempts)
}

/// The agreement's card and its issued period invoices with a balance, oldest first, when the
/// card is due to be charged today; clears a retry date with nothing left to retry.
async fn due_charges(
    tx: &mut TenantTx,
    t: Tick,
) -> Result<Option<(Name, Vec<(InvoiceId, Money)>)>, StoreError> {
    let agreement = load_agreement(tx, t.agreement_id, true).await?;
    let Some(token) = agreement.autopay.clone() else {
        return Ok(None);
    };
    if !agreement.status.is_in_force() || agreement.retry_on.is_some_and(|on| on > t.date) {
        return Ok(None);
    }
    let org = tx.org();
    let rows = tx
        .fetch_all(
            "SELECT i.id, a.period_start AS billed_for FROM agreement_invoices a JOIN invoices i \
             ON i.organization_id = a.organization_id AND i.id = a.invoice_id \
             WHERE a.organization_id = $1 AND a.agreement_id = $2 AND i.status = 'issued' \
             UNION ALL SELECT i.id, v.due_on AS billed_for FROM maintenance_visits v JOIN invoices i \
             ON i.organization_id = v.organization_id AND i.id = v.invoice_id \
             WHERE v.organization_id = $1 AND v.agreement_id = $2 AND i.status = 'issued' \
             ORDER BY billed_for",
            args![org, agreement.id.as_uuid()],
        )
        .await?;
    let mut due = Vec::with_capacity(rows.len());
    for row in rows {
        let invoice = super::invoice::load(tx, InvoiceId::from_uuid(row.get("id")?), false).await?;
        // What a payment in progress has not already claimed.
        let open = super::invoice::collect::unreserved_balance(tx, &invoice).await?;
        if open.amount() > Decimal::ZERO {
            due.push((invoice.id, open));
        }
    }
    if due.is_empty() {
        if agreement.retry_on.is_some() {
            save(
                tx,
                Agreement {
                    failed_charges: 0,
                    retry_on: None,
                    ..agreement
                },
            )
            .await?;
        }
        return Ok(None);
    }
    Ok(Some((token, due)))
}

async fn charge_declined(
    tx: &mut TenantTx,
    t: Tick,
    invoice_id: InvoiceId,
    amount: Money,
    code: Option<String>,
) -> Result<(), StoreError> {
    let agreement = load_agreement(tx, t.agreement_id, true).await?;
    let failed = agreement.failed_charges + 1;
    let suspend = failed >= CHARGE_ATTEMPTS && agreement.status.is_in_force();
    let retry_on = t
        .date
        .checked_add_signed(Duration::days(i64::from(RETRY_DAYS)))
        .unwrap_or(t.date);
    let invoice = super::invoice::load(tx, invoice_id, false).await?;
    tx.enqueue(
        "agreement_payment_failed",
        &serde_json::json!({
            "agreementId": agreement.id,
            "planName": agreement.plan_name.as_str(),
            "customerId": agreement.customer_id,
            "invoiceId": invoice_id,
            "number": invoice.number,
            "amount": amount,
            "attempts": failed,
            "code": code,
            "suspended": suspend,
            "retryOn": (!suspend).then_some(retry_on),
        }),
    )
    .await?;
    let next = if suspend {
        Agreement {
            status: transition(&agreement, AgreementAction::Suspend)?,
            reason: Reason::parse(&format!(
                "the card was declined {failed} times in a row; suspended until it is paid"
            ))
            .ok(),
            failed_charges: failed,
            retry_on: None,
            ..agreement
        }
    } else {
        Agreement {
            failed_charges: failed,
            retry_on: Some(retry_on),
            ..agreement
        }
    };
    save(tx, next).await?;
    Ok(())
}

async fn generate_visits(tx: &mut TenantTx, t: Tick) -> Result<Vec<Visit>, StoreError> {
    let mut agreement = load_agreement(tx, t.agreement_id, true).await?;
    if !agreement.status.is_in_force() {
        return Ok(Vec::new());
    }
    let plan = load_plan(tx, agreement.plan_id).await?;
    let tz = load_organization(tx, false).await?.time_zone.tz();
    let lead = Duration::days(i64::from(agreement.lead_days));
    // A visit whose lead time began before the agreement was signed is not late: it is
    // generated on the first tick, as it should be.
    let signed_on = agreement
        .signature
        .as_ref()
        .map(|s| s.signed_at.with_timezone(&tz).date_naive())
        .unwrap_or(agreement.start_date);
    let mut generated = Vec::new();
    let orgid = tx.org();
    for schedule in agreement.schedules.iter_mut().filter(|s| !s.replaced) {
        let Some(visit) = plan.visits.get(schedule.slot as usize) else {
            continue;
        };
        let due = hestami_core::maintenance::due_occurrences(
            &schedule.schedule,
            schedule.next,
            t.date,
            agreement.lead_days,
            agreement.term_end,
        );
        for (index, date) in due {
            let deadline = schedule
                .schedule
                .window(tz, index)
                .map(|(_, end)| end)
                .unwrap_or_else(|| due_at(tz, date));
            let lead_began = date.checked_sub_signed(lead).unwrap_or(date);
            // Late: its lead time began on a day nobody generated it, while the agreement was
            // signed and the schedule existed (what a re-plan or a change of plan brings
            // within its lead time at once is not late).
            let late = lead_began < t.date
                && lead_began >= signed_on
                && schedule.planned_on.is_none_or(|on| lead_began >= on);
            for property_id in &agreement.property_ids {
                let job = super::job::create_due(
                    tx,
                    NewJob {
                        customer_id: agreement.customer_id,
                        property_id: *property_id,
                        trade: visit.trade.clone(),
                        priority: plan.benefits.priority.unwrap_or(Priority::Routine),
                        summary: summary(&agreement.plan_name, &visit.name),
                        description: Some(work(visit, date)?),
                        callback_of: None,
                        min_skill_level: visit.min_skill_level,
                        required_certifications: Vec::new(),
                    },
                    Some(deadline),
                )
                .await?;
                tx.execute(
                    "INSERT INTO maintenance_visits (organization_id, agreement_id, slot, revision, occurrence, \
                     property_id, due_on, job_id, generated_on, late, created_at, form_template_ids) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                    args![
                        orgid,
                        agreement.id.as_uuid(),
                        i64::from(schedule.slot),
                        i64::from(schedule.revision),
                        i64::from(index),
                        property_id.as_uuid(),
                        date,
                        job.id.as_uuid(),
                        t.date,
                        late,
                        tx.now(),
                        serde_json::to_string(&visit.forms)?
                    ],
                )
                .await?;
                generated.push(Visit {
                    slot: schedule.slot,
                    revision: schedule.revision,
                    occurrence: index,
                    property_id: *property_id,
                    due_on: date,
                    job_id: job.id,
                    generated_on: t.date,
                    late,
                });
            }
            schedule.next = index + 1;
        }
    }
    if generated.is_empty() {
        return Ok(generated);
    }
    if generated.iter().any(|v| v.late) {
        tracing::warn!(
            agreement.id = %agreement.id,
            caught_up = generated.iter().filter(|v| v.late).count(),
            "maintenance visits generated late: the timer caught up"
        );
    }
    save(tx, agreement).await?;
    Ok(generated)
}

/// "Gold HVAC: Spring tune-up", cut to a summary's length.
fn summary(plan: &Name, visit: &Name) -> Summary {
    let text: String = format!("{}: {}", plan.as_str(), visit.as_str())
        .chars()
        .take(200)
        .collect();
    Summary::parse(&text).unwrap_or_else(|_| {
        Summary::parse("Maintenance visit").unwrap_or_else(|_| unreachable!("a valid summary"))
    })
}

/// The work a visit's job carries: its date, window, duration and services.
fn work(visit: &PlanVisit, date: NaiveDate) -> Result<Description, StoreError> {
    let mut text = format!(
        "Maintenance visit due {date}, preferred {}–{}, about {} minutes.",
        visit.window.start.format("%H:%M"),
        visit.window.end.format("%H:%M"),
        visit.duration_minutes
    );
    for service in &visit.services {
        text.push_str(&format!(
            "\n- {} × service {}",
            service.quantity.normalize(),
            service.item_id
        ));
    }
    Description::parse(&text).map_err(|e| StoreError::Internal(format!("visit work: {e}")))
}

async fn bill_periods(tx: &mut TenantTx, t: Tick) -> Result<Vec<PeriodInvoice>, StoreError> {
    let mut agreement = load_agreement(tx, t.agreement_id, true).await?;
    if !agreement.status.is_in_force() {
        return Ok(Vec::new());
    }
    if agreement.billing == BillingFrequency::PerVisit {
        return bill_visits(tx, agreement, t.date).await;
    }
    let due: Vec<BillingPeriod> = agreement
        .unbilled()
        .into_iter()
        .filter(|p| p.start <= t.date)
        .collect();
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let at = price_at(&agreement)?;
    let mut billed = Vec::with_capacity(due.len());
    for period in due {
        let price = agreement.price_on(period.start);
        billed.push(issue_period(tx, &agreement, at, period, price, t.date).await?);
        agreement.billed_until = Some(period.end);
    }
    save(tx, agreement).await?;
    Ok(billed)
}

/// Issues the invoice of `period` of `agreement` at `price` per whole period, on `date`, through
/// the invoice path (the period and "(prorated)" on its one line), and records it as the
/// period's.
async fn issue_period(
    tx: &mut TenantTx,
    agreement: &Agreement,
    at: PriceAt,
    period: BillingPeriod,
    price: Money,
    date: NaiveDate,
) -> Result<PeriodInvoice, StoreError> {
    let last_day = period.end.pred_opt().unwrap_or(period.end);
    let label = format!(
        "{} — {} to {}{}",
        agreement.plan_name.as_str(),
        period.start,
        last_day,
        if period.is_partial() {
            " (prorated)"
        } else {
            ""
        }
    );
    let request = one_line(&label, period.amount(price))?;
    let invoice = super::invoice::issue_unattached(tx, at, &request, date).await?;
    tx.execute(
        "INSERT INTO agreement_invoices (organization_id, agreement_id, period_start, period_end, \
         invoice_id, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        args![
            tx.org(),
            agreement.id.as_uuid(),
            period.start,
            period.end,
            invoice.id.as_uuid(),
            tx.now()
        ],
    )
    .await?;
    Ok(PeriodInvoice {
        period_start: period.start,
        period_end: period.end,
        invoice_id: invoice.id,
        job_id: None,
    })
}

/// A quote request of one service line, `label` at `amount`.
fn one_line(label: &str, amount: Money) -> Result<QuoteRequest, StoreError> {
    let description = Name::parse(&label.chars().take(200).collect::<String>())
        .map_err(|e| StoreError::Internal(format!("an agreement's invoice line: {e}")))?;
    Ok(QuoteRequest {
        lines: vec![QuoteLine {
            source: LineSource::Custom {
                description,
                unit_price: amount,
                kind: ItemKind::Service,
            },
            quantity: Decimal::ONE,
            description: None,
        }],
        discount: None,
    })
}

/// The visits of an agreement whose job was completed and that are not billed yet: the job, the
/// plan visit, the property and the date.
async fn unbilled_visits(
    tx: &mut TenantTx,
    agreement_id: AgreementId,
) -> Result<Vec<(JobId, u32, PropertyId, NaiveDate)>, StoreError> {
    let rows = tx
        .fetch_all(
            "SELECT v.job_id, v.slot, v.property_id, v.due_on FROM maintenance_visits v \
             JOIN jobs j ON j.organization_id = v.organization_id AND j.id = v.job_id \
             WHERE v.organization_id = $1 AND v.agreement_id = $2 AND v.invoice_id IS NULL \
             AND j.status = 'completed' ORDER BY v.due_on, v.slot, v.property_id",
            args![tx.org(), agreement_id.as_uuid()],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok((
                JobId::from_uuid(row.get("job_id")?),
                u32::try_from(row.get::<i64>("slot")?)
                    .map_err(|_| StoreError::Internal("stored slot".into()))?,
                PropertyId::from_uuid(row.get("property_id")?),
                row.get("due_on")?,
            ))
        })
        .collect()
}

/// Bills a per-visit agreement's completed visits, each on its own job at the agreement's price
/// (the plan's per-visit price), once: the visit row records the invoice. The jobs move to
/// `invoiced` in the tick's next step, without the agreement's lock.
async fn bill_visits(
    tx: &mut TenantTx,
    agreement: Agreement,
    date: NaiveDate,
) -> Result<Vec<PeriodInvoice>, StoreError> {
    let unbilled = unbilled_visits(tx, agreement.id).await?;
    if unbilled.is_empty() {
        return Ok(Vec::new());
    }
    let plan = load_plan(tx, agreement.plan_id).await?;
    let mut billed = Vec::with_capacity(unbilled.len());
    for (job_id, slot, property_id, due_on) in unbilled {
        let visit = plan
            .visits
            .get(slot as usize)
            .map_or("visit", |v| v.name.as_str());
        let label = format!("{} — {visit} of {due_on}", agreement.plan_name.as_str());
        let at = PriceAt::agreement(agreement.customer_id, property_id);
        let invoice = super::invoice::issue_direct(
            tx,
            Some(job_id),
            at,
            &one_line(&label, agreement.price)?,
            date,
        )
        .await?;
        tx.execute(
            "UPDATE maintenance_visits SET invoice_id = $1 WHERE organization_id = $2 \
             AND agreement_id = $3 AND job_id = $4",
            args![
                invoice.id.as_uuid(),
                tx.org(),
                agreement.id.as_uuid(),
                job_id.as_uuid()
            ],
        )
        .await?;
        billed.push(PeriodInvoice {
            period_start: due_on,
            period_end: due_on.succ_opt().unwrap_or(due_on),
            invoice_id: invoice.id,
            job_id: Some(job_id),
        });
    }
    save(tx, agreement).await?;
    Ok(billed)
}

/// Moves the jobs of the visits a tick billed to `invoiced` (their own transaction: a job's
/// lock is never taken under the agreement's).
async fn invoice_visit_jobs(
    tx: &mut TenantTx,
    invoices: Vec<PeriodInvoice>,
) -> Result<(), StoreError> {
    for billed in invoices {
        super::invoice::sync_job(tx, billed.job_id).await?;
    }
    Ok(())
}

/// Called when a job is completed: a visit of a per-visit agreement is billed by the
/// agreement's next tick, which this makes due today. The agreement is locked after the job (a
/// tick never takes a job's lock under the agreement's).
pub(crate) async fn visit_completed(tx: &mut TenantTx, job_id: JobId) -> Result<(), StoreError> {
    let row = tx
        .fetch_optional(
            "SELECT agreement_id FROM maintenance_visits WHERE organization_id = $1 AND job_id = $2 \
             AND invoice_id IS NULL",
            args![tx.org(), job_id.as_uuid()],
        )
        .await?;
    let Some(row) = row else {
        return Ok(());
    };
    let agreement =
        load_agreement(tx, AgreementId::from_uuid(row.get("agreement_id")?), true).await?;
    if agreement.billing == BillingFrequency::PerVisit && agreement.status.is_in_force() {
        // Saving it makes its next attention today (the completed visit is unbilled) and arms
        // its timer for then.
        save(tx, agreement).await?;
    }
    Ok(())
}

/// Renewal and the term's end: an auto-renewing agreement renews on its renewal date (a new
/// term, at the plan's price of the day from the new term's first period, the customer told
/// through the outbox); another expires at its term's end. Either way the timer is armed for
/// the next attention date, or removed.
async fn close_term(tx: &mut TenantTx, t: Tick) -> Result<AgreementStatus, StoreError> {
    let agreement = load_agreement(tx, t.agreement_id, true).await?;
    if !agreement.status.is_in_force() {
        return Ok(agreement.status);
    }
    let next = match agreement.renewal_on() {
        Some(on) if on <= t.date => {
            let plan = load_plan(tx, agreement.plan_id).await?;
            // Counted from the start, not from the last term's end: no drift at month ends
            // (31 January, 28 February, 31 March).
            let term_end = rules::term_end(
                agreement.start_date,
                agreement.term_months * (agreement.renewals + 2),
            )
            .ok_or_else(|| StoreError::Internal("a term past the calendar".into()))?;
            let price = plan.price(agreement.billing).unwrap_or(agreement.price);
            let mut earlier_prices = agreement.earlier_prices.clone();
            if price != agreement.price {
                earlier_prices.push(EarlierPrice {
                    until: agreement.term_end,
                    price: agreement.price,
                });
            }
            tx.enqueue(
                "agreement_renewed",
                &serde_json::json!({
                    "agreementId": agreement.id,
                    "customerId": agreement.customer_id,
                    "planName": agreement.plan_name.as_str(),
                    "termEnd": term_end.pred_opt().unwrap_or(term_end),
                    "price": price.amount_text(),
                    "billing": agreement.billing,
                }),
            )
            .await?;
            Agreement {
                status: transition(&agreement, AgreementAction::Renew)?,
                price,
                earlier_prices,
                term_end,
                renewals: agreement.renewals + 1,
                ..agreement
            }
        }
        _ if t.date >= agreement.term_end => Agreement {
            status: transition(&agreement, AgreementAction::Expire)?,
            ..agreement
        },
        _ => return Ok(agreement.status),
    };
    Ok(save(tx, next).await?.status)
}

/// Where a job-less invoice (an agreement's period) is priced: the agreement's first property.
pub(crate) async fn price_at_of_invoice(
    tx: &mut TenantTx,
    invoice: &hestami_core::invoice::Invoice,
) -> Result<PriceAt, StoreError> {
    let org = tx.org();
    let row = tx
        .fetch_optional(
            "SELECT agreement_id FROM agreement_invoices WHERE organization_id = $1 AND invoice_id = $2",
            args![org, invoice.id.as_uuid()],
        )
        .await?
        .ok_or_else(|| StoreError::Internal("an invoice without a job or an agreement".into()))?;
    let agreement =
        load_agreement(tx, AgreementId::from_uuid(row.get("agreement_id")?), false).await?;
    price_at(&agreement)
}

/// Which agreement a timer name is for.
pub(crate) fn timer_agreement(name: &str) -> Option<AgreementId> {
    name.strip_prefix(TIMER_PREFIX)
        .and_then(|id| Uuid::try_parse(id).ok())
        .map(AgreementId::from_uuid)
}

/// What an agreement's timer needs to decide: whether it is in force, its version and its
/// next attention date.
pub(crate) async fn timer_state(
    tx: &mut TenantTx,
    id: AgreementId,
) -> Result<Option<(i64, NaiveDate)>, StoreError> {
    let org = tx.org();
    let row = tx
        .fetch_optional(
            "SELECT version, next_attention FROM maintenance_agreements \
             WHERE organization_id = $1 AND id = $2 AND status = 'active'",
            args![org, id.as_uuid()],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let attention: Option<NaiveDate> = row.get("next_attention")?;
    Ok(attention.map(|a| (row.get::<i64>("version").unwrap_or_default(), a)))
}

/// The time an agreement's timer should next fire for `date`.
pub(crate) fn fire_at(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    due_at(tz, date)
}

/// Filters of `maintenance/v1/list`.
#[derive(Clone, Debug, Default)]
pub struct AgreementFilter {
    /// Only in this status.
    pub status: Option<AgreementStatus>,
    /// Only this customer's.
    pub customer_id: Option<CustomerId>,
}

/// An agreement's visits and where each stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgreementVisit {
    /// The visit.
    #[serde(flatten)]
    pub visit: Visit,
    /// Its job's status.
    pub job_status: String,
    /// Due before today and still ahead (not done, not cancelled).
    pub overdue: bool,
}

/// An agreement's visits and their counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgreementVisits {
    /// Each generated visit, by date.
    pub items: Vec<AgreementVisit>,
    /// How many were generated.
    pub generated: u32,
    /// How many of those are done (completed, invoiced, paid or closed; a cancelled visit is
    /// neither done nor overdue).
    pub completed: u32,
    /// How many are overdue.
    pub overdue: u32,
    /// How many are still to come in the current term, not yet generated (per property).
    pub remaining: u32,
}

/// The recurring revenue of one billing frequency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecurringRevenue {
    /// The billing frequency.
    pub billing: BillingFrequency,
    /// How many active agreements are billed so.
    pub agreements: u32,
    /// What they bill per period, together.
    pub per_period: Money,
}

/// `maintenance/v1/report`: the agreements in force and what they bring.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceReport {
    /// The organization's today.
    pub today: NaiveDate,
    /// Active agreements.
    pub active: u32,
    /// Suspended agreements.
    pub suspended: u32,
    /// By billing frequency (active agreements).
    pub recurring: Vec<RecurringRevenue>,
    /// All of it as a monthly figure (a quarter's price ÷ 3, a year's ÷ 12, rounded).
    pub monthly_equivalent: Money,
    /// Visits of active and suspended agreements generated so far.
    pub generated: u32,
    /// Of which done.
    pub completed: u32,
    /// Of which overdue.
    pub overdue: u32,
    /// Visits falling within the next `withinDays` days not yet generated (active agreements).
    pub upcoming: u32,
    /// Active or suspended agreements whose term ends within `withinDays` days.
    pub renewals_due: Vec<RenewalDue>,
}

/// An agreement whose term ends soon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenewalDue {
    /// The agreement.
    pub agreement_id: AgreementId,
    /// The customer.
    pub customer_id: CustomerId,
    /// The plan's name.
    pub plan_name: Name,
    /// Active or suspended.
    pub status: AgreementStatus,
    /// Its term's last day.
    pub last_day: NaiveDate,
    /// When it renews on its own (`None`: it expires unless the office renews it).
    pub renews_on: Option<NaiveDate>,
}

/// A visit's job status, as stored.
fn parse_job_status(raw: &str) -> Result<JobStatus, StoreError> {
    JobStatus::parse(raw).map_err(|_| StoreError::Internal(format!("stored job status {raw:?}")))
}

/// Occurrences of the agreement's current schedules from their cursors, before `until` and the
/// term's end, per property.
fn remaining(agreement: &Agreement, until: NaiveDate) -> u32 {
    let end = until.min(agreement.term_end);
    let per_property: usize = agreement
        .cursors()
        .iter()
        .map(|c| {
            (c.next
                ..c.next
                    .saturating_add(hestami_core::maintenance::MAX_OCCURRENCES))
                .map_while(|i| c.schedule.occurrence(i).filter(|d| *d < end))
                .count()
        })
        .sum();
    u32::try_from(per_property * agreement.property_ids.len()).unwrap_or(u32::MAX)
}

impl Services {
    /// `maintenance/v1/report`: active and suspended agreements, their recurring revenue, their
    /// visits, and the renewals due within `within_days`.
    pub async fn maintenance_report(
        &self,
        caller: &Caller,
        within_days: u32,
    ) -> Result<MaintenanceReport, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let org = load_organization(tx, false).await?;
                let today = tx.now().with_timezone(&org.time_zone.tz()).date_naive();
                let horizon = today
                    .checked_add_signed(Duration::days(i64::from(within_days)))
                    .unwrap_or(today);
                let orgid = tx.org();
                let rows = tx
                    .fetch_all(
                        "SELECT body FROM maintenance_agreements WHERE organization_id = $1 \
                         AND status IN ('active', 'suspended') ORDER BY id",
                        args![orgid],
                    )
                    .await?;
                let agreements = rows
                    .iter()
                    .map(super::decode_body)
                    .collect::<Result<Vec<Agreement>, _>>()?;
                let zero = Money::zero(org.currency);
                let mut report = MaintenanceReport {
                    today,
                    active: 0,
                    suspended: 0,
                    recurring: Vec::new(),
                    monthly_equivalent: zero,
                    generated: 0,
                    completed: 0,
                    overdue: 0,
                    upcoming: 0,
                    renewals_due: Vec::new(),
                };
                let mut monthly = Decimal::ZERO;
                for a in &agreements {
                    if a.status == AgreementStatus::Suspended {
                        report.suspended += 1;
                    } else {
                        report.active += 1;
                        let price = a.price_on(today);
                        match report.recurring.iter_mut().find(|r| r.billing == a.billing) {
                            Some(r) => {
                                r.agreements += 1;
                                r.per_period = Money::new(
                                    r.per_period.amount() + price.amount(),
                                    price.currency(),
                                );
                            }
                            None => report.recurring.push(RecurringRevenue {
                                billing: a.billing,
                                agreements: 1,
                                per_period: price,
                            }),
                        }
                        if let Some(months) = a.billing.months() {
                            monthly += price.amount() / Decimal::from(months);
                        }
                        report.upcoming += remaining(a, horizon.succ_opt().unwrap_or(horizon));
                    }
                    if a.term_end.pred_opt().unwrap_or(a.term_end) <= horizon {
                        report.renewals_due.push(RenewalDue {
                            agreement_id: a.id,
                            customer_id: a.customer_id,
                            plan_name: a.plan_name.clone(),
                            status: a.status,
                            last_day: a.term_end.pred_opt().unwrap_or(a.term_end),
                            renews_on: a.renewal_on(),
                        });
                    }
                }
                report.renewals_due.sort_by_key(|r| r.last_day);
                report.monthly_equivalent = Money::new(monthly, org.currency).round();
                let visits = tx
                    .fetch_all(
                        "SELECT v.due_on, j.status FROM maintenance_visits v \
                         JOIN maintenance_agreements a ON a.organization_id = v.organization_id AND a.id = v.agreement_id \
                         JOIN jobs j ON j.organization_id = v.organization_id AND j.id = v.job_id \
                         WHERE v.organization_id = $1 AND a.status IN ('active', 'suspended')",
                        args![orgid],
                    )
                    .await?;
                for row in visits {
                    let due_on: NaiveDate = row.get("due_on")?;
                    let status = parse_job_status(&row.get::<String>("status")?)?;
                    report.generated += 1;
                    report.completed += u32::from(status.is_work_done());
                    report.overdue += u32::from(status.is_pending() && due_on < today);
                }
                Ok(report)
            })
        })
        .await
    }

    /// `maintenance/v1/getPlan`.
    pub async fn maintenance_plan(
        &self,
        caller: &Caller,
        id: MaintenancePlanId,
    ) -> Result<Plan, StoreError> {
        self.read(caller, move |tx| Box::pin(load_plan(tx, id)))
            .await
    }

    /// `maintenance/v1/listPlans`: every plan, by name.
    pub async fn maintenance_plans(&self, caller: &Caller) -> Result<Vec<Plan>, StoreError> {
        self.read(caller, |tx| {
            Box::pin(async move {
                let org = tx.org();
                let rows = tx
                    .fetch_all(
                        "SELECT body FROM maintenance_plans WHERE organization_id = $1 ORDER BY name",
                        args![org],
                    )
                    .await?;
                rows.iter().map(super::decode_body).collect()
            })
        })
        .await
    }

    /// `maintenance/v1/get`.
    pub async fn agreement(
        &self,
        caller: &Caller,
        id: AgreementId,
    ) -> Result<Agreement, StoreError> {
        self.read(caller, move |tx| Box::pin(load_agreement(tx, id, false)))
            .await
    }

    /// `maintenance/v1/list`: agreements, oldest first, by status and customer.
    pub async fn agreements(
        &self,
        caller: &Caller,
        filter: AgreementFilter,
        page: PageRequest,
    ) -> Result<Page<Agreement>, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let org = tx.org();
                let rows = tx
                    .fetch_all(
                        "SELECT body FROM maintenance_agreements WHERE organization_id = $1 \
                         AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR customer_id = $3) \
                         AND ($4 IS NULL OR id > $4) ORDER BY id LIMIT $5",
                        args![
                            org,
                            filter.status.map(status_str),
                            filter.customer_id.map(|c| c.as_uuid()),
                            page.after,
                            i64::from(page.limit) + 1
                        ],
                    )
                    .await?;
                let items = rows
                    .iter()
                    .map(super::decode_body)
                    .collect::<Result<Vec<Agreement>, _>>()?;
                Ok(page.page(items, |a| a.id.as_uuid()))
            })
        })
        .await
    }

    /// `maintenance/v1/visits`: the visits an agreement generated, by date, with their jobs'
    /// status; overdue when due before `today` (the organization's) and not done.
    pub async fn agreement_visits(
        &self,
        caller: &Caller,
        id: AgreementId,
    ) -> Result<AgreementVisits, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let agreement = load_agreement(tx, id, false).await?;
                let today = super::invoice::local_today(tx).await?;
                let org = tx.org();
                let rows = tx
                    .fetch_all(
                        "SELECT v.slot, v.revision, v.occurrence, v.property_id, v.due_on, v.job_id, \
                         v.generated_on, v.late, j.status FROM maintenance_visits v \
                         JOIN jobs j ON j.organization_id = v.organization_id AND j.id = v.job_id \
                         WHERE v.organization_id = $1 AND v.agreement_id = $2 \
                         ORDER BY v.due_on, v.slot, v.revision, v.occurrence, v.property_id",
                        args![org, id.as_uuid()],
                    )
                    .await?;
                let mut visits = Vec::with_capacity(rows.len());
                for row in rows {
                    let number = |column: &str| -> Result<u32, StoreError> {
                        u32::try_from(row.get::<i64>(column)?)
                            .map_err(|_| StoreError::Internal(format!("stored {column}")))
                    };
                    let due_on: NaiveDate = row.get("due_on")?;
                    let job_status: String = row.get("status")?;
                    let pending = parse_job_status(&job_status)?.is_pending();
                    visits.push(AgreementVisit {
                        visit: Visit {
                            slot: number("slot")?,
                            revision: number("revision")?,
                            occurrence: number("occurrence")?,
                            property_id: PropertyId::from_uuid(row.get("property_id")?),
                            due_on,
                            job_id: JobId::from_uuid(row.get("job_id")?),
                            generated_on: row.get("generated_on")?,
                            late: row.get("late")?,
                        },
                        overdue: due_on < today && pending,
                        job_status,
                    });
                }
                let count = |f: &dyn Fn(&AgreementVisit) -> bool| {
                    u32::try_from(visits.iter().filter(|v| f(v)).count()).unwrap_or(u32::MAX)
                };
                Ok(AgreementVisits {
                    generated: count(&|_| true),
                    completed: count(&|v| {
                        JobStatus::parse(&v.job_status).is_ok_and(JobStatus::is_work_done)
                    }),
                    overdue: count(&|v| v.overdue),
                    remaining: if agreement.status.is_in_force()
                        || agreement.status == AgreementStatus::Suspended
                    {
                        remaining(&agreement, agreement.term_end)
                    } else {
                        0
                    },
                    items: visits,
                })
            })
        })
        .await
    }

    /// `maintenance/v1/invoices`: the invoices of an agreement's billing periods, in order.
    pub async fn agreement_invoices(
        &self,
        caller: &Caller,
        id: AgreementId,
    ) -> Result<Vec<PeriodInvoice>, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                load_agreement(tx, id, false).await?;
                let org = tx.org();
                let rows = tx
                    .fetch_all(
                        "SELECT period_start, period_end, invoice_id FROM agreement_invoices \
                         WHERE organization_id = $1 AND agreement_id = $2 ORDER BY period_start",
                        args![org, id.as_uuid()],
                    )
                    .await?;
                let mut invoices = rows
                    .iter()
                    .map(|row| {
                        Ok(PeriodInvoice {
                            period_start: row.get("period_start")?,
                            period_end: row.get("period_end")?,
                            invoice_id: InvoiceId::from_uuid(row.get("invoice_id")?),
                            job_id: None,
                        })
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?;
                // A per-visit agreement's invoices: one per visit, for its day.
                let visits = tx
                    .fetch_all(
                        "SELECT due_on, invoice_id, job_id FROM maintenance_visits WHERE organization_id = $1 \
                         AND agreement_id = $2 AND invoice_id IS NOT NULL",
                        args![org, id.as_uuid()],
                    )
                    .await?;
                for row in visits {
                    let day: NaiveDate = row.get("due_on")?;
                    invoices.push(PeriodInvoice {
                        period_start: day,
                        period_end: day.succ_opt().unwrap_or(day),
                        invoice_id: InvoiceId::from_uuid(row.get("invoice_id")?),
                        job_id: Some(JobId::from_uuid(row.get("job_id")?)),
                    });
                }
                invoices.sort_by_key(|p| p.period_start);
                Ok(invoices)
            })
        })
        .await
    }
}
