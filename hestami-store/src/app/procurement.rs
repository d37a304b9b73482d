//! Procurement (`inventory/v1`, workflow `procurement_v1`): suppliers and what they sell,
//! reorder points and the daily reorder pass, purchase orders and receiving against them, and
//! supplier bills with their three-way match. The rules are `hestami_core::inventory::procurement`.
//!
//! **Receiving posts to the stock ledger** in the receipt's transaction: each line a receipt at
//! the line's unit cost (moving the average), its ledger row naming the order. A special order
//! (an order for a job) reserves what arrives for that job. The balances are locked in item
//! order before any is posted, so two receipts of overlapping orders never wait on each other
//! in a cycle.
//!
//! **The reorder pass** runs once a day per organization, started by the `inventory_reorder`
//! timer with the organization's local date as its idempotency key: however many processes
//! fire it and however often a crash repeats it, one workflow per day drafts what falls below a
//! reorder point — one purchase order per preferred supplier and delivery location, or a
//! transfer from the point's source warehouse — and the unique indexes on
//! `(…, reorder_date)` refuse a second. A location's position counts what is available there
//! and what is on its way (open orders to it, transfers to it), so tomorrow's pass does not
//! order again what today's ordered.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use hestami_core::ids::{
    JobId, PricebookItemId, PurchaseOrderId, StockLocationId, StockTransferId, SupplierBillId,
    SupplierId,
};
use hestami_core::inventory::procurement::{
    self as rules, Mismatch, PurchaseOrderAction, PurchaseOrderStatus, ReorderLevel,
};
use hestami_core::inventory::{Movement, Quantity, Units};
use hestami_core::money::Money;
use hestami_core::org::Currency;
use hestami_core::text::{Email, Name, Phone, Reason};

use super::inventory::{LedgerEntry, Links, TransferStatus, decimal, lock_balance, post_locked};
use super::{Caller, Command, Page, PageRequest, Services};
use crate::db::{Row, args};
use crate::directory::parse_stored;
use crate::engine::WorkflowCtx;
use crate::error::{Failure, FailureKind, FieldError, StoreError};
use crate::store::{Operation, TenantTx, new_id};

/// The workflow behind every procurement change.
pub const WORKFLOW: &str = "procurement_v1";
/// The daily timer that starts the reorder pass.
pub const REORDER_TIMER: &str = "inventory_reorder";
const REORDER_PROCEDURE: &str = "timer/inventory_reorder";
/// The most lines a purchase order or a bill holds.
pub const MAX_ORDER_LINES: usize = 200;

/// `inventory/v1/createSupplier`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewSupplier {
    /// Its name.
    pub name: Name,
    /// Who to talk to.
    pub contact_name: Option<Name>,
    /// Where orders go.
    pub email: Option<Email>,
    /// Its phone.
    pub phone: Option<Phone>,
    /// Days it gives to pay a bill.
    pub payment_terms_days: u16,
}

/// A supplier and what it sells.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Supplier {
    /// Its id.
    pub id: SupplierId,
    /// 1 on creation.
    pub version: i64,
    /// Its name.
    pub name: Name,
    /// Who to talk to.
    pub contact_name: Option<Name>,
    /// Where orders go.
    pub email: Option<Email>,
    /// Its phone.
    pub phone: Option<Phone>,
    /// Days it gives to pay a bill.
    pub payment_terms_days: u16,
    /// The materials it sells.
    pub items: Vec<SupplierItem>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// `inventory/v1/setSupplierItem`: what a supplier sells of a material, and on what terms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SupplierItem {
    /// The supplier.
    pub supplier_id: SupplierId,
    /// The material.
    pub item_id: PricebookItemId,
    /// The supplier's part number.
    pub part_number: Option<Name>,
    /// It sells whole packs of this many.
    pub pack_size: Option<Quantity>,
    /// What it last charged for one unit (receipts update it).
    pub last_price: Option<Money>,
    /// Days from order to delivery.
    pub lead_time_days: Option<u16>,
    /// Whether the reorder pass orders the material from it (one supplier per material).
    pub preferred: bool,
}

/// `inventory/v1/setReorderPoint`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetReorderPoint {
    /// The material.
    pub item_id: PricebookItemId,
    /// Where.
    pub location_id: StockLocationId,
    /// Keep between min and max.
    pub level: ReorderLevel,
    /// Replenish from this location (a truck from its warehouse); none: from the preferred
    /// supplier.
    pub source_location_id: Option<StockLocationId>,
}

/// A reorder point and where its location stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReorderPoint {
    /// The material.
    pub item_id: PricebookItemId,
    /// Its name.
    pub item_name: String,
    /// Where.
    pub location_id: StockLocationId,
    /// Keep between min and max.
    pub level: ReorderLevel,
    /// Replenished from this location, or (none) the preferred supplier.
    pub source_location_id: Option<StockLocationId>,
    /// On hand less reserved.
    #[serde(with = "rust_decimal::serde::str")]
    pub available: Decimal,
    /// On its way: open purchase order lines to the location, transfers to it.
    #[serde(with = "rust_decimal::serde::str")]
    pub incoming: Decimal,
    /// What the pass would order now (none: at or above min).
    pub suggested: Option<Quantity>,
}

/// A line of a new purchase order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewOrderLine {
    /// The material.
    pub item_id: PricebookItemId,
    /// How much.
    pub quantity: Quantity,
    /// What one unit costs (default: the supplier's last price, else the pricebook's cost).
    pub unit_cost: Option<Money>,
}

/// `inventory/v1/createPurchaseOrder`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewPurchaseOrder {
    /// The supplier.
    pub supplier_id: SupplierId,
    /// Delivered to (receipts go here unless another location is named).
    pub location_id: StockLocationId,
    /// A special order: what arrives is reserved for this job.
    pub job_id: Option<JobId>,
    /// What is ordered.
    pub lines: Vec<NewOrderLine>,
}

/// A purchase order named by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderRef {
    /// The order.
    pub purchase_order_id: PurchaseOrderId,
}

/// `inventory/v1/cancelPurchaseOrder`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelOrder {
    /// The order.
    pub purchase_order_id: PurchaseOrderId,
    /// Why.
    pub reason: Reason,
}

/// One line received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceivedLine {
    /// The order's line number.
    pub line: u32,
    /// How much arrived.
    pub quantity: Quantity,
    /// The serial numbers (a serial-tracked material) or the lot (a lot-tracked one).
    #[serde(default)]
    pub units: Units,
}

/// `inventory/v1/receivePurchaseOrder`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiveOrder {
    /// The order.
    pub purchase_order_id: PurchaseOrderId,
    /// Into where (default: the order's location).
    pub location_id: Option<StockLocationId>,
    /// What arrived (each line at most once).
    pub lines: Vec<ReceivedLine>,
    /// Whether more than a line ordered may be received.
    pub allow_over_receipt: bool,
}

/// One line of a supplier's bill.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BillLine {
    /// The order's line number.
    pub line: u32,
    /// How much is billed.
    pub quantity: Quantity,
    /// At what unit price.
    pub unit_cost: Money,
}

/// `inventory/v1/recordSupplierBill`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewBill {
    /// The order billed.
    pub purchase_order_id: PurchaseOrderId,
    /// The supplier's bill number (once per order).
    pub number: Name,
    /// What it bills.
    pub lines: Vec<BillLine>,
}

/// The daily reorder pass of an organization's local `date`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReorderPass {
    /// The organization's local date.
    pub date: NaiveDate,
}

/// The procurement procedures, and the reorder pass.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "procedure", content = "input")]
pub enum ProcurementCommand {
    /// `inventory/v1/createSupplier`.
    #[serde(rename = "inventory/v1/createSupplier")]
    CreateSupplier(NewSupplier),
    /// `inventory/v1/setSupplierItem`.
    #[serde(rename = "inventory/v1/setSupplierItem")]
    SetSupplierItem(SupplierItem),
    /// `inventory/v1/setReorderPoint`.
    #[serde(rename = "inventory/v1/setReorderPoint")]
    SetReorderPoint(SetReorderPoint),
    /// `inventory/v1/createPurchaseOrder`.
    #[serde(rename = "inventory/v1/createPurchaseOrder")]
    CreatePurchaseOrder(NewPurchaseOrder),
    /// `inventory/v1/submitPurchaseOrder`.
    #[serde(rename = "inventory/v1/submitPurchaseOrder")]
    SubmitPurchaseOrder(OrderRef),
    /// `inventory/v1/receivePurchaseOrder`.
    #[serde(rename = "inventory/v1/receivePurchaseOrder")]
    ReceivePurchaseOrder(ReceiveOrder),
    /// `inventory/v1/cancelPurchaseOrder`.
    #[serde(rename = "inventory/v1/cancelPurchaseOrder")]
    CancelPurchaseOrder(CancelOrder),
    /// `inventory/v1/closePurchaseOrder`.
    #[serde(rename = "inventory/v1/closePurchaseOrder")]
    ClosePurchaseOrder(OrderRef),
    /// `inventory/v1/recordSupplierBill`.
    #[serde(rename = "inventory/v1/recordSupplierBill")]
    RecordSupplierBill(NewBill),
    /// The daily reorder pass.
    #[serde(rename = "timer/inventory_reorder")]
    Reorder(ReorderPass),
}

impl Command for ProcurementCommand {
    const WORKFLOW: &'static str = WORKFLOW;
    fn procedure(&self) -> &'static str {
        match self {
            Self::CreateSupplier(_) => "inventory/v1/createSupplier",
            Self::SetSupplierItem(_) => "inventory/v1/setSupplierItem",
            Self::SetReorderPoint(_) => "inventory/v1/setReorderPoint",
            Self::CreatePurchaseOrder(_) => "inventory/v1/createPurchaseOrder",
            Self::SubmitPurchaseOrder(_) => "inventory/v1/submitPurchaseOrder",
            Self::ReceivePurchaseOrder(_) => "inventory/v1/receivePurchaseOrder",
            Self::CancelPurchaseOrder(_) => "inventory/v1/cancelPurchaseOrder",
            Self::ClosePurchaseOrder(_) => "inventory/v1/closePurchaseOrder",
            Self::RecordSupplierBill(_) => "inventory/v1/recordSupplierBill",
            Self::Reorder(_) => REORDER_PROCEDURE,
        }
    }
}

/// A line of a purchase order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderLine {
    /// Its number, from 1.
    pub line: u32,
    /// The material.
    pub item_id: PricebookItemId,
    /// How much was ordered.
    pub quantity: Quantity,
    /// What one unit costs.
    pub unit_cost: Money,
    /// How much has arrived.
    #[serde(with = "rust_decimal::serde::str")]
    pub received: Decimal,
    /// How much has been billed.
    #[serde(with = "rust_decimal::serde::str")]
    pub billed: Decimal,
}

/// A mismatch on one line of a bill.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineMismatch {
    /// The order's line.
    pub line: u32,
    /// What differs.
    pub mismatch: Mismatch,
}

/// A supplier's bill and its three-way match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SupplierBill {
    /// Its id.
    pub id: SupplierBillId,
    /// The order.
    pub purchase_order_id: PurchaseOrderId,
    /// The supplier's number.
    pub number: String,
    /// What it bills.
    pub lines: Vec<BillLine>,
    /// Its total, rounded.
    pub total: Money,
    /// What differs from the order and the receipts (empty: it matches).
    pub mismatches: Vec<LineMismatch>,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
}

/// A purchase order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PurchaseOrder {
    /// Its id.
    pub id: PurchaseOrderId,
    /// Bumped by each change.
    pub version: i64,
    /// `PO-000001`, from the organization's own sequence.
    pub number: String,
    /// The supplier.
    pub supplier_id: SupplierId,
    /// Delivered to.
    pub location_id: StockLocationId,
    /// The job of a special order.
    pub job_id: Option<JobId>,
    /// Where it is in its life.
    pub status: PurchaseOrderStatus,
    /// The reorder pass's day that drafted it.
    pub reorder_date: Option<NaiveDate>,
    /// Its lines.
    pub lines: Vec<OrderLine>,
    /// Σ quantity × unit cost, rounded.
    pub total: Money,
    /// The bills recorded against it.
    pub bills: Vec<SupplierBill>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was sent to the supplier.
    pub submitted_at: Option<DateTime<Utc>>,
    /// Why it was called off.
    #[serde(default)]
    pub cancel_reason: Option<String>,
}

/// What a receipt did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Received {
    /// The order after it.
    pub purchase_order: PurchaseOrder,
    /// The ledger rows (a receipt per line, and a reservation per line of a special order).
    pub entries: Vec<LedgerEntry>,
}

/// What a day's reorder pass drafted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReorderReport {
    /// The day.
    pub date: Option<NaiveDate>,
    /// Purchase orders drafted (one per preferred supplier and location).
    pub purchase_orders: Vec<PurchaseOrderId>,
    /// Transfers drafted from source locations.
    pub transfers: Vec<StockTransferId>,
    /// Materials below their point with no preferred supplier and no source location.
    pub unsourced: Vec<PricebookItemId>,
}

pub(crate) async fn run(
    mut ctx: WorkflowCtx,
    command: ProcurementCommand,
) -> Result<serde_json::Value, StoreError> {
    use ProcurementCommand as C;
    Ok(match command {
        C::CreateSupplier(n) => serde_json::to_value(
            ctx.step("create_supplier", move |tx| {
                Box::pin(create_supplier(tx, n))
            })
            .await?,
        )?,
        C::SetSupplierItem(i) => serde_json::to_value(
            ctx.step("set_supplier_item", move |tx| {
                Box::pin(set_supplier_item(tx, i))
            })
            .await?,
        )?,
        C::SetReorderPoint(p) => serde_json::to_value(
            ctx.step("set_reorder_point", move |tx| {
                Box::pin(set_reorder_point(tx, p))
            })
            .await?,
        )?,
        C::CreatePurchaseOrder(n) => serde_json::to_value(
            ctx.step("create_purchase_order", move |tx| {
                Box::pin(create_order(tx, n, None))
            })
            .await?,
        )?,
        C::SubmitPurchaseOrder(r) => serde_json::to_value(
            ctx.step("submit_purchase_order", move |tx| {
                Box::pin(submit_order(tx, r.purchase_order_id))
            })
            .await?,
        )?,
        C::ReceivePurchaseOrder(r) => serde_json::to_value(
            ctx.step("receive_purchase_order", move |tx| {
                Box::pin(receive_order(tx, r))
            })
            .await?,
        )?,
        C::CancelPurchaseOrder(c) => serde_json::to_value(
            ctx.step("cancel_purchase_order", move |tx| {
                Box::pin(async move {
                    let order = end_order(tx, c.purchase_order_id, PurchaseOrderAction::Cancel)
                        .await?;
                    tx.execute(
                        "UPDATE purchase_orders SET cancel_reason = $1 WHERE organization_id = $2 AND id = $3",
                        args![c.reason.as_str(), tx.org(), order.id.as_uuid()],
                    )
                    .await?;
                    Ok(PurchaseOrder {
                        cancel_reason: Some(c.reason.as_str().to_owned()),
                        ..order
                    })
                })
            })
            .await?,
        )?,
        C::ClosePurchaseOrder(r) => serde_json::to_value(
            ctx.step("close_purchase_order", move |tx| {
                Box::pin(end_order(
                    tx,
                    r.purchase_order_id,
                    PurchaseOrderAction::Close,
                ))
            })
            .await?,
        )?,
        C::RecordSupplierBill(b) => serde_json::to_value(
            ctx.step("record_supplier_bill", move |tx| {
                Box::pin(record_bill(tx, b))
            })
            .await?,
        )?,
        C::Reorder(p) => serde_json::to_value(
            ctx.step("reorder", move |tx| Box::pin(reorder(tx, p.date)))
                .await?,
        )?,
    })
}

fn order_failure(e: rules::PurchaseOrderError) -> StoreError {
    let kind = match e {
        rules::PurchaseOrderError::InvalidTransition { .. } => FailureKind::Conflict,
        _ => FailureKind::RuleViolation,
    };
    Failure::new(kind, e.code(), e.to_string()).into()
}

async fn currency(tx: &mut TenantTx) -> Result<Currency, StoreError> {
    Ok(crate::directory::load_organization(tx, false)
        .await?
        .currency)
}

// ---- suppliers ----

const SUPPLIER_COLUMNS: &str =
    "id, version, name, contact_name, email, phone, payment_terms_days, created_at";

fn decode_supplier(row: &Row) -> Result<Supplier, StoreError> {
    let optional = |column: &str| -> Result<Option<String>, StoreError> { row.get(column) };
    Ok(Supplier {
        id: SupplierId::from_uuid(row.get("id")?),
        version: row.get("version")?,
        name: parse_stored(&row.get::<String>("name")?, Name::parse)?,
        contact_name: optional("contact_name")?
            .map(|n| parse_stored(&n, Name::parse))
            .transpose()?,
        email: optional("email")?
            .map(|e| parse_stored(&e, Email::parse))
            .transpose()?,
        phone: optional("phone")?
            .map(|p| parse_stored(&p, Phone::parse))
            .transpose()?,
        payment_terms_days: u16::try_from(row.get::<i64>("payment_terms_days")?).unwrap_or(0),
        items: Vec::new(),
        created_at: row.get("created_at")?,
    })
}

async fn create_supplier(tx: &mut TenantTx, n: NewSupplier) -> Result<Supplier, StoreError> {
    let now = tx.now();
    let supplier = Supplier {
        id: SupplierId::from_uuid(new_id()),
        version: 1,
        name: n.name,
        contact_name: n.contact_name,
        email: n.email,
        phone: n.phone,
        payment_terms_days: n.payment_terms_days,
        items: Vec::new(),
        created_at: now,
    };
    tx.execute(
        "INSERT INTO suppliers (organization_id, id, version, name, contact_name, email, phone, payment_terms_days, \
         created_at, updated_at) VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $8, $8)",
        args![
            tx.org(),
            supplier.id.as_uuid(),
            supplier.name.as_str(),
            supplier.contact_name.as_ref().map(|c| c.as_str()),
            supplier.email.as_ref().map(|e| e.as_str()),
            supplier.phone.as_ref().map(|p| p.as_str()),
            i64::from(supplier.payment_terms_days),
            now
        ],
    )
    .await?;
    tx.record_change("supplier", supplier.id.as_uuid(), 1, Operation::Created)
        .await?;
    Ok(supplier)
}

async fn load_supplier(
    tx: &mut TenantTx,
    id: SupplierId,
    lock: bool,
) -> Result<Supplier, StoreError> {
    let org = tx.org();
    let lock = if lock { tx.for_update() } else { "" };
    tx.fetch_optional(
        &format!(
            "SELECT {SUPPLIER_COLUMNS} FROM suppliers WHERE organization_id = $1 AND id = $2{lock}"
        ),
        args![org, id.as_uuid()],
    )
    .await?
    .map(|r| decode_supplier(&r))
    .transpose()?
    .ok_or_else(|| Failure::not_found("supplier").into())
}

fn decode_supplier_item(row: &Row, currency: Currency) -> Result<SupplierItem, StoreError> {
    let optional_decimal = |column: &str| -> Result<Option<Decimal>, StoreError> {
        row.get::<Option<String>>(column)?
            .map(|raw| {
                raw.parse::<Decimal>()
                    .map_err(|e| StoreError::Internal(format!("stored {column}: {e}")))
            })
            .transpose()
    };
    Ok(SupplierItem {
        supplier_id: SupplierId::from_uuid(row.get("supplier_id")?),
        item_id: PricebookItemId::from_uuid(row.get("item_id")?),
        part_number: row
            .get::<Option<String>>("part_number")?
            .map(|p| parse_stored(&p, Name::parse))
            .transpose()?,
        pack_size: optional_decimal("pack_size")?
            .map(|p| parse_stored(&p.to_string(), |_| Quantity::parse(p)))
            .transpose()?,
        last_price: optional_decimal("last_price")?.map(|p| Money::new(p, currency)),
        lead_time_days: row
            .get::<Option<i64>>("lead_time_days")?
            .and_then(|d| u16::try_from(d).ok()),
        preferred: row.get("preferred")?,
    })
}

const SUPPLIER_ITEM_COLUMNS: &str =
    "supplier_id, item_id, part_number, pack_size, last_price, lead_time_days, preferred";

async fn set_supplier_item(tx: &mut TenantTx, i: SupplierItem) -> Result<SupplierItem, StoreError> {
    // The supplier first, locked: its version counts the changes to what it sells.
    load_supplier(tx, i.supplier_id, true).await?;
    super::inventory::stocked_item(tx, i.item_id).await?;
    if let Some(price) = &i.last_price {
        check_cost(tx, price, "lastPrice").await?;
    }
    let org = tx.org();
    let now = tx.now();
    if i.preferred {
        // One preferred supplier per material: this one takes it from any other.
        tx.execute(
            "UPDATE supplier_items SET preferred = $1, updated_at = $2 WHERE organization_id = $3 AND item_id = $4 \
             AND supplier_id <> $5 AND preferred = $6",
            args![
                false,
                now,
                org,
                i.item_id.as_uuid(),
                i.supplier_id.as_uuid(),
                true
            ],
        )
        .await?;
    }
    tx.execute(
        "INSERT INTO supplier_items (organization_id, supplier_id, item_id, part_number, pack_size, last_price, \
         lead_time_days, preferred, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (organization_id, supplier_id, item_id) DO UPDATE SET part_number = excluded.part_number, \
         pack_size = excluded.pack_size, last_price = excluded.last_price, lead_time_days = excluded.lead_time_days, \
         preferred = excluded.preferred, updated_at = excluded.updated_at",
        args![
            org,
            i.supplier_id.as_uuid(),
            i.item_id.as_uuid(),
            i.part_number.as_ref().map(|p| p.as_str()),
            i.pack_size.map(|p| p.get().to_string()),
            i.last_price.map(|p| p.amount().to_string()),
            i.lead_time_days.map(i64::from),
            i.preferred,
            now
        ],
    )
    .await
    .map_err(|e| {
        if e.is_unique_violation() {
            // Another call made a different supplier preferred at the same moment.
            Failure::new(
                FailureKind::Conflict,
                "CONCURRENT_UPDATE",
                "another supplier was made preferred for the material at the same time; try again",
            )
            .into()
        } else {
            e
        }
    })?;
    bump_supplier(tx, i.supplier_id).await?;
    Ok(i)
}

/// A change to what a supplier sells: its version and the change feed.
async fn bump_supplier(tx: &mut TenantTx, id: SupplierId) -> Result<(), StoreError> {
    let org = tx.org();
    let now = tx.now();
    let version: i64 = tx
        .fetch_one(
            "UPDATE suppliers SET version = version + 1, updated_at = $1 WHERE organization_id = $2 AND id = $3 \
             RETURNING version",
            args![now, org, id.as_uuid()],
        )
        .await?
        .get("version")?;
    tx.record_change("supplier", id.as_uuid(), version, Operation::Updated)
        .await
}

async fn check_cost(tx: &mut TenantTx, cost: &Money, field: &str) -> Result<(), StoreError> {
    let currency = currency(tx).await?;
    if cost.currency() != currency || cost.is_negative() {
        return Err(StoreError::from(Failure::invalid_field(
            field,
            "invalid",
            format!("a unit cost is at least 0, in {}", currency.code()),
        )));
    }
    Ok(())
}

// ---- reorder points ----

async fn set_reorder_point(
    tx: &mut TenantTx,
    p: SetReorderPoint,
) -> Result<ReorderPoint, StoreError> {
    super::inventory::stocked_item(tx, p.item_id).await?;
    super::inventory::load_location(tx, p.location_id).await?;
    if let Some(source) = p.source_location_id {
        if source == p.location_id {
            return Err(StoreError::from(Failure::invalid_field(
                "sourceLocationId",
                "same_location",
                "a location is replenished from another location",
            )));
        }
        super::inventory::load_location(tx, source).await?;
    }
    let org = tx.org();
    let now = tx.now();
    let row = tx
        .fetch_one(
            "INSERT INTO reorder_points (organization_id, id, version, item_id, location_id, min, max, \
             source_location_id, updated_at) VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (organization_id, item_id, location_id) DO UPDATE SET min = excluded.min, \
             max = excluded.max, source_location_id = excluded.source_location_id, \
             version = reorder_points.version + 1, updated_at = excluded.updated_at RETURNING id, version",
            args![
                org,
                new_id(),
                p.item_id.as_uuid(),
                p.location_id.as_uuid(),
                p.level.min.to_string(),
                p.level.max.to_string(),
                p.source_location_id.map(|s| s.as_uuid()),
                now
            ],
        )
        .await?;
    let version: i64 = row.get("version")?;
    tx.record_change(
        "reorder_point",
        row.get("id")?,
        version,
        if version == 1 {
            Operation::Created
        } else {
            Operation::Updated
        },
    )
    .await?;
    positions(tx, Some((p.item_id, p.location_id)))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::Internal("a reorder point just written".into()))
}

/// Every reorder point (or one) and where its location stands, with what the preferred
/// supplier's pack size makes of the suggestion.
async fn positions(
    tx: &mut TenantTx,
    only: Option<(PricebookItemId, StockLocationId)>,
) -> Result<Vec<ReorderPoint>, StoreError> {
    let org = tx.org();
    let (item, location) = only.map_or((None, None), |(i, l)| {
        (Some(i.as_uuid()), Some(l.as_uuid()))
    });
    let rows = tx
        .fetch_all(
            "SELECT p.item_id, i.name, p.location_id, p.min, p.max, p.source_location_id, \
             COALESCE(b.on_hand, '0') AS on_hand, COALESCE(b.reserved, '0') AS reserved, s.pack_size \
             FROM reorder_points p \
             JOIN pricebook_items i ON i.organization_id = p.organization_id AND i.id = p.item_id \
             LEFT JOIN stock_balances b ON b.organization_id = p.organization_id AND b.item_id = p.item_id \
               AND b.location_id = p.location_id \
             LEFT JOIN supplier_items s ON s.organization_id = p.organization_id AND s.item_id = p.item_id \
               AND s.preferred = $4 \
             WHERE p.organization_id = $1 AND ($2 IS NULL OR p.item_id = $2) AND ($3 IS NULL OR p.location_id = $3) \
             AND i.archived = $5 ORDER BY p.item_id, p.location_id",
            args![org, item, location, true, false],
        )
        .await?;
    // What is on its way to each location: open order lines and transfers not yet arrived.
    let incoming_rows = tx
        .fetch_all(
            "SELECT l.item_id, o.location_id, l.quantity, l.received FROM purchase_order_lines l \
             JOIN purchase_orders o ON o.organization_id = l.organization_id AND o.id = l.purchase_order_id \
             WHERE l.organization_id = $1 AND o.status IN ('draft', 'submitted', 'partially_received') \
             AND o.job_id IS NULL \
             UNION ALL \
             SELECT item_id, to_location_id, quantity, '0' FROM stock_transfers \
             WHERE organization_id = $1 AND status IN ('draft', 'in_transit')",
            args![org],
        )
        .await?;
    let mut incoming: std::collections::HashMap<(uuid::Uuid, uuid::Uuid), Decimal> =
        std::collections::HashMap::new();
    for row in &incoming_rows {
        let outstanding =
            (decimal(row, "quantity")? - decimal(row, "received")?).max(Decimal::ZERO);
        *incoming
            .entry((row.get("item_id")?, row.get("location_id")?))
            .or_default() += outstanding;
    }
    rows.iter()
        .map(|row| {
            let item_id: uuid::Uuid = row.get("item_id")?;
            let location_id: uuid::Uuid = row.get("location_id")?;
            let level =
                ReorderLevel::new(decimal(row, "min")?, decimal(row, "max")?).map_err(|e| {
                    StoreError::Internal(format!("stored reorder level: {}", e.message))
                })?;
            let on_hand = decimal(row, "on_hand")?;
            let available = on_hand - decimal(row, "reserved")?;
            let incoming = incoming
                .get(&(item_id, location_id))
                .copied()
                .unwrap_or_default();
            let source_location_id = row
                .get::<Option<uuid::Uuid>>("source_location_id")?
                .map(StockLocationId::from_uuid);
            // A supplier sells whole packs; a warehouse hands out any quantity.
            let pack = match source_location_id {
                Some(_) => None,
                None => row
                    .get::<Option<String>>("pack_size")?
                    .and_then(|p| p.parse().ok())
                    .and_then(|p| Quantity::parse(p).ok()),
            };
            Ok(ReorderPoint {
                item_id: PricebookItemId::from_uuid(item_id),
                item_name: row.get("name")?,
                location_id: StockLocationId::from_uuid(location_id),
                level,
                source_location_id,
                available,
                incoming,
                suggested: rules::reorder_quantity(level, available + incoming, pack),
            })
        })
        .collect()
}

/// The day's pass: drafts what every point below its minimum needs.
async fn reorder(tx: &mut TenantTx, date: NaiveDate) -> Result<ReorderReport, StoreError> {
    let points = positions(tx, None).await?;
    let mut report = ReorderReport {
        date: Some(date),
        ..ReorderReport::default()
    };
    // (supplier, location) → lines, in the order the points are listed.
    let mut orders: Vec<((SupplierId, StockLocationId), Vec<NewOrderLine>)> = Vec::new();
    let org = tx.org();
    for point in points {
        let Some(quantity) = point.suggested else {
            continue;
        };
        if let Some(source) = point.source_location_id {
            let transfer = super::inventory::insert_transfer(
                tx,
                point.item_id,
                source,
                point.location_id,
                quantity,
                TransferStatus::Draft,
                Some(date),
                Units::default(),
            )
            .await?;
            report.transfers.push(transfer.id);
            continue;
        }
        let preferred = tx
            .fetch_optional(
                "SELECT supplier_id FROM supplier_items WHERE organization_id = $1 AND item_id = $2 AND preferred = $3",
                args![org, point.item_id.as_uuid(), true],
            )
            .await?;
        let Some(row) = preferred else {
            report.unsourced.push(point.item_id);
            continue;
        };
        let key = (
            SupplierId::from_uuid(row.get("supplier_id")?),
            point.location_id,
        );
        let line = NewOrderLine {
            item_id: point.item_id,
            quantity,
            unit_cost: None,
        };
        match orders.iter_mut().find(|(k, _)| *k == key) {
            Some((_, lines)) => lines.push(line),
            None => orders.push((key, vec![line])),
        }
    }
    for ((supplier_id, location_id), mut lines) in orders {
        // One order per supplier and location a day: beyond an order's lines, the rest stay
        // below their points and are ordered by the next day's pass.
        lines.truncate(MAX_ORDER_LINES);
        let order = create_order(
            tx,
            NewPurchaseOrder {
                supplier_id,
                location_id,
                job_id: None,
                lines,
            },
            Some(date),
        )
        .await?;
        report.purchase_orders.push(order.id);
    }
    Ok(report)
}

// ---- purchase orders ----

async fn create_order(
    tx: &mut TenantTx,
    n: NewPurchaseOrder,
    reorder_date: Option<NaiveDate>,
) -> Result<PurchaseOrder, StoreError> {
    if n.lines.is_empty() || n.lines.len() > MAX_ORDER_LINES {
        return Err(StoreError::from(Failure::invalid_field(
            "lines",
            "length",
            format!("an order has 1 to {MAX_ORDER_LINES} lines"),
        )));
    }
    load_supplier(tx, n.supplier_id, false).await?;
    super::inventory::load_location(tx, n.location_id).await?;
    if let Some(job) = n.job_id {
        super::job::load(tx, job, false).await?;
    }
    let currency = currency(tx).await?;
    let org = tx.org();
    let mut lines = Vec::with_capacity(n.lines.len());
    for (i, l) in n.lines.iter().enumerate() {
        let (_, pricebook_cost) = super::inventory::stocked_item(tx, l.item_id)
            .await
            .map_err(|e| at_line(e, i))?;
        let unit_cost = match l.unit_cost {
            Some(cost) => {
                check_cost(tx, &cost, &format!("lines[{i}].unitCost")).await?;
                cost
            }
            None => tx
                .fetch_optional(
                    "SELECT last_price FROM supplier_items WHERE organization_id = $1 AND supplier_id = $2 \
                     AND item_id = $3",
                    args![org, n.supplier_id.as_uuid(), l.item_id.as_uuid()],
                )
                .await?
                .and_then(|r| r.get::<Option<String>>("last_price").ok().flatten())
                .and_then(|p| p.parse().ok())
                .map_or(pricebook_cost, |p| Money::new(p, currency)),
        };
        lines.push(OrderLine {
            line: u32::try_from(i + 1).unwrap_or(u32::MAX),
            item_id: l.item_id,
            quantity: l.quantity,
            unit_cost,
            received: Decimal::ZERO,
            billed: Decimal::ZERO,
        });
    }
    let number = format!(
        "PO-{:06}",
        super::invoice::next_in(tx, "purchase_order_sequences").await?
    );
    let now = tx.now();
    let id = PurchaseOrderId::from_uuid(new_id());
    tx.execute(
        "INSERT INTO purchase_orders (organization_id, id, version, number, supplier_id, location_id, job_id, status, \
         reorder_date, created_at, updated_at) VALUES ($1, $2, 1, $3, $4, $5, $6, 'draft', $7, $8, $8)",
        args![
            org,
            id.as_uuid(),
            number.as_str(),
            n.supplier_id.as_uuid(),
            n.location_id.as_uuid(),
            n.job_id.map(|j| j.as_uuid()),
            reorder_date,
            now
        ],
    )
    .await?;
    for l in &lines {
        tx.execute(
            "INSERT INTO purchase_order_lines (organization_id, purchase_order_id, line, item_id, quantity, unit_cost, \
             received, billed) VALUES ($1, $2, $3, $4, $5, $6, '0', '0')",
            args![
                org,
                id.as_uuid(),
                i64::from(l.line),
                l.item_id.as_uuid(),
                l.quantity.get().to_string(),
                l.unit_cost.amount().to_string()
            ],
        )
        .await?;
    }
    tx.record_change("purchase_order", id.as_uuid(), 1, Operation::Created)
        .await?;
    load_order(tx, id, false).await
}

/// A validation failure of a line's field, named under the line (`lines[2].serials`).
fn at_field(e: StoreError, prefix: &str) -> StoreError {
    match e {
        StoreError::Failure(mut f) => {
            for fe in &mut f.field_errors {
                fe.field = format!("{prefix}.{}", fe.field);
            }
            StoreError::Failure(f)
        }
        e => e,
    }
}

fn at_line(e: StoreError, i: usize) -> StoreError {
    match e {
        StoreError::Failure(f) if f.code == "ITEM_NOT_STOCKED" || f.code == "NOT_FOUND" => {
            let message = f.message.clone();
            let mut f = f;
            f.field_errors.push(FieldError {
                field: format!("lines[{i}].itemId"),
                code: f.code.to_lowercase(),
                message,
            });
            StoreError::Failure(f)
        }
        e => e,
    }
}

const ORDER_COLUMNS: &str = "id, version, number, supplier_id, location_id, job_id, status, reorder_date, \
     created_at, submitted_at, cancel_reason";

async fn load_order(
    tx: &mut TenantTx,
    id: PurchaseOrderId,
    lock: bool,
) -> Result<PurchaseOrder, StoreError> {
    let currency = currency(tx).await?;
    let org = tx.org();
    let lock = if lock { tx.for_update() } else { "" };
    let row = tx
        .fetch_optional(
            &format!(
                "SELECT {ORDER_COLUMNS} FROM purchase_orders WHERE organization_id = $1 AND id = $2{lock}"
            ),
            args![org, id.as_uuid()],
        )
        .await?
        .ok_or_else(|| StoreError::from(Failure::not_found("purchase order")))?;
    let mut order = decode_order(&row, currency)?;
    let lines = tx
        .fetch_all(
            "SELECT line, item_id, quantity, unit_cost, received, billed FROM purchase_order_lines \
             WHERE organization_id = $1 AND purchase_order_id = $2 ORDER BY line",
            args![org, id.as_uuid()],
        )
        .await?;
    for l in &lines {
        order.lines.push(OrderLine {
            line: u32::try_from(l.get::<i64>("line")?).unwrap_or(0),
            item_id: PricebookItemId::from_uuid(l.get("item_id")?),
            quantity: Quantity::parse(decimal(l, "quantity")?)
                .map_err(|e| StoreError::Internal(format!("stored quantity: {}", e.message)))?,
            unit_cost: Money::new(decimal(l, "unit_cost")?, currency),
            received: decimal(l, "received")?,
            billed: decimal(l, "billed")?,
        });
    }
    order.total = Money::new(
        order
            .lines
            .iter()
            .map(|l| l.quantity.get() * l.unit_cost.amount())
            .sum(),
        currency,
    )
    .round();
    let bills = tx
        .fetch_all(
            "SELECT id, number, lines, total, mismatches, created_at FROM supplier_bills \
             WHERE organization_id = $1 AND purchase_order_id = $2 ORDER BY id",
            args![org, id.as_uuid()],
        )
        .await?;
    for b in &bills {
        order.bills.push(SupplierBill {
            id: SupplierBillId::from_uuid(b.get("id")?),
            purchase_order_id: id,
            number: b.get("number")?,
            lines: serde_json::from_str(&b.get::<String>("lines")?)?,
            total: Money::new(decimal(b, "total")?, currency),
            mismatches: serde_json::from_str(&b.get::<String>("mismatches")?)?,
            created_at: b.get("created_at")?,
        });
    }
    Ok(order)
}

fn decode_order(row: &Row, currency: Currency) -> Result<PurchaseOrder, StoreError> {
    let status: String = row.get("status")?;
    Ok(PurchaseOrder {
        id: PurchaseOrderId::from_uuid(row.get("id")?),
        version: row.get("version")?,
        number: row.get("number")?,
        supplier_id: SupplierId::from_uuid(row.get("supplier_id")?),
        location_id: StockLocationId::from_uuid(row.get("location_id")?),
        job_id: row
            .get::<Option<uuid::Uuid>>("job_id")?
            .map(JobId::from_uuid),
        status: PurchaseOrderStatus::parse(&status)
            .ok_or_else(|| StoreError::Internal(format!("stored order status {status}")))?,
        reorder_date: row.get("reorder_date")?,
        lines: Vec::new(),
        total: Money::zero(currency),
        bills: Vec::new(),
        created_at: row.get("created_at")?,
        submitted_at: row.get("submitted_at")?,
        cancel_reason: row.get("cancel_reason")?,
    })
}

/// Moves the order to `status`, bumping its version.
async fn set_status(
    tx: &mut TenantTx,
    order: &PurchaseOrder,
    status: PurchaseOrderStatus,
) -> Result<i64, StoreError> {
    let now = tx.now();
    let version = order.version + 1;
    let submitted = (status == PurchaseOrderStatus::Submitted).then_some(now);
    tx.execute(
        "UPDATE purchase_orders SET status = $1, version = $2, updated_at = $3, \
         submitted_at = COALESCE($4, submitted_at) WHERE organization_id = $5 AND id = $6",
        args![
            status.as_str(),
            version,
            now,
            submitted,
            tx.org(),
            order.id.as_uuid()
        ],
    )
    .await?;
    tx.record_change(
        "purchase_order",
        order.id.as_uuid(),
        version,
        Operation::Transitioned,
    )
    .await?;
    Ok(version)
}

async fn submit_order(tx: &mut TenantTx, id: PurchaseOrderId) -> Result<PurchaseOrder, StoreError> {
    let order = load_order(tx, id, true).await?;
    let next = order
        .status
        .decide(PurchaseOrderAction::Submit)
        .map_err(order_failure)?;
    let supplier = load_supplier(tx, order.supplier_id, false).await?;
    set_status(tx, &order, next).await?;
    // What the supplier reads: its own part number where it has one, and the material's name.
    let org = tx.org();
    let mut lines = Vec::with_capacity(order.lines.len());
    for l in &order.lines {
        let item = super::pricebook::load_item(tx, l.item_id, false).await?;
        let part = tx
            .fetch_optional(
                "SELECT part_number FROM supplier_items WHERE organization_id = $1 AND supplier_id = $2 \
                 AND item_id = $3",
                args![org, order.supplier_id.as_uuid(), l.item_id.as_uuid()],
            )
            .await?
            .and_then(|r| r.get::<Option<String>>("part_number").ok().flatten());
        lines.push(format!(
            "{}. {} × {}{} at {}",
            l.line,
            l.quantity.get(),
            item.name.as_str(),
            part.map(|p| format!(" ({p})")).unwrap_or_default(),
            l.unit_cost.amount_text()
        ));
    }
    // Delivered to the office today (to forward); to the supplier with the integrations work.
    tx.enqueue(
        "purchase_order_submitted",
        &serde_json::json!({
            "purchaseOrderId": order.id,
            "number": order.number,
            "supplierId": supplier.id,
            "supplierName": supplier.name.as_str(),
            "supplierEmail": supplier.email.as_ref().map(|e| e.as_str()),
            "lines": lines.join("\n"),
            "total": order.total.amount_text(),
        }),
    )
    .await?;
    load_order(tx, id, false).await
}

async fn end_order(
    tx: &mut TenantTx,
    id: PurchaseOrderId,
    action: PurchaseOrderAction,
) -> Result<PurchaseOrder, StoreError> {
    let order = load_order(tx, id, true).await?;
    let next = order.status.decide(action).map_err(order_failure)?;
    set_status(tx, &order, next).await?;
    load_order(tx, id, false).await
}

async fn receive_order(tx: &mut TenantTx, r: ReceiveOrder) -> Result<Received, StoreError> {
    let order = load_order(tx, r.purchase_order_id, true).await?;
    order
        .status
        .decide(PurchaseOrderAction::Receive)
        .map_err(order_failure)?;
    if r.lines.is_empty() || r.lines.len() > MAX_ORDER_LINES {
        return Err(StoreError::from(Failure::invalid_field(
            "lines",
            "length",
            format!("a receipt has 1 to {MAX_ORDER_LINES} lines"),
        )));
    }
    // Every line checked before anything moves.
    let mut received: Vec<(usize, Decimal)> = Vec::with_capacity(r.lines.len());
    for (i, l) in r.lines.iter().enumerate() {
        let Some(at) = order.lines.iter().position(|o| o.line == l.line) else {
            return Err(StoreError::from(Failure::invalid_field(
                format!("lines[{i}].line"),
                "unknown_line",
                format!("the order has no line {}", l.line),
            )));
        };
        if received.iter().any(|(j, _)| *j == at) {
            return Err(StoreError::from(Failure::invalid_field(
                format!("lines[{i}].line"),
                "duplicate",
                format!("line {} is listed twice", l.line),
            )));
        }
        let o = &order.lines[at];
        let after = rules::receive_line(
            o.line,
            o.quantity.get(),
            o.received,
            l.quantity,
            r.allow_over_receipt,
        )
        .map_err(|e| {
            let outstanding = match &e {
                rules::PurchaseOrderError::OverReceipt { outstanding, .. } => *outstanding,
                _ => Decimal::ZERO,
            };
            StoreError::from(
                Failure::new(FailureKind::RuleViolation, e.code(), e.to_string()).with_details(
                    serde_json::json!({ "line": o.line, "outstanding": outstanding.normalize().to_string() }),
                ),
            )
        })?;
        received.push((at, after));
    }
    // A special order's job is taken before any stock, as every job change takes it.
    let job = match order.job_id {
        Some(job) => Some(super::job::load(tx, job, true).await?),
        None => None,
    };
    let location_id = r.location_id.unwrap_or(order.location_id);
    let location = super::inventory::load_location(tx, location_id).await?;
    // Balances in item order (see the module docs), then each line posted.
    let mut items: Vec<PricebookItemId> = received
        .iter()
        .map(|(at, _)| order.lines[*at].item_id)
        .collect();
    items.sort();
    items.dedup();
    let mut balances = Vec::with_capacity(items.len());
    for item in &items {
        balances.push((*item, lock_balance(tx, *item, location.id).await?));
    }
    // Each line's tracking and serials, before any cost row is locked (the inventory
    // module's lock order: balances, tracking, serials, costs), then the lines posted in item
    // order, so two receipts of overlapping orders lock costs in one order too.
    let mut posting: Vec<usize> = (0..r.lines.len()).collect();
    posting.sort_by_key(|k| (order.lines[received[*k].0].item_id, *k));
    for k in &posting {
        let (l, o) = (&r.lines[*k], &order.lines[received[*k].0]);
        super::inventory::check_units(tx, o.item_id, l.quantity.get(), &l.units, true)
            .await
            .map_err(|e| at_field(e, &format!("lines[{k}]")))?;
        super::inventory::add_serials(tx, o.item_id, &l.units.serials, location.id).await?;
    }
    let org = tx.org();
    let now = tx.now();
    let mut entries = Vec::new();
    for k in posting {
        let (l, (at, after)) = (&r.lines[k], &received[k]);
        let o = &order.lines[*at];
        let (_, pricebook_cost) = super::inventory::stocked_item(tx, o.item_id).await?;
        let slot = balances
            .iter_mut()
            .find(|(item, _)| *item == o.item_id)
            .ok_or_else(|| StoreError::Internal("a balance locked above".into()))?;
        let (entry, balance) = post_locked(
            tx,
            o.item_id,
            pricebook_cost,
            &location,
            slot.1,
            Movement::Receipt {
                quantity: l.quantity,
                unit_cost: o.unit_cost,
            },
            Links {
                purchase_order_id: Some(order.id),
                units: Some(&l.units),
                ..Links::default()
            },
        )
        .await?;
        slot.1 = balance;
        entries.push(entry);
        // A special order's receipt is held for its job (as much as is available: where
        // negative stock is allowed, some of it may fill a hole first).
        let open_job = job.as_ref().filter(|j| {
            !matches!(
                j.status,
                hestami_core::job::JobStatus::Closed | hestami_core::job::JobStatus::Cancelled
            )
        });
        if let Some(job) = open_job
            && let Ok(held) = Quantity::parse(l.quantity.get().min(slot.1.available()))
        {
            let (hold, balance) = post_locked(
                tx,
                o.item_id,
                pricebook_cost,
                &location,
                slot.1,
                Movement::Reservation {
                    quantity: held,
                    job_id: job.id,
                },
                Links {
                    purchase_order_id: Some(order.id),
                    ..Links::default()
                },
            )
            .await?;
            slot.1 = balance;
            entries.push(hold);
        }
        tx.execute(
            "UPDATE purchase_order_lines SET received = $1 WHERE organization_id = $2 AND purchase_order_id = $3 \
             AND line = $4",
            args![after.to_string(), org, order.id.as_uuid(), i64::from(o.line)],
        )
        .await?;
    }
    // What the supplier charged is its last price for each material it sells.
    let mut repriced = false;
    for o in received.iter().map(|(at, _)| &order.lines[*at]) {
        repriced |= tx
            .execute(
                "UPDATE supplier_items SET last_price = $1, updated_at = $2 WHERE organization_id = $3 \
                 AND supplier_id = $4 AND item_id = $5 AND (last_price IS NULL OR last_price <> $1)",
                args![
                    o.unit_cost.amount().to_string(),
                    now,
                    org,
                    order.supplier_id.as_uuid(),
                    o.item_id.as_uuid()
                ],
            )
            .await?
            > 0;
    }
    if repriced {
        bump_supplier(tx, order.supplier_id).await?;
    }
    let state: Vec<(Decimal, Decimal)> = order
        .lines
        .iter()
        .enumerate()
        .map(|(at, o)| {
            let got = received
                .iter()
                .find(|(j, _)| *j == at)
                .map_or(o.received, |(_, after)| *after);
            (o.quantity.get(), got)
        })
        .collect();
    set_status(tx, &order, rules::status_after_receipt(&state)).await?;
    Ok(Received {
        purchase_order: load_order(tx, order.id, false).await?,
        entries,
    })
}

async fn record_bill(tx: &mut TenantTx, b: NewBill) -> Result<SupplierBill, StoreError> {
    let order = load_order(tx, b.purchase_order_id, true).await?;
    order
        .status
        .decide(PurchaseOrderAction::Bill)
        .map_err(order_failure)?;
    if b.lines.is_empty() || b.lines.len() > MAX_ORDER_LINES {
        return Err(StoreError::from(Failure::invalid_field(
            "lines",
            "length",
            format!("a bill has 1 to {MAX_ORDER_LINES} lines"),
        )));
    }
    if order.bills.iter().any(|x| x.number == b.number.as_str()) {
        return Err(Failure::new(
            FailureKind::Conflict,
            "BILL_EXISTS",
            format!(
                "bill {} is recorded against the order already",
                b.number.as_str()
            ),
        )
        .into());
    }
    let currency = currency(tx).await?;
    let org = tx.org();
    let mut seen = Vec::with_capacity(b.lines.len());
    let mut mismatches = Vec::new();
    let mut total = Decimal::ZERO;
    for (i, l) in b.lines.iter().enumerate() {
        let Some(o) = order.lines.iter().find(|o| o.line == l.line) else {
            return Err(StoreError::from(Failure::invalid_field(
                format!("lines[{i}].line"),
                "unknown_line",
                format!("the order has no line {}", l.line),
            )));
        };
        if seen.contains(&l.line) {
            return Err(StoreError::from(Failure::invalid_field(
                format!("lines[{i}].line"),
                "duplicate",
                format!("line {} is listed twice", l.line),
            )));
        }
        seen.push(l.line);
        check_cost(tx, &l.unit_cost, &format!("lines[{i}].unitCost")).await?;
        let billed = o.billed + l.quantity.get();
        for mismatch in rules::match_line(
            o.quantity.get(),
            o.received,
            billed,
            o.unit_cost,
            l.unit_cost,
        ) {
            mismatches.push(LineMismatch {
                line: o.line,
                mismatch,
            });
        }
        total += l.quantity.get() * l.unit_cost.amount();
        tx.execute(
            "UPDATE purchase_order_lines SET billed = $1 WHERE organization_id = $2 AND purchase_order_id = $3 \
             AND line = $4",
            args![billed.to_string(), org, order.id.as_uuid(), i64::from(o.line)],
        )
        .await?;
    }
    let bill = SupplierBill {
        id: SupplierBillId::from_uuid(new_id()),
        purchase_order_id: order.id,
        number: b.number.as_str().to_owned(),
        lines: b.lines,
        total: Money::new(total, currency).round(),
        mismatches,
        created_at: tx.now(),
    };
    tx.execute(
        "INSERT INTO supplier_bills (organization_id, id, purchase_order_id, number, lines, total, mismatches, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        args![
            org,
            bill.id.as_uuid(),
            order.id.as_uuid(),
            bill.number.as_str(),
            serde_json::to_string(&bill.lines)?,
            bill.total.amount().to_string(),
            serde_json::to_string(&bill.mismatches)?,
            bill.created_at
        ],
    )
    .await
    .map_err(|e| {
        if e.is_unique_violation() {
            Failure::new(
                FailureKind::Conflict,
                "BILL_EXISTS",
                "the bill is recorded against the order already",
            )
            .into()
        } else {
            e
        }
    })?;
    tx.record_change("supplier_bill", bill.id.as_uuid(), 1, Operation::Created)
        .await?;
    // The order's lines now say what is billed: a new version of the order.
    let version = order.version + 1;
    tx.execute(
        "UPDATE purchase_orders SET version = $1, updated_at = $2 WHERE organization_id = $3 AND id = $4",
        args![version, bill.created_at, org, order.id.as_uuid()],
    )
    .await?;
    tx.record_change(
        "purchase_order",
        order.id.as_uuid(),
        version,
        Operation::Updated,
    )
    .await?;
    Ok(bill)
}

/// What `inventory/v1/purchaseOrders` lists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OrderFilter {
    /// Only this supplier's.
    pub supplier_id: Option<SupplierId>,
    /// Only open orders (not closed or cancelled).
    pub open: bool,
}

impl Services {
    /// `inventory/v1/listSuppliers`: every supplier and what it sells, by creation.
    pub async fn suppliers(&self, caller: &Caller) -> Result<Vec<Supplier>, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let currency = currency(tx).await?;
                let org = tx.org();
                let rows = tx
                    .fetch_all(
                        &format!("SELECT {SUPPLIER_COLUMNS} FROM suppliers WHERE organization_id = $1 ORDER BY id"),
                        args![org],
                    )
                    .await?;
                let mut suppliers = rows
                    .iter()
                    .map(decode_supplier)
                    .collect::<Result<Vec<_>, StoreError>>()?;
                let items = tx
                    .fetch_all(
                        &format!(
                            "SELECT {SUPPLIER_ITEM_COLUMNS} FROM supplier_items WHERE organization_id = $1 \
                             ORDER BY supplier_id, item_id"
                        ),
                        args![org],
                    )
                    .await?;
                for row in &items {
                    let item = decode_supplier_item(row, currency)?;
                    if let Some(s) = suppliers.iter_mut().find(|s| s.id == item.supplier_id) {
                        s.items.push(item);
                    }
                }
                Ok(suppliers)
            })
        })
        .await
    }

    /// `inventory/v1/getPurchaseOrder`.
    pub async fn purchase_order(
        &self,
        caller: &Caller,
        id: PurchaseOrderId,
    ) -> Result<PurchaseOrder, StoreError> {
        self.read(caller, move |tx| Box::pin(load_order(tx, id, false)))
            .await
    }

    /// `inventory/v1/purchaseOrders`: orders (open only, or all; one supplier's, or every
    /// supplier's), by creation, paged.
    pub async fn purchase_orders(
        &self,
        caller: &Caller,
        filter: OrderFilter,
        page: PageRequest,
    ) -> Result<Page<PurchaseOrder>, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let org = tx.org();
                let rows = tx
                    .fetch_all(
                        "SELECT id FROM purchase_orders WHERE organization_id = $1 AND ($2 IS NULL OR supplier_id = $2) \
                         AND ($3 = $4 OR status NOT IN ('closed', 'cancelled')) AND ($5 IS NULL OR id > $5) \
                         ORDER BY id LIMIT $6",
                        args![
                            org,
                            filter.supplier_id.map(|s| s.as_uuid()),
                            filter.open,
                            false,
                            page.after,
                            i64::from(page.limit) + 1
                        ],
                    )
                    .await?;
                let mut orders = Vec::with_capacity(rows.len());
                for row in &rows {
                    let id = PurchaseOrderId::from_uuid(row.get("id")?);
                    orders.push(load_order(tx, id, false).await?);
                }
                Ok(page.page(orders, |o| o.id.as_uuid()))
            })
        })
        .await
    }

    /// `inventory/v1/reorderPoints`: every reorder point and where its location stands (only
    /// those below their minimum, if asked).
    pub async fn reorder_points(
        &self,
        caller: &Caller,
        below_only: bool,
    ) -> Result<Vec<ReorderPoint>, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let mut points = positions(tx, None).await?;
                if below_only {
                    points.retain(|p| p.suggested.is_some());
                }
                Ok(points)
            })
        })
        .await
    }
}
