//! End-to-end tests of inventory over HTTP, on SQLite and on PostgreSQL: receiving, transfers to
//! a truck, usage on a job billed from its actuals, cycle counts, never overselling under 16
//! concurrent technicians, and other organizations and roles.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Value, json};

use hestami::core::org::Role;
use support::{Fixture, TestServer, key};

both!(
    stock_from_the_warehouse_to_the_truck_to_the_invoice,
    sixteen_technicians_never_oversell,
    other_organizations_and_roles,
);

/// A copper fitting at 3.333 a unit in the pricebook, a warehouse, and the fixture technician's
/// truck.
async fn stockroom(s: &TestServer, f: &Fixture) -> (Value, Value, Value) {
    let item = s
        .mutate(
            "pricebook/v1/createItem",
            json!({ "name": "Copper fitting",
                    "details": { "kind": "material", "sku": "CU-12", "unit": "each", "cost": "3.333",
                                 "pricing": { "rule": "explicit", "price": "9.50" } } }),
        )
        .await;
    let warehouse = s
        .mutate(
            "inventory/v1/createLocation",
            json!({ "kind": "warehouse", "name": "Main warehouse" }),
        )
        .await;
    let truck = s
        .mutate(
            "inventory/v1/createLocation",
            json!({ "kind": "truck", "name": "Grace's van", "technicianId": f.tech["id"] }),
        )
        .await;
    (item, warehouse, truck)
}

async fn on_hand(s: &TestServer, item: &Value, location: &Value) -> String {
    let stock = s
        .call(
            "inventory/v1/stock",
            json!({ "itemId": item["id"], "locationId": location["id"] }),
        )
        .await
        .ok();
    stock["items"][0]["onHand"]
        .as_str()
        .unwrap_or("none")
        .to_owned()
}

async fn stock_from_the_warehouse_to_the_truck_to_the_invoice(s: TestServer) {
    let f = s.fixture().await;
    let (item, warehouse, truck) = stockroom(&s, &f).await;
    s.call(
        "inventory/v1/createLocation",
        json!({ "idempotencyKey": key(), "kind": "truck", "name": "Again", "technicianId": f.tech["id"] }),
    )
    .await
    .assert_error(409, "TRUCK_EXISTS");

    // Two receipts move the average cost: (10 × 3 + 5 × 6) ÷ 15 = 4.
    for (quantity, cost) in [("10", "3.00"), ("5", "6.00")] {
        s.mutate(
            "inventory/v1/receive",
            json!({ "itemId": item["id"], "locationId": warehouse["id"], "quantity": quantity,
                    "unitCost": cost }),
        )
        .await;
    }
    let moved = s
        .mutate(
            "inventory/v1/transfer",
            json!({ "itemId": item["id"], "fromLocationId": warehouse["id"],
                    "toLocationId": truck["id"], "quantity": "6" }),
        )
        .await;
    let entries = moved["entries"].as_array().unwrap();
    assert_eq!(
        (
            &entries[0]["kind"],
            &entries[1]["kind"],
            &entries[0]["counterpartId"]
        ),
        (
            &json!("transfer_out"),
            &json!("transfer_in"),
            &entries[1]["id"]
        )
    );
    assert_eq!(entries[0]["unitCost"], "4");
    assert_eq!(on_hand(&s, &item, &warehouse).await, "9");
    assert_eq!(on_hand(&s, &item, &truck).await, "6");

    // Used on the job of the truck's technician: from the truck by default, on the actuals.
    let job = s.job(&f).await;
    s.schedule_and_assign(&job, &f.tech).await;
    let used = s
        .mutate(
            "inventory/v1/recordUsage",
            json!({ "jobId": job["id"], "itemId": item["id"], "quantity": "2" }),
        )
        .await;
    assert_eq!(
        (
            &used["entries"][0]["kind"],
            &used["entries"][0]["locationId"],
            &used["entries"][0]["unitCost"]
        ),
        (&json!("consumption"), &truck["id"], &json!("4"))
    );
    assert_eq!(used["work"]["actuals"][0]["itemId"], item["id"]);
    assert_eq!(used["work"]["actuals"][0]["quantity"], "2");
    assert_eq!(on_hand(&s, &item, &truck).await, "4");
    // Not more than the truck holds; the refusal says what is there, and nothing changes.
    let too_much = s
        .call(
            "inventory/v1/recordUsage",
            json!({ "idempotencyKey": key(), "jobId": job["id"], "itemId": item["id"], "quantity": "4.5" }),
        )
        .await;
    too_much.assert_error(422, "INSUFFICIENT_STOCK");
    assert_eq!(too_much.json["error"]["details"]["available"], "4");
    let work = s
        .call("job/v1/work", json!({ "jobId": job["id"] }))
        .await
        .ok();
    assert_eq!(work["actuals"].as_array().map(Vec::len), Some(1));

    // A cycle count finds 3 on the truck: the difference is posted with its reason.
    let counted = s
        .mutate(
            "inventory/v1/adjust",
            json!({ "itemId": item["id"], "locationId": truck["id"], "mode": "count",
                    "quantity": "3", "reason": "cycle count" }),
        )
        .await;
    assert_eq!(
        (
            &counted["entries"][0]["delta"],
            &counted["entries"][0]["reason"]
        ),
        (&json!("-1"), &json!("cycle count"))
    );
    s.call(
        "inventory/v1/adjust",
        json!({ "idempotencyKey": key(), "itemId": item["id"], "locationId": truck["id"],
                "quantity": "0", "reason": "nothing" }),
    )
    .await
    .assert_error(400, "VALIDATION_FAILED");
    // A count that confirms what is there writes nothing.
    let confirmed = s
        .mutate(
            "inventory/v1/adjust",
            json!({ "itemId": item["id"], "locationId": truck["id"], "mode": "count",
                    "quantity": "3.0000", "reason": "cycle count" }),
        )
        .await;
    assert_eq!(confirmed["entries"], json!([]));
    // Usage is a line of the job's actuals: at most 1,000,000 at once.
    s.call(
        "inventory/v1/recordUsage",
        json!({ "idempotencyKey": key(), "jobId": job["id"], "itemId": item["id"], "quantity": "1000001" }),
    )
    .await
    .assert_error(400, "VALIDATION_FAILED");

    // The ledger is the history, and the balances are its sums.
    let ledger = s
        .call("inventory/v1/ledger", json!({ "itemId": item["id"] }))
        .await
        .ok();
    let kinds: Vec<&str> = ledger["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "receipt",
            "receipt",
            "transfer_out",
            "transfer_in",
            "consumption",
            "adjustment"
        ]
    );
    let stock = s
        .call("inventory/v1/stock", json!({ "itemId": item["id"] }))
        .await
        .ok();
    // 9 + 3 on hand at 4.00: 48.00.
    assert_eq!(stock["value"], "48.00", "{stock}");

    // The job is billed for what it used, at the pricebook's price.
    for status in [
        "dispatched",
        "en_route",
        "on_site",
        "in_progress",
        "completed",
    ] {
        s.mutate(
            "job/v1/updateStatus",
            json!({ "jobId": job["id"], "status": status }),
        )
        .await;
    }
    let invoice = s
        .mutate(
            "invoice/v1/create",
            json!({ "jobId": job["id"], "from": { "from": "actuals" } }),
        )
        .await;
    let line = &invoice["quote"]["lines"][0];
    assert_eq!(
        (&line["itemId"], &line["quantity"]),
        (&item["id"], &json!("2"))
    );
}

async fn sixteen_technicians_never_oversell(s: TestServer) {
    let f = s.fixture().await;
    let (item, warehouse, _) = stockroom(&s, &f).await;
    s.mutate(
        "inventory/v1/receive",
        json!({ "itemId": item["id"], "locationId": warehouse["id"], "quantity": "10" }),
    )
    .await;
    let mut jobs = Vec::new();
    for _ in 0..16 {
        jobs.push(s.job(&f).await);
    }
    let server = std::sync::Arc::new(s);
    let mut tasks = tokio::task::JoinSet::new();
    for job in jobs {
        let (server, item, warehouse) = (server.clone(), item.clone(), warehouse.clone());
        tasks.spawn(async move {
            server
                .call(
                    "inventory/v1/recordUsage",
                    json!({ "idempotencyKey": key(), "jobId": job["id"], "itemId": item["id"],
                            "quantity": "1", "locationId": warehouse["id"] }),
                )
                .await
        });
    }
    let (mut used, mut refused) = (0, 0);
    while let Some(reply) = tasks.join_next().await {
        let reply = reply.unwrap();
        if reply.status.as_u16() == 200 {
            used += 1;
        } else {
            reply.assert_error(422, "INSUFFICIENT_STOCK");
            assert_eq!(reply.json["error"]["details"]["available"], "0");
            refused += 1;
        }
    }
    assert_eq!((used, refused), (10, 6));
    assert_eq!(on_hand(&server, &item, &warehouse).await, "0");
    let ledger = server
        .call(
            "inventory/v1/ledger",
            json!({ "itemId": item["id"], "locationId": warehouse["id"] }),
        )
        .await
        .ok();
    let sum: i64 = ledger["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["delta"].as_str().unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(sum, 0, "the balance is the ledger's sum");
}

async fn other_organizations_and_roles(s: TestServer) {
    let f = s.fixture().await;
    let (item, warehouse, truck) = stockroom(&s, &f).await;
    let job = s.job(&f).await;
    let b = s.new_tenant("Org B", "owner-b@example.com").await;
    for (procedure, body) in [
        (
            "inventory/v1/receive",
            json!({ "idempotencyKey": key(), "itemId": item["id"], "locationId": warehouse["id"], "quantity": "1" }),
        ),
        (
            "inventory/v1/transfer",
            json!({ "idempotencyKey": key(), "itemId": item["id"], "fromLocationId": warehouse["id"],
                    "toLocationId": truck["id"], "quantity": "1" }),
        ),
        (
            "inventory/v1/adjust",
            json!({ "idempotencyKey": key(), "itemId": item["id"], "locationId": warehouse["id"],
                    "quantity": "1", "reason": "found" }),
        ),
        (
            "inventory/v1/recordUsage",
            json!({ "idempotencyKey": key(), "jobId": job["id"], "itemId": item["id"], "quantity": "1",
                    "locationId": warehouse["id"] }),
        ),
        (
            "inventory/v1/createLocation",
            json!({ "idempotencyKey": key(), "kind": "truck", "name": "Mine", "technicianId": f.tech["id"] }),
        ),
        ("inventory/v1/ledger", json!({ "itemId": item["id"] })),
    ] {
        s.call_as(&b, procedure, body)
            .await
            .assert_error(404, "NOT_FOUND");
    }
    let listed = s
        .call_as(&b, "inventory/v1/listLocations", json!({}))
        .await
        .ok();
    assert_eq!(listed["items"], json!([]));
    // A service is not stocked.
    let service = s
        .mutate(
            "pricebook/v1/createItem",
            json!({ "name": "Drain clean", "details": { "kind": "service", "price": "99",
                    "estimatedLaborHours": "1", "trade": "plumbing" } }),
        )
        .await;
    s.call(
        "inventory/v1/receive",
        json!({ "idempotencyKey": key(), "itemId": service["id"], "locationId": warehouse["id"], "quantity": "1" }),
    )
    .await
    .assert_error(422, "ITEM_NOT_STOCKED");
    // A viewer reads; a technician records usage on their own jobs only.
    let viewer = support::Tenant {
        token: s.member(&s.a, "viewer@example.com", Role::Viewer).await,
        ..s.a.clone()
    };
    s.call_as(
        &viewer,
        "inventory/v1/receive",
        json!({ "idempotencyKey": key(), "itemId": item["id"], "locationId": warehouse["id"], "quantity": "1" }),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    s.call_as(&viewer, "inventory/v1/stock", json!({}))
        .await
        .ok();
    let technician = support::Tenant {
        token: s.member(&s.a, "tech@example.com", Role::Technician).await,
        ..s.a.clone()
    };
    s.link(&technician, &f.tech).await;
    s.call_as(
        &technician,
        "inventory/v1/recordUsage",
        json!({ "idempotencyKey": key(), "jobId": job["id"], "itemId": item["id"], "quantity": "1",
                "locationId": warehouse["id"] }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
}
