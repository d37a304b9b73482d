//! Request rate limits over HTTP, on SQLite and on PostgreSQL: a token over its rate gets
//! `429 RATE_LIMITED` with `Retry-After`, then succeeds once it has waited; a refused mutation's
//! idempotency key is not spent; an organization's limit holds across its tokens, and a stranger
//! naming an organization does not spend it; a push counts its items.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};

use hestami::core::org::Role;
use hestami::http::limits::{Rate, RateLimits};
use support::{Backend, Reply, TestServer, key};

/// A token may make 3 requests at once, then 2 a second; an organization 4 at once, then 1 a
/// second.
async fn server(backend: Backend) -> Option<TestServer> {
    let config = hestami::http::ServerConfig {
        rate_limits: RateLimits {
            per_token: Some(Rate {
                per_second: 2,
                burst: 3,
            }),
            per_organization: Some(Rate {
                per_second: 1,
                burst: 4,
            }),
        },
        ..Default::default()
    };
    TestServer::start_with(backend, config, hestami::http::ConnectionLimits::default()).await
}

fn assert_limited(reply: &Reply, limit: &str) {
    reply.assert_error(429, "RATE_LIMITED");
    assert_eq!(reply.json["error"]["type"], "rate_limited", "{reply:?}");
    assert_eq!(reply.json["error"]["details"]["limit"], limit, "{reply:?}");
    let seconds = reply.json["error"]["details"]["retryAfterSeconds"]
        .as_u64()
        .unwrap();
    assert!((1..=2).contains(&seconds), "{reply:?}");
    assert_eq!(
        reply.headers["retry-after"].to_str().unwrap(),
        seconds.to_string(),
        "Retry-After says the same as the details"
    );
}

fn customer(idempotency_key: &str) -> Value {
    json!({ "idempotencyKey": idempotency_key, "name": "Ada Lovelace" })
}

async fn limited_then_served(s: TestServer) {
    // Org A's owner: three at once, the fourth is refused.
    for _ in 0..3 {
        s.call("customer/v1/list", json!({})).await.ok();
    }
    assert_limited(&s.call("customer/v1/list", json!({})).await, "token");

    // A mutation refused by the limit does not spend its key: after the wait it runs, once.
    let k = key();
    assert_limited(&s.call("customer/v1/create", customer(&k)).await, "token");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let created = s.call("customer/v1/create", customer(&k)).await.ok();
    let replayed = s.call("customer/v1/create", customer(&k)).await.ok();
    assert_eq!(
        created["id"], replayed["id"],
        "the same key, the same customer"
    );

    // Org B: its owner and a dispatcher share the organization's 4.
    let b = s.new_tenant("Org B", "owner-b@example.com").await;
    let dispatcher = support::Tenant {
        token: s
            .member(&b, "dispatch-b@example.com", Role::Dispatcher)
            .await,
        ..b.clone()
    };
    for _ in 0..3 {
        s.call_as(&b, "customer/v1/list", json!({})).await.ok();
    }
    s.call_as(&dispatcher, "customer/v1/list", json!({}))
        .await
        .ok();
    assert_limited(
        &s.call_as(&dispatcher, "customer/v1/list", json!({})).await,
        "organization",
    );

    // A stranger naming org D is refused, and spends only its own token's rate, not org D's.
    let d = s.new_tenant("Org D", "owner-d@example.com").await;
    let stranger = support::Tenant {
        org: d.org.clone(),
        ..s.new_tenant("Org E", "owner-e@example.com").await
    };
    for _ in 0..3 {
        s.call_as(&stranger, "customer/v1/list", json!({}))
            .await
            .assert_error(403, "NOT_A_MEMBER");
    }
    assert_limited(
        &s.call_as(&stranger, "customer/v1/list", json!({})).await,
        "token",
    );
    let d_dispatcher = support::Tenant {
        token: s
            .member(&d, "dispatch-d@example.com", Role::Dispatcher)
            .await,
        ..d.clone()
    };
    for who in [&d, &d, &d, &d_dispatcher] {
        s.call_as(who, "customer/v1/list", json!({})).await.ok();
    }

    // Org C: a push of six items counts six, more than either bucket holds (the refusal names
    // the one with the longer wait, the organization's); nothing runs.
    let c = s.new_tenant("Org C", "owner-c@example.com").await;
    let items: Vec<Value> = (0..6)
        .map(|_| json!({ "procedure": "customer/v1/create", "input": customer(&key()) }))
        .collect();
    let pushed = s
        .call_as(
            &c,
            "sync/v1/push",
            json!({ "deviceId": uuid::Uuid::new_v4(), "items": items }),
        )
        .await;
    assert_limited(&pushed, "organization");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let listed = s.call_as(&c, "customer/v1/list", json!({})).await.ok();
    assert_eq!(
        listed["items"].as_array().unwrap().len(),
        0,
        "a refused push runs none of its items: {listed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    if let Some(s) = server(Backend::Sqlite).await {
        limited_then_served(s).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    if let Some(s) = server(Backend::Postgres).await {
        limited_then_served(s).await;
    }
}
