//! How long a retry sent to a surviving executor waits when the executor that ran the first
//! request died mid-workflow (issue 9): two executors share one PostgreSQL database; executor
//! `a` crashes right after the workflow's first step (as `kill -9` would leave it: the claim
//! and its lease in place, no heartbeat), and the same request is sent to executor `b`. The
//! figure is the time from the retry to its answer, measured with the lease of this release and
//! with the 30 s lease of the one before, in the same run.
//!
//! `cargo bench --bench takeover` (PostgreSQL from HESTAMI_TEST_DATABASE_URL, skipped if
//! unreachable; `RUNS=N` changes the count per lease).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use hestami::core::org::{Currency, OrgKind, TimeZone};
use hestami::core::text::{Email, Name, OrgName};
use hestami::store::app::customer::{CustomerCommand, NewCustomer};
use hestami::store::app::{Caller, Request, Services};
use hestami::store::directory::NewOrganization;
use hestami::store::engine::EngineConfig;
use hestami::store::testing::TestDb;
use hestami::store::{Store, StoreOptions};

fn request(n: usize) -> Request<CustomerCommand> {
    Request {
        idempotency_key: uuid::Uuid::new_v4(),
        fingerprint: format!("takeover-{n}"),
        trace_id: None,
        command: CustomerCommand::Create(NewCustomer {
            name: Name::parse(&format!("Takeover {n}")).unwrap(),
            email: None,
            phone: None,
        }),
    }
}

/// Seconds from each retry to its answer, for `runs` crashes under `lease`.
async fn measure(app_url: &str, caller: &Caller, lease: Duration, runs: usize) -> Vec<f64> {
    let crash_after_first_step: hestami::store::engine::FaultHook =
        Arc::new(|_, index, _| index == 0);
    let connect = || async {
        Store::connect(app_url, StoreOptions::default())
            .await
            .unwrap()
    };
    let a = Services::new(
        connect().await,
        EngineConfig {
            executor_id: format!("a-{}", uuid::Uuid::new_v4()),
            lease,
            fault: Some(crash_after_first_step),
        },
    );
    let b = Services::new(
        connect().await,
        EngineConfig {
            executor_id: format!("b-{}", uuid::Uuid::new_v4()),
            lease,
            fault: None,
        },
    )
    .with_wait(Duration::from_secs(60));
    let mut seconds = Vec::new();
    for n in 0..runs {
        let request = request(n);
        let crashed = a.submit(caller, request.clone()).await;
        assert!(crashed.is_err(), "the first run crashed");
        let started = Instant::now();
        let answer = b.submit(caller, request).await.unwrap();
        seconds.push(started.elapsed().as_secs_f64());
        assert!(answer.outcome.is_ok(), "{answer:?}");
    }
    seconds
}

fn summary(seconds: &[f64]) -> String {
    let mut sorted = seconds.to_vec();
    sorted.sort_by(f64::total_cmp);
    format!(
        "runs {}, median {:.2} s, max {:.2} s",
        sorted.len(),
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1]
    )
}

#[tokio::main]
async fn main() {
    let Some(db) = TestDb::postgres().await else {
        eprintln!("takeover: PostgreSQL unreachable, skipped");
        return;
    };
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let admin = Store::connect(&db.owner_url, StoreOptions::default())
        .await
        .unwrap();
    let created = admin
        .create_organization(NewOrganization {
            name: OrgName::parse("Takeover").unwrap(),
            kind: OrgKind::Contractor,
            time_zone: TimeZone::parse("America/Chicago").unwrap(),
            currency: Currency::parse("USD").unwrap(),
            owner_email: Email::parse("takeover@example.com").unwrap(),
        })
        .await
        .unwrap();
    let caller = Caller {
        organization_id: created.organization_id,
        user_id: Some(created.user_id),
        scope: Default::default(),
    };
    let default_lease = EngineConfig::default().lease;
    let now = measure(&db.app_url, &caller, default_lease, runs).await;
    println!(
        "takeover with the {} s lease (this release): {}",
        default_lease.as_secs(),
        summary(&now)
    );
    let before = measure(&db.app_url, &caller, Duration::from_secs(30), runs.min(2)).await;
    println!(
        "takeover with the 30 s lease (before):       {}",
        summary(&before)
    );
}
