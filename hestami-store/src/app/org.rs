//! The organization's own settings (`org/v1`, workflow `org_settings_v1`).

use serde::{Deserialize, Serialize};

use hestami_core::org::{Organization, SlaWindows, TimeZone};
use hestami_core::text::OrgName;

use super::{Caller, Command, Services, check_version};
use crate::db::args;
use crate::directory::load_organization;
use crate::engine::WorkflowCtx;
use crate::error::StoreError;
use crate::store::Operation;

/// The workflow that changes an organization's settings.
pub const WORKFLOW: &str = "org_settings_v1";

/// What may change about an organization.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrgUpdate {
    /// Fail with `VERSION_CONFLICT` unless the organization is at this version.
    pub expected_version: Option<i64>,
    /// A new name.
    pub name: Option<OrgName>,
    /// A new time zone.
    pub time_zone: Option<TimeZone>,
    /// New SLA response windows.
    pub sla: Option<SlaWindows>,
}

/// The organization's mutating procedures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "procedure", content = "input")]
pub enum OrgCommand {
    /// `org/v1/update`.
    #[serde(rename = "org/v1/update")]
    Update(OrgUpdate),
}

impl Command for OrgCommand {
    const WORKFLOW: &'static str = WORKFLOW;
    fn procedure(&self) -> &'static str {
        match self {
            Self::Update(_) => "org/v1/update",
        }
    }
}

pub(crate) async fn run(
    mut ctx: WorkflowCtx,
    command: OrgCommand,
) -> Result<Organization, StoreError> {
    let OrgCommand::Update(update) = command;
    ctx.step("update_organization", move |tx| {
        Box::pin(async move {
            let current = load_organization(tx, true).await?;
            check_version("organization", update.expected_version, current.version)?;
            let next = Organization {
                version: current.version + 1,
                name: update.name.unwrap_or(current.name.clone()),
                time_zone: update.time_zone.unwrap_or(current.time_zone),
                sla: update.sla.unwrap_or(current.sla),
                updated_at: tx.now(),
                ..current
            };
            tx.execute(
                "UPDATE organizations SET version = $1, name = $2, time_zone = $3, sla_emergency_minutes = $4, \
                 sla_urgent_minutes = $5, sla_routine_minutes = $6, updated_at = $7 WHERE id = $8",
                args![
                    next.version,
                    next.name.as_str(),
                    next.time_zone.name(),
                    i64::from(next.sla.emergency_minutes),
                    i64::from(next.sla.urgent_minutes),
                    i64::from(next.sla.routine_minutes),
                    next.updated_at,
                    next.id.as_uuid()
                ],
            )
            .await?;
            tx.record_change("organization", next.id.as_uuid(), next.version, Operation::Updated).await?;
            Ok(next)
        })
    })
    .await
}

impl Services {
    /// `org/v1/get`: the caller's organization.
    pub async fn org_get(&self, caller: &Caller) -> Result<Organization, StoreError> {
        self.read(caller, |tx| Box::pin(load_organization(tx, false)))
            .await
    }
}
