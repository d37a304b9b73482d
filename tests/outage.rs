//! PostgreSQL restarted and stopped under load (issue 9): every answer is a `200` or a `503`
//! with `Retry-After`, never a `500`; `/ready` follows the database while `/health` stays up;
//! no acknowledged write is lost, and the refused ones go through when retried with their keys.
//!
//! The test runs a PostgreSQL cluster of its own (initdb into a temporary directory, on a free
//! port), so that restarting it disturbs no other test. It needs the server binaries
//! (`pg_config --bindir`); as root it runs them as the `postgres` user.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hestami::core::org::{Currency, OrgKind, TimeZone};
use hestami::core::text::{Email, OrgName};
use hestami::store::app::Services;
use hestami::store::directory::NewOrganization;
use hestami::store::engine::EngineConfig;
use hestami::store::{Store, StoreOptions};

/// A PostgreSQL cluster of the test's own, stopped and removed when dropped.
struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl Cluster {
    fn start() -> Option<Self> {
        let required = hestami::store::testing::postgres_required();
        let bin = Command::new("pg_config")
            .arg("--bindir")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
            .filter(|bin| bin.join("pg_ctl").exists() && bin.join("initdb").exists());
        let Some(bin) = bin else {
            assert!(
                !required,
                "PostgreSQL's server binaries are required (pg_config --bindir)"
            );
            eprintln!("skipping: no PostgreSQL server binaries");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir =
            std::env::temp_dir().join(format!("hestami-outage-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let cluster = Self { bin, dir, port };
        if is_root() {
            assert!(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(&cluster.dir)
                    .status()
                    .unwrap()
                    .success()
            );
        }
        cluster.run(
            "initdb",
            &["-A", "trust", "-U", "postgres", "-D", &cluster.data()],
        );
        cluster.ctl("start");
        Some(cluster)
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl start | restart | stop`, waiting for it to finish.
    fn ctl(&self, action: &str) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                action,
                "-w",
                "-m",
                "fast",
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
            ],
        );
    }

    fn run(&self, program: &str, args: &[&str]) {
        let status = self.command(program, args).status().unwrap();
        assert!(status.success(), "{program} {args:?} failed");
    }

    /// One of the server's programs, as the `postgres` user when we are root (PostgreSQL
    /// refuses to run as root).
    fn command(&self, program: &str, args: &[&str]) -> Command {
        let path = self.bin.join(program);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        command.args(args);
        command
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl", &["stop", "-m", "immediate", "-D", &data])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// What the clients saw.
#[derive(Default)]
struct Seen {
    statuses: Vec<u16>,
    /// Keys of creates answered `200`, and of those answered otherwise.
    acknowledged: Vec<(String, String)>,
    refused: Vec<(String, String)>,
    missing_retry_after: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_and_a_stop_under_load_answer_503_never_500() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let cluster = Arc::new(cluster);
    let owner = cluster.url();
    Store::migrate(&owner).await.unwrap();
    let admin = Store::connect(&owner, StoreOptions::default())
        .await
        .unwrap();
    let created = admin
        .create_organization(NewOrganization {
            name: OrgName::parse("Outage Plumbing").unwrap(),
            kind: OrgKind::Contractor,
            time_zone: TimeZone::parse("America/Chicago").unwrap(),
            currency: Currency::parse("USD").unwrap(),
            owner_email: Email::parse("owner@outage.example").unwrap(),
        })
        .await
        .unwrap();
    let app_url = hestami::store::derive_app_url(&owner).unwrap();
    let app = Store::connect(&app_url, StoreOptions::default())
        .await
        .unwrap();
    let services = Services::new(app, EngineConfig::default());
    let recovery = services
        .engine()
        .spawn_recovery_loop(Duration::from_millis(500));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = hestami::http::router(hestami::http::AppState::new(
        services.clone(),
        hestami::http::ServerConfig::default(),
    ));
    tokio::spawn(hestami::http::serve(
        listener,
        router,
        std::future::pending(),
    ));

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let org = created.organization_id.to_string();
    let token = created.token.clone();
    let call = {
        let (http, base, org, token) = (http.clone(), base.clone(), org.clone(), token.clone());
        move |procedure: &'static str, body: Value| {
            let (http, base, org, token) = (http.clone(), base.clone(), org.clone(), token.clone());
            async move {
                http.post(format!("{base}/api/v1/rpc/{procedure}"))
                    .header("authorization", format!("Bearer {token}"))
                    .header("x-organization-id", org)
                    .json(&body)
                    .send()
                    .await
            }
        }
    };

    let seen = Arc::new(Mutex::new(Seen::default()));
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut clients = Vec::new();
    for client in 0..4 {
        let (call, seen, running) = (call.clone(), seen.clone(), running.clone());
        clients.push(tokio::spawn(async move {
            let mut n = 0;
            while running.load(std::sync::atomic::Ordering::SeqCst) && n < 5_000 {
                n += 1;
                let key = uuid::Uuid::new_v4().to_string();
                let name = format!("C{client}-{n}");
                let (procedure, body) = if n % 3 == 0 {
                    ("customer/v1/list", json!({ "limit": 5 }))
                } else {
                    (
                        "customer/v1/create",
                        json!({ "idempotencyKey": key, "name": name }),
                    )
                };
                let Ok(response) = call(procedure, body).await else {
                    continue;
                };
                let status = response.status().as_u16();
                let retry_after = response.headers().contains_key("retry-after");
                {
                    let mut seen = seen.lock().unwrap();
                    seen.statuses.push(status);
                    if status == 503 && !retry_after {
                        seen.missing_retry_after += 1;
                    }
                    if procedure == "customer/v1/create" {
                        if status == 200 {
                            seen.acknowledged.push((key, name));
                        } else {
                            seen.refused.push((key, name));
                        }
                    }
                }
                if status == 503 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }

    let ready = |base: String, http: reqwest::Client| async move {
        http.get(format!("{base}/ready"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let control = |action: &'static str| {
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || cluster.ctl(action))
    };
    control("restart").await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    control("stop").await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        ready(base.clone(), http.clone()).await,
        503,
        "not ready while the database is down"
    );
    let health = http.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200, "alive while the database is down");
    tokio::time::sleep(Duration::from_secs(1)).await;
    control("start").await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    running.store(false, std::sync::atomic::Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }
    assert_eq!(
        ready(base.clone(), http.clone()).await,
        200,
        "ready once the database is back"
    );

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let mut counts = std::collections::BTreeMap::new();
    for status in &seen.statuses {
        *counts.entry(*status).or_insert(0) += 1;
    }
    eprintln!("statuses under the outage: {counts:?}");
    assert!(
        counts.keys().all(|s| *s == 200 || *s == 503),
        "only 200 and 503: {counts:?}"
    );
    assert!(
        counts.get(&503).is_some_and(|n| *n > 0),
        "the outage was seen: {counts:?}"
    );
    assert_eq!(seen.missing_retry_after, 0, "every 503 says when to retry");

    // Every create goes through when retried with its key: a replay for the acknowledged ones
    // (and for refused ones whose run finished after all), a first run for the others.
    for (key, name) in seen.acknowledged.iter().chain(&seen.refused) {
        let body = json!({ "idempotencyKey": key, "name": name });
        let response = call("customer/v1/create", body).await.unwrap();
        let status = response.status().as_u16();
        let reply: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{reply}");
        assert_eq!(reply["name"], json!(name));
    }
    let pool = sqlx::PgPool::connect(&owner).await.unwrap();
    let workflows: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM workflows WHERE procedure = 'customer/v1/create' AND status = 'succeeded'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let customers: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM customers")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert_eq!(
        workflows, customers,
        "one customer per succeeded create, no more, no less"
    );
    assert_eq!(
        customers as usize,
        seen.acknowledged.len() + seen.refused.len(),
        "every create happened exactly once"
    );
    recovery.abort();
    services.store().close().await;
    admin.close().await;
}
