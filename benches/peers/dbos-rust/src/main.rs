//! DBOS Transact (Rust, crate `dbos` 0.5.0) peer for the job-create benchmark. Our code, written
//! for this comparison; see ../../README.md.
//!
//! usage: peer-dbos-rust <postgres-url> [clients=32] [seconds=10]
//!
//! The workflow (its id is the idempotency key, and also the job's id):
//!   step 1: DBOS step: INSERT INTO peer_jobs through the app's own pool
//!   step 2: DBOS step: a trivial pure computation (priority from a hash of the summary)
//!   step 3: DBOS step: INSERT INTO peer_events (job_id, 'created') through the app's own pool
//! dbos 0.5.0 has no transactional step (no datasource), so steps 1 and 3 are ordinary steps: the
//! INSERT and the step's checkpoint commit in two transactions (the TypeScript peer commits them
//! in one). Phase `create` starts the workflow with fresh UUIDs; phase `replay` starts it again
//! with ids that already completed, for which DBOS returns the recorded result. One line per
//! phase on stdout:
//!   PEER dbos-rust <phase> clients=<C> rate=<n>/s p50=<ms>ms p99=<ms>ms
//! DBOS_POOL (env, default 10 = DBOS's own default) sizes both the system-database pool and the
//! app-database pool.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dbos::{Config, DBOS, RunOptions, WorkflowRef};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

const NAME: &str = "dbos-rust";
const ORGS: u64 = 100;

/// A failed INSERT, in a form a DBOS checkpoint can hold (`sqlx::Error` is not serializable).
#[derive(Debug, Serialize, Deserialize)]
struct AppError(String);

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AppError {}

impl From<sqlx::Error> for AppError {
    fn from(error: sqlx::Error) -> Self {
        Self(error.to_string())
    }
}

/// The workflow's input.
#[derive(Serialize, Deserialize)]
struct NewJob {
    org: i32,
    summary: String,
}

/// The workflow's result, which a replay returns from the system database.
#[derive(Serialize, Deserialize)]
struct Created {
    job_id: String,
    org: i32,
    #[allow(dead_code)] // only serialized: the benchmark does not look at it
    priority: u32,
}

type CreateJob = WorkflowRef<NewJob, Created, AppError>;

/// Step 2's pure computation: FNV-1a of the summary, folded to a priority 0..3 (as in the TS peer).
fn priority_of(summary: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in summary.encode_utf16() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % 4
}

/// The workflow body.
async fn create_job(pool: PgPool, job: NewJob) -> dbos::Result<Created, AppError> {
    // The workflow id doubles as the job id.
    let job_id = dbos::workflow_id().ok_or_else(|| AppError("not inside a workflow".into()))?;
    // Copyable borrows, so the step closures below can be `move` and still called more than once.
    let (pool, id, org, summary) = (&pool, job_id.as_str(), job.org, job.summary.as_str());

    dbos::step("insert_job", move || async move {
        sqlx::query(
            "INSERT INTO peer_jobs (id, org, summary, created_at) VALUES ($1::uuid, $2, $3, now())",
        )
        .bind(id)
        .bind(org)
        .bind(summary)
        .execute(pool)
        .await
        .map_err(AppError::from)?;
        Ok::<(), dbos::Error<AppError>>(())
    })
    .await?;

    let priority = dbos::step("priority", move || async move {
        Ok::<u32, dbos::Error<AppError>>(priority_of(summary))
    })
    .await?;

    dbos::step("insert_event", move || async move {
        sqlx::query("INSERT INTO peer_events (job_id, kind) VALUES ($1::uuid, 'created')")
            .bind(id)
            .execute(pool)
            .await
            .map_err(AppError::from)?;
        Ok::<(), dbos::Error<AppError>>(())
    })
    .await?;

    Ok(Created {
        job_id,
        org,
        priority,
    })
}

/// Starts the workflow under `id`, awaits its result and checks it.
async fn run_once(workflow: &CreateJob, id: &str, org: i32) -> Result<(), String> {
    let job = NewJob {
        org,
        summary: format!("Job {} for org {org}", &id[..8]),
    };
    let options = RunOptions {
        workflow_id: Some(id),
        ..Default::default()
    };
    let created = workflow
        .run_with(job, options)
        .await
        .map_err(|e| e.to_string())?;
    if created.job_id != id || created.org != org {
        return Err(format!(
            "workflow {id} returned job {} of org {}",
            created.job_id, created.org
        ));
    }
    Ok(())
}

/// What the next start should use: a workflow id and an organization.
type Next = Arc<dyn Fn() -> (String, i32) + Send + Sync>;

/// C concurrent loops for `seconds`; prints the phase's line and returns the ids that completed.
async fn phase(
    label: &str,
    workflow: &CreateJob,
    clients: usize,
    seconds: u64,
    next: Next,
) -> Vec<(String, i32)> {
    static ERRORS_SHOWN: AtomicU64 = AtomicU64::new(0);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let label_owned = label.to_owned();
    let loops: Vec<_> = (0..clients)
        .map(|_| {
            let (workflow, next, label) =
                (workflow.clone(), Arc::clone(&next), label_owned.clone());
            tokio::spawn(async move {
                let (mut latencies, mut done, mut errors) = (Vec::new(), Vec::new(), 0u64);
                while Instant::now() < deadline {
                    let (id, org) = next();
                    let t0 = Instant::now();
                    match run_once(&workflow, &id, org).await {
                        Ok(()) => {
                            latencies.push(t0.elapsed());
                            done.push((id, org));
                        }
                        Err(e) => {
                            errors += 1;
                            if ERRORS_SHOWN.fetch_add(1, Ordering::Relaxed) < 5 {
                                eprintln!("{NAME} {label}: {e}");
                            }
                        }
                    }
                }
                (latencies, done, errors)
            })
        })
        .collect();

    let (mut latencies, mut done, mut errors) = (Vec::new(), Vec::new(), 0u64);
    for handle in loops {
        let (l, d, e) = handle.await.expect("a client loop panicked");
        latencies.extend(l);
        done.extend(d);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    if errors > 0 {
        eprintln!("{NAME} {label}: {errors} errors");
    }
    // Same percentile rule as the TS peer: the element at floor(p * n), clamped.
    let pct = |p: f64| {
        latencies
            .get(((p * latencies.len() as f64) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "PEER {NAME} {label} clients={clients} rate={:.1}/s p50={:.2}ms p99={:.2}ms",
        latencies.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
    );
    done
}

/// splitmix64, for spreading replays over the completed ids without a `rand` dependency.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// `postgres://host/db?opts` with the database renamed to `<db>_dbos_sys`.
fn system_database_url(url: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let (server, database) = base.rsplit_once('/').expect("the URL names a database");
    let mut sys = format!("{server}/{database}_dbos_sys");
    if let Some(query) = query {
        sys.push('?');
        sys.push_str(query);
    }
    sys
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(url) = args.first().cloned() else {
        eprintln!("usage: peer-dbos-rust <postgres-url> [clients=32] [seconds=10]");
        std::process::exit(2);
    };
    let clients = args.get(1).map_or(Ok(32), |s| s.parse::<usize>())?;
    let seconds = args.get(2).map_or(Ok(10), |s| s.parse::<u64>())?;
    let pool_size = std::env::var("DBOS_POOL").map_or(Ok(10), |s| s.parse::<u32>())?;

    // The app database: our tables, through our own pool.
    let pool = PgPoolOptions::new()
        .max_connections(pool_size)
        .connect(&url)
        .await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS peer_jobs (
             id uuid PRIMARY KEY,
             org int NOT NULL,
             summary text NOT NULL,
             created_at timestamptz NOT NULL DEFAULT now()
         );
         CREATE TABLE IF NOT EXISTS peer_events (
             id bigserial PRIMARY KEY,
             job_id uuid NOT NULL,
             kind text NOT NULL,
             created_at timestamptz NOT NULL DEFAULT now()
         );",
    )
    .execute(&pool)
    .await?;

    // DBOS, with its system database on the same server (created and migrated by launch).
    let dbos = DBOS::new(Config {
        app_version: Some("1".to_owned()), // required: dbos computes none
        max_connections: pool_size,
        ..Config::new("peer-dbos-rust", system_database_url(&url))
    });
    let workflow_pool = pool.clone();
    let workflow: CreateJob = dbos.register_workflow("create_job", move |job: NewJob| {
        create_job(workflow_pool.clone(), job)
    })?;
    dbos.launch().await?;

    // Create: fresh UUIDs, org = i % 100 over all starts.
    let seq = Arc::new(AtomicU64::new(0));
    let fresh: Next = Arc::new(move || {
        let i = seq.fetch_add(1, Ordering::Relaxed);
        (uuid::Uuid::new_v4().to_string(), (i % ORGS) as i32)
    });
    let done = Arc::new(phase("create", &workflow, clients, seconds, fresh).await);

    // Replay: ids that already completed, spread pseudo-randomly.
    if done.is_empty() {
        dbos.shutdown().await;
        return Err("no workflow completed in the create phase".into());
    }
    let draw = AtomicU64::new(0);
    let again: Next = Arc::new(move || {
        let k = mix(draw.fetch_add(1, Ordering::Relaxed)) % done.len() as u64;
        done[k as usize].clone()
    });
    phase("replay", &workflow, clients, seconds, again).await;

    dbos.shutdown().await;
    pool.close().await;
    Ok(())
}
