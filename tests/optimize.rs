//! Route optimization over HTTP, on SQLite and on PostgreSQL: a seeded day optimized, explained,
//! applied and shown on the board; a stale plan refused; a replay answered byte for byte;
//! re-planning after a cancellation; the emergency call placed; bad input and other
//! organizations' ids.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use hestami::core::org::Role;
use support::{Fixture, TestServer, key};

both!(
    a_seeded_day_is_optimized_explained_applied_and_shown_on_the_board,
    replanning_after_a_cancellation_moves_fewer_visits_and_never_a_started_one,
    an_emergency_is_placed_into_the_day_and_its_first_option_can_be_booked,
    bad_input_other_organizations_and_roles,
    a_booking_made_after_the_plan_is_not_overlapped_on_apply,
    a_led_visit_without_coordinates_keeps_its_technician,
);

/// Tomorrow's date in Chicago (the test organizations' zone).
fn tomorrow() -> chrono::NaiveDate {
    (chrono::Utc::now().with_timezone(&chrono_tz::America::Chicago) + chrono::Duration::days(1))
        .date_naive()
}

/// Tomorrow in Chicago at `h`:`m`, as RFC 3339.
fn tomorrow_at(h: u32, m: u32) -> String {
    tomorrow()
        .and_hms_opt(h, m, 0)
        .unwrap()
        .and_local_timezone(chrono_tz::America::Chicago)
        .single()
        .unwrap()
        .with_timezone(&chrono::Utc)
        .to_rfc3339()
}

fn instant(v: &Value) -> chrono::DateTime<chrono::Utc> {
    v.as_str().unwrap().parse().unwrap()
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A technician with trade, level, daily shift spans and home; the rest by `extra`.
async fn technician(
    s: &TestServer,
    name: &str,
    trade: &str,
    level: u8,
    spans: &[(&str, &str)],
    home: (f64, f64),
) -> Value {
    let tech = s
        .mutate(
            "technician/v1/create",
            json!({ "name": name, "trades": [trade] }),
        )
        .await;
    let id = &tech["id"];
    s.mutate(
        "technician/v1/setSkills",
        json!({ "technicianId": id, "skills": [{ "trade": trade, "level": level }] }),
    )
    .await;
    let weekly: Vec<Value> = DAYS
        .iter()
        .flat_map(|d| {
            spans
                .iter()
                .map(move |(a, b)| json!({ "weekday": d, "start": a, "end": b }))
        })
        .collect();
    s.mutate(
        "technician/v1/setShifts",
        json!({ "technicianId": id, "effectiveFrom": "2020-01-01", "weekly": weekly }),
    )
    .await;
    s.mutate(
        "technician/v1/setHomeBase",
        json!({ "technicianId": id, "homeBase": { "lat": home.0, "lon": home.1 }, "dailyCapacity": 12 }),
    )
    .await;
    tech
}

/// A job at `property` with one visit tomorrow; returns the visit (with its `jobId`).
#[allow(clippy::too_many_arguments)]
async fn visit(
    s: &TestServer,
    f: &Fixture,
    property: &Value,
    trade: &str,
    level: u8,
    certs: &[&str],
    window: (u32, u32),
    minutes: u32,
    crew: Value,
) -> Value {
    let job = s
        .mutate(
            "job/v1/create",
            json!({ "customerId": f.customer["id"], "propertyId": property["id"], "trade": trade,
                    "priority": "routine", "summary": "Service call", "minSkillLevel": level,
                    "requiredCertifications": certs }),
        )
        .await;
    let mut body = json!({ "jobId": job["id"], "windowStart": tomorrow_at(window.0, 0),
                           "windowEnd": tomorrow_at(window.1, 0), "estimatedMinutes": minutes });
    if let (Some(b), Some(e)) = (body.as_object_mut(), crew.as_object()) {
        b.extend(e.clone());
    }
    let schedule = s.mutate("job/v2/addAppointment", body).await;
    schedule["appointments"][0].clone()
}

async fn properties(s: &TestServer, f: &Fixture, n: usize) -> Vec<Value> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let (lat, lon) = (
            41.84 + 0.006 * ((i * 7) % 20) as f64,
            -87.76 + 0.008 * ((i * 11) % 20) as f64,
        );
        out.push(
            s.mutate(
                "customer/v1/addProperty",
                json!({ "customerId": f.customer["id"], "address": { "line1": format!("{i} Lake St"),
                        "city": "Chicago", "region": "IL", "postalCode": "60601", "country": "US" },
                        "location": { "lat": lat, "lon": lon } }),
            )
            .await,
        );
    }
    out
}

/// Eight technicians with varied trades, levels, shifts (one split), homes, a certification on
/// two, time off on one and a service area away from the day's jobs on another.
async fn crew_of_eight(s: &TestServer) -> Vec<Value> {
    let mut techs = Vec::new();
    let shifts: [&[(&str, &str)]; 4] = [
        &[("07:00", "15:00")],
        &[("08:00", "17:00")],
        &[("10:00", "19:00")],
        &[("07:00", "11:00"), ("12:00", "16:00")],
    ];
    for k in 0..8usize {
        let trade = if k % 4 == 3 { "hvac" } else { "plumbing" };
        let home = (
            41.85 + 0.02 * (k % 5) as f64,
            -87.75 + 0.03 * (k % 4) as f64,
        );
        let tech = technician(
            s,
            &format!("Tech {k}"),
            trade,
            2 + (k % 3) as u8,
            shifts[k % 4],
            home,
        )
        .await;
        if k == 1 || k == 5 {
            s.mutate(
                "technician/v1/addCertification",
                json!({ "technicianId": tech["id"], "name": "Backflow Tester", "issuer": "State Board",
                        "expiresOn": (tomorrow() + chrono::Duration::days(365)).to_string() }),
            )
            .await;
        }
        if k == 6 {
            s.mutate(
                "technician/v1/addTimeOff",
                json!({ "technicianId": tech["id"], "start": tomorrow_at(12, 0), "end": tomorrow_at(14, 0) }),
            )
            .await;
        }
        if k == 7 {
            s.mutate(
                "technician/v1/setServiceAreas",
                json!({ "technicianId": tech["id"], "areas": [{ "kind": "postalCodes", "postalCodes": ["99501"] }] }),
            )
            .await;
        }
        techs.push(tech);
    }
    techs
}

async fn optimize(s: &TestServer, body: Value) -> Value {
    s.mutate("dispatch/v1/optimize", body).await
}

/// The planned stops of a plan: appointment id → (technician, start).
fn planned(plan: &Value) -> HashMap<String, (String, chrono::DateTime<chrono::Utc>)> {
    let mut out = HashMap::new();
    for route in plan["routes"].as_array().unwrap() {
        for stop in route["stops"].as_array().unwrap() {
            if let Some(id) = stop["appointmentId"].as_str() {
                out.insert(
                    id.to_owned(),
                    (
                        route["technicianId"].as_str().unwrap().to_owned(),
                        instant(&stop["start"]),
                    ),
                );
            }
        }
    }
    out
}

async fn a_seeded_day_is_optimized_explained_applied_and_shown_on_the_board(s: TestServer) {
    let f = s.fixture().await;
    let techs = crew_of_eight(&s).await;
    let places = properties(&s, &f, 20).await;
    // 59 visits to plan and one crew visit (lead and helper) that stays as it is.
    let crew = visit(
        &s,
        &f,
        &places[0],
        "plumbing",
        1,
        &[],
        (8, 10),
        60,
        json!({ "leadTechnicianId": techs[0]["id"], "helperIds": [techs[1]["id"]] }),
    )
    .await;
    let mut visits = Vec::new();
    for i in 1..60usize {
        let trade = if i % 4 == 3 { "hvac" } else { "plumbing" };
        let certs: &[&str] = if i % 15 == 0 {
            &["Backflow Tester"]
        } else {
            &[]
        };
        let start = 8 + 2 * (i % 5) as u32;
        let end = (start + if i % 2 == 0 { 2 } else { 4 }).min(20);
        visits.push(
            visit(
                &s,
                &f,
                &places[i % 20],
                trade,
                1 + (i % 3) as u8,
                certs,
                (start, end),
                30 + 20 * (i % 4) as u32,
                json!({}),
            )
            .await,
        );
    }
    let tech_ids: Vec<&Value> = techs.iter().map(|t| &t["id"]).collect();
    let body = json!({ "idempotencyKey": key(), "date": tomorrow(), "technicianIds": tech_ids,
                       "timeBudgetMs": 1500, "seed": 7 });
    let first = s.call("dispatch/v1/optimize", body.clone()).await;
    let first_bytes = first.bytes.clone();
    let plan = first.ok();
    assert_eq!(plan["status"], "proposed");
    let stops = planned(&plan);
    let unplanned = plan["unplanned"].as_array().unwrap();
    assert_eq!(
        stops.len() + unplanned.len(),
        59,
        "every visit is planned or left out with reasons: {plan}"
    );
    assert!(
        stops.len() >= 40,
        "most of the day is planned: {}",
        stops.len()
    );
    assert!(!stops.contains_key(crew["id"].as_str().unwrap()));
    for u in unplanned {
        assert!(!u["reasons"].as_array().unwrap().is_empty(), "{u}");
    }
    // The technician outside the area never gets a visit; the crew visit stays on the lead's route.
    assert!(
        stops
            .values()
            .all(|(t, _)| t != techs[7]["id"].as_str().unwrap())
    );
    let lead_route = plan["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["technicianId"] == techs[0]["id"])
        .unwrap();
    assert!(
        lead_route["stops"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["appointmentId"].is_null() && s["jobId"] == crew["jobId"]),
        "{lead_route}"
    );
    // Every planned visit says why; the plan is never late nor in overtime, and says how the
    // day stood before.
    for route in plan["routes"].as_array().unwrap() {
        for stop in route["stops"].as_array().unwrap() {
            if stop["appointmentId"].is_string() {
                assert!(stop["why"]["eligibleTechnicians"].as_u64().unwrap() >= 1);
            }
            assert!(stop["slackMinutes"].as_f64().unwrap() >= -1e-6);
        }
    }
    assert_eq!(plan["kpis"]["lateVisits"], 0);
    assert!(plan["kpis"]["overtimeMinutes"].as_f64().unwrap() < 1e-6);
    assert_eq!(plan["before"]["scheduled"], 0);
    assert_eq!(plan["kpis"]["scheduled"], json!(stops.len()));
    assert!(plan["reads"].as_array().unwrap().len() >= 60 + 59 + 8);

    // The same key and body: the same plan, byte for byte.
    let replay = s.call("dispatch/v1/optimize", body).await;
    assert_eq!(replay.bytes, first_bytes);
    assert_eq!(
        s.call("dispatch/v1/getPlan", json!({ "planId": plan["planId"] }))
            .await
            .ok()["routes"],
        plan["routes"]
    );

    // Applied: every visit is led by the plan's technician from the plan's start; each
    // assignment went through the eligibility gate.
    let apply = json!({ "idempotencyKey": key(), "planId": plan["planId"] });
    let applied = s.call("dispatch/v1/applyPlan", apply.clone()).await;
    let applied_bytes = applied.bytes.clone();
    let applied = applied.ok();
    assert_eq!(applied["scheduled"].as_array().unwrap().len(), stops.len());
    assert_eq!(
        s.call("dispatch/v1/applyPlan", apply).await.bytes,
        applied_bytes
    );
    s.call(
        "dispatch/v1/applyPlan",
        json!({ "idempotencyKey": key(), "planId": plan["planId"] }),
    )
    .await
    .assert_error(409, "PLAN_ALREADY_APPLIED");
    for v in &visits {
        let id = v["id"].as_str().unwrap();
        let Some((tech, start)) = stops.get(id) else {
            continue;
        };
        let job = s
            .call("job/v2/get", json!({ "jobId": v["jobId"] }))
            .await
            .ok();
        let a = &job["appointments"][0];
        assert_eq!(a["leadTechnicianId"].as_str().unwrap(), tech);
        assert_eq!(instant(&a["plannedStart"]), *start);
    }
    // The board shows the plan.
    let board = s
        .call(
            "dispatch/v1/board",
            json!({ "date": tomorrow(), "technicianIds": tech_ids }),
        )
        .await
        .ok();
    let mut on_board = HashMap::new();
    for t in board["technicians"].as_array().unwrap() {
        for stop in t["days"][0]["stops"].as_array().unwrap() {
            if let Some(id) = stop["appointmentId"].as_str()
                && stop["role"] == "lead"
            {
                on_board.insert(
                    id.to_owned(),
                    t["technicianId"].as_str().unwrap().to_owned(),
                );
            }
        }
    }
    for (id, (tech, _)) in &stops {
        assert_eq!(on_board.get(id), Some(tech), "{id} on the board");
    }

    // A new plan, then a job changes before it is applied: refused with what changed, and
    // applied in part on request.
    let again = optimize(
        &s,
        json!({ "date": tomorrow(), "technicianIds": tech_ids, "timeBudgetMs": 300 }),
    )
    .await;
    let target = planned(&again)
        .keys()
        .next()
        .cloned()
        .expect("a planned visit");
    // Held and resumed: the visit is as it was, but it is not the version the plan read.
    s.mutate(
        "job/v2/moveAppointment",
        json!({ "appointmentId": target, "action": "hold", "reason": "Customer asked to wait" }),
    )
    .await;
    s.mutate(
        "job/v2/moveAppointment",
        json!({ "appointmentId": target, "action": "resume" }),
    )
    .await;
    let stale = s
        .call(
            "dispatch/v1/applyPlan",
            json!({ "idempotencyKey": key(), "planId": again["planId"] }),
        )
        .await;
    stale.assert_error(409, "PLAN_STALE");
    let changed = stale.json["error"]["details"]["changed"]
        .as_array()
        .unwrap();
    assert!(
        changed
            .iter()
            .any(|c| c["id"] == target.as_str() && c["kind"] == "appointment"),
        "{changed:?}"
    );
    let partial = s
        .call(
            "dispatch/v1/applyPlan",
            json!({ "idempotencyKey": key(), "planId": again["planId"], "partial": true }),
        )
        .await
        .ok();
    assert!(
        partial["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["appointmentId"] == target.as_str() && s["reason"] == "PLAN_STALE")
    );
    // Everything else in the plan was applied or skipped (a skipped visit stays with its
    // technician, whose planned visits are skipped with it), and what was applied is as planned.
    let again_stops = planned(&again);
    let scheduled = partial["scheduled"].as_array().unwrap();
    let skipped = partial["skipped"].as_array().unwrap();
    assert_eq!(
        scheduled.len()
            + skipped
                .iter()
                .filter(|s| again_stops.contains_key(s["appointmentId"].as_str().unwrap()))
                .count(),
        again_stops.len(),
        "{partial}"
    );
    for id in scheduled {
        let (tech, start) = &again_stops[id.as_str().unwrap()];
        let v = visits.iter().find(|v| v["id"] == *id).unwrap();
        let job = s
            .call("job/v2/get", json!({ "jobId": v["jobId"] }))
            .await
            .ok();
        let a = &job["appointments"][0];
        assert_eq!(a["leadTechnicianId"].as_str().unwrap(), tech);
        assert_eq!(instant(&a["plannedStart"]), *start);
    }
}

async fn replanning_after_a_cancellation_moves_fewer_visits_and_never_a_started_one(s: TestServer) {
    let f = s.fixture().await;
    let places = properties(&s, &f, 16).await;
    let mut techs = Vec::new();
    for k in 0..4usize {
        let home = (41.85 + 0.03 * k as f64, -87.75 + 0.04 * (k % 2) as f64);
        techs.push(
            technician(
                &s,
                &format!("Plumber {k}"),
                "plumbing",
                3,
                &[("07:00", "19:00")],
                home,
            )
            .await,
        );
    }
    // The day as a dispatcher made it: round robin, an hour apart, whatever the map says.
    let mut visits = Vec::new();
    for (i, place) in places.iter().enumerate() {
        let v = visit(&s, &f, place, "plumbing", 1, &[], (8, 18), 30, json!({})).await;
        let k = i % 4;
        let slot = 8 + (i / 4) as u32 * 2;
        s.mutate(
            "job/v2/rescheduleAppointment",
            json!({ "appointmentId": v["id"], "windowStart": v["window"]["start"], "windowEnd": v["window"]["end"],
                    "plannedStart": tomorrow_at(slot, 0) }),
        )
        .await;
        s.mutate(
            "job/v2/assignTechnician",
            json!({ "appointmentId": v["id"], "technicianId": techs[k]["id"], "role": "lead" }),
        )
        .await;
        visits.push(v);
    }
    // One visit is under way, one is cancelled.
    let started = &visits[0];
    for action in ["dispatch", "start_travel"] {
        s.mutate(
            "job/v2/moveAppointment",
            json!({ "appointmentId": started["id"], "action": action }),
        )
        .await;
    }
    s.mutate(
        "job/v2/cancelAppointment",
        json!({ "appointmentId": visits[5]["id"], "reason": "Customer cancelled" }),
    )
    .await;
    let tech_ids: Vec<&Value> = techs.iter().map(|t| &t["id"]).collect();
    let stable = optimize(
        &s,
        json!({ "date": tomorrow(), "technicianIds": tech_ids, "timeBudgetMs": 800,
                "weights": { "stability": 60 } }),
    )
    .await;
    let scratch = optimize(
        &s,
        json!({ "date": tomorrow(), "technicianIds": tech_ids, "timeBudgetMs": 800,
                "weights": { "stability": 0 } }),
    )
    .await;
    let (m1, m0) = (
        stable["moved"].as_u64().unwrap(),
        scratch["moved"].as_u64().unwrap(),
    );
    assert!(
        m1 < m0,
        "re-planning moved {m1}, planning from scratch {m0}"
    );
    for plan in [&stable, &scratch] {
        let stops = planned(plan);
        assert_eq!(
            stops.len(),
            14,
            "the started and the cancelled visit are not planned"
        );
        assert!(!stops.contains_key(started["id"].as_str().unwrap()));
        assert!(!stops.contains_key(visits[5]["id"].as_str().unwrap()));
        // The started visit stays on its technician's route, where it is.
        let route = plan["routes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["technicianId"] == techs[0]["id"])
            .unwrap();
        assert!(
            route["stops"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["jobId"] == started["jobId"] && s["appointmentId"].is_null())
        );
        let moved = plan["routes"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["stops"].as_array().unwrap())
            .filter(|s| s["moved"] == true)
            .count();
        assert_eq!(moved as u64, plan["moved"].as_u64().unwrap());
    }
    // Less driving than the dispatcher's day, measured the same way.
    assert!(
        stable["kpis"]["travelMinutes"].as_f64().unwrap()
            <= stable["before"]["travelMinutes"].as_f64().unwrap() + 1e-6,
        "{}",
        stable["kpis"]
    );
    // The stable plan applies.
    s.mutate(
        "dispatch/v1/applyPlan",
        json!({ "planId": stable["planId"] }),
    )
    .await;
}

async fn an_emergency_is_placed_into_the_day_and_its_first_option_can_be_booked(s: TestServer) {
    let f = s.fixture().await;
    let places = properties(&s, &f, 6).await;
    let mut techs = Vec::new();
    for k in 0..3usize {
        let home = (41.85 + 0.03 * k as f64, -87.70);
        techs.push(
            technician(
                &s,
                &format!("Plumber {k}"),
                "plumbing",
                3,
                &[("07:00", "19:00")],
                home,
            )
            .await,
        );
    }
    for (i, p) in places.iter().enumerate().take(5) {
        visit(
            &s,
            &f,
            p,
            "plumbing",
            1,
            &[],
            (8 + i as u32, 12 + i as u32),
            60,
            json!({}),
        )
        .await;
    }
    let tech_ids: Vec<&Value> = techs.iter().map(|t| &t["id"]).collect();
    let plan = optimize(
        &s,
        json!({ "date": tomorrow(), "technicianIds": tech_ids, "timeBudgetMs": 300 }),
    )
    .await;
    s.mutate("dispatch/v1/applyPlan", json!({ "planId": plan["planId"] }))
        .await;
    // The call comes in: a visit this afternoon-like window, placed into the day as it stands.
    let urgent = visit(
        &s,
        &f,
        &places[5],
        "plumbing",
        1,
        &[],
        (10, 14),
        45,
        json!({}),
    )
    .await;
    let placed = s
        .call(
            "dispatch/v1/placeVisit",
            json!({ "appointmentId": urgent["id"], "count": 10 }),
        )
        .await
        .ok();
    let options = placed["options"].as_array().unwrap();
    assert!(!options.is_empty(), "{placed}");
    let techs_offered: HashSet<&str> = options
        .iter()
        .map(|o| o["technicianId"].as_str().unwrap())
        .collect();
    assert_eq!(
        techs_offered.len(),
        options.len(),
        "one option per technician"
    );
    // Grace (the fixture's plumber, around the clock, no home) may be offered too; the three
    // with homes are all eligible.
    assert!(options.len() >= 3, "{placed}");
    let best = &options[0];
    s.mutate(
        "job/v2/rescheduleAppointment",
        json!({ "appointmentId": urgent["id"], "windowStart": urgent["window"]["start"],
                "windowEnd": urgent["window"]["end"], "plannedStart": best["start"] }),
    )
    .await;
    s.mutate(
        "job/v2/assignTechnician",
        json!({ "appointmentId": urgent["id"], "technicianId": best["technicianId"], "role": "lead" }),
    )
    .await;
}

async fn bad_input_other_organizations_and_roles(s: TestServer) {
    let f = s.fixture().await;
    let places = properties(&s, &f, 1).await;
    let v = visit(
        &s,
        &f,
        &places[0],
        "plumbing",
        1,
        &[],
        (9, 13),
        60,
        json!({}),
    )
    .await;
    let day = tomorrow();
    // Out of range and duplicates name the field; nothing is recorded, and the key stays
    // usable.
    let k = key();
    for (body, field) in [
        (
            json!({ "idempotencyKey": k, "date": day, "timeBudgetMs": 50 }),
            "timeBudgetMs",
        ),
        (
            json!({ "idempotencyKey": k, "date": day, "timeBudgetMs": 60_001 }),
            "timeBudgetMs",
        ),
        (
            json!({ "idempotencyKey": k, "date": day, "weights": { "stability": -1 } }),
            "weights.stability",
        ),
        (
            json!({ "idempotencyKey": k, "date": day, "appointmentIds": [v["id"], v["id"]] }),
            "appointmentIds",
        ),
        (
            json!({ "idempotencyKey": k, "date": day, "pins": { "not-an-id": f.tech["id"] } }),
            "pins.not-an-id",
        ),
    ] {
        let r = s.call("dispatch/v1/optimize", body).await;
        r.assert_error(400, "VALIDATION_FAILED");
        assert_eq!(r.json["field_errors"][0]["field"], field, "{r:?}");
    }
    // The key refused with 400 is still usable; pins name ids, and unknown ones are not found
    // (an answer about the state of things: recorded, as a 409 or 422 is).
    s.call(
        "dispatch/v1/optimize",
        json!({ "idempotencyKey": key(), "date": day, "appointmentIds": [v["id"]],
                "pins": { uuid::Uuid::new_v4().to_string(): f.tech["id"] } }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    s.call(
        "dispatch/v1/optimize",
        json!({ "idempotencyKey": key(), "date": day, "appointmentIds": [v["id"]],
                "pins": { v["id"].as_str().unwrap(): uuid::Uuid::new_v4() } }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    s.call(
        "dispatch/v1/optimize",
        json!({ "idempotencyKey": k, "date": day, "timeBudgetMs": 100 }),
    )
    .await
    .ok();
    // Two requests with one key at once: one plan, the same bytes to both.
    let twin = json!({ "idempotencyKey": key(), "date": day, "timeBudgetMs": 300 });
    let (a, b2) = tokio::join!(
        s.call("dispatch/v1/optimize", twin.clone()),
        s.call("dispatch/v1/optimize", twin)
    );
    assert_eq!(
        (a.status.as_u16(), b2.status.as_u16()),
        (200, 200),
        "{a:?} {b2:?}"
    );
    assert_eq!(a.bytes, b2.bytes);
    // Another organization's ids are not found.
    let b = s.new_tenant("Other Org", "owner@other.example").await;
    s.call_as(
        &b,
        "dispatch/v1/optimize",
        json!({ "idempotencyKey": key(), "date": day, "appointmentIds": [v["id"]] }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    s.call_as(
        &b,
        "dispatch/v1/optimize",
        json!({ "idempotencyKey": key(), "date": day, "technicianIds": [f.tech["id"]] }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    let plan = optimize(&s, json!({ "date": day, "timeBudgetMs": 100 })).await;
    s.call_as(
        &b,
        "dispatch/v1/getPlan",
        json!({ "planId": plan["planId"] }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    s.call_as(
        &b,
        "dispatch/v1/applyPlan",
        json!({ "idempotencyKey": key(), "planId": plan["planId"] }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    s.call_as(
        &b,
        "dispatch/v1/placeVisit",
        json!({ "appointmentId": v["id"] }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    // A visit that is not plannable (dispatched) is refused by name.
    s.mutate(
        "job/v2/assignTechnician",
        json!({ "appointmentId": v["id"], "technicianId": f.tech["id"], "role": "lead" }),
    )
    .await;
    s.mutate(
        "job/v2/moveAppointment",
        json!({ "appointmentId": v["id"], "action": "dispatch" }),
    )
    .await;
    s.call(
        "dispatch/v1/optimize",
        json!({ "idempotencyKey": key(), "date": day, "appointmentIds": [v["id"]] }),
    )
    .await
    .assert_error(409, "APPOINTMENT_NOT_PLANNABLE");
    let placed = s
        .call(
            "dispatch/v1/placeVisit",
            json!({ "appointmentId": v["id"] }),
        )
        .await
        .ok();
    assert_eq!(placed["reasons"], json!(["APPOINTMENT_NOT_PLANNABLE"]));
    assert!(placed["options"].as_array().unwrap().is_empty());
    // A technician may not plan nor apply; an office member may read and place but not plan.
    let tech_token = s.member(&s.a, "tech@a.example", Role::Technician).await;
    let office_token = s.member(&s.a, "office@a.example", Role::Office).await;
    let as_role = |token: String| support::Tenant {
        token,
        ..s.a.clone()
    };
    let tech = as_role(tech_token);
    let office = as_role(office_token);
    for (who, procedure, body, allowed) in [
        (
            &tech,
            "dispatch/v1/optimize",
            json!({ "idempotencyKey": key(), "date": day }),
            false,
        ),
        (
            &tech,
            "dispatch/v1/getPlan",
            json!({ "planId": plan["planId"] }),
            false,
        ),
        (
            &office,
            "dispatch/v1/optimize",
            json!({ "idempotencyKey": key(), "date": day }),
            false,
        ),
        (
            &office,
            "dispatch/v1/applyPlan",
            json!({ "idempotencyKey": key(), "planId": plan["planId"] }),
            false,
        ),
        (
            &office,
            "dispatch/v1/getPlan",
            json!({ "planId": plan["planId"] }),
            true,
        ),
    ] {
        let r = s.call_as(who, procedure, body).await;
        if allowed {
            assert_eq!(r.status, 200, "{procedure}: {r:?}");
        } else {
            r.assert_error(403, "FORBIDDEN");
        }
    }
}

/// A plan moves a visit in time but keeps its technician; a v1 job booked on that technician
/// since, over the new time, is not among the plan's reads: the gate refuses the plan on apply
/// and nothing changes.
async fn a_booking_made_after_the_plan_is_not_overlapped_on_apply(s: TestServer) {
    let f = s.fixture().await;
    let places = properties(&s, &f, 2).await;
    let v = visit(
        &s,
        &f,
        &places[0],
        "plumbing",
        1,
        &[],
        (9, 13),
        60,
        json!({ "leadTechnicianId": f.tech["id"], "plannedStart": tomorrow_at(12, 0) }),
    )
    .await;
    let plan = optimize(
        &s,
        json!({ "date": tomorrow(), "technicianIds": [f.tech["id"]], "appointmentIds": [v["id"]],
                "timeBudgetMs": 200 }),
    )
    .await;
    let stop = &plan["routes"][0]["stops"][0];
    assert_eq!(stop["appointmentId"], v["id"]);
    assert_eq!(instant(&stop["start"]), instant(&json!(tomorrow_at(9, 0))));
    // A v1 job for the same technician, 09:00–10:30: clear of the visit where it is now.
    let job = s
        .mutate(
            "job/v1/create",
            json!({ "customerId": f.customer["id"], "propertyId": places[1]["id"], "trade": "plumbing",
                    "priority": "routine", "summary": "Booked since" }),
        )
        .await;
    s.mutate(
        "job/v1/schedule",
        json!({ "jobId": job["id"], "windowStart": tomorrow_at(9, 0), "windowEnd": tomorrow_at(10, 30) }),
    )
    .await;
    s.mutate(
        "dispatch/v1/assignTech",
        json!({ "jobId": job["id"], "technicianId": f.tech["id"] }),
    )
    .await;
    let refused = s
        .call(
            "dispatch/v1/applyPlan",
            json!({ "idempotencyKey": key(), "planId": plan["planId"] }),
        )
        .await;
    refused.assert_error(422, "TECHNICIAN_INELIGIBLE");
    assert!(refused.json.to_string().contains("APPOINTMENT_OVERLAP"));
    let now = s
        .call("job/v2/get", json!({ "jobId": v["jobId"] }))
        .await
        .ok();
    assert_eq!(
        instant(&now["appointments"][0]["plannedStart"]),
        instant(&json!(tomorrow_at(12, 0))),
        "nothing was applied"
    );
}

/// A visit with a lead at a property without coordinates cannot be routed: the plan keeps it on
/// its technician's day (and works around it) instead of leaving it out and taking it off them.
async fn a_led_visit_without_coordinates_keeps_its_technician(s: TestServer) {
    let f = s.fixture().await;
    let v = visit(
        &s,
        &f,
        &f.property,
        "plumbing",
        1,
        &[],
        (9, 13),
        60,
        json!({ "leadTechnicianId": f.tech["id"], "plannedStart": tomorrow_at(10, 0) }),
    )
    .await;
    let plan = optimize(
        &s,
        json!({ "date": tomorrow(), "technicianIds": [f.tech["id"]], "timeBudgetMs": 200 }),
    )
    .await;
    assert!(plan["unplanned"].as_array().unwrap().is_empty(), "{plan}");
    let kept = plan["routes"][0]["stops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|st| st["jobId"] == v["jobId"])
        .unwrap_or_else(|| panic!("the visit stays on the route: {plan}"))
        .clone();
    assert_eq!(kept["appointmentId"], Value::Null);
    assert_eq!(instant(&kept["start"]), instant(&json!(tomorrow_at(10, 0))));
    s.mutate("dispatch/v1/applyPlan", json!({ "planId": plan["planId"] }))
        .await;
    let now = s
        .call("job/v2/get", json!({ "jobId": v["jobId"] }))
        .await
        .ok();
    assert_eq!(now["appointments"][0]["leadTechnicianId"], f.tech["id"]);
    // It cannot be placed either, and says why.
    let placed = s
        .call(
            "dispatch/v1/placeVisit",
            json!({ "appointmentId": v["id"] }),
        )
        .await
        .ok();
    assert_eq!(placed["reasons"], json!(["LOCATION_UNKNOWN"]));
    // Pinning it is refused by name.
    s.call(
        "dispatch/v1/optimize",
        json!({ "idempotencyKey": key(), "date": tomorrow(),
                "pins": { v["id"].as_str().unwrap(): f.tech["id"] } }),
    )
    .await
    .assert_error(409, "APPOINTMENT_NOT_PLANNABLE");
}
