//! HOA work orders and vendor links (`workOrder/v1`, workflow `work_order_v1`).
//!
//! An association (an organization of kind `hoa`) keeps its community's properties and its
//! vendor requirements in tenant tables of its own. It invites a contractor organization to be
//! an approved vendor: the invitation is a row of `vendor_links`, a *link table* naming both
//! organizations and visible to exactly those two (PostgreSQL's `link_parties` policy; on
//! SQLite every statement here names both). The contractor answers the invitation over the same
//! row. Neither side ever reads the other's tenant rows: an invitation names the contractor by
//! its organization id, which the contractor gave the association, and a wrong id is refused by
//! the foreign key, not by reading the contractor's organization.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use hestami_core::customer::Address;
use hestami_core::ids::{HoaPropertyId, OrganizationId, VendorLinkId};
use hestami_core::org::OrgKind;
use hestami_core::text::Name;
use hestami_core::workorder::{HoaPropertyKind, LinkStatus, VendorRequirements};

use super::{Caller, Command, Services, check_version};
use crate::db::{Row, args};
use crate::directory::{load_organization, parse_stored};
use crate::engine::WorkflowCtx;
use crate::error::{Failure, FailureKind, StoreError};
use crate::store::{Operation, TenantTx, new_id};

/// The workflow every `workOrder/v1` mutation runs in.
pub const WORKFLOW: &str = "work_order_v1";

/// `workOrder/v1/addProperty`: a unit or common area of the association's community.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewHoaProperty {
    /// Its name in the community (`Unit 12B`, `Pool house`), unique in the association.
    pub name: Name,
    /// A unit or a common area.
    pub kind: HoaPropertyKind,
    /// Where it is.
    pub address: Address,
}

/// A property of the association's community.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HoaProperty {
    /// Its id.
    pub id: HoaPropertyId,
    /// 1 on creation.
    pub version: i64,
    /// Its name in the community.
    pub name: Name,
    /// A unit or a common area.
    pub kind: HoaPropertyKind,
    /// Where it is.
    pub address: Address,
    /// When it was added.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// The association's vendor requirements in force, and their version (0: none set).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VendorRequirementsDoc {
    /// 0 before any are set, then +1 per change.
    pub version: i64,
    /// The rules.
    pub requirements: VendorRequirements,
}

/// A link between an association and a contractor, as both see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VendorLink {
    /// Its id.
    pub id: VendorLinkId,
    /// The association.
    pub hoa_organization_id: OrganizationId,
    /// The contractor.
    pub contractor_organization_id: OrganizationId,
    /// 1 on the first invitation, +1 on each change.
    pub version: i64,
    /// Where it stands.
    pub status: LinkStatus,
    /// When the association last invited.
    pub invited_at: DateTime<Utc>,
    /// When the contractor last answered, if it has.
    pub answered_at: Option<DateTime<Utc>>,
    /// When it was first made.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// What a link row's body holds (the rest are columns).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LinkBody {
    invited_at: DateTime<Utc>,
    answered_at: Option<DateTime<Utc>>,
}

/// The `workOrder/v1` mutations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "procedure", content = "input")]
pub enum WorkOrderCommand {
    /// `workOrder/v1/addProperty` (an association).
    #[serde(rename = "workOrder/v1/addProperty")]
    AddProperty(NewHoaProperty),
    /// `workOrder/v1/setVendorRequirements` (an association).
    #[serde(rename = "workOrder/v1/setVendorRequirements")]
    SetVendorRequirements {
        /// The new rules (they replace the current ones).
        requirements: VendorRequirements,
        /// Fail with `VERSION_CONFLICT` unless the rules are at this version.
        expected_version: Option<i64>,
    },
    /// `workOrder/v1/inviteVendor` (an association): invites a contractor organization to be
    /// an approved vendor, or invites it again after it declined or the link ended.
    #[serde(rename = "workOrder/v1/inviteVendor")]
    InviteVendor {
        /// The contractor's organization id.
        contractor_organization_id: OrganizationId,
    },
    /// `workOrder/v1/answerInvitation` (a contractor): accepts or declines an invitation.
    #[serde(rename = "workOrder/v1/answerInvitation")]
    AnswerInvitation {
        /// The link.
        link_id: VendorLinkId,
        /// Accept (an approved vendor from now on) or decline.
        accept: bool,
        /// Fail with `VERSION_CONFLICT` unless the link is at this version.
        expected_version: Option<i64>,
    },
}

impl Command for WorkOrderCommand {
    const WORKFLOW: &'static str = WORKFLOW;
    fn procedure(&self) -> &'static str {
        match self {
            Self::AddProperty(_) => "workOrder/v1/addProperty",
            Self::SetVendorRequirements { .. } => "workOrder/v1/setVendorRequirements",
            Self::InviteVendor { .. } => "workOrder/v1/inviteVendor",
            Self::AnswerInvitation { .. } => "workOrder/v1/answerInvitation",
        }
    }
}

pub(crate) async fn run(
    mut ctx: WorkflowCtx,
    command: WorkOrderCommand,
) -> Result<serde_json::Value, StoreError> {
    use WorkOrderCommand as C;
    Ok(match command {
        C::AddProperty(p) => serde_json::to_value(
            ctx.step("add_property", move |tx| Box::pin(add_property(tx, p)))
                .await?,
        )?,
        C::SetVendorRequirements {
            requirements,
            expected_version,
        } => serde_json::to_value(
            ctx.step("set_vendor_requirements", move |tx| {
                Box::pin(set_requirements(tx, requirements, expected_version))
            })
            .await?,
        )?,
        C::InviteVendor {
            contractor_organization_id,
        } => serde_json::to_value(
            ctx.step("invite_vendor", move |tx| {
                Box::pin(invite(tx, contractor_organization_id))
            })
            .await?,
        )?,
        C::AnswerInvitation {
            link_id,
            accept,
            expected_version,
        } => serde_json::to_value(
            ctx.step("answer_invitation", move |tx| {
                Box::pin(answer(tx, link_id, accept, expected_version))
            })
            .await?,
        )?,
    })
}

/// Refuses unless the transaction's organization is of `kind`: an association's procedures
/// are not a contractor's, and the other way round.
async fn require_kind(tx: &mut TenantTx, kind: OrgKind) -> Result<(), StoreError> {
    let org = load_organization(tx, false).await?;
    if org.kind == kind {
        return Ok(());
    }
    let (code, message) = match kind {
        OrgKind::Hoa => (
            "NOT_AN_ASSOCIATION",
            "only a community association (an organization of kind hoa) does this",
        ),
        OrgKind::Contractor => (
            "NOT_A_CONTRACTOR",
            "only a contractor organization does this",
        ),
    };
    Err(Failure::new(FailureKind::RuleViolation, code, message).into())
}

async fn add_property(tx: &mut TenantTx, p: NewHoaProperty) -> Result<HoaProperty, StoreError> {
    require_kind(tx, OrgKind::Hoa).await?;
    let now = tx.now();
    let property = HoaProperty {
        id: HoaPropertyId::from_uuid(new_id()),
        version: 1,
        name: p.name,
        kind: p.kind,
        address: p.address,
        created_at: now,
        updated_at: now,
    };
    let inserted = tx
        .execute(
            "INSERT INTO hoa_properties (organization_id, id, version, name, kind, body, created_at, \
             updated_at) VALUES ($1, $2, 1, $3, $4, $5, $6, $6)",
            args![
                tx.org(),
                property.id.as_uuid(),
                property.name.as_str(),
                property.kind.as_str(),
                serde_json::to_string(&property.address)?,
                now
            ],
        )
        .await;
    match inserted {
        Err(e) if e.is_unique_violation() => {
            return Err(Failure::new(
                FailureKind::Conflict,
                "PROPERTY_EXISTS",
                format!(
                    "the community already has a property named {}",
                    property.name
                ),
            )
            .into());
        }
        other => other?,
    };
    tx.record_change("hoa_property", property.id.as_uuid(), 1, Operation::Created)
        .await?;
    Ok(property)
}

const PROPERTY_COLUMNS: &str = "id, version, name, kind, body, created_at, updated_at";

fn decode_property(row: &Row) -> Result<HoaProperty, StoreError> {
    Ok(HoaProperty {
        id: HoaPropertyId::from_uuid(row.get("id")?),
        version: row.get("version")?,
        name: parse_stored(&row.get::<String>("name")?, Name::parse)?,
        kind: {
            let kind = row.get::<String>("kind")?;
            HoaPropertyKind::parse(&kind)
                .ok_or_else(|| StoreError::Internal(format!("stored property kind {kind}")))?
        },
        address: serde_json::from_str(&row.get::<String>("body")?)?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

async fn load_requirements(
    tx: &mut TenantTx,
    lock: bool,
) -> Result<VendorRequirementsDoc, StoreError> {
    let sql = format!(
        "SELECT version, body FROM vendor_requirements WHERE organization_id = $1{}",
        if lock { tx.for_update() } else { "" }
    );
    let org = tx.org();
    Ok(match tx.fetch_optional(&sql, args![org]).await? {
        None => VendorRequirementsDoc {
            version: 0,
            requirements: VendorRequirements::default(),
        },
        Some(row) => VendorRequirementsDoc {
            version: row.get("version")?,
            requirements: serde_json::from_str(&row.get::<String>("body")?)?,
        },
    })
}

async fn set_requirements(
    tx: &mut TenantTx,
    requirements: VendorRequirements,
    expected_version: Option<i64>,
) -> Result<VendorRequirementsDoc, StoreError> {
    require_kind(tx, OrgKind::Hoa).await?;
    if let Err(problems) = requirements.validate() {
        return Err(Failure::validation(
            problems
                .into_iter()
                .map(|p| crate::error::FieldError {
                    field: format!("requirements.{}", p.field),
                    code: p.code.into(),
                    message: p.message,
                })
                .collect(),
        )
        .into());
    }
    let current = load_requirements(tx, true).await?;
    check_version("vendor requirements", expected_version, current.version)?;
    let next = VendorRequirementsDoc {
        version: current.version + 1,
        requirements,
    };
    tx.execute(
        "INSERT INTO vendor_requirements (organization_id, version, body, updated_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (organization_id) DO UPDATE SET \
         version = excluded.version, body = excluded.body, updated_at = excluded.updated_at",
        args![
            tx.org(),
            next.version,
            serde_json::to_string(&next.requirements)?,
            tx.now()
        ],
    )
    .await?;
    tx.record_change(
        "vendor_requirements",
        tx.org(),
        next.version,
        Operation::Updated,
    )
    .await?;
    Ok(next)
}

const LINK_COLUMNS: &str = "id, hoa_organization_id, contractor_organization_id, version, \
                            status, body, created_at, updated_at";

/// The condition that confines a statement on `vendor_links` to the links of `$1`: what the
/// PostgreSQL policy enforces, and all SQLite has.
const LINKS_OF_ORG: &str = "(hoa_organization_id = $1 OR contractor_organization_id = $1)";

fn decode_link(row: &Row) -> Result<VendorLink, StoreError> {
    let body: LinkBody = serde_json::from_str(&row.get::<String>("body")?)?;
    let status = row.get::<String>("status")?;
    Ok(VendorLink {
        id: VendorLinkId::from_uuid(row.get("id")?),
        hoa_organization_id: OrganizationId::from_uuid(row.get("hoa_organization_id")?),
        contractor_organization_id: OrganizationId::from_uuid(
            row.get("contractor_organization_id")?,
        ),
        version: row.get("version")?,
        status: LinkStatus::parse(&status)
            .ok_or_else(|| StoreError::Internal(format!("stored link status {status}")))?,
        invited_at: body.invited_at,
        answered_at: body.answered_at,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

/// The link between association `hoa` and `contractor`, if this organization is one of them.
async fn link_with(
    tx: &mut TenantTx,
    hoa: OrganizationId,
    contractor: OrganizationId,
    lock: bool,
) -> Result<Option<VendorLink>, StoreError> {
    let sql = format!(
        "SELECT {LINK_COLUMNS} FROM vendor_links WHERE {LINKS_OF_ORG} \
         AND hoa_organization_id = $2 AND contractor_organization_id = $3{}",
        if lock { tx.for_update() } else { "" }
    );
    let org = tx.org();
    tx.fetch_optional(&sql, args![org, hoa.as_uuid(), contractor.as_uuid()])
        .await?
        .as_ref()
        .map(decode_link)
        .transpose()
}

/// A link of this organization's, by id (the other side's links are not found).
async fn load_link(
    tx: &mut TenantTx,
    id: VendorLinkId,
    lock: bool,
) -> Result<VendorLink, StoreError> {
    let sql = format!(
        "SELECT {LINK_COLUMNS} FROM vendor_links WHERE {LINKS_OF_ORG} AND id = $2{}",
        if lock { tx.for_update() } else { "" }
    );
    let org = tx.org();
    tx.fetch_optional(&sql, args![org, id.as_uuid()])
        .await?
        .as_ref()
        .map(decode_link)
        .transpose()?
        .ok_or_else(|| Failure::not_found("vendor link").into())
}

async fn save_link(tx: &mut TenantTx, link: &VendorLink) -> Result<(), StoreError> {
    let body = serde_json::to_string(&LinkBody {
        invited_at: link.invited_at,
        answered_at: link.answered_at,
    })?;
    let org = tx.org();
    tx.execute(
        &format!(
            "UPDATE vendor_links SET version = $3, status = $4, body = $5, updated_at = $6 \
             WHERE {LINKS_OF_ORG} AND id = $2"
        ),
        args![
            org,
            link.id.as_uuid(),
            link.version,
            link.status.as_str(),
            body,
            link.updated_at
        ],
    )
    .await?;
    Ok(())
}

async fn invite(tx: &mut TenantTx, contractor: OrganizationId) -> Result<VendorLink, StoreError> {
    require_kind(tx, OrgKind::Hoa).await?;
    let hoa = tx.organization_id();
    if contractor == hoa {
        return Err(Failure::invalid_field(
            "contractorOrganizationId",
            "is_self",
            "an association does not invite itself",
        )
        .into());
    }
    let now = tx.now();
    if let Some(mut link) = link_with(tx, hoa, contractor, true).await? {
        if link.status == LinkStatus::Invited {
            return Ok(link);
        }
        if !link.status.may_invite() {
            return Err(Failure::new(
                FailureKind::Conflict,
                "ALREADY_A_VENDOR",
                "the contractor is already an approved vendor of the association",
            )
            .into());
        }
        link.status = LinkStatus::Invited;
        link.version += 1;
        link.invited_at = now;
        link.answered_at = None;
        link.updated_at = now;
        save_link(tx, &link).await?;
        tx.record_change(
            "vendor_link",
            link.id.as_uuid(),
            link.version,
            Operation::Transitioned,
        )
        .await?;
        return Ok(link);
    }
    let link = VendorLink {
        id: VendorLinkId::from_uuid(new_id()),
        hoa_organization_id: hoa,
        contractor_organization_id: contractor,
        version: 1,
        status: LinkStatus::Invited,
        invited_at: now,
        answered_at: None,
        created_at: now,
        updated_at: now,
    };
    let inserted = tx
        .execute(
            "INSERT INTO vendor_links (id, hoa_organization_id, contractor_organization_id, version, \
             status, body, created_at, updated_at) VALUES ($2, $1, $3, 1, $4, $5, $6, $6)",
            args![
                hoa.as_uuid(),
                link.id.as_uuid(),
                contractor.as_uuid(),
                link.status.as_str(),
                serde_json::to_string(&LinkBody {
                    invited_at: now,
                    answered_at: None,
                })?,
                now
            ],
        )
        .await;
    match inserted {
        // The association cannot read another organization: an id that names none is refused
        // by the foreign key.
        Err(e) if e.is_foreign_key_violation() => {
            return Err(Failure::not_found("contractor organization").into());
        }
        other => other?,
    };
    tx.record_change("vendor_link", link.id.as_uuid(), 1, Operation::Created)
        .await?;
    Ok(link)
}

async fn answer(
    tx: &mut TenantTx,
    id: VendorLinkId,
    accept: bool,
    expected_version: Option<i64>,
) -> Result<VendorLink, StoreError> {
    require_kind(tx, OrgKind::Contractor).await?;
    let mut link = load_link(tx, id, true).await?;
    // Only the invited side answers.
    if link.contractor_organization_id != tx.organization_id() {
        return Err(Failure::not_found("vendor link").into());
    }
    check_version("vendor link", expected_version, link.version)?;
    let Some(next) = link.status.answered(accept) else {
        return Err(Failure::new(
            FailureKind::Conflict,
            "NOT_INVITED",
            format!(
                "the link is {}, not an open invitation",
                link.status.as_str()
            ),
        )
        .into());
    };
    let now = tx.now();
    link.status = next;
    link.version += 1;
    link.answered_at = Some(now);
    link.updated_at = now;
    save_link(tx, &link).await?;
    tx.record_change(
        "vendor_link",
        link.id.as_uuid(),
        link.version,
        Operation::Transitioned,
    )
    .await?;
    Ok(link)
}

impl Services {
    /// `workOrder/v1/properties`: the association's community properties, by name.
    pub async fn hoa_properties(&self, caller: &Caller) -> Result<Vec<HoaProperty>, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let org = tx.org();
                tx.fetch_all(
                    &format!(
                        "SELECT {PROPERTY_COLUMNS} FROM hoa_properties WHERE organization_id = $1 \
                         ORDER BY name"
                    ),
                    args![org],
                )
                .await?
                .iter()
                .map(decode_property)
                .collect()
            })
        })
        .await
    }

    /// `workOrder/v1/vendorRequirements`: the association's vendor requirements.
    pub async fn vendor_requirements(
        &self,
        caller: &Caller,
    ) -> Result<VendorRequirementsDoc, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move { load_requirements(tx, false).await })
        })
        .await
    }

    /// `workOrder/v1/links`: this organization's vendor links, on either side (an
    /// association's vendors, or a contractor's associations), oldest first.
    pub async fn vendor_links(&self, caller: &Caller) -> Result<Vec<VendorLink>, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let org = tx.org();
                tx.fetch_all(
                    &format!(
                        "SELECT {LINK_COLUMNS} FROM vendor_links WHERE {LINKS_OF_ORG} \
                         ORDER BY created_at, id"
                    ),
                    args![org],
                )
                .await?
                .iter()
                .map(decode_link)
                .collect()
            })
        })
        .await
    }
}
