//! What a technician's device reports from the field: when, by its own clock, and where.
//!
//! A move made offline reaches the server later; the server keeps both times (its own, when the
//! move was recorded, and the device's, when the technician made it). A report is never refused
//! for its clock: an edit made offline must not be lost because the phone's clock was wrong.
//! A device time ahead of the server's by more than [`MAX_CLOCK_AHEAD`] cannot be true; it is
//! kept as reported, flagged, and the server's time stands in for it wherever a time is
//! computed from it ([`effective_time`]).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::Invalid;
use crate::customer::GeoPoint;

/// How far ahead of the server's clock a device's may be.
pub const MAX_CLOCK_AHEAD: Duration = Duration::minutes(5);
/// The largest accuracy radius accepted, in metres (a fix worse than this is no fix).
pub const MAX_ACCURACY_M: f64 = 100_000.0;

/// A position fix: a point and, when the device gives it, its accuracy radius in metres.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "RawFix")]
pub struct Fix {
    lat: f64,
    lon: f64,
    accuracy_m: Option<f64>,
}

// Every coordinate is finite (checked by `parse`, which deserialization goes through), so
// equality is an equivalence.
impl Eq for Fix {}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFix {
    lat: f64,
    lon: f64,
    accuracy_m: Option<f64>,
}

impl TryFrom<RawFix> for Fix {
    type Error = String;
    fn try_from(r: RawFix) -> Result<Self, String> {
        Fix::parse(r.lat, r.lon, r.accuracy_m).map_err(|(field, e)| format!("{field}: {e}"))
    }
}

impl Fix {
    /// Accepts a point (see [`GeoPoint::parse`]) and an accuracy of 0 to [`MAX_ACCURACY_M`]
    /// metres; returns which field is wrong.
    pub fn parse(
        lat: f64,
        lon: f64,
        accuracy_m: Option<f64>,
    ) -> Result<Self, (&'static str, Invalid)> {
        GeoPoint::parse(lat, lon)?;
        if let Some(a) = accuracy_m
            && !(a.is_finite() && (0.0..=MAX_ACCURACY_M).contains(&a))
        {
            return Err((
                "accuracyM",
                Invalid::new("out_of_range", "accuracy is 0 to 100000 metres"),
            ));
        }
        Ok(Self {
            lat,
            lon,
            accuracy_m,
        })
    }

    /// The point.
    pub fn point(&self) -> GeoPoint {
        GeoPoint::checked(self.lat, self.lon)
    }

    /// Latitude in degrees.
    pub fn lat(&self) -> f64 {
        self.lat
    }

    /// Longitude in degrees.
    pub fn lon(&self) -> f64 {
        self.lon
    }

    /// The accuracy radius in metres, when known.
    pub fn accuracy_m(&self) -> Option<f64> {
        self.accuracy_m
    }
}

/// When and where the device says something happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceReport {
    /// The device's clock when it happened.
    pub device_time: DateTime<Utc>,
    /// Where, when the device knew.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Fix>,
}

/// The time to compute with for a device's report received at `now`: the device's, unless it is
/// ahead of the server's by more than [`MAX_CLOCK_AHEAD`] (then `now`); and whether the device's
/// was trusted.
pub fn effective_time(device_time: DateTime<Utc>, now: DateTime<Utc>) -> (DateTime<Utc>, bool) {
    if device_time > now + MAX_CLOCK_AHEAD {
        (now, false)
    } else {
        (device_time, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixes_are_bounded_and_checked_when_read() {
        assert!(Fix::parse(41.88, -87.63, Some(12.5)).is_ok());
        assert_eq!(Fix::parse(91.0, 0.0, None).map_err(|e| e.0), Err("lat"));
        assert_eq!(Fix::parse(0.0, 181.0, None).map_err(|e| e.0), Err("lon"));
        assert_eq!(
            Fix::parse(0.0, 0.0, Some(-1.0)).map_err(|e| e.0),
            Err("accuracyM")
        );
        assert_eq!(
            Fix::parse(0.0, 0.0, Some(f64::NAN)).map_err(|e| e.0),
            Err("accuracyM")
        );
        let read: Result<Fix, _> = serde_json::from_str(r#"{"lat": 95, "lon": 0}"#);
        assert!(read.is_err());
        let fix: Fix = serde_json::from_str(r#"{"lat": 1.5, "lon": 2.5, "accuracyM": 8}"#)
            .expect("a valid fix");
        assert_eq!(
            (fix.lat(), fix.lon(), fix.accuracy_m()),
            (1.5, 2.5, Some(8.0))
        );
    }

    #[test]
    fn a_device_clock_ahead_of_the_servers_is_not_trusted() {
        let now = DateTime::parse_from_rfc3339("2031-06-02T15:00:00Z")
            .expect("a valid time")
            .with_timezone(&Utc);
        assert_eq!(effective_time(now, now), (now, true));
        let behind = now - Duration::days(40);
        assert_eq!(effective_time(behind, now), (behind, true));
        let ahead = now + Duration::minutes(4);
        assert_eq!(effective_time(ahead, now), (ahead, true));
        assert_eq!(
            effective_time(now + Duration::minutes(6), now),
            (now, false)
        );
    }
}
