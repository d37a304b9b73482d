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
