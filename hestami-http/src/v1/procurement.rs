//! `inventory/v1`, procurement: suppliers and what they sell, reorder points, purchase orders
//! and receiving against them, and supplier bills with their three-way match.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use hestami_core::ids::{JobId, PricebookItemId, PurchaseOrderId, StockLocationId, SupplierId};
use hestami_core::inventory::Quantity;
use hestami_core::inventory::procurement::{Mismatch, PurchaseOrderStatus, ReorderLevel};
use hestami_core::org::Currency;
use hestami_core::text::{Email, Name as Label, Phone, Reason};
use hestami_store::app::PageRequest;
use hestami_store::app::procurement::{
    BillLine, CancelOrder, NewBill, NewOrderLine, NewPurchaseOrder, NewSupplier, OrderFilter,
    OrderRef, ProcurementCommand, PurchaseOrder, ReceiveOrder, Received, ReceivedLine,
    ReorderPoint, SetReorderPoint, Supplier, SupplierBill, SupplierItem,
};

use super::Empty;
use super::inventory::{StockEntryDto, quantity};
use super::money::{decimal, money};
use crate::error::ApiError;
use crate::rpc::{Ctx, Name, Procedure, Validator, mutation, mutation_in, query, validate};

/// `inventory/v1/createSupplier`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSupplierInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Its name.
    pub name: String,
    /// Who to talk to.
    #[serde(default)]
    pub contact_name: Option<String>,
    /// Where orders go.
    #[serde(default)]
    pub email: Option<String>,
    /// Its phone.
    #[serde(default)]
    pub phone: Option<String>,
    /// Days it gives to pay a bill, 0 to 365 (default 30).
    #[serde(default)]
    pub payment_terms_days: Option<u16>,
}

/// `inventory/v1/setSupplierItem`: what a supplier sells of a material (replaces what was set).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetSupplierItemInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The supplier.
    pub supplier_id: Uuid,
    /// A material of the pricebook.
    pub item_id: Uuid,
    /// The supplier's part number.
    #[serde(default)]
    pub part_number: Option<String>,
    /// It sells whole packs of this many, a decimal string: more than 0, at most 4 decimals.
    #[serde(default)]
    pub pack_size: Option<String>,
    /// What it charges for one unit, a decimal string (receipts update it).
    #[serde(default)]
    pub last_price: Option<String>,
    /// Days from order to delivery, 0 to 365.
    #[serde(default)]
    pub lead_time_days: Option<u16>,
    /// Whether the reorder pass orders the material from it (default false); making one
    /// supplier preferred makes any other not.
    #[serde(default)]
    pub preferred: Option<bool>,
}

/// `inventory/v1/setReorderPoint` (min 0 and max 0: never reorder).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetReorderPointInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// A material of the pricebook.
    pub item_id: Uuid,
    /// Where.
    pub location_id: Uuid,
    /// Below this (available plus incoming), reorder; a decimal string, 0 or more.
    pub min: String,
    /// Reorder up to this; at least `min`.
    pub max: String,
    /// Replenish from this other location (a truck from its warehouse) instead of the
    /// preferred supplier.
    #[serde(default)]
    pub source_location_id: Option<Uuid>,
}

/// `inventory/v1/reorderPoints`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReorderPointsInput {
    /// Only points below their minimum (default false).
    #[serde(default)]
    pub below_only: Option<bool>,
}

/// A line of `createPurchaseOrder`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderLineInput {
    /// A material of the pricebook.
    pub item_id: Uuid,
    /// How much, a decimal string: more than 0, at most 4 decimals.
    pub quantity: String,
    /// What one unit costs (default: the supplier's last price, else the pricebook's cost).
    #[serde(default)]
    pub unit_cost: Option<String>,
}

/// `inventory/v1/createPurchaseOrder`: a draft order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreatePurchaseOrderInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The supplier.
    pub supplier_id: Uuid,
    /// Delivered to.
    pub location_id: Uuid,
    /// A special order: what arrives is reserved for this job.
    #[serde(default)]
    pub job_id: Option<Uuid>,
    /// 1 to 200 lines.
    pub lines: Vec<OrderLineInput>,
}

/// `inventory/v1/submitPurchaseOrder` and `closePurchaseOrder`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PurchaseOrderRefInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The order.
    pub purchase_order_id: Uuid,
}

/// `inventory/v1/cancelPurchaseOrder`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CancelPurchaseOrderInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The order (draft or submitted, nothing received).
    pub purchase_order_id: Uuid,
    /// Why.
    pub reason: String,
}

/// A line of `receivePurchaseOrder`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReceiveLineInput {
    /// The order's line number.
    pub line: u32,
    /// How much arrived, a decimal string: more than 0, at most 4 decimals.
    pub quantity: String,
    /// Serial numbers of the units, one per unit, for a serial-tracked material.
    #[serde(default)]
    pub serials: Option<Vec<String>>,
    /// The lot, for a lot-tracked material (required).
    #[serde(default)]
    pub lot: Option<String>,
}

/// `inventory/v1/receivePurchaseOrder`: all or part of an order arrives.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReceivePurchaseOrderInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The order (submitted or partially received).
    pub purchase_order_id: Uuid,
    /// Into where (default: the order's location).
    #[serde(default)]
    pub location_id: Option<Uuid>,
    /// 1 to 200 lines, each order line at most once.
    pub lines: Vec<ReceiveLineInput>,
    /// Whether more than a line still expects may be received (default false).
    #[serde(default)]
    pub allow_over_receipt: Option<bool>,
}

/// A line of `recordSupplierBill`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BillLineInput {
    /// The order's line number.
    pub line: u32,
    /// How much is billed, a decimal string: more than 0, at most 4 decimals.
    pub quantity: String,
    /// At what unit price, a decimal string.
    pub unit_cost: String,
}

/// `inventory/v1/recordSupplierBill`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordSupplierBillInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The order billed (submitted or later, not cancelled).
    pub purchase_order_id: Uuid,
    /// The supplier's bill number (once per order).
    pub number: String,
    /// 1 to 200 lines, each order line at most once.
    pub lines: Vec<BillLineInput>,
}

/// `inventory/v1/getPurchaseOrder`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetPurchaseOrderInput {
    /// The order.
    pub purchase_order_id: Uuid,
}

/// `inventory/v1/purchaseOrders`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PurchaseOrdersInput {
    /// Only this supplier's.
    #[serde(default)]
    pub supplier_id: Option<Uuid>,
    /// Only open orders: not closed or cancelled (default false).
    #[serde(default)]
    pub open: Option<bool>,
    /// Page size, 1 to 200 (default 50).
    #[serde(default)]
    pub limit: Option<u32>,
    /// The `nextCursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

mutating!(
    CreateSupplierInput,
    SetSupplierItemInput,
    SetReorderPointInput,
    CreatePurchaseOrderInput,
    PurchaseOrderRefInput,
    CancelPurchaseOrderInput,
    ReceivePurchaseOrderInput,
    RecordSupplierBillInput
);

/// What a supplier sells of a material.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SupplierItemDto {
    /// The supplier.
    pub supplier_id: Uuid,
    /// The material.
    pub item_id: Uuid,
    /// The supplier's part number.
    pub part_number: Option<String>,
    /// Whole packs of this many.
    pub pack_size: Option<String>,
    /// What it last charged for one unit.
    pub last_price: Option<String>,
    /// Days from order to delivery.
    pub lead_time_days: Option<u16>,
    /// Whether the reorder pass orders the material from it.
    pub preferred: bool,
}

impl From<SupplierItem> for SupplierItemDto {
    fn from(i: SupplierItem) -> Self {
        Self {
            supplier_id: i.supplier_id.as_uuid(),
            item_id: i.item_id.as_uuid(),
            part_number: i.part_number.map(|p| p.as_str().to_owned()),
            pack_size: i.pack_size.map(|p| p.get().normalize().to_string()),
            last_price: i.last_price.map(|p| p.amount().normalize().to_string()),
            lead_time_days: i.lead_time_days,
            preferred: i.preferred,
        }
    }
}

/// A supplier.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SupplierDto {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Who to talk to.
    pub contact_name: Option<String>,
    /// Where orders go.
    pub email: Option<String>,
    /// Its phone.
    pub phone: Option<String>,
    /// Days it gives to pay a bill.
    pub payment_terms_days: u16,
    /// The materials it sells.
    pub items: Vec<SupplierItemDto>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl From<Supplier> for SupplierDto {
    fn from(s: Supplier) -> Self {
        Self {
            id: s.id.as_uuid(),
            name: s.name.as_str().to_owned(),
            contact_name: s.contact_name.map(|c| c.as_str().to_owned()),
            email: s.email.map(|e| e.as_str().to_owned()),
            phone: s.phone.map(|p| p.as_str().to_owned()),
            payment_terms_days: s.payment_terms_days,
            items: s.items.into_iter().map(Into::into).collect(),
            created_at: s.created_at,
        }
    }
}

/// The suppliers, by creation.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SupplierList {
    /// Every supplier.
    pub items: Vec<SupplierDto>,
}

/// A reorder point and where its location stands.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReorderPointDto {
    /// The material.
    pub item_id: Uuid,
    /// Its name.
    pub item_name: String,
    /// Where.
    pub location_id: Uuid,
    /// Below this, reorder.
    pub min: String,
    /// Up to this.
    pub max: String,
    /// Replenished from this location, or (null) the preferred supplier.
    pub source_location_id: Option<Uuid>,
    /// On hand less reserved.
    pub available: String,
    /// On its way: open order lines to the location, transfers to it.
    pub incoming: String,
    /// What the reorder pass would order now (null: at or above min).
    pub suggested: Option<String>,
}

impl From<ReorderPoint> for ReorderPointDto {
    fn from(p: ReorderPoint) -> Self {
        Self {
            item_id: p.item_id.as_uuid(),
            item_name: p.item_name,
            location_id: p.location_id.as_uuid(),
            min: p.level.min.normalize().to_string(),
            max: p.level.max.normalize().to_string(),
            source_location_id: p.source_location_id.map(|s| s.as_uuid()),
            available: p.available.normalize().to_string(),
            incoming: p.incoming.normalize().to_string(),
            suggested: p.suggested.map(|q| q.get().normalize().to_string()),
        }
    }
}

/// The reorder points.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReorderPointList {
    /// By material, then location.
    pub items: Vec<ReorderPointDto>,
}

/// Where a purchase order is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PurchaseOrderStatusDto {
    /// Being written.
    Draft,
    /// Sent to the supplier.
    Submitted,
    /// Some of it has arrived.
    PartiallyReceived,
    /// Every line has arrived in full.
    Received,
    /// Nothing more is expected.
    Closed,
    /// Called off.
    Cancelled,
}

impl From<PurchaseOrderStatus> for PurchaseOrderStatusDto {
    fn from(s: PurchaseOrderStatus) -> Self {
        match s {
            PurchaseOrderStatus::Draft => Self::Draft,
            PurchaseOrderStatus::Submitted => Self::Submitted,
            PurchaseOrderStatus::PartiallyReceived => Self::PartiallyReceived,
            PurchaseOrderStatus::Received => Self::Received,
            PurchaseOrderStatus::Closed => Self::Closed,
            PurchaseOrderStatus::Cancelled => Self::Cancelled,
        }
    }
}

/// A line of a purchase order.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PurchaseOrderLineDto {
    /// Its number, from 1.
    pub line: u32,
    /// The material.
    pub item_id: Uuid,
    /// Ordered.
    pub quantity: String,
    /// One unit's cost.
    pub unit_cost: String,
    /// Arrived so far.
    pub received: String,
    /// Billed so far.
    pub billed: String,
}

/// What differs on a line of a bill.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BillMismatchDto {
    /// The order's line.
    pub line: u32,
    /// quantity (billed another quantity than received), over_ordered (billed more than
    /// ordered) or price (another unit price than ordered).
    pub kind: String,
    /// What the order or the receipts say.
    pub expected: String,
    /// What the bills say.
    pub billed: String,
}

/// A line of a supplier's bill.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BillLineDto {
    /// The order's line.
    pub line: u32,
    /// Billed.
    pub quantity: String,
    /// At this unit price.
    pub unit_cost: String,
}

/// A supplier's bill and its three-way match.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SupplierBillDto {
    /// Its id.
    pub id: Uuid,
    /// The order.
    pub purchase_order_id: Uuid,
    /// The supplier's number.
    pub number: String,
    /// Its lines.
    pub lines: Vec<BillLineDto>,
    /// Its total, rounded.
    pub total: String,
    /// Whether it matches the order and the receipts (no mismatches).
    pub matched: bool,
    /// What differs.
    pub mismatches: Vec<BillMismatchDto>,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
}

impl From<SupplierBill> for SupplierBillDto {
    fn from(b: SupplierBill) -> Self {
        let text = |d: rust_decimal::Decimal| d.normalize().to_string();
        Self {
            id: b.id.as_uuid(),
            purchase_order_id: b.purchase_order_id.as_uuid(),
            number: b.number,
            lines: b
                .lines
                .iter()
                .map(|l| BillLineDto {
                    line: l.line,
                    quantity: text(l.quantity.get()),
                    unit_cost: text(l.unit_cost.amount()),
                })
                .collect(),
            total: b.total.amount_text(),
            matched: b.mismatches.is_empty(),
            mismatches: b
                .mismatches
                .into_iter()
                .map(|m| {
                    let (kind, expected, billed) = match m.mismatch {
                        Mismatch::Quantity { received, billed } => {
                            ("quantity", text(received), text(billed))
                        }
                        Mismatch::OverOrdered { ordered, billed } => {
                            ("over_ordered", text(ordered), text(billed))
                        }
                        Mismatch::Price { ordered, billed } => {
                            ("price", text(ordered.amount()), text(billed.amount()))
                        }
                    };
                    BillMismatchDto {
                        line: m.line,
                        kind: kind.to_owned(),
                        expected,
                        billed,
                    }
                })
                .collect(),
            created_at: b.created_at,
        }
    }
}

/// A purchase order.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PurchaseOrderDto {
    /// Its id.
    pub id: Uuid,
    /// Bumped by each change.
    pub version: i64,
    /// `PO-000001`.
    pub number: String,
    /// The supplier.
    pub supplier_id: Uuid,
    /// Delivered to.
    pub location_id: Uuid,
    /// The job of a special order.
    pub job_id: Option<Uuid>,
    /// draft, submitted, partially_received, received, closed or cancelled.
    pub status: PurchaseOrderStatusDto,
    /// The day of the reorder pass that drafted it.
    pub reorder_date: Option<NaiveDate>,
    /// Its lines.
    pub lines: Vec<PurchaseOrderLineDto>,
    /// Σ quantity × unit cost, rounded.
    pub total: String,
    /// The bills recorded against it.
    pub bills: Vec<SupplierBillDto>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was sent to the supplier.
    pub submitted_at: Option<DateTime<Utc>>,
    /// Why it was called off.
    pub cancel_reason: Option<String>,
}

impl From<PurchaseOrder> for PurchaseOrderDto {
    fn from(o: PurchaseOrder) -> Self {
        let text = |d: rust_decimal::Decimal| d.normalize().to_string();
        Self {
            id: o.id.as_uuid(),
            version: o.version,
            number: o.number,
            supplier_id: o.supplier_id.as_uuid(),
            location_id: o.location_id.as_uuid(),
            job_id: o.job_id.map(|j| j.as_uuid()),
            status: o.status.into(),
            reorder_date: o.reorder_date,
            lines: o
                .lines
                .iter()
                .map(|l| PurchaseOrderLineDto {
                    line: l.line,
                    item_id: l.item_id.as_uuid(),
                    quantity: text(l.quantity.get()),
                    unit_cost: text(l.unit_cost.amount()),
                    received: text(l.received),
                    billed: text(l.billed),
                })
                .collect(),
            total: o.total.amount_text(),
            bills: o.bills.into_iter().map(Into::into).collect(),
            created_at: o.created_at,
            submitted_at: o.submitted_at,
            cancel_reason: o.cancel_reason,
        }
    }
}

/// What a receipt did.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PurchaseOrderReceiptDto {
    /// The order after it.
    pub purchase_order: PurchaseOrderDto,
    /// The ledger rows: a receipt per line (and, for a special order, a reservation for its
    /// job).
    pub entries: Vec<StockEntryDto>,
}

impl From<Received> for PurchaseOrderReceiptDto {
    fn from(r: Received) -> Self {
        Self {
            purchase_order: r.purchase_order.into(),
            entries: r.entries.into_iter().map(Into::into).collect(),
        }
    }
}

/// A page of purchase orders.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PurchaseOrderPage {
    /// The orders, oldest first.
    pub items: Vec<PurchaseOrderDto>,
    /// The cursor of the next page, or null on the last.
    pub next_cursor: Option<String>,
}

fn days(v: &mut Validator, field: &str, value: Option<u16>) -> Option<Option<u16>> {
    match value {
        Some(d) if d > 365 => v.check::<Option<u16>>(
            field,
            Err(hestami_core::Invalid::new(
                "out_of_range",
                "a number of days is 0 to 365",
            )),
        ),
        other => Some(other),
    }
}

fn convert_create_supplier(i: CreateSupplierInput) -> Result<ProcurementCommand, ApiError> {
    validate(|v| {
        let name = v.check("name", Label::parse(&i.name));
        let contact = v.optional("contactName", i.contact_name.as_deref(), Label::parse);
        let email = v.optional("email", i.email.as_deref(), Email::parse);
        let phone = v.optional("phone", i.phone.as_deref(), Phone::parse);
        let terms = days(v, "paymentTermsDays", i.payment_terms_days);
        Some(ProcurementCommand::CreateSupplier(NewSupplier {
            name: name?,
            contact_name: contact?,
            email: email?,
            phone: phone?,
            payment_terms_days: terms?.unwrap_or(30),
        }))
    })
}

fn convert_set_supplier_item(
    i: SetSupplierItemInput,
    currency: Currency,
) -> Result<ProcurementCommand, ApiError> {
    validate(|v| {
        let part = v.optional("partNumber", i.part_number.as_deref(), Label::parse);
        let pack = v.optional("packSize", i.pack_size.as_deref(), |raw| {
            decimal(raw).and_then(Quantity::parse)
        });
        let price = match &i.last_price {
            None => Some(None),
            Some(raw) => money(v, "lastPrice", raw, currency).map(Some),
        };
        let lead = days(v, "leadTimeDays", i.lead_time_days);
        Some(ProcurementCommand::SetSupplierItem(SupplierItem {
            supplier_id: SupplierId::from_uuid(i.supplier_id),
            item_id: PricebookItemId::from_uuid(i.item_id),
            part_number: part?,
            pack_size: pack?,
            last_price: price?,
            lead_time_days: lead?,
            preferred: i.preferred.unwrap_or(false),
        }))
    })
}

fn convert_set_reorder_point(i: SetReorderPointInput) -> Result<ProcurementCommand, ApiError> {
    validate(|v| {
        let min = v.check("min", decimal(&i.min).and_then(ReorderLevel::bound));
        let max = v.check("max", decimal(&i.max).and_then(ReorderLevel::bound));
        let level = v.check("max", ReorderLevel::new(min?, max?))?;
        Some(ProcurementCommand::SetReorderPoint(SetReorderPoint {
            item_id: PricebookItemId::from_uuid(i.item_id),
            location_id: StockLocationId::from_uuid(i.location_id),
            level,
            source_location_id: i.source_location_id.map(StockLocationId::from_uuid),
        }))
    })
}

fn convert_create_order(
    i: CreatePurchaseOrderInput,
    currency: Currency,
) -> Result<ProcurementCommand, ApiError> {
    validate(|v| {
        let mut lines = Vec::with_capacity(i.lines.len());
        let mut ok = true;
        for (n, l) in i.lines.iter().enumerate() {
            let q = quantity(v, &format!("lines[{n}].quantity"), &l.quantity);
            let cost = match &l.unit_cost {
                None => Some(None),
                Some(raw) => money(v, &format!("lines[{n}].unitCost"), raw, currency).map(Some),
            };
            match (q, cost) {
                (Some(quantity), Some(unit_cost)) => lines.push(NewOrderLine {
                    item_id: PricebookItemId::from_uuid(l.item_id),
                    quantity,
                    unit_cost,
                }),
                _ => ok = false,
            }
        }
        ok.then(|| {
            ProcurementCommand::CreatePurchaseOrder(NewPurchaseOrder {
                supplier_id: SupplierId::from_uuid(i.supplier_id),
                location_id: StockLocationId::from_uuid(i.location_id),
                job_id: i.job_id.map(JobId::from_uuid),
                lines,
            })
        })
    })
}

fn order_ref(id: Uuid) -> OrderRef {
    OrderRef {
        purchase_order_id: PurchaseOrderId::from_uuid(id),
    }
}

fn convert_submit(i: PurchaseOrderRefInput) -> Result<ProcurementCommand, ApiError> {
    Ok(ProcurementCommand::SubmitPurchaseOrder(order_ref(
        i.purchase_order_id,
    )))
}

fn convert_close(i: PurchaseOrderRefInput) -> Result<ProcurementCommand, ApiError> {
    Ok(ProcurementCommand::ClosePurchaseOrder(order_ref(
        i.purchase_order_id,
    )))
}

fn convert_cancel(i: CancelPurchaseOrderInput) -> Result<ProcurementCommand, ApiError> {
    validate(|v| {
        let reason = v.check("reason", Reason::parse(&i.reason));
        Some(ProcurementCommand::CancelPurchaseOrder(CancelOrder {
            purchase_order_id: PurchaseOrderId::from_uuid(i.purchase_order_id),
            reason: reason?,
        }))
    })
}

fn convert_receive(i: ReceivePurchaseOrderInput) -> Result<ProcurementCommand, ApiError> {
    validate(|v| {
        let mut lines = Vec::with_capacity(i.lines.len());
        let mut ok = true;
        for (n, l) in i.lines.iter().enumerate() {
            let q = quantity(v, &format!("lines[{n}].quantity"), &l.quantity);
            let units = super::inventory::units(v, &format!("lines[{n}]."), &l.serials, &l.lot);
            match (q, units) {
                (Some(quantity), Some(units)) => lines.push(ReceivedLine {
                    line: l.line,
                    quantity,
                    units,
                }),
                _ => ok = false,
            }
        }
        ok.then(|| {
            ProcurementCommand::ReceivePurchaseOrder(ReceiveOrder {
                purchase_order_id: PurchaseOrderId::from_uuid(i.purchase_order_id),
                location_id: i.location_id.map(StockLocationId::from_uuid),
                lines,
                allow_over_receipt: i.allow_over_receipt.unwrap_or(false),
            })
        })
    })
}

fn convert_bill(
    i: RecordSupplierBillInput,
    currency: Currency,
) -> Result<ProcurementCommand, ApiError> {
    validate(|v| {
        let number = v.check("number", Label::parse(&i.number));
        let mut lines = Vec::with_capacity(i.lines.len());
        let mut ok = true;
        for (n, l) in i.lines.iter().enumerate() {
            let q = quantity(v, &format!("lines[{n}].quantity"), &l.quantity);
            let cost = money(v, &format!("lines[{n}].unitCost"), &l.unit_cost, currency);
            match (q, cost) {
                (Some(quantity), Some(unit_cost)) => lines.push(BillLine {
                    line: l.line,
                    quantity,
                    unit_cost,
                }),
                _ => ok = false,
            }
        }
        let number = number?;
        ok.then(|| {
            ProcurementCommand::RecordSupplierBill(NewBill {
                purchase_order_id: PurchaseOrderId::from_uuid(i.purchase_order_id),
                number,
                lines,
            })
        })
    })
}

async fn list_suppliers(ctx: Ctx, _: Empty) -> Result<SupplierList, ApiError> {
    let items = ctx.services.suppliers(ctx.caller()?).await?;
    Ok(SupplierList {
        items: items.into_iter().map(Into::into).collect(),
    })
}

async fn reorder_points(ctx: Ctx, i: ReorderPointsInput) -> Result<ReorderPointList, ApiError> {
    let points = ctx
        .services
        .reorder_points(ctx.caller()?, i.below_only.unwrap_or(false))
        .await?;
    Ok(ReorderPointList {
        items: points.into_iter().map(Into::into).collect(),
    })
}

async fn get_order(ctx: Ctx, i: GetPurchaseOrderInput) -> Result<PurchaseOrderDto, ApiError> {
    let order = ctx
        .services
        .purchase_order(
            ctx.caller()?,
            PurchaseOrderId::from_uuid(i.purchase_order_id),
        )
        .await?;
    Ok(order.into())
}

async fn list_orders(ctx: Ctx, i: PurchaseOrdersInput) -> Result<PurchaseOrderPage, ApiError> {
    let page = PageRequest::parse(i.limit, i.cursor.as_deref())?;
    let filter = OrderFilter {
        supplier_id: i.supplier_id.map(SupplierId::from_uuid),
        open: i.open.unwrap_or(false),
    };
    let found = ctx
        .services
        .purchase_orders(ctx.caller()?, filter, page)
        .await?;
    Ok(PurchaseOrderPage {
        items: found.items.into_iter().map(Into::into).collect(),
        next_cursor: found.next_cursor,
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
            name("createSupplier", "Add a supplier", &[]),
            convert_create_supplier,
            <SupplierDto as From<Supplier>>::from,
        ),
        query(
            name("listSuppliers", "The suppliers and what each sells", &[]),
            list_suppliers,
        ),
        mutation_in(
            name(
                "setSupplierItem",
                "Say what a supplier sells of a material: part number, pack size, price, lead time, preferred",
                &["NOT_FOUND", "ITEM_NOT_STOCKED", "CONCURRENT_UPDATE"],
            ),
            convert_set_supplier_item,
            <SupplierItemDto as From<SupplierItem>>::from,
        ),
        mutation(
            name(
                "setReorderPoint",
                "Keep a material between a minimum and a maximum at a location",
                &["NOT_FOUND", "ITEM_NOT_STOCKED"],
            ),
            convert_set_reorder_point,
            <ReorderPointDto as From<ReorderPoint>>::from,
        ),
        query(
            name(
                "reorderPoints",
                "Reorder points, where each location stands, and what the reorder pass would order",
                &[],
            ),
            reorder_points,
        ),
        mutation_in(
            name(
                "createPurchaseOrder",
                "Draft a purchase order to a supplier (for a job: a special order)",
                &["NOT_FOUND", "ITEM_NOT_STOCKED"],
            ),
            convert_create_order,
            <PurchaseOrderDto as From<PurchaseOrder>>::from,
        ),
        mutation(
            name(
                "submitPurchaseOrder",
                "Send a drafted purchase order to its supplier (through the outbox)",
                &["NOT_FOUND", "PURCHASE_ORDER_STATE"],
            ),
            convert_submit,
            <PurchaseOrderDto as From<PurchaseOrder>>::from,
        ),
        mutation(
            name(
                "receivePurchaseOrder",
                "Receive all or part of a purchase order into a location, at its costs",
                &[
                    "NOT_FOUND",
                    "ITEM_NOT_STOCKED",
                    "PURCHASE_ORDER_STATE",
                    "OVER_RECEIPT",
                    "SERIAL_EXISTS",
                ],
            ),
            convert_receive,
            <PurchaseOrderReceiptDto as From<Received>>::from,
        ),
        mutation(
            name(
                "cancelPurchaseOrder",
                "Call off a purchase order nothing of which has arrived",
                &["NOT_FOUND", "PURCHASE_ORDER_STATE"],
            ),
            convert_cancel,
            <PurchaseOrderDto as From<PurchaseOrder>>::from,
        ),
        mutation(
            name(
                "closePurchaseOrder",
                "Expect nothing more of a purchase order",
                &["NOT_FOUND", "PURCHASE_ORDER_STATE"],
            ),
            convert_close,
            <PurchaseOrderDto as From<PurchaseOrder>>::from,
        ),
        mutation_in(
            name(
                "recordSupplierBill",
                "Record a supplier's bill against a purchase order, matched with what was ordered and received",
                &["NOT_FOUND", "PURCHASE_ORDER_STATE", "BILL_EXISTS"],
            ),
            convert_bill,
            <SupplierBillDto as From<SupplierBill>>::from,
        ),
        query(
            name(
                "getPurchaseOrder",
                "A purchase order with its lines and bills",
                &["NOT_FOUND"],
            ),
            get_order,
        ),
        query(
            name(
                "purchaseOrders",
                "Purchase orders, open or all, of a supplier or all, oldest first",
                &[],
            ),
            list_orders,
        ),
    ]
}
