//! `auth/v1`: signing in on a device, and who the token belongs to.
//!
//! `login`, `refresh` and `acceptInvite` are public (no token: they are how a person gets one) and
//! are not workflows: what they return are secrets, which must not be recorded to be replayed,
//! and each is safe to repeat (see `hestami_store::sessions`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use hestami_core::ids::OrganizationId;
use hestami_core::text::{Email, Name as DisplayName, Password};
use hestami_store::sessions::{DeviceSession, SignIn};

use super::Empty;
use crate::error::ApiError;
use crate::rpc::{Ctx, Name, Procedure, query, validate};

/// The longest refresh token or invitation code accepted (the server issues 68 characters).
pub const MAX_SECRET_CHARS: usize = 200;

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
    let (user, memberships) = ctx.services.store().whoami(ctx.user()?).await?;
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

/// `auth/v1/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginInput {
    /// The e-mail address.
    pub email: String,
    /// The password (set through `auth/v1/acceptInvite`).
    pub password: String,
    /// The organization to sign in to; may be left out by a member of exactly one.
    pub organization_id: Option<Uuid>,
    /// The app installation's own id, generated once on the device. Signing in again on the same
    /// device ends its earlier session.
    pub device_id: Uuid,
    /// A name a person recognizes ("Dana's iPhone"), shown in the device list.
    pub device_name: String,
}

/// A device's tokens.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionDto {
    /// Who signed in.
    pub user_id: Uuid,
    /// The organization the tokens work in (send it as `X-Organization-Id`).
    pub organization_id: Uuid,
    /// The device.
    pub device_id: Uuid,
    /// The bearer token for every call; it works only in `organizationId`.
    pub access_token: String,
    /// When the access token stops working (15 minutes).
    pub access_expires_at: DateTime<Utc>,
    /// For `auth/v1/refresh`: works once, and is replaced by the one the refresh returns.
    pub refresh_token: String,
    /// When the refresh token stops working if unused (30 days).
    pub refresh_expires_at: DateTime<Utc>,
}

impl From<DeviceSession> for SessionDto {
    fn from(s: DeviceSession) -> Self {
        Self {
            user_id: s.user_id.as_uuid(),
            organization_id: s.organization_id.as_uuid(),
            device_id: s.device_id,
            access_token: s.access_token,
            access_expires_at: s.access_expires_at,
            refresh_token: s.refresh_token,
            refresh_expires_at: s.refresh_expires_at,
        }
    }
}

async fn login(ctx: Ctx, i: LoginInput) -> Result<SessionDto, ApiError> {
    let sign_in = validate(|v| {
        let email = v.check("email", Email::parse(&i.email));
        let password = v.check("password", Password::parse(&i.password));
        let device_name = v.check("deviceName", DisplayName::parse(&i.device_name));
        Some(SignIn {
            email: email?,
            password: password?,
            organization_id: i.organization_id.map(OrganizationId::from_uuid),
            device_id: i.device_id,
            device_name: device_name?.as_str().to_owned(),
            address: ctx.peer,
        })
    })?;
    Ok(ctx.services.store().login(sign_in).await?.into())
}

/// `auth/v1/refresh`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefreshInput {
    /// The refresh token from the last `login` or `refresh`.
    pub refresh_token: String,
}

async fn refresh(ctx: Ctx, i: RefreshInput) -> Result<SessionDto, ApiError> {
    if i.refresh_token.is_empty() || i.refresh_token.chars().count() > MAX_SECRET_CHARS {
        return Err(ApiError::field(
            "refreshToken",
            "out_of_range",
            format!("1 to {MAX_SECRET_CHARS} characters"),
        ));
    }
    Ok(ctx.services.store().refresh(&i.refresh_token).await?.into())
}

/// `auth/v1/logout`'s result.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogoutOutput {
    /// Always true: the token's device session (or the token) has ended.
    pub signed_out: bool,
}

async fn logout(ctx: Ctx, _: Empty) -> Result<LogoutOutput, ApiError> {
    let token = ctx
        .token
        .as_ref()
        .ok_or_else(|| ApiError::internal(&"logout without a token"))?;
    ctx.services.store().logout(&token.0).await?;
    Ok(LogoutOutput { signed_out: true })
}

/// `auth/v1/acceptInvite`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcceptInviteInput {
    /// The code from `technician/v1/invite`.
    pub invite_code: String,
    /// The password to set.
    pub password: String,
}

/// `auth/v1/acceptInvite`'s result.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcceptInviteOutput {
    /// The user whose password is now set: sign in with `auth/v1/login`.
    pub user_id: Uuid,
}

async fn accept_invite(ctx: Ctx, i: AcceptInviteInput) -> Result<AcceptInviteOutput, ApiError> {
    let password = validate(|v| {
        if i.invite_code.is_empty() || i.invite_code.chars().count() > MAX_SECRET_CHARS {
            v.fail(
                "inviteCode",
                "out_of_range",
                &format!("1 to {MAX_SECRET_CHARS} characters"),
            );
        }
        v.check("password", Password::parse(&i.password))
    })?;
    let user_id = ctx
        .services
        .store()
        .accept_invite(&i.invite_code, password)
        .await?;
    Ok(AcceptInviteOutput {
        user_id: user_id.as_uuid(),
    })
}

pub(crate) fn procedures() -> Vec<Procedure> {
    let name = |name, summary, errors| Name {
        namespace: "auth",
        version: "v1",
        name,
        summary,
        errors,
    };
    vec![
        query(
            name(
                "login",
                "Sign in on a device with an e-mail address and password: a 15-minute access token bound to the device and organization, and a refresh token",
                &["INVALID_CREDENTIALS", "RATE_LIMITED", "ORGANIZATION_REQUIRED"],
            ),
            login,
        )
        .public(),
        query(
            name(
                "refresh",
                "Spend a refresh token for a new access token and refresh token",
                &["REFRESH_TOKEN_INVALID", "REFRESH_TOKEN_REUSED"],
            ),
            refresh,
        )
        .public(),
        query(
            name(
                "acceptInvite",
                "Set the password of an invited user with the invitation code",
                &["INVITE_INVALID"],
            ),
            accept_invite,
        )
        .public(),
        query(
            name(
                "logout",
                "End the session of the token's device (or revoke the token, when it is not a device's)",
                &[],
            ),
            logout,
        )
        .unscoped(),
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
