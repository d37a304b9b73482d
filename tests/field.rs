//! The technician's scope over HTTP, on SQLite and on PostgreSQL: a member with the technician
//! role reads and moves only the jobs and appointments of the technician linked to their user;
//! every other id is `404`, exactly as another organization's ids are.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Value, json};

use hestami::core::org::Role;
use support::{Tenant, TestServer, key};

both!(
    a_technician_sees_and_moves_only_their_own_work,
    an_unlinked_technician_sees_nothing_and_links_are_checked,
    my_day_is_the_technicians_own_day_with_what_they_need_on_site,
    field_moves_carry_the_devices_time_and_place_and_positions_are_kept,
    notes_are_appended_once_and_scoped_like_their_job,
);

fn hours_from_now(a: i64, b: i64) -> (String, String) {
    let now = chrono::Utc::now();
    (
        (now + chrono::Duration::hours(a)).to_rfc3339(),
        (now + chrono::Duration::hours(b)).to_rfc3339(),
    )
}

async fn plumber(s: &TestServer, name: &str) -> Value {
    let tech = s
        .mutate(
            "technician/v1/create",
            json!({ "name": name, "trades": ["plumbing"] }),
        )
        .await;
    s.around_the_clock(&tech).await
}

/// A technician member of organization A, with their user id.
async fn technician_member(s: &TestServer, email: &str) -> (Tenant, Value) {
    let token = s.member(&s.a, email, Role::Technician).await;
    let me = Tenant {
        token,
        ..s.a.clone()
    };
    let who = s.call_as(&me, "auth/v1/whoami", json!({})).await.ok();
    (me, who["user"]["id"].clone())
}

async fn job(s: &TestServer, customer: &Value, property: &Value) -> Value {
    s.mutate(
        "job/v1/create",
        json!({ "customerId": customer["id"], "propertyId": property["id"], "trade": "plumbing",
                "priority": "routine", "summary": "Fix the tap" }),
    )
    .await
}

async fn a_technician_sees_and_moves_only_their_own_work(s: TestServer) {
    let f = s.fixture().await;
    let ana = f.tech.clone();
    let bob = plumber(&s, "Bob").await;
    let (me, user) = technician_member(&s, "ana@a.example").await;
    assert_eq!(s.link(&me, &ana).await, user);

    // Ana's v1 job, Bob's v1 job, a v2 visit led by Ana and one led by Bob.
    let (a_v1, b_v1) = (
        job(&s, &f.customer, &f.property).await,
        job(&s, &f.customer, &f.property).await,
    );
    for (j, tech, hours) in [(&a_v1, &ana, 2), (&b_v1, &bob, 2)] {
        let w = hours_from_now(hours, hours + 1);
        s.mutate(
            "job/v1/schedule",
            json!({ "jobId": j["id"], "windowStart": w.0, "windowEnd": w.1 }),
        )
        .await;
        s.mutate(
            "dispatch/v1/assignTech",
            json!({ "jobId": j["id"], "technicianId": tech["id"] }),
        )
        .await;
    }
    let (a_v2, b_v2) = (
        job(&s, &f.customer, &f.property).await,
        job(&s, &f.customer, &f.property).await,
    );
    let mut visits = Vec::new();
    for (j, tech, hours) in [(&a_v2, &ana, 8), (&b_v2, &bob, 5)] {
        let w = hours_from_now(hours, hours + 1);
        let schedule = s
            .mutate(
                "job/v2/addAppointment",
                json!({ "jobId": j["id"], "windowStart": w.0, "windowEnd": w.1,
                        "leadTechnicianId": tech["id"] }),
            )
            .await;
        visits.push(schedule["appointments"][0].clone());
    }

    // Reads: her jobs, and nothing else.
    for j in [&a_v1, &a_v2] {
        s.call_as(&me, "job/v1/get", json!({ "jobId": j["id"] }))
            .await
            .ok();
        s.call_as(&me, "job/v1/timeline", json!({ "jobId": j["id"] }))
            .await
            .ok();
        s.call_as(&me, "job/v2/get", json!({ "jobId": j["id"] }))
            .await
            .ok();
    }
    for j in [&b_v1, &b_v2] {
        for procedure in [
            "job/v1/get",
            "job/v1/timeline",
            "job/v1/work",
            "job/v2/get",
            "job/v2/timeline",
        ] {
            s.call_as(&me, procedure, json!({ "jobId": j["id"] }))
                .await
                .assert_error(404, "NOT_FOUND");
        }
    }
    let ids = |page: &Value| -> Vec<Value> {
        let mut ids: Vec<Value> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].clone())
            .collect();
        ids.sort_by_key(|v| v.as_str().unwrap().to_owned());
        ids
    };
    let mut mine = vec![a_v1["id"].clone(), a_v2["id"].clone()];
    mine.sort_by_key(|v| v.as_str().unwrap().to_owned());
    let v1 = s.call_as(&me, "job/v1/list", json!({})).await.ok();
    assert_eq!(ids(&v1), mine);
    let v2 = s.call_as(&me, "job/v2/list", json!({})).await.ok();
    assert_eq!(ids(&v2), mine);
    // The owner still sees all four.
    let all = s.call("job/v1/list", json!({})).await.ok();
    assert_eq!(all["items"].as_array().unwrap().len(), 4);

    // Moves: hers go through; Bob's are not found and change nothing.
    s.call_as(
        &me,
        "job/v2/moveAppointment",
        json!({ "idempotencyKey": key(), "appointmentId": visits[0]["id"], "action": "dispatch" }),
    )
    .await
    .ok();
    s.call_as(
        &me,
        "job/v2/moveAppointment",
        json!({ "idempotencyKey": key(), "appointmentId": visits[1]["id"], "action": "dispatch" }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    s.call_as(
        &me,
        "job/v1/updateStatus",
        json!({ "idempotencyKey": key(), "jobId": a_v1["id"], "status": "dispatched" }),
    )
    .await
    .ok();
    s.call_as(
        &me,
        "job/v1/updateStatus",
        json!({ "idempotencyKey": key(), "jobId": b_v1["id"], "status": "dispatched" }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    s.call_as(
        &me,
        "job/v2/complete",
        json!({ "idempotencyKey": key(), "jobId": b_v2["id"] }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    let bob_job = s
        .call("job/v2/get", json!({ "jobId": b_v2["id"] }))
        .await
        .ok();
    assert_eq!(bob_job["appointments"][0]["status"], "scheduled");
    let bob_v1 = s
        .call("job/v1/get", json!({ "jobId": b_v1["id"] }))
        .await
        .ok();
    assert_eq!(bob_v1["status"], "scheduled");

    // Customers, estimates and invoices: only those of her jobs.
    let other = s
        .mutate("customer/v1/create", json!({ "name": "Other Customer" }))
        .await;
    let other_place = s
        .mutate(
            "customer/v1/addProperty",
            json!({ "customerId": other["id"], "address": { "line1": "9 Elm St", "city": "Chicago",
                    "region": "IL", "postalCode": "60601", "country": "US" } }),
        )
        .await;
    s.call_as(
        &me,
        "customer/v1/get",
        json!({ "customerId": f.customer["id"] }),
    )
    .await
    .ok();
    for procedure in ["customer/v1/get", "customer/v1/listProperties"] {
        s.call_as(&me, procedure, json!({ "customerId": other["id"] }))
            .await
            .assert_error(404, "NOT_FOUND");
    }
    let customers = s.call_as(&me, "customer/v1/list", json!({})).await.ok();
    assert_eq!(
        customers["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].clone())
            .collect::<Vec<_>>(),
        vec![f.customer["id"].clone()]
    );
    let lines = json!([{ "description": "Service call", "kind": "service", "unitPrice": "100.00", "quantity": "1" }]);
    let valid = (chrono::Utc::now() + chrono::Duration::days(14)).to_rfc3339();
    let theirs = s
        .mutate(
            "estimate/v1/generate",
            json!({ "customerId": other["id"], "propertyId": other_place["id"],
                    "options": [{ "name": "Only", "lines": lines }], "validUntil": valid }),
        )
        .await;
    let ours = s
        .mutate(
            "estimate/v1/generate",
            json!({ "jobId": a_v1["id"], "options": [{ "name": "Only", "lines": lines }], "validUntil": valid }),
        )
        .await;
    s.call_as(&me, "estimate/v1/get", json!({ "estimateId": ours["id"] }))
        .await
        .ok();
    s.call_as(
        &me,
        "estimate/v1/get",
        json!({ "estimateId": theirs["id"] }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    s.call_as(
        &me,
        "estimate/v1/send",
        json!({ "idempotencyKey": key(), "estimateId": theirs["id"] }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    let estimates = s.call_as(&me, "estimate/v1/list", json!({})).await.ok();
    assert_eq!(estimates["items"].as_array().unwrap().len(), 1);
    assert_eq!(estimates["items"][0]["id"], ours["id"]);
    // Bob's job, completed and invoiced by the office: not hers.
    s.move_job(&b_v1, &support::TO_COMPLETED).await;
    let invoice = s
        .mutate(
            "invoice/v1/create",
            json!({ "jobId": b_v1["id"], "from": { "from": "lines", "lines": lines } }),
        )
        .await;
    s.call_as(&me, "invoice/v1/get", json!({ "invoiceId": invoice["id"] }))
        .await
        .assert_error(404, "NOT_FOUND");
    let invoices = s.call_as(&me, "invoice/v1/list", json!({})).await.ok();
    assert!(
        invoices["items"].as_array().unwrap().is_empty(),
        "{invoices}"
    );
    let all = s.call("invoice/v1/list", json!({})).await.ok();
    assert_eq!(all["items"].as_array().unwrap().len(), 1);

    // Reassigned to Bob, the visit leaves her scope at once.
    s.mutate(
        "job/v2/assignTechnician",
        json!({ "appointmentId": visits[0]["id"], "technicianId": bob["id"], "role": "lead" }),
    )
    .await;
    s.call_as(&me, "job/v2/get", json!({ "jobId": a_v2["id"] }))
        .await
        .assert_error(404, "NOT_FOUND");
}

async fn an_unlinked_technician_sees_nothing_and_links_are_checked(s: TestServer) {
    let f = s.fixture().await;
    let (me, user) = technician_member(&s, "nobody@a.example").await;
    let j = job(&s, &f.customer, &f.property).await;
    s.call_as(&me, "job/v1/get", json!({ "jobId": j["id"] }))
        .await
        .assert_error(404, "NOT_FOUND");
    let list = s.call_as(&me, "job/v1/list", json!({})).await.ok();
    assert!(list["items"].as_array().unwrap().is_empty());
    // A technician may not link themselves.
    s.call_as(
        &me,
        "technician/v1/linkUser",
        json!({ "idempotencyKey": key(), "technicianId": f.tech["id"], "userId": user }),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    // A user who is not a member is not found; one user, one technician.
    s.call(
        "technician/v1/linkUser",
        json!({ "idempotencyKey": key(), "technicianId": f.tech["id"], "userId": uuid::Uuid::new_v4() }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    s.mutate(
        "technician/v1/linkUser",
        json!({ "technicianId": f.tech["id"], "userId": user }),
    )
    .await;
    let other = plumber(&s, "Other").await;
    s.call(
        "technician/v1/linkUser",
        json!({ "idempotencyKey": key(), "technicianId": other["id"], "userId": user }),
    )
    .await
    .assert_error(409, "USER_ALREADY_LINKED");
    // Another organization's technician is not found.
    let b = s.new_tenant("Other Org", "owner@other.example").await;
    s.call_as(
        &b,
        "technician/v1/linkUser",
        json!({ "idempotencyKey": key(), "technicianId": f.tech["id"], "userId": null }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    // Unlinked again, the technician sees nothing again.
    let unlinked = s
        .mutate(
            "technician/v1/linkUser",
            json!({ "technicianId": f.tech["id"], "userId": null }),
        )
        .await;
    assert_eq!(unlinked["userId"], Value::Null);
}

/// Tomorrow in Chicago (the test organizations' zone) at `h`:00, and the date.
fn tomorrow_at(h: u32) -> (chrono::NaiveDate, String) {
    let day = (chrono::Utc::now().with_timezone(&chrono_tz::America::Chicago)
        + chrono::Duration::days(1))
    .date_naive();
    let at = day
        .and_hms_opt(h, 0, 0)
        .unwrap()
        .and_local_timezone(chrono_tz::America::Chicago)
        .single()
        .unwrap()
        .with_timezone(&chrono::Utc)
        .to_rfc3339();
    (day, at)
}

async fn my_day_is_the_technicians_own_day_with_what_they_need_on_site(s: TestServer) {
    let f = s.fixture().await;
    let ana = f.tech.clone();
    let bob = plumber(&s, "Bob").await;
    let (me, _) = technician_member(&s, "ana@a.example").await;
    s.link(&me, &ana).await;
    let (day, nine) = tomorrow_at(9);
    let (_, eleven) = tomorrow_at(11);
    let j = job(&s, &f.customer, &f.property).await;
    s.mutate(
        "job/v2/addAppointment",
        json!({ "jobId": j["id"], "windowStart": nine, "windowEnd": eleven,
                "leadTechnicianId": ana["id"] }),
    )
    .await;
    let mine = s
        .call_as(&me, "technician/v1/myDay", json!({ "date": day }))
        .await
        .ok();
    assert_eq!(mine["technician"]["technicianId"], ana["id"]);
    let stops = mine["technician"]["days"][0]["stops"].as_array().unwrap();
    assert_eq!(stops.len(), 1, "{mine}");
    assert_eq!(stops[0]["jobId"], j["id"]);
    assert_eq!(mine["jobs"][0]["jobId"], j["id"]);
    assert_eq!(mine["jobs"][0]["customer"]["id"], f.customer["id"]);
    assert_eq!(mine["jobs"][0]["property"]["id"], f.property["id"]);
    // Another technician's day is not found for her; the office reads anyone's, by id.
    s.call_as(
        &me,
        "technician/v1/myDay",
        json!({ "date": day, "technicianId": bob["id"] }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    let bobs = s
        .call(
            "technician/v1/myDay",
            json!({ "date": day, "technicianId": bob["id"] }),
        )
        .await
        .ok();
    assert!(
        bobs["technician"]["days"][0]["stops"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let refused = s.call("technician/v1/myDay", json!({ "date": day })).await;
    refused.assert_error(404, "NOT_FOUND");
}

async fn field_moves_carry_the_devices_time_and_place_and_positions_are_kept(s: TestServer) {
    let f = s.fixture().await;
    let ana = f.tech.clone();
    let bob = plumber(&s, "Bob").await;
    let (me, _) = technician_member(&s, "ana@a.example").await;
    s.link(&me, &ana).await;
    let j = job(&s, &f.customer, &f.property).await;
    let w = hours_from_now(1, 2);
    let schedule = s
        .mutate(
            "job/v2/addAppointment",
            json!({ "jobId": j["id"], "windowStart": w.0, "windowEnd": w.1,
                    "leadTechnicianId": ana["id"] }),
        )
        .await;
    let visit = schedule["appointments"][0]["id"].clone();
    s.mutate(
        "job/v2/moveAppointment",
        json!({ "appointmentId": visit, "action": "dispatch" }),
    )
    .await;

    // Offline: she starts travelling and arrives; the moves reach the server later, each with
    // the device's time and place.
    let now = chrono::Utc::now();
    let (left, arrived) = (
        (now - chrono::Duration::minutes(50)).to_rfc3339(),
        (now - chrono::Duration::minutes(20)).to_rfc3339(),
    );
    for (action, at, lat) in [("start_travel", &left, 41.80), ("arrive", &arrived, 41.88)] {
        s.call_as(
            &me,
            "job/v2/moveAppointment",
            json!({ "idempotencyKey": key(), "appointmentId": visit, "action": action,
                    "device": { "deviceTime": at,
                                "location": { "lat": lat, "lon": -87.63, "accuracyM": 9.5 } } }),
        )
        .await
        .ok();
    }
    // A clock far ahead of the server's is kept and flagged, never refused.
    let ahead = (now + chrono::Duration::hours(3)).to_rfc3339();
    s.call_as(
        &me,
        "job/v2/moveAppointment",
        json!({ "idempotencyKey": key(), "appointmentId": visit, "action": "finish",
                "device": { "deviceTime": ahead } }),
    )
    .await
    .ok();
    let timeline = s
        .call_as(&me, "job/v2/timeline", json!({ "jobId": j["id"] }))
        .await
        .ok();
    let moves: Vec<&Value> = timeline["scheduleEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["deviceTime"].is_string())
        .collect();
    assert_eq!(moves.len(), 3, "{timeline}");
    let time = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    assert_eq!(time(&moves[0]["deviceTime"]), time(&json!(left)));
    assert!(time(&moves[0]["at"]) > time(&moves[0]["deviceTime"]));
    assert_eq!(moves[1]["location"]["lat"], 41.88);
    assert_eq!(moves[1]["location"]["accuracyM"], 9.5);
    assert!(moves[2]["location"].is_null());
    assert_eq!(moves[2]["data"]["deviceClockAhead"], true);
    assert!(moves[0]["data"].get("deviceClockAhead").is_none());

    // A bad fix names its field; nothing is recorded.
    let bad = s
        .call_as(
            &me,
            "job/v2/moveAppointment",
            json!({ "idempotencyKey": key(), "appointmentId": visit, "action": "finish",
                    "device": { "deviceTime": arrived, "location": { "lat": 95, "lon": 0 } } }),
        )
        .await;
    bad.assert_error(400, "VALIDATION_FAILED");
    assert_eq!(bad.json["field_errors"][0]["field"], "device.location.lat");

    // The moves' places are breadcrumbs; a report adds one and moves the last known position;
    // a late report (older by the device's clock) is a breadcrumb but does not move it back.
    let report = |lat: f64, at: chrono::DateTime<chrono::Utc>| {
        json!({ "idempotencyKey": key(), "technicianId": ana["id"], "deviceTime": at.to_rfc3339(),
                "location": { "lat": lat, "lon": -87.6 } })
    };
    let reported = s
        .call_as(&me, "technician/v1/reportLocation", report(41.9, now))
        .await
        .ok();
    assert_eq!(reported["kept"], true);
    assert_eq!(reported["lastPosition"]["location"]["lat"], 41.9);
    let late = s
        .call_as(
            &me,
            "technician/v1/reportLocation",
            report(41.7, now - chrono::Duration::minutes(30)),
        )
        .await
        .ok();
    assert_eq!(late["lastPosition"]["location"]["lat"], 41.9);
    let mine = s
        .call_as(&me, "technician/v1/positions", json!({}))
        .await
        .ok();
    assert_eq!(mine["lastPosition"]["location"]["lat"], 41.9);
    let lats: Vec<f64> = mine["breadcrumbs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["location"]["lat"].as_f64().unwrap())
        .collect();
    // The day's breadcrumbs are those of today in the organization's zone: a move made before
    // local midnight (the test running just after it) belongs to yesterday.
    let local_day = |at: chrono::DateTime<chrono::Utc>| {
        at.with_timezone(&chrono_tz::America::Chicago).date_naive()
    };
    let expected: Vec<f64> = [
        (41.8, now - chrono::Duration::minutes(50)),
        (41.7, now - chrono::Duration::minutes(30)),
        (41.88, now - chrono::Duration::minutes(20)),
        (41.9, now),
    ]
    .into_iter()
    .filter(|(_, at)| local_day(*at) == local_day(now))
    .map(|(lat, _)| lat)
    .collect();
    assert_eq!(lats, expected, "{mine}");
    // The office sees it by naming her; she cannot report or read Bob's; another organization
    // cannot read hers.
    let office = s
        .call(
            "technician/v1/positions",
            json!({ "technicianId": ana["id"] }),
        )
        .await
        .ok();
    assert_eq!(office["lastPosition"], mine["lastPosition"]);
    let mut as_bob = report(41.9, now);
    as_bob["technicianId"] = bob["id"].clone();
    s.call_as(&me, "technician/v1/reportLocation", as_bob)
        .await
        .assert_error(404, "NOT_FOUND");
    s.call_as(
        &me,
        "technician/v1/positions",
        json!({ "technicianId": bob["id"] }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    let b = s.new_tenant("Org B", "owner-b@example.com").await;
    s.call_as(
        &b,
        "technician/v1/positions",
        json!({ "technicianId": ana["id"] }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    s.call_as(&b, "technician/v1/reportLocation", report(1.0, now))
        .await
        .assert_error(404, "NOT_FOUND");
}

async fn notes_are_appended_once_and_scoped_like_their_job(s: TestServer) {
    let f = s.fixture().await;
    let ana = f.tech.clone();
    let bob = plumber(&s, "Bob").await;
    let (me, user) = technician_member(&s, "ana@a.example").await;
    s.link(&me, &ana).await;
    let mut visits = Vec::new();
    let mut jobs = Vec::new();
    for tech in [&ana, &bob] {
        let j = job(&s, &f.customer, &f.property).await;
        let w = hours_from_now(1, 2);
        let schedule = s
            .mutate(
                "job/v2/addAppointment",
                json!({ "jobId": j["id"], "windowStart": w.0, "windowEnd": w.1,
                        "leadTechnicianId": tech["id"] }),
            )
            .await;
        visits.push(schedule["appointments"][0]["id"].clone());
        jobs.push(j);
    }
    let written = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let body = json!({ "idempotencyKey": key(), "jobId": jobs[0]["id"], "appointmentId": visits[0],
                       "body": "Gate code 4412; dog in the yard",
                       "device": { "deviceTime": written } });
    let note = s.call_as(&me, "job/v2/addNote", body.clone()).await.ok();
    // A replayed request (a batch sent again after a lost answer) adds nothing.
    let again = s.call_as(&me, "job/v2/addNote", body).await.ok();
    assert_eq!(note, again);
    assert_eq!(note["authorUserId"], user);
    s.mutate(
        "job/v2/addNote",
        json!({ "jobId": jobs[0]["id"], "body": "Customer called: running late is fine" }),
    )
    .await;
    let notes = s
        .call_as(&me, "job/v2/notes", json!({ "jobId": jobs[0]["id"] }))
        .await
        .ok();
    let notes = notes["notes"].as_array().unwrap().clone();
    assert_eq!(notes.len(), 2);
    assert_eq!(notes[0]["id"], note["id"]);
    assert!(notes[0]["deviceTime"].is_string());
    assert!(notes[1]["deviceTime"].is_null());

    // Bob's job, a visit of another job, and another organization's job are not found.
    s.call_as(
        &me,
        "job/v2/addNote",
        json!({ "idempotencyKey": key(), "jobId": jobs[1]["id"], "body": "x" }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    s.call_as(&me, "job/v2/notes", json!({ "jobId": jobs[1]["id"] }))
        .await
        .assert_error(404, "NOT_FOUND");
    s.call(
        "job/v2/addNote",
        json!({ "idempotencyKey": key(), "jobId": jobs[0]["id"], "appointmentId": visits[1],
                "body": "x" }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    let b = s.new_tenant("Org B", "owner-b@example.com").await;
    s.call_as(&b, "job/v2/notes", json!({ "jobId": jobs[0]["id"] }))
        .await
        .assert_error(404, "NOT_FOUND");
    let blank = s
        .call_as(
            &me,
            "job/v2/addNote",
            json!({ "idempotencyKey": key(), "jobId": jobs[0]["id"], "body": "  " }),
        )
        .await;
    blank.assert_error(400, "VALIDATION_FAILED");
    assert_eq!(blank.json["field_errors"][0]["field"], "body");
}
