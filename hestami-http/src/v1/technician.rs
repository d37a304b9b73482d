//! `technician/v1`: the workforce.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use hestami_core::Invalid;
use hestami_core::customer::GeoPoint;
use hestami_core::field::{DeviceReport, Fix};
use hestami_core::ids::{CertificationId, TechnicianId, TimeOffId};
use hestami_core::schedule::{Span, SpanReason};
use hestami_core::text::{Email, Name as PersonName, Phone, Reason, TradeCode};
use hestami_core::timesheet::{ClockState, DayTime, OvertimeRule, PunchKind};
use hestami_core::workforce::{
    Certification, DailyCapacity, ShiftSpan, Skill, SkillLevel, Technician, TimeOff, Weekday,
    WeeklyShifts,
};
use hestami_store::app::PageRequest;
use hestami_store::app::field::{FieldCommand, LocationReported, Position};
use hestami_store::app::technician::{
    LinkCommand, NewTechnician, TechnicianCommand, TechnicianInvite, TechnicianLink,
    TechnicianUpdate,
};
use hestami_store::app::time::{Punched, RecordedPunch, TimeCommand, Timesheet};
use hestami_store::app::workforce::{NewCertification, TechnicianDetail, WorkforceCommand};
use hestami_store::sessions::Device;

use super::contractor::{AreaDto, areas, trade_list};
use super::customer::{LocationDto, patch};
use crate::error::ApiError;
use crate::rpc::{Ctx, Name, Procedure, Validator, double_option, mutation, query, validate};

/// A technician.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TechnicianDto {
    /// Its id.
    pub id: Uuid,
    /// 1 on creation, +1 on each change.
    pub version: i64,
    /// Display name.
    pub name: String,
    /// Contact address (unique within the organization).
    pub email: Option<String>,
    /// Contact number.
    pub phone: Option<String>,
    /// Trades held, sorted.
    pub trades: Vec<String>,
    /// Whether the technician takes work.
    pub active: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<Technician> for TechnicianDto {
    fn from(t: Technician) -> Self {
        Self {
            id: t.id.as_uuid(),
            version: t.version,
            name: t.name.as_str().to_owned(),
            email: t.email.map(|e| e.as_str().to_owned()),
            phone: t.phone.map(|p| p.as_str().to_owned()),
            trades: t.trades.iter().map(|t| t.as_str().to_owned()).collect(),
            active: t.active,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// `technician/v1/create`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTechnicianInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Display name.
    pub name: String,
    /// Contact address (unique within the organization).
    pub email: Option<String>,
    /// Contact number.
    pub phone: Option<String>,
    /// Trades held, such as `plumbing` or `hvac`.
    pub trades: Vec<String>,
}

/// `technician/v1/get`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetTechnicianInput {
    /// Which technician.
    pub technician_id: Uuid,
}

/// `technician/v1/list`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListTechniciansInput {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// Only active (true) or deactivated (false) technicians.
    pub active: Option<bool>,
    /// Only technicians holding this trade.
    pub trade: Option<String>,
}

/// A page of technicians.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TechnicianPage {
    /// The technicians, in creation order.
    pub items: Vec<TechnicianDto>,
    /// The cursor of the next page, or null on the last.
    pub next_cursor: Option<String>,
}

/// `technician/v1/update`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateTechnicianInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which technician.
    pub technician_id: Uuid,
    /// Refuse with `VERSION_CONFLICT` unless the technician is at this version.
    pub expected_version: Option<i64>,
    /// A new name.
    pub name: Option<String>,
    /// A new e-mail address, or null to clear it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    /// A new phone number, or null to clear it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
    /// The new set of trades.
    pub trades: Option<Vec<String>>,
}

/// `technician/v1/deactivate`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeactivateTechnicianInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which technician.
    pub technician_id: Uuid,
    /// Refuse with `VERSION_CONFLICT` unless the technician is at this version.
    pub expected_version: Option<i64>,
}

/// `technician/v1/linkUser`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinkUserInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which technician.
    pub technician_id: Uuid,
    /// The user who signs in as the technician (a member of the organization), or null to
    /// unlink. A member with the `technician` role sees and moves only the jobs and appointments
    /// of the technician linked to their user.
    #[schema(required = true)]
    pub user_id: Option<Uuid>,
}

/// A technician and the user linked to them.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TechnicianLinkDto {
    /// The technician.
    pub technician_id: Uuid,
    /// The user who signs in as them.
    pub user_id: Option<Uuid>,
    /// The technician's version after the change.
    pub version: i64,
}

impl From<TechnicianLink> for TechnicianLinkDto {
    fn from(l: TechnicianLink) -> Self {
        Self {
            technician_id: l.technician_id.as_uuid(),
            user_id: l.user_id.map(|u| u.as_uuid()),
            version: l.version,
        }
    }
}

fn convert_link(i: LinkUserInput) -> Result<LinkCommand, ApiError> {
    Ok(LinkCommand::LinkUser {
        technician_id: TechnicianId::from_uuid(i.technician_id),
        user_id: i.user_id.map(hestami_core::ids::UserId::from_uuid),
    })
}

/// `technician/v1/invite`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InviteTechnicianInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which technician (active).
    pub technician_id: Uuid,
    /// The person's e-mail address. Their user is created if new, made a member with the
    /// `technician` role unless they are a member already, and linked to the technician.
    pub email: String,
}

/// An invitation: give the code to the person, who sets a password with `auth/v1/acceptInvite`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TechnicianInviteDto {
    /// The technician.
    pub technician_id: Uuid,
    /// The user linked to them.
    pub user_id: Uuid,
    /// The technician's version after the change.
    pub version: i64,
    /// The invitation code: single use. A replay of the same request answers the same code.
    pub invite_code: String,
    /// When the code stops working (7 days).
    pub expires_at: DateTime<Utc>,
}

impl From<TechnicianInvite> for TechnicianInviteDto {
    fn from(i: TechnicianInvite) -> Self {
        Self {
            technician_id: i.technician_id.as_uuid(),
            user_id: i.user_id.as_uuid(),
            version: i.version,
            invite_code: i.invite.code,
            expires_at: i.invite.expires_at,
        }
    }
}

fn convert_invite(i: InviteTechnicianInput) -> Result<LinkCommand, ApiError> {
    validate(|v| {
        let email = v.check("email", Email::parse(&i.email))?;
        Some(LinkCommand::Invite {
            technician_id: TechnicianId::from_uuid(i.technician_id),
            email,
        })
    })
}

/// `technician/v1/devices`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TechnicianDevicesInput {
    /// Which technician.
    pub technician_id: Uuid,
}

/// A device the technician's user signed in on.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceDto {
    /// The app installation's id.
    pub device_id: Uuid,
    /// Its name.
    pub name: String,
    /// First signed in.
    pub created_at: DateTime<Utc>,
    /// Last signed in or refreshed.
    pub last_seen_at: DateTime<Utc>,
    /// When its session ended (signed out or revoked); null while signed in.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<Device> for DeviceDto {
    fn from(d: Device) -> Self {
        Self {
            device_id: d.device_id,
            name: d.name,
            created_at: d.created_at,
            last_seen_at: d.last_seen_at,
            revoked_at: d.revoked_at,
        }
    }
}

/// `technician/v1/devices`'s result.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TechnicianDevicesOutput {
    /// Most recently seen first; empty when no user is linked.
    pub devices: Vec<DeviceDto>,
}

async fn devices(ctx: Ctx, i: TechnicianDevicesInput) -> Result<TechnicianDevicesOutput, ApiError> {
    let devices = ctx
        .services
        .technician_devices(ctx.caller()?, TechnicianId::from_uuid(i.technician_id))
        .await?;
    Ok(TechnicianDevicesOutput {
        devices: devices.into_iter().map(DeviceDto::from).collect(),
    })
}

/// `technician/v1/revokeDevice`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RevokeDeviceInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which technician.
    pub technician_id: Uuid,
    /// The device of the technician's user.
    pub device_id: Uuid,
}

fn convert_revoke_device(i: RevokeDeviceInput) -> Result<LinkCommand, ApiError> {
    Ok(LinkCommand::RevokeDevice {
        technician_id: TechnicianId::from_uuid(i.technician_id),
        device_id: i.device_id,
    })
}

/// A position fix from a device.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FixDto {
    /// Latitude, degrees (WGS 84).
    pub lat: f64,
    /// Longitude, degrees (WGS 84).
    pub lon: f64,
    /// The accuracy radius the device gives, metres.
    pub accuracy_m: Option<f64>,
}

impl From<Fix> for FixDto {
    fn from(f: Fix) -> Self {
        Self {
            lat: f.lat(),
            lon: f.lon(),
            accuracy_m: f.accuracy_m(),
        }
    }
}

impl FixDto {
    /// Parses the fix at `field` (`location`, `device.location`).
    pub(crate) fn parse(&self, v: &mut Validator, field: &str) -> Option<Fix> {
        match Fix::parse(self.lat, self.lon, self.accuracy_m) {
            Ok(f) => Some(f),
            Err((which, invalid)) => {
                v.check::<()>(&format!("{field}.{which}"), Err(invalid));
                None
            }
        }
    }
}

/// When (by the device's clock) and where a technician did something in the field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceReportDto {
    /// The device's clock when it happened (RFC 3339). Kept beside the server's time; a time more
    /// than 5 minutes ahead of the server's is kept but flagged (`deviceClockAhead`) and not
    /// computed with.
    #[serde(deserialize_with = "crate::wire::date_time")]
    pub device_time: DateTime<Utc>,
    /// Where the device was, when it knew.
    pub location: Option<FixDto>,
}

impl DeviceReportDto {
    /// Parses an optional report at `field`: `Some(None)` when there is none, `None` (with the
    /// field errors recorded) when it is invalid.
    pub(crate) fn parse_optional(
        report: Option<&Self>,
        v: &mut Validator,
        field: &str,
    ) -> Option<Option<DeviceReport>> {
        let Some(report) = report else {
            return Some(None);
        };
        let location = match &report.location {
            Some(l) => Some(l.parse(v, &format!("{field}.location"))?),
            None => None,
        };
        Some(Some(DeviceReport {
            device_time: report.device_time,
            location,
        }))
    }
}

/// `technician/v1/reportLocation`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReportLocationInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Whose device: a technician reports their own (another is not found).
    pub technician_id: Uuid,
    /// The device's clock when the fix was taken (RFC 3339).
    #[serde(deserialize_with = "crate::wire::date_time")]
    pub device_time: DateTime<Utc>,
    /// Where.
    pub location: FixDto,
}

/// A position a device reported.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PositionDto {
    /// When, by the device's clock (the server's, when the device's was ahead of it).
    pub device_time: DateTime<Utc>,
    /// When the server received it.
    pub received_at: DateTime<Utc>,
    /// Where.
    pub location: FixDto,
}

impl From<Position> for PositionDto {
    fn from(p: Position) -> Self {
        Self {
            device_time: p.device_time,
            received_at: p.received_at,
            location: p.location.into(),
        }
    }
}

/// `technician/v1/reportLocation`'s result.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocationReportedDto {
    /// Whose.
    pub technician_id: Uuid,
    /// Whether the report was kept as a breadcrumb: false past 1,440 in 24 hours, or older than
    /// 30 days. The last known position follows it whenever it is the newest.
    pub kept: bool,
    /// The last known position after the report.
    pub last_position: PositionDto,
}

impl From<LocationReported> for LocationReportedDto {
    fn from(r: LocationReported) -> Self {
        Self {
            technician_id: r.technician_id.as_uuid(),
            kept: r.kept,
            last_position: r.last_position.into(),
        }
    }
}

fn convert_report_location(i: ReportLocationInput) -> Result<FieldCommand, ApiError> {
    validate(|v| {
        let location = i.location.parse(v, "location")?;
        Some(FieldCommand::ReportLocation {
            technician_id: TechnicianId::from_uuid(i.technician_id),
            device_time: i.device_time,
            location,
        })
    })
}

/// `technician/v1/positions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PositionsInput {
    /// Whose: a technician's own by default (another is not found); the office names one.
    pub technician_id: Option<Uuid>,
    /// The local date, in the organization's zone (`YYYY-MM-DD`; default: today there).
    #[serde(default, deserialize_with = "crate::wire::option_date")]
    pub date: Option<NaiveDate>,
}

/// `technician/v1/positions`'s result.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PositionsOutput {
    /// Whose.
    pub technician_id: Uuid,
    /// The last known position, whenever it was.
    pub last_position: Option<PositionDto>,
    /// The day's breadcrumbs in the device's time order.
    pub breadcrumbs: Vec<PositionDto>,
}

async fn positions(ctx: Ctx, i: PositionsInput) -> Result<PositionsOutput, ApiError> {
    let p = ctx
        .services
        .technician_positions(
            ctx.caller()?,
            i.technician_id.map(TechnicianId::from_uuid),
            i.date,
        )
        .await?;
    Ok(PositionsOutput {
        technician_id: p.technician_id.as_uuid(),
        last_position: p.last_position.map(PositionDto::from),
        breadcrumbs: p.breadcrumbs.into_iter().map(PositionDto::from).collect(),
    })
}

/// A clock punch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PunchKindDto {
    /// Starts a shift.
    ClockIn,
    /// Starts a break.
    BreakStart,
    /// Ends a break.
    BreakEnd,
    /// Ends a shift.
    ClockOut,
}

impl From<PunchKindDto> for PunchKind {
    fn from(k: PunchKindDto) -> Self {
        match k {
            PunchKindDto::ClockIn => Self::ClockIn,
            PunchKindDto::BreakStart => Self::BreakStart,
            PunchKindDto::BreakEnd => Self::BreakEnd,
            PunchKindDto::ClockOut => Self::ClockOut,
        }
    }
}

impl From<PunchKind> for PunchKindDto {
    fn from(k: PunchKind) -> Self {
        match k {
            PunchKind::ClockIn => Self::ClockIn,
            PunchKind::BreakStart => Self::BreakStart,
            PunchKind::BreakEnd => Self::BreakEnd,
            PunchKind::ClockOut => Self::ClockOut,
        }
    }
}

/// `technician/v1/punch`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PunchInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Whose clock: a technician punches their own.
    pub technician_id: Uuid,
    /// Which punch: clock_in, then break_start / break_end pairs, then clock_out.
    pub kind: PunchKindDto,
    /// When (by the device's clock) and where; without it, the server's time.
    pub device: Option<DeviceReportDto>,
    /// Why: required for a punch into a week whose timesheet is approved (it reopens it).
    pub reason: Option<String>,
}

/// A recorded punch.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PunchDto {
    /// Which.
    pub kind: PunchKindDto,
    /// When it counts: the device's time, unless that was ahead of the server's.
    pub at: DateTime<Utc>,
    /// What the device said.
    pub device_time: Option<DateTime<Utc>>,
    /// When the server received it.
    pub received_at: DateTime<Utc>,
    /// Who recorded it.
    pub actor_user_id: Option<Uuid>,
    /// Why, for a punch into an approved week.
    pub reason: Option<String>,
}

impl From<RecordedPunch> for PunchDto {
    fn from(p: RecordedPunch) -> Self {
        Self {
            kind: p.kind.into(),
            at: p.at,
            device_time: p.device.map(|d| d.device_time),
            received_at: p.received_at,
            actor_user_id: p.actor.map(|a| a.as_uuid()),
            reason: p.reason.map(|r| r.as_str().to_owned()),
        }
    }
}

fn clock_name(c: ClockState) -> String {
    match c {
        ClockState::Off => "off",
        ClockState::On => "on",
        ClockState::OnBreak => "on_break",
    }
    .to_owned()
}

/// `technician/v1/punch`'s result.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PunchedDto {
    /// The punch.
    pub punch: PunchDto,
    /// Where the clock stands now: off, on or on_break.
    pub clock: String,
    /// The week (its Monday) the punch counts in.
    pub week: NaiveDate,
    /// That week's timesheet status after it: open, submitted or approved.
    pub timesheet_status: String,
}

impl From<Punched> for PunchedDto {
    fn from(p: Punched) -> Self {
        Self {
            punch: p.punch.into(),
            clock: clock_name(p.clock),
            week: p.week,
            timesheet_status: p.timesheet_status,
        }
    }
}

fn convert_punch(i: PunchInput) -> Result<TimeCommand, ApiError> {
    validate(|v| {
        let reason = v.optional("reason", i.reason.as_deref(), Reason::parse);
        let device = DeviceReportDto::parse_optional(i.device.as_ref(), v, "device");
        Some(TimeCommand::Punch {
            technician_id: TechnicianId::from_uuid(i.technician_id),
            kind: i.kind.into(),
            device: device?,
            reason: reason?,
        })
    })
}

/// Minutes of a day or a week.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MinutesDto {
    /// Clocked in, breaks excluded.
    pub worked_minutes: i64,
    /// On breaks.
    pub break_minutes: i64,
    /// Regular.
    pub regular_minutes: i64,
    /// Overtime.
    pub overtime_minutes: i64,
}

impl From<DayTime> for MinutesDto {
    fn from(d: DayTime) -> Self {
        Self {
            worked_minutes: d.worked,
            break_minutes: d.breaks,
            regular_minutes: d.regular,
            overtime_minutes: d.overtime,
        }
    }
}

/// One day of a timesheet.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimesheetDayDto {
    /// The local date.
    pub date: NaiveDate,
    /// Its minutes.
    pub minutes: MinutesDto,
}

/// The organization's overtime rule.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OvertimeRuleDto {
    /// Past this many minutes in a day, time is overtime (null: no daily rule).
    pub daily_minutes: Option<i64>,
    /// Past this many regular minutes in a week (Monday to Sunday), time is overtime.
    pub weekly_minutes: Option<i64>,
}

impl From<OvertimeRule> for OvertimeRuleDto {
    fn from(r: OvertimeRule) -> Self {
        Self {
            daily_minutes: r.daily_minutes,
            weekly_minutes: r.weekly_minutes,
        }
    }
}

/// Something done to a timesheet.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimesheetEventDto {
    /// submitted, approved or reopened.
    pub kind: String,
    /// Why (a punch into an approved week).
    pub reason: Option<String>,
    /// Who.
    pub actor_user_id: Option<Uuid>,
    /// When.
    pub at: DateTime<Utc>,
}

/// A technician's week.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimesheetDto {
    /// Whose.
    pub technician_id: Uuid,
    /// The week's Monday.
    pub week: NaiveDate,
    /// open, submitted or approved.
    pub status: String,
    /// Its version (0 before it was first submitted); send it as `expectedVersion`.
    pub version: i64,
    /// The rule the split follows.
    pub rule: OvertimeRuleDto,
    /// Monday to Sunday, in the organization's zone.
    pub days: Vec<TimesheetDayDto>,
    /// The week's sums.
    pub total: MinutesDto,
    /// Where the clock stands now: off, on or on_break.
    pub clock: String,
    /// The week's punches in time order.
    pub punches: Vec<PunchDto>,
    /// What was done to it, oldest first.
    pub events: Vec<TimesheetEventDto>,
    /// The week's visits (those first set off to or reached in the week), each with its
    /// minutes en route and on site, read off the visit's moves (the device's times where it
    /// gave them).
    pub visits: Vec<VisitTimeDto>,
}

/// One visit's time.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VisitTimeDto {
    /// The visit.
    pub appointment_id: Uuid,
    /// Its job.
    pub job_id: Uuid,
    /// The local date it started.
    pub date: NaiveDate,
    /// Minutes en route.
    pub travel_minutes: i64,
    /// Minutes on site.
    pub on_site_minutes: i64,
}

impl From<Timesheet> for TimesheetDto {
    fn from(t: Timesheet) -> Self {
        Self {
            technician_id: t.technician_id.as_uuid(),
            week: t.week,
            status: t.status,
            version: t.version,
            rule: t.rule.into(),
            days: t
                .days
                .into_iter()
                .map(|d| TimesheetDayDto {
                    date: d.date,
                    minutes: d.time.into(),
                })
                .collect(),
            total: t.total.into(),
            clock: clock_name(t.clock),
            punches: t.punches.into_iter().map(PunchDto::from).collect(),
            events: t
                .events
                .into_iter()
                .map(|e| TimesheetEventDto {
                    kind: e.kind,
                    reason: e.reason.map(|r| r.as_str().to_owned()),
                    actor_user_id: e.actor.map(|a| a.as_uuid()),
                    at: e.at,
                })
                .collect(),
            visits: t
                .visits
                .into_iter()
                .map(|v| VisitTimeDto {
                    appointment_id: v.appointment_id.as_uuid(),
                    job_id: v.job_id.as_uuid(),
                    date: v.date,
                    travel_minutes: v.minutes.travel_minutes,
                    on_site_minutes: v.minutes.on_site_minutes,
                })
                .collect(),
        }
    }
}

/// `technician/v1/timesheet`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimesheetInput {
    /// Whose: a technician's own by default; the office names one.
    pub technician_id: Option<Uuid>,
    /// Any date of the week (`YYYY-MM-DD`; default: today in the organization's zone).
    #[serde(default, deserialize_with = "crate::wire::option_date")]
    pub week: Option<NaiveDate>,
}

async fn timesheet(ctx: Ctx, i: TimesheetInput) -> Result<TimesheetDto, ApiError> {
    Ok(ctx
        .services
        .technician_timesheet(
            ctx.caller()?,
            i.technician_id.map(TechnicianId::from_uuid),
            i.week,
        )
        .await?
        .into())
}

/// `technician/v1/submitTimesheet` and `technician/v1/approveTimesheet`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimesheetChangeInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Whose.
    pub technician_id: Uuid,
    /// Any date of the week (`YYYY-MM-DD`).
    #[serde(deserialize_with = "crate::wire::date")]
    pub week: NaiveDate,
    /// Refuse with `VERSION_CONFLICT` unless the timesheet is at this version.
    pub expected_version: Option<i64>,
}

fn convert_submit(i: TimesheetChangeInput) -> Result<TimeCommand, ApiError> {
    Ok(TimeCommand::Submit {
        technician_id: TechnicianId::from_uuid(i.technician_id),
        week: i.week,
        expected_version: i.expected_version,
    })
}

fn convert_approve(i: TimesheetChangeInput) -> Result<TimeCommand, ApiError> {
    Ok(TimeCommand::Approve {
        technician_id: TechnicianId::from_uuid(i.technician_id),
        week: i.week,
        expected_version: i.expected_version,
    })
}

/// `technician/v1/setOvertimeRule`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetOvertimeRuleInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Past this many minutes in a day, time is overtime (1 to 1440; null: no daily rule).
    #[schema(required = true)]
    pub daily_minutes: Option<i64>,
    /// Past this many regular minutes in a week, time is overtime (1 to 10080; null: none).
    #[schema(required = true)]
    pub weekly_minutes: Option<i64>,
}

fn convert_overtime(i: SetOvertimeRuleInput) -> Result<TimeCommand, ApiError> {
    OvertimeRule::parse(i.daily_minutes, i.weekly_minutes)
        .map(|rule| TimeCommand::SetOvertimeRule { rule })
        .map_err(|(field, e)| ApiError::field(field, e.code, e.message))
}

/// `technician/v1/myDay`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MyDayInput {
    /// The local date, in the organization's zone (`YYYY-MM-DD`; default: today there).
    #[serde(default, deserialize_with = "crate::wire::option_date")]
    pub date: Option<NaiveDate>,
    /// Whose day. A technician gets their own (another id is not found); the office names one
    /// (without it, not found: no technician is theirs).
    pub technician_id: Option<Uuid>,
}

/// A job of the day with what is needed on site.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MyDayJobDto {
    /// The job.
    pub job_id: Uuid,
    /// Its customer.
    pub customer: super::customer::CustomerDto,
    /// Where: the address and coordinates.
    pub property: super::customer::PropertyDto,
    /// The planned work handed to the job, and what was recorded.
    pub work: super::job::JobWorkDto,
    /// The job's notes (gate codes, what the customer said), oldest first.
    pub notes: Vec<crate::v2::job::NoteDto>,
    /// What is attached to the job and its visits, oldest first (download each from
    /// `/api/v1/blobs/{sha256}`).
    pub attachments: Vec<super::attachment::AttachmentDto>,
    /// The forms to fill in on the job: each template in use, what is answered, what is missing.
    pub forms: Vec<super::form::JobFormDto>,
}

/// `technician/v1/myDay`'s answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MyDayOutput {
    /// The organization's zone.
    pub time_zone: String,
    /// The day as the board shows it: shifts, time off, stops in order with travel legs,
    /// projected arrivals and flags, and the load.
    pub technician: super::dispatch::BoardTechnicianDto,
    /// Each job of the day's stops, once.
    pub jobs: Vec<MyDayJobDto>,
}

async fn my_day(ctx: Ctx, i: MyDayInput) -> Result<MyDayOutput, ApiError> {
    let day = ctx
        .services
        .my_day(
            ctx.caller()?,
            hestami_store::app::field::MyDayQuery {
                date: i.date,
                technician_id: i.technician_id.map(TechnicianId::from_uuid),
            },
        )
        .await?;
    Ok(MyDayOutput {
        time_zone: day.time_zone,
        technician: day.technician.into(),
        jobs: day
            .jobs
            .into_iter()
            .map(|j| MyDayJobDto {
                job_id: j.job_id.as_uuid(),
                customer: j.customer.into(),
                property: j.property.into(),
                work: j.work.into(),
                notes: j.notes.into_iter().map(Into::into).collect(),
                attachments: j.attachments.into_iter().map(Into::into).collect(),
                forms: j.forms.into_iter().map(Into::into).collect(),
            })
            .collect(),
    })
}

/// A trade practised and how well.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SkillDto {
    /// The trade.
    pub trade: String,
    /// 1 (apprentice) to 5 (master).
    pub level: i64,
}

/// A certification a technician holds.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificationDto {
    /// Its id.
    pub id: Uuid,
    /// Its name, as jobs and rules ask for it (compared without regard to case).
    pub name: String,
    /// Who issued it.
    pub issuer: String,
    /// Its number.
    pub number: Option<String>,
    /// Last valid day, if it lapses.
    pub expires_on: Option<NaiveDate>,
    /// The trades it is for.
    pub trades: Vec<String>,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
}

impl From<Certification> for CertificationDto {
    fn from(c: Certification) -> Self {
        Self {
            id: c.id.as_uuid(),
            name: c.name.as_str().to_owned(),
            issuer: c.issuer.as_str().to_owned(),
            number: c.number.map(|n| n.as_str().to_owned()),
            expires_on: c.expires_on,
            trades: c.trades.iter().map(|t| t.as_str().to_owned()).collect(),
            created_at: c.created_at,
        }
    }
}

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WeekdayDto {
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

impl From<WeekdayDto> for Weekday {
    fn from(d: WeekdayDto) -> Self {
        match d {
            WeekdayDto::Mon => Self::Mon,
            WeekdayDto::Tue => Self::Tue,
            WeekdayDto::Wed => Self::Wed,
            WeekdayDto::Thu => Self::Thu,
            WeekdayDto::Fri => Self::Fri,
            WeekdayDto::Sat => Self::Sat,
            WeekdayDto::Sun => Self::Sun,
        }
    }
}

impl From<Weekday> for WeekdayDto {
    fn from(d: Weekday) -> Self {
        match d {
            Weekday::Mon => Self::Mon,
            Weekday::Tue => Self::Tue,
            Weekday::Wed => Self::Wed,
            Weekday::Thu => Self::Thu,
            Weekday::Fri => Self::Fri,
            Weekday::Sat => Self::Sat,
            Weekday::Sun => Self::Sun,
        }
    }
}

/// A weekly shift span in local time (the organization's time zone).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShiftSpanDto {
    /// mon to sun.
    pub weekday: WeekdayDto,
    /// Starts, such as `08:00`.
    pub start: String,
    /// Ends the same day, such as `17:00` (`24:00` for midnight).
    pub end: String,
}

fn clock(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

impl From<&ShiftSpan> for ShiftSpanDto {
    fn from(s: &ShiftSpan) -> Self {
        Self {
            weekday: s.weekday().into(),
            start: clock(s.start_minute()),
            end: clock(s.end_minute()),
        }
    }
}

/// A weekly shift pattern, from a date on.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShiftPatternDto {
    /// The first day it applies (until a later pattern takes over).
    pub effective_from: NaiveDate,
    /// The spans, by day and start.
    pub weekly: Vec<ShiftSpanDto>,
}

impl From<&WeeklyShifts> for ShiftPatternDto {
    fn from(w: &WeeklyShifts) -> Self {
        Self {
            effective_from: w.effective_from(),
            weekly: w.spans().iter().map(Into::into).collect(),
        }
    }
}

/// A period off work.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimeOffDto {
    /// Its id.
    pub id: Uuid,
    /// From.
    pub start: DateTime<Utc>,
    /// Until (exclusive).
    pub end: DateTime<Utc>,
    /// Why.
    pub reason: Option<String>,
}

impl From<&TimeOff> for TimeOffDto {
    fn from(t: &TimeOff) -> Self {
        Self {
            id: t.id().as_uuid(),
            start: t.start(),
            end: t.end(),
            reason: t.reason().map(|r| r.as_str().to_owned()),
        }
    }
}

/// A technician with their work profile.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TechnicianProfileDto {
    /// The technician.
    pub technician: TechnicianDto,
    /// Trades practised and how well.
    pub skills: Vec<SkillDto>,
    /// Certifications held.
    pub certifications: Vec<CertificationDto>,
    /// Every weekly pattern set, oldest first (each applies from its date).
    pub shifts: Vec<ShiftPatternDto>,
    /// Periods off work.
    pub time_off: Vec<TimeOffDto>,
    /// The technician's own service areas; none: all the organization's.
    pub service_areas: Vec<AreaDto>,
    /// Where the technician starts the day.
    pub home_base: Option<LocationDto>,
    /// Jobs per local day.
    pub daily_capacity: u16,
}

impl From<TechnicianDetail> for TechnicianProfileDto {
    fn from(d: TechnicianDetail) -> Self {
        let p = d.profile;
        Self {
            technician: d.technician.into(),
            skills: p
                .skills
                .iter()
                .map(|s| SkillDto {
                    trade: s.trade.as_str().to_owned(),
                    level: i64::from(s.level.get()),
                })
                .collect(),
            certifications: p.certifications.into_iter().map(Into::into).collect(),
            shifts: p.shifts.iter().map(Into::into).collect(),
            time_off: p.time_off.iter().map(Into::into).collect(),
            service_areas: p.service_areas.iter().map(Into::into).collect(),
            home_base: p.home_base.map(|h| LocationDto {
                lat: h.lat(),
                lon: h.lon(),
            }),
            daily_capacity: p.daily_capacity.get(),
        }
    }
}

/// What fills a span of time.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpanReasonDto {
    /// off_shift, time_off, appointment or free.
    pub kind: String,
    /// For time_off: which period.
    pub time_off_id: Option<Uuid>,
    /// For an appointment: the job.
    pub job_id: Option<Uuid>,
    /// For time_off: why, when given.
    pub reason: Option<String>,
}

/// A stretch of a technician's time, `[start, end)`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpanDto {
    /// Starts.
    pub start: DateTime<Utc>,
    /// Ends.
    pub end: DateTime<Utc>,
    /// Whether the technician cannot take work then.
    pub busy: bool,
    /// What fills it.
    pub reason: SpanReasonDto,
}

impl From<Span> for SpanDto {
    fn from(s: Span) -> Self {
        let (kind, time_off_id, job_id, reason) = match s.reason {
            SpanReason::OffShift => ("off_shift", None, None, None),
            SpanReason::TimeOff { id, reason } => (
                "time_off",
                Some(id.as_uuid()),
                None,
                reason.map(|r| r.as_str().to_owned()),
            ),
            SpanReason::Appointment { job_id } => {
                ("appointment", None, Some(job_id.as_uuid()), None)
            }
            SpanReason::Free => ("free", None, None, None),
        };
        Self {
            start: s.start,
            end: s.end,
            busy: s.busy,
            reason: SpanReasonDto {
                kind: kind.to_owned(),
                time_off_id,
                job_id,
                reason,
            },
        }
    }
}

/// A technician's time, free and busy.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AvailabilityDto {
    /// Ordered spans without gaps covering `[from, to)`.
    pub spans: Vec<SpanDto>,
}

/// `technician/v1/setSkills`: replaces the skills.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetSkillsInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Who.
    pub technician_id: Uuid,
    /// The skills (one per trade).
    pub skills: Vec<SkillDto>,
}

/// `technician/v1/addCertification`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddCertificationInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Who.
    pub technician_id: Uuid,
    /// Its name, as jobs and rules ask for it.
    pub name: String,
    /// Who issued it.
    pub issuer: String,
    /// Its number.
    pub number: Option<String>,
    /// Last valid day, if it lapses.
    #[serde(default, deserialize_with = "crate::wire::option_date")]
    pub expires_on: Option<NaiveDate>,
    /// The trades it is for.
    pub trades: Option<Vec<String>>,
}

/// `technician/v1/removeCertification`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoveCertificationInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Who.
    pub technician_id: Uuid,
    /// Which certification.
    pub certification_id: Uuid,
}

/// `technician/v1/setShifts`: a weekly pattern from a date on (earlier patterns still apply
/// before it).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetShiftsInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Who.
    pub technician_id: Uuid,
    /// The first day the pattern applies.
    #[serde(deserialize_with = "crate::wire::date")]
    pub effective_from: NaiveDate,
    /// The spans, in local time; several per day allowed, overlapping ones refused.
    pub weekly: Vec<ShiftSpanDto>,
}

/// `technician/v1/addTimeOff`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddTimeOffInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Who.
    pub technician_id: Uuid,
    /// From (RFC 3339).
    #[serde(deserialize_with = "crate::wire::date_time")]
    pub start: DateTime<Utc>,
    /// Until, after `start`.
    #[serde(deserialize_with = "crate::wire::date_time")]
    pub end: DateTime<Utc>,
    /// Why.
    pub reason: Option<String>,
}

/// `technician/v1/removeTimeOff`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoveTimeOffInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Who.
    pub technician_id: Uuid,
    /// Which period.
    pub time_off_id: Uuid,
}

/// `technician/v1/setServiceAreas`: the technician's own subset of the organization's areas
/// (none: all of them).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetTechnicianAreasInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Who.
    pub technician_id: Uuid,
    /// The areas.
    pub areas: Vec<AreaDto>,
}

/// `technician/v1/setHomeBase`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetHomeBaseInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Who.
    pub technician_id: Uuid,
    /// Where the day starts, or null to clear it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<LocationDto>, required = true)]
    pub home_base: Option<Option<LocationDto>>,
    /// Jobs per local day, 1 to 100 (unchanged when absent).
    pub daily_capacity: Option<i64>,
}

/// `technician/v1/availability`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AvailabilityInput {
    /// Who.
    pub technician_id: Uuid,
    /// From (RFC 3339).
    #[serde(deserialize_with = "crate::wire::date_time")]
    pub from: DateTime<Utc>,
    /// Until; after `from`, at most 31 days later.
    #[serde(deserialize_with = "crate::wire::date_time")]
    pub to: DateTime<Utc>,
}

mutating!(
    CreateTechnicianInput,
    UpdateTechnicianInput,
    DeactivateTechnicianInput,
    SetSkillsInput,
    AddCertificationInput,
    RemoveCertificationInput,
    SetShiftsInput,
    AddTimeOffInput,
    RemoveTimeOffInput,
    SetTechnicianAreasInput,
    SetHomeBaseInput,
    LinkUserInput,
    InviteTechnicianInput,
    RevokeDeviceInput,
    ReportLocationInput,
    PunchInput,
    TimesheetChangeInput,
    SetOvertimeRuleInput
);

/// Parses a skill level given on the wire.
pub(crate) fn skill_level(level: i64) -> Result<SkillLevel, Invalid> {
    u8::try_from(level)
        .map_err(|_| Invalid::new("out_of_range", "a skill level is 1 to 5"))
        .and_then(SkillLevel::parse)
}

/// At most this many skills or shift spans in one call.
const MAX_ITEMS: usize = 200;

fn too_many(v: &mut Validator, field: &str, len: usize) -> bool {
    if len > MAX_ITEMS {
        v.fail(field, "too_many", &format!("at most {MAX_ITEMS} entries"));
        true
    } else {
        false
    }
}

fn convert_set_skills(i: SetSkillsInput) -> Result<WorkforceCommand, ApiError> {
    validate(|v| {
        if too_many(v, "skills", i.skills.len()) {
            return None;
        }
        let skills: Vec<Option<Skill>> = i
            .skills
            .iter()
            .enumerate()
            .map(|(n, s)| {
                let trade = v.check(&format!("skills[{n}].trade"), TradeCode::parse(&s.trade));
                let level = v.check(&format!("skills[{n}].level"), skill_level(s.level));
                Some(Skill {
                    trade: trade?,
                    level: level?,
                })
            })
            .collect();
        let skills: Vec<Skill> = skills.into_iter().collect::<Option<_>>()?;
        for (n, s) in skills.iter().enumerate() {
            if skills[..n].iter().any(|o| o.trade == s.trade) {
                v.fail(
                    &format!("skills[{n}].trade"),
                    "duplicate",
                    &format!("the trade {} is given twice", s.trade),
                );
            }
        }
        Some(WorkforceCommand::SetSkills {
            technician_id: TechnicianId::from_uuid(i.technician_id),
            skills,
        })
    })
}

fn convert_add_certification(i: AddCertificationInput) -> Result<WorkforceCommand, ApiError> {
    validate(|v| {
        let name = v.check("name", PersonName::parse(&i.name));
        let issuer = v.check("issuer", PersonName::parse(&i.issuer));
        let number = v.optional("number", i.number.as_deref(), PersonName::parse);
        let trades = trade_list(v, "trades", i.trades.as_deref().unwrap_or_default());
        Some(WorkforceCommand::AddCertification {
            technician_id: TechnicianId::from_uuid(i.technician_id),
            certification: NewCertification {
                name: name?,
                issuer: issuer?,
                number: number?,
                expires_on: i.expires_on,
                trades: trades?,
            },
        })
    })
}

fn convert_remove_certification(i: RemoveCertificationInput) -> Result<WorkforceCommand, ApiError> {
    Ok(WorkforceCommand::RemoveCertification {
        technician_id: TechnicianId::from_uuid(i.technician_id),
        certification_id: CertificationId::from_uuid(i.certification_id),
    })
}

fn convert_set_shifts(i: SetShiftsInput) -> Result<WorkforceCommand, ApiError> {
    validate(|v| {
        if too_many(v, "weekly", i.weekly.len()) {
            return None;
        }
        let spans: Vec<Option<ShiftSpan>> = i
            .weekly
            .iter()
            .enumerate()
            .map(
                |(n, s)| match ShiftSpan::parse(s.weekday.into(), &s.start, &s.end) {
                    Ok(span) => Some(span),
                    Err(invalid) => {
                        let which = if invalid.code == "invalid_time"
                            && invalid.message.contains("start")
                        {
                            "start"
                        } else {
                            "end"
                        };
                        v.fail(
                            &format!("weekly[{n}].{which}"),
                            invalid.code,
                            &invalid.message,
                        );
                        None
                    }
                },
            )
            .collect();
        let spans: Vec<ShiftSpan> = spans.into_iter().collect::<Option<_>>()?;
        let shifts = v.check("weekly", WeeklyShifts::parse(i.effective_from, spans));
        Some(WorkforceCommand::SetShifts {
            technician_id: TechnicianId::from_uuid(i.technician_id),
            shifts: shifts?,
        })
    })
}

fn convert_add_time_off(i: AddTimeOffInput) -> Result<WorkforceCommand, ApiError> {
    validate(|v| {
        let reason = v.optional("reason", i.reason.as_deref(), Reason::parse);
        if i.end <= i.start {
            v.fail("end", "end_before_start", "time off ends after it starts");
        }
        Some(WorkforceCommand::AddTimeOff {
            technician_id: TechnicianId::from_uuid(i.technician_id),
            start: i.start,
            end: i.end,
            reason: reason?,
        })
    })
}

fn convert_remove_time_off(i: RemoveTimeOffInput) -> Result<WorkforceCommand, ApiError> {
    Ok(WorkforceCommand::RemoveTimeOff {
        technician_id: TechnicianId::from_uuid(i.technician_id),
        time_off_id: TimeOffId::from_uuid(i.time_off_id),
    })
}

fn convert_set_areas(i: SetTechnicianAreasInput) -> Result<WorkforceCommand, ApiError> {
    validate(|v| {
        Some(WorkforceCommand::SetServiceAreas {
            technician_id: TechnicianId::from_uuid(i.technician_id),
            areas: areas(v, "areas", i.areas)?,
        })
    })
}

fn convert_set_home_base(i: SetHomeBaseInput) -> Result<WorkforceCommand, ApiError> {
    validate(|v| {
        let home_base = match i.home_base {
            None => {
                v.fail(
                    "homeBase",
                    "required",
                    "homeBase is required (null clears it)",
                );
                None
            }
            Some(None) => Some(None),
            Some(Some(l)) => match GeoPoint::parse(l.lat, l.lon) {
                Ok(p) => Some(Some(p)),
                Err((field, invalid)) => {
                    v.fail(&format!("homeBase.{field}"), invalid.code, &invalid.message);
                    None
                }
            },
        };
        let daily_capacity = match i.daily_capacity {
            None => Some(None),
            Some(jobs) => v
                .check(
                    "dailyCapacity",
                    u16::try_from(jobs)
                        .map_err(|_| {
                            Invalid::new("out_of_range", "a daily capacity is 1 to 100 jobs")
                        })
                        .and_then(DailyCapacity::parse),
                )
                .map(Some),
        };
        Some(WorkforceCommand::SetHomeBase {
            technician_id: TechnicianId::from_uuid(i.technician_id),
            home_base: home_base?,
            daily_capacity: daily_capacity?,
        })
    })
}

fn trades(v: &mut Validator, raw: &[String]) -> Option<Vec<TradeCode>> {
    let parsed: Vec<Option<TradeCode>> = raw
        .iter()
        .enumerate()
        .map(|(n, t)| v.check(&format!("trades[{n}]"), TradeCode::parse(t)))
        .collect();
    parsed.into_iter().collect()
}

fn convert_create(i: CreateTechnicianInput) -> Result<TechnicianCommand, ApiError> {
    validate(|v| {
        let name = v.check("name", PersonName::parse(&i.name));
        let email = v.optional("email", i.email.as_deref(), Email::parse);
        let phone = v.optional("phone", i.phone.as_deref(), Phone::parse);
        let trades = trades(v, &i.trades);
        Some(TechnicianCommand::Create(NewTechnician {
            name: name?,
            email: email?,
            phone: phone?,
            trades: trades?,
        }))
    })
}

fn convert_update(i: UpdateTechnicianInput) -> Result<TechnicianCommand, ApiError> {
    validate(|v| {
        let name = v.optional("name", i.name.as_deref(), PersonName::parse);
        let email = patch(v, "email", i.email, Email::parse);
        let phone = patch(v, "phone", i.phone, Phone::parse);
        let trades = match &i.trades {
            None => Some(None),
            Some(raw) => trades(v, raw).map(Some),
        };
        Some(TechnicianCommand::Update(TechnicianUpdate {
            technician_id: TechnicianId::from_uuid(i.technician_id),
            expected_version: i.expected_version,
            name: name?,
            email: email?,
            phone: phone?,
            trades: trades?,
        }))
    })
}

fn convert_deactivate(i: DeactivateTechnicianInput) -> Result<TechnicianCommand, ApiError> {
    Ok(TechnicianCommand::Deactivate {
        technician_id: TechnicianId::from_uuid(i.technician_id),
        expected_version: i.expected_version,
    })
}

async fn get(ctx: Ctx, i: GetTechnicianInput) -> Result<TechnicianDto, ApiError> {
    Ok(ctx
        .services
        .technician_get(ctx.caller()?, TechnicianId::from_uuid(i.technician_id))
        .await?
        .into())
}

async fn list(ctx: Ctx, i: ListTechniciansInput) -> Result<TechnicianPage, ApiError> {
    let page = PageRequest::parse(i.limit, i.cursor.as_deref())?;
    let trade = validate(|v| v.optional("trade", i.trade.as_deref(), TradeCode::parse))?;
    let page = ctx
        .services
        .technician_list(ctx.caller()?, page, i.active, trade)
        .await?;
    Ok(TechnicianPage {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    })
}

async fn get_profile(ctx: Ctx, i: GetTechnicianInput) -> Result<TechnicianProfileDto, ApiError> {
    Ok(ctx
        .services
        .technician_detail(ctx.caller()?, TechnicianId::from_uuid(i.technician_id))
        .await?
        .into())
}

/// The longest range `technician/v1/availability` answers for.
const MAX_AVAILABILITY_DAYS: i64 = 31;

async fn availability(ctx: Ctx, i: AvailabilityInput) -> Result<AvailabilityDto, ApiError> {
    validate(|v| {
        if i.to <= i.from {
            v.fail("to", "end_before_start", "to is after from");
        } else if i.to - i.from > chrono::Duration::days(MAX_AVAILABILITY_DAYS) {
            v.fail(
                "to",
                "range_too_long",
                &format!("to is at most {MAX_AVAILABILITY_DAYS} days after from"),
            );
        }
        Some(())
    })?;
    let spans = ctx
        .services
        .technician_availability(
            ctx.caller()?,
            TechnicianId::from_uuid(i.technician_id),
            i.from,
            i.to,
        )
        .await?;
    Ok(AvailabilityDto {
        spans: spans.into_iter().map(Into::into).collect(),
    })
}

fn name(name: &'static str, summary: &'static str, errors: &'static [&'static str]) -> Name {
    Name {
        namespace: "technician",
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
                "create",
                "Add a technician",
                &["TECHNICIAN_EMAIL_TAKEN", "TRADE_UNKNOWN"],
            ),
            convert_create,
            <TechnicianDto as From<Technician>>::from,
        ),
        query(name("get", "A technician", &["NOT_FOUND"]), get),
        query(
            name(
                "myDay",
                "A technician's local day in order (their own, for a technician): shifts, stops with travel legs, projections and flags, and each job's customer, property and planned work",
                &["NOT_FOUND"],
            ),
            my_day,
        ),
        query(
            name(
                "list",
                "Technicians, by creation, optionally only active ones or one trade",
                &[],
            ),
            list,
        ),
        mutation(
            name(
                "update",
                "Change a technician",
                &[
                    "NOT_FOUND",
                    "VERSION_CONFLICT",
                    "TECHNICIAN_EMAIL_TAKEN",
                    "TRADE_UNKNOWN",
                ],
            ),
            convert_update,
            <TechnicianDto as From<Technician>>::from,
        ),
        mutation(
            name(
                "deactivate",
                "Stop giving a technician work (history is kept)",
                &["NOT_FOUND", "VERSION_CONFLICT"],
            ),
            convert_deactivate,
            <TechnicianDto as From<Technician>>::from,
        ),
        mutation(
            name(
                "linkUser",
                "Link the user who signs in as a technician (or unlink): a member with the technician role then sees and moves only that technician's jobs and appointments",
                &["NOT_FOUND", "USER_ALREADY_LINKED"],
            ),
            convert_link,
            <TechnicianLinkDto as From<TechnicianLink>>::from,
        ),
        mutation(
            name(
                "invite",
                "Invite a person to sign in as a technician: their user and membership (technician role) as needed, the link, and a single-use code for auth/v1/acceptInvite",
                &["NOT_FOUND", "USER_ALREADY_LINKED", "TECHNICIAN_INACTIVE"],
            ),
            convert_invite,
            <TechnicianInviteDto as From<TechnicianInvite>>::from,
        ),
        mutation(
            name(
                "reportLocation",
                "Report where a technician's device is: the last known position (the newest by the device's clock) and a breadcrumb",
                &["NOT_FOUND"],
            ),
            convert_report_location,
            <LocationReportedDto as From<LocationReported>>::from,
        ),
        mutation(
            name(
                "punch",
                "Clock in, start or end a break, or clock out, with the device's time and place; a punch into an approved week needs a reason and reopens it",
                &[
                    "NOT_FOUND",
                    "PUNCH_NOT_ALLOWED",
                    "PUNCH_OUT_OF_ORDER",
                    "TIMESHEET_APPROVED",
                ],
            ),
            convert_punch,
            <PunchedDto as From<Punched>>::from,
        ),
        query(
            name(
                "timesheet",
                "A technician's week: worked, break, regular and overtime minutes per local day by the organization's rule, the punches and what was done to it",
                &["NOT_FOUND"],
            ),
            timesheet,
        ),
        mutation(
            name(
                "submitTimesheet",
                "Submit a week's timesheet for approval",
                &["NOT_FOUND", "VERSION_CONFLICT", "TIMESHEET_NOT_OPEN"],
            ),
            convert_submit,
            <TimesheetDto as From<Timesheet>>::from,
        ),
        mutation(
            name(
                "approveTimesheet",
                "Approve a submitted timesheet; a later punch into its week needs a reason and is recorded",
                &["NOT_FOUND", "VERSION_CONFLICT", "TIMESHEET_NOT_SUBMITTED"],
            ),
            convert_approve,
            <TimesheetDto as From<Timesheet>>::from,
        ),
        mutation(
            name(
                "setOvertimeRule",
                "Set the organization's overtime rule: minutes a day and regular minutes a week past which time is overtime",
                &[],
            ),
            convert_overtime,
            <OvertimeRuleDto as From<OvertimeRule>>::from,
        ),
        query(
            name(
                "positions",
                "A technician's last known position and the breadcrumbs of a local day",
                &["NOT_FOUND"],
            ),
            positions,
        ),
        query(
            name(
                "devices",
                "The devices the technician's user signed in on, with when each was last seen and whether its session ended",
                &["NOT_FOUND"],
            ),
            devices,
        ),
        mutation(
            name(
                "revokeDevice",
                "End the session of one of the technician's devices: its refresh tokens are deleted and its access tokens stop working",
                &["NOT_FOUND"],
            ),
            convert_revoke_device,
            <DeviceDto as From<Device>>::from,
        ),
        query(
            name(
                "getProfile",
                "A technician with their work profile: skills, certifications, shifts, time off, areas, home base",
                &["NOT_FOUND"],
            ),
            get_profile,
        ),
        query(
            name(
                "availability",
                "A technician's free and busy spans over a range (at most 31 days), with what makes them busy",
                &["NOT_FOUND"],
            ),
            availability,
        ),
        mutation(
            name(
                "setSkills",
                "Replace a technician's skills (trade and level 1–5)",
                &["NOT_FOUND", "TRADE_UNKNOWN"],
            ),
            convert_set_skills,
            <TechnicianProfileDto as From<TechnicianDetail>>::from,
        ),
        mutation(
            name(
                "addCertification",
                "Record a certification a technician holds",
                &["NOT_FOUND", "TRADE_UNKNOWN"],
            ),
            convert_add_certification,
            <TechnicianProfileDto as From<TechnicianDetail>>::from,
        ),
        mutation(
            name(
                "removeCertification",
                "Remove a technician's certification",
                &["NOT_FOUND"],
            ),
            convert_remove_certification,
            <TechnicianProfileDto as From<TechnicianDetail>>::from,
        ),
        mutation(
            name(
                "setShifts",
                "Set a technician's weekly shift pattern (local times) from a date on",
                &["NOT_FOUND"],
            ),
            convert_set_shifts,
            <TechnicianProfileDto as From<TechnicianDetail>>::from,
        ),
        mutation(
            name(
                "addTimeOff",
                "Record a period a technician does not work",
                &["NOT_FOUND"],
            ),
            convert_add_time_off,
            <TechnicianProfileDto as From<TechnicianDetail>>::from,
        ),
        mutation(
            name(
                "removeTimeOff",
                "Remove a technician's period off work",
                &["NOT_FOUND"],
            ),
            convert_remove_time_off,
            <TechnicianProfileDto as From<TechnicianDetail>>::from,
        ),
        mutation(
            name(
                "setServiceAreas",
                "Replace a technician's own service areas (none: all the organization's)",
                &["NOT_FOUND", "TRADE_UNKNOWN"],
            ),
            convert_set_areas,
            <TechnicianProfileDto as From<TechnicianDetail>>::from,
        ),
        mutation(
            name(
                "setHomeBase",
                "Set or clear where a technician starts the day, and their daily capacity",
                &["NOT_FOUND"],
            ),
            convert_set_home_base,
            <TechnicianProfileDto as From<TechnicianDetail>>::from,
        ),
    ]
}
