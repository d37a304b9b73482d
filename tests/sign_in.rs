//! Signing in over HTTP, on SQLite and on PostgreSQL: an owner invites a technician, who sets a
//! password, signs in on a device, refreshes, and signs out; the owner lists and revokes the
//! technician's devices; password guessing is slowed per account and per address, and the
//! refusal says when to retry.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Value, json};

use support::{Tenant, TestServer, key};

both!(
    a_technician_is_invited_signs_in_on_a_device_refreshes_and_signs_out,
    an_owner_lists_and_revokes_a_technicians_devices,
    password_guessing_is_slowed_per_account_and_per_address,
    sign_in_refuses_bad_input_without_counting_it,
);

const PASSWORD: &str = "correct horse battery";

/// Calls a public procedure: no token, no organization.
async fn public(s: &TestServer, procedure: &str, body: Value) -> support::Reply {
    s.send(
        &format!("/api/v1/rpc/{procedure}"),
        &[],
        serde_json::to_vec(&body).unwrap(),
    )
    .await
}

/// The technician's tenant handle for a device session.
fn as_device(s: &TestServer, session: &Value) -> Tenant {
    Tenant {
        token: session["accessToken"].as_str().unwrap().to_owned(),
        ..s.a.clone()
    }
}

/// A technician invited by org A's owner, with a password set: (technician, e-mail).
async fn invited(s: &TestServer, email: &str) -> (Value, String) {
    let tech = s
        .mutate(
            "technician/v1/create",
            json!({ "name": "Dana", "trades": ["plumbing"] }),
        )
        .await;
    let invite = s
        .mutate(
            "technician/v1/invite",
            json!({ "technicianId": tech["id"], "email": email }),
        )
        .await;
    public(
        s,
        "auth/v1/acceptInvite",
        json!({ "inviteCode": invite["inviteCode"], "password": PASSWORD }),
    )
    .await
    .ok();
    (tech, email.to_owned())
}

async fn login(s: &TestServer, email: &str, device: &str) -> support::Reply {
    public(
        s,
        "auth/v1/login",
        json!({ "email": email, "password": PASSWORD, "deviceId": device,
                "deviceName": "Dana's phone" }),
    )
    .await
}

async fn a_technician_is_invited_signs_in_on_a_device_refreshes_and_signs_out(s: TestServer) {
    let tech = s
        .mutate(
            "technician/v1/create",
            json!({ "name": "Dana", "trades": ["plumbing"] }),
        )
        .await;
    // The invitation creates the user, makes them a technician member and links them; a replay
    // of the same request answers the same code.
    let body = json!({ "idempotencyKey": key(), "technicianId": tech["id"],
                       "email": "Dana@Example.com" });
    let invite = s.call("technician/v1/invite", body.clone()).await.ok();
    let again = s.call("technician/v1/invite", body).await.ok();
    assert_eq!(invite, again);
    let code = invite["inviteCode"].as_str().unwrap();
    assert!(code.starts_with("hsi_"), "{invite}");
    let linked = s
        .call("technician/v1/get", json!({ "technicianId": tech["id"] }))
        .await
        .ok();
    assert_eq!(linked["version"], invite["version"]);

    // No password yet: signing in is refused like a wrong password.
    login(&s, "dana@example.com", &key())
        .await
        .assert_error(401, "INVALID_CREDENTIALS");

    // A short password is a field error, and the code still works afterwards.
    let short = public(
        &s,
        "auth/v1/acceptInvite",
        json!({ "inviteCode": code, "password": "short" }),
    )
    .await;
    short.assert_error(400, "VALIDATION_FAILED");
    assert_eq!(short.json["field_errors"][0]["field"], "password");
    let accepted = public(
        &s,
        "auth/v1/acceptInvite",
        json!({ "inviteCode": code, "password": PASSWORD }),
    )
    .await
    .ok();
    assert_eq!(accepted["userId"], invite["userId"]);
    // A retry after a lost answer is the same answer; another password is refused.
    let retried = public(
        &s,
        "auth/v1/acceptInvite",
        json!({ "inviteCode": code, "password": PASSWORD }),
    )
    .await
    .ok();
    assert_eq!(retried, accepted);
    public(
        &s,
        "auth/v1/acceptInvite",
        json!({ "inviteCode": code, "password": "another password" }),
    )
    .await
    .assert_error(401, "INVITE_INVALID");
    public(
        &s,
        "auth/v1/acceptInvite",
        json!({ "inviteCode": "hsi_unknown", "password": PASSWORD }),
    )
    .await
    .assert_error(401, "INVITE_INVALID");

    // Signing in: the e-mail address is matched without regard to case; one organization, so
    // it need not be named.
    let device = key();
    let session = login(&s, "DANA@example.com", &device).await.ok();
    assert_eq!(session["userId"], invite["userId"]);
    assert_eq!(session["organizationId"].as_str().unwrap(), s.a.org);
    assert_eq!(session["deviceId"].as_str().unwrap(), device);
    let dana = as_device(&s, &session);
    let who = s.call_as(&dana, "auth/v1/whoami", json!({})).await.ok();
    assert_eq!(who["memberships"][0]["role"], "technician");
    // The token works as the technician: their own day, not the office's procedures.
    let day = s
        .call_as(&dana, "technician/v1/myDay", json!({}))
        .await
        .ok();
    assert_eq!(day["technician"]["technicianId"], tech["id"]);
    s.call_as(
        &dana,
        "technician/v1/devices",
        json!({ "technicianId": tech["id"] }),
    )
    .await
    .assert_error(403, "FORBIDDEN");

    // The access token is bound to its organization: in another, even one the user belongs to,
    // it is not a member's.
    let b = s.new_tenant("Org B", "owner-b@example.com").await;
    s.admin
        .add_member(
            hestami::core::ids::OrganizationId::from_uuid(b.org.parse().unwrap()),
            &hestami::core::text::Email::parse("dana@example.com").unwrap(),
            hestami::core::org::Role::Technician,
        )
        .await
        .unwrap();
    let in_b = Tenant {
        token: dana.token.clone(),
        ..b.clone()
    };
    s.call_as(&in_b, "org/v1/get", json!({}))
        .await
        .assert_error(403, "NOT_A_MEMBER");
    // With two organizations, signing in without naming one is refused with the choices.
    let choose = login(&s, "dana@example.com", &key()).await;
    choose.assert_error(422, "ORGANIZATION_REQUIRED");
    assert_eq!(
        choose.json["error"]["details"]["organizationIds"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Refresh: a new pair; the spent refresh token, presented again at once (a lost answer), gets
    // another pair and spends the first.
    let refreshed = public(
        &s,
        "auth/v1/refresh",
        json!({ "refreshToken": session["refreshToken"] }),
    )
    .await
    .ok();
    assert_ne!(refreshed["accessToken"], session["accessToken"]);
    assert_ne!(refreshed["refreshToken"], session["refreshToken"]);
    let lost = public(
        &s,
        "auth/v1/refresh",
        json!({ "refreshToken": session["refreshToken"] }),
    )
    .await
    .ok();
    assert_ne!(lost["refreshToken"], refreshed["refreshToken"]);
    let now = as_device(&s, &lost);
    s.call_as(&now, "technician/v1/myDay", json!({})).await.ok();
    public(
        &s,
        "auth/v1/refresh",
        json!({ "refreshToken": "hsr_unknown" }),
    )
    .await
    .assert_error(401, "REFRESH_TOKEN_INVALID");

    // Signing out ends the device's session: every access token of the device and its refresh
    // token stop working; signing out again is harmless but needs a live token.
    let out = s.call_as(&now, "auth/v1/logout", json!({})).await.ok();
    assert_eq!(out["signedOut"], true);
    for token in [&lost, &refreshed, &session] {
        s.call_as(&as_device(&s, token), "technician/v1/myDay", json!({}))
            .await
            .assert_error(401, "UNAUTHENTICATED");
    }
    public(
        &s,
        "auth/v1/refresh",
        json!({ "refreshToken": lost["refreshToken"] }),
    )
    .await
    .assert_error(401, "REFRESH_TOKEN_INVALID");
    s.call_as(&now, "auth/v1/logout", json!({}))
        .await
        .assert_error(401, "UNAUTHENTICATED");
    // Signing in again on the same device starts a new session.
    let org_a = s.a.org.clone();
    let back = public(
        &s,
        "auth/v1/login",
        json!({ "email": "dana@example.com", "password": PASSWORD, "deviceId": device,
                "deviceName": "Dana's phone", "organizationId": org_a }),
    )
    .await
    .ok();
    s.call_as(&as_device(&s, &back), "technician/v1/myDay", json!({}))
        .await
        .ok();
}

async fn an_owner_lists_and_revokes_a_technicians_devices(s: TestServer) {
    let (tech, email) = invited(&s, "sam@example.com").await;
    let (phone, tablet) = (key(), key());
    let on_phone = login(&s, &email, &phone).await.ok();
    let on_tablet = login(&s, &email, &tablet).await.ok();
    let listed = s
        .call(
            "technician/v1/devices",
            json!({ "technicianId": tech["id"] }),
        )
        .await
        .ok();
    let devices = listed["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2, "{listed}");
    assert!(devices.iter().all(|d| d["revokedAt"].is_null()));

    let revoked = s
        .mutate(
            "technician/v1/revokeDevice",
            json!({ "technicianId": tech["id"], "deviceId": phone }),
        )
        .await;
    assert_eq!(revoked["deviceId"].as_str().unwrap(), phone);
    assert!(revoked["revokedAt"].is_string());
    s.call_as(&as_device(&s, &on_phone), "technician/v1/myDay", json!({}))
        .await
        .assert_error(401, "UNAUTHENTICATED");
    public(
        &s,
        "auth/v1/refresh",
        json!({ "refreshToken": on_phone["refreshToken"] }),
    )
    .await
    .assert_error(401, "REFRESH_TOKEN_INVALID");
    // The other device is untouched.
    s.call_as(&as_device(&s, &on_tablet), "technician/v1/myDay", json!({}))
        .await
        .ok();

    // An unknown device, a technician with no user, and another organization's technician are
    // all not found.
    s.call(
        "technician/v1/revokeDevice",
        json!({ "idempotencyKey": key(), "technicianId": tech["id"], "deviceId": key() }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    let loner = s
        .mutate(
            "technician/v1/create",
            json!({ "name": "Lone", "trades": ["plumbing"] }),
        )
        .await;
    let none = s
        .call(
            "technician/v1/devices",
            json!({ "technicianId": loner["id"] }),
        )
        .await
        .ok();
    assert_eq!(none["devices"], json!([]));
    let b = s.new_tenant("Org B", "owner-b@example.com").await;
    s.call_as(
        &b,
        "technician/v1/devices",
        json!({ "technicianId": tech["id"] }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    s.call_as(
        &b,
        "technician/v1/revokeDevice",
        json!({ "idempotencyKey": key(), "technicianId": tech["id"], "deviceId": tablet }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    s.call_as(&as_device(&s, &on_tablet), "technician/v1/myDay", json!({}))
        .await
        .ok();
}

async fn password_guessing_is_slowed_per_account_and_per_address(s: TestServer) {
    let (_, email) = invited(&s, "lee@example.com").await;
    let wrong = |email: &str| {
        json!({ "email": email, "password": "not the password", "deviceId": key(),
                "deviceName": "guesser" })
    };
    for _ in 0..5 {
        public(&s, "auth/v1/login", wrong(&email))
            .await
            .assert_error(401, "INVALID_CREDENTIALS");
    }
    // The sixth attempt is refused before the password is looked at, even the right one, and the
    // refusal says when to retry.
    let limited = login(&s, &email, &key()).await;
    limited.assert_error(429, "RATE_LIMITED");
    assert_eq!(limited.json["error"]["type"], "rate_limited");
    assert_eq!(limited.json["error"]["details"]["limit"], "account");
    let seconds = limited.json["error"]["details"]["retryAfterSeconds"]
        .as_u64()
        .unwrap();
    assert!((1..=900).contains(&seconds), "{limited:?}");
    assert_eq!(
        limited.headers["retry-after"].to_str().unwrap(),
        seconds.to_string()
    );

    // Per address: 20 attempts in the window from one address, whatever the accounts (5 are
    // spent above; a success gives its attempt back).
    let (_, other) = invited(&s, "kim@example.com").await;
    login(&s, &other, &key()).await.ok();
    for n in 0..15 {
        public(
            &s,
            "auth/v1/login",
            wrong(&format!("nobody{n}@example.com")),
        )
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    }
    let from_here = login(&s, &other, &key()).await;
    from_here.assert_error(429, "RATE_LIMITED");
    assert_eq!(from_here.json["error"]["details"]["limit"], "address");
}

async fn sign_in_refuses_bad_input_without_counting_it(s: TestServer) {
    let (_, email) = invited(&s, "max@example.com").await;
    let cases = [
        (
            json!({ "email": "not-an-address", "password": PASSWORD, "deviceId": key(),
                 "deviceName": "x" }),
            "email",
        ),
        (
            json!({ "email": email, "password": "short", "deviceId": key(),
                 "deviceName": "x" }),
            "password",
        ),
        (
            json!({ "email": email, "password": PASSWORD, "deviceId": key(),
                 "deviceName": "  " }),
            "deviceName",
        ),
        (
            json!({ "email": email, "password": PASSWORD, "deviceId": "nope",
                 "deviceName": "x" }),
            "deviceId",
        ),
    ];
    for _ in 0..2 {
        for (body, field) in &cases {
            let reply = public(&s, "auth/v1/login", body.clone()).await;
            reply.assert_error(400, "VALIDATION_FAILED");
            assert_eq!(reply.json["field_errors"][0]["field"], *field, "{reply:?}");
        }
    }
    // Eight refusals later, the account has all its attempts.
    login(&s, &email, &key()).await.ok();
    // A public procedure ignores a token it was not asked for; a token procedure needs one.
    s.send("/api/v1/rpc/auth/v1/logout", &[], b"{}".to_vec())
        .await
        .assert_error(401, "UNAUTHENTICATED");
}
