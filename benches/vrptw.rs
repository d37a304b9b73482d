//! The route optimizer on the Solomon VRPTW instances (and, with `--gh`, the six
//! Gehring–Homberger 200-customer ones), one thread, a time budget per instance.
//!
//! The instances are in `benches/data/vrptw/`. Each solution is verified by
//! `hestami_core::dispatch::routing::solomon`'s checker (also `hestami route check`) and by the
//! engine's own independent checker, then
//! compared with the best-known value under the same convention: `dimacs` (distances truncated
//! to one decimal, distance only) against `bks_distance_only.csv`, `exact` (fewest vehicles,
//! then exact distance) against `bks_hierarchical.csv`.
//!
//! `cargo bench --bench vrptw -- [--seconds S] [--mode dimacs|exact|both] [--seed N]
//!  [--only C101,R101] [--gh] [--csv PATH] [--sol-dir DIR]`
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hestami::core::dispatch::routing::{
    Budget, Objective, Rounding, SolverConfig, check, solomon, solve,
};

/// A wall-clock budget: the bench may read the clock, the engine may not.
struct Deadline {
    start: Instant,
    total: Duration,
}

impl Budget for Deadline {
    fn progress(&mut self, _iterations: u64) -> Option<f64> {
        let p = self.start.elapsed().as_secs_f64() / self.total.as_secs_f64();
        (p < 1.0).then_some(p)
    }
}

struct Args {
    seconds: f64,
    modes: Vec<Rounding>,
    seed: u64,
    only: Option<Vec<String>>,
    gh: bool,
    csv: PathBuf,
    sol_dir: Option<PathBuf>,
}

fn args() -> Args {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut a = Args {
        seconds: 1.0,
        modes: vec![Rounding::Dimacs, Rounding::Exact],
        seed: 1,
        only: None,
        gh: false,
        csv: root.join("benches/vrptw-results.csv"),
        sol_dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--seconds" => a.seconds = it.next().unwrap().parse().unwrap(),
            "--seed" => a.seed = it.next().unwrap().parse().unwrap(),
            "--mode" => {
                a.modes = match it.next().unwrap().as_str() {
                    "dimacs" => vec![Rounding::Dimacs],
                    "exact" => vec![Rounding::Exact],
                    _ => vec![Rounding::Dimacs, Rounding::Exact],
                }
            }
            "--only" => a.only = Some(it.next().unwrap().split(',').map(str::to_owned).collect()),
            "--gh" => a.gh = true,
            "--csv" => a.csv = it.next().unwrap().into(),
            "--sol-dir" => a.sol_dir = Some(it.next().unwrap().into()),
            _ => {} // `cargo bench` adds `--bench`.
        }
    }
    a
}

/// `instance -> (vehicles, distance)` from a best-known CSV; `dimacs` picks the rows of that
/// convention from a file holding both.
fn bks(path: &Path, dimacs: Option<bool>) -> HashMap<String, (usize, f64)> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| dimacs.is_none_or(|d| l.contains("DIMACS") == d))
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].to_owned(),
                (f[1].parse().unwrap(), f[2].parse().unwrap()),
            )
        })
        .collect()
}

fn main() {
    let a = args();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/data/vrptw");
    let sol = data.join("solomon");
    let gh = data.join("gehring-homberger");
    let mut sets = vec![(
        sol.clone(),
        bks(&sol.join("bks_distance_only.csv"), None),
        bks(&sol.join("bks_hierarchical.csv"), None),
    )];
    if a.gh {
        let f = gh.join("bks.csv");
        sets.push((gh.clone(), bks(&f, Some(true)), bks(&f, Some(false))));
    }
    let mut csv = String::from(
        "instance,mode,seconds,seed,vehicles,distance,bks_vehicles,bks_distance,gap_percent,\
         iterations,elapsed_s,feasible\n",
    );
    println!(
        "{:<9} {:<6} {:>4} {:>4} {:>10} {:>10} {:>7} {:>9} {:>4}",
        "instance", "mode", "veh", "bks", "distance", "bks", "gap%", "iters", "ok"
    );
    let mut summary: HashMap<&str, Vec<(f64, bool, bool)>> = HashMap::new();
    for (dir, bks_dimacs, bks_exact) in &sets {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "txt"))
            .collect();
        files.sort();
        for file in files {
            let name = file.file_stem().unwrap().to_string_lossy().into_owned();
            if a.only.as_ref().is_some_and(|o| !o.contains(&name)) {
                continue;
            }
            let inst = solomon::parse(&std::fs::read_to_string(&file).unwrap()).unwrap();
            for &mode in &a.modes {
                let (label, objective, table) = match mode {
                    Rounding::Dimacs => ("dimacs", Objective::Cost, bks_dimacs),
                    Rounding::Exact => ("exact", Objective::VehiclesThenCost, bks_exact),
                };
                let (problem, travel) = inst.to_problem(objective, mode);
                let config = SolverConfig {
                    seed: a.seed,
                    ..SolverConfig::default()
                };
                let start = Instant::now();
                let mut budget = Deadline {
                    start,
                    total: Duration::from_secs_f64(a.seconds),
                };
                let s = solve(&problem, &travel, &config, &mut budget).unwrap();
                let elapsed = start.elapsed().as_secs_f64();
                let routes = inst.routes(&s);
                let verdict = inst.check(&routes, mode);
                let own = check(&problem, &travel, &s);
                let ok = verdict.errors.is_empty() && own.is_empty();
                if !ok {
                    eprintln!("{name} {label}: {:?} {own:?}", verdict.errors);
                }
                if let Some(dir) = &a.sol_dir {
                    std::fs::create_dir_all(dir).unwrap();
                    let text = solomon::vrplib(&routes, verdict.distance);
                    std::fs::write(dir.join(format!("{name}-{label}.sol")), text).unwrap();
                }
                let (bv, bd) = table.get(&name).copied().unwrap_or((0, f64::NAN));
                let gap = 100.0 * (verdict.distance - bd) / bd;
                println!(
                    "{name:<9} {label:<6} {:>4} {bv:>4} {:>10.2} {bd:>10.2} {gap:>7.2} {:>9} {:>4}",
                    verdict.vehicles,
                    verdict.distance,
                    s.iterations,
                    if ok { "yes" } else { "NO" }
                );
                writeln!(
                    csv,
                    "{name},{label},{},{},{},{:.4},{bv},{bd},{gap:.4},{},{elapsed:.3},{ok}",
                    a.seconds, a.seed, verdict.vehicles, verdict.distance, s.iterations
                )
                .unwrap();
                if inst.rows.len() == 101 {
                    summary
                        .entry(label)
                        .or_default()
                        .push((gap, verdict.vehicles == bv, ok));
                }
            }
        }
    }
    std::fs::write(&a.csv, csv).unwrap();
    for (label, rows) in &summary {
        let n = rows.len() as f64;
        let mean = rows.iter().map(|r| r.0).sum::<f64>() / n;
        let mut gaps: Vec<f64> = rows.iter().map(|r| r.0).collect();
        gaps.sort_by(f64::total_cmp);
        let same_veh: Vec<f64> = rows.iter().filter(|r| r.1).map(|r| r.0).collect();
        println!(
            "summary {label}: {} Solomon instances, mean gap {mean:.2}%, median {:.2}%, max {:.2}%, \
             vehicles equal to best-known on {}, feasible {}; mean gap where vehicles equal {:.2}%",
            rows.len(),
            gaps[gaps.len() / 2],
            gaps[gaps.len() - 1],
            same_veh.len(),
            rows.iter().filter(|r| r.2).count(),
            same_veh.iter().sum::<f64>() / same_veh.len().max(1) as f64,
        );
    }
    println!("csv: {}", a.csv.display());
}
