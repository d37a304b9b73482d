//! `dispatch/v1`: assigning technicians, the dispatch board, booking slots and the scheduling
//! settings (travel model, arrival windows).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use hestami_core::customer::PostalCode;
use hestami_core::dispatch::board::{ArrivalWindow, LegOrigin, SchedulingSettings, TravelSettings};
use hestami_core::eligibility::{Candidate, FailedRule};
use hestami_core::ids::{CustomerId, JobId, PropertyId, TechnicianId};
use hestami_core::job::{Job, TimeWindow};
use hestami_core::text::TradeCode;
use hestami_core::workforce::SkillLevel;
use hestami_store::app::PageRequest;
use hestami_store::app::board::{
    Board, BoardQuery, BoardStop, BoardTechnician, DraftJob, MAX_BOARD_DAYS, MAX_SLOT_DAYS,
    MAX_SLOT_OPTIONS, SettingsView, SlotQuery, SlotSubject, SlotSuggestions, UnassignedVisit,
};
use hestami_store::app::job::{AssignTech, DispatchCommand, UpdateSchedulingSettings};

use super::contractor::RuleFailureDto;
use super::contractor::name_list;
use super::job::{JobDto, PriorityDto, WindowDto};
use super::technician::skill_level;
use crate::error::ApiError;
use crate::rpc::{Ctx, Name, Procedure, Validator, mutation, query, validate};
use crate::v2::job::AppointmentStatusDto;

/// `dispatch/v1/assignTech`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AssignTechInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which job (requested, scheduled or dispatched).
    pub job_id: Uuid,
    /// Who: an active technician of the organization holding the job's trade.
    pub technician_id: Uuid,
    /// Refuse with `VERSION_CONFLICT` unless the job is at this version.
    pub expected_version: Option<i64>,
}

mutating!(AssignTechInput);

/// `dispatch/v1/eligibleTechs`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EligibleTechsInput {
    /// Which job.
    pub job_id: Uuid,
    /// The window to judge (with `windowEnd`); default: the job's own window.
    #[serde(default, deserialize_with = "crate::wire::option_date_time")]
    pub window_start: Option<DateTime<Utc>>,
    /// The window closes; given with `windowStart`.
    #[serde(default, deserialize_with = "crate::wire::option_date_time")]
    pub window_end: Option<DateTime<Utc>>,
}

/// A technician's place in the list for a job.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CandidateDto {
    /// Who.
    pub technician_id: Uuid,
    /// Whether every rule holds.
    pub eligible: bool,
    /// Every rule that failed, with the data that failed it.
    pub failed_rules: Vec<RuleFailureDto>,
    /// The rank's score (higher is better; 20 per skill level, less a point per km and ten per
    /// job that day); ineligible technicians are listed after every eligible one whatever it is.
    pub score: f64,
    /// Why the rank, for a person.
    pub reasons: Vec<String>,
}

impl From<FailedRule> for RuleFailureDto {
    fn from(f: FailedRule) -> Self {
        Self {
            code: f.code.to_owned(),
            message: f.message,
            data: f.data,
        }
    }
}

impl From<Candidate> for CandidateDto {
    fn from(c: Candidate) -> Self {
        Self {
            technician_id: c.technician_id.as_uuid(),
            eligible: c.eligible,
            failed_rules: c.failed.into_iter().map(Into::into).collect(),
            score: c.score,
            reasons: c.reasons,
        }
    }
}

/// Every active technician for a job.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EligibleTechsOutput {
    /// Eligible technicians first, best first; then the ineligible ones.
    pub candidates: Vec<CandidateDto>,
}

async fn eligible_techs(ctx: Ctx, i: EligibleTechsInput) -> Result<EligibleTechsOutput, ApiError> {
    let window = validate(|v| match (i.window_start, i.window_end) {
        (None, None) => Some(None),
        (Some(start), Some(end)) => v
            .check("windowEnd", TimeWindow::parse(start, end))
            .map(Some),
        (Some(_), None) => {
            v.fail(
                "windowEnd",
                "required",
                "windowEnd is required with windowStart",
            );
            None
        }
        (None, Some(_)) => {
            v.fail(
                "windowStart",
                "required",
                "windowStart is required with windowEnd",
            );
            None
        }
    })?;
    let candidates = ctx
        .services
        .eligible_techs(ctx.caller()?, JobId::from_uuid(i.job_id), window)
        .await?;
    Ok(EligibleTechsOutput {
        candidates: candidates.into_iter().map(Into::into).collect(),
    })
}

/// `dispatch/v1/board`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BoardInput {
    /// The first local date, in the organization's zone (`YYYY-MM-DD`).
    #[serde(deserialize_with = "crate::wire::date")]
    pub date: NaiveDate,
    /// How many days, 1 to 7 (default 1).
    pub days: Option<u32>,
    /// Only technicians practising this trade, and visits and jobs of it.
    pub trade: Option<String>,
    /// Only these technicians.
    pub technician_ids: Option<Vec<Uuid>>,
    /// Only visits in these states.
    pub statuses: Option<Vec<AppointmentStatusDto>>,
    /// Only visits and jobs at properties with these postal codes.
    pub postal_codes: Option<Vec<String>>,
    /// Technicians per page, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// A point.
#[derive(Debug, Serialize, ToSchema)]
pub struct PointDto {
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
}

/// Travel before a stop.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LegDto {
    /// `home_base` or `previous_stop`.
    pub from: String,
    /// Road kilometres, estimated by the organization's travel model.
    pub km: f64,
    /// Minutes, estimated.
    pub minutes: u32,
}

/// A stop's flags.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlagsDto {
    /// The window has passed and nobody is on site.
    pub late: bool,
    /// Projected to arrive after the window, or (before the job was reached) after its SLA
    /// deadline.
    pub at_risk: bool,
    /// The SLA deadline passed before anyone reached the job.
    pub sla_breached: bool,
}

/// A visit on the board.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BoardStopDto {
    /// The appointment (null: a v1 job's own window and technician).
    pub appointment_id: Option<Uuid>,
    /// The job.
    pub job_id: Uuid,
    /// The visit's state: scheduled, dispatched, en_route, on_site, done, on_hold or cancelled.
    pub status: String,
    /// The job's state.
    pub job_status: String,
    /// When the crew is expected.
    pub window: WindowDto,
    /// When the crew is planned to start, inside the window, if planned.
    pub planned_start: Option<DateTime<Utc>>,
    /// Minutes on site.
    pub estimated_minutes: u32,
    /// `lead` or `helper` on a technician's day; null in the unassigned queue.
    pub role: Option<String>,
    /// The job's summary.
    pub summary: String,
    /// The job's trade.
    pub trade: String,
    /// The job's priority.
    pub priority: String,
    /// The job's SLA deadline.
    pub sla_deadline: DateTime<Utc>,
    /// Where, when known.
    pub location: Option<PointDto>,
    /// The travel before it (from the home base or the stop before), when both ends are known.
    pub leg: Option<LegDto>,
    /// When the crew is projected to arrive (null once on site, done or cancelled).
    pub projected_arrival: Option<DateTime<Utc>>,
    /// Its flags.
    pub flags: FlagsDto,
}

fn flags_dto(f: hestami_core::dispatch::board::Flags) -> FlagsDto {
    FlagsDto {
        late: f.late,
        at_risk: f.at_risk,
        sla_breached: f.sla_breached,
    }
}

fn stop_dto(
    visit: &hestami_core::dispatch::board::Visit,
    role: Option<String>,
    summary: String,
    trade: String,
    priority: String,
) -> BoardStopDto {
    BoardStopDto {
        appointment_id: visit.appointment_id.map(|a| a.as_uuid()),
        job_id: visit.job_id.as_uuid(),
        status: visit.status.as_str().to_owned(),
        job_status: visit.job_status.as_str().to_owned(),
        window: WindowDto {
            start: visit.window.start(),
            end: visit.window.end(),
        },
        planned_start: visit.planned_start,
        estimated_minutes: visit.estimated_minutes,
        role,
        summary,
        trade,
        priority,
        sla_deadline: visit.sla_deadline,
        location: visit.location.map(|p| PointDto {
            lat: p.lat(),
            lon: p.lon(),
        }),
        leg: None,
        projected_arrival: None,
        flags: FlagsDto {
            late: false,
            at_risk: false,
            sla_breached: false,
        },
    }
}

impl From<BoardStop> for BoardStopDto {
    fn from(s: BoardStop) -> Self {
        let mut dto = stop_dto(
            &s.stop.visit,
            Some(s.role),
            s.summary.as_str().to_owned(),
            s.trade.as_str().to_owned(),
            s.priority.as_str().to_owned(),
        );
        dto.leg = s.stop.leg.map(|l| LegDto {
            from: match l.from {
                LegOrigin::HomeBase => "home_base",
                LegOrigin::PreviousStop => "previous_stop",
            }
            .to_owned(),
            km: l.km,
            minutes: l.minutes,
        });
        dto.projected_arrival = s.stop.projected_arrival;
        dto.flags = flags_dto(s.stop.flags);
        dto
    }
}

impl From<UnassignedVisit> for BoardStopDto {
    fn from(u: UnassignedVisit) -> Self {
        let mut dto = stop_dto(
            &u.visit,
            None,
            u.summary.as_str().to_owned(),
            u.trade.as_str().to_owned(),
            u.priority.as_str().to_owned(),
        );
        dto.flags = flags_dto(u.flags);
        dto
    }
}

/// A technician's load on a day.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DayLoadDto {
    /// Visits that day (not counting cancelled ones).
    pub visits: usize,
    /// The technician's daily capacity, in jobs.
    pub capacity: u16,
    /// Minutes on site booked.
    pub booked_minutes: u32,
    /// Minutes of travel between the day's stops, where known.
    pub travel_minutes: u32,
}

/// A technician's local day.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BoardDayDto {
    /// The local date.
    pub date: NaiveDate,
    /// The shift spans that day.
    pub shifts: Vec<WindowDto>,
    /// Time off overlapping that day.
    pub time_off: Vec<WindowDto>,
    /// The stops in window order, each with its travel leg and flags.
    pub stops: Vec<BoardStopDto>,
    /// The load against capacity.
    pub load: DayLoadDto,
}

/// A technician's row.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BoardTechnicianDto {
    /// Who.
    pub technician_id: Uuid,
    /// Their name.
    pub name: String,
    /// Each day asked for.
    pub days: Vec<BoardDayDto>,
}

/// A job waiting for a first visit.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnassignedJobDto {
    /// The job.
    pub job_id: Uuid,
    /// Its summary.
    pub summary: String,
    /// Its trade.
    pub trade: String,
    /// The least skill level it needs.
    pub min_skill_level: u8,
    /// Its priority.
    pub priority: String,
    /// Its SLA deadline.
    pub sla_deadline: DateTime<Utc>,
    /// Whether the SLA is breached.
    pub sla_breached: bool,
}

/// What waits for a technician.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnassignedDto {
    /// Requested jobs (no visit), most urgent SLA first, at most 200 (first page only).
    pub jobs: Vec<UnassignedJobDto>,
    /// Visits in the days asked for without a lead, by window (first page only).
    pub appointments: Vec<BoardStopDto>,
}

/// The board.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BoardOutput {
    /// The organization's zone: the days are local to it.
    pub time_zone: String,
    /// The first instant covered.
    pub from: DateTime<Utc>,
    /// The instant after the last.
    pub to: DateTime<Utc>,
    /// Active technicians of this page, by id.
    pub technicians: Vec<BoardTechnicianDto>,
    /// What waits.
    pub unassigned: UnassignedDto,
    /// Pass as `cursor` for the next technicians; null on the last page.
    pub next_cursor: Option<String>,
}

impl From<BoardTechnician> for BoardTechnicianDto {
    fn from(t: BoardTechnician) -> Self {
        Self {
            technician_id: t.technician_id.as_uuid(),
            name: t.name.as_str().to_owned(),
            days: t
                .days
                .into_iter()
                .map(|d| BoardDayDto {
                    date: d.date,
                    shifts: d.shifts.iter().map(span).collect(),
                    time_off: d.time_off.iter().map(span).collect(),
                    stops: d.stops.into_iter().map(Into::into).collect(),
                    load: DayLoadDto {
                        visits: d.load.visits,
                        capacity: d.load.capacity,
                        booked_minutes: d.load.booked_minutes,
                        travel_minutes: d.load.travel_minutes,
                    },
                })
                .collect(),
        }
    }
}

impl From<Board> for BoardOutput {
    fn from(b: Board) -> Self {
        Self {
            time_zone: b.time_zone,
            from: b.from,
            to: b.to,
            technicians: b.technicians.into_iter().map(Into::into).collect(),
            unassigned: UnassignedDto {
                jobs: b
                    .unassigned
                    .jobs
                    .into_iter()
                    .map(|j| UnassignedJobDto {
                        job_id: j.job_id.as_uuid(),
                        summary: j.summary.as_str().to_owned(),
                        trade: j.trade.as_str().to_owned(),
                        min_skill_level: j.min_skill_level.get(),
                        priority: j.priority.as_str().to_owned(),
                        sla_deadline: j.sla_deadline,
                        sla_breached: j.sla_breached,
                    })
                    .collect(),
                appointments: b
                    .unassigned
                    .appointments
                    .into_iter()
                    .map(Into::into)
                    .collect(),
            },
            next_cursor: b.next_cursor,
        }
    }
}

fn span(s: &hestami_store::app::board::Span) -> WindowDto {
    WindowDto {
        start: s.start,
        end: s.end,
    }
}

fn optional_trade(v: &mut Validator, raw: Option<&str>) -> Option<Option<TradeCode>> {
    v.optional("trade", raw, TradeCode::parse)
}

async fn board(ctx: Ctx, i: BoardInput) -> Result<BoardOutput, ApiError> {
    let page = PageRequest::parse(i.limit, i.cursor.as_deref())?;
    let query = validate(|v| {
        let days = i.days.unwrap_or(1);
        if !(1..=MAX_BOARD_DAYS).contains(&days) {
            v.fail(
                "days",
                "out_of_range",
                &format!("days is between 1 and {MAX_BOARD_DAYS}"),
            );
        }
        let trade = optional_trade(v, i.trade.as_deref());
        let postal: Vec<Option<PostalCode>> = i
            .postal_codes
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(k, p)| v.check(&format!("postalCodes[{k}]"), PostalCode::parse(p)))
            .collect();
        let postal: Option<Vec<PostalCode>> = postal.into_iter().collect();
        Some(BoardQuery {
            date: i.date,
            days,
            trade: trade?,
            technician_ids: i
                .technician_ids
                .unwrap_or_default()
                .into_iter()
                .map(TechnicianId::from_uuid)
                .collect(),
            statuses: i
                .statuses
                .unwrap_or_default()
                .into_iter()
                .map(Into::into)
                .collect(),
            postal_codes: postal?,
            page,
        })
    })?;
    Ok(ctx
        .services
        .dispatch_board(ctx.caller()?, query)
        .await?
        .into())
}

/// A job not created yet, as a call-taker describes it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DraftJobInput {
    /// The customer.
    pub customer_id: Uuid,
    /// One of the customer's properties.
    pub property_id: Uuid,
    /// The trade.
    pub trade: String,
    /// The least skill level, 1 to 5 (default 1).
    pub min_skill_level: Option<i64>,
    /// Certifications the technician must hold.
    pub required_certifications: Option<Vec<String>>,
    /// How urgent (sets the SLA deadline from now).
    pub priority: PriorityDto,
}

/// `dispatch/v1/suggestSlots`: give `jobId` or `draft`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SuggestSlotsInput {
    /// An existing job.
    pub job_id: Option<Uuid>,
    /// A job not created yet.
    pub draft: Option<DraftJobInput>,
    /// The first local date to look at (default: today in the organization's zone).
    #[serde(default, deserialize_with = "crate::wire::option_date")]
    pub from_date: Option<NaiveDate>,
    /// How many days to look at, 1 to 14 (default 7).
    pub lookahead_days: Option<u32>,
    /// How many options, 1 to 50 (default 5).
    pub count: Option<u32>,
}

/// A booking option.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlotOptionDto {
    /// Who.
    pub technician_id: Uuid,
    /// The arrival window.
    pub window: WindowDto,
    /// Added travel in minutes from the stop before (or the home base), when known.
    pub added_travel_minutes: Option<u32>,
    /// The technician's bookings that day before this one.
    pub load: usize,
    /// Whether the window opens by the SLA deadline (if not, booking it needs an override).
    pub within_sla: bool,
    /// Why it is offered.
    pub reasons: Vec<String>,
}

/// A failed rule and in how many windows it failed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleCountDto {
    /// The rule's code (as `eligibleTechs`).
    pub code: String,
    /// In how many of the windows tried.
    pub windows: usize,
}

/// A technician never offered, and why.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeftOutDto {
    /// Who.
    pub technician_id: Uuid,
    /// Every rule that failed, by code.
    pub failed_rules: Vec<RuleCountDto>,
}

/// `dispatch/v1/suggestSlots`'s answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuggestSlotsOutput {
    /// The SLA deadline judged against (null for a return visit, which it does not bind).
    pub sla_deadline: Option<DateTime<Utc>>,
    /// The best options: within the SLA first, then earliest, least added travel, lightest day.
    pub options: Vec<SlotOptionDto>,
    /// Active technicians eligible in no window tried.
    pub left_out: Vec<LeftOutDto>,
}

impl From<SlotSuggestions> for SuggestSlotsOutput {
    fn from(s: SlotSuggestions) -> Self {
        Self {
            sla_deadline: s.sla_deadline,
            options: s
                .options
                .into_iter()
                .map(|o| SlotOptionDto {
                    technician_id: o.technician_id.as_uuid(),
                    window: WindowDto {
                        start: o.window.start(),
                        end: o.window.end(),
                    },
                    added_travel_minutes: o.added_travel_minutes,
                    load: o.load,
                    within_sla: o.within_sla,
                    reasons: o.reasons,
                })
                .collect(),
            left_out: s
                .left_out
                .into_iter()
                .map(|l| LeftOutDto {
                    technician_id: l.technician_id.as_uuid(),
                    failed_rules: l
                        .failed_rules
                        .into_iter()
                        .map(|(code, windows)| RuleCountDto { code, windows })
                        .collect(),
                })
                .collect(),
        }
    }
}

async fn suggest_slots(ctx: Ctx, i: SuggestSlotsInput) -> Result<SuggestSlotsOutput, ApiError> {
    let query = validate(|v| {
        let days = i.lookahead_days.unwrap_or(7);
        if !(1..=MAX_SLOT_DAYS).contains(&days) {
            v.fail(
                "lookaheadDays",
                "out_of_range",
                &format!("lookaheadDays is between 1 and {MAX_SLOT_DAYS}"),
            );
        }
        let count = i.count.unwrap_or(5) as usize;
        if !(1..=MAX_SLOT_OPTIONS).contains(&count) {
            v.fail(
                "count",
                "out_of_range",
                &format!("count is between 1 and {MAX_SLOT_OPTIONS}"),
            );
        }
        let subject = match (i.job_id, i.draft) {
            (Some(job), None) => Some(SlotSubject::Job(JobId::from_uuid(job))),
            (None, Some(d)) => {
                let trade = v.check("draft.trade", TradeCode::parse(&d.trade));
                let level = match d.min_skill_level {
                    None => Some(SkillLevel::default()),
                    Some(l) => v.check("draft.minSkillLevel", skill_level(l)),
                };
                let certs = name_list(
                    v,
                    "draft.requiredCertifications",
                    d.required_certifications.as_deref().unwrap_or_default(),
                );
                Some(SlotSubject::Draft(DraftJob {
                    customer_id: CustomerId::from_uuid(d.customer_id),
                    property_id: PropertyId::from_uuid(d.property_id),
                    trade: trade?,
                    min_skill_level: level?,
                    required_certifications: certs?,
                    priority: d.priority.into(),
                }))
            }
            (Some(_), Some(_)) => {
                v.fail("draft", "conflict", "give jobId or draft, not both");
                None
            }
            (None, None) => {
                v.fail("jobId", "required", "give jobId or draft");
                None
            }
        };
        Some(SlotQuery {
            subject: subject?,
            from: i.from_date,
            days,
            limit: count,
        })
    })?;
    Ok(ctx
        .services
        .suggest_slots(ctx.caller()?, query)
        .await?
        .into())
}

/// The travel model.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TravelDto {
    /// Road distance over great-circle distance, 1 to 3.
    pub detour_factor: f64,
    /// Average speed door to door, 5 to 130 km/h.
    pub speed_kmh: f64,
}

/// A customer arrival window, local time of day.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArrivalWindowDto {
    /// Opens, `HH:MM`.
    pub start: String,
    /// Closes, `HH:MM` (24:00 for midnight), after `start`.
    pub end: String,
}

/// The organization's scheduling settings.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchedulingSettingsDto {
    /// 0 until first set; +1 with each change.
    pub version: i64,
    /// The travel model used by the board and booking slots.
    pub travel: TravelDto,
    /// The windows offered to customers, in order.
    pub arrival_windows: Vec<ArrivalWindowDto>,
}

fn clock(minute: u16) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

impl From<SettingsView> for SchedulingSettingsDto {
    fn from(s: SettingsView) -> Self {
        Self {
            version: s.version,
            travel: TravelDto {
                detour_factor: s.settings.travel.detour_factor,
                speed_kmh: s.settings.travel.speed_kmh,
            },
            arrival_windows: s
                .settings
                .arrival_windows
                .iter()
                .map(|w| ArrivalWindowDto {
                    start: clock(w.start_minute),
                    end: clock(w.end_minute),
                })
                .collect(),
        }
    }
}

/// `dispatch/v1/updateSettings`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateSettingsInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The travel model.
    pub travel: TravelDto,
    /// The arrival windows, 1 to 24, not overlapping.
    pub arrival_windows: Vec<ArrivalWindowDto>,
    /// Refuse with `VERSION_CONFLICT` unless the settings are at this version (0: never set).
    pub expected_version: Option<i64>,
}

mutating!(UpdateSettingsInput);

/// `HH:MM` as minutes after midnight (`24:00` allowed when `end`).
fn minute_of(raw: &str, end: bool) -> Option<u16> {
    let (h, m) = raw.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) if end => Some(1_440),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

fn convert_settings(i: UpdateSettingsInput) -> Result<DispatchCommand, ApiError> {
    validate(|v| {
        let mut windows = Vec::with_capacity(i.arrival_windows.len());
        for (k, w) in i.arrival_windows.iter().enumerate() {
            let start = minute_of(&w.start, false);
            let end = minute_of(&w.end, true);
            if start.is_none() {
                v.fail(
                    &format!("arrivalWindows[{k}].start"),
                    "invalid_time",
                    "a time is HH:MM, 00:00 to 23:59",
                );
            }
            if end.is_none() {
                v.fail(
                    &format!("arrivalWindows[{k}].end"),
                    "invalid_time",
                    "a time is HH:MM, 00:00 to 24:00",
                );
            }
            if let (Some(start_minute), Some(end_minute)) = (start, end) {
                windows.push(ArrivalWindow {
                    start_minute,
                    end_minute,
                });
            }
        }
        let travel = TravelSettings {
            detour_factor: i.travel.detour_factor,
            speed_kmh: i.travel.speed_kmh,
        };
        let settings = match SchedulingSettings::parse(travel, windows) {
            Ok(s) => Some(s),
            Err(problems) => {
                for (field, invalid) in problems {
                    v.fail(&field, invalid.code, &invalid.message);
                }
                None
            }
        };
        Some(DispatchCommand::UpdateSettings(UpdateSchedulingSettings {
            settings: settings?,
            expected_version: i.expected_version,
        }))
    })
}

async fn get_settings(ctx: Ctx, _: super::Empty) -> Result<SchedulingSettingsDto, ApiError> {
    Ok(ctx
        .services
        .scheduling_settings(ctx.caller()?)
        .await?
        .into())
}

fn convert(i: AssignTechInput) -> Result<DispatchCommand, ApiError> {
    Ok(DispatchCommand::AssignTech(AssignTech {
        job_id: JobId::from_uuid(i.job_id),
        technician_id: TechnicianId::from_uuid(i.technician_id),
        expected_version: i.expected_version,
    }))
}

fn name(name: &'static str, summary: &'static str, errors: &'static [&'static str]) -> Name {
    Name {
        namespace: "dispatch",
        version: "v1",
        name,
        summary,
        errors,
    }
}

pub(crate) fn procedures() -> Vec<Procedure> {
    vec![
        mutation(
            name(
                "assignTech",
                "Assign (or replace) a job's technician",
                &[
                    "NOT_FOUND",
                    "VERSION_CONFLICT",
                    "TECHNICIAN_INELIGIBLE",
                    "JOB_ASSIGNMENT_NOT_ALLOWED",
                    "JOB_USES_APPOINTMENTS",
                ],
            ),
            convert,
            <JobDto as From<Job>>::from,
        ),
        query(
            name(
                "eligibleTechs",
                "Every active technician for a job in a window: eligible or every failed rule, eligible ones ranked",
                &["NOT_FOUND", "JOB_WINDOW_REQUIRED"],
            ),
            eligible_techs,
        ),
        query(
            name(
                "board",
                "The dispatch board for 1 to 7 local days: every active technician's shifts, time off and stops in order with travel legs, projections and flags (late, at risk, SLA breached), their load, and the unassigned queue",
                &[],
            ),
            board,
        ),
        query(
            name(
                "suggestSlots",
                "The best (technician, arrival window) options for a job or a draft over the next days, each with why; and why every other technician is left out",
                &["NOT_FOUND", "TRADE_UNKNOWN"],
            ),
            suggest_slots,
        ),
        query(
            name(
                "getSettings",
                "The organization's scheduling settings: travel model and arrival windows",
                &[],
            ),
            get_settings,
        ),
        mutation(
            name(
                "updateSettings",
                "Set the organization's travel model and arrival windows",
                &["VERSION_CONFLICT"],
            ),
            convert_settings,
            <SchedulingSettingsDto as From<SettingsView>>::from,
        ),
    ]
}
