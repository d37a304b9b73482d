//! Money: an exact decimal amount in an ISO 4217 currency, and the rounding rule of the product.
//!
//! Amounts are [`rust_decimal::Decimal`]s, never floats, so `0.1 + 0.2` is `0.3`. A [`Money`]
//! carries its [`Currency`] and every operation that combines two amounts refuses to mix
//! currencies ([`MoneyError::CurrencyMismatch`]) instead of silently adding dollars to euros.
//!
//! Amounts are *not* rounded as they are computed. A unit price may carry more decimals than the
//! currency's minor unit (a screw at `0.125`), and a product of a quantity and a unit price is
//! exact. Rounding happens only at the points the pricing code documents (a line total, the
//! discount, a taxable base, the tax of each rate), always half away from zero to the currency's
//! minor unit ([`Money::round`]), and each one is recorded as a [`Rounding`] so that a
//! breakdown shows what was rounded, from what, to what.
//!
//! On the wire an amount is a decimal string (`"1234.50"`), never a JSON number, so that no
//! client parses it into a float by accident.

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Invalid;
use crate::org::Currency;

/// The largest absolute amount [`Money::parse`] accepts: one trillion. Bounding the inputs keeps
/// every product and sum the pricing code computes far inside `Decimal`'s range.
pub const MAX_AMOUNT: Decimal = Decimal::from_parts(0xD4A5_1000, 0xE8, 0, false, 0);

/// The most decimals an amount given by a person may carry (a unit price such as `0.123456`).
pub const MAX_SCALE: u32 = 6;

/// Why an amount was refused or an operation on amounts failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MoneyError {
    /// The text is not a decimal number.
    #[error("{raw:?} is not a decimal amount such as 1234.50")]
    NotADecimal {
        /// What was given.
        raw: String,
    },
    /// More decimals than allowed.
    #[error("an amount in {currency} has at most {max} decimal places")]
    TooManyDecimals {
        /// The currency's code.
        currency: &'static str,
        /// How many are allowed.
        max: u32,
    },
    /// Larger than [`MAX_AMOUNT`] (or a computation left `Decimal`'s range).
    #[error("the amount is too large")]
    Overflow,
    /// Two amounts in different currencies were combined.
    #[error("cannot combine an amount in {left} with one in {right}")]
    CurrencyMismatch {
        /// The currency of the left operand.
        left: &'static str,
        /// The currency of the right operand.
        right: &'static str,
    },
}

impl MoneyError {
    /// A stable snake_case code, for a field error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotADecimal { .. } => "invalid_amount",
            Self::TooManyDecimals { .. } => "too_many_decimals",
            Self::Overflow => "too_large",
            Self::CurrencyMismatch { .. } => "currency_mismatch",
        }
    }

    /// The refusal as an [`Invalid`], for reporting against a field.
    pub fn to_invalid(&self) -> Invalid {
        Invalid::new(self.code(), self.to_string())
    }
}

/// An amount of money in a currency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Money {
    amount: Decimal,
    currency: Currency,
}

impl Money {
    /// An amount in `currency`, taken as it is (not rounded).
    pub fn new(amount: Decimal, currency: Currency) -> Self {
        Self { amount, currency }
    }

    /// Zero, with the currency's minor unit as scale (`0.00` in USD).
    pub fn zero(currency: Currency) -> Self {
        Self::new(Decimal::ZERO, currency).round()
    }

    /// An amount from a whole number of minor units (`12345` cents is `123.45` USD).
    pub fn from_minor_units(units: i64, currency: Currency) -> Self {
        Self::new(Decimal::new(units, currency.minor_unit()), currency)
    }

    /// Parses a decimal string (see [`parse_decimal`]) such as `"1234.50"` or `"-3"` with at most [`MAX_SCALE`]
    /// decimals and at most [`MAX_AMOUNT`] in absolute value. Use it for prices and costs, which
    /// may be finer than the minor unit; use [`Money::parse_exact`] for amounts that change hands.
    pub fn parse(raw: &str, currency: Currency) -> Result<Self, MoneyError> {
        let amount = parse_decimal(raw).ok_or_else(|| MoneyError::NotADecimal {
            raw: raw.to_owned(),
        })?;
        if amount.normalize().scale() > MAX_SCALE {
            return Err(MoneyError::TooManyDecimals {
                currency: currency.code(),
                max: MAX_SCALE,
            });
        }
        if amount.abs() > MAX_AMOUNT {
            return Err(MoneyError::Overflow);
        }
        Ok(Self::new(amount, currency))
    }

    /// Parses an amount that is paid or refunded: like [`Money::parse`] but with no more decimals
    /// than the currency's minor unit (`12.345` USD is refused, `12.3` is `12.30`).
    pub fn parse_exact(raw: &str, currency: Currency) -> Result<Self, MoneyError> {
        let money = Self::parse(raw, currency)?;
        money.require_minor_unit()?;
        Ok(money.round())
    }

    /// Refuses an amount with more decimals than the currency's minor unit.
    pub fn require_minor_unit(&self) -> Result<(), MoneyError> {
        if self.amount.normalize().scale() > self.currency.minor_unit() {
            Err(MoneyError::TooManyDecimals {
                currency: self.currency.code(),
                max: self.currency.minor_unit(),
            })
        } else {
            Ok(())
        }
    }

    /// The amount.
    pub fn amount(&self) -> Decimal {
        self.amount
    }

    /// The currency.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// The amount as it is written out (on the wire, in stored records, on documents): the
    /// currency's minor digits, and more only where the value has them — `"12.24"` for 12.2400,
    /// `"89.00"` for 89, `"6.666"` for a unit price of 6.666, `"1500"` in JPY.
    pub fn amount_text(&self) -> String {
        let mut value = self.amount.normalize();
        if value.scale() < self.currency.minor_unit() {
            value.rescale(self.currency.minor_unit());
        }
        value.to_string()
    }

    /// Whether the amount is zero.
    pub fn is_zero(&self) -> bool {
        self.amount.is_zero()
    }

    /// Whether the amount is below zero.
    pub fn is_negative(&self) -> bool {
        self.amount.is_sign_negative() && !self.amount.is_zero()
    }

    /// Whether the amount is above zero.
    pub fn is_positive(&self) -> bool {
        self.amount.is_sign_positive() && !self.amount.is_zero()
    }

    /// Rounds to the currency's minor unit, half away from zero (`2.345` → `2.35`, `-2.345` →
    /// `-2.35`), and pads to exactly that many decimals (`2.5` → `2.50`). This is the only
    /// rounding in the product.
    pub fn round(&self) -> Self {
        let mut amount = self.amount.round_dp_with_strategy(
            self.currency.minor_unit(),
            RoundingStrategy::MidpointAwayFromZero,
        );
        amount.rescale(self.currency.minor_unit());
        Self::new(amount, self.currency)
    }

    /// Rounds (as [`Money::round`]) and records the rounding under `at` in `log` when it changed
    /// the value. Padding (`2.5` → `2.50`) is not a change.
    pub fn round_logged(&self, at: impl Into<String>, log: &mut Vec<Rounding>) -> Self {
        let rounded = self.round();
        if rounded.amount != self.amount {
            log.push(Rounding {
                at: at.into(),
                before: self.amount,
                after: rounded.amount,
            });
        }
        rounded
    }

    fn same_currency(&self, other: &Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch {
                left: self.currency.code(),
                right: other.currency.code(),
            })
        }
    }

    /// `self + other`; refuses different currencies.
    pub fn checked_add(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        self.amount
            .checked_add(other.amount)
            .map(|a| Self::new(a, self.currency))
            .ok_or(MoneyError::Overflow)
    }

    /// `self − other`; refuses different currencies.
    pub fn checked_sub(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        self.amount
            .checked_sub(other.amount)
            .map(|a| Self::new(a, self.currency))
            .ok_or(MoneyError::Overflow)
    }

    /// `self × factor` (a quantity, a multiplier), exact.
    pub fn checked_mul(&self, factor: Decimal) -> Result<Money, MoneyError> {
        self.amount
            .checked_mul(factor)
            .map(|a| Self::new(a, self.currency))
            .ok_or(MoneyError::Overflow)
    }

    /// Compares two amounts of the same currency; refuses different currencies.
    pub fn checked_cmp(&self, other: &Money) -> Result<std::cmp::Ordering, MoneyError> {
        self.same_currency(other)?;
        Ok(self.amount.cmp(&other.amount))
    }

    /// The sum of `items`, zero in `currency` when there are none; refuses any other currency.
    pub fn sum<'a>(
        currency: Currency,
        items: impl IntoIterator<Item = &'a Money>,
    ) -> Result<Money, MoneyError> {
        items
            .into_iter()
            .try_fold(Money::zero(currency), |acc, m| acc.checked_add(m))
    }
}

impl std::fmt::Display for Money {
    /// `1234.50 USD`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.amount, self.currency.code())
    }
}

#[derive(Serialize, Deserialize)]
struct MoneyWire {
    #[serde(with = "rust_decimal::serde::str")]
    amount: Decimal,
    currency: Currency,
}

#[derive(Serialize)]
struct MoneyText {
    amount: String,
    currency: Currency,
}

impl Serialize for Money {
    /// `{"amount": "1234.50", "currency": "USD"}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        MoneyText {
            amount: self.amount_text(),
            currency: self.currency,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = MoneyWire::deserialize(d)?;
        Ok(Self::new(wire.amount, wire.currency))
    }
}

/// One rounding the pricing code performed: where, and the value before and after.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rounding {
    /// The path of the rounded value in the breakdown, such as `lines[2].lineTotal` or
    /// `taxLines[0].tax`.
    pub at: String,
    /// The exact value.
    #[serde(with = "rust_decimal::serde::str")]
    pub before: Decimal,
    /// The value rounded to the minor unit.
    #[serde(with = "rust_decimal::serde::str")]
    pub after: Decimal,
}

/// A percentage such as a markup, a tax rate or a discount: 0 to 1000, at most 4 decimals
/// (`8.25` is 8.25 %). Serialized as a decimal string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Percent(Decimal);

impl Percent {
    /// The largest percentage accepted.
    pub const MAX: Decimal = Decimal::from_parts(1000, 0, 0, false, 0);

    /// Accepts 0 to 1000 with at most 4 decimals.
    pub fn parse(value: Decimal) -> Result<Self, Invalid> {
        if value.is_sign_negative() && !value.is_zero() || value > Self::MAX {
            return Err(Invalid::new(
                "out_of_range",
                "a percentage is between 0 and 1000",
            ));
        }
        if value.normalize().scale() > 4 {
            return Err(Invalid::new(
                "too_many_decimals",
                "a percentage has at most 4 decimal places",
            ));
        }
        Ok(Self(value.normalize()))
    }

    /// Parses a decimal string such as `"8.25"`.
    pub fn parse_str(raw: &str) -> Result<Self, Invalid> {
        let value = parse_decimal(raw)
            .ok_or_else(|| Invalid::new("invalid_percent", format!("{raw:?} is not a number")))?;
        Self::parse(value)
    }

    /// The percentage (`8.25`).
    pub fn value(&self) -> Decimal {
        self.0
    }

    /// The fraction (`0.0825`).
    pub fn fraction(&self) -> Decimal {
        self.0 / Decimal::ONE_HUNDRED
    }

    /// `percent % of amount`, exact (not rounded).
    pub fn of(&self, amount: &Money) -> Result<Money, MoneyError> {
        amount.checked_mul(self.fraction())
    }
}

impl std::fmt::Display for Percent {
    /// `8.25%`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}%", self.0)
    }
}

impl Serialize for Percent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse_str(&raw).map_err(serde::de::Error::custom)
    }
}

/// A problem with one field of a request, in the shape of the error envelope's `field_errors`
/// (DESIGN §5.1). The pricing, estimate and invoice rules return every problem at once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The path of the field, such as `lines[2].quantity`.
    pub field: String,
    /// A stable snake_case code, such as `must_be_positive`.
    pub code: &'static str,
    /// A sentence for a person.
    pub message: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            code,
            message: message.into(),
        }
    }

    /// A parse refusal reported against `field`.
    pub fn invalid(field: impl Into<String>, invalid: Invalid) -> Self {
        Self::new(field, invalid.code, invalid.message)
    }
}

impl std::fmt::Display for FieldError {
    /// `lines[2].quantity: must_be_positive (quantity must be greater than 0)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} ({})", self.field, self.code, self.message)
    }
}

/// Serde helpers for an optional decimal written as a string (`"12.5"` or `null`).
///
/// `rust_decimal::serde::str_option` refuses `null` once serde has buffered the value (inside
/// an adjacently tagged enum or a flattened struct, as the workflow journal's commands are), so
/// this reads an `Option<String>` and parses it.
pub mod decimal_str_option {
    use super::parse_decimal;

    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `Some(d)` as its string, `None` as `null`.
    pub fn serialize<S: Serializer>(value: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.serialize_some(&d.to_string()),
            None => s.serialize_none(),
        }
    }

    /// Reads a decimal string or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|raw| {
                parse_decimal(&raw)
                    .ok_or_else(|| serde::de::Error::custom(format!("{raw:?} is not a decimal")))
            })
            .transpose()
    }
}

/// The one wire form of a decimal number, as a JSON Schema pattern: an optional minus, digits,
/// and an optional fraction of digits. No spaces, no `+`, no exponent (`1E+2`), no bare point.
pub const DECIMAL_PATTERN: &str = "^-?[0-9]+(\\.[0-9]+)?$";

/// Parses a decimal string of exactly the form [`DECIMAL_PATTERN`] describes (at most 28
/// significant digits); `None` otherwise. Every decimal read from the wire goes through it, so
/// one field cannot accept what another refuses.
pub fn parse_decimal(raw: &str) -> Option<Decimal> {
    let unsigned = raw.strip_prefix('-').unwrap_or(raw);
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !fraction.is_none_or(digits) {
        return None;
    }
    Decimal::from_str_exact(raw).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd() -> Currency {
        Currency::parse("USD").expect("USD is listed")
    }

    #[test]
    fn amounts_are_written_with_the_minor_digits_and_more_only_when_needed() {
        let text = |amount: &str, code: &str| {
            Money::new(
                amount.parse().expect("a decimal"),
                Currency::parse(code).expect("listed"),
            )
            .amount_text()
        };
        assert_eq!(text("12.2400", "USD"), "12.24");
        assert_eq!(text("89", "USD"), "89.00");
        assert_eq!(text("6.666", "USD"), "6.666");
        assert_eq!(text("0.000", "USD"), "0.00");
        assert_eq!(text("1500.00", "JPY"), "1500");
        assert_eq!(text("1.5", "KWD"), "1.500");
        let json = serde_json::to_value(Money::new("12.2400".parse().expect("decimal"), usd()))
            .expect("serializes");
        assert_eq!(json["amount"], "12.24");
    }

    #[test]
    fn max_amount_is_one_trillion() {
        assert_eq!(MAX_AMOUNT, Decimal::from(1_000_000_000_000_i64));
        assert_eq!(Percent::MAX, Decimal::from(1000));
    }

    #[test]
    fn rounding_is_half_away_from_zero_to_the_minor_unit() {
        let cases = [
            ("USD", "2.345", "2.35"),
            ("USD", "-2.345", "-2.35"),
            ("USD", "2.344999", "2.34"),
            ("USD", "2.5", "2.50"),
            ("JPY", "2.5", "3"),
            ("JPY", "-2.5", "-3"),
            ("BHD", "1.0005", "1.001"),
        ];
        for (code, raw, want) in cases {
            let currency = Currency::parse(code).expect("listed");
            let money = Money::parse(raw, currency).expect("valid");
            assert_eq!(money.round().amount().to_string(), want, "{code} {raw}");
        }
    }

    #[test]
    fn logged_rounding_records_only_changes() {
        let mut log = Vec::new();
        let a = Money::parse("2.5", usd())
            .expect("valid")
            .round_logged("a", &mut log);
        let b = Money::parse("2.505", usd())
            .expect("valid")
            .round_logged("b", &mut log);
        assert_eq!(
            (a.amount().to_string(), b.amount().to_string()),
            ("2.50".into(), "2.51".into())
        );
        assert_eq!(
            log,
            vec![Rounding {
                at: "b".into(),
                before: Decimal::new(2505, 3),
                after: Decimal::new(251, 2)
            }]
        );
    }

    #[test]
    fn parsing_refuses_with_a_typed_error() {
        assert_eq!(
            Money::parse("12,50", usd()),
            Err(MoneyError::NotADecimal {
                raw: "12,50".into()
            })
        );
        assert_eq!(
            Money::parse("1e3", usd()).map_err(|e| e.code()),
            Err("invalid_amount")
        );
        assert_eq!(
            Money::parse("0.1234567", usd()).map_err(|e| e.code()),
            Err("too_many_decimals")
        );
        assert_eq!(
            Money::parse("1000000000000.01", usd()),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            Money::parse_exact("12.345", usd()).map_err(|e| e.to_string()),
            Err("an amount in USD has at most 2 decimal places".into())
        );
        assert_eq!(
            Money::parse_exact("12.3", usd()).map(|m| m.amount().to_string()),
            Ok("12.30".into())
        );
        // One strict form on the wire (issue 9): no spaces, no `+`, no exponent.
        for loose in [" 12.3 ", "+12.3", "1.23E+1", "12.", ".5"] {
            assert!(Money::parse_exact(loose, usd()).is_err(), "{loose:?}");
        }
        // Trailing zeros beyond the minor unit are not extra precision.
        assert!(Money::parse_exact("12.3000", usd()).is_ok());
    }

    #[test]
    fn currencies_do_not_mix() {
        let eur = Currency::parse("EUR").expect("listed");
        let a = Money::from_minor_units(100, usd());
        let b = Money::from_minor_units(100, eur);
        let err = a.checked_add(&b).expect_err("mixed currencies");
        assert_eq!(
            err.to_string(),
            "cannot combine an amount in USD with one in EUR"
        );
        assert_eq!(err.code(), "currency_mismatch");
        assert!(a.checked_sub(&b).is_err());
        assert!(a.checked_cmp(&b).is_err());
        assert!(Money::sum(usd(), [&a, &b]).is_err());
        assert_eq!(
            Money::sum(usd(), [&a, &a]).map(|m| m.amount().to_string()),
            Ok("2.00".into())
        );
    }

    #[test]
    fn money_serializes_as_decimal_strings() {
        let m = Money::parse_exact("1234.5", usd()).expect("valid");
        let json = serde_json::to_string(&m).expect("serializes");
        assert_eq!(json, r#"{"amount":"1234.50","currency":"USD"}"#);
        let back: Money = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, m);
        // A JSON number is refused: it may already have been through a float.
        assert!(serde_json::from_str::<Money>(r#"{"amount":1234.5,"currency":"USD"}"#).is_err());
        assert!(serde_json::from_str::<Money>(r#"{"amount":"1","currency":"XXX"}"#).is_err());
    }

    #[test]
    fn percentages_are_bounded() {
        assert_eq!(
            Percent::parse_str("8.25").map(|p| p.fraction().to_string()),
            Ok("0.0825".into())
        );
        assert_eq!(
            Percent::parse_str("-1").map_err(|e| e.code),
            Err("out_of_range")
        );
        assert_eq!(
            Percent::parse_str("1000.5").map_err(|e| e.code),
            Err("out_of_range")
        );
        assert_eq!(
            Percent::parse_str("1.00001").map_err(|e| e.code),
            Err("too_many_decimals")
        );
        let p = Percent::parse_str("12.50").expect("valid");
        assert_eq!(serde_json::to_string(&p).expect("serializes"), r#""12.5""#);
    }
}
