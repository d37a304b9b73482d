//! End-to-end tests of maintenance agreements over HTTP, on SQLite and on PostgreSQL, with the
//! store's clock moved a day at a time and the timer pass run as a server would: two years of
//! visits generated once each, at the right local dates across both daylight-saving changes in
//! America/New_York; a ten-day outage caught up and reported; twelve monthly invoices in a year
//! and a prorated first month; suspension, cancellation and re-planning; other organizations
//! and roles.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use serde_json::{Value, json};

use hestami::core::org::Role;
use hestami::store::Clock;
use hestami::store::app::payments::Behavior;
use support::{Backend, TestServer, key};

each_backend!(
    two_years_of_visits_and_invoices_once_each,
    declines_are_retried_then_suspend_and_renewals_take_the_new_price,
    suspend_resume_cancel_and_replan,
    other_organizations_and_roles,
    members_get_their_discount_and_priority,
    cancelling_credits_the_unused_days,
    a_visit_requires_its_plan_checklist,
    changing_plan_prorates_the_rest_of_the_period,
    billed_per_visit_when_the_visit_is_done,
);

#[derive(Debug)]
struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    fn set(&self, to: DateTime<Utc>) {
        *self.0.lock().unwrap() = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// 06:00 in New York on `day` (after the agreements' 05:00 timers).
fn morning(day: NaiveDate) -> DateTime<Utc> {
    chrono_tz::America::New_York
        .from_local_datetime(&day.and_hms_opt(6, 0, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

async fn server_at(backend: Backend, start: NaiveDate) -> Option<(TestServer, Arc<ManualClock>)> {
    let clock = Arc::new(ManualClock(Mutex::new(morning(start))));
    let s = TestServer::start_at(backend, clock.clone()).await?;
    s.mutate("org/v1/update", json!({ "timeZone": "America/New_York" }))
        .await;
    Some((s, clock))
}

/// Runs the timer pass every morning from `from` up to, not including, `until`.
async fn days(s: &TestServer, clock: &ManualClock, from: NaiveDate, until: NaiveDate) {
    let mut day = from;
    while day < until {
        clock.set(morning(day));
        s.services.fire_due_timers().await.unwrap();
        day = day.succ_opt().unwrap();
    }
}

/// A plan with a spring and autumn tune-up and a quarterly filter change.
async fn gold_plan(s: &TestServer) -> Value {
    let service = s
        .mutate(
            "pricebook/v1/createItem",
            json!({ "name": "HVAC tune-up",
                    "details": { "kind": "service", "price": "149.00", "estimatedLaborHours": "1.5",
                                 "trade": "hvac" } }),
        )
        .await;
    s.mutate(
        "maintenance/v1/createPlan",
        json!({
            "name": "Gold comfort",
            "visits": [
                { "name": "Tune-up", "trade": "hvac",
                  "rule": { "kind": "monthly_on_day", "every": 6, "day": 15 }, "startMonth": 4,
                  "window": { "start": "09:00", "end": "11:00" }, "durationMinutes": 90,
                  "services": [{ "itemId": service["id"], "quantity": "1" }] },
                { "name": "Filter change", "trade": "hvac",
                  "rule": { "kind": "monthly_on_weekday", "every": 3, "nth": "first", "weekday": "mon" },
                  "startMonth": 1, "window": { "start": "08:00", "end": "10:00" }, "durationMinutes": 30 }
            ],
            "benefits": { "discountPercent": "10", "priority": "urgent", "waiveTripFee": true },
            "prices": { "monthly": "31.00", "annually": "330.00" }
        }),
    )
    .await
}

async fn customer(s: &TestServer) -> (Value, Value) {
    let customer = s
        .mutate("customer/v1/create", json!({ "name": "Ada Lovelace" }))
        .await;
    let property = s
        .mutate(
            "customer/v1/addProperty",
            json!({ "customerId": customer["id"], "address": { "line1": "1 Main St", "city": "Albany",
                    "region": "NY", "postalCode": "12207", "country": "US" } }),
        )
        .await;
    (customer, property)
}

async fn agreement(
    s: &TestServer,
    plan: &Value,
    customer: &Value,
    property: &Value,
    start: NaiveDate,
    term_months: u32,
) -> Value {
    let agreement = s
        .mutate(
            "maintenance/v1/createContract",
            json!({ "customerId": customer["id"], "propertyIds": [property["id"]], "planId": plan["id"],
                    "startDate": start, "termMonths": term_months, "billing": "monthly", "leadDays": 30 }),
        )
        .await;
    s.mutate(
        "maintenance/v1/activate",
        json!({ "agreementId": agreement["id"], "signedBy": "Ada Lovelace", "signature": "typed: Ada Lovelace" }),
    )
    .await
}

async fn visits(s: &TestServer, agreement: &Value) -> Vec<Value> {
    s.call(
        "maintenance/v1/visits",
        json!({ "agreementId": agreement["id"] }),
    )
    .await
    .ok()["items"]
        .as_array()
        .unwrap()
        .clone()
}

async fn invoices(s: &TestServer, agreement: &Value) -> Vec<Value> {
    s.call(
        "maintenance/v1/invoices",
        json!({ "agreementId": agreement["id"] }),
    )
    .await
    .ok()["items"]
        .as_array()
        .unwrap()
        .clone()
}

async fn two_years_of_visits_and_invoices_once_each(backend: Backend) {
    let start = date(2027, 1, 1);
    let Some((s, clock)) = server_at(backend, start).await else {
        return;
    };
    let plan = gold_plan(&s).await;
    let (customer, property) = customer(&s).await;

    // Created twice with one key: one agreement.
    let body = json!({ "idempotencyKey": key(), "customerId": customer["id"],
                       "propertyIds": [property["id"]], "planId": plan["id"], "startDate": start,
                       "termMonths": 24, "billing": "monthly", "leadDays": 30 });
    let first = s
        .call("maintenance/v1/createContract", body.clone())
        .await
        .ok();
    let again = s.call("maintenance/v1/createContract", body).await.ok();
    assert_eq!(first["id"], again["id"]);
    assert_eq!(first["status"], "draft");
    let listed = s.call("maintenance/v1/list", json!({})).await.ok();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    let active = s
        .mutate(
            "maintenance/v1/activate",
            json!({ "agreementId": first["id"], "signedBy": "Ada Lovelace" }),
        )
        .await;
    assert_eq!(active["status"], "active");
    assert_eq!(active["nextAttention"], json!(start));

    // A second agreement starting mid-month: its first month is prorated.
    let mid = agreement(&s, &plan, &customer, &property, date(2027, 3, 15), 12).await;

    // A year, with the server down from 1 to 10 June (the July filter change's lead time
    // begins on 5 June).
    days(&s, &clock, start, date(2027, 6, 1)).await;
    days(&s, &clock, date(2027, 6, 11), date(2028, 1, 1)).await;
    assert_eq!(
        invoices(&s, &first).await.len(),
        12,
        "twelve monthly invoices in 2027"
    );
    days(&s, &clock, date(2028, 1, 1), date(2029, 1, 10)).await;

    // Filter changes on the first Monday of each quarter, tune-ups on 15 April and October.
    let expected: Vec<NaiveDate> = vec![
        date(2027, 1, 4),
        date(2027, 4, 5),
        date(2027, 4, 15),
        date(2027, 7, 5),
        date(2027, 10, 4),
        date(2027, 10, 15),
        date(2028, 1, 3),
        date(2028, 4, 3),
        date(2028, 4, 15),
        date(2028, 7, 3),
        date(2028, 10, 2),
        date(2028, 10, 15),
    ];
    let generated = visits(&s, &first).await;
    let dates: Vec<NaiveDate> = generated
        .iter()
        .map(|v| serde_json::from_value(v["dueOn"].clone()).unwrap())
        .collect();
    assert_eq!(dates, expected, "each visit once, none after the term");
    for (visit, due) in generated.iter().zip(&expected) {
        let generated_on: NaiveDate = serde_json::from_value(visit["generatedOn"].clone()).unwrap();
        let job = s
            .call("job/v1/get", json!({ "jobId": visit["jobId"] }))
            .await
            .ok();
        assert_eq!(job["priority"], "urgent", "the plan's priority");
        assert_eq!(job["trade"], "hvac");
        // The visit's window ends at 11:00 or 10:00 New York time, EST or EDT alike.
        let deadline: DateTime<Utc> = serde_json::from_value(job["slaDeadline"].clone()).unwrap();
        let local = deadline.with_timezone(&chrono_tz::America::New_York);
        assert_eq!(local.date_naive(), *due);
        let end_hour = if visit["slot"] == 0 { 11 } else { 10 };
        assert_eq!(
            chrono::Timelike::hour(&local),
            end_hour,
            "{due}: {deadline}"
        );
        if *due == date(2027, 7, 5) {
            // Its lead time began on 5 June, while the server was down: caught up on 11 June.
            assert_eq!(generated_on, date(2027, 6, 11));
            assert_eq!(visit["late"], true);
        } else if *due == date(2027, 1, 4) {
            // Its lead time began before the agreement was signed: generated on the first tick.
            assert_eq!(generated_on, start);
            assert_eq!(visit["late"], false);
        } else {
            assert_eq!(generated_on, *due - Duration::days(30), "{due}");
            assert_eq!(visit["late"], false);
        }
    }
    assert_eq!(
        generated.iter().filter(|v| v["overdue"] == true).count(),
        12,
        "nobody went: every visit is overdue now"
    );

    // 24 monthly invoices, each once, numbered from the gapless sequence, the period on the line.
    let billed = invoices(&s, &first).await;
    assert_eq!(billed.len(), 24);
    let mut numbers = Vec::new();
    for (n, period) in billed.iter().enumerate() {
        let invoice = s
            .call(
                "invoice/v1/get",
                json!({ "invoiceId": period["invoiceId"] }),
            )
            .await
            .ok();
        assert_eq!(invoice["status"], "issued");
        assert_eq!(invoice["jobId"], Value::Null);
        assert_eq!(invoice["quote"]["total"], "31.00");
        let from = start + chrono::Months::new(u32::try_from(n).unwrap());
        assert_eq!(period["periodStart"], json!(from));
        let label = invoice["quote"]["lines"][0]["description"]
            .as_str()
            .unwrap();
        assert!(label.contains(&from.to_string()), "{label}");
        numbers.push(invoice["number"].as_str().unwrap().to_owned());
    }
    numbers.sort();
    numbers.dedup();
    assert_eq!(numbers.len(), 24);

    // The mid-month agreement: 17 of March's 31 days, then whole months, then 14 days.
    let billed = invoices(&s, &mid).await;
    assert_eq!(billed.len(), 13);
    let first_invoice = s
        .call(
            "invoice/v1/get",
            json!({ "invoiceId": billed[0]["invoiceId"] }),
        )
        .await
        .ok();
    assert_eq!(first_invoice["quote"]["total"], "17.00");
    let label = first_invoice["quote"]["lines"][0]["description"]
        .as_str()
        .unwrap();
    assert!(
        label.contains("2027-03-15 to 2027-03-31 (prorated)"),
        "{label}"
    );
    let last = s
        .call(
            "invoice/v1/get",
            json!({ "invoiceId": billed[12]["invoiceId"] }),
        )
        .await
        .ok();
    assert_eq!(
        last["quote"]["total"], "14.00",
        "1 to 14 March 2028: 14 of 31 days"
    );

    // Both terms are over: neither renews, both expired, their timers gone.
    for a in [&first, &mid] {
        let now = s
            .call("maintenance/v1/get", json!({ "agreementId": a["id"] }))
            .await
            .ok();
        assert_eq!(now["status"], "expired");
        assert_eq!(now["nextAttention"], Value::Null);
    }
    let before = visits(&s, &first).await.len();
    days(&s, &clock, date(2029, 1, 10), date(2029, 1, 20)).await;
    assert_eq!(visits(&s, &first).await.len(), before);
}

async fn suspend_resume_cancel_and_replan(backend: Backend) {
    let start = date(2027, 1, 1);
    let Some((s, clock)) = server_at(backend, start).await else {
        return;
    };
    let plan = gold_plan(&s).await;
    let (customer, property) = customer(&s).await;
    let a = agreement(&s, &plan, &customer, &property, start, 12).await;
    days(&s, &clock, start, date(2027, 2, 1)).await;
    assert_eq!(visits(&s, &a).await.len(), 1, "the January filter change");

    // Suspended through March: nothing generated or billed; resumed, what falls from then on
    // is.
    let suspended = s
        .mutate(
            "maintenance/v1/suspend",
            json!({ "agreementId": a["id"], "reason": "card declined" }),
        )
        .await;
    assert_eq!(suspended["status"], "suspended");
    assert_eq!(suspended["nextAttention"], Value::Null);
    days(&s, &clock, date(2027, 2, 1), date(2027, 4, 1)).await;
    assert_eq!(visits(&s, &a).await.len(), 1);
    assert_eq!(invoices(&s, &a).await.len(), 1);
    s.call(
        "maintenance/v1/activate",
        json!({ "idempotencyKey": key(), "agreementId": a["id"], "signedBy": "Ada" }),
    )
    .await
    .assert_error(409, "AGREEMENT_STATE");
    let resumed = s
        .mutate("maintenance/v1/resume", json!({ "agreementId": a["id"] }))
        .await;
    assert_eq!(resumed["status"], "active");
    days(&s, &clock, date(2027, 4, 1), date(2027, 4, 2)).await;
    let caught_up = visits(&s, &a).await;
    // The April filter change (5 April) and tune-up (15 April), both within 30 days; the
    // filter change's lead time began while suspended: late.
    assert_eq!(caught_up.len(), 3);
    assert_eq!(caught_up[1]["late"], true);
    // The service was paused: February and March up to the 31st, when it resumed, are not
    // billed; 31 March is (a day of 31), and April.
    let billed = invoices(&s, &a).await;
    let starts: Vec<Value> = billed.iter().map(|p| p["periodStart"].clone()).collect();
    assert_eq!(
        starts,
        vec![
            json!(date(2027, 1, 1)),
            json!(date(2027, 3, 31)),
            json!(date(2027, 4, 1))
        ]
    );
    let one_day = s
        .call(
            "invoice/v1/get",
            json!({ "invoiceId": billed[1]["invoiceId"] }),
        )
        .await
        .ok();
    assert_eq!(one_day["quote"]["total"], "1.00");

    // Re-plan the tune-up from now: monthly on the 20th. The April one stays generated.
    let now = s
        .call("maintenance/v1/get", json!({ "agreementId": a["id"] }))
        .await
        .ok();
    let replanned = s
        .mutate(
            "maintenance/v1/changeSchedule",
            json!({ "agreementId": a["id"], "slot": 0, "expectedVersion": now["version"],
                    "rule": { "kind": "monthly_on_day", "every": 1, "day": 20 },
                    "window": { "start": "13:00", "end": "15:00" } }),
        )
        .await;
    let schedules = replanned["schedules"].as_array().unwrap();
    assert_eq!(schedules.len(), 3);
    assert_eq!(schedules[0]["replaced"], true);
    assert_eq!(schedules[2]["revision"], 1);
    // The first visit of the new rule falls after the last generated one (15 April).
    assert_eq!(schedules[2]["nextVisitOn"], json!(date(2027, 4, 20)));
    days(&s, &clock, date(2027, 4, 2), date(2027, 5, 1)).await;
    let tune_ups: Vec<NaiveDate> = visits(&s, &a)
        .await
        .iter()
        .filter(|v| v["slot"] == 0)
        .map(|v| serde_json::from_value(v["dueOn"].clone()).unwrap())
        .collect();
    assert_eq!(
        tune_ups,
        vec![date(2027, 4, 15), date(2027, 4, 20), date(2027, 5, 20)]
    );
    // A stale version is refused.
    s.call(
        "maintenance/v1/changeSchedule",
        json!({ "idempotencyKey": key(), "agreementId": a["id"], "slot": 0, "expectedVersion": now["version"],
                "rule": { "kind": "weekly", "every": 4, "weekday": "tue" },
                "window": { "start": "13:00", "end": "15:00" } }),
    )
    .await
    .assert_error(409, "VERSION_CONFLICT");

    // Cancelled: nothing more, ever.
    let cancelled = s
        .mutate(
            "maintenance/v1/cancel",
            json!({ "agreementId": a["id"], "reason": "moved away" }),
        )
        .await;
    assert_eq!(cancelled["status"], "cancelled");
    let (v, i) = (visits(&s, &a).await.len(), invoices(&s, &a).await.len());
    days(&s, &clock, date(2027, 5, 1), date(2027, 8, 1)).await;
    assert_eq!(
        (visits(&s, &a).await.len(), invoices(&s, &a).await.len()),
        (v, i)
    );
    s.call(
        "maintenance/v1/resume",
        json!({ "idempotencyKey": key(), "agreementId": a["id"] }),
    )
    .await
    .assert_error(409, "AGREEMENT_STATE");

    // Signed on 31 July for a term from 1 January: no visits in the past, the months since
    // January billed.
    let back_dated = agreement(&s, &plan, &customer, &property, start, 12).await;
    let next: Vec<Value> = back_dated["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["nextVisitOn"].clone())
        .collect();
    assert_eq!(
        next,
        vec![json!(date(2027, 10, 15)), json!(date(2027, 10, 4))]
    );
    days(&s, &clock, date(2027, 8, 1), date(2027, 8, 2)).await;
    assert!(visits(&s, &back_dated).await.is_empty());
    assert_eq!(
        invoices(&s, &back_dated).await.len(),
        8,
        "January to August"
    );

    // Bad input names its field and burns no key.
    let k = key();
    let bad = s
        .call(
            "maintenance/v1/createContract",
            json!({ "idempotencyKey": k, "customerId": customer["id"], "propertyIds": [property["id"]],
                    "planId": plan["id"], "startDate": start, "termMonths": 61, "billing": "monthly" }),
        )
        .await;
    bad.assert_error(400, "VALIDATION_FAILED");
    assert_eq!(bad.json["field_errors"][0]["field"], "termMonths");
    let good = s
        .call(
            "maintenance/v1/createContract",
            json!({ "idempotencyKey": k, "customerId": customer["id"], "propertyIds": [property["id"]],
                    "planId": plan["id"], "startDate": start, "termMonths": 12, "billing": "monthly" }),
        )
        .await
        .ok();
    assert_eq!(good["status"], "draft");
    // A billing frequency the plan has no price for.
    s.call(
        "maintenance/v1/createContract",
        json!({ "idempotencyKey": key(), "customerId": customer["id"], "propertyIds": [property["id"]],
                "planId": plan["id"], "startDate": start, "termMonths": 12, "billing": "quarterly" }),
    )
    .await
    .assert_error(400, "VALIDATION_FAILED");
    // A window that ends before it starts.
    let refused = s
        .call(
            "maintenance/v1/changeSchedule",
            json!({ "idempotencyKey": key(), "agreementId": good["id"], "slot": 1,
                    "rule": { "kind": "weekly", "every": 4, "weekday": "tue" },
                    "window": { "start": "15:00", "end": "13:00" } }),
        )
        .await;
    refused.assert_error(400, "VALIDATION_FAILED");
    assert_eq!(refused.json["field_errors"][0]["field"], "window.end");
}

async fn other_organizations_and_roles(backend: Backend) {
    let start = date(2027, 1, 1);
    let Some((s, _clock)) = server_at(backend, start).await else {
        return;
    };
    let plan = gold_plan(&s).await;
    let (customer, property) = customer(&s).await;
    let a = agreement(&s, &plan, &customer, &property, start, 12).await;
    let b = s.new_tenant("Org B", "owner-b@example.com").await;
    for (procedure, body) in [
        ("maintenance/v1/get", json!({ "agreementId": a["id"] })),
        ("maintenance/v1/visits", json!({ "agreementId": a["id"] })),
        ("maintenance/v1/invoices", json!({ "agreementId": a["id"] })),
        ("maintenance/v1/getPlan", json!({ "planId": plan["id"] })),
        (
            "maintenance/v1/suspend",
            json!({ "idempotencyKey": key(), "agreementId": a["id"], "reason": "x" }),
        ),
        (
            "maintenance/v1/cancel",
            json!({ "idempotencyKey": key(), "agreementId": a["id"], "reason": "x" }),
        ),
        (
            "maintenance/v1/resume",
            json!({ "idempotencyKey": key(), "agreementId": a["id"] }),
        ),
        (
            "maintenance/v1/changeSchedule",
            json!({ "idempotencyKey": key(), "agreementId": a["id"], "slot": 0,
                    "rule": { "kind": "weekly", "every": 4, "weekday": "tue" },
                    "window": { "start": "13:00", "end": "15:00" } }),
        ),
        (
            "maintenance/v1/activate",
            json!({ "idempotencyKey": key(), "agreementId": a["id"], "signedBy": "Mallory" }),
        ),
    ] {
        s.call_as(&b, procedure, body)
            .await
            .assert_error(404, "NOT_FOUND");
    }
    // Org B's agreement on org A's plan, customer and property: refused, not found.
    let own = s
        .call_as(
            &b,
            "customer/v1/create",
            json!({ "idempotencyKey": key(), "name": "Bob" }),
        )
        .await
        .ok();
    s.call_as(
        &b,
        "maintenance/v1/createContract",
        json!({ "idempotencyKey": key(), "customerId": own["id"], "propertyIds": [property["id"]],
                "planId": plan["id"], "startDate": start, "termMonths": 12, "billing": "monthly" }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    let listed = s.call_as(&b, "maintenance/v1/list", json!({})).await.ok();
    assert!(listed["items"].as_array().unwrap().is_empty());
    let plans = s
        .call_as(&b, "maintenance/v1/listPlans", json!({}))
        .await
        .ok();
    assert!(plans["items"].as_array().unwrap().is_empty());

    // A technician neither writes nor reads agreements; the office does not write plans.
    let tech_token = s.member(&s.a, "tech@example.com", Role::Technician).await;
    let tech = support::Tenant {
        token: tech_token,
        ..s.a.clone()
    };
    s.call_as(
        &tech,
        "maintenance/v1/cancel",
        json!({ "idempotencyKey": key(), "agreementId": a["id"], "reason": "x" }),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    s.call_as(
        &tech,
        "maintenance/v1/get",
        json!({ "agreementId": a["id"] }),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    let office_token = s.member(&s.a, "office@example.com", Role::Office).await;
    let office = support::Tenant {
        token: office_token,
        ..s.a.clone()
    };
    s.call_as(
        &office,
        "maintenance/v1/createPlan",
        json!({ "idempotencyKey": key(), "name": "Silver", "visits": [
                    { "name": "Tune-up", "trade": "hvac", "rule": { "kind": "weekly", "every": 4, "weekday": "tue" },
                      "window": { "start": "09:00", "end": "11:00" }, "durationMinutes": 60 }],
                "prices": { "monthly": "10.00" } }),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    // A plan's name is unique.
    s.call(
        "maintenance/v1/createPlan",
        json!({ "idempotencyKey": key(), "name": "Gold comfort", "visits": [
                    { "name": "Tune-up", "trade": "hvac", "rule": { "kind": "weekly", "every": 4, "weekday": "tue" },
                      "window": { "start": "09:00", "end": "11:00" }, "durationMinutes": 60 }],
                "prices": { "monthly": "10.00" } }),
    )
    .await
    .assert_error(409, "PLAN_EXISTS");
}

/// The outbox messages of `kind` org A wrote, their payloads.
async fn messages(s: &TestServer, kind: &str) -> Vec<Value> {
    s.services
        .outbox(&TestServer::caller(&s.a))
        .await
        .unwrap()
        .into_iter()
        .filter(|(k, _)| k == kind)
        .map(|(_, payload)| payload)
        .collect()
}

async fn declines_are_retried_then_suspend_and_renewals_take_the_new_price(backend: Backend) {
    let start = date(2027, 1, 1);
    let Some((s, clock)) = server_at(backend, start).await else {
        return;
    };
    let plan = gold_plan(&s).await;
    let (customer, property) = customer(&s).await;

    // Paid by card: January's invoice is charged as it is issued.
    let draft = s
        .mutate(
            "maintenance/v1/createContract",
            json!({ "customerId": customer["id"], "propertyIds": [property["id"]], "planId": plan["id"],
                    "startDate": start, "termMonths": 12, "billing": "monthly", "autoRenew": true,
                    "cardToken": "tok_visa" }),
        )
        .await;
    assert_eq!(draft["autopay"], true);
    assert_eq!(
        draft["renewsOn"],
        json!(date(2027, 12, 2)),
        "30 days before the term ends"
    );
    let a = s
        .mutate(
            "maintenance/v1/activate",
            json!({ "agreementId": draft["id"], "signedBy": "Ada Lovelace" }),
        )
        .await;
    days(&s, &clock, start, date(2027, 1, 2)).await;
    let billed = invoices(&s, &a).await;
    let january = s
        .call(
            "invoice/v1/get",
            json!({ "invoiceId": billed[0]["invoiceId"] }),
        )
        .await
        .ok();
    assert_eq!(january["status"], "paid");
    assert_eq!(s.payments.moved().len(), 1);

    // February's charge is declined three times, three days apart: the office hears each
    // time, and the third suspends the agreement.
    s.payments.script([
        Behavior::Decline("insufficient_funds".into()),
        Behavior::Decline("insufficient_funds".into()),
        Behavior::Decline("card_declined".into()),
    ]);
    days(&s, &clock, date(2027, 1, 2), date(2027, 2, 2)).await;
    let now = s
        .call("maintenance/v1/get", json!({ "agreementId": a["id"] }))
        .await
        .ok();
    assert_eq!(now["failedCharges"], 1);
    assert_eq!(now["retryOn"], json!(date(2027, 2, 4)));
    days(&s, &clock, date(2027, 2, 2), date(2027, 2, 4)).await;
    assert_eq!(
        messages(&s, "agreement_payment_failed").await.len(),
        1,
        "not tried again before the retry date"
    );
    days(&s, &clock, date(2027, 2, 4), date(2027, 2, 8)).await;
    let failed = messages(&s, "agreement_payment_failed").await;
    assert_eq!(failed.len(), 3);
    assert_eq!(failed[0]["attempts"], 1);
    assert_eq!(failed[0]["retryOn"], json!(date(2027, 2, 4)));
    assert_eq!(failed[2]["attempts"], 3);
    assert_eq!(failed[2]["suspended"], true);
    assert_eq!(failed[2]["code"], "card_declined");
    let suspended = s
        .call("maintenance/v1/get", json!({ "agreementId": a["id"] }))
        .await
        .ok();
    assert_eq!(suspended["status"], "suspended");
    assert_eq!(suspended["nextAttention"], Value::Null);
    assert_eq!(s.payments.moved().len(), 1, "nothing more was charged");
    let report = s.call("maintenance/v1/report", json!({})).await.ok();
    assert_eq!(
        (report["active"].clone(), report["suspended"].clone()),
        (json!(0), json!(1))
    );

    // A new card, resumed: February is charged on the next tick, March on the 1st.
    s.mutate(
        "maintenance/v1/setAutopay",
        json!({ "agreementId": a["id"], "cardToken": "tok_mastercard" }),
    )
    .await;
    s.mutate("maintenance/v1/resume", json!({ "agreementId": a["id"] }))
        .await;
    days(&s, &clock, date(2027, 2, 8), date(2027, 3, 2)).await;
    for period in invoices(&s, &a).await {
        let invoice = s
            .call(
                "invoice/v1/get",
                json!({ "invoiceId": period["invoiceId"] }),
            )
            .await
            .ok();
        assert_eq!(invoice["status"], "paid", "{}", period["periodStart"]);
    }
    assert_eq!(s.payments.moved().len(), 3);

    // The plan's price rises; the agreement keeps its own until it renews on 2 December, and
    // the customer is told. December is billed at the old price, January 2028 at the new.
    let current = s
        .call("maintenance/v1/getPlan", json!({ "planId": plan["id"] }))
        .await
        .ok();
    s.mutate(
        "maintenance/v1/setPlanPrices",
        json!({ "planId": plan["id"], "expectedVersion": current["version"],
                "prices": { "monthly": "35.00" } }),
    )
    .await;
    let report = s
        .call("maintenance/v1/report", json!({ "withinDays": 365 }))
        .await
        .ok();
    assert_eq!(report["active"], 1);
    assert_eq!(report["monthlyEquivalent"], "31.00");
    assert_eq!(
        report["renewalsDue"][0]["renewsOn"],
        json!(date(2027, 12, 2))
    );
    days(&s, &clock, date(2027, 3, 2), date(2028, 1, 2)).await;
    let renewed = s
        .call("maintenance/v1/get", json!({ "agreementId": a["id"] }))
        .await
        .ok();
    assert_eq!(renewed["status"], "active");
    assert_eq!(renewed["renewals"], 1);
    assert_eq!(renewed["termEnd"], json!(date(2029, 1, 1)));
    assert_eq!(renewed["price"], "35.00");
    let told = messages(&s, "agreement_renewed").await;
    assert_eq!(told.len(), 1);
    assert_eq!(told[0]["termEnd"], json!(date(2028, 12, 31)));
    assert_eq!(told[0]["price"], "35.00");
    let billed = invoices(&s, &a).await;
    assert_eq!(billed.len(), 13);
    let total = |n: usize| {
        let id = billed[n]["invoiceId"].clone();
        let s = &s;
        async move {
            s.call("invoice/v1/get", json!({ "invoiceId": id }))
                .await
                .ok()["quote"]["total"]
                .clone()
        }
    };
    assert_eq!(total(11).await, "31.00", "December 2027");
    assert_eq!(total(12).await, "35.00", "January 2028");
}

/// The job's response window: its SLA deadline less its creation.
fn window_hours(job: &Value) -> i64 {
    let at = |f: &str| serde_json::from_value::<DateTime<Utc>>(job[f].clone()).unwrap();
    (at("slaDeadline") - at("createdAt")).num_hours()
}

async fn members_get_their_discount_and_priority(backend: Backend) {
    let start = date(2027, 1, 1);
    let Some((s, clock)) = server_at(backend, start).await else {
        return;
    };
    let plan = gold_plan(&s).await;
    let (member, home) = customer(&s).await;
    let (other, other_home) = customer(&s).await;
    let lines = json!([{ "description": "Thermostat", "kind": "material", "unitPrice": "33.33",
                         "quantity": "1" }]);
    let quote = |c: &Value, p: &Value| {
        json!({ "customerId": c["id"], "propertyId": p["id"], "lines": lines,
                "discount": { "type": "amount", "amount": "3.00" } })
    };
    let job = |c: &Value, p: &Value, priority: &str| {
        json!({ "customerId": c["id"], "propertyId": p["id"], "trade": "hvac",
                "priority": priority, "summary": "No heat" })
    };

    // A draft agreement gives nothing yet.
    let draft = s
        .mutate(
            "maintenance/v1/createContract",
            json!({ "customerId": member["id"], "propertyIds": [home["id"]], "planId": plan["id"],
                    "startDate": start, "termMonths": 12, "billing": "monthly" }),
        )
        .await;
    let before = s
        .call("pricebook/v1/quote", quote(&member, &home))
        .await
        .ok();
    assert_eq!(before["memberDiscount"], Value::Null);
    assert_eq!(before["total"], "30.33");
    let agreement = s
        .mutate(
            "maintenance/v1/activate",
            json!({ "agreementId": draft["id"], "signedBy": "Ada Lovelace" }),
        )
        .await;
    days(&s, &clock, start, date(2027, 1, 2)).await;

    // The member's quote: 10 % of what the 3.00 discount left, as its own adjustment, its
    // rounding logged; the other customer pays the full price.
    let priced = s
        .call("pricebook/v1/quote", quote(&member, &home))
        .await
        .ok();
    assert_eq!(
        priced["memberDiscount"],
        json!({ "agreementId": agreement["id"], "percent": "10", "amount": "3.03" })
    );
    assert_eq!(
        (&priced["subtotal"], &priced["discount"], &priced["total"]),
        (&json!("33.33"), &json!("3.00"), &json!("27.30"))
    );
    let rounded: Vec<&Value> = priced["roundings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["at"] == "memberDiscount")
        .collect();
    assert_eq!(rounded.len(), 1, "{priced}");
    assert_eq!(
        (&rounded[0]["before"], &rounded[0]["after"]),
        (&json!("3.0330"), &json!("3.03"))
    );
    let full = s
        .call("pricebook/v1/quote", quote(&other, &other_home))
        .await
        .ok();
    assert_eq!(full["memberDiscount"], Value::Null);
    assert_eq!(full["total"], "30.33");

    // The plan waives the trip fee: the fee's line is priced at zero for the member and says
    // what it was; the other customer pays it.
    let trip_fee_item = s
        .mutate(
            "pricebook/v1/createItem",
            json!({ "name": "Trip fee",
                    "details": { "kind": "service", "price": "89.00", "estimatedLaborHours": "0",
                                 "trade": "hvac", "tripFee": true } }),
        )
        .await;
    assert_eq!(trip_fee_item["details"]["tripFee"], true);
    let trip = |c: &Value, p: &Value| {
        json!({ "customerId": c["id"], "propertyId": p["id"],
                "lines": [{ "itemId": trip_fee_item["id"], "quantity": "1" }] })
    };
    let waived = s
        .call("pricebook/v1/quote", trip(&member, &home))
        .await
        .ok();
    assert_eq!(
        (
            &waived["lines"][0]["lineTotal"],
            &waived["lines"][0]["waived"]
        ),
        (
            &json!("0.00"),
            &json!({ "agreementId": agreement["id"], "unitPrice": "89.00" })
        )
    );
    let charged = s
        .call("pricebook/v1/quote", trip(&other, &other_home))
        .await
        .ok();
    assert_eq!(
        (
            &charged["lines"][0]["lineTotal"],
            &charged["lines"][0]["waived"]
        ),
        (&json!("89.00"), &Value::Null)
    );

    // Estimates and invoices price through the same path.
    let estimate = s
        .mutate(
            "estimate/v1/generate",
            json!({ "customerId": member["id"], "propertyId": home["id"],
                    "options": [{ "name": "Replace", "lines": lines }],
                    "validUntil": morning(date(2027, 1, 20)) }),
        )
        .await;
    assert_eq!(
        estimate["options"][0]["quote"]["memberDiscount"]["amount"],
        "3.33"
    );
    assert_eq!(estimate["options"][0]["quote"]["total"], "30.00");

    // A member's routine call is answered within the urgent window (24 h, not 72 h); an
    // emergency keeps its own, shorter one; another customer's routine call gets 72 h.
    let routine = s
        .mutate("job/v1/create", job(&member, &home, "routine"))
        .await;
    assert_eq!(window_hours(&routine), 24);
    let emergency = s
        .mutate("job/v1/create", job(&member, &home, "emergency"))
        .await;
    assert_eq!(window_hours(&emergency), 2);
    let theirs = s
        .mutate("job/v1/create", job(&other, &other_home, "routine"))
        .await;
    assert_eq!(window_hours(&theirs), 72);
    // Editing the priority keeps the cap.
    let edited = s
        .mutate(
            "job/v1/update",
            json!({ "jobId": emergency["id"], "priority": "routine" }),
        )
        .await;
    assert_eq!(window_hours(&edited), 24);

    // The invoice carries the discount, and a credit note takes its share back with the line.
    let draft_invoice = s
        .mutate(
            "invoice/v1/create",
            json!({ "jobId": routine["id"], "from": { "from": "lines", "lines": lines } }),
        )
        .await;
    assert_eq!(draft_invoice["quote"]["memberDiscount"]["amount"], "3.33");
    let issued = s
        .mutate(
            "invoice/v1/issue",
            json!({ "invoiceId": draft_invoice["id"] }),
        )
        .await;
    let credited = s
        .mutate(
            "invoice/v1/creditNote",
            json!({ "invoiceId": issued["id"], "reason": "Returned", "lines": [{ "line": 0 }] }),
        )
        .await;
    let note = &credited["creditNotes"][0];
    assert_eq!(
        (&note["subtotal"], &note["memberDiscount"], &note["total"]),
        (&json!("33.33"), &json!("3.33"), &json!("30.00"))
    );

    // Suspended, the member gets nothing until it is paid.
    s.mutate(
        "maintenance/v1/suspend",
        json!({ "agreementId": agreement["id"], "reason": "Card expired" }),
    )
    .await;
    let suspended = s
        .call("pricebook/v1/quote", quote(&member, &home))
        .await
        .ok();
    assert_eq!(suspended["memberDiscount"], Value::Null);
    let fee = s
        .call("pricebook/v1/quote", trip(&member, &home))
        .await
        .ok();
    assert_eq!(
        fee["lines"][0]["lineTotal"], "89.00",
        "suspended: no waiver"
    );
    // An update that does not mention the mark keeps it; one that says false clears it.
    let item = |trip_fee: Option<bool>| {
        let mut details = json!({ "kind": "service", "price": "89.00",
                                  "estimatedLaborHours": "0", "trade": "hvac" });
        if let Some(mark) = trip_fee {
            details["tripFee"] = json!(mark);
        }
        json!({ "itemId": trip_fee_item["id"], "name": "Trip charge", "details": details })
    };
    let renamed = s.mutate("pricebook/v1/updateItem", item(None)).await;
    assert_eq!(renamed["details"]["tripFee"], true);
    let unmarked = s.mutate("pricebook/v1/updateItem", item(Some(false))).await;
    assert_eq!(unmarked["details"]["tripFee"], false);
    let later = s
        .mutate("job/v1/create", job(&member, &home, "routine"))
        .await;
    assert_eq!(window_hours(&later), 72);
    // The agreement's own period invoice was never discounted.
    let billed = invoices(&s, &agreement).await;
    assert_eq!(billed.len(), 1, "January");
    for period in billed {
        let invoice = s
            .call(
                "invoice/v1/get",
                json!({ "invoiceId": period["invoiceId"] }),
            )
            .await
            .ok();
        assert_eq!(invoice["quote"]["memberDiscount"], Value::Null);
    }
}

async fn cancelling_credits_the_unused_days(backend: Backend) {
    let start = date(2027, 1, 1);
    let Some((s, clock)) = server_at(backend, start).await else {
        return;
    };
    let plan = gold_plan(&s).await;
    let signed = |billing: &str, customer: &Value, property: &Value| {
        json!({ "customerId": customer["id"], "propertyIds": [property["id"]], "planId": plan["id"],
                "startDate": start, "termMonths": 12, "billing": billing })
    };
    let mut agreements = Vec::new();
    for billing in ["annually", "monthly", "monthly", "annually"] {
        let (customer, property) = customer(&s).await;
        let draft = s
            .mutate(
                "maintenance/v1/createContract",
                signed(billing, &customer, &property),
            )
            .await;
        agreements.push(
            s.mutate(
                "maintenance/v1/activate",
                json!({ "agreementId": draft["id"], "signedBy": "Ada Lovelace" }),
            )
            .await,
        );
    }
    let [annual, unpaid, part_paid, declined] = &agreements[..] else {
        unreachable!("four agreements")
    };
    days(&s, &clock, start, date(2027, 3, 17)).await;
    let invoice_of = |billed: Vec<Value>, n: usize| billed[n]["invoiceId"].clone();
    // The year paid by card, March's half paid in cash.
    let year = invoice_of(invoices(&s, annual).await, 0);
    let other_year = invoice_of(invoices(&s, declined).await, 0);
    for paid in [&year, &other_year] {
        s.mutate(
            "invoice/v1/collectPayment",
            json!({ "invoiceId": paid, "amount": "330.00", "method": "card" }),
        )
        .await;
    }
    let march = invoice_of(invoices(&s, part_paid).await, 2);
    s.mutate(
        "invoice/v1/collectPayment",
        json!({ "invoiceId": march, "amount": "20.00", "method": "cash" }),
    )
    .await;

    // Cancelled on 16 March, effective at its end: 17 to 31 March unused, 15 of 31 days,
    // 0.4839 of 31.00 = 15.00 taken off what is owed.
    let cancel = |a: &Value| json!({ "agreementId": a["id"], "reason": "Moving away" });
    let cancelled = s.mutate("maintenance/v1/cancel", cancel(unpaid)).await;
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(
        cancelled["cancellation"]["cancelledOn"],
        json!(date(2027, 3, 16))
    );
    let credit = &cancelled["cancellation"]["credits"][0];
    assert_eq!(
        (
            &credit["unusedDays"],
            &credit["share"],
            &credit["amount"],
            &credit["settlement"]
        ),
        (
            &json!(15),
            &json!("0.4839"),
            &json!("15.00"),
            &json!("credited")
        )
    );
    let unpaid_march = s
        .call(
            "invoice/v1/get",
            json!({ "invoiceId": credit["invoiceId"] }),
        )
        .await
        .ok();
    assert_eq!(
        (
            &unpaid_march["balance"],
            &unpaid_march["credited"],
            &unpaid_march["status"]
        ),
        (&json!("16.00"), &json!("15.00"), &json!("issued"))
    );
    let reason = unpaid_march["creditNotes"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("15 unused days of 2027-03-01 to 2027-03-31"),
        "{reason}"
    );

    // Partly paid, owing less than the credit: left to the office, nothing credited.
    let by_hand = s.mutate("maintenance/v1/cancel", cancel(part_paid)).await;
    assert_eq!(
        by_hand["cancellation"]["credits"][0]["settlement"],
        "by_hand"
    );
    let still = s
        .call("invoice/v1/get", json!({ "invoiceId": march }))
        .await
        .ok();
    assert_eq!(
        (&still["balance"], &still["creditNotes"]),
        (&json!("11.00"), &json!([]))
    );

    // The year, paid, cancelled on 31 March: April to December (275 of 365 days) refunded to
    // the card, through the processor; the invoice stays paid.
    clock.set(morning(date(2027, 3, 31)));
    let refunded = s.mutate("maintenance/v1/cancel", cancel(annual)).await;
    let credit = &refunded["cancellation"]["credits"][0];
    assert_eq!(
        (
            &credit["unusedDays"],
            &credit["share"],
            &credit["amount"],
            &credit["settlement"]
        ),
        (
            &json!(275),
            &json!("0.7534"),
            &json!("248.62"),
            &json!("refunded")
        )
    );
    let paid_year = s
        .call("invoice/v1/get", json!({ "invoiceId": year }))
        .await
        .ok();
    assert_eq!(
        (
            &paid_year["status"],
            &paid_year["refunded"],
            &paid_year["credited"],
            &paid_year["balance"]
        ),
        (
            &json!("paid"),
            &json!("248.62"),
            &json!("248.62"),
            &json!("0.00")
        )
    );
    assert_eq!(credit["refundPaymentId"], paid_year["payments"][0]["id"]);

    // The processor declines the refund: the agreement is cancelled all the same, and the
    // credit is left to the office, nothing credited.
    s.payments.script([Behavior::Decline("card_closed".into())]);
    let left = s.mutate("maintenance/v1/cancel", cancel(declined)).await;
    assert_eq!(left["status"], "cancelled");
    assert_eq!(left["cancellation"]["credits"][0]["settlement"], "by_hand");
    let unrefunded = s
        .call("invoice/v1/get", json!({ "invoiceId": other_year }))
        .await
        .ok();
    assert_eq!(
        (&unrefunded["refunded"], &unrefunded["creditNotes"]),
        (&json!("0.00"), &json!([]))
    );

    // Cancelled agreements bill nothing more, and a second cancel is refused.
    days(&s, &clock, date(2027, 3, 31), date(2027, 5, 2)).await;
    assert_eq!(invoices(&s, unpaid).await.len(), 3);
    s.call(
        "maintenance/v1/cancel",
        json!({ "idempotencyKey": key(), "agreementId": annual["id"], "reason": "Again" }),
    )
    .await
    .assert_error(409, "AGREEMENT_STATE");
}

async fn a_visit_requires_its_plan_checklist(backend: Backend) {
    // The real clock: the visit's job is scheduled and worked like any other.
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let f = s.fixture().await;
    // An electrical checklist: by its trade it applies to no plumbing job.
    let checklist = s
        .mutate(
            "form/v1/defineTemplate",
            json!({ "name": "Backflow test", "trade": "electrical", "requiredBeforeCompletion": false,
                    "questions": [{ "key": "holds", "label": "Pressure holds", "type": "yes_no",
                                    "required": true }] }),
        )
        .await;
    let weekday = (Utc::now() + Duration::days(2))
        .format("%a")
        .to_string()
        .to_lowercase();
    let plan = |forms: Value| {
        json!({ "idempotencyKey": key(), "name": format!("Backflow {forms}"),
                "visits": [{ "name": "Backflow test", "trade": "plumbing",
                             "rule": { "kind": "weekly", "every": 4, "weekday": weekday },
                             "window": { "start": "09:00", "end": "11:00" }, "durationMinutes": 30,
                             "formTemplateIds": forms }],
                "prices": { "monthly": "20.00" } })
    };
    let unknown = s
        .call("maintenance/v1/createPlan", plan(json!([key()])))
        .await;
    unknown.assert_error(400, "VALIDATION_FAILED");
    assert_eq!(
        unknown.json["field_errors"][0]["field"],
        "visits[0].formTemplateIds[0]"
    );
    let plan = s
        .call(
            "maintenance/v1/createPlan",
            plan(json!([checklist["id"], checklist["id"]])),
        )
        .await
        .ok();
    assert_eq!(
        plan["visits"][0]["formTemplateIds"],
        json!([checklist["id"]]),
        "an id given twice counts once"
    );
    let draft = s
        .mutate(
            "maintenance/v1/createContract",
            json!({ "customerId": f.customer["id"], "propertyIds": [f.property["id"]],
                    "planId": plan["id"], "startDate": Utc::now().date_naive(), "termMonths": 12,
                    "billing": "monthly" }),
        )
        .await;
    let agreement = s
        .mutate(
            "maintenance/v1/activate",
            json!({ "agreementId": draft["id"], "signedBy": "Ada Lovelace" }),
        )
        .await;
    s.services.fire_due_timers().await.unwrap();
    let generated = visits(&s, &agreement).await;
    assert!(!generated.is_empty());
    let job = s
        .call("job/v1/get", json!({ "jobId": generated[0]["jobId"] }))
        .await
        .ok();

    // The visit's job carries the checklist, required; another plumbing job does not.
    let on_job = s
        .call("form/v1/ofJob", json!({ "jobId": job["id"] }))
        .await
        .ok();
    assert_eq!(on_job["forms"][0]["template"]["id"], checklist["id"]);
    assert_eq!(on_job["forms"][0]["requiredBeforeCompletion"], true);
    assert_eq!(on_job["forms"][0]["missing"], json!(["holds"]));
    let other = s.job(&f).await;
    let on_other = s
        .call("form/v1/ofJob", json!({ "jobId": other["id"] }))
        .await
        .ok();
    assert_eq!(on_other["forms"], json!([]));

    // Completion waits for it.
    s.schedule_and_assign(&job, &f.tech).await;
    s.move_job(&job, &["dispatched", "en_route", "on_site", "in_progress"])
        .await;
    let complete = || json!({ "idempotencyKey": key(), "jobId": job["id"], "status": "completed" });
    let held = s.call("job/v1/updateStatus", complete()).await;
    held.assert_error(422, "FORMS_INCOMPLETE");
    assert_eq!(
        held.json["error"]["details"]["forms"][0]["name"],
        "Backflow test"
    );
    s.mutate(
        "form/v1/answer",
        json!({ "jobId": job["id"], "templateId": checklist["id"], "templateVersion": 1,
                "answers": [{ "key": "holds", "value": true }] }),
    )
    .await;
    let done = s.call("job/v1/updateStatus", complete()).await.ok();
    assert_eq!(done["status"], "completed");
}

async fn changing_plan_prorates_the_rest_of_the_period(backend: Backend) {
    let start = date(2027, 1, 1);
    let Some((s, clock)) = server_at(backend, start).await else {
        return;
    };
    let gold = gold_plan(&s).await;
    let platinum = s
        .mutate(
            "maintenance/v1/createPlan",
            json!({ "name": "Platinum comfort",
                    "visits": [{ "name": "Monthly check", "trade": "hvac",
                                 "rule": { "kind": "monthly_on_day", "every": 1, "day": 20 },
                                 "window": { "start": "13:00", "end": "15:00" },
                                 "durationMinutes": 45 }],
                    "prices": { "monthly": "62.00" } }),
        )
        .await;
    let (customer, property) = customer(&s).await;
    let agreement = agreement(&s, &gold, &customer, &property, start, 12).await;
    days(&s, &clock, start, date(2027, 3, 17)).await;
    let before = visits(&s, &agreement).await.len();

    // Upgraded on 16 March: from the 17th, 15 of March's 31 days are credited at 31.00 and
    // billed at 62.00.
    let change = |plan: &Value| json!({ "idempotencyKey": key(), "agreementId": agreement["id"], "planId": plan["id"] });
    let upgraded = s
        .call("maintenance/v1/changePlan", change(&platinum))
        .await
        .ok();
    assert_eq!(
        (
            &upgraded["planId"],
            &upgraded["planName"],
            &upgraded["price"]
        ),
        (&platinum["id"], &json!("Platinum comfort"), &json!("62.00"))
    );
    let changed = &upgraded["planChanges"][0];
    assert_eq!(changed["changedOn"], json!(date(2027, 3, 16)));
    assert_eq!(changed["fromPrice"], "31.00");
    let credit = &changed["credits"][0];
    assert_eq!(
        (
            &credit["unusedDays"],
            &credit["amount"],
            &credit["settlement"]
        ),
        (&json!(15), &json!("15.00"), &json!("credited"))
    );
    let rest = &changed["invoices"][0];
    assert_eq!(
        (&rest["periodStart"], &rest["periodEnd"]),
        (&json!(date(2027, 3, 17)), &json!(date(2027, 4, 1)))
    );
    let get = |id: &Value| json!({ "invoiceId": id });
    let billed_rest = s.call("invoice/v1/get", get(&rest["invoiceId"])).await.ok();
    assert_eq!(billed_rest["quote"]["total"], "30.00", "62.00 × 15/31");
    let march = s
        .call("invoice/v1/get", get(&credit["invoiceId"]))
        .await
        .ok();
    assert_eq!(
        (&march["credited"], &march["balance"]),
        (&json!("15.00"), &json!("16.00"))
    );
    // One change a day; the plan it is on is not a change.
    s.call("maintenance/v1/changePlan", change(&gold))
        .await
        .assert_error(409, "AGREEMENT_STATE");

    // The new plan's visits from the 17th: the 20 March check is within the lead time.
    days(&s, &clock, date(2027, 3, 17), date(2027, 3, 21)).await;
    let after = visits(&s, &agreement).await;
    assert_eq!(after.len(), before + 1, "{after:?}");
    let check = after
        .iter()
        .find(|v| v["revision"] == 1)
        .expect("the new plan's visit");
    assert_eq!(
        (
            &check["slot"],
            &check["dueOn"],
            &check["generatedOn"],
            &check["late"]
        ),
        (
            &json!(0),
            &json!(date(2027, 3, 20)),
            &json!(date(2027, 3, 17)),
            &json!(false)
        )
    );

    // Cancelled on 20 March: only the new invoice has days left to credit (March's first
    // invoice already credited from the 17th): 11 of its 15 days, 0.7333 of 30.00.
    let cancelled = s
        .mutate(
            "maintenance/v1/cancel",
            json!({ "agreementId": agreement["id"], "reason": "Moving away" }),
        )
        .await;
    let credits = cancelled["cancellation"]["credits"].as_array().unwrap();
    assert_eq!(credits.len(), 1, "{credits:?}");
    assert_eq!(credits[0]["invoiceId"], rest["invoiceId"]);
    assert_eq!(
        (&credits[0]["share"], &credits[0]["amount"]),
        (&json!("0.7333"), &json!("22.00"))
    );
}

async fn billed_per_visit_when_the_visit_is_done(backend: Backend) {
    // The real clock: the visit's job is scheduled and worked like any other.
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let f = s.fixture().await;
    let weekday = (Utc::now() + Duration::days(2))
        .format("%a")
        .to_string()
        .to_lowercase();
    let plan = s
        .mutate(
            "maintenance/v1/createPlan",
            json!({ "name": "Pool service",
                    "visits": [{ "name": "Pool check", "trade": "plumbing",
                                 "rule": { "kind": "weekly", "every": 4, "weekday": weekday },
                                 "window": { "start": "09:00", "end": "11:00" },
                                 "durationMinutes": 60 }],
                    "prices": { "perVisit": "95.00" } }),
        )
        .await;
    assert_eq!(plan["prices"]["perVisit"], "95.00");
    let draft = s
        .mutate(
            "maintenance/v1/createContract",
            json!({ "customerId": f.customer["id"], "propertyIds": [f.property["id"]],
                    "planId": plan["id"], "startDate": Utc::now().date_naive(), "termMonths": 12,
                    "billing": "per_visit", "cardToken": "tok_visa" }),
        )
        .await;
    assert_eq!(draft["billing"], "per_visit");
    let agreement = s
        .mutate(
            "maintenance/v1/activate",
            json!({ "agreementId": draft["id"], "signedBy": "Ada Lovelace" }),
        )
        .await;
    s.services.fire_due_timers().await.unwrap();
    assert!(
        invoices(&s, &agreement).await.is_empty(),
        "nothing billed before a visit is done"
    );
    let visit = visits(&s, &agreement).await[0].clone();
    let job = json!({ "id": visit["jobId"] });

    // The visit is done: the agreement's next tick invoices it on its job, once, and charges
    // the card.
    s.schedule_and_assign(&job, &f.tech).await;
    s.move_job(&job, &support::TO_COMPLETED).await;
    s.services.fire_due_timers().await.unwrap();
    s.services.fire_due_timers().await.unwrap();
    let billed = invoices(&s, &agreement).await;
    assert_eq!(billed.len(), 1, "{billed:?}");
    assert_eq!(billed[0]["jobId"], job["id"]);
    assert_eq!(billed[0]["periodStart"], visit["dueOn"]);
    let invoice = s
        .call(
            "invoice/v1/get",
            json!({ "invoiceId": billed[0]["invoiceId"] }),
        )
        .await
        .ok();
    assert_eq!(
        (
            &invoice["jobId"],
            &invoice["quote"]["total"],
            &invoice["status"]
        ),
        (&job["id"], &json!("95.00"), &json!("paid"))
    );
    let label = invoice["quote"]["lines"][0]["description"]
        .as_str()
        .unwrap();
    assert!(label.contains("Pool check of"), "{label}");
    let done = s
        .call("job/v1/get", json!({ "jobId": job["id"] }))
        .await
        .ok();
    assert_eq!(done["status"], "paid");
}
