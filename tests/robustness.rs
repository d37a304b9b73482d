//! What issue 9's outside testing found, each pinned by a test that failed before its fix: a
//! refusal that burnt the idempotency key, JSON read more loosely than documented, media types,
//! envelope types and trace ids, slow and greedy clients, and requests abandoned half-way.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::{Backend, Reply, TestServer, key};

both!(
    a_refusal_leaves_the_key_free_for_the_corrected_request,
    json_is_read_strictly,
    media_types_statuses_and_trace_ids,
    an_abandoned_request_still_finishes,
    trades_come_from_the_catalogue,
    scheduling_refuses_a_property_outside_every_service_area,
);

/// Sends `body` (with `key`) to `procedure`.
async fn with_key(s: &TestServer, procedure: &str, key: &str, mut body: Value) -> Reply {
    body["idempotencyKey"] = json!(key);
    s.call(procedure, body).await
}

fn in_days(days: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(days)).to_rfc3339()
}

fn service(price: &str) -> Value {
    json!({ "kind": "service", "price": price, "estimatedLaborHours": "1", "trade": "plumbing" })
}

fn custom_lines(price: &str, quantity: &str) -> Value {
    json!([{ "description": "Service call", "kind": "service", "unitPrice": price,
             "quantity": quantity }])
}

/// Every refusal the outside testing found recorded inside a workflow, as (procedure, a bad
/// body, the corrected body): the bad one is a `400`, and the corrected one with the same key
/// goes through. Then the bad one again with that key is another request (`422`).
async fn a_refusal_leaves_the_key_free_for_the_corrected_request(s: TestServer) {
    let f = s.fixture().await;
    let job = s.job(&f).await;
    let plumber = s
        .mutate(
            "pricebook/v1/createItem",
            json!({ "name": "Drain clearing", "details": service("150.00") }),
        )
        .await;
    let invoice = s
        .mutate(
            "invoice/v1/create",
            json!({ "jobId": job["id"], "from": { "from": "lines", "lines": custom_lines("200.00", "1") } }),
        )
        .await;
    let issued = s
        .mutate("invoice/v1/issue", json!({ "invoiceId": invoice["id"] }))
        .await;
    let paid = s
        .mutate(
            "invoice/v1/collectPayment",
            json!({ "invoiceId": issued["id"], "amount": "50.00", "method": "cash" }),
        )
        .await;
    let payment_id = paid["payments"][0]["id"].clone();
    assert!(payment_id.is_string(), "{paid}");

    let generate = |lines: Value, extra: Value| {
        let mut body = json!({ "jobId": job["id"], "validUntil": in_days(7),
                               "options": [{ "name": "Only", "lines": lines }] });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let item_line = |quantity: &str| json!([{ "itemId": plumber["id"], "quantity": quantity }]);
    let payment =
        |amount: &str| json!({ "invoiceId": issued["id"], "amount": amount, "method": "cash" });
    let refund = |amount: &str| json!({ "paymentId": payment_id, "amount": amount, "reason": "overcharged" });
    let cases: Vec<(&str, &str, Value, Value)> = vec![
        (
            "payment of zero",
            "invoice/v1/collectPayment",
            payment("0.00"),
            payment("10.00"),
        ),
        (
            "negative payment",
            "invoice/v1/collectPayment",
            payment("-5.00"),
            payment("10.00"),
        ),
        (
            "payment too precise",
            "invoice/v1/collectPayment",
            payment("1.001"),
            payment("1.00"),
        ),
        (
            "refund of zero",
            "invoice/v1/refund",
            refund("0"),
            refund("5.00"),
        ),
        (
            "negative refund",
            "invoice/v1/refund",
            refund("-1.00"),
            refund("5.00"),
        ),
        (
            "refund too precise",
            "invoice/v1/refund",
            refund("0.001"),
            refund("1.00"),
        ),
        (
            "zero quantity",
            "estimate/v1/generate",
            generate(item_line("0"), json!({})),
            generate(item_line("1"), json!({})),
        ),
        (
            "negative quantity",
            "estimate/v1/generate",
            generate(item_line("-2"), json!({})),
            generate(item_line("2"), json!({})),
        ),
        (
            "quantity too precise",
            "estimate/v1/generate",
            generate(item_line("1.0000001"), json!({})),
            generate(item_line("1.5"), json!({})),
        ),
        (
            "negative discount",
            "estimate/v1/generate",
            generate(item_line("1"), json!({})).tap(|b| {
                b["options"][0]["discount"] = json!({ "type": "amount", "amount": "-5.00" })
            }),
            generate(item_line("1"), json!({})).tap(|b| {
                b["options"][0]["discount"] = json!({ "type": "amount", "amount": "5.00" })
            }),
        ),
        (
            "validUntil in the past",
            "estimate/v1/generate",
            generate(item_line("1"), json!({ "validUntil": in_days(-1) })),
            generate(item_line("1"), json!({})),
        ),
        (
            "neither a job nor a customer",
            "estimate/v1/generate",
            json!({ "validUntil": in_days(7), "options": [{ "name": "Only", "lines": item_line("1") }] }),
            generate(item_line("1"), json!({})),
        ),
        (
            "negative unit price",
            "invoice/v1/create",
            json!({ "jobId": job["id"], "from": { "from": "lines", "lines": custom_lines("-1.00", "1") } }),
            json!({ "jobId": job["id"], "from": { "from": "lines", "lines": custom_lines("1.00", "1") } }),
        ),
        (
            "a name already used",
            "pricebook/v1/createItem",
            json!({ "name": "Drain clearing", "details": service("150.00") }),
            json!({ "name": "Drain clearing, deluxe", "details": service("250.00") }),
        ),
    ];
    for (what, procedure, bad, good) in cases {
        let k = key();
        let refused = with_key(&s, procedure, &k, bad.clone()).await;
        assert_eq!(refused.status, 400, "{what}: {refused:?}");
        assert!(
            !refused.json["field_errors"].as_array().unwrap().is_empty(),
            "{what}: a 400 names its fields: {refused:?}"
        );
        // The same bad request again: refused again, the same way, nothing recorded.
        let again = with_key(&s, procedure, &k, bad.clone()).await;
        assert_eq!(again.status, 400, "{what}: {again:?}");
        let accepted = with_key(&s, procedure, &k, good.clone()).await;
        assert_eq!(
            accepted.status, 200,
            "{what}: the corrected request: {accepted:?}"
        );
        let replay = with_key(&s, procedure, &k, good).await;
        assert_eq!(replay.bytes, accepted.bytes, "{what}: the replay");
        with_key(&s, procedure, &k, bad)
            .await
            .assert_error(422, "IDEMPOTENCY_KEY_REUSED");
        // No failed workflow was left behind for the refused attempts.
        let workflows = s
            .call(
                "workflow/v1/list",
                json!({ "status": "failed", "limit": 200 }),
            )
            .await
            .ok();
        let keyed: Vec<_> = workflows["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w["idempotencyKey"] == json!(k))
            .collect();
        assert!(keyed.is_empty(), "{what}: {keyed:?}");
    }

    // Concurrent duplicates of a refused request: each is refused, none is left waiting on a
    // claim that was dropped, and the key is still free afterwards.
    let k = key();
    let bad = payment("0.00");
    let replies = futures::future::join_all(
        (0..8).map(|_| with_key(&s, "invoice/v1/collectPayment", &k, bad.clone())),
    )
    .await;
    for reply in &replies {
        assert_eq!(reply.status, 400, "{reply:?}");
    }
    let accepted = with_key(&s, "invoice/v1/collectPayment", &k, payment("1.00")).await;
    assert_eq!(accepted.status, 200, "{accepted:?}");

    // A refusal that is an answer about the state of things (409, 422) is recorded: the key
    // stands for it, as the README says.
    let k = key();
    let transition = json!({ "jobId": job["id"], "status": "completed" });
    with_key(&s, "job/v1/updateStatus", &k, transition.clone())
        .await
        .assert_error(409, "JOB_INVALID_TRANSITION");
    with_key(
        &s,
        "job/v1/updateStatus",
        &k,
        json!({ "jobId": job["id"], "status": "cancelled" }),
    )
    .await
    .assert_error(422, "IDEMPOTENCY_KEY_REUSED");
}

trait Tap {
    fn tap(self, f: impl FnOnce(&mut Self)) -> Self;
}

impl Tap for Value {
    fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}

async fn raw(s: &TestServer, procedure: &str, content_type: &str, body: &str) -> Reply {
    let auth = format!("Bearer {}", s.a.token);
    let response = s
        .http
        .post(format!("{}/api/v1/rpc/{procedure}", s.base))
        .header("authorization", auth)
        .header("x-organization-id", &s.a.org)
        .header("content-type", content_type)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    TestServer::reply(response).await
}

async fn json_is_read_strictly(s: TestServer) {
    // A member named twice is refused, with its path, rather than the last one winning.
    let k = key();
    let reply = raw(
        &s,
        "customer/v1/create",
        "application/json",
        &format!(r#"{{"idempotencyKey":"{k}","name":"Ada","name":"Eve"}}"#),
    )
    .await;
    reply.assert_error(400, "VALIDATION_FAILED");
    assert_eq!(reply.json["field_errors"][0]["field"], "name");
    assert_eq!(reply.json["field_errors"][0]["code"], "duplicate_member");
    let nested = raw(
        &s,
        "customer/v1/addProperty",
        "application/json",
        &format!(
            r#"{{"idempotencyKey":"{k}","customerId":"{}","address":{{"city":"A","city":"B"}}}}"#,
            uuid::Uuid::new_v4()
        ),
    )
    .await;
    assert_eq!(nested.json["field_errors"][0]["field"], "address.city");
    // Nothing was recorded under the key: it still works.
    let created = raw(
        &s,
        "customer/v1/create",
        "application/json",
        &format!(r#"{{"idempotencyKey":"{k}","name":"Ada"}}"#),
    )
    .await;
    assert_eq!(created.status, 200, "{created:?}");

    // An integral number is an integer, as JSON Schema says.
    let listed = s.call("customer/v1/list", json!({ "limit": 1.0 })).await;
    assert_eq!(listed.status, 200, "{listed:?}");
    s.call("customer/v1/list", json!({ "limit": 1.5 }))
        .await
        .assert_error(400, "VALIDATION_FAILED");

    // One strict parser per wire type: what the outside testing found accepted is refused.
    let refusals: Vec<(&str, Value, &str)> = vec![
        (
            "contractor/v1/addLicense",
            json!({ "trade": "plumbing", "jurisdiction": { "country": "US", "region": "IL" },
                    "number": "PL-1", "expiresOn": "-0001-01-01" }),
            "expiresOn",
        ),
        (
            "contractor/v1/addLicense",
            json!({ "trade": "plumbing", "jurisdiction": { "country": "US", "region": "IL" },
                    "number": "PL-1", "expiresOn": "2031-1-1" }),
            "expiresOn",
        ),
        (
            "pricebook/v1/setTaxRates",
            json!({ "rates": [{ "jurisdiction": { "country": "US", "region": "IL" }, "name": "Sales tax",
                    "percent": "1E+2", "taxable": { "service": false, "material": true, "labor": false,
                    "equipment": false } }] }),
            "rates[0].percent",
        ),
        (
            "pricebook/v1/createItem",
            json!({ "name": "Spaced", "details": { "kind": "service", "price": " 10.00",
                    "estimatedLaborHours": "1", "trade": "plumbing" } }),
            "details.price",
        ),
        (
            "pricebook/v1/createItem",
            json!({ "name": "Plus", "details": { "kind": "service", "price": "+10.00",
                    "estimatedLaborHours": "1", "trade": "plumbing" } }),
            "details.price",
        ),
        (
            "job/v1/list",
            json!({ "from": "2031-03-03 14:00:00Z" }),
            "from",
        ),
    ];
    for (procedure, mut body, field) in refusals {
        if procedure != "job/v1/list" {
            body["idempotencyKey"] = json!(key());
        }
        let reply = s.call(procedure, body).await;
        reply.assert_error(400, "VALIDATION_FAILED");
        let fields: Vec<&str> = reply.json["field_errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(fields.contains(&field), "{procedure} {field}: {reply:?}");
    }

    // A NUL in any string is refused at its path (PostgreSQL answered 500 for one in an e-mail
    // address, found by schemathesis).
    let nul = s
        .mutate("customer/v1/create", json!({ "name": "Nul" }))
        .await;
    let reply = s
        .call(
            "customer/v1/update",
            json!({ "idempotencyKey": key(), "customerId": nul["id"],
                    "email": "a\u{0}b@example.com" }),
        )
        .await;
    reply.assert_error(400, "VALIDATION_FAILED");
    assert_eq!(reply.json["field_errors"][0]["field"], "email", "{reply:?}");
    assert_eq!(reply.json["field_errors"][0]["code"], "invalid_characters");

    // An object is never read from an array (serde's derived structs would take the fields in
    // order): a location as [lat, lon] is refused, naming the field.
    let customer = s
        .mutate("customer/v1/create", json!({ "name": "Array" }))
        .await;
    let reply = s
        .call(
            "customer/v1/addProperty",
            json!({ "idempotencyKey": key(), "customerId": customer["id"],
                    "address": { "line1": "1 Main St", "city": "Chicago", "region": "IL",
                                 "postalCode": "60601", "country": "US" },
                    "location": [41.88, -87.63] }),
        )
        .await;
    reply.assert_error(400, "VALIDATION_FAILED");
    assert_eq!(
        reply.json["field_errors"][0]["field"], "location",
        "{reply:?}"
    );
    let reply = s
        .call(
            "customer/v1/addProperty",
            json!({ "idempotencyKey": key(), "customerId": customer["id"],
                    "address": ["1 Main St", null, "Chicago", "IL", "60601", "US"] }),
        )
        .await;
    reply.assert_error(400, "VALIDATION_FAILED");
    assert_eq!(
        reply.json["field_errors"][0]["field"], "address",
        "{reply:?}"
    );

    // The key in any spelling is the same request: upper case and braces included.
    let k = uuid::Uuid::new_v4();
    let first = with_key(
        &s,
        "customer/v1/create",
        &k.to_string(),
        json!({ "name": "Key" }),
    )
    .await;
    assert_eq!(first.status, 200);
    for spelling in [
        k.hyphenated().to_string().to_uppercase(),
        k.braced().to_string(),
        k.simple().to_string(),
    ] {
        let again = with_key(
            &s,
            "customer/v1/create",
            &spelling,
            json!({ "name": "Key" }),
        )
        .await;
        assert_eq!(again.bytes, first.bytes, "{spelling}: {again:?}");
    }
}

async fn media_types_statuses_and_trace_ids(s: TestServer) {
    let body = format!(r#"{{"idempotencyKey":"{}","name":"Ada"}}"#, key());
    for accepted in [
        "application/json",
        "APPLICATION/JSON",
        "Application/Json; charset=UTF-8",
        "application/json;charset=\"utf-8\"",
    ] {
        let reply = raw(&s, "customer/v1/create", accepted, &body).await;
        assert_eq!(reply.status, 200, "{accepted}: {reply:?}");
    }
    for refused in [
        "application/json-patch+json",
        "application/jsonx",
        "text/plain",
        "application/json; charset=latin1",
        "application/json; version=2",
    ] {
        let reply = raw(&s, "customer/v1/create", refused, &body).await;
        reply.assert_error(415, "UNSUPPORTED_MEDIA_TYPE");
        assert_eq!(reply.json["error"]["type"], "validation", "{refused}");
    }

    // Every status has its documented type.
    let url = format!("{}/api/v1/rpc/customer/v1/list", s.base);
    let get = TestServer::reply(s.http.get(&url).send().await.unwrap()).await;
    assert_eq!(get.status, 405);
    assert_eq!(get.json["error"]["type"], "validation");
    // A body announced over the limit is refused before it is read.
    let address = s.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(
            format!(
                "POST /api/v1/rpc/customer/v1/create HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
                 X-Organization-Id: {}\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n\
                 Connection: close\r\n\r\n",
                s.a.token, s.a.org
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(r#""type":"validation""#), "{answer}");
    let readme = include_str!("../README.md");
    for (status, kind) in hestami::http::error::STATUS_TYPES {
        let code = axum_status(*status);
        assert_eq!(hestami::http::error::kind_of(code), *kind, "{status}");
        let row = format!("| {status} | `{kind}` |");
        assert!(readme.contains(&row), "the README lists {row}");
    }

    // A response has one trace id: its header and its body agree, replay or not.
    let refusal =
        json!({ "idempotencyKey": key(), "jobId": uuid::Uuid::new_v4(), "status": "completed" });
    for _ in 0..2 {
        let reply = s.call("job/v1/updateStatus", refusal.clone()).await;
        reply.assert_error(404, "NOT_FOUND");
        assert_eq!(
            reply.json["trace_id"].as_str().unwrap(),
            reply.headers["x-trace-id"].to_str().unwrap()
        );
    }

    // Liveness and readiness.
    let health = s
        .http
        .get(format!("{}/health", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = s
        .http
        .get(format!("{}/ready", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

fn axum_status(code: u16) -> reqwest::StatusCode {
    reqwest::StatusCode::from_u16(code).unwrap()
}

/// A client that gives up mid-request does not stop the request: it runs to its end, and the
/// retry with the same key gets its outcome at once, not a lease to wait out.
async fn an_abandoned_request_still_finishes(s: TestServer) {
    let f = s.fixture().await;
    for n in 0..20 {
        let k = key();
        let body = json!({ "idempotencyKey": k, "customerId": f.customer["id"],
                           "propertyId": f.property["id"], "trade": "plumbing",
                           "priority": "routine", "summary": format!("Abandoned {n}") });
        let client = reqwest::Client::builder()
            .timeout(Duration::from_micros(200 * (n + 1)))
            .build()
            .unwrap();
        let _ = client
            .post(format!("{}/api/v1/rpc/job/v1/create", s.base))
            .header("authorization", format!("Bearer {}", s.a.token))
            .header("x-organization-id", &s.a.org)
            .json(&body)
            .send()
            .await;
        let retry = s.call("job/v1/create", body).await;
        assert_eq!(retry.status, 200, "{retry:?}");
    }
    let jobs = s.call("job/v1/list", json!({ "limit": 200 })).await.ok();
    let abandoned = jobs["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["summary"].as_str().unwrap().starts_with("Abandoned"))
        .count();
    assert_eq!(abandoned, 20, "each abandoned create happened exactly once");
}

// ---------------------------------------------------------------------------------------------
// Slow and greedy clients: a server of its own with small limits.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_greedy_clients_are_cut_off() {
    let config = hestami::http::ServerConfig {
        body_read_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let limits = hestami::http::ConnectionLimits {
        header_read_timeout: Duration::from_secs(1),
        max_connections: 6,
        max_connections_per_address: 3,
    };
    let s = TestServer::start_with(Backend::Sqlite, config, limits)
        .await
        .unwrap();
    let address = s.base.trim_start_matches("http://").to_owned();

    // A stalled head: a request line and one header, then nothing. The server hangs up.
    let mut stalled = tokio::net::TcpStream::connect(&address).await.unwrap();
    stalled
        .write_all(b"POST /api/v1/rpc/customer/v1/list HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buffer = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(30), stalled.read_to_end(&mut buffer)).await;
    assert!(read.is_ok(), "the server never closed a stalled head");

    // A stalled body: the head announces 100 bytes and 10 arrive. The answer is 408.
    let mut slow_body = tokio::net::TcpStream::connect(&address).await.unwrap();
    let auth = format!("Bearer {}", s.a.token);
    slow_body
        .write_all(
            format!(
                "POST /api/v1/rpc/customer/v1/list HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
                 X-Organization-Id: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"limit\":",
                s.a.org
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), slow_body.read_to_end(&mut answer))
        .await
        .expect("the server answers a stalled body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("REQUEST_TIMEOUT"), "{answer}");

    // A flood from one address: past the cap, a connection is answered 503 and closed.
    let mut held = Vec::new();
    for _ in 0..3 {
        let connection = tokio::net::TcpStream::connect(&address).await.unwrap();
        held.push(connection);
    }
    let mut extra = tokio::net::TcpStream::connect(&address).await.unwrap();
    let mut refused = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), extra.read_to_end(&mut refused))
        .await
        .expect("the extra connection is closed")
        .unwrap();
    let refused = String::from_utf8_lossy(&refused);
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("retry-after: 1"), "{refused}");
    assert!(refused.contains("TOO_MANY_CONNECTIONS"), "{refused}");
    // The held connections are idle heads: the header timeout closes them too, and the
    // address may connect again.
    for mut connection in held {
        let mut sink = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), connection.read_to_end(&mut sink))
            .await
            .expect("an idle connection is closed")
            .unwrap();
    }
    let listed = s.call("customer/v1/list", json!({})).await;
    assert_eq!(listed.status, 200, "{listed:?}");
}

// ---------------------------------------------------------------------------------------------
// Calls abandoned at every await point leave every pooled connection idle (PostgreSQL).
// ---------------------------------------------------------------------------------------------

/// Counts the PostgreSQL notices sqlx logs that betray a connection handed on inside a
/// transaction: "there is already a transaction in progress" (a `BEGIN` inside a leaked one)
/// and "there is no transaction in progress" (a `COMMIT` or `ROLLBACK` outside one).
struct TransactionNotices(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for TransactionNotices {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Find(bool);
        impl tracing::field::Visit for Find {
            fn record_debug(&mut self, _: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0 |= format!("{value:?}").contains("transaction in progress");
            }
            fn record_str(&mut self, _: &tracing::field::Field, value: &str) {
                self.0 |= value.contains("transaction in progress");
            }
        }
        let mut find = Find(false);
        event.record(&mut find);
        if find.0 {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

#[test]
fn calls_cancelled_at_every_await_point_leave_connections_idle() {
    use hestami::store::app::customer::{CustomerCommand, NewCustomer};
    use hestami::store::app::{PageRequest, Request};
    use tracing_subscriber::layer::SubscriberExt as _;

    let notices = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let subscriber = tracing_subscriber::registry().with(TransactionNotices(notices.clone()));
    // One thread, so that every task (and the connections' own logging) reports here.
    let _guard = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let Some(s) = TestServer::start(Backend::Postgres).await else {
            return;
        };
        let caller = TestServer::caller(&s.a);
        let keys: Vec<uuid::Uuid> = (0..150).map(|_| uuid::Uuid::new_v4()).collect();
        let request = |key: uuid::Uuid, n: usize| Request {
            idempotency_key: key,
            fingerprint: format!("fingerprint-{n}"),
            trace_id: None,
            command: CustomerCommand::Create(NewCustomer {
                name: hestami::core::text::Name::parse(&format!("Cancelled {n}")).unwrap(),
                email: None,
                phone: None,
            }),
        };
        // Cut each call off after a different delay, from before its first await to after its
        // last: before and after BEGIN, between statements, during COMMIT.
        for (n, key) in keys.iter().enumerate() {
            let cut = Duration::from_micros(((n * 53) % 4000) as u64);
            let _ = tokio::time::timeout(cut, s.services.submit(&caller, request(*key, n))).await;
            let page = PageRequest {
                limit: 5,
                after: None,
            };
            let _ = tokio::time::timeout(cut, s.services.customer_list(&caller, page, None)).await;
        }
        // Every cut-off create finished anyway, exactly once: its retry replays it.
        for (n, key) in keys.iter().enumerate() {
            let done = s.services.submit(&caller, request(*key, n)).await.unwrap();
            assert!(done.outcome.is_ok(), "{done:?}");
        }
        let all = s
            .services
            .customer_list(
                &caller,
                PageRequest {
                    limit: 200,
                    after: None,
                },
                None,
            )
            .await
            .unwrap();
        let cancelled = all
            .items
            .iter()
            .filter(|c| c.name.as_str().starts_with("Cancelled"))
            .count();
        assert_eq!(cancelled, keys.len(), "each create happened once");
        // No connection of the pool sits inside a transaction.
        let pool = sqlx::PgPool::connect(&s.db.owner_url).await.unwrap();
        let in_transaction: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND state LIKE 'idle in transaction%'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        pool.close().await;
        assert_eq!(
            in_transaction, 0,
            "pooled connections left inside a transaction"
        );
    });
    assert_eq!(
        notices.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a connection was handed on inside a transaction"
    );
}

// ---------------------------------------------------------------------------------------------
// Safety rules that could be walked around.
// ---------------------------------------------------------------------------------------------

#[track_caller]
fn field_error(reply: &Reply, field: &str) -> String {
    reply.json["field_errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["field"] == field)
        .unwrap_or_else(|| panic!("no field error for {field}: {reply:?}"))["message"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A typo in a trade no longer slips past the licence gate: every procedure that takes a trade
/// refuses one outside the organization's catalogue, naming the field and the closest trade.
async fn trades_come_from_the_catalogue(s: TestServer) {
    let f = s.fixture().await;
    let job = json!({ "idempotencyKey": key(), "customerId": f.customer["id"],
                      "propertyId": f.property["id"], "trade": "plumbng", "priority": "routine",
                      "summary": "Typo" });
    let refused = s.call("job/v1/create", job).await;
    refused.assert_error(422, "TRADE_UNKNOWN");
    assert!(
        field_error(&refused, "trade").contains("did you mean plumbing?"),
        "{refused:?}"
    );
    let refused = s
        .call(
            "technician/v1/create",
            json!({ "idempotencyKey": key(), "name": "Typo", "trades": ["plumbing", "hvca"] }),
        )
        .await;
    refused.assert_error(422, "TRADE_UNKNOWN");
    assert!(field_error(&refused, "trades[1]").contains("did you mean hvac?"));
    let refused = s
        .call(
            "technician/v1/setSkills",
            json!({ "idempotencyKey": key(), "technicianId": f.tech["id"],
                    "skills": [{ "trade": "plumbing", "level": 3 }, { "trade": "electrcial", "level": 2 }] }),
        )
        .await;
    refused.assert_error(422, "TRADE_UNKNOWN");
    field_error(&refused, "skills[1].trade");
    let refused = s
        .call(
            "pricebook/v1/createItem",
            json!({ "idempotencyKey": key(), "name": "Typo service",
                    "details": { "kind": "service", "price": "10.00", "estimatedLaborHours": "1", "trade": "plumbng" } }),
        )
        .await;
    refused.assert_error(422, "TRADE_UNKNOWN");
    field_error(&refused, "details.trade");

    // The catalogue is data: the organization sets its own.
    let default = s.call("contractor/v1/getTrades", json!({})).await.ok();
    assert_eq!(default["version"], 0);
    assert!(
        default["trades"]
            .as_array()
            .unwrap()
            .contains(&json!("plumbing"))
    );
    let set = s
        .mutate(
            "contractor/v1/setTrades",
            json!({ "trades": ["plumbing", "Aquarium Service", "plumbing"], "expectedVersion": 0 }),
        )
        .await;
    assert_eq!(set["version"], 1);
    assert_eq!(set["trades"], json!(["aquarium_service", "plumbing"]));
    let tech = s
        .mutate(
            "technician/v1/create",
            json!({ "name": "Fish", "trades": ["aquarium_service"] }),
        )
        .await;
    assert_eq!(tech["trades"], json!(["aquarium_service"]));
    // hvac is not in this organization's catalogue any more.
    s.call(
        "technician/v1/create",
        json!({ "idempotencyKey": key(), "name": "Air", "trades": ["hvac"] }),
    )
    .await
    .assert_error(422, "TRADE_UNKNOWN");
    s.call(
        "contractor/v1/setTrades",
        json!({ "idempotencyKey": key(), "trades": [] }),
    )
    .await
    .assert_error(400, "VALIDATION_FAILED");
    // Another organization still has the default catalogue.
    let b = s.new_tenant("Org B", "owner-b@example.com").await;
    let theirs = s
        .call_as(&b, "contractor/v1/getTrades", json!({}))
        .await
        .ok();
    assert_eq!(theirs["version"], 0);
}

/// A job at a property outside every service area of the organization is refused when it is
/// scheduled, with the reason, among compliance's other reasons.
async fn scheduling_refuses_a_property_outside_every_service_area(s: TestServer) {
    let f = s.fixture().await;
    let far = s
        .mutate(
            "customer/v1/addProperty",
            json!({ "customerId": f.customer["id"], "address": { "line1": "9 Far Rd", "city": "Peoria",
                    "region": "IL", "postalCode": "61602", "country": "US" } }),
        )
        .await;
    let job = s
        .mutate(
            "job/v1/create",
            json!({ "customerId": f.customer["id"], "propertyId": far["id"], "trade": "plumbing",
                    "priority": "routine", "summary": "Far away" }),
        )
        .await;
    let (start, end) = TestServer::window();
    let refused = s
        .call(
            "job/v1/schedule",
            json!({ "idempotencyKey": key(), "jobId": job["id"], "windowStart": start, "windowEnd": end }),
        )
        .await;
    refused.assert_error(422, "COMPLIANCE_REQUIREMENTS_NOT_MET");
    let reasons = refused.json["error"]["details"]["reasons"]
        .as_array()
        .unwrap();
    assert!(
        reasons.iter().any(|r| r["code"] == "OUTSIDE_SERVICE_AREA"),
        "{refused:?}"
    );
    // The same job at a covered property schedules.
    let near = s.job(&f).await;
    let scheduled = s
        .call(
            "job/v1/schedule",
            json!({ "idempotencyKey": key(), "jobId": near["id"], "windowStart": start, "windowEnd": end }),
        )
        .await;
    assert_eq!(scheduled.status, 200, "{scheduled:?}");
}
