//! `sync/v1`: offline sync for a device (see `docs/sync.md`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use hestami_store::app::sync::{PullRequest, SyncCursor, SyncEntity, Tombstone};

use super::customer::{CustomerDto, PropertyDto};
use super::technician::TechnicianDto;
use crate::error::ApiError;
use crate::rpc::{Ctx, Name, Procedure, query};
use crate::v2::job::{JobScheduleDto, NoteDto};

/// A sync position as `sync/v1/pull` writes it (`cursor`): `feed.<n>`, or `snap.<n>.<job>` while
/// the first snapshot is paged.
pub const SYNC_CURSOR_PATTERN: &str =
    "^feed\\.[0-9]{1,18}$|^snap\\.[0-9]{1,18}\\.(-|[0-9a-f]{32})$";

/// `sync/v1/pull`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PullInput {
    /// The device's installation id (the one it signed in with): what it was sent is kept per
    /// device, so that it is told to drop only what it holds.
    pub device_id: Uuid,
    /// The `cursor` of the previous pull; leave it out for a first sync (a snapshot).
    pub since: Option<String>,
    /// At most this many jobs (snapshot) or changes (feed) a page (default 200).
    pub limit: Option<u32>,
}

/// The current state of something that changed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum SyncChangeDto {
    /// A job with its appointments (as `job/v2/get`).
    Job(JobScheduleDto),
    /// A customer.
    Customer(CustomerDto),
    /// A property.
    Property(PropertyDto),
    /// A note.
    Note(NoteDto),
    /// A photo, document or signature on a job or one of its visits.
    Attachment(crate::v1::attachment::AttachmentDto),
    /// The caller's own technician record.
    Technician(TechnicianDto),
}

impl From<SyncEntity> for SyncChangeDto {
    fn from(e: SyncEntity) -> Self {
        match e {
            SyncEntity::Job(s) => Self::Job(crate::v2::job::render(*s)),
            SyncEntity::Customer(c) => Self::Customer((*c).into()),
            SyncEntity::Property(p) => Self::Property((*p).into()),
            SyncEntity::Note(n) => Self::Note((*n).into()),
            SyncEntity::Attachment(a) => Self::Attachment((*a).into()),
            SyncEntity::Technician(t) => Self::Technician((*t).into()),
        }
    }
}

/// Something the device must drop.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TombstoneDto {
    /// `job` (with its appointments and notes), `customer`, `property`, `note` or `technician`.
    pub kind: String,
    /// Which.
    pub id: Uuid,
    /// `out_of_scope` (no longer yours to see: a job reassigned to someone else) or `deleted`.
    pub reason: String,
}

impl From<Tombstone> for TombstoneDto {
    fn from(t: Tombstone) -> Self {
        Self {
            kind: t.kind,
            id: t.id,
            reason: t.reason,
        }
    }
}

/// `sync/v1/pull`'s result.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PullOutput {
    /// The current state of what changed (or the snapshot's page), to replace what the device
    /// has (compare `version`s: a newer one wins).
    pub changes: Vec<SyncChangeDto>,
    /// What the device must drop.
    pub removed: Vec<TombstoneDto>,
    /// Send it as `since` next time. Pulling again from an older cursor gives the same answer.
    pub cursor: String,
    /// Whether to pull again at once.
    pub more: bool,
}

async fn pull(ctx: Ctx, i: PullInput) -> Result<PullOutput, ApiError> {
    let cursor = match &i.since {
        None => None,
        Some(raw) => Some(SyncCursor::decode(raw).ok_or_else(|| {
            ApiError::field(
                "since",
                "invalid_cursor",
                "not a cursor written by sync/v1/pull",
            )
        })?),
    };
    let limit = match i.limit {
        None => hestami_store::app::MAX_LIMIT,
        Some(l) if (1..=hestami_store::app::MAX_LIMIT).contains(&l) => l,
        Some(_) => {
            return Err(ApiError::field(
                "limit",
                "out_of_range",
                format!("1 to {}", hestami_store::app::MAX_LIMIT),
            ));
        }
    };
    let page = ctx
        .services
        .sync_pull(
            ctx.caller()?,
            PullRequest {
                device_id: i.device_id,
                cursor,
                limit,
            },
        )
        .await?;
    Ok(PullOutput {
        changes: page.changes.into_iter().map(Into::into).collect(),
        removed: page.removed.into_iter().map(Into::into).collect(),
        cursor: page.cursor.encode(),
        more: page.more,
    })
}

/// At most this many items in one push.
pub const MAX_PUSH_ITEMS: usize = 200;

/// `sync/v1/push`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PushInput {
    /// The device's installation id (the one it pulls with).
    pub device_id: Uuid,
    /// The calls the device queued, in the order it made them.
    pub items: Vec<PushItemInput>,
}

/// One queued call: an ordinary mutating procedure call.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PushItemInput {
    /// The procedure, such as `job/v2/moveAppointment`.
    pub procedure: String,
    /// Its input, exactly as the procedure takes it, `idempotencyKey` included (and
    /// `expectedVersion` and `device` where it takes them).
    pub input: serde_json::Map<String, serde_json::Value>,
    /// Earlier items (by index) this one needs: if any of them was not done, this one is skipped.
    #[serde(default)]
    pub depends_on: Vec<usize>,
}

/// What became of one item.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PushStatusDto {
    /// Applied (or applied before: a replay answers the recorded result).
    Done,
    /// Refused because the state changed: a version conflict, a move the state machine does not
    /// allow now, or (`NO_LONGER_ASSIGNED`) work reassigned while the device was offline.
    Conflict,
    /// Refused for another reason (validation, permission, not found, a business rule).
    Refused,
    /// Not attempted: an item it depends on was not done, or the server could not answer (retry
    /// the batch: done items answer the same).
    Skipped,
}

/// One item's outcome.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushOutcomeDto {
    /// The item's index.
    pub index: usize,
    /// What became of it.
    pub status: PushStatusDto,
    /// The HTTP status the call alone would have had (none when skipped).
    pub http_status: Option<u16>,
    /// The procedure's result, when done.
    pub result: Option<serde_json::Value>,
    /// The error envelope's `error`, when not done.
    pub error: Option<crate::error::ErrorBody>,
    /// The fields at fault, when refused for validation.
    pub field_errors: Vec<crate::error::FieldErrorBody>,
}

/// `sync/v1/push`'s result.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushOutput {
    /// One outcome per item, in order: none is ever dropped without one.
    pub outcomes: Vec<PushOutcomeDto>,
}

/// The mutating procedures a push may carry, by path.
fn mutations() -> &'static std::collections::HashMap<String, Procedure> {
    static TABLE: std::sync::OnceLock<std::collections::HashMap<String, Procedure>> =
        std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        crate::procedures()
            .into_iter()
            .filter(|p| p.workflow.is_some() && p.org_scoped)
            .map(|p| (p.path(), p))
            .collect()
    })
}

fn outcome_of_error(index: usize, e: ApiError, trace_id: &str) -> PushOutcomeDto {
    let status = match e.status.as_u16() {
        409 => PushStatusDto::Conflict,
        s if s >= 500 || s == 408 => PushStatusDto::Skipped,
        _ => PushStatusDto::Refused,
    };
    let envelope = e.envelope(trace_id);
    PushOutcomeDto {
        index,
        status,
        http_status: Some(e.status.as_u16()),
        result: None,
        error: Some(envelope.error),
        field_errors: envelope.field_errors,
    }
}

/// The job or appointment an item's input names, for telling a reassigned job apart.
fn subject_of(input: &serde_json::Map<String, serde_json::Value>) -> (Option<Uuid>, Option<Uuid>) {
    let id = |k: &str| {
        input
            .get(k)
            .and_then(|v| v.as_str())
            .and_then(|s| Uuid::parse_str(s).ok())
    };
    (id("jobId"), id("appointmentId"))
}

async fn push(ctx: Ctx, i: PushInput) -> Result<PushOutput, ApiError> {
    if i.items.len() > MAX_PUSH_ITEMS {
        return Err(ApiError::field(
            "items",
            "too_many",
            format!("at most {MAX_PUSH_ITEMS} items a push"),
        ));
    }
    // The push counted as one request; each further item counts as the call it is.
    ctx.charge(u32::try_from(i.items.len().saturating_sub(1)).unwrap_or(u32::MAX))?;
    let role = ctx
        .role
        .ok_or_else(|| ApiError::internal(&"push without a role"))?;
    let caller = *ctx.caller()?;
    let mut outcomes: Vec<PushOutcomeDto> = Vec::with_capacity(i.items.len());
    let mut unavailable = false;
    for (index, item) in i.items.into_iter().enumerate() {
        if let Some(bad) = item.depends_on.iter().find(|d| **d >= index) {
            let e = ApiError::field(
                format!("items[{index}].dependsOn"),
                "invalid_reference",
                format!("an item depends only on earlier items, not on {bad}"),
            );
            outcomes.push(outcome_of_error(index, e, &ctx.trace_id));
            continue;
        }
        let blocked = item
            .depends_on
            .iter()
            .find(|d| !matches!(outcomes[**d].status, PushStatusDto::Done));
        if unavailable || blocked.is_some() {
            let (code, message) = match blocked {
                Some(d) if !unavailable => (
                    "DEPENDENCY_NOT_DONE",
                    format!("item {d}, which this one depends on, was not done"),
                ),
                _ => (
                    "NOT_ATTEMPTED",
                    "the server could not answer an earlier item; push the batch again".to_owned(),
                ),
            };
            outcomes.push(PushOutcomeDto {
                index,
                status: PushStatusDto::Skipped,
                http_status: None,
                result: None,
                error: Some(crate::error::ErrorBody {
                    code: code.to_owned(),
                    kind: "skipped".to_owned(),
                    message,
                    details: blocked.map(|d| serde_json::json!({ "dependsOn": d })),
                }),
                field_errors: Vec::new(),
            });
            continue;
        }
        let Some(procedure) = mutations().get(&item.procedure) else {
            let e = ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "UNKNOWN_PROCEDURE",
                format!(
                    "no mutating procedure {} (a push carries mutations only)",
                    item.procedure
                ),
            );
            outcomes.push(outcome_of_error(index, e, &ctx.trace_id));
            continue;
        };
        if !hestami_core::org::is_permitted(role, &item.procedure) {
            let e: ApiError = hestami_store::directory::forbidden(role, &item.procedure).into();
            outcomes.push(outcome_of_error(index, e, &ctx.trace_id));
            continue;
        }
        let (job, appointment) = subject_of(&item.input);
        let body = serde_json::to_vec(&item.input).map_err(|e| ApiError::internal(&e))?;
        match procedure.call(ctx.clone(), body.into()).await {
            Ok(bytes) => outcomes.push(PushOutcomeDto {
                index,
                status: PushStatusDto::Done,
                http_status: Some(200),
                result: Some(serde_json::from_slice(&bytes).map_err(|e| ApiError::internal(&e))?),
                error: None,
                field_errors: Vec::new(),
            }),
            Err(e) => {
                let e = if e.status == axum::http::StatusCode::NOT_FOUND
                    && matches!(caller.scope, hestami_store::Scope::Technician(_))
                    && ctx
                        .services
                        .sync_held(
                            &caller,
                            i.device_id,
                            job.map(hestami_core::ids::JobId::from_uuid),
                            appointment.map(hestami_core::ids::AppointmentId::from_uuid),
                        )
                        .await?
                {
                    ApiError::new(
                        axum::http::StatusCode::CONFLICT,
                        "NO_LONGER_ASSIGNED",
                        "this work was reassigned while the device was offline; its next pull drops it",
                    )
                } else {
                    e
                };
                unavailable = e.status.as_u16() >= 500 || e.status.as_u16() == 408;
                outcomes.push(outcome_of_error(index, e, &ctx.trace_id));
            }
        }
    }
    Ok(PushOutput { outcomes })
}

pub(crate) fn procedures() -> Vec<Procedure> {
    vec![
        query(
            Name {
                namespace: "sync",
                version: "v1",
                name: "pull",
                summary: "A device's next page of changes within what the caller may see: the current state of each changed job, customer, property, note and own technician record, and tombstones for what left the caller's scope",
                errors: &[],
            },
            pull,
        ),
        query(
            Name {
                namespace: "sync",
                version: "v1",
                name: "push",
                summary: "Apply the calls a device queued offline, in order: each is an ordinary mutating call with its own idempotencyKey (replaying a batch is safe), and each gets an outcome: done, conflict, refused, or skipped when an item it depends on was not done",
                errors: &[],
            },
            push,
        ),
    ]
}
