//! Tests of the board's day planning, the settings and booking slots, with a property test that
//! a day built only from bookings the eligibility rules accept never shows one technician in two
//! places at once.
use super::*;

use chrono::TimeZone as _;
use proptest::prelude::*;
use uuid::Uuid;

use crate::appointment::AppointmentStatus as A;
use crate::compliance::{ComplianceVerdict, Jurisdiction};
use crate::customer::{CountryCode, PostalCode};
use crate::org::TimeZone;
use crate::schedule::Appointment;
use crate::text::{Name, TradeCode};
use crate::workforce::{
    DailyCapacity, ShiftSpan, Skill, SkillLevel, Technician, Weekday, WeeklyShifts, WorkProfile,
};

fn at(h: u32, m: u32) -> DateTime<Utc> {
    // 2031-06-02 is a Monday; Chicago is UTC−5 then.
    Utc.with_ymd_and_hms(2031, 6, 2, h, m, 0)
        .single()
        .expect("valid")
}

fn pt(lat: f64, lon: f64) -> GeoPoint {
    GeoPoint::parse(lat, lon).expect("valid point")
}

fn visit(n: u128, start: DateTime<Utc>, status: A, location: Option<GeoPoint>) -> Visit {
    Visit {
        appointment_id: Some(AppointmentId::from_uuid(Uuid::from_u128(n))),
        job_id: JobId::from_uuid(Uuid::from_u128(1_000 + n)),
        status,
        held_from: None,
        window: TimeWindow::parse(start, start + Duration::hours(2)).expect("valid"),
        planned_start: None,
        estimated_minutes: 60,
        location,
        job_status: JobStatus::Scheduled,
        sla_deadline: start + Duration::days(1),
        sla_breached_at: None,
        job_reached: false,
    }
}

#[test]
fn a_day_has_legs_from_home_then_from_the_previous_stop() {
    let home = pt(41.90, -87.65);
    let a = pt(41.88, -87.63);
    let b = pt(41.80, -87.60);
    let visits = vec![
        visit(2, at(17, 0), A::Scheduled, Some(b)),
        visit(1, at(14, 0), A::Scheduled, Some(a)),
    ];
    let model = TravelSettings::default();
    let stops = plan_day(Some(home), visits, &model, at(13, 0), at(6, 0));
    assert_eq!(stops.len(), 2);
    let first = stops[0].leg.expect("a leg from home");
    assert_eq!(first.from, LegOrigin::HomeBase);
    let second = stops[1].leg.expect("a leg from the first stop");
    assert_eq!(second.from, LegOrigin::PreviousStop);
    // 41.88,-87.63 → 41.80,-87.60 is about 9.2 km as the crow flies; ×1.3 ≈ 12 km; 40 km/h.
    assert!((11.0..13.0).contains(&second.km), "{second:?}");
    // Minutes come from the unrounded distance: within a minute of the shown kilometres.
    let expected = second.km / 40.0 * 60.0;
    assert!(
        (f64::from(second.minutes) - expected).abs() <= 1.0,
        "{second:?}"
    );
    // Arrivals wait for the window to open.
    assert_eq!(stops[0].projected_arrival, Some(at(14, 0)));
    assert_eq!(stops[1].projected_arrival, Some(at(17, 0)));
    assert_eq!(stops[0].flags, Flags::default());
}

#[test]
fn flags_say_late_at_risk_and_breached() {
    let model = TravelSettings::default();
    // Now is 15:30: the 13:00–15:00 window has passed with nobody on site.
    let mut late = visit(1, at(13, 0), A::Dispatched, None);
    late.sla_deadline = at(15, 0);
    // A long first visit makes the next one arrive after its window.
    let mut long = visit(2, at(15, 0), A::OnSite, None);
    long.estimated_minutes = 240;
    long.job_status = JobStatus::OnSite;
    let next = visit(3, at(16, 0), A::Scheduled, None);
    let stops = plan_day(None, vec![late, long, next], &model, at(13, 0), at(15, 30));
    assert!(
        stops[0].flags.late && stops[0].flags.sla_breached,
        "{:?}",
        stops[0]
    );
    assert_eq!(
        stops[1].flags,
        Flags::default(),
        "on site: neither late nor at risk"
    );
    assert!(
        stops[2].flags.at_risk && !stops[2].flags.late,
        "{:?}",
        stops[2]
    );
    // A recorded breach stays a breach.
    let mut recorded = visit(4, at(20, 0), A::Scheduled, None);
    recorded.sla_breached_at = Some(at(12, 0));
    assert!(flags_at(&recorded, None, at(12, 30)).sla_breached);
}

/// A visit held after its crew arrived (waiting for parts) is neither late nor a breach.
#[test]
fn a_visit_held_on_site_is_not_late() {
    let mut held = visit(1, at(13, 0), A::OnHold, None);
    held.held_from = Some(A::OnSite);
    held.job_reached = true;
    held.job_status = JobStatus::OnSite;
    held.sla_deadline = at(14, 0);
    let flags = flags_at(&held, None, at(16, 0));
    assert_eq!(flags, Flags::default(), "{flags:?}");
    let mut waiting = held.clone();
    waiting.held_from = Some(A::Dispatched);
    waiting.job_reached = false;
    waiting.job_status = JobStatus::OnHold;
    let flags = flags_at(&waiting, None, at(16, 0));
    assert!(flags.late && flags.sla_breached, "{flags:?}");
}

#[test]
fn settings_are_checked_and_slots_follow_the_zone() {
    let ok = SchedulingSettings::parse(
        TravelSettings::default(),
        vec![
            ArrivalWindow {
                start_minute: 600,
                end_minute: 720,
            },
            ArrivalWindow {
                start_minute: 480,
                end_minute: 600,
            },
        ],
    )
    .expect("valid");
    assert_eq!(ok.arrival_windows[0].start_minute, 480, "sorted");
    let bad = SchedulingSettings::parse(
        TravelSettings {
            detour_factor: 0.5,
            speed_kmh: 400.0,
        },
        vec![
            ArrivalWindow {
                start_minute: 480,
                end_minute: 600,
            },
            ArrivalWindow {
                start_minute: 540,
                end_minute: 1_500,
            },
        ],
    )
    .expect_err("invalid");
    let fields: Vec<&str> = bad.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        [
            "travel.detourFactor",
            "travel.speedKmh",
            "arrivalWindows[1]",
            "arrivalWindows"
        ]
    );
    let tz = chrono_tz::America::Chicago;
    let slots = SchedulingSettings::default().slots_on("2031-06-02".parse().expect("date"), tz);
    assert_eq!(slots.len(), 4);
    assert_eq!(slots[0].start(), at(13, 0), "08:00 CDT");
    // Across the autumn change (2031-11-02), 08:00 local is 14:00 UTC.
    let after = SchedulingSettings::default().slots_on("2031-11-03".parse().expect("date"), tz);
    assert_eq!(after[0].start().format("%H:%M").to_string(), "14:00");
}

fn plumber(n: u128) -> TechnicianFacts {
    let t = at(0, 0);
    let days = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];
    TechnicianFacts {
        technician: Technician {
            id: TechnicianId::from_uuid(Uuid::from_u128(n)),
            version: 1,
            name: Name::parse(&format!("Tech {n}")).expect("valid"),
            email: None,
            phone: None,
            trades: vec![],
            active: true,
            created_at: t,
            updated_at: t,
        },
        profile: WorkProfile {
            skills: vec![Skill {
                trade: TradeCode::parse("plumbing").expect("valid"),
                level: SkillLevel::parse(3).expect("valid"),
            }],
            certifications: vec![],
            shifts: vec![
                WeeklyShifts::parse(
                    "2031-01-01".parse().expect("valid"),
                    days.iter()
                        .map(|&d| ShiftSpan::parse(d, "08:00", "17:00").expect("valid"))
                        .collect(),
                )
                .expect("valid"),
            ],
            time_off: vec![],
            service_areas: vec![],
            home_base: Some(pt(41.9, -87.65)),
            daily_capacity: DailyCapacity::default(),
        },
        appointments: vec![],
    }
}

fn needs() -> JobNeeds {
    JobNeeds {
        job_id: None,
        appointment_id: None,
        trade: TradeCode::parse("plumbing").expect("valid"),
        min_skill_level: SkillLevel::parse(2).expect("valid"),
        required_certifications: vec![],
        location: Some(pt(41.88, -87.63)),
        postal_code: PostalCode::parse("60601").expect("valid"),
        jurisdiction: Jurisdiction::parse(
            CountryCode::parse("US").expect("valid"),
            Some("IL"),
            None,
        )
        .expect("valid"),
        window: TimeWindow::parse(at(13, 0), at(15, 0)).expect("valid"),
    }
}

fn org() -> OrgFacts {
    OrgFacts {
        service_areas: vec![crate::area::ServiceArea::new(
            crate::area::AreaKind::PostalCodes {
                postal_codes: [PostalCode::parse("60601").expect("valid")].into(),
            },
            vec![],
        )],
        compliance: ComplianceVerdict::compliant(),
        time_zone: TimeZone::parse("America/Chicago").expect("valid"),
    }
}

#[test]
fn slots_skip_booked_windows_and_say_why_others_are_left_out() {
    let org = org();
    let tz = org.time_zone.tz();
    let windows: Vec<(TimeWindow, &OrgFacts)> = SchedulingSettings::default()
        .slots_on("2031-06-02".parse().expect("date"), tz)
        .into_iter()
        .map(|w| (w, &org))
        .collect();
    let mut busy = plumber(1);
    busy.appointments.push(Appointment {
        job_id: JobId::from_uuid(Uuid::from_u128(77)),
        appointment_id: None,
        window: windows[0].0,
        location: Some(pt(41.95, -87.7)),
    });
    let mut inactive = plumber(2);
    inactive.technician.active = false;
    let techs = [busy, inactive, plumber(3)];
    let found = suggest_slots(
        &needs(),
        &techs,
        &windows,
        &TravelSettings::default(),
        at(6, 0),
        5,
    );
    assert_eq!(found.options.len(), 5);
    // 08–10: only tech 3 (tech 1 is booked); then 10–12 for both, the nearer first.
    assert_eq!(found.options[0].technician_id, techs[2].technician.id);
    assert_eq!(found.options[0].window, windows[0].0);
    assert!(
        found
            .options
            .iter()
            .all(|o| o.technician_id != techs[1].technician.id)
    );
    assert_eq!(found.left_out.len(), 1);
    assert_eq!(
        found.left_out[0].failed_rules.get("TECHNICIAN_INACTIVE"),
        Some(&4)
    );
    // Windows already open are not offered.
    let later = suggest_slots(
        &needs(),
        &techs,
        &windows,
        &TravelSettings::default(),
        at(14, 0),
        50,
    );
    assert!(later.options.iter().all(|o| o.window.start() >= at(14, 0)));
    // Every option passes the rules.
    for o in &found.options {
        let tech = techs
            .iter()
            .find(|t| t.technician.id == o.technician_id)
            .expect("known");
        let n = JobNeeds {
            window: o.window,
            ..needs()
        };
        assert!(eligibility::evaluate(&n, tech, &org).eligible);
    }
}

proptest! {
    /// Bookings accepted one by one under the eligibility rules, then laid out as a day, never
    /// put one technician in two overlapping windows.
    #[test]
    fn a_day_built_from_accepted_bookings_never_overlaps(
        requests in prop::collection::vec((0u32..36, 1u32..9), 0..30),
    ) {
        let org = org();
        let mut tech = plumber(1);
        for (k, (quarter, len)) in requests.iter().enumerate() {
            let start = at(13, 0) + Duration::minutes(i64::from(quarter * 15));
            let Ok(window) = TimeWindow::parse(start, start + Duration::minutes(i64::from(len * 15))) else {
                continue;
            };
            let n = JobNeeds {
                window,
                appointment_id: Some(AppointmentId::from_uuid(Uuid::from_u128(k as u128 + 1))),
                ..needs()
            };
            if eligibility::evaluate(&n, &tech, &org).eligible {
                tech.appointments.push(Appointment {
                    job_id: JobId::from_uuid(Uuid::from_u128(500)),
                    appointment_id: n.appointment_id,
                    window,
                    location: n.location,
                });
            }
        }
        let visits: Vec<Visit> = tech
            .appointments
            .iter()
            .map(|a| Visit {
                appointment_id: a.appointment_id,
                job_id: a.job_id,
                status: A::Scheduled,
                held_from: None,
                window: a.window,
                planned_start: None,
                estimated_minutes: 30,
                location: a.location,
                job_status: JobStatus::Scheduled,
                sla_deadline: at(23, 0),
                sla_breached_at: None,
                job_reached: false,
            })
            .collect();
        let stops = plan_day(tech.profile.home_base, visits, &TravelSettings::default(), at(13, 0), at(6, 0));
        for pair in stops.windows(2) {
            prop_assert!(pair[0].visit.window.end() <= pair[1].visit.window.start(), "{:?}", pair);
        }
    }
}
