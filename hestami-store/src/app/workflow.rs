//! Operations on workflows (`workflow/v1`) and reading the change feed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use hestami_core::ids::WorkflowId;

use super::{Caller, Page, PageRequest, Services};
use crate::db::{Row, args};
use crate::engine::WorkflowSummary;
use crate::error::{Failure, StoreError};

const COLUMNS: &str = "w.id, w.name, w.procedure, w.idempotency_key, w.status, w.attempts, w.executor_id, w.error, \
                       w.trace_id, w.created_at, w.updated_at, w.completed_at, \
                       (SELECT COUNT(*) FROM workflow_steps s WHERE s.organization_id = w.organization_id \
                        AND s.workflow_id = w.id) AS steps";

fn decode(row: &Row) -> Result<WorkflowSummary, StoreError> {
    Ok(WorkflowSummary {
        id: WorkflowId::from_uuid(row.get("id")?),
        name: row.get("name")?,
        procedure: row.get("procedure")?,
        idempotency_key: row.get("idempotency_key")?,
        status: row.get("status")?,
        attempts: row.get("attempts")?,
        executor_id: row.get("executor_id")?,
        error: row
            .get::<Option<String>>("error")?
            .map(|e| serde_json::from_str(&e))
            .transpose()?,
        steps: row.get("steps")?,
        trace_id: row.get("trace_id")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
        completed_at: row.get("completed_at")?,
    })
}

/// One row of the change feed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// Its position in the organization's feed: strictly increasing, without gaps.
    pub seq: i64,
    /// What kind of aggregate changed (`job`, `customer`…).
    pub entity_kind: String,
    /// Which one.
    pub entity_id: Uuid,
    /// Its version after the change.
    pub version: i64,
    /// created, updated, deleted or transitioned.
    pub operation: String,
    /// Who changed it.
    pub actor_user_id: Option<Uuid>,
    /// The workflow that changed it.
    pub workflow_id: Option<Uuid>,
    /// When.
    pub at: DateTime<Utc>,
}

impl Services {
    /// Whether a request of `procedure` with this idempotency key already has an outcome, which
    /// a replay answers. An input check that depends on the world outside (a webhook URL's DNS)
    /// asks this before refusing, so a retry of a request that went through is never refused.
    pub async fn is_recorded(
        &self,
        caller: &Caller,
        procedure: &str,
        idempotency_key: Uuid,
    ) -> Result<bool, StoreError> {
        let id = crate::engine::workflow_id(caller.organization_id, procedure, idempotency_key);
        self.read(caller, move |tx| {
            Box::pin(async move {
                let org = tx.org();
                Ok(tx
                    .fetch_optional(
                        "SELECT status FROM workflows WHERE organization_id = $1 AND id = $2 AND status <> 'pending'",
                        args![org, id.as_uuid()],
                    )
                    .await?
                    .is_some())
            })
        })
        .await
    }

    /// `workflow/v1/get`.
    pub async fn workflow_get(
        &self,
        caller: &Caller,
        id: WorkflowId,
    ) -> Result<WorkflowSummary, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let org = tx.org();
                let row = tx
                    .fetch_optional(
                        &format!("SELECT {COLUMNS} FROM workflows w WHERE w.organization_id = $1 AND w.id = $2"),
                        args![org, id.as_uuid()],
                    )
                    .await?;
                row.map(|r| decode(&r)).transpose()?.ok_or_else(|| Failure::not_found("workflow").into())
            })
        })
        .await
    }

    /// `workflow/v1/list`: in start order (then by id, for workflows started in the same
    /// microsecond), filtered. A workflow's id is derived from its request, so id order is no
    /// order at all; the cursor names the last workflow, and the page resumes after its start.
    pub async fn workflow_list(
        &self,
        caller: &Caller,
        status: Option<String>,
        name: Option<String>,
        page: PageRequest,
    ) -> Result<Page<WorkflowSummary>, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let org = tx.org();
                let rows = tx
                    .fetch_all(
                        &format!(
                            "SELECT {COLUMNS} FROM workflows w WHERE w.organization_id = $1 \
                             AND ($2 IS NULL OR (w.created_at, w.id) > \
                                 (SELECT c.created_at, c.id FROM workflows c WHERE c.organization_id = $1 AND c.id = $2)) \
                             AND ($3 IS NULL OR w.status = $3) \
                             AND ($4 IS NULL OR w.name = $4) ORDER BY w.created_at, w.id LIMIT $5"
                        ),
                        args![org, page.after, status, name, i64::from(page.limit) + 1],
                    )
                    .await?;
                let items = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
                Ok(page.page(items, |w| w.id.as_uuid()))
            })
        })
        .await
    }

    /// The change feed after `after_seq`, oldest first, at most `limit` rows.
    pub async fn changes(
        &self,
        caller: &Caller,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<Change>, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(changes_after(tx, after_seq, i64::from(limit)))
        })
        .await
    }
}

/// The organization's change-feed rows after `after_seq`, in order, at most `limit`: what
/// `feed/v1/changes` pages through and what webhooks deliver.
pub(crate) async fn changes_after(
    tx: &mut crate::store::TenantTx,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<Change>, StoreError> {
    let org = tx.org();
    let rows = tx
        .fetch_all(
            "SELECT seq, entity_kind, entity_id, version, operation, actor_user_id, workflow_id, at \
             FROM change_feed WHERE organization_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            args![org, after_seq, limit],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Change {
                seq: r.get("seq")?,
                entity_kind: r.get("entity_kind")?,
                entity_id: r.get("entity_id")?,
                version: r.get("version")?,
                operation: r.get("operation")?,
                actor_user_id: r.get("actor_user_id")?,
                workflow_id: r.get("workflow_id")?,
                at: r.get("at")?,
            })
        })
        .collect()
}

/// The workflow of operators' actions on workflows.
pub const WORKFLOW: &str = "workflow_operations_v1";

/// Operators' actions on a workflow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "procedure", content = "input")]
pub enum WorkflowCommand {
    /// `workflow/v1/cancel`: a pending workflow takes no further step. Steps already committed
    /// stay; a run in progress stops at its next step, and the caller of the original request
    /// (and every replay of it) gets `409 WORKFLOW_CANCELLED`.
    #[serde(rename = "workflow/v1/cancel")]
    Cancel {
        /// Which workflow.
        workflow_id: WorkflowId,
    },
    /// `workflow/v1/resume`: a failed or cancelled workflow becomes pending again and recovery
    /// runs it from the top (journalled steps return their recorded outputs).
    #[serde(rename = "workflow/v1/resume")]
    Resume {
        /// Which workflow.
        workflow_id: WorkflowId,
    },
}

impl super::Command for WorkflowCommand {
    const WORKFLOW: &'static str = WORKFLOW;
    fn procedure(&self) -> &'static str {
        match self {
            Self::Cancel { .. } => "workflow/v1/cancel",
            Self::Resume { .. } => "workflow/v1/resume",
        }
    }
}

pub(crate) async fn run(
    mut ctx: crate::engine::WorkflowCtx,
    command: WorkflowCommand,
) -> Result<WorkflowSummary, StoreError> {
    let own = ctx.workflow_id();
    ctx.step("operate_on_workflow", move |tx| {
        Box::pin(operate(tx, own, command))
    })
    .await
}

async fn operate(
    tx: &mut crate::store::TenantTx,
    own: WorkflowId,
    command: WorkflowCommand,
) -> Result<WorkflowSummary, StoreError> {
    use crate::error::FailureKind;
    let (target, cancel) = match command {
        WorkflowCommand::Cancel { workflow_id } => (workflow_id, true),
        WorkflowCommand::Resume { workflow_id } => (workflow_id, false),
    };
    if target == own {
        return Err(Failure::new(
            FailureKind::Conflict,
            "WORKFLOW_NOT_PENDING",
            "a workflow cannot act on itself",
        )
        .into());
    }
    let org = tx.org();
    let now = tx.now();
    let lock = tx.for_update();
    let row = tx
        .fetch_optional(
            &format!(
                "SELECT status, name FROM workflows WHERE organization_id = $1 AND id = $2{lock}"
            ),
            args![org, target.as_uuid()],
        )
        .await?
        .ok_or_else(|| Failure::not_found("workflow"))?;
    let status: String = row.get("status")?;
    if cancel {
        if status != "pending" {
            return Err(Failure::new(
                FailureKind::Conflict,
                "WORKFLOW_NOT_PENDING",
                format!("only a pending workflow can be cancelled; this one is {status}"),
            )
            .into());
        }
        // A payment or refund that has started may have moved money at its provider: it
        // finishes when the provider answers, and cannot be abandoned half-way.
        let name: String = row.get("name")?;
        if super::MUST_FINISH.contains(&name.as_str()) {
            let steps = tx
                .fetch_one(
                    "SELECT COUNT(*) AS n FROM workflow_steps WHERE organization_id = $1 AND workflow_id = $2",
                    args![org, target.as_uuid()],
                )
                .await?
                .get::<i64>("n")?;
            if steps > 0 {
                return Err(Failure::new(
                    FailureKind::Conflict,
                    "WORKFLOW_NOT_CANCELLABLE",
                    format!("a started {name} workflow may have moved money; it finishes when its provider answers"),
                )
                .into());
            }
        }
        let error = Failure::new(
            FailureKind::Conflict,
            "WORKFLOW_CANCELLED",
            "the request was cancelled by an operator",
        );
        tx.execute(
            "UPDATE workflows SET status = 'cancelled', error = $1, updated_at = $2, completed_at = $2 \
             WHERE organization_id = $3 AND id = $4",
            args![serde_json::to_string(&error)?, now, org, target.as_uuid()],
        )
        .await?;
        tx.execute(
            "DELETE FROM workflow_queue WHERE workflow_id = $1",
            args![target.as_uuid()],
        )
        .await?;
    } else {
        if status != "failed" && status != "cancelled" {
            return Err(Failure::new(
                FailureKind::Conflict,
                "WORKFLOW_NOT_RESUMABLE",
                format!("only a failed or cancelled workflow can be resumed; this one is {status}"),
            )
            .into());
        }
        tx.execute(
            "UPDATE workflows SET status = 'pending', error = NULL, output = NULL, updated_at = $1, \
             completed_at = NULL WHERE organization_id = $2 AND id = $3",
            args![now, org, target.as_uuid()],
        )
        .await?;
        // Due at once: the next recovery pass, in any process, claims and runs it.
        tx.execute(
            "INSERT INTO workflow_queue (workflow_id, organization_id, name, executor_id, lease_expires_at) \
             VALUES ($1, $2, $3, 'resumed', $4)",
            args![target.as_uuid(), org, row.get::<String>("name")?, now],
        )
        .await?;
    }
    let row = tx
        .fetch_one(
            &format!(
                "SELECT {COLUMNS} FROM workflows w WHERE w.organization_id = $1 AND w.id = $2"
            ),
            args![org, target.as_uuid()],
        )
        .await?;
    decode(&row)
}
