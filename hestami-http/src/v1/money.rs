//! The v1 wire types of the money path: pricebook items, markup tiers, tax rates, quotes,
//! estimates and invoices, with their conversions from and to the core types.
//!
//! The procedures that use them live in their own namespaces; this module holds only the shapes
//! and the conversions, so that every money procedure renders an amount the same way:
//!
//! - every amount is a decimal string (`"1234.50"`), never a JSON number, so no client parses it
//!   into a float; a quote, an estimate and an invoice carry one `currency` at the top rather
//!   than one per amount;
//! - percentages are decimal strings (`"8.25"` is 8.25 %);
//! - the core's tagged enums (item details, pricing rules, discounts) are flattened into one
//!   object with a discriminator and optional fields, `null` where they do not apply, which every
//!   client generator handles alike.
//!
//! The input conversions take a [`Validator`], the path prefix of the value in the request
//! (`""` or `"options[1]."`) and the organization's [`Currency`], and record every problem with
//! its full path before giving up, including the problems the core's own checks return.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use hestami_core::Invalid;
use hestami_core::estimate::{self, Approval, Estimate, EstimateOption, PlannedWork};
use hestami_core::ids::PricebookItemId;
use hestami_core::invoice::{self, CreditNote, Invoice, InvoiceSource, Payment, Refund, WriteOff};
use hestami_core::money::{FieldError, Money, Percent, Rounding};
use hestami_core::org::Currency;
use hestami_core::pricebook::{
    self, BundledMaterial, Discount, ItemDetails, ItemDraft, ItemKind, LaborRate, LaborTime,
    LineSource, MarkupTier, MarkupTiers, MaterialPricing, PricebookItem, PricedLine, PricingRule,
    Quote, QuoteLine, QuoteRequest, Sku, TaxLine, TaxRate, TaxRates, TaxableKinds, Unit,
};
use hestami_core::text::{Description, Name, TradeCode};

pub use super::contractor::JurisdictionDto;
use super::contractor::jurisdiction;
use super::technician::skill_level;
use crate::rpc::Validator;

// ---------------------------------------------------------------------------------------------
// Small shared shapes.
// ---------------------------------------------------------------------------------------------

/// The kind of a pricebook item or a priced line; decides its taxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemKindDto {
    /// A flat-rate task.
    Service,
    /// A material, sold per unit.
    Material,
    /// Labour, sold per hour.
    Labor,
    /// Equipment, rented per unit of time.
    Equipment,
}

impl From<ItemKindDto> for ItemKind {
    fn from(k: ItemKindDto) -> Self {
        match k {
            ItemKindDto::Service => Self::Service,
            ItemKindDto::Material => Self::Material,
            ItemKindDto::Labor => Self::Labor,
            ItemKindDto::Equipment => Self::Equipment,
        }
    }
}

impl From<ItemKind> for ItemKindDto {
    fn from(k: ItemKind) -> Self {
        match k {
            ItemKind::Service => Self::Service,
            ItemKind::Material => Self::Material,
            ItemKind::Labor => Self::Labor,
            ItemKind::Equipment => Self::Equipment,
        }
    }
}

/// When labour is worked, which decides the multiplier on the hourly rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LaborTimeDto {
    /// Regular hours.
    Regular,
    /// Overtime: the item's overtime multiplier.
    Overtime,
    /// Nights, weekends, holidays: the item's after-hours multiplier.
    AfterHours,
}

impl From<LaborTimeDto> for LaborTime {
    fn from(t: LaborTimeDto) -> Self {
        match t {
            LaborTimeDto::Regular => Self::Regular,
            LaborTimeDto::Overtime => Self::Overtime,
            LaborTimeDto::AfterHours => Self::AfterHours,
        }
    }
}

/// Which kinds of line a tax rate applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaxableKindsDto {
    /// Flat-rate services.
    pub service: bool,
    /// Materials.
    pub material: bool,
    /// Labour.
    pub labor: bool,
    /// Equipment.
    pub equipment: bool,
}

impl From<TaxableKinds> for TaxableKindsDto {
    fn from(t: TaxableKinds) -> Self {
        Self {
            service: t.service,
            material: t.material,
            labor: t.labor,
            equipment: t.equipment,
        }
    }
}

impl From<TaxableKindsDto> for TaxableKinds {
    fn from(t: TaxableKindsDto) -> Self {
        Self {
            service: t.service,
            material: t.material,
            labor: t.labor,
            equipment: t.equipment,
        }
    }
}

/// An amount as it goes on the wire: its decimal string (the currency's minor digits, more
/// only where the value has them), without the currency.
fn amount_text(m: &Money) -> String {
    m.amount_text()
}

/// A percentage as it goes on the wire: `"8.25"`.
fn percent_text(p: &Percent) -> String {
    p.value().to_string()
}

// ---------------------------------------------------------------------------------------------
// Quotes.
// ---------------------------------------------------------------------------------------------

/// One rounding the pricing performed: where, and the value before and after.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoundingDto {
    /// The path of the rounded value in the quote, such as `lines[2].lineTotal`.
    pub at: String,
    /// The exact value, a decimal string.
    pub before: String,
    /// The value rounded to the currency's minor unit, a decimal string.
    pub after: String,
}

impl From<&Rounding> for RoundingDto {
    fn from(r: &Rounding) -> Self {
        Self {
            at: r.at.clone(),
            before: r.before.to_string(),
            after: r.after.to_string(),
        }
    }
}

/// A discount as asked for, taken before tax.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiscountDto {
    /// amount or percent.
    #[serde(rename = "type")]
    pub kind: String,
    /// For `amount`: the amount, a decimal string.
    pub amount: Option<String>,
    /// For `percent`: the percentage of the subtotal, a decimal string.
    pub percent: Option<String>,
}

impl From<&Discount> for DiscountDto {
    fn from(d: &Discount) -> Self {
        match d {
            Discount::Amount { amount } => Self {
                kind: "amount".into(),
                amount: Some(amount_text(amount)),
                percent: None,
            },
            Discount::Percent { percent } => Self {
                kind: "percent".into(),
                amount: None,
                percent: Some(percent_text(percent)),
            },
        }
    }
}

/// The rule that gave a line its unit price; only the fields of its `rule` are set.
#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PricingRuleDto {
    /// explicit_price, item_markup, markup_tier, labor_rate or custom.
    pub rule: String,
    /// item_markup, markup_tier: the material's unit cost, a decimal string.
    pub cost: Option<String>,
    /// item_markup, markup_tier: the markup on cost, a decimal string.
    pub percent: Option<String>,
    /// markup_tier: the tier's lowest cost (inclusive), a decimal string.
    pub from: Option<String>,
    /// markup_tier: the tier's upper bound (exclusive); null for the last tier.
    pub to: Option<String>,
    /// labor_rate: the trade.
    pub trade: Option<String>,
    /// labor_rate: the skill level, 1 to 5.
    pub skill_level: Option<u8>,
    /// labor_rate: the regular hourly rate, a decimal string.
    pub hourly: Option<String>,
    /// labor_rate: regular, overtime or after_hours.
    pub time: Option<String>,
    /// labor_rate: the multiplier applied (1 for regular), a decimal string.
    pub multiplier: Option<String>,
}

impl From<&PricingRule> for PricingRuleDto {
    fn from(rule: &PricingRule) -> Self {
        match rule {
            PricingRule::ExplicitPrice => Self {
                rule: "explicit_price".into(),
                ..Self::default()
            },
            PricingRule::ItemMarkup { cost, percent } => Self {
                rule: "item_markup".into(),
                cost: Some(cost.to_string()),
                percent: Some(percent_text(percent)),
                ..Self::default()
            },
            PricingRule::MarkupTier {
                cost,
                from,
                to,
                percent,
            } => Self {
                rule: "markup_tier".into(),
                cost: Some(cost.to_string()),
                percent: Some(percent_text(percent)),
                from: Some(from.to_string()),
                to: to.map(|t| t.to_string()),
                ..Self::default()
            },
            PricingRule::LaborRate {
                trade,
                skill_level,
                hourly,
                time,
                multiplier,
            } => Self {
                rule: "labor_rate".into(),
                trade: Some(trade.as_str().to_owned()),
                skill_level: Some(skill_level.get()),
                hourly: Some(hourly.to_string()),
                time: Some(time.as_str().to_owned()),
                multiplier: Some(multiplier.to_string()),
                ..Self::default()
            },
            PricingRule::Custom => Self {
                rule: "custom".into(),
                ..Self::default()
            },
        }
    }
}

/// One priced line.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PricedLineDto {
    /// The pricebook item it was priced from; null for a custom line.
    pub item_id: Option<Uuid>,
    /// The item's revision it was priced from; null for a custom line.
    pub revision: Option<u32>,
    /// service, material, labor or equipment.
    pub kind: String,
    /// What the customer reads.
    pub description: String,
    /// How many units (hours for labour), a decimal string.
    pub quantity: String,
    /// The unit, for materials and equipment (`hour` for labour).
    pub unit: Option<String>,
    /// The exact unit price (not rounded), a decimal string.
    pub unit_price: String,
    /// `quantity × unit price`, rounded to the minor unit, a decimal string.
    pub line_total: String,
    /// How the unit price was found.
    pub rule: PricingRuleDto,
    /// A trip fee waived for a member: the unit price is zero and this says what it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waived: Option<WaiverDto>,
}

/// A trip fee waived for a member.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WaiverDto {
    /// The agreement whose plan waives it.
    pub agreement_id: Uuid,
    /// The unit price waived, a decimal string.
    pub unit_price: String,
}

impl From<&PricedLine> for PricedLineDto {
    fn from(l: &PricedLine) -> Self {
        Self {
            item_id: l.item.map(|r| r.item_id.as_uuid()),
            revision: l.item.map(|r| r.revision),
            kind: l.kind.as_str().to_owned(),
            description: l.description.as_str().to_owned(),
            quantity: l.quantity.to_string(),
            unit: l.unit.as_ref().map(|u| u.as_str().to_owned()),
            unit_price: amount_text(&l.unit_price),
            line_total: amount_text(&l.line_total),
            rule: (&l.rule).into(),
            waived: l.waived.map(|w| WaiverDto {
                agreement_id: w.agreement_id.as_uuid(),
                unit_price: amount_text(&w.unit_price),
            }),
        }
    }
}

/// One tax rate applied to a quote.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaxLineDto {
    /// The rate's name.
    pub name: String,
    /// The rate, a decimal string.
    pub percent: String,
    /// The kinds of line it taxed.
    pub taxable: TaxableKindsDto,
    /// The total of the lines it taxes less their share of the discount, rounded.
    pub taxable_base: String,
    /// `taxable base × rate`, rounded.
    pub tax: String,
}

impl From<&TaxLine> for TaxLineDto {
    fn from(t: &TaxLine) -> Self {
        Self {
            name: t.name.as_str().to_owned(),
            percent: percent_text(&t.percent),
            taxable: t.taxable.into(),
            taxable_base: amount_text(&t.taxable_base),
            tax: amount_text(&t.tax),
        }
    }
}

/// A priced set of lines with its totals; every amount is in `currency`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuoteDto {
    /// The currency of every amount (ISO 4217).
    pub currency: String,
    /// The priced lines.
    pub lines: Vec<PricedLineDto>,
    /// The sum of the line totals.
    pub subtotal: String,
    /// The discount as asked for.
    pub discount_rule: Option<DiscountDto>,
    /// The discount taken (`0.00` when none).
    pub discount: String,
    /// The member's discount taken after it: the customer has an active maintenance agreement
    /// whose plan gives one (null when not).
    pub member_discount: Option<MemberDiscountDto>,
    /// One line per tax rate.
    pub tax_lines: Vec<TaxLineDto>,
    /// The sum of the taxes.
    pub tax_total: String,
    /// `subtotal − discount − memberDiscount.amount + taxTotal`.
    pub total: String,
    /// Every rounding that changed a value, in the order performed.
    pub roundings: Vec<RoundingDto>,
}

/// A member's discount on a quote: its own adjustment, rounded and logged as `memberDiscount`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberDiscountDto {
    /// The agreement that makes the customer a member.
    pub agreement_id: Uuid,
    /// Its plan's percentage.
    pub percent: String,
    /// `(subtotal − discount) × percent`, rounded.
    pub amount: String,
}

impl From<&Quote> for QuoteDto {
    fn from(q: &Quote) -> Self {
        Self {
            currency: q.currency.code().to_owned(),
            lines: q.lines.iter().map(Into::into).collect(),
            subtotal: amount_text(&q.subtotal),
            discount_rule: q.discount_rule.as_ref().map(Into::into),
            discount: amount_text(&q.discount),
            member_discount: q.member_discount.map(|m| MemberDiscountDto {
                agreement_id: m.rule.agreement_id.as_uuid(),
                percent: percent_text(&m.rule.percent),
                amount: amount_text(&m.amount),
            }),
            tax_lines: q.tax_lines.iter().map(Into::into).collect(),
            tax_total: amount_text(&q.tax_total),
            total: amount_text(&q.total),
            roundings: q.roundings.iter().map(Into::into).collect(),
        }
    }
}

impl From<Quote> for QuoteDto {
    fn from(q: Quote) -> Self {
        (&q).into()
    }
}

// ---------------------------------------------------------------------------------------------
// Pricebook items, markup tiers and tax rates.
// ---------------------------------------------------------------------------------------------

/// A material included in a flat-rate service's price.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BundledMaterialDto {
    /// The material item.
    pub item_id: Uuid,
    /// How many of its unit, a decimal string.
    pub quantity: String,
}

/// How a material's selling price is found.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaterialPricingDto {
    /// explicit (its own price), markup (cost plus its own markup) or tiered (cost plus the
    /// organization's tiered markup).
    pub rule: String,
    /// explicit: the price per unit, a decimal string.
    pub price: Option<String>,
    /// markup: the markup on cost, a decimal string.
    pub percent: Option<String>,
}

/// The hourly rate for one skill level.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LaborRateDto {
    /// The skill level, 1 to 5.
    pub skill_level: u8,
    /// The regular hourly rate, a decimal string.
    pub hourly: String,
}

/// What an item is, with the prices of its kind; only the fields of its `kind` are set.
#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ItemDetailsDto {
    /// service, material, labor or equipment.
    pub kind: String,
    /// service: the flat price per task.
    pub price: Option<String>,
    /// service: the labour hours the task is expected to take, a decimal string.
    pub estimated_labor_hours: Option<String>,
    /// service, labor: the trade.
    pub trade: Option<String>,
    /// service: materials included in the price.
    pub bundled_materials: Option<Vec<BundledMaterialDto>>,
    /// service: whether it is a trip fee, waived for a member whose plan waives it.
    pub trip_fee: Option<bool>,
    /// material: the stock-keeping unit.
    pub sku: Option<String>,
    /// material: the unit it is sold in; equipment: the unit it is rented by.
    pub unit: Option<String>,
    /// material: what one unit costs the organization.
    pub cost: Option<String>,
    /// material: how its selling price is found.
    pub pricing: Option<MaterialPricingDto>,
    /// labor: hourly rates by skill level.
    pub rates: Option<Vec<LaborRateDto>>,
    /// labor: the multiplier for overtime hours, a decimal string.
    pub overtime_multiplier: Option<String>,
    /// labor: the multiplier for after-hours work, a decimal string.
    pub after_hours_multiplier: Option<String>,
    /// equipment: the price per unit.
    pub rate: Option<String>,
}

impl From<&ItemDetails> for ItemDetailsDto {
    fn from(d: &ItemDetails) -> Self {
        let kind = d.kind().as_str().to_owned();
        match d {
            ItemDetails::Service {
                price,
                estimated_labor_hours,
                trade,
                bundled_materials,
                trip_fee,
            } => Self {
                kind,
                price: Some(amount_text(price)),
                trip_fee: Some(*trip_fee),
                estimated_labor_hours: Some(estimated_labor_hours.to_string()),
                trade: Some(trade.as_str().to_owned()),
                bundled_materials: Some(
                    bundled_materials
                        .iter()
                        .map(|b| BundledMaterialDto {
                            item_id: b.item_id.as_uuid(),
                            quantity: b.quantity.to_string(),
                        })
                        .collect(),
                ),
                ..Self::default()
            },
            ItemDetails::Material {
                sku,
                unit,
                cost,
                pricing,
            } => Self {
                kind,
                sku: Some(sku.as_str().to_owned()),
                unit: Some(unit.as_str().to_owned()),
                cost: Some(amount_text(cost)),
                pricing: Some(match pricing {
                    MaterialPricing::Explicit { price } => MaterialPricingDto {
                        rule: "explicit".into(),
                        price: Some(amount_text(price)),
                        percent: None,
                    },
                    MaterialPricing::Markup { percent } => MaterialPricingDto {
                        rule: "markup".into(),
                        price: None,
                        percent: Some(percent_text(percent)),
                    },
                    MaterialPricing::Tiered => MaterialPricingDto {
                        rule: "tiered".into(),
                        price: None,
                        percent: None,
                    },
                }),
                ..Self::default()
            },
            ItemDetails::Labor {
                trade,
                rates,
                overtime_multiplier,
                after_hours_multiplier,
            } => Self {
                kind,
                trade: Some(trade.as_str().to_owned()),
                rates: Some(
                    rates
                        .iter()
                        .map(|r| LaborRateDto {
                            skill_level: r.skill_level.get(),
                            hourly: amount_text(&r.hourly),
                        })
                        .collect(),
                ),
                overtime_multiplier: Some(overtime_multiplier.to_string()),
                after_hours_multiplier: Some(after_hours_multiplier.to_string()),
                ..Self::default()
            },
            ItemDetails::Equipment { unit, rate } => Self {
                kind,
                unit: Some(unit.as_str().to_owned()),
                rate: Some(amount_text(rate)),
                ..Self::default()
            },
        }
    }
}

/// One revision of a pricebook item.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PricebookItemDto {
    /// The item (the same across revisions).
    pub id: Uuid,
    /// 1 on creation, +1 on each update or archival.
    pub revision: u32,
    /// The name shown on estimates and invoices.
    pub name: String,
    /// More detail, for the office.
    pub description: Option<String>,
    /// A category to group and filter by.
    pub category: Option<String>,
    /// service, material, labor or equipment.
    pub kind: String,
    /// The prices of its kind.
    pub details: ItemDetailsDto,
    /// Archived items are kept for history but can no longer be quoted.
    pub archived: bool,
    /// When this revision was made.
    pub revised_at: DateTime<Utc>,
}

impl From<&PricebookItem> for PricebookItemDto {
    fn from(i: &PricebookItem) -> Self {
        Self {
            id: i.id.as_uuid(),
            revision: i.revision,
            name: i.name.as_str().to_owned(),
            description: i.description.as_ref().map(|d| d.as_str().to_owned()),
            category: i.category.as_ref().map(|c| c.as_str().to_owned()),
            kind: i.kind().as_str().to_owned(),
            details: (&i.details).into(),
            archived: i.archived,
            revised_at: i.revised_at,
        }
    }
}

impl From<PricebookItem> for PricebookItemDto {
    fn from(i: PricebookItem) -> Self {
        (&i).into()
    }
}

/// One tier of the markup table: materials whose unit cost is in `[from, to)` are marked up by
/// `percent`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MarkupTierDto {
    /// The lowest unit cost (inclusive), a decimal string.
    pub from: String,
    /// Where the next tier starts (exclusive); null for the last tier.
    pub to: Option<String>,
    /// The markup on cost, a decimal string.
    pub percent: String,
}

impl From<&MarkupTier> for MarkupTierDto {
    fn from(t: &MarkupTier) -> Self {
        Self {
            from: t.from.to_string(),
            to: t.to.map(|to| to.to_string()),
            percent: percent_text(&t.percent),
        }
    }
}

/// A sales tax: where it applies, its rate, and which kinds of line it taxes.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaxRateDto {
    /// Where it applies.
    pub jurisdiction: JurisdictionDto,
    /// Its name on the invoice.
    pub name: String,
    /// The rate, a decimal string.
    pub percent: String,
    /// What it taxes.
    pub taxable: TaxableKindsDto,
}

impl From<&TaxRate> for TaxRateDto {
    fn from(r: &TaxRate) -> Self {
        Self {
            jurisdiction: (&r.jurisdiction).into(),
            name: r.name.as_str().to_owned(),
            percent: percent_text(&r.percent),
            taxable: r.taxable.into(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Estimates.
// ---------------------------------------------------------------------------------------------

/// One option of an estimate (such as good, better or best).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EstimateOptionDto {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its priced lines and totals.
    pub quote: QuoteDto,
}

impl From<&EstimateOption> for EstimateOptionDto {
    fn from(o: &EstimateOption) -> Self {
        Self {
            id: o.id.as_uuid(),
            name: o.name.as_str().to_owned(),
            quote: (&o.quote).into(),
        }
    }
}

/// The customer's approval of one option.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalDto {
    /// The option approved.
    pub option_id: Uuid,
    /// Who signed.
    pub signed_by: String,
    /// The signature as captured.
    pub signature: Option<String>,
    /// The deposit asked for, a decimal string.
    pub deposit_required: Option<String>,
    /// When.
    pub approved_at: DateTime<Utc>,
}

impl From<&Approval> for ApprovalDto {
    fn from(a: &Approval) -> Self {
        Self {
            option_id: a.option_id.as_uuid(),
            signed_by: a.signed_by.as_str().to_owned(),
            signature: a.signature.as_ref().map(|s| s.as_str().to_owned()),
            deposit_required: a.deposit_required.as_ref().map(amount_text),
            approved_at: a.approved_at,
        }
    }
}

/// An estimate: a proposal of one or more priced options to a customer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EstimateDto {
    /// Its id (the same across revisions).
    pub id: Uuid,
    /// 1 on creation, +1 on each event.
    pub version: i64,
    /// 1 on creation, +1 on each revision.
    pub revision: u32,
    /// draft, sent, approved, declined or expired.
    pub status: String,
    /// The job it is for.
    pub job_id: Option<Uuid>,
    /// Whose.
    pub customer_id: Uuid,
    /// Where.
    pub property_id: Uuid,
    /// The currency of every amount (ISO 4217).
    pub currency: String,
    /// The options offered.
    pub options: Vec<EstimateOptionDto>,
    /// The offer lapses then.
    pub valid_until: DateTime<Utc>,
    /// Notes for the customer.
    pub notes: Option<String>,
    /// When it was sent.
    pub sent_at: Option<DateTime<Utc>>,
    /// The approval, once approved.
    pub approval: Option<ApprovalDto>,
    /// Why the customer declined.
    pub decline_reason: Option<String>,
    /// The states it may move to next.
    pub allowed_next: Vec<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<&Estimate> for EstimateDto {
    fn from(e: &Estimate) -> Self {
        Self {
            id: e.id.as_uuid(),
            version: e.version,
            revision: e.revision,
            status: e.status.as_str().to_owned(),
            job_id: e.job_id.map(|j| j.as_uuid()),
            customer_id: e.customer_id.as_uuid(),
            property_id: e.property_id.as_uuid(),
            currency: e.currency.code().to_owned(),
            options: e.options.iter().map(Into::into).collect(),
            valid_until: e.valid_until,
            notes: e.notes.as_ref().map(|n| n.as_str().to_owned()),
            sent_at: e.sent_at,
            approval: e.approval.as_ref().map(Into::into),
            decline_reason: e.decline_reason.as_ref().map(|r| r.as_str().to_owned()),
            allowed_next: estimate::allowed_targets(e.status)
                .into_iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

impl From<Estimate> for EstimateDto {
    fn from(e: Estimate) -> Self {
        (&e).into()
    }
}

/// The approved option of an estimate as handed to a job: what the job is to do, as priced.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlannedWorkDto {
    /// The estimate.
    pub estimate_id: Uuid,
    /// Its approved revision.
    pub revision: u32,
    /// The approved option.
    pub option_id: Uuid,
    /// Its name.
    pub option_name: String,
    /// The job it was handed to.
    pub job_id: Option<Uuid>,
    /// Whose.
    pub customer_id: Uuid,
    /// Where.
    pub property_id: Uuid,
    /// The currency of every amount (ISO 4217).
    pub currency: String,
    /// The option's lines, as priced when the estimate was made.
    pub lines: Vec<PricedLineDto>,
    /// The option's total, a decimal string.
    pub total: String,
    /// The deposit to collect before work starts, a decimal string.
    pub deposit_required: Option<String>,
}

impl From<&PlannedWork> for PlannedWorkDto {
    fn from(w: &PlannedWork) -> Self {
        Self {
            estimate_id: w.estimate_id.as_uuid(),
            revision: w.revision,
            option_id: w.option_id.as_uuid(),
            option_name: w.option_name.as_str().to_owned(),
            job_id: w.job_id.map(|j| j.as_uuid()),
            customer_id: w.customer_id.as_uuid(),
            property_id: w.property_id.as_uuid(),
            currency: w.total.currency().code().to_owned(),
            lines: w.lines.iter().map(Into::into).collect(),
            total: amount_text(&w.total),
            deposit_required: w.deposit_required.as_ref().map(amount_text),
        }
    }
}

/// A line as it was asked for (not priced): a pricebook item, or a custom line at its own
/// price. The fields of [`QuoteLineInput`], rendered back.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuoteLineDto {
    /// The pricebook item; null for a custom line.
    pub item_id: Option<Uuid>,
    /// Item lines: the revision asked for; null for the latest.
    pub revision: Option<u32>,
    /// Labour lines: the skill level whose rate applies.
    pub skill_level: Option<u8>,
    /// Labour lines: regular, overtime or after_hours; null for regular.
    pub labor_time: Option<String>,
    /// Custom lines: what it is; item lines: the name replacing the item's, if any.
    pub description: Option<String>,
    /// Custom lines: the price per unit, a decimal string.
    pub unit_price: Option<String>,
    /// Custom lines: service, material, labor or equipment.
    pub kind: Option<String>,
    /// How many units (hours for labour), a decimal string.
    pub quantity: String,
}

impl From<&QuoteLine> for QuoteLineDto {
    fn from(l: &QuoteLine) -> Self {
        let quantity = l.quantity.to_string();
        match &l.source {
            LineSource::Item {
                item_id,
                revision,
                skill_level,
                labor_time,
            } => Self {
                item_id: Some(item_id.as_uuid()),
                revision: *revision,
                skill_level: skill_level.map(|s| s.get()),
                labor_time: labor_time.map(|t| t.as_str().to_owned()),
                description: l.description.as_ref().map(|d| d.as_str().to_owned()),
                unit_price: None,
                kind: None,
                quantity,
            },
            LineSource::Custom {
                description,
                unit_price,
                kind,
            } => Self {
                item_id: None,
                revision: None,
                skill_level: None,
                labor_time: None,
                description: Some(description.as_str().to_owned()),
                unit_price: Some(amount_text(unit_price)),
                kind: Some(kind.as_str().to_owned()),
                quantity,
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Invoices.
// ---------------------------------------------------------------------------------------------

/// A payment collected against an invoice.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentDto {
    /// Its id.
    pub id: Uuid,
    /// The amount, a decimal string in the invoice's currency.
    pub amount: String,
    /// card, ach, cash, check or other.
    pub method: String,
    /// The provider's or the cheque's reference.
    pub reference: Option<String>,
    /// When it was received.
    pub received_at: DateTime<Utc>,
}

impl From<&Payment> for PaymentDto {
    fn from(p: &Payment) -> Self {
        Self {
            id: p.id.as_uuid(),
            amount: amount_text(&p.amount),
            method: p.method.as_str().to_owned(),
            reference: p.reference.as_ref().map(|r| r.as_str().to_owned()),
            received_at: p.received_at,
        }
    }
}

/// A refund of (part of) a payment.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefundDto {
    /// Its id.
    pub id: Uuid,
    /// The payment refunded.
    pub payment_id: Uuid,
    /// The amount, a decimal string in the invoice's currency.
    pub amount: String,
    /// Why.
    pub reason: String,
    /// When.
    pub refunded_at: DateTime<Utc>,
}

impl From<&Refund> for RefundDto {
    fn from(r: &Refund) -> Self {
        Self {
            id: r.id.as_uuid(),
            payment_id: r.payment_id.as_uuid(),
            amount: amount_text(&r.amount),
            reason: r.reason.as_str().to_owned(),
            refunded_at: r.refunded_at,
        }
    }
}

/// One credited line: part or all of an invoice line, at its unit price.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreditedLineDto {
    /// The line's position on the invoice, from 0.
    pub invoice_line: u32,
    /// What the customer read on the invoice.
    pub description: String,
    /// How many units are credited, a decimal string.
    pub quantity: String,
    /// The invoice's exact unit price.
    pub unit_price: String,
    /// The amount credited for the line.
    pub line_total: String,
}

/// The tax a credit note gives back at one of the invoice's rates.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreditedTaxDto {
    /// The rate's name.
    pub name: String,
    /// The rate, a decimal string.
    pub percent: String,
    /// The taxable amount credited.
    pub taxable_base: String,
    /// The tax credited.
    pub tax: String,
}

/// An amount credited without a line (untaxed).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdjustmentDto {
    /// What the customer reads.
    pub description: String,
    /// How much.
    pub amount: String,
}

/// A credit note: what it credits against the invoice, in positive amounts.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreditNoteDto {
    /// Its id.
    pub id: Uuid,
    /// Its number in the organization's gapless credit note sequence (`CN-000012`).
    pub number: String,
    /// The day it was issued, in the organization's time zone.
    pub issue_date: NaiveDate,
    /// Why.
    pub reason: String,
    /// The credited lines.
    pub lines: Vec<CreditedLineDto>,
    /// The sum of the credited line totals.
    pub subtotal: String,
    /// The part of the invoice's discount that went with the credited lines.
    pub discount: String,
    /// The part of the invoice's member discount that went with them (null when it had none).
    pub member_discount: Option<String>,
    /// The tax credited per rate of the invoice.
    pub tax_lines: Vec<CreditedTaxDto>,
    /// The amounts credited without a line.
    pub adjustments: Vec<AdjustmentDto>,
    /// `subtotal − discount − memberDiscount + taxes + adjustments`.
    pub total: String,
    /// Every rounding performed pricing the credited quantities.
    pub roundings: Vec<RoundingDto>,
    /// The refund that paid it back (in `refunds`), when it carried one.
    pub refund_id: Option<Uuid>,
}

impl From<&CreditNote> for CreditNoteDto {
    fn from(n: &CreditNote) -> Self {
        Self {
            id: n.id.as_uuid(),
            number: n.number.to_string(),
            issue_date: n.issue_date,
            reason: n.reason.as_str().to_owned(),
            lines: n
                .lines
                .iter()
                .map(|l| CreditedLineDto {
                    invoice_line: l.invoice_line,
                    description: l.description.as_str().to_owned(),
                    quantity: l.quantity.normalize().to_string(),
                    unit_price: amount_text(&l.unit_price),
                    line_total: amount_text(&l.line_total),
                })
                .collect(),
            subtotal: amount_text(&n.subtotal),
            discount: amount_text(&n.discount),
            member_discount: n.member_discount.as_ref().map(amount_text),
            tax_lines: n
                .tax_lines
                .iter()
                .map(|t| CreditedTaxDto {
                    name: t.name.as_str().to_owned(),
                    percent: percent_text(&t.percent),
                    taxable_base: amount_text(&t.taxable_base),
                    tax: amount_text(&t.tax),
                })
                .collect(),
            adjustments: n
                .adjustments
                .iter()
                .map(|a| AdjustmentDto {
                    description: a.description.as_str().to_owned(),
                    amount: amount_text(&a.amount),
                })
                .collect(),
            total: amount_text(&n.total),
            roundings: n.roundings.iter().map(Into::into).collect(),
            refund_id: n.refund_id.map(|r| r.as_uuid()),
        }
    }
}

/// Bad debt written off.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WriteOffDto {
    /// Its id.
    pub id: Uuid,
    /// How much.
    pub amount: String,
    /// Why.
    pub reason: String,
}

impl From<&WriteOff> for WriteOffDto {
    fn from(w: &WriteOff) -> Self {
        Self {
            id: w.id.as_uuid(),
            amount: amount_text(&w.amount),
            reason: w.reason.as_str().to_owned(),
        }
    }
}

/// Where an invoice came from; the estimate fields are set only for `estimate`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceSourceDto {
    /// lines, estimate or actuals.
    pub from: String,
    /// estimate: the estimate.
    pub estimate_id: Option<Uuid>,
    /// estimate: its approved revision.
    pub revision: Option<u32>,
    /// estimate: the approved option.
    pub option_id: Option<Uuid>,
}

impl From<&InvoiceSource> for InvoiceSourceDto {
    fn from(s: &InvoiceSource) -> Self {
        let plain = |from: &str| Self {
            from: from.to_owned(),
            estimate_id: None,
            revision: None,
            option_id: None,
        };
        match s {
            InvoiceSource::Lines => plain("lines"),
            InvoiceSource::Actuals => plain("actuals"),
            InvoiceSource::Estimate {
                estimate_id,
                revision,
                option_id,
            } => Self {
                from: "estimate".into(),
                estimate_id: Some(estimate_id.as_uuid()),
                revision: Some(*revision),
                option_id: Some(option_id.as_uuid()),
            },
        }
    }
}

/// An invoice; every amount is in `currency`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceDto {
    /// Its id.
    pub id: Uuid,
    /// 1 on creation, +1 on each event.
    pub version: i64,
    /// draft, issued, paid or void.
    pub status: String,
    /// Its number (`INV-000123`), once issued.
    pub number: Option<String>,
    /// The job it bills.
    pub job_id: Option<Uuid>,
    /// Whose.
    pub customer_id: Uuid,
    /// Where it came from.
    pub source: InvoiceSourceDto,
    /// The currency of every amount (ISO 4217).
    pub currency: String,
    /// Its priced lines and totals.
    pub quote: QuoteDto,
    /// Due this many days after the issue date (0: on receipt).
    pub net_days: u16,
    /// The day it was issued, in the organization's time zone.
    pub issue_date: Option<NaiveDate>,
    /// The day it is due.
    pub due_date: Option<NaiveDate>,
    /// The payments received.
    pub payments: Vec<PaymentDto>,
    /// The refunds made (a credit note's refund among them).
    pub refunds: Vec<RefundDto>,
    /// Its credit notes, oldest first.
    pub credit_notes: Vec<CreditNoteDto>,
    /// What was written off as bad debt.
    pub write_offs: Vec<WriteOffDto>,
    /// The sum of the payments.
    pub paid: String,
    /// The sum of the refunds.
    pub refunded: String,
    /// The sum of the credit notes.
    pub credited: String,
    /// The sum of the write-offs.
    pub written_off: String,
    /// `total − credited − writtenOff − paid + refunded`; never negative.
    pub balance: String,
    /// Why it was voided.
    pub void_reason: Option<String>,
    /// update, issue, pay, refund, credit, write_off or void: what may be done to it now.
    pub allowed_actions: Vec<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// The customer's signature: one attached to the invoice, else the latest taken on its job
    /// (at completion or on a visit). Given by `invoice/v1/get`; absent from the other answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<crate::v1::attachment::AttachmentDto>,
}

impl From<&Invoice> for InvoiceDto {
    fn from(i: &Invoice) -> Self {
        Self {
            id: i.id.as_uuid(),
            version: i.version,
            status: i.status.as_str().to_owned(),
            number: i.number.map(|n| n.to_string()),
            job_id: i.job_id.map(|j| j.as_uuid()),
            customer_id: i.customer_id.as_uuid(),
            source: (&i.source).into(),
            currency: i.currency().code().to_owned(),
            quote: (&i.quote).into(),
            net_days: i.terms.net_days(),
            issue_date: i.issue_date,
            due_date: i.due_date,
            payments: i.payments.iter().map(Into::into).collect(),
            refunds: i.refunds.iter().map(Into::into).collect(),
            credit_notes: i.credit_notes.iter().map(Into::into).collect(),
            write_offs: i.write_offs.iter().map(Into::into).collect(),
            paid: amount_text(&i.paid()),
            refunded: amount_text(&i.refunded()),
            credited: amount_text(&i.credited()),
            written_off: amount_text(&i.written_off()),
            balance: amount_text(&i.balance()),
            void_reason: i.void_reason.as_ref().map(|r| r.as_str().to_owned()),
            allowed_actions: invoice::allowed_actions(i.status)
                .into_iter()
                .map(|a| a.as_str().to_owned())
                .collect(),
            created_at: i.created_at,
            updated_at: i.updated_at,
            signature: None,
        }
    }
}

impl From<Invoice> for InvoiceDto {
    fn from(i: Invoice) -> Self {
        (&i).into()
    }
}

// ---------------------------------------------------------------------------------------------
// Input conversions: shared helpers.
// ---------------------------------------------------------------------------------------------

/// Records the core's problems, each under `prefix` (`"options[1]."` + `lines[0].quantity`).
pub fn core_problems(v: &mut Validator, prefix: &str, problems: Vec<FieldError>) {
    for p in problems {
        v.fail(&format!("{prefix}{}", p.field), p.code, &p.message);
    }
}

/// Parses an amount in the organization's currency at `field`, such as a price or a cost (up
/// to six decimals; the core refuses what it must, such as a negative price, later).
pub fn money(v: &mut Validator, field: &str, raw: &str, currency: Currency) -> Option<Money> {
    v.check(
        field,
        Money::parse(raw, currency).map_err(|e| e.to_invalid()),
    )
}

/// Parses a decimal string such as `"1.5"` or `"-2"`: an optional minus sign, digits and an
/// optional fraction. Only the syntax is checked; ranges are the core's rules.
pub(crate) fn decimal(raw: &str) -> Result<Decimal, Invalid> {
    let invalid = || {
        Invalid::new(
            "invalid_decimal",
            "a number is a decimal string of digits with an optional fraction, such as \"1.5\"",
        )
    };
    hestami_core::money::parse_decimal(raw).ok_or_else(invalid)
}

/// A quantity as a line takes it (`constraints::QUANTITY_PATTERN`): a decimal string more than
/// 0, at most 1,000,000, with at most 4 decimals.
pub(crate) fn positive_quantity(raw: &str) -> Result<Decimal, Invalid> {
    let q = decimal(raw)?;
    if q <= Decimal::ZERO {
        Err(Invalid::new(
            "must_be_positive",
            "quantity must be greater than 0",
        ))
    } else if q > Decimal::from(1_000_000) {
        Err(Invalid::new(
            "too_large",
            "quantity must be at most 1000000",
        ))
    } else if q.normalize().scale() > 4 {
        Err(Invalid::new(
            "too_many_decimals",
            "quantity has at most 4 decimal places",
        ))
    } else {
        Ok(q)
    }
}

/// Records `not_applicable` at `field` when the value was `given`; returns whether it was.
pub(crate) fn refuse_if(v: &mut Validator, field: &str, given: bool, message: &str) -> bool {
    if given {
        v.fail(field, "not_applicable", message);
    }
    given
}

/// The value at `field`, or a `required` problem when it is absent.
fn need<'a, T>(v: &mut Validator, field: &str, value: Option<&'a T>, what: &str) -> Option<&'a T> {
    if value.is_none() {
        v.fail(field, "required", &format!("{what} is required"));
    }
    value
}

// ---------------------------------------------------------------------------------------------
// Input conversions: quote lines and discounts.
// ---------------------------------------------------------------------------------------------

/// A line to price: a pricebook item (`itemId`) or, without one, a custom line at a price given
/// here (`description`, `unitPrice` and `kind` required).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuoteLineInput {
    /// The pricebook item; absent for a custom line.
    #[serde(default)]
    pub item_id: Option<Uuid>,
    /// Item lines: a specific revision of the item; absent for the latest.
    #[serde(default)]
    pub revision: Option<u32>,
    /// Labour lines: the skill level (1 to 5) whose rate applies.
    #[serde(default)]
    pub skill_level: Option<i64>,
    /// Labour lines: regular (the default), overtime or after_hours.
    #[serde(default)]
    pub labor_time: Option<LaborTimeDto>,
    /// Custom lines: what it is (required); item lines: replaces the item's name.
    #[serde(default)]
    pub description: Option<String>,
    /// Custom lines: the price per unit, a decimal string (required).
    #[serde(default)]
    pub unit_price: Option<String>,
    /// Custom lines: its kind, for taxes (required).
    #[serde(default)]
    pub kind: Option<ItemKindDto>,
    /// How many units (hours for labour), a decimal string: more than 0, at most 1000000, at
    /// most 4 decimals.
    pub quantity: String,
}

/// Converts one line at `path` (`lines[0]`).
fn quote_line(
    v: &mut Validator,
    path: &str,
    line: QuoteLineInput,
    currency: Currency,
) -> Option<QuoteLine> {
    let field = |name: &str| format!("{path}.{name}");
    let quantity = v.check(&field("quantity"), decimal(&line.quantity));
    // `None`: given but refused (recorded); `Some(None)`: absent.
    let description = v.optional(
        &field("description"),
        line.description.as_deref(),
        Name::parse,
    );
    let source = match line.item_id {
        Some(item_id) => {
            let price_given = refuse_if(
                v,
                &field("unitPrice"),
                line.unit_price.is_some(),
                "an item line takes its price from the pricebook",
            );
            let kind_given = refuse_if(
                v,
                &field("kind"),
                line.kind.is_some(),
                "an item line takes its kind from the pricebook",
            );
            let level = match line.skill_level {
                None => Some(None),
                Some(raw) => v.check(&field("skillLevel"), skill_level(raw)).map(Some),
            };
            match level {
                Some(skill_level) if !price_given && !kind_given => Some(LineSource::Item {
                    item_id: PricebookItemId::from_uuid(item_id),
                    revision: line.revision,
                    skill_level,
                    labor_time: line.labor_time.map(Into::into),
                }),
                _ => None,
            }
        }
        None => {
            let refused = [
                ("revision", line.revision.is_some()),
                ("skillLevel", line.skill_level.is_some()),
                ("laborTime", line.labor_time.is_some()),
            ]
            .into_iter()
            .fold(false, |any, (name, given)| {
                refuse_if(
                    v,
                    &field(name),
                    given,
                    &format!("only a pricebook item line takes a {name}"),
                ) || any
            });
            let description = match &description {
                Some(None) => {
                    v.fail(
                        &field("description"),
                        "required",
                        "a custom line's description is required",
                    );
                    None
                }
                Some(Some(name)) => Some(name.clone()),
                None => None,
            };
            let unit_price = need(
                v,
                &field("unitPrice"),
                line.unit_price.as_ref(),
                "a custom line's unitPrice",
            )
            .and_then(|raw| money(v, &field("unitPrice"), raw, currency));
            let kind = need(
                v,
                &field("kind"),
                line.kind.as_ref(),
                "a custom line's kind",
            );
            match (description, unit_price, kind) {
                (Some(description), Some(unit_price), Some(kind)) if !refused => {
                    Some(LineSource::Custom {
                        description,
                        unit_price,
                        kind: (*kind).into(),
                    })
                }
                _ => None,
            }
        }
    };
    let is_item = matches!(source, Some(LineSource::Item { .. }));
    Some(QuoteLine {
        source: source?,
        quantity: quantity?,
        // A custom line's description is its source's; only an item line overrides its name.
        description: if is_item { description? } else { None },
    })
}

/// Converts the lines of a quote request; paths are `{prefix}lines[i].field`. Only the syntax
/// of each line is checked here: quantities, items and prices are the core's [`pricebook::quote`]
/// rules.
pub fn quote_lines(
    v: &mut Validator,
    prefix: &str,
    lines: Vec<QuoteLineInput>,
    currency: Currency,
) -> Option<Vec<QuoteLine>> {
    if lines.len() > pricebook::MAX_LINES {
        v.fail(
            &format!("{prefix}lines"),
            "too_many",
            &format!("a quote has at most {} lines", pricebook::MAX_LINES),
        );
        return None;
    }
    let converted: Vec<Option<QuoteLine>> = lines
        .into_iter()
        .enumerate()
        .map(|(i, line)| quote_line(v, &format!("{prefix}lines[{i}]"), line, currency))
        .collect();
    converted.into_iter().collect()
}

/// amount or percent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DiscountTypeDto {
    /// A fixed amount.
    Amount,
    /// A percentage of the subtotal.
    Percent,
}

/// A discount to take before tax: `{"type": "amount", "amount": "25.00"}` or
/// `{"type": "percent", "percent": "10"}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiscountInput {
    /// amount or percent.
    #[serde(rename = "type")]
    pub kind: DiscountTypeDto,
    /// For `amount`: the amount, a decimal string in the currency's minor unit.
    #[serde(default)]
    pub amount: Option<String>,
    /// For `percent`: 0 to 100, a decimal string.
    #[serde(default)]
    pub percent: Option<String>,
}

/// Converts a discount; paths are `{prefix}discount.field`.
pub fn discount(
    v: &mut Validator,
    prefix: &str,
    input: &DiscountInput,
    currency: Currency,
) -> Option<Discount> {
    let field = |name: &str| format!("{prefix}discount.{name}");
    match input.kind {
        DiscountTypeDto::Amount => {
            let refused = refuse_if(
                v,
                &field("percent"),
                input.percent.is_some(),
                "an amount discount takes no percent",
            );
            let amount = need(
                v,
                &field("amount"),
                input.amount.as_ref(),
                "an amount discount's amount",
            )
            .and_then(|raw| money(v, &field("amount"), raw, currency));
            amount
                .filter(|_| !refused)
                .map(|amount| Discount::Amount { amount })
        }
        DiscountTypeDto::Percent => {
            let refused = refuse_if(
                v,
                &field("amount"),
                input.amount.is_some(),
                "a percent discount takes no amount",
            );
            let percent = need(
                v,
                &field("percent"),
                input.percent.as_ref(),
                "a percent discount's percent",
            )
            .and_then(|raw| v.check(&field("percent"), Percent::parse_str(raw)));
            percent
                .filter(|_| !refused)
                .map(|percent| Discount::Percent { percent })
        }
    }
}

/// Converts the lines and discount of a quote request; paths are `{prefix}lines[i].field` and
/// `{prefix}discount.field`.
pub fn quote_request(
    v: &mut Validator,
    prefix: &str,
    lines: Vec<QuoteLineInput>,
    discount_input: Option<&DiscountInput>,
    currency: Currency,
) -> Option<QuoteRequest> {
    let lines = quote_lines(v, prefix, lines, currency);
    let discount = match discount_input {
        None => Some(None),
        Some(d) => discount(v, prefix, d, currency).map(Some),
    };
    Some(QuoteRequest {
        lines: lines?,
        discount: discount?,
    })
}

// ---------------------------------------------------------------------------------------------
// Input conversions: pricebook items.
// ---------------------------------------------------------------------------------------------

/// explicit, markup or tiered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MaterialPricingRuleDto {
    /// Its own price per unit (`price`).
    Explicit,
    /// Its cost plus its own markup (`percent`).
    Markup,
    /// Its cost plus the organization's tiered markup.
    Tiered,
}

/// How a material's selling price is found.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MaterialPricingInput {
    /// explicit, markup or tiered.
    pub rule: MaterialPricingRuleDto,
    /// explicit: the price per unit, a decimal string.
    #[serde(default)]
    pub price: Option<String>,
    /// markup: the markup on cost, a decimal string.
    #[serde(default)]
    pub percent: Option<String>,
}

/// A material included in a flat-rate service's price.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BundledMaterialInput {
    /// The material item.
    pub item_id: Uuid,
    /// How many of its unit, a decimal string.
    pub quantity: String,
}

/// The hourly rate for one skill level.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LaborRateInput {
    /// The skill level, 1 to 5.
    pub skill_level: i64,
    /// The regular hourly rate, a decimal string.
    pub hourly: String,
}

/// What an item is, with the prices of its kind. Give exactly the fields of its `kind`:
/// service: price, estimatedLaborHours, trade (bundledMaterials, tripFee optional); material:
/// sku, unit, cost (pricing optional, tiered when absent); labor: trade, rates,
/// overtimeMultiplier, afterHoursMultiplier; equipment: unit, rate.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ItemDetailsInput {
    /// service, material, labor or equipment.
    pub kind: ItemKindDto,
    /// service: the flat price per task, a decimal string.
    #[serde(default)]
    pub price: Option<String>,
    /// service: the labour hours the task is expected to take (0 to 10000), a decimal string.
    #[serde(default)]
    pub estimated_labor_hours: Option<String>,
    /// service, labor: the trade.
    #[serde(default)]
    pub trade: Option<String>,
    /// service: materials included in the price.
    #[serde(default)]
    pub bundled_materials: Option<Vec<BundledMaterialInput>>,
    /// service: whether it is a trip fee (the charge for coming out), waived for a member
    /// whose plan waives it (default false on `createItem`; `updateItem` without it keeps the
    /// item's mark).
    #[serde(default)]
    pub trip_fee: Option<bool>,
    /// material: the stock-keeping unit.
    #[serde(default)]
    pub sku: Option<String>,
    /// material: the unit it is sold in; equipment: the unit it is rented by.
    #[serde(default)]
    pub unit: Option<String>,
    /// material: what one unit costs the organization, a decimal string.
    #[serde(default)]
    pub cost: Option<String>,
    /// material: how its selling price is found (tiered when absent).
    #[serde(default)]
    pub pricing: Option<MaterialPricingInput>,
    /// labor: hourly rates by skill level, one per level.
    #[serde(default)]
    pub rates: Option<Vec<LaborRateInput>>,
    /// labor: the multiplier for overtime hours (1 to 10), a decimal string.
    #[serde(default)]
    pub overtime_multiplier: Option<String>,
    /// labor: the multiplier for after-hours work (1 to 10), a decimal string.
    #[serde(default)]
    pub after_hours_multiplier: Option<String>,
    /// equipment: the price per unit, a decimal string.
    #[serde(default)]
    pub rate: Option<String>,
}

/// The content of a pricebook item, for creating it or making its next revision.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ItemDraftInput {
    /// The name shown on estimates and invoices.
    pub name: String,
    /// More detail, for the office.
    #[serde(default)]
    pub description: Option<String>,
    /// A category to group and filter by, such as `Water heaters`.
    #[serde(default)]
    pub category: Option<String>,
    /// The kind and its prices.
    pub details: ItemDetailsInput,
}

/// Converts an item draft and runs the core's checks on it ([`pricebook::validate_draft`]);
/// paths are `{prefix}name`, `{prefix}details.price` and so on.
pub fn item_draft(
    v: &mut Validator,
    prefix: &str,
    input: ItemDraftInput,
    currency: Currency,
) -> Option<ItemDraft> {
    let name = v.check(&format!("{prefix}name"), Name::parse(&input.name));
    let description = v.optional(
        &format!("{prefix}description"),
        input.description.as_deref(),
        Description::parse,
    );
    let category = v.optional(
        &format!("{prefix}category"),
        input.category.as_deref(),
        Name::parse,
    );
    let details = item_details(v, &format!("{prefix}details."), input.details, currency);
    let draft = ItemDraft {
        name: name?,
        description: description?,
        category: category?,
        details: details?,
    };
    let problems = pricebook::validate_draft(&draft, currency);
    if problems.is_empty() {
        Some(draft)
    } else {
        core_problems(v, prefix, problems);
        None
    }
}

/// Every kind of item, for the document's per-kind rules.
pub(crate) const ITEM_KINDS: [ItemKindDto; 4] = [
    ItemKindDto::Service,
    ItemKindDto::Material,
    ItemKindDto::Labor,
    ItemKindDto::Equipment,
];

/// Every field of [`ItemDetailsInput`] but `kind`, in its order.
pub(crate) const ITEM_DETAIL_FIELDS: [&str; 13] = [
    "price",
    "estimatedLaborHours",
    "trade",
    "bundledMaterials",
    "tripFee",
    "sku",
    "unit",
    "cost",
    "pricing",
    "rates",
    "overtimeMultiplier",
    "afterHoursMultiplier",
    "rate",
];

/// The fields a kind of item requires, and those it may also take; it refuses the others. The
/// conversion below and the document's rules (`constraints`) both read this table.
pub(crate) fn item_fields(kind: ItemKindDto) -> (&'static [&'static str], &'static [&'static str]) {
    match kind {
        ItemKindDto::Service => (
            &["price", "estimatedLaborHours", "trade"],
            &["bundledMaterials", "tripFee"],
        ),
        ItemKindDto::Material => (&["sku", "unit", "cost"], &["pricing"]),
        ItemKindDto::Labor => (
            &[
                "trade",
                "rates",
                "overtimeMultiplier",
                "afterHoursMultiplier",
            ],
            &[],
        ),
        ItemKindDto::Equipment => (&["unit", "rate"], &[]),
    }
}

/// Converts item details at `path` (`details.`): refuses the fields of other kinds, requires
/// those of its own, and parses them.
fn item_details(
    v: &mut Validator,
    path: &str,
    d: ItemDetailsInput,
    currency: Currency,
) -> Option<ItemDetails> {
    let field = |name: &str| format!("{path}{name}");
    let given = [
        ("price", d.price.is_some()),
        ("estimatedLaborHours", d.estimated_labor_hours.is_some()),
        ("trade", d.trade.is_some()),
        ("bundledMaterials", d.bundled_materials.is_some()),
        ("tripFee", d.trip_fee.is_some()),
        ("sku", d.sku.is_some()),
        ("unit", d.unit.is_some()),
        ("cost", d.cost.is_some()),
        ("pricing", d.pricing.is_some()),
        ("rates", d.rates.is_some()),
        ("overtimeMultiplier", d.overtime_multiplier.is_some()),
        ("afterHoursMultiplier", d.after_hours_multiplier.is_some()),
        ("rate", d.rate.is_some()),
    ];
    let (required, optional) = item_fields(d.kind);
    let kind_name = ItemKind::from(d.kind).as_str();
    let mut refused = false;
    for (name, is_given) in given {
        if !required.contains(&name) && !optional.contains(&name) {
            refused |= refuse_if(
                v,
                &field(name),
                is_given,
                &format!("a {kind_name} item takes no {name}"),
            );
        }
    }
    let what = |name: &str| format!("a {kind_name} item's {name}");
    let amount = |v: &mut Validator, name: &str, raw: Option<&String>| {
        need(v, &field(name), raw, &what(name))
            .and_then(|raw| money(v, &field(name), raw, currency))
    };
    let number = |v: &mut Validator, name: &str, raw: Option<&String>| {
        need(v, &field(name), raw, &what(name)).and_then(|raw| v.check(&field(name), decimal(raw)))
    };
    let trade = |v: &mut Validator, raw: Option<&String>| {
        need(v, &field("trade"), raw, &what("trade"))
            .and_then(|raw| v.check(&field("trade"), TradeCode::parse(raw)))
    };
    let unit = |v: &mut Validator, raw: Option<&String>| {
        need(v, &field("unit"), raw, &what("unit"))
            .and_then(|raw| v.check(&field("unit"), Unit::parse(raw)))
    };
    let details = match d.kind {
        ItemKindDto::Service => {
            let price = amount(v, "price", d.price.as_ref());
            let hours = number(v, "estimatedLaborHours", d.estimated_labor_hours.as_ref());
            let trade = trade(v, d.trade.as_ref());
            let bundled: Option<Vec<BundledMaterial>> = d
                .bundled_materials
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(i, b)| {
                    v.check(
                        &field(&format!("bundledMaterials[{i}].quantity")),
                        decimal(&b.quantity),
                    )
                    .map(|quantity| BundledMaterial {
                        item_id: PricebookItemId::from_uuid(b.item_id),
                        quantity,
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .collect();
            ItemDetails::Service {
                price: price?,
                estimated_labor_hours: hours?,
                trade: trade?,
                bundled_materials: bundled?,
                trip_fee: d.trip_fee.unwrap_or(false),
            }
        }
        ItemKindDto::Material => {
            let sku = need(v, &field("sku"), d.sku.as_ref(), &what("sku"))
                .and_then(|raw| v.check(&field("sku"), Sku::parse(raw)));
            let unit = unit(v, d.unit.as_ref());
            let cost = amount(v, "cost", d.cost.as_ref());
            let pricing = match d.pricing {
                None => Some(MaterialPricing::Tiered),
                Some(p) => material_pricing(v, &field("pricing."), &p, currency),
            };
            ItemDetails::Material {
                sku: sku?,
                unit: unit?,
                cost: cost?,
                pricing: pricing?,
            }
        }
        ItemKindDto::Labor => {
            let trade = trade(v, d.trade.as_ref());
            let rates: Option<Vec<LaborRate>> =
                need(v, &field("rates"), d.rates.as_ref(), &what("rates")).and_then(|rates| {
                    let parsed: Vec<Option<LaborRate>> = rates
                        .iter()
                        .enumerate()
                        .map(|(i, r)| {
                            let at = |name: &str| field(&format!("rates[{i}].{name}"));
                            let level = v.check(&at("skillLevel"), skill_level(r.skill_level));
                            let hourly = money(v, &at("hourly"), &r.hourly, currency);
                            Some(LaborRate {
                                skill_level: level?,
                                hourly: hourly?,
                            })
                        })
                        .collect();
                    parsed.into_iter().collect()
                });
            let overtime = number(v, "overtimeMultiplier", d.overtime_multiplier.as_ref());
            let after_hours = number(v, "afterHoursMultiplier", d.after_hours_multiplier.as_ref());
            ItemDetails::Labor {
                trade: trade?,
                rates: rates?,
                overtime_multiplier: overtime?,
                after_hours_multiplier: after_hours?,
            }
        }
        ItemKindDto::Equipment => {
            let unit = unit(v, d.unit.as_ref());
            let rate = amount(v, "rate", d.rate.as_ref());
            ItemDetails::Equipment {
                unit: unit?,
                rate: rate?,
            }
        }
    };
    (!refused).then_some(details)
}

/// Converts a material's pricing at `path` (`details.pricing.`).
fn material_pricing(
    v: &mut Validator,
    path: &str,
    p: &MaterialPricingInput,
    currency: Currency,
) -> Option<MaterialPricing> {
    let field = |name: &str| format!("{path}{name}");
    let (takes_price, takes_percent) = match p.rule {
        MaterialPricingRuleDto::Explicit => (true, false),
        MaterialPricingRuleDto::Markup => (false, true),
        MaterialPricingRuleDto::Tiered => (false, false),
    };
    let refused_price = refuse_if(
        v,
        &field("price"),
        !takes_price && p.price.is_some(),
        "only explicit pricing takes a price",
    );
    let refused_percent = refuse_if(
        v,
        &field("percent"),
        !takes_percent && p.percent.is_some(),
        "only markup pricing takes a percent",
    );
    let pricing = match p.rule {
        MaterialPricingRuleDto::Explicit => need(
            v,
            &field("price"),
            p.price.as_ref(),
            "explicit pricing's price",
        )
        .and_then(|raw| money(v, &field("price"), raw, currency))
        .map(|price| MaterialPricing::Explicit { price }),
        MaterialPricingRuleDto::Markup => need(
            v,
            &field("percent"),
            p.percent.as_ref(),
            "markup pricing's percent",
        )
        .and_then(|raw| v.check(&field("percent"), Percent::parse_str(raw)))
        .map(|percent| MaterialPricing::Markup { percent }),
        MaterialPricingRuleDto::Tiered => Some(MaterialPricing::Tiered),
    };
    pricing.filter(|_| !refused_price && !refused_percent)
}

// ---------------------------------------------------------------------------------------------
// Input conversions: markup tiers and tax rates.
// ---------------------------------------------------------------------------------------------

/// One tier of the markup table.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MarkupTierInput {
    /// The lowest unit cost (inclusive), a decimal string; the first tier starts at 0.
    pub from: String,
    /// Where the next tier starts (exclusive); absent for the last tier only.
    #[serde(default)]
    pub to: Option<String>,
    /// The markup on cost, a decimal string.
    pub percent: String,
}

/// Converts a markup table; paths are `tiers[i].field`, and the table's own rules (contiguous
/// from 0, open-ended last tier) are checked by [`MarkupTiers::parse`].
pub fn markup_tiers(v: &mut Validator, inputs: Vec<MarkupTierInput>) -> Option<MarkupTiers> {
    let parsed: Vec<Option<MarkupTier>> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let at = |name: &str| format!("tiers[{i}].{name}");
            let from = v.check(&at("from"), decimal(&t.from));
            let to = v.optional(&at("to"), t.to.as_deref(), decimal);
            let percent = v.check(&at("percent"), Percent::parse_str(&t.percent));
            Some(MarkupTier {
                from: from?,
                to: to?,
                percent: percent?,
            })
        })
        .collect();
    let tiers: Vec<MarkupTier> = parsed.into_iter().collect::<Option<_>>()?;
    match MarkupTiers::parse(tiers) {
        Ok(tiers) => Some(tiers),
        Err(problems) => {
            core_problems(v, "", problems);
            None
        }
    }
}

/// A sales tax rate.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaxRateInput {
    /// Where it applies (a state rate names the region; a city rate the locality too).
    pub jurisdiction: JurisdictionDto,
    /// Its name on the invoice, such as `Texas state sales tax`.
    pub name: String,
    /// The rate, 0 to 100, a decimal string.
    pub percent: String,
    /// What it taxes.
    pub taxable: TaxableKindsDto,
}

/// Converts a tax table; paths are `rates[i].field`, and the table's own rules (at most 100 %,
/// no duplicate name in a jurisdiction) are checked by [`TaxRates::parse`].
pub fn tax_rates(v: &mut Validator, inputs: Vec<TaxRateInput>) -> Option<TaxRates> {
    let parsed: Vec<Option<TaxRate>> = inputs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let at = |name: &str| format!("rates[{i}].{name}");
            let place = jurisdiction(v, &at("jurisdiction"), &r.jurisdiction);
            let name = v.check(&at("name"), Name::parse(&r.name));
            let percent = v.check(&at("percent"), Percent::parse_str(&r.percent));
            Some(TaxRate {
                jurisdiction: place?,
                name: name?,
                percent: percent?,
                taxable: r.taxable.into(),
            })
        })
        .collect();
    let rates: Vec<TaxRate> = parsed.into_iter().collect::<Option<_>>()?;
    match TaxRates::parse(rates) {
        Ok(rates) => Some(rates),
        Err(problems) => {
            core_problems(v, "", problems);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;
    use serde_json::{Value, json};

    use hestami_core::compliance::Jurisdiction;
    use hestami_core::customer::CountryCode;
    use hestami_core::estimate::EstimateStatus;
    use hestami_core::ids::{
        CustomerId, EstimateId, EstimateOptionId, InvoiceId, PaymentId, PropertyId,
    };
    use hestami_core::invoice::{InvoiceNumber, InvoiceStatus, PaymentMethod, PaymentTerms};
    use hestami_core::pricebook::{PricingContext, create_item};

    use super::*;
    use crate::rpc::validate;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2031, 3, 2, 21, 58, 3)
            .single()
            .expect("a valid instant")
    }

    fn usd() -> Currency {
        Currency::parse("USD").expect("listed")
    }

    fn usd_of(raw: &str) -> Money {
        Money::parse(raw, usd()).expect("a valid amount")
    }

    fn dec(raw: &str) -> Decimal {
        raw.parse().expect("a decimal")
    }

    fn pct(raw: &str) -> Percent {
        Percent::parse_str(raw).expect("a valid percentage")
    }

    fn uuid(n: u128) -> Uuid {
        Uuid::from_u128(0x5ee0 + n)
    }

    fn item(n: u128, name: &str, details: ItemDetails) -> PricebookItem {
        let draft = ItemDraft {
            name: Name::parse(name).expect("valid"),
            description: None,
            category: None,
            details,
        };
        create_item(PricebookItemId::from_uuid(uuid(n)), draft, usd(), t0()).expect("valid")
    }

    fn catalogue() -> Vec<PricebookItem> {
        vec![
            item(
                1,
                "Copper fitting",
                ItemDetails::Material {
                    sku: Sku::parse("cu-12").expect("valid"),
                    unit: Unit::parse("each").expect("valid"),
                    cost: usd_of("3.333"),
                    pricing: MaterialPricing::Tiered,
                },
            ),
            item(
                2,
                "Plumber",
                ItemDetails::Labor {
                    trade: TradeCode::parse("plumbing").expect("valid"),
                    rates: vec![LaborRate {
                        skill_level: hestami_core::workforce::SkillLevel::parse(2).expect("valid"),
                        hourly: usd_of("85.00"),
                    }],
                    overtime_multiplier: dec("1.5"),
                    after_hours_multiplier: dec("2"),
                },
            ),
        ]
    }

    fn tiers() -> MarkupTiers {
        MarkupTiers::parse(vec![
            MarkupTier {
                from: dec("0"),
                to: Some(dec("10")),
                percent: pct("100"),
            },
            MarkupTier {
                from: dec("10"),
                to: None,
                percent: pct("50"),
            },
        ])
        .expect("valid tiers")
    }

    fn texas() -> Jurisdiction {
        Jurisdiction::parse(CountryCode::parse("US").expect("valid"), Some("TX"), None)
            .expect("valid")
    }

    fn taxes() -> Vec<TaxRate> {
        vec![TaxRate {
            jurisdiction: texas(),
            name: Name::parse("Texas sales tax").expect("valid"),
            percent: pct("8.25"),
            taxable: TaxableKinds {
                material: true,
                ..TaxableKinds::default()
            },
        }]
    }

    /// The lines as a client sends them, converted through this module.
    fn request(lines: Value, discount: Option<Value>) -> QuoteRequest {
        let lines: Vec<QuoteLineInput> = serde_json::from_value(lines).expect("well-formed");
        let discount: Option<DiscountInput> =
            discount.map(|d| serde_json::from_value(d).expect("well-formed"));
        validate(|v| quote_request(v, "", lines, discount.as_ref(), usd())).expect("valid")
    }

    fn sample_quote() -> Quote {
        let items = catalogue();
        let markup = tiers();
        let taxes = taxes();
        let ctx = PricingContext {
            currency: usd(),
            items: &items,
            markup: &markup,
            taxes: &taxes,
            member: None,
            trip_fee_waived_by: None,
        };
        let req = request(
            json!([
                { "itemId": uuid(1), "quantity": "3" },
                { "itemId": uuid(2), "skillLevel": 2, "laborTime": "overtime", "quantity": "2" },
            ]),
            Some(json!({ "type": "percent", "percent": "10" })),
        );
        pricebook::quote(&ctx, &req).expect("prices")
    }

    /// `(field, code)` of every problem `build` records.
    fn problems<T>(build: impl FnOnce(&mut Validator) -> Option<T>) -> Vec<(String, String)> {
        match validate(build) {
            Ok(_) => Vec::new(),
            Err(e) => e
                .field_errors
                .into_iter()
                .map(|f| (f.field, f.code))
                .collect(),
        }
    }

    fn pairs(want: &[(&str, &str)]) -> Vec<(String, String)> {
        want.iter()
            .map(|(f, c)| ((*f).to_owned(), (*c).to_owned()))
            .collect()
    }

    #[test]
    fn a_quote_renders_amounts_as_strings_with_one_currency() {
        let dto = QuoteDto::from(&sample_quote());
        let got = serde_json::to_value(&dto).expect("serializes");
        assert_eq!(got["currency"], "USD");
        assert_eq!(
            got["lines"][0],
            json!({
                "itemId": uuid(1), "revision": 1, "kind": "material",
                "description": "Copper fitting", "quantity": "3", "unit": "each",
                "unitPrice": "6.666", "lineTotal": "20.00",
                "rule": { "rule": "markup_tier", "cost": "3.333", "percent": "100", "from": "0",
                          "to": "10", "trade": null, "skillLevel": null, "hourly": null,
                          "time": null, "multiplier": null },
            })
        );
        assert_eq!(
            got["lines"][1]["rule"],
            json!({ "rule": "labor_rate", "cost": null, "percent": null, "from": null,
                    "to": null, "trade": "plumbing", "skillLevel": 2, "hourly": "85.00",
                    "time": "overtime", "multiplier": "1.5" })
        );
        assert_eq!(got["lines"][1]["lineTotal"], "255.00");
        assert_eq!(
            got["discountRule"],
            json!({ "type": "percent", "amount": null, "percent": "10" })
        );
        let totals: Vec<&Value> = ["subtotal", "discount", "taxTotal", "total"]
            .iter()
            .map(|k| &got[*k])
            .collect();
        assert_eq!(totals, vec!["275.00", "27.50", "1.49", "248.99"]);
        assert_eq!(
            got["taxLines"][0],
            json!({ "name": "Texas sales tax", "percent": "8.25",
                    "taxable": { "service": false, "material": true, "labor": false, "equipment": false },
                    "taxableBase": "18.00", "tax": "1.49" })
        );
        assert_eq!(
            got["roundings"][0],
            json!({ "at": "lines[0].lineTotal", "before": "19.998", "after": "20.00" })
        );
        assert_eq!(got["roundings"][1]["at"], "taxLines[0].tax");
    }

    #[test]
    fn a_custom_line_converts_with_its_price_and_kind() {
        let req = request(
            json!([{ "description": " Haul away ", "unitPrice": "45.5", "kind": "service",
                     "quantity": "1.25" }]),
            None,
        );
        assert_eq!(
            req.lines,
            vec![QuoteLine {
                source: LineSource::Custom {
                    description: Name::parse("Haul away").expect("valid"),
                    unit_price: usd_of("45.5"),
                    kind: ItemKind::Service,
                },
                quantity: dec("1.25"),
                description: None,
            }]
        );
        assert_eq!(req.discount, None);
    }

    #[test]
    fn an_item_line_converts_with_its_labour_terms_and_name_override() {
        let req = request(
            json!([{ "itemId": uuid(2), "revision": 3, "skillLevel": 2,
                     "laborTime": "after_hours", "description": "Night call", "quantity": "1.5" }]),
            Some(json!({ "type": "amount", "amount": "25" })),
        );
        assert_eq!(
            req.lines,
            vec![QuoteLine {
                source: LineSource::Item {
                    item_id: PricebookItemId::from_uuid(uuid(2)),
                    revision: Some(3),
                    skill_level: Some(
                        hestami_core::workforce::SkillLevel::parse(2).expect("valid")
                    ),
                    labor_time: Some(LaborTime::AfterHours),
                },
                quantity: dec("1.5"),
                description: Some(Name::parse("Night call").expect("valid")),
            }]
        );
        assert_eq!(
            req.discount,
            Some(Discount::Amount {
                amount: usd_of("25")
            })
        );
    }

    #[test]
    fn every_line_problem_is_reported_with_its_full_path() {
        let lines: Vec<QuoteLineInput> = serde_json::from_value(json!([
            { "description": "Tape", "unitPrice": "12,50", "kind": "material", "quantity": "1" },
            { "quantity": "1" },
            { "description": "Tape", "unitPrice": "1", "kind": "material", "quantity": "1",
              "revision": 2, "skillLevel": 3, "laborTime": "regular" },
            { "itemId": uuid(1), "unitPrice": "1", "kind": "material", "quantity": "1" },
            { "itemId": uuid(2), "skillLevel": 9, "quantity": "1e3" },
            { "description": "", "unitPrice": "1", "kind": "labor", "quantity": "-2" },
        ]))
        .expect("well-formed");
        assert_eq!(
            problems(|v| quote_lines(v, "options[1].", lines, usd())),
            pairs(&[
                ("options[1].lines[0].unitPrice", "invalid_amount"),
                ("options[1].lines[1].description", "required"),
                ("options[1].lines[1].unitPrice", "required"),
                ("options[1].lines[1].kind", "required"),
                ("options[1].lines[2].revision", "not_applicable"),
                ("options[1].lines[2].skillLevel", "not_applicable"),
                ("options[1].lines[2].laborTime", "not_applicable"),
                ("options[1].lines[3].unitPrice", "not_applicable"),
                ("options[1].lines[3].kind", "not_applicable"),
                ("options[1].lines[4].quantity", "invalid_decimal"),
                ("options[1].lines[4].skillLevel", "out_of_range"),
                // A negative quantity is well-formed: the core's quote refuses it.
                ("options[1].lines[5].description", "required"),
            ])
        );
    }

    #[test]
    fn core_problems_keep_their_paths_under_the_prefix() {
        let items = catalogue();
        let markup = tiers();
        let ctx = PricingContext {
            currency: usd(),
            items: &items,
            markup: &markup,
            taxes: &[],
            member: None,
            trip_fee_waived_by: None,
        };
        let req = request(json!([{ "itemId": uuid(1), "quantity": "-2" }]), None);
        let refused = pricebook::quote(&ctx, &req).expect_err("a negative quantity");
        assert_eq!(
            problems(|v| {
                core_problems(v, "options[1].", refused);
                Some(())
            }),
            pairs(&[("options[1].lines[0].quantity", "must_be_positive")])
        );
    }

    #[test]
    fn a_discount_takes_only_the_field_of_its_type() {
        let input: DiscountInput =
            serde_json::from_value(json!({ "type": "amount", "percent": "5" }))
                .expect("well-formed");
        assert_eq!(
            problems(|v| discount(v, "", &input, usd())),
            pairs(&[
                ("discount.percent", "not_applicable"),
                ("discount.amount", "required"),
            ])
        );
        let input: DiscountInput =
            serde_json::from_value(json!({ "type": "percent", "percent": "x", "amount": "1" }))
                .expect("well-formed");
        assert_eq!(
            problems(|v| discount(v, "options[0].", &input, usd())),
            pairs(&[
                ("options[0].discount.amount", "not_applicable"),
                ("options[0].discount.percent", "invalid_percent"),
            ])
        );
        let unknown: Result<DiscountInput, _> =
            serde_json::from_value(json!({ "type": "coupon", "amount": "1" }));
        assert!(unknown.is_err());
    }

    fn draft(value: Value) -> Result<ItemDraft, Vec<(String, String)>> {
        let input: ItemDraftInput = serde_json::from_value(value).expect("well-formed");
        let mut found = Vec::new();
        let result = validate(|v| item_draft(v, "", input, usd()));
        if let Err(e) = &result {
            found = e
                .field_errors
                .iter()
                .map(|f| (f.field.clone(), f.code.clone()))
                .collect();
        }
        result.map_err(|_| found)
    }

    #[test]
    fn an_item_draft_of_each_kind_converts() {
        let service = draft(
            json!({ "name": "Water heater install", "category": "Water heaters",
            "details": { "kind": "service", "price": "1249.99", "estimatedLaborHours": "4",
                         "trade": "plumbing",
                         "bundledMaterials": [{ "itemId": uuid(1), "quantity": "1" }] } }),
        )
        .expect("valid");
        assert_eq!(
            service.category.map(|c| c.as_str().to_owned()),
            Some("Water heaters".into())
        );
        assert_eq!(
            service.details,
            ItemDetails::Service {
                price: usd_of("1249.99"),
                estimated_labor_hours: dec("4"),
                trade: TradeCode::parse("plumbing").expect("valid"),
                bundled_materials: vec![BundledMaterial {
                    item_id: PricebookItemId::from_uuid(uuid(1)),
                    quantity: dec("1"),
                }],
                trip_fee: false,
            }
        );

        let tiered = draft(json!({ "name": "Fitting", "details": { "kind": "material",
            "sku": "cu-12", "unit": "Each", "cost": "3.333" } }))
        .expect("valid");
        assert_eq!(
            tiered.details,
            ItemDetails::Material {
                sku: Sku::parse("CU-12").expect("valid"),
                unit: Unit::parse("each").expect("valid"),
                cost: usd_of("3.333"),
                pricing: MaterialPricing::Tiered,
            }
        );
        let markup = draft(json!({ "name": "Tank", "details": { "kind": "material",
            "sku": "t-1", "unit": "each", "cost": "41.15",
            "pricing": { "rule": "markup", "percent": "35" } } }))
        .expect("valid");
        assert!(matches!(
            markup.details,
            ItemDetails::Material { pricing: MaterialPricing::Markup { percent }, .. }
                if percent == pct("35")
        ));

        let labor = draft(json!({ "name": "Plumber", "details": { "kind": "labor",
            "trade": "plumbing", "rates": [{ "skillLevel": 2, "hourly": "85.00" }],
            "overtimeMultiplier": "1.5", "afterHoursMultiplier": "2" } }))
        .expect("valid");
        let ItemDetails::Labor { rates, .. } = &labor.details else {
            panic!("a labour item: {:?}", labor.details);
        };
        assert_eq!(rates[0].hourly, usd_of("85.00"));

        let equipment = draft(
            json!({ "name": "Drain camera", "details": { "kind": "equipment",
            "unit": "day", "rate": "75" } }),
        )
        .expect("valid");
        assert_eq!(
            equipment.details,
            ItemDetails::Equipment {
                unit: Unit::parse("day").expect("valid"),
                rate: usd_of("75"),
            }
        );

        // The rendered item has only its kind's fields set.
        let rendered = serde_json::to_value(PricebookItemDto::from(item(
            6,
            "Drain camera",
            equipment.details,
        )))
        .expect("serializes");
        assert_eq!(rendered["kind"], "equipment");
        assert_eq!(rendered["details"]["rate"], "75.00");
        assert_eq!(rendered["details"]["price"], Value::Null);
        assert_eq!(rendered["details"]["bundledMaterials"], Value::Null);
    }

    #[test]
    fn an_item_draft_reports_fields_of_other_kinds_missing_ones_and_the_cores_rules() {
        assert_eq!(
            draft(json!({ "name": "Install", "details": { "kind": "service",
                "estimatedLaborHours": "2", "trade": "plumbing", "sku": "X", "rate": "5" } })),
            Err(pairs(&[
                ("details.sku", "not_applicable"),
                ("details.rate", "not_applicable"),
                ("details.price", "required"),
            ]))
        );
        assert_eq!(
            draft(
                json!({ "name": " ", "details": { "kind": "material", "unit": "each",
                "cost": "1", "pricing": { "rule": "explicit", "percent": "5" } } })
            ),
            Err(pairs(&[
                ("name", "required"),
                ("details.sku", "required"),
                ("details.pricing.percent", "not_applicable"),
                ("details.pricing.price", "required"),
            ]))
        );
        assert_eq!(
            draft(
                json!({ "name": "Plumber", "details": { "kind": "labor", "trade": "plumbing",
                "rates": [{ "skillLevel": 2, "hourly": "85" }, { "skillLevel": 2, "hourly": "-1" }],
                "overtimeMultiplier": "0.5", "afterHoursMultiplier": "2" } })
            ),
            Err(pairs(&[
                ("details.rates[1].hourly", "must_not_be_negative"),
                ("details.rates[1].skillLevel", "duplicate"),
                ("details.overtimeMultiplier", "out_of_range"),
            ]))
        );
        assert_eq!(
            draft(json!({ "name": "Camera", "details": { "kind": "equipment",
                "rate": "1.1234567" } })),
            Err(pairs(&[
                ("details.unit", "required"),
                ("details.rate", "too_many_decimals"),
            ]))
        );
    }

    fn tier_inputs(value: Value) -> Vec<MarkupTierInput> {
        serde_json::from_value(value).expect("well-formed")
    }

    #[test]
    fn markup_tiers_report_syntax_then_the_tables_rules() {
        let ok = validate(|v| {
            markup_tiers(
                v,
                tier_inputs(json!([{ "from": "0", "to": "10", "percent": "100" },
                                   { "from": "10", "percent": "50" }])),
            )
        })
        .expect("valid");
        assert_eq!(ok, tiers());
        let rendered: Vec<MarkupTierDto> = ok.tiers().iter().map(Into::into).collect();
        assert_eq!(
            serde_json::to_value(&rendered).expect("serializes")[1],
            json!({ "from": "10", "to": null, "percent": "50" })
        );

        assert_eq!(
            problems(|v| markup_tiers(
                v,
                tier_inputs(json!([{ "from": "0", "to": "10", "percent": "50" },
                                   { "from": "12", "percent": "25" }]))
            )),
            pairs(&[("tiers[1].from", "not_contiguous")])
        );
        assert_eq!(
            problems(|v| markup_tiers(
                v,
                tier_inputs(json!([{ "from": "zero", "to": "10", "percent": "50" },
                                   { "from": "10", "percent": "-1" }]))
            )),
            pairs(&[
                ("tiers[0].from", "invalid_decimal"),
                ("tiers[1].percent", "out_of_range"),
            ])
        );
    }

    #[test]
    fn tax_rates_convert_and_report_jurisdictions_and_duplicates() {
        let inputs: Vec<TaxRateInput> = serde_json::from_value(json!([
            { "jurisdiction": { "country": "US", "region": "tx" }, "name": "Texas sales tax",
              "percent": "8.25",
              "taxable": { "service": false, "material": true, "labor": false, "equipment": false } },
        ]))
        .expect("well-formed");
        let rates = validate(|v| tax_rates(v, inputs)).expect("valid");
        assert_eq!(rates.rates(), taxes().as_slice());
        let rendered = TaxRateDto::from(&rates.rates()[0]);
        assert_eq!(
            serde_json::to_value(&rendered).expect("serializes")["jurisdiction"],
            json!({ "country": "US", "region": "TX", "locality": null })
        );

        let taxable =
            json!({ "service": true, "material": true, "labor": true, "equipment": true });
        let inputs: Vec<TaxRateInput> = serde_json::from_value(json!([
            { "jurisdiction": { "country": "US", "region": "T X" }, "name": "A", "percent": "1",
              "taxable": taxable },
            { "jurisdiction": { "country": "US" }, "name": "B", "percent": "101",
              "taxable": taxable },
            { "jurisdiction": { "country": "US" }, "name": "B", "percent": "1",
              "taxable": taxable },
        ]))
        .expect("well-formed");
        assert_eq!(
            problems(|v| tax_rates(v, inputs)),
            pairs(&[("rates[0].jurisdiction.region", "invalid_region")])
        );
        let inputs: Vec<TaxRateInput> = serde_json::from_value(json!([
            { "jurisdiction": { "country": "US" }, "name": "B", "percent": "101",
              "taxable": taxable },
            { "jurisdiction": { "country": "US" }, "name": "B", "percent": "1",
              "taxable": taxable },
        ]))
        .expect("well-formed");
        assert_eq!(
            problems(|v| tax_rates(v, inputs)),
            pairs(&[
                ("rates[0].percent", "out_of_range"),
                ("rates[1].name", "duplicate"),
            ])
        );
    }

    #[test]
    fn an_estimate_renders_its_options_and_next_states() {
        let approval = Approval {
            option_id: EstimateOptionId::from_uuid(uuid(20)),
            signed_by: Name::parse("Ada").expect("valid"),
            signature: None,
            deposit_required: Some(usd_of("50.00")),
            approved_at: t0(),
        };
        let e = Estimate {
            id: EstimateId::from_uuid(uuid(10)),
            version: 3,
            revision: 1,
            status: EstimateStatus::Sent,
            job_id: None,
            customer_id: CustomerId::from_uuid(uuid(11)),
            property_id: PropertyId::from_uuid(uuid(12)),
            currency: usd(),
            options: vec![EstimateOption {
                id: EstimateOptionId::from_uuid(uuid(20)),
                name: Name::parse("Good").expect("valid"),
                quote: sample_quote(),
            }],
            valid_until: t0(),
            notes: None,
            sent_at: Some(t0()),
            approval: Some(approval),
            decline_reason: None,
            created_at: t0(),
            updated_at: t0(),
        };
        let got = serde_json::to_value(EstimateDto::from(e)).expect("serializes");
        assert_eq!(got["status"], "sent");
        assert_eq!(got["currency"], "USD");
        assert_eq!(got["options"][0]["quote"]["total"], "248.99");
        assert_eq!(got["approval"]["depositRequired"], "50.00");
        assert_eq!(
            got["allowedNext"],
            json!(["approved", "declined", "expired", "draft"])
        );
    }

    #[test]
    fn an_invoice_renders_its_number_balance_and_actions() {
        let invoice = Invoice {
            id: InvoiceId::from_uuid(uuid(30)),
            version: 3,
            status: InvoiceStatus::Issued,
            job_id: None,
            customer_id: CustomerId::from_uuid(uuid(11)),
            source: InvoiceSource::Estimate {
                estimate_id: EstimateId::from_uuid(uuid(10)),
                revision: 2,
                option_id: EstimateOptionId::from_uuid(uuid(20)),
            },
            quote: sample_quote(),
            terms: PaymentTerms::net(30).expect("valid"),
            number: Some(InvoiceNumber::from_sequence(123).expect("valid")),
            issue_date: NaiveDate::from_ymd_opt(2031, 3, 3),
            due_date: NaiveDate::from_ymd_opt(2031, 4, 2),
            payments: vec![Payment {
                id: PaymentId::from_uuid(uuid(40)),
                amount: usd_of("100.00"),
                method: PaymentMethod::Check,
                reference: None,
                received_at: t0(),
            }],
            refunds: vec![],
            credit_notes: vec![],
            write_offs: vec![],
            void_reason: None,
            created_at: t0(),
            updated_at: t0(),
        };
        let got = serde_json::to_value(InvoiceDto::from(invoice)).expect("serializes");
        assert_eq!(got["number"], "INV-000123");
        assert_eq!(got["netDays"], 30);
        assert_eq!(got["issueDate"], "2031-03-03");
        assert_eq!(
            got["source"],
            json!({ "from": "estimate", "estimateId": uuid(10), "revision": 2,
                    "optionId": uuid(20) })
        );
        assert_eq!(
            [&got["paid"], &got["refunded"], &got["balance"]],
            ["100.00", "0.00", "148.99"]
        );
        assert_eq!(got["payments"][0]["method"], "check");
        assert_eq!(
            got["allowedActions"],
            json!(["pay", "refund", "credit", "write_off", "void"])
        );
    }

    /// The schema of `T` as JSON, with every schema it refers to named.
    fn schema<T: ToSchema>() -> (String, Value) {
        let mut refs = Vec::new();
        T::schemas(&mut refs);
        let value = serde_json::to_value(T::schema()).expect("serializes");
        (T::name().into_owned(), value)
    }

    #[test]
    fn every_dto_has_a_schema_with_wire_field_names() {
        let all = [
            schema::<ItemKindDto>(),
            schema::<LaborTimeDto>(),
            schema::<TaxableKindsDto>(),
            schema::<RoundingDto>(),
            schema::<DiscountDto>(),
            schema::<PricingRuleDto>(),
            schema::<PricedLineDto>(),
            schema::<TaxLineDto>(),
            schema::<QuoteDto>(),
            schema::<BundledMaterialDto>(),
            schema::<MaterialPricingDto>(),
            schema::<LaborRateDto>(),
            schema::<ItemDetailsDto>(),
            schema::<PricebookItemDto>(),
            schema::<MarkupTierDto>(),
            schema::<TaxRateDto>(),
            schema::<EstimateOptionDto>(),
            schema::<ApprovalDto>(),
            schema::<EstimateDto>(),
            schema::<PlannedWorkDto>(),
            schema::<QuoteLineDto>(),
            schema::<PaymentDto>(),
            schema::<RefundDto>(),
            schema::<InvoiceSourceDto>(),
            schema::<InvoiceDto>(),
            schema::<QuoteLineInput>(),
            schema::<DiscountTypeDto>(),
            schema::<DiscountInput>(),
            schema::<MaterialPricingRuleDto>(),
            schema::<MaterialPricingInput>(),
            schema::<BundledMaterialInput>(),
            schema::<LaborRateInput>(),
            schema::<ItemDetailsInput>(),
            schema::<ItemDraftInput>(),
            schema::<MarkupTierInput>(),
            schema::<TaxRateInput>(),
        ];
        let find = |name: &str| {
            all.iter()
                .find(|(n, _)| n == name)
                .map(|(_, s)| s.clone())
                .unwrap_or_else(|| panic!("{name} has a schema"))
        };
        for name in ["DiscountDto", "DiscountInput"] {
            assert!(find(name)["properties"]["type"].is_object(), "{name}");
        }
        assert!(find("PricingRuleDto")["properties"]["skillLevel"].is_object());
        assert_eq!(find("QuoteLineInput")["required"], json!(["quantity"]));
        assert_eq!(
            find("LaborTimeDto")["enum"],
            json!(["regular", "overtime", "after_hours"])
        );
    }
}
