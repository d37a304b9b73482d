//! Maintenance agreements' timers on every backend, through the public API: two processes
//! firing every morning of a year generate each visit and bill each period once; a crash after
//! each step of a tick, and after each step of a cancellation or a change of plan that refunds
//! the unused days, recovers with each effect once.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde_json::json;

use hestami_core::ids::JobId;
use hestami_core::job::JobStatus;
use hestami_core::workforce::Technician;
use hestami_store::app::invoice::InvoiceFilter;
use hestami_store::app::job::JobFilter;
use hestami_store::app::maintenance::{Agreement, MaintenanceCommand, Plan};
use hestami_store::app::payments::TestProvider;
use hestami_store::app::{Caller, PageRequest, Services};
use hestami_store::engine::{EngineConfig, FaultHook};
use hestami_store::{Clock, Store, StoreError, StoreOptions};

use common::*;

on_every_backend!(
    two_processes_generate_and_bill_once,
    a_crash_after_each_tick_step_recovers_with_each_effect_once,
    a_crash_after_each_step_of_billing_a_visit_bills_it_once,
    a_crash_after_each_cancellation_step_refunds_once,
    a_crash_after_each_plan_change_step_refunds_and_bills_once,
);

#[derive(Debug)]
struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    fn set(&self, to: DateTime<Utc>) {
        *self.0.lock().expect("clock lock") = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock lock")
    }
}

/// Services over a new pool on the same database: another process, charging cards through
/// `processor` (the outside world, which every process of a test shares).
async fn process(
    fx: &Fixture,
    clock: &Arc<ManualClock>,
    config: EngineConfig,
    processor: &TestProvider,
) -> Services {
    let store = Store::connect(
        &fx.db.app_url,
        StoreOptions {
            max_connections: 4,
            clock: clock.clone(),
        },
    )
    .await
    .expect("connect");
    Services::with_processor(store, config, Arc::new(processor.clone()))
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// 06:00 in Chicago (the fixture organizations' time zone) on `day`.
fn morning(day: NaiveDate) -> DateTime<Utc> {
    chrono_tz::America::Chicago
        .from_local_datetime(&day.and_hms_opt(6, 0, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

/// A plan (tune-ups on 15 April and October, filter changes on the first Monday of each
/// quarter), a customer with a property, and an agreement on it from 1 January 2027 for a
/// year, billed monthly at 31.00, active.
async fn active_agreement(services: &Services, c: &Caller) -> Agreement {
    agreement_billed(services, c, "monthly", "31.00").await
}

/// The agreement of [`active_agreement`], billed `billing` at `price`.
async fn agreement_billed(
    services: &Services,
    c: &Caller,
    billing: &str,
    price: &str,
) -> Agreement {
    let plan: Plan = ok(
        services,
        c,
        MaintenanceCommand::CreatePlan(from_json(json!({
            "name": "Gold comfort",
            "visits": [
                { "name": "Tune-up", "trade": "hvac",
                  "rule": { "kind": "monthly_on_day", "every": 6, "day": 15 }, "startMonth": 4,
                  "window": { "start": "09:00:00", "end": "11:00:00" }, "durationMinutes": 90,
                  "services": [] },
                { "name": "Filter change", "trade": "hvac",
                  "rule": { "kind": "monthly_on_weekday", "every": 3, "nth": "first", "weekday": "Mon" },
                  "startMonth": 1, "window": { "start": "08:00:00", "end": "10:00:00" },
                  "durationMinutes": 30, "services": [] }
            ],
            "benefits": { "discount": null, "priority": null, "waiveTripFee": false },
            "prices": [{ "frequency": billing, "amount": usd(price) }]
        }))),
    )
    .await;
    let (customer, property) = customer_with_property(services, c, "Ada Member").await;
    let draft: Agreement = ok(
        services,
        c,
        MaintenanceCommand::CreateContract(from_json(json!({
            "customerId": customer.id, "propertyIds": [property.id], "planId": plan.id,
            "startDate": "2027-01-01", "termMonths": 12, "billing": billing,
            "autoRenew": false, "leadDays": 30, "cardToken": "tok_visa"
        }))),
    )
    .await;
    ok(
        services,
        c,
        MaintenanceCommand::Activate(from_json(json!({
            "agreementId": draft.id, "signedBy": "Ada Member", "signature": null,
            "expectedVersion": null
        }))),
    )
    .await
}

/// How many visits, jobs, period invoices and invoices the agreement's organization has.
async fn effects(
    services: &Services,
    c: &Caller,
    agreement: &Agreement,
) -> (usize, usize, usize, usize) {
    let page = PageRequest::parse(Some(200), None).unwrap();
    let visits = services.agreement_visits(c, agreement.id).await.unwrap();
    let jobs = services
        .job_list(c, JobFilter::default(), page)
        .await
        .unwrap()
        .items;
    let periods = services.agreement_invoices(c, agreement.id).await.unwrap();
    let invoices = services
        .invoice_list(c, InvoiceFilter::default(), page)
        .await
        .unwrap()
        .page
        .items;
    (
        visits.items.len(),
        jobs.len(),
        periods.len(),
        invoices.len(),
    )
}

async fn two_processes_generate_and_bill_once(fx: Fixture) {
    let processor = TestProvider::new();
    let clock = Arc::new(ManualClock(Mutex::new(morning(date(2027, 1, 1)))));
    let first = process(&fx, &clock, EngineConfig::default(), &processor).await;
    let second = process(&fx, &clock, EngineConfig::default(), &processor).await;
    let org = fx.org("Members").await;
    let c = &org.caller;
    let agreement = active_agreement(&first, c).await;
    let mut day = date(2027, 1, 1);
    while day < date(2028, 1, 5) {
        clock.set(morning(day));
        let (a, b) = tokio::join!(first.fire_due_timers(), second.fire_due_timers());
        a.unwrap();
        b.unwrap();
        day = day.succ_opt().unwrap();
    }
    // Four filter changes and two tune-ups; twelve months.
    assert_eq!(effects(&first, c, &agreement).await, (6, 6, 12, 12));
    // Each month charged to the card once.
    assert_eq!(moved(&processor, "charge"), 12);
    let visits = first.agreement_visits(c, agreement.id).await.unwrap();
    assert!(visits.items.iter().all(|v| !v.visit.late));
    let now = first.agreement(c, agreement.id).await.unwrap();
    assert_eq!(
        now.status,
        hestami_core::maintenance::AgreementStatus::Expired
    );
}

/// How many charges or refunds (`kind`) the provider made.
fn moved(processor: &TestProvider, kind: &str) -> usize {
    processor.moved().iter().filter(|m| m.kind == kind).count()
}

/// A fault that crashes the run right after the step named `step` commits, once.
fn crash_after(step: &'static str) -> FaultHook {
    let fired = Arc::new(AtomicBool::new(false));
    Arc::new(move |_, _, name| name == step && !fired.swap(true, Ordering::SeqCst))
}

/// The steps of an agreement's tick (and, when it bills visits, `invoice_visit_jobs` last).
const TICK_STEPS: [&str; 8] = [
    "generate_visits",
    "bill_periods",
    "due_charges",
    "reserve_payment",
    "charge",
    "record_payment",
    "charges_approved",
    "close_term",
];

async fn a_crash_after_each_tick_step_recovers_with_each_effect_once(fx: Fixture) {
    let processor = TestProvider::new();
    for step in TICK_STEPS {
        let clock = Arc::new(ManualClock(Mutex::new(morning(date(2027, 1, 1)))));
        let setup = process(&fx, &clock, EngineConfig::default(), &processor).await;
        let org = fx.org(&format!("Crash {step}")).await;
        let c = &org.caller;
        let agreement = active_agreement(&setup, c).await;
        // The first tick generates the 4 January filter change, bills January and charges it.
        let charged = moved(&processor, "charge");
        let world = (&fx, &clock, &processor);
        let executor = format!("crashing-{step}");
        let crashing = crashing_tick(world, &executor, step).await;
        // The crash stopped the tick where asked: what its earlier steps did is there.
        let partial = match step {
            "generate_visits" => (1, 1, 0, 0),
            _ => (1, 1, 1, 1),
        };
        assert_eq!(
            effects(&crashing, c, &agreement).await,
            partial,
            "crash after {step}"
        );
        drop(crashing);
        let restarted = recovered_tick(world, &executor, step).await;
        clock.set(morning(date(2027, 1, 2)));
        restarted.fire_due_timers().await.unwrap();
        assert_eq!(
            effects(&restarted, c, &agreement).await,
            (1, 1, 1, 1),
            "crash after {step}"
        );
        assert_eq!(
            moved(&processor, "charge"),
            charged + 1,
            "crash after {step}: one charge"
        );
        let invoice = restarted.agreement_invoices(c, agreement.id).await.unwrap()[0].invoice_id;
        assert_eq!(
            restarted.invoice_get(c, invoice).await.unwrap().status,
            hestami_core::invoice::InvoiceStatus::Paid,
            "crash after {step}"
        );
        let now = restarted.agreement(c, agreement.id).await.unwrap();
        assert_eq!(
            now.billed_until,
            Some(date(2027, 2, 1)),
            "crash after {step}"
        );
        // Next: the February invoice on 1 February (the April visits' lead begins later).
        assert_eq!(
            now.next_attention,
            Some(date(2027, 2, 1)),
            "crash after {step}"
        );
    }
}

/// The visit's job of a per-visit agreement, done: generated by the first tick, scheduled,
/// assigned to a ready technician and worked to completed.
async fn done_visit(services: &Services, c: &Caller, agreement: &Agreement) -> JobId {
    services.fire_due_timers().await.unwrap();
    let visits = services.agreement_visits(c, agreement.id).await.unwrap();
    let job = visits.items[0].visit.job_id;
    let tech: Technician = ok(services, c, new_technician("Hal Hvac", None, &["hvac"])).await;
    ensure_ready(services, c).await;
    let tech = ready(services, c, &tech).await;
    work_to_completed(services, c, job, &tech).await;
    job
}

async fn a_crash_after_each_step_of_billing_a_visit_bills_it_once(fx: Fixture) {
    let processor = TestProvider::new();
    for step in TICK_STEPS.into_iter().chain(["invoice_visit_jobs"]) {
        let clock = Arc::new(ManualClock(Mutex::new(morning(date(2027, 1, 1)))));
        let setup = process(&fx, &clock, EngineConfig::default(), &processor).await;
        let org = fx.org(&format!("Visit crash {step}")).await;
        let c = &org.caller;
        let agreement = agreement_billed(&setup, c, "per_visit", "95.00").await;
        let job = done_visit(&setup, c, &agreement).await;
        assert!(
            setup
                .agreement_invoices(c, agreement.id)
                .await
                .unwrap()
                .is_empty()
        );
        let charged = moved(&processor, "charge");
        // The completion made the agreement due: its next tick bills the visit on its job.
        let world = (&fx, &clock, &processor);
        let executor = format!("visit-{step}");
        drop(crashing_tick(world, &executor, step).await);
        let restarted = recovered_tick(world, &executor, step).await;
        let billed = restarted.agreement_invoices(c, agreement.id).await.unwrap();
        assert_eq!(billed.len(), 1, "crash after {step}: {billed:?}");
        assert_eq!(billed[0].job_id, Some(job), "crash after {step}");
        let invoice = restarted
            .invoice_get(c, billed[0].invoice_id)
            .await
            .unwrap();
        assert_eq!(
            (invoice.total().amount_text(), invoice.status),
            (
                "95.00".to_owned(),
                hestami_core::invoice::InvoiceStatus::Paid
            ),
            "crash after {step}"
        );
        assert_eq!(
            moved(&processor, "charge"),
            charged + 1,
            "crash after {step}: one charge"
        );
        assert_eq!(
            restarted.job_get(c, job).await.unwrap().status,
            JobStatus::Paid,
            "crash after {step}"
        );
    }
}

/// Fires the due timers in a process that crashes right after the step `step` commits: the
/// crashed process, whose tick is left unfinished in the journal.
async fn crashing_tick(
    (fx, clock, processor): (&Fixture, &Arc<ManualClock>, &TestProvider),
    executor: &str,
    step: &'static str,
) -> Services {
    let crashing = process(
        fx,
        clock,
        EngineConfig {
            executor_id: executor.to_owned(),
            fault: Some(crash_after(step)),
            ..EngineConfig::default()
        },
        processor,
    )
    .await;
    crashing.fire_due_timers().await.unwrap();
    crashing
}

/// The process of [`crashing_tick`], restarted: it takes back its own unfinished tick and
/// resumes it from its journal (the step it crashed after is not run again), then fires the
/// timers again past the crashed pass's lease.
async fn recovered_tick(
    (fx, clock, processor): (&Fixture, &Arc<ManualClock>, &TestProvider),
    executor: &str,
    step: &'static str,
) -> Services {
    let restarted = process(
        fx,
        clock,
        EngineConfig {
            executor_id: executor.to_owned(),
            ..EngineConfig::default()
        },
        processor,
    )
    .await;
    assert_eq!(
        restarted.engine().recover(true).await.unwrap(),
        1,
        "crash after {step}"
    );
    clock.set(clock.now() + chrono::Duration::minutes(6));
    restarted.fire_due_timers().await.unwrap();
    restarted
}

/// Submits `command` as `c` in a process that crashes right after `step` commits, restarts it
/// (the same executor), recovers the workflow and replays the request: the restarted process
/// and the agreement the request answered with.
async fn crash_then_replay(
    (fx, clock, processor): (&Fixture, &Arc<ManualClock>, &TestProvider),
    c: &Caller,
    executor: &str,
    step: &'static str,
    command: MaintenanceCommand,
) -> (Services, Agreement) {
    let config = |fault: Option<FaultHook>| EngineConfig {
        executor_id: executor.to_owned(),
        fault,
        ..EngineConfig::default()
    };
    let crashing = process(fx, clock, config(Some(crash_after(step))), processor).await;
    let submitted = request(command);
    match crashing.submit(c, submitted.clone()).await {
        Err(StoreError::InjectedCrash) => {}
        other => panic!("crash after {step}: expected a crash, got {other:?}"),
    }
    drop(crashing);
    let restarted = process(fx, clock, config(None), processor).await;
    assert_eq!(
        restarted.engine().recover(true).await.unwrap(),
        1,
        "crash after {step}"
    );
    let replay = restarted.submit(c, submitted).await.unwrap();
    assert!(replay.replayed, "crash after {step}");
    let agreement = serde_json::from_str(&replay.outcome.unwrap()).unwrap();
    (restarted, agreement)
}

/// A new organization `name` with the agreement of [`active_agreement`] on 1 January 2027,
/// whose first tick billed January and charged it to the card on file: the clock, the process
/// that set it up, the organization and the agreement.
async fn paid_january(
    fx: &Fixture,
    processor: &TestProvider,
    name: &str,
) -> (Arc<ManualClock>, Services, Org, Agreement) {
    let clock = Arc::new(ManualClock(Mutex::new(morning(date(2027, 1, 1)))));
    let setup = process(fx, &clock, EngineConfig::default(), processor).await;
    let org = fx.org(name).await;
    let agreement = active_agreement(&setup, &org.caller).await;
    setup.fire_due_timers().await.unwrap();
    let january = setup
        .agreement_invoices(&org.caller, agreement.id)
        .await
        .unwrap()[0]
        .invoice_id;
    assert_eq!(
        setup
            .invoice_get(&org.caller, january)
            .await
            .unwrap()
            .status,
        hestami_core::invoice::InvoiceStatus::Paid
    );
    (clock, setup, org, agreement)
}

async fn a_crash_after_each_cancellation_step_refunds_once(fx: Fixture) {
    let processor = TestProvider::new();
    for step in [
        "cancel_agreement",
        "check_refund",
        "reserve_refund",
        "refund",
        "record_refund",
    ] {
        let (clock, setup, org, agreement) =
            paid_january(&fx, &processor, &format!("Cancel crash {step}")).await;
        let c = &org.caller;
        let january = setup.agreement_invoices(c, agreement.id).await.unwrap()[0].invoice_id;
        let refunds = || moved(&processor, "refund");
        let before = refunds();
        // Cancelled on 16 January: 17 to 31 January unused, 15 of 31 days of 31.00.
        clock.set(morning(date(2027, 1, 16)));
        let cancel = MaintenanceCommand::Cancel(from_json(json!({
            "agreementId": agreement.id, "reason": "Moving away", "expectedVersion": null
        })));
        let world = (&fx, &clock, &processor);
        let (restarted, cancelled) =
            crash_then_replay(world, c, &format!("cancel-{step}"), step, cancel).await;
        let credits = cancelled.cancellation.unwrap().credits;
        assert_eq!(credits.len(), 1, "crash after {step}");
        assert_eq!(
            credits[0].amount.amount_text(),
            "15.00",
            "crash after {step}"
        );
        assert_eq!(refunds(), before + 1, "crash after {step}: one refund");
        let invoice = restarted.invoice_get(c, january).await.unwrap();
        assert_eq!(
            (
                invoice.refunded().amount_text(),
                invoice.credited().amount_text(),
                invoice.credit_notes.len(),
                invoice.status
            ),
            (
                "15.00".to_owned(),
                "15.00".to_owned(),
                1,
                hestami_core::invoice::InvoiceStatus::Paid
            ),
            "crash after {step}"
        );
    }
}

async fn a_crash_after_each_plan_change_step_refunds_and_bills_once(fx: Fixture) {
    let processor = TestProvider::new();
    for step in [
        "change_plan",
        "check_refund",
        "reserve_refund",
        "refund",
        "record_refund",
    ] {
        let (clock, setup, org, agreement) =
            paid_january(&fx, &processor, &format!("Change crash {step}")).await;
        let c = &org.caller;
        let platinum: Plan = ok(
            &setup,
            c,
            MaintenanceCommand::CreatePlan(from_json(json!({
                "name": "Platinum",
                "visits": [{ "name": "Check", "trade": "hvac",
                             "rule": { "kind": "monthly_on_day", "every": 1, "day": 20 },
                             "window": { "start": "13:00:00", "end": "15:00:00" },
                             "durationMinutes": 45, "services": [] }],
                "benefits": { "discount": null, "priority": null, "waiveTripFee": false },
                "prices": [{ "frequency": "monthly", "amount": usd("62.00") }]
            }))),
        )
        .await;
        let refunds = || moved(&processor, "refund");
        let before = refunds();
        // Changed on 16 January: 17 to 31 January refunded at 31.00 and billed at 62.00.
        clock.set(morning(date(2027, 1, 16)));
        let change = MaintenanceCommand::ChangePlan(from_json(json!({
            "agreementId": agreement.id, "planId": platinum.id, "expectedVersion": null
        })));
        let world = (&fx, &clock, &processor);
        let (restarted, changed) =
            crash_then_replay(world, c, &format!("change-{step}"), step, change).await;
        assert_eq!(changed.plan_id, platinum.id, "crash after {step}");
        assert_eq!(refunds(), before + 1, "crash after {step}: one refund");
        let periods = restarted.agreement_invoices(c, agreement.id).await.unwrap();
        assert_eq!(periods.len(), 2, "crash after {step}: January and its rest");
        let january = restarted
            .invoice_get(c, periods[0].invoice_id)
            .await
            .unwrap();
        assert_eq!(
            (january.refunded().amount_text(), january.credit_notes.len()),
            ("15.00".to_owned(), 1),
            "crash after {step}"
        );
        let rest = restarted
            .invoice_get(c, periods[1].invoice_id)
            .await
            .unwrap();
        assert_eq!(
            rest.total().amount_text(),
            "30.00",
            "crash after {step}: 62.00 × 15/31"
        );
    }
}
