//! Inventory: stock of the pricebook's materials at the organization's locations (warehouses,
//! trucks), kept by an append-only ledger.
//!
//! Every change of stock is a [`Movement`] posted at one location: a receipt, a transfer out or
//! in, a consumption on a job, a return from a job, an adjustment (a cycle count's difference,
//! damage), or a reservation for a job and its release, each with who and why in the store's
//! ledger row. [`post`] decides a
//! movement against the location's running [`Balance`] and returns the next balance; the store
//! writes the ledger row and the balance row in one transaction, so the balance is always the
//! sum of the ledger and is never recomputed from history on read.
//!
//! **Never oversell.** What is available is what is on hand less what is reserved for jobs. A
//! movement that takes stock (a transfer out, a consumption) is refused with
//! [`InventoryError::InsufficientStock`] (and the quantity available) when it would take more
//! than is available, unless the location allows negative stock; then it is posted and the
//! balance is flagged ([`Balance::is_negative`]). A reservation holds available stock for a job
//! and is never taken beyond what is available, anywhere. A negative adjustment records stock
//! that is not there (a count, damage): it may take held stock, never below zero unless
//! allowed, and the store then releases what the jobs can no longer hold.
//!
//! **Quantities** are decimals with at most [`QUANTITY_SCALE`] places, more than 0 and at most
//! [`MAX_QUANTITY`] per movement; no float anywhere.
//!
//! **Cost** is a moving average per item across the organization ([`ItemCost`]), updated by
//! receipts: `(on hand × average + quantity × unit cost) ÷ (on hand + quantity)`, kept exact to
//! [`COST_SCALE`] places. Transfers move stock without changing its cost; a consumption records
//! the average at that moment, so a job's material cost is known when it is used. Stock in
//! transit between two locations stays in the average (it was paid for). Per
//! organization rather than per location, because a part costs what was paid for it wherever it
//! sits: a transfer to a truck must not change the job's margin.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub mod procurement;

use crate::Invalid;
use crate::ids::JobId;
use crate::money::Money;
use crate::org::Currency;

/// The most decimal places of a quantity.
pub const QUANTITY_SCALE: u32 = 4;
/// The largest quantity one movement moves.
pub const MAX_QUANTITY: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 0);
/// The decimal places an average cost is kept to.
pub const COST_SCALE: u32 = 6;
/// The most serial numbers one movement names.
pub const MAX_SERIALS: usize = 1000;

/// A quantity moved: more than 0, at most [`MAX_QUANTITY`], at most [`QUANTITY_SCALE`] places.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "Decimal", into = "Decimal")]
pub struct Quantity(Decimal);

impl Quantity {
    /// Accepts a positive quantity within the bounds.
    pub fn parse(value: Decimal) -> Result<Self, Invalid> {
        if value <= Decimal::ZERO {
            Err(Invalid::new(
                "must_be_positive",
                "a quantity is more than 0",
            ))
        } else if value > MAX_QUANTITY {
            Err(Invalid::new(
                "too_large",
                format!("a quantity is at most {MAX_QUANTITY}"),
            ))
        } else if value.normalize().scale() > QUANTITY_SCALE {
            Err(Invalid::new(
                "too_many_decimals",
                format!("a quantity has at most {QUANTITY_SCALE} decimal places"),
            ))
        } else {
            Ok(Self(value.normalize()))
        }
    }

    /// The value.
    pub fn get(self) -> Decimal {
        self.0
    }
}

impl TryFrom<Decimal> for Quantity {
    type Error = String;
    fn try_from(value: Decimal) -> Result<Self, Self::Error> {
        Self::parse(value).map_err(|e| e.message)
    }
}

impl From<Quantity> for Decimal {
    fn from(q: Quantity) -> Self {
        q.0
    }
}

/// A change of stock at one location.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum Movement {
    /// Stock came in (from a supplier, or counted in for the first time).
    Receipt {
        /// How much.
        quantity: Quantity,
        /// What one unit cost.
        unit_cost: Money,
    },
    /// Stock left for another location.
    TransferOut {
        /// How much.
        quantity: Quantity,
    },
    /// Stock arrived from another location.
    TransferIn {
        /// How much.
        quantity: Quantity,
    },
    /// Stock was used on a job.
    Consumption {
        /// How much.
        quantity: Quantity,
        /// The job.
        job_id: JobId,
    },
    /// Stock came back from a job.
    Return {
        /// How much.
        quantity: Quantity,
        /// The job.
        job_id: JobId,
    },
    /// A correction: a cycle count's difference, damage, loss.
    Adjustment {
        /// More (positive) or less (negative) on hand; never 0.
        #[serde(with = "rust_decimal::serde::str")]
        delta: Decimal,
    },
    /// Stock held for a job: still on hand, no longer available to others.
    Reservation {
        /// How much.
        quantity: Quantity,
        /// The job.
        job_id: JobId,
    },
    /// Held stock let go (or drawn on by the job's own consumption).
    Release {
        /// How much.
        quantity: Quantity,
        /// The job.
        job_id: JobId,
    },
}

impl Movement {
    /// The change of on-hand stock it makes: positive in, negative out.
    pub fn delta(&self) -> Decimal {
        match self {
            Self::Receipt { quantity, .. }
            | Self::TransferIn { quantity }
            | Self::Return { quantity, .. } => quantity.get(),
            Self::TransferOut { quantity } | Self::Consumption { quantity, .. } => -quantity.get(),
            Self::Adjustment { delta } => *delta,
            Self::Reservation { .. } | Self::Release { .. } => Decimal::ZERO,
        }
    }

    /// The change of reserved stock it makes.
    pub fn reserved_delta(&self) -> Decimal {
        match self {
            Self::Reservation { quantity, .. } => quantity.get(),
            Self::Release { quantity, .. } => -quantity.get(),
            _ => Decimal::ZERO,
        }
    }

    /// The job it is for, if any.
    pub fn job_id(&self) -> Option<JobId> {
        match self {
            Self::Consumption { job_id, .. }
            | Self::Return { job_id, .. }
            | Self::Reservation { job_id, .. }
            | Self::Release { job_id, .. } => Some(*job_id),
            _ => None,
        }
    }

    /// The snake_case name of its kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Receipt { .. } => "receipt",
            Self::TransferOut { .. } => "transfer_out",
            Self::TransferIn { .. } => "transfer_in",
            Self::Consumption { .. } => "consumption",
            Self::Return { .. } => "return",
            Self::Adjustment { .. } => "adjustment",
            Self::Reservation { .. } => "reservation",
            Self::Release { .. } => "release",
        }
    }
}

/// The stock of one item at one location.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Balance {
    /// What is there.
    #[serde(with = "rust_decimal::serde::str")]
    pub on_hand: Decimal,
    /// What of it is held for jobs.
    #[serde(default, with = "rust_decimal::serde::str")]
    pub reserved: Decimal,
}

impl Balance {
    /// What may still be taken: on hand less reserved, never less than 0.
    pub fn available(&self) -> Decimal {
        (self.on_hand - self.reserved).max(Decimal::ZERO)
    }

    /// Whether the location is below zero (only where negative stock is allowed).
    pub fn is_negative(&self) -> bool {
        self.on_hand < Decimal::ZERO
    }
}

/// Why a movement was refused. A refusal changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InventoryError {
    /// Taking this much would take the location below zero.
    #[error("only {available} is available at the location; {requested} was asked for")]
    InsufficientStock {
        /// What is available.
        available: Decimal,
        /// What was asked for.
        requested: Decimal,
    },
    /// An adjustment of 0, or one whose size is out of bounds.
    #[error(
        "an adjustment changes the quantity on hand by a non-zero amount of at most {MAX_QUANTITY}, with at most {QUANTITY_SCALE} decimal places"
    )]
    InvalidAdjustment,
    /// A release of more than is held.
    #[error("only {reserved} is reserved; {requested} cannot be released")]
    ReleaseExceedsReserved {
        /// What is reserved.
        reserved: Decimal,
        /// What was asked for.
        requested: Decimal,
    },
    /// A receipt's cost is negative, or not in the organization's currency.
    #[error("a unit cost is at least 0, in {currency}")]
    InvalidCost {
        /// The organization's currency.
        currency: &'static str,
    },
}

impl InventoryError {
    /// The stable code reported to clients.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InsufficientStock { .. } => "INSUFFICIENT_STOCK",
            Self::ReleaseExceedsReserved { .. } => "RELEASE_EXCEEDS_RESERVED",
            Self::InvalidAdjustment | Self::InvalidCost { .. } => "VALIDATION_FAILED",
        }
    }
}

/// Posts `movement` on `balance` at a location that does (or does not) allow negative stock.
pub fn post(
    balance: &Balance,
    movement: &Movement,
    allow_negative: bool,
) -> Result<Balance, InventoryError> {
    if let Movement::Adjustment { delta } = movement
        && (delta.is_zero()
            || delta.abs() > MAX_QUANTITY
            || delta.normalize().scale() > QUANTITY_SCALE)
    {
        return Err(InventoryError::InvalidAdjustment);
    }
    let delta = movement.delta();
    let reserved_delta = movement.reserved_delta();
    let next = Balance {
        on_hand: balance.on_hand + delta,
        reserved: balance.reserved + reserved_delta,
    };
    if next.reserved < Decimal::ZERO {
        return Err(InventoryError::ReleaseExceedsReserved {
            reserved: balance.reserved,
            requested: -reserved_delta,
        });
    }
    // An adjustment records what is (or is not) there: it may take held stock too (the store
    // then releases what the jobs can no longer hold), never below zero unless allowed.
    if let Movement::Adjustment { .. } = movement {
        let there = balance.on_hand.max(Decimal::ZERO);
        if -delta > there && !allow_negative {
            return Err(InventoryError::InsufficientStock {
                available: there,
                requested: -delta,
            });
        }
        return Ok(next);
    }
    // What it takes from what others may use: a take, or a hold (never beyond what is there,
    // even where negative stock is allowed: nothing can be held that is not on hand).
    let taken = (-delta).max(reserved_delta);
    if taken > balance.available()
        && (reserved_delta > Decimal::ZERO || (delta < Decimal::ZERO && !allow_negative))
    {
        return Err(InventoryError::InsufficientStock {
            available: balance.available(),
            requested: taken,
        });
    }
    Ok(next)
}

/// How a material's units are told apart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tracking {
    /// They are not: a quantity is all there is.
    #[default]
    None,
    /// Each unit has its own serial number (a water heater), which follows it from receipt to
    /// the job and the property it is installed at.
    Serial,
    /// Units arrive in lots (a batch of fittings); a receipt names its lot, and the movements
    /// after it may, so a recall finds the jobs.
    Lot,
}

impl Tracking {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Serial => "serial",
            Self::Lot => "lot",
        }
    }

    /// Parses [`Self::as_str`].
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::None, Self::Serial, Self::Lot]
            .into_iter()
            .find(|t| t.as_str() == raw)
    }
}

/// A serial or lot number: 1 to 64 characters, letters, digits and `._/-`, starting with a
/// letter or digit.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TrackingCode(String);

impl TrackingCode {
    /// The pattern a code matches.
    pub const PATTERN: &'static str = "^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$";

    /// Accepts a code of the documented shape.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && raw
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Invalid::new(
                "invalid",
                "a serial or lot number is 1 to 64 letters, digits and ._/-, starting with a letter or digit",
            ))
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TrackingCode {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value).map_err(|e| e.message)
    }
}

impl From<TrackingCode> for String {
    fn from(c: TrackingCode) -> Self {
        c.0
    }
}

/// What a movement says of the units it moves.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Units {
    /// The serial numbers of the units (a serial-tracked material: one per unit).
    #[serde(default)]
    pub serials: Vec<TrackingCode>,
    /// The lot (a lot-tracked material).
    #[serde(default)]
    pub lot: Option<TrackingCode>,
}

/// Why a movement's units do not fit the material's tracking.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnitsError {
    /// Serial numbers or a lot for a material that is not tracked that way.
    #[error("the material is not tracked by {0}")]
    NotTracked(&'static str),
    /// A serial-tracked movement of a fraction of a unit.
    #[error("a serial-tracked material moves in whole units")]
    Fraction,
    /// Not one serial per unit.
    #[error("{quantity} units need {quantity} serial numbers; {given} were given")]
    SerialCount {
        /// The units moved.
        quantity: Decimal,
        /// The serials given.
        given: usize,
    },
    /// A serial listed twice.
    #[error("serial {0} is listed twice")]
    Duplicate(String),
    /// A receipt of a lot-tracked material without its lot.
    #[error("a receipt of a lot-tracked material names its lot")]
    LotRequired,
}

impl UnitsError {
    /// The field at fault.
    pub fn field(&self) -> &'static str {
        match self {
            Self::NotTracked("lot") | Self::LotRequired => "lot",
            Self::Fraction => "quantity",
            _ => "serials",
        }
    }
}

/// Checks the units of a movement of `quantity` of a material tracked by `tracking`; a
/// receipt (`inbound`) of a lot-tracked material must name its lot.
pub fn check_units(
    tracking: Tracking,
    quantity: Decimal,
    units: &Units,
    inbound: bool,
) -> Result<(), UnitsError> {
    if tracking != Tracking::Serial && !units.serials.is_empty() {
        return Err(UnitsError::NotTracked("serial"));
    }
    if tracking != Tracking::Lot && units.lot.is_some() {
        return Err(UnitsError::NotTracked("lot"));
    }
    match tracking {
        Tracking::None => Ok(()),
        Tracking::Lot if inbound && units.lot.is_none() => Err(UnitsError::LotRequired),
        Tracking::Lot => Ok(()),
        Tracking::Serial => {
            if !quantity.fract().is_zero() {
                return Err(UnitsError::Fraction);
            }
            if units.serials.len() > MAX_SERIALS {
                return Err(UnitsError::SerialCount {
                    quantity: quantity.abs(),
                    given: units.serials.len(),
                });
            }
            if Decimal::from(units.serials.len()) != quantity.abs() {
                return Err(UnitsError::SerialCount {
                    quantity: quantity.abs(),
                    given: units.serials.len(),
                });
            }
            let mut seen = std::collections::BTreeSet::new();
            for s in &units.serials {
                if !seen.insert(s.as_str()) {
                    return Err(UnitsError::Duplicate(s.as_str().to_owned()));
                }
            }
            Ok(())
        }
    }
}

/// The organization-wide moving average cost of an item, and the stock it averages over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemCost {
    /// What is on hand across every location.
    #[serde(with = "rust_decimal::serde::str")]
    pub on_hand: Decimal,
    /// The average cost of one unit, exact to [`COST_SCALE`] places.
    pub average: Money,
}

impl ItemCost {
    /// No stock yet: the average starts at `initial` (the pricebook's cost).
    pub fn new(initial: Money) -> Self {
        Self {
            on_hand: Decimal::ZERO,
            average: initial,
        }
    }

    /// After any movement: receipts move the average; what enters or leaves the organization
    /// changes what is on hand (a transfer does not: stock in transit is still held).
    pub fn after(&self, movement: &Movement) -> Result<Self, InventoryError> {
        let currency = self.average.currency();
        let on_hand = match movement {
            Movement::TransferOut { .. } | Movement::TransferIn { .. } => self.on_hand,
            _ => self.on_hand + movement.delta(),
        };
        let Movement::Receipt {
            quantity,
            unit_cost,
        } = movement
        else {
            return Ok(Self { on_hand, ..*self });
        };
        check_cost(unit_cost, currency)?;
        // Stock below zero (allowed somewhere) has no cost to average with: the receipt's
        // cost stands for what is now on hand.
        let held = self.on_hand.max(Decimal::ZERO);
        let total = held + quantity.get();
        let average = (held * self.average.amount() + quantity.get() * unit_cost.amount()) / total;
        Ok(Self {
            on_hand,
            average: Money::new(
                average.round_dp_with_strategy(
                    COST_SCALE,
                    rust_decimal::RoundingStrategy::MidpointAwayFromZero,
                ),
                currency,
            ),
        })
    }

    /// The cost of `quantity` at the average, exact to [`COST_SCALE`] places (not rounded to
    /// the minor unit: a job's cost is summed first).
    pub fn cost_of(&self, quantity: Quantity) -> Money {
        Money::new(
            (self.average.amount() * quantity.get()).round_dp_with_strategy(
                COST_SCALE,
                rust_decimal::RoundingStrategy::MidpointAwayFromZero,
            ),
            self.average.currency(),
        )
    }
}

fn check_cost(cost: &Money, currency: Currency) -> Result<(), InventoryError> {
    if cost.currency() != currency || cost.is_negative() {
        Err(InventoryError::InvalidCost {
            currency: currency.code(),
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
