//! `inventory/v1`: stock locations (warehouses, trucks), the stock ledger and what it keeps on
//! hand, the moving average cost, and materials used on jobs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use hestami_core::ids::{JobId, PricebookItemId, StockLocationId, StockTransferId, TechnicianId};
use hestami_core::inventory::{Quantity, Tracking, TrackingCode, Units};
use hestami_core::org::Currency;
use hestami_core::text::{Name as Label, Reason};
use hestami_store::app::PageRequest;
use hestami_store::app::inventory::{
    Adjust, AdjustBy, Hold, InventoryCommand, JobUsage, LedgerEntry, Location, LocationKind,
    NewLocation, Posted, Receive, RecordUsage, ReturnUsage, SerialFilter, SerialUnit, SetTracking,
    StockFilter, StockLevel, StockTransfer, Transfer, TransferRef, TransferStatus,
};

use super::Empty;
use super::money::{decimal, money};
use crate::error::ApiError;
use crate::rpc::{Ctx, Name, Procedure, Validator, mutation, mutation_in, query, validate};

/// Warehouse or truck.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StockLocationKindDto {
    /// A warehouse or stockroom.
    Warehouse,
    /// A technician's truck.
    Truck,
}

/// How an adjustment is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StockAdjustModeDto {
    /// `quantity` is the change, positive or negative, not 0.
    Delta,
    /// `quantity` is what was counted (a cycle count); the difference is posted.
    Count,
}

/// `inventory/v1/createLocation`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateLocationInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// warehouse or truck.
    pub kind: StockLocationKindDto,
    /// Its name.
    pub name: String,
    /// A truck's technician (required for a truck; one truck each); none for a warehouse.
    #[serde(default)]
    pub technician_id: Option<Uuid>,
    /// Whether stock may go below zero here (default false); below zero is flagged.
    #[serde(default)]
    pub allow_negative: Option<bool>,
}

/// `inventory/v1/receive`: stock arrives at a location.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReceiveInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// A material of the pricebook.
    pub item_id: Uuid,
    /// Where it arrives.
    pub location_id: Uuid,
    /// How much, a decimal string: more than 0, at most 4 decimals.
    pub quantity: String,
    /// What one unit cost, a decimal string (default: the pricebook's cost).
    #[serde(default)]
    pub unit_cost: Option<String>,
    /// Serial numbers of the units, one per unit, for a serial-tracked material (whole
    /// units); none otherwise.
    #[serde(default)]
    pub serials: Option<Vec<String>>,
    /// The lot, for a lot-tracked material (required on receipt); none otherwise.
    #[serde(default)]
    pub lot: Option<String>,
}

/// `inventory/v1/transfer`: stock moves from one location to another, at once.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransferInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// A material of the pricebook.
    pub item_id: Uuid,
    /// From where.
    pub from_location_id: Uuid,
    /// To where: another location.
    pub to_location_id: Uuid,
    /// How much, a decimal string: more than 0, at most 4 decimals.
    pub quantity: String,
    /// Whether it leaves now and arrives later, with `receiveTransfer` (default false: it
    /// arrives at once).
    #[serde(default)]
    pub in_transit: Option<bool>,
    /// Serial numbers of the units, one per unit, for a serial-tracked material (whole
    /// units); none otherwise.
    #[serde(default)]
    pub serials: Option<Vec<String>>,
    /// The lot, for a lot-tracked material (required on receipt); none otherwise.
    #[serde(default)]
    pub lot: Option<String>,
}

/// `inventory/v1/reserve`: hold available stock at a location for a job.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReserveInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The job (not closed or cancelled).
    pub job_id: Uuid,
    /// A material of the pricebook.
    pub item_id: Uuid,
    /// Where.
    pub location_id: Uuid,
    /// How much, a decimal string: more than 0, at most 4 decimals, at most what is available.
    pub quantity: String,
}

/// `inventory/v1/release`: let go of what a job holds at a location.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReleaseInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The job.
    pub job_id: Uuid,
    /// A material of the pricebook.
    pub item_id: Uuid,
    /// Where.
    pub location_id: Uuid,
    /// How much (default: all the job holds there; nothing held writes nothing), a decimal
    /// string: more than 0, at most 4 decimals.
    #[serde(default)]
    pub quantity: Option<String>,
}

/// `inventory/v1/returnUsage`: material used on a job comes back to stock and off the job's
/// actuals.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReturnUsageInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The job (not invoiced, closed or cancelled).
    pub job_id: Uuid,
    /// A material of the pricebook.
    pub item_id: Uuid,
    /// How much, a decimal string: more than 0, at most 4 decimals, at most what the job used
    /// and has not returned.
    pub quantity: String,
    /// To where (default: the truck of the job's technician).
    #[serde(default)]
    pub location_id: Option<Uuid>,
    /// Serial numbers of the units, one per unit, for a serial-tracked material (whole
    /// units); none otherwise.
    #[serde(default)]
    pub serials: Option<Vec<String>>,
    /// The lot, for a lot-tracked material (required on receipt); none otherwise.
    #[serde(default)]
    pub lot: Option<String>,
}

/// `inventory/v1/receiveTransfer` and `cancelTransfer`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransferRefInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The transfer.
    pub transfer_id: Uuid,
}

/// `inventory/v1/sendTransfer`: a drafted transfer leaves, naming its units.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendTransferInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The transfer (a draft).
    pub transfer_id: Uuid,
    /// Serial numbers of the units, one per unit, for a serial-tracked material (whole
    /// units); none otherwise.
    #[serde(default)]
    pub serials: Option<Vec<String>>,
    /// The lot, for a lot-tracked material (required on receipt); none otherwise.
    #[serde(default)]
    pub lot: Option<String>,
}

/// How a material's units are told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StockTrackingDto {
    /// They are not.
    None,
    /// A serial number per unit.
    Serial,
    /// A lot per receipt.
    Lot,
}

/// `inventory/v1/setTracking`: whether a material's units carry serial numbers or lots (only
/// while none of it is on hand or in transit).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetTrackingInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// A material of the pricebook.
    pub item_id: Uuid,
    /// none, serial or lot.
    pub tracking: StockTrackingDto,
}

/// A material's tracking.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StockTrackingOutput {
    /// The material.
    pub item_id: Uuid,
    /// none, serial or lot.
    pub tracking: StockTrackingDto,
}

/// `inventory/v1/serials`: where serial-numbered units are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SerialsInput {
    /// Only this material's.
    #[serde(default)]
    pub item_id: Option<Uuid>,
    /// Only those used on this job.
    #[serde(default)]
    pub job_id: Option<Uuid>,
    /// Only those installed at this property.
    #[serde(default)]
    pub property_id: Option<Uuid>,
}

/// A serial-numbered unit and where it is.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SerialUnitDto {
    /// The material.
    pub item_id: Uuid,
    /// Its serial number.
    pub serial: String,
    /// in_stock, in_transit, used or removed.
    pub status: String,
    /// Its location (in stock), or the one it left (in transit).
    pub location_id: Option<Uuid>,
    /// The job it was used on.
    pub job_id: Option<Uuid>,
    /// The property it was installed at.
    pub property_id: Option<Uuid>,
    /// The transfer carrying it.
    pub transfer_id: Option<Uuid>,
    /// When it last moved.
    pub updated_at: DateTime<Utc>,
}

/// Serial-numbered units, by material and serial (at most 500).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SerialUnitList {
    /// The units.
    pub items: Vec<SerialUnitDto>,
}

/// Where a transfer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StockTransferStatusDto {
    /// Drafted by the reorder pass; nothing has moved.
    Draft,
    /// Left its origin, not yet arrived.
    InTransit,
    /// Arrived.
    Received,
    /// Called off.
    Cancelled,
}

impl From<TransferStatus> for StockTransferStatusDto {
    fn from(s: TransferStatus) -> Self {
        match s {
            TransferStatus::Draft => Self::Draft,
            TransferStatus::InTransit => Self::InTransit,
            TransferStatus::Received => Self::Received,
            TransferStatus::Cancelled => Self::Cancelled,
        }
    }
}

/// `inventory/v1/transfers`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransfersInput {
    /// Only transfers in this status.
    #[serde(default)]
    pub status: Option<StockTransferStatusDto>,
    /// Page size, 1 to 200 (default 50).
    #[serde(default)]
    pub limit: Option<u32>,
    /// The `nextCursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// `inventory/v1/jobUsage`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobUsageInput {
    /// The job.
    pub job_id: Uuid,
}

/// `inventory/v1/adjust`: a correction or a cycle count, with a reason.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdjustInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// A material of the pricebook.
    pub item_id: Uuid,
    /// Where.
    pub location_id: Uuid,
    /// delta (default) or count.
    #[serde(default)]
    pub mode: Option<StockAdjustModeDto>,
    /// The change (delta: not 0) or what was counted (count: 0 or more; a count equal to what
    /// is on hand writes nothing), a decimal string with at most 4 decimals.
    pub quantity: String,
    /// Why: `cycle count`, `damaged`, `found`.
    pub reason: String,
    /// Serial numbers of the units, one per unit, for a serial-tracked material (whole
    /// units); none otherwise.
    #[serde(default)]
    pub serials: Option<Vec<String>>,
    /// The lot, for a lot-tracked material (required on receipt); none otherwise.
    #[serde(default)]
    pub lot: Option<String>,
}

/// `inventory/v1/recordUsage`: a material used on a job, taken from stock and recorded on the
/// job's actuals (what an invoice from actuals bills).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordUsageInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The job (not closed or cancelled).
    pub job_id: Uuid,
    /// A material of the pricebook.
    pub item_id: Uuid,
    /// How much, a decimal string: more than 0, at most 1,000,000 (a line of the job's
    /// actuals), at most 4 decimals.
    pub quantity: String,
    /// From where (default: the truck of the job's technician).
    #[serde(default)]
    pub location_id: Option<Uuid>,
    /// Serial numbers of the units, one per unit, for a serial-tracked material (whole
    /// units); none otherwise.
    #[serde(default)]
    pub serials: Option<Vec<String>>,
    /// The lot, for a lot-tracked material (required on receipt); none otherwise.
    #[serde(default)]
    pub lot: Option<String>,
}

/// `inventory/v1/stock`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StockInput {
    /// Only this material.
    #[serde(default)]
    pub item_id: Option<Uuid>,
    /// Only this location.
    #[serde(default)]
    pub location_id: Option<Uuid>,
    /// Only warehouses, or only trucks.
    #[serde(default)]
    pub location_kind: Option<StockLocationKindDto>,
    /// Only this technician's truck (truck stock per technician).
    #[serde(default)]
    pub technician_id: Option<Uuid>,
}

/// `inventory/v1/ledger`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LedgerInput {
    /// The material.
    pub item_id: Uuid,
    /// Only this location.
    #[serde(default)]
    pub location_id: Option<Uuid>,
    /// Page size, 1 to 200 (default 50).
    #[serde(default)]
    pub limit: Option<u32>,
    /// The `nextCursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

mutating!(
    CreateLocationInput,
    ReceiveInput,
    TransferInput,
    AdjustInput,
    RecordUsageInput,
    ReserveInput,
    ReleaseInput,
    ReturnUsageInput,
    TransferRefInput,
    SendTransferInput,
    SetTrackingInput
);

/// A stock location.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StockLocationDto {
    /// Its id.
    pub id: Uuid,
    /// warehouse or truck.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// A truck's technician.
    pub technician_id: Option<Uuid>,
    /// Whether stock may go below zero here.
    pub allow_negative: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl From<Location> for StockLocationDto {
    fn from(l: Location) -> Self {
        Self {
            id: l.id.as_uuid(),
            kind: match l.kind {
                LocationKind::Warehouse => "warehouse",
                LocationKind::Truck => "truck",
            }
            .to_owned(),
            name: l.name.as_str().to_owned(),
            technician_id: l.technician_id.map(|t| t.as_uuid()),
            allow_negative: l.allow_negative,
            created_at: l.created_at,
        }
    }
}

/// One row of the stock ledger.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StockEntryDto {
    /// Its id.
    pub id: Uuid,
    /// The material.
    pub item_id: Uuid,
    /// Where.
    pub location_id: Uuid,
    /// receipt, transfer_out, transfer_in, consumption, return, adjustment, reservation or
    /// release.
    pub kind: String,
    /// The change of stock on hand, signed, a decimal string (0 for a reservation or release).
    pub delta: String,
    /// The change of stock reserved for jobs, signed (a reservation or release; else 0).
    pub reserved_delta: String,
    /// A receipt's cost, or the average cost the stock moved at (up to 6 decimals).
    pub unit_cost: String,
    /// On hand at the location after it.
    pub on_hand_after: String,
    /// The job, for a consumption, return, reservation or release.
    pub job_id: Option<Uuid>,
    /// The other half of a transfer.
    pub counterpart_id: Option<Uuid>,
    /// The transfer it belongs to.
    pub transfer_id: Option<Uuid>,
    /// The purchase order a receipt is against.
    pub purchase_order_id: Option<Uuid>,
    /// The serial numbers of the units it moved.
    pub serials: Vec<String>,
    /// The lot it moved.
    pub lot: Option<String>,
    /// Why, for an adjustment.
    pub reason: Option<String>,
    /// Who.
    pub actor_user_id: Option<Uuid>,
    /// When.
    pub at: DateTime<Utc>,
}

impl From<LedgerEntry> for StockEntryDto {
    fn from(e: LedgerEntry) -> Self {
        Self {
            id: e.id,
            item_id: e.item_id.as_uuid(),
            location_id: e.location_id.as_uuid(),
            kind: e.kind,
            delta: e.delta.normalize().to_string(),
            reserved_delta: e.reserved_delta.normalize().to_string(),
            unit_cost: e.unit_cost.amount().normalize().to_string(),
            on_hand_after: e.on_hand_after.normalize().to_string(),
            job_id: e.job_id.map(|j| j.as_uuid()),
            counterpart_id: e.counterpart_id,
            transfer_id: e.transfer_id.map(|t| t.as_uuid()),
            purchase_order_id: e.purchase_order_id.map(|p| p.as_uuid()),
            serials: e.serials.iter().map(|c| c.as_str().to_owned()).collect(),
            lot: e.lot.map(String::from),
            reason: e.reason,
            actor_user_id: e.actor_user_id,
            at: e.at,
        }
    }
}

/// A movement of stock between two locations.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StockTransferDto {
    /// Its id.
    pub id: Uuid,
    /// Bumped by each change.
    pub version: i64,
    /// The material.
    pub item_id: Uuid,
    /// From where.
    pub from_location_id: Uuid,
    /// To where.
    pub to_location_id: Uuid,
    /// How much, a decimal string.
    pub quantity: String,
    /// draft, in_transit, received or cancelled.
    pub status: StockTransferStatusDto,
    /// The day of the reorder pass that drafted it.
    pub reorder_date: Option<chrono::NaiveDate>,
    /// The serial numbers it carries.
    pub serials: Vec<String>,
    /// The lot it carries.
    pub lot: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<StockTransfer> for StockTransferDto {
    fn from(t: StockTransfer) -> Self {
        Self {
            id: t.id.as_uuid(),
            version: t.version,
            item_id: t.item_id.as_uuid(),
            from_location_id: t.from_location_id.as_uuid(),
            to_location_id: t.to_location_id.as_uuid(),
            quantity: t.quantity.get().normalize().to_string(),
            status: t.status.into(),
            reorder_date: t.reorder_date,
            serials: t
                .units
                .serials
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect(),
            lot: t.units.lot.map(String::from),
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// What a movement wrote.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StockPostedDto {
    /// The ledger rows: two for a transfer that arrives at once (out, then in), a release
    /// before a consumption that draws on the job's reservation.
    pub entries: Vec<StockEntryDto>,
    /// For `recordUsage` and `returnUsage`: the job's work, with the material on its actuals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub work: Option<super::job::JobWorkDto>,
    /// For a transfer: the transfer after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer: Option<StockTransferDto>,
}

impl From<Posted> for StockPostedDto {
    fn from(p: Posted) -> Self {
        Self {
            entries: p.entries.into_iter().map(Into::into).collect(),
            work: p.work.map(Into::into),
            transfer: p.transfer.map(Into::into),
        }
    }
}

/// A page of transfers.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StockTransferPage {
    /// The transfers, oldest first.
    pub items: Vec<StockTransferDto>,
    /// The cursor of the next page, or null on the last.
    pub next_cursor: Option<String>,
}

/// One material a job used, net of returns, at cost.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobUsageItemDto {
    /// The material.
    pub item_id: Uuid,
    /// Used less returned, a decimal string.
    pub quantity: String,
    /// What it cost at the averages it left at, rounded.
    pub cost: String,
}

/// A job's materials from stock, at cost.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobUsageDto {
    /// The job.
    pub job_id: Uuid,
    /// Its consumptions and returns, oldest first.
    pub entries: Vec<StockEntryDto>,
    /// Per material.
    pub items: Vec<JobUsageItemDto>,
    /// The materials' cost, rounded (beside the price its actuals bill: a job's margin).
    pub cost: String,
}

impl From<JobUsage> for JobUsageDto {
    fn from(u: JobUsage) -> Self {
        Self {
            job_id: u.job_id.as_uuid(),
            entries: u.entries.into_iter().map(Into::into).collect(),
            items: u
                .items
                .into_iter()
                .map(|i| JobUsageItemDto {
                    item_id: i.item_id.as_uuid(),
                    quantity: i.quantity.normalize().to_string(),
                    cost: i.cost.amount_text(),
                })
                .collect(),
            cost: u.cost.amount_text(),
        }
    }
}

/// The locations, by creation.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StockLocationList {
    /// Every location.
    pub items: Vec<StockLocationDto>,
}

/// Stock of one material at one location.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StockLevelDto {
    /// The material.
    pub item_id: Uuid,
    /// Its name.
    pub item_name: String,
    /// Where.
    pub location_id: Uuid,
    /// The location's name.
    pub location_name: String,
    /// warehouse or truck.
    pub location_kind: StockLocationKindDto,
    /// A truck's technician.
    pub technician_id: Option<Uuid>,
    /// On hand, a decimal string (below 0 only where allowed).
    pub on_hand: String,
    /// Of it, held for jobs.
    pub reserved: String,
    /// On hand less reserved, never below 0.
    pub available: String,
    /// The material's moving average cost (up to 6 decimals).
    pub average_cost: String,
    /// On hand at the average cost, rounded.
    pub value: String,
}

impl From<StockLevel> for StockLevelDto {
    fn from(s: StockLevel) -> Self {
        Self {
            item_id: s.item_id.as_uuid(),
            item_name: s.item_name,
            location_id: s.location_id.as_uuid(),
            location_name: s.location_name,
            location_kind: match s.location_kind {
                LocationKind::Warehouse => StockLocationKindDto::Warehouse,
                LocationKind::Truck => StockLocationKindDto::Truck,
            },
            technician_id: s.technician_id.map(|t| t.as_uuid()),
            reserved: s.reserved.normalize().to_string(),
            available: (s.on_hand - s.reserved)
                .max(rust_decimal::Decimal::ZERO)
                .normalize()
                .to_string(),
            on_hand: s.on_hand.normalize().to_string(),
            average_cost: s.average_cost.amount().normalize().to_string(),
            value: s.value.amount_text(),
        }
    }
}

/// The value of the stock at one location.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocationValueDto {
    /// The location.
    pub location_id: Uuid,
    /// Its name.
    pub location_name: String,
    /// The sum of its materials' values, rounded.
    pub value: String,
}

/// Stock per material and location, and its valuation.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StockList {
    /// Each material at each location it has been kept at.
    pub items: Vec<StockLevelDto>,
    /// The sum of the values listed, rounded.
    pub value: String,
    /// The valuation by location (of the rows listed).
    pub by_location: Vec<LocationValueDto>,
    /// The value of the stock in transit between locations (of the material asked for, or
    /// all), at the average cost, rounded; not in `value`.
    pub in_transit_value: String,
}

/// A page of ledger rows.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StockLedgerPage {
    /// The rows, oldest first.
    pub items: Vec<StockEntryDto>,
    /// The cursor of the next page, or null on the last.
    pub next_cursor: Option<String>,
}

/// The `serials` and `lot` of an input, each checked at its own field.
pub(crate) fn units(
    v: &mut Validator,
    prefix: &str,
    serials: &Option<Vec<String>>,
    lot: &Option<String>,
) -> Option<Units> {
    let mut codes = Vec::new();
    let mut ok = true;
    for (i, raw) in serials.iter().flatten().enumerate() {
        match v.check(&format!("{prefix}serials[{i}]"), TrackingCode::parse(raw)) {
            Some(code) => codes.push(code),
            None => ok = false,
        }
    }
    let lot = match lot {
        None => Some(None),
        Some(raw) => v
            .check(&format!("{prefix}lot"), TrackingCode::parse(raw))
            .map(Some),
    };
    let lot = lot?;
    ok.then_some(Units {
        serials: codes,
        lot,
    })
}

pub(crate) fn quantity(v: &mut Validator, field: &str, raw: &str) -> Option<Quantity> {
    let parsed = decimal(raw).and_then(Quantity::parse);
    v.check(field, parsed)
}

fn convert_create_location(i: CreateLocationInput) -> Result<InventoryCommand, ApiError> {
    validate(|v| {
        let name = v.check("name", Label::parse(&i.name));
        Some(InventoryCommand::CreateLocation(NewLocation {
            kind: match i.kind {
                StockLocationKindDto::Warehouse => LocationKind::Warehouse,
                StockLocationKindDto::Truck => LocationKind::Truck,
            },
            name: name?,
            technician_id: i.technician_id.map(TechnicianId::from_uuid),
            allow_negative: i.allow_negative.unwrap_or(false),
        }))
    })
}

fn convert_receive(i: ReceiveInput, currency: Currency) -> Result<InventoryCommand, ApiError> {
    validate(|v| {
        let q = quantity(v, "quantity", &i.quantity);
        let cost = match &i.unit_cost {
            None => Some(None),
            Some(raw) => money(v, "unitCost", raw, currency).map(Some),
        };
        let units = units(v, "", &i.serials, &i.lot);
        Some(InventoryCommand::Receive(Receive {
            item_id: PricebookItemId::from_uuid(i.item_id),
            location_id: StockLocationId::from_uuid(i.location_id),
            quantity: q?,
            unit_cost: cost?,
            units: units?,
        }))
    })
}

fn convert_transfer(i: TransferInput) -> Result<InventoryCommand, ApiError> {
    validate(|v| {
        let q = quantity(v, "quantity", &i.quantity);
        let units = units(v, "", &i.serials, &i.lot);
        Some(InventoryCommand::Transfer(Transfer {
            item_id: PricebookItemId::from_uuid(i.item_id),
            from_location_id: StockLocationId::from_uuid(i.from_location_id),
            to_location_id: StockLocationId::from_uuid(i.to_location_id),
            quantity: q?,
            in_transit: i.in_transit.unwrap_or(false),
            units: units?,
        }))
    })
}

fn convert_reserve(i: ReserveInput) -> Result<InventoryCommand, ApiError> {
    validate(|v| {
        let q = quantity(v, "quantity", &i.quantity);
        Some(InventoryCommand::Reserve(Hold {
            job_id: JobId::from_uuid(i.job_id),
            item_id: PricebookItemId::from_uuid(i.item_id),
            location_id: StockLocationId::from_uuid(i.location_id),
            quantity: Some(q?),
        }))
    })
}

fn convert_release(i: ReleaseInput) -> Result<InventoryCommand, ApiError> {
    validate(|v| {
        let q = match &i.quantity {
            None => Some(None),
            Some(raw) => quantity(v, "quantity", raw).map(Some),
        };
        Some(InventoryCommand::Release(Hold {
            job_id: JobId::from_uuid(i.job_id),
            item_id: PricebookItemId::from_uuid(i.item_id),
            location_id: StockLocationId::from_uuid(i.location_id),
            quantity: q?,
        }))
    })
}

fn convert_return_usage(i: ReturnUsageInput) -> Result<InventoryCommand, ApiError> {
    validate(|v| {
        let q = quantity(v, "quantity", &i.quantity);
        let units = units(v, "", &i.serials, &i.lot);
        Some(InventoryCommand::ReturnUsage(ReturnUsage {
            job_id: JobId::from_uuid(i.job_id),
            item_id: PricebookItemId::from_uuid(i.item_id),
            quantity: q?,
            location_id: i.location_id.map(StockLocationId::from_uuid),
            units: units?,
        }))
    })
}

fn transfer_ref(i: &TransferRefInput) -> TransferRef {
    TransferRef {
        transfer_id: StockTransferId::from_uuid(i.transfer_id),
        units: Units::default(),
    }
}

fn convert_send_transfer(i: SendTransferInput) -> Result<InventoryCommand, ApiError> {
    validate(|v| {
        let units = units(v, "", &i.serials, &i.lot)?;
        Some(InventoryCommand::SendTransfer(TransferRef {
            transfer_id: StockTransferId::from_uuid(i.transfer_id),
            units,
        }))
    })
}

fn tracking_dto(t: Tracking) -> StockTrackingDto {
    match t {
        Tracking::None => StockTrackingDto::None,
        Tracking::Serial => StockTrackingDto::Serial,
        Tracking::Lot => StockTrackingDto::Lot,
    }
}

fn convert_set_tracking(i: SetTrackingInput) -> Result<InventoryCommand, ApiError> {
    Ok(InventoryCommand::SetTracking(SetTracking {
        item_id: PricebookItemId::from_uuid(i.item_id),
        tracking: match i.tracking {
            StockTrackingDto::None => Tracking::None,
            StockTrackingDto::Serial => Tracking::Serial,
            StockTrackingDto::Lot => Tracking::Lot,
        },
    }))
}

fn render_tracking(t: SetTracking) -> StockTrackingOutput {
    StockTrackingOutput {
        item_id: t.item_id.as_uuid(),
        tracking: tracking_dto(t.tracking),
    }
}

impl From<SerialUnit> for SerialUnitDto {
    fn from(u: SerialUnit) -> Self {
        Self {
            item_id: u.item_id.as_uuid(),
            serial: u.serial.as_str().to_owned(),
            status: u.status.as_str().to_owned(),
            location_id: u.location_id.map(|l| l.as_uuid()),
            job_id: u.job_id.map(|j| j.as_uuid()),
            property_id: u.property_id.map(|p| p.as_uuid()),
            transfer_id: u.transfer_id.map(|t| t.as_uuid()),
            updated_at: u.updated_at,
        }
    }
}

async fn serials(ctx: Ctx, i: SerialsInput) -> Result<SerialUnitList, ApiError> {
    let filter = SerialFilter {
        item_id: i.item_id.map(PricebookItemId::from_uuid),
        job_id: i.job_id.map(JobId::from_uuid),
        property_id: i.property_id.map(hestami_core::ids::PropertyId::from_uuid),
    };
    let units = ctx
        .services
        .inventory_serials(ctx.caller()?, filter)
        .await?;
    Ok(SerialUnitList {
        items: units.into_iter().map(Into::into).collect(),
    })
}

fn convert_receive_transfer(i: TransferRefInput) -> Result<InventoryCommand, ApiError> {
    Ok(InventoryCommand::ReceiveTransfer(transfer_ref(&i)))
}

fn convert_cancel_transfer(i: TransferRefInput) -> Result<InventoryCommand, ApiError> {
    Ok(InventoryCommand::CancelTransfer(transfer_ref(&i)))
}

fn convert_adjust(i: AdjustInput) -> Result<InventoryCommand, ApiError> {
    validate(|v| {
        let mode = i.mode.unwrap_or(StockAdjustModeDto::Delta);
        let amount = v.check(
            "quantity",
            decimal(&i.quantity).and_then(|d| {
                let bad = |code: &'static str, message: &str| {
                    Err(hestami_core::Invalid::new(code, message.to_owned()))
                };
                if d.normalize().scale() > hestami_core::inventory::QUANTITY_SCALE {
                    bad(
                        "too_many_decimals",
                        "a quantity has at most 4 decimal places",
                    )
                } else if d.abs() > hestami_core::inventory::MAX_QUANTITY {
                    bad("too_large", "a quantity is at most 1000000000")
                } else if mode == StockAdjustModeDto::Delta && d.is_zero() {
                    bad(
                        "must_not_be_zero",
                        "an adjustment changes the quantity on hand",
                    )
                } else if mode == StockAdjustModeDto::Count && d.is_sign_negative() && !d.is_zero()
                {
                    bad("must_not_be_negative", "a count is 0 or more")
                } else {
                    Ok(d.normalize())
                }
            }),
        );
        let reason = v.check("reason", Reason::parse(&i.reason));
        let units = units(v, "", &i.serials, &i.lot);
        let amount = amount?;
        Some(InventoryCommand::Adjust(Adjust {
            units: units?,
            item_id: PricebookItemId::from_uuid(i.item_id),
            location_id: StockLocationId::from_uuid(i.location_id),
            by: match mode {
                StockAdjustModeDto::Delta => AdjustBy::Delta { delta: amount },
                StockAdjustModeDto::Count => AdjustBy::Count { counted: amount },
            },
            reason: reason?,
        }))
    })
}

fn convert_record_usage(i: RecordUsageInput) -> Result<InventoryCommand, ApiError> {
    validate(|v| {
        // A line of the job's actuals: at most 1,000,000 (a priced line's bound).
        let q = v.check(
            "quantity",
            super::money::positive_quantity(&i.quantity).and_then(Quantity::parse),
        );
        let units = units(v, "", &i.serials, &i.lot);
        Some(InventoryCommand::RecordUsage(RecordUsage {
            job_id: JobId::from_uuid(i.job_id),
            item_id: PricebookItemId::from_uuid(i.item_id),
            quantity: q?,
            location_id: i.location_id.map(StockLocationId::from_uuid),
            units: units?,
        }))
    })
}

async fn list_locations(ctx: Ctx, _: Empty) -> Result<StockLocationList, ApiError> {
    let items = ctx.services.inventory_locations(ctx.caller()?).await?;
    Ok(StockLocationList {
        items: items.into_iter().map(Into::into).collect(),
    })
}

async fn stock(ctx: Ctx, i: StockInput) -> Result<StockList, ApiError> {
    let filter = StockFilter {
        item_id: i.item_id.map(PricebookItemId::from_uuid),
        location_id: i.location_id.map(StockLocationId::from_uuid),
        location_kind: i.location_kind.map(|k| match k {
            StockLocationKindDto::Warehouse => LocationKind::Warehouse,
            StockLocationKindDto::Truck => LocationKind::Truck,
        }),
        technician_id: i.technician_id.map(TechnicianId::from_uuid),
    };
    let levels = ctx.services.inventory_stock(ctx.caller()?, filter).await?;
    let in_transit = ctx
        .services
        .inventory_in_transit(ctx.caller()?, filter.item_id)
        .await?;
    let currency = ctx.services.org_get(ctx.caller()?).await?.currency;
    let money = |d: rust_decimal::Decimal| hestami_core::money::Money::new(d, currency);
    let total: rust_decimal::Decimal = levels.iter().map(|l| l.value.amount()).sum();
    let mut by_location: Vec<LocationValueDto> = Vec::new();
    for l in &levels {
        let id = l.location_id.as_uuid();
        match by_location.iter_mut().find(|b| b.location_id == id) {
            Some(b) => {
                let sum: rust_decimal::Decimal = b.value.parse().unwrap_or_default();
                b.value = money(sum + l.value.amount()).amount_text();
            }
            None => by_location.push(LocationValueDto {
                location_id: id,
                location_name: l.location_name.clone(),
                value: l.value.amount_text(),
            }),
        }
    }
    by_location.sort_by_key(|b| b.location_id);
    Ok(StockList {
        value: money(total).amount_text(),
        by_location,
        in_transit_value: in_transit.value.amount_text(),
        items: levels.into_iter().map(Into::into).collect(),
    })
}

async fn transfers(ctx: Ctx, i: TransfersInput) -> Result<StockTransferPage, ApiError> {
    let page = PageRequest::parse(i.limit, i.cursor.as_deref())?;
    let status = i.status.map(|s| match s {
        StockTransferStatusDto::Draft => TransferStatus::Draft,
        StockTransferStatusDto::InTransit => TransferStatus::InTransit,
        StockTransferStatusDto::Received => TransferStatus::Received,
        StockTransferStatusDto::Cancelled => TransferStatus::Cancelled,
    });
    let found = ctx
        .services
        .inventory_transfers(ctx.caller()?, status, page)
        .await?;
    Ok(StockTransferPage {
        items: found.items.into_iter().map(Into::into).collect(),
        next_cursor: found.next_cursor,
    })
}

async fn job_usage(ctx: Ctx, i: JobUsageInput) -> Result<JobUsageDto, ApiError> {
    let usage = ctx
        .services
        .inventory_job_usage(ctx.caller()?, JobId::from_uuid(i.job_id))
        .await?;
    Ok(usage.into())
}

async fn ledger(ctx: Ctx, i: LedgerInput) -> Result<StockLedgerPage, ApiError> {
    let page = PageRequest::parse(i.limit, i.cursor.as_deref())?;
    let entries = ctx
        .services
        .inventory_ledger(
            ctx.caller()?,
            PricebookItemId::from_uuid(i.item_id),
            i.location_id.map(StockLocationId::from_uuid),
            page,
        )
        .await?;
    Ok(StockLedgerPage {
        items: entries.items.into_iter().map(Into::into).collect(),
        next_cursor: entries.next_cursor,
    })
}

fn name(name: &'static str, summary: &'static str, errors: &'static [&'static str]) -> Name {
    Name {
        namespace: "inventory",
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
                "createLocation",
                "Add a warehouse, or a technician's truck",
                &["NOT_FOUND", "TRUCK_EXISTS"],
            ),
            convert_create_location,
            <StockLocationDto as From<Location>>::from,
        ),
        query(
            name("listLocations", "The stock locations", &[]),
            list_locations,
        ),
        mutation_in(
            name(
                "receive",
                "Stock arrives at a location; its cost moves the material's average",
                &["NOT_FOUND", "ITEM_NOT_STOCKED", "SERIAL_EXISTS"],
            ),
            convert_receive,
            <StockPostedDto as From<Posted>>::from,
        ),
        mutation(
            name(
                "transfer",
                "Move stock from one location to another, at once or through transit",
                &[
                    "NOT_FOUND",
                    "ITEM_NOT_STOCKED",
                    "INSUFFICIENT_STOCK",
                    "SERIAL_NOT_AVAILABLE",
                ],
            ),
            convert_transfer,
            <StockPostedDto as From<Posted>>::from,
        ),
        mutation(
            name(
                "sendTransfer",
                "A drafted transfer leaves its origin (then it is in transit)",
                &[
                    "NOT_FOUND",
                    "ITEM_NOT_STOCKED",
                    "INSUFFICIENT_STOCK",
                    "TRANSFER_STATE",
                    "SERIAL_NOT_AVAILABLE",
                ],
            ),
            convert_send_transfer,
            <StockPostedDto as From<Posted>>::from,
        ),
        mutation(
            name(
                "receiveTransfer",
                "A transfer in transit arrives at its destination",
                &[
                    "NOT_FOUND",
                    "ITEM_NOT_STOCKED",
                    "TRANSFER_STATE",
                    "SERIAL_NOT_AVAILABLE",
                ],
            ),
            convert_receive_transfer,
            <StockPostedDto as From<Posted>>::from,
        ),
        mutation(
            name(
                "cancelTransfer",
                "Call off a drafted transfer, or one in transit (its stock goes back to its origin)",
                &[
                    "NOT_FOUND",
                    "ITEM_NOT_STOCKED",
                    "TRANSFER_STATE",
                    "SERIAL_NOT_AVAILABLE",
                ],
            ),
            convert_cancel_transfer,
            <StockPostedDto as From<Posted>>::from,
        ),
        query(
            name(
                "transfers",
                "Transfers, in a status or all, oldest first",
                &[],
            ),
            transfers,
        ),
        mutation(
            name(
                "setTracking",
                "Say whether a material's units carry serial numbers, lots, or neither",
                &["NOT_FOUND", "ITEM_NOT_STOCKED", "TRACKING_IN_USE"],
            ),
            convert_set_tracking,
            render_tracking,
        ),
        query(
            name(
                "serials",
                "Serial-numbered units: where each is, or the job and property it was installed at",
                &["NOT_FOUND"],
            ),
            serials,
        ),
        mutation(
            name(
                "reserve",
                "Hold available stock at a location for a job",
                &[
                    "NOT_FOUND",
                    "ITEM_NOT_STOCKED",
                    "INSUFFICIENT_STOCK",
                    "JOB_CLOSED",
                ],
            ),
            convert_reserve,
            <StockPostedDto as From<Posted>>::from,
        ),
        mutation(
            name(
                "release",
                "Let go of stock held for a job",
                &["NOT_FOUND", "ITEM_NOT_STOCKED", "RELEASE_EXCEEDS_RESERVED"],
            ),
            convert_release,
            <StockPostedDto as From<Posted>>::from,
        ),
        mutation(
            name(
                "adjust",
                "Correct stock at a location, or post a cycle count's difference, with a reason",
                &[
                    "NOT_FOUND",
                    "ITEM_NOT_STOCKED",
                    "INSUFFICIENT_STOCK",
                    "SERIAL_EXISTS",
                    "SERIAL_NOT_AVAILABLE",
                ],
            ),
            convert_adjust,
            <StockPostedDto as From<Posted>>::from,
        ),
        mutation(
            name(
                "recordUsage",
                "Take a material from stock (the technician's truck by default) and record it on the job's actuals",
                &[
                    "NOT_FOUND",
                    "ITEM_NOT_STOCKED",
                    "INSUFFICIENT_STOCK",
                    "LOCATION_REQUIRED",
                    "JOB_CLOSED",
                    "JOB_ACTUALS_LIMIT",
                    "SERIAL_NOT_AVAILABLE",
                ],
            ),
            convert_record_usage,
            <StockPostedDto as From<Posted>>::from,
        ),
        mutation(
            name(
                "returnUsage",
                "Bring material used on a job back to stock (the technician's truck by default) and off the job's actuals",
                &[
                    "NOT_FOUND",
                    "ITEM_NOT_STOCKED",
                    "LOCATION_REQUIRED",
                    "RETURN_EXCEEDS_USAGE",
                    "JOB_CLOSED",
                    "JOB_INVOICED",
                    "SERIAL_NOT_AVAILABLE",
                ],
            ),
            convert_return_usage,
            <StockPostedDto as From<Posted>>::from,
        ),
        query(
            name(
                "jobUsage",
                "A job's materials from stock, used and returned, at cost",
                &["NOT_FOUND"],
            ),
            job_usage,
        ),
        query(
            name(
                "stock",
                "On hand, reserved and available per material and location, at the average cost; the valuation by location and in transit",
                &[],
            ),
            stock,
        ),
        query(
            name(
                "ledger",
                "A material's stock movements, oldest first",
                &["NOT_FOUND", "ITEM_NOT_STOCKED"],
            ),
            ledger,
        ),
    ]
}
