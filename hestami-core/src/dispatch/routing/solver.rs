//! The search: slack induction by string removals (SISR, Christiaens & Vanden Berghe 2020).
//!
//! Each iteration removes a few strings of consecutive visits from routes near a random seed
//! visit (the "ruin"), then reinserts the removed jobs one by one at their cheapest feasible
//! position, skipping positions at random ("blinks", the recreate). Simulated annealing decides
//! whether to keep the result. When the objective ranks technicians used, a first share of the
//! budget runs SISR's fleet minimisation: a route is dissolved, and the search keeps any result
//! that leaves fewer jobs out or leaves out jobs that have been out less often (absence
//! counters), until every job is back in; then the next route goes.
//!
//! A route keeps, per position, the earliest departure and the latest feasible arrival, so
//! inserting a job between two visits is checked in O(1) (forward and backward slack). A
//! technician with a break is evaluated by simulating the route, since where the break falls
//! depends on the whole day.

use std::collections::BTreeSet;

use super::model::{
    Blocker, Break, InfeasibleInsertion, Insertion, Objective, ObjectiveValue, Problem, Route,
    RoutingError, Solution, Unassigned, Visit,
};
use super::rng::Rng;
use super::travel::TravelMatrix;

/// How long to search, supplied by the caller: core never reads the clock.
pub trait Budget {
    /// How far through the planned search the solver is after `iterations` iterations, from 0
    /// at the start to 1 at the planned end (the annealing schedule follows it); `None` once the
    /// budget is spent.
    fn progress(&mut self, iterations: u64) -> Option<f64>;
}

impl<F: FnMut(u64) -> Option<f64>> Budget for F {
    fn progress(&mut self, iterations: u64) -> Option<f64> {
        self(iterations)
    }
}

/// A budget of iterations. The schedule (what progress an iteration count means) is separate
/// from the limit, so a run with a larger limit and the same schedule repeats a shorter run's
/// iterations exactly and then continues: more budget never gives a worse answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Iterations {
    /// Stop after this many iterations.
    pub limit: u64,
    /// The iteration count at which the schedule ends.
    pub schedule: u64,
}

impl Iterations {
    /// `limit` iterations with a schedule of the same length.
    pub fn new(limit: u64) -> Self {
        Self {
            limit,
            schedule: limit,
        }
    }
}

impl Budget for Iterations {
    fn progress(&mut self, iterations: u64) -> Option<f64> {
        (iterations < self.limit).then(|| iterations as f64 / self.schedule.max(1) as f64)
    }
}

/// The search's parameters; the defaults are SISR's published ones.
#[derive(Clone, Debug, PartialEq)]
pub struct SolverConfig {
    /// The seed of the random generator.
    pub seed: u64,
    /// The average number of jobs removed per iteration (c̄).
    pub average_removed: f64,
    /// The longest string removed from one route (L_max).
    pub max_string: f64,
    /// The probability of a split string (a string with a kept gap) instead of a plain one.
    pub split_rate: f64,
    /// The probability that a kept gap in a split string grows by one more visit.
    pub split_growth: f64,
    /// The probability of skipping a position when inserting.
    pub blink_rate: f64,
    /// The annealing temperature at the start, in cost units.
    pub initial_temperature: f64,
    /// The annealing temperature at the end.
    pub final_temperature: f64,
    /// The share of the budget spent on fleet minimisation when the objective ranks technicians.
    pub fleet_share: f64,
}

impl Default for SolverConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            average_removed: 10.0,
            max_string: 10.0,
            split_rate: 0.5,
            split_growth: 0.5,
            blink_rate: 0.01,
            initial_temperature: 100.0,
            final_temperature: 1.0,
            fleet_share: 0.4,
        }
    }
}

const NONE: u32 = u32::MAX;

/// The problem read into flat tables.
struct Inst {
    n: usize,
    k: usize,
    nl: usize,
    dist: Vec<f64>,
    time: Vec<f64>,
    loc: Vec<usize>,
    svc: Vec<f64>,
    dem: Vec<u64>,
    win: Vec<Vec<(f64, f64)>>,
    last_end: Vec<f64>,
    prio: Vec<u64>,
    far: Vec<f64>,
    ts: Vec<usize>,
    te: Vec<usize>,
    shift: Vec<(f64, f64)>,
    cap: Vec<u64>,
    maxj: Vec<usize>,
    cpd: Vec<f64>,
    cpt: Vec<f64>,
    fixed: Vec<f64>,
    brk: Vec<Option<Break>>,
    /// Per job: the technician it is with now and the cost of moving it.
    stay: Vec<Option<(usize, f64)>>,
    /// `elig[j * k + t]`: job j may go to technician t (trade, level, lock, forbid).
    elig: Vec<bool>,
    nbr: Vec<Vec<u32>>,
    veh_weight: f64,
    minimise_vehicles: bool,
}

impl Inst {
    #[inline]
    fn d(&self, a: usize, b: usize) -> f64 {
        self.dist[a * self.nl + b]
    }
    #[inline]
    fn t(&self, a: usize, b: usize) -> f64 {
        self.time[a * self.nl + b]
    }
    /// The start of work for an arrival at `a`: the first window not yet closed.
    #[inline]
    fn start(&self, j: usize, a: f64) -> Option<f64> {
        self.win[j]
            .iter()
            .find(|w| a <= w.1)
            .map(|w| if a < w.0 { w.0 } else { a })
    }
    /// The latest arrival whose start is no later than `x`.
    #[inline]
    fn latest_arrival(&self, j: usize, x: f64) -> f64 {
        let mut best = f64::NEG_INFINITY;
        for &(s, e) in &self.win[j] {
            if s <= x {
                best = if e < x { e } else { x };
            } else {
                break;
            }
        }
        best
    }
    fn eligible(&self, j: usize, t: usize) -> bool {
        self.elig[j * self.k + t]
    }
    /// The cost of job `j` going to technician `t` rather than where it is now.
    #[inline]
    fn moved(&self, j: usize, t: usize) -> f64 {
        match self.stay[j] {
            Some((with, cost)) if with != t => cost,
            _ => 0.0,
        }
    }
}

fn invalid(what: String) -> RoutingError {
    RoutingError::InvalidNumber { what }
}

fn build(problem: &Problem, travel: &dyn TravelMatrix) -> Result<Inst, RoutingError> {
    let nl = travel.len();
    let n = problem.jobs.len();
    let k = problem.technicians.len();
    let check_loc = |what: String, location: usize| {
        if location < nl {
            Ok(())
        } else {
            Err(RoutingError::UnknownLocation {
                what,
                location,
                size: nl,
            })
        }
    };
    let ok = |x: f64| x.is_finite() && x >= 0.0;
    let mut dist = Vec::with_capacity(nl * nl);
    let mut time = Vec::with_capacity(nl * nl);
    for a in 0..nl {
        for b in 0..nl {
            let (d, t) = (travel.distance(a, b), travel.time(a, b));
            if !ok(d) || !ok(t) {
                return Err(invalid(format!("travel from {a} to {b}")));
            }
            dist.push(d);
            time.push(t);
        }
    }
    for (i, t) in problem.technicians.iter().enumerate() {
        check_loc(format!("technician {i}"), t.start)?;
        check_loc(format!("technician {i}"), t.end)?;
        let nums = [
            t.cost_per_distance,
            t.cost_per_time,
            t.fixed_cost,
            t.break_.map_or(0.0, |b| b.duration),
        ];
        if !nums.iter().all(|&x| ok(x))
            || !t.shift.start.is_finite()
            || !t.shift.end.is_finite()
            || t.shift.start > t.shift.end
        {
            return Err(invalid(format!("a number of technician {i}")));
        }
    }
    let mut win = Vec::with_capacity(n);
    for (j, job) in problem.jobs.iter().enumerate() {
        check_loc(format!("job {j}"), job.location)?;
        if !ok(job.duration) {
            return Err(invalid(format!("the duration of job {j}")));
        }
        let w: Vec<(f64, f64)> = job.windows.iter().map(|w| (w.start, w.end)).collect();
        let sorted = w.windows(2).all(|p| p[0].1 < p[1].0);
        if w.is_empty()
            || !sorted
            || w.iter()
                .any(|&(s, e)| !(s.is_finite() && e.is_finite() && s <= e))
        {
            return Err(RoutingError::InvalidWindows { job: j });
        }
        if let Some((_, cost)) = job.stay_with
            && !ok(cost)
        {
            return Err(invalid(format!("the move cost of job {j}")));
        }
        for &t in job
            .locked_to
            .iter()
            .chain(&job.forbidden)
            .chain(job.stay_with.as_ref().map(|(t, _)| t))
        {
            if t >= k {
                return Err(RoutingError::UnknownTechnician {
                    job: j,
                    technician: t,
                });
            }
        }
        win.push(w);
    }
    let techs = &problem.technicians;
    let jobs = &problem.jobs;
    let mut elig = Vec::with_capacity(n * k);
    for job in jobs {
        for (t, tech) in techs.iter().enumerate() {
            elig.push(tech_blockers(job, t, tech).is_empty());
        }
    }
    let loc: Vec<usize> = jobs.iter().map(|j| j.location).collect();
    let dd = |a: usize, b: usize| dist[a * nl + b];
    let far = loc
        .iter()
        .map(|&l| techs.first().map_or(0.0, |t| dd(t.start, l)))
        .collect();
    let mut nbr = Vec::with_capacity(n);
    for a in 0..n {
        let mut v: Vec<u32> = (0..n as u32).filter(|&b| b as usize != a).collect();
        v.sort_by(|&x, &y| dd(loc[a], loc[x as usize]).total_cmp(&dd(loc[a], loc[y as usize])));
        nbr.push(v);
    }
    let max_d = dist.iter().copied().fold(0.0, f64::max);
    let max_t = time.iter().copied().fold(0.0, f64::max);
    let max_s = jobs.iter().map(|j| j.duration).fold(0.0, f64::max);
    let max_cpd = techs
        .iter()
        .map(|t| t.cost_per_distance)
        .fold(0.0, f64::max);
    let max_cpt = techs.iter().map(|t| t.cost_per_time).fold(0.0, f64::max);
    let max_fixed = techs.iter().map(|t| t.fixed_cost).fold(0.0, f64::max);
    let last_end = win.iter().map(|w| w.last().map_or(0.0, |x| x.1)).collect();
    Ok(Inst {
        n,
        k,
        nl,
        dist,
        time,
        loc,
        svc: jobs.iter().map(|j| j.duration).collect(),
        dem: jobs.iter().map(|j| j.demand).collect(),
        win,
        last_end,
        prio: jobs.iter().map(|j| u64::from(j.priority.max(1))).collect(),
        far,
        ts: techs.iter().map(|t| t.start).collect(),
        te: techs.iter().map(|t| t.end).collect(),
        shift: techs.iter().map(|t| (t.shift.start, t.shift.end)).collect(),
        cap: techs
            .iter()
            .map(|t| t.capacity.unwrap_or(u64::MAX))
            .collect(),
        maxj: techs
            .iter()
            .map(|t| t.max_jobs.unwrap_or(usize::MAX))
            .collect(),
        cpd: techs.iter().map(|t| t.cost_per_distance).collect(),
        cpt: techs.iter().map(|t| t.cost_per_time).collect(),
        fixed: techs.iter().map(|t| t.fixed_cost).collect(),
        brk: techs.iter().map(|t| t.break_).collect(),
        stay: jobs.iter().map(|j| j.stay_with).collect(),
        elig,
        nbr,
        veh_weight: 4.0 * (max_cpd * max_d + max_cpt * (max_t + max_s)) + 2.0 * max_fixed + 1.0,
        minimise_vehicles: problem.objective == Objective::VehiclesThenCost,
    })
}

/// The technician-level reasons a job cannot go to a technician: trade and level, lock, forbid.
pub(crate) fn tech_blockers(
    job: &super::model::Job,
    t: usize,
    tech: &super::model::Technician,
) -> Vec<Blocker> {
    let mut out = Vec::new();
    if let Some((trade, level)) = &job.trade
        && tech.level(trade).is_none_or(|l| l < *level)
    {
        out.push(Blocker::Skill);
    }
    if job.locked_to.is_some_and(|l| l != t) || job.forbidden.contains(&t) {
        out.push(Blocker::LockOrForbid);
    }
    out
}

/// One technician's sequence with its forward and backward bookkeeping.
#[derive(Debug, Default)]
struct Rt {
    jobs: Vec<u32>,
    /// `dep[i]`: earliest departure after `i` visits (`dep[0]` from the start).
    dep: Vec<f64>,
    /// `lat[i]`: latest arrival at position `i` (1..=len visits, len+1 the end) keeping the
    /// rest feasible, ignoring any break.
    lat: Vec<f64>,
    load: u64,
    cost: f64,
}

impl Clone for Rt {
    fn clone(&self) -> Self {
        let mut r = Rt::default();
        r.clone_from(self);
        r
    }
    fn clone_from(&mut self, o: &Self) {
        self.jobs.clone_from(&o.jobs);
        self.dep.clone_from(&o.dep);
        self.lat.clone_from(&o.lat);
        self.load = o.load;
        self.cost = o.cost;
    }
}

#[derive(Debug, Default)]
struct Sol {
    routes: Vec<Rt>,
    unassigned: Vec<u32>,
    route_of: Vec<u32>,
}

impl Clone for Sol {
    fn clone(&self) -> Self {
        let mut s = Sol::default();
        s.clone_from(self);
        s
    }
    fn clone_from(&mut self, o: &Self) {
        self.routes.clone_from(&o.routes);
        self.unassigned.clone_from(&o.unassigned);
        self.route_of.clone_from(&o.route_of);
    }
}

/// The hierarchical key: unassigned weight, technicians used (when ranked), cost.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Key(u64, usize, f64);

impl Key {
    fn better(&self, o: &Key) -> bool {
        (self.0, self.1) < (o.0, o.1) || ((self.0, self.1) == (o.0, o.1) && self.2 < o.2)
    }
}

impl Sol {
    fn key(&self, inst: &Inst) -> Key {
        let w = self.unassigned.iter().map(|&j| inst.prio[j as usize]).sum();
        let v = if inst.minimise_vehicles {
            self.routes.iter().filter(|r| !r.jobs.is_empty()).count()
        } else {
            0
        };
        Key(w, v, self.routes.iter().map(|r| r.cost).sum())
    }
}

/// Recomputes a route's bookkeeping after a change.
fn update(inst: &Inst, t: usize, rt: &mut Rt) {
    let len = rt.jobs.len();
    rt.dep.clear();
    rt.lat.clear();
    rt.lat.resize(len + 2, f64::NEG_INFINITY);
    let mut now = inst.shift[t].0;
    let mut prev = inst.ts[t];
    rt.dep.push(now);
    let (mut d, mut tt, mut s, mut load, mut moved) = (0.0, 0.0, 0.0, 0, 0.0);
    for &j in &rt.jobs {
        let j = j as usize;
        moved += inst.moved(j, t);
        let l = inst.loc[j];
        let a = now + inst.t(prev, l);
        // An infeasible prefix cannot occur: only feasible insertions are made and removals
        // only make arrivals earlier. Keep going with the arrival if it ever did.
        now = inst.start(j, a).unwrap_or(a) + inst.svc[j];
        rt.dep.push(now);
        d += inst.d(prev, l);
        tt += inst.t(prev, l);
        s += inst.svc[j];
        load += inst.dem[j];
        prev = l;
    }
    if len > 0 {
        d += inst.d(prev, inst.te[t]);
        tt += inst.t(prev, inst.te[t]);
    }
    let mut x = inst.shift[t].1;
    rt.lat[len + 1] = x;
    let mut next = inst.te[t];
    for i in (0..len).rev() {
        let j = rt.jobs[i] as usize;
        let l = inst.loc[j];
        x = inst.latest_arrival(j, x - inst.t(l, next) - inst.svc[j]);
        rt.lat[i + 1] = x;
        next = l;
    }
    rt.load = load;
    rt.cost = if len == 0 {
        0.0
    } else {
        inst.fixed[t] + inst.cpd[t] * d + inst.cpt[t] * (tt + s) + moved
    };
}

/// A simulated day: per visit (arrival, start), the break (after how many visits, start), and
/// the arrival at the end; `None` if some window, the break or the shift cannot be kept.
struct Day {
    visits: Vec<(f64, f64)>,
    break_taken: Option<(usize, f64)>,
    end: f64,
}

/// Simulates technician `t`'s day over `jobs`, each visit as early as it can start. Exact about
/// the break: the day is feasible when the break fits at some position (before the travel to
/// visit `p`, or after the last visit), and the position kept is the one that ends the day
/// earliest (the first such). Starting a break later than it can never helps, since every later
/// time only moves later, so trying each position at its earliest break start decides it.
fn simulate(inst: &Inst, t: usize, jobs: &[u32], out: bool) -> Option<Day> {
    simulate_with(inst, t, jobs, out, None)
}

/// [`simulate`], with visit `k` of `delay = (k, time)` starting no earlier than `time`.
fn simulate_with(
    inst: &Inst,
    t: usize,
    jobs: &[u32],
    out: bool,
    delay: Option<(usize, f64)>,
) -> Option<Day> {
    if inst.brk[t].is_none() {
        return run_day(inst, t, jobs, out, None, delay);
    }
    let mut best: Option<(f64, usize)> = None;
    for p in 0..=jobs.len() {
        if let Some(day) = run_day(inst, t, jobs, false, Some(p), delay)
            && best.is_none_or(|(end, _)| day.end < end)
        {
            best = Some((day.end, p));
        }
    }
    let (_, p) = best?;
    run_day(inst, t, jobs, out, Some(p), delay)
}

/// One simulation with the break (if any) taken before the travel to visit `break_at` (or at
/// the end when it is `jobs.len()`), at the earliest its window allows.
fn run_day(
    inst: &Inst,
    t: usize,
    jobs: &[u32],
    out: bool,
    break_at: Option<usize>,
    delay: Option<(usize, f64)>,
) -> Option<Day> {
    let mut now = inst.shift[t].0;
    let mut prev = inst.ts[t];
    let mut taken = None;
    let mut visits = Vec::with_capacity(if out { jobs.len() } else { 0 });
    let take = |now: &mut f64, i: usize, taken: &mut Option<(usize, f64)>| -> Option<()> {
        if let (Some(b), Some(p)) = (inst.brk[t], break_at)
            && p == i
        {
            let bs = now.max(b.window.start);
            if bs > b.window.end {
                return None;
            }
            *now = bs + b.duration;
            *taken = Some((i, bs));
        }
        Some(())
    };
    for (i, &j) in jobs.iter().enumerate() {
        take(&mut now, i, &mut taken)?;
        let j = j as usize;
        let a = now + inst.t(prev, inst.loc[j]);
        let earliest = match delay {
            Some((k, at)) if k == i => a.max(at),
            _ => a,
        };
        let s = inst.start(j, earliest)?;
        if out {
            visits.push((a, s));
        }
        now = s + inst.svc[j];
        prev = inst.loc[j];
    }
    take(&mut now, jobs.len(), &mut taken)?;
    let end = now + inst.t(prev, inst.te[t]);
    (end <= inst.shift[t].1).then_some(Day {
        visits,
        break_taken: taken,
        end,
    })
}

/// The latest visit `k` of technician `t`'s route can start with the rest of the day still
/// feasible (break included), at least `start`; by bisection, since feasibility only gets
/// harder as the start moves later.
fn latest_start(inst: &Inst, t: usize, jobs: &[u32], k: usize, start: f64) -> f64 {
    let last = inst.win[jobs[k] as usize]
        .last()
        .map_or(start, |w| w.1)
        .max(start);
    let feasible = |at: f64| simulate_with(inst, t, jobs, false, Some((k, at))).is_some();
    if feasible(last) {
        return last;
    }
    let (mut lo, mut hi) = (start, last);
    for _ in 0..60 {
        let mid = lo + (hi - lo) / 2.0;
        if feasible(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-9 * hi.abs().max(1.0) {
            break;
        }
    }
    lo
}

/// The extra cost of putting job `u` at position `p` of technician `t`'s route, and whether the
/// windows and the shift allow it (ignoring breaks, capacity and eligibility).
#[inline]
fn eval(inst: &Inst, t: usize, rt: &Rt, u: usize, p: usize) -> (f64, Option<Blocker>) {
    let len = rt.jobs.len();
    let prev = if p == 0 {
        inst.ts[t]
    } else {
        inst.loc[rt.jobs[p - 1] as usize]
    };
    let next = if p == len {
        inst.te[t]
    } else {
        inst.loc[rt.jobs[p] as usize]
    };
    let lu = inst.loc[u];
    let delta = inst.cpd[t] * (inst.d(prev, lu) + inst.d(lu, next) - inst.d(prev, next))
        + inst.cpt[t] * (inst.t(prev, lu) + inst.t(lu, next) - inst.t(prev, next) + inst.svc[u])
        + inst.moved(u, t);
    let a = rt.dep[p] + inst.t(prev, lu);
    let Some(s) = inst.start(u, a) else {
        return (delta, Some(Blocker::TimeWindow));
    };
    let an = s + inst.svc[u] + inst.t(lu, next);
    if an > rt.lat[p + 1] {
        let b = if p == len {
            Blocker::Shift
        } else {
            Blocker::TimeWindow
        };
        return (delta, Some(b));
    }
    (delta, None)
}

fn with_inserted(buf: &mut Vec<u32>, jobs: &[u32], p: usize, u: usize) {
    buf.clear();
    buf.extend_from_slice(&jobs[..p]);
    buf.push(u as u32);
    buf.extend_from_slice(&jobs[p..]);
}

/// The cheapest feasible insertion of `u`: (technician, position, extra cost).
fn best_insertion(
    inst: &Inst,
    sol: &Sol,
    u: usize,
    rng: &mut Rng,
    blink: f64,
    allow_new: bool,
    buf: &mut Vec<u32>,
) -> Option<(usize, usize)> {
    let mut best: Option<(usize, usize, f64)> = None;
    for (t, rt) in sol.routes.iter().enumerate() {
        if !inst.eligible(u, t) {
            continue;
        }
        let len = rt.jobs.len();
        let open = if len == 0 {
            if !allow_new {
                continue;
            }
            inst.fixed[t]
                + if inst.minimise_vehicles {
                    inst.veh_weight
                } else {
                    0.0
                }
        } else {
            0.0
        };
        if rt.load.saturating_add(inst.dem[u]) > inst.cap[t] || len + 1 > inst.maxj[t] {
            continue;
        }
        for p in 0..=len {
            if rt.dep[p] > inst.last_end[u] {
                break;
            }
            if blink > 0.0 && rng.unit() < blink {
                continue;
            }
            let (delta, blocked) = eval(inst, t, rt, u, p);
            let c = delta + open;
            if blocked.is_some() || best.is_some_and(|b| b.2 <= c) {
                continue;
            }
            if inst.brk[t].is_some() {
                with_inserted(buf, &rt.jobs, p, u);
                if simulate(inst, t, buf, false).is_none() {
                    continue;
                }
            }
            best = Some((t, p, c));
        }
    }
    best.map(|b| (b.0, b.1))
}

fn insert(inst: &Inst, sol: &mut Sol, u: usize, t: usize, p: usize) {
    let rt = &mut sol.routes[t];
    rt.jobs.insert(p, u as u32);
    update(inst, t, rt);
    sol.route_of[u] = t as u32;
}

/// Reinserts the unassigned jobs in one of SISR's orders, highest priority first.
fn recreate(
    inst: &Inst,
    sol: &mut Sol,
    rng: &mut Rng,
    blink: f64,
    allow_new: bool,
    buf: &mut Vec<u32>,
) {
    let mut absent = std::mem::take(&mut sol.unassigned);
    let r = rng.unit() * 11.0;
    if r < 4.0 {
        rng.shuffle(&mut absent);
    } else if r < 8.0 {
        absent.sort_by(|&a, &b| inst.dem[b as usize].cmp(&inst.dem[a as usize]));
    } else if r < 10.0 {
        absent.sort_by(|&a, &b| inst.far[b as usize].total_cmp(&inst.far[a as usize]));
    } else {
        absent.sort_by(|&a, &b| inst.far[a as usize].total_cmp(&inst.far[b as usize]));
    }
    absent.sort_by(|&a, &b| inst.prio[b as usize].cmp(&inst.prio[a as usize]));
    for &u in &absent {
        let u = u as usize;
        match best_insertion(inst, sol, u, rng, blink, allow_new, buf) {
            Some((t, p)) => insert(inst, sol, u, t, p),
            None => sol.unassigned.push(u as u32),
        }
    }
}

/// Removes strings of visits from routes around a random seed visit.
fn ruin(inst: &Inst, cfg: &SolverConfig, sol: &mut Sol, rng: &mut Rng, ruined: &mut Vec<usize>) {
    let used = sol.routes.iter().filter(|r| !r.jobs.is_empty()).count();
    let assigned = inst.n - sol.unassigned.len();
    if used == 0 || assigned == 0 {
        return;
    }
    let avg = assigned as f64 / used as f64;
    let ls_max = cfg.max_string.min(avg);
    let ks_max = 4.0 * cfg.average_removed / (1.0 + ls_max) - 1.0;
    let ks = (rng.unit() * ks_max.max(1.0)).floor() as usize + 1;
    let mut seed = rng.below(inst.n);
    while sol.route_of[seed] == NONE {
        seed = rng.below(inst.n);
    }
    ruined.clear();
    for i in 0..inst.n {
        if ruined.len() >= ks {
            break;
        }
        let c = if i == 0 {
            seed
        } else {
            inst.nbr[seed][i - 1] as usize
        };
        let t = sol.route_of[c];
        if t == NONE || ruined.contains(&(t as usize)) {
            continue;
        }
        let t = t as usize;
        let rt = &mut sol.routes[t];
        let len = rt.jobs.len();
        let pos = rt.jobs.iter().position(|&x| x as usize == c).unwrap_or(0);
        let l = ((rng.unit() * ls_max.min(len as f64)).floor() as usize + 1).min(len);
        let (from, to, keep) = if l == len || rng.unit() >= cfg.split_rate {
            let lo = (pos + 1).saturating_sub(l);
            let hi = pos.min(len - l);
            let s = lo + rng.below(hi - lo + 1);
            (s, s + l, (0, 0))
        } else {
            let mut m = 1;
            while l + m < len && rng.unit() < cfg.split_growth {
                m += 1;
            }
            let w = l + m;
            let lo = (pos + 1).saturating_sub(w);
            let hi = pos.min(len - w);
            let s = lo + rng.below(hi - lo + 1);
            let k = s + rng.below(l + 1);
            (s, s + w, (k, k + m))
        };
        let mut idx = 0;
        rt.jobs.retain(|&x| {
            let i = idx;
            idx += 1;
            let removed = i >= from && i < to && !(i >= keep.0 && i < keep.1);
            if removed {
                sol.unassigned.push(x);
                sol.route_of[x as usize] = NONE;
            }
            !removed
        });
        update(inst, t, rt);
        ruined.push(t);
    }
}

/// Solves the problem within the budget and returns the best solution found.
///
/// Deterministic for a given problem, travel matrix, configuration and iteration budget.
pub fn solve(
    problem: &Problem,
    travel: &dyn TravelMatrix,
    config: &SolverConfig,
    budget: &mut dyn Budget,
) -> Result<Solution, RoutingError> {
    let inst = build(problem, travel)?;
    let mut rng = Rng::new(config.seed);
    let mut buf = Vec::new();
    let mut ruined = Vec::new();
    let mut cur = Sol {
        routes: (0..inst.k)
            .map(|t| {
                let mut r = Rt::default();
                update(&inst, t, &mut r);
                r
            })
            .collect(),
        unassigned: (0..inst.n as u32).rev().collect(),
        route_of: vec![NONE; inst.n],
    };
    // The best state seen in any phase, each put forward with every job that still fits placed
    // greedily, and taken only if every route of it simulates. Offers depend only on the states
    // before them, and a run with a larger budget goes through the same states first (the
    // schedule does not depend on the limit), so more budget never returns a worse solution.
    // It starts as the empty plan (every job out), which is always feasible.
    let mut best = cur.clone();
    let mut best_key = best.key(&inst);
    let mut fill_rng = Rng::new(config.seed ^ 0x5dee_ce66_d1ce_4e5b);
    recreate(&inst, &mut cur, &mut rng, 0.0, true, &mut buf);
    offer(
        &inst,
        &cur,
        &mut best,
        &mut best_key,
        &mut fill_rng,
        &mut buf,
    );
    let mut iter = 0u64;
    let mut cand = cur.clone();

    if inst.minimise_vehicles && inst.n > 0 {
        // Fleet minimisation (SISR §6): dissolve the smallest route, then search until every
        // job it held is placed again, preferring jobs that have been out often.
        let total: u64 = inst.dem.iter().sum();
        let max_cap = inst.cap.iter().copied().max().unwrap_or(u64::MAX).max(1);
        let bound = (total.div_ceil(max_cap) as usize).max(1);
        let mut absence = vec![0u64; inst.n];
        let baseline = cur.unassigned.len();
        let mut complete = cur.clone();
        let sum_abs =
            |s: &Sol, a: &[u64]| -> u64 { s.unassigned.iter().map(|&j| a[j as usize]).sum() };
        loop {
            match budget.progress(iter) {
                Some(p) if p < config.fleet_share => {}
                _ => break,
            }
            if cur.unassigned.len() <= baseline {
                complete.clone_from(&cur);
                let used: Vec<usize> = (0..inst.k)
                    .filter(|&t| !cur.routes[t].jobs.is_empty())
                    .collect();
                if used.len() <= bound {
                    break;
                }
                let smallest = used
                    .iter()
                    .map(|&t| cur.routes[t].jobs.len())
                    .min()
                    .unwrap_or(0);
                let ties: Vec<usize> = used
                    .into_iter()
                    .filter(|&t| cur.routes[t].jobs.len() == smallest)
                    .collect();
                let t = ties[rng.below(ties.len())];
                let rt = &mut cur.routes[t];
                for &j in &rt.jobs {
                    cur.route_of[j as usize] = NONE;
                    cur.unassigned.push(j);
                }
                rt.jobs.clear();
                update(&inst, t, rt);
            }
            cand.clone_from(&cur);
            ruin(&inst, config, &mut cand, &mut rng, &mut ruined);
            recreate(
                &inst,
                &mut cand,
                &mut rng,
                config.blink_rate,
                false,
                &mut buf,
            );
            if cand.unassigned.len() < cur.unassigned.len()
                || sum_abs(&cand, &absence) < sum_abs(&cur, &absence)
            {
                std::mem::swap(&mut cur, &mut cand);
            }
            for &j in &cur.unassigned {
                absence[j as usize] += 1;
            }
            offer(
                &inst,
                &cur,
                &mut best,
                &mut best_key,
                &mut fill_rng,
                &mut buf,
            );
            iter += 1;
        }
        if cur.unassigned.len() > baseline {
            cur = complete;
        }
    }

    let mut cur_key = cur.key(&inst);
    let start = budget.progress(iter).unwrap_or(1.0).min(1.0);
    let (t0, tf) = (config.initial_temperature, config.final_temperature);
    while let Some(p) = budget.progress(iter).filter(|_| inst.n > 0) {
        let phase = if start < 1.0 {
            ((p - start) / (1.0 - start)).clamp(0.0, 1.0)
        } else {
            1.0
        };
        let temp = t0 * (tf / t0).powf(phase);
        cand.clone_from(&cur);
        ruin(&inst, config, &mut cand, &mut rng, &mut ruined);
        recreate(
            &inst,
            &mut cand,
            &mut rng,
            config.blink_rate,
            true,
            &mut buf,
        );
        let key = cand.key(&inst);
        let threshold = cur_key.2 - temp * rng.unit().max(f64::MIN_POSITIVE).ln();
        if (key.0, key.1) < (cur_key.0, cur_key.1)
            || ((key.0, key.1) == (cur_key.0, cur_key.1) && key.2 < threshold)
        {
            std::mem::swap(&mut cur, &mut cand);
            cur_key = key;
            offer(
                &inst,
                &cur,
                &mut best,
                &mut best_key,
                &mut fill_rng,
                &mut buf,
            );
        }
        iter += 1;
    }
    Ok(finish(&inst, problem, &best, iter))
}

/// Ranks the feasible places for a job in given routes: a problem read once, asked many times
/// (the "why this technician" of every planned visit, a greedy dispatcher, the emergency call
/// placed into today's routes).
pub struct Inserter {
    inst: Inst,
}

impl Inserter {
    /// Reads the problem.
    pub fn new(problem: &Problem, travel: &dyn TravelMatrix) -> Result<Self, RoutingError> {
        Ok(Self {
            inst: build(problem, travel)?,
        })
    }

    /// Every technician's cheapest feasible place for `job` in `routes` (one sequence of job
    /// indices per technician, such as a solution's), cheapest first. The job is taken out of
    /// the routes first: for a job already placed, the entry of its own technician is what its
    /// place costs and the others say what moving it would cost; for a job not yet placed they
    /// are the options to place it. Every check the solver makes applies (eligibility, lock and
    /// forbid lists, capacity, job count, windows, shift, break); a technician with no feasible
    /// place is absent. Routes that are themselves infeasible offer nothing.
    pub fn options(
        &self,
        routes: &[Vec<usize>],
        job: usize,
    ) -> Result<Vec<Insertion>, RoutingError> {
        let inst = &self.inst;
        if routes.len() != inst.k {
            return Err(invalid(format!(
                "{} routes for {} technicians",
                routes.len(),
                inst.k
            )));
        }
        if let Some(&j) = routes
            .iter()
            .flatten()
            .chain([&job])
            .find(|&&j| j >= inst.n)
        {
            return Err(invalid(format!("job {j} of {}", inst.n)));
        }
        let u = job;
        let mut buf = Vec::new();
        let mut options = Vec::new();
        for (t, route) in routes.iter().enumerate() {
            if !inst.eligible(u, t) {
                continue;
            }
            let mut rt = Rt {
                jobs: route
                    .iter()
                    .filter(|&&j| j != u)
                    .map(|&j| j as u32)
                    .collect(),
                ..Rt::default()
            };
            update(inst, t, &mut rt);
            let len = rt.jobs.len();
            if rt.load.saturating_add(inst.dem[u]) > inst.cap[t] || len + 1 > inst.maxj[t] {
                continue;
            }
            let mut best: Option<Insertion> = None;
            for p in 0..=len {
                let (delta, blocked) = eval(inst, t, &rt, u, p);
                let extra = delta + if len == 0 { inst.fixed[t] } else { 0.0 };
                if blocked.is_some() || best.as_ref().is_some_and(|b| b.extra_cost <= extra) {
                    continue;
                }
                with_inserted(&mut buf, &rt.jobs, p, u);
                let Some(day) = simulate(inst, t, &buf, true) else {
                    continue;
                };
                let prev = if p == 0 {
                    inst.ts[t]
                } else {
                    inst.loc[rt.jobs[p - 1] as usize]
                };
                let next = if p == len {
                    inst.te[t]
                } else {
                    inst.loc[rt.jobs[p] as usize]
                };
                let lu = inst.loc[u];
                // An empty route drives nowhere: without the job it costs nothing.
                let (d0, t0) = if len == 0 {
                    (0.0, 0.0)
                } else {
                    (inst.d(prev, next), inst.t(prev, next))
                };
                best = Some(Insertion {
                    technician: t,
                    position: p,
                    extra_cost: extra,
                    extra_distance: inst.d(prev, lu) + inst.d(lu, next) - d0,
                    extra_travel_time: inst.t(prev, lu) + inst.t(lu, next) - t0,
                    arrival: day.visits[p].0,
                    start: day.visits[p].1,
                });
            }
            options.extend(best);
        }
        options.sort_by(|a, b| {
            a.extra_cost
                .total_cmp(&b.extra_cost)
                .then(a.technician.cmp(&b.technician))
        });
        Ok(options)
    }
}

/// Makes `state` the best if it beats it, after a greedy pass (no blinks) for any job still out
/// (the search may leave a job out right after a ruin although it fits).
///
/// A state is taken only if every route of it simulates from scratch: the O(1) insertion
/// checks ignore breaks, and the simulation (exact about them) keeps every returned plan
/// feasible.
fn offer(
    inst: &Inst,
    state: &Sol,
    best: &mut Sol,
    best_key: &mut Key,
    fill_rng: &mut Rng,
    buf: &mut Vec<u32>,
) {
    if !state.key(inst).better(best_key) {
        return;
    }
    let mut candidate = state.clone();
    if !candidate.unassigned.is_empty() {
        recreate(inst, &mut candidate, fill_rng, 0.0, true, buf);
    }
    let feasible = candidate
        .routes
        .iter()
        .enumerate()
        .all(|(t, r)| r.jobs.is_empty() || simulate(inst, t, &r.jobs, false).is_some());
    let key = candidate.key(inst);
    if feasible && key.better(best_key) {
        *best = candidate;
        *best_key = key;
    }
}

/// Turns the internal state into the reported solution with its explanations.
fn finish(inst: &Inst, problem: &Problem, sol: &Sol, iterations: u64) -> Solution {
    let mut routes = Vec::new();
    let mut value = ObjectiveValue {
        unassigned: sol.unassigned.len(),
        unassigned_weight: sol.unassigned.iter().map(|&j| inst.prio[j as usize]).sum(),
        vehicles: 0,
        cost: 0.0,
        distance: 0.0,
        travel_time: 0.0,
    };
    for (t, rt) in sol.routes.iter().enumerate() {
        if rt.jobs.is_empty() {
            continue;
        }
        // The search only makes feasible insertions, so the simulation succeeds; the fallback
        // keeps the arrivals of the bookkeeping and lets the checker report the problem.
        let day = simulate(inst, t, &rt.jobs, true).unwrap_or_else(|| Day {
            visits: rt
                .jobs
                .iter()
                .enumerate()
                .map(|(i, &j)| {
                    let d = rt.dep[i + 1] - inst.svc[j as usize];
                    (d, d)
                })
                .collect(),
            break_taken: None,
            end: f64::INFINITY,
        });
        let mut prev = inst.ts[t];
        let (mut d, mut tt) = (0.0, 0.0);
        for &j in rt.jobs.iter().chain(std::iter::once(&NONE)) {
            let l = if j == NONE {
                inst.te[t]
            } else {
                inst.loc[j as usize]
            };
            d += inst.d(prev, l);
            tt += inst.t(prev, l);
            prev = l;
        }
        let visits = rt
            .jobs
            .iter()
            .zip(&day.visits)
            .enumerate()
            .map(|(i, (&j, &(arrival, start)))| {
                // Without a break the backward bookkeeping is exact; with one, where the break
                // can still go decides how late a visit may start.
                let latest_start = match inst.brk[t] {
                    None => rt.lat[i + 1].max(start),
                    Some(_) => latest_start(inst, t, &rt.jobs, i, start),
                };
                Visit {
                    job: j as usize,
                    arrival,
                    start,
                    latest_start,
                    slack: latest_start - start,
                }
            })
            .collect();
        value.vehicles += 1;
        value.cost += rt.cost;
        value.distance += d;
        value.travel_time += tt;
        routes.push(Route {
            technician: t,
            departure: inst.shift[t].0,
            visits,
            break_taken: day.break_taken,
            arrival: day.end,
            distance: d,
            travel_time: tt,
            load: rt.load,
            cost: rt.cost,
        });
    }
    let mut unassigned: Vec<Unassigned> = sol
        .unassigned
        .iter()
        .map(|&u| explain(inst, problem, sol, u as usize))
        .collect();
    unassigned.sort_by_key(|u| u.job);
    Solution {
        routes,
        unassigned,
        objective: value,
        iterations,
    }
}

/// Why `u` is out: every blocker met over all positions, and the cheapest refused insertion.
fn explain(inst: &Inst, problem: &Problem, sol: &Sol, u: usize) -> Unassigned {
    let mut reasons = BTreeSet::new();
    let mut cheapest: Option<InfeasibleInsertion> = None;
    let mut buf = Vec::new();
    for (t, rt) in sol.routes.iter().enumerate() {
        if !inst.eligible(u, t) {
            continue;
        }
        let mut route_level = Vec::new();
        if rt.load.saturating_add(inst.dem[u]) > inst.cap[t] {
            route_level.push(Blocker::Capacity);
        }
        if rt.jobs.len() + 1 > inst.maxj[t] {
            route_level.push(Blocker::MaxJobs);
        }
        for p in 0..=rt.jobs.len() {
            let (delta, blocked) = eval(inst, t, rt, u, p);
            let mut blockers = route_level.clone();
            blockers.extend(blocked);
            if blocked.is_none() && inst.brk[t].is_some() {
                with_inserted(&mut buf, &rt.jobs, p, u);
                if simulate(inst, t, &buf, false).is_none() {
                    blockers.push(Blocker::Break);
                }
            }
            let extra = delta
                + if rt.jobs.is_empty() {
                    inst.fixed[t]
                } else {
                    0.0
                };
            reasons.extend(blockers.iter().copied());
            if cheapest.as_ref().is_none_or(|c| extra < c.extra_cost) {
                cheapest = Some(InfeasibleInsertion {
                    technician: t,
                    position: p,
                    extra_cost: extra,
                    blockers,
                });
            }
        }
    }
    if cheapest.is_none() {
        reasons.insert(Blocker::NoEligibleTechnician);
        for (t, tech) in problem.technicians.iter().enumerate() {
            reasons.extend(tech_blockers(&problem.jobs[u], t, tech));
        }
    }
    if reasons.is_empty() {
        // Unreachable in practice: the final greedy pass places any job with a feasible
        // position. A job is never reported without a reason, so name the last resort.
        reasons.insert(Blocker::TimeWindow);
    }
    Unassigned {
        job: u,
        reasons: reasons.into_iter().collect(),
        cheapest_infeasible: cheapest,
    }
}
