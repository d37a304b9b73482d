//! Tests of invoices: numbering, terms and aging, snapshots of the table and of every refusal,
//! and property tests of balances under any sequence of payments and refunds.
use super::*;

use chrono::{Duration, TimeZone as _};
use expect_test::expect;
use proptest::prelude::*;
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::estimate::{self, EstimateCommand, EstimateContent, EstimateOption, NewEstimate};
use crate::ids::PropertyId;
use crate::pricebook::{
    self, ItemKind, LineSource, MarkupTiers, PricingContext, QuoteLine, QuoteRequest, TaxRate,
    TaxableKinds,
};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2031, 3, 2, 21, 58, 3)
        .single()
        .expect("a valid instant")
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("a valid date")
}

fn usd() -> Currency {
    Currency::parse("USD").expect("listed")
}

fn cents(n: i64) -> Money {
    Money::from_minor_units(n, usd())
}

fn name(raw: &str) -> Name {
    Name::parse(raw).expect("valid")
}

fn reason(raw: &str) -> Reason {
    Reason::parse(raw).expect("valid")
}

fn payment_id(n: u128) -> PaymentId {
    PaymentId::from_uuid(Uuid::from_u128(0x9a00 + n))
}

fn refund_id(n: u128) -> RefundId {
    RefundId::from_uuid(Uuid::from_u128(0x5e00 + n))
}

/// Quotes custom lines (price in cents, kind) with a 8.25 % tax on materials and an optional
/// discount in cents.
fn quote_of(lines: &[(i64, ItemKind)], discount: Option<i64>) -> Quote {
    let tax = TaxRate {
        jurisdiction: crate::compliance::Jurisdiction::parse(
            crate::customer::CountryCode::parse("US").expect("valid"),
            None,
            None,
        )
        .expect("valid"),
        name: name("Sales tax"),
        percent: crate::money::Percent::parse_str("8.25").expect("valid"),
        taxable: TaxableKinds {
            material: true,
            ..TaxableKinds::default()
        },
    };
    let request = QuoteRequest {
        lines: lines
            .iter()
            .map(|&(price, kind)| QuoteLine {
                source: LineSource::Custom {
                    description: name("Work"),
                    unit_price: cents(price),
                    kind,
                },
                quantity: Decimal::ONE,
                description: None,
            })
            .collect(),
        discount: discount.map(|d| pricebook::Discount::Amount { amount: cents(d) }),
    };
    let markup = MarkupTiers::default();
    pricebook::quote(
        &PricingContext {
            currency: usd(),
            items: &[],
            markup: &markup,
            taxes: &[tax],
            member: None,
            trip_fee_waived_by: None,
        },
        &request,
    )
    .expect("prices")
}

fn draft_with(quote: Quote) -> Invoice {
    create(
        InvoiceId::from_uuid(Uuid::from_u128(0x1e)),
        NewInvoice {
            job_id: Some(JobId::from_uuid(Uuid::from_u128(3))),
            customer_id: CustomerId::from_uuid(Uuid::from_u128(1)),
            source: InvoiceSource::Lines,
            quote,
            terms: PaymentTerms::net(30).expect("valid"),
        },
        t0(),
        None,
    )
    .expect("valid")
    .0
}

fn draft() -> Invoice {
    draft_with(quote_of(
        &[(10_000, ItemKind::Labor), (5_000, ItemKind::Material)],
        None,
    ))
}

fn issue(n: u64) -> InvoiceCommand {
    InvoiceCommand::Issue {
        number: InvoiceNumber::from_sequence(n).expect("valid"),
        issue_date: day(2031, 3, 2),
    }
}

fn pay(n: u128, amount: i64) -> InvoiceCommand {
    InvoiceCommand::Pay {
        payment: NewPayment {
            id: payment_id(n),
            amount: cents(amount),
            method: PaymentMethod::Card,
            reference: None,
        },
    }
}

fn refund(n: u128, payment: u128, amount: i64) -> InvoiceCommand {
    InvoiceCommand::Refund {
        refund: NewRefund {
            id: refund_id(n),
            payment_id: payment_id(payment),
            amount: cents(amount),
            reason: reason("Overcharged"),
        },
    }
}

fn run(invoice: &Invoice, command: &InvoiceCommand) -> Invoice {
    execute(invoice, command, None, t0()).expect("accepted").0
}

#[test]
fn invoice_numbers_format_and_parse() {
    let n = InvoiceNumber::from_sequence(123).expect("valid");
    assert_eq!(n.to_string(), "INV-000123");
    assert_eq!(InvoiceNumber::parse("INV-000123"), Ok(n));
    assert_eq!(
        InvoiceNumber::from_sequence(1_234_567).map(|n| n.to_string()),
        Ok("INV-1234567".into())
    );
    for bad in [
        "INV-123",
        "INV-000000",
        "inv-000123",
        "INV-0001234",
        "INV-00012a",
    ] {
        assert!(InvoiceNumber::parse(bad).is_err(), "{bad} accepted");
    }
    assert_eq!(
        serde_json::to_string(&n).expect("serializes"),
        r#""INV-000123""#
    );
}

#[test]
fn due_dates_and_aging_buckets() {
    let terms = PaymentTerms::net(30).expect("valid");
    assert_eq!(terms.due_date(day(2031, 1, 31)), day(2031, 3, 2));
    assert_eq!(
        PaymentTerms::net(0)
            .expect("valid")
            .due_date(day(2031, 1, 31)),
        day(2031, 1, 31)
    );
    assert!(PaymentTerms::net(366).is_err());
    let due = day(2031, 4, 1);
    let out: Vec<(i64, &str)> = [-5, 0, 1, 30, 31, 60, 61, 90, 91, 400]
        .into_iter()
        .map(|d| (d, AgingBucket::of(due, due + Duration::days(d)).as_str()))
        .collect();
    expect![[r#"
        [
            (
                -5,
                "current",
            ),
            (
                0,
                "current",
            ),
            (
                1,
                "days_1_to_30",
            ),
            (
                30,
                "days_1_to_30",
            ),
            (
                31,
                "days_31_to_60",
            ),
            (
                60,
                "days_31_to_60",
            ),
            (
                61,
                "days_61_to_90",
            ),
            (
                90,
                "days_61_to_90",
            ),
            (
                91,
                "over_90",
            ),
            (
                400,
                "over_90",
            ),
        ]
    "#]]
    .assert_debug_eq(&out);

    let issued = run(&draft(), &issue(1));
    assert_eq!(issued.due_date, Some(day(2031, 4, 1)));
    assert_eq!(issued.aging(day(2031, 4, 1)), Some(AgingBucket::Current));
    assert!(!issued.is_overdue(day(2031, 4, 1)));
    assert!(issued.is_overdue(day(2031, 4, 2)));
    let part_paid = run(&issued, &pay(1, 5_000));
    let paid = run(
        &issued,
        &pay(1, issued.balance().amount().mantissa() as i64),
    );
    assert_eq!(paid.aging(day(2031, 9, 1)), None);
    let report = aging_report(usd(), [&part_paid, &paid, &draft()], day(2031, 5, 15));
    let out: Vec<String> = report
        .iter()
        .map(|(b, m)| format!("{} {}", b.as_str(), m.amount()))
        .collect();
    assert_eq!(
        out,
        [
            "current 0.00",
            "days_1_to_30 0.00",
            "days_31_to_60 104.13",
            "days_61_to_90 0.00",
            "over_90 0.00"
        ]
    );
}

#[test]
fn transition_table_snapshot() {
    let out: String = TRANSITIONS
        .iter()
        .map(|(from, a, to)| format!("{from} --{}--> {to}\n", a.as_str()))
        .collect();
    expect![[r#"
        draft --update--> draft
        draft --issue--> issued
        draft --issue--> paid
        issued --pay--> issued
        issued --pay--> paid
        issued --refund--> issued
        paid --refund--> issued
        issued --credit--> issued
        issued --credit--> paid
        paid --credit--> paid
        issued --write_off--> issued
        issued --write_off--> paid
        draft --void--> void
        issued --void--> void
    "#]]
    .assert_eq(&out);
}

#[test]
fn every_command_in_every_state() {
    let issued = run(&draft(), &issue(7));
    let partly = run(&issued, &pay(1, 1_000));
    let paid = run(
        &partly,
        &pay(2, partly.balance().amount().mantissa() as i64),
    );
    let void = run(
        &draft(),
        &InvoiceCommand::Void {
            reason: reason("Duplicate"),
        },
    );
    let states = [
        ("draft", draft()),
        ("issued", issued),
        ("partly paid", partly),
        ("paid", paid),
        ("void", void),
    ];
    let commands = [
        InvoiceCommand::Update {
            quote: Box::new(quote_of(&[(100, ItemKind::Labor)], None)),
            terms: PaymentTerms::default(),
        },
        issue(8),
        pay(3, 100),
        refund(1, 1, 100),
        credit(1, vec![(0, None)], None, None),
        credit(2, vec![], Some(100), Some(payment_id(1))),
        write_off(1, 100),
        InvoiceCommand::Void {
            reason: reason("Mistake"),
        },
    ];
    let mut out = String::new();
    for (label, invoice) in &states {
        for command in &commands {
            let result = match execute(invoice, command, None, t0()) {
                Ok((next, _)) => format!("ok {} balance {}", next.status, next.balance().amount()),
                Err(e) => format!("{}: {e}", e.code()),
            };
            out.push_str(&format!(
                "{label} {}: {result}\n",
                command.action().as_str()
            ));
        }
    }
    expect![[r#"
        draft update: ok draft balance 1.00
        draft issue: ok issued balance 154.13
        draft pay: INVOICE_INVALID_TRANSITION: an invoice in state draft cannot pay; allowed: update, issue, void
        draft refund: INVOICE_INVALID_TRANSITION: an invoice in state draft cannot refund; allowed: update, issue, void
        draft credit: INVOICE_INVALID_TRANSITION: an invoice in state draft cannot credit; allowed: update, issue, void
        draft credit: INVOICE_INVALID_TRANSITION: an invoice in state draft cannot credit; allowed: update, issue, void
        draft write_off: INVOICE_INVALID_TRANSITION: an invoice in state draft cannot write_off; allowed: update, issue, void
        draft void: ok void balance 154.13
        issued update: INVOICE_INVALID_TRANSITION: an invoice in state issued cannot update; allowed: pay, refund, credit, write_off, void
        issued issue: INVOICE_INVALID_TRANSITION: an invoice in state issued cannot issue; allowed: pay, refund, credit, write_off, void
        issued pay: ok issued balance 153.13
        issued refund: PAYMENT_NOT_FOUND: the invoice has no payment 00000000-0000-0000-0000-000000009a01
        issued credit: ok issued balance 54.13
        issued credit: PAYMENT_NOT_FOUND: the invoice has no payment 00000000-0000-0000-0000-000000009a01
        issued write_off: ok issued balance 153.13
        issued void: ok void balance 154.13
        partly paid update: INVOICE_INVALID_TRANSITION: an invoice in state issued cannot update; allowed: pay, refund, credit, write_off, void
        partly paid issue: INVOICE_INVALID_TRANSITION: an invoice in state issued cannot issue; allowed: pay, refund, credit, write_off, void
        partly paid pay: ok issued balance 143.13
        partly paid refund: ok issued balance 145.13
        partly paid credit: ok issued balance 44.13
        partly paid credit: ok issued balance 144.13
        partly paid write_off: ok issued balance 143.13
        partly paid void: INVOICE_HAS_PAYMENTS: an invoice with 10.00 USD paid cannot be voided; refund the payments first
        paid update: INVOICE_INVALID_TRANSITION: an invoice in state paid cannot update; allowed: refund, credit
        paid issue: INVOICE_INVALID_TRANSITION: an invoice in state paid cannot issue; allowed: refund, credit
        paid pay: INVOICE_INVALID_TRANSITION: an invoice in state paid cannot pay; allowed: refund, credit
        paid refund: ok issued balance 1.00
        paid credit: CREDIT_EXCEEDS_BALANCE: a credit note of 100.00 USD exceeds the balance of 0.00 USD; refund it to a payment to credit more than is owed
        paid credit: ok paid balance 0.00
        paid write_off: INVOICE_INVALID_TRANSITION: an invoice in state paid cannot write_off; allowed: refund, credit
        paid void: INVOICE_INVALID_TRANSITION: an invoice in state paid cannot void; allowed: refund, credit
        void update: INVOICE_INVALID_TRANSITION: an invoice in state void cannot update; allowed: none
        void issue: INVOICE_INVALID_TRANSITION: an invoice in state void cannot issue; allowed: none
        void pay: INVOICE_INVALID_TRANSITION: an invoice in state void cannot pay; allowed: none
        void refund: INVOICE_INVALID_TRANSITION: an invoice in state void cannot refund; allowed: none
        void credit: INVOICE_INVALID_TRANSITION: an invoice in state void cannot credit; allowed: none
        void credit: INVOICE_INVALID_TRANSITION: an invoice in state void cannot credit; allowed: none
        void write_off: INVOICE_INVALID_TRANSITION: an invoice in state void cannot write_off; allowed: none
        void void: INVOICE_INVALID_TRANSITION: an invoice in state void cannot void; allowed: none
    "#]]
    .assert_eq(&out);
}

#[test]
fn payment_and_refund_refusals() {
    let issued = run(&draft(), &issue(1));
    let paid_some = run(&issued, &pay(1, 4_000));
    let eur = Currency::parse("EUR").expect("listed");
    let cases: Vec<(&str, &Invoice, InvoiceCommand)> = vec![
        ("overpayment", &paid_some, pay(2, 11_414)),
        ("zero", &paid_some, pay(2, 0)),
        (
            "sub-cent",
            &paid_some,
            InvoiceCommand::Pay {
                payment: NewPayment {
                    id: payment_id(2),
                    amount: Money::parse("1.005", usd()).expect("valid"),
                    method: PaymentMethod::Cash,
                    reference: None,
                },
            },
        ),
        (
            "euros",
            &paid_some,
            InvoiceCommand::Pay {
                payment: NewPayment {
                    id: payment_id(2),
                    amount: Money::from_minor_units(100, eur),
                    method: PaymentMethod::Cash,
                    reference: None,
                },
            },
        ),
        ("same payment id", &paid_some, pay(1, 100)),
        ("refund too much", &paid_some, refund(1, 1, 4_001)),
        ("refund unknown payment", &paid_some, refund(1, 9, 100)),
    ];
    let out: String = cases
        .into_iter()
        .map(|(what, invoice, command)| {
            let e = decide(invoice, &command).expect_err("refused");
            format!("{what}: {} {e}\n", e.code())
        })
        .collect();
    expect![[r#"
        overpayment: PAYMENT_EXCEEDS_BALANCE a payment of 114.14 USD exceeds the balance of 114.13 USD
        zero: VALIDATION_FAILED the invoice is not valid: amount: must_be_positive (the amount must be greater than 0)
        sub-cent: VALIDATION_FAILED the invoice is not valid: amount: too_many_decimals (an amount in USD has at most 2 decimal places)
        euros: VALIDATION_FAILED the invoice is not valid: amount: currency_mismatch (the amount must be in USD)
        same payment id: PAYMENT_DUPLICATE a payment or refund with id 00000000-0000-0000-0000-000000009a01 is already recorded
        refund too much: REFUND_EXCEEDS_PAYMENT a refund of 40.01 USD exceeds the 40.00 USD left to refund on payment 00000000-0000-0000-0000-000000009a01
        refund unknown payment: PAYMENT_NOT_FOUND the invoice has no payment 00000000-0000-0000-0000-000000009a09
    "#]]
    .assert_eq(&out);
}

#[test]
fn a_zero_total_invoice_is_paid_on_issue_and_void_keeps_the_number() {
    let free = draft_with(quote_of(&[(0, ItemKind::Labor)], None));
    assert_eq!(run(&free, &issue(4)).status, S::Paid);
    let issued = run(&draft(), &issue(5));
    let void = run(
        &issued,
        &InvoiceCommand::Void {
            reason: reason("Billed twice"),
        },
    );
    assert_eq!(void.status, S::Void);
    assert_eq!(
        void.number.map(|n| n.to_string()),
        Some("INV-000005".into())
    );
}

#[test]
fn an_invoice_from_an_approved_estimate_takes_its_option_whole() {
    let option_quote = quote_of(
        &[(25_000, ItemKind::Service), (4_999, ItemKind::Material)],
        Some(1_000),
    );
    let option_id = EstimateOptionId::from_uuid(Uuid::from_u128(0x0b8));
    let (estimate, _) = estimate::create(
        EstimateId::from_uuid(Uuid::from_u128(0xe5)),
        NewEstimate {
            job_id: None,
            customer_id: CustomerId::from_uuid(Uuid::from_u128(1)),
            property_id: PropertyId::from_uuid(Uuid::from_u128(2)),
            currency: usd(),
            content: EstimateContent {
                options: vec![EstimateOption {
                    id: option_id,
                    name: name("Only"),
                    quote: option_quote.clone(),
                }],
                valid_until: t0() + Duration::days(30),
                notes: None,
            },
        },
        t0(),
        None,
    )
    .expect("valid");
    assert_eq!(
        from_estimate(&estimate).map_err(|e| e.to_string()),
        Err("only an approved estimate can be invoiced; this one is draft".into())
    );
    let sent = estimate::execute(&estimate, &EstimateCommand::Send, None, t0())
        .expect("sends")
        .0;
    let approved = estimate::execute(
        &sent,
        &EstimateCommand::Approve {
            option_id,
            signed_by: name("Ann"),
            signature: None,
            deposit_required: None,
        },
        None,
        t0(),
    )
    .expect("approves")
    .0;
    let (source, quote) = from_estimate(&approved).expect("approved");
    assert_eq!(
        source,
        InvoiceSource::Estimate {
            estimate_id: approved.id,
            revision: 1,
            option_id
        }
    );
    assert_eq!(quote, option_quote);
}

#[derive(Clone, Debug)]
enum Step {
    Pay(i64),
    Refund(usize, i64),
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (1_i64..20_000).prop_map(Step::Pay),
        (0_usize..6, 1_i64..20_000).prop_map(|(p, a)| Step::Refund(p, a)),
    ]
}

prop_compose! {
    fn arb_lines()(lines in prop::collection::vec((0_i64..50_000, prop::sample::select(pricebook::ItemKind::ALL.to_vec())), 1..6)) -> Vec<(i64, ItemKind)> {
        lines
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// The total is the lines plus tax minus discount, and no sequence of payments and refunds
    /// takes the balance below 0 or above the total; the balance is always
    /// total − payments + refunds, and paid exactly when it is 0.
    #[test]
    fn balances_stay_between_zero_and_the_total(
        lines in arb_lines(),
        discount_share in 0_i64..=100,
        steps in prop::collection::vec(arb_step(), 0..16),
    ) {
        let gross: i64 = lines.iter().map(|(c, _)| c).sum();
        let q = quote_of(&lines, Some(gross * discount_share / 100));
        let lines_sum: Decimal = q.lines.iter().map(|l| l.line_total.amount()).sum();
        let tax: Decimal = q.tax_lines.iter().map(|t| t.tax.amount()).sum();
        prop_assert_eq!(q.total.amount(), lines_sum + tax - q.discount.amount());

        let mut invoice = run(&draft_with(q), &issue(1));
        let mut events = 0_usize;
        for (n, step) in steps.into_iter().enumerate() {
            let command = match step {
                Step::Pay(amount) => pay(n as u128, amount),
                Step::Refund(p, amount) => {
                    let Some(payment) = invoice.payments.get(p % invoice.payments.len().max(1)) else { continue };
                    InvoiceCommand::Refund { refund: NewRefund { id: refund_id(n as u128), payment_id: payment.id, amount: cents(amount), reason: reason("Returned") } }
                }
            };
            match execute(&invoice, &command, None, t0()) {
                Ok((next, _)) => { invoice = next; events += 1; }
                Err(e) => prop_assert!(matches!(e, InvoiceError::PaymentExceedsBalance { .. } | InvoiceError::RefundExceedsPayment { .. } | InvoiceError::InvalidTransition { .. }), "unexpected refusal {e}"),
            }
            let balance = invoice.balance();
            prop_assert!(!balance.is_negative());
            prop_assert!(balance.amount() <= invoice.total().amount());
            prop_assert_eq!(balance.amount(), invoice.total().amount() - invoice.paid().amount() + invoice.refunded().amount());
            prop_assert_eq!(invoice.status == S::Paid, balance.is_zero());
        }
        prop_assert_eq!(invoice.version as usize, 2 + events);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A new revision of a pricebook item changes new quotes, never an invoice already priced
    /// from it, issued or not: the invoice holds its quote as a value.
    #[test]
    fn repricing_never_changes_an_invoice(
        first in 1_i64..10_000_000,
        second in 1_i64..10_000_000,
        quantity in 1_i64..1000,
        issue_it in any::<bool>(),
    ) {
        let item_id = crate::ids::PricebookItemId::from_uuid(Uuid::from_u128(0x17e2));
        let draft = |cents: i64| pricebook::ItemDraft {
            name: name("Drain clean"),
            description: None,
            category: None,
            details: pricebook::ItemDetails::Service {
                price: Money::new(Decimal::new(cents, 2), usd()),
                estimated_labor_hours: Decimal::ONE,
                trade: crate::text::TradeCode::parse("plumbing").expect("valid"),
                bundled_materials: Vec::new(),
                trip_fee: false,
            },
        };
        let v1 = pricebook::create_item(item_id, draft(first), usd(), t0()).expect("valid");
        let request = QuoteRequest {
            lines: vec![QuoteLine {
                source: LineSource::Item { item_id, revision: None, skill_level: None, labor_time: None },
                quantity: Decimal::new(quantity, 1),
                description: None,
            }],
            discount: None,
        };
        let markup = MarkupTiers::default();
        let price_with = |items: &[pricebook::PricebookItem]| {
            pricebook::quote(&PricingContext { currency: usd(), items, markup: &markup, taxes: &[], member: None, trip_fee_waived_by: None }, &request).expect("prices")
        };
        let q1 = price_with(std::slice::from_ref(&v1));
        let mut invoice = draft_with(q1.clone());
        if issue_it {
            invoice = run(&invoice, &issue(1));
        }
        let before = invoice.clone();

        let v2 = pricebook::revise_item(&v1, draft(second), usd(), t0()).expect("valid");
        let q2 = price_with(&[v1.clone(), v2]);
        prop_assert_eq!(q2.lines[0].item.map(|r| r.revision), Some(2));

        prop_assert_eq!(&invoice, &before);
        prop_assert_eq!(&invoice.quote, &q1);
        prop_assert_eq!(invoice.quote.lines[0].item.map(|r| r.revision), Some(1));
        prop_assert_eq!(invoice.total(), q1.total);
    }
}

// ---------------------------------------------------------------------------------------------
// Credit notes and write-offs.
// ---------------------------------------------------------------------------------------------

fn credit_note_id(n: u128) -> crate::ids::CreditNoteId {
    crate::ids::CreditNoteId::from_uuid(Uuid::from_u128(0xc4ed + n))
}

fn credit(
    n: u128,
    lines: Vec<(u32, Option<Decimal>)>,
    adjustment: Option<i64>,
    refund_of: Option<PaymentId>,
) -> InvoiceCommand {
    InvoiceCommand::Credit {
        id: credit_note_id(n),
        number: CreditNoteNumber::from_sequence(n as u64 + 1).expect("valid"),
        issue_date: day(2031, 3, 9),
        request: CreditRequest {
            lines: lines
                .into_iter()
                .map(|(line, quantity)| credit::CreditLineRequest { line, quantity })
                .collect(),
            adjustments: adjustment
                .map(|a| credit::Adjustment {
                    description: name("Goodwill"),
                    amount: cents(a),
                })
                .into_iter()
                .collect(),
            reason: reason("Goodwill"),
        },
        refund: refund_of.map(|payment_id| CreditRefund {
            id: refund_id(0x100 + n),
            payment_id,
        }),
    }
}

fn write_off(n: u128, amount: i64) -> InvoiceCommand {
    InvoiceCommand::WriteOff {
        write_off: WriteOff {
            id: crate::ids::WriteOffId::from_uuid(Uuid::from_u128(0x3717 + n)),
            amount: cents(amount),
            reason: reason("Customer unreachable"),
        },
    }
}

/// The goodwill case a bookkeeper reported: a 50.00 refund alone on a paid invoice puts 50.00
/// back on the balance; a credit note carrying the refund keeps it paid, and a credit note
/// alone beyond the balance is refused.
#[test]
fn goodwill_is_a_credit_note_with_its_refund() {
    let paid = run(&run(&draft(), &issue(1)), &pay(1, 15_413));
    assert_eq!(paid.status, S::Paid);

    let refunded_only = run(&paid, &refund(1, 1, 5_000));
    assert_eq!(refunded_only.status, S::Issued);
    assert_eq!(refunded_only.balance(), cents(5_000));

    let alone = execute(&paid, &credit(1, vec![], Some(5_000), None), None, t0());
    assert_eq!(
        alone.map(|_| ()).map_err(|e| e.code()),
        Err("CREDIT_EXCEEDS_BALANCE")
    );

    let goodwill = run(&paid, &credit(1, vec![], Some(5_000), Some(payment_id(1))));
    assert_eq!(goodwill.status, S::Paid);
    assert_eq!(goodwill.balance(), cents(0));
    assert_eq!(goodwill.credited(), cents(5_000));
    assert_eq!(goodwill.refunded(), cents(5_000));
    let note = &goodwill.credit_notes[0];
    assert_eq!(note.number.to_string(), "CN-000002");
    assert_eq!(note.refund_id, Some(goodwill.refunds[0].id));
    assert_eq!(goodwill.refundable(payment_id(1)), Some(cents(10_413)));
    // Credited, it cannot be voided; written off in part, the rest is still owed.
    let void = InvoiceCommand::Void {
        reason: reason("Wrong customer"),
    };
    let credited = run(
        &run(&draft(), &issue(3)),
        &credit(3, vec![], Some(100), None),
    );
    assert_eq!(credited.status, S::Issued);
    assert_eq!(
        execute(&credited, &void, None, t0())
            .map(|_| ())
            .map_err(|e| e.code()),
        Err("INVOICE_HAS_CREDITS")
    );
    let issued = run(&draft(), &issue(2));
    let part = run(&issued, &write_off(1, 413));
    assert_eq!((part.status, part.balance()), (S::Issued, cents(15_000)));
    let over = execute(&part, &write_off(2, 15_001), None, t0());
    assert_eq!(
        over.map(|_| ()).map_err(|e| e.code()),
        Err("WRITE_OFF_EXCEEDS_BALANCE")
    );
    let all = run(&part, &write_off(2, 15_000));
    assert_eq!((all.status, all.balance()), (S::Paid, cents(0)));
    assert_eq!(all.written_off(), cents(15_413));
}

/// Credit notes are refused for lines the invoice does not have, twice the same line, more than
/// is left of a line, and from a draft or a void invoice.
#[test]
fn credit_notes_refuse_what_the_invoice_does_not_bill() {
    let issued = run(&draft(), &issue(1));
    let code = |invoice: &Invoice, command: InvoiceCommand| {
        execute(invoice, &command, None, t0())
            .map(|_| ())
            .map_err(|e| e.code())
    };
    assert_eq!(
        code(&issued, credit(1, vec![(2, None)], None, None)),
        Err("VALIDATION_FAILED")
    );
    assert_eq!(
        code(&issued, credit(1, vec![(0, None), (0, None)], None, None)),
        Err("VALIDATION_FAILED")
    );
    assert_eq!(
        code(&issued, credit(1, vec![], None, None)),
        Err("VALIDATION_FAILED")
    );
    assert_eq!(
        code(
            &issued,
            credit(1, vec![(0, Some(Decimal::TWO))], None, None)
        ),
        Err("CREDIT_EXCEEDS_INVOICE")
    );
    let labour = run(&issued, &credit(1, vec![(0, None)], None, None));
    assert_eq!(labour.credit_notes[0].total, cents(10_000));
    assert_eq!(
        code(&labour, credit(2, vec![(0, None)], None, None)),
        Err("CREDIT_EXCEEDS_INVOICE")
    );
    // 50.00 of material and its 8.25 % tax (4.125, rounded to 4.13): the rest of the invoice, exactly.
    let rest = run(&labour, &credit(2, vec![(1, None)], None, None));
    assert_eq!(rest.credit_notes[1].total, cents(5_413));
    assert_eq!((rest.status, rest.balance()), (S::Paid, cents(0)));
    assert_eq!(
        code(&rest, credit(3, vec![], Some(1), None)),
        Err("CREDIT_EXCEEDS_INVOICE")
    );
    assert_eq!(
        code(&draft(), credit(1, vec![(0, None)], None, None)),
        Err("INVOICE_INVALID_TRANSITION")
    );
}

/// Custom lines with quantities, an 8.25 % tax on materials and a 7.5 % tax on everything, and
/// an amount or percentage discount.
fn quote_with_quantities(
    lines: &[(i64, Decimal, ItemKind)],
    discount: Option<pricebook::Discount>,
) -> Quote {
    let us = crate::compliance::Jurisdiction::parse(
        crate::customer::CountryCode::parse("US").expect("valid"),
        None,
        None,
    )
    .expect("valid");
    let taxes = [
        TaxRate {
            jurisdiction: us.clone(),
            name: name("State tax"),
            percent: crate::money::Percent::parse_str("8.25").expect("valid"),
            taxable: TaxableKinds {
                material: true,
                ..TaxableKinds::default()
            },
        },
        TaxRate {
            jurisdiction: us,
            name: name("City tax"),
            percent: crate::money::Percent::parse_str("7.5").expect("valid"),
            taxable: TaxableKinds {
                material: true,
                service: true,
                labor: true,
                equipment: true,
            },
        },
    ];
    let request = QuoteRequest {
        lines: lines
            .iter()
            .map(|&(price, quantity, kind)| QuoteLine {
                source: LineSource::Custom {
                    description: name("Work"),
                    unit_price: Money::new(Decimal::new(price, 3), usd()),
                    kind,
                },
                quantity,
                description: None,
            })
            .collect(),
        discount,
    };
    let markup = MarkupTiers::default();
    pricebook::quote(
        &PricingContext {
            currency: usd(),
            items: &[],
            markup: &markup,
            taxes: &taxes,
            member: None,
            trip_fee_waived_by: None,
        },
        &request,
    )
    .expect("prices")
}

#[derive(Clone, Debug)]
enum MoneyStep {
    Pay(i64),
    Refund(usize, i64),
    Credit {
        lines: Vec<(u32, Option<u32>)>,
        adjustment: Option<i64>,
        refund_of: Option<usize>,
    },
    WriteOff(i64),
}

fn arb_money_step() -> impl Strategy<Value = MoneyStep> {
    prop_oneof![
        (1_i64..40_000).prop_map(MoneyStep::Pay),
        (0_usize..6, 1_i64..20_000).prop_map(|(p, a)| MoneyStep::Refund(p, a)),
        (
            prop::collection::vec((0_u32..6, prop::option::of(1_u32..30_000)), 0..3),
            prop::option::of(1_i64..20_000),
            prop::option::of(0_usize..6),
        )
            .prop_map(|(lines, adjustment, refund_of)| MoneyStep::Credit {
                lines,
                adjustment,
                refund_of
            }),
        (1_i64..40_000).prop_map(MoneyStep::WriteOff),
    ]
}

prop_compose! {
    fn arb_quantity_lines()(lines in prop::collection::vec((1_i64..5_000_000, 1_u32..40_000, prop::sample::select(pricebook::ItemKind::ALL.to_vec())), 1..5)) -> Vec<(i64, Decimal, ItemKind)> {
        lines.into_iter().map(|(price, q, kind)| (price, Decimal::new(i64::from(q), 3), kind)).collect()
    }
}

fn arb_discount() -> impl Strategy<Value = Option<(bool, u32)>> {
    prop::option::of((any::<bool>(), 0_u32..=100))
}

fn discount_of(
    lines: &[(i64, Decimal, ItemKind)],
    d: Option<(bool, u32)>,
) -> Option<pricebook::Discount> {
    d.map(|(percent, share)| {
        if percent {
            pricebook::Discount::Percent {
                percent: crate::money::Percent::parse_str(&share.to_string()).expect("valid"),
            }
        } else {
            // A share of the smallest possible subtotal, so it never exceeds it.
            let floor: Decimal = lines
                .iter()
                .map(|(p, q, _)| (Decimal::new(*p, 3) * q).round_dp(2))
                .sum();
            pricebook::Discount::Amount {
                amount: Money::new(
                    (floor * Decimal::from(share) / Decimal::ONE_HUNDRED).round_dp(2),
                    usd(),
                ),
            }
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// For any sequence of payments, refunds, credit notes (with or without a refund) and
    /// write-offs: balance = total − credited − written off − paid + refunded, it is never
    /// negative nor above the total, the invoice is paid exactly when it is 0, credits never
    /// exceed the total, and every refusal is one of the documented ones.
    #[test]
    fn balance_is_total_less_credits_write_offs_and_net_payments(
        lines in arb_quantity_lines(),
        discount in arb_discount(),
        steps in prop::collection::vec(arb_money_step(), 0..20),
    ) {
        let q = quote_with_quantities(&lines, discount_of(&lines, discount));
        let mut invoice = run(&draft_with(q), &issue(1));
        for (n, step) in steps.into_iter().enumerate() {
            let n = n as u128;
            let payment = |p: usize| invoice.payments.get(p % invoice.payments.len().max(1)).map(|p| p.id);
            let command = match step {
                MoneyStep::Pay(amount) => pay(n, amount),
                MoneyStep::Refund(p, amount) => {
                    let Some(payment_id) = payment(p) else { continue };
                    InvoiceCommand::Refund { refund: NewRefund { id: refund_id(n), payment_id, amount: cents(amount), reason: reason("Returned") } }
                }
                MoneyStep::Credit { lines, adjustment, refund_of } => credit(
                    n,
                    lines.into_iter().map(|(l, q)| (l, q.map(|q| Decimal::new(i64::from(q), 3)))).collect(),
                    adjustment,
                    refund_of.and_then(payment),
                ),
                MoneyStep::WriteOff(amount) => write_off(n, amount),
            };
            match execute(&invoice, &command, None, t0()) {
                Ok((next, _)) => invoice = next,
                Err(e) => prop_assert!(
                    matches!(e.code(), "PAYMENT_EXCEEDS_BALANCE" | "REFUND_EXCEEDS_PAYMENT" | "INVOICE_INVALID_TRANSITION"
                        | "CREDIT_EXCEEDS_INVOICE" | "CREDIT_EXCEEDS_BALANCE" | "WRITE_OFF_EXCEEDS_BALANCE" | "VALIDATION_FAILED"),
                    "unexpected refusal {e}"
                ),
            }
            let balance = invoice.balance();
            prop_assert!(!balance.is_negative(), "negative balance {balance}");
            prop_assert!(balance.amount() <= invoice.total().amount());
            prop_assert_eq!(
                balance.amount(),
                invoice.total().amount() - invoice.credited().amount() - invoice.written_off().amount()
                    - invoice.paid().amount() + invoice.refunded().amount()
            );
            prop_assert!(invoice.credited().amount() <= invoice.total().amount());
            prop_assert_eq!(invoice.status == S::Paid, balance.is_zero());
            for note in &invoice.credit_notes {
                prop_assert!(!note.total.is_negative());
                prop_assert!(note.lines.iter().all(|l| !l.line_total.is_negative()));
            }
        }
        let replayed_total: Decimal = invoice.credit_notes.iter().map(|n| n.total.amount()).sum();
        prop_assert_eq!(replayed_total, invoice.credited().amount());
    }

    /// Crediting every line in full, split between any number of credit notes in any order,
    /// gives back the invoice's subtotal, discount, each tax and total exactly.
    #[test]
    fn crediting_every_line_in_parts_reverses_the_invoice_exactly(
        lines in arb_quantity_lines(),
        discount in arb_discount(),
        cuts in prop::collection::vec((0_u32..5, 1_u32..1000), 0..12),
    ) {
        let q = quote_with_quantities(&lines, discount_of(&lines, discount));
        let mut invoice = run(&draft_with(q), &issue(1));
        let line_count = invoice.quote.lines.len() as u32;
        for (n, (line, per_mille)) in cuts.into_iter().enumerate() {
            let line = line % line_count;
            let left = invoice.quote.lines[line as usize].quantity - credit::credited_quantities(&invoice)[line as usize];
            let part = (left * Decimal::from(per_mille) / Decimal::from(1000)).round_dp(3);
            if part.is_zero() {
                continue;
            }
            invoice = run(&invoice, &credit(n as u128, vec![(line, Some(part))], None, None));
        }
        let rest: Vec<(u32, Option<Decimal>)> = credit::credited_quantities(&invoice)
            .iter()
            .zip(&invoice.quote.lines)
            .enumerate()
            .filter(|(_, (c, l))| **c < l.quantity)
            .map(|(i, _)| (i as u32, None))
            .collect();
        if !rest.is_empty() {
            invoice = run(&invoice, &credit(99, rest, None, None));
        }
        let sum = |f: &dyn Fn(&CreditNote) -> Decimal| -> Decimal { invoice.credit_notes.iter().map(f).sum() };
        prop_assert_eq!(sum(&|n| n.subtotal.amount()), invoice.quote.subtotal.amount());
        prop_assert_eq!(sum(&|n| n.discount.amount()), invoice.quote.discount.amount());
        for (i, tax) in invoice.quote.tax_lines.iter().enumerate() {
            prop_assert_eq!(sum(&|n| n.tax_lines[i].tax.amount()), tax.tax.amount());
        }
        prop_assert_eq!(sum(&|n| n.total.amount()), invoice.total().amount());
        prop_assert!(invoice.balance().is_zero());
        prop_assert_eq!(invoice.status, S::Paid);
    }
}
