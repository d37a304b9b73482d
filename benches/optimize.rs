//! Route optimization of realistic contractor days, against a greedy dispatcher, and the time
//! `dispatch/v1/optimize` takes end to end.
//!
//! **Quality** (core only, no database): generated days — clustered neighbourhoods around
//! Chicago, 2-hour and 4-hour arrival windows from 08:00 to 18:00, 30–120 minute jobs, plumbing
//! and HVAC at skill levels 1–3 (a few needing a certification), technicians with different
//! shifts (one in four split by a lunch hour) and home bases, a crew visit kept on two
//! technicians' days per ten technicians, and one visit in twenty pinned — of 10 technicians
//! and 100 visits, 20 and 200, 40 and 400. For each day: the greedy dispatcher's day
//! (`dispatch::plan::greedy_routes`: each visit, most urgent first, to the best-ranked
//! technician as `eligibleTechs` ranks them who can still fit it), then the optimizer with each
//! wall-clock budget (1 s and 10 s). Every plan is checked by `routing::check` (the independent
//! checker) and measured by the same evaluator (`dispatch::plan::evaluate`). Then the day
//! changes — one visit in twenty cancelled, one technician home sick — and it is re-planned
//! (1 s) with the day's plan as the current assignment, with the stability weight (30) and from
//! scratch (0): visits moved, and travel against the plan before.
//!
//! **Latency** (store, both backends): an organization with the 40-technician, 400-visit day
//! booked through the services, then `dispatch/v1/optimize` with a 10 s budget through the
//! services (the engine, the fact gathering, the solve, the plan's storage; HTTP adds well under
//! a millisecond, see the board bench): the time beyond the budget is the fact gathering and
//! the storage. And `dispatch/v1/placeVisit` for a new visit into that day, `SAMPLES` times.
//!
//! ```sh
//! cargo bench --bench optimize     # SIZES=10x100,20x200,40x400 BUDGETS=1,10 LATENCY=postgres,sqlite SAMPLES=20
//! ```
#![allow(clippy::unwrap_used)]

mod support;

use support::Rng;

use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use hestami::core::area::{AreaKind, ServiceArea};
use hestami::core::compliance::{ComplianceVerdict, Jurisdiction};
use hestami::core::customer::{CountryCode, GeoPoint, PostalCode};
use hestami::core::dispatch::board::TravelSettings;
use hestami::core::dispatch::plan::{
    self, DayFacts, DayPlan, Kpis, Mapped, PlanVisit, Weights, greedy_routes,
};
use hestami::core::dispatch::routing::{self, SolverConfig};
use hestami::core::eligibility::{JobNeeds, OrgFacts, TechnicianFacts};
use hestami::core::ids::{AppointmentId, CertificationId, JobId, TechnicianId};
use hestami::core::job::{Priority, TimeWindow};
use hestami::core::org::TimeZone;
use hestami::core::schedule::{Appointment, local_to_utc};
use hestami::core::text::{Name, TradeCode};
use hestami::core::workforce::{
    Certification, DailyCapacity, ShiftSpan, Skill, SkillLevel, Technician, Weekday, WeeklyShifts,
    WorkProfile,
};

const CENTER: (f64, f64) = (41.8781, -87.6298);

fn clock(minute: u16) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn day() -> NaiveDate {
    "2031-06-02".parse().unwrap()
}

fn local(minute: i64) -> DateTime<Utc> {
    local_to_utc(
        chrono_tz::America::Chicago,
        day().and_hms_opt(0, 0, 0).unwrap() + chrono::Duration::minutes(minute),
    )
}

/// A point about `km` from `(lat, lon)` in a random direction.
fn near(g: &mut Rng, (lat, lon): (f64, f64), km: f64) -> GeoPoint {
    let r = km * g.unit().sqrt();
    let a = g.unit() * std::f64::consts::TAU;
    GeoPoint::parse(
        lat + r * a.sin() / 111.0,
        lon + r * a.cos() / (111.0 * lat.to_radians().cos()),
    )
    .unwrap()
}

fn trade(i: u64) -> TradeCode {
    TradeCode::parse(if i % 3 == 2 { "hvac" } else { "plumbing" }).unwrap()
}

fn org() -> OrgFacts {
    OrgFacts {
        service_areas: vec![ServiceArea::new(
            AreaKind::PostalCodes {
                postal_codes: [PostalCode::parse("60601").unwrap()].into(),
            },
            vec![],
        )],
        compliance: ComplianceVerdict::compliant(),
        time_zone: TimeZone::parse("America/Chicago").unwrap(),
    }
}

/// A generated day of `techs` technicians and `visits` visits.
fn generate(techs: usize, visits: usize, seed: u64) -> DayFacts {
    let mut g = Rng::new(seed);
    let at = local(0);
    // Neighbourhoods: one per five technicians, within 20 km of the centre.
    let hoods: Vec<(f64, f64)> = (0..techs.div_ceil(5).max(2))
        .map(|_| {
            let p = near(&mut g, CENTER, 20.0);
            (p.lat(), p.lon())
        })
        .collect();
    let shift_patterns: [&[(&str, &str)]; 4] = [
        &[("07:00", "15:30")],
        &[("08:00", "17:00")],
        &[("10:00", "19:00")],
        &[("07:30", "12:00"), ("13:00", "17:00")],
    ];
    let mut technicians: Vec<TechnicianFacts> = (0..techs)
        .map(|k| {
            let spans = shift_patterns[k % 4]
                .iter()
                .map(|(s, e)| ShiftSpan::parse(Weekday::Mon, s, e).unwrap())
                .collect();
            let level = 2 + (k % 3) as u8;
            let mut skills = vec![Skill {
                trade: trade(k as u64),
                level: SkillLevel::parse(level).unwrap(),
            }];
            if k % 4 == 0 {
                skills.push(Skill {
                    trade: trade(k as u64 + 1),
                    level: SkillLevel::parse(2).unwrap(),
                });
            }
            TechnicianFacts {
                technician: Technician {
                    id: TechnicianId::from_uuid(Uuid::from_u128(k as u128 + 1)),
                    version: 1,
                    name: Name::parse(&format!("Tech {k}")).unwrap(),
                    email: None,
                    phone: None,
                    trades: vec![],
                    active: true,
                    created_at: at,
                    updated_at: at,
                },
                profile: WorkProfile {
                    skills,
                    certifications: if k % 5 == 1 {
                        vec![Certification {
                            id: CertificationId::from_uuid(Uuid::from_u128(k as u128 + 500)),
                            name: Name::parse("Backflow Tester").unwrap(),
                            issuer: Name::parse("Board").unwrap(),
                            number: None,
                            expires_on: Some("2032-01-01".parse().unwrap()),
                            trades: vec![],
                            created_at: at,
                        }]
                    } else {
                        vec![]
                    },
                    shifts: vec![
                        WeeklyShifts::parse("2031-01-01".parse().unwrap(), spans).unwrap(),
                    ],
                    time_off: vec![],
                    service_areas: vec![],
                    home_base: Some(near(&mut g, hoods[k % hoods.len()], 6.0)),
                    daily_capacity: DailyCapacity::parse(12).unwrap(),
                },
                appointments: vec![],
            }
        })
        .collect();
    // A crew visit per ten technicians, kept on two technicians' days at 13:00–14:30 local.
    for c in 0..techs / 10 {
        let place = near(&mut g, hoods[c % hoods.len()], 3.0);
        for k in [c * 10 + 1, c * 10 + 2] {
            technicians[k].appointments.push(Appointment {
                job_id: JobId::from_uuid(Uuid::from_u128(90_000 + c as u128)),
                appointment_id: Some(AppointmentId::from_uuid(Uuid::from_u128(
                    95_000 + c as u128,
                ))),
                window: TimeWindow::parse(local(780), local(870)).unwrap(),
                location: Some(place),
            });
        }
    }
    let visits = (0..visits)
        .map(|i| {
            let id = AppointmentId::from_uuid(Uuid::from_u128(10_000 + i as u128));
            let start = 480 + 60 * g.below(9) as i64;
            let length = if g.below(2) == 0 { 120 } else { 240 };
            let end = (start + length).min(1_080);
            let level = 1 + g.below(3) as u8;
            let hood = hoods[g.below(hoods.len() as u64) as usize];
            let pinned = (i % 20 == 7).then(|| {
                // A pin to a technician of the right trade and level.
                technicians
                    .iter()
                    .find(|t| {
                        t.profile
                            .skills
                            .iter()
                            .any(|s| s.trade == trade(i as u64) && s.level.get() >= level)
                    })
                    .map(|t| t.technician.id)
            });
            PlanVisit {
                appointment_id: id,
                needs: JobNeeds {
                    job_id: Some(JobId::from_uuid(Uuid::from_u128(20_000 + i as u128))),
                    appointment_id: Some(id),
                    trade: trade(i as u64),
                    min_skill_level: SkillLevel::parse(level).unwrap(),
                    required_certifications: if i % 25 == 3 {
                        vec![Name::parse("Backflow Tester").unwrap()]
                    } else {
                        vec![]
                    },
                    location: Some(near(&mut g, hood, 4.0)),
                    postal_code: PostalCode::parse("60601").unwrap(),
                    jurisdiction: Jurisdiction::parse(
                        CountryCode::parse("US").unwrap(),
                        Some("IL"),
                        None,
                    )
                    .unwrap(),
                    window: TimeWindow::parse(local(start), local(end)).unwrap(),
                },
                minutes: [30, 30, 45, 45, 60, 60, 90, 120][g.below(8) as usize],
                priority: if i % 10 == 0 {
                    Priority::Urgent
                } else {
                    Priority::Routine
                },
                pinned: pinned.flatten(),
                compliance: ComplianceVerdict::compliant(),
                current: None,
                current_start: None,
                sla_deadline: None,
            }
        })
        .collect();
    DayFacts {
        day: day(),
        org: org(),
        technicians,
        visits,
        travel: TravelSettings::default(),
    }
}

/// Solves with a wall-clock budget; returns the plan, the solution's check and iterations.
fn optimize(
    facts: &DayFacts,
    weights: &Weights,
    budget: Duration,
) -> (Mapped, DayPlan, usize, u64) {
    let mapped = plan::to_problem(facts, weights);
    let started = Instant::now();
    let mut clock = |_: u64| {
        let spent = started.elapsed();
        (spent < budget).then(|| spent.as_secs_f64() / budget.as_secs_f64())
    };
    let solution = routing::solve(
        &mapped.problem,
        &mapped.matrix,
        &SolverConfig::default(),
        &mut clock,
    )
    .unwrap();
    let violations = routing::check(&mapped.problem, &mapped.matrix, &solution).len();
    let day = plan::to_plan(facts, &mapped, &solution);
    (mapped, day, violations, solution.iterations)
}

fn row(what: &str, k: &Kpis, extra: &str) {
    println!(
        "| {what} | {}/{} | {:.0} | {:.1} | {} | {:.0} | {:.0} | {:.2} | {extra} |",
        k.scheduled,
        k.visits,
        k.travel_minutes,
        k.travel_km,
        k.late_visits,
        k.lateness_minutes,
        k.overtime_minutes,
        k.utilization
    );
}

fn quality() {
    let sizes: Vec<(usize, usize)> = env("SIZES", "10x100,20x200,40x400")
        .split(',')
        .filter_map(|s| {
            let (a, b) = s.split_once('x')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect();
    let budgets: Vec<u64> = env("BUDGETS", "1,10")
        .split(',')
        .filter_map(|b| b.parse().ok())
        .collect();
    println!("## quality: generated days\n");
    println!(
        "| day | plan | scheduled | travel min | travel km | late visits | lateness min | overtime min | utilization | notes |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (techs, visits) in sizes {
        let facts = generate(techs, visits, (techs * 1_000 + visits) as u64);
        let label = format!("{techs}×{visits}");
        let weights = Weights::default();
        let mapped = plan::to_problem(&facts, &weights);
        let started = Instant::now();
        let greedy = greedy_routes(&facts, &mapped);
        let greedy_time = started.elapsed();
        let g = plan::evaluate(&facts, &mapped, &greedy);
        row(
            &format!("{label} | greedy"),
            &g,
            &format!("{:.0} ms", greedy_time.as_secs_f64() * 1e3),
        );
        let mut last = None;
        for &b in &budgets {
            let (_, day, violations, iterations) =
                optimize(&facts, &weights, Duration::from_secs(b));
            row(
                &format!("{label} | optimized {b} s"),
                &day.kpis,
                &format!("{violations} violations, {iterations} iterations"),
            );
            last = Some(day);
        }
        // The day changes: one visit in twenty cancelled, the last technician home sick.
        let Some(before) = last else { continue };
        let mut changed = facts.clone();
        let sick = changed.technicians.pop().map(|t| t.technician.id);
        for route in &before.routes {
            for stop in &route.stops {
                if let Some(v) = changed
                    .visits
                    .iter_mut()
                    .find(|v| Some(v.appointment_id) == stop.appointment_id)
                {
                    v.current = Some(route.technician_id);
                    v.current_start = Some(stop.start);
                }
            }
        }
        let mut k = 0;
        changed.visits.retain(|_| {
            k += 1;
            k % 20 != 0
        });
        for v in &mut changed.visits {
            if v.pinned == sick {
                v.pinned = None;
            }
        }
        for (what, stability) in [("re-plan, stability 30", 30.0), ("from scratch", 0.0)] {
            let w = Weights {
                stability,
                ..Weights::default()
            };
            let (_, day, violations, _) = optimize(&changed, &w, Duration::from_secs(1));
            row(
                &format!("{label} changed | {what} 1 s"),
                &day.kpis,
                &format!(
                    "{} moved, {violations} violations; the day before: {:.0} travel min",
                    day.moved, day.before.travel_minutes
                ),
            );
        }
    }
    println!();
}

// ---------------------------------------------------------------------------------------------
// Latency through the store.

mod latency {
    use super::*;

    use hestami::core::customer::{Address, Customer, Property};
    use hestami::core::job::{Job, NewJob};
    use hestami::store::app::appointment::{AddAppointment, JobSchedule, JobV2Command};
    use hestami::store::app::customer::{CustomerCommand, NewCustomer, NewProperty};
    use hestami::store::app::dispatch_plan::{Optimize, PlaceQuery, PlanCommand, StoredPlan};
    use hestami::store::app::job::JobLifecycleCommand;
    use hestami::store::app::technician::{NewTechnician, TechnicianCommand};
    use hestami::store::app::workforce::WorkforceCommand;
    use hestami::store::app::{Caller, Services};
    use hestami::store::engine::EngineConfig;
    use hestami::store::testing::{TestDb, fixtures};
    use hestami::store::{Store, StoreOptions};

    use crate::support::{owner, submit};

    pub async fn run(backend: &str, samples: usize) {
        let db = match backend {
            "postgres" => match TestDb::postgres().await {
                Some(db) => db,
                None => {
                    println!("{backend}: no database (set HESTAMI_TEST_DATABASE_URL)");
                    return;
                }
            },
            _ => TestDb::sqlite().await.unwrap(),
        };
        let admin = Store::connect(&db.owner_url, StoreOptions::default())
            .await
            .unwrap();
        let services = Services::new(
            Store::connect(&db.app_url, StoreOptions::default())
                .await
                .unwrap(),
            EngineConfig::default(),
        );
        let (caller, _) = owner(&admin, "Optimize Bench", "optimize@example.com").await;
        let c = &caller;
        fixtures::make_ready(&services, c, "US", "IL", &["plumbing", "hvac"], &["60601"])
            .await
            .unwrap();
        // Tomorrow, local, with the generated day's shape.
        let tomorrow = (Utc::now().with_timezone(&chrono_tz::America::Chicago)
            + chrono::Duration::days(1))
        .date_naive();
        let shift = |d: NaiveDate, m: i64| {
            local_to_utc(
                chrono_tz::America::Chicago,
                d.and_hms_opt(0, 0, 0).unwrap() + chrono::Duration::minutes(m),
            )
        };
        let facts = generate(40, 400, 40_400);
        let started = Instant::now();
        let mut ids = Vec::new();
        for t in &facts.technicians {
            let tech: Technician = submit(
                &services,
                c,
                TechnicianCommand::Create(NewTechnician {
                    name: t.technician.name.clone(),
                    email: None,
                    phone: None,
                    trades: t.profile.skills.iter().map(|s| s.trade.clone()).collect(),
                }),
            )
            .await;
            let _: serde_json::Value = submit(
                &services,
                c,
                WorkforceCommand::SetSkills {
                    technician_id: tech.id,
                    skills: t.profile.skills.clone(),
                },
            )
            .await;
            let _: serde_json::Value = submit(
                &services,
                c,
                WorkforceCommand::SetShifts {
                    technician_id: tech.id,
                    shifts: WeeklyShifts::parse(
                        "2020-01-01".parse().unwrap(),
                        Weekday::ALL
                            .iter()
                            .flat_map(|d| {
                                t.profile.shifts[0].spans().iter().map(|s| {
                                    ShiftSpan::parse(
                                        *d,
                                        &clock(s.start_minute()),
                                        &clock(s.end_minute()),
                                    )
                                    .unwrap()
                                })
                            })
                            .collect(),
                    )
                    .unwrap(),
                },
            )
            .await;
            let _: serde_json::Value = submit(
                &services,
                c,
                WorkforceCommand::SetHomeBase {
                    technician_id: tech.id,
                    home_base: t.profile.home_base,
                    daily_capacity: Some(DailyCapacity::parse(12).unwrap()),
                },
            )
            .await;
            ids.push(tech.id);
        }
        let customer: Customer = submit(
            &services,
            c,
            CustomerCommand::Create(NewCustomer {
                name: Name::parse("Bench Customer").unwrap(),
                email: None,
                phone: None,
            }),
        )
        .await;
        let mut last_visit = None;
        for (i, v) in facts.visits.iter().enumerate() {
            let property: Property = submit(
                &services,
                c,
                CustomerCommand::AddProperty(NewProperty {
                    customer_id: customer.id,
                    address: Address {
                        line1: Name::parse(&format!("{i} Main St")).unwrap(),
                        line2: None,
                        city: Name::parse("Chicago").unwrap(),
                        region: Name::parse("IL").unwrap(),
                        postal_code: PostalCode::parse("60601").unwrap(),
                        country: CountryCode::parse("US").unwrap(),
                    },
                    access_notes: None,
                    location: v.needs.location,
                }),
            )
            .await;
            let job: Job = submit(
                &services,
                c,
                JobLifecycleCommand::Create(NewJob {
                    customer_id: customer.id,
                    property_id: property.id,
                    trade: v.needs.trade.clone(),
                    priority: Priority::Routine,
                    summary: hestami::core::text::Summary::parse("Service call").unwrap(),
                    description: None,
                    min_skill_level: v.needs.min_skill_level,
                    required_certifications: vec![],
                    callback_of: None,
                }),
            )
            .await;
            let offset = |t: DateTime<Utc>| (t - local(0)).num_minutes();
            let window = TimeWindow::parse(
                shift(tomorrow, offset(v.needs.window.start())),
                shift(tomorrow, offset(v.needs.window.end())),
            )
            .unwrap();
            let schedule: JobSchedule = submit(
                &services,
                c,
                JobV2Command::AddAppointment(AddAppointment {
                    job_id: job.id,
                    window,
                    estimated_minutes: Some(v.minutes),
                    lead: None,
                    helpers: vec![],
                    sla_override: None,
                    planned_start: None,
                    expected_version: None,
                }),
            )
            .await;
            last_visit = Some(schedule.appointments[0].id);
        }
        println!(
            "{backend}: seeded 40 technicians and 400 visits in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let budget_ms = 10_000u32;
        let started = Instant::now();
        let stored: StoredPlan = submit(
            &services,
            c,
            PlanCommand::Optimize(Optimize {
                date: tomorrow,
                technician_ids: vec![],
                appointment_ids: vec![],
                pins: vec![],
                weights: Weights::default(),
                time_budget_ms: Some(budget_ms),
                seed: None,
            }),
        )
        .await;
        let total = started.elapsed();
        println!(
            "| {backend} | optimize, 40 technicians, 400 visits, 10 s budget | {:.2} s | {:.0} ms beyond the budget | {} of {} planned, {} iterations |",
            total.as_secs_f64(),
            (total.as_secs_f64() - f64::from(budget_ms) / 1e3) * 1e3,
            stored.plan.kpis.scheduled,
            stored.plan.kpis.visits,
            stored.iterations
        );
        place(&services, c, last_visit.unwrap(), samples, backend).await;
    }

    async fn place(
        services: &Services,
        c: &Caller,
        visit: AppointmentId,
        samples: usize,
        backend: &str,
    ) {
        let mut times = Vec::with_capacity(samples);
        for _ in 0..samples {
            let started = Instant::now();
            let placed = services
                .place_visit(
                    c,
                    PlaceQuery {
                        appointment_id: visit,
                        limit: Some(5),
                    },
                )
                .await
                .unwrap();
            times.push(started.elapsed());
            assert!(!placed.options.is_empty() || !placed.reasons.is_empty());
        }
        times.sort();
        let p = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
        println!(
            "| {backend} | placeVisit into the 400-visit day | p50 {:.0} ms | p99 {:.0} ms | {samples} calls |",
            p(0.5).as_secs_f64() * 1e3,
            p(0.99).as_secs_f64() * 1e3
        );
    }
}

fn main() {
    quality();
    let samples: usize = env("SAMPLES", "20").parse().unwrap_or(20);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("## latency through the store\n");
    for backend in env("LATENCY", "postgres,sqlite").split(',') {
        if backend.is_empty() {
            continue;
        }
        runtime.block_on(latency::run(backend, samples));
    }
}
