//! `workOrder/v1`: a community association's side of HOA work orders (its properties and its
//! vendor requirements), and the vendor link both sides see: the association invites a
//! contractor organization, the contractor answers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use hestami_core::ids::{OrganizationId, VendorLinkId};
use hestami_core::text::{Name as Label, TradeCode};
use hestami_core::workorder::{
    HoaPropertyKind, LinkStatus, MAX_VENDOR_RULES, VendorRequirements, VendorRule,
};
use hestami_store::app::workorder::{
    HoaProperty, NewHoaProperty, VendorLink, VendorRequirementsDoc, WorkOrderCommand,
};

use super::Empty;
use super::contractor::{InsuranceKindDto, InsuranceRequirementDto, insurance_needs};
use super::customer::{AddressDto, address};
use crate::error::ApiError;
use crate::rpc::{Ctx, Name, Procedure, mutation, query, validate};

/// What an association's property is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HoaPropertyKindDto {
    /// An owner's unit.
    Unit,
    /// A common area the association maintains.
    CommonArea,
}

impl From<HoaPropertyKindDto> for HoaPropertyKind {
    fn from(k: HoaPropertyKindDto) -> Self {
        match k {
            HoaPropertyKindDto::Unit => Self::Unit,
            HoaPropertyKindDto::CommonArea => Self::CommonArea,
        }
    }
}

impl From<HoaPropertyKind> for HoaPropertyKindDto {
    fn from(k: HoaPropertyKind) -> Self {
        match k {
            HoaPropertyKind::Unit => Self::Unit,
            HoaPropertyKind::CommonArea => Self::CommonArea,
        }
    }
}

/// Where a vendor link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkStatusDto {
    /// Invited, not answered yet.
    Invited,
    /// Accepted: an approved vendor.
    Active,
    /// Declined by the contractor.
    Declined,
    /// Ended.
    Ended,
}

impl From<LinkStatus> for LinkStatusDto {
    fn from(s: LinkStatus) -> Self {
        match s {
            LinkStatus::Invited => Self::Invited,
            LinkStatus::Active => Self::Active,
            LinkStatus::Declined => Self::Declined,
            LinkStatus::Ended => Self::Ended,
        }
    }
}

/// `workOrder/v1/addProperty` (an association): a unit or common area of its community.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddHoaPropertyInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Its name in the community (`Unit 12B`, `Pool house`), unique in the association.
    pub name: String,
    /// unit or common_area.
    pub kind: HoaPropertyKindDto,
    /// Where it is.
    pub address: AddressDto,
}

/// One of an association's vendor rules: what work of a trade (or of every trade) needs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VendorRuleDto {
    /// The trade it is for; absent or null: every trade.
    #[serde(default)]
    pub trade: Option<String>,
    /// Whether a verified, unexpired licence for the trade, covering the place, is needed.
    #[serde(default)]
    pub license_required: bool,
    /// The insurance needed, each kind with its least limits (a kind without limits must
    /// simply be held).
    #[serde(default)]
    pub insurance: Vec<InsuranceRequirementDto>,
    /// The kinds of policy that must name the association as an additional insured.
    #[serde(default)]
    pub additional_insured: Vec<InsuranceKindDto>,
    /// Whether the contractor's W-9 must be on file.
    #[serde(default)]
    pub w9_required: bool,
}

impl From<&VendorRule> for VendorRuleDto {
    fn from(r: &VendorRule) -> Self {
        Self {
            trade: r.trade.as_ref().map(|t| t.as_str().to_owned()),
            license_required: r.license_required,
            insurance: r.insurance.iter().map(Into::into).collect(),
            additional_insured: r.additional_insured.iter().map(|k| (*k).into()).collect(),
            w9_required: r.w9_required,
        }
    }
}

/// `workOrder/v1/setVendorRequirements` (an association): the rules every contractor it sends
/// work to must meet, on top of the contractor's own (they replace the current rules).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetVendorRequirementsInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Refuse with `VERSION_CONFLICT` unless the rules are at this version (0: none set yet).
    #[serde(default)]
    pub expected_version: Option<i64>,
    /// The rules, at most 50; every rule that applies to a work order's trade applies.
    #[schema(max_items = 50)]
    pub rules: Vec<VendorRuleDto>,
}

/// `workOrder/v1/inviteVendor` (an association): invites a contractor organization to be an
/// approved vendor, or again after it declined or the link ended; an open invitation is
/// answered as it is.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InviteVendorInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The contractor's organization id (the contractor gives it to the association).
    pub contractor_organization_id: Uuid,
}

/// `workOrder/v1/answerInvitation` (a contractor): accepts or declines an association's
/// invitation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnswerInvitationInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The link (`workOrder/v1/links`).
    pub link_id: Uuid,
    /// true: accept (an approved vendor from now on); false: decline.
    pub accept: bool,
    /// Refuse with `VERSION_CONFLICT` unless the link is at this version.
    #[serde(default)]
    pub expected_version: Option<i64>,
}

mutating!(
    AddHoaPropertyInput,
    SetVendorRequirementsInput,
    InviteVendorInput,
    AnswerInvitationInput
);

/// A property of the association's community.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HoaPropertyDto {
    /// Its id.
    pub id: Uuid,
    /// 1 on creation.
    pub version: i64,
    /// Its name in the community.
    pub name: String,
    /// unit or common_area.
    pub kind: HoaPropertyKindDto,
    /// Where it is.
    pub address: AddressDto,
    /// When it was added.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<HoaProperty> for HoaPropertyDto {
    fn from(p: HoaProperty) -> Self {
        Self {
            id: p.id.as_uuid(),
            version: p.version,
            name: p.name.as_str().to_owned(),
            kind: p.kind.into(),
            address: (&p.address).into(),
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// The association's community properties, by name.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HoaPropertyList {
    /// Every property.
    pub items: Vec<HoaPropertyDto>,
}

/// The association's vendor requirements.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VendorRequirementsDto {
    /// 0 before any are set, +1 on each change.
    pub version: i64,
    /// The rules.
    pub rules: Vec<VendorRuleDto>,
}

impl From<VendorRequirementsDoc> for VendorRequirementsDto {
    fn from(d: VendorRequirementsDoc) -> Self {
        Self {
            version: d.version,
            rules: d.requirements.rules.iter().map(Into::into).collect(),
        }
    }
}

/// A link between an association and a contractor, as both see it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VendorLinkDto {
    /// Its id.
    pub id: Uuid,
    /// The association.
    pub hoa_organization_id: Uuid,
    /// The contractor.
    pub contractor_organization_id: Uuid,
    /// 1 on the first invitation, +1 on each change.
    pub version: i64,
    /// invited, active, declined or ended.
    pub status: LinkStatusDto,
    /// When the association last invited.
    pub invited_at: DateTime<Utc>,
    /// When the contractor last answered.
    pub answered_at: Option<DateTime<Utc>>,
    /// When it was first made.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<VendorLink> for VendorLinkDto {
    fn from(l: VendorLink) -> Self {
        Self {
            id: l.id.as_uuid(),
            hoa_organization_id: l.hoa_organization_id.as_uuid(),
            contractor_organization_id: l.contractor_organization_id.as_uuid(),
            version: l.version,
            status: l.status.into(),
            invited_at: l.invited_at,
            answered_at: l.answered_at,
            created_at: l.created_at,
            updated_at: l.updated_at,
        }
    }
}

/// The organization's vendor links, on either side, oldest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VendorLinkList {
    /// Every link.
    pub items: Vec<VendorLinkDto>,
}

fn convert_add_property(i: AddHoaPropertyInput) -> Result<WorkOrderCommand, ApiError> {
    validate(|v| {
        let name = v.check("name", Label::parse(&i.name));
        let address = address(v, &i.address);
        Some(WorkOrderCommand::AddProperty(NewHoaProperty {
            name: name?,
            kind: i.kind.into(),
            address: address?,
        }))
    })
}

fn convert_set_requirements(i: SetVendorRequirementsInput) -> Result<WorkOrderCommand, ApiError> {
    validate(|v| {
        if i.rules.len() > MAX_VENDOR_RULES {
            v.fail(
                "rules",
                "too_many",
                &format!("at most {MAX_VENDOR_RULES} vendor rules"),
            );
            return None;
        }
        let rules: Vec<Option<VendorRule>> = i
            .rules
            .iter()
            .enumerate()
            .map(|(n, r)| {
                let at = format!("rules[{n}]");
                let trade =
                    v.optional(&format!("{at}.trade"), r.trade.as_deref(), TradeCode::parse);
                let insurance = insurance_needs(v, &format!("{at}.insurance"), &r.insurance);
                Some(VendorRule {
                    trade: trade?,
                    license_required: r.license_required,
                    insurance: insurance?,
                    additional_insured: r.additional_insured.iter().map(|k| (*k).into()).collect(),
                    w9_required: r.w9_required,
                })
            })
            .collect();
        let rules: Option<Vec<VendorRule>> = rules.into_iter().collect();
        Some(WorkOrderCommand::SetVendorRequirements {
            requirements: VendorRequirements { rules: rules? },
            expected_version: i.expected_version,
        })
    })
}

fn convert_invite(i: InviteVendorInput) -> Result<WorkOrderCommand, ApiError> {
    Ok(WorkOrderCommand::InviteVendor {
        contractor_organization_id: OrganizationId::from_uuid(i.contractor_organization_id),
    })
}

fn convert_answer(i: AnswerInvitationInput) -> Result<WorkOrderCommand, ApiError> {
    Ok(WorkOrderCommand::AnswerInvitation {
        link_id: VendorLinkId::from_uuid(i.link_id),
        accept: i.accept,
        expected_version: i.expected_version,
    })
}

async fn list_properties(ctx: Ctx, _: Empty) -> Result<HoaPropertyList, ApiError> {
    let items = ctx.services.hoa_properties(ctx.caller()?).await?;
    Ok(HoaPropertyList {
        items: items.into_iter().map(Into::into).collect(),
    })
}

async fn get_requirements(ctx: Ctx, _: Empty) -> Result<VendorRequirementsDto, ApiError> {
    Ok(ctx
        .services
        .vendor_requirements(ctx.caller()?)
        .await?
        .into())
}

async fn list_links(ctx: Ctx, _: Empty) -> Result<VendorLinkList, ApiError> {
    let items = ctx.services.vendor_links(ctx.caller()?).await?;
    Ok(VendorLinkList {
        items: items.into_iter().map(Into::into).collect(),
    })
}

fn name(name: &'static str, summary: &'static str, errors: &'static [&'static str]) -> Name {
    Name {
        namespace: "workOrder",
        version: "v1",
        name,
        summary,
        errors,
    }
}

pub(crate) fn procedures() -> Vec<Procedure> {
    vec![
        mutation(
            name(
                "addProperty",
                "An association's community property: a unit or a common area",
                &["NOT_AN_ASSOCIATION", "PROPERTY_EXISTS"],
            ),
            convert_add_property,
            <HoaPropertyDto as From<HoaProperty>>::from,
        ),
        query(
            name(
                "properties",
                "The association's community properties, by name",
                &[],
            ),
            list_properties,
        ),
        mutation(
            name(
                "setVendorRequirements",
                "The rules the association's vendors must meet, on top of their own",
                &["NOT_AN_ASSOCIATION", "VERSION_CONFLICT"],
            ),
            convert_set_requirements,
            <VendorRequirementsDto as From<VendorRequirementsDoc>>::from,
        ),
        query(
            name(
                "vendorRequirements",
                "The association's vendor requirements",
                &[],
            ),
            get_requirements,
        ),
        mutation(
            name(
                "inviteVendor",
                "Invite a contractor organization to be an approved vendor of the association",
                &["NOT_AN_ASSOCIATION", "NOT_FOUND", "ALREADY_A_VENDOR"],
            ),
            convert_invite,
            <VendorLinkDto as From<VendorLink>>::from,
        ),
        mutation(
            name(
                "answerInvitation",
                "Accept or decline an association's invitation to be its vendor",
                &[
                    "NOT_A_CONTRACTOR",
                    "NOT_FOUND",
                    "NOT_INVITED",
                    "VERSION_CONFLICT",
                ],
            ),
            convert_answer,
            <VendorLinkDto as From<VendorLink>>::from,
        ),
        query(
            name(
                "links",
                "The organization's vendor links, as an association or as a contractor",
                &[],
            ),
            list_links,
        ),
    ]
}
