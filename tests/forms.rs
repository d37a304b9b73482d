//! Forms over HTTP, on SQLite and on PostgreSQL: versioned checklist templates defined by the
//! office, answered in the field against the version the device showed, and required before a
//! job is completed, with every missing answer listed.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Value, json};

use hestami::core::org::Role;
use support::{Tenant, TestServer, key};

both!(
    a_required_checklist_holds_completion_until_every_answer_is_in,
    templates_are_versioned_and_answers_are_checked_against_the_version_shown,
);

fn hours_from_now(a: i64, b: i64) -> (String, String) {
    let now = chrono::Utc::now();
    (
        (now + chrono::Duration::hours(a)).to_rfc3339(),
        (now + chrono::Duration::hours(b)).to_rfc3339(),
    )
}

fn questions() -> Value {
    json!([
        { "key": "vent_ok", "label": "Venting checked", "type": "yes_no", "required": true },
        { "key": "gas_pressure", "label": "Gas pressure", "type": "number", "unit": "psi",
          "min": "0", "max": "150", "required": true },
        { "key": "fuel", "label": "Fuel", "type": "choice", "options": ["gas", "electric"],
          "required": true },
        { "key": "photo", "label": "Photo of the install", "type": "photo" },
        { "key": "remarks", "label": "Remarks", "type": "text" }
    ])
}

async fn define(s: &TestServer, body: Value) -> Value {
    s.mutate("form/v1/defineTemplate", body).await
}

/// A job with one visit led by `lead`, dispatched.
async fn visit(s: &TestServer, f: &support::Fixture, trade: &str) -> (Value, Value) {
    let j = s
        .mutate(
            "job/v1/create",
            json!({ "customerId": f.customer["id"], "propertyId": f.property["id"],
                    "trade": trade, "priority": "routine", "summary": "Install a water heater" }),
        )
        .await;
    let w = hours_from_now(1, 3);
    let schedule = s
        .mutate(
            "job/v2/addAppointment",
            json!({ "jobId": j["id"], "windowStart": w.0, "windowEnd": w.1,
                    "leadTechnicianId": f.tech["id"] }),
        )
        .await;
    let v = schedule["appointments"][0].clone();
    s.mutate(
        "job/v2/moveAppointment",
        json!({ "appointmentId": v["id"], "action": "dispatch" }),
    )
    .await;
    (j, v)
}

async fn a_required_checklist_holds_completion_until_every_answer_is_in(s: TestServer) {
    let f = s.fixture().await;

    // Refusals name every bad field at once, and leave the key for the corrected request.
    let idem = key();
    let mut bad = questions();
    bad[1]["min"] = json!("200");
    bad[2]["multiple"] = json!(true);
    bad[0]["options"] = json!(["x"]);
    bad[4]["key"] = json!("vent_ok");
    let refused = s
        .call(
            "form/v1/defineTemplate",
            json!({ "idempotencyKey": idem, "name": "Water heater install", "trade": "plumbing",
                    "requiredBeforeCompletion": true, "questions": bad }),
        )
        .await;
    refused.assert_error(400, "VALIDATION_FAILED");
    let mut fields: Vec<String> = refused.json["field_errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "questions[0].options",
            "questions[1].max",
            "questions[4].key"
        ],
        "{refused:?}"
    );
    let template = s
        .call(
            "form/v1/defineTemplate",
            json!({ "idempotencyKey": idem, "name": "Water heater install", "trade": "plumbing",
                    "requiredBeforeCompletion": true, "questions": questions() }),
        )
        .await
        .ok();
    assert_eq!(template["version"], 1);
    assert_eq!(template["questions"][1]["unit"], "psi");

    let me = Tenant {
        token: s.member(&s.a, "grace@example.com", Role::Technician).await,
        ..s.a.clone()
    };
    s.link(&me, &f.tech).await;
    let (j, v) = visit(&s, &f, "plumbing").await;
    for action in ["start_travel", "arrive", "finish"] {
        s.call_as(
            &me,
            "job/v2/moveAppointment",
            json!({ "idempotencyKey": key(), "appointmentId": v["id"], "action": action }),
        )
        .await
        .ok();
    }
    let complete = || json!({ "idempotencyKey": key(), "jobId": j["id"] });

    // Nothing answered: completion lists every required question.
    let held = s.call_as(&me, "job/v2/complete", complete()).await;
    held.assert_error(422, "FORMS_INCOMPLETE");
    let missing = |reply: &support::Reply| -> Vec<String> {
        reply.json["error"]["details"]["forms"][0]["missing"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["key"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(missing(&held), ["vent_ok", "gas_pressure", "fuel"]);
    assert_eq!(
        held.json["error"]["details"]["forms"][0]["name"],
        "Water heater install"
    );

    // A wrong answer is a 400 naming it; corrected, the same key goes through.
    let idem = key();
    let answer = |answers: Value, idem: &str| {
        json!({ "idempotencyKey": idem, "jobId": j["id"], "appointmentId": v["id"],
                "templateId": template["id"], "templateVersion": 1, "answers": answers,
                "device": { "deviceTime": "2026-12-01T16:00:00Z" } })
    };
    let wrong = s
        .call_as(
            &me,
            "form/v1/answer",
            answer(
                json!([{ "key": "gas_pressure", "value": "151" }, { "key": "fuel", "value": "oil" },
                       { "key": "nope", "value": true }]),
                &idem,
            ),
        )
        .await;
    wrong.assert_error(400, "VALIDATION_FAILED");
    let problems: Vec<(String, String)> = wrong.json["field_errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap().to_owned(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        problems,
        [
            ("answers[0].value".into(), "out_of_range".into()),
            ("answers[1].value".into(), "unknown_option".into()),
            ("answers[2].key".into(), "unknown_question".into()),
        ]
    );
    let form = s
        .call_as(
            &me,
            "form/v1/answer",
            answer(
                json!([{ "key": "gas_pressure", "value": 12.5 }, { "key": "fuel", "value": "gas" }]),
                &idem,
            ),
        )
        .await
        .ok();
    assert_eq!(form["missing"], json!(["vent_ok"]));
    assert_eq!(form["answers"][1]["value"], "12.5");
    assert_eq!(form["answers"][1]["deviceTime"], "2026-12-01T16:00:00Z");
    let held = s.call_as(&me, "job/v2/complete", complete()).await;
    held.assert_error(422, "FORMS_INCOMPLETE");
    assert_eq!(missing(&held), ["vent_ok"]);

    // A photo answer must be an image uploaded to the organization.
    let photo = b"\x89PNG\r\n\x1a\n the new heater".to_vec();
    let sha = support::sha(&photo);
    s.call_as(
        &me,
        "form/v1/answer",
        answer(json!([{ "key": "photo", "value": sha }]), &key()),
    )
    .await
    .assert_error(404, "BLOB_NOT_FOUND");
    assert_eq!(s.put_blob(&me, &sha, photo).await.status.as_u16(), 201);
    // The last answers; a question answered again supersedes the earlier answer.
    s.call_as(
        &me,
        "form/v1/answer",
        answer(
            json!([{ "key": "photo", "value": sha }, { "key": "vent_ok", "value": true },
                   { "key": "gas_pressure", "value": "14" }]),
            &key(),
        ),
    )
    .await
    .ok();
    let on_job = s
        .call_as(&me, "form/v1/ofJob", json!({ "jobId": j["id"] }))
        .await
        .ok();
    let answers = &on_job["forms"][0]["answers"];
    assert_eq!(answers.as_array().unwrap().len(), 4, "{on_job}");
    let pressure = answers
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == "gas_pressure")
        .unwrap();
    assert_eq!(pressure["value"], "14");
    assert_eq!(on_job["forms"][0]["missing"], json!([]));
    let done = s.call_as(&me, "job/v2/complete", complete()).await.ok();
    assert_eq!(done["job"]["status"], "completed");

    // The same gate holds on the v1 path (at a property whose access notes the day shows).
    let address = json!({ "line1": "9 Side St", "city": "Chicago", "region": "IL",
                          "postalCode": "60601", "country": "US" });
    let blank = s
        .call(
            "customer/v1/addProperty",
            json!({ "idempotencyKey": key(), "customerId": f.customer["id"], "address": address,
                    "accessNotes": "  " }),
        )
        .await;
    blank.assert_error(400, "VALIDATION_FAILED");
    assert_eq!(blank.json["field_errors"][0]["field"], "accessNotes");
    let gated = s
        .mutate(
            "customer/v1/addProperty",
            json!({ "customerId": f.customer["id"], "address": address,
                    "accessNotes": "Gate code 4412; the dog is friendly" }),
        )
        .await;
    assert_eq!(gated["accessNotes"], "Gate code 4412; the dog is friendly");
    let v1 = s
        .mutate(
            "job/v1/create",
            json!({ "customerId": f.customer["id"], "propertyId": gated["id"],
                    "trade": "plumbing", "priority": "routine", "summary": "Second heater" }),
        )
        .await;
    let w = hours_from_now(1, 2);
    s.mutate(
        "job/v1/schedule",
        json!({ "jobId": v1["id"], "windowStart": w.0, "windowEnd": w.1 }),
    )
    .await;
    s.mutate(
        "dispatch/v1/assignTech",
        json!({ "jobId": v1["id"], "technicianId": f.tech["id"] }),
    )
    .await;
    for status in ["dispatched", "en_route", "on_site", "in_progress"] {
        s.mutate(
            "job/v1/updateStatus",
            json!({ "jobId": v1["id"], "status": status }),
        )
        .await;
    }
    let held = s
        .call(
            "job/v1/updateStatus",
            json!({ "idempotencyKey": key(), "jobId": v1["id"], "status": "completed" }),
        )
        .await;
    held.assert_error(422, "FORMS_INCOMPLETE");
    assert_eq!(missing(&held), ["vent_ok", "gas_pressure", "fuel"]);

    // The technician's day lists the form to fill.
    let start = chrono::DateTime::parse_from_rfc3339(&w.0).unwrap();
    let date = start
        .with_timezone(&chrono_tz::America::Chicago)
        .date_naive()
        .to_string();
    let day = s
        .call_as(&me, "technician/v1/myDay", json!({ "date": date }))
        .await
        .ok();
    let with_forms = day["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["jobId"] == v1["id"])
        .unwrap();
    assert_eq!(with_forms["forms"][0]["template"]["id"], template["id"]);
    assert_eq!(
        with_forms["property"]["accessNotes"],
        "Gate code 4412; the dog is friendly"
    );
    assert_eq!(
        with_forms["forms"][0]["missing"].as_array().unwrap().len(),
        3
    );
}

async fn templates_are_versioned_and_answers_are_checked_against_the_version_shown(s: TestServer) {
    let f = s.fixture().await;
    let v1 = define(
        &s,
        json!({ "name": "Water heater install", "trade": "plumbing",
                "requiredBeforeCompletion": true, "questions": questions() }),
    )
    .await;
    let hvac = define(
        &s,
        json!({ "name": "Furnace tune-up", "trade": "hvac", "requiredBeforeCompletion": true,
                "questions": [{ "key": "filter", "label": "Filter changed", "type": "yes_no", "required": true }] }),
    )
    .await;
    let (j, v) = visit(&s, &f, "plumbing").await;

    // Version 2 adds a question; the device still showing version 1 answers version 1.
    let mut more = questions();
    more.as_array_mut().unwrap().push(
        json!({ "key": "co_ppm", "label": "CO reading", "type": "number", "unit": "ppm", "min": "0", "required": true }),
    );
    let stale = s
        .call(
            "form/v1/defineTemplate",
            json!({ "idempotencyKey": key(), "templateId": v1["id"], "expectedVersion": 2,
                    "name": "Water heater install", "trade": "plumbing",
                    "requiredBeforeCompletion": true, "questions": more }),
        )
        .await;
    stale.assert_error(409, "VERSION_CONFLICT");
    let v2 = define(
        &s,
        json!({ "templateId": v1["id"], "expectedVersion": 1, "name": "Water heater install",
                "trade": "plumbing", "requiredBeforeCompletion": true, "questions": more }),
    )
    .await;
    assert_eq!(
        (v2["id"].clone(), v2["version"].clone()),
        (v1["id"].clone(), json!(2))
    );
    let listed = s
        .call("form/v1/templates", json!({ "trade": "plumbing" }))
        .await
        .ok();
    let names: Vec<(String, i64)> = listed["templates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_owned(),
                t["version"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(names, [("Water heater install".to_owned(), 2)]);
    let before = s
        .call("form/v1/ofJob", json!({ "jobId": j["id"] }))
        .await
        .ok();
    assert_eq!(before["forms"][0]["template"]["version"], 2);
    assert_eq!(before["forms"][0]["missing"].as_array().unwrap().len(), 4);

    let on_v1 = s
        .mutate(
            "form/v1/answer",
            json!({ "jobId": j["id"], "appointmentId": v["id"], "templateId": v1["id"],
                    "templateVersion": 1,
                    "answers": [{ "key": "vent_ok", "value": false }, { "key": "gas_pressure", "value": "7" },
                                { "key": "fuel", "value": "electric" }] }),
        )
        .await;
    assert_eq!(on_v1["template"]["version"], 1);
    assert_eq!(on_v1["missing"], json!([]));
    // v2's new question is not v1's: answering it against version 1 is refused.
    let unknown = s
        .call(
            "form/v1/answer",
            json!({ "idempotencyKey": key(), "jobId": j["id"], "templateId": v1["id"],
                    "templateVersion": 1, "answers": [{ "key": "co_ppm", "value": 3 }] }),
        )
        .await;
    unknown.assert_error(400, "VALIDATION_FAILED");
    assert_eq!(unknown.json["field_errors"][0]["code"], "unknown_question");
    s.call(
        "form/v1/answer",
        json!({ "idempotencyKey": key(), "jobId": j["id"], "templateId": v1["id"],
                "templateVersion": 9, "answers": [{ "key": "vent_ok", "value": true }] }),
    )
    .await
    .assert_error(404, "FORM_TEMPLATE_NOT_FOUND");
    // Another trade's form is not this job's.
    s.call(
        "form/v1/answer",
        json!({ "idempotencyKey": key(), "jobId": j["id"], "templateId": hvac["id"],
                "templateVersion": 1, "answers": [{ "key": "filter", "value": true }] }),
    )
    .await
    .assert_error(422, "FORM_NOT_FOR_JOB");

    // Another organization: neither the template nor the job exists there.
    let b = s.new_tenant("Org B", "owner-b@example.com").await;
    s.call_as(
        &b,
        "form/v1/answer",
        json!({ "idempotencyKey": key(), "jobId": j["id"], "templateId": v1["id"],
                "templateVersion": 1, "answers": [{ "key": "vent_ok", "value": true }] }),
    )
    .await
    .assert_error(404, "FORM_TEMPLATE_NOT_FOUND");
    s.call_as(&b, "form/v1/ofJob", json!({ "jobId": j["id"] }))
        .await
        .assert_error(404, "NOT_FOUND");
    let theirs = s.call_as(&b, "form/v1/templates", json!({})).await.ok();
    assert_eq!(theirs["templates"], json!([]));

    // A technician answers only on their own jobs, and may not define templates.
    let other = Tenant {
        token: s.member(&s.a, "linus@example.com", Role::Technician).await,
        ..s.a.clone()
    };
    let linus = s
        .mutate(
            "technician/v1/create",
            json!({ "name": "Linus", "trades": ["plumbing"] }),
        )
        .await;
    s.link(&other, &linus).await;
    s.call_as(
        &other,
        "form/v1/answer",
        json!({ "idempotencyKey": key(), "jobId": j["id"], "templateId": v1["id"],
                "templateVersion": 1, "answers": [{ "key": "vent_ok", "value": true }] }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    s.call_as(&other, "form/v1/ofJob", json!({ "jobId": j["id"] }))
        .await
        .assert_error(404, "NOT_FOUND");
    s.call_as(
        &other,
        "form/v1/defineTemplate",
        json!({ "idempotencyKey": key(), "name": "Mine", "questions": questions() }),
    )
    .await
    .assert_error(403, "FORBIDDEN");
}
