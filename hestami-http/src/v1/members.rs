//! `member/v1` and `token/v1`: who may act for the organization, managed by its owners and
//! admins over the API (the CLI's `admin add-member` goes through the same workflow).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use hestami_core::ids::UserId;
use hestami_core::org::Role;
use hestami_core::text::{Email, Name as Label};
use hestami_store::app::members::{
    CreateIntegrationToken, InviteMember, InvitedMember, MAX_TOKEN_DAYS, Member, MembershipCommand,
    RemoveMember, RevokeToken, SetRole, TokenInfo,
};

use super::Empty;
use crate::error::ApiError;
use crate::rpc::{Ctx, Name, Procedure, mutation, mutation_with_secret, query, validate};

/// A member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoleDto {
    /// Everything, including the organization itself.
    Owner,
    /// Everything but ownership.
    Admin,
    /// Plans and assigns work.
    Dispatcher,
    /// Customers, jobs and money.
    Office,
    /// A technician in the field.
    Technician,
    /// Reads only.
    Viewer,
}

impl From<RoleDto> for Role {
    fn from(r: RoleDto) -> Self {
        match r {
            RoleDto::Owner => Self::Owner,
            RoleDto::Admin => Self::Admin,
            RoleDto::Dispatcher => Self::Dispatcher,
            RoleDto::Office => Self::Office,
            RoleDto::Technician => Self::Technician,
            RoleDto::Viewer => Self::Viewer,
        }
    }
}

/// `member/v1/invite`: add someone (created if new) with a role. Only an owner grants `owner`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InviteMemberInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Their e-mail address.
    pub email: String,
    /// Their role.
    pub role: RoleDto,
}

/// `member/v1/setRole`: change another member's role. Only an owner changes an owner or makes
/// one; nobody changes their own.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetRoleInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which member.
    pub user_id: Uuid,
    /// The new role.
    pub role: RoleDto,
}

/// `member/v1/remove`: end another member's membership, their tokens bound to this organization
/// and their devices' sessions here.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoveMemberInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which member.
    pub user_id: Uuid,
}

/// `token/v1/createIntegration`: a token for a program, acting as the caller in this
/// organization only. The secret is in the answer once: a replay of the request answers without
/// it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateIntegrationTokenInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// What it is for.
    pub name: String,
    /// How many days it works, 1 to 3650; absent: until revoked.
    #[serde(default)]
    pub expires_in_days: Option<i64>,
}

/// `token/v1/revoke`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RevokeTokenInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which token (`token/v1/list`).
    pub token_id: Uuid,
}

mutating!(
    InviteMemberInput,
    SetRoleInput,
    RemoveMemberInput,
    CreateIntegrationTokenInput,
    RevokeTokenInput
);

/// A member.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberDto {
    /// The user.
    pub user_id: Uuid,
    /// Their e-mail address.
    pub email: String,
    /// Their name, when they gave one.
    pub name: Option<String>,
    /// owner, admin, dispatcher, office, technician or viewer.
    pub role: String,
    /// Whether they have set a password (accepted an invitation).
    pub has_password: bool,
    /// Since when.
    pub created_at: DateTime<Utc>,
}

impl From<Member> for MemberDto {
    fn from(m: Member) -> Self {
        Self {
            user_id: m.user_id.as_uuid(),
            email: m.email,
            name: m.name,
            role: m.role.as_str().to_owned(),
            has_password: m.has_password,
            created_at: m.created_at,
        }
    }
}

/// A new member and, for someone new, their invitation.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvitedMemberDto {
    /// The member.
    pub member: MemberDto,
    /// Whether an invitation was issued: for someone with no password who belongs to no other
    /// organization. (Someone with a password signs in with it; someone invited elsewhere sets
    /// it with that organization's invitation.)
    pub invited: bool,
    /// The single-use code to hand over (`auth/v1/acceptInvite` sets the password with it), in
    /// the answer of the request that issued it only: a replay answers null, and the server
    /// keeps its SHA-256 alone.
    pub invite_code: Option<String>,
    /// When the code stops working (7 days).
    pub invite_expires_at: Option<DateTime<Utc>>,
}

/// The members, by when they joined.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberList {
    /// Every member.
    pub items: Vec<MemberDto>,
}

/// An API token that can act in the organization.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenDto {
    /// Its id.
    pub token_id: Uuid,
    /// It acts as this user.
    pub user_id: Uuid,
    /// Their e-mail address.
    pub email: String,
    /// `integration` (this organization only) or `personal` (every organization of the user).
    pub kind: String,
    /// Its name.
    pub name: Option<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<TokenInfo> for TokenDto {
    fn from(t: TokenInfo) -> Self {
        Self {
            token_id: t.token_id,
            user_id: t.user_id.as_uuid(),
            email: t.email,
            kind: t.kind,
            name: t.name,
            created_at: t.created_at,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
        }
    }
}

/// A new integration token.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedTokenDto {
    /// The token.
    #[serde(flatten)]
    pub token: TokenDto,
    /// The bearer secret, in the answer of the request that made it only (a replay answers
    /// null): the server keeps its SHA-256 alone.
    pub secret: Option<String>,
}

/// The tokens that can act in the organization, oldest first, revoked ones included; devices'
/// short-lived access tokens are listed by `technician/v1/devices`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenList {
    /// Every token.
    pub items: Vec<TokenDto>,
}

fn convert_invite(i: InviteMemberInput, code_hash: String) -> Result<MembershipCommand, ApiError> {
    validate(|v| {
        let email = v.check("email", Email::parse(&i.email));
        Some(MembershipCommand::Invite(InviteMember {
            email: email?,
            role: i.role.into(),
            code_hash,
        }))
    })
}

fn invite_hash(i: &InvitedMember) -> Option<&str> {
    i.invite.as_ref().map(|v| v.code_hash.as_str())
}

fn render_invited(i: InvitedMember, code: Option<String>) -> InvitedMemberDto {
    InvitedMemberDto {
        member: i.member.into(),
        invited: i.invite.is_some(),
        invite_code: code,
        invite_expires_at: i.invite.map(|v| v.expires_at),
    }
}

fn convert_set_role(i: SetRoleInput) -> Result<MembershipCommand, ApiError> {
    Ok(MembershipCommand::SetRole(SetRole {
        user_id: UserId::from_uuid(i.user_id),
        role: i.role.into(),
    }))
}

fn convert_remove(i: RemoveMemberInput) -> Result<MembershipCommand, ApiError> {
    Ok(MembershipCommand::Remove(RemoveMember {
        user_id: UserId::from_uuid(i.user_id),
    }))
}

fn convert_create_token(
    i: CreateIntegrationTokenInput,
    token_hash: String,
) -> Result<MembershipCommand, ApiError> {
    validate(|v| {
        let name = v.check("name", Label::parse(&i.name));
        let days = match i.expires_in_days {
            None => Some(None),
            Some(d) => v
                .check(
                    "expiresInDays",
                    u32::try_from(d)
                        .ok()
                        .filter(|d| (1..=MAX_TOKEN_DAYS).contains(d))
                        .ok_or_else(|| {
                            hestami_core::Invalid::new(
                                "out_of_range",
                                format!("a token works for 1 to {MAX_TOKEN_DAYS} days"),
                            )
                        }),
                )
                .map(Some),
        };
        Some(MembershipCommand::CreateToken(CreateIntegrationToken {
            name: name?,
            expires_in_days: days?,
            token_hash,
        }))
    })
}

fn convert_revoke(i: RevokeTokenInput) -> Result<MembershipCommand, ApiError> {
    Ok(MembershipCommand::RevokeToken(RevokeToken {
        token_id: i.token_id,
    }))
}

fn token_hash(t: &TokenInfo) -> Option<&str> {
    t.token_hash.as_deref()
}

fn render_created(t: TokenInfo, secret: Option<String>) -> CreatedTokenDto {
    CreatedTokenDto {
        token: t.into(),
        secret,
    }
}

async fn list_members(ctx: Ctx, _: Empty) -> Result<MemberList, ApiError> {
    let items = ctx.services.member_list(ctx.caller()?).await?;
    Ok(MemberList {
        items: items.into_iter().map(Into::into).collect(),
    })
}

async fn list_tokens(ctx: Ctx, _: Empty) -> Result<TokenList, ApiError> {
    let items = ctx.services.token_list(ctx.caller()?).await?;
    Ok(TokenList {
        items: items.into_iter().map(Into::into).collect(),
    })
}

fn name(
    namespace: &'static str,
    name: &'static str,
    summary: &'static str,
    errors: &'static [&'static str],
) -> Name {
    Name {
        namespace,
        version: "v1",
        name,
        summary,
        errors,
    }
}

pub(crate) fn procedures() -> Vec<Procedure> {
    vec![
        mutation_with_secret(
            name(
                "member",
                "invite",
                "Add someone to the organization with a role; an invitation code for a new user",
                &["MEMBER_EXISTS", "ROLE_NOT_GRANTABLE", "NOT_A_MEMBER"],
            ),
            "hsi_",
            convert_invite,
            invite_hash,
            render_invited,
        ),
        query(
            name(
                "member",
                "list",
                "The organization's members and roles",
                &[],
            ),
            list_members,
        ),
        mutation(
            name(
                "member",
                "setRole",
                "Change another member's role",
                &[
                    "NOT_FOUND",
                    "MEMBER_IS_SELF",
                    "ROLE_NOT_GRANTABLE",
                    "LAST_OWNER",
                    "NOT_A_MEMBER",
                ],
            ),
            convert_set_role,
            <MemberDto as From<Member>>::from,
        ),
        mutation(
            name(
                "member",
                "remove",
                "Remove another member, their tokens bound to the organization and their devices' sessions",
                &[
                    "NOT_FOUND",
                    "MEMBER_IS_SELF",
                    "ROLE_NOT_GRANTABLE",
                    "LAST_OWNER",
                    "NOT_A_MEMBER",
                ],
            ),
            convert_remove,
            <MemberDto as From<Member>>::from,
        ),
        query(
            name(
                "token",
                "list",
                "The API tokens that can act in the organization",
                &[],
            ),
            list_tokens,
        ),
        mutation_with_secret(
            name(
                "token",
                "createIntegration",
                "A named token for a program, acting as the caller in this organization, with an expiry",
                &["NOT_A_MEMBER"],
            ),
            "hst_",
            convert_create_token,
            token_hash,
            render_created,
        ),
        mutation(
            name(
                "token",
                "revoke",
                "Revoke a token that can act in the organization",
                &["NOT_FOUND", "TOKEN_NOT_REVOCABLE"],
            ),
            convert_revoke,
            <TokenDto as From<TokenInfo>>::from,
        ),
    ]
}
