//! Tests of the routing engine: every solution goes through the independent checker.

use proptest::prelude::*;

use super::rng::Rng;
use super::*;
use crate::text::TradeCode;

/// The first eleven rows of Solomon's C101.
const C101_SMALL: &str = "C101

VEHICLE
NUMBER     CAPACITY
  25         200

CUSTOMER
CUST NO.  XCOORD.   YCOORD.    DEMAND   READY TIME  DUE DATE   SERVICE   TIME

    0      40         50          0          0       1236          0
    1      45         68         10        912        967         90
    2      45         70         30        825        870         90
    3      42         66         10         65        146         90
    4      42         68         10        727        782         90
    5      42         65         10         15         67         90
    6      40         69         20        621        702         90
    7      40         66         20        170        225         90
    8      38         68         20        255        324         90
    9      38         70         10        534        605         90
   10      35         66         10        357        410         90
";

fn trade(s: &str) -> TradeCode {
    TradeCode::parse(s).expect("a valid trade code")
}

/// A random field-service day: skills, several windows, breaks, locks, forbids, capacities.
fn random_day(seed: u64) -> (Problem, DenseMatrix) {
    let mut rng = Rng::new(seed);
    let n_jobs = 3 + rng.below(10);
    let n_techs = 1 + rng.below(3);
    let n_loc = n_jobs + n_techs;
    let pts: Vec<(f64, f64)> = (0..n_loc)
        .map(|_| (rng.unit() * 60.0, rng.unit() * 60.0))
        .collect();
    let matrix = DenseMatrix::from_matrix(&Euclidean::new(pts, Rounding::Exact));
    let trades = [trade("plumbing"), trade("hvac")];
    let technicians = (0..n_techs)
        .map(|t| {
            let start = n_jobs + t;
            let end = if rng.unit() < 0.5 {
                start
            } else {
                rng.below(n_loc)
            };
            let mut tech =
                Technician::new(start, end, TimeWindow::new(0.0, 300.0 + rng.unit() * 200.0));
            tech.trades = vec![(trades[t % 2].clone(), 1 + rng.below(3) as u8)];
            if rng.unit() < 0.5 {
                tech.break_ = Some(Break {
                    window: TimeWindow::new(120.0, 180.0),
                    duration: 30.0,
                });
            }
            tech.capacity = (rng.unit() < 0.5).then(|| 10 + rng.below(20) as u64);
            tech.max_jobs = (rng.unit() < 0.3).then(|| 1 + rng.below(5));
            tech.cost_per_time = rng.unit();
            tech.fixed_cost = rng.unit() * 50.0;
            tech
        })
        .collect();
    let jobs = (0..n_jobs)
        .map(|j| {
            let a = rng.unit() * 300.0;
            let mut job = Job::new(
                j,
                TimeWindow::new(a, a + 20.0 + rng.unit() * 120.0),
                10.0 + rng.unit() * 30.0,
            );
            if rng.unit() < 0.3 {
                let b = job.windows[0].end + 10.0 + rng.unit() * 50.0;
                job.windows.push(TimeWindow::new(b, b + 40.0));
            }
            if rng.unit() < 0.5 {
                job.trade = Some((trades[rng.below(2)].clone(), 1 + rng.below(3) as u8));
            }
            job.demand = rng.below(8) as u64;
            job.priority = 1 + rng.below(3) as u32;
            if rng.unit() < 0.15 {
                job.locked_to = Some(rng.below(n_techs));
            } else if rng.unit() < 0.15 {
                job.forbidden = vec![rng.below(n_techs)];
            }
            job
        })
        .collect();
    let objective = if rng.unit() < 0.5 {
        Objective::Cost
    } else {
        Objective::VehiclesThenCost
    };
    (
        Problem {
            technicians,
            jobs,
            objective,
        },
        matrix,
    )
}

fn config(seed: u64) -> SolverConfig {
    SolverConfig {
        seed,
        ..SolverConfig::default()
    }
}

fn solve_iters(p: &Problem, m: &dyn TravelMatrix, seed: u64, iters: u64) -> Solution {
    solve(p, m, &config(seed), &mut Iterations::new(iters)).expect("a valid problem")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_days_are_feasible_and_complete(seed in any::<u64>()) {
        let (p, m) = random_day(seed);
        let s = solve_iters(&p, &m, seed, 60);
        prop_assert_eq!(check(&p, &m, &s), vec![]);
        for u in &s.unassigned {
            prop_assert!(!u.reasons.is_empty());
        }
        for r in &s.routes {
            for v in &r.visits {
                prop_assert!(v.slack >= -1e-9 && v.start >= v.arrival);
            }
        }
    }

    #[test]
    fn solving_is_deterministic_and_more_budget_never_hurts(seed in any::<u64>()) {
        let (p, m) = random_day(seed);
        let a = solve_iters(&p, &m, 7, 40);
        prop_assert_eq!(&a, &solve_iters(&p, &m, 7, 40));
        let mut last: Option<ObjectiveValue> = None;
        for limit in [10, 20, 40, 80] {
            let budget = &mut Iterations { limit, schedule: 80 };
            let s = solve(&p, &m, &config(3), budget).expect("a valid problem");
            let v = s.objective;
            if let Some(l) = last {
                let vehicles = |o: &ObjectiveValue| match p.objective {
                    Objective::VehiclesThenCost => o.vehicles,
                    Objective::Cost => 0,
                };
                let key = |o: &ObjectiveValue| (o.unassigned_weight, vehicles(o));
                prop_assert!(key(&v) < key(&l) || (key(&v) == key(&l) && v.cost <= l.cost + 1e-9),
                    "{v:?} after {l:?}");
            }
            last = Some(v);
        }
    }
}

#[test]
fn solomon_rows_parse_and_solve_to_a_checked_solution() {
    let inst = solomon::parse(C101_SMALL).expect("a Solomon instance");
    assert_eq!(
        (
            inst.name.as_str(),
            inst.vehicles,
            inst.capacity,
            inst.rows.len()
        ),
        ("C101", 25, 200, 11)
    );
    for rounding in [Rounding::Exact, Rounding::Dimacs] {
        let (p, m) = inst.to_problem(Objective::VehiclesThenCost, rounding);
        let s = solve_iters(&p, &m, 1, 300);
        assert_eq!(check(&p, &m, &s), vec![]);
        let routes = inst.routes(&s);
        let c = inst.check(&routes, rounding);
        assert_eq!(c.errors, Vec::<String>::new());
        assert_eq!(c.vehicles, s.objective.vehicles);
        assert!((c.distance - s.objective.distance).abs() < 1e-6);
        // Ten customers with these windows fit on two vehicles.
        assert!(s.objective.vehicles <= 2, "{:?}", s.objective);
    }
}

#[test]
fn the_solomon_checker_reports_what_the_reference_reports() {
    let inst = solomon::parse(C101_SMALL).expect("a Solomon instance");
    let c = inst.check(&[vec![1, 2, 3]], Rounding::Exact);
    assert_eq!(c.vehicles, 1);
    assert!(
        c.errors.iter().any(|e| e.starts_with("late at 3")),
        "{:?}",
        c.errors
    );
    assert!(
        c.errors
            .iter()
            .any(|e| e.starts_with("visits mismatch: 3 visits, 3 unique of 10"))
    );
    assert_eq!(
        solomon::vrplib(&[vec![5, 3], vec![7]], 828.936),
        "Route #1: 5 3\nRoute #2: 7\nCost 828.94\n"
    );
}

#[test]
fn malformed_solomon_text_is_refused() {
    assert_eq!(
        solomon::parse("C1\n 0 1 2 3 4 5 6\n"),
        Err(solomon::ParseError::NoVehicles)
    );
    let bad = C101_SMALL.replace("    2      45", "    7      45");
    assert!(matches!(
        solomon::parse(&bad),
        Err(solomon::ParseError::Numbering { index: 2, .. })
    ));
}

#[test]
fn unassigned_jobs_say_what_blocked_them() {
    let pts = vec![(0.0, 0.0), (10.0, 0.0), (0.0, 10.0), (500.0, 0.0)];
    let m = Euclidean::new(pts, Rounding::Exact);
    let mut tech = Technician::new(0, 0, TimeWindow::new(0.0, 100.0));
    tech.trades = vec![(trade("plumbing"), 2)];
    tech.capacity = Some(5);
    let mut skilled = Job::new(1, TimeWindow::new(0.0, 100.0), 5.0);
    skilled.trade = Some((trade("hvac"), 1));
    let too_far = Job::new(3, TimeWindow::new(0.0, 100.0), 5.0);
    let mut heavy = Job::new(2, TimeWindow::new(0.0, 100.0), 5.0);
    heavy.demand = 9;
    let fine = Job::new(1, TimeWindow::new(0.0, 100.0), 5.0);
    let p = Problem {
        technicians: vec![tech],
        jobs: vec![skilled, too_far, heavy, fine],
        objective: Objective::Cost,
    };
    let s = solve_iters(&p, &m, 1, 20);
    assert_eq!(check(&p, &m, &s), vec![]);
    let reasons: Vec<(usize, Vec<Blocker>)> = s
        .unassigned
        .iter()
        .map(|u| (u.job, u.reasons.clone()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (0, vec![Blocker::NoEligibleTechnician, Blocker::Skill]),
            (1, vec![Blocker::TimeWindow]),
            (2, vec![Blocker::Capacity]),
        ]
    );
    let cheapest = s.unassigned[2]
        .cheapest_infeasible
        .as_ref()
        .expect("an eligible technician");
    assert_eq!(
        (cheapest.technician, cheapest.blockers.clone()),
        (0, vec![Blocker::Capacity])
    );
    assert_eq!(s.routes.len(), 1);
    assert_eq!(s.routes[0].visits[0].job, 3);
    let v = &s.routes[0].visits[0];
    assert_eq!(
        (v.arrival, v.start, v.latest_start, v.slack),
        (10.0, 10.0, 85.0, 75.0)
    );
}

#[test]
fn priorities_decide_who_is_left_out_and_locks_hold() {
    // One technician, two jobs at the same place and time: only one fits.
    let m = Euclidean::new(vec![(0.0, 0.0), (3.0, 4.0)], Rounding::Exact);
    let tech = Technician::new(0, 0, TimeWindow::new(0.0, 100.0));
    let mut low = Job::new(1, TimeWindow::new(10.0, 10.0), 30.0);
    low.priority = 1;
    let mut high = low.clone();
    high.priority = 5;
    let p = Problem {
        technicians: vec![tech.clone(), tech],
        jobs: vec![low.clone(), high.clone()],
        objective: Objective::Cost,
    };
    // With two technicians both fit, unless both are locked to the first.
    let s = solve_iters(&p, &m, 1, 20);
    assert_eq!(s.objective.unassigned, 0);
    let mut locked = p.clone();
    for j in &mut locked.jobs {
        j.locked_to = Some(0);
    }
    let s = solve_iters(&locked, &m, 1, 20);
    assert_eq!(check(&locked, &m, &s), vec![]);
    assert_eq!(s.unassigned.len(), 1);
    assert_eq!(s.unassigned[0].job, 0, "the low priority is left out");
    assert_eq!(s.unassigned[0].reasons, vec![Blocker::TimeWindow]);
}

#[test]
fn the_checker_catches_a_broken_solution() {
    let inst = solomon::parse(C101_SMALL).expect("a Solomon instance");
    let (p, m) = inst.to_problem(Objective::Cost, Rounding::Exact);
    let mut s = solve_iters(&p, &m, 1, 50);
    assert_eq!(check(&p, &m, &s), vec![]);
    let v = &mut s.routes[0].visits[0];
    v.start = -5.0;
    let job = v.job;
    let dropped = s.routes[0].visits.pop().expect("a visit").job;
    let found = check(&p, &m, &s);
    assert!(found.contains(&Violation::TooEarly { job }), "{found:?}");
    assert!(
        found.contains(&Violation::Missing { job: dropped }),
        "{found:?}"
    );
}

#[test]
fn travel_matrices() {
    assert_eq!(Rounding::Dimacs.apply(18.6815), 18.6);
    let e = Euclidean::new(vec![(0.0, 0.0), (1.0, 1.0)], Rounding::Dimacs);
    assert_eq!((e.distance(0, 1), e.time(1, 0)), (1.4, 1.4));
    // Paris to London: about 344 km as the crow flies.
    let h = Haversine::new(vec![(48.8566, 2.3522), (51.5074, -0.1278)], 1.3, 1000.0);
    let d = h.distance(0, 1);
    assert!((d / 1.3 - 343_500.0).abs() < 2_000.0, "{d}");
    assert!((h.time(0, 1) - d / 1000.0).abs() < 1e-9);
    let dense = DenseMatrix::from_matrix(&h);
    assert_eq!(dense.distance(1, 0), h.distance(1, 0));
}

#[test]
fn invalid_problems_are_refused() {
    let m = Euclidean::new(vec![(0.0, 0.0)], Rounding::Exact);
    let tech = Technician::new(0, 0, TimeWindow::new(0.0, 10.0));
    let mut p = Problem {
        technicians: vec![tech],
        jobs: vec![Job::new(3, TimeWindow::new(0.0, 1.0), 1.0)],
        objective: Objective::Cost,
    };
    let budget = &mut Iterations::new(1);
    assert!(matches!(
        solve(&p, &m, &config(1), budget),
        Err(RoutingError::UnknownLocation { .. })
    ));
    p.jobs[0].location = 0;
    p.jobs[0].windows = vec![TimeWindow::new(5.0, 1.0)];
    assert_eq!(
        solve(&p, &m, &config(1), budget),
        Err(RoutingError::InvalidWindows { job: 0 })
    );
}

/// Random days the property tests once caught: a route accepted by the insertion checks that
/// broke its technician's break rules (returned as infeasible), and a larger budget returning
/// more unassigned jobs than a smaller one.
#[test]
fn regressions_found_by_the_property_tests() {
    let (p, m) = random_day(5_036_026_417_224_051_609);
    let s = solve_iters(&p, &m, 5_036_026_417_224_051_609, 60);
    assert_eq!(check(&p, &m, &s), vec![]);

    let (p, m) = random_day(1_086_537_562_092_178_763);
    let mut last: Option<ObjectiveValue> = None;
    for limit in [10, 20, 40, 80] {
        let budget = &mut Iterations {
            limit,
            schedule: 80,
        };
        let s = solve(&p, &m, &config(3), budget).expect("a valid problem");
        assert_eq!(check(&p, &m, &s), vec![]);
        if let Some(l) = last {
            assert!(
                s.objective.unassigned_weight <= l.unassigned_weight,
                "{:?} after {l:?}",
                s.objective
            );
        }
        last = Some(s.objective);
    }
}

/// Three places on a line, 10 apart: the depot (0), A (1) and B (2), with B 10 from A.
fn line() -> DenseMatrix {
    let d = [0.0, 10.0, 20.0, 10.0, 0.0, 10.0, 20.0, 10.0, 0.0];
    DenseMatrix::new(3, d.to_vec(), d.to_vec()).expect("a 3×3 matrix")
}

/// One technician at the depot, working 0–1000, with a 60-minute break in `window`.
fn with_break(window: TimeWindow) -> Technician {
    let mut tech = Technician::new(0, 0, TimeWindow::new(0.0, 1_000.0));
    tech.break_ = Some(Break {
        window,
        duration: 60.0,
    });
    tech
}

/// The break may open as the day starts and still be taken after an early visit. The old
/// simulation took a break as soon as its window was open, made the visit late and left it
/// out.
#[test]
fn a_break_can_wait_until_after_an_early_visit() {
    let problem = Problem {
        technicians: vec![with_break(TimeWindow::new(0.0, 300.0))],
        jobs: vec![Job::new(1, TimeWindow::new(0.0, 20.0), 10.0)],
        objective: Objective::Cost,
    };
    let m = line();
    let solution = solve_iters(&problem, &m, 1, 200);
    assert!(check(&problem, &m, &solution).is_empty());
    assert!(solution.unassigned.is_empty(), "{:?}", solution.unassigned);
    let route = &solution.routes[0];
    assert_eq!(route.visits[0].start, 10.0);
    assert_eq!(route.break_taken, Some((1, 20.0)), "after the visit");
}

/// Slack is how late a visit can start with the rest of the day, break included, still
/// feasible. Here the break (60 minutes, to start by 90) fits only after A or after B: A can
/// start at most at 60, not at 100 as the windows alone would allow (the old report: 90 of
/// slack instead of 50).
#[test]
fn slack_counts_where_the_break_can_still_go() {
    let problem = Problem {
        technicians: vec![with_break(TimeWindow::new(50.0, 90.0))],
        jobs: vec![
            Job::new(1, TimeWindow::new(0.0, 100.0), 10.0),
            Job::new(2, TimeWindow::new(0.0, 130.0), 10.0),
        ],
        objective: Objective::Cost,
    };
    let m = line();
    let solution = solve_iters(&problem, &m, 1, 200);
    assert!(check(&problem, &m, &solution).is_empty());
    let route = &solution.routes[0];
    let order: Vec<usize> = route.visits.iter().map(|v| v.job).collect();
    assert_eq!(order, [0, 1]);
    assert_eq!(route.visits[0].start, 10.0);
    assert!(
        (route.visits[0].latest_start - 60.0).abs() < 1e-6,
        "{route:?}"
    );
    assert!((route.visits[0].slack - 50.0).abs() < 1e-6);
    // B can start as late as its window allows: the break then goes between A and B.
    assert!(
        (route.visits[1].latest_start - 130.0).abs() < 1e-6,
        "{route:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Every reported slack is true: starting the visit that much later keeps the checked day
    /// feasible, and a little more than that does not (unless its window ends first).
    #[test]
    fn reported_slack_is_true(seed in any::<u64>()) {
        let (problem, m) = random_day(seed);
        let solution = solve_iters(&problem, &m, seed, 300);
        prop_assert!(check(&problem, &m, &solution).is_empty());
        for route in &solution.routes {
            for (k, v) in route.visits.iter().enumerate() {
                prop_assert!(v.slack >= -1e-9);
                prop_assert!(delayed_day_is_feasible(&problem, &m, route, k, v.latest_start));
                let window_end = problem.jobs[v.job].windows.iter().map(|w| w.end).fold(f64::MIN, f64::max);
                if v.latest_start + 1e-3 < window_end {
                    prop_assert!(!delayed_day_is_feasible(&problem, &m, route, k, v.latest_start + 1e-3));
                }
            }
        }
    }
}

/// Whether `route` stays feasible with visit `k` starting no earlier than `at`, the break
/// placed anywhere (every position tried at its earliest), by a plain re-simulation.
fn delayed_day_is_feasible(
    problem: &Problem,
    m: &dyn TravelMatrix,
    route: &Route,
    k: usize,
    at: f64,
) -> bool {
    let tech = &problem.technicians[route.technician];
    let positions: Vec<Option<usize>> = match tech.break_ {
        None => vec![None],
        Some(_) => (0..=route.visits.len()).map(Some).collect(),
    };
    positions.into_iter().any(|p| {
        let mut now = tech.shift.start;
        let mut here = tech.start;
        let take = |now: &mut f64, i: usize| -> bool {
            match (tech.break_, p) {
                (Some(b), Some(p)) if p == i => {
                    let bs = now.max(b.window.start);
                    *now = bs + b.duration;
                    bs <= b.window.end
                }
                _ => true,
            }
        };
        for (i, v) in route.visits.iter().enumerate() {
            if !take(&mut now, i) {
                return false;
            }
            let job = &problem.jobs[v.job];
            let mut a = now + m.time(here, job.location);
            if i == k {
                a = a.max(at);
            }
            let Some(w) = job.windows.iter().find(|w| a <= w.end + 1e-9) else {
                return false;
            };
            now = a.max(w.start) + job.duration;
            here = job.location;
        }
        take(&mut now, route.visits.len()) && now + m.time(here, tech.end) <= tech.shift.end + 1e-9
    })
}
