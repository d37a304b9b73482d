//! Tests of the procurement rules, with property tests of the reorder quantity, the purchase
//! order's life and the three-way match.
use super::*;

use proptest::prelude::*;

use crate::org::Currency;

fn d(raw: &str) -> Decimal {
    raw.parse().expect("a decimal")
}

fn usd(raw: &str) -> Money {
    Money::new(d(raw), Currency::parse("USD").expect("listed"))
}

#[test]
fn levels_are_ordered_and_bounded() {
    assert!(ReorderLevel::new(d("2"), d("10")).is_ok());
    assert!(ReorderLevel::new(d("0"), d("0")).is_ok());
    for (min, max, code) in [
        ("5", "4", "max_below_min"),
        ("-1", "4", "must_not_be_negative"),
        ("1", "1.00001", "out_of_range"),
    ] {
        let got = ReorderLevel::new(d(min), d(max)).map_err(|e| e.code);
        assert_eq!(got, Err(code), "{min}..{max}");
    }
}

#[test]
fn orders_up_to_max_in_whole_packs() {
    let level = ReorderLevel::new(d("4"), d("10")).expect("valid");
    assert_eq!(
        reorder_quantity(level, d("4"), None),
        None,
        "at min: enough"
    );
    assert_eq!(
        reorder_quantity(level, d("3"), None).map(Quantity::get),
        Some(d("7"))
    );
    let pack = Quantity::parse(d("6")).ok();
    assert_eq!(
        reorder_quantity(level, d("3"), pack).map(Quantity::get),
        Some(d("12")),
        "7 short: two packs of 6"
    );
    // Below zero (where negative stock is allowed): the shortfall is ordered too.
    assert_eq!(
        reorder_quantity(level, d("-2"), None).map(Quantity::get),
        Some(d("12"))
    );
    // A point of 0..0 never orders.
    let off = ReorderLevel::new(d("0"), d("0")).expect("valid");
    assert_eq!(reorder_quantity(off, d("0"), None), None);
}

proptest! {
    /// Below the minimum, an order brings the position to at least the maximum, by less than a
    /// pack more; at or above it, nothing is ordered.
    #[test]
    fn reorder_reaches_max_by_less_than_a_pack(
        min in 0u32..500, extra in 0u32..500, position in -200i32..1000, pack in proptest::option::of(1u32..50),
    ) {
        let level = ReorderLevel::new(Decimal::from(min), Decimal::from(min + extra)).expect("valid");
        let pack = pack.map(|p| Quantity::parse(Decimal::from(p)).expect("positive"));
        let position = Decimal::from(position);
        match reorder_quantity(level, position, pack) {
            None => prop_assert!(position >= level.min || level.max == position),
            Some(q) => {
                prop_assert!(position < level.min);
                let after = position + q.get();
                prop_assert!(after >= level.max);
                let step = pack.map_or(Decimal::ONE, Quantity::get);
                prop_assert!(after - level.max < step || pack.is_none() && after == level.max);
                if let Some(p) = pack {
                    prop_assert!((q.get() / p.get()).fract().is_zero(), "whole packs");
                }
            }
        }
    }

    /// Any sequence of actions keeps a purchase order in its documented life: nothing leaves
    /// cancelled or closed, a cancel needs nothing received, and only a submitted order receives.
    #[test]
    fn purchase_orders_follow_their_life(actions in proptest::collection::vec(0u8..5, 0..20)) {
        let mut status = PurchaseOrderStatus::Draft;
        let mut received_any = false;
        for a in actions {
            let action = match a {
                0 => PurchaseOrderAction::Submit,
                1 => PurchaseOrderAction::Receive,
                2 => PurchaseOrderAction::Bill,
                3 => PurchaseOrderAction::Cancel,
                _ => PurchaseOrderAction::Close,
            };
            match status.decide(action) {
                Ok(next) => {
                    prop_assert!(!matches!(status, PurchaseOrderStatus::Cancelled));
                    if action == PurchaseOrderAction::Cancel {
                        prop_assert!(!received_any);
                    }
                    if action == PurchaseOrderAction::Receive {
                        let receiving = matches!(status, PurchaseOrderStatus::Submitted | PurchaseOrderStatus::PartiallyReceived);
                        prop_assert!(receiving);
                        received_any = true;
                    }
                    if status == PurchaseOrderStatus::Closed {
                        prop_assert_eq!(next, PurchaseOrderStatus::Closed);
                    }
                    status = next;
                }
                Err(e) => prop_assert_eq!(e.code(), "PURCHASE_ORDER_STATE"),
            }
        }
    }

    /// A bill matches exactly when it bills what was received, no more than ordered, at the
    /// order's price.
    #[test]
    fn three_way_match_flags_every_difference(
        ordered in 1u32..100, received in 0u32..120, billed in 0u32..120, cost in 1u32..500, billed_cost in 1u32..500,
    ) {
        let (o, r, b) = (Decimal::from(ordered), Decimal::from(received), Decimal::from(billed));
        let found = match_line(o, r, b, usd(&cost.to_string()), usd(&billed_cost.to_string()));
        let clean = b == r && b <= o && cost == billed_cost;
        prop_assert_eq!(found.is_empty(), clean);
        let price = found.iter().any(|m| matches!(m, Mismatch::Price { .. }));
        let quantity = found.iter().any(|m| matches!(m, Mismatch::Quantity { .. }));
        prop_assert_eq!(price, cost != billed_cost);
        prop_assert_eq!(quantity, b != r);
    }
}

#[test]
fn receipts_beyond_the_order_are_refused_unless_allowed() {
    let five = Quantity::parse(d("5")).expect("positive");
    assert_eq!(receive_line(1, d("10"), d("5"), five, false), Ok(d("10")));
    let err = receive_line(1, d("10"), d("6"), five, false).expect_err("over");
    assert_eq!(err.code(), "OVER_RECEIPT");
    assert_eq!(receive_line(1, d("10"), d("6"), five, true), Ok(d("11")));
    assert_eq!(
        status_after_receipt(&[(d("10"), d("11")), (d("2"), d("2"))]),
        PurchaseOrderStatus::Received
    );
    assert_eq!(
        status_after_receipt(&[(d("10"), d("9")), (d("2"), d("2"))]),
        PurchaseOrderStatus::PartiallyReceived
    );
}
