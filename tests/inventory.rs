//! End-to-end tests of inventory over HTTP, on SQLite and on PostgreSQL: receiving, transfers to
//! a truck, usage on a job billed from its actuals, cycle counts, never overselling under 16
//! concurrent technicians, purchase orders from supplier to invoice, special orders held for
//! their job, and other organizations and roles.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Value, json};

use hestami::core::org::Role;
use support::{Fixture, TestServer, key};

both!(
    stock_from_the_warehouse_to_the_truck_to_the_invoice,
    sixteen_technicians_never_oversell,
    other_organizations_and_roles,
    a_purchase_order_from_the_supplier_to_the_invoice,
    special_orders_are_held_for_their_job,
    serial_numbers_follow_each_unit_to_the_property,
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
    s.move_job(&job, &support::TO_COMPLETED).await;
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

async fn supplier_of(s: &TestServer, item: &Value) -> Value {
    let supplier = s
        .mutate(
            "inventory/v1/createSupplier",
            json!({ "name": "Ferguson", "contactName": "Ana", "email": "orders@ferguson.example",
                    "paymentTermsDays": 30 }),
        )
        .await;
    s.mutate(
        "inventory/v1/setSupplierItem",
        json!({ "supplierId": supplier["id"], "itemId": item["id"], "partNumber": "FG-CU12",
                "packSize": "10", "lastPrice": "3.00", "leadTimeDays": 2, "preferred": true }),
    )
    .await;
    supplier
}

async fn a_purchase_order_from_the_supplier_to_the_invoice(s: TestServer) {
    let f = s.fixture().await;
    let (item, warehouse, truck) = stockroom(&s, &f).await;
    let supplier = supplier_of(&s, &item).await;
    let suppliers = s.call("inventory/v1/listSuppliers", json!({})).await.ok();
    assert_eq!(
        (
            &suppliers["items"][0]["items"][0]["partNumber"],
            &suppliers["items"][0]["items"][0]["packSize"]
        ),
        (&json!("FG-CU12"), &json!("10"))
    );

    // Ordered at the supplier's last price, sent, received in two parts.
    let order = s
        .mutate(
            "inventory/v1/createPurchaseOrder",
            json!({ "supplierId": supplier["id"], "locationId": warehouse["id"],
                    "lines": [{ "itemId": item["id"], "quantity": "10" }] }),
        )
        .await;
    assert_eq!(
        (
            &order["number"],
            &order["status"],
            &order["lines"][0]["unitCost"],
            &order["total"]
        ),
        (
            &json!("PO-000001"),
            &json!("draft"),
            &json!("3"),
            &json!("30.00")
        )
    );
    let receive = |quantity: &str| {
        json!({ "idempotencyKey": key(), "purchaseOrderId": order["id"],
                "lines": [{ "line": 1, "quantity": quantity }] })
    };
    s.call("inventory/v1/receivePurchaseOrder", receive("1"))
        .await
        .assert_error(409, "PURCHASE_ORDER_STATE");
    let sent = s
        .mutate(
            "inventory/v1/submitPurchaseOrder",
            json!({ "purchaseOrderId": order["id"] }),
        )
        .await;
    assert_eq!(sent["status"], "submitted");
    let part = s
        .call("inventory/v1/receivePurchaseOrder", receive("6"))
        .await
        .ok();
    assert_eq!(part["purchaseOrder"]["status"], "partially_received");
    assert_eq!(
        (
            &part["entries"][0]["kind"],
            &part["entries"][0]["purchaseOrderId"]
        ),
        (&json!("receipt"), &order["id"])
    );
    let over = s
        .call("inventory/v1/receivePurchaseOrder", receive("5"))
        .await;
    over.assert_error(422, "OVER_RECEIPT");
    assert_eq!(over.json["error"]["details"]["outstanding"], "4");
    let rest = s
        .call("inventory/v1/receivePurchaseOrder", receive("4"))
        .await
        .ok();
    assert_eq!(rest["purchaseOrder"]["status"], "received");
    assert_eq!(on_hand(&s, &item, &warehouse).await, "10");

    // The supplier bills 10 at 3.20: the price differs from the order's, flagged.
    let bill = json!({ "purchaseOrderId": order["id"], "number": "INV-881",
                       "lines": [{ "line": 1, "quantity": "10", "unitCost": "3.20" }] });
    let billed = s
        .mutate("inventory/v1/recordSupplierBill", bill.clone())
        .await;
    assert_eq!(
        (
            &billed["matched"],
            &billed["mismatches"][0]["kind"],
            &billed["total"]
        ),
        (&json!(false), &json!("price"), &json!("32.00"))
    );
    let mut again = bill;
    again["idempotencyKey"] = json!(key());
    s.call("inventory/v1/recordSupplierBill", again)
        .await
        .assert_error(409, "BILL_EXISTS");

    // To the truck through transit.
    let moving = s
        .mutate(
            "inventory/v1/transfer",
            json!({ "itemId": item["id"], "fromLocationId": warehouse["id"], "toLocationId": truck["id"],
                    "quantity": "4", "inTransit": true }),
        )
        .await;
    assert_eq!(
        (
            &moving["transfer"]["status"],
            moving["entries"].as_array().map(Vec::len)
        ),
        (&json!("in_transit"), Some(1))
    );
    let valued = s
        .call("inventory/v1/stock", json!({ "itemId": item["id"] }))
        .await
        .ok();
    assert_eq!(
        (&valued["value"], &valued["inTransitValue"]),
        (&json!("18.00"), &json!("12.00")),
        "6 in the warehouse and 4 on the road, at 3.00: {valued}"
    );
    let in_transit = s
        .call("inventory/v1/transfers", json!({ "status": "in_transit" }))
        .await
        .ok();
    assert_eq!(in_transit["items"][0]["id"], moving["transfer"]["id"]);
    let arrive = || json!({ "idempotencyKey": key(), "transferId": moving["transfer"]["id"] });
    let arrived = s.call("inventory/v1/receiveTransfer", arrive()).await.ok();
    assert_eq!(arrived["transfer"]["status"], "received");
    assert_eq!(
        arrived["entries"][1]["counterpartId"],
        arrived["entries"][0]["id"]
    );
    s.call("inventory/v1/receiveTransfer", arrive())
        .await
        .assert_error(409, "TRANSFER_STATE");
    assert_eq!(on_hand(&s, &item, &truck).await, "4");

    // Used on the job, one returned: the actuals bill what stayed.
    let job = s.job(&f).await;
    s.schedule_and_assign(&job, &f.tech).await;
    s.mutate(
        "inventory/v1/recordUsage",
        json!({ "jobId": job["id"], "itemId": item["id"], "quantity": "2" }),
    )
    .await;
    let returned = s
        .mutate(
            "inventory/v1/returnUsage",
            json!({ "jobId": job["id"], "itemId": item["id"], "quantity": "1" }),
        )
        .await;
    assert_eq!(
        (
            &returned["entries"][0]["kind"],
            &returned["entries"][0]["locationId"]
        ),
        (&json!("return"), &truck["id"])
    );
    assert_eq!(returned["work"]["actuals"][0]["quantity"], "1");
    s.call(
        "inventory/v1/returnUsage",
        json!({ "idempotencyKey": key(), "jobId": job["id"], "itemId": item["id"], "quantity": "2" }),
    )
    .await
    .assert_error(422, "RETURN_EXCEEDS_USAGE");
    let usage = s
        .call("inventory/v1/jobUsage", json!({ "jobId": job["id"] }))
        .await
        .ok();
    assert_eq!(
        (&usage["items"][0]["quantity"], &usage["cost"]),
        (&json!("1"), &json!("3.00"))
    );

    // A cycle count on the truck finds 2 of the 3 there.
    let counted = s
        .mutate(
            "inventory/v1/adjust",
            json!({ "itemId": item["id"], "locationId": truck["id"], "mode": "count", "quantity": "2",
                    "reason": "cycle count" }),
        )
        .await;
    assert_eq!(counted["entries"][0]["delta"], "-1");
    let trucks = s
        .call(
            "inventory/v1/stock",
            json!({ "locationKind": "truck", "technicianId": f.tech["id"] }),
        )
        .await
        .ok();
    assert_eq!(
        (
            trucks["items"].as_array().map(Vec::len),
            &trucks["items"][0]["technicianId"],
            &trucks["items"][0]["onHand"]
        ),
        (Some(1), &f.tech["id"], &json!("2"))
    );

    // Invoiced from the actuals: the material line is the usage less the return.
    s.move_job(&job, &support::TO_COMPLETED).await;
    let invoice = s
        .mutate(
            "invoice/v1/create",
            json!({ "jobId": job["id"], "from": { "from": "actuals" } }),
        )
        .await;
    let line = &invoice["quote"]["lines"][0];
    assert_eq!(
        (&line["itemId"], &line["quantity"]),
        (&item["id"], &json!("1"))
    );
    s.mutate("invoice/v1/issue", json!({ "invoiceId": invoice["id"] }))
        .await;
    s.call(
        "inventory/v1/returnUsage",
        json!({ "idempotencyKey": key(), "jobId": job["id"], "itemId": item["id"], "quantity": "1" }),
    )
    .await
    .assert_error(409, "JOB_INVOICED");

    // Nothing more expected: closed, and no longer open.
    let closed = s
        .mutate(
            "inventory/v1/closePurchaseOrder",
            json!({ "purchaseOrderId": order["id"] }),
        )
        .await;
    assert_eq!(closed["status"], "closed");
    let open = s
        .call("inventory/v1/purchaseOrders", json!({ "open": true }))
        .await
        .ok();
    assert_eq!(open["items"], json!([]));
    let all = s
        .call(
            "inventory/v1/purchaseOrders",
            json!({ "supplierId": supplier["id"] }),
        )
        .await
        .ok();
    assert_eq!(all["items"][0]["bills"][0]["number"], "INV-881");
}

async fn special_orders_are_held_for_their_job(s: TestServer) {
    let f = s.fixture().await;
    let (item, warehouse, _) = stockroom(&s, &f).await;
    let supplier = supplier_of(&s, &item).await;
    let (mine, other) = (s.job(&f).await, s.job(&f).await);
    let order = s
        .mutate(
            "inventory/v1/createPurchaseOrder",
            json!({ "supplierId": supplier["id"], "locationId": warehouse["id"], "jobId": mine["id"],
                    "lines": [{ "itemId": item["id"], "quantity": "3", "unitCost": "4.00" }] }),
        )
        .await;
    s.mutate(
        "inventory/v1/submitPurchaseOrder",
        json!({ "purchaseOrderId": order["id"] }),
    )
    .await;
    let received = s
        .mutate(
            "inventory/v1/receivePurchaseOrder",
            json!({ "purchaseOrderId": order["id"], "lines": [{ "line": 1, "quantity": "3" }] }),
        )
        .await;
    let kinds: Vec<&str> = received["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["receipt", "reservation"]);
    let level = s
        .call("inventory/v1/stock", json!({ "itemId": item["id"] }))
        .await
        .ok();
    assert_eq!(
        (
            &level["items"][0]["reserved"],
            &level["items"][0]["available"]
        ),
        (&json!("3"), &json!("0"))
    );

    // Held: another job can neither use it nor hold it.
    let use_on = |job: &Value, quantity: &str| {
        json!({ "idempotencyKey": key(), "jobId": job["id"], "itemId": item["id"], "quantity": quantity,
                "locationId": warehouse["id"] })
    };
    let refused = s
        .call("inventory/v1/recordUsage", use_on(&other, "1"))
        .await;
    refused.assert_error(422, "INSUFFICIENT_STOCK");
    assert_eq!(refused.json["error"]["details"]["available"], "0");
    s.call("inventory/v1/reserve", use_on(&other, "1"))
        .await
        .assert_error(422, "INSUFFICIENT_STOCK");
    // Its job draws on it: released, then used.
    let used = s
        .call("inventory/v1/recordUsage", use_on(&mine, "2"))
        .await
        .ok();
    let kinds: Vec<&str> = used["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["release", "consumption"]);
    let release = |quantity: Option<&str>| {
        let mut body = json!({ "idempotencyKey": key(), "jobId": mine["id"], "itemId": item["id"],
                               "locationId": warehouse["id"] });
        if let Some(q) = quantity {
            body["quantity"] = json!(q);
        }
        body
    };
    s.call("inventory/v1/release", release(Some("2")))
        .await
        .assert_error(422, "RELEASE_EXCEEDS_RESERVED");
    let freed = s.call("inventory/v1/release", release(None)).await.ok();
    assert_eq!(freed["entries"][0]["reservedDelta"], "-1");
    let nothing = s.call("inventory/v1/release", release(None)).await.ok();
    assert_eq!(nothing["entries"], json!([]));
    s.call("inventory/v1/recordUsage", use_on(&other, "1"))
        .await
        .ok();
    // A count below what is held: the stock is not there, so the job lets go of the rest.
    s.mutate(
        "inventory/v1/receive",
        json!({ "itemId": item["id"], "locationId": warehouse["id"], "quantity": "4" }),
    )
    .await;
    s.call("inventory/v1/reserve", use_on(&mine, "3"))
        .await
        .ok();
    let counted = s
        .mutate(
            "inventory/v1/adjust",
            json!({ "itemId": item["id"], "locationId": warehouse["id"], "mode": "count", "quantity": "1",
                    "reason": "cycle count" }),
        )
        .await;
    let moves: Vec<(&str, &str, &str)> = counted["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap(),
                e["delta"].as_str().unwrap(),
                e["reservedDelta"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(moves, [("adjustment", "-3", "0"), ("release", "0", "-2")]);
    let level = s
        .call("inventory/v1/stock", json!({ "itemId": item["id"] }))
        .await
        .ok();
    assert_eq!(
        (
            &level["items"][0]["onHand"],
            &level["items"][0]["reserved"],
            &level["items"][0]["available"]
        ),
        (&json!("1"), &json!("1"), &json!("0"))
    );
    // What has arrived cannot be called off.
    s.call(
        "inventory/v1/cancelPurchaseOrder",
        json!({ "idempotencyKey": key(), "purchaseOrderId": order["id"], "reason": "too late" }),
    )
    .await
    .assert_error(409, "PURCHASE_ORDER_STATE");
}

async fn serial_numbers_follow_each_unit_to_the_property(s: TestServer) {
    let f = s.fixture().await;
    let (_, warehouse, truck) = stockroom(&s, &f).await;
    let heater = s
        .mutate(
            "pricebook/v1/createItem",
            json!({ "name": "Water heater 50 gal",
                    "details": { "kind": "material", "sku": "WH-50", "unit": "each", "cost": "600",
                                 "pricing": { "rule": "explicit", "price": "1100" } } }),
        )
        .await;
    let tracked = s
        .mutate(
            "inventory/v1/setTracking",
            json!({ "itemId": heater["id"], "tracking": "serial" }),
        )
        .await;
    assert_eq!(tracked["tracking"], "serial");
    let receive = |quantity: &str, serials: Value| {
        json!({ "idempotencyKey": key(), "itemId": heater["id"], "locationId": warehouse["id"],
                "quantity": quantity, "serials": serials })
    };
    let received = s
        .call(
            "inventory/v1/receive",
            receive("2", json!(["WH-1", "WH-2"])),
        )
        .await
        .ok();
    assert_eq!(received["entries"][0]["serials"], json!(["WH-1", "WH-2"]));
    s.call("inventory/v1/receive", receive("1", json!(["WH-1"])))
        .await
        .assert_error(409, "SERIAL_EXISTS");
    let uncounted = s
        .call("inventory/v1/receive", receive("2", json!(["WH-3"])))
        .await;
    uncounted.assert_error(400, "VALIDATION_FAILED");
    assert_eq!(uncounted.json["field_errors"][0]["field"], "serials");
    s.call("inventory/v1/receive", receive("1", json!(["WH 3"])))
        .await
        .assert_error(400, "VALIDATION_FAILED");
    s.call(
        "inventory/v1/setTracking",
        json!({ "idempotencyKey": key(), "itemId": heater["id"], "tracking": "none" }),
    )
    .await
    .assert_error(409, "TRACKING_IN_USE");

    // WH-2 rides to the truck; it is on the road until it arrives.
    let moving = s
        .mutate(
            "inventory/v1/transfer",
            json!({ "itemId": heater["id"], "fromLocationId": warehouse["id"], "toLocationId": truck["id"],
                    "quantity": "1", "inTransit": true, "serials": ["WH-2"] }),
        )
        .await;
    let where_is = |serial: &'static str| {
        let (s, heater) = (&s, &heater);
        async move {
            let found = s
                .call("inventory/v1/serials", json!({ "itemId": heater["id"] }))
                .await
                .ok();
            found["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|u| u["serial"] == serial)
                .cloned()
                .unwrap()
        }
    };
    assert_eq!(where_is("WH-2").await["status"], "in_transit");
    s.mutate(
        "inventory/v1/receiveTransfer",
        json!({ "transferId": moving["transfer"]["id"] }),
    )
    .await;
    let on_truck = where_is("WH-2").await;
    assert_eq!(
        (&on_truck["status"], &on_truck["locationId"]),
        (&json!("in_stock"), &truck["id"])
    );

    // Installed on the job from the truck: WH-1 is not there; WH-2 is, and follows the job to
    // the property.
    let job = s.job(&f).await;
    s.schedule_and_assign(&job, &f.tech).await;
    let install = |serial: &str| {
        json!({ "idempotencyKey": key(), "jobId": job["id"], "itemId": heater["id"], "quantity": "1",
                "serials": [serial] })
    };
    let elsewhere = s.call("inventory/v1/recordUsage", install("WH-1")).await;
    elsewhere.assert_error(422, "SERIAL_NOT_AVAILABLE");
    assert_eq!(elsewhere.json["error"]["details"]["serial"], "WH-1");
    s.call("inventory/v1/recordUsage", install("WH-2"))
        .await
        .ok();
    let installed = s
        .call(
            "inventory/v1/serials",
            json!({ "propertyId": job["propertyId"] }),
        )
        .await
        .ok();
    assert_eq!(
        (
            &installed["items"][0]["serial"],
            &installed["items"][0]["status"],
            &installed["items"][0]["jobId"]
        ),
        (&json!("WH-2"), &json!("used"), &job["id"])
    );
    // Taken back out: in stock on the truck again.
    s.mutate(
        "inventory/v1/returnUsage",
        json!({ "jobId": job["id"], "itemId": heater["id"], "quantity": "1", "serials": ["WH-2"] }),
    )
    .await;
    assert_eq!(where_is("WH-2").await["status"], "in_stock");

    // Serial-tracked stock is adjusted by its serials, never counted.
    s.call(
        "inventory/v1/adjust",
        json!({ "idempotencyKey": key(), "itemId": heater["id"], "locationId": warehouse["id"],
                "mode": "count", "quantity": "0", "reason": "cycle count" }),
    )
    .await
    .assert_error(400, "VALIDATION_FAILED");
    s.mutate(
        "inventory/v1/adjust",
        json!({ "itemId": heater["id"], "locationId": warehouse["id"], "quantity": "-1",
                "reason": "dropped off the lift", "serials": ["WH-1"] }),
    )
    .await;
    assert_eq!(where_is("WH-1").await["status"], "removed");

    // A purchase order's receipt names its serials too.
    let supplier = supplier_of(&s, &heater).await;
    let order = s
        .mutate(
            "inventory/v1/createPurchaseOrder",
            json!({ "supplierId": supplier["id"], "locationId": warehouse["id"],
                    "lines": [{ "itemId": heater["id"], "quantity": "1" }] }),
        )
        .await;
    s.mutate(
        "inventory/v1/submitPurchaseOrder",
        json!({ "purchaseOrderId": order["id"] }),
    )
    .await;
    let bare = s
        .call(
            "inventory/v1/receivePurchaseOrder",
            json!({ "idempotencyKey": key(), "purchaseOrderId": order["id"],
                    "lines": [{ "line": 1, "quantity": "1" }] }),
        )
        .await;
    bare.assert_error(400, "VALIDATION_FAILED");
    assert_eq!(bare.json["field_errors"][0]["field"], "lines[0].serials");
    s.mutate(
        "inventory/v1/receivePurchaseOrder",
        json!({ "purchaseOrderId": order["id"], "lines": [{ "line": 1, "quantity": "1", "serials": ["WH-3"] }] }),
    )
    .await;
    assert_eq!(where_is("WH-3").await["locationId"], warehouse["id"]);

    // Lots: named on receipt, carried on the ledger.
    let fittings = s
        .mutate(
            "pricebook/v1/createItem",
            json!({ "name": "PEX fitting", "details": { "kind": "material", "sku": "PX-1", "unit": "each",
                    "cost": "0.80", "pricing": { "rule": "explicit", "price": "2.00" } } }),
        )
        .await;
    s.mutate(
        "inventory/v1/setTracking",
        json!({ "itemId": fittings["id"], "tracking": "lot" }),
    )
    .await;
    let unlotted = s
        .call(
            "inventory/v1/receive",
            json!({ "idempotencyKey": key(), "itemId": fittings["id"], "locationId": warehouse["id"],
                    "quantity": "100" }),
        )
        .await;
    unlotted.assert_error(400, "VALIDATION_FAILED");
    assert_eq!(unlotted.json["field_errors"][0]["field"], "lot");
    let lot = s
        .mutate(
            "inventory/v1/receive",
            json!({ "itemId": fittings["id"], "locationId": warehouse["id"], "quantity": "100",
                    "lot": "L-2026-48" }),
        )
        .await;
    assert_eq!(lot["entries"][0]["lot"], "L-2026-48");
}

async fn other_organizations_and_roles(s: TestServer) {
    let f = s.fixture().await;
    let (item, warehouse, truck) = stockroom(&s, &f).await;
    let job = s.job(&f).await;
    let supplier = supplier_of(&s, &item).await;
    let order = s
        .mutate(
            "inventory/v1/createPurchaseOrder",
            json!({ "supplierId": supplier["id"], "locationId": warehouse["id"],
                    "lines": [{ "itemId": item["id"], "quantity": "2" }] }),
        )
        .await;
    s.mutate(
        "inventory/v1/receive",
        json!({ "itemId": item["id"], "locationId": warehouse["id"], "quantity": "5" }),
    )
    .await;
    let moving = s
        .mutate(
            "inventory/v1/transfer",
            json!({ "itemId": item["id"], "fromLocationId": warehouse["id"], "toLocationId": truck["id"],
                    "quantity": "1", "inTransit": true }),
        )
        .await;
    let transfer = &moving["transfer"]["id"];
    let b = s.new_tenant("Org B", "owner-b@example.com").await;
    for (procedure, body) in [
        (
            "inventory/v1/reserve",
            json!({ "idempotencyKey": key(), "jobId": job["id"], "itemId": item["id"],
                    "locationId": warehouse["id"], "quantity": "1" }),
        ),
        (
            "inventory/v1/release",
            json!({ "idempotencyKey": key(), "jobId": job["id"], "itemId": item["id"],
                    "locationId": warehouse["id"] }),
        ),
        (
            "inventory/v1/returnUsage",
            json!({ "idempotencyKey": key(), "jobId": job["id"], "itemId": item["id"], "quantity": "1",
                    "locationId": warehouse["id"] }),
        ),
        (
            "inventory/v1/sendTransfer",
            json!({ "idempotencyKey": key(), "transferId": transfer }),
        ),
        (
            "inventory/v1/receiveTransfer",
            json!({ "idempotencyKey": key(), "transferId": transfer }),
        ),
        (
            "inventory/v1/cancelTransfer",
            json!({ "idempotencyKey": key(), "transferId": transfer }),
        ),
        ("inventory/v1/jobUsage", json!({ "jobId": job["id"] })),
        (
            "inventory/v1/setTracking",
            json!({ "idempotencyKey": key(), "itemId": item["id"], "tracking": "serial" }),
        ),
        ("inventory/v1/serials", json!({ "itemId": item["id"] })),
        (
            "inventory/v1/setSupplierItem",
            json!({ "idempotencyKey": key(), "supplierId": supplier["id"], "itemId": item["id"] }),
        ),
        (
            "inventory/v1/setReorderPoint",
            json!({ "idempotencyKey": key(), "itemId": item["id"], "locationId": warehouse["id"],
                    "min": "1", "max": "2" }),
        ),
        (
            "inventory/v1/createPurchaseOrder",
            json!({ "idempotencyKey": key(), "supplierId": supplier["id"], "locationId": warehouse["id"],
                    "lines": [{ "itemId": item["id"], "quantity": "1" }] }),
        ),
        (
            "inventory/v1/submitPurchaseOrder",
            json!({ "idempotencyKey": key(), "purchaseOrderId": order["id"] }),
        ),
        (
            "inventory/v1/receivePurchaseOrder",
            json!({ "idempotencyKey": key(), "purchaseOrderId": order["id"],
                    "lines": [{ "line": 1, "quantity": "1" }] }),
        ),
        (
            "inventory/v1/cancelPurchaseOrder",
            json!({ "idempotencyKey": key(), "purchaseOrderId": order["id"], "reason": "mine now" }),
        ),
        (
            "inventory/v1/closePurchaseOrder",
            json!({ "idempotencyKey": key(), "purchaseOrderId": order["id"] }),
        ),
        (
            "inventory/v1/recordSupplierBill",
            json!({ "idempotencyKey": key(), "purchaseOrderId": order["id"], "number": "X",
                    "lines": [{ "line": 1, "quantity": "1", "unitCost": "1" }] }),
        ),
        (
            "inventory/v1/getPurchaseOrder",
            json!({ "purchaseOrderId": order["id"] }),
        ),
    ] {
        s.call_as(&b, procedure, body)
            .await
            .assert_error(404, "NOT_FOUND");
    }
    for (procedure, body) in [
        ("inventory/v1/listSuppliers", json!({})),
        ("inventory/v1/reorderPoints", json!({})),
        ("inventory/v1/transfers", json!({})),
        (
            "inventory/v1/purchaseOrders",
            json!({ "supplierId": supplier["id"] }),
        ),
    ] {
        let listed = s.call_as(&b, procedure, body).await.ok();
        assert_eq!(listed["items"], json!([]), "{procedure}");
    }
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
    for procedure in ["inventory/v1/recordUsage", "inventory/v1/returnUsage"] {
        s.call_as(
            &technician,
            procedure,
            json!({ "idempotencyKey": key(), "jobId": job["id"], "itemId": item["id"], "quantity": "1",
                    "locationId": warehouse["id"] }),
        )
        .await
        .assert_error(404, "NOT_FOUND");
    }
    // A technician takes delivery of what comes to their truck; buying is the office's.
    for (procedure, body) in [
        (
            "inventory/v1/createSupplier",
            json!({ "idempotencyKey": key(), "name": "Mine" }),
        ),
        (
            "inventory/v1/submitPurchaseOrder",
            json!({ "idempotencyKey": key(), "purchaseOrderId": order["id"] }),
        ),
        ("inventory/v1/listSuppliers", json!({})),
        (
            "inventory/v1/reserve",
            json!({ "idempotencyKey": key(), "jobId": job["id"], "itemId": item["id"],
                    "locationId": warehouse["id"], "quantity": "1" }),
        ),
    ] {
        s.call_as(&technician, procedure, body)
            .await
            .assert_error(403, "FORBIDDEN");
    }
    let arrived = s
        .call_as(
            &technician,
            "inventory/v1/receiveTransfer",
            json!({ "idempotencyKey": key(), "transferId": transfer }),
        )
        .await
        .ok();
    assert_eq!(arrived["transfer"]["status"], "received");
}
