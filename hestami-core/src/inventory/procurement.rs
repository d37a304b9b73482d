//! Procurement rules: when a location needs stock and how much to order, a purchase order's
//! life, and the three-way match of a supplier's bill against what was ordered and received.
//!
//! - **Reorder**: a location's *position* is what is available there plus what is on its way
//!   (open purchase order lines to it, transfers to it not yet received). Below the reorder
//!   point's minimum, [`reorder_quantity`] orders up to its maximum, in whole packs of the
//!   supplier's pack size (so the order may end a little above the maximum, never below it).
//! - **Purchase orders** go `draft → submitted → partially_received → received → closed`, or
//!   `cancelled` before anything is received ([`PurchaseOrderStatus::decide`]). Receiving more
//!   than a line ordered is refused unless the receipt allows it.
//! - **Three-way match** ([`match_line`]): a bill's line is compared with the order (price,
//!   and not more than ordered) and with what was received (quantity).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::Quantity;
use crate::money::Money;

/// A reorder point: keep between `min` and `max` of an item at a location.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReorderLevel {
    /// Below this, reorder.
    #[serde(with = "rust_decimal::serde::str")]
    pub min: Decimal,
    /// Reorder up to this.
    #[serde(with = "rust_decimal::serde::str")]
    pub max: Decimal,
}

impl ReorderLevel {
    /// Accepts `0 ≤ min ≤ max`, each with at most [`super::QUANTITY_SCALE`] places and at most
    /// [`super::MAX_QUANTITY`].
    pub fn new(min: Decimal, max: Decimal) -> Result<Self, crate::Invalid> {
        let (min, max) = (Self::bound(min)?, Self::bound(max)?);
        if max < min {
            return Err(crate::Invalid::new(
                "max_below_min",
                "the maximum is at least the minimum",
            ));
        }
        Ok(Self { min, max })
    }

    /// One bound on its own: 0 to [`super::MAX_QUANTITY`], at most
    /// [`super::QUANTITY_SCALE`] places.
    pub fn bound(value: Decimal) -> Result<Decimal, crate::Invalid> {
        if value.is_sign_negative() && !value.is_zero() {
            return Err(crate::Invalid::new(
                "must_not_be_negative",
                "a reorder level is 0 or more",
            ));
        }
        if value > super::MAX_QUANTITY || value.normalize().scale() > super::QUANTITY_SCALE {
            return Err(crate::Invalid::new(
                "out_of_range",
                format!(
                    "a reorder level is at most {} with at most {} decimal places",
                    super::MAX_QUANTITY,
                    super::QUANTITY_SCALE
                ),
            ));
        }
        Ok(value.normalize())
    }
}

/// What to order for a location whose position (available plus incoming) is `position`: none
/// at or above the minimum; otherwise up to the maximum, rounded up to whole packs of
/// `pack_size` (default 1 unit, any fraction allowed).
pub fn reorder_quantity(
    level: ReorderLevel,
    position: Decimal,
    pack_size: Option<Quantity>,
) -> Option<Quantity> {
    if position >= level.min {
        return None;
    }
    let short = level.max - position;
    let wanted = match pack_size {
        Some(pack) => (short / pack.get()).ceil() * pack.get(),
        None => short,
    };
    Quantity::parse(wanted.min(super::MAX_QUANTITY)).ok()
}

/// Where a purchase order is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PurchaseOrderStatus {
    /// Being written; lines may change.
    Draft,
    /// Sent to the supplier.
    Submitted,
    /// Some of it has arrived.
    PartiallyReceived,
    /// Every line has arrived in full.
    Received,
    /// Done with: nothing more is expected.
    Closed,
    /// Called off before anything arrived.
    Cancelled,
}

/// What is done to a purchase order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PurchaseOrderAction {
    /// Send it to the supplier.
    Submit,
    /// Receive some of its lines.
    Receive,
    /// Record a supplier's bill against it.
    Bill,
    /// Call it off.
    Cancel,
    /// Expect nothing more.
    Close,
}

impl PurchaseOrderStatus {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Submitted => "submitted",
            Self::PartiallyReceived => "partially_received",
            Self::Received => "received",
            Self::Closed => "closed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses [`Self::as_str`].
    pub fn parse(raw: &str) -> Option<Self> {
        [
            Self::Draft,
            Self::Submitted,
            Self::PartiallyReceived,
            Self::Received,
            Self::Closed,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }

    /// Whether it still expects goods or a bill (an open order).
    pub fn is_open(self) -> bool {
        matches!(
            self,
            Self::Draft | Self::Submitted | Self::PartiallyReceived | Self::Received
        )
    }

    /// Whether `action` may be done now; the status it leaves (a receipt's status is then
    /// settled by [`status_after_receipt`]).
    pub fn decide(self, action: PurchaseOrderAction) -> Result<Self, PurchaseOrderError> {
        use PurchaseOrderAction as A;
        let next = match (self, action) {
            (Self::Draft, A::Submit) => Self::Submitted,
            (Self::Submitted | Self::PartiallyReceived, A::Receive) => Self::PartiallyReceived,
            (
                Self::Submitted | Self::PartiallyReceived | Self::Received | Self::Closed,
                A::Bill,
            ) => self,
            (Self::Draft | Self::Submitted, A::Cancel) => Self::Cancelled,
            (Self::Submitted | Self::PartiallyReceived | Self::Received, A::Close) => Self::Closed,
            _ => {
                return Err(PurchaseOrderError::InvalidTransition { from: self, action });
            }
        };
        Ok(next)
    }
}

/// Once lines have been received: `received` when every line has all it ordered.
pub fn status_after_receipt(lines: &[(Decimal, Decimal)]) -> PurchaseOrderStatus {
    if lines.iter().all(|(ordered, received)| received >= ordered) {
        PurchaseOrderStatus::Received
    } else {
        PurchaseOrderStatus::PartiallyReceived
    }
}

/// Why a purchase order refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PurchaseOrderError {
    /// The action does not apply in this status.
    #[error("a {} purchase order cannot be {}", from.as_str(), action_word(*action))]
    InvalidTransition {
        /// The status it is in.
        from: PurchaseOrderStatus,
        /// What was asked.
        action: PurchaseOrderAction,
    },
    /// A receipt of more than a line still expects, without allowing it.
    #[error("line {line} expects {outstanding} more; {requested} is more than that")]
    OverReceipt {
        /// The line's number.
        line: u32,
        /// What it still expects.
        outstanding: Decimal,
        /// What was received.
        requested: Decimal,
    },
}

fn action_word(action: PurchaseOrderAction) -> &'static str {
    match action {
        PurchaseOrderAction::Submit => "submitted",
        PurchaseOrderAction::Receive => "received against",
        PurchaseOrderAction::Bill => "billed",
        PurchaseOrderAction::Cancel => "cancelled",
        PurchaseOrderAction::Close => "closed",
    }
}

impl PurchaseOrderError {
    /// The stable code reported to clients.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidTransition { .. } => "PURCHASE_ORDER_STATE",
            Self::OverReceipt { .. } => "OVER_RECEIPT",
        }
    }
}

/// Checks a receipt of `quantity` on a line that ordered `ordered` and has `received`.
pub fn receive_line(
    line: u32,
    ordered: Decimal,
    received: Decimal,
    quantity: Quantity,
    allow_over: bool,
) -> Result<Decimal, PurchaseOrderError> {
    let outstanding = (ordered - received).max(Decimal::ZERO);
    if quantity.get() > outstanding && !allow_over {
        return Err(PurchaseOrderError::OverReceipt {
            line,
            outstanding,
            requested: quantity.get(),
        });
    }
    Ok(received + quantity.get())
}

/// A difference a bill's line shows against its order and receipts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum Mismatch {
    /// Billed (all bills so far) another quantity than was received.
    Quantity {
        /// Received.
        #[serde(with = "rust_decimal::serde::str")]
        received: Decimal,
        /// Billed.
        #[serde(with = "rust_decimal::serde::str")]
        billed: Decimal,
    },
    /// Billed more than was ordered.
    OverOrdered {
        /// Ordered.
        #[serde(with = "rust_decimal::serde::str")]
        ordered: Decimal,
        /// Billed.
        #[serde(with = "rust_decimal::serde::str")]
        billed: Decimal,
    },
    /// Billed at another unit price than ordered.
    Price {
        /// The order's unit cost.
        ordered: Money,
        /// The bill's.
        billed: Money,
    },
}

/// The three-way match of one line: ordered, received, and billed so far (this bill
/// included) at `billed_cost`. An empty list is a match.
pub fn match_line(
    ordered: Decimal,
    received: Decimal,
    billed: Decimal,
    order_cost: Money,
    billed_cost: Money,
) -> Vec<Mismatch> {
    let mut found = Vec::new();
    if billed != received {
        found.push(Mismatch::Quantity { received, billed });
    }
    if billed > ordered {
        found.push(Mismatch::OverOrdered { ordered, billed });
    }
    if billed_cost != order_cost {
        found.push(Mismatch::Price {
            ordered: order_cost,
            billed: billed_cost,
        });
    }
    found
}

#[cfg(test)]
mod tests;
