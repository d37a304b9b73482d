//! Billing periods tile the term with nothing billed twice; aligned schedules start where the
//! plan says; the next attention date is the earliest thing due.
use super::*;

use chrono::NaiveTime;
use proptest::prelude::*;

use crate::maintenance::Nth;
use crate::org::Currency;

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("a date")
}

fn window() -> DayWindow {
    DayWindow::new(
        NaiveTime::from_hms_opt(9, 0, 0).expect("time"),
        NaiveTime::from_hms_opt(11, 0, 0).expect("time"),
    )
    .expect("ordered")
}

fn usd(amount: &str) -> Money {
    Money::new(
        amount.parse().expect("a decimal"),
        Currency::parse("USD").expect("USD"),
    )
}

#[test]
fn a_mid_month_start_is_prorated_then_billed_on_the_first() {
    let start = date(2027, 1, 15);
    let periods = billing_periods(
        start,
        term_end(start, 12).expect("end"),
        BillingFrequency::Monthly,
    );
    assert_eq!(periods.len(), 13);
    assert_eq!(periods[0].start, start);
    assert_eq!(periods[0].end, date(2027, 2, 1));
    // 17 of January's 31 days.
    assert_eq!(periods[0].amount(usd("31.00")), usd("17.00"));
    assert!(!periods[1].is_partial());
    assert_eq!(periods[1].amount(usd("31.00")), usd("31.00"));
    let last = periods[12];
    assert_eq!(
        (last.start, last.end),
        (date(2028, 1, 1), date(2028, 1, 15))
    );
    assert_eq!(last.amount(usd("31.00")), usd("14.00"));
}

#[test]
fn a_start_on_the_first_is_twelve_whole_months() {
    let start = date(2027, 3, 1);
    let periods = billing_periods(
        start,
        term_end(start, 12).expect("end"),
        BillingFrequency::Monthly,
    );
    assert_eq!(periods.len(), 12);
    assert!(periods.iter().all(|p| !p.is_partial()));
    let quarterly = billing_periods(
        start,
        term_end(start, 12).expect("end"),
        BillingFrequency::Quarterly,
    );
    assert_eq!(quarterly.len(), 4);
    assert!(billing_periods(start, date(2028, 3, 1), BillingFrequency::PerVisit).is_empty());
}

#[test]
fn every_six_months_starting_april_signed_in_july_starts_in_october() {
    let rule = Recurrence::MonthlyOnDay { every: 6, day: 15 };
    let s = schedule_from(date(2027, 7, 3), rule, Some(4), window());
    assert_eq!(s.occurrence(0), Some(date(2027, 10, 15)));
    assert_eq!(s.occurrence(1), Some(date(2028, 4, 15)));
    // Signed in April after the 15th: October.
    let s = schedule_from(date(2027, 4, 20), rule, Some(4), window());
    assert_eq!(s.occurrence(0), Some(date(2027, 10, 15)));
    // Signed before: this April.
    let s = schedule_from(date(2027, 4, 2), rule, Some(4), window());
    assert_eq!(s.occurrence(0), Some(date(2027, 4, 15)));
}

#[test]
fn quarterly_on_the_first_monday_from_january() {
    let rule = Recurrence::MonthlyOnWeekday {
        every: 3,
        nth: Nth::First,
        weekday: chrono::Weekday::Mon,
    };
    let s = schedule_from(date(2027, 2, 10), rule, Some(1), window());
    // April, July, October: the first Mondays.
    assert_eq!(s.occurrence(0), Some(date(2027, 4, 5)));
    assert_eq!(s.occurrence(1), Some(date(2027, 7, 5)));
    assert_eq!(s.occurrence(2), Some(date(2027, 10, 4)));
}

#[test]
fn the_next_attention_is_the_earliest_due() {
    let start = date(2027, 1, 1);
    let rule = Recurrence::MonthlyOnDay { every: 1, day: 20 };
    let cursor = Cursor {
        schedule: schedule_from(start, rule, None, window()),
        next: 0,
    };
    let end = term_end(start, 12).expect("end");
    let periods = billing_periods(start, end, BillingFrequency::Monthly);
    // The visit of 20 January, 30 days ahead: 21 December; the period: 1 January.
    assert_eq!(
        next_attention(&[cursor], 30, periods.first().copied(), None, end),
        Some(date(2026, 12, 21))
    );
    assert_eq!(
        next_attention(&[cursor], 0, periods.get(1).copied(), None, end),
        Some(date(2027, 1, 20))
    );
    // Nothing left: the term's end.
    let done = Cursor { next: 12, ..cursor };
    assert_eq!(next_attention(&[done], 0, None, None, end), Some(end));
}

#[test]
fn cancelling_leaves_the_days_after_the_day_unused() {
    // An annual period of 2027, cancelled on 31 March: April to December, 275 of 365 days.
    let (share, days) =
        unused_share(date(2027, 1, 1), date(2028, 1, 1), date(2027, 3, 31)).expect("unused");
    assert_eq!((share, days), (Decimal::new(7534, 4), 275));
    // A period that began after the day is unused in full; one that ended with it, not at all.
    assert_eq!(
        unused_share(date(2027, 4, 1), date(2027, 5, 1), date(2027, 3, 31)),
        Some((Decimal::ONE, 30))
    );
    assert_eq!(
        unused_share(date(2027, 3, 1), date(2027, 4, 1), date(2027, 3, 31)),
        None
    );
}

#[test]
fn terms_and_lead_times_are_bounded() {
    assert!(check_term(12, 30).is_ok());
    assert!(check_term(0, 30).is_err());
    assert!(check_term(61, 30).is_err());
    assert!(check_term(12, 181).is_err());
}

proptest! {
    /// The periods tile the term: contiguous, within their calendar periods, none empty, and
    /// their amounts never exceed the price.
    #[test]
    fn periods_tile_the_term(
        offset in 0i64..3000,
        months in 1u32..=60,
        which in 0usize..3,
        cents in 1i64..1_000_000,
    ) {
        let start = date(2024, 1, 1) + Duration::days(offset);
        let end = term_end(start, months).expect("end");
        let frequency = [BillingFrequency::Monthly, BillingFrequency::Quarterly, BillingFrequency::Annually][which];
        let periods = billing_periods(start, end, frequency);
        prop_assert!(!periods.is_empty());
        prop_assert_eq!(periods[0].start, start);
        prop_assert_eq!(periods[periods.len() - 1].end, end);
        let price = Money::new(Decimal::new(cents, 2), Currency::parse("USD").expect("USD"));
        for (i, pair) in periods.windows(2).enumerate() {
            prop_assert_eq!(pair[0].end, pair[1].start);
            prop_assert_eq!(pair[0].index as usize, i);
            prop_assert!(!pair[1].is_partial() || i + 2 == periods.len());
        }
        for p in &periods {
            prop_assert!(p.start < p.end);
            prop_assert!(p.full_start <= p.start && p.end <= p.full_end);
            prop_assert_eq!(p.full_start.day(), 1);
            prop_assert!(p.amount(price).amount() <= price.amount());
        }
    }

    /// A prorated period is never more than the price, never negative, and costs less as its
    /// first day moves later.
    #[test]
    fn proration_is_bounded_and_monotone(cents in 0i64..1_000_000, first in 1u32..=31, later in 0u32..10) {
        let price = Money::new(Decimal::new(cents, 2), Currency::parse("USD").expect("USD"));
        let march = |day: u32| BillingPeriod {
            index: 0,
            start: date(2027, 3, day.min(31)),
            end: date(2027, 4, 1),
            full_start: date(2027, 3, 1),
            full_end: date(2027, 4, 1),
        };
        let a = march(first).amount(price);
        let b = march(first + later).amount(price);
        prop_assert!(a.amount() <= price.amount() && !a.is_negative());
        prop_assert!(b.amount() <= a.amount());
    }

    /// A share is between 0 and 1, and grows as the cancellation comes earlier.
    #[test]
    fn unused_shares_are_bounded_and_monotone(len in 1i64..400, at in -5i64..400, earlier in 0i64..30) {
        let start = date(2027, 1, 1);
        let end = start + Duration::days(len);
        let day = start + Duration::days(at);
        let share = |d: NaiveDate| unused_share(start, end, d).map_or(Decimal::ZERO, |(s, _)| s);
        prop_assert!(share(day) >= Decimal::ZERO && share(day) <= Decimal::ONE);
        prop_assert!(share(day - Duration::days(earlier)) >= share(day));
    }

    /// A plan's visit aligned to a start month falls on or after the agreement's start, in a
    /// month `startMonth + k × every`, and is the earliest such.
    #[test]
    fn aligned_visits_fall_in_their_months(
        offset in 0i64..1500,
        every_at in 0usize..6,
        month in 1u8..=12,
        day in 1u8..=31,
    ) {
        let every = [1u8, 2, 3, 4, 6, 12][every_at];
        let from = date(2025, 1, 1) + Duration::days(offset);
        let rule = Recurrence::MonthlyOnDay { every, day };
        let s = schedule_from(from, rule, Some(month), window());
        let first = s.occurrence(0).expect("a first visit");
        prop_assert!(first >= from);
        prop_assert_eq!((first.month() + 12 - u32::from(month)) % u32::from(every), 0);
        // No aligned month's visit between `from` and `first` was skipped.
        let earlier = first.with_day(1).expect("first").checked_sub_months(Months::new(u32::from(every)));
        if let Some(earlier) = earlier {
            let probe = Schedule { start: earlier, rule, window: window() };
            prop_assert!(probe.occurrence(0).expect("a date") < from);
        }
    }
}
