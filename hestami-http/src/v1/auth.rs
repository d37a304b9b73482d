//! `auth/v1`: who the token belongs to.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::Empty;
use crate::error::ApiError;
use crate::rpc::{Ctx, Name, Procedure, query};

/// A user.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserDto {
    /// Its id.
    pub id: Uuid,
    /// Its e-mail address.
    pub email: String,
    /// Its display name.
    pub name: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A membership.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MembershipDto {
    /// The organization.
    pub organization_id: Uuid,
    /// owner, admin, dispatcher, office, technician or viewer.
    pub role: String,
}

/// `auth/v1/whoami`'s result.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhoamiOutput {
    /// The token's user.
    pub user: UserDto,
    /// Every organization the user belongs to, with the role there.
    pub memberships: Vec<MembershipDto>,
}

async fn whoami(ctx: Ctx, _: Empty) -> Result<WhoamiOutput, ApiError> {
    let (user, memberships) = ctx.services.store().whoami(ctx.user_id).await?;
    Ok(WhoamiOutput {
        user: UserDto {
            id: user.id.as_uuid(),
            email: user.email.as_str().to_owned(),
            name: user.name.map(|n| n.as_str().to_owned()),
            created_at: user.created_at,
        },
        memberships: memberships
            .into_iter()
            .map(|m| MembershipDto {
                organization_id: m.organization_id.as_uuid(),
                role: m.role.as_str().to_owned(),
            })
            .collect(),
    })
}

pub(crate) fn procedures() -> Vec<Procedure> {
    vec![
        query(
            Name {
                namespace: "auth",
                version: "v1",
                name: "whoami",
                summary: "The token's user and memberships",
                errors: &[],
            },
            whoami,
        )
        .unscoped(),
    ]
}
