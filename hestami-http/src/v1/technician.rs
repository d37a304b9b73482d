//! `technician/v1`: the workforce.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use hestami_core::ids::TechnicianId;
use hestami_core::text::{Email, Name as PersonName, Phone, TradeCode};
use hestami_core::workforce::Technician;
use hestami_store::app::PageRequest;
use hestami_store::app::technician::{NewTechnician, TechnicianCommand, TechnicianUpdate};

use super::customer::patch;
use crate::error::ApiError;
use crate::rpc::{Ctx, Name, Procedure, Validator, double_option, mutation, query, validate};

/// A technician.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TechnicianDto {
    /// Its id.
    pub id: Uuid,
    /// 1 on creation, +1 on each change.
    pub version: i64,
    /// Display name.
    pub name: String,
    /// Contact address (unique within the organization).
    pub email: Option<String>,
    /// Contact number.
    pub phone: Option<String>,
    /// Trades held, sorted.
    pub trades: Vec<String>,
    /// Whether the technician takes work.
    pub active: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<Technician> for TechnicianDto {
    fn from(t: Technician) -> Self {
        Self {
            id: t.id.as_uuid(),
            version: t.version,
            name: t.name.as_str().to_owned(),
            email: t.email.map(|e| e.as_str().to_owned()),
            phone: t.phone.map(|p| p.as_str().to_owned()),
            trades: t.trades.iter().map(|t| t.as_str().to_owned()).collect(),
            active: t.active,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// `technician/v1/create`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTechnicianInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Display name.
    pub name: String,
    /// Contact address (unique within the organization).
    pub email: Option<String>,
    /// Contact number.
    pub phone: Option<String>,
    /// Trades held, such as `plumbing` or `hvac`.
    pub trades: Vec<String>,
}

/// `technician/v1/get`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetTechnicianInput {
    /// Which technician.
    pub technician_id: Uuid,
}

/// `technician/v1/list`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListTechniciansInput {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// Only active (true) or deactivated (false) technicians.
    pub active: Option<bool>,
    /// Only technicians holding this trade.
    pub trade: Option<String>,
}

/// A page of technicians.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TechnicianPage {
    /// The technicians, in creation order.
    pub items: Vec<TechnicianDto>,
    /// The cursor of the next page, or null on the last.
    pub next_cursor: Option<String>,
}

/// `technician/v1/update`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateTechnicianInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which technician.
    pub technician_id: Uuid,
    /// Refuse with `VERSION_CONFLICT` unless the technician is at this version.
    pub expected_version: Option<i64>,
    /// A new name.
    pub name: Option<String>,
    /// A new e-mail address, or null to clear it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    /// A new phone number, or null to clear it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
    /// The new set of trades.
    pub trades: Option<Vec<String>>,
}

/// `technician/v1/deactivate`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeactivateTechnicianInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which technician.
    pub technician_id: Uuid,
    /// Refuse with `VERSION_CONFLICT` unless the technician is at this version.
    pub expected_version: Option<i64>,
}

mutating!(
    CreateTechnicianInput,
    UpdateTechnicianInput,
    DeactivateTechnicianInput
);

fn trades(v: &mut Validator, raw: &[String]) -> Option<Vec<TradeCode>> {
    let parsed: Vec<Option<TradeCode>> = raw
        .iter()
        .enumerate()
        .map(|(n, t)| v.check(&format!("trades[{n}]"), TradeCode::parse(t)))
        .collect();
    parsed.into_iter().collect()
}

fn convert_create(i: CreateTechnicianInput) -> Result<TechnicianCommand, ApiError> {
    validate(|v| {
        let name = v.check("name", PersonName::parse(&i.name));
        let email = v.optional("email", i.email.as_deref(), Email::parse);
        let phone = v.optional("phone", i.phone.as_deref(), Phone::parse);
        let trades = trades(v, &i.trades);
        Some(TechnicianCommand::Create(NewTechnician {
            name: name?,
            email: email?,
            phone: phone?,
            trades: trades?,
        }))
    })
}

fn convert_update(i: UpdateTechnicianInput) -> Result<TechnicianCommand, ApiError> {
    validate(|v| {
        let name = v.optional("name", i.name.as_deref(), PersonName::parse);
        let email = patch(v, "email", i.email, Email::parse);
        let phone = patch(v, "phone", i.phone, Phone::parse);
        let trades = match &i.trades {
            None => Some(None),
            Some(raw) => trades(v, raw).map(Some),
        };
        Some(TechnicianCommand::Update(TechnicianUpdate {
            technician_id: TechnicianId::from_uuid(i.technician_id),
            expected_version: i.expected_version,
            name: name?,
            email: email?,
            phone: phone?,
            trades: trades?,
        }))
    })
}

fn convert_deactivate(i: DeactivateTechnicianInput) -> Result<TechnicianCommand, ApiError> {
    Ok(TechnicianCommand::Deactivate {
        technician_id: TechnicianId::from_uuid(i.technician_id),
        expected_version: i.expected_version,
    })
}

async fn get(ctx: Ctx, i: GetTechnicianInput) -> Result<TechnicianDto, ApiError> {
    Ok(ctx
        .services
        .technician_get(ctx.caller()?, TechnicianId::from_uuid(i.technician_id))
        .await?
        .into())
}

async fn list(ctx: Ctx, i: ListTechniciansInput) -> Result<TechnicianPage, ApiError> {
    let page = PageRequest::parse(i.limit, i.cursor.as_deref())?;
    let trade = validate(|v| v.optional("trade", i.trade.as_deref(), TradeCode::parse))?;
    let page = ctx
        .services
        .technician_list(ctx.caller()?, page, i.active, trade)
        .await?;
    Ok(TechnicianPage {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    })
}

fn name(name: &'static str, summary: &'static str, errors: &'static [&'static str]) -> Name {
    Name {
        namespace: "technician",
        version: "v1",
        name,
        summary,
        errors,
    }
}

pub(crate) fn procedures() -> Vec<Procedure> {
    vec![
        mutation(
            name("create", "Add a technician", &["TECHNICIAN_EMAIL_TAKEN"]),
            convert_create,
            <TechnicianDto as From<Technician>>::from,
        ),
        query(name("get", "A technician", &["NOT_FOUND"]), get),
        query(
            name(
                "list",
                "Technicians, by creation, optionally only active ones or one trade",
                &[],
            ),
            list,
        ),
        mutation(
            name(
                "update",
                "Change a technician",
                &["NOT_FOUND", "VERSION_CONFLICT", "TECHNICIAN_EMAIL_TAKEN"],
            ),
            convert_update,
            <TechnicianDto as From<Technician>>::from,
        ),
        mutation(
            name(
                "deactivate",
                "Stop giving a technician work (history is kept)",
                &["NOT_FOUND", "VERSION_CONFLICT"],
            ),
            convert_deactivate,
            <TechnicianDto as From<Technician>>::from,
        ),
    ]
}
