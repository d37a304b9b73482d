//! The load driver: the `hestami` server measured from outside, over HTTP, as a client sees it.
//!
//! It starts `target/release/hestami serve` on a fresh database (PostgreSQL from
//! `HESTAMI_TEST_DATABASE_URL`, and a temporary SQLite file), creates organizations with the
//! CLI, and then, for each number of concurrent clients, for a fixed time:
//!
//! - **create**: `job/v1/create` with a fresh idempotency key per request, each client cycling
//!   over the organizations (100 by default);
//! - **replay**: the same requests again, same keys (every answer a recorded outcome);
//! - **get**: `job/v1/get` of the jobs just created;
//! - **busy**: `job/v1/create` with every client in one organization.
//!
//! On PostgreSQL it then runs, on the same server, `pgbench` (a one-INSERT and a three-INSERT
//! transaction) and the DBOS Transact peers of `benches/peers` (the same three-step workflow on
//! DBOS' TypeScript SDK and Rust crate; `PEERS=` skips them).
//!
//! It prints throughput, p50 and p99 per row, and the server's statements and transactions per
//! request when the server reports them (`GET /metrics/db`). Its HTTP/1.1 client is a few lines
//! over a kept-alive TCP connection, so that the driver costs the shared CPU as little as it can.
//!
//! ```sh
//! cargo build --release -p hestami-cli
//! cargo bench --bench load      # BACKENDS=postgres,sqlite CLIENTS=1,8,32 SECONDS=10 PHASES=create,replay,get,busy
//! HESTAMI_BIN=/path/to/hestami cargo bench --bench load
//! ```
#![allow(clippy::unwrap_used)]

mod support;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use support::server::{
    Conn, Server, bin, cli, db_counters, drop_pg_database, pg_database, start_server,
};
use uuid::Uuid;

/// An organization the driver calls in.
#[derive(Clone)]
struct Tenant {
    org: String,
    auth: String,
    customer: String,
    property: String,
}

async fn call(c: &mut Conn, t: &Tenant, procedure: &str, body: &Value) -> Value {
    let (status, bytes) = c
        .post(
            &format!("/api/v1/rpc/{procedure}"),
            &[("Authorization", &t.auth), ("X-Organization-Id", &t.org)],
            body.to_string().as_bytes(),
        )
        .await;
    let value: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(status, 200, "{procedure}: {value}");
    value
}

async fn create_tenants(url: &str, addr: &str, n: usize, tag: &str) -> Vec<Tenant> {
    let mut c = Conn::open(addr).await;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let created: Value = serde_json::from_str(&cli(
            url,
            &[
                "admin",
                "create-org",
                "--name",
                &format!("Load {tag} {i}"),
                "--timezone",
                "America/Chicago",
                "--currency",
                "USD",
                "--owner-email",
                &format!("load-{tag}-{i}@example.com"),
                "--json",
            ],
        ))
        .unwrap();
        let mut t = Tenant {
            org: created["organizationId"].as_str().unwrap().to_owned(),
            auth: format!("Bearer {}", created["token"].as_str().unwrap()),
            customer: String::new(),
            property: String::new(),
        };
        let customer = call(
            &mut c,
            &t,
            "customer/v1/create",
            &json!({ "idempotencyKey": Uuid::new_v4(), "name": "Load" }),
        )
        .await;
        t.customer = customer["id"].as_str().unwrap().to_owned();
        let property = call(
            &mut c,
            &t,
            "customer/v1/addProperty",
            &json!({ "idempotencyKey": Uuid::new_v4(), "customerId": t.customer, "address": {
                "line1": "1 Main St", "city": "Chicago", "region": "IL", "postalCode": "60601", "country": "US" } }),
        )
        .await;
        t.property = property["id"].as_str().unwrap().to_owned();
        out.push(t);
    }
    out
}

fn create_body(t: &Tenant) -> Value {
    json!({ "idempotencyKey": Uuid::new_v4(), "customerId": t.customer, "propertyId": t.property,
            "trade": "plumbing", "priority": "routine", "summary": "Load test job" })
}

/// One request as sent: which tenant, which procedure, which body; and the created job's id.
#[derive(Clone)]
struct Sent {
    tenant: usize,
    body: Value,
    job: String,
}

#[derive(Clone, Copy)]
enum Phase {
    Create,
    Replay,
    Get,
}

struct Outcome {
    rate: f64,
    p50: Duration,
    p99: Duration,
    sent: Vec<Sent>,
}

/// Runs `clients` clients for `seconds`; for replay and get, they go through `previous`.
async fn run(
    addr: &str,
    tenants: &Arc<Vec<Tenant>>,
    phase: Phase,
    clients: usize,
    seconds: u64,
    previous: &Arc<Vec<Sent>>,
) -> Outcome {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (addr, tenants, previous, stop) = (
            addr.to_owned(),
            tenants.clone(),
            previous.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::open(&addr).await;
            let mut latencies = Vec::new();
            let mut sent = Vec::new();
            let mut i = client;
            while !stop.load(Ordering::Relaxed) {
                let (tenant, procedure, body) = match phase {
                    Phase::Create => {
                        let tenant = i % tenants.len();
                        (tenant, "job/v1/create", create_body(&tenants[tenant]))
                    }
                    Phase::Replay => {
                        let s = &previous[i % previous.len()];
                        (s.tenant, "job/v1/create", s.body.clone())
                    }
                    Phase::Get => {
                        let s = &previous[i % previous.len()];
                        (s.tenant, "job/v1/get", json!({ "jobId": s.job }))
                    }
                };
                i += clients;
                let t0 = Instant::now();
                let value = call(&mut c, &tenants[tenant], procedure, &body).await;
                latencies.push(t0.elapsed());
                if matches!(phase, Phase::Create) {
                    sent.push(Sent {
                        tenant,
                        body,
                        job: value["id"].as_str().unwrap().to_owned(),
                    });
                }
            }
            (latencies, sent)
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    let mut sent = Vec::new();
    for task in tasks {
        let (l, s) = task.await.unwrap();
        latencies.extend(l);
        sent.extend(s);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Outcome {
        rate: latencies.len() as f64 / elapsed,
        p50: pick(0.50),
        p99: pick(0.99),
        sent,
    }
}

fn print_row(backend: &str, what: &str, clients: usize, o: &Outcome, per: Option<(f64, f64, f64)>) {
    let per = per
        .map(|(t, w, s)| format!("{t:.2} | {w:.2} | {s:.1}"))
        .unwrap_or_else(|| "– | – | –".into());
    println!(
        "| {backend} | {what} | {clients} | {:.0}/s | {:.1} ms | {:.1} ms | {per} |",
        o.rate,
        o.p50.as_secs_f64() * 1e3,
        o.p99.as_secs_f64() * 1e3,
    );
}

/// Runs a phase and the per-request database counters around it.
async fn measured(
    server: &Server,
    tenants: &Arc<Vec<Tenant>>,
    phase: Phase,
    clients: usize,
    seconds: u64,
    previous: &Arc<Vec<Sent>>,
) -> (Outcome, Option<(f64, f64, f64)>) {
    let before = db_counters(&server.addr).await;
    let o = run(&server.addr, tenants, phase, clients, seconds, previous).await;
    let after = db_counters(&server.addr).await;
    // Reading the counters is itself one request without a transaction.
    let n = (o.rate * seconds as f64).max(1.0);
    let per = before.zip(after).map(|(b, a)| {
        (
            (a.0 - b.0) as f64 / n,
            (a.1 - b.1) as f64 / n,
            (a.2 - b.2) as f64 / n,
        )
    });
    (o, per)
}

async fn bench_backend(backend: &str, url: &str, clients: &[usize], seconds: u64, orgs: usize) {
    let server = start_server(url).await;
    let tenants = Arc::new(create_tenants(url, &server.addr, orgs, "many").await);
    let busy = Arc::new(create_tenants(url, &server.addr, 1, "busy").await);
    let none = Arc::new(Vec::new());
    let phases = std::env::var("PHASES").unwrap_or_else(|_| "create,replay,get,busy".into());
    let wanted = |phase: &str| phases.split(',').any(|p| p.trim() == phase);
    for &c in clients {
        let (created, per) = measured(&server, &tenants, Phase::Create, c, seconds, &none).await;
        print_row(backend, "create", c, &created, per);
        let sent = Arc::new(created.sent.clone());
        if wanted("replay") {
            let (replayed, per) =
                measured(&server, &tenants, Phase::Replay, c, seconds, &sent).await;
            print_row(backend, "replay", c, &replayed, per);
        }
        if wanted("get") {
            let (got, per) = measured(&server, &tenants, Phase::Get, c, seconds, &sent).await;
            print_row(backend, "get", c, &got, per);
        }
    }
    if wanted("busy") {
        let c = *clients.iter().max().unwrap();
        let (o, per) = measured(&server, &busy, Phase::Create, c, seconds, &none).await;
        print_row(backend, "create, one organization", c, &o, per);
    }
}

/// pgbench on the same database: a one-INSERT and a three-INSERT transaction.
fn pgbench(url: &str, clients: usize, seconds: u64) {
    let setup = "DROP TABLE IF EXISTS bench_jobs, bench_events; \
        CREATE TABLE bench_jobs (id uuid PRIMARY KEY, org int NOT NULL, summary text NOT NULL, created_at timestamptz NOT NULL DEFAULT now()); \
        CREATE TABLE bench_events (id bigserial PRIMARY KEY, job uuid NOT NULL, kind text NOT NULL, at timestamptz NOT NULL DEFAULT now());";
    let ok = Command::new("psql")
        .args([url, "-qc", setup])
        .status()
        .unwrap();
    assert!(ok.success());
    let dir = std::env::temp_dir();
    let one = dir.join("hestami-pgbench-1.sql");
    let three = dir.join("hestami-pgbench-3.sql");
    std::fs::write(
        &one,
        "\\set org random(1, 100)\nINSERT INTO bench_jobs (id, org, summary) VALUES (gen_random_uuid(), :org, 'Load test job');\n",
    )
    .unwrap();
    std::fs::write(
        &three,
        "\\set org random(1, 100)\nBEGIN;\nINSERT INTO bench_jobs (id, org, summary) VALUES (gen_random_uuid(), :org, 'Load test job');\n\
         INSERT INTO bench_events (job, kind) VALUES (gen_random_uuid(), 'created');\n\
         INSERT INTO bench_events (job, kind) VALUES (gen_random_uuid(), 'feed');\nCOMMIT;\n",
    )
    .unwrap();
    for (what, file) in [
        ("pgbench, one INSERT", &one),
        ("pgbench, three INSERTs", &three),
    ] {
        let out = Command::new("pgbench")
            .args([
                "-n",
                "-c",
                &clients.to_string(),
                "-j",
                "2",
                "-T",
                &seconds.to_string(),
                "-f",
            ])
            .arg(file)
            .arg(url)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let tps = text
            .lines()
            .find(|l| l.starts_with("tps"))
            .and_then(|l| l.split_whitespace().nth(2))
            .unwrap_or("?");
        let latency = text
            .lines()
            .find(|l| l.starts_with("latency average"))
            .and_then(|l| l.split_whitespace().nth(3))
            .unwrap_or("?");
        println!(
            "| postgres | {what} | {clients} | {tps}/s | {latency} ms (mean) | – | 1 | 1 | – |"
        );
    }
    let _ = Command::new("psql")
        .args([url, "-qc", "DROP TABLE IF EXISTS bench_jobs, bench_events"])
        .status();
}

/// DBOS Transact running the same job-create workflow on the same PostgreSQL
/// (`benches/peers/run.sh`; `PEERS=` skips them, `PEERS="dbos-ts"` runs one).
fn peers(base: &str, clients: usize, seconds: u64) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peers/run.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg(base)
        .env("CLIENTS", clients.to_string())
        .env("SECONDS", seconds.to_string())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // PEER <name> <phase> clients=<C> rate=<n>/s p50=<ms>ms p99=<ms>ms, or PEER <name> failed
        let words: Vec<&str> = line.split_whitespace().collect();
        let field = |key: &str| {
            words
                .iter()
                .find_map(|w| w.strip_prefix(key))
                .unwrap_or("?")
                .to_owned()
        };
        match words.as_slice() {
            ["PEER", name, "failed"] => println!("| postgres | {name} | – | failed | | | | | |"),
            ["PEER", name, phase, ..] => println!(
                "| postgres | {name}, {phase} | {} | {} | {} | {} | – | – | – |",
                field("clients="),
                field("rate="),
                field("p50=").replace("ms", " ms"),
                field("p99=").replace("ms", " ms"),
            ),
            _ => {}
        }
    }
}

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::var("SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let orgs: usize = std::env::var("ORGS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let clients: Vec<usize> = std::env::var("CLIENTS")
        .unwrap_or_else(|_| "1,8,32".into())
        .split(',')
        .map(|c| c.trim().parse().unwrap())
        .collect();
    let backends = std::env::var("BACKENDS").unwrap_or_else(|_| "postgres,sqlite".into());
    support::server::require_release_binary();
    println!(
        "server: {}; {seconds} s per row; {orgs} organizations",
        bin()
    );
    println!();
    println!(
        "| backend | what | clients | rate | p50 | p99 | transactions/request | write transactions/request | statements/request |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for backend in backends.split(',') {
        match backend.trim() {
            "postgres" => {
                let base = std::env::var("HESTAMI_TEST_DATABASE_URL")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
                let Some(url) = pg_database(&base) else {
                    println!(
                        "| postgres | skipped: cannot create a database at {base} | | | | | | | |"
                    );
                    continue;
                };
                bench_backend("postgres", &url, &clients, seconds, orgs).await;
                pgbench(&url, *clients.iter().max().unwrap(), seconds);
                drop_pg_database(&base, &url);
                if std::env::var("PEERS").map_or(true, |p| !p.is_empty()) {
                    peers(&base, *clients.iter().max().unwrap(), seconds);
                }
            }
            "sqlite" => {
                let dir = std::env::temp_dir().join(format!("hestami-load-{}", std::process::id()));
                std::fs::create_dir_all(&dir).unwrap();
                let url = format!("sqlite://{}", dir.join("load.db").display());
                bench_backend("sqlite", &url, &clients, seconds, orgs).await;
                let _ = std::fs::remove_dir_all(&dir);
            }
            other => panic!("unknown backend {other}"),
        }
    }
}
