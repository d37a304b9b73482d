//! Tests of the stock rules: quantities, never overselling, and the moving average cost, with
//! property tests over any sequence of movements.
use super::*;

use proptest::prelude::*;
use uuid::Uuid;

fn usd() -> Currency {
    Currency::parse("USD").expect("listed")
}

fn q(raw: &str) -> Quantity {
    Quantity::parse(raw.parse().expect("a decimal")).expect("a quantity")
}

fn dollars(raw: &str) -> Money {
    Money::new(raw.parse().expect("a decimal"), usd())
}

fn job() -> JobId {
    JobId::from_uuid(Uuid::from_u128(7))
}

#[test]
fn quantities_are_positive_bounded_and_exact() {
    assert_eq!(q("2.5000").get().to_string(), "2.5");
    for (raw, code) in [
        ("0", "must_be_positive"),
        ("-1", "must_be_positive"),
        ("1.00001", "too_many_decimals"),
        ("1000000001", "too_large"),
    ] {
        let got = Quantity::parse(raw.parse().expect("a decimal")).map_err(|e| e.code);
        assert_eq!(got, Err(code), "{raw}");
    }
}

/// The refusal says what is available; a location that allows negative stock takes it and is
/// flagged.
#[test]
fn stock_is_never_taken_below_zero_unless_allowed() {
    let received = post(
        &Balance::default(),
        &Movement::Receipt {
            quantity: q("3"),
            unit_cost: dollars("10"),
        },
        false,
    )
    .expect("a receipt");
    let use_four = Movement::Consumption {
        quantity: q("4"),
        job_id: job(),
    };
    let refused = post(&received, &use_four, false).expect_err("not enough");
    assert_eq!(refused.code(), "INSUFFICIENT_STOCK");
    assert_eq!(
        refused,
        InventoryError::InsufficientStock {
            available: "3".parse().expect("decimal"),
            requested: "4".parse().expect("decimal"),
        }
    );
    let negative = post(&received, &use_four, true).expect("allowed here");
    assert!(negative.is_negative());
    assert_eq!(negative.available(), Decimal::ZERO);
    // Bringing stock back never needs stock.
    let back = post(
        &negative,
        &Movement::Return {
            quantity: q("1"),
            job_id: job(),
        },
        false,
    )
    .expect("a return");
    assert_eq!(back.on_hand, Decimal::ZERO);
    assert_eq!(
        post(
            &back,
            &Movement::Adjustment {
                delta: Decimal::ZERO
            },
            false
        ),
        Err(InventoryError::InvalidAdjustment)
    );
}

/// Receipts move the average by quantity; transfers and consumption do not; a receipt into
/// negative stock takes its own cost.
#[test]
fn the_average_cost_moves_with_receipts_only() {
    let cost = ItemCost::new(dollars("0"));
    let after = |cost: ItemCost, m: Movement| cost.after(&m).expect("accepted");
    let c = after(
        cost,
        Movement::Receipt {
            quantity: q("10"),
            unit_cost: dollars("3.00"),
        },
    );
    let c = after(
        c,
        Movement::Receipt {
            quantity: q("5"),
            unit_cost: dollars("6.00"),
        },
    );
    assert_eq!(c.average, dollars("4.000000"));
    assert_eq!(c.on_hand.to_string(), "15");
    let c = after(
        c,
        Movement::Consumption {
            quantity: q("15"),
            job_id: job(),
        },
    );
    assert_eq!(c.average, dollars("4.000000"));
    assert_eq!(c.cost_of(q("2.5")), dollars("10.000000"));
    let short = ItemCost {
        on_hand: "-2".parse().expect("decimal"),
        ..c
    };
    let refilled = after(
        short,
        Movement::Receipt {
            quantity: q("3"),
            unit_cost: dollars("7.00"),
        },
    );
    assert_eq!(
        (refilled.average, refilled.on_hand.to_string()),
        (dollars("7.000000"), "1".into())
    );
    let eur = Money::new(Decimal::ONE, Currency::parse("EUR").expect("listed"));
    assert_eq!(
        c.after(&Movement::Receipt {
            quantity: q("1"),
            unit_cost: eur
        })
        .map_err(|e| e.code()),
        Err("VALIDATION_FAILED")
    );
}

fn arb_movement() -> impl Strategy<Value = Movement> {
    let quantity = (1_i64..50_000).prop_map(|n| q(&Decimal::new(n, 2).to_string()));
    prop_oneof![
        (quantity.clone(), 0_i64..100_000).prop_map(|(quantity, cents)| Movement::Receipt {
            quantity,
            unit_cost: Money::new(Decimal::new(cents, 2), usd()),
        }),
        quantity
            .clone()
            .prop_map(|quantity| Movement::TransferOut { quantity }),
        quantity
            .clone()
            .prop_map(|quantity| Movement::TransferIn { quantity }),
        quantity.clone().prop_map(|quantity| Movement::Consumption {
            quantity,
            job_id: job()
        }),
        quantity.clone().prop_map(|quantity| Movement::Return {
            quantity,
            job_id: job()
        }),
        quantity.clone().prop_map(|quantity| Movement::Reservation {
            quantity,
            job_id: job()
        }),
        quantity.prop_map(|quantity| Movement::Release {
            quantity,
            job_id: job()
        }),
        (-50_000_i64..50_000).prop_map(|n| Movement::Adjustment {
            delta: Decimal::new(n, 2)
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// For any sequence of movements: the balance is the sum of the accepted movements, it is
    /// never below zero where negative stock is not allowed, every refusal is the documented
    /// one (with what was available), and the average cost stays between the lowest and the
    /// highest cost ever received (or the initial one).
    #[test]
    fn the_balance_is_the_ledger_and_never_negative(
        movements in prop::collection::vec(arb_movement(), 0..60),
        allow_negative in any::<bool>(),
    ) {
        let mut balance = Balance::default();
        let mut cost = ItemCost::new(Money::new(Decimal::new(500, 2), usd()));
        let mut ledger = Decimal::ZERO;
        let mut reserved = Decimal::ZERO;
        // What the organization holds: transfers move stock, they do not add or remove it.
        let mut held = Decimal::ZERO;
        let (mut low, mut high) = (cost.average.amount(), cost.average.amount());
        for m in &movements {
            match post(&balance, m, allow_negative) {
                Ok(next) => {
                    ledger += m.delta();
                    reserved += m.reserved_delta();
                    if !matches!(m, Movement::TransferOut { .. } | Movement::TransferIn { .. }) {
                        held += m.delta();
                    }
                    balance = next;
                    cost = cost.after(m).expect("a cost in the currency");
                    if let Movement::Receipt { unit_cost, .. } = m {
                        low = low.min(unit_cost.amount());
                        high = high.max(unit_cost.amount());
                    }
                }
                Err(InventoryError::InsufficientStock { available, requested }) => {
                    let holds = matches!(m, Movement::Reservation { .. });
                    prop_assert!(!allow_negative || holds);
                    // An adjustment may take held stock: what is there is its limit.
                    let limit = if matches!(m, Movement::Adjustment { .. }) {
                        balance.on_hand.max(Decimal::ZERO)
                    } else {
                        balance.available()
                    };
                    prop_assert_eq!(available, limit);
                    prop_assert!(requested > available);
                }
                Err(InventoryError::InvalidAdjustment) => {
                    prop_assert_eq!(m, &Movement::Adjustment { delta: Decimal::ZERO });
                }
                Err(InventoryError::ReleaseExceedsReserved { reserved, requested }) => {
                    prop_assert_eq!(reserved, balance.reserved);
                    prop_assert!(requested > reserved);
                }
                Err(e) => prop_assert!(false, "unexpected refusal {e}"),
            }
            prop_assert_eq!(balance.on_hand, ledger);
            prop_assert_eq!(balance.reserved, reserved);
            prop_assert_eq!(cost.on_hand, held);
            prop_assert!(balance.reserved >= Decimal::ZERO);
            prop_assert!(allow_negative || !balance.is_negative());
            // (Reserved may exceed what an adjustment left on hand: the store releases the
            // difference in the adjustment's transaction.)
            prop_assert!(cost.average.amount() >= low && cost.average.amount() <= high);
        }
    }
}

/// A reservation holds stock for a job: others cannot take it, the job's release gives it back,
/// and nothing is held that is not on hand, even where negative stock is allowed.
#[test]
fn reservations_hold_available_stock() {
    let held = Balance {
        on_hand: "10".parse().expect("decimal"),
        reserved: "0".parse().expect("decimal"),
    };
    let reserve = |raw: &str| Movement::Reservation {
        quantity: q(raw),
        job_id: job(),
    };
    let held = post(&held, &reserve("8"), false).expect("8 of 10");
    assert_eq!(held.available().to_string(), "2");
    let take = Movement::Consumption {
        quantity: q("3"),
        job_id: job(),
    };
    assert_eq!(
        post(&held, &take, false),
        Err(InventoryError::InsufficientStock {
            available: "2".parse().expect("decimal"),
            requested: "3".parse().expect("decimal"),
        })
    );
    for allow_negative in [false, true] {
        assert!(matches!(
            post(&held, &reserve("3"), allow_negative),
            Err(InventoryError::InsufficientStock { .. })
        ));
    }
    let release = |raw: &str| Movement::Release {
        quantity: q(raw),
        job_id: job(),
    };
    assert!(matches!(
        post(&held, &release("9"), false),
        Err(InventoryError::ReleaseExceedsReserved { .. })
    ));
    let freed = post(&held, &release("8"), false).expect("all of it");
    assert_eq!(freed.available().to_string(), "10");
    // A transfer keeps the organization's stock, and with it the average.
    let cost = ItemCost {
        on_hand: "10".parse().expect("decimal"),
        average: dollars("2"),
    };
    let out = Movement::TransferOut { quantity: q("4") };
    assert_eq!(cost.after(&out).expect("a transfer"), cost);
}

fn code(raw: &str) -> TrackingCode {
    TrackingCode::parse(raw).expect("a code")
}

/// Serial-tracked materials move in whole units, one distinct serial each; lots are named on
/// receipt; an untracked material takes neither.
#[test]
fn units_fit_the_tracking() {
    let serials = |codes: &[&str]| Units {
        serials: codes.iter().map(|c| code(c)).collect(),
        lot: None,
    };
    let d = |raw: &str| -> Decimal { raw.parse().expect("decimal") };
    assert_eq!(
        check_units(Tracking::Serial, d("2"), &serials(&["WH-1", "WH-2"]), true),
        Ok(())
    );
    assert_eq!(
        check_units(Tracking::Serial, d("-1"), &serials(&["WH-1"]), false),
        Ok(()),
        "a negative adjustment names what left"
    );
    assert_eq!(
        check_units(Tracking::Serial, d("1.5"), &serials(&["WH-1"]), true),
        Err(UnitsError::Fraction)
    );
    assert!(matches!(
        check_units(Tracking::Serial, d("2"), &serials(&["WH-1"]), true),
        Err(UnitsError::SerialCount { given: 1, .. })
    ));
    assert_eq!(
        check_units(Tracking::Serial, d("2"), &serials(&["WH-1", "WH-1"]), true),
        Err(UnitsError::Duplicate("WH-1".into()))
    );
    assert_eq!(
        check_units(Tracking::None, d("1"), &serials(&["WH-1"]), true),
        Err(UnitsError::NotTracked("serial"))
    );
    let lot = Units {
        serials: vec![],
        lot: Some(code("L-2026-11")),
    };
    assert_eq!(check_units(Tracking::Lot, d("40"), &lot, true), Ok(()));
    assert_eq!(
        check_units(Tracking::Lot, d("40"), &Units::default(), true),
        Err(UnitsError::LotRequired)
    );
    assert_eq!(
        check_units(Tracking::Lot, d("4"), &Units::default(), false),
        Ok(())
    );
    assert_eq!(
        check_units(Tracking::None, d("4"), &lot, false).map_err(|e| e.field()),
        Err("lot")
    );
    for bad in ["", "-A", "a b", &"x".repeat(65)] {
        assert!(TrackingCode::parse(bad).is_err(), "{bad:?}");
    }
}
