//! Job-create throughput through the durable workflow engine, against plain single-row inserts
//! on the same database in the same run. The ratio is what we track: it is the price of
//! idempotency, the step journal, the event and the change feed.
//!
//! Also: the change feed serializes one organization's writers (DESIGN §4.5), so concurrent
//! creates in one busy organization are compared with the same load spread over many.
//!
//! `cargo bench --bench job_create` (PostgreSQL from HESTAMI_TEST_DATABASE_URL, skipped if
//! unreachable; `JOBS=N` changes the count).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

mod support;

use hestami::store::app::Services;
use hestami::store::app::job::JobLifecycleCommand;
use hestami::store::engine::EngineConfig;
use hestami::store::testing::TestDb;
use hestami::store::{Backend, Store, StoreOptions};
use support::{Tenant, submit, tenant};

async fn create_jobs(services: &Services, tenant: &Tenant, n: usize) {
    for _ in 0..n {
        let _: hestami::core::job::Job = submit(
            services,
            &tenant.caller,
            JobLifecycleCommand::Create(tenant.job.clone()),
        )
        .await;
    }
}

/// `n` single-row inserts, each its own transaction, into a plain table with no RLS.
async fn plain_inserts(backend: Backend, url: &str, n: usize) -> Duration {
    let start;
    match backend {
        Backend::Sqlite => {
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .connect_with(
                    url.parse::<sqlx::sqlite::SqliteConnectOptions>()
                        .unwrap()
                        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                        .synchronous(sqlx::sqlite::SqliteSynchronous::Normal),
                )
                .await
                .unwrap();
            sqlx::query("CREATE TABLE bench_plain (id BLOB PRIMARY KEY, payload TEXT NOT NULL)")
                .execute(&pool)
                .await
                .unwrap();
            start = Instant::now();
            for _ in 0..n {
                sqlx::query("INSERT INTO bench_plain (id, payload) VALUES ($1, $2)")
                    .bind(uuid::Uuid::now_v7())
                    .bind("Benchmark job")
                    .execute(&pool)
                    .await
                    .unwrap();
            }
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            sqlx::query("CREATE TABLE bench_plain (id uuid PRIMARY KEY, payload text NOT NULL)")
                .execute(&pool)
                .await
                .unwrap();
            start = Instant::now();
            for _ in 0..n {
                sqlx::query("INSERT INTO bench_plain (id, payload) VALUES ($1, $2)")
                    .bind(uuid::Uuid::now_v7())
                    .bind("Benchmark job")
                    .execute(&pool)
                    .await
                    .unwrap();
            }
        }
    }
    start.elapsed()
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

async fn bench(backend: Backend, db: TestDb, jobs: usize) {
    let admin = Store::connect(&db.owner_url, StoreOptions::default())
        .await
        .unwrap();
    let services = Services::new(
        Store::connect(&db.app_url, StoreOptions::default())
            .await
            .unwrap(),
        EngineConfig::default(),
    );
    let name = format!("{backend:?}").to_lowercase();

    let one = tenant(&admin, &services, 0).await;
    create_jobs(&services, &one, 20).await; // warm-up
    let start = Instant::now();
    create_jobs(&services, &one, jobs).await;
    let engine = start.elapsed();
    let plain = plain_inserts(backend, &db.owner_url, jobs).await;
    println!(
        "{name:<8} sequential  job/v1/create via engine: {:>8.0}/s   plain insert: {:>8.0}/s   ratio {:>5.1}x",
        rate(jobs, engine),
        rate(jobs, plain),
        engine.as_secs_f64() / plain.as_secs_f64()
    );

    // Eight concurrent writers: all in one organization (they queue on its change-feed
    // counter), then one organization each.
    let writers = 8;
    let per = jobs / writers;
    let mut tenants = Vec::new();
    for n in 1..=writers {
        tenants.push(std::sync::Arc::new(tenant(&admin, &services, n).await));
    }
    for (label, spread) in [("1 org   ", false), ("8 orgs  ", true)] {
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..writers {
            let t = if spread {
                tenants[w].clone()
            } else {
                tenants[0].clone()
            };
            let services = services.clone();
            tasks.spawn(async move { create_jobs(&services, &t, per).await });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
        println!(
            "{name:<8} {writers} writers, {label} job/v1/create via engine: {:>8.0}/s",
            rate(per * writers, start.elapsed())
        );
    }
    services.store().close().await;
    admin.close().await;
}

#[tokio::main]
async fn main() {
    let jobs: usize = std::env::var("JOBS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(400);
    println!(
        "job_create: {jobs} jobs per run; the ratio compares with plain single-row inserts on the same database"
    );
    bench(Backend::Sqlite, TestDb::sqlite().await.unwrap(), jobs).await;
    match TestDb::postgres().await {
        Some(db) => bench(Backend::Postgres, db, jobs).await,
        None => println!("postgres skipped: unreachable"),
    }
}
