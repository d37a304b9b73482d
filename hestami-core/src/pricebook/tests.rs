//! Tests of pricing: a snapshot of a full breakdown with its roundings, the validation of items,
//! markup tiers, tax tables and quote requests, revisions, and property tests of the totals.
use super::*;

use chrono::TimeZone as _;
use expect_test::expect;
use proptest::prelude::*;
use uuid::Uuid;

use crate::customer::CountryCode;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2031, 3, 2, 21, 58, 3)
        .single()
        .expect("a valid instant")
}

fn usd() -> Currency {
    Currency::parse("USD").expect("listed")
}

fn dec(raw: &str) -> Decimal {
    raw.parse().expect("a decimal")
}

fn usd_of(raw: &str) -> Money {
    Money::parse(raw, usd()).expect("a valid amount")
}

fn name(raw: &str) -> Name {
    Name::parse(raw).expect("a valid name")
}

fn item_id(n: u128) -> PricebookItemId {
    PricebookItemId::from_uuid(Uuid::from_u128(0x17e0 + n))
}

fn level(n: u8) -> SkillLevel {
    SkillLevel::parse(n).expect("1 to 5")
}

fn pct(raw: &str) -> Percent {
    Percent::parse_str(raw).expect("a valid percentage")
}

fn item(n: u128, item_name: &str, details: ItemDetails) -> PricebookItem {
    create_item(
        item_id(n),
        ItemDraft {
            name: name(item_name),
            description: None,
            category: Some(name("Water heaters")),
            details,
        },
        usd(),
        t0(),
    )
    .expect("a valid item")
}

fn material(pricing: MaterialPricing, cost: &str) -> ItemDetails {
    ItemDetails::Material {
        sku: Sku::parse("wh-40g").expect("valid"),
        unit: Unit::parse("Each").expect("valid"),
        cost: usd_of(cost),
        pricing,
    }
}

fn catalogue() -> Vec<PricebookItem> {
    vec![
        item(
            1,
            "Water heater install",
            ItemDetails::Service {
                price: usd_of("1249.99"),
                estimated_labor_hours: dec("4"),
                trade: TradeCode::parse("plumbing").expect("valid"),
                bundled_materials: vec![BundledMaterial {
                    item_id: item_id(2),
                    quantity: dec("1"),
                }],
                trip_fee: false,
            },
        ),
        item(
            2,
            "40 gal water heater",
            material(
                MaterialPricing::Explicit {
                    price: usd_of("649.00"),
                },
                "412.37",
            ),
        ),
        item(
            3,
            "Copper fitting",
            material(MaterialPricing::Tiered, "3.333"),
        ),
        item(
            4,
            "Expansion tank",
            material(MaterialPricing::Markup { percent: pct("35") }, "41.15"),
        ),
        item(
            5,
            "Plumber",
            ItemDetails::Labor {
                trade: TradeCode::parse("plumbing").expect("valid"),
                rates: vec![
                    LaborRate {
                        skill_level: level(2),
                        hourly: usd_of("85.00"),
                    },
                    LaborRate {
                        skill_level: level(4),
                        hourly: usd_of("112.50"),
                    },
                ],
                overtime_multiplier: dec("1.5"),
                after_hours_multiplier: dec("2"),
            },
        ),
        item(
            6,
            "Drain camera",
            ItemDetails::Equipment {
                unit: Unit::parse("day").expect("valid"),
                rate: usd_of("75.00"),
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
            to: Some(dec("100")),
            percent: pct("50"),
        },
        MarkupTier {
            from: dec("100"),
            to: None,
            percent: pct("25"),
        },
    ])
    .expect("valid tiers")
}

fn place() -> Jurisdiction {
    Jurisdiction::parse(
        CountryCode::parse("US").expect("valid"),
        Some("TX"),
        Some("Austin"),
    )
    .expect("valid")
}

fn taxes() -> TaxRates {
    let us = || CountryCode::parse("US").expect("valid");
    TaxRates::parse(vec![
        TaxRate {
            jurisdiction: Jurisdiction::parse(us(), Some("TX"), None).expect("valid"),
            name: name("Texas sales tax"),
            percent: pct("6.25"),
            taxable: TaxableKinds {
                material: true,
                equipment: true,
                ..TaxableKinds::default()
            },
        },
        TaxRate {
            jurisdiction: place(),
            name: name("Austin city tax"),
            percent: pct("1.125"),
            taxable: TaxableKinds {
                service: true,
                material: true,
                labor: true,
                equipment: true,
            },
        },
        TaxRate {
            jurisdiction: Jurisdiction::parse(us(), Some("OK"), None).expect("valid"),
            name: name("Oklahoma sales tax"),
            percent: pct("4.5"),
            taxable: TaxableKinds::default(),
        },
    ])
    .expect("valid rates")
}

fn line(n: u128, quantity: &str) -> QuoteLine {
    QuoteLine {
        source: LineSource::Item {
            item_id: item_id(n),
            revision: None,
            skill_level: None,
            labor_time: None,
        },
        quantity: dec(quantity),
        description: None,
    }
}

fn labor_line(hours: &str, skill: u8, time: LaborTime) -> QuoteLine {
    QuoteLine {
        source: LineSource::Item {
            item_id: item_id(5),
            revision: None,
            skill_level: Some(level(skill)),
            labor_time: Some(time),
        },
        quantity: dec(hours),
        description: None,
    }
}

fn custom(description: &str, price: &str, quantity: &str, kind: ItemKind) -> QuoteLine {
    QuoteLine {
        source: LineSource::Custom {
            description: name(description),
            unit_price: usd_of(price),
            kind,
        },
        quantity: dec(quantity),
        description: None,
    }
}

fn price(request: &QuoteRequest) -> Result<Quote, Vec<FieldError>> {
    price_for(request, None)
}

fn price_for(
    request: &QuoteRequest,
    member: Option<MemberDiscount>,
) -> Result<Quote, Vec<FieldError>> {
    let items = catalogue();
    let markup = tiers();
    let taxes = taxes().applicable(&place());
    quote(
        &PricingContext {
            currency: usd(),
            items: &items,
            markup: &markup,
            taxes: &taxes,
            member,
            trip_fee_waived_by: None,
        },
        request,
    )
}

fn member(percent: &str) -> MemberDiscount {
    MemberDiscount {
        agreement_id: crate::ids::AgreementId::from_uuid(uuid::Uuid::nil()),
        percent: pct(percent),
    }
}

#[test]
fn a_members_trip_fee_is_waived_and_says_what_it_saved() {
    let mut items = catalogue();
    items.push(item(
        9,
        "Trip fee",
        ItemDetails::Service {
            price: usd_of("89.00"),
            estimated_labor_hours: dec("0"),
            trade: TradeCode::parse("plumbing").expect("valid"),
            bundled_materials: vec![],
            trip_fee: true,
        },
    ));
    let markup = tiers();
    let taxes = taxes().applicable(&place());
    let request = QuoteRequest {
        lines: vec![line(9, "1"), line(1, "1")],
        discount: None,
    };
    let priced = |waived_by| {
        quote(
            &PricingContext {
                currency: usd(),
                items: &items,
                markup: &markup,
                taxes: &taxes,
                member: None,
                trip_fee_waived_by: waived_by,
            },
            &request,
        )
        .expect("prices")
    };
    let agreement = crate::ids::AgreementId::from_uuid(Uuid::from_u128(7));
    expect![[r#"
        lines[0] service Trip fee item@r1: 1 × 0.00 = 0.00  [explicit price, 89.00 waived by 00000000-0000-0000-0000-000000000007]
        lines[1] service Water heater install item@r1: 1 × 1249.99 = 1249.99  [explicit price]
        subtotal 1249.99
        discount 0.00
        tax Texas sales tax 6.25% on 0.00 = 0.00
        tax Austin city tax 1.125% on 1249.99 = 14.06
        total 1264.05 USD
        rounded taxLines[1].tax: 14.0623875 → 14.06
    "#]]
    .assert_eq(&priced(Some(agreement)).breakdown());
    // Without the waiver (not a member, or a plan that does not waive it), the fee is charged;
    // an item that is not a trip fee is never waived.
    let charged = priced(None);
    assert_eq!(charged.lines[0].line_total, usd_of("89.00"));
    assert_eq!(charged.lines[0].waived, None);
    assert_eq!(
        charged.total.amount() - priced(Some(agreement)).total.amount(),
        dec("90.00")
    );
}

#[test]
fn a_member_discount_is_its_own_logged_adjustment_before_tax() {
    let request = QuoteRequest {
        lines: vec![
            custom("Thermostat", "33.33", "1", ItemKind::Material),
            custom("Install", "100.00", "1", ItemKind::Service),
        ],
        discount: Some(Discount::Amount {
            amount: usd_of("3.00"),
        }),
    };
    let q = price_for(&request, Some(member("10"))).expect("prices");
    expect![[r#"
        lines[0] material Thermostat: 1 × 33.33 = 33.33  [custom]
        lines[1] service Install: 1 × 100.00 = 100.00  [custom]
        subtotal 133.33
        discount 3.00
        member discount 10% (00000000-0000-0000-0000-000000000000) 13.03
        tax Texas sales tax 6.25% on 29.32 = 1.83
        tax Austin city tax 1.125% on 117.30 = 1.32
        total 120.45 USD
        rounded memberDiscount: 13.0330 → 13.03
        rounded taxLines[0].taxableBase: 29.322800570014250356258906473 → 29.32
        rounded taxLines[0].tax: 1.832500 → 1.83
        rounded taxLines[1].tax: 1.3196250 → 1.32
    "#]]
    .assert_eq(&q.breakdown());
    // Without membership, the same lines.
    let plain = price(&request).expect("prices");
    assert_eq!(plain.member_discount, None);
    assert_eq!(plain.total.amount() - q.total.amount(), dec("13.39"));
}

fn problems(result: Result<Quote, Vec<FieldError>>) -> String {
    match result {
        Ok(q) => format!("accepted: total {}\n", q.total),
        Err(problems) => problems.iter().map(|p| format!("{p}\n")).collect(),
    }
}

#[test]
fn quote_breakdown_shows_rules_and_roundings() {
    let request = QuoteRequest {
        lines: vec![
            line(1, "1"),
            line(2, "1"),
            line(3, "7"),
            line(4, "1"),
            labor_line("2.25", 4, LaborTime::Overtime),
            labor_line("1", 2, LaborTime::AfterHours),
            line(6, "0.5"),
            custom("Haul away old heater", "35.005", "1", ItemKind::Service),
        ],
        discount: Some(Discount::Percent {
            percent: pct("7.5"),
        }),
    };
    let q = price(&request).expect("prices");
    expect![[r#"
        lines[0] service Water heater install item@r1: 1 × 1249.99 = 1249.99  [explicit price]
        lines[1] material 40 gal water heater item@r1: 1 each × 649.00 = 649.00  [explicit price]
        lines[2] material Copper fitting item@r1: 7 each × 6.666 = 46.66  [cost 3.333 + tier [0, 10) markup 100%]
        lines[3] material Expansion tank item@r1: 1 each × 55.5525 = 55.55  [cost 41.15 + item markup 35%]
        lines[4] labor Plumber item@r1: 2.25 hour × 168.750 = 379.69  [plumbing level 4 at 112.50/h × 1.5 (overtime)]
        lines[5] labor Plumber item@r1: 1 hour × 170.00 = 170.00  [plumbing level 2 at 85.00/h × 2 (after_hours)]
        lines[6] equipment Drain camera item@r1: 0.5 day × 75.00 = 37.50  [explicit price]
        lines[7] service Haul away old heater: 1 × 35.005 = 35.01  [custom]
        subtotal 2623.40
        discount 196.76
        tax Texas sales tax 6.25% on 729.56 = 45.60
        tax Austin city tax 1.125% on 2426.64 = 27.30
        total 2499.54 USD
        rounded lines[2].lineTotal: 46.662 → 46.66
        rounded lines[3].lineTotal: 55.5525 → 55.55
        rounded lines[4].lineTotal: 379.68750 → 379.69
        rounded lines[7].lineTotal: 35.005 → 35.01
        rounded discount: 196.75500 → 196.76
        rounded taxLines[0].taxableBase: 729.55524677898909811694747274 → 729.56
        rounded taxLines[0].tax: 45.597500 → 45.60
        rounded taxLines[1].tax: 27.2997000 → 27.30
    "#]]
    .assert_eq(&q.breakdown());
    // The totals add up exactly.
    let lines: Decimal = q.lines.iter().map(|l| l.line_total.amount()).sum();
    assert_eq!(
        q.total.amount(),
        lines - q.discount.amount() + q.tax_total.amount()
    );
}

#[test]
fn a_priced_line_serializes_with_decimal_strings_and_its_rule() {
    let q = price(&QuoteRequest {
        lines: vec![line(3, "2")],
        discount: None,
    })
    .expect("prices");
    let json = serde_json::to_string_pretty(&q.lines[0]).expect("serializes");
    expect![[r#"
        {
          "item": {
            "itemId": "00000000-0000-0000-0000-0000000017e3",
            "revision": 1
          },
          "kind": "material",
          "description": "Copper fitting",
          "quantity": "2",
          "unit": "each",
          "unitPrice": {
            "amount": "6.666",
            "currency": "USD"
          },
          "lineTotal": {
            "amount": "13.33",
            "currency": "USD"
          },
          "rule": {
            "rule": "markup_tier",
            "cost": "3.333",
            "from": "0",
            "to": "10",
            "percent": "100"
          }
        }"#]]
    .assert_eq(&json);
    let back: PricedLine = serde_json::from_str(&json).expect("round-trips");
    assert_eq!(back, q.lines[0]);
}

#[test]
fn quote_validation_returns_every_problem_with_its_path() {
    let unknown = QuoteLine {
        source: LineSource::Item {
            item_id: item_id(99),
            revision: None,
            skill_level: None,
            labor_time: None,
        },
        quantity: dec("1"),
        description: None,
    };
    let pinned_missing = QuoteLine {
        source: LineSource::Item {
            item_id: item_id(1),
            revision: Some(7),
            skill_level: None,
            labor_time: None,
        },
        quantity: dec("1"),
        description: None,
    };
    let mut labour_for_service = line(1, "1");
    if let LineSource::Item { skill_level, .. } = &mut labour_for_service.source {
        *skill_level = Some(level(2));
    }
    let request = QuoteRequest {
        lines: vec![
            line(1, "1"),
            line(2, "0"),
            line(3, "-2"),
            line(4, "1.00001"),
            unknown,
            pinned_missing,
            line(5, "1"),
            labor_line("1", 3, LaborTime::Regular),
            labour_for_service,
            custom("Permit", "-5", "1", ItemKind::Service),
        ],
        discount: Some(Discount::Amount {
            amount: usd_of("10"),
        }),
    };
    expect![[r#"
        lines[1].quantity: must_be_positive (quantity must be greater than 0)
        lines[2].quantity: must_be_positive (quantity must be greater than 0)
        lines[3].quantity: too_many_decimals (quantity has at most 4 decimal places)
        lines[4].itemId: not_found (no pricebook item 00000000-0000-0000-0000-000000001843)
        lines[5].itemId: not_found (no pricebook item 00000000-0000-0000-0000-0000000017e1 at revision 7)
        lines[6].skillLevel: required (a labour line names the skill level whose rate applies)
        lines[7].skillLevel: no_rate_for_skill_level (Plumber has no rate for skill level 3)
        lines[8].skillLevel: not_applicable (only labour lines take a skillLevel)
        lines[9].unitPrice: must_not_be_negative (a price must not be negative)
    "#]]
    .assert_eq(&problems(price(&request)));

    expect![[r#"
        lines: required (a quote has at least one line)
    "#]]
    .assert_eq(&problems(price(&QuoteRequest::default())));

    let eur = Currency::parse("EUR").expect("listed");
    let discounts = [
        Discount::Amount {
            amount: usd_of("100.01"),
        },
        Discount::Amount {
            amount: usd_of("1.005"),
        },
        Discount::Amount {
            amount: Money::from_minor_units(100, eur),
        },
        Discount::Percent {
            percent: pct("100.5"),
        },
        Discount::Percent {
            percent: pct("100"),
        },
    ];
    let out: String = discounts
        .into_iter()
        .map(|d| {
            problems(price(&QuoteRequest {
                lines: vec![custom("Visit", "100", "1", ItemKind::Labor)],
                discount: Some(d),
            }))
        })
        .collect();
    expect![[r#"
        discount.amount: exceeds_subtotal (the discount is more than the subtotal of 100.00 USD)
        discount.amount: too_many_decimals (an amount in USD has at most 2 decimal places)
        discount.amount: currency_mismatch (cannot combine an amount in USD with one in EUR)
        discount.percent: out_of_range (a discount is at most 100 %)
        accepted: total 0.00 USD
    "#]]
    .assert_eq(&out);
}

#[test]
fn tiered_material_without_tiers_is_refused() {
    let items = catalogue();
    let no_tiers = MarkupTiers::default();
    let result = quote(
        &PricingContext {
            currency: usd(),
            items: &items,
            markup: &no_tiers,
            taxes: &[],
            member: None,
            trip_fee_waived_by: None,
        },
        &QuoteRequest {
            lines: vec![line(3, "1")],
            discount: None,
        },
    );
    expect![[r#"
        lines[0].itemId: no_markup_tier (no markup tier covers a cost of 3.333; set the markup tiers or give the material a price)
    "#]]
    .assert_eq(&problems(result));
}

#[test]
fn markup_tiers_must_be_contiguous_and_non_overlapping() {
    let tier = |from: &str, to: Option<&str>| MarkupTier {
        from: dec(from),
        to: to.map(dec),
        percent: pct("10"),
    };
    let cases = vec![
        vec![tier("0", Some("10")), tier("10", None)],
        vec![tier("1", Some("10")), tier("10", None)],
        vec![tier("0", Some("10")), tier("12", None)],
        vec![
            tier("0", Some("10")),
            tier("8", Some("20")),
            tier("20", None),
        ],
        vec![
            tier("0", Some("10")),
            tier("10", Some("10")),
            tier("10", None),
        ],
        vec![tier("0", None), tier("10", None)],
        vec![tier("0", Some("10"))],
        vec![],
    ];
    let out: String = cases
        .into_iter()
        .enumerate()
        .map(|(i, tiers)| match MarkupTiers::parse(tiers) {
            Ok(_) => format!("case {i}: ok\n"),
            Err(problems) => problems
                .iter()
                .map(|p| format!("case {i}: {p}\n"))
                .collect(),
        })
        .collect();
    expect![[r#"
        case 0: ok
        case 1: tiers[0].from: must_start_at_zero (the first tier starts at a cost of 0)
        case 2: tiers[1].from: not_contiguous (the tier must start at 10, where the previous one ends)
        case 3: tiers[1].from: overlapping (the tier starts at 8 inside the previous one, which ends at 10)
        case 4: tiers[1].to: empty_range (a tier ends above where it starts)
        case 5: tiers[0].to: required (only the last tier is open-ended)
        case 6: tiers[0].to: must_be_open_ended (the last tier has no upper bound, so that every cost has a markup)
        case 7: ok
    "#]]
    .assert_eq(&out);
    let t = tiers();
    assert_eq!(
        t.for_cost(dec("9.999")).map(|t| t.percent),
        Some(pct("100"))
    );
    assert_eq!(t.for_cost(dec("10")).map(|t| t.percent), Some(pct("50")));
    assert_eq!(
        t.for_cost(dec("1000000")).map(|t| t.percent),
        Some(pct("25"))
    );
    // Deserializing checks the same rules.
    assert!(
        serde_json::from_str::<MarkupTiers>(r#"[{"from":"1","to":null,"percent":"5"}]"#).is_err()
    );
}

#[test]
fn tax_rates_apply_by_jurisdiction_and_are_bounded() {
    let names: Vec<String> = taxes()
        .applicable(&place())
        .iter()
        .map(|r| r.name.to_string())
        .collect();
    assert_eq!(names, ["Texas sales tax", "Austin city tax"]);
    let mut rates = taxes().rates().to_vec();
    rates[0].percent = pct("101");
    rates[2].name = rates[0].name.clone();
    rates[2].jurisdiction = rates[0].jurisdiction.clone();
    let out: Vec<String> = TaxRates::parse(rates)
        .expect_err("refused")
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(
        out,
        [
            "rates[0].percent: out_of_range (a tax rate is between 0 and 100 %)",
            "rates[2].name: duplicate (another rate of this jurisdiction has the same name)"
        ]
    );
}

#[test]
fn item_drafts_are_validated() {
    let eur = Currency::parse("EUR").expect("listed");
    let labour = ItemDraft {
        name: name("Plumber"),
        description: None,
        category: None,
        details: ItemDetails::Labor {
            trade: TradeCode::parse("plumbing").expect("valid"),
            rates: vec![
                LaborRate {
                    skill_level: level(2),
                    hourly: Money::from_minor_units(8500, eur),
                },
                LaborRate {
                    skill_level: level(2),
                    hourly: usd_of("-1"),
                },
            ],
            overtime_multiplier: dec("0.5"),
            after_hours_multiplier: dec("11"),
        },
    };
    let out: String = validate_draft(&labour, usd())
        .iter()
        .map(|p| format!("{p}\n"))
        .collect();
    expect![[r#"
        details.rates[0].hourly: currency_mismatch (the price must be in USD, the organization's currency)
        details.rates[1].hourly: must_not_be_negative (a price must not be negative)
        details.rates[1].skillLevel: duplicate (skill level 2 has more than one rate)
        details.overtimeMultiplier: out_of_range (a multiplier is between 1 and 10)
        details.afterHoursMultiplier: out_of_range (a multiplier is between 1 and 10)
    "#]]
    .assert_eq(&out);
    assert!(Sku::parse("wh 40").is_err());
    assert_eq!(
        Sku::parse(" wh-40g/n ").map(|s| s.to_string()),
        Ok("WH-40G/N".into())
    );
    assert_eq!(Unit::parse("GAL").map(|s| s.to_string()), Ok("gal".into()));
}

#[test]
fn revisions_keep_earlier_prices_reachable() {
    let items = catalogue();
    let v1 = items[1].clone();
    let mut draft = ItemDraft {
        name: v1.name.clone(),
        description: None,
        category: v1.category.clone(),
        details: material(
            MaterialPricing::Explicit {
                price: usd_of("699.00"),
            },
            "450.00",
        ),
    };
    let v2 = revise_item(&v1, draft.clone(), usd(), t0()).expect("revises");
    assert_eq!((v2.id, v2.revision, v1.revision), (v1.id, 2, 1));

    let all = [items.clone(), vec![v2.clone()]].concat();
    let markup = tiers();
    let ctx = PricingContext {
        currency: usd(),
        items: &all,
        markup: &markup,
        taxes: &[],
        member: None,
        trip_fee_waived_by: None,
    };
    let latest = quote(
        &ctx,
        &QuoteRequest {
            lines: vec![line(2, "1")],
            discount: None,
        },
    )
    .expect("prices");
    let mut pinned_line = line(2, "1");
    if let LineSource::Item { revision, .. } = &mut pinned_line.source {
        *revision = Some(1);
    }
    let pinned = quote(
        &ctx,
        &QuoteRequest {
            lines: vec![pinned_line],
            discount: None,
        },
    )
    .expect("prices");
    assert_eq!(latest.total.amount(), dec("699.00"));
    assert_eq!(latest.lines[0].item.map(|r| r.revision), Some(2));
    assert_eq!(pinned.total.amount(), dec("649.00"));

    // The kind is fixed, and an archived item is frozen and cannot be quoted.
    draft.details = ItemDetails::Equipment {
        unit: Unit::parse("day").expect("valid"),
        rate: usd_of("1"),
    };
    let archived = archive_item(&v2, t0()).expect("archives");
    assert_eq!(archived.revision, 3);
    assert!(archive_item(&archived, t0()).is_none());
    let refused: Vec<&str> = revise_item(&archived, draft, usd(), t0())
        .expect_err("refused")
        .iter()
        .map(|p| p.code)
        .collect();
    assert_eq!(refused, ["item_archived", "kind_changed"]);
    let with_archived = [items, vec![archived]].concat();
    let result = quote(
        &PricingContext {
            items: &with_archived,
            ..ctx
        },
        &QuoteRequest {
            lines: vec![line(2, "1")],
            discount: None,
        },
    );
    assert_eq!(
        result.map_err(|p| p.iter().map(|p| p.code).collect::<Vec<_>>()),
        Err(vec!["item_archived"])
    );
}

#[test]
fn search_matches_every_word_in_name_category_or_sku() {
    let items = catalogue();
    let hits = |q: &str| -> Vec<String> {
        items
            .iter()
            .filter(|i| matches_search(i, q))
            .map(|i| i.name.to_string())
            .collect()
    };
    assert_eq!(
        hits("wh-40G"),
        ["40 gal water heater", "Copper fitting", "Expansion tank"]
    );
    assert_eq!(hits("heater INSTALL"), ["Water heater install"]);
    assert_eq!(hits("").len(), items.len());
    assert!(hits("boiler").is_empty());
}

fn arb_kind() -> impl Strategy<Value = ItemKind> {
    prop::sample::select(ItemKind::ALL.to_vec())
}

prop_compose! {
    fn arb_line()(cents in 0_i64..10_000_000, extra in 0_i64..1000, qty in 1_i64..100_000, kind in arb_kind()) -> QuoteLine {
        QuoteLine {
            source: LineSource::Custom {
                description: name("Line"),
                // Unit prices finer than a cent, so that line totals round.
                unit_price: Money::new(Decimal::new(cents * 1000 + extra, 5), usd()),
                kind,
            },
            quantity: Decimal::new(qty, 2),
            description: None,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Totals are the sum of the lines plus tax minus discount, to the cent, and every amount
    /// is in cents.
    #[test]
    fn totals_add_up(
        lines in prop::collection::vec(arb_line(), 1..8),
        discount_pct in prop::option::of(0_i64..=10_000),
        member_pct in prop::option::of(0_i64..=10_000),
    ) {
        let discount = discount_pct.map(|p| Discount::Percent { percent: Percent::parse(Decimal::new(p, 2)).expect("0 to 100") });
        let membership = member_pct.map(|p| MemberDiscount { percent: Percent::parse(Decimal::new(p, 2)).expect("0 to 100"), ..member("0") });
        let q = price_for(&QuoteRequest { lines, discount }, membership).expect("prices");
        let lines_sum: Decimal = q.lines.iter().map(|l| l.line_total.amount()).sum();
        let tax_sum: Decimal = q.tax_lines.iter().map(|t| t.tax.amount()).sum();
        let member_amount = q.member_discount.map_or(Decimal::ZERO, |m| m.amount.amount());
        prop_assert_eq!(q.member_discount.is_some(), membership.is_some());
        prop_assert_eq!(q.subtotal.amount(), lines_sum);
        prop_assert_eq!(q.total.amount(), lines_sum + tax_sum - q.discount.amount() - member_amount);
        prop_assert!(q.discount.amount() + member_amount <= q.subtotal.amount());
        prop_assert!(!q.total.is_negative());
        for m in q.lines.iter().map(|l| &l.line_total).chain(q.tax_lines.iter().flat_map(|t| [&t.tax, &t.taxable_base])).chain([&q.subtotal, &q.discount, &q.total]) {
            prop_assert_eq!(m.amount().scale(), 2);
        }
        for t in &q.tax_lines {
            prop_assert!(t.taxable_base.amount() <= q.subtotal.amount() - q.discount.amount() - member_amount + Decimal::new(1, 2));
            prop_assert!(!t.taxable_base.is_negative());
        }
        prop_assert!(!q.roundings.iter().any(|r| r.at == "total"));
    }
}

#[test]
fn quote_lines_round_trip_through_json() {
    for line in [
        line(1, "2"),
        labor_line("1.5", 2, LaborTime::Overtime),
        custom("Valve", "40.00", "1", ItemKind::Material),
    ] {
        let json = serde_json::to_value(&line).expect("serializes");
        let back: QuoteLine = serde_json::from_value(json.clone()).expect("deserializes");
        assert_eq!(back, line, "{json}");
    }
    let tiers = MarkupTiers::parse(vec![
        MarkupTier {
            from: Decimal::ZERO,
            to: Some(Decimal::TEN),
            percent: Percent::parse(Decimal::TEN).expect("valid"),
        },
        MarkupTier {
            from: Decimal::TEN,
            to: None,
            percent: Percent::parse(Decimal::ONE).expect("valid"),
        },
    ])
    .expect("valid");
    let json = serde_json::to_value(&tiers).expect("serializes");
    let back: MarkupTiers = serde_json::from_value(json.clone()).expect("deserializes");
    assert_eq!(back, tiers, "{json}");
    // Buffered by serde (as inside an adjacently tagged command), `null` still reads as None.
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    #[serde(tag = "procedure", content = "input")]
    enum Wrapped {
        Tiers(MarkupTiers),
    }
    let wrapped = serde_json::json!({ "input": json, "procedure": "Tiers" });
    let back: Wrapped = serde_json::from_value(wrapped).expect("deserializes when buffered");
    assert_eq!(back, Wrapped::Tiers(tiers));
}
