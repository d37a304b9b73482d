//! What one request costs the database, counted (`hestami_store::counters`): transactions, the
//! ones that wrote, and statements, for `job/v1/create`, its replays and `job/v1/get`, over
//! HTTP, authentication included.
//!
//! The counters are process-wide, so this file holds one test (its own process) that runs the
//! backends one after the other and nothing else at the same time.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::json;

use hestami::store::{CounterReading, counters};
use support::{Backend, TestServer, key};

/// Sends `body` to `procedure` and returns what the request cost; it must answer `status`.
async fn cost_of(
    server: &TestServer,
    procedure: &str,
    body: serde_json::Value,
    status: u16,
) -> CounterReading {
    let before = counters();
    let reply = server.call(procedure, body).await;
    assert_eq!(reply.status, status, "{procedure}: {reply:?}");
    counters() - before
}

async fn cost(server: &TestServer, procedure: &str, body: serde_json::Value) -> CounterReading {
    cost_of(server, procedure, body, 200).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_transaction_per_request() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(server) = TestServer::start(backend).await else {
            continue;
        };
        let f = server.fixture().await;
        let create = json!({ "idempotencyKey": key(), "customerId": f.customer["id"],
            "propertyId": f.property["id"], "trade": "plumbing", "priority": "routine",
            "summary": "Counted" });
        // The token was used by the fixture a moment ago: authentication is served from the
        // cache, as it is for a client sending requests back to back.
        let created = cost(&server, "job/v1/create", create.clone()).await;
        assert_eq!(
            (created.transactions, created.write_transactions),
            (1, 1),
            "{backend:?}: a one-step workflow is one transaction: claim, effects, journal, \
             change feed and outcome ({created:?})"
        );
        let replayed = cost(&server, "job/v1/create", create.clone()).await;
        assert_eq!(
            (replayed.transactions, replayed.write_transactions),
            (0, 0),
            "{backend:?}: a success this process recorded is replayed from memory ({replayed:?})"
        );
        // A replay the process has not seen succeed (here a recorded refusal, which an operator
        // could still resume) reads the outcome in one transaction and writes nothing.
        let refused = json!({ "idempotencyKey": key(), "customerId": f.customer["id"],
            "propertyId": uuid::Uuid::now_v7(), "trade": "plumbing", "priority": "routine",
            "summary": "Nowhere" });
        let first = cost_of(&server, "job/v1/create", refused.clone(), 404).await;
        assert_eq!(
            first.write_transactions, 1,
            "{backend:?}: the refusal is recorded"
        );
        let replayed = cost_of(&server, "job/v1/create", refused, 404).await;
        assert_eq!(
            (replayed.transactions, replayed.write_transactions),
            (1, 0),
            "{backend:?}: a replay from the database reads and writes nothing ({replayed:?})"
        );
        let job = server.call("job/v1/create", create).await.ok();
        let got = cost(&server, "job/v1/get", json!({ "jobId": job["id"] })).await;
        assert_eq!(
            (got.transactions, got.write_transactions),
            (1, 0),
            "{backend:?}: a read is one read-only transaction ({got:?})"
        );
        println!("{backend:?}: create {created:?}, replay {replayed:?}, get {got:?}");

        // Past the cache's lifetime the token is read again, in a transaction of its own.
        tokio::time::sleep(hestami::store::directory::AUTH_CACHE_TTL).await;
        let cold = cost(&server, "job/v1/get", json!({ "jobId": job["id"] })).await;
        assert_eq!(cold.transactions, 2, "{backend:?}: {cold:?}");
    }
}
