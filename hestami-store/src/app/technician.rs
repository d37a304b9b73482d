//! Technicians (`technician/v1`, workflow `technician_v1`).

use serde::{Deserialize, Serialize};

use hestami_core::ids::TechnicianId;
use hestami_core::text::{Email, Name, Phone, TradeCode};
use hestami_core::workforce::{Technician, normalize_trades};

use super::{Caller, Command, Page, PageRequest, Patch, Services, check_version};
use crate::db::{Row, args};
use crate::directory::parse_stored;
use crate::engine::WorkflowCtx;
use crate::error::{Failure, FailureKind, StoreError};
use crate::store::{Operation, TenantTx, new_id};

/// The workflow behind every technician change.
pub const WORKFLOW: &str = "technician_v1";

/// A new technician.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewTechnician {
    /// Display name.
    pub name: Name,
    /// Contact address; unique within the organization.
    pub email: Option<Email>,
    /// Contact number.
    pub phone: Option<Phone>,
    /// Trades held.
    pub trades: Vec<TradeCode>,
}

/// Changes to a technician.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TechnicianUpdate {
    /// Which technician.
    pub technician_id: TechnicianId,
    /// Fail with `VERSION_CONFLICT` unless the technician is at this version.
    pub expected_version: Option<i64>,
    /// A new name.
    pub name: Option<Name>,
    /// A new, or no, e-mail address.
    pub email: Patch<Email>,
    /// A new, or no, phone number.
    pub phone: Patch<Phone>,
    /// The new set of trades.
    pub trades: Option<Vec<TradeCode>>,
}

/// The technician namespace's mutating procedures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "procedure", content = "input")]
pub enum TechnicianCommand {
    /// `technician/v1/create`.
    #[serde(rename = "technician/v1/create")]
    Create(NewTechnician),
    /// `technician/v1/update`.
    #[serde(rename = "technician/v1/update")]
    Update(TechnicianUpdate),
    /// `technician/v1/deactivate`.
    #[serde(rename = "technician/v1/deactivate")]
    Deactivate {
        /// Which technician.
        technician_id: TechnicianId,
        /// Fail with `VERSION_CONFLICT` unless the technician is at this version.
        expected_version: Option<i64>,
    },
}

impl Command for TechnicianCommand {
    const WORKFLOW: &'static str = WORKFLOW;
    fn procedure(&self) -> &'static str {
        match self {
            Self::Create(_) => "technician/v1/create",
            Self::Update(_) => "technician/v1/update",
            Self::Deactivate { .. } => "technician/v1/deactivate",
        }
    }
}

/// `technician/v1/linkUser`: the user who signs in as the technician (or none).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "procedure", content = "input")]
pub enum LinkCommand {
    /// `technician/v1/linkUser`.
    #[serde(rename = "technician/v1/linkUser")]
    LinkUser {
        /// Which technician.
        technician_id: TechnicianId,
        /// The user (a member of the organization), or `None` to unlink.
        user_id: Option<hestami_core::ids::UserId>,
    },
    /// `technician/v1/invite`.
    #[serde(rename = "technician/v1/invite")]
    Invite {
        /// Which technician.
        technician_id: TechnicianId,
        /// The person's e-mail address: their user is created if new, made a member with the
        /// `technician` role unless they are a member already, and linked to the technician.
        email: hestami_core::text::Email,
    },
    /// `technician/v1/revokeDevice`.
    #[serde(rename = "technician/v1/revokeDevice")]
    RevokeDevice {
        /// Which technician.
        technician_id: TechnicianId,
        /// The device of the technician's user.
        device_id: uuid::Uuid,
    },
}

impl Command for LinkCommand {
    const WORKFLOW: &'static str = WORKFLOW;
    fn procedure(&self) -> &'static str {
        match self {
            Self::LinkUser { .. } => "technician/v1/linkUser",
            Self::Invite { .. } => "technician/v1/invite",
            Self::RevokeDevice { .. } => "technician/v1/revokeDevice",
        }
    }
}

/// An invitation for the user linked to a technician.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TechnicianInvite {
    /// The technician.
    pub technician_id: TechnicianId,
    /// The user linked to them.
    pub user_id: hestami_core::ids::UserId,
    /// The technician's version after the change.
    pub version: i64,
    /// The code and when it expires.
    pub invite: crate::sessions::Invite,
}

/// A technician and the user linked to them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TechnicianLink {
    /// The technician.
    pub technician_id: TechnicianId,
    /// The user who signs in as them, if any.
    pub user_id: Option<hestami_core::ids::UserId>,
    /// The technician's version after the change.
    pub version: i64,
}

/// What the `technician_v1` workflow is given: a change of the record, of the work profile, or
/// of the linked user.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum TechnicianInput {
    Record(TechnicianCommand),
    Workforce(super::workforce::WorkforceCommand),
    Link(LinkCommand),
    Field(super::field::FieldCommand),
    Time(super::time::TimeCommand),
}

pub(crate) async fn run_any(
    ctx: WorkflowCtx,
    input: TechnicianInput,
) -> Result<serde_json::Value, StoreError> {
    Ok(match input {
        TechnicianInput::Record(command) => serde_json::to_value(run(ctx, command).await?)?,
        TechnicianInput::Workforce(command) => {
            serde_json::to_value(super::workforce::run(ctx, command).await?)?
        }
        TechnicianInput::Field(command) => {
            serde_json::to_value(super::field::run(ctx, command).await?)?
        }
        TechnicianInput::Time(command) => super::time::run(ctx, command).await?,
        TechnicianInput::Link(LinkCommand::LinkUser {
            technician_id,
            user_id,
        }) => {
            let mut ctx = ctx;
            serde_json::to_value(
                ctx.step("link_user", move |tx| {
                    Box::pin(link_user(tx, technician_id, user_id))
                })
                .await?,
            )?
        }
        TechnicianInput::Link(LinkCommand::Invite {
            technician_id,
            email,
        }) => {
            let mut ctx = ctx;
            serde_json::to_value(
                ctx.step("invite", move |tx| {
                    Box::pin(invite(tx, technician_id, email))
                })
                .await?,
            )?
        }
        TechnicianInput::Link(LinkCommand::RevokeDevice {
            technician_id,
            device_id,
        }) => {
            let mut ctx = ctx;
            serde_json::to_value(
                ctx.step("revoke_device", move |tx| {
                    Box::pin(async move {
                        let user = linked_user(tx, technician_id).await?;
                        let device = crate::sessions::revoke_device(tx, user, device_id).await?;
                        crate::directory::auth_cache().clear();
                        Ok(device)
                    })
                })
                .await?,
            )?
        }
    })
}

/// The user linked to a technician; `404 device` when there is none (so none of its devices
/// exists either).
async fn linked_user(
    tx: &mut TenantTx,
    technician_id: TechnicianId,
) -> Result<hestami_core::ids::UserId, StoreError> {
    let org = tx.org();
    load(tx, technician_id, false).await?;
    let row = tx
        .fetch_one(
            "SELECT user_id FROM technicians WHERE organization_id = $1 AND id = $2",
            args![org, technician_id.as_uuid()],
        )
        .await?;
    row.get::<Option<uuid::Uuid>>("user_id")?
        .map(hestami_core::ids::UserId::from_uuid)
        .ok_or_else(|| Failure::not_found("device").into())
}

/// The devices of the user linked to a technician (none when no user is linked).
pub(crate) async fn devices(
    tx: &mut TenantTx,
    technician_id: TechnicianId,
) -> Result<Vec<crate::sessions::Device>, StoreError> {
    match linked_user(tx, technician_id).await {
        Ok(user) => crate::sessions::devices_of(tx, user).await,
        Err(StoreError::Failure(f)) if f.kind == FailureKind::NotFound => {
            // The technician exists (`load` passed) but has no user: no devices.
            load(tx, technician_id, false).await?;
            Ok(Vec::new())
        }
        Err(e) => Err(e),
    }
}

/// Invites the person with `email` to sign in as the technician: their user (created if new),
/// a membership with the `technician` role unless they hold one already, the link, and an
/// invitation code.
async fn invite(
    tx: &mut TenantTx,
    technician_id: TechnicianId,
    email: hestami_core::text::Email,
) -> Result<TechnicianInvite, StoreError> {
    let org = tx.org();
    let technician = load(tx, technician_id, true).await?;
    if !technician.active {
        return Err(Failure::new(
            FailureKind::Conflict,
            "TECHNICIAN_INACTIVE",
            "the technician is deactivated; reactivate them before inviting",
        )
        .into());
    }
    let now = tx.now();
    let user = crate::directory::upsert_user(tx, &email, now).await?;
    tx.execute(
        "INSERT INTO memberships (organization_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (organization_id, user_id) DO NOTHING",
        args![
            org,
            user.as_uuid(),
            hestami_core::org::Role::Technician.as_str(),
            now
        ],
    )
    .await?;
    let link = link_user(tx, technician_id, Some(user)).await?;
    let invite = crate::sessions::create_invite(tx, user).await?;
    crate::directory::auth_cache().clear();
    Ok(TechnicianInvite {
        technician_id,
        user_id: user,
        version: link.version,
        invite,
    })
}

/// Links `user` (a member of the organization) to the technician, or unlinks it.
async fn link_user(
    tx: &mut TenantTx,
    technician_id: TechnicianId,
    user: Option<hestami_core::ids::UserId>,
) -> Result<TechnicianLink, StoreError> {
    let org = tx.org();
    load(tx, technician_id, true).await?;
    if let Some(user) = user {
        let member = tx
            .fetch_optional(
                "SELECT role FROM memberships WHERE organization_id = $1 AND user_id = $2",
                args![org, user.as_uuid()],
            )
            .await?;
        if member.is_none() {
            return Err(Failure::not_found("user").into());
        }
        let other = tx
            .fetch_optional(
                "SELECT id FROM technicians WHERE organization_id = $1 AND user_id = $2 AND id <> $3",
                args![org, user.as_uuid(), technician_id.as_uuid()],
            )
            .await?;
        if let Some(row) = other {
            return Err(Failure::new(
                FailureKind::Conflict,
                "USER_ALREADY_LINKED",
                "this user is linked to another technician; unlink it first",
            )
            .with_details(serde_json::json!({ "technicianId": row.get::<uuid::Uuid>("id")? }))
            .into());
        }
    }
    let now = tx.now();
    let row = tx
        .fetch_one(
            "UPDATE technicians SET user_id = $1, version = version + 1, updated_at = $2 \
             WHERE organization_id = $3 AND id = $4 RETURNING version",
            args![user.map(|u| u.as_uuid()), now, org, technician_id.as_uuid()],
        )
        .await?;
    let version: i64 = row.get("version")?;
    tx.record_change(
        "technician",
        technician_id.as_uuid(),
        version,
        crate::store::Operation::Updated,
    )
    .await?;
    Ok(TechnicianLink {
        technician_id,
        user_id: user,
        version,
    })
}

/// The technician linked to `user`, if any (what a member with the technician role may see).
pub(crate) async fn linked_to(
    tx: &mut TenantTx,
    user: hestami_core::ids::UserId,
) -> Result<Option<TechnicianId>, StoreError> {
    let org = tx.org();
    let row = tx
        .fetch_optional(
            "SELECT id FROM technicians WHERE organization_id = $1 AND user_id = $2 AND active",
            args![org, user.as_uuid()],
        )
        .await?;
    row.map(|r| r.get::<uuid::Uuid>("id").map(TechnicianId::from_uuid))
        .transpose()
}

pub(crate) async fn run(
    mut ctx: WorkflowCtx,
    command: TechnicianCommand,
) -> Result<Technician, StoreError> {
    match command {
        TechnicianCommand::Create(new) => {
            ctx.step("insert_technician", move |tx| Box::pin(insert(tx, new)))
                .await
        }
        TechnicianCommand::Update(update) => {
            ctx.step("update_technician", move |tx| {
                Box::pin(async move {
                    let current = load(tx, update.technician_id, true).await?;
                    check_version("technician", update.expected_version, current.version)?;
                    if let Some(trades) = &update.trades {
                        super::trades::ensure_known(tx, super::trades::each("trades", trades))
                            .await?;
                    }
                    let next = Technician {
                        name: update.name.unwrap_or(current.name.clone()),
                        email: update.email.apply(current.email.clone()),
                        phone: update.phone.apply(current.phone.clone()),
                        trades: update
                            .trades
                            .map(normalize_trades)
                            .unwrap_or(current.trades.clone()),
                        ..current
                    };
                    save(tx, next).await
                })
            })
            .await
        }
        TechnicianCommand::Deactivate {
            technician_id,
            expected_version,
        } => {
            ctx.step("deactivate_technician", move |tx| {
                Box::pin(async move {
                    let current = load(tx, technician_id, true).await?;
                    check_version("technician", expected_version, current.version)?;
                    save(
                        tx,
                        Technician {
                            active: false,
                            ..current
                        },
                    )
                    .await
                })
            })
            .await
        }
    }
}

fn email_taken(error: StoreError) -> StoreError {
    if error.is_unique_violation() {
        Failure::new(
            FailureKind::Conflict,
            "TECHNICIAN_EMAIL_TAKEN",
            "another technician of this organization has this e-mail address",
        )
        .into()
    } else {
        error
    }
}

async fn insert(tx: &mut TenantTx, new: NewTechnician) -> Result<Technician, StoreError> {
    super::trades::ensure_known(tx, super::trades::each("trades", &new.trades)).await?;
    let now = tx.now();
    let tech = Technician {
        id: TechnicianId::from_uuid(new_id()),
        version: 1,
        name: new.name,
        email: new.email,
        phone: new.phone,
        trades: normalize_trades(new.trades),
        active: true,
        created_at: now,
        updated_at: now,
    };
    tx.execute(
        "INSERT INTO technicians (organization_id, id, version, name, email, phone, trades, active, created_at, updated_at) \
         VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $8, $8)",
        args![
            tx.org(),
            tech.id.as_uuid(),
            tech.name.as_str(),
            tech.email.as_ref().map(Email::as_str),
            tech.phone.as_ref().map(Phone::as_str),
            serde_json::to_string(&tech.trades)?,
            true,
            now
        ],
    )
    .await
    .map_err(email_taken)?;
    tx.record_change("technician", tech.id.as_uuid(), 1, Operation::Created)
        .await?;
    Ok(tech)
}

/// Writes `tech` as the next version of itself.
async fn save(tx: &mut TenantTx, tech: Technician) -> Result<Technician, StoreError> {
    let next = Technician {
        version: tech.version + 1,
        updated_at: tx.now(),
        ..tech
    };
    tx.execute(
        "UPDATE technicians SET version = $1, name = $2, email = $3, phone = $4, trades = $5, active = $6, \
         updated_at = $7 WHERE organization_id = $8 AND id = $9",
        args![
            next.version,
            next.name.as_str(),
            next.email.as_ref().map(Email::as_str),
            next.phone.as_ref().map(Phone::as_str),
            serde_json::to_string(&next.trades)?,
            next.active,
            next.updated_at,
            tx.org(),
            next.id.as_uuid()
        ],
    )
    .await
    .map_err(email_taken)?;
    tx.record_change(
        "technician",
        next.id.as_uuid(),
        next.version,
        Operation::Updated,
    )
    .await?;
    Ok(next)
}

pub(crate) const COLUMNS: &str =
    "id, version, name, email, phone, trades, active, created_at, updated_at";

/// Loads a technician of the transaction's organization; `404` otherwise.
pub(crate) async fn load(
    tx: &mut TenantTx,
    id: TechnicianId,
    lock: bool,
) -> Result<Technician, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM technicians WHERE organization_id = $1 AND id = $2{}",
        if lock { tx.for_update() } else { "" }
    );
    let org = tx.org();
    let row = tx.fetch_optional(&sql, args![org, id.as_uuid()]).await?;
    row.map(|r| decode(&r))
        .transpose()?
        .ok_or_else(|| Failure::not_found("technician").into())
}

pub(crate) fn decode(row: &Row) -> Result<Technician, StoreError> {
    Ok(Technician {
        id: TechnicianId::from_uuid(row.get("id")?),
        version: row.get("version")?,
        name: parse_stored(&row.get::<String>("name")?, Name::parse)?,
        email: row
            .get::<Option<String>>("email")?
            .map(|e| parse_stored(&e, Email::parse))
            .transpose()?,
        phone: row
            .get::<Option<String>>("phone")?
            .map(|p| parse_stored(&p, Phone::parse))
            .transpose()?,
        trades: serde_json::from_str(&row.get::<String>("trades")?)?,
        active: row.get("active")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

impl Services {
    /// `technician/v1/devices`: where the technician's user signed in.
    pub async fn technician_devices(
        &self,
        caller: &Caller,
        id: TechnicianId,
    ) -> Result<Vec<crate::sessions::Device>, StoreError> {
        self.read(caller, move |tx| Box::pin(devices(tx, id))).await
    }

    /// `technician/v1/get`.
    pub async fn technician_get(
        &self,
        caller: &Caller,
        id: TechnicianId,
    ) -> Result<Technician, StoreError> {
        self.read(caller, move |tx| Box::pin(load(tx, id, false)))
            .await
    }

    /// `technician/v1/list`: by id, optionally only active ones or those holding `trade`.
    pub async fn technician_list(
        &self,
        caller: &Caller,
        page: PageRequest,
        active: Option<bool>,
        trade: Option<TradeCode>,
    ) -> Result<Page<Technician>, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let org = tx.org();
                // Trades are a JSON array of codes, and codes cannot contain quotes, so a
                // substring match on the quoted code is exact once `_` (a LIKE wildcard, and a
                // character codes may hold) is escaped.
                let trade_pattern =
                    trade.map(|t| format!("%\"{}\"%", t.as_str().replace('_', "\\_")));
                let rows = tx
                    .fetch_all(
                        &format!(
                            "SELECT {COLUMNS} FROM technicians WHERE organization_id = $1 \
                             AND ($2 IS NULL OR id > $2) AND ($3 IS NULL OR active = $3) \
                             AND ($4 IS NULL OR trades LIKE $4 ESCAPE '\\') ORDER BY id LIMIT $5"
                        ),
                        args![
                            org,
                            page.after,
                            active,
                            trade_pattern,
                            i64::from(page.limit) + 1
                        ],
                    )
                    .await?;
                let items = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
                Ok(page.page(items, |t| t.id.as_uuid()))
            })
        })
        .await
    }
}
