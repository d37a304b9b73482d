//! Draining a morning's due timers on PostgreSQL, and what requests feel meanwhile.
//!
//! It creates `TIMERS / 2` organizations directly in SQL (an organization row, its feed counter
//! and its two daily timers, due a minute ago), then one process's timer pass
//! (`Services::fire_due_timers`) drains them: every timer runs its scan workflow and is moved to
//! the next morning. Meanwhile `CLIENTS` clients create jobs in another organization through the
//! same services, as requests would; their latency is compared with the same load before the
//! drain.
//!
//! `cargo bench --bench timers` (PostgreSQL from HESTAMI_TEST_DATABASE_URL, skipped if
//! unreachable; `TIMERS=100000 CLIENTS=8` by default).
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hestami::store::app::Services;
use hestami::store::app::job::JobLifecycleCommand;
use hestami::store::app::timers::DAILY;
use support::{Tenant, submit, tenant};
use support::{env, on_postgres, quantile};

/// Creates jobs from `clients` clients until `stop`; returns the sorted latencies.
async fn load(
    services: &Services,
    tenant: &Arc<Tenant>,
    clients: usize,
    stop: Arc<AtomicBool>,
) -> Vec<Duration> {
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (services, tenant, stop) = (services.clone(), tenant.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                let _: hestami::core::job::Job = submit(
                    &services,
                    &tenant.caller,
                    JobLifecycleCommand::Create(tenant.job.clone()),
                )
                .await;
                latencies.push(t0.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort();
    all
}

#[tokio::main]
async fn main() {
    let timers = env("TIMERS", 100_000);
    let clients = env("CLIENTS", 8);
    let Some((db, admin, services)) = on_postgres("timers").await else {
        return;
    };
    let requester = Arc::new(tenant(&admin, &services, 0).await);
    // Its own daily timers are not part of the measure.
    services.fire_due_timers().await.unwrap();

    // The organizations, as the owner (a superuser here: row-level security does not apply).
    let owner = sqlx::PgPool::connect(&db.owner_url).await.unwrap();
    let orgs = timers / DAILY.len();
    let started = Instant::now();
    sqlx::query(
        "INSERT INTO organizations (id, version, kind, name, time_zone, currency, \
         sla_emergency_minutes, sla_urgent_minutes, sla_routine_minutes, created_at, updated_at) \
         SELECT gen_random_uuid(), 1, 'contractor', 'Timer bench ' || i, 'America/Chicago', 'USD', \
         120, 1440, 4320, now(), now() FROM generate_series(1, $1) i",
    )
    .bind(i64::try_from(orgs).unwrap())
    .execute(&owner)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO feed_counters (organization_id, last_seq) \
         SELECT id, 0 FROM organizations WHERE name LIKE 'Timer bench %'",
    )
    .execute(&owner)
    .await
    .unwrap();
    for name in DAILY {
        sqlx::query(
            "INSERT INTO timers (organization_id, name, due_at) \
             SELECT id, $1, now() - interval '1 minute' FROM organizations WHERE name LIKE 'Timer bench %'",
        )
        .bind(name)
        .execute(&owner)
        .await
        .unwrap();
    }
    println!(
        "{} timers due in {orgs} organizations (set up in {:.1} s)",
        orgs * DAILY.len(),
        started.elapsed().as_secs_f64()
    );

    // Requests alone, then requests while one process drains the timers.
    let stop = Arc::new(AtomicBool::new(false));
    let quiet = tokio::spawn({
        let (services, requester, stop) = (services.clone(), requester.clone(), stop.clone());
        async move { load(&services, &requester, clients, stop).await }
    });
    tokio::time::sleep(Duration::from_secs(10)).await;
    stop.store(true, Ordering::Relaxed);
    let quiet = quiet.await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let busy = tokio::spawn({
        let (services, requester, stop) = (services.clone(), requester.clone(), stop.clone());
        async move { load(&services, &requester, clients, stop).await }
    });
    let started = Instant::now();
    let fired = services.fire_due_timers().await.unwrap();
    let drained = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let busy = busy.await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM timers WHERE due_at <= now()")
        .fetch_one(&owner)
        .await
        .unwrap();

    println!();
    println!("| what | result |");
    println!("| --- | --- |");
    println!(
        "| timers fired by one pass | {fired} in {:.1} s ({:.0}/s); {left} still due |",
        drained.as_secs_f64(),
        fired as f64 / drained.as_secs_f64()
    );
    println!(
        "| job/v1/create, {clients} clients, no timers (10 s) | {:.0}/s, p50 {:.1} ms, p99 {:.1} ms |",
        quiet.len() as f64 / 10.0,
        quantile(&quiet, 0.5),
        quantile(&quiet, 0.99)
    );
    println!(
        "| job/v1/create, {clients} clients, while draining | {:.0}/s, p50 {:.1} ms, p99 {:.1} ms |",
        busy.len() as f64 / drained.as_secs_f64(),
        quantile(&busy, 0.5),
        quantile(&busy, 0.99)
    );
}
