//! Pricebook import throughput: a generated catalogue of ROWS rows (default 10,000: a mix of
//! materials priced by tier, by markup and by price, services, labour and equipment) imported
//! through `Services::pricebook_import` (batches of 1,000 through `pricebook/v1/importBatch`,
//! the durable workflow), then the same file again (every batch replayed), then with every
//! price changed (every item revised). In the same run, the same number of rows written with
//! plain multi-row transactions of 1,000 single-row inserts (no workflow, no revisions, no
//! change feed) on the same database: the ratio is the price of the import's guarantees.
//!
//! `cargo bench --bench pricebook_import` (PostgreSQL from HESTAMI_TEST_DATABASE_URL, skipped
//! if unreachable).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use hestami::core::org::{Currency, OrgKind, TimeZone};
use hestami::core::pricebook::import::ImportRow;
use hestami::core::text::{Email, OrgName};
use hestami::store::app::{Caller, Services};
use hestami::store::directory::NewOrganization;
use hestami::store::engine::EngineConfig;
use hestami::store::testing::TestDb;
use hestami::store::{Backend, Store, StoreOptions};

fn catalogue(n: usize, price_bump: u32) -> Vec<ImportRow> {
    (0..n)
        .map(|i| {
            let cents = 100 + (i as u32 * 37) % 90_000 + price_bump;
            let amount = format!("{}.{:02}", cents / 100, cents % 100);
            let mut row = ImportRow {
                name: Some(format!("Catalogue item {i}")),
                category: Some(format!("Category {}", i % 40)),
                description: Some(format!("Generated row {i} of the import benchmark")),
                ..ImportRow::default()
            };
            match i % 10 {
                0..=5 => {
                    row.kind = Some("material".into());
                    row.sku = Some(format!("SKU-{i:06}"));
                    row.unit = Some("each".into());
                    row.cost = Some(amount.clone());
                    match i % 3 {
                        0 => {}
                        1 => row.markup_percent = Some("35".into()),
                        _ => row.price = Some(format!("{}.99", cents / 50)),
                    }
                }
                6 | 7 => {
                    row.kind = Some("service".into());
                    row.price = Some(amount);
                    row.labor_hours = Some("1.5".into());
                    row.trade = Some("plumbing".into());
                }
                8 => {
                    row.kind = Some("labor".into());
                    row.trade = Some("hvac".into());
                    row.rates = Some(format!("1:{amount};2:{}.00", cents / 100 + 20));
                    row.overtime_multiplier = Some("1.5".into());
                    row.after_hours_multiplier = Some("2".into());
                }
                _ => {
                    row.kind = Some("equipment".into());
                    row.unit = Some("day".into());
                    row.price = Some(amount);
                }
            }
            row
        })
        .collect()
}

/// `n` rows inserted in transactions of 1,000 single-row inserts, into a plain table.
async fn plain_inserts(backend: Backend, url: &str, n: usize) -> Duration {
    let payload = "x".repeat(400);
    match backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            sqlx::query("CREATE TABLE bench_plain (id BLOB PRIMARY KEY, body TEXT NOT NULL)")
                .execute(&pool)
                .await
                .unwrap();
            let start = Instant::now();
            for chunk in 0..n.div_ceil(1000) {
                let mut tx = pool.begin().await.unwrap();
                for _ in 0..1000.min(n - chunk * 1000) {
                    sqlx::query("INSERT INTO bench_plain (id, body) VALUES ($1, $2)")
                        .bind(uuid::Uuid::now_v7())
                        .bind(&payload)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                }
                tx.commit().await.unwrap();
            }
            start.elapsed()
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            sqlx::query("CREATE TABLE bench_plain (id uuid PRIMARY KEY, body text NOT NULL)")
                .execute(&pool)
                .await
                .unwrap();
            let start = Instant::now();
            for chunk in 0..n.div_ceil(1000) {
                let mut tx = pool.begin().await.unwrap();
                for _ in 0..1000.min(n - chunk * 1000) {
                    sqlx::query("INSERT INTO bench_plain (id, body) VALUES ($1, $2)")
                        .bind(uuid::Uuid::now_v7())
                        .bind(&payload)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                }
                tx.commit().await.unwrap();
            }
            start.elapsed()
        }
    }
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

async fn bench(backend: Backend, db: TestDb, rows: usize) {
    let admin = Store::connect(&db.owner_url, StoreOptions::default())
        .await
        .unwrap();
    let services = Services::new(
        Store::connect(&db.app_url, StoreOptions::default())
            .await
            .unwrap(),
        EngineConfig::default(),
    );
    let created = admin
        .create_organization(NewOrganization {
            name: OrgName::parse("Import bench").unwrap(),
            kind: OrgKind::Contractor,
            time_zone: TimeZone::parse("America/Chicago").unwrap(),
            currency: Currency::parse("USD").unwrap(),
            owner_email: Email::parse("import@example.com").unwrap(),
        })
        .await
        .unwrap();
    let caller = Caller {
        organization_id: created.organization_id,
        user_id: Some(created.user_id),
        scope: Default::default(),
    };
    let name = format!("{backend:?}").to_lowercase();
    let first = catalogue(rows, 0);
    let changed = catalogue(rows, 7);
    let mut figures = Vec::new();
    for (label, source, catalogue) in [
        ("first import (all created)", "v1", &first),
        ("same file again (replayed)", "v1", &first),
        ("every price changed (revised)", "v2", &changed),
    ] {
        let start = Instant::now();
        let totals = services
            .pricebook_import(&caller, source, catalogue.clone(), 1000, |_| {})
            .await
            .unwrap();
        let took = start.elapsed();
        assert_eq!(totals.refused, 0, "{:?}", totals.refusals.first());
        println!(
            "{name:<8} {label:<30} {:>6.2} s {:>8.0} rows/s  (created {}, updated {}, unchanged {}, replayed batches {})",
            took.as_secs_f64(),
            rate(rows, took),
            totals.created,
            totals.updated,
            totals.unchanged,
            totals.replayed_batches
        );
        figures.push(took);
    }
    let plain = plain_inserts(backend, &db.owner_url, rows).await;
    println!(
        "{name:<8} plain inserts, 1,000 per transaction {:>6.2} s {:>8.0} rows/s  first import / plain = {:.1}x",
        plain.as_secs_f64(),
        rate(rows, plain),
        figures[0].as_secs_f64() / plain.as_secs_f64()
    );
    services.store().close().await;
    admin.close().await;
}

#[tokio::main]
async fn main() {
    let rows: usize = std::env::var("ROWS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    println!("pricebook_import: {rows} rows per run, batches of 1,000");
    bench(Backend::Sqlite, TestDb::sqlite().await.unwrap(), rows).await;
    match TestDb::postgres().await {
        Some(db) => bench(Backend::Postgres, db, rows).await,
        None => println!("postgres skipped: unreachable"),
    }
}
