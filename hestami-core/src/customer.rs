//! Customers and their properties (service locations).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Invalid;
use crate::ids::{CustomerId, PropertyId};
use crate::text::{Email, Name, Phone};

/// A contractor's customer: a household or a business.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    /// Its id.
    pub id: CustomerId,
    /// 1 on creation, +1 on each change.
    pub version: i64,
    /// Display name.
    pub name: Name,
    /// Contact address.
    pub email: Option<Email>,
    /// Contact number.
    pub phone: Option<Phone>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A postal code: letters, digits, spaces and hyphens, 2 to 12 characters, upper-cased.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PostalCode(String);

impl PostalCode {
    /// Accepts a postal code in any country's format.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let value = raw.trim().to_ascii_uppercase();
        let valid = (2..=12).contains(&value.len())
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-');
        if valid {
            Ok(Self(value))
        } else {
            Err(Invalid::new(
                "invalid_postal_code",
                "a postal code is 2 to 12 letters, digits, spaces or hyphens",
            ))
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An ISO 3166-1 alpha-2 country code, upper-cased (`US`, `CA`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountryCode(String);

impl CountryCode {
    /// Accepts two ASCII letters.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let value = raw.trim().to_ascii_uppercase();
        if value.len() == 2 && value.chars().all(|c| c.is_ascii_uppercase()) {
            Ok(Self(value))
        } else {
            Err(Invalid::new(
                "invalid_country",
                "a country is an ISO 3166-1 alpha-2 code such as US",
            ))
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_serde {
    ($name:ident) => {
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_serde!(PostalCode);
string_serde!(CountryCode);

/// A point on the Earth (WGS 84 degrees).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GeoPoint {
    lat: f64,
    lon: f64,
}

impl GeoPoint {
    /// Accepts a latitude in [-90, 90] and a longitude in [-180, 180]; returns which one is wrong.
    pub fn parse(lat: f64, lon: f64) -> Result<Self, (&'static str, Invalid)> {
        if !(lat.is_finite() && (-90.0..=90.0).contains(&lat)) {
            return Err((
                "lat",
                Invalid::new("out_of_range", "latitude is between -90 and 90"),
            ));
        }
        if !(lon.is_finite() && (-180.0..=180.0).contains(&lon)) {
            return Err((
                "lon",
                Invalid::new("out_of_range", "longitude is between -180 and 180"),
            ));
        }
        Ok(Self { lat, lon })
    }

    /// A point from coordinates already checked by [`GeoPoint::parse`].
    pub(crate) fn checked(lat: f64, lon: f64) -> Self {
        Self { lat, lon }
    }

    /// Latitude in degrees.
    pub fn lat(&self) -> f64 {
        self.lat
    }

    /// Longitude in degrees.
    pub fn lon(&self) -> f64 {
        self.lon
    }
}

/// A street address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    /// Street and number.
    pub line1: Name,
    /// Unit, suite, floor.
    pub line2: Option<Name>,
    /// City or town.
    pub city: Name,
    /// State, province or region.
    pub region: Name,
    /// Postal code.
    pub postal_code: PostalCode,
    /// Country.
    pub country: CountryCode,
}

/// A service location of a customer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Property {
    /// Its id.
    pub id: PropertyId,
    /// Whose property it is.
    pub customer_id: CustomerId,
    /// 1 on creation, +1 on each change.
    pub version: i64,
    /// Where it is.
    pub address: Address,
    /// Its coordinates, when known (routing and service areas use them).
    pub location: Option<GeoPoint>,
    /// How to get in and what to watch for (gate code, dog, shut-off valve): shown to the
    /// technician with each visit. (Absent from outcomes recorded before it existed.)
    #[serde(default)]
    pub access_notes: Option<crate::text::Description>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postal_codes_and_countries() {
        assert_eq!(
            PostalCode::parse(" k1a 0b1 ").map(|p| p.0),
            Ok("K1A 0B1".to_owned())
        );
        assert!(PostalCode::parse("1").is_err());
        assert!(PostalCode::parse("12345$").is_err());
        assert_eq!(CountryCode::parse("us").map(|c| c.0), Ok("US".to_owned()));
        assert!(CountryCode::parse("USA").is_err());
    }

    #[test]
    fn coordinates_are_bounded() {
        assert!(GeoPoint::parse(41.88, -87.63).is_ok());
        assert_eq!(GeoPoint::parse(91.0, 0.0).map_err(|e| e.0), Err("lat"));
        assert_eq!(GeoPoint::parse(0.0, f64::NAN).map_err(|e| e.0), Err("lon"));
    }
}
