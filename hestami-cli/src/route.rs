//! `hestami route`: solve a routing instance file with the core optimizer and print the
//! solution in the VRPLIB layout, so any independent checker can verify it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hestami_core::dispatch::routing::{Budget, Objective, Rounding, SolverConfig, solomon, solve};

/// The `route` subcommands.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum RouteCommand {
    /// Solve an instance file and print `Route #i: …` lines and the cost.
    Solve {
        /// The instance file.
        file: PathBuf,
        /// The file's layout.
        #[arg(long, value_enum, default_value_t = Format::Solomon)]
        format: Format,
        /// The time budget, in seconds (one thread).
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// The random seed; the same seed and budget give the same search.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// What to minimise after leaving no customer out.
        #[arg(long, value_enum, default_value_t = ObjectiveArg::VehiclesThenDistance)]
        objective: ObjectiveArg,
        /// How arc lengths are rounded: exact, or DIMACS (truncated to one decimal).
        #[arg(long, value_enum, default_value_t = RoundingArg::Exact)]
        rounding: RoundingArg,
    },
    /// Check a solution (VRPLIB layout, `Route #i: …` lines) against a Solomon instance under
    /// both conventions: every customer once, no late arrival, no capacity excess. Prints
    /// `dimacs: vehicles=… distance=… errors=[…]` and the same for `exact`; fails on any error.
    Check {
        /// The instance file (Solomon layout).
        instance: PathBuf,
        /// The solution file.
        solution: PathBuf,
    },
}

/// Instance file layouts.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub(crate) enum Format {
    /// Solomon's VRPTW text layout.
    Solomon,
}

/// The objective on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub(crate) enum ObjectiveArg {
    /// Fewest vehicles, then distance.
    VehiclesThenDistance,
    /// Distance only.
    Distance,
}

/// The rounding on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub(crate) enum RoundingArg {
    /// Exact Euclidean distances.
    Exact,
    /// floor(10 d) / 10.
    Dimacs,
}

/// A wall-clock deadline for the engine, which never reads the clock itself.
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

/// Runs a `route` subcommand.
pub(crate) fn run(cmd: RouteCommand) -> Result<()> {
    match cmd {
        RouteCommand::Check { instance, solution } => {
            let text = std::fs::read_to_string(&instance)
                .with_context(|| format!("reading {}", instance.display()))?;
            let parsed = solomon::parse(&text)
                .with_context(|| format!("parsing {} as a Solomon instance", instance.display()))?;
            let routes = read_routes(
                &std::fs::read_to_string(&solution)
                    .with_context(|| format!("reading {}", solution.display()))?,
            )?;
            let mut failed = false;
            for (name, rounding) in [("dimacs", Rounding::Dimacs), ("exact", Rounding::Exact)] {
                let verdict = parsed.check(&routes, rounding);
                println!(
                    "{name}: vehicles={} distance={:.4} errors={:?}",
                    verdict.vehicles, verdict.distance, verdict.errors
                );
                failed |= !verdict.errors.is_empty();
            }
            if failed {
                bail!("the solution breaks the instance's rules");
            }
            Ok(())
        }
        RouteCommand::Solve {
            file,
            format: Format::Solomon,
            seconds,
            seed,
            objective,
            rounding,
        } => {
            if !(seconds.is_finite() && seconds > 0.0) {
                bail!("--seconds must be a positive number");
            }
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let instance = solomon::parse(&text)
                .with_context(|| format!("parsing {} as a Solomon instance", file.display()))?;
            let objective = match objective {
                ObjectiveArg::VehiclesThenDistance => Objective::VehiclesThenCost,
                ObjectiveArg::Distance => Objective::Cost,
            };
            let rounding = match rounding {
                RoundingArg::Exact => Rounding::Exact,
                RoundingArg::Dimacs => Rounding::Dimacs,
            };
            let (problem, travel) = instance.to_problem(objective, rounding);
            let config = SolverConfig {
                seed,
                ..SolverConfig::default()
            };
            let mut budget = Deadline {
                start: Instant::now(),
                total: Duration::from_secs_f64(seconds),
            };
            let solution = solve(&problem, &travel, &config, &mut budget)?;
            let routes = instance.routes(&solution);
            let verdict = instance.check(&routes, rounding);
            print!("{}", solomon::vrplib(&routes, verdict.distance));
            if !solution.unassigned.is_empty() || !verdict.errors.is_empty() {
                bail!(
                    "the solution is incomplete or infeasible: {} unassigned; {}",
                    solution.unassigned.len(),
                    verdict.errors.join("; ")
                );
            }
            Ok(())
        }
    }
}

/// The routes of a VRPLIB solution: each `Route #i: a b c` line's customer numbers; other lines
/// (`Cost …`) are skipped.
fn read_routes(text: &str) -> Result<Vec<Vec<u32>>> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("Route #"))
        .map(|rest| {
            let (_, customers) = rest
                .split_once(':')
                .with_context(|| format!("no ':' in route line {rest:?}"))?;
            customers
                .split_whitespace()
                .map(|c| {
                    c.parse::<u32>()
                        .with_context(|| format!("{c:?} is not a customer number"))
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn vrplib_routes_are_read_and_other_lines_skipped() {
        let routes = super::read_routes("Route #1: 5 3 7\nRoute #2: 1\nCost 828.94\n").unwrap();
        assert_eq!(routes, vec![vec![5, 3, 7], vec![1]]);
        assert!(super::read_routes("Route #1: 5 x\n").is_err());
        assert!(super::read_routes("Route #1 5\n").is_err());
    }
}
