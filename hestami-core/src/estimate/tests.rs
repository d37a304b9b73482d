//! Tests of the estimate state machine: snapshots of the table and of every refusal, approval,
//! revision, expiry and conversion, and property tests (replay, repricing never reaches a
//! priced estimate).
use super::*;

use chrono::{Duration, TimeZone as _};
use expect_test::expect;
use proptest::prelude::*;
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::ids::PricebookItemId;
use crate::pricebook::{
    self, ItemDetails, ItemDraft, ItemKind, LineSource, MarkupTiers, PricingContext, QuoteLine,
    QuoteRequest,
};
use crate::text::TradeCode;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2031, 3, 2, 21, 58, 3)
        .single()
        .expect("a valid instant")
}

fn usd() -> Currency {
    Currency::parse("USD").expect("listed")
}

fn name(raw: &str) -> Name {
    Name::parse(raw).expect("valid")
}

fn option_id(n: u128) -> EstimateOptionId {
    EstimateOptionId::from_uuid(Uuid::from_u128(0x0b7 + n))
}

fn custom_quote(price: &str) -> Quote {
    let request = QuoteRequest {
        lines: vec![QuoteLine {
            source: LineSource::Custom {
                description: name("Replace water heater"),
                unit_price: Money::parse(price, usd()).expect("valid"),
                kind: ItemKind::Service,
            },
            quantity: Decimal::ONE,
            description: None,
        }],
        discount: None,
    };
    let markup = MarkupTiers::default();
    pricebook::quote(
        &PricingContext {
            currency: usd(),
            items: &[],
            markup: &markup,
            taxes: &[],
            member: None,
            trip_fee_waived_by: None,
        },
        &request,
    )
    .expect("prices")
}

fn content() -> EstimateContent {
    EstimateContent {
        options: vec![
            EstimateOption {
                id: option_id(1),
                name: name("Good"),
                quote: custom_quote("1000"),
            },
            EstimateOption {
                id: option_id(2),
                name: name("Best"),
                quote: custom_quote("1800"),
            },
        ],
        valid_until: t0() + Duration::days(30),
        notes: None,
    }
}

fn new_estimate() -> NewEstimate {
    NewEstimate {
        job_id: Some(JobId::from_uuid(Uuid::from_u128(3))),
        customer_id: CustomerId::from_uuid(Uuid::from_u128(1)),
        property_id: PropertyId::from_uuid(Uuid::from_u128(2)),
        currency: usd(),
        content: content(),
    }
}

fn created() -> (Estimate, EstimateEvent) {
    create(
        EstimateId::from_uuid(Uuid::from_u128(0xe5)),
        new_estimate(),
        t0(),
        None,
    )
    .expect("valid")
}

fn approve(option: u128, deposit: Option<&str>) -> EstimateCommand {
    EstimateCommand::Approve {
        option_id: option_id(option),
        signed_by: name("Ann Customer"),
        signature: None,
        deposit_required: deposit.map(|d| Money::parse(d, usd()).expect("valid")),
    }
}

fn in_state(status: EstimateStatus) -> Estimate {
    let (e, _) = created();
    Estimate { status, ..e }
}

fn commands() -> Vec<EstimateCommand> {
    vec![
        EstimateCommand::Send,
        approve(1, None),
        EstimateCommand::Decline { reason: None },
        EstimateCommand::Expire,
        EstimateCommand::Revise { content: content() },
    ]
}

#[test]
fn transition_table_snapshot() {
    let out: String = TRANSITIONS
        .iter()
        .map(|(from, a, to)| format!("{from} --{}--> {to}\n", a.as_str()))
        .collect();
    expect![[r#"
        draft --send--> sent
        sent --approve--> approved
        sent --decline--> declined
        sent --expire--> expired
        draft --revise--> draft
        sent --revise--> draft
        declined --revise--> draft
        expired --revise--> draft
    "#]]
    .assert_eq(&out);
}

#[test]
fn every_command_in_every_state() {
    // Within the validity window, so that only the table decides.
    let now = t0() + Duration::days(1);
    let mut out = String::new();
    for status in EstimateStatus::ALL {
        for command in commands() {
            let result = match decide(&in_state(status), &command, now) {
                Ok(change) => format!("ok {}", target(status, &change)),
                Err(e) => format!("{}: {e}", e.code()),
            };
            out.push_str(&format!(
                "{status} {}: {result}\n",
                command.action().as_str()
            ));
        }
    }
    expect![[r#"
        draft send: ok sent
        draft approve: ESTIMATE_INVALID_TRANSITION: an estimate in state draft cannot move to approved; allowed: sent, draft
        draft decline: ESTIMATE_INVALID_TRANSITION: an estimate in state draft cannot move to declined; allowed: sent, draft
        draft expire: ESTIMATE_INVALID_TRANSITION: an estimate in state draft cannot move to expired; allowed: sent, draft
        draft revise: ok draft
        sent send: ESTIMATE_INVALID_TRANSITION: an estimate in state sent cannot move to sent; allowed: approved, declined, expired, draft
        sent approve: ok approved
        sent decline: ok declined
        sent expire: ESTIMATE_NOT_YET_EXPIRED: the estimate is valid until 2031-04-01 21:58:03 UTC
        sent revise: ok draft
        approved send: ESTIMATE_INVALID_TRANSITION: an estimate in state approved cannot move to sent; allowed: none
        approved approve: ESTIMATE_INVALID_TRANSITION: an estimate in state approved cannot move to approved; allowed: none
        approved decline: ESTIMATE_INVALID_TRANSITION: an estimate in state approved cannot move to declined; allowed: none
        approved expire: ESTIMATE_INVALID_TRANSITION: an estimate in state approved cannot move to expired; allowed: none
        approved revise: ESTIMATE_INVALID_TRANSITION: an estimate in state approved cannot move to draft; allowed: none
        declined send: ESTIMATE_INVALID_TRANSITION: an estimate in state declined cannot move to sent; allowed: draft
        declined approve: ESTIMATE_INVALID_TRANSITION: an estimate in state declined cannot move to approved; allowed: draft
        declined decline: ESTIMATE_INVALID_TRANSITION: an estimate in state declined cannot move to declined; allowed: draft
        declined expire: ESTIMATE_INVALID_TRANSITION: an estimate in state declined cannot move to expired; allowed: draft
        declined revise: ok draft
        expired send: ESTIMATE_INVALID_TRANSITION: an estimate in state expired cannot move to sent; allowed: draft
        expired approve: ESTIMATE_INVALID_TRANSITION: an estimate in state expired cannot move to approved; allowed: draft
        expired decline: ESTIMATE_INVALID_TRANSITION: an estimate in state expired cannot move to declined; allowed: draft
        expired expire: ESTIMATE_INVALID_TRANSITION: an estimate in state expired cannot move to expired; allowed: draft
        expired revise: ok draft
    "#]]
    .assert_eq(&out);
}

#[test]
fn approval_refusals() {
    let sent = in_state(S::Sent);
    let now = t0() + Duration::days(1);
    let cases = [
        ("unknown option", approve(9, None), now),
        ("deposit over total", approve(1, Some("1000.01")), now),
        ("deposit sub-cent", approve(1, Some("10.005")), now),
        ("deposit zero", approve(1, Some("0")), now),
        ("too late", approve(1, None), t0() + Duration::days(31)),
    ];
    let out: String = cases
        .into_iter()
        .map(|(what, command, at)| {
            let e = decide(&sent, &command, at).expect_err("refused");
            format!("{what}: {} {e}\n", e.code())
        })
        .collect();
    expect![[r#"
        unknown option: ESTIMATE_OPTION_NOT_FOUND the estimate has no option 00000000-0000-0000-0000-0000000000c0
        deposit over total: VALIDATION_FAILED the estimate is not valid: depositRequired: exceeds_total (the deposit is more than the option's total of 1000.00 USD)
        deposit sub-cent: VALIDATION_FAILED the estimate is not valid: depositRequired: too_many_decimals (an amount in USD has at most 2 decimal places)
        deposit zero: VALIDATION_FAILED the estimate is not valid: depositRequired: must_be_positive (a deposit must be greater than 0)
        too late: ESTIMATE_EXPIRED the estimate expired at 2031-04-01 21:58:03 UTC
    "#]]
    .assert_eq(&out);
}

#[test]
fn content_is_validated() {
    let mut bad = content();
    bad.options[1].name = name("good");
    bad.options[1].id = option_id(1);
    bad.options[0].quote.currency = Currency::parse("EUR").expect("listed");
    bad.valid_until = t0();
    let out: String = validate_content(&bad, usd(), t0())
        .iter()
        .map(|p| format!("{p}\n"))
        .collect();
    expect![[r#"
        options[0]: currency_mismatch (the option must be priced in USD)
        options[1].name: duplicate (another option has the same name)
        options[1].id: duplicate (another option has the same id)
        validUntil: must_be_in_future (an estimate must be valid until a time in the future)
    "#]]
    .assert_eq(&out);
    let empty = EstimateContent {
        options: vec![],
        ..content()
    };
    assert_eq!(
        validate_content(&empty, usd(), t0())
            .iter()
            .map(|p| p.code)
            .collect::<Vec<_>>(),
        ["required"]
    );
}

#[test]
fn the_happy_path_ends_in_planned_work() {
    let (e, created_event) = created();
    assert_eq!(
        planned_work(&e).map_err(|e| e.code()),
        Err("ESTIMATE_NOT_APPROVED")
    );
    let now = t0() + Duration::hours(1);
    let (e, sent) = execute(&e, &EstimateCommand::Send, None, now).expect("sends");
    assert_eq!(e.sent_at, Some(now));
    let (e, approved) = execute(&e, &approve(2, Some("500")), None, now).expect("approves");
    assert_eq!(e.status, S::Approved);
    assert_eq!(e.version, 3);
    let work = planned_work(&e).expect("approved");
    assert_eq!(work.option_name.as_str(), "Best");
    assert_eq!(work.total.amount().to_string(), "1800.00");
    assert_eq!(
        work.deposit_required.map(|d| d.amount().to_string()),
        Some("500.00".into())
    );
    assert_eq!(work.lines, e.options[1].quote.lines);
    assert_eq!(
        replay(e.id, &[created_event, sent, approved]),
        Some(e.clone())
    );
}

#[test]
fn revising_makes_the_next_revision_and_keeps_the_old_one() {
    let (draft, _) = created();
    let now = t0() + Duration::hours(1);
    let (sent, _) = execute(&draft, &EstimateCommand::Send, None, now).expect("sends");
    let mut new_content = content();
    new_content.options.truncate(1);
    new_content.options[0].quote = custom_quote("950");
    let (revised, event) = execute(
        &sent,
        &EstimateCommand::Revise {
            content: new_content,
        },
        None,
        now,
    )
    .expect("revises");
    assert_eq!(
        (revised.revision, revised.status, revised.sent_at),
        (2, S::Draft, None)
    );
    assert_eq!(event.revision, 2);
    assert_eq!(revised.options.len(), 1);
    // The earlier revision is a value the caller still holds, untouched.
    assert_eq!(sent.revision, 1);
    assert_eq!(sent.options.len(), 2);
}

#[test]
fn expiry_waits_for_valid_until() {
    let sent = in_state(S::Sent);
    assert!(decide(&sent, &EstimateCommand::Expire, sent.valid_until).is_ok());
    assert!(
        decide(
            &sent,
            &EstimateCommand::Expire,
            sent.valid_until - Duration::seconds(1)
        )
        .is_err()
    );
    let draft = in_state(S::Draft);
    assert_eq!(
        decide(&draft, &EstimateCommand::Send, draft.valid_until).map_err(|e| e.code()),
        Err("ESTIMATE_EXPIRED")
    );
}

fn plumbing_item(price_cents: i64) -> ItemDraft {
    ItemDraft {
        name: name("Flush water heater"),
        description: None,
        category: None,
        details: ItemDetails::Service {
            price: Money::from_minor_units(price_cents, usd()),
            estimated_labor_hours: Decimal::ONE,
            trade: TradeCode::parse("plumbing").expect("valid"),
            bundled_materials: vec![],
            trip_fee: false,
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A new revision of a pricebook item changes new quotes, never an estimate already priced.
    #[test]
    fn repricing_never_changes_a_priced_estimate(
        first in 1_i64..10_000_000,
        second in 1_i64..10_000_000,
        quantity in 1_i64..1000,
        approve_first in any::<bool>(),
    ) {
        let item_id = PricebookItemId::from_uuid(Uuid::from_u128(0x17e1));
        let v1 = pricebook::create_item(item_id, plumbing_item(first), usd(), t0()).expect("valid");
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
        let mut c = content();
        c.options[0].quote = q1.clone();
        let (mut estimate, _) = create(EstimateId::from_uuid(Uuid::from_u128(0xe5)), NewEstimate { content: c, ..new_estimate() }, t0(), None).expect("valid");
        if approve_first {
            estimate = execute(&estimate, &EstimateCommand::Send, None, t0()).expect("sends").0;
            estimate = execute(&estimate, &approve(1, None), None, t0()).expect("approves").0;
        }
        let before = estimate.clone();

        let v2 = pricebook::revise_item(&v1, plumbing_item(second), usd(), t0()).expect("valid");
        let q2 = price_with(&[v1.clone(), v2]);
        prop_assert_eq!(q2.lines[0].item.map(|r| r.revision), Some(2));
        prop_assert_eq!(q2.total.amount(), (Decimal::new(second, 2) * Decimal::new(quantity, 1))
            .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero));

        // The estimate holds its snapshot, and its lines still name the revision they came from.
        prop_assert_eq!(&estimate, &before);
        prop_assert_eq!(&estimate.options[0].quote, &q1);
        prop_assert_eq!(estimate.options[0].quote.lines[0].item.map(|r| r.revision), Some(1));
        if approve_first {
            let work = planned_work(&estimate).expect("approved");
            prop_assert_eq!(work.total, q1.total);
        }
    }

    /// Any sequence of commands either is refused and changes nothing, or its event replays to
    /// the same estimate; an approved estimate never changes again.
    #[test]
    fn replay_rebuilds_and_approved_is_final(script in prop::collection::vec((0_usize..5, 0_i64..40), 0..12)) {
        let (mut e, first) = created();
        let mut events = vec![first];
        let mut approved: Option<Estimate> = None;
        for (which, day) in script {
            let command = commands().swap_remove(which);
            let now = t0() + Duration::days(day);
            if let Ok((next, event)) = execute(&e, &command, None, now) {
                prop_assert!(approved.is_none(), "an approved estimate changed");
                prop_assert_eq!(event.version, e.version + 1);
                e = next;
                events.push(event);
            }
            if e.status == S::Approved {
                approved.get_or_insert_with(|| e.clone());
            }
        }
        prop_assert_eq!(replay(e.id, &events), Some(e));
    }
}

#[test]
fn an_approved_estimate_without_a_job_is_linked_to_one_with_an_event() {
    let (draft, created) = create(
        EstimateId::from_uuid(Uuid::from_u128(0xe6)),
        NewEstimate {
            job_id: None,
            ..new_estimate()
        },
        t0(),
        None,
    )
    .expect("valid");
    let (sent, e2) = execute(&draft, &EstimateCommand::Send, None, t0()).expect("sends");
    let job = JobId::from_uuid(Uuid::from_u128(0x10b));
    assert!(matches!(
        link_job(&sent, job, None, t0()),
        Err(EstimateError::NotApproved { .. })
    ));
    let (approved, e3) = execute(&sent, &approve(1, None), None, t0()).expect("approves");
    let (linked, e4) = link_job(&approved, job, None, t0()).expect("links");
    assert_eq!(
        (linked.job_id, linked.version, linked.status),
        (Some(job), approved.version + 1, EstimateStatus::Approved)
    );
    assert_eq!(
        replay(draft.id, &[created, e2, e3, e4]).as_ref(),
        Some(&linked)
    );
    assert!(link_job(&linked, job, None, t0()).is_err(), "linked once");
}
