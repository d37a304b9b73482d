//! The dispatch board and booking slots, measured over HTTP as a dispatcher's screen sees them.
//!
//! For each backend it builds one organization with `TECHS` technicians (200) working around
//! the clock from scattered home bases, `VISITS` appointments (2,000) on tomorrow's local day
//! booked through `job/v2/addAppointment`, and `HISTORY` closed jobs (1,000,000) with windows
//! over the past years, inserted in bulk by SQL as the owner. Then it starts the release server
//! on that database and calls, `SAMPLES` times each, one after the other:
//!
//! - `dispatch/v1/board` for tomorrow, every technician on one page (`limit` 200);
//! - `dispatch/v1/suggestSlots` for a waiting job over 7 days;
//!
//! and prints p50 and p99 with the statements and transactions per call the server counts
//! (`GET /metrics/db`), beside the floor: the board's visit query alone, run directly on the
//! database by the same process.
//!
//! ```sh
//! cargo build --release -p hestami-cli
//! cargo bench --bench board     # BACKENDS=postgres,sqlite TECHS=200 VISITS=2000 HISTORY=1000000 SAMPLES=200
//! ```
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};

use hestami::core::customer::{Address, CountryCode, GeoPoint, PostalCode};
use hestami::core::job::{Job, NewJob, Priority, TimeWindow};
use hestami::core::schedule::local_to_utc;
use hestami::core::text::{Name, Summary, TradeCode};
use hestami::core::workforce::{DailyCapacity, Technician};
use hestami::store::app::appointment::{AddAppointment, JobSchedule, JobV2Command};
use hestami::store::app::customer::{CustomerCommand, NewCustomer, NewProperty};
use hestami::store::app::job::JobLifecycleCommand;
use hestami::store::app::technician::{NewTechnician, TechnicianCommand};
use hestami::store::app::workforce::WorkforceCommand;
use hestami::store::app::{Caller, Services};
use hestami::store::engine::EngineConfig;
use hestami::store::testing::{TestDb, fixtures};
use hestami::store::{Backend, Store, StoreOptions};
use support::env;
use support::server::{Conn, db_counters, start_server};
use support::{owner, submit};

const CENTER: (f64, f64) = (41.8781, -87.6298);
const POSTAL_CODES: usize = 20;

fn postal(i: usize) -> String {
    format!("606{:02}", i % POSTAL_CODES + 1)
}

/// A point `k` of a deterministic spiral within about 15 km of the centre.
fn point(k: usize) -> GeoPoint {
    let r = 15.0 * ((k % 97) as f64 / 97.0).sqrt();
    let a = k as f64 * 2.399_963;
    GeoPoint::parse(
        CENTER.0 + r * a.sin() / 111.0,
        CENTER.1 + r * a.cos() / (111.0 * CENTER.0.to_radians().cos()),
    )
    .unwrap()
}

fn local(date: NaiveDate, minute: i64) -> DateTime<Utc> {
    local_to_utc(
        chrono_tz::America::Chicago,
        date.and_hms_opt(0, 0, 0).unwrap() + chrono::Duration::minutes(minute),
    )
}

struct Built {
    caller: Caller,
    token: String,
    day: NaiveDate,
    waiting_job: Job,
}

/// The organization, its technicians, properties and the day's appointments, through the
/// services; the history by SQL.
async fn build(db: &TestDb, techs: usize, visits: usize, history: usize) -> Built {
    let admin = Store::connect(&db.owner_url, StoreOptions::default())
        .await
        .unwrap();
    let services = Services::new(
        Store::connect(&db.app_url, StoreOptions::default())
            .await
            .unwrap(),
        EngineConfig::default(),
    );
    let (caller, token) = owner(&admin, "Board Bench", "board@example.com").await;
    let c = &caller;
    let codes: Vec<String> = (0..POSTAL_CODES).map(postal).collect();
    let code_refs: Vec<&str> = codes.iter().map(String::as_str).collect();
    fixtures::make_ready(&services, c, "US", "IL", &["plumbing"], &code_refs)
        .await
        .unwrap();
    let customer: hestami::core::customer::Customer = submit(
        &services,
        c,
        CustomerCommand::Create(NewCustomer {
            name: Name::parse("Board Customer").unwrap(),
            email: None,
            phone: None,
        }),
    )
    .await;
    let mut properties = Vec::new();
    for k in 0..100 {
        let property: hestami::core::customer::Property = submit(
            &services,
            c,
            CustomerCommand::AddProperty(NewProperty {
                customer_id: customer.id,
                address: Address {
                    line1: Name::parse(&format!("{k} Main St")).unwrap(),
                    line2: None,
                    city: Name::parse("Chicago").unwrap(),
                    region: Name::parse("IL").unwrap(),
                    postal_code: PostalCode::parse(&postal(k)).unwrap(),
                    country: CountryCode::parse("US").unwrap(),
                },
                access_notes: None,
                location: Some(point(k + 1000)),
            }),
        )
        .await;
        properties.push(property);
    }
    let mut technicians = Vec::new();
    for k in 0..techs {
        let tech: Technician = submit(
            &services,
            c,
            TechnicianCommand::Create(NewTechnician {
                name: Name::parse(&format!("Tech {k:03}")).unwrap(),
                email: None,
                phone: None,
                trades: vec![TradeCode::parse("plumbing").unwrap()],
            }),
        )
        .await;
        fixtures::around_the_clock(&services, c, tech.id)
            .await
            .unwrap();
        let _: Value = submit(
            &services,
            c,
            WorkforceCommand::SetHomeBase {
                technician_id: tech.id,
                home_base: Some(point(k)),
                daily_capacity: Some(DailyCapacity::parse(24).unwrap()),
            },
        )
        .await;
        technicians.push(tech);
    }
    let new_job = |k: usize| NewJob {
        customer_id: customer.id,
        property_id: properties[k % properties.len()].id,
        trade: TradeCode::parse("plumbing").unwrap(),
        priority: Priority::Routine,
        summary: Summary::parse(&format!("Visit {k}")).unwrap(),
        description: None,
        callback_of: None,
        min_skill_level: Default::default(),
        required_certifications: vec![],
    };
    let today = Utc::now()
        .with_timezone(&chrono_tz::America::Chicago)
        .date_naive();
    let day = today + chrono::Duration::days(1);
    let per_tech = visits.div_ceil(techs.max(1));
    let minutes = (16 * 60 / per_tech.max(1)) as i64;
    for k in 0..visits {
        let (tech, slot) = (k % techs, (k / techs) as i64);
        let job: Job = submit(&services, c, JobLifecycleCommand::Create(new_job(k))).await;
        let start = local(day, 5 * 60 + slot * minutes);
        let _: JobSchedule = submit(
            &services,
            c,
            JobV2Command::AddAppointment(AddAppointment {
                job_id: job.id,
                window: TimeWindow::parse(start, start + chrono::Duration::minutes(minutes))
                    .unwrap(),
                estimated_minutes: Some((minutes as u32 * 3 / 4).max(1)),
                lead: Some(technicians[tech].id),
                helpers: vec![],
                sla_override: None,
                planned_start: None,
                expected_version: None,
            }),
        )
        .await;
    }
    let waiting_job: Job = submit(&services, c, JobLifecycleCommand::Create(new_job(0))).await;
    insert_history(
        db,
        &caller,
        customer.id.as_uuid(),
        properties[0].id.as_uuid(),
        &technicians,
        history,
    )
    .await;
    Built {
        caller,
        token,
        day,
        waiting_job,
    }
}

/// `n` closed jobs, one every 2 minutes back from a week ago, spread over the technicians.
async fn insert_history(
    db: &TestDb,
    caller: &Caller,
    customer: uuid::Uuid,
    property: uuid::Uuid,
    technicians: &[Technician],
    n: usize,
) {
    let org = caller.organization_id.as_uuid();
    let tech_ids: Vec<uuid::Uuid> = technicians.iter().map(|t| t.id.as_uuid()).collect();
    let started = Instant::now();
    match db.backend() {
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.owner_url).await.unwrap();
            sqlx::query(
                "INSERT INTO jobs (organization_id, id, version, status, held_from, customer_id, property_id, trade, \
                 priority, summary, description, window_start, window_end, technician_id, sla_deadline, \
                 visit_started_at, completed_at, callback_of, created_at, updated_at, min_skill_level, \
                 required_certifications) \
                 SELECT $1, gen_random_uuid(), 8, 'closed', NULL, $2, $3, 'plumbing', 'routine', 'Past visit', NULL, \
                 w, w + interval '1 hour', ($4::uuid[])[1 + g % cardinality($4::uuid[])], w, w, w + interval '1 hour', \
                 NULL, w - interval '1 day', w + interval '1 day', 1, '[]' \
                 FROM generate_series(1, $5) g, LATERAL (SELECT now() - interval '7 days' - g * interval '2 minutes' AS w) t",
            )
            .bind(org)
            .bind(customer)
            .bind(property)
            .bind(&tech_ids)
            .bind(n as i64)
            .execute(&pool)
            .await
            .unwrap();
            sqlx::query("ANALYZE").execute(&pool).await.unwrap();
            pool.close().await;
        }
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.owner_url).await.unwrap();
            // The technician of row g is the g-th modulo their number, from a values list.
            let techs = tech_ids
                .iter()
                .enumerate()
                .map(|(k, t)| format!("({k}, x'{}')", t.simple()))
                .collect::<Vec<_>>()
                .join(", ");
            let ts = |expr: &str| format!("strftime('%Y-%m-%dT%H:%M:%S.000000Z', 'now', {expr})");
            let w = "'-7 days', '-' || (g * 2) || ' minutes'";
            sqlx::query(&format!(
                "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < $4), \
                 t(k, id) AS (VALUES {techs}) \
                 INSERT INTO jobs (organization_id, id, version, status, held_from, customer_id, property_id, trade, \
                 priority, summary, description, window_start, window_end, technician_id, sla_deadline, \
                 visit_started_at, completed_at, callback_of, created_at, updated_at, min_skill_level, \
                 required_certifications) \
                 SELECT $1, randomblob(16), 8, 'closed', NULL, $2, $3, 'plumbing', 'routine', 'Past visit', NULL, \
                 {start}, {end}, (SELECT id FROM t WHERE k = g % {count}), {start}, {start}, {end}, NULL, \
                 {start}, {start}, 1, '[]' FROM s",
                start = ts(w),
                end = ts(&format!("{w}, '+1 hour'")),
                count = tech_ids.len(),
            ))
            .bind(org)
            .bind(customer)
            .bind(property)
            .bind(n as i64)
            .execute(&pool)
            .await
            .unwrap();
            sqlx::query("ANALYZE").execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
    println!(
        "  history: {n} closed jobs inserted in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The board's visit query alone, as the owner, timed `samples` times: the floor.
async fn floor(
    db: &TestDb,
    caller: &Caller,
    day: NaiveDate,
    samples: usize,
) -> (Duration, Duration) {
    let (from, to) = (local(day, 0), local(day, 24 * 60));
    let org = caller.organization_id.as_uuid();
    let sql = "SELECT a.id, a.job_id, c.technician_id, a.window_start, a.window_end, j.status, p.lat, p.lon \
               FROM appointments a JOIN jobs j ON j.organization_id = a.organization_id AND j.id = a.job_id \
               JOIN properties p ON p.organization_id = j.organization_id AND p.id = j.property_id \
               LEFT JOIN appointment_crew c ON c.organization_id = a.organization_id AND c.appointment_id = a.id \
               WHERE a.organization_id = $1 AND a.window_start < $3 AND a.window_end > $2";
    let mut times = Vec::with_capacity(samples);
    match db.backend() {
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.owner_url).await.unwrap();
            for _ in 0..samples {
                let t = Instant::now();
                let rows = sqlx::query(sql)
                    .bind(org)
                    .bind(from)
                    .bind(to)
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                times.push(t.elapsed());
                assert!(!rows.is_empty());
            }
            pool.close().await;
        }
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.owner_url).await.unwrap();
            let text = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            for _ in 0..samples {
                let t = Instant::now();
                let rows = sqlx::query(sql)
                    .bind(org)
                    .bind(text(from))
                    .bind(text(to))
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                times.push(t.elapsed());
                assert!(!rows.is_empty());
            }
            pool.close().await;
        }
    }
    percentiles(times)
}

fn percentiles(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    let pick = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
    (pick(0.5), pick(0.99))
}

/// Calls `procedure` `samples` times; p50, p99 and per-call (transactions, statements).
async fn measure(
    addr: &str,
    built: &Built,
    procedure: &str,
    body: &Value,
    samples: usize,
    check: impl Fn(&Value),
) -> (Duration, Duration, f64, f64) {
    let mut conn = Conn::open(addr).await;
    let auth = format!("Bearer {}", built.token);
    let org = built.caller.organization_id.to_string();
    let headers = [
        ("Authorization", auth.as_str()),
        ("X-Organization-Id", org.as_str()),
    ];
    let path = format!("/api/v1/rpc/{procedure}");
    // One call to warm caches, checked.
    let (status, bytes) = conn
        .post(&path, &headers, body.to_string().as_bytes())
        .await;
    let value: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(status, 200, "{procedure}: {value}");
    check(&value);
    let before = db_counters(addr).await;
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t = Instant::now();
        let (status, _) = conn
            .post(&path, &headers, body.to_string().as_bytes())
            .await;
        times.push(t.elapsed());
        assert_eq!(status, 200);
    }
    let after = db_counters(addr).await;
    let (tx, st) = match (before, after) {
        (Some((t0, _, s0)), Some((t1, _, s1))) => (
            (t1 - t0) as f64 / samples as f64,
            (s1 - s0) as f64 / samples as f64,
        ),
        _ => (f64::NAN, f64::NAN),
    };
    let (p50, p99) = percentiles(times);
    (p50, p99, tx, st)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

async fn bench(db: TestDb, name: &str) {
    let techs = env("TECHS", 200);
    let visits = env("VISITS", 2_000);
    let history = env("HISTORY", 1_000_000);
    let samples = env("SAMPLES", 200);
    let started = Instant::now();
    let built = build(&db, techs, visits, history).await;
    println!(
        "  {name}: {techs} technicians, {visits} visits on {}, {history} past jobs; built in {:.0} s",
        built.day,
        started.elapsed().as_secs_f64()
    );
    let (floor50, floor99) = floor(&db, &built.caller, built.day, samples).await;
    let server = start_server(&db.owner_url).await;
    let expected = visits;
    let (b50, b99, btx, bst) = measure(
        &server.addr,
        &built,
        "dispatch/v1/board",
        &json!({ "date": built.day, "limit": 200 }),
        samples,
        |v| {
            let stops: usize = v["technicians"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["days"][0]["stops"].as_array().unwrap().len())
                .sum();
            assert_eq!(stops, expected, "every visit on the board");
        },
    )
    .await;
    let today = Utc::now()
        .with_timezone(&chrono_tz::America::Chicago)
        .date_naive();
    let (s50, s99, stx, sst) = measure(
        &server.addr,
        &built,
        "dispatch/v1/suggestSlots",
        &json!({ "jobId": built.waiting_job.id, "fromDate": today + chrono::Duration::days(1),
                 "lookaheadDays": 7, "count": 10 }),
        samples,
        |v| assert!(!v["options"].as_array().unwrap().is_empty(), "{v}"),
    )
    .await;
    println!(
        "| {name} | dispatch/v1/board, 1 day, {techs} technicians, {visits} visits | {} | {} | {btx:.1} | {bst:.1} | {} / {} |",
        ms(b50),
        ms(b99),
        ms(floor50),
        ms(floor99)
    );
    println!(
        "| {name} | dispatch/v1/suggestSlots, 7 days × 4 windows × {techs} technicians | {} | {} | {stx:.1} | {sst:.1} | – |",
        ms(s50),
        ms(s99)
    );
    drop(server);
}

#[tokio::main]
async fn main() {
    support::server::require_release_binary();
    let backends = std::env::var("BACKENDS").unwrap_or_else(|_| "postgres,sqlite".into());
    println!(
        "| backend | call | p50 | p99 | transactions/call | statements/call | floor: the visit query alone, p50 / p99 |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for backend in backends.split(',') {
        match backend.trim() {
            "postgres" => match TestDb::postgres().await {
                Some(db) => bench(db, "postgres").await,
                None => println!("| postgres | skipped: no database | | | | | |"),
            },
            "sqlite" => bench(TestDb::sqlite().await.unwrap(), "sqlite").await,
            other => panic!("unknown backend {other}"),
        }
    }
}
