//! The pricebook: what things cost and what they sell for, and the one pricing function that
//! estimates, invoices and the `quote` procedure all go through.
//!
//! An item is a flat-rate service, a material, a labour rate or a piece of equipment
//! ([`ItemDetails`]). Items are revisioned: [`revise_item`] returns the next revision and the
//! store keeps the earlier ones readable, so a priced line that names `(item, revision)` can
//! always be traced back to the price it came from. A price change never alters an estimate or
//! an invoice, because they hold the [`Quote`] (the priced lines and totals) as a value, not a
//! reference to the pricebook.
//!
//! [`quote`] prices a set of lines against a snapshot of the pricebook (the items the caller
//! loaded), the organization's [`MarkupTiers`] and the [`TaxRate`]s that apply at the property.
//! Every priced line records the [`PricingRule`] that priced it. Rounding, half away from zero to
//! the currency's minor unit, happens at these points only, each recorded in
//! [`Quote::roundings`] when it changes a value:
//!
//! 1. each line total (`quantity × unit price`; unit prices themselves are exact);
//! 2. a percentage discount;
//! 3. a member's discount (`memberDiscount`): a customer with an active maintenance agreement
//!    gets its plan's percentage off what is left after the discount, as an adjustment of its
//!    own ([`MemberAdjustment`]) so that the customer sees what membership saved;
//! 4. each rate's taxable base, when a discount is spread over the taxable lines;
//! 5. the tax of each rate;
//! 6. the total (a no-op by construction: every part is already rounded; it is kept as the
//!    documented last point so that a change above cannot leak sub-cent totals).
//!
//! So `total = Σ line totals − discount − member discount + Σ taxes`, exactly.
//!
//! Discounts are taken before tax: each rate's taxable base is reduced by the discounts' share
//! of it (`base × (discount + member discount) / subtotal`), as most sales-tax rules require for
//! a seller's discount.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Invalid;
use crate::compliance::Jurisdiction;
use crate::ids::{AgreementId, PricebookItemId};
use crate::money::{FieldError, MAX_AMOUNT, Money, MoneyError, Percent, Rounding};
use crate::org::Currency;
use crate::text::{Description, Name, TradeCode};
use crate::workforce::SkillLevel;

/// The kinds of pricebook item; also the kind of a priced line, which decides its taxability.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// A flat-rate task (labour and any bundled materials at one price).
    Service,
    /// A material, sold per unit.
    Material,
    /// Labour, sold per hour.
    Labor,
    /// Equipment, rented per unit of time.
    Equipment,
}

impl ItemKind {
    /// Every kind.
    pub const ALL: [ItemKind; 4] = [Self::Service, Self::Material, Self::Labor, Self::Equipment];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Service => "service",
            Self::Material => "material",
            Self::Labor => "labor",
            Self::Equipment => "equipment",
        }
    }
}

impl std::fmt::Display for ItemKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! code_text {
    ($(#[$doc:meta])* $name:ident, $max:expr, $what:expr, $allowed:expr, $fold:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Trims and folds `raw` and accepts it when it is 1 to
            #[doc = concat!(stringify!($max))]
            /// characters from the allowed alphabet.
            pub fn parse(raw: &str) -> Result<Self, Invalid> {
                let value: String = raw.trim().chars().map($fold).collect();
                let allowed: fn(char) -> bool = $allowed;
                if !value.is_empty() && value.chars().count() <= $max && value.chars().all(allowed)
                {
                    Ok(Self(value))
                } else {
                    Err(Invalid::new(
                        concat!("invalid_", $what),
                        concat!(
                            "a ",
                            $what,
                            " is 1 to ",
                            stringify!($max),
                            " letters, digits or - _ . /"
                        ),
                    ))
                }
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

code_text!(
    /// A stock-keeping unit: 1 to 64 ASCII letters, digits, `-`, `_`, `.` or `/`, upper-cased
    /// (`WH-40G-NAT`).
    Sku, 64, "sku",
    |c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'),
    |c: char| c.to_ascii_uppercase()
);
code_text!(
    /// A unit of measure: 1 to 16 ASCII letters, digits, `-`, `_`, `.` or `/`, lower-cased
    /// (`each`, `ft`, `gal`, `hour`, `day`).
    Unit, 16, "unit",
    |c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'),
    |c: char| c.to_ascii_lowercase()
);

/// A material included in a flat-rate service's price (used to draw stock; not priced again).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundledMaterial {
    /// The material item.
    pub item_id: PricebookItemId,
    /// How many of its unit.
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: Decimal,
}

/// How a material's selling price is found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum MaterialPricing {
    /// This price per unit.
    Explicit {
        /// The selling price per unit.
        price: Money,
    },
    /// The cost plus this item's own markup.
    Markup {
        /// The markup on cost.
        percent: Percent,
    },
    /// The cost plus the organization's tiered markup for that cost ([`MarkupTiers`]).
    Tiered,
}

/// The hourly rate for one skill level in a labour item's trade.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LaborRate {
    /// The skill level.
    pub skill_level: SkillLevel,
    /// The regular hourly rate.
    pub hourly: Money,
}

/// When labour is worked, which decides the multiplier on the hourly rate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LaborTime {
    /// Regular hours: the rate as it is.
    #[default]
    Regular,
    /// Overtime: the rate times the item's overtime multiplier.
    Overtime,
    /// Nights, weekends, holidays: the rate times the after-hours multiplier.
    AfterHours,
}

impl LaborTime {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Regular => "regular",
            Self::Overtime => "overtime",
            Self::AfterHours => "after_hours",
        }
    }
}

/// What an item is, with the prices of its kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum ItemDetails {
    /// A flat-rate task.
    Service {
        /// The flat price, per task.
        price: Money,
        /// The labour hours the task is expected to take (for scheduling, not pricing).
        #[serde(with = "rust_decimal::serde::str")]
        estimated_labor_hours: Decimal,
        /// The trade that performs it.
        trade: TradeCode,
        /// Materials included in the price.
        #[serde(default)]
        bundled_materials: Vec<BundledMaterial>,
        /// A trip fee (the charge for coming out): waived for a member whose plan waives it.
        #[serde(default)]
        trip_fee: bool,
    },
    /// A material.
    Material {
        /// Its stock-keeping unit.
        sku: Sku,
        /// The unit it is sold in.
        unit: Unit,
        /// What one unit costs the organization.
        cost: Money,
        /// How its selling price is found.
        pricing: MaterialPricing,
    },
    /// Labour in a trade.
    Labor {
        /// The trade.
        trade: TradeCode,
        /// Hourly rates by skill level (one per level).
        rates: Vec<LaborRate>,
        /// Multiplier for overtime hours (1 to 10, such as `1.5`).
        #[serde(with = "rust_decimal::serde::str")]
        overtime_multiplier: Decimal,
        /// Multiplier for after-hours work (1 to 10, such as `2`).
        #[serde(with = "rust_decimal::serde::str")]
        after_hours_multiplier: Decimal,
    },
    /// Equipment rented for a job.
    Equipment {
        /// The unit it is rented by (`hour`, `day`).
        unit: Unit,
        /// The price per unit.
        rate: Money,
    },
}

impl ItemDetails {
    /// The kind.
    pub fn kind(&self) -> ItemKind {
        match self {
            Self::Service { .. } => ItemKind::Service,
            Self::Material { .. } => ItemKind::Material,
            Self::Labor { .. } => ItemKind::Labor,
            Self::Equipment { .. } => ItemKind::Equipment,
        }
    }

    /// Takes `current`'s trip-fee mark when both are services.
    pub fn keep_trip_fee(&mut self, current: &ItemDetails) {
        if let (Self::Service { trip_fee, .. }, Self::Service { trip_fee: kept, .. }) =
            (self, current)
        {
            *trip_fee = *kept;
        }
    }
}

/// What an item is made from: the content of `createItem` and `updateItem`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemDraft {
    /// The name shown on estimates and invoices.
    pub name: Name,
    /// More detail, for the office.
    pub description: Option<Description>,
    /// A category to group and filter by, such as `Water heaters`.
    pub category: Option<Name>,
    /// The kind and its prices.
    pub details: ItemDetails,
}

/// One revision of a pricebook item. Revisions are immutable: an update makes the next one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PricebookItem {
    /// The item (the same across revisions).
    pub id: PricebookItemId,
    /// 1 on creation, +1 on each update or archival.
    pub revision: u32,
    /// The name shown on estimates and invoices.
    pub name: Name,
    /// More detail.
    pub description: Option<Description>,
    /// A category.
    pub category: Option<Name>,
    /// The kind and its prices.
    pub details: ItemDetails,
    /// Archived items are kept for history but can no longer be quoted.
    pub archived: bool,
    /// When this revision was made.
    pub revised_at: DateTime<Utc>,
}

impl PricebookItem {
    /// The kind.
    pub fn kind(&self) -> ItemKind {
        self.details.kind()
    }

    /// The reference a priced line keeps.
    pub fn item_ref(&self) -> ItemRef {
        ItemRef {
            item_id: self.id,
            revision: self.revision,
        }
    }
}

fn ten() -> Decimal {
    Decimal::TEN
}

fn check_price(field: &str, money: &Money, currency: Currency, problems: &mut Vec<FieldError>) {
    if money.currency() != currency {
        problems.push(FieldError::new(
            field,
            "currency_mismatch",
            format!(
                "the price must be in {}, the organization's currency",
                currency.code()
            ),
        ));
    } else if money.is_negative() {
        problems.push(FieldError::new(
            field,
            "must_not_be_negative",
            "a price must not be negative",
        ));
    } else if money.amount() > MAX_AMOUNT {
        problems.push(FieldError::invalid(
            field,
            MoneyError::Overflow.to_invalid(),
        ));
    }
}

/// Every problem with `draft` for an organization billing in `currency`: prices in another
/// currency, negative prices, multipliers outside 1 to 10, missing or duplicated labour rates,
/// non-positive bundled quantities. Paths are relative to the draft (`details.rates[1]`).
pub fn validate_draft(draft: &ItemDraft, currency: Currency) -> Vec<FieldError> {
    let mut problems = Vec::new();
    match &draft.details {
        ItemDetails::Service {
            price,
            estimated_labor_hours,
            bundled_materials,
            ..
        } => {
            check_price("details.price", price, currency, &mut problems);
            if estimated_labor_hours.is_sign_negative() && !estimated_labor_hours.is_zero()
                || *estimated_labor_hours > Decimal::from(10_000)
            {
                problems.push(FieldError::new(
                    "details.estimatedLaborHours",
                    "out_of_range",
                    "estimated labour hours are between 0 and 10000",
                ));
            }
            for (i, b) in bundled_materials.iter().enumerate() {
                if b.quantity <= Decimal::ZERO {
                    problems.push(FieldError::new(
                        format!("details.bundledMaterials[{i}].quantity"),
                        "must_be_positive",
                        "quantity must be greater than 0",
                    ));
                }
            }
        }
        ItemDetails::Material { cost, pricing, .. } => {
            check_price("details.cost", cost, currency, &mut problems);
            if let MaterialPricing::Explicit { price } = pricing {
                check_price("details.pricing.price", price, currency, &mut problems);
            }
        }
        ItemDetails::Labor {
            rates,
            overtime_multiplier,
            after_hours_multiplier,
            ..
        } => {
            if rates.is_empty() {
                problems.push(FieldError::new(
                    "details.rates",
                    "required",
                    "a labour item needs at least one hourly rate",
                ));
            }
            let mut seen = BTreeSet::new();
            for (i, rate) in rates.iter().enumerate() {
                check_price(
                    &format!("details.rates[{i}].hourly"),
                    &rate.hourly,
                    currency,
                    &mut problems,
                );
                if !seen.insert(rate.skill_level) {
                    problems.push(FieldError::new(
                        format!("details.rates[{i}].skillLevel"),
                        "duplicate",
                        format!(
                            "skill level {} has more than one rate",
                            rate.skill_level.get()
                        ),
                    ));
                }
            }
            for (field, m) in [
                ("details.overtimeMultiplier", overtime_multiplier),
                ("details.afterHoursMultiplier", after_hours_multiplier),
            ] {
                if *m < Decimal::ONE || *m > ten() {
                    problems.push(FieldError::new(
                        field,
                        "out_of_range",
                        "a multiplier is between 1 and 10",
                    ));
                }
            }
        }
        ItemDetails::Equipment { rate, .. } => {
            check_price("details.rate", rate, currency, &mut problems);
        }
    }
    problems
}

/// The first revision of a new item, or every problem with the draft.
pub fn create_item(
    id: PricebookItemId,
    draft: ItemDraft,
    currency: Currency,
    now: DateTime<Utc>,
) -> Result<PricebookItem, Vec<FieldError>> {
    let problems = validate_draft(&draft, currency);
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(PricebookItem {
        id,
        revision: 1,
        name: draft.name,
        description: draft.description,
        category: draft.category,
        details: draft.details,
        archived: false,
        revised_at: now,
    })
}

/// The next revision of `item` with the content of `draft`. The kind cannot change (that is a
/// different item: `details.kind` `kind_changed`), and an archived item cannot be revised
/// (`itemId` `item_archived`). The caller keeps `item` as it is: earlier revisions stay readable.
pub fn revise_item(
    item: &PricebookItem,
    draft: ItemDraft,
    currency: Currency,
    now: DateTime<Utc>,
) -> Result<PricebookItem, Vec<FieldError>> {
    let mut problems = Vec::new();
    if item.archived {
        problems.push(FieldError::new(
            "itemId",
            "item_archived",
            "an archived item cannot be changed",
        ));
    }
    if draft.details.kind() != item.kind() {
        problems.push(FieldError::new(
            "details.kind",
            "kind_changed",
            format!(
                "the item is a {}; create a new item for a {}",
                item.kind(),
                draft.details.kind()
            ),
        ));
    }
    problems.extend(validate_draft(&draft, currency));
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(PricebookItem {
        id: item.id,
        revision: item.revision + 1,
        name: draft.name,
        description: draft.description,
        category: draft.category,
        details: draft.details,
        archived: false,
        revised_at: now,
    })
}

/// The archived revision of `item` (revision + 1), or `None` if it is archived already.
pub fn archive_item(item: &PricebookItem, now: DateTime<Utc>) -> Option<PricebookItem> {
    (!item.archived).then(|| PricebookItem {
        revision: item.revision + 1,
        archived: true,
        revised_at: now,
        ..item.clone()
    })
}

/// Whether `item` matches a search: every word of `query` appears, ignoring case, in its name,
/// description, category or SKU. An empty query matches everything.
pub fn matches_search(item: &PricebookItem, query: &str) -> bool {
    let mut haystack = item.name.as_str().to_lowercase();
    for extra in [
        item.description.as_ref().map(|d| d.as_str()),
        item.category.as_ref().map(|c| c.as_str()),
        match &item.details {
            ItemDetails::Material { sku, .. } => Some(sku.as_str()),
            _ => None,
        },
    ]
    .into_iter()
    .flatten()
    {
        haystack.push(' ');
        haystack.push_str(&extra.to_lowercase());
    }
    query
        .split_whitespace()
        .all(|word| haystack.contains(&word.to_lowercase()))
}

/// One tier of the markup table: materials whose unit cost is in `[from, to)` are marked up by
/// `percent`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MarkupTier {
    /// The lowest unit cost of the tier (inclusive).
    #[serde(with = "rust_decimal::serde::str")]
    pub from: Decimal,
    /// The unit cost where the next tier starts (exclusive); `None` for the last tier.
    #[serde(default, with = "crate::money::decimal_str_option")]
    pub to: Option<Decimal>,
    /// The markup on cost.
    pub percent: Percent,
}

/// An organization's tiered markup table: contiguous, non-overlapping cost ranges from 0 with an
/// open-ended last tier, so that every cost falls in exactly one tier. May be empty (no tiers):
/// then a material priced by [`MaterialPricing::Tiered`] cannot be quoted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct MarkupTiers(Vec<MarkupTier>);

impl MarkupTiers {
    /// Accepts tiers that start at 0, each ending where the next starts, each non-empty
    /// (`from < to`), the last open-ended. Returns every problem (`tiers[1].from`
    /// `not_contiguous`).
    pub fn parse(tiers: Vec<MarkupTier>) -> Result<Self, Vec<FieldError>> {
        let mut problems = Vec::new();
        let last = tiers.len().saturating_sub(1);
        for (i, tier) in tiers.iter().enumerate() {
            if i == 0 && !tier.from.is_zero() {
                problems.push(FieldError::new(
                    "tiers[0].from",
                    "must_start_at_zero",
                    "the first tier starts at a cost of 0",
                ));
            }
            if i > 0
                && let Some(prev_to) = tiers[i - 1].to
            {
                if tier.from < prev_to {
                    problems.push(FieldError::new(
                            format!("tiers[{i}].from"),
                            "overlapping",
                            format!("the tier starts at {} inside the previous one, which ends at {prev_to}", tier.from),
                        ));
                } else if tier.from > prev_to {
                    problems.push(FieldError::new(
                        format!("tiers[{i}].from"),
                        "not_contiguous",
                        format!("the tier must start at {prev_to}, where the previous one ends"),
                    ));
                }
            }
            match tier.to {
                Some(to) if to <= tier.from => problems.push(FieldError::new(
                    format!("tiers[{i}].to"),
                    "empty_range",
                    "a tier ends above where it starts",
                )),
                Some(_) if i == last => problems.push(FieldError::new(
                    format!("tiers[{i}].to"),
                    "must_be_open_ended",
                    "the last tier has no upper bound, so that every cost has a markup",
                )),
                None if i != last => problems.push(FieldError::new(
                    format!("tiers[{i}].to"),
                    "required",
                    "only the last tier is open-ended",
                )),
                _ => {}
            }
        }
        if problems.is_empty() {
            Ok(Self(tiers))
        } else {
            Err(problems)
        }
    }

    /// The tiers, in cost order.
    pub fn tiers(&self) -> &[MarkupTier] {
        &self.0
    }

    /// The tier a unit cost falls in.
    pub fn for_cost(&self, cost: Decimal) -> Option<&MarkupTier> {
        self.0
            .iter()
            .find(|t| t.from <= cost && t.to.is_none_or(|to| cost < to))
    }
}

impl<'de> Deserialize<'de> for MarkupTiers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let tiers = Vec::<MarkupTier>::deserialize(d)?;
        Self::parse(tiers).map_err(|problems| serde::de::Error::custom(joined(&problems)))
    }
}

fn joined(problems: &[FieldError]) -> String {
    problems
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Which kinds of line a tax rate applies to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaxableKinds {
    /// Flat-rate services.
    pub service: bool,
    /// Materials.
    pub material: bool,
    /// Labour.
    pub labor: bool,
    /// Equipment.
    pub equipment: bool,
}

impl TaxableKinds {
    /// Whether lines of `kind` are taxed.
    pub fn taxes(&self, kind: ItemKind) -> bool {
        match kind {
            ItemKind::Service => self.service,
            ItemKind::Material => self.material,
            ItemKind::Labor => self.labor,
            ItemKind::Equipment => self.equipment,
        }
    }
}

/// A sales tax: where it applies, its rate, and which kinds of line it taxes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaxRate {
    /// Where it applies (a state rate names the region; a city rate the locality too).
    pub jurisdiction: Jurisdiction,
    /// Its name on the invoice, such as `Texas state sales tax`.
    pub name: Name,
    /// The rate, 0 to 100 %.
    pub percent: Percent,
    /// What it taxes.
    pub taxable: TaxableKinds,
}

/// An organization's tax table (`setTaxRates`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TaxRates(Vec<TaxRate>);

impl TaxRates {
    /// Accepts rates of at most 100 %, with no two of the same name in the same jurisdiction.
    pub fn parse(rates: Vec<TaxRate>) -> Result<Self, Vec<FieldError>> {
        let mut problems = Vec::new();
        let mut seen = BTreeSet::new();
        for (i, rate) in rates.iter().enumerate() {
            if rate.percent.value() > Decimal::ONE_HUNDRED {
                problems.push(FieldError::new(
                    format!("rates[{i}].percent"),
                    "out_of_range",
                    "a tax rate is between 0 and 100 %",
                ));
            }
            if !seen.insert((rate.jurisdiction.clone(), rate.name.clone())) {
                problems.push(FieldError::new(
                    format!("rates[{i}].name"),
                    "duplicate",
                    "another rate of this jurisdiction has the same name",
                ));
            }
        }
        if problems.is_empty() {
            Ok(Self(rates))
        } else {
            Err(problems)
        }
    }

    /// All the rates.
    pub fn rates(&self) -> &[TaxRate] {
        &self.0
    }

    /// The rates that apply to work at `place` (see [`Jurisdiction::matches`]): a state rate
    /// and a city rate both apply in the city. In table order.
    pub fn applicable(&self, place: &Jurisdiction) -> Vec<TaxRate> {
        self.0
            .iter()
            .filter(|r| r.jurisdiction.matches(place))
            .cloned()
            .collect()
    }
}

impl<'de> Deserialize<'de> for TaxRates {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let rates = Vec::<TaxRate>::deserialize(d)?;
        Self::parse(rates).map_err(|problems| serde::de::Error::custom(joined(&problems)))
    }
}

/// What a line to price is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "source",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum LineSource {
    /// A pricebook item.
    Item {
        /// The item.
        item_id: PricebookItemId,
        /// A specific revision; `None` for the latest one in the snapshot.
        #[serde(default)]
        revision: Option<u32>,
        /// For labour: the skill level whose rate applies (required).
        #[serde(default)]
        skill_level: Option<SkillLevel>,
        /// For labour: regular, overtime or after hours (default regular).
        #[serde(default)]
        labor_time: Option<LaborTime>,
    },
    /// A one-off line at a price the user gives.
    Custom {
        /// What it is.
        description: Name,
        /// The price per unit.
        unit_price: Money,
        /// Its kind, for taxes.
        kind: ItemKind,
    },
}

/// A line to price.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuoteLine {
    /// What it is.
    #[serde(flatten)]
    pub source: LineSource,
    /// How many units (hours for labour): more than 0, at most 1,000,000, at most 4 decimals.
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: Decimal,
    /// Replaces the item's name on the line. (On the wire `label`: a custom line's own
    /// `description` shares the flattened object.)
    #[serde(default, rename = "label")]
    pub description: Option<Name>,
}

/// A discount on a set of lines, taken before tax.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Discount {
    /// A fixed amount, at most the subtotal, in the minor unit.
    Amount {
        /// The amount.
        amount: Money,
    },
    /// A percentage of the subtotal (at most 100), rounded.
    Percent {
        /// The percentage.
        percent: Percent,
    },
}

/// A member's discount: the percentage an active maintenance agreement's plan takes off the
/// customer's other work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberDiscount {
    /// The agreement that makes the customer a member.
    pub agreement_id: AgreementId,
    /// The percentage, at most 100.
    pub percent: Percent,
}

/// A member's discount as taken on a quote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberAdjustment {
    /// The agreement and its percentage.
    #[serde(flatten)]
    pub rule: MemberDiscount,
    /// `(subtotal − discount) × percent`, rounded (logged as `memberDiscount`).
    pub amount: Money,
}

/// What [`quote`] prices.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuoteRequest {
    /// The lines, 1 to [`MAX_LINES`].
    pub lines: Vec<QuoteLine>,
    /// A discount.
    #[serde(default)]
    pub discount: Option<Discount>,
}

/// The most lines a quote may have.
pub const MAX_LINES: usize = 1_000;

/// The pricebook and tables a quote is priced against. The caller loads them (the items the
/// lines name, at the revisions they name or the latest) and they are not kept: the [`Quote`]
/// holds everything it was priced from.
#[derive(Clone, Copy, Debug)]
pub struct PricingContext<'a> {
    /// The organization's currency; every price must be in it.
    pub currency: Currency,
    /// The items, any revisions; a line without a revision takes the highest one here.
    pub items: &'a [PricebookItem],
    /// The organization's markup table.
    pub markup: &'a MarkupTiers,
    /// The tax rates that apply at the property (see [`TaxRates::applicable`]).
    pub taxes: &'a [TaxRate],
    /// The customer's member discount, when an active agreement gives one.
    pub member: Option<MemberDiscount>,
    /// The active agreement whose plan waives the customer's trip fees, if any: lines of a
    /// trip-fee service are then priced at zero (see [`Waiver`]).
    pub trip_fee_waived_by: Option<AgreementId>,
}

/// An item and the revision a line was priced from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemRef {
    /// The item.
    pub item_id: PricebookItemId,
    /// Its revision.
    pub revision: u32,
}

/// The rule that gave a line its unit price.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "rule",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum PricingRule {
    /// The item's own price (a service's flat price, a material's explicit price, an equipment
    /// rate).
    ExplicitPrice,
    /// A material's cost plus its own markup.
    ItemMarkup {
        /// The unit cost.
        #[serde(with = "rust_decimal::serde::str")]
        cost: Decimal,
        /// The markup.
        percent: Percent,
    },
    /// A material's cost plus the markup of the organization's tier for that cost.
    MarkupTier {
        /// The unit cost.
        #[serde(with = "rust_decimal::serde::str")]
        cost: Decimal,
        /// The tier's lowest cost.
        #[serde(with = "rust_decimal::serde::str")]
        from: Decimal,
        /// The tier's upper bound (exclusive), if any.
        #[serde(default, with = "crate::money::decimal_str_option")]
        to: Option<Decimal>,
        /// The tier's markup.
        percent: Percent,
    },
    /// A labour rate, times the multiplier for when the work was done.
    LaborRate {
        /// The trade.
        trade: TradeCode,
        /// The skill level.
        skill_level: SkillLevel,
        /// The regular hourly rate.
        #[serde(with = "rust_decimal::serde::str")]
        hourly: Decimal,
        /// Regular, overtime or after hours.
        time: LaborTime,
        /// The multiplier applied (1 for regular).
        #[serde(with = "rust_decimal::serde::str")]
        multiplier: Decimal,
    },
    /// A price given by the user for this line.
    Custom,
}

/// One priced line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PricedLine {
    /// The item and revision it was priced from; `None` for a custom line.
    pub item: Option<ItemRef>,
    /// Its kind (decides its taxes).
    pub kind: ItemKind,
    /// What the customer reads.
    pub description: Name,
    /// How many units.
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: Decimal,
    /// The unit, for materials and equipment (`hour` for labour).
    pub unit: Option<Unit>,
    /// The exact unit price (not rounded).
    pub unit_price: Money,
    /// `quantity × unit price`, rounded to the minor unit.
    pub line_total: Money,
    /// How the unit price was found.
    pub rule: PricingRule,
    /// Waived for a member: the unit price is zero and this says what it would have been.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waived: Option<Waiver>,
}

/// A trip fee waived for a member: the agreement whose plan waives it and the unit price the
/// line had before (the customer sees what membership saved).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Waiver {
    /// The agreement.
    pub agreement_id: AgreementId,
    /// The unit price waived.
    pub unit_price: Money,
}

/// One tax rate applied to a set of lines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaxLine {
    /// The rate's name.
    pub name: Name,
    /// The rate.
    pub percent: Percent,
    /// The kinds it taxed.
    pub taxable: TaxableKinds,
    /// The total of the lines it taxes, less their share of the discount, rounded.
    pub taxable_base: Money,
    /// `taxable base × rate`, rounded.
    pub tax: Money,
}

/// A priced set of lines with its totals: what an estimate option and an invoice hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Quote {
    /// The currency of every amount.
    pub currency: Currency,
    /// The priced lines.
    pub lines: Vec<PricedLine>,
    /// The sum of the line totals.
    pub subtotal: Money,
    /// The discount as asked for.
    pub discount_rule: Option<Discount>,
    /// The discount taken (0 when none).
    pub discount: Money,
    /// The member's discount taken after it, when the customer is a member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_discount: Option<MemberAdjustment>,
    /// One line per tax rate.
    pub tax_lines: Vec<TaxLine>,
    /// The sum of the taxes.
    pub tax_total: Money,
    /// `subtotal − discount − member discount + tax_total`.
    pub total: Money,
    /// Every rounding that changed a value, in the order performed.
    pub roundings: Vec<Rounding>,
}

fn find_item(
    items: &[PricebookItem],
    id: PricebookItemId,
    revision: Option<u32>,
) -> Option<&PricebookItem> {
    items
        .iter()
        .filter(|i| i.id == id && revision.is_none_or(|r| r == i.revision))
        .max_by_key(|i| i.revision)
}

fn check_quantity(path: &str, quantity: Decimal, problems: &mut Vec<FieldError>) {
    let field = format!("{path}.quantity");
    if quantity <= Decimal::ZERO {
        problems.push(FieldError::new(
            field,
            "must_be_positive",
            "quantity must be greater than 0",
        ));
    } else if quantity > Decimal::from(1_000_000) {
        problems.push(FieldError::new(
            field,
            "too_large",
            "quantity must be at most 1000000",
        ));
    } else if quantity.normalize().scale() > 4 {
        problems.push(FieldError::new(
            field,
            "too_many_decimals",
            "quantity has at most 4 decimal places",
        ));
    }
}

/// What a line source resolves to: the item reference, kind, description, unit, unit price,
/// rule, and whether the item is a trip fee.
type Priced = (
    Option<ItemRef>,
    ItemKind,
    Name,
    Option<Unit>,
    Money,
    PricingRule,
    bool,
);

/// The unit price and rule for one line, or the problems with it.
fn unit_price(
    ctx: &PricingContext<'_>,
    path: &str,
    line: &QuoteLine,
    problems: &mut Vec<FieldError>,
) -> Option<Priced> {
    let before = problems.len();
    let priced = match &line.source {
        LineSource::Custom {
            description,
            unit_price,
            kind,
        } => {
            check_price(
                &format!("{path}.unitPrice"),
                unit_price,
                ctx.currency,
                problems,
            );
            Some((
                None,
                *kind,
                description.clone(),
                None,
                *unit_price,
                PricingRule::Custom,
                false,
            ))
        }
        LineSource::Item {
            item_id,
            revision,
            skill_level,
            labor_time,
        } => {
            let field = format!("{path}.itemId");
            let Some(item) = find_item(ctx.items, *item_id, *revision) else {
                problems.push(FieldError::new(
                    field,
                    "not_found",
                    match revision {
                        Some(r) => format!("no pricebook item {item_id} at revision {r}"),
                        None => format!("no pricebook item {item_id}"),
                    },
                ));
                return None;
            };
            if item.archived {
                problems.push(FieldError::new(
                    field.clone(),
                    "item_archived",
                    "an archived item cannot be quoted",
                ));
            }
            let is_labor = item.kind() == ItemKind::Labor;
            if !is_labor {
                for (name, given) in [
                    ("skillLevel", skill_level.is_some()),
                    ("laborTime", labor_time.is_some()),
                ] {
                    if given {
                        problems.push(FieldError::new(
                            format!("{path}.{name}"),
                            "not_applicable",
                            format!("only labour lines take a {name}"),
                        ));
                    }
                }
            }
            let (unit, price, rule) = match &item.details {
                ItemDetails::Service { price, .. } => (None, *price, PricingRule::ExplicitPrice),
                ItemDetails::Equipment { unit, rate } => {
                    (Some(unit.clone()), *rate, PricingRule::ExplicitPrice)
                }
                ItemDetails::Material {
                    unit,
                    cost,
                    pricing,
                    ..
                } => {
                    let (price, rule) = match pricing {
                        MaterialPricing::Explicit { price } => (*price, PricingRule::ExplicitPrice),
                        MaterialPricing::Markup { percent } => (
                            marked_up(cost, *percent),
                            PricingRule::ItemMarkup {
                                cost: cost.amount(),
                                percent: *percent,
                            },
                        ),
                        MaterialPricing::Tiered => match ctx.markup.for_cost(cost.amount()) {
                            Some(tier) => (
                                marked_up(cost, tier.percent),
                                PricingRule::MarkupTier {
                                    cost: cost.amount(),
                                    from: tier.from,
                                    to: tier.to,
                                    percent: tier.percent,
                                },
                            ),
                            None => {
                                problems.push(FieldError::new(
                                    field.clone(),
                                    "no_markup_tier",
                                    format!(
                                        "no markup tier covers a cost of {}; set the markup tiers or give the material a price",
                                        cost.amount()
                                    ),
                                ));
                                return None;
                            }
                        },
                    };
                    (Some(unit.clone()), price, rule)
                }
                ItemDetails::Labor {
                    trade,
                    rates,
                    overtime_multiplier,
                    after_hours_multiplier,
                } => {
                    let Some(level) = skill_level else {
                        problems.push(FieldError::new(
                            format!("{path}.skillLevel"),
                            "required",
                            "a labour line names the skill level whose rate applies",
                        ));
                        return None;
                    };
                    let Some(rate) = rates.iter().find(|r| r.skill_level == *level) else {
                        problems.push(FieldError::new(
                            format!("{path}.skillLevel"),
                            "no_rate_for_skill_level",
                            format!("{} has no rate for skill level {}", item.name, level.get()),
                        ));
                        return None;
                    };
                    let time = labor_time.unwrap_or_default();
                    let multiplier = match time {
                        LaborTime::Regular => Decimal::ONE,
                        LaborTime::Overtime => *overtime_multiplier,
                        LaborTime::AfterHours => *after_hours_multiplier,
                    };
                    let Ok(price) = rate.hourly.checked_mul(multiplier) else {
                        problems.push(FieldError::invalid(
                            field,
                            MoneyError::Overflow.to_invalid(),
                        ));
                        return None;
                    };
                    (
                        // Invariant: "hour" is 4 lower-case ASCII letters, a valid unit.
                        Unit::parse("hour").ok(),
                        price,
                        PricingRule::LaborRate {
                            trade: trade.clone(),
                            skill_level: *level,
                            hourly: rate.hourly.amount(),
                            time,
                            multiplier,
                        },
                    )
                }
            };
            if price.currency() != ctx.currency {
                problems.push(FieldError::new(
                    field,
                    "currency_mismatch",
                    format!(
                        "the item is priced in {}, not {}",
                        price.currency().code(),
                        ctx.currency.code()
                    ),
                ));
            }
            Some((
                Some(item.item_ref()),
                item.kind(),
                item.name.clone(),
                unit,
                price,
                rule,
                matches!(item.details, ItemDetails::Service { trip_fee: true, .. }),
            ))
        }
    };
    priced.filter(|_| problems.len() == before)
}

/// `cost × (1 + percent / 100)`, exact. Within range: costs are at most [`MAX_AMOUNT`] and
/// percentages at most 1000.
fn marked_up(cost: &Money, percent: Percent) -> Money {
    Money::new(
        cost.amount() + cost.amount() * percent.fraction(),
        cost.currency(),
    )
}

/// Prices `request` against `ctx`: each line's unit price by its rule, line totals, discount,
/// taxes and total, with every rounding recorded (see the module docs). Returns every problem
/// with its path (`lines[2].quantity` `must_be_positive`) instead of a partial quote.
pub fn quote(ctx: &PricingContext<'_>, request: &QuoteRequest) -> Result<Quote, Vec<FieldError>> {
    let mut problems = Vec::new();
    if request.lines.is_empty() {
        problems.push(FieldError::new(
            "lines",
            "required",
            "a quote has at least one line",
        ));
    }
    if request.lines.len() > MAX_LINES {
        problems.push(FieldError::new(
            "lines",
            "too_many",
            format!("a quote has at most {MAX_LINES} lines"),
        ));
        return Err(problems);
    }
    let mut roundings = Vec::new();
    let mut lines = Vec::with_capacity(request.lines.len());
    for (i, line) in request.lines.iter().enumerate() {
        let path = format!("lines[{i}]");
        let before = problems.len();
        check_quantity(&path, line.quantity, &mut problems);
        let priced = unit_price(ctx, &path, line, &mut problems);
        let Some((item, kind, name, unit, unit_price, rule, trip_fee)) = priced else {
            continue;
        };
        if problems.len() != before {
            continue;
        }
        let waived = ctx
            .trip_fee_waived_by
            .filter(|_| trip_fee)
            .map(|agreement_id| Waiver {
                agreement_id,
                unit_price,
            });
        let unit_price = match waived {
            Some(_) => Money::zero(ctx.currency),
            None => unit_price,
        };
        let exact = match unit_price.checked_mul(line.quantity) {
            Ok(exact) => exact,
            Err(e) => {
                problems.push(FieldError::invalid(path, e.to_invalid()));
                continue;
            }
        };
        let line_total = exact.round_logged(format!("{path}.lineTotal"), &mut roundings);
        lines.push(PricedLine {
            item,
            kind,
            description: line.description.clone().unwrap_or(name),
            quantity: line.quantity,
            unit,
            unit_price,
            line_total,
            rule,
            waived,
        });
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let taxes: Vec<TaxBasis> = ctx
        .taxes
        .iter()
        .map(|rate| TaxBasis {
            name: rate.name.clone(),
            percent: rate.percent,
            taxable: rate.taxable,
        })
        .collect();
    summarize(
        ctx.currency,
        lines,
        request.discount.as_ref(),
        ctx.member.as_ref(),
        &taxes,
        roundings,
    )
}

/// What a tax rate contributes to a quote: its name, rate and the kinds it taxes (a
/// [`TaxRate`] without its jurisdiction, or an invoice's [`TaxLine`] without its amounts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaxBasis {
    /// The rate's name.
    pub name: Name,
    /// The rate.
    pub percent: Percent,
    /// What it taxes.
    pub taxable: TaxableKinds,
}

/// Totals for lines that are already priced (line totals rounded), by the same rules and
/// rounding points as [`quote`]: how a credit note prices part of an invoice again.
pub fn summarize(
    currency: Currency,
    lines: Vec<PricedLine>,
    discount_rule: Option<&Discount>,
    member: Option<&MemberDiscount>,
    taxes: &[TaxBasis],
    mut roundings: Vec<Rounding>,
) -> Result<Quote, Vec<FieldError>> {
    let mut problems = Vec::new();
    // Invariant: every line total is in `currency` (checked when priced) and at most
    // MAX_AMOUNT × 1,000,000 × MAX_LINES = 1e21, far inside Decimal's 7.9e28.
    let subtotal = Money::new(lines.iter().map(|l| l.line_total.amount()).sum(), currency).round();
    let discount = match discount_rule {
        None => Money::zero(currency),
        Some(Discount::Amount { amount }) => {
            let field = "discount.amount";
            if amount.currency() != currency {
                problems.push(FieldError::invalid(
                    field,
                    MoneyError::CurrencyMismatch {
                        left: currency.code(),
                        right: amount.currency().code(),
                    }
                    .to_invalid(),
                ));
            } else if amount.is_negative() {
                problems.push(FieldError::new(
                    field,
                    "must_not_be_negative",
                    "a discount must not be negative",
                ));
            } else if let Err(e) = amount.require_minor_unit() {
                problems.push(FieldError::invalid(field, e.to_invalid()));
            } else if amount.amount() > subtotal.amount() {
                problems.push(FieldError::new(
                    field,
                    "exceeds_subtotal",
                    format!("the discount is more than the subtotal of {subtotal}"),
                ));
            }
            amount.round()
        }
        Some(Discount::Percent { percent }) => {
            if percent.value() > Decimal::ONE_HUNDRED {
                problems.push(FieldError::new(
                    "discount.percent",
                    "out_of_range",
                    "a discount is at most 100 %",
                ));
            }
            Money::new(subtotal.amount() * percent.fraction(), currency)
                .round_logged("discount", &mut roundings)
        }
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    // At most 100 % of what the discount left: never more than the subtotal in all.
    let member_discount = member.map(|rule| MemberAdjustment {
        rule: *rule,
        amount: Money::new(
            (subtotal.amount() - discount.amount()) * rule.percent.fraction().min(Decimal::ONE),
            currency,
        )
        .round_logged("memberDiscount", &mut roundings),
    });
    let reductions =
        discount.amount() + member_discount.map_or(Decimal::ZERO, |m| m.amount.amount());
    let mut tax_lines = Vec::with_capacity(taxes.len());
    for (i, rate) in taxes.iter().enumerate() {
        let gross: Decimal = lines
            .iter()
            .filter(|l| rate.taxable.taxes(l.kind))
            .map(|l| l.line_total.amount())
            .sum();
        let base = if reductions.is_zero() || subtotal.is_zero() {
            Money::new(gross, currency).round()
        } else {
            let share = reductions * gross / subtotal.amount();
            Money::new(gross - share, currency)
                .round_logged(format!("taxLines[{i}].taxableBase"), &mut roundings)
        };
        let tax = Money::new(base.amount() * rate.percent.fraction(), currency)
            .round_logged(format!("taxLines[{i}].tax"), &mut roundings);
        tax_lines.push(TaxLine {
            name: rate.name.clone(),
            percent: rate.percent,
            taxable: rate.taxable,
            taxable_base: base,
            tax,
        });
    }
    let tax_total = Money::new(tax_lines.iter().map(|t| t.tax.amount()).sum(), currency).round();
    let total = Money::new(
        subtotal.amount() - reductions + tax_total.amount(),
        currency,
    )
    .round_logged("total", &mut roundings);
    Ok(Quote {
        currency,
        lines,
        subtotal,
        discount_rule: discount_rule.cloned(),
        discount,
        member_discount,
        tax_lines,
        tax_total,
        total,
        roundings,
    })
}

impl Quote {
    /// A readable breakdown, one line per priced line, then the totals and the roundings; used
    /// by snapshot tests and handy in logs.
    pub fn breakdown(&self) -> String {
        let mut out = String::new();
        for (i, l) in self.lines.iter().enumerate() {
            let item = l
                .item
                .map(|r| format!(" item@r{}", r.revision))
                .unwrap_or_default();
            let unit = l.unit.as_ref().map(|u| format!(" {u}")).unwrap_or_default();
            let waived = l
                .waived
                .map(|w| format!(", {} waived by {}", w.unit_price.amount(), w.agreement_id))
                .unwrap_or_default();
            out.push_str(&format!(
                "lines[{i}] {} {}{item}: {}{unit} × {} = {}  [{}{waived}]\n",
                l.kind,
                l.description,
                l.quantity,
                l.unit_price.amount(),
                l.line_total.amount(),
                rule_text(&l.rule),
            ));
        }
        out.push_str(&format!("subtotal {}\n", self.subtotal.amount()));
        out.push_str(&format!("discount {}\n", self.discount.amount()));
        if let Some(m) = &self.member_discount {
            out.push_str(&format!(
                "member discount {} ({}) {}\n",
                m.rule.percent,
                m.rule.agreement_id,
                m.amount.amount()
            ));
        }
        for t in &self.tax_lines {
            out.push_str(&format!(
                "tax {} {} on {} = {}\n",
                t.name,
                t.percent,
                t.taxable_base.amount(),
                t.tax.amount()
            ));
        }
        out.push_str(&format!(
            "total {} {}\n",
            self.total.amount(),
            self.currency.code()
        ));
        for r in &self.roundings {
            out.push_str(&format!("rounded {}: {} → {}\n", r.at, r.before, r.after));
        }
        out
    }
}

fn rule_text(rule: &PricingRule) -> String {
    match rule {
        PricingRule::ExplicitPrice => "explicit price".into(),
        PricingRule::ItemMarkup { cost, percent } => format!("cost {cost} + item markup {percent}"),
        PricingRule::MarkupTier {
            cost,
            from,
            to,
            percent,
        } => format!(
            "cost {cost} + tier [{from}, {}) markup {percent}",
            to.map_or("∞".to_owned(), |t| t.to_string())
        ),
        PricingRule::LaborRate {
            trade,
            skill_level,
            hourly,
            time,
            multiplier,
        } => format!(
            "{trade} level {} at {hourly}/h × {multiplier} ({})",
            skill_level.get(),
            time.as_str()
        ),
        PricingRule::Custom => "custom".into(),
    }
}

pub mod import;

#[cfg(test)]
mod tests;
