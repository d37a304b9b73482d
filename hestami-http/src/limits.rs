//! Request rate limits, per token and per organization.
//!
//! Each token and each organization has a bucket that fills at a sustained rate up to a burst.
//! An authenticated request takes one from its token's bucket and, when it names an
//! organization, one from the organization's, both or neither; a `sync/v1/push` takes one more
//! per further item it carries, so a phone catching up counts what it does. A request that finds
//! a bucket short is answered `429 RATE_LIMITED` with `Retry-After` and
//! `details.retryAfterSeconds`, before anything is read or written. The buckets are kept in the
//! process: several processes behind a balancer each allow the rate (documented in the README).
//! Sign-in has its own, durable attempt limits (`hestami_store::sessions`).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use uuid::Uuid;

use crate::error::ApiError;

/// A sustained rate with a burst above it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Requests a second, sustained.
    pub per_second: u32,
    /// Requests at once after a quiet spell (the bucket's size).
    pub burst: u32,
}

impl Rate {
    /// Reads `RATE` (a burst of twice the rate) or `RATE/BURST`; `0` is no limit (`None`).
    pub fn parse(raw: &str) -> Result<Option<Self>, String> {
        let number = |s: &str| {
            s.trim()
                .parse::<u32>()
                .map_err(|_| format!("{raw:?} is not RATE or RATE/BURST (requests a second)"))
        };
        let (per_second, burst) = match raw.split_once('/') {
            Some((rate, burst)) => (number(rate)?, Some(number(burst)?)),
            None => (number(raw)?, None),
        };
        if per_second == 0 {
            return Ok(None);
        }
        let burst = burst.unwrap_or(per_second.saturating_mul(2));
        if burst < per_second {
            return Err(format!("{raw:?}: the burst is at least the rate"));
        }
        Ok(Some(Self { per_second, burst }))
    }
}

/// The limits a server applies; `None` is no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RateLimits {
    /// Per bearer token (a device's session, an integration's token).
    pub per_token: Option<Rate>,
    /// Per organization, whoever calls.
    pub per_organization: Option<Rate>,
}

impl RateLimits {
    /// What `hestami serve` applies unless told otherwise: 50 a second per token (burst 100)
    /// and 200 a second per organization (burst 400).
    pub const SERVE: Self = Self {
        per_token: Some(Rate {
            per_second: 50,
            burst: 100,
        }),
        per_organization: Some(Rate {
            per_second: 200,
            burst: 400,
        }),
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    /// A token, by a keyed hash (the token itself is not kept).
    Token(u64),
    Organization(Uuid),
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    level: f64,
    at: Instant,
}

/// How many buckets may be kept before idle ones are dropped.
const SWEEP_ABOVE: usize = 50_000;

/// The buckets of one server.
#[derive(Debug)]
pub(crate) struct Limiter {
    limits: RateLimits,
    hasher: RandomState,
    buckets: Mutex<HashMap<Key, Bucket>>,
}

impl Limiter {
    pub(crate) fn new(limits: RateLimits) -> Self {
        Self {
            limits,
            hasher: RandomState::new(),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `cost` requests from the token's bucket and the organization's, or from neither.
    pub(crate) fn take(
        &self,
        token: &str,
        organization: Option<Uuid>,
        cost: u32,
    ) -> Result<(), ApiError> {
        self.take_at(token, organization, cost, Instant::now())
    }

    fn take_at(
        &self,
        token: &str,
        organization: Option<Uuid>,
        cost: u32,
        now: Instant,
    ) -> Result<(), ApiError> {
        let mut wanted: Vec<(Key, Rate, &str)> = Vec::with_capacity(2);
        if let Some(rate) = self.limits.per_token {
            wanted.push((Key::Token(self.hasher.hash_one(token)), rate, "token"));
        }
        if let (Some(rate), Some(org)) = (self.limits.per_organization, organization) {
            wanted.push((Key::Organization(org), rate, "organization"));
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > SWEEP_ABOVE {
            // A bucket untouched for a minute is full again (no burst is longer): forget it.
            buckets.retain(|_, b| now.duration_since(b.at) < Duration::from_secs(60));
        }
        let mut short: Option<(f64, &str, Rate)> = None;
        for (key, rate, what) in &wanted {
            let bucket = buckets.entry(*key).or_insert(Bucket {
                level: f64::from(rate.burst),
                at: now,
            });
            let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
            bucket.level =
                (bucket.level + elapsed * f64::from(rate.per_second)).min(f64::from(rate.burst));
            bucket.at = now;
            // A cost above the burst takes a full bucket.
            let cost = f64::from(cost.min(rate.burst));
            if bucket.level < cost {
                let wait = (cost - bucket.level) / f64::from(rate.per_second);
                if short.is_none_or(|(w, _, _)| wait > w) {
                    short = Some((wait, what, *rate));
                }
            }
        }
        if let Some((wait, what, rate)) = short {
            let seconds = wait.ceil().max(1.0) as u64;
            let mut error = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                format!(
                    "too many requests for this {what}: {} a second (bursts of {}); retry in {seconds} s",
                    rate.per_second, rate.burst
                ),
            );
            error.details = Some(serde_json::json!({
                "retryAfterSeconds": seconds,
                "limit": what,
            }));
            return Err(error);
        }
        for (key, rate, _) in &wanted {
            if let Some(bucket) = buckets.get_mut(key) {
                bucket.level -= f64::from(cost.min(rate.burst));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rates_parse() {
        assert_eq!(
            Rate::parse("50"),
            Ok(Some(Rate {
                per_second: 50,
                burst: 100
            }))
        );
        assert_eq!(
            Rate::parse("5/20"),
            Ok(Some(Rate {
                per_second: 5,
                burst: 20
            }))
        );
        assert_eq!(Rate::parse("0"), Ok(None));
        assert!(Rate::parse("5/2").is_err());
        assert!(Rate::parse("fast").is_err());
    }

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate_and_takes_from_both_or_neither() {
        let limiter = Limiter::new(RateLimits {
            per_token: Some(Rate {
                per_second: 2,
                burst: 4,
            }),
            per_organization: Some(Rate {
                per_second: 1,
                burst: 5,
            }),
        });
        let org = Uuid::nil();
        let t0 = Instant::now();
        for _ in 0..4 {
            limiter.take_at("a", Some(org), 1, t0).unwrap();
        }
        let refused = limiter.take_at("a", Some(org), 1, t0).unwrap_err();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.details.unwrap()["retryAfterSeconds"], 1);
        // Another token of the organization: one left in the organization's bucket, and the
        // refusal above took none.
        limiter.take_at("b", Some(org), 1, t0).unwrap();
        let org_short = limiter.take_at("b", Some(org), 1, t0).unwrap_err();
        assert_eq!(org_short.details.unwrap()["limit"], "organization");
        // A second later the token has 2 again and the organization 1.
        let t1 = t0 + Duration::from_secs(1);
        limiter.take_at("a", Some(org), 1, t1).unwrap();
        assert!(limiter.take_at("a", Some(org), 1, t1).is_err());
        // Without an organization only the token counts.
        limiter.take_at("a", None, 1, t1).unwrap();
        // A cost above the burst takes a full bucket.
        let t9 = t0 + Duration::from_secs(9);
        limiter.take_at("c", None, 40, t9).unwrap();
        assert!(limiter.take_at("c", None, 1, t9).is_err());
    }
}
