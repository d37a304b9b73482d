//! The Solomon benchmark layout: parsing, conversion into a [`Problem`], the VRPLIB solution
//! layout, and a port of the project's reference checker (`tools/vrptw_check.py`).
//!
//! Parsing is pure (from a `&str`): the caller reads the file.

use super::model::{Job, Objective, Problem, Solution, Technician, TimeWindow};
use super::travel::{Euclidean, Rounding};

/// One row of a Solomon instance (row 0 is the depot).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Customer {
    /// The customer number in the file.
    pub number: u32,
    /// X coordinate.
    pub x: f64,
    /// Y coordinate.
    pub y: f64,
    /// Demand.
    pub demand: u64,
    /// Ready time (window start).
    pub ready: f64,
    /// Due date (window end).
    pub due: f64,
    /// Service time.
    pub service: f64,
}

/// A parsed Solomon instance.
#[derive(Clone, Debug, PartialEq)]
pub struct Instance {
    /// The name on the first line.
    pub name: String,
    /// The number of vehicles available.
    pub vehicles: usize,
    /// The capacity of each vehicle.
    pub capacity: u64,
    /// The depot (first) and the customers, in file order.
    pub rows: Vec<Customer>,
}

/// Why a text is not a Solomon instance.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// No `NUMBER CAPACITY` header followed by two integers.
    #[error("no vehicle section (a NUMBER CAPACITY line followed by two integers)")]
    NoVehicles,
    /// No customer rows.
    #[error("no customer rows")]
    NoRows,
    /// Rows are not numbered 0, 1, 2, … in order.
    #[error("row {index} is numbered {number}; rows must be numbered 0, 1, 2, … in order")]
    Numbering {
        /// The row's position.
        index: usize,
        /// Its number.
        number: u32,
    },
    /// A window ends before it starts.
    #[error("customer {number} has a due date before its ready time")]
    Window {
        /// The customer number.
        number: u32,
    },
}

/// Parses the text layout: the vehicle section, then every line of seven integers is a row.
pub fn parse(text: &str) -> Result<Instance, ParseError> {
    let lines: Vec<&str> = text.lines().collect();
    let name = lines
        .iter()
        .map(|l| l.trim())
        .find(|l| !l.is_empty())
        .unwrap_or_default()
        .to_owned();
    let mut fleet = None;
    let mut rows = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim_start().starts_with("NUMBER") {
            let v: Vec<i64> = lines
                .get(i + 1)
                .map(|l| {
                    l.split_whitespace()
                        .filter_map(|x| x.parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            if let [n, c, ..] = v[..]
                && n > 0
                && c >= 0
            {
                fleet = Some((n as usize, c as u64));
            }
        }
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.len() == 7 {
            let nums: Option<Vec<i64>> = t.iter().map(|x| x.parse().ok()).collect();
            if let Some(v) = nums
                && v[0] >= 0
                && v[3] >= 0
            {
                rows.push(Customer {
                    number: v[0] as u32,
                    x: v[1] as f64,
                    y: v[2] as f64,
                    demand: v[3] as u64,
                    ready: v[4] as f64,
                    due: v[5] as f64,
                    service: v[6] as f64,
                });
            }
        }
    }
    let (vehicles, capacity) = fleet.ok_or(ParseError::NoVehicles)?;
    if rows.is_empty() {
        return Err(ParseError::NoRows);
    }
    for (index, r) in rows.iter().enumerate() {
        if r.number as usize != index {
            return Err(ParseError::Numbering {
                index,
                number: r.number,
            });
        }
        if r.due < r.ready {
            return Err(ParseError::Window { number: r.number });
        }
    }
    Ok(Instance {
        name,
        vehicles,
        capacity,
        rows,
    })
}

impl Instance {
    /// The instance as a routing problem: `vehicles` identical technicians based at the depot
    /// (location 0) with the depot's window as their shift, job `j` at location `j + 1` (customer
    /// number `j + 1`), travel time equal to distance.
    pub fn to_problem(&self, objective: Objective, rounding: Rounding) -> (Problem, Euclidean) {
        let depot = self.rows[0];
        let mut tech = Technician::new(0, 0, TimeWindow::new(depot.ready, depot.due));
        tech.capacity = Some(self.capacity);
        let jobs = self.rows[1..]
            .iter()
            .enumerate()
            .map(|(j, r)| {
                let mut job = Job::new(j + 1, TimeWindow::new(r.ready, r.due), r.service);
                job.demand = r.demand;
                job
            })
            .collect();
        let problem = Problem {
            technicians: vec![tech; self.vehicles],
            jobs,
            objective,
        };
        let points = self.rows.iter().map(|r| (r.x, r.y)).collect();
        (problem, Euclidean::new(points, rounding))
    }

    /// The routes of a solution of [`Instance::to_problem`] as customer numbers.
    pub fn routes(&self, solution: &Solution) -> Vec<Vec<u32>> {
        solution
            .routes
            .iter()
            .filter(|r| !r.visits.is_empty())
            .map(|r| {
                r.visits
                    .iter()
                    .map(|v| self.rows[v.job + 1].number)
                    .collect()
            })
            .collect()
    }

    /// Evaluates routes (customer numbers, depot omitted) by the rules of the project's
    /// reference checker: every customer once, no late arrival, no capacity excess.
    pub fn check(&self, routes: &[Vec<u32>], rounding: Rounding) -> Check {
        let rows = &self.rows;
        let dist = |a: &Customer, b: &Customer| rounding.apply((a.x - b.x).hypot(a.y - b.y));
        let mut errors = Vec::new();
        let mut seen: Vec<u32> = Vec::new();
        let mut total = 0.0;
        for r in routes {
            let (mut t, mut load, mut prev) = (0.0f64, 0u64, 0usize);
            for &c in r.iter().chain(std::iter::once(&0)) {
                let Some(row) = rows.get(c as usize) else {
                    errors.push(format!("unknown customer {c}"));
                    continue;
                };
                let d = dist(&rows[prev], row);
                total += d;
                let service = if prev != 0 { rows[prev].service } else { 0.0 };
                t = (t + service + d).max(row.ready);
                if t > row.due + 1e-9 {
                    errors.push(format!("late at {c}: {t:.3} > {}", row.due));
                }
                if c != 0 {
                    load += row.demand;
                }
                prev = c as usize;
            }
            if load > self.capacity {
                errors.push(format!("capacity {load} > {}", self.capacity));
            }
            seen.extend(r);
        }
        let mut sorted = seen.clone();
        sorted.sort_unstable();
        let n = rows.len() as u32 - 1;
        if sorted != (1..=n).collect::<Vec<_>>() {
            sorted.dedup();
            errors.push(format!(
                "visits mismatch: {} visits, {} unique of {n}",
                seen.len(),
                sorted.len()
            ));
        }
        Check {
            vehicles: routes.iter().filter(|r| !r.is_empty()).count(),
            distance: total,
            errors,
        }
    }
}

/// The result of [`Instance::check`].
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    /// Non-empty routes.
    pub vehicles: usize,
    /// Total distance under the rounding asked for.
    pub distance: f64,
    /// Every violation, as the reference checker words it.
    pub errors: Vec<String>,
}

/// The VRPLIB solution layout: `Route #1: 5 3 7` per route, then `Cost 828.94`.
pub fn vrplib(routes: &[Vec<u32>], cost: f64) -> String {
    let mut s = String::new();
    for (i, r) in routes.iter().enumerate() {
        let stops: Vec<String> = r.iter().map(|c| c.to_string()).collect();
        s.push_str(&format!("Route #{}: {}\n", i + 1, stops.join(" ")));
    }
    s.push_str(&format!("Cost {cost:.2}\n"));
    s
}
