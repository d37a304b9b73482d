//! End-to-end tests: a real server on a loopback port, on SQLite and on PostgreSQL, driven over
//! HTTP. Each test gets a fresh database.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Value, json};
use std::collections::HashSet;

use hestami::core::org::{OrgKind, Role};
use support::{Reply, TestServer, key};

both!(
    happy_path_to_completed,
    refusals_leave_the_job_unchanged,
    assignment_rules,
    versions_and_expected_version,
    replay_and_key_reuse,
    concurrent_duplicates_run_once,
    another_organization_sees_nothing,
    malformed_requests_get_the_envelope,
    authentication_and_permissions,
    lists_page_with_cursors,
    callbacks_link_a_new_job,
    workflows_are_recorded_with_versioned_names,
    compliance_gates_scheduling,
    eligibility_rules_refuse_with_every_reason,
    onboarding_validation_and_other_organizations,
    workflows_list_in_start_order,
    an_unknown_field_suggests_the_known_one,
    jobs_by_customer_and_property_and_customers_by_phone_and_address,
    jobs_are_corrected_and_their_work_recorded_with_who_and_when,
    properties_are_read_and_corrected,
    members_and_tokens_over_the_api,
    what_an_association_asks_of_vendors_is_recorded,
    an_association_invites_a_vendor_and_neither_reads_the_other,
);

/// `member/v1` and `token/v1`: owners and admins invite, list, change and remove members; only an
/// owner touches the owner role and nobody their own membership; integration tokens show their
/// secret once, act in this organization only, and stop when revoked or when their member goes.
async fn members_and_tokens_over_the_api(s: TestServer) {
    let invite =
        json!({ "idempotencyKey": key(), "email": "Office@Example.com", "role": "office" });
    let invited = s.call("member/v1/invite", invite.clone()).await.ok();
    assert_eq!(
        (
            &invited["member"]["role"],
            &invited["member"]["hasPassword"],
            &invited["invited"]
        ),
        (&json!("office"), &json!(false), &json!(true))
    );
    let code = invited["inviteCode"].as_str().unwrap().to_owned();
    assert!(code.starts_with("hsi_"));
    // The code is shown once: a replay answers the same record without it.
    let replay = s.call("member/v1/invite", invite).await.ok();
    assert_eq!(
        (&replay["member"], &replay["invited"], &replay["inviteCode"]),
        (&invited["member"], &json!(true), &Value::Null)
    );
    // Another organization inviting the same person gets no code: with one, its admin could
    // set the password of an account organization A uses. A's code still works.
    let b = s.new_tenant("Org B", "owner-b@example.com").await;
    let also = s
        .call_as(
            &b,
            "member/v1/invite",
            json!({ "idempotencyKey": key(), "email": "office@example.com", "role": "viewer" }),
        )
        .await
        .ok();
    assert_eq!(
        (&also["invited"], &also["inviteCode"]),
        (&json!(false), &Value::Null)
    );
    s.call(
        "auth/v1/acceptInvite",
        json!({ "inviteCode": code, "password": "correct horse battery" }),
    )
    .await
    .ok();
    s.call(
        "member/v1/invite",
        json!({ "idempotencyKey": key(), "email": "office@example.com", "role": "viewer" }),
    )
    .await
    .assert_error(409, "MEMBER_EXISTS");
    let members = s.call("member/v1/list", json!({})).await.ok();
    let roles: Vec<&str> = members["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["owner", "office"]);
    let office_id = invited["member"]["userId"].clone();

    // An admin manages members but not owners; nobody changes themselves.
    let admin = support::Tenant {
        token: s.member(&s.a, "admin@example.com", Role::Admin).await,
        ..s.a.clone()
    };
    s.call_as(
        &admin,
        "member/v1/invite",
        json!({ "idempotencyKey": key(), "email": "boss@example.com", "role": "owner" }),
    )
    .await
    .assert_error(403, "ROLE_NOT_GRANTABLE");
    s.call_as(
        &admin,
        "member/v1/setRole",
        json!({ "idempotencyKey": key(), "userId": s.a.user, "role": "viewer" }),
    )
    .await
    .assert_error(403, "ROLE_NOT_GRANTABLE");
    s.call(
        "member/v1/setRole",
        json!({ "idempotencyKey": key(), "userId": s.a.user, "role": "admin" }),
    )
    .await
    .assert_error(409, "MEMBER_IS_SELF");
    let changed = s
        .call_as(
            &admin,
            "member/v1/setRole",
            json!({ "idempotencyKey": key(), "userId": office_id, "role": "dispatcher" }),
        )
        .await
        .ok();
    assert_eq!(changed["role"], "dispatcher");

    // An integration token: its secret once, then it works here and nowhere else.
    let body = json!({ "idempotencyKey": key(), "name": "Accounting sync", "expiresInDays": 30 });
    let created = s
        .call("token/v1/createIntegration", body.clone())
        .await
        .ok();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert_eq!(
        (&created["kind"], &created["name"]),
        (&json!("integration"), &json!("Accounting sync"))
    );
    let replay = s.call("token/v1/createIntegration", body).await.ok();
    assert_eq!(
        (&replay["tokenId"], &replay["secret"]),
        (&created["tokenId"], &Value::Null)
    );
    let program = support::Tenant {
        token: secret,
        ..s.a.clone()
    };
    s.call_as(&program, "job/v1/list", json!({})).await.ok();
    let elsewhere = support::Tenant {
        org: b.org.clone(),
        ..program.clone()
    };
    s.call_as(&elsewhere, "job/v1/list", json!({}))
        .await
        .assert_error(403, "NOT_A_MEMBER");
    let tokens = s.call("token/v1/list", json!({})).await.ok();
    assert!(
        tokens["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["tokenId"] == created["tokenId"] && t["kind"] == "integration"),
        "{tokens}"
    );
    // Another member's personal token is theirs to revoke.
    let personal = tokens["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == "personal" && t["email"] == "admin@example.com")
        .unwrap()
        .clone();
    s.call(
        "token/v1/revoke",
        json!({ "idempotencyKey": key(), "tokenId": personal["tokenId"] }),
    )
    .await
    .assert_error(403, "TOKEN_NOT_REVOCABLE");
    let revoked = s
        .call(
            "token/v1/revoke",
            json!({ "idempotencyKey": key(), "tokenId": created["tokenId"] }),
        )
        .await
        .ok();
    assert!(revoked["revokedAt"].is_string());
    s.call_as(&program, "job/v1/list", json!({}))
        .await
        .assert_error(401, "UNAUTHENTICATED");

    // Removing a member ends their access here at once.
    let viewer = support::Tenant {
        token: s.member(&s.a, "viewer@example.com", Role::Viewer).await,
        ..s.a.clone()
    };
    let who = s.call_as(&viewer, "auth/v1/whoami", json!({})).await.ok();
    s.call_as(&viewer, "job/v1/list", json!({})).await.ok();
    s.call_as(&viewer, "member/v1/list", json!({}))
        .await
        .assert_error(403, "FORBIDDEN");
    s.call_as(
        &b,
        "member/v1/remove",
        json!({ "idempotencyKey": key(), "userId": who["user"]["id"] }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    let removed = s
        .call(
            "member/v1/remove",
            json!({ "idempotencyKey": key(), "userId": who["user"]["id"] }),
        )
        .await
        .ok();
    assert_eq!(removed["role"], "viewer");
    s.call_as(&viewer, "job/v1/list", json!({}))
        .await
        .assert_error(403, "NOT_A_MEMBER");

    // A technician invitation from B for someone A invited first: B's code cannot set their
    // password (B's admin holds it); A's can.
    let pending = s
        .mutate(
            "member/v1/invite",
            json!({ "email": "pending@example.com", "role": "dispatcher" }),
        )
        .await;
    let b_tech = s
        .call_as(
            &b,
            "technician/v1/create",
            json!({ "idempotencyKey": key(), "name": "Pat", "trades": ["plumbing"] }),
        )
        .await
        .ok();
    let b_invite = s
        .call_as(
            &b,
            "technician/v1/invite",
            json!({ "idempotencyKey": key(), "technicianId": b_tech["id"],
                    "email": "pending@example.com" }),
        )
        .await
        .ok();
    let taken = s
        .call(
            "auth/v1/acceptInvite",
            json!({ "inviteCode": b_invite["inviteCode"], "password": "mallory's choice" }),
        )
        .await;
    taken.assert_error(401, "INVITE_INVALID");
    s.call(
        "auth/v1/acceptInvite",
        json!({ "inviteCode": pending["inviteCode"], "password": "pat's own choice" }),
    )
    .await
    .ok();

    // Nobody, not even the operator, leaves the organization without an owner.
    let operator = hestami::store::app::Caller {
        user_id: None,
        ..TestServer::caller(&s.a)
    };
    let owner = s.call("auth/v1/whoami", json!({})).await.ok();
    let last = s
        .services
        .member_put(
            &operator,
            hestami::core::text::Email::parse(owner["user"]["email"].as_str().unwrap()).unwrap(),
            Role::Admin,
        )
        .await;
    match last {
        Err(hestami::store::StoreError::Failure(f)) => assert_eq!(f.code, "LAST_OWNER"),
        other => panic!("{other:?}"),
    }
}

/// `customer/v1/getProperty` and `customer/v1/updateProperty`: a new address drops the old
/// coordinates unless new ones come with it; nulls clear; other organizations, viewers and
/// technicians off the customer's jobs get nothing.
async fn properties_are_read_and_corrected(s: TestServer) {
    let f = s.fixture().await;
    let property = s
        .mutate(
            "customer/v1/addProperty",
            json!({ "customerId": f.customer["id"], "accessNotes": "Gate code 1234",
                    "location": { "lat": 41.88, "lon": -87.63 },
                    "address": { "line1": "2 Main St", "city": "Chicago", "region": "IL",
                                 "postalCode": "60601", "country": "US" } }),
        )
        .await;
    let got = s
        .call(
            "customer/v1/getProperty",
            json!({ "propertyId": property["id"] }),
        )
        .await
        .ok();
    assert_eq!(got, property);
    let update = |body: Value| {
        let mut body = body;
        body["idempotencyKey"] = json!(key());
        body["propertyId"] = property["id"].clone();
        body
    };
    let notes_cleared = s
        .call(
            "customer/v1/updateProperty",
            update(json!({ "accessNotes": null, "expectedVersion": 1 })),
        )
        .await
        .ok();
    assert_eq!(
        (
            &notes_cleared["accessNotes"],
            &notes_cleared["location"]["lat"],
            &notes_cleared["version"]
        ),
        (&Value::Null, &json!(41.88), &json!(2))
    );
    let moved = s
        .call(
            "customer/v1/updateProperty",
            update(
                json!({ "address": { "line1": "9 Elm St", "city": "Chicago", "region": "IL",
                                        "postalCode": "60601", "country": "US" } }),
            ),
        )
        .await
        .ok();
    assert_eq!(
        (
            &moved["address"]["line1"],
            &moved["location"],
            &moved["version"]
        ),
        (&json!("9 Elm St"), &Value::Null, &json!(3))
    );
    s.call(
        "customer/v1/updateProperty",
        update(json!({ "expectedVersion": 1 })),
    )
    .await
    .assert_error(409, "VERSION_CONFLICT");
    let bad = s
        .call(
            "customer/v1/updateProperty",
            update(json!({ "location": { "lat": 91, "lon": 0 } })),
        )
        .await;
    bad.assert_error(400, "VALIDATION_FAILED");
    let viewer = support::Tenant {
        token: s.member(&s.a, "viewer@example.com", Role::Viewer).await,
        ..s.a.clone()
    };
    s.call_as(
        &viewer,
        "customer/v1/updateProperty",
        update(json!({ "accessNotes": "x" })),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    let technician = support::Tenant {
        token: s.member(&s.a, "tech@example.com", Role::Technician).await,
        ..s.a.clone()
    };
    s.link(&technician, &f.tech).await;
    s.call_as(
        &technician,
        "customer/v1/getProperty",
        json!({ "propertyId": property["id"] }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    let b = s.new_tenant("Org B", "owner-b@example.com").await;
    s.call_as(
        &b,
        "customer/v1/getProperty",
        json!({ "propertyId": property["id"] }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    s.call_as(
        &b,
        "customer/v1/updateProperty",
        update(json!({ "accessNotes": "x" })),
    )
    .await
    .assert_error(404, "NOT_FOUND");
}

/// `job/v1/update` corrects a job and re-checks what the change affects; `recordActuals`
/// returns the priced lines, records who and when, and is on the timeline.
async fn jobs_are_corrected_and_their_work_recorded_with_who_and_when(s: TestServer) {
    let f = s.fixture().await;
    let job = s.job(&f).await;
    let update = |body: Value| {
        let mut body = body;
        body["idempotencyKey"] = json!(key());
        body["jobId"] = job["id"].clone();
        body
    };
    // A new priority moves the deadline (counted from creation); the summary and details change.
    let created_at =
        chrono::DateTime::parse_from_rfc3339(job["createdAt"].as_str().unwrap()).unwrap();
    let edited = s
        .call(
            "job/v1/update",
            update(
                json!({ "summary": "Replace water heater", "description": "50 gallon, gas",
                           "priority": "routine", "expectedVersion": 1 }),
            ),
        )
        .await
        .ok();
    assert_eq!(
        (
            &edited["summary"],
            &edited["description"],
            &edited["priority"],
            &edited["version"]
        ),
        (
            &json!("Replace water heater"),
            &json!("50 gallon, gas"),
            &json!("routine"),
            &json!(2)
        )
    );
    let deadline =
        chrono::DateTime::parse_from_rfc3339(edited["slaDeadline"].as_str().unwrap()).unwrap();
    let org = s.call("org/v1/get", json!({})).await.ok();
    let routine = org["sla"]["routineMinutes"]
        .as_i64()
        .unwrap_or_else(|| panic!("{org}"));
    assert_eq!(deadline - created_at, chrono::Duration::minutes(routine));
    // Stale versions, unknown trades and empty names are refused, changing nothing.
    s.call(
        "job/v1/update",
        update(json!({ "summary": "x", "expectedVersion": 1 })),
    )
    .await
    .assert_error(409, "VERSION_CONFLICT");
    s.call("job/v1/update", update(json!({ "trade": "alchemy" })))
        .await
        .assert_error(422, "TRADE_UNKNOWN");
    let cleared = s
        .call("job/v1/update", update(json!({ "clearDescription": true })))
        .await
        .ok();
    assert_eq!(
        (&cleared["description"], &cleared["version"]),
        (&Value::Null, &json!(3))
    );

    // Assigned to a plumber, the job cannot become an electrical one the plumber cannot do.
    s.schedule_and_assign(&job, &f.tech).await;
    let refused = s
        .call(
            "job/v1/update",
            update(json!({ "trade": "electrical", "minSkillLevel": 5 })),
        )
        .await;
    refused.assert_error(422, "TECHNICIAN_INELIGIBLE");
    let current = s
        .call("job/v1/get", json!({ "jobId": job["id"] }))
        .await
        .ok();
    assert_eq!(
        (&current["trade"], &current["minSkillLevel"]),
        (&json!("plumbing"), &json!(1))
    );

    // Recorded work: priced lines back, who and when kept, an event on the timeline.
    let recorded = s
        .mutate(
            "job/v1/recordActuals",
            json!({ "jobId": job["id"], "lines": [
                { "description": "Flex connector", "kind": "material", "unitPrice": "12.50", "quantity": "2" }] }),
        )
        .await;
    assert_eq!(recorded["priced"]["total"], "25.00", "{recorded}");
    assert_eq!(recorded["recorded"][0]["recordedBy"], json!(s.a.user));
    let version = recorded["jobVersion"].clone();
    let timeline = s
        .call("job/v1/timeline", json!({ "jobId": job["id"] }))
        .await
        .ok();
    let last = timeline["events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        (
            &last["kind"],
            &last["lines"],
            &last["version"],
            &last["actorUserId"]
        ),
        (
            &json!("actuals_recorded"),
            &json!(1),
            &version,
            &json!(s.a.user)
        )
    );
    let updated = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "updated")
        .unwrap()
        .clone();
    assert_eq!(
        updated["changed"],
        json!(["summary", "description", "priority"])
    );
    let work = s
        .call("job/v1/work", json!({ "jobId": job["id"] }))
        .await
        .ok();
    assert_eq!(work["recorded"].as_array().map(Vec::len), Some(1));
    assert!(work.get("priced").is_none());

    // Once on site, who may do it is fixed; a viewer may not edit; another organization sees nothing.
    for status in ["dispatched", "en_route", "on_site"] {
        s.mutate(
            "job/v1/updateStatus",
            json!({ "jobId": job["id"], "status": status }),
        )
        .await;
    }
    s.call("job/v1/update", update(json!({ "trade": "hvac" })))
        .await
        .assert_error(409, "JOB_VISIT_STARTED");
    let viewer = support::Tenant {
        token: s.member(&s.a, "viewer@example.com", Role::Viewer).await,
        ..s.a.clone()
    };
    s.call_as(
        &viewer,
        "job/v1/update",
        update(json!({ "summary": "Mine" })),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    let b = s.new_tenant("Org B", "owner-b@example.com").await;
    s.call_as(&b, "job/v1/update", update(json!({ "summary": "Mine" })))
        .await
        .assert_error(404, "NOT_FOUND");
}

/// `job/v1/list` by customer and by property; `customer/v1/list` finds a customer by phone and
/// by an address of theirs.
async fn jobs_by_customer_and_property_and_customers_by_phone_and_address(s: TestServer) {
    let f = s.fixture().await;
    let other = s
        .mutate(
            "customer/v1/create",
            json!({ "name": "Charles Babbage", "phone": "+1 312 555 0199" }),
        )
        .await;
    let cottage = s
        .mutate(
            "customer/v1/addProperty",
            json!({ "customerId": other["id"], "address": { "line1": "7 Difference Engine Rd",
                    "city": "Evanston", "region": "IL", "postalCode": "60201", "country": "US" } }),
        )
        .await;
    let workshop = s
        .mutate(
            "customer/v1/addProperty",
            json!({ "customerId": other["id"], "address": { "line1": "9 Mill St",
                    "city": "Chicago", "region": "IL", "postalCode": "60602", "country": "US" } }),
        )
        .await;
    let job_at = |customer: &Value, property: &Value| {
        json!({ "customerId": customer["id"], "propertyId": property["id"], "trade": "plumbing",
                "priority": "routine", "summary": "Check" })
    };
    let ada_job = s
        .mutate("job/v1/create", job_at(&f.customer, &f.property))
        .await;
    let cottage_job = s.mutate("job/v1/create", job_at(&other, &cottage)).await;
    let workshop_job = s.mutate("job/v1/create", job_at(&other, &workshop)).await;
    let ids = |page: Value| -> Vec<Value> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].clone())
            .collect()
    };
    let of_other = s
        .call("job/v1/list", json!({ "customerId": other["id"] }))
        .await
        .ok();
    let mut expected = vec![cottage_job["id"].clone(), workshop_job["id"].clone()];
    expected.sort_by_key(|v| v.as_str().unwrap().to_owned());
    assert_eq!(ids(of_other), expected);
    let at_workshop = s
        .call("job/v1/list", json!({ "propertyId": workshop["id"] }))
        .await
        .ok();
    assert_eq!(ids(at_workshop), [workshop_job["id"].clone()]);
    let of_ada = s
        .call("job/v1/list", json!({ "customerId": f.customer["id"] }))
        .await
        .ok();
    assert_eq!(ids(of_ada), [ada_job["id"].clone()]);

    for query in ["555 0199", "difference engine", "EVANSTON", "60602"] {
        let found = s
            .call("customer/v1/list", json!({ "query": query }))
            .await
            .ok();
        assert_eq!(ids(found), [other["id"].clone()], "{query}");
    }
    let found = s
        .call("customer/v1/list", json!({ "query": "1 Main St" }))
        .await
        .ok();
    assert_eq!(ids(found), [f.customer["id"].clone()]);
}

/// `workflow/v1/list` is in the order workflows started, page after page (ids are derived from
/// requests, so id order would be arbitrary).
async fn workflows_list_in_start_order(s: TestServer) {
    let mut started = Vec::new();
    for k in 0..7 {
        let customer = s
            .mutate(
                "customer/v1/create",
                json!({ "name": format!("Customer {k}") }),
            )
            .await;
        started.push(customer["id"].clone());
    }
    let mut seen: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut body = json!({ "limit": 2, "name": "customer_v1" });
        if let Some(c) = &cursor {
            body["cursor"] = json!(c);
        }
        let page = s.call("workflow/v1/list", body).await.ok();
        seen.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let times: Vec<&str> = seen
        .iter()
        .map(|w| w["createdAt"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "start order");
    assert_eq!(seen.len(), 7);
    let ids: std::collections::HashSet<&str> =
        seen.iter().map(|w| w["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 7, "every workflow once");
}

/// An unknown field is refused, naming it and the known field it probably meant.
async fn an_unknown_field_suggests_the_known_one(s: TestServer) {
    let reply = s
        .call(
            "customer/v1/create",
            json!({ "idempotencyKey": key(), "nmae": "Ada" }),
        )
        .await;
    reply.assert_error(400, "VALIDATION_FAILED");
    let error = &reply.json["field_errors"][0];
    assert_eq!(error["field"], "nmae");
    assert_eq!(error["code"], "unknown_field");
    assert_eq!(error["message"], "unknown field nmae; did you mean name?");
    let reply = s
        .call("job/v1/get", json!({ "job_id": uuid::Uuid::new_v4() }))
        .await;
    assert_eq!(
        reply.json["field_errors"][0]["message"],
        "unknown field job_id; did you mean jobId?"
    );
}

async fn status_to(s: &TestServer, job: &Value, status: &str) -> Reply {
    s.call(
        "job/v1/updateStatus",
        json!({ "idempotencyKey": key(), "jobId": job["id"], "status": status }),
    )
    .await
}

async fn scheduled_and_assigned(s: &TestServer, f: &support::Fixture) -> Value {
    let job = s.job(f).await;
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
    .await
}

async fn happy_path_to_completed(s: TestServer) {
    let f = s.fixture().await;
    let job = s.job(&f).await;
    assert_eq!(job["status"], "requested");
    assert_eq!(job["version"], 1);
    let created = chrono::DateTime::parse_from_rfc3339(job["createdAt"].as_str().unwrap()).unwrap();
    let deadline =
        chrono::DateTime::parse_from_rfc3339(job["slaDeadline"].as_str().unwrap()).unwrap();
    assert_eq!(
        deadline - created,
        chrono::Duration::hours(24),
        "urgent jobs get the default 24 h window"
    );

    let (start, end) = TestServer::window();
    let scheduled = s
        .mutate(
            "job/v1/schedule",
            json!({ "jobId": job["id"], "windowStart": start, "windowEnd": end }),
        )
        .await;
    assert_eq!(scheduled["status"], "scheduled");
    assert!(scheduled["window"]["start"].is_string());
    let assigned = s
        .mutate(
            "dispatch/v1/assignTech",
            json!({ "jobId": job["id"], "technicianId": f.tech["id"] }),
        )
        .await;
    assert_eq!(assigned["technicianId"], f.tech["id"]);
    for (status, version) in [
        ("dispatched", 4),
        ("en_route", 5),
        ("on_site", 6),
        ("in_progress", 7),
        ("completed", 8),
    ] {
        let moved = status_to(&s, &job, status).await.ok();
        assert_eq!(moved["status"], status);
        assert_eq!(moved["version"], version);
    }
    // invoiced needs an issued invoice: the guard refuses until invoices exist.
    status_to(&s, &job, "invoiced")
        .await
        .assert_error(422, "JOB_INVOICE_REQUIRED");

    let timeline = s
        .call("job/v1/timeline", json!({ "jobId": job["id"] }))
        .await
        .ok();
    let steps: Vec<String> = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["from"].as_str().unwrap_or("-"),
                e["to"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            "-:requested",
            "requested:scheduled",
            "scheduled:scheduled",
            "scheduled:dispatched",
            "dispatched:en_route",
            "en_route:on_site",
            "on_site:in_progress",
            "in_progress:completed"
        ]
    );
    let got = s
        .call("job/v1/get", json!({ "jobId": job["id"] }))
        .await
        .ok();
    assert_eq!(got["status"], "completed");
    assert!(got["visitStartedAt"].is_string() && got["completedAt"].is_string());
}

async fn refusals_leave_the_job_unchanged(s: TestServer) {
    let f = s.fixture().await;
    let job = s.job(&f).await;
    // Not in the table: the envelope names the current state and the allowed ones.
    let refused = status_to(&s, &job, "en_route").await;
    refused.assert_error(409, "JOB_INVALID_TRANSITION");
    assert_eq!(refused.json["error"]["type"], "conflict");
    assert_eq!(
        refused.json["error"]["details"]["currentStatus"],
        "requested"
    );
    assert_eq!(
        refused.json["error"]["details"]["allowed"],
        json!(["scheduled", "on_hold", "cancelled"])
    );
    assert!(
        refused.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("requested")
    );
    // scheduled via updateStatus needs a window.
    status_to(&s, &job, "scheduled")
        .await
        .assert_error(422, "JOB_WINDOW_REQUIRED");
    // dispatch needs a technician.
    let (start, end) = TestServer::window();
    s.mutate(
        "job/v1/schedule",
        json!({ "jobId": job["id"], "windowStart": start, "windowEnd": end }),
    )
    .await;
    status_to(&s, &job, "dispatched")
        .await
        .assert_error(422, "JOB_TECHNICIAN_REQUIRED");
    // An invalid window is a validation error naming the field.
    let bad = s
        .call("job/v1/schedule", json!({ "idempotencyKey": key(), "jobId": job["id"], "windowStart": end, "windowEnd": start }))
        .await;
    bad.assert_error(400, "VALIDATION_FAILED");
    assert_eq!(bad.json["field_errors"][0]["field"], "windowEnd");
    // Nothing changed: still version 2 (created, scheduled).
    let got = s
        .call("job/v1/get", json!({ "jobId": job["id"] }))
        .await
        .ok();
    assert_eq!(
        (got["status"].as_str(), got["version"].as_i64()),
        (Some("scheduled"), Some(2))
    );
    // Hold and resume return to the held state; cancel from on_hold.
    assert_eq!(
        status_to(&s, &job, "on_hold").await.ok()["heldFrom"],
        "scheduled"
    );
    assert_eq!(
        status_to(&s, &job, "scheduled").await.ok()["status"],
        "scheduled"
    );
    status_to(&s, &job, "on_hold").await.ok();
    let cancelled = status_to(&s, &job, "cancelled").await.ok();
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["allowedNext"], json!([]));
    status_to(&s, &job, "scheduled")
        .await
        .assert_error(409, "JOB_INVALID_TRANSITION");
    // Unknown resources are 404.
    let missing = s
        .call("job/v1/get", json!({ "jobId": uuid::Uuid::now_v7() }))
        .await;
    missing.assert_error(404, "NOT_FOUND");
    let no_property = s
        .call(
            "job/v1/create",
            json!({ "idempotencyKey": key(), "customerId": f.customer["id"], "propertyId": uuid::Uuid::now_v7(),
                    "trade": "plumbing", "priority": "routine", "summary": "x" }),
        )
        .await;
    no_property.assert_error(404, "NOT_FOUND");
}

async fn assignment_rules(s: TestServer) {
    let f = s.fixture().await;
    let job = s.job(&f).await;
    let electrician = s
        .mutate(
            "technician/v1/create",
            json!({ "name": "Nikola", "trades": ["electrical"] }),
        )
        .await;
    let refused = s
        .call("dispatch/v1/assignTech", json!({ "idempotencyKey": key(), "jobId": job["id"], "technicianId": electrician["id"] }))
        .await;
    refused.assert_error(422, "TECHNICIAN_INELIGIBLE");
    let rules: Vec<&str> = refused.json["error"]["details"]["failedRules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["TRADE_MISSING"]);
    // A deactivated technician without the trade: every failed rule is listed.
    s.mutate(
        "technician/v1/deactivate",
        json!({ "technicianId": electrician["id"] }),
    )
    .await;
    let refused = s
        .call("dispatch/v1/assignTech", json!({ "idempotencyKey": key(), "jobId": job["id"], "technicianId": electrician["id"] }))
        .await;
    assert_eq!(
        refused.json["error"]["details"]["failedRules"]
            .as_array()
            .map(Vec::len),
        Some(2),
        "{refused:?}"
    );
    // Once dispatched, the technician cannot be replaced without unassigning.
    let job = scheduled_and_assigned(&s, &f).await;
    status_to(&s, &job, "dispatched").await.ok();
    let other = s
        .mutate(
            "technician/v1/create",
            json!({ "name": "Linus", "trades": ["plumbing"] }),
        )
        .await;
    let other = s.around_the_clock(&other).await;
    // Dispatched, nobody has set off yet: another technician may take it over.
    let handed_over = s
        .mutate(
            "dispatch/v1/assignTech",
            json!({ "jobId": job["id"], "technicianId": other["id"] }),
        )
        .await;
    assert_eq!(
        (&handed_over["status"], &handed_over["technicianId"]),
        (&json!("dispatched"), &other["id"])
    );
    // Once on the way, the technician cannot be swapped without unassigning.
    status_to(&s, &job, "en_route").await.ok();
    s.call(
        "dispatch/v1/assignTech",
        json!({ "idempotencyKey": key(), "jobId": job["id"], "technicianId": f.tech["id"] }),
    )
    .await
    .assert_error(409, "JOB_ASSIGNMENT_NOT_ALLOWED");
    let unassigned = status_to(&s, &job, "scheduled").await.ok();
    assert_eq!(unassigned["technicianId"], Value::Null);
    s.mutate(
        "dispatch/v1/assignTech",
        json!({ "jobId": job["id"], "technicianId": other["id"] }),
    )
    .await;
}

async fn versions_and_expected_version(s: TestServer) {
    let customer = s
        .mutate(
            "customer/v1/create",
            json!({ "name": "Alan", "email": "alan@example.com" }),
        )
        .await;
    assert_eq!(customer["version"], 1);
    let updated = s
        .mutate("customer/v1/update", json!({ "customerId": customer["id"], "expectedVersion": 1, "phone": "555-0100", "email": null }))
        .await;
    assert_eq!(updated["version"], 2);
    assert_eq!(updated["email"], Value::Null);
    assert_eq!(updated["phone"], "555-0100");
    let stale = s
        .call("customer/v1/update", json!({ "idempotencyKey": key(), "customerId": customer["id"], "expectedVersion": 1, "name": "Alan T" }))
        .await;
    stale.assert_error(409, "VERSION_CONFLICT");
    assert_eq!(stale.json["error"]["details"]["currentVersion"], 2);
    let org = s.call("org/v1/get", json!({})).await.ok();
    let changed = s
        .mutate("org/v1/update", json!({ "expectedVersion": org["version"], "sla": { "emergencyMinutes": 60, "urgentMinutes": 240, "routineMinutes": 2880 } }))
        .await;
    assert_eq!(changed["sla"]["urgentMinutes"], 240);
    let bad = s.call("org/v1/update", json!({ "idempotencyKey": key(), "timeZone": "Mars/Olympus", "sla": { "emergencyMinutes": 0, "urgentMinutes": 1, "routineMinutes": 2 } })).await;
    bad.assert_error(400, "VALIDATION_FAILED");
    let fields: HashSet<&str> = bad.json["field_errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, HashSet::from(["timeZone", "sla.emergencyMinutes"]));
    // Per-organization uniqueness of technician e-mails.
    s.mutate(
        "technician/v1/create",
        json!({ "name": "T1", "email": "t@example.com", "trades": [] }),
    )
    .await;
    s.call(
        "technician/v1/create",
        json!({ "idempotencyKey": key(), "name": "T2", "email": "T@example.com", "trades": [] }),
    )
    .await
    .assert_error(409, "TECHNICIAN_EMAIL_TAKEN");
    let b = s.new_tenant("Org B", "owner-b@example.com").await;
    s.call_as(
        &b,
        "technician/v1/create",
        json!({ "idempotencyKey": key(), "name": "T3", "email": "t@example.com", "trades": [] }),
    )
    .await
    .ok();
}

async fn replay_and_key_reuse(s: TestServer) {
    let k = key();
    let body = json!({ "idempotencyKey": k, "name": "Replay Ltd" });
    let first = s.call("customer/v1/create", body.clone()).await;
    let second = s.call("customer/v1/create", body.clone()).await;
    assert_eq!(first.status, 200);
    assert_eq!(
        (second.status, &second.bytes),
        (first.status, &first.bytes),
        "a replay is the recorded response"
    );
    // Key order and whitespace do not make a different request.
    let reordered = format!(r#"{{ "name": "Replay Ltd",   "idempotencyKey": "{k}" }}"#);
    let auth = format!("Bearer {}", s.a.token);
    let third = s
        .send(
            "/api/v1/rpc/customer/v1/create",
            &[("authorization", &auth), ("x-organization-id", &s.a.org)],
            reordered.into_bytes(),
        )
        .await;
    assert_eq!(third.bytes, first.bytes);
    let list = s.call("customer/v1/list", json!({})).await.ok();
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "the effect happened once"
    );
    // Same key, another body.
    s.call(
        "customer/v1/create",
        json!({ "idempotencyKey": k, "name": "Someone Else" }),
    )
    .await
    .assert_error(422, "IDEMPOTENCY_KEY_REUSED");
    // The same key for another procedure is another request.
    let job_key = json!({ "idempotencyKey": k, "name": "Tech", "trades": [] });
    s.call("technician/v1/create", job_key).await.ok();
    // A recorded refusal replays byte for byte too, trace id included.
    let f = s.fixture().await;
    let job = s.job(&f).await;
    let refusal = json!({ "idempotencyKey": key(), "jobId": job["id"], "status": "completed" });
    let r1 = s.call("job/v1/updateStatus", refusal.clone()).await;
    let r2 = s.call("job/v1/updateStatus", refusal).await;
    r1.assert_error(409, "JOB_INVALID_TRANSITION");
    assert_eq!(r1.bytes, r2.bytes);
    // One response, one trace id: the replay's header names the trace that decided the answer,
    // as its body does (issue 9 found the two disagreeing).
    assert_eq!(r2.headers["x-trace-id"], r1.headers["x-trace-id"]);
    assert_eq!(
        r2.json["trace_id"].as_str().unwrap(),
        r2.headers["x-trace-id"].to_str().unwrap()
    );
}

async fn concurrent_duplicates_run_once(s: TestServer) {
    let f = s.fixture().await;
    let body = json!({ "idempotencyKey": key(), "customerId": f.customer["id"], "propertyId": f.property["id"],
                       "trade": "plumbing", "priority": "emergency", "summary": "Burst pipe" });
    let server = std::sync::Arc::new(s);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let (server, body) = (server.clone(), body.clone());
        tasks.spawn(async move { server.call("job/v1/create", body).await });
    }
    let mut replies = Vec::new();
    while let Some(reply) = tasks.join_next().await {
        replies.push(reply.unwrap());
    }
    assert_eq!(replies.len(), 64);
    for reply in &replies {
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.bytes, replies[0].bytes, "64 identical responses");
    }
    let jobs = server.call("job/v1/list", json!({})).await.ok();
    assert_eq!(jobs["items"].as_array().unwrap().len(), 1, "one job");
}

async fn another_organization_sees_nothing(s: TestServer) {
    let f = s.fixture().await;
    let job = scheduled_and_assigned(&s, &f).await;
    let b = s.new_tenant("Org B", "owner-b@example.com").await;
    let a_workflow = s.call("workflow/v1/list", json!({})).await.ok()["items"][0]["id"].clone();
    // B's token cannot act in A.
    let auth = format!("Bearer {}", b.token);
    let cross = s
        .send(
            "/api/v1/rpc/job/v1/get",
            &[("authorization", &auth), ("x-organization-id", &s.a.org)],
            json!({ "jobId": job["id"] }).to_string().into_bytes(),
        )
        .await;
    cross.assert_error(403, "NOT_A_MEMBER");
    // In B, A's ids do not exist.
    let a_ids = [
        ("job/v1/get", json!({ "jobId": job["id"] })),
        ("job/v1/timeline", json!({ "jobId": job["id"] })),
        ("customer/v1/get", json!({ "customerId": f.customer["id"] })),
        (
            "customer/v1/listProperties",
            json!({ "customerId": f.customer["id"] }),
        ),
        ("technician/v1/get", json!({ "technicianId": f.tech["id"] })),
        (
            "job/v1/updateStatus",
            json!({ "idempotencyKey": key(), "jobId": job["id"], "status": "dispatched" }),
        ),
        (
            "job/v1/callback",
            json!({ "idempotencyKey": key(), "jobId": job["id"] }),
        ),
        (
            "customer/v1/update",
            json!({ "idempotencyKey": key(), "customerId": f.customer["id"], "name": "Mallory" }),
        ),
        (
            "customer/v1/addProperty",
            json!({ "idempotencyKey": key(), "customerId": f.customer["id"], "address": { "line1": "x", "city": "x", "region": "x", "postalCode": "12345", "country": "US" } }),
        ),
        (
            "technician/v1/deactivate",
            json!({ "idempotencyKey": key(), "technicianId": f.tech["id"] }),
        ),
        (
            "job/v1/create",
            json!({ "idempotencyKey": key(), "customerId": f.customer["id"], "propertyId": f.property["id"], "trade": "plumbing", "priority": "routine", "summary": "x" }),
        ),
        (
            "job/v1/schedule",
            json!({ "idempotencyKey": key(), "jobId": job["id"], "windowStart": "2031-03-03T14:00:00Z", "windowEnd": "2031-03-03T16:00:00Z" }),
        ),
        (
            "technician/v1/update",
            json!({ "idempotencyKey": key(), "technicianId": f.tech["id"], "name": "Mallory" }),
        ),
        ("workflow/v1/get", json!({ "workflowId": a_workflow })),
    ];
    for (procedure, body) in a_ids {
        s.call_as(&b, procedure, body)
            .await
            .assert_error(404, "NOT_FOUND");
    }
    // B's own technician cannot be put on A's job, and A's technician not on B's.
    let b_tech = s
        .call_as(
            &b,
            "technician/v1/create",
            json!({ "idempotencyKey": key(), "name": "B", "trades": ["plumbing"] }),
        )
        .await
        .ok();
    s.call(
        "dispatch/v1/assignTech",
        json!({ "idempotencyKey": key(), "jobId": job["id"], "technicianId": b_tech["id"] }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    let a_workflows = s
        .call("workflow/v1/list", json!({ "limit": 200 }))
        .await
        .ok();
    let mut a_ids: HashSet<String> = a_workflows["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].to_string())
        .collect();
    a_ids.extend([&job["id"], &f.customer["id"], &f.tech["id"]].map(|v| v.to_string()));
    for procedure in [
        "customer/v1/list",
        "technician/v1/list",
        "job/v1/list",
        "workflow/v1/list",
    ] {
        let page = s.call_as(&b, procedure, json!({ "limit": 200 })).await.ok();
        let ids: Vec<String> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].to_string())
            .collect();
        assert!(
            ids.iter().all(|id| !a_ids.contains(id)),
            "{procedure} shows something of A"
        );
        if procedure == "customer/v1/list" || procedure == "job/v1/list" {
            assert_eq!(ids.len(), 0, "{procedure} shows nothing of A");
        }
    }
    // A is untouched.
    assert_eq!(
        s.call("job/v1/get", json!({ "jobId": job["id"] }))
            .await
            .ok()["status"],
        "scheduled"
    );
}

async fn malformed_requests_get_the_envelope(s: TestServer) {
    let auth = format!("Bearer {}", s.a.token);
    let headers = [
        ("authorization", auth.as_str()),
        ("x-organization-id", s.a.org.as_str()),
    ];
    let path = "/api/v1/rpc/customer/v1/create";
    let field = |r: &Reply| {
        r.json["field_errors"][0]["field"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };

    let unknown = s
        .send(
            path,
            &headers,
            json!({ "idempotencyKey": key(), "name": "x", "nmae": "y" })
                .to_string()
                .into_bytes(),
        )
        .await;
    unknown.assert_error(400, "VALIDATION_FAILED");
    assert_eq!(
        (
            field(&unknown),
            unknown.json["field_errors"][0]["code"].as_str()
        ),
        ("nmae".into(), Some("unknown_field"))
    );

    let nested = s
        .send("/api/v1/rpc/customer/v1/addProperty", &headers, json!({ "idempotencyKey": key(), "customerId": uuid::Uuid::now_v7(), "address": { "line1": "x", "city": "x", "region": "x", "postalCode": "12345", "country": "US", "planet": "Earth" } }).to_string().into_bytes())
        .await;
    assert_eq!(field(&nested), "address.planet");

    let wrong_type = s
        .send(
            path,
            &headers,
            json!({ "idempotencyKey": key(), "name": 42 })
                .to_string()
                .into_bytes(),
        )
        .await;
    wrong_type.assert_error(400, "VALIDATION_FAILED");
    assert_eq!(field(&wrong_type), "name");

    let missing = s
        .send(
            path,
            &headers,
            json!({ "idempotencyKey": key() }).to_string().into_bytes(),
        )
        .await;
    missing.assert_error(400, "VALIDATION_FAILED");
    assert_eq!(
        (
            field(&missing),
            missing.json["field_errors"][0]["code"].as_str()
        ),
        ("name".into(), Some("required"))
    );

    let no_key = s
        .send(
            path,
            &headers,
            json!({ "name": "x" }).to_string().into_bytes(),
        )
        .await;
    assert_eq!(field(&no_key), "idempotencyKey");
    let bad_key = s
        .send(
            path,
            &headers,
            json!({ "idempotencyKey": "not-a-uuid", "name": "x" })
                .to_string()
                .into_bytes(),
        )
        .await;
    assert_eq!(field(&bad_key), "idempotencyKey");

    let malformed = s.send(path, &headers, b"{\"name\": ".to_vec()).await;
    malformed.assert_error(400, "VALIDATION_FAILED");
    assert_eq!(malformed.json["field_errors"][0]["code"], "malformed_json");

    let invalid_value = s
        .send(
            path,
            &headers,
            json!({ "idempotencyKey": key(), "name": " ", "email": "nope" })
                .to_string()
                .into_bytes(),
        )
        .await;
    let fields: HashSet<String> = invalid_value.json["field_errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        fields,
        HashSet::from(["name".to_owned(), "email".to_owned()]),
        "every field error at once"
    );

    let bad_enum = s
        .send("/api/v1/rpc/job/v1/updateStatus", &headers, json!({ "idempotencyKey": key(), "jobId": uuid::Uuid::now_v7(), "status": "teleported" }).to_string().into_bytes())
        .await;
    bad_enum.assert_error(400, "VALIDATION_FAILED");
    assert_eq!(field(&bad_enum), "status");

    s.send("/api/v1/rpc/job/v1/explode", &headers, b"{}".to_vec())
        .await
        .assert_error(404, "UNKNOWN_PROCEDURE");
    s.send("/api/v1/nowhere", &headers, b"{}".to_vec())
        .await
        .assert_error(404, "NOT_FOUND");
    let get = TestServer::reply(
        s.http
            .get(format!("{}{path}", s.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    get.assert_error(405, "METHOD_NOT_ALLOWED");
    // A body over the limit is refused from its declared length, before it is read. Sent by hand
    // with no body bytes at all: a client still writing a large body when the server answers and
    // closes can see its write fail (a broken pipe) instead of the answer, which would make the
    // test flaky without testing anything more.
    let too_large = raw_request(
        &s.base,
        &format!(
            "POST {path} HTTP/1.1\r\nhost: test\r\nauthorization: {auth}\r\nx-organization-id: {}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            s.a.org,
            2 * 1024 * 1024
        ),
    )
    .await;
    assert!(too_large.starts_with("HTTP/1.1 413"), "{too_large}");
    assert!(
        too_large.contains("\"code\":\"PAYLOAD_TOO_LARGE\""),
        "{too_large}"
    );
    assert!(too_large.contains("\"trace_id\":"), "{too_large}");
    // Nothing was written by any of them.
    assert_eq!(
        s.call("customer/v1/list", json!({})).await.ok()["items"],
        json!([])
    );
}

async fn authentication_and_permissions(s: TestServer) {
    let path = "/api/v1/rpc/org/v1/get";
    let org = [("x-organization-id", s.a.org.as_str())];
    let none = s.send(path, &org, b"{}".to_vec()).await;
    none.assert_error(401, "UNAUTHENTICATED");
    assert_eq!(none.json["error"]["type"], "unauthenticated");
    let lower_scheme = format!("bearer {}", s.a.token);
    s.send(
        path,
        &[("authorization", &lower_scheme), org[0]],
        b"{}".to_vec(),
    )
    .await
    .ok();
    s.send(
        path,
        &[("authorization", "Bearer hst_nope"), org[0]],
        b"{}".to_vec(),
    )
    .await
    .assert_error(401, "UNAUTHENTICATED");
    let auth = format!("Bearer {}", s.a.token);
    s.send(path, &[("authorization", &auth)], b"{}".to_vec())
        .await
        .assert_error(400, "VALIDATION_FAILED");
    // whoami needs no organization.
    let me = s
        .send(
            "/api/v1/rpc/auth/v1/whoami",
            &[("authorization", &auth)],
            b"{}".to_vec(),
        )
        .await
        .ok();
    assert_eq!(me["memberships"][0]["organizationId"], s.a.org.as_str());
    assert_eq!(me["memberships"][0]["role"], "owner");
    // A viewer reads but may not write.
    let viewer = s.member(&s.a, "viewer@example.com", Role::Viewer).await;
    let as_viewer = support::Tenant {
        token: viewer,
        ..s.a.clone()
    };
    s.call_as(&as_viewer, "customer/v1/list", json!({}))
        .await
        .ok();
    let denied = s
        .call_as(
            &as_viewer,
            "customer/v1/create",
            json!({ "idempotencyKey": key(), "name": "x" }),
        )
        .await;
    denied.assert_error(403, "FORBIDDEN");
    // Revoked and expired tokens stop working.
    let issued = s
        .admin
        .create_token(
            &hestami::core::text::Email::parse("owner-a@example.com").unwrap(),
            None,
            None,
        )
        .await
        .unwrap();
    let bearer = format!("Bearer {}", issued.token);
    s.send(path, &[("authorization", &bearer), org[0]], b"{}".to_vec())
        .await
        .ok();
    assert!(
        s.admin
            .revoke_token(&issued.token_id.to_string())
            .await
            .unwrap()
    );
    s.send(path, &[("authorization", &bearer), org[0]], b"{}".to_vec())
        .await
        .assert_error(401, "UNAUTHENTICATED");
    let expired = s
        .admin
        .create_token(
            &hestami::core::text::Email::parse("owner-a@example.com").unwrap(),
            Some(chrono::Duration::seconds(-1)),
            None,
        )
        .await
        .unwrap();
    let bearer = format!("Bearer {}", expired.token);
    s.send(path, &[("authorization", &bearer), org[0]], b"{}".to_vec())
        .await
        .assert_error(401, "UNAUTHENTICATED");
    // Every response carries x-trace-id; a traceparent is honoured.
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let traced = s
        .send(
            path,
            &[("authorization", &auth), org[0], ("traceparent", parent)],
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(
        traced.headers["x-trace-id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
}

async fn lists_page_with_cursors(s: TestServer) {
    for n in 0..5 {
        s.mutate(
            "customer/v1/create",
            json!({ "name": format!("Customer {n}") }),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let page = s
            .call("customer/v1/list", json!({ "limit": 2, "cursor": cursor }))
            .await
            .ok();
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["name"].as_str().unwrap().to_owned()),
        );
        cursor = page["nextCursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert_eq!(
        seen,
        (0..5).map(|n| format!("Customer {n}")).collect::<Vec<_>>()
    );
    let found = s
        .call("customer/v1/list", json!({ "query": "TOMER 3" }))
        .await
        .ok();
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    let like = s
        .call("customer/v1/list", json!({ "query": "%" }))
        .await
        .ok();
    assert_eq!(like["items"], json!([]), "LIKE wildcards are escaped");
    s.call("customer/v1/list", json!({ "cursor": "garbage" }))
        .await
        .assert_error(400, "VALIDATION_FAILED");
    s.call("customer/v1/list", json!({ "limit": 0 }))
        .await
        .assert_error(400, "VALIDATION_FAILED");
    let f = s.fixture().await;
    let job = s.job(&f).await;
    let requested = s
        .call("job/v1/list", json!({ "status": "requested" }))
        .await
        .ok();
    assert_eq!(requested["items"][0]["id"], job["id"]);
    assert_eq!(
        s.call("job/v1/list", json!({ "status": "completed" }))
            .await
            .ok()["items"],
        json!([])
    );
}

async fn callbacks_link_a_new_job(s: TestServer) {
    let f = s.fixture().await;
    let job = scheduled_and_assigned(&s, &f).await;
    s.call(
        "job/v1/callback",
        json!({ "idempotencyKey": key(), "jobId": job["id"] }),
    )
    .await
    .assert_error(409, "JOB_CALLBACK_NOT_ALLOWED");
    for status in [
        "dispatched",
        "en_route",
        "on_site",
        "in_progress",
        "completed",
    ] {
        status_to(&s, &job, status).await.ok();
    }
    let callback = s
        .mutate(
            "job/v1/callback",
            json!({ "jobId": job["id"], "reason": "still dripping" }),
        )
        .await;
    assert_eq!(callback["status"], "requested");
    assert_eq!(callback["callbackOf"], job["id"]);
    assert_eq!(callback["summary"], "Callback: Leaking water heater");
    let timeline = s
        .call("job/v1/timeline", json!({ "jobId": job["id"] }))
        .await
        .ok();
    let last = timeline["events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        (last["kind"].as_str(), last["callbackJobId"].clone()),
        (Some("callback_raised"), callback["id"].clone())
    );
    assert_eq!(
        s.call("job/v1/get", json!({ "jobId": job["id"] }))
            .await
            .ok()["status"],
        "completed"
    );
}

async fn workflows_are_recorded_with_versioned_names(s: TestServer) {
    let f = s.fixture().await;
    let _ = scheduled_and_assigned(&s, &f).await;
    let page = s
        .call("workflow/v1/list", json!({ "limit": 200 }))
        .await
        .ok();
    let items = page["items"].as_array().unwrap();
    let mut seen = HashSet::new();
    for w in items {
        assert_eq!(w["status"], "succeeded");
        let procedure = w["procedure"].as_str().unwrap();
        let version = procedure.split('/').nth(1).unwrap();
        assert!(
            w["name"]
                .as_str()
                .unwrap()
                .ends_with(&format!("_{version}")),
            "{w}"
        );
        seen.insert(w["name"].as_str().unwrap().to_owned());
    }
    for name in [
        "customer_v1",
        "technician_v1",
        "job_lifecycle_v1",
        "dispatch_assignment_v1",
    ] {
        assert!(seen.contains(name), "{name} in {seen:?}");
    }
    // One that came over HTTP (the fixture also submits some directly, without a trace).
    let over_http = items
        .iter()
        .find(|w| w["procedure"] == "customer/v1/create")
        .unwrap();
    let one = s
        .call("workflow/v1/get", json!({ "workflowId": over_http["id"] }))
        .await
        .ok();
    assert_eq!(one["steps"], 1);
    assert_eq!(one["traceId"].as_str().map(str::len), Some(32));

    // Operators act on workflows through workflows of their own.
    let done = s
        .call(
            "workflow/v1/cancel",
            json!({ "idempotencyKey": key(), "workflowId": over_http["id"] }),
        )
        .await;
    done.assert_error(409, "WORKFLOW_NOT_PENDING");
    s.call(
        "workflow/v1/resume",
        json!({ "idempotencyKey": key(), "workflowId": over_http["id"] }),
    )
    .await
    .assert_error(409, "WORKFLOW_NOT_RESUMABLE");
    let b = s.new_tenant("Org B", "owner-b@example.com").await;
    s.call_as(
        &b,
        "workflow/v1/cancel",
        json!({ "idempotencyKey": key(), "workflowId": over_http["id"] }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    let office = s.member(&s.a, "office-ops@example.com", Role::Office).await;
    let as_office = support::Tenant {
        token: office,
        ..s.a.clone()
    };
    s.call_as(
        &as_office,
        "workflow/v1/cancel",
        json!({ "idempotencyKey": key(), "workflowId": over_http["id"] }),
    )
    .await
    .assert_error(403, "FORBIDDEN");
}

/// Every procedure that mutates names a workflow whose version suffix is the procedure's.
#[test]
fn every_vn_procedure_starts_a_vn_workflow() {
    let procedures = hestami::http::v1::procedures();
    let mut mutating = 0;
    for p in &procedures {
        if let Some(workflow) = p.workflow {
            mutating += 1;
            assert!(
                workflow.ends_with(&format!("_{}", p.version)),
                "{} starts {workflow}",
                p.path()
            );
        }
        assert!(
            hestami::core::org::PERMISSIONS
                .iter()
                .any(|(name, _)| *name == p.path()),
            "{} has no permission row",
            p.path()
        );
    }
    assert_eq!(
        procedures.len(),
        hestami::core::org::PERMISSIONS.len(),
        "every permission row is a procedure"
    );
    assert!(mutating >= 12);
}

/// Sends `head` as is over a new connection and returns everything the server answers.
async fn raw_request(base: &str, head: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// The codes of a refusal's reasons (`details.reasons`) or failed rules (`details.failedRules`).
fn reason_codes(reply: &Reply) -> Vec<String> {
    let details = &reply.json["error"]["details"];
    details["reasons"]
        .as_array()
        .or(details["failedRules"].as_array())
        .map(|items| {
            items
                .iter()
                .map(|r| r["code"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn today() -> chrono::NaiveDate {
    chrono::Utc::now().date_naive()
}

async fn compliance_gates_scheduling(s: TestServer) {
    // A new organization, not yet made ready.
    let b = s
        .new_tenant("Fresh Plumbing", "owner-fresh@example.com")
        .await;
    let customer = s
        .call_as(
            &b,
            "customer/v1/create",
            json!({ "idempotencyKey": key(), "name": "Ada" }),
        )
        .await
        .ok();
    let property = s
        .call_as(
            &b,
            "customer/v1/addProperty",
            json!({ "idempotencyKey": key(), "customerId": customer["id"], "address": { "line1": "1 Main St",
                    "city": "Chicago", "region": "IL", "postalCode": "60601", "country": "US" } }),
        )
        .await
        .ok();
    let job = s
        .call_as(
            &b,
            "job/v1/create",
            json!({ "idempotencyKey": key(), "customerId": customer["id"], "propertyId": property["id"],
                    "trade": "plumbing", "priority": "routine", "summary": "Drain" }),
        )
        .await
        .ok();
    let (start, end) = TestServer::window();
    let schedule = || json!({ "idempotencyKey": key(), "jobId": job["id"], "windowStart": start, "windowEnd": end });

    // Nothing on file: every reason at once, service areas included (issue 9: a property no
    // area covers is refused when it is scheduled, not when a technician is sought).
    let refused = s.call_as(&b, "job/v1/schedule", schedule()).await;
    refused.assert_error(422, "COMPLIANCE_REQUIREMENTS_NOT_MET");
    assert_eq!(
        reason_codes(&refused),
        [
            "LICENSE_MISSING",
            "INSURANCE_MISSING",
            "OUTSIDE_SERVICE_AREA"
        ],
        "{refused:?}"
    );
    s.call_as(
        &b,
        "contractor/v1/setServiceAreas",
        json!({ "idempotencyKey": key(), "areas": [{ "kind": "postalCodes", "postalCodes": ["60601"] }] }),
    )
    .await
    .ok();

    // An expired, unverified licence and too little insurance.
    let license = s
        .call_as(
            &b,
            "contractor/v1/addLicense",
            json!({ "idempotencyKey": key(), "trade": "plumbing", "jurisdiction": { "country": "US", "region": "IL" },
                    "number": "PL-1", "expiresOn": today() - chrono::Duration::days(1) }),
        )
        .await
        .ok();
    assert_eq!(license["status"], "pending");
    let policy = s
        .call_as(
            &b,
            "contractor/v1/addInsurance",
            json!({ "idempotencyKey": key(), "kind": "general_liability", "carrier": "Acme", "policyNumber": "GL-1",
                    "perOccurrenceLimit": "500000.00", "aggregateLimit": "1000000.00",
                    "effectiveOn": today() - chrono::Duration::days(10), "expiresOn": today() + chrono::Duration::days(300) }),
        )
        .await
        .ok();
    assert_eq!(
        (
            policy["perOccurrenceLimit"].as_str(),
            policy["currency"].as_str()
        ),
        (Some("500000.00"), Some("USD"))
    );
    let refused = s.call_as(&b, "job/v1/schedule", schedule()).await;
    refused.assert_error(422, "COMPLIANCE_REQUIREMENTS_NOT_MET");
    let codes = reason_codes(&refused);
    for code in [
        "LICENSE_EXPIRED",
        "LICENSE_UNVERIFIED",
        "INSURANCE_BELOW_MINIMUM",
    ] {
        assert!(codes.iter().any(|c| c == code), "{code} in {codes:?}");
    }
    let status = s
        .call_as(&b, "contractor/v1/complianceStatus", json!({}))
        .await
        .ok();
    let plumbing = status["trades"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["trade"] == "plumbing")
        .unwrap()
        .clone();
    assert_eq!(plumbing["compliant"], false);

    // Only owners and admins verify licences.
    let office = s.member(&b, "office-fresh@example.com", Role::Office).await;
    let as_office = support::Tenant {
        token: office,
        ..b.clone()
    };
    s.call_as(
        &as_office,
        "contractor/v1/verifyLicense",
        json!({ "idempotencyKey": key(), "licenseId": license["id"], "status": "verified" }),
    )
    .await
    .assert_error(403, "FORBIDDEN");

    // Renewed, verified and insured properly: scheduling works.
    let renewed = s
        .call_as(&b, "contractor/v1/updateLicense", json!({ "idempotencyKey": key(), "licenseId": license["id"], "expiresOn": today() + chrono::Duration::days(400) }))
        .await
        .ok();
    let verified = s
        .call_as(
            &b,
            "contractor/v1/verifyLicense",
            json!({ "idempotencyKey": key(), "licenseId": renewed["id"], "status": "verified" }),
        )
        .await
        .ok();
    assert_eq!(verified["status"], "verified");
    s.call_as(&b, "contractor/v1/updateInsurance", json!({ "idempotencyKey": key(), "insuranceId": policy["id"], "perOccurrenceLimit": "1000000" }))
        .await
        .ok();
    let scheduled = s.call_as(&b, "job/v1/schedule", schedule()).await.ok();
    assert_eq!(scheduled["status"], "scheduled");
    let expiring = s
        .call_as(
            &b,
            "contractor/v1/listExpiring",
            json!({ "withinDays": 365 }),
        )
        .await
        .ok();
    assert_eq!(
        expiring["items"].as_array().map(Vec::len),
        Some(1),
        "the policy lapses within a year: {expiring}"
    );
}

async fn eligibility_rules_refuse_with_every_reason(s: TestServer) {
    let f = s.fixture().await;
    let (start, end) = TestServer::window();
    let job = s
        .mutate(
            "job/v1/create",
            json!({ "customerId": f.customer["id"], "propertyId": f.property["id"], "trade": "plumbing", "priority": "urgent",
                    "summary": "Backflow test", "minSkillLevel": 3, "requiredCertifications": ["Backflow Tester"] }),
        )
        .await;
    assert_eq!(
        (
            job["minSkillLevel"].as_i64(),
            job["requiredCertifications"].clone()
        ),
        (Some(3), json!(["Backflow Tester"]))
    );
    // eligibleTechs needs a window until the job has one.
    s.call("dispatch/v1/eligibleTechs", json!({ "jobId": job["id"] }))
        .await
        .assert_error(422, "JOB_WINDOW_REQUIRED");
    s.mutate(
        "job/v1/schedule",
        json!({ "jobId": job["id"], "windowStart": start, "windowEnd": end }),
    )
    .await;

    // A new technician with no shifts, too junior and without the certification.
    let newbie = s
        .mutate(
            "technician/v1/create",
            json!({ "name": "Newbie", "trades": ["plumbing"] }),
        )
        .await;
    let refused = s
        .call(
            "dispatch/v1/assignTech",
            json!({ "idempotencyKey": key(), "jobId": job["id"], "technicianId": newbie["id"] }),
        )
        .await;
    refused.assert_error(422, "TECHNICIAN_INELIGIBLE");
    assert_eq!(
        reason_codes(&refused),
        [
            "SKILL_LEVEL_TOO_LOW",
            "CERTIFICATION_MISSING",
            "OUTSIDE_SHIFT"
        ],
        "{refused:?}"
    );

    // The fixture technician, made senior and certified: eligible, and ranked first.
    s.mutate(
        "technician/v1/setSkills",
        json!({ "technicianId": f.tech["id"], "skills": [{ "trade": "plumbing", "level": 4 }] }),
    )
    .await;
    let profile = s
        .mutate(
            "technician/v1/addCertification",
            json!({ "technicianId": f.tech["id"], "name": "Backflow Tester", "issuer": "State Board",
                    "expiresOn": today() + chrono::Duration::days(200) }),
        )
        .await;
    assert_eq!(profile["certifications"].as_array().map(Vec::len), Some(1));
    let ranked = s
        .call("dispatch/v1/eligibleTechs", json!({ "jobId": job["id"] }))
        .await
        .ok();
    let candidates = ranked["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 2);
    assert_eq!(
        (&candidates[0]["technicianId"], &candidates[0]["eligible"]),
        (&f.tech["id"], &json!(true))
    );
    assert_eq!(candidates[1]["eligible"], false);

    // Time off over the window refuses the move to dispatched, after a valid assignment.
    s.mutate(
        "dispatch/v1/assignTech",
        json!({ "jobId": job["id"], "technicianId": f.tech["id"] }),
    )
    .await;
    let off = s
        .mutate("technician/v1/addTimeOff", json!({ "technicianId": f.tech["id"], "start": start, "end": end, "reason": "training" }))
        .await;
    let dispatched = status_to(&s, &job, "dispatched").await;
    dispatched.assert_error(422, "TECHNICIAN_INELIGIBLE");
    assert_eq!(reason_codes(&dispatched), ["TIME_OFF_OVERLAP"]);
    let time_off_id = off["timeOff"][0]["id"].clone();
    s.mutate(
        "technician/v1/removeTimeOff",
        json!({ "technicianId": f.tech["id"], "timeOffId": time_off_id }),
    )
    .await;

    // A second job in the same window for the same technician overlaps the first.
    let second = s.job(&f).await;
    s.mutate(
        "job/v1/schedule",
        json!({ "jobId": second["id"], "windowStart": start, "windowEnd": end }),
    )
    .await;
    let overlap = s
        .call(
            "dispatch/v1/assignTech",
            json!({ "idempotencyKey": key(), "jobId": second["id"], "technicianId": f.tech["id"] }),
        )
        .await;
    assert_eq!(
        reason_codes(&overlap),
        ["APPOINTMENT_OVERLAP"],
        "{overlap:?}"
    );
    // The technician's own areas, away from the property.
    s.mutate(
        "technician/v1/setServiceAreas",
        json!({ "technicianId": f.tech["id"], "areas": [{ "kind": "postalCodes", "postalCodes": ["99501"] }] }),
    )
    .await;
    let away = s
        .call(
            "dispatch/v1/assignTech",
            json!({ "idempotencyKey": key(), "jobId": second["id"], "technicianId": f.tech["id"] }),
        )
        .await;
    assert_eq!(
        reason_codes(&away),
        ["OUTSIDE_TECHNICIAN_AREA", "APPOINTMENT_OVERLAP"],
        "{away:?}"
    );
    // The first job still dispatches now that the time off is gone? Not from another area.
    let dispatched = status_to(&s, &job, "dispatched").await;
    assert_eq!(reason_codes(&dispatched), ["OUTSIDE_TECHNICIAN_AREA"]);
    s.mutate(
        "technician/v1/setServiceAreas",
        json!({ "technicianId": f.tech["id"], "areas": [] }),
    )
    .await;
    assert_eq!(
        status_to(&s, &job, "dispatched").await.ok()["status"],
        "dispatched"
    );

    // Resuming a job held in dispatched hands it back to its technician: checked again.
    status_to(&s, &job, "on_hold").await.ok();
    let off = s
        .mutate(
            "technician/v1/addTimeOff",
            json!({ "technicianId": f.tech["id"], "start": start, "end": end }),
        )
        .await;
    let resumed = status_to(&s, &job, "dispatched").await;
    resumed.assert_error(422, "TECHNICIAN_INELIGIBLE");
    assert_eq!(reason_codes(&resumed), ["TIME_OFF_OVERLAP"]);
    let time_off_id = off["timeOff"][0]["id"].clone();
    s.mutate(
        "technician/v1/removeTimeOff",
        json!({ "technicianId": f.tech["id"], "timeOffId": time_off_id }),
    )
    .await;
    assert_eq!(
        status_to(&s, &job, "dispatched").await.ok()["status"],
        "dispatched"
    );

    // A new window for a job that has its technician must suit the technician too.
    let shift = |t: &str, days: i64| {
        (chrono::DateTime::parse_from_rfc3339(t).unwrap() + chrono::Duration::days(days))
            .to_rfc3339()
    };
    let third = s.job(&f).await;
    s.mutate("job/v1/schedule", json!({ "jobId": third["id"], "windowStart": shift(&start, 1), "windowEnd": shift(&end, 1) })).await;
    s.mutate(
        "dispatch/v1/assignTech",
        json!({ "jobId": third["id"], "technicianId": f.tech["id"] }),
    )
    .await;
    s.mutate(
        "technician/v1/addTimeOff",
        json!({ "technicianId": f.tech["id"], "start": shift(&start, 2), "end": shift(&end, 2) }),
    )
    .await;
    let moved = s
        .call("job/v1/schedule", json!({ "idempotencyKey": key(), "jobId": third["id"], "windowStart": shift(&start, 2), "windowEnd": shift(&end, 2) }))
        .await;
    moved.assert_error(422, "TECHNICIAN_INELIGIBLE");
    assert_eq!(reason_codes(&moved), ["TIME_OFF_OVERLAP"]);

    // Availability shows the booked job.
    let day_start =
        chrono::DateTime::parse_from_rfc3339(&start).unwrap() - chrono::Duration::hours(1);
    let spans = s
        .call(
            "technician/v1/availability",
            json!({ "technicianId": f.tech["id"], "from": day_start.to_rfc3339(), "to": (day_start + chrono::Duration::hours(4)).to_rfc3339() }),
        )
        .await
        .ok();
    let kinds: Vec<&str> = spans["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|sp| sp["reason"]["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"appointment") && kinds.contains(&"free"),
        "{kinds:?}"
    );
}

async fn onboarding_validation_and_other_organizations(s: TestServer) {
    let f = s.fixture().await;
    // Every field error at once, with its path.
    let bad = s
        .call(
            "contractor/v1/addInsurance",
            json!({ "idempotencyKey": key(), "kind": "general_liability", "carrier": "Acme", "policyNumber": "X",
                    "perOccurrenceLimit": "lots", "aggregateLimit": "-5", "effectiveOn": "2030-01-01", "expiresOn": "2031-01-01" }),
        )
        .await;
    bad.assert_error(400, "VALIDATION_FAILED");
    let fields: HashSet<&str> = bad.json["field_errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains("perOccurrenceLimit") && fields.contains("aggregateLimit"),
        "{bad:?}"
    );
    let polygon = s
        .call(
            "contractor/v1/setServiceAreas",
            json!({ "idempotencyKey": key(), "areas": [{ "kind": "postalCodes", "postalCodes": ["60601"] },
                    { "kind": "polygon", "geojson": { "type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]] } }] }),
        )
        .await;
    polygon.assert_error(400, "VALIDATION_FAILED");
    assert!(
        polygon.json["field_errors"][0]["field"]
            .as_str()
            .unwrap()
            .starts_with("areas[1].geojson"),
        "{polygon:?}"
    );
    let shifts = s
        .call(
            "technician/v1/setShifts",
            json!({ "idempotencyKey": key(), "technicianId": f.tech["id"], "effectiveFrom": "2031-01-01",
                    "weekly": [{ "weekday": "mon", "start": "17:00", "end": "08:00" }] }),
        )
        .await;
    shifts.assert_error(400, "VALIDATION_FAILED");
    // A valid polygon round-trips.
    let areas = s
        .mutate(
            "contractor/v1/setServiceAreas",
            json!({ "areas": [{ "kind": "postalCodes", "postalCodes": ["60601"] },
                    { "kind": "radius", "center": { "lat": 41.88, "lon": -87.63 }, "radiusKm": 25, "trades": ["plumbing"] }] }),
        )
        .await;
    assert_eq!(areas["areas"].as_array().map(Vec::len), Some(2));

    // Another organization reaches none of it.
    let b = s.new_tenant("Other Org", "owner-other@example.com").await;
    let credentials = s
        .call("contractor/v1/listCredentials", json!({}))
        .await
        .ok();
    let license_id = credentials["licenses"][0]["id"].clone();
    let a_ids = [
        (
            "technician/v1/setSkills",
            json!({ "idempotencyKey": key(), "technicianId": f.tech["id"], "skills": [] }),
        ),
        (
            "technician/v1/getProfile",
            json!({ "technicianId": f.tech["id"] }),
        ),
        (
            "technician/v1/availability",
            json!({ "technicianId": f.tech["id"], "from": "2031-01-01T00:00:00Z", "to": "2031-01-02T00:00:00Z" }),
        ),
        (
            "contractor/v1/verifyLicense",
            json!({ "idempotencyKey": key(), "licenseId": license_id, "status": "rejected" }),
        ),
        (
            "contractor/v1/removeLicense",
            json!({ "idempotencyKey": key(), "licenseId": license_id }),
        ),
    ];
    for (procedure, body) in a_ids {
        s.call_as(&b, procedure, body)
            .await
            .assert_error(404, "NOT_FOUND");
    }
    let job = s.job(&f).await;
    s.call_as(&b, "dispatch/v1/eligibleTechs", json!({ "jobId": job["id"], "windowStart": "2031-01-01T10:00:00Z", "windowEnd": "2031-01-01T12:00:00Z" }))
        .await
        .assert_error(404, "NOT_FOUND");
    let b_status = s
        .call_as(&b, "contractor/v1/listCredentials", json!({}))
        .await
        .ok();
    assert_eq!(
        (b_status["licenses"].clone(), b_status["insurance"].clone()),
        (json!([]), json!([]))
    );
}

/// The documents a community association may ask of its vendors: the parties an insurance
/// certificate names as additional insureds (set, replaced, at most 20 names) and the day the
/// W-9 was received (set, kept, cleared).
async fn what_an_association_asks_of_vendors_is_recorded(s: TestServer) {
    let policy = s
        .mutate(
            "contractor/v1/addInsurance",
            json!({ "kind": "general_liability", "carrier": "Acme", "policyNumber": "GL-7",
                    "perOccurrenceLimit": "2000000", "aggregateLimit": "4000000",
                    "effectiveOn": "2030-01-01", "expiresOn": "2032-01-01",
                    "additionalInsureds": ["Maple Grove HOA"] }),
        )
        .await;
    assert_eq!(policy["additionalInsureds"], json!(["Maple Grove HOA"]));
    let unchanged = s
        .mutate(
            "contractor/v1/updateInsurance",
            json!({ "insuranceId": policy["id"], "carrier": "Acme Mutual" }),
        )
        .await;
    assert_eq!(unchanged["additionalInsureds"], json!(["Maple Grove HOA"]));
    let replaced = s
        .mutate(
            "contractor/v1/updateInsurance",
            json!({ "insuranceId": policy["id"],
                    "additionalInsureds": ["Maple Grove HOA", "Oak Park Condominium"] }),
        )
        .await;
    assert_eq!(
        replaced["additionalInsureds"],
        json!(["Maple Grove HOA", "Oak Park Condominium"])
    );
    let listed = s
        .call("contractor/v1/listCredentials", json!({}))
        .await
        .ok();
    assert_eq!(
        listed["insurance"][0]["additionalInsureds"][1],
        "Oak Park Condominium"
    );
    let many: Vec<String> = (0..21).map(|n| format!("Association {n}")).collect();
    let refused = s
        .call(
            "contractor/v1/updateInsurance",
            json!({ "idempotencyKey": key(), "insuranceId": policy["id"], "additionalInsureds": many }),
        )
        .await;
    refused.assert_error(400, "VALIDATION_FAILED");
    assert_eq!(
        refused.json["field_errors"][0]["field"],
        "additionalInsureds"
    );
    let blank = s
        .call(
            "contractor/v1/updateInsurance",
            json!({ "idempotencyKey": key(), "insuranceId": policy["id"], "additionalInsureds": ["ok", " "] }),
        )
        .await;
    blank.assert_error(400, "VALIDATION_FAILED");
    assert_eq!(
        blank.json["field_errors"][0]["field"],
        "additionalInsureds[1]"
    );

    let w9 = s
        .mutate(
            "contractor/v1/updateProfile",
            json!({ "w9ReceivedOn": "2031-02-01" }),
        )
        .await;
    assert_eq!(w9["w9ReceivedOn"], "2031-02-01");
    let kept = s
        .mutate(
            "contractor/v1/updateProfile",
            json!({ "legalName": "Ada Plumbing LLC" }),
        )
        .await;
    assert_eq!(kept["w9ReceivedOn"], "2031-02-01");
    let cleared = s
        .mutate(
            "contractor/v1/updateProfile",
            json!({ "w9ReceivedOn": null }),
        )
        .await;
    assert_eq!(cleared["w9ReceivedOn"], Value::Null);
    s.call(
        "contractor/v1/updateProfile",
        json!({ "idempotencyKey": key(), "w9ReceivedOn": "2031-2-1" }),
    )
    .await
    .assert_error(400, "VALIDATION_FAILED");
}

/// `workOrder/v1` from both sides: an association records its community and its vendor rules
/// and invites a contractor, which accepts; each sees the link; neither reaches the other's
/// records through any procedure, with the other's ids; a third organization sees nothing.
async fn an_association_invites_a_vendor_and_neither_reads_the_other(s: TestServer) {
    let f = s.fixture().await;
    let hoa = s
        .new_tenant_of_kind("Maple Grove HOA", "board@maple.example", OrgKind::Hoa)
        .await;
    let third = s.new_tenant("Bob Electric", "bob@electric.example").await;
    // The association's mutations, each with a fresh key.
    let as_hoa = |procedure: &'static str, mut body: Value| {
        body["idempotencyKey"] = json!(key());
        s.call_as(&hoa, procedure, body)
    };
    let pool = as_hoa(
        "workOrder/v1/addProperty",
        json!({ "name": "Pool house", "kind": "common_area",
                "address": { "line1": "1 Maple Way", "city": "Springfield", "region": "IL",
                             "postalCode": "62701", "country": "US" } }),
    )
    .await
    .ok();
    assert_eq!(
        (&pool["kind"], &pool["version"]),
        (&json!("common_area"), &json!(1))
    );
    let rules = as_hoa(
        "workOrder/v1/setVendorRequirements",
        json!({ "expectedVersion": 0, "rules": [{ "trade": "plumbing", "licenseRequired": true,
                "insurance": [{ "kind": "general_liability", "minPerOccurrence": "2000000" }],
                "additionalInsured": ["general_liability"], "w9Required": true }] }),
    )
    .await
    .ok();
    assert_eq!(rules["version"], 1);
    assert_eq!(
        rules["rules"][0]["additionalInsured"],
        json!(["general_liability"])
    );
    let read = s
        .call_as(&hoa, "workOrder/v1/vendorRequirements", json!({}))
        .await
        .ok();
    assert_eq!(read["rules"], rules["rules"]);

    // The contractor (the test server's own organization) gives the association its id.
    let me = s.call("org/v1/get", json!({})).await.ok();
    let link = as_hoa(
        "workOrder/v1/inviteVendor",
        json!({ "contractorOrganizationId": me["id"] }),
    )
    .await
    .ok();
    assert_eq!(
        (&link["status"], &link["hoaOrganizationId"]),
        (&json!("invited"), &json!(hoa.org))
    );
    let seen = s.call("workOrder/v1/links", json!({})).await.ok();
    assert_eq!(seen["items"][0]["id"], link["id"]);
    let accepted = s
        .mutate(
            "workOrder/v1/answerInvitation",
            json!({ "linkId": link["id"], "accept": true, "expectedVersion": 1 }),
        )
        .await;
    assert_eq!(
        (&accepted["status"], &accepted["version"]),
        (&json!("active"), &json!(2))
    );
    let theirs = s.call_as(&hoa, "workOrder/v1/links", json!({})).await.ok();
    assert_eq!(theirs["items"][0]["status"], "active");

    // The wrong side is refused; a third organization sees and answers nothing.
    as_hoa(
        "workOrder/v1/answerInvitation",
        json!({ "linkId": link["id"], "accept": false }),
    )
    .await
    .assert_error(422, "NOT_A_CONTRACTOR");
    s.call(
        "workOrder/v1/addProperty",
        json!({ "idempotencyKey": key(), "name": "Mine", "kind": "unit",
                "address": { "line1": "1 Main St", "city": "Springfield", "region": "IL",
                             "postalCode": "62701", "country": "US" } }),
    )
    .await
    .assert_error(422, "NOT_AN_ASSOCIATION");
    let nothing = s
        .call_as(&third, "workOrder/v1/links", json!({}))
        .await
        .ok();
    assert_eq!(nothing["items"], json!([]));
    s.call_as(
        &third,
        "workOrder/v1/answerInvitation",
        json!({ "idempotencyKey": key(), "linkId": link["id"], "accept": true }),
    )
    .await
    .assert_error(404, "NOT_FOUND");

    // Linked, neither reads the other's records: the association gets nothing of the
    // contractor's with the contractor's ids, and the contractor nothing of the association's.
    let job = s.job(&f).await;
    for (procedure, body) in [
        ("customer/v1/get", json!({ "customerId": f.customer["id"] })),
        (
            "customer/v1/getProperty",
            json!({ "propertyId": f.property["id"] }),
        ),
        ("job/v1/get", json!({ "jobId": job["id"] })),
        (
            "technician/v1/getProfile",
            json!({ "technicianId": f.tech["id"] }),
        ),
    ] {
        s.call_as(&hoa, procedure, body)
            .await
            .assert_error(404, "NOT_FOUND");
    }
    let hoa_lists = [
        ("customer/v1/list", "items"),
        ("job/v1/list", "items"),
        ("contractor/v1/listCredentials", "insurance"),
    ];
    for (procedure, field) in hoa_lists {
        let listed = s.call_as(&hoa, procedure, json!({})).await.ok();
        assert_eq!(listed[field], json!([]), "{procedure}");
    }
    let mine = s.call("workOrder/v1/properties", json!({})).await.ok();
    assert_eq!(mine["items"], json!([]));
    let none = s
        .call("workOrder/v1/vendorRequirements", json!({}))
        .await
        .ok();
    assert_eq!((&none["version"], &none["rules"]), (&json!(0), &json!([])));
    s.call(
        "customer/v1/getProperty",
        json!({ "propertyId": pool["id"] }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
}
