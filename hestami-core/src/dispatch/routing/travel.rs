//! Travel between locations, supplied by the caller through [`TravelMatrix`].
//!
//! The solver reads the matrix once into dense tables, so an implementation may be slow (a
//! road-network engine behind a cache); it must be deterministic.

use serde::{Deserialize, Serialize};

/// Distances and travel times between locations `0..len()`.
pub trait TravelMatrix {
    /// The number of locations.
    fn len(&self) -> usize;
    /// Whether there are no locations.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The distance from `from` to `to`.
    fn distance(&self, from: usize, to: usize) -> f64;
    /// The travel time from `from` to `to`.
    fn time(&self, from: usize, to: usize) -> f64;
}

/// How Euclidean distances are rounded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rounding {
    /// Exact (double precision).
    #[default]
    Exact,
    /// The DIMACS convention: truncated to one decimal, `floor(10 d) / 10`.
    Dimacs,
}

impl Rounding {
    /// Applies the rounding to a distance.
    pub fn apply(self, d: f64) -> f64 {
        match self {
            Rounding::Exact => d,
            Rounding::Dimacs => (10.0 * d).floor() / 10.0,
        }
    }
}

/// Plane coordinates; travel time equals distance (the benchmark convention).
#[derive(Clone, Debug, PartialEq)]
pub struct Euclidean {
    points: Vec<(f64, f64)>,
    rounding: Rounding,
}

impl Euclidean {
    /// The matrix over `points`, rounded as asked.
    pub fn new(points: Vec<(f64, f64)>, rounding: Rounding) -> Self {
        Self { points, rounding }
    }
}

impl TravelMatrix for Euclidean {
    fn len(&self) -> usize {
        self.points.len()
    }
    fn distance(&self, from: usize, to: usize) -> f64 {
        let (a, b) = (self.points[from], self.points[to]);
        self.rounding.apply((a.0 - b.0).hypot(a.1 - b.1))
    }
    fn time(&self, from: usize, to: usize) -> f64 {
        self.distance(from, to)
    }
}

/// Latitude/longitude in degrees: great-circle distance in metres times a detour factor, and a
/// time of distance divided by a speed (metres per time unit).
#[derive(Clone, Debug, PartialEq)]
pub struct Haversine {
    coordinates: Vec<(f64, f64)>,
    detour: f64,
    speed: f64,
}

impl Haversine {
    /// The mean Earth radius, in metres.
    pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

    /// The matrix over `(latitude, longitude)` pairs; `detour` (≥ 1, typically 1.3) turns the
    /// great circle into a road estimate; `speed` is in metres per time unit.
    pub fn new(coordinates: Vec<(f64, f64)>, detour: f64, speed: f64) -> Self {
        Self {
            coordinates,
            detour,
            speed,
        }
    }
}

impl TravelMatrix for Haversine {
    fn len(&self) -> usize {
        self.coordinates.len()
    }
    fn distance(&self, from: usize, to: usize) -> f64 {
        let (la1, lo1) = self.coordinates[from];
        let (la2, lo2) = self.coordinates[to];
        let (p1, p2) = (la1.to_radians(), la2.to_radians());
        let dp = p2 - p1;
        let dl = (lo2 - lo1).to_radians();
        let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * Self::EARTH_RADIUS_M * h.sqrt().min(1.0).asin() * self.detour
    }
    fn time(&self, from: usize, to: usize) -> f64 {
        self.distance(from, to) / self.speed
    }
}

/// A matrix given in full, row-major.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DenseMatrix {
    size: usize,
    distances: Vec<f64>,
    times: Vec<f64>,
}

impl DenseMatrix {
    /// Copies any matrix into dense tables.
    pub fn from_matrix(m: &dyn TravelMatrix) -> Self {
        let size = m.len();
        let mut distances = Vec::with_capacity(size * size);
        let mut times = Vec::with_capacity(size * size);
        for a in 0..size {
            for b in 0..size {
                distances.push(m.distance(a, b));
                times.push(m.time(a, b));
            }
        }
        Self {
            size,
            distances,
            times,
        }
    }

    /// A matrix from row-major tables of `size * size` entries; `None` if the lengths differ.
    pub fn new(size: usize, distances: Vec<f64>, times: Vec<f64>) -> Option<Self> {
        (distances.len() == size * size && times.len() == size * size).then_some(Self {
            size,
            distances,
            times,
        })
    }
}

impl TravelMatrix for DenseMatrix {
    fn len(&self) -> usize {
        self.size
    }
    fn distance(&self, from: usize, to: usize) -> f64 {
        self.distances[from * self.size + to]
    }
    fn time(&self, from: usize, to: usize) -> f64 {
        self.times[from * self.size + to]
    }
}
