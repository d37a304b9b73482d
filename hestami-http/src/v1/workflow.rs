//! `workflow/v1`: inspecting durable workflows.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use hestami_core::ids::WorkflowId;
use hestami_store::app::PageRequest;
use hestami_store::app::workflow::WorkflowCommand;
use hestami_store::engine::WorkflowSummary;

use crate::error::{ApiError, ErrorBody};
use crate::rpc::{Ctx, Name, Procedure, mutation, query};

/// A workflow.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowDto {
    /// Its id (derived from the organization, procedure and idempotency key).
    pub id: Uuid,
    /// Its versioned name, such as `job_lifecycle_v1`.
    pub name: String,
    /// The procedure that started it.
    pub procedure: String,
    /// The caller's idempotency key.
    pub idempotency_key: Uuid,
    /// pending, succeeded, failed or cancelled.
    pub status: String,
    /// How many times it was started.
    pub attempts: i64,
    /// The executor that ran it last.
    pub executor_id: Option<String>,
    /// Why it failed.
    pub error: Option<ErrorBody>,
    /// How many steps it journalled.
    pub steps: i64,
    /// The trace it started in.
    pub trace_id: Option<String>,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it finished.
    pub completed_at: Option<DateTime<Utc>>,
}

impl From<WorkflowSummary> for WorkflowDto {
    fn from(w: WorkflowSummary) -> Self {
        Self {
            id: w.id.as_uuid(),
            name: w.name,
            procedure: w.procedure,
            idempotency_key: w.idempotency_key,
            status: w.status,
            attempts: w.attempts,
            executor_id: w.executor_id,
            error: w.error.map(|f| {
                let e = ApiError::from(f);
                ErrorBody {
                    code: e.code,
                    kind: crate::error::kind_of(e.status).to_owned(),
                    message: e.message,
                    details: e.details,
                }
            }),
            steps: w.steps,
            trace_id: w.trace_id,
            created_at: w.created_at,
            updated_at: w.updated_at,
            completed_at: w.completed_at,
        }
    }
}

/// `workflow/v1/get`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetWorkflowInput {
    /// Which workflow.
    pub workflow_id: Uuid,
}

/// `workflow/v1/list`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListWorkflowsInput {
    /// Only workflows in this status (pending, succeeded, failed, cancelled).
    pub status: Option<String>,
    /// Only workflows of this name (`job_lifecycle_v1`).
    pub name: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of workflows.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowPage {
    /// The workflows, in start order.
    pub items: Vec<WorkflowDto>,
    /// The cursor of the next page, or null on the last.
    pub next_cursor: Option<String>,
}

async fn get(ctx: Ctx, i: GetWorkflowInput) -> Result<WorkflowDto, ApiError> {
    Ok(ctx
        .services
        .workflow_get(ctx.caller()?, WorkflowId::from_uuid(i.workflow_id))
        .await?
        .into())
}

async fn list(ctx: Ctx, i: ListWorkflowsInput) -> Result<WorkflowPage, ApiError> {
    let page = PageRequest::parse(i.limit, i.cursor.as_deref())?;
    if let Some(status) = &i.status
        && !["pending", "succeeded", "failed", "cancelled"].contains(&status.as_str())
    {
        return Err(ApiError::field(
            "status",
            "invalid_value",
            "status is pending, succeeded, failed or cancelled",
        ));
    }
    let page = ctx
        .services
        .workflow_list(ctx.caller()?, i.status, i.name, page)
        .await?;
    Ok(WorkflowPage {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    })
}

pub(crate) fn procedures() -> Vec<Procedure> {
    vec![
        query(
            Name {
                namespace: "workflow",
                version: "v1",
                name: "get",
                summary: "A workflow",
                errors: &["NOT_FOUND"],
            },
            get,
        ),
        query(
            Name {
                namespace: "workflow",
                version: "v1",
                name: "list",
                summary: "Workflows, in start order",
                errors: &[],
            },
            list,
        ),
        mutation(
            Name {
                namespace: "workflow",
                version: "v1",
                name: "cancel",
                summary: "Stop a pending workflow: no further step runs, and its request answers WORKFLOW_CANCELLED",
                errors: &[
                    "NOT_FOUND",
                    "WORKFLOW_NOT_PENDING",
                    "WORKFLOW_NOT_CANCELLABLE",
                ],
            },
            |i: WorkflowActionInput| {
                Ok(WorkflowCommand::Cancel {
                    workflow_id: WorkflowId::from_uuid(i.workflow_id),
                })
            },
            <WorkflowDto as From<WorkflowSummary>>::from,
        ),
        mutation(
            Name {
                namespace: "workflow",
                version: "v1",
                name: "resume",
                summary: "Run a failed or cancelled workflow again from the top (recorded steps are not redone)",
                errors: &["NOT_FOUND", "WORKFLOW_NOT_RESUMABLE"],
            },
            |i: WorkflowActionInput| {
                Ok(WorkflowCommand::Resume {
                    workflow_id: WorkflowId::from_uuid(i.workflow_id),
                })
            },
            <WorkflowDto as From<WorkflowSummary>>::from,
        ),
    ]
}

/// `workflow/v1/cancel` and `workflow/v1/resume`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkflowActionInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which workflow.
    pub workflow_id: Uuid,
}

mutating!(WorkflowActionInput);
