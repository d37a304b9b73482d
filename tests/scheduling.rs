//! Scheduling over HTTP, on SQLite and on PostgreSQL: jobs with several visits and crews
//! (`job/v2`), SLA refusal and override, the dispatch board and booking slots.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Value, json};

use hestami::core::org::Role;
use support::{Fixture, Reply, Tenant, TestServer, key};

both!(
    two_visits_and_a_crew_from_creation_to_completed,
    a_helper_without_the_certification_is_refused_with_every_reason,
    v1_moves_on_a_v2_job_are_refused_and_a_v1_booking_becomes_the_first_visit,
    the_sla_refuses_a_late_first_visit_unless_a_dispatcher_overrides_it,
    every_suggested_slot_can_be_booked,
    the_board_shows_every_technicians_day_with_legs_and_flags,
    lists_sort_by_sla_and_filter_unassigned_and_breached,
    another_organization_and_bad_input_on_v2,
    concurrent_bookings_of_one_technician_never_overlap,
    concurrent_v1_assignments_of_one_technician_never_overlap,
    a_converted_booking_counts_once_and_a_crew_on_site_blocks_cancelling,
    waiting_v1_visits_each_show_in_the_queue_and_slots_respect_the_jobs_visits,
    two_first_settings_updates_at_once_do_not_lose_one,
    planned_starts_let_overlapping_windows_share_a_technician,
);

/// A plumber of organization A who works around the clock from `home`.
async fn plumber(s: &TestServer, name: &str, home: Option<(f64, f64)>) -> Value {
    let tech = s
        .mutate(
            "technician/v1/create",
            json!({ "name": name, "trades": ["plumbing"] }),
        )
        .await;
    if let Some((lat, lon)) = home {
        s.mutate(
            "technician/v1/setHomeBase",
            json!({ "technicianId": tech["id"], "homeBase": { "lat": lat, "lon": lon } }),
        )
        .await;
    }
    s.around_the_clock(&tech).await
}

/// A property of the fixture customer at `(lat, lon)` in 60601.
async fn property_at(s: &TestServer, f: &Fixture, lat: f64, lon: f64) -> Value {
    s.mutate(
        "customer/v1/addProperty",
        json!({ "customerId": f.customer["id"], "address": { "line1": "2 Lake St", "city": "Chicago",
                "region": "IL", "postalCode": "60601", "country": "US" },
                "location": { "lat": lat, "lon": lon } }),
    )
    .await
}

async fn routine_job(s: &TestServer, f: &Fixture, property: &Value, extra: Value) -> Value {
    let mut body = json!({ "customerId": f.customer["id"], "propertyId": property["id"],
                           "trade": "plumbing", "priority": "routine", "summary": "Replace the water heater" });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    s.mutate("job/v1/create", body).await
}

fn hours_from_now(a: i64, b: i64) -> (String, String) {
    let now = chrono::Utc::now();
    (
        (now + chrono::Duration::hours(a)).to_rfc3339(),
        (now + chrono::Duration::hours(b)).to_rfc3339(),
    )
}

async fn add_visit(s: &TestServer, job: &Value, window: (String, String), crew: Value) -> Reply {
    let mut body = json!({ "idempotencyKey": key(), "jobId": job["id"],
                           "windowStart": window.0, "windowEnd": window.1 });
    if let (Some(b), Some(e)) = (body.as_object_mut(), crew.as_object()) {
        b.extend(e.clone());
    }
    s.call("job/v2/addAppointment", body).await
}

async fn field_move(s: &TestServer, appointment: &Value, action: &str) -> Value {
    s.mutate(
        "job/v2/moveAppointment",
        json!({ "appointmentId": appointment["id"], "action": action }),
    )
    .await
}

async fn two_visits_and_a_crew_from_creation_to_completed(s: TestServer) {
    let f = s.fixture().await;
    let helper = plumber(&s, "Helper Hal", None).await;
    let job = routine_job(&s, &f, &f.property, json!({})).await;
    let first = add_visit(
        &s,
        &job,
        hours_from_now(2, 4),
        json!({ "leadTechnicianId": f.tech["id"], "helperIds": [helper["id"]], "estimatedMinutes": 90 }),
    )
    .await
    .ok();
    assert_eq!(first["job"]["status"], "scheduled");
    let visit = &first["appointments"][0];
    assert_eq!(
        (
            &visit["leadTechnicianId"],
            &visit["helperIds"],
            &visit["estimatedMinutes"]
        ),
        (&f.tech["id"], &json!([helper["id"]]), &json!(90))
    );
    assert_eq!(first["job"]["technicianId"], f.tech["id"]);

    // The field moves: the job follows its visit.
    let mut after = Value::Null;
    for (action, job_status) in [
        ("dispatch", "dispatched"),
        ("start_travel", "en_route"),
        ("arrive", "on_site"),
        ("finish", "in_progress"),
    ] {
        after = field_move(&s, visit, action).await;
        assert_eq!(after["job"]["status"], job_status, "after {action}");
    }
    assert_eq!(after["appointments"][0]["status"], "done");
    assert!(after["job"]["visitStartedAt"].is_string());

    // Return for parts: a second visit, lead only; the job stays in progress until it sets off.
    let second = add_visit(
        &s,
        &job,
        hours_from_now(26, 28),
        json!({ "leadTechnicianId": f.tech["id"] }),
    )
    .await
    .ok();
    assert_eq!(second["job"]["status"], "in_progress");
    let visit2 = second["appointments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["status"] == "scheduled")
        .unwrap()
        .clone();
    s.call(
        "job/v2/complete",
        json!({ "idempotencyKey": key(), "jobId": job["id"] }),
    )
    .await
    .assert_error(409, "JOB_APPOINTMENTS_OPEN");
    field_move(&s, &visit2, "dispatch").await;
    assert_eq!(
        field_move(&s, &visit2, "start_travel").await["job"]["status"],
        "en_route"
    );
    field_move(&s, &visit2, "arrive").await;
    assert_eq!(
        field_move(&s, &visit2, "finish").await["job"]["status"],
        "in_progress"
    );
    let done = s
        .mutate("job/v2/complete", json!({ "jobId": job["id"] }))
        .await;
    assert_eq!(done["job"]["status"], "completed");
    // v1 readers see the same job, and invoicing goes on as before.
    let v1 = s
        .call("job/v1/get", json!({ "jobId": job["id"] }))
        .await
        .ok();
    assert_eq!(v1["status"], "completed");
    assert_eq!(v1["allowedNext"], json!(["invoiced"]));
    let history = s
        .call("job/v2/timeline", json!({ "jobId": job["id"] }))
        .await
        .ok();
    let kinds: Vec<&str> = history["scheduleEvents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "appointment_added").count(),
        2
    );
    assert!(kinds.contains(&"job_followed"), "{kinds:?}");
    let last_job_event = history["jobEvents"].as_array().unwrap().last().unwrap();
    assert_eq!(last_job_event["action"], "complete");
}

async fn a_helper_without_the_certification_is_refused_with_every_reason(s: TestServer) {
    let f = s.fixture().await;
    let job = routine_job(
        &s,
        &f,
        &f.property,
        json!({ "requiredCertifications": ["Backflow Tester"] }),
    )
    .await;
    let expires = (chrono::Utc::now() + chrono::Duration::days(300)).date_naive();
    s.mutate(
        "technician/v1/addCertification",
        json!({ "technicianId": f.tech["id"], "name": "Backflow Tester", "issuer": "State Board",
                "expiresOn": expires }),
    )
    .await;
    // A helper with no certification and no shifts.
    let helper = s
        .mutate(
            "technician/v1/create",
            json!({ "name": "New Nat", "trades": ["plumbing"] }),
        )
        .await;
    let refused = add_visit(
        &s,
        &job,
        hours_from_now(2, 4),
        json!({ "leadTechnicianId": f.tech["id"], "helperIds": [helper["id"]] }),
    )
    .await;
    refused.assert_error(422, "TECHNICIAN_INELIGIBLE");
    let details = &refused.json["error"]["details"];
    let members = details["technicians"].as_array().unwrap();
    assert_eq!(members.len(), 1, "only the helper fails: {details}");
    assert_eq!(
        (&members[0]["technicianId"], &members[0]["role"]),
        (&helper["id"], &json!("helper"))
    );
    let codes: Vec<&str> = members[0]["failedRules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["CERTIFICATION_MISSING", "OUTSIDE_SHIFT"]);
    // Nothing was written.
    let seen = s
        .call("job/v2/get", json!({ "jobId": job["id"] }))
        .await
        .ok();
    assert_eq!(seen["appointments"], json!([]));
    assert_eq!(seen["job"]["status"], "requested");
    assert_eq!(seen["job"]["version"], 1);

    // The same helper added later to a booked visit is refused the same way, per visit.
    let booked = add_visit(
        &s,
        &job,
        hours_from_now(2, 4),
        json!({ "leadTechnicianId": f.tech["id"] }),
    )
    .await
    .ok();
    let appointment = &booked["appointments"][0];
    let again = s
        .call(
            "job/v2/assignTechnician",
            json!({ "idempotencyKey": key(), "appointmentId": appointment["id"],
                    "technicianId": helper["id"], "role": "helper" }),
        )
        .await;
    again.assert_error(422, "TECHNICIAN_INELIGIBLE");
    // Overlap across appointments: the lead cannot be on two visits at once.
    let other = routine_job(&s, &f, &f.property, json!({})).await;
    let clash = add_visit(
        &s,
        &other,
        hours_from_now(3, 5),
        json!({ "leadTechnicianId": f.tech["id"] }),
    )
    .await;
    clash.assert_error(422, "TECHNICIAN_INELIGIBLE");
    assert!(clash.json.to_string().contains("APPOINTMENT_OVERLAP"));
}

async fn v1_moves_on_a_v2_job_are_refused_and_a_v1_booking_becomes_the_first_visit(s: TestServer) {
    let f = s.fixture().await;
    // A v1 job, scheduled and assigned through v1.
    let job = s.job(&f).await;
    let (start, end) = TestServer::window();
    s.mutate(
        "job/v1/schedule",
        json!({ "jobId": job["id"], "windowStart": start, "windowEnd": end }),
    )
    .await;
    s.mutate(
        "dispatch/v1/assignTech",
        json!({ "jobId": job["id"], "technicianId": f.tech["id"] }),
    )
    .await;
    // A second visit through v2: the v1 booking becomes the first appointment.
    let both = add_visit(
        &s,
        &job,
        hours_from_now(50, 52),
        json!({ "leadTechnicianId": f.tech["id"] }),
    )
    .await
    .ok();
    let visits = both["appointments"].as_array().unwrap();
    assert_eq!(visits.len(), 2);
    assert_eq!(visits[0]["leadTechnicianId"], f.tech["id"]);
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(visits[0]["window"]["start"].as_str().unwrap())
            .unwrap()
            .timestamp_micros(),
        chrono::DateTime::parse_from_rfc3339(&start)
            .unwrap()
            .timestamp_micros()
    );
    // The moves appointments own are refused through v1 …
    s.call(
        "job/v1/schedule",
        json!({ "idempotencyKey": key(), "jobId": job["id"], "windowStart": start, "windowEnd": end }),
    )
    .await
    .assert_error(409, "JOB_USES_APPOINTMENTS");
    s.call(
        "job/v1/updateStatus",
        json!({ "idempotencyKey": key(), "jobId": job["id"], "status": "dispatched" }),
    )
    .await
    .assert_error(409, "JOB_USES_APPOINTMENTS");
    s.call(
        "dispatch/v1/assignTech",
        json!({ "idempotencyKey": key(), "jobId": job["id"], "technicianId": f.tech["id"] }),
    )
    .await
    .assert_error(409, "JOB_USES_APPOINTMENTS");
    // … and cancelling through v1 cancels every open visit.
    let cancelled = s
        .mutate(
            "job/v1/updateStatus",
            json!({ "jobId": job["id"], "status": "cancelled", "reason": "customer moved" }),
        )
        .await;
    assert_eq!(cancelled["status"], "cancelled");
    let seen = s
        .call("job/v2/get", json!({ "jobId": job["id"] }))
        .await
        .ok();
    assert!(
        seen["appointments"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["status"] == "cancelled"),
        "{seen}"
    );
    // v2 completion of a v1 job is refused.
    let plain = s.job(&f).await;
    s.call(
        "job/v2/complete",
        json!({ "idempotencyKey": key(), "jobId": plain["id"] }),
    )
    .await
    .assert_error(409, "JOB_HAS_NO_APPOINTMENTS");
}

fn as_member(s: &TestServer, token: String) -> Tenant {
    Tenant {
        org: s.a.org.clone(),
        token,
        user: String::new(),
    }
}

async fn the_sla_refuses_a_late_first_visit_unless_a_dispatcher_overrides_it(s: TestServer) {
    let f = s.fixture().await;
    let job = s
        .mutate(
            "job/v1/create",
            json!({ "customerId": f.customer["id"], "propertyId": f.property["id"], "trade": "plumbing",
                    "priority": "emergency", "summary": "Burst pipe" }),
        )
        .await;
    let deadline = job["slaDeadline"].as_str().unwrap().to_owned();
    let late = hours_from_now(30, 32);
    let refused = add_visit(
        &s,
        &job,
        late.clone(),
        json!({ "leadTechnicianId": f.tech["id"] }),
    )
    .await;
    refused.assert_error(422, "SLA_WINDOW_EXCEEDED");
    let details = &refused.json["error"]["details"];
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(details["slaDeadline"].as_str().unwrap()).unwrap(),
        chrono::DateTime::parse_from_rfc3339(&deadline).unwrap()
    );
    // The earliest compliant slot, if one is offered, opens by the deadline.
    if let Some(slot) = details["earliestSlot"].as_object() {
        let opens = slot["window"]["start"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(opens).unwrap()
                <= chrono::DateTime::parse_from_rfc3339(&deadline).unwrap()
        );
    }

    // An office member may not override; a dispatcher may, with a reason.
    let office = as_member(&s, s.member(&s.a, "office@example.com", Role::Office).await);
    let override_body = |reason: &str| {
        json!({ "idempotencyKey": key(), "jobId": job["id"], "windowStart": late.0, "windowEnd": late.1,
                "leadTechnicianId": f.tech["id"], "slaOverrideReason": reason })
    };
    s.call_as(
        &office,
        "job/v2/addAppointment",
        override_body("customer asked for tomorrow"),
    )
    .await
    .assert_error(403, "SLA_OVERRIDE_NOT_PERMITTED");
    let dispatcher = as_member(
        &s,
        s.member(&s.a, "dispatch@example.com", Role::Dispatcher)
            .await,
    );
    let booked = s
        .call_as(
            &dispatcher,
            "job/v2/addAppointment",
            override_body("customer asked for tomorrow"),
        )
        .await
        .ok();
    assert_eq!(booked["job"]["status"], "scheduled");
    let history = s
        .call("job/v2/timeline", json!({ "jobId": job["id"] }))
        .await
        .ok();
    let overridden: Vec<&Value> = history["scheduleEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "sla_overridden")
        .collect();
    assert_eq!(overridden.len(), 1);
    assert_eq!(overridden[0]["reason"], "customer asked for tomorrow");
    // A return visit is not held to the SLA: none is needed once a visit is on the books …
    // (a second visit while the first is open is not a first visit either).
    add_visit(
        &s,
        &job,
        hours_from_now(60, 62),
        json!({ "leadTechnicianId": f.tech["id"] }),
    )
    .await
    .ok();
}

async fn every_suggested_slot_can_be_booked(s: TestServer) {
    let f = s.fixture().await;
    let near = plumber(&s, "Near Nia", Some((41.885, -87.625))).await;
    let _far = plumber(&s, "Far Fay", Some((41.95, -87.75))).await;
    // An electrician, who never fits a plumbing job.
    let sparky = s
        .mutate(
            "technician/v1/create",
            json!({ "name": "Sparky", "trades": ["electrical"] }),
        )
        .await;
    s.around_the_clock(&sparky).await;
    let property = property_at(&s, &f, 41.8827, -87.6233).await;
    // Near Nia already has a visit tomorrow 08–10 local.
    let busy = routine_job(&s, &f, &property, json!({})).await;
    let tomorrow = tomorrow();
    add_visit(
        &s,
        &busy,
        (tomorrow_at(8), tomorrow_at(10)),
        json!({ "leadTechnicianId": near["id"] }),
    )
    .await
    .ok();

    let job = routine_job(&s, &f, &property, json!({})).await;
    let offered = s
        .call(
            "dispatch/v1/suggestSlots",
            json!({ "jobId": job["id"], "fromDate": tomorrow, "lookaheadDays": 2, "count": 20 }),
        )
        .await
        .ok();
    let options = offered["options"].as_array().unwrap();
    assert_eq!(options.len(), 20, "{offered}");
    // Nia is not offered 08–10 tomorrow; the electrician is left out, saying why.
    assert!(!options.iter().any(|o| o["technicianId"] == near["id"]
        && chrono::DateTime::parse_from_rfc3339(o["window"]["start"].as_str().unwrap()).unwrap()
            == chrono::DateTime::parse_from_rfc3339(&tomorrow_at(8)).unwrap()));
    let left_out = offered["leftOut"].as_array().unwrap();
    assert_eq!(left_out.len(), 1, "{offered}");
    assert_eq!(left_out[0]["technicianId"], sparky["id"]);
    assert_eq!(
        left_out[0]["failedRules"],
        json!([{ "code": "TRADE_MISSING", "windows": 8 }])
    );
    // Every option, booked on its own (and called off again, leaving the state as it was):
    // accepted.
    for option in options {
        let mut crew = json!({ "leadTechnicianId": option["technicianId"] });
        if option["withinSla"] == false {
            crew["slaOverrideReason"] = json!("booked from suggestSlots");
        }
        let booked = add_visit(
            &s,
            &job,
            (
                option["window"]["start"].as_str().unwrap().to_owned(),
                option["window"]["end"].as_str().unwrap().to_owned(),
            ),
            crew,
        )
        .await
        .ok();
        let visit = booked["appointments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["status"] == "scheduled")
            .unwrap()
            .clone();
        s.mutate(
            "job/v2/cancelAppointment",
            json!({ "appointmentId": visit["id"], "reason": "checking the slot" }),
        )
        .await;
    }
    // A draft (no job yet) gets options too.
    let draft = s
        .call(
            "dispatch/v1/suggestSlots",
            json!({ "draft": { "customerId": f.customer["id"], "propertyId": property["id"],
                               "trade": "plumbing", "priority": "routine" }, "fromDate": tomorrow }),
        )
        .await
        .ok();
    assert_eq!(draft["options"].as_array().unwrap().len(), 5);
    s.call("dispatch/v1/suggestSlots", json!({}))
        .await
        .assert_error(400, "VALIDATION_FAILED");
}

async fn the_board_shows_every_technicians_day_with_legs_and_flags(s: TestServer) {
    let f = s.fixture().await;
    let day = (chrono::Utc::now().with_timezone(&chrono_tz::America::Chicago)).date_naive();
    let local = |minute: i64| {
        (day.and_hms_opt(0, 0, 0).unwrap() + chrono::Duration::minutes(minute))
            .and_local_timezone(chrono_tz::America::Chicago)
            .single()
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    s.mutate(
        "technician/v1/setHomeBase",
        json!({ "technicianId": f.tech["id"], "homeBase": { "lat": 41.79, "lon": -87.70 } }),
    )
    .await;
    let mut techs = vec![f.tech.clone()];
    for k in 0..19 {
        techs.push(
            plumber(
                &s,
                &format!("Tech {k:02}"),
                Some((41.80 + 0.01 * k as f64, -87.70)),
            )
            .await,
        );
    }
    let mut properties = Vec::new();
    for k in 0..6 {
        properties.push(property_at(&s, &f, 41.85 + 0.01 * k as f64, -87.65).await);
    }
    // 20 technicians × 6 one-hour visits, 02:00–14:00 local today, every other hour; then 30
    // visits without a crew and 30 requested jobs.
    let mut count = 0;
    for (t, tech) in techs.iter().enumerate() {
        for v in 0..6 {
            let job = routine_job(&s, &f, &properties[(t + v) % 6], json!({})).await;
            let start = local(120 + 120 * v as i64);
            add_visit(
                &s,
                &job,
                (
                    start.to_rfc3339(),
                    (start + chrono::Duration::hours(1)).to_rfc3339(),
                ),
                json!({ "leadTechnicianId": tech["id"], "estimatedMinutes": 45 }),
            )
            .await
            .ok();
            count += 1;
        }
    }
    for k in 0..30 {
        let job = routine_job(&s, &f, &properties[k % 6], json!({})).await;
        let start = local(900 + 10 * k as i64);
        add_visit(
            &s,
            &job,
            (
                start.to_rfc3339(),
                (start + chrono::Duration::hours(2)).to_rfc3339(),
            ),
            json!({}),
        )
        .await
        .ok();
        count += 1;
    }
    assert_eq!(count, 150);
    for _ in 0..30 {
        routine_job(&s, &f, &properties[0], json!({})).await;
    }

    let mut rows = Vec::new();
    let mut cursor = Value::Null;
    let mut first_page = Value::Null;
    loop {
        let mut body = json!({ "date": day, "limit": 7 });
        if !cursor.is_null() {
            body["cursor"] = cursor.clone();
        }
        let page = s.call("dispatch/v1/board", body).await.ok();
        if first_page.is_null() {
            first_page = page.clone();
        }
        rows.extend(page["technicians"].as_array().unwrap().iter().cloned());
        cursor = page["nextCursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert_eq!(
        rows.len(),
        20,
        "every active technician, once, across pages"
    );
    let now = chrono::Utc::now();
    for row in &rows {
        let stops = row["days"][0]["stops"].as_array().unwrap();
        assert_eq!(stops.len(), 6, "{row}");
        assert_eq!(row["days"][0]["load"]["visits"], 6);
        assert_eq!(row["days"][0]["load"]["bookedMinutes"], 270);
        let starts: Vec<chrono::DateTime<chrono::Utc>> = stops
            .iter()
            .map(|s| s["window"]["start"].as_str().unwrap().parse().unwrap())
            .collect();
        assert!(starts.windows(2).all(|w| w[0] < w[1]), "in order");
        assert_eq!(stops[0]["leg"]["from"], "home_base");
        assert!(
            stops[1..]
                .iter()
                .all(|s| s["leg"]["from"] == "previous_stop"),
            "{row}"
        );
        for stop in stops {
            let end: chrono::DateTime<chrono::Utc> =
                stop["window"]["end"].as_str().unwrap().parse().unwrap();
            assert_eq!(
                stop["flags"]["late"],
                json!(end <= now),
                "late exactly when the window has passed: {stop}"
            );
            assert_eq!(stop["flags"]["slaBreached"], false);
        }
    }
    let unassigned = &first_page["unassigned"];
    assert_eq!(unassigned["appointments"].as_array().unwrap().len(), 30);
    assert_eq!(unassigned["jobs"].as_array().unwrap().len(), 30);
    let deadlines: Vec<&str> = unassigned["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["slaDeadline"].as_str().unwrap())
        .collect();
    assert!(
        deadlines.windows(2).all(|w| w[0] <= w[1]),
        "most urgent first"
    );

    // Filters: one technician; a state no visit is in.
    let one = s
        .call(
            "dispatch/v1/board",
            json!({ "date": day, "technicianIds": [techs[3]["id"]] }),
        )
        .await
        .ok();
    assert_eq!(one["technicians"].as_array().unwrap().len(), 1);
    let none = s
        .call(
            "dispatch/v1/board",
            json!({ "date": day, "statuses": ["en_route"] }),
        )
        .await
        .ok();
    assert!(
        none["technicians"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["days"][0]["stops"] == json!([]))
    );
    s.call("dispatch/v1/board", json!({ "date": day, "days": 8 }))
        .await
        .assert_error(400, "VALIDATION_FAILED");

    // At risk: tomorrow, a four-hour visit in a 10–11 window leaves the 12–13 one unreachable.
    let tomorrow = day + chrono::Duration::days(1);
    let busy = plumber(&s, "Overbooked Olga", Some((41.86, -87.65))).await;
    for (from, to, minutes) in [(10, 11, 240), (12, 13, 30)] {
        let job = routine_job(&s, &f, &properties[0], json!({})).await;
        add_visit(
            &s,
            &job,
            (tomorrow_at(from), tomorrow_at(to)),
            json!({ "leadTechnicianId": busy["id"], "estimatedMinutes": minutes }),
        )
        .await
        .ok();
    }
    let olga = s
        .call(
            "dispatch/v1/board",
            json!({ "date": tomorrow, "technicianIds": [busy["id"]] }),
        )
        .await
        .ok();
    let stops = olga["technicians"][0]["days"][0]["stops"]
        .as_array()
        .unwrap();
    assert_eq!(
        stops
            .iter()
            .map(|s| s["flags"]["atRisk"].clone())
            .collect::<Vec<_>>(),
        [json!(false), json!(true)],
        "{olga}"
    );
    assert!(
        stops[1]["projectedArrival"].as_str().unwrap()
            > stops[1]["window"]["end"].as_str().unwrap()
    );
}

async fn lists_sort_by_sla_and_filter_unassigned_and_breached(s: TestServer) {
    let f = s.fixture().await;
    let routine = routine_job(&s, &f, &f.property, json!({})).await;
    let emergency = s
        .mutate(
            "job/v1/create",
            json!({ "customerId": f.customer["id"], "propertyId": f.property["id"], "trade": "plumbing",
                    "priority": "emergency", "summary": "Gas smell" }),
        )
        .await;
    let booked = routine_job(&s, &f, &f.property, json!({})).await;
    add_visit(
        &s,
        &booked,
        hours_from_now(1, 2),
        json!({ "leadTechnicianId": f.tech["id"] }),
    )
    .await
    .ok();
    let ids = |page: &Value| -> Vec<Value> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].clone())
            .collect()
    };
    let by_sla = s
        .call("job/v2/list", json!({ "sort": "sla_deadline" }))
        .await
        .ok();
    assert_eq!(ids(&by_sla)[0], emergency["id"]);
    // Paging through the sorted list sees every job once.
    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let mut body = json!({ "sort": "sla_deadline", "limit": 1 });
        if !cursor.is_null() {
            body["cursor"] = cursor.clone();
        }
        let page = s.call("job/v2/list", body).await.ok();
        seen.extend(ids(&page));
        cursor = page["nextCursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert_eq!(seen, ids(&by_sla));
    let unassigned = s
        .call(
            "job/v2/list",
            json!({ "unassignedOnly": true, "statuses": ["requested", "scheduled"] }),
        )
        .await
        .ok();
    let unassigned = ids(&unassigned);
    assert!(unassigned.contains(&routine["id"]) && !unassigned.contains(&booked["id"]));
    let by_window = s
        .call("job/v2/list", json!({ "sort": "window_start" }))
        .await
        .ok();
    assert_eq!(ids(&by_window), [booked["id"].clone()]);
    let breached = s
        .call("job/v2/list", json!({ "breachedOnly": true }))
        .await
        .ok();
    assert_eq!(ids(&breached), Vec::<Value>::new(), "nothing is late yet");
}

async fn another_organization_and_bad_input_on_v2(s: TestServer) {
    let f = s.fixture().await;
    let job = routine_job(&s, &f, &f.property, json!({})).await;
    let booked = add_visit(
        &s,
        &job,
        hours_from_now(2, 3),
        json!({ "leadTechnicianId": f.tech["id"] }),
    )
    .await
    .ok();
    let appointment = booked["appointments"][0].clone();
    let b = s.new_tenant("Org B", "owner-b@example.com").await;
    for (procedure, body) in [
        ("job/v2/get", json!({ "jobId": job["id"] })),
        ("job/v2/timeline", json!({ "jobId": job["id"] })),
        (
            "job/v2/moveAppointment",
            json!({ "idempotencyKey": key(), "appointmentId": appointment["id"], "action": "dispatch" }),
        ),
        (
            "job/v2/cancelAppointment",
            json!({ "idempotencyKey": key(), "appointmentId": appointment["id"], "reason": "mine now" }),
        ),
        (
            "job/v2/addAppointment",
            json!({ "idempotencyKey": key(), "jobId": job["id"], "windowStart": hours_from_now(5, 6).0,
                    "windowEnd": hours_from_now(5, 6).1 }),
        ),
        ("dispatch/v1/suggestSlots", json!({ "jobId": job["id"] })),
    ] {
        s.call_as(&b, procedure, body)
            .await
            .assert_error(404, "NOT_FOUND");
    }
    // Organization A's technician on B's job is unknown to B.
    s.call_as(
        &b,
        "technician/v1/get",
        json!({ "technicianId": f.tech["id"] }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    let b_board = s
        .call_as(
            &b,
            "dispatch/v1/board",
            json!({ "date": chrono::Utc::now().date_naive() }),
        )
        .await
        .ok();
    assert_eq!(b_board["technicians"], json!([]));

    // Bad input names the field, writes nothing and leaves the key usable.
    let k = key();
    let bad = s
        .call(
            "job/v2/addAppointment",
            json!({ "idempotencyKey": k, "jobId": job["id"], "windowStart": hours_from_now(5, 6).1,
                    "windowEnd": hours_from_now(5, 6).0, "estimatedMinutes": 0,
                    "helperIds": [f.tech["id"]], "leadTechnicianId": f.tech["id"] }),
        )
        .await;
    bad.assert_error(400, "VALIDATION_FAILED");
    let fields: Vec<&str> = bad.json["field_errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["windowEnd", "estimatedMinutes", "helperIds[0]"]);
    let (start, end) = hours_from_now(5, 6);
    let fixed = s
        .call(
            "job/v2/addAppointment",
            json!({ "idempotencyKey": k, "jobId": job["id"], "windowStart": start, "windowEnd": end }),
        )
        .await
        .ok();
    assert_eq!(fixed["appointments"].as_array().unwrap().len(), 2);
    s.call(
        "job/v2/moveAppointment",
        json!({ "idempotencyKey": key(), "appointmentId": appointment["id"], "action": "hold" }),
    )
    .await
    .assert_error(400, "VALIDATION_FAILED");
    // A technician may move visits but not book them.
    let tech_token = as_member(
        &s,
        s.member(&s.a, "field@example.com", Role::Technician).await,
    );
    s.call_as(
        &tech_token,
        "job/v2/addAppointment",
        json!({ "idempotencyKey": key(), "jobId": job["id"], "windowStart": start, "windowEnd": end }),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    // A technician moves only the visits they are on (issue 13): unlinked, the visit is not
    // found; linked to its lead, it moves.
    s.call_as(
        &tech_token,
        "job/v2/moveAppointment",
        json!({ "idempotencyKey": key(), "appointmentId": appointment["id"], "action": "dispatch" }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    s.link(&tech_token, &f.tech).await;
    let moved = s
        .call_as(
            &tech_token,
            "job/v2/moveAppointment",
            json!({ "idempotencyKey": key(), "appointmentId": appointment["id"], "action": "dispatch" }),
        )
        .await
        .ok();
    assert_eq!(moved["job"]["status"], "dispatched");
    // Settings: the travel model and the arrival windows are checked field by field.
    let settings = s.call("dispatch/v1/getSettings", json!({})).await.ok();
    assert_eq!(settings["version"], 0);
    assert_eq!(
        settings["arrivalWindows"][0],
        json!({ "start": "08:00", "end": "10:00" })
    );
    let refused = s
        .call(
            "dispatch/v1/updateSettings",
            json!({ "idempotencyKey": key(), "travel": { "detourFactor": 0.5, "speedKmh": 40 },
                    "arrivalWindows": [{ "start": "09:00", "end": "08:00" }] }),
        )
        .await;
    refused.assert_error(400, "VALIDATION_FAILED");
    let updated = s
        .mutate(
            "dispatch/v1/updateSettings",
            json!({ "travel": { "detourFactor": 1.4, "speedKmh": 35 },
                    "arrivalWindows": [{ "start": "07:00", "end": "11:00" }, { "start": "12:00", "end": "16:00" }],
                    "expectedVersion": 0 }),
        )
        .await;
    assert_eq!(updated["version"], 1);
    assert_eq!(updated["arrivalWindows"][1]["end"], "16:00");
}

async fn concurrent_bookings_of_one_technician_never_overlap(s: TestServer) {
    let f = s.fixture().await;
    let helper = plumber(&s, "Busy Bea", None).await;
    let mut jobs = Vec::new();
    for _ in 0..12 {
        jobs.push(routine_job(&s, &f, &f.property, json!({})).await);
    }
    let window = hours_from_now(3, 5);
    let server = std::sync::Arc::new(s);
    // Twelve jobs at once want the same two people in the same window (one as lead, the
    // other as helper, swapped half of the time); and one job's request is sent six times.
    let duplicate = json!({ "idempotencyKey": key(), "jobId": jobs[0]["id"], "windowStart": window.0,
                            "windowEnd": window.1, "leadTechnicianId": f.tech["id"] });
    let mut tasks = tokio::task::JoinSet::new();
    for (k, job) in jobs.iter().enumerate().skip(1) {
        let (lead, help) = if k % 2 == 0 {
            (&f.tech["id"], &helper["id"])
        } else {
            (&helper["id"], &f.tech["id"])
        };
        let body = json!({ "idempotencyKey": key(), "jobId": job["id"], "windowStart": window.0,
                           "windowEnd": window.1, "leadTechnicianId": lead, "helperIds": [help] });
        let server = server.clone();
        tasks.spawn(async move { server.call("job/v2/addAppointment", body).await });
    }
    for _ in 0..6 {
        let (server, body) = (server.clone(), duplicate.clone());
        tasks.spawn(async move { server.call("job/v2/addAppointment", body).await });
    }
    let mut accepted = Vec::new();
    while let Some(reply) = tasks.join_next().await {
        let reply = reply.unwrap();
        match reply.status.as_u16() {
            200 => accepted.push(reply.json["job"]["id"].clone()),
            422 => reply.assert_error(422, "TECHNICIAN_INELIGIBLE"),
            other => panic!("unexpected {other}: {reply:?}"),
        }
    }
    accepted.sort_by_key(|v| v.to_string());
    accepted.dedup();
    assert_eq!(
        accepted.len(),
        1,
        "one booking wins the window: {accepted:?}"
    );
    // The board agrees: each of the two has at most one stop in the window.
    let day = chrono::DateTime::parse_from_rfc3339(&window.0)
        .unwrap()
        .with_timezone(&chrono_tz::America::Chicago)
        .date_naive();
    let board = server
        .call(
            "dispatch/v1/board",
            json!({ "date": day, "technicianIds": [f.tech["id"], helper["id"]] }),
        )
        .await
        .ok();
    for row in board["technicians"].as_array().unwrap() {
        assert!(
            row["days"][0]["stops"].as_array().unwrap().len() <= 1,
            "{row}"
        );
    }
}

async fn concurrent_v1_assignments_of_one_technician_never_overlap(s: TestServer) {
    let f = s.fixture().await;
    let (start, end) = TestServer::window();
    let mut jobs = Vec::new();
    for _ in 0..8 {
        let job = s.job(&f).await;
        s.mutate(
            "job/v1/schedule",
            json!({ "jobId": job["id"], "windowStart": start, "windowEnd": end }),
        )
        .await;
        jobs.push(job);
    }
    let server = std::sync::Arc::new(s);
    let mut tasks = tokio::task::JoinSet::new();
    for job in &jobs {
        let body =
            json!({ "idempotencyKey": key(), "jobId": job["id"], "technicianId": f.tech["id"] });
        let server = server.clone();
        tasks.spawn(async move { server.call("dispatch/v1/assignTech", body).await });
    }
    let mut accepted = 0;
    while let Some(reply) = tasks.join_next().await {
        let reply = reply.unwrap();
        match reply.status.as_u16() {
            200 => accepted += 1,
            _ => reply.assert_error(422, "TECHNICIAN_INELIGIBLE"),
        }
    }
    assert_eq!(accepted, 1, "one job gets the technician for the window");
}

/// Tomorrow's date in Chicago (the test organizations' zone).
fn tomorrow() -> chrono::NaiveDate {
    (chrono::Utc::now().with_timezone(&chrono_tz::America::Chicago) + chrono::Duration::days(1))
        .date_naive()
}

/// Tomorrow in Chicago at `h`:00, as RFC 3339.
fn tomorrow_at(h: u32) -> String {
    tomorrow()
        .and_hms_opt(h, 0, 0)
        .unwrap()
        .and_local_timezone(chrono_tz::America::Chicago)
        .single()
        .unwrap()
        .with_timezone(&chrono::Utc)
        .to_rfc3339()
}

async fn a_converted_booking_counts_once_and_a_crew_on_site_blocks_cancelling(s: TestServer) {
    let f = s.fixture().await;
    // Capacity 2: the v1 booking and one more visit that day.
    s.mutate(
        "technician/v1/setHomeBase",
        json!({ "technicianId": f.tech["id"], "homeBase": null, "dailyCapacity": 2 }),
    )
    .await;
    let job = routine_job(&s, &f, &f.property, json!({})).await;
    s.mutate(
        "job/v1/schedule",
        json!({ "jobId": job["id"], "windowStart": tomorrow_at(9), "windowEnd": tomorrow_at(10) }),
    )
    .await;
    s.mutate(
        "dispatch/v1/assignTech",
        json!({ "jobId": job["id"], "technicianId": f.tech["id"] }),
    )
    .await;
    // The v1 booking becomes the first visit and counts once: a second visit the same day fits.
    let both = add_visit(
        &s,
        &job,
        (tomorrow_at(14), tomorrow_at(16)),
        json!({ "leadTechnicianId": f.tech["id"] }),
    )
    .await
    .ok();
    assert_eq!(both["appointments"].as_array().unwrap().len(), 2);
    // A v1 job with a technician but no window: the technician leads its first visit.
    let other = routine_job(&s, &f, &f.property, json!({})).await;
    s.mutate(
        "dispatch/v1/assignTech",
        json!({ "jobId": other["id"], "technicianId": f.tech["id"] }),
    )
    .await;
    let led = add_visit(&s, &other, hours_from_now(60, 61), json!({}))
        .await
        .ok();
    assert_eq!(led["appointments"][0]["leadTechnicianId"], f.tech["id"]);
    // A crew on site (then held, waiting for parts): the job cannot be cancelled through v1.
    let first = both["appointments"][0].clone();
    for action in ["dispatch", "start_travel", "arrive"] {
        field_move(&s, &first, action).await;
    }
    let held = s
        .mutate(
            "job/v2/moveAppointment",
            json!({ "appointmentId": first["id"], "action": "hold", "reason": "waiting for parts" }),
        )
        .await;
    assert_eq!(
        held["job"]["status"], "on_site",
        "a visit held on site keeps the job on site"
    );
    s.mutate(
        "job/v1/updateStatus",
        json!({ "jobId": job["id"], "status": "on_hold", "reason": "parts" }),
    )
    .await;
    s.call(
        "job/v1/updateStatus",
        json!({ "idempotencyKey": key(), "jobId": job["id"], "status": "cancelled" }),
    )
    .await
    .assert_error(409, "APPOINTMENT_ON_SITE");
}

async fn waiting_v1_visits_each_show_in_the_queue_and_slots_respect_the_jobs_visits(s: TestServer) {
    let f = s.fixture().await;
    // Two v1 jobs scheduled tomorrow without a technician: both wait on the board.
    for (from, to) in [(9, 10), (11, 12)] {
        let job = routine_job(&s, &f, &f.property, json!({})).await;
        s.mutate(
            "job/v1/schedule",
            json!({ "jobId": job["id"], "windowStart": tomorrow_at(from), "windowEnd": tomorrow_at(to) }),
        )
        .await;
    }
    let day = tomorrow();
    let board = s
        .call("dispatch/v1/board", json!({ "date": day }))
        .await
        .ok();
    assert_eq!(
        board["unassigned"]["appointments"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "{board}"
    );
    // A v2 job with a visit 10–12 with the technician: no slot offered overlaps it.
    let job = routine_job(&s, &f, &f.property, json!({})).await;
    add_visit(
        &s,
        &job,
        (tomorrow_at(10), tomorrow_at(12)),
        json!({ "leadTechnicianId": f.tech["id"] }),
    )
    .await
    .ok();
    let offered = s
        .call(
            "dispatch/v1/suggestSlots",
            json!({ "jobId": job["id"], "fromDate": day, "lookaheadDays": 1, "count": 50 }),
        )
        .await
        .ok();
    let clash = |o: &Value| {
        let start: chrono::DateTime<chrono::Utc> =
            o["window"]["start"].as_str().unwrap().parse().unwrap();
        let end: chrono::DateTime<chrono::Utc> =
            o["window"]["end"].as_str().unwrap().parse().unwrap();
        let (a, b): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) = (
            tomorrow_at(10).parse().unwrap(),
            tomorrow_at(12).parse().unwrap(),
        );
        start < b && a < end
    };
    let options = offered["options"].as_array().unwrap();
    assert!(!options.is_empty());
    assert!(!options.iter().any(clash), "{offered}");
}

async fn two_first_settings_updates_at_once_do_not_lose_one(s: TestServer) {
    let server = std::sync::Arc::new(s);
    let mut tasks = tokio::task::JoinSet::new();
    for speed in [30, 50] {
        let server = server.clone();
        tasks.spawn(async move {
            server
                .call(
                    "dispatch/v1/updateSettings",
                    json!({ "idempotencyKey": key(), "travel": { "detourFactor": 1.3, "speedKmh": speed },
                            "arrivalWindows": [{ "start": "08:00", "end": "12:00" }], "expectedVersion": 0 }),
                )
                .await
        });
    }
    let mut statuses = Vec::new();
    while let Some(reply) = tasks.join_next().await {
        let reply = reply.unwrap();
        if reply.status != 200 {
            reply.assert_error(409, "VERSION_CONFLICT");
        }
        statuses.push(reply.status.as_u16());
    }
    statuses.sort();
    assert_eq!(statuses, [200, 409], "one wins, the other is told");
    let settings = server.call("dispatch/v1/getSettings", json!({})).await.ok();
    assert_eq!(settings["version"], 1);
}

async fn planned_starts_let_overlapping_windows_share_a_technician(s: TestServer) {
    let f = s.fixture().await;
    let lead = json!(f.tech["id"]);
    let book = |job: Value, planned: Option<u32>| {
        let s = &s;
        let lead = lead.clone();
        async move {
            let mut crew = json!({ "leadTechnicianId": lead, "estimatedMinutes": 60 });
            if let Some(h) = planned {
                crew["plannedStart"] = json!(tomorrow_at(h));
            }
            add_visit(s, &job, (tomorrow_at(8), tomorrow_at(12)), crew).await
        }
    };
    let a = routine_job(&s, &f, &f.property, json!({})).await;
    let first = book(a.clone(), Some(8)).await.ok();
    let planned: chrono::DateTime<chrono::Utc> = first["appointments"][0]["plannedStart"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        planned,
        tomorrow_at(8)
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    );
    // Unplanned, a visit takes its crew for its whole window: 08–12 meets the 08:00 visit.
    let b = routine_job(&s, &f, &f.property, json!({})).await;
    let refused = book(b.clone(), None).await;
    refused.assert_error(422, "TECHNICIAN_INELIGIBLE");
    assert!(refused.json.to_string().contains("APPOINTMENT_OVERLAP"));
    // Planned at 10:00 for an hour, it fits after the first.
    book(b, Some(10)).await.ok();
    // The board projects a planned visit no earlier than its planned start.
    let day = tomorrow();
    let board = s
        .call(
            "dispatch/v1/board",
            json!({ "date": day, "technicianIds": [lead] }),
        )
        .await
        .ok();
    let stops = board["technicians"][0]["days"][0]["stops"]
        .as_array()
        .unwrap();
    assert_eq!(stops.len(), 2, "{board}");
    for stop in stops {
        let planned: chrono::DateTime<chrono::Utc> =
            stop["plannedStart"].as_str().unwrap().parse().unwrap();
        let projected: chrono::DateTime<chrono::Utc> =
            stop["projectedArrival"].as_str().unwrap().parse().unwrap();
        assert!(projected >= planned, "{stop}");
    }
    // Planned at 08:00 again, it does not.
    let c = routine_job(&s, &f, &f.property, json!({})).await;
    book(c.clone(), Some(8))
        .await
        .assert_error(422, "TECHNICIAN_INELIGIBLE");
    // A planned start outside the window names the field.
    let outside = add_visit(
        &s,
        &c,
        (tomorrow_at(8), tomorrow_at(12)),
        json!({ "leadTechnicianId": lead, "plannedStart": tomorrow_at(13) }),
    )
    .await;
    outside.assert_error(400, "VALIDATION_FAILED");
    assert_eq!(outside.json["field_errors"][0]["field"], "plannedStart");
    // A reschedule with a planned start keeps it; without one the visit is unplanned again.
    let visit = &first["appointments"][0];
    let moved = s
        .mutate(
            "job/v2/rescheduleAppointment",
            json!({ "appointmentId": visit["id"], "windowStart": tomorrow_at(13), "windowEnd": tomorrow_at(15),
                    "plannedStart": tomorrow_at(14) }),
        )
        .await;
    let moved_visit = &moved["appointments"][0];
    assert_eq!(
        moved_visit["plannedStart"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap(),
        tomorrow_at(14)
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    );
    let unplanned = s
        .mutate(
            "job/v2/rescheduleAppointment",
            json!({ "appointmentId": visit["id"], "windowStart": tomorrow_at(13), "windowEnd": tomorrow_at(16) }),
        )
        .await;
    assert_eq!(unplanned["appointments"][0]["plannedStart"], Value::Null);
}

/// Every v2 procedure has its row in the v2 permission table (and no row is left over), and
/// every v2 mutation starts a `_v2` workflow.
#[test]
fn every_v2_procedure_has_a_permission_row_and_a_v2_workflow() {
    let procedures = hestami::http::v2::procedures();
    for p in &procedures {
        if let Some(workflow) = p.workflow {
            assert!(workflow.ends_with("_v2"), "{} starts {workflow}", p.path());
        }
        assert!(
            hestami::core::org::PERMISSIONS_V2
                .iter()
                .any(|(name, _)| *name == p.path()),
            "{} has no permission row",
            p.path()
        );
    }
    assert_eq!(
        procedures.len(),
        hestami::core::org::PERMISSIONS_V2.len(),
        "every v2 permission row is a procedure"
    );
}
