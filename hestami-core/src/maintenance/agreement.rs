//! Plans and agreements: what a plan's visit is, where an agreement's schedules start, its
//! calendar billing periods with their prorated amounts, and when an agreement next needs
//! attention. Pure, like the rest of [`crate::maintenance`].
//!
//! **Billing periods follow the calendar.** An agreement billed monthly that starts on the
//! 15th is billed for the rest of that month (prorated by days), then for each whole month on
//! the 1st, and its last period ends with the term, prorated again: the customer's invoices
//! fall on the same day as everyone else's, and a day of service costs the same in every
//! period of that length. Quarterly and annual periods count from the first of the start's
//! month.
//!
//! **Cancelling credits the unused days.** A cancellation takes effect at the end of the day it
//! is made; every billed period with days after that is credited for their share of the days it
//! billed ([`unused_share`]), as a quantity of its line, so its taxes are credited with it.

use chrono::{Datelike, Duration, Months, NaiveDate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{BillingFrequency, DayWindow, Recurrence, Schedule};
use crate::Invalid;
use crate::money::Money;

/// The longest term, in months.
pub const MAX_TERM_MONTHS: u32 = 60;
/// The longest lead time, in days.
pub const MAX_LEAD_DAYS: u32 = 180;

/// When a plan's visit first falls: the agreement's start (the rule counts from it), or the
/// first of the months `start_month + k × every` (counted from `start_month` of the start's
/// year) whose visit is on or after it — "every 6 months starting April" is
/// `{every: 6, startMonth: 4}`, and an agreement signed in July gets its first visit in
/// October.
pub fn schedule_from(
    agreement_start: NaiveDate,
    rule: Recurrence,
    start_month: Option<u8>,
    window: DayWindow,
) -> Schedule {
    let every = match rule {
        Recurrence::MonthlyOnDay { every, .. } | Recurrence::MonthlyOnWeekday { every, .. } => {
            Some(u32::from(every))
        }
        Recurrence::Weekly { .. } => None,
    };
    let start = match (every, start_month) {
        (Some(every), Some(month)) if (1..=12).contains(&month) => {
            aligned_start(agreement_start, rule, every, u32::from(month), window)
        }
        _ => agreement_start,
    };
    Schedule {
        start,
        rule,
        window,
    }
}

/// The first of the first aligned month whose occurrence is on or after `from`.
fn aligned_start(
    from: NaiveDate,
    rule: Recurrence,
    every: u32,
    month: u32,
    window: DayWindow,
) -> NaiveDate {
    let Some(first_of) = from.with_day(1) else {
        return from;
    };
    // Months since the last aligned month: the cycle runs through `month` of `from`'s year.
    let behind = (i64::from(from.month()) - i64::from(month)).rem_euclid(i64::from(every));
    let ahead = u32::try_from((i64::from(every) - behind) % i64::from(every)).unwrap_or(0);
    let mut candidate = match first_of.checked_add_months(Months::new(ahead)) {
        Some(c) => c,
        None => return from,
    };
    for _ in 0..2 {
        let probe = Schedule {
            start: candidate,
            rule,
            window,
        };
        match probe.occurrence(0) {
            Some(date) if date >= from && date.month() == candidate.month() => return candidate,
            _ => match candidate.checked_add_months(Months::new(every)) {
                Some(next) => candidate = next,
                None => return from,
            },
        }
    }
    candidate
}

/// The term's end (the day after its last day).
pub fn term_end(start: NaiveDate, term_months: u32) -> Option<NaiveDate> {
    start.checked_add_months(Months::new(term_months))
}

/// The places a credited share is rounded to: the precision of a quantity.
pub const SHARE_DECIMALS: u32 = 4;

/// The share of a billed stretch `[start, end)` left unused by a cancellation on `day`
/// (effective at its end): `days after day ÷ days billed`, rounded half to even to
/// [`SHARE_DECIMALS`] places, with the number of unused days. `None` when no billed day is
/// left.
pub fn unused_share(start: NaiveDate, end: NaiveDate, day: NaiveDate) -> Option<(Decimal, u32)> {
    let billed = (end - start).num_days();
    let unused = (end - day.succ_opt()?.max(start)).num_days();
    if billed <= 0 || unused <= 0 {
        return None;
    }
    let share = (Decimal::from(unused) / Decimal::from(billed)).round_dp_with_strategy(
        SHARE_DECIMALS,
        rust_decimal::RoundingStrategy::MidpointNearestEven,
    );
    Some((share, u32::try_from(unused).ok()?))
}

/// Checks a term and a lead time.
pub fn check_term(term_months: u32, lead_days: u32) -> Result<(), Invalid> {
    if !(1..=MAX_TERM_MONTHS).contains(&term_months) {
        return Err(Invalid::new(
            "out_of_range",
            format!("a term is 1 to {MAX_TERM_MONTHS} months"),
        ));
    }
    if lead_days > MAX_LEAD_DAYS {
        return Err(Invalid::new(
            "out_of_range",
            format!("a lead time is 0 to {MAX_LEAD_DAYS} days"),
        ));
    }
    Ok(())
}

/// One billing period of an agreement: the days it covers, within the calendar period it
/// belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BillingPeriod {
    /// Its number in the term, from 0.
    pub index: u32,
    /// The first day covered.
    pub start: NaiveDate,
    /// The day after the last day covered.
    pub end: NaiveDate,
    /// The calendar period's first day.
    pub full_start: NaiveDate,
    /// The day after the calendar period's last day.
    pub full_end: NaiveDate,
}

impl BillingPeriod {
    /// Whether it covers less than its calendar period.
    pub fn is_partial(&self) -> bool {
        self.start > self.full_start || self.end < self.full_end
    }

    /// What it costs at `price` per whole period: `price × covered days ÷ period days`,
    /// rounded half to even to the minor unit (the whole price when it is whole).
    pub fn amount(&self, price: Money) -> Money {
        let days = (self.full_end - self.full_start).num_days();
        let covered = (self.end - self.start).num_days();
        if !self.is_partial() || days <= 0 {
            return price;
        }
        Money::new(
            price.amount() * Decimal::from(covered) / Decimal::from(days),
            price.currency(),
        )
        .round()
    }
}

/// The billing periods from `start` to `end` (the term's end), calendar-aligned, the first and
/// last prorated when they are partial. Empty for per-visit billing.
pub fn billing_periods(
    start: NaiveDate,
    end: NaiveDate,
    frequency: BillingFrequency,
) -> Vec<BillingPeriod> {
    let (Some(step), Some(anchor)) = (frequency.months(), start.with_day(1)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    // Renewals extend `end` term after term: bounded by the calendar, not by one term.
    for index in 0..super::MAX_OCCURRENCES {
        let (Some(full_start), Some(full_end)) = (
            anchor.checked_add_months(Months::new(index * step)),
            anchor.checked_add_months(Months::new((index + 1) * step)),
        ) else {
            break;
        };
        if full_start >= end {
            break;
        }
        out.push(BillingPeriod {
            index: u32::try_from(out.len()).unwrap_or(u32::MAX),
            start: full_start.max(start),
            end: full_end.min(end),
            full_start,
            full_end,
        });
    }
    out
}

/// A schedule of an agreement and how far its visits are generated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cursor {
    /// The schedule.
    pub schedule: Schedule,
    /// The first occurrence not yet generated.
    pub next: u32,
}

/// The first local date an agreement needs attention on: its next visit's date less the lead
/// time, its next unbilled period's start, or its renewal date — the earliest of those before
/// the term's end, or the term's end itself. `None` once nothing is left.
pub fn next_attention(
    cursors: &[Cursor],
    lead_days: u32,
    next_period: Option<BillingPeriod>,
    renewal_on: Option<NaiveDate>,
    term_end: NaiveDate,
) -> Option<NaiveDate> {
    let lead = Duration::days(i64::from(lead_days));
    let visits = cursors.iter().filter_map(|c| {
        c.schedule
            .occurrence(c.next)
            .filter(|date| *date < term_end)
            .map(|date| date.checked_sub_signed(lead).unwrap_or(date))
    });
    visits
        .chain(next_period.map(|p| p.start))
        .chain(renewal_on)
        .chain(std::iter::once(term_end))
        .min()
}

#[cfg(test)]
mod tests;
