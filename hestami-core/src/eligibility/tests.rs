use super::*;

use std::collections::BTreeSet;

use proptest::prelude::*;
use uuid::Uuid;

use crate::area::{AreaKind, RadiusKm};
use crate::compliance::ComplianceReason;
use crate::customer::CountryCode;
use crate::ids::{CertificationId, TimeOffId};
use crate::workforce::{
    Certification, DailyCapacity, ShiftSpan, Skill, TimeOff, Weekday, WeeklyShifts,
};

const ALL_DAYS: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("valid RFC 3339")
        .with_timezone(&Utc)
}

fn trade(s: &str) -> TradeCode {
    TradeCode::parse(s).expect("valid trade")
}

fn name(s: &str) -> Name {
    Name::parse(s).expect("valid name")
}

fn postal(s: &str) -> PostalCode {
    PostalCode::parse(s).expect("valid postal code")
}

fn pt(lat: f64, lon: f64) -> GeoPoint {
    GeoPoint::parse(lat, lon).expect("valid point")
}

fn level(n: u8) -> SkillLevel {
    SkillLevel::parse(n).expect("valid level")
}

fn window(start: &str, end: &str) -> TimeWindow {
    TimeWindow::parse(utc(start), utc(end)).expect("valid window")
}

fn postal_area(codes: &[&str]) -> ServiceArea {
    ServiceArea::new(
        AreaKind::PostalCodes {
            postal_codes: codes.iter().map(|c| postal(c)).collect::<BTreeSet<_>>(),
        },
        vec![],
    )
}

fn span(w: Weekday, s: &str, e: &str) -> ShiftSpan {
    ShiftSpan::parse(w, s, e).expect("valid span")
}

fn weekdays_8_to_17() -> WeeklyShifts {
    WeeklyShifts::parse(
        "2031-01-01".parse().expect("valid date"),
        ALL_DAYS
            .iter()
            .map(|&w| span(w, "08:00", "17:00"))
            .collect(),
    )
    .expect("valid shifts")
}

fn cert(n: u128, label: &str, expires: Option<&str>) -> Certification {
    Certification {
        id: CertificationId::from_uuid(Uuid::from_u128(n)),
        name: name(label),
        issuer: name("Issuer"),
        number: None,
        expires_on: expires.map(|d| d.parse().expect("valid date")),
        trades: vec![],
        created_at: utc("2030-01-01T00:00:00Z"),
    }
}

fn appt(n: u128, start: &str, end: &str, location: Option<GeoPoint>) -> Appointment {
    Appointment {
        job_id: JobId::from_uuid(Uuid::from_u128(n)),
        appointment_id: None,
        window: window(start, end),
        location,
    }
}

/// A plumbing job in Chicago on Monday 2031-06-02, 10:00–11:00 local (CDT, UTC−5).
fn job() -> JobNeeds {
    JobNeeds {
        job_id: Some(JobId::from_uuid(Uuid::from_u128(1000))),
        appointment_id: None,
        trade: trade("plumbing"),
        min_skill_level: level(2),
        required_certifications: vec![name("Backflow Tester")],
        location: Some(pt(41.8800, -87.6300)),
        postal_code: postal("60601"),
        jurisdiction: Jurisdiction::parse(
            CountryCode::parse("US").expect("valid"),
            Some("IL"),
            None,
        )
        .expect("valid"),
        window: window("2031-06-02T15:00:00Z", "2031-06-02T16:00:00Z"),
    }
}

/// A technician who passes every rule for [`job`].
fn tech(n: u128) -> TechnicianFacts {
    let at = utc("2030-01-01T00:00:00Z");
    TechnicianFacts {
        technician: Technician {
            id: TechnicianId::from_uuid(Uuid::from_u128(n)),
            version: 1,
            name: name(&format!("Tech {n}")),
            email: None,
            phone: None,
            trades: vec![],
            active: true,
            created_at: at,
            updated_at: at,
        },
        profile: WorkProfile {
            skills: vec![Skill {
                trade: trade("plumbing"),
                level: level(3),
            }],
            certifications: vec![cert(1, "backflow tester", Some("2031-12-31"))],
            shifts: vec![weekdays_8_to_17()],
            time_off: vec![],
            service_areas: vec![],
            home_base: Some(pt(41.9000, -87.6500)),
            daily_capacity: DailyCapacity::default(),
        },
        appointments: vec![],
    }
}

fn org() -> OrgFacts {
    OrgFacts {
        service_areas: vec![postal_area(&["60601", "60602"])],
        compliance: ComplianceVerdict::compliant(),
        time_zone: TimeZone::parse("America/Chicago").expect("valid zone"),
    }
}

fn codes(v: &Verdict) -> Vec<&'static str> {
    v.failed.iter().map(|f| f.code).collect()
}

#[test]
fn the_baseline_is_eligible() {
    let v = evaluate(&job(), &tech(1), &org());
    assert!(v.eligible, "{v:?}");
    assert!(v.failed.is_empty());
}

#[test]
fn each_rule_fails_alone() {
    type Change = fn(&mut JobNeeds, &mut TechnicianFacts, &mut OrgFacts);
    let cases: Vec<(&str, Change)> = vec![
        ("TECHNICIAN_INACTIVE", |_, t, _| t.technician.active = false),
        ("TRADE_MISSING", |_, t, _| t.profile.skills.clear()),
        ("SKILL_LEVEL_TOO_LOW", |j, _, _| {
            j.min_skill_level = level(4)
        }),
        ("CERTIFICATION_MISSING", |_, t, _| {
            t.profile.certifications.clear()
        }),
        ("CERTIFICATION_EXPIRED", |_, t, _| {
            t.profile.certifications = vec![cert(1, "Backflow Tester", Some("2031-06-01"))];
        }),
        ("OUTSIDE_ORGANIZATION_AREA", |j, _, _| {
            j.postal_code = postal("10001")
        }),
        ("OUTSIDE_TECHNICIAN_AREA", |_, t, _| {
            t.profile.service_areas = vec![postal_area(&["60602"])];
        }),
        ("OUTSIDE_SHIFT", |j, _, _| {
            // 16:30–17:30 local runs past the end of the shift.
            j.window = window("2031-06-02T21:30:00Z", "2031-06-02T22:30:00Z");
        }),
        ("TIME_OFF_OVERLAP", |_, t, _| {
            t.profile.time_off = vec![
                TimeOff::parse(
                    TimeOffId::from_uuid(Uuid::from_u128(5)),
                    utc("2031-06-02T15:30:00Z"),
                    utc("2031-06-02T18:00:00Z"),
                    None,
                )
                .expect("valid"),
            ];
        }),
        ("APPOINTMENT_OVERLAP", |_, t, _| {
            t.appointments = vec![appt(
                7,
                "2031-06-02T14:30:00Z",
                "2031-06-02T15:30:00Z",
                None,
            )];
        }),
        ("DAILY_CAPACITY_REACHED", |_, t, _| {
            t.profile.daily_capacity = DailyCapacity::parse(1).expect("valid");
            t.appointments = vec![appt(
                7,
                "2031-06-02T19:00:00Z",
                "2031-06-02T20:00:00Z",
                None,
            )];
        }),
        ("ORGANIZATION_NOT_COMPLIANT", |_, _, o| {
            o.compliance = ComplianceVerdict {
                compliant: false,
                reasons: vec![ComplianceReason {
                    code: "LICENSE_EXPIRED",
                    message: "expired".into(),
                    data: json!({ "expiresOn": "2031-05-31" }),
                }],
                required_certifications: vec![],
            };
        }),
    ];
    for (expected, change) in cases {
        let (mut j, mut t, mut o) = (job(), tech(1), org());
        change(&mut j, &mut t, &mut o);
        let v = evaluate(&j, &t, &o);
        assert_eq!(codes(&v), [expected], "{v:#?}");
        assert!(!v.eligible);
    }
}

#[test]
fn the_jobs_own_appointment_and_other_days_do_not_count() {
    let mut t = tech(1);
    t.profile.daily_capacity = DailyCapacity::parse(1).expect("valid");
    t.appointments = vec![
        // The job itself, already booked in this window.
        appt(1000, "2031-06-02T15:00:00Z", "2031-06-02T16:00:00Z", None),
        // A job on the next local day.
        appt(8, "2031-06-03T15:00:00Z", "2031-06-03T16:00:00Z", None),
    ];
    assert!(evaluate(&job(), &t, &org()).eligible);
}

#[test]
fn organization_certifications_apply_to_the_technician() {
    let mut o = org();
    o.compliance.required_certifications = vec![name("OSHA 10"), name("BACKFLOW TESTER")];
    let v = evaluate(&job(), &tech(1), &o);
    assert_eq!(codes(&v), ["CERTIFICATION_MISSING"]);
    assert_eq!(v.failed[0].data["name"], "OSHA 10");
}

#[test]
fn all_reasons_at_once_snapshot() {
    let mut j = job();
    j.window = window("2031-06-02T21:30:00Z", "2031-06-02T22:30:00Z");
    j.postal_code = postal("10001");
    let mut t = tech(1);
    t.technician.active = false;
    t.profile.skills = vec![Skill {
        trade: trade("plumbing"),
        level: level(1),
    }];
    t.profile.certifications = vec![cert(1, "Backflow Tester", Some("2031-05-31"))];
    t.profile.service_areas = vec![postal_area(&["60602"])];
    t.profile.daily_capacity = DailyCapacity::parse(1).expect("valid");
    t.appointments = vec![appt(
        7,
        "2031-06-02T21:00:00Z",
        "2031-06-02T22:00:00Z",
        None,
    )];
    t.profile.time_off = vec![
        TimeOff::parse(
            TimeOffId::from_uuid(Uuid::from_u128(5)),
            utc("2031-06-02T22:00:00Z"),
            utc("2031-06-03T02:00:00Z"),
            Some(crate::text::Reason::parse("Training").expect("valid")),
        )
        .expect("valid"),
    ];
    let mut o = org();
    o.compliance = ComplianceVerdict {
        compliant: false,
        reasons: vec![ComplianceReason {
            code: "LICENSE_MISSING",
            message: "no plumbing licence covers US-IL".into(),
            data: json!({}),
        }],
        required_certifications: vec![],
    };
    let v = evaluate(&j, &t, &o);
    let rendered: String = v
        .failed
        .iter()
        .map(|f| format!("{}: {}\n", f.code, f.message))
        .collect();
    expect_test::expect![[r#"
        TECHNICIAN_INACTIVE: Tech 1 is deactivated
        SKILL_LEVEL_TOO_LOW: Tech 1 is level 1 in plumbing; the job needs level 2
        CERTIFICATION_EXPIRED: Tech 1's Backflow Tester expired on 2031-05-31
        OUTSIDE_ORGANIZATION_AREA: the property (10001) is outside the organization's service areas for plumbing
        OUTSIDE_TECHNICIAN_AREA: the property (10001) is outside Tech 1's service areas for plumbing
        OUTSIDE_SHIFT: the window is not inside one of Tech 1's shifts
        TIME_OFF_OVERLAP: Tech 1 is off from 2031-06-02 22:00:00 UTC to 2031-06-03 02:00:00 UTC
        APPOINTMENT_OVERLAP: Tech 1 is booked on job 00000000-0000-0000-0000-000000000007 from 2031-06-02 21:00:00 UTC to 2031-06-02 22:00:00 UTC
        DAILY_CAPACITY_REACHED: Tech 1 already has 1 job on 2031-06-02 (capacity 1)
        ORGANIZATION_NOT_COMPLIANT: the organization is not compliant for plumbing in US-IL: LICENSE_MISSING
    "#]]
    .assert_eq(&rendered);
    assert_eq!(v.failed[2].data["expiresOn"], "2031-05-31");
    assert_eq!(v.failed[9].data["reasons"][0]["code"], "LICENSE_MISSING");
}

#[test]
fn ranking_orders_by_level_distance_and_load() {
    let j = job();
    // Level 5, at home 2.5 km away, no jobs.
    let mut best = tech(4);
    best.profile.skills[0].level = level(5);
    // Level 3, with a previous job next door that day.
    let mut near = tech(2);
    near.appointments = vec![appt(
        20,
        "2031-06-02T13:00:00Z",
        "2031-06-02T14:30:00Z",
        Some(pt(41.8810, -87.6310)),
    )];
    // Level 3, home base far away, two jobs.
    let mut far = tech(3);
    far.profile.home_base = Some(pt(42.0500, -87.9000));
    far.appointments = vec![
        appt(30, "2031-06-02T18:00:00Z", "2031-06-02T19:00:00Z", None),
        appt(31, "2031-06-02T19:00:00Z", "2031-06-02T20:00:00Z", None),
    ];
    // Same as `near`, but a higher id: the tie goes to the lower id.
    let mut twin = near.clone();
    twin.technician.id = TechnicianId::from_uuid(Uuid::from_u128(9));
    // Ineligible (no certification) but otherwise the best: listed after the eligible ones.
    let mut uncertified = tech(1);
    uncertified.profile.skills[0].level = level(5);
    uncertified.profile.certifications.clear();
    // Inactive: not listed.
    let mut inactive = tech(8);
    inactive.technician.active = false;

    let ranked = rank(&j, &[far, twin, uncertified, inactive, near, best], &org());
    let rendered: String = ranked
        .iter()
        .map(|c| {
            format!(
                "{} eligible={} score={} [{}] {:?}\n",
                c.technician_id.as_uuid().as_u128(),
                c.eligible,
                c.score,
                c.reasons.join("; "),
                c.failed.iter().map(|f| f.code).collect::<Vec<_>>()
            )
        })
        .collect();
    expect_test::expect![[r#"
        4 eligible=true score=97.23 [level 5 plumbing; 2.8 km from home base; no other jobs that day] []
        2 eligible=true score=49.86 [level 3 plumbing; 0.1 km from the previous job; 1 job that day] []
        9 eligible=true score=49.86 [level 3 plumbing; 0.1 km from the previous job; 1 job that day] []
        3 eligible=true score=10.75 [level 3 plumbing; 29.3 km from home base; 2 jobs that day] []
        1 eligible=false score=97.23 [level 5 plumbing; 2.8 km from home base; no other jobs that day] ["CERTIFICATION_MISSING"]
    "#]]
    .assert_eq(&rendered);
}

// ---- property tests ----

/// Small random facts around the baseline, for the order-independence property.
#[derive(Clone, Debug)]
struct Facts {
    skills: Vec<(u8, u8)>,
    certs: Vec<(u8, Option<u8>)>,
    spans: Vec<(u8, u16, u16)>,
    time_off: Vec<(u8, u8)>,
    appointments: Vec<(u8, u8)>,
    areas: Vec<u8>,
    org_areas: Vec<u8>,
}

const TRADES: [&str; 3] = ["plumbing", "hvac", "electrical"];
const CERTS: [&str; 3] = ["Backflow Tester", "EPA 608", "OSHA 10"];
const ZIPS: [&str; 3] = ["60601", "60602", "60603"];

fn facts() -> impl Strategy<Value = Facts> {
    (
        proptest::collection::vec((0u8..3, 1u8..=5), 0..4),
        proptest::collection::vec((0u8..3, proptest::option::of(0u8..4)), 0..4),
        proptest::collection::vec((0u8..7, 0u16..24, 1u16..10), 0..6),
        proptest::collection::vec((0u8..24, 1u8..6), 0..3),
        proptest::collection::vec((0u8..24, 1u8..3), 0..4),
        proptest::collection::vec(0u8..3, 0..3),
        proptest::collection::vec(0u8..3, 0..3),
    )
        .prop_map(
            |(skills, certs, spans, time_off, appointments, areas, org_areas)| Facts {
                skills,
                certs,
                spans,
                time_off,
                appointments,
                areas,
                org_areas,
            },
        )
}

/// Builds the technician and organization from `f`, each list permuted by `perm`.
fn build(f: &Facts, perm: u64) -> (TechnicianFacts, OrgFacts) {
    fn permute<T: Clone>(v: &[T], seed: u64) -> Vec<T> {
        let mut v = v.to_vec();
        let mut s = seed | 1;
        for i in (1..v.len()).rev() {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            v.swap(i, (s >> 33) as usize % (i + 1));
        }
        v
    }
    let mut t = tech(1);
    t.profile.skills = permute(&f.skills, perm)
        .into_iter()
        .map(|(tr, l)| Skill {
            trade: trade(TRADES[usize::from(tr)]),
            level: level(l),
        })
        .collect();
    t.profile.certifications = permute(&f.certs, perm ^ 1)
        .into_iter()
        .enumerate()
        .map(|(i, (c, exp))| {
            let expires = exp.map(|d| format!("2031-06-0{}", d + 1));
            cert(i as u128, CERTS[usize::from(c)], expires.as_deref())
        })
        .collect();
    // Overlapping spans are refused, so which of them survive must not depend on the order:
    // drop the overlapping ones in the facts' own order first, then shuffle what is left.
    let mut accepted: Vec<ShiftSpan> = Vec::new();
    for &(w, start, len) in &f.spans {
        let end = (start + len).min(24);
        let s = span(
            ALL_DAYS[usize::from(w)],
            &format!("{start:02}:00"),
            &format!("{end:02}:00"),
        );
        let mut candidate = accepted.clone();
        candidate.push(s);
        if WeeklyShifts::parse(t.profile.shifts[0].effective_from(), candidate.clone()).is_ok() {
            accepted = candidate;
        }
    }
    let spans = permute(&accepted, perm ^ 2);
    t.profile.shifts = vec![
        WeeklyShifts::parse(t.profile.shifts[0].effective_from(), spans).expect("no overlaps"),
    ];
    let hour = |h: u8| utc("2031-06-02T05:00:00Z") + Duration::hours(i64::from(h));
    t.profile.time_off = permute(&f.time_off, perm ^ 3)
        .into_iter()
        .map(|(h, len)| {
            let id = TimeOffId::from_uuid(Uuid::from_u128(u128::from(h) * 10 + u128::from(len)));
            TimeOff::parse(id, hour(h), hour(h + len), None).expect("valid")
        })
        .collect();
    t.appointments = permute(&f.appointments, perm ^ 4)
        .into_iter()
        .map(|(h, len)| Appointment {
            job_id: JobId::from_uuid(Uuid::from_u128(u128::from(h) * 10 + u128::from(len))),
            appointment_id: None,
            window: TimeWindow::parse(hour(h), hour(h + len)).expect("valid"),
            location: None,
        })
        .collect();
    t.profile.service_areas = permute(&f.areas, perm ^ 5)
        .into_iter()
        .map(|z| postal_area(&[ZIPS[usize::from(z)]]))
        .collect();
    let mut o = org();
    o.service_areas = permute(&f.org_areas, perm ^ 6)
        .into_iter()
        .map(|z| postal_area(&[ZIPS[usize::from(z)]]))
        .collect();
    (t, o)
}

fn some_area() -> impl Strategy<Value = ServiceArea> {
    prop_oneof![
        (0usize..3).prop_map(|z| postal_area(&[ZIPS[z]])),
        (41.0f64..43.0, -89.0f64..-86.0, 1.0f64..50.0).prop_map(|(lat, lon, km)| {
            ServiceArea::new(
                AreaKind::Radius {
                    center: pt(lat, lon),
                    radius_km: RadiusKm::parse(km).expect("valid radius"),
                },
                vec![],
            )
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_verdict_does_not_depend_on_the_order_of_the_facts(
        f in facts(), p1 in any::<u64>(), p2 in any::<u64>(), start in 0u8..20,
    ) {
        let mut j = job();
        let from = utc("2031-06-02T05:00:00Z") + Duration::hours(i64::from(start));
        j.window = TimeWindow::parse(from, from + Duration::hours(2)).expect("valid");
        let (t1, o1) = build(&f, p1);
        let (t2, o2) = build(&f, p2);
        let a = serde_json::to_value(evaluate(&j, &t1, &o1)).expect("serializes");
        let b = serde_json::to_value(evaluate(&j, &t2, &o2)).expect("serializes");
        prop_assert_eq!(a, b);
    }

    #[test]
    fn adding_a_skill_never_makes_an_eligible_technician_ineligible(
        tr in 0usize..3, l in 1u8..=5, at in 0usize..2,
    ) {
        let mut t = tech(1);
        let skill = Skill { trade: trade(TRADES[tr]), level: level(l) };
        t.profile.skills.insert(at.min(t.profile.skills.len()), skill);
        prop_assert!(evaluate(&job(), &t, &org()).eligible);
    }

    #[test]
    fn adding_a_shift_span_never_makes_an_eligible_technician_ineligible(
        w in 0usize..7, start in 0u16..24, len in 1u16..10,
    ) {
        let mut t = tech(1);
        let end = (start + len).min(24);
        let mut spans = t.profile.shifts[0].spans().to_vec();
        spans.push(span(ALL_DAYS[w], &format!("{start:02}:00"), &format!("{end:02}:00")));
        // Only a span that does not overlap the others can be added at all.
        if let Ok(shifts) = WeeklyShifts::parse(t.profile.shifts[0].effective_from(), spans) {
            t.profile.shifts = vec![shifts];
            prop_assert!(evaluate(&job(), &t, &org()).eligible);
        }
    }

    #[test]
    fn adding_a_service_area_never_makes_an_eligible_technician_ineligible(
        area in some_area(), to_org in any::<bool>(), own in any::<bool>(),
    ) {
        let mut t = tech(1);
        if own {
            t.profile.service_areas = vec![postal_area(&["60601"])];
        }
        let mut o = org();
        prop_assert!(evaluate(&job(), &t, &o).eligible);
        // A technician with no areas of their own covers all the organization's; adding the
        // first one narrows that on purpose, so areas are added to a technician who has some.
        if to_org || !own {
            o.service_areas.push(area);
        } else {
            t.profile.service_areas.push(area);
        }
        prop_assert!(evaluate(&job(), &t, &o).eligible);
    }

    #[test]
    fn removing_the_only_matching_fact_makes_the_technician_ineligible(
        extra_trade in 1usize..3, extra_zip in 1usize..3, which in 0u8..4,
    ) {
        let mut t = tech(1);
        let mut o = org();
        // Non-matching facts alongside the matching ones.
        t.profile.skills.push(Skill { trade: trade(TRADES[extra_trade]), level: level(5) });
        t.profile.service_areas = vec![postal_area(&["60601"]), postal_area(&[ZIPS[extra_zip]])];
        o.service_areas = vec![postal_area(&["60601"]), postal_area(&[ZIPS[extra_zip]])];
        let mut spans = t.profile.shifts[0].spans().to_vec();
        spans.push(span(Weekday::Tue, "20:00", "22:00"));
        t.profile.shifts = vec![WeeklyShifts::parse(t.profile.shifts[0].effective_from(), spans)
            .expect("no overlaps")];
        prop_assert!(evaluate(&job(), &t, &o).eligible);
        let expected = match which {
            0 => {
                t.profile.skills.retain(|s| s.trade != trade("plumbing"));
                "TRADE_MISSING"
            }
            1 => {
                let spans: Vec<_> = t.profile.shifts[0]
                    .spans()
                    .iter()
                    .copied()
                    .filter(|s| s.weekday() != Weekday::Mon || s.start_minute() != 8 * 60)
                    .collect();
                t.profile.shifts = vec![WeeklyShifts::parse(
                    t.profile.shifts[0].effective_from(),
                    spans,
                )
                .expect("no overlaps")];
                "OUTSIDE_SHIFT"
            }
            2 => {
                t.profile.service_areas.remove(0);
                "OUTSIDE_TECHNICIAN_AREA"
            }
            _ => {
                o.service_areas.remove(0);
                "OUTSIDE_ORGANIZATION_AREA"
            }
        };
        let v = evaluate(&job(), &t, &o);
        prop_assert!(!v.eligible);
        prop_assert!(codes(&v).contains(&expected), "{:?}", codes(&v));
    }
}
