//! The workforce: technicians and the trades they hold.
//!
//! A [`Technician`] is a name, contact details, a set of trades and an active flag; around it the
//! workforce procedures set [`Skill`]s with levels, [`Certification`]s with expiry, weekly shift
//! patterns ([`WeeklyShifts`], local times in the organization's zone), [`TimeOff`], service
//! areas, a home base and a [`DailyCapacity`]. Turning shifts into instants is
//! [`crate::schedule`]'s job; deciding who may take a job is [`crate::eligibility`]'s.

use chrono::{DateTime, Datelike as _, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Invalid;
use crate::area::ServiceArea;
use crate::customer::GeoPoint;
use crate::ids::{CertificationId, TechnicianId, TimeOffId};
use crate::text::{Email, Name, Phone, Reason, TradeCode};

/// A technician.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Technician {
    /// Its id.
    pub id: TechnicianId,
    /// 1 on creation, +1 on each change.
    pub version: i64,
    /// Display name.
    pub name: Name,
    /// Contact address; unique within the organization when given.
    pub email: Option<Email>,
    /// Contact number.
    pub phone: Option<Phone>,
    /// The trades held, sorted and without duplicates.
    pub trades: Vec<TradeCode>,
    /// Whether the technician takes work. Deactivated technicians keep their history.
    pub active: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// Sorts trades and drops duplicates, so that two equal sets compare and store equal.
pub fn normalize_trades(mut trades: Vec<TradeCode>) -> Vec<TradeCode> {
    trades.sort();
    trades.dedup();
    trades
}

/// Why a technician may not be assigned a job (the rules that exist before the full
/// eligibility rule set: active, and holding the job's trade). Every failed rule is returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignmentRefusal {
    /// A stable code, such as `TECHNICIAN_INACTIVE`.
    pub code: &'static str,
    /// A sentence for the dispatcher.
    pub message: String,
}

/// Checks the assignment rules that hold before the eligibility issue: the technician is active
/// and holds `trade`. Returns every rule that fails.
pub fn assignment_refusals(tech: &Technician, trade: &TradeCode) -> Vec<AssignmentRefusal> {
    let mut refusals = Vec::new();
    if !tech.active {
        refusals.push(AssignmentRefusal {
            code: "TECHNICIAN_INACTIVE",
            message: format!("{} is deactivated", tech.name),
        });
    }
    if !tech.trades.contains(trade) {
        refusals.push(AssignmentRefusal {
            code: "TRADE_MISSING",
            message: format!("{} does not hold the trade {trade}", tech.name),
        });
    }
    refusals
}

/// A skill level from 1 (apprentice) to 5 (master).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct SkillLevel(u8);

impl SkillLevel {
    /// The lowest level, which every holder of a trade has.
    pub const MIN: Self = Self(1);
    /// The highest level.
    pub const MAX: Self = Self(5);

    /// Accepts 1 to 5.
    pub fn parse(level: u8) -> Result<Self, Invalid> {
        if (1..=5).contains(&level) {
            Ok(Self(level))
        } else {
            Err(Invalid::new("out_of_range", "a skill level is 1 to 5"))
        }
    }

    /// The level, 1 to 5.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl Default for SkillLevel {
    fn default() -> Self {
        Self::MIN
    }
}

impl TryFrom<u8> for SkillLevel {
    type Error = Invalid;
    fn try_from(level: u8) -> Result<Self, Invalid> {
        Self::parse(level)
    }
}

impl From<SkillLevel> for u8 {
    fn from(level: SkillLevel) -> u8 {
        level.0
    }
}

/// A trade a technician practises, at a level.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Skill {
    /// The trade.
    pub trade: TradeCode,
    /// How well.
    pub level: SkillLevel,
}

/// A technician's certification (EPA 608, a manufacturer's training, a backflow tester card).
/// Jobs and requirement rules ask for certifications by name, compared without regard to case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Certification {
    /// Its id.
    pub id: CertificationId,
    /// Its name, such as `EPA 608 Universal`.
    pub name: Name,
    /// Who issued it.
    pub issuer: Name,
    /// The certificate's number, when it has one.
    pub number: Option<Name>,
    /// The last day it is valid; `None` when it does not expire.
    pub expires_on: Option<NaiveDate>,
    /// The trades it relates to (informational: a requirement matches by name alone).
    pub trades: Vec<TradeCode>,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
}

impl Certification {
    /// Whether it carries `name`, ignoring case.
    pub fn is_named(&self, name: &Name) -> bool {
        same_name(&self.name, name)
    }

    /// Whether it is valid on `date` (its expiry day included).
    pub fn valid_on(&self, date: NaiveDate) -> bool {
        self.expires_on.is_none_or(|last| date <= last)
    }
}

/// Whether two names are equal ignoring case.
pub fn same_name(a: &Name, b: &Name) -> bool {
    a.as_str().to_lowercase() == b.as_str().to_lowercase()
}

/// A day of the week; `mon` to `sun` on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weekday {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

impl Weekday {
    /// Every day, Monday first.
    pub const ALL: [Weekday; 7] = [
        Self::Mon,
        Self::Tue,
        Self::Wed,
        Self::Thu,
        Self::Fri,
        Self::Sat,
        Self::Sun,
    ];

    /// The wire name, `mon` to `sun`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mon => "mon",
            Self::Tue => "tue",
            Self::Wed => "wed",
            Self::Thu => "thu",
            Self::Fri => "fri",
            Self::Sat => "sat",
            Self::Sun => "sun",
        }
    }

    /// The weekday of a chrono date.
    pub fn of(date: NaiveDate) -> Self {
        match date.weekday() {
            chrono::Weekday::Mon => Self::Mon,
            chrono::Weekday::Tue => Self::Tue,
            chrono::Weekday::Wed => Self::Wed,
            chrono::Weekday::Thu => Self::Thu,
            chrono::Weekday::Fri => Self::Fri,
            chrono::Weekday::Sat => Self::Sat,
            chrono::Weekday::Sun => Self::Sun,
        }
    }
}

/// A time of day as minutes since local midnight, `00:00` to `24:00`.
fn parse_clock(raw: &str) -> Option<u16> {
    let (h, m) = raw.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (0..=23, 0..=59) | (24, 0) => Some(h * 60 + m),
        _ => None,
    }
}

fn format_clock(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// One working span of a weekday, in the organization's local time: `start` to `end`, as
/// `"HH:MM"`. The end is after the start and may be `"24:00"` (midnight at the end of the day).
/// A span never crosses midnight: a night shift is two spans (`mon 22:00–24:00`, `tue
/// 00:00–06:00`), which [`crate::schedule::shift_intervals`] joins into one interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "ShiftSpanWire", into = "ShiftSpanWire")]
pub struct ShiftSpan {
    weekday: Weekday,
    start_minute: u16,
    end_minute: u16,
}

/// The wire form of a [`ShiftSpan`].
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ShiftSpanWire {
    weekday: Weekday,
    start: String,
    end: String,
}

impl ShiftSpan {
    /// Accepts `"HH:MM"` times with `start < end`; the end may be `"24:00"`.
    pub fn parse(weekday: Weekday, start: &str, end: &str) -> Result<Self, Invalid> {
        let bad = |which: &str| {
            Invalid::new(
                "invalid_time",
                format!("the {which} is a time of day such as 08:00"),
            )
        };
        let start_minute = parse_clock(start)
            .filter(|&m| m < 24 * 60)
            .ok_or_else(|| bad("start"))?;
        let end_minute = parse_clock(end).ok_or_else(|| bad("end"))?;
        if end_minute <= start_minute {
            return Err(Invalid::new(
                "end_before_start",
                "a shift span ends after it starts, on the same day (split a night shift in two)",
            ));
        }
        Ok(Self {
            weekday,
            start_minute,
            end_minute,
        })
    }

    /// The day.
    pub fn weekday(&self) -> Weekday {
        self.weekday
    }

    /// When it starts, in minutes since local midnight (0 to 1439).
    pub fn start_minute(&self) -> u16 {
        self.start_minute
    }

    /// When it ends, in minutes since local midnight (1 to 1440).
    pub fn end_minute(&self) -> u16 {
        self.end_minute
    }

    /// When it starts, as a local time of day.
    pub fn start(&self) -> NaiveTime {
        // Invariant: start_minute < 1440, so the hour is 0..=23 and the minute 0..=59.
        NaiveTime::from_hms_opt(
            u32::from(self.start_minute / 60),
            u32::from(self.start_minute % 60),
            0,
        )
        .expect("start_minute is below 24:00")
    }
}

impl TryFrom<ShiftSpanWire> for ShiftSpan {
    type Error = Invalid;
    fn try_from(w: ShiftSpanWire) -> Result<Self, Invalid> {
        Self::parse(w.weekday, &w.start, &w.end)
    }
}

impl From<ShiftSpan> for ShiftSpanWire {
    fn from(s: ShiftSpan) -> Self {
        Self {
            weekday: s.weekday,
            start: format_clock(s.start_minute),
            end: format_clock(s.end_minute),
        }
    }
}

/// A technician's weekly shift pattern from a date on (until a later pattern takes over). Spans
/// are sorted by day and start; several per day are allowed, overlapping ones are not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "WeeklyShiftsWire")]
pub struct WeeklyShifts {
    effective_from: NaiveDate,
    spans: Vec<ShiftSpan>,
}

/// The wire form of [`WeeklyShifts`], checked on the way in.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WeeklyShiftsWire {
    effective_from: NaiveDate,
    spans: Vec<ShiftSpan>,
}

impl WeeklyShifts {
    /// Sorts the spans and refuses two that overlap on the same day (touching is fine). Equal
    /// spans given twice are kept once.
    pub fn parse(effective_from: NaiveDate, mut spans: Vec<ShiftSpan>) -> Result<Self, Invalid> {
        spans.sort();
        spans.dedup();
        for pair in spans.windows(2) {
            if pair[0].weekday == pair[1].weekday && pair[1].start_minute < pair[0].end_minute {
                return Err(Invalid::new(
                    "overlapping_shifts",
                    format!(
                        "on {} the span {}–{} overlaps {}–{}",
                        pair[0].weekday.as_str(),
                        format_clock(pair[0].start_minute),
                        format_clock(pair[0].end_minute),
                        format_clock(pair[1].start_minute),
                        format_clock(pair[1].end_minute),
                    ),
                ));
            }
        }
        Ok(Self {
            effective_from,
            spans,
        })
    }

    /// The first day the pattern applies.
    pub fn effective_from(&self) -> NaiveDate {
        self.effective_from
    }

    /// The spans, sorted by day and start.
    pub fn spans(&self) -> &[ShiftSpan] {
        &self.spans
    }
}

impl TryFrom<WeeklyShiftsWire> for WeeklyShifts {
    type Error = Invalid;
    fn try_from(w: WeeklyShiftsWire) -> Result<Self, Invalid> {
        Self::parse(w.effective_from, w.spans)
    }
}

/// A period a technician does not work (leave, training, sickness): `start < end`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "TimeOffWire")]
pub struct TimeOff {
    id: TimeOffId,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    reason: Option<Reason>,
}

/// The wire form of [`TimeOff`], checked on the way in.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TimeOffWire {
    id: TimeOffId,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    reason: Option<Reason>,
}

impl TimeOff {
    /// Accepts a period that ends after it starts.
    pub fn parse(
        id: TimeOffId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        reason: Option<Reason>,
    ) -> Result<Self, Invalid> {
        if end <= start {
            return Err(Invalid::new(
                "end_before_start",
                "time off ends after it starts",
            ));
        }
        Ok(Self {
            id,
            start,
            end,
            reason,
        })
    }

    /// Its id.
    pub fn id(&self) -> TimeOffId {
        self.id
    }

    /// When it starts.
    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    /// When it ends (exclusive).
    pub fn end(&self) -> DateTime<Utc> {
        self.end
    }

    /// Why, when given.
    pub fn reason(&self) -> Option<&Reason> {
        self.reason.as_ref()
    }
}

impl TryFrom<TimeOffWire> for TimeOff {
    type Error = Invalid;
    fn try_from(w: TimeOffWire) -> Result<Self, Invalid> {
        Self::parse(w.id, w.start, w.end, w.reason)
    }
}

/// How many jobs a technician takes in one local day: 1 to 100, 8 unless set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct DailyCapacity(u16);

impl DailyCapacity {
    /// Accepts 1 to 100.
    pub fn parse(jobs: u16) -> Result<Self, Invalid> {
        if (1..=100).contains(&jobs) {
            Ok(Self(jobs))
        } else {
            Err(Invalid::new(
                "out_of_range",
                "a daily capacity is 1 to 100 jobs",
            ))
        }
    }

    /// Jobs per day.
    pub fn get(self) -> u16 {
        self.0
    }
}

impl Default for DailyCapacity {
    fn default() -> Self {
        Self(8)
    }
}

impl TryFrom<u16> for DailyCapacity {
    type Error = Invalid;
    fn try_from(jobs: u16) -> Result<Self, Invalid> {
        Self::parse(jobs)
    }
}

impl From<DailyCapacity> for u16 {
    fn from(c: DailyCapacity) -> u16 {
        c.0
    }
}

/// Where and when a technician works, beyond the [`Technician`] record: the facts the workforce
/// procedures set and eligibility reads.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkProfile {
    /// The trades practised and how well.
    pub skills: Vec<Skill>,
    /// Certifications held.
    pub certifications: Vec<Certification>,
    /// Every weekly pattern set, old ones included (each applies from its date).
    pub shifts: Vec<WeeklyShifts>,
    /// Periods off work.
    pub time_off: Vec<TimeOff>,
    /// The technician's own service areas; none means all the organization's.
    pub service_areas: Vec<ServiceArea>,
    /// Where the technician starts the day.
    pub home_base: Option<GeoPoint>,
    /// Jobs per local day.
    pub daily_capacity: DailyCapacity,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn tech(active: bool, trades: &[&str]) -> Technician {
        let t = Utc
            .with_ymd_and_hms(2030, 1, 1, 0, 0, 0)
            .single()
            .expect("valid date");
        Technician {
            id: TechnicianId::from_uuid(uuid::Uuid::from_u128(7)),
            version: 1,
            name: Name::parse("Ada").expect("valid"),
            email: None,
            phone: None,
            trades: normalize_trades(
                trades
                    .iter()
                    .map(|t| TradeCode::parse(t).expect("valid"))
                    .collect(),
            ),
            active,
            created_at: t,
            updated_at: t,
        }
    }

    #[test]
    fn every_failed_rule_is_returned() {
        let plumbing = TradeCode::parse("plumbing").expect("valid");
        assert!(assignment_refusals(&tech(true, &["plumbing", "hvac"]), &plumbing).is_empty());
        let codes: Vec<_> = assignment_refusals(&tech(false, &["hvac"]), &plumbing)
            .into_iter()
            .map(|r| r.code)
            .collect();
        assert_eq!(codes, ["TECHNICIAN_INACTIVE", "TRADE_MISSING"]);
    }

    #[test]
    fn trades_are_normalized() {
        assert_eq!(tech(true, &["hvac", "electrical", "hvac"]).trades.len(), 2);
    }

    #[test]
    fn levels_and_capacities_are_bounded() {
        assert!(SkillLevel::parse(0).is_err());
        assert!(SkillLevel::parse(6).is_err());
        assert_eq!(SkillLevel::parse(5).map(SkillLevel::get), Ok(5));
        assert!(serde_json::from_str::<SkillLevel>("7").is_err());
        assert_eq!(DailyCapacity::default().get(), 8);
        assert!(DailyCapacity::parse(0).is_err());
    }

    #[test]
    fn shift_spans_parse_local_times() {
        let span = ShiftSpan::parse(Weekday::Mon, "08:00", "17:30").expect("valid");
        assert_eq!((span.start_minute(), span.end_minute()), (480, 1050));
        assert_eq!(
            span.start(),
            NaiveTime::from_hms_opt(8, 0, 0).expect("valid")
        );
        assert!(ShiftSpan::parse(Weekday::Mon, "22:00", "24:00").is_ok());
        for (s, e) in [
            ("17:00", "08:00"),
            ("08:00", "08:00"),
            ("8:00", "17:00"),
            ("24:00", "24:00"),
            ("08:00", "24:01"),
            ("08:60", "09:00"),
        ] {
            assert!(ShiftSpan::parse(Weekday::Mon, s, e).is_err(), "{s}-{e}");
        }
        let from = NaiveDate::from_ymd_opt(2031, 1, 6).expect("valid");
        let overlap = WeeklyShifts::parse(
            from,
            vec![
                ShiftSpan::parse(Weekday::Tue, "08:00", "12:00").expect("valid"),
                ShiftSpan::parse(Weekday::Tue, "11:00", "17:00").expect("valid"),
            ],
        );
        assert_eq!(
            overlap.map_err(|e| e.message),
            Err("on tue the span 08:00–12:00 overlaps 11:00–17:00".to_owned())
        );
        let json = serde_json::json!({
            "effectiveFrom": "2031-01-06",
            "spans": [
                {"weekday": "tue", "start": "13:00", "end": "17:00"},
                {"weekday": "mon", "start": "08:00", "end": "12:00"},
                {"weekday": "tue", "start": "08:00", "end": "12:00"}
            ]
        });
        let weekly: WeeklyShifts = serde_json::from_value(json).expect("valid");
        assert_eq!(weekly.spans()[0].weekday(), Weekday::Mon);
        assert_eq!(
            serde_json::to_value(&weekly).expect("serializes")["spans"][2],
            serde_json::json!({"weekday": "tue", "start": "13:00", "end": "17:00"})
        );
        let bad = serde_json::json!({"effectiveFrom": "2031-01-06", "spans": [
            {"weekday": "mon", "start": "08:00", "end": "12:00"},
            {"weekday": "mon", "start": "09:00", "end": "10:00"}
        ]});
        assert!(serde_json::from_value::<WeeklyShifts>(bad).is_err());
    }

    #[test]
    fn time_off_ends_after_it_starts_and_certifications_match_by_name() {
        let t = Utc
            .with_ymd_and_hms(2031, 1, 1, 0, 0, 0)
            .single()
            .expect("valid");
        let id = TimeOffId::from_uuid(uuid::Uuid::from_u128(1));
        assert!(TimeOff::parse(id, t, t, None).is_err());
        let cert = Certification {
            id: CertificationId::from_uuid(uuid::Uuid::from_u128(2)),
            name: Name::parse("EPA 608").expect("valid"),
            issuer: Name::parse("EPA").expect("valid"),
            number: None,
            expires_on: NaiveDate::from_ymd_opt(2031, 6, 30),
            trades: vec![],
            created_at: t,
        };
        assert!(cert.is_named(&Name::parse("epa 608").expect("valid")));
        assert!(cert.valid_on(NaiveDate::from_ymd_opt(2031, 6, 30).expect("valid")));
        assert!(!cert.valid_on(NaiveDate::from_ymd_opt(2031, 7, 1).expect("valid")));
    }
}
