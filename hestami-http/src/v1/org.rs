//! `org/v1`: the caller's organization.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use hestami_core::org::{Organization, SlaWindows, TimeZone};
use hestami_core::text::OrgName;
use hestami_store::app::org::{OrgCommand, OrgUpdate};

use super::Empty;
use crate::error::ApiError;
use crate::rpc::{Ctx, Mutating, Name, Procedure, mutation, query, validate};

/// SLA response windows, in minutes, by priority.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlaDto {
    /// Emergencies.
    pub emergency_minutes: u32,
    /// Urgent jobs.
    pub urgent_minutes: u32,
    /// Routine jobs.
    pub routine_minutes: u32,
}

/// An organization.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationDto {
    /// Its id.
    pub id: Uuid,
    /// 1 on creation, +1 on each change.
    pub version: i64,
    /// contractor or hoa.
    pub kind: String,
    /// Display name.
    pub name: String,
    /// IANA time zone.
    pub time_zone: String,
    /// ISO 4217 currency.
    pub currency: String,
    /// Response windows.
    pub sla: SlaDto,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<Organization> for OrganizationDto {
    fn from(o: Organization) -> Self {
        Self {
            id: o.id.as_uuid(),
            version: o.version,
            kind: o.kind.as_str().to_owned(),
            name: o.name.as_str().to_owned(),
            time_zone: o.time_zone.name().to_owned(),
            currency: o.currency.code().to_owned(),
            sla: SlaDto {
                emergency_minutes: o.sla.emergency_minutes,
                urgent_minutes: o.sla.urgent_minutes,
                routine_minutes: o.sla.routine_minutes,
            },
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

/// `org/v1/update`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateOrgInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Refuse with `VERSION_CONFLICT` unless the organization is at this version.
    pub expected_version: Option<i64>,
    /// A new name.
    pub name: Option<String>,
    /// A new IANA time zone.
    pub time_zone: Option<String>,
    /// New response windows (each 1 minute to 90 days, emergency ≤ urgent ≤ routine).
    pub sla: Option<SlaDto>,
}

impl Mutating for UpdateOrgInput {
    fn idempotency_key(&self) -> Uuid {
        self.idempotency_key
    }
}

fn convert_update(i: UpdateOrgInput) -> Result<OrgCommand, ApiError> {
    validate(|v| {
        let name = v.optional("name", i.name.as_deref(), OrgName::parse);
        let time_zone = v.optional("timeZone", i.time_zone.as_deref(), TimeZone::parse);
        let sla = match i.sla {
            None => Some(None),
            Some(s) => {
                match SlaWindows::parse(s.emergency_minutes, s.urgent_minutes, s.routine_minutes) {
                    Ok(sla) => Some(Some(sla)),
                    Err(problems) => {
                        for (field, invalid) in problems {
                            v.fail(&format!("sla.{field}"), invalid.code, &invalid.message);
                        }
                        None
                    }
                }
            }
        };
        Some(OrgCommand::Update(OrgUpdate {
            expected_version: i.expected_version,
            name: name?,
            time_zone: time_zone?,
            sla: sla?,
        }))
    })
}

async fn get(ctx: Ctx, _: Empty) -> Result<OrganizationDto, ApiError> {
    Ok(ctx.services.org_get(ctx.caller()?).await?.into())
}

pub(crate) fn procedures() -> Vec<Procedure> {
    vec![
        query(
            Name {
                namespace: "org",
                version: "v1",
                name: "get",
                summary: "The organization",
                errors: &["NOT_FOUND"],
            },
            get,
        ),
        mutation(
            Name {
                namespace: "org",
                version: "v1",
                name: "update",
                summary: "Change the organization's name, time zone or SLA windows",
                errors: &["VERSION_CONFLICT"],
            },
            convert_update,
            <OrganizationDto as From<Organization>>::from,
        ),
    ]
}
