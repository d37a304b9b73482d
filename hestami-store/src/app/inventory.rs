//! Inventory (`inventory/v1`, workflow `inventory_v1`): stock locations, the stock ledger and
//! the balances it keeps, the moving average cost, and materials used on jobs.
//!
//! **One transaction per movement.** A movement decided by `hestami_core::inventory::post`
//! writes its ledger row, its location's balance row and the item's cost row together, so a
//! balance is always the sum of its ledger and is never recomputed on read.
//!
//! **Never oversell, under concurrency.** A movement locks its balance row (created at 0 the
//! first time, `ON CONFLICT DO NOTHING`, then `SELECT … FOR UPDATE`), then the item's cost row;
//! a transfer locks its two balance rows in location order first. Sixteen technicians taking
//! the same item from one warehouse therefore queue on that row, each decided against the
//! balance the one before left (SQLite: its single writer). Nobody holds a cost lock while
//! waiting for a balance, so the order has no cycle.
//!
//! **Usage on a job** is one path: `recordUsage` takes the stock (from the job's technician's
//! truck unless a location is named) and records the material on the job's actuals, the lines
//! an invoice from actuals bills, in the same transaction; the ledger row keeps the average cost
//! it left at, beside the price the invoice will charge.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use hestami_core::ids::{
    JobId, PricebookItemId, PurchaseOrderId, StockLocationId, StockTransferId, TechnicianId,
};
use hestami_core::inventory::{
    self as core_inv, Balance, ItemCost, Movement, Quantity, Tracking, TrackingCode, Units,
};
use hestami_core::money::Money;
use hestami_core::pricebook::{ItemDetails, LineSource, PricebookItem, QuoteLine};
use hestami_core::text::{Name, Reason};

use super::{Caller, Command, Page, PageRequest, Services};
use crate::db::{Row, args};
use crate::directory::parse_stored;
use crate::engine::WorkflowCtx;
use crate::error::{Failure, FailureKind, StoreError};
use crate::store::{Operation, TenantTx, new_id};

/// The workflow behind every stock change.
pub const WORKFLOW: &str = "inventory_v1";

/// Where stock is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocationKind {
    /// A warehouse or stockroom.
    Warehouse,
    /// A technician's truck (it moves with them).
    Truck,
}

impl LocationKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Warehouse => "warehouse",
            Self::Truck => "truck",
        }
    }
}

/// `inventory/v1/createLocation`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewLocation {
    /// Warehouse or truck.
    pub kind: LocationKind,
    /// Its name.
    pub name: Name,
    /// A truck's technician (one truck each); none for a warehouse.
    pub technician_id: Option<TechnicianId>,
    /// Whether stock may go below zero here (then it is flagged).
    pub allow_negative: bool,
}

/// A stock location.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    /// Its id.
    pub id: StockLocationId,
    /// 1 on creation.
    pub version: i64,
    /// Warehouse or truck.
    pub kind: LocationKind,
    /// Its name.
    pub name: Name,
    /// A truck's technician.
    pub technician_id: Option<TechnicianId>,
    /// Whether stock may go below zero here.
    pub allow_negative: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// `inventory/v1/receive`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Receive {
    /// The material.
    pub item_id: PricebookItemId,
    /// Where it arrives.
    pub location_id: StockLocationId,
    /// How much.
    pub quantity: Quantity,
    /// What one unit cost (default: the pricebook's cost).
    pub unit_cost: Option<Money>,
    /// Serial numbers (one per unit of a serial-tracked material) or a lot.
    #[serde(default)]
    pub units: Units,
}

/// `inventory/v1/transfer`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transfer {
    /// The material.
    pub item_id: PricebookItemId,
    /// From where.
    pub from_location_id: StockLocationId,
    /// To where (another location).
    pub to_location_id: StockLocationId,
    /// How much.
    pub quantity: Quantity,
    /// Whether it leaves now and arrives later (`receiveTransfer`); otherwise it arrives at
    /// once.
    #[serde(default)]
    pub in_transit: bool,
    /// Serial numbers (one per unit of a serial-tracked material) or a lot.
    #[serde(default)]
    pub units: Units,
}

/// `inventory/v1/reserve` and `inventory/v1/release`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hold {
    /// The job it is held for.
    pub job_id: JobId,
    /// The material.
    pub item_id: PricebookItemId,
    /// Where.
    pub location_id: StockLocationId,
    /// How much (a release: default all the job holds there).
    pub quantity: Option<Quantity>,
}

/// `inventory/v1/returnUsage`: material used on a job comes back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReturnUsage {
    /// The job.
    pub job_id: JobId,
    /// The material.
    pub item_id: PricebookItemId,
    /// How much (at most what the job used and has not returned).
    pub quantity: Quantity,
    /// To where (default: the truck of the job's technician).
    pub location_id: Option<StockLocationId>,
    /// Serial numbers (one per unit of a serial-tracked material) or a lot.
    #[serde(default)]
    pub units: Units,
}

/// `inventory/v1/sendTransfer`, `receiveTransfer` and `cancelTransfer`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransferRef {
    /// The transfer.
    pub transfer_id: StockTransferId,
    /// Sending a drafted transfer of a serial-tracked material: the serials that leave (or a
    /// lot-tracked one's lot).
    #[serde(default)]
    pub units: Units,
}

/// `inventory/v1/setTracking`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetTracking {
    /// The material.
    pub item_id: PricebookItemId,
    /// none, serial or lot.
    pub tracking: Tracking,
}

/// Where a serial-numbered unit is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SerialStatus {
    /// At a location.
    InStock,
    /// On its way between two locations.
    InTransit,
    /// Installed on a job, at its property.
    Used,
    /// Adjusted out (lost, damaged).
    Removed,
}

impl SerialStatus {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InStock => "in_stock",
            Self::InTransit => "in_transit",
            Self::Used => "used",
            Self::Removed => "removed",
        }
    }

    fn parse(raw: &str) -> Result<Self, StoreError> {
        [Self::InStock, Self::InTransit, Self::Used, Self::Removed]
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| StoreError::Internal(format!("stored serial status {raw}")))
    }
}

/// A serial-numbered unit and where it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SerialUnit {
    /// The material.
    pub item_id: PricebookItemId,
    /// Its serial number.
    pub serial: TrackingCode,
    /// Where it is.
    pub status: SerialStatus,
    /// Its location (in stock), or the one it left (in transit).
    pub location_id: Option<StockLocationId>,
    /// The job it was used on.
    pub job_id: Option<JobId>,
    /// The property it was installed at.
    pub property_id: Option<hestami_core::ids::PropertyId>,
    /// The transfer carrying it.
    pub transfer_id: Option<StockTransferId>,
    /// When it last moved.
    pub updated_at: DateTime<Utc>,
}

/// What `inventory/v1/serials` finds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SerialFilter {
    /// Only this material's.
    pub item_id: Option<PricebookItemId>,
    /// Used on this job.
    pub job_id: Option<JobId>,
    /// Installed at this property.
    pub property_id: Option<hestami_core::ids::PropertyId>,
}

/// The most serial-numbered units `inventory/v1/serials` lists at once.
pub const MAX_SERIALS_LISTED: usize = 500;

/// Where a transfer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferStatus {
    /// Drafted by the reorder pass; nothing has moved.
    Draft,
    /// Left its origin, not yet arrived.
    InTransit,
    /// Arrived.
    Received,
    /// Called off (in transit: the stock went back to its origin).
    Cancelled,
}

impl TransferStatus {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::InTransit => "in_transit",
            Self::Received => "received",
            Self::Cancelled => "cancelled",
        }
    }

    fn parse(raw: &str) -> Result<Self, StoreError> {
        [
            Self::Draft,
            Self::InTransit,
            Self::Received,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
        .ok_or_else(|| StoreError::Internal(format!("stored transfer status {raw}")))
    }
}

/// A movement of stock between two locations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StockTransfer {
    /// Its id.
    pub id: StockTransferId,
    /// Bumped by each change.
    pub version: i64,
    /// The material.
    pub item_id: PricebookItemId,
    /// From where.
    pub from_location_id: StockLocationId,
    /// To where.
    pub to_location_id: StockLocationId,
    /// How much.
    pub quantity: Quantity,
    /// Where it is.
    pub status: TransferStatus,
    /// The reorder pass's day that drafted it.
    pub reorder_date: Option<chrono::NaiveDate>,
    /// The serials (or lot) it carries.
    #[serde(default)]
    pub units: Units,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// How an adjustment says what changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case", rename_all_fields = "camelCase")]
pub enum AdjustBy {
    /// More (positive) or less (negative) on hand.
    Delta {
        /// The change.
        #[serde(with = "rust_decimal::serde::str")]
        delta: Decimal,
    },
    /// A cycle count: what was counted; the difference is posted.
    Count {
        /// What is there.
        #[serde(with = "rust_decimal::serde::str")]
        counted: Decimal,
    },
}

/// `inventory/v1/adjust`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Adjust {
    /// The material.
    pub item_id: PricebookItemId,
    /// Where.
    pub location_id: StockLocationId,
    /// By how much, or to what count.
    pub by: AdjustBy,
    /// Why (a reason code and a word: `cycle count`, `damaged`).
    pub reason: Reason,
    /// Serial numbers (one per unit of a serial-tracked material) or a lot.
    #[serde(default)]
    pub units: Units,
}

/// `inventory/v1/recordUsage`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordUsage {
    /// The job.
    pub job_id: JobId,
    /// The material.
    pub item_id: PricebookItemId,
    /// How much.
    pub quantity: Quantity,
    /// From where (default: the truck of the job's technician).
    pub location_id: Option<StockLocationId>,
    /// Serial numbers (one per unit of a serial-tracked material) or a lot.
    #[serde(default)]
    pub units: Units,
}

/// The inventory namespace's mutating procedures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "procedure", content = "input")]
pub enum InventoryCommand {
    /// `inventory/v1/createLocation`.
    #[serde(rename = "inventory/v1/createLocation")]
    CreateLocation(NewLocation),
    /// `inventory/v1/receive`.
    #[serde(rename = "inventory/v1/receive")]
    Receive(Receive),
    /// `inventory/v1/transfer`.
    #[serde(rename = "inventory/v1/transfer")]
    Transfer(Transfer),
    /// `inventory/v1/adjust`.
    #[serde(rename = "inventory/v1/adjust")]
    Adjust(Adjust),
    /// `inventory/v1/recordUsage`.
    #[serde(rename = "inventory/v1/recordUsage")]
    RecordUsage(RecordUsage),
    /// `inventory/v1/returnUsage`.
    #[serde(rename = "inventory/v1/returnUsage")]
    ReturnUsage(ReturnUsage),
    /// `inventory/v1/reserve`.
    #[serde(rename = "inventory/v1/reserve")]
    Reserve(Hold),
    /// `inventory/v1/release`.
    #[serde(rename = "inventory/v1/release")]
    Release(Hold),
    /// `inventory/v1/sendTransfer`.
    #[serde(rename = "inventory/v1/sendTransfer")]
    SendTransfer(TransferRef),
    /// `inventory/v1/receiveTransfer`.
    #[serde(rename = "inventory/v1/receiveTransfer")]
    ReceiveTransfer(TransferRef),
    /// `inventory/v1/cancelTransfer`.
    #[serde(rename = "inventory/v1/cancelTransfer")]
    CancelTransfer(TransferRef),
    /// `inventory/v1/setTracking`.
    #[serde(rename = "inventory/v1/setTracking")]
    SetTracking(SetTracking),
}

impl Command for InventoryCommand {
    const WORKFLOW: &'static str = WORKFLOW;
    fn procedure(&self) -> &'static str {
        match self {
            Self::CreateLocation(_) => "inventory/v1/createLocation",
            Self::Receive(_) => "inventory/v1/receive",
            Self::Transfer(_) => "inventory/v1/transfer",
            Self::Adjust(_) => "inventory/v1/adjust",
            Self::RecordUsage(_) => "inventory/v1/recordUsage",
            Self::ReturnUsage(_) => "inventory/v1/returnUsage",
            Self::Reserve(_) => "inventory/v1/reserve",
            Self::Release(_) => "inventory/v1/release",
            Self::SendTransfer(_) => "inventory/v1/sendTransfer",
            Self::ReceiveTransfer(_) => "inventory/v1/receiveTransfer",
            Self::CancelTransfer(_) => "inventory/v1/cancelTransfer",
            Self::SetTracking(_) => "inventory/v1/setTracking",
        }
    }
    fn subject(&self) -> Option<super::Subject> {
        match self {
            // A technician records (and returns) what they used on their own jobs only.
            Self::RecordUsage(u) => Some(super::Subject::Job(u.job_id)),
            Self::ReturnUsage(u) => Some(super::Subject::Job(u.job_id)),
            _ => None,
        }
    }
}

/// One row of the stock ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    /// Its id.
    pub id: uuid::Uuid,
    /// The material.
    pub item_id: PricebookItemId,
    /// Where.
    pub location_id: StockLocationId,
    /// receipt, transfer_out, transfer_in, consumption, return or adjustment.
    pub kind: String,
    /// The change of stock on hand, signed.
    #[serde(with = "rust_decimal::serde::str")]
    pub delta: Decimal,
    /// A receipt's cost, or the average cost the stock moved at.
    pub unit_cost: Money,
    /// On hand at the location after it.
    #[serde(with = "rust_decimal::serde::str")]
    pub on_hand_after: Decimal,
    /// The job, for a consumption or a return.
    pub job_id: Option<JobId>,
    /// The other half of a transfer.
    pub counterpart_id: Option<uuid::Uuid>,
    /// Why, for an adjustment.
    pub reason: Option<String>,
    /// Who.
    pub actor_user_id: Option<uuid::Uuid>,
    /// When.
    pub at: DateTime<Utc>,
    /// The change of stock reserved for jobs (a reservation or a release), signed.
    #[serde(default, with = "rust_decimal::serde::str")]
    pub reserved_delta: Decimal,
    /// The transfer it belongs to.
    #[serde(default)]
    pub transfer_id: Option<StockTransferId>,
    /// The purchase order a receipt is against.
    #[serde(default)]
    pub purchase_order_id: Option<PurchaseOrderId>,
    /// The serial numbers of the units it moved.
    #[serde(default)]
    pub serials: Vec<TrackingCode>,
    /// The lot it moved.
    #[serde(default)]
    pub lot: Option<TrackingCode>,
}

/// What a movement did: its ledger rows (two for a transfer) and, for usage, the job's work.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Posted {
    /// The ledger rows written.
    pub entries: Vec<LedgerEntry>,
    /// For `recordUsage` and `returnUsage`: the job's work with the material on its actuals.
    #[serde(default)]
    pub work: Option<super::job::JobWork>,
    /// For a transfer: the transfer.
    #[serde(default)]
    pub transfer: Option<StockTransfer>,
}

/// The stock of one item at one location, with its value at the average cost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StockLevel {
    /// The material.
    pub item_id: PricebookItemId,
    /// Its name.
    pub item_name: String,
    /// Where.
    pub location_id: StockLocationId,
    /// The location's name.
    pub location_name: String,
    /// Warehouse or truck.
    pub location_kind: LocationKind,
    /// A truck's technician.
    pub technician_id: Option<TechnicianId>,
    /// On hand (may be below zero only where allowed).
    #[serde(with = "rust_decimal::serde::str")]
    pub on_hand: Decimal,
    /// Of it, held for jobs.
    #[serde(with = "rust_decimal::serde::str")]
    pub reserved: Decimal,
    /// The item's average cost.
    pub average_cost: Money,
    /// `on hand × average cost`, rounded to the minor unit.
    pub value: Money,
}

pub(crate) async fn run(
    mut ctx: WorkflowCtx,
    command: InventoryCommand,
) -> Result<serde_json::Value, StoreError> {
    use InventoryCommand as C;
    Ok(match command {
        C::CreateLocation(n) => serde_json::to_value(
            ctx.step("create_location", move |tx| {
                Box::pin(create_location(tx, n))
            })
            .await?,
        )?,
        C::Receive(r) => serde_json::to_value(
            ctx.step("receive", move |tx| Box::pin(receive(tx, r)))
                .await?,
        )?,
        C::Transfer(t) => serde_json::to_value(
            ctx.step("transfer", move |tx| Box::pin(transfer(tx, t)))
                .await?,
        )?,
        C::Adjust(a) => serde_json::to_value(
            ctx.step("adjust", move |tx| Box::pin(adjust(tx, a)))
                .await?,
        )?,
        C::RecordUsage(u) => serde_json::to_value(
            ctx.step("record_usage", move |tx| Box::pin(record_usage(tx, u)))
                .await?,
        )?,
        C::ReturnUsage(u) => serde_json::to_value(
            ctx.step("return_usage", move |tx| Box::pin(return_usage(tx, u)))
                .await?,
        )?,
        C::Reserve(h) => serde_json::to_value(
            ctx.step("reserve", move |tx| Box::pin(reserve(tx, h)))
                .await?,
        )?,
        C::Release(h) => serde_json::to_value(
            ctx.step("release", move |tx| Box::pin(release(tx, h)))
                .await?,
        )?,
        C::SendTransfer(t) => serde_json::to_value(
            ctx.step("send_transfer", move |tx| {
                Box::pin(move_transfer(tx, t, TransferStep::Send))
            })
            .await?,
        )?,
        C::ReceiveTransfer(t) => serde_json::to_value(
            ctx.step("receive_transfer", move |tx| {
                Box::pin(move_transfer(tx, t, TransferStep::Receive))
            })
            .await?,
        )?,
        C::CancelTransfer(t) => serde_json::to_value(
            ctx.step("cancel_transfer", move |tx| {
                Box::pin(move_transfer(tx, t, TransferStep::Cancel))
            })
            .await?,
        )?,
        C::SetTracking(t) => serde_json::to_value(
            ctx.step("set_tracking", move |tx| Box::pin(set_tracking(tx, t)))
                .await?,
        )?,
    })
}

fn failure(code: &'static str, message: impl Into<String>) -> StoreError {
    Failure::new(FailureKind::RuleViolation, code, message).into()
}

async fn create_location(tx: &mut TenantTx, n: NewLocation) -> Result<Location, StoreError> {
    match (n.kind, n.technician_id) {
        (LocationKind::Truck, Some(technician)) => {
            super::technician::load(tx, technician, false).await?;
            let org = tx.org();
            let taken = tx
                .fetch_optional(
                    "SELECT id FROM stock_locations WHERE organization_id = $1 AND technician_id = $2",
                    args![org, technician.as_uuid()],
                )
                .await?;
            if let Some(row) = taken {
                return Err(Failure::new(
                    FailureKind::Conflict,
                    "TRUCK_EXISTS",
                    "the technician has a truck already",
                )
                .with_details(serde_json::json!({ "locationId": row.get::<uuid::Uuid>("id")? }))
                .into());
            }
        }
        (LocationKind::Truck, None) => {
            return Err(Failure::invalid_field(
                "technicianId",
                "required",
                "a truck belongs to a technician",
            )
            .into());
        }
        (LocationKind::Warehouse, Some(_)) => {
            return Err(Failure::invalid_field(
                "technicianId",
                "not_applicable",
                "a warehouse belongs to no technician",
            )
            .into());
        }
        (LocationKind::Warehouse, None) => {}
    }
    let now = tx.now();
    let location = Location {
        id: StockLocationId::from_uuid(new_id()),
        version: 1,
        kind: n.kind,
        name: n.name,
        technician_id: n.technician_id,
        allow_negative: n.allow_negative,
        created_at: now,
    };
    tx.execute(
        "INSERT INTO stock_locations (organization_id, id, version, kind, name, technician_id, allow_negative, \
         created_at, updated_at) VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $7)",
        args![
            tx.org(),
            location.id.as_uuid(),
            location.kind.as_str(),
            location.name.as_str(),
            location.technician_id.map(|t| t.as_uuid()),
            location.allow_negative,
            now
        ],
    )
    .await
    .map_err(|e| {
        // Two trucks for one technician at once: the unique index decides, and says so.
        if e.is_unique_violation() {
            Failure::new(
                FailureKind::Conflict,
                "TRUCK_EXISTS",
                "the technician has a truck already",
            )
            .into()
        } else {
            e
        }
    })?;
    tx.record_change(
        "stock_location",
        location.id.as_uuid(),
        1,
        Operation::Created,
    )
    .await?;
    Ok(location)
}

const LOCATION_COLUMNS: &str = "id, version, kind, name, technician_id, allow_negative, created_at";

fn decode_location(row: &Row) -> Result<Location, StoreError> {
    Ok(Location {
        id: StockLocationId::from_uuid(row.get("id")?),
        version: row.get("version")?,
        kind: match row.get::<String>("kind")?.as_str() {
            "truck" => LocationKind::Truck,
            _ => LocationKind::Warehouse,
        },
        name: parse_stored(&row.get::<String>("name")?, Name::parse)?,
        technician_id: row
            .get::<Option<uuid::Uuid>>("technician_id")?
            .map(TechnicianId::from_uuid),
        allow_negative: row.get("allow_negative")?,
        created_at: row.get("created_at")?,
    })
}

pub(crate) async fn load_location(
    tx: &mut TenantTx,
    id: StockLocationId,
) -> Result<Location, StoreError> {
    let org = tx.org();
    tx.fetch_optional(
        &format!(
            "SELECT {LOCATION_COLUMNS} FROM stock_locations WHERE organization_id = $1 AND id = $2"
        ),
        args![org, id.as_uuid()],
    )
    .await?
    .map(|r| decode_location(&r))
    .transpose()?
    .ok_or_else(|| Failure::not_found("stock location").into())
}

/// A live material of the pricebook and its cost; others are not stocked.
pub(crate) async fn stocked_item(
    tx: &mut TenantTx,
    id: PricebookItemId,
) -> Result<(PricebookItem, Money), StoreError> {
    let item = super::pricebook::load_item(tx, id, false).await?;
    match &item.details {
        ItemDetails::Material { cost, .. } if !item.archived => {
            let cost = *cost;
            Ok((item, cost))
        }
        _ => Err(failure(
            "ITEM_NOT_STOCKED",
            "only a live material of the pricebook is kept in stock",
        )),
    }
}

/// A material's pricebook cost, archived or not (stock already moving finishes moving).
async fn item_cost(tx: &mut TenantTx, id: PricebookItemId) -> Result<Money, StoreError> {
    let item = super::pricebook::load_item(tx, id, false).await?;
    match &item.details {
        ItemDetails::Material { cost, .. } => Ok(*cost),
        _ => Err(failure(
            "ITEM_NOT_STOCKED",
            "only a material of the pricebook is kept in stock",
        )),
    }
}

/// Locks (creating at 0) the balance of `item` at `location`.
pub(crate) async fn lock_balance(
    tx: &mut TenantTx,
    item: PricebookItemId,
    location: StockLocationId,
) -> Result<Balance, StoreError> {
    let org = tx.org();
    let now = tx.now();
    tx.execute(
        "INSERT INTO stock_balances (organization_id, item_id, location_id, on_hand, reserved, updated_at) \
         VALUES ($1, $2, $3, '0', '0', $4) ON CONFLICT (organization_id, item_id, location_id) DO NOTHING",
        args![org, item.as_uuid(), location.as_uuid(), now],
    )
    .await?;
    let row = tx
        .fetch_one(
            &format!(
                "SELECT on_hand, reserved FROM stock_balances WHERE organization_id = $1 AND item_id = $2 \
                 AND location_id = $3{}",
                tx.for_update()
            ),
            args![org, item.as_uuid(), location.as_uuid()],
        )
        .await?;
    Ok(Balance {
        on_hand: decimal(&row, "on_hand")?,
        reserved: decimal(&row, "reserved")?,
    })
}

/// Locks (creating at the pricebook's cost) the item's moving average cost.
async fn lock_cost(
    tx: &mut TenantTx,
    item: PricebookItemId,
    initial: Money,
) -> Result<ItemCost, StoreError> {
    let org = tx.org();
    tx.execute(
        "INSERT INTO stock_costs (organization_id, item_id, on_hand, average) VALUES ($1, $2, '0', $3) \
         ON CONFLICT (organization_id, item_id) DO NOTHING",
        args![org, item.as_uuid(), initial.amount().to_string()],
    )
    .await?;
    let row = tx
        .fetch_one(
            &format!(
                "SELECT on_hand, average FROM stock_costs WHERE organization_id = $1 AND item_id = $2{}",
                tx.for_update()
            ),
            args![org, item.as_uuid()],
        )
        .await?;
    Ok(ItemCost {
        on_hand: decimal(&row, "on_hand")?,
        average: Money::new(decimal(&row, "average")?, initial.currency()),
    })
}

pub(crate) fn decimal(row: &Row, column: &str) -> Result<Decimal, StoreError> {
    row.get::<String>(column)?
        .parse()
        .map_err(|e| StoreError::Internal(format!("stored {column}: {e}")))
}

/// What a ledger row names besides its movement.
#[derive(Clone, Copy, Default)]
pub(crate) struct Links<'a> {
    /// The other half of a transfer.
    pub counterpart_id: Option<uuid::Uuid>,
    /// Why (an adjustment).
    pub reason: Option<&'a Reason>,
    /// The transfer.
    pub transfer_id: Option<StockTransferId>,
    /// The purchase order a receipt is against.
    pub purchase_order_id: Option<PurchaseOrderId>,
    /// The serials or lot moved.
    pub units: Option<&'a Units>,
}

fn inventory_failure(e: core_inv::InventoryError, location: StockLocationId) -> StoreError {
    let kind = match e.code() {
        "INSUFFICIENT_STOCK" | "RELEASE_EXCEEDS_RESERVED" => FailureKind::RuleViolation,
        _ => FailureKind::Validation,
    };
    let f = Failure::new(kind, e.code(), e.to_string());
    match e {
        core_inv::InventoryError::InsufficientStock { available, .. } => {
            StoreError::from(f.with_details(serde_json::json!({
                "available": available.normalize().to_string(),
                "locationId": location,
            })))
        }
        core_inv::InventoryError::ReleaseExceedsReserved { reserved, .. } => {
            StoreError::from(f.with_details(serde_json::json!({
                "reserved": reserved.normalize().to_string(),
                "locationId": location,
            })))
        }
        _ => StoreError::from(f),
    }
}

/// Posts `movement` of `item` at `location` (its balance locked already): the ledger row, the
/// balance and the cost. Returns the ledger row and the balance after it.
pub(crate) async fn post_locked(
    tx: &mut TenantTx,
    item: PricebookItemId,
    initial_cost: Money,
    location: &Location,
    balance: Balance,
    movement: Movement,
    links: Links<'_>,
) -> Result<(LedgerEntry, Balance), StoreError> {
    let next = core_inv::post(&balance, &movement, location.allow_negative)
        .map_err(|e| inventory_failure(e, location.id))?;
    let cost = lock_cost(tx, item, initial_cost).await?;
    let after = cost.after(&movement).map_err(|e| {
        StoreError::from(Failure::new(
            FailureKind::Validation,
            e.code(),
            e.to_string(),
        ))
    })?;
    let unit_cost = match &movement {
        Movement::Receipt { unit_cost, .. } => *unit_cost,
        _ => cost.average,
    };
    let job_id = movement.job_id();
    let org = tx.org();
    let now = tx.now();
    let entry = LedgerEntry {
        id: new_id(),
        item_id: item,
        location_id: location.id,
        kind: movement.kind().to_owned(),
        delta: movement.delta(),
        unit_cost,
        on_hand_after: next.on_hand,
        job_id,
        counterpart_id: links.counterpart_id,
        reason: links.reason.map(|r| r.as_str().to_owned()),
        actor_user_id: tx.actor().map(|a| a.as_uuid()),
        at: now,
        reserved_delta: movement.reserved_delta(),
        transfer_id: links.transfer_id,
        purchase_order_id: links.purchase_order_id,
        serials: links.units.map(|u| u.serials.clone()).unwrap_or_default(),
        lot: links.units.and_then(|u| u.lot.clone()),
    };
    let serials = (!entry.serials.is_empty())
        .then(|| serde_json::to_string(&entry.serials))
        .transpose()?;
    tx.execute(
        "INSERT INTO stock_ledger (organization_id, id, item_id, location_id, kind, delta, unit_cost, on_hand_after, \
         job_id, counterpart_id, reason, actor_user_id, at, reserved_delta, transfer_id, purchase_order_id, \
         serials, lot) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
        args![
            org,
            entry.id,
            item.as_uuid(),
            location.id.as_uuid(),
            entry.kind.as_str(),
            entry.delta.to_string(),
            unit_cost.amount().to_string(),
            next.on_hand.to_string(),
            job_id.map(|j| j.as_uuid()),
            entry.counterpart_id,
            entry.reason.as_deref(),
            entry.actor_user_id,
            now,
            entry.reserved_delta.to_string(),
            entry.transfer_id.map(|t| t.as_uuid()),
            entry.purchase_order_id.map(|p| p.as_uuid()),
            serials,
            entry.lot.as_ref().map(|l| l.as_str())
        ],
    )
    .await?;
    tx.execute(
        "UPDATE stock_balances SET on_hand = $1, reserved = $2, updated_at = $3 WHERE organization_id = $4 \
         AND item_id = $5 AND location_id = $6",
        args![
            next.on_hand.to_string(),
            next.reserved.to_string(),
            now,
            org,
            item.as_uuid(),
            location.id.as_uuid()
        ],
    )
    .await?;
    tx.execute(
        "UPDATE stock_costs SET on_hand = $1, average = $2 WHERE organization_id = $3 AND item_id = $4",
        args![
            after.on_hand.to_string(),
            after.average.amount().to_string(),
            org,
            item.as_uuid()
        ],
    )
    .await?;
    if let Some(job) = job_id
        && !entry.reserved_delta.is_zero()
    {
        hold_for_job(tx, item, location.id, job, entry.reserved_delta).await?;
    }
    tx.record_change("stock_entry", entry.id, 1, Operation::Created)
        .await?;
    Ok((entry, next))
}

/// Keeps the job's reservation row the sum of its reservations and releases.
async fn hold_for_job(
    tx: &mut TenantTx,
    item: PricebookItemId,
    location: StockLocationId,
    job: JobId,
    change: Decimal,
) -> Result<(), StoreError> {
    let org = tx.org();
    let now = tx.now();
    let held = held_by_job(tx, item, location, job).await?;
    let next = held + change;
    if next.is_zero() {
        tx.execute(
            "DELETE FROM stock_reservations WHERE organization_id = $1 AND item_id = $2 AND location_id = $3 \
             AND job_id = $4",
            args![org, item.as_uuid(), location.as_uuid(), job.as_uuid()],
        )
        .await?;
    } else {
        tx.execute(
            "INSERT INTO stock_reservations (organization_id, item_id, location_id, job_id, quantity, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (organization_id, item_id, location_id, job_id) \
             DO UPDATE SET quantity = excluded.quantity, updated_at = excluded.updated_at",
            args![
                org,
                item.as_uuid(),
                location.as_uuid(),
                job.as_uuid(),
                next.to_string(),
                now
            ],
        )
        .await?;
    }
    Ok(())
}

/// What `job` holds of `item` at `location` (read under the balance's lock).
async fn held_by_job(
    tx: &mut TenantTx,
    item: PricebookItemId,
    location: StockLocationId,
    job: JobId,
) -> Result<Decimal, StoreError> {
    let org = tx.org();
    tx.fetch_optional(
        "SELECT quantity FROM stock_reservations WHERE organization_id = $1 AND item_id = $2 \
         AND location_id = $3 AND job_id = $4",
        args![org, item.as_uuid(), location.as_uuid(), job.as_uuid()],
    )
    .await?
    .map(|r| decimal(&r, "quantity"))
    .transpose()
    .map(Option::unwrap_or_default)
}

fn posted(entries: Vec<LedgerEntry>) -> Posted {
    Posted {
        entries,
        work: None,
        transfer: None,
    }
}

/// The material's tracking (none unless set), its row held (`FOR SHARE` on PostgreSQL) until
/// the movement commits, so that `setTracking` waits for movements in flight and movements
/// wait for it: no unit is ever moved under a tracking that is changing.
pub(crate) async fn tracking_of(
    tx: &mut TenantTx,
    item: PricebookItemId,
) -> Result<Tracking, StoreError> {
    let org = tx.org();
    let now = tx.now();
    tx.execute(
        "INSERT INTO stock_items (organization_id, item_id, version, tracking, updated_at) \
         VALUES ($1, $2, 0, 'none', $3) ON CONFLICT (organization_id, item_id) DO NOTHING",
        args![org, item.as_uuid(), now],
    )
    .await?;
    let share = if tx.for_update().is_empty() {
        ""
    } else {
        " FOR SHARE"
    };
    let row = tx
        .fetch_one(
            &format!(
                "SELECT tracking FROM stock_items WHERE organization_id = $1 AND item_id = $2{share}"
            ),
            args![org, item.as_uuid()],
        )
        .await?;
    let raw: String = row.get("tracking")?;
    Tracking::parse(&raw).ok_or_else(|| StoreError::Internal(format!("stored tracking {raw}")))
}

/// Checks a movement's units against the material's tracking (`quantity` signed for an
/// adjustment; `inbound`: a receipt, where a lot must be named).
pub(crate) async fn check_units(
    tx: &mut TenantTx,
    item: PricebookItemId,
    quantity: Decimal,
    units: &Units,
    inbound: bool,
) -> Result<Tracking, StoreError> {
    let tracking = tracking_of(tx, item).await?;
    core_inv::check_units(tracking, quantity, units, inbound).map_err(|e| {
        StoreError::from(Failure::invalid_field(e.field(), "tracking", e.to_string()))
    })?;
    Ok(tracking)
}

/// Where serial-numbered units must be for a movement to take them.
#[derive(Clone, Copy)]
enum Expect {
    InStockAt(StockLocationId),
    InTransit(StockTransferId),
    UsedOn(JobId),
}

/// Locks each serial's row and checks it is where `expect` says (taken before the cost row,
/// after the balances: see the module docs).
async fn take_serials(
    tx: &mut TenantTx,
    item: PricebookItemId,
    serials: &[TrackingCode],
    expect: Expect,
) -> Result<(), StoreError> {
    let org = tx.org();
    // In one order, so that two movements naming the same units never wait on each other.
    let mut sorted: Vec<&TrackingCode> = serials.iter().collect();
    sorted.sort();
    for serial in sorted {
        let row = tx
            .fetch_optional(
                &format!(
                    "SELECT status, location_id, job_id, transfer_id FROM stock_serials WHERE organization_id = $1 \
                     AND item_id = $2 AND serial = $3{}",
                    tx.for_update()
                ),
                args![org, item.as_uuid(), serial.as_str()],
            )
            .await?;
        let here = match &row {
            None => false,
            Some(r) => {
                let status = SerialStatus::parse(&r.get::<String>("status")?)?;
                let location: Option<uuid::Uuid> = r.get("location_id")?;
                let job: Option<uuid::Uuid> = r.get("job_id")?;
                let transfer: Option<uuid::Uuid> = r.get("transfer_id")?;
                match expect {
                    Expect::InStockAt(l) => {
                        status == SerialStatus::InStock && location == Some(l.as_uuid())
                    }
                    Expect::InTransit(t) => {
                        status == SerialStatus::InTransit && transfer == Some(t.as_uuid())
                    }
                    Expect::UsedOn(j) => status == SerialStatus::Used && job == Some(j.as_uuid()),
                }
            }
        };
        if !here {
            let (what, id) = match expect {
                Expect::InStockAt(l) => ("in stock at the location", l.as_uuid()),
                Expect::InTransit(t) => ("on the transfer", t.as_uuid()),
                Expect::UsedOn(j) => ("used on the job", j.as_uuid()),
            };
            return Err(Failure::new(
                FailureKind::RuleViolation,
                "SERIAL_NOT_AVAILABLE",
                format!("serial {} is not {what}", serial.as_str()),
            )
            .with_details(serde_json::json!({ "serial": serial.as_str(), "expectedAt": id }))
            .into());
        }
    }
    Ok(())
}

/// New units arrive in stock at `location`: each serial is new (or was adjusted out before).
/// The upsert decides, so two receipts of one new serial at once cannot both take it.
pub(crate) async fn add_serials(
    tx: &mut TenantTx,
    item: PricebookItemId,
    serials: &[TrackingCode],
    location: StockLocationId,
) -> Result<(), StoreError> {
    let org = tx.org();
    let now = tx.now();
    let mut sorted: Vec<&TrackingCode> = serials.iter().collect();
    sorted.sort();
    for serial in sorted {
        let taken = tx
            .execute(
                "INSERT INTO stock_serials (organization_id, item_id, serial, status, location_id, updated_at) \
                 VALUES ($1, $2, $3, 'in_stock', $4, $5) ON CONFLICT (organization_id, item_id, serial) DO UPDATE \
                 SET status = 'in_stock', location_id = excluded.location_id, job_id = NULL, property_id = NULL, \
                 transfer_id = NULL, updated_at = excluded.updated_at WHERE stock_serials.status = 'removed'",
                args![
                    org,
                    item.as_uuid(),
                    serial.as_str(),
                    location.as_uuid(),
                    now
                ],
            )
            .await?;
        if taken == 0 {
            return Err(Failure::new(
                FailureKind::Conflict,
                "SERIAL_EXISTS",
                format!("serial {} is known already", serial.as_str()),
            )
            .with_details(serde_json::json!({ "serial": serial.as_str() }))
            .into());
        }
    }
    Ok(())
}

/// Where units are after a movement.
#[derive(Clone, Copy, Default)]
struct Place {
    location: Option<StockLocationId>,
    job: Option<JobId>,
    property: Option<hestami_core::ids::PropertyId>,
    transfer: Option<StockTransferId>,
}

async fn set_serials(
    tx: &mut TenantTx,
    item: PricebookItemId,
    serials: &[TrackingCode],
    status: SerialStatus,
    place: Place,
) -> Result<(), StoreError> {
    let org = tx.org();
    let now = tx.now();
    for serial in serials {
        tx.execute(
            "UPDATE stock_serials SET status = $1, location_id = $2, job_id = $3, property_id = $4, transfer_id = $5, \
             updated_at = $6 WHERE organization_id = $7 AND item_id = $8 AND serial = $9",
            args![
                status.as_str(),
                place.location.map(|l| l.as_uuid()),
                place.job.map(|j| j.as_uuid()),
                place.property.map(|p| p.as_uuid()),
                place.transfer.map(|t| t.as_uuid()),
                now,
                org,
                item.as_uuid(),
                serial.as_str()
            ],
        )
        .await?;
    }
    Ok(())
}

async fn set_tracking(tx: &mut TenantTx, t: SetTracking) -> Result<SetTracking, StoreError> {
    stocked_item(tx, t.item_id).await?;
    let org = tx.org();
    let now = tx.now();
    // The material's row first, exclusively: movements in flight hold it shared (see
    // `tracking_of`), so this waits for them, and new ones wait for this.
    tx.execute(
        "INSERT INTO stock_items (organization_id, item_id, version, tracking, updated_at) \
         VALUES ($1, $2, 0, 'none', $3) ON CONFLICT (organization_id, item_id) DO NOTHING",
        args![org, t.item_id.as_uuid(), now],
    )
    .await?;
    let current = tx
        .fetch_one(
            &format!(
                "SELECT tracking FROM stock_items WHERE organization_id = $1 AND item_id = $2{}",
                tx.for_update()
            ),
            args![org, t.item_id.as_uuid()],
        )
        .await?;
    let current: String = current.get("tracking")?;
    if current != t.tracking.as_str() {
        // Units counted without it cannot acquire it: on hand, on the road, or used on a job
        // and still returnable all keep the tracking they moved under.
        let balances = tx
            .fetch_all(
                "SELECT on_hand FROM stock_balances WHERE organization_id = $1 AND item_id = $2",
                args![org, t.item_id.as_uuid()],
            )
            .await?;
        let mut held = false;
        for row in &balances {
            held |= !decimal(row, "on_hand")?.is_zero();
        }
        let moving = tx
            .fetch_optional(
                "SELECT id FROM stock_transfers WHERE organization_id = $1 AND item_id = $2 AND status = 'in_transit'",
                args![org, t.item_id.as_uuid()],
            )
            .await?
            .is_some();
        let usage = tx
            .fetch_all(
                "SELECT delta FROM stock_ledger WHERE organization_id = $1 AND item_id = $2 \
                 AND kind IN ('consumption', 'return')",
                args![org, t.item_id.as_uuid()],
            )
            .await?;
        let mut used = Decimal::ZERO;
        for row in &usage {
            used += decimal(row, "delta")?;
        }
        if held || moving || !used.is_zero() {
            return Err(Failure::new(
                FailureKind::Conflict,
                "TRACKING_IN_USE",
                "the material has stock on hand, in transit, or used on jobs and returnable; its tracking changes once none is left",
            )
            .into());
        }
    }
    let version: i64 = tx
        .fetch_one(
            "UPDATE stock_items SET tracking = $1, version = version + 1, updated_at = $2 \
             WHERE organization_id = $3 AND item_id = $4 RETURNING version",
            args![t.tracking.as_str(), now, org, t.item_id.as_uuid()],
        )
        .await?
        .get("version")?;
    tx.record_change(
        "stock_item",
        t.item_id.as_uuid(),
        version,
        if version == 1 {
            Operation::Created
        } else {
            Operation::Updated
        },
    )
    .await?;
    Ok(t)
}

async fn receive(tx: &mut TenantTx, r: Receive) -> Result<Posted, StoreError> {
    let (_, cost) = stocked_item(tx, r.item_id).await?;
    let location = load_location(tx, r.location_id).await?;
    let unit_cost = r.unit_cost.unwrap_or(cost);
    let balance = lock_balance(tx, r.item_id, location.id).await?;
    check_units(tx, r.item_id, r.quantity.get(), &r.units, true).await?;
    add_serials(tx, r.item_id, &r.units.serials, location.id).await?;
    let movement = Movement::Receipt {
        quantity: r.quantity,
        unit_cost,
    };
    let (entry, _) = post_locked(
        tx,
        r.item_id,
        cost,
        &location,
        balance,
        movement,
        Links {
            units: Some(&r.units),
            ..Links::default()
        },
    )
    .await?;
    Ok(posted(vec![entry]))
}

/// Locks the balances of `item` at two locations in location order (see the module docs);
/// returns them in the order asked.
async fn lock_two(
    tx: &mut TenantTx,
    item: PricebookItemId,
    a: StockLocationId,
    b: StockLocationId,
) -> Result<(Balance, Balance), StoreError> {
    if a <= b {
        let first = lock_balance(tx, item, a).await?;
        Ok((first, lock_balance(tx, item, b).await?))
    } else {
        let second = lock_balance(tx, item, b).await?;
        Ok((lock_balance(tx, item, a).await?, second))
    }
}

async fn transfer(tx: &mut TenantTx, t: Transfer) -> Result<Posted, StoreError> {
    let (_, cost) = stocked_item(tx, t.item_id).await?;
    let from = load_location(tx, t.from_location_id).await?;
    let to = load_location(tx, t.to_location_id).await?;
    if from.id == to.id {
        return Err(Failure::invalid_field(
            "toLocationId",
            "same_location",
            "a transfer goes to another location",
        )
        .into());
    }
    let (from_balance, to_balance) = lock_two(tx, t.item_id, from.id, to.id).await?;
    check_units(tx, t.item_id, t.quantity.get(), &t.units, false).await?;
    take_serials(tx, t.item_id, &t.units.serials, Expect::InStockAt(from.id)).await?;
    let transfer = insert_transfer(
        tx,
        t.item_id,
        from.id,
        to.id,
        t.quantity,
        TransferStatus::InTransit,
        None,
        t.units,
    )
    .await?;
    let links = Links {
        transfer_id: Some(transfer.id),
        units: Some(&transfer.units),
        ..Links::default()
    };
    let (out, _) = post_locked(
        tx,
        t.item_id,
        cost,
        &from,
        from_balance,
        Movement::TransferOut {
            quantity: t.quantity,
        },
        links,
    )
    .await?;
    if t.in_transit {
        let place = Place {
            location: Some(from.id),
            transfer: Some(transfer.id),
            ..Place::default()
        };
        set_serials(
            tx,
            t.item_id,
            &transfer.units.serials,
            SerialStatus::InTransit,
            place,
        )
        .await?;
        return Ok(Posted {
            transfer: Some(transfer),
            ..posted(vec![out])
        });
    }
    let (out, inward) = arrive(tx, &transfer, cost, &to, to_balance, out).await?;
    let transfer = set_transfer_status(tx, &transfer, TransferStatus::Received).await?;
    Ok(Posted {
        transfer: Some(transfer),
        ..posted(vec![out, inward])
    })
}

/// Posts a transfer's arrival at `to` and ties its two ledger rows together.
async fn arrive(
    tx: &mut TenantTx,
    transfer: &StockTransfer,
    cost: Money,
    to: &Location,
    to_balance: Balance,
    out: LedgerEntry,
) -> Result<(LedgerEntry, LedgerEntry), StoreError> {
    let (inward, _) = post_locked(
        tx,
        transfer.item_id,
        cost,
        to,
        to_balance,
        Movement::TransferIn {
            quantity: transfer.quantity,
        },
        Links {
            counterpart_id: Some(out.id),
            transfer_id: Some(transfer.id),
            units: Some(&transfer.units),
            ..Links::default()
        },
    )
    .await?;
    let place = Place {
        location: Some(to.id),
        ..Place::default()
    };
    set_serials(
        tx,
        transfer.item_id,
        &transfer.units.serials,
        SerialStatus::InStock,
        place,
    )
    .await?;
    tx.execute(
        "UPDATE stock_ledger SET counterpart_id = $1 WHERE organization_id = $2 AND id = $3",
        args![inward.id, tx.org(), out.id],
    )
    .await?;
    let out = LedgerEntry {
        counterpart_id: Some(inward.id),
        ..out
    };
    Ok((out, inward))
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn insert_transfer(
    tx: &mut TenantTx,
    item: PricebookItemId,
    from: StockLocationId,
    to: StockLocationId,
    quantity: Quantity,
    status: TransferStatus,
    reorder_date: Option<chrono::NaiveDate>,
    units: Units,
) -> Result<StockTransfer, StoreError> {
    let now = tx.now();
    let transfer = StockTransfer {
        id: StockTransferId::from_uuid(new_id()),
        version: 1,
        item_id: item,
        from_location_id: from,
        to_location_id: to,
        quantity,
        status,
        reorder_date,
        units,
        created_at: now,
        updated_at: now,
    };
    let serials = (!transfer.units.serials.is_empty())
        .then(|| serde_json::to_string(&transfer.units.serials))
        .transpose()?;
    tx.execute(
        "INSERT INTO stock_transfers (organization_id, id, version, item_id, from_location_id, to_location_id, \
         quantity, status, reorder_date, created_at, updated_at, serials, lot) \
         VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11)",
        args![
            tx.org(),
            transfer.id.as_uuid(),
            item.as_uuid(),
            from.as_uuid(),
            to.as_uuid(),
            quantity.get().to_string(),
            status.as_str(),
            reorder_date,
            now,
            serials,
            transfer.units.lot.as_ref().map(|l| l.as_str())
        ],
    )
    .await?;
    tx.record_change(
        "stock_transfer",
        transfer.id.as_uuid(),
        1,
        Operation::Created,
    )
    .await?;
    Ok(transfer)
}

async fn set_transfer_status(
    tx: &mut TenantTx,
    transfer: &StockTransfer,
    status: TransferStatus,
) -> Result<StockTransfer, StoreError> {
    let now = tx.now();
    let version = transfer.version + 1;
    tx.execute(
        "UPDATE stock_transfers SET status = $1, version = $2, updated_at = $3 WHERE organization_id = $4 AND id = $5",
        args![status.as_str(), version, now, tx.org(), transfer.id.as_uuid()],
    )
    .await?;
    tx.record_change(
        "stock_transfer",
        transfer.id.as_uuid(),
        version,
        Operation::Transitioned,
    )
    .await?;
    Ok(StockTransfer {
        status,
        version,
        updated_at: now,
        ..transfer.clone()
    })
}

const TRANSFER_COLUMNS: &str = "id, version, item_id, from_location_id, to_location_id, quantity, status, \
     reorder_date, created_at, updated_at, serials, lot";

fn decode_transfer(row: &Row) -> Result<StockTransfer, StoreError> {
    Ok(StockTransfer {
        id: StockTransferId::from_uuid(row.get("id")?),
        version: row.get("version")?,
        item_id: PricebookItemId::from_uuid(row.get("item_id")?),
        from_location_id: StockLocationId::from_uuid(row.get("from_location_id")?),
        to_location_id: StockLocationId::from_uuid(row.get("to_location_id")?),
        quantity: Quantity::parse(decimal(row, "quantity")?)
            .map_err(|e| StoreError::Internal(format!("stored quantity: {}", e.message)))?,
        status: TransferStatus::parse(&row.get::<String>("status")?)?,
        reorder_date: row.get("reorder_date")?,
        units: Units {
            serials: decode_serials(row)?,
            lot: row
                .get::<Option<String>>("lot")?
                .map(|l| parse_stored(&l, TrackingCode::parse))
                .transpose()?,
        },
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

fn decode_serials(row: &Row) -> Result<Vec<TrackingCode>, StoreError> {
    Ok(match row.get::<Option<String>>("serials")? {
        Some(raw) => serde_json::from_str(&raw)?,
        None => Vec::new(),
    })
}

async fn load_transfer(
    tx: &mut TenantTx,
    id: StockTransferId,
) -> Result<StockTransfer, StoreError> {
    let org = tx.org();
    tx.fetch_optional(
        &format!(
            "SELECT {TRANSFER_COLUMNS} FROM stock_transfers WHERE organization_id = $1 AND id = $2{}",
            tx.for_update()
        ),
        args![org, id.as_uuid()],
    )
    .await?
    .map(|r| decode_transfer(&r))
    .transpose()?
    .ok_or_else(|| Failure::not_found("stock transfer").into())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TransferStep {
    Send,
    Receive,
    Cancel,
}

/// A drafted transfer leaves (`Send`), one in transit arrives (`Receive`), or either is called
/// off (`Cancel`: stock in transit goes back to its origin).
async fn move_transfer(
    tx: &mut TenantTx,
    r: TransferRef,
    step: TransferStep,
) -> Result<Posted, StoreError> {
    let mut transfer = load_transfer(tx, r.transfer_id).await?;
    // An archived material's transfers still arrive (or go back).
    let cost = item_cost(tx, transfer.item_id).await?;
    let from = load_location(tx, transfer.from_location_id).await?;
    let to = load_location(tx, transfer.to_location_id).await?;
    let sending = transfer.status == TransferStatus::Draft && step == TransferStep::Send;
    if !sending && r.units != Units::default() {
        return Err(Failure::invalid_field(
            "serials",
            "not_applicable",
            "units are named when a drafted transfer is sent, and only then",
        )
        .into());
    }
    let (from_balance, to_balance) = lock_two(tx, transfer.item_id, from.id, to.id).await?;
    if sending {
        // A draft names no units: they are named when it leaves.
        check_units(
            tx,
            transfer.item_id,
            transfer.quantity.get(),
            &r.units,
            false,
        )
        .await?;
    }
    let (entries, status) = match (transfer.status, step) {
        (TransferStatus::Draft, TransferStep::Send) => {
            take_serials(
                tx,
                transfer.item_id,
                &r.units.serials,
                Expect::InStockAt(from.id),
            )
            .await?;
            let serials = (!r.units.serials.is_empty())
                .then(|| serde_json::to_string(&r.units.serials))
                .transpose()?;
            tx.execute(
                "UPDATE stock_transfers SET serials = $1, lot = $2 WHERE organization_id = $3 AND id = $4",
                args![
                    serials,
                    r.units.lot.as_ref().map(|l| l.as_str()),
                    tx.org(),
                    transfer.id.as_uuid()
                ],
            )
            .await?;
            transfer.units = r.units;
            let (out, _) = post_locked(
                tx,
                transfer.item_id,
                cost,
                &from,
                from_balance,
                Movement::TransferOut {
                    quantity: transfer.quantity,
                },
                Links {
                    transfer_id: Some(transfer.id),
                    units: Some(&transfer.units),
                    ..Links::default()
                },
            )
            .await?;
            let place = Place {
                location: Some(from.id),
                transfer: Some(transfer.id),
                ..Place::default()
            };
            set_serials(
                tx,
                transfer.item_id,
                &transfer.units.serials,
                SerialStatus::InTransit,
                place,
            )
            .await?;
            (vec![out], TransferStatus::InTransit)
        }
        (TransferStatus::InTransit, TransferStep::Receive) => {
            take_serials(
                tx,
                transfer.item_id,
                &transfer.units.serials,
                Expect::InTransit(transfer.id),
            )
            .await?;
            let out = transfer_out_entry(tx, transfer.id).await?;
            let (out, inward) = arrive(tx, &transfer, cost, &to, to_balance, out).await?;
            (vec![out, inward], TransferStatus::Received)
        }
        (TransferStatus::Draft, TransferStep::Cancel) => (Vec::new(), TransferStatus::Cancelled),
        (TransferStatus::InTransit, TransferStep::Cancel) => {
            // Back where it came from.
            take_serials(
                tx,
                transfer.item_id,
                &transfer.units.serials,
                Expect::InTransit(transfer.id),
            )
            .await?;
            let out = transfer_out_entry(tx, transfer.id).await?;
            let (back, _) = post_locked(
                tx,
                transfer.item_id,
                cost,
                &from,
                from_balance,
                Movement::TransferIn {
                    quantity: transfer.quantity,
                },
                Links {
                    counterpart_id: Some(out.id),
                    transfer_id: Some(transfer.id),
                    units: Some(&transfer.units),
                    ..Links::default()
                },
            )
            .await?;
            tx.execute(
                "UPDATE stock_ledger SET counterpart_id = $1 WHERE organization_id = $2 AND id = $3",
                args![back.id, tx.org(), out.id],
            )
            .await?;
            let place = Place {
                location: Some(from.id),
                ..Place::default()
            };
            set_serials(
                tx,
                transfer.item_id,
                &transfer.units.serials,
                SerialStatus::InStock,
                place,
            )
            .await?;
            (vec![back], TransferStatus::Cancelled)
        }
        (status, _) => {
            return Err(Failure::new(
                FailureKind::Conflict,
                "TRANSFER_STATE",
                format!(
                    "the transfer is {}; it cannot be {}",
                    status.as_str(),
                    match step {
                        TransferStep::Send => "sent (only a draft is)",
                        TransferStep::Receive => "received (only one in transit is)",
                        TransferStep::Cancel => "cancelled (only a draft or one in transit is)",
                    }
                ),
            )
            .into());
        }
    };
    let transfer = set_transfer_status(tx, &transfer, status).await?;
    Ok(Posted {
        transfer: Some(transfer),
        ..posted(entries)
    })
}

async fn transfer_out_entry(
    tx: &mut TenantTx,
    transfer: StockTransferId,
) -> Result<LedgerEntry, StoreError> {
    let currency = crate::directory::load_organization(tx, false)
        .await?
        .currency;
    let org = tx.org();
    let row = tx
        .fetch_one(
            &format!(
                "SELECT {ENTRY_COLUMNS} FROM stock_ledger l WHERE l.organization_id = $1 AND l.transfer_id = $2 \
                 AND l.kind = 'transfer_out' ORDER BY l.id DESC LIMIT 1"
            ),
            args![org, transfer.as_uuid()],
        )
        .await?;
    decode_entry(&row, currency)
}

async fn adjust(tx: &mut TenantTx, a: Adjust) -> Result<Posted, StoreError> {
    let (_, cost) = stocked_item(tx, a.item_id).await?;
    let location = load_location(tx, a.location_id).await?;
    let balance = lock_balance(tx, a.item_id, location.id).await?;
    if matches!(a.by, AdjustBy::Count { .. })
        && tracking_of(tx, a.item_id).await? == Tracking::Serial
    {
        return Err(Failure::invalid_field(
            "mode",
            "serial_tracked",
            "a serial-tracked material is adjusted by its serials (delta), not counted",
        )
        .into());
    }
    let delta = match a.by {
        AdjustBy::Delta { delta } => delta,
        AdjustBy::Count { counted } => counted - balance.on_hand,
    };
    if delta.is_zero() {
        // A count that confirms what is on hand changes nothing and writes no row.
        return Ok(posted(Vec::new()));
    }
    if delta.abs() > core_inv::MAX_QUANTITY {
        return Err(Failure::invalid_field("quantity", "too_large", format!(
                "an adjustment changes the quantity on hand by at most {}; this count differs by {}",
                core_inv::MAX_QUANTITY,
                delta.normalize()
            ))
        .into());
    }
    check_units(tx, a.item_id, delta, &a.units, delta > Decimal::ZERO).await?;
    if delta > Decimal::ZERO {
        add_serials(tx, a.item_id, &a.units.serials, location.id).await?;
    } else {
        take_serials(
            tx,
            a.item_id,
            &a.units.serials,
            Expect::InStockAt(location.id),
        )
        .await?;
        let place = Place {
            location: Some(location.id),
            ..Place::default()
        };
        set_serials(
            tx,
            a.item_id,
            &a.units.serials,
            SerialStatus::Removed,
            place,
        )
        .await?;
    }
    let (entry, mut after) = post_locked(
        tx,
        a.item_id,
        cost,
        &location,
        balance,
        Movement::Adjustment { delta },
        Links {
            reason: Some(&a.reason),
            units: Some(&a.units),
            ..Links::default()
        },
    )
    .await?;
    let mut entries = vec![entry];
    // Stock that is not there cannot be held: the jobs holding more than is left let go of
    // the difference, the latest holds first.
    let org = tx.org();
    let holds = tx
        .fetch_all(
            "SELECT job_id, quantity FROM stock_reservations WHERE organization_id = $1 AND item_id = $2 \
             AND location_id = $3 ORDER BY updated_at DESC, job_id",
            args![org, a.item_id.as_uuid(), location.id.as_uuid()],
        )
        .await?;
    for hold in &holds {
        let excess = after.reserved - after.on_hand.max(Decimal::ZERO);
        let Ok(excess) = Quantity::parse(excess.min(decimal(hold, "quantity")?)) else {
            break;
        };
        let (release, next) = post_locked(
            tx,
            a.item_id,
            cost,
            &location,
            after,
            Movement::Release {
                quantity: excess,
                job_id: JobId::from_uuid(hold.get("job_id")?),
            },
            Links {
                reason: Some(&a.reason),
                ..Links::default()
            },
        )
        .await?;
        entries.push(release);
        after = next;
    }
    Ok(posted(entries))
}

/// The location a job's material comes from or goes back to: the one named, or the truck of
/// the job's technician.
async fn job_location(
    tx: &mut TenantTx,
    job: &hestami_core::job::Job,
    named: Option<StockLocationId>,
) -> Result<Location, StoreError> {
    if let Some(id) = named {
        return load_location(tx, id).await;
    }
    let Some(technician) = job.technician_id else {
        return Err(failure(
            "LOCATION_REQUIRED",
            "the job has no technician whose truck to use; name the location",
        ));
    };
    let org = tx.org();
    tx.fetch_optional(
        &format!(
            "SELECT {LOCATION_COLUMNS} FROM stock_locations WHERE organization_id = $1 AND technician_id = $2"
        ),
        args![org, technician.as_uuid()],
    )
    .await?
    .map(|r| decode_location(&r))
    .transpose()?
    .ok_or_else(|| {
        failure(
            "LOCATION_REQUIRED",
            "the job's technician has no truck; name the location",
        )
    })
}

fn item_line(item_id: PricebookItemId, quantity: Decimal) -> QuoteLine {
    QuoteLine {
        source: LineSource::Item {
            item_id,
            revision: None,
            skill_level: None,
            labor_time: None,
        },
        quantity,
        description: None,
    }
}

async fn record_usage(tx: &mut TenantTx, u: RecordUsage) -> Result<Posted, StoreError> {
    let (_, cost) = stocked_item(tx, u.item_id).await?;
    // The job first (locked; a closed job refuses), as every job change takes it.
    let job = super::job::load(tx, u.job_id, true).await?;
    let location = job_location(tx, &job, u.location_id).await?;
    let work = super::job::record_actuals(
        tx,
        super::job::RecordActuals {
            job_id: job.id,
            lines: vec![item_line(u.item_id, u.quantity.get())],
        },
    )
    .await?;
    let mut balance = lock_balance(tx, u.item_id, location.id).await?;
    check_units(tx, u.item_id, u.quantity.get(), &u.units, false).await?;
    take_serials(
        tx,
        u.item_id,
        &u.units.serials,
        Expect::InStockAt(location.id),
    )
    .await?;
    // Installed: the serials follow the job to its property.
    let place = Place {
        job: Some(job.id),
        property: Some(job.property_id),
        ..Place::default()
    };
    set_serials(tx, u.item_id, &u.units.serials, SerialStatus::Used, place).await?;
    let mut entries = Vec::with_capacity(2);
    // What the job holds there is used first: released, then taken.
    let held = held_by_job(tx, u.item_id, location.id, job.id).await?;
    if let Ok(drawn) = Quantity::parse(held.min(u.quantity.get())) {
        let (release, after) = post_locked(
            tx,
            u.item_id,
            cost,
            &location,
            balance,
            Movement::Release {
                quantity: drawn,
                job_id: job.id,
            },
            Links::default(),
        )
        .await?;
        entries.push(release);
        balance = after;
    }
    let (entry, _) = post_locked(
        tx,
        u.item_id,
        cost,
        &location,
        balance,
        Movement::Consumption {
            quantity: u.quantity,
            job_id: job.id,
        },
        Links {
            units: Some(&u.units),
            ..Links::default()
        },
    )
    .await?;
    entries.push(entry);
    Ok(Posted {
        work: Some(work),
        ..posted(entries)
    })
}

/// What `job` has used of `item` and not returned, by the ledger.
async fn used_by_job(
    tx: &mut TenantTx,
    item: PricebookItemId,
    job: JobId,
) -> Result<Decimal, StoreError> {
    let org = tx.org();
    let rows = tx
        .fetch_all(
            "SELECT delta FROM stock_ledger WHERE organization_id = $1 AND job_id = $2 AND item_id = $3 \
             AND kind IN ('consumption', 'return')",
            args![org, job.as_uuid(), item.as_uuid()],
        )
        .await?;
    let mut used = Decimal::ZERO;
    for row in &rows {
        used -= decimal(row, "delta")?;
    }
    Ok(used)
}

async fn return_usage(tx: &mut TenantTx, u: ReturnUsage) -> Result<Posted, StoreError> {
    let (_, cost) = stocked_item(tx, u.item_id).await?;
    let job = super::job::load(tx, u.job_id, true).await?;
    use hestami_core::job::JobStatus as S;
    match job.status {
        S::Closed | S::Cancelled => {
            return Err(Failure::new(
                FailureKind::Conflict,
                "JOB_CLOSED",
                "the job is closed; nothing on it changes",
            )
            .into());
        }
        S::Invoiced | S::Paid => {
            return Err(Failure::new(
                FailureKind::Conflict,
                "JOB_INVOICED",
                "the job's materials are invoiced: credit the invoice, then adjust the stock back in",
            )
            .into());
        }
        _ => {}
    }
    let used = used_by_job(tx, u.item_id, job.id).await?;
    if u.quantity.get() > used {
        return Err(failure(
            "RETURN_EXCEEDS_USAGE",
            format!(
                "the job has used {} of the material and not returned it; {} cannot come back",
                used.normalize(),
                u.quantity.get()
            ),
        ));
    }
    let location = job_location(tx, &job, u.location_id).await?;
    // Off the job's actuals, newest lines first, so the invoice bills what stayed.
    let org = tx.org();
    let rows = tx
        .fetch_all(
            "SELECT id, line, recorded_at, recorded_by FROM job_actuals WHERE organization_id = $1 \
             AND job_id = $2 ORDER BY recorded_at DESC, id DESC",
            args![org, job.id.as_uuid()],
        )
        .await?;
    let mut left = u.quantity.get();
    let mut changes = Vec::new();
    for row in &rows {
        if left.is_zero() {
            break;
        }
        let mut line: QuoteLine = serde_json::from_str(&row.get::<String>("line")?)?;
        let LineSource::Item { item_id, .. } = &line.source else {
            continue;
        };
        if *item_id != u.item_id {
            continue;
        }
        // The line goes; what stays of it is a new line in its place (same time, same author),
        // so every change-feed entry names a version once.
        let id: uuid::Uuid = row.get("id")?;
        tx.execute(
            "DELETE FROM job_actuals WHERE organization_id = $1 AND id = $2",
            args![org, id],
        )
        .await?;
        changes.push((id, 2, Operation::Deleted));
        if line.quantity <= left {
            left -= line.quantity;
        } else {
            line.quantity -= left;
            left = Decimal::ZERO;
            let kept = new_id();
            tx.execute(
                "INSERT INTO job_actuals (organization_id, id, job_id, line, recorded_at, recorded_by) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                args![
                    org,
                    kept,
                    job.id.as_uuid(),
                    serde_json::to_string(&line)?,
                    row.get::<DateTime<Utc>>("recorded_at")?,
                    row.get::<Option<uuid::Uuid>>("recorded_by")?
                ],
            )
            .await?;
            changes.push((kept, 1, Operation::Created));
        }
    }
    tx.record_changes("job_actual", &changes).await?;
    let balance = lock_balance(tx, u.item_id, location.id).await?;
    check_units(tx, u.item_id, u.quantity.get(), &u.units, false).await?;
    take_serials(tx, u.item_id, &u.units.serials, Expect::UsedOn(job.id)).await?;
    let place = Place {
        location: Some(location.id),
        ..Place::default()
    };
    set_serials(
        tx,
        u.item_id,
        &u.units.serials,
        SerialStatus::InStock,
        place,
    )
    .await?;
    let (entry, _) = post_locked(
        tx,
        u.item_id,
        cost,
        &location,
        balance,
        Movement::Return {
            quantity: u.quantity,
            job_id: job.id,
        },
        Links {
            units: Some(&u.units),
            ..Links::default()
        },
    )
    .await?;
    let work = super::job::work_of(tx, job.id).await?;
    Ok(Posted {
        work: Some(work),
        ..posted(vec![entry])
    })
}

async fn reserve(tx: &mut TenantTx, h: Hold) -> Result<Posted, StoreError> {
    let (_, cost) = stocked_item(tx, h.item_id).await?;
    let job = super::job::load(tx, h.job_id, true).await?;
    if matches!(
        job.status,
        hestami_core::job::JobStatus::Closed | hestami_core::job::JobStatus::Cancelled
    ) {
        return Err(Failure::new(
            FailureKind::Conflict,
            "JOB_CLOSED",
            "the job is closed; nothing is held for it",
        )
        .into());
    }
    let location = load_location(tx, h.location_id).await?;
    let quantity = h.quantity.ok_or_else(|| {
        StoreError::from(Failure::invalid_field(
            "quantity",
            "required",
            "say how much to hold",
        ))
    })?;
    let balance = lock_balance(tx, h.item_id, location.id).await?;
    let (entry, _) = post_locked(
        tx,
        h.item_id,
        cost,
        &location,
        balance,
        Movement::Reservation {
            quantity,
            job_id: job.id,
        },
        Links::default(),
    )
    .await?;
    Ok(posted(vec![entry]))
}

async fn release(tx: &mut TenantTx, h: Hold) -> Result<Posted, StoreError> {
    let (_, cost) = stocked_item(tx, h.item_id).await?;
    super::job::load(tx, h.job_id, false).await?;
    let location = load_location(tx, h.location_id).await?;
    let balance = lock_balance(tx, h.item_id, location.id).await?;
    let held = held_by_job(tx, h.item_id, location.id, h.job_id).await?;
    let quantity = match h.quantity {
        Some(q) => q,
        None => match Quantity::parse(held) {
            Ok(q) => q,
            // Nothing held: nothing to let go.
            Err(_) => return Ok(posted(Vec::new())),
        },
    };
    if quantity.get() > held {
        return Err(Failure::new(
            FailureKind::RuleViolation,
            "RELEASE_EXCEEDS_RESERVED",
            format!(
                "the job holds {} here; {} cannot be released",
                held.normalize(),
                quantity.get()
            ),
        )
        .with_details(serde_json::json!({
            "reserved": held.normalize().to_string(),
            "locationId": location.id,
        }))
        .into());
    }
    let (entry, _) = post_locked(
        tx,
        h.item_id,
        cost,
        &location,
        balance,
        Movement::Release {
            quantity,
            job_id: h.job_id,
        },
        Links::default(),
    )
    .await?;
    Ok(posted(vec![entry]))
}

const ENTRY_COLUMNS: &str = "l.id, l.item_id, l.location_id, l.kind, l.delta, l.unit_cost, l.on_hand_after, \
     l.job_id, l.counterpart_id, l.reason, l.actor_user_id, l.at, l.reserved_delta, l.transfer_id, l.purchase_order_id, \
     l.serials, l.lot";

fn decode_entry(
    row: &Row,
    currency: hestami_core::org::Currency,
) -> Result<LedgerEntry, StoreError> {
    Ok(LedgerEntry {
        id: row.get("id")?,
        item_id: PricebookItemId::from_uuid(row.get("item_id")?),
        location_id: StockLocationId::from_uuid(row.get("location_id")?),
        kind: row.get("kind")?,
        delta: decimal(row, "delta")?,
        unit_cost: Money::new(decimal(row, "unit_cost")?, currency),
        on_hand_after: decimal(row, "on_hand_after")?,
        job_id: row
            .get::<Option<uuid::Uuid>>("job_id")?
            .map(JobId::from_uuid),
        counterpart_id: row.get("counterpart_id")?,
        reason: row.get("reason")?,
        actor_user_id: row.get("actor_user_id")?,
        at: row.get("at")?,
        reserved_delta: decimal(row, "reserved_delta")?,
        transfer_id: row
            .get::<Option<uuid::Uuid>>("transfer_id")?
            .map(StockTransferId::from_uuid),
        purchase_order_id: row
            .get::<Option<uuid::Uuid>>("purchase_order_id")?
            .map(PurchaseOrderId::from_uuid),
        serials: decode_serials(row)?,
        lot: row
            .get::<Option<String>>("lot")?
            .map(|l| parse_stored(&l, TrackingCode::parse))
            .transpose()?,
    })
}

/// What `inventory/v1/stock` lists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StockFilter {
    /// Only this material.
    pub item_id: Option<PricebookItemId>,
    /// Only this location.
    pub location_id: Option<StockLocationId>,
    /// Only warehouses, or only trucks.
    pub location_kind: Option<LocationKind>,
    /// Only this technician's truck.
    pub technician_id: Option<TechnicianId>,
}

/// Stock on its way between two locations, at the average cost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InTransit {
    /// The transfers in transit.
    pub transfers: Vec<StockTransfer>,
    /// Their value at the average cost, rounded.
    pub value: Money,
}

/// A job's materials from stock: each consumption and return, at the cost it moved at, beside
/// the price its actuals bill.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobUsage {
    /// The job.
    pub job_id: JobId,
    /// The ledger rows (consumptions and returns), oldest first.
    pub entries: Vec<LedgerEntry>,
    /// Per material: used less returned, its cost at the moving average, and the price billed.
    pub items: Vec<JobUsageItem>,
    /// The materials' cost, rounded.
    pub cost: Money,
}

/// One material of [`JobUsage`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobUsageItem {
    /// The material.
    pub item_id: PricebookItemId,
    /// Used less returned.
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: Decimal,
    /// What it cost at the averages it left at, rounded.
    pub cost: Money,
}

impl Services {
    /// `inventory/v1/listLocations`: every location, by creation.
    pub async fn inventory_locations(&self, caller: &Caller) -> Result<Vec<Location>, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let org = tx.org();
                tx.fetch_all(
                    &format!("SELECT {LOCATION_COLUMNS} FROM stock_locations WHERE organization_id = $1 ORDER BY id"),
                    args![org],
                )
                .await?
                .iter()
                .map(decode_location)
                .collect()
            })
        })
        .await
    }

    /// `inventory/v1/stock`: on hand per item and location, with the average cost and value.
    pub async fn inventory_stock(
        &self,
        caller: &Caller,
        filter: StockFilter,
    ) -> Result<Vec<StockLevel>, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let currency = crate::directory::load_organization(tx, false).await?.currency;
                let org = tx.org();
                let rows = tx
                    .fetch_all(
                        "SELECT b.item_id, i.name, b.location_id, l.name AS location_name, l.kind, l.technician_id, \
                         b.on_hand, b.reserved, c.average FROM stock_balances b \
                         JOIN stock_costs c ON c.organization_id = b.organization_id AND c.item_id = b.item_id \
                         JOIN pricebook_items i ON i.organization_id = b.organization_id AND i.id = b.item_id \
                         JOIN stock_locations l ON l.organization_id = b.organization_id AND l.id = b.location_id \
                         WHERE b.organization_id = $1 AND ($2 IS NULL OR b.item_id = $2) \
                         AND ($3 IS NULL OR b.location_id = $3) AND ($4 IS NULL OR l.kind = $4) \
                         AND ($5 IS NULL OR l.technician_id = $5) ORDER BY b.item_id, b.location_id",
                        args![
                            org,
                            filter.item_id.map(|i| i.as_uuid()),
                            filter.location_id.map(|l| l.as_uuid()),
                            filter.location_kind.map(LocationKind::as_str),
                            filter.technician_id.map(|t| t.as_uuid())
                        ],
                    )
                    .await?;
                rows.iter()
                    .map(|r| {
                        let on_hand = decimal(r, "on_hand")?;
                        let average = Money::new(decimal(r, "average")?, currency);
                        Ok(StockLevel {
                            item_id: PricebookItemId::from_uuid(r.get("item_id")?),
                            item_name: r.get("name")?,
                            location_id: StockLocationId::from_uuid(r.get("location_id")?),
                            location_name: r.get("location_name")?,
                            location_kind: if r.get::<String>("kind")? == "truck" {
                                LocationKind::Truck
                            } else {
                                LocationKind::Warehouse
                            },
                            technician_id: r
                                .get::<Option<uuid::Uuid>>("technician_id")?
                                .map(TechnicianId::from_uuid),
                            on_hand,
                            reserved: decimal(r, "reserved")?,
                            average_cost: average,
                            value: Money::new(on_hand * average.amount(), currency).round(),
                        })
                    })
                    .collect()
            })
        })
        .await
    }

    /// `inventory/v1/ledger`: the movements of a material (at one location, or all), oldest
    /// first, paged.
    pub async fn inventory_ledger(
        &self,
        caller: &Caller,
        item_id: PricebookItemId,
        location_id: Option<StockLocationId>,
        page: PageRequest,
    ) -> Result<Page<LedgerEntry>, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let currency = crate::directory::load_organization(tx, false).await?.currency;
                // Any item of the organization (an archived material keeps its history).
                super::pricebook::load_item(tx, item_id, false).await?;
                let org = tx.org();
                let rows = tx
                    .fetch_all(
                        &format!(
                            "SELECT {ENTRY_COLUMNS} FROM stock_ledger l WHERE l.organization_id = $1 AND l.item_id = $2 \
                             AND ($3 IS NULL OR l.location_id = $3) AND ($4 IS NULL OR l.id > $4) ORDER BY l.id LIMIT $5"
                        ),
                        args![
                            org,
                            item_id.as_uuid(),
                            location_id.map(|l| l.as_uuid()),
                            page.after,
                            i64::from(page.limit) + 1
                        ],
                    )
                    .await?;
                let items = rows
                    .iter()
                    .map(|r| decode_entry(r, currency))
                    .collect::<Result<Vec<_>, StoreError>>()?;
                Ok(page.page(items, |e| e.id))
            })
        })
        .await
    }

    /// `inventory/v1/transfers`: transfers (in a status, or all), newest first, paged.
    pub async fn inventory_transfers(
        &self,
        caller: &Caller,
        status: Option<TransferStatus>,
        page: PageRequest,
    ) -> Result<Page<StockTransfer>, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let org = tx.org();
                let rows = tx
                    .fetch_all(
                        &format!(
                            "SELECT {TRANSFER_COLUMNS} FROM stock_transfers WHERE organization_id = $1 \
                             AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR id > $3) ORDER BY id LIMIT $4"
                        ),
                        args![
                            org,
                            status.map(TransferStatus::as_str),
                            page.after,
                            i64::from(page.limit) + 1
                        ],
                    )
                    .await?;
                let items = rows
                    .iter()
                    .map(decode_transfer)
                    .collect::<Result<Vec<_>, StoreError>>()?;
                Ok(page.page(items, |t| t.id.as_uuid()))
            })
        })
        .await
    }

    /// The stock in transit (of one material, or all) and its value (part of the valuation).
    pub async fn inventory_in_transit(
        &self,
        caller: &Caller,
        item_id: Option<PricebookItemId>,
    ) -> Result<InTransit, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let currency = crate::directory::load_organization(tx, false).await?.currency;
                let org = tx.org();
                let rows = tx
                    .fetch_all(
                        "SELECT t.id, t.version, t.item_id, t.from_location_id, t.to_location_id, t.quantity, t.status, \
                         t.reorder_date, t.created_at, t.updated_at, t.serials, t.lot, c.average FROM stock_transfers t \
                         JOIN stock_costs c ON c.organization_id = t.organization_id AND c.item_id = t.item_id \
                         WHERE t.organization_id = $1 AND t.status = 'in_transit' AND ($2 IS NULL OR t.item_id = $2) \
                         ORDER BY t.id",
                        args![org, item_id.map(|i| i.as_uuid())],
                    )
                    .await?;
                let mut value = Decimal::ZERO;
                let mut transfers = Vec::with_capacity(rows.len());
                for row in &rows {
                    let t = decode_transfer(row)?;
                    value += t.quantity.get() * decimal(row, "average")?;
                    transfers.push(t);
                }
                Ok(InTransit {
                    transfers,
                    value: Money::new(value, currency).round(),
                })
            })
        })
        .await
    }

    /// `inventory/v1/jobUsage`: what a job took from stock and gave back, at cost.
    pub async fn inventory_job_usage(
        &self,
        caller: &Caller,
        job_id: JobId,
    ) -> Result<JobUsage, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let currency = crate::directory::load_organization(tx, false).await?.currency;
                super::job::load(tx, job_id, false).await?;
                let org = tx.org();
                let rows = tx
                    .fetch_all(
                        &format!(
                            "SELECT {ENTRY_COLUMNS} FROM stock_ledger l WHERE l.organization_id = $1 AND l.job_id = $2 \
                             AND l.kind IN ('consumption', 'return') ORDER BY l.id"
                        ),
                        args![org, job_id.as_uuid()],
                    )
                    .await?;
                let entries = rows
                    .iter()
                    .map(|r| decode_entry(r, currency))
                    .collect::<Result<Vec<_>, StoreError>>()?;
                let mut items: Vec<JobUsageItem> = Vec::new();
                let mut cost = Decimal::ZERO;
                for e in &entries {
                    // Used is positive: a consumption's delta is negative.
                    let quantity = -e.delta;
                    let line_cost = quantity * e.unit_cost.amount();
                    cost += line_cost;
                    match items.iter_mut().find(|i| i.item_id == e.item_id) {
                        Some(i) => {
                            i.quantity += quantity;
                            i.cost = Money::new(i.cost.amount() + line_cost, currency);
                        }
                        None => items.push(JobUsageItem {
                            item_id: e.item_id,
                            quantity,
                            cost: Money::new(line_cost, currency),
                        }),
                    }
                }
                for i in &mut items {
                    i.cost = i.cost.round();
                }
                Ok(JobUsage {
                    job_id,
                    entries,
                    items,
                    cost: Money::new(cost, currency).round(),
                })
            })
        })
        .await
    }

    /// `inventory/v1/serials`: serial-numbered units, by material and serial (at most
    /// [`MAX_SERIALS_LISTED`]): where each is, or the job and property it was installed at.
    pub async fn inventory_serials(
        &self,
        caller: &Caller,
        filter: SerialFilter,
    ) -> Result<Vec<SerialUnit>, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                if let Some(item) = filter.item_id {
                    super::pricebook::load_item(tx, item, false).await?;
                }
                if let Some(job) = filter.job_id {
                    super::job::load(tx, job, false).await?;
                }
                let org = tx.org();
                let rows = tx
                    .fetch_all(
                        "SELECT item_id, serial, status, location_id, job_id, property_id, transfer_id, updated_at \
                         FROM stock_serials WHERE organization_id = $1 AND ($2 IS NULL OR item_id = $2) \
                         AND ($3 IS NULL OR job_id = $3) AND ($4 IS NULL OR property_id = $4) \
                         ORDER BY item_id, serial LIMIT $5",
                        args![
                            org,
                            filter.item_id.map(|i| i.as_uuid()),
                            filter.job_id.map(|j| j.as_uuid()),
                            filter.property_id.map(|p| p.as_uuid()),
                            i64::try_from(MAX_SERIALS_LISTED).unwrap_or(i64::MAX)
                        ],
                    )
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok(SerialUnit {
                            item_id: PricebookItemId::from_uuid(r.get("item_id")?),
                            serial: parse_stored(&r.get::<String>("serial")?, TrackingCode::parse)?,
                            status: SerialStatus::parse(&r.get::<String>("status")?)?,
                            location_id: r
                                .get::<Option<uuid::Uuid>>("location_id")?
                                .map(StockLocationId::from_uuid),
                            job_id: r.get::<Option<uuid::Uuid>>("job_id")?.map(JobId::from_uuid),
                            property_id: r
                                .get::<Option<uuid::Uuid>>("property_id")?
                                .map(hestami_core::ids::PropertyId::from_uuid),
                            transfer_id: r
                                .get::<Option<uuid::Uuid>>("transfer_id")?
                                .map(StockTransferId::from_uuid),
                            updated_at: r.get("updated_at")?,
                        })
                    })
                    .collect()
            })
        })
        .await
    }
}
