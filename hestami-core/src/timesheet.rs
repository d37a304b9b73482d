//! Time tracking: a technician's clock punches, the worked time they add up to per local day,
//! and regular and overtime hours by the organization's rule.
//!
//! Punches are append-only and ordered: clock in, (break start, break end)*, clock out. Each
//! punch must follow from the state the previous one left ([`next_state`]) and may not be
//! earlier than it. Worked time is the time clocked in minus breaks, split at local midnight in
//! the organization's zone (a night shift counts on both days).
//!
//! Overtime ([`split_week`]) follows the common rule of US states that have a daily rule (the
//! federal rule is weekly only): within a day, time past the daily threshold is overtime; over a
//! week (Monday to Sunday), regular time past the weekly threshold is overtime too. Daily
//! overtime is not counted again against the week, so no minute is overtime twice.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::Invalid;

/// A clock punch's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PunchKind {
    /// Starts a shift.
    ClockIn,
    /// Starts a break (on the clock).
    BreakStart,
    /// Ends a break.
    BreakEnd,
    /// Ends a shift (not on a break).
    ClockOut,
}

impl PunchKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClockIn => "clock_in",
            Self::BreakStart => "break_start",
            Self::BreakEnd => "break_end",
            Self::ClockOut => "clock_out",
        }
    }

    /// Reads a stored name.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Ok(match raw {
            "clock_in" => Self::ClockIn,
            "break_start" => Self::BreakStart,
            "break_end" => Self::BreakEnd,
            "clock_out" => Self::ClockOut,
            _ => return Err(Invalid::new("invalid_value", "not a punch kind")),
        })
    }
}

/// Where a technician's clock stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockState {
    /// Not working.
    Off,
    /// Working.
    On,
    /// On a break.
    OnBreak,
}

/// The state a punch leads to from `state`, or why it cannot follow.
pub fn next_state(state: ClockState, punch: PunchKind) -> Result<ClockState, Invalid> {
    use ClockState::*;
    use PunchKind::*;
    match (state, punch) {
        (Off, ClockIn) => Ok(On),
        (On, BreakStart) => Ok(OnBreak),
        (OnBreak, BreakEnd) => Ok(On),
        (On, ClockOut) => Ok(Off),
        (Off, _) => Err(Invalid::new(
            "not_clocked_in",
            "clock in first: the technician is not on the clock",
        )),
        (On, _) => Err(Invalid::new(
            "already_clocked_in",
            "the technician is on the clock: start a break or clock out",
        )),
        (OnBreak, _) => Err(Invalid::new(
            "on_break",
            "the technician is on a break: end it first",
        )),
    }
}

/// A punch at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Punch {
    /// What.
    pub kind: PunchKind,
    /// When (the device's time, unless it was ahead of the server's).
    pub at: DateTime<Utc>,
}

/// One local day's time, in minutes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DayTime {
    /// Clocked in, breaks excluded.
    pub worked: i64,
    /// On breaks.
    pub breaks: i64,
    /// Regular time.
    pub regular: i64,
    /// Overtime.
    pub overtime: i64,
}

/// The organization's overtime rule: thresholds in minutes (`None`: no such rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OvertimeRule {
    /// Past this many minutes in a day, time is overtime.
    pub daily_minutes: Option<i64>,
    /// Past this many regular minutes in a week (Monday to Sunday), time is overtime.
    pub weekly_minutes: Option<i64>,
}

impl Default for OvertimeRule {
    /// Over 8 hours a day or 40 hours a week.
    fn default() -> Self {
        Self {
            daily_minutes: Some(8 * 60),
            weekly_minutes: Some(40 * 60),
        }
    }
}

impl OvertimeRule {
    /// Accepts thresholds of 1 minute to a day (daily) or a week (weekly).
    pub fn parse(daily: Option<i64>, weekly: Option<i64>) -> Result<Self, (&'static str, Invalid)> {
        if let Some(d) = daily
            && !(1..=24 * 60).contains(&d)
        {
            return Err((
                "dailyMinutes",
                Invalid::new("out_of_range", "a daily threshold is 1 to 1440 minutes"),
            ));
        }
        if let Some(w) = weekly
            && !(1..=7 * 24 * 60).contains(&w)
        {
            return Err((
                "weeklyMinutes",
                Invalid::new("out_of_range", "a weekly threshold is 1 to 10080 minutes"),
            ));
        }
        Ok(Self {
            daily_minutes: daily,
            weekly_minutes: weekly,
        })
    }
}

/// The Monday of the week holding `date`.
pub fn week_of(date: NaiveDate) -> NaiveDate {
    date - Duration::days(i64::from(date.weekday().num_days_from_monday()))
}

/// The UTC instant a local date starts at in `tz` (the first instant that exists that day).
pub fn day_start(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    match tz.from_local_datetime(&midnight) {
        chrono::LocalResult::Single(t) => t.with_timezone(&Utc),
        chrono::LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        // Midnight skipped by a clock change: the day starts when the clocks jump.
        chrono::LocalResult::None => (1..=180)
            .find_map(|m| {
                tz.from_local_datetime(&(midnight + Duration::minutes(m)))
                    .earliest()
            })
            .map_or_else(
                || Utc.from_utc_datetime(&midnight),
                |t| t.with_timezone(&Utc),
            ),
    }
}

/// Worked and break minutes of each of the 7 days from `monday`, from punches in time order
/// (an open shift or break counts until `until`).
pub fn worked_by_day(
    punches: &[Punch],
    monday: NaiveDate,
    tz: Tz,
    until: DateTime<Utc>,
) -> [DayTime; 7] {
    let bounds: Vec<DateTime<Utc>> = (0..=7)
        .map(|d| day_start(monday + Duration::days(d), tz))
        .collect();
    let mut days = [DayTime::default(); 7];
    let mut add = |from: DateTime<Utc>, to: DateTime<Utc>, on_break: bool| {
        for d in 0..7 {
            let (s, e) = (from.max(bounds[d]), to.min(bounds[d + 1]));
            if e > s {
                let minutes = (e - s).num_seconds() / 60;
                if on_break {
                    days[d].breaks += minutes;
                } else {
                    days[d].worked += minutes;
                }
            }
        }
    };
    let mut state = ClockState::Off;
    let mut since: Option<DateTime<Utc>> = None;
    for p in punches {
        if let Some(start) = since
            && state != ClockState::Off
        {
            add(start, p.at, state == ClockState::OnBreak);
        }
        state = next_state(state, p.kind).unwrap_or(state);
        since = Some(p.at);
    }
    if let Some(start) = since
        && state != ClockState::Off
        && until > start
    {
        add(start, until, state == ClockState::OnBreak);
    }
    days
}

/// Splits a week's worked minutes into regular and overtime by `rule` (see the module's docs).
pub fn split_week(mut days: [DayTime; 7], rule: OvertimeRule) -> [DayTime; 7] {
    let mut regular_so_far = 0;
    for day in days.iter_mut() {
        let daily_regular = rule
            .daily_minutes
            .map_or(day.worked, |limit| day.worked.min(limit));
        let weekly_room = rule
            .weekly_minutes
            .map_or(daily_regular, |limit| (limit - regular_so_far).max(0));
        day.regular = daily_regular.min(weekly_room);
        day.overtime = day.worked - day.regular;
        regular_so_far += day.regular;
    }
    days
}

/// The time one visit took its crew: travelling to it and on site.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VisitMinutes {
    /// Minutes en route.
    pub travel_minutes: i64,
    /// Minutes on site.
    pub on_site_minutes: i64,
}

/// The travel and on-site time of a visit, from its moves: each the state the visit entered and
/// when (the device's time where it reported one), in any order. Each state lasts until the next
/// move; the state it is in now counts nothing yet (the visit is not over), and a hold counts
/// as neither.
pub fn visit_minutes(
    moves: &[(DateTime<Utc>, crate::appointment::AppointmentStatus)],
) -> VisitMinutes {
    use crate::appointment::AppointmentStatus as S;
    let mut sorted = moves.to_vec();
    sorted.sort_by_key(|(at, _)| *at);
    let mut total = VisitMinutes::default();
    for pair in sorted.windows(2) {
        let minutes = (pair[1].0 - pair[0].0).num_minutes();
        match pair[0].1 {
            S::EnRoute => total.travel_minutes += minutes,
            S::OnSite => total.on_site_minutes += minutes,
            _ => {}
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_visit_counts_its_travel_and_its_time_on_site() {
        use crate::appointment::AppointmentStatus as S;
        let moves = [
            (at(9 * 60), S::EnRoute),
            (at(8 * 60), S::Dispatched),
            (at(10 * 60), S::OnSite),
            (at(11 * 60), S::OnHold),
            (at(12 * 60), S::OnSite),
            (at(14 * 60), S::Done),
        ];
        assert_eq!(
            visit_minutes(&moves),
            VisitMinutes {
                travel_minutes: 60,
                on_site_minutes: 180
            }
        );
        // Still on site: nothing counted for the stay so far.
        assert_eq!(visit_minutes(&moves[..3]).on_site_minutes, 0);
    }

    proptest! {
        /// A visit's travel and on-site time never exceed the span of its moves, and do not
        /// depend on the order the moves arrive in.
        #[test]
        fn visit_time_fits_its_span_whatever_the_order(
            hours in proptest::collection::vec((0i64..48, 0usize..7), 0..8),
            rotate in 0usize..8,
        ) {
            use crate::appointment::AppointmentStatus as S;
            let moves: Vec<(DateTime<Utc>, S)> = hours
                .iter()
                .enumerate()
                .map(|(n, (h, s))| (at(*h * 60) + Duration::seconds(n as i64), S::ALL[*s]))
                .collect();
            let total = visit_minutes(&moves);
            let span = match (moves.iter().map(|m| m.0).min(), moves.iter().map(|m| m.0).max()) {
                (Some(a), Some(b)) => (b - a).num_minutes(),
                _ => 0,
            };
            prop_assert!(total.travel_minutes >= 0 && total.on_site_minutes >= 0);
            prop_assert!(total.travel_minutes + total.on_site_minutes <= span);
            let mut rotated = moves.clone();
            if !rotated.is_empty() {
                let n = rotate % rotated.len();
                rotated.rotate_left(n);
            }
            prop_assert_eq!(visit_minutes(&rotated), total);
        }
    }

    fn at(h: i64) -> DateTime<Utc> {
        // Monday 2031-06-02, 00:00 in Chicago is 05:00 UTC.
        Utc.with_ymd_and_hms(2031, 6, 2, 5, 0, 0)
            .single()
            .expect("a time")
            + Duration::minutes(h)
    }

    #[test]
    fn punches_follow_the_clock() {
        use ClockState::*;
        use PunchKind::*;
        assert_eq!(next_state(Off, ClockIn), Ok(On));
        assert_eq!(next_state(On, ClockOut), Ok(Off));
        assert_eq!(
            next_state(Off, ClockOut).map_err(|e| e.code),
            Err("not_clocked_in")
        );
        assert_eq!(
            next_state(OnBreak, ClockOut).map_err(|e| e.code),
            Err("on_break")
        );
        assert_eq!(
            next_state(On, ClockIn).map_err(|e| e.code),
            Err("already_clocked_in")
        );
    }

    #[test]
    fn a_night_shift_counts_on_both_days_and_breaks_are_not_worked() {
        let monday = NaiveDate::from_ymd_opt(2031, 6, 2).expect("a date");
        let tz = chrono_tz::America::Chicago;
        let punches = [
            Punch {
                kind: PunchKind::ClockIn,
                at: at(20 * 60),
            },
            Punch {
                kind: PunchKind::BreakStart,
                at: at(22 * 60),
            },
            Punch {
                kind: PunchKind::BreakEnd,
                at: at(22 * 60 + 30),
            },
            Punch {
                kind: PunchKind::ClockOut,
                at: at(26 * 60),
            },
        ];
        let days = worked_by_day(&punches, monday, tz, at(30 * 60));
        assert_eq!((days[0].worked, days[0].breaks), (210, 30));
        assert_eq!((days[1].worked, days[1].breaks), (120, 0));
    }

    #[test]
    fn a_ten_hour_day_and_a_fifty_hour_week() {
        let mut days = [DayTime::default(); 7];
        for day in days.iter_mut().take(5) {
            day.worked = 10 * 60;
        }
        let split = split_week(days, OvertimeRule::default());
        // Each day: 8 regular, 2 overtime; 40 regular in all, so the week adds none.
        assert!(
            split
                .iter()
                .take(5)
                .all(|d| d.regular == 480 && d.overtime == 120)
        );
        // Six 8-hour days: the sixth is all overtime by the week.
        let mut days = [DayTime::default(); 7];
        for day in days.iter_mut().take(6) {
            day.worked = 8 * 60;
        }
        let split = split_week(days, OvertimeRule::default());
        assert_eq!((split[5].regular, split[5].overtime), (0, 480));
        let weekly_only = split_week(days, OvertimeRule::parse(None, Some(2400)).expect("rule"));
        assert_eq!(weekly_only[5].overtime, 480);
    }

    proptest! {
        #[test]
        fn every_minute_is_regular_or_overtime_once(
            worked in proptest::array::uniform7(0i64..1440),
            daily in proptest::option::of(1i64..1440),
            weekly in proptest::option::of(1i64..10080),
        ) {
            let mut days = [DayTime::default(); 7];
            for (d, w) in days.iter_mut().zip(worked) {
                d.worked = w;
            }
            let rule = OvertimeRule::parse(daily, weekly).expect("a rule");
            let split = split_week(days, rule);
            let regular: i64 = split.iter().map(|d| d.regular).sum();
            for (d, w) in split.iter().zip(worked) {
                prop_assert_eq!(d.regular + d.overtime, w);
                prop_assert!(d.regular >= 0 && d.overtime >= 0);
                if let Some(limit) = daily {
                    prop_assert!(d.regular <= limit);
                }
            }
            if let Some(limit) = weekly {
                prop_assert!(regular <= limit);
            }
        }

        #[test]
        fn worked_time_is_the_clocked_time_less_breaks(
            gaps in proptest::collection::vec(1i64..600, 1..12),
        ) {
            // Alternate clock in / break start / break end / clock out through the week.
            let cycle = [PunchKind::ClockIn, PunchKind::BreakStart, PunchKind::BreakEnd, PunchKind::ClockOut];
            let mut t = 0;
            let mut punches = Vec::new();
            for (n, gap) in gaps.iter().enumerate() {
                punches.push(Punch { kind: cycle[n % 4], at: at(t) });
                t += gap;
            }
            let end = at(t);
            let monday = NaiveDate::from_ymd_opt(2031, 6, 2).expect("a date");
            let days = worked_by_day(&punches, monday, chrono_tz::America::Chicago, end);
            let (mut on, mut off) = (0, 0);
            for (n, _) in punches.iter().enumerate() {
                let until = punches.get(n + 1).map_or(end, |p| p.at);
                let minutes = (until - punches[n].at).num_minutes();
                match cycle[n % 4] {
                    PunchKind::ClockIn | PunchKind::BreakEnd => on += minutes,
                    PunchKind::BreakStart => off += minutes,
                    PunchKind::ClockOut => {}
                }
            }
            let worked: i64 = days.iter().map(|d| d.worked).sum();
            let breaks: i64 = days.iter().map(|d| d.breaks).sum();
            // Within the week (the gaps sum to under 7 days).
            prop_assert_eq!(worked, on);
            prop_assert_eq!(breaks, off);
        }
    }
}
