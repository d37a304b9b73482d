//! `feed/v1`: the organization's change feed, for integrators who prefer pulling to webhooks.
//!
//! Every tenant write appends one row per changed aggregate, in its transaction, at a position
//! that only grows and has no gaps a reader could skip (ARCHITECTURE.md, "The change feed").
//! A reader keeps the last position it has handled and asks for what follows; the answer is the
//! same whenever it is asked again. `sync/v1/pull` is the technician's scoped variant, which turns
//! the same rows into snapshots.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use hestami_store::app::PageRequest;
use hestami_store::app::workflow::Change;

use crate::error::ApiError;
use crate::rpc::{Ctx, Name, Procedure, query};

/// `feed/v1/changes`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangesInput {
    /// The last position handled (`next` of the previous page); 0 or absent for the start.
    pub after: Option<i64>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
}

/// One change: an aggregate that was created, updated, transitioned or deleted.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeDto {
    /// Its position in the organization's feed.
    pub seq: i64,
    /// What changed: `job`, `customer`, `invoice`, …
    pub entity_kind: String,
    /// Which one.
    pub entity_id: Uuid,
    /// Its version after the change (read it with the entity's `get` to see the change).
    pub version: i64,
    /// created, updated, transitioned or deleted.
    pub operation: String,
    /// Who changed it (absent for the system: timers, imports).
    pub actor_user_id: Option<Uuid>,
    /// The workflow that changed it (`workflow/v1/get`).
    pub workflow_id: Option<Uuid>,
    /// When it committed.
    pub at: DateTime<Utc>,
}

impl From<Change> for ChangeDto {
    fn from(c: Change) -> Self {
        Self {
            seq: c.seq,
            entity_kind: c.entity_kind,
            entity_id: c.entity_id,
            version: c.version,
            operation: c.operation,
            actor_user_id: c.actor_user_id,
            workflow_id: c.workflow_id,
            at: c.at,
        }
    }
}

/// A page of the feed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangesPage {
    /// The changes after `after`, oldest first.
    pub items: Vec<ChangeDto>,
    /// Where to continue: pass it as `after` (the last item's `seq`, or `after` when empty).
    pub next: i64,
    /// Whether more changes follow already.
    pub more: bool,
}

async fn changes(ctx: Ctx, i: ChangesInput) -> Result<ChangesPage, ApiError> {
    let page = PageRequest::parse(i.limit, None)?;
    let after = i.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::field(
            "after",
            "out_of_range",
            "after is a position in the feed, 0 or more",
        ));
    }
    let mut items = ctx
        .services
        .changes(ctx.caller()?, after, page.limit + 1)
        .await?;
    let more = items.len() > page.limit as usize;
    items.truncate(page.limit as usize);
    let next = items.last().map_or(after, |c| c.seq);
    Ok(ChangesPage {
        items: items.into_iter().map(Into::into).collect(),
        next,
        more,
    })
}

pub(crate) fn procedures() -> Vec<Procedure> {
    vec![query(
        Name {
            namespace: "feed",
            version: "v1",
            name: "changes",
            summary: "The organization's change feed after a position, oldest first: each created, updated, transitioned or deleted aggregate with its new version, actor, workflow and time",
            errors: &[],
        },
        changes,
    )]
}
