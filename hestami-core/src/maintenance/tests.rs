//! Tests of agreement schedules (no drift across month ends and daylight-saving changes),
//! billing periods, proration and the agreement's life, with property tests.
use super::*;

use chrono::{TimeZone, Timelike};
use proptest::prelude::*;

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("a date")
}

fn nine_to_eleven() -> DayWindow {
    DayWindow::new(
        NaiveTime::from_hms_opt(9, 0, 0).expect("time"),
        NaiveTime::from_hms_opt(11, 0, 0).expect("time"),
    )
    .expect("ordered")
}

fn schedule(start: NaiveDate, rule: Recurrence) -> Schedule {
    Schedule {
        start,
        rule,
        window: nine_to_eleven(),
    }
}

fn last_day(d: NaiveDate) -> u32 {
    d.with_day(1)
        .and_then(|f| f.checked_add_months(Months::new(1)))
        .and_then(|n| n.pred_opt())
        .expect("a month")
        .day()
}

#[test]
fn the_31st_stays_the_31st_after_february() {
    let s = schedule(
        date(2027, 1, 31),
        Recurrence::MonthlyOnDay { every: 1, day: 31 },
    );
    let dates: Vec<NaiveDate> = (0..4).filter_map(|i| s.occurrence(i)).collect();
    assert_eq!(
        dates,
        [
            date(2027, 1, 31),
            date(2027, 2, 28),
            date(2027, 3, 31),
            date(2027, 4, 30)
        ]
    );
    // Every 6 months starting April, on the 15th: April and October.
    let twice = schedule(
        date(2027, 4, 1),
        Recurrence::MonthlyOnDay { every: 6, day: 15 },
    );
    assert_eq!(
        twice.between(date(2027, 1, 1), date(2028, 12, 31)),
        [
            (0, date(2027, 4, 15)),
            (1, date(2027, 10, 15)),
            (2, date(2028, 4, 15)),
            (3, date(2028, 10, 15))
        ]
    );
    // A day already past in the start's month: the first visit is next month's.
    let late = schedule(
        date(2027, 4, 20),
        Recurrence::MonthlyOnDay { every: 1, day: 15 },
    );
    assert_eq!(late.occurrence(0), Some(date(2027, 5, 15)));
}

#[test]
fn quarterly_on_the_first_monday_and_the_last_friday() {
    let s = schedule(
        date(2027, 1, 1),
        Recurrence::MonthlyOnWeekday {
            every: 3,
            nth: Nth::First,
            weekday: Weekday::Mon,
        },
    );
    let dates: Vec<NaiveDate> = (0..4).filter_map(|i| s.occurrence(i)).collect();
    assert_eq!(
        dates,
        [
            date(2027, 1, 4),
            date(2027, 4, 5),
            date(2027, 7, 5),
            date(2027, 10, 4)
        ]
    );
    let last = schedule(
        date(2027, 1, 1),
        Recurrence::MonthlyOnWeekday {
            every: 1,
            nth: Nth::Last,
            weekday: Weekday::Fri,
        },
    );
    assert_eq!(last.occurrence(0), Some(date(2027, 1, 29)));
    assert_eq!(last.occurrence(3), Some(date(2027, 4, 30)));
}

/// A visit at 09:00 local is at 09:00 local on both sides of both 2027 changes in New York:
/// 14:00 UTC in winter, 13:00 UTC in summer.
#[test]
fn nine_oclock_stays_nine_oclock_across_daylight_saving() {
    let tz = chrono_tz::America::New_York;
    let s = schedule(
        date(2027, 1, 1),
        Recurrence::Weekly {
            every: 4,
            weekday: Weekday::Tue,
        },
    );
    let mut hours_utc = std::collections::BTreeSet::new();
    for i in 0..14 {
        let (start, end) = s.window(tz, i).expect("a window");
        let local = start.with_timezone(&tz);
        assert_eq!((local.hour(), local.minute()), (9, 0), "occurrence {i}");
        assert_eq!((end - start).num_hours(), 2);
        hours_utc.insert(start.hour());
    }
    assert_eq!(
        hours_utc.into_iter().collect::<Vec<_>>(),
        [13, 14],
        "both offsets seen"
    );
}

#[test]
fn a_week_down_catches_up_every_missed_visit() {
    let s = schedule(
        date(2027, 1, 1),
        Recurrence::Weekly {
            every: 1,
            weekday: Weekday::Mon,
        },
    );
    // Generated up to index 2 (18 January); the server was down until 15 February.
    let due = due_occurrences(&s, 3, date(2027, 2, 15), 14, date(2028, 1, 1));
    assert_eq!(due.first(), Some(&(3, date(2027, 1, 25))));
    assert_eq!(
        due.last(),
        Some(&(8, date(2027, 3, 1))),
        "up to the lead time"
    );
    // Nothing past the term.
    assert_eq!(
        due_occurrences(&s, 0, date(2027, 2, 15), 14, date(2027, 1, 10)),
        [(0, date(2027, 1, 4))]
    );
    // Far past the calendar: no panic, nothing.
    assert_eq!(s.occurrence(u32::MAX), None);
}

#[test]
fn an_agreement_lives_as_documented() {
    use AgreementAction as A;
    use AgreementStatus as S;
    assert_eq!(S::Draft.decide(A::Activate), Ok(S::Active));
    assert_eq!(S::Active.decide(A::Suspend), Ok(S::Suspended));
    assert_eq!(S::Suspended.decide(A::Resume), Ok(S::Active));
    assert_eq!(S::Active.decide(A::Renew), Ok(S::Active));
    assert_eq!(S::Expired.decide(A::Renew), Ok(S::Active));
    assert!(S::Cancelled.decide(A::Activate).is_err());
    assert!(S::Draft.decide(A::Suspend).is_err());
    assert!(!S::Suspended.is_in_force());
}

fn arb_weekday() -> impl Strategy<Value = Weekday> {
    (0u8..7).prop_map(|d| Weekday::try_from(d).expect("0 to 6"))
}

fn arb_nth() -> impl Strategy<Value = Nth> {
    prop_oneof![
        Just(Nth::First),
        Just(Nth::Second),
        Just(Nth::Third),
        Just(Nth::Fourth),
        Just(Nth::Last)
    ]
}

fn arb_start() -> impl Strategy<Value = NaiveDate> {
    (2020i32..2040, 1u32..=12, 1u32..=31)
        .prop_map(|(y, m, d)| NaiveDate::from_ymd_opt(y, m, d.min(28)).expect("a date"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Monthly on a day: each visit is on that day (or its month's last day), `every` months
    /// after the one before, never before the start — however many occurrences later.
    #[test]
    fn monthly_visits_never_drift(start in arb_start(), every in 1u8..=24, day in 1u8..=31, index in 0u32..200) {
        let s = schedule(start, Recurrence::MonthlyOnDay { every, day });
        let a = s.occurrence(index).expect("in range");
        let b = s.occurrence(index + 1).expect("in range");
        prop_assert!(s.occurrence(0).expect("first") >= start);
        prop_assert_eq!(a.day(), u32::from(day).min(last_day(a)));
        prop_assert_eq!(b.day(), u32::from(day).min(last_day(b)));
        let months = (b.year() - a.year()) * 12 + b.month() as i32 - a.month() as i32;
        prop_assert_eq!(months, i32::from(every));
    }

    /// On a weekday of the month: the right weekday, in the right week, `every` months apart.
    #[test]
    fn nth_weekdays_are_the_nth(start in arb_start(), every in 1u8..=24, nth in arb_nth(), weekday in arb_weekday(), index in 0u32..200) {
        let s = schedule(start, Recurrence::MonthlyOnWeekday { every, nth, weekday });
        let a = s.occurrence(index).expect("in range");
        let b = s.occurrence(index + 1).expect("in range");
        prop_assert_eq!(a.weekday(), weekday);
        let week = (a.day() - 1) / 7;
        match nth {
            Nth::First => prop_assert_eq!(week, 0),
            Nth::Second => prop_assert_eq!(week, 1),
            Nth::Third => prop_assert_eq!(week, 2),
            Nth::Fourth => prop_assert_eq!(week, 3),
            Nth::Last => prop_assert!(a.day() + 7 > last_day(a)),
        }
        let months = (b.year() - a.year()) * 12 + b.month() as i32 - a.month() as i32;
        prop_assert_eq!(months, i32::from(every));
        prop_assert!(s.occurrence(0).expect("first") >= start);
    }

    /// Weekly: the weekday, `every` weeks apart, the first within a week of the start.
    #[test]
    fn weekly_visits_keep_their_weekday(start in arb_start(), every in 1u8..=52, weekday in arb_weekday(), index in 0u32..500) {
        let s = schedule(start, Recurrence::Weekly { every, weekday });
        let first = s.occurrence(0).expect("first");
        prop_assert!(first >= start && (first - start).num_days() < 7);
        let a = s.occurrence(index).expect("in range");
        let b = s.occurrence(index + 1).expect("in range");
        prop_assert_eq!(a.weekday(), weekday);
        prop_assert_eq!((b - a).num_days(), 7 * i64::from(every));
    }

    /// In New York, every visit's window starts at its local 09:00 (no daylight-saving change
    /// happens at 09:00), whatever the season.
    #[test]
    fn windows_keep_their_local_time(start in arb_start(), every in 1u8..=12, day in 1u8..=31, index in 0u32..60) {
        let tz = chrono_tz::America::New_York;
        let s = schedule(start, Recurrence::MonthlyOnDay { every, day });
        let (from, to) = s.window(tz, index).expect("a window");
        let local = from.with_timezone(&tz);
        prop_assert_eq!((local.hour(), local.minute()), (9, 0));
        prop_assert_eq!(local.date_naive(), s.occurrence(index).expect("a date"));
        prop_assert_eq!(to.with_timezone(&tz).hour(), 11);
        prop_assert_eq!(tz.from_local_datetime(&local.naive_local()).single().map(|t| t.with_timezone(&Utc)), Some(from));
    }
}
