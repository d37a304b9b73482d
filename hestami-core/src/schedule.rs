//! Turning weekly shift patterns into instants, and a technician's day into free and busy spans.
//!
//! Shifts are local times in the organization's IANA zone: a 08:00–17:00 shift is 08:00–17:00 on
//! the wall clock on both sides of a daylight-saving change, so its length in UTC changes on those
//! days. A local time the clock skips (the spring-forward gap) is read as the first instant after
//! the gap; a local time that happens twice (the autumn fall-back) as the earlier of the two.

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone as _, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::customer::GeoPoint;
use crate::ids::{AppointmentId, JobId, TimeOffId};
use crate::job::TimeWindow;
use crate::text::Reason;
use crate::workforce::{TimeOff, Weekday, WeeklyShifts};

/// A half-open interval of instants, `[start, end)`.
pub type Interval = (DateTime<Utc>, DateTime<Utc>);

/// The instant a local wall-clock time names in `tz`: the earlier one when it is ambiguous
/// (fall-back), the first instant after the gap when it does not exist (spring-forward).
pub fn local_to_utc(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(a, b) => a.min(b).with_timezone(&Utc),
        LocalResult::None => {
            // `local` falls in a gap. Search for the first instant whose wall-clock time is
            // after it: that is the moment the clock jumped. UTC offsets are within ±14 hours,
            // so 26 hours either side brackets it; local time only decreases at a fall-back,
            // which is never within a day of a spring-forward in a real zone.
            let naive = local.and_utc();
            let (mut lo, mut hi) = (naive.timestamp() - 26 * 3600, naive.timestamp() + 26 * 3600);
            let wall = |secs: i64| {
                DateTime::from_timestamp(secs, 0)
                    .map(|t| t.with_timezone(&tz).naive_local())
                    .unwrap_or(local)
            };
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if wall(mid) < local {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            DateTime::from_timestamp(hi, 0).unwrap_or(naive)
        }
    }
}

/// The pattern in force on `date`: the one with the latest `effective_from` on or before it.
/// Two patterns from the same date should not exist; if they do, the greater one (by its spans)
/// wins so that the answer does not depend on the order of `history`.
pub fn pattern_on(history: &[WeeklyShifts], date: NaiveDate) -> Option<&WeeklyShifts> {
    history
        .iter()
        .filter(|w| w.effective_from() <= date)
        .max_by(|a, b| (a.effective_from(), a.spans()).cmp(&(b.effective_from(), b.spans())))
}

/// The working intervals, in UTC, of every local day that touches `[from, to)`, from the shift
/// `history` and the organization's zone `tz`. Intervals that touch or overlap are joined (a
/// night shift written as `22:00–24:00` and `00:00–06:00` is one interval). The intervals are
/// sorted and not clipped: each overlaps `[from, to)` but may extend beyond it.
pub fn shift_intervals(
    history: &[WeeklyShifts],
    tz: Tz,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<Interval> {
    if from >= to || history.is_empty() {
        return Vec::new();
    }
    let first = from.with_timezone(&tz).date_naive() - Duration::days(1);
    let last = to.with_timezone(&tz).date_naive() + Duration::days(1);
    let mut raw = Vec::new();
    for date in first.iter_days().take_while(|d| *d <= last) {
        let Some(pattern) = pattern_on(history, date) else {
            continue;
        };
        let weekday = Weekday::of(date);
        let midnight = date.and_time(chrono::NaiveTime::MIN);
        for span in pattern.spans().iter().filter(|s| s.weekday() == weekday) {
            let start = local_to_utc(
                tz,
                midnight + Duration::minutes(i64::from(span.start_minute())),
            );
            let end = local_to_utc(
                tz,
                midnight + Duration::minutes(i64::from(span.end_minute())),
            );
            // A span that lies wholly in a spring-forward gap has no instants.
            if end > start {
                raw.push((start, end));
            }
        }
    }
    raw.sort();
    let mut merged: Vec<Interval> = Vec::with_capacity(raw.len());
    for (start, end) in raw {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged.retain(|&(s, e)| e > from && s < to);
    merged
}

/// A job booked for a technician.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Appointment {
    /// The job.
    pub job_id: JobId,
    /// The visit, for a v2 job's appointment (`None`: a v1 job's own window and technician).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appointment_id: Option<AppointmentId>,
    /// When.
    pub window: TimeWindow,
    /// Where, when the property's coordinates are known (ranking measures from it).
    pub location: Option<GeoPoint>,
}

/// What fills a span of a technician's time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum SpanReason {
    /// Outside every shift.
    OffShift,
    /// Time off.
    TimeOff {
        /// Which period.
        id: TimeOffId,
        /// Why, when given.
        reason: Option<Reason>,
    },
    /// A booked job.
    Appointment {
        /// The job.
        job_id: JobId,
    },
    /// In a shift and nothing booked.
    Free,
}

/// A stretch of a technician's time, `[start, end)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    /// When it starts.
    pub start: DateTime<Utc>,
    /// When it ends.
    pub end: DateTime<Utc>,
    /// Whether the technician cannot take work then.
    pub busy: bool,
    /// What fills it.
    pub reason: SpanReason,
}

/// The technician's time over `[from, to)` as ordered spans without gaps. When several things
/// fill the same moment, the first of these names it: an appointment (the earliest-starting,
/// then the lowest job id), time off (likewise), outside a shift, free.
pub fn availability(
    shifts: &[Interval],
    time_off: &[TimeOff],
    appointments: &[Appointment],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<Span> {
    if from >= to {
        return Vec::new();
    }
    let clip = |s: DateTime<Utc>, e: DateTime<Utc>| (s.max(from), e.min(to));
    let mut cuts = vec![from, to];
    let intervals = shifts
        .iter()
        .map(|&(s, e)| (s, e))
        .chain(time_off.iter().map(|t| (t.start(), t.end())))
        .chain(
            appointments
                .iter()
                .map(|a| (a.window.start(), a.window.end())),
        );
    for (s, e) in intervals {
        let (s, e) = clip(s, e);
        if s < e {
            cuts.push(s);
            cuts.push(e);
        }
    }
    cuts.sort();
    cuts.dedup();

    let mut booked: Vec<&Appointment> = appointments.iter().collect();
    booked.sort_by_key(|a| (a.window.start(), a.job_id));
    let mut off: Vec<&TimeOff> = time_off.iter().collect();
    off.sort_by_key(|t| (t.start(), t.id()));

    let mut spans: Vec<Span> = Vec::new();
    for cut in cuts.windows(2) {
        let (a, b) = (cut[0], cut[1]);
        let within = |s: DateTime<Utc>, e: DateTime<Utc>| s <= a && b <= e;
        let reason = if let Some(appt) = booked
            .iter()
            .find(|x| within(x.window.start(), x.window.end()))
        {
            SpanReason::Appointment {
                job_id: appt.job_id,
            }
        } else if let Some(t) = off.iter().find(|t| within(t.start(), t.end())) {
            SpanReason::TimeOff {
                id: t.id(),
                reason: t.reason().cloned(),
            }
        } else if shifts.iter().any(|&(s, e)| within(s, e)) {
            SpanReason::Free
        } else {
            SpanReason::OffShift
        };
        match spans.last_mut() {
            Some(last) if last.reason == reason => last.end = b,
            _ => spans.push(Span {
                start: a,
                end: b,
                busy: reason != SpanReason::Free,
                reason,
            }),
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workforce::ShiftSpan;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("valid RFC 3339")
            .with_timezone(&Utc)
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().expect("valid date")
    }

    /// Every day of the week, the given spans.
    fn every_day(spans: &[(&str, &str)]) -> Vec<WeeklyShifts> {
        let all = [
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
        ];
        let spans = all
            .iter()
            .flat_map(|&w| {
                spans
                    .iter()
                    .map(move |(s, e)| ShiftSpan::parse(w, s, e).expect("valid span"))
            })
            .collect();
        vec![WeeklyShifts::parse(date("2031-01-01"), spans).expect("no overlaps")]
    }

    /// The intervals of one local day, as RFC 3339 strings.
    fn day(history: &[WeeklyShifts], tz: Tz, d: &str) -> Vec<String> {
        let d = date(d);
        let from = local_to_utc(tz, d.and_time(chrono::NaiveTime::MIN));
        let to = local_to_utc(tz, (d + Duration::days(1)).and_time(chrono::NaiveTime::MIN));
        shift_intervals(history, tz, from, to)
            .into_iter()
            .filter(|(s, _)| s.with_timezone(&tz).date_naive() == d)
            .map(|(s, e)| format!("{}/{}", s.to_rfc3339(), e.to_rfc3339()))
            .collect()
    }

    #[test]
    fn new_york_spring_forward_keeps_local_hours() {
        let tz = chrono_tz::America::New_York;
        let h = every_day(&[("08:00", "17:00")]);
        // EST (−5) on Saturday, EDT (−4) from Sunday 2031-03-09 02:00.
        assert_eq!(
            day(&h, tz, "2031-03-08"),
            ["2031-03-08T13:00:00+00:00/2031-03-08T22:00:00+00:00"]
        );
        assert_eq!(
            day(&h, tz, "2031-03-09"),
            ["2031-03-09T12:00:00+00:00/2031-03-09T21:00:00+00:00"]
        );
        // 01:00 EST to 04:00 EDT: two real hours across the gap.
        let night = every_day(&[("01:00", "04:00")]);
        assert_eq!(
            day(&night, tz, "2031-03-09"),
            ["2031-03-09T06:00:00+00:00/2031-03-09T08:00:00+00:00"]
        );
        // 02:30 does not exist: the first instant after the gap, 03:00 EDT.
        let gap = every_day(&[("02:30", "04:00")]);
        assert_eq!(
            day(&gap, tz, "2031-03-09"),
            ["2031-03-09T07:00:00+00:00/2031-03-09T08:00:00+00:00"]
        );
        // A span wholly inside the gap has no instants.
        assert!(day(&every_day(&[("02:00", "02:30")]), tz, "2031-03-09").is_empty());
    }

    #[test]
    fn new_york_fall_back_keeps_local_hours() {
        let tz = chrono_tz::America::New_York;
        let h = every_day(&[("08:00", "17:00")]);
        assert_eq!(
            day(&h, tz, "2031-11-01"),
            ["2031-11-01T12:00:00+00:00/2031-11-01T21:00:00+00:00"]
        );
        assert_eq!(
            day(&h, tz, "2031-11-02"),
            ["2031-11-02T13:00:00+00:00/2031-11-02T22:00:00+00:00"]
        );
        // 01:00 happens twice: the earlier (EDT); 04:00 EST. Four real hours.
        let night = every_day(&[("01:00", "04:00")]);
        assert_eq!(
            day(&night, tz, "2031-11-02"),
            ["2031-11-02T05:00:00+00:00/2031-11-02T09:00:00+00:00"]
        );
    }

    #[test]
    fn berlin_transitions_keep_local_hours() {
        let tz = chrono_tz::Europe::Berlin;
        let h = every_day(&[("08:00", "17:00")]);
        assert_eq!(
            day(&h, tz, "2031-03-29"),
            ["2031-03-29T07:00:00+00:00/2031-03-29T16:00:00+00:00"]
        );
        assert_eq!(
            day(&h, tz, "2031-03-30"),
            ["2031-03-30T06:00:00+00:00/2031-03-30T15:00:00+00:00"]
        );
        assert_eq!(
            day(&h, tz, "2031-10-25"),
            ["2031-10-25T06:00:00+00:00/2031-10-25T15:00:00+00:00"]
        );
        assert_eq!(
            day(&h, tz, "2031-10-26"),
            ["2031-10-26T07:00:00+00:00/2031-10-26T16:00:00+00:00"]
        );
        let night = every_day(&[("01:00", "04:00")]);
        // Spring: 01:00 CET to 04:00 CEST, two real hours; 02:30 is read as 03:00 CEST.
        assert_eq!(
            day(&night, tz, "2031-03-30"),
            ["2031-03-30T00:00:00+00:00/2031-03-30T02:00:00+00:00"]
        );
        assert_eq!(
            local_to_utc(tz, date("2031-03-30").and_hms_opt(2, 30, 0).expect("valid")),
            utc("2031-03-30T01:00:00Z")
        );
        // Autumn: 01:00 CEST to 04:00 CET, four real hours; 02:30 is the earlier, CEST.
        assert_eq!(
            day(&night, tz, "2031-10-26"),
            ["2031-10-25T23:00:00+00:00/2031-10-26T03:00:00+00:00"]
        );
        assert_eq!(
            local_to_utc(tz, date("2031-10-26").and_hms_opt(2, 30, 0).expect("valid")),
            utc("2031-10-26T00:30:00Z")
        );
    }

    #[test]
    fn the_latest_pattern_in_force_applies_and_night_shifts_join() {
        let tz = chrono_tz::UTC;
        let mon = |s, e| ShiftSpan::parse(Weekday::Mon, s, e).expect("valid span");
        let tue = |s, e| ShiftSpan::parse(Weekday::Tue, s, e).expect("valid span");
        let history = vec![
            WeeklyShifts::parse(date("2031-06-09"), vec![mon("10:00", "12:00")]).expect("valid"),
            WeeklyShifts::parse(
                date("2031-01-01"),
                vec![mon("22:00", "24:00"), tue("00:00", "06:00")],
            )
            .expect("valid"),
        ];
        // Monday 2031-06-02: the older pattern; the night shift is one interval.
        let got = shift_intervals(
            &history,
            tz,
            utc("2031-06-02T00:00:00Z"),
            utc("2031-06-04T00:00:00Z"),
        );
        assert_eq!(
            got,
            [(utc("2031-06-02T22:00:00Z"), utc("2031-06-03T06:00:00Z"))]
        );
        // Monday 2031-06-09: the newer pattern.
        let got = shift_intervals(
            &history,
            tz,
            utc("2031-06-09T00:00:00Z"),
            utc("2031-06-10T00:00:00Z"),
        );
        assert_eq!(
            got,
            [(utc("2031-06-09T10:00:00Z"), utc("2031-06-09T12:00:00Z"))]
        );
        // Before any pattern: nothing.
        assert!(
            shift_intervals(
                &history,
                tz,
                utc("2030-06-09T00:00:00Z"),
                utc("2030-06-10T00:00:00Z")
            )
            .is_empty()
        );
    }

    #[test]
    fn availability_covers_the_range_without_gaps() {
        let shifts = [(utc("2031-06-02T08:00:00Z"), utc("2031-06-02T17:00:00Z"))];
        let off_id = TimeOffId::from_uuid(uuid::Uuid::from_u128(9));
        let time_off = [TimeOff::parse(
            off_id,
            utc("2031-06-02T12:00:00Z"),
            utc("2031-06-02T13:00:00Z"),
            Some(Reason::parse("Dentist").expect("valid")),
        )
        .expect("valid")];
        let job = JobId::from_uuid(uuid::Uuid::from_u128(1));
        let appts = [Appointment {
            job_id: job,
            appointment_id: None,
            window: TimeWindow::parse(utc("2031-06-02T09:00:00Z"), utc("2031-06-02T10:30:00Z"))
                .expect("valid"),
            location: None,
        }];
        let spans = availability(
            &shifts,
            &time_off,
            &appts,
            utc("2031-06-02T06:00:00Z"),
            utc("2031-06-02T18:00:00Z"),
        );
        let rendered: Vec<String> = spans
            .iter()
            .map(|s| {
                format!(
                    "{}-{} {} {}",
                    s.start.format("%H:%M"),
                    s.end.format("%H:%M"),
                    if s.busy { "busy" } else { "free" },
                    serde_json::to_string(&s.reason).expect("serializes")
                )
            })
            .collect();
        expect_test::expect![[r#"
            [
                "06:00-08:00 busy {\"kind\":\"off_shift\"}",
                "08:00-09:00 free {\"kind\":\"free\"}",
                "09:00-10:30 busy {\"kind\":\"appointment\",\"jobId\":\"00000000-0000-0000-0000-000000000001\"}",
                "10:30-12:00 free {\"kind\":\"free\"}",
                "12:00-13:00 busy {\"kind\":\"time_off\",\"id\":\"00000000-0000-0000-0000-000000000009\",\"reason\":\"Dentist\"}",
                "13:00-17:00 free {\"kind\":\"free\"}",
                "17:00-18:00 busy {\"kind\":\"off_shift\"}",
            ]
        "#]]
        .assert_debug_eq(&rendered);
        assert_eq!(
            spans.first().map(|s| s.start),
            Some(utc("2031-06-02T06:00:00Z"))
        );
        assert!(spans.windows(2).all(|w| w[0].end == w[1].start));
        assert!(
            availability(
                &shifts,
                &[],
                &[],
                utc("2031-06-02T06:00:00Z"),
                utc("2031-06-02T06:00:00Z")
            )
            .is_empty()
        );
    }
}
