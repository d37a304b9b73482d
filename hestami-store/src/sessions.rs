//! Sign-in for people: passwords, invitations, devices, access and refresh tokens, and the
//! attempt limits that slow password guessing.
//!
//! - **Passwords** are hashed with argon2id (the `argon2` crate, RustCrypto) at its default cost
//!   (19 MiB, two passes: OWASP's recommendation) in a blocking thread, never inside a database
//!   transaction. An unknown e-mail address is checked against a dummy hash, so the answer takes
//!   as long as for a known one and says the same: `401 INVALID_CREDENTIALS`.
//! - **An invitation** (`technician/v1/invite`) holds a random code; the database keeps its
//!   SHA-256 only. `auth/v1/acceptInvite` sets the password, once; presenting the same code and
//!   the same password again answers the same (a lost response is safe to retry).
//! - **A device** is a named installation of the app, signed in for one organization. Signing in
//!   on it (`auth/v1/login`) issues a short-lived access token bound to the device and its
//!   organization, and a refresh token. `auth/v1/refresh` replaces both; the refresh token it was
//!   given is spent. A spent refresh token presented again within [`REFRESH_GRACE`] (the
//!   response was lost) gets a new pair and spends every other; after the grace it means the
//!   token was copied, and the device is revoked. `auth/v1/logout` and an owner's
//!   `technician/v1/revokeDevice` end the device's session: its refresh tokens are deleted and
//!   its access tokens revoked.
//! - **Attempt limits**: every password attempt counts against the account and against the
//!   client address in a fixed window ([`Limits`]); a success gives the attempt back. Past a
//!   limit the answer is `429 RATE_LIMITED` with the seconds to wait, before any password is
//!   checked. The counters are rows, so every process of a deployment shares them.

use std::net::IpAddr;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use hestami_core::ids::{OrganizationId, UserId};
use hestami_core::text::{Email, Password};

use crate::db::{Tx, args};
use crate::directory::{hash_token, random_token};
use crate::error::{Failure, FailureKind, StoreError};
use crate::store::{Store, TenantTx, new_id};

/// How long an access token issued to a device works.
pub const ACCESS_TTL: Duration = Duration::minutes(15);
/// How long a refresh token works if it is not used.
pub const REFRESH_TTL: Duration = Duration::days(30);
/// How long an invitation can be accepted.
pub const INVITE_TTL: Duration = Duration::days(7);
/// How long after a refresh token was spent it may still be presented (its response was lost).
pub const REFRESH_GRACE: Duration = Duration::seconds(30);

/// The attempt limits of sign-in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Password attempts per account in a window.
    pub per_account: i64,
    /// Password attempts per client address in a window.
    pub per_address: i64,
    /// The window.
    pub window: Duration,
}

impl Default for Limits {
    /// 5 attempts per account and 20 per address in 15 minutes.
    fn default() -> Self {
        Self {
            per_account: 5,
            per_address: 20,
            window: Duration::minutes(15),
        }
    }
}

/// What `auth/v1/login` is given.
#[derive(Clone, Debug)]
pub struct SignIn {
    /// Who.
    pub email: Email,
    /// Their password.
    pub password: Password,
    /// The organization to sign in to; may be left out by a member of exactly one.
    pub organization_id: Option<OrganizationId>,
    /// The app installation's own id.
    pub device_id: Uuid,
    /// A name for it a person recognizes ("Dana's iPhone").
    pub device_name: String,
    /// The client's address, for the per-address limit.
    pub address: Option<IpAddr>,
}

/// A device's session: the tokens to use and when they stop working.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceSession {
    /// Who.
    pub user_id: UserId,
    /// The organization the tokens work in.
    pub organization_id: OrganizationId,
    /// The device.
    pub device_id: Uuid,
    /// The bearer token for every call. Shown once.
    pub access_token: String,
    /// When it stops working.
    pub access_expires_at: DateTime<Utc>,
    /// The token for `auth/v1/refresh`. Shown once; works once.
    pub refresh_token: String,
    /// When it stops working if unused.
    pub refresh_expires_at: DateTime<Utc>,
}

/// A device as an owner sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    /// The installation's id.
    pub device_id: Uuid,
    /// Its name.
    pub name: String,
    /// First signed in.
    pub created_at: DateTime<Utc>,
    /// Last signed in or refreshed.
    pub last_seen_at: DateTime<Utc>,
    /// When its session was ended (signed out or revoked); `None` while signed in.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// An invitation just issued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invite {
    /// The code to give the person (`auth/v1/acceptInvite`). Single use.
    pub code: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

fn invalid_credentials() -> StoreError {
    Failure::new(
        FailureKind::Unauthenticated,
        "INVALID_CREDENTIALS",
        "the e-mail address or the password is wrong",
    )
    .into()
}

fn internal(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("{what}: {e}"))
}

/// Hashes a password with argon2id and a random salt (PHC string).
async fn hash_password(password: Password) -> Result<String, StoreError> {
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| internal("the OS random source failed", e))?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| internal("salt", e))?;
        argon2::Argon2::default()
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| internal("argon2", e))
    })
    .await
    .map_err(|e| internal("the hashing task", e))?
}

/// A hash of a random password nobody knows, checked when there is no user (or no password) so
/// that the answer takes as long as a real check. Made once per process, with the same cost.
fn dummy_hash() -> Result<String, StoreError> {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if let Some(hash) = DUMMY.get() {
        return Ok(hash.clone());
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| internal("the OS random source failed", e))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| internal("salt", e))?;
    let hash = argon2::Argon2::default()
        .hash_password(random_token()?.as_bytes(), &salt)
        .map_err(|e| internal("argon2", e))?
        .to_string();
    Ok(DUMMY.get_or_init(|| hash).clone())
}

/// Whether `password` matches the stored hash (or, with none, takes as long to say no).
async fn verify_password(password: Password, stored: Option<String>) -> Result<bool, StoreError> {
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let text = match stored {
            Some(hash) => hash,
            None => dummy_hash()?,
        };
        let parsed = PasswordHash::new(&text).map_err(|e| internal("a stored hash", e))?;
        let matches = argon2::Argon2::default()
            .verify_password(password.expose().as_bytes(), &parsed)
            .is_ok();
        Ok(known && matches)
    })
    .await
    .map_err(|e| internal("the hashing task", e))?
}

/// The throttle keys of an attempt, in lock order.
fn throttle_keys(email: &Email, address: Option<IpAddr>) -> Vec<(String, bool)> {
    let mut keys = vec![(format!("account:{}", email.as_str()), true)];
    if let Some(address) = address {
        keys.push((format!("address:{address}"), false));
    }
    keys.sort();
    keys
}

/// Takes one attempt from each key's allowance, or refuses with `429` (taking nothing) when one
/// is spent.
async fn take_attempt(
    tx: &mut Tx,
    keys: &[(String, bool)],
    limits: Limits,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut windows = Vec::with_capacity(keys.len());
    for (key, per_account) in keys {
        tx.execute(
            "INSERT INTO auth_throttle (key, failures, window_started_at) VALUES ($1, 0, $2) \
             ON CONFLICT (key) DO NOTHING",
            args![key.as_str(), now],
        )
        .await?;
        let sql = format!(
            "SELECT failures, window_started_at FROM auth_throttle WHERE key = $1{}",
            tx.for_update()
        );
        let row = tx.fetch_one(&sql, args![key.as_str()]).await?;
        let mut failures: i64 = row.get("failures")?;
        let mut started: DateTime<Utc> = row.get("window_started_at")?;
        if started + limits.window <= now {
            failures = 0;
            started = now;
        }
        let limit = if *per_account {
            limits.per_account
        } else {
            limits.per_address
        };
        if failures >= limit {
            let wait = (started + limits.window - now).num_seconds().max(1);
            return Err(Failure::new(
                FailureKind::RateLimited,
                "RATE_LIMITED",
                format!(
                    "too many sign-in attempts for this {}; retry in {wait} s",
                    if *per_account { "account" } else { "address" }
                ),
            )
            .with_details(serde_json::json!({
                "retryAfterSeconds": wait,
                "limit": if *per_account { "account" } else { "address" },
            }))
            .into());
        }
        windows.push((key, failures, started));
    }
    for (key, failures, started) in windows {
        tx.execute(
            "UPDATE auth_throttle SET failures = $1, window_started_at = $2 WHERE key = $3",
            args![failures + 1, started, key.as_str()],
        )
        .await?;
    }
    Ok(())
}

/// Gives a successful attempt back: the account starts afresh, the address gets its one back.
async fn give_back(tx: &mut Tx, keys: &[(String, bool)]) -> Result<(), StoreError> {
    for (key, per_account) in keys {
        if *per_account {
            tx.execute(
                "DELETE FROM auth_throttle WHERE key = $1",
                args![key.as_str()],
            )
            .await?;
        } else {
            tx.execute(
                "UPDATE auth_throttle SET failures = failures - 1 WHERE key = $1 AND failures > 0",
                args![key.as_str()],
            )
            .await?;
        }
    }
    Ok(())
}

/// Issues an access token and a refresh token for a device (the caller commits).
async fn issue(
    tx: &mut Tx,
    user_id: UserId,
    organization_id: OrganizationId,
    device_id: Uuid,
    label: &str,
    now: DateTime<Utc>,
) -> Result<DeviceSession, StoreError> {
    let access_token = random_token()?;
    let access_expires_at = now + ACCESS_TTL;
    tx.execute(
        "INSERT INTO api_tokens (id, user_id, token_hash, label, created_at, expires_at, \
         organization_id, device_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        args![
            new_id(),
            user_id.as_uuid(),
            hash_token(&access_token),
            label,
            now,
            access_expires_at,
            organization_id.as_uuid(),
            device_id
        ],
    )
    .await?;
    let refresh_token = random_token()?.replacen("hst_", "hsr_", 1);
    let refresh_expires_at = now + REFRESH_TTL;
    tx.execute(
        "INSERT INTO refresh_tokens (token_hash, organization_id, user_id, device_id, created_at, \
         expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        args![
            hash_token(&refresh_token),
            organization_id.as_uuid(),
            user_id.as_uuid(),
            device_id,
            now,
            refresh_expires_at
        ],
    )
    .await?;
    Ok(DeviceSession {
        user_id,
        organization_id,
        device_id,
        access_token,
        access_expires_at,
        refresh_token,
        refresh_expires_at,
    })
}

/// Forgets what a device's session no longer needs: access tokens expired a day ago, and
/// refresh tokens past their own expiry. Spent refresh tokens are kept until then, so that one
/// presented again is still recognized as reused. Run at each sign-in and refresh.
async fn prune(
    tx: &mut Tx,
    user_id: Uuid,
    device_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM api_tokens WHERE user_id = $1 AND device_id = $2 AND expires_at < $3",
        args![user_id, device_id, now - Duration::days(1)],
    )
    .await?;
    tx.execute(
        "DELETE FROM refresh_tokens WHERE user_id = $1 AND device_id = $2 AND expires_at < $3",
        args![user_id, device_id, now],
    )
    .await?;
    Ok(())
}

/// Ends a device's session: deletes its refresh tokens, revokes its access tokens and marks it.
async fn end_session(
    tx: &mut Tx,
    organization_id: Uuid,
    user_id: Uuid,
    device_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM refresh_tokens WHERE organization_id = $1 AND user_id = $2 AND device_id = $3",
        args![organization_id, user_id, device_id],
    )
    .await?;
    tx.execute(
        "UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND organization_id = $3 \
         AND device_id = $4 AND revoked_at IS NULL",
        args![now, user_id, organization_id, device_id],
    )
    .await?;
    tx.execute(
        "UPDATE devices SET revoked_at = $1 WHERE organization_id = $2 AND user_id = $3 AND id = $4 \
         AND revoked_at IS NULL",
        args![now, organization_id, user_id, device_id],
    )
    .await?;
    Ok(())
}

/// The organization a sign-in is for: the one named, if the user is a member of it, or the
/// user's only one.
fn choose_organization(
    asked: Option<OrganizationId>,
    memberships: &[Uuid],
) -> Result<OrganizationId, StoreError> {
    let not_a_member = |message: &str| -> StoreError {
        Failure::new(FailureKind::Forbidden, "NOT_A_MEMBER", message).into()
    };
    match (asked, memberships) {
        (Some(o), _) if memberships.contains(&o.as_uuid()) => Ok(o),
        (Some(_), _) => Err(not_a_member("you are not a member of this organization")),
        (None, [only]) => Ok(OrganizationId::from_uuid(*only)),
        (None, []) => Err(not_a_member("you are not a member of any organization")),
        (None, _) => Err(Failure::new(
            FailureKind::RuleViolation,
            "ORGANIZATION_REQUIRED",
            "you belong to several organizations: name one in organizationId",
        )
        .with_details(serde_json::json!({ "organizationIds": memberships }))
        .into()),
    }
}

impl Store {
    /// `auth/v1/login` with the default [`Limits`].
    pub async fn login(&self, sign_in: SignIn) -> Result<DeviceSession, StoreError> {
        self.login_with(sign_in, Limits::default()).await
    }

    /// Signs a user in on a device: checks the attempt limits, the password and the membership,
    /// then (re)registers the device, ends any earlier session on it, and issues its tokens.
    pub async fn login_with(
        &self,
        sign_in: SignIn,
        limits: Limits,
    ) -> Result<DeviceSession, StoreError> {
        let now = self.now();
        let keys = throttle_keys(&sign_in.email, sign_in.address);
        let mut tx = self.shared(true).await?;
        take_attempt(&mut tx, &keys, limits, now).await?;
        let user = tx
            .fetch_optional(
                "SELECT id, password_hash FROM users WHERE email = $1",
                args![sign_in.email.as_str()],
            )
            .await?;
        tx.commit().await?;
        let (user_id, stored) = match user {
            Some(row) => (
                Some(UserId::from_uuid(row.get("id")?)),
                row.get::<Option<String>>("password_hash")?,
            ),
            None => (None, None),
        };
        if !verify_password(sign_in.password, stored).await? {
            return Err(invalid_credentials());
        }
        let user_id = user_id.ok_or_else(invalid_credentials)?;
        let mut tx = self.shared(true).await?;
        give_back(&mut tx, &keys).await?;
        let memberships = tx
            .fetch_all(
                "SELECT organization_id FROM memberships WHERE user_id = $1",
                args![user_id.as_uuid()],
            )
            .await?
            .iter()
            .map(|r| r.get::<Uuid>("organization_id"))
            .collect::<Result<Vec<_>, _>>()?;
        let organization_id = match choose_organization(sign_in.organization_id, &memberships) {
            Ok(o) => o,
            Err(refusal) => {
                // The attempt given back above stays given back.
                tx.commit().await?;
                return Err(refusal);
            }
        };
        // One session per device: signing in again ends the one before (which marks the device
        // revoked; the upsert below brings it back).
        end_session(
            &mut tx,
            organization_id.as_uuid(),
            user_id.as_uuid(),
            sign_in.device_id,
            now,
        )
        .await?;
        tx.execute(
            "INSERT INTO devices (organization_id, user_id, id, name, created_at, last_seen_at) \
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (organization_id, user_id, id) \
             DO UPDATE SET name = excluded.name, last_seen_at = excluded.last_seen_at, revoked_at = NULL",
            args![
                organization_id.as_uuid(),
                user_id.as_uuid(),
                sign_in.device_id,
                sign_in.device_name.as_str(),
                now
            ],
        )
        .await?;
        prune(&mut tx, user_id.as_uuid(), sign_in.device_id, now).await?;
        let label = format!("device: {}", sign_in.device_name);
        let session = issue(
            &mut tx,
            user_id,
            organization_id,
            sign_in.device_id,
            &label,
            now,
        )
        .await?;
        tx.commit().await?;
        self.auth_cache().clear();
        Ok(session)
    }

    /// `auth/v1/refresh`: spends a refresh token for a new pair (see the module's notes on reuse).
    pub async fn refresh(&self, refresh_token: &str) -> Result<DeviceSession, StoreError> {
        let now = self.now();
        let invalid = || -> StoreError {
            Failure::new(
                FailureKind::Unauthenticated,
                "REFRESH_TOKEN_INVALID",
                "the refresh token is unknown, expired or revoked: sign in again",
            )
            .into()
        };
        let mut tx = self.shared(true).await?;
        let sql = format!(
            "SELECT r.organization_id, r.user_id, r.device_id, r.expires_at, r.replaced_at, \
             d.name, d.revoked_at, m.role FROM refresh_tokens r \
             JOIN devices d ON d.organization_id = r.organization_id AND d.user_id = r.user_id \
             AND d.id = r.device_id \
             LEFT JOIN memberships m ON m.organization_id = r.organization_id AND m.user_id = r.user_id \
             WHERE r.token_hash = $1{}",
            match tx.backend() {
                crate::Backend::Postgres => " FOR UPDATE OF r",
                crate::Backend::Sqlite => "",
            }
        );
        let Some(row) = tx
            .fetch_optional(&sql, args![hash_token(refresh_token)])
            .await?
        else {
            return Err(invalid());
        };
        let organization: Uuid = row.get("organization_id")?;
        let user: Uuid = row.get("user_id")?;
        let device: Uuid = row.get("device_id")?;
        let expires_at: DateTime<Utc> = row.get("expires_at")?;
        let replaced_at: Option<DateTime<Utc>> = row.get("replaced_at")?;
        let revoked_at: Option<DateTime<Utc>> = row.get("revoked_at")?;
        let role: Option<String> = row.get("role")?;
        if revoked_at.is_some() || expires_at <= now || role.is_none() {
            return Err(invalid());
        }
        if let Some(replaced_at) = replaced_at {
            if replaced_at + REFRESH_GRACE < now {
                // A spent token presented long after: someone kept a copy. End the session.
                end_session(&mut tx, organization, user, device, now).await?;
                tx.commit().await?;
                self.auth_cache().clear();
                return Err(Failure::new(
                    FailureKind::Unauthenticated,
                    "REFRESH_TOKEN_REUSED",
                    "this refresh token was already used, so the device was signed out: sign in again",
                )
                .into());
            }
            // Within the grace: the earlier answer was lost. Whatever it issued is spent.
            tx.execute(
                "UPDATE refresh_tokens SET replaced_at = $1 WHERE organization_id = $2 \
                 AND user_id = $3 AND device_id = $4 AND replaced_at IS NULL",
                args![now, organization, user, device],
            )
            .await?;
        } else {
            tx.execute(
                "UPDATE refresh_tokens SET replaced_at = $1 WHERE token_hash = $2",
                args![now, hash_token(refresh_token)],
            )
            .await?;
        }
        tx.execute(
            "UPDATE devices SET last_seen_at = $1 WHERE organization_id = $2 AND user_id = $3 AND id = $4",
            args![now, organization, user, device],
        )
        .await?;
        prune(&mut tx, user, device, now).await?;
        let label = format!("device: {}", row.get::<String>("name")?);
        let session = issue(
            &mut tx,
            UserId::from_uuid(user),
            OrganizationId::from_uuid(organization),
            device,
            &label,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(session)
    }

    /// `auth/v1/logout`: ends the session of the device the access token belongs to, or revokes
    /// the token when it is not a device's.
    pub async fn logout(&self, access_token: &str) -> Result<(), StoreError> {
        let now = self.now();
        let mut tx = self.shared(true).await?;
        let row = tx
            .fetch_optional(
                "SELECT user_id, organization_id, device_id FROM api_tokens WHERE token_hash = $1",
                args![hash_token(access_token)],
            )
            .await?;
        if let Some(row) = row {
            let user: Uuid = row.get("user_id")?;
            match (
                row.get::<Option<Uuid>>("organization_id")?,
                row.get::<Option<Uuid>>("device_id")?,
            ) {
                (Some(organization), Some(device)) => {
                    end_session(&mut tx, organization, user, device, now).await?;
                }
                _ => {
                    tx.execute(
                        "UPDATE api_tokens SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL",
                        args![now, hash_token(access_token)],
                    )
                    .await?;
                }
            }
        }
        tx.commit().await?;
        self.auth_cache().clear();
        Ok(())
    }

    /// `auth/v1/acceptInvite`: sets the invited user's password. Presenting an accepted code
    /// again with the same password answers the same; with another, it is refused.
    ///
    /// A password belongs to the person, across every organization, while a code is held by
    /// the admin of the organization that issued it. So a code sets the password only of
    /// someone who has none yet and belonged to no other organization when it was issued:
    /// otherwise one organization's admin could take over an account another organization
    /// uses. (Someone invited by A and then by B sets it with A's code.)
    pub async fn accept_invite(
        &self,
        code: &str,
        password: Password,
    ) -> Result<UserId, StoreError> {
        let now = self.now();
        let invalid = || -> StoreError {
            Failure::new(
                FailureKind::Unauthenticated,
                "INVITE_INVALID",
                "the invitation code is unknown, expired or already used",
            )
            .into()
        };
        let mut tx = self.shared(false).await?;
        let row = tx
            .fetch_optional(
                "SELECT i.user_id, i.expires_at, i.accepted_at, u.password_hash, \
                 EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = i.user_id \
                 AND m.organization_id <> i.organization_id AND m.created_at < i.created_at) \
                 AS elsewhere \
                 FROM user_invites i JOIN users u ON u.id = i.user_id WHERE i.code_hash = $1",
                args![hash_token(code)],
            )
            .await?;
        tx.commit().await?;
        let Some(row) = row else {
            return Err(invalid());
        };
        let user_id = UserId::from_uuid(row.get("user_id")?);
        let expires_at: DateTime<Utc> = row.get("expires_at")?;
        if row.get::<Option<DateTime<Utc>>>("accepted_at")?.is_some() {
            // A retry after a lost response: the same password is the same answer.
            let stored: Option<String> = row.get("password_hash")?;
            return if verify_password(password, stored).await? {
                Ok(user_id)
            } else {
                Err(invalid())
            };
        }
        if expires_at <= now {
            return Err(invalid());
        }
        if row.get::<Option<String>>("password_hash")?.is_some() {
            return Err(Failure::new(
                FailureKind::Unauthenticated,
                "INVITE_INVALID",
                "this person has a password already: they sign in with it",
            )
            .into());
        }
        if row.get::<bool>("elsewhere")? {
            return Err(Failure::new(
                FailureKind::Unauthenticated,
                "INVITE_INVALID",
                "this person belonged to another organization before this invitation: they set \
                 their password with that organization's invitation, then sign in here with it",
            )
            .into());
        }
        let hash = hash_password(password).await?;
        let mut tx = self.shared(true).await?;
        // Only one acceptance wins a race: the row is claimed by the update that sets it.
        let claimed = tx
            .execute(
                "UPDATE user_invites SET accepted_at = $1 WHERE code_hash = $2 AND accepted_at IS NULL",
                args![now, hash_token(code)],
            )
            .await?;
        if claimed == 0 {
            return Err(invalid());
        }
        // Set only if still unset: two codes racing set it once.
        let set = tx
            .execute(
                "UPDATE users SET password_hash = $1, password_set_at = $2 WHERE id = $3 \
                 AND password_hash IS NULL",
                args![hash, now, user_id.as_uuid()],
            )
            .await?;
        if set == 0 {
            return Err(invalid());
        }
        tx.commit().await?;
        Ok(user_id)
    }
}

/// Issues an invitation for `user` in the transaction's organization (the caller commits).
pub(crate) async fn create_invite(tx: &mut TenantTx, user: UserId) -> Result<Invite, StoreError> {
    let code = random_token()?.replacen("hst_", "hsi_", 1);
    let expires_at = insert_invite(tx, user, &hash_token(&code)).await?;
    Ok(Invite { code, expires_at })
}

/// Records an invitation whose code the caller drew (only its SHA-256 is given); returns when it
/// expires.
pub(crate) async fn insert_invite(
    tx: &mut TenantTx,
    user: UserId,
    code_hash: &str,
) -> Result<DateTime<Utc>, StoreError> {
    let now = tx.now();
    let expires_at = now + INVITE_TTL;
    let org = tx.org();
    tx.execute(
        "INSERT INTO user_invites (id, organization_id, user_id, code_hash, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        args![new_id(), org, user.as_uuid(), code_hash, now, expires_at],
    )
    .await?;
    Ok(expires_at)
}

/// The devices `user` signed in on, in the transaction's organization, most recent first.
pub(crate) async fn devices_of(tx: &mut TenantTx, user: UserId) -> Result<Vec<Device>, StoreError> {
    let org = tx.org();
    tx.fetch_all(
        "SELECT id, name, created_at, last_seen_at, revoked_at FROM devices \
         WHERE organization_id = $1 AND user_id = $2 ORDER BY last_seen_at DESC, id",
        args![org, user.as_uuid()],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(Device {
            device_id: r.get("id")?,
            name: r.get("name")?,
            created_at: r.get("created_at")?,
            last_seen_at: r.get("last_seen_at")?,
            revoked_at: r.get("revoked_at")?,
        })
    })
    .collect()
}

/// Ends the session of `user`'s device in the transaction's organization: `404` when there is no
/// such device. Revoking a revoked device changes nothing.
pub(crate) async fn revoke_device(
    tx: &mut TenantTx,
    user: UserId,
    device_id: Uuid,
) -> Result<Device, StoreError> {
    let now = tx.now();
    let org = tx.org();
    let exists = tx
        .fetch_optional(
            "SELECT id FROM devices WHERE organization_id = $1 AND user_id = $2 AND id = $3",
            args![org, user.as_uuid(), device_id],
        )
        .await?;
    if exists.is_none() {
        return Err(Failure::not_found("device").into());
    }
    end_session(tx.inner(), org, user.as_uuid(), device_id, now).await?;
    devices_of(tx, user)
        .await?
        .into_iter()
        .find(|d| d.device_id == device_id)
        .ok_or_else(|| Failure::not_found("device").into())
}
