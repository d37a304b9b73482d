//! `webhook/v1`: the change feed pushed to the organization's own endpoints, signed the
//! Standard Webhooks way, in order per subscription, retried and dead-lettered, with a delivery
//! log and re-delivery from a point in the feed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use hestami_store::app::PageRequest;
use hestami_store::app::webhooks::{
    Delivery, Subscription, SubscriptionWithSecret, WebhookCommand, check_event_types,
};

use crate::error::ApiError;
use crate::rpc::{Ctx, Name, Procedure, mutation, mutation_async, query};

/// A subscription (its secret is shown only when created or rotated).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionDto {
    /// Its id.
    pub id: Uuid,
    /// 1 on creation, +1 on each change; pass it as `expectedVersion`.
    pub version: i64,
    /// Where events are posted.
    pub url: String,
    /// Which events: `*`, `kind.*` or `kind.operation`.
    pub event_types: Vec<String>,
    /// Whether events are posted.
    pub active: bool,
    /// The feed position handled last (delivered or dead-lettered).
    pub delivered_through: i64,
    /// Failed attempts at the event after `deliveredThrough`, while it fails.
    pub attempts: i32,
    /// Since when that event has been failing.
    pub failing_since: Option<DateTime<Utc>>,
    /// The last failure.
    pub last_error: Option<String>,
    /// Until when requests also carry a signature under the previous secret.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<Subscription> for SubscriptionDto {
    fn from(s: Subscription) -> Self {
        Self {
            id: s.id,
            version: s.version,
            url: s.url,
            event_types: s.event_types,
            active: s.active,
            delivered_through: s.delivered_through,
            attempts: s.attempts,
            failing_since: s.failing_since,
            last_error: s.last_error,
            previous_secret_expires_at: s.previous_secret_expires_at,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// A subscription and its signing secret.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionSecretDto {
    /// The subscription.
    pub subscription: SubscriptionDto,
    /// The secret (`whsec_` and base64) receivers verify `webhook-signature` with: the
    /// base64 of HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}`. Shown only here.
    pub secret: String,
}

impl From<SubscriptionWithSecret> for SubscriptionSecretDto {
    fn from(s: SubscriptionWithSecret) -> Self {
        Self {
            subscription: s.subscription.into(),
            secret: s.secret,
        }
    }
}

/// An event type: `*`, `kind.*`, or `kind.operation` (created, updated, transitioned, deleted).
pub(crate) const EVENT_TYPE_PATTERN: &str =
    r"^(\*|[a-z_]{1,50}\.(\*|created|updated|transitioned|deleted))$";

/// `webhook/v1/create`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateWebhookInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// An `http` or `https` URL without credentials, whose host resolves to public addresses
    /// only (unless the server allows others).
    #[schema(
        min_length = 10,
        max_length = 2000,
        pattern = r"^https?://[^\s/@]+(/\S*)?$"
    )]
    pub url: String,
    /// Which events (1 to 50).
    #[schema(min_items = 1, max_items = 50)]
    pub event_types: Vec<String>,
    /// Deliver the feed after this position (default: its current end, so only new changes).
    #[schema(minimum = 0)]
    pub after_seq: Option<i64>,
}

/// `webhook/v1/update`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateWebhookInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which subscription.
    pub subscription_id: Uuid,
    /// Fail with `VERSION_CONFLICT` unless it is at this version.
    pub expected_version: Option<i64>,
    /// A new URL (same rules as on creation).
    #[schema(
        min_length = 10,
        max_length = 2000,
        pattern = r"^https?://[^\s/@]+(/\S*)?$"
    )]
    pub url: Option<String>,
    /// New event types (1 to 50).
    #[schema(min_items = 1, max_items = 50)]
    pub event_types: Option<Vec<String>>,
    /// Pause (false) or resume (true); a resumed subscription catches up from where it stopped.
    pub active: Option<bool>,
}

/// `webhook/v1/rotateSecret`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateSecretInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which subscription.
    pub subscription_id: Uuid,
}

/// `webhook/v1/redeliver`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedeliverInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which subscription.
    pub subscription_id: Uuid,
    /// The first feed position to deliver again (every later matching change follows).
    #[schema(minimum = 1)]
    pub from_seq: i64,
}

mutating!(
    CreateWebhookInput,
    UpdateWebhookInput,
    RotateSecretInput,
    RedeliverInput
);

/// `webhook/v1/get`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetWebhookInput {
    /// Which subscription.
    pub subscription_id: Uuid,
}

/// `webhook/v1/list`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListWebhooksInput {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of subscriptions.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionPage {
    /// The subscriptions, oldest first.
    pub items: Vec<SubscriptionDto>,
    /// Pass it as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// `webhook/v1/deliveries`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeliveriesInput {
    /// Which subscription.
    pub subscription_id: Uuid,
    /// Only the attempts at this feed position.
    #[schema(minimum = 1)]
    pub seq: Option<i64>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// One attempt to deliver one event.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryDto {
    /// Its id.
    pub id: Uuid,
    /// The feed position.
    pub seq: i64,
    /// The event type (`job.transitioned`).
    pub event_type: String,
    /// The `webhook-id` sent: the same on every attempt at this position.
    pub message_id: String,
    /// The attempt's number at this position.
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

impl From<Delivery> for DeliveryDto {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id,
            seq: d.seq,
            event_type: d.event_type,
            message_id: d.message_id,
            attempt: d.attempt,
            at: d.at,
            outcome: d.outcome,
            status_code: d.status_code,
            detail: d.detail,
            duration_ms: d.duration_ms,
        }
    }
}

/// A page of the delivery log.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryPage {
    /// The attempts, in the order made.
    pub items: Vec<DeliveryDto>,
    /// Pass it as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// Checks a URL against the server's address rules, unless this very request was already
/// answered: the check reads DNS and the server's flags, which may have changed since, and a
/// retry must get the recorded answer, not a refusal.
async fn check_url(ctx: &Ctx, procedure: &str, key: Uuid, url: &str) -> Result<(), ApiError> {
    match ctx.services.check_webhook_url(url).await {
        Ok(()) => Ok(()),
        Err(refused) => {
            if ctx
                .services
                .is_recorded(ctx.caller()?, procedure, key)
                .await?
            {
                Ok(())
            } else {
                Err(refused.into())
            }
        }
    }
}

async fn create(ctx: Ctx, i: CreateWebhookInput) -> Result<WebhookCommand, ApiError> {
    check_event_types(&i.event_types)?;
    if i.after_seq.is_some_and(|s| s < 0) {
        return Err(ApiError::field(
            "afterSeq",
            "out_of_range",
            "afterSeq is a position in the feed, 0 or more",
        ));
    }
    check_url(&ctx, "webhook/v1/create", i.idempotency_key, &i.url).await?;
    Ok(WebhookCommand::Create {
        url: i.url,
        event_types: i.event_types,
        after_seq: i.after_seq,
    })
}

async fn update(ctx: Ctx, i: UpdateWebhookInput) -> Result<WebhookCommand, ApiError> {
    if let Some(types) = &i.event_types {
        check_event_types(types)?;
    }
    if let Some(url) = &i.url {
        check_url(&ctx, "webhook/v1/update", i.idempotency_key, url).await?;
    }
    Ok(WebhookCommand::Update {
        subscription_id: i.subscription_id,
        expected_version: i.expected_version,
        url: i.url,
        event_types: i.event_types,
        active: i.active,
    })
}

fn redeliver(i: RedeliverInput) -> Result<WebhookCommand, ApiError> {
    if i.from_seq < 1 {
        return Err(ApiError::field(
            "fromSeq",
            "out_of_range",
            "fromSeq is a position in the feed, 1 or more",
        ));
    }
    Ok(WebhookCommand::Redeliver {
        subscription_id: i.subscription_id,
        from_seq: i.from_seq,
    })
}

async fn list(ctx: Ctx, i: ListWebhooksInput) -> Result<SubscriptionPage, ApiError> {
    let page = PageRequest::parse(i.limit, i.cursor.as_deref())?;
    let page = ctx.services.webhook_list(ctx.caller()?, page).await?;
    Ok(SubscriptionPage {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    })
}

async fn deliveries(ctx: Ctx, i: DeliveriesInput) -> Result<DeliveryPage, ApiError> {
    let page = PageRequest::parse(i.limit, i.cursor.as_deref())?;
    if i.seq.is_some_and(|s| s < 1) {
        return Err(ApiError::field(
            "seq",
            "out_of_range",
            "seq is a position in the feed, 1 or more",
        ));
    }
    let page = ctx
        .services
        .webhook_deliveries(ctx.caller()?, i.subscription_id, i.seq, page)
        .await?;
    Ok(DeliveryPage {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    })
}

pub(crate) fn procedures() -> Vec<Procedure> {
    vec![
        mutation_async(
            Name {
                namespace: "webhook",
                version: "v1",
                name: "create",
                summary: "Subscribe a URL to the organization's changes; returns the signing secret (shown only here)",
                errors: &[],
            },
            create,
            <SubscriptionSecretDto as From<SubscriptionWithSecret>>::from,
        ),
        mutation_async(
            Name {
                namespace: "webhook",
                version: "v1",
                name: "update",
                summary: "Change a subscription's URL or event types, or pause and resume it",
                errors: &["NOT_FOUND", "VERSION_CONFLICT"],
            },
            update,
            <SubscriptionDto as From<Subscription>>::from,
        ),
        mutation(
            Name {
                namespace: "webhook",
                version: "v1",
                name: "rotateSecret",
                summary: "A new signing secret; for 24 hours requests also carry a signature under the previous one",
                errors: &["NOT_FOUND"],
            },
            |i: RotateSecretInput| {
                Ok(WebhookCommand::RotateSecret {
                    subscription_id: i.subscription_id,
                })
            },
            <SubscriptionSecretDto as From<SubscriptionWithSecret>>::from,
        ),
        mutation(
            Name {
                namespace: "webhook",
                version: "v1",
                name: "redeliver",
                summary: "Deliver the feed again from a position: that change and every later matching one, in order",
                errors: &["NOT_FOUND", "SUBSCRIPTION_INACTIVE"],
            },
            redeliver,
            <SubscriptionDto as From<Subscription>>::from,
        ),
        query(
            Name {
                namespace: "webhook",
                version: "v1",
                name: "list",
                summary: "The organization's webhook subscriptions",
                errors: &[],
            },
            list,
        ),
        query(
            Name {
                namespace: "webhook",
                version: "v1",
                name: "get",
                summary: "A webhook subscription and where its delivery stands",
                errors: &["NOT_FOUND"],
            },
            |ctx: Ctx, i: GetWebhookInput| async move {
                Ok(SubscriptionDto::from(
                    ctx.services
                        .webhook_get(ctx.caller()?, i.subscription_id)
                        .await?,
                ))
            },
        ),
        query(
            Name {
                namespace: "webhook",
                version: "v1",
                name: "deliveries",
                summary: "A subscription's delivery log: every attempt, its outcome, status code and duration",
                errors: &["NOT_FOUND"],
            },
            deliveries,
        ),
    ]
}
