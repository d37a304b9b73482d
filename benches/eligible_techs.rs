//! `dispatch/v1/eligibleTechs` latency: one job, 1,000 technicians with realistic schedules.
//!
//! Three layers, each printed with what it is compared against in the same run:
//!
//! 1. core only: `eligibility::rank` over 1,000 in-memory `TechnicianFacts`, against the same
//!    facts run through `evaluate` one by one (the rules without the ranking) and against merely
//!    cloning the facts (the price of touching that much data);
//! 2. in-process through the store: `Services::eligible_techs` on a fresh SQLite database (and
//!    PostgreSQL when reachable) holding the same technicians, created through `Services::submit`;
//!    the ratio to (1) is the cost of loading the facts;
//! 3. through the server: `POST /api/v1/rpc/dispatch/v1/eligibleTechs` over HTTP on loopback, on
//!    the same SQLite store; the difference to (2) is routing, auth, JSON and the socket.
//!
//! Every technician (the same deterministic plan in all three) works weekdays 07:00–15:30 or
//! 10:00–18:30 in America/Chicago (some also Saturday mornings), holds 1–3 trades at levels 1–5,
//! some certifications (some expired), a few days off (a few on the job's day), 0–6 appointments
//! that day, a home base within ~20 km of downtown Chicago, and a quarter have their own
//! postal-code service areas. The job: plumbing, level 2+, needs "Backflow Tester", 11:00–12:30
//! on Wednesday 2031-06-11 at a property in 60601.
//!
//! `cargo bench --bench eligible_techs` (PostgreSQL from HESTAMI_TEST_DATABASE_URL, skipped if
//! unreachable; `TECHS=N` changes the count, `PG_TECHS=N` the count on PostgreSQL only).
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};

use hestami::core::area::{AreaKind, ServiceArea};
use hestami::core::compliance::{ComplianceVerdict, Jurisdiction};
use hestami::core::customer::{Address, CountryCode, GeoPoint, PostalCode};
use hestami::core::eligibility::{self, JobNeeds, OrgFacts, TechnicianFacts};
use hestami::core::ids::{CertificationId, JobId, TechnicianId, TimeOffId};
use hestami::core::job::{Job, NewJob, Priority, TimeWindow};
use hestami::core::org::TimeZone;
use hestami::core::schedule::{Appointment, local_to_utc};
use hestami::core::text::{Name, Reason, Summary, TradeCode};
use hestami::core::workforce::{
    Certification, DailyCapacity, ShiftSpan, Skill, SkillLevel, Technician, TimeOff, Weekday,
    WeeklyShifts, WorkProfile,
};
use hestami::store::app::customer::{CustomerCommand, NewCustomer, NewProperty};
use hestami::store::app::job::{AssignTech, DispatchCommand, JobLifecycleCommand, ScheduleJob};
use hestami::store::app::technician::{NewTechnician, TechnicianCommand};
use hestami::store::app::workforce::{NewCertification, WorkforceCommand};
use hestami::store::app::{Caller, Services};
use hestami::store::engine::EngineConfig;
use hestami::store::testing::{TestDb, fixtures};
use hestami::store::{Backend, Store, StoreOptions};
use support::{Rng, owner, submit};

const TRADES: [&str; 3] = ["plumbing", "electrical", "hvac"];
const CERTS: [&str; 3] = ["Backflow Tester", "EPA 608", "OSHA 10"];
const POSTAL_CODES: usize = 20;
const CENTER: (f64, f64) = (41.8781, -87.6298);
/// Slot starts (minutes after the shift starts) for the day's appointments; each lasts an hour.
const SLOT_STEP: i64 = 80;
const SLOTS: usize = 6;

fn postal(i: usize) -> String {
    format!("606{:02}", i + 1)
}

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2031, 6, 11).unwrap()
}

fn tz() -> TimeZone {
    TimeZone::parse("America/Chicago").unwrap()
}

fn local(date: NaiveDate, minute: i64) -> DateTime<Utc> {
    let naive = date.and_hms_opt(0, 0, 0).unwrap() + chrono::Duration::minutes(minute);
    local_to_utc(tz().tz(), naive)
}

/// A property location per postal code, scattered around downtown.
fn property_location(i: usize) -> GeoPoint {
    let mut rng = Rng::new(1000 + i as u64);
    scatter(&mut rng, if i == 0 { 0.0 } else { 15.0 })
}

/// A point within `km` of the centre (roughly uniform over the disc).
fn scatter(rng: &mut Rng, km: f64) -> GeoPoint {
    let r = km * rng.unit().sqrt();
    let a = rng.unit() * std::f64::consts::TAU;
    let lat = CENTER.0 + r * a.sin() / 111.0;
    let lon = CENTER.1 + r * a.cos() / (111.0 * CENTER.0.to_radians().cos());
    GeoPoint::parse(lat, lon).unwrap()
}

/// One technician, independent of ids.
struct Plan {
    name: String,
    skills: Vec<(usize, u8)>,
    certs: Vec<(usize, Option<NaiveDate>)>,
    shift_start: i64,
    saturday: bool,
    time_off: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    home: GeoPoint,
    capacity: u16,
    areas: Option<Vec<usize>>,
    /// (slot, postal code index, trade index) on the job's day.
    appointments: Vec<(usize, usize, usize)>,
}

impl Plan {
    fn trades(&self) -> Vec<TradeCode> {
        self.skills
            .iter()
            .map(|(t, _)| TradeCode::parse(TRADES[*t]).unwrap())
            .collect()
    }
    fn skills(&self) -> Vec<Skill> {
        self.skills
            .iter()
            .map(|(t, l)| Skill {
                trade: TradeCode::parse(TRADES[*t]).unwrap(),
                level: SkillLevel::parse(*l).unwrap(),
            })
            .collect()
    }
    fn shifts(&self) -> WeeklyShifts {
        let clock = |m: i64| format!("{:02}:{:02}", m / 60, m % 60);
        let (s, e) = (clock(self.shift_start), clock(self.shift_start + 510));
        let mut spans: Vec<ShiftSpan> = [
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
        ]
        .iter()
        .map(|d| ShiftSpan::parse(*d, &s, &e).unwrap())
        .collect();
        if self.saturday {
            spans.push(ShiftSpan::parse(Weekday::Sat, "08:00", "12:00").unwrap());
        }
        WeeklyShifts::parse(NaiveDate::from_ymd_opt(2020, 1, 1).unwrap(), spans).unwrap()
    }
    fn areas(&self) -> Option<Vec<ServiceArea>> {
        self.areas.as_ref().map(|codes| {
            vec![ServiceArea::new(
                AreaKind::PostalCodes {
                    postal_codes: codes
                        .iter()
                        .map(|c| PostalCode::parse(&postal(*c)).unwrap())
                        .collect(),
                },
                vec![],
            )]
        })
    }
    fn slot(&self, slot: usize) -> TimeWindow {
        let start = self.shift_start + SLOT_STEP * slot as i64;
        TimeWindow::parse(local(day(), start), local(day(), start + 60)).unwrap()
    }
}

fn plans(n: usize) -> Vec<Plan> {
    let mut rng = Rng::new(42);
    (0..n)
        .map(|i| {
            let mut trades: Vec<usize> = Vec::new();
            let count = 1 + rng.below(3) as usize;
            while trades.len() < count {
                let t = rng.below(3) as usize;
                if !trades.contains(&t) {
                    trades.push(t);
                }
            }
            let skills = trades
                .iter()
                .map(|t| (*t, 1 + rng.below(5) as u8))
                .collect();
            let mut certs = Vec::new();
            for c in 0..CERTS.len() {
                if rng.chance(45) {
                    let expires = match rng.below(4) {
                        0 => None,
                        1 => NaiveDate::from_ymd_opt(2031, 3, 31), // expired on the job's day
                        _ => NaiveDate::from_ymd_opt(2033, 12, 31),
                    };
                    certs.push((c, expires));
                }
            }
            let shift_start = if rng.chance(50) { 7 * 60 } else { 10 * 60 };
            let saturday = rng.chance(20);
            let mut time_off = Vec::new();
            let mut off_today = false;
            let mut used = Vec::new();
            for _ in 0..rng.below(3) {
                let offset = if rng.chance(6) {
                    0
                } else {
                    1 + rng.below(40) as i64 - 20
                };
                if offset == 0 {
                    off_today = true;
                }
                if used.contains(&offset) {
                    continue;
                }
                used.push(offset);
                let date = day() + chrono::Duration::days(offset);
                time_off.push((local(date, 0), local(date, 24 * 60)));
            }
            let home = scatter(&mut rng, 20.0);
            let capacity = if rng.chance(20) { 4 } else { 8 };
            let areas = rng.chance(25).then(|| {
                let mut codes = Vec::new();
                while codes.len() < 3 {
                    let c = rng.below(POSTAL_CODES as u64) as usize;
                    if !codes.contains(&c) {
                        codes.push(c);
                    }
                }
                codes
            });
            let mut appointments = Vec::new();
            if !off_today {
                let k = (rng.below(7) as usize).min(usize::from(capacity));
                let mut slots: Vec<usize> = (0..SLOTS).collect();
                for _ in 0..k {
                    let slot = slots.remove(rng.below(slots.len() as u64) as usize);
                    let code = match &areas {
                        Some(codes) => codes[rng.below(codes.len() as u64) as usize],
                        None => rng.below(POSTAL_CODES as u64) as usize,
                    };
                    let trade = trades[rng.below(trades.len() as u64) as usize];
                    appointments.push((slot, code, trade));
                }
                appointments.sort();
            }
            Plan {
                name: format!("Tech {i:04}"),
                skills,
                certs,
                shift_start,
                saturday,
                time_off,
                home,
                capacity,
                areas,
                appointments,
            }
        })
        .collect()
}

fn job_window() -> TimeWindow {
    TimeWindow::parse(local(day(), 11 * 60), local(day(), 12 * 60 + 30)).unwrap()
}

fn org_areas() -> Vec<ServiceArea> {
    vec![ServiceArea::new(
        AreaKind::PostalCodes {
            postal_codes: (0..POSTAL_CODES)
                .map(|c| PostalCode::parse(&postal(c)).unwrap())
                .collect(),
        },
        vec![],
    )]
}

fn uuid(n: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(n)
}

/// The in-memory facts for the plans, as the store would load them.
fn facts(plans: &[Plan]) -> Vec<TechnicianFacts> {
    let now = Utc::now();
    plans
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let base = (i as u128 + 1) << 32;
            TechnicianFacts {
                technician: Technician {
                    id: TechnicianId::from_uuid(uuid(base)),
                    version: 1,
                    name: Name::parse(&p.name).unwrap(),
                    email: None,
                    phone: None,
                    trades: hestami::core::workforce::normalize_trades(p.trades()),
                    active: true,
                    created_at: now,
                    updated_at: now,
                },
                profile: WorkProfile {
                    skills: p.skills(),
                    certifications: p
                        .certs
                        .iter()
                        .enumerate()
                        .map(|(k, (c, expires))| Certification {
                            id: CertificationId::from_uuid(uuid(base + 100 + k as u128)),
                            name: Name::parse(CERTS[*c]).unwrap(),
                            issuer: Name::parse("State Board").unwrap(),
                            number: None,
                            expires_on: *expires,
                            trades: vec![],
                            created_at: now,
                        })
                        .collect(),
                    shifts: vec![p.shifts()],
                    time_off: p
                        .time_off
                        .iter()
                        .enumerate()
                        .map(|(k, (s, e))| {
                            TimeOff::parse(
                                TimeOffId::from_uuid(uuid(base + 200 + k as u128)),
                                *s,
                                *e,
                                None,
                            )
                            .unwrap()
                        })
                        .collect(),
                    service_areas: p.areas().unwrap_or_default(),
                    home_base: Some(p.home),
                    daily_capacity: DailyCapacity::parse(p.capacity).unwrap(),
                },
                appointments: p
                    .appointments
                    .iter()
                    .enumerate()
                    .map(|(k, (slot, code, _))| Appointment {
                        job_id: JobId::from_uuid(uuid(base + 300 + k as u128)),
                        appointment_id: None,
                        window: p.slot(*slot),
                        location: Some(property_location(*code)),
                    })
                    .collect(),
            }
        })
        .collect()
}

fn needs(job_id: Option<JobId>) -> JobNeeds {
    JobNeeds {
        job_id,
        appointment_id: None,
        trade: TradeCode::parse("plumbing").unwrap(),
        min_skill_level: SkillLevel::parse(2).unwrap(),
        required_certifications: vec![Name::parse("Backflow Tester").unwrap()],
        location: Some(property_location(0)),
        postal_code: PostalCode::parse(&postal(0)).unwrap(),
        jurisdiction: Jurisdiction::parse(CountryCode::parse("US").unwrap(), Some("IL"), None)
            .unwrap(),
        window: job_window(),
    }
}

/// Median and p95 of `samples`.
fn stats(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    let p = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (p(0.5), p(0.95))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn time<T>(warmup: usize, runs: usize, mut f: impl FnMut() -> T) -> (Duration, Duration) {
    for _ in 0..warmup {
        std::hint::black_box(f());
    }
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(f());
            start.elapsed()
        })
        .collect();
    stats(&mut samples)
}

/// Returns the median `rank` time.
fn core_only(plans: &[Plan]) -> Duration {
    let techs = facts(plans);
    let job = needs(None);
    let org = OrgFacts {
        service_areas: org_areas(),
        compliance: ComplianceVerdict::compliant(),
        time_zone: tz(),
    };
    let ranked = eligibility::rank(&job, &techs, &org);
    let eligible = ranked.iter().filter(|c| c.eligible).count();
    let appointments: usize = techs.iter().map(|t| t.appointments.len()).sum();
    println!(
        "core     {} technicians, {appointments} appointments that day; {eligible} eligible",
        techs.len()
    );
    let runs = 200;
    let (rank_med, rank_p95) = time(20, runs, || eligibility::rank(&job, &techs, &org));
    let (eval_med, eval_p95) = time(20, runs, || {
        techs
            .iter()
            .map(|t| eligibility::evaluate(&job, t, &org).eligible)
            .filter(|e| *e)
            .count()
    });
    let (clone_med, clone_p95) = time(20, runs, || techs.clone());
    println!(
        "core     rank (1 job × {} techs):          median {:>8.3} ms  p95 {:>8.3} ms  ({runs} runs)",
        techs.len(),
        ms(rank_med),
        ms(rank_p95)
    );
    println!(
        "core     evaluate × {} in a loop:          median {:>8.3} ms  p95 {:>8.3} ms  (rank / evaluate {:.2}x)",
        techs.len(),
        ms(eval_med),
        ms(eval_p95),
        rank_med.as_secs_f64() / eval_med.as_secs_f64()
    );
    println!(
        "core     clone of the {} facts:            median {:>8.3} ms  p95 {:>8.3} ms  (rank / clone {:.1}x)",
        techs.len(),
        ms(clone_med),
        ms(clone_p95),
        rank_med.as_secs_f64() / clone_med.as_secs_f64()
    );
    rank_med
}

struct Seeded {
    caller: Caller,
    token: String,
    job: Job,
}

/// An organization made ready, the plans' technicians with their appointments, and the
/// scheduled job, all through `Services::submit`.
async fn seed(admin: &Store, services: &Services, plans: Arc<Vec<Plan>>) -> Seeded {
    let (caller, token) = owner(admin, "Bench Eligibility", "bench-eligible@example.com").await;
    let codes: Vec<String> = (0..POSTAL_CODES).map(postal).collect();
    let code_refs: Vec<&str> = codes.iter().map(String::as_str).collect();
    fixtures::make_ready(services, &caller, "US", "IL", &TRADES, &code_refs)
        .await
        .unwrap();
    let customer: hestami::core::customer::Customer = submit(
        services,
        &caller,
        CustomerCommand::Create(NewCustomer {
            name: Name::parse("Bench Customer").unwrap(),
            email: None,
            phone: None,
        }),
    )
    .await;
    let mut properties = Vec::new();
    for (i, code) in codes.iter().enumerate() {
        let property: hestami::core::customer::Property = submit(
            services,
            &caller,
            CustomerCommand::AddProperty(NewProperty {
                customer_id: customer.id,
                address: Address {
                    line1: Name::parse(&format!("{} Main St", i + 1)).unwrap(),
                    line2: None,
                    city: Name::parse("Chicago").unwrap(),
                    region: Name::parse("IL").unwrap(),
                    postal_code: PostalCode::parse(code).unwrap(),
                    country: CountryCode::parse("US").unwrap(),
                },
                access_notes: None,
                location: Some(property_location(i)),
            }),
        )
        .await;
        properties.push(property);
    }
    let properties = Arc::new(properties);
    let new_job = move |property: usize, trade: usize, summary: &str| NewJob {
        customer_id: customer.id,
        property_id: properties[property].id,
        trade: TradeCode::parse(TRADES[trade]).unwrap(),
        priority: Priority::Routine,
        summary: Summary::parse(summary).unwrap(),
        description: None,
        callback_of: None,
        min_skill_level: Default::default(),
        required_certifications: vec![],
    };

    // Four writers, each its own technicians (each technician is one workflow family).
    let writers = 4;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..writers {
        let (services, plans, new_job) = (services.clone(), plans.clone(), new_job.clone());
        tasks.spawn(async move {
            for p in plans.iter().skip(w).step_by(writers) {
                let tech: Technician = submit(
                    &services,
                    &caller,
                    TechnicianCommand::Create(NewTechnician {
                        name: Name::parse(&p.name).unwrap(),
                        email: None,
                        phone: None,
                        trades: p.trades(),
                    }),
                )
                .await;
                let id = tech.id;
                let mut commands = vec![
                    WorkforceCommand::SetSkills {
                        technician_id: id,
                        skills: p.skills(),
                    },
                    WorkforceCommand::SetShifts {
                        technician_id: id,
                        shifts: p.shifts(),
                    },
                    WorkforceCommand::SetHomeBase {
                        technician_id: id,
                        home_base: Some(p.home),
                        daily_capacity: Some(DailyCapacity::parse(p.capacity).unwrap()),
                    },
                ];
                for (c, expires) in &p.certs {
                    commands.push(WorkforceCommand::AddCertification {
                        technician_id: id,
                        certification: NewCertification {
                            name: Name::parse(CERTS[*c]).unwrap(),
                            issuer: Name::parse("State Board").unwrap(),
                            number: None,
                            expires_on: *expires,
                            trades: vec![],
                        },
                    });
                }
                for (s, e) in &p.time_off {
                    commands.push(WorkforceCommand::AddTimeOff {
                        technician_id: id,
                        start: *s,
                        end: *e,
                        reason: Some(Reason::parse("Personal day").unwrap()),
                    });
                }
                if let Some(areas) = p.areas() {
                    commands.push(WorkforceCommand::SetServiceAreas {
                        technician_id: id,
                        areas,
                    });
                }
                for command in commands {
                    let _: serde_json::Value = submit(&services, &caller, command).await;
                }
                for (slot, code, trade) in &p.appointments {
                    let job: Job = submit(
                        &services,
                        &caller,
                        JobLifecycleCommand::Create(new_job(*code, *trade, "Booked visit")),
                    )
                    .await;
                    let _: Job = submit(
                        &services,
                        &caller,
                        JobLifecycleCommand::Schedule(ScheduleJob {
                            job_id: job.id,
                            window: p.slot(*slot),
                            expected_version: None,
                        }),
                    )
                    .await;
                    let _: Job = submit(
                        &services,
                        &caller,
                        DispatchCommand::AssignTech(AssignTech {
                            job_id: job.id,
                            technician_id: id,
                            expected_version: None,
                        }),
                    )
                    .await;
                }
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }

    let mut job_spec = new_job(0, 0, "Backflow preventer test");
    job_spec.min_skill_level = SkillLevel::parse(2).unwrap();
    job_spec.required_certifications = vec![Name::parse("Backflow Tester").unwrap()];
    let job: Job = submit(services, &caller, JobLifecycleCommand::Create(job_spec)).await;
    let job: Job = submit(
        services,
        &caller,
        JobLifecycleCommand::Schedule(ScheduleJob {
            job_id: job.id,
            window: job_window(),
            expected_version: None,
        }),
    )
    .await;
    Seeded { caller, token, job }
}

async fn through_store(
    backend: Backend,
    db: TestDb,
    plans: Arc<Vec<Plan>>,
    core_median: Duration,
    core_count: usize,
) {
    let name = format!("{backend:?}").to_lowercase();
    let admin = Store::connect(&db.owner_url, StoreOptions::default())
        .await
        .unwrap();
    let services = Services::new(
        Store::connect(&db.app_url, StoreOptions::default())
            .await
            .unwrap(),
        EngineConfig::default(),
    )
    .with_wait(Duration::from_secs(60));

    let start = Instant::now();
    let seeded = seed(&admin, &services, plans.clone()).await;
    let appointments: usize = plans.iter().map(|p| p.appointments.len()).sum();
    println!(
        "{name:<8} setup (not measured): {} technicians, {appointments} booked jobs, through Services::submit in {:.1} s",
        plans.len(),
        start.elapsed().as_secs_f64()
    );

    let first = services
        .eligible_techs(&seeded.caller, seeded.job.id, None)
        .await
        .unwrap();
    let eligible = first.iter().filter(|c| c.eligible).count();
    println!(
        "{name:<8} {} candidates, {eligible} eligible{}",
        first.len(),
        if plans.len() == core_count {
            " (core, same plans: see above)"
        } else {
            ""
        }
    );
    let runs = 15;
    for _ in 0..2 {
        services
            .eligible_techs(&seeded.caller, seeded.job.id, None)
            .await
            .unwrap();
    }
    let mut samples = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let ranked = services
            .eligible_techs(&seeded.caller, seeded.job.id, None)
            .await
            .unwrap();
        samples.push(start.elapsed());
        std::hint::black_box(ranked);
    }
    let (med, p95) = stats(&mut samples);
    println!(
        "{name:<8} Services::eligible_techs ({} techs):  median {:>8.3} ms  p95 {:>8.3} ms  ({runs} runs; {:.0}x core rank{})",
        plans.len(),
        ms(med),
        ms(p95),
        med.as_secs_f64() / core_median.as_secs_f64(),
        if plans.len() == core_count {
            ""
        } else {
            ", core had more technicians"
        }
    );

    if backend == Backend::Sqlite {
        through_server(&services, &seeded, med).await;
    }
    services.store().close().await;
    admin.close().await;
}

async fn through_server(services: &Services, seeded: &Seeded, store_median: Duration) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = hestami::http::router(hestami::http::AppState::new(
        services.clone(),
        hestami::http::ServerConfig::default(),
    ));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(hestami::http::serve(listener, router, async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let url = format!("{base}/api/v1/rpc/dispatch/v1/eligibleTechs");
    let body = serde_json::to_vec(&serde_json::json!({ "jobId": seeded.job.id })).unwrap();
    let org = seeded.caller.organization_id.to_string();
    let auth = format!("Bearer {}", seeded.token);
    let call = || async {
        let response = http
            .post(&url)
            .header("content-type", "application/json")
            .header("authorization", &auth)
            .header("x-organization-id", &org)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.bytes().await.unwrap();
        assert!(
            status.is_success(),
            "{status} {}",
            String::from_utf8_lossy(&bytes)
        );
        bytes
    };
    let bytes = call().await;
    let reply: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let candidates = reply
        .as_array()
        .or_else(|| reply["candidates"].as_array())
        .map_or(0, Vec::len);
    println!(
        "server   reply: {} bytes of JSON, {candidates} candidates",
        bytes.len()
    );
    call().await;
    let runs = 15;
    let mut samples = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        std::hint::black_box(call().await);
        samples.push(start.elapsed());
    }
    let (med, p95) = stats(&mut samples);
    println!(
        "server   POST dispatch/v1/eligibleTechs (sqlite): median {:>8.3} ms  p95 {:>8.3} ms  ({runs} runs; {:+.1} ms against the store call)",
        ms(med),
        ms(p95),
        ms(med) - ms(store_median)
    );
    let _ = stop.send(());
    let _ = server.await;
}

#[tokio::main]
async fn main() {
    let count = |var: &str, default: usize| {
        std::env::var(var)
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(default)
    };
    let techs = count("TECHS", 1000);
    let pg_techs = count("PG_TECHS", techs);
    println!(
        "eligible_techs: one job (plumbing level 2+, Backflow Tester, 11:00–12:30 America/Chicago on {}), \
         {techs} technicians; each layer printed with its same-run reference",
        day()
    );
    let all = Arc::new(plans(techs));
    let core_median = core_only(&all);
    through_store(
        Backend::Sqlite,
        TestDb::sqlite().await.unwrap(),
        all.clone(),
        core_median,
        techs,
    )
    .await;
    match TestDb::postgres().await {
        Some(db) => {
            let pg = if pg_techs == techs {
                all
            } else {
                Arc::new(plans(pg_techs))
            };
            through_store(Backend::Postgres, db, pg, core_median, techs).await;
        }
        None => println!("postgres skipped: unreachable"),
    }
}
