//! Who may act for an organization: members (`member/v1`) and API tokens (`token/v1`), both
//! through the workflow `membership_v1`.
//!
//! Memberships, users and tokens are shared tables (authentication reads them before an
//! organization is chosen); every statement here names the transaction's organization, so an
//! owner reaches only their own organization's members and the tokens that can act in it.
//!
//! **Who may change whom.** Owners and admins manage members (the permission table); only an
//! owner grants, changes or removes the `owner` role, and nobody changes or removes their own
//! membership. So an organization always keeps an owner: the last one can only be changed by
//! themselves, which is refused.
//!
//! **Removal** deletes the membership, revokes the member's tokens bound to this organization
//! (integration tokens they made, their devices' access tokens) and ends their devices' sessions
//! here. Their personal tokens (`hestami admin create-token`) keep working in their other
//! organizations and stop working in this one with the membership.
//!
//! **Integration tokens** act as the member who made them, in this organization only, with
//! their role: removing that member stops the token too. The secret is drawn by the caller (the
//! HTTP layer) and only its SHA-256 reaches the workflow, so neither the tokens table nor the
//! workflow's recorded outcome holds a usable token; the request that ran the workflow shows the
//! secret once, and a replay answers without it.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use hestami_core::ids::UserId;
use hestami_core::org::Role;
use hestami_core::text::{Email, Name};

use super::{Caller, Command, Services};
use crate::db::{Row, args};
use crate::directory::{auth_cache, parse_stored, upsert_user};
use crate::engine::WorkflowCtx;
use crate::error::{Failure, FailureKind, StoreError};
use crate::store::{TenantTx, new_id};

/// The workflow behind every member and token change.
pub const WORKFLOW: &str = "membership_v1";

/// The longest an integration token may live: 10 years.
pub const MAX_TOKEN_DAYS: u32 = 3650;

/// `member/v1/invite`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InviteMember {
    /// Who.
    pub email: Email,
    /// With which role.
    pub role: Role,
    /// The SHA-256 (hex) of the invitation code the caller drew, used if one is issued.
    pub code_hash: String,
}

/// `member/v1/setRole`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetRole {
    /// Which member.
    pub user_id: UserId,
    /// The new role.
    pub role: Role,
}

/// `member/v1/remove`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoveMember {
    /// Which member.
    pub user_id: UserId,
}

/// `token/v1/createIntegration`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateIntegrationToken {
    /// What it is for.
    pub name: Name,
    /// How many days it works; `None` until revoked.
    pub expires_in_days: Option<u32>,
    /// The SHA-256 of the secret (hex), drawn by the caller.
    pub token_hash: String,
}

/// `token/v1/revoke`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevokeToken {
    /// Which token.
    pub token_id: Uuid,
}

/// The member and token procedures that change something.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "procedure", content = "input")]
pub enum MembershipCommand {
    /// `member/v1/invite`.
    #[serde(rename = "member/v1/invite")]
    Invite(InviteMember),
    /// `member/v1/setRole`.
    #[serde(rename = "member/v1/setRole")]
    SetRole(SetRole),
    /// `member/v1/remove`.
    #[serde(rename = "member/v1/remove")]
    Remove(RemoveMember),
    /// `token/v1/createIntegration`.
    #[serde(rename = "token/v1/createIntegration")]
    CreateToken(CreateIntegrationToken),
    /// `token/v1/revoke`.
    #[serde(rename = "token/v1/revoke")]
    RevokeToken(RevokeToken),
}

impl Command for MembershipCommand {
    const WORKFLOW: &'static str = WORKFLOW;
    fn procedure(&self) -> &'static str {
        match self {
            Self::Invite(_) => "member/v1/invite",
            Self::SetRole(_) => "member/v1/setRole",
            Self::Remove(_) => "member/v1/remove",
            Self::CreateToken(_) => "token/v1/createIntegration",
            Self::RevokeToken(_) => "token/v1/revoke",
        }
    }
}

/// A member of the organization.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// The user.
    pub user_id: UserId,
    /// Their e-mail address.
    pub email: String,
    /// Their name, when they gave one.
    pub name: Option<String>,
    /// Their role here.
    pub role: Role,
    /// Whether they have set a password (accepted an invitation).
    pub has_password: bool,
    /// Since when.
    pub created_at: DateTime<Utc>,
}

/// An invitation issued with the caller's code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedInvite {
    /// The SHA-256 of the code (the caller holds the code).
    pub code_hash: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// What `member/v1/invite` made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvitedMember {
    /// The new member.
    pub member: Member,
    /// The invitation, for someone with no password who belongs to no other organization
    /// (`None` otherwise: they sign in with their password, or set it with the invitation of
    /// the organization they belong to; see `Store::accept_invite`).
    pub invite: Option<IssuedInvite>,
}

/// An API token that can act in the organization.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    /// Its id.
    pub token_id: Uuid,
    /// Whose: it acts as this user.
    pub user_id: UserId,
    /// Their e-mail address.
    pub email: String,
    /// `integration` (this organization only) or `personal` (every organization of the user).
    pub kind: String,
    /// Its name or label.
    pub name: Option<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The SHA-256 of its secret, for the caller that drew it (never rendered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_hash: Option<String>,
}

pub(crate) async fn run(
    mut ctx: WorkflowCtx,
    command: MembershipCommand,
) -> Result<serde_json::Value, StoreError> {
    use MembershipCommand as C;
    let value = match command {
        C::Invite(i) => serde_json::to_value(
            ctx.step("invite_member", move |tx| Box::pin(invite(tx, i)))
                .await?,
        )?,
        C::SetRole(s) => serde_json::to_value(
            ctx.step("set_role", move |tx| Box::pin(set_role(tx, s)))
                .await?,
        )?,
        C::Remove(r) => serde_json::to_value(
            ctx.step("remove_member", move |tx| Box::pin(remove(tx, r)))
                .await?,
        )?,
        C::CreateToken(c) => serde_json::to_value(
            ctx.step("create_token", move |tx| Box::pin(create_token(tx, c)))
                .await?,
        )?,
        C::RevokeToken(r) => serde_json::to_value(
            ctx.step("revoke_token", move |tx| Box::pin(revoke_token(tx, r)))
                .await?,
        )?,
    };
    // After the step committed: a request authorized meanwhile from the cache sees the change
    // from now on (clearing inside the transaction could let it cache the old answer again).
    auth_cache().clear();
    Ok(value)
}

/// Serializes the organization's membership changes (PostgreSQL: the organization's row lock;
/// SQLite: its single writer), so two owners changing each other cannot both pass the checks.
async fn lock_organization(tx: &mut TenantTx) -> Result<(), StoreError> {
    let org = tx.org();
    let sql = format!(
        "SELECT id FROM organizations WHERE id = $1{}",
        tx.for_update()
    );
    tx.fetch_optional(&sql, args![org])
        .await?
        .ok_or_else(|| StoreError::from(Failure::not_found("organization")))?;
    Ok(())
}

/// Refuses a change that would leave the organization without an owner, whoever asks.
async fn ensure_an_owner(tx: &mut TenantTx) -> Result<(), StoreError> {
    let org = tx.org();
    let row = tx
        .fetch_one(
            "SELECT COUNT(*) AS n FROM memberships WHERE organization_id = $1 AND role = $2",
            args![org, Role::Owner.as_str()],
        )
        .await?;
    if row.get::<i64>("n")? == 0 {
        return Err(Failure::new(
            FailureKind::Conflict,
            "LAST_OWNER",
            "the organization would have no owner left; make someone else owner first",
        )
        .into());
    }
    Ok(())
}

fn role_not_grantable(message: &str) -> StoreError {
    Failure::new(FailureKind::Forbidden, "ROLE_NOT_GRANTABLE", message).into()
}

fn is_self() -> StoreError {
    Failure::new(
        FailureKind::Conflict,
        "MEMBER_IS_SELF",
        "nobody changes or removes their own membership; another owner or admin does",
    )
    .into()
}

/// The acting member's role; `None` for the operator (the CLI, a timer), who may do anything.
/// An actor who is not (or no longer) a member is refused.
async fn actor_role(tx: &mut TenantTx) -> Result<Option<Role>, StoreError> {
    let Some(actor) = tx.actor() else {
        return Ok(None);
    };
    match member(tx, actor).await? {
        Some(m) => Ok(Some(m.role)),
        None => Err(Failure::new(
            FailureKind::Forbidden,
            "NOT_A_MEMBER",
            "the caller is not a member of this organization",
        )
        .into()),
    }
}

/// Refuses a non-owner touching the owner role (`from` the member's current role, `to` the
/// one asked for).
async fn check_owner_rule(
    tx: &mut TenantTx,
    from: Option<Role>,
    to: Option<Role>,
) -> Result<(), StoreError> {
    let touches_owner = from == Some(Role::Owner) || to == Some(Role::Owner);
    if touches_owner && !matches!(actor_role(tx).await?, None | Some(Role::Owner)) {
        return Err(role_not_grantable(
            "only an owner grants, changes or removes the owner role",
        ));
    }
    Ok(())
}

const MEMBER_COLUMNS: &str = "u.id, u.email, u.name, u.password_hash, m.role, m.created_at";

fn decode_member(row: &Row) -> Result<Member, StoreError> {
    Ok(Member {
        user_id: UserId::from_uuid(row.get("id")?),
        email: row.get("email")?,
        name: row.get("name")?,
        role: parse_stored(&row.get::<String>("role")?, Role::parse)?,
        has_password: row.get::<Option<String>>("password_hash")?.is_some(),
        created_at: row.get("created_at")?,
    })
}

async fn member(tx: &mut TenantTx, user: UserId) -> Result<Option<Member>, StoreError> {
    let org = tx.org();
    let sql = format!(
        "SELECT {MEMBER_COLUMNS} FROM memberships m JOIN users u ON u.id = m.user_id \
         WHERE m.organization_id = $1 AND m.user_id = $2"
    );
    tx.fetch_optional(&sql, args![org, user.as_uuid()])
        .await?
        .map(|r| decode_member(&r))
        .transpose()
}

async fn invite(tx: &mut TenantTx, i: InviteMember) -> Result<InvitedMember, StoreError> {
    lock_organization(tx).await?;
    check_owner_rule(tx, None, Some(i.role)).await?;
    let now = tx.now();
    let user = upsert_user(tx, &i.email, now).await?;
    if let Some(existing) = member(tx, user).await? {
        return Err(Failure::new(
            FailureKind::Conflict,
            "MEMBER_EXISTS",
            format!(
                "{} is a member already, as {}; change their role instead",
                existing.email,
                existing.role.as_str()
            ),
        )
        .with_details(serde_json::json!({ "userId": user, "role": existing.role.as_str() }))
        .into());
    }
    let org = tx.org();
    tx.execute(
        "INSERT INTO memberships (organization_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
        args![org, user.as_uuid(), i.role.as_str(), now],
    )
    .await?;
    let member = member(tx, user)
        .await?
        .ok_or_else(|| StoreError::Internal("a membership just written is missing".into()))?;
    // A code sets a password for the person everywhere: only for someone with none who
    // belongs to no other organization (`Store::accept_invite` checks it again).
    let elsewhere = tx
        .fetch_one(
            "SELECT COUNT(*) AS n FROM memberships WHERE user_id = $1 AND organization_id <> $2",
            args![user.as_uuid(), org],
        )
        .await?
        .get::<i64>("n")?
        > 0;
    let invite = if member.has_password || elsewhere {
        None
    } else {
        let expires_at = crate::sessions::insert_invite(tx, user, &i.code_hash).await?;
        Some(IssuedInvite {
            code_hash: i.code_hash,
            expires_at,
        })
    };
    Ok(InvitedMember { member, invite })
}

async fn set_role(tx: &mut TenantTx, s: SetRole) -> Result<Member, StoreError> {
    if tx.actor() == Some(s.user_id) {
        return Err(is_self());
    }
    lock_organization(tx).await?;
    let current = member(tx, s.user_id)
        .await?
        .ok_or_else(|| StoreError::from(Failure::not_found("member")))?;
    check_owner_rule(tx, Some(current.role), Some(s.role)).await?;
    let org = tx.org();
    tx.execute(
        "UPDATE memberships SET role = $1 WHERE organization_id = $2 AND user_id = $3",
        args![s.role.as_str(), org, s.user_id.as_uuid()],
    )
    .await?;
    ensure_an_owner(tx).await?;
    Ok(Member {
        role: s.role,
        ..current
    })
}

async fn remove(tx: &mut TenantTx, r: RemoveMember) -> Result<Member, StoreError> {
    if tx.actor() == Some(r.user_id) {
        return Err(is_self());
    }
    lock_organization(tx).await?;
    let current = member(tx, r.user_id)
        .await?
        .ok_or_else(|| StoreError::from(Failure::not_found("member")))?;
    check_owner_rule(tx, Some(current.role), None).await?;
    let org = tx.org();
    let now = tx.now();
    let user = r.user_id.as_uuid();
    tx.execute(
        "UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND organization_id = $3 \
         AND revoked_at IS NULL",
        args![now, user, org],
    )
    .await?;
    tx.execute(
        "DELETE FROM refresh_tokens WHERE organization_id = $1 AND user_id = $2",
        args![org, user],
    )
    .await?;
    tx.execute(
        "UPDATE devices SET revoked_at = $1 WHERE organization_id = $2 AND user_id = $3 \
         AND revoked_at IS NULL",
        args![now, org, user],
    )
    .await?;
    tx.execute(
        "DELETE FROM memberships WHERE organization_id = $1 AND user_id = $2",
        args![org, user],
    )
    .await?;
    ensure_an_owner(tx).await?;
    Ok(current)
}

async fn create_token(
    tx: &mut TenantTx,
    c: CreateIntegrationToken,
) -> Result<TokenInfo, StoreError> {
    let Some(actor) = tx.actor() else {
        return Err(Failure::new(
            FailureKind::Forbidden,
            "NOT_A_MEMBER",
            "an integration token acts as the member who makes it",
        )
        .into());
    };
    let now = tx.now();
    let org = tx.org();
    let id = new_id();
    let expires_at = c
        .expires_in_days
        .map(|d| now + Duration::days(i64::from(d)));
    tx.execute(
        "INSERT INTO api_tokens (id, user_id, token_hash, label, created_at, expires_at, organization_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        args![
            id,
            actor.as_uuid(),
            c.token_hash.as_str(),
            c.name.as_str(),
            now,
            expires_at,
            org
        ],
    )
    .await?;
    let mut token = token(tx, id)
        .await?
        .ok_or_else(|| StoreError::Internal("a token just written is missing".into()))?;
    token.token_hash = Some(c.token_hash);
    Ok(token)
}

async fn revoke_token(tx: &mut TenantTx, r: RevokeToken) -> Result<TokenInfo, StoreError> {
    let found = token(tx, r.token_id)
        .await?
        .ok_or_else(|| StoreError::from(Failure::not_found("token")))?;
    // A personal token works in its owner's other organizations too: no one organization
    // (nor a token bound to one) ends it. Removing the member stops it here.
    if found.kind == "personal" && tx.actor().is_some() {
        return Err(Failure::new(
            FailureKind::Forbidden,
            "TOKEN_NOT_REVOCABLE",
            "a personal token works in the member's other organizations too: an operator \
             revokes it (hestami admin revoke-token); removing the member stops it here",
        )
        .into());
    }
    if found.revoked_at.is_none() {
        let now = tx.now();
        tx.execute(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
            args![now, r.token_id],
        )
        .await?;
    }
    token(tx, r.token_id)
        .await?
        .ok_or_else(|| StoreError::Internal("a token just revoked is missing".into()))
}

/// The tokens that can act in the organization, other than devices' short-lived access tokens:
/// those bound to it, and the personal tokens of its members.
const TOKENS_SQL: &str = "SELECT t.id, t.user_id, u.email, t.label, t.organization_id, t.created_at, \
     t.expires_at, t.revoked_at FROM api_tokens t JOIN users u ON u.id = t.user_id \
     JOIN memberships m ON m.user_id = t.user_id AND m.organization_id = $1 \
     WHERE t.device_id IS NULL AND (t.organization_id = $1 OR t.organization_id IS NULL)";

fn decode_token(row: &Row) -> Result<TokenInfo, StoreError> {
    Ok(TokenInfo {
        token_id: row.get("id")?,
        user_id: UserId::from_uuid(row.get("user_id")?),
        email: row.get("email")?,
        kind: if row.get::<Option<Uuid>>("organization_id")?.is_some() {
            "integration".into()
        } else {
            "personal".into()
        },
        name: row.get("label")?,
        created_at: row.get("created_at")?,
        expires_at: row.get("expires_at")?,
        revoked_at: row.get("revoked_at")?,
        token_hash: None,
    })
}

async fn token(tx: &mut TenantTx, id: Uuid) -> Result<Option<TokenInfo>, StoreError> {
    let org = tx.org();
    tx.fetch_optional(&format!("{TOKENS_SQL} AND t.id = $2"), args![org, id])
        .await?
        .map(|r| decode_token(&r))
        .transpose()
}

impl Services {
    /// Makes `email` a member with `role`: `member/v1/invite`, or `member/v1/setRole` when they
    /// are a member already; each as its own workflow with a fresh key. What `hestami admin
    /// add-member` runs, as the operator (`caller.user_id` is `None`). Returns the member and,
    /// when one was issued, the invitation code (drawn here; only its hash is stored).
    pub async fn member_put(
        &self,
        caller: &Caller,
        email: Email,
        role: Role,
    ) -> Result<(Member, Option<(String, DateTime<Utc>)>), StoreError> {
        let request = |command| {
            let key = Uuid::now_v7();
            super::Request {
                idempotency_key: key,
                fingerprint: key.to_string(),
                trace_id: None,
                command,
            }
        };
        let code = crate::directory::random_token()?.replacen("hst_", "hsi_", 1);
        let invite = InviteMember {
            email,
            role,
            code_hash: crate::directory::hash_token(&code),
        };
        let invited = self
            .submit(caller, request(MembershipCommand::Invite(invite)))
            .await?;
        let user_id = match invited.outcome {
            Ok(text) => {
                let invited: InvitedMember = serde_json::from_str(&text)?;
                let issued = invited.invite.map(|i| (code, i.expires_at));
                return Ok((invited.member, issued));
            }
            Err(failure) if failure.code == "MEMBER_EXISTS" => failure
                .details
                .as_ref()
                .and_then(|d| d.get("userId"))
                .and_then(|u| serde_json::from_value::<UserId>(u.clone()).ok())
                .ok_or_else(|| StoreError::Internal("MEMBER_EXISTS without its user".into()))?,
            Err(failure) => return Err(failure.into()),
        };
        let changed = self
            .submit(
                caller,
                request(MembershipCommand::SetRole(SetRole { user_id, role })),
            )
            .await?;
        match changed.outcome {
            Ok(text) => Ok((serde_json::from_str(&text)?, None)),
            Err(failure) => Err(failure.into()),
        }
    }

    /// `member/v1/list`: every member, by when they joined.
    pub async fn member_list(&self, caller: &Caller) -> Result<Vec<Member>, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let org = tx.org();
                tx.fetch_all(
                    &format!(
                        "SELECT {MEMBER_COLUMNS} FROM memberships m JOIN users u ON u.id = m.user_id \
                         WHERE m.organization_id = $1 ORDER BY m.created_at, u.id"
                    ),
                    args![org],
                )
                .await?
                .iter()
                .map(decode_member)
                .collect()
            })
        })
        .await
    }

    /// `token/v1/list`: the tokens that can act in the organization (not devices' access
    /// tokens), oldest first, revoked ones included.
    pub async fn token_list(&self, caller: &Caller) -> Result<Vec<TokenInfo>, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let org = tx.org();
                tx.fetch_all(
                    &format!("{TOKENS_SQL} ORDER BY t.created_at, t.id"),
                    args![org],
                )
                .await?
                .iter()
                .map(decode_token)
                .collect()
            })
        })
        .await
    }
}
