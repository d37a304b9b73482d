//! Maintenance agreements: when their visits fall, what a billing period covers, and the
//! agreement's life. Pure: no clock is read; every function takes the dates it works on.
//!
//! **Recurrence is written here as data, not with an RFC 5545 library.** The rules a service
//! agreement needs are few — every N months on a day of the month or on the nth weekday, every N
//! weeks on a weekday — and the one property that matters most, *no drift*, is easiest to prove
//! when each occurrence is computed from the start and its index rather than from the previous
//! occurrence: the 12th monthly visit of an agreement that starts on 31 January is on the 31st
//! (or the month's last day) however many short months came between, and a visit's local time
//! stays 09:00 across both daylight-saving changes because dates are computed in local dates and
//! converted to instants only at the end ([`Schedule::window`]). An RRULE library would add a
//! parser and a rule language the API would then have to constrain back to these shapes.
//!
//! **An occurrence's identity is its index**: the nth visit of an agreement is the same visit
//! whenever and however often it is computed, which is what makes generating it idempotent (the
//! store keys the job by agreement and index).

use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::Invalid;

pub mod agreement;

/// The most occurrences a schedule is asked for at once.
pub const MAX_OCCURRENCES: u32 = 10_000;

/// Which weekday of the month: the first to the fourth, or the last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Nth {
    /// The first.
    First,
    /// The second.
    Second,
    /// The third.
    Third,
    /// The fourth.
    Fourth,
    /// The last (the fourth or the fifth).
    Last,
}

/// How visits recur.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum Recurrence {
    /// Every `every` months on `day` of the month (1–31; a shorter month's last day when it has
    /// no such day): "every 6 months starting April", "monthly on the 15th".
    MonthlyOnDay {
        /// Months between visits, 1 to 24.
        every: u8,
        /// The day of the month, 1 to 31.
        day: u8,
    },
    /// Every `every` months on the `nth` `weekday`: "quarterly on the first Monday".
    MonthlyOnWeekday {
        /// Months between visits, 1 to 24.
        every: u8,
        /// Which one in the month.
        nth: Nth,
        /// The weekday.
        weekday: Weekday,
    },
    /// Every `every` weeks on `weekday`: "every 4 weeks on Tuesday".
    Weekly {
        /// Weeks between visits, 1 to 52.
        every: u8,
        /// The weekday.
        weekday: Weekday,
    },
}

impl Recurrence {
    /// Checks the bounds.
    pub fn validate(&self) -> Result<(), Invalid> {
        let (every, max) = match self {
            Self::MonthlyOnDay { every, .. } | Self::MonthlyOnWeekday { every, .. } => (*every, 24),
            Self::Weekly { every, .. } => (*every, 52),
        };
        if every == 0 || every > max {
            return Err(Invalid::new(
                "out_of_range",
                format!("a recurrence repeats every 1 to {max}"),
            ));
        }
        if let Self::MonthlyOnDay { day, .. } = self
            && !(1..=31).contains(day)
        {
            return Err(Invalid::new(
                "out_of_range",
                "a day of the month is 1 to 31",
            ));
        }
        Ok(())
    }
}

/// The local time of day a visit is wanted, start and end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DayWindow {
    /// From.
    pub start: NaiveTime,
    /// Until (after `start`, the same day).
    pub end: NaiveTime,
}

impl DayWindow {
    /// Accepts `start < end`.
    pub fn new(start: NaiveTime, end: NaiveTime) -> Result<Self, Invalid> {
        if start < end {
            Ok(Self { start, end })
        } else {
            Err(Invalid::new(
                "window_order",
                "a preferred window ends after it starts, the same day",
            ))
        }
    }
}

/// When an agreement's visits fall: from `start`, by `rule`, at `window` local time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    /// The first month (or week) the rule counts from; no visit falls before it.
    pub start: NaiveDate,
    /// How visits recur.
    pub rule: Recurrence,
    /// The preferred local time of day.
    pub window: DayWindow,
}

/// The `nth` `weekday` of `year`-`month`.
fn nth_weekday(year: i32, month: u32, nth: Nth, weekday: Weekday) -> Option<NaiveDate> {
    let n = match nth {
        Nth::First => 1,
        Nth::Second => 2,
        Nth::Third => 3,
        Nth::Fourth => 4,
        Nth::Last => {
            let next =
                NaiveDate::from_ymd_opt(year, month, 1)?.checked_add_months(Months::new(1))?;
            let last = next.pred_opt()?;
            let back =
                (last.weekday().num_days_from_monday() + 7 - weekday.num_days_from_monday()) % 7;
            return last.checked_sub_signed(Duration::days(i64::from(back)));
        }
    };
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, n)
}

/// `day` of `year`-`month`, or the month's last day when it is shorter.
fn day_of_month(year: i32, month: u32, day: u8) -> Option<NaiveDate> {
    let first = NaiveDate::from_ymd_opt(year, month, 1)?;
    let last = first.checked_add_months(Months::new(1))?.pred_opt()?;
    NaiveDate::from_ymd_opt(year, month, u32::from(day).min(last.day()))
}

impl Schedule {
    /// The date of occurrence `index` (0 is the first), computed from the start — never from
    /// the occurrence before — so nothing drifts. `None` past the calendar's end.
    pub fn occurrence(&self, index: u32) -> Option<NaiveDate> {
        match self.rule {
            Recurrence::MonthlyOnDay { every, day } => {
                // The first is in the start's month, or the next one if the day has passed.
                let base = self.start.with_day(1)?;
                let in_start_month = day_of_month(base.year(), base.month(), day)?;
                let skip = u32::from(in_start_month < self.start);
                let month = base
                    .checked_add_months(Months::new(skip + index.checked_mul(u32::from(every))?))?;
                day_of_month(month.year(), month.month(), day)
            }
            Recurrence::MonthlyOnWeekday {
                every,
                nth,
                weekday,
            } => {
                let base = self.start.with_day(1)?;
                let in_start_month = nth_weekday(base.year(), base.month(), nth, weekday)?;
                let skip = u32::from(in_start_month < self.start);
                let month = base
                    .checked_add_months(Months::new(skip + index.checked_mul(u32::from(every))?))?;
                nth_weekday(month.year(), month.month(), nth, weekday)
            }
            Recurrence::Weekly { every, weekday } => {
                let ahead = (weekday.num_days_from_monday() + 7
                    - self.start.weekday().num_days_from_monday())
                    % 7;
                let first = self
                    .start
                    .checked_add_signed(Duration::days(i64::from(ahead)))?;
                first.checked_add_signed(Duration::try_weeks(i64::from(index) * i64::from(every))?)
            }
        }
    }

    /// The occurrences (index and date) on or after `from` and before `until`, in order, at
    /// most [`MAX_OCCURRENCES`].
    pub fn between(&self, from: NaiveDate, until: NaiveDate) -> Vec<(u32, NaiveDate)> {
        let mut found = Vec::new();
        for index in 0..MAX_OCCURRENCES {
            let Some(date) = self.occurrence(index) else {
                break;
            };
            if date >= until {
                break;
            }
            if date >= from {
                found.push((index, date));
            }
        }
        found
    }

    /// The instants of occurrence `index`'s preferred window in `tz` (a local time that a
    /// daylight-saving change skips starts when the clock jumps).
    pub fn window(&self, tz: Tz, index: u32) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let date = self.occurrence(index)?;
        Some((
            crate::schedule::local_to_utc(tz, date.and_time(self.window.start)),
            crate::schedule::local_to_utc(tz, date.and_time(self.window.end)),
        ))
    }
}

/// How often an agreement is billed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BillingFrequency {
    /// Each month.
    Monthly,
    /// Each three months.
    Quarterly,
    /// Each year.
    Annually,
    /// Each visit, when it is completed.
    PerVisit,
}

impl BillingFrequency {
    /// Months per period (none: per visit).
    pub fn months(self) -> Option<u32> {
        match self {
            Self::Monthly => Some(1),
            Self::Quarterly => Some(3),
            Self::Annually => Some(12),
            Self::PerVisit => None,
        }
    }
}

/// Where an agreement is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgreementStatus {
    /// Written, not yet in force.
    Draft,
    /// In force: visits are generated and periods billed.
    Active,
    /// Paused (unpaid): no visits generated, no periods billed.
    Suspended,
    /// Its term ended without renewal.
    Expired,
    /// Ended early.
    Cancelled,
}

/// What is done to an agreement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgreementAction {
    /// Put it in force (signed).
    Activate,
    /// Pause it.
    Suspend,
    /// Resume a paused one.
    Resume,
    /// Its term ended.
    Expire,
    /// End it early.
    Cancel,
    /// A new term.
    Renew,
}

/// Why an agreement refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("an agreement that is {from:?} cannot be {action:?}")]
pub struct AgreementTransitionError {
    /// Its status.
    pub from: AgreementStatus,
    /// What was asked.
    pub action: AgreementAction,
}

impl AgreementStatus {
    /// The status `action` leaves, or why not.
    pub fn decide(self, action: AgreementAction) -> Result<Self, AgreementTransitionError> {
        use AgreementAction as A;
        match (self, action) {
            (Self::Draft, A::Activate) | (Self::Suspended, A::Resume) => Ok(Self::Active),
            (Self::Active, A::Suspend) => Ok(Self::Suspended),
            (Self::Active | Self::Suspended, A::Expire) => Ok(Self::Expired),
            (Self::Draft | Self::Active | Self::Suspended, A::Cancel) => Ok(Self::Cancelled),
            (Self::Active | Self::Expired, A::Renew) => Ok(Self::Active),
            _ => Err(AgreementTransitionError { from: self, action }),
        }
    }

    /// Whether visits are generated and periods billed.
    pub fn is_in_force(self) -> bool {
        self == Self::Active
    }
}

/// The occurrences to generate now: those whose date is within `lead_days` of `today` (or
/// already past: a server that was down catches them up), from index `next` (the first not yet
/// generated), before the term's end.
pub fn due_occurrences(
    schedule: &Schedule,
    next: u32,
    today: NaiveDate,
    lead_days: u32,
    term_end: NaiveDate,
) -> Vec<(u32, NaiveDate)> {
    let horizon = today
        .checked_add_signed(Duration::days(i64::from(lead_days)))
        .unwrap_or(NaiveDate::MAX);
    let mut due = Vec::new();
    for index in next..next.saturating_add(MAX_OCCURRENCES) {
        let Some(date) = schedule.occurrence(index) else {
            break;
        };
        if date > horizon || date >= term_end {
            break;
        }
        due.push((index, date));
    }
    due
}

#[cfg(test)]
mod tests;
