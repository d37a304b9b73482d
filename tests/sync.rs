//! Offline sync over HTTP, on SQLite and on PostgreSQL: a technician's device takes a first
//! snapshot of its work, then pulls what changed: current states, tombstones for what left its
//! scope, nothing about others' work; a repeated pull gives the same answer.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Value, json};

use hestami::core::org::Role;
use support::{Tenant, TestServer, key, sha};

both!(
    a_device_pulls_a_snapshot_then_changes_and_tombstones_within_its_scope,
    an_offline_day_pushed_later_gets_an_outcome_for_every_edit_and_loses_none,
);

fn hours_from_now(a: i64, b: i64) -> (String, String) {
    let now = chrono::Utc::now();
    (
        (now + chrono::Duration::hours(a)).to_rfc3339(),
        (now + chrono::Duration::hours(b)).to_rfc3339(),
    )
}

async fn visit(s: &TestServer, f: &support::Fixture, lead: &Value, hours: i64) -> (Value, Value) {
    let j = s
        .mutate(
            "job/v1/create",
            json!({ "customerId": f.customer["id"], "propertyId": f.property["id"],
                    "trade": "plumbing", "priority": "routine", "summary": "Fix the tap" }),
        )
        .await;
    let w = hours_from_now(hours, hours + 1);
    let schedule = s
        .mutate(
            "job/v2/addAppointment",
            json!({ "jobId": j["id"], "windowStart": w.0, "windowEnd": w.1,
                    "leadTechnicianId": lead["id"] }),
        )
        .await;
    (j, schedule["appointments"][0].clone())
}

/// `(kind, id)` of every change of a page, sorted.
fn kinds(page: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = page["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let kind = c["kind"].as_str().unwrap().to_owned();
            let id = match kind.as_str() {
                "job" => c["data"]["job"]["id"].clone(),
                _ => c["data"]["id"].clone(),
            };
            (kind, id.as_str().unwrap().to_owned())
        })
        .collect();
    out.sort();
    out
}

async fn pull(s: &TestServer, me: &Tenant, device: &str, since: Option<&Value>) -> Value {
    let mut body = json!({ "deviceId": device, "limit": 1 });
    if let Some(since) = since {
        body["since"] = since.clone();
    }
    s.call_as(me, "sync/v1/pull", body).await.ok()
}

/// Pulls until `more` is false; returns every page's changes and removals, and the last cursor.
async fn pull_all(
    s: &TestServer,
    me: &Tenant,
    device: &str,
    since: Option<&Value>,
) -> (Vec<(String, String)>, Vec<Value>, Value) {
    let mut since = since.cloned();
    let (mut changes, mut removed) = (Vec::new(), Vec::new());
    for _ in 0..50 {
        let page = pull(s, me, device, since.as_ref()).await;
        changes.extend(kinds(&page));
        removed.extend(page["removed"].as_array().unwrap().iter().cloned());
        since = Some(page["cursor"].clone());
        if page["more"] == false {
            changes.sort();
            changes.dedup();
            return (changes, removed, page["cursor"].clone());
        }
    }
    panic!("the sync never caught up");
}

async fn a_device_pulls_a_snapshot_then_changes_and_tombstones_within_its_scope(s: TestServer) {
    let f = s.fixture().await;
    let ana = f.tech.clone();
    let bob = s
        .mutate(
            "technician/v1/create",
            json!({ "name": "Bob", "trades": ["plumbing"] }),
        )
        .await;
    let bob = s.around_the_clock(&bob).await;
    let token = s.member(&s.a, "ana@a.example", Role::Technician).await;
    let me = Tenant {
        token,
        ..s.a.clone()
    };
    s.link(&me, &ana).await;
    let (kept, _) = visit(&s, &f, &ana, 2).await;
    let (moved, moved_visit) = visit(&s, &f, &ana, 4).await;
    let (others, _) = visit(&s, &f, &bob, 8).await;
    s.mutate(
        "job/v2/addNote",
        json!({ "jobId": kept["id"], "body": "Gate code 4412" }),
    )
    .await;

    // First sync, one job a page: her technician record, her two jobs with their customer,
    // property and note; nothing of Bob's job.
    let device = key();
    let (first, removed, cursor) = pull_all(&s, &me, &device, None).await;
    assert!(removed.is_empty());
    let kinds_of = |changes: &[(String, String)], kind: &str| -> Vec<String> {
        changes
            .iter()
            .filter(|(k, _)| k == kind)
            .map(|(_, id)| id.clone())
            .collect()
    };
    let mut mine = vec![
        kept["id"].as_str().unwrap().to_owned(),
        moved["id"].as_str().unwrap().to_owned(),
    ];
    mine.sort();
    assert_eq!(kinds_of(&first, "job"), mine, "{first:?}");
    assert_eq!(
        kinds_of(&first, "technician"),
        vec![ana["id"].as_str().unwrap()]
    );
    assert_eq!(
        kinds_of(&first, "customer"),
        vec![f.customer["id"].as_str().unwrap()]
    );
    assert_eq!(
        kinds_of(&first, "property"),
        vec![f.property["id"].as_str().unwrap()]
    );
    assert_eq!(kinds_of(&first, "note").len(), 1);
    assert!(
        !first
            .iter()
            .any(|(_, id)| id == others["id"].as_str().unwrap())
    );
    // Caught up: nothing more.
    let idle = pull(&s, &me, &device, Some(&cursor)).await;
    assert_eq!(idle["changes"], json!([]));
    assert_eq!(idle["more"], false);

    // While she is offline: the office hands one of her visits to Bob, adds a note to the other,
    // and gives Bob more work.
    s.mutate(
        "job/v2/assignTechnician",
        json!({ "appointmentId": moved_visit["id"], "technicianId": bob["id"], "role": "lead" }),
    )
    .await;
    let note = s
        .mutate(
            "job/v2/addNote",
            json!({ "jobId": kept["id"], "body": "Bring the long wrench" }),
        )
        .await;
    visit(&s, &f, &bob, 11).await;
    let (changes, removed, after) = pull_all(&s, &me, &device, Some(&cursor)).await;
    assert!(
        changes.contains(&("note".into(), note["id"].as_str().unwrap().into())),
        "{changes:?}"
    );
    assert_eq!(
        kinds_of(&changes, "job"),
        vec![kept["id"].as_str().unwrap().to_owned()],
        "{changes:?}"
    );
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!(removed[0]["kind"], "job");
    assert_eq!(removed[0]["id"], moved["id"]);
    assert_eq!(removed[0]["reason"], "out_of_scope");
    // The customer is still hers (the other job), so it stays.
    // A pull from the old cursor again (its answer was lost) is the same answer.
    let (again, removed_again, _) = pull_all(&s, &me, &device, Some(&cursor)).await;
    assert_eq!(again, changes);
    assert_eq!(removed_again, removed);
    let idle = pull(&s, &me, &device, Some(&after)).await;
    assert_eq!(idle["changes"], json!([]));
    assert_eq!(idle["removed"], json!([]));

    // Another device of hers starts from nothing; a cursor the server did not write is a field
    // error; another organization sees none of it.
    let (fresh, _, _) = pull_all(&s, &me, &key(), None).await;
    assert_eq!(
        kinds_of(&fresh, "job"),
        vec![kept["id"].as_str().unwrap().to_owned()]
    );
    let bad = s
        .call_as(
            &me,
            "sync/v1/pull",
            json!({ "deviceId": device, "since": "feed.x" }),
        )
        .await;
    bad.assert_error(400, "VALIDATION_FAILED");
    assert_eq!(bad.json["field_errors"][0]["field"], "since");
    let b = s.new_tenant("Org B", "owner-b@example.com").await;
    let theirs = s
        .call_as(&b, "sync/v1/pull", json!({ "deviceId": device }))
        .await
        .ok();
    assert!(kinds(&theirs).is_empty(), "{theirs}");
}

async fn put_blob(s: &TestServer, who: &Tenant, bytes: &[u8]) -> support::Reply {
    s.put_blob(who, &sha(bytes), bytes.to_vec()).await
}

/// One queued call.
fn item(procedure: &str, mut input: Value, depends_on: &[usize]) -> Value {
    input["idempotencyKey"] = json!(key());
    json!({ "procedure": procedure, "input": input, "dependsOn": depends_on })
}

async fn an_offline_day_pushed_later_gets_an_outcome_for_every_edit_and_loses_none(s: TestServer) {
    let f = s.fixture().await;
    let ana = f.tech.clone();
    let bob = s
        .mutate(
            "technician/v1/create",
            json!({ "name": "Bob", "trades": ["plumbing"] }),
        )
        .await;
    let bob = s.around_the_clock(&bob).await;
    let token = s.member(&s.a, "ana@a.example", Role::Technician).await;
    let me = Tenant {
        token,
        ..s.a.clone()
    };
    s.link(&me, &ana).await;
    let (rescheduled, first) = visit(&s, &f, &ana, 1).await;
    let (reassigned, second) = visit(&s, &f, &ana, 4).await;
    for v in [&first, &second] {
        s.mutate(
            "job/v2/moveAppointment",
            json!({ "appointmentId": v["id"], "action": "dispatch" }),
        )
        .await;
    }
    let device = key();
    let (_, _, cursor) = pull_all(&s, &me, &device, None).await;
    let checklist = s
        .mutate(
            "form/v1/defineTemplate",
            json!({ "name": "Leak repair", "trade": "plumbing", "requiredBeforeCompletion": true,
                    "questions": [{ "key": "leak_fixed", "label": "No more leak", "type": "yes_no",
                                    "required": true }] }),
        )
        .await;
    let photo = b"\x89PNG\r\n\x1a\n the new cartridge".to_vec();
    let ink = b"\x89PNG\r\n\x1a\n A. Lovelace".to_vec();

    // Offline all afternoon: the device queues its day.
    let at = |minutes: i64| (chrono::Utc::now() - chrono::Duration::minutes(minutes)).to_rfc3339();
    let fix = json!({ "lat": 41.88, "lon": -87.63, "accuracyM": 12 });
    let queued = vec![
        /* 0 */
        item(
            "job/v2/moveAppointment",
            json!({ "appointmentId": first["id"], "action": "start_travel",
                    "device": { "deviceTime": at(240), "location": fix } }),
            &[],
        ),
        /* 1 */
        item(
            "job/v2/moveAppointment",
            json!({ "appointmentId": first["id"], "action": "arrive",
                    "device": { "deviceTime": at(220), "location": fix } }),
            &[0],
        ),
        /* 2 */
        item(
            "job/v2/addNote",
            json!({ "jobId": rescheduled["id"], "appointmentId": first["id"],
                    "body": "Replaced the cartridge", "device": { "deviceTime": at(200) } }),
            &[],
        ),
        /* 3 */
        item(
            "job/v2/moveAppointment",
            json!({ "appointmentId": first["id"], "action": "finish",
                    "device": { "deviceTime": at(180) } }),
            &[1],
        ),
        /* 4 */
        item(
            "technician/v1/reportLocation",
            json!({ "technicianId": ana["id"], "deviceTime": at(170), "location": fix }),
            &[],
        ),
        /* 5: the office gave this visit to Bob meanwhile */
        item(
            "job/v2/moveAppointment",
            json!({ "appointmentId": second["id"], "action": "start_travel",
                    "device": { "deviceTime": at(160) } }),
            &[],
        ),
        /* 6 */
        item(
            "job/v2/moveAppointment",
            json!({ "appointmentId": second["id"], "action": "arrive",
                    "device": { "deviceTime": at(140) } }),
            &[5],
        ),
        /* 7 */
        item(
            "job/v2/addNote",
            json!({ "jobId": reassigned["id"], "body": "Nobody home" }),
            &[],
        ),
        /* 8: the technician role may not do this */
        item(
            "technician/v1/create",
            json!({ "name": "Eve", "trades": ["plumbing"] }),
            &[],
        ),
        /* 9: not a mutation */
        item("job/v2/get", json!({ "jobId": rescheduled["id"] }), &[]),
        /* 10: malformed */
        item(
            "job/v2/addNote",
            json!({ "jobId": rescheduled["id"], "body": "x", "unknownField": 1 }),
            &[],
        ),
        /* 11: checked against a version the visit has long left */
        item(
            "job/v2/moveAppointment",
            json!({ "appointmentId": first["id"], "action": "recall", "expectedVersion": 1 }),
            &[],
        ),
        /* 12: a photo of the work (its bytes uploaded when the device came back online) */
        item(
            "attachment/v1/attach",
            json!({ "sha256": sha(&photo), "attachedTo": "appointment", "subjectId": first["id"],
                    "kind": "photo", "caption": "New cartridge",
                    "device": { "deviceTime": at(185), "location": fix } }),
            &[],
        ),
        /* 13: the checklist the job needs before completion */
        item(
            "form/v1/answer",
            json!({ "jobId": rescheduled["id"], "appointmentId": first["id"],
                    "templateId": checklist["id"], "templateVersion": 1,
                    "answers": [{ "key": "leak_fixed", "value": true }],
                    "device": { "deviceTime": at(182) } }),
            &[],
        ),
        /* 14: the customer signs; the job is complete */
        item(
            "job/v2/complete",
            json!({ "jobId": rescheduled["id"],
                    "signature": { "sha256": sha(&ink), "signedBy": "Ada Lovelace",
                                   "device": { "deviceTime": at(178), "location": fix } } }),
            &[3, 13],
        ),
    ];
    // Meanwhile at the office: the first visit's window moves later; the second goes to Bob.
    // (A dispatched visit is recalled, moved, and dispatched again.)
    let later = hours_from_now(2, 3);
    s.mutate(
        "job/v2/moveAppointment",
        json!({ "appointmentId": first["id"], "action": "recall" }),
    )
    .await;
    s.mutate(
        "job/v2/rescheduleAppointment",
        json!({ "appointmentId": first["id"], "windowStart": later.0, "windowEnd": later.1 }),
    )
    .await;
    s.mutate(
        "job/v2/moveAppointment",
        json!({ "appointmentId": first["id"], "action": "dispatch" }),
    )
    .await;
    s.mutate(
        "job/v2/assignTechnician",
        json!({ "appointmentId": second["id"], "technicianId": bob["id"], "role": "lead" }),
    )
    .await;

    // Back online: the photo and the signature go up first (idempotent by their bytes), then
    // the queued calls.
    for bytes in [&photo, &ink] {
        let uploaded = put_blob(&s, &me, bytes).await;
        assert_eq!(uploaded.status.as_u16(), 201, "{uploaded:?}");
    }
    let body = json!({ "deviceId": device, "items": queued });
    let pushed = s.call_as(&me, "sync/v1/push", body.clone()).await.ok();
    let outcomes = pushed["outcomes"].as_array().unwrap().clone();
    assert_eq!(outcomes.len(), 15, "{pushed}");
    let status = |n: usize| outcomes[n]["status"].as_str().unwrap().to_owned();
    let code = |n: usize| {
        outcomes[n]["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    // Her own visit: every move applies in order, with the device's times; the photo and the
    // signed completion too.
    for n in [0, 1, 2, 3, 4, 12, 13, 14] {
        assert_eq!(status(n), "done", "{n}: {}", outcomes[n]);
    }
    // The reassigned visit: a clear conflict, the move that needed it skipped, the note too.
    assert_eq!(
        (status(5), code(5)),
        ("conflict".into(), "NO_LONGER_ASSIGNED".into())
    );
    assert_eq!(
        (status(6), code(6)),
        ("skipped".into(), "DEPENDENCY_NOT_DONE".into())
    );
    assert_eq!(outcomes[6]["error"]["details"]["dependsOn"], 5);
    assert_eq!(
        (status(7), code(7)),
        ("conflict".into(), "NO_LONGER_ASSIGNED".into())
    );
    assert_eq!((status(8), code(8)), ("refused".into(), "FORBIDDEN".into()));
    assert_eq!(
        (status(9), code(9)),
        ("refused".into(), "UNKNOWN_PROCEDURE".into())
    );
    assert_eq!(
        (status(10), code(10)),
        ("refused".into(), "VALIDATION_FAILED".into())
    );
    assert_eq!(outcomes[10]["fieldErrors"][0]["field"], "unknownField");
    assert_eq!(
        (status(11), code(11)),
        ("conflict".into(), "VERSION_CONFLICT".into())
    );
    assert!(
        outcomes[11]["error"]["details"].is_object(),
        "{}",
        outcomes[11]
    );

    // The answer was lost; the device pushes the same batch again: the same outcomes, and
    // nothing applied twice.
    for bytes in [&photo, &ink] {
        assert_eq!(put_blob(&s, &me, bytes).await.status.as_u16(), 200);
    }
    let again = s.call_as(&me, "sync/v1/push", body).await.ok();
    for n in 0..15 {
        assert_eq!(again["outcomes"][n]["status"], outcomes[n]["status"], "{n}");
        assert_eq!(again["outcomes"][n]["result"], outcomes[n]["result"], "{n}");
    }
    let notes = s
        .call("job/v2/notes", json!({ "jobId": rescheduled["id"] }))
        .await
        .ok();
    assert_eq!(notes["notes"].as_array().unwrap().len(), 1);
    let on_visit = s
        .call(
            "attachment/v1/list",
            json!({ "attachedTo": "appointment", "subjectId": first["id"] }),
        )
        .await
        .ok();
    assert_eq!(
        on_visit["attachments"].as_array().unwrap().len(),
        1,
        "{on_visit}"
    );
    assert_eq!(on_visit["attachments"][0]["caption"], "New cartridge");
    let on_job = s
        .call(
            "attachment/v1/list",
            json!({ "attachedTo": "job", "subjectId": rescheduled["id"] }),
        )
        .await
        .ok();
    assert_eq!(
        on_job["attachments"].as_array().unwrap().len(),
        1,
        "{on_job}"
    );
    assert_eq!(on_job["attachments"][0]["kind"], "signature");
    let done = s
        .call("job/v2/get", json!({ "jobId": rescheduled["id"] }))
        .await
        .ok();
    assert_eq!(done["job"]["status"], "completed");
    let timeline = s
        .call("job/v2/timeline", json!({ "jobId": rescheduled["id"] }))
        .await
        .ok();
    let field_moves = timeline["scheduleEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["deviceTime"].is_string())
        .count();
    assert_eq!(field_moves, 3, "{timeline}");
    let job = s
        .call("job/v2/get", json!({ "jobId": rescheduled["id"] }))
        .await
        .ok();
    assert_eq!(job["appointments"][0]["status"], "done", "{job}");

    // Its next pull drops the reassigned job and brings the finished one.
    let (changes, removed, _) = pull_all(&s, &me, &device, Some(&cursor)).await;
    assert!(changes.contains(&("job".into(), rescheduled["id"].as_str().unwrap().into())));
    for attachment in [&on_visit["attachments"][0], &on_job["attachments"][0]] {
        assert!(
            changes.contains(&(
                "attachment".into(),
                attachment["id"].as_str().unwrap().into()
            )),
            "{changes:?}"
        );
    }
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!(removed[0]["id"], reassigned["id"]);

    // An item that names a later one as its dependency is refused on its own.
    let bad = s
        .call_as(
            &me,
            "sync/v1/push",
            json!({ "deviceId": device, "items": [
                item("job/v2/addNote", json!({ "jobId": rescheduled["id"], "body": "y" }), &[0])
            ] }),
        )
        .await
        .ok();
    assert_eq!(bad["outcomes"][0]["status"], "refused");
    assert_eq!(
        bad["outcomes"][0]["fieldErrors"][0]["field"],
        "items[0].dependsOn"
    );
}
