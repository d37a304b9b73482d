//! The directory: organizations, users, memberships and API tokens.
//!
//! Authentication reads the directory before an organization is chosen (a token names a user,
//! not an organization), so users, memberships and tokens are shared tables. Tokens are random
//! (32 bytes from the operating system), shown once, and stored only as SHA-256 hashes: a leaked
//! database does not leak usable tokens. An organization's own row is a tenant row, written and
//! read through [`crate::TenantTx`] like any other.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use hestami_core::ids::{OrganizationId, UserId};
use hestami_core::org::{
    Currency, Membership, OrgKind, Organization, Role, SlaWindows, TimeZone, User,
};
use hestami_core::text::{Email, Name, OrgName};

use crate::db::{Row, args};
use crate::error::{Failure, FailureKind, StoreError};
use crate::store::{Operation, Store, TenantTx, new_id};

/// What `admin create-org` needs.
#[derive(Clone, Debug)]
pub struct NewOrganization {
    /// Display name.
    pub name: OrgName,
    /// Contractor or HOA.
    pub kind: OrgKind,
    /// Its zone.
    pub time_zone: TimeZone,
    /// Its currency.
    pub currency: Currency,
    /// The owner's e-mail address; the user is created if new.
    pub owner_email: Email,
}

/// The result of creating an organization: its owner and a first token for them.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedOrganization {
    /// The new organization.
    pub organization_id: OrganizationId,
    /// Its owner.
    pub user_id: UserId,
    /// A bearer token for the owner. Shown once; only its hash is stored.
    pub token: String,
}

/// A token issued to a user.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedToken {
    /// The token's id (for revocation without the secret).
    pub token_id: Uuid,
    /// Whose token.
    pub user_id: UserId,
    /// The secret. Shown once.
    pub token: String,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
}

/// The SHA-256 of a token, hex-encoded: what the database keeps.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new token secret: `hst_` and 32 random bytes from the operating system, hex-encoded.
pub fn random_token() -> Result<String, StoreError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| StoreError::Internal(format!("the OS random source failed: {e}")))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("hst_{hex}"))
}

impl Store {
    /// Creates an organization, its owner (unless the user exists) with the `owner` role, and a
    /// token for the owner.
    pub async fn create_organization(
        &self,
        new: NewOrganization,
    ) -> Result<CreatedOrganization, StoreError> {
        let organization_id = OrganizationId::from_uuid(new_id());
        let now = self.now();
        let sla = SlaWindows::default();
        // The organization row is a tenant row: write it through the tenant handle, so the
        // row-level security check sees its own organization.
        let mut tx = self.tenant(organization_id, true).await?;
        tx.execute(
            "INSERT INTO organizations (id, version, kind, name, time_zone, currency, \
             sla_emergency_minutes, sla_urgent_minutes, sla_routine_minutes, created_at, updated_at) \
             VALUES ($1, 1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
            args![
                organization_id.as_uuid(),
                new.kind.as_str(),
                new.name.as_str(),
                new.time_zone.name(),
                new.currency.code(),
                i64::from(sla.emergency_minutes),
                i64::from(sla.urgent_minutes),
                i64::from(sla.routine_minutes),
                now
            ],
        )
        .await?;
        tx.execute(
            "INSERT INTO feed_counters (organization_id, last_seq) VALUES ($1, 0)",
            args![organization_id.as_uuid()],
        )
        .await?;
        // The organization's daily scans are due at once, then every morning.
        for timer in crate::app::timers::DAILY {
            tx.execute(
                "INSERT INTO timers (organization_id, name, due_at) VALUES ($1, $2, $3)",
                args![organization_id.as_uuid(), timer, now],
            )
            .await?;
        }
        tx.record_change(
            "organization",
            organization_id.as_uuid(),
            1,
            Operation::Created,
        )
        .await?;
        let user_id = upsert_user(&mut tx, &new.owner_email, now).await?;
        tx.execute(
            "INSERT INTO memberships (organization_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
            args![organization_id.as_uuid(), user_id.as_uuid(), Role::Owner.as_str(), now],
        )
        .await?;
        let issued = insert_token(
            &mut tx,
            user_id,
            None,
            Some("created with the organization"),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(CreatedOrganization {
            organization_id,
            user_id,
            token: issued.token,
        })
    }

    /// Adds `email` (created if new) to the organization with `role`, or changes its role.
    pub async fn add_member(
        &self,
        organization_id: OrganizationId,
        email: &Email,
        role: Role,
    ) -> Result<UserId, StoreError> {
        let mut tx = self.tenant(organization_id, true).await?;
        let now = tx.now();
        let exists = tx
            .fetch_optional(
                "SELECT id FROM organizations WHERE id = $1",
                args![organization_id.as_uuid()],
            )
            .await?;
        if exists.is_none() {
            return Err(Failure::not_found("organization").into());
        }
        let user_id = upsert_user(&mut tx, email, now).await?;
        tx.execute(
            "INSERT INTO memberships (organization_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (organization_id, user_id) DO UPDATE SET role = excluded.role",
            args![organization_id.as_uuid(), user_id.as_uuid(), role.as_str(), now],
        )
        .await?;
        tx.commit().await?;
        self.auth_cache().clear();
        Ok(user_id)
    }

    /// Issues a new token for the user with `email`, valid for `expires_in` if given.
    pub async fn create_token(
        &self,
        email: &Email,
        expires_in: Option<Duration>,
        label: Option<&str>,
    ) -> Result<IssuedToken, StoreError> {
        let mut tx = self.shared(true).await?;
        let now = self.now();
        let Some(row) = tx
            .fetch_optional(
                "SELECT id FROM users WHERE email = $1",
                args![email.as_str()],
            )
            .await?
        else {
            return Err(Failure::not_found("user").into());
        };
        let user_id = UserId::from_uuid(row.get("id")?);
        let token = random_token()?;
        let expires_at = expires_in.map(|d| now + d);
        let token_id = new_id();
        tx.execute(
            "INSERT INTO api_tokens (id, user_id, token_hash, label, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            args![
                token_id,
                user_id.as_uuid(),
                hash_token(&token),
                label,
                now,
                expires_at
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(IssuedToken {
            token_id,
            user_id,
            token,
            expires_at,
        })
    }

    /// Revokes a token, given either the secret itself or its id. Returns whether a live token
    /// was revoked.
    pub async fn revoke_token(&self, token_or_id: &str) -> Result<bool, StoreError> {
        let mut tx = self.shared(true).await?;
        let now = self.now();
        let n = match Uuid::parse_str(token_or_id) {
            Ok(id) => {
                tx.execute(
                    "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                    args![now, id],
                )
                .await?
            }
            Err(_) => {
                tx.execute(
                    "UPDATE api_tokens SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL",
                    args![now, hash_token(token_or_id)],
                )
                .await?
            }
        };
        tx.commit().await?;
        self.auth_cache().clear();
        Ok(n > 0)
    }

    /// The user a bearer token belongs to, if the token exists, is not revoked and has not
    /// expired.
    pub async fn authenticate(&self, token: &str) -> Result<Option<UserId>, StoreError> {
        Ok(self
            .authorize(token, None)
            .await?
            .map(|(user_id, _)| user_id))
    }

    /// Who a bearer token is and, given an organization, the role they hold in it (`None` when
    /// they are not a member): one query, answered from a short-lived cache when the same token
    /// asked the same within [`AUTH_CACHE_TTL`]. Revoking a token or changing a membership
    /// through any store of this process empties the cache at once; a change made by another
    /// process (`hestami admin revoke-token`) is seen within the TTL. An expired token is refused
    /// whether cached or not.
    pub async fn authorize(
        &self,
        token: &str,
        organization_id: Option<OrganizationId>,
    ) -> Result<Option<(UserId, Option<Role>)>, StoreError> {
        let hash = hash_token(token);
        let key = (hash, organization_id.map(|o| o.as_uuid()));
        let now = self.now();
        if let Some(hit) = self.auth_cache().get(&key) {
            let live = hit.expires_at.is_none_or(|t| t > now);
            return Ok(live.then_some((hit.user_id, hit.role)));
        }
        let mut tx = self.shared(false).await?;
        let row = tx
            .fetch_optional(
                "SELECT t.user_id, t.expires_at, t.revoked_at, m.role FROM api_tokens t \
                 LEFT JOIN memberships m ON m.user_id = t.user_id AND m.organization_id = $2 \
                 AND (t.organization_id IS NULL OR t.organization_id = m.organization_id) \
                 WHERE t.token_hash = $1",
                args![key.0.as_str(), key.1],
            )
            .await?;
        tx.commit().await?;
        let Some(row) = row else { return Ok(None) };
        let expires_at: Option<DateTime<Utc>> = row.get("expires_at")?;
        let revoked_at: Option<DateTime<Utc>> = row.get("revoked_at")?;
        if revoked_at.is_some() || expires_at.is_some_and(|t| t <= now) {
            return Ok(None);
        }
        let user_id = UserId::from_uuid(row.get("user_id")?);
        let role = row
            .get::<Option<String>>("role")?
            .map(|r| parse_stored(&r, Role::parse))
            .transpose()?;
        self.auth_cache().put(
            key,
            CachedAuth {
                at: std::time::Instant::now(),
                user_id,
                role,
                expires_at,
            },
        );
        Ok(Some((user_id, role)))
    }

    /// The user's role in the organization, if they are a member.
    pub async fn role_of(
        &self,
        user_id: UserId,
        organization_id: OrganizationId,
    ) -> Result<Option<Role>, StoreError> {
        let mut tx = self.shared(false).await?;
        let row = tx
            .fetch_optional(
                "SELECT role FROM memberships WHERE organization_id = $1 AND user_id = $2",
                args![organization_id.as_uuid(), user_id.as_uuid()],
            )
            .await?;
        tx.commit().await?;
        row.map(|r| parse_role(&r)).transpose()
    }

    /// The user and every membership they hold.
    pub async fn whoami(&self, user_id: UserId) -> Result<(User, Vec<Membership>), StoreError> {
        let mut tx = self.shared(false).await?;
        let row = tx
            .fetch_optional(
                "SELECT id, email, name, created_at FROM users WHERE id = $1",
                args![user_id.as_uuid()],
            )
            .await?
            .ok_or_else(|| Failure::not_found("user"))?;
        let user = User {
            id: user_id,
            email: parse_stored(&row.get::<String>("email")?, Email::parse)?,
            name: row
                .get::<Option<String>>("name")?
                .map(|n| parse_stored(&n, Name::parse))
                .transpose()?,
            created_at: row.get("created_at")?,
        };
        let rows = tx
            .fetch_all(
                "SELECT organization_id, role FROM memberships WHERE user_id = $1 ORDER BY organization_id",
                args![user_id.as_uuid()],
            )
            .await?;
        tx.commit().await?;
        let memberships = rows
            .iter()
            .map(|r| {
                Ok(Membership {
                    organization_id: OrganizationId::from_uuid(r.get("organization_id")?),
                    user_id,
                    role: parse_role(r)?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok((user, memberships))
    }
}

fn parse_role(row: &Row) -> Result<Role, StoreError> {
    parse_stored(&row.get::<String>("role")?, Role::parse)
}

/// Parses a value read back from the database; a refusal means the row is corrupt.
pub(crate) fn parse_stored<T>(
    raw: &str,
    parse: impl FnOnce(&str) -> Result<T, hestami_core::Invalid>,
) -> Result<T, StoreError> {
    parse(raw).map_err(|e| StoreError::Internal(format!("stored value {raw:?} is invalid: {e}")))
}

pub(crate) async fn upsert_user(
    tx: &mut TenantTx,
    email: &Email,
    now: DateTime<Utc>,
) -> Result<UserId, StoreError> {
    // Two organizations inviting a new address at once: one insert wins, both read its id.
    tx.execute(
        "INSERT INTO users (id, email, name, created_at) VALUES ($1, $2, NULL, $3) \
         ON CONFLICT (email) DO NOTHING",
        args![new_id(), email.as_str(), now],
    )
    .await?;
    let row = tx
        .fetch_one(
            "SELECT id FROM users WHERE email = $1",
            args![email.as_str()],
        )
        .await?;
    Ok(UserId::from_uuid(row.get("id")?))
}

async fn insert_token(
    tx: &mut TenantTx,
    user_id: UserId,
    expires_at: Option<DateTime<Utc>>,
    label: Option<&str>,
    now: DateTime<Utc>,
) -> Result<IssuedToken, StoreError> {
    let token = random_token()?;
    let token_id = new_id();
    tx.execute(
        "INSERT INTO api_tokens (id, user_id, token_hash, label, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        args![
            token_id,
            user_id.as_uuid(),
            hash_token(&token),
            label,
            now,
            expires_at
        ],
    )
    .await?;
    Ok(IssuedToken {
        token_id,
        user_id,
        token,
        expires_at,
    })
}

/// Reads an organization row.
pub(crate) async fn load_organization(
    tx: &mut TenantTx,
    lock: bool,
) -> Result<Organization, StoreError> {
    let sql = format!(
        "SELECT {ORGANIZATION_COLUMNS} FROM organizations WHERE id = $1{}",
        if lock { tx.for_update() } else { "" }
    );
    let org = tx.org();
    let row = tx
        .fetch_optional(&sql, args![org])
        .await?
        .ok_or_else(|| Failure::not_found("organization"))?;
    decode_organization(&row)
}

/// The columns [`decode_organization`] reads.
pub(crate) const ORGANIZATION_COLUMNS: &str = "id, version, kind, name, time_zone, currency, \
     sla_emergency_minutes, sla_urgent_minutes, sla_routine_minutes, created_at, updated_at";

/// An organization from a row holding [`ORGANIZATION_COLUMNS`].
pub(crate) fn decode_organization(row: &Row) -> Result<Organization, StoreError> {
    let minutes = |col: &str| -> Result<u32, StoreError> {
        u32::try_from(row.get::<i64>(col)?)
            .map_err(|_| StoreError::Internal(format!("{col} out of range")))
    };
    let sla = SlaWindows::parse(
        minutes("sla_emergency_minutes")?,
        minutes("sla_urgent_minutes")?,
        minutes("sla_routine_minutes")?,
    )
    .map_err(|_| StoreError::Internal("stored SLA windows are invalid".into()))?;
    Ok(Organization {
        id: OrganizationId::from_uuid(row.get("id")?),
        version: row.get("version")?,
        kind: parse_stored(&row.get::<String>("kind")?, OrgKind::parse)?,
        name: parse_stored(&row.get::<String>("name")?, OrgName::parse)?,
        time_zone: parse_stored(&row.get::<String>("time_zone")?, TimeZone::parse)?,
        currency: parse_stored(&row.get::<String>("currency")?, Currency::parse)?,
        sla,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

/// `403 FORBIDDEN` for a member whose role does not allow the procedure.
pub fn forbidden(role: Role, procedure: &str) -> Failure {
    Failure::new(
        FailureKind::Forbidden,
        "FORBIDDEN",
        format!("the role {} may not call {procedure}", role.as_str()),
    )
}

/// How long [`Store::authorize`] trusts what it read about a token: the longest another process
/// can keep accepting a token revoked (or a membership changed) elsewhere.
pub const AUTH_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// The process's one cache of authorizations.
pub(crate) fn auth_cache() -> &'static AuthCache {
    static CACHE: std::sync::LazyLock<AuthCache> = std::sync::LazyLock::new(AuthCache::default);
    &CACHE
}

/// The most entries the cache holds; past it, it starts again empty.
const AUTH_CACHE_ENTRIES: usize = 10_000;

/// What [`Store::authorize`] remembers of a token (by its hash) and an organization.
#[derive(Debug, Default)]
pub(crate) struct AuthCache {
    entries: std::sync::Mutex<std::collections::HashMap<AuthKey, CachedAuth>>,
}

type AuthKey = (String, Option<Uuid>);

#[derive(Clone, Copy, Debug)]
pub(crate) struct CachedAuth {
    at: std::time::Instant,
    user_id: UserId,
    role: Option<Role>,
    expires_at: Option<DateTime<Utc>>,
}

impl AuthCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<AuthKey, CachedAuth>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, key: &AuthKey) -> Option<CachedAuth> {
        let mut entries = self.lock();
        match entries.get(key) {
            Some(hit) if hit.at.elapsed() < AUTH_CACHE_TTL => Some(*hit),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    fn put(&self, key: AuthKey, value: CachedAuth) {
        let mut entries = self.lock();
        if entries.len() >= AUTH_CACHE_ENTRIES {
            entries.clear();
        }
        entries.insert(key, value);
    }

    /// Forgets everything: after a revocation or a membership change.
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }
}
