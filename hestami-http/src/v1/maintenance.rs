//! `maintenance/v1`: plans, agreements on them, the visits they generate and the invoices of
//! their billing periods.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc, Weekday};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use hestami_core::ids::{
    AgreementId, CustomerId, FormTemplateId, MaintenancePlanId, PricebookItemId, PropertyId,
};
use hestami_core::maintenance::agreement::{MAX_LEAD_DAYS, MAX_TERM_MONTHS};
use hestami_core::maintenance::{AgreementStatus, BillingFrequency, DayWindow, Nth, Recurrence};
use hestami_core::money::Percent;
use hestami_core::org::Currency;
use hestami_core::text::{Description, Name as Label, Reason, TradeCode};
use hestami_core::workforce::SkillLevel;
use hestami_store::app::PageRequest;
use hestami_store::app::maintenance::{
    ActivateAgreement, Agreement, AgreementFilter, AgreementSchedule, AgreementVisit, Benefits,
    Cancellation, ChangePlan, ChangeSchedule, ChangeStatus, DEFAULT_LEAD_DAYS, MAX_PLAN_VISITS,
    MAX_PROPERTIES, MAX_VISIT_FORMS, MAX_VISIT_SERVICES, MaintenanceCommand, NewAgreement, NewPlan,
    PeriodInvoice, Plan, PlanChange, PlanPrice, PlanService, PlanVisit, SetAutopay, SetPlanPrices,
    Settlement, UnusedCredit,
};

use super::job::PriorityDto;
use super::money::{decimal, money};
use super::technician::WeekdayDto;
use crate::error::ApiError;
use crate::rpc::{Ctx, Name, Procedure, Validator, mutation, mutation_in, query, validate};

/// Which weekday of the month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NthDto {
    /// The first.
    First,
    /// The second.
    Second,
    /// The third.
    Third,
    /// The fourth.
    Fourth,
    /// The last.
    Last,
}

/// How a plan's visit recurs, by `kind`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RecurrenceDto {
    /// Every `every` months on `day` of the month (a shorter month's last day when it has no
    /// such day).
    MonthlyOnDay {
        /// Months between visits.
        #[schema(minimum = 1, maximum = 24)]
        every: u8,
        /// The day of the month.
        #[schema(minimum = 1, maximum = 31)]
        day: u8,
    },
    /// Every `every` months on the `nth` `weekday` ("quarterly on the first Monday").
    MonthlyOnWeekday {
        /// Months between visits.
        #[schema(minimum = 1, maximum = 24)]
        every: u8,
        /// Which one in the month.
        nth: NthDto,
        /// The weekday.
        weekday: WeekdayDto,
    },
    /// Every `every` weeks on `weekday`.
    Weekly {
        /// Weeks between visits.
        #[schema(minimum = 1, maximum = 52)]
        every: u8,
        /// The weekday.
        weekday: WeekdayDto,
    },
}

fn weekday(d: WeekdayDto) -> Weekday {
    match d {
        WeekdayDto::Mon => Weekday::Mon,
        WeekdayDto::Tue => Weekday::Tue,
        WeekdayDto::Wed => Weekday::Wed,
        WeekdayDto::Thu => Weekday::Thu,
        WeekdayDto::Fri => Weekday::Fri,
        WeekdayDto::Sat => Weekday::Sat,
        WeekdayDto::Sun => Weekday::Sun,
    }
}

fn weekday_dto(d: Weekday) -> WeekdayDto {
    match d {
        Weekday::Mon => WeekdayDto::Mon,
        Weekday::Tue => WeekdayDto::Tue,
        Weekday::Wed => WeekdayDto::Wed,
        Weekday::Thu => WeekdayDto::Thu,
        Weekday::Fri => WeekdayDto::Fri,
        Weekday::Sat => WeekdayDto::Sat,
        Weekday::Sun => WeekdayDto::Sun,
    }
}

impl From<RecurrenceDto> for Recurrence {
    fn from(r: RecurrenceDto) -> Self {
        let nth = |n: NthDto| match n {
            NthDto::First => Nth::First,
            NthDto::Second => Nth::Second,
            NthDto::Third => Nth::Third,
            NthDto::Fourth => Nth::Fourth,
            NthDto::Last => Nth::Last,
        };
        match r {
            RecurrenceDto::MonthlyOnDay { every, day } => Self::MonthlyOnDay { every, day },
            RecurrenceDto::MonthlyOnWeekday {
                every,
                nth: n,
                weekday: w,
            } => Self::MonthlyOnWeekday {
                every,
                nth: nth(n),
                weekday: weekday(w),
            },
            RecurrenceDto::Weekly { every, weekday: w } => Self::Weekly {
                every,
                weekday: weekday(w),
            },
        }
    }
}

impl From<Recurrence> for RecurrenceDto {
    fn from(r: Recurrence) -> Self {
        let nth = |n: Nth| match n {
            Nth::First => NthDto::First,
            Nth::Second => NthDto::Second,
            Nth::Third => NthDto::Third,
            Nth::Fourth => NthDto::Fourth,
            Nth::Last => NthDto::Last,
        };
        match r {
            Recurrence::MonthlyOnDay { every, day } => Self::MonthlyOnDay { every, day },
            Recurrence::MonthlyOnWeekday {
                every,
                nth: n,
                weekday: w,
            } => Self::MonthlyOnWeekday {
                every,
                nth: nth(n),
                weekday: weekday_dto(w),
            },
            Recurrence::Weekly { every, weekday: w } => Self::Weekly {
                every,
                weekday: weekday_dto(w),
            },
        }
    }
}

/// A preferred local time of day.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DayWindowDto {
    /// From, `HH:MM`.
    pub start: String,
    /// Until, `HH:MM`, after `start`.
    pub end: String,
}

fn hh_mm(raw: &str) -> Result<NaiveTime, hestami_core::Invalid> {
    let parsed = (raw.len() == 5)
        .then(|| NaiveTime::parse_from_str(raw, "%H:%M").ok())
        .flatten();
    parsed.ok_or_else(|| {
        hestami_core::Invalid::new("invalid_time", "a time is HH:MM, 00:00 to 23:59")
    })
}

fn day_window(v: &mut Validator, field: &str, w: &DayWindowDto) -> Option<DayWindow> {
    let start = v.check(&format!("{field}.start"), hh_mm(&w.start));
    let end = v.check(&format!("{field}.end"), hh_mm(&w.end));
    v.check(&format!("{field}.end"), DayWindow::new(start?, end?))
}

fn window_dto(w: DayWindow) -> DayWindowDto {
    DayWindowDto {
        start: w.start.format("%H:%M").to_string(),
        end: w.end.format("%H:%M").to_string(),
    }
}

/// A service a plan's visit performs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanServiceDto {
    /// A service of the pricebook.
    pub item_id: Uuid,
    /// How many, a decimal string: more than 0.
    pub quantity: String,
}

/// A visit a plan includes.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanVisitInput {
    /// Its name ("Spring tune-up").
    pub name: String,
    /// The trade it needs.
    pub trade: String,
    /// How it recurs.
    pub rule: RecurrenceDto,
    /// For monthly rules: the month (1–12) the cycle runs through ("every 6 months starting
    /// April": `every` 6, `startMonth` 4). Absent: the cycle counts from the agreement's start.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 12)]
    pub start_month: Option<u8>,
    /// The preferred local time of day.
    pub window: DayWindowDto,
    /// How long it takes, 1 to 1440 minutes.
    #[schema(minimum = 1, maximum = 1440)]
    pub duration_minutes: u16,
    /// The lowest skill level it needs (default 1).
    #[serde(default)]
    pub min_skill_level: Option<u8>,
    /// The pricebook services it performs, at most 20.
    #[serde(default)]
    #[schema(max_items = 20)]
    pub services: Vec<PlanServiceDto>,
    /// Form templates (checklists) its job must have answered before it is completed, at
    /// most 5 (an id given twice counts once).
    #[serde(default)]
    #[schema(max_items = 5)]
    pub form_template_ids: Vec<Uuid>,
}

/// What members get.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BenefitsInput {
    /// A discount on other work, a percentage 0 to 100.
    #[serde(default)]
    pub discount_percent: Option<String>,
    /// The priority their visits get.
    #[serde(default)]
    pub priority: Option<PriorityDto>,
    /// Whether the trip fee is waived (default false).
    #[serde(default)]
    pub waive_trip_fee: Option<bool>,
}

/// A plan's price per billing period, for the frequencies it is sold at (at least one).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct PricesDto {
    /// A month's price (absent: not sold monthly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub monthly: Option<String>,
    /// A quarter's price (absent: not sold quarterly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub quarterly: Option<String>,
    /// A year's price (absent: not sold annually).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub annually: Option<String>,
    /// The price of each visit, invoiced on the visit's job when it is completed (absent: not
    /// sold per visit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub per_visit: Option<String>,
}

/// `maintenance/v1/createPlan`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreatePlanInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Its name, unique in the organization.
    pub name: String,
    /// What it offers, for people.
    #[serde(default)]
    pub description: Option<String>,
    /// The visits it includes, 1 to 12.
    #[schema(min_items = 1, max_items = 12)]
    pub visits: Vec<PlanVisitInput>,
    /// What members get.
    #[serde(default)]
    pub benefits: Option<BenefitsInput>,
    /// Its prices.
    pub prices: PricesDto,
}

/// A billing frequency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BillingDto {
    /// Each calendar month.
    Monthly,
    /// Each three months from the start's month.
    Quarterly,
    /// Each twelve months from the start's month.
    Annually,
    /// Each visit, when its job is completed.
    PerVisit,
}

impl From<BillingDto> for BillingFrequency {
    fn from(b: BillingDto) -> Self {
        match b {
            BillingDto::Monthly => Self::Monthly,
            BillingDto::Quarterly => Self::Quarterly,
            BillingDto::Annually => Self::Annually,
            BillingDto::PerVisit => Self::PerVisit,
        }
    }
}

fn billing_name(b: BillingFrequency) -> &'static str {
    match b {
        BillingFrequency::Monthly => "monthly",
        BillingFrequency::Quarterly => "quarterly",
        BillingFrequency::Annually => "annually",
        BillingFrequency::PerVisit => "per_visit",
    }
}

/// `maintenance/v1/createContract`: a draft agreement.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateContractInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The customer.
    pub customer_id: Uuid,
    /// Their properties it covers, 1 to 20, each once.
    pub property_ids: Vec<Uuid>,
    /// The plan.
    pub plan_id: Uuid,
    /// Its first day.
    pub start_date: NaiveDate,
    /// Its term, 1 to 60 months.
    #[schema(minimum = 1, maximum = 60)]
    pub term_months: u32,
    /// How it is billed; the plan must have a price for it.
    pub billing: BillingDto,
    /// Whether it renews at the term's end (default false).
    #[serde(default)]
    pub auto_renew: Option<bool>,
    /// Days before a visit its job is generated, 0 to 180 (default 30).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 180)]
    pub lead_days: Option<u32>,
    /// A card (the payment processor's token) each period's invoice is charged to when it is
    /// issued; a declined charge is tried again 3 days later, and the third decline in a row
    /// suspends the agreement.
    #[serde(default)]
    pub card_token: Option<String>,
}

/// `maintenance/v1/setAutopay`: charge each period's invoice to a card, or stop (null).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetAutopayInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The agreement (not ended).
    pub agreement_id: Uuid,
    /// The processor's card token; null stops charging. A new card is tried on the next tick.
    pub card_token: Option<String>,
    /// Refuse with `VERSION_CONFLICT` unless the agreement is at this version.
    #[serde(default)]
    pub expected_version: Option<i64>,
}

/// `maintenance/v1/setPlanPrices`: a plan's prices from now on; agreements keep theirs until
/// they renew.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetPlanPricesInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The plan.
    pub plan_id: Uuid,
    /// Its prices.
    pub prices: PricesDto,
    /// Refuse with `VERSION_CONFLICT` unless the plan is at this version.
    #[serde(default)]
    pub expected_version: Option<i64>,
}

/// `maintenance/v1/report`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReportInput {
    /// The horizon of upcoming visits and renewals due, 1 to 365 days (default 30).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 365)]
    pub within_days: Option<u32>,
}

/// `maintenance/v1/activate`: the customer signed; visits and billing start.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActivateInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The agreement (a draft).
    pub agreement_id: Uuid,
    /// Who signed.
    pub signed_by: String,
    /// The signature as captured (a typed name, or a reference to a stored image).
    #[serde(default)]
    pub signature: Option<String>,
    /// Refuse with `VERSION_CONFLICT` unless the agreement is at this version.
    #[serde(default)]
    pub expected_version: Option<i64>,
}

/// `maintenance/v1/suspend` and `cancel`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndAgreementInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The agreement.
    pub agreement_id: Uuid,
    /// Why.
    pub reason: String,
    /// Refuse with `VERSION_CONFLICT` unless the agreement is at this version.
    #[serde(default)]
    pub expected_version: Option<i64>,
}

/// `maintenance/v1/resume`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResumeInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The agreement (suspended).
    pub agreement_id: Uuid,
    /// Refuse with `VERSION_CONFLICT` unless the agreement is at this version.
    #[serde(default)]
    pub expected_version: Option<i64>,
}

/// `maintenance/v1/changePlan`: the agreement follows another plan from tomorrow.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangePlanInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The agreement (active).
    pub agreement_id: Uuid,
    /// The plan it moves to: another plan, priced for the agreement's billing frequency.
    pub plan_id: Uuid,
    /// Refuse with `VERSION_CONFLICT` unless the agreement is at this version.
    #[serde(default)]
    pub expected_version: Option<i64>,
}

/// `maintenance/v1/changeSchedule`: a plan visit recurs differently from now on; visits already
/// generated stay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeScheduleInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The agreement.
    pub agreement_id: Uuid,
    /// Which of the plan's visits (its index).
    #[schema(minimum = 0, maximum = 11)]
    pub slot: u32,
    /// How it recurs now.
    pub rule: RecurrenceDto,
    /// The month a monthly cycle runs through.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 12)]
    pub start_month: Option<u8>,
    /// The preferred local time of day.
    pub window: DayWindowDto,
    /// Refuse with `VERSION_CONFLICT` unless the agreement is at this version.
    #[serde(default)]
    pub expected_version: Option<i64>,
}

mutating!(
    SetAutopayInput,
    SetPlanPricesInput,
    CreatePlanInput,
    CreateContractInput,
    ActivateInput,
    EndAgreementInput,
    ResumeInput,
    ChangeScheduleInput,
    ChangePlanInput,
);

/// `maintenance/v1/getPlan`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetMaintenancePlanInput {
    /// The plan.
    pub plan_id: Uuid,
}

/// `maintenance/v1/get`, `visits` and `invoices`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgreementRefInput {
    /// The agreement.
    pub agreement_id: Uuid,
}

/// An agreement's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgreementStatusDto {
    /// Written, not yet signed.
    Draft,
    /// In force.
    Active,
    /// Paused.
    Suspended,
    /// Its term ended without renewal.
    Expired,
    /// Ended early.
    Cancelled,
}

impl From<AgreementStatus> for AgreementStatusDto {
    fn from(s: AgreementStatus) -> Self {
        match s {
            AgreementStatus::Draft => Self::Draft,
            AgreementStatus::Active => Self::Active,
            AgreementStatus::Suspended => Self::Suspended,
            AgreementStatus::Expired => Self::Expired,
            AgreementStatus::Cancelled => Self::Cancelled,
        }
    }
}

impl From<AgreementStatusDto> for AgreementStatus {
    fn from(s: AgreementStatusDto) -> Self {
        match s {
            AgreementStatusDto::Draft => Self::Draft,
            AgreementStatusDto::Active => Self::Active,
            AgreementStatusDto::Suspended => Self::Suspended,
            AgreementStatusDto::Expired => Self::Expired,
            AgreementStatusDto::Cancelled => Self::Cancelled,
        }
    }
}

/// `maintenance/v1/list`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListAgreementsInput {
    /// Only in this status.
    #[serde(default)]
    pub status: Option<AgreementStatusDto>,
    /// Only this customer's.
    #[serde(default)]
    pub customer_id: Option<Uuid>,
    /// Page size, 1 to 200 (default 50).
    #[serde(default)]
    pub limit: Option<u32>,
    /// From `nextCursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// A plan's visit as stored.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanVisitDto {
    /// Its index in the plan (an agreement's `slot`).
    pub slot: u32,
    /// Its name.
    pub name: String,
    /// The trade it needs.
    pub trade: String,
    /// How it recurs.
    pub rule: RecurrenceDto,
    /// The month a monthly cycle runs through.
    pub start_month: Option<u8>,
    /// The preferred local time of day.
    pub window: DayWindowDto,
    /// How long it takes.
    pub duration_minutes: u16,
    /// The lowest skill level it needs.
    pub min_skill_level: u8,
    /// The services it performs.
    pub services: Vec<PlanServiceDto>,
    /// The form templates its job must have answered before it is completed.
    pub form_template_ids: Vec<Uuid>,
}

/// What members get.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BenefitsDto {
    /// A discount on other work, a percentage.
    pub discount_percent: Option<String>,
    /// The priority their visits get.
    pub priority: Option<PriorityDto>,
    /// Whether the trip fee is waived.
    pub waive_trip_fee: bool,
}

/// A plan.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenancePlanDto {
    /// Its id.
    pub id: Uuid,
    /// 1 on creation.
    pub version: i64,
    /// Its name.
    pub name: String,
    /// What it offers.
    pub description: Option<String>,
    /// The visits it includes.
    pub visits: Vec<PlanVisitDto>,
    /// What members get.
    pub benefits: BenefitsDto,
    /// Its prices.
    pub prices: PricesDto,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

fn priority_dto(p: hestami_core::job::Priority) -> PriorityDto {
    match p {
        hestami_core::job::Priority::Emergency => PriorityDto::Emergency,
        hestami_core::job::Priority::Urgent => PriorityDto::Urgent,
        hestami_core::job::Priority::Routine => PriorityDto::Routine,
    }
}

impl From<Plan> for MaintenancePlanDto {
    fn from(p: Plan) -> Self {
        let mut prices = PricesDto::default();
        for price in &p.prices {
            let text = Some(price.amount.amount_text());
            match price.frequency {
                BillingFrequency::Monthly => prices.monthly = text,
                BillingFrequency::Quarterly => prices.quarterly = text,
                BillingFrequency::Annually => prices.annually = text,
                BillingFrequency::PerVisit => prices.per_visit = text,
            }
        }
        Self {
            id: p.id.as_uuid(),
            version: p.version,
            name: p.name.as_str().to_owned(),
            description: p.description.map(|d| d.as_str().to_owned()),
            visits: p
                .visits
                .iter()
                .enumerate()
                .map(|(slot, v)| PlanVisitDto {
                    slot: u32::try_from(slot).unwrap_or(u32::MAX),
                    name: v.name.as_str().to_owned(),
                    trade: v.trade.as_str().to_owned(),
                    rule: v.rule.into(),
                    start_month: v.start_month,
                    window: window_dto(v.window),
                    duration_minutes: v.duration_minutes,
                    min_skill_level: v.min_skill_level.get(),
                    services: v
                        .services
                        .iter()
                        .map(|s| PlanServiceDto {
                            item_id: s.item_id.as_uuid(),
                            quantity: s.quantity.normalize().to_string(),
                        })
                        .collect(),
                    form_template_ids: v.forms.iter().map(|f| f.as_uuid()).collect(),
                })
                .collect(),
            benefits: BenefitsDto {
                discount_percent: p.benefits.discount.map(|d| d.value().to_string()),
                priority: p.benefits.priority.map(priority_dto),
                waive_trip_fee: p.benefits.waive_trip_fee,
            },
            prices,
            created_at: p.created_at,
        }
    }
}

/// Plans.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenancePlanList {
    /// By name.
    pub items: Vec<MaintenancePlanDto>,
}

/// One schedule of an agreement.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgreementScheduleDto {
    /// The plan visit.
    pub slot: u32,
    /// 0 for the original schedule, +1 per change.
    pub revision: u32,
    /// The day the rule counts from.
    pub start: NaiveDate,
    /// How it recurs.
    pub rule: RecurrenceDto,
    /// The preferred local time of day.
    pub window: DayWindowDto,
    /// How many of its visits are generated.
    pub generated: u32,
    /// The next visit's date, if one is left in the term.
    pub next_visit_on: Option<NaiveDate>,
    /// Replaced by a later revision.
    pub replaced: bool,
}

/// The customer's signature.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignatureDto {
    /// Who signed.
    pub signed_by: String,
    /// The signature as captured.
    pub signature: Option<String>,
    /// When.
    pub signed_at: DateTime<Utc>,
}

/// An agreement.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgreementDto {
    /// Its id.
    pub id: Uuid,
    /// 1 on creation, +1 on each change (a tick that generates or bills included).
    pub version: i64,
    /// The plan.
    pub plan_id: Uuid,
    /// The plan's name.
    pub plan_name: String,
    /// The customer.
    pub customer_id: Uuid,
    /// The properties it covers.
    pub property_ids: Vec<Uuid>,
    /// Where it is in its life.
    pub status: AgreementStatusDto,
    /// Its first day.
    pub start_date: NaiveDate,
    /// The term's length in months.
    pub term_months: u32,
    /// The day after the current term's last day.
    pub term_end: NaiveDate,
    /// How it is billed: monthly, quarterly or annually.
    pub billing: String,
    /// The price of a whole period.
    pub price: String,
    /// The currency.
    pub currency: String,
    /// Whether it renews at the term's end.
    pub auto_renew: bool,
    /// Days before a visit its job is generated.
    pub lead_days: u32,
    /// Its schedules.
    pub schedules: Vec<AgreementScheduleDto>,
    /// The day after the last billed period.
    pub billed_until: Option<NaiveDate>,
    /// How many times it renewed.
    pub renewals: u32,
    /// When it renews on its own (null: it does not).
    pub renews_on: Option<NaiveDate>,
    /// Whether each period's invoice is charged to a card.
    pub autopay: bool,
    /// Declined charges in a row.
    pub failed_charges: u32,
    /// When a declined charge is tried again.
    pub retry_on: Option<NaiveDate>,
    /// The customer's signature, once active.
    pub signature: Option<SignatureDto>,
    /// Why it was suspended or cancelled.
    pub reason: Option<String>,
    /// The next local date its timer runs (null when it is not in force).
    pub next_attention: Option<NaiveDate>,
    /// What cancelling it credited (null until it is cancelled).
    pub cancellation: Option<CancellationDto>,
    /// Its changes of plan, oldest first.
    pub plan_changes: Vec<PlanChangeDto>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// What a cancellation credited: the billed days after the day it was cancelled on.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CancellationDto {
    /// The local date it was cancelled on; it took effect at the end of that day.
    pub cancelled_on: NaiveDate,
    /// One per billed period with days left.
    pub credits: Vec<UnusedCreditDto>,
}

/// The unused days of one billed period, credited on its invoice.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnusedCreditDto {
    /// The period's invoice.
    pub invoice_id: Uuid,
    /// The first day the invoice billed.
    pub period_start: NaiveDate,
    /// The day after the last.
    pub period_end: NaiveDate,
    /// The billed days after the cancellation.
    pub unused_days: u32,
    /// Their share of the days billed (4 decimals): the quantity of the line credited.
    pub share: String,
    /// The credit note's total.
    pub amount: String,
    /// `credited` (taken off what the invoice owes), `refunded` (the invoice was paid: the
    /// credit note refunded to `refundPaymentId`) or `by_hand` (partly paid, or no one payment
    /// covers it: left to the office, through `invoice/v1/creditNote`).
    pub settlement: SettlementDto,
    /// The payment refunded, when `refunded`.
    pub refund_payment_id: Option<Uuid>,
}

/// How a cancellation's credit is settled.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SettlementDto {
    /// A credit note against what the invoice owes.
    Credited,
    /// A credit note refunded to a payment.
    Refunded,
    /// Left to the office.
    ByHand,
}

/// A change of plan: the rest of each billed period credited at the old price and billed at
/// the new one.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanChangeDto {
    /// The local date it was made; the new plan applies from the next day.
    pub changed_on: NaiveDate,
    /// The plan it left.
    pub from_plan_id: Uuid,
    /// That plan's price of a whole period.
    pub from_price: String,
    /// The rest of each billed period, credited at the old price.
    pub credits: Vec<UnusedCreditDto>,
    /// The same days billed at the new price.
    pub invoices: Vec<PeriodInvoiceDto>,
}

fn plan_change_dto(c: PlanChange) -> PlanChangeDto {
    PlanChangeDto {
        changed_on: c.on,
        from_plan_id: c.from_plan_id.as_uuid(),
        from_price: c.from_price.amount_text(),
        credits: credit_dtos(c.credits),
        invoices: c.invoices.into_iter().map(Into::into).collect(),
    }
}

fn cancellation_dto(c: Cancellation) -> CancellationDto {
    CancellationDto {
        cancelled_on: c.on,
        credits: credit_dtos(c.credits),
    }
}

fn credit_dtos(credits: Vec<UnusedCredit>) -> Vec<UnusedCreditDto> {
    credits
        .into_iter()
        .map(|u| {
            let (settlement, refund_payment_id) = match u.settlement {
                Settlement::Credited => (SettlementDto::Credited, None),
                Settlement::Refunded { payment_id } => {
                    (SettlementDto::Refunded, Some(payment_id.as_uuid()))
                }
                Settlement::ByHand => (SettlementDto::ByHand, None),
            };
            UnusedCreditDto {
                invoice_id: u.invoice_id.as_uuid(),
                period_start: u.period_start,
                period_end: u.period_end,
                unused_days: u.unused_days,
                share: u.share.normalize().to_string(),
                amount: u.amount.amount_text(),
                settlement,
                refund_payment_id,
            }
        })
        .collect()
}

fn schedule_dto(s: &AgreementSchedule, term_end: NaiveDate) -> AgreementScheduleDto {
    AgreementScheduleDto {
        slot: s.slot,
        revision: s.revision,
        start: s.schedule.start,
        rule: s.schedule.rule.into(),
        window: window_dto(s.schedule.window),
        generated: s.next,
        next_visit_on: (!s.replaced)
            .then(|| s.schedule.occurrence(s.next))
            .flatten()
            .filter(|d| *d < term_end),
        replaced: s.replaced,
    }
}

impl From<Agreement> for AgreementDto {
    fn from(a: Agreement) -> Self {
        Self {
            id: a.id.as_uuid(),
            version: a.version,
            plan_id: a.plan_id.as_uuid(),
            plan_name: a.plan_name.as_str().to_owned(),
            customer_id: a.customer_id.as_uuid(),
            property_ids: a.property_ids.iter().map(|p| p.as_uuid()).collect(),
            status: a.status.into(),
            start_date: a.start_date,
            term_months: a.term_months,
            term_end: a.term_end,
            billing: billing_name(a.billing).to_owned(),
            price: a.price.amount_text(),
            currency: a.price.currency().code().to_owned(),
            auto_renew: a.auto_renew,
            lead_days: a.lead_days,
            schedules: a
                .schedules
                .iter()
                .map(|s| schedule_dto(s, a.term_end))
                .collect(),
            billed_until: a.billed_until,
            renewals: a.renewals,
            renews_on: a.renewal_on(),
            autopay: a.autopay.is_some(),
            failed_charges: a.failed_charges,
            retry_on: a.retry_on,
            signature: a.signature.map(|s| SignatureDto {
                signed_by: s.signed_by.as_str().to_owned(),
                signature: s.signature.map(|d| d.as_str().to_owned()),
                signed_at: s.signed_at,
            }),
            reason: a.reason.map(|r| r.as_str().to_owned()),
            next_attention: a.next_attention,
            cancellation: a.cancellation.map(cancellation_dto),
            plan_changes: a.plan_changes.into_iter().map(plan_change_dto).collect(),
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

/// A page of agreements.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgreementPage {
    /// Oldest first.
    pub items: Vec<AgreementDto>,
    /// The cursor of the next page, or null on the last.
    pub next_cursor: Option<String>,
}

/// A visit an agreement generated.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgreementVisitDto {
    /// The plan visit.
    pub slot: u32,
    /// The schedule's revision.
    pub revision: u32,
    /// The occurrence's index in that schedule.
    pub occurrence: u32,
    /// Where.
    pub property_id: Uuid,
    /// The local date it falls on.
    pub due_on: NaiveDate,
    /// Its job.
    pub job_id: Uuid,
    /// Its job's status.
    pub job_status: String,
    /// The local date it was generated.
    pub generated_on: NaiveDate,
    /// Generated after its lead time began (the server was down): caught up.
    pub late: bool,
    /// Due before today and still ahead (not done, not cancelled).
    pub overdue: bool,
}

impl From<AgreementVisit> for AgreementVisitDto {
    fn from(v: AgreementVisit) -> Self {
        Self {
            slot: v.visit.slot,
            revision: v.visit.revision,
            occurrence: v.visit.occurrence,
            property_id: v.visit.property_id.as_uuid(),
            due_on: v.visit.due_on,
            job_id: v.visit.job_id.as_uuid(),
            job_status: v.job_status,
            generated_on: v.visit.generated_on,
            late: v.visit.late,
            overdue: v.overdue,
        }
    }
}

/// An agreement's visits.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgreementVisitList {
    /// By date.
    pub items: Vec<AgreementVisitDto>,
    /// How many were generated.
    pub generated: u32,
    /// How many of those are done (their job completed, invoiced, paid or closed; a cancelled
    /// visit is neither done nor overdue).
    pub completed: u32,
    /// How many are overdue.
    pub overdue: u32,
    /// How many are still to come in the current term, not yet generated.
    pub remaining: u32,
}

/// Recurring revenue of one billing frequency.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecurringRevenueDto {
    /// monthly, quarterly or annually.
    pub billing: String,
    /// Active agreements billed so.
    pub agreements: u32,
    /// What they bill per period, together.
    pub per_period: String,
}

/// An agreement whose term ends soon.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RenewalDueDto {
    /// The agreement.
    pub agreement_id: Uuid,
    /// The customer.
    pub customer_id: Uuid,
    /// The plan's name.
    pub plan_name: String,
    /// Active or suspended.
    pub status: AgreementStatusDto,
    /// Its term's last day.
    pub last_day: NaiveDate,
    /// When it renews on its own; null: it expires unless renewed by the office.
    pub renews_on: Option<NaiveDate>,
}

/// The agreements in force and what they bring.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceReportDto {
    /// The organization's today.
    pub today: NaiveDate,
    /// Active agreements.
    pub active: u32,
    /// Suspended agreements.
    pub suspended: u32,
    /// Recurring revenue by billing frequency.
    pub recurring: Vec<RecurringRevenueDto>,
    /// All of it per month.
    pub monthly_equivalent: String,
    /// Visits generated (active and suspended agreements).
    pub generated: u32,
    /// Of which done.
    pub completed: u32,
    /// Of which overdue.
    pub overdue: u32,
    /// Visits within the horizon not yet generated.
    pub upcoming: u32,
    /// Terms ending within the horizon, soonest first.
    pub renewals_due: Vec<RenewalDueDto>,
}

/// An invoice of a billing period, or of a visit billed per visit (its day the period).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeriodInvoiceDto {
    /// The period's first day.
    pub period_start: NaiveDate,
    /// The day after its last.
    pub period_end: NaiveDate,
    /// The invoice (`invoice/v1/get`).
    pub invoice_id: Uuid,
    /// The visit's job it is on, when billed per visit (null for a period's invoice).
    pub job_id: Option<Uuid>,
}

impl From<PeriodInvoice> for PeriodInvoiceDto {
    fn from(p: PeriodInvoice) -> Self {
        Self {
            period_start: p.period_start,
            period_end: p.period_end,
            invoice_id: p.invoice_id.as_uuid(),
            job_id: p.job_id.map(|j| j.as_uuid()),
        }
    }
}

/// An agreement's period invoices.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeriodInvoiceList {
    /// By period.
    pub items: Vec<PeriodInvoiceDto>,
}

fn plan_visit(v: &mut Validator, n: usize, i: &PlanVisitInput) -> Option<PlanVisit> {
    let at = |f: &str| format!("visits[{n}].{f}");
    let name = v.check(&at("name"), Label::parse(&i.name));
    let trade = v.check(&at("trade"), TradeCode::parse(&i.trade));
    let rule: Recurrence = i.rule.into();
    let rule_ok = v.check(&at("rule"), rule.validate());
    let window = day_window(v, &at("window"), &i.window);
    let start_month = match i.start_month {
        Some(m) if !(1..=12).contains(&m) => v.check(
            &at("startMonth"),
            Err(hestami_core::Invalid::new(
                "out_of_range",
                "a month is 1 to 12",
            )),
        ),
        other => Some(other),
    };
    let duration = if (1..=1440).contains(&i.duration_minutes) {
        Some(i.duration_minutes)
    } else {
        v.check(
            &at("durationMinutes"),
            Err(hestami_core::Invalid::new(
                "out_of_range",
                "a visit takes 1 to 1440 minutes",
            )),
        )
    };
    let skill = match i.min_skill_level {
        None => Some(SkillLevel::default()),
        Some(level) => v.check(&at("minSkillLevel"), SkillLevel::parse(level)),
    };
    if i.services.len() > MAX_VISIT_SERVICES {
        v.fail(
            &at("services"),
            "too_many",
            &format!("a visit lists at most {MAX_VISIT_SERVICES} services"),
        );
    }
    let mut services = Vec::with_capacity(i.services.len());
    for (k, s) in i.services.iter().enumerate() {
        let field = at(&format!("services[{k}].quantity"));
        let quantity = v.check(
            &field,
            decimal(&s.quantity)
                .and_then(|q| hestami_core::inventory::Quantity::parse(q).map(|q| q.get())),
        );
        services.push(quantity.map(|quantity| PlanService {
            item_id: PricebookItemId::from_uuid(s.item_id),
            quantity,
        }));
    }
    let services: Option<Vec<PlanService>> = services.into_iter().collect();
    let mut forms: Vec<FormTemplateId> = Vec::with_capacity(i.form_template_ids.len());
    for id in &i.form_template_ids {
        let id = FormTemplateId::from_uuid(*id);
        if !forms.contains(&id) {
            forms.push(id);
        }
    }
    if forms.len() > MAX_VISIT_FORMS {
        v.fail(
            &at("formTemplateIds"),
            "too_many",
            &format!("a visit requires at most {MAX_VISIT_FORMS} forms"),
        );
    }
    rule_ok?;
    Some(PlanVisit {
        name: name?,
        trade: trade?,
        rule,
        start_month: start_month?,
        window: window?,
        duration_minutes: duration?,
        min_skill_level: skill?,
        services: services?,
        forms,
    })
}

fn convert_create_plan(
    i: CreatePlanInput,
    currency: Currency,
) -> Result<MaintenanceCommand, ApiError> {
    validate(|v| {
        let name = v.check("name", Label::parse(&i.name));
        let description = v.optional("description", i.description.as_deref(), Description::parse);
        if i.visits.is_empty() || i.visits.len() > MAX_PLAN_VISITS {
            v.fail(
                "visits",
                "out_of_range",
                &format!("a plan includes 1 to {MAX_PLAN_VISITS} visits"),
            );
        }
        let visits: Vec<Option<PlanVisit>> = i
            .visits
            .iter()
            .enumerate()
            .map(|(n, visit)| plan_visit(v, n, visit))
            .collect();
        let benefits = i.benefits.unwrap_or_default();
        let discount = v.optional(
            "benefits.discountPercent",
            benefits.discount_percent.as_deref(),
            |raw| {
                Percent::parse_str(raw).and_then(|p| {
                    if p.value() <= rust_decimal::Decimal::ONE_HUNDRED {
                        Ok(p)
                    } else {
                        Err(hestami_core::Invalid::new(
                            "out_of_range",
                            "a discount is at most 100 percent",
                        ))
                    }
                })
            },
        );
        let prices = plan_prices(v, &i.prices, currency);
        let visits: Option<Vec<PlanVisit>> = visits.into_iter().collect();
        Some(MaintenanceCommand::CreatePlan(NewPlan {
            name: name?,
            description: description?,
            visits: visits?,
            benefits: Benefits {
                discount: discount?,
                priority: benefits.priority.map(Into::into),
                waive_trip_fee: benefits.waive_trip_fee.unwrap_or(false),
            },
            prices: prices?,
        }))
    })
}

fn plan_prices(
    v: &mut Validator,
    prices: &PricesDto,
    currency: Currency,
) -> Option<Vec<PlanPrice>> {
    let mut out = Vec::new();
    let mut priced = true;
    for (field, frequency, raw) in [
        ("prices.monthly", BillingFrequency::Monthly, &prices.monthly),
        (
            "prices.quarterly",
            BillingFrequency::Quarterly,
            &prices.quarterly,
        ),
        (
            "prices.annually",
            BillingFrequency::Annually,
            &prices.annually,
        ),
        (
            "prices.perVisit",
            BillingFrequency::PerVisit,
            &prices.per_visit,
        ),
    ] {
        if let Some(raw) = raw {
            match money(v, field, raw, currency) {
                Some(amount) if amount.amount() < rust_decimal::Decimal::ZERO => {
                    v.fail(field, "must_not_be_negative", "a price is 0 or more");
                    priced = false;
                }
                Some(amount) => out.push(PlanPrice { frequency, amount }),
                None => priced = false,
            }
        }
    }
    if priced && out.is_empty() {
        v.fail(
            "prices",
            "required",
            "a plan has a price for at least one billing frequency",
        );
        return None;
    }
    priced.then_some(out)
}

fn convert_set_plan_prices(
    i: SetPlanPricesInput,
    currency: Currency,
) -> Result<MaintenanceCommand, ApiError> {
    validate(|v| {
        let prices = plan_prices(v, &i.prices, currency)?;
        Some(MaintenanceCommand::SetPlanPrices(SetPlanPrices {
            plan_id: MaintenancePlanId::from_uuid(i.plan_id),
            prices,
            expected_version: i.expected_version,
        }))
    })
}

fn convert_set_autopay(i: SetAutopayInput) -> Result<MaintenanceCommand, ApiError> {
    validate(|v| {
        let card_token = v.optional("cardToken", i.card_token.as_deref(), Label::parse);
        Some(MaintenanceCommand::SetAutopay(SetAutopay {
            agreement_id: AgreementId::from_uuid(i.agreement_id),
            card_token: card_token?,
            expected_version: i.expected_version,
        }))
    })
}

fn convert_create_contract(i: CreateContractInput) -> Result<MaintenanceCommand, ApiError> {
    validate(|v| {
        let card_token = v.optional("cardToken", i.card_token.as_deref(), Label::parse);
        if i.property_ids.is_empty() || i.property_ids.len() > MAX_PROPERTIES {
            v.fail(
                "propertyIds",
                "out_of_range",
                &format!("an agreement covers 1 to {MAX_PROPERTIES} properties"),
            );
        }
        let mut seen = std::collections::HashSet::new();
        if !i.property_ids.iter().all(|p| seen.insert(*p)) {
            v.fail("propertyIds", "duplicate", "each property once");
        }
        let lead_days = i.lead_days.unwrap_or(DEFAULT_LEAD_DAYS);
        if !(1..=MAX_TERM_MONTHS).contains(&i.term_months) {
            v.fail(
                "termMonths",
                "out_of_range",
                &format!("a term is 1 to {MAX_TERM_MONTHS} months"),
            );
        }
        if lead_days > MAX_LEAD_DAYS {
            v.fail(
                "leadDays",
                "out_of_range",
                &format!("a lead time is 0 to {MAX_LEAD_DAYS} days"),
            );
        }
        Some(MaintenanceCommand::CreateContract(NewAgreement {
            customer_id: CustomerId::from_uuid(i.customer_id),
            property_ids: i
                .property_ids
                .iter()
                .map(|p| PropertyId::from_uuid(*p))
                .collect(),
            plan_id: MaintenancePlanId::from_uuid(i.plan_id),
            start_date: i.start_date,
            term_months: i.term_months,
            billing: i.billing.into(),
            auto_renew: i.auto_renew.unwrap_or(false),
            lead_days,
            card_token: card_token?,
        }))
    })
}

fn convert_activate(i: ActivateInput) -> Result<MaintenanceCommand, ApiError> {
    validate(|v| {
        let signed_by = v.check("signedBy", Label::parse(&i.signed_by));
        let signature = v.optional("signature", i.signature.as_deref(), Description::parse);
        Some(MaintenanceCommand::Activate(ActivateAgreement {
            agreement_id: AgreementId::from_uuid(i.agreement_id),
            signed_by: signed_by?,
            signature: signature?,
            expected_version: i.expected_version,
        }))
    })
}

fn end_input(i: EndAgreementInput) -> Result<ChangeStatus, ApiError> {
    validate(|v| {
        let reason = v.check("reason", Reason::parse(&i.reason));
        Some(ChangeStatus {
            agreement_id: AgreementId::from_uuid(i.agreement_id),
            reason: Some(reason?),
            expected_version: i.expected_version,
        })
    })
}

fn convert_suspend(i: EndAgreementInput) -> Result<MaintenanceCommand, ApiError> {
    end_input(i).map(MaintenanceCommand::Suspend)
}

fn convert_cancel(i: EndAgreementInput) -> Result<MaintenanceCommand, ApiError> {
    end_input(i).map(MaintenanceCommand::Cancel)
}

fn convert_change_plan(i: ChangePlanInput) -> Result<MaintenanceCommand, ApiError> {
    Ok(MaintenanceCommand::ChangePlan(ChangePlan {
        agreement_id: AgreementId::from_uuid(i.agreement_id),
        plan_id: MaintenancePlanId::from_uuid(i.plan_id),
        expected_version: i.expected_version,
    }))
}

fn convert_resume(i: ResumeInput) -> Result<MaintenanceCommand, ApiError> {
    Ok(MaintenanceCommand::Resume(ChangeStatus {
        agreement_id: AgreementId::from_uuid(i.agreement_id),
        reason: None,
        expected_version: i.expected_version,
    }))
}

fn convert_change_schedule(i: ChangeScheduleInput) -> Result<MaintenanceCommand, ApiError> {
    validate(|v| {
        let rule: Recurrence = i.rule.into();
        let rule_ok = v.check("rule", rule.validate());
        let window = day_window(v, "window", &i.window);
        let start_month = match i.start_month {
            Some(m) if !(1..=12).contains(&m) => v.check(
                "startMonth",
                Err(hestami_core::Invalid::new(
                    "out_of_range",
                    "a month is 1 to 12",
                )),
            ),
            other => Some(other),
        };
        rule_ok?;
        Some(MaintenanceCommand::ChangeSchedule(ChangeSchedule {
            agreement_id: AgreementId::from_uuid(i.agreement_id),
            slot: i.slot,
            rule,
            start_month: start_month?,
            window: window?,
            expected_version: i.expected_version,
        }))
    })
}

async fn get_plan(ctx: Ctx, i: GetMaintenancePlanInput) -> Result<MaintenancePlanDto, ApiError> {
    let plan = ctx
        .services
        .maintenance_plan(ctx.caller()?, MaintenancePlanId::from_uuid(i.plan_id))
        .await?;
    Ok(plan.into())
}

async fn list_plans(ctx: Ctx, _: super::Empty) -> Result<MaintenancePlanList, ApiError> {
    let plans = ctx.services.maintenance_plans(ctx.caller()?).await?;
    Ok(MaintenancePlanList {
        items: plans.into_iter().map(Into::into).collect(),
    })
}

async fn get_agreement(ctx: Ctx, i: AgreementRefInput) -> Result<AgreementDto, ApiError> {
    let agreement = ctx
        .services
        .agreement(ctx.caller()?, AgreementId::from_uuid(i.agreement_id))
        .await?;
    Ok(agreement.into())
}

async fn list_agreements(ctx: Ctx, i: ListAgreementsInput) -> Result<AgreementPage, ApiError> {
    let page = PageRequest::parse(i.limit, i.cursor.as_deref())?;
    let filter = AgreementFilter {
        status: i.status.map(Into::into),
        customer_id: i.customer_id.map(CustomerId::from_uuid),
    };
    let found = ctx.services.agreements(ctx.caller()?, filter, page).await?;
    Ok(AgreementPage {
        items: found.items.into_iter().map(Into::into).collect(),
        next_cursor: found.next_cursor,
    })
}

async fn visits(ctx: Ctx, i: AgreementRefInput) -> Result<AgreementVisitList, ApiError> {
    let visits = ctx
        .services
        .agreement_visits(ctx.caller()?, AgreementId::from_uuid(i.agreement_id))
        .await?;
    Ok(AgreementVisitList {
        items: visits.items.into_iter().map(Into::into).collect(),
        generated: visits.generated,
        completed: visits.completed,
        overdue: visits.overdue,
        remaining: visits.remaining,
    })
}

async fn report(ctx: Ctx, i: ReportInput) -> Result<MaintenanceReportDto, ApiError> {
    let within = i.within_days.unwrap_or(30);
    if !(1..=365).contains(&within) {
        return validate(|v| {
            v.fail("withinDays", "out_of_range", "a horizon is 1 to 365 days");
            None
        });
    }
    let r = ctx
        .services
        .maintenance_report(ctx.caller()?, within)
        .await?;
    Ok(MaintenanceReportDto {
        today: r.today,
        active: r.active,
        suspended: r.suspended,
        recurring: r
            .recurring
            .iter()
            .map(|x| RecurringRevenueDto {
                billing: billing_name(x.billing).to_owned(),
                agreements: x.agreements,
                per_period: x.per_period.amount_text(),
            })
            .collect(),
        monthly_equivalent: r.monthly_equivalent.amount_text(),
        generated: r.generated,
        completed: r.completed,
        overdue: r.overdue,
        upcoming: r.upcoming,
        renewals_due: r
            .renewals_due
            .into_iter()
            .map(|d| RenewalDueDto {
                agreement_id: d.agreement_id.as_uuid(),
                customer_id: d.customer_id.as_uuid(),
                plan_name: d.plan_name.as_str().to_owned(),
                status: d.status.into(),
                last_day: d.last_day,
                renews_on: d.renews_on,
            })
            .collect(),
    })
}

async fn invoices(ctx: Ctx, i: AgreementRefInput) -> Result<PeriodInvoiceList, ApiError> {
    let invoices = ctx
        .services
        .agreement_invoices(ctx.caller()?, AgreementId::from_uuid(i.agreement_id))
        .await?;
    Ok(PeriodInvoiceList {
        items: invoices.into_iter().map(Into::into).collect(),
    })
}

fn name(name: &'static str, summary: &'static str, errors: &'static [&'static str]) -> Name {
    Name {
        namespace: "maintenance",
        version: "v1",
        name,
        summary,
        errors,
    }
}

pub(crate) fn procedures() -> Vec<Procedure> {
    vec![
        mutation_in(
            name(
                "createPlan",
                "Add a maintenance plan: its visits and how they recur, member benefits, prices",
                &["PLAN_EXISTS"],
            ),
            convert_create_plan,
            <MaintenancePlanDto as From<Plan>>::from,
        ),
        mutation_in(
            name(
                "setPlanPrices",
                "Change a plan's prices; agreements keep theirs until they renew",
                &["NOT_FOUND", "VERSION_CONFLICT"],
            ),
            convert_set_plan_prices,
            <MaintenancePlanDto as From<Plan>>::from,
        ),
        query(
            name("getPlan", "A maintenance plan", &["NOT_FOUND"]),
            get_plan,
        ),
        query(
            name("listPlans", "The maintenance plans, by name", &[]),
            list_plans,
        ),
        mutation(
            name(
                "createContract",
                "Write a customer's agreement on a plan (a draft until it is signed)",
                &["NOT_FOUND"],
            ),
            convert_create_contract,
            <AgreementDto as From<Agreement>>::from,
        ),
        mutation(
            name(
                "activate",
                "Record the customer's signature and put the agreement in force",
                &["NOT_FOUND", "AGREEMENT_STATE", "VERSION_CONFLICT"],
            ),
            convert_activate,
            <AgreementDto as From<Agreement>>::from,
        ),
        mutation(
            name(
                "suspend",
                "Pause an agreement: no visits are generated and no periods billed",
                &["NOT_FOUND", "AGREEMENT_STATE", "VERSION_CONFLICT"],
            ),
            convert_suspend,
            <AgreementDto as From<Agreement>>::from,
        ),
        mutation(
            name(
                "resume",
                "Resume a suspended agreement (what fell due meanwhile is caught up)",
                &["NOT_FOUND", "AGREEMENT_STATE", "VERSION_CONFLICT"],
            ),
            convert_resume,
            <AgreementDto as From<Agreement>>::from,
        ),
        mutation(
            name(
                "cancel",
                "End an agreement early, at the end of today: nothing more is generated or billed, and the billed days after today are credited on their invoices (a credit note against what is owed, or refunded to the payment of a paid one; else left to the office)",
                &[
                    "NOT_FOUND",
                    "AGREEMENT_STATE",
                    "VERSION_CONFLICT",
                    "PAYMENT_PROVIDER_UNAVAILABLE",
                ],
            ),
            convert_cancel,
            <AgreementDto as From<Agreement>>::from,
        ),
        mutation(
            name(
                "changeSchedule",
                "Re-plan one of an agreement's visits: future, not yet generated visits follow the new rule",
                &["NOT_FOUND", "AGREEMENT_STATE", "VERSION_CONFLICT"],
            ),
            convert_change_schedule,
            <AgreementDto as From<Agreement>>::from,
        ),
        mutation(
            name(
                "changePlan",
                "Move an agreement to another plan from tomorrow: its visits follow the new plan's, and the billed days after today are credited at the old price and billed at the new one",
                &[
                    "NOT_FOUND",
                    "AGREEMENT_STATE",
                    "VERSION_CONFLICT",
                    "PAYMENT_PROVIDER_UNAVAILABLE",
                ],
            ),
            convert_change_plan,
            <AgreementDto as From<Agreement>>::from,
        ),
        mutation(
            name(
                "setAutopay",
                "Charge each period's invoice to a card (retried, then suspended after three declines), or stop",
                &["NOT_FOUND", "AGREEMENT_STATE", "VERSION_CONFLICT"],
            ),
            convert_set_autopay,
            <AgreementDto as From<Agreement>>::from,
        ),
        query(
            name("get", "An agreement with its schedules", &["NOT_FOUND"]),
            get_agreement,
        ),
        query(
            name(
                "list",
                "Agreements, oldest first, by status and customer",
                &[],
            ),
            list_agreements,
        ),
        query(
            name(
                "visits",
                "The visits an agreement generated, their jobs' status, late and overdue ones",
                &["NOT_FOUND"],
            ),
            visits,
        ),
        query(
            name(
                "invoices",
                "The invoices of an agreement's billing periods",
                &["NOT_FOUND"],
            ),
            invoices,
        ),
        query(
            name(
                "report",
                "Agreements in force, their recurring revenue, their visits, and the renewals due",
                &[],
            ),
            report,
        ),
    ]
}
