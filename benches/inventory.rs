//! Inventory at scale, on SQLite and on PostgreSQL (issue 16).
//!
//! 1. **Reads over a 1,000,000-row ledger.** One organization, `ITEMS` materials at `LOCATIONS`
//!    warehouses, and `LEDGER` receipt rows spread evenly over them, with their running balances
//!    and costs, written by SQL as the owner. Then, through `Services` (one read transaction,
//!    the organization's row-level security applied, each row decoded as the API serves it):
//!    **on hand of one material at one location** (`inventory/v1/stock` filtered by both,
//!    `SAMPLES` times) and **a full valuation** (`inventory/v1/stock` unfiltered, every balance
//!    with its value, `SAMPLES / 10` times), p50 and p99. Beside each, in the same run: the
//!    plain SQL of the balance row (the floor) and the same answer recomputed from the ledger
//!    (what a design without running balances pays).
//! 2. **Consumption with 16 technicians on one item.** `TECHS` technicians, each with a job,
//!    each recording `USES` usages of the same material from the same warehouse at once
//!    (`inventory/v1/recordUsage`: the job locked, the actuals line priced and written, the
//!    balance and cost rows locked, the ledger row, the change feed, the workflow record).
//!    Beside it: the same number of plain inserts of a ledger-like row from 16 connections, and
//!    plain transactions that insert that row and update one shared balance row (the same
//!    contention, none of the rest).
//!
//! `BACKENDS=sqlite,postgres cargo bench --bench inventory` (PostgreSQL from
//! `HESTAMI_TEST_DATABASE_URL`, skipped if unreachable; `LEDGER=1000000 ITEMS=100
//! LOCATIONS=10 SAMPLES=200 TECHS=16 USES=50` by default).
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use hestami::core::ids::StockLocationId;
use hestami::store::app::inventory::{InventoryCommand, StockFilter};
use hestami::store::app::job::JobLifecycleCommand;
use hestami::store::app::pricebook::PricebookCommand;
use hestami::store::app::{Caller, Services};
use hestami::store::engine::EngineConfig;
use hestami::store::testing::TestDb;
use hestami::store::{Store, StoreOptions};
use support::{env, quantile, submit, tenant};

/// p50 and p99 in milliseconds of `n` runs of `f`.
async fn timed<F, Fut>(n: usize, mut f: F) -> (f64, f64)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut all = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        f().await;
        all.push(t0.elapsed());
    }
    all.sort();
    (quantile(&all, 0.5), quantile(&all, 0.99))
}

/// The owner's connection: raw SQL for the setup and the floors.
#[derive(Clone)]
enum Raw {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

impl Raw {
    async fn connect(db: &TestDb, postgres: bool) -> Self {
        if postgres {
            Self::Postgres(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(20)
                    .connect(&db.owner_url)
                    .await
                    .unwrap(),
            )
        } else {
            let options: sqlx::sqlite::SqliteConnectOptions = db.owner_url.parse().unwrap();
            Self::Sqlite(
                sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(20)
                    .connect_with(
                        options
                            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                            .busy_timeout(Duration::from_secs(60)),
                    )
                    .await
                    .unwrap(),
            )
        }
    }

    /// Runs `sql` (`$1` the organization, `$2`/`$3` two more uuids) and returns nothing.
    async fn run(&self, sql: &str, ids: &[uuid::Uuid]) {
        match self {
            Self::Postgres(pool) => {
                let mut q = sqlx::query(sql);
                for id in ids {
                    q = q.bind(*id);
                }
                q.execute(pool).await.unwrap();
            }
            Self::Sqlite(pool) => {
                let mut q = sqlx::query(sql);
                for id in ids {
                    q = q.bind(*id);
                }
                q.execute(pool).await.unwrap();
            }
        }
    }

    /// Runs a query with rows, fetching them all.
    async fn fetch(&self, sql: &str, ids: &[uuid::Uuid]) -> usize {
        match self {
            Self::Postgres(pool) => {
                let mut q = sqlx::query(sql);
                for id in ids {
                    q = q.bind(*id);
                }
                q.fetch_all(pool).await.unwrap().len()
            }
            Self::Sqlite(pool) => {
                let mut q = sqlx::query(sql);
                for id in ids {
                    q = q.bind(*id);
                }
                q.fetch_all(pool).await.unwrap().len()
            }
        }
    }

    /// One transaction of `statements`, each with the same ids bound.
    async fn transaction(&self, statements: &[&str], ids: &[uuid::Uuid]) {
        match self {
            Self::Postgres(pool) => {
                let mut tx = pool.begin().await.unwrap();
                for sql in statements {
                    let mut q = sqlx::query(sql);
                    for id in ids {
                        q = q.bind(*id);
                    }
                    q.execute(&mut *tx).await.unwrap();
                }
                tx.commit().await.unwrap();
            }
            Self::Sqlite(pool) => {
                // `BEGIN IMMEDIATE`: the write lock first, as the store takes it.
                let mut conn = pool.acquire().await.unwrap();
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut *conn)
                    .await
                    .unwrap();
                for sql in statements {
                    let mut q = sqlx::query(sql);
                    for id in ids {
                        q = q.bind(*id);
                    }
                    q.execute(&mut *conn).await.unwrap();
                }
                sqlx::query("COMMIT").execute(&mut *conn).await.unwrap();
            }
        }
    }
}

async fn run(postgres: bool) {
    let ledger = env("LEDGER", 1_000_000);
    let items_n = env("ITEMS", 100);
    let locations_n = env("LOCATIONS", 10);
    let samples = env("SAMPLES", 200);
    let techs = env("TECHS", 16);
    let uses = env("USES", 50);
    let backend = if postgres { "postgres" } else { "sqlite" };
    let db = if postgres {
        match TestDb::postgres().await {
            Some(db) => db,
            None => {
                println!("inventory: PostgreSQL unreachable, skipped");
                return;
            }
        }
    } else {
        TestDb::sqlite().await.unwrap()
    };
    let admin = Store::connect(&db.owner_url, StoreOptions::default())
        .await
        .unwrap();
    let store = Store::connect(&db.app_url, StoreOptions::default())
        .await
        .unwrap();
    let services = Services::new(store, EngineConfig::default());
    let bench = tenant(&admin, &services, 0).await;
    let c = &bench.caller;
    let org = c.organization_id.as_uuid();
    let raw = Raw::connect(&db, postgres).await;

    // The catalogue and the warehouses, through the services.
    let mut items = Vec::with_capacity(items_n);
    for i in 0..items_n {
        let item: hestami::core::pricebook::PricebookItem = submit(
            &services,
            c,
            PricebookCommand::CreateItem(
                serde_json::from_value(json!({
                    "name": format!("Part {i}"),
                    "details": { "kind": "material", "sku": format!("P-{i}"), "unit": "each",
                                 "cost": { "amount": "2.00", "currency": "USD" },
                                 "pricing": { "rule": "explicit",
                                              "price": { "amount": "5.00", "currency": "USD" } } }
                }))
                .unwrap(),
            ),
        )
        .await;
        items.push(item.id);
    }
    let mut locations = Vec::with_capacity(locations_n);
    for i in 0..locations_n {
        let location: serde_json::Value = submit(
            &services,
            c,
            serde_json::from_value::<InventoryCommand>(json!({
                "procedure": "inventory/v1/createLocation",
                "input": { "kind": "warehouse", "name": format!("Warehouse {i}"),
                           "technicianId": null, "allowNegative": false }
            }))
            .unwrap(),
        )
        .await;
        locations.push(StockLocationId::from_uuid(
            location["id"].as_str().unwrap().parse().unwrap(),
        ));
    }

    // The ledger: `per` receipts of 1 at 2.00 for each material at each location, with the
    // balances and costs they sum to.
    let per = ledger / (items_n * locations_n);
    let started = Instant::now();
    let (series, id, now) = if postgres {
        (
            "generate_series(1, $2::bigint) g(n)",
            "gen_random_uuid()",
            "now()",
        )
    } else {
        (
            "(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < $2) SELECT n FROM s) g",
            "randomblob(16)",
            "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        )
    };
    let fill = format!(
        "INSERT INTO stock_ledger (organization_id, id, item_id, location_id, kind, delta, unit_cost, on_hand_after, at) \
         SELECT $1, {id}, i.id, l.id, 'receipt', '1', '2.00', CAST(g.n AS TEXT), {now} \
         FROM pricebook_items i CROSS JOIN stock_locations l CROSS JOIN {series} \
         WHERE i.organization_id = $1 AND l.organization_id = $1"
    );
    match &raw {
        Raw::Postgres(pool) => {
            sqlx::query(&fill)
                .bind(org)
                .bind(i64::try_from(per).unwrap())
                .execute(pool)
                .await
                .unwrap();
        }
        Raw::Sqlite(pool) => {
            sqlx::query(&fill)
                .bind(org)
                .bind(i64::try_from(per).unwrap())
                .execute(pool)
                .await
                .unwrap();
        }
    }
    raw.run(
        &format!(
            "INSERT INTO stock_balances (organization_id, item_id, location_id, on_hand, reserved, updated_at) \
             SELECT $1, i.id, l.id, '{per}', '0', {now} FROM pricebook_items i CROSS JOIN stock_locations l \
             WHERE i.organization_id = $1 AND l.organization_id = $1"
        ),
        &[org],
    )
    .await;
    raw.run(
        &format!(
            "INSERT INTO stock_costs (organization_id, item_id, on_hand, average) \
             SELECT $1, i.id, '{}', '2.00' FROM pricebook_items i WHERE i.organization_id = $1",
            per * locations_n
        ),
        &[org],
    )
    .await;
    if postgres {
        raw.run("ANALYZE", &[]).await;
    }
    let rows = raw
        .fetch(
            "SELECT 1 FROM stock_ledger WHERE organization_id = $1",
            &[org],
        )
        .await;
    println!(
        "{backend}: {rows} ledger rows over {items_n} materials at {locations_n} locations (set up in {:.1} s)",
        started.elapsed().as_secs_f64()
    );

    // 1. On hand of one material at one location.
    let (item, location) = (items[items_n / 2], locations[locations_n / 2]);
    let one = StockFilter {
        item_id: Some(item),
        location_id: Some(location),
        ..StockFilter::default()
    };
    let check = services.inventory_stock(c, one).await.unwrap();
    assert_eq!(check[0].on_hand.to_string(), per.to_string());
    let api_one = timed(samples, || async {
        services.inventory_stock(c, one).await.unwrap();
    })
    .await;
    let ids = [org, item.as_uuid(), location.as_uuid()];
    let floor_one = timed(samples, || async {
        raw.fetch(
            "SELECT on_hand FROM stock_balances WHERE organization_id = $1 AND item_id = $2 AND location_id = $3",
            &ids,
        )
        .await;
    })
    .await;
    let sum = if postgres {
        "sum(delta::numeric)"
    } else {
        "sum(CAST(delta AS NUMERIC))"
    };
    let history_one = timed(samples.min(50), || async {
        raw.fetch(
            &format!(
                "SELECT {sum} FROM stock_ledger WHERE organization_id = $1 AND item_id = $2 AND location_id = $3"
            ),
            &ids,
        )
        .await;
    })
    .await;

    // 2. The full valuation.
    let everything = services
        .inventory_stock(c, StockFilter::default())
        .await
        .unwrap();
    assert_eq!(everything.len(), items_n * locations_n);
    let valuations = (samples / 10).max(5);
    let api_all = timed(valuations, || async {
        services
            .inventory_stock(c, StockFilter::default())
            .await
            .unwrap();
    })
    .await;
    let floor_all = timed(valuations, || async {
        raw.fetch(
            "SELECT b.item_id, b.location_id, b.on_hand, c.average FROM stock_balances b \
             JOIN stock_costs c ON c.organization_id = b.organization_id AND c.item_id = b.item_id \
             WHERE b.organization_id = $1",
            &[org],
        )
        .await;
    })
    .await;
    let history_all = timed(3, || async {
        raw.fetch(
            &format!(
                "SELECT item_id, location_id, {sum} FROM stock_ledger WHERE organization_id = $1 \
                 GROUP BY item_id, location_id"
            ),
            &[org],
        )
        .await;
    })
    .await;

    // 3. Sixteen technicians using one material from one warehouse at once.
    let material = items[0];
    let warehouse = locations[0];
    let total = techs * uses;
    submit::<_, serde_json::Value>(
        &services,
        c,
        serde_json::from_value::<InventoryCommand>(json!({
            "procedure": "inventory/v1/receive",
            "input": { "itemId": material, "locationId": warehouse, "quantity": total.to_string(),
                       "unitCost": null }
        }))
        .unwrap(),
    )
    .await;
    let mut jobs = Vec::with_capacity(techs);
    for _ in 0..techs {
        let job: hestami::core::job::Job =
            submit(&services, c, JobLifecycleCommand::Create(bench.job.clone())).await;
        jobs.push(job.id);
    }
    let services = Arc::new(services);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for job in jobs {
        let (services, caller): (Arc<Services>, Caller) = (services.clone(), *c);
        tasks.push(tokio::spawn(async move {
            for _ in 0..uses {
                let command = serde_json::from_value::<InventoryCommand>(json!({
                    "procedure": "inventory/v1/recordUsage",
                    "input": { "jobId": job, "itemId": material, "quantity": "1",
                               "locationId": warehouse }
                }))
                .unwrap();
                let _: serde_json::Value = submit(&services, &caller, command).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let api_rate = total as f64 / started.elapsed().as_secs_f64();
    let left = services
        .inventory_stock(
            c,
            StockFilter {
                item_id: Some(material),
                location_id: Some(warehouse),
                ..StockFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(left[0].on_hand.to_string(), per.to_string());

    let (uuid_type, real) = if postgres {
        ("uuid", "numeric")
    } else {
        ("BLOB", "NUMERIC")
    };
    raw.run(
        &format!(
            "CREATE TABLE bench_ledger (id {uuid_type} PRIMARY KEY, item_id {uuid_type}, location_id {uuid_type}, \
             delta text, at text)"
        ),
        &[],
    )
    .await;
    raw.run(
        &format!("CREATE TABLE bench_balance (k integer PRIMARY KEY, on_hand {real})"),
        &[],
    )
    .await;
    raw.run("INSERT INTO bench_balance (k, on_hand) VALUES (1, 0)", &[])
        .await;
    let plain = |with_balance: bool| {
        let raw = raw.clone();
        async move {
            let started = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..techs {
                let raw = raw.clone();
                tasks.push(tokio::spawn(async move {
                    for _ in 0..uses {
                        let ids = [
                            uuid::Uuid::now_v7(),
                            material.as_uuid(),
                            warehouse.as_uuid(),
                        ];
                        let insert = "INSERT INTO bench_ledger (id, item_id, location_id, delta, at) \
                                      VALUES ($1, $2, $3, '-1', 'now')";
                        if with_balance {
                            raw.transaction(
                                &[insert, "UPDATE bench_balance SET on_hand = on_hand - 1 WHERE k = 1"],
                                &ids,
                            )
                            .await;
                        } else {
                            raw.transaction(&[insert], &ids).await;
                        }
                    }
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
            total as f64 / started.elapsed().as_secs_f64()
        }
    };
    let plain_rate = plain(false).await;
    let balance_rate = plain(true).await;

    println!();
    println!("| {backend} | p50 | p99 | beside it |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| on hand, one material at one location ({samples}×) | {:.2} ms | {:.2} ms | balance row by SQL: {:.2} / {:.2} ms; summed from the ledger ({per} rows): {:.2} / {:.2} ms |",
        api_one.0, api_one.1, floor_one.0, floor_one.1, history_one.0, history_one.1
    );
    println!(
        "| full valuation, {} balances ({valuations}×) | {:.1} ms | {:.1} ms | balances × costs by SQL: {:.1} / {:.1} ms; summed from the ledger ({rows} rows): {:.0} / {:.0} ms |",
        items_n * locations_n,
        api_all.0,
        api_all.1,
        floor_all.0,
        floor_all.1,
        history_all.0,
        history_all.1
    );
    println!(
        "| {techs} technicians × {uses} usages of one material at one warehouse | {api_rate:.0} usages/s | | plain inserts: {plain_rate:.0}/s; insert + shared balance update: {balance_rate:.0}/s |"
    );
}

#[tokio::main]
async fn main() {
    let backends = std::env::var("BACKENDS").unwrap_or_else(|_| "sqlite,postgres".to_owned());
    for backend in backends.split(',') {
        run(backend.trim() == "postgres").await;
    }
}
