//! Small validated text values shared by several areas.
//!
//! Each type trims its input once, checks its length and alphabet, and from then on is known to
//! be valid. They serialize as plain strings and refuse invalid strings when deserialized, so a
//! journalled value read back from the database goes through the same check.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Invalid;

macro_rules! bounded_text {
    ($(#[$doc:meta])* $name:ident, $max:expr, $what:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The longest value accepted, in characters.
            pub const MAX_CHARS: usize = $max;

            /// Trims `raw` and accepts it when it is non-empty, at most
            #[doc = concat!("[`", stringify!($name), "::MAX_CHARS`]")]
            /// characters long and free of control characters.
            pub fn parse(raw: &str) -> Result<Self, Invalid> {
                parse_bounded(raw, Self::MAX_CHARS, $what).map(Self)
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

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

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

fn parse_bounded(raw: &str, max: usize, what: &str) -> Result<String, Invalid> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(Invalid::new(
            "required",
            format!("{what} must not be empty"),
        ));
    }
    if trimmed.chars().count() > max {
        return Err(Invalid::new(
            "too_long",
            format!("{what} must be at most {max} characters"),
        ));
    }
    if trimmed
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(Invalid::new(
            "invalid_characters",
            format!("{what} must not contain control characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

bounded_text!(
    /// The display name of an organization.
    OrgName, 200, "the organization name"
);
bounded_text!(
    /// A person's or a business's name (customers, technicians, users).
    Name, 200, "the name"
);
bounded_text!(
    /// A one-line summary of a job.
    Summary, 200, "the summary"
);
bounded_text!(
    /// Free text describing a job in detail.
    Description, 10_000, "the description"
);
bounded_text!(
    /// Why something was done (a hold, a cancellation).
    Reason, 1_000, "the reason"
);
bounded_text!(
    /// A phone number as the customer gave it. Only its length is checked: formats vary by country.
    Phone, 40, "the phone number"
);

/// A trade, such as `plumbing`, `hvac` or `gas_fitting`: lower-case ASCII letters, digits and
/// underscores, starting with a letter, at most 40 characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TradeCode(String);

impl TradeCode {
    /// Accepts a trade code; upper-case letters are folded to lower case and spaces or hyphens
    /// become underscores, so `Gas Fitting` is `gas_fitting`.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let folded: String = raw
            .trim()
            .chars()
            .map(|c| match c {
                ' ' | '-' => '_',
                c => c.to_ascii_lowercase(),
            })
            .collect();
        let valid = !folded.is_empty()
            && folded.len() <= 40
            && folded.starts_with(|c: char| c.is_ascii_lowercase())
            && folded
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if valid {
            Ok(Self(folded))
        } else {
            Err(Invalid::new(
                "invalid_trade",
                "a trade is 1 to 40 letters, digits or underscores, starting with a letter",
            ))
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Serialize for TradeCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TradeCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for TradeCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An e-mail address, lower-cased. The check is deliberately light (one `@`, a dot in the
/// domain, no spaces): the only real test of an address is a message that arrives.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

impl Email {
    /// Accepts an address of the form `local@domain.tld`, at most 254 characters, with no
    /// whitespace and no control characters (PostgreSQL cannot store a NUL in text: schemathesis
    /// found `customer/v1/update` answering 500 for one).
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let value = raw.trim().to_lowercase();
        let valid = value.len() <= 254
            && !value.chars().any(|c| c.is_whitespace() || c.is_control())
            && match value.split_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && !domain.contains('@')
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                }
                None => false,
            };
        if valid {
            Ok(Self(value))
        } else {
            Err(Invalid::new("invalid_email", "not a valid e-mail address"))
        }
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Serialize for Email {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password a person chose: 10 to 128 characters, not trimmed (a space is a character like any
/// other), not only whitespace, no control characters. It never serializes and its `Debug` hides
/// it, so it cannot reach a log or a journal by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// The shortest password accepted, in characters (NIST SP 800-63B asks for at least 8).
    pub const MIN_CHARS: usize = 10;
    /// The longest, in characters: enough for a passphrase, short enough to hash cheaply.
    pub const MAX_CHARS: usize = 128;

    /// Accepts a password within the bounds.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let chars = raw.chars().count();
        if chars < Self::MIN_CHARS {
            return Err(Invalid::new(
                "too_short",
                "a password has at least 10 characters",
            ));
        }
        if chars > Self::MAX_CHARS {
            return Err(Invalid::new(
                "too_long",
                "a password has at most 128 characters",
            ));
        }
        if raw.chars().all(char::is_whitespace) || raw.chars().any(char::is_control) {
            return Err(Invalid::new(
                "invalid_characters",
                "a password is not only whitespace and has no control characters",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The password's bytes, for hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_and_bounded() {
        assert_eq!(
            Summary::parse("  Leak  ").map(|s| s.0),
            Ok("Leak".to_owned())
        );
        assert_eq!(Summary::parse("   ").map_err(|e| e.code), Err("required"));
        assert_eq!(
            Summary::parse(&"x".repeat(201)).map_err(|e| e.code),
            Err("too_long")
        );
        assert_eq!(
            Summary::parse("a\u{0}b").map_err(|e| e.code),
            Err("invalid_characters")
        );
    }

    #[test]
    fn trade_codes_are_folded() {
        assert_eq!(
            TradeCode::parse("Gas Fitting").map(|t| t.0),
            Ok("gas_fitting".to_owned())
        );
        assert!(TradeCode::parse("1plumbing").is_err());
        assert!(TradeCode::parse("").is_err());
        assert!(TradeCode::parse("plumb!ng").is_err());
    }

    #[test]
    fn emails_are_checked_lightly() {
        assert_eq!(
            Email::parse(" Ann@Example.COM ").map(|e| e.0),
            Ok("ann@example.com".into())
        );
        for bad in [
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a b@example.com",
            "a@@b.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn passwords_are_bounded_and_hidden() {
        assert_eq!(
            Password::parse("short").map_err(|e| e.code),
            Err("too_short")
        );
        assert_eq!(
            Password::parse(&"x".repeat(129)).map_err(|e| e.code),
            Err("too_long")
        );
        assert_eq!(
            Password::parse("          ").map_err(|e| e.code),
            Err("invalid_characters")
        );
        let p = Password::parse(" correct horse ").expect("valid");
        assert_eq!(p.expose(), " correct horse ");
        assert_eq!(format!("{p:?}"), "Password(..)");
    }
}
