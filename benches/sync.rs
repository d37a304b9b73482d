//! Offline sync measured over HTTP, as a technician's phone sees it, beside the plain SQL each
//! call wraps, in the same run on the same database.
//!
//! For each backend it builds one organization with a technician whose week holds `WEEK` visits
//! (40, booked through the services) and `HISTORY` closed jobs (1,000,000; one in ten hers,
//! inserted in bulk by SQL as the owner). Then, against the release server:
//!
//! - **first sync**: `sync/v1/pull` from nothing until `more` is false (pages of 200), `SAMPLES`
//!   times with a fresh device each: time and bytes; floor: her open jobs with their visits,
//!   customer, property and notes read by one SQL query;
//! - **pull `CHANGES` changes** (10,000 notes on her jobs, written by SQL with their feed rows):
//!   time, pages and bytes; floor: the feed rows and their notes read by one SQL query;
//! - **push `PUSHES` operations** (500 `job/v2/addNote`, batches of 200): time; beside it, the
//!   same 500 calls one by one over HTTP, and 500 plain transactions that insert a note and its
//!   feed row.
//!
//! ```sh
//! cargo build --release -p hestami-cli
//! cargo bench --bench sync     # BACKENDS=postgres,sqlite HISTORY=1000000 WEEK=40 CHANGES=10000 PUSHES=500 SAMPLES=5
//! ```
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};

use hestami::core::ids::UserId;
use hestami::core::job::{Job, TimeWindow};
use hestami::core::org::Role;
use hestami::core::schedule::local_to_utc;
use hestami::core::text::{Email, Name, Reason, TradeCode};
use hestami::core::workforce::Technician;
use hestami::store::app::appointment::{AddAppointment, JobSchedule, JobV2Command};
use hestami::store::app::job::JobLifecycleCommand;
use hestami::store::app::technician::{LinkCommand, NewTechnician, TechnicianCommand};
use hestami::store::app::{Caller, Services};
use hestami::store::engine::EngineConfig;
use hestami::store::testing::{TestDb, fixtures};
use hestami::store::{Backend, Store, StoreOptions};
use support::env;
use support::server::{Conn, start_server};
use support::submit;

fn local(date: NaiveDate, minute: i64) -> DateTime<Utc> {
    local_to_utc(
        chrono_tz::America::Chicago,
        date.and_hms_opt(0, 0, 0).unwrap() + chrono::Duration::minutes(minute),
    )
}

struct Built {
    org: uuid::Uuid,
    technician: uuid::Uuid,
    token: String,
    jobs: Vec<uuid::Uuid>,
}

async fn build(db: &TestDb, week: usize, history: usize) -> Built {
    let admin = Store::connect(&db.owner_url, StoreOptions::default())
        .await
        .unwrap();
    let services = Services::new(
        Store::connect(&db.app_url, StoreOptions::default())
            .await
            .unwrap(),
        EngineConfig::default(),
    );
    // An organization with a customer and a property (the benchmarks' common tenant).
    let tenant = support::tenant(&admin, &services, 0).await;
    let caller = tenant.caller;
    let c = &caller;
    fixtures::make_ready(&services, c, "US", "IL", &["plumbing"], &["60601"])
        .await
        .unwrap();
    let tech: Technician = submit(
        &services,
        c,
        TechnicianCommand::Create(NewTechnician {
            name: Name::parse("Ana").unwrap(),
            email: None,
            phone: None,
            trades: vec![TradeCode::parse("plumbing").unwrap()],
        }),
    )
    .await;
    fixtures::around_the_clock(&services, c, tech.id)
        .await
        .unwrap();
    let email = Email::parse("ana@sync.example").unwrap();
    let user: UserId = admin
        .add_member(c.organization_id, &email, Role::Technician)
        .await
        .unwrap();
    let token = admin.create_token(&email, None, None).await.unwrap().token;
    let _: Value = submit(
        &services,
        c,
        LinkCommand::LinkUser {
            technician_id: tech.id,
            user_id: Some(user),
        },
    )
    .await;
    // Her week: eight one-hour visits a day from tomorrow.
    let tomorrow = Utc::now()
        .with_timezone(&chrono_tz::America::Chicago)
        .date_naive()
        + chrono::Duration::days(1);
    let mut jobs = Vec::with_capacity(week);
    for k in 0..week {
        let job: Job = submit(
            &services,
            c,
            JobLifecycleCommand::Create(tenant.job.clone()),
        )
        .await;
        let day = tomorrow + chrono::Duration::days((k / 8) as i64);
        let start = local(day, 8 * 60 + (k % 8) as i64 * 60);
        let _: JobSchedule = submit(
            &services,
            c,
            JobV2Command::AddAppointment(AddAppointment {
                job_id: job.id,
                window: TimeWindow::parse(start, start + chrono::Duration::minutes(50)).unwrap(),
                estimated_minutes: Some(40),
                lead: Some(tech.id),
                helpers: vec![],
                // A week runs past a routine job's three-day SLA; the office books it anyway.
                sla_override: Some(Reason::parse("booked for the week").unwrap()),
                planned_start: None,
                expected_version: None,
            }),
        )
        .await;
        jobs.push(job.id.as_uuid());
    }
    let started = Instant::now();
    insert_history(
        db,
        &caller,
        tenant.job.customer_id.as_uuid(),
        tenant.job.property_id.as_uuid(),
        tech.id.as_uuid(),
        history,
    )
    .await;
    println!(
        "  history: {history} closed jobs inserted in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Built {
        org: caller.organization_id.as_uuid(),
        technician: tech.id.as_uuid(),
        token,
        jobs,
    }
}

/// `n` closed jobs, one in ten the technician's, by SQL.
async fn insert_history(
    db: &TestDb,
    caller: &Caller,
    customer: uuid::Uuid,
    property: uuid::Uuid,
    technician: uuid::Uuid,
    n: usize,
) {
    let org = caller.organization_id.as_uuid();
    match db.backend() {
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.owner_url).await.unwrap();
            sqlx::query(
                "INSERT INTO jobs (organization_id, id, version, status, held_from, customer_id, property_id, trade, \
                 priority, summary, description, window_start, window_end, technician_id, sla_deadline, \
                 visit_started_at, completed_at, callback_of, created_at, updated_at, min_skill_level, \
                 required_certifications) \
                 SELECT $1, gen_random_uuid(), 8, 'closed', NULL, $2, $3, 'plumbing', 'routine', 'Past visit', NULL, \
                 w, w + interval '1 hour', CASE WHEN g % 10 = 0 THEN $4 END, w, w, w + interval '1 hour', \
                 NULL, w - interval '1 day', w + interval '1 day', 1, '[]' \
                 FROM generate_series(1, $5) g, LATERAL (SELECT now() - interval '7 days' - g * interval '2 minutes' AS w) t",
            )
            .bind(org)
            .bind(customer)
            .bind(property)
            .bind(technician)
            .bind(n as i64)
            .execute(&pool)
            .await
            .unwrap();
            sqlx::query("ANALYZE").execute(&pool).await.unwrap();
            pool.close().await;
        }
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.owner_url).await.unwrap();
            let ts = |expr: &str| format!("strftime('%Y-%m-%dT%H:%M:%S.000000Z', 'now', {expr})");
            let w = "'-7 days', '-' || (g * 2) || ' minutes'";
            sqlx::query(&format!(
                "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < $5) \
                 INSERT INTO jobs (organization_id, id, version, status, held_from, customer_id, property_id, trade, \
                 priority, summary, description, window_start, window_end, technician_id, sla_deadline, \
                 visit_started_at, completed_at, callback_of, created_at, updated_at, min_skill_level, \
                 required_certifications) \
                 SELECT $1, randomblob(16), 8, 'closed', NULL, $2, $3, 'plumbing', 'routine', 'Past visit', NULL, \
                 {start}, {end}, CASE WHEN g % 10 = 0 THEN $4 END, {start}, {start}, {end}, NULL, \
                 {start}, {start}, 1, '[]' FROM s",
                start = ts(w),
                end = ts(&format!("{w}, '+1 hour'")),
            ))
            .bind(org)
            .bind(customer)
            .bind(property)
            .bind(technician)
            .bind(n as i64)
            .execute(&pool)
            .await
            .unwrap();
            sqlx::query("ANALYZE").execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
}

/// `CHANGES` notes on her jobs with their feed rows, by SQL, as the workflow would write them.
async fn insert_notes(db: &TestDb, built: &Built, n: usize) {
    let ids: Vec<uuid::Uuid> = (0..n).map(|_| uuid::Uuid::now_v7()).collect();
    let jobs: Vec<uuid::Uuid> = (0..n).map(|k| built.jobs[k % built.jobs.len()]).collect();
    let now = Utc::now();
    match db.backend() {
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.owner_url).await.unwrap();
            let mut tx = pool.begin().await.unwrap();
            sqlx::query(
                "INSERT INTO notes (organization_id, id, job_id, appointment_id, body, author_user_id, device, created_at) \
                 SELECT $1, id, job, NULL, 'Benchmark note', NULL, NULL, $4 FROM unnest($2::uuid[], $3::uuid[]) AS t(id, job)",
            )
            .bind(built.org)
            .bind(&ids)
            .bind(&jobs)
            .bind(now)
            .execute(&mut *tx)
            .await
            .unwrap();
            sqlx::query(
                "WITH c AS (UPDATE feed_counters SET last_seq = last_seq + $3 WHERE organization_id = $1 \
                 RETURNING last_seq - $3 AS base) \
                 INSERT INTO change_feed (organization_id, seq, entity_kind, entity_id, version, operation, \
                 actor_user_id, workflow_id, at) \
                 SELECT $1, c.base + t.n, 'note', t.id, 1, 'created', NULL, NULL, $4 \
                 FROM c, unnest($2::uuid[]) WITH ORDINALITY AS t(id, n)",
            )
            .bind(built.org)
            .bind(&ids)
            .bind(n as i64)
            .bind(now)
            .execute(&mut *tx)
            .await
            .unwrap();
            tx.commit().await.unwrap();
            pool.close().await;
        }
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.owner_url).await.unwrap();
            let mut tx = pool.begin().await.unwrap();
            let base: i64 =
                sqlx::query_scalar("SELECT last_seq FROM feed_counters WHERE organization_id = $1")
                    .bind(built.org)
                    .fetch_one(&mut *tx)
                    .await
                    .unwrap();
            let at = now.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
            for (k, (id, job)) in ids.iter().zip(&jobs).enumerate() {
                sqlx::query(
                    "INSERT INTO notes (organization_id, id, job_id, appointment_id, body, author_user_id, device, created_at) \
                     VALUES ($1, $2, $3, NULL, 'Benchmark note', NULL, NULL, $4)",
                )
                .bind(built.org)
                .bind(id)
                .bind(job)
                .bind(&at)
                .execute(&mut *tx)
                .await
                .unwrap();
                sqlx::query(
                    "INSERT INTO change_feed (organization_id, seq, entity_kind, entity_id, version, operation, \
                     actor_user_id, workflow_id, at) VALUES ($1, $2, 'note', $3, 1, 'created', NULL, NULL, $4)",
                )
                .bind(built.org)
                .bind(base + 1 + k as i64)
                .bind(id)
                .bind(&at)
                .execute(&mut *tx)
                .await
                .unwrap();
            }
            sqlx::query("UPDATE feed_counters SET last_seq = $2 WHERE organization_id = $1")
                .bind(built.org)
                .bind(base + n as i64)
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            pool.close().await;
        }
    }
}

/// Pulls from `since` until `more` is false: time, pages, bytes, changes and the last cursor.
async fn pull_all(
    conn: &mut Conn,
    built: &Built,
    device: &str,
    since: Option<&str>,
) -> (Duration, usize, usize, usize, String) {
    let auth = format!("Bearer {}", built.token);
    let org = built.org.to_string();
    let headers = [
        ("Authorization", auth.as_str()),
        ("X-Organization-Id", org.as_str()),
    ];
    let mut since = since.map(str::to_owned);
    let (mut pages, mut bytes, mut changes) = (0, 0, 0);
    let started = Instant::now();
    loop {
        let mut body = json!({ "deviceId": device, "limit": 200 });
        if let Some(s) = &since {
            body["since"] = json!(s);
        }
        let (status, reply) = conn
            .post(
                "/api/v1/rpc/sync/v1/pull",
                &headers,
                body.to_string().as_bytes(),
            )
            .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
        pages += 1;
        bytes += reply.len();
        let page: Value = serde_json::from_slice(&reply).unwrap();
        changes += page["changes"].as_array().unwrap().len();
        since = Some(page["cursor"].as_str().unwrap().to_owned());
        if page["more"] == false {
            return (
                started.elapsed(),
                pages,
                bytes,
                changes,
                since.unwrap_or_default(),
            );
        }
    }
}

/// Her open jobs with their visits, customer, property and notes: the first sync's floor.
async fn snapshot_floor(db: &TestDb, built: &Built) -> (Duration, usize) {
    let sql = "SELECT j.*, a.id AS appointment, cu.name, p.line1, \
               (SELECT count(*) FROM notes n WHERE n.organization_id = j.organization_id AND n.job_id = j.id) AS notes \
               FROM jobs j \
               JOIN appointments a ON a.organization_id = j.organization_id AND a.job_id = j.id \
               JOIN appointment_crew c ON c.organization_id = a.organization_id AND c.appointment_id = a.id \
               JOIN customers cu ON cu.organization_id = j.organization_id AND cu.id = j.customer_id \
               JOIN properties p ON p.organization_id = j.organization_id AND p.id = j.property_id \
               WHERE j.organization_id = $1 AND c.technician_id = $2 AND j.status NOT IN ('closed', 'cancelled')";
    timed_rows(db, sql, built.org, built.technician).await
}

/// The feed rows after `seq` with their notes: the change pull's floor.
async fn feed_floor(db: &TestDb, built: &Built, seq: i64) -> (Duration, usize) {
    let sql = "SELECT f.seq, n.* FROM change_feed f JOIN notes n ON n.organization_id = f.organization_id \
               AND n.id = f.entity_id WHERE f.organization_id = $1 AND f.seq > $2 ORDER BY f.seq";
    timed_rows(db, sql, built.org, seq).await
}

/// Runs `sql` with two parameters once, as the owner: its time and row count.
async fn timed_rows<T>(db: &TestDb, sql: &str, a: uuid::Uuid, b: T) -> (Duration, usize)
where
    T: for<'q> sqlx::Encode<'q, sqlx::Postgres>
        + sqlx::Type<sqlx::Postgres>
        + for<'q> sqlx::Encode<'q, sqlx::Sqlite>
        + sqlx::Type<sqlx::Sqlite>
        + Send
        + Copy,
{
    match db.backend() {
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.owner_url).await.unwrap();
            let t = Instant::now();
            let rows = sqlx::query(sql)
                .bind(a)
                .bind(b)
                .fetch_all(&pool)
                .await
                .unwrap();
            (t.elapsed(), rows.len())
        }
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.owner_url).await.unwrap();
            let t = Instant::now();
            let rows = sqlx::query(sql)
                .bind(a)
                .bind(b)
                .fetch_all(&pool)
                .await
                .unwrap();
            (t.elapsed(), rows.len())
        }
    }
}

fn note_item(job: uuid::Uuid) -> Value {
    json!({ "procedure": "job/v2/addNote",
            "input": { "idempotencyKey": uuid::Uuid::new_v4(), "jobId": job, "body": "Pushed note" } })
}

/// `n` notes pushed in batches of 200, then `n` single calls: the two times.
async fn push(conn: &mut Conn, built: &Built, n: usize) -> (Duration, Duration) {
    let auth = format!("Bearer {}", built.token);
    let org = built.org.to_string();
    let headers = [
        ("Authorization", auth.as_str()),
        ("X-Organization-Id", org.as_str()),
    ];
    let device = uuid::Uuid::new_v4();
    let items: Vec<Value> = (0..n)
        .map(|k| note_item(built.jobs[k % built.jobs.len()]))
        .collect();
    let started = Instant::now();
    for batch in items.chunks(200) {
        let body = json!({ "deviceId": device, "items": batch });
        let (status, reply) = conn
            .post(
                "/api/v1/rpc/sync/v1/push",
                &headers,
                body.to_string().as_bytes(),
            )
            .await;
        assert_eq!(status, 200);
        let out: Value = serde_json::from_slice(&reply).unwrap();
        assert!(
            out["outcomes"]
                .as_array()
                .unwrap()
                .iter()
                .all(|o| o["status"] == "done"),
            "{out}"
        );
    }
    let batched = started.elapsed();
    let started = Instant::now();
    for k in 0..n {
        let item = note_item(built.jobs[k % built.jobs.len()]);
        let (status, _) = conn
            .post(
                "/api/v1/rpc/job/v2/addNote",
                &headers,
                item["input"].to_string().as_bytes(),
            )
            .await;
        assert_eq!(status, 200);
    }
    (batched, started.elapsed())
}

/// `n` plain transactions, each inserting a note and its feed row: the push's floor.
async fn push_floor(db: &TestDb, built: &Built, n: usize) -> Duration {
    let started = Instant::now();
    match db.backend() {
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.owner_url).await.unwrap();
            for k in 0..n {
                let mut tx = pool.begin().await.unwrap();
                let id = uuid::Uuid::now_v7();
                sqlx::query(
                    "INSERT INTO notes (organization_id, id, job_id, appointment_id, body, author_user_id, device, created_at) \
                     VALUES ($1, $2, $3, NULL, 'Floor note', NULL, NULL, now())",
                )
                .bind(built.org)
                .bind(id)
                .bind(built.jobs[k % built.jobs.len()])
                .execute(&mut *tx)
                .await
                .unwrap();
                sqlx::query(
                    "WITH c AS (UPDATE feed_counters SET last_seq = last_seq + 1 WHERE organization_id = $1 RETURNING last_seq) \
                     INSERT INTO change_feed (organization_id, seq, entity_kind, entity_id, version, operation, \
                     actor_user_id, workflow_id, at) SELECT $1, c.last_seq, 'note', $2, 1, 'created', NULL, NULL, now() FROM c",
                )
                .bind(built.org)
                .bind(id)
                .execute(&mut *tx)
                .await
                .unwrap();
                tx.commit().await.unwrap();
            }
        }
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.owner_url).await.unwrap();
            for k in 0..n {
                let mut tx = pool.begin().await.unwrap();
                let id = uuid::Uuid::now_v7();
                sqlx::query(
                    "INSERT INTO notes (organization_id, id, job_id, appointment_id, body, author_user_id, device, created_at) \
                     VALUES ($1, $2, $3, NULL, 'Floor note', NULL, NULL, strftime('%Y-%m-%dT%H:%M:%S.000000Z', 'now'))",
                )
                .bind(built.org)
                .bind(id)
                .bind(built.jobs[k % built.jobs.len()])
                .execute(&mut *tx)
                .await
                .unwrap();
                sqlx::query(
                    "UPDATE feed_counters SET last_seq = last_seq + 1 WHERE organization_id = $1",
                )
                .bind(built.org)
                .execute(&mut *tx)
                .await
                .unwrap();
                sqlx::query(
                    "INSERT INTO change_feed (organization_id, seq, entity_kind, entity_id, version, operation, \
                     actor_user_id, workflow_id, at) SELECT $1, last_seq, 'note', $2, 1, 'created', NULL, NULL, \
                     strftime('%Y-%m-%dT%H:%M:%S.000000Z', 'now') FROM feed_counters WHERE organization_id = $1",
                )
                .bind(built.org)
                .bind(id)
                .execute(&mut *tx)
                .await
                .unwrap();
                tx.commit().await.unwrap();
            }
        }
    }
    started.elapsed()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

async fn bench(db: TestDb, name: &str) {
    let week = env("WEEK", 40);
    let history = env("HISTORY", 1_000_000);
    let changes = env("CHANGES", 10_000);
    let pushes = env("PUSHES", 500);
    let samples = env("SAMPLES", 5);
    let built = build(&db, week, history).await;
    let server = start_server(&db.owner_url).await;
    let mut conn = Conn::open(&server.addr).await;

    let mut firsts = Vec::new();
    let mut last = (Duration::ZERO, 0, 0, 0, String::new());
    assert!(samples > 0);
    for _ in 0..samples {
        last = pull_all(&mut conn, &built, &uuid::Uuid::new_v4().to_string(), None).await;
        firsts.push(last.0);
    }
    firsts.sort();
    let (_, pages, bytes, sent, _) = last;
    let (floor, rows) = snapshot_floor(&db, &built).await;
    assert_eq!(rows, week, "the floor reads her week");
    println!(
        "| {name} | first sync: {week} visits among {history} jobs | {} (median of {samples}) | {pages} pages, {sent} entities, {bytes} bytes | {} ({rows} rows) |",
        ms(firsts[samples / 2]),
        ms(floor)
    );

    // A device synced before the changes were written catches up with them.
    let device = uuid::Uuid::new_v4().to_string();
    let (_, _, _, _, base) = pull_all(&mut conn, &built, &device, None).await;
    let seq: i64 = base.trim_start_matches("feed.").parse().unwrap();
    insert_notes(&db, &built, changes).await;
    let (took, pages, bytes, got, _) = pull_all(&mut conn, &built, &device, Some(&base)).await;
    let (floor, rows) = feed_floor(&db, &built, seq).await;
    println!(
        "| {name} | pull {changes} changes | {} | {pages} pages, {got} entities, {bytes} bytes | {} ({rows} rows) |",
        ms(took),
        ms(floor)
    );

    let (batched, single) = push(&mut conn, &built, pushes).await;
    let floor = push_floor(&db, &built, pushes).await;
    println!(
        "| {name} | push {pushes} notes (batches of 200) | {} | one by one over HTTP: {} | {} ({pushes} transactions) |",
        ms(batched),
        ms(single),
        ms(floor)
    );
    drop(server);
}

#[tokio::main]
async fn main() {
    support::server::require_release_binary();
    let backends = std::env::var("BACKENDS").unwrap_or_else(|_| "postgres,sqlite".into());
    println!("| backend | what | through the API | detail | floor: the plain SQL |");
    println!("| --- | --- | --- | --- | --- |");
    for backend in backends.split(',') {
        match backend.trim() {
            "postgres" => match TestDb::postgres().await {
                Some(db) => bench(db, "postgres").await,
                None => println!("| postgres | skipped: no database | | | |"),
            },
            "sqlite" => bench(TestDb::sqlite().await.unwrap(), "sqlite").await,
            other => panic!("unknown backend {other}"),
        }
    }
}
