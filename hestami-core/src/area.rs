//! Service areas: where an organization, or one of its technicians, takes work.
//!
//! An area is a set of postal codes, a polygon (GeoJSON `Polygon` or `MultiPolygon`, parsed once
//! into a validated [`MultiPolygon`]) or a radius around a point, optionally limited to some
//! trades. [`covers`] answers "does this area take a job of trade T at this place"; the geometry
//! is written here (even-odd ray casting, the haversine distance) rather than pulled from a GIS
//! crate because the needs are this small.
//!
//! Coordinates are WGS 84 degrees and polygons are treated as planar in longitude/latitude, which
//! is accurate enough for the size of a service area; a polygon may not cross the antimeridian.

use std::collections::BTreeSet;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::Invalid;
use crate::customer::{GeoPoint, PostalCode};
use crate::text::TradeCode;

/// The mean radius of the Earth, in kilometres (IUGG).
const EARTH_RADIUS_KM: f64 = 6371.0088;

/// The most positions a polygon may have in all, so that one request cannot make every
/// containment test slow.
pub const MAX_POSITIONS: usize = 20_000;

/// The great-circle distance between two points, in kilometres.
pub fn haversine_km(a: GeoPoint, b: GeoPoint) -> f64 {
    let (lat1, lat2) = (a.lat().to_radians(), b.lat().to_radians());
    let dlat = lat2 - lat1;
    let dlon = (b.lon() - a.lon()).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    // `h` is in [0, 1] up to rounding; clamping keeps `asin` defined for antipodal points.
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// One closed ring of `[lon, lat]` positions: at least four, the last equal to the first.
type Ring = Vec<[f64; 2]>;

/// A validated GeoJSON multi-polygon: one or more polygons, each an outer ring followed by its
/// holes. Every ring is closed and has at least four positions, and every position is a valid
/// longitude/latitude.
///
/// It serializes as a GeoJSON `MultiPolygon` object and deserializes from a GeoJSON `Polygon` or
/// `MultiPolygon`, through the same checks as [`MultiPolygon::from_geojson`].
#[derive(Clone, Debug, PartialEq)]
pub struct MultiPolygon {
    polygons: Vec<Vec<Ring>>,
}

impl MultiPolygon {
    /// Parses a GeoJSON geometry object of type `Polygon` or `MultiPolygon`. The refusal's
    /// message starts with the path of the offending value, such as `coordinates[0][3][1]`.
    pub fn from_geojson(value: &Value) -> Result<Self, Invalid> {
        let invalid = |path: &str, what: &str| {
            Invalid::new(
                "invalid_geojson",
                if path.is_empty() {
                    what.to_owned()
                } else {
                    format!("{path}: {what}")
                },
            )
        };
        let object = value
            .as_object()
            .ok_or_else(|| invalid("", "a GeoJSON geometry is an object"))?;
        let kind = object.get("type").and_then(Value::as_str);
        let coordinates = object
            .get("coordinates")
            .ok_or_else(|| invalid("coordinates", "is required"))?;
        let mut total = 0;
        let polygons = match kind {
            Some("Polygon") => vec![parse_polygon(coordinates, "coordinates", &mut total)?],
            Some("MultiPolygon") => {
                let list = coordinates
                    .as_array()
                    .ok_or_else(|| invalid("coordinates", "must be an array of polygons"))?;
                if list.is_empty() {
                    return Err(invalid("coordinates", "must hold at least one polygon"));
                }
                list.iter()
                    .enumerate()
                    .map(|(i, p)| parse_polygon(p, &format!("coordinates[{i}]"), &mut total))
                    .collect::<Result<_, _>>()?
            }
            _ => {
                return Err(invalid("type", "must be \"Polygon\" or \"MultiPolygon\""));
            }
        };
        Ok(Self { polygons })
    }

    /// The geometry as a GeoJSON `MultiPolygon` object.
    pub fn to_geojson(&self) -> Value {
        serde_json::json!({ "type": "MultiPolygon", "coordinates": self.polygons })
    }

    /// Whether `point` lies inside: inside the outer ring of some polygon and outside its holes
    /// (even-odd rule over all the polygon's rings). Points exactly on an edge may fall either
    /// way.
    pub fn contains(&self, point: GeoPoint) -> bool {
        let (x, y) = (point.lon(), point.lat());
        self.polygons.iter().any(|rings| {
            rings
                .iter()
                .filter(|ring| ring_crossings_odd(ring, x, y))
                .count()
                % 2
                == 1
        })
    }
}

/// Casts a ray from `(x, y)` towards +x and tells whether it crosses the ring's edges an odd
/// number of times.
fn ring_crossings_odd(ring: &[[f64; 2]], x: f64, y: f64) -> bool {
    let mut inside = false;
    for edge in ring.windows(2) {
        let ([xi, yi], [xj, yj]) = (edge[0], edge[1]);
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
    }
    inside
}

fn parse_polygon(value: &Value, path: &str, total: &mut usize) -> Result<Vec<Ring>, Invalid> {
    let invalid =
        |path: String, what: &str| Invalid::new("invalid_geojson", format!("{path}: {what}"));
    let rings = value
        .as_array()
        .ok_or_else(|| invalid(path.to_owned(), "a polygon is an array of rings"))?;
    if rings.is_empty() {
        return Err(invalid(
            path.to_owned(),
            "a polygon has at least an outer ring",
        ));
    }
    let mut out = Vec::with_capacity(rings.len());
    for (r, ring) in rings.iter().enumerate() {
        let ring_path = format!("{path}[{r}]");
        let positions = ring
            .as_array()
            .ok_or_else(|| invalid(ring_path.clone(), "a ring is an array of positions"))?;
        if positions.len() < 4 {
            return Err(invalid(ring_path, "a ring has at least 4 positions"));
        }
        *total += positions.len();
        if *total > MAX_POSITIONS {
            return Err(invalid(
                ring_path,
                &format!("an area has at most {MAX_POSITIONS} positions"),
            ));
        }
        let mut parsed: Ring = Vec::with_capacity(positions.len());
        for (p, position) in positions.iter().enumerate() {
            let pos_path = format!("{ring_path}[{p}]");
            let numbers = position
                .as_array()
                .filter(|a| a.len() >= 2)
                .ok_or_else(|| invalid(pos_path.clone(), "a position is [longitude, latitude]"))?;
            let lon = numbers[0].as_f64().filter(|v| (-180.0..=180.0).contains(v));
            let lon = lon.ok_or_else(|| {
                invalid(
                    format!("{pos_path}[0]"),
                    "longitude is a number between -180 and 180",
                )
            })?;
            let lat = numbers[1].as_f64().filter(|v| (-90.0..=90.0).contains(v));
            let lat = lat.ok_or_else(|| {
                invalid(
                    format!("{pos_path}[1]"),
                    "latitude is a number between -90 and 90",
                )
            })?;
            parsed.push([lon, lat]);
        }
        if parsed.first() != parsed.last() {
            return Err(invalid(
                ring_path,
                "a ring is closed: its last position equals its first",
            ));
        }
        out.push(parsed);
    }
    Ok(out)
}

impl Serialize for MultiPolygon {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_geojson().serialize(s)
    }
}

impl<'de> Deserialize<'de> for MultiPolygon {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        Self::from_geojson(&value).map_err(serde::de::Error::custom)
    }
}

/// A radius in kilometres: finite, greater than 0 and at most 1,000.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct RadiusKm(f64);

impl RadiusKm {
    /// The largest radius accepted.
    pub const MAX: f64 = 1_000.0;

    /// Accepts a radius in (0, 1000] km.
    pub fn parse(km: f64) -> Result<Self, Invalid> {
        if km.is_finite() && km > 0.0 && km <= Self::MAX {
            Ok(Self(km))
        } else {
            Err(Invalid::new(
                "out_of_range",
                "a radius is more than 0 and at most 1000 km",
            ))
        }
    }

    /// The radius in kilometres.
    pub fn km(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for RadiusKm {
    type Error = Invalid;
    fn try_from(km: f64) -> Result<Self, Invalid> {
        Self::parse(km)
    }
}

impl From<RadiusKm> for f64 {
    fn from(r: RadiusKm) -> f64 {
        r.0
    }
}

/// The shape of a service area. Serialized with a `kind` tag: `postal_codes`, `polygon` or
/// `radius`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum AreaKind {
    /// A set of postal codes. A code in the set matches a property's code when both are equal
    /// ignoring spaces and hyphens, or when it equals the first part of the property's code
    /// (before a space or hyphen): `12345` covers `12345-6789`, `K1A` covers `K1A 0B1`.
    PostalCodes {
        /// The codes.
        postal_codes: BTreeSet<PostalCode>,
    },
    /// A polygon or several.
    Polygon {
        /// The geometry.
        geojson: MultiPolygon,
    },
    /// Everything within a distance of a point.
    Radius {
        /// The centre.
        center: GeoPoint,
        /// The distance.
        radius_km: RadiusKm,
    },
}

/// A service area: a shape, and the trades it is for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceArea {
    /// Where.
    #[serde(flatten)]
    pub kind: AreaKind,
    /// The trades taken there, sorted and without duplicates; empty means every trade.
    #[serde(default, deserialize_with = "deserialize_trades")]
    pub trades: Vec<TradeCode>,
}

fn deserialize_trades<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<TradeCode>, D::Error> {
    Vec::<TradeCode>::deserialize(d).map(crate::workforce::normalize_trades)
}

impl ServiceArea {
    /// An area for `trades` (empty: every trade); the trades are sorted and deduplicated.
    pub fn new(kind: AreaKind, trades: Vec<TradeCode>) -> Self {
        Self {
            kind,
            trades: crate::workforce::normalize_trades(trades),
        }
    }
}

/// A postal code without spaces and hyphens, for comparison.
fn compact(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).collect()
}

/// Why no one of an organization's `areas` takes work of `trade` at this property, as a
/// sentence; `None` when one does. Scheduling (`OUTSIDE_SERVICE_AREA`) and assignment
/// (`OUTSIDE_ORGANIZATION_AREA`) refuse with it.
pub fn outside_organization_areas(
    areas: &[ServiceArea],
    location: Option<GeoPoint>,
    postal: &PostalCode,
    trade: &TradeCode,
) -> Option<String> {
    if areas.iter().any(|a| covers(a, location, postal, trade)) {
        return None;
    }
    Some(if areas.is_empty() {
        "the organization has no service areas".to_owned()
    } else {
        format!(
            "the property ({}) is outside the organization's service areas for {trade}",
            postal.as_str()
        )
    })
}

/// Whether `area` takes work of `trade` at a property with this location and postal code. A
/// polygon or radius needs the location: without one it covers nothing.
pub fn covers(
    area: &ServiceArea,
    location: Option<GeoPoint>,
    postal: &PostalCode,
    trade: &TradeCode,
) -> bool {
    if !area.trades.is_empty() && !area.trades.contains(trade) {
        return false;
    }
    match &area.kind {
        AreaKind::PostalCodes { postal_codes } => {
            let full = compact(postal.as_str());
            let head = postal.as_str().split([' ', '-']).next().unwrap_or_default();
            postal_codes.iter().any(|code| {
                let code = compact(code.as_str());
                code == full || code == head
            })
        }
        AreaKind::Polygon { geojson } => location.is_some_and(|p| geojson.contains(p)),
        AreaKind::Radius { center, radius_km } => {
            location.is_some_and(|p| haversine_km(*center, p) <= radius_km.km())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pt(lat: f64, lon: f64) -> GeoPoint {
        GeoPoint::parse(lat, lon).expect("valid point")
    }

    fn trade(t: &str) -> TradeCode {
        TradeCode::parse(t).expect("valid trade")
    }

    fn postal(p: &str) -> PostalCode {
        PostalCode::parse(p).expect("valid postal code")
    }

    /// A 10×10 degree square from (0,0) with a 2×2 hole at (4,4).
    fn square_with_hole() -> Value {
        json!({
            "type": "Polygon",
            "coordinates": [
                [[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0], [0.0, 0.0]],
                [[4.0, 4.0], [6.0, 4.0], [6.0, 6.0], [4.0, 6.0], [4.0, 4.0]]
            ]
        })
    }

    #[test]
    fn haversine_matches_known_distances() {
        // Paris to London is about 343.5 km.
        let d = haversine_km(pt(48.8566, 2.3522), pt(51.5074, -0.1278));
        assert!((d - 343.5).abs() < 1.0, "{d}");
        assert_eq!(haversine_km(pt(10.0, 10.0), pt(10.0, 10.0)), 0.0);
        // Antipodes: half the circumference.
        let half = haversine_km(pt(0.0, 0.0), pt(0.0, 180.0));
        assert!((half - std::f64::consts::PI * EARTH_RADIUS_KM).abs() < 1e-6);
    }

    #[test]
    fn polygons_contain_points_outside_their_holes() {
        let area = MultiPolygon::from_geojson(&square_with_hole()).expect("valid polygon");
        assert!(area.contains(pt(2.0, 2.0)));
        assert!(!area.contains(pt(5.0, 5.0)), "inside the hole");
        assert!(!area.contains(pt(11.0, 5.0)));
        assert!(!area.contains(pt(-1.0, -1.0)));
        assert!(area.contains(pt(7.0, 5.0)));
    }

    #[test]
    fn multipolygons_contain_points_in_any_part() {
        let geo = json!({
            "type": "MultiPolygon",
            "coordinates": [
                [[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]],
                [[[20.0, 20.0], [21.0, 20.0], [21.0, 21.0], [20.0, 21.0], [20.0, 20.0]]]
            ]
        });
        let area = MultiPolygon::from_geojson(&geo).expect("valid multipolygon");
        assert!(area.contains(pt(20.5, 20.5)));
        assert!(area.contains(pt(0.2, 0.8)));
        assert!(!area.contains(pt(0.8, 0.2)), "outside the triangle");
        // It round-trips through serde as a MultiPolygon.
        let back: MultiPolygon =
            serde_json::from_value(serde_json::to_value(&area).expect("serializes"))
                .expect("deserializes");
        assert_eq!(back, area);
    }

    #[test]
    fn invalid_geojson_is_refused_with_a_path() {
        let cases = [
            (json!([1, 2]), "a GeoJSON geometry is an object"),
            (
                json!({"type": "Point", "coordinates": [0, 0]}),
                "type: must be",
            ),
            (json!({"type": "Polygon"}), "coordinates: is required"),
            (
                json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}),
                "coordinates[0]: a ring has at least 4 positions",
            ),
            (
                json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}),
                "coordinates[0]: a ring is closed",
            ),
            (
                json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 95], [0, 0]]]}),
                "coordinates[0][2][1]: latitude",
            ),
            (
                json!({"type": "MultiPolygon", "coordinates": [[[[0, 0], [1, 0], [1, 1], [0, 0]]], [[[0, 0], ["x", 0], [1, 1], [0, 0]]]]}),
                "coordinates[1][0][1][0]: longitude",
            ),
            (
                json!({"type": "MultiPolygon", "coordinates": []}),
                "at least one polygon",
            ),
        ];
        for (value, expected) in cases {
            let err = MultiPolygon::from_geojson(&value).expect_err("refused");
            assert_eq!(err.code, "invalid_geojson");
            assert!(
                err.message.contains(expected),
                "{} vs {expected}",
                err.message
            );
        }
    }

    #[test]
    fn postal_areas_compare_normalized_codes() {
        let area = ServiceArea::new(
            AreaKind::PostalCodes {
                postal_codes: ["12345", "K1A", "SW1A 1AA"]
                    .into_iter()
                    .map(postal)
                    .collect(),
            },
            vec![],
        );
        let plumbing = trade("plumbing");
        for yes in ["12345", "12345-6789", "k1a 0b1", "SW1A1AA"] {
            assert!(covers(&area, None, &postal(yes), &plumbing), "{yes}");
        }
        for no in ["12346", "123456", "K1B 0B1", "SW1A 1AB"] {
            assert!(!covers(&area, None, &postal(no), &plumbing), "{no}");
        }
    }

    #[test]
    fn areas_are_limited_to_their_trades_and_need_a_location_for_shapes() {
        let radius = ServiceArea::new(
            AreaKind::Radius {
                center: pt(41.88, -87.63),
                radius_km: RadiusKm::parse(10.0).expect("valid radius"),
            },
            vec![trade("plumbing")],
        );
        let zip = postal("60601");
        let near = Some(pt(41.90, -87.65));
        assert!(covers(&radius, near, &zip, &trade("plumbing")));
        assert!(!covers(&radius, near, &zip, &trade("hvac")));
        assert!(!covers(&radius, None, &zip, &trade("plumbing")));
        assert!(!covers(
            &radius,
            Some(pt(42.5, -87.63)),
            &zip,
            &trade("plumbing")
        ));
        assert!(RadiusKm::parse(0.0).is_err());
        assert!(RadiusKm::parse(f64::NAN).is_err());
    }

    #[test]
    fn service_areas_serialize_with_a_kind_tag() {
        let raw = json!({"kind": "polygon", "geojson": square_with_hole(), "trades": ["HVAC"]});
        let area: ServiceArea = serde_json::from_value(raw).expect("deserializes");
        assert_eq!(area.trades, vec![trade("hvac")]);
        assert!(covers(
            &area,
            Some(pt(1.0, 1.0)),
            &postal("00000"),
            &trade("hvac")
        ));
        let radius: ServiceArea = serde_json::from_value(
            json!({"kind": "radius", "center": {"lat": 1.0, "lon": 2.0}, "radiusKm": 5.5}),
        )
        .expect("deserializes");
        assert_eq!(
            serde_json::to_value(&radius).expect("serializes"),
            json!({"kind": "radius", "center": {"lat": 1.0, "lon": 2.0}, "radiusKm": 5.5, "trades": []})
        );
        let bad = serde_json::from_value::<ServiceArea>(
            json!({"kind": "radius", "center": {"lat": 1.0, "lon": 2.0}, "radiusKm": -1}),
        );
        assert!(bad.is_err());
        let postal_area: ServiceArea =
            serde_json::from_value(json!({"kind": "postal_codes", "postalCodes": ["60601"]}))
                .expect("deserializes");
        assert!(matches!(postal_area.kind, AreaKind::PostalCodes { .. }));
    }
}
