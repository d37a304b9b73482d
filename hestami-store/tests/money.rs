//! The money path through the store, on SQLite and PostgreSQL: the gapless invoice sequence
//! under crashes and refusals, the payment workflow crashing at every point (exactly one
//! charge), provider declines and timeouts, the estimate expiry and invoice overdue timers, and
//! the all-or-nothing import.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Duration as ChronoDuration, TimeZone as _, Utc};
use serde_json::json;

use hestami_core::estimate::{Estimate, EstimateStatus};
use hestami_core::invoice::{Invoice, InvoiceStatus};
use hestami_core::job::{Job, JobStatus};
use hestami_core::pricebook::PricebookItem;
use hestami_store::app::estimate::EstimateCommandInput as E;
use hestami_store::app::invoice::{InvoiceCommandInput as I, InvoiceFilter};
use hestami_store::app::payments::{Behavior, TestProvider};
use hestami_store::app::pricebook::{ImportReport, PricebookCommand as P};
use hestami_store::app::{Caller, PageRequest, Services};
use hestami_store::engine::{EngineConfig, FaultHook};
use hestami_store::{Clock, Store, StoreError, StoreOptions};

use common::*;

on_every_backend!(
    the_money_path_moves_the_job_to_paid,
    invoice_numbers_are_gapless_across_crashes_and_refusals,
    a_payment_crashing_anywhere_charges_exactly_once,
    a_goodwill_credit_crashing_anywhere_refunds_once_and_numbers_once,
    stock_movements_crashing_post_once,
    declines_and_timeouts_record_nothing_and_charge_once,
    refunds_go_back_through_the_provider,
    estimates_expire_by_their_timer_and_invoices_go_overdue,
    an_import_batch_is_all_or_nothing,
    concurrent_refunds_refund_once,
    actuals_and_conversions_are_billed_once,
);

fn crash_once_at(k: i64) -> FaultHook {
    let fired = Arc::new(AtomicBool::new(false));
    Arc::new(move |_, index, _| index == k && !fired.swap(true, Ordering::SeqCst))
}

fn engine_config(executor: &str, fault: Option<FaultHook>) -> EngineConfig {
    EngineConfig {
        executor_id: executor.into(),
        lease: Duration::from_secs(30),
        fault,
    }
}

/// Services with the test processor, as a (re)started process.
async fn with_processor(
    fx: &Fixture,
    provider: &TestProvider,
    executor: &str,
    fault: Option<FaultHook>,
) -> Services {
    Services::with_processor(
        fx.fresh_store().await,
        engine_config(executor, fault),
        Arc::new(provider.clone()),
    )
}

fn lines(amount: &str) -> serde_json::Value {
    json!({ "lines": [{ "source": "custom", "description": "Work", "unitPrice": usd(amount),
                        "kind": "service", "quantity": "1" }], "discount": null })
}

async fn draft_invoice(s: &Services, c: &Caller, job: &Job, amount: &str) -> Invoice {
    ok(
        s,
        c,
        I::Create(from_json(json!({
            "jobId": job.id, "from": { "from": "lines", "request": lines(amount) }, "terms": null
        }))),
    )
    .await
}

fn issue(invoice: &Invoice) -> I {
    I::Issue(from_json(
        json!({ "invoiceId": invoice.id, "expectedVersion": null }),
    ))
}

fn pay(invoice: &Invoice, amount: &str, method: &str) -> I {
    I::CollectPayment(from_json(json!({
        "invoiceId": invoice.id, "amount": usd(amount), "method": method, "reference": null
    })))
}

async fn the_money_path_moves_the_job_to_paid(fx: Fixture) {
    let org = fx.org("Money").await;
    let (s, c) = (&fx.services, &org.caller);
    let job = completed_job(s, c).await;
    let path = money_path(s, c, &job).await;
    // 1.5 h at 95.00 = 142.50 (labour untaxed) + a 40.00 valve taxed at 6.25 % = 2.50.
    assert_eq!(path.invoice.total().amount().to_string(), "185.00");
    assert_eq!(
        path.invoice.number.map(|n| n.to_string()),
        Some("INV-000001".into())
    );
    // The approved estimate is billed once.
    let again = refused(
        s,
        c,
        I::Create(from_json(json!({
            "jobId": job.id, "from": { "from": "approved_estimate", "estimateId": null }, "terms": null
        }))),
    )
    .await;
    assert_eq!(again.code, "ESTIMATE_ALREADY_INVOICED");
    let closed: Job = ok(s, c, set_status(job.id, JobStatus::Closed)).await;
    assert_eq!(closed.status, JobStatus::Closed);

    // A price change reaches neither the approved estimate nor the invoice.
    let _: PricebookItem = ok(
        s,
        c,
        P::UpdateItem(from_json(json!({
            "itemId": path.labor_item.id, "expectedRevision": 1,
            "draft": { "name": "Plumber labour", "details": { "kind": "labor", "trade": "plumbing",
                "rates": [{ "skillLevel": 1, "hourly": usd("120.00") }],
                "overtimeMultiplier": "1.5", "afterHoursMultiplier": "2" } }
        }))),
    )
    .await;
    assert_eq!(
        s.estimate_get(c, path.estimate.id, None)
            .await
            .expect("get"),
        path.estimate
    );
    assert_eq!(
        s.invoice_get(c, path.invoice.id).await.expect("get"),
        path.invoice
    );
    let first = s
        .pricebook_get_item(c, path.labor_item.id, Some(1))
        .await
        .expect("revision 1 stays readable");
    assert_eq!(first, path.labor_item);
    // The earlier revision of the estimate is kept as it was.
    let revision_1 = s
        .estimate_get(c, path.estimate.id, Some(1))
        .await
        .expect("revision 1");
    assert_eq!(revision_1.revision, 1);
    assert_eq!(revision_1.status, EstimateStatus::Draft);
    // The job got the approved option as its planned work, and its actuals.
    let work = s.job_work(c, job.id).await.expect("work");
    assert_eq!(
        work.planned.map(|p| p.lines),
        Some(path.estimate.options[0].quote.lines.clone())
    );
    assert_eq!(work.actuals.len(), 1);
}

async fn invoice_numbers_are_gapless_across_crashes_and_refusals(fx: Fixture) {
    let org = fx.org("Numbers").await;
    let (s, c) = (&fx.services, &org.caller);
    let job = requested_job(s, c).await;
    let mut drafts = Vec::new();
    for i in 0..8 {
        drafts.push(draft_invoice(s, c, &job, &format!("{}.00", 10 + i)).await);
    }
    for (i, draft) in drafts.iter().enumerate() {
        if i % 3 == 1 {
            // A process that dies right after the issuing step commits: the number is kept
            // with the issue, and recovery finishes the workflow without taking another.
            let crashing = fx
                .restart(engine_config("numbers", Some(crash_once_at(0))))
                .await;
            let req = request(issue(draft));
            match crashing.submit(c, req.clone()).await {
                Err(StoreError::InjectedCrash) => {}
                other => panic!("expected a crash, got {other:?}"),
            }
            drop(crashing);
            let restarted = fx.restart(engine_config("numbers", None)).await;
            assert_eq!(restarted.engine().recover(true).await.expect("recover"), 1);
            assert!(restarted.submit(c, req).await.expect("replay").replayed);
        } else {
            let _: Invoice = ok(s, c, issue(draft)).await;
        }
        // Issuing again is refused and takes no number.
        let again = refused(s, c, issue(draft)).await;
        assert_eq!(again.code, "INVOICE_INVALID_TRANSITION");
    }
    // A voided invoice keeps its number.
    let _: Invoice = ok(
        s,
        c,
        I::Void(from_json(
            json!({ "invoiceId": drafts[2].id, "reason": "Duplicate", "expectedVersion": null }),
        )),
    )
    .await;
    let page = PageRequest::parse(Some(200), None).expect("page");
    let list = s
        .invoice_list(c, InvoiceFilter::default(), page)
        .await
        .expect("list");
    let mut numbers: Vec<u64> = list
        .page
        .items
        .iter()
        .filter_map(|i| i.invoice.number.map(|n| n.sequence()))
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=8).collect::<Vec<_>>());

    // A cancelled job is not invoiced.
    let _: Job = ok(s, c, set_status(job.id, JobStatus::Cancelled)).await;
    let refusal = refused(
        s,
        c,
        I::Create(from_json(json!({
            "jobId": job.id, "from": { "from": "lines", "request": lines("1.00") }, "terms": null
        }))),
    )
    .await;
    assert_eq!(refusal.code, "JOB_CANCELLED");

    // Another organization's sequence is its own.
    let other = fx.org("Other").await;
    let other_job = requested_job(s, &other.caller).await;
    let d = draft_invoice(s, &other.caller, &other_job, "5.00").await;
    let issued: Invoice = ok(s, &other.caller, issue(&d)).await;
    assert_eq!(issued.number.map(|n| n.sequence()), Some(1));
}

/// One payment, crashed after each of its steps in turn (check, charge, record) and, in the
/// provider, after charging but before our journal holds the answer. Recovery in a fresh
/// process finishes it; the processor charged once and the invoice holds one payment.
async fn a_payment_crashing_anywhere_charges_exactly_once(fx: Fixture) {
    let org = fx.org("Crashes").await;
    let c = &org.caller;
    let provider = TestProvider::new();
    let s = with_processor(&fx, &provider, "payments", None).await;
    let job = completed_job(&s, c).await;
    // Crash points: after step 0 (checked), 1 (charge journalled), 2 (recorded), and inside
    // the charge (the processor charged; the process died before journalling its answer).
    for (i, crash) in [Some(0), Some(1), Some(2), None].into_iter().enumerate() {
        let draft = draft_invoice(&s, c, &job, "100.00").await;
        let invoice: Invoice = ok(&s, c, issue(&draft)).await;
        let before = provider.moved().len();
        if crash.is_none() {
            provider.script([Behavior::ChargeThenCrash]);
        }
        let crashing = with_processor(&fx, &provider, "payments", crash.map(crash_once_at)).await;
        let req = request(pay(&invoice, "100.00", "card"));
        match crashing.submit(c, req.clone()).await {
            Err(StoreError::InjectedCrash) => {}
            other => panic!("crash point {i}: expected a crash, got {other:?}"),
        }
        drop(crashing);
        let restarted = with_processor(&fx, &provider, "payments", None).await;
        assert_eq!(restarted.engine().recover(true).await.expect("recover"), 1);
        let replay = restarted.submit(c, req).await.expect("replay");
        assert!(replay.replayed);
        let paid: Invoice = serde_json::from_str(replay.outcome.as_ref().expect("paid")).unwrap();
        assert_eq!(paid.status, InvoiceStatus::Paid, "crash point {i}");
        assert_eq!(paid.payments.len(), 1, "crash point {i}");
        let moved = provider.moved();
        assert_eq!(moved.len(), before + 1, "crash point {i}: one charge");
        assert_eq!(moved[before].kind, "charge");
        assert_eq!(moved[before].amount.amount().to_string(), "100.00");
        // The payment carries the processor's charge id.
        let charge_ref = match &moved[before].outcome {
            hestami_store::app::payments::ChargeOutcome::Approved { provider_ref } => {
                provider_ref.clone()
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(
            paid.payments[0].reference.as_ref().map(|r| r.as_str()),
            Some(charge_ref.as_str())
        );
    }
}

/// A credit note with its refund (goodwill on a paid invoice), crashed after each of its steps
/// (reserved, refund journalled, recorded) and inside the refund: recovery finishes it with one
/// refund at the processor, one credit note, and credit note numbers without a gap.
async fn a_goodwill_credit_crashing_anywhere_refunds_once_and_numbers_once(fx: Fixture) {
    let org = fx.org("Goodwill crashes").await;
    let c = &org.caller;
    let provider = TestProvider::new();
    let s = with_processor(&fx, &provider, "credits", None).await;
    let job = completed_job(&s, c).await;
    for (i, crash) in [Some(0), Some(1), Some(2), None].into_iter().enumerate() {
        let draft = draft_invoice(&s, c, &job, "100.00").await;
        let invoice: Invoice = ok(&s, c, issue(&draft)).await;
        let paid: Invoice = ok(&s, c, pay(&invoice, "100.00", "card")).await;
        let before = provider.moved().len();
        if crash.is_none() {
            provider.script([Behavior::ChargeThenCrash]);
        }
        let crashing = with_processor(&fx, &provider, "credits", crash.map(crash_once_at)).await;
        let req = request(I::CreditNote(from_json(json!({
            "invoiceId": paid.id, "refundPaymentId": paid.payments[0].id, "expectedVersion": null,
            "request": { "lines": [], "reason": "Late arrival",
                         "adjustments": [{ "description": "Goodwill", "amount": usd("25.00") }] },
        }))));
        match crashing.submit(c, req.clone()).await {
            Err(StoreError::InjectedCrash) => {}
            other => panic!("crash point {i}: expected a crash, got {other:?}"),
        }
        drop(crashing);
        let restarted = with_processor(&fx, &provider, "credits", None).await;
        assert_eq!(restarted.engine().recover(true).await.expect("recover"), 1);
        let replay = restarted.submit(c, req).await.expect("replay");
        assert!(replay.replayed);
        let credited: Invoice =
            serde_json::from_str(replay.outcome.as_ref().expect("credited")).unwrap();
        assert_eq!(credited.status, InvoiceStatus::Paid, "crash point {i}");
        assert_eq!(credited.credit_notes.len(), 1, "crash point {i}");
        assert_eq!(
            credited.credit_notes[0].number.to_string(),
            format!("CN-{:06}", i + 1),
            "crash point {i}: no number lost"
        );
        assert_eq!(credited.refunds.len(), 1, "crash point {i}");
        assert!(credited.balance().is_zero());
        let moved = provider.moved();
        assert_eq!(moved.len(), before + 1, "crash point {i}: one refund");
        assert_eq!(moved[before].kind, "refund");
        assert_eq!(moved[before].amount.amount().to_string(), "25.00");
    }
}

/// Crashes `command` after its first step in one process and recovers it in a fresh one; the
/// replay's outcome.
async fn crashed_and_recovered<C>(fx: &Fixture, c: &Caller, command: C) -> serde_json::Value
where
    C: hestami_store::app::Command + Clone + std::fmt::Debug + serde::Serialize,
{
    let described = format!("{command:?}");
    let req = request(command);
    let crashing = fx
        .restart(engine_config("stock", Some(crash_once_at(0))))
        .await;
    match crashing.submit(c, req.clone()).await {
        Err(StoreError::InjectedCrash) => {}
        other => panic!("{described}: expected a crash, got {other:?}"),
    }
    drop(crashing);
    let restarted = fx.restart(engine_config("stock", None)).await;
    restarted.engine().recover(true).await.expect("recover");
    let replay = restarted.submit(c, req).await.expect("replay");
    match replay.outcome {
        Ok(value) => serde_json::from_str(&value).expect("an outcome"),
        Err(e) => panic!("{described}: {e:?}"),
    }
}

/// Every inventory and procurement procedure crashed after its step and recovered in a fresh
/// process takes effect once: the ledger holds one row per movement (two for a transfer), the
/// balances are its sums, the order is numbered once, sent once and billed once.
async fn stock_movements_crashing_post_once(fx: Fixture) {
    use hestami_store::app::inventory::InventoryCommand as V;
    use hestami_store::app::procurement::ProcurementCommand as P;
    let org = fx.org("Stock crashes").await;
    let c = &org.caller;
    let s = fx.restart(engine_config("stock", None)).await;
    let job = completed_job(&s, c).await;
    let item: hestami_core::pricebook::PricebookItem = ok(
        &s,
        c,
        hestami_store::app::pricebook::PricebookCommand::CreateItem(from_json(json!({
            "name": "Copper fitting",
            "details": { "kind": "material", "sku": "CU-12", "unit": "each", "cost": usd("3.00"),
                         "pricing": { "rule": "explicit", "price": usd("9.50") } }
        }))),
    )
    .await;
    let location = |name: &str| {
        V::CreateLocation(from_json(json!({
            "kind": "warehouse", "name": name, "technicianId": null, "allowNegative": false
        })))
    };
    let a = crashed_and_recovered(&fx, c, location("A")).await;
    let b: serde_json::Value = ok(&s, c, location("B")).await;
    let v = |procedure: &str, input: serde_json::Value| -> V {
        from_json(json!({ "procedure": procedure, "input": input }))
    };
    let p = |procedure: &str, input: serde_json::Value| -> P {
        from_json(json!({ "procedure": procedure, "input": input }))
    };
    for movement in [
        v(
            "inventory/v1/receive",
            json!({ "itemId": item.id, "locationId": a["id"], "quantity": "10", "unitCost": null }),
        ),
        v(
            "inventory/v1/transfer",
            json!({ "itemId": item.id, "fromLocationId": a["id"], "toLocationId": b["id"], "quantity": "4" }),
        ),
        v(
            "inventory/v1/adjust",
            json!({ "itemId": item.id, "locationId": b["id"], "by": { "by": "count", "counted": "3" },
                    "reason": "cycle count" }),
        ),
        v(
            "inventory/v1/recordUsage",
            json!({ "jobId": job.id, "itemId": item.id, "quantity": "2", "locationId": a["id"] }),
        ),
        v(
            "inventory/v1/reserve",
            json!({ "jobId": job.id, "itemId": item.id, "locationId": a["id"], "quantity": "1" }),
        ),
        v(
            "inventory/v1/release",
            json!({ "jobId": job.id, "itemId": item.id, "locationId": a["id"], "quantity": null }),
        ),
        v(
            "inventory/v1/returnUsage",
            json!({ "jobId": job.id, "itemId": item.id, "quantity": "1", "locationId": a["id"] }),
        ),
    ] {
        crashed_and_recovered(&fx, c, movement).await;
    }
    let sent = crashed_and_recovered(
        &fx,
        c,
        v(
            "inventory/v1/transfer",
            json!({ "itemId": item.id, "fromLocationId": a["id"], "toLocationId": b["id"], "quantity": "2",
                    "inTransit": true }),
        ),
    )
    .await;
    crashed_and_recovered(
        &fx,
        c,
        v(
            "inventory/v1/receiveTransfer",
            json!({ "transferId": sent["transfer"]["id"] }),
        ),
    )
    .await;
    let supplier = crashed_and_recovered(
        &fx,
        c,
        p(
            "inventory/v1/createSupplier",
            json!({ "name": "Ferguson", "contactName": null, "email": null, "phone": null,
                    "paymentTermsDays": 30 }),
        ),
    )
    .await;
    for command in [
        p(
            "inventory/v1/setSupplierItem",
            json!({ "supplierId": supplier["id"], "itemId": item.id, "partNumber": null, "packSize": null,
                    "lastPrice": usd("2.50"), "leadTimeDays": null, "preferred": true }),
        ),
        p(
            "inventory/v1/setReorderPoint",
            json!({ "itemId": item.id, "locationId": a["id"], "level": { "min": "1", "max": "5" },
                    "sourceLocationId": null }),
        ),
    ] {
        crashed_and_recovered(&fx, c, command).await;
    }
    let order_of = |quantity: &str| {
        p(
            "inventory/v1/createPurchaseOrder",
            json!({ "supplierId": supplier["id"], "locationId": a["id"], "jobId": null,
                    "lines": [{ "itemId": item.id, "quantity": quantity, "unitCost": null }] }),
        )
    };
    let order = crashed_and_recovered(&fx, c, order_of("4")).await;
    let dropped = crashed_and_recovered(&fx, c, order_of("9")).await;
    assert_eq!(
        (&order["number"], &dropped["number"]),
        (&json!("PO-000001"), &json!("PO-000002")),
        "numbered once each"
    );
    for command in [
        p(
            "inventory/v1/submitPurchaseOrder",
            json!({ "purchaseOrderId": order["id"] }),
        ),
        p(
            "inventory/v1/receivePurchaseOrder",
            json!({ "purchaseOrderId": order["id"], "locationId": null,
                    "lines": [{ "line": 1, "quantity": "4" }], "allowOverReceipt": false }),
        ),
        p(
            "inventory/v1/recordSupplierBill",
            json!({ "purchaseOrderId": order["id"], "number": "B-1",
                    "lines": [{ "line": 1, "quantity": "4", "unitCost": usd("2.75") }] }),
        ),
        p(
            "inventory/v1/closePurchaseOrder",
            json!({ "purchaseOrderId": order["id"] }),
        ),
        p(
            "inventory/v1/cancelPurchaseOrder",
            json!({ "purchaseOrderId": dropped["id"], "reason": "ordered elsewhere" }),
        ),
    ] {
        crashed_and_recovered(&fx, c, command).await;
    }
    // The reorder pass drafts B's replenishment from A; sent and received, each once.
    crashed_and_recovered(
        &fx,
        c,
        p(
            "inventory/v1/setReorderPoint",
            json!({ "itemId": item.id, "locationId": b["id"], "level": { "min": "10", "max": "12" },
                    "sourceLocationId": a["id"] }),
        ),
    )
    .await;
    let today = chrono::Utc::now().date_naive();
    let report = crashed_and_recovered(
        &fx,
        c,
        P::Reorder(hestami_store::app::procurement::ReorderPass { date: today }),
    )
    .await;
    assert_eq!(report["transfers"].as_array().map(Vec::len), Some(1));
    for procedure in ["inventory/v1/sendTransfer", "inventory/v1/receiveTransfer"] {
        crashed_and_recovered(
            &fx,
            c,
            v(procedure, json!({ "transferId": report["transfers"][0] })),
        )
        .await;
    }
    // A serial-tracked material: tracked, received, sent off and called back, each once.
    let heater: hestami_core::pricebook::PricebookItem = ok(
        &s,
        c,
        hestami_store::app::pricebook::PricebookCommand::CreateItem(from_json(json!({
            "name": "Water heater",
            "details": { "kind": "material", "sku": "WH-50", "unit": "each", "cost": usd("600.00"),
                         "pricing": { "rule": "explicit", "price": usd("1100.00") } }
        }))),
    )
    .await;
    for command in [
        v(
            "inventory/v1/setTracking",
            json!({ "itemId": heater.id, "tracking": "serial" }),
        ),
        v(
            "inventory/v1/receive",
            json!({ "itemId": heater.id, "locationId": a["id"], "quantity": "2", "unitCost": null,
                    "units": { "serials": ["WH-1", "WH-2"] } }),
        ),
    ] {
        crashed_and_recovered(&fx, c, command).await;
    }
    let away = crashed_and_recovered(
        &fx,
        c,
        v(
            "inventory/v1/transfer",
            json!({ "itemId": heater.id, "fromLocationId": a["id"], "toLocationId": b["id"], "quantity": "1",
                    "inTransit": true, "units": { "serials": ["WH-2"] } }),
        ),
    )
    .await;
    crashed_and_recovered(
        &fx,
        c,
        v(
            "inventory/v1/cancelTransfer",
            json!({ "transferId": away["transfer"]["id"] }),
        ),
    )
    .await;
    let units = s
        .inventory_serials(
            c,
            hestami_store::app::inventory::SerialFilter {
                item_id: Some(heater.id),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let placed: Vec<(String, &str)> = units
        .iter()
        .map(|u| (u.serial.as_str().to_owned(), u.status.as_str()))
        .collect();
    assert_eq!(
        placed,
        [
            ("WH-1".to_owned(), "in_stock"),
            ("WH-2".to_owned(), "in_stock")
        ]
    );
    assert!(
        units
            .iter()
            .all(|u| u.location_id.map(|l| l.to_string()) == a["id"].as_str().map(str::to_owned))
    );

    let ledger = s
        .inventory_ledger(
            c,
            item.id,
            None,
            PageRequest::parse(Some(50), None).unwrap(),
        )
        .await
        .unwrap();
    let kinds: Vec<&str> = ledger.items.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "receipt",
            "transfer_out",
            "transfer_in",
            "adjustment",
            "consumption",
            "reservation",
            "release",
            "return",
            "transfer_out",
            "transfer_in",
            "receipt",
            "transfer_out",
            "transfer_in"
        ]
    );
    let stock = s
        .inventory_stock(c, hestami_store::app::inventory::StockFilter::default())
        .await
        .unwrap();
    let on_hand: Vec<String> = stock
        .iter()
        .map(|l| l.on_hand.normalize().to_string())
        .collect();
    assert_eq!(
        on_hand,
        ["0", "12", "2", "0"],
        "A and B, then the heaters at A and B"
    );
    let work = s.job_work(c, job.id).await.unwrap();
    assert_eq!(work.actuals.len(), 1, "the usage is on the actuals once");
    assert_eq!(work.actuals[0].quantity.to_string(), "1", "less the return");
    let order = s
        .purchase_order(
            c,
            hestami_core::ids::PurchaseOrderId::from_uuid(
                order["id"].as_str().unwrap().parse().unwrap(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(order.status.as_str(), "closed");
    assert_eq!(order.bills.len(), 1, "billed once");
    assert_eq!(
        order.bills[0].mismatches.len(),
        1,
        "the price differs from the order's"
    );
    let sent: Vec<_> = s
        .outbox(c)
        .await
        .unwrap()
        .into_iter()
        .filter(|(kind, _)| kind == "purchase_order_submitted")
        .collect();
    assert_eq!(sent.len(), 1, "sent once");
}

async fn declines_and_timeouts_record_nothing_and_charge_once(fx: Fixture) {
    let org = fx.org("Declines").await;
    let c = &org.caller;
    let provider = TestProvider::new();
    let s = with_processor(&fx, &provider, "declines", None).await;
    let job = completed_job(&s, c).await;
    let draft = draft_invoice(&s, c, &job, "80.00").await;
    let invoice: Invoice = ok(&s, c, issue(&draft)).await;
    assert_eq!(
        s.job_get(c, job.id).await.expect("job").status,
        JobStatus::Invoiced
    );

    // Declined: refused, nothing recorded, nothing moved.
    provider.script([Behavior::Decline("card_declined".into())]);
    let declined = refused(&s, c, pay(&invoice, "30.00", "card")).await;
    assert_eq!(declined.code, "PAYMENT_DECLINED");
    assert!(provider.moved().is_empty());
    assert!(
        s.invoice_get(c, invoice.id)
            .await
            .expect("get")
            .payments
            .is_empty()
    );

    // A payment above the balance is refused before the processor is asked.
    let calls = provider.calls();
    let over = refused(&s, c, pay(&invoice, "80.01", "card")).await;
    assert_eq!(over.code, "PAYMENT_EXCEEDS_BALANCE");
    assert_eq!(provider.calls(), calls, "the processor was not asked");

    // The processor charged but its answer was lost, and then stays silent for longer than the
    // engine's attempt limit: the caller sees "unavailable" each time, the workflow stays
    // pending (never recorded as failed with the money moved), the reservation holds the
    // amount, and voiding waits for it.
    provider.script([
        Behavior::ChargeThenTimeout,
        Behavior::Timeout,
        Behavior::Timeout,
        Behavior::Timeout,
        Behavior::Timeout,
        Behavior::Timeout,
        Behavior::Timeout,
    ]);
    let req = request(pay(&invoice, "30.00", "ach"));
    for _ in 0..(hestami_store::engine::MAX_ATTEMPTS + 2) {
        match s.submit(c, req.clone()).await {
            Err(StoreError::Unavailable { code, .. }) => {
                assert_eq!(code, "PAYMENT_PROVIDER_UNAVAILABLE")
            }
            other => panic!("expected unavailable, got {other:?}"),
        }
    }
    let held = refused(&s, c, pay(&invoice, "50.01", "cash")).await;
    assert_eq!(
        held.code, "PAYMENT_EXCEEDS_BALANCE",
        "30.00 of 80.00 is reserved"
    );
    let void = I::Void(from_json(
        json!({ "invoiceId": invoice.id, "reason": "Wrong customer", "expectedVersion": null }),
    ));
    assert_eq!(refused(&s, c, void).await.code, "INVOICE_PAYMENT_PENDING");
    // Nor can an operator abandon it half-way.
    let stuck = hestami_store::engine::workflow_id(
        org.id(),
        "invoice/v1/collectPayment",
        req.idempotency_key,
    );
    let cancel = refused(
        &s,
        c,
        hestami_store::app::workflow::WorkflowCommand::Cancel { workflow_id: stuck },
    )
    .await;
    assert_eq!(cancel.code, "WORKFLOW_NOT_CANCELLABLE");
    // Released for retry: the same request takes the workflow over and finishes it.
    let done = s
        .submit(c, req.clone())
        .await
        .expect("the retry finishes it");
    assert!(done.replayed);
    let paid: Invoice = serde_json::from_str(done.outcome.as_ref().expect("ok")).unwrap();
    assert_eq!(paid.payments.len(), 1);
    assert_eq!(paid.balance().amount().to_string(), "50.00");
    assert_eq!(provider.moved().len(), 1, "one charge");

    // Cash for the rest: the manual provider, the job moves to paid.
    let paid: Invoice = ok(&s, c, pay(&invoice, "50.00", "cash")).await;
    assert_eq!(paid.status, InvoiceStatus::Paid);
    assert_eq!(
        provider.moved().len(),
        1,
        "cash does not go to the processor"
    );
    assert_eq!(
        s.job_get(c, job.id).await.expect("job").status,
        JobStatus::Paid
    );

    // Without a processor, card payments are declined.
    let plain = fx.restart(engine_config("plain", None)).await;
    let other_job = completed_job(&plain, c).await;
    let d = draft_invoice(&plain, c, &other_job, "10.00").await;
    let other: Invoice = ok(&plain, c, issue(&d)).await;
    let refusal = refused(&plain, c, pay(&other, "10.00", "card")).await;
    assert_eq!(refusal.code, "PAYMENT_DECLINED");
}

async fn refunds_go_back_through_the_provider(fx: Fixture) {
    let org = fx.org("Refunds").await;
    let c = &org.caller;
    let provider = TestProvider::new();
    let s = with_processor(&fx, &provider, "refunds", None).await;
    let job = completed_job(&s, c).await;
    let draft = draft_invoice(&s, c, &job, "60.00").await;
    let invoice: Invoice = ok(&s, c, issue(&draft)).await;
    let paid: Invoice = ok(&s, c, pay(&invoice, "60.00", "card")).await;
    assert_eq!(paid.status, InvoiceStatus::Paid);
    let payment = paid.payments[0].id;
    let refund = |amount: &str| {
        I::Refund(from_json(
            json!({ "paymentId": payment, "amount": usd(amount), "reason": "Overcharged" }),
        ))
    };
    let too_much = refused(&s, c, refund("60.01")).await;
    assert_eq!(too_much.code, "REFUND_EXCEEDS_PAYMENT");
    // A process without the processor that took the payment refuses to refund it (rather than
    // reserve the amount and wait for a processor it will never have).
    let elsewhere = refused(&fx.services, c, refund("1.00")).await;
    assert_eq!(elsewhere.code, "PAYMENT_PROVIDER_NOT_CONFIGURED");
    let refunded: Invoice = ok(&s, c, refund("20.00")).await;
    assert_eq!(refunded.status, InvoiceStatus::Issued);
    // The job stays paid (its table has no way back), but cannot close with a balance owed.
    assert_eq!(
        s.job_get(c, job.id).await.expect("job").status,
        JobStatus::Paid
    );
    let close = refused(&s, c, set_status(job.id, JobStatus::Closed)).await;
    assert_eq!(close.code, "JOB_BALANCE_OUTSTANDING");
    assert_eq!(refunded.balance().amount().to_string(), "20.00");
    let moved = provider.moved();
    assert_eq!(
        moved.iter().map(|m| m.kind).collect::<Vec<_>>(),
        ["charge", "refund"]
    );
    // Voiding with money paid is refused; refund the rest first.
    let void = I::Void(from_json(
        json!({ "invoiceId": invoice.id, "reason": "Cancelled", "expectedVersion": null }),
    ));
    assert_eq!(
        refused(&s, c, void.clone()).await.code,
        "INVOICE_HAS_PAYMENTS"
    );
    let _: Invoice = ok(&s, c, refund("40.00")).await;
    let voided: Invoice = ok(&s, c, void).await;
    assert_eq!(voided.status, InvoiceStatus::Void);
    assert_eq!(
        voided.number, paid.number,
        "a voided invoice keeps its number"
    );
    // Nothing is owed any more: the job may close.
    let closed: Job = ok(&s, c, set_status(job.id, JobStatus::Closed)).await;
    assert_eq!(closed.status, JobStatus::Closed);
    let unknown = refused(
        &s,
        c,
        I::Refund(from_json(json!({ "paymentId": uuid::Uuid::now_v7(),
            "amount": usd("1.00"), "reason": "?" }))),
    )
    .await;
    assert_eq!(unknown.code, "NOT_FOUND");
}

/// A clock the test moves by hand.
#[derive(Debug)]
struct ManualClock(Mutex<DateTime<Utc>>);

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock")
    }
}

impl ManualClock {
    fn advance(&self, by: ChronoDuration) {
        *self.0.lock().expect("clock") += by;
    }
}

async fn estimates_expire_by_their_timer_and_invoices_go_overdue(fx: Fixture) {
    // Noon UTC on a fixed date (morning in Chicago, the fixture organization's zone).
    let start = Utc
        .with_ymd_and_hms(2031, 5, 1, 12, 0, 0)
        .single()
        .expect("valid");
    let clock = Arc::new(ManualClock(Mutex::new(start)));
    let store = Store::connect(
        &fx.db.app_url,
        StoreOptions {
            max_connections: 4,
            clock: clock.clone(),
        },
    )
    .await
    .expect("connect");
    let s = Services::new(store, EngineConfig::default());
    let org = fx.org("Timers").await;
    let c = &org.caller;
    let job = completed_job(&s, c).await;
    let estimate = |valid_until: DateTime<Utc>| {
        E::Generate(from_json(json!({
            "jobId": job.id, "customerId": null, "propertyId": null,
            "options": [{ "name": "Only", "request": lines("120.00") }],
            "validUntil": valid_until, "notes": null
        })))
    };
    let send = |e: &Estimate| {
        E::Send(from_json(
            json!({ "estimateId": e.id, "expectedVersion": null }),
        ))
    };
    let lapsing: Estimate = ok(&s, c, estimate(start + ChronoDuration::hours(2))).await;
    let _: Estimate = ok(&s, c, send(&lapsing)).await;
    let answered: Estimate = ok(&s, c, estimate(start + ChronoDuration::hours(2))).await;
    let answered: Estimate = ok(&s, c, send(&answered)).await;
    let _: Estimate = ok(
        &s,
        c,
        E::Decline(from_json(
            json!({ "estimateId": answered.id, "reason": "Too dear", "expectedVersion": null }),
        )),
    )
    .await;
    // An invoice due on receipt.
    let d: Invoice = ok(
        &s,
        c,
        I::Create(from_json(json!({
            "jobId": job.id, "from": { "from": "lines", "request": lines("75.00") }, "terms": { "netDays": 0 }
        }))),
    )
    .await;
    let invoice: Invoice = ok(&s, c, issue(&d)).await;

    // The daily scans run at once; nothing is overdue or expired yet.
    s.ensure_timers().await.expect("timers");
    s.fire_due_timers().await.expect("pass");
    let kinds = |outbox: &[(String, serde_json::Value)], kind: &str| {
        outbox.iter().filter(|(k, _)| k == kind).count()
    };
    let outbox = s.outbox(c).await.expect("outbox");
    assert_eq!(kinds(&outbox, "estimate_sent"), 2);
    assert_eq!(kinds(&outbox, "invoice_overdue"), 0);
    assert_eq!(
        s.estimate_get(c, lapsing.id, None)
            .await
            .expect("get")
            .status,
        EstimateStatus::Sent
    );

    // Three hours later the sent estimate's timer fires; the declined one had none left.
    clock.advance(ChronoDuration::hours(3));
    assert_eq!(s.fire_due_timers().await.expect("pass"), 1);
    assert_eq!(
        s.estimate_get(c, lapsing.id, None)
            .await
            .expect("get")
            .status,
        EstimateStatus::Expired
    );
    assert_eq!(s.fire_due_timers().await.expect("pass"), 0);

    // The next morning the overdue scan finds the invoice once, and the list says so.
    clock.advance(ChronoDuration::days(1));
    s.fire_due_timers().await.expect("pass");
    s.fire_due_timers().await.expect("pass again");
    let outbox = s.outbox(c).await.expect("outbox");
    assert_eq!(kinds(&outbox, "invoice_overdue"), 1);
    let page = PageRequest::parse(None, None).expect("page");
    let overdue = s
        .invoice_list(
            c,
            InvoiceFilter {
                overdue: Some(true),
                ..InvoiceFilter::default()
            },
            page,
        )
        .await
        .expect("list");
    assert_eq!(overdue.page.items.len(), 1);
    assert_eq!(overdue.page.items[0].invoice.id, invoice.id);
    let bucket = overdue.page.items[0].aging.expect("aged");
    assert_eq!(
        overdue.aging[&bucket].amount().to_string(),
        "75.00",
        "{:?}",
        overdue.aging
    );
}

async fn an_import_batch_is_all_or_nothing(fx: Fixture) {
    use hestami_core::pricebook::import::{ImportRow, parse_batch};
    let org = fx.org("Import").await;
    let (s, c) = (&fx.services, &org.caller);
    let usd = hestami_core::org::Currency::parse("USD").expect("USD");
    let row = |sku: &str, cost: &str| ImportRow {
        kind: Some("material".into()),
        name: Some(format!("Pipe {sku}")),
        sku: Some(sku.into()),
        unit: Some("ft".into()),
        cost: Some(cost.into()),
        ..ImportRow::default()
    };
    let first = parse_batch(&[row("P-1", "1.00"), row("P-2", "2.00")], usd).expect("rows");
    let report: ImportReport = ok(s, c, P::ImportBatch(from_json(json!({ "rows": first })))).await;
    assert_eq!(
        (report.created, report.updated, report.unchanged),
        (2, 0, 0)
    );
    let second = parse_batch(
        &[row("P-1", "1.00"), row("P-2", "2.50"), row("P-3", "3.00")],
        usd,
    )
    .expect("rows");
    let report: ImportReport = ok(s, c, P::ImportBatch(from_json(json!({ "rows": second })))).await;
    assert_eq!(
        (report.created, report.updated, report.unchanged),
        (1, 1, 1)
    );
    assert_eq!(report.rows[1].revision, 2);
    // A row the store refuses (here two rows naming one item, which the parser would catch
    // first) refuses the whole batch: P-4 is not created.
    let third = parse_batch(&[row("P-4", "4.00")], usd).expect("rows");
    let twice = json!({ "rows": [third[0], third[0]] });
    let failure = refused(s, c, P::ImportBatch(from_json(twice))).await;
    assert_eq!(failure.code, "VALIDATION_FAILED");
    assert_eq!(failure.field_errors[0].field, "rows[1].name");
    // An archived item's SKU is free again: a new item takes it.
    let _: PricebookItem = ok(
        s,
        c,
        P::ArchiveItem(from_json(
            json!({ "itemId": report.rows[0].item_id, "expectedRevision": null }),
        )),
    )
    .await;
    let again = parse_batch(&[row("P-1", "1.10")], usd).expect("rows");
    let report: ImportReport = ok(s, c, P::ImportBatch(from_json(json!({ "rows": again })))).await;
    assert_eq!(report.created, 1);
    let page = PageRequest::parse(None, None).expect("page");
    let items = s
        .pricebook_list_items(c, Default::default(), page)
        .await
        .expect("list");
    assert_eq!(
        items.items.len(),
        3,
        "P-2, P-3 and the new P-1; P-4 was not created"
    );
    // A batch's change-feed rows take consecutive numbers from one increment; the refused
    // batch left none.
    let feed = whole_feed(s, c).await;
    assert_feed_is_clean(&feed);
    let items_changed = feed
        .iter()
        .filter(|r| r.entity_kind == "pricebook_item")
        .count();
    assert_eq!(
        items_changed, 6,
        "2 created, 1 created + 1 revised, 1 archived, 1 created"
    );
    let found = s
        .pricebook_list_items(
            c,
            hestami_store::app::pricebook::ItemFilter {
                query: Some("p-3".into()),
                ..Default::default()
            },
            page,
        )
        .await
        .expect("search");
    assert_eq!(found.items.len(), 1);
}

/// Two refunds of the whole payment at once, with different keys: the reservation lets one
/// through; the processor refunds once.
async fn concurrent_refunds_refund_once(fx: Fixture) {
    let org = fx.org("Refund race").await;
    let c = &org.caller;
    let provider = TestProvider::new();
    let s = with_processor(&fx, &provider, "race", None).await;
    let job = completed_job(&s, c).await;
    let draft = draft_invoice(&s, c, &job, "60.00").await;
    let invoice: Invoice = ok(&s, c, issue(&draft)).await;
    let paid: Invoice = ok(&s, c, pay(&invoice, "60.00", "card")).await;
    let payment = paid.payments[0].id;
    let refund = || {
        I::Refund(from_json(
            json!({ "paymentId": payment, "amount": usd("60.00"), "reason": "Cancelled" }),
        ))
    };
    let (a, b) = tokio::join!(submit(&s, c, refund()), submit(&s, c, refund()));
    let outcomes = [a, b];
    let refused: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert_eq!(
        outcomes.iter().filter(|o| o.is_ok()).count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].code, "REFUND_EXCEEDS_PAYMENT");
    let kinds: Vec<_> = provider.moved().iter().map(|m| m.kind).collect();
    assert_eq!(kinds, ["charge", "refund"]);
    let after = s.invoice_get(c, invoice.id).await.expect("get");
    assert_eq!(after.balance().amount().to_string(), "60.00");
}

/// Recorded work is billed once; an estimate converted to a new job links it with an event.
async fn actuals_and_conversions_are_billed_once(fx: Fixture) {
    let org = fx.org("Once").await;
    let (s, c) = (&fx.services, &org.caller);
    let job = completed_job(s, c).await;
    let _: serde_json::Value = ok(
        s,
        c,
        hestami_store::app::job::JobLifecycleCommand::RecordActuals(from_json(json!({
            "jobId": job.id,
            "lines": [{ "source": "custom", "description": "Trap", "unitPrice": usd("12.00"),
                        "kind": "material", "quantity": "2" }]
        }))),
    )
    .await;
    let from_actuals = || {
        I::Create(from_json(json!({
            "jobId": job.id, "from": { "from": "actuals" }, "terms": null
        })))
    };
    let first: Invoice = ok(s, c, from_actuals()).await;
    assert_eq!(first.total().amount().to_string(), "24.00");
    let again = refused(s, c, from_actuals()).await;
    assert_eq!(again.code, "ACTUALS_ALREADY_INVOICED");

    // An estimate for a customer and property, without a job: converting makes the job and
    // links the estimate to it with an event of its own.
    let estimate: Estimate = ok(
        s,
        c,
        E::Generate(from_json(json!({
            "jobId": null, "customerId": job.customer_id, "propertyId": job.property_id,
            "options": [{ "name": "Only", "request": lines("99.00") }],
            "validUntil": Utc::now() + ChronoDuration::days(3), "notes": null
        }))),
    )
    .await;
    let _: Estimate = ok(
        s,
        c,
        E::Send(from_json(
            json!({ "estimateId": estimate.id, "expectedVersion": null }),
        )),
    )
    .await;
    let _: Estimate = ok(
        s,
        c,
        E::Approve(from_json(json!({
            "estimateId": estimate.id, "optionId": estimate.options[0].id, "signedBy": "Ada",
            "signature": null, "depositRequired": null, "expectedVersion": null
        }))),
    )
    .await;
    let converted: serde_json::Value = ok(
        s,
        c,
        E::ConvertToJob(from_json(json!({
            "estimateId": estimate.id, "trade": "plumbing", "summary": null, "priority": null
        }))),
    )
    .await;
    let linked = s.estimate_get(c, estimate.id, None).await.expect("get");
    assert_eq!(
        linked.job_id.map(|j| j.as_uuid().to_string()),
        converted["job"]["id"].as_str().map(str::to_owned)
    );
    assert_eq!(linked.version, 4, "created, sent, approved, linked");
    assert_feed_is_clean(&whole_feed(s, c).await);
}
