//! The pricebook (`pricebook/v1`, workflow `pricebook_item_v1`): items and their revisions,
//! the markup tiers and tax rates, the CSV import, and the one pricing path every estimate,
//! invoice and `quote` goes through (`price`).
//!
//! An item's current revision lives in `pricebook_items` (with the columns search and import
//! filter on) and every revision, the first included, in `pricebook_item_revisions`, so a priced
//! line that names `(item, revision)` can always be read back as it was.

use std::collections::BTreeMap;

use hestami_core::ids::{CustomerId, PricebookItemId, PropertyId};
use hestami_core::money::FieldError as CoreFieldError;
use hestami_core::pricebook::import::lookup_key;
use hestami_core::pricebook::{
    self as core_pricebook, ItemDetails, ItemDraft, ItemKind, LineSource, MarkupTiers,
    PricebookItem, PricingContext, Quote, QuoteRequest, TaxRates,
};
use serde::{Deserialize, Serialize};

use super::{
    Caller, Command, Page, PageRequest, Services, check_version, decode_body, like_pattern,
    load_body,
};
use crate::db::args;
use crate::directory::load_organization;
use crate::engine::WorkflowCtx;
use crate::error::{Failure, FailureKind, FieldError, StoreError};
use crate::store::{Operation, TenantTx, new_id};

/// The workflow of every pricebook change.
pub const WORKFLOW: &str = "pricebook_item_v1";

/// `pricebook/v1/updateItem`: the next revision of an item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateItem {
    /// Which item.
    pub item_id: PricebookItemId,
    /// Its new content (the kind cannot change).
    pub draft: ItemDraft,
    /// Fail with `VERSION_CONFLICT` unless the item is at this revision.
    pub expected_revision: Option<u32>,
    /// Keep a service's trip-fee mark as it is (the request did not say), whatever the draft
    /// holds.
    #[serde(default)]
    pub keep_trip_fee: bool,
}

/// `pricebook/v1/archiveItem`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveItem {
    /// Which item.
    pub item_id: PricebookItemId,
    /// Fail with `VERSION_CONFLICT` unless the item is at this revision.
    pub expected_revision: Option<u32>,
}

/// `pricebook/v1/setMarkupTiers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetMarkupTiers {
    /// The whole table (it replaces the current one).
    pub tiers: MarkupTiers,
    /// Fail with `VERSION_CONFLICT` unless the settings are at this version.
    pub expected_version: Option<i64>,
}

/// `pricebook/v1/setTaxRates`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetTaxRates {
    /// The whole table (it replaces the current one).
    pub rates: TaxRates,
    /// Fail with `VERSION_CONFLICT` unless the settings are at this version.
    pub expected_version: Option<i64>,
}

/// `pricebook/v1/importBatch`: up to 1,000 parsed rows, applied all or nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportBatch {
    /// The rows, parsed (see `hestami_core::pricebook::import`).
    pub rows: Vec<ItemDraft>,
}

/// The pricebook namespace's mutating procedures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "procedure", content = "input")]
pub enum PricebookCommand {
    /// `pricebook/v1/createItem`.
    #[serde(rename = "pricebook/v1/createItem")]
    CreateItem(ItemDraft),
    /// `pricebook/v1/updateItem`.
    #[serde(rename = "pricebook/v1/updateItem")]
    UpdateItem(UpdateItem),
    /// `pricebook/v1/archiveItem`.
    #[serde(rename = "pricebook/v1/archiveItem")]
    ArchiveItem(ArchiveItem),
    /// `pricebook/v1/setMarkupTiers`.
    #[serde(rename = "pricebook/v1/setMarkupTiers")]
    SetMarkupTiers(SetMarkupTiers),
    /// `pricebook/v1/setTaxRates`.
    #[serde(rename = "pricebook/v1/setTaxRates")]
    SetTaxRates(SetTaxRates),
    /// `pricebook/v1/importBatch`.
    #[serde(rename = "pricebook/v1/importBatch")]
    ImportBatch(ImportBatch),
}

impl Command for PricebookCommand {
    const WORKFLOW: &'static str = WORKFLOW;
    fn procedure(&self) -> &'static str {
        match self {
            Self::CreateItem(_) => "pricebook/v1/createItem",
            Self::UpdateItem(_) => "pricebook/v1/updateItem",
            Self::ArchiveItem(_) => "pricebook/v1/archiveItem",
            Self::SetMarkupTiers(_) => "pricebook/v1/setMarkupTiers",
            Self::SetTaxRates(_) => "pricebook/v1/setTaxRates",
            Self::ImportBatch(_) => "pricebook/v1/importBatch",
        }
    }
}

/// The organization's pricing tables.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PricingSettings {
    /// 0 until first set, +1 on each change.
    pub version: i64,
    /// The tiered markup for materials priced by tier.
    pub markup_tiers: MarkupTiers,
    /// The sales taxes by jurisdiction.
    pub tax_rates: TaxRates,
}

/// What an import did with one row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportOutcome {
    /// A new item.
    Created,
    /// A new revision of an existing item.
    Updated,
    /// The item already had this content.
    Unchanged,
}

/// One row's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportedRow {
    /// The item.
    pub item_id: PricebookItemId,
    /// Its current revision.
    pub revision: u32,
    /// What happened.
    pub outcome: ImportOutcome,
}

/// What a batch did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    /// New items.
    pub created: u32,
    /// Items given a new revision.
    pub updated: u32,
    /// Items already as given.
    pub unchanged: u32,
    /// Each row, in order.
    pub rows: Vec<ImportedRow>,
}

/// Core problems as a `400 VALIDATION_FAILED`, each field prefixed with `prefix`.
pub(crate) fn invalid(prefix: &str, problems: Vec<CoreFieldError>) -> Failure {
    Failure::validation(
        problems
            .into_iter()
            .map(|p| FieldError {
                field: format!("{prefix}{}", p.field),
                code: p.code.to_owned(),
                message: p.message,
            })
            .collect(),
    )
}

pub(crate) async fn run(
    mut ctx: WorkflowCtx,
    command: PricebookCommand,
) -> Result<serde_json::Value, StoreError> {
    use PricebookCommand as C;
    let value = match command {
        C::CreateItem(draft) => {
            let item = ctx
                .step("create_item", move |tx| {
                    Box::pin(async move {
                        ensure_known_trade(tx, &draft.details).await?;
                        let org = load_organization(tx, false).await?;
                        let id = PricebookItemId::from_uuid(new_id());
                        let item = core_pricebook::create_item(id, draft, org.currency, tx.now())
                            .map_err(|p| invalid("", p))?;
                        insert_item(tx, &item).await?;
                        Ok(item)
                    })
                })
                .await?;
            serde_json::to_value(item)?
        }
        C::UpdateItem(u) => {
            let item = ctx
                .step("revise_item", move |tx| {
                    Box::pin(async move {
                        ensure_known_trade(tx, &u.draft.details).await?;
                        let org = load_organization(tx, false).await?;
                        let current = load_item(tx, u.item_id, true).await?;
                        check_version(
                            "item",
                            u.expected_revision.map(i64::from),
                            i64::from(current.revision),
                        )?;
                        let mut draft = u.draft;
                        if u.keep_trip_fee {
                            draft.details.keep_trip_fee(&current.details);
                        }
                        let next =
                            core_pricebook::revise_item(&current, draft, org.currency, tx.now())
                                .map_err(|p| invalid("", p))?;
                        save_revision(tx, &next).await?;
                        Ok(next)
                    })
                })
                .await?;
            serde_json::to_value(item)?
        }
        C::ArchiveItem(a) => {
            let item = ctx
                .step("archive_item", move |tx| {
                    Box::pin(async move {
                        let current = load_item(tx, a.item_id, true).await?;
                        check_version(
                            "item",
                            a.expected_revision.map(i64::from),
                            i64::from(current.revision),
                        )?;
                        let Some(next) = core_pricebook::archive_item(&current, tx.now()) else {
                            return Err(Failure::new(
                                FailureKind::Conflict,
                                "ITEM_ARCHIVED",
                                "the item is archived already",
                            )
                            .into());
                        };
                        save_revision(tx, &next).await?;
                        Ok(next)
                    })
                })
                .await?;
            serde_json::to_value(item)?
        }
        C::SetMarkupTiers(s) => {
            let settings = ctx
                .step("set_markup_tiers", move |tx| {
                    Box::pin(async move {
                        let mut settings = load_settings(tx, true).await?;
                        check_version("pricing settings", s.expected_version, settings.version)?;
                        settings.markup_tiers = s.tiers;
                        save_settings(tx, settings).await
                    })
                })
                .await?;
            serde_json::to_value(settings)?
        }
        C::SetTaxRates(s) => {
            let settings = ctx
                .step("set_tax_rates", move |tx| {
                    Box::pin(async move {
                        let mut settings = load_settings(tx, true).await?;
                        check_version("pricing settings", s.expected_version, settings.version)?;
                        settings.tax_rates = s.rates;
                        save_settings(tx, settings).await
                    })
                })
                .await?;
            serde_json::to_value(settings)?
        }
        C::ImportBatch(batch) => {
            let report = ctx
                .step("import_batch", move |tx| Box::pin(import(tx, batch.rows)))
                .await?;
            serde_json::to_value(report)?
        }
    };
    Ok(value)
}

/// The trade a service or labour item names.
fn trade_of(details: &ItemDetails) -> Option<&hestami_core::text::TradeCode> {
    match details {
        ItemDetails::Service { trade, .. } | ItemDetails::Labor { trade, .. } => Some(trade),
        _ => None,
    }
}

/// `422 TRADE_UNKNOWN` unless the item's trade, if it names one, is in the catalogue.
async fn ensure_known_trade(tx: &mut TenantTx, details: &ItemDetails) -> Result<(), StoreError> {
    let given = trade_of(details)
        .map(|t| vec![("details.trade".to_owned(), t.clone())])
        .unwrap_or_default();
    super::trades::ensure_known(tx, given).await
}

fn sku_of(item: &PricebookItem) -> Option<&str> {
    match &item.details {
        ItemDetails::Material { sku, .. } => Some(sku.as_str()),
        _ => None,
    }
}

fn search_text(item: &PricebookItem) -> String {
    let mut text = item.name.as_str().to_lowercase();
    for extra in [
        item.description.as_ref().map(|d| d.as_str()),
        item.category.as_ref().map(|c| c.as_str()),
        sku_of(item),
    ]
    .into_iter()
    .flatten()
    {
        text.push(' ');
        text.push_str(&extra.to_lowercase());
    }
    text
}

fn draft_of(item: &PricebookItem) -> ItemDraft {
    ItemDraft {
        name: item.name.clone(),
        description: item.description.clone(),
        category: item.category.clone(),
        details: item.details.clone(),
    }
}

/// A material's SKU (or another kind's name) is taken by another item.
fn duplicate(field: &str, item: &PricebookItem) -> Failure {
    let (field, what) = match sku_of(item) {
        Some(_) => (format!("{field}details.sku"), "SKU"),
        None => (format!("{field}name"), "name"),
    };
    Failure::validation(vec![FieldError {
        field,
        code: "duplicate".into(),
        message: format!(
            "another {} item has this {what}; update that item instead",
            item.kind()
        ),
    }])
}

async fn insert_item(tx: &mut TenantTx, item: &PricebookItem) -> Result<(), StoreError> {
    let org = tx.org();
    let key = lookup_key(&draft_of(item));
    let taken = tx
        .fetch_optional(
            "SELECT id FROM pricebook_items WHERE organization_id = $1 AND lookup_key = $2 AND NOT archived",
            args![org, key.clone()],
        )
        .await?;
    if taken.is_some() {
        return Err(duplicate("", item).into());
    }
    write_new_item(tx, item, key).await?;
    tx.record_change(
        "pricebook_item",
        item.id.as_uuid(),
        i64::from(item.revision),
        Operation::Created,
    )
    .await?;
    Ok(())
}

/// Inserts a new item whose lookup key the caller knows to be free.
async fn write_new_item(
    tx: &mut TenantTx,
    item: &PricebookItem,
    key: String,
) -> Result<(), StoreError> {
    let org = tx.org();
    let now = tx.now();
    // A concurrent writer of the same key commits first: the unique index refuses this row.
    tx.execute(
        "INSERT INTO pricebook_items (organization_id, id, revision, kind, name, category, sku, lookup_key, \
         search_text, archived, body, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
        args![
            org,
            item.id.as_uuid(),
            i64::from(item.revision),
            item.kind().as_str(),
            item.name.as_str(),
            item.category.as_ref().map(|c| c.as_str()),
            sku_of(item),
            key,
            search_text(item),
            item.archived,
            serde_json::to_string(item)?,
            now
        ],
    )
    .await
    .map_err(key_taken)?;
    insert_revision(tx, item).await
}

/// A unique-key refusal: a concurrent writer saved an item with the same SKU (or kind and
/// name) first. A conflict to retry, not an internal error.
fn key_taken(e: StoreError) -> StoreError {
    if e.is_unique_violation() {
        Failure::new(
            FailureKind::Conflict,
            "PRICEBOOK_KEY_TAKEN",
            "another item with the same SKU (or kind and name) was saved at the same time; read it and retry",
        )
        .into()
    } else {
        e
    }
}

async fn insert_revision(tx: &mut TenantTx, item: &PricebookItem) -> Result<(), StoreError> {
    let org = tx.org();
    tx.execute(
        "INSERT INTO pricebook_item_revisions (organization_id, item_id, revision, body, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
        args![
            org,
            item.id.as_uuid(),
            i64::from(item.revision),
            serde_json::to_string(item)?,
            item.revised_at
        ],
    )
    .await?;
    Ok(())
}

/// Makes `next` the item's current revision and keeps it with the earlier ones.
async fn save_revision(tx: &mut TenantTx, next: &PricebookItem) -> Result<(), StoreError> {
    let org = tx.org();
    let key = lookup_key(&draft_of(next));
    let taken = tx
        .fetch_optional(
            "SELECT id FROM pricebook_items WHERE organization_id = $1 AND lookup_key = $2 AND id <> $3 \
             AND NOT archived",
            args![org, key.clone(), next.id.as_uuid()],
        )
        .await?;
    if taken.is_some() {
        return Err(duplicate("", next).into());
    }
    write_revision(tx, next, key).await?;
    tx.record_change(
        "pricebook_item",
        next.id.as_uuid(),
        i64::from(next.revision),
        Operation::Updated,
    )
    .await?;
    Ok(())
}

/// Writes `next` as the item's current revision, under a lookup key the caller knows is the
/// item's own or free.
async fn write_revision(
    tx: &mut TenantTx,
    next: &PricebookItem,
    key: String,
) -> Result<(), StoreError> {
    let org = tx.org();
    tx.execute(
        "UPDATE pricebook_items SET revision = $1, name = $2, category = $3, sku = $4, lookup_key = $5, \
         search_text = $6, archived = $7, body = $8, updated_at = $9 WHERE organization_id = $10 AND id = $11",
        args![
            i64::from(next.revision),
            next.name.as_str(),
            next.category.as_ref().map(|c| c.as_str()),
            sku_of(next),
            key,
            search_text(next),
            next.archived,
            serde_json::to_string(next)?,
            next.revised_at,
            org,
            next.id.as_uuid()
        ],
    )
    .await
    .map_err(key_taken)?;
    insert_revision(tx, next).await
}

/// The current revision of an item; `404` if the organization has no such item.
pub(crate) async fn load_item(
    tx: &mut TenantTx,
    id: PricebookItemId,
    lock: bool,
) -> Result<PricebookItem, StoreError> {
    load_body(tx, "pricebook_items", id.as_uuid(), lock, "pricebook item").await
}

async fn load_revision(
    tx: &mut TenantTx,
    id: PricebookItemId,
    revision: u32,
) -> Result<Option<PricebookItem>, StoreError> {
    let org = tx.org();
    let row = tx
        .fetch_optional(
            "SELECT body FROM pricebook_item_revisions WHERE organization_id = $1 AND item_id = $2 AND revision = $3",
            args![org, id.as_uuid(), i64::from(revision)],
        )
        .await?;
    row.map(|r| decode_body(&r)).transpose()
}

async fn load_settings(tx: &mut TenantTx, lock: bool) -> Result<PricingSettings, StoreError> {
    let sql = format!(
        "SELECT version, markup_tiers, tax_rates FROM pricing_settings WHERE organization_id = $1{}",
        if lock { tx.for_update() } else { "" }
    );
    let org = tx.org();
    match tx.fetch_optional(&sql, args![org]).await? {
        None => Ok(PricingSettings::default()),
        Some(row) => Ok(PricingSettings {
            version: row.get("version")?,
            markup_tiers: serde_json::from_str(&row.get::<String>("markup_tiers")?)?,
            tax_rates: serde_json::from_str(&row.get::<String>("tax_rates")?)?,
        }),
    }
}

async fn save_settings(
    tx: &mut TenantTx,
    mut settings: PricingSettings,
) -> Result<PricingSettings, StoreError> {
    settings.version += 1;
    let org = tx.org();
    let now = tx.now();
    tx.execute(
        "INSERT INTO pricing_settings (organization_id, version, markup_tiers, tax_rates, updated_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (organization_id) DO UPDATE SET version = excluded.version, \
         markup_tiers = excluded.markup_tiers, tax_rates = excluded.tax_rates, updated_at = excluded.updated_at",
        args![
            org,
            settings.version,
            serde_json::to_string(&settings.markup_tiers)?,
            serde_json::to_string(&settings.tax_rates)?,
            now
        ],
    )
    .await?;
    tx.record_change(
        "pricing_settings",
        org,
        settings.version,
        Operation::Updated,
    )
    .await?;
    Ok(settings)
}

async fn import(tx: &mut TenantTx, rows: Vec<ItemDraft>) -> Result<ImportReport, StoreError> {
    let org = load_organization(tx, false).await?;
    let catalogue = super::trades::load_trades(tx, false).await?.trades;
    let now = tx.now();
    let mut report = ImportReport {
        created: 0,
        updated: 0,
        unchanged: 0,
        rows: Vec::with_capacity(rows.len()),
    };
    let mut problems = Vec::new();
    let mut changes = Vec::with_capacity(rows.len());
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let keys: Vec<String> = rows.iter().map(lookup_key).collect();
    // The items the batch names, in one query (locked on PostgreSQL until the batch commits).
    let mut existing: BTreeMap<String, PricebookItem> = BTreeMap::new();
    for chunk in keys.chunks(500) {
        let mut values = args![org.id.as_uuid()];
        let mut placeholders = Vec::with_capacity(chunk.len());
        for key in chunk {
            values.push(key.clone().into());
            placeholders.push(format!("${}", values.len()));
        }
        let sql = format!(
            "SELECT lookup_key, body FROM pricebook_items WHERE organization_id = $1 AND NOT archived \
             AND lookup_key IN ({}){}",
            placeholders.join(", "),
            tx.for_update()
        );
        for row in tx.fetch_all(&sql, values).await? {
            existing.insert(row.get("lookup_key")?, decode_body(&row)?);
        }
    }
    for (i, (draft, key)) in rows.into_iter().zip(keys).enumerate() {
        let prefix = format!("rows[{i}].");
        if let Some(first) = seen.insert(key.clone(), i) {
            problems.push(FieldError {
                field: format!("{prefix}name"),
                code: "duplicate".into(),
                message: format!("row {first} names the same item"),
            });
            continue;
        }
        // A row is refused like any other bad row (so the batch can be resent without it), with
        // the closest known trade named.
        if let Some(trade) = trade_of(&draft.details)
            && let Some(unknown) = catalogue.unknown([(format!("{prefix}trade"), trade)]).pop()
        {
            problems.push(FieldError {
                field: unknown.field.clone(),
                code: "unknown_trade".into(),
                message: unknown.message(),
            });
            continue;
        }
        let mut draft = draft;
        if let Some(current) = existing.get(&key) {
            hestami_core::pricebook::import::keep_unimported(&mut draft, &current.details);
        }
        let result = match existing.remove(&key) {
            None => {
                let id = PricebookItemId::from_uuid(new_id());
                match core_pricebook::create_item(id, draft, org.currency, now) {
                    Ok(item) => {
                        // The key is free: checked above, and unique within the batch.
                        write_new_item(tx, &item, key).await?;
                        changes.push((
                            item.id.as_uuid(),
                            i64::from(item.revision),
                            Operation::Created,
                        ));
                        report.created += 1;
                        Ok((item, ImportOutcome::Created))
                    }
                    Err(p) => Err(p),
                }
            }
            Some(current) if draft_of(&current) == draft => {
                report.unchanged += 1;
                Ok((current, ImportOutcome::Unchanged))
            }
            Some(current) => {
                match core_pricebook::revise_item(&current, draft, org.currency, now) {
                    Ok(next) => {
                        // The key matched this item, and is unique within the batch.
                        write_revision(tx, &next, key).await?;
                        changes.push((
                            next.id.as_uuid(),
                            i64::from(next.revision),
                            Operation::Updated,
                        ));
                        report.updated += 1;
                        Ok((next, ImportOutcome::Updated))
                    }
                    Err(p) => Err(p),
                }
            }
        };
        match result {
            Ok((item, outcome)) => report.rows.push(ImportedRow {
                item_id: item.id,
                revision: item.revision,
                outcome,
            }),
            Err(p) => problems.extend(p.into_iter().map(|p| FieldError {
                field: format!("{prefix}{}", p.field),
                code: p.code.to_owned(),
                message: p.message,
            })),
        }
    }
    if problems.is_empty() {
        tx.record_changes("pricebook_item", &changes).await?;
        Ok(report)
    } else {
        // All or nothing: the step's transaction rolls back every row written above.
        Err(Failure::validation(problems).into())
    }
}

/// Where an estimate or invoice is priced: the property, whose jurisdiction decides the taxes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PriceAt {
    /// The customer.
    pub customer_id: CustomerId,
    /// The property.
    pub property_id: PropertyId,
    /// Whether the customer's member discount applies (it does to everything but the
    /// agreement's own period invoices).
    pub member_benefits: bool,
}

impl PriceAt {
    /// Work for the customer at the property: a member's discount applies.
    pub(crate) fn work(customer_id: CustomerId, property_id: PropertyId) -> Self {
        Self {
            customer_id,
            property_id,
            member_benefits: true,
        }
    }

    /// An agreement's own billing: the plan's price is the member's price, nothing off it.
    pub(crate) fn agreement(customer_id: CustomerId, property_id: PropertyId) -> Self {
        Self {
            customer_id,
            property_id,
            member_benefits: false,
        }
    }
}

/// Prices `request` against the organization's current pricebook (or the revisions its lines
/// name), markup tiers and the tax rates that apply at the property; problems are reported
/// with `prefix` (`options[1].`). The one pricing path of estimates, invoices and `quote`.
pub(crate) async fn price(
    tx: &mut TenantTx,
    at: Option<PriceAt>,
    request: &QuoteRequest,
    prefix: &str,
) -> Result<Quote, StoreError> {
    let org = load_organization(tx, false).await?;
    let settings = load_settings(tx, false).await?;
    let member = match at {
        Some(at) if at.member_benefits => {
            super::maintenance::membership(tx, at.customer_id).await?
        }
        _ => Default::default(),
    };
    let taxes = match at {
        Some(at) => {
            let property =
                super::customer::load_property(tx, at.customer_id, at.property_id).await?;
            settings
                .tax_rates
                .applicable(&super::contractor::property_jurisdiction(&property.address))
        }
        None => Vec::new(),
    };
    let mut items: Vec<PricebookItem> = Vec::new();
    for line in &request.lines {
        if let LineSource::Item {
            item_id, revision, ..
        } = &line.source
        {
            let loaded = match revision {
                // An old revision of an archived item is archived too: it is not quoted again.
                Some(r) => match load_revision(tx, *item_id, *r).await? {
                    Some(mut item) => {
                        item.archived = load_item(tx, *item_id, false).await?.archived;
                        Some(item)
                    }
                    None => None,
                },
                None => match load_item(tx, *item_id, false).await {
                    Ok(item) => Some(item),
                    Err(StoreError::Failure(f)) if f.kind == FailureKind::NotFound => None,
                    Err(e) => return Err(e),
                },
            };
            // Not found is reported by quote() against the line's field.
            if let Some(item) = loaded
                && !items
                    .iter()
                    .any(|i| i.id == item.id && i.revision == item.revision)
            {
                items.push(item);
            }
        }
    }
    let ctx = PricingContext {
        currency: org.currency,
        items: &items,
        markup: &settings.markup_tiers,
        taxes: &taxes,
        member: member.discount,
        trip_fee_waived_by: member.trip_fee_waived_by,
    };
    core_pricebook::quote(&ctx, request).map_err(|p| invalid(prefix, p).into())
}

/// Filters of `pricebook/v1/listItems`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ItemFilter {
    /// Words that must all appear in the name, description, category or SKU.
    pub query: Option<String>,
    /// Only this kind.
    pub kind: Option<ItemKind>,
    /// Only this category (exact).
    pub category: Option<String>,
    /// Include archived items.
    pub include_archived: bool,
}

impl Services {
    /// `pricebook/v1/getItem`: the current revision, or the one asked for.
    pub async fn pricebook_get_item(
        &self,
        caller: &Caller,
        id: PricebookItemId,
        revision: Option<u32>,
    ) -> Result<PricebookItem, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let current = load_item(tx, id, false).await?;
                match revision {
                    None => Ok(current),
                    Some(r) => load_revision(tx, id, r).await?.ok_or_else(|| {
                        Failure::not_found(&format!("revision {r} of the pricebook item")).into()
                    }),
                }
            })
        })
        .await
    }

    /// `pricebook/v1/listItems`.
    pub async fn pricebook_list_items(
        &self,
        caller: &Caller,
        filter: ItemFilter,
        page: PageRequest,
    ) -> Result<Page<PricebookItem>, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let org = tx.org();
                let mut sql = String::from(
                    "SELECT body FROM pricebook_items WHERE organization_id = $1 AND ($2 IS NULL OR id > $2) \
                     AND ($3 IS NULL OR kind = $3) AND ($4 IS NULL OR category = $4) AND ($5 OR archived = $6)",
                );
                let mut values = args![
                    org,
                    page.after,
                    filter.kind.map(ItemKind::as_str),
                    filter.category,
                    filter.include_archived,
                    false
                ];
                for word in filter
                    .query
                    .as_deref()
                    .unwrap_or_default()
                    .split_whitespace()
                    .take(8)
                {
                    values.push(like_pattern(word).into());
                    sql.push_str(&format!(
                        " AND search_text LIKE ${} ESCAPE '\\'",
                        values.len()
                    ));
                }
                values.push((i64::from(page.limit) + 1).into());
                sql.push_str(&format!(" ORDER BY id LIMIT ${}", values.len()));
                let rows = tx.fetch_all(&sql, values).await?;
                let items = rows.iter().map(decode_body).collect::<Result<Vec<PricebookItem>, _>>()?;
                Ok(page.page(items, |i| i.id.as_uuid()))
            })
        })
        .await
    }

    /// `pricebook/v1/getSettings`: the markup tiers and tax rates.
    pub async fn pricebook_settings(&self, caller: &Caller) -> Result<PricingSettings, StoreError> {
        self.read(caller, |tx| Box::pin(load_settings(tx, false)))
            .await
    }

    /// `pricebook/v1/quote`: prices lines without saving anything, through the same path as
    /// estimates and invoices. With a property, its taxes apply.
    pub async fn pricebook_quote(
        &self,
        caller: &Caller,
        at: Option<(CustomerId, PropertyId)>,
        request: QuoteRequest,
    ) -> Result<Quote, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let at =
                    at.map(|(customer_id, property_id)| PriceAt::work(customer_id, property_id));
                price(tx, at, &request, "").await
            })
        })
        .await
    }
}
