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

use hestami_core::ids::{JobId, PricebookItemId, StockLocationId, TechnicianId};
use hestami_core::inventory::{self as core_inv, Balance, ItemCost, Movement, Quantity};
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
        }
    }
    fn subject(&self) -> Option<super::Subject> {
        match self {
            // A technician records what they used on their own jobs only.
            Self::RecordUsage(u) => Some(super::Subject::Job(u.job_id)),
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
}

/// What a movement did: its ledger rows (two for a transfer) and, for usage, the job's work.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Posted {
    /// The ledger rows written.
    pub entries: Vec<LedgerEntry>,
    /// For `recordUsage`: the job's work with the material on its actuals.
    #[serde(default)]
    pub work: Option<super::job::JobWork>,
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
    /// On hand (may be below zero only where allowed).
    #[serde(with = "rust_decimal::serde::str")]
    pub on_hand: Decimal,
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
            return Err(Failure::validation(vec![crate::error::FieldError {
                field: "technicianId".into(),
                code: "required".into(),
                message: "a truck belongs to a technician".into(),
            }])
            .into());
        }
        (LocationKind::Warehouse, Some(_)) => {
            return Err(Failure::validation(vec![crate::error::FieldError {
                field: "technicianId".into(),
                code: "not_applicable".into(),
                message: "a warehouse belongs to no technician".into(),
            }])
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

async fn load_location(tx: &mut TenantTx, id: StockLocationId) -> Result<Location, StoreError> {
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
async fn stocked_item(
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

/// Locks (creating at 0) the balance of `item` at `location`.
async fn lock_balance(
    tx: &mut TenantTx,
    item: PricebookItemId,
    location: StockLocationId,
) -> Result<Balance, StoreError> {
    let org = tx.org();
    let now = tx.now();
    tx.execute(
        "INSERT INTO stock_balances (organization_id, item_id, location_id, on_hand, updated_at) \
         VALUES ($1, $2, $3, '0', $4) ON CONFLICT (organization_id, item_id, location_id) DO NOTHING",
        args![org, item.as_uuid(), location.as_uuid(), now],
    )
    .await?;
    let row = tx
        .fetch_one(
            &format!(
                "SELECT on_hand FROM stock_balances WHERE organization_id = $1 AND item_id = $2 \
                 AND location_id = $3{}",
                tx.for_update()
            ),
            args![org, item.as_uuid(), location.as_uuid()],
        )
        .await?;
    Ok(Balance {
        on_hand: decimal(&row, "on_hand")?,
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

fn decimal(row: &Row, column: &str) -> Result<Decimal, StoreError> {
    row.get::<String>(column)?
        .parse()
        .map_err(|e| StoreError::Internal(format!("stored {column}: {e}")))
}

/// Posts `movement` of `item` at `location` (its balance locked already): the ledger row, the
/// balance and the cost. Returns the ledger row.
#[allow(clippy::too_many_arguments)]
async fn post_locked(
    tx: &mut TenantTx,
    item: PricebookItemId,
    initial_cost: Money,
    location: &Location,
    balance: Balance,
    movement: Movement,
    counterpart_id: Option<uuid::Uuid>,
    reason: Option<&Reason>,
) -> Result<LedgerEntry, StoreError> {
    let next = core_inv::post(&balance, &movement, location.allow_negative).map_err(|e| {
        let f = Failure::new(
            if e.code() == "INSUFFICIENT_STOCK" {
                FailureKind::RuleViolation
            } else {
                FailureKind::Validation
            },
            e.code(),
            e.to_string(),
        );
        match e {
            core_inv::InventoryError::InsufficientStock { available, .. } => {
                StoreError::from(f.with_details(serde_json::json!({
                    "available": available.normalize().to_string(),
                    "locationId": location.id,
                })))
            }
            _ => StoreError::from(f),
        }
    })?;
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
    let job_id = match &movement {
        Movement::Consumption { job_id, .. } | Movement::Return { job_id, .. } => Some(*job_id),
        _ => None,
    };
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
        counterpart_id,
        reason: reason.map(|r| r.as_str().to_owned()),
        actor_user_id: tx.actor().map(|a| a.as_uuid()),
        at: now,
    };
    tx.execute(
        "INSERT INTO stock_ledger (organization_id, id, item_id, location_id, kind, delta, unit_cost, on_hand_after, \
         job_id, counterpart_id, reason, actor_user_id, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
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
            counterpart_id,
            entry.reason.as_deref(),
            entry.actor_user_id,
            now
        ],
    )
    .await?;
    tx.execute(
        "UPDATE stock_balances SET on_hand = $1, updated_at = $2 WHERE organization_id = $3 AND item_id = $4 \
         AND location_id = $5",
        args![next.on_hand.to_string(), now, org, item.as_uuid(), location.id.as_uuid()],
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
    tx.record_change("stock_entry", entry.id, 1, Operation::Created)
        .await?;
    Ok(entry)
}

async fn receive(tx: &mut TenantTx, r: Receive) -> Result<Posted, StoreError> {
    let (_, cost) = stocked_item(tx, r.item_id).await?;
    let location = load_location(tx, r.location_id).await?;
    let unit_cost = r.unit_cost.unwrap_or(cost);
    let balance = lock_balance(tx, r.item_id, location.id).await?;
    let movement = Movement::Receipt {
        quantity: r.quantity,
        unit_cost,
    };
    let entry = post_locked(
        tx, r.item_id, cost, &location, balance, movement, None, None,
    )
    .await?;
    Ok(Posted {
        entries: vec![entry],
        work: None,
    })
}

async fn transfer(tx: &mut TenantTx, t: Transfer) -> Result<Posted, StoreError> {
    let (_, cost) = stocked_item(tx, t.item_id).await?;
    let from = load_location(tx, t.from_location_id).await?;
    let to = load_location(tx, t.to_location_id).await?;
    if from.id == to.id {
        return Err(Failure::validation(vec![crate::error::FieldError {
            field: "toLocationId".into(),
            code: "same_location".into(),
            message: "a transfer goes to another location".into(),
        }])
        .into());
    }
    // Both balances in location order, then the cost (see the module docs).
    let (first, second) = if from.id <= to.id {
        (from.id, to.id)
    } else {
        (to.id, from.id)
    };
    let first_balance = lock_balance(tx, t.item_id, first).await?;
    let second_balance = lock_balance(tx, t.item_id, second).await?;
    let (from_balance, to_balance) = if first == from.id {
        (first_balance, second_balance)
    } else {
        (second_balance, first_balance)
    };
    let out = post_locked(
        tx,
        t.item_id,
        cost,
        &from,
        from_balance,
        Movement::TransferOut {
            quantity: t.quantity,
        },
        None,
        None,
    )
    .await?;
    let inward = post_locked(
        tx,
        t.item_id,
        cost,
        &to,
        to_balance,
        Movement::TransferIn {
            quantity: t.quantity,
        },
        Some(out.id),
        None,
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
    Ok(Posted {
        entries: vec![out, inward],
        work: None,
    })
}

async fn adjust(tx: &mut TenantTx, a: Adjust) -> Result<Posted, StoreError> {
    let (_, cost) = stocked_item(tx, a.item_id).await?;
    let location = load_location(tx, a.location_id).await?;
    let balance = lock_balance(tx, a.item_id, location.id).await?;
    let delta = match a.by {
        AdjustBy::Delta { delta } => delta,
        AdjustBy::Count { counted } => counted - balance.on_hand,
    };
    if delta.is_zero() {
        // A count that confirms what is on hand changes nothing and writes no row.
        return Ok(Posted {
            entries: Vec::new(),
            work: None,
        });
    }
    let entry = post_locked(
        tx,
        a.item_id,
        cost,
        &location,
        balance,
        Movement::Adjustment { delta },
        None,
        Some(&a.reason),
    )
    .await?;
    Ok(Posted {
        entries: vec![entry],
        work: None,
    })
}

async fn record_usage(tx: &mut TenantTx, u: RecordUsage) -> Result<Posted, StoreError> {
    let (_, cost) = stocked_item(tx, u.item_id).await?;
    // The job first (locked; a closed job refuses), as every job change takes it.
    let job = super::job::load(tx, u.job_id, true).await?;
    let location = match u.location_id {
        Some(id) => load_location(tx, id).await?,
        None => {
            let Some(technician) = job.technician_id else {
                return Err(failure(
                    "LOCATION_REQUIRED",
                    "the job has no technician whose truck to take it from; name the location",
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
            })?
        }
    };
    let line = QuoteLine {
        source: LineSource::Item {
            item_id: u.item_id,
            revision: None,
            skill_level: None,
            labor_time: None,
        },
        quantity: u.quantity.get(),
        description: None,
    };
    let work = super::job::record_actuals(
        tx,
        super::job::RecordActuals {
            job_id: job.id,
            lines: vec![line],
        },
    )
    .await?;
    let balance = lock_balance(tx, u.item_id, location.id).await?;
    let entry = post_locked(
        tx,
        u.item_id,
        cost,
        &location,
        balance,
        Movement::Consumption {
            quantity: u.quantity,
            job_id: job.id,
        },
        None,
        None,
    )
    .await?;
    Ok(Posted {
        entries: vec![entry],
        work: Some(work),
    })
}

const ENTRY_COLUMNS: &str = "l.id, l.item_id, l.location_id, l.kind, l.delta, l.unit_cost, l.on_hand_after, \
     l.job_id, l.counterpart_id, l.reason, l.actor_user_id, l.at";

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
    })
}

/// What `inventory/v1/stock` lists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StockFilter {
    /// Only this material.
    pub item_id: Option<PricebookItemId>,
    /// Only this location.
    pub location_id: Option<StockLocationId>,
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
                        "SELECT b.item_id, i.name, b.location_id, b.on_hand, c.average FROM stock_balances b \
                         JOIN stock_costs c ON c.organization_id = b.organization_id AND c.item_id = b.item_id \
                         JOIN pricebook_items i ON i.organization_id = b.organization_id AND i.id = b.item_id \
                         WHERE b.organization_id = $1 AND ($2 IS NULL OR b.item_id = $2) \
                         AND ($3 IS NULL OR b.location_id = $3) ORDER BY b.item_id, b.location_id",
                        args![
                            org,
                            filter.item_id.map(|i| i.as_uuid()),
                            filter.location_id.map(|l| l.as_uuid())
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
                            on_hand,
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
}
