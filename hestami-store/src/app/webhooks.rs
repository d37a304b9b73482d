//! Webhooks: the change feed, pushed to the organization's subscribers.
//!
//! A subscription holds a URL, the event types it wants (`job.transitioned`, `invoice.*`, `*`),
//! a signing secret and a position in the feed (`delivered_through`). It is fed only from the
//! change feed — the feed has no gaps a reader could skip, so nothing is missed — by a one-shot
//! timer `webhook/<subscription id>` that the relay's pass (`Services::deliver_due`) fires
//! (several processes safe, one lease per subscription):
//!
//! - it reads the feed after the subscription's position, in order, and posts each matching
//!   change, one at a time: the receiver sees one subscription's events in feed order;
//! - each request follows the Standard Webhooks convention: `webhook-id` (stable per
//!   subscription and position, so a receiver can drop a repeat), `webhook-timestamp` and
//!   `webhook-signature` (`v1,` + base64 HMAC-SHA256 of `id.timestamp.body` under the secret;
//!   during a rotation, a second signature under the previous secret);
//! - a 2xx answer moves the position on; anything else (an error status, a timeout, a refused
//!   address) is logged and retried with the relay's backoff and jitter, honouring a
//!   `Retry-After` on 429 and 503, until the event has failed for
//!   [`super::delivery::RetryPolicy::give_up_after`]: it is then dead-lettered (logged as
//!   `dead`) and the position moves past it;
//! - every attempt is in the subscription's delivery log (`webhook/v1/deliveries`), and
//!   `webhook/v1/redeliver` moves the position back to replay the feed from a point.
//!
//! Subscription URLs must resolve to public addresses: private, loopback, link-local and other
//! special ranges are refused when the subscription is written and again at each connection
//! (the resolver filters them, so a DNS answer that changes cannot reach them), unless the
//! operator allows them ([`WebhookSettings`]). Redirects are not followed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

use hestami_core::ids::OrganizationId;

use super::delivery::jitter;
use super::{Caller, Page, PageRequest, Services};
use crate::db::{Row, args};
use crate::error::{Failure, FailureKind, FieldError, StoreError};
use crate::store::{Operation, TenantTx, new_id};

/// The timer that delivers one subscription's events: `webhook/<subscription id>`.
pub const WEBHOOK_TIMER_PREFIX: &str = "webhook/";

/// The workflow of webhook subscriptions.
pub const WORKFLOW: &str = "webhook_v1";

/// How many feed rows one pass reads for a subscription.
const BATCH: i64 = 100;

/// How long one pass may spend on a subscription before it yields (well inside the timer's
/// five-minute lease, so no second process takes the subscription while this one posts).
const PASS_BUDGET: std::time::Duration = std::time::Duration::from_secs(60);

/// How long the previous secret stays valid after a rotation.
pub const ROTATION_OVERLAP_HOURS: i64 = 24;

/// The most event types a subscription lists.
pub const MAX_EVENT_TYPES: usize = 50;

/// The longest subscription URL.
pub const MAX_URL_CHARS: usize = 2_000;

/// What a change's operation can be.
pub const OPERATIONS: [&str; 4] = ["created", "updated", "transitioned", "deleted"];

/// Which addresses webhooks may reach, and how they are polled.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    /// Allow loopback addresses (127.0.0.0/8, ::1): tests, and a receiver on the same host.
    pub allow_loopback: bool,
    /// Allow private, link-local and other non-public addresses.
    pub allow_private: bool,
    /// How long a receiver has to answer.
    pub timeout: std::time::Duration,
    /// How often an idle subscription looks for new changes.
    pub poll: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            allow_loopback: false,
            allow_private: false,
            timeout: std::time::Duration::from_secs(10),
            poll: Duration::seconds(5),
        }
    }
}

impl WebhookSettings {
    /// Whether a connection to `ip` is allowed.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if ip.is_loopback() {
            return self.allow_loopback || self.allow_private;
        }
        is_public(ip) || self.allow_private
    }
}

/// Whether `ip` is a public unicast address (not private, loopback, link-local, shared,
/// documentation, benchmarking, multicast, broadcast or unspecified).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            let embedded = |hi: u16, lo: u16| {
                IpAddr::V4(std::net::Ipv4Addr::new(
                    (hi >> 8) as u8,
                    hi as u8,
                    (lo >> 8) as u8,
                    lo as u8,
                ))
            };
            // Translation prefixes reach the IPv4 address they carry: NAT64 (64:ff9b::/96),
            // 6to4 (2002::/16) and the deprecated IPv4-compatible form (::/96).
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                return is_public(embedded(s[6], s[7]));
            }
            if s[0] == 0x2002 {
                return is_public(embedded(s[1], s[2]));
            }
            if s[..6] == [0, 0, 0, 0, 0, 0] {
                return false;
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] == 0x64 && s[1] == 0xff9b) // local-use NAT64 (64:ff9b:1::/48)
                || (s[0] == 0x2001 && s[1] == 0x0000) // Teredo
                || (s[0] == 0x2001 && s[1] == 0x0002 && s[2] == 0) // benchmarking
                || (s[0] == 0x2001 && s[1] == 0x0db8)) // documentation
        }
    }
}

fn url_error(code: &str, message: impl Into<String>) -> Failure {
    Failure::validation(vec![FieldError {
        field: "url".into(),
        code: code.into(),
        message: message.into(),
    }])
}

/// Checks a subscription URL: `http` or `https`, a host, no credentials, and every address it
/// resolves to allowed by `settings`.
pub async fn check_url(url: &str, settings: &WebhookSettings) -> Result<(), Failure> {
    if url.chars().count() > MAX_URL_CHARS {
        return Err(url_error(
            "invalid_length",
            format!("url is at most {MAX_URL_CHARS} characters"),
        ));
    }
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| url_error("invalid_url", format!("url is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(url_error("invalid_url", "url is an http or https URL"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(url_error(
            "invalid_url",
            "url carries no credentials; the signature authenticates each request",
        ));
    }
    let Some(host) = parsed.host() else {
        return Err(url_error("invalid_url", "url names a host"));
    };
    let port = parsed.port_or_known_default().unwrap_or(443);
    let addresses: Vec<IpAddr> = match host {
        url::Host::Ipv4(v4) => vec![IpAddr::V4(v4)],
        url::Host::Ipv6(v6) => vec![IpAddr::V6(v6)],
        url::Host::Domain(name) => match tokio::net::lookup_host((name, port)).await {
            Ok(found) => found.map(|a| a.ip()).collect(),
            Err(e) => {
                return Err(url_error(
                    "unresolvable_host",
                    format!("url's host {name} does not resolve: {e}"),
                ));
            }
        },
    };
    if addresses.is_empty() {
        return Err(url_error("unresolvable_host", "url's host has no address"));
    }
    if let Some(refused) = addresses.iter().find(|ip| !settings.allows(**ip)) {
        return Err(url_error(
            "address_not_allowed",
            format!(
                "url resolves to {refused}, a private, loopback or otherwise non-public address; webhooks go to public addresses only"
            ),
        ));
    }
    Ok(())
}

/// Resolves hosts for webhook requests, keeping only the addresses the settings allow.
struct FilteringResolver(Arc<WebhookSettings>);

impl reqwest::dns::Resolve for FilteringResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let settings = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| settings.allows(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The HTTP client webhooks are posted with.
pub(crate) fn client(settings: &WebhookSettings) -> Result<reqwest::Client, StoreError> {
    reqwest::Client::builder()
        .timeout(settings.timeout)
        .redirect(reqwest::redirect::Policy::none())
        // A proxy from the environment would resolve and reach the target itself, past the
        // address filter.
        .no_proxy()
        .dns_resolver(Arc::new(FilteringResolver(Arc::new(settings.clone()))))
        .user_agent("Hestami-Webhooks/1")
        .build()
        .map_err(|e| StoreError::Internal(format!("the webhook client: {e}")))
}

/// Checks event type patterns: `*`, `kind.*` or `kind.operation`.
pub fn check_event_types(types: &[String]) -> Result<(), Failure> {
    let mut errors = Vec::new();
    if types.is_empty() || types.len() > MAX_EVENT_TYPES {
        errors.push(FieldError {
            field: "eventTypes".into(),
            code: "invalid_length".into(),
            message: format!("eventTypes lists 1 to {MAX_EVENT_TYPES} event types"),
        });
    }
    let kind_ok = |k: &str| {
        !k.is_empty() && k.len() <= 50 && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
    };
    for (k, t) in types.iter().enumerate() {
        let ok = t == "*"
            || match t.split_once('.') {
                Some((kind, op)) => kind_ok(kind) && (op == "*" || OPERATIONS.contains(&op)),
                None => false,
            };
        if !ok {
            errors.push(FieldError {
                field: format!("eventTypes[{k}]"),
                code: "invalid_event_type".into(),
                message: format!(
                    "an event type is `*`, `kind.*` or `kind.operation` with an operation among {}",
                    OPERATIONS.join(", ")
                ),
            });
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Failure::validation(errors))
    }
}

/// Whether `event` (`job.transitioned`) is one of `patterns`.
pub fn matches(patterns: &[String], event: &str) -> bool {
    let kind = event.split_once('.').map_or(event, |(k, _)| k);
    patterns
        .iter()
        .any(|p| p == "*" || p == event || p.strip_suffix(".*").is_some_and(|k| k == kind))
}

/// A new signing secret: `whsec_` and 24 random bytes in base64.
fn new_secret() -> Result<String, StoreError> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Internal(format!("randomness: {e}")))?;
    Ok(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

/// The Standard Webhooks signature (`v1,<base64>`) of `body` sent as `id` at `timestamp`.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, StoreError> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .map_err(|e| StoreError::Internal(format!("a stored webhook secret: {e}")))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key)
        .map_err(|e| StoreError::Internal(format!("a webhook key: {e}")))?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// A subscription as the API shows it (never its secrets).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// Its id.
    pub id: Uuid,
    /// 1 on creation, +1 on each change.
    pub version: i64,
    /// Where events are posted.
    pub url: String,
    /// Which events (`*`, `kind.*`, `kind.operation`).
    pub event_types: Vec<String>,
    /// Whether events are posted.
    pub active: bool,
    /// The feed position handled last.
    pub delivered_through: i64,
    /// Failed attempts at the event at the head, while it fails.
    pub attempts: i32,
    /// Since when the event at the head has been failing.
    pub failing_since: Option<DateTime<Utc>>,
    /// The last failure.
    pub last_error: Option<String>,
    /// Until when the previous secret's signature is sent too (after a rotation).
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A subscription with its signing secret: what creating one and rotating its secret return.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionWithSecret {
    /// The subscription.
    pub subscription: Subscription,
    /// The secret receivers verify signatures with (`whsec_…`); shown only here.
    pub secret: String,
}

const COLUMNS: &str = "id, version, url, event_types, active, delivered_through, attempts, failing_since, last_error, \
                       previous_secret_expires_at, created_at, updated_at";

fn decode(row: &Row) -> Result<Subscription, StoreError> {
    Ok(Subscription {
        id: row.get("id")?,
        version: row.get("version")?,
        url: row.get("url")?,
        event_types: serde_json::from_str(&row.get::<String>("event_types")?)?,
        active: row.get("active")?,
        delivered_through: row.get("delivered_through")?,
        attempts: row.get::<i64>("attempts")? as i32,
        failing_since: row.get("failing_since")?,
        last_error: row.get("last_error")?,
        previous_secret_expires_at: row.get("previous_secret_expires_at")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

async fn load(tx: &mut TenantTx, id: Uuid, lock: bool) -> Result<Subscription, StoreError> {
    let org = tx.org();
    let lock = if lock { tx.for_update() } else { "" };
    let row = tx
        .fetch_optional(
            &format!("SELECT {COLUMNS} FROM webhook_subscriptions WHERE organization_id = $1 AND id = $2{lock}"),
            args![org, id],
        )
        .await?
        .ok_or_else(|| Failure::not_found("webhook subscription"))?;
    decode(&row)
}

/// One attempt to deliver one event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// Its id.
    pub id: Uuid,
    /// The feed position.
    pub seq: i64,
    /// The event type.
    pub event_type: String,
    /// The `webhook-id` sent.
    pub message_id: String,
    /// 1 for the first attempt at this position (since the last re-delivery from before it).
    pub attempt: i32,
    /// When.
    pub at: DateTime<Utc>,
    /// delivered, retry or dead.
    pub outcome: String,
    /// The receiver's status code, when it answered.
    pub status_code: Option<i32>,
    /// What went wrong.
    pub detail: Option<String>,
    /// How long the request took.
    pub duration_ms: i64,
}

/// The `webhook-id` of a subscription's event at a feed position: the same on every attempt and
/// every re-delivery.
pub fn message_id(subscription: Uuid, seq: i64) -> String {
    format!(
        "msg_{}",
        super::timers::timer_key(&format!("webhook/{subscription}/{seq}")).simple()
    )
}

/// `webhook/v1` commands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "procedure", content = "input")]
pub enum WebhookCommand {
    /// `webhook/v1/create`: events from the next change on (or from `fromSeq`).
    #[serde(rename = "webhook/v1/create")]
    Create {
        /// Where to post.
        url: String,
        /// Which events.
        event_types: Vec<String>,
        /// Deliver the feed after this position (default: the current end, so only new changes).
        after_seq: Option<i64>,
    },
    /// `webhook/v1/update`: URL, event types, active.
    #[serde(rename = "webhook/v1/update")]
    Update {
        /// Which subscription.
        subscription_id: Uuid,
        /// Fail with `VERSION_CONFLICT` unless it is at this version.
        expected_version: Option<i64>,
        /// A new URL.
        url: Option<String>,
        /// New event types.
        event_types: Option<Vec<String>>,
        /// Pause or resume.
        active: Option<bool>,
    },
    /// `webhook/v1/rotateSecret`: a new secret; the previous one is also signed with for
    /// [`ROTATION_OVERLAP_HOURS`].
    #[serde(rename = "webhook/v1/rotateSecret")]
    RotateSecret {
        /// Which subscription.
        subscription_id: Uuid,
    },
    /// `webhook/v1/redeliver`: deliver again from a feed position (every later change too).
    #[serde(rename = "webhook/v1/redeliver")]
    Redeliver {
        /// Which subscription.
        subscription_id: Uuid,
        /// The first position to deliver again.
        from_seq: i64,
    },
}

impl super::Command for WebhookCommand {
    const WORKFLOW: &'static str = WORKFLOW;
    fn procedure(&self) -> &'static str {
        match self {
            Self::Create { .. } => "webhook/v1/create",
            Self::Update { .. } => "webhook/v1/update",
            Self::RotateSecret { .. } => "webhook/v1/rotateSecret",
            Self::Redeliver { .. } => "webhook/v1/redeliver",
        }
    }
}

async fn feed_end(tx: &mut TenantTx) -> Result<i64, StoreError> {
    let org = tx.org();
    tx.fetch_one(
        "SELECT COALESCE(MAX(seq), 0) AS seq FROM change_feed WHERE organization_id = $1",
        args![org],
    )
    .await?
    .get("seq")
}

async fn schedule(tx: &mut TenantTx, id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError> {
    tx.arm_timer(&format!("{WEBHOOK_TIMER_PREFIX}{id}"), at)
        .await
}

pub(crate) async fn run(
    mut ctx: crate::engine::WorkflowCtx,
    command: WebhookCommand,
) -> Result<serde_json::Value, StoreError> {
    ctx.step("webhook_subscription", move |tx| {
        Box::pin(operate(tx, command))
    })
    .await
}

async fn operate(
    tx: &mut TenantTx,
    command: WebhookCommand,
) -> Result<serde_json::Value, StoreError> {
    let (org, now) = (tx.org(), tx.now());
    match command {
        WebhookCommand::Create {
            url,
            event_types,
            after_seq,
        } => {
            check_event_types(&event_types)?;
            let end = feed_end(tx).await?;
            let from = after_seq.unwrap_or(end);
            if !(0..=end).contains(&from) {
                return Err(Failure::validation(vec![FieldError {
                    field: "afterSeq".into(),
                    code: "out_of_range".into(),
                    message: format!("afterSeq is a position in the feed, 0 to {end}"),
                }])
                .into());
            }
            let id = new_id();
            let secret = new_secret()?;
            tx.execute(
                "INSERT INTO webhook_subscriptions (organization_id, id, version, url, event_types, secret, active, \
                 delivered_through, attempts, created_at, updated_at) VALUES ($1, $2, 1, $3, $4, $5, TRUE, $6, 0, $7, $7)",
                args![org, id, url, serde_json::to_string(&event_types)?, secret.clone(), from, now],
            )
            .await?;
            tx.record_change("webhook_subscription", id, 1, Operation::Created)
                .await?;
            schedule(tx, id, now).await?;
            let subscription = load(tx, id, false).await?;
            Ok(serde_json::to_value(SubscriptionWithSecret {
                subscription,
                secret,
            })?)
        }
        WebhookCommand::Update {
            subscription_id,
            expected_version,
            url,
            event_types,
            active,
        } => {
            let current = load(tx, subscription_id, true).await?;
            super::check_version("webhook subscription", expected_version, current.version)?;
            if let Some(types) = &event_types {
                check_event_types(types)?;
            }
            let version = current.version + 1;
            // A new URL, or a subscription resumed, starts its retries afresh: the failures
            // counted so far were another endpoint's, or from before the pause.
            let fresh = url.as_ref().is_some_and(|u| *u != current.url)
                || (active == Some(true) && !current.active);
            let url = url.unwrap_or(current.url);
            let types = event_types.unwrap_or(current.event_types);
            let active = active.unwrap_or(current.active);
            tx.execute(
                "UPDATE webhook_subscriptions SET version = $1, url = $2, event_types = $3, active = $4, updated_at = $5 \
                 WHERE organization_id = $6 AND id = $7",
                args![version, url, serde_json::to_string(&types)?, active, now, org, subscription_id],
            )
            .await?;
            if fresh {
                tx.execute(
                    "UPDATE webhook_subscriptions SET attempts = 0, failing_since = NULL, last_error = NULL \
                     WHERE organization_id = $1 AND id = $2",
                    args![org, subscription_id],
                )
                .await?;
            }
            tx.record_change(
                "webhook_subscription",
                subscription_id,
                version,
                Operation::Updated,
            )
            .await?;
            if active {
                schedule(tx, subscription_id, now).await?;
            }
            Ok(serde_json::to_value(
                load(tx, subscription_id, false).await?,
            )?)
        }
        WebhookCommand::RotateSecret { subscription_id } => {
            let current = load(tx, subscription_id, true).await?;
            let old = tx
                .fetch_one(
                    "SELECT secret FROM webhook_subscriptions WHERE organization_id = $1 AND id = $2",
                    args![org, subscription_id],
                )
                .await?
                .get::<String>("secret")?;
            let secret = new_secret()?;
            let version = current.version + 1;
            tx.execute(
                "UPDATE webhook_subscriptions SET version = $1, secret = $2, previous_secret = $3, \
                 previous_secret_expires_at = $4, updated_at = $5 WHERE organization_id = $6 AND id = $7",
                args![version, secret.clone(), old, now + Duration::hours(ROTATION_OVERLAP_HOURS), now, org, subscription_id],
            )
            .await?;
            tx.record_change(
                "webhook_subscription",
                subscription_id,
                version,
                Operation::Updated,
            )
            .await?;
            let subscription = load(tx, subscription_id, false).await?;
            Ok(serde_json::to_value(SubscriptionWithSecret {
                subscription,
                secret,
            })?)
        }
        WebhookCommand::Redeliver {
            subscription_id,
            from_seq,
        } => {
            let current = load(tx, subscription_id, true).await?;
            let end = feed_end(tx).await?;
            if !(1..=end.max(1)).contains(&from_seq) {
                return Err(Failure::validation(vec![FieldError {
                    field: "fromSeq".into(),
                    code: "out_of_range".into(),
                    message: format!("fromSeq is a position in the feed, 1 to {}", end.max(1)),
                }])
                .into());
            }
            if !current.active {
                return Err(Failure::new(
                    FailureKind::Conflict,
                    "SUBSCRIPTION_INACTIVE",
                    "the subscription is paused; activate it first",
                )
                .into());
            }
            let version = current.version + 1;
            tx.execute(
                "UPDATE webhook_subscriptions SET version = $1, delivered_through = $2, attempts = 0, failing_since = NULL, \
                 last_error = NULL, updated_at = $3 WHERE organization_id = $4 AND id = $5",
                args![version, from_seq - 1, now, org, subscription_id],
            )
            .await?;
            tx.record_change(
                "webhook_subscription",
                subscription_id,
                version,
                Operation::Updated,
            )
            .await?;
            schedule(tx, subscription_id, now).await?;
            Ok(serde_json::to_value(
                load(tx, subscription_id, false).await?,
            )?)
        }
    }
}

/// A subscription as the relay reads it.
struct Target {
    /// The subscription's version when read: an operator's change (update, rotation,
    /// re-delivery) makes the pass stop at its next record.
    version: i64,
    url: String,
    event_types: Vec<String>,
    secret: String,
    previous_secret: Option<String>,
    delivered_through: i64,
    attempts: i64,
    failing_since: Option<DateTime<Utc>>,
}

/// What posting one event came to.
struct Posted {
    ok: bool,
    status: Option<u16>,
    detail: Option<String>,
    retry_after: Option<Duration>,
    duration_ms: i64,
}

impl Services {
    /// `webhook/v1/list`.
    pub async fn webhook_list(
        &self,
        caller: &Caller,
        page: PageRequest,
    ) -> Result<Page<Subscription>, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let org = tx.org();
                let rows = tx
                    .fetch_all(
                        &format!("SELECT {COLUMNS} FROM webhook_subscriptions WHERE organization_id = $1 \
                                  AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3"),
                        args![org, page.after, i64::from(page.limit) + 1],
                    )
                    .await?;
                let items = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
                Ok(page.page(items, |s| s.id))
            })
        })
        .await
    }

    /// `webhook/v1/get`.
    pub async fn webhook_get(&self, caller: &Caller, id: Uuid) -> Result<Subscription, StoreError> {
        self.read(caller, move |tx| Box::pin(load(tx, id, false)))
            .await
    }

    /// `webhook/v1/deliveries`: a subscription's delivery log, in the order attempted
    /// (optionally only one feed position's attempts).
    pub async fn webhook_deliveries(
        &self,
        caller: &Caller,
        subscription_id: Uuid,
        seq: Option<i64>,
        page: PageRequest,
    ) -> Result<Page<Delivery>, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                load(tx, subscription_id, false).await?;
                let org = tx.org();
                let rows = tx
                    .fetch_all(
                        "SELECT id, seq, event_type, attempt, at, outcome, status_code, detail, duration_ms \
                         FROM webhook_deliveries WHERE organization_id = $1 AND subscription_id = $2 \
                         AND ($3 IS NULL OR id > $3) AND ($4 IS NULL OR seq = $4) ORDER BY id LIMIT $5",
                        args![org, subscription_id, page.after, seq, i64::from(page.limit) + 1],
                    )
                    .await?;
                let items = rows
                    .iter()
                    .map(|r| {
                        let seq: i64 = r.get("seq")?;
                        Ok(Delivery {
                            id: r.get("id")?,
                            seq,
                            event_type: r.get("event_type")?,
                            message_id: message_id(subscription_id, seq),
                            attempt: r.get::<i64>("attempt")? as i32,
                            at: r.get("at")?,
                            outcome: r.get("outcome")?,
                            status_code: r.get::<Option<i64>>("status_code")?.map(|c| c as i32),
                            detail: r.get("detail")?,
                            duration_ms: r.get("duration_ms")?,
                        })
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?;
                Ok(page.page(items, |d| d.id))
            })
        })
        .await
    }

    /// Checks a subscription URL against this server's settings (`400` naming `url`).
    pub async fn check_webhook_url(&self, url: &str) -> Result<(), Failure> {
        check_url(url, &self.relay.webhooks).await
    }

    async fn post_event(
        &self,
        client: &reqwest::Client,
        target: &Target,
        id: &str,
        body: Vec<u8>,
        now: DateTime<Utc>,
    ) -> Result<Posted, StoreError> {
        let timestamp = now.timestamp();
        let mut signature = sign(&target.secret, id, timestamp, &body)?;
        if let Some(previous) = &target.previous_secret {
            signature.push(' ');
            signature.push_str(&sign(previous, id, timestamp, &body)?);
        }
        let started = std::time::Instant::now();
        let outcome = match reqwest::Url::parse(&target.url) {
            Err(e) => Err(format!("the URL: {e}")),
            Ok(url) => {
                // A literal address is not resolved, so the resolver cannot filter it.
                let literal = match url.host() {
                    Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
                    Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
                    _ => None,
                };
                match literal {
                    Some(ip) if !self.relay.webhooks.allows(ip) => {
                        Err(format!("{ip} is not a public address"))
                    }
                    _ => client
                        .post(url)
                        .header("content-type", "application/json")
                        .header("webhook-id", id)
                        .header("webhook-timestamp", timestamp.to_string())
                        .header("webhook-signature", signature)
                        .body(body)
                        .send()
                        .await
                        .map_err(|e| {
                            if e.is_timeout() {
                                format!("no answer within {:?}", self.relay.webhooks.timeout)
                            } else {
                                // The whole chain: the cause (a refused address, a
                                // reset connection) is a few sources down.
                                let mut text = e.to_string();
                                let mut cause = std::error::Error::source(&e);
                                while let Some(c) = cause {
                                    text.push_str(": ");
                                    text.push_str(&c.to_string());
                                    cause = c.source();
                                }
                                text
                            }
                        }),
                }
            }
        };
        let duration_ms = started.elapsed().as_millis() as i64;
        Ok(match outcome {
            Err(detail) => Posted {
                ok: false,
                status: None,
                detail: Some(detail),
                retry_after: None,
                duration_ms,
            },
            Ok(response) => {
                let status = response.status();
                let retry_after = if status.as_u16() == 429 || status.as_u16() == 503 {
                    response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<i64>().ok())
                        .map(|s| Duration::seconds(s.clamp(0, 86_400)))
                } else {
                    None
                };
                Posted {
                    ok: status.is_success(),
                    status: Some(status.as_u16()),
                    detail: (!status.is_success())
                        .then(|| format!("the receiver answered {status}")),
                    retry_after,
                    duration_ms,
                }
            }
        })
    }

    /// Delivers what a subscription has not yet received (the timer `webhook/<id>` is due);
    /// returns when to look again (`None`: the subscription is paused or gone).
    pub(crate) async fn deliver_webhooks(
        &self,
        organization_id: OrganizationId,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let caller = Caller::new(organization_id, None);
        let settings = &self.relay.webhooks;
        let loaded = self
            .read(&caller, move |tx| {
                Box::pin(async move {
                    let org = tx.org();
                    let Some(row) = tx
                        .fetch_optional(
                            "SELECT version, url, event_types, secret, previous_secret, previous_secret_expires_at, \
                             active, delivered_through, attempts, failing_since FROM webhook_subscriptions \
                             WHERE organization_id = $1 AND id = $2",
                            args![org, id],
                        )
                        .await?
                    else {
                        return Ok(None);
                    };
                    if !row.get::<bool>("active")? {
                        return Ok(None);
                    }
                    let expires: Option<DateTime<Utc>> = row.get("previous_secret_expires_at")?;
                    let target = Target {
                        version: row.get("version")?,
                        url: row.get("url")?,
                        event_types: serde_json::from_str(&row.get::<String>("event_types")?)?,
                        secret: row.get("secret")?,
                        previous_secret: row
                            .get::<Option<String>>("previous_secret")?
                            .filter(|_| expires.is_some_and(|at| at > now)),
                        delivered_through: row.get("delivered_through")?,
                        attempts: row.get("attempts")?,
                        failing_since: row.get("failing_since")?,
                    };
                    let changes =
                        super::workflow::changes_after(tx, target.delivered_through, BATCH).await?;
                    Ok(Some((target, changes)))
                })
            })
            .await?;
        let Some((mut target, changes)) = loaded else {
            return Ok(None);
        };
        let full = changes.len() as i64 == BATCH;
        let client = client(settings)?;
        let started = std::time::Instant::now();
        let mut skipped_through = None;
        for change in changes {
            if started.elapsed() > PASS_BUDGET {
                self.advance(&caller, id, &mut target, skipped_through.take(), None)
                    .await?;
                return Ok(Some(self.store().now()));
            }
            let event_type = format!("{}.{}", change.entity_kind, change.operation);
            if !matches(&target.event_types, &event_type) {
                skipped_through = Some(change.seq);
                continue;
            }
            // What was skipped before this event is handled.
            if let Some(seq) = skipped_through.take()
                && !self
                    .advance(&caller, id, &mut target, Some(seq), None)
                    .await?
            {
                return Ok(Some(self.store().now()));
            }
            let message = message_id(id, change.seq);
            let body = serde_json::to_vec(&serde_json::json!({
                "type": event_type,
                "timestamp": change.at,
                "data": change,
            }))?;
            let at = self.store().now().max(now);
            let posted = self
                .post_event(&client, &target, &message, body, at)
                .await?;
            let failing_since = target.failing_since.unwrap_or(at);
            let attempt = target.attempts + 1;
            let (outcome, next) = if posted.ok {
                ("delivered", None)
            } else if at - failing_since >= self.relay.policy.give_up_after {
                ("dead", None)
            } else {
                let backoff = self.relay.policy.backoff(attempt as u32, jitter());
                let wait = posted.retry_after.map_or(backoff, |r| r.max(backoff));
                ("retry", Some(at + wait))
            };
            let log = LogRow {
                seq: change.seq,
                event_type,
                attempt,
                at,
                outcome,
                status: posted.status,
                detail: posted.detail.clone(),
                duration_ms: posted.duration_ms,
            };
            match next {
                None => {
                    if !self
                        .advance(&caller, id, &mut target, Some(change.seq), Some(log))
                        .await?
                    {
                        return Ok(Some(self.store().now()));
                    }
                    if outcome == "dead" {
                        tracing::warn!(organization.id = %organization_id, subscription.id = %id, seq = change.seq, "a webhook event was dead-lettered");
                    }
                }
                Some(retry_at) => {
                    self.fail(&caller, id, &target, failing_since, posted.detail, log)
                        .await?;
                    return Ok(Some(retry_at));
                }
            }
        }
        if let Some(seq) = skipped_through {
            self.advance(&caller, id, &mut target, Some(seq), None)
                .await?;
        }
        Ok(Some(if full {
            self.store().now()
        } else {
            now + settings.poll
        }))
    }

    /// Moves a subscription's position to `seq` (when given) and logs `log`, only if nobody
    /// moved it meanwhile (a re-delivery); whether it did.
    async fn advance(
        &self,
        caller: &Caller,
        id: Uuid,
        target: &mut Target,
        seq: Option<i64>,
        log: Option<LogRow>,
    ) -> Result<bool, StoreError> {
        let Some(seq) = seq else { return Ok(true) };
        let mut tx = self.store().tenant(caller.organization_id, true).await?;
        let org = tx.org();
        let moved = tx
            .execute(
                "UPDATE webhook_subscriptions SET delivered_through = $1, attempts = 0, failing_since = NULL, \
                 last_error = $2 WHERE organization_id = $3 AND id = $4 AND delivered_through = $5 AND version = $6",
                args![
                    seq,
                    log.as_ref().filter(|l| l.outcome == "dead").and_then(|l| l.detail.clone()),
                    org,
                    id,
                    target.delivered_through,
                    target.version
                ],
            )
            .await?;
        if moved == 0 {
            drop(tx);
            return Ok(false);
        }
        if let Some(log) = log {
            insert_log(&mut tx, id, &log).await?;
        }
        tx.commit().await?;
        target.delivered_through = seq;
        target.attempts = 0;
        target.failing_since = None;
        Ok(true)
    }

    /// Records a failed attempt at the event at the head.
    async fn fail(
        &self,
        caller: &Caller,
        id: Uuid,
        target: &Target,
        failing_since: DateTime<Utc>,
        error: Option<String>,
        log: LogRow,
    ) -> Result<(), StoreError> {
        let mut tx = self.store().tenant(caller.organization_id, true).await?;
        let org = tx.org();
        let moved = tx
            .execute(
                "UPDATE webhook_subscriptions SET attempts = $1, failing_since = $2, last_error = $3 \
                 WHERE organization_id = $4 AND id = $5 AND delivered_through = $6 AND version = $7",
                args![log.attempt, failing_since, error, org, id, target.delivered_through, target.version],
            )
            .await?;
        if moved == 1 {
            insert_log(&mut tx, id, &log).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

struct LogRow {
    seq: i64,
    event_type: String,
    attempt: i64,
    at: DateTime<Utc>,
    outcome: &'static str,
    status: Option<u16>,
    detail: Option<String>,
    duration_ms: i64,
}

async fn insert_log(tx: &mut TenantTx, subscription: Uuid, log: &LogRow) -> Result<(), StoreError> {
    let org = tx.org();
    tx.execute(
        "INSERT INTO webhook_deliveries (organization_id, subscription_id, id, seq, event_type, attempt, at, outcome, \
         status_code, detail, duration_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        args![
            org,
            subscription,
            new_id(),
            log.seq,
            log.event_type.clone(),
            log.attempt,
            log.at,
            log.outcome,
            log.status.map(i64::from),
            log.detail.clone(),
            log.duration_ms
        ],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_kinds_and_operations() {
        let p = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(matches(&p(&["*"]), "job.created"));
        assert!(matches(&p(&["job.*"]), "job.transitioned"));
        assert!(!matches(&p(&["job.*"]), "jobs.created"));
        assert!(matches(
            &p(&["invoice.transitioned"]),
            "invoice.transitioned"
        ));
        assert!(!matches(&p(&["invoice.created"]), "invoice.transitioned"));
        assert!(check_event_types(&p(&["job.*", "invoice.transitioned", "*"])).is_ok());
        assert!(check_event_types(&p(&["job", "Job.created", "job.moved"])).is_err());
        assert!(check_event_types(&[]).is_err());
    }

    #[test]
    fn only_public_addresses_unless_allowed() {
        let strict = WebhookSettings::default();
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.4",
            "169.254.169.254",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
            "192.0.0.8",
            "fec0::1",
            "64:ff9b::a00:5",
            "64:ff9b:1::1",
            "2002:a00:5::1",
            "::a00:5",
            "2001::1",
            "2001:2::1",
            "2001:db8::1",
        ] {
            assert!(!strict.allows(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "2606:2800:220:1:248:1893:25c8:1946",
            "64:ff9b::5db8:d822",
            "2002:5db8:d822::1",
        ] {
            assert!(strict.allows(ip.parse().unwrap()), "{ip}");
        }
        let loopback = WebhookSettings {
            allow_loopback: true,
            ..Default::default()
        };
        assert!(loopback.allows("127.0.0.1".parse().unwrap()));
        assert!(!loopback.allows("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The example of the Standard Webhooks specification's reference libraries.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let signature = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap();
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
