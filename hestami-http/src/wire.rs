//! The one strict parser per wire type that serde's own would read more loosely.
//!
//! chrono reads `2031-1-1` and `-0001-01-01` as dates and a date-time with spaces inside; the
//! OpenAPI document says `format: date` (RFC 3339 `full-date`) and `format: date-time` (RFC 3339
//! `date-time`). Every date and date-time field of an input goes through these, with
//! `#[serde(deserialize_with = …)]`, so the server accepts exactly what the document states.
//! Decimals have theirs in core (`hestami_core::money::parse_decimal`).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Deserializer};

/// Parses an RFC 3339 `full-date`: `YYYY-MM-DD`, four-digit year, two-digit month and day.
pub fn parse_date(raw: &str) -> Option<NaiveDate> {
    let b = raw.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return None;
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok()
}

/// Parses an RFC 3339 `date-time`: a `full-date`, `T` (or `t`), a time with optional fraction,
/// and `Z` (or `z`) or an offset; no spaces anywhere.
pub fn parse_date_time(raw: &str) -> Option<DateTime<Utc>> {
    if raw.len() < 20 || raw.bytes().any(|b| b.is_ascii_whitespace()) {
        return None;
    }
    parse_date(raw.get(..10)?)?;
    if !matches!(raw.as_bytes()[10], b'T' | b't') {
        return None;
    }
    DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn refuse<E: serde::de::Error>(raw: &str, what: &str) -> E {
    E::custom(format!("{raw:?} is not {what}"))
}

const DATE: &str = "a date such as 2031-03-03";
const DATE_TIME: &str = "a date-time such as 2031-03-03T14:00:00Z";

/// `deserialize_with` for a `NaiveDate`.
pub fn date<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
    let raw = String::deserialize(d)?;
    parse_date(&raw).ok_or_else(|| refuse(&raw, DATE))
}

/// `deserialize_with` for an `Option<NaiveDate>` (with `#[serde(default)]`).
pub fn option_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|raw| parse_date(&raw).ok_or_else(|| refuse(&raw, DATE)))
        .transpose()
}

/// `deserialize_with` for a patch of a date (with `#[serde(default)]`): absent is `None`
/// (keep), `null` is `Some(None)` (clear), a date is `Some(Some(date))`.
pub fn patch_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<NaiveDate>>, D::Error> {
    option_date(d).map(Some)
}

/// `deserialize_with` for a `DateTime<Utc>`.
pub fn date_time<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let raw = String::deserialize(d)?;
    parse_date_time(&raw).ok_or_else(|| refuse(&raw, DATE_TIME))
}

/// `deserialize_with` for an `Option<DateTime<Utc>>` (with `#[serde(default)]`).
pub fn option_date_time<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|raw| parse_date_time(&raw).ok_or_else(|| refuse(&raw, DATE_TIME)))
        .transpose()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::Datelike as _;
    use proptest::prelude::*;

    #[test]
    fn what_the_outside_testing_sent_is_refused() {
        for bad in [
            "2031-1-1",
            "-0001-01-01",
            "20310101",
            "2031-02-30",
            " 2031-01-01",
            "2031-01-01 ",
        ] {
            assert!(parse_date(bad).is_none(), "{bad}");
        }
        assert_eq!(
            parse_date("2031-03-03"),
            NaiveDate::from_ymd_opt(2031, 3, 3)
        );
        for bad in [
            "2031-03-03 14:00:00Z",
            "2031-03-03T14:00:00 Z",
            "2031-03-03T14:00:00",
            "2031-3-03T14:00:00Z",
            "2031-03-03T14:00Z",
        ] {
            assert!(parse_date_time(bad).is_none(), "{bad}");
        }
        for good in [
            "2031-03-03T14:00:00Z",
            "2031-03-03t14:00:00z",
            "2031-03-03T14:00:00.123456+05:30",
        ] {
            assert!(parse_date_time(good).is_some(), "{good}");
        }
    }

    proptest! {
        /// Every date and date-time chrono writes in RFC 3339 is read back as itself.
        #[test]
        fn round_trips(days in 0i64..3_000_000, seconds in 0i64..86_400, micros in 0u32..1_000_000) {
            let date = NaiveDate::from_ymd_opt(1, 1, 1).unwrap() + chrono::Duration::days(days);
            prop_assume!(date.year_ce().1 <= 9999);
            prop_assert_eq!(parse_date(&date.format("%Y-%m-%d").to_string()), Some(date));
            let at = date.and_hms_opt(0, 0, 0).unwrap().and_utc()
                + chrono::Duration::seconds(seconds)
                + chrono::Duration::microseconds(i64::from(micros));
            prop_assume!(at.date_naive().year_ce().1 <= 9999);
            let text = at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
            prop_assert_eq!(parse_date_time(&text), Some(at));
        }
    }
}
